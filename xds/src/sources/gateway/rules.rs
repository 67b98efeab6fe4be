//! A route's rules, lowered once per route: matches (with their precedence),
//! filters (policy, redirect, rewrite, mirrors, CORS), backends (weights,
//! references and grants), timeouts. Rules with an unsupported value are
//! dropped and reported; the model routes of a rule are built per listener
//! port (a redirect's default port is the listener's).

use super::spec::{self, BackendRef, Filter, GrpcMatch, HttpMatch, PathModifier, Rule};
use super::{Cx, RouteKind};
use crate::model::{
    Action, BackendProtocol, ClusterSettings, Cors, HeaderEdits, HttpsRedirect, Mirror, ObjectRef,
    OriginMatch, PathMatch, PathRewrite, Provenance, Redirect, RedirectPath, Retry, Route,
    RouteConditions, RoutePolicy, Timeouts, ValueMatch, WeightedBackend,
};
use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

/// One route object as read for lowering.
pub(super) struct RouteObject {
    pub kind: RouteKind,
    pub obj: Arc<ObjectRef>,
    pub generation: Option<i64>,
    /// Rank in (creationTimestamp, namespace/name) order, for precedence.
    pub order: usize,
    pub spec: spec::RouteSpec,
}

/// What a route's rules lowered to, and the problems that go into its status.
pub(super) struct LoweredRoute {
    pub rules: Vec<LoweredRule>,
    /// The first unresolved reference: ResolvedRefs=False with this reason.
    pub unresolved: Option<(&'static str, String)>,
    /// Rules dropped for an unsupported value, with why.
    pub dropped: Vec<String>,
    pub total_rules: usize,
}

pub(super) struct LoweredRule {
    pub matches: Vec<LoweredMatch>,
    pub action: RuleAction,
    pub policy: Arc<RoutePolicy>,
    pub rewrite: Option<PathModifier>,
}

pub(super) struct LoweredMatch {
    pub field: String,
    pub path: PathMatch,
    pub conditions: RouteConditions,
    pub precedence: Precedence,
}

/// Gateway API precedence: Exact path, then the longest prefix, then a
/// method, most headers, most query parameters; then the oldest route, then
/// namespace/name, then rule and match order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Precedence {
    path_kind: u8,
    path_len: Reverse<usize>,
    no_method: bool,
    headers: Reverse<usize>,
    query: Reverse<usize>,
    route: usize,
    rule: usize,
    matched: usize,
}

pub(super) enum RuleAction {
    /// Weighted backends and the weight of those that did not resolve (500).
    Forward {
        backends: Vec<WeightedBackend>,
        failed_weight: u32,
    },
    Redirect(spec::Redirect),
    /// Answer with this status (no backend, a filter that cannot be applied).
    Fail(u32),
}

/// `/foo/` and `/foo` are the same prefix (element-wise); `/` stays `/`.
fn normalise_prefix(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    }
}

/// A regex Envoy's RE2 accepts (the Ingress rules: RE2 syntax, short,
/// bounded repetitions): one Envoy would refuse would fail every route.
fn valid_regex(r: &str) -> Result<(), String> {
    crate::sources::ingress::annotations::check_regex(r)
        .map(|_| ())
        .map_err(|e| format!("regular expression {r:?}: {e}"))
}

/// A header a modifier may set, add or remove: a token, not a pseudo-header
/// and not `host` (Envoy refuses to modify those; `URLRewrite.hostname` sets
/// the host).
fn modifiable_header(name: &str) -> Result<String, String> {
    let n = crate::sources::ingress::annotations::parse_header_name(name)
        .map_err(|e| format!("header {name:?}: {e}"))?;
    if n == "host" {
        return Err("the host header cannot be modified (use URLRewrite hostname)".into());
    }
    Ok(n)
}

/// Header values Envoy accepts: no control characters (CR, LF, NUL).
fn header_value(v: &str) -> Result<String, String> {
    if v.len() > 4096 || v.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "header value {v:?} has control characters or is too long"
        ));
    }
    Ok(literal(v))
}

/// A Gateway API duration (`1h`, `10s`, `500ms`, `1m30s`; GEP-2257).
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a Gateway API duration (e.g. 10s, 500ms, 1h30m)");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += unit * u32::try_from(n).map_err(|_| bad())?;
        parts += 1;
        if parts > 4 {
            return Err(bad());
        }
    }
    Ok(total)
}

