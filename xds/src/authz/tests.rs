//! The checks, against a local HTTP auth service for `auth-url`.

use super::external::{escape_uri, signin_location, subrequest_headers};
use super::*;
use crate::model::ExternalAuth;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::sync::Mutex;
use std::time::Duration;

fn original(headers: &[(&str, &str)]) -> Original {
    Original {
        method: "POST".into(),
        scheme: "https".into(),
        host: "shop.example.com:8443".into(),
        path: "/cart/items?id=7&x=a b".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        remote_ip: "203.0.113.9".into(),
    }
}

fn basic_header(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

fn basic_policy() -> BasicAuth {
    BasicAuth {
        realm: "Shop staff".into(),
        users: [
            (
                "apr".to_string(),
                "$apr1$jitd..FA$xI0fCmbJ3RlUbYXd8jRj8/".to_string(),
            ),
            (
                "bcrypt".to_string(),
                "$2y$05$IJBrO81/qDoeWwAqT1uupeDUlNr21AzzUt8O3LwH9fC1S/1BUb/gS".to_string(),
            ),
            (
                "sha".to_string(),
                "{SHA}YWXIkDPDfrJ6I4yV+0kqTJdT5SE=".to_string(),
            ),
        ]
        .into(),
    }
}

#[test]
fn basic_auth_asks_for_credentials_and_refuses_wrong_ones_with_the_realm() {
    let b = basic_policy();
    let cases = [
        vec![],
        vec![("authorization", basic_header("apr", "wrong"))],
        vec![("authorization", basic_header("nobody", "s3cret!"))],
        vec![("authorization", "Bearer s3cret!".to_string())],
        vec![("authorization", "Basic !!!notbase64".to_string())],
    ];
    for headers in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let v = check_basic(&b, &original(&h));
        assert_eq!(v.denied, Some(401), "{headers:?}");
        assert_eq!(
            v.headers,
            [(
                "www-authenticate".to_string(),
                "Basic realm=\"Shop staff\"".to_string()
            )]
        );
    }
}

#[test]
fn basic_auth_allows_every_user_with_the_right_password() {
    let b = basic_policy();
    for user in ["apr", "bcrypt", "sha"] {
        let auth = basic_header(user, "s3cret!");
        let v = check_basic(&b, &original(&[("authorization", &auth)]));
        assert_eq!(v.denied, None, "{user}");
        // Another user's password hash does not let this user in.
        let v = check_basic(
            &b,
            &original(&[("authorization", &basic_header(user, "x"))]),
        );
        assert_eq!(v.denied, Some(401));
    }
}

#[test]
fn a_check_request_reads_back_as_the_request_and_policy() {
    let o = original(&[("cookie", "a=b")]);
    let (policy, read) = Original::of(&check_request("ingress:shop/web", &o));
    assert_eq!(policy.as_deref(), Some("ingress:shop/web"));
    assert_eq!(read, o);
}

#[tokio::test]
async fn a_check_naming_an_unknown_policy_is_denied_with_500() {
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let server = AuthzServer::new(rx);
    let req = check_request("ingress:shop/gone", &original(&[]));
    let resp = Authorization::check(&server, tonic::Request::new(req))
        .await
        .expect("answered")
        .into_inner();
    let Some(check_response::HttpResponse::DeniedResponse(d)) = resp.http_response else {
        panic!("denied: {resp:?}");
    };
    assert_eq!(d.status.map(|s| s.code), Some(500));
    assert_ne!(resp.status.map(|s| s.code), Some(0));
}

// ---------- auth-url ----------

/// What the local auth service saw of one subrequest.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

