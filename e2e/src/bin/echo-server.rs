//! Echo backend for end-to-end tests (image `localhost/echo:dev`).
//!
//! `echo-server` (default mode) serves HTTP/1.1 on `0.0.0.0:$PORT` (default 8080) and
//! answers every request with one line naming the pod that answered and the request:
//!
//! ```text
//! pod=<POD_NAME> ns=<POD_NAMESPACE> request=GET /login HTTP/1.1
//! ```
//!
//! `/healthz` answers `ok`. The same values are also sent as `x-pod-name` and
//! `x-pod-namespace` response headers. SIGTERM/SIGINT stop it at once.
//!
//! `ECHO_HEADERS=a,b` appends ` a=<value>` for each of those request headers
//! that came (to see what a proxy added). `AUTH_TOKEN=t` makes it an external
//! auth service: `Authorization: Bearer t` gets 200 with `x-auth-user:
//! e2e-user`, anything else 401.
//!
//! `echo-server probe-apiserver` connects to the API server through the in-cluster
//! service environment (`KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`), verifies
//! TLS with the pod's service-account CA, sends `GET /version` with the pod's token,
//! prints the answer and exits 0 on HTTP 200 (1 otherwise).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

struct Identity {
    pod: String,
    namespace: String,
    echo_headers: Vec<String>,
    auth_token: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(),
        Some("probe-apiserver") => match probe_apiserver() {
            Ok(body) => {
                println!("apiserver reachable: {body}");
                Ok(())
            }
            Err(e) => {
                eprintln!("probe-apiserver failed: {e:#}");
                std::process::exit(1);
            }
        },
        Some(other) => {
            eprintln!("usage: echo-server [serve|probe-apiserver] (got {other:?})");
            std::process::exit(2);
        }
    }
}

fn serve() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let id = Arc::new(Identity {
        pod: std::env::var("POD_NAME").unwrap_or_else(|_| "unknown".into()),
        namespace: std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "unknown".into()),
        echo_headers: std::env::var("ECHO_HEADERS")
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        auth_token: std::env::var("AUTH_TOKEN").ok().filter(|t| !t.is_empty()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?;
        eprintln!(
            "echo-server pod={} ns={} listening on :{port}",
            id.pod, id.namespace
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(a) => a,
                        Err(e) => { eprintln!("accept: {e}"); continue; }
                    };
                    let id = id.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| answer(id.clone(), req));
                        if let Err(e) = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                        {
                            eprintln!("connection: {e}");
                        }
                    });
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        eprintln!("echo-server: signal received, exiting");
        anyhow::Ok(())
    })
}

async fn answer(
    id: Arc<Identity>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(token) = id.auth_token.as_deref() {
        let allowed = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(format!("Bearer {token}").as_str());
        let resp = Response::builder()
            .status(if allowed { 200 } else { 401 })
            .header("x-pod-namespace", id.namespace.as_str());
        let resp = if allowed {
            resp.header("x-auth-user", "e2e-user")
        } else {
            resp
        };
        let body = if allowed { "allowed\n" } else { "denied\n" };
        return Ok(resp
            .body(Full::new(Bytes::from(body)))
            .expect("valid response"));
    }
    let body = if req.uri().path() == "/healthz" {
        "ok\n".to_string()
    } else {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut echoed = String::new();
        for name in &id.echo_headers {
            if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
                echoed.push_str(&format!(" {name}={v}"));
            }
        }
        format!(
            "pod={} ns={} request={} {} {:?}{echoed}\n",
            id.pod,
            id.namespace,
            req.method(),
            target,
            req.version()
        )
    };
    let resp = Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-pod-name", id.pod.as_str())
        .header("x-pod-namespace", id.namespace.as_str())
        .body(Full::new(Bytes::from(body)))
        .expect("valid response");
    Ok(resp)
}

/// TLS `GET /version` against the API server, the way an in-cluster client finds it.
fn probe_apiserver() -> anyhow::Result<String> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};

    let host = std::env::var("KUBERNETES_SERVICE_HOST").context("KUBERNETES_SERVICE_HOST")?;
    let port: u16 = std::env::var("KUBERNETES_SERVICE_PORT")
        .context("KUBERNETES_SERVICE_PORT")?
        .parse()?;
    let ip: IpAddr = host
        .parse()
        .context("KUBERNETES_SERVICE_HOST is not an IP")?;
    let token = std::fs::read_to_string(format!("{SA_DIR}/token")).context("read token")?;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(format!("{SA_DIR}/ca.crt")).context("read ca.crt")? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::IpAddress(ip.into()))?;
    let mut tcp = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(10))
        .with_context(|| format!("TCP connect to {ip}:{port}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    write!(
        tls,
        "GET /version HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        token.trim()
    )
    .context("TLS handshake / write")?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // the API server may close without close_notify; what was read is enough
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e).context("read response"),
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text.lines().next().unwrap_or_default().to_string();
    anyhow::ensure!(
        status.starts_with("HTTP/1.1 200"),
        "unexpected status {status:?}"
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok(body.split_whitespace().collect::<Vec<_>>().join(" "))
}
