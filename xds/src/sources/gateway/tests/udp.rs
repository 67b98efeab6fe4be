//! UDPRoute: UDP listeners, weighted backends, and the kind and port rules
//! that keep UDP apart from TCP.

use super::*;
use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::LocalityConfigSpecifier;
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{lb_endpoint, ClusterLoadAssignment};
use envoy_types::pb::envoy::config::listener::v3::{listener_filter, Listener as EnvoyListener};
use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3::{
    udp_proxy_config::RouteSpecifier, Route as UdpRouteAction, UdpProxyConfig,
};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::on_match::OnMatch;
use prost::Message;

/// A DNS Service `name` in `ns`: port 53 over UDP (`dns`) and TCP
/// (`dns-tcp`), one ready endpoint at `ip` (target port 5353).
fn dns_service(ns: &str, name: &str, ip: &str) -> String {
    format!(
        "
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{ports: [{{name: dns, port: 53, protocol: UDP}}, {{name: dns-tcp, port: 53, protocol: TCP}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: dns, port: 5353, protocol: UDP}}, {{name: dns-tcp, port: 5353, protocol: TCP}}]
endpoints: [{{addresses: [{ip}], conditions: {{ready: true}}}}]
"
    )
}

fn udp_route(name: &str, parent: &str, backend_refs: &str) -> String {
    format!(
        "
---
apiVersion: gateway.networking.k8s.io/v1
kind: UDPRoute
metadata: {{name: {name}, namespace: infra, generation: 4}}
spec:
  parentRefs: [{parent}]
  rules: [{{backendRefs: {backend_refs}}}]
"
    )
}

fn dns_services() -> String {
    [
        dns_service("infra", "dns-a", "10.1.0.1"),
        dns_service("infra", "dns-b", "10.1.0.2"),
        dns_service("infra", "dns-c", "10.1.0.3"),
    ]
    .concat()
}

const UDP_AND_TCP_53: &str =
    "[{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]";

fn listener<'a>(t: &'a GatewayTranslation, name: &str) -> &'a EnvoyListener {
    t.resources
        .listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = t
                .resources
                .listeners
                .iter()
                .map(|l| l.name.as_str())
                .collect();
            panic!("no listener {name}: {names:?}")
        })
}

/// The cluster every datagram of a UDP listener goes to.
fn udp_cluster(l: &EnvoyListener) -> String {
    let Some(listener_filter::ConfigType::TypedConfig(any)) = &l.listener_filters[0].config_type
    else {
        panic!("no udp_proxy config")
    };
    let proxy = UdpProxyConfig::decode(any.value.as_slice()).unwrap();
    let Some(RouteSpecifier::Matcher(m)) = proxy.route_specifier else {
        panic!("no matcher")
    };
    let Some(OnMatch::Action(action)) = m.on_no_match.and_then(|o| o.on_match) else {
        panic!("no action")
    };
    UdpRouteAction::decode(action.typed_config.unwrap().value.as_slice())
        .unwrap()
        .cluster
}

/// (locality, weight, endpoint addresses) of a load assignment.
fn localities(cla: &ClusterLoadAssignment) -> Vec<(String, u32, Vec<String>)> {
    cla.endpoints
        .iter()
        .map(|l| {
            let addrs = l
                .lb_endpoints
                .iter()
                .map(|e| {
                    let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                        panic!("no endpoint")
                    };
                    let Some(address::Address::SocketAddress(a)) =
                        ep.address.as_ref().and_then(|a| a.address.clone())
                    else {
                        panic!("no socket address")
                    };
                    let Some(socket_address::PortSpecifier::PortValue(p)) = a.port_specifier else {
                        panic!("no port")
                    };
                    format!("{}:{p}", a.address)
                })
                .collect();
            (
                l.locality.clone().unwrap_or_default().sub_zone,
                l.load_balancing_weight.map_or(0, |w| w.value),
                addrs,
            )
        })
        .collect()
}

