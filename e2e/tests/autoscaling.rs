//! `spec.autoscaling` end to end: the operator's HorizontalPodAutoscaler,
//! fed by a real metrics pipeline (kubelet → metrics-server →
//! metrics.k8s.io, deployed by `hack/metrics-server up` unless the cluster
//! already serves that API), scales the Envoy fleet out under load through
//! the gateway and back to its minimum when the load stops.
//!
//! Nothing here assumes one node: the load goes to the NodePort of the
//! first node's InternalIP (kube-proxy forwards it to pods on any node) and
//! replicas are counted from the Deployment's and the HPA's status.
//!
//! The measured times are printed (`--nocapture`) and recorded in
//! docs/user-guide.md (autoscaling).

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, PostParams};
use kube::Client;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOST: &str = "scale.example.com";
const MIN: i32 = 1;
const MAX: i32 = 3;
/// Of the pods' CPU requests (Envoy's default 100m and the sidecar's 10m):
/// idle fleets use a few percent, the load below several times this.
const TARGET_CPU: i32 = 20;
/// The HPA's scale-down window (the cluster default is 300 s).
const SCALE_DOWN_WINDOW_S: u64 = 20;
/// Concurrent keep-alive request loops from this host.
const LOAD_LOOPS: usize = 4;

/// Whether the API server serves `v1beta1.metrics.k8s.io` (APIService Available).
async fn metrics_api_available(c: &Client) -> Result<bool> {
    let svc = Api::<APIService>::all(c.clone())
        .get_opt("v1beta1.metrics.k8s.io")
        .await?;
    Ok(svc
        .and_then(|s| s.status?.conditions)
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True"))
}

/// The resource metrics API, once per test run: the cluster's own if it has
/// one, else `hack/metrics-server up` (builds and imports the image if it is
/// not cached, deploys, waits until every node has metrics).
async fn ensure_metrics_api(c: &Client) -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Some(done) = DONE.get() {
        return done.clone().map_err(|e| anyhow!(e));
    }
    let result = if metrics_api_available(c).await? {
        Ok(())
    } else {
        let script = repo().join("hack/metrics-server");
        let mut up = Command::new(&script);
        up.arg("up");
        if let Ok(k) = std::env::var("KUBECTL") {
            up.env("KUBECTL", k);
        }
        let started = Instant::now();
        let out = up
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        eprintln!(
            "hack/metrics-server up: {:.0?}\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "hack/metrics-server up failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    DONE.get_or_init(|| result).clone().map_err(|e| anyhow!(e))
}

/// What the HPA reports: (current CPU utilization if measured, desired
/// replicas, the ScalingActive condition's status and message).
fn hpa_state(h: &HorizontalPodAutoscaler) -> (Option<i32>, i32, String) {
    let st = h.status.as_ref();
    let utilization = st
        .and_then(|s| s.current_metrics.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu")
        .and_then(|r| r.current.average_utilization);
    let desired = st.map(|s| s.desired_replicas).unwrap_or(0);
    let active = st
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "ScalingActive")
        .map(|c| {
            format!(
                "ScalingActive={} {}",
                c.status,
                c.message.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_else(|| "no ScalingActive condition".into());
    (utilization, desired, active)
}

/// (spec.replicas, status.replicas, status.readyReplicas) of the fleet.
fn deployment_counts(d: &Deployment) -> (i32, i32, i32) {
    let spec = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let st = d.status.as_ref();
    (
        spec,
        st.and_then(|s| s.replicas).unwrap_or(0),
        st.and_then(|s| s.ready_replicas).unwrap_or(0),
    )
}

/// A tenant with `autoscaling {min 1, max 3, target 20%, scale-down window
/// 20 s}`: idle it runs one replica with the HPA measuring its CPU; under
/// load through the gateway the HPA raises its desired replicas and the
/// Deployment runs more than one Ready replica, with every request answered;
/// when the load stops it returns to one replica and still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_scales_the_fleet_out_under_load_and_back() -> Result<()> {
    if skip_requested("hpa_scales_the_fleet_out_under_load_and_back") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    ensure_metrics_api(&c).await?;
    let ns = TestNamespace::create("hpa").await?;
    let sfx = ns.name[ns.name.len() - 6..].to_string();
    let tenant = format!("hpa-{sfx}");
    deploy_echo(&ns, "web", 1).await?;
    create_ingress(&ns, "web", HOST, "/", "web").await?;
    let tgw: kube::api::DynamicObject = obj(serde_json::json!({
        "apiVersion": API, "kind": "TenantGateway",
        "metadata": {"name": tenant},
        "spec": {
            "namespaces": {"names": [ns.name]},
            "service": {"type": "NodePort"},
            "autoscaling": {
                "minReplicas": MIN,
                "maxReplicas": MAX,
                "targetCPUUtilizationPercentage": TARGET_CPU,
                "scaleDownStabilizationSeconds": SCALE_DOWN_WINDOW_S,
            },
        },
    }));
    tgw_api(&c).create(&PostParams::default(), &tgw).await?;
    let result = guarded(async {
        let name = format!("tgw-{tenant}");
        let deployments = Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS);
        let hpas = Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), SYSTEM_NS);
        let addr = ready_gateway(&c, &tenant).await?;
        served_from(addr, HOST, "/", &ns.name).await?;
        let hpa_spec = hpas.get(&name).await?.spec;
        // The spec's target reaches the HPA (a misspelt CRD field would be
        // pruned silently and leave the default 80).
        let target = hpa_spec
            .as_ref()
            .and_then(|s| s.metrics.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|m| m.resource.as_ref())
            .find(|r| r.name == "cpu")
            .and_then(|r| r.target.average_utilization);
        assert_eq!(target, Some(TARGET_CPU), "HPA CPU target");
        let behavior = hpa_spec.and_then(|s| s.behavior);
        let window = behavior
            .and_then(|b| b.scale_down)
            .and_then(|d| d.stabilization_window_seconds);
        assert_eq!(window, Some(SCALE_DOWN_WINDOW_S as i32));

        // The pipeline works before any load: the HPA measures the idle
        // fleet, below the target, and wants the minimum.
        let idle = wait_until(
            "the HPA to measure the idle fleet's CPU",
            Duration::from_secs(180),
            || async {
                let h = hpas.get(&name).await?;
                let (util, desired, active) = hpa_state(&h);
                match util {
                    Some(u) if desired == MIN => Ok(Some(u)),
                    _ => bail!("utilization {util:?}, desired {desired}; {active}"),
                }
            },
        )
        .await?;
        ensure!(
            idle < TARGET_CPU,
            "the idle fleet already uses {idle}% of its CPU request (target {TARGET_CPU}%): \
             the load would prove nothing"
        );
        eprintln!("idle: {idle}% CPU of the request, {MIN} replica");

        // Load through the gateway until the fleet has scaled out.
        let started = Instant::now();
        let load: Vec<Traffic> = (0..LOAD_LOOPS)
            .map(|_| Traffic::start_keepalive(addr, HOST, "/"))
            .collect();
        let scaled = wait_until(
            "more than minReplicas Ready under load",
            Duration::from_secs(300),
            || async {
                let h = hpas.get(&name).await?;
                let d = deployments.get(&name).await?;
                let (util, desired, active) = hpa_state(&h);
                let (_, _, ready) = deployment_counts(&d);
                if desired > MIN && ready > MIN {
                    Ok(Some((util, desired, ready)))
                } else {
                    bail!("utilization {util:?}, desired {desired}, ready {ready}; {active}")
                }
            },
        )
        .await;
        let out_after = started.elapsed();
        // The load stops whatever happened, and every request was answered.
        let mut answered = 0;
        let mut traffic_errors = Vec::new();
        for (i, t) in load.into_iter().enumerate() {
            match t.finish_via_node_port(&format!("load loop {i}")).await {
                Ok(n) => answered += n,
                Err(e) => traffic_errors.push(format!("{e:#}")),
            }
        }
        let stopped = Instant::now();
        let (util, desired, ready) = scaled?;
        ensure!(traffic_errors.is_empty(), "under load: {traffic_errors:?}");
        eprintln!(
            "scaled out after {out_after:.1?} of load: {util:?}% CPU, desired {desired}, \
             {ready} Ready ({answered} requests answered)"
        );

        // Back to the minimum once the window has passed.
        let back = wait_until(
            "back to minReplicas after the load",
            Duration::from_secs(SCALE_DOWN_WINDOW_S + 240),
            || async {
                let h = hpas.get(&name).await?;
                let d = deployments.get(&name).await?;
                let (util, desired, active) = hpa_state(&h);
                let counts = deployment_counts(&d);
                if desired == MIN && counts == (MIN, MIN, MIN) {
                    Ok(Some(util))
                } else {
                    bail!("utilization {util:?}, desired {desired}, (spec, pods, ready) {counts:?}; {active}")
                }
            },
        )
        .await?;
        let in_after = stopped.elapsed();
        eprintln!(
            "back to {MIN} replica {in_after:.1?} after the load stopped \
             (scale-down window {SCALE_DOWN_WINDOW_S} s): {back:?}% CPU"
        );
        served_from(addr, HOST, "/", &ns.name).await?;
        eprintln!(
            "AUTOSCALING: load start -> {desired} desired / {ready} Ready in {:.0} s; \
             load stop -> {MIN} in {:.0} s",
            out_after.as_secs_f64(),
            in_after.as_secs_f64()
        );
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &tenant).await;
    ns.cleanup().await?;
    result
}
