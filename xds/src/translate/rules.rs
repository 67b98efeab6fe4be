//! Collecting Ingress rules: class filtering, validation, precedence and
//! conflict arbitration (oldest Ingress wins), TLS hosts and default backend.

use super::backends::{BackendIndex, ClusterPlan, TlsSecretPlan};
use super::{GatewayOptions, TenantObjects};
use crate::diagnostics::{Diagnostics, ObjectRef};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Which requests a virtual host answers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum HostMatch {
    /// No host in the rule: any request.
    Any,
    /// `*.example.com`: exactly one label in front of `example.com`.
    Wildcard(String),
    Exact(String),
}

impl HostMatch {
    pub(crate) fn display(&self) -> &str {
        match self {
            HostMatch::Any => "*",
            HostMatch::Wildcard(h) | HostMatch::Exact(h) => h,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathMatch {
    /// Exact, case-sensitive path.
    Exact(String),
    /// Element-wise prefix, normalised without trailing slash (`/` stays `/`).
    Prefix(String),
}

impl PathMatch {
    /// Match length used for precedence: longest first, Exact before Prefix on ties.
    pub(crate) fn precedence_key(&self) -> (std::cmp::Reverse<usize>, u8, &str) {
        match self {
            PathMatch::Exact(p) => (std::cmp::Reverse(p.len()), 0, p),
            PathMatch::Prefix(p) => (std::cmp::Reverse(p.len()), 1, p),
        }
    }
    fn display(&self) -> String {
        match self {
            PathMatch::Exact(p) => format!("{p} (Exact)"),
            PathMatch::Prefix(p) => format!("{p} (Prefix)"),
        }
    }
}

/// Where a route sends its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Cluster(String),
    /// The backend is missing or invalid: answer 503 rather than let the
    /// request fall through to another (shorter) path's backend.
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoutePlan {
    pub path: PathMatch,
    pub target: Target,
    /// `namespace/ingress` that owns this route, for the route name.
    pub source: String,
}

/// The tenant's routing plan, before it is written as Envoy resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub hosts: BTreeMap<HostMatch, Vec<RoutePlan>>,
    pub default_backend: Option<RoutePlan>,
    pub clusters: BTreeMap<String, ClusterPlan>,
    /// SNI host → Envoy secret name.
    pub tls_hosts: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, TlsSecretPlan>,
    /// Every Ingress this gateway serves (its class matched), as (namespace, name).
    pub served: Vec<(String, String)>,
}

impl Plan {
    pub(crate) fn routable_paths(&self) -> usize {
        self.hosts
            .values()
            .flatten()
            .chain(self.default_backend.as_ref())
            .filter(|r| matches!(r.target, Target::Cluster(_)))
            .count()
    }
}

/// Oldest first; objects without a timestamp (manifest files) sort first,
/// then by namespace/name.
fn creation_key(ing: &Ingress) -> (Option<&Time>, &str, &str) {
    (
        ing.metadata.creation_timestamp.as_ref(),
        ing.metadata.namespace.as_deref().unwrap_or(""),
        ing.metadata.name.as_deref().unwrap_or(""),
    )
}

fn is_ours(ing: &Ingress, options: &GatewayOptions) -> bool {
    let class = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        .map(String::as_str);
    match class.or(legacy) {
        Some(c) => c == options.ingress_class,
        None => options.serve_unclassed,
    }
}

/// Validate an Ingress host as the API server does: a lowercase DNS-1123
/// subdomain, optionally with a leading `*.` label.
pub(crate) fn parse_host(host: &str) -> Result<HostMatch, String> {
    let (wild, rest) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > 253 || rest.is_empty() || !rest.split('.').all(label_ok) {
        return Err(format!(
            "host {host:?} is not a valid lowercase DNS name (optionally starting with \"*.\")"
        ));
    }
    if rest.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "host {host:?} must be a DNS name, not an IP address"
        ));
    }
    Ok(if wild {
        HostMatch::Wildcard(host.to_string())
    } else {
        HostMatch::Exact(host.to_string())
    })
}

