//! `tenant-gateway xds`: the per-pod xDS sidecar. Runs as the tenant's
//! ServiceAccount, learns its claimed namespaces from the claims ConfigMap the
//! operator writes, watches only those namespaces, translates, and serves ADS
//! to its Envoy over a Unix socket. It keeps serving the last good config
//! while the API server is unreachable.

mod cluster;
mod driver;
mod gateway;
pub mod gateway_status;
pub mod health;
mod machine;
mod namespaces;
pub mod status;

/// One route-status write path for the fleets and the operator.
pub(crate) use gateway::replace_route_parents;

use crate::build::names;
use cluster::{follow, ClusterEffects};
use driver::feed;
use gateway::GatewayFleet;
use gwapi::gateways::Gateway;
use health::HealthState;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::{Api, Client};
use machine::{Input, SidecarState};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use xds::GatewayOptions;

#[derive(Debug, Clone)]
pub struct SidecarConfig {
    pub tenant: String,
    /// The Gateway (in `gateway_namespace`) this fleet serves; None for the
    /// tenant's Ingress fleet.
    pub gateway: Option<String>,
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

/// Serve /healthz, /ready, /drain and /metrics (on one port, or two).
async fn serve_health(cfg: &SidecarConfig, health: HealthState) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.health_addr).await?;
    tokio::spawn(health::serve(listener, health.clone()));
    if cfg.metrics_addr != cfg.health_addr {
        let listener = tokio::net::TcpListener::bind(cfg.metrics_addr).await?;
        tokio::spawn(health::serve(listener, health));
    }
    Ok(())
}

/// Resolves when the served Gateway changes; never for an Ingress fleet.
async fn gateway_changed(
    gateway: Option<&mut tokio::sync::watch::Receiver<Option<Gateway>>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match gateway {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

/// The claims ConfigMap as the state machine's input.
fn claims_input(cfg: &SidecarConfig, world: &mut ClusterEffects, cm: Option<&ConfigMap>) -> Input {
    if let Some(cm) = cm {
        let labels = cm
            .data
            .as_ref()
            .and_then(|d| d.get(names::NAMESPACE_LABELS_KEY));
        world.record_namespace_labels(
            labels
                .map(|v| names::parse_namespace_labels(v))
                .unwrap_or_default(),
        );
    }
    let claims = cm.map(parse_claims);
    match &claims {
        Some(set) => world.record_claims(set),
        None => {
            tracing::warn!(configmap = %cfg.claims_configmap, "claims ConfigMap missing; keeping the last configuration")
        }
    }
    Input::ClaimsChanged(claims)
}

/// Waits for the armed debounce, or forever when none is armed.
async fn debounce_elapsed(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The async shell: turns what happens into inputs and executes the
/// effects `SidecarState` decides on, until shutdown.
pub async fn run(
    cfg: SidecarConfig,
    client: Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &cfg.gateway_namespace);
    let mut service = follow(svc_api, &cfg.service);
    let fleet = cfg.gateway.as_ref().map(|name| GatewayFleet {
        name: name.clone(),
        namespace: cfg.gateway_namespace.clone(),
        gateway: follow(
            Api::<Gateway>::namespaced(client.clone(), &cfg.gateway_namespace),
            name,
        ),
    });
    let mut gateway = fleet.as_ref().map(|f| f.gateway.clone());
    let mut world = ClusterEffects::new(
        &cfg,
        client.clone(),
        service.clone(),
        fleet,
        changed.clone(),
    );
    serve_health(&cfg, world.health_state(cfg.admin_addr)).await?;
    tracing::info!(tenant = %cfg.tenant, socket = %cfg.socket.display(), health = %cfg.health_addr, "xds sidecar started");

    let ns_api: Api<ConfigMap> = Api::namespaced(client, &cfg.gateway_namespace);
    let mut claims = follow(ns_api, &cfg.claims_configmap);
    let mut state = SidecarState::new(cfg.debounce);
    tokio::pin!(shutdown);

    let mut served = world.served();
    let mut ads_alive = true;
    while !state.is_stopped() {
        let input = tokio::select! {
            _ = &mut shutdown => Input::Shutdown,
            // Envoy runs a new snapshot: status held for it may go out. Not
            // an input: what is served changes no decision of the machine.
            r = served.changed(), if ads_alive => {
                match r {
                    Ok(()) => world.flush_status().await,
                    Err(_) => ads_alive = false,
                }
                continue;
            }
            r = claims.changed() => match r {
                Ok(()) => claims_input(&cfg, &mut world, claims.borrow_and_update().as_ref()),
                Err(_) => Input::Shutdown,
            },
            r = service.changed() => match r {
                Ok(()) => Input::ObjectsChanged,
                Err(_) => Input::Shutdown,
            },
            r = gateway_changed(gateway.as_mut()) => match r {
                Ok(()) => Input::ObjectsChanged,
                Err(_) => Input::Shutdown,
            },
            _ = changed.notified() => Input::ObjectsChanged,
            _ = debounce_elapsed(world.debounce_deadline) => {
                world.debounce_deadline = None;
                Input::DebounceElapsed
            }
        };
        // Sync state is read from the reflectors on every wake-up, so the
        // check at the end of a debounce sees every namespace listed by then.
        if matches!(input, Input::ObjectsChanged | Input::ClaimsChanged(_)) {
            world.note_change();
        }
        for ns in world.tenant.synced_namespaces() {
            feed(&mut state, &mut world, Input::NamespaceSynced(ns)).await;
        }
        feed(&mut state, &mut world, input).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing listens on port 1 of loopback: every watch fails and retries.
    fn unreachable_api_server() -> Client {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("valid URI"));
        Client::try_from(config).expect("client for an http URI")
    }

    /// Compiles only while `run` is a `Send + 'static` future, so whatever
    /// starts the runtime may spawn it as well as block on it.
    #[allow(dead_code)]
    fn run_can_be_spawned(cfg: SidecarConfig, client: Client) {
        drop(tokio::spawn(run(cfg, client, std::future::ready(()))));
    }

    #[tokio::test]
    async fn without_claims_ads_never_listens_and_shutdown_ends_the_loop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("xds.sock");
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
        let cfg = SidecarConfig {
            tenant: "acme".into(),
            gateway: None,
            gateway_namespace: "tgw-system".into(),
            claims_configmap: "tgw-acme-claims".into(),
            service: "tgw-acme".into(),
            socket: socket.clone(),
            options: GatewayOptions::default(),
            health_addr: any_port,
            metrics_addr: any_port,
            admin_addr: any_port,
            debounce: Duration::from_millis(5),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        // Look for the socket while the sidecar runs: it is removed on shutdown.
        let authz = dir.path().join("authz.sock");
        let listened_before_shutdown = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let listened = socket.exists() || authz.exists();
            let _ = stop.send(());
            listened
        };
        let sidecar = tokio::time::timeout(
            Duration::from_secs(10),
            run(cfg, unreachable_api_server(), shutdown),
        );
        let (ran, listened) = tokio::join!(sidecar, listened_before_shutdown);
        assert!(matches!(ran, Ok(Ok(()))), "run ends on shutdown: {ran:?}");
        assert!(
            !listened,
            "no ADS (nor authz) socket without a complete snapshot"
        );
    }
}
