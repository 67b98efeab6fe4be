//! One Ingress's own share of lowering, which no other Ingress changes:
//! its annotations parsed, its context (policies, cluster settings, the
//! Secrets and Services they name) resolved, its rules validated and every
//! path's target resolved, each resolution with the backends it adds and
//! what it reports. [`super::memo`] keeps it while the Ingress and the
//! objects it read are unchanged, and arbitrates between Ingresses with it.

use super::hosts::HostRequest;
use super::lower::Target;
use super::{annotation_key, annotations, rules, BackendCache, Collector, IngressContext};
use crate::diagnostics::{Diagnostic, Diagnostics, ObjectRef, Severity};
use crate::model::{Backend, Certificate, HostMatch, PathMatch, WeightedBackend};
use crate::sources::backends::{same_version, BackendIndex, Dep};
use crate::translate::GatewayOptions;
use k8s_openapi::api::networking::v1::{Ingress, IngressServiceBackend, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Where an Ingress stands in the order Ingresses are lowered: main ones
/// before canaries, each oldest first, then by namespace and name (then by
/// position, for copies of one name).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Rank {
    pub canary: bool,
    created: Option<Time>,
    pub namespace: String,
    pub name: String,
    pub copy: usize,
}

/// When a resolution adds a backend: its Ingress's rank, the step (0 the
/// context, 1 the default backend, 2 passthrough, 3 the paths) and the
/// index within the step. Of the backends of one name the earliest is
/// served, as the first one inserted was in one pass over the Ingresses.
pub(super) type Seq = (Arc<Rank>, u8, usize);

/// A resolution's outcome with the backends it adds and what it reports:
/// those count only where the arbitration uses the outcome.
#[derive(Debug)]
pub(super) struct Op<T> {
    pub value: T,
    pub backends: Vec<Arc<Backend>>,
    pub diags: Vec<Diagnostic>,
}

/// One valid path of a rule.
pub(super) struct PreparedPath {
    pub path: PathMatch,
    /// `spec.rules[i].http.paths[j]`.
    pub field: String,
    /// The path's Service backend (named in its custom errors' headers).
    pub service: Option<IngressServiceBackend>,
    /// A main Ingress's redirect or backend; a canary's backend.
    pub target: Op<Target>,
}

/// An `ssl-passthrough` rule host and its first path's backend.
pub(super) struct PassthroughHost {
    pub host: String,
    pub backends: Op<Vec<WeightedBackend>>,
}

/// A `spec.tls` entry whose Secret resolved, with its valid hosts
/// (field, host).
pub(super) struct TlsEntry {
    pub secret: Certificate,
    pub hosts: Vec<(String, String)>,
}

/// What an Ingress whose context resolved brings to the arbitration.
pub(super) struct Body {
    pub cx: IngressContext,
    /// The backends its context adds (`mirror-target`, `default-backend`).
    pub context_backends: Vec<Arc<Backend>>,
    /// `spec.defaultBackend`'s target (main Ingresses).
    pub default_backend: Option<Op<Target>>,
    /// Its valid rule hosts.
    pub hosts: BTreeSet<HostMatch>,
    pub paths: Vec<PreparedPath>,
    /// Each host's paths, as indices into `paths`, in spec order.
    pub by_host: BTreeMap<HostMatch, Vec<usize>>,
    pub host_requests: Vec<HostRequest>,
    /// The `ssl-passthrough` annotation, as a diagnostic field.
    pub passthrough_field: String,
    pub passthrough: Vec<PassthroughHost>,
    /// The host names it asks client certificates of (with `auth-tls-*`),
    /// and the annotation as a diagnostic field.
    pub client_certificates: BTreeSet<String>,
    pub client_certificates_field: String,
    pub tls: Vec<TlsEntry>,
}

/// One Ingress prepared for the arbitration.
pub(super) struct Prepared {
    pub rank: Arc<Rank>,
    /// Prepared to be reused: `annotations` and `spec` are the Ingress's.
    kept: bool,
    /// The Ingress's uid and resourceVersion.
    version: ObjectMeta,
    /// What lowering reads of the Ingress, to tell whether it changed.
    annotations: Option<BTreeMap<String, String>>,
    spec: Option<IngressSpec>,
    /// The Services, EndpointSlices and Secrets it read.
    pub deps: BTreeSet<Dep>,
    /// Reported whenever it is lowered, whatever other Ingresses ask.
    pub diags: Vec<Diagnostic>,
    /// None: nothing of it is served (no spec, rules dropped, or its
    /// context did not resolve).
    pub body: Option<Body>,
}

impl Prepared {
    /// Whether `ing` is the Ingress this was prepared from, as lowering
    /// reads it: the same object version, or the same content.
    pub(super) fn same_source(&self, ing: &Ingress) -> bool {
        let (ns, name) = (&ing.metadata.namespace, &ing.metadata.name);
        if !self.kept
            || ns.as_deref() != Some(self.rank.namespace.as_str())
            || name.as_deref() != Some(self.rank.name.as_str())
        {
            return false;
        }
        if same_version(&self.version, &ing.metadata) {
            return true;
        }
        self.rank.created == ing.metadata.creation_timestamp
            && self.annotations == ing.metadata.annotations
            && self.spec == ing.spec
    }
}

