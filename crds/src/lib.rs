//! `TenantGateway` (tenantgateway.io/v1alpha1): one per tenant, cluster-scoped.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod names;
pub mod selector;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const GROUP: &str = "tenantgateway.io";
pub const MANAGER: &str = "tenant-gateway";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_TENANT: &str = "tenantgateway.io/tenant";
/// The ingress class a tenant's gateway serves when the spec names none.
pub const DEFAULT_INGRESS_CLASS: &str = "tenant-gateway";
pub const CONTROLLER_NAME: &str = "tenantgateway.io/controller";

/// A tenant's dedicated Envoy ingress fleet and the namespaces it serves.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tenantgateway.io",
    version = "v1alpha1",
    kind = "TenantGateway",
    shortname = "tgw",
    status = "TenantGatewayStatus",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".status.claimedNamespaces","priority":1}"#,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".status.addresses[0].value"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantGatewaySpec {
    /// Which namespaces this tenant serves.
    #[serde(default)]
    pub namespaces: NamespaceSelection,
    /// Namespace for the gateway's Deployment, Service and ServiceAccount
    /// (default: the operator's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_namespace: Option<String>,
    /// Envoy replicas (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub envoy: EnvoySettings,
    #[serde(default)]
    pub listeners: ListenerSettings,
    #[serde(default)]
    pub service: ServiceSettings,
    #[serde(default)]
    pub ingress_class: IngressClassSettings,
    /// TCP proxy ports: each maps a listener port to a Service in a claimed namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_proxies: Vec<TcpProxy>,
    /// UDP proxy ports: each maps a listener port to a UDP port of a Service in a
    /// claimed namespace (a port number may be both a TCP and a UDP proxy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub udp_proxies: Vec<UdpProxy>,
    /// Generate a NetworkPolicy for the gateway pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySettings>,
    /// Envoy's access log, on every fleet of the tenant (default: one JSON
    /// object per request on Envoy's stdout, with the default fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogSettings>,
    /// Where the gateway pods run (every fleet of the tenant): node selector,
    /// tolerations, affinity, topology spread, priority class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementSettings>,
    /// Run Envoy in the node's network namespace: it listens on the node's
    /// addresses on the listener ports of the spec (`listeners`, TCP and UDP
    /// proxies), with `dnsPolicy: ClusterFirstWithHostNet`; at most one replica
    /// per node. The operator must be started with `--allow-host-network`
    /// and the gateway namespace must admit privileged pods (hostNetwork is
    /// outside the baseline and restricted Pod Security profiles).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// A HorizontalPodAutoscaler for every fleet of the tenant, scaling on
    /// CPU; `replicas` must then be unset (the autoscaler owns it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSettings>,
    /// The addresses (IPs or DNS names) to publish in the status of the
    /// tenant's Ingresses and of this TenantGateway instead of the computed
    /// ones (as ingress-nginx's `--publish-status-address`): e.g. the address
    /// of a load balancer the cluster does not manage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish_status_addresses: Vec<String>,
}

/// Scheduling of the gateway pods, as in a PodSpec.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSettings {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<k8s_openapi::api::core::v1::Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<k8s_openapi::api::core::v1::Affinity>,
    /// Replaces the default, which spreads a fleet's replicas across nodes
    /// (`kubernetes.io/hostname`, maxSkew 1, ScheduleAnyway); an empty list
    /// means no constraint. A constraint without a labelSelector gets the
    /// fleet's pod selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints:
        Option<Vec<k8s_openapi::api::core::v1::TopologySpreadConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// An `autoscaling/v2` HorizontalPodAutoscaler on the Envoy Deployment.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSettings {
    /// Lower bound (default 2); the PodDisruptionBudget exists when it is above 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: Option<i32>,
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU utilization of the pods' requests to aim for (default 80).
    /// Envoy gets a CPU request of 100m when `envoy.resources` sets none.
    // Spelled as in autoscaling/v1 (CPU, not Cpu).
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// How long the HorizontalPodAutoscaler waits, in seconds, before it
    /// scales down: it takes the highest replica count it wanted over this
    /// window (its `behavior.scaleDown.stabilizationWindowSeconds`; unset:
    /// the cluster's default, 300). Scaling up is never delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: Option<i32>,
}

