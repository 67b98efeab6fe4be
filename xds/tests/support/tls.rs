//! TLS for the real-Envoy tests: self-signed certificates, the Kubernetes TLS
//! Secret that carries one, and a client connection that trusts only it.

use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub struct Cert {
    pub pem: String,
    pub key: String,
    pub der: CertificateDer<'static>,
}

/// A self-signed certificate for `host`.
pub fn cert(host: &str) -> Cert {
    let c = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    Cert {
        pem: c.cert.pem(),
        key: c.signing_key.serialize_pem(),
        der: c.cert.der().clone(),
    }
}

/// A `kubernetes.io/tls` Secret holding `c`, as a YAML document.
pub fn tls_secret_yaml(ns: &str, name: &str, c: &Cert) -> String {
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n",
        indent(&c.pem),
        indent(&c.key)
    )
}

pub const ALL_TLS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
pub const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// A TLS connection to `addr` with `sni`, trusting only `root`, offering only
/// `versions`. Err("handshake: …") when the handshake fails (e.g. Envoy
/// presented another host's certificate or refused the version).
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<TlsStream<TcpStream>, String> {
    tls_connect_as(addr, sni, root, versions, None).await
}

/// A client certificate chain and its key (PKCS#8 DER).
pub type ClientCert = (Vec<CertificateDer<'static>>, Vec<u8>);

/// [`tls_connect`], presenting `client` when the server asks for a certificate.
pub async fn tls_connect_as(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<&ClientCert>,
) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain.clone(),
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.clone().into()),
            )
            .map_err(|e| e.to_string())?,
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))
}
