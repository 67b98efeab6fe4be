//! The TenantGateway's UDP proxies (`spec.udpProxies`): one UDP listener per
//! port, forwarding datagrams to a UDP port of a Service in the tenant's
//! namespaces (ingress-nginx's `udp-services` ConfigMap).

use super::backends::BackendIndex;
use crate::diagnostics::{Diagnostics, ObjectRef};
use crate::model::{Model, Provenance, UdpRoute};
use crate::translate::GatewayOptions;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A UDP listener port forwarded to a Service's UDP port: the same fields, and
/// the same sidecar argument form (`--udp-proxy <port>=<namespace>/<service>:<port>`),
/// as a TCP proxy.
pub type UdpProxy = super::tcp::TcpProxy;

impl From<&crds::UdpProxy> for UdpProxy {
    fn from(p: &crds::UdpProxy) -> Self {
        Self {
            port: p.port,
            namespace: p.service.namespace.clone(),
            service: p.service.name.clone(),
            service_port: p.service.port,
        }
    }
}

/// Resolve each UDP proxy to a backend; problems are reported on the
/// TenantGateway's `spec.udpProxies[i]` and that port gets no listener. UDP
/// ports are apart from TCP ones: a port may be both a TCP and a UDP proxy,
/// or the HTTP listener's number.
pub(crate) fn lower(
    options: &GatewayOptions,
    index: &BackendIndex<'_>,
    model: &mut Model,
    diags: &mut Diagnostics,
) {
    let obj = Arc::new(ObjectRef::new("TenantGateway", "", &options.tenant));
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, p) in options.udp_proxies.iter().enumerate() {
        let field = format!("spec.udpProxies[{i}]");
        if let Err(e) = super::tcp::check_entry(options, p, (i, "udpProxies", "UDP"), &mut seen) {
            diags.error(&obj, field, e);
            continue;
        }
        match index.resolve_udp_service(&p.namespace, &p.service, p.service_port) {
            Ok(backend) => {
                let name = backend.name.clone();
                model.backends.entry(name.clone()).or_insert(backend);
                model.udp.insert(
                    p.port,
                    UdpRoute {
                        backend: name,
                        provenance: Provenance::new(&obj, field),
                    },
                );
            }
            Err(e) => diags.error(
                &obj,
                field,
                format!(
                    "{e} in namespace {:?}; no UDP listener on port {}",
                    p.namespace, p.port
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::translate::{translate, GatewayOptions, TenantObjects, UdpProxy};
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    use envoy_types::pb::envoy::config::listener::v3::{listener_filter, Listener};
    use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3::{
        udp_proxy_config::RouteSpecifier, Route, UdpProxyConfig,
    };
    use envoy_types::pb::xds::r#type::matcher::v3::matcher::on_match::OnMatch;
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use prost::Message;

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// A Service with (name, port, protocol) ports; its EndpointSlice sends
    /// each port to 10.0.0.1 on port + 5000.
    fn service(ns: &str, name: &str, ports: &[(&str, i32, Option<&str>)]) -> [Service; 1] {
        [Service {
            metadata: meta(ns, name),
            spec: Some(ServiceSpec {
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ServicePort {
                            name: Some((*n).into()),
                            port: *p,
                            protocol: proto.map(str::to_string),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }]
    }

    fn slice(ns: &str, svc: &str, ports: &[(&str, i32)]) -> EndpointSlice {
        let mut m = meta(ns, &format!("{svc}-1"));
        m.labels = Some([("kubernetes.io/service-name".to_string(), svc.to_string())].into());
        EndpointSlice {
            metadata: m,
            address_type: "IPv4".into(),
            endpoints: vec![Endpoint {
                addresses: vec!["10.0.0.1".into()],
                ..Default::default()
            }],
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| EndpointPort {
                        name: Some((*n).into()),
                        port: Some(p + 5000),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn proxy(port: u16, ns: &str, svc: &str, svc_port: u16) -> UdpProxy {
        UdpProxy {
            port,
            namespace: ns.into(),
            service: svc.into(),
            service_port: svc_port,
        }
    }

    fn objects() -> TenantObjects {
        let dns = [("dns", 53, Some("UDP")), ("dns-tcp", 53, Some("TCP"))];
        TenantObjects {
            services: [
                service("shop", "dns", &dns),
                service("shop", "web", &[("http", 80, None)]),
                service("other", "dns", &dns),
            ]
            .concat(),
            endpoint_slices: vec![
                slice("shop", "dns", &[("dns", 53), ("dns-tcp", 54)]),
                slice("shop", "web", &[("http", 80)]),
            ],
            ..Default::default()
        }
    }

    /// The cluster a UDP listener's proxy routes every datagram to, and
    /// whether it binds a UDP socket.
    fn udp_target(l: &Listener) -> (String, bool) {
        assert!(l.filter_chains.is_empty(), "{}", l.name);
        assert!(l.udp_listener_config.is_some());
        let [f] = l.listener_filters.as_slice() else {
            panic!("{}: {:?}", l.name, l.listener_filters)
        };
        assert_eq!(f.name, "envoy.filters.udp_listener.udp_proxy");
        let Some(listener_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            panic!("untyped")
        };
        let proxy = UdpProxyConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(proxy.stat_prefix, l.name);
        let Some(RouteSpecifier::Matcher(m)) = proxy.route_specifier else {
            panic!("no matcher")
        };
        assert!(m.matcher_type.is_none(), "every datagram takes on_no_match");
        let Some(OnMatch::Action(a)) = m.on_no_match.unwrap().on_match else {
            panic!("no action")
        };
        let route = Route::decode(a.typed_config.unwrap().value.as_slice()).unwrap();
        let Some(address::Address::SocketAddress(sa)) = l.address.clone().unwrap().address else {
            panic!("no socket address")
        };
        (
            route.cluster,
            sa.protocol == socket_address::Protocol::Udp as i32,
        )
    }

    /// The port of the one endpoint of a cluster.
    fn endpoint_port(t: &crate::Translation, cluster: &str) -> u32 {
        use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
        let eds = t
            .resources
            .endpoints
            .iter()
            .find(|e| e.cluster_name == cluster);
        let [lb] = eds.unwrap().endpoints[0].lb_endpoints.as_slice() else {
            panic!("{cluster}: not one endpoint")
        };
        let Some(HostIdentifier::Endpoint(ep)) = &lb.host_identifier else {
            panic!("no endpoint")
        };
        let Some(address::Address::SocketAddress(sa)) = ep.address.clone().unwrap().address else {
            panic!("no address")
        };
        assert_eq!(sa.address, "10.0.0.1");
        match sa.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(p)) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn udp_proxies_get_a_udp_listener_only_for_udp_ports_of_the_tenant() {
        let opts = GatewayOptions {
            namespaces: Some(["shop".to_string()].into()),
            tenant: "acme".into(),
            udp_proxies: vec![
                proxy(53, "shop", "dns", 53),
                proxy(53, "shop", "dns", 53),
                proxy(5353, "other", "dns", 53),
                proxy(5354, "shop", "web", 80),
                proxy(5355, "shop", "missing", 53),
                proxy(5356, "shop", "dns", 54),
                // UDP numbers are apart from TCP ones: the HTTP port's too.
                proxy(8080, "shop", "dns", 53),
            ],
            // TCP 53 of the same Service: its TCP port, a cluster of its own.
            tcp_proxies: vec![proxy(53, "shop", "dns", 53)],
            ..GatewayOptions::default()
        };
        let t = translate(&objects(), &opts);
        let names: Vec<&str> = t.resources.listeners.iter().map(|l| &*l.name).collect();
        assert_eq!(names, ["http", "tcp-53", "udp-53", "udp-8080"]);
        for l in &t.resources.listeners[2..] {
            assert_eq!(udp_target(l), ("shop/dns/53/udp".to_string(), true));
        }
        let clusters: Vec<&str> = t.resources.clusters.iter().map(|c| &*c.name).collect();
        assert_eq!(clusters, ["shop/dns/53", "shop/dns/53/udp"]);
        // Each cluster has its own port's endpoints: `dns-tcp` (54 + 5000)
        // for TCP, `dns` (53 + 5000) for UDP.
        assert_eq!(endpoint_port(&t, "shop/dns/53"), 5054);
        assert_eq!(endpoint_port(&t, "shop/dns/53/udp"), 5053);
        assert_eq!(t.resources.consistency_problems(), Vec::<String>::new());
        let diags: Vec<(&str, &str, &str)> = t
            .diagnostics
            .iter()
            .map(|d| (d.object.name.as_str(), d.field.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            diags,
            [
                ("acme", "spec.udpProxies[1]", "port 53 duplicates spec.udpProxies[0]; no UDP listener"),
                ("acme", "spec.udpProxies[2]", "namespace \"other\" is not one of the tenant's namespaces; no UDP listener on port 5353"),
                ("acme", "spec.udpProxies[3]", "Service \"web\" port 80 has protocol TCP, not UDP in namespace \"shop\"; no UDP listener on port 5354"),
                ("acme", "spec.udpProxies[4]", "Service \"missing\" not found in namespace \"shop\"; no UDP listener on port 5355"),
                ("acme", "spec.udpProxies[5]", "Service \"dns\" has no port 54 in namespace \"shop\"; no UDP listener on port 5356"),
            ]
        );
        assert!(t
            .diagnostics
            .iter()
            .all(|d| d.object.kind == "TenantGateway"));
        assert_eq!(translate(&objects(), &opts), t, "deterministic");
    }

    #[test]
    fn from_spec_carries_udp_proxies_and_the_sidecar_form_round_trips() {
        let spec = crds::TenantGatewaySpec {
            udp_proxies: vec![crds::UdpProxy {
                port: 53,
                service: crds::TcpProxyBackend {
                    namespace: "shop".into(),
                    name: "dns".into(),
                    port: 5353,
                },
            }],
            ..Default::default()
        };
        let opts = GatewayOptions::from_spec(&spec);
        assert_eq!(opts.udp_proxies, [proxy(53, "shop", "dns", 5353)]);
        assert!(opts.tcp_proxies.is_empty());
        let arg = opts.udp_proxies[0].to_string();
        assert_eq!(arg, "53=shop/dns:5353");
        assert_eq!(arg.parse::<UdpProxy>().unwrap(), opts.udp_proxies[0]);
    }
}
