//! Reading the cluster: every object the findings need, and the
//! SubjectAccessReviews that confirm the RBAC model with the API server.

use super::findings::{AccessCheck, Snapshot, OPERATOR_DEPLOYMENT};
use super::rbac::RbacObjects;
use super::AuditError;
use crate::build::names;
use crds::TenantGateway;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::Debug;

/// SubjectAccessReviews in flight at once.
const CONCURRENT_REVIEWS: usize = 8;

async fn list_all<K>(client: &Client, what: &'static str) -> Result<Vec<K>, AuditError>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|source| AuditError::Read { what, source })
}

/// Lists everything the audit evaluates.
pub async fn snapshot(client: &Client, operator_namespace: &str) -> Result<Snapshot, AuditError> {
    let gateways: Vec<TenantGateway> = list_all(client, "TenantGateways").await?;
    let namespaces: Vec<Namespace> = list_all(client, "Namespaces").await?;
    let rbac = RbacObjects {
        roles: list_all::<Role>(client, "Roles").await?,
        role_bindings: list_all::<RoleBinding>(client, "RoleBindings").await?,
        cluster_roles: list_all::<ClusterRole>(client, "ClusterRoles").await?,
        cluster_role_bindings: list_all::<ClusterRoleBinding>(client, "ClusterRoleBindings")
            .await?,
    };
    // By name, not by label: a hand-edited Deployment may have lost its labels.
    let mut deployments = Vec::new();
    let wanted: BTreeSet<(String, String)> = gateways
        .iter()
        .filter_map(|gw| {
            let name = gw.metadata.name.as_deref()?;
            Some((
                names::gateway_namespace(gw, operator_namespace),
                names::deployment_name(name),
            ))
        })
        .collect();
    for (ns, name) in wanted {
        let got = Api::<Deployment>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(|source| AuditError::Read {
                what: "gateway Deployments",
                source,
            })?;
        deployments.extend(got);
    }
    let operator_deployment = Api::<Deployment>::namespaced(client.clone(), operator_namespace)
        .get_opt(OPERATOR_DEPLOYMENT)
        .await
        .map_err(|source| AuditError::Read {
            what: "the operator Deployment",
            source,
        })?;
    Ok(Snapshot {
        operator_namespace: operator_namespace.to_string(),
        gateways,
        namespaces,
        rbac,
        deployments,
        operator_deployment,
    })
}

fn review(check: &AccessCheck) -> SubjectAccessReview {
    let r = &check.request;
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(check.user.clone()),
            groups: Some(check.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(r.verb.clone()),
                group: Some(r.group.clone()),
                resource: Some(r.resource.clone()),
                subresource: r.subresource.clone(),
                name: r.name.clone(),
                namespace: r.namespace.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Asks the API server every planned question; fills `allowed` and `reason`.
pub async fn run_access_checks(
    client: &Client,
    checks: Vec<AccessCheck>,
) -> Result<Vec<AccessCheck>, AuditError> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    futures::stream::iter(checks)
        .map(|mut c| {
            let api = api.clone();
            async move {
                let answer = api
                    .create(&PostParams::default(), &review(&c))
                    .await
                    .map_err(|source| AuditError::AccessReview {
                        request: c.request.to_string(),
                        source,
                    })?;
                let status = answer.status.unwrap_or_default();
                c.allowed = Some(status.allowed && status.denied != Some(true));
                c.reason = status.reason.unwrap_or_default();
                Ok::<_, AuditError>(c)
            }
        })
        .buffered(CONCURRENT_REVIEWS)
        .try_collect()
        .await
}
