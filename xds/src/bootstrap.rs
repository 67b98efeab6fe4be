//! Envoy bootstraps: the ADS bootstrap a tenant pod starts with, and the fully
//! static bootstrap `tenant-gateway render` prints. Both are written from the
//! same prost messages as served over ADS and printed as canonical proto-JSON
//! (then YAML) through the descriptor set shipped with envoy-types.

use crate::snapshot::EnvoyResources;
use crate::translate::ads_config_source;
use envoy_types::pb::envoy::config::bootstrap::v3::{bootstrap, Admin, Bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::ConfigSource;
use envoy_types::pb::envoy::config::core::v3::{
    address, grpc_service, socket_address, transport_socket, Address, GrpcService,
    Http2ProtocolOptions, Node, Pipe, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, HeaderMatcher, RouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::health_check::v3::HealthCheck;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, StringMatcher};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration};
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;

/// Name of the bootstrap cluster that reaches the xDS sidecar.
pub const XDS_CLUSTER: &str = "tenant-gateway-xds";

/// Name of the bootstrap cluster that reaches the sidecar's authorization
/// server (ext_authz checks of routes with an auth policy).
pub const AUTHZ_CLUSTER: &str = "tenant-gateway-authz";

/// The authorization server's socket: `authz.sock` beside the ADS socket,
/// in the emptyDir Envoy and the sidecar share.
pub fn authz_socket_path(ads_socket: &str) -> String {
    match ads_socket.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/authz.sock"),
        None => "authz.sock".to_string(),
    }
}

/// Where a static bootstrap expects the authorization server (the pod's).
const STATIC_AUTHZ_SOCKET: &str = "/var/run/tenant-gateway/authz.sock";

/// A static HTTP/2 (gRPC) cluster reaching the sidecar on a Unix socket.
fn grpc_pipe_cluster(name: &str, socket_path: &str) -> Cluster {
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            ),
        ),
        ..Default::default()
    };
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack(&http2),
        )]
        .into(),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(Address {
                            address: Some(address::Address::Pipe(Pipe {
                                path: socket_path.to_string(),
                                mode: 0,
                            })),
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

static DESCRIPTORS: &[u8] = include_bytes!("../descriptors/envoy-types-0.7.7.bin.gz");

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("loading the Envoy descriptor set: {0}")]
    Descriptors(String),
    #[error("message type {0} is not in the descriptor set")]
    UnknownType(String),
    #[error("decoding {0}: {1}")]
    Decode(String, prost::DecodeError),
    #[error("printing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("printing YAML: {0}")]
    Yaml(#[from] crate::yaml::SerializeError),
}

fn pool() -> Result<&'static DescriptorPool, BootstrapError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(DESCRIPTORS)
            .read_to_end(&mut raw)
            .map_err(|e| e.to_string())?;
        DescriptorPool::decode(raw.as_slice()).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| BootstrapError::Descriptors(e.clone()))
}

/// Canonical proto-JSON of any envoy-types message (Any fields expanded).
pub fn to_json<M: Message + Name>(m: &M) -> Result<serde_json::Value, BootstrapError> {
    let pool = pool()?;
    let name = M::full_name();
    let desc = pool
        .get_message_by_name(&name)
        .ok_or_else(|| BootstrapError::UnknownType(name.clone()))?;
    let dynamic = DynamicMessage::decode(desc, m.encode_to_vec().as_slice())
        .map_err(|e| BootstrapError::Decode(name, e))?;
    let opts = SerializeOptions::new().stringify_64_bit_integers(false);
    Ok(dynamic.serialize_with_options(serde_json::value::Serializer, &opts)?)
}

/// The bootstrap as YAML.
pub fn to_yaml(b: &Bootstrap) -> Result<String, BootstrapError> {
    Ok(crate::yaml::to_string(&to_json(b)?)?)
}

fn admin(admin_port: u16) -> Admin {
    Admin {
        // Admin is never on the network: loopback only.
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                    admin_port,
                ))),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

fn node(node_id: &str, cluster: &str) -> Node {
    Node {
        id: node_id.to_string(),
        cluster: cluster.to_string(),
        ..Default::default()
    }
}

