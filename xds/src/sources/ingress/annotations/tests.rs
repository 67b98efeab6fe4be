//! Table-driven tests of every annotation value parser, and of how one
//! Ingress's annotations become settings and diagnostics.

use super::*;
use crate::diagnostics::Diagnostic;

fn d(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[test]
fn booleans_parse_like_go_strconv() {
    for (v, want) in [
        ("true", Some(true)),
        ("True", Some(true)),
        ("TRUE", Some(true)),
        ("1", Some(true)),
        ("t", Some(true)),
        ("false", Some(false)),
        ("0", Some(false)),
        ("F", Some(false)),
        ("yes", None),
        ("", None),
        ("tru", None),
    ] {
        assert_eq!(parse_bool(v).ok(), want, "{v:?}");
    }
}

#[test]
fn durations_are_seconds_or_have_a_unit_and_stay_in_range() {
    let (min, max) = (d(1), Duration::from_secs(3600));
    for (v, want) in [
        ("30", Some(d(30_000))),
        ("30s", Some(d(30_000))),
        ("500ms", Some(d(500))),
        ("2m", Some(d(120_000))),
        ("1h", Some(d(3_600_000))),
        ("2h", None),
        ("0", None),
        ("-1", None),
        ("1.5", None),
        ("5 s", None),
        ("s", None),
        ("", None),
        ("1d", None),
        ("99999999999", None),
    ] {
        assert_eq!(parse_duration(v, min, max).ok(), want, "{v:?}");
    }
}

#[test]
fn integers_are_bounded() {
    for (v, want) in [
        ("0", Some(0)),
        ("10", Some(10)),
        ("11", None),
        ("-1", None),
        ("x", None),
        ("", None),
    ] {
        assert_eq!(parse_u64(v, 0, 10).ok(), want, "{v:?}");
    }
}

#[test]
fn tls_versions() {
    for (v, want) in [
        ("1.2", Some(TlsVersion::V1_2)),
        ("1.3", Some(TlsVersion::V1_3)),
        ("TLSv1.3", Some(TlsVersion::V1_3)),
        ("1.1", None),
        ("1.0", None),
        ("", None),
    ] {
        assert_eq!(parse_tls_version(v).ok(), want, "{v:?}");
    }
}

#[test]
fn absolute_paths_refuse_what_could_escape_a_header_or_substitution() {
    for (v, trim, want) in [
        ("/app", false, Some("/app")),
        ("/app/", false, Some("/app/")),
        ("/app/", true, Some("/app")),
        ("/", true, Some("/")),
        ("app", false, None),
        ("/a b", false, None),
        ("/a\r\nX-Evil: 1", false, None),
        ("/a?x=1", false, None),
        ("/a#f", false, None),
        ("/a\\1", false, None),
        ("/a$1", false, None),
        ("/a%0d", false, None),
        ("", false, None),
    ] {
        assert_eq!(
            parse_abs_path(v, trim).ok().as_deref(),
            want,
            "{v:?} trim={trim}"
        );
    }
}

#[test]
fn rewrite_targets_turn_nginx_groups_into_envoy_groups() {
    for (v, want) in [
        ("/", Some("/")),
        ("/$1", Some("/\\1")),
        ("/api/$2/x/$1", Some("/api/\\2/x/\\1")),
        ("/$0", None),
        ("/$", None),
        ("/$x", None),
        ("relative/$1", None),
        ("/a b", None),
        ("/a\\1", None),
        ("/a\n", None),
    ] {
        assert_eq!(parse_rewrite_target(v).ok().as_deref(), want, "{v:?}");
    }
    assert_eq!(max_group("/\\2/x/\\1"), 2);
    assert_eq!(max_group("/"), 0);
}

#[test]
fn regexes_are_checked_against_re2_syntax_and_size() {
    for (re, want) in [
        ("/foo", Some(0)),
        ("/foo(/|$)(.*)", Some(2)),
        ("/api/v[0-9]+/(.*)", Some(1)),
        ("/(?:a|b)", Some(0)),
        ("/x{1,32}", Some(0)),
        ("/(?=look)", None),  // look-ahead: not RE2
        ("/(a)\\1", None),    // backreference: not RE2
        ("/[unclosed", None), // syntax
        ("/x{100}", None),    // program size
        ("/x{1,1000}", None),
        ("/a\u{7}", None),
    ] {
        assert_eq!(check_regex(re).ok(), want, "{re:?}");
    }
    assert!(check_regex(&format!("/{}", "a".repeat(MAX_REGEX_LEN))).is_err());
}

#[test]
fn header_and_cookie_names_and_values_cannot_inject() {
    for (v, want) in [
        ("X-Canary", Some("x-canary")),
        ("x_y", Some("x_y")),
        (":authority", None),
        ("X Canary", None),
        ("X-A\r\nB", None),
        ("", None),
    ] {
        assert_eq!(parse_header_name(v).ok().as_deref(), want, "{v:?}");
    }
    for (v, ok) in [
        ("always", true),
        ("v 1", true),
        ("a\r\nb", false),
        ("a\0", false),
        ("", false),
    ] {
        assert_eq!(parse_header_value(v).is_ok(), ok, "{v:?}");
    }
    for (v, ok) in [
        ("INGRESSCOOKIE", true),
        ("route", true),
        ("a=b", false),
        ("a;b", false),
        ("a b", false),
        ("", false),
    ] {
        assert_eq!(parse_cookie_name(v).is_ok(), ok, "{v:?}");
    }
}

#[test]
fn retry_conditions_map_nginx_words_to_envoy() {
    let on = |v: &str| parse_retry_on(v).map(|r| (r.on, r.status_codes, r.retries));
    assert_eq!(
        on("error timeout").unwrap(),
        (
            vec!["connect-failure", "refused-stream", "reset"],
            vec![],
            2
        )
    );
    assert_eq!(
        on("error http_502 http_503").unwrap(),
        (
            vec![
                "connect-failure",
                "refused-stream",
                "reset",
                "retriable-status-codes"
            ],
            vec![502, 503],
            2
        )
    );
    assert_eq!(
        on("5xx,gateway-error").unwrap().0,
        vec!["5xx", "gateway-error"]
    );
    assert_eq!(on("off").unwrap(), (vec![], vec![], 0));
    assert!(on("http_418").is_err());
    assert!(on("sometimes").is_err());
}

#[test]
fn cidrs_are_normalised_and_validated() {
    let c = |v: &str| {
        parse_cidrs(v).map(|v| {
            v.iter()
                .map(|c| format!("{}/{}", c.addr, c.len))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(c("127.0.0.1").unwrap(), ["127.0.0.1/32"]);
    assert_eq!(
        c("10.1.2.3/8, 192.168.0.0/16").unwrap(),
        ["10.0.0.0/8", "192.168.0.0/16"]
    );
    assert_eq!(
        c("::1, 2001:db8::1/32").unwrap(),
        ["::1/128", "2001:db8::/32"]
    );
    assert_eq!(c("0.0.0.0/0").unwrap(), ["0.0.0.0/0"]);
    for bad in [
        "",
        "10.0.0.0/33",
        "10.0.0/8",
        "example.com",
        "::1/129",
        "1.2.3.4/x",
    ] {
        assert!(c(bad).is_err(), "{bad:?}");
    }
}

// ---------- whole-Ingress parsing ----------

fn annotation_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn parse_map(pairs: &[(&str, &str)]) -> (Parsed, Vec<Diagnostic>) {
    let map = annotation_map(pairs);
    let mut diags = Diagnostics::default();
    let obj = ObjectRef::new("Ingress", "shop", "web");
    let p = parse(Some(&map), &obj, &mut diags);
    (p, diags.into_sorted())
}

fn ng(k: &str) -> String {
    format!("{NGINX}{k}")
}
fn ours(k: &str) -> String {
    format!("{OURS}{k}")
}

#[test]
fn no_annotations_give_the_defaults_and_no_diagnostics() {
    let (p, diags) = parse_map(&[]);
    assert_eq!(p.settings, IngressSettings::default());
    assert!(!p.drop_rules);
    assert!(diags.is_empty());
}

#[test]
fn every_annotation_parses_into_its_typed_setting() {
    type Check = fn(&IngressSettings) -> bool;
    let cases: &[(&[(&str, &str)], Check)] = &[
        (&[("ssl-redirect", "true")], |s| s.ssl_redirect),
        (&[("force-ssl-redirect", "true")], |s| s.force_ssl_redirect),
        (&[("use-regex", "true")], |s| s.use_regex),
        (&[("rewrite-target", "/$1")], |s| {
            s.use_regex && s.rewrite_target.as_deref() == Some("/\\1")
        }),
        (&[("app-root", "/app")], |s| {
            s.app_root.as_deref() == Some("/app")
        }),
        (&[("proxy-connect-timeout", "3")], |s| {
            s.connect_timeout == Some(d(3000))
        }),
        (&[("proxy-read-timeout", "120")], |s| {
            s.idle_timeout == d(120_000)
        }),
        (
            &[("proxy-read-timeout", "10"), ("proxy-send-timeout", "20")],
            |s| s.idle_timeout == d(20_000),
        ),
        (&[("proxy-next-upstream-tries", "1")], |s| {
            s.retry.retries == 0 && s.retry.on.is_empty()
        }),
        (&[("proxy-next-upstream-tries", "4")], |s| {
            s.retry.retries == 3
        }),
        (&[("proxy-next-upstream", "error http_503")], |s| {
            s.retry.status_codes == [503]
        }),
        (
            &[("affinity", "cookie")],
            |s| matches!(&s.affinity, Affinity::Cookie(c) if c.name == "INGRESSCOOKIE" && c.max_age.is_none()),
        ),
        (
            &[
                ("affinity", "cookie"),
                ("session-cookie-name", "route"),
                ("session-cookie-path", "/app"),
                ("session-cookie-max-age", "3600"),
                ("session-cookie-samesite", "lax"),
            ],
            |s| {
                s.affinity
                    == Affinity::Cookie(CookieAffinity {
                        name: "route".into(),
                        path: Some("/app".into()),
                        max_age: Some(d(3_600_000)),
                        same_site: Some("Lax".into()),
                        secure: false,
                        change_on_failure: false,
                    })
            },
        ),
        (&[("upstream-hash-by", "$remote_addr")], |s| {
            s.affinity == Affinity::SourceIp
        }),
        (
            &[
                ("canary", "true"),
                ("canary-weight", "10"),
                ("canary-by-header", "X-Canary"),
                ("canary-by-cookie", "canary"),
            ],
            |s| {
                s.canary
                    == Some(Canary {
                        weight: 10,
                        weight_total: 100,
                        by_header: Some("x-canary".into()),
                        by_header_value: None,
                        by_cookie: Some("canary".into()),
                        by_header_pattern: None,
                    })
            },
        ),
        (&[("whitelist-source-range", "10.0.0.0/8")], |s| {
            s.allow_ranges.len() == 1
        }),
        (&[("denylist-source-range", "127.0.0.1")], |s| {
            s.deny_ranges.len() == 1
        }),
    ];
    for (pairs, check) in cases {
        let nginx: Vec<(String, &str)> = pairs.iter().map(|(k, v)| (ng(k), *v)).collect();
        let refs: Vec<(&str, &str)> = nginx.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (p, diags) = parse_map(&refs);
        assert!(diags.is_empty(), "{pairs:?}: {diags:?}");
        assert!(!p.drop_rules, "{pairs:?}");
        assert!(check(&p.settings), "{pairs:?}: {:?}", p.settings);
    }
    // Ours only.
    let (p, diags) = parse_map(&[
        (&ours("hsts-max-age"), "31536000"),
        (&ours("hsts-include-subdomains"), "true"),
        (&ours("tls-min-version"), "1.3"),
        (&ours("prefix-rewrite"), "/v2/"),
        (&ours("websocket-idle-timeout"), "1h"),
        (&ours("affinity"), "source-ip"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    let s = p.settings;
    assert_eq!(
        s.hsts,
        Some(Hsts {
            max_age: 31_536_000,
            include_subdomains: true
        })
    );
    assert_eq!(s.tls_min_version, TlsVersion::V1_3);
    assert_eq!(s.prefix_rewrite.as_deref(), Some("/v2"));
    assert_eq!(s.websocket_idle_timeout, Some(d(3_600_000)));
    assert_eq!(s.affinity, Affinity::SourceIp);
    // Contour's name for the TLS minimum.
    let (p, _) = parse_map(&[("projectcontour.io/tls-minimum-protocol-version", "1.3")]);
    assert_eq!(p.settings.tls_min_version, TlsVersion::V1_3);
}

#[test]
fn ours_win_over_ingress_nginx() {
    let (p, diags) = parse_map(&[
        (&ng("proxy-read-timeout"), "10"),
        (&ours("read-timeout"), "30"),
        (&ng("ssl-redirect"), "true"),
        (&ours("ssl-redirect"), "false"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.idle_timeout, d(30_000));
    assert!(!p.settings.ssl_redirect);
    // Our valid value wins; the shadowed nginx value is not even read.
    let (p, diags) = parse_map(&[
        (&ng("proxy-read-timeout"), "bogus"),
        (&ours("read-timeout"), "30"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.idle_timeout, d(30_000));
}

#[test]
fn invalid_values_warn_and_serve_defaults_or_drop_rules_as_documented() {
    // (annotation, value, drops the rules?)
    let cases = [
        ("proxy-read-timeout", "soon", false),
        ("proxy-connect-timeout", "0", false),
        ("proxy-next-upstream", "sometimes", false),
        ("proxy-next-upstream-tries", "100", false),
        ("affinity", "magic", false),
        ("session-cookie-samesite", "sometimes", false),
        ("upstream-hash-by", "$request_uri", false),
        ("ssl-redirect", "yes", true),
        ("force-ssl-redirect", "maybe", true),
        ("use-regex", "on", true),
        ("rewrite-target", "/$x", true),
        ("app-root", "app", true),
        ("canary", "yes", true),
        ("whitelist-source-range", "10.0.0.0/33", true),
        ("allowlist-source-range", "nope", true),
        ("denylist-source-range", "", true),
    ];
    for (k, v, drops) in cases {
        let key = ng(k);
        let mut pairs = vec![(key.as_str(), v)];
        if k.starts_with("session-cookie") {
            pairs.push(("nginx.ingress.kubernetes.io/affinity", "cookie"));
        }
        let (p, diags) = parse_map(&pairs);
        assert_eq!(p.drop_rules, drops, "{k}={v:?}");
        assert_eq!(diags.len(), 1, "{k}={v:?}: {diags:?}");
        let diag = &diags[0];
        assert_eq!(
            diag.severity,
            if drops {
                Severity::Error
            } else {
                Severity::Warning
            },
            "{k}"
        );
        assert_eq!(diag.field, format!("metadata.annotations[{key:?}]"));
        assert_eq!(diag.object, ObjectRef::new("Ingress", "shop", "web"));
        assert!(diag.message.contains(&format!("{v:?}")), "{}", diag.message);
        if !drops {
            assert_eq!(
                p.settings.idle_timeout, DEFAULT_IDLE_TIMEOUT,
                "defaults are kept"
            );
        }
    }
    // Ours too.
    let (p, diags) = parse_map(&[(&ours("tls-min-version"), "1.1")]);
    assert!(p.drop_rules);
    assert_eq!(
        diags[0].field,
        "metadata.annotations[\"tenantgateway.io/tls-min-version\"]"
    );
    let (p, diags) = parse_map(&[(&ours("hsts-max-age"), "forever")]);
    assert!(!p.drop_rules && p.settings.hsts.is_none());
    assert_eq!(diags[0].severity, Severity::Warning);
    // Canary weight above the total.
    let (p, diags) = parse_map(&[
        (&ng("canary"), "true"),
        (&ng("canary-weight"), "50"),
        (&ng("canary-weight-total"), "10"),
    ]);
    assert!(p.drop_rules && p.settings.canary.is_none(), "{diags:?}");
    // Prefix rewrite with regex paths.
    let (p, _) = parse_map(&[(&ours("prefix-rewrite"), "/v2"), (&ng("use-regex"), "true")]);
    assert!(p.drop_rules);
}

#[test]
fn unknown_annotations_are_reported_once_per_ingress() {
    let (p, diags) = parse_map(&[
        (&ng("mirror-uri"), "/m"),
        (&ng("proxy-buffering"), "on"),
        (&ours("no-such-thing"), "1"),
        ("example.com/other", "x"),
        ("kubernetes.io/ingress.class", "tenant"),
    ]);
    assert!(!p.drop_rules);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(diags[0].field, "metadata.annotations");
    for k in [
        "mirror-uri",
        "proxy-buffering",
        "tenantgateway.io/no-such-thing",
    ] {
        assert!(diags[0].message.contains(k), "{}", diags[0].message);
    }
    assert!(!diags[0].message.contains("example.com/other"));
}

#[test]
fn snippets_are_refused_as_config_injection() {
    for k in [
        "configuration-snippet",
        "server-snippet",
        "auth-snippet",
        "stream-snippet",
    ] {
        let (p, diags) = parse_map(&[(&ng(k), "more_set_headers \"X: y\";")]);
        assert!(!p.drop_rules);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].field, format!("metadata.annotations[{:?}]", ng(k)));
        assert!(
            diags[0].message.contains("injection is never allowed"),
            "{}",
            diags[0].message
        );
    }
}

#[test]
fn every_refused_annotation_gets_its_own_diagnostic_as_the_doc_table_says() {
    for (key, refusal) in REFUSED {
        let (p, diags) = parse_map(&[(key, "x"), (&ng("mirror-uri"), "/m")]);
        let mine: Vec<_> = diags.iter().filter(|d| d.field == field(key)).collect();
        assert_eq!(mine.len(), 1, "{key}: {diags:?}");
        let (severity, drops) = match refusal {
            Refusal::Snippet => (Severity::Warning, false),
            Refusal::FailClosed => (Severity::Error, true),
        };
        assert_eq!((mine[0].severity, p.drop_rules), (severity, drops), "{key}");
        // Refused keys are not listed again among the unsupported ones.
        let unsupported = diags.iter().find(|d| d.field == "metadata.annotations");
        assert!(
            unsupported.is_some_and(|d| !d.message.contains(key)),
            "{diags:?}"
        );
    }
}

#[test]
fn unsupported_authentication_fails_closed() {
    for (key, value) in [
        ("auth-type", "digest"),
        ("auth-url", "http://auth.example.com/check"),
    ] {
        let (p, diags) = parse_map(&[(&ng(key), value)]);
        assert!(p.drop_rules, "{key}");
        assert_eq!(diags[0].severity, Severity::Error, "{key}");
    }
}

/// Values no row accepts all of; each row must refuse at least one.
const HOSTILE_VALUES: &[&str] = &[
    "",
    " ",
    "\0",
    "\u{202e}",
    "$",
    "$$1",
    "{",
    "(",
    "99999999999999999999",
    "-0",
    "/(",
    "/$9",
    "\r\n",
    "🦀",
];

/// Annotations that make the others count: cookie settings need cookie
/// affinity, canary settings a canary, the rest the feature they tune.
const ENABLING: &[(&str, &str)] = &[
    ("tenantgateway.io/affinity", "cookie"),
    ("tenantgateway.io/canary", "true"),
    ("tenantgateway.io/hsts-max-age", "1"),
    ("tenantgateway.io/limit-rps", "5"),
    ("tenantgateway.io/health-check-path", "/healthz"),
    ("tenantgateway.io/outlier-consecutive-5xx", "5"),
    ("tenantgateway.io/compression", "gzip"),
    ("tenantgateway.io/enable-cors", "true"),
    ("tenantgateway.io/auth-tls-secret", "ca"),
    ("tenantgateway.io/mirror-target", "http://mirror.shop"),
];

#[test]
fn a_bad_value_of_any_row_is_reported_on_its_key_and_fails_closed_or_serves_the_default() {
    for row in TABLE {
        let base: Vec<(&str, &str)> = ENABLING
            .iter()
            .filter(|(k, _)| !row.keys().any(|rk| rk == *k))
            .copied()
            .collect();
        let (without, diags) = parse_map(&base);
        assert!(diags.is_empty() && !without.drop_rules, "{diags:?}");
        let mut refused = 0;
        for key in row.keys() {
            for &v in HOSTILE_VALUES {
                let mut pairs = base.clone();
                pairs.push((key, v));
                let (p, diags) = parse_map(&pairs);
                if row.validate(v.trim(), "shop").is_ok() {
                    continue;
                }
                refused += 1;
                let mine: Vec<_> = diags.iter().filter(|d| d.field == field(key)).collect();
                assert_eq!(mine.len(), 1, "{key}={v:?}: {diags:?}");
                assert!(mine[0].message.contains(&format!("{v:?}")), "{mine:?}");
                if row.on_invalid.drops_rules() {
                    assert_eq!(mine[0].severity, Severity::Error, "{key}={v:?}");
                    assert!(p.drop_rules, "{key}={v:?}");
                } else {
                    assert_eq!(mine[0].severity, Severity::Warning, "{key}={v:?}");
                    assert!(!p.drop_rules, "{key}={v:?}");
                    // The fallback is the setting without the annotation.
                    assert_eq!(p.settings, without.settings, "{key}={v:?}");
                }
            }
        }
        assert!(refused > 0, "no hostile value tests {}", row.key);
    }
}

#[test]
fn parse_reads_every_row_of_the_table_and_no_other_key() {
    let mut read = std::collections::BTreeSet::new();
    for pairs in [&[][..], ENABLING] {
        let map = annotation_map(pairs);
        let mut diags = Diagnostics::default();
        let obj = ObjectRef::new("Ingress", "shop", "web");
        let mut r = Reader::new(&map, &obj, &mut diags);
        read_settings(&mut r);
        read.extend(r.rows_read);
    }
    let table: std::collections::BTreeSet<&str> = TABLE.iter().map(|row| row.key).collect();
    assert_eq!(read, table);
}

#[test]
fn table_keys_are_unique_and_aliases_keep_the_documented_precedence() {
    let mut seen = std::collections::BTreeSet::new();
    for row in TABLE {
        assert!(row.key.starts_with(OURS), "{}", row.key);
        assert!(
            !row.value.is_empty() && !row.default.is_empty(),
            "{}",
            row.key
        );
        for key in row.keys() {
            assert!(seen.insert(key), "{key} is in two rows");
            assert!(!REFUSED.iter().any(|(k, _)| *k == key), "{key}");
            assert_eq!(classify(key), KeyKind::Read, "{key}");
        }
        // Ours, then Contour's, then ingress-nginx's.
        let rank = |k: &str| [OURS, CONTOUR, NGINX].iter().position(|p| k.starts_with(p));
        let ranks: Vec<_> = row.keys().map(rank).collect();
        assert!(ranks.iter().all(Option::is_some), "{ranks:?}");
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{}", row.key);
    }
    // Each group is one table in the doc.
    let mut groups: Vec<_> = TABLE.iter().map(|row| row.group).collect();
    groups.dedup();
    let mut sorted = groups.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        groups.len(),
        sorted.len(),
        "a group's rows are not together"
    );
    for (key, refusal) in REFUSED {
        assert_eq!(classify(key), KeyKind::Refused(*refusal), "{key}");
    }
}

fn docs_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/annotations.md")
}

/// Regenerate with `TG_UPDATE_DOCS=1 cargo test -p tenant-gateway-xds --lib annotations`.
#[test]
fn docs_annotations_md_tables_are_rendered_from_the_table() {
    let update = std::env::var_os("TG_UPDATE_DOCS").is_some();
    assert!(
        !(update && std::env::var_os("CI").is_some()),
        "TG_UPDATE_DOCS is set in CI: docs/annotations.md is compared there, never rewritten"
    );
    let path = docs_path();
    let doc = std::fs::read_to_string(&path).expect("docs/annotations.md");
    let want = docs::regenerate(&doc).unwrap_or_else(|e| panic!("docs/annotations.md: {e}"));
    if doc == want {
        return;
    }
    if update {
        std::fs::write(&path, want).expect("write docs/annotations.md");
        return;
    }
    let (line, (have, should)) = doc
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, pair)| (i + 1, pair))
        .unwrap_or((0, ("", "")));
    panic!(
        "docs/annotations.md disagrees with the annotation table (sources/ingress/annotations/table.rs) at \
         line {line}:\n  doc:   {have}\n  table: {should}\nregenerate with \
         `TG_UPDATE_DOCS=1 cargo test -p tenant-gateway-xds --lib annotations` and review the diff"
    );
}

#[test]
fn the_doc_check_fails_on_an_edited_missing_or_unknown_block() {
    let block = |id: &str, content: &str| {
        format!("<!-- BEGIN GENERATED {id} -->\n{content}<!-- END GENERATED {id} -->\n")
    };
    let blocks = docs::blocks();
    let doc: String = blocks.iter().map(|(id, c)| block(id, c)).collect();
    assert_eq!(docs::regenerate(&doc).as_deref(), Ok(doc.as_str()));
    // A cell edited by hand is put back.
    let edited = doc.replacen("| strict |", "| lenient |", 1);
    assert_ne!(edited, doc);
    assert_eq!(docs::regenerate(&edited).as_deref(), Ok(doc.as_str()));
    // A group without its block, or a block without its group.
    let (first, content) = &blocks[0];
    let missing = doc.replacen(&block(first, content), "", 1);
    assert!(docs::regenerate(&missing).is_err());
    assert!(docs::regenerate(&format!("{doc}{}", block("no-such-group", ""))).is_err());
    assert!(docs::regenerate(&format!("{doc}{}", block(first, ""))).is_err());
}

// ---------- features 8+: table of (annotation, value, drops the rules?, extra pairs) ----------

/// Each invalid value gives exactly one diagnostic on its own key, with the
/// value, and drops the rules exactly when documented as strict.
fn assert_invalid(key: &str, v: &str, drops: bool, extra: &[(&str, &str)]) {
    let mut pairs = vec![(key, v)];
    pairs.extend_from_slice(extra);
    let (p, diags) = parse_map(&pairs);
    assert_eq!(p.drop_rules, drops, "{key}={v:?}: {diags:?}");
    let mine: Vec<_> = diags
        .iter()
        .filter(|d| d.field == format!("metadata.annotations[{key:?}]"))
        .collect();
    assert_eq!(mine.len(), 1, "{key}={v:?}: {diags:?}");
    let want = if drops {
        Severity::Error
    } else {
        Severity::Warning
    };
    assert_eq!(mine[0].severity, want, "{key}={v:?}");
    assert_eq!(mine[0].object, ObjectRef::new("Ingress", "shop", "web"));
    assert!(
        mine[0].message.contains(&format!("{v:?}")),
        "{}",
        mine[0].message
    );
}

#[test]
fn rate_limits_parse_with_nginx_defaults() {
    let (p, diags) = parse_map(&[(&ng("limit-rps"), "10")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        p.settings.rate_limit,
        Some(RateLimit {
            rps: Some(10),
            rpm: None,
            burst_multiplier: 5,
            status: 429
        })
    );
    let (p, diags) = parse_map(&[
        (&ng("limit-rpm"), "600"),
        (&ng("limit-rps"), "20"),
        (&ours("limit-rps"), "3"),
        (&ng("limit-burst-multiplier"), "2"),
        (&ours("limit-status-code"), "503"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        p.settings.rate_limit,
        Some(RateLimit {
            rps: Some(3),
            rpm: Some(600),
            burst_multiplier: 2,
            status: 503
        })
    );
    // A multiplier or status alone asks for nothing.
    let (p, _) = parse_map(&[(&ng("limit-burst-multiplier"), "2")]);
    assert_eq!(p.settings.rate_limit, None);
    for (v, want) in [
        ("429", Some(429)),
        ("503", Some(503)),
        ("200", None),
        ("418", None),
        ("999", None),
        ("", None),
        ("x", None),
    ] {
        assert_eq!(parse_limit_status(v).ok(), want, "{v:?}");
    }
}

#[test]
fn invalid_rate_limits_fail_closed_and_a_bad_status_keeps_429() {
    let rps: &[(&str, &str)] = &[("nginx.ingress.kubernetes.io/limit-rps", "5")];
    for (key, v, drops, extra) in [
        (ng("limit-rps"), "0", true, &[][..]),
        (ng("limit-rps"), "ten", true, &[]),
        (ours("limit-rps"), "-1", true, &[]),
        (ng("limit-rpm"), "1000001", true, &[]),
        (ng("limit-rpm"), "1.5", true, &[]),
        (ng("limit-burst-multiplier"), "0", true, rps),
        (ours("limit-burst-multiplier"), "101", true, rps),
        (ours("limit-status-code"), "200", false, rps),
    ] {
        assert_invalid(&key, v, drops, extra);
    }
    let (p, _) = parse_map(&[(&ng("limit-rps"), "5"), (&ours("limit-status-code"), "2xx")]);
    assert_eq!(p.settings.rate_limit.map(|l| l.status), Some(429));
}

#[test]
fn backend_protocol_and_proxy_ssl_values() {
    for (v, want) in [
        ("HTTP", Some(BackendProtocol::Http)),
        ("https", Some(BackendProtocol::Https)),
        ("GRPC", Some(BackendProtocol::Grpc)),
        ("GRPCS", Some(BackendProtocol::Grpcs)),
        ("H2C", Some(BackendProtocol::H2c)),
        ("AUTO_HTTP", None),
        ("FCGI", None),
        ("", None),
    ] {
        assert_eq!(parse_backend_protocol(v).ok(), want, "{v:?}");
    }
    for (v, want) in [
        ("on", Some(true)),
        ("off", Some(false)),
        ("true", Some(true)),
        ("0", Some(false)),
        ("yes", None),
    ] {
        assert_eq!(parse_on_off(v).ok(), want, "{v:?}");
    }
    for (v, want) in [
        ("shop/ca", Some("ca")),
        ("ca", Some("ca")),
        ("other/ca", None),
        ("shop/", None),
        ("shop/CA", None),
        ("shop/a/b", None),
    ] {
        assert_eq!(parse_secret_ref(v, "shop").ok().as_deref(), want, "{v:?}");
    }
    for (v, ok) in [
        ("web.shop.svc", true),
        ("a", true),
        ("*.shop.svc", false),
        ("Web.shop", false),
        ("a..b", false),
        ("-a.b", false),
        ("a b", false),
    ] {
        assert_eq!(parse_dns_name(v).is_ok(), ok, "{v:?}");
    }
}

#[test]
fn proxy_ssl_settings_and_defaults() {
    let (p, diags) = parse_map(&[
        (&ng("backend-protocol"), "HTTPS"),
        (&ng("proxy-ssl-secret"), "shop/ca"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.backend_protocol, BackendProtocol::Https);
    // Unlike nginx, a CA means verification unless turned off.
    assert_eq!(
        p.settings.proxy_ssl,
        ProxySsl {
            secret: Some("ca".into()),
            verify: true,
            name: None
        }
    );
    let (p, _) = parse_map(&[
        (&ours("backend-protocol"), "GRPCS"),
        (&ours("proxy-ssl-secret"), "ca"),
        (&ours("proxy-ssl-verify"), "off"),
        (&ours("proxy-ssl-name"), "api.internal"),
    ]);
    assert!(!p.settings.proxy_ssl.verify);
    assert_eq!(p.settings.proxy_ssl.name.as_deref(), Some("api.internal"));
    assert_eq!(
        p.settings.cluster("shop/web").protocol,
        BackendProtocol::Grpcs
    );
}

#[test]
fn invalid_backend_protocol_and_proxy_ssl_fail_closed() {
    let https: &[(&str, &str)] = &[("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS")];
    for (key, v, extra) in [
        (ng("backend-protocol"), "FCGI", &[][..]),
        (ours("backend-protocol"), "h3", &[]),
        (ng("proxy-ssl-secret"), "other/ca", https),
        (ng("proxy-ssl-verify"), "maybe", https),
        // Verification without a CA.
        (ng("proxy-ssl-verify"), "on", https),
        (ours("proxy-ssl-name"), "*.x", https),
        // TLS settings on a plain-text backend.
        (ng("proxy-ssl-secret"), "ca", &[]),
    ] {
        assert_invalid(&key, v, true, extra);
    }
}

#[test]
fn header_edits_and_body_sizes_parse_and_cannot_inject() {
    assert_eq!(
        parse_header_list("X-A: 1; x-b:two words ;\nX-C: 50%").unwrap(),
        vec![
            ("x-a".to_string(), "1".to_string()),
            ("x-b".to_string(), "two words".to_string()),
            ("x-c".to_string(), "50%%".to_string()),
        ]
    );
    for bad in [
        "",
        "X-A",
        "Host: evil",
        ":authority: x",
        "X A: 1",
        "X-A: a\u{0}b",
        "X-A: a\rb",
        "X-A: é",
    ] {
        assert!(parse_header_list(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_header_names("Server, x-powered-by server").unwrap(),
        vec!["server".to_string(), "x-powered-by".to_string()]
    );
    for bad in ["", "host", "a:b", "x\u{0}y", "é"] {
        assert!(parse_header_names(bad).is_err(), "{bad:?}");
    }
    for (v, want) in [
        ("0", Ok(None)),
        ("1024", Ok(Some(1024))),
        ("1k", Ok(Some(1024))),
        ("8m", Ok(Some(8 << 20))),
        ("8M", Ok(Some(8 << 20))),
        ("3g", Ok(Some(3 << 30))),
        ("4g", Err(())),
        ("1.5m", Err(())),
        ("m", Err(())),
        ("-1", Err(())),
        ("1t", Err(())),
        ("99999999999", Err(())),
    ] {
        assert_eq!(parse_body_size(v).map_err(|_| ()), want, "{v:?}");
    }
}

#[test]
fn invalid_header_edits_and_body_sizes_fail_closed() {
    for (key, v) in [
        (ours("request-headers-add"), "Host: x"),
        (ours("request-headers-remove"), "a b:c"),
        (ours("response-headers-add"), "X-A"),
        (ours("response-headers-remove"), ""),
        (ng("proxy-body-size"), "lots"),
        (ours("proxy-body-size"), "5g"),
    ] {
        assert_invalid(&key, v, true, &[]);
    }
    let (p, diags) = parse_map(&[
        (&ng("proxy-body-size"), "1m"),
        (&ours("response-headers-add"), "X-Frame-Options: DENY"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.max_body_bytes, Some(1 << 20));
    assert_eq!(
        p.settings.headers.response_add,
        vec![("x-frame-options".to_string(), "DENY".to_string())]
    );
}

#[test]
fn health_checks_and_outlier_detection_parse_with_defaults() {
    let (p, diags) = parse_map(&[(&ours("health-check-path"), "/healthz")]);
    assert!(diags.is_empty(), "{diags:?}");
    let hc = HealthCheck {
        path: "/healthz".into(),
        interval: HC_DEFAULT_INTERVAL,
        timeout: HC_DEFAULT_TIMEOUT,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    };
    assert_eq!(p.settings.health_check, Some(hc.clone()));
    assert_eq!(p.settings.cluster("shop/web").health_check, Some(hc));
    let (p, diags) = parse_map(&[
        (&ours("health-check-path"), "/ready"),
        (&ours("health-check-interval"), "2s"),
        (&ours("health-check-timeout"), "500ms"),
        (&ours("health-check-healthy-threshold"), "1"),
        (&ours("health-check-unhealthy-threshold"), "4"),
        (&ours("outlier-consecutive-5xx"), "3"),
        (&ours("outlier-interval"), "5"),
        (&ours("outlier-base-ejection-time"), "1m"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        p.settings.health_check,
        Some(HealthCheck {
            path: "/ready".into(),
            interval: d(2000),
            timeout: d(500),
            healthy_threshold: 1,
            unhealthy_threshold: 4,
        })
    );
    assert_eq!(
        p.settings.outlier,
        Some(Outlier {
            consecutive_5xx: 3,
            interval: d(5000),
            base_ejection_time: d(60_000),
        })
    );
    assert!(!p.settings.cluster("shop/web").is_default());
    // Nothing asked: default cluster.
    let (p, _) = parse_map(&[]);
    assert!(p.settings.cluster("shop/web").is_default());
}

#[test]
fn invalid_health_checks_and_outlier_settings_are_lenient() {
    let path: &[(&str, &str)] = &[("tenantgateway.io/health-check-path", "/healthz")];
    let five: &[(&str, &str)] = &[("tenantgateway.io/outlier-consecutive-5xx", "5")];
    for (key, v, extra) in [
        (ours("health-check-path"), "healthz", &[][..]),
        (ours("health-check-path"), "/a b", &[]),
        (ours("health-check-interval"), "0", path),
        (ours("health-check-interval"), "2h", path),
        (ours("health-check-timeout"), "10ms", path),
        (ours("health-check-healthy-threshold"), "0", path),
        (ours("health-check-unhealthy-threshold"), "101", path),
        (ours("health-check-interval"), "5s", &[]),
        (ours("outlier-consecutive-5xx"), "0", &[]),
        (ours("outlier-consecutive-5xx"), "x", &[]),
        (ours("outlier-interval"), "0", five),
        (ours("outlier-base-ejection-time"), "forever", five),
        (ours("outlier-base-ejection-time"), "30s", &[]),
    ] {
        assert_invalid(&key, v, false, extra);
    }
    // A bad setting keeps its default; the check itself stays.
    let (p, _) = parse_map(&[
        (&ours("health-check-path"), "/healthz"),
        (&ours("health-check-interval"), "never"),
    ]);
    assert_eq!(
        p.settings.health_check.map(|h| h.interval),
        Some(HC_DEFAULT_INTERVAL)
    );
}

#[test]
fn compression_parses_with_defaults_and_invalid_values_are_lenient() {
    let (p, diags) = parse_map(&[(&ours("compression"), "gzip")]);
    assert!(diags.is_empty(), "{diags:?}");
    let c = p.settings.compression.unwrap();
    assert_eq!(c.algorithm, Algorithm::Gzip);
    assert_eq!(c.min_length, DEFAULT_COMPRESSION_MIN_LENGTH);
    assert!(c.types.contains(&"text/html".to_string()));
    let (p, diags) = parse_map(&[
        (&ours("compression"), "BR"),
        (
            &ours("compression-types"),
            "text/plain, Application/JSON text/plain",
        ),
        (&ours("compression-min-length"), "0"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        p.settings.compression,
        Some(Compression {
            algorithm: Algorithm::Brotli,
            types: vec!["application/json".into(), "text/plain".into()],
            min_length: 0,
        })
    );
    let (p, _) = parse_map(&[(&ours("compression"), "off")]);
    assert_eq!(p.settings.compression, None);
    let gzip: &[(&str, &str)] = &[("tenantgateway.io/compression", "gzip")];
    for (key, v, extra) in [
        (ours("compression"), "deflate", &[][..]),
        (ours("compression"), "zstd", &[]),
        (ours("compression-types"), "text", gzip),
        (ours("compression-types"), "text/html; charset=utf-8", gzip),
        (ours("compression-types"), "text/\"html\"", gzip),
        (ours("compression-types"), ",", gzip),
        (ours("compression-min-length"), "-1", gzip),
        (ours("compression-min-length"), "2g", gzip),
        (ours("compression-types"), "text/html", &[]),
    ] {
        assert_invalid(&key, v, false, extra);
    }
    let (p, _) = parse_map(&[
        (&ours("compression"), "gzip"),
        (&ours("compression-types"), "bad"),
    ]);
    assert_eq!(
        p.settings.compression.map(|c| c.types.len()),
        Some(DEFAULT_COMPRESSION_TYPES.len())
    );
}

#[test]
fn canary_annotations_on_a_non_canary_ingress_are_reported_as_having_no_effect() {
    let (p, diags) = parse_map(&[(&ng("canary-weight"), "250")]);
    assert!(p.settings.canary.is_none());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Warning);
    assert!(
        diags[0].field.contains("canary-weight"),
        "{}",
        diags[0].field
    );
    assert!(
        diags[0].message.contains("no effect"),
        "{}",
        diags[0].message
    );
}

// ---------- CORS, redirects, host names, upstream Host and prefix ----------

#[test]
fn cors_origins_methods_and_headers_parse_like_ingress_nginx_and_cannot_inject() {
    let o = |v: &str| parse_cors_origins(v).ok();
    let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(o("*"), list(&["*"]));
    // A `*` entry allows every origin, as in ingress-nginx.
    assert_eq!(o("https://a.example.com, *"), list(&["*"]));
    assert_eq!(
        o("https://b.example.com:8443, HTTP://A.example.com"),
        list(&["http://a.example.com", "https://b.example.com:8443"])
    );
    assert_eq!(o("https://*.example.com"), list(&["https://*.example.com"]));
    // No scheme: either.
    assert_eq!(
        o("example.com"),
        list(&["http://example.com", "https://example.com"])
    );
    for bad in [
        "",
        ",",
        "ftp://example.com",
        "https://example.com/path",
        "https://exa mple.com",
        "https://example.com:0",
        "https://example.com:99999",
        "https://a.*.example.com",
        "https://$host",
        "https://example.com\r\nX: y",
    ] {
        assert_eq!(o(bad), None, "{bad:?}");
    }
    assert_eq!(
        parse_cors_methods("GET, POST,PUT").ok(),
        list(&["GET", "POST", "PUT"])
    );
    for bad in ["", "GET;POST", "GET, $request_method", "GE T\n"] {
        assert_eq!(parse_cors_methods(bad).ok(), None, "{bad:?}");
    }
    assert_eq!(
        parse_cors_headers("X-Custom, content_type", false).ok(),
        list(&["X-Custom", "content_type"])
    );
    assert_eq!(parse_cors_headers("*", false).ok(), None);
    assert_eq!(parse_cors_headers("*, X-A", true).ok(), list(&["*", "X-A"]));
    for bad in ["", "X-A: b", "X-A\r\n", "$http_x"] {
        assert_eq!(parse_cors_headers(bad, true).ok(), None, "{bad:?}");
    }
}

#[test]
fn cors_defaults_are_ingress_nginx_ones_and_settings_need_enable_cors() {
    let (p, diags) = parse_map(&[(&ng("enable-cors"), "true")]);
    assert!(diags.is_empty(), "{diags:?}");
    let c = p.settings.cors.expect("cors");
    assert_eq!(c.allow_origins, ["*"]);
    assert_eq!(
        c.allow_methods,
        ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]
    );
    assert_eq!(
        c.allow_headers.join(","),
        "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
    );
    assert!(c.expose_headers.is_empty());
    assert!(c.allow_credentials);
    assert_eq!(c.max_age, Some(1_728_000));
    assert_eq!(c.origin_match, OriginMatch::OneLabelIgnoreCase);

    let (p, diags) = parse_map(&[
        (&ours("enable-cors"), "true"),
        (
            &ng("cors-allow-origin"),
            "https://*.example.com, https://app.example.org",
        ),
        (&ng("cors-allow-methods"), "GET, POST"),
        (&ng("cors-allow-headers"), "X-Token"),
        (&ng("cors-expose-headers"), "X-Total"),
        (&ng("cors-allow-credentials"), "false"),
        (&ng("cors-max-age"), "600"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    let c = p.settings.cors.expect("cors");
    assert_eq!(
        c.allow_origins,
        ["https://*.example.com", "https://app.example.org"]
    );
    assert_eq!(c.allow_methods, ["GET", "POST"]);
    assert_eq!(c.allow_headers, ["X-Token"]);
    assert_eq!(c.expose_headers, ["X-Total"]);
    assert!(!c.allow_credentials);
    assert_eq!(c.max_age, Some(600));

    // Without enable-cors the others do nothing, and say so.
    let key = ng("cors-allow-origin");
    let (p, diags) = parse_map(&[(&key, "https://a.example.com")]);
    assert!(p.settings.cors.is_none() && !p.drop_rules);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].field, field(&key));
    assert_eq!(diags[0].severity, Severity::Warning);
    assert!(
        diags[0].message.contains("enable-cors"),
        "{}",
        diags[0].message
    );
}

#[test]
fn invalid_cors_values_that_would_allow_more_fail_closed() {
    let enable = ng("enable-cors");
    let on = [(enable.as_str(), "true")];
    for (k, v, drops) in [
        ("cors-allow-origin", "https://exa mple.com", true),
        ("cors-allow-methods", "GET;DROP", true),
        ("cors-allow-headers", "X: y", true),
        ("cors-allow-credentials", "yes", true),
        ("cors-expose-headers", "X: y", false),
        ("cors-max-age", "forever", false),
        ("enable-cors", "yes", false),
    ] {
        let extra: &[(&str, &str)] = if k == "enable-cors" { &[] } else { &on };
        assert_invalid(&ng(k), v, drops, extra);
    }
}

#[test]
fn redirect_urls_and_codes() {
    let r = parse_redirect_url("https://new.example.com").unwrap();
    assert_eq!(
        (
            r.scheme.as_deref(),
            r.host.as_deref(),
            r.port,
            &r.path,
            r.strip_query
        ),
        (
            Some("https"),
            Some("new.example.com"),
            None,
            &Some(RedirectPath::Full("/".into())),
            true
        )
    );
    let r = parse_redirect_url("HTTP://New.Example.com:8080/a/b?x=1").unwrap();
    assert_eq!(
        (r.scheme.as_deref(), r.host.as_deref(), r.port, &r.path),
        (
            Some("http"),
            Some("new.example.com"),
            Some(8080),
            &Some(RedirectPath::Full("/a/b?x=1".into()))
        )
    );
    // The request's path and query kept.
    let r = parse_redirect_url("https://new.example.com$request_uri").unwrap();
    assert_eq!((r.path, r.strip_query), (None, false));
    for bad in [
        "",
        "new.example.com",
        "/relative",
        "ftp://x.example.com",
        "https://",
        "https://x.example.com/a b",
        "https://x.example.com/a\r\nSet-Cookie: x",
        "https://x.example.com/$uri",
        "https://x.example.com/p$request_uri",
        "https://x.example.com/#frag",
        "https://x.example.com/%zz",
        "https://user@x.example.com/",
        "https://x.example.com:http/",
        "javascript:alert(1)",
    ] {
        assert!(parse_redirect_url(bad).is_err(), "{bad:?}");
    }
    let (p, diags) = parse_map(&[(&ng("permanent-redirect"), "https://new.example.com/x")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.redirect.as_ref().map(|r| r.status), Some(301));
    let (p, _) = parse_map(&[
        (&ng("permanent-redirect"), "https://new.example.com/x"),
        (&ng("permanent-redirect-code"), "308"),
    ]);
    assert_eq!(p.settings.redirect.map(|r| r.status), Some(308));
    let (p, _) = parse_map(&[(&ng("temporal-redirect"), "https://tmp.example.com")]);
    assert_eq!(p.settings.redirect.map(|r| r.status), Some(302));
    let (p, _) = parse_map(&[
        (&ng("temporal-redirect"), "https://tmp.example.com"),
        (&ng("temporal-redirect-code"), "307"),
    ]);
    assert_eq!(p.settings.redirect.map(|r| r.status), Some(307));
    // Temporal wins over permanent, as in ingress-nginx; the loser is reported.
    let (p, diags) = parse_map(&[
        (&ng("temporal-redirect"), "https://tmp.example.com"),
        (&ng("permanent-redirect"), "https://new.example.com"),
    ]);
    let r = p.settings.redirect.unwrap();
    assert_eq!(
        (r.host.as_deref(), r.status),
        (Some("tmp.example.com"), 302)
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].field, field(&ng("permanent-redirect")));
    // Bad codes keep the default (lenient); bad URLs fail closed.
    let (pr, tr) = (ng("permanent-redirect"), ng("temporal-redirect"));
    let url = [(pr.as_str(), "https://n.example.com")];
    assert_invalid(&ng("permanent-redirect-code"), "418", false, &url);
    assert_invalid(&ng("permanent-redirect-code"), "300", false, &url);
    let url = [(tr.as_str(), "https://n.example.com")];
    assert_invalid(&ng("temporal-redirect-code"), "308", false, &url);
    assert_invalid(&ng("permanent-redirect"), "ftp://x", true, &[]);
    assert_invalid(&ng("temporal-redirect"), "https://x/$host", true, &[]);
    // A code without its URL does nothing, and says so.
    let (p, diags) = parse_map(&[(&ng("permanent-redirect-code"), "308")]);
    assert!(p.settings.redirect.is_none());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].message.contains("no effect"),
        "{}",
        diags[0].message
    );
}

#[test]
fn host_names_upstream_host_and_forwarded_prefix() {
    assert_eq!(
        parse_server_aliases("B.example.com, a.example.com a.example.com").ok(),
        Some(vec![
            "a.example.com".to_string(),
            "b.example.com".to_string()
        ])
    );
    for bad in [
        "",
        "*.example.com",
        "a..b",
        "10.0.0.1",
        "a.example.com:80",
        "-a",
    ] {
        assert!(parse_server_aliases(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_upstream_vhost("Internal.example.com").ok().as_deref(),
        Some("internal.example.com")
    );
    assert_eq!(
        parse_upstream_vhost("svc.local:8080").ok().as_deref(),
        Some("svc.local:8080")
    );
    for bad in ["", "$host", "a b", "x:0", "x:y", "x\r\ny"] {
        assert!(parse_upstream_vhost(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_forwarded_prefix("/app 100%").ok().as_deref(),
        Some("/app 100%%")
    );
    assert!(parse_forwarded_prefix("/a\r\nX: y").is_err());

    let (p, diags) = parse_map(&[
        (&ng("server-alias"), "alias.example.com"),
        (&ng("from-to-www-redirect"), "true"),
        (&ng("upstream-vhost"), "internal.example.com"),
        (&ng("x-forwarded-prefix"), "/app"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    let s = p.settings;
    assert_eq!(s.server_aliases, ["alias.example.com"]);
    assert!(s.from_to_www);
    assert_eq!(s.upstream_vhost.as_deref(), Some("internal.example.com"));
    assert_eq!(s.x_forwarded_prefix.as_deref(), Some("/app"));
    assert_invalid(&ng("server-alias"), "*.example.com", false, &[]);
    assert_invalid(&ng("from-to-www-redirect"), "yes", false, &[]);
    assert_invalid(&ng("upstream-vhost"), "$host", true, &[]);
    assert_invalid(&ng("x-forwarded-prefix"), "/a\nb", true, &[]);
}

// ---------- client certificates and passthrough ----------

#[test]
fn client_certificate_annotations_parse_with_ingress_nginx_defaults() {
    for (v, want) in [
        ("on", Some(ClientVerify::On)),
        ("optional", Some(ClientVerify::Optional)),
        ("optional_no_ca", Some(ClientVerify::OptionalNoCa)),
        ("off", None),
    ] {
        assert_eq!(parse_verify_client(v), Ok(want), "{v}");
    }
    for bad in ["", "ON", "true", "require", "optional-no-ca"] {
        assert!(parse_verify_client(bad).is_err(), "{bad:?}");
    }
    // Defaults: `on`, depth 1, certificate not passed, 400.
    let (p, diags) = parse_map(&[(&ng("auth-tls-secret"), "shop/client-ca")]);
    assert!(diags.is_empty() && !p.drop_rules, "{diags:?}");
    assert_eq!(
        p.settings.client_certificates,
        Some(ClientCertificates {
            secret: "client-ca".into(),
            verify: ClientVerify::On,
            depth: 1,
            pass_certificate: false,
            error_page: None,
        })
    );
    let (p, diags) = parse_map(&[
        (&ng("auth-tls-secret"), "client-ca"),
        (&ng("auth-tls-verify-client"), "optional"),
        (&ng("auth-tls-verify-depth"), "3"),
        (&ng("auth-tls-pass-certificate-to-upstream"), "true"),
        (
            &ng("auth-tls-error-page"),
            "https://errors.example.com/cert?x=1",
        ),
        (&ng("ssl-passthrough"), "true"),
    ]);
    assert!(diags.is_empty(), "{diags:?}");
    let c = p.settings.client_certificates.expect("client certificates");
    assert_eq!(c.verify, ClientVerify::Optional);
    assert_eq!(c.depth, 3);
    assert!(c.pass_certificate);
    let page = c.error_page.expect("error page");
    assert_eq!(page.status, 302);
    assert_eq!(page.host.as_deref(), Some("errors.example.com"));
    assert_eq!(page.path, Some(RedirectPath::Full("/cert?x=1".into())));
    assert!(p.settings.ssl_passthrough);
    // `off`: no client certificates; the other settings are reported.
    let (p, diags) = parse_map(&[
        (&ng("auth-tls-secret"), "client-ca"),
        (&ng("auth-tls-verify-client"), "off"),
        (&ng("auth-tls-verify-depth"), "2"),
    ]);
    assert_eq!(p.settings.client_certificates, None);
    assert!(!p.drop_rules);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].message.contains("\"off\""), "{diags:?}");
    assert_eq!(diags[0].field, field(&ng("auth-tls-verify-depth")));
}

#[test]
fn invalid_client_certificate_settings_fail_closed_or_keep_the_default() {
    // Another namespace's CA: refused, the Ingress is not served.
    assert_invalid(&ng("auth-tls-secret"), "other/client-ca", true, &[]);
    assert_invalid(&ng("auth-tls-secret"), "Bad_Name", true, &[]);
    let (_, diags) = parse_map(&[(&ng("auth-tls-secret"), "other/client-ca")]);
    assert!(
        diags[0].message.contains("Ingress's namespace"),
        "{diags:?}"
    );
    let ca = [(ng("auth-tls-secret"), "client-ca".to_string())];
    let ca: Vec<(&str, &str)> = ca.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_invalid(&ng("auth-tls-verify-client"), "sometimes", true, &ca);
    assert_invalid(&ng("auth-tls-verify-depth"), "0", false, &ca);
    assert_invalid(&ng("auth-tls-verify-depth"), "x", false, &ca);
    assert_invalid(
        &ng("auth-tls-pass-certificate-to-upstream"),
        "yes",
        false,
        &ca,
    );
    assert_invalid(&ng("auth-tls-error-page"), "/relative", false, &ca);
    assert_invalid(
        &ng("auth-tls-error-page"),
        "javascript:alert(1)",
        false,
        &ca,
    );
    assert_invalid(&ng("ssl-passthrough"), "maybe", false, &[]);
    // A bad error page keeps the rest: the certificate is still required.
    let (p, _) = parse_map(&[
        (&ng("auth-tls-secret"), "client-ca"),
        (&ng("auth-tls-error-page"), "ftp://x"),
    ]);
    let c = p.settings.client_certificates.expect("still asked");
    assert_eq!((c.verify, c.error_page), (ClientVerify::On, None));
    // Without a Secret the others do nothing, and say so.
    let (p, diags) = parse_map(&[
        (&ng("auth-tls-verify-client"), "on"),
        (&ng("auth-tls-pass-certificate-to-upstream"), "true"),
    ]);
    assert_eq!(p.settings.client_certificates, None);
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert!(diags
        .iter()
        .all(|d| d.message.contains("without auth-tls-secret") && d.severity == Severity::Warning));
    // They are no longer refused as unsupported authentication.
    assert_eq!(classify(&ng("auth-tls-secret")), KeyKind::Read);
    assert_eq!(classify(&ng("auth-tls-verify-client")), KeyKind::Read);
}
