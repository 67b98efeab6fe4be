//! `status.loadBalancer` of the tenant's Ingresses, from the tenant Service.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus,
};

/// The addresses Ingresses should show: the Service's load-balancer ingress
/// when it has one, else its cluster IPs (documented; NodePort users can
/// publish their own address through a LoadBalancer Service instead).
pub fn published_addresses(svc: &Service) -> Vec<IngressLoadBalancerIngress> {
    // What the operator published (node addresses for NodePort and
    // hostNetwork, an admin override): it can read Nodes, the sidecar cannot.
    if let Some(published) = crate::build::published_on(svc) {
        return published;
    }
    crate::build::service_addresses(svc)
}

/// The status to write, or None when the Ingress already shows it.
pub fn status_patch(
    ing: &Ingress,
    addresses: &[IngressLoadBalancerIngress],
) -> Option<serde_json::Value> {
    let current = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    if current == addresses {
        return None;
    }
    let lb = IngressLoadBalancerStatus {
        ingress: Some(addresses.to_vec()),
    };
    Some(serde_json::json!({ "status": { "loadBalancer": lb } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::api::networking::v1::IngressStatus;

    fn svc(cluster_ip: &str, lb_ip: Option<&str>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                cluster_ips: Some(vec![cluster_ip.into()]),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: lb_ip.map(|ip| {
                        vec![LoadBalancerIngress {
                            ip: Some(ip.into()),
                            ..Default::default()
                        }]
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn load_balancer_address_wins_over_cluster_ip() {
        let a = published_addresses(&svc("10.96.0.10", Some("203.0.113.7")));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].ip.as_deref(), Some("203.0.113.7"));
        let a = published_addresses(&svc("10.96.0.10", None));
        assert_eq!(a[0].ip.as_deref(), Some("10.96.0.10"));
        assert!(published_addresses(&svc("None", None)).is_empty());
    }

    #[test]
    fn patches_only_when_the_status_differs() {
        let addrs = published_addresses(&svc("10.96.0.10", None));
        let mut ing = Ingress::default();
        let patch = status_patch(&ing, &addrs).expect("empty status needs a patch");
        assert_eq!(
            patch["status"]["loadBalancer"]["ingress"][0]["ip"],
            "10.96.0.10"
        );
        ing.status = Some(IngressStatus {
            load_balancer: Some(IngressLoadBalancerStatus {
                ingress: Some(addrs.clone()),
            }),
        });
        assert_eq!(status_patch(&ing, &addrs), None);
    }
}
