//! The Gateway API controllers: GatewayClass status, a fleet per Gateway of
//! our class, and the status entries of routes naming a Gateway of another
//! tenant ([`super::routes`]).
//!
//! Gateways are reconciled in their own controller, not inside the
//! TenantGateway reconcile: a Gateway in a namespace nobody holds has no
//! tenant to be reconciled with yet still needs a status, and the fleet's
//! objects are owned by the Gateway, so owner-reference watches wake exactly
//! the Gateway whose fleet changed. Claims come from the same arbitration as
//! the tenants' ([`crate::claims::resolve_all_claims`]) over the same
//! Namespace store, so both controllers agree on who holds a namespace; any
//! TenantGateway or Namespace change re-plans every Gateway (a claim moved,
//! a tenant's spec or a namespace's labels changed).

use super::class::{build_gateway_class, class_status, is_ours, rejection};
use super::routes::run_route_controller;
use super::status::{self, GatewayPlan};
use crate::build::{build_gateway_fleet, names, BuildContext, BuildError, Desired, MANAGED_KINDS};
use crate::claims::{holders, resolve_all_claims};
use crate::metrics::OperatorMetrics;
use crate::reconcile::{
    all_refs, apply_all, delete_stale, log_controller_error, namespaces_of, now, within,
    ReconcileError, Stage, RECONCILE_TIMEOUT,
};
use crds::{TenantGateway, LABEL_MANAGED_BY, MANAGER};
use futures::StreamExt;
use gwapi::gatewayclasses::GatewayClass;
use gwapi::gateways::{Gateway, GatewayStatus};
use gwapi::grpcroutes::GrpcRoute;
use gwapi::httproutes::HttpRoute;
use gwapi::tcproutes::TcpRoute;
use gwapi::tlsroutes::TlsRoute;
use gwapi::udproutes::UdpRoute;
use k8s_openapi::api::core::v1::{Namespace, Node, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The resources `gateway.networking.k8s.io/v1` serves (none when the group
/// is not installed).
async fn gateway_api_resources(client: &Client) -> Result<Vec<String>, kube::Error> {
    match client
        .list_api_group_resources(&format!("{}/v1", gwapi::GROUP))
        .await
    {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
        Err(e) => Err(e),
    }
}

/// Whether the Gateway and GatewayClass CRDs are served.
async fn gateway_api_installed(client: &Client) -> Result<bool, kube::Error> {
    let served = gateway_api_resources(client).await?;
    let has = |plural: &str| served.iter().any(|r| r == plural);
    Ok(has("gateways") && has("gatewayclasses"))
}

/// How often the operator looks again for Gateway API CRDs it did not find.
const CRD_POLL: Duration = Duration::from_secs(60);

/// [`run`] once the Gateway API CRDs are served: at once when they are,
/// otherwise after they are installed (looked for every [`CRD_POLL`]). Until
/// then the operator runs its TenantGateway controller alone, and says so
/// once.
pub async fn run_when_installed(
    client: Client,
    build: BuildContext,
    namespaces: Store<Namespace>,
    nodes: Store<Node>,
    services: Store<Service>,
    metrics: Arc<OperatorMetrics>,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let mut said = false;
    loop {
        match gateway_api_installed(&client).await {
            Ok(true) => break,
            Ok(false) if !said => {
                tracing::info!(
                    "Gateway API CRDs (gateways, gatewayclasses) not installed: Gateway features off \
                     until they are"
                );
                said = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for the Gateway API CRDs"),
        }
        tokio::select! {
            _ = tokio::time::sleep(CRD_POLL) => {}
            _ = shutdown.clone() => return,
        }
    }
    if said {
        tracing::info!("Gateway API CRDs installed: Gateway features on");
    }
    run(
        client, build, namespaces, nodes, services, metrics, shutdown,
    )
    .await;
}

/// How long a trigger waits for the stores to catch up.
pub(super) const STORE_LAG: Duration = Duration::from_secs(1);
/// Re-plan a Gateway without a fleet this often, in case a trigger beat the
/// store it read.
pub(super) const REPLAN: Duration = Duration::from_secs(60);

pub struct GatewayContext {
    pub client: Client,
    pub build: BuildContext,
    pub tenants: Store<TenantGateway>,
    pub namespaces: Store<Namespace>,
    /// Nodes and the operator's own Services: the addresses a fleet publishes.
    pub nodes: Store<Node>,
    pub services: Store<Service>,
    pub classes: Store<GatewayClass>,
    /// Every Gateway, for the routes' reconciles.
    pub gateways: Store<Gateway>,
    pub metrics: Arc<OperatorMetrics>,
}

impl GatewayContext {
    /// Whether `class` exists, names our controller and is accepted.
    pub(crate) fn serves_class(&self, class: &str) -> bool {
        self.classes
            .get(&ObjectRef::new(class))
            .is_some_and(|c| is_ours(&c) && rejection(&c).is_none())
    }
}

/// Label selector of every object of `gateway`'s fleet.
pub fn fleet_selector(gateway: &Gateway) -> String {
    fleet_selector_of(
        &gateway.namespace().unwrap_or_default(),
        &gateway.name_any(),
    )
}

/// Label selector of every object of the fleet of Gateway `namespace/name`.
pub fn fleet_selector_of(namespace: &str, name: &str) -> String {
    format!(
        "{LABEL_MANAGED_BY}={MANAGER},{}={name},{}={namespace}",
        names::LABEL_GATEWAY_NAME,
        names::LABEL_GATEWAY_NAMESPACE,
    )
}

/// The Gateways (namespace, name) that the given fleet objects' labels name.
pub fn fleets_named_by<'a>(
    objects: impl IntoIterator<Item = &'a ObjectMeta>,
) -> std::collections::BTreeSet<(String, String)> {
    objects
        .into_iter()
        .filter_map(|o| {
            let labels = o.labels.as_ref()?;
            Some((
                labels.get(names::LABEL_GATEWAY_NAMESPACE)?.clone(),
                labels.get(names::LABEL_GATEWAY_NAME)?.clone(),
            ))
        })
        .collect()
}

/// How often the fleets of deleted Gateways are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(20);

/// A deleted Gateway's fleet goes with it by owner reference, except its
/// reader RoleBindings in the tenant's other namespaces (owned by the
/// TenantGateway, as an owner must be cluster-scoped or in the same
/// namespace): find them, and delete the fleet of each Gateway the API
/// server no longer has.
async fn sweep_deleted_gateways(client: Client, shutdown: impl Future<Output = ()>) {
    let selector = format!("{LABEL_MANAGED_BY}={MANAGER},{}", names::LABEL_GATEWAY_NAME);
    let bindings = Api::<k8s_openapi::api::rbac::v1::RoleBinding>::all(client.clone());
    let sweep = async {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let listed = match bindings
                .list_metadata(&ListParams::default().labels(&selector))
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list Gateway fleet RoleBindings");
                    continue;
                }
            };
            for (ns, name) in fleets_named_by(listed.items.iter().map(|o| &o.metadata)) {
                match Api::<Gateway>::namespaced(client.clone(), &ns)
                    .get_metadata(&name)
                    .await
                {
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        match delete_stale(&client, &fleet_selector_of(&ns, &name), &[], true).await
                        {
                            Ok(n) => {
                                tracing::info!(gateway = %format!("{ns}/{name}"), deleted = n, "fleet of a deleted Gateway removed")
                            }
                            Err(e) => {
                                tracing::warn!(gateway = %format!("{ns}/{name}"), error = %e, "could not remove the fleet of a deleted Gateway")
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    tokio::select! {
        _ = sweep => {}
        _ = shutdown => {}
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// GatewayClass `tenant-gateway`, server-side applied under the operator's
/// one field manager.
async fn apply_gateway_class(client: &Client) -> Result<(), kube::Error> {
    let class = build_gateway_class();
    Api::<GatewayClass>::all(client.clone())
        .patch(
            names::GATEWAY_CLASS_NAME,
            &apply_params(),
            &Patch::Apply(&class),
        )
        .await?;
    Ok(())
}

/// A reflector store of `api`, listed once before this returns (`None` when
/// shutdown came first or the watch ended).
async fn synced_store<K>(api: Api<K>, shutdown: impl Future<Output = ()>) -> Option<Store<K>>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K: Send + Sync + 'static,
{
    let (store, writer) = kube::runtime::reflector::store::<K>();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .reflect(writer);
    tokio::spawn(stream.for_each(|_| async {}));
    tokio::select! {
        r = store.wait_until_ready() => r.ok().map(|_| store),
        _ = shutdown => None,
    }
}

/// Run the GatewayClass, Gateway and route controllers until `shutdown`.
/// The Gateway and route controllers start only once the TenantGateway,
/// GatewayClass and Gateway stores have listed everything: a plan made from a
/// partial view would delete fleets of Gateways whose tenant or class it has
/// not seen yet, or remove route entries for Gateways not seen yet. A route
/// controller runs for each route kind whose CRD is served.
pub async fn run(
    client: Client,
    build: BuildContext,
    namespaces: Store<Namespace>,
    nodes: Store<Node>,
    services: Store<Service>,
    metrics: Arc<OperatorMetrics>,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    if let Err(e) = apply_gateway_class(&client).await {
        tracing::warn!(error = %e, "could not apply GatewayClass {}", names::GATEWAY_CLASS_NAME);
    }
    let Some(tenants) =
        synced_store(Api::<TenantGateway>::all(client.clone()), shutdown.clone()).await
    else {
        return;
    };
    let Some(classes) =
        synced_store(Api::<GatewayClass>::all(client.clone()), shutdown.clone()).await
    else {
        return;
    };
    let Some(gateways) = synced_store(Api::<Gateway>::all(client.clone()), shutdown.clone()).await
    else {
        return;
    };
    let served = gateway_api_resources(&client).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not list the Gateway API resources: watching every route kind");
        super::routes::REPORTED_ROUTE_KINDS
            .iter()
            .map(|k| k.to_string())
            .collect()
    });
    let serves = |plural: &str| served.iter().any(|r| r == plural);
    let ctx = Arc::new(GatewayContext {
        client: client.clone(),
        build,
        tenants,
        namespaces,
        nodes,
        services,
        classes,
        gateways,
        metrics,
    });
    // One controller per route kind whose CRD is installed (a cluster may
    // have the core kinds only).
    macro_rules! route_controller {
        ($kind:ty, $plural:expr) => {{
            let (c, s, on) = (ctx.clone(), shutdown.clone(), serves($plural));
            async move {
                if on {
                    run_route_controller::<$kind>(c, s).await;
                }
            }
        }};
    }
    tokio::join!(
        sweep_deleted_gateways(client.clone(), shutdown.clone()),
        run_class_controller(ctx.clone(), shutdown.clone()),
        route_controller!(HttpRoute, "httproutes"),
        route_controller!(GrpcRoute, "grpcroutes"),
        route_controller!(TlsRoute, "tlsroutes"),
        route_controller!(TcpRoute, "tcproutes"),
        route_controller!(UdpRoute, "udproutes"),
        run_gateway_controller(ctx, shutdown),
    );
}

async fn run_class_controller(
    ctx: Arc<GatewayContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(
        Api::<GatewayClass>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile_class, error_policy, ctx)
    .for_each(log_controller_error)
    .await;
}

async fn run_gateway_controller(
    ctx: Arc<GatewayContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    // The trigger watches below and the stores the plan reads are separate
    // streams: the debounce lets a store take in the change that triggered
    // the reconcile, and the plans that wait for a change also requeue.
    let controller = Controller::new(
        Api::<Gateway>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(kube::runtime::controller::Config::default().debounce(STORE_LAG));
    let store = controller.store();
    let owned = watcher::Config::default().labels(&format!(
        "{LABEL_MANAGED_BY}={MANAGER},{}",
        names::LABEL_GATEWAY_NAME
    ));
    let controller = MANAGED_KINDS
        .iter()
        .filter(|k| k.watched)
        .map(|k| k.api_resource())
        .fold(controller, |c, ar| {
            let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
            c.owns_with(api, ar, owned.clone())
        });
    // Claims, tenant settings and namespace labels: re-plan every Gateway.
    let controller = on_any_claim_change(controller, &client, &store);
    let for_classes = store;
    controller
        // A class that becomes (or stops being) ours.
        .watches(
            Api::<GatewayClass>::all(client),
            watcher::Config::default(),
            move |c: GatewayClass| {
                let class = c.name_any();
                for_classes
                    .state()
                    .iter()
                    .filter(|g| g.spec.gateway_class_name == class)
                    .map(|g| ObjectRef::from_obj(&**g))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile_gateway, error_policy, ctx)
        .for_each(log_controller_error)
        .await;
}

/// `controller` also reconciles everything in `store` on any Namespace or
/// TenantGateway change (a claim moved, a tenant's spec or a namespace's
/// labels changed).
pub(super) fn on_any_claim_change<K>(
    controller: Controller<K>,
    client: &Client,
    store: &Store<K>,
) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K: Send + Sync + 'static,
{
    let (for_ns, for_tenants) = (store.clone(), store.clone());
    controller
        .watches(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
            move |_: Namespace| all_refs(&for_ns),
        )
        .watches(
            Api::<TenantGateway>::all(client.clone()),
            watcher::Config::default(),
            move |_: TenantGateway| all_refs(&for_tenants),
        )
}

pub(super) fn error_policy<K>(_: Arc<K>, err: &ReconcileError, ctx: Arc<GatewayContext>) -> Action {
    tracing::warn!(error = %err, reason = err.metric_label(), "Gateway API reconcile failed");
    ctx.metrics.failure(err.metric_label());
    Action::requeue(Duration::from_secs(5))
}

/// One of our GatewayClasses: its status, written only when it changes.
#[tracing::instrument(skip_all, fields(gatewayclass = %class.name_any()))]
async fn reconcile_class(
    class: Arc<GatewayClass>,
    ctx: Arc<GatewayContext>,
) -> Result<Action, ReconcileError> {
    if !is_ours(&class) {
        return Ok(Action::await_change());
    }
    let new = class_status(&class, &now());
    if class.status.as_ref() != Some(&new) {
        let patch = serde_json::json!({
            "apiVersion": GatewayClass::api_version(&()),
            "kind": GatewayClass::kind(&()),
            "status": new,
        });
        Api::<GatewayClass>::all(ctx.client.clone())
            .patch_status(&class.name_any(), &apply_params(), &Patch::Apply(&patch))
            .await
            .map_err(ReconcileError::Status)?;
        tracing::info!(
            accepted = rejection(&class).is_none(),
            "GatewayClass status written"
        );
    }
    Ok(Action::await_change())
}

/// Plan → (fleet: build, apply, delete stale, pending status) or (no fleet:
/// delete it, and status when the Gateway is ours but unclaimed).
#[tracing::instrument(skip_all, fields(gateway = %format!("{}/{}", gateway.namespace().unwrap_or_default(), gateway.name_any())))]
async fn reconcile_gateway(
    gateway: Arc<Gateway>,
    ctx: Arc<GatewayContext>,
) -> Result<Action, ReconcileError> {
    let stage = Stage::default();
    within(
        RECONCILE_TIMEOUT,
        &stage,
        gateway_pass(gateway, ctx, &stage),
    )
    .await
}

pub(crate) async fn gateway_pass(
    gateway: Arc<Gateway>,
    ctx: Arc<GatewayContext>,
    stage: &Stage,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    if gateway.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the fleet.
        return Ok(Action::await_change());
    }
    let tenants = ctx.tenants.state();
    let namespaces = namespaces_of(&ctx.namespaces);
    let decisions = resolve_all_claims(&tenants, &namespaces, &ctx.build.operator_namespace);
    let plan = status::plan(&gateway, |c| ctx.serves_class(c), &holders(&decisions));
    let action = match plan {
        GatewayPlan::NotOurs => {
            stage.set("removing the fleet");
            remove_fleet(&ctx.client, &gateway).await?;
            Action::requeue(REPLAN * 5)
        }
        GatewayPlan::Unclaimed { namespace } => {
            stage.set("removing the fleet");
            if remove_fleet(&ctx.client, &gateway).await? > 0 {
                tracing::info!(%namespace, "namespace no longer held: fleet deleted");
            }
            stage.set("writing status");
            write_status(
                &ctx.client,
                &gateway,
                status::unclaimed_status(&gateway, &now()),
            )
            .await?;
            Action::requeue(REPLAN)
        }
        GatewayPlan::InvalidParameters { message } => {
            stage.set("removing the fleet");
            remove_fleet(&ctx.client, &gateway).await?;
            stage.set("writing status");
            write_status(
                &ctx.client,
                &gateway,
                status::invalid_parameters_status(&gateway, &message, &now()),
            )
            .await?;
            Action::requeue(REPLAN)
        }
        GatewayPlan::Fleet { tenant } => {
            let Some(tg) = tenants.iter().find(|t| t.name_any() == tenant) else {
                return Ok(Action::requeue(Duration::from_secs(5)));
            };
            let claims = decisions.get(&tenant).cloned().unwrap_or_default();
            let mut desired = match build_gateway_fleet(
                tg,
                &claims,
                &ctx.build,
                &gateway,
                &namespaces,
            ) {
                Ok(d) => d,
                // The tenant's reconcile reports its spec; the fleet stays as it was.
                Err(BuildError::Invalid(errors)) => {
                    tracing::warn!(%tenant, errors = errors.len(), "TenantGateway spec invalid: fleet left as it is");
                    return Ok(Action::await_change());
                }
                Err(e) => return Err(e.into()),
            };
            let published = fleet_addresses(&ctx, tg, &desired);
            crate::build::set_published_addresses(&mut desired, &published);
            apply_all(&ctx.client, &desired, stage).await?;
            stage.set("deleting stale objects");
            delete_stale(&ctx.client, &fleet_selector(&gateway), &desired, false).await?;
            stage.set("writing status");
            if let Some(pending) = status::pending_status(&gateway, &tenant, &now()) {
                write_status(&ctx.client, &gateway, pending).await?;
            }
            tracing::info!(%tenant, objects = desired.len(), ms = started.elapsed().as_millis() as u64, "gateway fleet reconciled");
            Action::requeue(Duration::from_secs(300))
        }
    };
    ctx.metrics.observe(started, None);
    Ok(action)
}

/// What a Gateway's fleet publishes in the Gateway's `status.addresses`:
/// its Service's load-balancer ingress, else for a NodePort Service every
/// Ready node's address (as Envoy Gateway does), else the cluster IP — from
/// the cached Service and Nodes (no request). The tenant's
/// `publishStatusAddresses` and `hostNetwork` are its Ingress fleet's.
fn fleet_addresses(
    ctx: &GatewayContext,
    tg: &TenantGateway,
    desired: &[Desired],
) -> Vec<k8s_openapi::api::networking::v1::IngressLoadBalancerIngress> {
    let svc = desired.iter().find_map(|d| match d {
        Desired::Service(s) => Some(s),
        _ => None,
    });
    let live = svc.and_then(|s| {
        let name = s.metadata.name.as_deref()?;
        let ns = s.metadata.namespace.as_deref()?;
        ctx.services.get(&ObjectRef::new(name).within(ns))
    });
    let mut spec_only = tg.clone();
    spec_only.spec.publish_status_addresses.clear();
    crate::build::published_addresses(&spec_only, false, live.as_deref(), &ctx.nodes.state())
}

/// Deletes every object of `gateway`'s fleet; the ServiceAccount goes last
/// and is the marker: no ServiceAccount, no fleet (one list, not one per
/// kind, for the Gateways that never had a fleet).
async fn remove_fleet(client: &Client, gateway: &Gateway) -> Result<usize, ReconcileError> {
    let selector = fleet_selector(gateway);
    let ns = gateway.namespace().unwrap_or_default();
    let marker = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .list_metadata(&ListParams::default().labels(&selector).limit(1))
        .await
        .map_err(|e| ReconcileError::Read("ServiceAccount", e))?;
    if marker.items.is_empty() {
        return Ok(0);
    }
    delete_stale(client, &selector, &[], true).await
}

/// The operator's Gateway status, written when it changes anything.
async fn write_status(
    client: &Client,
    gateway: &Gateway,
    new: GatewayStatus,
) -> Result<(), ReconcileError> {
    if !status::changes(gateway, &new) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": Gateway::api_version(&()),
        "kind": Gateway::kind(&()),
        "status": new,
    });
    Api::<Gateway>::namespaced(client.clone(), &gateway.namespace().unwrap_or_default())
        .patch_status(&gateway.name_any(), &apply_params(), &Patch::Apply(&patch))
        .await
        .map_err(ReconcileError::Status)?;
    Ok(())
}

#[cfg(test)]
#[path = "controller_tests.rs"]
pub(super) mod tests;
