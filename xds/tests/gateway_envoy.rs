//! Gateway API translation through a real Envoy: a Gateway with two HTTP
//! listeners and HTTPRoutes with header, query and method matches, a
//! redirect, header modifiers, a weighted split and a split with an
//! unresolved backend, served over ADS and checked with real requests.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::tls::{cert, tls_connect, tls_secret_yaml, Cert, ALL_TLS};
use testkit::objects::local_service_yaml;
use testkit::{wait_until, AdsFixture, Envoy, HttpConn, HttpResponse};
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::{translate_gateway, GatewayApiObjects, GatewayApiOptions, Snapshot};

/// Answers every request on `stream` with `backend=<id> path=<path>` and,
/// one per line, every request header it received as `<name>: <value>`.
async fn serve_echo<S>(stream: S, id: &'static str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let mut body = format!(
            "backend={id} path={}\n",
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        for (name, value) in req.headers() {
            body.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body)))) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

/// A plain-HTTP echo backend.
async fn echo_backend(id: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_echo(stream, id));
        }
    });
    addr
}

/// An echo backend behind TLS with `cert` (for passthrough).
async fn tls_echo_backend(id: &'static str, cert: &Cert) -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(cert.key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_echo(tls, id).await;
                }
            });
        }
    });
    addr
}

/// A tenant's Gateway fleet: its Envoy fed over ADS with the production bootstrap.
async fn start_envoy(t: &xds::GatewayTranslation) -> (AdsFixture, Envoy) {
    assert_eq!(t.resources.consistency_problems(), Vec::<String>::new());
    let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
    let bootstrap = ads_bootstrap("gw", "gw", &ads.socket.display().to_string(), 0, None);
    let envoy = Envoy::start_with_bootstrap("gw", &to_yaml(&bootstrap).unwrap()).await;
    (ads, envoy)
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

/// The namespace `infra` and the Gateway `gw` in it with these listeners
/// (YAML list items).
fn gateway_yaml(listeners: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: infra}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra, generation: 1}}
spec:
  gatewayClassName: tenant-gateway
  listeners:{listeners}
---
"
    )
}

/// Extra headers of a request.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn objects(ports: (u16, u16, u16), backends: &BTreeMap<&str, SocketAddr>) -> GatewayApiObjects {
    let (a, b, tcp) = ports;
    let mut yaml = gateway_yaml(&format!(
        "
  - {{name: a, port: {a}, protocol: HTTP}}
  - {{name: b, port: {b}, protocol: HTTP, hostname: b.example.com}}
  - {{name: tcp, port: {tcp}, protocol: TCP}}"
    ));
    yaml += r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: a}]
  rules:
  - backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {value: /h}, headers: [{name: X-Version, value: two}]}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {value: /q}, queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: v3, port: 80}]
  - matches: [{path: {value: /m}, method: POST}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {type: Exact, value: /redirect}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: example.org, statusCode: 301}}]
  - matches: [{path: {type: Exact, value: /redirect-port-80}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, port: 80}}]
  - matches: [{path: {type: Exact, value: /redirect-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]
  - matches: [{path: {value: /prefix-redirect}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
  - matches: [{path: {value: /mod}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set-value}]
        add: [{name: X-Add, value: added}]
        remove: [X-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Response, value: from-gateway}]
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {value: /split}}]
    backendRefs: [{name: v1, port: 80, weight: 1}, {name: v2, port: 80, weight: 1}]
  - matches: [{path: {value: /broken-split}}]
    backendRefs: [{name: v1, port: 80, weight: 1}, {name: missing, port: 80, weight: 1}]
  - matches: [{path: {value: /cors}}]
    filters: [{type: CORS, cors: {allowOrigins: ['https://*.bar.com'], allowMethods: [GET, OPTIONS], allowHeaders: [x-header-1], exposeHeaders: [x-header-3], allowCredentials: true, maxAge: 3600}}]
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {value: /rewrite}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: v2, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: on-b, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: b}]
  rules:
  - backendRefs: [{name: v3, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: tcp, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: tcp}]
  rules: [{backendRefs: [{name: v2, port: 80}]}]
---
"#;
    for (id, addr) in backends {
        yaml += &local_service_yaml("infra", id, &[addr.port()]);
    }
    GatewayApiObjects::from_yaml(&yaml).unwrap()
}

