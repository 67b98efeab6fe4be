//! Per-client local rate limits: one local_ratelimit filter per status code
//! in the listeners, and the route descriptors that select a bucket.

use crate::envoy::{any, secs};
use crate::model::{Model, RateLimit, RateLimitPolicy, RoutePolicy};
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::{rate_limit, RateLimit as RouteRateLimit};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor, LocalRateLimitDescriptor,
};
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::v3::{
    fractional_percent, FractionalPercent, HttpStatus, TokenBucket,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use std::collections::BTreeMap;

/// The rate limit key of a bucket's limit: the bucket and the window.
fn limit_key(bucket: &str, window: &str) -> String {
    format!("{bucket}|{window}")
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
/// With exempt ranges, `limited=<rbac shadow result>` between the two:
/// the route's RBAC shadow rules say `allowed` for an exempt client, whose
/// descriptor then matches none of the listener's (which want `denied`).
pub(in crate::envoy) fn route_rate_limits(policy: &RoutePolicy) -> Vec<RouteRateLimit> {
    let Some(RateLimitPolicy {
        bucket,
        limit: l,
        exempt,
    }) = &policy.rate_limit
    else {
        return vec![];
    };
    use rate_limit::action::{ActionSpecifier, GenericKey, RemoteAddress};
    limit_windows(l)
        .into_iter()
        .map(|(window, _, _)| RouteRateLimit {
            actions: std::iter::once(rate_limit::Action {
                action_specifier: Some(ActionSpecifier::GenericKey(GenericKey {
                    descriptor_value: limit_key(bucket, window),
                    ..Default::default()
                })),
            })
            .chain((!exempt.is_empty()).then(exemption_check))
            .chain(std::iter::once(rate_limit::Action {
                action_specifier: Some(ActionSpecifier::RemoteAddress(RemoteAddress {})),
            }))
            .collect(),
            ..Default::default()
        })
        .collect()
}

/// The descriptor entry of the exemption check and the value that is limited.
const EXEMPTION_KEY: &str = "limited";
const NOT_EXEMPT: &str = "denied";

/// The RBAC filter's shadow result as a descriptor entry; absent (the
/// filter did not run) counts as not exempt.
fn exemption_check() -> rate_limit::Action {
    use envoy_types::pb::envoy::r#type::metadata::v3::{metadata_key, MetadataKey};
    use rate_limit::action::{meta_data, ActionSpecifier, MetaData};
    rate_limit::Action {
        action_specifier: Some(ActionSpecifier::Metadata(MetaData {
            descriptor_key: EXEMPTION_KEY.into(),
            metadata_key: Some(MetadataKey {
                key: super::rbac::NAME.into(),
                path: vec![metadata_key::PathSegment {
                    segment: Some(metadata_key::path_segment::Segment::Key(
                        super::rbac::SHADOW_RESULT.into(),
                    )),
                }],
            }),
            default_value: NOT_EXEMPT.into(),
            source: meta_data::Source::Dynamic as i32,
            skip_if_absent: false,
        })),
    }
}

/// Rate limits of the model by status code, then by bucket (with whether
/// the bucket has exempt clients).
pub(super) type LimitsByStatus = BTreeMap<u16, BTreeMap<String, (RateLimit, bool)>>;

pub(super) fn limits_of(model: &Model) -> LimitsByStatus {
    let mut out = LimitsByStatus::new();
    for r in model.routes.routes() {
        if let Some(p) = &r.policy.rate_limit {
            out.entry(p.limit.status)
                .or_default()
                .insert(p.bucket.clone(), (p.limit.clone(), !p.exempt.is_empty()));
        }
    }
    out
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
pub(super) fn filters(limits: &LimitsByStatus) -> Vec<HttpFilter> {
    limits
        .iter()
        .map(|(status, by_ingress)| {
            let descriptors = by_ingress
                .iter()
                .flat_map(|(bucket, (l, has_exempt))| {
                    limit_windows(l)
                        .into_iter()
                        .map(move |(window, n, secs_per)| LocalRateLimitDescriptor {
                            entries: std::iter::once(rate_limit_descriptor::Entry {
                                key: "generic_key".into(),
                                value: limit_key(bucket, window),
                            })
                            .chain(has_exempt.then(|| rate_limit_descriptor::Entry {
                                key: EXEMPTION_KEY.into(),
                                value: NOT_EXEMPT.into(),
                            }))
                            // Blank value: one token bucket per client address.
                            .chain(std::iter::once(rate_limit_descriptor::Entry {
                                key: "remote_address".into(),
                                value: String::new(),
                            }))
                            .collect(),
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
