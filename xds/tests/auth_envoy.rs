//! Authentication through a real Envoy: tenants as YAML are translated and
//! served over ADS with the production bootstrap; the sidecar's
//! authorization server runs on its socket beside the ADS one; real
//! requests check what a client sees and what the backend received.

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sha1::Digest as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::objects::{local_service_yaml, objects_from_yaml as objects};
use testkit::{wait_until, AdsFixture, Envoy, HttpConn, HttpResponse};
use tokio::sync::oneshot;
use xds::authz::{serve_unix, AuthzServer};
use xds::bootstrap::{ads_bootstrap, authz_socket_path, to_yaml};
use xds::{translate, GatewayOptions, Snapshot};

// ---------- local servers ----------

type Headers = Vec<(String, String)>;

/// A local HTTP server: `answer` decides each response from the request's
/// headers; every request's headers are recorded.
struct Local {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Headers>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Local {
    async fn start(answer: fn(&Headers) -> (u16, Headers, String)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Headers>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let headers: Headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        log.lock().unwrap().push(headers.clone());
                        let (status, out, body) = answer(&headers);
                        let mut resp = hyper::Response::builder().status(status);
                        for (k, v) in out {
                            resp = resp.header(k, v);
                        }
                        let resp = resp.body(Full::new(Bytes::from(body))).unwrap();
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    fn seen(&self) -> Vec<Headers> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header<'h>(h: &'h Headers, name: &str) -> Option<&'h str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The backend: says who it is and the `x-user` it was sent.
fn echo(h: &Headers) -> (u16, Headers, String) {
    let user = header(h, "x-user").unwrap_or("-");
    (200, vec![], format!("backend=echo x-user={user}"))
}

/// The auth service: answers the status the client asked for in
/// `x-test-want` (forwarded to it, as every request header is), with an
/// identity header and a cookie on 2xx, a challenge on 401.
fn auth(h: &Headers) -> (u16, Headers, String) {
    let want: u16 = header(h, "x-test-want")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut out = vec![("set-cookie".to_string(), "auth=1".to_string())];
    if (200..300).contains(&want) {
        out.push(("x-user".into(), "alice".into()));
    }
    if want == 401 {
        out.push(("www-authenticate".into(), "Bearer realm=\"sso\"".into()));
    }
    (want, out, "auth body".into())
}

// ---------- the gateway ----------

fn options() -> GatewayOptions {
    GatewayOptions {
        bind_address: "127.0.0.1".into(),
        http_port: testkit::free_port(),
        https_port: testkit::free_port(),
        namespaces: Some(["shop".to_string()].into()),
        ..GatewayOptions::default()
    }
}

/// A tenant's Envoy fed over ADS (production bootstrap), with the
/// authorization server on the socket the bootstrap names.
struct Gateway {
    ads: AdsFixture,
    envoy: Envoy,
    options: GatewayOptions,
    _stop_authz: oneshot::Sender<()>,
}

impl Gateway {
    async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, options()).await
    }

    async fn start_with(yaml: &str, options: GatewayOptions) -> Self {
        let t = translate(&objects(yaml), &options);
        let problems: Vec<_> = t
            .diagnostics
            .iter()
            .filter(|d| d.severity == xds::Severity::Error)
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
        let ads = AdsFixture::start(Snapshot::from(&t.resources)).await;
        let socket = ads.socket.display().to_string();
        let server = AuthzServer::new(ads.snapshots.subscribe());
        let (stop, stopped) = oneshot::channel::<()>();
        let authz_socket = authz_socket_path(&socket);
        tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            serve_unix(&authz_socket, server, stopped)
                .await
                .expect("authorization server");
        });
        let bootstrap = ads_bootstrap("auth", "auth", &socket, 0, None);
        let envoy = Envoy::start_with_bootstrap("auth", &to_yaml(&bootstrap).unwrap()).await;
        let gw = Self {
            ads,
            envoy,
            options,
            _stop_authz: stop,
        };
        let addr = gw.http();
        let up = wait_until(Duration::from_secs(15), || async {
            testkit::http_get(addr, "probe.invalid", "/").await.is_ok()
        })
        .await;
        assert!(up, "Envoy did not come up; log:\n{}", gw.envoy.log());
        assert_eq!(gw.ads.stats.snapshot().last_nack, None, "Envoy NACKed");
        gw
    }

    fn http(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.options.http_port))
    }

    fn push(&self, yaml: &str) {
        let t = translate(&objects(yaml), &self.options);
        self.ads.push(Snapshot::from(&t.resources));
    }

    /// GET `/cart?id=7` of `host` on a fresh connection (20 s at most).
    async fn get(&self, host: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            let mut conn = HttpConn::connect(self.http()).await?;
            conn.get_with(host, "/cart?id=7", headers).await
        });
        match answer.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("GET {host}: {e}"),
            Err(_) => panic!("GET {host}: timed out"),
        }
    }
}

