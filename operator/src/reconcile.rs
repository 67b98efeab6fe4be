//! The TenantGateway reconciler, a pipeline of named stages: validate →
//! resolve claims → build desired objects (pure) → server-side apply →
//! delete this tenant's labelled objects the pass did not produce → status
//! (computed by the pure [`status`] module).

pub(crate) mod fan_out;
mod status;

pub use status::{StatusEvent, StatusUpdate};

use crate::build::{self, build_all, names, BuildContext, BuildError, Desired, MANAGED_KINDS};
use crate::claims::{resolve_claims, ClaimDecision};
use crate::metrics::OperatorMetrics;
use crds::{TenantGateway, TenantGatewayStatus, LABEL_MANAGED_BY, LABEL_TENANT, MANAGER};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("resolving namespace claims: {0}")]
    Claims(String),
    #[error("building objects: {0}")]
    Build(#[from] BuildError),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting stale {kind} {name}: {source}")]
    Cleanup {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    #[error("reading {0}: {1}")]
    Read(&'static str, #[source] kube::Error),
    #[error("reconcile took longer than {limit:?}, stuck at: {stage}")]
    Timeout { limit: Duration, stage: String },
}

/// A reconcile pass that has not finished by then is abandoned and retried:
/// one hung API request must not keep a tenant from ever being reconciled.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(45);

/// Passes running at once: each holds its desired objects and requests in
/// flight, so a thousand tenants created together must not all run at once
/// (they did, and the operator was OOM-killed at its 256 MiB limit).
pub const CONCURRENCY: u16 = 8;

/// Where a reconcile pass is, for the timeout error.
#[derive(Default)]
pub(crate) struct Stage(std::sync::Mutex<String>);

impl Stage {
    pub(crate) fn set(&self, what: impl Into<String>) {
        if let Ok(mut s) = self.0.lock() {
            *s = what.into();
        }
    }
    pub(crate) fn get(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl ReconcileError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Claims(_) => "claims",
            Self::Build(e) => e.metric_label(),
            Self::Apply { .. } => "apply",
            Self::Cleanup { .. } => "cleanup",
            Self::Status(_) => "status",
            Self::Read(..) => "read",
            Self::Timeout { .. } => "timeout",
        }
    }
}

pub struct Context {
    pub client: Client,
    pub build: BuildContext,
    pub gateways: Store<TenantGateway>,
    pub namespaces: Store<Namespace>,
    /// For the addresses NodePort and hostNetwork gateways publish.
    pub nodes: Store<Node>,
    /// The operator's own Services (managed-by label), read without a request.
    pub services: Store<Service>,
    pub recorder: Recorder,
    pub metrics: Arc<OperatorMetrics>,
    /// [`RECONCILE_TIMEOUT`] in the operator; short in tests.
    pub reconcile_timeout: Duration,
    pub swept: Swept,
}

pub(crate) fn dyn_api(
    client: &Client,
    ar: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Apply: server-side apply under one field manager, in build order
/// (RBAC before the claims ConfigMap the sidecar follows).
pub(crate) async fn apply_all(
    client: &Client,
    desired: &[Desired],
    stage: &Stage,
) -> Result<(), ReconcileError> {
    let pp = PatchParams::apply(MANAGER).force();
    for d in desired {
        stage.set(format!("applying {} {}", d.kind(), d.name()));
        let obj = d.to_dynamic()?;
        let api = dyn_api(client, &d.api_resource(), d.namespace());
        api.patch(d.name(), &pp, &Patch::Apply(&obj))
            .await
            .map_err(|source| ReconcileError::Apply {
                kind: d.kind().into(),
                name: format!("{}/{}", d.namespace().unwrap_or(""), d.name()),
                source,
            })?;
    }
    Ok(())
}

/// The tenant's own (Ingress fleet) objects: its Gateway fleets carry its
/// tenant label too, but are the Gateway controller's.
fn tenant_selector(tenant: &str) -> String {
    format!(
        "{LABEL_MANAGED_BY}={MANAGER},{LABEL_TENANT}={tenant},!{}",
        names::LABEL_GATEWAY_NAME
    )
}

/// (kind, namespace, name) of an object a pass produces.
pub(crate) type ObjectKey = (String, Option<String>, String);

pub(crate) fn object_keys(desired: &[Desired]) -> BTreeSet<ObjectKey> {
    desired
        .iter()
        .map(|d| {
            (
                d.kind().to_string(),
                d.namespace().map(String::from),
                d.name().to_string(),
            )
        })
        .collect()
}

/// What this process's last complete sweep of each tenant (by uid) left:
/// exactly the objects that pass desired. While a pass desires all of
/// those again, none of the tenant's objects can be stale, and the sweep's
/// LIST of every managed kind — cluster-wide, by label, so each costs the
/// API server in proportion to every tenant's objects — is skipped. A new
/// process, a new uid or a pass that desires less sweeps again.
#[derive(Default)]
pub struct Swept(std::sync::Mutex<std::collections::HashMap<String, BTreeSet<ObjectKey>>>);

impl Swept {
    /// Can nothing of the tenant `uid` be stale when it desires `keys`?
    pub(crate) fn covers(&self, uid: &str, keys: &BTreeSet<ObjectKey>) -> bool {
        self.0
            .lock()
            .map(|m| m.get(uid).is_some_and(|left| left.is_subset(keys)))
            .unwrap_or(false)
    }

    /// The tenant `uid`'s sweep left `keys`; tenants no longer in `live`
    /// are forgotten once they are as many as the live ones.
    pub(crate) fn record(&self, uid: &str, keys: BTreeSet<ObjectKey>, live: &Store<TenantGateway>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(uid.to_string(), keys);
            if m.len() > 2 * live.state().len() + 16 {
                let uids: BTreeSet<String> = live
                    .state()
                    .iter()
                    .filter_map(|g| g.metadata.uid.clone())
                    .collect();
                m.retain(|uid, _| uids.contains(uid));
            }
        }
    }
}

/// Delete stale: delete the objects `selector` matches that the pass did
/// not produce, kind by kind in [`MANAGED_KINDS`] order (or the reverse:
/// the ServiceAccount last, so that its presence says a removal is unfinished).
pub(crate) async fn delete_stale(
    client: &Client,
    selector: &str,
    desired: &[Desired],
    reverse: bool,
) -> Result<usize, ReconcileError> {
    delete_stale_except(client, selector, &object_keys(desired), reverse).await
}

/// [`delete_stale`] with the keys of the objects to keep.
async fn delete_stale_except(
    client: &Client,
    selector: &str,
    keep: &BTreeSet<ObjectKey>,
    reverse: bool,
) -> Result<usize, ReconcileError> {
    let lp = ListParams::default().labels(selector);
    let mut deleted = 0;
    let mut kinds: Vec<ApiResource> = MANAGED_KINDS.iter().map(|k| k.api_resource()).collect();
    if reverse {
        kinds.reverse();
    }
    for ar in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = api
            .list_metadata(&lp)
            .await
            .map_err(|e| ReconcileError::Read("managed objects", e))?;
        for o in list.items {
            let key = (
                ar.kind.clone(),
                o.metadata.namespace.clone(),
                o.metadata.name.clone().unwrap_or_default(),
            );
            if keep.contains(&key) || o.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let api = dyn_api(client, &ar, key.1.as_deref());
            match api.delete(&key.2, &DeleteParams::background()).await {
                Ok(_) => deleted += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(ReconcileError::Cleanup {
                        kind: key.0,
                        name: key.2,
                        source,
                    })
                }
            }
            tracing::info!(kind = %key.0, namespace = ?key.1, name = %key.2, "deleted stale object");
        }
    }
    Ok(deleted)
}

