//! The route model: what every source (Ingress today; Gateway API routes
//! later) lowers into and what the Envoy layer lowers from. It knows no
//! Kubernetes API and no Envoy type; every element says which object and
//! field it came from, so problems and status can name them.
//!
//! Shaped after Gateway API's HTTPRoute: a route has a match and an action
//! (forward to weighted backends, redirect, direct response) with policies
//! (its filters); `alternatives` are further matches of the same rule.
//! Route conditions (headers, query parameters, method), full-match regular
//! expressions, redirects of scheme/host/port/path, request deadlines and
//! mirrors are here for Gateway API, lowered by the Envoy layer and unused by
//! Ingress. Client-certificate validation is on `SniCertificate` (per TLS
//! host); TLS passed through untouched is a [`TcpChain`] without
//! certificates, in `Model::passthrough` for the Ingress layout and in
//! `PortProtocol::Tls` for Gateway API's.

mod policy;

pub use crate::diagnostics::ObjectRef;
pub use policy::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The object and field an element of the model came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Provenance {
    /// Shared by every element of one object.
    pub object: Arc<ObjectRef>,
    /// JSON path of the field, e.g. `spec.rules[0].http.paths[1]`.
    pub field: String,
}

impl Provenance {
    pub fn new(object: &Arc<ObjectRef>, field: impl Into<String>) -> Self {
        Self {
            object: object.clone(),
            field: field.into(),
        }
    }
}

/// Which requests a virtual host answers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostMatch {
    /// No host: any request.
    Any,
    /// `*.example.com`: exactly one label in front of `example.com`.
    Wildcard(String),
    Exact(String),
}

impl HostMatch {
    pub fn display(&self) -> &str {
        match self {
            HostMatch::Any => "*",
            HostMatch::Wildcard(h) | HostMatch::Exact(h) => h,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathMatch {
    /// Exact, case-sensitive path.
    Exact(String),
    /// Element-wise prefix, normalised without trailing slash (`/` stays `/`).
    Prefix(String),
    /// An RE2 regex matched case-insensitively against the start of the path
    /// (ingress-nginx's `location ~* "^<path>"`), already validated.
    Regex(String),
    /// An RE2 regex the whole path must match, case-sensitively (Gateway API's
    /// `RegularExpression`), already validated.
    RegularExpression(String),
}

impl PathMatch {
    /// Match length used for precedence: longest first, Exact before Prefix on ties.
    pub fn precedence_key(&self) -> (std::cmp::Reverse<usize>, u8, &str) {
        match self {
            PathMatch::Exact(p) => (std::cmp::Reverse(p.len()), 0, p),
            PathMatch::Prefix(p) => (std::cmp::Reverse(p.len()), 1, p),
            PathMatch::Regex(p) => (std::cmp::Reverse(p.len()), 2, p),
            PathMatch::RegularExpression(p) => (std::cmp::Reverse(p.len()), 3, p),
        }
    }

    /// An ACME HTTP-01 challenge path: `Exact` or `Prefix` at or under
    /// `/.well-known/acme-challenge` (what cert-manager's solver Ingress, or
    /// its path added in place, asks for). As ingress-nginx's default
    /// `no-tls-redirect-locations`, such routes are never redirected to HTTPS:
    /// the challenge is answered over plain HTTP before any certificate exists.
    pub fn is_acme_challenge(&self) -> bool {
        const ACME: &str = "/.well-known/acme-challenge";
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p
                .strip_prefix(ACME)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
            PathMatch::Regex(_) | PathMatch::RegularExpression(_) => false,
        }
    }

    pub fn display(&self) -> String {
        match self {
            PathMatch::Exact(p) => format!("{p} (Exact)"),
            PathMatch::Prefix(p) => format!("{p} (Prefix)"),
            PathMatch::Regex(p) => format!("{p} (regex)"),
            PathMatch::RegularExpression(p) => format!("{p} (RegularExpression)"),
        }
    }
}

/// A condition on a named request value: a header (Gateway API
/// `HTTPHeaderMatch`) or a query parameter (`HTTPQueryParamMatch`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueMatch {
    Exact {
        name: String,
        value: String,
    },
    /// An RE2 regex over the whole value.
    Regex {
        name: String,
        regex: String,
    },
}

pub type HeaderMatch = ValueMatch;
pub type QueryMatch = ValueMatch;

/// What a request must carry besides its path, all of it (a Gateway API
/// `HTTPRouteMatch`'s headers, query parameters and method). Ingress routes
/// have none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RouteConditions {
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
    /// An HTTP method, upper case (`GET`).
    pub method: Option<String>,
}

