//! The Envoy layer lowers any model, not only what the Ingress source makes:
//! a hand-made model (as a Gateway API source would produce) with a
//! three-way split, a 301 redirect and a header-matched alternative.

use super::*;
use crate::model::*;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, redirect_action, route, route_action, Route as EnvoyRoute,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use std::sync::Arc;
use std::time::Duration;

fn policy() -> Arc<RoutePolicy> {
    Arc::new(RoutePolicy {
        https_redirect: HttpsRedirect::Never,
        hsts: None,
        timeouts: Timeouts {
            idle: Duration::from_secs(60),
            websocket_idle: None,
            request: None,
            backend_request: None,
        },
        retry: Retry::default(),
        affinity: Affinity::None,
        access: AccessList::default(),
        rate_limit: None,
        headers: HeaderEdits::default(),
        max_body_bytes: None,
        compression: None,
        mirrors: Vec::new(),
        host_rewrite: None,
        cors: None,
        auth: None,
        custom_errors: None,
    })
}

fn to(backends: &[(&str, u32)]) -> Action {
    Action::Forward(
        backends
            .iter()
            .map(|(b, w)| WeightedBackend {
                backend: (*b).into(),
                weight: *w,
                headers: None,
            })
            .collect(),
    )
}

fn route(path: PathMatch, action: Action, alternatives: Vec<Alternative>) -> Route {
    let object = Arc::new(ObjectRef::new("HTTPRoute", "gw", "shop"));
    Route {
        provenance: Provenance::new(&object, "spec.rules[0]"),
        path,
        conditions: RouteConditions::default(),
        action,
        rewrite: None,
        policy: policy(),
        alternatives,
    }
}

fn backend(name: &str) -> Backend {
    Backend {
        name: name.into(),
        namespace: "gw".into(),
        service: name.into(),
        endpoints: [("10.0.0.1".to_string(), 8080)].into(),
        settings: ClusterSettings::default(),
        fallbacks: Vec::new(),
    }
}

fn hand_made_model() -> Model {
    let mut model = Model::new(ListenerAddresses {
        bind_address: "0.0.0.0".into(),
        http_port: 8080,
        https_port: 8443,
    });
    let canary = Alternative {
        name: "canary".into(),
        headers: vec![HeaderMatch::Exact {
            name: "x-canary".into(),
            value: "yes".into(),
        }],
        action: to(&[("y", 1)]),
    };
    let host = HostMatch::Exact("shop.example.com".into());
    let routes = vec![
        route(
            PathMatch::Prefix("/a".into()),
            to(&[("x", 1), ("y", 2), ("z", 3)]),
            vec![],
        ),
        route(
            PathMatch::Exact("/old".into()),
            Action::Redirect(Redirect {
                scheme: None,
                host: None,
                port: None,
                path: Some(RedirectPath::Full("/new".into())),
                status: 301,
                strip_query: false,
            }),
            vec![],
        ),
        route(PathMatch::Prefix("/".into()), to(&[("x", 1)]), vec![canary]),
    ];
    model.routes.hosts.insert(host, routes);
    for name in ["x", "y", "z"] {
        model.backends.insert(name.into(), backend(name));
    }
    model
}

fn cluster_of(r: &EnvoyRoute) -> Option<&route_action::ClusterSpecifier> {
    match &r.action {
        Some(route::Action::Route(a)) => a.cluster_specifier.as_ref(),
        _ => None,
    }
}

