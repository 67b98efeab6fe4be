//! The arbitration between a tenant's Ingresses, over their prepared
//! shares ([`super::prepare`]), and what it keeps from one lowering to
//! the next.
//!
//! An Ingress is prepared again only when it changed (as lowering reads
//! it: annotations, creation time, spec) or one of the Services,
//! EndpointSlices or Secrets it read did (added, removed or changed); a
//! change of the gateway's options forgets everything. The arbitration
//! that is the tenant's (the default backend, TLS, passthrough and client
//! certificates per host, the hosts annotations ask for) runs over every
//! Ingress each time, cheaply; a host's paths (claims: the oldest Ingress
//! wins a path; app-root; canaries) are arbitrated again only when the
//! Ingresses of that host or their prepared shares changed, and only such
//! hosts are lowered into the model's route table again.

use super::hosts::HostRequest;
use super::lower::{self, IngressRoute, Target};
use super::prepare::{prepare, Body, Op, Prepared, PreparedPath, Rank, Seq};
use super::tls::HostClientAuth;
use super::{annotations, class, route, BackendCache, IngressContext};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{Backend, HostMatch, Model, PathMatch, RoutePolicy};
use crate::sources::backends::{BackendIndex, Seen};
use crate::translate::{GatewayOptions, TenantObjects};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What one lowering of the tenant's Ingresses keeps for the next.
#[derive(Default)]
pub(crate) struct IngressMemo {
    /// Keep anything: false for a lowering that is the only one.
    keep: bool,
    options: Option<GatewayOptions>,
    /// The Services, EndpointSlices and Secrets of the last lowering.
    seen: Seen,
    /// Each Ingress as last prepared, by `namespace/name` (and copy).
    prepared: HashMap<String, Copies>,
    /// The number of the lowering in progress.
    epoch: u64,
    /// The served Ingresses of the last lowering, sorted, and in lowering order.
    served: Vec<(String, String)>,
    order: Vec<Arc<Rank>>,
    hosts: BTreeMap<HostMatch, HostMemo>,
    /// The backends the hosts' paths add: name → by when they were added.
    votes: BTreeMap<String, BTreeMap<Seq, Arc<Backend>>>,
    /// The routes each host of the model's route table was lowered from.
    lowered: BTreeMap<HostMatch, Arc<Vec<IngressRoute>>>,
}

/// The Ingresses of one namespace and name (normally one).
#[derive(Default)]
struct Copies {
    /// The lowering that last saw them.
    epoch: u64,
    /// How many that lowering saw.
    seen: usize,
    prepared: Vec<Arc<Prepared>>,
}

/// One host's arbitrated paths and the Ingresses they came from.
struct HostMemo {
    /// The Ingresses with a rule for the host, in lowering order.
    ingresses: Vec<Arc<Prepared>>,
    out: HostOut,
}

/// A host's paths, arbitrated: its routes (before precedence order), what
/// the arbitration reported and the backends the served paths add.
#[derive(Default)]
struct HostOut {
    routes: Arc<Vec<IngressRoute>>,
    diags: Vec<Diagnostic>,
    backends: Vec<(Seq, Arc<Backend>)>,
}

/// What a lowering gives besides the model.
pub(crate) struct IngressLowering {
    /// Ingresses of this gateway's class, as (namespace, name), sorted.
    pub served: Vec<(String, String)>,
    /// The hosts whose routes in the model were lowered again (the others
    /// are the routes of the last lowering, untouched).
    pub relowered: BTreeSet<HostMatch>,
}

impl IngressMemo {
    /// A memo that keeps what each lowering can reuse for the next.
    pub(crate) fn keeping() -> Self {
        Self {
            keep: true,
            ..Self::default()
        }
    }

    /// Lower every Ingress of the tenant into `model`, oldest first. The
    /// model's route table must be the one of the last call (or empty).
    pub(crate) fn lower(
        &mut self,
        objects: &TenantObjects,
        options: &GatewayOptions,
        index: &BackendIndex<'_>,
        model: &mut Model,
        diags: &mut Diagnostics,
    ) -> IngressLowering {
        if self.keep {
            if self.options.as_ref() != Some(options) {
                *self = Self {
                    options: Some(options.clone()),
                    ..Self::keeping()
                };
            }
            let changed = index.changes_since(&mut self.seen);
            if !changed.is_empty() {
                for copies in self.prepared.values_mut() {
                    copies.prepared.retain(|p| p.deps.is_disjoint(&changed));
                }
            }
        }
        let ingresses = self.prepare(objects, options, index);
        let served = self.served(&ingresses);

        let mut arb = Arbiter::new(model, diags);
        for p in &ingresses {
            arb.ingress(p);
        }
        if !arb.host_requests.is_empty() {
            arb.host_owners(&ingresses);
        }
        self.lower_hosts(&ingresses, &mut arb);
        arb.apply_client_certificates();
        arb.serve_requested_hosts();
        let Arbiter {
            model,
            backends,
            hosts,
            default_backend,
            ..
        } = arb;
        let relowered = self.lower_routes(hosts, model);
        model.routes.fallback = default_backend.map(lower::route);
        model.passthrough.sort_by(|a, b| a.name.cmp(&b.name));
        model.backends = self.backends(backends);
        IngressLowering { served, relowered }
    }