impl AutoscalingSettings {
    pub const DEFAULT_MIN_REPLICAS: i32 = 2;
    pub const DEFAULT_TARGET_CPU: i32 = 80;

    pub fn min(&self) -> i32 {
        self.min_replicas.unwrap_or(Self::DEFAULT_MIN_REPLICAS)
    }
    pub fn target_cpu(&self) -> i32 {
        self.target_cpu_utilization_percentage
            .unwrap_or(Self::DEFAULT_TARGET_CPU)
    }
}

/// How every Envoy of the tenant logs requests (HTTP) and connections (TCP)
/// on its stdout; the sidecar's own log is its own container's.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSettings {
    /// `json` (default): one JSON object per line; `text`: the fields'
    /// values separated by spaces, in order; `off`: no access log.
    #[serde(default)]
    pub format: AccessLogFormat,
    /// The fields, in order (default: time, request_id, client, method,
    /// authority, path, protocol, status, response_flags, duration_ms,
    /// bytes_received, bytes_sent, upstream_host, route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<AccessLogField>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    #[default]
    Json,
    Text,
    Off,
}

impl AccessLogFormat {
    pub const ALL: [Self; 3] = [Self::Json, Self::Text, Self::Off];

    /// As the spec and the sidecar's `--access-log` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Off => "off",
        }
    }
}

impl std::str::FromStr for AccessLogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("{s:?} is not an access log format (json, text, off)"))
    }
}

/// One field of an access log entry (a fixed vocabulary: never a raw Envoy
/// format string).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogField {
    /// When the request started (RFC 3339, UTC).
    Time,
    /// `X-Request-ID` (Envoy makes one when the client sent none).
    RequestId,
    /// The client's address (the peer of the connection).
    Client,
    Method,
    /// The request's `Host`/`:authority`.
    Authority,
    /// The path as the client sent it (before any rewrite).
    Path,
    /// HTTP/1.1, HTTP/2, ...
    Protocol,
    /// The response status code.
    Status,
    /// Envoy's response flags (`NR` no route, `UF` upstream connect failure, ...).
    ResponseFlags,
    DurationMs,
    BytesReceived,
    BytesSent,
    /// The backend endpoint that answered (address:port).
    UpstreamHost,
    /// The backend cluster (`<namespace>/<service>/<port>`).
    UpstreamCluster,
    /// The route that served the request: `<namespace>/<name>|<host>|<path>`
    /// for an Ingress, `<Kind> <namespace>/<name>|<host>|<rule>` for a
    /// Gateway API route.
    Route,
    UserAgent,
    XForwardedFor,
    /// The TLS SNI name of the connection.
    Sni,
}

impl AccessLogField {
    pub const ALL: [Self; 18] = [
        Self::Time,
        Self::RequestId,
        Self::Client,
        Self::Method,
        Self::Authority,
        Self::Path,
        Self::Protocol,
        Self::Status,
        Self::ResponseFlags,
        Self::DurationMs,
        Self::BytesReceived,
        Self::BytesSent,
        Self::UpstreamHost,
        Self::UpstreamCluster,
        Self::Route,
        Self::UserAgent,
        Self::XForwardedFor,
        Self::Sni,
    ];

    /// The fields logged when the spec names none.
    pub const DEFAULT: [Self; 14] = [
        Self::Time,
        Self::RequestId,
        Self::Client,
        Self::Method,
        Self::Authority,
        Self::Path,
        Self::Protocol,
        Self::Status,
        Self::ResponseFlags,
        Self::DurationMs,
        Self::BytesReceived,
        Self::BytesSent,
        Self::UpstreamHost,
        Self::Route,
    ];

