//! Translation of the ingress-nginx annotations of issue 13 item 7 into
//! Envoy protos: mirrors, concurrency limits, rate-limit exemptions, the
//! retry deadline, cookie attributes, canary by header pattern and
//! service-upstream.

use super::tests::{
    annotated, backend, endpoint_addrs, errors, http_routes, ingress, path, rule, service,
    svc_with_eps,
};
use crate::diagnostics::Severity;
use crate::translate::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::route::v3::{route, Route, RouteAction};
use k8s_openapi::api::networking::v1::Ingress;

pub(super) fn n(k: &str) -> String {
    format!("nginx.ingress.kubernetes.io/{k}")
}

/// Ingress `name` for `host` `/` → `svc`, with nginx annotations.
pub(super) fn ing(name: &str, age: i64, host: &str, svc: &str, pairs: &[(&str, &str)]) -> Ingress {
    let keys: Vec<(String, &str)> = pairs.iter().map(|(k, v)| (n(k), *v)).collect();
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    annotated(
        ingress(
            "shop",
            name,
            age,
            vec![rule(
                Some(host),
                vec![path("/", "Prefix", backend(svc, 80))],
            )],
        ),
        &refs,
    )
}

/// The tenant `shop` (and `other`, outside it when `scoped`) with Services.
pub(super) fn tenant(
    ingresses: Vec<Ingress>,
    services: &[(&str, &str)],
    scoped: bool,
) -> Translation {
    let mut o = TenantObjects {
        ingresses,
        ..Default::default()
    };
    for (i, (ns, s)) in services.iter().enumerate() {
        let (svc, es) = svc_with_eps(ns, s, &format!("10.0.0.{}", i + 1));
        o.services.push(svc);
        o.endpoint_slices.push(es);
    }
    let options = GatewayOptions {
        namespaces: scoped.then(|| ["shop".to_string()].into()),
        ..GatewayOptions::default()
    };
    translate(&o, &options)
}

/// The Envoy route answering `/` of `host` (the last one: after alternatives).
pub(super) fn main_route<'t>(t: &'t Translation, host: &str) -> &'t Route {
    http_routes(t)
        .virtual_hosts
        .iter()
        .find(|v| v.domains == [host])
        .and_then(|v| v.routes.iter().rfind(|r| r.name.ends_with("|prefix:/")))
        .unwrap_or_else(|| panic!("no route for {host}"))
}

pub(super) fn action(r: &Route) -> &RouteAction {
    match r.action.as_ref() {
        Some(route::Action::Route(a)) => a,
        other => panic!("{other:?}"),
    }
}

fn cluster<'t>(t: &'t Translation, name_prefix: &str) -> Vec<&'t Cluster> {
    t.resources
        .clusters
        .iter()
        .filter(|c| c.name.starts_with(name_prefix))
        .collect()
}

#[test]
fn a_mirror_target_of_the_tenant_becomes_a_mirror_policy_with_its_host() {
    let t = tenant(
        vec![
            ing(
                "web",
                0,
                "shop.example.com",
                "web",
                &[
                    ("mirror-target", "http://mirror.shop$request_uri"),
                    ("mirror-host", "copy.example.com"),
                ],
            ),
            ing(
                "tls-mirror",
                1,
                "api.example.com",
                "web",
                &[("mirror-target", "https://mirror.shop:80")],
            ),
        ],
        &[("shop", "web"), ("shop", "mirror")],
        true,
    );
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let m = &action(main_route(&t, "shop.example.com")).request_mirror_policies;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].cluster, "shop/mirror/80");
    assert_eq!(m[0].host_rewrite_literal, "copy.example.com");
    assert!(m[0].disable_shadow_host_suffix_append);
    assert!(m[0].runtime_fraction.is_none(), "every request");
    // https: a TLS cluster of its own; the Host is the target's.
    let m = &action(main_route(&t, "api.example.com")).request_mirror_policies;
    assert_eq!(m[0].host_rewrite_literal, "mirror.shop:80");
    let tls = t
        .resources
        .clusters
        .iter()
        .find(|c| c.name == m[0].cluster)
        .unwrap();
    assert!(tls.name.starts_with("shop/mirror/80/"), "{}", tls.name);
    assert!(tls.transport_socket.is_some());
}