    /// The served Ingresses, prepared (again when they or what they read
    /// changed), in lowering order: main ones, then canaries, oldest first.
    fn prepare(
        &mut self,
        objects: &TenantObjects,
        options: &GatewayOptions,
        index: &BackendIndex<'_>,
    ) -> Vec<Arc<Prepared>> {
        self.epoch += 1;
        let epoch = self.epoch;
        let mut cache = BackendCache::new();
        let mut out = Vec::new();
        let mut key = String::new();
        for ing in class::served_ingresses(objects, options) {
            let ns = ing.metadata.namespace.as_deref().unwrap_or_default();
            let name = ing.metadata.name.as_deref().unwrap_or_default();
            key.clear();
            key.extend([ns, "/", name]);
            let copies = match self.prepared.get_mut(key.as_str()) {
                Some(c) => c,
                None => self.prepared.entry(key.clone()).or_default(),
            };
            if copies.epoch != epoch {
                copies.epoch = epoch;
                copies.seen = 0;
            }
            let copy = copies.seen;
            copies.seen += 1;
            let p = match copies.prepared.get(copy) {
                Some(p) if p.rank.copy == copy && p.same_source(ing) => p.clone(),
                _ => {
                    let p = Arc::new(prepare(ing, copy, options, index, &mut cache, self.keep));
                    if self.keep {
                        copies.prepared.truncate(copy);
                        copies.prepared.push(p.clone());
                    }
                    p
                }
            };
            out.push(p);
        }
        self.prepared.retain(|_, c| {
            c.prepared.truncate(c.seen);
            c.epoch == epoch && !c.prepared.is_empty()
        });
        // Canaries attach to the main routes: after them all.
        out.sort_by_key(|p| p.rank.canary);
        out
    }

    /// The served Ingresses as (namespace, name), sorted: the last
    /// lowering's when the same Ingresses are lowered in the same order.
    fn served(&mut self, ingresses: &[Arc<Prepared>]) -> Vec<(String, String)> {
        let same = self.keep
            && self.order.len() == ingresses.len()
            && self.order.iter().zip(ingresses).all(|(r, p)| {
                Arc::ptr_eq(r, &p.rank)
                    || (r.namespace == p.rank.namespace && r.name == p.rank.name)
            });
        if !same {
            let mut served: Vec<(String, String)> = ingresses
                .iter()
                .map(|p| (p.rank.namespace.clone(), p.rank.name.clone()))
                .collect();
            served.sort();
            if !self.keep {
                return served;
            }
            self.served = served;
        }
        self.order = ingresses.iter().map(|p| p.rank.clone()).collect();
        self.served.clone()
    }