fn value_matches(
    list: &[spec::NameValueMatch],
    lowercase: bool,
) -> Result<Vec<ValueMatch>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for m in list {
        let name = if lowercase {
            m.name.to_ascii_lowercase()
        } else {
            m.name.clone()
        };
        // The first of several matches on one name wins; the others are ignored.
        if !seen.insert(name.clone()) {
            continue;
        }
        out.push(match m.type_.as_deref().unwrap_or("Exact") {
            "Exact" => ValueMatch::Exact {
                name,
                value: m.value.clone(),
            },
            "RegularExpression" => {
                valid_regex(&m.value)?;
                ValueMatch::Regex {
                    name,
                    regex: m.value.clone(),
                }
            }
            other => return Err(format!("match type {other:?} is not supported")),
        });
    }
    Ok(out)
}

fn http_match(v: &serde_json::Value) -> Result<(PathMatch, RouteConditions), String> {
    let m: HttpMatch =
        serde_json::from_value(v.clone()).map_err(|e| format!("match is not valid: {e}"))?;
    let path = m.path.unwrap_or_default();
    let value = path.value.unwrap_or_else(|| "/".into());
    let path = match path.type_.as_deref().unwrap_or("PathPrefix") {
        "Exact" => PathMatch::Exact(value),
        "PathPrefix" => PathMatch::Prefix(normalise_prefix(&value)),
        "RegularExpression" => {
            valid_regex(&value)?;
            PathMatch::RegularExpression(value)
        }
        other => return Err(format!("path match type {other:?} is not supported")),
    };
    if let PathMatch::Exact(p) | PathMatch::Prefix(p) = &path {
        if !p.starts_with('/') {
            return Err(format!("path {p:?} does not start with /"));
        }
    }
    Ok((
        path,
        RouteConditions {
            headers: value_matches(&m.headers, true)?,
            query: value_matches(&m.query_params, false)?,
            method: m.method.map(|s| s.to_ascii_uppercase()),
        },
    ))
}

/// gRPC methods are paths `/<service>/<method>`.
fn grpc_match(v: &serde_json::Value) -> Result<(PathMatch, RouteConditions), String> {
    let m: GrpcMatch =
        serde_json::from_value(v.clone()).map_err(|e| format!("match is not valid: {e}"))?;
    let path = match m.method {
        None => PathMatch::Prefix("/".into()),
        Some(method) => {
            let (svc, meth) = (
                method.service.filter(|s| !s.is_empty()),
                method.method.filter(|s| !s.is_empty()),
            );
            match method.type_.as_deref().unwrap_or("Exact") {
                "Exact" => match (svc, meth) {
                    (Some(s), Some(m)) => PathMatch::Exact(format!("/{s}/{m}")),
                    (Some(s), None) => PathMatch::Prefix(format!("/{s}")),
                    (None, Some(m)) => {
                        PathMatch::RegularExpression(format!("/[^/]+/{}", regex::escape(&m)))
                    }
                    (None, None) => PathMatch::Prefix("/".into()),
                },
                "RegularExpression" => {
                    let s = svc.unwrap_or_else(|| "[^/]+".into());
                    let m = meth.unwrap_or_else(|| "[^/]+".into());
                    valid_regex(&s)?;
                    valid_regex(&m)?;
                    PathMatch::RegularExpression(format!("/(?:{s})/(?:{m})"))
                }
                other => return Err(format!("method match type {other:?} is not supported")),
            }
        }
    };
    Ok((
        path,
        RouteConditions {
            headers: value_matches(&m.headers, true)?,
            query: vec![],
            method: None,
        },
    ))
}

fn precedence(
    path: &PathMatch,
    c: &RouteConditions,
    route: usize,
    rule: usize,
    matched: usize,
) -> Precedence {
    let (path_kind, len) = match path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::Prefix(p) => (1, p.len()),
        PathMatch::RegularExpression(p) | PathMatch::Regex(p) => (2, p.len()),
    };
    Precedence {
        path_kind,
        path_len: Reverse(len),
        no_method: c.method.is_none(),
        headers: Reverse(c.headers.len()),
        query: Reverse(c.query.len()),
        route,
        rule,
        matched,
    }
}

