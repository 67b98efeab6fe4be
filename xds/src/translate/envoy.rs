//! Writing the routing plan as Envoy resources (LDS/RDS/CDS/EDS/SDS over ADS).

use super::annotations::{
    Affinity, Algorithm, Cidr, Compression, IngressSettings, RateLimit, TlsVersion,
};
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
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option, CidrRange, HeaderValue, HeaderValueOption, HealthCheck,
};
use envoy_types::pb::envoy::config::core::v3::{Http2ProtocolOptions, RuntimeFractionalPercent};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::config::rbac::v3::{
    permission, principal, rbac, Permission, Policy, Principal, Rbac as RbacRules,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, redirect_action, route, route_action, route_match, weighted_cluster,
    DirectResponseAction, HeaderMatcher, RedirectAction, RetryPolicy, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::config::route::v3::{rate_limit, RateLimit as RouteRateLimit};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor, LocalRateLimitDescriptor,
};
use envoy_types::pb::envoy::extensions::filters::http::buffer::v3::{
    buffer_per_route, Buffer, BufferPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{Rbac, RbacPerRoute};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, subject_alt_name_matcher, CertificateValidationContext,
    SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret, TlsCertificate,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    tls_parameters, TlsParameters,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{
    fractional_percent, FractionalPercent, HttpStatus, Int64Range, TokenBucket,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, UInt32Value};
use prost::{Message, Name};
use std::collections::BTreeMap;

pub const HTTP_LISTENER: &str = "http";
pub const HTTPS_LISTENER: &str = "https";
pub const HTTP_ROUTE_CONFIG: &str = "http";
pub const HTTPS_ROUTE_CONFIG: &str = "https";
const RBAC_FILTER: &str = "envoy.filters.http.rbac";
const BUFFER_FILTER: &str = "envoy.filters.http.buffer";

/// Which listener a route configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

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

pub(crate) fn build(plan: &Plan, options: &GatewayOptions) -> EnvoyResources {
    let limits = Filters {
        limits: rate_limits_of(plan),
        compressors: compressors_of(plan),
    };
    let mut listeners = vec![http_listener(options, &limits)];
    let https = https_listener(plan, options, &limits);
    let has_https = https.is_some();
    listeners.extend(https);
    listeners.extend(
        plan.tcp
            .iter()
            .map(|(port, cluster)| tcp_listener(options, *port, cluster)),
    );
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    let route_config = |name: &str, scheme: Scheme| RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: virtual_hosts(plan, scheme),
        // `Host: shop.example.com:8080` matches the vhost `shop.example.com`.
        ignore_port_in_host_matching: true,
        // As ingress-nginx: the client address for the backend (never the client's own header).
        request_headers_to_add: vec![set_header(
            "x-real-ip",
            "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        )],
        // An Ingress's own header edits apply after (and win over) these.
        most_specific_header_mutations_wins: true,
        ..Default::default()
    };
    EnvoyResources {
        // The https route table only exists when an https listener uses it:
        // building (and pushing) an unused copy doubled the work per change.
        routes: std::iter::once(route_config(HTTP_ROUTE_CONFIG, Scheme::Http))
            .chain(has_https.then(|| route_config(HTTPS_ROUTE_CONFIG, Scheme::Https)))
            .collect(),
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

/// The backend's protocol: HTTP/2 options (one map entry, so the encoding
/// stays deterministic) and, for HTTPS/GRPCS, upstream TLS with SNI and
/// optional verification against the tenant's CA.
fn protocol_options(c: &ClusterPlan, cluster: &mut Cluster) {
    let proto = c.settings.protocol;
    if proto.http2() {
        use http_protocol_options::{explicit_http_config, ExplicitHttpConfig};
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(
                http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    ExplicitHttpConfig {
                        protocol_config: Some(
                            explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                                Http2ProtocolOptions::default(),
                            ),
                        ),
                    },
                ),
            ),
            ..Default::default()
        };
        cluster.typed_extension_protocol_options = [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            any(&options),
        )]
        .into_iter()
        .collect();
    }
    if !proto.tls() {
        return;
    }
    let sni = c
        .settings
        .tls_name
        .clone()
        .unwrap_or_else(|| format!("{}.{}.svc", c.service, c.namespace));
    let validation = c.settings.tls_ca.as_ref().map(|ca| {
        common_tls_context::ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(inline_bytes(ca)),
            match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                san_type: subject_alt_name_matcher::SanType::Dns as i32,
                matcher: Some(StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(sni.clone())),
                    ignore_case: false,
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    });
    let alpn = if proto.http2() { "h2" } else { "http/1.1" };
    let tls = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: validation,
            alpn_protocols: vec![alpn.into()],
            ..Default::default()
        }),
        sni,
        ..Default::default()
    };
    cluster.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&tls))),
    });
}