    /// As the spec, the sidecar's `--access-log-fields` and the JSON keys spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::RequestId => "request_id",
            Self::Client => "client",
            Self::Method => "method",
            Self::Authority => "authority",
            Self::Path => "path",
            Self::Protocol => "protocol",
            Self::Status => "status",
            Self::ResponseFlags => "response_flags",
            Self::DurationMs => "duration_ms",
            Self::BytesReceived => "bytes_received",
            Self::BytesSent => "bytes_sent",
            Self::UpstreamHost => "upstream_host",
            Self::UpstreamCluster => "upstream_cluster",
            Self::Route => "route",
            Self::UserAgent => "user_agent",
            Self::XForwardedFor => "x_forwarded_for",
            Self::Sni => "sni",
        }
    }
}

impl std::str::FromStr for AccessLogField {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("{s:?} is not an access log field"))
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Admit traffic to the gateway pods only on their listener, TCP/UDP-proxy,
    /// health and metrics ports (default false: no NetworkPolicy).
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelection {
    /// Namespaces named explicitly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces selected by label; combined with `names` (union).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvoySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// Envoy log level: trace, debug, info, warning, error, critical, off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<EnvoyLogLevel>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvoyLogLevel {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    Off,
}

impl EnvoyLogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
            Self::Off => "off",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSettings {
    /// Container port of the plain HTTP listener (default 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub http_port: Option<u16>,
    /// Container port of the TLS listener (default 8443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub https_port: Option<u16>,
    /// Expect a PROXY protocol header (v1 or v2) at the start of every TCP
    /// connection, as a load balancer configured for it sends: the address
    /// in the header is the client's (default: off; a connection without
    /// the header is then refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocolSettings>,
    /// Which X-Forwarded-For entries to believe (default: none, the client is
    /// the connection's peer, or the PROXY protocol's address).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "clientIPDetection"
    )]
    pub client_ip_detection: Option<ClientIpDetection>,
}

/// The PROXY protocol on the tenant's TCP listeners (HTTP, HTTPS, TCP
/// proxies and Gateway API listeners; not UDP).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocolSettings {
    #[serde(default)]
    pub enabled: bool,
}

/// How the client address of an HTTP request is found behind proxies that
/// append to X-Forwarded-For.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpDetection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_for: Option<XForwardedForSettings>,
}

/// One of `numTrustedHops` and `trustedCIDRs`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct XForwardedForSettings {
    /// The number of proxies in front of the gateway that each append their
    /// peer to X-Forwarded-For: the client is the entry that many places
    /// from the right (before the gateway appends its own peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub num_trusted_hops: Option<u32>,
    /// Peers (and X-Forwarded-For entries) in these ranges are trusted
    /// proxies: the client is the rightmost entry outside them, believed
    /// only when the connection's peer is in one of them.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "trustedCIDRs"
    )]
    pub trusted_cidrs: Vec<String>,
}

