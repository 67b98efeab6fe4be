//! Gateway API: the one Gateway a fleet serves and the routes that name it,
//! lowered into the model (one Envoy listener per port), with every status
//! the spec asks for computed alongside. Pure: objects in, resources,
//! diagnostics and status out.
//!
//! `listeners` validates the Gateway's listeners (protocol, port,
//! certificates, conflicts); `attach` decides which listeners each route's
//! parentRefs reach and under which hostnames; `rules` lowers each route's
//! rules once; this module assembles the per-port route tables in Gateway
//! API precedence and the status.

mod attach;
mod listeners;
mod rules;
mod spec;
mod status;
#[cfg(test)]
mod tests;

pub use spec::ParentRef;
pub use status::{ConditionModel, GatewayStatusModel, ListenerStatusModel, RouteStatusModel};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{
    HostMatch, HostRoutes, ListenerAddresses, Model, ObjectRef, PortListener, PortProtocol, Route,
    TcpChain, TlsChain, WeightedBackend,
};
use crate::snapshot::EnvoyResources;
use crate::sources::backends::BackendIndex;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use listeners::{Listener, Protocol};
use rules::{LoweredRoute, Precedence, RouteObject};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The GatewayClass `controllerName` tenant-gateway serves.
pub const CONTROLLER_NAME: &str = "tenantgateway.io/gateway";

/// Everything the translation of one Gateway reads.
#[derive(Clone, Debug, Default)]
pub struct GatewayApiObjects {
    /// The one Gateway this fleet serves.
    pub gateway: gwapi::gateways::Gateway,
    pub http_routes: Vec<gwapi::httproutes::HttpRoute>,
    pub grpc_routes: Vec<gwapi::grpcroutes::GrpcRoute>,
    pub tls_routes: Vec<gwapi::tlsroutes::TlsRoute>,
    pub tcp_routes: Vec<gwapi::tcproutes::TcpRoute>,
    pub udp_routes: Vec<gwapi::udproutes::UdpRoute>,
    pub reference_grants: Vec<gwapi::referencegrants::ReferenceGrant>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
    /// The tenant's namespaces (all objects outside them are ignored or
    /// refused) and their labels (for `allowedRoutes.namespaces.selector`).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayApiOptions {
    /// Address the listeners bind to inside the Envoy pod.
    pub bind_address: String,
    /// The TenantGateway's name, for messages.
    pub tenant: String,
    /// Container ports the pod already uses (Envoy admin and readiness, the
    /// sidecar's): a listener binding one is `PortUnavailable`.
    pub reserved_ports: Vec<u16>,
    /// Envoy's access log (the TenantGateway's `spec.accessLog`).
    pub access_log: crate::model::AccessLog,
    /// PROXY protocol and trusted X-Forwarded-For (the TenantGateway's `spec.listeners`).
    pub client_address: crate::model::ClientAddress,
}

impl Default for GatewayApiOptions {
    fn default() -> Self {
        Self {
            bind_address: "0.0.0.0".into(),
            tenant: String::new(),
            reserved_ports: Vec::new(),
            access_log: crate::model::AccessLog::default(),
            client_address: crate::model::ClientAddress::default(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayTranslation {
    pub resources: EnvoyResources,
    pub diagnostics: Vec<Diagnostic>,
    /// Accepted, Programmed; listeners in spec order.
    pub gateway: GatewayStatusModel,
    /// One per (route, parentRef that names this Gateway), sorted by kind,
    /// namespace, name, then parentRef order.
    pub routes: Vec<RouteStatusModel>,
}

/// Envoy cannot bind ports below 1024 as non-root: listener port `p` binds
/// container port `p` if `p >= 1024`, else `p + 10000` (the operator's
/// Service maps port `p` to target port `container_port(p)`).
pub fn container_port(listener_port: u16) -> u16 {
    if listener_port >= 1024 {
        listener_port
    } else {
        listener_port + 10000
    }
}

/// The route kinds a listener may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum RouteKind {
    Http,
    Grpc,
    Tls,
    Tcp,
    Udp,
}

impl RouteKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Udp => "UDPRoute",
        }
    }