#[test]
fn a_mirror_outside_the_tenant_or_missing_is_refused_naming_the_annotation() {
    for target in [
        "http://mirror.other",
        "http://missing.shop",
        "http://mirror.shop:81",
    ] {
        let t = tenant(
            vec![
                ing(
                    "web",
                    0,
                    "shop.example.com",
                    "web",
                    &[("mirror-target", target)],
                ),
                ing("ok", 1, "ok.example.com", "web", &[]),
            ],
            &[("shop", "web"), ("shop", "mirror"), ("other", "mirror")],
            true,
        );
        let e = errors(&t);
        assert_eq!(e.len(), 1, "{target}: {e:?}");
        assert_eq!(
            e[0].field,
            format!("metadata.annotations[{:?}]", n("mirror-target"))
        );
        assert!(e[0].message.contains("not served"), "{}", e[0].message);
        let vhosts: Vec<&str> = http_routes(&t)
            .virtual_hosts
            .iter()
            .flat_map(|v| v.domains.iter().map(String::as_str))
            .collect();
        assert!(
            !vhosts.contains(&"shop.example.com"),
            "{target}: {vhosts:?}"
        );
        assert!(vhosts.contains(&"ok.example.com"));
        assert!(t
            .resources
            .clusters
            .iter()
            .all(|c| !c.name.contains("mirror")));
    }
}

#[test]
fn limit_connections_is_a_circuit_breaker_on_a_cluster_per_ingress() {
    let t = tenant(
        vec![
            ing(
                "a",
                0,
                "a.example.com",
                "web",
                &[("limit-connections", "3")],
            ),
            ing(
                "b",
                1,
                "b.example.com",
                "web",
                &[("limit-connections", "3")],
            ),
            ing("c", 2, "c.example.com", "web", &[]),
        ],
        &[("shop", "web")],
        true,
    );
    let limited: Vec<&Cluster> = cluster(&t, "shop/web/80/");
    assert_eq!(limited.len(), 2, "one per Ingress");
    for c in &limited {
        let th = &c.circuit_breakers.as_ref().unwrap().thresholds;
        assert_eq!(th.len(), 1);
        assert_eq!(th[0].max_requests.as_ref().unwrap().value, 3);
    }
    let plain = cluster(&t, "shop/web/80");
    assert!(plain
        .iter()
        .any(|c| c.name == "shop/web/80" && c.circuit_breakers.is_none()));
    let a = &action(main_route(&t, "a.example.com")).cluster_specifier;
    let b = &action(main_route(&t, "b.example.com")).cluster_specifier;
    assert_ne!(a, b);
}

#[test]
fn service_upstream_uses_the_cluster_ip_and_a_headless_service_keeps_its_endpoints() {
    let mut with_ip = service("shop", "web", &[(None, 80)]);
    with_ip.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.10".into());
    let mut headless = service("shop", "hl", &[(None, 80)]);
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let (_, web_eps) = svc_with_eps("shop", "web", "10.0.0.1");
    let (_, hl_eps) = svc_with_eps("shop", "hl", "10.0.0.2");
    let o = TenantObjects {
        ingresses: vec![
            ing(
                "vip",
                0,
                "vip.example.com",
                "web",
                &[("service-upstream", "true")],
            ),
            ing("pods", 1, "pods.example.com", "web", &[]),
            ing(
                "hl",
                2,
                "hl.example.com",
                "hl",
                &[("service-upstream", "true")],
            ),
        ],
        services: vec![with_ip, headless],
        endpoint_slices: vec![web_eps, hl_eps],
        ..Default::default()
    };
    let t = translate(&o, &GatewayOptions::default());
    let vip = cluster(&t, "shop/web/80/");
    assert_eq!(vip.len(), 1);
    assert_eq!(
        endpoint_addrs(&t, &vip[0].name),
        [("10.96.0.10".into(), 80)]
    );
    assert_eq!(
        endpoint_addrs(&t, "shop/web/80"),
        [("10.0.0.1".into(), 8080)]
    );
    // Headless: a warning naming the annotation's setting, the endpoints served.
    let w: Vec<_> = t
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message.contains("service-upstream"),
        "{}",
        w[0].message
    );
    assert_eq!(
        endpoint_addrs(&t, "shop/hl/80"),
        [("10.0.0.2".into(), 8080)]
    );
}