/// Header values are literal in Gateway API; Envoy formats `%…%`.
fn literal(v: &str) -> String {
    v.replace('%', "%%")
}

fn header_edits(
    request: &[&spec::HeaderModifier],
    response: &[&spec::HeaderModifier],
) -> Result<HeaderEdits, String> {
    let pairs = |hs: &[spec::Header]| -> Result<Vec<(String, String)>, String> {
        hs.iter()
            .map(|h| Ok((modifiable_header(&h.name)?, header_value(&h.value)?)))
            .collect()
    };
    let names = |hs: &[String]| -> Result<Vec<String>, String> {
        hs.iter().map(|h| modifiable_header(h)).collect()
    };
    let mut e = HeaderEdits::default();
    for m in request {
        e.request_add.extend(pairs(&m.set)?);
        e.request_append.extend(pairs(&m.add)?);
        e.request_remove.extend(names(&m.remove)?);
    }
    for m in response {
        e.response_add.extend(pairs(&m.set)?);
        e.response_append.extend(pairs(&m.add)?);
        e.response_remove.extend(names(&m.remove)?);
    }
    Ok(e)
}

/// Outcome of resolving one backendRef.
enum Resolved {
    Backend(String),
    Problem(&'static str, String),
}

impl<'a> Cx<'a> {
    /// A Service port of the tenant this route may reference, as a model backend.
    fn backend(&mut self, r: &RouteObject, b: &BackendRef) -> Resolved {
        let group = b.group.as_deref().unwrap_or("");
        let kind = b.kind.as_deref().unwrap_or("Service");
        if !(group.is_empty() || group == "core") || kind != "Service" {
            return Resolved::Problem(
                "InvalidKind",
                format!("{group}/{kind} is not a supported backend kind (core Service)"),
            );
        }
        let ns = b
            .namespace
            .clone()
            .unwrap_or_else(|| r.obj.namespace.clone());
        let target = ObjectRef::new("Service", &ns, &b.name);
        if !self.in_tenant(&ns) {
            return Resolved::Problem(
                "RefNotPermitted",
                format!(
                    "{target} is outside the tenant {:?}: references stay inside it",
                    self.options.tenant
                ),
            );
        }
        if ns != r.obj.namespace
            && !self.grants.permits(
                &r.obj.namespace,
                r.kind.as_str(),
                "",
                "Service",
                &ns,
                &b.name,
            )
        {
            return Resolved::Problem(
                "RefNotPermitted",
                format!("{target} is in another namespace and no ReferenceGrant there allows it"),
            );
        }
        let Some(port) = b.port else {
            return Resolved::Problem(
                "BackendNotFound",
                format!("the reference to {target} names no port"),
            );
        };
        if r.kind == RouteKind::Udp {
            // The Service's UDP port of that number (a DNS Service has a TCP one too).
            let udp = u16::try_from(port)
                .map_err(|_| format!("port {port} is not a valid port"))
                .and_then(|p| self.index.resolve_udp_service(&ns, &b.name, p));
            return match udp {
                Ok(backend) => {
                    let name = backend.name.clone();
                    self.model.backends.entry(name.clone()).or_insert(backend);
                    Resolved::Backend(name)
                }
                Err(e) => Resolved::Problem(
                    "BackendNotFound",
                    format!(
                        "{target}: {}",
                        e.replace(&format!("Service {:?} ", b.name), "")
                    ),
                ),
            };
        }
        let svc = k8s_openapi::api::networking::v1::IngressServiceBackend {
            name: b.name.clone(),
            port: Some(k8s_openapi::api::networking::v1::ServiceBackendPort {
                number: Some(port),
                name: None,
            }),
        };
        match self.index.resolve_service(&ns, &svc) {
            Ok(mut backend) => {
                let protocol = if r.kind == RouteKind::Grpc {
                    BackendProtocol::H2c
                } else {
                    self.app_protocol(&ns, &b.name, port)
                };
                if protocol != BackendProtocol::Http {
                    backend.name = format!("{}/h2c", backend.name);
                    backend.settings = ClusterSettings {
                        protocol,
                        ..ClusterSettings::default()
                    };
                }
                let name = backend.name.clone();
                self.model.backends.entry(name.clone()).or_insert(backend);
                Resolved::Backend(name)
            }
            Err(e) => {
                use crate::sources::backends::BackendError;
                let why = match e {
                    BackendError::ServiceNotFound(_) => format!("{target} not found"),
                    BackendError::ExternalName(_) => format!(
                        "{target} is of type ExternalName, which is not served (it could point the gateway at any host)"
                    ),
                    _ => format!("{target} has no port {port}"),
                };
                Resolved::Problem("BackendNotFound", why)
            }
        }
    }

