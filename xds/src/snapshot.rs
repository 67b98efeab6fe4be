//! The seam between translation and the ADS server: a tenant's complete Envoy
//! configuration, as typed resources and as packed `Any`s keyed by type and name.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The xDS resource types we serve, in make-before-break push order:
/// secrets and clusters/endpoints before the listeners and routes using them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Secret,
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl ResourceType {
    /// Push order (make before break).
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Secret,
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Types whose resources Envoy requests by name (the others are wildcard).
    pub fn is_named(self) -> bool {
        matches!(
            self,
            ResourceType::Endpoint | ResourceType::Route | ResourceType::Secret
        )
    }
}

/// Typed Envoy resources for one tenant, as produced by translation.
/// Every list is sorted by resource name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvoyResources {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub secrets: Vec<Secret>,
}

/// Packed resources by type and name. Encoding is deterministic (no proto maps
/// are used by translation), so equal configs give equal bytes and versions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    resources: BTreeMap<ResourceType, BTreeMap<String, Any>>,
}

fn pack<M: Message + prost::Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

impl Snapshot {
    pub fn insert(&mut self, ty: ResourceType, name: impl Into<String>, any: Any) {
        self.resources
            .entry(ty)
            .or_default()
            .insert(name.into(), any);
    }

    pub fn resources(&self, ty: ResourceType) -> impl Iterator<Item = (&String, &Any)> {
        self.resources.get(&ty).into_iter().flatten()
    }

    pub fn get(&self, ty: ResourceType, name: &str) -> Option<&Any> {
        self.resources.get(&ty).and_then(|m| m.get(name))
    }

    pub fn names(&self, ty: ResourceType) -> impl Iterator<Item = &str> {
        self.resources(ty).map(|(n, _)| n.as_str())
    }

    pub fn len(&self, ty: ResourceType) -> usize {
        self.resources.get(&ty).map_or(0, |m| m.len())
    }

    /// A content hash of every resource of this type (names and bytes).
    pub fn version(&self, ty: ResourceType) -> String {
        let mut h = Sha256::new();
        for (name, any) in self.resources(ty) {
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update((any.value.len() as u64).to_be_bytes());
            h.update(&any.value);
        }
        hex::encode(&h.finalize()[..8])
    }

    /// The content hash of one resource, for per-resource change detection.
    pub fn resource_version(any: &Any) -> String {
        hex::encode(&Sha256::digest(&any.value)[..8])
    }
}

impl From<&EnvoyResources> for Snapshot {
    fn from(r: &EnvoyResources) -> Self {
        let mut s = Snapshot::default();
        for l in &r.listeners {
            s.insert(ResourceType::Listener, l.name.clone(), pack(l));
        }
        for rc in &r.routes {
            s.insert(ResourceType::Route, rc.name.clone(), pack(rc));
        }
        for c in &r.clusters {
            s.insert(ResourceType::Cluster, c.name.clone(), pack(c));
        }
        for e in &r.endpoints {
            s.insert(ResourceType::Endpoint, e.cluster_name.clone(), pack(e));
        }
        for sec in &r.secrets {
            s.insert(ResourceType::Secret, sec.name.clone(), pack(sec));
        }
        s
    }
}