#[test]
fn a_hand_made_model_lowers_splits_redirects_and_alternatives_in_its_own_order() {
    let resources = build(&hand_made_model());
    assert_eq!(resources.consistency_problems(), Vec::<String>::new());
    let vh = resources.routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "shop.example.com")
        .expect("the host's virtual host");
    let names: Vec<&str> = vh.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gw/shop|shop.example.com|prefix:/a",
            "gw/shop|shop.example.com|exact:/old",
            "gw/shop|shop.example.com|prefix:/|canary",
            "gw/shop|shop.example.com|prefix:/",
        ],
        "the model's order is kept and no fallback is invented"
    );
    let Some(route_action::ClusterSpecifier::WeightedClusters(split)) = cluster_of(&vh.routes[0])
    else {
        panic!("a three-way split: {:?}", vh.routes[0].action);
    };
    let weights: Vec<(&str, u32)> = split
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.as_ref().map_or(0, |w| w.value)))
        .collect();
    assert_eq!(weights, [("x", 1), ("y", 2), ("z", 3)]);
    let Some(route::Action::Redirect(redirect)) = &vh.routes[1].action else {
        panic!("a redirect: {:?}", vh.routes[1].action);
    };
    assert_eq!(
        redirect.response_code,
        redirect_action::RedirectResponseCode::MovedPermanently as i32
    );
    assert_eq!(
        redirect.path_rewrite_specifier,
        Some(redirect_action::PathRewriteSpecifier::PathRedirect(
            "/new".into()
        ))
    );
    let alternative = &vh.routes[2];
    let header = &alternative.r#match.as_ref().expect("match").headers[0];
    assert_eq!(header.name, "x-canary");
    let Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)) = &header.header_match_specifier
    else {
        panic!("an exact header match: {header:?}");
    };
    assert_eq!(
        m.match_pattern,
        Some(string_matcher::MatchPattern::Exact("yes".into()))
    );
    assert_eq!(
        cluster_of(alternative),
        Some(&route_action::ClusterSpecifier::Cluster("y".into()))
    );
    assert_eq!(
        cluster_of(&vh.routes[3]),
        Some(&route_action::ClusterSpecifier::Cluster("x".into()))
    );
    let clusters: Vec<&str> = resources.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(clusters, ["x", "y", "z"]);
    assert!(
        resources.listeners.iter().all(|l| l.name != HTTPS_LISTENER),
        "no SNI certificate, no HTTPS listener"
    );
}

/// What Gateway API's HTTPRoute adds over Ingress lowers without a new concept
/// in the Envoy layer: header, query and method conditions, a full-match
/// regular expression, a redirect of scheme/host/port/prefix, a request
/// deadline and a mirror.
#[test]
fn gateway_api_matches_redirects_timeouts_and_mirrors_lower_to_envoy() {
    use envoy_types::pb::envoy::config::route::v3::{query_parameter_matcher, route_match};
    let mut model = hand_made_model();
    let mut policy = (*policy()).clone();
    policy.timeouts.request = Some(Duration::from_secs(10));
    policy.mirrors = vec![Mirror {
        backend: "m".into(),
        percent: 25,
        per_million: None,
        host: None,
    }];
    let mut matched = route(
        PathMatch::RegularExpression("/v[0-9]+/items".into()),
        to(&[("x", 1)]),
        vec![],
    );
    matched.policy = Arc::new(policy);
    matched.conditions = RouteConditions {
        headers: vec![HeaderMatch::Regex {
            name: "x-tier".into(),
            regex: "gold|silver".into(),
        }],
        query: vec![QueryMatch::Exact {
            name: "debug".into(),
            value: "1".into(),
        }],
        method: Some("POST".into()),
    };
    let redirect = route(
        PathMatch::Prefix("/shop".into()),
        Action::Redirect(Redirect {
            scheme: Some("https".into()),
            host: Some("www.example.com".into()),
            port: Some(8443),
            path: Some(RedirectPath::Prefix("/store".into())),
            status: 302,
            strip_query: false,
        }),
        vec![],
    );
    model.routes.hosts.insert(
        HostMatch::Exact("api.example.com".into()),
        vec![matched, redirect],
    );
    model.backends.insert("m".into(), backend("m"));
    let resources = build(&model);
    assert_eq!(resources.consistency_problems(), Vec::<String>::new());
    let vh = resources.routes[0]
        .virtual_hosts
        .iter()
        .find(|v| v.name == "api.example.com")
        .expect("the host's virtual host");
    let m = vh.routes[0].r#match.as_ref().expect("match");
    assert_eq!(
        m.path_specifier,
        Some(route_match::PathSpecifier::SafeRegex(
            envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: "/v[0-9]+/items".into(),
                ..Default::default()
            }
        )),
        "a full, case-sensitive match: no (?i) and no trailing .*"
    );
    let headers: Vec<&str> = m.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(headers, ["x-tier", ":method"]);
    assert_eq!(m.query_parameters.len(), 1);
    assert_eq!(m.query_parameters[0].name, "debug");
    assert!(matches!(
        &m.query_parameters[0].query_parameter_match_specifier,
        Some(query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(s))
            if s.match_pattern == Some(string_matcher::MatchPattern::Exact("1".into()))
    ));
    let Some(route::Action::Route(a)) = &vh.routes[0].action else {
        panic!("a forwarding route: {:?}", vh.routes[0].action);
    };
    assert_eq!(a.timeout.as_ref().map(|d| d.seconds), Some(10));
    assert_eq!(a.request_mirror_policies.len(), 1);
    assert_eq!(a.request_mirror_policies[0].cluster, "m");
    let fraction = a.request_mirror_policies[0]
        .runtime_fraction
        .as_ref()
        .and_then(|f| f.default_value.as_ref())
        .expect("a 25% share");
    assert_eq!(fraction.numerator, 25);
    let Some(route::Action::Redirect(r)) = &vh.routes[1].action else {
        panic!("a redirect: {:?}", vh.routes[1].action);
    };
    assert_eq!(
        r.scheme_rewrite_specifier,
        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
            "https".into()
        ))
    );
    assert_eq!(
        (r.host_redirect.as_str(), r.port_redirect),
        ("www.example.com", 8443)
    );
    assert_eq!(
        r.path_rewrite_specifier,
        Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
            "/store".into()
        ))
    );
    assert_eq!(
        r.response_code,
        redirect_action::RedirectResponseCode::Found as i32
    );

    // A mirror to a backend the model does not hold is a dangling reference
    // (nothing but the mirror names "m").
    model.backends.remove("m");
    let problems = build(&model).consistency_problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"m\"") || p.contains(" m ") || p.ends_with(" m")),
        "the missing mirror cluster is reported: {problems:?}"
    );
}

