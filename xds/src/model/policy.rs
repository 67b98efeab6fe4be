//! Per-route policies and the settings that make a distinct backend cluster:
//! plain values, whatever source asked for them (Ingress annotations today,
//! Gateway API filters and policies later).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Minimum TLS version of an HTTPS filter chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hsts {
    pub max_age: u64,
    pub include_subdomains: bool,
}

/// How requests are spread over a backend's endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Affinity {
    #[default]
    None,
    /// Envoy generates the cookie (ring hash on its value).
    Cookie(CookieAffinity),
    /// Hash of the client address (after trusted X-Forwarded-For hops).
    SourceIp,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CookieAffinity {
    pub name: String,
    pub path: Option<String>,
    /// None: a session cookie (no expiry).
    pub max_age: Option<Duration>,
    pub same_site: Option<String>,
    /// The cookie carries `Secure`.
    pub secure: bool,
    /// A retry goes to another endpoint than the one that failed (the cookie
    /// is not re-issued: Envoy's hash keeps mapping it as before).
    pub change_on_failure: bool,
}

/// Retries: Envoy `retry_on` conditions and the number of retries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Retry {
    /// Envoy retry_on names, sorted and deduplicated; empty = no retries.
    pub on: Vec<&'static str>,
    /// Extra status codes for `retriable-status-codes`, sorted.
    pub status_codes: Vec<u32>,
    pub retries: u32,
}

impl Default for Retry {
    /// Only failures before the request reached a backend: always safe to retry.
    fn default() -> Self {
        Self {
            on: vec!["connect-failure", "refused-stream", "reset-before-request"],
            status_codes: vec![],
            retries: 2,
        }
    }
}

/// An IPv4 or IPv6 CIDR range, normalised (host bits cleared).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub len: u32,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    /// `addr/len` or a bare address (a /32 or /128).
    fn from_str(part: &str) -> Result<Self, String> {
        let (ip, len) = match part.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (part, None),
        };
        let addr: std::net::IpAddr = ip
            .parse()
            .map_err(|_| format!("{part:?} is not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{part:?} has an invalid prefix length"))?,
        };
        // Clear host bits so equal ranges compare equal.
        let addr = match addr {
            std::net::IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                std::net::IpAddr::V4((u32::from(a) & mask).into())
            }
            std::net::IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                std::net::IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Ok(Cidr { addr, len })
    }
}

impl Cidr {
    /// `ip` is in the range (an IPv4 address is never in an IPv6 range).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.len).unwrap_or(0);
                u32::from(a) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.len).unwrap_or(0);
                u128::from(a) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Local rate limit per client address (ingress-nginx `limit-rps`/`limit-rpm`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RateLimit {
    pub rps: Option<u32>,
    pub rpm: Option<u32>,
    /// Bucket size = rate × multiplier (nginx's burst).
    pub burst_multiplier: u32,
    /// HTTP status of a limited request.
    pub status: u16,
}

/// The protocol spoken to the backend (`backend-protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendProtocol {
    #[default]
    Http,
    Https,
    Grpc,
    Grpcs,
    H2c,
}

impl BackendProtocol {
    pub(crate) fn tls(self) -> bool {
        matches!(self, BackendProtocol::Https | BackendProtocol::Grpcs)
    }
    pub(crate) fn http2(self) -> bool {
        matches!(
            self,
            BackendProtocol::Grpc | BackendProtocol::Grpcs | BackendProtocol::H2c
        )
    }
}

/// Active HTTP health checking of a backend's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    /// Absolute path requested; 200 is healthy.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// Passive outlier detection: endpoints answering 5xx in a row are ejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outlier {
    pub consecutive_5xx: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
}

/// Response compression algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Gzip,
    Brotli,
}

/// Response compression of an Ingress's routes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Compression {
    pub algorithm: Algorithm,
    /// MIME types (lowercase `type/subtype`), sorted.
    pub types: Vec<String>,
    /// Responses shorter than this (bytes) are not compressed.
    pub min_length: u32,
}

