//! Gateway API, the operator's side: the `tenant-gateway` GatewayClass and
//! its status, and a fleet per Gateway of that class (GEP-1762) in a
//! namespace a TenantGateway holds. The fleet's objects come from
//! [`crate::build::build_gateway_fleet`]; its sidecar owns the Gateway's
//! status once it runs. Routes naming a Gateway of another tenant, which no
//! fleet can see, get their `Accepted=False` entry from the operator
//! ([`routes`]).

pub mod class;
pub mod controller;
pub mod features;
pub mod routes;
pub mod status;

/// The condition the CRDs default a new object's status to.
#[cfg(test)]
pub(crate) fn api_server_default(
    type_: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    crate::conditions::condition_with_status(
        type_,
        "Unknown",
        "Pending",
        "Waiting for controller",
        None,
    )
}
