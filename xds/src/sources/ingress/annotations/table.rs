//! The one table of the Ingress annotations we read. Each row says the key
//! (`tenantgateway.io/<name>`), the keys that alias it (read when ours is
//! absent, in order), how its value is parsed, what an invalid value does
//! (strict or lenient), its feature group and its line in
//! `docs/annotations.md`. Parsing reads values only through these rows,
//! the unknown-annotation report asks [`classify`], and the doc's tables are
//! rendered from them (`docs.rs`), so the three cannot drift.
//!
//! A new annotation: add its row here; read it (`r.read(&ROW)`) in the step
//! of `annotations/mod.rs` that fills its `IngressSettings` field (a test fails
//! while a row is not read); regenerate the doc
//! (`TG_UPDATE_DOCS=1 cargo test -p tenant-gateway-xds --lib annotations`).

use super::auth::{
    parse_auth_secret_type, parse_auth_type, parse_auth_url, parse_method, parse_query_param,
    parse_realm, parse_signin_url, AuthSecretType, AuthType, AuthUrl,
};
use super::{
    parse_abs_path, parse_affinity_kind, parse_algorithm, parse_backend_protocol, parse_body_size,
    parse_bool, parse_cidrs, parse_cookie_name, parse_dns_name, parse_duration, parse_hash_by,
    parse_header_list, parse_header_name, parse_header_names, parse_header_value,
    parse_limit_status, parse_mime_types, parse_on_off, parse_retry_on, parse_rewrite_target,
    parse_same_site, parse_secret_ref, parse_tls_version, parse_u64, Affinity, AffinityKind,
    Algorithm, BackendProtocol, Cidr, Redirect, Retry, TlsVersion, CONTOUR, NGINX, OURS,
};
use super::{
    parse_cors_headers, parse_cors_methods, parse_cors_origins, parse_forwarded_prefix,
    parse_redirect_code, parse_redirect_url, parse_server_aliases, parse_upstream_vhost,
    parse_verify_client, ClientVerify,
};
use super::{
    parse_error_codes, parse_header_pattern, parse_mirror_target, parse_retry_timeout,
    parse_service_ref, MirrorTarget,
};
use std::time::Duration;

/// An ingress-nginx key, written out so that rows hold `&'static str` keys.
macro_rules! nginx {
    ($name:literal) => {
        concat!("nginx.ingress.kubernetes.io/", $name)
    };
}

/// A Contour key.
macro_rules! contour {
    ($name:literal) => {
        concat!("projectcontour.io/", $name)
    };
}

/// What an invalid value does to its Ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnInvalid {
    /// The Ingress's rules are not served (`Error`).
    Strict,
    /// The Ingress is served with the default for the setting (`Warning`).
    Lenient,
    /// Lenient; the doc names what the default amounts to ("no HSTS").
    LenientServing(&'static str),
}

impl OnInvalid {
    pub(crate) fn drops_rules(self) -> bool {
        self == OnInvalid::Strict
    }
}

/// The section of `docs/annotations.md` a row's doc line is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Group {
    Tls,
    Paths,
    Timeouts,
    Affinity,
    Canary,
    AccessControl,
    RateLimiting,
    BackendProtocol,
    Headers,
    Compression,
    HealthChecks,
    Cors,
    Redirects,
    Mirror,
    DefaultBackend,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Group {
    /// The name in the doc's `<!-- BEGIN GENERATED <id> -->` marker.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Group::Tls => "tls",
            Group::Paths => "paths",
            Group::Timeouts => "timeouts",
            Group::Affinity => "affinity",
            Group::Canary => "canary",
            Group::AccessControl => "access-control",
            Group::RateLimiting => "rate-limiting",
            Group::BackendProtocol => "backend-protocol",
            Group::Headers => "headers",
            Group::Compression => "compression",
            Group::HealthChecks => "health-checks",
            Group::Cors => "cors",
            Group::Redirects => "redirects",
            Group::Mirror => "mirror",
            Group::DefaultBackend => "default-backend",
        }
    }

    /// The heading of the doc table's alias column.
    pub(crate) fn alias_heading(self) -> &'static str {
        match self {
            Group::Tls => "ingress-nginx / Contour",
            Group::Compression => "ingress-nginx (ConfigMap)",
            _ => "ingress-nginx",
        }
    }
}

/// How a value is parsed (after trimming).
pub(crate) enum Parser<T> {
    Plain(fn(&str) -> Result<T, String>),
    /// Also given the Ingress's namespace (Secret references).
    InNamespace(fn(&str, &str) -> Result<T, String>),
}

impl<T> Parser<T> {
    pub(crate) fn run(&self, value: &str, namespace: &str) -> Result<T, String> {
        match self {
            Parser::Plain(f) => f(value),
            Parser::InNamespace(f) => f(value, namespace),
        }
    }
}

/// One annotation: where it is read, what a bad value does, its doc line.
// The doc fields are read by the doc generator, which runs as a test.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Row {
    /// Ours, `tenantgateway.io/<name>`; it wins over the aliases.
    pub key: &'static str,
    /// Read when ours is absent, first present wins (Contour, then ingress-nginx).
    pub aliases: &'static [&'static str],
    pub on_invalid: OnInvalid,
    pub group: Group,
    /// Doc: the accepted values.
    pub value: &'static str,
    /// Doc: what applies without the annotation.
    pub default: &'static str,
    /// Doc: the alias column when there is no alias (an equivalent elsewhere).
    pub alias_note: Option<&'static str>,
    /// The row's parser with its result dropped; private so that rows exist
    /// only in this table.
    validate: fn(&str, &str) -> Result<(), String>,
}

