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
    Affinity, Algorithm, BackendProtocol, Cidr, ClusterSettings, Compression, CookieAffinity,
    HeaderEdits, HealthCheck, Hsts, Outlier, RateLimit, Retry, TlsVersion,
};

/// ingress-nginx canary semantics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Canary {
    pub weight: u32,
    pub weight_total: u32,
    pub by_header: Option<String>,
    pub by_header_value: Option<String>,
    pub by_cookie: Option<String>,
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

/// Everything the annotations of one Ingress ask for, typed and validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IngressSettings {
    pub ssl_redirect: bool,
    pub force_ssl_redirect: bool,
    pub hsts: Option<Hsts>,
    pub tls_min_version: TlsVersion,
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
}

pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            ssl_redirect: false,
            force_ssl_redirect: false,
            hsts: None,
            tls_min_version: TlsVersion::default(),
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
        }
    }
}

impl IngressSettings {
    pub(crate) fn cluster(&self) -> ClusterSettings {
        ClusterSettings {
            connect_timeout: self.connect_timeout,
            hashed: !matches!(self.affinity, Affinity::None),
            protocol: self.backend_protocol,
            tls_name: self.proxy_ssl.name.clone(),
            // Filled in when the Secret is resolved.
            tls_ca: None,
            health_check: self.health_check.clone(),
            outlier: self.outlier.clone(),
        }
    }
}

/// Settings plus whether the Ingress's rules must not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub settings: IngressSettings,
    pub drop_rules: bool,
}

/// Raw config injection: refused, whatever the content.
const SNIPPETS: &[&str] = &[
    "configuration-snippet",
    "server-snippet",
    "auth-snippet",
    "stream-snippet",
    "modsecurity-snippet",
    "location-snippet",
];

/// ingress-nginx features we do not implement whose absence would weaken
/// security if the Ingress were served anyway: its rules are dropped.
const FAIL_CLOSED: &[&str] = &[
    "auth-type",
    "auth-url",
    "auth-secret",
    "auth-tls-secret",
    "auth-tls-verify-client",
    "satisfy",
];

/// (our key, ingress-nginx key, Contour key) suffixes for each feature we read.
struct Spec {
    ours: &'static str,
    nginx: Option<&'static str>,
    contour: Option<&'static str>,
}

const fn spec(ours: &'static str, nginx: Option<&'static str>) -> Spec {
    Spec {
        ours,
        nginx,
        contour: None,
    }
}