#[test]
fn canary_by_header_pattern_is_a_regex_alternative_before_the_main_route() {
    use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    let t = tenant(
        vec![
            ing("main", 0, "shop.example.com", "web", &[]),
            ing(
                "canary",
                1,
                "shop.example.com",
                "canary",
                &[
                    ("canary", "true"),
                    ("canary-by-header", "X-Version"),
                    ("canary-by-header-pattern", "^v2"),
                ],
            ),
        ],
        &[("shop", "web"), ("shop", "canary")],
        true,
    );
    let vh = http_routes(&t)
        .virtual_hosts
        .iter()
        .find(|v| v.domains == ["shop.example.com"])
        .unwrap();
    let names: Vec<&str> = vh.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "shop/main|shop.example.com|prefix:/|canary:header-pattern",
            "shop/main|shop.example.com|prefix:/"
        ]
    );
    let h = &vh.routes[0].r#match.as_ref().unwrap().headers[0];
    assert_eq!(h.name, "x-version");
    let Some(HeaderMatchSpecifier::StringMatch(m)) = &h.header_match_specifier else {
        panic!("{h:?}")
    };
    let Some(MatchPattern::SafeRegex(re)) = &m.match_pattern else {
        panic!("{m:?}")
    };
    assert_eq!(re.regex, ".*(?:^v2).*");
    let to = |r: &Route| action(r).cluster_specifier.clone();
    assert_ne!(to(&vh.routes[0]), to(&vh.routes[1]));
}

#[test]
fn cookie_attributes_and_change_on_failure_reach_the_hash_and_retry_policies() {
    use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
    let t = tenant(
        vec![
            ing(
                "sticky",
                0,
                "a.example.com",
                "web",
                &[
                    ("affinity", "cookie"),
                    ("session-cookie-expires", "600"),
                    ("session-cookie-secure", "true"),
                    ("session-cookie-change-on-failure", "true"),
                ],
            ),
            ing(
                "plain",
                1,
                "b.example.com",
                "web",
                &[("affinity", "cookie")],
            ),
        ],
        &[("shop", "web")],
        true,
    );
    let a = action(main_route(&t, "a.example.com"));
    let Some(PolicySpecifier::Cookie(c)) = &a.hash_policy[0].policy_specifier else {
        panic!("{:?}", a.hash_policy)
    };
    assert_eq!(c.ttl.as_ref().unwrap().seconds, 600);
    let attrs: Vec<(&str, &str)> = c
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(attrs, [("Secure", "")]);
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retry_host_predicate.len(), 1);
    assert_eq!(
        retry.retry_host_predicate[0].name,
        "envoy.retry_host_predicates.previous_hosts"
    );
    assert!(retry.host_selection_retry_max_attempts > 1);
    let b = action(main_route(&t, "b.example.com"));
    let Some(PolicySpecifier::Cookie(c)) = &b.hash_policy[0].policy_specifier else {
        panic!()
    };
    assert!(c.attributes.is_empty());
    let retry = b.retry_policy.as_ref().unwrap();
    assert!(retry.retry_host_predicate.is_empty());
    assert_eq!(retry.host_selection_retry_max_attempts, 0);
}

#[test]
fn proxy_next_upstream_timeout_is_the_route_timeout() {
    let t = tenant(
        vec![
            ing(
                "a",
                0,
                "a.example.com",
                "web",
                &[("proxy-next-upstream-timeout", "7")],
            ),
            ing(
                "b",
                1,
                "b.example.com",
                "web",
                &[("proxy-next-upstream-timeout", "0")],
            ),
        ],
        &[("shop", "web")],
        true,
    );
    let timeout = |host| action(main_route(&t, host)).timeout.unwrap().seconds;
    assert_eq!(timeout("a.example.com"), 7);
    assert_eq!(timeout("b.example.com"), 0, "0: no deadline");
}

