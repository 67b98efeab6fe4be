//! The ADS server (state of the world): serves the latest [`Snapshot`] from a
//! `watch` channel to every connected Envoy. Knows nothing of Kubernetes.

mod refs;
mod stats;
mod stream;

pub use refs::{eds_name, rds_names, References};
pub use stats::{AdsStats, AdsStatsSnapshot, NackReport, TypeCounters};
pub use stream::{version_of, Step, StreamEvent, StreamState};

use crate::snapshot::Snapshot;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

/// How long listeners and routes may wait for Envoy to subscribe to the
/// endpoints of clusters it accepted before they are pushed anyway.
const EDS_SUBSCRIPTION_WAIT: Duration = Duration::from_secs(5);

/// Permissions of the ADS socket: owner and group (Envoy and the sidecar share
/// the pod's fsGroup), nobody else.
pub const SOCKET_MODE: u32 = 0o660;

#[derive(Debug, thiserror::Error)]
pub enum AdsError {
    #[error("{path}: refusing to replace a file that is not a socket")]
    NotASocket { path: PathBuf },
    #[error("{path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binding the ADS listener: {0}")]
    Bind(#[source] std::io::Error),
    #[error("serving ADS: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Ends every open ADS stream; used on shutdown so that graceful server
/// shutdown does not wait forever on long-lived streams.
#[derive(Clone, Debug)]
pub struct DrainSignal(Arc<watch::Sender<bool>>);

impl DrainSignal {
    pub fn drain(&self) {
        self.0.send_replace(true);
    }
}

/// The ADS gRPC service.
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stats: AdsStats,
    drain: Arc<watch::Sender<bool>>,
    served: Arc<watch::Sender<Option<Arc<Snapshot>>>>,
}

impl AdsServer {
    /// A server that serves whatever `snapshots` holds, and the handle on its counters.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>) -> (Self, AdsStats) {
        let stats = AdsStats::default();
        let (drain, _) = watch::channel(false);
        let (served, _) = watch::channel(None);
        let server = Self {
            snapshots,
            stats: stats.clone(),
            drain: Arc::new(drain),
            served: Arc::new(served),
        };
        (server, stats)
    }

    /// The latest snapshot an Envoy on some stream of this server runs: its
    /// listeners and routes ACKed ([`StreamState::serves`]). A status that
    /// says an object is served is true once this holds the snapshot it was
    /// computed from (or one with the same listeners and routes).
    pub fn served(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.served.subscribe()
    }

    pub fn drain_signal(&self) -> DrainSignal {
        DrainSignal(self.drain.clone())
    }

    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponseStream =
    Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaResponseStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let driver = StreamDriver {
            inbound: request.into_inner(),
            outbound: tx,
            snapshots: self.snapshots.clone(),
            drain: self.drain.subscribe(),
            stats: self.stats.clone(),
            served: self.served.clone(),
            node: String::new(),
        };
        tokio::spawn(driver.run().instrument(tracing::info_span!("ads_stream")));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaResponseStream>, Status> {
        Err(Status::unimplemented(
            "incremental xDS is not served; use state-of-the-world ADS",
        ))
    }
}

/// Counts a stream as active for as long as it lives.
struct ActiveStream(AdsStats);

impl ActiveStream {
    fn new(stats: AdsStats) -> Self {
        stats.update(|s| {
            s.active_streams += 1;
            s.total_streams += 1;
        });
        Self(stats)
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0
            .update(|s| s.active_streams = s.active_streams.saturating_sub(1));
    }
}

/// Runs one ADS stream: feeds requests, snapshots and timer expiries to a
/// [`StreamState`] and sends what it answers.
struct StreamDriver {
    inbound: Streaming<DiscoveryRequest>,
    outbound: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    drain: watch::Receiver<bool>,
    stats: AdsStats,
    served: Arc<watch::Sender<Option<Arc<Snapshot>>>>,
    node: String,
}

