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
        },
        retry: Retry::default(),
        affinity: Affinity::None,
        access: AccessList::default(),
        rate_limit: None,
        headers: HeaderEdits::default(),
        max_body_bytes: None,
        compression: None,
    })
}

fn to(backends: &[(&str, u32)]) -> Action {
    Action::Forward(
        backends
            .iter()
            .map(|(b, w)| WeightedBackend {
                backend: (*b).into(),
                weight: *w,
            })
            .collect(),
    )
}

fn route(path: PathMatch, action: Action, alternatives: Vec<Alternative>) -> Route {
    let object = Arc::new(ObjectRef::new("HTTPRoute", "gw", "shop"));
    Route {
        provenance: Provenance::new(&object, "spec.rules[0]"),
        path,
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
            Action::Redirect {
                path: "/new".into(),
                status: 301,
            },
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
