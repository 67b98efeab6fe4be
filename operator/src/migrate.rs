//! `tenant-gateway migrate`: what the gateway would make of Ingresses written
//! for ingress-nginx, from manifests or the live cluster. The verdicts are
//! [`xds::migrate::assess`]'s (the translation's own table and diagnostics);
//! this module only gathers the objects and the tenants, and prints.

use crate::claims::{arbitrate, claim_request};
use crds::TenantGateway;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use kube::Client;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::{Debug, Write as _};
use std::path::{Path, PathBuf};
use xds::manifests::Manifests;
use xds::migrate::{assess, Level, Report, TenantScope};
use xds::{GatewayOptions, TenantObjects};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Manifests(#[from] xds::manifests::ManifestError),
    #[error("reading standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("connecting to the cluster (kubeconfig or in-cluster config): {0}")]
    Connect(#[source] kube::Error),
    #[error("listing {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("TenantGateway {0:?} not found")]
    NoSuchTenant(String),
    #[error("TenantGateway {tenant}: {message}")]
    Tenant { tenant: String, message: String },
    #[error("rendering the report: {0}")]
    Render(String),
}

/// Which Ingresses to assess.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only this namespace's.
    pub namespace: Option<String>,
    /// Only the namespaces this TenantGateway holds.
    pub tenant: Option<String>,
}

/// Everything an assessment reads: objects, TenantGateways and Namespaces.
#[derive(Debug, Default)]
pub struct Inputs {
    pub objects: TenantObjects,
    pub gateways: Vec<TenantGateway>,
    pub namespaces: Vec<Namespace>,
}

/// Reads `-f` arguments: files, directories, `-` for standard input.
pub fn read_manifests(paths: &[PathBuf]) -> Result<Inputs, MigrateError> {
    let (stdin, files): (Vec<&PathBuf>, Vec<&PathBuf>) =
        paths.iter().partition(|p| p.as_os_str() == "-");
    let files: Vec<PathBuf> = files.into_iter().cloned().collect();
    let mut m = Manifests::load(&files)?;
    if !stdin.is_empty() {
        let text = std::io::read_to_string(std::io::stdin()).map_err(MigrateError::Stdin)?;
        m.add_documents(Path::new("-"), &text)?;
    }
    // A namespace the manifests use exists, as far as claims go (the files
    // seldom hold the Namespace objects).
    let mut namespaces = m.namespaces;
    let known: BTreeSet<String> = namespaces
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let used: BTreeSet<String> = m
        .objects
        .ingresses
        .iter()
        .filter_map(|i| i.metadata.namespace.clone())
        .filter(|ns| !known.contains(ns))
        .collect();
    namespaces.extend(used.into_iter().map(|name| Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        ..Default::default()
    }));
    Ok(Inputs {
        objects: m.objects,
        gateways: m.gateways,
        namespaces,
    })
}

async fn list<K>(api: Api<K>, what: &'static str) -> Result<Vec<K>, MigrateError>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    list_with(api, what, &ListParams::default()).await
}

async fn list_with<K>(
    api: Api<K>,
    what: &'static str,
    params: &ListParams,
) -> Result<Vec<K>, MigrateError>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    api.list(params)
        .await
        .map(|l| l.items)
        .map_err(|source| MigrateError::Read { what, source })
}

