//! Labels, owner reference and metadata shared by every built object.

use super::names::{self, COMPONENT_ENVOY, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_NAME};
use super::{BuildContext, BuildError};
use crds::{TenantGateway, LABEL_MANAGED_BY, LABEL_TENANT, MANAGER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use std::collections::BTreeMap;

/// A TenantGateway with everything the builders derive from it once: its
/// name, gateway namespace and owner reference.
#[derive(Clone, Debug)]
pub struct ResolvedTenant<'a> {
    pub gw: &'a TenantGateway,
    pub ctx: &'a BuildContext,
    name: String,
    namespace: String,
    owner: OwnerReference,
}

impl<'a> ResolvedTenant<'a> {
    pub fn new(gw: &'a TenantGateway, ctx: &'a BuildContext) -> Result<Self, BuildError> {
        let owner = owner_reference(gw)?;
        Ok(Self {
            gw,
            ctx,
            name: owner.name.clone(),
            namespace: names::gateway_namespace(gw, &ctx.operator_namespace),
            owner,
        })
    }

    /// The tenant (TenantGateway) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The gateway namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Metadata with the common labels and the owner reference.
    pub fn meta(&self, name: String, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: namespace.map(str::to_string),
            labels: Some(common_labels(&self.name)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    /// Metadata for an object in the gateway namespace.
    pub fn meta_in_gateway_ns(&self, name: String) -> ObjectMeta {
        self.meta(name, Some(&self.namespace))
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

/// Controller owner reference to the TenantGateway, so deleting it collects
/// everything and the reconciler is woken by changes to owned objects.
pub fn owner_reference(gw: &TenantGateway) -> Result<OwnerReference, BuildError> {
    let name = gw.metadata.name.clone().ok_or(BuildError::MissingName)?;
    let uid = gw
        .metadata
        .uid
        .clone()
        .ok_or_else(|| BuildError::MissingUid(name.clone()))?;
    Ok(OwnerReference {
        api_version: TenantGateway::api_version(&()).into_owned(),
        kind: TenantGateway::kind(&()).into_owned(),
        name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}