struct Answer {
    status: u16,
    backend: String,
    path: String,
    response: HttpResponse,
}

impl Answer {
    /// A request header as the backend received it.
    fn seen(&self, name: &str) -> Vec<String> {
        self.response
            .body
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
            .collect()
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), async {
        HttpConn::connect(addr)
            .await
            .unwrap()
            .send(req)
            .await
            .unwrap()
    })
    .await
    .expect("answer within 5s");
    let first = response.body.lines().next().unwrap_or("").to_string();
    let backend = first
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches("backend=")
        .to_string();
    let path = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("path="))
        .unwrap_or("")
        .to_string();
    Answer {
        status: response.status,
        backend,
        path,
        response,
    }
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> Answer {
    send(addr, Method::GET, host, path, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_two_listeners_routes_as_the_spec_says_through_envoy() {
    let mut backends = BTreeMap::new();
    for id in ["v1", "v2", "v3"] {
        backends.insert(id, echo_backend(id).await);
    }
    let ports = (
        testkit::free_port(),
        testkit::free_port(),
        testkit::free_port(),
    );
    let objects = objects(ports, &backends);
    let t = translate_gateway(&objects, &options());
    let main = t.routes.iter().find(|r| r.name == "main").unwrap();
    assert_eq!(main.condition("Accepted").unwrap().status, "True");
    assert_eq!(
        main.condition("ResolvedRefs").unwrap().reason,
        "BackendNotFound"
    );

    let (_ads, envoy) = start_envoy(&t).await;
    let a = SocketAddr::from(([127, 0, 0, 1], ports.0));
    let b = SocketAddr::from(([127, 0, 0, 1], ports.1));
    let up = wait_until(Duration::from_secs(20), || async {
        let ok_a = matches!(
            tokio::time::timeout(Duration::from_secs(2), async { HttpConn::connect(a).await.ok()?.get("x", "/").await.ok() }).await,
            Ok(Some(r)) if r.status == 200
        );
        let ok_b = matches!(
            tokio::time::timeout(Duration::from_secs(2), async { HttpConn::connect(b).await.ok()?.get("b.example.com", "/").await.ok() }).await,
            Ok(Some(r)) if r.status == 200
        );
        ok_a && ok_b
    })
    .await;
    assert!(
        up,
        "gateway listeners did not come up; log:\n{}",
        envoy.log()
    );

    // The TCP listener forwards whole connections (here an HTTP exchange).
    let tcp = SocketAddr::from(([127, 0, 0, 1], ports.2));
    let r = HttpConn::connect(tcp)
        .await
        .unwrap()
        .get("whatever", "/any")
        .await
        .unwrap();
    assert!(r.body.starts_with("backend=v2 path=/any"), "{}", r.body);
    // Listener b answers only its hostname, with its own routes.
    assert_eq!(get(b, "b.example.com", "/h").await.backend, "v3");
    assert_eq!(get(b, "other.example.com", "/").await.status, 404);
    // Listener a: matches.
    assert_eq!(get(a, "any.test", "/h").await.backend, "v1");
    assert_eq!(
        send(a, Method::GET, "any.test", "/h", &[("x-version", "two")])
            .await
            .backend,
        "v2"
    );
    assert_eq!(get(a, "any.test", "/q?animal=whale").await.backend, "v3");
    assert_eq!(get(a, "any.test", "/q?animal=dolphin").await.backend, "v1");
    assert_eq!(
        send(a, Method::POST, "any.test", "/m", &[]).await.backend,
        "v2"
    );
    assert_eq!(get(a, "any.test", "/m").await.backend, "v1");
    // Redirects: the scheme's well-known port is left out; without a scheme
    // the listener's port is kept.
    let r = get(a, "any.test", "/redirect").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.response.header("location"),
        Some("https://example.org/redirect")
    );
    // A request's own port is not kept when the redirect's is the scheme's default.
    let with_port = format!("any.test:{}", ports.0);
    let r = get(a, &with_port, "/redirect").await;
    assert_eq!(
        r.response.header("location"),
        Some("https://example.org/redirect")
    );
    let r = get(a, &with_port, "/redirect-port-80").await;
    assert_eq!(
        r.response.header("location"),
        Some("http://example.org/redirect-port-80")
    );
    let r = get(a, "any.test", "/redirect-host").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.response.header("location"),
        Some(format!("http://example.org:{}/redirect-host", ports.0).as_str())
    );
    let r = get(
        a,
        &format!("any.test:{}", ports.0),
        "/prefix-redirect/x?y=1",
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.response.header("location"),
        Some(format!("http://any.test:{}/new/x?y=1", ports.0).as_str())
    );
    // Header modifiers.
    let r = send(
        a,
        Method::GET,
        "any.test",
        "/mod",
        &[
            ("x-add", "original"),
            ("x-remove", "gone"),
            ("x-set", "old"),
        ],
    )
    .await;
    assert_eq!(r.backend, "v1");
    assert_eq!(r.seen("x-set"), ["set-value"]);
    assert_eq!(r.seen("x-add").join(","), "original,added");
    assert!(r.seen("x-remove").is_empty());
    assert_eq!(r.response.header("x-response"), Some("from-gateway"));
    // CORS: a preflight from an allowed origin is answered by the gateway;
    // another origin gets no CORS headers.
    async fn preflight(a: SocketAddr, origin: &str) -> Answer {
        let headers = [("origin", origin), ("access-control-request-method", "GET")];
        send(a, Method::OPTIONS, "any.test", "/cors", &headers).await
    }
    let r = preflight(a, "https://xpto.www.bar.com").await;
    assert!(matches!(r.status, 200 | 204), "{}", r.status);
    let h = |name: &str| r.response.header(name).map(str::to_string);
    assert_eq!(
        h("access-control-allow-origin").as_deref(),
        Some("https://xpto.www.bar.com")
    );
    assert_eq!(
        h("access-control-allow-methods").as_deref(),
        Some("GET,OPTIONS")
    );
    assert_eq!(h("access-control-max-age").as_deref(), Some("3600"));
    assert_eq!(
        h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    // Another origin's preflight is answered by the gateway too (never
    // forwarded), without CORS headers.
    let r = preflight(a, "https://foobar.com").await;
    assert_eq!(r.response.header("access-control-allow-origin"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.backend, "", "a preflight is not forwarded");
    // An OPTIONS request that is no preflight still reaches the backend.
    let r = send(a, Method::OPTIONS, "any.test", "/cors", &[]).await;
    assert_eq!(r.backend, "v1");
    let r = send(
        a,
        Method::GET,
        "any.test",
        "/cors",
        &[("origin", "https://www.bar.com")],
    )
    .await;
    assert_eq!(r.backend, "v1");
    assert_eq!(
        r.response.header("access-control-allow-origin"),
        Some("https://www.bar.com")
    );
    assert_eq!(
        r.response.header("access-control-expose-headers"),
        Some("x-header-3")
    );
    // Prefix rewrite to `/`.
    let r = get(a, "any.test", "/rewrite/deeper").await;
    assert_eq!((r.backend.as_str(), r.path.as_str()), ("v2", "/deeper"));
    // Weighted splits: each half within 25–75% of 100 requests.
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..100 {
        *seen
            .entry(get(a, "any.test", "/split").await.backend)
            .or_default() += 1;
    }
    for id in ["v1", "v2"] {
        let n = seen.get(id).copied().unwrap_or(0);
        assert!((25..=75).contains(&n), "{id} got {n} of 100: {seen:?}");
    }
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    for _ in 0..100 {
        *statuses
            .entry(get(a, "any.test", "/broken-split").await.status)
            .or_default() += 1;
    }
    for status in [200, 500] {
        let n = statuses.get(&status).copied().unwrap_or(0);
        assert!((25..=75).contains(&n), "{status} {n} of 100: {statuses:?}");
    }
    assert_eq!(
        statuses.values().sum::<u32>(),
        100,
        "only 200 and 500: {statuses:?}"
    );
}

/// GET `/` over TLS with this SNI (and Host), trusting only `root`: the
/// answering backend's id, or the error.
async fn tls_get(addr: SocketAddr, sni: &str, root: &Cert) -> Result<String, String> {
    let tls = tls_connect(addr, sni, &root.der, ALL_TLS).await?;
    let mut conn = HttpConn::handshake(tls).await.map_err(|e| e.to_string())?;
    let r = conn.get(sni, "/").await.map_err(|e| e.to_string())?;
    let first = r.body.lines().next().unwrap_or("").to_string();
    Ok(first
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches("backend=")
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_tls_listeners_share_a_port_by_sni_through_envoy() {
    let (ca, cb) = (cert("a.example.com"), cert("b.example.com"));
    let (cp, ct) = (cert("p.pass.example.com"), cert("t.example.com"));
    let v1 = echo_backend("v1").await;
    let v2 = echo_backend("v2").await;
    let p = tls_echo_backend("p", &cp).await;
    let https = testkit::free_port();
    let mut yaml = gateway_yaml(&format!(
        "
  - {{name: a, port: {https}, protocol: HTTPS, hostname: a.example.com, tls: {{certificateRefs: [{{name: a}}]}}}}
  - {{name: b, port: {https}, protocol: HTTPS, hostname: b.example.com, tls: {{certificateRefs: [{{name: b}}]}}}}
  - {{name: pass, port: {https}, protocol: TLS, hostname: '*.pass.example.com', tls: {{mode: Passthrough}}}}
  - {{name: term, port: {https}, protocol: TLS, hostname: t.example.com, tls: {{certificateRefs: [{{name: t}}]}}}}"
    ));
    yaml += r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-a, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: a}]
  rules: [{backendRefs: [{name: v1, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-b, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: b}]
  rules: [{backendRefs: [{name: v2, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: pass, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: pass}]
  hostnames: [p.pass.example.com]
  rules: [{backendRefs: [{name: p, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: term, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: term}]
  hostnames: [t.example.com]
  rules: [{backendRefs: [{name: v1, port: 80}]}]
---
"#;
    yaml += &tls_secret_yaml("infra", "a", &ca);
    yaml += &tls_secret_yaml("infra", "b", &cb);
    yaml += &tls_secret_yaml("infra", "t", &ct);
    for (id, addr) in [("v1", v1), ("v2", v2), ("p", p)] {
        yaml += &local_service_yaml("infra", id, &[addr.port()]);
    }
    let t = translate_gateway(&GatewayApiObjects::from_yaml(&yaml).unwrap(), &options());
    for l in &t.gateway.listeners {
        assert!(l.condition("Programmed").unwrap().is_true(), "{l:?}");
    }
    let (_ads, envoy) = start_envoy(&t).await;
    let https = SocketAddr::from(([127, 0, 0, 1], https));
    let up = wait_until(Duration::from_secs(20), || async {
        tls_get(https, "a.example.com", &ca).await.is_ok()
    })
    .await;
    assert!(up, "HTTPS listener did not come up; log:\n{}", envoy.log());
    assert_eq!(
        tls_get(https, "a.example.com", &ca).await.as_deref(),
        Ok("v1")
    );
    // b's chain presents b's certificate and routes to b's backend.
    assert_eq!(
        tls_get(https, "b.example.com", &cb).await.as_deref(),
        Ok("v2")
    );
    assert!(
        tls_get(https, "b.example.com", &ca).await.is_err(),
        "a's certificate is not b's"
    );
    // On the same port, by SNI: passthrough (the backend's own certificate)
    // and TLS terminated with the listener's certificate, then TCP to a
    // plain backend; other names are refused.
    let passed = wait_until(Duration::from_secs(10), || async {
        tls_get(https, "p.pass.example.com", &cp).await.is_ok()
    })
    .await;
    assert!(passed, "passthrough did not come up; log:\n{}", envoy.log());
    assert_eq!(
        tls_get(https, "p.pass.example.com", &cp).await.as_deref(),
        Ok("p")
    );
    assert_eq!(
        tls_get(https, "t.example.com", &ct).await.as_deref(),
        Ok("v1")
    );
    assert!(tls_get(https, "q.example.com", &cp).await.is_err());
}

/// An HTTP/2 cleartext (h2c) backend answering `backend=<id> path=<path>`,
/// as a gRPC server's transport would carry it.
async fn h2c_backend(id: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = format!("backend={id} path={}", req.uri().path());
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    addr
}

/// A gRPC-shaped request (HTTP/2 prior knowledge, POST, `application/grpc`):
/// the answering backend's body, `status N` or `grpc-status N`.
async fn grpc_call(addr: SocketAddr, host: &str, method: &str, headers: &[(&str, &str)]) -> String {
    use http_body_util::BodyExt;
    let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{host}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        send.send_request(req.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("answer within 5s")
    .unwrap();
    if response.status() != 200 {
        return format!("status {}", response.status());
    }
    // Envoy answers a gRPC request it cannot route as gRPC: trailers only.
    if let Some(code) = response.headers().get("grpc-status") {
        return format!("grpc-status {}", code.to_str().unwrap_or("?"));
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_routes_match_service_method_and_headers_over_h2c_through_envoy() {
    let g1 = h2c_backend("g1").await;
    let g2 = h2c_backend("g2").await;
    let port = testkit::free_port();
    let mut yaml = gateway_yaml(&format!(
        "\n  - {{name: http, port: {port}, protocol: HTTP}}"
    ));
    yaml += r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}}]
    backendRefs: [{name: g1, port: 80}]
  - matches: [{method: {service: echo.Echo}, headers: [{name: X-Version, value: two}]}]
    backendRefs: [{name: g2, port: 80}]
  - matches: [{method: {type: RegularExpression, service: 'echo\.v[0-9]+\.Echo', method: 'Get.*'}}]
    backendRefs: [{name: g2, port: 80}]
---
"#;
    for (id, addr) in [("g1", g1), ("g2", g2)] {
        yaml += &local_service_yaml("infra", id, &[addr.port()]);
    }
    let t = translate_gateway(&GatewayApiObjects::from_yaml(&yaml).unwrap(), &options());
    assert!(
        t.routes[0].condition("Accepted").unwrap().is_true(),
        "{:?}",
        t.routes
    );
    let (_ads, envoy) = start_envoy(&t).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let up = wait_until(Duration::from_secs(20), || async {
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await
            .is_ok_and(|c| c.is_ok())
    })
    .await;
    assert!(up, "listener did not come up; log:\n{}", envoy.log());
    let cases: [(&str, Headers<'_>, &str); 6] = [
        ("/echo.Echo/Say", &[], "backend=g1 path=/echo.Echo/Say"),
        (
            "/echo.Echo/Say",
            &[("x-version", "two")],
            "backend=g1 path=/echo.Echo/Say",
        ),
        (
            "/echo.Echo/Other",
            &[("x-version", "two")],
            "backend=g2 path=/echo.Echo/Other",
        ),
        // No route: UNIMPLEMENTED (Envoy's gRPC form of 404).
        ("/echo.Echo/Other", &[], "grpc-status 12"),
        (
            "/echo.v2.Echo/GetThing",
            &[],
            "backend=g2 path=/echo.v2.Echo/GetThing",
        ),
        ("/echo.v2.Echo/PutThing", &[], "grpc-status 12"),
    ];
    for (method, headers, want) in cases {
        let mut got = String::new();
        // The first calls may race the listener's route configuration.
        for _ in 0..50 {
            got = grpc_call(addr, "grpc.example.com", method, headers).await;
            if got == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(got, want, "{method} {headers:?}");
    }
}

/// Input Envoy would refuse if it reached the configuration: each value is
/// refused by translation, the rest must still be a configuration Envoy takes.
const HOSTILE: &str = r#"
  - {name: http, port: 18080, protocol: HTTP}
  - {name: bad-host, port: 18081, protocol: HTTP, hostname: 'Bad_Host'}
  - {name: https, port: 18443, protocol: HTTPS, tls: {certificateRefs: [{name: missing}]}}
  - {name: udp, port: 18053, protocol: UDP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hostile, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: ['Not A Host', '*', ok.example.com, '*.example.com']
  rules:
  - matches: [{path: {type: RegularExpression, value: '/a{1000}'}}, {headers: [{name: x, type: RegularExpression, value: '(?<=x)'}]}]
    backendRefs: [{name: v1, port: 80}]
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: ':path', value: /x}], remove: [host]}}]
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {value: /crlf}}]
    filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-a, value: "a\r\nb"}]}}]
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {value: /weights}}]
    backendRefs: [{name: v1, port: 80, weight: 2000000000}, {name: nope, port: 80, weight: 2000000000}]
  - matches: [{path: {value: /percent}, queryParams: [{name: '%x%', value: '%y%'}]}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-p, value: '%REQ(:path)%'}]}}, {type: RequestMirror, requestMirror: {backendRef: {name: v1, port: 80}, fraction: {numerator: 7, denominator: 0}}}]
    backendRefs: [{name: v1, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: ':authority', value: x}]}}]}]
  - matches: [{path: {value: /cors}}]
    filters: [{type: CORS, cors: {allowOrigins: ['*', 'https://*.a.com', 'http://(x).b'], allowMethods: ['*'], maxAge: -5}}]
    timeouts: {request: 99999h, backendRequest: 0s}
    backendRefs: [{name: v1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirects, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {value: /r}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: 'a b', port: 70000, statusCode: 999, path: {type: ReplacePrefixMatch, replacePrefixMatch: '\1'}}}]
