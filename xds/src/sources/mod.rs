//! Sources of routes, each lowering its Kubernetes objects into the model:
//! Ingresses ([`ingress`]) and the TenantGateway's TCP and UDP proxies ([`tcp`], [`udp`]),
//! over one index of the tenant's Services, EndpointSlices and Secrets.

pub(crate) mod backends;
pub mod gateway;
pub(crate) mod ingress;
pub(crate) mod tcp;
pub(crate) mod udp;

use crate::diagnostics::Diagnostics;
use crate::model::{HostMatch, ListenerAddresses, Model, Route};
use crate::translate::{GatewayOptions, TenantObjects};
use std::collections::{BTreeMap, BTreeSet};

/// The model of one tenant and the Ingresses it serves.
pub(crate) struct Lowered {
    pub model: Model,
    /// Ingresses of this gateway's class, as (namespace, name), sorted.
    pub served_ingresses: Vec<(String, String)>,
    /// The hosts whose routes were lowered again: the routes of the others
    /// are those of the last lowering through the same [`Lowering`].
    pub relowered: BTreeSet<HostMatch>,
}

/// Lowering that keeps what it can for the next call: the Ingresses'
/// prepared shares and arbitrated hosts ([`ingress::IngressMemo`]) and the
/// route table. A new one lowers everything.
pub(crate) struct Lowering {
    ingress: ingress::IngressMemo,
    /// The route table of the last model, handed back ([`Self::keep`]).
    hosts: BTreeMap<HostMatch, Vec<Route>>,
}

impl Default for Lowering {
    fn default() -> Self {
        Self {
            ingress: ingress::IngressMemo::keeping(),
            hosts: BTreeMap::new(),
        }
    }
}

impl Lowering {
    pub(crate) fn lower(
        &mut self,
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
        model.routes.hosts = std::mem::take(&mut self.hosts);
        model.access_log = options.access_log.clone();
        model.client_address = options.client_address.clone();
        let ingress = self
            .ingress
            .lower(objects, options, &index, &mut model, diags);
        tcp::lower(options, &index, &mut model, diags);
        udp::lower(options, &index, &mut model, diags);
        Lowered {
            model,
            served_ingresses: ingress.served,
            relowered: ingress.relowered,
        }
    }

    /// Hand the model back once built: its route table is the next call's start.
    pub(crate) fn keep(&mut self, model: Model) {
        self.hosts = model.routes.hosts;
    }
}

/// Lower everything, keeping nothing.
pub(crate) fn lower(
    objects: &TenantObjects,
    options: &GatewayOptions,
    diags: &mut Diagnostics,
) -> Lowered {
    let mut once = Lowering {
        ingress: ingress::IngressMemo::default(),
        hosts: BTreeMap::new(),
    };
    once.lower(objects, options, diags)
}
