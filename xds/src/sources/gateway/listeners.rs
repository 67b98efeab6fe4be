//! The Gateway's listeners: protocol, port, hostname, allowed routes,
//! certificates, conflicts — and each listener's conditions.

use super::status::{ConditionModel, ListenerStatusModel};
use super::{container_port, Cx, RouteKind};
use crate::model::ObjectRef;
use gwapi::gateways::{
    GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom, GatewayListenersTlsMode,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Protocol {
    Http,
    Https,
    /// TLS passed through (TLSRoute).
    TlsPassthrough,
    /// TLS terminated, then TCP to the backend (TLSRoute).
    TlsTerminate,
    /// Plain TCP (TCPRoute).
    Tcp,
    /// UDP datagrams (UDPRoute).
    Udp,
}

impl Protocol {
    /// Listeners whose routes are TLSRoutes.
    pub(super) fn is_tls_route(self) -> bool {
        matches!(self, Protocol::TlsPassthrough | Protocol::TlsTerminate)
    }

    /// HTTP listeners share a port only with HTTP listeners; HTTPS and TLS
    /// listeners share one by SNI.
    fn port_class(self) -> u8 {
        match self {
            Protocol::Http => 0,
            Protocol::Tcp => 2,
            Protocol::Udp => 3,
            _ => 1,
        }
    }

    /// The transport a listener binds: a UDP listener and a TCP-based one
    /// may share a port number (DNS on 53 over both).
    pub(super) fn is_udp(self) -> bool {
        self == Protocol::Udp
    }
}

/// Which namespaces' routes a listener accepts (always inside the tenant).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum AllowedNamespaces {
    Same,
    All,
    /// Namespaces whose labels match (an invalid selector matches none).
    Selector(Option<super::attach::LabelSelector>),
}

#[derive(Clone, Debug)]
pub(super) struct Problem {
    pub reason: &'static str,
    pub message: String,
}

fn problem(reason: &'static str, message: impl Into<String>) -> Option<Problem> {
    Some(Problem {
        reason,
        message: message.into(),
    })
}

#[derive(Clone, Debug)]
pub(super) struct Listener {
    pub index: usize,
    pub name: String,
    pub port: u16,
    pub protocol: Option<Protocol>,
    pub hostname: Option<String>,
    pub kinds: Vec<RouteKind>,
    pub namespaces: AllowedNamespaces,
    /// Keys of the model's certificates.
    pub certificates: Vec<String>,
    /// Accepted=False (nothing is served).
    pub not_accepted: Option<Problem>,
    /// ResolvedRefs=False for its certificates (routes attach, nothing is served).
    pub bad_certificates: Option<Problem>,
    /// ResolvedRefs=False for allowedRoutes.kinds (the valid kinds are served).
    pub bad_kinds: Option<Problem>,
    pub conflicted: Option<Problem>,
    /// (kind, namespace, name) of the routes attached.
    pub attached: BTreeSet<(RouteKind, String, String)>,
}

impl Listener {
    /// Routes may attach.
    pub(super) fn usable(&self) -> bool {
        self.not_accepted.is_none() && self.conflicted.is_none() && self.protocol.is_some()
    }

    /// Envoy serves it.
    pub(super) fn programmed(&self) -> bool {
        self.usable() && self.bad_certificates.is_none()
    }

    pub(super) fn status(&self, generation: Option<i64>) -> ListenerStatusModel {
        let c = |t: &str, ok: bool, reason: &str, msg: String| {
            ConditionModel::new(t, ok, reason, msg, generation)
        };
        let accepted = match (&self.not_accepted, &self.conflicted) {
            (Some(p), _) | (None, Some(p)) => c("Accepted", false, p.reason, p.message.clone()),
            (None, None) => c("Accepted", true, "Accepted", "Listener is accepted".into()),
        };
        let resolved = match (&self.bad_certificates, &self.bad_kinds) {
            (Some(p), _) | (None, Some(p)) => c("ResolvedRefs", false, p.reason, p.message.clone()),
            (None, None) => c(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "All references are resolved".into(),
            ),
        };
        let programmed = if self.programmed() {
            c(
                "Programmed",
                true,
                "Programmed",
                "Listener is programmed".into(),
            )
        } else {
            c(
                "Programmed",
                false,
                "Invalid",
                "Listener is not served: see its Accepted, ResolvedRefs and Conflicted conditions"
                    .into(),
            )
        };
        let conflicted = match &self.conflicted {
            Some(p) => c("Conflicted", true, p.reason, p.message.clone()),
            None => c("Conflicted", false, "NoConflicts", "No conflicts".into()),
        };
        ListenerStatusModel {
            name: self.name.clone(),
            supported_kinds: self
                .kinds
                .iter()
                .map(|k| (gwapi::GROUP.to_string(), k.as_str().to_string()))
                .collect(),
            attached_routes: i32::try_from(self.attached.len()).unwrap_or(i32::MAX),
            conditions: vec![accepted, programmed, resolved, conflicted],
        }
    }
}

