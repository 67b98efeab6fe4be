//! cert-manager end to end: a tenant's Ingress annotated
//! `cert-manager.io/cluster-issuer` gets its certificate from a real ACME
//! server (pebble) through an HTTP-01 challenge that the tenant's own gateway
//! answers; the certificate lands in the tenant's Secret, is served by SNI,
//! and a renewal rotates it without restarting Envoy. Another tenant's gateway
//! never answers that challenge.
//!
//! `hack/cert-manager up` installs cert-manager (controller, webhook,
//! cainjector, built from their Go modules), pebble and pebble-challtestsrv
//! (the DNS server pebble and cert-manager's self-check resolve names with:
//! the cluster has no DNS). This test runs it (idempotent; the first run on a
//! machine builds the binaries) and leaves the installation in place.
//!
//! The names resolve to the tenants' gateway Services (ClusterIPs) through
//! challtestsrv's A records, which the test sets:
//!
//! 1. `shop-<sfx>.acme.test` → acme's gateway. Ingress created → Certificate
//!    Ready is the figure in docs/tls-cert-manager.md (printed as
//!    `time to issue`); acme's access log shows pebble's validation request
//!    answered 200.
//! 2. `pay-<sfx>.acme.test` → globex's gateway first: the solver (its Ingress
//!    in acme's namespace) answers through acme's gateway, globex's answers
//!    404, cert-manager's self-check sees that 404 and waits, no certificate;
//!    then the record points at acme's gateway and the certificate is issued.
//! 3. A renewal (the status condition `Issuing=True`, as `cmctl renew`): the
//!    Secret gets a new certificate, the gateway serves it, the Envoy pods
//!    are the same (UIDs, restart counts).
//!
//! Alone: `hack/e2e --test cert_manager -- --nocapture`.

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e::gateway::*;
use e2e::{client, guarded, node_internal_ip, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::Client;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUE_TIMEOUT: Duration = Duration::from_secs(240);
const SOLVER_LABEL: &str = "acme.cert-manager.io/http01-solver=true";

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn certificates(c: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        c.clone(),
        ns,
        &resource("cert-manager.io", "Certificate", "certificates"),
    )
}

fn challenges(c: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        c.clone(),
        ns,
        &resource("acme.cert-manager.io", "Challenge", "challenges"),
    )
}

fn orders(c: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        c.clone(),
        ns,
        &resource("acme.cert-manager.io", "Order", "orders"),
    )
}

fn cluster_issuers(c: &Client) -> Api<DynamicObject> {
    Api::all_with(
        c.clone(),
        &resource("cert-manager.io", "ClusterIssuer", "clusterissuers"),
    )
}

