//! Ingress semantics lowered into the model: an Ingress's annotations as
//! route policies, its rewrite as a path rewrite, canaries as alternatives
//! and weighted backends, app-root and the redirect annotations as redirects.

use crate::model::{
    AccessList, Action, Alternative, CustomErrors, HeaderEdits, HeaderMatch, HttpsRedirect,
    ObjectRef, PathMatch, PathRewrite, Provenance, RateLimitPolicy, Redirect, RedirectPath, Route,
    RouteConditions, RoutePolicy, Timeouts, WeightedBackend,
};
use crate::sources::ingress::annotations::{Canary, IngressSettings};
use k8s_openapi::api::networking::v1::IngressServiceBackend;
use std::sync::Arc;

/// Where an Ingress path sends its requests, before lowering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Cluster(String),
    /// The backend is missing or invalid: answer 503 rather than let the
    /// request fall through to another (shorter) path's backend.
    Unavailable,
    /// `app-root`: redirect (302, as ingress-nginx) to this path.
    AppRoot(String),
    /// `permanent-redirect`, `temporal-redirect`, `from-to-www-redirect`.
    Redirect(Redirect),
}

/// A canary Ingress attached to the main route of the same host and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AttachedCanary {
    pub target: Target,
    pub canary: Canary,
    /// `namespace/name` of the canary Ingress, for conflict reports.
    pub source: String,
}

/// One served Ingress path; its canary may attach later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IngressRoute {
    pub provenance: Provenance,
    pub path: PathMatch,
    pub target: Target,
    pub rewrite: Option<PathRewrite>,
    pub policy: Arc<RoutePolicy>,
    pub canary: Option<AttachedCanary>,
}

/// The route policy of every path of an Ingress (`owner` is its `namespace/name`).
pub(super) fn route_policy(s: &IngressSettings, owner: &str) -> RoutePolicy {
    let https_redirect = if s.force_ssl_redirect {
        HttpsRedirect::Always
    } else if s.ssl_redirect {
        HttpsRedirect::WhenHostHasTls
    } else {
        HttpsRedirect::Never
    };
    RoutePolicy {
        https_redirect,
        hsts: s.hsts.clone(),
        timeouts: Timeouts {
            idle: s.idle_timeout,
            websocket_idle: s.websocket_idle_timeout,
            // nginx stops trying further backends after it; Envoy's
            // route timeout bounds the whole request (documented).
            request: s.retry_timeout,
            backend_request: None,
        },
        retry: s.retry.clone(),
        affinity: s.affinity.clone(),
        access: AccessList {
            allow: s.allow_ranges.clone(),
            deny: s.deny_ranges.clone(),
        },
        // One bucket per Ingress: all its paths share a client's tokens.
        rate_limit: s.rate_limit.clone().map(|limit| RateLimitPolicy {
            bucket: owner.to_string(),
            limit,
            exempt: s.limit_exempt.clone(),
        }),
        headers: header_edits(s),
        max_body_bytes: s.max_body_bytes,
        compression: s.compression.clone(),
        mirrors: Vec::new(),
        host_rewrite: s.upstream_vhost.clone(),
        cors: s.cors.clone().map(|mut c| {
            // nginx answers `*` literally, which browsers refuse together with
            // credentials; Envoy echoes the Origin, so with `*` credentials
            // are not allowed: the same outcome in browsers.
            if c.allow_origins == ["*"] {
                c.allow_credentials = false;
            }
            c
        }),
        // Resolved with the Ingress's Secret or auth Service by the caller.
        auth: None,
        // Resolved with the default backend by the caller.
        custom_errors: None,
    }
}

/// `custom-http-errors` of the Ingress `obj`, answered by `backend`. The
/// internal host has an `_`, which no Ingress host (a DNS name) can have.
pub(super) fn custom_errors(obj: &ObjectRef, codes: &[u16], backend: &str) -> CustomErrors {
    CustomErrors {
        codes: codes.to_vec(),
        host: format!("{}.{}.custom-errors.invalid", obj.namespace, obj.name),
        backend: backend.to_string(),
        headers: vec![
            ("x-namespace".into(), obj.namespace.clone()),
            ("x-ingress-name".into(), obj.name.clone()),
        ],
    }
}

/// The Ingress's custom errors for one path: with its Service's name and
/// port (as the Ingress writes it: a number or a name).
pub(super) fn with_service(errors: &CustomErrors, svc: &IngressServiceBackend) -> CustomErrors {
    let port = svc
        .port
        .as_ref()
        .and_then(|p| p.number.map(|n| n.to_string()).or_else(|| p.name.clone()));
    let mut out = errors.clone();
    out.headers
        .push(("x-service-name".into(), svc.name.clone()));
    out.headers
        .extend(port.map(|p| ("x-service-port".into(), p)));
    out
}

/// Headers ingress-nginx sends upstream with client certificates, from
/// the connection (never the client's): the certificate itself (URL-encoded
/// PEM, nginx's `$ssl_client_escaped_cert`) only when asked to pass it.
fn client_certificate_headers(pass_certificate: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![
        ("ssl-client-subject-dn", "%DOWNSTREAM_PEER_SUBJECT%"),
        ("ssl-client-issuer-dn", "%DOWNSTREAM_PEER_ISSUER%"),
    ];
    if pass_certificate {
        out.insert(0, ("ssl-client-cert", "%DOWNSTREAM_PEER_CERT%"));
    }
    out
}