const SSL_REDIRECT: Spec = spec("ssl-redirect", Some("ssl-redirect"));
const FORCE_SSL_REDIRECT: Spec = spec("force-ssl-redirect", Some("force-ssl-redirect"));
const HSTS_MAX_AGE: Spec = spec("hsts-max-age", None);
const HSTS_SUBDOMAINS: Spec = spec("hsts-include-subdomains", None);
const TLS_MIN_VERSION: Spec = Spec {
    ours: "tls-min-version",
    nginx: None,
    contour: Some("tls-minimum-protocol-version"),
};
const USE_REGEX: Spec = spec("use-regex", Some("use-regex"));
const REWRITE_TARGET: Spec = spec("rewrite-target", Some("rewrite-target"));
const APP_ROOT: Spec = spec("app-root", Some("app-root"));
const PREFIX_REWRITE: Spec = spec("prefix-rewrite", None);
const CONNECT_TIMEOUT: Spec = spec("connect-timeout", Some("proxy-connect-timeout"));
const READ_TIMEOUT: Spec = spec("read-timeout", Some("proxy-read-timeout"));
const SEND_TIMEOUT: Spec = spec("send-timeout", Some("proxy-send-timeout"));
const IDLE_TIMEOUT: Spec = spec("idle-timeout", None);
const WS_IDLE_TIMEOUT: Spec = spec("websocket-idle-timeout", None);
const RETRY_ON: Spec = spec("retry-on", Some("proxy-next-upstream"));
const RETRY_TRIES: Spec = spec("retry-tries", Some("proxy-next-upstream-tries"));
const AFFINITY: Spec = spec("affinity", Some("affinity"));
const UPSTREAM_HASH_BY: Spec = spec("upstream-hash-by", Some("upstream-hash-by"));
const COOKIE_NAME: Spec = spec("session-cookie-name", Some("session-cookie-name"));
const COOKIE_PATH: Spec = spec("session-cookie-path", Some("session-cookie-path"));
const COOKIE_MAX_AGE: Spec = spec("session-cookie-max-age", Some("session-cookie-max-age"));
const COOKIE_SAMESITE: Spec = spec("session-cookie-samesite", Some("session-cookie-samesite"));
const CANARY: Spec = spec("canary", Some("canary"));
const CANARY_WEIGHT: Spec = spec("canary-weight", Some("canary-weight"));
const CANARY_WEIGHT_TOTAL: Spec = spec("canary-weight-total", Some("canary-weight-total"));
const CANARY_BY_HEADER: Spec = spec("canary-by-header", Some("canary-by-header"));
const CANARY_BY_HEADER_VALUE: Spec = spec("canary-by-header-value", Some("canary-by-header-value"));
const CANARY_BY_COOKIE: Spec = spec("canary-by-cookie", Some("canary-by-cookie"));
const ALLOW_RANGE: Spec = spec("allowlist-source-range", Some("allowlist-source-range"));
const ALLOW_RANGE_OLD: Spec = spec("whitelist-source-range", Some("whitelist-source-range"));
const DENY_RANGE: Spec = spec("denylist-source-range", Some("denylist-source-range"));
const LIMIT_RPS: Spec = spec("limit-rps", Some("limit-rps"));
const LIMIT_RPM: Spec = spec("limit-rpm", Some("limit-rpm"));
const LIMIT_BURST: Spec = spec("limit-burst-multiplier", Some("limit-burst-multiplier"));
const LIMIT_STATUS: Spec = spec("limit-status-code", None);
const BACKEND_PROTOCOL: Spec = spec("backend-protocol", Some("backend-protocol"));
const PROXY_SSL_SECRET: Spec = spec("proxy-ssl-secret", Some("proxy-ssl-secret"));
const PROXY_SSL_VERIFY: Spec = spec("proxy-ssl-verify", Some("proxy-ssl-verify"));
const PROXY_SSL_NAME: Spec = spec("proxy-ssl-name", Some("proxy-ssl-name"));
const REQUEST_HEADERS_ADD: Spec = spec("request-headers-add", None);
const REQUEST_HEADERS_REMOVE: Spec = spec("request-headers-remove", None);
const RESPONSE_HEADERS_ADD: Spec = spec("response-headers-add", None);
const RESPONSE_HEADERS_REMOVE: Spec = spec("response-headers-remove", None);
const PROXY_BODY_SIZE: Spec = spec("proxy-body-size", Some("proxy-body-size"));
const COMPRESSION: Spec = spec("compression", None);
const COMPRESSION_TYPES: Spec = spec("compression-types", None);
const COMPRESSION_MIN_LENGTH: Spec = spec("compression-min-length", None);
const HC_PATH: Spec = spec("health-check-path", None);
const HC_INTERVAL: Spec = spec("health-check-interval", None);
const HC_TIMEOUT: Spec = spec("health-check-timeout", None);
const HC_HEALTHY: Spec = spec("health-check-healthy-threshold", None);
const HC_UNHEALTHY: Spec = spec("health-check-unhealthy-threshold", None);
const OUTLIER_5XX: Spec = spec("outlier-consecutive-5xx", None);
const OUTLIER_INTERVAL: Spec = spec("outlier-interval", None);
const OUTLIER_EJECTION: Spec = spec("outlier-base-ejection-time", None);

