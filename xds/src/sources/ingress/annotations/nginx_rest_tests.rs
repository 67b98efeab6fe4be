//! The ingress-nginx annotations of issue 13 item 7 (mirroring, concurrency
//! and rate-limit exemptions, retry deadline, cookie attributes, canary by
//! header pattern, service-upstream): values, defaults and diagnostics.

use super::tests::parse_map;
use super::*;

fn ng(k: &str) -> String {
    format!("{NGINX}{k}")
}

fn target(https: bool, ns: &str, svc: &str, port: u16, host: &str) -> MirrorTarget {
    MirrorTarget {
        https,
        namespace: ns.into(),
        service: svc.into(),
        port,
        host: host.into(),
    }
}

#[test]
fn mirror_targets_name_a_service_and_nothing_else() {
    for (v, want) in [
        (
            "http://mirror.shop",
            Some(target(false, "shop", "mirror", 80, "mirror.shop")),
        ),
        (
            "http://mirror",
            Some(target(false, "shop", "mirror", 80, "mirror")),
        ),
        (
            "https://mirror.other.svc:8443$request_uri",
            Some(target(
                true,
                "other",
                "mirror",
                8443,
                "mirror.other.svc:8443",
            )),
        ),
        (
            "HTTP://Mirror.Shop.svc.cluster.local/$request_uri",
            Some(target(
                false,
                "shop",
                "mirror",
                80,
                "mirror.shop.svc.cluster.local",
            )),
        ),
        // Arbitrary hosts, IPs and other cluster domains are not Services of the tenant.
        ("http://example.com.evil.net", None),
        ("http://mirror.shop.svc.cluster.example", None),
        ("http://10.0.0.1", None),
        ("http://127.0.0.1:9901", None),
        ("http://user@mirror.shop", None),
        // Envoy mirrors the request's own path: a fixed one is refused.
        ("http://mirror.shop/copy", None),
        ("http://mirror.shop/$request_uri?x=1", None),
        ("http://mirror.shop$host", None),
        ("ftp://mirror.shop", None),
        ("mirror.shop", None),
        ("http://", None),
        ("http://mirror.shop:0", None),
    ] {
        assert_eq!(parse_mirror_target(v, "shop").ok(), want, "{v:?}");
    }
}

#[test]
fn mirror_host_overrides_the_targets_host_and_body_off_is_reported() {
    let (p, diags) = parse_map(&[(&ng("mirror-target"), "http://mirror.shop$request_uri")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        p.settings.mirror,
        Some(target(false, "shop", "mirror", 80, "mirror.shop"))
    );
    let (p, diags) = parse_map(&[
        (&ng("mirror-target"), "http://mirror.shop"),
        (&ng("mirror-host"), "copy.example.com"),
        (&ng("mirror-request-body"), "on"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.mirror.unwrap().host, "copy.example.com");
    // `off` cannot be honoured: a warning, the body is mirrored.
    let (p, diags) = parse_map(&[
        (&ng("mirror-target"), "http://mirror.shop"),
        (&ng("mirror-request-body"), "off"),
    ]);
    assert!(p.settings.mirror.is_some() && !p.drop_rules);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(diags[0].field, field(&ng("mirror-request-body")));
    assert!(diags[0].message.contains("body"), "{}", diags[0].message);
    // Without a target the others do nothing, and say so.
    let (p, diags) = parse_map(&[(&ng("mirror-host"), "copy.example.com")]);
    assert_eq!(p.settings.mirror, None);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].message.contains("without mirror-target"),
        "{diags:?}"
    );
}

#[test]
fn a_mirror_to_another_host_fails_closed_naming_the_annotation() {
    let (p, diags) = parse_map(&[(&ng("mirror-target"), "https://collector.example.com")]);
    assert!(p.drop_rules);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Error);
    assert_eq!(diags[0].field, field(&ng("mirror-target")));
    assert!(
        diags[0].message.contains("tenant's Services"),
        "{}",
        diags[0].message
    );
}

#[test]
fn session_cookie_expires_secure_and_change_on_failure() {
    let cookie = |pairs: &[(&str, &str)]| {
        let mut all = vec![(ng("affinity"), "cookie")];
        all.extend(pairs.iter().map(|(k, v)| (ng(k), *v)));
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (p, diags) = parse_map(&refs);
        assert!(diags.is_empty(), "{pairs:?}: {diags:?}");
        match p.settings.affinity {
            Affinity::Cookie(c) => c,
            other => panic!("{other:?}"),
        }
    };
    let c = cookie(&[]);
    assert!(!c.secure && !c.change_on_failure && c.max_age.is_none());
    let c = cookie(&[
        ("session-cookie-expires", "172800"),
        ("session-cookie-secure", "true"),
        ("session-cookie-change-on-failure", "true"),
    ]);
    assert_eq!(c.max_age, Some(Duration::from_secs(172_800)));
    assert!(c.secure && c.change_on_failure);
    // Both: max-age wins (as browsers prefer Max-Age over Expires).
    let c = cookie(&[
        ("session-cookie-expires", "100"),
        ("session-cookie-max-age", "50"),
    ]);
    assert_eq!(c.max_age, Some(Duration::from_secs(50)));
    for (k, v) in [
        ("session-cookie-expires", "0"),
        ("session-cookie-expires", "soon"),
        ("session-cookie-secure", "yes"),
        ("session-cookie-change-on-failure", "maybe"),
    ] {
        let (p, diags) = parse_map(&[(&ng("affinity"), "cookie"), (&ng(k), v)]);
        assert!(!p.drop_rules, "{k}");
        assert_eq!(diags.len(), 1, "{k}={v}: {diags:?}");
        assert_eq!(diags[0].severity, Severity::Warning);
    }
}