fn cluster(c: &ClusterPlan) -> Cluster {
    let mut cluster = Cluster {
        name: c.name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        connect_timeout: Some(c.settings.connect_timeout.map_or(secs(5), dur)),
        lb_policy: if c.settings.hashed {
            cluster::LbPolicy::RingHash as i32
        } else {
            cluster::LbPolicy::RoundRobin as i32
        },
        ..Default::default()
    };
    protocol_options(c, &mut cluster);
    health(c, &mut cluster);
    cluster
}

/// Active HTTP health checks and passive outlier detection (`health-check-*`,
/// `outlier-*`).
fn health(c: &ClusterPlan, cluster: &mut Cluster) {
    use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
    use envoy_types::pb::envoy::config::core::v3::health_check;
    use envoy_types::pb::envoy::r#type::v3::CodecClientType;
    if let Some(h) = &c.settings.health_check {
        let codec = if c.settings.protocol.http2() {
            CodecClientType::Http2
        } else {
            CodecClientType::Http1
        };
        cluster.health_checks = vec![HealthCheck {
            timeout: Some(dur(h.timeout)),
            interval: Some(dur(h.interval)),
            // Without traffic Envoy would check only every 60s.
            no_traffic_interval: Some(dur(h.interval)),
            healthy_threshold: Some(UInt32Value {
                value: h.healthy_threshold,
            }),
            unhealthy_threshold: Some(UInt32Value {
                value: h.unhealthy_threshold,
            }),
            health_checker: Some(health_check::HealthChecker::HttpHealthCheck(
                health_check::HttpHealthCheck {
                    // The Service's DNS name, not the cluster name (not a valid Host).
                    host: format!("{}.{}.svc", c.service, c.namespace),
                    path: h.path.clone(),
                    codec_client_type: codec as i32,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }];
    }
    if let Some(o) = &c.settings.outlier {
        cluster.outlier_detection = Some(OutlierDetection {
            consecutive_5xx: Some(UInt32Value {
                value: o.consecutive_5xx,
            }),
            interval: Some(dur(o.interval)),
            base_ejection_time: Some(dur(o.base_ejection_time)),
            // At most half of the endpoints (Envoy's default, 10%, ejects
            // nothing below 10 endpoints), but always one.
            max_ejection_percent: Some(UInt32Value { value: 50 }),
            always_eject_one_host: Some(BoolValue { value: true }),
            ..Default::default()
        });
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
        PathMatch::Regex(p) => format!("regex:{p}"),
    };
    format!("{}|{}|{path}", r.source, host.display())
}

fn path_specifier(p: &PathMatch) -> route_match::PathSpecifier {
    match p {
        PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
        PathMatch::Prefix(p) if p == "/" => route_match::PathSpecifier::Prefix("/".into()),
        // Element-wise: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`.
        PathMatch::Prefix(p) => route_match::PathSpecifier::PathSeparatedPrefix(p.clone()),
        // Full match in Envoy; ingress-nginx's `~* "^<path>"` is a case-insensitive prefix.
        PathMatch::Regex(p) => route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: format!("(?i)(?:{p}).*"),
            ..Default::default()
        }),
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

fn header_regex(name: &str, regex: String) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                    regex,
                    ..Default::default()
                })),
                ignore_case: false,
            },
        )),
        ..Default::default()
    }
}