    /// `kubernetes.io/h2c` on the Service port: HTTP/2 without TLS to the backend.
    fn app_protocol(&self, ns: &str, name: &str, port: i32) -> BackendProtocol {
        let app = self
            .index
            .service(ns, name)
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.ports.as_ref())
            .and_then(|ps| ps.iter().find(|p| p.port == port))
            .and_then(|p| p.app_protocol.as_deref());
        match app {
            Some("kubernetes.io/h2c") => BackendProtocol::H2c,
            _ => BackendProtocol::Http,
        }
    }

    /// Every rule of a route, lowered (rules with an unsupported value dropped).
    pub(super) fn lower_rules(&mut self, r: &RouteObject) -> LoweredRoute {
        let mut out = LoweredRoute {
            rules: vec![],
            unresolved: None,
            dropped: vec![],
            total_rules: r.spec.rules.len(),
        };
        for (i, rule) in r.spec.rules.iter().enumerate() {
            let field = format!("spec.rules[{i}]");
            match self.lower_rule(r, i, rule, &field, &mut out.unresolved) {
                Ok(l) => out.rules.push(l),
                Err((f, msg)) => {
                    self.diags
                        .error(&r.obj, &f, format!("{msg}; the rule is not served"));
                    out.dropped.push(format!("{f}: {msg}"));
                }
            }
        }
        out
    }

    fn lower_rule(
        &mut self,
        r: &RouteObject,
        i: usize,
        rule: &Rule,
        field: &str,
        unresolved: &mut Option<(&'static str, String)>,
    ) -> Result<LoweredRule, (String, String)> {
        let matches = lower_matches(r, i, rule, field)?;
        let f = self.rule_filters(r, rule, field, unresolved)?;
        let timeouts = rule.timeouts.clone().unwrap_or_default();
        let parse =
            |v: &Option<String>, name: &str| -> Result<Option<Duration>, (String, String)> {
                v.as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| (format!("{field}.timeouts.{name}"), e))
            };
        let request = parse(&timeouts.request, "request")?;
        let backend_request = parse(&timeouts.backend_request, "backendRequest")?;
        let headers = header_edits(&f.request_headers, &f.response_headers)
            .map_err(|e| (format!("{field}.filters"), e))?;
        let policy = Arc::new(RoutePolicy {
            https_redirect: HttpsRedirect::Never,
            hsts: None,
            timeouts: Timeouts {
                idle: Duration::from_secs(300),
                websocket_idle: None,
                request,
                backend_request,
            },
            retry: Retry::default(),
            affinity: crate::model::Affinity::None,
            access: crate::model::AccessList::default(),
            rate_limit: None,
            headers,
            max_body_bytes: None,
            compression: None,
            mirrors: f.mirrors,
            host_rewrite: f.rewrite.and_then(|rw| rw.hostname.clone()),
            cors: f.cors,
            auth: None,
            custom_errors: None,
        });
        let action = if let Some(status) = f.fail {
            RuleAction::Fail(status)
        } else if let Some(rd) = f.redirect {
            RuleAction::Redirect(rd.clone())
        } else {
            self.forward(r, rule, field, unresolved)
        };
        Ok(LoweredRule {
            matches,
            action,
            policy,
            rewrite: f.rewrite.and_then(|rw| rw.path.clone()),
        })
    }

