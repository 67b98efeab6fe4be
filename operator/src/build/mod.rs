//! The desired per-tenant objects: a pure function of a validated
//! TenantGateway, its claim decision and the operator's settings.
//!
//! [`build_all`] returns the objects in apply order: identity and RBAC first,
//! then the claimed-namespace RoleBindings, then the ConfigMaps (so the
//! sidecar never learns a namespace before it may read it), then Service, PDB,
//! Deployment and IngressClass.

mod addresses;
mod config_maps;
mod meta;
pub mod names;
mod placement;
mod rbac;
mod service;
mod validate;
mod workload;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod gateway_fleet_tests;
#[cfg(test)]
mod install_manifests_tests;
#[cfg(test)]
mod placement_tests;
#[cfg(test)]
mod pss;
#[cfg(test)]
mod tests;

pub use addresses::{
    annotation_value, gateway_addresses, node_inputs, published_addresses, published_on,
    service_addresses, NodeInput, PUBLISHED_ADDRESSES_ANNOTATION,
};
pub use config_maps::{build_bootstrap_config_map, build_claims_config_map, envoy_bootstrap_yaml};
pub use meta::{
    common_labels, gateway_owner_reference, gateway_selector_labels, owner_reference,
    selector_labels, Fleet, FleetNames, FleetPort, GatewayFleet,
};
pub use placement::{
    build_hpa, deployment_replicas, host_network_conflicts, host_ports, min_replicas,
    uses_host_network,
};
pub use rbac::{
    build_reader_role_bindings, build_self_role, build_self_role_binding, build_service_account,
};
pub use service::{build_ingress_class, build_network_policy, build_pdb, build_service};
pub use validate::{validate, validate_against_claims, SpecError};
pub use workload::{bootstrap_hash, build_envoy_deployment};

use crate::claims::ClaimDecision;
use crds::TenantGateway;
use gwapi::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{IngressClass, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::Resource;
use std::collections::BTreeMap;

/// Operator-wide settings the builders need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildContext {
    /// Where gateways live when the spec names no `gatewayNamespace`.
    pub operator_namespace: String,
    /// The tenant-gateway image; the xDS sidecar runs it.
    pub image: String,
    /// Envoy image when `spec.envoy.image` is unset.
    pub envoy_image: String,
    pub image_pull_policy: Option<String>,
    /// `--allow-host-network`: TenantGateways may set `spec.hostNetwork`.
    pub allow_host_network: bool,
}

impl BuildContext {
    /// The settings of an operator given no image flags or env vars.
    pub fn with_defaults(operator_namespace: &str) -> Self {
        Self {
            operator_namespace: operator_namespace.to_string(),
            image: names::SIDECAR_IMAGE.into(),
            envoy_image: names::ENVOY_IMAGE.into(),
            image_pull_policy: None,
            allow_host_network: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid TenantGateway: {}", join(.0))]
    Invalid(Vec<SpecError>),
    #[error("{kind} has no metadata.name")]
    MissingName { kind: String },
    #[error("{kind} {name} has no metadata.uid (it must come from the API server)")]
    MissingUid { kind: String, name: String },
    #[error("Gateway {0} has no metadata.namespace")]
    MissingNamespace(String),
    #[error("building the Envoy bootstrap: {0}")]
    Bootstrap(#[source] xds::bootstrap::BootstrapError),
    #[error("converting {kind} {name} to a dynamic object: {source}")]
    Dynamic {
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl BuildError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_spec",
            Self::MissingName { .. } | Self::MissingUid { .. } | Self::MissingNamespace(_) => {
                "missing_metadata"
            }
            Self::Bootstrap(_) => "bootstrap",
            Self::Dynamic { .. } => "dynamic_object",
        }
    }
}

fn join(errs: &[SpecError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One kind the operator creates for a tenant.
#[derive(Clone, Copy, Debug)]
pub struct ManagedKind {
    pub kind: &'static str,
    resource: fn() -> ApiResource,
    /// Watched by the controller: a change to one re-reconciles its owner.
    pub watched: bool,
}

impl ManagedKind {
    pub fn api_resource(&self) -> ApiResource {
        (self.resource)()
    }
}

fn erase<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The one table of managed kinds: it defines [`Desired`] (one variant per
/// kind) and [`MANAGED_KINDS`] (stale deletion, in this order, and the
/// controller's watches), so neither can miss a kind the other has.
macro_rules! managed_kinds {
    ($($kind:ident watched: $watched:expr,)*) => {
        /// One object the operator wants to exist for a tenant.
        // A handful per tenant: unboxed variants keep `Desired::Deployment(d)` plain.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq)]
        pub enum Desired {
            $($kind($kind),)*
        }

        pub const MANAGED_KINDS: &[ManagedKind] = &[
            $(ManagedKind {
                kind: <$kind as k8s_openapi::Resource>::KIND,
                resource: erase::<$kind>,
                watched: $watched,
            },)*
        ];

        impl Desired {
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Desired::$kind(_) => <$kind as k8s_openapi::Resource>::KIND,)*
                }
            }

            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Desired::$kind(o) => &o.metadata,)*
                }
            }

            /// The API resource for `Api::<DynamicObject>::namespaced_with(.., &ar)`.
            pub fn api_resource(&self) -> ApiResource {
                match self {
                    $(Desired::$kind(_) => erase::<$kind>(),)*
                }
            }

            fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $(Desired::$kind(o) => serde_json::to_value(o),)*
                }
            }
        }
    };
}