fn header_exact(name: &str, value: &str) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(value.into())),
                ignore_case: false,
            },
        )),
        ..Default::default()
    }
}

/// `Cookie:` holds `name=value` among others.
fn cookie_is(name: &str, value: &str) -> HeaderMatcher {
    header_regex(
        "cookie",
        format!(
            "(?:.*;\\s*)?{}={}(?:;.*)?",
            regex::escape(name),
            regex::escape(value)
        ),
    )
}

fn route_action(
    s: &IngressSettings,
    source: &str,
    path: &PathMatch,
    spec: route_action::ClusterSpecifier,
) -> RouteAction {
    let mut a = RouteAction {
        cluster_specifier: Some(spec),
        // No overall deadline (long polls, WebSockets); idle like nginx's proxy-read-timeout.
        timeout: Some(secs(0)),
        idle_timeout: Some(dur(s.idle_timeout)),
        rate_limits: route_rate_limits(s, source),
        ..Default::default()
    };
    if s.retry.retries > 0 && !s.retry.on.is_empty() {
        a.retry_policy = Some(RetryPolicy {
            retry_on: s.retry.on.join(","),
            num_retries: Some(UInt32Value {
                value: s.retry.retries,
            }),
            retriable_status_codes: s.retry.status_codes.clone(),
            ..Default::default()
        });
    }
    match &s.affinity {
        Affinity::None => {}
        Affinity::Cookie(c) => {
            use route_action::hash_policy;
            a.hash_policy = vec![route_action::HashPolicy {
                policy_specifier: Some(hash_policy::PolicySpecifier::Cookie(hash_policy::Cookie {
                    name: c.name.clone(),
                    // Present: Envoy sets the cookie when missing; zero = session cookie.
                    ttl: Some(c.max_age.map_or(secs(0), dur)),
                    path: c.path.clone().unwrap_or_else(|| "/".into()),
                    attributes: c
                        .same_site
                        .iter()
                        .map(|v| hash_policy::CookieAttribute {
                            name: "SameSite".into(),
                            value: v.clone(),
                        })
                        .collect(),
                })),
                terminal: false,
            }];
        }
        Affinity::SourceIp => {
            use route_action::hash_policy;
            a.hash_policy = vec![route_action::HashPolicy {
                policy_specifier: Some(hash_policy::PolicySpecifier::ConnectionProperties(
                    hash_policy::ConnectionProperties { source_ip: true },
                )),
                terminal: false,
            }];
        }
    }
    match (path, &s.rewrite_target, &s.prefix_rewrite) {
        (PathMatch::Regex(re), Some(target), _) => {
            // nginx `rewrite` replaces the whole path with the target.
            a.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: format!("(?i)^(?:{re}).*$"),
                    ..Default::default()
                }),
                substitution: target.clone(),
            });
        }
        (PathMatch::Exact(_), Some(target), _) => {
            a.prefix_rewrite = target.clone();
        }
        (PathMatch::Prefix(p), None, Some(to)) if to == "/" => {
            a.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: format!("^{}/?", regex::escape(p.trim_end_matches('/'))),
                    ..Default::default()
                }),
                substitution: "/".into(),
            });
        }
        (PathMatch::Prefix(p), None, Some(to)) if p == "/" => {
            a.prefix_rewrite = format!("{to}/");
        }
        (PathMatch::Prefix(_) | PathMatch::Exact(_), None, Some(to)) => {
            a.prefix_rewrite = to.clone();
        }
        _ => {}
    }
    a
}

fn action_for(
    target: &Target,
    s: &IngressSettings,
    source: &str,
    path: &PathMatch,
) -> route::Action {
    match target {
        Target::Cluster(c) => route::Action::Route(route_action(
            s,
            source,
            path,
            route_action::ClusterSpecifier::Cluster(c.clone()),
        )),
        Target::Unavailable => route::Action::DirectResponse(DirectResponseAction {
            status: 503,
            ..Default::default()
        }),
        Target::AppRoot(to) => route::Action::Redirect(RedirectAction {
            path_rewrite_specifier: Some(redirect_action::PathRewriteSpecifier::PathRedirect(
                to.clone(),
            )),
            response_code: redirect_action::RedirectResponseCode::Found as i32,
            ..Default::default()
        }),
    }
}

