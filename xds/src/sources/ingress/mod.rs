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
mod memo;
#[cfg(test)]
mod nginx_rest_tests;
mod prepare;
mod rules;
#[cfg(test)]
mod tests;
mod tls;

use super::backends::{BackendError, BackendIndex};
use crate::diagnostics::{Diagnostics, ObjectRef};
use crate::model::{
    Backend, BackendProtocol, ClientAuth, ClusterSettings, CustomErrors, Mirror, PathMatch,
    Provenance, RoutePolicy,
};
use annotations::IngressSettings;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressServiceBackend, ServiceBackendPort,
};
use lower::{IngressRoute, Target};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub(crate) use memo::IngressMemo;

/// What one Ingress asks for, shared by all its paths.
pub(super) struct IngressContext {
    obj: Arc<ObjectRef>,
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

/// Resolves one Ingress's annotations, backends and Secrets
/// ([`prepare`]): what it reports and the backends it adds are collected
/// here, for the arbitration to use or not.
struct Collector<'a, 'o> {
    index: &'a BackendIndex<'o>,
    /// The tenant's namespaces (None: every namespace is in scope).
    namespaces: Option<&'a BTreeSet<String>>,
    diags: Diagnostics,
    backends: BTreeMap<String, Arc<Backend>>,
    /// The Service port backends resolved during one lowering, by cluster
    /// name and Service port name, with their settings: most paths name a
    /// cluster another path added, whose endpoints are read once.
    cache: &'a mut BackendCache,
}

pub(super) type BackendCache = HashMap<(String, Option<String>), (ClusterSettings, Arc<Backend>)>;

impl Collector<'_, '_> {
    /// The Ingress's settings lowered once; None when its upstream CA does
    /// not resolve (a backend must not be reached unverified when
    /// verification was asked), reported.
    fn context(
        &mut self,
        ing: &Ingress,
        settings: IngressSettings,
        obj: &Arc<ObjectRef>,
    ) -> Option<IngressContext> {
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
            obj: obj.clone(),
            policy: Arc::new(policy),
            owner,
            settings: Arc::new(settings),
            cluster_settings,
            client_auth,
        })
    }

    /// The Ingress's redirect when it has one (its backends are not used,
    /// as nginx's `return` answers before proxying), else [`Self::target`].
    fn target_or_redirect(
        &mut self,
        backend: &IngressBackend,
        cx: &IngressContext,
        field: &str,
    ) -> Target {
        match &cx.settings.redirect {
            Some(r) => Target::Redirect(r.clone()),
            None => self.target(backend, cx, field),
        }
    }

    /// The cluster a backend resolves to, or 503 (reported) when it does not.
    fn target(&mut self, backend: &IngressBackend, cx: &IngressContext, field: &str) -> Target {
        let Some(svc) = &backend.service else {
            let what = if backend.resource.is_some() {
                "resource backends are not supported; use a service backend"
            } else {
                "backend names no service"
            };
            self.diags.error(&cx.obj, field.to_string(), what);
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
                                &cx.obj,
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
                let cached = (main.clone(), port.port_name().map(str::to_string));
                match self.cache.get(&cached).filter(|(s, _)| *s == settings) {
                    Some((_, backend)) => {
                        self.index.read_endpoints(&namespace, &service);
                        self.backends.insert(main.clone(), backend.clone());
                    }
                    None => {
                        let mut backend = self.index.backend(port);
                        if let Some(ip_port) = upstream {
                            backend.endpoints = [ip_port].into();
                        }
                        self.add_backend(backend, &settings);
                        if let Some(backend) = self.backends.get(&main) {
                            self.cache.insert(cached, (settings, backend.clone()));
                        }
                    }
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
                        self.backends
                            .entry(name.clone())
                            .or_insert_with(|| Arc::new(aggregate));
                        Target::Cluster(name)
                    }
                    _ => Target::Cluster(main),
                }
            }
            Err(e) => {
                self.diags.error(
                    &cx.obj,
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
        self.backends
            .entry(name.clone())
            .or_insert_with(|| Arc::new(backend));
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
}

/// A route of the Ingress `cx`.
fn route(cx: &IngressContext, field: String, path: PathMatch, target: Target) -> IngressRoute {
    IngressRoute {
        provenance: Provenance::new(&cx.obj, field),
        rewrite: lower::rewrite(&cx.settings, &path),
        path,
        target,
        policy: cx.policy.clone(),
        canary: None,
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