fn ingress_yaml(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    nginx.ingress.kubernetes.io/{k}: {v:?}\n"))
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: shop\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n  annotations:\n{ann}    x: y\nspec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: echo, port: {{number: 80}}}}}}}}\n---\n"
    )
}

fn basic_header(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

// ---------- basic auth ----------

const PASSWORD: &str = "s3cret!";

/// One user per format htpasswd writes (and `$1$`), all with [`PASSWORD`].
const USERS: &[(&str, &str)] = &[
    ("apr1", "$apr1$jitd..FA$xI0fCmbJ3RlUbYXd8jRj8/"),
    (
        "bcrypt",
        "$2y$05$IJBrO81/qDoeWwAqT1uupeDUlNr21AzzUt8O3LwH9fC1S/1BUb/gS",
    ),
    ("sha1", "{SHA}YWXIkDPDfrJ6I4yV+0kqTJdT5SE="),
    ("crypt", "TOFKzovShJH82"),
    (
        "sha256",
        "$5$gyGY/68v1fN3e.iA$ec3ALqiYCDncxP6U/8OQqwanFl0RkgMS6YTrvHqsWI4",
    ),
    (
        "sha512",
        "$6$aKNivaxHtWP8OZU.$5CWATrEaBK1dbIr46a18m0.pJx40jYNMxHuNX9Osn.5KK/1vk/yF7TGaUqU1p8Cza57EuWWwcXfBZbjvOz2m4.",
    ),
    ("md5", "$1$abcdefgh$CSiVTZddYDOMinbJG4io/1"),
];

fn htpasswd_secret(lines: &str) -> String {
    let indented: String = lines.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: staff, namespace: shop}}\ntype: Opaque\nstringData:\n  auth: |\n{indented}---\n"
    )
}

fn basic_tenant(echo: &Local, secret: &str) -> String {
    let annotations = [
        ("auth-type", "basic"),
        ("auth-secret", "staff"),
        ("auth-realm", "Staff only"),
    ];
    local_service_yaml("shop", "echo", &[echo.addr.port()])
        + &ingress_yaml("staff", "staff.example.com", &annotations)
        + &ingress_yaml("open", "open.example.com", &[])
        + secret
}

#[tokio::test]
async fn basic_auth_asks_for_credentials_and_lets_each_htpasswd_format_in() {
    let echo = Local::start(echo).await;
    let lines: String = USERS.iter().map(|(u, h)| format!("{u}:{h}\n")).collect();
    let gw = Gateway::start(&basic_tenant(&echo, &htpasswd_secret(&lines))).await;

    let wrong = basic_header("apr1", "wrong");
    let unknown = basic_header("nobody", PASSWORD);
    for headers in [
        vec![],
        vec![("authorization", wrong.as_str())],
        vec![("authorization", unknown.as_str())],
    ] {
        let r = gw.get("staff.example.com", &headers).await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"Staff only\"")
        );
    }
    assert!(
        echo.seen().is_empty(),
        "no refused request reached the backend"
    );
    for (user, _) in USERS {
        let creds = basic_header(user, PASSWORD);
        let r = gw
            .get("staff.example.com", &[("authorization", &creds)])
            .await;
        assert_eq!((r.status, r.backend()), (200, "echo"), "{user}: {}", r.body);
    }
    // Other Ingresses are not affected.
    let r = gw.get("open.example.com", &[]).await;
    assert_eq!(r.status, 200);

    // Envoy's whole configuration holds policy ids only, never a hash.
    let dump = gw.envoy.admin_get("/config_dump?include_eds").await;
    // (Envoy prints context extensions as `[redacted]`.)
    assert!(
        dump.contains("ext_authz.v3.ExtAuthzPerRoute"),
        "the route names its policy"
    );
    for (user, hash) in USERS {
        let tail = &hash[hash.len() - 12..];
        assert!(
            !dump.contains(tail),
            "{user}'s hash is in Envoy's config dump"
        );
    }
}

/// `htpasswd -nb<flag> user password` from Debian's apache2-utils (hack/test
/// installs it): one line `user:hash`.
fn real_htpasswd(flag: &str, user: &str, password: &str) -> String {
    let out = std::process::Command::new("htpasswd")
        .arg(format!("-nb{flag}"))
        .args([user, password])
        .output()
        .expect("htpasswd (apt-get install apache2-utils; hack/test installs it)");
    assert!(out.status.success(), "htpasswd -nb{flag}: {out:?}");
    let line = String::from_utf8(out.stdout).expect("htpasswd prints text");
    line.trim().to_string()
}

