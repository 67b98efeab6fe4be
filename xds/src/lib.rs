//! Ingress- and Gateway-API-to-Envoy translation (pure) and the ADS server.
//!
//! Translation flows one way: `sources` (Ingress, the TenantGateway's TCP
//! proxies, Gateway API) lower Kubernetes objects into the route [`model`];
//! `envoy` lowers the model into [`EnvoyResources`]; [`Snapshot`] packs them
//! for ADS. [`translate()`] runs the three stages for a tenant's Ingresses,
//! [`translate_gateway()`] for one Gateway and its routes (with their status).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod ads;
pub mod authz;
pub mod snapshot;

pub use ads::{serve_tcp, serve_unix, AdsError, AdsServer, AdsStats};
pub use snapshot::{EnvoyResources, ResourceType, Snapshot};
pub mod bootstrap;
pub mod diagnostics;
mod envoy;
pub mod manifests;
pub mod migrate;
pub mod model;
mod sources;

pub use sources::gateway::{
    container_port, translate_gateway, ConditionModel, GatewayApiObjects, GatewayApiOptions,
    GatewayStatusModel, GatewayTranslation, ListenerStatusModel, ParentRef, RouteStatusModel,
    CONTROLLER_NAME,
};
pub mod translate;
pub mod yaml;

pub use diagnostics::{Diagnostic, ObjectRef, Severity};
pub use model::{AccessLog, ClientAddress, ForwardedForTrust};
pub use translate::{
    translate, GatewayOptions, TcpProxy, TenantObjects, Translated, Translation, Translator,
    UdpProxy,
};
