//! Routes that name a Gateway of another tenant: never served (no fleet of
//! the Gateway's tenant can read the route's namespace), and reported by the
//! operator, the one identity that reads routes cluster-wide.
//!
//! For each parentRef of a route naming one of our Gateways in a namespace
//! held by tenant T, where T does not hold the route's namespace, the
//! operator writes the route's `status.parents` entry: `Accepted=False`,
//! `NotAllowedByListeners`. Every other entry is left as found: other
//! controllers', and ours for Gateways of the route's own tenant (that
//! tenant's fleet writes those). The operator's entries are told from a
//! fleet's by their message; one that no longer applies (the route stopped
//! naming the Gateway, the two namespaces are now in one tenant, the Gateway
//! is gone or no longer ours) is removed, and a fleet that now sees the route
//! writes its own.

use super::controller::{error_policy, on_any_claim_change, GatewayContext, REPLAN, STORE_LAG};
use crate::build::names::GATEWAY_CONTROLLER_NAME;
use crate::claims::{holders, resolve_all_claims};
use crate::conditions::ACCEPTED;
use crate::reconcile::{
    log_controller_error, namespaces_of, now, within, ReconcileError, Stage, RECONCILE_TIMEOUT,
};
use crate::sidecar::gateway_status::{
    names_gateway, route_parents, same_status, WantedCondition, WantedParent,
};
use crate::sidecar::replace_route_parents;
use futures::StreamExt;
use gwapi::gateways::Gateway;
use gwapi::grpcroutes::GrpcRoute;
use gwapi::httproutes::HttpRoute;
use gwapi::tcproutes::TcpRoute;
use gwapi::tlsroutes::TlsRoute;
use gwapi::udproutes::UdpRoute;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, OnceLock};

/// The spec's reason for a route a Gateway's listeners do not let attach.
pub const REASON_NOT_ALLOWED: &str = "NotAllowedByListeners";
/// The operator's message is `namespace <ns> is not in the tenant that holds
/// Gateway <ns>/<name>`: how it recognises its own entries. It names no
/// tenant: a route's status must not tell one tenant another's name.
const MESSAGE_PREFIX: &str = "namespace ";
const MESSAGE_TENANT: &str = " is not in the tenant";
const MESSAGE_GATEWAY: &str = " that holds Gateway ";

/// What the operator reads of a route: its namespace and generation, its
/// `spec.parentRefs` and `status.parents` as JSON.
#[derive(Clone, Copy, Debug)]
pub struct RouteParents<'a> {
    pub namespace: &'a str,
    pub generation: Option<i64>,
    pub parent_refs: &'a [Value],
    pub parents: &'a [Value],
}

impl<'a> RouteParents<'a> {
    /// Of a route (HTTPRoute or GRPCRoute) as JSON.
    pub fn of(route: &'a Value) -> Self {
        let list = |pointer: &str| {
            route
                .pointer(pointer)
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
        };
        RouteParents {
            namespace: route
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            generation: route
                .pointer("/metadata/generation")
                .and_then(Value::as_i64),
            parent_refs: list("/spec/parentRefs"),
            parents: list("/status/parents"),
        }
    }
}

/// The Gateway (namespace, name) a parentRef names, if it names a Gateway.
pub fn gateway_of(parent_ref: &Value, route_namespace: &str) -> Option<(String, String)> {
    let name = parent_ref.get("name").and_then(Value::as_str)?;
    let namespace = parent_ref
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(route_namespace);
    names_gateway(parent_ref, route_namespace, namespace, name)
        .then(|| (namespace.to_string(), name.to_string()))
}

fn message(route_namespace: &str, gateway: &(String, String)) -> String {
    format!(
        "{MESSAGE_PREFIX}{route_namespace}{MESSAGE_TENANT}{MESSAGE_GATEWAY}{}/{}",
        gateway.0, gateway.1
    )
}