fn cidr(c: &Cidr) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::RemoteIp(CidrRange {
            address_prefix: c.addr.to_string(),
            prefix_len: Some(UInt32Value { value: c.len }),
        })),
    }
}

fn any_of(ranges: &[Cidr]) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set {
            ids: ranges.iter().map(cidr).collect(),
        })),
    }
}

/// Source ranges as one ALLOW policy (so the proto map holds one entry and
/// encodes deterministically): in an allowed range and in no denied one.
fn source_rbac(s: &IngressSettings) -> Option<Any> {
    if s.allow_ranges.is_empty() && s.deny_ranges.is_empty() {
        return None;
    }
    let mut ids = Vec::new();
    if !s.allow_ranges.is_empty() {
        ids.push(any_of(&s.allow_ranges));
    }
    if !s.deny_ranges.is_empty() {
        ids.push(Principal {
            identifier: Some(principal::Identifier::NotId(Box::new(any_of(
                &s.deny_ranges,
            )))),
        });
    }
    let policy = Policy {
        permissions: vec![Permission {
            rule: Some(permission::Rule::Any(true)),
        }],
        principals: vec![Principal {
            identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
        }],
        ..Default::default()
    };
    let rules = RbacRules {
        action: rbac::Action::Allow as i32,
        policies: [("source-ranges".to_string(), policy)]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    Some(any(&RbacPerRoute {
        rbac: Some(Rbac {
            rules: Some(rules),
            ..Default::default()
        }),
    }))
}

/// The rate limit key of an Ingress's limit: its `namespace/name` and the window.
fn limit_key(source: &str, window: &str) -> String {
    format!("{source}|{window}")
}

/// The windows of a rate limit: (name, requests per window, window length in seconds).
fn limit_windows(l: &RateLimit) -> Vec<(&'static str, u32, i64)> {
    let mut out = Vec::new();
    if let Some(n) = l.rps {
        out.push(("rps", n, 1));
    }
    if let Some(n) = l.rpm {
        out.push(("rpm", n, 60));
    }
    out
}

/// Route descriptors `[generic_key=<ingress|window>, remote_address=<client>]`,
/// matched by the listener's local_ratelimit descriptors (one bucket per client).
fn route_rate_limits(s: &IngressSettings, source: &str) -> Vec<RouteRateLimit> {
    let Some(l) = &s.rate_limit else {
        return vec![];
    };
    use rate_limit::action::{ActionSpecifier, GenericKey, RemoteAddress};
    limit_windows(l)
        .into_iter()
        .map(|(window, _, _)| RouteRateLimit {
            actions: vec![
                rate_limit::Action {
                    action_specifier: Some(ActionSpecifier::GenericKey(GenericKey {
                        descriptor_value: limit_key(source, window),
                        ..Default::default()
                    })),
                },
                rate_limit::Action {
                    action_specifier: Some(ActionSpecifier::RemoteAddress(RemoteAddress {})),
                },
            ],
            ..Default::default()
        })
        .collect()
}

/// Rate limits of the plan by status code, then by owning Ingress.
type LimitsByStatus = BTreeMap<u16, BTreeMap<String, RateLimit>>;

fn rate_limits_of(plan: &Plan) -> LimitsByStatus {
    let mut out = LimitsByStatus::new();
    for r in plan
        .hosts
        .values()
        .flatten()
        .chain(plan.default_backend.iter())
    {
        if let Some(l) = &r.settings.rate_limit {
            out.entry(l.status)
                .or_default()
                .insert(r.source.clone(), l.clone());
        }
    }
    out
}

/// The listeners' optional HTTP filters, from every route of the plan.
struct Filters {
    limits: LimitsByStatus,
    compressors: std::collections::BTreeSet<Compression>,
}

fn compressors_of(plan: &Plan) -> std::collections::BTreeSet<Compression> {
    plan.hosts
        .values()
        .flatten()
        .chain(plan.default_backend.iter())
        .filter_map(|r| r.settings.compression.clone())
        .collect()
}

/// One compressor filter per distinct configuration (content types and the
/// minimum length are not per-route settings in Envoy), named by its hash.
fn compressor_name(c: &Compression) -> String {
    use sha2::Digest;
    // Debug output of our own plain types is stable.
    let h = sha2::Sha256::digest(format!("{c:?}").as_bytes());
    format!("tenantgateway.io/compressor-{}", hex::encode(&h[..4]))
}

fn compressor_filter(c: &Compression) -> HttpFilter {
    use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
    use envoy_types::pb::envoy::extensions::compression::brotli::compressor::v3::Brotli;
    use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3::Gzip;
    use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::{
        compressor, Compressor,
    };
    let library = match c.algorithm {
        Algorithm::Gzip => TypedExtensionConfig {
            name: "gzip".into(),
            typed_config: Some(any(&Gzip::default())),
        },
        Algorithm::Brotli => TypedExtensionConfig {
            name: "brotli".into(),
            typed_config: Some(any(&Brotli::default())),
        },
    };
    let config = Compressor {
        response_direction_config: Some(compressor::ResponseDirectionConfig {
            common_config: Some(compressor::CommonDirectionConfig {
                min_content_length: Some(UInt32Value {
                    value: c.min_length,
                }),
                // `text/plain` matches `text/plain; charset=utf-8`, any case.
                content_type_matcher: c
                    .types
                    .iter()
                    .map(|t| StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(
                            RegexMatcher {
                                regex: format!("(?i){}\\s*(?:;.*)?", regex::escape(t)),
                                ..Default::default()
                            },
                        )),
                        ignore_case: false,
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        compressor_library: Some(library),
        ..Default::default()
    };
    HttpFilter {
        name: compressor_name(c),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&config))),
        disabled: true,
        ..Default::default()
    }
}

/// Max client addresses tracked per limit (LRU); Envoy's default is 20.
const MAX_TRACKED_CLIENTS: u32 = 10_000;

fn hundred_percent(key: &str) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: 100,
            denominator: fractional_percent::DenominatorType::Hundred as i32,
        }),
        runtime_key: key.into(),
    }
}

