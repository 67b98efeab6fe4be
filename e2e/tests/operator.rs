//! The operator end to end on a real cluster: TenantGateways in, isolated
//! Envoy fleets out. Installs `config/` (CRD, RBAC, operator) once per run.
//!
//! Requests go from this host to the tenant Services' NodePorts on the node IP.

use anyhow::{anyhow, bail, Context, Result};
use e2e::{client, node_internal_ip, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SYSTEM_NS: &str = "tenant-gateway-system";
const API: &str = "tenantgateway.io/v1alpha1";

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kubectl`: `$KUBECTL`, else on PATH, else the one `hack/local-cluster` built.
fn kubectl() -> Command {
    let bin = std::env::var("KUBECTL").ok().or_else(|| {
        let found = std::fs::read_dir("/var/cache/tenant-gateway/k8s")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin/kubectl"))
            .find(|p| p.exists());
        found.map(|p| p.display().to_string())
    });
    let mut c = Command::new(bin.unwrap_or_else(|| "kubectl".into()));
    if std::env::var_os("KUBECONFIG").is_none() {
        c.env("KUBECONFIG", e2e::local_cluster_kubeconfig());
    }
    c
}

fn run(mut c: Command) -> Result<String> {
    let out = c.output().context("running kubectl")?;
    if !out.status.success() {
        bail!("{:?} failed: {}", c, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Install `config/` once per test run and wait for the operator.
fn install_operator() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut apply = kubectl();
        apply
            .args(["apply", "--server-side", "--force-conflicts", "-k"])
            .arg(repo().join("config"));
        run(apply).map_err(|e| format!("{e:#}"))?;
        let mut wait = kubectl();
        wait.args([
            "-n",
            SYSTEM_NS,
            "rollout",
            "status",
            "deployment/tenant-gateway",
            "--timeout=180s",
        ]);
        run(wait).map_err(|e| format!("{e:#}"))?;
        Ok(())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

async fn deploy_echo(ns: &TestNamespace, name: &str, replicas: i32) -> Result<()> {
    let labels = serde_json::json!({"app": name});
    let d: Deployment = obj(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [e2e::echo_container(&[])]}
            }
        }
    }));
    ns.api::<Deployment>()
        .create(&PostParams::default(), &d)
        .await?;
    let s: Service = obj(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }));
    ns.api::<Service>()
        .create(&PostParams::default(), &s)
        .await?;
    Ok(())
}

async fn create_ingress(
    ns: &TestNamespace,
    name: &str,
    host: &str,
    path: &str,
    svc: &str,
) -> Result<()> {
    let i: Ingress = obj(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"name": "http"}}}}
        ]}}]}
    }));
    ns.api::<Ingress>()
        .patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&i))
        .await?;
    Ok(())
}

fn tgw_api(c: &Client) -> Api<kube::api::DynamicObject> {
    let ar = kube::discovery::ApiResource {
        group: "tenantgateway.io".into(),
        version: "v1alpha1".into(),
        api_version: API.into(),
        kind: "TenantGateway".into(),
        plural: "tenantgateways".into(),
    };
    Api::all_with(c.clone(), &ar)
}

async fn create_tgw(c: &Client, name: &str, namespaces: serde_json::Value) -> Result<()> {
    create_tgw_with(c, name, namespaces, 1).await
}

async fn create_tgw_with(
    c: &Client,
    name: &str,
    namespaces: serde_json::Value,
    replicas: i32,
) -> Result<()> {
    let tgw: kube::api::DynamicObject = obj(serde_json::json!({
        "apiVersion": API, "kind": "TenantGateway",
        "metadata": {"name": name},
        "spec": {"namespaces": namespaces, "replicas": replicas, "service": {"type": "NodePort"}}
    }));
    tgw_api(c).create(&PostParams::default(), &tgw).await?;
    Ok(())
}

async fn delete_tgw(c: &Client, name: &str) {
    let _ = tgw_api(c).delete(name, &DeleteParams::background()).await;
}

fn condition(tgw: &kube::api::DynamicObject, ty: &str) -> Option<(String, String)> {
    let conds = tgw.data.pointer("/status/conditions")?.as_array()?;
    let c = conds.iter().find(|c| c["type"] == ty)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["message"].as_str().unwrap_or("").to_string(),
    ))
}

/// Wait until the TenantGateway is Ready and return its HTTP NodePort address.
async fn ready_gateway(c: &Client, name: &str) -> Result<SocketAddr> {
    wait_until(
        &format!("TenantGateway {name} Ready"),
        Duration::from_secs(180),
        || async {
            let t = tgw_api(c).get(name).await?;
            Ok((condition(&t, "Ready").map(|c| c.0).as_deref() == Some("True")).then_some(()))
        },
    )
    .await?;
    let svc = Api::<Service>::namespaced(c.clone(), SYSTEM_NS)
        .get(&format!("tgw-{name}"))
        .await?;
    let port = svc
        .spec
        .and_then(|s| s.ports)
        .into_iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http"))
        .and_then(|p| p.node_port)
        .ok_or_else(|| anyhow!("tgw-{name} has no http NodePort"))?;
    let ip = node_internal_ip(c).await?;
    Ok(format!("{ip}:{port}").parse()?)
}

/// GET with a Host header; (status, body).
async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("malformed response {text:?}"))?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("no status"))?;
        Ok::<_, anyhow::Error>((code, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| anyhow!("GET timed out"))?
}

/// Wait until `host path` through `addr` answers 200 from a pod in `ns`.
async fn served_from(addr: SocketAddr, host: &str, path: &str, ns: &str) -> Result<()> {
    let want = format!("ns={ns} ");
    wait_until(
        &format!("{host}{path} served from {ns} via {addr}"),
        Duration::from_secs(60),
        || async {
            let (code, body) = get(addr, host, path).await?;
            Ok((code == 200 && body.contains(&want)).then_some(()))
        },
    )
    .await
}

fn managed_selector(tenant: &str) -> ListParams {
    ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by=tenant-gateway,tenantgateway.io/tenant={tenant}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_share_host_and_path_isolated_by_rbac() -> Result<()> {
    if skip_requested("two_tenants_share_host_and_path_isolated_by_rbac") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let acme_ns = TestNamespace::create("acme").await?;
    let globex_ns = TestNamespace::create("globex").await?;
    let sfx = &acme_ns.name[acme_ns.name.len() - 6..];
    let (acme, globex) = (format!("acme-{sfx}"), format!("globex-{sfx}"));
    // globex claims by label selector, acme by name.
    let label = serde_json::json!({"metadata": {"labels": {"e2e-tenant": globex}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(c.clone())
        .patch(
            &globex_ns.name,
            &PatchParams::default(),
            &Patch::Merge(&label),
        )
        .await?;
    for ns in [&acme_ns, &globex_ns] {
        deploy_echo(ns, "login", 1).await?;
        create_ingress(ns, "login", "shop.example.com", "/login", "login").await?;
    }
    create_tgw(&c, &acme, serde_json::json!({"names": [acme_ns.name]})).await?;
    create_tgw(
        &c,
        &globex,
        serde_json::json!({"selector": {"matchLabels": {"e2e-tenant": globex}}}),
    )
    .await?;
    let result = async {
        let (a, g) = (ready_gateway(&c, &acme).await?, ready_gateway(&c, &globex).await?);
        served_from(a, "shop.example.com", "/login", &acme_ns.name).await?;
        served_from(g, "shop.example.com", "/login", &globex_ns.name).await?;
        for i in 0..30 {
            let (_, body) = get(a, "shop.example.com", "/login").await?;
            assert!(body.contains(&format!("ns={} ", acme_ns.name)), "request {i} via acme: {body}");
            let (_, body) = get(g, "shop.example.com", "/login").await?;
            assert!(body.contains(&format!("ns={} ", globex_ns.name)), "request {i} via globex: {body}");
        }

        // The sidecar identity of globex cannot read acme's Secrets or Ingresses.
        let sa = format!("tgw-{globex}");
        let user = format!("system:serviceaccount:{SYSTEM_NS}:{sa}");
        for (verb, resource, group) in [("get", "secrets", ""), ("list", "secrets", ""), ("list", "ingresses", "networking.k8s.io")] {
            for (ns, want) in [(&acme_ns.name, false), (&globex_ns.name, true)] {
                let sar: SubjectAccessReview = obj(serde_json::json!({"spec": {"user": user, "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{SYSTEM_NS}")],
                    "resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource, "group": group}}}));
                let r = Api::<SubjectAccessReview>::all(c.clone()).create(&PostParams::default(), &sar).await?;
                let allowed = r.status.map(|s| s.allowed).unwrap_or(false);
                assert_eq!(allowed, want, "{user} {verb} {resource} in {ns}");
            }
        }
        let tr: TokenRequest = obj(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 600}}));
        let token = Api::<ServiceAccount>::namespaced(c.clone(), SYSTEM_NS)
            .create_token_request(&sa, &PostParams::default(), &tr)
            .await?
            .status
            .ok_or_else(|| anyhow!("no token"))?
            .token;
        let as_globex = e2e::client_with_token(&token).await?;
        let denied = Api::<Ingress>::namespaced(as_globex.clone(), &acme_ns.name).list(&ListParams::default()).await;
        assert!(matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403), "{denied:?}");
        let denied = Api::<Secret>::namespaced(as_globex.clone(), &acme_ns.name).list(&ListParams::default()).await;
        assert!(matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403), "{denied:?}");
        let own = Api::<Ingress>::namespaced(as_globex, &globex_ns.name).list(&ListParams::default()).await?;
        assert_eq!(own.items.len(), 1, "globex can read its own Ingresses");

        // The Ingress status shows the gateway address.
        let ing = wait_until("acme Ingress status", Duration::from_secs(30), || async {
            let i = acme_ns.api::<Ingress>().get("login").await?;
            let has = i.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref()).is_some_and(|v| !v.is_empty());
            Ok(has.then_some(i))
        })
        .await?;
        assert!(ing.status.is_some());

        // Deleting a TenantGateway deletes everything it created.
        delete_tgw(&c, &acme).await;
        wait_until("acme's objects garbage-collected", Duration::from_secs(90), || async {
            let left = Api::<Deployment>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len()
                + Api::<Service>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len()
                + Api::<RoleBinding>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len()
                + Api::<ServiceAccount>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len();
            Ok((left == 0).then_some(()))
        })
        .await?;
        // globex is untouched.
        served_from(g, "shop.example.com", "/login", &globex_ns.name).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    delete_tgw(&c, &acme).await;
    delete_tgw(&c, &globex).await;
    acme_ns.cleanup().await?;
    globex_ns.cleanup().await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_namespace_goes_to_the_older_tenant_and_moves_when_it_lets_go() -> Result<()> {
    if skip_requested("a_claimed_namespace_goes_to_the_older_tenant_and_moves_when_it_lets_go") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("claim").await?;
    let sfx = &ns.name[ns.name.len() - 6..];
    let (first, second) = (format!("first-{sfx}"), format!("second-{sfx}"));
    deploy_echo(&ns, "login", 1).await?;
    create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
    create_tgw(&c, &first, serde_json::json!({"names": [ns.name]})).await?;
    // Creation timestamps have second resolution: make "second" clearly younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create_tgw(&c, &second, serde_json::json!({"names": [ns.name]})).await?;
    let result = async {
        let a = ready_gateway(&c, &first).await?;
        served_from(a, "shop.example.com", "/login", &ns.name).await?;
        let msg = wait_until(
            "second's conflict condition",
            Duration::from_secs(60),
            || async {
                let t = tgw_api(&c).get(&second).await?;
                Ok(condition(&t, "NamespacesClaimed")
                    .filter(|(s, _)| s == "False")
                    .map(|(_, m)| m))
            },
        )
        .await?;
        assert!(msg.contains(&ns.name) && msg.contains(&first), "{msg}");
        let t = tgw_api(&c).get(&second).await?;
        assert_eq!(t.data["status"]["conflicts"][0]["holder"], first.as_str());
        let rb = ns
            .api::<RoleBinding>()
            .get_opt(&format!("tgw-{second}"))
            .await?;
        assert!(
            rb.is_none(),
            "the loser must get no RoleBinding in the contested namespace"
        );
        let b = ready_gateway(&c, &second).await?;
        let (code, _) = get(b, "shop.example.com", "/login").await?;
        assert_eq!(
            code, 404,
            "second serves nothing from a namespace it does not hold"
        );
        served_from(a, "shop.example.com", "/login", &ns.name).await?;

        // The holder lets go: the namespace moves to the next claim.
        delete_tgw(&c, &first).await;
        served_from(b, "shop.example.com", "/login", &ns.name).await?;
        let rb = ns
            .api::<RoleBinding>()
            .get_opt(&format!("tgw-{second}"))
            .await?;
        assert!(rb.is_some(), "the new holder gets its RoleBinding");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    delete_tgw(&c, &first).await;
    delete_tgw(&c, &second).await;
    ns.cleanup().await?;
    result
}

/// Requests in a loop until stopped: (ok count, failure count, first failures).
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Traffic {
    fn start(addr: SocketAddr, host: &'static str, path: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let mut errors = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match get(addr, host, path).await {
                    Ok((200, _)) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        f.fetch_add(1, Ordering::Relaxed);
                        if errors.len() < 10 {
                            errors.push(match other {
                                Ok((code, body)) => format!("{code} {body}"),
                                Err(e) => format!("{e:#}"),
                            });
                        }
                    }
                }
            }
            errors
        });
        Self {
            stop,
            ok,
            failed,
            task,
        }
    }

    /// Stop and assert that nothing failed.
    async fn finish(self, what: &str) -> Result<usize> {
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.task.await?;
        let (ok, failed) = (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        eprintln!("{what}: {ok} ok, {failed} failed");
        assert_eq!(failed, 0, "{what}: failed requests: {errors:?}");
        assert!(ok > 20, "{what}: too little traffic: {ok}");
        Ok(ok)
    }
}

/// SIGKILL the xDS sidecar process of one pod (its container restarts).
fn kill_sidecar(tenant: &str, pod: &str) -> Result<()> {
    let needle = format!("tenant-gateway xds --tenant {tenant} ");
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let dir = entry.path();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(&needle) {
            continue;
        }
        let environ =
            String::from_utf8_lossy(&std::fs::read(dir.join("environ")).unwrap_or_default())
                .into_owned();
        if environ
            .split('\0')
            .any(|kv| kv == format!("POD_NAME={pod}"))
        {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let status = Command::new("kill").args(["-9", &pid]).status()?;
            if status.success() {
                return Ok(());
            }
        }
    }
    bail!("no xds sidecar process for pod {pod} on this node (is this the local cluster?)")
}

fn pod_restarts(p: &Pod) -> Vec<(String, i32)> {
    let st = p.status.as_ref();
    st.and_then(|s| s.container_statuses.clone())
        .into_iter()
        .flatten()
        .chain(
            st.and_then(|s| s.init_container_statuses.clone())
                .into_iter()
                .flatten(),
        )
        .map(|c| (c.name, c.restart_count))
        .collect()
}

async fn gateway_pods(c: &Client, tenant: &str) -> Result<Vec<Pod>> {
    let lp = ListParams::default().labels(&format!(
        "tenantgateway.io/tenant={tenant},app.kubernetes.io/component=envoy"
    ));
    Ok(Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
        .list(&lp)
        .await?
        .items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_go_live_without_envoy_restarts_and_fail_no_requests() -> Result<()> {
    if skip_requested("changes_go_live_without_envoy_restarts_and_fail_no_requests") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("churn").await?;
    let tenant = format!("churn-{}", &ns.name[ns.name.len() - 6..]);
    deploy_echo(&ns, "login", 1).await?;
    deploy_echo(&ns, "other", 1).await?;
    create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
    // Two replicas, as by default: one pod's sidecar can restart while the other serves.
    create_tgw_with(&c, &tenant, serde_json::json!({"names": [ns.name]}), 2).await?;
    let result = async {
        let gw = ready_gateway(&c, &tenant).await?;
        served_from(gw, "shop.example.com", "/login", &ns.name).await?;
        let pods_before = gateway_pods(&c, &tenant).await?;
        assert_eq!(pods_before.len(), 2);

        // Continuous traffic to an unchanged route while Ingresses and
        // Services change and a backend scales.
        let traffic = Traffic::start(gw, "shop.example.com", "/login");
        create_ingress(&ns, "extra", "extra.example.com", "/", "other").await?;
        served_from(gw, "extra.example.com", "/x", &ns.name).await?;
        create_ingress(&ns, "extra", "extra.example.com", "/v2", "other").await?;
        wait_until("changed path", Duration::from_secs(30), || async {
            Ok((get(gw, "extra.example.com", "/x").await?.0 == 404
                && get(gw, "extra.example.com", "/v2").await?.0 == 200)
                .then_some(()))
        })
        .await?;
        ns.api::<Deployment>()
            .patch(
                "other",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"spec": {"replicas": 3}})),
            )
            .await?;
        wait_until(
            "3 backend pods answering",
            Duration::from_secs(120),
            || async {
                let mut pods = std::collections::BTreeSet::new();
                for _ in 0..30 {
                    let (code, body) = get(gw, "extra.example.com", "/v2").await?;
                    if code == 200 {
                        if let Some(p) = body.split_whitespace().find(|w| w.starts_with("pod=")) {
                            pods.insert(p.to_string());
                        }
                    }
                }
                Ok((pods.len() == 3).then_some(()))
            },
        )
        .await?;
        ns.api::<Ingress>()
            .delete("extra", &DeleteParams::default())
            .await?;
        wait_until("deleted Ingress gone", Duration::from_secs(30), || async {
            Ok((get(gw, "extra.example.com", "/v2").await?.0 == 404).then_some(()))
        })
        .await?;
        traffic
            .finish("Service traffic during Ingress/Service/scale changes")
            .await?;

        // Kill one pod's xDS sidecar: its Envoy keeps serving the last config
        // (traffic straight to that pod), and the Service keeps serving.
        let victim = &pods_before[0];
        let victim_name = victim.metadata.name.clone().unwrap_or_default();
        let pod_ip = victim
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or_else(|| anyhow!("no pod IP"))?;
        let direct: SocketAddr = format!("{pod_ip}:8080").parse()?;
        let via_service = Traffic::start(gw, "shop.example.com", "/login");
        let via_pod = Traffic::start(direct, "shop.example.com", "/login");
        kill_sidecar(&tenant, &victim_name)?;
        let restarted = wait_until(
            "sidecar restarted and pod Ready again",
            Duration::from_secs(60),
            || async {
                let p = Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
                    .get(&victim_name)
                    .await?;
                let xds = pod_restarts(&p).iter().any(|(n, r)| n == "xds" && *r >= 1);
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                Ok((xds && ready).then_some(p))
            },
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        via_pod
            .finish("direct to the pod whose sidecar was killed")
            .await?;
        via_service
            .finish("Service traffic while a sidecar restarts")
            .await?;
        assert_eq!(restarted.metadata.uid, victim.metadata.uid);

        // Same pods; no Envoy ever restarted; the restarted sidecar follows changes again.
        let after = gateway_pods(&c, &tenant).await?;
        let uids = |ps: &[Pod]| {
            ps.iter()
                .map(|p| p.metadata.uid.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(uids(&after), uids(&pods_before), "gateway pods replaced");
        for p in &after {
            let envoy = pod_restarts(p)
                .into_iter()
                .find(|(n, _)| n == "envoy")
                .map(|(_, r)| r);
            assert_eq!(envoy, Some(0), "Envoy restarted");
        }
        create_ingress(&ns, "after", "after.example.com", "/", "login").await?;
        served_from(direct, "after.example.com", "/", &ns.name).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    delete_tgw(&c, &tenant).await;
    ns.cleanup().await?;
    result
}
