//! Pure, deterministic translation of one tenant's Kubernetes objects into
//! Envoy resources plus diagnostics. No I/O, no clock, no randomness.
//!
//! One way: [`crate::sources`] lower the objects into [`crate::model`], and
//! [`crate::envoy`] lowers the model into Envoy resources.

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::snapshot::EnvoyResources;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use std::collections::BTreeSet;

pub(crate) use crate::envoy::ads_config_source;
pub use crate::envoy::{HTTPS_LISTENER, HTTPS_ROUTE_CONFIG, HTTP_LISTENER, HTTP_ROUTE_CONFIG};
pub use crate::sources::tcp::{TcpProxy, TcpProxyParseError};
pub use crate::sources::udp::UdpProxy;

/// Everything translation reads for one tenant.
#[derive(Clone, Debug, Default)]
pub struct TenantObjects {
    pub ingresses: Vec<Ingress>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
    pub ingress_classes: Vec<IngressClass>,
}

/// The gateway-level settings translation needs (from the TenantGateway spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayOptions {
    /// Address the listeners bind to inside the Envoy pod.
    pub bind_address: String,
    pub http_port: u16,
    pub https_port: u16,
    /// The IngressClass name this gateway serves.
    pub ingress_class: String,
    /// Serve Ingresses that name no class.
    pub serve_unclassed: bool,
    /// When set, objects outside these namespaces are ignored: a tenant's
    /// output can never reference another tenant's objects.
    pub namespaces: Option<BTreeSet<String>>,
    /// The TenantGateway's name, for diagnostics about its spec.
    pub tenant: String,
    /// TCP listeners (`spec.tcpProxies`), in spec order.
    pub tcp_proxies: Vec<TcpProxy>,
    /// UDP listeners (`spec.udpProxies`), in spec order.
    pub udp_proxies: Vec<UdpProxy>,
    /// Envoy's access log (`spec.accessLog`).
    pub access_log: crate::model::AccessLog,
    /// PROXY protocol and trusted X-Forwarded-For (`spec.listeners`).
    pub client_address: crate::model::ClientAddress,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            bind_address: "0.0.0.0".into(),
            http_port: 8080,
            https_port: 8443,
            ingress_class: crds::DEFAULT_INGRESS_CLASS.into(),
            serve_unclassed: true,
            namespaces: None,
            tenant: String::new(),
            tcp_proxies: Vec::new(),
            udp_proxies: Vec::new(),
            access_log: crate::model::AccessLog::default(),
            client_address: crate::model::ClientAddress::default(),
        }
    }
}

impl GatewayOptions {
    /// Options for a TenantGateway spec (the namespace set is filled in by the caller).
    pub fn from_spec(spec: &crds::TenantGatewaySpec) -> Self {
        Self {
            http_port: spec.listeners.http(),
            https_port: spec.listeners.https(),
            ingress_class: spec.ingress_class.class_name().to_string(),
            serve_unclassed: spec.ingress_class.serves_unclassed(),
            tcp_proxies: spec.tcp_proxies.iter().map(TcpProxy::from).collect(),
            udp_proxies: spec.udp_proxies.iter().map(UdpProxy::from).collect(),
            access_log: crate::model::AccessLog::from_settings(spec.access_log.as_ref()),
            // A spec that does not parse is refused by the operator's validation.
            client_address: crate::model::ClientAddress::from_settings(&spec.listeners)
                .unwrap_or_default(),
            ..Self::default()
        }
    }

    pub(crate) fn in_scope(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|set| set.contains(namespace))
    }
}

/// The result of a translation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    pub resources: EnvoyResources,
    pub diagnostics: Vec<Diagnostic>,
    /// Paths routed to a real backend cluster (not a direct 503 or 404).
    pub routable_paths: usize,
    /// Ingresses of this gateway's class, as (namespace, name), sorted.
    pub served_ingresses: Vec<(String, String)>,
}

/// Translate one tenant's objects. Deterministic: the same objects (in any
/// order) give byte-identical resources.
pub fn translate(objects: &TenantObjects, options: &GatewayOptions) -> Translation {
    let mut diags = Diagnostics::default();
    let lowered = crate::sources::lower(objects, options, &mut diags);
    Translation {
        resources: crate::envoy::build(&lowered.model),
        diagnostics: diags.into_sorted(),
        routable_paths: lowered.model.routable_paths(),
        served_ingresses: lowered.served_ingresses,
    }
}

/// [`translate`] that remembers what it built: each call gives the snapshot
/// `Snapshot::from(&translate(objects, options).resources)` byte for byte
/// (the property test `incremental.rs` checks it over random sequences of
/// changes), but an Ingress is lowered again only when it or an object it
/// read changed, a host's routes only when its Ingresses did, and the
/// virtual hosts of hosts whose routes did not change since the last call
/// are neither built nor encoded again.
#[derive(Default)]
pub struct Translator {
    lowering: crate::sources::Lowering,
    routes: crate::envoy::RouteMemo,
}

/// What [`Translator::translate`] gives: a [`Translation`] packed as its snapshot.
#[derive(Debug)]
pub struct Translated {
    pub snapshot: crate::snapshot::Snapshot,
    pub diagnostics: Vec<Diagnostic>,
    pub routable_paths: usize,
    pub served_ingresses: Vec<(String, String)>,
    /// Virtual hosts built and encoded by this call (the others were reused).
    pub virtual_hosts_encoded: usize,
}

impl Translator {
    pub fn translate(&mut self, objects: &TenantObjects, options: &GatewayOptions) -> Translated {
        let mut diags = Diagnostics::default();
        let lowered = self.lowering.lower(objects, options, &mut diags);
        let snapshot =
            crate::envoy::build_snapshot(&lowered.model, &lowered.relowered, &mut self.routes);
        let routable_paths = lowered.model.routable_paths();
        self.lowering.keep(lowered.model);
        Translated {
            snapshot,
            diagnostics: diags.into_sorted(),
            routable_paths,
            served_ingresses: lowered.served_ingresses,
            virtual_hosts_encoded: self.routes.encoded,
        }
    }
}
