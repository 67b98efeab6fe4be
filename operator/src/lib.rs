//! The tenant-gateway operator: reconciler, per-tenant builders and the manifest loader.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod metrics;
pub mod render;
pub mod sidecar;
pub mod conditions;
pub mod leader;