async fn write_status(
    client: &Client,
    gw: &TenantGateway,
    status: TenantGatewayStatus,
) -> Result<(), ReconcileError> {
    let api: Api<TenantGateway> = Api::all(client.clone());
    let patch = serde_json::json!({
        "apiVersion": "tenantgateway.io/v1alpha1",
        "kind": "TenantGateway",
        "status": status,
    });
    api.patch_status(
        &gw.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(ReconcileError::Status)?;
    Ok(())
}

pub(crate) fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn publish(ctx: &Context, gw: &TenantGateway, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &gw.object_ref(&())).await {
        tracing::debug!(error = %e, "could not publish Event");
    }
}

#[tracing::instrument(skip_all, fields(tenant = %gw.name_any()))]
pub async fn reconcile(
    gw: Arc<TenantGateway>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let stage = Stage::default();
    let limit = ctx.reconcile_timeout;
    within(limit, &stage, reconcile_pass(gw, ctx, &stage)).await
}

/// `pass`, abandoned with a Timeout naming its stage after `limit`.
pub(crate) async fn within(
    limit: Duration,
    stage: &Stage,
    pass: impl std::future::Future<Output = Result<Action, ReconcileError>>,
) -> Result<Action, ReconcileError> {
    match tokio::time::timeout(limit, pass).await {
        Ok(result) => result,
        Err(_) => Err(ReconcileError::Timeout {
            limit,
            stage: stage.get(),
        }),
    }
}