    /// Routes of whole connections or sessions: no hostnames, no HTTP rules.
    pub(crate) fn is_stream(self) -> bool {
        matches!(self, RouteKind::Tls | RouteKind::Tcp | RouteKind::Udp)
    }

    fn parse(group: &str, kind: &str) -> Option<Self> {
        if group != gwapi::GROUP {
            return None;
        }
        [
            RouteKind::Http,
            RouteKind::Grpc,
            RouteKind::Tls,
            RouteKind::Tcp,
            RouteKind::Udp,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }
}

/// One permission of a ReferenceGrant: (grant namespace, from group, from
/// kind, from namespace, to group, to kind, to name or any).
type Grant = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

/// ReferenceGrants of the tenant's namespaces, granting only to the tenant.
struct Grants {
    entries: BTreeSet<Grant>,
}

impl Grants {
    fn new(objects: &GatewayApiObjects, diags: &mut Diagnostics) -> Self {
        let mut entries = BTreeSet::new();
        for g in &objects.reference_grants {
            let (Some(ns), Some(name)) = (&g.metadata.namespace, &g.metadata.name) else {
                continue;
            };
            if !objects.namespaces.contains_key(ns) {
                continue;
            }
            let obj = ObjectRef::new("ReferenceGrant", ns, name);
            for (i, from) in g.spec.from.iter().enumerate() {
                if !objects.namespaces.contains_key(&from.namespace) {
                    diags.error(
                        &obj,
                        format!("spec.from[{i}].namespace"),
                        format!(
                            "namespace {:?} is not one of the tenant's: a ReferenceGrant never grants across tenants; refused",
                            from.namespace
                        ),
                    );
                    continue;
                }
                for to in &g.spec.to {
                    entries.insert((
                        ns.clone(),
                        from.group.clone(),
                        from.kind.clone(),
                        from.namespace.clone(),
                        to.group.clone(),
                        to.kind.clone(),
                        to.name.clone().filter(|n| !n.is_empty()),
                    ));
                }
            }
        }
        Self { entries }
    }

    /// A `from_kind` in `from_ns` may reference the `to_group`/`to_kind` `to_name` in `to_ns`.
    fn permits(
        &self,
        from_ns: &str,
        from_kind: &str,
        to_group: &str,
        to_kind: &str,
        to_ns: &str,
        to_name: &str,
    ) -> bool {
        let key = |name: Option<String>| {
            (
                to_ns.to_string(),
                gwapi::GROUP.to_string(),
                from_kind.to_string(),
                from_ns.to_string(),
                to_group.to_string(),
                to_kind.to_string(),
                name,
            )
        };
        self.entries.contains(&key(None)) || self.entries.contains(&key(Some(to_name.into())))
    }
}

/// The state of one translation.
pub(crate) struct Cx<'a> {
    objects: &'a GatewayApiObjects,
    options: &'a GatewayApiOptions,
    gateway_ref: Arc<ObjectRef>,
    index: BackendIndex<'a>,
    grants: Grants,
    model: Model,
    diags: Diagnostics,
}

impl Cx<'_> {
    fn in_tenant(&self, ns: &str) -> bool {
        self.objects.namespaces.contains_key(ns)
    }
}