/// Settings that shape the upstream cluster (a distinct cluster when not default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClusterSettings {
    pub connect_timeout: Option<Duration>,
    /// Ring hash instead of round robin.
    pub hashed: bool,
    pub protocol: BackendProtocol,
    /// SNI sent to a TLS backend (None: the Service's DNS name).
    pub tls_name: Option<String>,
    /// PEM CA bundle the backend's certificate must chain to (verified, with
    /// the SNI name as the expected DNS SAN); None: not verified.
    pub tls_ca: Option<Vec<u8>>,
    pub health_check: Option<HealthCheck>,
    pub outlier: Option<Outlier>,
    /// Requests in flight to the cluster at once (more get 503); a cluster
    /// of its own per `bucket`.
    pub max_requests: Option<ConcurrencyLimit>,
    /// Route to the Service's cluster IP instead of its endpoints.
    pub service_upstream: bool,
}

/// A concurrency limit (circuit breaker) and the owner it belongs to: routes
/// of one owner to one backend share it, other owners get their own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConcurrencyLimit {
    pub bucket: String,
    pub max_requests: u32,
}

impl ClusterSettings {
    pub(crate) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Header edits of an Ingress's routes; names lowercase, values with `%`
/// already escaped for Envoy's header formatter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeaderEdits {
    /// Set (replacing any value the message had).
    pub request_add: Vec<(String, String)>,
    pub request_remove: Vec<String>,
    pub response_add: Vec<(String, String)>,
    pub response_remove: Vec<String>,
    /// Appended to the values the message had (Gateway API `add`).
    pub request_append: Vec<(String, String)>,
    pub response_append: Vec<(String, String)>,
}

/// When plain-HTTP requests are redirected to HTTPS instead of served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HttpsRedirect {
    #[default]
    Never,
    /// Only on hosts that have a certificate (ingress-nginx `ssl-redirect`).
    WhenHostHasTls,
    Always,
}

impl HttpsRedirect {
    pub(crate) fn applies(self, host_has_tls: bool) -> bool {
        match self {
            HttpsRedirect::Never => false,
            HttpsRedirect::WhenHostHasTls => host_has_tls,
            HttpsRedirect::Always => true,
        }
    }
}

/// Client source ranges: allowed when in `allow` (or `allow` is empty) and in no `deny` range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccessList {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl AccessList {
    pub(crate) fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// A per-client rate limit and the bucket it counts in (routes sharing a
/// bucket share their clients' tokens).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateLimitPolicy {
    pub bucket: String,
    pub limit: RateLimit,
    /// Client ranges the limit does not apply to.
    pub exempt: Vec<Cidr>,
}

/// Stream timeouts of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Idle time allowed on a request stream (there is no overall deadline).
    pub idle: Duration,
    /// Idle time allowed on an upgraded WebSocket stream, when it differs.
    pub websocket_idle: Option<Duration>,
    /// Deadline for the whole request (Gateway API `timeouts.request`); None: none.
    pub request: Option<Duration>,
    /// Deadline of each attempt at a backend (Gateway API `timeouts.backendRequest`).
    pub backend_request: Option<Duration>,
}

/// How the path is rewritten before the request is forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathRewrite {
    /// The matched prefix is replaced (Gateway API `ReplacePrefixMatch`).
    Prefix(String),
    /// An RE2 pattern over the whole path and its substitution (`\1` for groups).
    Regex {
        pattern: String,
        substitution: String,
    },
}

/// What applies to every request a route (and its alternatives) answers; one
/// value is shared by all routes of a source object that asked for the same.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoutePolicy {
    pub https_redirect: HttpsRedirect,
    /// Sent on responses to HTTPS requests only.
    pub hsts: Option<Hsts>,
    pub timeouts: Timeouts,
    pub retry: Retry,
    /// How a backend's endpoints are chosen (consistent hashing when not `None`).
    pub affinity: Affinity,
    pub access: AccessList,
    pub rate_limit: Option<RateLimitPolicy>,
    pub headers: HeaderEdits,
    /// Largest request body in bytes (413 above); None: no limit.
    pub max_body_bytes: Option<u32>,
    pub compression: Option<Compression>,
    /// Copies of each request sent to other backends, answers ignored
    /// (Gateway API `RequestMirror`).
    pub mirrors: Vec<Mirror>,
    /// Host header sent to the backend (Gateway API `URLRewrite.hostname`).
    pub host_rewrite: Option<String>,
    /// Cross-origin resource sharing answered by the gateway (Gateway API `CORS`).
    pub cors: Option<Cors>,
    /// Who may use the route, checked by the sidecar's authorization server
    /// (Envoy sees only the policy's id).
    pub auth: Option<Arc<AuthPolicy>>,
    /// Answers with these codes are replaced by another backend's
    /// (ingress-nginx's `custom-http-errors`).
    pub custom_errors: Option<Arc<CustomErrors>>,
}

