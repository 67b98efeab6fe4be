//! Gateway API lowering and status, one spec rule per test. Every
//! translation here goes through `translate`, which also asserts that the
//! resources are consistent and that the objects in reverse order give the
//! same output.

use super::*;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, query_parameter_matcher, route, route_action, route_match, Route as EnvoyRoute,
    VirtualHost,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;

const NAMESPACES: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: infra, labels: {team: infra}}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: apps}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: other}}
";

/// A Service `name` (port 8080) in `ns` with one ready endpoint.
fn service(ns: &str, name: &str, ip: &str) -> String {
    format!(
        "
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: 3000}}]
endpoints: [{{addresses: [{ip}], conditions: {{ready: true}}}}]
"
    )
}

fn services() -> String {
    [
        service("infra", "v1", "10.0.0.1"),
        service("infra", "v2", "10.0.0.2"),
        service("infra", "v3", "10.0.0.3"),
        service("apps", "web", "10.0.1.1"),
        service("other", "foreign", "10.0.2.1"),
    ]
    .concat()
}

/// The Gateway `gw` in `infra` with these listeners (YAML flow list).
fn gateway(listeners: &str) -> String {
    format!(
        "
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra, generation: 3}}
spec:
  gatewayClassName: tenant-gateway
  listeners: {listeners}
"
    )
}

const HTTP80: &str = "[{name: http, port: 80, protocol: HTTP}]";

/// An HTTPRoute in `ns` named `name` with parentRef to gw and this spec body.
fn route(ns: &str, name: &str, body: &str) -> String {
    format!(
        "
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}, generation: 7}}
spec:
{body}
"
    )
}

fn objects(docs: &[&str]) -> GatewayApiObjects {
    let mut text = String::from(NAMESPACES);
    text.push_str(&services());
    for d in docs {
        text.push_str(d);
    }
    GatewayApiObjects::from_yaml(&text).expect("fixture parses")
}

fn options() -> GatewayApiOptions {
    GatewayApiOptions {
        bind_address: "0.0.0.0".into(),
        tenant: "acme".into(),
        reserved_ports: vec![],
        access_log: Default::default(),
        client_address: Default::default(),
    }
}

fn reversed(o: &GatewayApiObjects) -> GatewayApiObjects {
    let mut r = o.clone();
    r.http_routes.reverse();
    r.grpc_routes.reverse();
    r.tls_routes.reverse();
    r.tcp_routes.reverse();
    r.udp_routes.reverse();
    r.reference_grants.reverse();
    r.services.reverse();
    r.endpoint_slices.reverse();
    r.secrets.reverse();
    r
}

/// Translated, consistent, and the same for the objects in reverse order.
fn translate_objects(o: &GatewayApiObjects) -> GatewayTranslation {
    let t = translate_gateway(o, &options());
    assert_eq!(
        t.resources.consistency_problems(),
        Vec::<String>::new(),
        "inconsistent resources"
    );
    let again = translate_gateway(&reversed(o), &options());
    assert_eq!(
        crate::Snapshot::from(&t.resources),
        crate::Snapshot::from(&again.resources),
        "output depends on input order"
    );
    assert_eq!(t.routes, again.routes);
    assert_eq!(t.gateway, again.gateway);
    assert_eq!(t.diagnostics, again.diagnostics);
    t
}

fn translate(docs: &[&str]) -> GatewayTranslation {
    translate_objects(&objects(docs))
}

mod udp;

fn route_status<'a>(t: &'a GatewayTranslation, name: &str) -> &'a RouteStatusModel {
    t.routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no status for route {name}: {:#?}", t.routes))
}

/// (status, reason) of a condition of the route's (first) parent status.
fn cond(t: &GatewayTranslation, route: &str, type_: &str) -> (String, String) {
    let c = route_status(t, route)
        .condition(type_)
        .unwrap_or_else(|| panic!("{route} has no {type_}"));
    (c.status.clone(), c.reason.clone())
}

fn is(status: &str, reason: &str) -> (String, String) {
    (status.into(), reason.into())
}

fn listener_cond(t: &GatewayTranslation, listener: &str, type_: &str) -> (String, String) {
    let l = t
        .gateway
        .listener(listener)
        .unwrap_or_else(|| panic!("no listener {listener}"));
    let c = l.condition(type_).unwrap();
    (c.status.clone(), c.reason.clone())
}

fn vhost<'a>(t: &'a GatewayTranslation, config: &str, domain: &str) -> &'a VirtualHost {
    let rc = t
        .resources
        .routes
        .iter()
        .find(|r| r.name == config)
        .unwrap_or_else(|| panic!("no route configuration {config}"));
    rc.virtual_hosts
        .iter()
        .find(|v| v.domains == [domain.to_string()])
        .unwrap_or_else(|| {
            panic!(
                "no virtual host {domain} in {config}: {:?}",
                rc.virtual_hosts
                    .iter()
                    .map(|v| &v.domains)
                    .collect::<Vec<_>>()
            )
        })
}

fn domains(t: &GatewayTranslation, config: &str) -> Vec<String> {
    t.resources
        .routes
        .iter()
        .filter(|r| r.name == config)
        .flat_map(|r| r.virtual_hosts.iter().flat_map(|v| v.domains.clone()))
        .collect()
}

fn string_match(m: &Option<string_matcher::MatchPattern>) -> String {
    match m {
        Some(string_matcher::MatchPattern::Exact(v)) => format!("={v}"),
        Some(string_matcher::MatchPattern::SafeRegex(r)) => format!("~{}", r.regex),
        other => format!("{other:?}"),
    }
}

/// `match -> action`, compact: `prefix /a h:x=1 q:y=2 -> infra/v1/8080`.
fn summary(r: &EnvoyRoute) -> String {
    let m = r.r#match.as_ref().unwrap();
    let mut s = match m.path_specifier.as_ref().unwrap() {
        route_match::PathSpecifier::Path(p) => format!("exact {p}"),
        route_match::PathSpecifier::Prefix(p)
        | route_match::PathSpecifier::PathSeparatedPrefix(p) => {
            format!("prefix {p}")
        }
        route_match::PathSpecifier::SafeRegex(r) => format!("regex {}", r.regex),
        other => format!("{other:?}"),
    };
    for h in &m.headers {
        if let Some(header_matcher::HeaderMatchSpecifier::StringMatch(sm)) =
            &h.header_match_specifier
        {
            s.push_str(&format!(" h:{}{}", h.name, string_match(&sm.match_pattern)));
        }
    }
    for q in &m.query_parameters {
        if let Some(query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm)) =
            &q.query_parameter_match_specifier
        {
            s.push_str(&format!(" q:{}{}", q.name, string_match(&sm.match_pattern)));
        }
    }
    s.push_str(" -> ");
    s.push_str(&match r.action.as_ref().unwrap() {
        route::Action::Route(a) => match a.cluster_specifier.as_ref().unwrap() {
            route_action::ClusterSpecifier::Cluster(c) => c.clone(),
            route_action::ClusterSpecifier::WeightedClusters(w) => w
                .clusters
                .iter()
                .map(|c| {
                    let fault = if c.typed_per_filter_config.is_empty() {
                        ""
                    } else {
                        "(500)"
                    };
                    format!(
                        "{}{fault}:{}",
                        c.name,
                        c.weight.as_ref().map_or(0, |w| w.value)
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
            other => format!("{other:?}"),
        },
        route::Action::DirectResponse(d) => format!("status {}", d.status),
        route::Action::Redirect(_) => "redirect".into(),
        other => format!("{other:?}"),
    });
    s
}

fn summaries(t: &GatewayTranslation, config: &str, domain: &str) -> Vec<String> {
    vhost(t, config, domain)
        .routes
        .iter()
        .map(summary)
        .collect()
}

fn to_v1() -> &'static str {
    "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"
}

// ---------------------------------------------------------------- listeners

#[test]
fn container_port_moves_privileged_ports_up_by_10000() {
    for (listener, bound) in [
        (80, 10080),
        (443, 10443),
        (1023, 11023),
        (1024, 1024),
        (8080, 8080),
    ] {
        assert_eq!(container_port(listener), bound, "port {listener}");
    }
}

#[test]
fn a_route_in_the_gateways_namespace_is_accepted_and_served_on_the_listener_port() {
    let t = translate(&[&gateway(HTTP80), &route("infra", "r", to_v1())]);
    assert_eq!(cond(&t, "r", "Accepted"), is("True", "Accepted"));
    assert_eq!(cond(&t, "r", "ResolvedRefs"), is("True", "ResolvedRefs"));
    assert_eq!(t.gateway.listener("http").unwrap().attached_routes, 1);
    assert_eq!(
        t.gateway.condition("Accepted").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        t.gateway.condition("Programmed").map(|c| c.status.as_str()),
        Some("True")
    );
    let l = &t.resources.listeners;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].name, "gateway-80");
    let addr = format!("{:?}", l[0].address);
    assert!(addr.contains("PortValue(10080)"), "{addr}");
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix / -> infra/v1/8080"]
    );
}