/// Validate → resolve claims → build (pure) → apply → delete stale →
/// status; each step fails with its own error (and metric label).
async fn reconcile_pass(
    gw: Arc<TenantGateway>,
    ctx: Arc<Context>,
    stage: &Stage,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    if gw.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove everything.
        return Ok(Action::await_change());
    }
    let mut errors = build::validate_with(&gw, &ctx.build)
        .err()
        .unwrap_or_default();
    {
        let all = ctx.gateways.state();
        let all: Vec<&TenantGateway> = all.iter().map(|g| &**g).collect();
        errors.extend(build::host_network_conflicts(&gw, &all));
    }
    if !errors.is_empty() {
        return reject_invalid_spec(&ctx, &gw, &errors, started).await;
    }
    let decision = current_claims(&ctx, &gw, stage)?;
    let mut desired = build_all(&gw, &decision, &ctx.build)?;
    let published = published_addresses(&ctx, &gw);
    build::set_published_addresses(&mut desired, &published);
    apply_all(&ctx.client, &desired, stage).await?;
    let keys = object_keys(&desired);
    let uid = gw.metadata.uid.clone().unwrap_or_default();
    if !ctx.swept.covers(&uid, &keys) {
        stage.set("deleting stale objects");
        delete_stale_except(&ctx.client, &tenant_selector(&gw.name_any()), &keys, false).await?;
        ctx.swept.record(&uid, keys, &ctx.gateways);
    }
    let (deployment, service) = observe_workload(&ctx, &gw, stage).await?;
    let update = status::applied(
        &gw,
        &decision,
        deployment.as_ref(),
        service.as_ref(),
        &now(),
    );
    stage.set("writing status");
    publish_status(&ctx, &gw, &update).await?;
    ctx.metrics.observe(started, None);
    tracing::info!(
        ready = update.ready,
        status_changed = update.changed,
        objects = desired.len(),
        ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
    // Not Ready yet: look again soon even if a watch event is missed.
    Ok(Action::requeue(Duration::from_secs(if update.ready {
        300
    } else {
        10
    })))
}

/// An invalid spec gets a condition naming the field, and no hot loop.
async fn reject_invalid_spec(
    ctx: &Context,
    gw: &TenantGateway,
    errors: &[build::SpecError],
    started: Instant,
) -> Result<Action, ReconcileError> {
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    publish_status(ctx, gw, &status::invalid_spec(gw, message, &now())).await?;
    ctx.metrics.observe(started, Some("invalid_spec"));
    Ok(Action::await_change())
}

/// This tenant's claims, only from complete views: a reconcile before the
/// Namespace or TenantGateway stores have listed everything would drop claims
/// (or hand a namespace to a younger tenant) until the next pass. `run` starts
/// the controller only after the Namespace store's first list, and the
/// controller runs no reconcile before its TenantGateway store's.
fn current_claims(
    ctx: &Context,
    gw: &TenantGateway,
    stage: &Stage,
) -> Result<ClaimDecision, ReconcileError> {
    stage.set("resolving claims");
    let namespaces = namespaces_of(&ctx.namespaces);
    let reserved = ctx.build.operator_namespace.as_str();
    resolve_claims(&ctx.gateways.state(), &namespaces, reserved, &gw.name_any())
        .map_err(ReconcileError::Claims)
}

