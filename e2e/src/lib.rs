//! Harness for end-to-end tests on a real cluster.
//!
//! Which cluster: the one `KUBECONFIG` names when it is set (kind, k3d, ...), otherwise
//! the local cluster that `hack/local-cluster up` starts (its admin kubeconfig lives at
//! `$STATE_DIR/admin.kubeconfig`, default `/var/lib/tenant-gateway-cluster`).
//!
//! The tests need that cluster. Set `TG_E2E=0` to skip them explicitly; they then pass
//! after printing why they did nothing. Nothing else skips them.
#![cfg(feature = "harness")]

pub mod gateway;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The image of the Rust echo backend (e2e/src/bin/echo-server.rs), built by
/// `hack/images/build echo` and imported into the cluster.
pub const ECHO_IMAGE: &str = "localhost/echo:dev";
/// Label put on every namespace the harness creates.
pub const E2E_LABEL: &str = "tenantgateway.io/e2e";

const DEFAULT_STATE_DIR: &str = "/var/lib/tenant-gateway-cluster";

/// True (and a message printed) when the e2e tests were explicitly turned off with `TG_E2E=0`.
pub fn skip_requested(test: &str) -> bool {
    match std::env::var("TG_E2E") {
        Ok(v) if v == "0" || v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("off") => {
            eprintln!("SKIPPED {test}: TG_E2E={v} turns the end-to-end tests off");
            true
        }
        _ => false,
    }
}

/// Path of the local cluster's admin kubeconfig (`hack/local-cluster kubeconfig`).
pub fn local_cluster_kubeconfig() -> PathBuf {
    let state = std::env::var("STATE_DIR").unwrap_or_else(|_| DEFAULT_STATE_DIR.to_string());
    PathBuf::from(state).join("admin.kubeconfig")
}

/// Client configuration: `$KUBECONFIG` if set, else the local cluster's admin kubeconfig.
pub async fn cluster_config() -> Result<Config> {
    if std::env::var_os("KUBECONFIG").is_some() {
        return Config::infer()
            .await
            .context("loading the cluster config from $KUBECONFIG");
    }
    let path = local_cluster_kubeconfig();
    let kubeconfig = Kubeconfig::read_from(&path).with_context(|| {
        format!(
            "reading {} — start the local cluster with `hack/local-cluster up`, \
             set KUBECONFIG for another cluster, or TG_E2E=0 to skip the e2e tests",
            path.display()
        )
    })?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("building a client config from the local cluster kubeconfig")
}

/// Admin client for the cluster under test.
pub async fn client() -> Result<Client> {
    Ok(Client::try_from(cluster_config().await?)?)
}

/// A client that authenticates with a bearer token (e.g. from the TokenRequest API)
/// instead of the admin credentials, against the same cluster.
pub async fn client_with_token(token: &str) -> Result<Client> {
    let mut config = cluster_config().await?;
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))?;
    Ok(Client::try_from(config)?)
}

/// A short unique suffix for names (time, process and a counter).
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7))
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = nanos ^ std::process::id().rotate_left(16) ^ n.wrapping_mul(0x9e37_79b9);
    format!("{:06x}{n}", mixed & 0xff_ffff)
}

/// A namespace that exists for one test and is deleted when the test ends, whether it
/// passed or panicked (the deletion runs in `Drop` if `cleanup` was not awaited).
/// Cluster-scoped objects the test made can be registered to be deleted with it.
pub struct TestNamespace {
    pub name: String,
    client: Client,
    config: Config,
    cluster_roles: Vec<String>,
    cleaned: bool,
}

impl TestNamespace {
    /// Creates `tg-e2e-<prefix>-<suffix>`, labelled for the `restricted` Pod Security
    /// Standard so every test pod is checked by the PodSecurity admission.
    pub async fn create(prefix: &str) -> Result<Self> {
        let config = cluster_config().await?;
        let client = Client::try_from(config.clone())?;
        let name = format!("tg-e2e-{prefix}-{}", unique_suffix());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": {
                    E2E_LABEL: "true",
                    "pod-security.kubernetes.io/enforce": "restricted",
                }
            }
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(Self {
            name,
            client,
            config,
            cluster_roles: Vec::new(),
            cleaned: false,
        })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An `Api` for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Delete this ClusterRole together with the namespace.
    pub fn delete_cluster_role_at_end(&mut self, name: &str) {
        self.cluster_roles.push(name.to_string());
    }

    /// Deletes the namespace (and registered cluster-scoped objects) now.
    pub async fn cleanup(mut self) -> Result<()> {
        self.cleaned = true;
        delete_all(&self.client, &self.name, &self.cluster_roles).await
    }
}