#[test]
fn every_status_carries_the_objects_generation() {
    let t = translate(&[&gateway(HTTP80), &route("infra", "r", to_v1())]);
    let all = t
        .gateway
        .conditions
        .iter()
        .chain(t.gateway.listeners.iter().flat_map(|l| l.conditions.iter()));
    for c in all {
        assert_eq!(c.observed_generation, Some(3), "{c:?}");
    }
    for c in &route_status(&t, "r").conditions {
        assert_eq!(c.observed_generation, Some(7), "{c:?}");
    }
}

#[test]
fn listener_status_lists_its_supported_kinds_and_four_conditions() {
    let t = translate(&[&gateway(HTTP80)]);
    let l = t.gateway.listener("http").unwrap();
    assert_eq!(
        l.supported_kinds,
        [
            (gwapi::GROUP.to_string(), "HTTPRoute".to_string()),
            (gwapi::GROUP.to_string(), "GRPCRoute".to_string())
        ]
    );
    let types: Vec<&str> = l.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        ["Accepted", "Programmed", "ResolvedRefs", "Conflicted"]
    );
    assert_eq!(
        listener_cond(&t, "http", "Conflicted"),
        is("False", "NoConflicts")
    );
}

#[test]
fn an_unsupported_protocol_is_not_accepted_and_not_served() {
    let t = translate(&[&gateway(
        "[{name: http, port: 80, protocol: HTTP}, {name: quic, port: 5353, protocol: example.com/QUIC}]",
    )]);
    assert_eq!(
        listener_cond(&t, "quic", "Accepted"),
        is("False", "UnsupportedProtocol")
    );
    assert_eq!(
        listener_cond(&t, "quic", "Programmed"),
        is("False", "Invalid")
    );
    assert_eq!(
        listener_cond(&t, "http", "Accepted"),
        is("True", "Accepted")
    );
    let gw = t.gateway.condition("Accepted").unwrap();
    assert_eq!(
        (gw.status.as_str(), gw.reason.as_str()),
        ("True", "ListenersNotValid")
    );
    assert_eq!(t.resources.listeners.len(), 1);
}

#[test]
fn only_invalid_route_kinds_leave_no_supported_kinds_and_resolved_refs_false() {
    let t = translate(&[&gateway(
        "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: FooRoute}]}}]",
    )]);
    let l = t.gateway.listener("http").unwrap();
    assert!(l.supported_kinds.is_empty());
    assert_eq!(
        listener_cond(&t, "http", "ResolvedRefs"),
        is("False", "InvalidRouteKinds")
    );
}

#[test]
fn valid_and_invalid_route_kinds_keep_the_valid_ones() {
    let t = translate(&[
        &gateway("[{name: http, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}, {kind: FooRoute}]}}]"),
        &route("infra", "r", to_v1()),
    ]);
    let l = t.gateway.listener("http").unwrap();
    assert_eq!(
        l.supported_kinds,
        [(gwapi::GROUP.to_string(), "HTTPRoute".to_string())]
    );
    assert_eq!(
        listener_cond(&t, "http", "ResolvedRefs"),
        is("False", "InvalidRouteKinds")
    );
    assert_eq!(cond(&t, "r", "Accepted"), is("True", "Accepted"));
}

#[test]
fn a_grpc_route_does_not_attach_to_a_listener_allowing_only_http_routes() {
    let t = translate(&[
        &gateway(
            "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}]",
        ),
        "
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: v1, port: 8080}]}]
",
    ]);
    assert_eq!(
        cond(&t, "g", "Accepted"),
        is("False", "NotAllowedByListeners")
    );
}

#[test]
fn listeners_on_one_port_with_the_same_hostname_conflict_and_the_later_is_not_served() {
    let t = translate(&[&gateway(
        "[{name: a, port: 80, protocol: HTTP, hostname: x.example.com}, {name: b, port: 80, protocol: HTTP, hostname: x.example.com}]",
    )]);
    assert_eq!(
        listener_cond(&t, "a", "Conflicted"),
        is("False", "NoConflicts")
    );
    assert_eq!(
        listener_cond(&t, "b", "Conflicted"),
        is("True", "HostnameConflict")
    );
    assert_eq!(listener_cond(&t, "b", "Programmed"), is("False", "Invalid"));
}

#[test]
fn listeners_on_one_port_with_different_protocols_conflict() {
    let t = translate(&[&gateway(
        "[{name: a, port: 8443, protocol: HTTP}, {name: b, port: 8443, protocol: TLS, tls: {mode: Passthrough}}]",
    )]);
    assert_eq!(
        listener_cond(&t, "b", "Conflicted"),
        is("True", "ProtocolConflict")
    );
}

#[test]
fn a_port_whose_container_port_another_port_binds_is_unavailable() {
    let t = translate(&[&gateway(
        "[{name: a, port: 80, protocol: HTTP}, {name: b, port: 10080, protocol: HTTP}]",
    )]);
    assert_eq!(listener_cond(&t, "a", "Accepted"), is("True", "Accepted"));
    assert_eq!(
        listener_cond(&t, "b", "Accepted"),
        is("False", "PortUnavailable")
    );
}

#[test]
fn a_port_the_pod_itself_uses_is_unavailable() {
    let o = objects(&[&gateway(
        "[{name: a, port: 8081, protocol: HTTP}, {name: b, port: 8082, protocol: HTTP}]",
    )]);
    let opts = GatewayApiOptions {
        reserved_ports: vec![8081, 9901],
        access_log: Default::default(),
        client_address: Default::default(),
        ..options()
    };
    let t = translate_gateway(&o, &opts);
    assert_eq!(
        listener_cond(&t, "a", "Accepted"),
        is("False", "PortUnavailable")
    );
    assert_eq!(listener_cond(&t, "b", "Accepted"), is("True", "Accepted"));
    assert_eq!(t.resources.listeners.len(), 1);
}

/// The tenant's client address settings reach a Gateway's listeners: the
/// PROXY protocol's listener filter first, the trusted hops on its HTTP
/// connection manager.
#[test]
fn the_tenants_client_address_settings_apply_to_gateway_listeners() {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use prost::Message;
    let o = objects(&[&gateway("[{name: a, port: 80, protocol: HTTP}]")]);
    let opts = GatewayApiOptions {
        client_address: crate::model::ClientAddress {
            proxy_protocol: true,
            forwarded_for: crate::model::ForwardedForTrust::TrustedHops(2),
        },
        ..options()
    };
    let t = translate_gateway(&o, &opts);
    let by_name = |n: &str| {
        t.resources
            .listeners
            .iter()
            .find(|l| l.name == n)
            .unwrap_or_else(|| panic!("no listener {n}"))
    };
    let http = by_name("gateway-80");
    assert_eq!(
        http.listener_filters[0].name,
        "envoy.filters.listener.proxy_protocol"
    );
    let Some(ConfigType::TypedConfig(any)) = &http.filter_chains[0].filters[0].config_type else {
        panic!("no HCM")
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    assert_eq!(hcm.xff_num_trusted_hops, 2);
    // The defaults: neither.
    let t = translate_gateway(&o, &options());
    let http = t
        .resources
        .listeners
        .iter()
        .find(|l| l.name == "gateway-80")
        .unwrap();
    assert!(http.listener_filters.is_empty());
}

#[test]
fn a_gateway_outside_the_tenant_is_not_accepted_and_serves_nothing() {
    let mut o = objects(&[&gateway(HTTP80), &route("infra", "r", to_v1())]);
    o.namespaces.remove("infra");
    let t = translate_gateway(&o, &options());
    let c = t.gateway.condition("Accepted").unwrap();
    assert_eq!(c.status, "False");
    assert!(c.message.contains("\"infra\""), "{}", c.message);
    assert!(t.resources.listeners.is_empty());
}

#[test]
fn gateway_addresses_are_refused_as_unsupported() {
    let gw = gateway(HTTP80).replace(
        "  gatewayClassName: tenant-gateway\n",
        "  gatewayClassName: tenant-gateway\n  addresses: [{type: IPAddress, value: 10.9.9.9}]\n",
    );
    let t = translate(&[&gw]);
    let c = t.gateway.condition("Accepted").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "UnsupportedAddress")
    );
}

// ------------------------------------------------------------------ attachment

