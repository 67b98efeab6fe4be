//! Gateway API types (`gateway.networking.k8s.io/v1`, release [`GATEWAY_API_VERSION`]).
//!
//! Every module but this one is generated: `hack/gen-gateway-api-types` runs a pinned kopium over the
//! release's standard-channel CRDs (`config/gateway-api/`), and `hack/gen-gateway-api-types check` (run
//! by `hack/test`) fails when the committed files drift from that output. Do not edit them by hand.
//! Type names follow kopium: `HttpRoute`, `HttpRouteRulesMatches`, `GatewayListeners`, ...

pub mod backendtlspolicies;
pub mod gatewayclasses;
pub mod gateways;
pub mod grpcroutes;
pub mod httproutes;
pub mod listenersets;
pub mod referencegrants;
pub mod tcproutes;
pub mod tlsroutes;
pub mod udproutes;

/// The Gateway API release these types (and `config/gateway-api/`) come from.
pub const GATEWAY_API_VERSION: &str = "v1.6.3";
/// `gateway.networking.k8s.io`
pub const GROUP: &str = "gateway.networking.k8s.io";

#[cfg(test)]
mod tests;
