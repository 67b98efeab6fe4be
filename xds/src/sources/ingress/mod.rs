//! The Ingress source: class filtering, rules, arbitration (the oldest
//! Ingress wins a host and path), canaries, TLS hosts (client certificates,
//! passthrough), the default backend, and the host names annotations add
//! (aliases, www redirects), lowered into the model.

pub(crate) mod annotations;
mod auth;
#[cfg(test)]
mod auth_tests;
mod canary;
pub(crate) mod class;
#[cfg(test)]
mod custom_errors_tests;
mod hosts;
mod lower;
#[cfg(test)]
mod nginx_rest_tests;
mod rules;
#[cfg(test)]
mod tests;
mod tls;

use super::backends::{BackendError, BackendIndex};
use crate::diagnostics::{Diagnostics, ObjectRef};
use crate::model::{
    Backend, BackendProtocol, ClientAuth, ClusterSettings, CustomErrors, HostMatch, Mirror, Model,
    PathMatch, Provenance, RoutePolicy,
};
use crate::translate::{GatewayOptions, TenantObjects};
use annotations::{IngressSettings, Parsed};
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressServiceBackend, ServiceBackendPort,
};
use lower::{IngressRoute, Target};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// (host, path) → owning Ingress.
type Claims = BTreeMap<(HostMatch, PathMatch), String>;

/// Lower every Ingress of the tenant into `model`, oldest first; returns the
/// Ingresses served (their class matched), as (namespace, name), sorted.
pub(crate) fn lower(
    objects: &TenantObjects,
    options: &GatewayOptions,
    index: &BackendIndex<'_>,
    model: &mut Model,
    diags: &mut Diagnostics,
) -> Vec<(String, String)> {
    let parsed = parse_annotations(class::served_ingresses(objects, options), diags);
    let mut c = Collector {
        index,
        namespaces: options.namespaces.as_ref(),
        diags,
        model,
        hosts: BTreeMap::new(),
        default_backend: None,
        claimed: Claims::new(),
        default_owner: None,
        tls_owner: BTreeMap::new(),
        host_owner: BTreeMap::new(),
        host_requests: Vec::new(),
        client_auth: BTreeMap::new(),
        passthrough_owner: BTreeMap::new(),
    };
    let mut served = Vec::new();
    for (ing, parsed) in parsed {
        let ns = ing.metadata.namespace.as_deref().unwrap_or_default();
        let name = ing.metadata.name.as_deref().unwrap_or_default();
        served.push((ns.to_string(), name.to_string()));
        c.ingress(ing, parsed, &Arc::new(ObjectRef::new("Ingress", ns, name)));
    }
    served.sort();
    c.finish();
    served
}

/// Each Ingress with its parsed annotations; canary Ingresses attach to the
/// main routes, so they come after them all.
fn parse_annotations<'o>(
    ingresses: Vec<&'o Ingress>,
    diags: &mut Diagnostics,
) -> Vec<(&'o Ingress, Parsed)> {
    let mut parsed: Vec<(&Ingress, Parsed)> = ingresses
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
    parsed
}

/// What one Ingress asks for, shared by all its paths.
struct IngressContext<'i> {
    obj: &'i Arc<ObjectRef>,
    /// `namespace/name`.
    owner: String,
    settings: Arc<IngressSettings>,
    policy: Arc<RoutePolicy>,
    cluster_settings: ClusterSettings,
    /// `auth-tls-*` with the CA Secret resolved.
    client_auth: Option<Arc<ClientAuth>>,
    /// The cluster of `default-backend`, resolved.
    fallback: Option<String>,
}

