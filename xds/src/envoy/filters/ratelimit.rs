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
pub(in crate::envoy) fn route_rate_limits(policy: &RoutePolicy) -> Vec<RouteRateLimit> {
    let Some(RateLimitPolicy { bucket, limit: l }) = &policy.rate_limit else {
        return vec![];
    };
    use rate_limit::action::{ActionSpecifier, GenericKey, RemoteAddress};
    limit_windows(l)
        .into_iter()
        .map(|(window, _, _)| RouteRateLimit {
            actions: vec![
                rate_limit::Action {
                    action_specifier: Some(ActionSpecifier::GenericKey(GenericKey {
                        descriptor_value: limit_key(bucket, window),
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

/// Rate limits of the model by status code, then by bucket.
pub(super) type LimitsByStatus = BTreeMap<u16, BTreeMap<String, RateLimit>>;

pub(super) fn limits_of(model: &Model) -> LimitsByStatus {
    let mut out = LimitsByStatus::new();
    for r in model.routes.routes() {
        if let Some(RateLimitPolicy { bucket, limit }) = &r.policy.rate_limit {
            out.entry(limit.status)
                .or_default()
                .insert(bucket.clone(), limit.clone());
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
                .flat_map(|(bucket, l)| {
                    limit_windows(l)
                        .into_iter()
                        .map(move |(window, n, secs_per)| LocalRateLimitDescriptor {
                            entries: vec![
                                rate_limit_descriptor::Entry {
                                    key: "generic_key".into(),
                                    value: limit_key(bucket, window),
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
