//! Per-Ingress settings parsed from annotations: ours (`tenantgateway.io/…`),
//! ingress-nginx's (`nginx.ingress.kubernetes.io/…`) and a few of Contour's
//! (`projectcontour.io/…`). Ours win when both name the same feature.
//!
//! Every value is validated here, before it can reach Envoy: a bad value
//! affects only its Ingress and is reported. Each annotation is either
//! *lenient* (the Ingress serves with the default, `Warning`) or *strict*
//! (the Ingress's rules are not served, `Error`) — strict where serving with
//! the default would silently weaken what the tenant asked for (access
//! control, authentication, rewrites, canaries). See `docs/annotations.md`.

use crate::diagnostics::{Diagnostics, ObjectRef, Severity};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

pub(crate) const OURS: &str = "tenantgateway.io/";
pub(crate) const NGINX: &str = "nginx.ingress.kubernetes.io/";
pub(crate) const CONTOUR: &str = "projectcontour.io/";

pub(crate) use crate::model::{
    Affinity, Algorithm, BackendProtocol, Cidr, ClientVerify, ClusterSettings, Compression,
    ConcurrencyLimit, CookieAffinity, Cors, HeaderEdits, HealthCheck, Hsts, OriginMatch, Outlier,
    RateLimit, Redirect, RedirectPath, Retry, TlsVersion,
};

/// ingress-nginx canary semantics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Canary {
    pub weight: u32,
    pub weight_total: u32,
    pub by_header: Option<String>,
    pub by_header_value: Option<String>,
    pub by_cookie: Option<String>,
    /// `canary-by-header-pattern`, as a full-match RE2 regex (used when
    /// there is no `by_header_value`).
    pub by_header_pattern: Option<String>,
}

/// `mirror-target` (and `mirror-host`): a Service port of the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MirrorTarget {
    pub https: bool,
    pub namespace: String,
    pub service: String,
    pub port: u16,
    /// The Host sent to the mirror.
    pub host: String,
}

/// Upstream TLS verification asked by `proxy-ssl-secret`/`proxy-ssl-verify`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ProxySsl {
    /// The CA Secret's name (in the Ingress's namespace).
    pub secret: Option<String>,
    /// Verify the backend's certificate (default: when a CA is given).
    pub verify: bool,
    /// SNI and the name verified; default `<service>.<namespace>.svc`.
    pub name: Option<String>,
}

/// Client certificates asked by `auth-tls-*` (not `off`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientCertificates {
    /// The CA Secret's name (in the Ingress's namespace).
    pub secret: String,
    pub verify: ClientVerify,
    pub depth: u32,
    /// Send the certificate upstream in `ssl-client-cert`.
    pub pass_certificate: bool,
    /// `auth-tls-error-page`, as a 302 redirect.
    pub error_page: Option<Redirect>,
}

/// ingress-nginx's `auth-tls-verify-depth` default.
pub(crate) const DEFAULT_VERIFY_DEPTH: u32 = 1;

/// Statuses a limited request may get (defined in Envoy's StatusCode enum).
pub(crate) const LIMIT_STATUS_CODES: &[u16] = &[400, 403, 404, 429, 500, 502, 503, 504];

/// Compressed by default (ingress-nginx's `gzip-types`, plus JSON and SVG).
pub(crate) const DEFAULT_COMPRESSION_TYPES: &[&str] = &[
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
    "text/css",
    "text/html",
    "text/javascript",
    "text/plain",
    "text/xml",
];

/// ingress-nginx's `gzip-min-length` default.
pub(crate) const DEFAULT_COMPRESSION_MIN_LENGTH: u32 = 256;

/// ingress-nginx's `cors-allow-methods` default.
pub(crate) const DEFAULT_CORS_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
/// ingress-nginx's `cors-allow-headers` default.
pub(crate) const DEFAULT_CORS_HEADERS: &str =
    "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
/// ingress-nginx's `cors-max-age` default (20 days).
pub(crate) const DEFAULT_CORS_MAX_AGE: u32 = 1_728_000;

/// Everything the annotations of one Ingress ask for, typed and validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IngressSettings {
    pub ssl_redirect: bool,
    pub force_ssl_redirect: bool,
    pub hsts: Option<Hsts>,
    pub tls_min_version: TlsVersion,
    /// `auth-tls-secret` and the other `auth-tls-*` (None: `off` or unset).
    pub client_certificates: Option<ClientCertificates>,
    /// `ssl-passthrough`: TLS of the Ingress's hosts goes to the backend.
    pub ssl_passthrough: bool,
    pub use_regex: bool,
    /// nginx `rewrite-target`, with `$n` already turned into Envoy's `\n`.
    pub rewrite_target: Option<String>,
    pub app_root: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub connect_timeout: Option<Duration>,
    /// Stream idle timeout of the route (nginx read/send timeouts).
    pub idle_timeout: Duration,
    pub websocket_idle_timeout: Option<Duration>,
    pub retry: Retry,
    pub affinity: Affinity,
    pub canary: Option<Canary>,
    pub allow_ranges: Vec<Cidr>,
    pub deny_ranges: Vec<Cidr>,
    pub rate_limit: Option<RateLimit>,
    pub backend_protocol: BackendProtocol,
    pub proxy_ssl: ProxySsl,
    pub headers: HeaderEdits,
    /// Largest request body in bytes (413 above); None: no limit.
    pub max_body_bytes: Option<u32>,
    pub health_check: Option<HealthCheck>,
    pub outlier: Option<Outlier>,
    pub compression: Option<Compression>,
    /// `enable-cors` and the `cors-*` settings, origins as written (lowercase).
    pub cors: Option<Cors>,
    /// `temporal-redirect` or `permanent-redirect` (with its code): every
    /// path of the Ingress answers with it instead of forwarding.
    pub redirect: Option<Redirect>,
    pub from_to_www: bool,
    /// `server-alias`: more host names served like the Ingress's first host.
    pub server_aliases: Vec<String>,
    /// `upstream-vhost`: the Host header sent to the backend.
    pub upstream_vhost: Option<String>,
    /// `x-forwarded-prefix`, `%` already escaped.
    pub x_forwarded_prefix: Option<String>,
    /// `proxy-next-upstream-timeout`: the deadline of the request, retries included.
    pub retry_timeout: Option<Duration>,
    /// `limit-connections`: requests in flight per backend of the Ingress.
    pub max_connections: Option<u32>,
    /// `limit-allowlist`: clients the rate limits do not apply to.
    pub limit_exempt: Vec<Cidr>,
    /// `service-upstream`: the Service's cluster IP instead of its endpoints.
    pub service_upstream: bool,
    /// `mirror-target`: a copy of every request goes there.
    pub mirror: Option<MirrorTarget>,
    /// `default-backend`: a Service (of the Ingress's namespace) serving the
    /// Ingress's paths while their own Service has no ready endpoints.
    pub default_backend: Option<String>,
    /// `custom-http-errors`: statuses (sorted, deduplicated) answered by
    /// the `default-backend` Service instead.
    pub custom_http_errors: Vec<u16>,
    /// `auth-type: basic` or `auth-url` (Secret and Service not yet resolved).
    pub auth: Option<AuthSettings>,
}

pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            ssl_redirect: false,
            force_ssl_redirect: false,
            hsts: None,
            tls_min_version: TlsVersion::default(),
            client_certificates: None,
            ssl_passthrough: false,
            use_regex: false,
            rewrite_target: None,
            app_root: None,
            prefix_rewrite: None,
            connect_timeout: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            websocket_idle_timeout: None,
            retry: Retry::default(),
            affinity: Affinity::None,
            canary: None,
            allow_ranges: vec![],
            deny_ranges: vec![],
            rate_limit: None,
            backend_protocol: BackendProtocol::Http,
            proxy_ssl: ProxySsl::default(),
            headers: HeaderEdits::default(),
            max_body_bytes: None,
            health_check: None,
            outlier: None,
            compression: None,
            cors: None,
            redirect: None,
            from_to_www: false,
            server_aliases: vec![],
            upstream_vhost: None,
            x_forwarded_prefix: None,
            retry_timeout: None,
            max_connections: None,
            limit_exempt: vec![],
            service_upstream: false,
            mirror: None,
            default_backend: None,
            custom_http_errors: vec![],
            auth: None,
        }
    }
}

impl IngressSettings {
    /// `owner` (`namespace/name`) scopes a concurrency limit to this Ingress.
    pub(crate) fn cluster(&self, owner: &str) -> ClusterSettings {
        ClusterSettings {
            connect_timeout: self.connect_timeout,
            hashed: !matches!(self.affinity, Affinity::None),
            protocol: self.backend_protocol,
            tls_name: self.proxy_ssl.name.clone(),
            // Filled in when the Secret is resolved.
            tls_ca: None,
            health_check: self.health_check.clone(),
            outlier: self.outlier.clone(),
            max_requests: self.max_connections.map(|max_requests| ConcurrencyLimit {
                bucket: owner.to_string(),
                max_requests,
            }),
            service_upstream: self.service_upstream,
        }
    }
}

/// Settings plus whether the Ingress's rules must not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub settings: IngressSettings,
    pub drop_rules: bool,
}

mod auth;
#[cfg(test)]
mod auth_tests;
pub(crate) mod table;
pub(crate) use auth::{AuthSecretType, AuthSettings, ExternalAuthSettings};
use table::*;

#[cfg(test)]
mod docs;

/// The diagnostic field naming an annotation.
pub(crate) fn field(key: &str) -> String {
    format!("metadata.annotations[{key:?}]")
}

/// Reads one Ingress's annotations, only through the rows of the table.
struct Reader<'a> {
    annotations: &'a BTreeMap<String, String>,
    obj: &'a ObjectRef,
    diags: &'a mut Diagnostics,
    drop_rules: bool,
    /// Every row asked for, so a test can hold `parse` to the table.
    #[cfg(test)]
    rows_read: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    fn new(
        annotations: &'a BTreeMap<String, String>,
        obj: &'a ObjectRef,
        diags: &'a mut Diagnostics,
    ) -> Self {
        Self {
            annotations,
            obj,
            diags,
            drop_rules: false,
            #[cfg(test)]
            rows_read: Vec::new(),
        }
    }

    /// The key a row is set under and its value: ours, then the aliases in order.
    fn get(&mut self, row: &'static Row) -> Option<(&'static str, &'a str)> {
        #[cfg(test)]
        self.rows_read.push(row.key);
        let annotations = self.annotations;
        row.keys()
            .find_map(|k| annotations.get(k).map(|v| (k, v.as_str())))
    }

    /// A row's parsed value; an invalid one is reported and handled as the row says.
    fn read<T>(&mut self, a: &Annotation<T>) -> Option<T> {
        let (key, value) = self.get(a.row)?;
        match a.parse.run(value.trim(), &self.obj.namespace) {
            Ok(v) => Some(v),
            Err(e) => {
                self.invalid(key, value, &e, a.row.on_invalid);
                None
            }
        }
    }

    /// Refuse a row's (valid) value for `why`, when it is set, as the row says.
    fn reject(&mut self, row: &'static Row, why: &str) {
        self.reject_as(row, why, row.on_invalid);
    }

    /// Refuse a row's value for `why`, when it is set, handled as `on_invalid`.
    fn reject_as(&mut self, row: &'static Row, why: &str, on_invalid: OnInvalid) {
        if let Some((key, value)) = self.get(row) {
            self.invalid(key, value, why, on_invalid);
        }
    }

    fn invalid(&mut self, key: &str, value: &str, why: &str, on_invalid: OnInvalid) {
        let (sev, then) = if on_invalid.drops_rules() {
            self.drop_rules = true;
            (Severity::Error, "the Ingress's rules are not served")
        } else {
            (Severity::Warning, "the Ingress is served with the default")
        };
        self.diags.push(
            sev,
            self.obj,
            field(key),
            format!("invalid value {value:?}: {why}; {then}"),
        );
    }
}

/// Parse an Ingress's annotations. Never fails: problems become diagnostics.
pub(crate) fn parse(
    annotations: Option<&BTreeMap<String, String>>,
    obj: &ObjectRef,
    diags: &mut Diagnostics,
) -> Parsed {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let mut r = Reader::new(annotations.unwrap_or(&EMPTY), obj, diags);
    report_unknown(&mut r);
    let settings = read_settings(&mut r);
    Parsed {
        settings,
        drop_rules: r.drop_rules,
    }
}

/// Every feature, in a fixed order (diagnostics come out in this order).
fn read_settings(r: &mut Reader<'_>) -> IngressSettings {
    let mut s = IngressSettings::default();
    read_tls(r, &mut s);
    read_rewrites(r, &mut s);
    read_timeouts(r, &mut s);
    s.retry = read_retry(r);
    s.affinity = parse_affinity(r);
    s.canary = read_canary(r);
    read_access_lists(r, &mut s);
    // Authentication: a bad secret, URL or header list fails closed.
    s.auth = auth::read_auth(r);
    // Rate limiting: a bad limit fails closed (serving unlimited is weaker).
    s.rate_limit = parse_rate_limit(r);
    read_limit_extras(r, &mut s);
    // Backend protocol and upstream TLS: all strict (a backend reached in
    // plain text, or unverified, when the tenant asked otherwise is weaker).
    s.backend_protocol = r.read(&BACKEND_PROTOCOL).unwrap_or_default();
    parse_proxy_ssl(r, &mut s);
    s.service_upstream = r.read(&SERVICE_UPSTREAM).unwrap_or(false);
    // Headers and body size: strict (a security header not added, a header
    // not stripped, or an unlimited body would be weaker than asked).
    s.headers = read_header_edits(r);
    s.max_body_bytes = r.read(&PROXY_BODY_SIZE).flatten();
    // Health checks and outlier detection: lenient (the backend is served,
    // with the default for the bad setting, or without checks).
    s.health_check = parse_health_check(r);
    s.outlier = parse_outlier(r);
    // Compression: lenient (served uncompressed, or with the default types).
    s.compression = parse_compression(r);
    // Upstream Host and X-Forwarded-Prefix: strict (a rewrite not applied).
    s.upstream_vhost = r.read(&UPSTREAM_VHOST);
    s.x_forwarded_prefix = r.read(&X_FORWARDED_PREFIX);
    // CORS: a bad origin, method, header list or credentials flag fails
    // closed (the defaults allow more than asked); the rest are lenient.
    s.cors = read_cors(r);
    read_redirects(r, &mut s);
    s.mirror = read_mirror(r);
    s.default_backend = r.read(&DEFAULT_BACKEND);
    // Lenient: without it the backend's own error answers reach the client.
    s.custom_http_errors = r.read(&CUSTOM_HTTP_ERRORS).unwrap_or_default();
    s
}