    /// Every host's paths, arbitrated again where its Ingresses changed.
    fn lower_hosts(&mut self, ingresses: &[Arc<Prepared>], arb: &mut Arbiter<'_>) {
        let mut by_host: BTreeMap<&HostMatch, Vec<&Arc<Prepared>>> = BTreeMap::new();
        for p in ingresses {
            let Some(body) = &p.body else { continue };
            // A main Ingress's hosts without paths still get its app-root.
            let hosts: Box<dyn Iterator<Item = &HostMatch>> = if p.rank.canary {
                Box::new(body.by_host.keys())
            } else {
                Box::new(body.hosts.iter())
            };
            for host in hosts {
                by_host.entry(host).or_default().push(p);
            }
        }
        if !self.keep {
            for (host, ingresses) in by_host {
                let out = lower_host(host, &ingresses);
                arb.diags.extend(&out.diags);
                for (seq, b) in out.backends {
                    arb.add_earliest(seq, b);
                }
                if !out.routes.is_empty() {
                    arb.hosts.insert(host.clone(), out.routes);
                }
            }
            return;
        }
        // Old and new hosts side by side (both in host order). The hosts
        // whose Ingresses changed lose their backends first: a path that
        // moved between hosts keeps its `Seq`.
        let mut old = std::mem::take(&mut self.hosts).into_iter().peekable();
        let mut hosts = Vec::with_capacity(by_host.len());
        for (host, ingresses) in by_host {
            while let Some((gone, memo)) = old.next_if(|(h, _)| h < host) {
                drop(gone);
                unvote(&mut self.votes, &memo.out);
            }
            let kept = old.next_if(|(h, _)| h == host).and_then(|(_, memo)| {
                let same = memo.ingresses.len() == ingresses.len()
                    && memo
                        .ingresses
                        .iter()
                        .zip(&ingresses)
                        .all(|(a, b)| Arc::ptr_eq(a, b));
                if !same {
                    unvote(&mut self.votes, &memo.out);
                }
                same.then_some(memo)
            });
            hosts.push((host, ingresses, kept));
        }
        for (_, memo) in old {
            unvote(&mut self.votes, &memo.out);
        }
        let mut memos = Vec::with_capacity(hosts.len());
        let mut routes = Vec::with_capacity(hosts.len());
        for (host, ingresses, kept) in hosts {
            let memo = kept.unwrap_or_else(|| {
                let out = lower_host(host, &ingresses);
                for (seq, b) in &out.backends {
                    self.votes
                        .entry(b.name.clone())
                        .or_default()
                        .insert(seq.clone(), b.clone());
                }
                HostMemo {
                    ingresses: ingresses.iter().map(|p| (*p).clone()).collect(),
                    out,
                }
            });
            arb.diags.extend(&memo.out.diags);
            if !memo.out.routes.is_empty() {
                routes.push((host.clone(), memo.out.routes.clone()));
            }
            memos.push((host.clone(), memo));
        }
        self.hosts = memos.into_iter().collect();
        arb.hosts = routes.into_iter().collect();
    }

    /// The model's route table made of `hosts`: a host whose routes are
    /// those it was lowered from last time is left as it is. Returns the
    /// hosts lowered again.
    fn lower_routes(
        &mut self,
        hosts: BTreeMap<HostMatch, Arc<Vec<IngressRoute>>>,
        model: &mut Model,
    ) -> BTreeSet<HostMatch> {
        // The old table and what it was lowered from, side by side with
        // the new routes (all in host order).
        let mut old_table = std::mem::take(&mut model.routes.hosts)
            .into_iter()
            .peekable();
        let mut old_lowered = std::mem::take(&mut self.lowered).into_iter().peekable();
        let (mut table, mut lowered) = (Vec::with_capacity(hosts.len()), Vec::new());
        let mut relowered = BTreeSet::new();
        for (host, routes) in hosts {
            while old_table.next_if(|(h, _)| *h < host).is_some() {}
            while old_lowered.next_if(|(h, _)| *h < host).is_some() {}
            let was = old_table.next_if(|(h, _)| *h == host);
            let from = old_lowered.next_if(|(h, _)| *h == host);
            match (was, from) {
                (Some(was), Some(from)) if Arc::ptr_eq(&from.1, &routes) => {
                    table.push(was);
                    lowered.push(from);
                    continue;
                }
                _ => {}
            }
            let mut sorted = if self.keep {
                lowered.push((host.clone(), routes.clone()));
                (*routes).clone()
            } else {
                Arc::unwrap_or_clone(routes)
            };
            sorted.sort_by(|a, b| a.path.precedence_key().cmp(&b.path.precedence_key()));
            table.push((host.clone(), sorted.into_iter().map(lower::route).collect()));
            relowered.insert(host);
        }
        model.routes.hosts = table.into_iter().collect();
        self.lowered = lowered.into_iter().collect();
        relowered
    }

    /// The model's backends: of each name the earliest added, whether by
    /// a host's paths or by the tenant-wide arbitration (`tenant`).
    fn backends(&self, tenant: BTreeMap<String, (Seq, Arc<Backend>)>) -> BTreeMap<String, Backend> {
        let mut out = tenant;
        for (name, by_seq) in &self.votes {
            let Some((seq, b)) = by_seq.first_key_value() else {
                continue;
            };
            match out.get(name) {
                Some((earlier, _)) if earlier < seq => {}
                _ => {
                    out.insert(name.clone(), (seq.clone(), b.clone()));
                }
            }
        }
        out.into_iter()
            .map(|(name, (_, b))| (name, Arc::unwrap_or_clone(b)))
            .collect()
    }
}

