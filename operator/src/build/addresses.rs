//! The addresses a tenant's gateway publishes — in its Ingresses'
//! `status.loadBalancer`, its Gateways' `status.addresses` and the
//! TenantGateway's `status.addresses` — chosen so that a client (or
//! external-dns) can use them:
//!
//! 1. `spec.publishStatusAddresses` when set (the admin's override, as
//!    ingress-nginx's `--publish-status-address`);
//! 2. the Service's load-balancer ingress when it has one;
//! 3. hostNetwork: the addresses of the Ready nodes the fleet may run on
//!    (its `placement.nodeSelector`), with the listener ports where they are
//!    not 80/443;
//! 4. a NodePort Service: every Ready node's address (each node forwards its
//!    NodePorts), with the `http`/`https` NodePorts;
//! 5. otherwise (ClusterIP, or a LoadBalancer still pending) the cluster IPs.
//!
//! A node's address is its ExternalIP, else its InternalIP. The operator
//! computes them (it may read Nodes; no tenant identity may) and hands them
//! to the sidecar in the Service annotation [`PUBLISHED_ADDRESSES_ANNOTATION`].

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::{IngressLoadBalancerIngress, IngressPortStatus};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// On the fleet's Service: the published addresses as a JSON list of
/// `IngressLoadBalancerIngress`, written by the operator, read by the sidecar.
pub const PUBLISHED_ADDRESSES_ANNOTATION: &str = "tenantgateway.io/published-addresses";

/// What the fleet of `gw` publishes given its live Service (if it exists yet)
/// and the cluster's Nodes. Sorted and deduplicated: same inputs, same bytes.
pub fn published_addresses(
    gw: &crds::TenantGateway,
    host_network: bool,
    svc: Option<&Service>,
    nodes: &[impl std::borrow::Borrow<Node>],
) -> Vec<IngressLoadBalancerIngress> {
    let spec = &gw.spec;
    if !spec.publish_status_addresses.is_empty() {
        return spec
            .publish_status_addresses
            .iter()
            .map(|a| entry(a, vec![]))
            .collect();
    }
    let lb = svc.map(load_balancer).unwrap_or_default();
    if !lb.is_empty() {
        return lb;
    }
    if host_network {
        let selector = spec
            .placement
            .as_ref()
            .map(|p| p.node_selector.clone())
            .unwrap_or_default();
        let ports = [spec.listeners.http(), spec.listeners.https()]
            .into_iter()
            .map(i32::from)
            .filter(|p| *p != 80 && *p != 443)
            .collect::<Vec<_>>();
        return node_entries(nodes, &selector, &ports);
    }
    let Some(svc) = svc else { return vec![] };
    let s = svc.spec.as_ref();
    if s.and_then(|s| s.type_.as_deref()) == Some("NodePort") {
        let ports: Vec<i32> = ["http", "https"]
            .iter()
            .filter_map(|name| {
                s.and_then(|s| s.ports.as_ref())
                    .into_iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .and_then(|p| p.node_port)
            })
            .collect();
        if !ports.is_empty() {
            return node_entries(nodes, &BTreeMap::new(), &ports);
        }
    }
    cluster_ips(svc)
}

/// What a Service alone offers: its load-balancer ingress when it has one,
/// else its cluster IPs (rules 2 and 5; what a sidecar shows for a Service
/// the operator has not annotated).
pub fn service_addresses(svc: &Service) -> Vec<IngressLoadBalancerIngress> {
    let lb = load_balancer(svc);
    if lb.is_empty() {
        cluster_ips(svc)
    } else {
        lb
    }
}

fn entry(address: &str, ports: Vec<i32>) -> IngressLoadBalancerIngress {
    let is_ip = address.parse::<IpAddr>().is_ok();
    IngressLoadBalancerIngress {
        ip: is_ip.then(|| address.to_string()),
        hostname: (!is_ip).then(|| address.to_string()),
        ports: (!ports.is_empty()).then(|| {
            ports
                .into_iter()
                .map(|port| IngressPortStatus {
                    port,
                    protocol: "TCP".into(),
                    error: None,
                })
                .collect()
        }),
    }
}

fn load_balancer(svc: &Service) -> Vec<IngressLoadBalancerIngress> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .map(|i| IngressLoadBalancerIngress {
            ip: i.ip.clone(),
            hostname: i.hostname.clone(),
            ports: None,
        })
        .collect()
}

fn cluster_ips(svc: &Service) -> Vec<IngressLoadBalancerIngress> {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.cluster_ips.clone())
        .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]))
        .unwrap_or_default()
        .into_iter()
        .filter(|ip| !ip.is_empty() && ip != "None")
        .map(|ip| entry(&ip, vec![]))
        .collect()
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// ExternalIP, else InternalIP (the first of its kind the node reports).
fn node_address(n: &Node) -> Option<String> {
    let addrs = n.status.as_ref()?.addresses.as_ref()?;
    ["ExternalIP", "InternalIP"].iter().find_map(|kind| {
        addrs
            .iter()
            .find(|a| a.type_ == *kind && !a.address.is_empty())
            .map(|a| a.address.clone())
    })
}

