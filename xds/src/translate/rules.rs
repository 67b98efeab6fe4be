//! Collecting Ingress rules: class filtering, validation, precedence and
//! conflict arbitration (oldest Ingress wins), TLS hosts and default backend.

use super::annotations::{self, Canary, ClusterSettings, IngressSettings, TlsVersion};
use super::backends::{BackendIndex, ClusterPlan, TlsSecretPlan};
use super::{GatewayOptions, TenantObjects};
use crate::diagnostics::{Diagnostics, ObjectRef};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    /// `use-regex`: an RE2 regex matched case-insensitively against the start
    /// of the path (ingress-nginx's `location ~* "^<path>"`), validated.
    Regex(String),
}

impl PathMatch {
    /// Match length used for precedence: longest first, Exact before Prefix on ties.
    pub(crate) fn precedence_key(&self) -> (std::cmp::Reverse<usize>, u8, &str) {
        match self {
            PathMatch::Exact(p) => (std::cmp::Reverse(p.len()), 0, p),
            PathMatch::Prefix(p) => (std::cmp::Reverse(p.len()), 1, p),
            PathMatch::Regex(p) => (std::cmp::Reverse(p.len()), 2, p),
        }
    }
    fn display(&self) -> String {
        match self {
            PathMatch::Exact(p) => format!("{p} (Exact)"),
            PathMatch::Prefix(p) => format!("{p} (Prefix)"),
            PathMatch::Regex(p) => format!("{p} (regex)"),
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
    /// `app-root`: redirect (302, as ingress-nginx) to this path.
    AppRoot(String),
}

/// A canary Ingress attached to the main route of the same host and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CanaryPlan {
    pub target: Target,
    pub canary: Canary,
    pub source: String,
    pub settings: Arc<IngressSettings>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoutePlan {
    pub path: PathMatch,
    pub target: Target,
    /// `namespace/ingress` that owns this route, for the route name.
    pub source: String,
    /// The owning Ingress's annotations.
    pub settings: Arc<IngressSettings>,
    pub canary: Option<CanaryPlan>,
}

/// The tenant's routing plan, before it is written as Envoy resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub hosts: BTreeMap<HostMatch, Vec<RoutePlan>>,
    pub default_backend: Option<RoutePlan>,
    pub clusters: BTreeMap<String, ClusterPlan>,
    /// SNI host → Envoy secret name.
    pub tls_hosts: BTreeMap<String, String>,
    /// SNI host → minimum TLS version (from the Ingress that owns its TLS).
    pub tls_min_version: BTreeMap<String, TlsVersion>,
    pub secrets: BTreeMap<String, TlsSecretPlan>,
    /// Every Ingress this gateway serves (its class matched), as (namespace, name).
    pub served: Vec<(String, String)>,
    /// TCP proxy listener port → cluster.
    pub tcp: BTreeMap<u16, String>,
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

/// (host, path) → owning Ingress.
type Claims = BTreeMap<(HostMatch, PathMatch), String>;

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
        settings: &ClusterSettings,
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
            Ok(mut cluster) => {
                if !settings.is_default() {
                    // A distinct cluster per settings; default ones keep their name.
                    cluster.name = format!("{}/{}", cluster.name, settings_hash(settings));
                    cluster.settings = settings.clone();
                }
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

    /// A canary Ingress does not conflict with the main one: each of its
    /// paths joins the main route of the same host and path.
    fn attach_canary(
        &mut self,
        ing: &Ingress,
        canary: &Canary,
        settings: &Arc<IngressSettings>,
        cluster_settings: &ClusterSettings,
        claimed: &Claims,
        obj: &ObjectRef,
    ) {
        let ns = obj.namespace.as_str();
        let owner = format!("{ns}/{}", obj.name);
        let Some(spec) = &ing.spec else { return };
        if spec.default_backend.is_some() {
            self.diags.push(
                crate::diagnostics::Severity::Warning,
                obj,
                "spec.defaultBackend",
                "ignored on a canary Ingress",
            );
        }
        for (ri, rule) in spec.rules.iter().flatten().enumerate() {
            let host = match rule.host.as_deref() {
                None | Some("") => HostMatch::Any,
                Some(h) => match parse_host(h) {
                    Ok(h) => h,
                    Err(e) => {
                        self.diags.error(obj, format!("spec.rules[{ri}].host"), e);
                        continue;
                    }
                },
            };
            for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                let path = match path_for(p.path.as_deref(), &p.path_type, settings) {
                    Ok(path) => path,
                    Err(e) => {
                        self.diags
                            .error(obj, field, format!("{e}; path not served"));
                        continue;
                    }
                };
                if !claimed.contains_key(&(host.clone(), path.clone())) {
                    self.diags.error(
                        obj,
                        field,
                        format!(
                            "canary for host {} path {}, which no main Ingress serves; not served",
                            host.display(),
                            path.display()
                        ),
                    );
                    continue;
                }
                let target = self.target(
                    ns,
                    &p.backend,
                    obj,
                    &format!("{field}.backend"),
                    cluster_settings,
                );
                let main = self
                    .plan
                    .hosts
                    .get_mut(&host)
                    .and_then(|routes| routes.iter_mut().find(|r| r.path == path));
                match main {
                    Some(main) if main.canary.is_none() => {
                        main.canary = Some(CanaryPlan {
                            target,
                            canary: canary.clone(),
                            source: owner.clone(),
                            settings: settings.clone(),
                        });
                    }
                    Some(main) => {
                        let holder = main.canary.as_ref().map(|c| c.source.clone());
                        self.diags.error(
                            obj,
                            field,
                            format!(
                                "host {} path {} already has the canary {}; not served",
                                host.display(),
                                path.display(),
                                holder.unwrap_or_default()
                            ),
                        );
                    }
                    None => {}
                }
            }
        }
    }
}

/// The annotation key an Ingress uses for a feature (ours win).
fn annotation_key(ing: &Ingress, suffix: &str) -> String {
    let ours = format!("{}{suffix}", annotations::OURS);
    let has = |k: &str| {
        ing.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(k))
    };
    if has(&ours) {
        ours
    } else {
        format!("{}{suffix}", annotations::NGINX)
    }
}