#[test]
fn parent_refs_that_match_no_listener_are_no_matching_parent() {
    let t = translate(&[
        &gateway(HTTP80),
        &route("infra", "by-section", "  parentRefs: [{name: gw, sectionName: nope}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
        &route("infra", "by-port", "  parentRefs: [{name: gw, port: 81}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
        &route("infra", "section-and-port", "  parentRefs: [{name: gw, sectionName: http, port: 81}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
        &route("infra", "matching", "  parentRefs: [{name: gw, sectionName: http, port: 80}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
    ]);
    for r in ["by-section", "by-port", "section-and-port"] {
        assert_eq!(
            cond(&t, r, "Accepted"),
            is("False", "NoMatchingParent"),
            "{r}"
        );
    }
    assert_eq!(cond(&t, "matching", "Accepted"), is("True", "Accepted"));
    assert_eq!(t.gateway.listener("http").unwrap().attached_routes, 1);
}

#[test]
fn routes_naming_another_gateway_get_no_status_from_this_one() {
    let t = translate(&[
        &gateway(HTTP80),
        &route("infra", "elsewhere", "  parentRefs: [{name: other-gw}, {name: gw, namespace: apps}, {name: gw, kind: Service}]\n  rules: []"),
    ]);
    assert!(t.routes.is_empty(), "{:#?}", t.routes);
}

#[test]
fn allowed_routes_namespaces_same_all_and_selector_stay_inside_the_tenant() {
    let body = "  parentRefs: [{name: gw, namespace: infra}]\n  rules: [{backendRefs: [{name: web, port: 8080}]}]";
    let cases = [
        ("{}", false),
        ("{namespaces: {from: Same}}", false),
        ("{namespaces: {from: All}}", true),
        ("{namespaces: {from: Selector, selector: {matchLabels: {team: apps}}}}", true),
        ("{namespaces: {from: Selector, selector: {matchLabels: {team: infra}}}}", false),
        (
            "{namespaces: {from: Selector, selector: {matchExpressions: [{key: team, operator: In, values: [apps, x]}]}}}",
            true,
        ),
        (
            "{namespaces: {from: Selector, selector: {matchExpressions: [{key: team, operator: NotIn, values: [apps]}]}}}",
            false,
        ),
        (
            "{namespaces: {from: Selector, selector: {matchExpressions: [{key: team, operator: Bogus}]}}}",
            false,
        ),
    ];
    for (allowed, accepted) in cases {
        let gw = gateway(&format!(
            "[{{name: http, port: 80, protocol: HTTP, allowedRoutes: {allowed}}}]"
        ));
        let t = translate(&[&gw, &route("apps", "r", body)]);
        let expected = if accepted {
            is("True", "Accepted")
        } else {
            is("False", "NotAllowedByListeners")
        };
        assert_eq!(
            cond(&t, "r", "Accepted"),
            expected,
            "allowedRoutes {allowed}"
        );
        assert_eq!(
            t.gateway.listener("http").unwrap().attached_routes,
            i32::from(accepted),
            "{allowed}"
        );
    }
}

#[test]
fn a_route_outside_the_tenant_never_attaches_even_to_from_all() {
    let gw = gateway(
        "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]",
    );
    let mut o = objects(&[&gw, &route("stranger", "r", "  parentRefs: [{name: gw, namespace: infra}]\n  rules: [{backendRefs: [{name: v1, namespace: infra, port: 8080}]}]")]);
    o.namespaces.remove("stranger");
    let t = translate_objects(&o);
    assert_eq!(
        cond(&t, "r", "Accepted"),
        is("False", "NotAllowedByListeners")
    );
    assert!(route_status(&t, "r")
        .condition("Accepted")
        .unwrap()
        .message
        .contains("stranger"));
    assert_eq!(t.gateway.listener("http").unwrap().attached_routes, 0);
    assert!(
        domains(&t, "gateway-80").is_empty(),
        "nothing is served for it"
    );
}

#[test]
fn hostnames_intersect_as_the_spec_says() {
    use attach::intersect;
    let cases: [(Option<&str>, &str, Option<&str>); 9] = [
        (None, "a.example.com", Some("a.example.com")),
        (None, "*.example.com", Some("*.example.com")),
        (
            Some("a.example.com"),
            "a.example.com",
            Some("a.example.com"),
        ),
        (Some("a.example.com"), "b.example.com", None),
        (
            Some("*.example.com"),
            "a.example.com",
            Some("a.example.com"),
        ),
        (
            Some("*.example.com"),
            "a.b.example.com",
            Some("a.b.example.com"),
        ),
        (Some("*.example.com"), "example.com", None),
        (
            Some("a.example.com"),
            "*.example.com",
            Some("a.example.com"),
        ),
        (Some("*.example.com"), "*.com", Some("*.example.com")),
    ];
    for (listener, route, want) in cases {
        assert_eq!(
            intersect(listener, route).as_deref(),
            want,
            "{listener:?} ∩ {route}"
        );
    }
}

#[test]
fn a_route_whose_hostnames_meet_no_listener_is_no_matching_listener_hostname() {
    let t = translate(&[
        &gateway("[{name: http, port: 80, protocol: HTTP, hostname: foo.example.com}]"),
        &route("infra", "r", "  parentRefs: [{name: gw}]\n  hostnames: [bar.example.com]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
        &route("infra", "ok", "  parentRefs: [{name: gw}]\n  hostnames: [bar.example.com, '*.example.com']\n  rules: [{backendRefs: [{name: v2, port: 8080}]}]"),
    ]);
    assert_eq!(
        cond(&t, "r", "Accepted"),
        is("False", "NoMatchingListenerHostname")
    );
    assert_eq!(t.gateway.listener("http").unwrap().attached_routes, 1);
    // Only the intersection is served: the listener's own hostname.
    assert_eq!(domains(&t, "gateway-80"), ["foo.example.com"]);
}

#[test]
fn listeners_sharing_a_port_serve_their_own_routes_by_hostname() {
    let t = translate(&[
        &gateway(
            "[{name: wild, port: 80, protocol: HTTP, hostname: '*.example.com'}, {name: foo, port: 80, protocol: HTTP, hostname: foo.example.com}, {name: any, port: 80, protocol: HTTP}]",
        ),
        &route("infra", "to-wild", "  parentRefs: [{name: gw, sectionName: wild}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
        &route("infra", "to-foo", "  parentRefs: [{name: gw, sectionName: foo}]\n  rules: [{backendRefs: [{name: v2, port: 8080}]}]"),
        &route("infra", "to-any", "  parentRefs: [{name: gw, sectionName: any}]\n  rules: [{backendRefs: [{name: v3, port: 8080}]}]"),
    ]);
    assert_eq!(
        summaries(&t, "gateway-80", "*.example.com"),
        ["prefix / -> infra/v1/8080"]
    );
    assert_eq!(
        summaries(&t, "gateway-80", "foo.example.com"),
        ["prefix / -> infra/v2/8080"]
    );
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix / -> infra/v3/8080"]
    );
    assert_eq!(
        t.resources.listeners.len(),
        1,
        "one Envoy listener per port"
    );
}

#[test]
fn a_route_attached_without_section_name_attaches_to_every_listener_that_allows_it() {
    let t = translate(&[
        &gateway("[{name: a, port: 80, protocol: HTTP, hostname: a.example.com}, {name: b, port: 8080, protocol: HTTP}]"),
        &route("infra", "r", to_v1()),
    ]);
    assert_eq!(t.gateway.listener("a").unwrap().attached_routes, 1);
    assert_eq!(t.gateway.listener("b").unwrap().attached_routes, 1);
    assert_eq!(domains(&t, "gateway-80"), ["a.example.com"]);
    assert_eq!(domains(&t, "gateway-8080"), ["*"]);
}

// ------------------------------------------------------------------ matching

#[test]
fn precedence_is_exact_then_longest_prefix_then_method_headers_query_across_routes() {
    let t = translate(&[
        &gateway(HTTP80),
        &route(
            "infra",
            "a",
            "  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /shop}, headers: [{name: X-A, value: '1'}]}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /shop}, headers: [{name: x-a, value: '1'}, {name: x-b, value: '2'}]}]
    backendRefs: [{name: v1, port: 8080}]",
        ),
        &route(
            "infra",
            "b",
            "  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop/}, method: GET}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /shop}}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /shop}, queryParams: [{name: q, value: x}]}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /shop/cart}}]
    backendRefs: [{name: v3, port: 8080}]",
        ),
    ]);
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        [
            "exact /shop -> infra/v2/8080",
            "prefix /shop/cart -> infra/v3/8080",
            "prefix /shop h::method=GET -> infra/v2/8080",
            "prefix /shop h:x-a=1 h:x-b=2 -> infra/v1/8080",
            "prefix /shop h:x-a=1 -> infra/v1/8080",
            "prefix /shop q:q=x -> infra/v2/8080",
            "prefix / -> infra/v1/8080",
        ]
    );
}

#[test]
fn ties_go_to_the_oldest_route_then_namespace_and_name() {
    let rule = "  parentRefs: [{name: gw, namespace: infra}]\n  rules: [{matches: [{path: {type: PathPrefix, value: /x}}], backendRefs: [{name: BACKEND, port: 8080, namespace: infra}]}]";
    let gw = gateway(
        "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]",
    );
    let old = route("infra", "zz-old", &rule.replace("BACKEND", "v1")).replace(
        "generation: 7}",
        "generation: 7, creationTimestamp: '2020-01-01T00:00:00Z'}",
    );
    let new_a = route("infra", "aa-new", &rule.replace("BACKEND", "v2")).replace(
        "generation: 7}",
        "generation: 7, creationTimestamp: '2024-01-01T00:00:00Z'}",
    );
    let new_b = route("apps", "aa-new", &rule.replace("BACKEND", "v3")).replace(
        "generation: 7}",
        "generation: 7, creationTimestamp: '2024-01-01T00:00:00Z'}",
    );
    let grant = "
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]
  to: [{group: '', kind: Service}]
";
    let t = translate(&[&gw, &new_a, &new_b, &old, grant]);
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        [
            "prefix /x -> infra/v1/8080",
            "prefix /x -> infra/v3/8080",
            "prefix /x -> infra/v2/8080",
        ],
        "oldest first, then apps/aa-new before infra/aa-new"
    );
}

#[test]
fn path_header_query_and_method_matches_lower_as_written() {
    let t = translate(&[
        &gateway(HTTP80),
        &route(
            "infra",
            "r",
            "  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: RegularExpression, value: '/v[0-9]+/.*'}
    - path: {type: Exact, value: /exact}
      headers: [{name: Version, type: RegularExpression, value: 'v[12]'}]
      queryParams: [{name: Animal, value: whale}]
      method: POST
    backendRefs: [{name: v1, port: 8080}]",
        ),
    ]);
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        [
            "exact /exact h:version~v[12] h::method=POST q:Animal=whale -> infra/v1/8080",
            "regex /v[0-9]+/.* -> infra/v1/8080",
        ]
    );
}

#[test]
fn an_invalid_rule_is_dropped_and_the_route_is_partially_invalid() {
    let t = translate(&[
        &gateway(HTTP80),
        &route(
            "infra",
            "r",
            "  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: RegularExpression, value: '/(unclosed'}}]
    backendRefs: [{name: v1, port: 8080}]
  - backendRefs: [{name: v2, port: 8080}]",
        ),
    ]);
    assert_eq!(cond(&t, "r", "Accepted"), is("True", "Accepted"));
    assert_eq!(
        cond(&t, "r", "PartiallyInvalid"),
        is("True", "UnsupportedValue")
    );
    let msg = &route_status(&t, "r")
        .condition("PartiallyInvalid")
        .unwrap()
        .message;
    assert!(msg.starts_with("Dropped Rule"), "{msg}");
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix / -> infra/v2/8080"]
    );
    assert!(t
        .diagnostics
        .iter()
        .any(|d| d.object.name == "r" && d.field == "spec.rules[0].matches[0]"));
}