/// `mirror-target` fails closed (a copy sent elsewhere than asked, or
/// outside the tenant, is refused); `mirror-host` and `-request-body` are lenient.
fn read_mirror(r: &mut Reader<'_>) -> Option<MirrorTarget> {
    let target = r.read(&MIRROR_TARGET);
    let host = r.read(&MIRROR_HOST);
    let body = r.read(&MIRROR_REQUEST_BODY);
    if body == Some(false) {
        r.reject_as(
            MIRROR_REQUEST_BODY.row,
            "Envoy cannot mirror a request without its body: the mirror receives the body",
            OnInvalid::Lenient,
        );
    }
    let Some(mut target) = target else {
        if r.get(MIRROR_TARGET.row).is_none() {
            let no_effect = [
                (MIRROR_HOST.row, host.is_some()),
                (MIRROR_REQUEST_BODY.row, body == Some(true)),
            ];
            for (row, _) in no_effect.into_iter().filter(|(_, valid)| *valid) {
                r.reject_as(
                    row,
                    "has no effect without mirror-target",
                    OnInvalid::Lenient,
                );
            }
        }
        return None;
    };
    if let Some(host) = host {
        target.host = host;
    }
    Some(target)
}

/// `limit-connections` (strict: unlimited is weaker) and `limit-allowlist`
/// (lenient: without it no one is exempt, which limits more).
fn read_limit_extras(r: &mut Reader<'_>, s: &mut IngressSettings) {
    s.max_connections = r.read(&LIMIT_CONNECTIONS);
    for list in [&LIMIT_ALLOWLIST, &LIMIT_WHITELIST] {
        if let Some(ranges) = r.read(list) {
            if s.limit_exempt.is_empty() {
                s.limit_exempt = ranges;
            }
        }
    }
    if s.rate_limit.is_none() {
        for row in [LIMIT_ALLOWLIST.row, LIMIT_WHITELIST.row] {
            if r.get(row)
                .is_some_and(|(_, v)| parse_cidrs(v.trim()).is_ok())
            {
                r.reject_as(
                    row,
                    "has no effect without limit-rps or limit-rpm",
                    OnInvalid::Lenient,
                );
            }
        }
        s.limit_exempt.clear();
    }
}

const NOT_ENABLED_CORS: &str = "has no effect: CORS is not enabled (enable-cors is not \"true\")";

fn read_cors(r: &mut Reader<'_>) -> Option<Cors> {
    let optional = [
        CORS_ALLOW_ORIGIN.row,
        CORS_ALLOW_METHODS.row,
        CORS_ALLOW_HEADERS.row,
        CORS_EXPOSE_HEADERS.row,
        CORS_ALLOW_CREDENTIALS.row,
        CORS_MAX_AGE.row,
    ];
    if !r.read(&ENABLE_CORS).unwrap_or(false) {
        // As in ingress-nginx these do nothing without `enable-cors`.
        for row in optional {
            r.reject_as(row, NOT_ENABLED_CORS, OnInvalid::Lenient);
        }
        return None;
    }
    let split = |v: &str| v.split(',').map(|m| m.trim().to_string()).collect();
    Some(Cors {
        allow_origins: r
            .read(&CORS_ALLOW_ORIGIN)
            .unwrap_or_else(|| vec!["*".into()]),
        allow_methods: r
            .read(&CORS_ALLOW_METHODS)
            .unwrap_or_else(|| split(DEFAULT_CORS_METHODS)),
        allow_headers: r
            .read(&CORS_ALLOW_HEADERS)
            .unwrap_or_else(|| split(DEFAULT_CORS_HEADERS)),
        expose_headers: r.read(&CORS_EXPOSE_HEADERS).unwrap_or_default(),
        allow_credentials: r.read(&CORS_ALLOW_CREDENTIALS).unwrap_or(true),
        max_age: Some(r.read(&CORS_MAX_AGE).unwrap_or(DEFAULT_CORS_MAX_AGE)),
        origin_match: OriginMatch::OneLabelIgnoreCase,
    })
}

/// ingress-nginx's order: a temporal redirect wins over a permanent one.
fn read_redirects(r: &mut Reader<'_>, s: &mut IngressSettings) {
    let temporal = r.read(&TEMPORAL_REDIRECT);
    let temporal_code = r.read(&TEMPORAL_REDIRECT_CODE);
    let permanent = r.read(&PERMANENT_REDIRECT);
    let permanent_code = r.read(&PERMANENT_REDIRECT_CODE);
    s.redirect = match (temporal, permanent) {
        (Some(t), p) => {
            if p.is_some() {
                r.reject_as(
                    PERMANENT_REDIRECT.row,
                    "ignored: temporal-redirect is also set and wins (as in ingress-nginx)",
                    OnInvalid::Lenient,
                );
            }
            if permanent_code.is_some() {
                r.reject_as(
                    PERMANENT_REDIRECT_CODE.row,
                    "ignored: temporal-redirect is also set and wins (as in ingress-nginx)",
                    OnInvalid::Lenient,
                );
            }
            Some(Redirect {
                status: temporal_code.unwrap_or(302),
                ..t
            })
        }
        (None, Some(p)) => Some(Redirect {
            status: permanent_code.unwrap_or(301),
            ..p
        }),
        (None, None) => None,
    };
    for (row, code, url_row) in [
        (
            TEMPORAL_REDIRECT_CODE.row,
            temporal_code,
            TEMPORAL_REDIRECT.row,
        ),
        (
            PERMANENT_REDIRECT_CODE.row,
            permanent_code,
            PERMANENT_REDIRECT.row,
        ),
    ] {
        if code.is_some() && r.get(url_row).is_none() {
            r.reject_as(
                row,
                &format!("has no effect without {}", url_row.key),
                OnInvalid::Lenient,
            );
        }
    }
    s.from_to_www = r.read(&FROM_TO_WWW_REDIRECT).unwrap_or(false);
    s.server_aliases = r.read(&SERVER_ALIAS).unwrap_or_default();
}

/// A bad redirect flag fails closed: the tenant asked for HTTPS only.
fn read_tls(r: &mut Reader<'_>, s: &mut IngressSettings) {
    s.ssl_redirect = r.read(&SSL_REDIRECT).unwrap_or(false);
    s.force_ssl_redirect = r.read(&FORCE_SSL_REDIRECT).unwrap_or(false);
    if let Some(max_age) = r.read(&HSTS_MAX_AGE) {
        let include_subdomains = r.read(&HSTS_INCLUDE_SUBDOMAINS).unwrap_or(false);
        s.hsts = Some(Hsts {
            max_age,
            include_subdomains,
        });
    }
    s.tls_min_version = r.read(&TLS_MIN_VERSION).unwrap_or_default();
    s.client_certificates = read_client_certificates(r);
    s.ssl_passthrough = r.read(&SSL_PASSTHROUGH).unwrap_or(false);
}