    /// A rule's filters, checked: unsupported or incompatible ones fail the rule.
    fn rule_filters<'r>(
        &mut self,
        r: &RouteObject,
        rule: &'r Rule,
        field: &str,
        unresolved: &mut Option<(&'static str, String)>,
    ) -> Result<RuleFilters<'r>, (String, String)> {
        let mut out = RuleFilters::default();
        let http = r.kind == RouteKind::Http;
        for (j, f) in rule.filters.iter().enumerate() {
            let ff = format!("{field}.filters[{j}]");
            match filter_kind(f) {
                Ok(FilterKind::RequestHeaders(m)) => out.request_headers.push(m),
                Ok(FilterKind::ResponseHeaders(m)) => out.response_headers.push(m),
                Ok(FilterKind::Redirect(rd)) if http => out.redirect = Some(rd),
                Ok(FilterKind::Rewrite(rw)) if http => out.rewrite = Some(rw),
                Ok(FilterKind::Cors(c)) if http => out.cors = Some(cors_policy(c)),
                Ok(FilterKind::Mirror(m)) => match self.backend(r, &m.backend_ref) {
                    Resolved::Backend(b) => out.mirrors.push(mirror(b, m)),
                    Resolved::Problem(reason, msg) => {
                        let bf = format!("{ff}.requestMirror.backendRef");
                        self.diags
                            .error(&r.obj, &bf, format!("{msg}; requests are not mirrored"));
                        unresolved.get_or_insert((reason, msg));
                    }
                },
                Ok(FilterKind::Extension) => {
                    let msg =
                        "extensionRef filters are not supported; the rule answers 500".to_string();
                    self.diags.error(&r.obj, &ff, msg.clone());
                    unresolved.get_or_insert(("InvalidKind", msg));
                    out.fail = Some(500);
                }
                Ok(_) => {
                    let kind = r.kind.as_str();
                    return Err((
                        ff,
                        format!("filter {:?} is not supported on {kind}", f.type_),
                    ));
                }
                Err(e) => return Err((ff, e)),
            }
        }
        let bad = |e: String| (format!("{field}.filters"), e);
        if out.redirect.is_some() && out.rewrite.is_some() {
            return Err(bad(
                "RequestRedirect and URLRewrite cannot both be used in one rule".into(),
            ));
        }
        let paths = [
            out.rewrite.and_then(|rw| rw.path.as_ref()),
            out.redirect.and_then(|rd| rd.path.as_ref()),
        ];
        for p in paths.into_iter().flatten() {
            check_path_modifier(p).map_err(bad)?;
        }
        Ok(out)
    }

    fn forward(
        &mut self,
        r: &RouteObject,
        rule: &Rule,
        field: &str,
        unresolved: &mut Option<(&'static str, String)>,
    ) -> RuleAction {
        let mut backends = Vec::new();
        let mut failed_weight = 0u32;
        for (j, b) in rule.backend_refs.iter().enumerate() {
            let f = format!("{field}.backendRefs[{j}]");
            // The API's range (0–1,000,000): the sum stays far below Envoy's limit.
            let weight = u32::try_from(b.weight.unwrap_or(1).clamp(0, 1_000_000)).unwrap_or(0);
            let mut request = Vec::new();
            let mut response = Vec::new();
            for (k, filter) in b.filters.iter().enumerate() {
                match filter_kind(filter) {
                    Ok(FilterKind::RequestHeaders(m)) => request.push(m),
                    Ok(FilterKind::ResponseHeaders(m)) => response.push(m),
                    _ => self.diags.push(
                        crate::diagnostics::Severity::Warning,
                        &r.obj,
                        format!("{f}.filters[{k}]"),
                        format!(
                            "filter {:?} on a backendRef is not supported (header modifiers are); it is ignored",
                            filter.type_
                        ),
                    ),
                }
            }
            let headers = match header_edits(&request, &response) {
                Ok(e) if e != HeaderEdits::default() => Some(Arc::new(e)),
                Ok(_) => None,
                Err(e) => {
                    self.diags.error(
                        &r.obj,
                        format!("{f}.filters"),
                        format!("{e}; the backend's filters are ignored"),
                    );
                    None
                }
            };
            match self.backend(r, b) {
                Resolved::Backend(name) => {
                    if weight > 0 {
                        backends.push(WeightedBackend {
                            backend: name,
                            weight,
                            headers,
                        });
                    }
                }
                Resolved::Problem(reason, msg) => {
                    self.diags.error(
                        &r.obj,
                        &f,
                        format!("{msg}; its share of the requests answers 500"),
                    );
                    unresolved.get_or_insert((reason, msg));
                    failed_weight = failed_weight.saturating_add(weight);
                }
            }
        }
        if backends.is_empty() {
            RuleAction::Fail(500)
        } else {
            RuleAction::Forward {
                backends,
                failed_weight,
            }
        }
    }
}