managed_kinds! {
    ServiceAccount watched: true,
    Role watched: false,
    RoleBinding watched: true,
    ConfigMap watched: true,
    Service watched: true,
    PodDisruptionBudget watched: false,
    Deployment watched: true,
    HorizontalPodAutoscaler watched: false,
    IngressClass watched: false,
    NetworkPolicy watched: false,
}

impl Desired {
    /// Builders always set a name; empty only for a hand-made, nameless object.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `None` for cluster-scoped kinds (IngressClass).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// The object as a DynamicObject (apiVersion and kind set), ready for
    /// server-side apply.
    pub fn to_dynamic(&self) -> Result<DynamicObject, BuildError> {
        let err = |source| BuildError::Dynamic {
            kind: self.kind(),
            name: self.name().to_string(),
            source,
        };
        let value = self.to_json().map_err(err)?;
        serde_json::from_value(value).map_err(err)
    }
}

/// Every object the tenant needs, in apply order. Validates `gw` first.
pub fn build_all(
    gw: &TenantGateway,
    claims: &ClaimDecision,
    ctx: &BuildContext,
) -> Result<Vec<Desired>, BuildError> {
    validate_with(gw, ctx).map_err(BuildError::Invalid)?;
    let t = Fleet::tenant(gw, ctx)?;
    let mut out = build_fleet(&t, claims)?;
    out.extend(build_ingress_class(&t).map(Desired::IngressClass));
    out.extend(build_network_policy(&t).map(Desired::NetworkPolicy));
    Ok(out)
}

/// Every object of the fleet of `gateway` (GEP-1762), a Gateway of our class
/// in a namespace `gw` holds, in apply order as [`build_all`]: in the
/// Gateway's namespace, owned by it, with `gw`'s spec settings; RoleBindings
/// to the gateway reader ClusterRole in each of `gw`'s claimed namespaces.
/// `namespaces`: the cluster's Namespaces (for the claimed ones' labels).
pub fn build_gateway_fleet(
    gw: &TenantGateway,
    claims: &ClaimDecision,
    ctx: &BuildContext,
    gateway: &Gateway,
    namespaces: &[Namespace],
) -> Result<Vec<Desired>, BuildError> {
    validate_with(gw, ctx).map_err(BuildError::Invalid)?;
    let labels = claimed_namespace_labels(claims, namespaces);
    let f = Fleet::gateway(gw, ctx, gateway, labels)?;
    let mut out = build_fleet(&f, claims)?;
    out.extend(build_network_policy(&f).map(Desired::NetworkPolicy));
    Ok(out)
}

/// Puts the published addresses (see [`published_addresses`]) on the fleet's
/// Service in `desired`, for the sidecar and the status.
pub fn set_published_addresses(
    desired: &mut [Desired],
    addresses: &[k8s_openapi::api::networking::v1::IngressLoadBalancerIngress],
) {
    for d in desired {
        if let Desired::Service(s) = d {
            s.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(
                    PUBLISHED_ADDRESSES_ANNOTATION.to_string(),
                    annotation_value(addresses),
                );
        }
    }
}

/// [`validate`], and what the operator's settings allow: `spec.hostNetwork`
/// only with `--allow-host-network`.
pub fn validate_with(gw: &TenantGateway, ctx: &BuildContext) -> Result<(), Vec<SpecError>> {
    let mut errs = validate(gw).err().unwrap_or_default();
    if gw.spec.host_network && !ctx.allow_host_network {
        errs.push(SpecError::new(
            "spec.hostNetwork",
            "this operator does not allow hostNetwork gateways (an admin starts it with \
             --allow-host-network, and the gateway namespace must admit privileged pods)",
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// The labels of each claimed namespace (none for one not in `namespaces`).
pub fn claimed_namespace_labels(
    claims: &ClaimDecision,
    namespaces: &[Namespace],
) -> BTreeMap<String, BTreeMap<String, String>> {
    claims
        .claimed
        .iter()
        .map(|name| {
            let labels = namespaces
                .iter()
                .find(|n| n.metadata.name.as_ref() == Some(name))
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default();
            (name.clone(), labels)
        })
        .collect()
}

/// What every fleet has: identity and RBAC, the ConfigMaps, Service, PDB and
/// Deployment.
fn build_fleet(f: &Fleet<'_>, claims: &ClaimDecision) -> Result<Vec<Desired>, BuildError> {
    let bootstrap = envoy_bootstrap_yaml(f.name())?;
    let mut out = vec![Desired::ServiceAccount(build_service_account(f))];
    out.extend(build_rbac(f, claims));
    out.push(Desired::ConfigMap(build_bootstrap_config_map(
        f, &bootstrap,
    )));
    out.push(Desired::ConfigMap(build_claims_config_map(f, claims)));
    out.push(Desired::Service(build_service(f)));
    out.extend(build_pdb(f).map(Desired::PodDisruptionBudget));
    out.push(Desired::Deployment(build_envoy_deployment(f, &bootstrap)));
    out.extend(build_hpa(f).map(Desired::HorizontalPodAutoscaler));
    Ok(out)
}

/// The tenant's Role and RoleBindings: the `-self` pair in the gateway
/// namespace, then one reader binding per claimed namespace.
pub fn build_rbac(t: &Fleet<'_>, claims: &ClaimDecision) -> Vec<Desired> {
    let mut out = vec![
        Desired::Role(build_self_role(t)),
        Desired::RoleBinding(build_self_role_binding(t)),
    ];
    out.extend(
        build_reader_role_bindings(t, claims)
            .into_iter()
            .map(Desired::RoleBinding),
    );
    out
}
