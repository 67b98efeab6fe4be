//! `custom-http-errors` translated: the routes' custom_response configs,
//! the internal error host, the filter, and the diagnostics.

use super::nginx_rest_tests::{action, ing, main_route, n, tenant};
use super::tests::http_routes;
use crate::diagnostics::Severity;
use crate::translate::*;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::custom_response::v3::CustomResponse;
use envoy_types::pb::envoy::extensions::http::custom_response::redirect_policy::v3::{
    redirect_policy::RedirectActionSpecifier, RedirectPolicy,
};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{
    matcher_list::predicate, on_match, MatcherType,
};
use envoy_types::pb::xds::r#type::matcher::v3::string_matcher::MatchPattern;
use prost::Message;

const FILTER: &str = "envoy.filters.http.custom_response";

fn with_errors(codes: &str) -> Translation {
    tenant(
        vec![
            ing(
                "web",
                0,
                "shop.example.com",
                "web",
                &[("custom-http-errors", codes), ("default-backend", "errors")],
            ),
            ing("plain", 1, "plain.example.com", "web", &[]),
        ],
        &[("shop", "web"), ("shop", "errors")],
        true,
    )
}

/// (code, internal host, request headers) of one matcher of a route.
type Redirect = (String, String, Vec<(String, String)>);

fn policies(t: &Translation, host: &str) -> Vec<Redirect> {
    let r = main_route(t, host);
    let cfg = r
        .typed_per_filter_config
        .get(FILTER)
        .expect("custom_response config");
    let cfg = CustomResponse::decode(cfg.value.as_slice()).unwrap();
    let Some(MatcherType::MatcherList(list)) = cfg.custom_response_matcher.unwrap().matcher_type
    else {
        panic!("not a matcher list")
    };
    list.matchers
        .into_iter()
        .map(|m| {
            let Some(predicate::MatchType::SinglePredicate(p)) = m.predicate.unwrap().match_type
            else {
                panic!()
            };
            let Some(predicate::single_predicate::Matcher::ValueMatch(v)) = p.matcher else {
                panic!()
            };
            let Some(MatchPattern::Exact(code)) = v.match_pattern else {
                panic!()
            };
            let Some(on_match::OnMatch::Action(a)) = m.on_match.unwrap().on_match else {
                panic!()
            };
            let rp = RedirectPolicy::decode(a.typed_config.unwrap().value.as_slice()).unwrap();
            assert_eq!(rp.status_code, None, "the error backend's status is kept");
            let Some(RedirectActionSpecifier::RedirectAction(ra)) = rp.redirect_action_specifier
            else {
                panic!()
            };
            assert_eq!(
                ra.path_rewrite_specifier, None,
                "the path is kept for X-Original-URI"
            );
            let headers = rp
                .request_headers_to_add
                .into_iter()
                .map(|h| h.header.unwrap())
                .map(|h| (h.key, h.value))
                .collect();
            (code, ra.host_redirect, headers)
        })
        .collect()
}

#[test]
fn each_code_redirects_to_the_ingress_error_host_with_nginx_headers() {
    let t = with_errors("503,404");
    let host = "shop.web.custom-errors.invalid";
    let h = |code: &str| {
        [
            ("x-code", code),
            ("x-namespace", "shop"),
            ("x-ingress-name", "web"),
            ("x-service-name", "web"),
            ("x-service-port", "80"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec()
    };
    assert_eq!(
        policies(&t, "shop.example.com"),
        [
            ("404".into(), host.into(), h("404")),
            ("503".into(), host.into(), h("503")),
        ]
    );
    // The Ingress without the annotation: no config on its route.
    assert!(!main_route(&t, "plain.example.com")
        .typed_per_filter_config
        .contains_key(FILTER));
    // The error host: one route, to the default backend, path `/`.
    let vhost = http_routes(&t)
        .virtual_hosts
        .iter()
        .find(|v| v.domains == [host])
        .expect("the error virtual host");
    assert_eq!(vhost.routes.len(), 1);
    let a = action(&vhost.routes[0]);
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster("shop/errors/80".into()))
    );
    let rw = a.regex_rewrite.as_ref().unwrap();
    assert_eq!(
        (
            rw.pattern.as_ref().unwrap().regex.as_str(),
            rw.substitution.as_str()
        ),
        (".*", "/")
    );
    let added: Vec<_> = vhost.routes[0]
        .request_headers_to_add
        .iter()
        .map(|h| h.header.as_ref().unwrap())
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        added,
        [
            ("x-original-uri", "%REQ(:PATH)%"),
            ("x-format", "%REQ(ACCEPT)%")
        ]
    );
    assert!(vhost.routes[0].typed_per_filter_config.is_empty());
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
}

#[test]
fn the_filter_is_first_and_disabled_and_only_there_when_used() {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    let hcm_filters = |t: &Translation| -> Vec<(String, bool)> {
        let l = t
            .resources
            .listeners
            .iter()
            .find(|l| l.name == "http")
            .unwrap();
        let f = &l.filter_chains[0].filters[0];
        let Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(a)) =
            &f.config_type
        else {
            panic!()
        };
        HttpConnectionManager::decode(a.value.as_slice())
            .unwrap()
            .http_filters
            .into_iter()
            .map(|f| (f.name, f.disabled))
            .collect()
    };
    let with = hcm_filters(&with_errors("404"));
    assert_eq!(with[0], (FILTER.to_string(), true));
    let without = tenant(
        vec![ing("plain", 1, "plain.example.com", "web", &[])],
        &[("shop", "web")],
        true,
    );
    assert!(hcm_filters(&without).iter().all(|(name, _)| name != FILTER));
}

#[test]
fn without_a_default_backend_the_annotation_is_ignored_with_a_warning() {
    for pairs in [
        vec![("custom-http-errors", "404")],
        vec![
            ("custom-http-errors", "404"),
            ("default-backend", "missing"),
        ],
    ] {
        let t = tenant(
            vec![ing("web", 0, "shop.example.com", "web", &pairs)],
            &[("shop", "web")],
            true,
        );
        assert!(!main_route(&t, "shop.example.com")
            .typed_per_filter_config
            .contains_key(FILTER));
        assert!(http_routes(&t)
            .virtual_hosts
            .iter()
            .all(|v| !v.name.ends_with(".custom-errors.invalid")));
        let w: Vec<_> = t
            .diagnostics
            .iter()
            .filter(|d| d.field == format!("metadata.annotations[{:?}]", n("custom-http-errors")))
            .collect();
        assert_eq!(w.len(), 1, "{:?}", t.diagnostics);
        assert_eq!(w[0].severity, Severity::Warning);
        assert!(
            w[0].message.contains("no default-backend"),
            "{}",
            w[0].message
        );
    }
}

#[test]
fn translation_is_deterministic() {
    let (a, b) = (with_errors("404,503,500"), with_errors("500,503,404"));
    assert_eq!(a.resources, b.resources);
}
