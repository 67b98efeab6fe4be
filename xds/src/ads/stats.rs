//! Counters shared by every ADS stream of one server.

use crate::snapshot::ResourceType;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Per-type counters, summed over all streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeCounters {
    /// Responses sent.
    pub pushes: u64,
    pub acks: u64,
    pub nacks: u64,
}

/// The most recent configuration Envoy rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NackReport {
    pub ty: ResourceType,
    /// Node id of the Envoy that rejected it.
    pub node: String,
    /// Version of the rejected response.
    pub rejected_version: String,
    /// Version Envoy kept running.
    pub kept_version: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
}

/// A point-in-time copy of [`AdsStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdsStatsSnapshot {
    pub types: BTreeMap<ResourceType, TypeCounters>,
    pub last_nack: Option<NackReport>,
    pub active_streams: u64,
    pub total_streams: u64,
}

/// Handle on the server's counters; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AdsStats {
    inner: Arc<Mutex<AdsStatsSnapshot>>,
}

impl AdsStats {
    fn lock(&self) -> MutexGuard<'_, AdsStatsSnapshot> {
        // Counters stay meaningful even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> AdsStatsSnapshot {
        self.lock().clone()
    }

    pub fn counters(&self, ty: ResourceType) -> TypeCounters {
        self.lock().types.get(&ty).copied().unwrap_or_default()
    }

    /// Pushes of every type together.
    pub fn total_pushes(&self) -> u64 {
        self.lock().types.values().map(|c| c.pushes).sum()
    }

    pub fn last_nack(&self) -> Option<NackReport> {
        self.lock().last_nack.clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut AdsStatsSnapshot)) {
        f(&mut self.lock());
    }

    pub(crate) fn count(&self, ty: ResourceType, f: impl FnOnce(&mut TypeCounters)) {
        f(self.lock().types.entry(ty).or_default());
    }
}