#[tokio::test]
async fn hashes_made_by_the_real_htpasswd_in_every_format_let_their_user_in() {
    // -m apr1 (htpasswd's default), -B bcrypt, -s SHA-1, -d crypt, -2/-5 SHA-256/512 crypt.
    let formats = [
        ("m", "apr1"),
        ("B", "bcrypt"),
        ("s", "sha"),
        ("d", "crypt"),
        ("2", "sha256"),
        ("5", "sha512"),
    ];
    let password = "pw-1234"; // crypt reads 8 characters at most
    let lines: String = formats
        .iter()
        .map(|(flag, user)| real_htpasswd(flag, user, password) + "\n")
        .collect();
    let echo = Local::start(echo).await;
    let gw = Gateway::start(&basic_tenant(&echo, &htpasswd_secret(&lines))).await;
    for (flag, user) in formats {
        let r = gw
            .get(
                "staff.example.com",
                &[("authorization", &basic_header(user, password))],
            )
            .await;
        assert_eq!(
            (r.status, r.backend()),
            (200, "echo"),
            "htpasswd -{flag} ({user}): {}",
            r.body
        );
        let r = gw
            .get(
                "staff.example.com",
                &[("authorization", &basic_header(user, "pw-9999"))],
            )
            .await;
        assert_eq!(
            r.status, 401,
            "htpasswd -{flag} ({user}) with a wrong password"
        );
    }
}

#[tokio::test]
async fn a_changed_password_applies_without_restarting_envoy() {
    let echo = Local::start(echo).await;
    let gw = Gateway::start(&basic_tenant(
        &echo,
        &htpasswd_secret(&format!("alice:{}\n", USERS[0].1)),
    ))
    .await;
    let old = basic_header("alice", PASSWORD);
    let new = basic_header("alice", "n3w-pa55");
    assert_eq!(
        gw.get("staff.example.com", &[("authorization", &old)])
            .await
            .status,
        200
    );
    assert_eq!(
        gw.get("staff.example.com", &[("authorization", &new)])
            .await
            .status,
        401
    );

    let digest = sha1::Sha1::digest(b"n3w-pa55");
    let sha = base64::engine::general_purpose::STANDARD.encode(digest);
    let routes_before = gw.ads.stats.snapshot();
    gw.push(&basic_tenant(
        &echo,
        &htpasswd_secret(&format!("alice:{{SHA}}{sha}\n")),
    ));
    let applied = wait_until(Duration::from_secs(10), || async {
        gw.get("staff.example.com", &[("authorization", &new)])
            .await
            .status
            == 200
    })
    .await;
    assert!(applied, "the new password is accepted");
    assert_eq!(
        gw.get("staff.example.com", &[("authorization", &old)])
            .await
            .status,
        401
    );
    // Nothing was pushed to Envoy: only the sidecar's table changed.
    assert_eq!(gw.ads.stats.snapshot().types, routes_before.types);
}

// ---------- auth-url ----------