fn route_objects(objects: &GatewayApiObjects) -> Vec<RouteObject> {
    type Time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut out: Vec<(Option<Time>, RouteObject)> = Vec::new();
    let mut push = |kind: RouteKind,
                    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                    spec: Option<spec::RouteSpec>| {
        let (Some(ns), Some(name)) = (&meta.namespace, &meta.name) else {
            return;
        };
        let created = meta.creation_timestamp.clone();
        out.push((
            created,
            RouteObject {
                kind,
                obj: Arc::new(ObjectRef::new(kind.as_str(), ns, name)),
                generation: meta.generation,
                order: 0,
                spec: spec.unwrap_or_default(),
            },
        ));
    };
    for r in &objects.http_routes {
        push(RouteKind::Http, &r.metadata, spec::view(&r.spec));
    }
    for r in &objects.grpc_routes {
        push(RouteKind::Grpc, &r.metadata, spec::view(&r.spec));
    }
    for r in &objects.tls_routes {
        push(RouteKind::Tls, &r.metadata, spec::view(&r.spec));
    }
    for r in &objects.tcp_routes {
        push(RouteKind::Tcp, &r.metadata, spec::view(&r.spec));
    }
    for r in &objects.udp_routes {
        push(RouteKind::Udp, &r.metadata, spec::view(&r.spec));
    }
    // One object per kind/namespace/name (a list holds each once; should it
    // not, the choice must not depend on the order).
    let key = |o: &(Option<Time>, RouteObject)| {
        (
            o.0.is_none(),
            o.0.clone(),
            format!("{:?}", o.1.spec),
            o.1.generation,
        )
    };
    let mut unique: BTreeMap<(RouteKind, String, String), (Option<Time>, RouteObject)> =
        BTreeMap::new();
    for o in out {
        let k = (o.1.kind, o.1.obj.namespace.clone(), o.1.obj.name.clone());
        match unique.get(&k) {
            Some(kept) if key(kept) <= key(&o) => {}
            _ => {
                unique.insert(k, o);
            }
        }
    }
    let mut out: Vec<(Option<Time>, RouteObject)> = unique.into_values().collect();
    // Oldest first (no timestamp last), then namespace/name: precedence.
    out.sort_by(|a, b| {
        (
            a.0.is_none(),
            &a.0,
            &a.1.obj.namespace,
            &a.1.obj.name,
            a.1.kind,
        )
            .cmp(&(
                b.0.is_none(),
                &b.0,
                &b.1.obj.namespace,
                &b.1.obj.name,
                b.1.kind,
            ))
    });
    out.into_iter()
        .enumerate()
        .map(|(i, (_, mut r))| {
            r.order = i;
            r
        })
        .collect()
}

/// A route attached to a listener under these hostnames.
struct Attachment {
    route: usize,
    listener: usize,
    hostnames: Vec<Option<String>>,
}

/// Translate the Gateway and its routes. Deterministic: the same objects in
/// any order give the same resources, diagnostics and status.
pub fn translate_gateway(
    objects: &GatewayApiObjects,
    options: &GatewayApiOptions,
) -> GatewayTranslation {
    let mut cx = Cx::new(objects, options);
    let generation = objects.gateway.metadata.generation;
    if !cx.in_tenant(&cx.gateway_ref.namespace) {
        return not_in_tenant(cx, generation);
    }
    let mut listeners = listeners::listeners(&mut cx);
    let mut routes = route_objects(objects);
    drop_invalid_hostnames(&mut cx, &mut routes);
    let attached = attach_routes(&mut cx, &mut listeners, &routes);
    build_ports(
        &mut cx,
        &listeners,
        &routes,
        &attached.lowered,
        &attached.attachments,
    );
    GatewayTranslation {
        resources: crate::envoy::build_gateway(&cx.model),
        diagnostics: cx.diags.into_sorted(),
        gateway: gateway_status(&objects.gateway, &listeners, generation),
        routes: attached.statuses,
    }
}

impl<'a> Cx<'a> {
    fn new(objects: &'a GatewayApiObjects, options: &'a GatewayApiOptions) -> Self {
        let meta = &objects.gateway.metadata;
        let (ns, name) = (
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        );
        let mut diags = Diagnostics::default();
        Cx {
            objects,
            options,
            gateway_ref: Arc::new(ObjectRef::new("Gateway", ns, name)),
            index: BackendIndex::over(
                &objects.services,
                &objects.endpoint_slices,
                &objects.secrets,
                |ns| objects.namespaces.contains_key(ns),
            ),
            grants: Grants::new(objects, &mut diags),
            model: Model {
                access_log: options.access_log.clone(),
                client_address: options.client_address.clone(),
                ..Model::new(ListenerAddresses {
                    bind_address: options.bind_address.clone(),
                    http_port: 0,
                    https_port: 0,
                })
            },
            diags,
        }
    }
}