/// Validate and normalise a path by its pathType.
pub(crate) fn parse_path(path: Option<&str>, path_type: &str) -> Result<PathMatch, String> {
    let path = path.unwrap_or("");
    let check_chars = |p: &str| -> Result<(), String> {
        if !p.starts_with('/') {
            return Err(format!("path {p:?} must be absolute (start with \"/\")"));
        }
        if p.len() > 4096 {
            return Err("path is longer than 4096 characters".into());
        }
        if p.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(format!(
                "path {p:?} must not contain whitespace, control characters, '?' or '#'"
            ));
        }
        Ok(())
    };
    match path_type {
        "Exact" => {
            check_chars(path)?;
            Ok(PathMatch::Exact(path.to_string()))
        }
        // ImplementationSpecific is served exactly like Prefix (documented choice).
        "Prefix" | "ImplementationSpecific" => {
            let path = if path.is_empty() && path_type == "ImplementationSpecific" {
                "/"
            } else {
                path
            };
            check_chars(path)?;
            let trimmed = path.trim_end_matches('/');
            Ok(PathMatch::Prefix(if trimmed.is_empty() {
                "/".to_string()
            } else {
                trimmed.to_string()
            }))
        }
        "" => Err("pathType is required (Exact, Prefix or ImplementationSpecific)".into()),
        other => Err(format!(
            "pathType {other:?} is not one of Exact, Prefix, ImplementationSpecific"
        )),
    }
}

struct Collector<'a, 'o> {
    index: &'a BackendIndex<'o>,
    diags: &'a mut Diagnostics,
    plan: Plan,
}

impl Collector<'_, '_> {
    fn target(
        &mut self,
        namespace: &str,
        backend: &IngressBackend,
        obj: &ObjectRef,
        field: &str,
    ) -> Target {
        let Some(svc) = &backend.service else {
            let what = if backend.resource.is_some() {
                "resource backends are not supported; use a service backend"
            } else {
                "backend names no service"
            };
            self.diags.error(obj, field.to_string(), what);
            return Target::Unavailable;
        };
        match self.index.resolve_service(namespace, svc) {
            Ok(cluster) => {
                let name = cluster.name.clone();
                self.plan.clusters.entry(name.clone()).or_insert(cluster);
                Target::Cluster(name)
            }
            Err(e) => {
                self.diags.error(
                    obj,
                    format!("{field}.service.{}", e.field_suffix()),
                    format!("{e}; the path answers 503"),
                );
                Target::Unavailable
            }
        }
    }
}

