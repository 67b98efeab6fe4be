//! Names, ports and paths shared by the builders, the reconciler and the xDS
//! sidecar. Change them here only: both sides of every reference use these.

use crds::TenantGateway;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

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
/// ClusterRole (installed with the operator) bound in each claimed namespace
/// for a Gateway fleet.
pub const GATEWAY_READER_CLUSTER_ROLE: &str = "tenant-gateway-gateway-reader";
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
/// Key of the claimed namespaces' labels in a Gateway fleet's `-claims`
/// ConfigMap (JSON, see [`namespace_labels_data`]).
pub const NAMESPACE_LABELS_KEY: &str = "namespace-labels";
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
/// The component label of a Gateway fleet's pods.
pub const COMPONENT_GATEWAY: &str = "gateway";
/// GEP-1762: on every object of a Gateway's fleet.
pub const LABEL_GATEWAY_NAME: &str = "gateway.networking.k8s.io/gateway-name";
/// With [`LABEL_GATEWAY_NAME`], names the Gateway a fleet object belongs to
/// (Gateway names repeat across namespaces).
pub const LABEL_GATEWAY_NAMESPACE: &str = "tenantgateway.io/gateway-namespace";

/// The controllerName of the GatewayClasses this operator serves.
pub const GATEWAY_CONTROLLER_NAME: &str = xds::CONTROLLER_NAME;
/// The GatewayClass the operator ships.
pub const GATEWAY_CLASS_NAME: &str = "tenant-gateway";

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

/// The Envoy (container) port of a Gateway listener port: ports below 1024
/// move up by 10000, as the pods run without NET_BIND_SERVICE
/// ([`xds::container_port`], where the translation binds them).
pub fn container_port(port: i32) -> i32 {
    match u16::try_from(port) {
        Ok(p) => i32::from(xds::container_port(p)),
        // Gateway listener ports are 1..=65535 by the CRD's schema.
        Err(_) => port,
    }
}

/// Name of the container (and Service) port of the TCP proxy on `port`.
pub fn tcp_proxy_port_name(port: u16) -> String {
    format!("tcp-{port}")
}

/// Name of the container (and Service) port of the UDP proxy on `port`.
pub fn udp_proxy_port_name(port: u16) -> String {
    format!("udp-{port}")
}

/// Longest Kubernetes object name that is a DNS-1035 label (Service names).
const MAX_LABEL_LEN: usize = 63;

fn is_dns1035_label(s: &str) -> bool {
    s.len() <= MAX_LABEL_LEN
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `<gateway>-<class>` (GEP-1762) when that is a valid Service name;
/// otherwise a valid prefix of it followed by `-` and 10 hex digits of its
/// sha256, so distinct Gateways keep distinct fleets.
pub fn gateway_fleet_name(gateway: &str, class: &str) -> String {
    let full = format!("{gateway}-{class}");
    if is_dns1035_label(&full) {
        return full;
    }
    let hash = &hex::encode(Sha256::digest(full.as_bytes()))[..10];
    let mut prefix: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_lowercase())
        .take(MAX_LABEL_LEN - hash.len() - 1)
        .collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    if prefix.is_empty() {
        format!("gw-{hash}")
    } else {
        format!("{prefix}-{hash}")
    }
}

/// `<fleet>.<gateway namespace>`: a Gateway fleet's RoleBinding in each
/// claimed namespace. The namespace keeps two same-named Gateways of one
/// tenant apart; the dot, which neither part can hold, keeps it unambiguous.
pub fn gateway_reader_binding_name(fleet: &str, gateway_namespace: &str) -> String {
    format!("{fleet}.{gateway_namespace}")
}

/// The `namespace-labels` value of a Gateway fleet's claims ConfigMap:
/// `{"<ns>": {"<label>": "<value>"}}`, keys sorted, so equal input gives
/// equal bytes (and no needless ConfigMap update).
pub fn namespace_labels_data(labels: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    // BTreeMaps serialize in key order; a map of strings cannot fail.
    serde_json::to_string(labels).unwrap_or_default()
}

/// Inverse of [`namespace_labels_data`]; empty for a value that is not
/// such a JSON object (the sidecar then matches no selector).
pub fn parse_namespace_labels(data: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    serde_json::from_str(data).unwrap_or_default()
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

    #[test]
    fn container_port_moves_privileged_ports_up() {
        for (port, want) in [
            (80, 10080),
            (443, 10443),
            (1023, 11023),
            (1024, 1024),
            (8080, 8080),
        ] {
            assert_eq!(container_port(port), want, "{port}");
        }
    }

    #[test]
    fn gateway_fleet_names_are_valid_service_names() {
        assert_eq!(
            gateway_fleet_name("web", "tenant-gateway"),
            "web-tenant-gateway"
        );
        let long = "a".repeat(60);
        let cases = [
            long.as_str(),
            "1st-gateway",
            "web.example.com",
            "0123",
            "web-",
        ];
        for gw in cases {
            let n = gateway_fleet_name(gw, "tenant-gateway");
            assert!(is_dns1035_label(&n), "{gw} -> {n}");
            assert!(n.len() <= 63, "{n}");
        }
        // Hashed names stay distinct, and stable.
        let a = gateway_fleet_name(&"a".repeat(60), "tenant-gateway");
        let b = gateway_fleet_name(&"a".repeat(61), "tenant-gateway");
        assert_ne!(a, b);
        assert_eq!(a, gateway_fleet_name(&"a".repeat(60), "tenant-gateway"));
        assert_eq!(
            gateway_fleet_name("web.example.com", "x"),
            gateway_fleet_name("web.example.com", "x")
        );
        assert_ne!(
            gateway_fleet_name("web.a", "x"),
            gateway_fleet_name("web-a", "x")
        );
        assert_eq!(
            gateway_reader_binding_name("web-tenant-gateway", "shop"),
            "web-tenant-gateway.shop"
        );
    }

    #[test]
    fn namespace_labels_json_is_deterministic_and_round_trips() {
        let mut labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        labels.insert(
            "zeta".into(),
            [("b".to_string(), "2".to_string()), ("a".into(), "1".into())].into(),
        );
        labels.insert("alpha".into(), BTreeMap::new());
        let data = namespace_labels_data(&labels);
        assert_eq!(data, r#"{"alpha":{},"zeta":{"a":"1","b":"2"}}"#);
        assert_eq!(parse_namespace_labels(&data), labels);
        assert_eq!(namespace_labels_data(&BTreeMap::new()), "{}");
        assert!(parse_namespace_labels("not json").is_empty());
        assert!(parse_namespace_labels("").is_empty());
    }
}