/// Where a redirect sends the client: each part not given keeps the request's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<RedirectPath>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// Drop the request's query string (ingress-nginx's `permanent-redirect`
    /// sends exactly its URL); otherwise it is kept unless `path` has its own.
    pub strip_query: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RedirectPath {
    /// The whole path is replaced (`ReplaceFullPath`, ingress-nginx's app-root).
    Full(String),
    /// The matched prefix is replaced (`ReplacePrefixMatch`).
    Prefix(String),
    /// An RE2 pattern over the whole path and its substitution (`\\1` for groups).
    Regex {
        pattern: String,
        substitution: String,
    },
}

/// One backend of a forwarding action and its share of the requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WeightedBackend {
    /// A key of [`Model::backends`].
    pub backend: String,
    pub weight: u32,
    /// Header edits of the requests sent to this backend and its answers
    /// (Gateway API filters on a backendRef), after the route's own.
    pub headers: Option<Arc<HeaderEdits>>,
}

/// What a route does with a request it matched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// To one backend, or split by weight over several.
    Forward(Vec<WeightedBackend>),
    /// Split by weight over backends, a share of the requests answered with
    /// an error status instead (Gateway API: a backendRef that does not
    /// resolve gets 500 for its share of the traffic).
    ForwardOrFail {
        backends: Vec<WeightedBackend>,
        /// The share answered with `status`, in the same units as the weights.
        failed_weight: u32,
        status: u32,
    },
    Redirect(Redirect),
    /// Answer without a backend (e.g. 503 for a backend that does not resolve,
    /// so the request does not fall through to a shorter path's backend).
    DirectResponse {
        status: u32,
    },
}

/// A further match of a route, tried before it: the route's path and policy
/// with extra header conditions and its own action (e.g. a canary by header).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Alternative {
    /// Appended to the route's name: `<route>|<name>`.
    pub name: String,
    pub headers: Vec<HeaderMatch>,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub provenance: Provenance,
    pub path: PathMatch,
    pub conditions: RouteConditions,
    pub action: Action,
    pub rewrite: Option<PathRewrite>,
    pub policy: Arc<RoutePolicy>,
    /// Tried in order before the route itself.
    pub alternatives: Vec<Alternative>,
}

/// The HTTP routes of the tenant (the same on the HTTP and HTTPS listeners).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTable {
    /// Routes of each host, in the order they are tried.
    pub hosts: BTreeMap<HostMatch, Vec<Route>>,
    /// Answers what no route of a host matched (else 404).
    pub fallback: Option<Route>,
}

impl RouteTable {
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.hosts.values().flatten().chain(self.fallback.iter())
    }
}

/// A Service port and the cluster settings that make a distinct cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Unique: `<namespace>/<service>/<port>`, plus a settings hash when not default.
    pub name: String,
    /// The Service (its provenance), for the default SNI name of TLS backends
    /// and health checks.
    pub namespace: String,
    pub service: String,
    /// Ready (address, port), sorted and deduplicated.
    pub endpoints: BTreeSet<(String, u16)>,
    pub settings: ClusterSettings,
    /// Not empty: no endpoints of its own, requests go to the first of these
    /// backends (keys of [`Model::backends`]) that has healthy endpoints.
    pub fallbacks: Vec<String>,
}

