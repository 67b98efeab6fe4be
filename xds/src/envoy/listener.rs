//! LDS: the HTTP listener, the HTTPS listener (one filter chain per
//! certificate, selected by SNI), one listener per TCP route and one UDP
//! listener per UDP route.

use super::access_log::access_logs;
use super::filters::{gateway_chain, HttpFilters};
use super::{
    ads_config_source, any, inline_bytes, socket, HTTPS_LISTENER, HTTPS_ROUTE_CONFIG,
    HTTP_LISTENER, HTTP_ROUTE_CONFIG, SNI_HEADER,
};
use crate::model::{
    AccessLog, Cidr, ClientAddress, ClientAuth, ClientVerify, ForwardedForTrust, Model,
    PortListener, PortProtocol, SniCertificate, TcpChain, TlsVersion, WeightedBackend,
};
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    certificate_validation_context, common_tls_context, tls_parameters,
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    TlsParameters,
};
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value};
use std::collections::BTreeMap;

/// Before routing, the connection's SNI name in [`SNI_HEADER`] (a client's
/// own value replaced), for the client-certificate routes to compare with
/// the host the request names.
fn sni_header_mutation() -> TypedExtensionConfig {
    use envoy_types::pb::envoy::config::common::mutation_rules::v3::{
        header_mutation, HeaderMutation as Mutation,
    };
    use envoy_types::pb::envoy::config::core::v3::{
        header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
    };
    use envoy_types::pb::envoy::extensions::http::early_header_mutation::header_mutation::v3::HeaderMutation;
    let set = Mutation {
        action: Some(header_mutation::Action::Append(HeaderValueOption {
            header: Some(HeaderValue {
                key: SNI_HEADER.into(),
                value: "%REQUESTED_SERVER_NAME%".into(),
                ..Default::default()
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        })),
    };
    let remove = Mutation {
        action: Some(header_mutation::Action::Remove(SNI_HEADER.into())),
    };
    TypedExtensionConfig {
        name: "envoy.http.early_header_mutation.header_mutation".into(),
        typed_config: Some(any(&HeaderMutation {
            mutations: vec![remove, set],
        })),
    }
}

fn http_connection_manager(
    stat_prefix: &str,
    route_config: &str,
    http_filters: Vec<HttpFilter>,
    model: &Model,
) -> Filter {
    http_connection_manager_with(stat_prefix, route_config, http_filters, false, model)
}

/// The PROXY protocol's listener filter (v1 and v2 both), first of a TCP
/// listener's filters when the tenant asks for it: Envoy's remote address
/// is then the header's source. A connection without a header is closed.
fn proxy_protocol() -> ListenerFilter {
    use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
    ListenerFilter {
        name: "envoy.filters.listener.proxy_protocol".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &ProxyProtocol::default(),
        ))),
        filter_disabled: None,
    }
}

/// A TCP listener's listener filters: the PROXY protocol's first (it must
/// read the header before the TLS inspector reads the ClientHello), then `rest`.
fn with_proxy_protocol(client: &ClientAddress, rest: Vec<ListenerFilter>) -> Vec<ListenerFilter> {
    client
        .proxy_protocol
        .then(proxy_protocol)
        .into_iter()
        .chain(rest)
        .collect()
}

fn cidr_range(c: &Cidr) -> envoy_types::pb::envoy::config::core::v3::CidrRange {
    envoy_types::pb::envoy::config::core::v3::CidrRange {
        address_prefix: c.addr.to_string(),
        prefix_len: Some(UInt32Value { value: c.len }),
    }
}

