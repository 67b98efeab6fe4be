//! The two ConfigMaps: Envoy's bootstrap (changes roll the pods) and the
//! claimed namespaces (read live by the sidecar; changes never roll pods).

use super::meta::Fleet;
use super::names::{
    self, ADMIN_PORT, BOOTSTRAP_KEY, BOOTSTRAP_NODE_ID, CLAIMS_KEY, ENVOY_HEALTH_PORT,
    NAMESPACE_LABELS_KEY, SOCKET_PATH,
};
use super::BuildError;
use crate::claims::ClaimDecision;
use k8s_openapi::api::core::v1::ConfigMap;

/// Envoy's ADS bootstrap for `tenant`, as written to the ConfigMap.
pub fn envoy_bootstrap_yaml(tenant: &str) -> Result<String, BuildError> {
    let bootstrap = xds::bootstrap::ads_bootstrap(
        BOOTSTRAP_NODE_ID,
        tenant,
        SOCKET_PATH,
        ADMIN_PORT,
        Some(ENVOY_HEALTH_PORT),
    );
    xds::bootstrap::to_yaml(&bootstrap).map_err(BuildError::Bootstrap)
}

pub fn build_bootstrap_config_map(t: &Fleet<'_>, bootstrap_yaml: &str) -> ConfigMap {
    ConfigMap {
        metadata: t.meta_in_gateway_ns(t.names().bootstrap_config_map.clone()),
        data: Some([(BOOTSTRAP_KEY.to_string(), bootstrap_yaml.to_string())].into()),
        ..Default::default()
    }
}

/// The claimed namespaces; for a Gateway fleet also their labels (the
/// sidecar may not list Namespaces, and `allowedRoutes` selectors need them).
pub fn build_claims_config_map(t: &Fleet<'_>, claims: &ClaimDecision) -> ConfigMap {
    let mut data = std::collections::BTreeMap::from([(
        CLAIMS_KEY.to_string(),
        names::claims_data(&claims.claimed),
    )]);
    if let Some(g) = t.gateway_fleet() {
        data.insert(
            NAMESPACE_LABELS_KEY.to_string(),
            names::namespace_labels_data(&g.namespace_labels),
        );
    }
    ConfigMap {
        metadata: t.meta_in_gateway_ns(t.names().claims_config_map.clone()),
        data: Some(data),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{claims, ctx, tenant};
    use super::*;

    #[test]
    fn bootstrap_points_envoy_at_the_socket() {
        let yaml = envoy_bootstrap_yaml("acme").unwrap();
        assert!(yaml.contains(SOCKET_PATH), "{yaml}");
        assert!(yaml.contains("9901"), "{yaml}");
        let (gw, ctx) = (tenant("acme"), ctx());
        let t = Fleet::tenant(&gw, &ctx).unwrap();
        let cm = build_bootstrap_config_map(&t, &yaml);
        assert_eq!(cm.metadata.name.as_deref(), Some("tgw-acme-envoy"));
        assert_eq!(
            cm.metadata.namespace.as_deref(),
            Some("tenant-gateway-system")
        );
        let data = cm.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["envoy.yaml"]);
        assert_eq!(data["envoy.yaml"], yaml);
    }

    #[test]
    fn claims_config_map_lists_claimed_namespaces_sorted() {
        let (gw, ctx) = (tenant("acme"), ctx());
        let t = Fleet::tenant(&gw, &ctx).unwrap();
        let cm =
            build_claims_config_map(&t, &claims(&["zeta", "alpha"], &[("contested", "globex")]));
        assert_eq!(cm.metadata.name.as_deref(), Some("tgw-acme-claims"));
        assert_eq!(cm.data.unwrap()["namespaces"], "alpha\nzeta\n");
        let empty = build_claims_config_map(&t, &claims(&[], &[]));
        assert_eq!(empty.data.unwrap()["namespaces"], "");
    }
}