/// A TLS certificate and its key (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Unique: `<namespace>/<secret>`.
    pub name: String,
    pub provenance: Provenance,
    pub cert_chain: Vec<u8>,
    pub private_key: Vec<u8>,
}

/// The certificate an SNI host is served with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SniCertificate {
    /// A key of [`Model::certificates`].
    pub certificate: String,
    pub min_version: TlsVersion,
    /// Client certificates asked of this host's clients.
    pub client_auth: Option<Arc<ClientAuth>>,
    pub provenance: Provenance,
}

/// How a TLS host's client certificates are checked (ingress-nginx's
/// `auth-tls-verify-client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientVerify {
    /// A certificate signed by the CA is required.
    On,
    /// Not required; one presented must be signed by the CA.
    Optional,
    /// Asked for, not required, not verified (the backend may check it).
    OptionalNoCa,
}

/// Client certificates asked of a TLS host's clients. The handshake asks
/// for a certificate (naming the CA) and accepts any; whether it verified
/// is judged by every route of the host, so that a request whose `Host`
/// names this host is checked whatever SNI its connection used.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientAuth {
    /// The CA Secret, `<namespace>/<name>` (names the filter chain).
    pub secret: String,
    /// Trusted CA certificates (PEM).
    pub ca: Vec<u8>,
    /// Certificate revocation lists (PEM), checked for the whole chain.
    pub crl: Option<Vec<u8>>,
    pub verify: ClientVerify,
    /// Intermediate certificates allowed between the client's and the CA.
    pub max_depth: u32,
    /// Where a request without a valid certificate is redirected; else 400.
    pub error_page: Option<Redirect>,
}

/// A TCP listener port forwarded to a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRoute {
    /// A key of [`Model::backends`].
    pub backend: String,
    pub provenance: Provenance,
}

/// A UDP listener port forwarded to a backend (its datagrams, per client
/// session): the same shape as a TCP route.
pub type UdpRoute = TcpRoute;

/// Where the listeners bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerAddresses {
    pub bind_address: String,
    pub http_port: u16,
    pub https_port: u16,
}

pub use crds::{AccessLogField, AccessLogFormat};

/// How Envoy logs each request and connection on its stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    pub format: AccessLogFormat,
    /// In order; each a JSON key or a column of the text line.
    pub fields: Vec<AccessLogField>,
}

impl Default for AccessLog {
    /// JSON with the default fields.
    fn default() -> Self {
        Self {
            format: AccessLogFormat::Json,
            fields: AccessLogField::DEFAULT.to_vec(),
        }
    }
}

impl AccessLog {
    /// A TenantGateway's `spec.accessLog` (absent, or no fields: the defaults).
    pub fn from_settings(s: Option<&crds::AccessLogSettings>) -> Self {
        let Some(s) = s else {
            return Self::default();
        };
        Self {
            format: s.format,
            fields: if s.fields.is_empty() {
                AccessLogField::DEFAULT.to_vec()
            } else {
                s.fields.clone()
            },
        }
    }
}

/// How Envoy finds a request's client address (what X-Real-IP, the access
/// log's `client`, source-range allow lists, rate limits and source-IP
/// affinity all see).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientAddress {
    /// Every TCP listener expects a PROXY protocol header (v1 or v2) and takes
    /// the client's address from it; a connection without one is refused.
    pub proxy_protocol: bool,
    pub forwarded_for: ForwardedForTrust,
}

/// Which `X-Forwarded-For` entries are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ForwardedForTrust {
    /// None: the client is the connection's peer (or the PROXY header's address).
    #[default]
    None,
    /// This many proxies in front append to it: the client is the entry
    /// that many places from the right of the header as it arrived.
    TrustedHops(u32),
    /// A peer in these ranges is a trusted proxy: the client is the rightmost
    /// entry outside them. Any other peer is the client itself. Sorted, deduplicated.
    TrustedCidrs(Vec<Cidr>),
}