/// How the connection manager computes the client address (the remote
/// address RBAC's `remote_ip`, the rate limits' `remote_address`, X-Real-IP
/// and the access log see): `(use_remote_address, xff_num_trusted_hops,
/// original_ip_detection_extensions)`. Envoy refuses the extensions together
/// with either of the other two.
fn client_address_detection(
    client: &ClientAddress,
) -> (Option<BoolValue>, u32, Vec<TypedExtensionConfig>) {
    use envoy_types::pb::envoy::extensions::http::original_ip_detection::xff::v3::{
        XffConfig, XffTrustedCidrs,
    };
    match &client.forwarded_for {
        // The client's address is the peer: appended to X-Forwarded-For;
        // X-Forwarded-Proto set; no forwarded header from a client believed.
        ForwardedForTrust::None => (Some(BoolValue { value: true }), 0, vec![]),
        // The peer appended to X-Forwarded-For, then the entry `n` from its
        // right end (the peer itself when there are fewer).
        ForwardedForTrust::TrustedHops(n) => (Some(BoolValue { value: true }), *n, vec![]),
        // Only a peer in the ranges is believed: the rightmost entry outside
        // them; any other peer is the client.
        ForwardedForTrust::TrustedCidrs(cidrs) => (
            None,
            0,
            vec![TypedExtensionConfig {
                name: "envoy.http.original_ip_detection.xff".into(),
                typed_config: Some(any(&XffConfig {
                    xff_trusted_cidrs: Some(XffTrustedCidrs {
                        cidrs: cidrs.iter().map(cidr_range).collect(),
                    }),
                    // Append the peer, as with `use_remote_address`.
                    skip_xff_append: Some(BoolValue { value: false }),
                    ..Default::default()
                })),
            }],
        ),
    }
}

/// How long a connection Envoy drains (its pod is going away: health check
/// failed, listeners draining) stays open after its last response. Envoy's
/// default, 5 s, also holds an HTTP/1.1 connection whose request asked
/// `Connection: close` — RFC 9112 §9.6 says the server closes it after the
/// response — so a client that waits for that close (as the drain tests'
/// client does) waited 5 s for an answer it already had: the "unanswered"
/// request of issue 15 item 7. 1 s still gives HTTP/2 clients the grace for
/// streams racing the final GOAWAY.
pub const DRAIN_TIMEOUT_SECONDS: i64 = 1;

/// [`http_connection_manager`], setting [`SNI_HEADER`] when `sni_header`.
fn http_connection_manager_with(
    stat_prefix: &str,
    route_config: &str,
    http_filters: Vec<HttpFilter>,
    sni_header: bool,
    model: &Model,
) -> Filter {
    let log = &model.access_log;
    let (use_remote_address, xff_num_trusted_hops, original_ip_detection_extensions) =
        client_address_detection(&model.client_address);
    let hcm = HttpConnectionManager {
        access_log: access_logs(log),
        early_header_mutation_extensions: sni_header
            .then(sni_header_mutation)
            .into_iter()
            .collect(),
        stat_prefix: stat_prefix.to_string(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config.to_string(),
        })),
        http_filters,
        use_remote_address,
        xff_num_trusted_hops,
        original_ip_detection_extensions,
        // RFC 3986 normalisation before matching: `/a/../admin` cannot dodge a rule.
        normalize_path: Some(BoolValue { value: true }),
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        drain_timeout: Some(PbDuration {
            seconds: DRAIN_TIMEOUT_SECONDS,
            nanos: 0,
        }),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
    }
}

/// `tcp-<port>`: every connection forwarded to the Service port's endpoints.
pub(super) fn tcp(model: &Model, port: u16, cluster: &str) -> Listener {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy, TcpProxy,
    };
    let name = format!("tcp-{port}");
    let proxy = TcpProxy {
        stat_prefix: name.clone(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_string())),
        access_log: access_logs(&model.access_log),
        ..Default::default()
    };
    Listener {
        name,
        address: Some(socket(&model.listeners.bind_address, port)),
        listener_filters: with_proxy_protocol(&model.client_address, vec![]),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&proxy))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `udp-<port>`: a UDP listener whose datagrams go to the Service port's
/// endpoints (one upstream per client address and port, Envoy's UDP session).
/// A UDP listener has no filter chains: the `udp_proxy` listener filter is
/// the whole pipeline.
pub(super) fn udp(model: &Model, port: u16, cluster: &str) -> Listener {
    udp_listener(
        format!("udp-{port}"),
        &model.listeners.bind_address,
        port,
        cluster,
    )
}

