//! The seam between translation and the ADS server: a tenant's complete Envoy
//! configuration, as typed resources and as packed `Any`s keyed by type and name.

use crate::authz::AuthTable;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

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
    /// Auth policies the routes name, for the sidecar's authorization
    /// server (never sent to Envoy).
    pub auth: AuthTable,
}

/// Packed resources by type and name. Encoding is deterministic (route
/// configurations, whose per-filter-config maps may hold several entries, are
/// encoded canonically), so equal configs give equal bytes and versions.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    resources: BTreeMap<ResourceType, BTreeMap<String, Any>>,
    /// Published with the resources, so a route and its policy change together.
    auth: Arc<AuthTable>,
    /// [`Snapshot::version`] of each type (in [`ResourceType::ALL`] order),
    /// hashed once: the sidecar and every ADS stream ask for it per change.
    versions: [OnceLock<String>; 5],
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.resources == other.resources && self.auth == other.auth
    }
}

fn pack<M: Message + prost::Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// prost encodes a proto map from a `HashMap`, in random order. The
/// `typed_per_filter_config` maps of virtual hosts and routes may hold several
/// filters, so route configurations are encoded with those map entries sorted
/// by key: the message encoded without the maps (and without the nested
/// messages holding them), then the nested messages and sorted entries
/// appended. Protobuf parsers accept fields in any order, and a repeated
/// field's elements keep their relative order.
mod canonical {
    use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
    use envoy_types::pb::google::protobuf::Any;
    use prost::encoding::{encode_key, encode_varint, WireType};
    use prost::Message;
    use std::collections::HashMap;

    const ROUTE_CONFIGURATION_VIRTUAL_HOSTS: u32 = 2;
    const VIRTUAL_HOST_ROUTES: u32 = 3;
    const VIRTUAL_HOST_TYPED_PER_FILTER_CONFIG: u32 = 15;
    const ROUTE_TYPED_PER_FILTER_CONFIG: u32 = 13;

    fn append_bytes(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(bytes.len() as u64, buf);
        buf.extend_from_slice(bytes);
    }

    fn append_sorted_map(tag: u32, map: &HashMap<String, Any>, buf: &mut Vec<u8>) {
        let mut entries: Vec<(&String, &Any)> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in entries {
            let mut entry = Vec::new();
            prost::encoding::string::encode(1, k, &mut entry);
            prost::encoding::message::encode(2, v, &mut entry);
            append_bytes(tag, &entry, buf);
        }
    }

    fn route(r: &Route) -> Vec<u8> {
        if r.typed_per_filter_config.len() <= 1 {
            return r.encode_to_vec();
        }
        let mut shell = r.clone();
        shell.typed_per_filter_config.clear();
        let mut buf = shell.encode_to_vec();
        append_sorted_map(
            ROUTE_TYPED_PER_FILTER_CONFIG,
            &r.typed_per_filter_config,
            &mut buf,
        );
        buf
    }

    pub(super) fn virtual_host(vh: &VirtualHost) -> Vec<u8> {
        let mut shell = vh.clone();
        shell.routes.clear();
        shell.typed_per_filter_config.clear();
        let mut buf = shell.encode_to_vec();
        for r in &vh.routes {
            append_bytes(VIRTUAL_HOST_ROUTES, &route(r), &mut buf);
        }
        append_sorted_map(
            VIRTUAL_HOST_TYPED_PER_FILTER_CONFIG,
            &vh.typed_per_filter_config,
            &mut buf,
        );
        buf
    }

    pub(super) fn route_configuration(rc: &RouteConfiguration) -> Vec<u8> {
        let shell = RouteConfiguration {
            virtual_hosts: Vec::new(),
            ..rc.clone()
        };
        let hosts: Vec<Vec<u8>> = rc.virtual_hosts.iter().map(virtual_host).collect();
        from_parts(&shell, hosts.iter().map(Vec::as_slice))
    }

    /// A route configuration without virtual hosts, then its virtual hosts
    /// encoded by [`virtual_host`], in order.
    pub(super) fn from_parts<'a>(
        shell: &RouteConfiguration,
        virtual_hosts: impl Iterator<Item = &'a [u8]>,
    ) -> Vec<u8> {
        debug_assert!(shell.virtual_hosts.is_empty());
        let virtual_hosts: Vec<&[u8]> = virtual_hosts.collect();
        // Each part's key and length take at most 11 bytes.
        let size = shell.encoded_len() + virtual_hosts.iter().map(|v| v.len() + 11).sum::<usize>();
        let mut buf = Vec::with_capacity(size);
        buf.extend_from_slice(&shell.encode_to_vec());
        for vh in virtual_hosts {
            append_bytes(ROUTE_CONFIGURATION_VIRTUAL_HOSTS, vh, &mut buf);
        }
        buf
    }
}

