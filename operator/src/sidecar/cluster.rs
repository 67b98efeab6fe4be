//! The sidecar's effects against the real world: reflectors on the API
//! server, the ADS server on its Unix socket, Ingress status, Events, metrics.

use super::driver::SidecarEffects;
use super::gateway::{GatewayFleet, StatusWriter};
use super::gateway_status::GatewayApiStatus;
use super::health::HealthState;
use super::machine::TranslationOutcome;
use super::namespaces::{TenantWatch, WatchMode};
use super::status;
use super::SidecarConfig;
use crate::metrics::SidecarMetrics;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;
use xds::ads::{serve_unix, AdsServer, AdsStats, DrainSignal};
use xds::authz::AuthzServer;
use xds::bootstrap::authz_socket_path;
use xds::{Diagnostic, GatewayOptions, ResourceType, Snapshot};

/// Follow one named object in the gateway namespace (RBAC: resourceNames).
pub(crate) fn follow<K>(api: Api<K>, name: &str) -> watch::Receiver<Option<K>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (tx, rx) = watch::channel(None);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let what = format!("{}/{name}", K::kind(&()));
    tokio::spawn(async move {
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    tx.send_replace(Some(o));
                }
                Ok(watcher::Event::Delete(_)) => {
                    tx.send_replace(None);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(object = %what, error = %e, "watch failed; retrying"),
            }
        }
    });
    rx
}

/// The types whose version a publish changes (and that exist before or
/// after it): Envoy must ACK each of them for the change to have converged.
fn changed_types(previous: Option<&Snapshot>, snapshot: &Snapshot) -> Vec<ResourceType> {
    ResourceType::ALL
        .into_iter()
        .filter(|ty| previous.is_none_or(|p| p.version(*ty) != snapshot.version(*ty)))
        .filter(|ty| snapshot.len(*ty) > 0 || previous.is_some_and(|p| p.len(*ty) > 0))
        .collect()
}

/// Wait until Envoy ACKs every type whose version changed, for the
/// convergence histogram and the round's log line: when each type was ACKed,
/// counted from `start`, in the order of `before`; None on timeout.
async fn wait_for_acks(
    stats: AdsStats,
    before: Vec<(ResourceType, u64)>,
    timeout: Duration,
) -> Option<Vec<(ResourceType, Duration)>> {
    let start = Instant::now();
    let mut acked: Vec<Option<Duration>> = vec![None; before.len()];
    while start.elapsed() < timeout {
        for ((ty, acks), at) in before.iter().zip(acked.iter_mut()) {
            if at.is_none() && stats.counters(*ty).acks > *acks {
                *at = Some(start.elapsed());
            }
        }
        if acked.iter().all(Option::is_some) {
            let times = acked.into_iter().flatten();
            return Some(before.iter().map(|(ty, _)| *ty).zip(times).collect());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// The last translation, for the log line and convergence time of its publish.
#[derive(Clone, Copy)]
struct TranslationSummary {
    started: Instant,
    /// From the first change it covers to its start (0 for a change
    /// translated at once; up to the debounce for one that came in a window).
    waited: Duration,
    /// Collecting the watched objects, translating them, encoding the snapshot.
    objects: Duration,
    translate: Duration,
    snapshot: Duration,
    routable_paths: usize,
    diagnostics: usize,
    namespaces: usize,
}

/// The ADS server: not listening until the first snapshot is published.
/// The authorization server (ext_authz checks) starts and stops with it,
/// on its own socket beside the ADS one.
struct AdsLifecycle {
    socket: PathBuf,
    pending: Option<(AdsServer, oneshot::Receiver<()>)>,
    stop: Option<oneshot::Sender<()>>,
    drain: DrainSignal,
    task: Option<JoinHandle<()>>,
    authz: Option<(AuthzServer, oneshot::Receiver<()>)>,
    authz_stop: Option<oneshot::Sender<()>>,
    authz_task: Option<JoinHandle<()>>,
}

impl AdsLifecycle {
    fn new(server: AdsServer, authz: AuthzServer, socket: PathBuf) -> Self {
        let (stop, stopped) = oneshot::channel();
        let (authz_stop, authz_stopped) = oneshot::channel();
        Self {
            socket,
            drain: server.drain_signal(),
            pending: Some((server, stopped)),
            stop: Some(stop),
            task: None,
            authz: Some((authz, authz_stopped)),
            authz_stop: Some(authz_stop),
            authz_task: None,
        }
    }

    fn start_authz(&mut self) {
        let Some((server, stop_rx)) = self.authz.take() else {
            return;
        };
        let socket = authz_socket_path(&self.socket.to_string_lossy());
        self.authz_task = Some(tokio::spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = xds::authz::serve_unix(&socket, server, stopped).await {
                tracing::error!(error = %e, "authorization server failed");
            }
        }));
    }

    fn start(&mut self) {
        let Some((server, stop_rx)) = self.pending.take() else {
            return;
        };
        let socket = self.socket.clone();
        self.task = Some(tokio::spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = serve_unix(&socket, server, stopped).await {
                tracing::error!(error = %e, "ADS server failed");
            }
        }));
        tracing::info!(socket = %self.socket.display(), "serving ADS");
        // Before Envoy can see a route that needs it.
        self.start_authz();
    }

    async fn stop(&mut self) {
        tracing::info!("shutting down: closing ADS streams");
        self.drain.drain();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(stop) = self.authz_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.authz_task.take() {
            let _ = task.await;
        }
    }
}