const ALL: &[&Spec] = &[
    &SSL_REDIRECT,
    &FORCE_SSL_REDIRECT,
    &HSTS_MAX_AGE,
    &HSTS_SUBDOMAINS,
    &TLS_MIN_VERSION,
    &USE_REGEX,
    &REWRITE_TARGET,
    &APP_ROOT,
    &PREFIX_REWRITE,
    &CONNECT_TIMEOUT,
    &READ_TIMEOUT,
    &SEND_TIMEOUT,
    &IDLE_TIMEOUT,
    &WS_IDLE_TIMEOUT,
    &RETRY_ON,
    &RETRY_TRIES,
    &AFFINITY,
    &UPSTREAM_HASH_BY,
    &COOKIE_NAME,
    &COOKIE_PATH,
    &COOKIE_MAX_AGE,
    &COOKIE_SAMESITE,
    &CANARY,
    &CANARY_WEIGHT,
    &CANARY_WEIGHT_TOTAL,
    &CANARY_BY_HEADER,
    &CANARY_BY_HEADER_VALUE,
    &CANARY_BY_COOKIE,
    &ALLOW_RANGE,
    &ALLOW_RANGE_OLD,
    &DENY_RANGE,
    &LIMIT_RPS,
    &LIMIT_RPM,
    &LIMIT_BURST,
    &LIMIT_STATUS,
    &BACKEND_PROTOCOL,
    &PROXY_SSL_SECRET,
    &PROXY_SSL_VERIFY,
    &PROXY_SSL_NAME,
    &REQUEST_HEADERS_ADD,
    &REQUEST_HEADERS_REMOVE,
    &RESPONSE_HEADERS_ADD,
    &RESPONSE_HEADERS_REMOVE,
    &PROXY_BODY_SIZE,
    &COMPRESSION,
    &COMPRESSION_TYPES,
    &COMPRESSION_MIN_LENGTH,
    &HC_PATH,
    &HC_INTERVAL,
    &HC_TIMEOUT,
    &HC_HEALTHY,
    &HC_UNHEALTHY,
    &OUTLIER_5XX,
    &OUTLIER_INTERVAL,
    &OUTLIER_EJECTION,
];

/// Our annotations that are not features of one Ingress but are still ours
/// (so not reported as unknown).
const OURS_OTHER: &[&str] = &[];

/// The diagnostic field naming an annotation.
pub(crate) fn field(key: &str) -> String {
    format!("metadata.annotations[{key:?}]")
}

struct Reader<'a> {
    annotations: &'a BTreeMap<String, String>,
    obj: &'a ObjectRef,
    diags: &'a mut Diagnostics,
    drop_rules: bool,
}

/// How an invalid value is handled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnError {
    /// Serve the Ingress with the default (Warning).
    Default,
    /// Do not serve the Ingress's rules (Error).
    Drop,
}

impl<'a> Reader<'a> {
    /// The value of a feature: ours, then Contour's, then ingress-nginx's.
    fn get(&self, s: &Spec) -> Option<(String, &'a str)> {
        let annotations = self.annotations;
        let candidates = [
            Some(format!("{OURS}{}", s.ours)),
            s.contour.map(|c| format!("{CONTOUR}{c}")),
            s.nginx.map(|n| format!("{NGINX}{n}")),
        ];
        candidates
            .into_iter()
            .flatten()
            .find_map(|k| annotations.get(&k).map(|v| (k, v.as_str())))
    }