/// A rule's matches (none: every request, `PathPrefix /`), each with its precedence.
fn lower_matches(
    r: &RouteObject,
    rule_index: usize,
    rule: &Rule,
    field: &str,
) -> Result<Vec<LoweredMatch>, (String, String)> {
    let raw: Vec<serde_json::Value> = if rule.matches.is_empty() {
        vec![serde_json::json!({})]
    } else {
        rule.matches.clone()
    };
    raw.iter()
        .enumerate()
        .map(|(j, m)| {
            let f = format!("{field}.matches[{j}]");
            let (path, conditions) = match r.kind {
                RouteKind::Grpc => grpc_match(m),
                _ => http_match(m),
            }
            .map_err(|e| (f.clone(), e))?;
            let precedence = precedence(&path, &conditions, r.order, rule_index, j);
            Ok(LoweredMatch {
                field: f,
                path,
                conditions,
                precedence,
            })
        })
        .collect()
}

/// What a rule's filters ask for.
#[derive(Default)]
struct RuleFilters<'r> {
    request_headers: Vec<&'r spec::HeaderModifier>,
    response_headers: Vec<&'r spec::HeaderModifier>,
    redirect: Option<&'r spec::Redirect>,
    rewrite: Option<&'r spec::UrlRewrite>,
    mirrors: Vec<Mirror>,
    cors: Option<Cors>,
    /// A filter that cannot be applied: the rule answers this status.
    fail: Option<u32>,
}