/// A Gateway in a namespace its tenant does not hold: not accepted, nothing served.
fn not_in_tenant(mut cx: Cx<'_>, generation: Option<i64>) -> GatewayTranslation {
    let msg = format!(
        "namespace {:?} is not claimed by the tenant {:?}: the Gateway is not served",
        cx.gateway_ref.namespace, cx.options.tenant
    );
    cx.diags
        .error(&cx.gateway_ref, "metadata.namespace", msg.clone());
    GatewayTranslation {
        resources: EnvoyResources::default(),
        diagnostics: cx.diags.into_sorted(),
        gateway: GatewayStatusModel {
            conditions: vec![
                ConditionModel::new("Accepted", false, "NotReconciled", msg.clone(), generation),
                ConditionModel::new("Programmed", false, "Invalid", msg, generation),
            ],
            listeners: vec![],
        },
        routes: vec![],
    }
}

/// Route hostnames Envoy could not take are reported and ignored.
fn drop_invalid_hostnames(cx: &mut Cx<'_>, routes: &mut [RouteObject]) {
    for r in routes {
        let hostnames = std::mem::take(&mut r.spec.hostnames);
        for (i, h) in hostnames.into_iter().enumerate() {
            if attach::valid_hostname(&h) {
                r.spec.hostnames.push(h);
            } else {
                cx.diags.error(
                    &r.obj,
                    format!("spec.hostnames[{i}]"),
                    format!("{h:?} is not a valid DNS name; it is ignored"),
                );
            }
        }
    }
}

/// GEP-1016: an HTTPRoute and a GRPCRoute never share a hostname on a
/// listener; the younger route of the two is refused there.
fn http_grpc_unique(
    kind: RouteKind,
    list: attach::Attached,
    claimed: &mut BTreeMap<(usize, RouteKind), Vec<Option<String>>>,
) -> Result<attach::Attached, attach::Refusal> {
    let other = match kind {
        RouteKind::Http => RouteKind::Grpc,
        RouteKind::Grpc => RouteKind::Http,
        _ => return Ok(list),
    };
    let overlaps = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => attach::intersect(Some(a), b).is_some(),
    };
    let kept: attach::Attached = list
        .into_iter()
        .filter(|(li, hosts)| {
            let taken = claimed.get(&(*li, other)).map(Vec::as_slice).unwrap_or(&[]);
            !hosts.iter().any(|h| taken.iter().any(|t| overlaps(h, t)))
        })
        .collect();
    if kept.is_empty() {
        return Err((
            "HostnameConflict",
            format!(
                "an older {} on the listener has an intersecting hostname; HTTPRoutes and GRPCRoutes may not share one (GEP-1016)",
                other.as_str()
            ),
        ));
    }
    for (li, hosts) in &kept {
        claimed
            .entry((*li, kind))
            .or_default()
            .extend(hosts.iter().cloned());
    }
    Ok(kept)
}

/// Where every route attached, its rules lowered (routes that attach
/// nowhere are not), and a status per parentRef that names the Gateway.
struct Attached {
    attachments: Vec<Attachment>,
    /// By route index.
    lowered: Vec<Option<LoweredRoute>>,
    /// Sorted by kind, namespace and name; a route's parentRefs keep their order.
    statuses: Vec<RouteStatusModel>,
}

