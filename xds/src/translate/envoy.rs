//! Writing the routing plan as Envoy resources (LDS/RDS/CDS/EDS/SDS over ADS).

use super::backends::ClusterPlan;
use super::rules::{HostMatch, PathMatch, Plan, RoutePlan, Target};
use super::GatewayOptions;
use crate::snapshot::EnvoyResources;
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, data_source, socket_address, transport_socket, AggregatedConfigSource,
    ApiVersion, ConfigSource, DataSource, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, DirectResponseAction, HeaderMatcher, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret, TlsCertificate,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration};
use prost::{Message, Name};
use std::collections::BTreeMap;

pub const HTTP_LISTENER: &str = "http";
pub const HTTPS_LISTENER: &str = "https";
pub const HTTP_ROUTE_CONFIG: &str = "http";
pub const HTTPS_ROUTE_CONFIG: &str = "https";

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn secs(s: i64) -> Duration {
    Duration {
        seconds: s,
        nanos: 0,
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

pub(crate) fn build(plan: &Plan, options: &GatewayOptions) -> EnvoyResources {
    let virtual_hosts = virtual_hosts(plan);
    let mut listeners = vec![http_listener(options)];
    if let Some(l) = https_listener(plan, options) {
        listeners.push(l);
    }
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    let route_config = |name: &str| RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: virtual_hosts.clone(),
        // `Host: shop.example.com:8080` matches the vhost `shop.example.com`.
        ignore_port_in_host_matching: true,
        ..Default::default()
    };
    EnvoyResources {
        routes: vec![
            route_config(HTTP_ROUTE_CONFIG),
            route_config(HTTPS_ROUTE_CONFIG),
        ],
        clusters: plan.clusters.values().map(cluster).collect(),
        endpoints: plan.clusters.values().map(load_assignment).collect(),
        secrets: plan
            .secrets
            .values()
            .map(|s| Secret {
                name: s.name.clone(),
                r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                    certificate_chain: Some(inline_bytes(&s.cert_chain)),
                    private_key: Some(inline_bytes(&s.private_key)),
                    ..Default::default()
                })),
            })
            .collect(),
        listeners,
    }
}

fn inline_bytes(b: &[u8]) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(b.to_vec())),
        ..Default::default()
    }
}

fn cluster(c: &ClusterPlan) -> Cluster {
    Cluster {
        name: c.name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        connect_timeout: Some(secs(5)),
        lb_policy: cluster::LbPolicy::RoundRobin as i32,
        ..Default::default()
    }
}

fn load_assignment(c: &ClusterPlan) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = c
        .endpoints
        .iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(ip, *port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: c.name.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route_name(r: &RoutePlan, host: &HostMatch) -> String {
    let path = match &r.path {
        PathMatch::Exact(p) => format!("exact:{p}"),
        PathMatch::Prefix(p) => format!("prefix:{p}"),
    };
    format!("{}|{}|{path}", r.source, host.display())
}

fn path_specifier(p: &PathMatch) -> route_match::PathSpecifier {
    match p {
        PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
        PathMatch::Prefix(p) if p == "/" => route_match::PathSpecifier::Prefix("/".into()),
        // Element-wise: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`.
        PathMatch::Prefix(p) => route_match::PathSpecifier::PathSeparatedPrefix(p.clone()),
    }
}

/// `*.example.com` in Envoy matches any depth; Kubernetes means exactly one label.
fn one_label_authority(wildcard: &str) -> HeaderMatcher {
    let suffix = wildcard.trim_start_matches('*');
    HeaderMatcher {
        name: ":authority".into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                    // Host names are case-insensitive (ignore_case does not apply to regexes).
                    regex: format!("(?i)^[^.:]+{}(:[0-9]+)?$", regex::escape(suffix)),
                    ..Default::default()
                })),
                ignore_case: false,
            },
        )),
        ..Default::default()
    }
}

