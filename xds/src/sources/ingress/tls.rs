//! TLS hosts: SNI host → certificate from a Secret in the Ingress's own
//! namespace; the oldest Ingress configuring a host wins it. Client
//! certificates (`auth-tls-*`) are the host's: the oldest Ingress asking
//! for them for a host sets them, for every Ingress of the host (nginx's
//! server block). `ssl-passthrough` hosts are another Ingress's to pass
//! through or terminate, never both.

use super::lower::{IngressRoute, Target};
use super::memo::Arbiter;
use super::prepare::{Body, PassthroughHost, Rank, TlsEntry};
use super::{annotation_key, annotations, rules, Collector, IngressContext};
use crate::diagnostics::{Diagnostic, ObjectRef, Severity};
use crate::model::{
    ClientAuth, ClientVerify, HostMatch, PathMatch, Provenance, SniCertificate, TcpChain,
    WeightedBackend,
};
use crate::sources::ingress::annotations::ClientCertificates;
use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The client certificates one Ingress set for a host.
pub(super) struct HostClientAuth {
    obj: Arc<ObjectRef>,
    owner: String,
    /// The `auth-tls-secret` annotation, as a diagnostic field.
    field: String,
    auth: Arc<ClientAuth>,
}

impl Collector<'_, '_> {
    /// The Ingress's TLS entries whose Secret resolves, with their valid
    /// hosts; the others reported.
    pub(super) fn tls_entries(&mut self, spec: &IngressSpec, cx: &IngressContext) -> Vec<TlsEntry> {
        let obj = &cx.obj;
        let mut out = Vec::new();
        for (ti, tls) in spec.tls.iter().flatten().enumerate() {
            let hosts = tls.hosts.as_deref().unwrap_or(&[]);
            let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                self.diags.error(
                    obj,
                    format!("spec.tls[{ti}].secretName"),
                    "no secretName: TLS is not served for these hosts (there is no default certificate)",
                );
                continue;
            };
            if hosts.is_empty() {
                self.diags.error(
                    obj,
                    format!("spec.tls[{ti}].hosts"),
                    "no hosts: TLS is selected by SNI host, so this entry is not served",
                );
                continue;
            }
            let secret = match self.index.resolve_tls_secret(&obj.namespace, secret_name) {
                Ok(s) => s,
                Err(e) => {
                    self.diags.error(
                        obj,
                        format!("spec.tls[{ti}].secretName"),
                        format!(
                            "{e}; TLS is not served for {} (plain HTTP still is)",
                            hosts.join(", ")
                        ),
                    );
                    continue;
                }
            };
            let mut valid = Vec::new();
            for (hi, h) in hosts.iter().enumerate() {
                let field = format!("spec.tls[{ti}].hosts[{hi}]");
                match rules::parse_host(h) {
                    Ok(_) => valid.push((field, h.clone())),
                    Err(e) => self.diags.error(obj, field, e),
                }
            }
            out.push(TlsEntry {
                secret,
                hosts: valid,
            });
        }
        out
    }
}

impl Arbiter<'_> {
    /// A TLS entry's hosts: the oldest Ingress configuring a host wins it.
    pub(super) fn tls(&mut self, cx: &IngressContext, entry: &TlsEntry) {
        let obj = &cx.obj;
        let secret = &entry.secret;
        for (field, h) in &entry.hosts {
            if let Some(holder) = self.passthrough_owner.get(h) {
                let (sev, msg) = if *holder == cx.owner {
                    (
                        Severity::Warning,
                        format!("ignored: ssl-passthrough sends TLS for host {h} to the backend, which presents its own certificate"),
                    )
                } else {
                    (
                        Severity::Error,
                        format!("TLS for host {h} is passed through to its backend by the older Ingress {holder} (ssl-passthrough); not terminated here"),
                    )
                };
                self.diags.push(sev, obj, field.clone(), msg);
                continue;
            }
            if let Some(holder) = self.tls_owner.get(h) {
                let same_certificate = self
                    .model
                    .tls
                    .get(h)
                    .is_some_and(|sni| sni.certificate == secret.name);
                if *holder != cx.owner || !same_certificate {
                    self.diags.error(
                        obj,
                        field.clone(),
                        format!(
                            "TLS for host {h} is already configured by the older Ingress {holder}"
                        ),
                    );
                }
                continue;
            }
            self.tls_owner.insert(h.clone(), cx.owner.clone());
            let sni = SniCertificate {
                certificate: secret.name.clone(),
                min_version: cx.settings.tls_min_version,
                client_auth: None,
                provenance: Provenance::new(obj, field.clone()),
            };
            self.model.tls.insert(h.clone(), sni);
            self.tls_certificates.insert(secret.name.clone());
        }
        // Its certificate is served when any host uses it (an older
        // Ingress's included).
        if self.tls_certificates.contains(&secret.name) {
            self.model
                .certificates
                .insert(secret.name.clone(), secret.clone());
        }
    }
}