/// Status the state machine asked for, held until Envoy runs the snapshot it
/// was computed from: a client that trusts `status.loadBalancer` or a
/// Gateway's `Programmed` must not get a 404 (issue 15 item 6). A newer
/// request replaces an older one (each covers every object it names).
#[derive(Default)]
struct PendingStatus {
    snapshot: Option<Arc<Snapshot>>,
    ingresses: Option<Vec<(String, String)>>,
    gateway: Option<GatewayApiStatus>,
}

/// Whether status computed from `pending` may be written while Envoy runs
/// `served`: the same snapshot, or one with the same listeners and routes
/// (an endpoint-only change since, or an identical translation).
pub(crate) fn status_due(pending: &Arc<Snapshot>, served: Option<&Arc<Snapshot>>) -> bool {
    served.is_some_and(|s| {
        Arc::ptr_eq(pending, s)
            || [ResourceType::Listener, ResourceType::Route]
                .into_iter()
                .all(|ty| pending.version(ty) == s.version(ty))
    })
}

/// What the sidecar holds while it runs, and the effects it executes with it.
pub(crate) struct ClusterEffects {
    pub(crate) tenant: TenantWatch,
    /// When the armed debounce runs out, for the shell's `select!`.
    pub(crate) debounce_deadline: Option<tokio::time::Instant>,
    client: Client,
    options: GatewayOptions,
    service: watch::Receiver<Option<Service>>,
    /// The Gateway this fleet serves (None: the tenant's Ingress fleet).
    fleet: Option<GatewayFleet>,
    /// The claimed namespaces' labels (Gateway fleets' claims ConfigMap).
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    recorder: Recorder,
    metrics: Arc<SidecarMetrics>,
    stats: AdsStats,
    configured: Arc<AtomicBool>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    /// What this pod's Envoy runs (its listeners and routes ACKed).
    served: watch::Receiver<Option<Arc<Snapshot>>>,
    /// Status computed from a snapshot Envoy does not run yet.
    pending_status: PendingStatus,
    ads: AdsLifecycle,
    /// The first change not yet translated, for the convergence histogram.
    pending_since: Option<Instant>,
    last_translation: Option<TranslationSummary>,
    /// The Ingress fleet's incremental translation.
    translator: xds::Translator,
}

impl ClusterEffects {
    /// A change came in (the start of the round that will translate it).
    pub(crate) fn note_change(&mut self) {
        self.pending_since.get_or_insert_with(Instant::now);
    }

    /// How long the changes a translation starting at `started` covers have
    /// waited for it (0 when none was noted); the next round starts afresh.
    fn waited_until(&mut self, started: Instant) -> Duration {
        self.pending_since
            .take()
            .map_or(Duration::ZERO, |at| started.saturating_duration_since(at))
    }

    /// Everything but I/O: watches start as claims arrive, ADS after the first snapshot.
    pub(crate) fn new(
        cfg: &SidecarConfig,
        client: Client,
        service: watch::Receiver<Option<Service>>,
        fleet: Option<GatewayFleet>,
        changed: Arc<Notify>,
    ) -> Self {
        let mode = if fleet.is_some() {
            WatchMode::GatewayApi
        } else {
            WatchMode::Ingress
        };
        let (snapshots, snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
        let authz = AuthzServer::new(snapshot_rx.clone());
        let (server, stats) = AdsServer::new(snapshot_rx);
        let served = server.served();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "tenant-gateway-xds".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            tenant: TenantWatch::new(client.clone(), changed, mode),
            debounce_deadline: None,
            client,
            options: cfg.options.clone(),
            service,
            fleet,
            namespace_labels: BTreeMap::new(),
            recorder,
            metrics: Arc::new(SidecarMetrics::new(stats.clone())),
            stats,
            configured: Arc::new(AtomicBool::new(false)),
            snapshots,
            served,
            pending_status: PendingStatus::default(),
            ads: AdsLifecycle::new(server, authz, cfg.socket.clone()),
            pending_since: None,
            last_translation: None,
            translator: xds::Translator::default(),
        }
    }