impl Row {
    /// Ours, then the aliases: the order values are looked up in.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.key).chain(self.aliases.iter().copied())
    }

    /// Whether the row's parser accepts `value` (trimmed) for an Ingress in `namespace`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn validate(&self, value: &str, namespace: &str) -> Result<(), String> {
        (self.validate)(value, namespace)
    }
}

/// A row with the type its parser yields.
pub(crate) struct Annotation<T: 'static> {
    pub row: &'static Row,
    pub parse: Parser<T>,
}

/// Fields a row may leave out.
const BLANK: Row = Row {
    key: "",
    aliases: &[],
    on_invalid: OnInvalid::Strict,
    group: Group::Tls,
    value: "",
    default: "",
    alias_note: None,
    validate: |_, _| Ok(()),
};

/// Declares each row as a typed constant and lists them all in [`TABLE`],
/// in doc order, from one declaration.
macro_rules! annotation_table {
    ($( $id:ident: $ty:ty = $parser:expr => { $($field:ident: $value:expr),* $(,)? } )*) => {
        $(
            pub(crate) const $id: Annotation<$ty> = Annotation {
                row: &Row {
                    $($field: $value,)*
                    validate: |v, ns| {
                        let parser: Parser<$ty> = $parser;
                        parser.run(v, ns).map(drop)
                    },
                    ..BLANK
                },
                parse: $parser,
            };
        )*
        /// Every annotation we read, in doc order.
        pub(crate) const TABLE: &[&Row] = &[$($id.row),*];
    };
}

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3600);

fn up_to_an_hour(v: &str) -> Result<Duration, String> {
    parse_duration(v, Duration::from_millis(1), HOUR)
}

fn up_to_a_day(v: &str) -> Result<Duration, String> {
    parse_duration(v, Duration::from_millis(1), DAY)
}

fn a_second_to_an_hour(v: &str) -> Result<Duration, String> {
    parse_duration(v, Duration::from_secs(1), HOUR)
}

fn u32_in(v: &str, min: u64, max: u64) -> Result<u32, String> {
    parse_u64(v, min, max).map(|n| n as u32)
}

use Group as G;
use OnInvalid::{Lenient, LenientServing, Strict};