/// Whether a `status.parents` entry is one the operator wrote.
fn is_operators(entry: &Value) -> bool {
    entry.get("controllerName").and_then(Value::as_str) == Some(GATEWAY_CONTROLLER_NAME)
        && entry
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
                let m = s("message");
                s("type") == ACCEPTED
                    && s("status") == "False"
                    && s("reason") == REASON_NOT_ALLOWED
                    && m.starts_with(MESSAGE_PREFIX)
                    && m.contains(MESSAGE_TENANT)
                    && m.contains(MESSAGE_GATEWAY)
            })
}

/// Whether [`cross_tenant_parents`] could change anything, whoever holds
/// what: the route names one of our Gateways, or carries an entry of the
/// operator's. (Most routes do neither; the claims are resolved only for
/// those that do.)
pub fn may_concern(route: &RouteParents<'_>, ours: impl Fn(&str, &str) -> bool) -> bool {
    route
        .parent_refs
        .iter()
        .filter_map(|p| gateway_of(p, route.namespace))
        .any(|(ns, name)| ours(&ns, &name))
        || route.parents.iter().any(is_operators)
}

/// The route's new `status.parents`, or `None` when unchanged.
///
/// `ours(namespace, name)`: whether that Gateway exists and is of a class we
/// serve. `holders`: namespace → the tenant holding it. An entry
/// `Accepted=False`, `NotAllowedByListeners` is written for each parentRef
/// (as written) naming one of our Gateways in a namespace held by a tenant
/// that does not hold the route's namespace (held by another tenant or by
/// none); the operator's entries that no longer apply are removed; every
/// other entry is kept as found. `lastTransitionTime` stays while a
/// condition's status does.
pub fn cross_tenant_parents(
    route: &RouteParents<'_>,
    ours: impl Fn(&str, &str) -> bool,
    holders: &BTreeMap<String, String>,
    now: &Time,
) -> Option<Vec<Value>> {
    let route_holder = holders.get(route.namespace);
    let mut cross: BTreeMap<(String, String), Vec<WantedParent>> = BTreeMap::new();
    for parent_ref in route.parent_refs {
        let Some(gateway) = gateway_of(parent_ref, route.namespace) else {
            continue;
        };
        if !ours(&gateway.0, &gateway.1) {
            continue;
        }
        // A Gateway in a namespace nobody holds is not served at all (its own
        // status says so); one in the route's own tenant is its fleet's.
        let Some(tenant) = holders.get(&gateway.0) else {
            continue;
        };
        if route_holder == Some(tenant) {
            continue;
        }
        let condition = WantedCondition {
            type_: ACCEPTED.into(),
            status: "False".into(),
            reason: REASON_NOT_ALLOWED.into(),
            message: message(route.namespace, &gateway),
            observed_generation: route.generation,
        };
        cross.entry(gateway).or_default().push(WantedParent {
            parent_ref: parent_ref.clone(),
            conditions: vec![condition],
        });
    }
    let mut parents = route.parents.to_vec();
    for ((ns, name), wanted) in &cross {
        parents = route_parents(
            &parents,
            GATEWAY_CONTROLLER_NAME,
            route.namespace,
            (ns, name),
            wanted,
            now,
        );
    }
    // What is left of the operator's names no Gateway it reports for now.
    parents.retain(|e| {
        !is_operators(e)
            || e.get("parentRef").is_some_and(|p| {
                cross
                    .keys()
                    .any(|(ns, name)| names_gateway(p, route.namespace, ns, name))
            })
    });
    let current = Value::Array(route.parents.to_vec());
    let new = Value::Array(parents);
    if same_status(&current, &new) {
        return None;
    }
    match new {
        Value::Array(parents) => Some(parents),
        _ => None,
    }
}

/// A route kind whose cross-tenant parents the operator reports.
pub trait ParentedRoute:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// Its `spec.parentRefs` as written.
    fn parent_refs(&self) -> Vec<Value>;
}

fn as_json<T: Serialize>(items: Option<&Vec<T>>) -> Vec<Value> {
    items
        .into_iter()
        .flatten()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect()
}

/// Every route kind's `spec.parentRefs` is an optional list.
macro_rules! parented_route {
    ($($kind:ty),*) => {$(
        impl ParentedRoute for $kind {
            fn parent_refs(&self) -> Vec<Value> {
                as_json(self.spec.parent_refs.as_ref())
            }
        }
    )*};
}

