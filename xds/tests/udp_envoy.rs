//! UDP proxies (`spec.udpProxies`) against a real Envoy: a DNS-like
//! request/response server on loopback behind the gateway's UDP listener,
//! served over ADS.

use std::net::SocketAddr;
use std::time::Duration;
use testkit::objects::{local_service_yaml, objects_from_yaml as objects};
use testkit::{wait_until, AdsFixture, Envoy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::{translate, GatewayOptions, Snapshot};

/// A loopback UDP port that was free a moment ago.
/// A DNS-like server: a query is a 2-byte id and a name; the answer is the
/// id, then `<name> is 10.0.0.<len> (for <peer port>)`, the peer being the
/// address the query came from (Envoy's upstream socket of the session).
async fn dns_like_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if n < 2 {
                continue;
            }
            let name = String::from_utf8_lossy(&buf[2..n]).to_string();
            let mut answer = buf[..2].to_vec();
            answer.extend(
                format!("{name} is 10.0.0.{} (for {})", name.len(), peer.port()).as_bytes(),
            );
            let _ = socket.send_to(&answer, peer).await;
        }
    });
    (addr, task)
}

/// One query from `client` to the gateway; the answer, or `None` after 1 s.
async fn query(client: &UdpSocket, gateway: SocketAddr, id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend(name.as_bytes());
    client.send_to(&q, gateway).await.ok()?;
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(1), client.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    assert_eq!(from, gateway, "the answer comes from the gateway's address");
    Some(buf[..n].to_vec())
}

/// The answer's text after its id, which must be `id`.
fn answer_text(answer: &[u8], id: u16) -> String {
    assert_eq!(answer[..2], id.to_be_bytes(), "answer to another query");
    String::from_utf8_lossy(&answer[2..]).to_string()
}

/// A Service `name` with UDP port 53 (`dns`) whose one ready endpoint is 127.0.0.1:`port`.
fn udp_service_yaml(ns: &str, name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports:\n  - {{name: dns, port: 53, protocol: UDP}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-0\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: {name}}}\n\
         addressType: IPv4\nports:\n- {{name: dns, port: {port}, protocol: UDP}}\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_proxy_answers_each_client_from_the_service_endpoints() {
    let (dns, dns_task) = dns_like_server().await;
    // A TCP echo behind a TCP proxy on the same port number as the UDP one.
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    let echo_task = tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf).await {
                    let _ = s.write_all(&buf[..n]).await;
                }
            });
        }
    });
    let yaml = [
        udp_service_yaml("shop", "dns", dns.port()),
        local_service_yaml("shop", "web", &[echo_port]),
    ]
    .concat();
    // Both a TCP and a UDP proxy listen on `port`; `refused` has a TCP proxy too.
    let port = testkit::free_tcp_and_udp_port();
    let refused = testkit::free_tcp_and_udp_port();
    let options = GatewayOptions {
        bind_address: "127.0.0.1".into(),
        http_port: testkit::free_port(),
        https_port: testkit::free_port(),
        namespaces: Some(["shop".to_string()].into()),
        tenant: "acme".into(),
        tcp_proxies: vec![format!("{port}=shop/web:80").parse().unwrap()],
        udp_proxies: vec![
            format!("{port}=shop/dns:53").parse().unwrap(),
            // The web Service's port 80 is TCP: no UDP listener.
            format!("{refused}=shop/web:80").parse().unwrap(),
        ],
        ..GatewayOptions::default()
    };
    let t = translate(&objects(&yaml), &options);
    let diags: Vec<String> = t.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        diags,
        [format!(
            "error: TenantGateway acme spec.udpProxies[1]: Service \"web\" port 80 has protocol TCP, not UDP in namespace \"shop\"; no UDP listener on port {refused}"
        )]
    );
    let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
    let bootstrap = ads_bootstrap("udp", "udp", &ads.socket.display().to_string(), 0, None);
    let envoy = Envoy::start_with_bootstrap("udp", &to_yaml(&bootstrap).unwrap()).await;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));

    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Datagrams sent before the listener exists are lost: retry until one is answered.
    let up = wait_until(Duration::from_secs(15), || async {
        query(&a, gateway, 1, "warm.up").await.is_some()
    })
    .await;
    assert!(up, "UDP listener did not answer; log:\n{}", envoy.log());

    // Two clients at once, each with its own query: each gets its own answer.
    let (ra, rb) = tokio::join!(
        query(&a, gateway, 0xa1a1, "shop.example"),
        query(&b, gateway, 0xb2b2, "db.internal.example")
    );
    let (ra, rb) = (
        answer_text(&ra.expect("answer to a"), 0xa1a1),
        answer_text(&rb.expect("answer to b"), 0xb2b2),
    );
    assert!(ra.starts_with("shop.example is 10.0.0.12 (for "), "{ra}");
    assert!(
        rb.starts_with("db.internal.example is 10.0.0.19 (for "),
        "{rb}"
    );
    // Each client is a session of its own: the server saw two upstream sockets.
    let peer = |s: &str| s.rsplit("(for ").next().unwrap().to_string();
    assert_ne!(peer(&ra), peer(&rb), "{ra} / {rb}");
    // A later query of the same client stays in its session.
    let again = answer_text(&query(&a, gateway, 7, "x.y").await.unwrap(), 7);
    assert_eq!(peer(&again), peer(&ra));

    // TCP on the same port number goes to the TCP proxy's Service.
    let mut s = TcpStream::connect(gateway).await.unwrap();
    s.write_all(b"tcp-ping").await.unwrap();
    let mut buf = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
        .await
        .expect("tcp answer in time")
        .unwrap();
    assert_eq!(&buf, b"tcp-ping");

    // No UDP listener for the TCP Service port: a query gets no answer.
    let refused_addr = SocketAddr::from(([127, 0, 0, 1], refused));
    assert_eq!(query(&a, refused_addr, 9, "nobody.example").await, None);
    assert_eq!(ads.stats.snapshot().last_nack, None);
    dns_task.abort();
    echo_task.abort();
}