fn attach_routes(cx: &mut Cx<'_>, listeners: &mut [Listener], routes: &[RouteObject]) -> Attached {
    let gw = cx.gateway_ref.clone();
    let mut out = Attached {
        attachments: vec![],
        lowered: vec![],
        statuses: vec![],
    };
    // Hostnames of each listener's HTTPRoutes and GRPCRoutes so far (oldest first).
    let mut claimed: BTreeMap<(usize, RouteKind), Vec<Option<String>>> = BTreeMap::new();
    for (ri, r) in routes.iter().enumerate() {
        let mut parents = Vec::new();
        for (pi, p) in r.spec.parent_refs.iter().enumerate() {
            if !attach::names_gateway(p, &r.obj.namespace, &gw.namespace, &gw.name) {
                continue;
            }
            let result = attach::attach(
                p,
                r.kind,
                &r.obj.namespace,
                &r.spec.hostnames,
                listeners,
                &gw.namespace,
                &cx.objects.namespaces,
            )
            .and_then(|list| http_grpc_unique(r.kind, list, &mut claimed));
            match &result {
                Ok(list) => {
                    for (li, hostnames) in list {
                        let id = (r.kind, r.obj.namespace.clone(), r.obj.name.clone());
                        listeners[*li].attached.insert(id);
                        out.attachments.push(Attachment {
                            route: ri,
                            listener: *li,
                            hostnames: hostnames.clone(),
                        });
                    }
                }
                Err((reason, msg)) => cx.diags.push(
                    crate::diagnostics::Severity::Warning,
                    &r.obj,
                    format!("spec.parentRefs[{pi}]"),
                    format!("not attached to {gw} ({reason}): {msg}"),
                ),
            }
            parents.push((p.clone(), result));
        }
        // Only routes of the tenant that attach are lowered (and may create clusters).
        let attached_any = parents.iter().any(|(_, r)| r.is_ok());
        out.lowered.push(attached_any.then(|| cx.lower_rules(r)));
        for (p, result) in parents {
            out.statuses
                .push(route_status(r, p, result, out.lowered[ri].as_ref()));
        }
    }
    out.statuses
        .sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    out
}

fn route_status(
    r: &RouteObject,
    parent_ref: ParentRef,
    result: Result<attach::Attached, attach::Refusal>,
    lowered: Option<&LoweredRoute>,
) -> RouteStatusModel {
    let generation = r.generation;
    let c = |t: &str, ok: bool, reason: &str, msg: String| {
        ConditionModel::new(t, ok, reason, msg, generation)
    };
    let mut conditions = Vec::new();
    match (&result, lowered) {
        (Err((reason, msg)), _) => conditions.push(c("Accepted", false, reason, msg.clone())),
        (Ok(_), Some(l)) if l.total_rules > 0 && l.rules.is_empty() => conditions.push(c(
            "Accepted",
            false,
            "UnsupportedValue",
            format!("no rule is valid: {}", l.dropped.join("; ")),
        )),
        (Ok(_), _) => conditions.push(c("Accepted", true, "Accepted", "Route is accepted".into())),
    }
    match lowered.and_then(|l| l.unresolved.clone()) {
        Some((reason, msg)) => conditions.push(c("ResolvedRefs", false, reason, msg)),
        None => conditions.push(c(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "All references are resolved".into(),
        )),
    }
    if let (Ok(_), Some(l)) = (&result, lowered) {
        if !l.dropped.is_empty() && !l.rules.is_empty() {
            conditions.push(c(
                "PartiallyInvalid",
                true,
                "UnsupportedValue",
                format!("Dropped Rule(s): {}", l.dropped.join("; ")),
            ));
        }
    }
    RouteStatusModel {
        kind: r.kind.as_str().into(),
        namespace: r.obj.namespace.clone(),
        name: r.obj.name.clone(),
        parent_ref,
        conditions,
    }
}

fn gateway_status(
    gw: &gwapi::gateways::Gateway,
    listeners: &[Listener],
    generation: Option<i64>,
) -> GatewayStatusModel {
    let c = |t: &str, ok: bool, reason: &str, msg: String| {
        ConditionModel::new(t, ok, reason, msg, generation)
    };
    let statuses: Vec<ListenerStatusModel> =
        listeners.iter().map(|l| l.status(generation)).collect();
    let invalid: Vec<&str> = listeners
        .iter()
        .filter(|l| !l.programmed())
        .map(|l| l.name.as_str())
        .collect();
    let any_programmed = listeners.iter().any(Listener::programmed);
    let addresses = gw.spec.addresses.as_ref().is_some_and(|a| !a.is_empty());
    let accepted = if addresses {
        c(
            "Accepted",
            false,
            "UnsupportedAddress",
            "spec.addresses is not supported: the address is the fleet's Service's".into(),
        )
    } else if invalid.is_empty() {
        c("Accepted", true, "Accepted", "Gateway is accepted".into())
    } else {
        c(
            "Accepted",
            any_programmed || listeners.is_empty(),
            "ListenersNotValid",
            format!("listeners not served: {}", invalid.join(", ")),
        )
    };
    let programmed = if !addresses && (any_programmed || listeners.is_empty()) {
        c(
            "Programmed",
            true,
            "Programmed",
            "Gateway is programmed".into(),
        )
    } else {
        c(
            "Programmed",
            false,
            "Invalid",
            "no listener is served".into(),
        )
    };
    GatewayStatusModel {
        conditions: vec![accepted, programmed],
        listeners: statuses,
    }
}

