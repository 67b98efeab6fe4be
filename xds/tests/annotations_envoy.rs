//! Ingress annotations through a real Envoy: tenants as YAML manifests are
//! translated, served over ADS with the production bootstrap, and checked
//! with real requests against local backends that answer with their identity
//! and the path they saw.

mod support;

use rustls_pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::ingress_gateway::{
    get, ingress_yaml, request, service_yaml, translated, Gateway, Resp,
};
use support::tls::{cert, tls_connect_as, Cert, ClientCert, ALL_TLS, TLS12_ONLY};
use testkit::objects::{local_service_yaml, objects_from_yaml as objects};
use testkit::{wait_until, AdsFixture, Backend, Envoy, HttpConn, HttpError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use xds::bootstrap::{ads_bootstrap, static_bootstrap, to_yaml};
use xds::{translate, GatewayOptions, Snapshot, Translation};

// ---------- TLS ----------

fn tls_secret_yaml(name: &str, c: &Cert) -> String {
    support::tls::tls_secret_yaml("shop", name, c)
}

/// GET over TLS with `sni`, trusting only `root`, offering only `versions`.
async fn https_get(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
    path: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Resp, String> {
    https_get_as(addr, sni, root, path, versions, None).await
}

/// [`https_get`], presenting `client` when Envoy asks for a certificate.
async fn https_get_as(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
    path: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<&ClientCert>,
) -> Result<Resp, String> {
    let tls = tls_connect_as(addr, sni, root, versions, client).await?;
    let mut c = HttpConn::handshake(tls).await.map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), c.get(sni, path))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_redirect_hsts_and_tls_minimum_version() {
    let web = Backend::start("web").await;
    let (secure, modern) = (cert("secure.example.com"), cert("modern.example.com"));
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        tls_secret_yaml("secure-tls", &secure),
        tls_secret_yaml("modern-tls", &modern),
        // ssl-redirect applies to hosts with TLS only.
        ingress_yaml(
            "secure",
            0,
            &[
                ("nginx.ingress.kubernetes.io/ssl-redirect", "true"),
                ("tenantgateway.io/hsts-max-age", "31536000"),
                ("tenantgateway.io/hsts-include-subdomains", "true"),
            ],
            &[("secure.example.com", "/", "Prefix", "web")],
            Some(("secure.example.com", "secure-tls")),
        ),
        ingress_yaml(
            "plain-asked",
            1,
            &[("nginx.ingress.kubernetes.io/ssl-redirect", "true")],
            &[("plain.example.com", "/", "Prefix", "web")],
            None,
        ),
        // force-ssl-redirect applies to every host.
        ingress_yaml(
            "forced",
            2,
            &[("nginx.ingress.kubernetes.io/force-ssl-redirect", "true")],
            &[("forced.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "modern",
            3,
            &[("tenantgateway.io/tls-min-version", "1.3")],
            &[("modern.example.com", "/", "Prefix", "web")],
            Some(("modern.example.com", "modern-tls")),
        ),
    ]
    .concat();
    let gw = Gateway::start("tls-annotations", &yaml).await;

    let r = get(gw.http(), "secure.example.com", "/cart?id=7").await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("https://secure.example.com/cart?id=7")
    );
    let r = get(gw.http(), "forced.example.com", "/x").await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(r.header("location"), Some("https://forced.example.com/x"));
    // No TLS for the host: ssl-redirect does nothing. No annotation: no redirect.
    let r = get(gw.http(), "plain.example.com", "/x").await;
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
    let r = get(gw.http(), "modern.example.com", "/x").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("strict-transport-security"), None);

    // HTTPS: served, with HSTS only where asked.
    let r = https_get(gw.https(), "secure.example.com", &secure.der, "/a", ALL_TLS)
        .await
        .unwrap();
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    // TLS 1.2 still works where the minimum is the default...
    let r = https_get(
        gw.https(),
        "secure.example.com",
        &secure.der,
        "/a",
        TLS12_ONLY,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    // ...and is refused where the minimum is 1.3.
    let r = https_get(gw.https(), "modern.example.com", &modern.der, "/a", ALL_TLS)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.header("strict-transport-security")),
        (200, None)
    );
    let err = https_get(
        gw.https(),
        "modern.example.com",
        &modern.der,
        "/a",
        TLS12_ONLY,
    )
    .await
    .unwrap_err();
    assert!(err.contains("handshake"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_target_app_root_and_prefix_rewrite_reach_the_backend_rewritten() {
    let web = Backend::start("web").await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        ingress_yaml(
            "regex",
            0,
            &[
                ("nginx.ingress.kubernetes.io/use-regex", "true"),
                ("nginx.ingress.kubernetes.io/rewrite-target", "/$2"),
            ],
            &[(
                "shop.example.com",
                "/api(/|$)(.*)",
                "ImplementationSpecific",
                "web",
            )],
            None,
        ),
        ingress_yaml(
            "root",
            1,
            &[("nginx.ingress.kubernetes.io/app-root", "/app1")],
            &[("root.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "prefix",
            2,
            &[("tenantgateway.io/prefix-rewrite", "/v2")],
            &[("prefix.example.com", "/old", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "strip",
            3,
            &[("tenantgateway.io/prefix-rewrite", "/")],
            &[("strip.example.com", "/svc", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("rewrites", &yaml).await;
    for (host, path, seen) in [
        ("shop.example.com", "/api/users?x=1", "/users?x=1"),
        ("shop.example.com", "/api", "/"),
        ("shop.example.com", "/API/v1/items", "/v1/items"),
        ("root.example.com", "/app1/page", "/app1/page"),
        ("prefix.example.com", "/old/x/y", "/v2/x/y"),
        ("prefix.example.com", "/old", "/v2"),
        ("strip.example.com", "/svc/a?b=c", "/a?b=c"),
        ("strip.example.com", "/svc", "/"),
    ] {
        let r = get(gw.http(), host, path).await;
        assert_eq!(
            (r.status, r.seen_path()),
            (200, seen),
            "{host}{path}: {r:?}"
        );
    }
    // As nginx's `~* ^/api(/|$)(.*)`: `(/|$)` needs a separator or the end.
    assert_eq!(
        get(gw.http(), "shop.example.com", "/apiary").await.status,
        404
    );
    let r = get(gw.http(), "root.example.com", "/").await;
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some("http://root.example.com/app1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_timeout_fires_on_a_slow_backend_and_websockets_echo() {
    let web = Backend::start("web").await;
    let ws = WsEcho::start().await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: ws, namespace: shop}}\nspec:\n  ports:\n  - {{name: http, port: 80}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ws-0\n  namespace: shop\n  labels: {{kubernetes.io/service-name: ws}}\n\
             addressType: IPv4\nports:\n- {{name: http, port: {}}}\nendpoints:\n- addresses: [\"127.0.0.1\"]\n---\n",
            ws.addr.port()
        ),
        ingress_yaml(
            "slow",
            0,
            &[("nginx.ingress.kubernetes.io/proxy-read-timeout", "1")],
            &[("slow.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "patient",
            1,
            &[],
            &[("patient.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "ws",
            2,
            &[("tenantgateway.io/websocket-idle-timeout", "1h")],
            &[("ws.example.com", "/", "Prefix", "ws")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("timeouts", &yaml).await;

    let started = Instant::now();
    let r = get(gw.http(), "slow.example.com", "/sleep/4000").await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(took < Duration::from_millis(3000), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    // The default (60 s) waits for a backend that takes 1.5 s.
    let r = get(gw.http(), "patient.example.com", "/sleep/1500").await;
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");

    // WebSocket: the upgrade goes through and frames are echoed both ways.
    let mut s = TcpStream::connect(gw.http()).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("HTTP/1.1 101"), "{line:?}");
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        if line.trim().is_empty() {
            break;
        }
    }
    for msg in ["hello", "through envoy"] {
        // A masked text frame (client to server).
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | msg.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(msg.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        reader.get_mut().write_all(&frame).await.unwrap();
        let mut echoed = vec![0; frame.len()];
        tokio::time::timeout(Duration::from_secs(5), reader.read_exact(&mut echoed))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(echoed, frame);
    }
}

/// A WebSocket backend: answers the upgrade with 101, then echoes every byte.
struct WsEcho {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl WsEcho {
    async fn start() -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut r = BufReader::new(s);
                    let mut upgrade = false;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line.to_ascii_lowercase().starts_with("upgrade: websocket") {
                            upgrade = true;
                        }
                        if line.trim().is_empty() {
                            break;
                        }
                    }
                    let mut s = r.into_inner();
                    if !upgrade {
                        let _ = s
                            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                        )
                        .await;
                    let (mut rd, mut wr) = s.split();
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_affinity_keeps_a_client_on_one_of_three_backends() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let yaml = [
        service_yaml("shop", "web", &[&a, &b, &c]),
        ingress_yaml(
            "sticky",
            0,
            &[
                ("nginx.ingress.kubernetes.io/affinity", "cookie"),
                ("nginx.ingress.kubernetes.io/session-cookie-name", "route"),
                ("nginx.ingress.kubernetes.io/session-cookie-max-age", "3600"),
                ("nginx.ingress.kubernetes.io/session-cookie-samesite", "Lax"),
            ],
            &[("sticky.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "spread",
            1,
            &[],
            &[("spread.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("affinity", &yaml).await;
    // All three serve (round robin on the default cluster).
    let mut seen = BTreeMap::new();
    let mut conn = HttpConn::connect(gw.http()).await.unwrap();
    for _ in 0..30 {
        let r = conn.get("spread.example.com", "/").await.unwrap();
        *seen.entry(r.backend().to_string()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // Envoy generates the cookie on the first response.
    let first = get(gw.http(), "sticky.example.com", "/").await;
    let set_cookie = first.header("set-cookie").expect("set-cookie").to_string();
    assert!(set_cookie.starts_with("route="), "{set_cookie}");
    assert!(set_cookie.contains("Max-Age=3600"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let mut backends = BTreeMap::new();
    for _ in 0..50 {
        // Fresh connections: stickiness comes from the cookie, not the connection.
        let r = request(gw.http(), "sticky.example.com", "/", &[("Cookie", &cookie)])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        *backends.entry(r.backend().to_string()).or_insert(0) += 1;
    }
    assert_eq!(backends.len(), 1, "{backends:?}");
    assert_eq!(
        backends.keys().next().map(String::as_str),
        Some(first.backend())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_weight_header_and_cookie_split_traffic() {
    let (main, canary) = (Backend::start("main").await, Backend::start("canary").await);
    let yaml = [
        service_yaml("shop", "main", &[&main]),
        service_yaml("shop", "canary", &[&canary]),
        ingress_yaml(
            "web",
            0,
            &[],
            &[("shop.example.com", "/", "Prefix", "main")],
            None,
        ),
        // Newer, same host and path: not a conflict, it is the canary.
        ingress_yaml(
            "web-canary",
            1,
            &[
                ("nginx.ingress.kubernetes.io/canary", "true"),
                ("nginx.ingress.kubernetes.io/canary-weight", "10"),
                ("nginx.ingress.kubernetes.io/canary-by-header", "X-Canary"),
                ("nginx.ingress.kubernetes.io/canary-by-cookie", "canary"),
            ],
            &[("shop.example.com", "/", "Prefix", "canary")],
            None,
        ),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    assert!(
        t.diagnostics.is_empty(),
        "a canary is not a conflict: {:?}",
        t.diagnostics
    );
    let gw = Gateway::start("canary", &yaml).await;
    let mut conn = HttpConn::connect(gw.http()).await.unwrap();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..1000 {
        let r = conn.get("shop.example.com", "/").await.unwrap();
        assert_eq!(r.status, 200);
        *counts.entry(r.backend().to_string()).or_insert(0) += 1;
    }
    let n = counts.get("canary").copied().unwrap_or(0);
    // Binomial(1000, 0.1): mean 100, sd 9.5; ±4 sd.
    assert!((62..=138).contains(&n), "{counts:?}");
    for (headers, want) in [
        (vec![("X-Canary", "always")], "canary"),
        (vec![("X-Canary", "never")], "main"),
        (vec![("Cookie", "a=1; canary=always")], "canary"),
        (vec![("Cookie", "canary=never")], "main"),
        // The header wins over the cookie.
        (
            vec![("X-Canary", "never"), ("Cookie", "canary=always")],
            "main",
        ),
    ] {
        for _ in 0..20 {
            let r = conn
                .get_with("shop.example.com", "/", &headers)
                .await
                .unwrap();
            assert_eq!(r.backend(), want, "{headers:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ranges_deny_and_allow_by_client_address() {
    let web = Backend::start("web").await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        ingress_yaml(
            "denied",
            0,
            &[(
                "nginx.ingress.kubernetes.io/denylist-source-range",
                "127.0.0.1/32",
            )],
            &[("denied.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "elsewhere",
            1,
            &[(
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "10.0.0.0/8, 192.168.0.0/16",
            )],
            &[("elsewhere.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "local",
            2,
            &[
                (
                    "nginx.ingress.kubernetes.io/allowlist-source-range",
                    "127.0.0.0/8",
                ),
                (
                    "nginx.ingress.kubernetes.io/denylist-source-range",
                    "10.0.0.0/8",
                ),
            ],
            &[("local.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "open",
            3,
            &[],
            &[("open.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("source-ranges", &yaml).await;
    for (host, want) in [
        ("denied.example.com", 403),
        ("elsewhere.example.com", 403),
        ("local.example.com", 200),
        ("open.example.com", 200),
    ] {
        let r = get(gw.http(), host, "/").await;
        assert_eq!(r.status, want, "{host}: {r:?}");
    }
    // A forged X-Forwarded-For does not help: no hops are trusted.
    let r = request(
        gw.http(),
        "denied.example.com",
        "/",
        &[("X-Forwarded-For", "10.1.2.3")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
}

/// Every annotation at once (and each invalid value once): Envoy ACKs it all
/// over ADS, and the same config as a static bootstrap (`render`) validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_annotation_at_once_is_accepted_by_envoy_and_render_validates() {
    let (web, other) = (Backend::start("web").await, Backend::start("other").await);
    let c = cert("all.example.com");
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let o = |k: &str| format!("tenantgateway.io/{k}");
    let all: Vec<(String, &str)> = vec![
        (n("ssl-redirect"), "true"),
        (o("hsts-max-age"), "600"),
        (o("hsts-include-subdomains"), "true"),
        (o("tls-min-version"), "1.3"),
        (n("rewrite-target"), "/$2/$1"),
        (n("app-root"), "/home"),
        (n("proxy-connect-timeout"), "500ms"),
        (n("proxy-read-timeout"), "30"),
        (n("proxy-send-timeout"), "45"),
        (o("websocket-idle-timeout"), "2h"),
        (
            n("proxy-next-upstream"),
            "error timeout http_502 http_503 http_429",
        ),
        (n("proxy-next-upstream-tries"), "5"),
        (n("affinity"), "cookie"),
        (n("session-cookie-name"), "s"),
        (n("session-cookie-path"), "/app"),
        (n("session-cookie-samesite"), "None"),
        (n("whitelist-source-range"), "127.0.0.0/8, ::1, 10.0.0.0/8"),
        (n("denylist-source-range"), "10.1.0.0/16"),
        (n("limit-rps"), "50"),
        (n("limit-rpm"), "600"),
        (o("limit-status-code"), "503"),
        (n("proxy-body-size"), "2m"),
        (o("request-headers-add"), "X-A: 1%; X-B: b"),
        (o("request-headers-remove"), "x-c"),
        (o("response-headers-add"), "X-Frame-Options: DENY"),
        (o("response-headers-remove"), "server"),
        (o("compression"), "brotli"),
        (o("compression-types"), "text/html application/json"),
        (o("compression-min-length"), "64"),
        (o("health-check-path"), "/healthz"),
        (o("health-check-interval"), "5s"),
        (o("health-check-timeout"), "1s"),
        (o("health-check-healthy-threshold"), "2"),
        (o("health-check-unhealthy-threshold"), "3"),
        (o("outlier-consecutive-5xx"), "5"),
        (o("outlier-interval"), "10s"),
        (o("outlier-base-ejection-time"), "30s"),
        (n("configuration-snippet"), "deny all;"),
        (n("enable-cors"), "true"),
        (
            n("cors-allow-origin"),
            "https://*.example.com, https://app.example.org:8443, example.net",
        ),
        (n("cors-allow-methods"), "GET, POST"),
        (n("cors-allow-headers"), "X-A, X_B"),
        (n("cors-expose-headers"), "*"),
        (n("cors-allow-credentials"), "false"),
        (n("cors-max-age"), "60"),
        (n("upstream-vhost"), "inside.example.com:8080"),
        (n("x-forwarded-prefix"), "/all 100%"),
        (n("server-alias"), "alias.example.com"),
        (n("from-to-www-redirect"), "true"),
    ];
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        service_yaml("shop", "other", &[&other]),
        tls_secret_yaml("all-tls", &c),
        ingress_yaml(
            "all",
            0,
            &all,
            &[
                (
                    "all.example.com",
                    "/(v[0-9]+)/(.*)",
                    "ImplementationSpecific",
                    "web",
                ),
                ("all.example.com", "/exact", "Exact", "web"),
            ],
            Some(("all.example.com", "all-tls")),
        ),
        ingress_yaml(
            "src-ip",
            1,
            &[(&o("affinity"), "source-ip"), (&o("prefix-rewrite"), "/")],
            &[("*.example.org", "/p", "Prefix", "other")],
            None,
        ),
        ingress_yaml(
            "all-canary",
            2,
            &[
                (&n("canary"), "true"),
                (&n("canary-weight"), "3"),
                (&n("canary-weight-total"), "7"),
                (&n("canary-by-header"), "X-Canary"),
                (&n("canary-by-header-value"), "yes please"),
                (&n("canary-by-cookie"), "c"),
            ],
            &[(
                "all.example.com",
                "/(v[0-9]+)/(.*)",
                "ImplementationSpecific",
                "other",
            )],
            None,
        ),
        ingress_yaml(
            "moved",
            4,
            &[
                (
                    &n("permanent-redirect"),
                    "https://new.example.com$request_uri",
                ),
                (&n("permanent-redirect-code"), "308"),
                (
                    &n("temporal-redirect"),
                    "http://tmp.example.com:8080/x?y=%20",
                ),
                (&n("temporal-redirect-code"), "307"),
            ],
            &[("moved.example.com", "/", "Prefix", "web")],
            None,
        ),
        ca_secret_yaml("client-ca", &pki("client.example.com")),
        ingress_yaml(
            "mtls",
            5,
            &[
                (&n("auth-tls-secret"), "shop/client-ca"),
                (&n("auth-tls-verify-client"), "optional"),
                (&n("auth-tls-verify-depth"), "2"),
                (&n("auth-tls-pass-certificate-to-upstream"), "true"),
                (&n("auth-tls-error-page"), "https://errors.example.com/x"),
            ],
            &[("mtls.example.com", "/", "Prefix", "web")],
            Some(("mtls.example.com", "all-tls")),
        ),
        ingress_yaml(
            "pass",
            6,
            &[(&n("ssl-passthrough"), "true")],
            &[("pass.example.com", "/", "Prefix", "other")],
            None,
        ),
        ingress_yaml(
            "invalid",
            3,
            &[
                (&n("proxy-read-timeout"), "x"),
                (&n("rewrite-target"), "/$7"),
                (&n("session-cookie-samesite"), "x"),
            ],
            &[("bad.example.com", "/(.*)", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("everything", &yaml).await;
    // The regex route, rewritten, over HTTPS (HTTP redirects).
    let r = https_get(gw.https(), "all.example.com", &c.der, "/v2/items", ALL_TLS)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(["/items/v2"].contains(&r.seen_path()), "{r:?}");
    assert_eq!(
        get(gw.http(), "all.example.com", "/v2/items").await.status,
        308
    );

    let (t, _) = translated(&yaml);
    let yaml = to_yaml(&static_bootstrap(&t.resources, "render", "shop", 0)).unwrap();
    testkit::assert_envoy_accepts(&yaml);
}

/// One GET from a chosen loopback source address (127.0.0.x), fresh connection.
async fn request_from(
    src: [u8; 4],
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<Resp, HttpError> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((src, 0)))?;
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    let mut c = HttpConn::handshake(s).await?;
    tokio::time::timeout(Duration::from_secs(10), c.get(host, path))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "GET timed out"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_per_client_address_after_the_burst() {
    let web = Backend::start("web").await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        // 1 per minute with a burst of 3: three requests, then 429 for a minute.
        ingress_yaml(
            "limited",
            0,
            &[
                ("nginx.ingress.kubernetes.io/limit-rpm", "1"),
                ("nginx.ingress.kubernetes.io/limit-burst-multiplier", "3"),
            ],
            &[("limited.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "custom-status",
            1,
            &[
                ("tenantgateway.io/limit-rps", "1"),
                ("tenantgateway.io/limit-burst-multiplier", "1"),
                ("tenantgateway.io/limit-status-code", "503"),
            ],
            &[("custom.example.com", "/", "Prefix", "web")],
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
    .concat();
    let gw = Gateway::start("rate-limit", &yaml).await;
    let statuses = |src: [u8; 4], host: &'static str, n: usize| {
        let addr = gw.http();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(request_from(src, addr, host, "/").await.unwrap().status);
            }
            out
        }
    };
    let one = [127, 0, 0, 1];
    assert_eq!(
        statuses(one, "limited.example.com", 5).await,
        [200, 200, 200, 429, 429]
    );
    // Another client address has its own bucket.
    assert_eq!(
        statuses([127, 0, 0, 2], "limited.example.com", 4).await,
        [200, 200, 200, 429]
    );
    // Another Ingress has its own limit (and status); unlimited ones are not limited.
    assert_eq!(
        statuses(one, "custom.example.com", 3).await,
        [200, 503, 503]
    );
    assert_eq!(statuses(one, "open.example.com", 10).await, [200; 10]);
    let r = request_from(one, gw.http(), "limited.example.com", "/")
        .await
        .unwrap();
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
}

// ---------- backend protocols: h2c/gRPC and TLS backends ----------

type FrameStream = http_body_util::StreamBody<
    futures::stream::Iter<
        std::vec::IntoIter<
            Result<hyper::body::Frame<hyper::body::Bytes>, std::convert::Infallible>,
        >,
    >,
>;

fn frames(data: Vec<u8>, trailers: Option<hyper::HeaderMap>) -> FrameStream {
    let mut v = vec![Ok(hyper::body::Frame::data(hyper::body::Bytes::from(data)))];
    if let Some(t) = trailers {
        v.push(Ok(hyper::body::Frame::trailers(t)));
    }
    http_body_util::StreamBody::new(futures::stream::iter(v))
}

/// Answers gRPC calls (content-type application/grpc) by echoing the request
/// message with `grpc-status: 0`, and anything else with
/// `backend=<id> proto=<HTTP version> path=<path>`.
async fn protocol_service(
    id: String,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<FrameStream>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let version = format!("{:?}", req.version());
    let headers = req.headers().clone();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    if grpc {
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
        let mut resp = hyper::Response::new(frames(body, Some(trailers)));
        resp.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/grpc"),
        );
        return Ok(resp);
    }
    let seen: Vec<String> = [
        "x-real-ip",
        "x-request-id",
        "x-added",
        "x-stripped",
        "host",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-forwarded-prefix",
        "ssl-client-subject-dn",
        "ssl-client-cert",
        "x-tenantgateway-sni",
    ]
    .iter()
    .filter_map(|h| {
        let v = headers.get(*h)?.to_str().ok()?;
        Some(format!("{h}={v}"))
    })
    .collect();
    let text = format!(
        "backend={id} proto={version} path={path} len={} headers={}",
        body.len(),
        seen.join(",")
    );
    let len = text.len();
    let mut resp = hyper::Response::new(frames(text.into_bytes(), None));
    resp.headers_mut().insert(
        hyper::header::CONTENT_LENGTH,
        hyper::header::HeaderValue::from(len),
    );
    resp.headers_mut().insert(
        "x-backend-internal",
        hyper::header::HeaderValue::from_static("secret"),
    );
    Ok(resp)
}

/// A backend speaking HTTP/2 only (h2c, prior knowledge), or HTTP/1.1 over
/// TLS with the given certificate chain and key.
struct ProtoBackend {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ProtoBackend {
    async fn h2c(id: &str) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let id = id.to_string();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let id = id.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |r| protocol_service(id.clone(), r));
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
                });
            }
        });
        Self { addr, task }
    }

    async fn http1(id: &str) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let id = id.to_string();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let id = id.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |r| protocol_service(id.clone(), r));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    async fn tls(id: &str, chain: Vec<CertificateDer<'static>>, key: Vec<u8>) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(ALL_TLS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, rustls_pki_types::PrivateKeyDer::Pkcs8(key.into()))
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let id = id.to_string();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (id, acceptor) = (id.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |r| protocol_service(id.clone(), r));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for ProtoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA and a server certificate for `name` it signed.
struct Pki {
    ca_pem: String,
    ca_key_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: Vec<u8>,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // A subject distinct from the leaf's, or the leaf looks self-signed.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("test CA for {name}"));
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_key_pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    Pki {
        ca_pem: ca.pem(),
        ca_key_pem,
        leaf: leaf.der().clone(),
        leaf_key: leaf_key.serialize_der(),
    }
}

/// A kubernetes.io/tls Secret carrying a CA in `ca.crt`.
fn ca_secret_yaml(name: &str, p: &Pki) -> String {
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: shop}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}  ca.crt: |\n{}---\n",
        indent(&p.ca_pem),
        indent(&p.ca_key_pem),
        indent(&p.ca_pem)
    )
}

/// A gRPC unary call over HTTP/2 (prior knowledge) to the gateway: the
/// response message and grpc-status.
async fn grpc_call(addr: SocketAddr, host: &str, message: &[u8]) -> (u16, Vec<u8>, String) {
    use http_body_util::BodyExt;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    let req = hyper::Request::post(format!("http://{host}/echo.Echo/Say"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(frame)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let collected = resp.into_body().collect().await.unwrap();
    let grpc_status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = collected.to_bytes().to_vec();
    (
        status,
        body.get(5..).unwrap_or_default().to_vec(),
        grpc_status,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_protocols_h2c_grpc_and_verified_https() {
    let h2 = ProtoBackend::h2c("h2").await;
    let good = pki("secure.shop.svc");
    let wrong = pki("secure.shop.svc");
    let tls = ProtoBackend::tls("tls", vec![good.leaf.clone()], good.leaf_key.clone()).await;
    let ing = |name: &str, age, ann: &[(&str, &str)], host: &str, svc: &str| {
        ingress_yaml(name, age, ann, &[(host, "/", "Prefix", svc)], None)
    };
    let yaml = [
        local_service_yaml("shop", "h2", &[h2.addr.port()]),
        local_service_yaml("shop", "secure", &[tls.addr.port()]),
        ca_secret_yaml("good-ca", &good),
        ca_secret_yaml("wrong-ca", &wrong),
        ing(
            "h2c",
            0,
            &[("nginx.ingress.kubernetes.io/backend-protocol", "H2C")],
            "h2c.example.com",
            "h2",
        ),
        ing(
            "grpc",
            1,
            &[("nginx.ingress.kubernetes.io/backend-protocol", "GRPC")],
            "grpc.example.com",
            "h2",
        ),
        ing(
            "verified",
            2,
            &[
                ("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS"),
                (
                    "nginx.ingress.kubernetes.io/proxy-ssl-secret",
                    "shop/good-ca",
                ),
                ("nginx.ingress.kubernetes.io/proxy-ssl-verify", "on"),
            ],
            "verified.example.com",
            "secure",
        ),
        ing(
            "wrong-ca",
            3,
            &[
                ("tenantgateway.io/backend-protocol", "HTTPS"),
                ("tenantgateway.io/proxy-ssl-secret", "wrong-ca"),
            ],
            "wrong.example.com",
            "secure",
        ),
        ing(
            "wrong-name",
            4,
            &[
                ("tenantgateway.io/backend-protocol", "HTTPS"),
                ("tenantgateway.io/proxy-ssl-secret", "good-ca"),
                ("tenantgateway.io/proxy-ssl-name", "other.shop.svc"),
            ],
            "wrong-name.example.com",
            "secure",
        ),
        ing(
            "unverified",
            5,
            &[
                ("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS"),
                (
                    "nginx.ingress.kubernetes.io/proxy-ssl-secret",
                    "shop/wrong-ca",
                ),
                ("nginx.ingress.kubernetes.io/proxy-ssl-verify", "off"),
            ],
            "unverified.example.com",
            "secure",
        ),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let gw = Gateway::start("backend-protocols", &yaml).await;

    // HTTP/1.1 from the client, HTTP/2 to the backend.
    let r = get(gw.http(), "h2c.example.com", "/x").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.starts_with("backend=h2 proto=HTTP/2.0 path=/x"),
        "{r:?}"
    );
    // gRPC end to end over HTTP/2.
    let (status, msg, grpc_status) = grpc_call(gw.http(), "grpc.example.com", b"hello grpc").await;
    assert_eq!(
        (status, msg.as_slice(), grpc_status.as_str()),
        (200, &b"hello grpc"[..], "0")
    );
    // HTTPS with the CA that signed the backend's certificate (and its name).
    let r = get(gw.http(), "verified.example.com", "/v").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.starts_with("backend=tls proto=HTTP/1.1 path=/v"),
        "{r:?}"
    );
    // The wrong CA, or the wrong name: the handshake fails, 503.
    for host in ["wrong.example.com", "wrong-name.example.com"] {
        let r = get(gw.http(), host, "/").await;
        assert_eq!(r.status, 503, "{host}: {r:?}");
    }
    // Verification off: served whatever the certificate.
    let r = get(gw.http(), "unverified.example.com", "/u").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
}

/// A POST with a body of `len` bytes (Content-Length) on a fresh connection.
async fn post(addr: SocketAddr, host: &str, len: usize) -> Resp {
    let mut c = HttpConn::connect(addr).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        c.post(host, "/upload", vec![b'x'; len]),
    )
    .await
    .expect("POST in time")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_added_and_removed_and_bodies_above_the_limit_get_413() {
    let web = ProtoBackend::http1("web").await;
    let yaml = [
        local_service_yaml("shop", "web", &[web.addr.port()]),
        ingress_yaml(
            "edited",
            0,
            &[
                (
                    "tenantgateway.io/request-headers-add",
                    "X-Added: 100% yes; X-Real-IP: forged",
                ),
                ("tenantgateway.io/request-headers-remove", "X-Stripped"),
                (
                    "tenantgateway.io/response-headers-add",
                    "X-Frame-Options: DENY",
                ),
                (
                    "tenantgateway.io/response-headers-remove",
                    "x-backend-internal",
                ),
                ("nginx.ingress.kubernetes.io/proxy-body-size", "1k"),
                // Several per-route filters together (RBAC + buffer).
                (
                    "nginx.ingress.kubernetes.io/allowlist-source-range",
                    "127.0.0.0/8",
                ),
            ],
            &[("edited.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "plain",
            1,
            &[],
            &[("plain.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let gw = Gateway::start("headers", &yaml).await;

    // Defaults on every route: X-Real-IP is the client address (a client's own
    // header is replaced), X-Request-Id is generated.
    let r = request(
        gw.http(),
        "plain.example.com",
        "/",
        &[("X-Real-IP", "6.6.6.6"), ("X-Stripped", "kept here")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("x-real-ip=127.0.0.1"), "{r:?}");
    assert!(r.body.contains("x-request-id="), "{r:?}");
    assert!(r.body.contains("x-stripped=kept here"), "{r:?}");
    assert_eq!(r.header("x-backend-internal"), Some("secret"), "{r:?}");

    let r = request(
        gw.http(),
        "edited.example.com",
        "/",
        &[("X-Stripped", "secret")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    // `%` is literal; the Ingress's own X-Real-IP wins over the default.
    assert!(r.body.contains("x-added=100% yes"), "{r:?}");
    assert!(r.body.contains("x-real-ip=forged"), "{r:?}");
    assert!(!r.body.contains("x-stripped"), "{r:?}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-backend-internal"), None);

    // Body size: up to 1 KiB passes, above is refused with 413.
    let r = post(gw.http(), "edited.example.com", 1024).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("len=1024"), "{r:?}");
    let r = post(gw.http(), "edited.example.com", 1025).await;
    assert_eq!(r.status, 413, "{r:?}");
    // Without Content-Length (chunked), sent in pieces: 413 once buffered past the limit.
    // Raw on purpose: the body must arrive in timed pieces.
    let mut raw = BufReader::new(TcpStream::connect(gw.http()).await.unwrap());
    raw.get_mut()
        .write_all(b"POST /upload HTTP/1.1\r\nHost: edited.example.com\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("400\r\n{}\r\n", "y".repeat(1024));
    for _ in 0..4 {
        if raw.get_mut().write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = raw.get_mut().write_all(b"0\r\n\r\n").await;
    let mut status_line = String::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_line(&mut status_line))
        .await
        .unwrap()
        .unwrap();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line:?}");
    let r = post(gw.http(), "plain.example.com", 100_000).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
}

/// Which backends answer `n` GETs (200 only), and how many did not answer 200.
async fn spread(addr: SocketAddr, host: &str, n: usize) -> (BTreeMap<String, usize>, usize) {
    let mut seen = BTreeMap::new();
    let mut errors = 0;
    for _ in 0..n {
        match request(addr, host, "/", &[]).await {
            Ok(r) if r.status == 200 => *seen.entry(r.backend().to_string()).or_insert(0) += 1,
            _ => errors += 1,
        }
    }
    (seen, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_outlier_detection_take_failing_endpoints_out() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (c, d) = (Backend::start("c").await, Backend::start("d").await);
    let yaml = [
        service_yaml("shop", "checked", &[&a, &b]),
        service_yaml("shop", "passive", &[&c, &d]),
        ingress_yaml(
            "checked",
            0,
            &[
                ("tenantgateway.io/health-check-path", "/healthz"),
                ("tenantgateway.io/health-check-interval", "1s"),
                ("tenantgateway.io/health-check-timeout", "500ms"),
                ("tenantgateway.io/health-check-healthy-threshold", "1"),
                ("tenantgateway.io/health-check-unhealthy-threshold", "1"),
            ],
            &[("checked.example.com", "/", "Prefix", "checked")],
            None,
        ),
        ingress_yaml(
            "passive",
            1,
            &[
                ("tenantgateway.io/outlier-consecutive-5xx", "2"),
                ("tenantgateway.io/outlier-interval", "1s"),
                ("tenantgateway.io/outlier-base-ejection-time", "1m"),
            ],
            &[("passive.example.com", "/", "Prefix", "passive")],
            None,
        ),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let names: Vec<&str> = t
        .resources
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let checked = t
        .resources
        .clusters
        .iter()
        .find(|c| c.name.starts_with("shop/checked/80/"))
        .unwrap_or_else(|| panic!("{names:?}"));
    assert_eq!(checked.health_checks.len(), 1);
    let passive = t
        .resources
        .clusters
        .iter()
        .find(|c| c.name.starts_with("shop/passive/80/"))
        .unwrap_or_else(|| panic!("{names:?}"));
    assert!(passive.outlier_detection.is_some());

    let gw = Gateway::start("health", &yaml).await;
    let (seen, errors) = spread(gw.http(), "checked.example.com", 20).await;
    assert_eq!(errors, 0);
    assert_eq!(
        seen.len(),
        2,
        "both endpoints serve while healthy: {seen:?}"
    );

    // Active: a's health path fails; after the interval all traffic goes to b.
    a.healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    let admin = gw.envoy.admin;
    let a_addr = a.addr.to_string();
    let marked = wait_until(Duration::from_secs(10), || async {
        let r = testkit::http_get(admin, "admin", "/clusters").await;
        r.is_ok_and(|r| {
            r.body
                .lines()
                .any(|l| l.contains(&a_addr) && l.contains("health_flags::/failed_active_hc"))
        })
    })
    .await;
    assert!(marked, "{}", gw.envoy.admin_get("/clusters").await);
    let (seen, errors) = spread(gw.http(), "checked.example.com", 20).await;
    assert_eq!(errors, 0);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["b"], "{seen:?}");
    // It comes back once healthy again.
    a.healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let back = wait_until(Duration::from_secs(10), || async {
        spread(gw.http(), "checked.example.com", 10).await.0.len() == 2
    })
    .await;
    assert!(back);

    // Passive: c answers 500; after 2 in a row it is ejected, d takes everything.
    let (seen, _) = spread(gw.http(), "passive.example.com", 20).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    c.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, errors) = spread(gw.http(), "passive.example.com", 4).await;
    assert!(errors >= 1, "c answers 500");
    // Ejection is decided on Envoy's main thread, then reaches the worker.
    let ejected = wait_until(Duration::from_secs(5), || async {
        let (seen, errors) = spread(gw.http(), "passive.example.com", 6).await;
        errors == 0 && seen.len() == 1
    })
    .await;
    assert!(ejected, "{}", gw.envoy.admin_get("/clusters").await);
    let (seen, errors) = spread(gw.http(), "passive.example.com", 20).await;
    assert_eq!(errors, 0);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["d"], "{seen:?}");
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
}

/// A GET on a fresh connection (closed by the server): status, headers
/// (lowercase names) and the raw body, de-chunked.
async fn raw_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let hdrs: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if hdrs
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = body.as_slice();
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 4 + size..];
        }
        body = out;
    }
    (status, hdrs, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_gzips_configured_types_only_where_asked() {
    use std::io::Read as _;
    let web = Backend::start("web").await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        ingress_yaml(
            "gzipped",
            0,
            &[
                ("tenantgateway.io/compression", "gzip"),
                (
                    "tenantgateway.io/compression-types",
                    "text/plain, application/json",
                ),
                ("tenantgateway.io/compression-min-length", "100"),
                // Several per-route filters together (RBAC + compressor).
                ("tenantgateway.io/allowlist-source-range", "127.0.0.0/8"),
            ],
            &[("gzip.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "brotli",
            1,
            &[("tenantgateway.io/compression", "brotli")],
            &[("br.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "plain",
            2,
            &[],
            &[("plain.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let gw = Gateway::start("compression", &yaml).await;
    let gz = [("Accept-Encoding", "gzip")];

    let (status, h, original) = raw_get(gw.http(), "gzip.example.com", "/text/100", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(h.get("content-encoding"), None, "{h:?}");
    assert!(original.len() > 3000);
    let (status, h, body) = raw_get(gw.http(), "gzip.example.com", "/text/100", &gz).await;
    assert_eq!(status, 200);
    assert_eq!(
        h.get("content-encoding").map(String::as_str),
        Some("gzip"),
        "{h:?}"
    );
    assert!(body.len() < original.len() / 4, "{} bytes", body.len());
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, original);
    // Below the minimum length: not compressed.
    let (_, h, _) = raw_get(gw.http(), "gzip.example.com", "/short", &gz).await;
    assert_eq!(h.get("content-encoding"), None, "{h:?}");
    // Brotli, with the default types.
    let (status, h, _) = raw_get(
        gw.http(),
        "br.example.com",
        "/text/100",
        &[("Accept-Encoding", "br")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        h.get("content-encoding").map(String::as_str),
        Some("br"),
        "{h:?}"
    );
    // gzip asked of a brotli route: not compressed.
    let (_, h, _) = raw_get(gw.http(), "br.example.com", "/text/100", &gz).await;
    assert_eq!(h.get("content-encoding"), None, "{h:?}");
    // Without the annotation: never compressed.
    let (status, h, body) = raw_get(gw.http(), "plain.example.com", "/text/100", &gz).await;
    assert_eq!(status, 200);
    assert_eq!(h.get("content-encoding"), None, "{h:?}");
    assert_eq!(
        body.len(),
        original.len() + 100,
        "one more byte per line (host name)"
    );
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
}

/// A TCP echo server on loopback: `<id>:` then every byte it receives.
async fn tcp_echo(id: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                if w.write_all(format!("{id}:").as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_forwards_connections_to_the_service_endpoints() {
    let (echo, task) = tcp_echo("db").await;
    let yaml = [
        local_service_yaml("shop", "db", &[echo.port()]),
        // The same Service name outside the tenant's namespaces: never used.
        local_service_yaml("other", "db", &[echo.port()]),
    ]
    .concat();
    let tcp_port = testkit::free_port();
    let refused_port = testkit::free_port();
    let options = GatewayOptions {
        bind_address: "127.0.0.1".into(),
        http_port: testkit::free_port(),
        https_port: testkit::free_port(),
        namespaces: Some(["shop".to_string()].into()),
        tenant: "acme".into(),
        tcp_proxies: vec![
            format!("{tcp_port}=shop/db:80").parse().unwrap(),
            format!("{refused_port}=other/db:80").parse().unwrap(),
        ],
        ..GatewayOptions::default()
    };
    let t = translate(&objects(&yaml), &options);
    assert_eq!(t.diagnostics.len(), 1, "{:?}", t.diagnostics);
    assert_eq!(t.diagnostics[0].field, "spec.tcpProxies[1]");
    let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
    let bootstrap = ads_bootstrap("tcp", "tcp", &ads.socket.display().to_string(), 0, None);
    let envoy = Envoy::start_with_bootstrap("tcp", &to_yaml(&bootstrap).unwrap()).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp_port));
    let exchange = || async move {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"ping\n").await.ok()?;
        let mut buf = vec![0; 8];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    };
    let up = wait_until(Duration::from_secs(15), || async {
        exchange().await.is_some()
    })
    .await;
    assert!(up, "TCP listener did not forward; log:\n{}", envoy.log());
    assert_eq!(exchange().await.unwrap(), b"db:ping\n");
    // A longer exchange on one connection, both ways.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.split();
    let mut got = vec![0; 3 + payload.len()];
    let (wrote, read) = tokio::join!(w.write_all(&payload), r.read_exact(&mut got));
    wrote.unwrap();
    read.unwrap();
    assert_eq!(&got[..3], b"db:");
    assert_eq!(&got[3..], payload.as_slice());
    // No listener for the Service outside the tenant's namespaces.
    assert!(TcpStream::connect(("127.0.0.1", refused_port))
        .await
        .is_err());
    assert_eq!(ads.stats.snapshot().last_nack, None);
    task.abort();
}

// ---------- CORS ----------

/// An Ingress serving `/` of one host from `svc`.
fn host_ingress(name: &str, age: u32, ann: &[(&str, &str)], host: &str, svc: &str) -> String {
    ingress_yaml(name, age, ann, &[(host, "/", "Prefix", svc)], None)
}

/// A request with `method`, on a fresh connection.
async fn request_method(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        HttpConn::connect(addr).await?.send(req).await
    })
    .await
    .unwrap_or_else(|_| panic!("{method} {host}{path} timed out"))
    .unwrap_or_else(|e| panic!("{method} {host}{path}: {e}"))
}

/// A CORS preflight for `origin` asking for `method`.
async fn preflight(addr: SocketAddr, host: &str, origin: &str, method: &str) -> Resp {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", method),
        ("access-control-request-headers", "x-token"),
    ];
    request_method(addr, "OPTIONS", host, "/api", &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_and_only_allowed_origins_get_the_headers() {
    let web = Backend::start("web").await;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let listed = [
        (n("enable-cors"), "true"),
        (
            n("cors-allow-origin"),
            "https://app.example.com, https://*.example.org",
        ),
        (n("cors-allow-methods"), "GET, POST"),
        (n("cors-allow-headers"), "X-Token, Content-Type"),
        (n("cors-expose-headers"), "X-Total"),
        (n("cors-max-age"), "600"),
    ];
    let listed: Vec<(&str, &str)> = listed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        host_ingress("listed", 0, &listed, "cors.example.com", "web"),
        host_ingress(
            "any",
            1,
            &[("tenantgateway.io/enable-cors", "true")],
            "any.example.com",
            "web",
        ),
        host_ingress("plain", 2, &[], "plain.example.com", "web"),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let gw = Gateway::start("cors", &yaml).await;

    // A preflight from a listed origin is answered by the gateway.
    let origin = "https://app.example.com";
    let r = preflight(gw.http(), "cors.example.com", origin, "POST").await;
    assert_eq!((r.status, r.backend()), (200, ""), "{r:?}");
    assert_headers(
        &r,
        &[
            ("access-control-allow-origin", Some(origin)),
            ("access-control-allow-methods", Some("GET,POST")),
            ("access-control-allow-headers", Some("X-Token,Content-Type")),
            ("access-control-max-age", Some("600")),
            ("access-control-allow-credentials", Some("true")),
        ],
    );
    // `*.example.org` is one label, case-insensitively.
    for (origin, allowed) in [
        ("https://sub.example.org", true),
        ("https://SUB.Example.ORG", true),
        ("https://a.b.example.org", false),
        ("https://example.org", false),
        ("http://app.example.com", false),
        ("https://app.example.com.evil.test", false),
        ("https://evil.test", false),
    ] {
        let r = preflight(gw.http(), "cors.example.com", origin, "GET").await;
        let want = allowed.then_some(origin);
        assert_headers(&r, &[("access-control-allow-origin", want)]);
        // Every preflight is answered by the gateway, never forwarded; only
        // an allowed origin's answer allows anything.
        assert_eq!((r.status, r.backend()), (200, ""), "{origin}: {r:?}");
    }
    // An actual request from a listed origin carries the allow headers, one
    // from another origin (or without Origin) none.
    for (headers, allowed) in [
        (&[("origin", origin)][..], true),
        (&[("origin", "https://evil.test")], false),
        (&[], false),
    ] {
        let r = request(gw.http(), "cors.example.com", "/api", headers)
            .await
            .unwrap();
        assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
        assert_headers(
            &r,
            &[
                ("access-control-allow-origin", allowed.then_some(origin)),
                (
                    "access-control-allow-credentials",
                    allowed.then_some("true"),
                ),
                (
                    "access-control-expose-headers",
                    allowed.then_some("X-Total"),
                ),
            ],
        );
    }

    // The defaults: any origin, nginx's methods, headers and max-age; with
    // `*`, credentials are not allowed (browsers refuse nginx's `*` with them).
    let any = "https://whoever.test";
    let r = preflight(gw.http(), "any.example.com", any, "PATCH").await;
    assert_eq!((r.status, r.backend()), (200, ""), "{r:?}");
    let methods = "GET,PUT,POST,DELETE,PATCH,OPTIONS";
    let headers = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,\
                   Cache-Control,Content-Type,Range,Authorization";
    assert_headers(
        &r,
        &[
            ("access-control-allow-origin", Some(any)),
            ("access-control-allow-methods", Some(methods)),
            ("access-control-allow-headers", Some(headers)),
            ("access-control-max-age", Some("1728000")),
            ("access-control-allow-credentials", None),
        ],
    );

    // No CORS asked: preflights reach the backend, no CORS headers.
    let r = preflight(gw.http(), "plain.example.com", origin, "GET").await;
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
    assert_headers(&r, &[("access-control-allow-origin", None)]);
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
}

/// Each header as the response has it (None: absent).
fn assert_headers(r: &Resp, want: &[(&str, Option<&str>)]) {
    for (name, value) in want {
        assert_eq!(r.header(name), *value, "{name}: {r:?}");
    }
}

// ---------- redirects, host names, upstream Host and forwarded headers ----------

/// Every diagnostic as one line: object, field, message.
fn diagnostic_lines(t: &Translation) -> Vec<String> {
    t.diagnostics
        .iter()
        .map(|d| format!("{} {} {}", d.object, d.field, d.message))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_aliases_upstream_host_and_forwarded_headers() {
    let web = ProtoBackend::http1("web").await;
    let other = ProtoBackend::http1("other").await;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let (pr, prc, tr, trc) = (
        n("permanent-redirect"),
        n("permanent-redirect-code"),
        n("temporal-redirect"),
        n("temporal-redirect-code"),
    );
    let (www, alias) = (n("from-to-www-redirect"), n("server-alias"));
    let (vhost, prefix) = (n("upstream-vhost"), n("x-forwarded-prefix"));
    let ing = host_ingress;
    let yaml = [
        local_service_yaml("shop", "web", &[web.addr.port()]),
        local_service_yaml("shop", "other", &[other.addr.port()]),
        // Older Ingresses own these hosts: an alias or www redirect of a
        // younger one must not take them over.
        ing("owner", 0, &[], "www.taken.test", "other"),
        ing("owner2", 1, &[], "other.example.com", "other"),
        ing(
            "moved",
            2,
            &[(&pr, "https://new.example.com/landing")],
            "moved.example.com",
            "web",
        ),
        ing(
            "moved308",
            3,
            &[(&pr, "https://new.example.com$request_uri"), (&prc, "308")],
            "moved308.example.com",
            // The backend is not used: not even resolved.
            "ghost",
        ),
        ing(
            "temp",
            4,
            &[(&tr, "http://tmp.example.com:8080/down")],
            "temp.example.com",
            "web",
        ),
        ing(
            "temp307",
            5,
            &[(&tr, "https://tmp.example.com/down?x=1"), (&trc, "307")],
            "temp307.example.com",
            "web",
        ),
        ing("apex", 6, &[(&www, "true")], "shop.test", "web"),
        ing("wwwfirst", 7, &[(&www, "true")], "www.blog.test", "web"),
        ing("taken", 8, &[(&www, "true")], "taken.test", "web"),
        ing(
            "aliased",
            9,
            &[(&alias, "alias.example.com, other.example.com")],
            "main.example.com",
            "web",
        ),
        ing(
            "vhost",
            10,
            &[(&vhost, "internal.example.com"), (&prefix, "/app")],
            "vhost.example.com",
            "web",
        ),
        ing("plain", 11, &[], "plain.example.com", "web"),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    let diags = diagnostic_lines(&t);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    for words in [
        [
            "shop/taken",
            "from-to-www-redirect",
            "www.taken.test",
            "shop/owner",
        ],
        [
            "shop/aliased",
            "server-alias",
            "other.example.com",
            "shop/owner2",
        ],
    ] {
        assert!(
            diags.iter().any(|d| words.iter().all(|w| d.contains(w))),
            "{words:?}: {diags:#?}"
        );
    }
    let gw = Gateway::start("redirects", &yaml).await;
    // (host, path, status, Location)
    for (host, path, status, location) in [
        // permanent-redirect: exactly its URL (no path or query of the request).
        (
            "moved.example.com",
            "/x?y=1",
            301,
            "https://new.example.com/landing",
        ),
        // ...with $request_uri: the request's path and query; its own code.
        (
            "moved308.example.com",
            "/a/b?c=d",
            308,
            "https://new.example.com/a/b?c=d",
        ),
        // temporal-redirect: 302, or its code; a port and a query of the URL kept.
        (
            "temp.example.com",
            "/x?y=1",
            302,
            "http://tmp.example.com:8080/down",
        ),
        (
            "temp307.example.com",
            "/x?y=1",
            307,
            "https://tmp.example.com/down?x=1",
        ),
        // from-to-www-redirect, both ways: 308, path and query kept.
        ("www.shop.test", "/p?q=1", 308, "http://shop.test/p?q=1"),
        ("blog.test", "/x", 308, "http://www.blog.test/x"),
    ] {
        let r = get(gw.http(), host, path).await;
        assert_eq!(
            (r.status, r.header("location")),
            (status, Some(location)),
            "{host}{path}: {r:?}"
        );
    }
    // The rule hosts themselves are served.
    assert_eq!(get(gw.http(), "shop.test", "/p").await.backend(), "web");
    assert_eq!(get(gw.http(), "www.blog.test", "/x").await.backend(), "web");
    // A host another Ingress serves is not taken over.
    let r = get(gw.http(), "www.taken.test", "/").await;
    assert_eq!((r.status, r.backend()), (200, "other"), "{r:?}");
    assert_eq!(get(gw.http(), "taken.test", "/").await.backend(), "web");

    // server-alias: served by the same routes; another Ingress's host stays its.
    for (host, backend) in [
        ("main.example.com", "web"),
        ("alias.example.com", "web"),
        ("other.example.com", "other"),
    ] {
        let r = get(gw.http(), host, "/p").await;
        assert_eq!((r.status, r.backend()), (200, backend), "{host}: {r:?}");
    }

    // upstream-vhost and x-forwarded-prefix as the backend sees them, and the
    // X-Forwarded-* headers nginx always sends (never the client's own).
    let forged = [
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded-port", "1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-prefix", "/forged"),
    ];
    let r = request(gw.http(), "vhost.example.com", "/p", &forged)
        .await
        .unwrap();
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
    for want in [
        "host=internal.example.com",
        "x-forwarded-host=vhost.example.com",
        "x-forwarded-port=80",
        "x-forwarded-proto=http",
        "x-forwarded-prefix=/app",
    ] {
        assert!(r.body.contains(want), "{want}: {r:?}");
    }
    let r = request(gw.http(), "plain.example.com", "/p", &forged[..3])
        .await
        .unwrap();
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
    for want in [
        "host=plain.example.com",
        "x-forwarded-host=plain.example.com",
        "x-forwarded-port=80",
        "x-forwarded-proto=http",
    ] {
        assert!(r.body.contains(want), "{want}: {r:?}");
    }
    assert!(!r.body.contains("x-forwarded-prefix"), "{r:?}");
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
}

// ---------- client certificates and TLS passthrough ----------

/// A client certificate signed by `p`'s CA.
fn client_cert(p: &Pki) -> ClientCert {
    (vec![p.leaf.clone()], p.leaf_key.clone())
}

/// The CA of `p`, to trust.
fn ca_der(p: &Pki) -> CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(p.ca_pem.as_bytes()).unwrap()
}

/// A CA Secret (`ca.crt`, `ca.crl`) whose CRL revokes the second of two
/// client certificates it signed: (Secret YAML, good, revoked).
fn revoking_ca(secret: &str) -> (String, ClientCert, ClientCert) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "revoking test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf = |serial: u64| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![format!("c{serial}.test")]).unwrap();
        params.serial_number = Some(serial.into());
        let cert = params.signed_by(&key, &ca).unwrap();
        (vec![cert.der().clone()], key.serialize_der())
    };
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2024, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: 1u64.into(),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: 2u64.into(),
            revocation_time: rcgen::date_time_ymd(2024, 1, 1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca)
    .unwrap();
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: shop}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: \"\"\n  tls.key: \"\"\n  ca.crt: |\n{}  ca.crl: |\n{}---\n",
        indent(&ca.pem()),
        indent(&crl.pem().unwrap())
    );
    (yaml, leaf(3), leaf(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_verified_passed_upstream_and_passthrough_reaches_the_backend() {
    let web = ProtoBackend::http1("web").await;
    // The passthrough backend terminates TLS itself, with its own certificate.
    let pass_pki = pki("pass.example.com");
    let pass = ProtoBackend::tls(
        "pass",
        vec![pass_pki.leaf.clone()],
        pass_pki.leaf_key.clone(),
    )
    .await;
    let clients = pki("client.example.com");
    let stranger = pki("stranger.example.com");
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let (secret, verify, pass_cert, page, passthrough) = (
        n("auth-tls-secret"),
        n("auth-tls-verify-client"),
        n("auth-tls-pass-certificate-to-upstream"),
        n("auth-tls-error-page"),
        n("ssl-passthrough"),
    );
    let hosts = [
        "mtls.example.com",
        "opt.example.com",
        "page.example.com",
        "term.example.com",
        "crl.example.com",
    ];
    let (revoking, good, revoked) = revoking_ca("revoking-ca");
    let certs: Vec<Cert> = hosts.iter().map(|h| cert(h)).collect();
    let tls_ingress = |name: &str, age: u32, ann: &[(&str, &str)], i: usize| {
        let secret = format!("{name}-tls");
        [
            tls_secret_yaml(&secret, &certs[i]),
            ingress_yaml(
                name,
                age,
                ann,
                &[(hosts[i], "/", "Prefix", "web")],
                Some((hosts[i], &secret)),
            ),
        ]
        .concat()
    };
    let yaml = [
        local_service_yaml("shop", "web", &[web.addr.port()]),
        local_service_yaml("shop", "pass", &[pass.addr.port()]),
        ca_secret_yaml("client-ca", &clients),
        tls_ingress(
            "mtls",
            0,
            &[
                (&secret, "shop/client-ca"),
                (&verify, "on"),
                (&pass_cert, "true"),
            ],
            0,
        ),
        tls_ingress(
            "opt",
            1,
            &[(&secret, "client-ca"), (&verify, "optional")],
            1,
        ),
        tls_ingress(
            "page",
            2,
            &[
                (&secret, "client-ca"),
                (&page, "https://errors.example.com/cert"),
            ],
            2,
        ),
        tls_ingress("term", 3, &[], 3),
        revoking,
        tls_ingress("crl", 5, &[(&secret, "revoking-ca")], 4),
        ingress_yaml(
            "pass",
            4,
            &[(&passthrough, "true")],
            &[
                ("pass.example.com", "/", "Prefix", "pass"),
                ("pass.example.com", "/other", "Prefix", "web"),
            ],
            None,
        ),
    ]
    .concat();
    let (t, _) = translated(&yaml);
    let diags = diagnostic_lines(&t);
    // Only the passthrough's second path, which TLS does not use.
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(diags[0].contains("not used for TLS"), "{diags:#?}");
    let gw = Gateway::start("client-certs", &yaml).await;
    let https = gw.https();
    let get = |host: &'static str, i: Option<usize>, client: Option<ClientCert>| {
        let root = match i {
            Some(i) => certs[i].der.clone(),
            None => ca_der(&pass_pki),
        };
        async move { https_get_as(https, host, &root, "/p", ALL_TLS, client.as_ref()).await }
    };
    let ok = Some(client_cert(&clients));
    let other = Some(client_cert(&stranger));

    // `on`: no certificate → nginx's 400; the CA's → 200 with the
    // certificate and its subject sent upstream; another CA's → 400.
    let r = get(hosts[0], Some(0), None)
        .await
        .expect("handshake completes");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("No required SSL certificate was sent"),
        "{}",
        r.body
    );
    let r = get(hosts[0], Some(0), ok.clone()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("backend=web"), "{}", r.body);
    assert!(
        r.body
            .contains("ssl-client-cert=-----BEGIN%20CERTIFICATE-----"),
        "{}",
        r.body
    );
    assert!(r.body.contains("ssl-client-subject-dn="), "{}", r.body);
    let r = get(hosts[0], Some(0), other.clone()).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("The SSL certificate error"), "{}", r.body);
    // A forged header never reaches the backend.
    let tls = tls_connect_as(https, hosts[0], &certs[0].der, ALL_TLS, ok.as_ref())
        .await
        .unwrap();
    let mut c = HttpConn::handshake(tls).await.unwrap();
    let r = c
        .get_with(hosts[0], "/p", &[("ssl-client-cert", "forged")])
        .await
        .unwrap();
    assert!(!r.body.contains("forged"), "{}", r.body);
    // Plain HTTP to the host is sent to HTTPS.
    let r = get_http(gw.http(), hosts[0]).await;
    assert_eq!(r.status, 308);

    // `optional`: none is fine (and nothing is passed); a bad one is 400.
    let r = get(hosts[1], Some(1), None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("ssl-client-cert"), "{}", r.body);
    let r = get(hosts[1], Some(1), ok.clone()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(hosts[1], Some(1), other.clone()).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);

    // The error page: a redirect instead of the 400.
    let r = get(hosts[2], Some(2), None).await.unwrap();
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some("https://errors.example.com/cert")
    );
    let r = get(hosts[2], Some(2), ok.clone()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // A request naming the `on` host over another host's connection gets
    // 421, as nginx: over a host without client certificates, and over one
    // whose (valid) certificate was checked with other settings.
    for (sni, client) in [(3, None), (1, ok.as_ref())] {
        let tls = tls_connect_as(https, hosts[sni], &certs[sni].der, ALL_TLS, client)
            .await
            .unwrap();
        let mut c = HttpConn::handshake(tls).await.unwrap();
        let r = c.get(hosts[0], "/p").await.unwrap();
        assert_eq!(r.status, 421, "{}", r.body);
        // The connection's own host is served.
        let r = c.get(hosts[sni], "/p").await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.body.contains("sni"), "{}", r.body);
    }

    // `ca.crl`: the revoked certificate is refused, its sibling served.
    let r = get(hosts[4], Some(4), Some(revoked)).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let r = get(hosts[4], Some(4), Some(good)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // Passthrough: the client verifies the backend's own certificate (Envoy
    // has no key for it) and the backend answers over that TLS.
    let r = get("pass.example.com", None, None)
        .await
        .expect("backend's certificate");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("backend=pass"), "{}", r.body);
    assert!(r.body.contains("path=/p"), "{}", r.body);
    // The terminated host on the same listener still works, without certificates.
    let r = get(hosts[3], Some(3), None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("backend=web"), "{}", r.body);
}

async fn get_http(addr: SocketAddr, host: &str) -> Resp {
    get(addr, host, "/p").await
}