/// `auth-tls-*`: a bad Secret reference or verify mode fails closed (serving
/// without client certificates is weaker); the others are lenient.
fn read_client_certificates(r: &mut Reader<'_>) -> Option<ClientCertificates> {
    let secret = r.read(&AUTH_TLS_SECRET);
    let verify = r.read(&AUTH_TLS_VERIFY_CLIENT);
    let depth = r.read(&AUTH_TLS_VERIFY_DEPTH);
    let pass_certificate = r.read(&AUTH_TLS_PASS_CERTIFICATE_TO_UPSTREAM);
    let error_page = r.read(&AUTH_TLS_ERROR_PAGE);
    // The valid ones (an invalid one was reported already).
    let rest = [
        (AUTH_TLS_VERIFY_CLIENT.row, verify.is_some()),
        (AUTH_TLS_VERIFY_DEPTH.row, depth.is_some()),
        (
            AUTH_TLS_PASS_CERTIFICATE_TO_UPSTREAM.row,
            pass_certificate.is_some(),
        ),
        (AUTH_TLS_ERROR_PAGE.row, error_page.is_some()),
    ];
    let rest: Vec<&'static Row> = rest
        .into_iter()
        .filter_map(|(row, valid)| valid.then_some(row))
        .collect();
    let secret = match secret {
        Some(secret) => secret,
        None => {
            // An invalid Secret reference was reported (and fails closed).
            if r.get(AUTH_TLS_SECRET.row).is_none() {
                for row in rest {
                    r.reject_as(
                        row,
                        "has no effect without auth-tls-secret (as in ingress-nginx)",
                        OnInvalid::Lenient,
                    );
                }
            }
            return None;
        }
    };
    // An invalid mode was reported and fails closed: `on` is a safe stand-in.
    let verify = match verify {
        Some(None) => {
            for row in rest
                .iter()
                .filter(|row| row.key != AUTH_TLS_VERIFY_CLIENT.row.key)
            {
                r.reject_as(
                    row,
                    "has no effect: auth-tls-verify-client is \"off\"",
                    OnInvalid::Lenient,
                );
            }
            return None;
        }
        Some(Some(v)) => v,
        None => ClientVerify::On,
    };
    Some(ClientCertificates {
        secret,
        verify,
        depth: depth.unwrap_or(DEFAULT_VERIFY_DEPTH),
        pass_certificate: pass_certificate.unwrap_or(false),
        error_page: error_page.map(|e| Redirect { status: 302, ..e }),
    })
}

/// `auth-tls-verify-client`; `off` is None.
pub(crate) fn parse_verify_client(v: &str) -> Result<Option<ClientVerify>, String> {
    match v {
        "on" => Ok(Some(ClientVerify::On)),
        "optional" => Ok(Some(ClientVerify::Optional)),
        "optional_no_ca" => Ok(Some(ClientVerify::OptionalNoCa)),
        "off" => Ok(None),
        _ => Err("expected one of on, optional, optional_no_ca, off".into()),
    }
}

fn read_rewrites(r: &mut Reader<'_>, s: &mut IngressSettings) {
    s.use_regex = r.read(&USE_REGEX).unwrap_or(false);
    s.rewrite_target = r.read(&REWRITE_TARGET);
    if s.rewrite_target.is_some() {
        // As in ingress-nginx: a rewrite target makes the paths regexes.
        s.use_regex = true;
    }
    s.app_root = r.read(&APP_ROOT);
    s.prefix_rewrite = r.read(&PREFIX_REWRITE);
    if s.prefix_rewrite.is_some() && s.use_regex {
        r.reject(
            PREFIX_REWRITE.row,
            "cannot be combined with use-regex or rewrite-target",
        );
    }
}

fn read_timeouts(r: &mut Reader<'_>, s: &mut IngressSettings) {
    s.connect_timeout = r.read(&CONNECT_TIMEOUT);
    let read = r.read(&READ_TIMEOUT);
    let send = r.read(&SEND_TIMEOUT);
    let idle = r.read(&IDLE_TIMEOUT);
    // Envoy has one stream idle timer for both directions: the longest wins.
    if let Some(t) = idle.or_else(|| read.max(send)) {
        s.idle_timeout = t;
    }
    s.websocket_idle_timeout = r.read(&WEBSOCKET_IDLE_TIMEOUT);
    s.retry_timeout = r.read(&RETRY_TIMEOUT).flatten();
}

fn read_retry(r: &mut Reader<'_>) -> Retry {
    let mut retry = Retry::default();
    if let Some(mut on) = r.read(&RETRY_ON) {
        on.retries = retry.retries;
        retry = on;
    }
    if let Some(tries) = r.read(&RETRY_TRIES) {
        // nginx counts tries including the first; 0 means "no limit" there,
        // which we bound to the default.
        if tries > 0 {
            retry.retries = u32::try_from(tries - 1).unwrap_or(0);
        }
    }
    if retry.retries == 0 {
        retry.on.clear();
        retry.status_codes.clear();
    }
    retry
}

/// `proxy-next-upstream-timeout`: seconds or a duration, at most a day; `0`: no limit.
pub(crate) fn parse_retry_timeout(v: &str) -> Result<Option<Duration>, String> {
    if v.trim_end_matches('s') == "0" {
        return Ok(None);
    }
    parse_duration(v, Duration::from_millis(1), Duration::from_secs(86_400)).map(Some)
}

/// `canary-by-header-pattern`: an RE2 regex found anywhere in the value
/// (nginx's `ngx.re.match`, unanchored), as Envoy's full-match regex.
pub(crate) fn parse_header_pattern(v: &str) -> Result<String, String> {
    check_regex(v)?;
    Ok(format!(".*(?:{v}).*"))
}

/// A Service: `name` or `namespace/name`, the namespace the Ingress's own.
pub(crate) fn parse_service_ref(v: &str, namespace: &str) -> Result<String, String> {
    let (ns, name) = v.split_once('/').unwrap_or((namespace, v));
    if ns != namespace {
        return Err(format!(
            "the Service must be in the Ingress's namespace {namespace:?}"
        ));
    }
    if !crds::names::is_dns1123_label(name) {
        return Err("not a valid Service name".into());
    }
    Ok(name.to_string())
}

/// `custom-http-errors`: `404,503`, each code 400–599 (ingress-nginx
/// refuses others), returned sorted and deduplicated.
pub(crate) fn parse_error_codes(v: &str) -> Result<Vec<u16>, String> {
    let mut codes = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(c) if (400..=599).contains(&c) => codes.push(c),
            _ => return Err(format!("{part:?} is not a status code from 400 to 599")),
        }
    }
    if codes.is_empty() {
        return Err("expected status codes, comma separated".into());
    }
    codes.sort_unstable();
    codes.dedup();
    Ok(codes)
}

/// `mirror-target`: `http(s)://<service>.<namespace>[.svc[.cluster.local]][:port]`,
/// optionally followed by `$request_uri` (Envoy mirrors the request's own
/// path and query, which is what that asks). A bare `<service>` is in the
/// Ingress's namespace. Any other host is refused: the gateway copies
/// requests only to the tenant's Services (checked when resolved).
pub(crate) fn parse_mirror_target(v: &str, namespace: &str) -> Result<MirrorTarget, String> {
    let lower = v.to_ascii_lowercase();
    let (https, rest) = if let Some(rest) = lower.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("must be an http:// or https:// URL of a Service".into());
    };
    let authority = rest
        .strip_suffix("/$request_uri")
        .or_else(|| rest.strip_suffix("$request_uri"))
        .unwrap_or(rest);
    if authority.contains(['/', '?', '#', '$', '@']) {
        return Err(
            "a path is not possible: Envoy mirrors the request's own path and query              (use no path, or $request_uri)"
                .into(),
        );
    }
    let (host, port) = host_and_port(authority)?;
    let labels: Vec<&str> = host.split('.').collect();
    let (service, ns) = match labels.as_slice() {
        [svc] => (*svc, namespace),
        [svc, ns] | [svc, ns, "svc"] | [svc, ns, "svc", "cluster", "local"] => (*svc, *ns),
        _ => {
            return Err(format!(
                "{host:?} is not a Service name (<service>.<namespace>[.svc[.cluster.local]]);                  requests are mirrored only to the tenant's Services"
            ))
        }
    };
    let dns_label = |l: &str| crds::names::is_dns1123_label(l);
    if !dns_label(service) || !dns_label(ns) {
        return Err(format!("{host:?} does not name a Service"));
    }
    let authority = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    Ok(MirrorTarget {
        https,
        namespace: ns.to_string(),
        service: service.to_string(),
        port: port.unwrap_or(if https { 443 } else { 80 }),
        host: authority,
    })
}