/// `hack/cert-manager up`: its KEY=value lines.
fn cert_manager_up() -> Result<BTreeMap<String, String>> {
    let mut cmd = Command::new(repo().join("hack/cert-manager"));
    cmd.arg("up");
    if std::env::var_os("KUBECONFIG").is_none() {
        cmd.env("KUBECONFIG", e2e::local_cluster_kubeconfig());
    }
    let out = cmd.output().context("running hack/cert-manager up")?;
    ensure!(
        out.status.success(),
        "hack/cert-manager up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn env_addr(env: &BTreeMap<String, String>, key: &str) -> Result<SocketAddr> {
    let v = env
        .get(key)
        .ok_or_else(|| anyhow!("hack/cert-manager env has no {key}"))?;
    let hostport = v
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    hostport
        .parse()
        .with_context(|| format!("{key}={v} is not an address"))
}

/// challtestsrv answers A queries for `host` with `ip` (only: `/add-a` adds
/// to what the name had, so its addresses are cleared first).
async fn set_a_record(mgmt: SocketAddr, host: &str, ip: &str) -> Result<()> {
    let clear = json!({"host": format!("{host}.")}).to_string();
    let r = testkit::HttpConn::connect(mgmt)
        .await?
        .post("challtestsrv", "/clear-a", clear.into_bytes())
        .await?;
    ensure!(
        r.status == 200,
        "challtestsrv /clear-a {host}: {}",
        r.status
    );
    let body = json!({"host": format!("{host}."), "addresses": [ip]}).to_string();
    let r = testkit::HttpConn::connect(mgmt)
        .await?
        .post("challtestsrv", "/add-a", body.into_bytes())
        .await?;
    ensure!(r.status == 200, "challtestsrv /add-a {host}: {}", r.status);
    Ok(())
}

fn condition_status(o: &DynamicObject, ty: &str) -> Option<String> {
    o.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

/// Waits until the Certificate `name` is Ready (and not being issued).
async fn wait_certificate_ready(c: &Client, ns: &str, name: &str) -> Result<()> {
    let api = certificates(c, ns);
    let ready = wait_until(
        &format!("Certificate {ns}/{name} Ready"),
        ISSUE_TIMEOUT,
        || async {
            let Some(crt) = api.get_opt(name).await? else {
                return Ok(None);
            };
            let ready = condition_status(&crt, "Ready").as_deref() == Some("True");
            let issuing = condition_status(&crt, "Issuing").as_deref() == Some("True");
            Ok((ready && !issuing).then_some(()))
        },
    )
    .await;
    if let Err(e) = ready {
        return Err(e.context(diagnose(ns)));
    }
    Ok(())
}

/// The cert-manager objects of `ns` and the controller's log tail, for failures.
fn diagnose(ns: &str) -> String {
    let mut out = String::new();
    let mut get = kubectl();
    get.args([
        "-n",
        ns,
        "get",
        "certificates,certificaterequests,orders,challenges,ingresses",
        "-o",
        "wide",
    ]);
    out.push_str(&run(get).unwrap_or_else(|e| format!("{e:#}")));
    let mut desc = kubectl();
    desc.args(["-n", ns, "describe", "challenges"]);
    out.push_str(&run(desc).unwrap_or_else(|e| format!("{e:#}")));
    let mut logs = kubectl();
    logs.args([
        "-n",
        "cert-manager",
        "logs",
        "deployment/cert-manager",
        "--tail=30",
    ]);
    out.push_str(&run(logs).unwrap_or_else(|e| format!("{e:#}")));
    out
}

/// The first certificate of the Secret's `tls.crt` (DER).
fn secret_leaf(s: &Secret) -> Result<Vec<u8>> {
    let pem = s
        .data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .ok_or_else(|| anyhow!("Secret has no tls.crt"))?;
    let first = CertificateDer::pem_slice_iter(&pem.0)
        .next()
        .ok_or_else(|| anyhow!("tls.crt holds no certificate"))??;
    Ok(first.to_vec())
}

/// Accepts any server certificate: the test compares it with the Secret's.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// HTTPS `GET /` to `addr` with SNI and Host `host`: the served leaf
/// certificate (DER) and the response.
async fn https_get(addr: SocketAddr, host: &str) -> Result<(Vec<u8>, String)> {
    let host = host.to_string();
    tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, String)> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(host.clone())?;
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
        let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        write!(
            tls,
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.into()),
        }
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| anyhow!("no server certificate"))?
            .to_vec();
        Ok((leaf, String::from_utf8_lossy(&raw).into_owned()))
    })
    .await?
}

/// Waits until the gateway at `addr` serves the Secret's certificate for
/// `host` by SNI, and the request reaches the backend in `ns`.
async fn wait_served(addr: SocketAddr, host: &str, want: &[u8], ns: &str) -> Result<()> {
    let body_want = format!("ns={ns} ");
    wait_until(
        &format!("{addr} serving the Secret's certificate for SNI {host}"),
        Duration::from_secs(60),
        || async {
            let (leaf, resp) = https_get(addr, host).await?;
            if leaf != want {
                bail!("served another certificate");
            }
            ensure!(
                resp.starts_with("HTTP/1.1 200") && resp.contains(&body_want),
                "served the certificate, answered {resp:?}"
            );
            Ok(Some(()))
        },
    )
    .await
}

