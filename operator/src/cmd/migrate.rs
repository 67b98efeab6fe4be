//! `tenant-gateway migrate`: a verdict per annotation of Ingresses written for
//! ingress-nginx (see [`crate::migrate`]).

use crate::migrate::{
    exit_code, read_cluster, read_manifests, render, report, FailOn, OutputFormat, Selection,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when the Ingresses cannot be read (verdicts are 0 or 1).
const MIGRATE_ERROR: u8 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Manifest files or directories, `-` for standard input (multi-document
    /// YAML or JSON). Services, EndpointSlices, Secrets, TenantGateways and
    /// Namespaces in them are read for context. Without -f: the live cluster
    /// of the kubeconfig in use.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,
    /// Only the Ingresses of this namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Only the Ingresses of the namespaces this TenantGateway holds.
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Exit 1 when an annotation is at or worse than this verdict.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
}

pub fn run(args: Args) -> ExitCode {
    super::block_on(
        async move {
            let selection = Selection {
                namespace: args.namespace.clone(),
                tenant: args.tenant.clone(),
            };
            let inputs = if args.files.is_empty() {
                read_cluster(&selection).await
            } else {
                read_manifests(&args.files)
            };
            let printed = inputs
                .and_then(|i| report(i, &selection))
                .and_then(|r| Ok((render(&r, args.output)?, exit_code(&r, args.fail_on))));
            match printed {
                Ok((text, code)) => {
                    print!("{text}");
                    ExitCode::from(code)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(MIGRATE_ERROR)
                }
            }
        },
        ExitCode::from(MIGRATE_ERROR),
    )
}