impl Collector<'_, '_> {
    /// The CA (and CRL) of `auth-tls-secret`.
    pub(super) fn client_ca(
        &self,
        namespace: &str,
        c: &ClientCertificates,
    ) -> Result<ClientAuth, String> {
        Ok(ClientAuth {
            secret: format!("{namespace}/{}", c.secret),
            ca: self.index.resolve_ca(namespace, &c.secret)?,
            crl: self.index.resolve_crl(namespace, &c.secret)?,
            verify: c.verify,
            max_depth: c.depth,
            error_page: c.error_page.clone(),
        })
    }

    /// The host names an Ingress asks client certificates of (its rules'
    /// and its TLS entries'), and the annotation as a diagnostic field.
    pub(super) fn client_certificate_names(
        &mut self,
        ing: &Ingress,
        spec: &IngressSpec,
        hosts: &BTreeSet<HostMatch>,
        cx: &IngressContext,
    ) -> (BTreeSet<String>, String) {
        let field = annotations::field(&annotation_key(ing, "auth-tls-secret"));
        let names: BTreeSet<String> = hosts
            .iter()
            .filter(|h| **h != HostMatch::Any)
            .map(|h| h.display().to_string())
            .chain(
                spec.tls
                    .iter()
                    .flatten()
                    .flat_map(|t| t.hosts.iter().flatten())
                    .filter(|h| rules::parse_host(h).is_ok())
                    .cloned(),
            )
            .collect();
        if names.is_empty() {
            self.diags.push(
                Severity::Warning,
                &cx.obj,
                field.clone(),
                "ignored: the Ingress has no host name (client certificates are asked per TLS host)",
            );
        }
        (names, field)
    }
}

impl Arbiter<'_> {
    /// Record the client certificates an Ingress asks of its hosts; a
    /// host keeps the oldest Ingress's.
    pub(super) fn ask_client_certificates(&mut self, body: &Body, auth: &Arc<ClientAuth>) {
        let cx = &body.cx;
        let field = &body.client_certificates_field;
        for name in &body.client_certificates {
            match self.client_auth.get(name) {
                Some(held) if held.auth != *auth => {
                    let msg = format!(
                        "host {name} already asks for client certificates with other settings, set by the older Ingress {}; those apply to the host",
                        held.owner
                    );
                    self.diags.error(&cx.obj, field.clone(), msg);
                }
                Some(_) => {}
                None => {
                    let held = HostClientAuth {
                        obj: cx.obj.clone(),
                        owner: cx.owner.clone(),
                        field: field.clone(),
                        auth: auth.clone(),
                    };
                    self.client_auth.insert(name.clone(), held);
                }
            }
        }
    }

    /// Client certificates onto the hosts' TLS. A host with `on` but no TLS
    /// (no certificate could be asked) answers 503 rather than serve
    /// without them.
    pub(super) fn apply_client_certificates(&mut self) {
        for (name, held) in std::mem::take(&mut self.client_auth) {
            if let Some(sni) = self.model.tls.get_mut(&name) {
                sni.client_auth = Some(held.auth.clone());
                continue;
            }
            let why = if self.passthrough_owner.contains_key(&name) {
                "its TLS is passed through to the backend (ssl-passthrough)"
            } else {
                "it has no TLS certificate (spec.tls)"
            };
            if held.auth.verify != ClientVerify::On {
                let msg = format!("host {name}: no client certificates are asked: {why}");
                self.diags
                    .push(Severity::Warning, &held.obj, held.field.clone(), msg);
                continue;
            }
            let msg = format!(
                "host {name}: client certificates cannot be asked: {why}; the host answers 503 (plain HTTP included)"
            );
            self.diags.error(&held.obj, held.field.clone(), msg);
            let host = match rules::parse_host(&name) {
                Ok(h) => h,
                Err(_) => continue,
            };
            if let Some(routes) = self.hosts.get_mut(&host) {
                let policy = match routes.first() {
                    Some(r) => r.policy.clone(),
                    None => continue,
                };
                *routes = Arc::new(vec![IngressRoute {
                    provenance: Provenance::new(&held.obj, held.field.clone()),
                    path: PathMatch::Prefix("/".into()),
                    target: Target::Unavailable,
                    rewrite: None,
                    policy,
                    canary: None,
                }]);
            }
        }
    }

    /// A passthrough host, unless an older Ingress terminates or passes
    /// through its TLS.
    pub(super) fn passthrough(
        &mut self,
        rank: &Arc<Rank>,
        body: &Body,
        i: usize,
        p: &PassthroughHost,
    ) {
        let cx = &body.cx;
        let host = &p.host;
        let holder = self
            .tls_owner
            .get(host)
            .map(|h| format!("TLS for host {host} is already terminated by the older Ingress {h}"))
            .or_else(|| {
                self.passthrough_owner.get(host).map(|h| {
                    format!(
                        "TLS for host {host} is already passed through by the older Ingress {h}"
                    )
                })
            });
        if let Some(why) = holder {
            self.diags.error(
                &cx.obj,
                body.passthrough_field.clone(),
                format!("{why}; not passed through here"),
            );
            return;
        }
        let backends = self.apply(&p.backends, (rank.clone(), 2, i));
        self.passthrough_owner
            .insert(host.clone(), cx.owner.clone());
        self.model.passthrough.push(TcpChain {
            name: format!("passthrough|{host}"),
            server_names: vec![host.clone()],
            certificates: vec![],
            backends,
        });
    }
}