/// A local auth service answering `status` with `headers`; records what it saw.
struct AuthService {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl AuthService {
    async fn start(status: u16, headers: &[(&str, &str)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        log.lock().unwrap().push(Seen {
                            method: req.method().to_string(),
                            path: req.uri().to_string(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.to_string(), v.to_str().unwrap_or_default().to_string())
                                })
                                .collect(),
                        });
                        let mut resp = hyper::Response::builder().status(status);
                        for (k, v) in &answer {
                            resp = resp.header(k, v);
                        }
                        let resp = resp
                            .body(Full::new(Bytes::from_static(b"from auth")))
                            .unwrap();
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn external(endpoints: &[std::net::SocketAddr]) -> ExternalAuth {
    ExternalAuth {
        url: "http://auth.shop.svc.cluster.local/check?app=shop".into(),
        host: "auth.shop.svc.cluster.local".into(),
        path: "/check?app=shop".into(),
        endpoints: endpoints
            .iter()
            .map(|a| (a.ip().to_string(), a.port()))
            .collect(),
        method: "GET".into(),
        signin: None,
        signin_redirect_param: "rd".into(),
        response_headers: vec!["x-user".into(), "x-groups".into()],
        request_redirect: None,
        always_set_cookie: false,
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_2xx_allows_and_copies_the_listed_headers_and_removes_the_missing_ones() {
    let svc = AuthService::start(
        200,
        &[("x-user", "alice"), ("x-other", "1"), ("set-cookie", "s=1")],
    )
    .await;
    let e = external(&[svc.addr]);
    let o = original(&[
        ("cookie", "session=abc"),
        ("authorization", "Bearer t"),
        ("x-groups", "admins"),
        ("content-length", "12"),
        ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
    ]);
    let v = SubrequestClient::new().check(&e, &o).await;
    assert_eq!(v.denied, None);
    assert_eq!(v.headers, [("x-user".to_string(), "alice".to_string())]);
    assert_eq!(v.remove, ["x-groups"], "the client's own copy is removed");
    assert_eq!(
        v.response_headers,
        [("set-cookie".to_string(), "s=1".to_string())]
    );
    let [seen] = &svc.seen()[..] else {
        panic!("one subrequest: {:?}", svc.seen());
    };
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/check?app=shop");
    for (name, value) in [
        ("host", "auth.shop.svc.cluster.local"),
        (
            "x-original-url",
            "https://shop.example.com:8443/cart/items?id=7&x=a b",
        ),
        ("x-original-method", "POST"),
        ("x-sent-from", "nginx-ingress-controller"),
        ("x-real-ip", "203.0.113.9"),
        ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
        ("x-auth-request-redirect", "/cart/items?id=7&x=a b"),
        ("cookie", "session=abc"),
        ("authorization", "Bearer t"),
    ] {
        assert_eq!(header(seen, name), Some(value), "{name}: {seen:?}");
    }
    assert_eq!(header(seen, "content-length"), None, "no body is sent");
}

#[tokio::test]
async fn a_401_or_403_is_passed_to_the_client_and_other_answers_are_500() {
    for (status, want) in [(401, 401), (403, 403), (500, 500), (302, 500), (404, 500)] {
        let svc = AuthService::start(
            status,
            &[
                ("www-authenticate", "Bearer realm=\"x\""),
                ("set-cookie", "s=1"),
            ],
        )
        .await;
        let v = SubrequestClient::new()
            .check(&external(&[svc.addr]), &original(&[]))
            .await;
        assert_eq!(v.denied, Some(want), "auth answered {status}");
        let has_cookie = v.headers.iter().any(|(k, _)| k == "set-cookie");
        assert!(
            !has_cookie,
            "no Set-Cookie on denial without always-set-cookie"
        );
        if status == 401 {
            assert!(v
                .headers
                .contains(&("www-authenticate".into(), "Bearer realm=\"x\"".into())));
        }
    }
}

#[tokio::test]
async fn always_set_cookie_passes_the_cookie_on_denial() {
    let svc = AuthService::start(403, &[("set-cookie", "s=1")]).await;
    let e = ExternalAuth {
        always_set_cookie: true,
        ..external(&[svc.addr])
    };
    let v = SubrequestClient::new().check(&e, &original(&[])).await;
    assert_eq!(v.denied, Some(403));
    assert_eq!(v.headers, [("set-cookie".to_string(), "s=1".to_string())]);
}

#[tokio::test]
async fn a_401_with_signin_redirects_with_the_original_url() {
    let svc = AuthService::start(401, &[]).await;
    let e = ExternalAuth {
        signin: Some("https://login.example.com/start".into()),
        ..external(&[svc.addr])
    };
    let v = SubrequestClient::new().check(&e, &original(&[])).await;
    assert_eq!(v.denied, Some(302));
    assert_eq!(
        v.headers,
        [(
            "location".to_string(),
            "https://login.example.com/start?rd=https://shop.example.com:8443%2Fcart%2Fitems%3Fid%3D7%26x%3Da%20b".to_string()
        )]
    );
}

#[tokio::test]
async fn an_unreachable_or_slow_auth_service_is_500() {
    // A port nothing listens on (bound, then closed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let v = SubrequestClient::new()
        .check(&external(&[closed]), &original(&[]))
        .await;
    assert_eq!(v.denied, Some(500));
    let v = SubrequestClient::new()
        .check(&external(&[]), &original(&[]))
        .await;
    assert_eq!(v.denied, Some(500), "no endpoints");
    // Accepts connections, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let v = SubrequestClient::with_timeout(Duration::from_millis(300))
        .check(&external(&[addr]), &original(&[]))
        .await;
    assert_eq!(v.denied, Some(500));
    drop(silent);
}

#[tokio::test]
async fn an_endpoint_that_refuses_connections_is_skipped() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let svc = AuthService::start(200, &[]).await;
    let client = SubrequestClient::new();
    for _ in 0..4 {
        let v = client
            .check(&external(&[closed, svc.addr]), &original(&[]))
            .await;
        assert_eq!(v.denied, None);
    }
}

#[test]
fn signin_urls_keep_their_own_redirect_parameter_and_expand_variables_once() {
    let o = Original {
        path: "/a$host?q=1".into(),
        ..original(&[])
    };
    let e = external(&[]);
    let cases = [
        (
            "https://login.example.com/start?x=1",
            "https://login.example.com/start?x=1&rd=https://shop.example.com:8443%2Fa%24host%3Fq%3D1",
        ),
        (
            "https://$host/oauth2/start?rd=$escaped_request_uri",
            "https://shop.example.com/oauth2/start?rd=%2Fa%24host%3Fq%3D1",
        ),
        (
            "$scheme://$http_host/login?rd=$request_uri",
            "https://shop.example.com:8443/login?rd=/a$host?q=1",
        ),
    ];
    for (signin, want) in cases {
        assert_eq!(signin_location(&e, signin, &o), want, "{signin}");
    }
    let other = ExternalAuth {
        signin_redirect_param: "return_to".into(),
        ..external(&[])
    };
    assert_eq!(
        signin_location(&other, "https://l.example.com/", &original(&[])),
        "https://l.example.com/?return_to=https://shop.example.com:8443%2Fcart%2Fitems%3Fid%3D7%26x%3Da%20b"
    );
    assert_eq!(escape_uri("/a-b_c.d~e f"), "%2Fa-b_c.d~e%20f");
}

#[test]
fn the_subrequest_never_forwards_hop_by_hop_headers_or_forged_originals() {
    let e = ExternalAuth {
        request_redirect: Some("https://shop.example.com/after".into()),
        ..external(&[])
    };
    let o = original(&[
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("x-original-url", "https://forged/"),
        ("x-sent-from", "forged"),
        (":path", "/x"),
        ("accept", "text/html"),
    ]);
    let headers = subrequest_headers(&e, &o);
    let get = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert!(get("connection").is_empty() && get("transfer-encoding").is_empty());
    assert!(get(":path").is_empty());
    assert_eq!(
        get("x-original-url"),
        ["https://shop.example.com:8443/cart/items?id=7&x=a b"]
    );
    assert_eq!(get("x-sent-from"), ["nginx-ingress-controller"]);
    assert_eq!(
        get("x-forwarded-for"),
        ["203.0.113.9"],
        "the client when none was sent"
    );
    assert_eq!(
        get("x-auth-request-redirect"),
        ["https://shop.example.com/after"]
    );
    assert_eq!(get("accept"), ["text/html"]);
}

/// The auth subrequest's X-Real-IP is the address Envoy computed: the same
/// rules as the connection manager's, on the header as a filter sees it
/// (Envoy's peer entry appended).
#[test]
fn the_checked_client_address_follows_the_trusted_forwarded_for() {
    use crate::model::{Cidr, ClientAddress, ForwardedForTrust};
    let with = |f: ForwardedForTrust| ClientAddress {
        proxy_protocol: false,
        forwarded_for: f,
    };
    let peer = "10.0.0.5";
    let none = with(ForwardedForTrust::None);
    assert_eq!(none.computed(peer, Some("203.0.113.7, 10.0.0.5")), peer);
    assert_eq!(none.computed(peer, None), peer);
    let one = with(ForwardedForTrust::TrustedHops(1));
    assert_eq!(
        one.computed(peer, Some("203.0.113.7,10.0.0.5")),
        "203.0.113.7"
    );
    assert_eq!(
        one.computed(peer, Some("198.51.100.9, 203.0.113.7, 10.0.0.5")),
        "203.0.113.7",
        "only the last entry before the peer"
    );
    assert_eq!(
        one.computed(peer, Some("10.0.0.5")),
        peer,
        "fewer entries: the peer"
    );
    assert_eq!(
        one.computed(peer, Some("junk, 10.0.0.5")),
        peer,
        "not an address"
    );
    let two = with(ForwardedForTrust::TrustedHops(2));
    assert_eq!(
        two.computed(peer, Some("198.51.100.9, 203.0.113.7, 10.0.0.5")),
        "198.51.100.9"
    );
    let cidrs = with(ForwardedForTrust::trusted_cidrs(
        ["10.0.0.0/8", "192.0.2.0/24"]
            .iter()
            .map(|c| c.parse::<Cidr>().unwrap())
            .collect(),
    ));
    assert_eq!(
        cidrs.computed(peer, Some("198.51.100.9, 203.0.113.7, 192.0.2.1, 10.0.0.5")),
        "203.0.113.7",
        "the rightmost entry outside the ranges"
    );
    assert_eq!(
        cidrs.computed(peer, Some("192.0.2.1, 10.0.0.5")),
        "192.0.2.1",
        "all trusted: the leftmost"
    );
    assert_eq!(
        cidrs.computed("198.51.100.1", Some("203.0.113.7")),
        "198.51.100.1",
        "an untrusted peer's header is not believed"
    );
    assert_eq!(cidrs.computed(peer, None), peer);
    assert_eq!(
        cidrs.computed(peer, Some("10.0.0.5")),
        peer,
        "nothing arrived"
    );
    // Only the appended entry is Envoy's: a trusted-looking last entry the
    // client sent is judged like the others.
    assert_eq!(
        cidrs.computed(peer, Some("203.0.113.7, 10.9.9.9, 192.0.2.77")),
        "203.0.113.7"
    );
}
