//! Placement, autoscaling and hostNetwork on the real cluster (one node or
//! more; the proofs that need two — replicas on different nodes, a drain under
//! load, a tainted ingress node — are in nodes.rs).
//!
//! The two tests are serialized by a lock: the hostNetwork one restarts the
//! operator with `TG_ALLOW_HOST_NETWORK=true` and restores it at the end.

use anyhow::{anyhow, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

async fn create_tgw_spec(c: &Client, name: &str, spec: serde_json::Value) -> Result<()> {
    let tgw: kube::api::DynamicObject = obj(serde_json::json!({
        "apiVersion": API, "kind": "TenantGateway",
        "metadata": {"name": name},
        "spec": spec,
    }));
    tgw_api(c).create(&PostParams::default(), &tgw).await?;
    Ok(())
}

async fn the_node(c: &Client) -> Result<String> {
    let nodes = Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await?;
    nodes
        .items
        .first()
        .and_then(|n| n.metadata.name.clone())
        .ok_or_else(|| anyhow!("no Node"))
}

/// The last node by name and its InternalIP: on a multi-node cluster an extra
/// node (`tg-node-2`), in its own network namespace.
async fn last_node(c: &Client) -> Result<(String, String)> {
    let mut nodes = Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await?
        .items;
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let n = nodes.last().ok_or_else(|| anyhow!("no Node"))?;
    let ip = n
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .ok_or_else(|| anyhow!("node without InternalIP"))?;
    Ok((n.metadata.name.clone().unwrap_or_default(), ip))
}

async fn label_node(c: &Client, node: &str, key: &str, value: Option<&str>) -> Result<()> {
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    Api::<Node>::all(c.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn fleet_pods(c: &Client, ns: &str, tenant: &str) -> Result<Vec<Pod>> {
    let sel = ListParams::default().labels(&format!(
        "app.kubernetes.io/managed-by=tenant-gateway,tenantgateway.io/tenant={tenant},app.kubernetes.io/component=envoy"
    ));
    Ok(Api::<Pod>::namespaced(c.clone(), ns)
        .list(&sel)
        .await?
        .items)
}

async fn wait_condition(c: &Client, name: &str, ty: &str, want: &str) -> Result<String> {
    let r = wait_until(
        &format!("TenantGateway {name} {ty}={want}"),
        Duration::from_secs(180),
        || async {
            let t = tgw_api(c).get(name).await?;
            Ok(condition(&t, ty).filter(|(s, _)| s == want).map(|(_, m)| m))
        },
    )
    .await;
    r.map_err(|e| e.context(operator_logs(30)))
}

/// A fleet pinned by nodeSelector waits Pending until a node carries the
/// label, then runs there and serves; autoscaling creates an HPA that the
/// cluster's HPA controller acts on (the Deployment is created without
/// replicas, the HPA raises it to minReplicas) and a PDB for minReplicas 2;
/// the statuses publish the node address with the NodePorts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selector_pins_the_fleet_and_the_hpa_owns_its_replicas() -> Result<()> {
    if skip_requested("node_selector_pins_the_fleet_and_the_hpa_owns_its_replicas") {
        return Ok(());
    }
    let _serial = SERIAL.lock().await;
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("placed").await?;
    let sfx = ns.name[ns.name.len() - 6..].to_string();
    let tenant = format!("placed-{sfx}");
    let label = format!("tenantgateway.io/e2e-ingress-{sfx}");
    let node = the_node(&c).await?;
    deploy_echo(&ns, "web", 1).await?;
    create_ingress(&ns, "web", "placed.example.com", "/", "web").await?;
    create_tgw_spec(
        &c,
        &tenant,
        serde_json::json!({
            "namespaces": {"names": [ns.name]},
            "service": {"type": "NodePort"},
            "placement": {"nodeSelector": {&label: "true"}},
            "autoscaling": {"minReplicas": 2, "maxReplicas": 3},
        }),
    )
    .await?;
    let result = guarded(async {
        let deployments = Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS);
        let name = format!("tgw-{tenant}");
        // The HPA controller scales the replica-less Deployment to its minimum.
        wait_until(
            "the HPA sets 2 replicas",
            Duration::from_secs(120),
            || async {
                let d = deployments.get_opt(&name).await?;
                Ok(d.and_then(|d| d.spec?.replicas)
                    .filter(|r| *r == 2)
                    .map(|_| ()))
            },
        )
        .await?;
        let hpa = Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), SYSTEM_NS)
            .get(&name)
            .await?;
        let spec = hpa.spec.ok_or_else(|| anyhow!("HPA without spec"))?;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 3));
        assert_eq!(spec.scale_target_ref.name, name);
        let pdb = Api::<PodDisruptionBudget>::namespaced(c.clone(), SYSTEM_NS)
            .get(&name)
            .await?;
        assert!(pdb.spec.and_then(|s| s.max_unavailable).is_some());

        // No node has the label: the pods exist and stay unscheduled.
        let pending = wait_until(
            "2 unscheduled gateway pods",
            Duration::from_secs(60),
            || async {
                let pods = fleet_pods(&c, SYSTEM_NS, &tenant).await?;
                let unscheduled = pods
                    .iter()
                    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
                    .count();
                Ok((pods.len() == 2 && unscheduled == 2).then_some(pods))
            },
        )
        .await?;
        let selector = pending[0]
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default();
        assert_eq!(selector.get(&label).map(String::as_str), Some("true"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = tgw_api(&c).get(&tenant).await?;
        assert_eq!(
            condition(&t, "Ready").map(|c| c.0).as_deref(),
            Some("False")
        );

        // Label the node: both replicas land there and serve.
        label_node(&c, &node, &label, Some("true")).await?;
        let addr = ready_gateway(&c, &tenant).await?;
        served_from(addr, "placed.example.com", "/", &ns.name).await?;
        for p in fleet_pods(&c, SYSTEM_NS, &tenant).await? {
            let on = p.spec.as_ref().and_then(|s| s.node_name.clone());
            assert_eq!(on.as_deref(), Some(node.as_str()));
        }

        // A NodePort gateway publishes the node's address with its NodePorts,
        // in the TenantGateway status and in the Ingress status, not the
        // unreachable-from-outside cluster IP.
        let node_ip = addr.ip().to_string();
        let t = wait_until(
            "TenantGateway status shows the node address",
            Duration::from_secs(60),
            || async {
                let t = tgw_api(&c).get(&tenant).await?;
                let first = &t.data["status"]["addresses"][0];
                Ok((first["value"] == node_ip.as_str()).then_some(first.clone()))
            },
        )
        .await?;
        assert_eq!(t["type"], "IPAddress");
        assert_eq!(
            t["ports"][0],
            i64::from(addr.port()),
            "the http NodePort first: {t}"
        );
        let ing = wait_until(
            "Ingress status shows the node address",
            Duration::from_secs(60),
            || async {
                let i = ns
                    .api::<k8s_openapi::api::networking::v1::Ingress>()
                    .get("web")
                    .await?;
                let lb = i
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|l| l.ingress)
                    .unwrap_or_default();
                Ok(
                    (lb.first().and_then(|a| a.ip.as_deref()) == Some(node_ip.as_str()))
                        .then_some(lb),
                )
            },
        )
        .await?;
        let ports: Vec<i32> = ing[0].ports.iter().flatten().map(|p| p.port).collect();
        assert_eq!(ports.len(), 2, "http and https NodePorts: {ports:?}");
        assert_eq!(ports[0], i32::from(addr.port()));
        // The published address answers.
        served_from(
            SocketAddr::new(addr.ip(), ports[0] as u16),
            "placed.example.com",
            "/",
            &ns.name,
        )
        .await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &tenant).await;
    let _ = label_node(&c, &node, &label, None).await;
    ns.cleanup().await?;
    result
}

