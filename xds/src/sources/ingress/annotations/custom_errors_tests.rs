//! `custom-http-errors`: its codes, and what an invalid list does.

use super::tests::parse_map;
use super::*;

#[test]
fn custom_http_errors_are_status_codes_from_400_to_599() {
    for (v, want) in [
        ("404", Some(vec![404])),
        ("503, 404,404 ,500", Some(vec![404, 500, 503])),
        ("400,599", Some(vec![400, 599])),
        ("404,", Some(vec![404])),
        ("399", None),
        ("600", None),
        ("200,404", None),
        ("404,abc", None),
        ("4O4", None),
        ("", None),
        (" , ", None),
    ] {
        assert_eq!(parse_error_codes(v).ok(), want, "{v:?}");
    }
}

#[test]
fn an_invalid_list_is_lenient_naming_the_annotation() {
    let key = format!("{NGINX}custom-http-errors");
    let (p, diags) = parse_map(&[(&key, "404,503")]);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.settings.custom_http_errors, [404, 503]);
    let (p, diags) = parse_map(&[(&key, "404,302")]);
    assert!(!p.drop_rules && p.settings.custom_http_errors.is_empty());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(diags[0].field, format!("metadata.annotations[{key:?}]"));
    assert!(diags[0].message.contains("\"302\""), "{}", diags[0].message);
    // Ours wins over ingress-nginx's.
    let ours = format!("{OURS}custom-http-errors");
    let (p, _) = parse_map(&[(&key, "404"), (&ours, "503")]);
    assert_eq!(p.settings.custom_http_errors, [503]);
}
