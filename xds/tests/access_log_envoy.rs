//! Access logs against a real Envoy: one JSON object per request on Envoy's
//! stdout naming the Ingress route that served it; `text` gives the chosen
//! fields in order; `off` logs nothing.

use std::net::SocketAddr;
use std::time::Duration;
use testkit::objects::{local_service_yaml, objects_from_yaml as objects};
use testkit::{http_get, wait_until, AdsFixture, Backend, Envoy};
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::model::{AccessLogField, AccessLogFormat};
use xds::{translate, AccessLog, GatewayOptions, Snapshot};

const INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /login, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
";

/// Envoy serving the `web` Ingress with this access log; `(Envoy, ADS, http address, backend)`.
async fn gateway(log: AccessLog) -> (Envoy, AdsFixture, SocketAddr, Backend) {
    let backend = Backend::start("web").await;
    let yaml = format!(
        "{INGRESS}{}",
        local_service_yaml("shop", "web", &[backend.addr.port()])
    );
    let options = GatewayOptions {
        bind_address: "127.0.0.1".into(),
        http_port: testkit::free_port(),
        https_port: testkit::free_port(),
        namespaces: Some(["shop".to_string()].into()),
        access_log: log,
        ..GatewayOptions::default()
    };
    let t = translate(&objects(&yaml), &options);
    assert_eq!(t.diagnostics, vec![]);
    let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
    let bootstrap = ads_bootstrap("log", "log", &ads.socket.display().to_string(), 0, None);
    let envoy = Envoy::start_with_bootstrap("log", &to_yaml(&bootstrap).unwrap()).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], options.http_port));
    let up = wait_until(Duration::from_secs(15), || async {
        http_get(addr, "shop.example.com", "/login")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(up, "no 200; log:\n{}", envoy.log());
    (envoy, ads, addr, backend)
}

/// Envoy's stdout lines once one contains `needle` (Envoy flushes its log buffer every second).
async fn lines_with(envoy: &Envoy, needle: &str) -> Vec<String> {
    let seen = wait_until(Duration::from_secs(10), || async {
        envoy.stdout().contains(needle)
    })
    .await;
    assert!(
        seen,
        "no access log line with {needle:?}: {:?}",
        envoy.stdout()
    );
    envoy
        .stdout()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_names_the_ingress_route_that_served_each_request() {
    let (envoy, _ads, addr, backend) = gateway(AccessLog::default()).await;
    let r = http_get(addr, "shop.example.com", "/login/form?x=1")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let missed = http_get(addr, "shop.example.com", "/nowhere")
        .await
        .unwrap();
    assert_eq!(missed.status, 404);

    let line = lines_with(&envoy, "/login/form").await.remove(0);
    let entry: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["authority"], "shop.example.com");
    assert_eq!(entry["path"], "/login/form?x=1");
    assert_eq!(entry["status"], 200, "numbers stay numbers");
    assert_eq!(entry["client"], "127.0.0.1");
    assert_eq!(entry["upstream_host"], backend.addr.to_string());
    let route = entry["route"].as_str().unwrap();
    assert!(
        route.starts_with("shop/web|shop.example.com|"),
        "the Ingress namespace/name: {route}"
    );
    assert!(entry["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want: Vec<&str> = AccessLogField::DEFAULT.iter().map(|f| f.name()).collect();
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "exactly the default fields");

    // A request no route serves is logged too, with Envoy's "no route" flag.
    let line = lines_with(&envoy, "/nowhere").await.remove(0);
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["status"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_access_log_is_the_chosen_fields_in_order_and_off_logs_nothing() {
    let text = AccessLog {
        format: AccessLogFormat::Text,
        fields: vec![
            AccessLogField::Status,
            AccessLogField::Method,
            AccessLogField::Path,
        ],
    };
    let (envoy, _ads, addr, _backend) = gateway(text).await;
    http_get(addr, "shop.example.com", "/login/text")
        .await
        .unwrap();
    let lines = lines_with(&envoy, "/login/text").await;
    assert_eq!(lines, ["200 GET /login/text"]);

    let off = AccessLog {
        format: AccessLogFormat::Off,
        fields: vec![],
    };
    let (envoy, _ads, addr, _backend) = gateway(off).await;
    for _ in 0..3 {
        http_get(addr, "shop.example.com", "/login/quiet")
            .await
            .unwrap();
    }
    // Longer than Envoy's 1 s flush interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(envoy.stdout(), "", "off: no access log");
}