#[test]
fn limit_allowlist_adds_rbac_shadow_rules_and_an_exemption_entry_to_the_descriptors() {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::config::route::v3::rate_limit::action::ActionSpecifier;
    use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
    use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::RbacPerRoute;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_filter, HttpConnectionManager,
    };
    use prost::Message;
    let t = tenant(
        vec![
            ing(
                "exempting",
                0,
                "a.example.com",
                "web",
                &[("limit-rps", "5"), ("limit-allowlist", "10.1.0.0/16")],
            ),
            ing("plain", 1, "b.example.com", "web", &[("limit-rps", "5")]),
        ],
        &[("shop", "web")],
        true,
    );
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let a = main_route(&t, "a.example.com");
    let rbac = RbacPerRoute::decode(
        a.typed_per_filter_config["envoy.filters.http.rbac"]
            .value
            .as_slice(),
    )
    .unwrap()
    .rbac
    .unwrap();
    assert!(rbac.rules.is_none(), "nothing enforced");
    let shadow = rbac.shadow_rules.unwrap();
    assert_eq!(shadow.policies.len(), 1);
    let kinds = |r: &Route| -> Vec<String> {
        action(r).rate_limits[0]
            .actions
            .iter()
            .map(|a| match a.action_specifier.as_ref().unwrap() {
                ActionSpecifier::GenericKey(_) => "generic_key".to_string(),
                ActionSpecifier::Metadata(m) => format!("metadata:{}", m.descriptor_key),
                ActionSpecifier::RemoteAddress(_) => "remote_address".to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(
        kinds(a),
        ["generic_key", "metadata:limited", "remote_address"]
    );
    let b = main_route(&t, "b.example.com");
    assert_eq!(kinds(b), ["generic_key", "remote_address"]);
    assert!(!b
        .typed_per_filter_config
        .contains_key("envoy.filters.http.rbac"));
    // The listener's descriptors ask for `limited=denied` of the exempting Ingress only.
    let Some(ConfigType::TypedConfig(any)) =
        &t.resources.listeners[0].filter_chains[0].filters[0].config_type
    else {
        panic!("no HCM")
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    let limiter = hcm
        .http_filters
        .iter()
        .find(|f| f.name.starts_with("tenantgateway.io/ratelimit"))
        .unwrap();
    let Some(http_filter::ConfigType::TypedConfig(any)) = &limiter.config_type else {
        panic!()
    };
    let config = LocalRateLimit::decode(any.value.as_slice()).unwrap();
    let entries: Vec<Vec<String>> = config
        .descriptors
        .iter()
        .map(|d| {
            d.entries
                .iter()
                .map(|e| format!("{}={}", e.key, e.value))
                .collect()
        })
        .collect();
    assert_eq!(
        entries,
        [
            vec![
                "generic_key=shop/exempting|rps".to_string(),
                "limited=denied".to_string(),
                "remote_address=".to_string()
            ],
            vec![
                "generic_key=shop/plain|rps".to_string(),
                "remote_address=".to_string()
            ],
        ]
    );
}

#[test]
fn default_backend_makes_an_aggregate_cluster_of_each_backend_and_the_fallback() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, LbPolicy};
    use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig;
    use prost::Message;
    let t = tenant(
        vec![
            ing(
                "web",
                0,
                "shop.example.com",
                "web",
                &[("default-backend", "fallback")],
            ),
            ing(
                "bad",
                1,
                "bad.example.com",
                "web",
                &[("default-backend", "missing")],
            ),
        ],
        &[("shop", "web"), ("shop", "fallback")],
        true,
    );
    let a = &action(main_route(&t, "shop.example.com")).cluster_specifier;
    let name = "shop/web/80|or|shop/fallback/80";
    assert_eq!(
        a,
        &Some(
            envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                name.into()
            )
        )
    );
    let c = t
        .resources
        .clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap();
    assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
    let Some(ClusterDiscoveryType::ClusterType(custom)) = &c.cluster_discovery_type else {
        panic!("{c:?}")
    };
    assert_eq!(custom.name, "envoy.clusters.aggregate");
    let cfg =
        ClusterConfig::decode(custom.typed_config.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(cfg.clusters, ["shop/web/80", "shop/fallback/80"]);
    // Both members exist with endpoints; the aggregate has none of its own.
    assert!(t.resources.endpoints.iter().all(|e| e.cluster_name != name));
    assert_eq!(endpoint_addrs(&t, "shop/fallback/80").len(), 1);
    // A fallback that does not resolve: a warning naming it, served without.
    let w: Vec<_> = t
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        w[0].field,
        format!("metadata.annotations[{:?}]", n("default-backend"))
    );
    let b = &action(main_route(&t, "bad.example.com")).cluster_specifier;
    assert_eq!(
        b,
        &Some(
            envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                "shop/web/80".into()
            )
        )
    );
}