fn set_operator_env(value: Option<&str>) -> Result<()> {
    let mut set = kubectl();
    set.args(["-n", SYSTEM_NS, "set", "env", "deployment/tenant-gateway"]);
    match value {
        Some(v) => set.arg(format!("TG_ALLOW_HOST_NETWORK={v}")),
        None => set.arg("TG_ALLOW_HOST_NETWORK-"),
    };
    run(set)?;
    wait_operator_rollout()
}

/// hostNetwork is refused until the operator allows it; then the fleet runs
/// in the node's network namespace (in a namespace that admits privileged
/// pods) and answers on the node address on its own listener port; a second
/// hostNetwork tenant on the same nodes is refused, naming the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_fleet_answers_on_the_node_address() -> Result<()> {
    if skip_requested("host_network_fleet_answers_on_the_node_address") {
        return Ok(());
    }
    let _serial = SERIAL.lock().await;
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("hostnet").await?;
    let sfx = ns.name[ns.name.len() - 6..].to_string();
    let (first, second) = (format!("hostnet-{sfx}"), format!("hostnet2-{sfx}"));
    let gw_ns = format!("hostnet-gw-{sfx}");
    let namespaces = Api::<Namespace>::all(c.clone());
    let privileged: Namespace = obj(serde_json::json!({
        "metadata": {"name": gw_ns, "labels": {
            "pod-security.kubernetes.io/enforce": "privileged",
            e2e::E2E_LABEL: "true",
        }}
    }));
    namespaces
        .create(&PostParams::default(), &privileged)
        .await?;
    deploy_echo(&ns, "web", 1).await?;
    create_ingress(&ns, "web", "hostnet.example.com", "/", "web").await?;
    // On the last node: with two nodes, the one in its own network namespace.
    let (node, node_ip) = last_node(&c).await?;
    let spec = |http: u16| {
        serde_json::json!({
            "namespaces": {"names": [ns.name]},
            "gatewayNamespace": gw_ns,
            "replicas": 1,
            "service": {"type": "ClusterIP"},
            "placement": {"nodeSelector": {"kubernetes.io/hostname": node}},
            "hostNetwork": true,
            "listeners": {"httpPort": http, "httpsPort": http + 363},
        })
    };
    let result = guarded(async {
        create_tgw_spec(&c, &first, spec(18080)).await?;
        let refused = wait_condition(&c, &first, "Accepted", "False").await?;
        assert!(
            refused.contains("spec.hostNetwork") && refused.contains("--allow-host-network"),
            "{refused}"
        );
        set_operator_env(Some("true"))?;
        wait_condition(&c, &first, "Ready", "True").await?;
        let pods = fleet_pods(&c, &gw_ns, &first).await?;
        assert_eq!(pods.len(), 1);
        let pod = &pods[0];
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(node.as_str())
        );
        assert_eq!(pod.spec.as_ref().and_then(|s| s.host_network), Some(true));
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.dns_policy.as_deref()),
            Some("ClusterFirstWithHostNet")
        );
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
            Some(node_ip.as_str()),
            "a hostNetwork pod has the node's address"
        );
        let addr: SocketAddr = format!("{node_ip}:18080").parse()?;
        served_from(addr, "hostnet.example.com", "/", &ns.name).await?;

        // A second hostNetwork tenant on the same nodes would bind the same
        // fixed ports: refused, naming the first; no Deployment for it.
        create_tgw_spec(&c, &second, spec(19080)).await?;
        let conflict = wait_condition(&c, &second, "Accepted", "False").await?;
        assert!(
            conflict.contains(&format!("TenantGateway {first} (older)"))
                && conflict.contains("8002/TCP"),
            "{conflict}"
        );
        let d = Api::<Deployment>::namespaced(c.clone(), &gw_ns)
            .get_opt(&format!("tgw-{second}"))
            .await?;
        assert!(d.is_none(), "no Deployment for the refused tenant");
        // The first still serves.
        served_from(addr, "hostnet.example.com", "/", &ns.name).await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &second).await;
    delete_tgw(&c, &first).await;
    let restored = set_operator_env(None);
    let _ = namespaces.delete(&gw_ns, &DeleteParams::background()).await;
    ns.cleanup().await?;
    result.and(restored)
}