fn read_canary(r: &mut Reader<'_>) -> Option<Canary> {
    if r.read(&CANARY).unwrap_or(false) {
        return parse_canary(r);
    }
    // As in ingress-nginx these do nothing without `canary: "true"`; say so
    // rather than let a migrating user believe a split is in place.
    for row in [
        CANARY_WEIGHT.row,
        CANARY_WEIGHT_TOTAL.row,
        CANARY_BY_HEADER.row,
        CANARY_BY_HEADER_VALUE.row,
        CANARY_BY_COOKIE.row,
        CANARY_BY_HEADER_PATTERN.row,
    ] {
        r.reject_as(
            row,
            "has no effect: this Ingress is not a canary (its canary annotation is not \"true\")",
            OnInvalid::Lenient,
        );
    }
    None
}

/// A bad range fails closed.
fn read_access_lists(r: &mut Reader<'_>, s: &mut IngressSettings) {
    for list in [&ALLOWLIST_SOURCE_RANGE, &WHITELIST_SOURCE_RANGE] {
        if let Some(ranges) = r.read(list) {
            if s.allow_ranges.is_empty() {
                s.allow_ranges = ranges;
            }
        }
    }
    s.deny_ranges = r.read(&DENYLIST_SOURCE_RANGE).unwrap_or_default();
}

fn read_header_edits(r: &mut Reader<'_>) -> HeaderEdits {
    HeaderEdits {
        request_add: r.read(&REQUEST_HEADERS_ADD).unwrap_or_default(),
        request_remove: r.read(&REQUEST_HEADERS_REMOVE).unwrap_or_default(),
        response_add: r.read(&RESPONSE_HEADERS_ADD).unwrap_or_default(),
        response_remove: r.read(&RESPONSE_HEADERS_REMOVE).unwrap_or_default(),
        ..HeaderEdits::default()
    }
}

/// Snippets and fail-closed features get one diagnostic each; the other
/// unknown annotations of our prefixes one warning per Ingress.
fn report_unknown(r: &mut Reader<'_>) {
    let mut unknown = Vec::new();
    for key in r.annotations.keys() {
        match classify(key) {
            KeyKind::Read | KeyKind::NotOurs => {}
            KeyKind::Refused(Refusal::Snippet) => r.diags.push(
                Severity::Warning,
                r.obj,
                field(key),
                "refused: raw proxy configuration injection is never allowed (tenants share \
                 nothing with each other, but the gateway's config is not theirs to write); \
                 the snippet is ignored — use the typed annotations in docs/annotations.md",
            ),
            KeyKind::Refused(Refusal::FailClosed) => {
                r.drop_rules = true;
                r.diags.push(
                    Severity::Error,
                    r.obj,
                    field(key),
                    "not supported, and serving without it would weaken access control; \
                     the Ingress's rules are not served",
                );
            }
            KeyKind::Unsupported => unknown.push(key.as_str()),
        }
    }
    if !unknown.is_empty() {
        let mut msg = String::from("not supported, ignored: ");
        for (i, k) in unknown.iter().enumerate() {
            let _ = write!(msg, "{}{k}", if i > 0 { ", " } else { "" });
        }
        r.diags
            .push(Severity::Warning, r.obj, "metadata.annotations", msg);
    }
}

/// The `affinity` annotation's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AffinityKind {
    Cookie,
    SourceIp,
}

pub(crate) fn parse_affinity_kind(v: &str) -> Result<Option<AffinityKind>, String> {
    match v {
        "cookie" => Ok(Some(AffinityKind::Cookie)),
        "source-ip" => Ok(Some(AffinityKind::SourceIp)),
        "" | "none" => Ok(None),
        _ => Err("expected \"cookie\" or \"source-ip\"".into()),
    }
}

pub(crate) fn parse_hash_by(v: &str) -> Result<Affinity, String> {
    match v {
        "$remote_addr" | "$binary_remote_addr" => Ok(Affinity::SourceIp),
        other => Err(format!(
            "only $remote_addr (client address) is supported, not {other:?}"
        )),
    }
}

pub(crate) fn parse_same_site(v: &str) -> Result<String, String> {
    match v.to_ascii_lowercase().as_str() {
        "strict" => Ok("Strict".to_string()),
        "lax" => Ok("Lax".to_string()),
        "none" => Ok("None".to_string()),
        _ => Err("expected Strict, Lax or None".into()),
    }
}

fn parse_affinity(r: &mut Reader<'_>) -> Affinity {
    let hash_by = r.read(&UPSTREAM_HASH_BY);
    match r.read(&AFFINITY).flatten() {
        Some(AffinityKind::Cookie) => Affinity::Cookie(CookieAffinity {
            name: r
                .read(&SESSION_COOKIE_NAME)
                .unwrap_or_else(|| "INGRESSCOOKIE".into()),
            path: r.read(&SESSION_COOKIE_PATH),
            // Envoy sends Max-Age only; browsers prefer it over Expires anyway.
            max_age: {
                let max_age = r.read(&SESSION_COOKIE_MAX_AGE);
                let expires = r.read(&SESSION_COOKIE_EXPIRES);
                max_age.or(expires)
            },
            same_site: r.read(&SESSION_COOKIE_SAMESITE),
            secure: r.read(&SESSION_COOKIE_SECURE).unwrap_or(false),
            change_on_failure: r.read(&SESSION_COOKIE_CHANGE_ON_FAILURE).unwrap_or(false),
        }),
        Some(AffinityKind::SourceIp) => Affinity::SourceIp,
        None => hash_by.unwrap_or_default(),
    }
}

fn parse_canary(r: &mut Reader<'_>) -> Option<Canary> {
    let weight_total = r.read(&CANARY_WEIGHT_TOTAL).unwrap_or(100);
    let weight = r.read(&CANARY_WEIGHT).unwrap_or(0);
    if weight > weight_total {
        r.reject(
            CANARY_WEIGHT.row,
            &format!("greater than canary-weight-total ({weight_total})"),
        );
        return None;
    }
    let by_header = r.read(&CANARY_BY_HEADER);
    let by_header_value = r.read(&CANARY_BY_HEADER_VALUE);
    let by_cookie = r.read(&CANARY_BY_COOKIE);
    let mut by_header_pattern = r.read(&CANARY_BY_HEADER_PATTERN);
    if by_header_pattern.is_some() {
        // As ingress-nginx: an exact value wins; without a header, nothing to match.
        let why = match (&by_header, &by_header_value) {
            (None, _) => Some("has no effect without canary-by-header"),
            (Some(_), Some(_)) => {
                Some("ignored: canary-by-header-value is also set and wins (as in ingress-nginx)")
            }
            _ => None,
        };
        if let Some(why) = why {
            r.reject_as(CANARY_BY_HEADER_PATTERN.row, why, OnInvalid::Lenient);
            by_header_pattern = None;
        }
    }
    Some(Canary {
        by_header_pattern,
        weight: u32::try_from(weight).ok()?,
        weight_total: u32::try_from(weight_total).ok()?,
        by_header,
        by_header_value,
        by_cookie,
    })
}

fn parse_rate_limit(r: &mut Reader<'_>) -> Option<RateLimit> {
    let rps = r.read(&LIMIT_RPS);
    let rpm = r.read(&LIMIT_RPM);
    if rps.is_none() && rpm.is_none() {
        return None;
    }
    let burst_multiplier = r.read(&LIMIT_BURST_MULTIPLIER).unwrap_or(5);
    let status = r.read(&LIMIT_STATUS_CODE).unwrap_or(429);
    Some(RateLimit {
        rps,
        rpm,
        burst_multiplier,
        status,
    })
}