#[test]
fn a_route_with_only_invalid_rules_is_not_accepted() {
    let t = translate(&[
        &gateway(HTTP80),
        &route("infra", "r", "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: v1, port: 8080}], timeouts: {request: forever}}]"),
    ]);
    assert_eq!(cond(&t, "r", "Accepted"), is("False", "UnsupportedValue"));
    assert!(route_status(&t, "r")
        .condition("PartiallyInvalid")
        .is_none());
}

// ------------------------------------------------------------------ backends

#[test]
fn unresolved_backends_get_500_and_the_spec_reason() {
    let cases = [
        ("{name: missing, port: 8080}", "BackendNotFound"),
        ("{name: v1, port: 9999}", "BackendNotFound"),
        ("{name: v1, port: 8080, kind: Pod}", "InvalidKind"),
        (
            "{name: v1, port: 8080, group: example.com, kind: Service}",
            "InvalidKind",
        ),
        (
            "{name: web, namespace: apps, port: 8080}",
            "RefNotPermitted",
        ),
        (
            "{name: nothere, namespace: stranger, port: 8080}",
            "RefNotPermitted",
        ),
    ];
    for (backend, reason) in cases {
        let t = translate(&[
            &gateway(HTTP80),
            &route(
                "infra",
                "r",
                &format!("  parentRefs: [{{name: gw}}]\n  rules: [{{backendRefs: [{backend}]}}]"),
            ),
        ]);
        assert_eq!(
            cond(&t, "r", "Accepted"),
            is("True", "Accepted"),
            "{backend}"
        );
        assert_eq!(
            cond(&t, "r", "ResolvedRefs"),
            is("False", reason),
            "{backend}"
        );
        assert_eq!(
            summaries(&t, "gateway-80", "*"),
            ["prefix / -> status 500"],
            "{backend}"
        );
    }
}

#[test]
fn a_rule_without_backends_answers_500() {
    let t = translate(&[
        &gateway(HTTP80),
        &route(
            "infra",
            "r",
            "  parentRefs: [{name: gw}]\n  rules: [{matches: [{path: {value: /none}}]}]",
        ),
    ]);
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix /none -> status 500"]
    );
    assert_eq!(cond(&t, "r", "ResolvedRefs"), is("True", "ResolvedRefs"));
}

#[test]
fn a_reference_grant_in_the_target_namespace_permits_a_cross_namespace_backend() {
    let grant = |to_name: &str| {
        format!(
            "
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: g, namespace: apps}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}}]
  to: [{{group: '', kind: Service{to_name}}}]
"
        )
    };
    let body = "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: web, namespace: apps, port: 8080}]}]";
    for (g, resolved) in [
        (grant(""), true),
        (grant(", name: web"), true),
        (grant(", name: other"), false),
    ] {
        let t = translate(&[&gateway(HTTP80), &route("infra", "r", body), &g]);
        let want = if resolved {
            is("True", "ResolvedRefs")
        } else {
            is("False", "RefNotPermitted")
        };
        assert_eq!(cond(&t, "r", "ResolvedRefs"), want, "{g}");
    }
}

#[test]
fn a_reference_grant_from_outside_the_tenant_is_refused_with_a_diagnostic() {
    let grant = "
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: to-strangers, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: stranger}]
  to: [{group: '', kind: Service}]
";
    let t = translate(&[&gateway(HTTP80), grant]);
    let d = t
        .diagnostics
        .iter()
        .find(|d| d.object.kind == "ReferenceGrant")
        .expect("a diagnostic about the grant");
    assert_eq!(d.field, "spec.from[0].namespace");
    assert!(d.message.contains("stranger"), "{}", d.message);
}

#[test]
fn weights_split_traffic_and_weight_zero_gets_none() {
    let t = translate(&[
        &gateway(HTTP80),
        &route("infra", "r", "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: v1, port: 8080, weight: 70}, {name: v2, port: 8080, weight: 30}, {name: v3, port: 8080, weight: 0}]}]"),
    ]);
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix / -> infra/v1/8080:70,infra/v2/8080:30"]
    );
}

#[test]
fn an_unresolved_backend_in_a_split_gets_500_for_its_share() {
    let t = translate(&[
        &gateway(HTTP80),
        &route("infra", "r", "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: v1, port: 8080, weight: 3}, {name: missing, port: 8080, weight: 1}]}]"),
    ]);
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix / -> infra/v1/8080:3,infra/v1/8080(500):1"]
    );
    assert_eq!(
        cond(&t, "r", "ResolvedRefs"),
        is("False", "BackendNotFound")
    );
}

#[test]
fn an_h2c_app_protocol_and_grpc_routes_get_http2_clusters() {
    let h2c = "
---
apiVersion: v1
kind: Service
metadata: {name: h2, namespace: infra}
spec: {ports: [{name: grpc, port: 8080, appProtocol: kubernetes.io/h2c}]}
";
    let t = translate(&[
        &gateway(HTTP80),
        h2c,
        &route("infra", "r", "  parentRefs: [{name: gw}]\n  hostnames: [web.example.com]\n  rules: [{backendRefs: [{name: h2, port: 8080}]}]"),
        "
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: echo.Echo, method: Say}}, {method: {service: echo.Echo}}, {headers: [{name: X-A, value: b}]}]
    backendRefs: [{name: v1, port: 8080}]
",
    ]);
    let clusters: Vec<&str> = t
        .resources
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(clusters, ["infra/h2/8080/h2c", "infra/v1/8080/h2c"]);
    for c in &t.resources.clusters {
        assert!(
            !c.typed_extension_protocol_options.is_empty(),
            "{} is HTTP/2",
            c.name
        );
    }
    assert_eq!(
        summaries(&t, "gateway-80", "grpc.example.com"),
        [
            "exact /echo.Echo/Say -> infra/v1/8080/h2c",
            "prefix /echo.Echo -> infra/v1/8080/h2c",
            "prefix / h:x-a=b -> infra/v1/8080/h2c",
        ]
    );
    assert_eq!(cond(&t, "g", "Accepted"), is("True", "Accepted"));
}

// ------------------------------------------------------------------ filters

fn envoy_route(t: &GatewayTranslation) -> EnvoyRoute {
    vhost(t, "gateway-80", "*").routes[0].clone()
}

fn with_filter(filter: &str) -> GatewayTranslation {
    translate(&[
        &gateway(HTTP80),
        &route(
            "infra",
            "r",
            &format!("  parentRefs: [{{name: gw}}]\n  rules:\n  - matches: [{{path: {{value: /prefix}}}}]\n    filters: [{filter}]\n    backendRefs: [{{name: v1, port: 8080}}]"),
        ),
    ])
}

