//! The per-stream xDS state machine, free of I/O so it can be tested without
//! Envoy: requests and snapshots in, responses and ACK/NACK events out.

use super::refs::{eds_name, rds_names, References};
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
/// - types go out in [`ResourceType::ALL`] order, at most one response per type
///   in flight; listeners and routes wait until secrets, clusters and endpoints
///   are ACKed/NACKed and EDS covers every accepted EDS cluster, so routes never
///   point at a cluster still warming;
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
                if ty.is_named() && req.resource_names.is_empty() && st.requested {
                    // Envoy dropped its last watch of this type (e.g. the
                    // last EDS cluster went): it will never answer the
                    // response in flight, so nothing may wait for it.
                    st.subscription = Subscription::Names(BTreeSet::new());
                    st.pending = false;
                    self.push_due(snap, &mut step);
                    return step;
                }
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

    /// Whether Envoy on this stream runs `snap`'s listeners and routes: both
    /// types ACKed with exactly the snapshot's content (routes: the ones its
    /// listeners subscribe to) and nothing of either in flight. Clusters,
    /// endpoints and secrets a route needs are in place by then: routes and
    /// listeners are only pushed once those are ACKed. What Envoy NACKed is
    /// not served; an endpoint-only change leaves this true.
    pub fn serves(&self, snap: &Snapshot) -> bool {
        // The routes the snapshot's listeners use count even before Envoy
        // re-subscribes for them (it ACKs new listeners while they warm).
        let used: BTreeSet<String> = snap
            .resources(ResourceType::Listener)
            .flat_map(|(_, l)| rds_names(l))
            .collect();
        [ResourceType::Listener, ResourceType::Route]
            .into_iter()
            .all(|ty| match self.get(ty) {
                Some(st) if st.requested => {
                    !st.pending
                        && snap
                            .resources(ty)
                            .filter(|(n, _)| match &st.subscription {
                                Subscription::Wildcard => true,
                                Subscription::Names(names) => {
                                    names.contains(*n) || used.contains(*n)
                                }
                            })
                            .eq(st.acked.iter())
                }
                // Never subscribed: served only if there is nothing to serve.
                _ => snap.len(ty) == 0,
            })
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
        let eds_gate = self.waiting_for_eds_subscription();
        // Types with a response in flight, including ones pushed just now.
        let mut in_flight = BTreeSet::new();
        for ty in ResourceType::ALL {
            let st = self.ty(ty);
            if st.pending {
                in_flight.insert(ty);
                continue;
            }
            if !st.requested || blocked(ty, &in_flight, eds_gate) {
                continue;
            }
            // Envoy watches no resource of this type: it ignores (never
            // ACKs) a response, which would hold every later type back.
            if matches!(&st.subscription, Subscription::Names(n) if n.is_empty()) {
                continue;
            }
            let desired = self.desired(ty, snap, &retained_clusters, &retained_secrets);
            // The snapshot's own version (hashed once per snapshot) when
            // the stream gets exactly its resources, as it mostly does.
            let version = if desired.len() == snap.len(ty) && desired.iter().eq(snap.resources(ty))
            {
                snap.version(ty)
            } else {
                version_of(ty, &desired)
            };
            let st = self.ty(ty);
            if st.sent.as_ref().is_some_and(|s| s.version == version) {
                continue;
            }
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
            in_flight.insert(ty);
        }
    }
}

