//! Names, ports and paths shared by the builders, the reconciler and the xDS
//! sidecar. Change them here only: both sides of every reference use these.

use crds::TenantGateway;
use std::collections::BTreeSet;

/// The operator's namespace when `POD_NAMESPACE` is unset (as `config/` installs it).
pub const OPERATOR_NAMESPACE: &str = "tenant-gateway-system";
/// The operator's ServiceAccount and Deployment in `config/`.
pub const OPERATOR_NAME: &str = "tenant-gateway";
/// The tenant-gateway image (the xDS sidecar) when the operator is given none.
pub const SIDECAR_IMAGE: &str = "localhost/tenant-gateway:dev";
/// The Envoy image when the operator is given none and the spec names none.
pub const ENVOY_IMAGE: &str = "localhost/envoy:1.40";
/// The operator's `/healthz` and `/metrics`.
pub const OPERATOR_HTTP_PORT: u16 = 8080;
/// Address Envoy's HTTP/HTTPS listeners bind to unless told otherwise.
pub const LISTENER_BIND_ADDRESS: &str = "0.0.0.0";

/// ClusterRole (installed with the operator) bound in each claimed namespace.
pub const READER_CLUSTER_ROLE: &str = "tenant-gateway-tenant-reader";
/// The emptyDir shared by Envoy and the xDS sidecar.
pub const SOCKET_DIR: &str = "/var/run/tenant-gateway";
/// The ADS Unix socket the sidecar serves and Envoy's bootstrap dials.
pub const SOCKET_PATH: &str = "/var/run/tenant-gateway/ads.sock";
/// Envoy admin port (bound to 127.0.0.1 by the bootstrap; never exposed).
pub const ADMIN_PORT: u16 = 9901;
/// Sidecar HTTP: `/healthz` (sidecar), `/ready` (Envoy readiness), `/drain` (preStop).
pub const HEALTH_PORT: u16 = 8081;
/// Sidecar Prometheus metrics.
pub const METRICS_PORT: u16 = 9102;
/// Ports inside the pod that listeners and TCP proxies must not take.
pub const RESERVED_POD_PORTS: [u16; 4] = [ADMIN_PORT, HEALTH_PORT, METRICS_PORT, ENVOY_HEALTH_PORT];
/// Envoy's own readiness listener (`GET /ready`), independent of the sidecar.
pub const ENVOY_HEALTH_PORT: u16 = 8002;

/// Service ports of the HTTP and HTTPS listeners.
pub const SERVICE_HTTP_PORT: i32 = 80;
pub const SERVICE_HTTPS_PORT: i32 = 443;

/// Key of the Envoy bootstrap in the `-envoy` ConfigMap.
pub const BOOTSTRAP_KEY: &str = "envoy.yaml";
/// Directory Envoy's bootstrap ConfigMap is mounted at.
pub const BOOTSTRAP_DIR: &str = "/etc/envoy";
/// Key of the claimed namespaces in the `-claims` ConfigMap.
pub const CLAIMS_KEY: &str = "namespaces";
/// Pod-template annotation: sha256 of the bootstrap, so a change rolls the pods.
pub const BOOTSTRAP_HASH_ANNOTATION: &str = "tenantgateway.io/bootstrap-hash";
/// Node id in the bootstrap; each pod overrides it with `--service-node $(POD_NAME)`.
pub const BOOTSTRAP_NODE_ID: &str = "tenant-gateway";

/// Container names in the gateway pod.
pub const ENVOY_CONTAINER: &str = "envoy";
pub const SIDECAR_CONTAINER: &str = "xds";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const COMPONENT_ENVOY: &str = "envoy";

/// Longest tenant name whose `tgw-<tenant>` still fits a 63-character
/// Service name (DNS-1035 label).
pub const MAX_TENANT_NAME_LEN: usize = 63 - PREFIX.len();

const PREFIX: &str = "tgw-";

/// The namespace the tenant's Deployment, Service, ServiceAccount and
/// ConfigMaps live in.
pub fn gateway_namespace(gw: &TenantGateway, operator_namespace: &str) -> String {
    gw.spec
        .gateway_namespace
        .clone()
        .unwrap_or_else(|| operator_namespace.to_string())
}

/// `tgw-<tenant>`: Deployment, Service, PDB and ServiceAccount.
pub fn workload_name(tenant: &str) -> String {
    format!("{PREFIX}{tenant}")
}

pub fn service_account_name(tenant: &str) -> String {
    workload_name(tenant)
}

pub fn deployment_name(tenant: &str) -> String {
    workload_name(tenant)
}

pub fn service_name(tenant: &str) -> String {
    workload_name(tenant)
}

pub fn pdb_name(tenant: &str) -> String {
    workload_name(tenant)
}

/// The RoleBinding to [`READER_CLUSTER_ROLE`] in each claimed namespace.
pub fn reader_role_binding_name(tenant: &str) -> String {
    workload_name(tenant)
}

/// `tgw-<tenant>-envoy`: the Envoy bootstrap ConfigMap.
pub fn bootstrap_config_map_name(tenant: &str) -> String {
    format!("{PREFIX}{tenant}-envoy")
}

/// `tgw-<tenant>-claims`: the claimed namespaces the sidecar watches.
pub fn claims_config_map_name(tenant: &str) -> String {
    format!("{PREFIX}{tenant}-claims")
}

/// `tgw-<tenant>-self`: Role and RoleBinding in the gateway namespace.
pub fn self_role_name(tenant: &str) -> String {
    format!("{PREFIX}{tenant}-self")
}

/// The `namespaces` value of the claims ConfigMap: one name per line, sorted.
pub fn claims_data(claimed: &BTreeSet<String>) -> String {
    claimed.iter().map(|n| format!("{n}\n")).collect()
}

/// Inverse of [`claims_data`]; tolerant of blank lines and surrounding spaces.
pub fn parse_claims_data(data: &str) -> BTreeSet<String> {
    data.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        let cases = [
            (workload_name("acme"), "tgw-acme"),
            (service_account_name("acme"), "tgw-acme"),
            (deployment_name("acme"), "tgw-acme"),
            (service_name("acme"), "tgw-acme"),
            (pdb_name("acme"), "tgw-acme"),
            (reader_role_binding_name("acme"), "tgw-acme"),
            (bootstrap_config_map_name("acme"), "tgw-acme-envoy"),
            (claims_config_map_name("acme"), "tgw-acme-claims"),
            (self_role_name("acme"), "tgw-acme-self"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(MAX_TENANT_NAME_LEN, 59);
    }

    #[test]
    fn gateway_namespace_defaults_to_operator_namespace() {
        let mut gw = TenantGateway::new("acme", Default::default());
        assert_eq!(gateway_namespace(&gw, "tgw-system"), "tgw-system");
        gw.spec.gateway_namespace = Some("acme-gw".into());
        assert_eq!(gateway_namespace(&gw, "tgw-system"), "acme-gw");
    }

    #[test]
    fn claims_data_round_trips() {
        let set: BTreeSet<String> = ["b", "a", "c"].iter().map(|s| s.to_string()).collect();
        let data = claims_data(&set);
        assert_eq!(data, "a\nb\nc\n");
        assert_eq!(parse_claims_data(&data), set);
        assert_eq!(parse_claims_data(" a \n\n b"), parse_claims_data("a\nb\n"));
        assert_eq!(claims_data(&BTreeSet::new()), "");
    }
}