impl ListenerSettings {
    pub fn http(&self) -> u16 {
        self.http_port.unwrap_or(8080)
    }
    pub fn https(&self) -> u16 {
        self.https_port.unwrap_or(8443)
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSettings {
    /// Service type: LoadBalancer (default), NodePort or ClusterIP.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `Local`: the load balancer sends to the nodes that run a gateway pod
    /// only, and the pod sees the client's address (no SNAT); `Cluster`
    /// (Kubernetes' default) spreads over every node. LoadBalancer and
    /// NodePort Services only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<ExternalTrafficPolicy>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExternalTrafficPolicy {
    Cluster,
    Local,
}

impl ExternalTrafficPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "Cluster",
            Self::Local => "Local",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    LoadBalancer,
    NodePort,
    ClusterIP,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressClassSettings {
    /// The IngressClass name this gateway serves (default `tenant-gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Also serve Ingresses that name no class (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_unclassed: Option<bool>,
    /// Have the operator create a per-tenant IngressClass object (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
}

impl IngressClassSettings {
    pub fn class_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_INGRESS_CLASS)
    }
    pub fn serves_unclassed(&self) -> bool {
        self.serve_unclassed.unwrap_or(true)
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpProxy {
    /// Listener port on the gateway.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    pub service: TcpProxyBackend,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpProxyBackend {
    pub namespace: String,
    pub name: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

/// A UDP listener port on the gateway; datagrams go to a UDP port of a Service.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UdpProxy {
    /// Listener port on the gateway (UDP).
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// The Service and its port, which must have `protocol: UDP`.
    pub service: TcpProxyBackend,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantGatewayStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claimed_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<NamespaceConflict>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
}

/// A namespace this tenant asked for that another TenantGateway holds.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceConflict {
    pub namespace: String,
    pub holder: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAddress {
    /// `IPAddress` or `Hostname`.
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
    /// The ports to use at this address where they are not 80 and 443
    /// (NodePorts; a hostNetwork gateway's listener ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i32>,
}

/// The CRD manifest as YAML, exactly as checked in under `config/crd/`.
pub fn crd_yaml() -> String {
    let crd = TenantGateway::crd();
    // Serialising never fails on a CRD built from our own types.
    serde_saphyr::to_string(&crd).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_crd_matches_rust_types() {
        let checked_in = include_str!("../../config/crd/tenantgateways.yaml");
        assert_eq!(
            checked_in,
            crd_yaml(),
            "config/crd/tenantgateways.yaml drifted: run `cargo run -p tenant-gateway -- crds > config/crd/tenantgateways.yaml`"
        );
    }

    #[test]
    fn crd_is_cluster_scoped_with_short_name() {
        let crd = TenantGateway::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.short_names, Some(vec!["tgw".to_string()]));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        let cols: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(
            cols.contains(&"Ready") && cols.contains(&"Address"),
            "{cols:?}"
        );
    }

    #[test]
    fn access_log_names_are_the_serde_names_and_parse_back() {
        for f in AccessLogField::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
            assert_eq!(f.name().parse::<AccessLogField>(), Ok(f));
        }
        for f in AccessLogFormat::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
            assert_eq!(f.name().parse::<AccessLogFormat>(), Ok(f));
        }
        assert!("%REQ(:PATH)%".parse::<AccessLogField>().is_err());
        // The API server refuses what is not in the vocabulary.
        let schema = serde_json::to_value(TenantGateway::crd()).unwrap();
        let log = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["accessLog"]["properties"];
        assert_eq!(
            log["format"]["enum"],
            serde_json::json!(["json", "text", "off"])
        );
        assert_eq!(
            log["fields"]["items"]["enum"].as_array().map(Vec::len),
            Some(AccessLogField::ALL.len())
        );
        let spec: TenantGatewaySpec = serde_json::from_str(
            r#"{"accessLog": {"format": "text", "fields": ["status", "route"]}}"#,
        )
        .unwrap();
        assert_eq!(
            spec.access_log,
            Some(AccessLogSettings {
                format: AccessLogFormat::Text,
                fields: vec![AccessLogField::Status, AccessLogField::Route],
            })
        );
        assert!(serde_json::from_str::<TenantGatewaySpec>(
            r#"{"accessLog": {"fields": ["%REQ(:PATH)%"]}}"#
        )
        .is_err());
    }

    #[test]
    fn client_address_settings_parse_with_their_api_names() {
        let spec: TenantGatewaySpec = serde_json::from_str(
            r#"{"listeners": {"proxyProtocol": {"enabled": true},
                              "clientIPDetection": {"xForwardedFor": {"trustedCIDRs": ["10.0.0.0/8"]}}},
                "service": {"type": "NodePort", "externalTrafficPolicy": "Local"}}"#,
        )
        .unwrap();
        assert_eq!(
            spec.listeners.proxy_protocol,
            Some(ProxyProtocolSettings { enabled: true })
        );
        let xff = spec
            .listeners
            .client_ip_detection
            .as_ref()
            .and_then(|c| c.x_forwarded_for.as_ref())
            .unwrap();
        assert_eq!(xff.trusted_cidrs, ["10.0.0.0/8"]);
        assert_eq!(xff.num_trusted_hops, None);
        assert_eq!(
            spec.service.external_traffic_policy,
            Some(ExternalTrafficPolicy::Local)
        );
        // Serialised back with the same names.
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            back["listeners"]["clientIPDetection"]["xForwardedFor"]["trustedCIDRs"][0],
            "10.0.0.0/8"
        );
        assert!(serde_json::from_str::<TenantGatewaySpec>(
            r#"{"service": {"externalTrafficPolicy": "Nearest"}}"#
        )
        .is_err());
        // The API server refuses what the schema does not allow.
        let schema = serde_json::to_value(TenantGateway::crd()).unwrap();
        let spec = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["properties"];
        assert_eq!(
            spec["service"]["properties"]["externalTrafficPolicy"]["enum"],
            serde_json::json!(["Cluster", "Local", null])
        );
        let hops = &spec["listeners"]["properties"]["clientIPDetection"]["properties"]
            ["xForwardedFor"]["properties"]["numTrustedHops"];
        assert_eq!(hops["minimum"], 1.0);
        // Absent by default: nothing trusted, no PROXY protocol.
        let spec: TenantGatewaySpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.listeners.proxy_protocol, None);
        assert_eq!(spec.listeners.client_ip_detection, None);
        assert_eq!(spec.service.external_traffic_policy, None);
    }

    #[test]
    fn autoscaling_target_is_spelt_cpu_in_capitals_as_in_autoscaling_v1() {
        let spec: TenantGatewaySpec = serde_json::from_str(
            r#"{"autoscaling": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 20}}"#,
        )
        .unwrap();
        let a = spec.autoscaling.as_ref().unwrap();
        assert_eq!(a.target_cpu(), 20);
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["autoscaling"]["targetCPUUtilizationPercentage"],
            20
        );
        // The schema the API server prunes by carries the same name.
        let schema = serde_json::to_value(TenantGateway::crd()).unwrap();
        let props = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["properties"]["autoscaling"]["properties"];
        assert_eq!(props["targetCPUUtilizationPercentage"]["maximum"], 100.0);
        assert!(props.get("targetCpuUtilizationPercentage").is_none());
    }

    #[test]
    fn spec_defaults() {
        let spec: TenantGatewaySpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.listeners.http(), 8080);
        assert_eq!(spec.listeners.https(), 8443);
        assert_eq!(spec.ingress_class.class_name(), "tenant-gateway");
        assert!(spec.ingress_class.serves_unclassed());
        assert!(spec.udp_proxies.is_empty());
    }

    #[test]
    fn udp_proxies_parse_like_tcp_proxies() {
        let spec: TenantGatewaySpec = serde_json::from_str(
            r#"{"udpProxies": [{"port": 53, "service": {"namespace": "shop", "name": "dns", "port": 5353}}],
                "tcpProxies": [{"port": 53, "service": {"namespace": "shop", "name": "dns", "port": 5353}}]}"#,
        )
        .unwrap();
        assert_eq!(
            spec.udp_proxies,
            vec![UdpProxy {
                port: 53,
                service: TcpProxyBackend {
                    namespace: "shop".into(),
                    name: "dns".into(),
                    port: 5353
                }
            }]
        );
        assert_eq!(spec.tcp_proxies[0].port, 53);
        let schema = serde_json::to_value(TenantGateway::crd()).unwrap();
        let udp = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["udpProxies"]["items"];
        assert_eq!(udp["required"], serde_json::json!(["port", "service"]));
        assert_eq!(udp["properties"]["port"]["maximum"], 65535.0);
        // A port out of range or a missing Service is refused when parsing.
        assert!(serde_json::from_str::<TenantGatewaySpec>(
            r#"{"udpProxies": [{"port": 70000, "service": {"namespace": "a", "name": "b", "port": 1}}]}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<TenantGatewaySpec>(r#"{"udpProxies": [{"port": 53}]}"#).is_err()
        );
    }
}