fn parse_compression(r: &mut Reader<'_>) -> Option<Compression> {
    let algorithm = r.read(&COMPRESSION);
    let types = r.read(&COMPRESSION_TYPES);
    let min_length = r.read(&COMPRESSION_MIN_LENGTH);
    let Some(algorithm) = algorithm.flatten() else {
        for row in [COMPRESSION_TYPES.row, COMPRESSION_MIN_LENGTH.row] {
            r.reject(row, "needs tenantgateway.io/compression: gzip or brotli");
        }
        return None;
    };
    Some(Compression {
        algorithm,
        types: types.unwrap_or_else(|| {
            DEFAULT_COMPRESSION_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect()
        }),
        min_length: min_length.unwrap_or(DEFAULT_COMPRESSION_MIN_LENGTH),
    })
}

/// `gzip`, `brotli` (or `br`); `off`/`none`: no compression.
pub(crate) fn parse_algorithm(v: &str) -> Result<Option<Algorithm>, String> {
    match v.to_ascii_lowercase().as_str() {
        "gzip" => Ok(Some(Algorithm::Gzip)),
        "brotli" | "br" => Ok(Some(Algorithm::Brotli)),
        "off" | "none" | "false" => Ok(None),
        _ => Err("expected \"gzip\", \"brotli\" or \"off\"".into()),
    }
}

/// MIME types `type/subtype` (RFC 6838 names, no parameters), comma or space
/// separated, 1 to 32.
pub(crate) fn parse_mime_types(v: &str) -> Result<Vec<String>, String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 127
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let mut out = Vec::new();
    for t in v.split([',', ' ', '\n']).filter(|t| !t.is_empty()) {
        let lower = t.to_ascii_lowercase();
        match lower.split_once('/') {
            Some((ty, sub)) if name_ok(ty) && name_ok(sub) => out.push(lower),
            _ => return Err(format!("{t:?} is not a MIME type such as text/html")),
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > 32 {
        return Err("expected 1 to 32 MIME types".into());
    }
    Ok(out)
}

pub(crate) const HC_DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub(crate) const HC_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
fn parse_health_check(r: &mut Reader<'_>) -> Option<HealthCheck> {
    let path = r.read(&HEALTH_CHECK_PATH);
    let interval = r.read(&HEALTH_CHECK_INTERVAL);
    let timeout = r.read(&HEALTH_CHECK_TIMEOUT);
    let healthy = r.read(&HEALTH_CHECK_HEALTHY_THRESHOLD);
    let unhealthy = r.read(&HEALTH_CHECK_UNHEALTHY_THRESHOLD);
    let Some(path) = path else {
        for row in [
            HEALTH_CHECK_INTERVAL.row,
            HEALTH_CHECK_TIMEOUT.row,
            HEALTH_CHECK_HEALTHY_THRESHOLD.row,
            HEALTH_CHECK_UNHEALTHY_THRESHOLD.row,
        ] {
            r.reject(
                row,
                "needs tenantgateway.io/health-check-path (a valid one)",
            );
        }
        return None;
    };
    Some(HealthCheck {
        path,
        interval: interval.unwrap_or(HC_DEFAULT_INTERVAL),
        timeout: timeout.unwrap_or(HC_DEFAULT_TIMEOUT),
        healthy_threshold: healthy.unwrap_or(2),
        unhealthy_threshold: unhealthy.unwrap_or(3),
    })
}

fn parse_outlier(r: &mut Reader<'_>) -> Option<Outlier> {
    let consecutive = r.read(&OUTLIER_CONSECUTIVE_5XX);
    let interval = r.read(&OUTLIER_INTERVAL);
    let ejection = r.read(&OUTLIER_BASE_EJECTION_TIME);
    let Some(consecutive_5xx) = consecutive else {
        for row in [OUTLIER_INTERVAL.row, OUTLIER_BASE_EJECTION_TIME.row] {
            r.reject(
                row,
                "needs tenantgateway.io/outlier-consecutive-5xx (a valid one)",
            );
        }
        return None;
    };
    Some(Outlier {
        consecutive_5xx,
        interval: interval.unwrap_or(Duration::from_secs(10)),
        base_ejection_time: ejection.unwrap_or(Duration::from_secs(30)),
    })
}

fn parse_proxy_ssl(r: &mut Reader<'_>, s: &mut IngressSettings) {
    let secret = r.read(&PROXY_SSL_SECRET);
    let verify = r.read(&PROXY_SSL_VERIFY);
    let name = r.read(&PROXY_SSL_NAME);
    if !s.backend_protocol.tls() {
        for (row, set) in [
            (PROXY_SSL_SECRET.row, secret.is_some()),
            (PROXY_SSL_VERIFY.row, verify == Some(true)),
            (PROXY_SSL_NAME.row, name.is_some()),
        ] {
            if set {
                r.reject(row, "needs backend-protocol HTTPS or GRPCS");
            }
        }
    }
    if verify == Some(true) && secret.is_none() {
        r.reject(
            PROXY_SSL_VERIFY.row,
            "verification needs a CA: set proxy-ssl-secret",
        );
    }
    s.proxy_ssl = ProxySsl {
        verify: secret.is_some() && verify != Some(false),
        secret,
        name,
    };
}

// ---------- value parsers (pure, table-tested) ----------

/// Headers that must not be edited (Envoy refuses `host` and pseudo-headers).
fn modifiable_header(v: &str) -> Result<String, String> {
    let name = parse_header_name(v).map_err(|e| format!("{v:?}: {e}"))?;
    if name == "host" {
        return Err("the Host header cannot be edited".into());
    }
    Ok(name)
}

const MAX_HEADER_EDITS: usize = 32;

/// `Name: value; Name2: value2` (or one per line). Values may not contain
/// `;`, CR, LF or NUL; `%` is escaped (Envoy reads values as format strings).
pub(crate) fn parse_header_list(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in v
        .split([';', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, value) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?} is not \"Name: value\""))?;
        let name = modifiable_header(name.trim())?;
        let value = value.trim();
        if value.len() > 1024
            || !value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return Err(format!(
                "the value of {name} must be at most 1024 printable ASCII characters"
            ));
        }
        out.push((name, value.replace('%', "%%")));
    }
    if out.is_empty() || out.len() > MAX_HEADER_EDITS {
        return Err(format!("expected 1 to {MAX_HEADER_EDITS} headers"));
    }
    Ok(out)
}

/// Header names, comma or space separated.
pub(crate) fn parse_header_names(v: &str) -> Result<Vec<String>, String> {
    let mut out = v
        .split([',', ' ', '\n'])
        .filter(|n| !n.is_empty())
        .map(modifiable_header)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > MAX_HEADER_EDITS {
        return Err(format!("expected 1 to {MAX_HEADER_EDITS} header names"));
    }
    Ok(out)
}

/// nginx sizes: bytes, or with `k`/`m`/`g` (either case); `0` = no limit.
pub(crate) fn parse_body_size(v: &str) -> Result<Option<u32>, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let err =
        || "expected a size such as \"512k\", \"8m\" or \"0\" (no limit), at most 4g".to_string();
    if num.is_empty() || num.len() > 10 {
        return Err(err());
    }
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return Err(err()),
    };
    if n == 0 {
        return Ok(None);
    }
    let bytes = n.checked_mul(mult).ok_or_else(err)?;
    u32::try_from(bytes).map(Some).map_err(|_| err())
}