annotation_table! {
    // ---------- TLS ----------
    SSL_REDIRECT: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/ssl-redirect", aliases: &[nginx!("ssl-redirect")],
        on_invalid: Strict, group: G::Tls, value: "bool", default: "`false`",
    }
    FORCE_SSL_REDIRECT: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/force-ssl-redirect", aliases: &[nginx!("force-ssl-redirect")],
        on_invalid: Strict, group: G::Tls, value: "bool", default: "`false`",
    }
    HSTS_MAX_AGE: u64 = Parser::Plain(|v| parse_u64(v, 0, 2 * 365 * 24 * 3600)) => {
        key: "tenantgateway.io/hsts-max-age",
        on_invalid: LenientServing("no HSTS"), group: G::Tls,
        value: "seconds, 0..63072000", default: "no HSTS",
    }
    HSTS_INCLUDE_SUBDOMAINS: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/hsts-include-subdomains",
        on_invalid: Lenient, group: G::Tls, value: "bool", default: "`false`",
    }
    TLS_MIN_VERSION: TlsVersion = Parser::Plain(parse_tls_version) => {
        key: "tenantgateway.io/tls-min-version",
        aliases: &[contour!("tls-minimum-protocol-version")],
        on_invalid: Strict, group: G::Tls,
        value: "`1.2`, `1.3` (`TLSv1.3` accepted)", default: "`1.2`",
    }
    AUTH_TLS_SECRET: String = Parser::InNamespace(parse_secret_ref) => {
        key: "tenantgateway.io/auth-tls-secret", aliases: &[nginx!("auth-tls-secret")],
        on_invalid: Strict, group: G::Tls,
        value: "`namespace/name` or `name` of a Secret with `ca.crt` (and optional `ca.crl`); the Ingress's namespace only",
        default: "no client certificates",
    }
    AUTH_TLS_VERIFY_CLIENT: Option<ClientVerify> = Parser::Plain(parse_verify_client) => {
        key: "tenantgateway.io/auth-tls-verify-client",
        aliases: &[nginx!("auth-tls-verify-client")],
        on_invalid: Strict, group: G::Tls,
        value: "`on`, `optional`, `optional_no_ca`, `off`", default: "`on`",
    }
    AUTH_TLS_VERIFY_DEPTH: u32 = Parser::Plain(|v| u32_in(v, 1, 100)) => {
        key: "tenantgateway.io/auth-tls-verify-depth",
        aliases: &[nginx!("auth-tls-verify-depth")],
        on_invalid: LenientServing("1"), group: G::Tls, value: "1..100", default: "1",
    }
    AUTH_TLS_PASS_CERTIFICATE_TO_UPSTREAM: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/auth-tls-pass-certificate-to-upstream",
        aliases: &[nginx!("auth-tls-pass-certificate-to-upstream")],
        on_invalid: LenientServing("not passed"), group: G::Tls,
        value: "bool", default: "`false`",
    }
    AUTH_TLS_ERROR_PAGE: Redirect = Parser::Plain(parse_redirect_url) => {
        key: "tenantgateway.io/auth-tls-error-page", aliases: &[nginx!("auth-tls-error-page")],
        on_invalid: LenientServing("400"), group: G::Tls,
        value: "`http(s)://host[:port][/path][?query]`", default: "400",
    }
    SSL_PASSTHROUGH: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/ssl-passthrough", aliases: &[nginx!("ssl-passthrough")],
        on_invalid: LenientServing("TLS terminated"), group: G::Tls,
        value: "bool", default: "`false`",
    }

    // ---------- paths and rewrites ----------
    USE_REGEX: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/use-regex", aliases: &[nginx!("use-regex")],
        on_invalid: Strict, group: G::Paths, value: "bool", default: "`false`",
    }
    REWRITE_TARGET: String = Parser::Plain(parse_rewrite_target) => {
        key: "tenantgateway.io/rewrite-target", aliases: &[nginx!("rewrite-target")],
        on_invalid: Strict, group: G::Paths,
        value: "absolute path; `$1`..`$9` capture groups", default: "none",
    }
    APP_ROOT: String = Parser::Plain(|v| parse_abs_path(v, false)) => {
        key: "tenantgateway.io/app-root", aliases: &[nginx!("app-root")],
        on_invalid: Strict, group: G::Paths, value: "absolute path", default: "none",
    }
    PREFIX_REWRITE: String = Parser::Plain(|v| parse_abs_path(v, true)) => {
        key: "tenantgateway.io/prefix-rewrite",
        on_invalid: Strict, group: G::Paths, value: "absolute path", default: "none",
    }

    // ---------- timeouts and retries ----------
    CONNECT_TIMEOUT: Duration = Parser::Plain(up_to_an_hour) => {
        key: "tenantgateway.io/connect-timeout", aliases: &[nginx!("proxy-connect-timeout")],
        on_invalid: Lenient, group: G::Timeouts, value: "duration ≤ 1h", default: "5s",
    }
    READ_TIMEOUT: Duration = Parser::Plain(up_to_a_day) => {
        key: "tenantgateway.io/read-timeout", aliases: &[nginx!("proxy-read-timeout")],
        on_invalid: Lenient, group: G::Timeouts, value: "duration ≤ 24h", default: "60s",
    }
    SEND_TIMEOUT: Duration = Parser::Plain(up_to_a_day) => {
        key: "tenantgateway.io/send-timeout", aliases: &[nginx!("proxy-send-timeout")],
        on_invalid: Lenient, group: G::Timeouts, value: "duration ≤ 24h", default: "60s",
    }
    IDLE_TIMEOUT: Duration = Parser::Plain(up_to_a_day) => {
        key: "tenantgateway.io/idle-timeout",
        on_invalid: Lenient, group: G::Timeouts, value: "duration ≤ 24h", default: "60s",
    }
    WEBSOCKET_IDLE_TIMEOUT: Duration = Parser::Plain(up_to_a_day) => {
        key: "tenantgateway.io/websocket-idle-timeout",
        on_invalid: Lenient, group: G::Timeouts,
        value: "duration ≤ 24h", default: "the idle timeout",
    }
    RETRY_ON: Retry = Parser::Plain(parse_retry_on) => {
        key: "tenantgateway.io/retry-on", aliases: &[nginx!("proxy-next-upstream")],
        on_invalid: Lenient, group: G::Timeouts, value: "conditions", default: "see below",
    }
    RETRY_TRIES: u64 = Parser::Plain(|v| parse_u64(v, 0, 10)) => {
        key: "tenantgateway.io/retry-tries", aliases: &[nginx!("proxy-next-upstream-tries")],
        on_invalid: Lenient, group: G::Timeouts, value: "0..10", default: "3 tries",
    }
    RETRY_TIMEOUT: Option<Duration> = Parser::Plain(parse_retry_timeout) => {
        key: "tenantgateway.io/retry-timeout", aliases: &[nginx!("proxy-next-upstream-timeout")],
        on_invalid: Lenient, group: G::Timeouts,
        value: "duration ≤ 24h; `0` = no limit", default: "no limit",
    }

    // ---------- session affinity ----------
    AFFINITY: Option<AffinityKind> = Parser::Plain(parse_affinity_kind) => {
        key: "tenantgateway.io/affinity", aliases: &[nginx!("affinity")],
        on_invalid: Lenient, group: G::Affinity,
        value: "`cookie`, `source-ip` (ours)", default: "none",
    }
    UPSTREAM_HASH_BY: Affinity = Parser::Plain(parse_hash_by) => {
        key: "tenantgateway.io/upstream-hash-by", aliases: &[nginx!("upstream-hash-by")],
        on_invalid: Lenient, group: G::Affinity, value: "`$remote_addr` only", default: "none",
    }
    SESSION_COOKIE_NAME: String = Parser::Plain(parse_cookie_name) => {
        key: "tenantgateway.io/session-cookie-name", aliases: &[nginx!("session-cookie-name")],
        on_invalid: Lenient, group: G::Affinity,
        value: "cookie name", default: "`INGRESSCOOKIE`",
    }
    SESSION_COOKIE_PATH: String = Parser::Plain(|v| parse_abs_path(v, false)) => {
        key: "tenantgateway.io/session-cookie-path", aliases: &[nginx!("session-cookie-path")],
        on_invalid: Lenient, group: G::Affinity, value: "absolute path", default: "`/`",
    }
    SESSION_COOKIE_MAX_AGE: Duration =
        Parser::Plain(|v| parse_u64(v, 1, 10 * 365 * 24 * 3600).map(Duration::from_secs)) => {
        key: "tenantgateway.io/session-cookie-max-age",
        aliases: &[nginx!("session-cookie-max-age")],
        on_invalid: Lenient, group: G::Affinity, value: "seconds", default: "session cookie",
    }
    SESSION_COOKIE_SAMESITE: String = Parser::Plain(parse_same_site) => {
        key: "tenantgateway.io/session-cookie-samesite",
        aliases: &[nginx!("session-cookie-samesite")],
        on_invalid: Lenient, group: G::Affinity,
        value: "`Strict`, `Lax`, `None`", default: "not set",
    }
    SESSION_COOKIE_EXPIRES: Duration =
        Parser::Plain(|v| parse_u64(v, 1, 10 * 365 * 24 * 3600).map(Duration::from_secs)) => {
        key: "tenantgateway.io/session-cookie-expires",
        aliases: &[nginx!("session-cookie-expires")],
        on_invalid: Lenient, group: G::Affinity,
        value: "seconds (sent as `Max-Age`)", default: "session cookie",
    }
    SESSION_COOKIE_SECURE: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/session-cookie-secure",
        aliases: &[nginx!("session-cookie-secure")],
        on_invalid: Lenient, group: G::Affinity, value: "bool", default: "`false`",
    }
    SESSION_COOKIE_CHANGE_ON_FAILURE: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/session-cookie-change-on-failure",
        aliases: &[nginx!("session-cookie-change-on-failure")],
        on_invalid: Lenient, group: G::Affinity, value: "bool", default: "`false`",
    }

    // ---------- canary ----------
    CANARY: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/canary", aliases: &[nginx!("canary")],
        on_invalid: Strict, group: G::Canary, value: "bool", default: "`false`",
    }
    CANARY_WEIGHT: u64 = Parser::Plain(|v| parse_u64(v, 0, 1_000_000)) => {
        key: "tenantgateway.io/canary-weight", aliases: &[nginx!("canary-weight")],
        on_invalid: Strict, group: G::Canary, value: "0..total", default: "0",
    }
    CANARY_WEIGHT_TOTAL: u64 = Parser::Plain(|v| parse_u64(v, 1, 1_000_000)) => {
        key: "tenantgateway.io/canary-weight-total", aliases: &[nginx!("canary-weight-total")],
        on_invalid: Strict, group: G::Canary, value: "1..1000000", default: "100",
    }
    CANARY_BY_HEADER: String = Parser::Plain(parse_header_name) => {
        key: "tenantgateway.io/canary-by-header", aliases: &[nginx!("canary-by-header")],
        on_invalid: Strict, group: G::Canary, value: "header name", default: "none",
    }
    CANARY_BY_HEADER_VALUE: String = Parser::Plain(parse_header_value) => {
        key: "tenantgateway.io/canary-by-header-value",
        aliases: &[nginx!("canary-by-header-value")],
        on_invalid: Strict, group: G::Canary, value: "printable ASCII", default: "none",
    }
    CANARY_BY_COOKIE: String = Parser::Plain(parse_cookie_name) => {
        key: "tenantgateway.io/canary-by-cookie", aliases: &[nginx!("canary-by-cookie")],
        on_invalid: Strict, group: G::Canary, value: "cookie name", default: "none",
    }
    CANARY_BY_HEADER_PATTERN: String = Parser::Plain(parse_header_pattern) => {
        key: "tenantgateway.io/canary-by-header-pattern",
        aliases: &[nginx!("canary-by-header-pattern")],
        on_invalid: Strict, group: G::Canary,
        value: "RE2 regex, found anywhere in the value", default: "none",
    }

    // ---------- access control ----------
    ALLOWLIST_SOURCE_RANGE: Vec<Cidr> = Parser::Plain(parse_cidrs) => {
        key: "tenantgateway.io/allowlist-source-range",
        aliases: &[nginx!("allowlist-source-range")],
        on_invalid: Strict, group: G::AccessControl,
        value: "comma-separated CIDRs / addresses, IPv4 or IPv6", default: "everyone",
    }
    // The older name is a row of its own: both are validated when both are set.
    WHITELIST_SOURCE_RANGE: Vec<Cidr> = Parser::Plain(parse_cidrs) => {
        key: "tenantgateway.io/whitelist-source-range",
        aliases: &[nginx!("whitelist-source-range")],
        on_invalid: Strict, group: G::AccessControl,
        value: "same (older name)", default: "everyone",
    }
    DENYLIST_SOURCE_RANGE: Vec<Cidr> = Parser::Plain(parse_cidrs) => {
        key: "tenantgateway.io/denylist-source-range",
        aliases: &[nginx!("denylist-source-range")],
        on_invalid: Strict, group: G::AccessControl, value: "same", default: "no one",
    }
    AUTH_TYPE: AuthType = Parser::Plain(parse_auth_type) => {
        key: "tenantgateway.io/auth-type", aliases: &[nginx!("auth-type")],
        on_invalid: Strict, group: G::AccessControl,
        value: "`basic` (`digest` is refused: the rules are not served)", default: "none",
    }
    AUTH_SECRET: String = Parser::InNamespace(parse_secret_ref) => {
        key: "tenantgateway.io/auth-secret", aliases: &[nginx!("auth-secret")],
        on_invalid: Strict, group: G::AccessControl,
        value: "`namespace/name` or `name` of an `Opaque` Secret; the Ingress's namespace only",
        default: "none",
    }
    AUTH_SECRET_TYPE: AuthSecretType = Parser::Plain(parse_auth_secret_type) => {
        key: "tenantgateway.io/auth-secret-type", aliases: &[nginx!("auth-secret-type")],
        on_invalid: Strict, group: G::AccessControl,
        value: "`auth-file` (key `auth`: htpasswd lines), `auth-map` (keys: users, values: hashes)",
        default: "`auth-file`",
    }
    AUTH_REALM: String = Parser::Plain(parse_realm) => {
        key: "tenantgateway.io/auth-realm", aliases: &[nginx!("auth-realm")],
        on_invalid: LenientServing("empty realm"), group: G::AccessControl,
        value: "printable ASCII, no quotes", default: "empty",
    }
    AUTH_URL: AuthUrl = Parser::Plain(parse_auth_url) => {
        key: "tenantgateway.io/auth-url", aliases: &[nginx!("auth-url")],
        on_invalid: Strict, group: G::AccessControl,
        value: "`http://<service>.<namespace>.svc.cluster.local[:port]/path` (or `.svc`, or `<service>.<namespace>`): a Service of the tenant; no IP, `localhost`, other host, `https` or variables",
        default: "none",
    }
    AUTH_SIGNIN: String = Parser::Plain(parse_signin_url) => {
        key: "tenantgateway.io/auth-signin", aliases: &[nginx!("auth-signin")],
        on_invalid: LenientServing("401 without redirect"), group: G::AccessControl,
        value: "`http(s)://…` URL; variables `$host`, `$http_host`, `$scheme`, `$request_uri`, `$escaped_request_uri`",
        default: "401 passed to the client",
    }
    AUTH_SIGNIN_REDIRECT_PARAM: String = Parser::Plain(parse_query_param) => {
        key: "tenantgateway.io/auth-signin-redirect-param",
        aliases: &[nginx!("auth-signin-redirect-param")],
        on_invalid: LenientServing("rd"), group: G::AccessControl,
        value: "query parameter name", default: "`rd`",
    }
    AUTH_RESPONSE_HEADERS: Vec<String> = Parser::Plain(parse_header_names) => {
        key: "tenantgateway.io/auth-response-headers",
        aliases: &[nginx!("auth-response-headers")],
        on_invalid: Strict, group: G::AccessControl,
        value: "header names, comma separated (the client's own copies are removed)",
        default: "none",
    }
    AUTH_REQUEST_REDIRECT: String = Parser::Plain(parse_header_value) => {
        key: "tenantgateway.io/auth-request-redirect",
        aliases: &[nginx!("auth-request-redirect")],
        on_invalid: LenientServing("the request URI"), group: G::AccessControl,
        value: "printable ASCII (the `X-Auth-Request-Redirect` value)",
        default: "the request URI",
    }
    AUTH_METHOD: String = Parser::Plain(parse_method) => {
        key: "tenantgateway.io/auth-method", aliases: &[nginx!("auth-method")],
        on_invalid: LenientServing("GET"), group: G::AccessControl,
        value: "`GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS`", default: "`GET`",
    }
    AUTH_ALWAYS_SET_COOKIE: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/auth-always-set-cookie",
        aliases: &[nginx!("auth-always-set-cookie")],
        on_invalid: LenientServing("only when allowed"), group: G::AccessControl,
        value: "bool", default: "`false`",
    }

    // ---------- rate limiting ----------
    LIMIT_RPS: u32 = Parser::Plain(|v| u32_in(v, 1, 1_000_000)) => {
        key: "tenantgateway.io/limit-rps", aliases: &[nginx!("limit-rps")],
        on_invalid: Strict, group: G::RateLimiting,
        value: "requests per second, 1..1000000", default: "no limit",
    }
    LIMIT_RPM: u32 = Parser::Plain(|v| u32_in(v, 1, 1_000_000)) => {
        key: "tenantgateway.io/limit-rpm", aliases: &[nginx!("limit-rpm")],
        on_invalid: Strict, group: G::RateLimiting,
        value: "requests per minute, 1..1000000", default: "no limit",
    }
    LIMIT_BURST_MULTIPLIER: u32 = Parser::Plain(|v| u32_in(v, 1, 100)) => {
        key: "tenantgateway.io/limit-burst-multiplier",
        aliases: &[nginx!("limit-burst-multiplier")],
        on_invalid: Strict, group: G::RateLimiting, value: "1..100", default: "5",
    }
    LIMIT_STATUS_CODE: u16 = Parser::Plain(parse_limit_status) => {
        key: "tenantgateway.io/limit-status-code",
        on_invalid: LenientServing("429"), group: G::RateLimiting,
        value: "400, 403, 404, 429, 500, 502, 503, 504", default: "429",
    }
    LIMIT_CONNECTIONS: u32 = Parser::Plain(|v| u32_in(v, 1, 1_000_000)) => {
        key: "tenantgateway.io/limit-connections", aliases: &[nginx!("limit-connections")],
        on_invalid: Strict, group: G::RateLimiting,
        value: "requests in flight per backend Service, 1..1000000 (not per client)",
        default: "no limit",
    }
    LIMIT_ALLOWLIST: Vec<Cidr> = Parser::Plain(parse_cidrs) => {
        key: "tenantgateway.io/limit-allowlist", aliases: &[nginx!("limit-allowlist")],
        on_invalid: LenientServing("no one exempt"), group: G::RateLimiting,
        value: "comma-separated CIDRs / addresses exempt from `limit-rps`/`limit-rpm`",
        default: "no one exempt",
    }
    // The older name is a row of its own, as the source ranges.
    LIMIT_WHITELIST: Vec<Cidr> = Parser::Plain(parse_cidrs) => {
        key: "tenantgateway.io/limit-whitelist", aliases: &[nginx!("limit-whitelist")],
        on_invalid: LenientServing("no one exempt"), group: G::RateLimiting,
        value: "same (older name)", default: "no one exempt",
    }

    // ---------- backend protocol and upstream TLS ----------
    BACKEND_PROTOCOL: BackendProtocol = Parser::Plain(parse_backend_protocol) => {
        key: "tenantgateway.io/backend-protocol", aliases: &[nginx!("backend-protocol")],
        on_invalid: Strict, group: G::BackendProtocol,
        value: "`HTTP`, `HTTPS`, `GRPC`, `GRPCS`, `H2C` (any case)", default: "`HTTP`",
    }
    PROXY_SSL_SECRET: String = Parser::InNamespace(parse_secret_ref) => {
        key: "tenantgateway.io/proxy-ssl-secret", aliases: &[nginx!("proxy-ssl-secret")],
        on_invalid: Strict, group: G::BackendProtocol,
        value: "`namespace/name` or `name`; the Ingress's namespace only", default: "no CA",
    }
    PROXY_SSL_VERIFY: bool = Parser::Plain(parse_on_off) => {
        key: "tenantgateway.io/proxy-ssl-verify", aliases: &[nginx!("proxy-ssl-verify")],
        on_invalid: Strict, group: G::BackendProtocol,
        value: "`on`/`off` (or a bool)", default: "`on` when a CA is given",
    }
    PROXY_SSL_NAME: String = Parser::Plain(parse_dns_name) => {
        key: "tenantgateway.io/proxy-ssl-name", aliases: &[nginx!("proxy-ssl-name")],
        on_invalid: Strict, group: G::BackendProtocol,
        value: "DNS name", default: "`<service>.<namespace>.svc`",
    }
    SERVICE_UPSTREAM: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/service-upstream", aliases: &[nginx!("service-upstream")],
        on_invalid: LenientServing("endpoints"), group: G::BackendProtocol,
        value: "bool (the Service's cluster IP instead of its endpoints)", default: "`false`",
    }

    // ---------- headers and request body size ----------
    REQUEST_HEADERS_ADD: Vec<(String, String)> = Parser::Plain(parse_header_list) => {
        key: "tenantgateway.io/request-headers-add",
        on_invalid: Strict, group: G::Headers,
        value: "`Name: value; Name2: value2`", default: "none",
    }
    REQUEST_HEADERS_REMOVE: Vec<String> = Parser::Plain(parse_header_names) => {
        key: "tenantgateway.io/request-headers-remove",
        on_invalid: Strict, group: G::Headers,
        value: "header names, comma or space separated", default: "none",
    }
    RESPONSE_HEADERS_ADD: Vec<(String, String)> = Parser::Plain(parse_header_list) => {
        key: "tenantgateway.io/response-headers-add",
        on_invalid: Strict, group: G::Headers,
        value: "`Name: value; Name2: value2`", default: "none",
    }
    RESPONSE_HEADERS_REMOVE: Vec<String> = Parser::Plain(parse_header_names) => {
        key: "tenantgateway.io/response-headers-remove",
        on_invalid: Strict, group: G::Headers,
        value: "header names, comma or space separated", default: "none",
    }
    UPSTREAM_VHOST: String = Parser::Plain(parse_upstream_vhost) => {
        key: "tenantgateway.io/upstream-vhost", aliases: &[nginx!("upstream-vhost")],
        on_invalid: Strict, group: G::Headers,
        value: "host name, optionally `:port`", default: "the request's `Host`",
    }
    X_FORWARDED_PREFIX: String = Parser::Plain(parse_forwarded_prefix) => {
        key: "tenantgateway.io/x-forwarded-prefix", aliases: &[nginx!("x-forwarded-prefix")],
        on_invalid: Strict, group: G::Headers,
        value: "printable ASCII (the `X-Forwarded-Prefix` value)", default: "not sent",
    }
    PROXY_BODY_SIZE: Option<u32> = Parser::Plain(parse_body_size) => {
        key: "tenantgateway.io/proxy-body-size", aliases: &[nginx!("proxy-body-size")],
        on_invalid: Strict, group: G::Headers,
        value: "bytes, or `k`/`m`/`g` (1024-based), below 4g; `0` = no limit",
        default: "no limit",
    }

    // ---------- compression ----------
    COMPRESSION: Option<Algorithm> = Parser::Plain(parse_algorithm) => {
        key: "tenantgateway.io/compression", alias_note: Some("(`use-gzip`, `enable-brotli`)"),
        on_invalid: LenientServing("off"), group: G::Compression,
        value: "`gzip`, `brotli` (or `br`), `off`", default: "off",
    }
    COMPRESSION_TYPES: Vec<String> = Parser::Plain(parse_mime_types) => {
        key: "tenantgateway.io/compression-types",
        alias_note: Some("(`gzip-types`, `brotli-types`)"),
        on_invalid: LenientServing("default types"), group: G::Compression,
        value: "MIME types, comma or space separated, 1..32", default: "see below",
    }
    COMPRESSION_MIN_LENGTH: u32 = Parser::Plain(|v| u32_in(v, 0, 1 << 30)) => {
        key: "tenantgateway.io/compression-min-length",
        alias_note: Some("(`gzip-min-length`)"),
        on_invalid: LenientServing("256"), group: G::Compression,
        value: "bytes, 0..2^30", default: "256",
    }

    // ---------- health checks and outlier detection ----------
    HEALTH_CHECK_PATH: String = Parser::Plain(|v| parse_abs_path(v, false)) => {
        key: "tenantgateway.io/health-check-path",
        on_invalid: LenientServing("no checks"), group: G::HealthChecks,
        value: "absolute path", default: "no active checks",
    }
    HEALTH_CHECK_INTERVAL: Duration = Parser::Plain(a_second_to_an_hour) => {
        key: "tenantgateway.io/health-check-interval",
        on_invalid: Lenient, group: G::HealthChecks, value: "duration, 1s..1h", default: "10s",
    }
    HEALTH_CHECK_TIMEOUT: Duration =
        Parser::Plain(|v| parse_duration(v, Duration::from_millis(100), HOUR)) => {
        key: "tenantgateway.io/health-check-timeout",
        on_invalid: Lenient, group: G::HealthChecks,
        value: "duration, 100ms..1h", default: "5s",
    }
    HEALTH_CHECK_HEALTHY_THRESHOLD: u32 = Parser::Plain(|v| u32_in(v, 1, 100)) => {
        key: "tenantgateway.io/health-check-healthy-threshold",
        on_invalid: Lenient, group: G::HealthChecks, value: "1..100", default: "2",
    }
    HEALTH_CHECK_UNHEALTHY_THRESHOLD: u32 = Parser::Plain(|v| u32_in(v, 1, 100)) => {
        key: "tenantgateway.io/health-check-unhealthy-threshold",
        on_invalid: Lenient, group: G::HealthChecks, value: "1..100", default: "3",
    }
    OUTLIER_CONSECUTIVE_5XX: u32 = Parser::Plain(|v| u32_in(v, 1, 1000)) => {
        key: "tenantgateway.io/outlier-consecutive-5xx",
        on_invalid: LenientServing("none"), group: G::HealthChecks,
        value: "1..1000", default: "no outlier detection",
    }
    OUTLIER_INTERVAL: Duration = Parser::Plain(a_second_to_an_hour) => {
        key: "tenantgateway.io/outlier-interval",
        on_invalid: Lenient, group: G::HealthChecks, value: "duration, 1s..1h", default: "10s",
    }
    OUTLIER_BASE_EJECTION_TIME: Duration = Parser::Plain(a_second_to_an_hour) => {
        key: "tenantgateway.io/outlier-base-ejection-time",
        on_invalid: Lenient, group: G::HealthChecks, value: "duration, 1s..1h", default: "30s",
    }

    // ---------- CORS ----------
    ENABLE_CORS: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/enable-cors", aliases: &[nginx!("enable-cors")],
        on_invalid: Lenient, group: G::Cors, value: "bool", default: "`false`",
    }
    CORS_ALLOW_ORIGIN: Vec<String> = Parser::Plain(parse_cors_origins) => {
        key: "tenantgateway.io/cors-allow-origin", aliases: &[nginx!("cors-allow-origin")],
        on_invalid: Strict, group: G::Cors,
        value: "`*`, or comma-separated `http(s)://host[:port]` (`https://*.example.com`: one label)",
        default: "`*`",
    }
    CORS_ALLOW_METHODS: Vec<String> = Parser::Plain(parse_cors_methods) => {
        key: "tenantgateway.io/cors-allow-methods", aliases: &[nginx!("cors-allow-methods")],
        on_invalid: Strict, group: G::Cors,
        value: "methods, comma separated", default: "`GET, PUT, POST, DELETE, PATCH, OPTIONS`",
    }
    CORS_ALLOW_HEADERS: Vec<String> = Parser::Plain(|v| parse_cors_headers(v, false)) => {
        key: "tenantgateway.io/cors-allow-headers", aliases: &[nginx!("cors-allow-headers")],
        on_invalid: Strict, group: G::Cors,
        value: "header names, comma separated", default: "`DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization`",
    }
    CORS_EXPOSE_HEADERS: Vec<String> = Parser::Plain(|v| parse_cors_headers(v, true)) => {
        key: "tenantgateway.io/cors-expose-headers", aliases: &[nginx!("cors-expose-headers")],
        on_invalid: LenientServing("none exposed"), group: G::Cors,
        value: "header names or `*`, comma separated", default: "none",
    }
    CORS_ALLOW_CREDENTIALS: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/cors-allow-credentials",
        aliases: &[nginx!("cors-allow-credentials")],
        on_invalid: Strict, group: G::Cors, value: "bool", default: "`true`",
    }
    CORS_MAX_AGE: u32 = Parser::Plain(|v| u32_in(v, 0, i32::MAX as u64)) => {
        key: "tenantgateway.io/cors-max-age", aliases: &[nginx!("cors-max-age")],
        on_invalid: LenientServing("1728000"), group: G::Cors,
        value: "seconds", default: "1728000",
    }

    // ---------- redirects and host names ----------
    PERMANENT_REDIRECT: Redirect = Parser::Plain(parse_redirect_url) => {
        key: "tenantgateway.io/permanent-redirect", aliases: &[nginx!("permanent-redirect")],
        on_invalid: Strict, group: G::Redirects,
        value: "`http(s)://host[:port][/path][?query]`, or `http(s)://host[:port]$request_uri`",
        default: "none",
    }
    PERMANENT_REDIRECT_CODE: u16 = Parser::Plain(|v| parse_redirect_code(v, &[301, 302, 303, 307, 308])) => {
        key: "tenantgateway.io/permanent-redirect-code",
        aliases: &[nginx!("permanent-redirect-code")],
        on_invalid: LenientServing("301"), group: G::Redirects,
        value: "301, 302, 303, 307, 308", default: "301",
    }
    TEMPORAL_REDIRECT: Redirect = Parser::Plain(parse_redirect_url) => {
        key: "tenantgateway.io/temporal-redirect", aliases: &[nginx!("temporal-redirect")],
        on_invalid: Strict, group: G::Redirects,
        value: "same as `permanent-redirect`", default: "none",
    }
    TEMPORAL_REDIRECT_CODE: u16 = Parser::Plain(|v| parse_redirect_code(v, &[301, 302, 303, 307])) => {
        key: "tenantgateway.io/temporal-redirect-code",
        aliases: &[nginx!("temporal-redirect-code")],
        on_invalid: LenientServing("302"), group: G::Redirects,
        value: "301, 302, 303, 307", default: "302",
    }
    FROM_TO_WWW_REDIRECT: bool = Parser::Plain(parse_bool) => {
        key: "tenantgateway.io/from-to-www-redirect", aliases: &[nginx!("from-to-www-redirect")],
        on_invalid: LenientServing("no redirect"), group: G::Redirects,
        value: "bool", default: "`false`",
    }
    SERVER_ALIAS: Vec<String> = Parser::Plain(parse_server_aliases) => {
        key: "tenantgateway.io/server-alias", aliases: &[nginx!("server-alias")],
        on_invalid: LenientServing("no aliases"), group: G::Redirects,
        value: "host names, comma separated (no wildcards)", default: "none",
    }

    // ---------- mirroring ----------
    MIRROR_TARGET: MirrorTarget = Parser::InNamespace(parse_mirror_target) => {
        key: "tenantgateway.io/mirror-target", aliases: &[nginx!("mirror-target")],
        on_invalid: Strict, group: G::Mirror,
        value: "`http(s)://<service>.<namespace>[.svc[.cluster.local]][:port]`, optionally followed by `$request_uri`; a Service of the tenant only",
        default: "no mirror",
    }
    MIRROR_REQUEST_BODY: bool = Parser::Plain(parse_on_off) => {
        key: "tenantgateway.io/mirror-request-body", aliases: &[nginx!("mirror-request-body")],
        on_invalid: LenientServing("on"), group: G::Mirror,
        value: "`on` (`off` is refused: Envoy always mirrors the body)", default: "`on`",
    }
    MIRROR_HOST: String = Parser::Plain(parse_upstream_vhost) => {
        key: "tenantgateway.io/mirror-host", aliases: &[nginx!("mirror-host")],
        on_invalid: LenientServing("the target's host"), group: G::Mirror,
        value: "host name, optionally `:port`", default: "the target's host",
    }

    // ---------- default backend ----------
    DEFAULT_BACKEND: String = Parser::InNamespace(parse_service_ref) => {
        key: "tenantgateway.io/default-backend", aliases: &[nginx!("default-backend")],
        on_invalid: LenientServing("no fallback"), group: G::DefaultBackend,
        value: "`name` or `namespace/name` of a Service; the Ingress's namespace only",
        default: "no fallback",
    }
    CUSTOM_HTTP_ERRORS: Vec<u16> = Parser::Plain(parse_error_codes) => {
        key: "tenantgateway.io/custom-http-errors", aliases: &[nginx!("custom-http-errors")],
        on_invalid: LenientServing("the backend's answers as they are"), group: G::DefaultBackend,
        value: "status codes 400–599, comma separated; answered by the `default-backend` Service",
        default: "none",
    }
}

