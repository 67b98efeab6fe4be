//! The per-stream xDS state machine, free of I/O so it can be tested without
//! Envoy: requests and snapshots in, responses and ACK/NACK events out.

use super::refs::{eds_name, References};
use crate::snapshot::{ResourceType, Snapshot};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use std::collections::{BTreeMap, BTreeSet};

/// Resources of one type, by name.
type Resources = BTreeMap<String, Any>;

/// What Envoy asked for, for one type.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subscription {
    Wildcard,
    Names(BTreeSet<String>),
}

#[derive(Clone, Debug)]
struct Sent {
    version: String,
    nonce: String,
    resources: Resources,
}

#[derive(Clone, Debug)]
struct TypeState {
    /// Envoy opened a subscription for this type on this stream; until then we
    /// must not send it (Envoy ignores unwatched types).
    requested: bool,
    subscription: Subscription,
    /// The last response sent; kept after a NACK so the rejected content is not
    /// sent again until the snapshot moves on.
    sent: Option<Sent>,
    /// `sent` awaits its ACK/NACK.
    pending: bool,
    /// What Envoy runs: the content of the last ACKed response.
    acked: Resources,
}

impl Default for TypeState {
    fn default() -> Self {
        Self {
            requested: false,
            subscription: Subscription::Names(BTreeSet::new()),
            sent: None,
            pending: false,
            acked: Resources::new(),
        }
    }
}

impl TypeState {
    /// What Envoy holds or is about to hold: the ACKed content and, while a
    /// response is in flight, that response too.
    fn held(&self) -> impl Iterator<Item = (&String, &Any)> {
        let in_flight = self.sent.as_ref().filter(|_| self.pending);
        self.acked
            .iter()
            .chain(in_flight.into_iter().flat_map(|s| s.resources.iter()))
    }

    /// The latest content Envoy was given for `name` (sent, else ACKed).
    fn latest(&self, name: &str) -> Option<&Any> {
        self.sent
            .as_ref()
            .and_then(|s| s.resources.get(name))
            .or_else(|| self.acked.get(name))
    }
}

/// Something worth counting and logging that happened on the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    Push {
        ty: ResourceType,
        version: String,
        resources: usize,
    },
    Ack {
        ty: ResourceType,
        version: String,
    },
    Nack {
        ty: ResourceType,
        /// Version of the response Envoy rejected.
        rejected_version: String,
        /// Version Envoy keeps running (its request's `version_info`).
        kept_version: String,
        message: String,
    },
}

/// Responses to send, in order, and the events behind them.
#[derive(Debug, Default)]
pub struct Step {
    pub responses: Vec<DiscoveryResponse>,
    pub events: Vec<StreamEvent>,
}

/// One ADS stream's view of Envoy. Push rules:
/// - types go out in [`ResourceType::ALL`] order, one in flight at a time, and a
///   later type waits until earlier ones are ACKed/NACKed and EDS covers every
///   accepted EDS cluster, so routes never point at a cluster still warming;
/// - a cluster or secret the snapshot drops stays while anything Envoy holds
///   still refers to it, and goes once the referrers' replacements are ACKed;
/// - a type whose content equals what was last sent is not sent again.
#[derive(Debug, Default)]
pub struct StreamState {
    types: BTreeMap<ResourceType, TypeState>,
    nonces: u64,
    gate_override: bool,
}

impl StreamState {
    pub fn new() -> Self {
        Self::default()
    }

    fn ty(&mut self, ty: ResourceType) -> &mut TypeState {
        self.types.entry(ty).or_default()
    }

    fn get(&self, ty: ResourceType) -> Option<&TypeState> {
        self.types.get(&ty)
    }