/// Backend answers whose status is one of `codes` are replaced by the answer
/// of `backend` to the same request, internally redirected: ingress-nginx's
/// `custom-http-errors` with the Ingress's `default-backend`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CustomErrors {
    /// Statuses intercepted (400–599), sorted and deduplicated.
    pub codes: Vec<u16>,
    /// The internal host the redirected requests are routed by: a virtual
    /// host of its own, a name no Ingress rule can have.
    pub host: String,
    /// A key of [`Model::backends`](crate::model::Model::backends): the error pages.
    pub backend: String,
    /// Headers the error backend receives as they are (the Ingress, the
    /// Service of the path).
    pub headers: Vec<(String, String)>,
}

/// A CORS policy: preflights answered and response headers added by Envoy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cors {
    /// Origins as written: `*`, `https://a.example.com`, `https://*.example.com`.
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    /// Seconds a preflight answer may be cached.
    pub max_age: Option<u32>,
    /// How origins with a `*` (and letter case) are matched.
    pub origin_match: OriginMatch,
}

/// How a CORS origin pattern matches the request's `Origin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OriginMatch {
    /// Gateway API: a `*` stands for one or more host labels; exact case.
    #[default]
    Labels,
    /// ingress-nginx: a `*` stands for exactly one label (`[A-Za-z0-9-]+`);
    /// case-insensitive (nginx's `~*`).
    OneLabelIgnoreCase,
}

/// A backend that receives a copy of a share of the requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mirror {
    /// A key of [`crate::model::Model::backends`].
    pub backend: String,
    /// Share of the requests copied, 0–100.
    pub percent: u32,
    /// A finer share than `percent` when set: numerator per million.
    pub per_million: Option<u32>,
    /// The Host sent to the mirror; None: the request's, with Envoy's
    /// `-shadow` suffix.
    pub host: Option<String>,
}

/// An authentication policy (ingress-nginx `auth-type: basic`, `auth-url`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthPolicy {
    /// Unique and stable per source object (`ingress:<namespace>/<name>`), so
    /// a Secret change updates the policy in place.
    pub id: String,
    pub check: AuthCheck,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthCheck {
    Basic(BasicAuth),
    External(ExternalAuth),
}

/// HTTP basic authentication against htpasswd hashes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BasicAuth {
    /// Sent as `WWW-Authenticate: Basic realm="<realm>"`.
    pub realm: String,
    /// User → password hash (validated), sorted.
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for BasicAuth {
    /// Without the hashes: they never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("realm", &self.realm)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An external authentication service (ingress-nginx `auth-url`): a Service
/// of the tenant, asked about every request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExternalAuth {
    /// The URL as written, for messages.
    pub url: String,
    /// Host header of the subrequest (the URL's host and port).
    pub host: String,
    /// Path and query of the subrequest.
    pub path: String,
    /// Ready endpoints of the Service port, sorted.
    pub endpoints: Vec<(String, u16)>,
    /// Method of the subrequest (`GET` unless `auth-method`).
    pub method: String,
    /// Where a 401 sends the client (302, with `rd=`), with nginx variables
    /// (`$host`, `$escaped_request_uri`, …) still to expand.
    pub signin: Option<String>,
    /// The signin URL's parameter carrying the original URL.
    pub signin_redirect_param: String,
    /// Headers copied from the auth response onto the upstream request
    /// (lowercase); a request's own copies are removed.
    pub response_headers: Vec<String>,
    /// `X-Auth-Request-Redirect` of the subrequest; None: the request URI.
    pub request_redirect: Option<String>,
    /// The auth response's `Set-Cookie` also on denied requests.
    pub always_set_cookie: bool,
}