#[test]
fn request_and_response_header_modifiers_set_add_and_remove() {
    use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
    let t = with_filter(
        "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Set, value: '50%'}], add: [{name: X-Add, value: a}], remove: [X-Drop]}}, \
         {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Resp, value: r}], remove: [Server]}}",
    );
    let r = envoy_route(&t);
    let req: Vec<(String, String, i32)> = r
        .request_headers_to_add
        .iter()
        .map(|h| {
            let hv = h.header.as_ref().unwrap();
            (hv.key.clone(), hv.value.clone(), h.append_action)
        })
        .collect();
    assert_eq!(
        req,
        [
            (
                "x-set".into(),
                "50%%".into(),
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32
            ),
            (
                "x-add".into(),
                "a".into(),
                HeaderAppendAction::AppendIfExistsOrAdd as i32
            ),
        ]
    );
    assert_eq!(r.request_headers_to_remove, ["x-drop"]);
    assert_eq!(r.response_headers_to_add.len(), 1);
    assert_eq!(r.response_headers_to_remove, ["server"]);
}

fn redirect_of(
    t: &GatewayTranslation,
) -> envoy_types::pb::envoy::config::route::v3::RedirectAction {
    match envoy_route(t).action {
        Some(route::Action::Redirect(r)) => r,
        other => panic!("not a redirect: {other:?}"),
    }
}

#[test]
fn redirects_follow_the_spec_default_port_rules() {
    use envoy_types::pb::envoy::config::route::v3::redirect_action::SchemeRewriteSpecifier;
    // (filter, scheme, port in Location (0: none), status)
    let cases = [
        ("{}", None, 0, 302),
        ("{scheme: https}", Some("https"), 0, 302),
        ("{scheme: https, port: 8443}", Some("https"), 8443, 302),
        ("{port: 8080, statusCode: 301}", None, 8080, 301),
        ("{scheme: http, port: 80}", Some("http"), 0, 302),
        ("{hostname: example.org, statusCode: 308}", None, 0, 308),
    ];
    for (config, scheme, port, status) in cases {
        let t = with_filter(&format!(
            "{{type: RequestRedirect, requestRedirect: {config}}}"
        ));
        let r = redirect_of(&t);
        let got_scheme = match &r.scheme_rewrite_specifier {
            Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.as_str()),
            _ => None,
        };
        assert_eq!(got_scheme, scheme, "{config}");
        assert_eq!(r.port_redirect, port, "{config}");
        use envoy_types::pb::envoy::config::route::v3::redirect_action::RedirectResponseCode as Code;
        let code = match status {
            301 => Code::MovedPermanently,
            302 => Code::Found,
            308 => Code::PermanentRedirect,
            _ => unreachable!(),
        };
        assert_eq!(r.response_code, code as i32, "{config}");
    }
    let t = with_filter("{type: RequestRedirect, requestRedirect: {hostname: example.org}}");
    assert_eq!(redirect_of(&t).host_redirect, "example.org");
}

#[test]
fn a_redirect_on_a_non_default_listener_port_keeps_that_port() {
    let rd = super::rules::redirect(
        &Default::default(),
        &crate::model::PathMatch::Prefix("/".into()),
        8080,
        "http",
    );
    assert_eq!(rd.port, Some(8080));
    let https = spec::Redirect {
        scheme: Some("https".into()),
        ..Default::default()
    };
    assert_eq!(
        super::rules::redirect(
            &https,
            &crate::model::PathMatch::Prefix("/".into()),
            8080,
            "http"
        )
        .port,
        None
    );
}

#[test]
fn prefix_replacement_is_element_wise() {
    // (matched prefix, replacement, request path, rewritten)
    let cases = [
        ("/prefix/one", "/one", "/prefix/one/two", "/one/two"),
        ("/prefix/one", "/one", "/prefix/one", "/one"),
        ("/strip-prefix", "/", "/strip-prefix/three", "/three"),
        ("/strip-prefix", "/", "/strip-prefix", "/"),
        ("/strip-prefix", "/", "/strip-prefix/", "/"),
        ("/a", "/b/", "/a/x", "/b/x"),
        ("/", "/v2", "/x", "/v2/x"),
    ];
    for (prefix, to, path, want) in cases {
        let rd = spec::Redirect {
            path: Some(spec::PathModifier {
                type_: "ReplacePrefixMatch".into(),
                replace_full_path: None,
                replace_prefix_match: Some(to.into()),
            }),
            ..Default::default()
        };
        let r = super::rules::redirect(
            &rd,
            &crate::model::PathMatch::Prefix(prefix.into()),
            80,
            "http",
        );
        let Some(crate::model::RedirectPath::Regex {
            pattern,
            substitution,
        }) = r.path
        else {
            panic!("no regex path");
        };
        // RE2 `\1` is regex's `${1}`.
        let re = regex::Regex::new(&pattern).unwrap();
        let got = re.replace(path, substitution.replace("\\1", "${1}").as_str());
        assert_eq!(got, want, "{prefix} -> {to} on {path}");
    }
}

#[test]
fn url_rewrite_sets_the_host_and_replaces_the_path() {
    let t = with_filter("{type: URLRewrite, urlRewrite: {hostname: rewritten.example.com, path: {type: ReplaceFullPath, replaceFullPath: /one}}}");
    let Some(route::Action::Route(a)) = envoy_route(&t).action else {
        panic!()
    };
    assert_eq!(
        a.host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "rewritten.example.com".into()
        ))
    );
    let rr = a.regex_rewrite.unwrap();
    assert_eq!(
        (rr.pattern.unwrap().regex.as_str(), rr.substitution.as_str()),
        ("^.*$", "/one")
    );
}

#[test]
fn redirect_and_rewrite_in_one_rule_are_incompatible() {
    let t = with_filter("{type: URLRewrite, urlRewrite: {hostname: a}}, {type: RequestRedirect, requestRedirect: {hostname: b}}");
    assert_eq!(cond(&t, "r", "Accepted"), is("False", "UnsupportedValue"));
}

#[test]
fn request_mirrors_copy_a_share_to_their_backend() {
    for (config, per_million) in [
        ("{backendRef: {name: v2, port: 8080}}", None),
        ("{backendRef: {name: v2, port: 8080}, percent: 20}", None),
        (
            "{backendRef: {name: v2, port: 8080}, fraction: {numerator: 1, denominator: 3}}",
            Some(333_333),
        ),
    ] {
        let t = with_filter(&format!("{{type: RequestMirror, requestMirror: {config}}}"));
        let Some(route::Action::Route(a)) = envoy_route(&t).action else {
            panic!()
        };
        let m = &a.request_mirror_policies;
        assert_eq!(m.len(), 1, "{config}");
        assert_eq!(m[0].cluster, "infra/v2/8080");
        let fraction = m[0]
            .runtime_fraction
            .as_ref()
            .and_then(|f| f.default_value.as_ref())
            .map(|f| f.numerator);
        match per_million {
            Some(n) => assert_eq!(fraction, Some(n), "{config}"),
            None if config.contains("percent") => assert_eq!(fraction, Some(20)),
            None => assert_eq!(fraction, None, "{config}: all requests"),
        }
    }
}

#[test]
fn an_unresolved_mirror_is_reported_and_not_mirrored() {
    let t = with_filter(
        "{type: RequestMirror, requestMirror: {backendRef: {name: missing, port: 8080}}}",
    );
    assert_eq!(
        cond(&t, "r", "ResolvedRefs"),
        is("False", "BackendNotFound")
    );
    let Some(route::Action::Route(a)) = envoy_route(&t).action else {
        panic!()
    };
    assert!(a.request_mirror_policies.is_empty());
}

#[test]
fn an_extension_ref_filter_answers_500() {
    let t =
        with_filter("{type: ExtensionRef, extensionRef: {group: example.com, kind: Foo, name: f}}");
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix /prefix -> status 500"]
    );
    assert_eq!(cond(&t, "r", "ResolvedRefs"), is("False", "InvalidKind"));
}

#[test]
fn cors_is_a_per_route_policy_of_the_cors_filter() {
    let t = with_filter("{type: CORS, cors: {allowOrigins: ['https://*.example.com'], allowMethods: [GET], allowCredentials: true, maxAge: 60}}");
    let r = envoy_route(&t);
    assert!(r
        .typed_per_filter_config
        .contains_key("envoy.filters.http.cors"));
}

#[test]
fn timeouts_are_the_route_deadline_and_the_per_try_deadline() {
    let t = translate(&[
        &gateway(HTTP80),
        &route("infra", "r", "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: v1, port: 8080}], timeouts: {request: 10s, backendRequest: 500ms}}]"),
    ]);
    let Some(route::Action::Route(a)) = envoy_route(&t).action else {
        panic!()
    };
    assert_eq!(a.timeout.unwrap().seconds, 10);
    assert_eq!(
        a.retry_policy.unwrap().per_try_timeout.unwrap().nanos,
        500_000_000
    );
}

#[test]
fn gateway_api_durations_parse_per_gep_2257() {
    use std::time::Duration;
    for (s, want) in [
        ("1h", Some(Duration::from_secs(3600))),
        ("1m30s", Some(Duration::from_secs(90))),
        ("500ms", Some(Duration::from_millis(500))),
        ("0s", Some(Duration::ZERO)),
        ("1h2m3s4ms", Some(Duration::from_millis(3_723_004))),
        ("", None),
        ("10", None),
        ("1d", None),
        ("123456s", None),
        ("-1s", None),
    ] {
        assert_eq!(super::rules::parse_duration(s).ok(), want, "{s:?}");
    }
}

// ------------------------------------------------------------------ HTTPS

