//! CORS (Gateway API `CORS` filter): the cors filter in the listeners does
//! nothing for routes without a policy; a route's policy answers preflights
//! and adds the response headers.

use crate::envoy::any;
use crate::model::{Cors, OriginMatch};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors as CorsFilter, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::{Any, BoolValue};

pub(in crate::envoy) const NAME: &str = "envoy.filters.http.cors";

pub(in crate::envoy) fn filter() -> HttpFilter {
    HttpFilter {
        name: NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&CorsFilter {}))),
        ..Default::default()
    }
}

/// `*` is any origin. A `*` inside an origin stands for one or more host
/// labels (Gateway API), or exactly one, case-insensitively (ingress-nginx).
fn origin_matcher(origin: &str, how: OriginMatch) -> StringMatcher {
    let regex = |regex: String| {
        Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex,
            ..Default::default()
        }))
    };
    let (label, case) = match how {
        OriginMatch::Labels => ("[^/]+", ""),
        OriginMatch::OneLabelIgnoreCase => ("[A-Za-z0-9-]+", "(?i)"),
    };
    let (pattern, ignore_case) = if origin == "*" {
        (regex(".*".into()), false)
    } else if origin.contains('*') {
        let parts: Vec<String> = origin.split('*').map(regex::escape).collect();
        (regex(format!("{case}{}", parts.join(label))), false)
    } else {
        let exact = Some(string_matcher::MatchPattern::Exact(origin.to_string()));
        // Envoy refuses ignore_case on a regex (the `(?i)` above does it there).
        (exact, how == OriginMatch::OneLabelIgnoreCase)
    };
    StringMatcher {
        match_pattern: pattern,
        ignore_case,
    }
}

pub(in crate::envoy) fn per_route(c: &Cors) -> Any {
    any(&CorsPolicy {
        allow_origin_string_match: c
            .allow_origins
            .iter()
            .map(|o| origin_matcher(o, c.origin_match))
            .collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c.max_age.map(|s| s.to_string()).unwrap_or_default(),
        allow_credentials: c.allow_credentials.then_some(BoolValue { value: true }),
        // A preflight from an origin the policy does not allow is answered
        // by the gateway (200, no Access-Control-* headers), never forwarded:
        // Gateway API's CORS filter requires it, and ingress-nginx answers
        // every preflight itself.
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..Default::default()
    })
}
