//! The tenant-gateway operator: reconciler, per-tenant builders and the manifest loader.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod build;
pub mod claims;
pub mod render;
