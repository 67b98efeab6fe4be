//! The operator installed with Helm (`charts/tenant-gateway`) instead of
//! `kubectl apply -k config`: `helm install --create-namespace` with the local
//! cluster's images, two tenants Ready and serving, then `helm uninstall`.
//!
//! How it shares the cluster with the other e2e tests: it runs in its own
//! test binary with this one test, and cargo runs test binaries one after
//! another (`hack/e2e` runs them all), so no other test runs while it holds
//! the cluster. Every other binary installs `config/` with
//! `install_operator()` (once per binary, `kubectl apply --server-side`),
//! which would collide with the release's objects (same names). So this test
//! takes the install over for its duration and hands it back:
//!
//! 1. deletes `config/`'s operator objects (RBAC, Deployment) if another
//!    binary applied them, and any release left by an earlier, killed run.
//!    The CRD stays (deleting it would delete every TenantGateway), and so
//!    does the Namespace; Helm skips a CRD of `crds/` that already exists.
//! 2. `helm install` with non-default values, checks that the Deployment is
//!    the release's and that the values reached the pod, two tenants serve.
//! 3. always (pass or fail): `helm uninstall`, checks that the release's
//!    Deployment and ClusterRoles are gone, and re-applies `config/` when it
//!    was installed before, leaving the cluster as it found it.
//!
//! Not `#[ignore]`d: `hack/e2e` runs it with the rest. Alone:
//! `hack/e2e --test helm`. Do not run it while another e2e process uses the
//! same cluster (the same holds for `faults` and `audit`, which stop or patch
//! the operator). Helm: `$HELM`, else `hack/install-helm` (builds it once).

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ListParams};
use kube::Client;
use std::process::Command;
use std::time::Duration;

const RELEASE: &str = "tenant-gateway";
/// Set on the operator's pods through `podAnnotations`: proves the running
/// operator is the release's.
const POD_ANNOTATION: &str = "tenantgateway.io/e2e-installed-by";
const LOG_LEVEL: &str = "info,tenant_gateway=debug";

