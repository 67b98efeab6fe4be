//! Ingress-to-Envoy translation (pure) and the ADS server.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod ads;
pub mod snapshot;

pub use ads::{serve_tcp, serve_unix, AdsError, AdsServer, AdsStats};
pub use snapshot::{EnvoyResources, ResourceType, Snapshot};
pub mod bootstrap;
pub mod diagnostics;
pub mod manifests;
pub mod translate;
pub mod yaml;

pub use diagnostics::{Diagnostic, ObjectRef, Severity};
pub use translate::{translate, GatewayOptions, TcpProxy, TenantObjects, Translation};