/// What [`published_addresses`] reads of one Node: a change of anything
/// else of it (its heartbeat, its images) moves no address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub address: Option<String>,
    pub ready: bool,
}

/// [`NodeInput`] of every node, sorted by name.
pub fn node_inputs(nodes: &[impl std::borrow::Borrow<Node>]) -> Vec<NodeInput> {
    let mut out: Vec<NodeInput> = nodes
        .iter()
        .map(|n| n.borrow())
        .map(|n| NodeInput {
            name: n.metadata.name.clone().unwrap_or_default(),
            labels: n.metadata.labels.clone().unwrap_or_default(),
            address: node_address(n),
            ready: node_ready(n) && n.metadata.deletion_timestamp.is_none(),
        })
        .collect();
    out.sort();
    out
}

fn node_entries(
    nodes: &[impl std::borrow::Borrow<Node>],
    selector: &BTreeMap<String, String>,
    ports: &[i32],
) -> Vec<IngressLoadBalancerIngress> {
    let mut addrs: Vec<String> = nodes
        .iter()
        .map(|n| n.borrow())
        .filter(|n| node_ready(n) && n.metadata.deletion_timestamp.is_none())
        .filter(|n| {
            let labels = n.metadata.labels.clone().unwrap_or_default();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .filter_map(node_address)
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs.iter().map(|a| entry(a, ports.to_vec())).collect()
}

/// The annotation's value: compact JSON (empty list when nothing is known).
pub fn annotation_value(addresses: &[IngressLoadBalancerIngress]) -> String {
    serde_json::to_string(addresses).unwrap_or_else(|_| "[]".into())
}

/// The TenantGateway status form: one address per entry (ports, where
/// given, as in the Ingress status).
pub fn gateway_addresses(addresses: &[IngressLoadBalancerIngress]) -> Vec<crds::GatewayAddress> {
    addresses
        .iter()
        .filter_map(|a| {
            let (type_, value) = match (&a.ip, &a.hostname) {
                (Some(ip), _) => ("IPAddress", ip),
                (None, Some(h)) => ("Hostname", h),
                _ => return None,
            };
            Some(crds::GatewayAddress {
                type_: type_.into(),
                value: value.clone(),
                ports: a.ports.iter().flatten().map(|p| p.port).collect(),
            })
        })
        .collect()
}

/// The addresses the operator published on `svc`, if it did (`None` when
/// the annotation is absent or unreadable).
pub fn published_on(svc: &Service) -> Option<Vec<IngressLoadBalancerIngress>> {
    let v = svc
        .metadata
        .annotations
        .as_ref()?
        .get(PUBLISHED_ADDRESSES_ANNOTATION)?;
    serde_json::from_str(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::tenant;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeCondition, NodeStatus,
        ServicePort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, ready: bool, addrs: &[(&str, &str)], labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: None,
            status: Some(NodeStatus {
                addresses: Some(
                    addrs
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: t.to_string(),
                            address: a.to_string(),
                        })
                        .collect(),
                ),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn nodes() -> Vec<Node> {
        vec![
            node(
                "n2",
                true,
                &[("InternalIP", "10.0.0.2"), ("Hostname", "n2")],
                &[("pool", "ingress")],
            ),
            node(
                "n1",
                true,
                &[("InternalIP", "10.0.0.1"), ("ExternalIP", "198.51.100.1")],
                &[],
            ),
            node(
                "n3",
                false,
                &[("InternalIP", "10.0.0.3")],
                &[("pool", "ingress")],
            ),
        ]
    }

    fn service(type_: &str, lb: Option<&str>) -> Service {
        let port = |name: &str, port, node_port| ServicePort {
            name: Some(name.into()),
            port,
            node_port,
            ..Default::default()
        };
        Service {
            metadata: ObjectMeta::default(),
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                cluster_ip: Some("10.96.0.10".into()),
                cluster_ips: Some(vec!["10.96.0.10".into()]),
                ports: Some(vec![
                    port("http", 80, Some(31080)),
                    port("https", 443, Some(31443)),
                    port("tcp-5432", 5432, Some(31432)),
                ]),
                ..Default::default()
            }),
            status: lb.map(|ip| ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some(ip.into()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
        }
    }

    /// (ip or hostname, ports) of each entry.
    fn flat(v: &[IngressLoadBalancerIngress]) -> Vec<(String, Vec<i32>)> {
        v.iter()
            .map(|a| {
                (
                    a.ip.clone().or(a.hostname.clone()).unwrap_or_default(),
                    a.ports.iter().flatten().map(|p| p.port).collect(),
                )
            })
            .collect()
    }

    fn s(v: &[(&str, &[i32])]) -> Vec<(String, Vec<i32>)> {
        v.iter().map(|(a, p)| (a.to_string(), p.to_vec())).collect()
    }

    #[test]
    fn node_port_publishes_every_ready_node_with_the_node_ports() {
        let gw = tenant("acme");
        let got = published_addresses(&gw, false, Some(&service("NodePort", None)), &nodes());
        // External address preferred; the NotReady node left out; sorted.
        assert_eq!(
            flat(&got),
            s(&[
                ("10.0.0.2", &[31080, 31443]),
                ("198.51.100.1", &[31080, 31443])
            ])
        );
        assert!(got.iter().all(|a| a
            .ports
            .iter()
            .flatten()
            .all(|p| p.protocol == "TCP" && p.error.is_none())));
        // Node order in the list does not matter.
        let mut reversed = nodes();
        reversed.reverse();
        assert_eq!(
            published_addresses(&gw, false, Some(&service("NodePort", None)), &reversed),
            got
        );
    }

    #[test]
    fn a_load_balancer_address_wins_and_a_pending_or_cluster_ip_service_keeps_its_cluster_ip() {
        let gw = tenant("acme");
        let lb = service("LoadBalancer", Some("203.0.113.9"));
        assert_eq!(
            flat(&published_addresses(&gw, false, Some(&lb), &nodes())),
            s(&[("203.0.113.9", &[])])
        );
        for pending in [service("LoadBalancer", None), service("ClusterIP", None)] {
            assert_eq!(
                flat(&published_addresses(&gw, false, Some(&pending), &nodes())),
                s(&[("10.96.0.10", &[])])
            );
        }
        assert_eq!(published_addresses(&gw, false, None, &nodes()), vec![]);
    }

    #[test]
    fn host_network_publishes_the_selected_ready_nodes_with_non_default_ports() {
        let mut gw = tenant("acme");
        gw.spec.host_network = true;
        gw.spec.placement = Some(crds::PlacementSettings {
            node_selector: [("pool".to_string(), "ingress".to_string())].into(),
            ..Default::default()
        });
        // Default listener ports 8080/8443: given. No Service needed.
        assert_eq!(
            flat(&published_addresses(&gw, true, None, &nodes())),
            s(&[("10.0.0.2", &[8080, 8443])])
        );
        gw.spec.listeners.http_port = Some(80);
        gw.spec.listeners.https_port = Some(443);
        assert_eq!(
            flat(&published_addresses(&gw, true, None, &nodes())),
            s(&[("10.0.0.2", &[])])
        );
        gw.spec.listeners.https_port = Some(8443);
        assert_eq!(
            flat(&published_addresses(&gw, true, None, &nodes())),
            s(&[("10.0.0.2", &[8443])])
        );
        gw.spec.placement = None;
        assert_eq!(
            flat(&published_addresses(&gw, true, None, &nodes())),
            s(&[("10.0.0.2", &[8443]), ("198.51.100.1", &[8443])])
        );
    }

    #[test]
    fn the_admin_override_wins_and_names_ips_and_hostnames() {
        let mut gw = tenant("acme");
        gw.spec.publish_status_addresses = vec!["203.0.113.5".into(), "lb.example.com".into()];
        for host_network in [false, true] {
            let got = published_addresses(
                &gw,
                host_network,
                Some(&service("LoadBalancer", Some("203.0.113.9"))),
                &nodes(),
            );
            assert_eq!(got[0].ip.as_deref(), Some("203.0.113.5"));
            assert_eq!(got[0].hostname, None);
            assert_eq!(got[1].hostname.as_deref(), Some("lb.example.com"));
            assert_eq!(got[1].ip, None);
            assert_eq!(got.len(), 2);
        }
        gw.spec.publish_status_addresses = vec!["not a name!".into(), "2001:db8::1".into()];
        let errs = crate::build::validate(&gw).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.publishStatusAddresses[0]");
    }

    #[test]
    fn the_annotation_carries_them_to_the_sidecar_and_the_status() {
        let gw = tenant("acme");
        let published = published_addresses(&gw, false, Some(&service("NodePort", None)), &nodes());
        let mut desired = crate::build::build_all(
            &gw,
            &crate::build::fixtures::claims(&["acme-shop"], &[]),
            &crate::build::fixtures::ctx(),
        )
        .unwrap();
        crate::build::set_published_addresses(&mut desired, &published);
        let svc = desired
            .iter()
            .find_map(|d| match d {
                crate::build::Desired::Service(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap();
        let value = &svc.metadata.annotations.as_ref().unwrap()[PUBLISHED_ADDRESSES_ANNOTATION];
        assert_eq!(
            value,
            r#"[{"ip":"10.0.0.2","ports":[{"port":31080,"protocol":"TCP"},{"port":31443,"protocol":"TCP"}]},{"ip":"198.51.100.1","ports":[{"port":31080,"protocol":"TCP"},{"port":31443,"protocol":"TCP"}]}]"#
        );
        // The sidecar's Ingress status reads it back (not the cluster IP).
        assert_eq!(crate::sidecar::status::published_addresses(&svc), published);
        // The TenantGateway status form keeps the ports.
        let g = gateway_addresses(&published);
        assert_eq!(
            (g[0].type_.as_str(), g[0].value.as_str(), g[0].ports.clone()),
            ("IPAddress", "10.0.0.2", vec![31080, 31443])
        );
        // An unreadable annotation is ignored.
        let mut bad = svc.clone();
        bad.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(PUBLISHED_ADDRESSES_ANNOTATION.into(), "{".into());
        assert_eq!(published_on(&bad), None);
    }
}
