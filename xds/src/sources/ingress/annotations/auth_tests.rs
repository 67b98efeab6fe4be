//! The authentication annotations: each key, invalid values, and the
//! tenancy refusals of `auth-url` that the URL alone decides.

use super::auth::*;
use super::*;
use crate::diagnostics::Diagnostic;

fn parse_map(pairs: &[(&str, &str)]) -> (Parsed, Vec<Diagnostic>) {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut diags = Diagnostics::default();
    let obj = ObjectRef::new("Ingress", "shop", "web");
    let p = parse(Some(&map), &obj, &mut diags);
    (p, diags.into_sorted())
}

fn ng(k: &str) -> String {
    format!("{NGINX}{k}")
}

#[test]
fn basic_auth_reads_type_secret_secret_type_and_realm() {
    let (p, diags) = parse_map(&[
        (&ng("auth-type"), "basic"),
        (&ng("auth-secret"), "shop/htpasswd"),
        (&ng("auth-secret-type"), "auth-map"),
        (&ng("auth-realm"), "Staff only"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        p.settings.auth,
        Some(AuthSettings::Basic {
            secret: "htpasswd".into(),
            secret_type: AuthSecretType::AuthMap,
            realm: "Staff only".into(),
        })
    );
    let (p, diags) = parse_map(&[(&ng("auth-type"), "basic"), (&ng("auth-secret"), "h")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        p.settings.auth,
        Some(AuthSettings::Basic {
            secret: "h".into(),
            secret_type: AuthSecretType::AuthFile,
            realm: String::new(),
        }),
        "auth-file and an empty realm by default"
    );
}

#[test]
fn basic_auth_without_a_usable_secret_or_with_digest_fails_closed() {
    let cases: &[&[(&str, &str)]] = &[
        &[("auth-type", "basic")],
        &[("auth-type", "digest"), ("auth-secret", "h")],
        &[("auth-type", "Basic "), ("auth-secret", "h")],
        &[("auth-type", "basic"), ("auth-secret", "other/h")],
        &[("auth-type", "basic"), ("auth-secret", "Bad_Name")],
        &[
            ("auth-type", "basic"),
            ("auth-secret", "h"),
            ("auth-secret-type", "file"),
        ],
    ];
    for pairs in cases {
        let keyed: Vec<(String, &str)> = pairs.iter().map(|(k, v)| (ng(k), *v)).collect();
        let refs: Vec<(&str, &str)> = keyed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (p, diags) = parse_map(&refs);
        assert!(p.drop_rules, "{pairs:?}");
        let errors: Vec<_> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{pairs:?}: {diags:?}");
        assert!(errors[0]
            .field
            .contains("nginx.ingress.kubernetes.io/auth-"));
    }
    let (_, diags) = parse_map(&[(&ng("auth-type"), "digest")]);
    assert!(diags[0]
        .message
        .contains("digest authentication is not supported"));
    let (_, diags) = parse_map(&[(&ng("auth-type"), "basic"), (&ng("auth-secret"), "other/h")]);
    assert!(
        diags[0].message.contains("the Ingress's namespace"),
        "{diags:?}"
    );
}

#[test]
fn auth_settings_without_their_feature_warn_and_change_nothing() {
    for (key, value) in [
        ("auth-secret", "h"),
        ("auth-realm", "x"),
        ("auth-signin", "https://login.example.com/"),
        ("auth-response-headers", "x-user"),
        ("auth-method", "POST"),
    ] {
        let (p, diags) = parse_map(&[(&ng(key), value)]);
        assert!(!p.drop_rules && p.settings.auth.is_none(), "{key}");
        assert_eq!(diags.len(), 1, "{key}: {diags:?}");
        assert_eq!(diags[0].severity, Severity::Warning);
        assert!(diags[0].message.contains("has no effect"), "{diags:?}");
    }
    // A bad realm serves an empty one.
    let (p, diags) = parse_map(&[
        (&ng("auth-type"), "basic"),
        (&ng("auth-secret"), "h"),
        (&ng("auth-realm"), "say \"hi\""),
    ]);
    assert!(!p.drop_rules);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        matches!(p.settings.auth, Some(AuthSettings::Basic { ref realm, .. }) if realm.is_empty())
    );
}

#[test]
fn auth_url_reads_every_companion() {
    let (p, diags) = parse_map(&[
        (
            &ng("auth-url"),
            "http://oauth2-proxy.auth.svc.cluster.local:4180/oauth2/auth?x=1",
        ),
        (
            &ng("auth-signin"),
            "https://$host/oauth2/start?rd=$escaped_request_uri",
        ),
        (&ng("auth-signin-redirect-param"), "return_to"),
        (
            &ng("auth-response-headers"),
            "X-Auth-Request-User, X-Auth-Request-Email",
        ),
        (&ng("auth-request-redirect"), "https://shop.example.com/"),
        (&ng("auth-method"), "post"),
        (&ng("auth-always-set-cookie"), "true"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    let Some(AuthSettings::External(e)) = p.settings.auth else {
        panic!("external auth: {:?}", p.settings.auth);
    };
    assert_eq!(
        e.url,
        AuthUrl {
            url: "http://oauth2-proxy.auth.svc.cluster.local:4180/oauth2/auth?x=1".into(),
            service: "oauth2-proxy".into(),
            namespace: "auth".into(),
            port: 4180,
            host: "oauth2-proxy.auth.svc.cluster.local:4180".into(),
            path: "/oauth2/auth?x=1".into(),
        }
    );
    assert_eq!(
        e.signin.as_deref(),
        Some("https://$host/oauth2/start?rd=$escaped_request_uri")
    );
    assert_eq!(e.signin_redirect_param, "return_to");
    assert_eq!(
        e.response_headers,
        ["x-auth-request-email", "x-auth-request-user"]
    );
    assert_eq!(
        e.request_redirect.as_deref(),
        Some("https://shop.example.com/")
    );
    assert_eq!(e.method, "POST");
    assert!(e.always_set_cookie);
}

#[test]
fn auth_url_accepts_the_service_dns_forms_only() {
    for (v, ns, port, path) in [
        (
            "http://auth.shop.svc.cluster.local/check",
            "shop",
            80,
            "/check",
        ),
        ("http://auth.shop.svc:8080", "shop", 8080, "/"),
        ("http://auth.shop?a=b", "shop", 80, "/?a=b"),
        ("HTTP://Auth.Shop.svc/x", "shop", 80, "/x"),
    ] {
        let u = parse_auth_url(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(
            (u.service.as_str(), u.namespace.as_str()),
            ("auth", ns),
            "{v}"
        );
        assert_eq!((u.port, u.path.as_str()), (port, path), "{v}");
    }
}

#[test]
fn auth_url_refuses_every_host_that_is_not_a_service_of_the_tenant_by_name() {
    for (v, why) in [
        ("http://10.0.0.5/check", "IP address"),
        ("http://10.0.0.5:8080/check", "IP address"),
        ("http://[::1]:9901/", "IP address"),
        ("http://[fd00::1]/", "IP address"),
        ("http://localhost:9901/stats", "localhost"),
        ("http://admin.localhost/", "localhost"),
        ("http://auth.example.com/check", "not a Service"),
        ("http://auth/check", "not a Service"),
        (
            "http://auth.shop.svc.cluster.example/check",
            "not a Service",
        ),
        ("http://user@auth.shop/", "user information"),
        ("https://auth.shop.svc/check", "https:// is not supported"),
        ("http://$host/auth", "nginx variables"),
        ("auth.shop.svc/check", "expected http://"),
        ("http://auth.shop/a b", "URL characters"),
        ("http://auth.shop:0/", "not a port"),
    ] {
        let e = parse_auth_url(v).expect_err(v);
        assert!(e.contains(why), "{v}: {e}");
    }
}

#[test]
fn a_bad_auth_url_drops_the_rules_naming_the_annotation() {
    let (p, diags) = parse_map(&[(&ng("auth-url"), "http://169.254.169.254/latest")]);
    assert!(p.drop_rules);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Error);
    assert_eq!(
        diags[0].field,
        "metadata.annotations[\"nginx.ingress.kubernetes.io/auth-url\"]"
    );
    assert!(diags[0].message.contains("IP address"));
}

#[test]
fn auth_type_and_auth_url_together_fail_closed() {
    let (p, diags) = parse_map(&[
        (&ng("auth-type"), "basic"),
        (&ng("auth-secret"), "h"),
        (&ng("auth-url"), "http://auth.shop/check"),
    ]);
    assert!(p.drop_rules && p.settings.auth.is_none());
    assert!(diags.iter().any(|d| d.severity == Severity::Error
        && d.message.contains("auth-type and auth-url on one Ingress")));
}

#[test]
fn signin_urls_allow_only_the_variables_we_expand() {
    for ok in [
        "https://login.example.com/start",
        "https://$host/oauth2/start?rd=$escaped_request_uri",
        "$scheme://$http_host/login?next=$request_uri",
        "http://login.example.com:8080",
    ] {
        assert!(parse_signin_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        "/oauth2/start",
        "https://$host/start?u=$remote_user",
        "https://login.example.com/a b",
        "javascript:alert(1)",
        "https:///path",
    ] {
        assert!(parse_signin_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn small_auth_values_parse_and_refuse() {
    assert_eq!(parse_method("head"), Ok("HEAD".into()));
    assert!(parse_method("TRACE").is_err() && parse_method("").is_err());
    assert_eq!(parse_query_param("rd"), Ok("rd".into()));
    assert!(parse_query_param("r&d").is_err() && parse_query_param("").is_err());
    assert_eq!(parse_realm(""), Ok(String::new()));
    assert!(parse_realm("a\\b").is_err() && parse_realm("é").is_err());
    assert_eq!(
        parse_auth_secret_type("auth-file"),
        Ok(AuthSecretType::AuthFile)
    );
    assert!(parse_auth_secret_type("map").is_err());
}