#[test]
fn cors_origins_match_per_source_semantics_and_the_filter_comes_first_when_used() {
    use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
    use prost::Message;
    let cors = |origin_match| Cors {
        allow_origins: vec![
            "https://*.example.com".into(),
            "https://a.example.org".into(),
        ],
        allow_methods: vec!["GET".into()],
        origin_match,
        ..Cors::default()
    };
    let matchers = |c: &Cors| {
        let any = filters::cors::per_route(c);
        let p = CorsPolicy::decode(any.value.as_slice()).unwrap();
        p.allow_origin_string_match
            .into_iter()
            .map(|m| {
                let pattern = match m.match_pattern.unwrap() {
                    string_matcher::MatchPattern::SafeRegex(r) => format!("re:{}", r.regex),
                    string_matcher::MatchPattern::Exact(e) => format!("exact:{e}"),
                    other => panic!("{other:?}"),
                };
                (pattern, m.ignore_case)
            })
            .collect::<Vec<_>>()
    };
    // Gateway API: one or more labels, exact case.
    assert_eq!(
        matchers(&cors(OriginMatch::Labels)),
        [
            (r"re:https://[^/]+\.example\.com".to_string(), false),
            ("exact:https://a.example.org".to_string(), false)
        ]
    );
    // ingress-nginx: one label, any case (Envoy refuses ignore_case on a regex).
    assert_eq!(
        matchers(&cors(OriginMatch::OneLabelIgnoreCase)),
        [
            (
                r"re:(?i)https://[A-Za-z0-9-]+\.example\.com".to_string(),
                false
            ),
            ("exact:https://a.example.org".to_string(), true)
        ]
    );
    let mut model = hand_made_model();
    let name = |m: &Model| filters::HttpFilters::of(m).chain()[0].name.clone();
    assert_ne!(name(&model), filters::cors::NAME);
    let with_cors = Arc::new(RoutePolicy {
        cors: Some(cors(OriginMatch::OneLabelIgnoreCase)),
        ..(*policy()).clone()
    });
    for routes in model.routes.hosts.values_mut() {
        routes[0].policy = with_cors.clone();
    }
    assert_eq!(name(&model), filters::cors::NAME);
}
