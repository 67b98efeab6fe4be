//! `tenant-gateway migrate` against the live cluster (issue 13): the corpus of
//! ingress-nginx Ingresses (`operator/tests/fixtures/migrate/`, modelled on
//! ingress-nginx's documentation examples) applied to the real API server,
//! then read back through the admin kubeconfig by namespace and by tenant. The
//! report must be the one the same files give offline: the live reading can
//! never disagree with the manifests, and both use the translation's table.

use anyhow::{Context, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, TestNamespace};
use operator::migrate::{read_cluster, read_manifests, render, report, OutputFormat, Selection};

/// The corpus with its namespaces and tenant renamed to this run's.
fn corpus_for(shop: &str, legacy: &str, tenant: &str, dir: &std::path::Path) -> Result<()> {
    let src = repo().join("operator/tests/fixtures/migrate");
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(&src)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?
            .replace("namespace: shop", &format!("namespace: {shop}"))
            .replace("namespace: legacy", &format!("namespace: {legacy}"))
            .replace("names: [shop]", &format!("names: [{shop}]"))
            .replace("name: storefront", &format!("name: {tenant}"));
        let name = path.file_name().context("fixture name")?;
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

fn verdicts(json: &str) -> Result<Vec<(String, String, String)>> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    let mut out = Vec::new();
    for ing in v["ingresses"].as_array().context("ingresses")? {
        let name = format!(
            "{}/{}",
            ing["namespace"].as_str().unwrap_or(""),
            ing["name"].as_str().unwrap_or("")
        );
        for a in ing["annotations"].as_array().context("annotations")? {
            let key = a["key"].as_str().unwrap_or("").to_string();
            out.push((
                name.clone(),
                key,
                a["level"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_reads_the_live_cluster_as_it_reads_the_same_manifests() -> Result<()> {
    if skip_requested("migrate_reads_the_live_cluster_as_it_reads_the_same_manifests") {
        return Ok(());
    }
    install_operator()?;
    if std::env::var_os("KUBECONFIG").is_none() {
        // The library reads the kubeconfig in use, as the command does.
        std::env::set_var("KUBECONFIG", e2e::local_cluster_kubeconfig());
    }
    let c = client().await?;
    let shop = TestNamespace::create("shop").await?;
    let legacy = TestNamespace::create("legacy").await?;
    let tenant = format!("storefront-{}", &shop.name[shop.name.len() - 6..]);
    let dir = std::env::temp_dir().join(format!("migrate-corpus-{}", shop.name));
    corpus_for(&shop.name, &legacy.name, &tenant, &dir)?;
    let result = guarded(async {
        let mut apply = kubectl();
        apply
            .args(["apply", "--server-side", "--field-manager", "e2e", "-f"])
            .arg(&dir);
        run(apply)?;

        let offline = |selection: &Selection| -> Result<String> {
            let r = report(read_manifests(std::slice::from_ref(&dir))?, selection)?;
            Ok(render(&r, OutputFormat::Json)?)
        };
        let live = |selection: Selection| async move {
            let r = report(read_cluster(&selection).await?, &selection)?;
            anyhow::Ok(render(&r, OutputFormat::Json)?)
        };
        let by_namespace = Selection {
            namespace: Some(shop.name.clone()),
            tenant: None,
        };
        let want = offline(&by_namespace)?;
        let got = live(by_namespace).await?;
        assert_eq!(
            verdicts(&got)?,
            verdicts(&want)?,
            "live and offline verdicts, namespace {}",
            shop.name
        );
        assert_eq!(
            got, want,
            "the whole report (problems, tenants) is the same"
        );

        let got = verdicts(&got)?;
        let level = |ing: &str, key: &str| {
            got.iter()
                .find(|(i, k, _)| {
                    i == &format!("{}/{ing}", shop.name)
                        && k == &format!("nginx.ingress.kubernetes.io/{key}")
                })
                .map(|(_, _, l)| l.clone())
        };
        assert_eq!(
            level("admin", "auth-type").as_deref(),
            Some("supported"),
            "basic auth, its Opaque Secret read live"
        );
        assert_eq!(level("admin", "auth-secret").as_deref(), Some("supported"));
        assert_eq!(level("dashboard", "auth-url").as_deref(), Some("refused"));
        assert_eq!(
            level("snippets", "configuration-snippet").as_deref(),
            Some("refused")
        );
        assert_eq!(
            level("limited", "limit-connections").as_deref(),
            Some("differs")
        );
        let v: serde_json::Value = serde_json::from_str(&want)?;
        assert_eq!(
            v["tenants"][0]["tenant"].as_str(),
            Some(tenant.as_str()),
            "{want}"
        );

        // By tenant: the namespaces the TenantGateway holds, as the operator arbitrates them.
        let by_tenant = Selection {
            namespace: None,
            tenant: Some(tenant.clone()),
        };
        let got = live(by_tenant.clone()).await?;
        assert_eq!(
            got,
            offline(&by_tenant)?,
            "live and offline, tenant {tenant}"
        );
        // The Ingress of a namespace no tenant holds is reported with its problem.
        let by_legacy = Selection {
            namespace: Some(legacy.name.clone()),
            tenant: None,
        };
        let got = live(by_legacy.clone()).await?;
        assert_eq!(
            got,
            offline(&by_legacy)?,
            "live and offline, namespace {}",
            legacy.name
        );
        assert!(got.contains("custom-http-errors"), "{got}");
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &tenant).await;
    let _ = std::fs::remove_dir_all(&dir);
    shop.cleanup().await?;
    legacy.cleanup().await?;
    result
}
