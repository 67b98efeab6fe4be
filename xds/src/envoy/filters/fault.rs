//! Answering a share of a weighted route with an error: the fault filter
//! (a no-op in the listeners) aborts every request of the weighted entry
//! that enables it (Gateway API: a backendRef that does not resolve gets
//! 500 for its share).

use crate::envoy::any;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort, FaultAbort, HttpFault,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent, FractionalPercent};
use envoy_types::pb::google::protobuf::Any;

pub(in crate::envoy) const NAME: &str = "envoy.filters.http.fault";

/// No fault unless a weighted entry configures one (no header-driven faults).
pub(in crate::envoy) fn filter() -> HttpFilter {
    HttpFilter {
        name: NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(
            &HttpFault::default(),
        ))),
        ..Default::default()
    }
}

/// Every request answered with `status`.
pub(in crate::envoy) fn abort_all(status: u32) -> Any {
    any(&HttpFault {
        abort: Some(FaultAbort {
            percentage: Some(FractionalPercent {
                numerator: 100,
                denominator: fractional_percent::DenominatorType::Hundred as i32,
            }),
            error_type: Some(fault_abort::ErrorType::HttpStatus(status)),
            response_body: String::new(),
        }),
        ..Default::default()
    })
}
