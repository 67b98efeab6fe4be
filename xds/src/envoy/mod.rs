//! Lowering the route model into Envoy resources (LDS/RDS/CDS/EDS/SDS over
//! ADS), one file per resource or HTTP filter. Knows no source: only
//! [`crate::model`].

mod access_log;
mod cluster;
mod endpoint;
mod filters;
mod listener;
mod route;
mod secret;

use crate::model::{HostMatch, Model};
use crate::snapshot::{EnvoyResources, Snapshot};
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, data_source, socket_address, Address, AggregatedConfigSource,
    ApiVersion, ConfigSource, DataSource, SocketAddress,
};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::{Any, Duration};
use prost::{Message, Name};
pub(crate) use route::RouteMemo;
use std::collections::BTreeSet;

pub const HTTP_LISTENER: &str = "http";
pub const HTTPS_LISTENER: &str = "https";
pub const HTTP_ROUTE_CONFIG: &str = "http";
pub const HTTPS_ROUTE_CONFIG: &str = "https";
/// The SNI name of a request's connection, set by the HTTPS listener for
/// the client-certificate routes (removed before the request goes upstream).
const SNI_HEADER: &str = "x-tenantgateway-sni";

/// Which listener a route configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The port the gateway's Service publishes the listener on.
    fn public_port(self) -> &'static str {
        match self {
            Scheme::Http => "80",
            Scheme::Https => "443",
        }
    }
}

/// Every Envoy resource of one tenant's model.
pub(crate) fn build(model: &Model) -> EnvoyResources {
    let (mut resources, tables) = build_without_routes(model);
    resources.routes = tables
        .into_iter()
        .map(|(name, scheme)| route::configuration(model, name, scheme))
        .collect();
    resources
}

/// [`build`] packed as a snapshot, the route tables through `memo`: the
/// virtual hosts of hosts whose routes did not change since the memo's last
/// build are not built or encoded again. Byte for byte
/// `Snapshot::from(&build(model))`. Only the routes of the hosts in
/// `relowered` may differ from those of the memo's last build.
pub(crate) fn build_snapshot(
    model: &Model,
    relowered: &BTreeSet<HostMatch>,
    memo: &mut route::RouteMemo,
) -> Snapshot {
    let (resources, tables) = build_without_routes(model);
    let mut snapshot = Snapshot::from(&resources);
    memo.encoded = 0;
    for (name, scheme) in tables {
        let value = route::configuration_encoded(model, name, scheme, memo, relowered);
        let any = Any {
            type_url: <RouteConfiguration as Name>::type_url(),
            value,
        };
        snapshot.insert(crate::snapshot::ResourceType::Route, name, any);
    }
    memo.finish();
    snapshot
}

/// Every resource but the route tables, and the route tables to build
/// (name and scheme), in name order.
fn build_without_routes(model: &Model) -> (EnvoyResources, Vec<(&'static str, Scheme)>) {
    let http_filters = filters::HttpFilters::of(model);
    let mut listeners = vec![listener::http(model, &http_filters)];
    let https = listener::https(model, &http_filters);
    let has_https = https.is_some();
    listeners.extend(https);
    listeners.extend(
        model
            .tcp
            .iter()
            .map(|(port, tcp)| listener::tcp(model, *port, &tcp.backend)),
    );
    listeners.extend(
        model
            .udp
            .iter()
            .map(|(port, udp)| listener::udp(model, *port, &udp.backend)),
    );
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    // The https route table only exists when an https listener uses it:
    // building (and pushing) an unused copy doubled the work per change.
    let mut tables = vec![(HTTP_ROUTE_CONFIG, Scheme::Http)];
    tables.extend(has_https.then_some((HTTPS_ROUTE_CONFIG, Scheme::Https)));
    let resources = EnvoyResources {
        listeners,
        auth: crate::authz::AuthTable::of(model),
        ..backends_and_secrets(model)
    };
    (resources, tables)
}

/// The clusters, endpoints and secrets of a model (any listener layout).
fn backends_and_secrets(model: &Model) -> EnvoyResources {
    EnvoyResources {
        clusters: model.backends.values().map(cluster::cluster).collect(),
        // Fallback (aggregate) clusters have no endpoints of their own.
        endpoints: model
            .backends
            .values()
            .filter(|b| b.fallbacks.is_empty())
            .map(endpoint::load_assignment)
            .collect(),
        secrets: model.certificates.values().map(secret::secret).collect(),
        ..EnvoyResources::default()
    }
}

/// Every Envoy resource of a Gateway API Gateway's model: one listener per
/// port, one route configuration per HTTP port and per HTTPS listener.
pub(crate) fn build_gateway(model: &Model) -> EnvoyResources {
    use crate::model::PortProtocol;
    let mut listeners: Vec<_> = model
        .ports
        .iter()
        .map(|p| listener::gateway_port(model, p))
        .collect();
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    let mut routes: Vec<_> = model
        .ports
        .iter()
        .flat_map(|p| match &p.protocol {
            PortProtocol::Http(table) => vec![route::host_routes_configuration(table)],
            PortProtocol::Tls { http, .. } => http
                .iter()
                .map(|c| route::host_routes_configuration(&c.routes))
                .collect(),
            PortProtocol::Tcp(_) | PortProtocol::Udp(_) => vec![],
        })
        .collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut resources = EnvoyResources {
        listeners,
        routes,
        ..backends_and_secrets(model)
    };
    // Envoy's UDP proxy takes one cluster, not weighted ones: each UDP port
    // gets a cluster of its own with one locality per backend, weighted.
    for p in &model.ports {
        if let PortProtocol::Udp(chain) = &p.protocol {
            let name = listener::gateway_udp_cluster_name(p.port);
            resources.clusters.push(cluster::weighted_udp(&name));
            resources.endpoints.push(endpoint::weighted_load_assignment(
                &name,
                model,
                &chain.backends,
            ));
        }
    }
    resources.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    resources
        .endpoints
        .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    resources
}

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// [`any`] for a message this crate mirrors (wire-compatible, own type).
fn any_named<M: Message>(type_name: &str, m: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: m.encode_to_vec(),
    }
}

fn secs(s: i64) -> Duration {
    Duration {
        seconds: s,
        nanos: 0,
    }
}

fn dur(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

fn socket(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

fn inline_bytes(b: &[u8]) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(b.to_vec())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