pub(crate) fn parse_backend_protocol(v: &str) -> Result<BackendProtocol, String> {
    match v.to_ascii_uppercase().as_str() {
        "HTTP" => Ok(BackendProtocol::Http),
        "HTTPS" => Ok(BackendProtocol::Https),
        "GRPC" => Ok(BackendProtocol::Grpc),
        "GRPCS" => Ok(BackendProtocol::Grpcs),
        "H2C" => Ok(BackendProtocol::H2c),
        _ => Err("expected HTTP, HTTPS, GRPC, GRPCS or H2C".into()),
    }
}

/// nginx's `on`/`off`, or a boolean.
pub(crate) fn parse_on_off(v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => parse_bool(v).map_err(|_| "expected \"on\" or \"off\"".to_string()),
    }
}

/// `namespace/name` or `name`; the namespace must be the Ingress's own.
pub(crate) fn parse_secret_ref(v: &str, namespace: &str) -> Result<String, String> {
    let (ns, name) = v.split_once('/').unwrap_or((namespace, v));
    if ns != namespace {
        return Err(format!(
            "the Secret must be in the Ingress's namespace {namespace:?}"
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !ok {
        return Err("not a valid Secret name".into());
    }
    Ok(name.to_string())
}

/// A DNS name for SNI (lowercase labels, no wildcard).
pub(crate) fn parse_dns_name(v: &str) -> Result<String, String> {
    if !crds::names::is_dns1123_subdomain(v) {
        return Err("not a valid lowercase DNS name".into());
    }
    Ok(v.to_string())
}

pub(crate) fn parse_limit_status(v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|c| LIMIT_STATUS_CODES.contains(c))
        .ok_or_else(|| format!("expected one of {LIMIT_STATUS_CODES:?}"))
}

/// Go's strconv.ParseBool, which ingress-nginx uses.
pub(crate) fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("expected \"true\" or \"false\"".into()),
    }
}

pub(crate) fn parse_u64(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = v
        .parse()
        .map_err(|_| "expected a non-negative integer".to_string())?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(n)
}

/// Seconds as a bare integer (ingress-nginx), or with a unit: `500ms`, `5s`, `2m`, `1h`.
pub(crate) fn parse_duration(v: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let err = || {
        "expected seconds (\"30\") or a duration (\"500ms\", \"30s\", \"5m\", \"1h\")".to_string()
    };
    if num.is_empty() || num.len() > 9 {
        return Err(err());
    }
    let n: u64 = num.parse().map_err(|_| err())?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(err()),
    };
    if d < min || d > max {
        return Err(format!("must be between {min:?} and {max:?}"));
    }
    Ok(d)
}

pub(crate) fn parse_tls_version(v: &str) -> Result<TlsVersion, String> {
    match v.trim_start_matches("TLSv").trim_start_matches("TLS") {
        "1.2" => Ok(TlsVersion::V1_2),
        "1.3" => Ok(TlsVersion::V1_3),
        _ => Err("expected \"1.2\" or \"1.3\"".into()),
    }
}

/// An absolute URL path without query, fragment, whitespace or control characters.
/// `trim` drops a trailing slash (except for `/`).
pub(crate) fn parse_abs_path(v: &str, trim: bool) -> Result<String, String> {
    if !v.starts_with('/') {
        return Err("must be an absolute path starting with \"/\"".into());
    }
    if v.len() > 1024 {
        return Err("longer than 1024 characters".into());
    }
    if v.chars().any(|c| {
        c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '\\' | '"' | '%' | '$')
    }) {
        return Err(
            "must not contain whitespace, control characters or any of ? # \\ \" % $".into(),
        );
    }
    let t = if trim { v.trim_end_matches('/') } else { v };
    Ok(if t.is_empty() { "/".into() } else { t.into() })
}

/// A rewrite target: an absolute path where `$1`..`$9` name capture groups.
/// Returned in Envoy's substitution syntax (`\1`). Checking that the groups
/// exist in the path regex happens when the path is known.
pub(crate) fn parse_rewrite_target(v: &str) -> Result<String, String> {
    if !v.starts_with('/') {
        return Err("must be an absolute path starting with \"/\"".into());
    }
    if v.len() > 1024 {
        return Err("longer than 1024 characters".into());
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '\\' | '"') {
            return Err(
                "must not contain whitespace, control characters or any of ? # \\ \"".into(),
            );
        }
        if c == '$' {
            match chars.next() {
                Some(d @ '1'..='9') => {
                    out.push('\\');
                    out.push(d);
                }
                _ => return Err("\"$\" must be followed by a capture group number 1-9".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The highest `\n` capture group used in an Envoy substitution.
pub(crate) fn max_group(substitution: &str) -> usize {
    let b = substitution.as_bytes();
    b.windows(2)
        .filter(|w| w[0] == b'\\' && w[1].is_ascii_digit())
        .map(|w| usize::from(w[1] - b'0'))
        .max()
        .unwrap_or(0)
}

/// The longest regex we hand to Envoy; RE2 also refuses programs above a
/// size (Envoy's default limit is 100 instructions per the runtime guard,
/// as a warning), so patterns are kept short and repetitions bounded.
pub(crate) const MAX_REGEX_LEN: usize = 256;

/// Validate a path regex for Envoy's RE2: the `regex` crate has RE2's syntax
/// (no look-around, no backreferences), and counted repetitions are bounded.
/// Returns the number of capture groups.
pub(crate) fn check_regex(re: &str) -> Result<usize, String> {
    if re.len() > MAX_REGEX_LEN {
        return Err(format!("longer than {MAX_REGEX_LEN} characters"));
    }
    if re.chars().any(|c| c.is_control()) {
        return Err("contains control characters".into());
    }
    let compiled = regex::RegexBuilder::new(re)
        .size_limit(1 << 16)
        .build()
        .map_err(|e| format!("not a valid RE2 regular expression: {e}"))?;
    // `a{1000}` is short text but a huge program.
    let counted = regex::Regex::new(r"\{(\d+)(,(\d*))?\}").map_err(|e| e.to_string())?;
    for c in counted.captures_iter(re) {
        let n = |i| {
            c.get(i)
                .and_then(|m| m.as_str().parse::<u32>().ok())
                .unwrap_or(0)
        };
        if n(1) > 32 || n(3) > 32 {
            return Err("counted repetitions above 32 are not allowed".into());
        }
    }
    Ok(compiled.captures_len() - 1)
}

/// An HTTP header name (RFC 9110 token), lowercase, not a pseudo-header.
pub(crate) fn parse_header_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Err("not a valid HTTP header name".into());
    }
    Ok(v.to_ascii_lowercase())
}

/// A header value: visible ASCII and spaces, no CR/LF.
pub(crate) fn parse_header_value(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 1024 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("must be 1-1024 printable ASCII characters".into());
    }
    Ok(v.to_string())
}

/// A host name (lowercased), optionally with `:port`.
fn host_and_port(v: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))?;
            (h, Some(port))
        }
        None => (v, None),
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty() || !crds::names::is_dns1123_subdomain(&host) {
        return Err(format!("{host:?} is not a valid DNS host name"));
    }
    Ok((host, port))
}