struct Collector<'a, 'o> {
    index: &'a BackendIndex<'o>,
    /// The tenant's namespaces (None: every namespace is in scope).
    namespaces: Option<&'a BTreeSet<String>>,
    diags: &'a mut Diagnostics,
    model: &'a mut Model,
    hosts: BTreeMap<HostMatch, Vec<IngressRoute>>,
    default_backend: Option<IngressRoute>,
    claimed: Claims,
    default_owner: Option<String>,
    /// SNI host → the Ingress that configured its TLS.
    tls_owner: BTreeMap<String, String>,
    /// Rule host → the oldest Ingress with a rule for it.
    host_owner: BTreeMap<HostMatch, String>,
    /// `server-alias` and `from-to-www-redirect` hosts, served once every
    /// Ingress's own hosts are known.
    host_requests: Vec<hosts::HostRequest>,
    /// Host → the client certificates the oldest Ingress asking for them set.
    client_auth: BTreeMap<String, tls::HostClientAuth>,
    /// SNI host → the Ingress whose `ssl-passthrough` passes its TLS through.
    passthrough_owner: BTreeMap<String, String>,
}

impl Collector<'_, '_> {
    fn ingress(&mut self, ing: &Ingress, parsed: Parsed, obj: &Arc<ObjectRef>) {
        let Some(spec) = &ing.spec else { return };
        if parsed.drop_rules {
            return;
        }
        let Some(cx) = self.context(ing, parsed.settings, obj) else {
            return;
        };
        if let Some(canary) = &cx.settings.canary {
            self.attach_canary(spec, canary, &cx);
            return;
        }
        if let Some(backend) = &spec.default_backend {
            self.default_backend(backend, &cx);
        }
        let rules = rules::valid_rules(spec, &cx.settings, obj, "; rule not served", self.diags);
        for host in &rules.hosts {
            self.host_owner
                .entry(host.clone())
                .or_insert_with(|| cx.owner.clone());
        }
        self.request_hosts(ing, spec, &cx);
        if cx.settings.ssl_passthrough {
            self.passthrough(ing, &rules, &cx);
        }
        self.ask_client_certificates(ing, spec, &rules.hosts, &cx);
        for p in rules.paths {
            self.serve_path(p, &cx);
        }
        if let Some(root) = &cx.settings.app_root {
            self.app_root(root, &rules.hosts, &cx);
        }
        self.tls(spec, &cx);
    }

