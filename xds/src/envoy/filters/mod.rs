//! The HTTP filters of the listeners and their per-route configurations.
//! Optional filters sit disabled in the listeners; a route's policy enables
//! them for that route only.

pub(super) mod buffer;
pub(super) mod compressor;
pub(super) mod cors;
pub(super) mod custom_response;
pub(crate) mod ext_authz;
pub(super) mod fault;
pub(super) mod ratelimit;
pub(super) mod rbac;

use super::any;
use crate::model::{Compression, Model};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use std::collections::BTreeSet;

/// The listeners' optional HTTP filters, from every route of the model.
pub(super) struct HttpFilters {
    limits: ratelimit::LimitsByStatus,
    compressors: BTreeSet<Compression>,
    /// Some route has a CORS policy.
    cors: bool,
    /// Some route has an authentication policy.
    auth: bool,
    /// Some route replaces error answers (`custom-http-errors`).
    custom_errors: bool,
}

impl HttpFilters {
    pub(super) fn of(model: &Model) -> Self {
        Self {
            limits: ratelimit::limits_of(model),
            compressors: compressor::compressors_of(model),
            cors: model.routes.routes().any(|r| r.policy.cors.is_some()),
            auth: model.routes.routes().any(|r| r.policy.auth.is_some()),
            custom_errors: model
                .routes
                .routes()
                .any(|r| r.policy.custom_errors.is_some()),
        }
    }

    /// The filter chain of an HTTP connection manager, in evaluation order.
    pub(super) fn chain(&self) -> Vec<HttpFilter> {
        // Custom errors first: it sees every answer last, the other filters'
        // own (403, 429) included, as nginx's error_page does.
        self.custom_errors
            .then(custom_response::disabled_filter)
            .into_iter()
            // CORS next: preflights are answered before access lists and
            // rate limits, as nginx answers them in its rewrite phase.
            .chain(self.cors.then(cors::filter))
            .chain(std::iter::once(rbac::disabled_filter()))
            // After RBAC: a refused request does not use a client's tokens.
            .chain(ratelimit::filters(&self.limits))
            // After rate limits, as nginx authenticates in its access phase
            // (after preaccess limits): a limited client never reaches the
            // auth service.
            .chain(self.auth.then(ext_authz::disabled_filter))
            .chain(self.compressors.iter().map(compressor::filter))
            .chain([buffer::disabled_filter(), router()])
            .collect()
    }
}

/// The filter chain of a Gateway API listener: CORS and the fault filter
/// (both inert for routes that do not configure them), then the router.
pub(super) fn gateway_chain() -> Vec<HttpFilter> {
    vec![cors::filter(), fault::filter(), router()]
}

fn router() -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(
            any(&Router::default()),
        )),
        ..Default::default()
    }
}