/// `upstream-vhost`: the Host sent upstream (no nginx variables).
pub(crate) fn parse_upstream_vhost(v: &str) -> Result<String, String> {
    let (host, port) = host_and_port(v)?;
    Ok(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// `x-forwarded-prefix`: a header value, `%` escaped for Envoy's formatter.
pub(crate) fn parse_forwarded_prefix(v: &str) -> Result<String, String> {
    Ok(parse_header_value(v)?.replace('%', "%%"))
}

/// Bytes a redirect URL's path and query may hold: RFC 3986 characters
/// except the fragment, with `%` only as a percent-encoding.
fn valid_url_path(p: &str) -> bool {
    let b = p.as_bytes();
    b.iter().enumerate().all(|(i, &c)| match c {
        b'%' => b
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
        b'#' | b'$' => false,
        _ => c.is_ascii_alphanumeric() || b"-._~:/?[]@!&'()*+,;=".contains(&c),
    })
}

/// `permanent-redirect`/`temporal-redirect`: an absolute http(s) URL, sent as
/// it is (`Location` is exactly the URL, no query of the request), or
/// `scheme://host[:port]$request_uri`: the request's path and query kept.
/// The status is set by the caller.
pub(crate) fn parse_redirect_url(v: &str) -> Result<Redirect, String> {
    if v.len() > 2048 {
        return Err("longer than 2048 characters".into());
    }
    let lower = v.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", &v[8..])
    } else if lower.starts_with("http://") {
        ("http", &v[7..])
    } else {
        return Err("must be an absolute http:// or https:// URL".into());
    };
    let (rest, keep_uri) = match rest.strip_suffix("$request_uri") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if keep_uri && !path.is_empty() {
        return Err(
            "$request_uri must follow the host directly (https://example.com$request_uri)".into(),
        );
    }
    let (host, port) = host_and_port(authority)?;
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if !valid_url_path(&path) {
        return Err(
            "the path and query may hold URL characters only (no spaces, quotes, fragment, or \
             nginx variables other than a final $request_uri)"
                .into(),
        );
    }
    Ok(Redirect {
        scheme: Some(scheme.to_string()),
        host: Some(host),
        port,
        path: (!keep_uri).then_some(RedirectPath::Full(path)),
        status: 0,
        strip_query: !keep_uri,
    })
}

pub(crate) fn parse_redirect_code(v: &str, allowed: &[u16]) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|c| allowed.contains(c))
        .ok_or_else(|| format!("expected one of {allowed:?}"))
}

/// `server-alias`: DNS names, comma (or space) separated, sorted.
pub(crate) fn parse_server_aliases(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in v.split([',', ' ', '\n']).filter(|a| !a.is_empty()) {
        if a.contains('*') {
            return Err(format!("{a:?}: wildcard aliases are not supported"));
        }
        let name = a.to_ascii_lowercase();
        if !crds::names::is_dns1123_subdomain(&name) || name.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(format!("{a:?} is not a valid DNS host name"));
        }
        out.push(name);
    }
    sorted_set(out, 32, "expected 1 to 32 host names")
}

/// Sorted and deduplicated, 1 to `max` entries.
fn sorted_set(mut out: Vec<String>, max: usize, err: &str) -> Result<Vec<String>, String> {
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > max {
        return Err(err.into());
    }
    Ok(out)
}

/// `cors-allow-origin`: `*`, or comma-separated origins `scheme://host[:port]`
/// where the host may start with `*.` (one label). As ingress-nginx, a `*`
/// entry allows every origin; an origin without scheme is allowed over
/// http and https. Lowercased (matched case-insensitively).
pub(crate) fn parse_cors_origins(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for o in v.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if o == "*" {
            return Ok(vec!["*".into()]);
        }
        let lower = o.to_ascii_lowercase();
        let (schemes, rest): (&[&str], &str) = match lower.split_once("://") {
            Some(("http", rest)) => (&["http"], rest),
            Some(("https", rest)) => (&["https"], rest),
            Some(_) => return Err(format!("origin {o:?}: only http and https origins")),
            None => (&["http", "https"], lower.as_str()),
        };
        let host = rest.strip_prefix("*.").unwrap_or(rest);
        let (_, _) = host_and_port(host).map_err(|e| format!("origin {o:?}: {e}"))?;
        for scheme in schemes {
            out.push(format!("{scheme}://{rest}"));
        }
    }
    sorted_set(
        out,
        64,
        "expected \"*\" or 1 to 64 origins such as https://app.example.com",
    )
}

/// A CORS list: entries comma or space separated, each `ok`, 1 to `max`,
/// in the order written (they are sent in that order).
fn cors_list(
    v: &str,
    max: usize,
    ok: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, String> {
    let out: Vec<String> = v
        .split([',', ' '])
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    if out.is_empty() || out.len() > max || !out.iter().all(|e| ok(e)) {
        return Err(format!("expected 1 to {max} {what}"));
    }
    Ok(out)
}

/// `cors-allow-methods`: method names (letters), comma or space separated.
pub(crate) fn parse_cors_methods(v: &str) -> Result<Vec<String>, String> {
    let method = |m: &str| m.len() <= 32 && m.bytes().all(|b| b.is_ascii_alphabetic());
    cors_list(v, 32, method, "method names such as \"GET, POST\"")
}

/// `cors-allow-headers`/`cors-expose-headers`: header names (letters,
/// digits, `-`, `_`), comma or space separated; `*` where `wildcard`.
pub(crate) fn parse_cors_headers(v: &str, wildcard: bool) -> Result<Vec<String>, String> {
    let header = |h: &str| {
        (wildcard && h == "*")
            || (h.len() <= 128
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    };
    cors_list(
        v,
        64,
        header,
        "header names such as \"X-Requested-With, Content-Type\"",
    )
}

/// A cookie name (RFC 6265 token).
pub(crate) fn parse_cookie_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Err("not a valid cookie name".into());
    }
    Ok(v.to_string())
}

/// The Envoy retry_on conditions a tenant may name directly.
const ENVOY_RETRY_ON: &[&str] = &[
    "5xx",
    "connect-failure",
    "gateway-error",
    "refused-stream",
    "reset",
    "reset-before-request",
    "retriable-4xx",
];

/// `proxy-next-upstream` (nginx words) or Envoy retry_on names, space or comma separated.
pub(crate) fn parse_retry_on(v: &str) -> Result<Retry, String> {
    let mut on = Vec::new();
    let mut codes = Vec::new();
    for w in v.split([' ', ',']).filter(|w| !w.is_empty()) {
        match w {
            "off" => {
                return Ok(Retry {
                    on: vec![],
                    status_codes: vec![],
                    retries: 0,
                })
            }
            "error" => on.extend(["connect-failure", "refused-stream", "reset"]),
            "timeout" => on.extend(["reset"]),
            "invalid_header" => on.push("reset"),
            "non_idempotent" => {}
            _ if ENVOY_RETRY_ON.contains(&w) => {
                on.extend(ENVOY_RETRY_ON.iter().copied().filter(|c| *c == w));
            }
            _ => {
                let code = w
                    .strip_prefix("http_")
                    .and_then(|c| c.parse::<u32>().ok())
                    .filter(|c| [403, 404, 429, 500, 502, 503, 504].contains(c))
                    .ok_or_else(|| format!("unknown condition {w:?}"))?;
                on.push("retriable-status-codes");
                codes.push(code);
            }
        }
    }
    on.sort_unstable();
    on.dedup();
    codes.sort_unstable();
    codes.dedup();
    Ok(Retry {
        on,
        status_codes: codes,
        retries: Retry::default().retries,
    })
}

/// Comma-separated CIDRs (a bare address is a /32 or /128). At least one.
pub(crate) fn parse_cidrs(v: &str) -> Result<Vec<Cidr>, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.push(part.parse::<Cidr>()?);
    }
    if out.is_empty() {
        return Err("no CIDR ranges".into());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod custom_errors_tests;
#[cfg(test)]
mod nginx_rest_tests;