fn unvote(votes: &mut BTreeMap<String, BTreeMap<Seq, Arc<Backend>>>, out: &HostOut) {
    for (seq, b) in &out.backends {
        if let Some(by_seq) = votes.get_mut(&b.name) {
            by_seq.remove(seq);
            if by_seq.is_empty() {
                votes.remove(&b.name);
            }
        }
    }
}

/// The arbitration of one lowering that is the tenant's, not a host's.
pub(super) struct Arbiter<'m> {
    pub(super) model: &'m mut Model,
    pub(super) diags: &'m mut Diagnostics,
    /// Backends added by contexts, default backends and passthrough hosts
    /// (and without a memo, by the hosts' paths).
    backends: BTreeMap<String, (Seq, Arc<Backend>)>,
    /// Each host's routes (arbitrated), before precedence order.
    pub(super) hosts: BTreeMap<HostMatch, Arc<Vec<IngressRoute>>>,
    default_backend: Option<IngressRoute>,
    default_owner: Option<String>,
    /// SNI host → the Ingress that configured its TLS.
    pub(super) tls_owner: BTreeMap<String, String>,
    /// The certificates of `model.tls`.
    pub(super) tls_certificates: BTreeSet<String>,
    /// Rule host → the oldest Ingress with a rule for it.
    pub(super) host_owner: BTreeMap<HostMatch, String>,
    /// `server-alias` and `from-to-www-redirect` hosts, served once every
    /// Ingress's own hosts are known.
    pub(super) host_requests: Vec<HostRequest>,
    /// Host → the client certificates the oldest Ingress asking for them set.
    pub(super) client_auth: BTreeMap<String, HostClientAuth>,
    /// SNI host → the Ingress whose `ssl-passthrough` passes its TLS through.
    pub(super) passthrough_owner: BTreeMap<String, String>,
}

impl<'m> Arbiter<'m> {
    fn new(model: &'m mut Model, diags: &'m mut Diagnostics) -> Self {
        Self {
            model,
            diags,
            backends: BTreeMap::new(),
            hosts: BTreeMap::new(),
            default_backend: None,
            default_owner: None,
            tls_owner: BTreeMap::new(),
            tls_certificates: BTreeSet::new(),
            host_owner: BTreeMap::new(),
            host_requests: Vec::new(),
            client_auth: BTreeMap::new(),
            passthrough_owner: BTreeMap::new(),
        }
    }

    /// An [`Op`]'s outcome, reported and its backends added (the earliest
    /// of a name is kept).
    pub(super) fn apply<T: Clone>(&mut self, op: &Op<T>, seq: Seq) -> T {
        self.diags.extend(&op.diags);
        for b in &op.backends {
            self.add_earliest(seq.clone(), b.clone());
        }
        op.value.clone()
    }

    /// A backend, unless one of its name was added earlier.
    fn add_earliest(&mut self, seq: Seq, b: Arc<Backend>) {
        match self.backends.get(&b.name) {
            Some((earlier, _)) if *earlier <= seq => {}
            _ => {
                self.backends.insert(b.name.clone(), (seq, b));
            }
        }
    }

    /// The tenant-wide share of one Ingress, in lowering order.
    fn ingress(&mut self, p: &Prepared) {
        self.diags.extend(&p.diags);
        let Some(body) = &p.body else { return };
        let context = Op {
            value: (),
            backends: body.context_backends.clone(),
            diags: Vec::new(),
        };
        self.apply(&context, (p.rank.clone(), 0, 0));
        let cx = &body.cx;
        if cx.settings.canary.is_some() {
            return;
        }
        if let Some(target) = &body.default_backend {
            self.default_backend(&p.rank, target, cx);
        }
        self.host_requests
            .extend(body.host_requests.iter().cloned());
        for (i, host) in body.passthrough.iter().enumerate() {
            self.passthrough(&p.rank, body, i, host);
        }
        if let Some(auth) = &cx.client_auth {
            self.ask_client_certificates(body, auth);
        }
        for entry in &body.tls {
            self.tls(cx, entry);
        }
    }

    /// Each rule host's oldest (main) Ingress, for the hosts annotations ask for.
    fn host_owners(&mut self, ingresses: &[Arc<Prepared>]) {
        for p in ingresses.iter().filter(|p| !p.rank.canary) {
            let Some(body) = &p.body else { continue };
            for host in &body.hosts {
                self.host_owner
                    .entry(host.clone())
                    .or_insert_with(|| body.cx.owner.clone());
            }
        }
    }