/// Reads the live cluster with the kubeconfig in use: the Ingresses,
/// Services, EndpointSlices and TLS and Opaque Secrets (the only Secrets the gateway
/// reads) of one namespace or all, and the TenantGateways with the Namespaces
/// when there are TenantGateways to read (a cluster without the CRD has none).
pub async fn read_cluster(selection: &Selection) -> Result<Inputs, MigrateError> {
    let client = Client::try_default().await.map_err(MigrateError::Connect)?;
    let gateways = match list(Api::<TenantGateway>::all(client.clone()), "TenantGateways").await {
        Ok(g) => g,
        Err(e) if selection.tenant.is_some() => return Err(e),
        Err(_) => Vec::new(),
    };
    let namespaces = if gateways.is_empty() {
        Vec::new()
    } else {
        list(Api::<Namespace>::all(client.clone()), "Namespaces").await?
    };
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = selection.namespace.as_deref();
    // The Secrets the gateway reads: TLS ones, and Opaque ones (basic auth's
    // htpasswd); never tokens or registry credentials.
    let tls = ListParams::default().fields("type=kubernetes.io/tls");
    let opaque = ListParams::default().fields("type=Opaque");
    let mut secrets = list_with(api::<Secret>(&client, ns), "TLS Secrets", &tls).await?;
    secrets.extend(list_with(api::<Secret>(&client, ns), "Opaque Secrets", &opaque).await?);
    let objects = TenantObjects {
        ingresses: list(api::<Ingress>(&client, ns), "Ingresses").await?,
        services: list(api::<Service>(&client, ns), "Services").await?,
        endpoint_slices: list(api::<EndpointSlice>(&client, ns), "EndpointSlices").await?,
        secrets,
        ingress_classes: Vec::new(),
    };
    Ok(Inputs {
        objects,
        gateways,
        namespaces,
    })
}

/// The tenants, as the operator arbitrates their claims (its own namespace
/// is never claimable), with the options each gateway translates with.
fn tenant_scopes(inputs: &Inputs) -> Result<Vec<TenantScope>, MigrateError> {
    let reserved = crate::build::names::OPERATOR_NAMESPACE;
    let mut requests = Vec::new();
    for gw in &inputs.gateways {
        let mut request =
            claim_request(gw, &inputs.namespaces).map_err(|message| MigrateError::Tenant {
                tenant: gw.metadata.name.clone().unwrap_or_default(),
                message,
            })?;
        request.wanted.remove(reserved);
        requests.push(request);
    }
    let decisions = arbitrate(&requests);
    Ok(inputs
        .gateways
        .iter()
        .filter_map(|gw| {
            let tenant = gw.metadata.name.clone()?;
            let namespaces = decisions.get(&tenant)?.claimed.clone();
            Some(TenantScope {
                options: GatewayOptions::from_spec(&gw.spec),
                tenant,
                namespaces,
            })
        })
        .collect())
}

/// The report on the selected Ingresses.
pub fn report(mut inputs: Inputs, selection: &Selection) -> Result<Report, MigrateError> {
    let scopes = tenant_scopes(&inputs)?;
    if let Some(tenant) = &selection.tenant {
        let scope = scopes
            .iter()
            .find(|s| &s.tenant == tenant)
            .ok_or_else(|| MigrateError::NoSuchTenant(tenant.clone()))?;
        let held = scope.namespaces.clone();
        inputs.objects.ingresses.retain(|i| {
            i.metadata
                .namespace
                .as_ref()
                .is_some_and(|n| held.contains(n))
        });
    }
    if let Some(ns) = &selection.namespace {
        inputs
            .objects
            .ingresses
            .retain(|i| i.metadata.namespace.as_ref() == Some(ns));
    }
    Ok(assess(&inputs.objects, &scopes))
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// The lowest verdict `--fail-on` fails for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// Any `supported, differs`, `not supported` or `refused`.
    Differs,
    /// Any `not supported` or `refused`.
    Unsupported,
    /// Any `refused`.
    Refused,
}

impl FailOn {
    fn level(self) -> Level {
        match self {
            FailOn::Differs => Level::Differs,
            FailOn::Unsupported => Level::NotSupported,
            FailOn::Refused => Level::Refused,
        }
    }
}

/// 1 when an annotation is at or worse than `fail_on`, else 0.
pub fn exit_code(report: &Report, fail_on: Option<FailOn>) -> u8 {
    match (fail_on, report.worst()) {
        (Some(f), Some(worst)) if worst >= f.level() => 1,
        _ => 0,
    }
}

pub fn render(report: &Report, format: OutputFormat) -> Result<String, MigrateError> {
    match format {
        OutputFormat::Table => Ok(table(report)),
        OutputFormat::Json => serde_json::to_string_pretty(report)
            .map(|s| s + "\n")
            .map_err(|e| MigrateError::Render(e.to_string())),
        OutputFormat::Yaml => {
            xds::yaml::to_string(report).map_err(|e| MigrateError::Render(e.to_string()))
        }
    }
}