    /// What the health and metrics endpoints read.
    pub(crate) fn health_state(&self, admin: SocketAddr) -> HealthState {
        let metrics = self.metrics.clone();
        HealthState {
            configured: self.configured.clone(),
            draining: Arc::new(AtomicBool::new(false)),
            admin,
            min_drain: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            metrics: Arc::new(move || metrics.encode()),
        }
    }

    /// Changes when what Envoy runs changes: the shell then calls
    /// [`Self::flush_status`].
    pub(crate) fn served(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.served.clone()
    }

    /// Write the held status if Envoy now runs the snapshot it came from.
    pub(crate) async fn flush_status(&mut self) {
        let Some(snapshot) = self.pending_status.snapshot.clone() else {
            return;
        };
        let served = self.served.borrow().clone();
        if !status_due(&snapshot, served.as_ref()) {
            tracing::debug!("status held until Envoy ACKs the snapshot it describes");
            return;
        }
        let pending = std::mem::take(&mut self.pending_status);
        if let Some(ingresses) = pending.ingresses {
            self.patch_ingress_status(&ingresses).await;
        }
        if let Some(status) = pending.gateway {
            self.patch_gateway_status(&status).await;
        }
    }

    /// Hold status for the snapshot ADS holds now (the one just published,
    /// or an identical one kept) until Envoy runs it.
    fn hold_status(&mut self) -> &mut PendingStatus {
        self.pending_status.snapshot = Some(self.snapshots.borrow().clone());
        &mut self.pending_status
    }

    /// status.loadBalancer of every Ingress we serve, once the Service has an address.
    async fn patch_ingress_status(&mut self, ingresses: &[(String, String)]) {
        let addresses = self
            .service
            .borrow()
            .as_ref()
            .map(status::published_addresses);
        let Some(addresses) = addresses.filter(|a| !a.is_empty()) else {
            return;
        };
        for (ns, name) in ingresses {
            let Some(ing) = self.tenant.ingress(ns, name) else {
                continue;
            };
            let Some(patch) = status::status_patch(&ing, &addresses) else {
                continue;
            };
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), ns);
            if let Err(e) = api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(ingress = %format!("{ns}/{name}"), error = %e, "could not write Ingress status");
            }
        }
    }

    async fn patch_gateway_status(&mut self, status: &GatewayApiStatus) {
        let Some(fleet) = &self.fleet else {
            return;
        };
        let service = self.service.borrow().clone();
        let writer = StatusWriter {
            client: &self.client,
            fleet,
            controller: xds::CONTROLLER_NAME,
        };
        writer.write(status, &self.tenant, service.as_ref()).await;
    }

    /// Keep the claimed-namespaces gauge in step with the claims ConfigMap.
    pub(crate) fn record_claims(&self, claims: &BTreeSet<String>) {
        self.metrics.claimed_namespaces.set(claims.len() as i64);
    }

    /// The claimed namespaces' labels, for a Gateway's `allowedRoutes` selectors.
    pub(crate) fn record_namespace_labels(
        &mut self,
        labels: BTreeMap<String, BTreeMap<String, String>>,
    ) {
        self.namespace_labels = labels;
    }
}