/// The UDP listener's datagrams all go to dns-a (weight 1).
fn assert_only_dns_a(t: &GatewayTranslation, udp: &EnvoyListener) {
    assert_eq!(
        localities(assignment(t, &udp_cluster(udp))),
        [(
            "infra/dns-a/53/udp".to_string(),
            1,
            vec!["10.1.0.1:5353".to_string()]
        )]
    );
}

fn assignment<'a>(t: &'a GatewayTranslation, cluster: &str) -> &'a ClusterLoadAssignment {
    t.resources
        .endpoints
        .iter()
        .find(|c| c.cluster_name == cluster)
        .unwrap_or_else(|| panic!("no load assignment {cluster}"))
}

#[test]
fn a_udp_route_sends_datagrams_to_its_backends_by_weight_and_weight_zero_gets_none() {
    let services = dns_services();
    let t = translate(&[
        &gateway(UDP_AND_TCP_53),
        &services,
        &udp_route(
            "dns",
            "{name: gw, sectionName: dns}",
            "[{name: dns-a, port: 53, weight: 70}, {name: dns-b, port: 53, weight: 30}, {name: dns-c, port: 53, weight: 0}]",
        ),
    ]);
    assert_eq!(cond(&t, "dns", "Accepted"), is("True", "Accepted"));
    assert_eq!(cond(&t, "dns", "ResolvedRefs"), is("True", "ResolvedRefs"));
    let dns = t.gateway.listener("dns").unwrap();
    assert_eq!(
        dns.supported_kinds,
        [(gwapi::GROUP.to_string(), "UDPRoute".to_string())]
    );
    assert_eq!(dns.attached_routes, 1);
    // The TCP listener of the same number is not a conflict.
    assert_eq!(
        listener_cond(&t, "dns-tcp", "Conflicted"),
        is("False", "NoConflicts")
    );
    assert_eq!(
        listener_cond(&t, "dns", "Programmed"),
        is("True", "Programmed")
    );

    let l = listener(&t, "gateway-udp-53");
    assert!(l.udp_listener_config.is_some());
    assert!(l.filter_chains.is_empty());
    let Some(address::Address::SocketAddress(a)) =
        l.address.as_ref().and_then(|a| a.address.clone())
    else {
        panic!("no address")
    };
    assert_eq!(a.protocol, socket_address::Protocol::Udp as i32);
    assert_eq!(
        a.port_specifier,
        Some(socket_address::PortSpecifier::PortValue(10053)),
        "port 53 binds container port 10053"
    );
    assert_eq!(udp_cluster(l), "gateway-udp-53");
    let cluster = t
        .resources
        .clusters
        .iter()
        .find(|c| c.name == "gateway-udp-53")
        .unwrap();
    assert!(matches!(
        cluster
            .common_lb_config
            .as_ref()
            .and_then(|c| c.locality_config_specifier),
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
    ));
    assert_eq!(
        localities(assignment(&t, "gateway-udp-53")),
        [
            (
                "infra/dns-a/53/udp".to_string(),
                70,
                vec!["10.1.0.1:5353".to_string()]
            ),
            (
                "infra/dns-b/53/udp".to_string(),
                30,
                vec!["10.1.0.2:5353".to_string()]
            ),
        ],
        "dns-c has weight 0: no locality"
    );
    // No TCP listener on 53: no TCPRoute attached to it.
    assert!(t.resources.listeners.iter().all(|l| l.name != "gateway-53"));
}

#[test]
fn udp_and_tcp_routes_on_one_port_number_each_reach_their_own_listener() {
    let services = dns_services();
    let tcp = "
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: dns-tcp, namespace: infra}
spec:
  parentRefs: [{name: gw, port: 53}]
  rules: [{backendRefs: [{name: dns-b, port: 53}]}]