    /// Handles one request from Envoy, then pushes whatever became due.
    pub fn on_request(&mut self, req: &DiscoveryRequest, snap: &Snapshot) -> Step {
        let mut step = Step::default();
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %req.type_url, "ignoring request for a type we do not serve");
            return step;
        };
        let st = self.ty(ty);
        if req.response_nonce.is_empty() {
            // A new subscription (stream start or re-subscription): answer afresh.
            st.sent = None;
            st.pending = false;
        } else {
            let Some(sent) = st.sent.as_ref().filter(|s| s.nonce == req.response_nonce) else {
                // Envoy has not seen our latest response yet; it will answer that one.
                tracing::debug!(?ty, nonce = %req.response_nonce, "ignoring request with stale nonce");
                return step;
            };
            if let Some(err) = &req.error_detail {
                step.events.push(StreamEvent::Nack {
                    ty,
                    rejected_version: sent.version.clone(),
                    kept_version: req.version_info.clone(),
                    message: err.message.clone(),
                });
                st.pending = false;
            } else if st.pending {
                step.events.push(StreamEvent::Ack {
                    ty,
                    version: sent.version.clone(),
                });
                st.acked = sent.resources.clone();
                st.pending = false;
            }
        }
        st.subscription = if !ty.is_named() || req.resource_names.iter().any(|n| n == "*") {
            Subscription::Wildcard
        } else if req.resource_names.is_empty() && !st.requested {
            // Legacy wildcard: empty names on the first request only.
            Subscription::Wildcard
        } else {
            Subscription::Names(req.resource_names.iter().cloned().collect())
        };
        st.requested = true;
        self.push_due(snap, &mut step);
        step
    }

    /// A new snapshot arrived: push whatever it changes.
    pub fn on_snapshot(&mut self, snap: &Snapshot) -> Step {
        let mut step = Step::default();
        self.push_due(snap, &mut step);
        step
    }

    /// True while later types wait for Envoy to subscribe to the endpoints of
    /// clusters it accepted. The driver lets this wait last a bounded time.
    pub fn waiting_for_eds_subscription(&self) -> bool {
        !self.gate_override && !self.eds_covers_accepted_clusters()
    }

    /// Stop waiting for the EDS subscription (Envoy never asked; go on anyway).
    pub fn override_eds_gate(&mut self) {
        self.gate_override = true;
    }

    fn eds_covers_accepted_clusters(&self) -> bool {
        let Some(clusters) = self.get(ResourceType::Cluster) else {
            return true;
        };
        let eds = self.get(ResourceType::Endpoint);
        let subscribed = |name: &str| match eds {
            Some(e) if e.requested => match &e.subscription {
                Subscription::Wildcard => true,
                Subscription::Names(n) => n.contains(name),
            },
            _ => false,
        };
        clusters
            .acked
            .values()
            .filter_map(eds_name)
            .all(|n| subscribed(&n))
    }

    /// Clusters and secrets Envoy holds that the snapshot drops but that
    /// something Envoy holds still refers to.
    fn retained(&self, snap: &Snapshot) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut refs = References::default();
        for ty in [
            ResourceType::Listener,
            ResourceType::Route,
            ResourceType::Cluster,
        ] {
            if let Some(st) = self.get(ty) {
                st.held().for_each(|(_, any)| refs.add(any));
            }
        }
        let keep = |ty: ResourceType, referenced: &BTreeSet<String>| -> BTreeSet<String> {
            self.get(ty)
                .map(|st| {
                    st.held()
                        .map(|(n, _)| n)
                        .filter(|n| snap.get(ty, n).is_none() && referenced.contains(*n))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        (
            keep(ResourceType::Cluster, &refs.clusters),
            keep(ResourceType::Secret, &refs.secrets),
        )
    }

    /// The content Envoy should have for `ty` now.
    fn desired(
        &self,
        ty: ResourceType,
        snap: &Snapshot,
        retained_clusters: &BTreeSet<String>,
        retained_secrets: &BTreeSet<String>,
    ) -> Resources {
        let Some(st) = self.get(ty) else {
            return Resources::new();
        };
        // Retained resources keep the content Envoy last got for them.
        let mut retained: Resources = match ty {
            ResourceType::Cluster => retained_clusters
                .iter()
                .filter_map(|n| st.latest(n).map(|a| (n.clone(), a.clone())))
                .collect(),
            ResourceType::Secret => retained_secrets
                .iter()
                .filter_map(|n| st.latest(n).map(|a| (n.clone(), a.clone())))
                .collect(),
            ResourceType::Endpoint => {
                let clusters = self.get(ResourceType::Cluster);
                retained_clusters
                    .iter()
                    .filter_map(|c| clusters.and_then(|cs| cs.latest(c)))
                    .filter_map(eds_name)
                    .filter(|n| snap.get(ty, n).is_none())
                    .filter_map(|n| st.latest(&n).map(|a| (n.clone(), a.clone())))
                    .collect()
            }
            ResourceType::Listener | ResourceType::Route => Resources::new(),
        };
        let mut all: Resources = snap
            .resources(ty)
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        all.append(&mut retained);
        match &st.subscription {
            Subscription::Wildcard => all,
            Subscription::Names(names) => {
                all.into_iter().filter(|(n, _)| names.contains(n)).collect()
            }
        }
    }

    fn push_due(&mut self, snap: &Snapshot, step: &mut Step) {
        if self.eds_covers_accepted_clusters() {
            self.gate_override = false;
        }
        let (retained_clusters, retained_secrets) = self.retained(snap);
        let mut blocked = false;
        for ty in ResourceType::ALL {
            let desired = self.desired(ty, snap, &retained_clusters, &retained_secrets);
            let gate_eds = ty == ResourceType::Endpoint && self.waiting_for_eds_subscription();
            let st = self.ty(ty);
            if st.requested {
                if st.pending {
                    blocked = true;
                } else {
                    let version = version_of(ty, &desired);
                    let changed = st.sent.as_ref().is_none_or(|s| s.version != version);
                    if changed && !blocked {
                        self.nonces += 1;
                        let nonce = self.nonces.to_string();
                        step.events.push(StreamEvent::Push {
                            ty,
                            version: version.clone(),
                            resources: desired.len(),
                        });
                        step.responses.push(DiscoveryResponse {
                            version_info: version.clone(),
                            resources: desired.values().cloned().collect(),
                            type_url: ty.type_url().to_string(),
                            nonce: nonce.clone(),
                            ..Default::default()
                        });
                        let st = self.ty(ty);
                        st.sent = Some(Sent {
                            version,
                            nonce,
                            resources: desired,
                        });
                        st.pending = true;
                        blocked = true;
                    }
                }
            }
            // Listeners and routes wait until every accepted EDS cluster has
            // endpoints requested (and, via `pending`, delivered).
            blocked |= gate_eds;
        }
    }
}

/// The version of a response: the snapshot's content hash over exactly the
/// resources sent, so a full set carries `Snapshot::version(ty)`.
pub fn version_of(ty: ResourceType, resources: &Resources) -> String {
    let mut s = Snapshot::default();
    for (n, a) in resources {
        s.insert(ty, n.clone(), a.clone());
    }
    s.version(ty)
}
