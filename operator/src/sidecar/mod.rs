//! `tenant-gateway xds`: the per-pod xDS sidecar. Runs as the tenant's
//! ServiceAccount, learns its claimed namespaces from the claims ConfigMap the
//! operator writes, watches only those namespaces, translates, and serves ADS
//! to its Envoy over a Unix socket. It keeps serving the last good config
//! while the API server is unreachable.

pub mod health;
mod namespaces;
pub mod status;

use crate::build::names;
use crate::metrics::SidecarMetrics;
use futures::StreamExt;
use health::HealthState;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use namespaces::TenantWatch;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use xds::ads::{serve_unix, AdsServer, AdsStats};
use xds::{translate, Diagnostic, GatewayOptions, ResourceType, Snapshot};

#[derive(Debug, Clone)]
pub struct SidecarConfig {
    pub tenant: String,
    pub gateway_namespace: String,
    pub claims_configmap: String,
    pub service: String,
    pub socket: PathBuf,
    pub options: GatewayOptions,
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Coalesce bursts of changes for this long before translating.
    pub debounce: Duration,
}

pub fn parse_claims(cm: &ConfigMap) -> BTreeSet<String> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(names::CLAIMS_KEY))
        .map(|v| names::parse_claims_data(v))
        .unwrap_or_default()
}

/// Follow one named object in the gateway namespace (RBAC: resourceNames).
fn follow<K>(api: Api<K>, name: &str) -> watch::Receiver<Option<K>>
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