parented_route!(HttpRoute, GrpcRoute, TlsRoute, TcpRoute, UdpRoute);

/// The plural of every route kind a Gateway fleet reads, each of which the
/// operator watches cluster-wide for cross-tenant parentRefs (its ClusterRole
/// grants exactly these, `config/rbac/cluster_role.yaml`).
pub const REPORTED_ROUTE_KINDS: &[&str] = &[
    "httproutes",
    "grpcroutes",
    "tlsroutes",
    "tcproutes",
    "udproutes",
];

impl GatewayContext {
    /// Whether Gateway `namespace/name` is in the store, of a class we serve.
    pub(crate) fn serves_gateway(&self, namespace: &str, name: &str) -> bool {
        self.gateways
            .get(&ObjectRef::new(name).within(namespace))
            .is_some_and(|g| self.serves_class(&g.spec.gateway_class_name))
    }

    /// Namespace → the tenant holding it, from the same arbitration as the
    /// Gateway and tenant reconciles.
    pub(crate) fn holders(&self) -> BTreeMap<String, String> {
        let decisions = resolve_all_claims(
            &self.tenants.state(),
            &namespaces_of(&self.namespaces),
            &self.build.operator_namespace,
        );
        holders(&decisions)
    }
}

/// Watches every route of kind `K` cluster-wide, and re-checks them when a
/// claim or a tenant moves (every route) or a Gateway changes (the routes
/// naming it), until `shutdown`.
pub(crate) async fn run_route_controller<K: ParentedRoute>(
    ctx: Arc<GatewayContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let controller = Controller::new(Api::<K>::all(client.clone()), watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().debounce(STORE_LAG));
    let for_gateways = controller.store();
    on_any_claim_change(controller, &client, &for_gateways)
        .watches(
            Api::<Gateway>::all(client),
            watcher::Config::default(),
            move |g: Gateway| {
                let gateway = (g.namespace().unwrap_or_default(), g.name_any());
                for_gateways
                    .state()
                    .iter()
                    .filter(|r| {
                        let ns = r.namespace().unwrap_or_default();
                        r.parent_refs()
                            .iter()
                            .any(|p| gateway_of(p, &ns).as_ref() == Some(&gateway))
                    })
                    .map(|r| ObjectRef::from_obj(&**r))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile_route::<K>, error_policy, ctx)
        .for_each(log_controller_error)
        .await;
}

#[tracing::instrument(skip_all, fields(route = %format!("{} {}/{}", K::kind(&()), route.namespace().unwrap_or_default(), route.name_any())))]
async fn reconcile_route<K: ParentedRoute>(
    route: Arc<K>,
    ctx: Arc<GatewayContext>,
) -> Result<Action, ReconcileError> {
    let stage = Stage::default();
    stage.set("writing route status");
    within(RECONCILE_TIMEOUT, &stage, route_pass(route, ctx)).await
}

/// One route: its cross-tenant entries brought up to date, written with its
/// resourceVersion (again from a fresh read on a conflict).
pub(crate) async fn route_pass<K: ParentedRoute>(
    route: Arc<K>,
    ctx: Arc<GatewayContext>,
) -> Result<Action, ReconcileError> {
    let ours = |ns: &str, name: &str| ctx.serves_gateway(ns, name);
    let holders = OnceLock::new();
    let next = |object: &Value| {
        let r = RouteParents::of(object);
        if !may_concern(&r, ours) {
            return None;
        }
        cross_tenant_parents(&r, ours, holders.get_or_init(|| ctx.holders()), &now())
    };
    let api = Api::<K>::namespaced(ctx.client.clone(), &route.namespace().unwrap_or_default());
    match replace_route_parents(&api, &*route, next).await {
        Ok(true) => tracing::info!("cross-tenant parent entries written"),
        Ok(false) => {}
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(ReconcileError::Status(e)),
    }
    Ok(Action::requeue(REPLAN * 5))
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