/// A short, stable hash of non-default cluster settings, for the cluster name.
fn settings_hash(settings: &ClusterSettings) -> String {
    // Debug output of our own plain types is stable.
    hex::encode(&Sha256::digest(format!("{settings:?}").as_bytes())[..4])
}

/// Validate one path by its pathType and the Ingress's regex settings.
fn path_for(
    p: Option<&str>,
    path_type: &str,
    settings: &IngressSettings,
) -> Result<PathMatch, String> {
    let parsed = parse_path(p, path_type)?;
    if !settings.use_regex || path_type == "Exact" {
        if let Some(target) = settings.rewrite_target.as_deref() {
            if annotations::max_group(target) > 0 {
                return Err("rewrite-target uses capture groups but the path is Exact".into());
            }
        }
        return Ok(parsed);
    }
    let raw = p.filter(|p| !p.is_empty()).unwrap_or("/");
    let groups =
        annotations::check_regex(raw).map_err(|e| format!("path {raw:?} (use-regex): {e}"))?;
    if let Some(target) = &settings.rewrite_target {
        let used = annotations::max_group(target);
        if used > groups {
            return Err(format!(
                "rewrite-target uses capture group ${used} but path {raw:?} has only {groups}"
            ));
        }
    }
    Ok(PathMatch::Regex(raw.to_string()))
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
    // Canary Ingresses attach to the main routes, so they come after them all.
    let mut parsed: Vec<(&Ingress, annotations::Parsed)> = ingresses
        .into_iter()
        .map(|ing| {
            let obj = ObjectRef::new(
                "Ingress",
                ing.metadata.namespace.as_deref().unwrap_or_default(),
                ing.metadata.name.as_deref().unwrap_or_default(),
            );
            let p = annotations::parse(ing.metadata.annotations.as_ref(), &obj, diags);
            (ing, p)
        })
        .collect();
    parsed.sort_by_key(|(_, p)| p.settings.canary.is_some());

    let mut c = Collector {
        index,
        diags,
        plan: Plan::default(),
    };
    // (host, path) → owning Ingress, for conflict reports.
    let mut claimed: Claims = BTreeMap::new();
    let mut default_owner: Option<String> = None;
    let mut tls_owner: BTreeMap<String, String> = BTreeMap::new();

    for (ing, parsed) in parsed {
        let ns = ing.metadata.namespace.as_deref().unwrap_or_default();
        let name = ing.metadata.name.as_deref().unwrap_or_default();
        let owner = format!("{ns}/{name}");
        let obj = ObjectRef::new("Ingress", ns, name);
        c.plan.served.push((ns.to_string(), name.to_string()));
        let Some(spec) = &ing.spec else { continue };
        if parsed.drop_rules {
            continue;
        }
        let settings = Arc::new(parsed.settings);
        let mut cluster_settings = settings.cluster();
        if let Some(secret) = &settings.proxy_ssl.secret {
            match c.index.resolve_ca(ns, secret) {
                Ok(ca) if settings.proxy_ssl.verify => cluster_settings.tls_ca = Some(ca),
                Ok(_) => {}
                Err(e) => {
                    // Strict: a backend must not be reached unverified when verification was asked.
                    let key = annotation_key(ing, "proxy-ssl-secret");
                    c.diags.error(
                        &obj,
                        annotations::field(&key),
                        format!("{e}; the Ingress's rules are not served"),
                    );
                    continue;
                }
            }
        }
        if let Some(canary) = &settings.canary {
            c.attach_canary(ing, canary, &settings, &cluster_settings, &claimed, &obj);
            continue;
        }

        if let Some(backend) = &spec.default_backend {
            if let Some(holder) = &default_owner {
                c.diags.error(
                    &obj,
                    "spec.defaultBackend",
                    format!("ignored: the older Ingress {holder} already sets the default backend"),
                );
            } else {
                let target = c.target(ns, backend, &obj, "spec.defaultBackend", &cluster_settings);
                c.plan.default_backend = Some(RoutePlan {
                    path: PathMatch::Prefix("/".into()),
                    target,
                    source: owner.clone(),
                    settings: settings.clone(),
                    canary: None,
                });
                default_owner = Some(owner.clone());
            }
        }

        let mut rule_hosts = BTreeSet::new();
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
            rule_hosts.insert(host.clone());
            for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                let path = match path_for(p.path.as_deref(), &p.path_type, &settings) {
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
                let target = c.target(
                    ns,
                    &p.backend,
                    &obj,
                    &format!("{field}.backend"),
                    &cluster_settings,
                );
                claimed.insert(slot, owner.clone());
                c.plan
                    .hosts
                    .entry(host.clone())
                    .or_default()
                    .push(RoutePlan {
                        path,
                        target,
                        source: owner.clone(),
                        settings: settings.clone(),
                        canary: None,
                    });
            }
        }
        if let Some(root) = &settings.app_root {
            // ingress-nginx answers `/` of every host of the Ingress with a redirect.
            for host in rule_hosts {
                let slot = (host.clone(), PathMatch::Exact("/".into()));
                if let Some(holder) = claimed.get(&slot).filter(|h| **h != owner) {
                    c.diags.error(
                        &obj,
                        annotations::field("nginx.ingress.kubernetes.io/app-root"),
                        format!(
                            "host {} path / is already served by the older Ingress {holder}; app-root is not applied there",
                            host.display()
                        ),
                    );
                    continue;
                }
                let routes = c.plan.hosts.entry(host.clone()).or_default();
                routes.retain(|r| r.path != PathMatch::Exact("/".into()));
                claimed.insert(slot, owner.clone());
                routes.push(RoutePlan {
                    path: PathMatch::Exact("/".into()),
                    target: Target::AppRoot(root.clone()),
                    source: owner.clone(),
                    settings: settings.clone(),
                    canary: None,
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
                c.plan
                    .tls_min_version
                    .insert(h.clone(), settings.tls_min_version);
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