struct Gateway {
    http: SocketAddr,
    https: SocketAddr,
    cluster_ip: String,
}

async fn gateway(c: &Client, tenant: &str) -> Result<Gateway> {
    let http = ready_gateway(c, tenant).await?;
    let svc = Api::<Service>::namespaced(c.clone(), SYSTEM_NS)
        .get(&format!("tgw-{tenant}"))
        .await?;
    let spec = svc
        .spec
        .ok_or_else(|| anyhow!("tgw-{tenant} has no spec"))?;
    let ports = spec.ports.unwrap_or_default();
    let port = |name: &str| ports.iter().find(|p| p.name.as_deref() == Some(name));
    // pebble validates HTTP-01 on port 80 of the name's address.
    ensure!(
        port("http").map(|p| p.port) == Some(80),
        "tgw-{tenant}'s http port is not 80: {ports:?}"
    );
    let https_node_port = port("https")
        .and_then(|p| p.node_port)
        .ok_or_else(|| anyhow!("tgw-{tenant} has no https NodePort"))?;
    let node = node_internal_ip(c).await?;
    Ok(Gateway {
        http,
        https: format!("{node}:{https_node_port}").parse()?,
        cluster_ip: spec
            .cluster_ip
            .ok_or_else(|| anyhow!("tgw-{tenant} has no cluster IP"))?,
    })
}

async fn create_tenant(c: &Client, name: &str, ns: &str) -> Result<()> {
    let tgw: DynamicObject = obj(json!({
        "apiVersion": API, "kind": "TenantGateway",
        "metadata": {"name": name},
        "spec": {
            "namespaces": {"names": [ns]}, "replicas": 1,
            "service": {"type": "NodePort"},
            "accessLog": {"format": "json", "fields": ["client", "method", "authority", "path", "status", "user_agent"]}
        }
    }));
    tgw_api(c).create(&PostParams::default(), &tgw).await?;
    Ok(())
}

/// An Ingress for `host` (Prefix / → Service web) asking `issuer` for a
/// certificate in Secret `secret`.
async fn create_tls_ingress(
    ns: &TestNamespace,
    name: &str,
    host: &str,
    secret: &str,
    issuer: &str,
) -> Result<()> {
    let ing: Ingress = obj(json!({
        "metadata": {"name": name, "annotations": {"cert-manager.io/cluster-issuer": issuer}},
        "spec": {
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}],
            "tls": [{"hosts": [host], "secretName": secret}]
        }
    }));
    ns.api::<Ingress>()
        .create(&PostParams::default(), &ing)
        .await?;
    Ok(())
}

/// The JSON access-log lines of the tenant's Envoy pods.
fn access_log(tenant: &str) -> Result<Vec<serde_json::Value>> {
    let mut logs = kubectl();
    logs.args([
        "-n",
        SYSTEM_NS,
        "logs",
        "-l",
        &format!("tenantgateway.io/tenant={tenant},app.kubernetes.io/component=envoy"),
        "-c",
        "envoy",
        "--tail=-1",
    ]);
    Ok(run(logs)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("path").is_some())
        .collect())
}