fn default_kinds(protocol: Option<Protocol>) -> Vec<RouteKind> {
    match protocol {
        Some(Protocol::Http | Protocol::Https) => vec![RouteKind::Http, RouteKind::Grpc],
        Some(Protocol::TlsPassthrough | Protocol::TlsTerminate) => vec![RouteKind::Tls],
        Some(Protocol::Tcp) => vec![RouteKind::Tcp],
        Some(Protocol::Udp) => vec![RouteKind::Udp],
        None => vec![],
    }
}

/// Every listener of the Gateway, validated, with conflicts resolved (the
/// first listener of a port, in spec order, sets its protocol; the first of
/// a hostname on a port keeps it).
pub(super) fn listeners(cx: &mut Cx<'_>) -> Vec<Listener> {
    let gateway = cx.objects.gateway.clone();
    let mut out: Vec<Listener> = gateway
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| listener(cx, i, l))
        .collect();
    let mut names = BTreeSet::new();
    // Keyed by (UDP, port): UDP ports are apart from TCP ones.
    let mut port_protocol: BTreeMap<(bool, u16), u8> = BTreeMap::new();
    let mut bound: BTreeMap<(bool, u16), u16> = BTreeMap::new();
    let mut hostnames: BTreeSet<(bool, u16, Option<String>)> = BTreeSet::new();
    for l in &mut out {
        if !names.insert(l.name.clone()) {
            l.not_accepted = problem(
                "Invalid",
                format!("listener name {:?} is used by an earlier listener", l.name),
            );
            continue;
        }
        let (Some(protocol), None) = (l.protocol, &l.not_accepted) else {
            continue;
        };
        let bind = container_port(l.port);
        let udp = protocol.is_udp();
        if !udp && cx.options.reserved_ports.contains(&bind) {
            l.not_accepted = problem(
                "PortUnavailable",
                format!(
                    "port {} binds container port {bind}, which the gateway pod itself uses",
                    l.port
                ),
            );
            continue;
        }
        match bound.get(&(udp, bind)) {
            Some(p) if *p != l.port => {
                l.not_accepted = problem(
                    "PortUnavailable",
                    format!(
                        "port {} binds container port {bind}, as port {p} does (ports below 1024 bind port + 10000)",
                        l.port
                    ),
                );
                continue;
            }
            _ => {
                bound.insert((udp, bind), l.port);
            }
        }
        match port_protocol.get(&(udp, l.port)) {
            Some(p) if *p != protocol.port_class() => {
                l.conflicted = problem(
                    "ProtocolConflict",
                    format!(
                        "port {} is used by an earlier listener with another protocol",
                        l.port
                    ),
                );
                continue;
            }
            _ => {
                port_protocol.insert((udp, l.port), protocol.port_class());
            }
        }
        if !hostnames.insert((udp, l.port, l.hostname.clone())) {
            l.conflicted = problem(
                "HostnameConflict",
                format!(
                    "an earlier listener on port {} has the same hostname ({})",
                    l.port,
                    l.hostname.as_deref().unwrap_or("none")
                ),
            );
        }
    }
    out
}

fn listener(cx: &mut Cx<'_>, index: usize, l: &GatewayListeners) -> Listener {
    let field = format!("spec.listeners[{index}]");
    let mut out = Listener {
        index,
        name: l.name.clone(),
        port: u16::try_from(l.port).unwrap_or(0),
        protocol: None,
        hostname: l.hostname.clone().filter(|h| !h.is_empty()),
        kinds: vec![],
        namespaces: AllowedNamespaces::Same,
        certificates: vec![],
        not_accepted: None,
        bad_certificates: None,
        bad_kinds: None,
        conflicted: None,
        attached: BTreeSet::new(),
    };
    if let Some(h) = out
        .hostname
        .as_deref()
        .filter(|h| !super::attach::valid_hostname(h))
    {
        out.not_accepted = problem(
            "UnsupportedValue",
            format!("hostname {h:?} is not a valid DNS name"),
        );
    }
    if out.port == 0 {
        out.not_accepted = problem(
            "PortUnavailable",
            format!("port {} is not a TCP port", l.port),
        );
    }
    let mode = l.tls.as_ref().and_then(|t| t.mode.clone());
    out.protocol = match (l.protocol.as_str(), mode) {
        ("HTTP", _) => Some(Protocol::Http),
        ("TCP", _) => Some(Protocol::Tcp),
        ("UDP", _) => Some(Protocol::Udp),
        ("HTTPS", None | Some(GatewayListenersTlsMode::Terminate)) => Some(Protocol::Https),
        ("TLS", Some(GatewayListenersTlsMode::Passthrough)) => Some(Protocol::TlsPassthrough),
        ("TLS", None | Some(GatewayListenersTlsMode::Terminate)) => Some(Protocol::TlsTerminate),
        ("HTTPS", Some(GatewayListenersTlsMode::Passthrough)) => {
            out.not_accepted = problem(
                "UnsupportedValue",
                "HTTPS listeners terminate TLS; use protocol TLS for passthrough",
            );
            None
        }
        (other, _) => {
            out.not_accepted = problem(
                "UnsupportedProtocol",
                format!("protocol {other:?} is not supported (HTTP, HTTPS, TLS, TCP, UDP)"),
            );
            None
        }
    };
    if let Some(p) = &out.not_accepted {
        cx.diags.error(&cx.gateway_ref, &field, p.message.clone());
    }
    allowed_routes(cx, l, &field, &mut out);
    if matches!(out.protocol, Some(Protocol::Https | Protocol::TlsTerminate)) {
        certificates(cx, l, &field, &mut out);
    }
    out
}