impl ClusterEffects {
    /// A Gateway fleet's translation: the served Gateway and the tenant's
    /// routes. Until the Gateway is seen, an empty configuration.
    fn translate_gateway(&mut self, namespaces: &BTreeSet<String>) -> TranslationOutcome {
        let started = Instant::now();
        let gateway = self.fleet.as_ref().and_then(|f| f.gateway.borrow().clone());
        let Some(gateway) = gateway else {
            return TranslationOutcome {
                snapshot: Arc::new(Snapshot::default()),
                diagnostics: BTreeSet::new(),
                served_ingresses: Vec::new(),
                gateway_api: None,
            };
        };
        let core = self.tenant.objects(namespaces);
        let routes = self.tenant.gateway_api_routes(namespaces);
        let collected = Instant::now();
        let objects = xds::GatewayApiObjects {
            gateway,
            http_routes: routes.http_routes,
            grpc_routes: routes.grpc_routes,
            tls_routes: routes.tls_routes,
            tcp_routes: routes.tcp_routes,
            udp_routes: routes.udp_routes,
            reference_grants: routes.reference_grants,
            services: core.services,
            endpoint_slices: core.endpoint_slices,
            secrets: core.secrets,
            namespaces: namespaces
                .iter()
                .map(|ns| {
                    let labels = self.namespace_labels.get(ns).cloned().unwrap_or_default();
                    (ns.clone(), labels)
                })
                .collect(),
        };
        let options = xds::GatewayApiOptions {
            bind_address: self.options.bind_address.clone(),
            tenant: self.options.tenant.clone(),
            reserved_ports: crate::build::names::RESERVED_POD_PORTS.to_vec(),
            access_log: self.options.access_log.clone(),
            client_address: self.options.client_address.clone(),
        };
        let t = xds::translate_gateway(&objects, &options);
        let translated = Instant::now();
        self.metrics
            .translation_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.diagnostics.set(t.diagnostics.len() as i64);
        let status = super::gateway::wanted_status(&t);
        let snapshot = Arc::new(Snapshot::from(&t.resources));
        self.last_translation = Some(TranslationSummary {
            started,
            waited: self.waited_until(started),
            objects: collected - started,
            translate: translated - collected,
            snapshot: translated.elapsed(),
            routable_paths: t.routes.len(),
            diagnostics: t.diagnostics.len(),
            namespaces: namespaces.len(),
        });
        TranslationOutcome {
            snapshot,
            diagnostics: t.diagnostics.into_iter().collect(),
            served_ingresses: Vec::new(),
            gateway_api: Some(Arc::new(status)),
        }
    }
}

impl SidecarEffects for ClusterEffects {
    fn start_watch(&mut self, namespace: &str) {
        self.tenant.start(namespace);
    }

    fn stop_watch(&mut self, namespace: &str) {
        self.tenant.stop(namespace);
    }

    fn arm_debounce(&mut self, after: Duration) {
        self.debounce_deadline = Some(tokio::time::Instant::now() + after);
    }

    fn translate(&mut self, namespaces: &BTreeSet<String>) -> TranslationOutcome {
        if self.fleet.is_some() {
            return self.translate_gateway(namespaces);
        }
        let started = Instant::now();
        let objects = self.tenant.objects(namespaces);
        let collected = Instant::now();
        let mut options = self.options.clone();
        options.namespaces = Some(namespaces.clone());
        // Lowering and encoding in one: the route tables of unchanged hosts
        // are reused (see `xds::Translator`), so `snapshot_ms` is 0 here.
        let t = self.translator.translate(&objects, &options);
        let translated = Instant::now();
        self.metrics
            .translation_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.diagnostics.set(t.diagnostics.len() as i64);
        let snapshot = Arc::new(t.snapshot);
        self.last_translation = Some(TranslationSummary {
            started,
            waited: self.waited_until(started),
            objects: collected - started,
            translate: translated - collected,
            snapshot: translated.elapsed(),
            routable_paths: t.routable_paths,
            diagnostics: t.diagnostics.len(),
            namespaces: namespaces.len(),
        });
        TranslationOutcome {
            snapshot,
            diagnostics: t.diagnostics.into_iter().collect(),
            served_ingresses: t.served_ingresses,
            gateway_api: None,
        }
    }