impl Collector<'_, '_> {
    /// `f` as an [`Op`]: what it reports and adds, kept apart (what was
    /// reported before goes to `always`).
    pub(super) fn op<T>(
        &mut self,
        always: &mut Vec<Diagnostic>,
        f: impl FnOnce(&mut Self) -> T,
    ) -> Op<T> {
        always.extend(self.diags.take());
        let value = f(self);
        Op {
            value,
            backends: std::mem::take(&mut self.backends).into_values().collect(),
            diags: self.diags.take(),
        }
    }
}

/// Prepare one Ingress (`copy`: how many of the same namespace and name
/// come before it). `keep`: it may be reused, so what it read is recorded
/// (else it is never [`Prepared::same_source`]).
pub(super) fn prepare(
    ing: &Ingress,
    copy: usize,
    options: &GatewayOptions,
    index: &BackendIndex<'_>,
    cache: &mut BackendCache,
    keep: bool,
) -> Prepared {
    let namespace = ing.metadata.namespace.clone().unwrap_or_default();
    let name = ing.metadata.name.clone().unwrap_or_default();
    let obj = Arc::new(ObjectRef::new("Ingress", &namespace, &name));
    let mut c = Collector {
        index,
        namespaces: options.namespaces.as_ref(),
        diags: Diagnostics::default(),
        backends: BTreeMap::new(),
        cache,
    };
    let mut always = Vec::new();
    let mut lower = || {
        let parsed = annotations::parse(ing.metadata.annotations.as_ref(), &obj, &mut c.diags);
        let canary = parsed.settings.canary.is_some();
        let body = match &ing.spec {
            Some(spec) if !parsed.drop_rules => c
                .context(ing, parsed.settings, &obj)
                .map(|cx| c.body(ing, spec, cx, &mut always)),
            _ => None,
        };
        (canary, body)
    };
    let ((canary, body), deps) = if keep {
        index.recording(lower)
    } else {
        (lower(), BTreeSet::new())
    };
    always.extend(c.diags.take());
    Prepared {
        rank: Arc::new(Rank {
            canary,
            created: ing.metadata.creation_timestamp.clone(),
            namespace,
            name,
            copy,
        }),
        kept: keep,
        version: ObjectMeta {
            uid: ing.metadata.uid.clone(),
            resource_version: ing.metadata.resource_version.clone(),
            ..ObjectMeta::default()
        },
        annotations: if keep {
            ing.metadata.annotations.clone()
        } else {
            None
        },
        spec: if keep { ing.spec.clone() } else { None },
        deps,
        diags: always,
        body,
    }
}

impl Collector<'_, '_> {
    fn body(
        &mut self,
        ing: &Ingress,
        spec: &IngressSpec,
        cx: IngressContext,
        always: &mut Vec<Diagnostic>,
    ) -> Body {
        let context_backends = std::mem::take(&mut self.backends).into_values().collect();
        let canary = cx.settings.canary.is_some();
        let mut default_backend = None;
        if canary {
            if spec.default_backend.is_some() {
                self.diags.push(
                    Severity::Warning,
                    &cx.obj,
                    "spec.defaultBackend",
                    "ignored on a canary Ingress",
                );
            }
        } else if let Some(backend) = &spec.default_backend {
            default_backend = Some(self.op(always, |c| {
                c.target_or_redirect(backend, &cx, "spec.defaultBackend")
            }));
        }
        let note = if canary { "" } else { "; rule not served" };
        let rules = rules::valid_rules(spec, &cx.settings, &cx.obj, note, &mut self.diags);
        let (mut host_requests, mut passthrough_field, mut passthrough) =
            (Vec::new(), String::new(), Vec::new());
        let (mut client_certificates, mut client_certificates_field) =
            (BTreeSet::new(), String::new());
        if !canary {
            host_requests = self.request_hosts(ing, spec, &cx);
            if cx.settings.ssl_passthrough {
                passthrough_field = annotations::field(&annotation_key(ing, "ssl-passthrough"));
                passthrough = self.passthrough_hosts(&rules, &cx, always);
            }
            if cx.client_auth.is_some() {
                (client_certificates, client_certificates_field) =
                    self.client_certificate_names(ing, spec, &rules.hosts, &cx);
            }
        }
        let mut paths = Vec::with_capacity(rules.paths.len());
        let mut by_host: BTreeMap<HostMatch, Vec<usize>> = BTreeMap::new();
        for p in rules.paths {
            let field = format!("{}.backend", p.field);
            let target = self.op(always, |c| {
                if canary {
                    c.target(p.backend, &cx, &field)
                } else {
                    c.target_or_redirect(p.backend, &cx, &field)
                }
            });
            by_host.entry(p.host).or_default().push(paths.len());
            paths.push(PreparedPath {
                path: p.path,
                field: p.field,
                service: p.backend.service.clone(),
                target,
            });
        }
        let tls = if canary {
            Vec::new()
        } else {
            self.tls_entries(spec, &cx)
        };
        Body {
            cx,
            context_backends,
            default_backend,
            hosts: rules.hosts,
            paths,
            by_host,
            host_requests,
            passthrough_field,
            passthrough,
            client_certificates,
            client_certificates_field,
            tls,
        }
    }
}