enum FilterKind<'f> {
    RequestHeaders(&'f spec::HeaderModifier),
    ResponseHeaders(&'f spec::HeaderModifier),
    Redirect(&'f spec::Redirect),
    Rewrite(&'f spec::UrlRewrite),
    Mirror(&'f spec::Mirror),
    Cors(&'f spec::Cors),
    Extension,
}

fn filter_kind(f: &Filter) -> Result<FilterKind<'_>, String> {
    let missing = || format!("filter {:?} has no configuration", f.type_);
    Ok(match f.type_.as_str() {
        "RequestHeaderModifier" => {
            FilterKind::RequestHeaders(f.request_header_modifier.as_ref().ok_or_else(missing)?)
        }
        "ResponseHeaderModifier" => {
            FilterKind::ResponseHeaders(f.response_header_modifier.as_ref().ok_or_else(missing)?)
        }
        "RequestRedirect" => FilterKind::Redirect(f.request_redirect.as_ref().ok_or_else(missing)?),
        "URLRewrite" => FilterKind::Rewrite(f.url_rewrite.as_ref().ok_or_else(missing)?),
        "RequestMirror" => FilterKind::Mirror(f.request_mirror.as_ref().ok_or_else(missing)?),
        "CORS" => FilterKind::Cors(f.cors.as_ref().ok_or_else(missing)?),
        "ExtensionRef" => FilterKind::Extension,
        other => return Err(format!("filter type {other:?} is not supported")),
    })
}

fn check_path_modifier(p: &PathModifier) -> Result<(), String> {
    match p.type_.as_str() {
        "ReplaceFullPath" if p.replace_full_path.is_some() => Ok(()),
        "ReplacePrefixMatch" if p.replace_prefix_match.is_some() => Ok(()),
        other => Err(format!(
            "path modifier {other:?} is not supported or has no value"
        )),
    }
}

fn mirror(backend: String, m: &spec::Mirror) -> Mirror {
    let (percent, per_million) = match (m.percent, &m.fraction) {
        (Some(p), _) => (u32::try_from(p.clamp(0, 100)).unwrap_or(100), None),
        (None, Some(f)) => {
            let den = i64::from(f.denominator.unwrap_or(100).max(1));
            let num = i64::from(f.numerator.max(0)).min(den);
            let ppm = u32::try_from(num * 1_000_000 / den).unwrap_or(1_000_000);
            (ppm / 10_000, Some(ppm))
        }
        (None, None) => (100, None),
    };
    Mirror {
        backend,
        percent,
        per_million: per_million.filter(|p| *p < 1_000_000),
        host: None,
    }
}

fn cors_policy(c: &spec::Cors) -> Cors {
    Cors {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        allow_credentials: c.allow_credentials.unwrap_or(false),
        max_age: Some(u32::try_from(c.max_age.unwrap_or(5).max(0)).unwrap_or(5)),
        origin_match: OriginMatch::Labels,
    }
}

/// The prefix `matched` replaced by `to`, element-wise (`/a` → `/` on `/a/b` gives `/b`).
fn prefix_regex(matched: &PathMatch, to: &str) -> (String, String) {
    let prefix = match matched {
        PathMatch::Prefix(p) | PathMatch::Exact(p) => p.clone(),
        PathMatch::RegularExpression(p) | PathMatch::Regex(p) => p.clone(),
    };
    let to = to.trim_end_matches('/');
    if prefix == "/" {
        return ("^/(.*)$".into(), format!("{to}/\\1"));
    }
    let p = regex::escape(&prefix);
    if to.is_empty() {
        (format!("^{p}/*(.*)$"), "/\\1".into())
    } else {
        (format!("^{p}(/.*)?$"), format!("{to}\\1"))
    }
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The redirect of a rule on a listener: a missing port is the scheme's
/// well-known port (when the scheme changes) or the listener's; a port that
/// is the well-known one of the resulting scheme is left out of Location.
pub(super) fn redirect(
    rd: &spec::Redirect,
    matched: &PathMatch,
    listener_port: u16,
    listener_scheme: &str,
) -> Redirect {
    let scheme = rd.scheme.clone().filter(|s| !s.is_empty());
    let final_scheme = scheme.as_deref().unwrap_or(listener_scheme);
    let port = match rd.port.and_then(|p| u16::try_from(p).ok()) {
        Some(p) => Some(p),
        None => match &scheme {
            Some(s) => well_known_port(s).or(Some(listener_port)),
            None => Some(listener_port),
        },
    };
    let port = port.filter(|p| well_known_port(final_scheme) != Some(*p));
    let path = rd.path.as_ref().and_then(|p| match p.type_.as_str() {
        "ReplaceFullPath" => p.replace_full_path.clone().map(RedirectPath::Full),
        "ReplacePrefixMatch" => p.replace_prefix_match.as_ref().map(|to| {
            let (pattern, substitution) = prefix_regex(matched, to);
            RedirectPath::Regex {
                pattern,
                substitution,
            }
        }),
        _ => None,
    });
    Redirect {
        scheme,
        host: rd.hostname.clone().filter(|h| !h.is_empty()),
        port,
        path,
        status: rd
            .status_code
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| [301, 302, 303, 307, 308].contains(s))
            .unwrap_or(302),
        strip_query: false,
    }
}

/// The model route of one match of a rule on a listener port.
pub(super) fn model_route(
    obj: &Arc<ObjectRef>,
    rule: &LoweredRule,
    m: &LoweredMatch,
    listener_port: u16,
    listener_scheme: &str,
) -> Route {
    let action = match &rule.action {
        RuleAction::Fail(status) => Action::DirectResponse { status: *status },
        RuleAction::Redirect(rd) => {
            Action::Redirect(redirect(rd, &m.path, listener_port, listener_scheme))
        }
        RuleAction::Forward {
            backends,
            failed_weight: 0,
        } => Action::Forward(backends.clone()),
        RuleAction::Forward {
            backends,
            failed_weight,
        } => Action::ForwardOrFail {
            backends: backends.clone(),
            failed_weight: *failed_weight,
            status: 500,
        },
    };
    let rewrite = rule.rewrite.as_ref().and_then(|p| match p.type_.as_str() {
        "ReplaceFullPath" => p.replace_full_path.as_ref().map(|to| PathRewrite::Regex {
            pattern: "^.*$".into(),
            substitution: to.clone(),
        }),
        "ReplacePrefixMatch" => p.replace_prefix_match.as_ref().map(|to| {
            let (pattern, substitution) = prefix_regex(&m.path, to);
            PathRewrite::Regex {
                pattern,
                substitution,
            }
        }),
        _ => None,
    });
    Route {
        provenance: Provenance::new(obj, m.field.clone()),
        path: m.path.clone(),
        conditions: m.conditions.clone(),
        action,
        rewrite,
        policy: rule.policy.clone(),
        alternatives: vec![],
    }
}