fn tls_secret(ns: &str, name: &str) -> String {
    let cert = rcgen::generate_simple_self_signed(vec!["secure.example.com".into()]).unwrap();
    let b64 = |s: &str| {
        use std::fmt::Write;
        // Base64 without a dependency: the API's `data` is base64; use stringData instead.
        let mut out = String::new();
        for line in s.lines() {
            let _ = writeln!(out, "      {line}");
        }
        out
    };
    format!(
        "
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {ns}}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}",
        b64(&cert.cert.pem()),
        b64(&cert.signing_key.serialize_pem())
    )
}

const HTTPS: &str = "[{name: https, port: 443, protocol: HTTPS, hostname: secure.example.com, tls: {certificateRefs: [{name: cert}]}}]";

#[test]
fn an_https_listener_terminates_tls_by_sni_with_its_own_route_table() {
    let t = translate(&[
        &gateway(HTTPS),
        &tls_secret("infra", "cert"),
        &route("infra", "r", to_v1()),
    ]);
    assert_eq!(
        listener_cond(&t, "https", "ResolvedRefs"),
        is("True", "ResolvedRefs")
    );
    assert_eq!(
        listener_cond(&t, "https", "Programmed"),
        is("True", "Programmed")
    );
    let l = &t.resources.listeners[0];
    assert_eq!(l.name, "gateway-443");
    assert_eq!(l.filter_chains.len(), 1);
    let m = l.filter_chains[0].filter_chain_match.as_ref().unwrap();
    assert_eq!(m.server_names, ["secure.example.com"]);
    assert_eq!(t.resources.secrets[0].name, "infra/cert");
    assert_eq!(
        summaries(&t, "gateway-443-https", "secure.example.com"),
        ["prefix / -> infra/v1/8080"]
    );
}

#[test]
fn invalid_certificate_refs_leave_the_listener_unprogrammed_but_routes_attach() {
    let malformed = "
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: infra}
type: kubernetes.io/tls
stringData: {tls.crt: garbage, tls.key: garbage}
";
    for (extra, refs, reason) in [
        ("", "[{name: nonexistent}]", "InvalidCertificateRef"),
        (
            "",
            "[{name: cert, group: wrong.group}]",
            "InvalidCertificateRef",
        ),
        (
            "",
            "[{name: cert, kind: ConfigMap}]",
            "InvalidCertificateRef",
        ),
        (malformed, "[{name: cert}]", "InvalidCertificateRef"),
        ("", "[{name: cert, namespace: apps}]", "RefNotPermitted"),
        ("", "[{name: cert, namespace: stranger}]", "RefNotPermitted"),
    ] {
        let gw = gateway(&format!(
            "[{{name: https, port: 443, protocol: HTTPS, tls: {{certificateRefs: {refs}}}}}]"
        ));
        let other_cert = tls_secret("apps", "cert");
        let t = translate(&[&gw, extra, &other_cert, &route("infra", "r", to_v1())]);
        assert_eq!(
            listener_cond(&t, "https", "ResolvedRefs"),
            is("False", reason),
            "{refs}"
        );
        assert_eq!(
            listener_cond(&t, "https", "Programmed"),
            is("False", "Invalid"),
            "{refs}"
        );
        assert_eq!(
            listener_cond(&t, "https", "Accepted"),
            is("True", "Accepted"),
            "{refs}"
        );
        assert_eq!(
            t.gateway.listener("https").unwrap().attached_routes,
            1,
            "{refs}"
        );
        assert!(t.resources.listeners.is_empty(), "{refs}");
    }
}

#[test]
fn a_certificate_in_another_namespace_needs_a_grant_to_gateways() {
    let grant = "
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: certs, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: '', kind: Secret, name: cert}]
";
    let gw = gateway("[{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert, namespace: apps}]}}]");
    let t = translate(&[&gw, &tls_secret("apps", "cert"), grant]);
    assert_eq!(
        listener_cond(&t, "https", "ResolvedRefs"),
        is("True", "ResolvedRefs")
    );
    assert_eq!(t.resources.secrets[0].name, "apps/cert");
}

// ------------------------------------------------------------------ robustness

#[test]
fn objects_without_names_or_with_empty_specs_never_panic() {
    let o = objects(&[
        &gateway("[{name: '', port: 0, protocol: ''}, {name: http, port: 80, protocol: HTTP}]"),
        "
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {namespace: infra}
spec: {}
",
        &route("infra", "empty", "  parentRefs: [{name: gw}]"),
        &route("infra", "weird", "  parentRefs: [{name: gw, port: -1}]\n  rules: [{backendRefs: [{name: v1, port: -5, weight: -3}]}, {matches: [{path: {type: Exact, value: relative}}]}]"),
    ]);
    let t = translate_objects(&o);
    assert_eq!(cond(&t, "empty", "Accepted"), is("True", "Accepted"));
    assert_eq!(
        cond(&t, "weird", "Accepted"),
        is("False", "NoMatchingParent")
    );
}

#[test]
fn listeners_are_isolated_a_route_never_answers_a_more_specific_listeners_hosts() {
    let section = |s: &str, path: &str| {
        format!(
            "  parentRefs: [{{name: gw, sectionName: {s}}}]\n  hostnames: [bar.com, '*.example.com', '*.foo.example.com', abc.foo.example.com]\n  rules: [{{matches: [{{path: {{value: {path}}}}}], backendRefs: [{{name: v1, port: 8080}}]}}]"
        )
    };
    let t = translate(&[
        &gateway(
            "[{name: empty, port: 80, protocol: HTTP}, {name: wild, port: 80, protocol: HTTP, hostname: '*.example.com'}, \
             {name: wild-foo, port: 80, protocol: HTTP, hostname: '*.foo.example.com'}, {name: abc, port: 80, protocol: HTTP, hostname: abc.foo.example.com}]",
        ),
        &route("infra", "to-empty", &section("empty", "/empty")),
        &route("infra", "to-wild", &section("wild", "/wild")),
        &route("infra", "to-wild-foo", &section("wild-foo", "/wild-foo")),
        &route("infra", "to-abc", &section("abc", "/abc")),
    ]);
    let paths = |domain: &str| -> Vec<String> {
        summaries(&t, "gateway-80", domain)
            .into_iter()
            .map(|s| s.split(' ').nth(1).unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(paths("bar.com"), ["/empty"]);
    assert_eq!(paths("*.example.com"), ["/wild"]);
    assert_eq!(paths("*.foo.example.com"), ["/wild-foo"]);
    assert_eq!(paths("abc.foo.example.com"), ["/abc"]);
    for l in ["empty", "wild", "wild-foo", "abc"] {
        assert_eq!(t.gateway.listener(l).unwrap().attached_routes, 1, "{l}");
    }
}

#[test]
fn a_listener_hostname_without_routes_answers_404_not_a_less_specific_listener() {
    let t = translate(&[
        &gateway("[{name: any, port: 80, protocol: HTTP}, {name: abc, port: 80, protocol: HTTP, hostname: abc.example.com}]"),
        &route("infra", "r", "  parentRefs: [{name: gw, sectionName: any}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
    ]);
    assert!(summaries(&t, "gateway-80", "abc.example.com").is_empty());
    assert_eq!(
        summaries(&t, "gateway-80", "*"),
        ["prefix / -> infra/v1/8080"]
    );
}

#[test]
fn header_modifiers_on_a_backend_ref_edit_only_that_backends_requests() {
    let t = translate(&[
        &gateway(HTTP80),
        &route(
            "infra",
            "r",
            "  parentRefs: [{name: gw}]
  rules:
  - backendRefs:
    - name: v1
      port: 8080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Backend, value: one}]}}]
    - name: v2
      port: 8080
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {remove: [X-Secret]}}]
  - matches: [{path: {value: /single}}]
    backendRefs:
    - name: v3
      port: 8080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-Only, value: three}]}}]",
        ),
    ]);
    let routes = &vhost(&t, "gateway-80", "*").routes;
    let weighted = |r: &EnvoyRoute| match r.action.as_ref().unwrap() {
        route::Action::Route(a) => match a.cluster_specifier.as_ref().unwrap() {
            route_action::ClusterSpecifier::WeightedClusters(w) => w.clusters.clone(),
            other => panic!("not weighted: {other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let single = weighted(&routes[0]);
    assert_eq!(
        single.len(),
        1,
        "one backend with its own edits is a weighted entry"
    );
    assert_eq!(
        single[0].request_headers_to_add[0]
            .header
            .as_ref()
            .unwrap()
            .key,
        "x-only"
    );
    let split = weighted(&routes[1]);
    assert_eq!(
        split[0].request_headers_to_add[0]
            .header
            .as_ref()
            .unwrap()
            .value,
        "one"
    );
    assert!(split[1].request_headers_to_add.is_empty());
    assert_eq!(split[1].response_headers_to_remove, ["x-secret"]);
    assert!(
        routes[1].request_headers_to_add.is_empty(),
        "not on the route"
    );
}

// ------------------------------------------------------------------ TLS passthrough

/// Each filter chain of a listener: (name, SNI names, terminates TLS, first network filter).
fn chains(
    l: &envoy_types::pb::envoy::config::listener::v3::Listener,
) -> Vec<(String, Vec<String>, bool, String)> {
    l.filter_chains
        .iter()
        .map(|c| {
            let names = c
                .filter_chain_match
                .as_ref()
                .map(|m| m.server_names.clone())
                .unwrap_or_default();
            (
                c.name.clone(),
                names,
                c.transport_socket.is_some(),
                c.filters[0].name.clone(),
            )
        })
        .collect()
}

fn tls_route(name: &str, hostnames: &str, backend: &str) -> String {
    format!(
        "
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: {name}, namespace: infra}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: {hostnames}
  rules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]
"
    )
}