/// One local_ratelimit filter per status code (the status is per filter). It
/// has no default bucket, so requests matching none of its descriptors pass.
fn rate_limit_filters(limits: &LimitsByStatus) -> Vec<HttpFilter> {
    limits
        .iter()
        .map(|(status, by_ingress)| {
            let descriptors = by_ingress
                .iter()
                .flat_map(|(source, l)| {
                    limit_windows(l)
                        .into_iter()
                        .map(move |(window, n, secs_per)| LocalRateLimitDescriptor {
                            entries: vec![
                                rate_limit_descriptor::Entry {
                                    key: "generic_key".into(),
                                    value: limit_key(source, window),
                                },
                                // Blank value: one token bucket per client address.
                                rate_limit_descriptor::Entry {
                                    key: "remote_address".into(),
                                    value: String::new(),
                                },
                            ],
                            token_bucket: Some(TokenBucket {
                                max_tokens: n.saturating_mul(l.burst_multiplier),
                                tokens_per_fill: Some(UInt32Value { value: n }),
                                fill_interval: Some(secs(secs_per)),
                            }),
                            shadow_mode: false,
                        })
                })
                .collect();
            let config = LocalRateLimit {
                stat_prefix: format!("ratelimit_{status}"),
                status: Some(HttpStatus {
                    code: i32::from(*status),
                }),
                filter_enabled: Some(hundred_percent("tenantgateway.ratelimit.enabled")),
                filter_enforced: Some(hundred_percent("tenantgateway.ratelimit.enforced")),
                descriptors,
                max_dynamic_descriptors: Some(UInt32Value {
                    value: MAX_TRACKED_CLIENTS,
                }),
                ..Default::default()
            };
            HttpFilter {
                name: format!("tenantgateway.io/ratelimit-{status}"),
                config_type: Some(http_filter::ConfigType::TypedConfig(any(&config))),
                ..Default::default()
            }
        })
        .collect()
}

