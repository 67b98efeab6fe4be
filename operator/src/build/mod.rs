//! The desired per-tenant objects: a pure function of a validated
//! TenantGateway, its claim decision and the operator's settings.
//!
//! [`build_all`] returns the objects in apply order: identity and RBAC first,
//! then the claimed-namespace RoleBindings, then the ConfigMaps (so the
//! sidecar never learns a namespace before it may read it), then Service, PDB,
//! Deployment and IngressClass.

mod config_maps;
mod meta;
pub mod names;
mod rbac;
mod service;
mod validate;
mod workload;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod install_manifests_tests;
#[cfg(test)]
mod pss;
#[cfg(test)]
mod tests;

pub use config_maps::{build_bootstrap_config_map, build_claims_config_map, envoy_bootstrap_yaml};
pub use meta::{common_labels, owner_reference, selector_labels, ResolvedTenant};
pub use rbac::{
    build_reader_role_bindings, build_self_role, build_self_role_binding, build_service_account,
};
pub use service::{build_ingress_class, build_network_policy, build_pdb, build_service};
pub use validate::{validate, validate_against_claims, SpecError};
pub use workload::{bootstrap_hash, build_envoy_deployment};

use crate::claims::ClaimDecision;
use crds::TenantGateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{IngressClass, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::Resource;

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
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid TenantGateway: {}", join(.0))]
    Invalid(Vec<SpecError>),
    #[error("TenantGateway has no metadata.name")]
    MissingName,
    #[error("TenantGateway {0} has no metadata.uid (it must come from the API server)")]
    MissingUid(String),
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
            Self::MissingName | Self::MissingUid(_) => "missing_metadata",
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

/// One object the operator wants to exist for a tenant.
// A handful per tenant: unboxed variants keep `Desired::Deployment(d)` plain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Desired {
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    IngressClass(IngressClass),
    NetworkPolicy(NetworkPolicy),
}

/// Runs `$body` with `$o` bound to the typed object inside any variant.
macro_rules! each_kind {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            Desired::ServiceAccount($o) => $body,
            Desired::Role($o) => $body,
            Desired::RoleBinding($o) => $body,
            Desired::ConfigMap($o) => $body,
            Desired::Deployment($o) => $body,
            Desired::Service($o) => $body,
            Desired::PodDisruptionBudget($o) => $body,
            Desired::IngressClass($o) => $body,
            Desired::NetworkPolicy($o) => $body,
        }
    };
}

fn kind_of<K: k8s_openapi::Resource>(_: &K) -> &'static str {
    K::KIND
}

fn api_resource_of<K: Resource<DynamicType = ()>>(_: &K) -> ApiResource {
    ApiResource::erase::<K>(&())
}

impl Desired {
    pub fn kind(&self) -> &'static str {
        each_kind!(self, o => kind_of(o))
    }

    pub fn metadata(&self) -> &ObjectMeta {
        each_kind!(self, o => &o.metadata)
    }

    /// Builders always set a name; empty only for a hand-made, nameless object.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `None` for cluster-scoped kinds (IngressClass).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// The API resource for `Api::<DynamicObject>::namespaced_with(.., &ar)`.
    pub fn api_resource(&self) -> ApiResource {
        each_kind!(self, o => api_resource_of(o))
    }

    /// The object as a DynamicObject (apiVersion and kind set), ready for
    /// server-side apply.
    pub fn to_dynamic(&self) -> Result<DynamicObject, BuildError> {
        let err = |source| BuildError::Dynamic {
            kind: self.kind(),
            name: self.name().to_string(),
            source,
        };
        let value = each_kind!(self, o => serde_json::to_value(o)).map_err(err)?;
        serde_json::from_value(value).map_err(err)
    }
}

/// Every object the tenant needs, in apply order. Validates `gw` first.
pub fn build_all(
    gw: &TenantGateway,
    claims: &ClaimDecision,
    ctx: &BuildContext,
) -> Result<Vec<Desired>, BuildError> {
    validate(gw).map_err(BuildError::Invalid)?;
    let t = ResolvedTenant::new(gw, ctx)?;
    let bootstrap = envoy_bootstrap_yaml(t.name())?;

    let mut out = vec![
        Desired::ServiceAccount(build_service_account(&t)),
        Desired::Role(build_self_role(&t)),
        Desired::RoleBinding(build_self_role_binding(&t)),
    ];
    out.extend(
        build_reader_role_bindings(&t, claims)
            .into_iter()
            .map(Desired::RoleBinding),
    );
    out.push(Desired::ConfigMap(build_bootstrap_config_map(
        &t, &bootstrap,
    )));
    out.push(Desired::ConfigMap(build_claims_config_map(&t, claims)));
    out.push(Desired::Service(build_service(&t)));
    out.extend(build_pdb(&t).map(Desired::PodDisruptionBudget));
    out.push(Desired::Deployment(build_envoy_deployment(&t, &bootstrap)));
    out.extend(build_ingress_class(&t).map(Desired::IngressClass));
    out.extend(build_network_policy(&t).map(Desired::NetworkPolicy));
    Ok(out)
}
