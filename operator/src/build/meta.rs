//! Labels, owner reference and metadata shared by every built object, for
//! either kind of fleet: a tenant's Ingress fleet or one of its Gateway fleets.

use super::names::{
    self, COMPONENT_ENVOY, COMPONENT_GATEWAY, GATEWAY_READER_CLUSTER_ROLE, LABEL_COMPONENT,
    LABEL_GATEWAY_NAME, LABEL_GATEWAY_NAMESPACE, LABEL_INSTANCE, LABEL_NAME, READER_CLUSTER_ROLE,
};
use super::{BuildContext, BuildError};
use crds::{TenantGateway, LABEL_MANAGED_BY, LABEL_TENANT, MANAGER};
use gwapi::gateways::Gateway;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use std::collections::BTreeMap;

/// Names of one fleet's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetNames {
    /// Deployment, Service, PDB, ServiceAccount (and NetworkPolicy).
    pub workload: String,
    pub bootstrap_config_map: String,
    pub claims_config_map: String,
    /// The Role and RoleBinding in the fleet's namespace.
    pub self_role: String,
    /// The RoleBinding in each claimed namespace.
    pub reader_binding: String,
}

impl FleetNames {
    /// The `tgw-<tenant>` names of a tenant's Ingress fleet.
    pub fn tenant(tenant: &str) -> Self {
        Self {
            workload: names::workload_name(tenant),
            bootstrap_config_map: names::bootstrap_config_map_name(tenant),
            claims_config_map: names::claims_config_map_name(tenant),
            self_role: names::self_role_name(tenant),
            reader_binding: names::reader_role_binding_name(tenant),
        }
    }

    /// The names of the fleet of Gateway `gateway` (class `class`) in `namespace`.
    pub fn gateway(gateway: &str, class: &str, namespace: &str) -> Self {
        let workload = names::gateway_fleet_name(gateway, class);
        Self {
            bootstrap_config_map: format!("{workload}-envoy"),
            claims_config_map: format!("{workload}-claims"),
            self_role: format!("{workload}-self"),
            reader_binding: names::gateway_reader_binding_name(&workload, namespace),
            workload,
        }
    }
}

/// One port Envoy listens on and the Service exposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetPort {
    /// The container port's and the Service port's name.
    pub name: String,
    pub service_port: i32,
    pub container_port: i32,
    /// The Service port's targetPort.
    pub target: IntOrString,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
}

/// What makes a fleet a Gateway's: the Gateway it serves and what the
/// operator hands its sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayFleet {
    pub name: String,
    pub namespace: String,
    /// The listener ports, sorted and deduplicated, with their protocol
    /// (`TCP` or `UDP`).
    pub ports: Vec<(i32, &'static str)>,
    /// Labels of the tenant's claimed namespaces (the claims ConfigMap's
    /// `namespace-labels`).
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// One Envoy fleet of a validated TenantGateway, with everything the
/// builders derive once: names, namespace, owner, labels and selector.
/// [`Fleet::tenant`] is the tenant's Ingress fleet (owned by the
/// TenantGateway); [`Fleet::gateway`] a Gateway's (owned by the Gateway, in
/// its namespace), with the tenant's spec settings.
#[derive(Clone, Debug)]
pub struct Fleet<'a> {
    pub gw: &'a TenantGateway,
    pub ctx: &'a BuildContext,
    name: String,
    namespace: String,
    owner: OwnerReference,
    /// The TenantGateway: owner of what a fleet puts outside its own
    /// namespace (an owner in another namespace is invalid, and the garbage
    /// collector deletes such dependents at once).
    tenant_owner: OwnerReference,
    names: FleetNames,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    gateway: Option<GatewayFleet>,
}

impl<'a> Fleet<'a> {
    /// The tenant's own (Ingress) fleet.
    pub fn tenant(gw: &'a TenantGateway, ctx: &'a BuildContext) -> Result<Self, BuildError> {
        let owner = owner_reference(gw)?;
        let name = owner.name.clone();
        Ok(Self {
            gw,
            ctx,
            namespace: names::gateway_namespace(gw, &ctx.operator_namespace),
            tenant_owner: owner.clone(),
            owner,
            names: FleetNames::tenant(&name),
            labels: common_labels(&name),
            annotations: BTreeMap::new(),
            selector: selector_labels(&name),
            gateway: None,
            name,
        })
    }