async fn delete_all(client: &Client, ns: &str, cluster_roles: &[String]) -> Result<()> {
    for cr in cluster_roles {
        ignore_not_found(
            Api::<ClusterRole>::all(client.clone())
                .delete(cr, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    ignore_not_found(
        Api::<Namespace>::all(client.clone())
            .delete(ns, &DeleteParams::background())
            .await
            .map(|_| ()),
    )
}

fn ignore_not_found(r: kube::Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // Drop cannot await, and the test's runtime may be the one blocked here: delete
        // from a fresh thread with its own runtime and its own client.
        let config = self.config.clone();
        let name = self.name.clone();
        let roles = std::mem::take(&mut self.cluster_roles);
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let client = Client::try_from(config)?;
                delete_all(&client, &name, &roles).await
            })
        })
        .join();
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: deleting test namespace {}: {e:#}", self.name),
            Err(_) => eprintln!("warning: deleting test namespace {} panicked", self.name),
        }
    }
}

/// Polls `check` every 500 ms until it returns `Ok(Some(value))`, or fails after `timeout`
/// with the last error or "still None" explanation.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The pod's `Ready` condition is `True` (a terminating pod may still be).
pub fn pod_ready(p: &k8s_openapi::api::core::v1::Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until the Deployment's observed generation is current and all replicas are
/// updated and available.
pub async fn wait_deployment_ready(
    api: &Api<Deployment>,
    name: &str,
    timeout: Duration,
) -> Result<Deployment> {
    wait_until(&format!("deployment {name} ready"), timeout, || async {
        let d = api.get(name).await?;
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let gen = d.metadata.generation.unwrap_or(0);
        let Some(st) = d.status.as_ref() else {
            return Ok(None);
        };
        let ready = st.observed_generation.unwrap_or(0) >= gen
            && st.updated_replicas.unwrap_or(0) == want
            && st.available_replicas.unwrap_or(0) == want
            && st.ready_replicas.unwrap_or(0) == want;
        Ok(ready.then_some(d.clone()))
    })
    .await
}

/// The running pods matching a label selector.
pub async fn running_pods(api: &Api<Pod>, selector: &str) -> Result<Vec<Pod>> {
    let pods = api.list(&ListParams::default().labels(selector)).await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect())
}

/// The node's InternalIP (the address NodePorts are served on).
pub async fn node_internal_ip(client: &Client) -> Result<String> {
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    nodes
        .items
        .iter()
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .ok_or_else(|| anyhow!("no node has an InternalIP"))
}

/// A GET from this process (the host) with `Connection: close` and `Host:
/// <addr>`, 10 s for everything. Returns (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let limits = testkit::Timeouts {
        connect: Duration::from_secs(10),
        exchange: Duration::from_secs(10),
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        testkit::get_then_reset(addr, &addr.to_string(), path, limits),
    )
    .await
    .map_err(|_| anyhow!("GET http://{addr}{path} timed out"))?
    .with_context(|| format!("GET http://{addr}{path}"))?;
    Ok((answer.status, answer.body))
}

/// A `restricted`-compliant container running the echo image.
pub fn echo_container(args: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "name": "echo",
        "image": ECHO_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
        ],
        "securityContext": {
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}
    })
}

/// Runs a test body and turns a panic inside it (a failed `assert!`) into an
/// error, so that the cleanup after it (TenantGateways, namespaces) still runs
/// and a failing test does not leave load behind for the next ones.
pub async fn guarded<T>(body: impl Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(body).catch_unwind().await {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Err(anyhow!("panicked: {msg}"))
        }
    }
}