fn envoy_route(r: &RoutePlan, host: &HostMatch, authority: Option<&HeaderMatcher>) -> Route {
    let action = match &r.target {
        Target::Cluster(c) => route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(c.clone())),
            // No overall deadline (long polls, WebSockets); idle like nginx's proxy-read-timeout.
            timeout: Some(secs(0)),
            idle_timeout: Some(secs(60)),
            ..Default::default()
        }),
        Target::Unavailable => route::Action::DirectResponse(DirectResponseAction {
            status: 503,
            ..Default::default()
        }),
    };
    Route {
        name: route_name(r, host),
        r#match: Some(RouteMatch {
            path_specifier: Some(path_specifier(&r.path)),
            headers: authority.cloned().into_iter().collect(),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

fn not_found(host: &HostMatch, authority: Option<&HeaderMatcher>) -> Route {
    Route {
        name: format!("not-found|{}", host.display()),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            headers: authority.cloned().into_iter().collect(),
            ..Default::default()
        }),
        action: Some(route::Action::DirectResponse(DirectResponseAction {
            status: 404,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Requests whose host matches a rule are answered by that rule's paths, then
/// the default backend; requests matching no host use the rules without host.
fn virtual_hosts(plan: &Plan) -> Vec<VirtualHost> {
    let any = HostMatch::Any;
    let default_for = |host: &HostMatch, auth: Option<&HeaderMatcher>| -> Route {
        match &plan.default_backend {
            Some(d) => envoy_route(d, host, auth),
            None => not_found(host, auth),
        }
    };
    let catch_all: Vec<Route> = plan
        .hosts
        .get(&any)
        .into_iter()
        .flatten()
        .map(|r| envoy_route(r, &any, None))
        .chain(
            plan.default_backend
                .iter()
                .map(|d| envoy_route(d, &any, None)),
        )
        .collect();

    let mut vhosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
    for (host, routes) in &plan.hosts {
        let (domain, mut list) = match host {
            HostMatch::Any => continue,
            HostMatch::Exact(h) => {
                let mut list: Vec<Route> =
                    routes.iter().map(|r| envoy_route(r, host, None)).collect();
                if plan.default_backend.is_some() {
                    list.push(default_for(host, None));
                }
                (h.clone(), list)
            }
            HostMatch::Wildcard(w) => {
                let auth = one_label_authority(w);
                let mut list: Vec<Route> = routes
                    .iter()
                    .map(|r| envoy_route(r, host, Some(&auth)))
                    .collect();
                list.push(default_for(host, Some(&auth)));
                // Deeper names (a.b.example.com) match no rule host: fall back.
                list.extend(catch_all.iter().cloned());
                (w.clone(), list)
            }
        };
        list.dedup();
        vhosts.insert(
            domain.clone(),
            VirtualHost {
                name: domain.clone(),
                domains: vec![domain],
                routes: list,
                ..Default::default()
            },
        );
    }
    let mut out: Vec<VirtualHost> = vhosts.into_values().collect();
    out.push(VirtualHost {
        name: "*".into(),
        domains: vec!["*".into()],
        routes: catch_all,
        ..Default::default()
    });
    out
}

fn http_connection_manager(stat_prefix: &str, route_config: &str) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..Default::default()
        }],
        // The client's address is the peer: append it to X-Forwarded-For and
        // set X-Forwarded-Proto; trust no forwarded headers from clients.
        use_remote_address: Some(BoolValue { value: true }),
        // RFC 3986 normalisation before matching: `/a/../admin` cannot dodge a rule.
        normalize_path: Some(BoolValue { value: true }),
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
    }
}

fn http_listener(options: &GatewayOptions) -> Listener {
    Listener {
        name: HTTP_LISTENER.into(),
        address: Some(socket(&options.bind_address, options.http_port)),
        filter_chains: vec![FilterChain {
            filters: vec![http_connection_manager(HTTP_LISTENER, HTTP_ROUTE_CONFIG)],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One filter chain per certificate, selected by SNI; no listener when no TLS.
fn https_listener(plan: &Plan, options: &GatewayOptions) -> Option<Listener> {
    let mut by_secret: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (host, secret) in &plan.tls_hosts {
        by_secret.entry(secret).or_default().push(host.clone());
    }
    if by_secret.is_empty() {
        return None;
    }
    let filter_chains = by_secret
        .into_iter()
        .map(|(secret, server_names)| {
            let tls = DownstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                        name: secret.to_string(),
                        sds_config: Some(ads_config_source()),
                    }],
                    alpn_protocols: vec!["h2".into(), "http/1.1".into()],
                    ..Default::default()
                }),
                ..Default::default()
            };
            FilterChain {
                name: secret.to_string(),
                filter_chain_match: Some(FilterChainMatch {
                    server_names,
                    ..Default::default()
                }),
                transport_socket: Some(TransportSocket {
                    name: "envoy.transport_sockets.tls".into(),
                    config_type: Some(transport_socket::ConfigType::TypedConfig(any(&tls))),
                }),
                filters: vec![http_connection_manager(HTTPS_LISTENER, HTTPS_ROUTE_CONFIG)],
                ..Default::default()
            }
        })
        .collect();
    Some(Listener {
        name: HTTPS_LISTENER.into(),
        address: Some(socket(&options.bind_address, options.https_port)),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                &TlsInspector::default(),
            ))),
            filter_disabled: None,
        }],
        filter_chains,
        ..Default::default()
    })
}
