//! Issue 15 item 7, second half: is the rare refused connect through a
//! NodePort (tolerated as 1 in 1,000 by `Traffic::finish_via_node_port`)
//! ours or kube-proxy's? This experiment sends the same new-connection-per-
//! request traffic to a plain NodePort Service that is not tenant-gateway's
//! — two echo pods, nothing of ours in the path — while other Services and
//! endpoints of the cluster change, which is when the refused connects were
//! seen. It asserts none is refused or unanswered: a failure reproduces the
//! defect without tenant-gateway.
//!
//! Not in `hack/e2e`'s default run (it takes minutes and is an experiment):
//! `hack/e2e --test nodeport -- --ignored` (see docs/reliability.md). It
//! fails: on 2026-12-04, 150 s, 103,554 answered, 4 refused and 4 timed out
//! after connecting — the NodePort path does this without tenant-gateway.

use anyhow::Result;
use e2e::gateway::*;
use e2e::{client, guarded, node_internal_ip, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the traffic runs (`NODEPORT_REPRO_SECS`, default 180).
fn duration() -> Duration {
    let secs = std::env::var("NODEPORT_REPRO_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "experiment: hack/e2e --test nodeport -- --ignored"]
async fn a_plain_node_port_service_refuses_no_connect_while_other_services_and_endpoints_change(
) -> Result<()> {
    let c = client().await?;
    let ns = TestNamespace::create("nodeport-plain").await?;
    let result = guarded(async {
        deploy_echo(&ns, "plain", 2).await?;
        deploy_echo(&ns, "churn", 1).await?;
        let svcs = ns.api::<Service>();
        let np = serde_json::json!({"spec": {"type": "NodePort"}});
        let svc = svcs
            .patch("plain", &PatchParams::default(), &Patch::Merge(&np))
            .await?;
        let port = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.first().and_then(|p| p.node_port))
            .ok_or_else(|| anyhow::anyhow!("no NodePort"))?;
        let ip = node_internal_ip(&c).await?;
        let addr: SocketAddr = format!("{ip}:{port}").parse()?;
        served_from(addr, "plain.example.com", "/", &ns.name).await?;

        // Churn: every second another Service appears or goes and the churn
        // Deployment scales between 1 and 3, so every kube-proxy rewrites
        // its rules again and again.
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(AtomicUsize::new(0));
        let churn = {
            let (stop, changes) = (stop.clone(), changes.clone());
            let (svcs, deps) = (ns.api::<Service>(), ns.api::<Deployment>());
            tokio::spawn(async move {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("extra-{}", i % 4);
                    if i % 8 < 4 {
                        let s: Service = obj(serde_json::json!({
                            "metadata": {"name": name},
                            "spec": {"selector": {"app": "churn"},
                                     "ports": [{"port": 80, "targetPort": 8080}]}
                        }));
                        let _ = svcs.create(&PostParams::default(), &s).await;
                    } else {
                        let _ = svcs.delete(&name, &DeleteParams::default()).await;
                    }
                    let scale = serde_json::json!({"spec": {"replicas": 1 + (i % 3)}});
                    let _ = deps
                        .patch("churn", &PatchParams::default(), &Patch::Merge(&scale))
                        .await;
                    changes.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        let traffic = Traffic::start(addr, "plain.example.com", "/");
        tokio::time::sleep(duration()).await;
        stop.store(true, Ordering::Relaxed);
        churn.await?;
        eprintln!(
            "{} cluster changes during the run",
            changes.load(Ordering::Relaxed)
        );
        traffic
            .finish("new connection per request to a plain NodePort Service")
            .await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    ns.cleanup().await?;
    result
}
