//! The tenant harness of the Ingress real-Envoy tests: tenants as YAML
//! manifests, translated and served over ADS to an Envoy started with the
//! production bootstrap; requests with testkit's client.

use std::net::SocketAddr;
use std::time::Duration;
use testkit::objects::{local_service_yaml, objects_from_yaml as objects};
use testkit::{wait_until, AdsFixture, Backend, Envoy, HttpConn, HttpError, HttpResponse};
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::{translate, GatewayOptions, Snapshot, Translation};

// ---------- tenant fixtures ----------

/// A Service `name` (port 80, named `http`) whose endpoints are `eps`, one
/// EndpointSlice per backend (each listens on its own loopback port).
pub fn service_yaml(ns: &str, name: &str, eps: &[&Backend]) -> String {
    let ports: Vec<u16> = eps.iter().map(|b| b.addr.port()).collect();
    local_service_yaml(ns, name, &ports)
}

/// An Ingress in namespace `shop` with annotations and (host, path, pathType, service) rules.
pub fn ingress_yaml(
    name: &str,
    age: u32,
    annotations: &[(&str, &str)],
    paths: &[(&str, &str, &str, &str)],
    tls: Option<(&str, &str)>,
) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {v:?}\n"))
        .collect();
    let mut rules = String::new();
    for (host, path, ty, svc) in paths {
        rules.push_str(&format!(
            "  - host: {host:?}\n    http:\n      paths:\n      - {{path: {path:?}, pathType: {ty}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
        ));
    }
    let tls = tls
        .map(|(host, secret)| format!("  tls:\n  - {{hosts: [{host}], secretName: {secret}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: shop\n  creationTimestamp: \"2024-01-{:02}T00:00:00Z\"\n  annotations:\n{ann}    x: y\nspec:\n  rules:\n{rules}{tls}---\n",
        age + 1
    )
}

pub fn translated(yaml: &str) -> (Translation, GatewayOptions) {
    let options = GatewayOptions {
        bind_address: "127.0.0.1".into(),
        http_port: testkit::free_port(),
        https_port: testkit::free_port(),
        namespaces: Some(["shop".to_string()].into()),
        ..GatewayOptions::default()
    };
    let t = translate(&objects(yaml), &options);
    (t, options)
}

/// A tenant's Envoy fed over ADS, started with the production bootstrap.
pub struct Gateway {
    pub _ads: AdsFixture,
    pub envoy: Envoy,
    pub options: GatewayOptions,
}

impl Gateway {
    pub async fn start(name: &str, yaml: &str) -> Self {
        let (t, options) = translated(yaml);
        let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
        let bootstrap = ads_bootstrap(name, name, &ads.socket.display().to_string(), 0, None);
        let envoy = Envoy::start_with_bootstrap(name, &to_yaml(&bootstrap).unwrap()).await;
        let gw = Self {
            _ads: ads,
            envoy,
            options,
        };
        let addr = gw.http();
        let up = wait_until(Duration::from_secs(15), || async {
            request(addr, "probe.invalid", "/", &[]).await.is_ok()
        })
        .await;
        assert!(up, "Envoy did not come up; log:\n{}", gw.envoy.log());
        assert_eq!(gw._ads.stats.snapshot().last_nack, None, "Envoy NACKed");
        // Every cluster has a healthy host before the test starts.
        let admin = gw.envoy.admin;
        let ready = wait_until(Duration::from_secs(10), || async {
            let s = testkit::http_get(admin, "admin", "/clusters").await;
            s.is_ok_and(|r| !r.body.contains("health_flags::/failed"))
        })
        .await;
        assert!(ready);
        gw
    }
    pub fn http(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.options.http_port))
    }
    pub fn https(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.options.https_port))
    }
}

// ---------- requests (testkit's client) ----------

pub type Resp = HttpResponse;

/// One GET on a fresh connection, with a deadline.
pub async fn request(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Resp, HttpError> {
    tokio::time::timeout(Duration::from_secs(10), async {
        HttpConn::connect(addr)
            .await?
            .get_with(host, path, headers)
            .await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "GET timed out"))?
}

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Resp {
    request(addr, host, path, &[])
        .await
        .unwrap_or_else(|e| panic!("GET {host}{path}: {e}"))
}
