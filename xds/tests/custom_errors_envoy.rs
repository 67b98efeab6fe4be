//! ingress-nginx's `custom-http-errors` through a real Envoy: the app's
//! listed error answers are replaced by the `default-backend` Service's,
//! which receives nginx's X-Code / X-Original-URI / ... headers; other
//! answers, and other Ingresses of the same host, are left as they are.

mod support;

use support::ingress_gateway::{get, ingress_yaml, request, service_yaml, Gateway};
use testkit::{Backend, HttpConn};

fn n(k: &str) -> String {
    format!("nginx.ingress.kubernetes.io/{k}")
}

/// Ingress `name` (host, path `/`-prefixed `path` → `app`) whose `codes`
/// are answered by the Service `errors`, with more annotations.
fn errors_ingress(
    name: &str,
    host: &str,
    path: &str,
    codes: &str,
    more: &[(&str, &str)],
) -> String {
    let keys: Vec<(String, &str)> = [("custom-http-errors", codes), ("default-backend", "errors")]
        .iter()
        .chain(more)
        .map(|(k, v)| (n(k), *v))
        .collect();
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    ingress_yaml(name, 0, &refs, &[(host, path, "Prefix", "app")], None)
}

/// `app` answers `/status/404` with 404 and `/` with 200; `errors` answers
/// everything with 200 and its `backend=errors path=...` body.
async fn gateway(app: &Backend, errors: &Backend) -> Gateway {
    let yaml = [
        service_yaml("shop", "app", &[app]),
        service_yaml("shop", "errors", &[errors]),
        errors_ingress("with-errors", "shop.example.com", "/status", "404,503", &[]),
        // The app's 404 path again, through a rewrite.
        ingress_yaml(
            "without",
            1,
            &[(&n("rewrite-target"), "/status/404")],
            &[("shop.example.com", "/plain", "Exact", "app")],
            None,
        ),
    ]
    .concat();
    Gateway::start("custom-errors", &yaml).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_error_answers_come_from_the_error_backend_with_nginx_headers() {
    let (app, errors) = (Backend::start("app").await, Backend::start("errors").await);
    let gw = gateway(&app, &errors).await;

    let r = request(
        gw.http(),
        "shop.example.com",
        "/status/404?q=1",
        &[("accept", "application/json")],
    )
    .await
    .expect("GET /status/404");
    // The error backend's answer, status included (nginx passes it as it is).
    assert_eq!(
        (r.status, r.backend(), r.seen_path()),
        (200, "errors", "/?q=1"),
        "{r:?}"
    );
    let seen = errors.requests();
    let last = seen.last().expect("the error backend got the request");
    let h = |k: &str| last.header(k).map(str::to_string);
    assert_eq!(
        (
            last.method.as_str(),
            h("x-code"),
            h("x-original-uri"),
            h("x-format"),
            h("x-namespace"),
            h("x-ingress-name"),
            h("x-service-name"),
            h("x-service-port"),
        ),
        (
            "GET",
            Some("404".into()),
            Some("/status/404?q=1".into()),
            Some("application/json".into()),
            Some("shop".into()),
            Some("with-errors".into()),
            Some("app".into()),
            Some("80".into()),
        )
    );
    // The internal host, not the client's (documented).
    let internal = "shop.with-errors.custom-errors.invalid";
    assert_eq!(
        (h("host"), h("x-forwarded-host")),
        (Some(internal.into()), Some(internal.into()))
    );
    // The same request id as the app's (first) attempt.
    let app_id = app
        .requests()
        .last()
        .and_then(|r| r.header("x-request-id").map(str::to_string));
    assert!(app_id.is_some());
    assert_eq!(h("x-request-id"), app_id);

    // A status not listed, and a success, are the app's own.
    let r = get(gw.http(), "shop.example.com", "/status/418").await;
    assert_eq!((r.status, r.backend()), (418, "app"));
    let r = get(gw.http(), "shop.example.com", "/status/200").await;
    assert_eq!((r.status, r.backend()), (200, "app"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ingress_of_the_same_host_gets_the_apps_raw_error() {
    let (app, errors) = (Backend::start("app").await, Backend::start("errors").await);
    let gw = gateway(&app, &errors).await;
    let r = get(gw.http(), "shop.example.com", "/plain").await;
    assert_eq!(
        (r.status, r.backend(), r.seen_path()),
        (404, "app", "/status/404")
    );
    assert!(errors.requests().is_empty());
    // The annotated Ingress's own 404 on the same host is replaced.
    let r = get(gw.http(), "shop.example.com", "/status/404").await;
    assert_eq!((r.status, r.backend()), (200, "errors"));
}

/// The internal host routes only to the error backend: a client naming it
/// itself gets that Ingress's error page, never the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_naming_the_internal_host_only_gets_the_error_page() {
    let (app, errors) = (Backend::start("app").await, Backend::start("errors").await);
    let gw = gateway(&app, &errors).await;
    let r = get(
        gw.http(),
        "shop.with-errors.custom-errors.invalid",
        "/status/200",
    )
    .await;
    assert_eq!((r.status, r.backend(), r.seen_path()), (200, "errors", "/"));
    assert!(app.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_gets_the_error_page_as_a_get_without_it() {
    let (app, errors) = (Backend::start("app").await, Backend::start("errors").await);
    let gw = gateway(&app, &errors).await;
    let mut conn = HttpConn::connect(gw.http()).await.expect("connect");
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.post("shop.example.com", "/status/404", b"hello".to_vec()),
    )
    .await
    .expect("POST answered in time")
    .expect("POST");
    assert_eq!((r.status, r.backend()), (200, "errors"), "{r:?}");
    let last = errors
        .requests()
        .last()
        .cloned()
        .expect("error backend hit");
    assert_eq!(
        (last.method.as_str(), last.header("content-length")),
        ("GET", None)
    );
}

/// The gateway's own error answer (403 of an access list, sent by a filter
/// after custom_response) is replaced too, as nginx's error_page does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_403_is_replaced_too() {
    let (app, errors) = (Backend::start("app").await, Backend::start("errors").await);
    let yaml = [
        service_yaml("shop", "app", &[&app]),
        service_yaml("shop", "errors", &[&errors]),
        errors_ingress(
            "office",
            "office.example.com",
            "/",
            "403",
            &[("whitelist-source-range", "10.0.0.0/8")],
        ),
    ]
    .concat();
    let gw = Gateway::start("custom-errors-403", &yaml).await;
    let r = get(gw.http(), "office.example.com", "/").await;
    assert_eq!((r.status, r.backend()), (200, "errors"), "{r:?}");
    assert!(app.requests().is_empty());
    let last = errors
        .requests()
        .last()
        .cloned()
        .expect("error backend hit");
    assert_eq!(last.header("x-code"), Some("403"));
}

/// A static render with custom errors passes `envoy --mode validate`.
#[test]
fn a_static_render_with_custom_errors_validates() {
    use xds::bootstrap::{static_bootstrap, to_yaml};
    let yaml = [
        testkit::objects::local_service_yaml("shop", "app", &[8080]),
        testkit::objects::local_service_yaml("shop", "errors", &[8081]),
        errors_ingress("with-errors", "shop.example.com", "/", "404,500,503", &[]),
    ]
    .concat();
    let (t, _) = support::ingress_gateway::translated(&yaml);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let yaml = to_yaml(&static_bootstrap(&t.resources, "render", "shop", 0)).unwrap();
    testkit::assert_envoy_accepts(&yaml);
}