    fn publish(&mut self, snapshot: Arc<Snapshot>, previous: Option<Arc<Snapshot>>) {
        let awaited: Vec<(ResourceType, u64)> = changed_types(previous.as_deref(), &snapshot)
            .into_iter()
            .map(|ty| (ty, self.stats.counters(ty).acks))
            .collect();
        self.snapshots.send_replace(snapshot);
        self.configured.store(true, Ordering::SeqCst);
        self.metrics.translations.inc();
        let Some(summary) = self.last_translation else {
            return;
        };
        tracing::info!(
            routable_paths = summary.routable_paths,
            diagnostics = summary.diagnostics,
            namespaces = summary.namespaces,
            "pushed new configuration"
        );
        let (stats, hist) = (self.stats.clone(), self.metrics.convergence_seconds.clone());
        let waited_before_translating = summary.waited;
        let published = Instant::now();
        let before_publish = published.duration_since(summary.started);
        tokio::spawn(async move {
            let Some(acked) = wait_for_acks(stats, awaited, Duration::from_secs(30)).await else {
                return;
            };
            let last = acked.iter().map(|(_, d)| *d).max().unwrap_or_default();
            let total = waited_before_translating + before_publish + last;
            hist.observe(total.as_secs_f64());
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let acked_ms = |ty: ResourceType| {
                acked
                    .iter()
                    .find(|(t, _)| *t == ty)
                    .map_or(-1.0, |(_, d)| ms(*d))
            };
            // Where a round's time goes (docs/benchmarks.md): waiting for the
            // debounce, collecting, translating, encoding, then each changed
            // type's ACK counted from the publish (-1: unchanged).
            tracing::info!(
                waited_ms = ms(waited_before_translating),
                objects_ms = ms(summary.objects),
                translate_ms = ms(summary.translate),
                snapshot_ms = ms(summary.snapshot),
                publish_ms = ms(before_publish
                    .saturating_sub(summary.objects + summary.translate + summary.snapshot)),
                cluster_ack_ms = acked_ms(ResourceType::Cluster),
                endpoint_ack_ms = acked_ms(ResourceType::Endpoint),
                listener_ack_ms = acked_ms(ResourceType::Listener),
                route_ack_ms = acked_ms(ResourceType::Route),
                total_ms = ms(total),
                routable_paths = summary.routable_paths,
                "configuration converged"
            );
        });
    }

    fn start_ads(&mut self) {
        self.ads.start();
    }

    /// Report a new problem as a log line and an Event on its Ingress.
    async fn emit_event(&mut self, d: &Diagnostic) {
        tracing::warn!(object = %d.object, field = %d.field, "{}", d.message);
        let Some(ing) = self.tenant.ingress(&d.object.namespace, &d.object.name) else {
            return;
        };
        let ev = Event {
            type_: EventType::Warning,
            reason: "InvalidIngress".into(),
            note: Some(
                format!("{}: {}", d.field, d.message)
                    .chars()
                    .take(1000)
                    .collect(),
            ),
            action: "Translate".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &ing.object_ref(&())).await {
            tracing::debug!(error = %e, "could not publish Event");
        }
    }

    /// Held until Envoy runs the snapshot that serves them ([`PendingStatus`]).
    async fn write_status(&mut self, ingresses: &[(String, String)]) {
        self.hold_status().ingresses = Some(ingresses.to_vec());
        self.flush_status().await;
    }

    async fn write_gateway_status(&mut self, status: &GatewayApiStatus) {
        if self.fleet.is_none() {
            return;
        }
        self.hold_status().gateway = Some(status.clone());
        self.flush_status().await;
    }

    async fn stop(&mut self) {
        self.ads.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn snapshot(parts: &[(ResourceType, &str, &[u8])]) -> Arc<Snapshot> {
        let mut s = Snapshot::default();
        for (ty, name, bytes) in parts {
            s.insert(
                *ty,
                *name,
                Any {
                    type_url: "t".into(),
                    value: bytes.to_vec(),
                },
            );
        }
        Arc::new(s)
    }

    #[test]
    fn status_waits_for_the_listeners_and_routes_it_describes() {
        use ResourceType::*;
        let s1 = snapshot(&[
            (Listener, "http", b"l"),
            (Route, "r", b"r1"),
            (Endpoint, "e", b"1"),
        ]);
        assert!(!status_due(&s1, None), "no Envoy runs anything yet");
        assert!(status_due(&s1, Some(&s1)));
        // An identical translation published again: the same content.
        let s1_again = snapshot(&[
            (Listener, "http", b"l"),
            (Route, "r", b"r1"),
            (Endpoint, "e", b"1"),
        ]);
        assert!(status_due(&s1_again, Some(&s1)));
        // Endpoints moved on since: what the status describes is still run.
        let s1_endpoints = snapshot(&[
            (Listener, "http", b"l"),
            (Route, "r", b"r1"),
            (Endpoint, "e", b"2"),
        ]);
        assert!(status_due(&s1, Some(&s1_endpoints)));
        // New routes (a new Ingress) are not run while Envoy has the old ones.
        let s2 = snapshot(&[
            (Listener, "http", b"l"),
            (Route, "r", b"r2"),
            (Endpoint, "e", b"1"),
        ]);
        assert!(!status_due(&s2, Some(&s1)));
        let s3 = snapshot(&[
            (Listener, "https", b"l"),
            (Route, "r", b"r1"),
            (Endpoint, "e", b"1"),
        ]);
        assert!(!status_due(&s3, Some(&s1)), "a new listener too");
    }
}
