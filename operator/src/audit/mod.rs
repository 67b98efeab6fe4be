//! `tenant-gateway audit`: a cluster admin's check that every tenant can read
//! only its claimed namespaces, that nobody widened what the operator set up,
//! and that the gateway pods are what the operator builds.
//!
//! Stages: [`fetch`] (list objects, ask SubjectAccessReviews) →
//! [`findings`] (pure evaluation over a snapshot, on top of [`rbac`]) →
//! [`report`] (table, JSON, YAML). The subcommand is [`crate::cmd::audit`].

pub mod fetch;
pub mod findings;
pub mod rbac;
pub mod report;

#[cfg(test)]
mod findings_tests;

pub use findings::{Check, Finding, Report, Severity, Snapshot};
pub use report::OutputFormat;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("loading the cluster configuration: {0}")]
    Config(String),
    #[error("connecting to the cluster: {0}")]
    Connect(#[source] kube::Error),
    #[error("reading {what}: {source}{}", denied_hint(.source))]
    Read {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("SubjectAccessReview for {request}: {source}{}", denied_hint(.source))]
    AccessReview {
        request: String,
        #[source]
        source: kube::Error,
    },
    #[error("parsing the shipped {file}: {source}")]
    Shipped {
        file: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("TenantGateway {0} not found")]
    UnknownTenant(String),
    #[error("rendering the report: {0}")]
    Render(String),
}

fn denied_hint(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            " (the auditor needs cluster-wide read on RBAC objects, Namespaces, TenantGateways, \
             Deployments, and create on subjectaccessreviews)"
        }
        kube::Error::Api(s) if s.code == 404 => {
            " (is tenant-gateway installed? kubectl apply -k config/)"
        }
        _ => "",
    }
}

/// What to audit.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    pub operator_namespace: String,
    /// Only these tenants (all when empty).
    pub tenants: BTreeSet<String>,
}

/// Fetch, ask the API server, evaluate.
pub async fn audit(client: &Client, opts: &AuditOptions) -> Result<Report, AuditError> {
    let shipped = findings::Shipped::load()?;
    let snap = fetch::snapshot(client, &opts.operator_namespace).await?;
    let known: BTreeSet<&str> = snap
        .gateways
        .iter()
        .filter_map(|g| g.metadata.name.as_deref())
        .collect();
    if let Some(missing) = opts.tenants.iter().find(|t| !known.contains(t.as_str())) {
        return Err(AuditError::UnknownTenant(missing.clone()));
    }
    let plan = findings::plan_access_checks(&snap, &opts.tenants);
    let checks = fetch::run_access_checks(client, plan).await?;
    Ok(findings::evaluate(&snap, &checks, &opts.tenants, &shipped))
}

/// A client from `--kubeconfig`/`--context`, else the usual inference.
pub async fn client_for(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
) -> Result<Client, AuditError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| AuditError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| AuditError::Config(e.to_string()))?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| AuditError::Config(e.to_string()))?,
        None => Config::infer()
            .await
            .map_err(|e| AuditError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(AuditError::Connect)
}
