//! `proxy-body-size` for bodies without Content-Length: the buffer filter
//! (disabled in the listeners) enabled for the route answers 413 once the
//! buffered body exceeds the limit. (Declared lengths are matched by a route.)

use crate::envoy::any;
use envoy_types::pb::envoy::extensions::filters::http::buffer::v3::{
    buffer_per_route, Buffer, BufferPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};

pub(in crate::envoy) const NAME: &str = "envoy.filters.http.buffer";

/// Off unless a route enables it.
pub(super) fn disabled_filter() -> HttpFilter {
    HttpFilter {
        name: NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&Buffer {
            max_request_bytes: Some(UInt32Value { value: 1 << 20 }),
        }))),
        disabled: true,
        ..Default::default()
    }
}

pub(in crate::envoy) fn per_route(max_body_bytes: Option<u32>) -> Option<Any> {
    let max = max_body_bytes?;
    Some(any(&BufferPerRoute {
        r#override: Some(buffer_per_route::Override::Buffer(Buffer {
            max_request_bytes: Some(UInt32Value { value: max }),
        })),
    }))
}