fn pack<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// A static listener answering `GET /ready` from Envoy itself (200 while
/// live, 503 once `/healthcheck/fail` starts a drain). Kubelet readiness
/// probes use it, so Envoy's readiness never depends on the xDS sidecar.
fn health_listener(port: u16) -> Listener {
    let health = HealthCheck {
        pass_through_mode: Some(BoolValue { value: false }),
        headers: vec![HeaderMatcher {
            name: ":path".into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact("/ready".into())),
                    ignore_case: false,
                },
            )),
            ..Default::default()
        }],
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: "health".into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(
            RouteConfiguration {
                name: "health".into(),
                virtual_hosts: vec![VirtualHost {
                    name: "health".into(),
                    domains: vec!["*".into()],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )),
        http_filters: vec![
            HttpFilter {
                name: "envoy.filters.http.health_check".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack(&health))),
                ..Default::default()
            },
            HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack(
                    &Router::default(),
                ))),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    Listener {
        name: "health".into(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "0.0.0.0".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The bootstrap of a tenant's Envoy: everything comes over ADS from the xDS
/// sidecar on a Unix socket in a shared emptyDir (never on the network).
/// `health_port` adds the readiness listener (see [`health_listener`]).
pub fn ads_bootstrap(
    node_id: &str,
    tenant: &str,
    socket_path: &str,
    admin_port: u16,
    health_port: Option<u16>,
) -> Bootstrap {
    let xds_cluster = grpc_pipe_cluster(XDS_CLUSTER, socket_path);
    let authz_cluster = grpc_pipe_cluster(AUTHZ_CLUSTER, &authz_socket_path(socket_path));
    // Stay initializing until the sidecar's first complete config arrives,
    // rather than going live empty after the default 15 s.
    let ads = ConfigSource {
        initial_fetch_timeout: Some(Duration {
            seconds: 0,
            nanos: 0,
        }),
        ..ads_config_source()
    };
    Bootstrap {
        node: Some(node(node_id, tenant)),
        admin: Some(admin(admin_port)),
        static_resources: Some(bootstrap::StaticResources {
            clusters: vec![xds_cluster, authz_cluster],
            listeners: health_port.map(health_listener).into_iter().collect(),
            ..Default::default()
        }),
        dynamic_resources: Some(bootstrap::DynamicResources {
            ads_config: Some(envoy_types::pb::envoy::config::core::v3::ApiConfigSource {
                api_type: envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType::Grpc
                    as i32,
                transport_api_version: envoy_types::pb::envoy::config::core::v3::ApiVersion::V3
                    as i32,
                set_node_on_first_message_only: true,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: XDS_CLUSTER.into(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            lds_config: Some(ads.clone()),
            cds_config: Some(ads),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A fully static bootstrap serving exactly what ADS would serve: RDS route
/// configurations, EDS endpoints and SDS secrets are inlined by name.
pub fn static_bootstrap(
    resources: &EnvoyResources,
    node_id: &str,
    tenant: &str,
    admin_port: u16,
) -> Bootstrap {
    let routes: BTreeMap<&str, _> = resources
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r))
        .collect();
    let endpoints: BTreeMap<&str, _> = resources
        .endpoints
        .iter()
        .map(|e| (e.cluster_name.as_str(), e))
        .collect();
    let listeners = resources
        .listeners
        .iter()
        .map(|l| inline_listener(l, &routes))
        .collect();
    // Auth checks need the sidecar: a static config without one answers
    // them 500 (the filter fails closed), but must name the cluster.
    let authz =
        (!resources.auth.is_empty()).then(|| grpc_pipe_cluster(AUTHZ_CLUSTER, STATIC_AUTHZ_SOCKET));
    let clusters = resources
        .clusters
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c.eds_cluster_config.take().is_some() {
                c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Static as i32,
                ));
                c.load_assignment = Some(endpoints.get(c.name.as_str()).map_or_else(
                    || ClusterLoadAssignment {
                        cluster_name: c.name.clone(),
                        ..Default::default()
                    },
                    |e| (*e).clone(),
                ));
            }
            c
        })
        .chain(authz)
        .collect();
    Bootstrap {
        node: Some(node(node_id, tenant)),
        admin: Some(admin(admin_port)),
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            secrets: resources.secrets.clone(),
        }),
        ..Default::default()
    }
}

fn inline_listener(
    l: &Listener,
    routes: &BTreeMap<&str, &envoy_types::pb::envoy::config::route::v3::RouteConfiguration>,
) -> Listener {
    let mut l = l.clone();
    for chain in &mut l.filter_chains {
        for f in &mut chain.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                continue;
            };
            if any.type_url != HttpConnectionManager::type_url() {
                continue;
            }
            let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
                continue;
            };
            if let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
                let rc = routes
                    .get(rds.route_config_name.as_str())
                    .map(|r| (*r).clone())
                    .unwrap_or_default();
                hcm.route_specifier =
                    Some(http_connection_manager::RouteSpecifier::RouteConfig(rc));
                *any = pack(&hcm);
            }
        }
        if let Some(TransportSocket {
            config_type: Some(transport_socket::ConfigType::TypedConfig(any)),
            ..
        }) = &mut chain.transport_socket
        {
            if let Ok(mut tls) = DownstreamTlsContext::decode(any.value.as_slice()) {
                if let Some(common) = &mut tls.common_tls_context {
                    // Static secrets are referenced by name with no config source.
                    for sds in &mut common.tls_certificate_sds_secret_configs {
                        sds.sds_config = None;
                    }
                }
                *any = pack(&tls);
            }
        }
    }
    l
}