";
    let t = translate(&[
        &gateway(UDP_AND_TCP_53),
        &services,
        // Port 53 without a section name: the UDPRoute reaches only the UDP
        // listener, the TCPRoute only the TCP one.
        &udp_route("dns", "{name: gw, port: 53}", "[{name: dns-a, port: 53}]"),
        tcp,
    ]);
    assert_eq!(t.gateway.listener("dns").unwrap().attached_routes, 1);
    assert_eq!(t.gateway.listener("dns-tcp").unwrap().attached_routes, 1);
    let udp = listener(&t, "gateway-udp-53");
    assert_only_dns_a(&t, udp);
    // The TCP listener forwards to the TCP port of the same Service port number.
    let tcp = listener(&t, "gateway-53");
    assert!(tcp.udp_listener_config.is_none());
    assert!(t
        .resources
        .clusters
        .iter()
        .any(|c| c.name == "infra/dns-b/53"));
}

#[test]
fn a_udp_route_never_attaches_to_a_tcp_listener_nor_a_tcp_route_to_a_udp_one() {
    let services = dns_services();
    let tcp_on_udp = "
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: wrong-tcp, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: dns}]
  rules: [{backendRefs: [{name: dns-a, port: 53}]}]
";
    let t = translate(&[
        &gateway(UDP_AND_TCP_53),
        &services,
        &udp_route(
            "wrong-udp",
            "{name: gw, sectionName: dns-tcp}",
            "[{name: dns-a, port: 53}]",
        ),
        tcp_on_udp,
    ]);
    for r in ["wrong-udp", "wrong-tcp"] {
        assert_eq!(
            cond(&t, r, "Accepted"),
            is("False", "NotAllowedByListeners"),
            "{r}"
        );
    }
    assert_eq!(t.gateway.listener("dns").unwrap().attached_routes, 0);
    assert_eq!(t.gateway.listener("dns-tcp").unwrap().attached_routes, 0);
    assert!(
        t.resources.listeners.is_empty(),
        "nothing attached, nothing served"
    );
}

#[test]
fn a_backend_without_a_udp_port_is_backend_not_found_and_takes_no_share() {
    let services = dns_services();
    let t = translate(&[
        &gateway(UDP_AND_TCP_53),
        &services,
        // `v1` (the common fixture) has only TCP port 8080.
        &udp_route(
            "dns",
            "{name: gw, sectionName: dns}",
            "[{name: dns-a, port: 53}, {name: v1, port: 8080}, {name: missing, port: 53}]",
        ),
    ]);
    assert_eq!(cond(&t, "dns", "Accepted"), is("True", "Accepted"));
    assert_eq!(
        cond(&t, "dns", "ResolvedRefs"),
        is("False", "BackendNotFound")
    );
    let messages: Vec<(String, String)> = t
        .diagnostics
        .iter()
        .filter(|d| d.object.name == "dns")
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect();
    assert!(
        messages
            .iter()
            .any(|(f, m)| f == "spec.rules[0].backendRefs[1]"
                && m.contains("Service infra/v1")
                && m.contains("port 8080 has protocol TCP, not UDP")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|(f, m)| f == "spec.rules[0].backendRefs[2]"
                && m.contains("Service infra/missing")
                && m.contains("not found")),
        "{messages:#?}"
    );
    let udp = listener(&t, "gateway-udp-53");
    assert_only_dns_a(&t, udp);
}

#[test]
fn a_udp_route_whose_backends_all_fail_keeps_its_listener_and_drops_datagrams() {
    let services = dns_services();
    let t = translate(&[
        &gateway(UDP_AND_TCP_53),
        &services,
        &udp_route(
            "dns",
            "{name: gw, sectionName: dns}",
            "[{name: missing, port: 53}]",
        ),
    ]);
    assert_eq!(
        cond(&t, "dns", "ResolvedRefs"),
        is("False", "BackendNotFound")
    );
    let udp = listener(&t, "gateway-udp-53");
    assert!(
        assignment(&t, &udp_cluster(udp)).endpoints.is_empty(),
        "an empty cluster: no upstream, datagrams dropped"
    );
}
