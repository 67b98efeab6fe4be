//! The real client address against a real Envoy: the PROXY protocol (v1
//! text and v2 binary headers written by hand) and trusted X-Forwarded-For
//! (hops, CIDRs) decide what the source-range allow list, the rate limits,
//! X-Real-IP and the access log's `client` see; with no trust configured a
//! forged X-Forwarded-For changes nothing.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::ingress_gateway::{ingress_yaml, service_yaml};
use support::tls::{cert, tls_secret_yaml, ALL_TLS};
use testkit::objects::objects_from_yaml as objects;
use testkit::{wait_until, AdsFixture, Backend, Envoy, HttpConn, HttpError, HttpResponse};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::model::Cidr;
use xds::{translate, ClientAddress, ForwardedForTrust, GatewayOptions, Snapshot};

const CLIENT: [u8; 4] = [203, 0, 113, 7];
const OUTSIDER: [u8; 4] = [198, 51, 100, 9];

/// `allow.example.com` admits 203.0.113.0/24 only; `limited.example.com`
/// allows one request per minute per client; `open.example.com` anyone.
fn tenant_yaml(web: &Backend, tls: &support::tls::Cert) -> String {
    [
        service_yaml("shop", "web", &[web]),
        tls_secret_yaml("shop", "allow-tls", tls),
        ingress_yaml(
            "allow",
            0,
            &[(
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "203.0.113.0/24",
            )],
            &[("allow.example.com", "/", "Prefix", "web")],
            Some(("allow.example.com", "allow-tls")),
        ),
        ingress_yaml(
            "limited",
            1,
            &[
                ("nginx.ingress.kubernetes.io/limit-rpm", "1"),
                ("nginx.ingress.kubernetes.io/limit-burst-multiplier", "1"),
            ],
            &[("limited.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "open",
            2,
            &[],
            &[("open.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat()
}

struct Gateway {
    envoy: Envoy,
    _ads: AdsFixture,
    options: GatewayOptions,
    web: Backend,
    tls: support::tls::Cert,
}

impl Gateway {
    /// Envoy serving [`tenant_yaml`] (and a TCP proxy to `web`) with these settings.
    async fn start(name: &str, client: ClientAddress) -> Self {
        let web = Backend::start("web").await;
        let tls = cert("allow.example.com");
        let tcp_port = testkit::free_port();
        let options = GatewayOptions {
            bind_address: "127.0.0.1".into(),
            http_port: testkit::free_port(),
            https_port: testkit::free_port(),
            namespaces: Some(["shop".to_string()].into()),
            tcp_proxies: vec![format!("{tcp_port}=shop/web:80").parse().unwrap()],
            client_address: client,
            ..GatewayOptions::default()
        };
        let t = translate(&objects(&tenant_yaml(&web, &tls)), &options);
        assert_eq!(t.diagnostics, vec![]);
        let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
        let bootstrap = ads_bootstrap(name, name, &ads.socket.display().to_string(), 0, None);
        let envoy = Envoy::start_with_bootstrap(name, &to_yaml(&bootstrap).unwrap()).await;
        let gw = Self {
            envoy,
            _ads: ads,
            options,
            web,
            tls,
        };
        let up = wait_until(Duration::from_secs(15), || async {
            gw.get(&proxy_v1(CLIENT), "open.example.com", &[])
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
        assert!(up, "no 200; log:\n{}", gw.envoy.log());
        assert_eq!(gw._ads.stats.snapshot().last_nack, None, "Envoy NACKed");
        gw
    }

    fn http(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.options.http_port))
    }

    fn https(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.options.https_port))
    }

    fn tcp(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.options.tcp_proxies[0].port))
    }

    fn proxy_protocol(&self) -> bool {
        self.options.client_address.proxy_protocol
    }

    /// One GET on a fresh connection to the HTTP listener from 127.0.0.1,
    /// starting with `preamble` when the listener expects a PROXY header.
    async fn get(
        &self,
        preamble: &[u8],
        host: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse, HttpError> {
        let preamble = if self.proxy_protocol() { preamble } else { &[] };
        get_over(self.http(), preamble, host, headers).await
    }

    /// The status of a GET of `limited.example.com` with this X-Forwarded-For.
    async fn limited(&self, xff: &str) -> u16 {
        self.get(&[], "limited.example.com", &[("X-Forwarded-For", xff)])
            .await
            .unwrap()
            .status
    }

    /// The X-Real-IP and X-Forwarded-For of the last request the backend saw.
    fn last_seen(&self) -> (String, String) {
        let seen = self.web.requests();
        let last = seen.last().expect("the backend saw a request");
        let h = |n: &str| last.header(n).unwrap_or_default().to_string();
        (h("x-real-ip"), h("x-forwarded-for"))
    }

    /// Envoy's access log lines once one contains `needle`.
    async fn log_lines_with(&self, needle: &str) -> Vec<serde_json::Value> {
        let seen = wait_until(Duration::from_secs(10), || async {
            self.envoy.stdout().contains(needle)
        })
        .await;
        assert!(
            seen,
            "no access log line with {needle:?}: {}",
            self.envoy.stdout()
        );
        self.envoy
            .stdout()
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| serde_json::from_str(l).expect("JSON access log"))
            .collect()
    }
}

async fn get_over(
    addr: SocketAddr,
    preamble: &[u8],
    host: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, HttpError> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = TcpStream::connect(addr).await.map_err(HttpError::Connect)?;
        s.set_nodelay(true)?;
        s.write_all(preamble).await?;
        let mut c = HttpConn::handshake(s).await?;
        c.get_with(host, "/", headers).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "GET timed out"))?
}