/// ingress-nginx annotations we refuse whatever their value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Raw proxy configuration: ignored, with a warning.
    Snippet,
    /// A feature we do not implement whose absence would weaken access
    /// control: the Ingress's rules are not served.
    FailClosed,
}

/// Every refused annotation, in doc order.
pub(crate) const REFUSED: &[(&str, Refusal)] = &[
    (nginx!("configuration-snippet"), Refusal::Snippet),
    (nginx!("server-snippet"), Refusal::Snippet),
    (nginx!("location-snippet"), Refusal::Snippet),
    (nginx!("auth-snippet"), Refusal::Snippet),
    (nginx!("stream-snippet"), Refusal::Snippet),
    (nginx!("modsecurity-snippet"), Refusal::Snippet),
    (nginx!("auth-tls-match-cn"), Refusal::FailClosed),
    (nginx!("satisfy"), Refusal::FailClosed),
];

/// What the unknown-annotation report makes of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// A row's key or alias.
    Read,
    Refused(Refusal),
    /// Under our or ingress-nginx's prefix, but not something we read.
    Unsupported,
    /// Another prefix, or one of Contour's we do not read (Contour has many
    /// annotations we do not claim to know).
    NotOurs,
}

pub(crate) fn classify(key: &str) -> KeyKind {
    if TABLE.iter().any(|row| row.keys().any(|k| k == key)) {
        return KeyKind::Read;
    }
    if let Some((_, refusal)) = REFUSED.iter().find(|(k, _)| *k == key) {
        return KeyKind::Refused(*refusal);
    }
    match [OURS, NGINX, CONTOUR]
        .into_iter()
        .find(|prefix| key.starts_with(prefix))
    {
        Some(OURS | NGINX) => KeyKind::Unsupported,
        _ => KeyKind::NotOurs,
    }
}
