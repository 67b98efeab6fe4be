//! Watches of one tenant's claimed namespaces: a reflector per namespace and
//! kind, started and stopped as the claim set changes (no Envoy restart).
//! Namespaced APIs only: RBAC grants this identity nothing else.

use futures::StreamExt;
use gwapi::grpcroutes::GrpcRoute;
use gwapi::httproutes::HttpRoute;
use gwapi::referencegrants::ReferenceGrant;
use gwapi::tcproutes::TcpRoute;
use gwapi::tlsroutes::TlsRoute;
use gwapi::udproutes::UdpRoute;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use xds::TenantObjects;

/// What a fleet's sidecar reads in each claimed namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// A TenantGateway's Ingress fleet: Ingresses.
    Ingress,
    /// A Gateway's fleet: Gateway API routes and ReferenceGrants.
    GatewayApi,
}

/// Bits of `NamespaceWatch::synced`, one per kind.
const SERVICES: u16 = 1 << 0;
const SLICES: u16 = 1 << 1;
const SECRETS: u16 = 1 << 2;
const INGRESSES: u16 = 1 << 3;
const HTTP_ROUTES: u16 = 1 << 4;
const GRPC_ROUTES: u16 = 1 << 5;
const REFERENCE_GRANTS: u16 = 1 << 6;
const TLS_ROUTES: u16 = 1 << 7;
const TCP_ROUTES: u16 = 1 << 8;
const OPAQUE_SECRETS: u16 = 1 << 9;
const UDP_ROUTES: u16 = 1 << 10;

impl WatchMode {
    /// The sync bits a namespace must have before its objects are translated.
    fn all_synced(self) -> u16 {
        let common = SERVICES | SLICES | SECRETS;
        match self {
            WatchMode::Ingress => common | INGRESSES | OPAQUE_SECRETS,
            WatchMode::GatewayApi => {
                common
                    | HTTP_ROUTES
                    | GRPC_ROUTES
                    | TLS_ROUTES
                    | TCP_ROUTES
                    | UDP_ROUTES
                    | REFERENCE_GRANTS
            }
        }
    }
}

/// The Gateway API objects of the synced namespaces.
#[derive(Clone, Debug, Default)]
pub struct GatewayApiRoutes {
    pub http_routes: Vec<HttpRoute>,
    pub grpc_routes: Vec<GrpcRoute>,
    pub tls_routes: Vec<TlsRoute>,
    pub tcp_routes: Vec<TcpRoute>,
    pub udp_routes: Vec<UdpRoute>,
    pub reference_grants: Vec<ReferenceGrant>,
}

struct NamespaceWatch {
    ingresses: Option<Store<Ingress>>,
    http_routes: Option<Store<HttpRoute>>,
    grpc_routes: Option<Store<GrpcRoute>>,
    tls_routes: Option<Store<TlsRoute>>,
    tcp_routes: Option<Store<TcpRoute>>,
    udp_routes: Option<Store<UdpRoute>>,
    reference_grants: Option<Store<ReferenceGrant>>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    /// `Opaque` Secrets (basic-auth htpasswd), Ingress fleets only.
    opaque_secrets: Option<Store<Secret>>,
    /// One bit per kind, set once that kind's first list is complete.
    synced: Arc<AtomicU16>,
    all_synced: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl NamespaceWatch {
    fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst) == self.all_synced
    }
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
    mode: WatchMode,
    watches: BTreeMap<String, NamespaceWatch>,
    changed: Arc<Notify>,
}

/// The watch retry schedule: 100 ms doubling to 30 s, back to 100 ms after
/// any success. kube's default starts at 800 ms, and the first list of a
/// newly claimed namespace often gets a 403 because the API server's
/// authorizer has not yet seen the fresh RoleBinding: that wait held the
/// namespace's routes back by a second or more.
#[derive(Clone, Debug, Default)]
pub(crate) struct WatchBackoff {
    attempt: u32,
}

impl WatchBackoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(100);
    const MAX: std::time::Duration = std::time::Duration::from_secs(30);

    /// The delay before retry number `attempt` (0-based).
    fn delay(attempt: u32) -> std::time::Duration {
        Self::FIRST
            .saturating_mul(1u32 << attempt.min(16))
            .min(Self::MAX)
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        let d = Self::delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        Some(d)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    bit: u16,
    synced: Arc<AtomicU16>,
    changed: Arc<Notify>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let ns = api.resource_url().to_string();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, config)
            .backoff(WatchBackoff::default())
            .modify(|o: &mut K| o.meta_mut().managed_fields = None)
            .reflect(writer)
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    synced.fetch_or(bit, Ordering::SeqCst);
                    changed.notify_one();
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => changed.notify_one(),
                Ok(_) => {}
                // The store keeps its last state while the API server is unreachable.
                Err(e) => {
                    tracing::warn!(resource = %ns, error = %e, "watch failed; retrying (100 ms, doubling)")
                }
            }
        }
    });
    (store, task)
}

/// Starts one namespace's reflectors, collecting their tasks.
struct Spawner<'a> {
    client: &'a Client,
    ns: &'a str,
    synced: Arc<AtomicU16>,
    changed: &'a Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Spawner<'_> {
    fn watch<K>(&mut self, config: watcher::Config, bit: u16) -> Store<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        let (store, task) = spawn_reflector(
            Api::namespaced(self.client.clone(), self.ns),
            config,
            bit,
            self.synced.clone(),
            self.changed.clone(),
        );
        self.tasks.push(task);
        store
    }
}

