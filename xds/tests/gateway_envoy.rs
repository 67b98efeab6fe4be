//! Gateway API translation through a real Envoy: a Gateway with two HTTP
//! listeners and HTTPRoutes with header, query and method matches, a
//! redirect, header modifiers, a weighted split and a split with an
//! unresolved backend, served over ADS and checked with real requests.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::objects::local_service_yaml;
use testkit::{wait_until, AdsFixture, Envoy, HttpConn, HttpResponse};
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::{translate_gateway, GatewayApiObjects, GatewayApiOptions, Snapshot};

/// A backend answering `backend=<id> path=<path>` and, one per line, every
/// request header it received as `<name>: <value>`.
async fn echo_backend(id: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let mut body = format!(
                        "backend={id} path={}\n",
                        req.uri().path_and_query().map_or("/", |p| p.as_str())
                    );
                    for (name, value) in req.headers() {
                        body.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
                    }
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn objects(ports: (u16, u16), backends: &BTreeMap<&str, SocketAddr>) -> GatewayApiObjects {
    let (a, b) = ports;
    let mut yaml = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: infra}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra, generation: 1}}
spec:
  gatewayClassName: tenant-gateway
  listeners:
  - {{name: a, port: {a}, protocol: HTTP}}
  - {{name: b, port: {b}, protocol: HTTP, hostname: b.example.com}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: main, namespace: infra}}
spec:
  parentRefs: [{{name: gw, sectionName: a}}]
  rules:
  - backendRefs: [{{name: v1, port: 80}}]
  - matches: [{{path: {{value: /h}}, headers: [{{name: X-Version, value: two}}]}}]
    backendRefs: [{{name: v2, port: 80}}]
  - matches: [{{path: {{value: /q}}, queryParams: [{{name: animal, value: whale}}]}}]
    backendRefs: [{{name: v3, port: 80}}]
  - matches: [{{path: {{value: /m}}, method: POST}}]
    backendRefs: [{{name: v2, port: 80}}]
  - matches: [{{path: {{type: Exact, value: /redirect}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, hostname: example.org, statusCode: 301}}}}]
  - matches: [{{path: {{type: Exact, value: /redirect-host}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{hostname: example.org}}}}]
  - matches: [{{path: {{value: /prefix-redirect}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}}}}}]
  - matches: [{{path: {{value: /mod}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: X-Set, value: set-value}}]
        add: [{{name: X-Add, value: added}}]
        remove: [X-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{{name: X-Response, value: from-gateway}}]
    backendRefs: [{{name: v1, port: 80}}]
  - matches: [{{path: {{value: /split}}}}]
    backendRefs: [{{name: v1, port: 80, weight: 1}}, {{name: v2, port: 80, weight: 1}}]
  - matches: [{{path: {{value: /broken-split}}}}]
    backendRefs: [{{name: v1, port: 80, weight: 1}}, {{name: missing, port: 80, weight: 1}}]
  - matches: [{{path: {{value: /rewrite}}}}]
    filters: [{{type: URLRewrite, urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}}}]
    backendRefs: [{{name: v2, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: on-b, namespace: infra}}
spec:
  parentRefs: [{{name: gw, sectionName: b}}]
  rules:
  - backendRefs: [{{name: v3, port: 80}}]
---
"#
    );
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
    let ports = (testkit::free_port(), testkit::free_port());
    let objects = objects(ports, &backends);
    let options = GatewayApiOptions {
        bind_address: "127.0.0.1".into(),
        tenant: "acme".into(),
    };
    let t = translate_gateway(&objects, &options);
    assert_eq!(t.resources.consistency_problems(), Vec::<String>::new());
    let main = t.routes.iter().find(|r| r.name == "main").unwrap();
    assert_eq!(main.condition("Accepted").unwrap().status, "True");
    assert_eq!(
        main.condition("ResolvedRefs").unwrap().reason,
        "BackendNotFound"
    );

    let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
    let bootstrap = ads_bootstrap("gw", "gw", &ads.socket.display().to_string(), 0, None);
    let envoy = Envoy::start_with_bootstrap("gw", &to_yaml(&bootstrap).unwrap()).await;
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