#[test]
fn tls_routes_pass_connections_through_by_sni() {
    let t = translate(&[
        &gateway("[{name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}]"),
        &tls_route("a", "[a.example.com]", "v1"),
        &tls_route("b", "['*.b.example.com']", "v2"),
        &tls_route("broken", "[c.example.com]", "missing"),
    ]);
    let l = t.gateway.listener("tls").unwrap();
    assert_eq!(
        l.supported_kinds,
        [(gwapi::GROUP.to_string(), "TLSRoute".to_string())]
    );
    assert_eq!(l.attached_routes, 3);
    assert_eq!(cond(&t, "a", "Accepted"), is("True", "Accepted"));
    assert_eq!(
        cond(&t, "broken", "ResolvedRefs"),
        is("False", "BackendNotFound")
    );
    let listener = &t.resources.listeners[0];
    let tcp = "envoy.filters.network.tcp_proxy".to_string();
    assert_eq!(
        chains(listener),
        [
            (
                "tls|*.b.example.com".into(),
                vec!["*.b.example.com".into()],
                false,
                tcp.clone()
            ),
            (
                "tls|a.example.com".into(),
                vec!["a.example.com".into()],
                false,
                tcp
            ),
            (
                "tls|c.example.com".into(),
                vec!["c.example.com".into()],
                false,
                "envoy.filters.network.direct_response".into()
            ),
        ],
        "the route whose backend does not resolve closes its host's connections"
    );
    assert!(t.resources.routes.is_empty());
}

/// Envoy refuses a listener without filter chains (and with it the LDS
/// update): a TLS port with no route, or only routes whose backends failed,
/// still gets a listener, which closes connections (conformance:
/// TLSRouteInvalidBackendRefNonexistent expects the connection rejected, not
/// refused).
#[test]
fn a_tls_port_without_a_usable_route_accepts_and_closes_connections() {
    let close = "envoy.filters.network.direct_response".to_string();
    let gw = gateway("[{name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}]");
    let t = translate(&[&gw]);
    assert_eq!(t.resources.listeners.len(), 1);
    assert_eq!(
        chains(&t.resources.listeners[0]),
        [("no-route".into(), vec![], false, close.clone())]
    );
    let t = translate(&[&gw, &tls_route("broken", "[example.com]", "missing")]);
    assert_eq!(
        chains(&t.resources.listeners[0]),
        [(
            "tls|example.com".into(),
            vec!["example.com".into()],
            false,
            close
        )]
    );
    assert_eq!(
        cond(&t, "broken", "ResolvedRefs"),
        is("False", "BackendNotFound")
    );
}

#[test]
fn an_http_route_does_not_attach_to_a_tls_listener_nor_a_tls_route_to_http() {
    let t = translate(&[
        &gateway("[{name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}, {name: http, port: 80, protocol: HTTP}]"),
        &route("infra", "h", "  parentRefs: [{name: gw, sectionName: tls}]\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]"),
        &tls_route("t", "[a.example.com]", "v1").replace("[{name: gw}]", "[{name: gw, sectionName: http}]"),
    ]);
    assert_eq!(
        cond(&t, "h", "Accepted"),
        is("False", "NotAllowedByListeners")
    );
    assert_eq!(
        cond(&t, "t", "Accepted"),
        is("False", "NotAllowedByListeners")
    );
}

#[test]
fn https_and_tls_listeners_share_a_port_by_sni_and_tls_may_terminate() {
    let t = translate(&[
        &gateway(
            "[{name: web, port: 443, protocol: HTTPS, hostname: web.example.com, tls: {certificateRefs: [{name: cert}]}}, \
             {name: pass, port: 443, protocol: TLS, hostname: '*.pass.example.com', tls: {mode: Passthrough}}, \
             {name: term, port: 443, protocol: TLS, hostname: db.example.com, tls: {mode: Terminate, certificateRefs: [{name: cert}]}}]",
        ),
        &tls_secret("infra", "cert"),
        &route("infra", "web", to_v1()),
        &tls_route("a", "['a.pass.example.com']", "v2"),
        &tls_route("db", "[db.example.com]", "v3"),
    ]);
    for l in ["web", "pass", "term"] {
        assert_eq!(
            listener_cond(&t, l, "Programmed"),
            is("True", "Programmed"),
            "{l}"
        );
        assert_eq!(t.gateway.listener(l).unwrap().attached_routes, 1, "{l}");
    }
    let listener = &t.resources.listeners[0];

    let hcm = "envoy.filters.network.http_connection_manager".to_string();
    let tcp = "envoy.filters.network.tcp_proxy".to_string();
    assert_eq!(
        chains(listener),
        [
            ("web".into(), vec!["web.example.com".into()], true, hcm),
            (
                "pass|a.pass.example.com".into(),
                vec!["a.pass.example.com".into()],
                false,
                tcp.clone()
            ),
            (
                "term|db.example.com".into(),
                vec!["db.example.com".into()],
                true,
                tcp
            ),
        ]
    );
}

#[test]
fn a_tls_terminating_listener_without_certificates_is_not_programmed() {
    let t = translate(&[&gateway("[{name: tls, port: 443, protocol: TLS, tls: {mode: Terminate, certificateRefs: [{name: missing}]}}]")]);
    assert_eq!(
        listener_cond(&t, "tls", "ResolvedRefs"),
        is("False", "InvalidCertificateRef")
    );
    assert_eq!(
        listener_cond(&t, "tls", "Programmed"),
        is("False", "Invalid")
    );
}

#[test]
fn values_envoy_would_refuse_stay_out_of_the_configuration() {
    // Each would make Envoy refuse the whole route table or listener; each
    // is refused where it is, and the rest is served.
    let t = translate(&[
        &gateway("[{name: http, port: 80, protocol: HTTP}, {name: bad, port: 81, protocol: HTTP, hostname: 'Bad_Host'}]"),
        &route(
            "infra",
            "r",
            "  parentRefs: [{name: gw, sectionName: http}]
  hostnames: ['Not A Host', ok.example.com]
  rules:
  - matches: [{path: {type: RegularExpression, value: '/a{1000}'}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /pseudo}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: ':path', value: /x}]}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /host}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Host, value: x}]}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /crlf}}]
    filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-a, value: \"a\\r\\nb\"}]}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /ok}}]
    backendRefs: [{name: v1, port: 8080, weight: 2000000000}, {name: v2, port: 8080, weight: 2000000000}]",
        ),
    ]);
    assert_eq!(
        listener_cond(&t, "bad", "Accepted"),
        is("False", "UnsupportedValue")
    );
    assert_eq!(
        cond(&t, "r", "PartiallyInvalid"),
        is("True", "UnsupportedValue")
    );
    assert_eq!(domains(&t, "gateway-80"), ["ok.example.com"]);
    assert_eq!(
        summaries(&t, "gateway-80", "ok.example.com"),
        ["prefix /ok -> infra/v1/8080:1000000,infra/v2/8080:1000000"]
    );
    let fields: Vec<&str> = t.diagnostics.iter().map(|d| d.field.as_str()).collect();
    for f in [
        "spec.hostnames[0]",
        "spec.rules[0].matches[0]",
        "spec.rules[1].filters",
        "spec.rules[2].filters",
        "spec.rules[3].filters",
    ] {
        assert!(fields.contains(&f), "{f} not reported: {fields:?}");
    }
}

#[test]
fn tcp_routes_forward_a_tcp_listeners_connections_oldest_route_first() {
    let tcp_route = |name: &str, backend: &str, created: &str| {
        format!(
            "
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {{name: {name}, namespace: infra, creationTimestamp: '{created}'}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]
"
        )
    };
    let t = translate(&[
        &gateway("[{name: db, port: 5432, protocol: TCP}, {name: http, port: 80, protocol: HTTP}]"),
        &tcp_route("newer", "v2", "2024-01-01T00:00:00Z"),
        &tcp_route("older", "v1", "2020-01-01T00:00:00Z"),
    ]);
    let db = t.gateway.listener("db").unwrap();
    assert_eq!(
        db.supported_kinds,
        [(gwapi::GROUP.to_string(), "TCPRoute".to_string())]
    );
    assert_eq!(db.attached_routes, 2);
    assert_eq!(t.gateway.listener("http").unwrap().attached_routes, 0);
    let l = t
        .resources
        .listeners
        .iter()
        .find(|l| l.name == "gateway-5432")
        .unwrap();
    assert!(
        l.listener_filters.is_empty(),
        "no TLS inspector on plain TCP"
    );
    assert_eq!(
        chains(l),
        [(
            "db|*".into(),
            vec![],
            false,
            "envoy.filters.network.tcp_proxy".into()
        )]
    );
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy, TcpProxy,
    };
    use prost::Message;
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!("no tcp proxy config")
    };
    let proxy = TcpProxy::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        proxy.cluster_specifier,
        Some(tcp_proxy::ClusterSpecifier::Cluster("infra/v1/8080".into())),
        "the older route's backend"
    );
}

