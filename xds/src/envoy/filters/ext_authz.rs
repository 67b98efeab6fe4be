//! Authentication as the ext_authz filter: checks go over gRPC to the
//! sidecar's authorization server, on a Unix socket next to the ADS one.
//! Envoy only ever sees a policy's id, never a password hash.

use crate::authz::POLICY_KEY;
use crate::bootstrap::AUTHZ_CLUSTER;
use crate::envoy::{any, secs};
use envoy_types::pb::envoy::config::core::v3::{grpc_service, ApiVersion, GrpcService};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    ext_authz, ext_authz_per_route, CheckSettings, ExtAuthz, ExtAuthzPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode};
use envoy_types::pb::google::protobuf::Any;

pub(in crate::envoy) const NAME: &str = "envoy.filters.http.ext_authz";

/// How long a check may take (an `auth-url` subrequest included) before
/// the request is answered 500.
const CHECK_TIMEOUT_SECS: i64 = 15;

/// Off unless a route enables it with its policy. Fails closed: when the
/// authorization server cannot answer, the request gets 500.
pub(super) fn disabled_filter() -> HttpFilter {
    let config = ExtAuthz {
        services: Some(ext_authz::Services::GrpcService(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: AUTHZ_CLUSTER.into(),
                    ..Default::default()
                },
            )),
            timeout: Some(secs(CHECK_TIMEOUT_SECS)),
            ..Default::default()
        })),
        transport_api_version: ApiVersion::V3 as i32,
        failure_mode_allow: false,
        status_on_error: Some(HttpStatus {
            code: StatusCode::InternalServerError as i32,
        }),
        ..Default::default()
    };
    HttpFilter {
        name: NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&config))),
        disabled: true,
        ..Default::default()
    }
}

/// Enables the filter on a route, checked against the policy `id`.
pub(in crate::envoy) fn per_route(id: &str) -> Any {
    any(&ExtAuthzPerRoute {
        r#override: Some(ext_authz_per_route::Override::CheckSettings(
            CheckSettings {
                context_extensions: [(POLICY_KEY.to_string(), id.to_string())].into(),
                ..Default::default()
            },
        )),
    })
}