fn host_match(h: &Option<String>) -> HostMatch {
    match h {
        None => HostMatch::Any,
        Some(h) if h == "*" => HostMatch::Any,
        Some(h) if h.starts_with("*.") => HostMatch::Wildcard(h.clone()),
        Some(h) => HostMatch::Exact(h.clone()),
    }
}

/// Routes of each host in precedence order (a route reached through two
/// listeners of one table under the same host appears once).
fn host_table(name: String, entries: Vec<(HostMatch, Precedence, Route)>) -> HostRoutes {
    let mut hosts: BTreeMap<HostMatch, Vec<(Precedence, Route)>> = BTreeMap::new();
    for (h, p, r) in entries {
        hosts.entry(h).or_default().push((p, r));
    }
    HostRoutes {
        name,
        hosts: hosts
            .into_iter()
            .map(|(h, mut list)| {
                list.sort_by(|a, b| a.0.cmp(&b.0));
                list.dedup_by(|a, b| a.0 == b.0);
                (h, list.into_iter().map(|(_, r)| r).collect())
            })
            .collect(),
    }
}

fn build_ports(
    cx: &mut Cx<'_>,
    listeners: &[Listener],
    routes: &[RouteObject],
    lowered: &[Option<LoweredRoute>],
    attachments: &[Attachment],
) {
    let entries_of = |li: usize, scheme: &str| -> Vec<(HostMatch, Precedence, Route)> {
        let port = listeners[li].port;
        let mut out = Vec::new();
        for a in attachments.iter().filter(|a| a.listener == li) {
            let (r, Some(l)) = (&routes[a.route], &lowered[a.route]) else {
                continue;
            };
            if r.kind.is_stream() {
                continue;
            }
            for h in &a.hostnames {
                for rule in &l.rules {
                    for m in &rule.matches {
                        let route = rules::model_route(&r.obj, rule, m, port, scheme);
                        out.push((host_match(h), m.precedence.clone(), route));
                    }
                }
            }
        }
        out
    };
    // A UDP listener is apart from the TCP-based ones of its port number.
    let mut by_port: BTreeMap<(u16, bool), Vec<&Listener>> = BTreeMap::new();
    for l in listeners.iter().filter(|l| l.programmed()) {
        let udp = l.protocol.is_some_and(Protocol::is_udp);
        by_port.entry((l.port, udp)).or_default().push(l);
    }
    for ((port, _), ls) in by_port {
        let name = format!("gateway-{port}");
        let protocol = match ls[0].protocol {
            Some(Protocol::Http) => {
                let entries = ls
                    .iter()
                    .flat_map(|l| entries_of(l.index, "http"))
                    .collect();
                let mut table = host_table(name, entries);
                // A listener's hostname answers 404 for what its routes do not
                // match, rather than falling through to a less specific listener.
                for l in &ls {
                    if let Some(h) = &l.hostname {
                        table.hosts.entry(host_match(&Some(h.clone()))).or_default();
                    }
                }
                PortProtocol::Http(table)
            }
            Some(p @ (Protocol::Tcp | Protocol::Udp)) => {
                // One TCP (or UDP) listener per port (a second is a
                // HostnameConflict); no route, no listener.
                let Some(chain) = tcp_chains(ls[0], routes, lowered, attachments)
                    .into_iter()
                    .next()
                else {
                    continue;
                };
                if p == Protocol::Udp {
                    PortProtocol::Udp(chain)
                } else {
                    PortProtocol::Tcp(chain)
                }
            }
            Some(_) => PortProtocol::Tls {
                http: ls
                    .iter()
                    .filter(|l| l.protocol == Some(Protocol::Https))
                    .map(|l| TlsChain {
                        name: l.name.clone(),
                        server_names: l.hostname.iter().cloned().collect(),
                        certificates: l.certificates.clone(),
                        routes: host_table(
                            format!("{name}-{}", l.name),
                            entries_of(l.index, "https"),
                        ),
                    })
                    .collect(),
                tcp: ls
                    .iter()
                    .filter(|l| l.protocol.is_some_and(Protocol::is_tls_route))
                    .flat_map(|l| tcp_chains(l, routes, lowered, attachments))
                    .collect(),
            },
            None => continue,
        };
        cx.model.ports.push(PortListener {
            port,
            bind_port: container_port(port),
            protocol,
        });
    }
}

