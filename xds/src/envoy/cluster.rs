//! CDS: one EDS cluster per backend, with its protocol, upstream TLS,
//! health checks, outlier detection and load-balancing policy.

use super::{ads_config_source, any, dur, inline_bytes, secs};
use crate::model::Backend;
use envoy_types::pb::envoy::config::cluster::v3::{cluster, CircuitBreakers, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    transport_socket, HealthCheck, Http2ProtocolOptions, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, subject_alt_name_matcher, CertificateValidationContext, CommonTlsContext,
    SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, StringMatcher};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

/// The backend's protocol: HTTP/2 options (one map entry, so the encoding
/// stays deterministic) and, for HTTPS/GRPCS, upstream TLS with SNI and
/// optional verification against the tenant's CA.
fn protocol_options(c: &Backend, cluster: &mut Cluster) {
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

/// An aggregate cluster: each request goes to the first of the backends
/// that has healthy endpoints (all of them by priority, as Envoy spills
/// over), through that backend's own load balancer.
fn fallback_cluster(c: &Backend) -> Cluster {
    use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig;
    Cluster {
        name: c.name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::ClusterType(
            cluster::CustomClusterType {
                name: "envoy.clusters.aggregate".into(),
                typed_config: Some(any(&ClusterConfig {
                    clusters: c.fallbacks.clone(),
                })),
            },
        )),
        connect_timeout: Some(secs(5)),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        ..Default::default()
    }
}

pub(super) fn cluster(c: &Backend) -> Cluster {
    if !c.fallbacks.is_empty() {
        return fallback_cluster(c);
    }
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
    if let Some(limit) = &c.settings.max_requests {
        cluster.circuit_breakers = Some(concurrency_limit(limit.max_requests));
    }
    cluster
}

/// The cluster of a Gateway's UDP port: EDS, one locality per backend of
/// its UDPRoute, each weighted as its backendRef (Envoy picks the locality
/// by weight, then an endpoint in it, per client session). A backend without
/// ready endpoints takes no share.
pub(super) fn weighted_udp(name: &str) -> Cluster {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::common_lb_config::{
        LocalityConfigSpecifier, LocalityWeightedLbConfig,
    };
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        connect_timeout: Some(secs(5)),
        lb_policy: cluster::LbPolicy::RoundRobin as i32,
        common_lb_config: Some(cluster::CommonLbConfig {
            locality_config_specifier: Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
                LocalityWeightedLbConfig {},
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// At most `max` requests in flight to the cluster (each Envoy replica on
/// its own); more are answered 503 at once (no queue, no retry).
fn concurrency_limit(max: u32) -> CircuitBreakers {
    use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
    CircuitBreakers {
        thresholds: vec![Thresholds {
            // Checked as a request is given a connection, for HTTP/1.1 too.
            max_requests: Some(UInt32Value { value: max }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Active HTTP health checks and passive outlier detection (`health-check-*`,
/// `outlier-*`).
fn health(c: &Backend, cluster: &mut Cluster) {
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
