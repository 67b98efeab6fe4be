//! A Gateway fleet's sidecar: the Gateway it serves, the objects translation
//! reads for it, and the status it writes (the Gateway's, and this Gateway's
//! entries in each route's `status.parents`).

use super::gateway_status::{
    gateway_status, route_parents, same_status, GatewayAddress, GatewayApiStatus, WantedCondition,
    WantedListener, WantedParent, WantedRoute,
};
use super::namespaces::TenantWatch;
use gwapi::gateways::Gateway;
use gwapi::grpcroutes::GrpcRoute;
use gwapi::httproutes::HttpRoute;
use gwapi::tcproutes::TcpRoute;
use gwapi::tlsroutes::TlsRoute;
use gwapi::udproutes::UdpRoute;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use tokio::sync::watch;

/// The Gateway a fleet serves, as last seen.
pub(crate) struct GatewayFleet {
    pub name: String,
    pub namespace: String,
    pub gateway: watch::Receiver<Option<Gateway>>,
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The addresses a Gateway publishes: its Service's load-balancer ingress,
/// else its cluster IPs (reachable from the nodes and from inside the cluster).
pub fn gateway_addresses(svc: &Service) -> Vec<GatewayAddress> {
    super::status::published_addresses(svc)
        .into_iter()
        .filter_map(|a| match (a.ip, a.hostname) {
            (Some(ip), _) => Some(("IPAddress".to_string(), ip)),
            (None, Some(host)) => Some(("Hostname".to_string(), host)),
            (None, None) => None,
        })
        .collect()
}

fn parents_of(route_status: Option<Value>) -> Vec<Value> {
    route_status
        .and_then(|s| s.get("parents").cloned())
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default()
}

/// How often a status write is retried after a conflict (another controller
/// or Gateway fleet wrote the same route in between).
const CONFLICT_RETRIES: usize = 4;

/// Writes the Gateway's status and its routes' parent entries.
pub(crate) struct StatusWriter<'a> {
    pub client: &'a Client,
    pub fleet: &'a GatewayFleet,
    pub controller: &'a str,
}

impl StatusWriter<'_> {
    pub async fn write(
        &self,
        status: &GatewayApiStatus,
        tenant: &TenantWatch,
        service: Option<&Service>,
    ) {
        let addresses = service.map(gateway_addresses).unwrap_or_default();
        self.write_gateway(&status.conditions, &status.listeners, &addresses)
            .await;
        let wanted: BTreeMap<(&str, &str, &str), &WantedRoute> = status
            .routes
            .iter()
            .map(|r| ((r.kind.as_str(), r.namespace.as_str(), r.name.as_str()), r))
            .collect();
        let namespaces: BTreeSet<String> = tenant.synced_namespaces();
        let routes = tenant.gateway_api_routes(&namespaces);
        for r in &routes.http_routes {
            self.route::<HttpRoute>(r, &wanted).await;
        }
        for r in &routes.grpc_routes {
            self.route::<GrpcRoute>(r, &wanted).await;
        }
        for r in &routes.tls_routes {
            self.route::<TlsRoute>(r, &wanted).await;
        }
        for r in &routes.tcp_routes {
            self.route::<TcpRoute>(r, &wanted).await;
        }
        for r in &routes.udp_routes {
            self.route::<UdpRoute>(r, &wanted).await;
        }
    }

    async fn write_gateway(
        &self,
        conditions: &[WantedCondition],
        listeners: &[WantedListener],
        addresses: &[GatewayAddress],
    ) {
        let Some(gw) = self.fleet.gateway.borrow().clone() else {
            return;
        };
        let current = gw
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        let wanted = gateway_status(&current, addresses, conditions, listeners, &now());
        if same_status(&current, &wanted) {
            return;
        }
        let api: Api<Gateway> = Api::namespaced(self.client.clone(), &self.fleet.namespace);
        let patch = json!({ "status": wanted });
        if let Err(e) = api
            .patch_status(
                &self.fleet.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(gateway = %format!("{}/{}", self.fleet.namespace, self.fleet.name), error = %e, "could not write Gateway status");
        }
    }

    /// Bring one route's entries for this Gateway up to date (or remove them
    /// when it no longer attaches).
    async fn route<K>(&self, seen: &K, wanted: &BTreeMap<(&str, &str, &str), &WantedRoute>)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let kind = K::kind(&()).to_string();
        let (ns, name) = (seen.namespace().unwrap_or_default(), seen.name_any());
        let ours: &[WantedParent] = wanted
            .get(&(kind.as_str(), ns.as_str(), name.as_str()))
            .map(|r| r.parents.as_slice())
            .unwrap_or(&[]);
        let gateway = (self.fleet.namespace.as_str(), self.fleet.name.as_str());
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let next = |route: &Value| {
            let current = parents_of(route.get("status").cloned());
            let parents = route_parents(&current, self.controller, &ns, gateway, ours, &now());
            (!same_status(&Value::Array(current), &Value::Array(parents.clone())))
                .then_some(parents)
        };
        if let Err(e) = replace_route_parents(&api, seen, next).await {
            tracing::warn!(route = %format!("{kind} {ns}/{name}"), error = %e, "could not write route status");
        }
    }
}

