//! The ingress-nginx annotations of issue 13 item 7 through a real Envoy:
//! mirroring, limit-connections, the rate-limit allowlist, the retry
//! deadline, session-cookie attributes, canary by header pattern and
//! service-upstream, each checked with real requests against local backends.

mod support;

use std::time::{Duration, Instant};
use support::ingress_gateway::{get, ingress_yaml, request, service_yaml, Gateway};
use testkit::{wait_until, Backend};

fn n(k: &str) -> String {
    format!("nginx.ingress.kubernetes.io/{k}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_target_gets_a_copy_with_its_host_and_the_client_sees_the_primarys_answer() {
    let (web, mirror) = (Backend::start("web").await, Backend::start("mirror").await);
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        service_yaml("shop", "mirror", &[&mirror]),
        ingress_yaml(
            "mirrored",
            0,
            &[
                (
                    &n("mirror-target"),
                    "http://mirror.shop.svc.cluster.local$request_uri",
                ),
                (&n("mirror-host"), "copy.example.com"),
            ],
            &[("shop.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "mirrored-default-host",
            1,
            &[(&n("mirror-target"), "http://mirror.shop")],
            &[("api.example.com", "/", "Prefix", "web")],
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
    let gw = Gateway::start("mirror", &yaml).await;
    let r = get(gw.http(), "shop.example.com", "/items?page=2").await;
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
    let r = get(gw.http(), "api.example.com", "/v1/orders").await;
    assert_eq!((r.status, r.backend()), (200, "web"), "{r:?}");
    get(gw.http(), "plain.example.com", "/not-mirrored").await;
    let seen = wait_until(Duration::from_secs(5), || async {
        mirror.requests().len() >= 2
    })
    .await;
    assert!(seen, "mirror saw {:?}", mirror.requests());
    // Give a stray copy of the unmirrored Ingress time to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut copies: Vec<(String, String)> = mirror
        .requests()
        .iter()
        .map(|r| (r.uri.clone(), r.header("host").unwrap_or("").to_string()))
        .collect();
    copies.sort();
    assert_eq!(
        copies,
        [
            ("/items?page=2".to_string(), "copy.example.com".to_string()),
            ("/v1/orders".to_string(), "mirror.shop".to_string()),
        ]
    );
    // The primary saw each request once, with the client's Host.
    let primary: Vec<String> = web.requests().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(primary, ["/items?page=2", "/v1/orders", "/not-mirrored"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_connections_refuses_a_second_concurrent_request_while_the_first_is_held() {
    let web = Backend::start("web").await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        ingress_yaml(
            "limited",
            0,
            &[(&n("limit-connections"), "1")],
            &[("shop.example.com", "/", "Prefix", "web")],
            None,
        ),
        // The same Service from another Ingress: a limit of its own (none).
        ingress_yaml(
            "unlimited",
            1,
            &[],
            &[("other.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("limit-connections", &yaml).await;
    let addr = gw.http();
    assert_eq!(get(addr, "shop.example.com", "/").await.status, 200);
    let held = tokio::spawn(async move { get(addr, "shop.example.com", "/sleep/2000").await });
    let in_flight = wait_until(Duration::from_secs(5), || async {
        web.requests().iter().any(|r| r.uri == "/sleep/2000")
    })
    .await;
    assert!(in_flight);
    let started = Instant::now();
    let refused = get(addr, "shop.example.com", "/second").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not queued"
    );
    assert_eq!(refused.header("x-envoy-overloaded"), Some("true"));
    assert_eq!(get(addr, "other.example.com", "/").await.status, 200);
    assert_eq!(held.await.unwrap().backend(), "web");
    // Once the first is done, the next is served.
    assert_eq!(get(addr, "shop.example.com", "/third").await.status, 200);
    assert!(!web.requests().iter().any(|r| r.uri == "/second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_allowlist_exempts_its_clients_from_the_rate_limit() {
    let web = Backend::start("web").await;
    // The exempting Ingress also has an access list: one RBAC per-route
    // config with enforced rules and shadow rules.
    let limit = |name: &str, age, host: &str, allow: &str| {
        let mut ann = vec![
            (n("limit-rps"), "1".to_string()),
            (n("limit-burst-multiplier"), "1".to_string()),
            (n("allowlist-source-range"), "127.0.0.0/8".to_string()),
        ];
        if !allow.is_empty() {
            ann.push((n("limit-allowlist"), allow.to_string()));
        }
        let refs: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ingress_yaml(name, age, &refs, &[(host, "/", "Prefix", "web")], None)
    };
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        limit("exempt", 0, "exempt.example.com", "10.0.0.0/8, 127.0.0.0/8"),
        limit("others-exempt", 1, "limited.example.com", "10.0.0.0/8"),
    ]
    .concat();
    let yaml = [
        yaml,
        ingress_yaml(
            "closed",
            2,
            &[
                (&n("limit-rps"), "1"),
                (&n("limit-allowlist"), "127.0.0.0/8"),
                (&n("allowlist-source-range"), "10.0.0.0/8"),
            ],
            &[("closed.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("limit-allowlist", &yaml).await;
    // Exempt from the limit is not exempt from the access list.
    assert_eq!(get(gw.http(), "closed.example.com", "/").await.status, 403);
    let statuses = |host: &'static str| {
        let addr = gw.http();
        async move {
            let mut out = Vec::new();
            for _ in 0..4 {
                out.push(get(addr, host, "/").await.status);
            }
            out
        }
    };
    assert_eq!(statuses("exempt.example.com").await, [200, 200, 200, 200]);
    let limited = statuses("limited.example.com").await;
    assert_eq!(limited[0], 200);
    assert!(limited[1..].contains(&429), "{limited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_next_upstream_timeout_bounds_the_request_with_504() {
    let web = Backend::start("web").await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        ingress_yaml(
            "deadline",
            0,
            &[(&n("proxy-next-upstream-timeout"), "1")],
            &[("shop.example.com", "/", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("retry-timeout", &yaml).await;
    let started = Instant::now();
    let r = get(gw.http(), "shop.example.com", "/sleep/4000").await;
    assert_eq!(r.status, 504, "{r:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        get(gw.http(), "shop.example.com", "/sleep/100")
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_expires_secure_path_and_samesite_are_in_set_cookie() {
    let web = Backend::start("web").await;
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        ingress_yaml(
            "sticky",
            0,
            &[
                (&n("affinity"), "cookie"),
                (&n("session-cookie-name"), "route"),
                (&n("session-cookie-path"), "/app"),
                (&n("session-cookie-expires"), "7200"),
                (&n("session-cookie-secure"), "true"),
                (&n("session-cookie-samesite"), "Lax"),
                (&n("session-cookie-change-on-failure"), "true"),
            ],
            &[("shop.example.com", "/app", "Prefix", "web")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("session-cookie", &yaml).await;
    let r = get(gw.http(), "shop.example.com", "/app/cart").await;
    assert_eq!(r.status, 200);
    let set_cookie = r.header("set-cookie").expect("set-cookie").to_string();
    let mut parts: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    assert!(parts[0].starts_with("route="), "{set_cookie}");
    parts.remove(0);
    parts.sort_unstable();
    assert_eq!(
        parts,
        [
            "HttpOnly",
            "Max-Age=7200",
            "Path=/app",
            "SameSite=Lax",
            "Secure"
        ],
        "{set_cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_by_header_pattern_sends_matching_values_to_the_canary() {
    let (web, canary) = (Backend::start("web").await, Backend::start("canary").await);
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        service_yaml("shop", "canary", &[&canary]),
        ingress_yaml(
            "main",
            0,
            &[],
            &[("shop.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "canary",
            1,
            &[
                (&n("canary"), "true"),
                (&n("canary-by-header"), "X-Version"),
                (&n("canary-by-header-pattern"), "^v2|beta"),
            ],
            &[("shop.example.com", "/", "Prefix", "canary")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("canary-pattern", &yaml).await;
    for (value, want) in [
        (Some("v2"), "canary"),
        (Some("v2.1"), "canary"),
        (Some("my-beta-build"), "canary"),
        (Some("v1"), "web"),
        (Some("xv2"), "web"),
        // The pattern replaces always/never, as in ingress-nginx.
        (Some("always"), "web"),
        (None, "web"),
    ] {
        let headers: Vec<(&str, &str)> = value.iter().map(|v| ("x-version", *v)).collect();
        let r = request(gw.http(), "shop.example.com", "/", &headers)
            .await
            .unwrap();
        assert_eq!(r.backend(), want, "X-Version: {value:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_upstream_goes_to_the_cluster_ip_not_the_endpoints() {
    let (vip, pod) = (
        Backend::start("cluster-ip").await,
        Backend::start("pod").await,
    );
    // The Service's cluster IP and port are where `vip` listens; its
    // EndpointSlice lists `pod`.
    let port = vip.addr.port();
    let svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec:\n  clusterIP: 127.0.0.1\n  ports:\n  - {{name: http, port: {port}}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-0\n  namespace: shop\n  labels: {{kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports:\n- {{name: http, port: {}}}\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\n---\n",
        pod.addr.port()
    );
    let rule = |host| {
        format!(
            "  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: {port}}}}}}}}}\n"
        )
    };
    let ingress = |name: &str, ann: &str, host| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: shop\n  annotations: {{{ann}}}\nspec:\n  rules:\n{}---\n",
            rule(host)
        )
    };
    let yaml = [
        svc,
        ingress(
            "via-cluster-ip",
            "nginx.ingress.kubernetes.io/service-upstream: \"true\"",
            "vip.example.com",
        ),
        ingress("via-endpoints", "", "pod.example.com"),
    ]
    .concat();
    let gw = Gateway::start("service-upstream", &yaml).await;
    assert_eq!(
        get(gw.http(), "vip.example.com", "/").await.backend(),
        "cluster-ip"
    );
    assert_eq!(
        get(gw.http(), "pod.example.com", "/").await.backend(),
        "pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backend_serves_the_paths_whose_service_has_no_ready_endpoint() {
    let (web, fallback) = (
        Backend::start("web").await,
        Backend::start("fallback").await,
    );
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        service_yaml("shop", "empty", &[]),
        service_yaml("shop", "fallback", &[&fallback]),
        ingress_yaml(
            "with-fallback",
            0,
            &[(&n("default-backend"), "fallback")],
            &[
                ("shop.example.com", "/empty", "Prefix", "empty"),
                ("shop.example.com", "/", "Prefix", "web"),
            ],
            None,
        ),
        ingress_yaml(
            "without",
            1,
            &[],
            &[("other.example.com", "/", "Prefix", "empty")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("default-backend", &yaml).await;
    let r = get(gw.http(), "shop.example.com", "/empty/page").await;
    assert_eq!(
        (r.status, r.backend(), r.seen_path()),
        (200, "fallback", "/empty/page")
    );
    assert_eq!(
        get(gw.http(), "shop.example.com", "/").await.backend(),
        "web"
    );
    assert_eq!(get(gw.http(), "other.example.com", "/").await.status, 503);
}

/// Every annotation of this file on one Ingress (with the cookie affinity,
/// retries, source ranges and rate limits they combine with): served over
/// ADS without a NACK, and the static render passes `envoy --mode validate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_of_them_at_once_are_accepted_by_envoy_and_render_validates() {
    use xds::bootstrap::{static_bootstrap, to_yaml};
    let (web, mirror) = (Backend::start("web").await, Backend::start("mirror").await);
    let all: Vec<(String, &str)> = vec![
        (n("mirror-target"), "https://mirror.shop:80$request_uri"),
        (n("mirror-host"), "copy.example.com"),
        (n("mirror-request-body"), "on"),
        (n("limit-connections"), "10"),
        (n("limit-rps"), "50"),
        (n("limit-allowlist"), "127.0.0.0/8, ::1"),
        (n("whitelist-source-range"), "127.0.0.0/8, ::1"),
        (n("proxy-next-upstream"), "error http_503"),
        (n("proxy-next-upstream-timeout"), "20"),
        (n("affinity"), "cookie"),
        (n("session-cookie-expires"), "60"),
        (n("session-cookie-secure"), "true"),
        (n("session-cookie-change-on-failure"), "true"),
        (n("service-upstream"), "true"),
        (n("default-backend"), "mirror"),
    ];
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let yaml = [
        service_yaml("shop", "web", &[&web]),
        service_yaml("shop", "mirror", &[&mirror]),
        ingress_yaml(
            "all",
            0,
            &all,
            &[("all.example.com", "/", "Prefix", "web")],
            None,
        ),
        ingress_yaml(
            "all-canary",
            1,
            &[
                (&n("canary"), "true"),
                (&n("canary-by-header"), "X-Version"),
                (&n("canary-by-header-pattern"), "^v2"),
            ],
            &[("all.example.com", "/", "Prefix", "mirror")],
            None,
        ),
    ]
    .concat();
    let gw = Gateway::start("nginx-rest-everything", &yaml).await;
    assert_eq!(gw._ads.stats.snapshot().last_nack, None);
    let (t, _) = support::ingress_gateway::translated(&yaml);
    // service-upstream warns: the test Services have no cluster IP.
    assert!(
        t.diagnostics
            .iter()
            .all(|d| d.message.contains("service-upstream")),
        "{:?}",
        t.diagnostics
    );
    let yaml = to_yaml(&static_bootstrap(&t.resources, "render", "shop", 0)).unwrap();
    testkit::assert_envoy_accepts(&yaml);
}