---
"#;

#[test]
fn hostile_gateway_input_still_gives_a_configuration_envoy_validates() {
    let mut yaml = gateway_yaml(HOSTILE);
    yaml += &local_service_yaml("infra", "v1", &[18999]);
    let t = translate_gateway(&GatewayApiObjects::from_yaml(&yaml).unwrap(), &options());
    assert_eq!(t.resources.consistency_problems(), Vec::<String>::new());
    assert!(
        !t.resources.listeners.is_empty(),
        "the valid part is served"
    );
    let bootstrap = xds::bootstrap::static_bootstrap(&t.resources, "gw", "gw", 0);
    testkit::assert_envoy_accepts(&to_yaml(&bootstrap).unwrap());
}

/// The live sequence of the conformance suite: a Gateway serves a forwarding
/// route, then that route goes and routes with no backend to forward to (a
/// redirect, an unresolved backend) arrive — the fleet must serve them
/// (it answered 404 in the cluster: the update never took effect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_without_a_forwarding_backend_replace_forwarding_ones_over_ads() {
    let v1 = echo_backend("v1").await;
    let port = testkit::free_port();
    let gateway = gateway_yaml(&format!(
        "\n  - {{name: http, port: {port}, protocol: HTTP}}"
    ));
    let service = local_service_yaml("infra", "v1", &[v1.port()]);
    let forwarding = format!(
        "{gateway}
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: fwd, namespace: infra}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: v1, port: 80}}]}}]
---
{service}"
    );
    let t = translate_gateway(
        &GatewayApiObjects::from_yaml(&forwarding).unwrap(),
        &options(),
    );
    let (ads, envoy) = start_envoy(&t).await;
    let a = SocketAddr::from(([127, 0, 0, 1], port));
    let up = wait_until(Duration::from_secs(20), || async {
        matches!(
            tokio::time::timeout(Duration::from_secs(2), async { HttpConn::connect(a).await.ok()?.get("x", "/").await.ok() }).await,
            Ok(Some(r)) if r.status == 200
        )
    })
    .await;
    assert!(up, "gateway did not come up; log:\n{}", envoy.log());

    let no_backends = format!(
        "{gateway}
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: redirect, namespace: infra}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{value: /scheme}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https}}}}]
  - matches: [{{path: {{value: /missing}}}}]
    backendRefs: [{{name: ghost, port: 80}}]