fn set_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn hsts(s: &IngressSettings) -> Vec<HeaderValueOption> {
    let Some(h) = &s.hsts else { return vec![] };
    let mut value = format!("max-age={}", h.max_age);
    if h.include_subdomains {
        value.push_str("; includeSubDomains");
    }
    vec![set_header("strict-transport-security", &value)]
}

/// `proxy-body-size` for bodies without Content-Length: the buffer filter
/// (disabled in the listeners) enabled for the route answers 413 once the
/// buffered body exceeds the limit. (Declared lengths are matched by a route.)
fn body_limit(s: &IngressSettings) -> Option<Any> {
    let max = s.max_body_bytes?;
    Some(any(&BufferPerRoute {
        r#override: Some(buffer_per_route::Override::Buffer(Buffer {
            max_request_bytes: Some(UInt32Value { value: max }),
        })),
    }))
}

/// The Envoy routes of one planned path, most specific first: canary
/// header/cookie routes, the WebSocket route, then the path itself.
fn envoy_routes(
    r: &RoutePlan,
    host: &HostMatch,
    authority: Option<&HeaderMatcher>,
    scheme: Scheme,
    host_tls: bool,
) -> Vec<Route> {
    let s = &r.settings;
    let name = route_name(r, host);
    let matcher = |extra: Vec<HeaderMatcher>| RouteMatch {
        path_specifier: Some(path_specifier(&r.path)),
        headers: authority.cloned().into_iter().chain(extra).collect(),
        ..Default::default()
    };
    if scheme == Scheme::Http && (s.force_ssl_redirect || (s.ssl_redirect && host_tls)) {
        // 308 like ingress-nginx: the method and body are kept.
        return vec![Route {
            name,
            r#match: Some(matcher(vec![])),
            action: Some(route::Action::Redirect(RedirectAction {
                scheme_rewrite_specifier: Some(
                    redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true),
                ),
                response_code: redirect_action::RedirectResponseCode::PermanentRedirect as i32,
                ..Default::default()
            })),
            ..Default::default()
        }];
    }
    // Several entries are fine: snapshots encode these maps sorted by key.
    let filter_configs: Vec<(String, Any)> = [
        (RBAC_FILTER, source_rbac(s)),
        (BUFFER_FILTER, body_limit(s)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .chain(s.compression.as_ref().map(|c| {
        use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::{
            compressor_per_route, CompressorOverrides, CompressorPerRoute,
            ResponseDirectionOverrides,
        };
        let enable = CompressorPerRoute {
            r#override: Some(compressor_per_route::Override::Overrides(
                CompressorOverrides {
                    response_direction_config: Some(ResponseDirectionOverrides::default()),
                    ..Default::default()
                },
            )),
        };
        (compressor_name(c), any(&enable))
    }))
    .collect();
    let mut response_headers = if scheme == Scheme::Https {
        hsts(s)
    } else {
        vec![]
    };
    let edits = &s.headers;
    response_headers.extend(edits.response_add.iter().map(|(k, v)| set_header(k, v)));
    let request_headers: Vec<HeaderValueOption> = edits
        .request_add
        .iter()
        .map(|(k, v)| set_header(k, v))
        .collect();
    let route = |name: String, m: RouteMatch, action: route::Action| Route {
        name,
        r#match: Some(m),
        action: Some(action),
        typed_per_filter_config: filter_configs
            .iter()
            .map(|(k, a)| (k.to_string(), a.clone()))
            .collect(),
        request_headers_to_add: request_headers.clone(),
        request_headers_to_remove: edits.request_remove.clone(),
        response_headers_to_add: response_headers.clone(),
        response_headers_to_remove: edits.response_remove.clone(),
        ..Default::default()
    };
    let mut out = Vec::new();
    if let Some(max) = s.max_body_bytes {
        // A declared Content-Length above the limit: 413 before anything is read.
        let too_large = HeaderMatcher {
            name: "content-length".into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::RangeMatch(
                Int64Range {
                    start: i64::from(max) + 1,
                    end: i64::MAX,
                },
            )),
            ..Default::default()
        };
        out.push(route(
            format!("{name}|body-too-large"),
            matcher(vec![too_large]),
            route::Action::DirectResponse(DirectResponseAction {
                status: 413,
                ..Default::default()
            }),
        ));
    }
    let mut main = action_for(&r.target, s, &r.source, &r.path);
    if let Some(c) = &r.canary {
        let canary = action_for(&c.target, s, &r.source, &r.path);
        let k = &c.canary;
        if let Some(h) = &k.by_header {
            match &k.by_header_value {
                Some(v) => out.push(route(
                    format!("{name}|canary:header"),
                    matcher(vec![header_exact(h, v)]),
                    canary.clone(),
                )),
                None => {
                    out.push(route(
                        format!("{name}|canary:header-always"),
                        matcher(vec![header_exact(h, "always")]),
                        canary.clone(),
                    ));
                    out.push(route(
                        format!("{name}|canary:header-never"),
                        matcher(vec![header_exact(h, "never")]),
                        main.clone(),
                    ));
                }
            }
        }
        if let Some(ck) = &k.by_cookie {
            out.push(route(
                format!("{name}|canary:cookie-always"),
                matcher(vec![cookie_is(ck, "always")]),
                canary.clone(),
            ));
            out.push(route(
                format!("{name}|canary:cookie-never"),
                matcher(vec![cookie_is(ck, "never")]),
                main.clone(),
            ));
        }
        if let (Target::Cluster(m), Target::Cluster(cc), true) =
            (&r.target, &c.target, k.weight > 0)
        {
            let spec = if k.weight >= k.weight_total {
                route_action::ClusterSpecifier::Cluster(cc.clone())
            } else {
                route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
                    clusters: vec![
                        weighted_cluster::ClusterWeight {
                            name: m.clone(),
                            weight: Some(UInt32Value {
                                value: k.weight_total - k.weight,
                            }),
                            ..Default::default()
                        },
                        weighted_cluster::ClusterWeight {
                            name: cc.clone(),
                            weight: Some(UInt32Value { value: k.weight }),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                })
            };
            main = route::Action::Route(route_action(s, &r.source, &r.path, spec));
        }
    }
    if let (Some(ws), route::Action::Route(a)) = (s.websocket_idle_timeout, &main) {
        let mut a = a.clone();
        a.idle_timeout = Some(dur(ws));
        let upgrade = HeaderMatcher {
            name: "upgrade".into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact("websocket".into())),
                    ignore_case: true,
                },
            )),
            ..Default::default()
        };
        out.push(route(
            format!("{name}|websocket"),
            matcher(vec![upgrade]),
            route::Action::Route(a),
        ));
    }
    out.push(route(name, matcher(vec![]), main));
    out
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

