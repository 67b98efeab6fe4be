//! Watches of one tenant's claimed namespaces: a reflector per namespace and
//! kind, started and stopped as the claim set changes (no Envoy restart).
//! Namespaced APIs only: RBAC grants this identity nothing else.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use xds::TenantObjects;

const KINDS: u8 = 4;
const ALL_SYNCED: u8 = (1 << KINDS) - 1;

struct NamespaceWatch {
    ingresses: Store<Ingress>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    /// One bit per kind, set once that kind's first list is complete.
    synced: Arc<AtomicU8>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for NamespaceWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The reflectors of every claimed namespace, and a notifier that fires on any
/// change or completed first list.
pub struct TenantWatch {
    client: Client,
    watches: BTreeMap<String, NamespaceWatch>,
    changed: Arc<Notify>,
}

fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    bit: u8,
    synced: Arc<AtomicU8>,
    changed: Arc<Notify>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let ns = api.resource_url().to_string();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, config)
            .default_backoff()
            .modify(|o: &mut K| o.meta_mut().managed_fields = None)
            .reflect(writer)
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    synced.fetch_or(1 << bit, Ordering::SeqCst);
                    changed.notify_one();
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => changed.notify_one(),
                Ok(_) => {}
                // The store keeps its last state while the API server is unreachable.
                Err(e) => {
                    tracing::warn!(resource = %ns, error = %e, "watch failed; retrying with backoff")
                }
            }
        }
    });
    (store, task)
}

impl TenantWatch {
    pub fn new(client: Client, changed: Arc<Notify>) -> Self {
        Self {
            client,
            watches: BTreeMap::new(),
            changed,
        }
    }

    /// Start the reflectors of a newly claimed namespace.
    pub fn start(&mut self, ns: &str) {
        if self.watches.contains_key(ns) {
            return;
        }
        tracing::info!(namespace = %ns, "namespace claimed; watching");
        let synced = Arc::new(AtomicU8::new(0));
        let c = &self.client;
        let all = watcher::Config::default();
        let (ingresses, t1) = spawn_reflector(
            Api::namespaced(c.clone(), ns),
            all.clone(),
            0,
            synced.clone(),
            self.changed.clone(),
        );
        let (services, t2) = spawn_reflector(
            Api::namespaced(c.clone(), ns),
            all.clone(),
            1,
            synced.clone(),
            self.changed.clone(),
        );
        let (slices, t3) = spawn_reflector(
            Api::namespaced(c.clone(), ns),
            all,
            2,
            synced.clone(),
            self.changed.clone(),
        );
        // Only TLS Secrets: nothing else is ever read into memory.
        let tls = watcher::Config::default().fields("type=kubernetes.io/tls");
        let (secrets, t4) = spawn_reflector(
            Api::namespaced(c.clone(), ns),
            tls,
            3,
            synced.clone(),
            self.changed.clone(),
        );
        self.watches.insert(
            ns.to_string(),
            NamespaceWatch {
                ingresses,
                services,
                slices,
                secrets,
                synced,
                tasks: vec![t1, t2, t3, t4],
            },
        );
    }

    /// Stop the reflectors of a released namespace (dropping them aborts their tasks).
    pub fn stop(&mut self, ns: &str) {
        if self.watches.remove(ns).is_some() {
            tracing::info!(namespace = %ns, "namespace released; stopped watching");
        }
    }

    /// Namespaces whose every kind has completed its first list.
    pub fn synced_namespaces(&self) -> BTreeSet<String> {
        self.watches
            .iter()
            .filter(|(_, w)| w.synced.load(Ordering::SeqCst) == ALL_SYNCED)
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// The objects of those of `namespaces` that are fully synced. A namespace
    /// still listing is left out entirely, so a half-listed namespace never yields 503s.
    pub fn objects(&self, namespaces: &BTreeSet<String>) -> TenantObjects {
        let mut o = TenantObjects::default();
        for w in namespaces.iter().filter_map(|ns| self.watches.get(ns)) {
            if w.synced.load(Ordering::SeqCst) != ALL_SYNCED {
                continue;
            }
            o.ingresses
                .extend(w.ingresses.state().iter().map(|a| (**a).clone()));
            o.services
                .extend(w.services.state().iter().map(|a| (**a).clone()));
            o.endpoint_slices
                .extend(w.slices.state().iter().map(|a| (**a).clone()));
            o.secrets
                .extend(w.secrets.state().iter().map(|a| (**a).clone()));
        }
        o
    }

    /// One Ingress as last seen, for status writes and Events.
    pub fn ingress(&self, namespace: &str, name: &str) -> Option<Arc<Ingress>> {
        let w = self.watches.get(namespace)?;
        w.ingresses
            .get(&reflector::ObjectRef::new(name).within(namespace))
    }
}