/// A UDP listener named `name` on `address:port`, every datagram to `cluster`.
fn udp_listener(name: String, address: &str, port: u16, cluster: &str) -> Listener {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    use envoy_types::pb::envoy::config::listener::v3::UdpListenerConfig;
    use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3::{
        udp_proxy_config, Route, UdpProxyConfig,
    };
    use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
    use envoy_types::pb::xds::r#type::matcher::v3::{matcher, Matcher};
    // Every datagram matches no rule, so `on_no_match` routes them all
    // (the `cluster` field this replaces is deprecated).
    let route = matcher::OnMatch {
        keep_matching: false,
        on_match: Some(matcher::on_match::OnMatch::Action(TypedExtensionConfig {
            name: "route".into(),
            typed_config: Some(any(&Route {
                cluster: cluster.to_string(),
            })),
        })),
    };
    let proxy = UdpProxyConfig {
        stat_prefix: name.clone(),
        route_specifier: Some(udp_proxy_config::RouteSpecifier::Matcher(Matcher {
            on_no_match: Some(Box::new(route)),
            matcher_type: None,
        })),
        ..Default::default()
    };
    let mut address = socket(address, port);
    if let Some(address::Address::SocketAddress(a)) = &mut address.address {
        a.protocol = socket_address::Protocol::Udp as i32;
    }
    Listener {
        name,
        address: Some(address),
        udp_listener_config: Some(UdpListenerConfig::default()),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.udp_listener.udp_proxy".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(&proxy))),
            filter_disabled: None,
        }],
        ..Default::default()
    }
}

pub(super) fn http(model: &Model, filters: &HttpFilters) -> Listener {
    Listener {
        name: HTTP_LISTENER.into(),
        address: Some(socket(
            &model.listeners.bind_address,
            model.listeners.http_port,
        )),
        listener_filters: with_proxy_protocol(&model.client_address, vec![]),
        filter_chains: vec![FilterChain {
            filters: vec![http_connection_manager(
                HTTP_LISTENER,
                HTTP_ROUTE_CONFIG,
                filters.chain(),
                model,
            )],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &TlsInspector::default(),
        ))),
        filter_disabled: None,
    }
}

/// ALPN of a TLS-terminated HTTP connection.
const HTTP_ALPN: &[&str] = &["h2", "http/1.1"];

fn tls_transport_socket(
    certificates: &[String],
    tls_params: Option<TlsParameters>,
    alpn: &[&str],
    client_auth: Option<&ClientAuth>,
) -> TransportSocket {
    let tls = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params,
            tls_certificate_sds_secret_configs: certificates
                .iter()
                .map(|secret| SdsSecretConfig {
                    name: secret.clone(),
                    sds_config: Some(ads_config_source()),
                })
                .collect(),
            alpn_protocols: alpn.iter().map(|a| a.to_string()).collect(),
            validation_context_type: client_auth.map(client_validation),
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&tls))),
    }
}

/// Ask for a client certificate (the CA named in the request) and accept
/// any: the routes of the host judge whether it verified (`tls_context`
/// matches), so that a bad or missing certificate gets nginx's 400 (or the
/// error page) and a request cannot reach this host's routes over another
/// host's connection unverified.
fn client_validation(c: &ClientAuth) -> common_tls_context::ValidationContextType {
    use certificate_validation_context::TrustChainVerification;
    common_tls_context::ValidationContextType::ValidationContext(CertificateValidationContext {
        trusted_ca: Some(inline_bytes(&c.ca)),
        crl: c.crl.as_deref().map(inline_bytes),
        max_verify_depth: Some(UInt32Value { value: c.max_depth }),
        trust_chain_verification: TrustChainVerification::AcceptUntrusted as i32,
        ..Default::default()
    })
}