/// The Ingress's header edits, `x-forwarded-prefix` and the client
/// certificate headers (its own edits win).
fn header_edits(s: &IngressSettings) -> HeaderEdits {
    let mut h = s.headers.clone();
    if let Some(c) = &s.client_certificates {
        // Removed first (Envoy removes before it adds): a header the
        // connection has no value for is not sent, whatever the client sent.
        for (name, value) in client_certificate_headers(c.pass_certificate) {
            if !h.request_add.iter().any(|(k, _)| k == name) {
                h.request_remove.push(name.into());
                h.request_add.push((name.into(), value.into()));
            }
        }
        h.request_remove.push("ssl-client-verify".into());
        if !c.pass_certificate {
            h.request_remove.push("ssl-client-cert".into());
        }
        h.request_remove.sort();
        h.request_remove.dedup();
    }
    if let Some(prefix) = &s.x_forwarded_prefix {
        if !h.request_add.iter().any(|(k, _)| k == "x-forwarded-prefix") {
            h.request_add
                .push(("x-forwarded-prefix".into(), prefix.clone()));
        }
    }
    h
}

/// `rewrite-target` and `prefix-rewrite` for one path.
pub(super) fn rewrite(s: &IngressSettings, path: &PathMatch) -> Option<PathRewrite> {
    match (path, &s.rewrite_target, &s.prefix_rewrite) {
        // nginx `rewrite` replaces the whole path with the target.
        (PathMatch::Regex(re), Some(target), _) => Some(PathRewrite::Regex {
            pattern: format!("(?i)^(?:{re}).*$"),
            substitution: target.clone(),
        }),
        (PathMatch::Exact(_), Some(target), _) => Some(PathRewrite::Prefix(target.clone())),
        (PathMatch::Prefix(p), None, Some(to)) if to == "/" => Some(PathRewrite::Regex {
            pattern: format!("^{}/?", regex::escape(p.trim_end_matches('/'))),
            substitution: "/".into(),
        }),
        (PathMatch::Prefix(p), None, Some(to)) if p == "/" => {
            Some(PathRewrite::Prefix(format!("{to}/")))
        }
        (PathMatch::Prefix(_) | PathMatch::Exact(_), None, Some(to)) => {
            Some(PathRewrite::Prefix(to.clone()))
        }
        _ => None,
    }
}

fn action(target: Target) -> Action {
    match target {
        Target::Cluster(c) => Action::Forward(vec![WeightedBackend {
            backend: c,
            weight: 1,
            headers: None,
        }]),
        Target::Unavailable => Action::DirectResponse { status: 503 },
        Target::AppRoot(to) => Action::Redirect(Redirect {
            scheme: None,
            host: None,
            port: None,
            path: Some(RedirectPath::Full(to)),
            status: 302,
            strip_query: false,
        }),
        Target::Redirect(r) => Action::Redirect(r),
    }
}

fn alternative(name: &str, headers: Vec<HeaderMatch>, action: &Action) -> Alternative {
    Alternative {
        name: name.to_string(),
        headers,
        action: action.clone(),
    }
}

fn header_is(name: &str, value: &str) -> HeaderMatch {
    HeaderMatch::Exact {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// `Cookie:` holds `name=value` among others.
fn cookie_is(name: &str, value: &str) -> HeaderMatch {
    HeaderMatch::Regex {
        name: "cookie".into(),
        regex: format!(
            "(?:.*;\\s*)?{}={}(?:;.*)?",
            regex::escape(name),
            regex::escape(value)
        ),
    }
}

/// ingress-nginx canary rules: by header (a value, or always/never), then by
/// cookie (always/never), then by weight.
fn canary_alternatives(main: &Action, c: &AttachedCanary) -> Vec<Alternative> {
    let canary = action(c.target.clone());
    let k = &c.canary;
    let mut out = Vec::new();
    if let Some(h) = &k.by_header {
        match (&k.by_header_value, &k.by_header_pattern) {
            (Some(v), _) => out.push(alternative("canary:header", vec![header_is(h, v)], &canary)),
            (None, Some(re)) => {
                let matching = vec![HeaderMatch::Regex {
                    name: h.clone(),
                    regex: re.clone(),
                }];
                out.push(alternative("canary:header-pattern", matching, &canary));
            }
            (None, None) => {
                let always = vec![header_is(h, "always")];
                out.push(alternative("canary:header-always", always, &canary));
                let never = vec![header_is(h, "never")];
                out.push(alternative("canary:header-never", never, main));
            }
        }
    }
    if let Some(ck) = &k.by_cookie {
        let always = vec![cookie_is(ck, "always")];
        out.push(alternative("canary:cookie-always", always, &canary));
        let never = vec![cookie_is(ck, "never")];
        out.push(alternative("canary:cookie-never", never, main));
    }
    out
}

/// The main backend and the canary's by weight (only the canary at full weight).
fn weighted(main: &str, c: &AttachedCanary) -> Option<Action> {
    let (Target::Cluster(canary), true) = (&c.target, c.canary.weight > 0) else {
        return None;
    };
    let k = &c.canary;
    let canary = WeightedBackend {
        backend: canary.clone(),
        weight: k.weight,
        headers: None,
    };
    Some(Action::Forward(if k.weight >= k.weight_total {
        vec![canary]
    } else {
        vec![
            WeightedBackend {
                backend: main.to_string(),
                weight: k.weight_total - k.weight,
                headers: None,
            },
            canary,
        ]
    }))
}

pub(super) fn route(r: IngressRoute) -> Route {
    let (action, alternatives) = match &r.canary {
        None => (action(r.target), Vec::new()),
        Some(c) => {
            let weighted = match &r.target {
                Target::Cluster(m) => weighted(m, c),
                _ => None,
            };
            let main = action(r.target.clone());
            (
                weighted.unwrap_or_else(|| main.clone()),
                canary_alternatives(&main, c),
            )
        }
    };
    Route {
        provenance: r.provenance,
        path: r.path,
        conditions: RouteConditions::default(),
        action,
        rewrite: r.rewrite,
        policy: r.policy,
        alternatives,
    }
}
