//! Test fixtures shared by the builder tests.

use super::BuildContext;
use crate::claims::ClaimDecision;
use crds::{NamespaceConflict, TenantGateway, TenantGatewaySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub fn ctx() -> BuildContext {
    BuildContext {
        operator_namespace: "tenant-gateway-system".into(),
        image: "localhost/tenant-gateway:dev".into(),
        envoy_image: "localhost/envoy:1.40".into(),
        image_pull_policy: Some("IfNotPresent".into()),
        allow_host_network: false,
    }
}

/// A TenantGateway as the API server returns it (uid, creationTimestamp).
pub fn tenant(name: &str) -> TenantGateway {
    let mut gw = TenantGateway::new(
        name,
        TenantGatewaySpec {
            namespaces: crds::NamespaceSelection {
                names: vec![format!("{name}-shop")],
                selector: None,
            },
            ..Default::default()
        },
    );
    gw.metadata.uid = Some(format!("00000000-0000-0000-0000-{:0>12}", name.len()));
    gw.metadata.creation_timestamp = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    gw
}

pub fn claims(claimed: &[&str], conflicts: &[(&str, &str)]) -> ClaimDecision {
    ClaimDecision {
        claimed: claimed.iter().map(|s| s.to_string()).collect(),
        conflicts: conflicts
            .iter()
            .map(|(n, h)| NamespaceConflict {
                namespace: n.to_string(),
                holder: h.to_string(),
            })
            .collect(),
    }
}

/// A Gateway of class `tenant-gateway` as the API server returns it, with
/// the given `(name, port, protocol)` listeners.
pub fn gateway(
    namespace: &str,
    name: &str,
    listeners: &[(&str, i32, &str)],
) -> gwapi::gateways::Gateway {
    use gwapi::gateways::{Gateway, GatewayListeners, GatewaySpec};
    Gateway {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some("11111111-2222-3333-4444-555555555555".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: GatewaySpec {
            gateway_class_name: "tenant-gateway".into(),
            listeners: listeners
                .iter()
                .map(|(n, port, protocol)| GatewayListeners {
                    name: n.to_string(),
                    port: *port,
                    protocol: protocol.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        status: None,
    }
}

/// A Namespace with `labels`.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> k8s_openapi::api::core::v1::Namespace {
    k8s_openapi::api::core::v1::Namespace {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            labels: Some(label_map(labels)),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub fn label_map(labels: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