    /// The Ingress's settings lowered once; None when its upstream CA does
    /// not resolve (a backend must not be reached unverified when
    /// verification was asked), reported.
    fn context<'i>(
        &mut self,
        ing: &Ingress,
        settings: IngressSettings,
        obj: &'i Arc<ObjectRef>,
    ) -> Option<IngressContext<'i>> {
        let owner = format!("{}/{}", obj.namespace, obj.name);
        let mut cluster_settings = settings.cluster(&owner);
        if let Some(secret) = &settings.proxy_ssl.secret {
            match self.index.resolve_ca(&obj.namespace, secret) {
                Ok(ca) if settings.proxy_ssl.verify => cluster_settings.tls_ca = Some(ca),
                Ok(_) => {}
                Err(e) => {
                    let key = annotation_key(ing, "proxy-ssl-secret");
                    self.diags.error(
                        obj,
                        annotations::field(&key),
                        format!("{e}; the Ingress's rules are not served"),
                    );
                    return None;
                }
            }
        }
        let client_auth = match &settings.client_certificates {
            None => None,
            Some(c) => match self.client_ca(&obj.namespace, c) {
                Ok(auth) => Some(Arc::new(auth)),
                Err(e) => {
                    let key = annotation_key(ing, "auth-tls-secret");
                    self.diags.error(
                        obj,
                        annotations::field(&key),
                        format!("{e}; the Ingress's rules are not served"),
                    );
                    return None;
                }
            },
        };
        let auth = self.auth_policy(ing, settings.auth.as_ref(), obj).ok()?;
        let mut policy = RoutePolicy {
            auth,
            ..lower::route_policy(&settings, &owner)
        };
        if let Some(m) = &settings.mirror {
            match self.mirror_backend(m) {
                Ok(backend) => {
                    policy.mirrors = vec![Mirror {
                        backend,
                        percent: 100,
                        per_million: None,
                        host: Some(m.host.clone()),
                    }];
                }
                Err(e) => {
                    let key = annotation_key(ing, "mirror-target");
                    self.diags.error(
                        obj,
                        annotations::field(&key),
                        format!("{e}; the Ingress's rules are not served"),
                    );
                    return None;
                }
            }
        }
        let fallback = settings
            .default_backend
            .as_deref()
            .and_then(|svc| self.fallback_backend(ing, obj, svc));
        policy.custom_errors =
            self.custom_errors(ing, obj, &settings.custom_http_errors, fallback.as_deref());
        Some(IngressContext {
            fallback,
            obj,
            policy: Arc::new(policy),
            owner,
            settings: Arc::new(settings),
            cluster_settings,
            client_auth,
        })
    }

    fn route(
        &self,
        cx: &IngressContext<'_>,
        field: String,
        path: PathMatch,
        target: Target,
    ) -> IngressRoute {
        IngressRoute {
            provenance: Provenance::new(cx.obj, field),
            rewrite: lower::rewrite(&cx.settings, &path),
            path,
            target,
            policy: cx.policy.clone(),
            canary: None,
        }
    }

    fn default_backend(&mut self, backend: &IngressBackend, cx: &IngressContext<'_>) {
        let field = "spec.defaultBackend";
        if let Some(holder) = &self.default_owner {
            self.diags.error(
                cx.obj,
                field,
                format!("ignored: the older Ingress {holder} already sets the default backend"),
            );
            return;
        }
        let target = self.target_or_redirect(backend, cx, field);
        let route = self.route(cx, field.into(), PathMatch::Prefix("/".into()), target);
        self.default_backend = Some(route);
        self.default_owner = Some(cx.owner.clone());
    }

    /// A path is served unless an older Ingress (or an earlier path of this
    /// one) already serves its host and path.
    fn serve_path(&mut self, p: rules::RulePath<'_>, cx: &IngressContext<'_>) {
        let slot = (p.host.clone(), p.path.clone());
        if let Some(holder) = self.claimed.get(&slot) {
            let why = if *holder == cx.owner {
                "is listed earlier in this Ingress".to_string()
            } else {
                format!("is already served by the older Ingress {holder}")
            };
            self.diags.error(
                cx.obj,
                p.field,
                format!(
                    "host {} path {} {why}; this path is not served",
                    p.host.display(),
                    p.path.display()
                ),
            );
            return;
        }
        let target = self.target_or_redirect(p.backend, cx, &format!("{}.backend", p.field));
        self.claimed.insert(slot, cx.owner.clone());
        let mut route = self.route(cx, p.field, p.path, target);
        if let (Some(errors), Some(svc)) = (&cx.policy.custom_errors, &p.backend.service) {
            route.policy = Arc::new(RoutePolicy {
                custom_errors: Some(Arc::new(lower::with_service(errors, svc))),
                ..(*cx.policy).clone()
            });
        }
        self.hosts.entry(p.host).or_default().push(route);
    }

    /// ingress-nginx answers `/` of every host of the Ingress with a redirect.
    fn app_root(&mut self, root: &str, hosts: &BTreeSet<HostMatch>, cx: &IngressContext<'_>) {
        let field = annotations::field("nginx.ingress.kubernetes.io/app-root");
        for host in hosts {
            let slot = (host.clone(), PathMatch::Exact("/".into()));
            if let Some(holder) = self.claimed.get(&slot).filter(|h| **h != cx.owner) {
                self.diags.error(
                    cx.obj,
                    field.clone(),
                    format!(
                        "host {} path / is already served by the older Ingress {holder}; app-root is not applied there",
                        host.display()
                    ),
                );
                continue;
            }
            let route = self.route(
                cx,
                field.clone(),
                PathMatch::Exact("/".into()),
                Target::AppRoot(root.to_string()),
            );
            let routes = self.hosts.entry(host.clone()).or_default();
            routes.retain(|r| r.path != PathMatch::Exact("/".into()));
            self.claimed.insert(slot, cx.owner.clone());
            routes.push(route);
        }
    }

    /// The Ingress's redirect when it has one (its backends are not used,
    /// as nginx's `return` answers before proxying), else [`Self::target`].
    fn target_or_redirect(
        &mut self,
        backend: &IngressBackend,
        cx: &IngressContext<'_>,
        field: &str,
    ) -> Target {
        match &cx.settings.redirect {
            Some(r) => Target::Redirect(r.clone()),
            None => self.target(backend, cx, field),
        }
    }

    /// The cluster a backend resolves to, or 503 (reported) when it does not.
    fn target(&mut self, backend: &IngressBackend, cx: &IngressContext<'_>, field: &str) -> Target {
        let Some(svc) = &backend.service else {
            let what = if backend.resource.is_some() {
                "resource backends are not supported; use a service backend"
            } else {
                "backend names no service"
            };
            self.diags.error(cx.obj, field.to_string(), what);
            return Target::Unavailable;
        };
        match self.index.resolve_port(&cx.obj.namespace, svc) {
            Ok(port) => {
                let mut settings = cx.cluster_settings.clone();
                let mut upstream = None;
                if settings.service_upstream {
                    match self.index.cluster_ip(&cx.obj.namespace, svc) {
                        Ok(ip_port) => upstream = Some(ip_port),
                        Err(e) => {
                            settings.service_upstream = false;
                            self.diags.push(
                                crate::diagnostics::Severity::Warning,
                                cx.obj,
                                format!("{field}.service.name"),
                                format!("{e}: service-upstream is not applied, the Service's endpoints are used"),
                            );
                        }
                    }
                }
                let (namespace, service) = (port.namespace.clone(), port.service.clone());
                // Most paths name a cluster an earlier path added: its
                // endpoints are read once, by the first.
                let main = backend_name(&port.name, &settings);
                if !self.model.backends.contains_key(&main) {
                    let mut backend = self.index.backend(port);
                    if let Some(ip_port) = upstream {
                        backend.endpoints = [ip_port].into();
                    }
                    self.add_backend(backend, &settings);
                }
                match &cx.fallback {
                    Some(fallback) if *fallback != main => {
                        let name = format!("{main}|or|{fallback}");
                        let aggregate = Backend {
                            name: name.clone(),
                            namespace,
                            service,
                            endpoints: Default::default(),
                            settings: ClusterSettings::default(),
                            fallbacks: vec![main, fallback.clone()],
                        };
                        self.model.backends.entry(name.clone()).or_insert(aggregate);
                        Target::Cluster(name)
                    }
                    _ => Target::Cluster(main),
                }
            }
            Err(e) => {
                self.diags.error(
                    cx.obj,
                    format!("{field}.service.{}", e.field_suffix()),
                    format!("{e}; the path answers 503"),
                );
                Target::Unavailable
            }
        }
    }

    /// A backend with its settings in the model; its cluster name.
    fn add_backend(&mut self, mut backend: Backend, settings: &ClusterSettings) -> String {
        if !settings.is_default() {
            backend.name = backend_name(&backend.name, settings);
            backend.settings = settings.clone();
        }
        let name = backend.name.clone();
        self.model.backends.entry(name.clone()).or_insert(backend);
        name
    }

    /// The cluster of `default-backend` (its Service's first port); None,
    /// with a warning naming the annotation, when it does not resolve.
    fn fallback_backend(&mut self, ing: &Ingress, obj: &ObjectRef, svc: &str) -> Option<String> {
        let first_port = self
            .index
            .service(&obj.namespace, svc)
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p.first())
            .map(|p| p.port);
        let resolved = match first_port {
            None => Err(format!(
                "Service {svc:?} not found in the Ingress's namespace, or it has no port"
            )),
            Some(port) => {
                let backend = IngressServiceBackend {
                    name: svc.to_string(),
                    port: Some(ServiceBackendPort {
                        number: Some(port),
                        name: None,
                    }),
                };
                self.index
                    .resolve_service(&obj.namespace, &backend)
                    .map_err(|e| e.to_string())
            }
        };
        match resolved {
            Ok(backend) => Some(self.add_backend(backend, &ClusterSettings::default())),
            Err(e) => {
                let key = annotation_key(ing, "default-backend");
                self.diags.push(
                    crate::diagnostics::Severity::Warning,
                    obj,
                    annotations::field(&key),
                    format!("{e}; served without a fallback"),
                );
                None
            }
        }
    }

    /// `custom-http-errors` answered by the `default-backend` cluster; None,
    /// with a warning, when there is none (ingress-nginx would use its
    /// global default backend, which a tenant's gateway does not have).
    fn custom_errors(
        &mut self,
        ing: &Ingress,
        obj: &ObjectRef,
        codes: &[u16],
        fallback: Option<&str>,
    ) -> Option<Arc<CustomErrors>> {
        if codes.is_empty() {
            return None;
        }
        let Some(backend) = fallback else {
            let key = annotation_key(ing, "custom-http-errors");
            self.diags.push(
                crate::diagnostics::Severity::Warning,
                obj,
                annotations::field(&key),
                "ignored: no default-backend Service answers the errors; \
                 the backend's answers reach the client as they are",
            );
            return None;
        };
        Some(Arc::new(lower::custom_errors(obj, codes, backend)))
    }

    /// The cluster of a `mirror-target`: a Service port of the tenant only
    /// (the index holds only the tenant's namespaces).
    fn mirror_backend(&mut self, m: &annotations::MirrorTarget) -> Result<String, String> {
        let svc = IngressServiceBackend {
            name: m.service.clone(),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(m.port)),
                name: None,
            }),
        };
        let backend = self
            .index
            .resolve_service(&m.namespace, &svc)
            .map_err(|e| match e {
                BackendError::ServiceNotFound(_) => format!(
                    "Service {}/{} is not a Service of the tenant (none in its namespaces); \
                     requests are mirrored only to the tenant's Services",
                    m.namespace, m.service
                ),
                e => format!("mirror Service {}/{}: {e}", m.namespace, m.service),
            })?;
        let settings = ClusterSettings {
            protocol: if m.https {
                BackendProtocol::Https
            } else {
                BackendProtocol::Http
            },
            ..ClusterSettings::default()
        };
        Ok(self.add_backend(backend, &settings))
    }

    /// Routes in precedence order, lowered into the model.
    fn finish(mut self) {
        // Before the aliases: they share their host's TLS, client CA included.
        self.apply_client_certificates();
        self.serve_requested_hosts();
        let table = &mut self.model.routes;
        for (host, mut routes) in self.hosts {
            routes.sort_by(|a, b| a.path.precedence_key().cmp(&b.path.precedence_key()));
            table
                .hosts
                .insert(host, routes.into_iter().map(lower::route).collect());
        }
        table.fallback = self.default_backend.map(lower::route);
        self.model.passthrough.sort_by(|a, b| a.name.cmp(&b.name));
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

/// The cluster name of a Service port's cluster with these settings: a
/// distinct cluster per settings; default ones keep the port's name.
fn backend_name(port_cluster: &str, settings: &ClusterSettings) -> String {
    if settings.is_default() {
        port_cluster.to_string()
    } else {
        format!("{port_cluster}/{}", settings_hash(settings))
    }
}

/// A short, stable hash of non-default cluster settings, for the cluster name.
fn settings_hash(settings: &ClusterSettings) -> String {
    // Debug output of our own plain types is stable. Fields added later are
    // left out while unset, so clusters named before them keep their names.
    let mut text = format!("{settings:?}");
    for unset in [", max_requests: None", ", service_upstream: false"] {
        text = text.replacen(unset, "", 1);
    }
    hex::encode(&Sha256::digest(text.as_bytes())[..4])
}