impl TenantWatch {
    pub fn new(client: Client, changed: Arc<Notify>, mode: WatchMode) -> Self {
        Self {
            client,
            mode,
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
        let mut s = Spawner {
            client: &self.client,
            ns,
            synced: Arc::new(AtomicU16::new(0)),
            changed: &self.changed,
            tasks: Vec::new(),
        };
        let all = watcher::Config::default();
        let gateway_api = self.mode == WatchMode::GatewayApi;
        let ingresses = (!gateway_api).then(|| s.watch(all.clone(), INGRESSES));
        let http_routes = gateway_api.then(|| s.watch(all.clone(), HTTP_ROUTES));
        let grpc_routes = gateway_api.then(|| s.watch(all.clone(), GRPC_ROUTES));
        let tls_routes = gateway_api.then(|| s.watch(all.clone(), TLS_ROUTES));
        let tcp_routes = gateway_api.then(|| s.watch(all.clone(), TCP_ROUTES));
        let udp_routes = gateway_api.then(|| s.watch(all.clone(), UDP_ROUTES));
        let reference_grants = gateway_api.then(|| s.watch(all.clone(), REFERENCE_GRANTS));
        let services = s.watch(all.clone(), SERVICES);
        let slices = s.watch(all, SLICES);
        // TLS Secrets, and (below, Ingress fleets) Opaque ones: never service-account
        // tokens, registry credentials or other types.
        let secrets = s.watch(
            watcher::Config::default().fields("type=kubernetes.io/tls"),
            SECRETS,
        );
        // And Opaque ones for basic auth (`auth-secret`), as ingress-nginx reads them.
        let opaque_secrets = (!gateway_api).then(|| {
            s.watch(
                watcher::Config::default().fields("type=Opaque"),
                OPAQUE_SECRETS,
            )
        });
        let (synced, tasks) = (s.synced, s.tasks);
        self.watches.insert(
            ns.to_string(),
            NamespaceWatch {
                ingresses,
                http_routes,
                grpc_routes,
                tls_routes,
                tcp_routes,
                udp_routes,
                reference_grants,
                services,
                slices,
                secrets,
                opaque_secrets,
                synced,
                all_synced: self.mode.all_synced(),
                tasks,
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
            .filter(|(_, w)| w.is_synced())
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// The objects of those of `namespaces` that are fully synced. A namespace
    /// still listing is left out entirely, so a half-listed namespace never yields 503s.
    pub fn objects(&self, namespaces: &BTreeSet<String>) -> TenantObjects {
        let mut o = TenantObjects::default();
        for w in self.synced_watches(namespaces) {
            o.ingresses.extend(cloned(w.ingresses.as_ref()));
            o.services.extend(cloned(Some(&w.services)));
            o.endpoint_slices.extend(cloned(Some(&w.slices)));
            o.secrets.extend(cloned(Some(&w.secrets)));
            o.secrets.extend(cloned(w.opaque_secrets.as_ref()));
        }
        o
    }

    fn synced_watches<'a>(
        &'a self,
        namespaces: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a NamespaceWatch> + 'a {
        namespaces
            .iter()
            .filter_map(|ns| self.watches.get(ns))
            .filter(|w| w.is_synced())
    }

    /// The Gateway API objects of those of `namespaces` that are fully synced.
    pub fn gateway_api_routes(&self, namespaces: &BTreeSet<String>) -> GatewayApiRoutes {
        let mut o = GatewayApiRoutes::default();
        for w in self.synced_watches(namespaces) {
            o.http_routes.extend(cloned(w.http_routes.as_ref()));
            o.grpc_routes.extend(cloned(w.grpc_routes.as_ref()));
            o.tls_routes.extend(cloned(w.tls_routes.as_ref()));
            o.tcp_routes.extend(cloned(w.tcp_routes.as_ref()));
            o.udp_routes.extend(cloned(w.udp_routes.as_ref()));
            o.reference_grants
                .extend(cloned(w.reference_grants.as_ref()));
        }
        o
    }

    /// One Ingress as last seen, for status writes and Events.
    pub fn ingress(&self, namespace: &str, name: &str) -> Option<Arc<Ingress>> {
        let w = self.watches.get(namespace)?;
        w.ingresses
            .as_ref()?
            .get(&reflector::ObjectRef::new(name).within(namespace))
    }
}

/// Every object of a store (none for a kind this mode does not watch).
fn cloned<K: Resource<DynamicType = ()> + Clone>(store: Option<&Store<K>>) -> Vec<K> {
    store
        .map(|s| s.state().iter().map(|a| (**a).clone()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::WatchBackoff;
    use kube::runtime::utils::Backoff;
    use std::time::Duration;

    #[test]
    fn watch_retries_start_at_100ms_double_to_30s_and_reset_on_success() {
        let mut b = WatchBackoff::default();
        let first: Vec<u64> = b.by_ref().take(6).map(|d| d.as_millis() as u64).collect();
        assert_eq!(first, [100, 200, 400, 800, 1600, 3200]);
        assert_eq!(b.by_ref().nth(20), Some(Duration::from_secs(30)));
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}