/// The addresses the tenant's fleet publishes, from the cached Service (its
/// NodePorts, load-balancer ingress) and Nodes: no request, so a pass that
/// has not seen the Service yet publishes what it can and the Service's own
/// watch event brings the next pass.
fn published_addresses(
    ctx: &Context,
    gw: &TenantGateway,
) -> Vec<k8s_openapi::api::networking::v1::IngressLoadBalancerIngress> {
    let tenant = gw.name_any();
    let gw_ns = names::gateway_namespace(gw, &ctx.build.operator_namespace);
    let svc = ctx
        .services
        .get(&ObjectRef::new(&names::service_name(&tenant)).within(&gw_ns));
    build::published_addresses(gw, gw.spec.host_network, svc.as_deref(), &ctx.nodes.state())
}

/// The live Deployment and Service the status reports on.
async fn observe_workload(
    ctx: &Context,
    gw: &TenantGateway,
    stage: &Stage,
) -> Result<(Option<Deployment>, Option<Service>), ReconcileError> {
    stage.set("reading the Deployment and Service");
    let tenant = gw.name_any();
    let gw_ns = names::gateway_namespace(gw, &ctx.build.operator_namespace);
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &gw_ns)
        .get_opt(&names::deployment_name(&tenant))
        .await
        .map_err(|e| ReconcileError::Read("Deployment", e))?;
    let service = Api::<Service>::namespaced(ctx.client.clone(), &gw_ns)
        .get_opt(&names::service_name(&tenant))
        .await
        .map_err(|e| ReconcileError::Read("Service", e))?;
    Ok((deployment, service))
}

/// The update's Event, then its status when it changed.
async fn publish_status(
    ctx: &Context,
    gw: &TenantGateway,
    update: &StatusUpdate,
) -> Result<(), ReconcileError> {
    if let Some(ev) = &update.event {
        publish(ctx, gw, EventType::Warning, ev.reason, ev.note.clone()).await;
    }
    if update.changed {
        write_status(&ctx.client, gw, update.status.clone()).await?;
    }
    Ok(())
}

pub fn error_policy(_gw: Arc<TenantGateway>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, reason = err.metric_label(), "reconcile failed");
    ctx.metrics.failure(err.metric_label());
    Action::requeue(Duration::from_secs(5))
}

/// The Namespaces in `store`, as the claim arbitration takes them.
pub(crate) fn namespaces_of(store: &Store<Namespace>) -> Vec<Namespace> {
    store.state().iter().map(|n| (**n).clone()).collect()
}

/// Every object in `store`, to reconcile them all.
pub(crate) fn all_refs<K>(store: &Store<K>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .map(|g| ObjectRef::from_obj(&**g))
        .collect()
}

/// A controller's result: reconcile failures are logged by the error
/// policy; watch and queue errors (a LIST that fails, an object that does
/// not decode) here, or nothing says why no reconcile runs.
pub(crate) async fn log_controller_error<K, E: std::fmt::Display>(
    res: Result<K, kube::runtime::controller::Error<ReconcileError, E>>,
) {
    if let Err(e) = res {
        if !matches!(e, kube::runtime::controller::Error::ReconcilerFailed(..)) {
            tracing::warn!(error = %e, "controller watch or queue error");
        }
    }
}

/// The TenantGateway that controls an object, as the controller keys it.
/// Not `owns`: kube-rs puts the owned object's namespace into the owner's
/// reference, and a cluster-scoped TenantGateway referred to with a namespace
/// is another key than the same one without, so the two ran side by side
/// (seen at 1,000 tenants: one tenant's passes overlapping in time).
fn owning_tenant(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectRef<TenantGateway>> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == TenantGateway::kind(&())
                && o.api_version == TenantGateway::api_version(&())
        })
        .map(|o| ObjectRef::new(&o.name))
}

/// What of its own object a tenant's pass reads, hashed: its spec (by
/// generation), labels, annotations and deletion. A change of its status
/// alone — most often the status its last pass wrote — starts no pass (it
/// did: two of every three passes at 1,000 tenants).
fn pass_trigger(gw: &TenantGateway) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let m = &gw.metadata;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &m.uid,
        m.generation,
        &m.labels,
        &m.annotations,
        m.deletion_timestamp.is_some(),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// A stream's `for_each` body that wakes the fan-out.
