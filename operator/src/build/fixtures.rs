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