impl StreamDriver {
    async fn run(mut self) {
        let _active = ActiveStream::new(self.stats.clone());
        let mut state = StreamState::new();
        let mut snap = self.snapshots.borrow_and_update().clone();
        let mut watching = true;
        let mut eds_wait: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            let step = tokio::select! {
                biased;
                _ = self.drain.wait_for(|d| *d) => {
                    tracing::debug!(node = %self.node, "draining ADS stream");
                    return;
                }
                msg = self.inbound.message() => match msg {
                    Ok(Some(req)) => {
                        if self.node.is_empty() {
                            if let Some(n) = &req.node {
                                self.node = n.id.clone();
                                tracing::info!(node = %self.node, "Envoy connected");
                            }
                        }
                        state.on_request(&req, &snap)
                    }
                    Ok(None) => {
                        tracing::info!(node = %self.node, "Envoy closed the ADS stream");
                        return;
                    }
                    Err(status) => {
                        tracing::info!(node = %self.node, %status, "ADS stream broke");
                        return;
                    }
                },
                changed = self.snapshots.changed(), if watching => match changed {
                    Ok(()) => {
                        // Only the latest snapshot is seen: bursts coalesce.
                        snap = self.snapshots.borrow_and_update().clone();
                        state.on_snapshot(&snap)
                    }
                    Err(_) => {
                        tracing::warn!("snapshot source is gone; serving the last snapshot");
                        watching = false;
                        continue;
                    }
                },
                _ = async { if let Some(t) = eds_wait.as_mut() { t.await } }, if eds_wait.is_some() => {
                    tracing::warn!(node = %self.node, "Envoy did not subscribe to endpoints of accepted clusters; pushing listeners and routes anyway");
                    eds_wait = None;
                    state.override_eds_gate();
                    state.on_snapshot(&snap)
                }
            };
            self.record(&step.events);
            for resp in step.responses {
                if self.outbound.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
            if state.serves(&snap) {
                self.served.send_if_modified(|current| {
                    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &snap)) {
                        return false;
                    }
                    *current = Some(snap.clone());
                    true
                });
            }
            if !state.waiting_for_eds_subscription() {
                eds_wait = None;
            } else if eds_wait.is_none() {
                eds_wait = Some(Box::pin(tokio::time::sleep(EDS_SUBSCRIPTION_WAIT)));
            }
        }
    }

    fn record(&self, events: &[StreamEvent]) {
        for e in events {
            match e {
                StreamEvent::Push {
                    ty,
                    version,
                    resources,
                } => {
                    tracing::debug!(node = %self.node, ?ty, %version, resources, "push");
                    self.stats.count(*ty, |c| c.pushes += 1);
                }
                StreamEvent::Ack { ty, version } => {
                    tracing::debug!(node = %self.node, ?ty, %version, "ACK");
                    self.stats.count(*ty, |c| c.acks += 1);
                }
                StreamEvent::Nack {
                    ty,
                    rejected_version,
                    kept_version,
                    message,
                } => {
                    tracing::warn!(
                        node = %self.node, ?ty, %rejected_version, %kept_version, %message,
                        "Envoy rejected configuration (NACK); it keeps the last good one"
                    );
                    self.stats.update(|s| {
                        s.types.entry(*ty).or_default().nacks += 1;
                        s.last_nack = Some(NackReport {
                            ty: *ty,
                            node: self.node.clone(),
                            rejected_version: rejected_version.clone(),
                            kept_version: kept_version.clone(),
                            message: message.clone(),
                        });
                    });
                }
            }
        }
    }
}

/// Removes a stale socket left by a previous run; refuses to touch anything else.
fn remove_stale_socket(path: &Path) -> Result<(), AdsError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| AdsError::Socket {
                path: path.to_owned(),
                source,
            })
        }
        Ok(_) => Err(AdsError::NotASocket {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AdsError::Socket {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Serves ADS on a Unix domain socket at `path` (mode [`SOCKET_MODE`]) until
/// `shutdown` completes; then ends open streams and removes the socket.
pub async fn serve_unix(
    path: impl AsRef<Path>,
    server: AdsServer,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AdsError> {
    let path = path.as_ref();
    remove_stale_socket(path)?;
    let socket_err = |source| AdsError::Socket {
        path: path.to_owned(),
        source,
    };
    let listener = tokio::net::UnixListener::bind(path).map_err(socket_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(socket_err)?;
    tracing::info!(path = %path.display(), "serving ADS on a Unix socket");
    let drain = server.drain_signal();
    let result = tonic::transport::Server::builder()
        .add_service(server.into_service())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            shutdown.await;
            drain.drain();
        })
        .await;
    // Best effort: a leftover socket is removed by the next start anyway.
    let _ = std::fs::remove_file(path);
    result.map_err(AdsError::from)
}

/// Serves ADS on an already bound TCP listener (tests, local debugging).
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    server: AdsServer,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AdsError> {
    let drain = server.drain_signal();
    tonic::transport::Server::builder()
        .add_service(server.into_service())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            drain.drain();
        })
        .await
        .map_err(AdsError::from)
}