fn wake<T>(changed: &Arc<tokio::sync::Notify>) -> impl FnMut(T) -> futures::future::Ready<()> {
    let changed = changed.clone();
    move |_| {
        changed.notify_one();
        futures::future::ready(())
    }
}

/// Run the controller until `shutdown` completes.
pub async fn run(
    client: Client,
    build: BuildContext,
    metrics: Arc<OperatorMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let gws: Api<TenantGateway> = Api::all(client.clone());
    let managed = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));

    // Namespaces: a store for claim resolution, and a trigger to re-arbitrate.
    let (ns_store, ns_writer) = kube::runtime::reflector::store::<Namespace>();
    // Every change of a Namespace, Node or TenantGateway wakes the fan-out,
    // which reconciles the tenants whose shared inputs moved (`fan_out`).
    let changed = Arc::new(tokio::sync::Notify::new());
    let ns_stream = watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|n: &mut Namespace| n.managed_fields_mut().clear())
    .reflect(ns_writer);
    tokio::spawn(ns_stream.for_each(wake(&changed)));

    // Nodes and the operator's own Services, for the published addresses.
    let (node_store, node_writer) = kube::runtime::reflector::store::<Node>();
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|n: &mut Node| n.managed_fields_mut().clear())
        .reflect(node_writer);
    tokio::spawn(node_stream.for_each(wake(&changed)));
    // The TenantGateways as the passes and the fan-out read them: one store,
    // so that a tenant the fan-out sends reads the change that moved it.
    // The controller's own watch too: it reconciles a tenant when
    // `pass_trigger` changes, not on a change of its status alone.
    let (gw_store, gw_writer) = kube::runtime::reflector::store::<TenantGateway>();
    let (listed_tx, listed) = tokio::sync::watch::channel(false);
    let gw_changed = changed.clone();
    let gw_stream = watcher(gws.clone(), watcher::Config::default())
        .default_backoff()
        .modify(|g: &mut TenantGateway| g.managed_fields_mut().clear())
        .reflect(gw_writer)
        .inspect(move |event| {
            gw_changed.notify_one();
            if matches!(event, Ok(watcher::Event::InitDone)) {
                let _ = listed_tx.send(true);
            }
        })
        .applied_objects()
        .predicate_filter(pass_trigger, kube::runtime::PredicateConfig::default());
    let (svc_store, svc_writer) = kube::runtime::reflector::store::<Service>();
    let svc_stream = watcher(Api::<Service>::all(client.clone()), managed.clone())
        .default_backoff()
        .modify(|s: &mut Service| s.managed_fields_mut().clear())
        .reflect(svc_writer);
    tokio::spawn(svc_stream.for_each(|_| async {}));

    // Claims are computed only from a complete view of the Namespaces: wait for
    // the first full list here, once, before any reconcile can run. (A Store's
    // `wait_until_ready` wakes only the last of several tasks waiting at once:
    // reconciles that waited on it themselves could sleep forever.)
    let shutdown = shutdown.shared();
    let t0 = Instant::now();
    tokio::select! {
        r = ns_store.wait_until_ready() => {
            if r.is_err() {
                tracing::error!("Namespace watch ended before its first list");
                return;
            }
        }
        _ = shutdown.clone() => return,
    }
    // Addresses too (a pass before would publish the cluster IP for a moment).
    tokio::select! {
        _ = async {
            let _ = node_store.wait_until_ready().await;
            let _ = svc_store.wait_until_ready().await;
        } => {}
        _ = shutdown.clone() => return,
    }
    tracing::info!(
        namespaces = ns_store.state().len(),
        nodes = node_store.state().len(),
        ms = t0.elapsed().as_millis() as u64,
        "Namespace cache synced"
    );

    // Gateway API, once its CRDs are installed: its own controllers, which
    // read the same Namespace store.
    tokio::spawn(crate::gateway::controller::run_when_installed(
        client.clone(),
        build.clone(),
        ns_store.clone(),
        node_store.clone(),
        svc_store.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    // The controller holds every reconcile until its TenantGateway store has
    // listed everything (its own single wait on that store).
    let controller = Controller::for_stream(gw_stream, gw_store.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY));
    let (fan_tx, fan_rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(fan_out::run(
        gw_store.clone(),
        ns_store.clone(),
        node_store.clone(),
        build.operator_namespace.clone(),
        (changed, listed),
        fan_tx,
    ));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "tenant-gateway-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        build,
        gateways: gw_store,
        namespaces: ns_store,
        nodes: node_store.clone(),
        services: svc_store,
        recorder,
        metrics,
        reconcile_timeout: RECONCILE_TIMEOUT,
        swept: Swept::default(),
    });
    let controller = MANAGED_KINDS
        .iter()
        .filter(|k| k.watched)
        .map(|k| k.api_resource())
        .fold(controller, |c, ar| {
            let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
            c.watches_with(api, ar, managed.clone(), |o: DynamicObject| {
                owning_tenant(&o.metadata)
            })
        });
    controller
        // Another tenant's, a Namespace's or a Node's change that moves
        // what this tenant's pass reads.
        .reconcile_on(fan_rx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(log_controller_error)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::{NamespaceSelection, TenantGatewaySpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn ns(name: &str, tenant: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("tenant".to_string(), tenant.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn gw(name: &str, age: i64, selector_tenant: &str) -> Arc<TenantGateway> {
        let mut g = TenantGateway::new(
            name,
            TenantGatewaySpec {
                namespaces: NamespaceSelection {
                    names: vec![],
                    selector: Some(LabelSelector {
                        match_labels: Some(
                            [("tenant".to_string(), selector_tenant.to_string())].into(),
                        ),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
        );
        g.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(age).unwrap(),
        ));
        Arc::new(g)
    }

    fn key(kind: &str, name: &str) -> ObjectKey {
        (
            kind.into(),
            Some("tenant-gateway-system".into()),
            name.into(),
        )
    }

    /// The sweep is skipped only while a pass desires everything the last
    /// sweep of that same tenant (uid) left.
    #[test]
    fn a_sweep_is_skipped_only_while_nothing_left_can_be_stale() {
        let swept = Swept::default();
        let live = kube::runtime::reflector::store::<TenantGateway>().0;
        let two: BTreeSet<ObjectKey> = [key("Deployment", "tgw-a"), key("Service", "tgw-a")].into();
        assert!(!swept.covers("uid-a", &two), "never swept");
        swept.record("uid-a", two.clone(), &live);
        assert!(swept.covers("uid-a", &two));
        let mut three = two.clone();
        three.insert(key("RoleBinding", "tgw-a"));
        assert!(
            swept.covers("uid-a", &three),
            "desiring more leaves nothing stale"
        );
        let one: BTreeSet<ObjectKey> = [key("Deployment", "tgw-a")].into();
        assert!(!swept.covers("uid-a", &one), "the Service would be stale");
        assert!(
            !swept.covers("uid-b", &two),
            "another tenant, or a recreated one"
        );
    }

    #[test]
    fn swept_tenants_that_are_gone_are_forgotten() {
        let swept = Swept::default();
        let live = kube::runtime::reflector::store::<TenantGateway>().0;
        let keys: BTreeSet<ObjectKey> = [key("Service", "tgw-x")].into();
        for i in 0..17 {
            swept.record(&format!("uid-{i}"), keys.clone(), &live);
        }
        // 17 > 2 × 0 live + 16: none of them is in the store.
        assert!(!swept.covers("uid-0", &keys));
        assert_eq!(swept.0.lock().unwrap().len(), 0);
    }

    /// Objects map to their controlling TenantGateway without a namespace,
    /// as the primary watch keys it, and a Gateway's fleet to no tenant.
    #[test]
    fn an_owned_object_maps_to_its_tenant_as_the_controller_keys_it() {
        let mut tenant = (*gw("acme", 1, "acme")).clone();
        tenant.metadata.uid = Some("uid-acme".into());
        let meta = ObjectMeta {
            namespace: Some("tenant-gateway-system".into()),
            owner_references: Some(vec![build::owner_reference(&tenant).unwrap()]),
            ..Default::default()
        };
        let r = owning_tenant(&meta).unwrap();
        assert_eq!(r, ObjectRef::<TenantGateway>::from_obj(&tenant));
        assert_eq!(r.namespace, None);
        let mut gateway_owned = meta.clone();
        if let Some(refs) = gateway_owned.owner_references.as_mut() {
            refs[0].kind = "Gateway".into();
            refs[0].api_version = "gateway.networking.k8s.io/v1".into();
        }
        assert_eq!(owning_tenant(&gateway_owned), None);
    }

    #[test]
    fn a_tenant_is_reconciled_on_its_spec_metadata_or_deletion_not_its_status() {
        let base = (*gw("acme", 1, "acme")).clone();
        let h = |g: &TenantGateway| pass_trigger(g).unwrap();
        let mut status_only = base.clone();
        status_only.status = Some(TenantGatewayStatus {
            observed_generation: Some(3),
            ..Default::default()
        });
        status_only.metadata.resource_version = Some("42".into());
        assert_eq!(h(&status_only), h(&base));
        let mut spec = base.clone();
        spec.metadata.generation = Some(2);
        let mut labelled = base.clone();
        labelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        let mut annotated = base.clone();
        annotated.metadata.annotations = Some([("note".to_string(), "x".to_string())].into());
        let mut deleting = base.clone();
        deleting.metadata.deletion_timestamp = Some(now());
        for (what, g) in [
            ("spec", spec),
            ("labels", labelled),
            ("annotations", annotated),
            ("deletion", deleting),
        ] {
            assert_ne!(h(&g), h(&base), "{what}");
        }
    }

    /// A tenant's pruning never reaches its Gateway fleets (same tenant
    /// label, pruned by the Gateway controller).
    #[test]
    fn tenant_pruning_selects_only_the_ingress_fleet() {
        assert_eq!(
            tenant_selector("acme"),
            "app.kubernetes.io/managed-by=tenant-gateway,tenantgateway.io/tenant=acme,\
             !gateway.networking.k8s.io/gateway-name"
        );
    }

    /// An API server that accepts connections and never answers: a reconcile
    /// pass gives up after its timeout, naming where it was stuck, instead of
    /// holding the tenant forever.
    #[tokio::test]
    async fn a_hung_api_request_times_out_the_pass_and_names_the_stage() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = std::thread::spawn(move || {
            let conns: Vec<_> = listener.incoming().take(64).collect();
            std::thread::sleep(Duration::from_secs(30));
            drop(conns);
        });
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let (gateways, mut gw_writer) = kube::runtime::reflector::store::<TenantGateway>();
        let (namespaces, mut ns_writer) = kube::runtime::reflector::store::<Namespace>();
        let mut acme = (*gw("acme", 10, "acme")).clone();
        acme.metadata.uid = Some("0d3c6f6e-0000-4000-8000-000000000001".into());
        acme.metadata.generation = Some(1);
        let acme = Arc::new(acme);
        gw_writer.apply_watcher_event(&watcher::Event::Apply((*acme).clone()));
        gw_writer.apply_watcher_event(&watcher::Event::InitDone);
        ns_writer.apply_watcher_event(&watcher::Event::Apply(ns("shop", "acme")));
        ns_writer.apply_watcher_event(&watcher::Event::InitDone);
        let ctx = Arc::new(Context {
            client: client.clone(),
            build: BuildContext::with_defaults(names::OPERATOR_NAMESPACE),
            gateways,
            namespaces,
            nodes: kube::runtime::reflector::store::<Node>().0,
            services: kube::runtime::reflector::store::<Service>().0,
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "test".into(),
                    instance: None,
                },
            ),
            metrics: Arc::new(OperatorMetrics::default()),
            reconcile_timeout: Duration::from_millis(500),
            swept: Swept::default(),
        });
        let started = Instant::now();
        let err = reconcile(acme, ctx).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err.metric_label(), "timeout");
        let msg = err.to_string();
        assert!(
            msg.contains("stuck at: applying ServiceAccount tgw-acme"),
            "{msg}"
        );
    }
}
