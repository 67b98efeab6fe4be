//! Host names an Ingress asks for besides its rules' hosts: `server-alias`
//! (more names served by the same routes as its first host) and
//! `from-to-www-redirect` (`www.<host>` ↔ `<host>`). Both are served once
//! every Ingress's own hosts are known, and never take a host over: a name
//! that an Ingress's rule (of any age), another alias or redirect, or
//! another Ingress's wildcard already covers is reported and left alone.

use super::lower::{self, IngressRoute, Target};
use super::memo::Arbiter;
use super::{annotation_key, annotations, rules, Collector, IngressContext};
use crate::diagnostics::{ObjectRef, Severity};
use crate::model::{HostMatch, PathMatch, Provenance, Redirect, SniCertificate};
use crate::sources::ingress::annotations::IngressSettings;
use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Serve this name like `host`.
    Alias(String),
    /// Redirect `www.<host>` to `host` (or `<host>` to `www.<host>`).
    Www,
}

/// One host name an Ingress asked for.
#[derive(Clone, Debug)]
pub(super) struct HostRequest {
    obj: Arc<ObjectRef>,
    owner: String,
    /// One of the Ingress's rule hosts.
    host: String,
    kind: Kind,
    /// The annotation, as a diagnostic field.
    field: String,
}

/// `www.example.com` ↔ `example.com`.
fn www_counterpart(host: &str) -> String {
    match host.strip_prefix("www.") {
        Some(bare) => bare.to_string(),
        None => format!("www.{host}"),
    }
}

/// Whether `*.example.com` covers `name` (exactly one label in front).
fn wildcard_covers(wildcard: &str, name: &str) -> bool {
    wildcard
        .strip_prefix('*')
        .and_then(|suffix| name.strip_suffix(suffix))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

impl Collector<'_, '_> {
    /// Record the aliases and www redirects an Ingress asks for.
    pub(super) fn request_hosts(
        &mut self,
        ing: &Ingress,
        spec: &IngressSpec,
        cx: &IngressContext,
    ) -> Vec<HostRequest> {
        let s = &cx.settings;
        if s.server_aliases.is_empty() && !s.from_to_www {
            return Vec::new();
        }
        // Its exact rule hosts, in spec order.
        let mut hosts: Vec<String> = Vec::new();
        for rule in spec.rules.iter().flatten() {
            if let Some(Ok(HostMatch::Exact(h))) = rule.host.as_deref().map(rules::parse_host) {
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
        }
        let field = |suffix: &str| annotations::field(&annotation_key(ing, suffix));
        let request = |suffix: &str, kind: Kind, host: &str| HostRequest {
            obj: cx.obj.clone(),
            owner: cx.owner.clone(),
            host: host.to_string(),
            kind,
            field: field(suffix),
        };
        for (suffix, wanted) in [
            ("server-alias", !s.server_aliases.is_empty()),
            ("from-to-www-redirect", s.from_to_www),
        ] {
            if wanted && hosts.is_empty() {
                self.diags.push(
                    Severity::Warning,
                    &cx.obj,
                    field(suffix),
                    "ignored: the Ingress has no rule with a host name",
                );
            }
        }
        let mut out = Vec::new();
        if let Some(first) = hosts.first() {
            for alias in &s.server_aliases {
                out.push(request("server-alias", Kind::Alias(alias.clone()), first));
            }
        }
        if s.from_to_www {
            for h in &hosts {
                out.push(request("from-to-www-redirect", Kind::Www, h));
            }
        }
        out
    }
}

impl Arbiter<'_> {
    /// Serve the recorded aliases, then the www redirects (oldest Ingress first).
    pub(super) fn serve_requested_hosts(&mut self) {
        let requests = std::mem::take(&mut self.host_requests);
        let (aliases, www): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .partition(|r| matches!(r.kind, Kind::Alias(_)));
        // Name → the Ingress whose alias or redirect serves it.
        let mut given: BTreeMap<String, String> = BTreeMap::new();
        for r in aliases {
            let Kind::Alias(alias) = &r.kind else {
                continue;
            };
            if let Some(why) = self.taken(alias, &r.owner, &given) {
                let msg = format!("alias {alias} is not served: {why}");
                self.diags
                    .push(Severity::Warning, &r.obj, r.field.clone(), msg);
                continue;
            }
            given.insert(alias.clone(), r.owner.clone());
            if let Some(routes) = self.hosts.get(&HostMatch::Exact(r.host.clone())).cloned() {
                self.hosts.insert(HostMatch::Exact(alias.clone()), routes);
            }
            self.share_tls(&r, alias);
        }
        for r in www {
            let from = www_counterpart(&r.host);
            if rules::parse_host(&from).is_err() {
                continue;
            }
            if self.hosts.get(&HostMatch::Exact(from.clone())).is_some_and(|routes| {
                routes.first().is_some_and(|route| {
                    matches!(&route.target, Target::Redirect(rd) if rd.host.as_deref() == Some(&r.host))
                })
            }) {
                // Another Ingress of the same host asked for the same redirect.
                continue;
            }
            if let Some(why) = self.taken(&from, &r.owner, &given) {
                let msg = format!("no redirect from {from} to {}: {why}", r.host);
                self.diags
                    .push(Severity::Warning, &r.obj, r.field.clone(), msg);
                continue;
            }
            given.insert(from.clone(), r.owner.clone());
            let route = IngressRoute {
                provenance: Provenance::new(&r.obj, r.field.clone()),
                path: PathMatch::Prefix("/".into()),
                // 308 (ingress-nginx's http-redirect-code); scheme, path and
                // query are the request's.
                target: Target::Redirect(Redirect {
                    scheme: None,
                    host: Some(r.host.clone()),
                    port: None,
                    path: None,
                    status: 308,
                    strip_query: false,
                }),
                rewrite: None,
                policy: Arc::new(lower::route_policy(&IngressSettings::default(), &r.owner)),
                canary: None,
            };
            self.hosts
                .insert(HostMatch::Exact(from.clone()), Arc::new(vec![route]));
            self.share_tls(&r, &from);
        }
    }

    /// Why `name` cannot be given to `owner`, when it cannot.
    fn taken(&self, name: &str, owner: &str, given: &BTreeMap<String, String>) -> Option<String> {
        let holder = |h: &str| {
            if h == owner {
                "this Ingress".to_string()
            } else {
                format!("the Ingress {h}")
            }
        };
        if let Some(h) = given.get(name) {
            return Some(format!(
                "{} already serves it as an alias or redirect",
                holder(h)
            ));
        }
        if let Some(h) = self.host_owner.get(&HostMatch::Exact(name.to_string())) {
            return Some(format!("it is a rule host of {}", holder(h)));
        }
        self.host_owner.iter().find_map(|(host, h)| match host {
            HostMatch::Wildcard(w) if wildcard_covers(w, name) => {
                Some(format!("the rule host {w} of {} covers it", holder(h)))
            }
            _ => None,
        })
    }

    /// A new name of a host with TLS is served with the host's certificate
    /// (nginx: the same server block); one with TLS of its own keeps it.
    fn share_tls(&mut self, r: &HostRequest, name: &str) {
        if self.model.tls.contains_key(name) {
            return;
        }
        if let Some(sni) = self.model.tls.get(&r.host).cloned() {
            let sni = SniCertificate {
                provenance: Provenance::new(&r.obj, r.field.clone()),
                ..sni
            };
            self.model.tls.insert(name.to_string(), sni);
        }
    }
}