/// Build the routing plan from every Ingress of the tenant, oldest first.
pub(crate) fn collect(
    objects: &TenantObjects,
    options: &GatewayOptions,
    index: &BackendIndex<'_>,
    diags: &mut Diagnostics,
) -> Plan {
    let mut ingresses: Vec<&Ingress> = objects
        .ingresses
        .iter()
        .filter(|i| {
            i.metadata
                .namespace
                .as_deref()
                .is_some_and(|ns| options.in_scope(ns))
                && i.metadata.name.is_some()
                && is_ours(i, options)
        })
        .collect();
    ingresses.sort_by(|a, b| creation_key(a).cmp(&creation_key(b)));

    let mut c = Collector {
        index,
        diags,
        plan: Plan::default(),
    };
    // (host, path) → owning Ingress, for conflict reports.
    let mut claimed: BTreeMap<(HostMatch, PathMatch), String> = BTreeMap::new();
    let mut default_owner: Option<String> = None;
    let mut tls_owner: BTreeMap<String, String> = BTreeMap::new();

    for ing in ingresses {
        let ns = ing.metadata.namespace.as_deref().unwrap_or_default();
        let name = ing.metadata.name.as_deref().unwrap_or_default();
        let owner = format!("{ns}/{name}");
        let obj = ObjectRef::new("Ingress", ns, name);
        c.plan.served.push((ns.to_string(), name.to_string()));
        let Some(spec) = &ing.spec else { continue };

        if let Some(backend) = &spec.default_backend {
            if let Some(holder) = &default_owner {
                c.diags.error(
                    &obj,
                    "spec.defaultBackend",
                    format!("ignored: the older Ingress {holder} already sets the default backend"),
                );
            } else {
                let target = c.target(ns, backend, &obj, "spec.defaultBackend");
                c.plan.default_backend = Some(RoutePlan {
                    path: PathMatch::Prefix("/".into()),
                    target,
                    source: owner.clone(),
                });
                default_owner = Some(owner.clone());
            }
        }

        for (ri, rule) in spec.rules.iter().flatten().enumerate() {
            let host = match rule.host.as_deref() {
                None | Some("") => HostMatch::Any,
                Some(h) => match parse_host(h) {
                    Ok(h) => h,
                    Err(e) => {
                        c.diags.error(
                            &obj,
                            format!("spec.rules[{ri}].host"),
                            format!("{e}; rule not served"),
                        );
                        continue;
                    }
                },
            };
            for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                let path = match parse_path(p.path.as_deref(), &p.path_type) {
                    Ok(path) => path,
                    Err(e) => {
                        c.diags.error(&obj, field, format!("{e}; path not served"));
                        continue;
                    }
                };
                let slot = (host.clone(), path.clone());
                if let Some(holder) = claimed.get(&slot) {
                    let why = if *holder == owner {
                        "is listed earlier in this Ingress".to_string()
                    } else {
                        format!("is already served by the older Ingress {holder}")
                    };
                    c.diags.error(
                        &obj,
                        field,
                        format!(
                            "host {} path {} {why}; this path is not served",
                            host.display(),
                            path.display()
                        ),
                    );
                    continue;
                }
                let target = c.target(ns, &p.backend, &obj, &format!("{field}.backend"));
                claimed.insert(slot, owner.clone());
                c.plan
                    .hosts
                    .entry(host.clone())
                    .or_default()
                    .push(RoutePlan {
                        path,
                        target,
                        source: owner.clone(),
                    });
            }
        }

        for (ti, tls) in spec.tls.iter().flatten().enumerate() {
            let hosts = tls.hosts.as_deref().unwrap_or(&[]);
            let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                c.diags.error(
                    &obj,
                    format!("spec.tls[{ti}].secretName"),
                    "no secretName: TLS is not served for these hosts (there is no default certificate)",
                );
                continue;
            };
            if hosts.is_empty() {
                c.diags.error(
                    &obj,
                    format!("spec.tls[{ti}].hosts"),
                    "no hosts: TLS is selected by SNI host, so this entry is not served",
                );
                continue;
            }
            let secret = match c.index.resolve_tls_secret(ns, secret_name) {
                Ok(s) => s,
                Err(e) => {
                    c.diags.error(
                        &obj,
                        format!("spec.tls[{ti}].secretName"),
                        format!(
                            "{e}; TLS is not served for {} (plain HTTP still is)",
                            hosts.join(", ")
                        ),
                    );
                    continue;
                }
            };
            for (hi, h) in hosts.iter().enumerate() {
                if let Err(e) = parse_host(h) {
                    c.diags
                        .error(&obj, format!("spec.tls[{ti}].hosts[{hi}]"), e);
                    continue;
                }
                if let Some(holder) = tls_owner.get(h) {
                    if *holder != owner || c.plan.tls_hosts.get(h) != Some(&secret.name) {
                        c.diags.error(
                            &obj,
                            format!("spec.tls[{ti}].hosts[{hi}]"),
                            format!("TLS for host {h} is already configured by the older Ingress {holder}"),
                        );
                    }
                    continue;
                }
                tls_owner.insert(h.clone(), owner.clone());
                c.plan.tls_hosts.insert(h.clone(), secret.name.clone());
            }
            if c.plan.tls_hosts.values().any(|s| *s == secret.name) {
                c.plan.secrets.insert(secret.name.clone(), secret);
            }
        }
    }
    c.plan.served.sort();
    for routes in c.plan.hosts.values_mut() {
        routes.sort_by(|a, b| a.path.precedence_key().cmp(&b.path.precedence_key()));
    }
    c.plan
}