---
{service}"
    );
    let t = translate_gateway(
        &GatewayApiObjects::from_yaml(&no_backends).unwrap(),
        &options(),
    );
    assert!(t.resources.clusters.is_empty(), "no cluster is needed");
    ads.push(Snapshot::from(&t.resources));
    let served = wait_until(Duration::from_secs(10), || async {
        get(a, "x", "/scheme").await.status == 302
    })
    .await;
    assert!(
        served,
        "the redirect was not served (got {}); log:\n{}",
        get(a, "x", "/scheme").await.status,
        envoy.log()
    );
    assert_eq!(get(a, "x", "/missing").await.status, 500);
    assert_eq!(get(a, "x", "/").await.status, 404, "the old route is gone");

    // Envoy dropped its EDS watch with the last cluster: later changes,
    // clusters and endpoints again, still reach it.
    let t = translate_gateway(
        &GatewayApiObjects::from_yaml(&forwarding).unwrap(),
        &options(),
    );
    ads.push(Snapshot::from(&t.resources));
    let back = wait_until(Duration::from_secs(10), || async {
        get(a, "x", "/").await.status == 200
    })
    .await;
    assert!(
        back,
        "the forwarding route did not come back; log:\n{}",
        envoy.log()
    );
    assert_eq!(get(a, "x", "/").await.backend, "v1");
    assert_eq!(
        get(a, "x", "/scheme").await.status,
        200,
        "the redirect is gone"
    );
}