/// The Envoy listener of one Gateway port: `gateway-<port>`, bound to its
/// unprivileged port. HTTP uses the port's route table; a TLS port has one
/// filter chain (and route table) per HTTPS listener and one TCP proxy chain
/// per SNI set of its TLS listeners, chosen by SNI.
pub(super) fn gateway_port(model: &Model, port: &PortListener) -> Listener {
    if let PortProtocol::Udp(_) = &port.protocol {
        return udp_listener(
            gateway_udp_listener_name(port.port),
            &model.listeners.bind_address,
            port.bind_port,
            &gateway_udp_cluster_name(port.port),
        );
    }
    let name = gateway_listener_name(port.port);
    let (filter_chains, listener_filters) = match &port.protocol {
        PortProtocol::Http(routes) => (
            vec![FilterChain {
                filters: vec![http_connection_manager(
                    &name,
                    &routes.name,
                    gateway_chain(),
                    model,
                )],
                ..Default::default()
            }],
            vec![],
        ),
        PortProtocol::Tls { http, tcp } => (
            http.iter()
                .map(|c| FilterChain {
                    name: c.name.clone(),
                    filter_chain_match: sni_match(&c.server_names),
                    transport_socket: Some(tls_transport_socket(
                        &c.certificates,
                        None,
                        HTTP_ALPN,
                        None,
                    )),
                    filters: vec![http_connection_manager(
                        &name,
                        &c.routes.name,
                        gateway_chain(),
                        model,
                    )],
                    ..Default::default()
                })
                .chain(tcp.iter().map(|c| tcp_chain(&name, c, &model.access_log)))
                .collect(),
            vec![tls_inspector()],
        ),
        // No TLS inspector: it would wait for a client's first bytes, and a
        // server-first protocol's client sends none.
        PortProtocol::Tcp(c) => (
            vec![FilterChain {
                name: c.name.clone(),
                filters: vec![tcp_proxy_filter(
                    &format!("{name}|{}", c.name),
                    &c.backends,
                    &model.access_log,
                )],
                ..Default::default()
            }],
            vec![],
        ),
        PortProtocol::Udp(_) => (vec![], vec![]),
    };
    let mut filter_chains = filter_chains;
    if filter_chains.is_empty() {
        // Envoy refuses a listener without filter chains (the whole LDS
        // update would be rejected); a port whose listeners have nothing to
        // serve yet accepts connections and closes them.
        filter_chains.push(FilterChain {
            name: "no-route".into(),
            filters: vec![close_connection()],
            ..Default::default()
        });
    }
    Listener {
        name,
        address: Some(socket(&model.listeners.bind_address, port.bind_port)),
        listener_filters: with_proxy_protocol(&model.client_address, listener_filters),
        filter_chains,
        ..Default::default()
    }
}

/// The filter chain of a TCP chain on a TLS listener: its SNI names to its
/// backends, TLS terminated with its certificates or passed through.
fn tcp_chain(listener: &str, c: &TcpChain, log: &AccessLog) -> FilterChain {
    FilterChain {
        name: c.name.clone(),
        filter_chain_match: sni_match(&c.server_names),
        transport_socket: (!c.certificates.is_empty())
            .then(|| tls_transport_socket(&c.certificates, None, &[], None)),
        filters: vec![tcp_proxy_filter(
            &format!("{listener}|{}", c.name),
            &c.backends,
            log,
        )],
        ..Default::default()
    }
}

/// Connections whose SNI is one of these names (none: any connection).
fn sni_match(server_names: &[String]) -> Option<FilterChainMatch> {
    (!server_names.is_empty()).then(|| FilterChainMatch {
        server_names: server_names.to_vec(),
        ..Default::default()
    })
}

pub(crate) fn gateway_listener_name(port: u16) -> String {
    format!("gateway-{port}")
}

/// A Gateway's UDP port: apart from a TCP listener of the same number.
pub(crate) fn gateway_udp_listener_name(port: u16) -> String {
    format!("gateway-udp-{port}")
}

/// The cluster of a Gateway's UDP port: its backends, one locality each,
/// weighted as the UDPRoute says (see `cluster::weighted_udp`).
pub(crate) fn gateway_udp_cluster_name(port: u16) -> String {
    format!("gateway-udp-{port}")
}