impl ClientAddress {
    /// A TenantGateway's `spec.listeners` (the operator has validated it: an
    /// entry that does not parse is an error here, never trusted).
    pub fn from_settings(l: &crds::ListenerSettings) -> Result<Self, String> {
        let proxy_protocol = l.proxy_protocol.as_ref().is_some_and(|p| p.enabled);
        let xff = l
            .client_ip_detection
            .as_ref()
            .and_then(|c| c.x_forwarded_for.as_ref());
        let forwarded_for = match xff {
            None => ForwardedForTrust::None,
            Some(x) => match (x.num_trusted_hops, x.trusted_cidrs.as_slice()) {
                (Some(_), [_, ..]) => {
                    return Err("numTrustedHops and trustedCIDRs are mutually exclusive".into())
                }
                (Some(0) | None, []) => ForwardedForTrust::None,
                (Some(n), []) => ForwardedForTrust::TrustedHops(n),
                (None, cidrs) => ForwardedForTrust::trusted_cidrs(
                    cidrs
                        .iter()
                        .map(|c| c.parse())
                        .collect::<Result<Vec<Cidr>, String>>()?,
                ),
            },
        };
        Ok(Self {
            proxy_protocol,
            forwarded_for,
        })
    }
}

impl ClientAddress {
    /// The client address Envoy computes for a request from `peer` (the
    /// connection's, after the PROXY protocol) whose X-Forwarded-For is
    /// `xff` as an HTTP filter sees it (Envoy's own peer entry appended).
    /// An entry that is not an address: the peer, as Envoy falls back.
    pub fn computed(&self, peer: &str, xff: Option<&str>) -> String {
        let entries: Vec<&str> = xff
            .map(|x| x.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let is_ip = |e: &str| e.parse::<std::net::IpAddr>().is_ok();
        let chosen = match &self.forwarded_for {
            ForwardedForTrust::None => None,
            // The entry `n` places left of the appended peer.
            ForwardedForTrust::TrustedHops(n) => entries
                .len()
                .checked_sub(1 + *n as usize)
                .map(|i| entries[i]),
            ForwardedForTrust::TrustedCidrs(cidrs) => {
                let trusted = |a: &str| {
                    a.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| cidrs.iter().any(|c| c.contains(ip)))
                };
                // Envoy judged the header as it arrived, then appended one
                // entry (the peer, or its own address for a loopback peer).
                let arrived = &entries[..entries.len().saturating_sub(1)];
                if !trusted(peer) || arrived.iter().any(|e| !is_ip(e)) {
                    None
                } else {
                    // The rightmost untrusted entry; all trusted: the leftmost.
                    arrived
                        .iter()
                        .rev()
                        .find(|e| !trusted(e))
                        .or(arrived.first())
                        .copied()
                }
            }
        };
        chosen.filter(|e| is_ip(e)).unwrap_or(peer).to_string()
    }
}

impl ForwardedForTrust {
    /// Sorted and deduplicated, so equal sets translate to equal output.
    pub fn trusted_cidrs(mut cidrs: Vec<Cidr>) -> Self {
        cidrs.sort();
        cidrs.dedup();
        if cidrs.is_empty() {
            Self::None
        } else {
            Self::TrustedCidrs(cidrs)
        }
    }
}

/// One tenant's complete routing, from all its sources.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub listeners: ListenerAddresses,
    pub routes: RouteTable,
    /// SNI host → its certificate on the HTTPS listener (no entry: no HTTPS listener).
    pub tls: BTreeMap<String, SniCertificate>,
    pub certificates: BTreeMap<String, Certificate>,
    pub backends: BTreeMap<String, Backend>,
    /// Listener port → where its connections go.
    pub tcp: BTreeMap<u16, TcpRoute>,
    /// UDP listener port → where its datagrams go.
    pub udp: BTreeMap<u16, UdpRoute>,
    /// TLS connections of these SNI names go untouched to the chain's
    /// backends, on the HTTPS listener (no certificates), sorted by name.
    pub passthrough: Vec<TcpChain>,
    /// Gateway API listeners, one per port (empty for the Ingress layout of
    /// `listeners`/`routes`/`tls`, which a Gateway's model leaves empty).
    pub ports: Vec<PortListener>,
    /// Envoy's access log on every listener.
    pub access_log: AccessLog,
    /// PROXY protocol and trusted X-Forwarded-For on every listener.
    pub client_address: ClientAddress,
}

