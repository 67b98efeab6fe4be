//! The tenant-gateway operator: reconciler, per-tenant builders, claim
//! arbitration, the xDS sidecar, and offline tools.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod audit;
pub mod build;
pub mod claims;
pub mod cmd;
pub mod conditions;
pub mod gateway;
pub mod leader;
pub mod metrics;
pub mod migrate;
pub mod reconcile;
pub mod render;
pub mod sidecar;
#[cfg(test)]
mod test_objects;