/// Whether `ty` must wait. Listeners and routes wait until secrets, clusters
/// and endpoints are applied (Envoy ACKs CDS only once new clusters are warm)
/// and EDS covers every accepted cluster. Endpoints do not wait for the CDS
/// ACK: Envoy needs them to warm the clusters before it ACKs. Routes do not
/// wait for the LDS ACK for the same reason (listener warming needs RDS).
fn blocked(ty: ResourceType, in_flight: &BTreeSet<ResourceType>, eds_gate: bool) -> bool {
    use ResourceType::*;
    let waits_for: &[ResourceType] = match ty {
        Secret => &[],
        Cluster | Endpoint => &[Secret],
        Listener | Route => &[Secret, Cluster, Endpoint],
    };
    waits_for.iter().any(|t| in_flight.contains(t)) || (matches!(ty, Listener | Route) && eds_gate)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::EnvoyResources;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
    use envoy_types::pb::envoy::config::route::v3::{
        route, route_action, Route, RouteAction, RouteConfiguration, VirtualHost,
    };
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_connection_manager::RouteSpecifier, HttpConnectionManager, Rds,
    };
    use envoy_types::pb::google::rpc::Status as RpcStatus;
    use prost::{Message, Name};
    use ResourceType::*;

    fn cluster(name: &str) -> Cluster {
        Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            ..Default::default()
        }
    }

    fn routes(name: &str, clusters: &[&str]) -> RouteConfiguration {
        RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: clusters
                    .iter()
                    .map(|c| Route {
                        action: Some(route::Action::Route(RouteAction {
                            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                                (*c).into(),
                            )),
                            ..Default::default()
                        })),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn listener(name: &str, rds: &str) -> Listener {
        let hcm = HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: rds.into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        Listener {
            name: name.into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "hcm".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(Any {
                        type_url: HttpConnectionManager::type_url(),
                        value: hcm.encode_to_vec(),
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Listener "http" → routes "r" → `routed` clusters; `clusters` all exist with endpoints.
    fn snap(clusters: &[&str], routed: &[&str]) -> Snapshot {
        Snapshot::from(&EnvoyResources {
            listeners: vec![listener("http", "r")],
            routes: vec![routes("r", routed)],
            clusters: clusters.iter().map(|c| cluster(c)).collect(),
            endpoints: clusters
                .iter()
                .map(|c| ClusterLoadAssignment {
                    cluster_name: (*c).into(),
                    ..Default::default()
                })
                .collect(),
            secrets: vec![],
            auth: Default::default(),
        })
    }

    fn req(
        ty: ResourceType,
        names: &[&str],
        acking: Option<&DiscoveryResponse>,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: ty.type_url().into(),
            resource_names: names.iter().map(|n| (*n).into()).collect(),
            version_info: acking.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: acking.map(|r| r.nonce.clone()).unwrap_or_default(),
            ..Default::default()
        }
    }

    fn nack(ty: ResourceType, rejected: &DiscoveryResponse, kept: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: ty.type_url().into(),
            version_info: kept.into(),
            response_nonce: rejected.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: "bad cluster".into(),
                details: vec![],
            }),
            ..Default::default()
        }
    }

    fn types(step: &Step) -> Vec<ResourceType> {
        step.responses
            .iter()
            .map(|r| ResourceType::from_type_url(&r.type_url).expect("known type"))
            .collect()
    }

    fn names(resp: &DiscoveryResponse) -> Vec<String> {
        resp.resources
            .iter()
            .map(|a| {
                if a.type_url == Cluster::type_url() {
                    Cluster::decode(a.value.as_slice()).expect("cluster").name
                } else if a.type_url == ClusterLoadAssignment::type_url() {
                    ClusterLoadAssignment::decode(a.value.as_slice())
                        .expect("cla")
                        .cluster_name
                } else if a.type_url == RouteConfiguration::type_url() {
                    RouteConfiguration::decode(a.value.as_slice())
                        .expect("rc")
                        .name
                } else {
                    Listener::decode(a.value.as_slice()).expect("listener").name
                }
            })
            .collect()
    }

    fn only(step: &Step, ty: ResourceType) -> DiscoveryResponse {
        assert_eq!(
            types(step),
            vec![ty],
            "expected exactly one {ty:?} response"
        );
        step.responses[0].clone()
    }

    /// Drives a stream through Envoy's start-up sequence; returns the last
    /// response of each type (all ACKed).
    fn converge(st: &mut StreamState, s: &Snapshot) -> BTreeMap<ResourceType, DiscoveryResponse> {
        let mut last = BTreeMap::new();
        let cds = only(&st.on_request(&req(Cluster, &[], None), s), Cluster);
        assert!(
            st.on_request(&req(Listener, &[], None), s)
                .responses
                .is_empty(),
            "LDS must wait for CDS"
        );
        assert!(
            st.on_request(&req(Cluster, &[], Some(&cds)), s)
                .responses
                .is_empty(),
            "LDS must wait for EDS"
        );
        let eds_names: Vec<String> = s.names(Endpoint).map(String::from).collect();
        let eds_names: Vec<&str> = eds_names.iter().map(|n| n.as_str()).collect();
        let eds = only(
            &st.on_request(&req(Endpoint, &eds_names, None), s),
            Endpoint,
        );
        let lds = only(
            &st.on_request(&req(Endpoint, &eds_names, Some(&eds)), s),
            Listener,
        );
        assert!(st
            .on_request(&req(Listener, &[], Some(&lds)), s)
            .responses
            .is_empty());
        let rds = only(&st.on_request(&req(Route, &["r"], None), s), Route);
        assert!(st
            .on_request(&req(Route, &["r"], Some(&rds)), s)
            .responses
            .is_empty());
        last.insert(Cluster, cds);
        last.insert(Endpoint, eds);
        last.insert(Listener, lds);
        last.insert(Route, rds);
        last
    }

    #[test]
    fn start_up_pushes_in_make_before_break_order_with_snapshot_versions() {
        let s = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        let last = converge(&mut st, &s);
        for (ty, resp) in &last {
            assert_eq!(
                resp.version_info,
                s.version(*ty),
                "{ty:?} carries the snapshot version"
            );
        }
        let nonces: BTreeSet<_> = last.values().map(|r| r.nonce.clone()).collect();
        assert_eq!(nonces.len(), 4, "every response has its own nonce");
        assert!(!st.waiting_for_eds_subscription());
    }

    #[test]
    fn serves_only_once_listeners_and_routes_of_the_snapshot_are_acked() {
        let s1 = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        assert!(!st.serves(&s1), "nothing subscribed, nothing served");
        // Part way through start-up: clusters and endpoints, no routes yet.
        let cds = only(&st.on_request(&req(Cluster, &[], None), &s1), Cluster);
        st.on_request(&req(Listener, &[], None), &s1);
        st.on_request(&req(Cluster, &[], Some(&cds)), &s1);
        let eds = only(&st.on_request(&req(Endpoint, &["a"], None), &s1), Endpoint);
        let lds = only(
            &st.on_request(&req(Endpoint, &["a"], Some(&eds)), &s1),
            Listener,
        );
        assert!(!st.serves(&s1), "LDS in flight");
        st.on_request(&req(Listener, &[], Some(&lds)), &s1);
        assert!(
            !st.serves(&s1),
            "listeners ACKed, but the routes they use were never sent"
        );
        let rds = only(&st.on_request(&req(Route, &["r"], None), &s1), Route);
        assert!(!st.serves(&s1), "RDS in flight");
        st.on_request(&req(Route, &["r"], Some(&rds)), &s1);
        assert!(st.serves(&s1));

        // A new route to a new cluster: served only after its RDS ACK.
        let s2 = snap(&["a", "b"], &["a", "b"]);
        assert!(!st.serves(&s2));
        let cds2 = only(&st.on_snapshot(&s2), Cluster);
        let step = st.on_request(&req(Cluster, &[], Some(&cds2)), &s2);
        assert!(step.responses.is_empty(), "routes wait for EDS of b");
        let eds2 = only(
            &st.on_request(&req(Endpoint, &["a", "b"], None), &s2),
            Endpoint,
        );
        let rds2 = only(
            &st.on_request(&req(Endpoint, &["a", "b"], Some(&eds2)), &s2),
            Route,
        );
        assert!(!st.serves(&s2), "the route to b is in flight");
        assert!(
            !st.serves(&s1),
            "with routes in flight no snapshot is claimed, not even the last one"
        );
        // Envoy rejects it: it keeps running s1's routes, s2 is not served.
        let mut rejected = nack(Route, &rds2, &rds.version_info);
        rejected.resource_names = vec!["r".into()];
        st.on_request(&rejected, &s2);
        assert!(!st.serves(&s2), "a NACKed route is not served");
        // An endpoint-only change of what is served leaves it served.
        let s3 = snap(&["a", "b"], &["a"]);
        let step = st.on_snapshot(&s3);
        let rds3 = only(&step, Route);
        st.on_request(&req(Route, &["r"], Some(&rds3)), &s3);
        assert!(st.serves(&s3));
        let mut s4 = s3.clone();
        s4.insert(
            Endpoint,
            "a",
            Any {
                type_url: ClusterLoadAssignment::type_url(),
                value: ClusterLoadAssignment {
                    cluster_name: "a".into(),
                    endpoints: vec![Default::default()],
                    ..Default::default()
                }
                .encode_to_vec(),
            },
        );
        assert_ne!(s4.version(Endpoint), s3.version(Endpoint));
        assert!(st.serves(&s4), "endpoints do not decide what is served");
    }

    #[test]
    fn ack_and_identical_snapshot_send_nothing() {
        let s = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        let last = converge(&mut st, &s);
        // A repeated ACK of the current version and nonce is a no-op.
        assert!(st
            .on_request(&req(Cluster, &[], last.get(&Cluster)), &s)
            .responses
            .is_empty());
        let same = snap(&["a"], &["a"]);
        let step = st.on_snapshot(&same);
        assert!(step.responses.is_empty() && step.events.is_empty());
    }

    #[test]
    fn unrequested_types_are_never_sent() {
        let s = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        assert!(st.on_snapshot(&s).responses.is_empty());
        let step = st.on_request(&req(Listener, &[], None), &s);
        // Nothing holds LDS back before CDS exists on this stream.
        assert_eq!(types(&step), vec![Listener]);
    }

    #[test]
    fn nack_is_reported_not_resent_and_a_later_snapshot_goes_out() {
        let s1 = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        let last = converge(&mut st, &s1);
        let s2 = snap(&["a", "bad"], &["a"]);
        let cds2 = only(&st.on_snapshot(&s2), Cluster);
        let step = st.on_request(&nack(Cluster, &cds2, &last[&Cluster].version_info), &s2);
        assert_eq!(
            step.events,
            vec![StreamEvent::Nack {
                ty: Cluster,
                rejected_version: cds2.version_info.clone(),
                kept_version: last[&Cluster].version_info.clone(),
                message: "bad cluster".into(),
            }]
        );
        assert!(
            !step
                .responses
                .iter()
                .any(|r| r.type_url == Cluster.type_url()),
            "rejected CDS is not resent"
        );
        // The same snapshot again: still nothing for CDS.
        assert!(st.on_snapshot(&s2).responses.is_empty());
        // A fixed snapshot goes out.
        let s3 = snap(&["a", "b"], &["a", "b"]);
        let cds3 = only(&st.on_snapshot(&s3), Cluster);
        assert_eq!(names(&cds3), vec!["a", "b"]);
    }

    #[test]
    fn dropped_cluster_stays_until_routes_without_it_are_acked() {
        let s1 = snap(&["a", "c"], &["a", "c"]);
        let mut st = StreamState::new();
        let last = converge(&mut st, &s1);
        // New config: route to b instead of c; c dropped.
        let s2 = snap(&["a", "b"], &["a", "b"]);
        let cds = only(&st.on_snapshot(&s2), Cluster);
        assert_eq!(names(&cds), vec!["a", "b", "c"], "c is still routed to");
        assert_ne!(cds.version_info, s2.version(Cluster));
        assert!(
            st.on_request(&req(Cluster, &[], Some(&cds)), &s2)
                .responses
                .is_empty(),
            "routes wait until Envoy asks for b's endpoints"
        );
        let abc = ["a", "b", "c"];
        let eds = only(
            &st.on_request(&req(Endpoint, &abc, Some(&last[&Endpoint])), &s2),
            Endpoint,
        );
        assert_eq!(names(&eds), abc, "c keeps its endpoints");
        let rds = only(&st.on_request(&req(Endpoint, &abc, Some(&eds)), &s2), Route);
        assert!(
            st.on_snapshot(&s2).responses.is_empty(),
            "CDS waits for the RDS ACK"
        );
        // Routes no longer use c: now c goes, and its endpoints with it.
        let step = st.on_request(&req(Route, &["r"], Some(&rds)), &s2);
        assert_eq!(types(&step), vec![Cluster, Endpoint]);
        let (cds2, eds2) = (step.responses[0].clone(), step.responses[1].clone());
        assert_eq!(names(&cds2), vec!["a", "b"]);
        assert_eq!(cds2.version_info, s2.version(Cluster));
        assert_eq!(names(&eds2), vec!["a", "b"]);
        let step = st.on_request(&req(Endpoint, &["a", "b"], Some(&eds2)), &s2);
        assert!(step.responses.is_empty());
        let step = st.on_request(&req(Cluster, &[], Some(&cds2)), &s2);
        assert!(step.responses.is_empty());
        assert!(!st.waiting_for_eds_subscription());
    }

    /// The conformance suite's 404s: the last EDS cluster goes, Envoy drops
    /// its EDS watch (an empty-names request carrying an older nonce) and
    /// ignores the EDS response in flight — which must not hold listeners
    /// and routes back for ever.
    #[test]
    fn envoy_dropping_its_last_eds_watch_does_not_block_later_types() {
        let s1 = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        let last = converge(&mut st, &s1);
        // Routes to nothing (a redirect, a 500): a goes once routes are ACKed.
        let s2 = snap(&[], &[]);
        let rds = only(&st.on_snapshot(&s2), Route);
        let step = st.on_request(&req(Route, &["r"], Some(&rds)), &s2);
        assert_eq!(types(&step), vec![Cluster, Endpoint]);
        let (cds, empty_eds) = (step.responses[0].clone(), step.responses[1].clone());
        assert!(names(&cds).is_empty());
        // Envoy removes a, unsubscribes from EDS with the nonce it last
        // answered, and never answers the empty EDS response.
        let step = st.on_request(&req(Endpoint, &[], Some(&last[&Endpoint])), &s2);
        assert!(
            step.responses.is_empty(),
            "nothing to send: {:?}",
            types(&step)
        );
        assert!(st
            .on_request(&req(Cluster, &[], Some(&cds)), &s2)
            .responses
            .is_empty());
        // A later listener change goes out at once.
        let s3 = Snapshot::from(&EnvoyResources {
            listeners: vec![listener("http", "r"), listener("more", "r")],
            routes: vec![routes("r", &[])],
            ..Default::default()
        });
        assert_eq!(
            names(&only(&st.on_snapshot(&s3), Listener)),
            ["http", "more"]
        );
        // EDS again once Envoy asks again (a new EDS cluster); Envoy took the
        // nonce of the unwatched empty response without answering it.
        let s4 = snap(&["b"], &["b"]);
        let cds = only(&st.on_snapshot(&s4), Cluster);
        assert_eq!(names(&cds), ["b"]);
        let eds = only(
            &st.on_request(&req(Endpoint, &["b"], Some(&empty_eds)), &s4),
            Endpoint,
        );
        assert_eq!(names(&eds), ["b"]);
    }

    #[test]
    fn endpoints_flow_while_cds_ack_waits_for_warming_and_routes_wait_for_both() {
        // Envoy 1.40 ACKs CDS only after new clusters got their endpoints.
        let s1 = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        let last = converge(&mut st, &s1);
        let s2 = snap(&["a", "b"], &["a", "b"]);
        let cds = only(&st.on_snapshot(&s2), Cluster);
        let eds = only(
            &st.on_request(&req(Endpoint, &["a", "b"], Some(&last[&Endpoint])), &s2),
            Endpoint,
        );
        assert_eq!(names(&eds), vec!["a", "b"]);
        assert!(
            st.on_request(&req(Endpoint, &["a", "b"], Some(&eds)), &s2)
                .responses
                .is_empty(),
            "routes wait for the CDS ACK"
        );
        let rds = only(&st.on_request(&req(Cluster, &[], Some(&cds)), &s2), Route);
        assert_eq!(rds.version_info, s2.version(Route));
    }

    #[test]
    fn named_types_answer_only_existing_subscribed_names_and_follow_the_subscription() {
        let s = snap(&["a", "b"], &["a"]);
        let mut st = StreamState::new();
        let eds = only(
            &st.on_request(&req(Endpoint, &["a", "missing"], None), &s),
            Endpoint,
        );
        assert_eq!(names(&eds), vec!["a"]);
        let eds2 = only(
            &st.on_request(&req(Endpoint, &["a", "b"], Some(&eds)), &s),
            Endpoint,
        );
        assert_eq!(names(&eds2), vec!["a", "b"]);
        // Same subscription again: nothing.
        assert!(st
            .on_request(&req(Endpoint, &["a", "b"], Some(&eds2)), &s)
            .responses
            .is_empty());
    }

    #[test]
    fn stale_nonce_is_ignored() {
        let s1 = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        let last = converge(&mut st, &s1);
        let s2 = snap(&["a", "b"], &["a"]);
        let cds2 = only(&st.on_snapshot(&s2), Cluster);
        // A request carrying the previous CDS nonce is neither ACK nor NACK.
        let step = st.on_request(&nack(Cluster, &last[&Cluster], ""), &s2);
        assert!(step.events.is_empty() && step.responses.is_empty());
        let step = st.on_request(&req(Cluster, &[], Some(&cds2)), &s2);
        assert_eq!(
            step.events,
            vec![StreamEvent::Ack {
                ty: Cluster,
                version: cds2.version_info.clone()
            }]
        );
    }

    #[test]
    fn a_new_stream_starts_from_the_current_snapshot() {
        let s1 = snap(&["a"], &["a"]);
        let mut st = StreamState::new();
        converge(&mut st, &s1);
        let s2 = snap(&["b"], &["b"]);
        let mut fresh = StreamState::new();
        let last = converge(&mut fresh, &s2);
        assert_eq!(
            names(&last[&Cluster]),
            vec!["b"],
            "nothing of the old stream leaks into a new one"
        );
    }
}