fn host_has_tls(plan: &Plan, host: &HostMatch) -> bool {
    match host {
        HostMatch::Any => false,
        HostMatch::Exact(h) | HostMatch::Wildcard(h) => plan.tls_hosts.contains_key(h),
    }
}

/// Requests whose host matches a rule are answered by that rule's paths, then
/// the default backend; requests matching no host use the rules without host.
fn virtual_hosts(plan: &Plan, scheme: Scheme) -> Vec<VirtualHost> {
    let any = HostMatch::Any;
    let default_for = |host: &HostMatch, auth: Option<&HeaderMatcher>| -> Vec<Route> {
        match &plan.default_backend {
            Some(d) => envoy_routes(d, host, auth, scheme, host_has_tls(plan, host)),
            None => vec![not_found(host, auth)],
        }
    };
    let catch_all: Vec<Route> = plan
        .hosts
        .get(&any)
        .into_iter()
        .flatten()
        .chain(plan.default_backend.iter())
        .flat_map(|r| envoy_routes(r, &any, None, scheme, false))
        .collect();

    let mut vhosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
    for (host, routes) in &plan.hosts {
        let tls = host_has_tls(plan, host);
        let (domain, mut list) = match host {
            HostMatch::Any => continue,
            HostMatch::Exact(h) => {
                let mut list: Vec<Route> = routes
                    .iter()
                    .flat_map(|r| envoy_routes(r, host, None, scheme, tls))
                    .collect();
                if plan.default_backend.is_some() {
                    list.extend(default_for(host, None));
                }
                (h.clone(), list)
            }
            HostMatch::Wildcard(w) => {
                let auth = one_label_authority(w);
                let mut list: Vec<Route> = routes
                    .iter()
                    .flat_map(|r| envoy_routes(r, host, Some(&auth), scheme, tls))
                    .collect();
                list.extend(default_for(host, Some(&auth)));
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

fn http_connection_manager(stat_prefix: &str, route_config: &str, limits: &Filters) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: [
            // Source ranges: off unless a route enables it with its own policy.
            HttpFilter {
                name: RBAC_FILTER.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(any(&Rbac::default()))),
                disabled: true,
                ..Default::default()
            },
        ]
        .into_iter()
        // After RBAC: a refused request does not use a client's tokens.
        .chain(rate_limit_filters(&limits.limits))
        // Response compression: off unless a route enables one.
        .chain(limits.compressors.iter().map(compressor_filter))
        .chain([
            // proxy-body-size without Content-Length: off unless a route enables it.
            HttpFilter {
                name: BUFFER_FILTER.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(any(&Buffer {
                    max_request_bytes: Some(UInt32Value { value: 1 << 20 }),
                }))),
                disabled: true,
                ..Default::default()
            },
            HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(
                    any(&Router::default()),
                )),
                ..Default::default()
            },
        ])
        .collect(),
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