/// One Envoy listener of a Gateway API Gateway: the Gateway listeners that
/// share a port.
#[derive(Clone, Debug, PartialEq)]
pub struct PortListener {
    /// The Gateway's port (names the Envoy listener and its route tables).
    pub port: u16,
    /// The port Envoy binds (unprivileged).
    pub bind_port: u16,
    pub protocol: PortProtocol,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PortProtocol {
    /// Plain HTTP: the routes of every listener on the port in one table.
    Http(HostRoutes),
    /// TLS, one filter chain per SNI set: HTTPS listeners (TLS terminated,
    /// HTTP routes) and TLS listeners (terminated or passed through to TCP
    /// backends) may share the port.
    Tls {
        http: Vec<TlsChain>,
        tcp: Vec<TcpChain>,
    },
    /// Plain TCP: every connection to the chain's backends.
    Tcp(TcpChain),
    /// UDP: every client session (address and port) to one of the chain's
    /// backends, chosen by weight (no SNI, no certificates).
    Udp(TcpChain),
}

/// Virtual hosts with Gateway API host semantics: a `Wildcard` matches any
/// depth of labels (`*.example.com` matches `a.b.example.com`), most specific
/// host first, and a request no route of its host matches gets 404.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostRoutes {
    /// The route configuration's name.
    pub name: String,
    /// Routes of each host, in precedence order.
    pub hosts: BTreeMap<HostMatch, Vec<Route>>,
}

/// A TLS-terminating filter chain of an HTTPS listener.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsChain {
    /// The Gateway listener's name.
    pub name: String,
    /// SNI names the chain answers (empty: any).
    pub server_names: Vec<String>,
    /// Keys of [`Model::certificates`].
    pub certificates: Vec<String>,
    pub routes: HostRoutes,
}

/// A filter chain of a TLS listener: connections with these SNI names go to
/// the backends, TLS terminated with the certificates (none: passed through).
#[derive(Clone, Debug, PartialEq)]
pub struct TcpChain {
    pub name: String,
    /// SNI names (empty: any).
    pub server_names: Vec<String>,
    /// Keys of [`Model::certificates`]; empty: TLS passed through.
    pub certificates: Vec<String>,
    /// Weighted keys of [`Model::backends`].
    pub backends: Vec<WeightedBackend>,
}

impl Backend {
    /// The Service this backend is a port of (built on demand: backends are
    /// resolved once per path, and only problems need it).
    pub fn service_ref(&self) -> ObjectRef {
        ObjectRef::new("Service", &self.namespace, &self.service)
    }
}

impl Model {
    pub fn new(listeners: ListenerAddresses) -> Self {
        Self {
            listeners,
            routes: RouteTable::default(),
            tls: BTreeMap::new(),
            certificates: BTreeMap::new(),
            backends: BTreeMap::new(),
            tcp: BTreeMap::new(),
            udp: BTreeMap::new(),
            passthrough: Vec::new(),
            ports: Vec::new(),
            access_log: AccessLog::default(),
            client_address: ClientAddress::default(),
        }
    }

    /// Routes that forward to a backend (not a redirect or a direct response).
    pub fn routable_paths(&self) -> usize {
        self.routes
            .routes()
            .filter(|r| matches!(r.action, Action::Forward(_)))
            .count()
    }

    /// Whether requests for this host arrive over TLS on the HTTPS listener.
    pub fn host_has_tls(&self, host: &HostMatch) -> bool {
        match host {
            HostMatch::Any => false,
            HostMatch::Exact(h) | HostMatch::Wildcard(h) => self.tls.contains_key(h),
        }
    }
}