#[test]
fn canary_header_patterns_are_unanchored_re2_and_an_exact_value_wins() {
    for (v, want) in [
        ("^v2", Some(".*(?:^v2).*")),
        ("beta|gamma", Some(".*(?:beta|gamma).*")),
        ("(?<=a)b", None),
        ("a{1000}", None),
        ("(", None),
    ] {
        assert_eq!(parse_header_pattern(v).ok().as_deref(), want, "{v:?}");
    }
    let canary = |extra: &[(&str, &str)]| {
        let mut all = vec![
            (ng("canary"), "true"),
            (ng("canary-by-header-pattern"), "^v2"),
        ];
        all.extend(extra.iter().map(|(k, v)| (ng(k), *v)));
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        parse_map(&refs)
    };
    let (p, diags) = canary(&[("canary-by-header", "X-Version")]);
    assert!(diags.is_empty(), "{diags:?}");
    let c = p.settings.canary.unwrap();
    assert_eq!(c.by_header.as_deref(), Some("x-version"));
    assert_eq!(c.by_header_pattern.as_deref(), Some(".*(?:^v2).*"));
    // An exact value wins; without a header the pattern matches nothing: warned.
    for extra in [
        &[
            ("canary-by-header", "X-Version"),
            ("canary-by-header-value", "v2"),
        ][..],
        &[][..],
    ] {
        let (p, diags) = canary(extra);
        assert_eq!(p.settings.canary.unwrap().by_header_pattern, None);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].severity, Severity::Warning);
        assert_eq!(diags[0].field, field(&ng("canary-by-header-pattern")));
    }
    // An invalid pattern fails closed, as every canary setting.
    let (p, _) = parse_map(&[
        (&ng("canary"), "true"),
        (&ng("canary-by-header"), "x"),
        (&ng("canary-by-header-pattern"), "("),
    ]);
    assert!(p.drop_rules);
}

#[test]
fn retry_timeout_is_seconds_and_zero_means_no_limit() {
    for (v, want) in [
        ("0", Some(None)),
        ("0s", Some(None)),
        ("10", Some(Some(Duration::from_secs(10)))),
        ("1500ms", Some(Some(Duration::from_millis(1500)))),
        ("25h", None),
        ("-1", None),
        ("x", None),
    ] {
        assert_eq!(parse_retry_timeout(v).ok(), want, "{v:?}");
    }
    let (p, diags) = parse_map(&[(&ng("proxy-next-upstream-timeout"), "7")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.retry_timeout, Some(Duration::from_secs(7)));
    let (p, diags) = parse_map(&[(&ng("proxy-next-upstream-timeout"), "never")]);
    assert!(!p.drop_rules && p.settings.retry_timeout.is_none());
    assert_eq!(diags[0].severity, Severity::Warning);
}

#[test]
fn limit_connections_fails_closed_and_the_allowlist_needs_a_rate_limit() {
    let (p, diags) = parse_map(&[(&ng("limit-connections"), "2")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.max_connections, Some(2));
    assert_eq!(
        p.settings.cluster("shop/web").max_requests,
        Some(ConcurrencyLimit {
            bucket: "shop/web".into(),
            max_requests: 2
        })
    );
    for v in ["0", "many", "-1"] {
        let (p, diags) = parse_map(&[(&ng("limit-connections"), v)]);
        assert!(p.drop_rules, "{v}");
        assert_eq!(diags[0].severity, Severity::Error, "{v}");
    }
    // The newer name wins over the older one; both are validated.
    let (p, diags) = parse_map(&[
        (&ng("limit-rps"), "5"),
        (&ng("limit-allowlist"), "10.0.0.0/8, 192.168.1.1"),
        (&ng("limit-whitelist"), "172.16.0.0/12"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.limit_exempt.len(), 2);
    let (p, diags) = parse_map(&[
        (&ng("limit-rps"), "5"),
        (&ng("limit-whitelist"), "10.1.0.0/16"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.limit_exempt.len(), 1);
    // A bad range exempts no one (lenient); without a limit nothing to exempt.
    let (p, diags) = parse_map(&[
        (&ng("limit-rps"), "5"),
        (&ng("limit-allowlist"), "10.0.0.0/33"),
    ]);
    assert!(!p.drop_rules && p.settings.limit_exempt.is_empty());
    assert_eq!(diags[0].severity, Severity::Warning);
    let (p, diags) = parse_map(&[(&ng("limit-allowlist"), "10.0.0.0/8")]);
    assert!(p.settings.limit_exempt.is_empty());
    assert!(diags[0].message.contains("without limit-rps"), "{diags:?}");
}

#[test]
fn service_upstream_is_a_cluster_setting() {
    let (p, diags) = parse_map(&[(&ng("service-upstream"), "true")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert!(p.settings.cluster("shop/web").service_upstream);
    let (p, diags) = parse_map(&[(&ng("service-upstream"), "on")]);
    assert!(!p.settings.service_upstream && !p.drop_rules);
    assert_eq!(diags[0].severity, Severity::Warning);
}

#[test]
fn default_backend_is_a_service_of_the_ingress_namespace() {
    for (v, want) in [
        ("fallback", Some("fallback")),
        ("shop/fallback", Some("fallback")),
        ("other/fallback", None),
        ("Fallback", None),
        ("a.b", None),
        ("", None),
    ] {
        assert_eq!(parse_service_ref(v, "shop").ok().as_deref(), want, "{v:?}");
    }
    let (p, diags) = parse_map(&[(&ng("default-backend"), "errors")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.default_backend.as_deref(), Some("errors"));
    let (p, diags) = parse_map(&[(&ng("default-backend"), "other/errors")]);
    assert!(!p.drop_rules && p.settings.default_backend.is_none());
    assert_eq!(diags[0].severity, Severity::Warning);
}