/// `tcp-<port>`: every connection forwarded to the Service port's endpoints.
fn tcp_listener(options: &GatewayOptions, port: u16, cluster: &str) -> Listener {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy, TcpProxy,
    };
    let name = format!("tcp-{port}");
    let proxy = TcpProxy {
        stat_prefix: name.clone(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_string())),
        ..Default::default()
    };
    Listener {
        name,
        address: Some(socket(&options.bind_address, port)),
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

fn http_listener(options: &GatewayOptions, limits: &Filters) -> Listener {
    Listener {
        name: HTTP_LISTENER.into(),
        address: Some(socket(&options.bind_address, options.http_port)),
        filter_chains: vec![FilterChain {
            filters: vec![http_connection_manager(
                HTTP_LISTENER,
                HTTP_ROUTE_CONFIG,
                limits,
            )],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One filter chain per certificate, selected by SNI; no listener when no TLS.
fn https_listener(plan: &Plan, options: &GatewayOptions, limits: &Filters) -> Option<Listener> {
    let mut by_secret: BTreeMap<(&str, TlsVersion), Vec<String>> = BTreeMap::new();
    for (host, secret) in &plan.tls_hosts {
        let min = plan.tls_min_version.get(host).copied().unwrap_or_default();
        by_secret
            .entry((secret, min))
            .or_default()
            .push(host.clone());
    }
    if by_secret.is_empty() {
        return None;
    }
    let filter_chains = by_secret
        .into_iter()
        .map(|((secret, min), server_names)| {
            let tls_params = (min == TlsVersion::V1_3).then(|| TlsParameters {
                tls_minimum_protocol_version: tls_parameters::TlsProtocol::TlSv13 as i32,
                ..Default::default()
            });
            let tls = DownstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    tls_params,
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
                name: match min {
                    TlsVersion::V1_2 => secret.to_string(),
                    TlsVersion::V1_3 => format!("{secret}|tls1.3"),
                },
                filter_chain_match: Some(FilterChainMatch {
                    server_names,
                    ..Default::default()
                }),
                transport_socket: Some(TransportSocket {
                    name: "envoy.transport_sockets.tls".into(),
                    config_type: Some(transport_socket::ConfigType::TypedConfig(any(&tls))),
                }),
                filters: vec![http_connection_manager(
                    HTTPS_LISTENER,
                    HTTPS_ROUTE_CONFIG,
                    limits,
                )],
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