/// A virtual host as route configurations are encoded (canonically).
pub(crate) fn encode_virtual_host(
    vh: &envoy_types::pb::envoy::config::route::v3::VirtualHost,
) -> Vec<u8> {
    canonical::virtual_host(vh)
}

/// A route configuration from its shell (no virtual hosts) and its virtual
/// hosts encoded by [`encode_virtual_host`]: the bytes [`Snapshot`] holds
/// for the whole configuration.
pub(crate) fn encode_route_configuration<'a>(
    shell: &RouteConfiguration,
    virtual_hosts: impl Iterator<Item = &'a [u8]>,
) -> Vec<u8> {
    canonical::from_parts(shell, virtual_hosts)
}

impl Snapshot {
    /// The auth policies of this snapshot's routes.
    pub fn auth(&self) -> &AuthTable {
        &self.auth
    }

    pub fn insert(&mut self, ty: ResourceType, name: impl Into<String>, any: Any) {
        self.versions[ty as usize] = OnceLock::new();
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
        self.versions[ty as usize]
            .get_or_init(|| self.hash(ty))
            .clone()
    }

    fn hash(&self, ty: ResourceType) -> String {
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

impl EnvoyResources {
    /// Every reference to a resource these resources do not hold; empty when
    /// the configuration is consistent (see [`Snapshot::consistency_problems`]),
    /// and every listener Envoy would refuse for having no filter chain (UDP
    /// listeners have none: their listener filter is their pipeline).
    pub fn consistency_problems(&self) -> Vec<String> {
        let mut problems = Snapshot::from(self).consistency_problems();
        problems.extend(
            self.listeners
                .iter()
                .filter(|l| l.udp_listener_config.is_none())
                .filter(|l| l.filter_chains.is_empty() && l.default_filter_chain.is_none())
                .map(|l| format!("listener {:?} has no filter chain", l.name)),
        );
        problems
    }
}

impl Snapshot {
    /// Every dangling reference, as go-control-plane's `Snapshot.Consistent()`:
    /// a cluster named by a route, weighted cluster, mirror or TCP proxy; an
    /// EDS name of a cluster; an SDS secret of a listener or cluster; an RDS
    /// name of a listener — each must be a resource of this snapshot.
    pub fn consistency_problems(&self) -> Vec<String> {
        let mut refs = crate::ads::References::default();
        let mut wanted: Vec<(ResourceType, String, String)> = Vec::new();
        for ty in ResourceType::ALL {
            for (name, any) in self.resources(ty) {
                refs.add(any);
                if ty == ResourceType::Cluster {
                    let eds = crate::ads::eds_name(any);
                    let by = format!("cluster {name}");
                    wanted.extend(eds.map(|e| (ResourceType::Endpoint, e, by)));
                } else if ty == ResourceType::Listener {
                    let by = format!("listener {name}");
                    wanted.extend(
                        crate::ads::rds_names(any)
                            .into_iter()
                            .map(|r| (ResourceType::Route, r, by.clone())),
                    );
                }
            }
        }
        let by = "a route, listener or cluster".to_string();
        wanted.extend((refs.clusters.into_iter()).map(|c| (ResourceType::Cluster, c, by.clone())));
        wanted.extend(
            refs.secrets
                .into_iter()
                .map(|s| (ResourceType::Secret, s, by.clone())),
        );
        wanted
            .into_iter()
            .filter(|(ty, name, _)| self.get(*ty, name).is_none())
            .map(|(ty, name, by)| format!("{by} names the missing {ty:?} {name:?}"))
            .collect()
    }
}

impl From<&EnvoyResources> for Snapshot {
    fn from(r: &EnvoyResources) -> Self {
        let mut s = Snapshot::default();
        for l in &r.listeners {
            s.insert(ResourceType::Listener, l.name.clone(), pack(l));
        }
        for rc in &r.routes {
            let any = Any {
                type_url: <RouteConfiguration as prost::Name>::type_url(),
                value: canonical::route_configuration(rc),
            };
            s.insert(ResourceType::Route, rc.name.clone(), any);
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
        s.auth = Arc::new(r.auth.clone());
        s
    }
}

/// Resources in which every kind of reference occurs once: an HTTPS listener
/// naming its SDS secret and RDS table, a TCP proxy listener naming its
/// cluster, a UDP proxy listener naming its cluster, a route to a cluster and
/// one to weighted clusters, EDS clusters.
#[cfg(test)]
pub(crate) fn every_reference_fixture() -> EnvoyResources {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    let names = ["a", "b", "db", "dns"];
    EnvoyResources {
        listeners: vec![
            fixture::https_listener(),
            fixture::tcp_listener(),
            fixture::udp_listener(),
        ],
        routes: vec![fixture::routes()],
        clusters: names
            .iter()
            .map(|n| Cluster {
                name: (*n).into(),
                cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
                ..Default::default()
            })
            .collect(),
        endpoints: names
            .iter()
            .map(|n| ClusterLoadAssignment {
                cluster_name: (*n).into(),
                ..Default::default()
            })
            .collect(),
        secrets: vec![Secret {
            name: "shop/cert".into(),
            ..Default::default()
        }],
        auth: AuthTable::default(),
    }
}

#[cfg(test)]
mod fixture {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
    use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain};
    use envoy_types::pb::envoy::config::route::v3::{
        route, route_action, weighted_cluster, Route, RouteAction, VirtualHost, WeightedCluster,
    };
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_connection_manager::RouteSpecifier, HttpConnectionManager, Rds,
    };
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy, TcpProxy,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    };

