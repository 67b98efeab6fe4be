//! CORS (Gateway API `CORS` filter): the cors filter in the listeners does
//! nothing for routes without a policy; a route's policy answers preflights
//! and adds the response headers.

use crate::envoy::any;
use crate::model::Cors;
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

/// `*` is any origin; a `*` inside an origin stands for one or more host labels.
fn origin_matcher(origin: &str) -> StringMatcher {
    let pattern = if origin == "*" {
        Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex: ".*".into(),
            ..Default::default()
        }))
    } else if origin.contains('*') {
        let regex = origin
            .split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join("[^/]+");
        Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex,
            ..Default::default()
        }))
    } else {
        Some(string_matcher::MatchPattern::Exact(origin.to_string()))
    };
    StringMatcher {
        match_pattern: pattern,
        ignore_case: false,
    }
}

pub(in crate::envoy) fn per_route(c: &Cors) -> Any {
    any(&CorsPolicy {
        allow_origin_string_match: c.allow_origins.iter().map(|o| origin_matcher(o)).collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c.max_age.map(|s| s.to_string()).unwrap_or_default(),
        allow_credentials: c.allow_credentials.then_some(BoolValue { value: true }),
        ..Default::default()
    })
}