impl Collector<'_, '_> {
    /// `ssl-passthrough`: each rule host's TLS goes, untouched, to the
    /// backend of its first path (as ingress-nginx, which ignores paths).
    pub(super) fn passthrough_hosts(
        &mut self,
        rules: &rules::Rules<'_>,
        cx: &IngressContext,
        always: &mut Vec<Diagnostic>,
    ) -> Vec<PassthroughHost> {
        let mut done: BTreeSet<&HostMatch> = BTreeSet::new();
        let mut out = Vec::new();
        for p in &rules.paths {
            if p.host == HostMatch::Any {
                let msg = "ignored for this rule: it has no host, and TLS is passed through by SNI host name";
                self.diags
                    .push(Severity::Warning, &cx.obj, p.field.clone(), msg);
                continue;
            }
            let host = p.host.display().to_string();
            if !done.insert(&p.host) {
                let msg = format!(
                    "not used for TLS: ssl-passthrough sends every TLS connection for {host} to the first path's backend (ingress-nginx ignores paths too); plain HTTP still uses this path"
                );
                self.diags
                    .push(Severity::Warning, &cx.obj, p.field.clone(), msg);
                continue;
            }
            let backends = self.op(always, |c| c.passthrough_backend(p, cx));
            out.push(PassthroughHost { host, backends });
        }
        out
    }

    /// A plain TCP cluster for the path's Service port (none: the
    /// connections are closed), reported when it does not resolve.
    fn passthrough_backend(
        &mut self,
        p: &rules::RulePath<'_>,
        cx: &IngressContext,
    ) -> Vec<WeightedBackend> {
        let field = format!("{}.backend", p.field);
        let Some(svc) = &p.backend.service else {
            let msg = "backend names no service; TLS connections for the host are closed";
            self.diags.error(&cx.obj, field, msg);
            return vec![];
        };
        match self.index.resolve_service(&cx.obj.namespace, svc) {
            Ok(backend) => {
                let name = backend.name.clone();
                self.backends
                    .entry(name.clone())
                    .or_insert_with(|| Arc::new(backend));
                vec![WeightedBackend {
                    backend: name,
                    weight: 1,
                    headers: None,
                }]
            }
            Err(e) => {
                self.diags.error(
                    &cx.obj,
                    format!("{field}.service.{}", e.field_suffix()),
                    format!("{e}; TLS connections for the host are closed"),
                );
                vec![]
            }
        }
    }
}
