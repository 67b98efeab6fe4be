//! Faults survived (issue 7). Each test asserts that existing routes keep
//! serving and that no configuration is lost. Tests in this file run one at a
//! time (they stop cluster components or the operator).
//!
//! Stopping the API server or etcd needs the local cluster (`hack/local-cluster`);
//! against another cluster (KUBECONFIG set) those two tests say so and pass.

// Each test holds SERIAL for its whole run on purpose (its own runtime, one
// test at a time); no other task ever waits on it.
#![allow(clippy::await_holding_lock)]

use anyhow::{bail, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fault tests disturb the whole cluster: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The cluster is `hack/local-cluster`'s (whose processes this test may stop):
/// no KUBECONFIG, or the one `hack/e2e` exports, which is that cluster's.
fn local_cluster() -> bool {
    let local = e2e::local_cluster_kubeconfig();
    match std::env::var_os("KUBECONFIG") {
        None => true,
        Some(k) => {
            let k = std::path::PathBuf::from(k);
            k == local
                || (k.canonicalize().ok().is_some()
                    && k.canonicalize().ok() == local.canonicalize().ok())
        }
    }
}

fn state_dir() -> std::path::PathBuf {
    e2e::local_cluster_kubeconfig()
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default()
}

fn component_pid(name: &str) -> Result<i32> {
    let raw = std::fs::read_to_string(state_dir().join("pids").join(format!("{name}.pid")))?;
    Ok(raw.trim().parse()?)
}

fn signal(pid: i32, sig: &str) -> Result<()> {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?
        .success();
    if !ok {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

/// `hack/local-cluster up`: restarts only the components that are not running.
fn cluster_up() -> Result<()> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/local-cluster");
    let out = Command::new(script).arg("up").output()?;
    if !out.status.success() {
        bail!(
            "hack/local-cluster up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A tenant with one echo backend and one route, `replicas` gateway pods.
struct Fixture {
    c: Client,
    ns: TestNamespace,
    tenant: String,
    gw: SocketAddr,
}

impl Fixture {
    async fn start(prefix: &str, replicas: i32) -> Result<Self> {
        install_operator()?;
        let c = client().await?;
        let ns = TestNamespace::create(prefix).await?;
        let tenant = format!("{prefix}-{}", &ns.name[ns.name.len() - 6..]);
        deploy_echo(&ns, "login", 1).await?;
        create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
        create_tgw_with(
            &c,
            &tenant,
            serde_json::json!({"names": [ns.name]}),
            replicas,
        )
        .await?;
        let gw = ready_gateway(&c, &tenant).await?;
        served_from(gw, "shop.example.com", "/login", &ns.name).await?;
        Ok(Self { c, ns, tenant, gw })
    }

    /// A new Ingress goes live: the whole chain (watch → translate → ADS) works.
    async fn new_route_goes_live(&self, host: &str) -> Result<()> {
        create_ingress(&self.ns, &host.replace('.', "-"), host, "/", "login").await?;
        served_from(self.gw, host, "/", &self.ns.name).await
    }

    async fn stop(self) -> Result<()> {
        delete_tgw(&self.c, &self.tenant).await;
        self.ns.cleanup().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_stopped_30s_then_etcd_restarted_routes_keep_serving() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip_requested("api_server_stopped_30s_then_etcd_restarted_routes_keep_serving") {
        return Ok(());
    }
    if !local_cluster() {
        eprintln!("SKIPPED: stopping the API server needs hack/local-cluster (KUBECONFIG names another cluster)");
        return Ok(());
    }
    let f = Fixture::start("apidown", 1).await?;
    let result = guarded(async {
        let traffic = Traffic::start(f.gw, "shop.example.com", "/login");
        signal(component_pid("kube-apiserver")?, "-STOP")?;
        let stopped = Instant::now();
        tokio::time::sleep(Duration::from_secs(30)).await;
        signal(component_pid("kube-apiserver")?, "-CONT")?;
        eprintln!("API server frozen for {:?}", stopped.elapsed());
        // Killed outright too, and restarted by the cluster script.
        signal(component_pid("kube-apiserver")?, "-KILL")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster_up()?;
        wait_until("API server back", Duration::from_secs(60), || async {
            Ok(Api::<Pod>::namespaced(client().await?, &f.ns.name)
                .list(&ListParams::default())
                .await
                .ok()
                .map(|_| ()))
        })
        .await?;
        f.new_route_goes_live("after-apiserver.example.com").await?;

        signal(component_pid("etcd")?, "-KILL")?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster_up()?;
        f.new_route_goes_live("after-etcd.example.com").await?;
        traffic
            .finish_via_node_port("traffic while the API server was down and etcd restarted")
            .await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    f.stop().await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_pod_deleted_under_load_leaves_no_request_unanswered_and_at_most_1_in_1000_connects_refused(
) -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip_requested("a_gateway_pod_deleted_under_load_leaves_no_request_unanswered_and_at_most_1_in_1000_connects_refused") {
        return Ok(());
    }
    let f = Fixture::start("drain", 2).await?;
    let result = guarded(async {
        let pods = gateway_pods(&f.c, &f.tenant).await?;
        assert_eq!(pods.len(), 2);
        let victim = pods[0].metadata.name.clone().unwrap_or_default();
        let traffic = Traffic::start(f.gw, "shop.example.com", "/login");
        let keepalive = Traffic::start_keepalive(f.gw, "shop.example.com", "/login");
        tokio::time::sleep(Duration::from_secs(1)).await;
        Api::<Pod>::namespaced(f.c.clone(), SYSTEM_NS)
            .delete(&victim, &DeleteParams::default())
            .await?;
        // Until the old pod is gone and its replacement is Ready.
        wait_until(
            "old pod gone and two Ready gateway pods",
            Duration::from_secs(120),
            || async {
                let pods = gateway_pods(&f.c, &f.tenant).await?;
                let gone = pods
                    .iter()
                    .all(|p| p.metadata.name.as_deref() != Some(victim.as_str()));
                let ready = pods.iter().filter(|p| e2e::pod_ready(p)).count();
                Ok((gone && ready == 2).then_some(()))
            },
        )
        .await?;
        traffic
            .finish_via_node_port("new connection per request while a gateway pod drained")
            .await?;
        keepalive
            .finish("keep-alive connection while a gateway pod drained")
            .await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    f.stop().await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_envoy_comes_back_with_the_full_config_while_the_other_pod_serves() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip_requested("a_killed_envoy_comes_back_with_the_full_config_while_the_other_pod_serves") {
        return Ok(());
    }
    let f = Fixture::start("envoykill", 2).await?;
    let result = guarded(async {
        f.new_route_goes_live("second.example.com").await?;
        let pods = gateway_pods(&f.c, &f.tenant).await?;
        let (victim, other) = (&pods[0], &pods[1]);
        let other_traffic = Traffic::start(pod_http_addr(other)?, "shop.example.com", "/login");
        let victim_name = victim.metadata.name.clone().unwrap_or_default();
        kill_container_process(&victim_name, "envoy -c /etc/envoy/envoy.yaml")?;
        let back = wait_until(
            "Envoy restarted and Ready",
            Duration::from_secs(60),
            || async {
                let p = Api::<Pod>::namespaced(f.c.clone(), SYSTEM_NS)
                    .get(&victim_name)
                    .await?;
                let restarted = pod_restarts(&p)
                    .iter()
                    .any(|(n, r)| n == "envoy" && *r >= 1);
                Ok((restarted && e2e::pod_ready(&p)).then_some(p))
            },
        )
        .await?;
        // The restarted Envoy got everything back from its sidecar.
        let addr = pod_http_addr(&back)?;
        for host in ["shop.example.com", "second.example.com"] {
            let path = if host.starts_with("shop") {
                "/login"
            } else {
                "/"
            };
            served_from(addr, host, path, &f.ns.name).await?;
        }
        other_traffic
            .finish("the other gateway pod while one Envoy was killed")
            .await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    f.stop().await?;
    result
}

async fn operator_pods(c: &Client) -> Result<Vec<Pod>> {
    let lp = ListParams::default()
        .labels("app.kubernetes.io/name=tenant-gateway,app.kubernetes.io/component=operator");
    let mut pods = Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
        .list(&lp)
        .await?
        .items;
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    Ok(pods)
}

async fn scale_operator(c: &Client, replicas: i32) -> Result<()> {
    let api = Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS);
    api.patch(
        "tenant-gateway",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"replicas": replicas}})),
    )
    .await?;
    wait_until(
        &format!("{replicas} operator pods Ready"),
        Duration::from_secs(120),
        || async {
            let pods = operator_pods(c).await?;
            Ok((pods.len() == replicas as usize && pods.iter().all(e2e::pod_ready)).then_some(()))
        },
    )
    .await
}

/// Add `kind ns/name → resourceVersion` for every `K` matching `lp`.
async fn versions_of<K>(
    c: &Client,
    lp: &ListParams,
    out: &mut BTreeMap<String, String>,
) -> Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for o in Api::<K>::all(c.clone()).list_metadata(lp).await?.items {
        let m = o.metadata;
        out.insert(
            format!(
                "{} {}/{}",
                K::kind(&()),
                m.namespace.unwrap_or_default(),
                m.name.unwrap_or_default()
            ),
            m.resource_version.unwrap_or_default(),
        );
    }
    Ok(())
}

/// resourceVersion of every object the operator made for `tenant`.
async fn managed_versions(c: &Client, tenant: &str) -> Result<BTreeMap<String, String>> {
    let lp = managed_selector(tenant);
    let mut out = BTreeMap::new();
    versions_of::<Deployment>(c, &lp, &mut out).await?;
    versions_of::<Service>(c, &lp, &mut out).await?;
    versions_of::<ConfigMap>(c, &lp, &mut out).await?;
    versions_of::<k8s_openapi::api::rbac::v1::RoleBinding>(c, &lp, &mut out).await?;
    versions_of::<k8s_openapi::api::core::v1::ServiceAccount>(c, &lp, &mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_restarts_rewrite_nothing_and_a_second_replica_takes_over() -> Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip_requested("operator_restarts_rewrite_nothing_and_a_second_replica_takes_over") {
        return Ok(());
    }
    let f = Fixture::start("oprestart", 1).await?;
    let result = guarded(async {
        // Let status settle (Ready), then record every managed object's version.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = managed_versions(&f.c, &f.tenant).await?;
        let envoy_before: Vec<_> = gateway_pods(&f.c, &f.tenant)
            .await?
            .iter()
            .map(|p| p.metadata.uid.clone())
            .collect();
        assert!(before.len() >= 5, "{before:?}");
        let traffic = Traffic::start(f.gw, "shop.example.com", "/login");

        // 1. Restart: the new operator re-applies everything and changes nothing.
        let old = operator_pods(&f.c).await?;
        for p in &old {
            let name = p.metadata.name.clone().unwrap_or_default();
            Api::<Pod>::namespaced(f.c.clone(), SYSTEM_NS)
                .delete(&name, &DeleteParams::default())
                .await?;
        }
        scale_operator(&f.c, 1).await?;
        wait_until("new operator leads", Duration::from_secs(60), || async {
            let l = Api::<Lease>::namespaced(f.c.clone(), SYSTEM_NS)
                .get("tenant-gateway-operator")
                .await?;
            let holder = l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
            let pods = operator_pods(&f.c).await?;
            Ok(pods
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(holder.as_str()))
                .then_some(()))
        })
        .await?;
        // Give it time for a full pass over every TenantGateway.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = managed_versions(&f.c, &f.tenant).await?;
        assert_eq!(after, before, "the restarted operator rewrote objects");
        let envoy_after: Vec<_> = gateway_pods(&f.c, &f.tenant)
            .await?
            .iter()
            .map(|p| p.metadata.uid.clone())
            .collect();
        assert_eq!(envoy_after, envoy_before, "Envoy pods were replaced");

        // 2. Two replicas: exactly one leads; killing it hands over; work continues.
        scale_operator(&f.c, 2).await?;
        let lease = Api::<Lease>::namespaced(f.c.clone(), SYSTEM_NS);
        let leader = lease
            .get("tenant-gateway-operator")
            .await?
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        let pods = operator_pods(&f.c).await?;
        assert!(
            pods.iter()
                .any(|p| p.metadata.name.as_deref() == Some(leader.as_str())),
            "leader {leader} is not a running operator pod"
        );
        // Kill the leader mid-work: a new Ingress and a new route must still go live.
        Api::<Pod>::namespaced(f.c.clone(), SYSTEM_NS)
            .delete(
                &leader,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await?;
        let ns2 = TestNamespace::create("oprestart2").await?;
        let tenant2 = format!("handover-{}", &ns2.name[ns2.name.len() - 6..]);
        deploy_echo(&ns2, "login", 1).await?;
        create_ingress(&ns2, "login", "shop.example.com", "/login", "login").await?;
        create_tgw_with(&f.c, &tenant2, serde_json::json!({"names": [ns2.name]}), 1).await?;
        let started = Instant::now();
        let gw2 = ready_gateway(&f.c, &tenant2).await;
        let took = started.elapsed();
        let new_leader = lease
            .get("tenant-gateway-operator")
            .await?
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        delete_tgw(&f.c, &tenant2).await;
        ns2.cleanup().await?;
        let gw2 = gw2?;
        eprintln!("handover: {leader} -> {new_leader}; new tenant Ready after {took:?} ({gw2})");
        assert_ne!(new_leader, leader, "the lease did not move");
        scale_operator(&f.c, 1).await?;
        traffic
            .finish_via_node_port("traffic through operator restarts and a leader handover")
            .await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    // Leave the operator at one replica whatever happened.
    let _ = scale_operator(&f.c, 1).await;
    f.stop().await?;
    result
}