/// One TCP proxy chain per SNI host of the TLSRoutes attached to a TLS
/// listener (the oldest route of a host wins), named `<listener>|<host>`.
fn tcp_chains(
    listener: &Listener,
    routes: &[RouteObject],
    lowered: &[Option<LoweredRoute>],
    attachments: &[Attachment],
) -> Vec<TcpChain> {
    let mut by_host: BTreeMap<Option<String>, Vec<WeightedBackend>> = BTreeMap::new();
    let mut order: Vec<(usize, &Attachment)> = attachments
        .iter()
        .filter(|a| a.listener == listener.index)
        .filter(|a| routes[a.route].kind.is_stream())
        .map(|a| (routes[a.route].order, a))
        .collect();
    order.sort_by_key(|(o, _)| *o);
    for (_, a) in order {
        let Some(l) = &lowered[a.route] else { continue };
        let Some(rule) = l.rules.first() else {
            continue;
        };
        // A route whose backends all failed still claims its hosts: their
        // connections are closed (the spec's "rejected"), not passed to a
        // later route or left without a filter chain.
        let backends = match &rule.action {
            rules::RuleAction::Forward { backends, .. } => backends.clone(),
            _ => Vec::new(),
        };
        // TCP and UDP have no hostnames: the listener's connections, all of them.
        let hosts = match routes[a.route].kind {
            RouteKind::Tcp | RouteKind::Udp => vec![None],
            _ => a.hostnames.clone(),
        };
        for h in hosts {
            by_host.entry(h).or_insert_with(|| backends.clone());
        }
    }
    by_host
        .into_iter()
        .map(|(h, backends)| TcpChain {
            name: format!("{}|{}", listener.name, h.as_deref().unwrap_or("*")),
            server_names: h.into_iter().collect(),
            certificates: listener.certificates.clone(),
            backends,
        })
        .collect()
}

impl GatewayApiObjects {
    /// The objects of a multi-document YAML stream (tests, `render`-like
    /// tools): the Gateway (the last one), routes, ReferenceGrants, Services,
    /// EndpointSlices, Secrets; a Namespace document adds the namespace and
    /// its labels to the tenant. Other kinds are ignored.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        let mut out = Self::default();
        for doc in crate::yaml::documents(text) {
            let doc = doc.map_err(|e| e.to_string())?;
            let kind = doc
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("")
                .to_string();
            match kind.as_str() {
                "Gateway" => out.gateway = parse(doc)?,
                "HTTPRoute" => out.http_routes.push(parse(doc)?),
                "GRPCRoute" => out.grpc_routes.push(parse(doc)?),
                "TLSRoute" => out.tls_routes.push(parse(doc)?),
                "TCPRoute" => out.tcp_routes.push(parse(doc)?),
                "UDPRoute" => out.udp_routes.push(parse(doc)?),
                "ReferenceGrant" => out.reference_grants.push(parse(doc)?),
                "Service" => out.services.push(parse(doc)?),
                "EndpointSlice" => out.endpoint_slices.push(parse(doc)?),
                "Secret" => out.secrets.push(parse(doc)?),
                "Namespace" => {
                    let ns: k8s_openapi::api::core::v1::Namespace = parse(doc)?;
                    let name = ns.metadata.name.unwrap_or_default();
                    let mut labels = ns.metadata.labels.unwrap_or_default();
                    // As the API server sets it.
                    labels.insert("kubernetes.io/metadata.name".into(), name.clone());
                    out.namespaces.insert(name, labels);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
