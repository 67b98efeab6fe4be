//! The tenant's Service, PodDisruptionBudget and (optionally) IngressClass.

use super::meta::Fleet;
use super::names;
use crds::{ServiceType, CONTROLLER_NAME};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    IngressClass, IngressClassSpec, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn service_type(t: Option<ServiceType>) -> &'static str {
    match t.unwrap_or(ServiceType::LoadBalancer) {
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::NodePort => "NodePort",
        ServiceType::ClusterIP => "ClusterIP",
    }
}

/// The tenant's fleet: `http` 80 and `https` 443 to the listeners' named
/// container ports, plus one port per TCP or UDP proxy (same number outside and
/// inside). A Gateway's fleet: each listener port p to container port
/// [`names::container_port`]`(p)`.
pub fn build_service(t: &Fleet<'_>) -> Service {
    let spec = &t.gw.spec;
    let mut meta = t.meta_in_gateway_ns(t.names().workload.clone());
    meta.annotations = t.annotations_with(&spec.service.annotations);
    let ports = t
        .ports()
        .into_iter()
        .map(|p| ServicePort {
            name: Some(p.name),
            port: p.service_port,
            // Explicit: SSA keys service ports by (port, protocol).
            protocol: Some(p.protocol.into()),
            target_port: Some(p.target),
            ..Default::default()
        })
        .collect();
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some(service_type(spec.service.type_).into()),
            external_traffic_policy: spec
                .service
                .external_traffic_policy
                .map(|p| p.as_str().into()),
            selector: Some(t.selector().clone()),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

/// Only with more than one replica: a PDB on a single replica would block
/// node drains forever.
pub fn build_pdb(t: &Fleet<'_>) -> Option<PodDisruptionBudget> {
    // Under an autoscaler: its lower bound.
    let replicas = super::placement::min_replicas(t.gw);
    (replicas > 1).then(|| PodDisruptionBudget {
        metadata: t.meta_in_gateway_ns(t.names().workload.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(t.selector().clone()),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// Only when `spec.networkPolicy.enabled`: the gateway pods accept traffic on
/// their listener and TCP- and UDP-proxy ports, Envoy's readiness port, the sidecar's
/// health and metrics ports, and nothing else (Envoy admin and xDS never listen
/// on the pod network anyway; this is defense in depth).
pub fn build_network_policy(t: &Fleet<'_>) -> Option<NetworkPolicy> {
    let spec = &t.gw.spec;
    let enabled = spec.network_policy.as_ref().is_some_and(|n| n.enabled);
    enabled.then(|| {
        let allow = |(port, protocol): (i32, &str)| NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some(protocol.into()),
            end_port: None,
        };
        let mut ports: Vec<(i32, &str)> = [
            names::ENVOY_HEALTH_PORT,
            names::HEALTH_PORT,
            names::METRICS_PORT,
        ]
        .into_iter()
        .map(|p| (i32::from(p), "TCP"))
        .collect();
        ports.extend(t.ports().iter().map(|p| (p.container_port, p.protocol)));
        ports.sort_unstable();
        ports.dedup();
        NetworkPolicy {
            metadata: t.meta_in_gateway_ns(t.names().workload.clone()),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(t.selector().clone()),
                    match_expressions: None,
                }),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(ports.into_iter().map(allow).collect()),
                }]),
                egress: None,
            }),
        }
    })
}