#[test]
fn problems_name_the_object_and_field_in_gateway_api_terms() {
    let t = translate(&[
        &gateway(HTTP80),
        &route("infra", "r", "  parentRefs: [{name: gw, sectionName: nope}, {name: gw}]\n  rules: [{backendRefs: [{name: v1, port: 8080}, {name: missing, port: 8080}]}]"),
    ]);
    let find = |field: &str| {
        t.diagnostics
            .iter()
            .find(|d| d.object.name == "r" && d.field == field)
            .unwrap_or_else(|| panic!("no diagnostic at {field}: {:#?}", t.diagnostics))
    };
    assert!(find("spec.parentRefs[0]")
        .message
        .contains("NoMatchingParent"));
    let backend = &find("spec.rules[0].backendRefs[1]").message;
    assert!(
        backend.contains("Service infra/missing not found"),
        "{backend}"
    );
    assert!(!backend.contains("Ingress"), "{backend}");
    // Statuses: one per parentRef naming the Gateway, in parentRef order.
    let sections: Vec<Option<&str>> = t
        .routes
        .iter()
        .map(|r| r.parent_ref.section_name.as_deref())
        .collect();
    assert_eq!(sections, [Some("nope"), None]);
}

// ------------------------------------------------------------------ property

mod property {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{select, subsequence};

    const LISTENERS: &[&str] = &[
        "{name: http, port: 80, protocol: HTTP}",
        "{name: wild, port: 80, protocol: HTTP, hostname: '*.example.com'}",
        "{name: exact, port: 80, protocol: HTTP, hostname: a.example.com}",
        "{name: all, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}",
        "{name: sel, port: 8081, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: apps}}}}}",
        "{name: https, port: 443, protocol: HTTPS, hostname: secure.example.com, tls: {certificateRefs: [{name: cert}]}}",
        "{name: nocert, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: missing}]}}",
        "{name: pass, port: 443, protocol: TLS, hostname: '*.pass.example.com', tls: {mode: Passthrough}}",
        "{name: tcp, port: 5432, protocol: TCP}",
        "{name: dup, port: 80, protocol: HTTP, hostname: a.example.com}",
        "{name: clash, port: 10080, protocol: HTTP}",
        "{name: udp, port: 53, protocol: UDP}",
    ];
    const PARENTS: &[&str] = &[
        "{name: gw, namespace: infra}",
        "{name: gw, namespace: infra, sectionName: http}",
        "{name: gw, namespace: infra, sectionName: https}",
        "{name: gw, namespace: infra, port: 8080}",
        "{name: gw, namespace: infra, sectionName: nope}",
        "{name: other, namespace: infra}",
    ];
    const HOSTNAMES: &[&str] = &[
        "a.example.com",
        "'*.example.com'",
        "b.a.example.com",
        "x.pass.example.com",
        "other.test",
    ];
    const MATCHES: &[&str] = &[
        "{path: {type: Exact, value: /a}}",
        "{path: {type: PathPrefix, value: /a/}}",
        "{path: {type: PathPrefix, value: /}, method: GET}",
        "{path: {type: RegularExpression, value: '/v[0-9]+'}}",
        "{path: {type: RegularExpression, value: '/(bad'}}",
        "{headers: [{name: X-A, value: b}, {name: x-a, value: c}]}",
        "{queryParams: [{name: q, type: RegularExpression, value: '.*'}]}",
    ];
    const FILTERS: &[&str] = &[
        "{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-S, value: '%v'}], add: [{name: x-a, value: a}], remove: [x-r]}}",
        "{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-b, value: b}]}}",
        "{type: RequestRedirect, requestRedirect: {scheme: https, port: 8443, path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}",
        "{type: URLRewrite, urlRewrite: {hostname: h.example.com, path: {type: ReplaceFullPath, replaceFullPath: /x}}}",
        "{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}, percent: 50}}",
        "{type: RequestMirror, requestMirror: {backendRef: {name: missing, port: 8080}}}",
        "{type: CORS, cors: {allowOrigins: ['*'], allowMethods: [GET]}}",
        "{type: ExtensionRef, extensionRef: {group: x.io, kind: X, name: x}}",
    ];
    const BACKENDS: &[&str] = &[
        "{name: v1, port: 8080}",
        "{name: v2, port: 8080, weight: 0}",
        "{name: v3, port: 8080, weight: 5, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-b, value: '3'}]}}]}",
        "{name: missing, port: 8080, weight: 2}",
        "{name: web, namespace: apps, port: 8080}",
        "{name: foreign, namespace: other, port: 8080}",
        "{name: v1, port: 8080, kind: Pod}",
    ];

    fn list(items: Vec<&str>) -> String {
        format!("[{}]", items.join(", "))
    }

    fn rule() -> impl Strategy<Value = String> {
        (
            subsequence(MATCHES, 0..3),
            subsequence(FILTERS, 0..3),
            subsequence(BACKENDS, 0..4),
        )
            .prop_map(|(m, f, b)| {
                format!(
                    "{{matches: {}, filters: {}, backendRefs: {}}}",
                    list(m),
                    list(f),
                    list(b)
                )
            })
    }

    fn http_route() -> impl Strategy<Value = (String, String, String, String, Vec<String>)> {
        (
            select(&["infra", "apps", "stranger"][..]),
            select(&["r1", "r2", "r3"][..]),
            subsequence(PARENTS, 1..3),
            subsequence(HOSTNAMES, 0..3),
            proptest::collection::vec(rule(), 0..3),
        )
            .prop_map(|(ns, name, parents, hosts, rules)| {
                (
                    ns.to_string(),
                    name.to_string(),
                    list(parents),
                    list(hosts),
                    rules,
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any mix of listeners and routes (valid or not) translates without
        /// a panic, consistently, the same in any order, and every status
        /// has Accepted and ResolvedRefs.
        #[test]
        fn any_gateway_and_routes_translate_consistently_and_deterministically(
            listeners in subsequence(LISTENERS, 1..6),
            routes in proptest::collection::vec(http_route(), 0..5),
            tls in proptest::collection::vec((select(&["t1", "t2"][..]), subsequence(HOSTNAMES, 1..3)), 0..3),
        ) {
            let mut docs = vec![gateway(&list(listeners)), tls_secret("infra", "cert")];
            for (ns, name, parents, hosts, rules) in &routes {
                docs.push(route(ns, name, &format!("  parentRefs: {parents}\n  hostnames: {hosts}\n  rules: [{}]", rules.join(", "))));
            }
            for (name, hosts) in &tls {
                docs.push(tls_route(name, &list(hosts.clone()), "v1"));
            }
            let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
            let mut o = objects(&refs);
            o.namespaces.remove("stranger");
            let t = translate_objects(&o);
            for r in &t.routes {
                prop_assert!(r.condition("Accepted").is_some());
                prop_assert!(r.condition("ResolvedRefs").is_some());
            }
            prop_assert_eq!(t.gateway.listeners.len(), o.gateway.spec.listeners.len());
        }
    }
}

#[test]
fn an_http_route_and_a_grpc_route_never_share_a_hostname_on_a_listener() {
    let grpc = |name: &str, hosts: &str, created: &str| {
        format!(
            "
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: {name}, namespace: infra, creationTimestamp: '{created}'}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: {hosts}
  rules: [{{backendRefs: [{{name: v2, port: 8080}}]}}]
"
        )
    };
    let http = route("infra", "web", "  parentRefs: [{name: gw}]\n  hostnames: ['*.example.com']\n  rules: [{backendRefs: [{name: v1, port: 8080}]}]")
        .replace("generation: 7}", "generation: 7, creationTimestamp: '2022-01-01T00:00:00Z'}");
    let t = translate(&[
        &gateway(HTTP80),
        &http,
        &grpc("older-grpc", "[api.example.com]", "2020-01-01T00:00:00Z"),
        &grpc("younger-grpc", "[rpc.example.com]", "2024-01-01T00:00:00Z"),
        &grpc("elsewhere", "[rpc.test]", "2024-01-01T00:00:00Z"),
    ]);
    // The GRPCRoute is older than the HTTPRoute: the HTTPRoute is refused.
    assert_eq!(cond(&t, "web", "Accepted"), is("False", "HostnameConflict"));
    assert_eq!(cond(&t, "older-grpc", "Accepted"), is("True", "Accepted"));
    assert_eq!(cond(&t, "younger-grpc", "Accepted"), is("True", "Accepted"));
    assert_eq!(cond(&t, "elsewhere", "Accepted"), is("True", "Accepted"));
    assert_eq!(t.gateway.listener("http").unwrap().attached_routes, 3);
}