#[tokio::test]
async fn auth_url_allows_denies_redirects_and_fails_closed_when_the_service_is_down() {
    let echo = Local::start(echo).await;
    let auth = Local::start(auth).await;
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_port = down.local_addr().unwrap().port();
    drop(down);
    let url = "http://auth.shop.svc.cluster.local/check";
    let yaml = local_service_yaml("shop", "echo", &[echo.addr.port()])
        + &local_service_yaml("shop", "auth", &[auth.addr.port()])
        + &local_service_yaml("shop", "gone", &[down_port])
        + &ingress_yaml(
            "app",
            "app.example.com",
            &[("auth-url", url), ("auth-response-headers", "X-User")],
        )
        + &ingress_yaml(
            "login",
            "login.example.com",
            &[
                ("auth-url", url),
                ("auth-signin", "https://sso.example.com/start"),
            ],
        )
        + &ingress_yaml(
            "down",
            "down.example.com",
            &[("auth-url", "http://gone.shop.svc/check")],
        );
    let gw = Gateway::start(&yaml).await;

    // Allowed: the auth service's X-User reaches the backend, replacing the client's.
    let r = gw
        .get(
            "app.example.com",
            &[("x-user", "mallory"), ("cookie", "session=abc")],
        )
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "backend=echo x-user=alice")
    );
    assert_eq!(r.header("set-cookie"), Some("auth=1"));
    let seen = auth.seen();
    let sub = seen.last().expect("the auth service was asked");
    assert_eq!(
        header(sub, "x-original-url"),
        Some("http://app.example.com/cart?id=7")
    );
    assert_eq!(header(sub, "x-original-method"), Some("GET"));
    assert_eq!(header(sub, "x-sent-from"), Some("nginx-ingress-controller"));
    assert_eq!(header(sub, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(header(sub, "x-auth-request-redirect"), Some("/cart?id=7"));
    assert_eq!(header(sub, "cookie"), Some("session=abc"));
    assert_eq!(header(sub, "host"), Some("auth.shop.svc.cluster.local"));

    // Denied: 401 (with the service's challenge) and 403 are passed.
    let backend_calls = echo.seen().len();
    let r = gw.get("app.example.com", &[("x-test-want", "401")]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"sso\""));
    assert_eq!(
        r.header("set-cookie"),
        None,
        "no cookie without auth-always-set-cookie"
    );
    let r = gw.get("app.example.com", &[("x-test-want", "403")]).await;
    assert_eq!(r.status, 403);
    // Any other answer fails closed.
    let r = gw.get("app.example.com", &[("x-test-want", "502")]).await;
    assert_eq!(r.status, 500);

    // A 401 with auth-signin redirects there with the original URL.
    let r = gw.get("login.example.com", &[("x-test-want", "401")]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://sso.example.com/start?rd=http://login.example.com%2Fcart%3Fid%3D7")
    );

    // The auth service unreachable: 500, and the backend never sees it.
    let r = gw.get("down.example.com", &[]).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        echo.seen().len(),
        backend_calls,
        "no denied request reached the backend"
    );
}

// ---------- static render ----------

/// With a trusted hop, the subrequest's X-Real-IP is the client Envoy
/// computed (Envoy's check itself names the connection's peer); with none,
/// a forged X-Forwarded-For does not change it.
#[tokio::test]
async fn auth_url_subrequests_name_the_computed_client_address() {
    let echo = Local::start(echo).await;
    let auth = Local::start(auth).await;
    let url = "http://auth.shop.svc.cluster.local/check";
    let yaml = local_service_yaml("shop", "echo", &[echo.addr.port()])
        + &local_service_yaml("shop", "auth", &[auth.addr.port()])
        + &ingress_yaml("app", "app.example.com", &[("auth-url", url)]);
    for (trust, want) in [
        (xds::ForwardedForTrust::TrustedHops(1), "203.0.113.7"),
        (xds::ForwardedForTrust::None, "127.0.0.1"),
    ] {
        let options = GatewayOptions {
            client_address: xds::ClientAddress {
                proxy_protocol: false,
                forwarded_for: trust.clone(),
            },
            ..options()
        };
        let gw = Gateway::start_with(&yaml, options).await;
        let r = gw
            .get("app.example.com", &[("x-forwarded-for", "203.0.113.7")])
            .await;
        assert_eq!(r.status, 200, "{trust:?}: {}", r.body);
        let seen = auth.seen();
        let sub = seen.last().expect("the auth service was asked");
        assert_eq!(header(sub, "x-real-ip"), Some(want), "{trust:?}");
    }
}

#[test]
fn a_rendered_static_bootstrap_with_auth_names_the_authz_cluster_and_envoy_accepts_it() {
    let yaml = local_service_yaml("shop", "echo", &[8080])
        + &ingress_yaml(
            "staff",
            "staff.example.com",
            &[("auth-type", "basic"), ("auth-secret", "staff")],
        )
        + &htpasswd_secret(&format!("apr1:{}\n", USERS[0].1));
    let t = translate(&objects(&yaml), &options());
    let rendered = to_yaml(&xds::bootstrap::static_bootstrap(
        &t.resources,
        "r",
        "shop",
        0,
    ))
    .unwrap();
    assert!(rendered.contains(xds::bootstrap::AUTHZ_CLUSTER));
    assert!(
        !rendered.contains(&USERS[0].1[6..]),
        "no hash in the rendered config"
    );
    testkit::assert_envoy_accepts(&rendered);
    // Without auth, no cluster for it.
    let open = translate(
        &objects(
            &(local_service_yaml("shop", "echo", &[8080])
                + &ingress_yaml("o", "o.example.com", &[])),
        ),
        &options(),
    );
    let rendered = to_yaml(&xds::bootstrap::static_bootstrap(
        &open.resources,
        "r",
        "shop",
        0,
    ))
    .unwrap();
    assert!(!rendered.contains(xds::bootstrap::AUTHZ_CLUSTER));
}