/// The helm binary: `$HELM`, else the one `hack/install-helm` builds (and prints last).
fn helm_bin() -> Result<String> {
    if let Ok(h) = std::env::var("HELM") {
        return Ok(h);
    }
    let out = Command::new(repo().join("hack/install-helm"))
        .output()
        .context("running hack/install-helm")?;
    ensure!(
        out.status.success(),
        "hack/install-helm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("hack/install-helm printed no path"))
}

/// `helm ARGS` against the cluster under test (the same kubeconfig as `kubectl()`).
fn helm(bin: &str, args: &[&str]) -> Result<String> {
    let mut c = Command::new(bin);
    c.args(args);
    if std::env::var_os("KUBECONFIG").is_none() {
        c.env("KUBECONFIG", e2e::local_cluster_kubeconfig());
    }
    let out = c.output().with_context(|| format!("running {bin}"))?;
    if !out.status.success() {
        bail!(
            "helm {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn release_exists(bin: &str) -> Result<bool> {
    let out = helm(bin, &["list", "-n", SYSTEM_NS, "-q", "--all"])?;
    Ok(out.lines().any(|l| l.trim() == RELEASE))
}

fn uninstall(bin: &str) -> Result<()> {
    if release_exists(bin)? {
        helm(
            bin,
            &[
                "uninstall",
                RELEASE,
                "-n",
                SYSTEM_NS,
                "--wait",
                "--timeout",
                "120s",
            ],
        )?;
    }
    Ok(())
}

/// Deletes what `install_operator()` applied, but the CRD and the Namespace.
/// True when there was such an install. Called after [`uninstall`]: what is
/// left of the operator's objects is not the release's.
async fn remove_config_install(c: &Client) -> Result<bool> {
    let deployment = Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS)
        .get_opt("tenant-gateway")
        .await?;
    let role = Api::<ClusterRole>::all(c.clone())
        .get_opt("tenant-gateway-operator")
        .await?;
    if deployment.is_none() && role.is_none() {
        return Ok(false);
    }
    for what in ["config/manager/deployment.yaml", "config/rbac"] {
        let mut del = kubectl();
        del.args(["delete", "--ignore-not-found", "--wait=true"]);
        if what.ends_with(".yaml") {
            del.arg("-f");
        } else {
            del.arg("-k");
        }
        del.arg(repo().join(what));
        run(del)?;
    }
    // The operator's pods are gone too (a terminating one would still hold the Lease).
    wait_until(
        "config/'s operator pods gone",
        Duration::from_secs(90),
        || async {
            let pods = Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
                .list(&ListParams::default().labels(
                    "app.kubernetes.io/name=tenant-gateway,app.kubernetes.io/component=operator",
                ))
                .await?;
            Ok(pods.items.is_empty().then_some(()))
        },
    )
    .await?;
    Ok(true)
}

/// The running operator is the release's, with the values this test set.
async fn check_release_objects(c: &Client) -> Result<()> {
    let d = Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS)
        .get("tenant-gateway")
        .await?;
    let annotations = d.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        annotations
            .get("meta.helm.sh/release-name")
            .map(String::as_str)
            == Some(RELEASE),
        "deployment/tenant-gateway is not the release's: annotations {annotations:?}"
    );
    let pods =
        Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
            .list(&ListParams::default().labels(
                "app.kubernetes.io/name=tenant-gateway,app.kubernetes.io/component=operator",
            ))
            .await?;
    let pod = pods
        .items
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .ok_or_else(|| anyhow!("no operator pod"))?;
    let pa = pod.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        pa.get(POD_ANNOTATION).map(String::as_str) == Some("helm"),
        "operator pod lacks podAnnotations' {POD_ANNOTATION}: {pa:?}"
    );
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| anyhow!("pod without spec"))?;
    let container = &spec.containers[0];
    let env = |name: &str| {
        container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    ensure!(
        container.image.as_deref() == Some("localhost/tenant-gateway:dev"),
        "operator image {:?}",
        container.image
    );
    ensure!(
        env("TG_IMAGE").as_deref() == Some("localhost/tenant-gateway:dev"),
        "TG_IMAGE {:?}",
        env("TG_IMAGE")
    );
    ensure!(
        env("TG_ENVOY_IMAGE").as_deref() == Some("localhost/envoy:1.40"),
        "TG_ENVOY_IMAGE {:?}",
        env("TG_ENVOY_IMAGE")
    );
    ensure!(
        env("RUST_LOG").as_deref() == Some(LOG_LEVEL),
        "RUST_LOG {:?}",
        env("RUST_LOG")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_serves_two_tenants_and_uninstalls() -> Result<()> {
    if skip_requested("helm_install_serves_two_tenants_and_uninstalls") {
        return Ok(());
    }
    let bin = helm_bin()?;
    let c = client().await?;
    // A release left behind by a killed run, then config/'s install.
    uninstall(&bin)?;
    let had_config_install = remove_config_install(&c).await?;

    let chart = repo().join("charts/tenant-gateway");
    let annotation = format!("podAnnotations.{}=helm", POD_ANNOTATION.replace('.', "\\."));
    let log_level = format!("logLevel={}", LOG_LEVEL.replace(',', "\\,"));
    let installed = helm(
        &bin,
        &[
            "install",
            RELEASE,
            &chart.display().to_string(),
            "--namespace",
            SYSTEM_NS,
            "--create-namespace",
            "--set",
            "image.repository=localhost/tenant-gateway",
            "--set",
            "image.tag=dev",
            "--set",
            "envoyImage.repository=localhost/envoy",
            "--set-string",
            "envoyImage.tag=1.40",
            "--set",
            &log_level,
            "--set-string",
            &annotation,
            "--wait",
            "--timeout",
            "180s",
        ],
    );

    let result = match installed {
        Err(e) => Err(e.context(operator_logs(40))),
        Ok(_) => guarded(two_tenants_serve(&c)).await,
    };

    // Always: the release goes, config/ comes back if it was there.
    let uninstalled = async {
        uninstall(&bin)?;
        ensure!(!release_exists(&bin)?, "release {RELEASE} still listed");
        let d = Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS)
            .get_opt("tenant-gateway")
            .await?;
        ensure!(d.is_none(), "helm uninstall left deployment/tenant-gateway");
        for cr in [
            "tenant-gateway-operator",
            "tenant-gateway-tenant-reader",
            "tenant-gateway-gateway-reader",
        ] {
            let left = Api::<ClusterRole>::all(c.clone()).get_opt(cr).await?;
            ensure!(left.is_none(), "helm uninstall left ClusterRole {cr}");
        }
        if had_config_install {
            install_operator()?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    result?;
    uninstalled
}

async fn two_tenants_serve(c: &Client) -> Result<()> {
    check_release_objects(c).await?;
    let acme_ns = TestNamespace::create("helm-acme").await?;
    let globex_ns = TestNamespace::create("helm-globex").await?;
    let sfx = &acme_ns.name[acme_ns.name.len() - 6..];
    let (acme, globex) = (format!("acme-{sfx}"), format!("globex-{sfx}"));
    for ns in [&acme_ns, &globex_ns] {
        deploy_echo(ns, "login", 1).await?;
        create_ingress(ns, "login", "shop.example.com", "/login", "login").await?;
    }
    create_tgw(
        &c.clone(),
        &acme,
        serde_json::json!({"names": [acme_ns.name]}),
    )
    .await?;
    create_tgw(
        &c.clone(),
        &globex,
        serde_json::json!({"names": [globex_ns.name]}),
    )
    .await?;
    let result = guarded(async {
        let a = ready_gateway(c, &acme).await?;
        let g = ready_gateway(c, &globex).await?;
        served_from(a, "shop.example.com", "/login", &acme_ns.name).await?;
        served_from(g, "shop.example.com", "/login", &globex_ns.name).await?;
        // Each tenant's gateway reaches only its own backend.
        for i in 0..10 {
            let (code, body) = get(a, "shop.example.com", "/login").await?;
            ensure!(
                code == 200 && body.contains(&format!("ns={} ", acme_ns.name)),
                "request {i} via acme: {code} {body}"
            );
            let (code, body) = get(g, "shop.example.com", "/login").await?;
            ensure!(
                code == 200 && body.contains(&format!("ns={} ", globex_ns.name)),
                "request {i} via globex: {code} {body}"
            );
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(c, &acme).await;
    delete_tgw(c, &globex).await;
    // The fleets are gone before the operator is uninstalled (their owner is
    // the TenantGateway; the garbage collector deletes them, not the operator).
    let gone = wait_until(
        "both tenants' fleets garbage-collected",
        Duration::from_secs(90),
        || async {
            let mut left = 0;
            for t in [&acme, &globex] {
                left += Api::<Deployment>::all(c.clone())
                    .list(&managed_selector(t))
                    .await?
                    .items
                    .len();
            }
            Ok((left == 0).then_some(()))
        },
    )
    .await;
    acme_ns.cleanup().await?;
    globex_ns.cleanup().await?;
    result?;
    gone
}
