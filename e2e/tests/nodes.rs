//! Multi-node proofs (issue 14) on a cluster of at least two nodes —
//! `hack/local-cluster up --nodes 2`, which `hack/e2e` brings up by default:
//! a tenant's two replicas land on different nodes by default, a `kubectl
//! drain` of one node under load fails no kept-alive request (new connections:
//! see the test for the open drain defect it tolerates, 1 in 1,000), and a
//! tainted "ingress" node takes exactly the fleet that selects and tolerates it.
//!
//! On a one-node cluster these tests fail, saying so: they cannot prove
//! anything there. The tests run one at a time (a drain and a taint change
//! where everything else may be scheduled).

use anyhow::{anyhow, ensure, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// The Ready, schedulable nodes, by name; at least two or an error that says
/// how to get them.
async fn two_nodes(c: &Client) -> Result<Vec<String>> {
    let nodes = Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await?;
    let mut names: Vec<String> = nodes
        .items
        .iter()
        .filter(|n| {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
            ready && !cordoned
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    names.sort();
    ensure!(
        names.len() >= 2,
        "these tests need two Ready nodes, the cluster has {names:?}: \
         hack/local-cluster up --nodes 2 (hack/e2e does)"
    );
    Ok(names)
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// Ready and not terminating.
fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && e2e::pod_ready(p)
}

/// An echo backend of two replicas pinned to `node`, so that draining or
/// tainting another node measures the gateway, not the backend.
async fn deploy_echo_on(ns: &TestNamespace, name: &str, node: &str) -> Result<()> {
    deploy_echo(ns, name, 2).await?;
    let patch = serde_json::json!({"spec": {"template": {"spec": {
        "nodeSelector": {"kubernetes.io/hostname": node}
    }}}});
    ns.api::<Deployment>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    e2e::wait_deployment_ready(&ns.api::<Deployment>(), name, Duration::from_secs(120)).await?;
    Ok(())
}

/// Pods of the tenant's fleet with their nodes, once `want` are Ready and no
/// other pod of the fleet is left.
async fn settled_fleet(c: &Client, tenant: &str, want: usize) -> Result<Vec<(String, String)>> {
    wait_until(
        &format!("{want} Ready gateway pods of {tenant} and no other"),
        Duration::from_secs(180),
        || async {
            let pods = gateway_pods(c, tenant).await?;
            let ready: Vec<(String, String)> = pods
                .iter()
                .filter(|p| is_ready(p))
                .filter_map(|p| Some((p.metadata.name.clone()?, node_of(p)?)))
                .collect();
            Ok((pods.len() == want && ready.len() == want).then_some(ready))
        },
    )
    .await
}

fn kubectl_run(args: &[&str]) -> Result<String> {
    let mut k = kubectl();
    k.args(args);
    run(k)
}

/// A tenant's two replicas are spread over the two nodes with no placement
/// in the spec (the default soft spread by hostname); `kubectl drain` of the
/// node of one of them, under load, fails not one request on a kept-alive
/// connection, and of the new connections per request (through the first
/// node's NodePort, which kube-proxy balances over both pods) every request
/// sent is answered and closed (no 5xx, reset or timeout): the drain defect
/// of issue 15 item 7 — a draining Envoy held a `Connection: close`
/// connection open for its HCM `drain_timeout`, 5 s, after the answer — is
/// fixed. What stays tolerated is NodePort's refused connect, at most 1 in
/// 1,000 (`Traffic::finish_via_node_port`, isolated in tests/nodeport.rs).
/// The evicted pod's replacement lands on the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_land_on_two_nodes_and_a_drain_under_load_leaves_no_request_unanswered_and_at_most_1_in_1000_connects_refused(
) -> Result<()> {
    if skip_requested("two_replicas_land_on_two_nodes_and_a_drain_under_load_leaves_no_request_unanswered_and_at_most_1_in_1000_connects_refused") {
        return Ok(());
    }
    let _serial = SERIAL.lock().await;
    install_operator()?;
    let c = client().await?;
    let nodes = two_nodes(&c).await?;
    let (stay, drained) = (nodes[0].clone(), nodes[1].clone());
    let ns = TestNamespace::create("drain-node").await?;
    let tenant = format!("drain-node-{}", &ns.name[ns.name.len() - 6..]);
    let result = guarded(async {
        deploy_echo_on(&ns, "login", &stay).await?;
        create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
        create_tgw_with(&c, &tenant, serde_json::json!({"names": [ns.name]}), 2).await?;
        let gw = ready_gateway(&c, &tenant).await?;
        served_from(gw, "shop.example.com", "/login", &ns.name).await?;
        let fleet = settled_fleet(&c, &tenant, 2).await?;
        let on: BTreeSet<&str> = fleet.iter().map(|(_, n)| n.as_str()).collect();
        ensure!(
            on.len() == 2,
            "two replicas on two nodes by default: {fleet:?}"
        );

        let traffic = Traffic::start(gw, "shop.example.com", "/login");
        let keepalive = Traffic::start_keepalive(gw, "shop.example.com", "/login");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let node = drained.clone();
        let drain = tokio::task::spawn_blocking(move || {
            kubectl_run(&[
                "drain",
                &node,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--force",
                "--timeout=180s",
            ])
        })
        .await?;
        drain.map_err(|e| e.context(format!("kubectl drain {drained}")))?;
        let after = settled_fleet(&c, &tenant, 2).await?;
        ensure!(
            after.iter().all(|(_, n)| *n == stay),
            "after the drain both replicas run on {stay}: {after:?}"
        );
        // Traffic on past the drain, over the replacement.
        tokio::time::sleep(Duration::from_secs(2)).await;
        traffic
            .finish_via_node_port("new connection per request while a node was drained")
            .await?;
        keepalive
            .finish("keep-alive connection while a node was drained")
            .await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    let uncordon = kubectl_run(&["uncordon", &drained]);
    delete_tgw(&c, &tenant).await;
    ns.cleanup().await?;
    uncordon?;
    result
}

async fn patch_node(c: &Client, node: &str, patch: serde_json::Value) -> Result<()> {
    Api::<Node>::all(c.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A dedicated ingress node: labelled and tainted NoSchedule. The tenant
/// whose placement selects the label and tolerates the taint runs there
/// (both replicas) and serves through the other node's NodePort; a tenant
/// without placement never lands on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tainted_ingress_node_takes_only_the_fleet_that_selects_and_tolerates_it() -> Result<()> {
    if skip_requested("a_tainted_ingress_node_takes_only_the_fleet_that_selects_and_tolerates_it") {
        return Ok(());
    }
    let _serial = SERIAL.lock().await;
    install_operator()?;
    let c = client().await?;
    let nodes = two_nodes(&c).await?;
    let (general, ingress_node) = (nodes[0].clone(), nodes[1].clone());
    let ns = TestNamespace::create("ingress-node").await?;
    let sfx = ns.name[ns.name.len() - 6..].to_string();
    let (pinned, plain) = (format!("pinned-{sfx}"), format!("plain-{sfx}"));
    let key = format!("tenantgateway.io/e2e-ingress-{sfx}");
    // Existing taints of the node (none on the local cluster), kept.
    let node_api = Api::<Node>::all(c.clone());
    let taints_before = node_api
        .get(&ingress_node)
        .await?
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default();
    let mut taints = serde_json::to_value(&taints_before)?;
    if let Some(list) = taints.as_array_mut() {
        list.push(serde_json::json!({"key": key, "value": "true", "effect": "NoSchedule"}));
    }
    let result = guarded(async {
        patch_node(
            &c,
            &ingress_node,
            serde_json::json!({"metadata": {"labels": {&key: "true"}}, "spec": {"taints": taints}}),
        )
        .await?;
        deploy_echo_on(&ns, "web", &general).await?;
        create_ingress(&ns, "web", "pinned.example.com", "/", "web").await?;
        let pinned_tgw: kube::api::DynamicObject = obj(serde_json::json!({
            "apiVersion": API, "kind": "TenantGateway",
            "metadata": {"name": pinned},
            "spec": {
                "namespaces": {"names": [ns.name]},
                "replicas": 2,
                "service": {"type": "NodePort"},
                "placement": {
                    "nodeSelector": {&key: "true"},
                    "tolerations": [{"key": key, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
                },
            },
        }));
        tgw_api(&c)
            .create(&PostParams::default(), &pinned_tgw)
            .await?;
        // The same namespace cannot be claimed twice: the plain tenant gets
        // one of its own with the same backend.
        let plain_ns = TestNamespace::create("plain").await?;
        let plain_result = guarded(async {
            deploy_echo_on(&plain_ns, "web", &general).await?;
            create_ingress(&plain_ns, "web", "plain.example.com", "/", "web").await?;
            create_tgw_with(&c, &plain, serde_json::json!({"names": [plain_ns.name]}), 2).await?;

            let gw = ready_gateway(&c, &pinned).await?;
            served_from(gw, "pinned.example.com", "/", &ns.name).await?;
            let fleet = settled_fleet(&c, &pinned, 2).await?;
            ensure!(
                fleet.iter().all(|(_, n)| *n == ingress_node),
                "the pinned fleet runs on the ingress node {ingress_node}: {fleet:?}"
            );
            let gw = ready_gateway(&c, &plain).await?;
            served_from(gw, "plain.example.com", "/", &plain_ns.name).await?;
            let fleet = settled_fleet(&c, &plain, 2).await?;
            ensure!(
                fleet.iter().all(|(_, n)| *n == general),
                "the tainted node repels the fleet without the toleration: {fleet:?}"
            );
            Ok::<_, anyhow::Error>(())
        })
        .await;
        delete_tgw(&c, &plain).await;
        plain_ns.cleanup().await?;
        plain_result
    })
    .await;
    delete_tgw(&c, &pinned).await;
    let restored = patch_node(
        &c,
        &ingress_node,
        serde_json::json!({"metadata": {"labels": {&key: null}}, "spec": {"taints": taints_before}}),
    )
    .await
    .map_err(|e| anyhow!("restoring node {ingress_node}: {e}"));
    ns.cleanup().await?;
    restored?;
    result
}