    /// The fleet of `gateway`, which must be in a namespace `gw` holds.
    /// `spec.infrastructure` labels and annotations are added where they do
    /// not override the operator's.
    pub fn gateway(
        gw: &'a TenantGateway,
        ctx: &'a BuildContext,
        gateway: &Gateway,
        namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Self, BuildError> {
        let tenant_owner = owner_reference(gw)?;
        let tenant = tenant_owner.name.clone();
        let owner = gateway_owner_reference(gateway)?;
        let gw_name = owner.name.clone();
        let namespace = gateway
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| BuildError::MissingNamespace(gw_name.clone()))?;
        let class = &gateway.spec.gateway_class_name;
        let mut labels = common_labels(&tenant);
        labels.insert(LABEL_GATEWAY_NAME.into(), gw_name.clone());
        labels.insert(LABEL_GATEWAY_NAMESPACE.into(), namespace.clone());
        let selector = gateway_selector_labels(&tenant, &gw_name);
        labels.extend(selector.clone());
        let infra = gateway.spec.infrastructure.as_ref();
        add_missing(&mut labels, infra.and_then(|i| i.labels.as_ref()));
        let mut annotations = BTreeMap::new();
        add_missing(&mut annotations, infra.and_then(|i| i.annotations.as_ref()));
        let mut ports: Vec<(i32, &'static str)> = gateway
            .spec
            .listeners
            .iter()
            .map(|l| (l.port, listener_transport(&l.protocol)))
            .collect();
        ports.sort_unstable();
        // Port p < 1024 and port p + 10000 share a container port: the lower
        // keeps it (the listener conflict is the translation's to report), so
        // the pod and Service stay valid.
        let mut taken = std::collections::BTreeSet::new();
        ports.retain(|&(p, proto)| taken.insert((names::container_port(p), proto)));
        Ok(Self {
            gw,
            ctx,
            names: FleetNames::gateway(&gw_name, class, &namespace),
            name: tenant,
            namespace: namespace.clone(),
            owner,
            tenant_owner,
            labels,
            annotations,
            selector,
            gateway: Some(GatewayFleet {
                name: gw_name,
                namespace,
                ports,
                namespace_labels,
            }),
        })
    }

    /// The tenant (TenantGateway) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fleet's namespace: the tenant's gateway namespace, or the Gateway's.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn names(&self) -> &FleetNames {
        &self.names
    }

    /// `Some` for a Gateway's fleet.
    pub fn gateway_fleet(&self) -> Option<&GatewayFleet> {
        self.gateway.as_ref()
    }