/// Replaces a route's `status.parents` with what `next` makes of the route
/// (as JSON; `None`: nothing to change), carrying the route's
/// resourceVersion; on a conflict (another controller or Gateway fleet wrote
/// the route in between) `next` is asked again about a fresh read. Whether it
/// wrote.
pub(crate) async fn replace_route_parents<K>(
    api: &Api<K>,
    seen: &K,
    next: impl Fn(&Value) -> Option<Vec<Value>>,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = seen.name_any();
    let mut object = serde_json::to_value(seen).map_err(kube::Error::SerdeError)?;
    let mut conflicts = 0;
    loop {
        let Some(parents) = next(&object) else {
            return Ok(false);
        };
        object["status"]["parents"] = Value::Array(parents);
        let body: K = serde_json::from_value(object.clone()).map_err(kube::Error::SerdeError)?;
        match api
            .replace_status(&name, &PostParams::default(), &body)
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 && conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                let fresh = api.get_status(&name).await?;
                object = serde_json::to_value(&fresh).map_err(kube::Error::SerdeError)?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn wanted_condition(c: &xds::ConditionModel) -> WantedCondition {
    WantedCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        observed_generation: c.observed_generation,
    }
}

/// A parentRef as the route wrote it: only the fields it set.
fn parent_ref_json(p: &xds::ParentRef) -> Value {
    let mut v = json!({ "name": p.name });
    for (key, value) in [
        ("group", &p.group),
        ("kind", &p.kind),
        ("namespace", &p.namespace),
        ("sectionName", &p.section_name),
    ] {
        if let Some(value) = value {
            v[key] = json!(value);
        }
    }
    if let Some(port) = p.port {
        v["port"] = json!(port);
    }
    v
}

/// What a translation says the status should be, in the writer's terms.
pub fn wanted_status(t: &xds::GatewayTranslation) -> GatewayApiStatus {
    let mut routes: BTreeMap<(String, String, String), Vec<WantedParent>> = BTreeMap::new();
    for r in &t.routes {
        routes
            .entry((r.kind.clone(), r.namespace.clone(), r.name.clone()))
            .or_default()
            .push(WantedParent {
                parent_ref: parent_ref_json(&r.parent_ref),
                conditions: r.conditions.iter().map(wanted_condition).collect(),
            });
    }
    GatewayApiStatus {
        conditions: t.gateway.conditions.iter().map(wanted_condition).collect(),
        listeners: t
            .gateway
            .listeners
            .iter()
            .map(|l| WantedListener {
                name: l.name.clone(),
                supported_kinds: l.supported_kinds.clone(),
                attached_routes: l.attached_routes,
                conditions: l.conditions.iter().map(wanted_condition).collect(),
            })
            .collect(),
        routes: routes
            .into_iter()
            .map(|((kind, namespace, name), parents)| WantedRoute {
                kind,
                namespace,
                name,
                parents,
            })
            .collect(),
    }
}
