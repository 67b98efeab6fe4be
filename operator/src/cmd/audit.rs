//! `tenant-gateway audit`: tenants' effective RBAC, claims and gateway
//! Deployments (see [`crate::audit`]).

use crate::audit::{audit, client_for, report, AuditError, AuditOptions, OutputFormat, Severity};
use crate::build::names;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for errors (findings are 0 or 1).
const AUDIT_ERROR: u8 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Exit 1 when a finding has at least this severity.
    #[arg(long, value_enum, default_value_t = Severity::Medium)]
    pub fail_on: Severity,
    /// Where the operator runs (its ServiceAccount, Deployment, default gateway namespace).
    #[arg(long, default_value = names::OPERATOR_NAMESPACE)]
    pub operator_namespace: String,
    /// Audit only this TenantGateway (repeatable; default: all). Claims are
    /// still arbitrated against every TenantGateway.
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
}

/// Prints the report; returns 0, 1 or 2.
pub fn run(args: Args) -> ExitCode {
    super::block_on(
        async {
            match report_and_exit_code(&args).await {
                Ok((text, code)) => {
                    print!("{text}");
                    ExitCode::from(code)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(AUDIT_ERROR)
                }
            }
        },
        ExitCode::from(AUDIT_ERROR),
    )
}

async fn report_and_exit_code(args: &Args) -> Result<(String, u8), AuditError> {
    let client = client_for(args.kubeconfig.as_ref(), args.context.as_deref()).await?;
    let opts = AuditOptions {
        operator_namespace: args.operator_namespace.clone(),
        tenants: args.tenants.iter().cloned().collect(),
    };
    let report = audit(&client, &opts).await?;
    Ok((
        report::render(&report, args.output)?,
        report.exit_code(args.fail_on),
    ))
}