fn tenant_name(t: &Option<String>) -> String {
    t.clone().unwrap_or_else(|| "-".into())
}

/// One block per Ingress (its annotations and problems), then the summary.
pub fn table(report: &Report) -> String {
    use crate::audit::report::columns;
    let mut out = String::new();
    for ing in &report.ingresses {
        let _ = writeln!(
            out,
            "Ingress {}/{} (tenant {})",
            ing.namespace,
            ing.name,
            tenant_name(&ing.tenant)
        );
        let rows: Vec<Vec<String>> = ing
            .annotations
            .iter()
            .map(|a| vec![format!("  {}", a.key), a.display()])
            .collect();
        if rows.is_empty() {
            out.push_str("  (no ingress-nginx or tenant-gateway annotations)\n");
        }
        out.push_str(&columns(&rows));
        for p in &ing.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
        out.push('\n');
    }
    let mut rows = vec![[
        "TENANT",
        "INGRESSES",
        "SUPPORTED",
        "DIFFERS",
        "NOT SUPPORTED",
        "REFUSED",
    ]
    .map(String::from)
    .to_vec()];
    rows.extend(report.tenants.iter().map(|t| {
        vec![
            tenant_name(&t.tenant),
            t.ingresses.to_string(),
            t.supported.to_string(),
            t.differs.to_string(),
            t.not_supported.to_string(),
            t.refused.to_string(),
        ]
    }));
    out.push_str(&columns(&rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(yaml: &str) -> Inputs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, yaml).unwrap();
        read_manifests(&[path]).unwrap()
    }

    const TENANTS: &str = "\
apiVersion: tenantgateway.io/v1alpha1
kind: TenantGateway
metadata: {name: acme}
spec: {namespaces: {names: [shop, tenant-gateway-system]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: a
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/server-snippet: x}
spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b, namespace: elsewhere, annotations: {nginx.ingress.kubernetes.io/mirror-uri: /m}}
spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}
";

    #[test]
    fn tenants_hold_what_the_manifests_name_and_the_selection_narrows() {
        let all = report(inputs(TENANTS), &Selection::default()).unwrap();
        let tenants: Vec<_> = all
            .ingresses
            .iter()
            .map(|i| (i.tenant.clone(), &*i.name))
            .collect();
        assert_eq!(tenants, [(Some("acme".into()), "a"), (None, "b")]);
        assert_eq!(exit_code(&all, None), 0);
        assert_eq!(exit_code(&all, Some(FailOn::Refused)), 1);
        let acme = Selection {
            tenant: Some("acme".into()),
            ..Default::default()
        };
        assert_eq!(report(inputs(TENANTS), &acme).unwrap().ingresses.len(), 1);
        let elsewhere = Selection {
            namespace: Some("elsewhere".into()),
            ..Default::default()
        };
        let r = report(inputs(TENANTS), &elsewhere).unwrap();
        assert_eq!(r.ingresses[0].name, "b");
        assert_eq!(exit_code(&r, Some(FailOn::Refused)), 0);
        assert_eq!(exit_code(&r, Some(FailOn::Unsupported)), 1);
        let nobody = Selection {
            tenant: Some("nobody".into()),
            ..Default::default()
        };
        assert!(matches!(
            report(inputs(TENANTS), &nobody),
            Err(MigrateError::NoSuchTenant(_))
        ));
    }

    #[test]
    fn the_table_lists_each_annotation_and_the_summary_per_tenant() {
        let r = report(inputs(TENANTS), &Selection::default()).unwrap();
        let t = table(&r);
        assert!(t.contains("Ingress shop/a (tenant acme)\n  nginx.ingress.kubernetes.io/server-snippet  refused (raw proxy"), "{t}");
        assert!(
            t.contains("  nginx.ingress.kubernetes.io/mirror-uri  not supported\n"),
            "{t}"
        );
        assert!(t.ends_with("acme    1          0          0        0              1\n-       1          0          0        1              0\n"), "{t}");
    }
}