/// Wait until Envoy ACKs every type whose version changed, for the convergence histogram.
async fn wait_for_acks(
    stats: AdsStats,
    before: Vec<(ResourceType, u64)>,
    timeout: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if before
            .iter()
            .all(|(ty, acks)| stats.counters(*ty).acks > *acks)
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

pub async fn run(
    cfg: SidecarConfig,
    client: Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let (server, stats) = AdsServer::new(snap_rx);
    let drain = server.drain_signal();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // ADS is served only once the first complete snapshot exists: a restarted
    // sidecar must never answer a reconnecting Envoy with an empty config.
    let mut pending_server = Some((server, stop_rx));
    let mut ads: Option<tokio::task::JoinHandle<()>> = None;

    let metrics = Arc::new(SidecarMetrics::new(stats.clone()));
    let configured = Arc::new(AtomicBool::new(false));
    let m = metrics.clone();
    let health = HealthState {
        configured: configured.clone(),
        draining: Arc::new(AtomicBool::new(false)),
        admin: cfg.admin_addr,
        min_drain: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(30),
        metrics: Arc::new(move || m.encode()),
    };
    let listener = tokio::net::TcpListener::bind(cfg.health_addr).await?;
    tokio::spawn(health::serve(listener, health.clone()));
    if cfg.metrics_addr != cfg.health_addr {
        let listener = tokio::net::TcpListener::bind(cfg.metrics_addr).await?;
        tokio::spawn(health::serve(listener, health.clone()));
    }
    tracing::info!(tenant = %cfg.tenant, socket = %cfg.socket.display(), health = %cfg.health_addr, "xds sidecar started");

    let ns_api: Api<ConfigMap> = Api::namespaced(client.clone(), &cfg.gateway_namespace);
    let mut claims = follow(ns_api, &cfg.claims_configmap);
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &cfg.gateway_namespace);
    let mut service = follow(svc_api, &cfg.service);

    let changed = Arc::new(Notify::new());
    let mut tenant = TenantWatch::new(client.clone(), changed.clone());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "tenant-gateway-xds".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let mut reported: BTreeSet<Diagnostic> = BTreeSet::new();
    let mut last: Option<Arc<Snapshot>> = None;
    let mut claims_known = false;
    tokio::pin!(shutdown);

    loop {
        let seen = tokio::select! {
            _ = &mut shutdown => break,
            r = claims.changed() => {
                if r.is_err() { break; }
                let set = claims.borrow_and_update().as_ref().map(parse_claims);
                match set {
                    Some(set) => {
                        claims_known = true;
                        metrics.claimed_namespaces.set(set.len() as i64);
                        tenant.set_namespaces(&set);
                    }
                    // No claims ConfigMap (yet, or deleted): keep the last config.
                    None => tracing::warn!(configmap = %cfg.claims_configmap, "claims ConfigMap missing; keeping the last configuration"),
                }
                Instant::now()
            }
            r = service.changed() => {
                if r.is_err() { break; }
                Instant::now()
            }
            _ = changed.notified() => Instant::now(),
        };
        // Coalesce a burst of watch events into one translation.
        tokio::time::sleep(cfg.debounce).await;
        if !claims_known || tenant.synced_namespaces() != tenant.watched_namespaces() {
            continue;
        }

        let started = Instant::now();
        let objects = tenant.objects();
        let mut options = cfg.options.clone();
        options.namespaces = Some(tenant.synced_namespaces());
        let t = translate(&objects, &options);
        metrics
            .translation_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.diagnostics.set(t.diagnostics.len() as i64);
        let snap = Arc::new(Snapshot::from(&t.resources));
        if last.as_deref() != Some(&snap) {
            let changed_types: Vec<(ResourceType, u64)> = ResourceType::ALL
                .into_iter()
                .filter(|ty| {
                    last.as_ref()
                        .is_none_or(|l| l.version(*ty) != snap.version(*ty))
                })
                .filter(|ty| snap.len(*ty) > 0 || last.as_ref().is_some_and(|l| l.len(*ty) > 0))
                .map(|ty| (ty, stats.counters(ty).acks))
                .collect();
            snap_tx.send_replace(snap.clone());
            last = Some(snap);
            if let Some((server, stop_rx)) = pending_server.take() {
                let socket = cfg.socket.clone();
                ads = Some(tokio::spawn(async move {
                    let stopped = async {
                        let _ = stop_rx.await;
                    };
                    if let Err(e) = serve_unix(&socket, server, stopped).await {
                        tracing::error!(error = %e, "ADS server failed");
                    }
                }));
                tracing::info!(socket = %cfg.socket.display(), "serving ADS");
            }
            configured.store(true, Ordering::SeqCst);
            metrics.translations.inc();
            tracing::info!(
                routable_paths = t.routable_paths,
                diagnostics = t.diagnostics.len(),
                namespaces = tenant.synced_namespaces().len(),
                "pushed new configuration"
            );
            let (stats, hist) = (stats.clone(), metrics.convergence_seconds.clone());
            tokio::spawn(async move {
                if let Some(d) = wait_for_acks(stats, changed_types, Duration::from_secs(30)).await
                {
                    hist.observe((d + started.duration_since(seen)).as_secs_f64());
                }
            });
        }

        // Report each new problem once, as a log line and an Event on its Ingress.
        let current: BTreeSet<Diagnostic> = t.diagnostics.iter().cloned().collect();
        for d in current.difference(&reported) {
            tracing::warn!(object = %d.object, field = %d.field, "{}", d.message);
            if let Some(ing) = tenant.ingress(&d.object.namespace, &d.object.name) {
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
                if let Err(e) = recorder.publish(&ev, &ing.object_ref(&())).await {
                    tracing::debug!(error = %e, "could not publish Event");
                }
            }
        }
        reported = current;

        // status.loadBalancer of every Ingress we serve.
        let addresses = service.borrow().as_ref().map(status::published_addresses);
        if let Some(addresses) = addresses.filter(|a| !a.is_empty()) {
            for (ns, name) in &t.served_ingresses {
                let Some(ing) = tenant.ingress(ns, name) else {
                    continue;
                };
                if let Some(patch) = status::status_patch(&ing, &addresses) {
                    let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
                    if let Err(e) = api
                        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::warn!(ingress = %format!("{ns}/{name}"), error = %e, "could not write Ingress status");
                    }
                }
            }
        }
    }
    tracing::info!("shutting down: closing ADS streams");
    drain.drain();
    let _ = stop_tx.send(());
    if let Some(ads) = ads {
        let _ = ads.await;
    }
    Ok(())
}