    /// The ClusterRole bound in each claimed namespace.
    pub fn reader_cluster_role(&self) -> &'static str {
        match self.gateway {
            None => READER_CLUSTER_ROLE,
            Some(_) => GATEWAY_READER_CLUSTER_ROLE,
        }
    }

    /// The ports Envoy listens on, with the Service port each is exposed as:
    /// the tenant's HTTP and HTTPS listeners, TCP and UDP proxies, or a Gateway's
    /// listener ports (port p on container port [`names::container_port`]).
    pub fn ports(&self) -> Vec<FleetPort> {
        let Some(g) = &self.gateway else {
            let spec = &self.gw.spec;
            let named_as = |name: &str, service: i32, container: u16, protocol| FleetPort {
                name: name.to_string(),
                service_port: service,
                container_port: i32::from(container),
                target: IntOrString::String(name.to_string()),
                protocol,
            };
            let named = |name: &str, service, container| named_as(name, service, container, "TCP");
            let mut out = vec![
                named("http", names::SERVICE_HTTP_PORT, spec.listeners.http()),
                named("https", names::SERVICE_HTTPS_PORT, spec.listeners.https()),
            ];
            out.extend(spec.tcp_proxies.iter().map(|p| {
                let name = names::tcp_proxy_port_name(p.port);
                named(&name, i32::from(p.port), p.port)
            }));
            out.extend(spec.udp_proxies.iter().map(|p| {
                let name = names::udp_proxy_port_name(p.port);
                named_as(&name, i32::from(p.port), p.port, "UDP")
            }));
            return out;
        };
        g.ports
            .iter()
            .map(|&(port, protocol)| {
                let container = names::container_port(port);
                FleetPort {
                    name: format!("{}-{container}", protocol.to_ascii_lowercase()),
                    service_port: port,
                    container_port: container,
                    target: IntOrString::Int(container),
                    protocol,
                }
            })
            .collect()
    }

    /// The Deployment/Service/PDB selector.
    pub fn selector(&self) -> &BTreeMap<String, String> {
        &self.selector
    }

    /// Labels of every object of the fleet (a Gateway fleet's pods too).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// `annotations`, then the Gateway's infrastructure annotations where
    /// they name a key `annotations` does not; `None` when empty.
    pub fn annotations_with(
        &self,
        annotations: &BTreeMap<String, String>,
    ) -> Option<BTreeMap<String, String>> {
        let mut out = annotations.clone();
        add_missing(&mut out, Some(&self.annotations));
        (!out.is_empty()).then_some(out)
    }

    /// Metadata with the fleet's labels and owner reference.
    /// An object in another namespace than a Gateway fleet's is owned by the
    /// TenantGateway (cluster-scoped) instead of the Gateway; the operator
    /// deletes it with the Gateway's fleet.
    pub fn meta(&self, name: String, namespace: Option<&str>) -> ObjectMeta {
        let owner = match namespace {
            Some(ns) if ns != self.namespace => &self.tenant_owner,
            _ => &self.owner,
        };
        ObjectMeta {
            name: Some(name),
            namespace: namespace.map(str::to_string),
            labels: Some(self.labels.clone()),
            annotations: self.annotations_with(&BTreeMap::new()),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        }
    }

    /// Metadata for an object in the fleet's namespace.
    pub fn meta_in_gateway_ns(&self, name: String) -> ObjectMeta {
        self.meta(name, Some(&self.namespace))
    }
}

fn add_missing(into: &mut BTreeMap<String, String>, from: Option<&BTreeMap<String, String>>) {
    for (k, v) in from.into_iter().flatten() {
        into.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// The Service/container port protocol of a listener protocol: `UDP` for
/// UDP listeners, `TCP` for every other (HTTP, HTTPS, TLS, TCP, extensions).
pub fn listener_transport(protocol: &str) -> &'static str {
    if protocol == "UDP" {
        "UDP"
    } else {
        "TCP"
    }
}

/// Labels on every object the operator creates for `tenant`.
pub fn common_labels(tenant: &str) -> BTreeMap<String, String> {
    [
        (LABEL_MANAGED_BY, MANAGER),
        (LABEL_TENANT, tenant),
        (LABEL_NAME, MANAGER),
        (LABEL_INSTANCE, tenant),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The Deployment/Service/PDB selector: the tenant's Envoy pods.
pub fn selector_labels(tenant: &str) -> BTreeMap<String, String> {
    [(LABEL_TENANT, tenant), (LABEL_COMPONENT, COMPONENT_ENVOY)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Gateway fleet's selector. Its component differs from the Ingress
/// fleet's, so neither fleet's Service ever selects the other's pods.
pub fn gateway_selector_labels(tenant: &str, gateway: &str) -> BTreeMap<String, String> {
    [
        (LABEL_TENANT, tenant),
        (LABEL_COMPONENT, COMPONENT_GATEWAY),
        (LABEL_GATEWAY_NAME, gateway),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Controller owner reference to the TenantGateway, so deleting it collects
/// everything and the reconciler is woken by changes to owned objects.
pub fn owner_reference(gw: &TenantGateway) -> Result<OwnerReference, BuildError> {
    controller_reference(gw)
}

/// Controller owner reference to the Gateway (GEP-1762): deleting the
/// Gateway collects its fleet.
pub fn gateway_owner_reference(gateway: &Gateway) -> Result<OwnerReference, BuildError> {
    controller_reference(gateway)
}

fn controller_reference<K: Resource<DynamicType = ()>>(
    o: &K,
) -> Result<OwnerReference, BuildError> {
    let meta = o.meta();
    let kind = || K::kind(&()).into_owned();
    let name = meta
        .name
        .clone()
        .ok_or_else(|| BuildError::MissingName { kind: kind() })?;
    let uid = meta.uid.clone().ok_or_else(|| BuildError::MissingUid {
        kind: kind(),
        name: name.clone(),
    })?;
    Ok(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}