    /// Parse a feature's value; on error report it and apply `on_error`.
    fn parse<T>(
        &mut self,
        s: &Spec,
        on_error: OnError,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (key, value) = self.get(s)?;
        match f(value.trim()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.invalid(&key, value, &e, on_error);
                None
            }
        }
    }

    fn invalid(&mut self, key: &str, value: &str, why: &str, on_error: OnError) {
        let (sev, then) = match on_error {
            OnError::Default => (Severity::Warning, "the Ingress is served with the default"),
            OnError::Drop => {
                self.drop_rules = true;
                (Severity::Error, "the Ingress's rules are not served")
            }
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
    let mut r = Reader {
        annotations: annotations.unwrap_or(&EMPTY),
        obj,
        diags,
        drop_rules: false,
    };
    report_unknown(&mut r);
    let mut s = IngressSettings::default();
    use OnError::{Default as Lenient, Drop as Strict};

    // TLS. A bad redirect flag fails closed: the tenant asked for HTTPS only.
    s.ssl_redirect = r.parse(&SSL_REDIRECT, Strict, parse_bool).unwrap_or(false);
    s.force_ssl_redirect = r
        .parse(&FORCE_SSL_REDIRECT, Strict, parse_bool)
        .unwrap_or(false);
    if let Some(max_age) = r.parse(&HSTS_MAX_AGE, Lenient, |v| {
        parse_u64(v, 0, 2 * 365 * 24 * 3600)
    }) {
        let include_subdomains = r
            .parse(&HSTS_SUBDOMAINS, Lenient, parse_bool)
            .unwrap_or(false);
        s.hsts = Some(Hsts {
            max_age,
            include_subdomains,
        });
    }
    s.tls_min_version = r
        .parse(&TLS_MIN_VERSION, Strict, parse_tls_version)
        .unwrap_or_default();

    // Rewrites.
    s.use_regex = r.parse(&USE_REGEX, Strict, parse_bool).unwrap_or(false);
    s.rewrite_target = r.parse(&REWRITE_TARGET, Strict, parse_rewrite_target);
    if s.rewrite_target.is_some() {
        // As in ingress-nginx: a rewrite target makes the paths regexes.
        s.use_regex = true;
    }
    s.app_root = r.parse(&APP_ROOT, Strict, |v| parse_abs_path(v, false));
    s.prefix_rewrite = r.parse(&PREFIX_REWRITE, Strict, |v| parse_abs_path(v, true));
    if s.prefix_rewrite.is_some() && s.use_regex {
        if let Some((key, value)) = r.get(&PREFIX_REWRITE) {
            r.invalid(
                &key,
                value,
                "cannot be combined with use-regex or rewrite-target",
                Strict,
            );
        }
    }

    // Timeouts and retries.
    s.connect_timeout = r.parse(&CONNECT_TIMEOUT, Lenient, |v| {
        parse_duration(v, Duration::from_millis(1), Duration::from_secs(3600))
    });
    let long = |v: &str| parse_duration(v, Duration::from_millis(1), Duration::from_secs(86_400));
    let read = r.parse(&READ_TIMEOUT, Lenient, long);
    let send = r.parse(&SEND_TIMEOUT, Lenient, long);
    let idle = r.parse(&IDLE_TIMEOUT, Lenient, long);
    // Envoy has one stream idle timer for both directions: the longest wins.
    if let Some(t) = idle.or_else(|| read.max(send)) {
        s.idle_timeout = t;
    }
    s.websocket_idle_timeout = r.parse(&WS_IDLE_TIMEOUT, Lenient, long);
    if let Some(mut retry) = r.parse(&RETRY_ON, Lenient, parse_retry_on) {
        retry.retries = s.retry.retries;
        s.retry = retry;
    }
    if let Some(tries) = r.parse(&RETRY_TRIES, Lenient, |v| parse_u64(v, 0, 10)) {
        // nginx counts tries including the first; 0 means "no limit" there,
        // which we bound to the default.
        if tries > 0 {
            s.retry.retries = u32::try_from(tries - 1).unwrap_or(0);
        }
    }
    if s.retry.retries == 0 {
        s.retry.on.clear();
        s.retry.status_codes.clear();
    }

    // Session affinity.
    s.affinity = parse_affinity(&mut r);

    // Canary.
    if r.parse(&CANARY, Strict, parse_bool).unwrap_or(false) {
        s.canary = parse_canary(&mut r);
    } else {
        // As in ingress-nginx these do nothing without `canary: "true"`; say so
        // rather than let a migrating user believe a split is in place.
        for spec in [
            &CANARY_WEIGHT,
            &CANARY_WEIGHT_TOTAL,
            &CANARY_BY_HEADER,
            &CANARY_BY_HEADER_VALUE,
            &CANARY_BY_COOKIE,
        ] {
            if let Some((key, value)) = r.get(spec) {
                r.invalid(
                    &key,
                    value,
                    "has no effect: this Ingress is not a canary (its canary annotation is not \"true\")",
                    OnError::Default,
                );
            }
        }
    }

    // Access control: a bad range fails closed.
    for spec in [&ALLOW_RANGE, &ALLOW_RANGE_OLD] {
        if let Some(ranges) = r.parse(spec, Strict, parse_cidrs) {
            if s.allow_ranges.is_empty() {
                s.allow_ranges = ranges;
            }
        }
    }
    s.deny_ranges = r
        .parse(&DENY_RANGE, Strict, parse_cidrs)
        .unwrap_or_default();

    // Rate limiting: a bad limit fails closed (serving unlimited is weaker).
    s.rate_limit = parse_rate_limit(&mut r);

    // Backend protocol and upstream TLS: all strict (a backend reached in
    // plain text, or unverified, when the tenant asked otherwise is weaker).
    s.backend_protocol = r
        .parse(&BACKEND_PROTOCOL, Strict, parse_backend_protocol)
        .unwrap_or_default();
    parse_proxy_ssl(&mut r, &mut s);

    // Headers and body size: strict (a security header not added, a header
    // not stripped, or an unlimited body would be weaker than asked).
    s.headers = HeaderEdits {
        request_add: r
            .parse(&REQUEST_HEADERS_ADD, Strict, parse_header_list)
            .unwrap_or_default(),
        request_remove: r
            .parse(&REQUEST_HEADERS_REMOVE, Strict, parse_header_names)
            .unwrap_or_default(),
        response_add: r
            .parse(&RESPONSE_HEADERS_ADD, Strict, parse_header_list)
            .unwrap_or_default(),
        response_remove: r
            .parse(&RESPONSE_HEADERS_REMOVE, Strict, parse_header_names)
            .unwrap_or_default(),
    };
    s.max_body_bytes = r.parse(&PROXY_BODY_SIZE, Strict, parse_body_size).flatten();

    // Health checks and outlier detection: lenient (the backend is served,
    // with the default for the bad setting, or without checks).
    s.health_check = parse_health_check(&mut r);
    s.outlier = parse_outlier(&mut r);

    // Compression: lenient (served uncompressed, or with the default types).
    s.compression = parse_compression(&mut r);

    Parsed {
        settings: s,
        drop_rules: r.drop_rules,
    }
}

fn known_suffix(prefix: &str, suffix: &str) -> bool {
    ALL.iter().any(|s| match prefix {
        OURS => s.ours == suffix,
        NGINX => s.nginx == Some(suffix),
        _ => s.contour == Some(suffix),
    }) || (prefix == OURS && OURS_OTHER.contains(&suffix))
}

/// Snippets and fail-closed features get one diagnostic each; the other
/// unknown annotations of our prefixes one warning per Ingress.
fn report_unknown(r: &mut Reader<'_>) {
    let mut unknown = Vec::new();
    for key in r.annotations.keys() {
        let Some((prefix, suffix)) = [OURS, NGINX, CONTOUR]
            .into_iter()
            .find_map(|p| key.strip_prefix(p).map(|s| (p, s)))
        else {
            continue;
        };
        if known_suffix(prefix, suffix) {
            continue;
        }
        if prefix == NGINX && SNIPPETS.contains(&suffix) {
            r.diags.push(
                Severity::Warning,
                r.obj,
                field(key),
                "refused: raw proxy configuration injection is never allowed (tenants share \
                 nothing with each other, but the gateway's config is not theirs to write); \
                 the snippet is ignored — use the typed annotations in docs/annotations.md",
            );
        } else if prefix == NGINX && FAIL_CLOSED.contains(&suffix) {
            r.drop_rules = true;
            r.diags.push(
                Severity::Error,
                r.obj,
                field(key),
                "not supported, and serving without it would weaken access control; \
                 the Ingress's rules are not served",
            );
        } else if prefix != CONTOUR {
            unknown.push(key.as_str());
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

fn parse_affinity(r: &mut Reader<'_>) -> Affinity {
    use OnError::Default as Lenient;
    let hash_by = r.parse(&UPSTREAM_HASH_BY, Lenient, |v| match v {
        "$remote_addr" | "$binary_remote_addr" => Ok(Affinity::SourceIp),
        other => Err(format!(
            "only $remote_addr (client address) is supported, not {other:?}"
        )),
    });
    let kind = r.parse(&AFFINITY, Lenient, |v| match v {
        "cookie" => Ok(Some(true)),
        "source-ip" => Ok(Some(false)),
        "" | "none" => Ok(None),
        _ => Err("expected \"cookie\" or \"source-ip\"".into()),
    });
    match kind.flatten() {
        Some(true) => {
            let name = r
                .parse(&COOKIE_NAME, Lenient, parse_cookie_name)
                .unwrap_or_else(|| "INGRESSCOOKIE".into());
            let path = r.parse(&COOKIE_PATH, Lenient, |v| parse_abs_path(v, false));
            let max_age = r.parse(&COOKIE_MAX_AGE, Lenient, |v| {
                parse_u64(v, 1, 10 * 365 * 24 * 3600).map(Duration::from_secs)
            });
            let same_site = r.parse(&COOKIE_SAMESITE, Lenient, |v| {
                match v.to_ascii_lowercase().as_str() {
                    "strict" => Ok("Strict".to_string()),
                    "lax" => Ok("Lax".to_string()),
                    "none" => Ok("None".to_string()),
                    _ => Err("expected Strict, Lax or None".into()),
                }
            });
            Affinity::Cookie(CookieAffinity {
                name,
                path,
                max_age,
                same_site,
            })
        }
        Some(false) => Affinity::SourceIp,
        None => hash_by.unwrap_or_default(),
    }
}

fn parse_canary(r: &mut Reader<'_>) -> Option<Canary> {
    use OnError::Drop as Strict;
    let weight_total = r
        .parse(&CANARY_WEIGHT_TOTAL, Strict, |v| parse_u64(v, 1, 1_000_000))
        .unwrap_or(100);
    let weight = r
        .parse(&CANARY_WEIGHT, Strict, |v| parse_u64(v, 0, 1_000_000))
        .unwrap_or(0);
    if weight > weight_total {
        if let Some((key, value)) = r.get(&CANARY_WEIGHT) {
            r.invalid(
                &key,
                value,
                &format!("greater than canary-weight-total ({weight_total})"),
                Strict,
            );
        }
        return None;
    }
    let by_header = r.parse(&CANARY_BY_HEADER, Strict, parse_header_name);
    let by_header_value = r.parse(&CANARY_BY_HEADER_VALUE, Strict, parse_header_value);
    let by_cookie = r.parse(&CANARY_BY_COOKIE, Strict, parse_cookie_name);
    Some(Canary {
        weight: u32::try_from(weight).ok()?,
        weight_total: u32::try_from(weight_total).ok()?,
        by_header,
        by_header_value,
        by_cookie,
    })
}

fn parse_rate_limit(r: &mut Reader<'_>) -> Option<RateLimit> {
    use OnError::{Default as Lenient, Drop as Strict};
    let rate = |v: &str| parse_u64(v, 1, 1_000_000).map(|n| n as u32);
    let rps = r.parse(&LIMIT_RPS, Strict, rate);
    let rpm = r.parse(&LIMIT_RPM, Strict, rate);
    if rps.is_none() && rpm.is_none() {
        return None;
    }
    let burst_multiplier = r
        .parse(&LIMIT_BURST, Strict, |v| {
            parse_u64(v, 1, 100).map(|n| n as u32)
        })
        .unwrap_or(5);
    let status = r
        .parse(&LIMIT_STATUS, Lenient, parse_limit_status)
        .unwrap_or(429);
    Some(RateLimit {
        rps,
        rpm,
        burst_multiplier,
        status,
    })
}

fn parse_compression(r: &mut Reader<'_>) -> Option<Compression> {
    use OnError::Default as Lenient;
    let algorithm = r.parse(&COMPRESSION, Lenient, parse_algorithm);
    let types = r.parse(&COMPRESSION_TYPES, Lenient, parse_mime_types);
    let min_length = r.parse(&COMPRESSION_MIN_LENGTH, Lenient, |v| {
        parse_u64(v, 0, 1 << 30).map(|n| n as u32)
    });
    let Some(algorithm) = algorithm.flatten() else {
        for spec in [&COMPRESSION_TYPES, &COMPRESSION_MIN_LENGTH] {
            if let Some((key, value)) = r.get(spec) {
                r.invalid(
                    &key,
                    value,
                    "needs tenantgateway.io/compression: gzip or brotli",
                    Lenient,
                );
            }
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
    use OnError::Default as Lenient;
    let interval_range =
        |v: &str| parse_duration(v, Duration::from_secs(1), Duration::from_secs(3600));
    let threshold = |v: &str| parse_u64(v, 1, 100).map(|n| n as u32);
    let path = r.parse(&HC_PATH, Lenient, |v| parse_abs_path(v, false));
    let interval = r.parse(&HC_INTERVAL, Lenient, interval_range);
    let timeout = r.parse(&HC_TIMEOUT, Lenient, |v| {
        parse_duration(v, Duration::from_millis(100), Duration::from_secs(3600))
    });
    let healthy = r.parse(&HC_HEALTHY, Lenient, threshold);
    let unhealthy = r.parse(&HC_UNHEALTHY, Lenient, threshold);
    if path.is_none() {
        for spec in [&HC_INTERVAL, &HC_TIMEOUT, &HC_HEALTHY, &HC_UNHEALTHY] {
            if let Some((key, value)) = r.get(spec) {
                r.invalid(
                    &key,
                    value,
                    "needs tenantgateway.io/health-check-path (a valid one)",
                    Lenient,
                );
            }
        }
        return None;
    }
    Some(HealthCheck {
        path: path?,
        interval: interval.unwrap_or(HC_DEFAULT_INTERVAL),
        timeout: timeout.unwrap_or(HC_DEFAULT_TIMEOUT),
        healthy_threshold: healthy.unwrap_or(2),
        unhealthy_threshold: unhealthy.unwrap_or(3),
    })
}

fn parse_outlier(r: &mut Reader<'_>) -> Option<Outlier> {
    use OnError::Default as Lenient;
    let d = |v: &str| parse_duration(v, Duration::from_secs(1), Duration::from_secs(3600));
    let consecutive = r.parse(&OUTLIER_5XX, Lenient, |v| {
        parse_u64(v, 1, 1000).map(|n| n as u32)
    });
    let interval = r.parse(&OUTLIER_INTERVAL, Lenient, d);
    let ejection = r.parse(&OUTLIER_EJECTION, Lenient, d);
    if consecutive.is_none() {
        for spec in [&OUTLIER_INTERVAL, &OUTLIER_EJECTION] {
            if let Some((key, value)) = r.get(spec) {
                r.invalid(
                    &key,
                    value,
                    "needs tenantgateway.io/outlier-consecutive-5xx (a valid one)",
                    Lenient,
                );
            }
        }
        return None;
    }
    Some(Outlier {
        consecutive_5xx: consecutive?,
        interval: interval.unwrap_or(Duration::from_secs(10)),
        base_ejection_time: ejection.unwrap_or(Duration::from_secs(30)),
    })
}

fn parse_proxy_ssl(r: &mut Reader<'_>, s: &mut IngressSettings) {
    use OnError::Drop as Strict;
    let namespace = r.obj.namespace.clone();
    let secret = r.parse(&PROXY_SSL_SECRET, Strict, |v| {
        parse_secret_ref(v, &namespace)
    });
    let verify = r.parse(&PROXY_SSL_VERIFY, Strict, parse_on_off);
    let name = r.parse(&PROXY_SSL_NAME, Strict, parse_dns_name);
    let tls = s.backend_protocol.tls();
    for (spec, set) in [
        (&PROXY_SSL_SECRET, secret.is_some()),
        (&PROXY_SSL_VERIFY, verify == Some(true)),
        (&PROXY_SSL_NAME, name.is_some()),
    ] {
        if set && !tls {
            if let Some((key, value)) = r.get(spec) {
                r.invalid(&key, value, "needs backend-protocol HTTPS or GRPCS", Strict);
            }
        }
    }
    if verify == Some(true) && secret.is_none() {
        if let Some((key, value)) = r.get(&PROXY_SSL_VERIFY) {
            r.invalid(
                &key,
                value,
                "verification needs a CA: set proxy-ssl-secret",
                Strict,
            );
        }
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
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if v.len() > 253 || !v.split('.').all(label_ok) {
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
        out.push(Cidr { addr, len });
    }
    if out.is_empty() {
        return Err("no CIDR ranges".into());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
#[path = "annotations_tests.rs"]
mod tests;