    pub(super) fn https_listener() -> Listener {
        let typed = |any: Any| Some(filter::ConfigType::TypedConfig(any));
        let hcm = HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: "https".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let tls = DownstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                    name: "shop/cert".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        Listener {
            name: "https".into(),
            filter_chains: vec![FilterChain {
                transport_socket: Some(TransportSocket {
                    name: "tls".into(),
                    config_type: Some(transport_socket::ConfigType::TypedConfig(pack(&tls))),
                }),
                filters: vec![Filter {
                    name: "hcm".into(),
                    config_type: typed(pack(&hcm)),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    pub(super) fn tcp_listener() -> Listener {
        let typed = |any: Any| Some(filter::ConfigType::TypedConfig(any));
        let tcp = TcpProxy {
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster("db".into())),
            ..Default::default()
        };
        Listener {
            name: "tcp-5432".into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "tcp".into(),
                    config_type: typed(pack(&tcp)),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    pub(super) fn udp_listener() -> Listener {
        use envoy_types::pb::envoy::config::listener::v3::{listener_filter, ListenerFilter};
        use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3::{
            udp_proxy_config::RouteSpecifier, Route, UdpProxyConfig,
        };
        use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
        use envoy_types::pb::xds::r#type::matcher::v3::{matcher, Matcher};
        let route = matcher::OnMatch {
            on_match: Some(matcher::on_match::OnMatch::Action(TypedExtensionConfig {
                name: "route".into(),
                typed_config: Some(pack(&Route {
                    cluster: "dns".into(),
                })),
            })),
            ..Default::default()
        };
        let udp = UdpProxyConfig {
            route_specifier: Some(RouteSpecifier::Matcher(Matcher {
                on_no_match: Some(Box::new(route)),
                matcher_type: None,
            })),
            ..Default::default()
        };
        Listener {
            name: "udp-53".into(),
            udp_listener_config: Some(Default::default()),
            listener_filters: vec![ListenerFilter {
                name: "udp".into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(pack(&udp))),
                filter_disabled: None,
            }],
            ..Default::default()
        }
    }

    pub(super) fn routes() -> RouteConfiguration {
        let to = |spec| Route {
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(spec),
                ..Default::default()
            })),
            ..Default::default()
        };
        let weight = |name: &str| weighted_cluster::ClusterWeight {
            name: name.into(),
            ..Default::default()
        };
        RouteConfiguration {
            name: "https".into(),
            virtual_hosts: vec![VirtualHost {
                name: "*".into(),
                routes: vec![
                    to(route_action::ClusterSpecifier::Cluster("a".into())),
                    to(route_action::ClusterSpecifier::WeightedClusters(
                        WeightedCluster {
                            clusters: vec![weight("a"), weight("b")],
                            ..Default::default()
                        },
                    )),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::{Route, VirtualHost};

    #[test]
    fn consistency_problems_name_every_dangling_reference_and_none_when_complete() {
        let full = every_reference_fixture();
        assert_eq!(full.consistency_problems(), Vec::<String>::new());
        // `a` is routed, `b` only weighted, `db` only TCP-proxied, `dns`
        // only UDP-proxied (and its listener, without filter chains, is fine).
        let dropped = [
            (ResourceType::Cluster, "a"),
            (ResourceType::Cluster, "b"),
            (ResourceType::Cluster, "db"),
            (ResourceType::Cluster, "dns"),
            (ResourceType::Endpoint, "b"),
            (ResourceType::Secret, "shop/cert"),
            (ResourceType::Route, "https"),
        ];
        for (ty, name) in dropped {
            let problems = without(full.clone(), ty, name).consistency_problems();
            let missing = format!("{ty:?} {name:?}");
            assert!(
                problems.iter().any(|p| p.contains(&missing)),
                "without {missing}: {problems:?}"
            );
        }
    }

    fn without(mut r: EnvoyResources, ty: ResourceType, name: &str) -> EnvoyResources {
        match ty {
            ResourceType::Cluster => r.clusters.retain(|c| c.name != name),
            ResourceType::Endpoint => r.endpoints.retain(|e| e.cluster_name != name),
            ResourceType::Secret => r.secrets.retain(|s| s.name != name),
            ResourceType::Route => r.routes.retain(|rc| rc.name != name),
            ResourceType::Listener => r.listeners.retain(|l| l.name != name),
        }
        r
    }

    fn any(url: &str, v: &[u8]) -> Any {
        Any {
            type_url: url.into(),
            value: v.to_vec(),
        }
    }

    #[test]
    fn a_cached_version_is_dropped_by_an_insert_of_its_type_only() {
        for (i, ty) in ResourceType::ALL.into_iter().enumerate() {
            assert_eq!(ty as usize, i, "versions are indexed by ResourceType::ALL");
        }
        let mut s = Snapshot::default();
        s.insert(ResourceType::Cluster, "a", any("t/c", b"1"));
        s.insert(ResourceType::Route, "r", any("t/r", b"1"));
        let (cluster, route) = (
            s.version(ResourceType::Cluster),
            s.version(ResourceType::Route),
        );
        s.insert(ResourceType::Cluster, "a", any("t/c", b"2"));
        assert_ne!(
            s.version(ResourceType::Cluster),
            cluster,
            "read after an insert"
        );
        assert_eq!(s.version(ResourceType::Route), route);
        let mut fresh = Snapshot::default();
        fresh.insert(ResourceType::Cluster, "a", any("t/c", b"2"));
        fresh.insert(ResourceType::Route, "r", any("t/r", b"1"));
        assert_eq!(
            fresh.version(ResourceType::Cluster),
            s.version(ResourceType::Cluster)
        );
        assert_eq!(fresh, s, "equality ignores which versions were read");
    }

    #[test]
    fn route_configurations_encode_canonically_and_decode_to_the_same_message() {
        let rc = |order: &[usize]| {
            let entries = [("a.filter", 1u8), ("b.filter", 2), ("c.filter", 3)];
            let map: std::collections::HashMap<String, Any> = order
                .iter()
                .map(|&i| (entries[i].0.to_string(), any("t/x", &[entries[i].1])))
                .collect();
            RouteConfiguration {
                name: "r".into(),
                virtual_hosts: vec![VirtualHost {
                    name: "v".into(),
                    domains: vec!["*".into()],
                    routes: vec![
                        Route {
                            name: "one".into(),
                            typed_per_filter_config: map.clone(),
                            ..Default::default()
                        },
                        Route {
                            name: "two".into(),
                            ..Default::default()
                        },
                    ],
                    typed_per_filter_config: map,
                    ..Default::default()
                }],
                ..Default::default()
            }
        };
        let first = canonical::route_configuration(&rc(&[0, 1, 2]));
        for _ in 0..50 {
            let other = rc(&[2, 0, 1]);
            assert_eq!(canonical::route_configuration(&other), first);
            let decoded = RouteConfiguration::decode(first.as_slice()).unwrap();
            assert_eq!(decoded, other);
        }
    }
}