    fn default_backend(&mut self, rank: &Arc<Rank>, target: &Op<Target>, cx: &IngressContext) {
        let field = "spec.defaultBackend";
        if let Some(holder) = &self.default_owner {
            self.diags.error(
                &cx.obj,
                field,
                format!("ignored: the older Ingress {holder} already sets the default backend"),
            );
            return;
        }
        let target = self.apply(target, (rank.clone(), 1, 0));
        let route = route(cx, field.into(), PathMatch::Prefix("/".into()), target);
        self.default_backend = Some(route);
        self.default_owner = Some(cx.owner.clone());
    }
}

/// The arbitration of one host's paths.
pub(super) struct HostLowering<'h> {
    pub(super) host: &'h HostMatch,
    /// Path → the Ingress (`namespace/name`) that serves it.
    pub(super) claimed: BTreeMap<PathMatch, String>,
    pub(super) routes: Vec<IngressRoute>,
    pub(super) diags: Diagnostics,
    pub(super) backends: Vec<(Seq, Arc<Backend>)>,
}

/// One host's paths from its Ingresses (in lowering order), arbitrated.
fn lower_host(host: &HostMatch, ingresses: &[&Arc<Prepared>]) -> HostOut {
    let mut h = HostLowering {
        host,
        claimed: BTreeMap::new(),
        routes: Vec::new(),
        diags: Diagnostics::default(),
        backends: Vec::new(),
    };
    for p in ingresses {
        let Some(body) = &p.body else { continue };
        let paths = body.by_host.get(host).map(Vec::as_slice).unwrap_or(&[]);
        match &body.cx.settings.canary {
            None => {
                for &i in paths {
                    h.serve_path(&p.rank, body, i);
                }
                if let Some(root) = &body.cx.settings.app_root {
                    h.app_root(root, &body.cx);
                }
            }
            Some(canary) => {
                for &i in paths {
                    h.attach_canary(&p.rank, body, i, canary);
                }
            }
        }
    }
    HostOut {
        routes: Arc::new(h.routes),
        diags: h.diags.take(),
        backends: h.backends,
    }
}

impl HostLowering<'_> {
    /// An [`Op`]'s outcome, reported and its backends added.
    pub(super) fn apply<T: Clone>(&mut self, op: &Op<T>, seq: Seq) -> T {
        self.diags.extend(&op.diags);
        self.backends
            .extend(op.backends.iter().map(|b| (seq.clone(), b.clone())));
        op.value.clone()
    }

    /// `host <host> path <path>`, for reports.
    pub(super) fn host_path(&self, p: &PreparedPath) -> String {
        format!("host {} path {}", self.host.display(), p.path.display())
    }

    /// A path is served unless an older Ingress (or an earlier path of this
    /// one) already serves it.
    fn serve_path(&mut self, rank: &Arc<Rank>, body: &Body, i: usize) {
        let (cx, Some(p)) = (&body.cx, body.paths.get(i)) else {
            return;
        };
        if let Some(holder) = self.claimed.get(&p.path) {
            let why = if *holder == cx.owner {
                "is listed earlier in this Ingress".to_string()
            } else {
                format!("is already served by the older Ingress {holder}")
            };
            let msg = format!("{} {why}; this path is not served", self.host_path(p));
            self.diags.error(&cx.obj, p.field.clone(), msg);
            return;
        }
        let target = self.apply(&p.target, (rank.clone(), 3, i));
        self.claimed.insert(p.path.clone(), cx.owner.clone());
        let mut route = route(cx, p.field.clone(), p.path.clone(), target);
        if let (Some(errors), Some(svc)) = (&cx.policy.custom_errors, &p.service) {
            route.policy = Arc::new(RoutePolicy {
                custom_errors: Some(Arc::new(lower::with_service(errors, svc))),
                ..(*cx.policy).clone()
            });
        }
        self.routes.push(route);
    }

    /// ingress-nginx answers `/` of every host of the Ingress with a redirect.
    fn app_root(&mut self, root: &str, cx: &IngressContext) {
        let field = annotations::field("nginx.ingress.kubernetes.io/app-root");
        let slot = PathMatch::Exact("/".into());
        if let Some(holder) = self.claimed.get(&slot).filter(|h| **h != cx.owner) {
            self.diags.error(
                &cx.obj,
                field,
                format!(
                    "host {} path / is already served by the older Ingress {holder}; app-root is not applied there",
                    self.host.display()
                ),
            );
            return;
        }
        let route = route(cx, field, slot.clone(), Target::AppRoot(root.to_string()));
        self.routes.retain(|r| r.path != slot);
        self.claimed.insert(slot, cx.owner.clone());
        self.routes.push(route);
    }
}