/// Only when `spec.ingressClass.create` is true.
pub fn build_ingress_class(t: &Fleet<'_>) -> Option<IngressClass> {
    let settings = &t.gw.spec.ingress_class;
    settings.create.unwrap_or(false).then(|| IngressClass {
        metadata: t.meta(settings.class_name().to_string(), None),
        spec: Some(IngressClassSpec {
            controller: Some(CONTROLLER_NAME.into()),
            parameters: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ctx, tenant};
    use super::super::meta::selector_labels;
    use super::*;
    use crds::{TcpProxy, TcpProxyBackend};

    fn with<R>(gw: &crds::TenantGateway, f: impl FnOnce(&Fleet<'_>) -> R) -> R {
        let ctx = ctx();
        f(&Fleet::tenant(gw, &ctx).unwrap())
    }

    #[test]
    fn service_type_table() {
        let cases = [
            (None, "LoadBalancer"),
            (Some(ServiceType::LoadBalancer), "LoadBalancer"),
            (Some(ServiceType::NodePort), "NodePort"),
            (Some(ServiceType::ClusterIP), "ClusterIP"),
        ];
        for (spec_type, want) in cases {
            let mut gw = tenant("acme");
            gw.spec.service.type_ = spec_type;
            let svc = with(&gw, build_service);
            assert_eq!(
                svc.spec.unwrap().type_.as_deref(),
                Some(want),
                "{spec_type:?}"
            );
        }
    }

    #[test]
    fn external_traffic_policy_only_when_the_spec_sets_it() {
        let mut gw = tenant("acme");
        let policy = |gw: &crds::TenantGateway| {
            with(gw, build_service)
                .spec
                .unwrap()
                .external_traffic_policy
        };
        // Absent: Kubernetes' default (Cluster), and SSA does not own the field.
        assert_eq!(policy(&gw), None);
        for (p, want) in [
            (crds::ExternalTrafficPolicy::Local, "Local"),
            (crds::ExternalTrafficPolicy::Cluster, "Cluster"),
        ] {
            gw.spec.service.external_traffic_policy = Some(p);
            for t in [None, Some(ServiceType::NodePort)] {
                gw.spec.service.type_ = t;
                assert_eq!(policy(&gw).as_deref(), Some(want), "{t:?}");
            }
        }
    }

    #[test]
    fn service_ports_selector_annotations() {
        let mut gw = tenant("acme");
        gw.spec.tcp_proxies = vec![TcpProxy {
            port: 5432,
            service: TcpProxyBackend::default(),
        }];
        gw.spec.udp_proxies = vec![crds::UdpProxy {
            port: 5432,
            service: TcpProxyBackend::default(),
        }];
        gw.spec.service.annotations =
            [("example.com/lb".to_string(), "internal".to_string())].into();
        let svc = with(&gw, build_service);
        assert_eq!(svc.metadata.name.as_deref(), Some("tgw-acme"));
        assert_eq!(
            svc.metadata.annotations.as_ref().unwrap()["example.com/lb"],
            "internal"
        );
        let spec = svc.spec.unwrap();
        let ports: Vec<_> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| {
                (
                    p.name.unwrap(),
                    p.port,
                    p.target_port.unwrap(),
                    p.protocol.unwrap(),
                )
            })
            .collect();
        let s = |x: &str| x.to_string();
        assert_eq!(
            ports,
            [
                (s("http"), 80, IntOrString::String(s("http")), s("TCP")),
                (s("https"), 443, IntOrString::String(s("https")), s("TCP")),
                (
                    s("tcp-5432"),
                    5432,
                    IntOrString::String(s("tcp-5432")),
                    s("TCP")
                ),
                (
                    s("udp-5432"),
                    5432,
                    IntOrString::String(s("udp-5432")),
                    s("UDP")
                ),
            ]
        );
        assert_eq!(spec.selector.unwrap(), selector_labels("acme"));
        // No annotations in the spec: no annotations map at all (SSA would own it).
        assert!(with(&tenant("acme"), build_service)
            .metadata
            .annotations
            .is_none());
    }

    #[test]
    fn pdb_only_with_more_than_one_replica() {
        let cases = [
            (None, true),
            (Some(0), false),
            (Some(1), false),
            (Some(2), true),
            (Some(5), true),
        ];
        for (replicas, want) in cases {
            let mut gw = tenant("acme");
            gw.spec.replicas = replicas;
            let pdb = with(&gw, build_pdb);
            assert_eq!(pdb.is_some(), want, "replicas {replicas:?}");
            if let Some(pdb) = pdb {
                let spec = pdb.spec.unwrap();
                assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
                assert_eq!(
                    spec.selector.unwrap().match_labels.unwrap(),
                    selector_labels("acme")
                );
                assert_eq!(pdb.metadata.name.as_deref(), Some("tgw-acme"));
            }
        }
    }

    #[test]
    fn ingress_class_only_when_asked() {
        let mut gw = tenant("acme");
        assert!(with(&gw, build_ingress_class).is_none());
        gw.spec.ingress_class.create = Some(false);
        assert!(with(&gw, build_ingress_class).is_none());
        gw.spec.ingress_class.create = Some(true);
        let ic = with(&gw, build_ingress_class).unwrap();
        assert_eq!(ic.metadata.name.as_deref(), Some("tenant-gateway"));
        assert_eq!(ic.metadata.namespace, None);
        assert_eq!(
            ic.spec.unwrap().controller.as_deref(),
            Some("tenantgateway.io/controller")
        );
        gw.spec.ingress_class.name = Some("acme".into());
        assert_eq!(
            with(&gw, build_ingress_class)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("acme")
        );
    }
}
