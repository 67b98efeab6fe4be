//! Gateway API UDPRoute against a real Envoy: a UDP listener whose client
//! sessions are spread over the route's backends by weight (one locality
//! per backend in the port's cluster), a backend of weight 0 never reached,
//! and a weight change over ADS taking effect for new sessions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{wait_until, AdsFixture, Envoy};
use tokio::net::UdpSocket;
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::{translate_gateway, GatewayApiObjects, GatewayApiOptions, Snapshot};

/// A loopback UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind udp 127.0.0.1:0")
        .port()
}

/// A UDP server answering every datagram with its `id`.
async fn udp_backend(id: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((_, peer)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(id.as_bytes(), peer).await;
        }
    });
    (addr, task)
}

/// One datagram from a fresh socket (a new session); the id that answered.
async fn ask(gateway: SocketAddr) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    s.send_to(b"who?", gateway).await.ok()?;
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_millis(500), s.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// A Service `name` in `infra` with UDP port 53 whose endpoint is `backend`.
fn udp_service(name: &str, backend: SocketAddr) -> String {
    let port = backend.port();
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: infra}}
spec: {{ports: [{{name: dns, port: 53, protocol: UDP}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-0, namespace: infra, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: dns, port: {port}, protocol: UDP}}]
endpoints: [{{addresses: ['127.0.0.1'], conditions: {{ready: true}}}}]
"
    )
}

fn objects(port: u16, weights: [u32; 3], backends: &[SocketAddr; 3]) -> GatewayApiObjects {
    let [a, b, c] = weights;
    let mut yaml = format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: infra}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra, generation: 1}}
spec:
  gatewayClassName: tenant-gateway
  listeners: [{{name: udp, port: {port}, protocol: UDP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: UDPRoute
metadata: {{name: weighted, namespace: infra}}
spec:
  parentRefs: [{{name: gw, sectionName: udp}}]
  rules:
  - backendRefs:
    - {{name: v1, port: 53, weight: {a}}}
    - {{name: v2, port: 53, weight: {b}}}
    - {{name: v3, port: 53, weight: {c}}}
"
    );
    for (name, addr) in ["v1", "v2", "v3"].iter().zip(backends) {
        yaml += &udp_service(name, *addr);
    }
    GatewayApiObjects::from_yaml(&yaml).unwrap()
}

fn options() -> GatewayApiOptions {
    GatewayApiOptions {
        bind_address: "127.0.0.1".into(),
        tenant: "acme".into(),
        reserved_ports: vec![],
        access_log: Default::default(),
        client_address: Default::default(),
    }
}

/// Sessions per backend id out of `n`, each from a new client socket.
async fn spread(gateway: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let id = ask(gateway).await.unwrap_or_else(|| "(no answer)".into());
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sessions_split_by_weight_within_a_tolerance_and_weight_zero_gets_none() {
    let (v1, t1) = udp_backend("v1").await;
    let (v2, t2) = udp_backend("v2").await;
    let (v3, t3) = udp_backend("v3").await;
    let backends = [v1, v2, v3];
    let port = free_udp_port();
    let t = translate_gateway(&objects(port, [70, 30, 0], &backends), &options());
    assert_eq!(t.diagnostics, vec![], "clean translation");
    assert_eq!(t.resources.consistency_problems(), Vec::<String>::new());
    let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
    let bootstrap = ads_bootstrap(
        "udproute",
        "udproute",
        &ads.socket.display().to_string(),
        0,
        None,
    );
    let envoy = Envoy::start_with_bootstrap("udproute", &to_yaml(&bootstrap).unwrap()).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));
    // Datagrams sent before the listener exists are lost: retry until one is answered.
    let up = wait_until(Duration::from_secs(15), || async {
        ask(gateway).await.is_some()
    })
    .await;
    assert!(up, "UDP listener did not answer; log:\n{}", envoy.log());

    let n = 400;
    let counts = spread(gateway, n).await;
    let share = |id: &str| counts.get(id).copied().unwrap_or(0) as f64 / n as f64;
    assert_eq!(
        counts.get("v3"),
        None,
        "weight 0 must get nothing: {counts:?}"
    );
    assert_eq!(counts.get("(no answer)"), None, "{counts:?}");
    // The conformance suite allows 0.05 either side of the weight.
    assert!(
        (share("v1") - 0.7).abs() <= 0.05,
        "v1 should get 70%: {counts:?}"
    );
    assert!(
        (share("v2") - 0.3).abs() <= 0.05,
        "v2 should get 30%: {counts:?}"
    );

    // New weights over ADS: new sessions follow them.
    let t = translate_gateway(&objects(port, [0, 0, 5], &backends), &options());
    ads.push(Snapshot::from(&t.resources));
    let moved = wait_until(Duration::from_secs(10), || async {
        ask(gateway).await.as_deref() == Some("v3")
    })
    .await;
    assert!(
        moved,
        "the new weights never applied; log:\n{}",
        envoy.log()
    );
    let counts = spread(gateway, 50).await;
    assert_eq!(
        counts,
        [("v3".to_string(), 50)].into(),
        "only v3 has weight now"
    );
    assert_eq!(ads.stats.snapshot().last_nack, None);
    for t in [t1, t2, t3] {
        t.abort();
    }
}