fn field(v: &serde_json::Value, k: &str) -> String {
    match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The HTTP-01 token of the Order that got `host` its certificate.
async fn order_token(c: &Client, ns: &str, host: &str) -> Result<String> {
    let list = orders(c, ns).list(&ListParams::default()).await?;
    list.items
        .iter()
        .filter(|o| {
            o.data["spec"]["dnsNames"]
                .as_array()
                .is_some_and(|d| d.iter().any(|n| n == host))
        })
        .flat_map(|o| {
            o.data["status"]["authorizations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|a| a["challenges"].as_array().cloned().unwrap_or_default())
        .find(|ch| ch["type"] == "http-01")
        .and_then(|ch| ch["token"].as_str().map(str::to_string))
        .ok_or_else(|| anyhow!("no http-01 token in the Orders of {host}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_certificate_through_the_tenants_gateway_served_by_sni_and_renewed() -> Result<()> {
    if skip_requested("http01_certificate_through_the_tenants_gateway_served_by_sni_and_renewed") {
        return Ok(());
    }
    install_operator()?;
    let started = Instant::now();
    let env = cert_manager_up()?;
    eprintln!(
        "hack/cert-manager up took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let c = client().await?;
    let dns = env_addr(&env, "CHALLTESTSRV_MANAGEMENT")?;
    let directory = env
        .get("PEBBLE_DIRECTORY")
        .ok_or_else(|| anyhow!("no PEBBLE_DIRECTORY"))?
        .clone();
    let (ca_ns, ca_name) = env
        .get("PEBBLE_CA_SECRET")
        .and_then(|s| s.split_once('/'))
        .ok_or_else(|| anyhow!("no PEBBLE_CA_SECRET"))?;
    let ca = Api::<Secret>::namespaced(c.clone(), ca_ns)
        .get(ca_name)
        .await?
        .data
        .and_then(|d| d.get("ca.crt").cloned())
        .ok_or_else(|| anyhow!("{ca_ns}/{ca_name} has no ca.crt"))?;

    let acme_ns = TestNamespace::create("cm-acme").await?;
    let globex_ns = TestNamespace::create("cm-globex").await?;
    let sfx = acme_ns.name[acme_ns.name.len() - 6..].to_string();
    let (acme, globex) = (format!("acme-{sfx}"), format!("globex-{sfx}"));
    let issuer = format!("tg-e2e-pebble-{sfx}");
    for ns in [&acme_ns, &globex_ns] {
        deploy_echo(ns, "web", 1).await?;
    }
    create_tenant(&c, &acme, &acme_ns.name).await?;
    create_tenant(&c, &globex, &globex_ns.name).await?;
    let result = guarded(async {
        let a = gateway(&c, &acme).await?;
        let g = gateway(&c, &globex).await?;
        let ci: DynamicObject = obj(json!({
            "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": issuer},
            "spec": {"acme": {
                "server": directory,
                "caBundle": serde_json::to_value(ByteString(ca.0.clone()))?,
                "privateKeySecretRef": {"name": issuer},
                "solvers": [{"http01": {"ingress": {"ingressClassName": "tenant-gateway", "serviceType": "ClusterIP"}}}]
            }}
        }));
        cluster_issuers(&c).create(&PostParams::default(), &ci).await?;
        wait_until(
            &format!("ClusterIssuer {issuer} Ready (ACME account registered)"),
            Duration::from_secs(90),
            || async {
                let ci = cluster_issuers(&c).get(&issuer).await?;
                Ok((condition_status(&ci, "Ready").as_deref() == Some("True")).then_some(()))
            },
        )
        .await?;

        // 1. Issued through acme's gateway; the time to issue.
        let shop = format!("shop-{sfx}.acme.test");
        set_a_record(dns, &shop, &a.cluster_ip).await?;
        let t0 = Instant::now();
        create_tls_ingress(&acme_ns, "shop", &shop, "shop-tls", &issuer).await?;
        wait_certificate_ready(&c, &acme_ns.name, "shop-tls").await?;
        let issued_in = t0.elapsed();
        println!(
            "time to issue (Ingress created -> Certificate Ready): {:.1}s",
            issued_in.as_secs_f64()
        );
        let secret = acme_ns.api::<Secret>().get("shop-tls").await?;
        ensure!(
            secret.type_.as_deref() == Some("kubernetes.io/tls"),
            "shop-tls type {:?}",
            secret.type_
        );
        let leaf = secret_leaf(&secret)?;
        wait_served(a.https, &shop, &leaf, &acme_ns.name).await?;
        // pebble's validation request went through acme's gateway, answered 200.
        let token = order_token(&c, &acme_ns.name, &shop).await?;
        let challenge_path = format!("/.well-known/acme-challenge/{token}");
        // (Envoy flushes its access log about once a second.)
        let seen = wait_until(
            &format!("pebble's validation of {challenge_path} answered 200 in {acme}'s access log"),
            Duration::from_secs(30),
            || async {
                let lines = access_log(&acme)?;
                let answered: Vec<_> = lines
                    .iter()
                    .filter(|l| field(l, "path") == challenge_path)
                    .collect();
                let pebble = answered.iter().any(|l| {
                    field(l, "status") == "200"
                        && field(l, "user_agent").contains("Pebble")
                        && field(l, "authority").trim_end_matches(":80") == shop
                });
                ensure!(pebble, "not yet; the challenge's lines: {answered:?}");
                Ok(Some(()))
            },
        )
        .await;
        if let Err(e) = seen {
            let mut logs = kubectl();
            logs.args(["-n", "pebble", "logs", "deployment/pebble", "--tail=40"]);
            return Err(e.context(format!(
                "pebble's log:\n{}",
                run(logs).unwrap_or_default()
            )));
        }
        ensure!(
            !access_log(&globex)?
                .iter()
                .any(|l| field(l, "path") == challenge_path),
            "{globex}'s gateway saw acme's challenge"
        );

        // 2. The name points at globex's gateway: the challenge is not answered there.
        let pay = format!("pay-{sfx}.acme.test");
        set_a_record(dns, &pay, &g.cluster_ip).await?;
        create_tls_ingress(&acme_ns, "pay", &pay, "pay-tls", &issuer).await?;
        let ch_api = challenges(&c, &acme_ns.name);
        let (token, key) = wait_until(
            &format!("the Challenge of {pay} presented"),
            Duration::from_secs(120),
            || async {
                let list = ch_api.list(&ListParams::default()).await?;
                Ok(list
                    .items
                    .iter()
                    .find(|ch| {
                        ch.data["spec"]["dnsName"] == pay.as_str()
                            && ch.data["status"]["presented"] == true
                    })
                    .and_then(|ch| {
                        Some((
                            ch.data["spec"]["token"].as_str()?.to_string(),
                            ch.data["spec"]["key"].as_str()?.to_string(),
                        ))
                    }))
            },
        )
        .await
        .map_err(|e| e.context(diagnose(&acme_ns.name)))?;
        let path = format!("/.well-known/acme-challenge/{token}");
        // The solver's Ingress is in acme's namespace, of the tenants' class.
        // Waited for, not listed once: cert-manager's solver reads Ingresses
        // from its informer, and when that lags behind its own create it
        // makes a second one, then deletes both ("multiple challenge solver
        // ingresses found ... cleaned up") and creates one again, all after
        // the Challenge says `presented`.
        let ingresses = acme_ns.api::<Ingress>();
        wait_until(
            &format!("the solver Ingress for {pay} in {}", acme_ns.name),
            Duration::from_secs(60),
            || async {
                let solver_ings = ingresses
                    .list(&ListParams::default().labels(SOLVER_LABEL))
                    .await?;
                Ok(solver_ings
                    .items
                    .iter()
                    .any(|i| {
                        let spec = i.spec.as_ref();
                        spec.and_then(|s| s.ingress_class_name.as_deref())
                            == Some("tenant-gateway")
                            && spec
                                .and_then(|s| s.rules.as_ref())
                                .is_some_and(|r| r.iter().any(|r| r.host.as_deref() == Some(&pay)))
                    })
                    .then_some(()))
            },
        )
        .await
        .map_err(|e| e.context(diagnose(&acme_ns.name)))?;
        wait_until(
            &format!("{acme}'s gateway answering {pay}{path} with the key"),
            Duration::from_secs(90),
            || async {
                let (code, body) = get(a.http, &pay, &path).await?;
                Ok((code == 200 && body == key).then_some(()))
            },
        )
        .await?;
        // cert-manager's self-check resolves the name to globex's gateway and
        // gets its 404; meanwhile globex's gateway never answers the challenge.
        let reason = wait_until(
            "cert-manager's self-check to report globex's 404",
            Duration::from_secs(90),
            || async {
                for ch in ch_api.list(&ListParams::default()).await?.items {
                    let reason = ch.data["status"]["reason"].as_str().unwrap_or("");
                    if ch.data["spec"]["dnsName"] == pay.as_str() && reason.contains("404") {
                        return Ok(Some(reason.to_string()));
                    }
                }
                Ok(None)
            },
        )
        .await?;
        eprintln!("the Challenge of {pay} while it resolves to {globex}: {reason}");
        for i in 0..10 {
            let (code, body) = get(g.http, &pay, &path).await?;
            ensure!(
                code == 404,
                "request {i}: {globex}'s gateway answered {pay}{path} with {code} {body:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let pay_crt = certificates(&c, &acme_ns.name).get("pay-tls").await?;
        ensure!(
            condition_status(&pay_crt, "Ready").as_deref() != Some("True"),
            "pay-tls Ready while its name resolved to {globex}"
        );
        ensure!(
            acme_ns.api::<Secret>().get_opt("pay-tls").await?.is_none()
                || secret_leaf(&acme_ns.api::<Secret>().get("pay-tls").await?).is_err(),
            "pay-tls holds a certificate while its name resolved to {globex}"
        );
        // Now the right gateway: issued.
        set_a_record(dns, &pay, &a.cluster_ip).await?;
        wait_certificate_ready(&c, &acme_ns.name, "pay-tls").await?;
        let pay_leaf = secret_leaf(&acme_ns.api::<Secret>().get("pay-tls").await?)?;
        wait_served(a.https, &pay, &pay_leaf, &acme_ns.name).await?;

        // 3. Renewal: a new certificate served, the same Envoy pods.
        let pods_before: BTreeMap<String, Vec<(String, i32)>> = gateway_pods(&c, &acme)
            .await?
            .iter()
            .map(|p| (p.metadata.uid.clone().unwrap_or_default(), pod_restarts(p)))
            .collect();
        ensure!(!pods_before.is_empty(), "no Envoy pods of {acme}");
        let crt_api = certificates(&c, &acme_ns.name);
        let crt = crt_api.get("shop-tls").await?;
        let mut conditions = crt.data["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c["type"] != "Issuing");
        conditions.push(json!({
            "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered (e2e)",
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second)?.to_string(),
        }));
        let t1 = Instant::now();
        crt_api
            .patch_status(
                "shop-tls",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": conditions}})),
            )
            .await?;
        let renewed = wait_until(
            "shop-tls renewed (a new certificate in the Secret)",
            ISSUE_TIMEOUT,
            || async {
                let s = acme_ns.api::<Secret>().get("shop-tls").await?;
                let now = secret_leaf(&s)?;
                Ok((now != leaf).then_some(now))
            },
        )
        .await
        .map_err(|e| e.context(diagnose(&acme_ns.name)))?;
        wait_certificate_ready(&c, &acme_ns.name, "shop-tls").await?;
        wait_served(a.https, &shop, &renewed, &acme_ns.name).await?;
        println!(
            "time to renew (Issuing=True -> new certificate served): {:.1}s",
            t1.elapsed().as_secs_f64()
        );
        let pods_after: BTreeMap<String, Vec<(String, i32)>> = gateway_pods(&c, &acme)
            .await?
            .iter()
            .map(|p| (p.metadata.uid.clone().unwrap_or_default(), pod_restarts(p)))
            .collect();
        ensure!(
            pods_after == pods_before,
            "Envoy pods changed across the renewal: {pods_before:?} -> {pods_after:?}"
        );
        Ok::<_, anyhow::Error>(())
    })
    .await;

    let _ = cluster_issuers(&c)
        .delete(&issuer, &DeleteParams::background())
        .await;
    delete_tgw(&c, &acme).await;
    delete_tgw(&c, &globex).await;
    acme_ns.cleanup().await?;
    globex_ns.cleanup().await?;
    result
}
