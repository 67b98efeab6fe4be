//! Sources of routes, each lowering its Kubernetes objects into the model:
//! Ingresses ([`ingress`]) and the TenantGateway's TCP and UDP proxies ([`tcp`], [`udp`]),
//! over one index of the tenant's Services, EndpointSlices and Secrets.

pub(crate) mod backends;
pub mod gateway;
pub(crate) mod ingress;
pub(crate) mod tcp;
pub(crate) mod udp;

use crate::diagnostics::Diagnostics;
use crate::model::{ListenerAddresses, Model};
use crate::translate::{GatewayOptions, TenantObjects};

/// The model of one tenant and the Ingresses it serves.
pub(crate) struct Lowered {
    pub model: Model,
    /// Ingresses of this gateway's class, as (namespace, name), sorted.
    pub served_ingresses: Vec<(String, String)>,
}

pub(crate) fn lower(
    objects: &TenantObjects,
    options: &GatewayOptions,
    diags: &mut Diagnostics,
) -> Lowered {
    let index = backends::BackendIndex::new(objects, options);
    let mut model = Model::new(ListenerAddresses {
        bind_address: options.bind_address.clone(),
        http_port: options.http_port,
        https_port: options.https_port,
    });
    model.access_log = options.access_log.clone();
    model.client_address = options.client_address.clone();
    let served_ingresses = ingress::lower(objects, options, &index, &mut model, diags);
    tcp::lower(options, &index, &mut model, diags);
    udp::lower(options, &index, &mut model, diags);
    Lowered {
        model,
        served_ingresses,
    }
}
