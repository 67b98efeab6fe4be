//! Response compression: one compressor filter per distinct configuration
//! in the listeners (disabled), enabled per route.

use crate::envoy::any;
use crate::model::{Algorithm, Compression, Model};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use std::collections::BTreeSet;

pub(super) fn compressors_of(model: &Model) -> BTreeSet<Compression> {
    model
        .routes
        .routes()
        .filter_map(|r| r.policy.compression.clone())
        .collect()
}

/// One compressor filter per distinct configuration (content types and the
/// minimum length are not per-route settings in Envoy), named by its hash.
fn name(c: &Compression) -> String {
    use sha2::Digest;
    // Debug output of our own plain types is stable.
    let h = sha2::Sha256::digest(format!("{c:?}").as_bytes());
    format!("tenantgateway.io/compressor-{}", hex::encode(&h[..4]))
}

pub(super) fn filter(c: &Compression) -> HttpFilter {
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
        name: name(c),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&config))),
        disabled: true,
        ..Default::default()
    }
}

/// The per-route configuration that enables this compressor for a route.
pub(in crate::envoy) fn per_route(c: &Compression) -> (String, Any) {
    use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::{
        compressor_per_route, CompressorOverrides, CompressorPerRoute, ResponseDirectionOverrides,
    };
    let enable = CompressorPerRoute {
        r#override: Some(compressor_per_route::Override::Overrides(
            CompressorOverrides {
                response_direction_config: Some(ResponseDirectionOverrides::default()),
                ..Default::default()
            },
        )),
    };
    (name(c), any(&enable))
}