fn allowed_routes(cx: &mut Cx<'_>, l: &GatewayListeners, field: &str, out: &mut Listener) {
    let supported = default_kinds(out.protocol);
    let allowed = l.allowed_routes.as_ref();
    match allowed.and_then(|a| a.kinds.as_ref()) {
        Some(kinds) if !kinds.is_empty() => {
            let mut invalid = Vec::new();
            for k in kinds {
                let group = k.group.as_deref().unwrap_or(gwapi::GROUP);
                match RouteKind::parse(group, &k.kind).filter(|k| supported.contains(k)) {
                    Some(kind) if !out.kinds.contains(&kind) => out.kinds.push(kind),
                    Some(_) => {}
                    None => invalid.push(format!("{group}/{}", k.kind)),
                }
            }
            if !invalid.is_empty() {
                let msg = format!(
                    "route kinds not supported on this listener: {}",
                    invalid.join(", ")
                );
                cx.diags.error(
                    &cx.gateway_ref,
                    format!("{field}.allowedRoutes.kinds"),
                    msg.clone(),
                );
                out.bad_kinds = problem("InvalidRouteKinds", msg);
            }
        }
        _ => out.kinds = supported,
    }
    let ns = allowed.and_then(|a| a.namespaces.as_ref());
    out.namespaces = match ns.and_then(|n| n.from.clone()) {
        None | Some(GatewayListenersAllowedRoutesNamespacesFrom::Same) => AllowedNamespaces::Same,
        Some(GatewayListenersAllowedRoutesNamespacesFrom::All) => AllowedNamespaces::All,
        Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector) => {
            let selector = ns
                .and_then(|n| n.selector.as_ref())
                .and_then(super::spec::view);
            let selector = selector.and_then(|s| match super::attach::LabelSelector::parse(s) {
                Ok(s) => Some(s),
                Err(e) => {
                    cx.diags.error(
                        &cx.gateway_ref,
                        format!("{field}.allowedRoutes.namespaces.selector"),
                        format!("{e}; no namespace matches"),
                    );
                    None
                }
            });
            AllowedNamespaces::Selector(selector)
        }
    };
}

fn certificates(cx: &mut Cx<'_>, l: &GatewayListeners, field: &str, out: &mut Listener) {
    let refs = l
        .tls
        .as_ref()
        .and_then(|t| t.certificate_refs.clone())
        .unwrap_or_default();
    if refs.is_empty() {
        out.bad_certificates = problem(
            "InvalidCertificateRef",
            "a listener that terminates TLS needs tls.certificateRefs",
        );
    }
    let gw_ns = cx.gateway_ref.namespace.clone();
    for (j, r) in refs.iter().enumerate() {
        let f = format!("{field}.tls.certificateRefs[{j}]");
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        let ns = r.namespace.clone().unwrap_or_else(|| gw_ns.clone());
        let target = ObjectRef::new("Secret", &ns, &r.name);
        let result = if !(group.is_empty() || group == "core") || kind != "Secret" {
            Err((
                "InvalidCertificateRef",
                format!("{group}/{kind} is not a certificate kind (core Secret)"),
            ))
        } else if !cx.in_tenant(&ns) {
            Err((
                "RefNotPermitted",
                format!(
                    "{target} is outside the tenant {:?}: references stay inside it",
                    cx.options.tenant
                ),
            ))
        } else if ns != gw_ns
            && !cx
                .grants
                .permits(&gw_ns, "Gateway", "", "Secret", &ns, &r.name)
        {
            Err((
                "RefNotPermitted",
                format!("{target} is in another namespace and no ReferenceGrant there allows it"),
            ))
        } else {
            match cx.index.resolve_tls_secret(&ns, &r.name) {
                Ok(cert) => {
                    let name = cert.name.clone();
                    cx.model.certificates.entry(name.clone()).or_insert(cert);
                    out.certificates.push(name);
                    Ok(())
                }
                Err(e) => Err(("InvalidCertificateRef", e)),
            }
        };
        if let Err((reason, msg)) = result {
            cx.diags.error(&cx.gateway_ref, &f, msg.clone());
            if out.bad_certificates.is_none() {
                out.bad_certificates = problem(reason, msg);
            }
        }
    }
}