/// A network filter that closes the connection at once, sending nothing:
/// a TLS client sees its handshake end (EOF), the Gateway API's "rejected".
fn close_connection() -> Filter {
    use envoy_types::pb::envoy::extensions::filters::network::direct_response::v3::Config;
    Filter {
        name: "envoy.filters.network.direct_response".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&Config::default()))),
    }
}

/// The TCP proxy to these backends; none (every backend failed to resolve):
/// connections are closed.
fn tcp_proxy_filter(stat_prefix: &str, backends: &[WeightedBackend], log: &AccessLog) -> Filter {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy, TcpProxy,
    };
    let cluster_specifier = match backends {
        [] => return close_connection(),
        [one] => tcp_proxy::ClusterSpecifier::Cluster(one.backend.clone()),
        many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: many
                .iter()
                .map(|b| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: b.backend.clone(),
                    weight: b.weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(cluster_specifier),
        access_log: access_logs(log),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&proxy))),
    }
}

/// The chain name of a TLS host: its certificate, TLS version and client CA.
fn chain_name(sni: &SniCertificate) -> String {
    let mut name = sni.certificate.clone();
    if sni.min_version == TlsVersion::V1_3 {
        name.push_str("|tls1.3");
    }
    if let Some(c) = &sni.client_auth {
        let verify = match c.verify {
            ClientVerify::On => "on",
            ClientVerify::Optional => "optional",
            ClientVerify::OptionalNoCa => "optional_no_ca",
        };
        name.push_str(&format!(
            "|client-ca={}|{verify}|depth={}",
            c.secret, c.max_depth
        ));
    }
    name
}

/// The passed-through hosts' TCP chains, then one filter chain per
/// certificate, TLS version and client CA, selected by SNI; no listener
/// when no TLS.
pub(super) fn https(model: &Model, filters: &HttpFilters) -> Option<Listener> {
    let mut by_chain: BTreeMap<String, (&SniCertificate, Vec<String>)> = BTreeMap::new();
    for (host, sni) in &model.tls {
        by_chain
            .entry(chain_name(sni))
            .or_insert_with(|| (sni, Vec::new()))
            .1
            .push(host.clone());
    }
    if by_chain.is_empty() && model.passthrough.is_empty() {
        return None;
    }
    // Requests may name a host over another host's connection: every chain
    // tells the routes its SNI name while some host asks for certificates.
    let client_auth = model.tls.values().any(|sni| sni.client_auth.is_some());
    let terminated = by_chain.into_iter().map(|(name, (sni, server_names))| {
        let tls_params = (sni.min_version == TlsVersion::V1_3).then(|| TlsParameters {
            tls_minimum_protocol_version: tls_parameters::TlsProtocol::TlSv13 as i32,
            ..Default::default()
        });
        FilterChain {
            name,
            filter_chain_match: Some(FilterChainMatch {
                server_names,
                ..Default::default()
            }),
            transport_socket: Some(tls_transport_socket(
                std::slice::from_ref(&sni.certificate),
                tls_params,
                HTTP_ALPN,
                sni.client_auth.as_deref(),
            )),
            filters: vec![http_connection_manager_with(
                HTTPS_LISTENER,
                HTTPS_ROUTE_CONFIG,
                filters.chain(),
                client_auth,
                model,
            )],
            ..Default::default()
        }
    });
    let filter_chains = model
        .passthrough
        .iter()
        .map(|c| tcp_chain(HTTPS_LISTENER, c, &model.access_log))
        .chain(terminated)
        .collect();
    Some(Listener {
        name: HTTPS_LISTENER.into(),
        address: Some(socket(
            &model.listeners.bind_address,
            model.listeners.https_port,
        )),
        listener_filters: with_proxy_protocol(&model.client_address, vec![tls_inspector()]),
        filter_chains,
        ..Default::default()
    })
}

#[cfg(test)]
#[path = "listener_client_address_tests.rs"]
mod client_address_tests;