/// A PROXY protocol v1 header (the text line) claiming `src:40000` → 127.0.0.1:80.
fn proxy_v1(src: [u8; 4]) -> Vec<u8> {
    let [a, b, c, d] = src;
    format!("PROXY TCP4 {a}.{b}.{c}.{d} 127.0.0.1 40000 80\r\n").into_bytes()
}

/// A PROXY protocol v2 header (binary): signature, version 2 + PROXY command,
/// TCP over IPv4, 12 address bytes: `src:40000` → 127.0.0.1:80.
fn proxy_v2(src: [u8; 4]) -> Vec<u8> {
    let mut h = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
    ];
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // AF_INET, STREAM
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

/// `forwarded` is `sent` and the one entry Envoy appended (the peer; for a
/// loopback peer, as here, Envoy appends its own non-loopback address).
fn assert_one_appended(forwarded: &str, sent: &str) {
    let entries: Vec<&str> = forwarded.split(',').map(str::trim).collect();
    assert_eq!(entries.len(), 2, "{forwarded:?}");
    assert_eq!(entries[0], sent, "{forwarded:?}");
}

fn ip(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_and_v2_give_allow_lists_and_x_real_ip_the_header_address() {
    let gw = Gateway::start(
        "proxy-protocol",
        ClientAddress {
            proxy_protocol: true,
            forwarded_for: ForwardedForTrust::None,
        },
    )
    .await;
    for (version, header) in [("v1", proxy_v1 as fn([u8; 4]) -> Vec<u8>), ("v2", proxy_v2)] {
        let r = gw
            .get(&header(CLIENT), "allow.example.com", &[])
            .await
            .unwrap();
        assert_eq!(
            r.status, 200,
            "{version}: the allow list admits the PROXY source"
        );
        let (real_ip, xff) = gw.last_seen();
        assert_eq!(real_ip, ip(CLIENT), "{version}");
        assert_eq!(
            xff,
            ip(CLIENT),
            "{version}: Envoy appends the client address"
        );
        let r = gw
            .get(&header(OUTSIDER), "allow.example.com", &[])
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{version}: another claimed source is denied");
    }
    // The peer's own X-Forwarded-For is not believed (no trust configured).
    let r = gw
        .get(
            &proxy_v1(OUTSIDER),
            "allow.example.com",
            &[("X-Forwarded-For", "203.0.113.7")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    // Without the header the connection is refused: no answer at all.
    let bare = get_over(gw.http(), &[], "open.example.com", &[]).await;
    assert!(
        bare.is_err(),
        "a connection without a PROXY header was served: {bare:?}"
    );
    // The access log's client is the PROXY source.
    let entries = gw.log_lines_with("allow.example.com").await;
    assert!(
        entries
            .iter()
            .any(|e| e["client"] == ip(CLIENT) && e["status"] == 200),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["client"] == ip(OUTSIDER) && e["status"] == 403),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_comes_before_tls_on_https_and_reaches_tcp_proxies() {
    let gw = Gateway::start(
        "proxy-protocol-tls",
        ClientAddress {
            proxy_protocol: true,
            forwarded_for: ForwardedForTrust::None,
        },
    )
    .await;
    // HTTPS: the PROXY header, then the TLS handshake, then the request.
    for (source, want) in [(CLIENT, 200), (OUTSIDER, 403)] {
        let mut tcp = TcpStream::connect(gw.https()).await.unwrap();
        tcp.write_all(&proxy_v2(source)).await.unwrap();
        let tls = tls_over(tcp, "allow.example.com", &gw.tls).await;
        let mut c = HttpConn::handshake(tls).await.unwrap();
        let r = c.get("allow.example.com", "/").await.unwrap();
        assert_eq!(r.status, want, "HTTPS from {source:?}");
    }
    assert_eq!(gw.last_seen().0, ip(CLIENT));

    // A TCP proxy consumes the header (the backend gets plain HTTP) and logs its source.
    let r = get_over(gw.tcp(), &proxy_v1(CLIENT), "open.example.com", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "through the TCP proxy");
    assert_eq!(gw.last_seen().0, "", "bytes only: no X-Real-IP is added");
    // A TCP connection's line (logged when it closes) has no HTTP fields.
    let entries = gw.log_lines_with("\"method\":null").await;
    assert!(
        entries.iter().any(|e| e["client"] == ip(CLIENT)),
        "{entries:?}"
    );
    let bare = get_over(gw.tcp(), &[], "open.example.com", &[]).await;
    assert!(bare.is_err(), "served without a PROXY header: {bare:?}");
}

/// A TLS client over an established stream, trusting only `c`.
async fn tls_over(
    tcp: TcpStream,
    sni: &str,
    c: &support::tls::Cert,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(c.der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(ALL_TLS)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    connector.connect(name, tcp).await.expect("TLS handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trusted_hop_believes_the_last_forwarded_entry_and_no_trust_believes_none() {
    let gw = Gateway::start(
        "xff-hops",
        ClientAddress {
            proxy_protocol: false,
            forwarded_for: ForwardedForTrust::TrustedHops(1),
        },
    )
    .await;
    let xff = |v: &'static str| [("X-Forwarded-For", v)];
    let r = gw
        .get(&[], "allow.example.com", &xff("203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the trusted hop's entry is the client");
    let (real_ip, forwarded) = gw.last_seen();
    assert_eq!(real_ip, "203.0.113.7");
    assert_one_appended(&forwarded, "203.0.113.7");
    // One hop: only the last entry is believed, a forged one before it is not.
    let r = gw
        .get(&[], "allow.example.com", &xff("203.0.113.7, 198.51.100.9"))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    // Rate limits count per computed client: one per minute each.
    assert_eq!(gw.limited("203.0.113.7").await, 200);
    assert_eq!(gw.limited("203.0.113.7").await, 429);
    assert_eq!(gw.limited("203.0.113.8").await, 200, "own bucket");
    let entries = gw.log_lines_with("allow.example.com").await;
    assert!(
        entries
            .iter()
            .any(|e| e["client"] == "203.0.113.7" && e["status"] == 200),
        "the access log's client is the computed address: {entries:?}"
    );

    // No trust: the same forged header changes nothing.
    let gw = Gateway::start("xff-none", ClientAddress::default()).await;
    let r = gw
        .get(&[], "allow.example.com", &xff("203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "a forged X-Forwarded-For is not believed");
    let r = gw
        .get(&[], "open.example.com", &xff("203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (real_ip, forwarded) = gw.last_seen();
    assert_eq!(real_ip, "127.0.0.1");
    assert_one_appended(&forwarded, "203.0.113.7");
    // One bucket for the peer whatever it claims.
    assert_eq!(gw.limited("203.0.113.7").await, 200);
    assert_eq!(gw.limited("203.0.113.8").await, 429);
    let entries = gw.log_lines_with("allow.example.com").await;
    assert!(
        entries.iter().all(|e| e["client"] == "127.0.0.1"),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_cidrs_believe_forwarded_for_only_from_a_peer_inside_them() {
    let trust = |cidrs: &[&str]| ClientAddress {
        proxy_protocol: false,
        forwarded_for: ForwardedForTrust::trusted_cidrs(
            cidrs.iter().map(|c| c.parse::<Cidr>().unwrap()).collect(),
        ),
    };
    let xff = |v: &'static str| [("X-Forwarded-For", v)];

    // The peer (127.0.0.1) is a trusted proxy.
    let gw = Gateway::start("xff-cidrs", trust(&["127.0.0.0/8", "10.0.0.0/8"])).await;
    let r = gw
        .get(&[], "allow.example.com", &xff("203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the entry from a trusted peer is believed");
    let (real_ip, forwarded) = gw.last_seen();
    assert_eq!(real_ip, "203.0.113.7");
    assert_one_appended(&forwarded, "203.0.113.7");
    // Entries inside the trusted ranges are proxies too: the rightmost outside wins.
    let r = gw
        .get(
            &[],
            "allow.example.com",
            &xff("198.51.100.9, 203.0.113.7, 10.1.2.3"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(gw.last_seen().0, "203.0.113.7");
    let r = gw
        .get(&[], "allow.example.com", &xff("203.0.113.7, 198.51.100.9"))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let entries = gw.log_lines_with("allow.example.com").await;
    assert!(
        entries
            .iter()
            .any(|e| e["client"] == "203.0.113.7" && e["status"] == 200),
        "{entries:?}"
    );

    // The peer is not in the ranges: its header is not believed.
    let gw = Gateway::start("xff-cidrs-untrusted", trust(&["10.0.0.0/8"])).await;
    let r = gw
        .get(&[], "allow.example.com", &xff("203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(
        r.status, 403,
        "an untrusted peer's X-Forwarded-For is ignored"
    );
    let r = gw
        .get(&[], "open.example.com", &xff("203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (real_ip, forwarded) = gw.last_seen();
    assert_eq!(real_ip, "127.0.0.1");
    assert_one_appended(&forwarded, "203.0.113.7");
}
