//! The project's ADS server on a Unix socket, fed snapshots by the test.

use crate::wait::wait_until;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use xds::ads::{serve_unix, AdsServer, AdsStats};
use xds::Snapshot;

/// An ADS server on a Unix socket in a temporary directory, fed by `snapshots`.
pub struct AdsFixture {
    pub snapshots: watch::Sender<Arc<Snapshot>>,
    pub stats: AdsStats,
    /// What Envoy runs ([`AdsServer::served`]).
    pub served: watch::Receiver<Option<Arc<Snapshot>>>,
    pub socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl AdsFixture {
    pub async fn start(initial: Snapshot) -> Self {
        // RUST_LOG=xds=debug shows the server's side of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("ads.sock");
        let (tx, rx) = watch::channel(Arc::new(initial));
        let (server, stats) = AdsServer::new(rx);
        let served = server.served();
        let (stop, stopped) = oneshot::channel::<()>();
        let path = socket.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = serve_unix(&path, server, shutdown).await {
                panic!("ADS server failed: {e}");
            }
        });
        assert!(
            wait_until(Duration::from_secs(5), || async { socket.exists() }).await,
            "ADS socket did not appear"
        );
        Self {
            snapshots: tx,
            stats,
            served,
            socket,
            shutdown: Some(stop),
            _dir: dir,
        }
    }

    pub fn push(&self, snapshot: Snapshot) {
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    /// Waits until every type Envoy subscribed to has no response in flight and
    /// the server's counters stop moving.
    pub async fn settle(&self) {
        let mut last = self.stats.snapshot();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.stats.snapshot();
            let in_flight = now.types.values().any(|c| c.pushes > c.acks + c.nacks);
            if now == last && !in_flight {
                return;
            }
            last = now;
        }
    }
}

impl Drop for AdsFixture {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}
