//! The `tenant-gateway` subcommands, one file each: its clap `Args` and
//! `run(args) -> ExitCode`. The long-running ones start through [`serve`].

pub mod audit;
pub mod bootstrap;
pub mod crds;
pub mod migrate;
pub mod operator;
pub mod render;
pub mod xds;

use clap::{Parser, Subcommand};
use std::future::Future;
use std::process::ExitCode;

// No doc comments on `Cli`: clap would print them as the long help.
#[derive(Parser)]
#[command(
    name = "tenant-gateway",
    version,
    about = "Per-tenant Envoy ingress fleets for shared Kubernetes clusters"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the TenantGateway CustomResourceDefinition as YAML.
    Crds(crds::Args),
    /// Print the static Envoy bootstrap for one tenant's manifests (offline preview and lint).
    ///
    /// Reads files or directories of YAML/JSON manifests (multi-document YAML, `List`s)
    /// holding one TenantGateway and its tenant's Ingresses, Services, EndpointSlices,
    /// Secrets and IngressClasses, and prints a complete Envoy bootstrap whose
    /// static_resources equal what the xDS sidecar would serve (RDS, EDS and SDS
    /// inlined). Admin listens on 127.0.0.1 only. `envoy -c <output>` serves the routes.
    ///
    /// Problems (a missing Service, an unknown port, a conflicting path, a bad Secret)
    /// are printed on stderr, naming the object and field. Exit status: 0 when the
    /// bootstrap was printed (even with problems), 1 when there were problems and no
    /// valid route remains, 2 when the manifests cannot be read or hold no usable
    /// TenantGateway.
    #[command(verbatim_doc_comment)]
    Render(render::Args),
    /// Print the ADS bootstrap a tenant's Envoy starts with (as in its ConfigMap).
    Bootstrap(bootstrap::Args),
    /// Run the operator: reconcile TenantGateways (one active replica via a Lease).
    Operator(operator::Args),
    /// Run the per-pod xDS sidecar: watch the tenant's claimed namespaces, translate,
    /// and serve ADS to Envoy over a Unix socket.
    Xds(Box<xds::XdsArgs>),
    /// Audit tenants' effective RBAC, namespace claims and gateway Deployments
    /// (cluster admin). Exit status: 0 clean, 1 findings at or above --fail-on, 2 errors.
    Audit(audit::Args),
    /// Check Ingresses written for ingress-nginx before moving them: one verdict per
    /// annotation (`supported`, `supported, differs: …`, `not supported`, `refused (…)`),
    /// from the same annotation table and translation the gateway runs, and a summary
    /// per tenant.
    ///
    /// Reads the live cluster (the kubeconfig in use; all namespaces, `--namespace`, or
    /// `--tenant` for the namespaces a TenantGateway holds) or manifests (`-f`, with the
    /// Services, Secrets and TenantGateways in them as context). Every Ingress is judged,
    /// whatever its class. Exit status: 0 when no annotation is at or worse than
    /// `--fail-on` (always 0 without it), 1 when one is, 2 when the Ingresses cannot
    /// be read (bad manifests, cluster unreachable, unknown tenant).
    #[command(verbatim_doc_comment)]
    Migrate(migrate::Args),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds(a) => crds::run(a),
        Command::Render(a) => render::run(a),
        Command::Bootstrap(a) => bootstrap::run(a),
        Command::Operator(a) => operator::run(a),
        Command::Xds(a) => xds::run(*a),
        Command::Audit(a) => audit::run(a),
        Command::Migrate(a) => migrate::run(a),
    }
}

/// Runs `main` on the multi-threaded runtime every subcommand uses;
/// `runtime_failure` is the exit status when the runtime cannot start.
pub fn block_on(main: impl Future<Output = ExitCode>, runtime_failure: ExitCode) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            runtime_failure
        }
    }
}

/// A long-running role (operator, sidecar): JSON logs, the runtime, and
/// exit status 1 with the error logged when `main` fails.
pub fn serve(main: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_logging();
    block_on(
        async {
            match main.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // The binary's target, as before the subcommands moved into the library.
                    tracing::error!(target: "tenant_gateway", error = %format!("{e:#}"), "exiting");
                    ExitCode::FAILURE
                }
            }
        },
        ExitCode::FAILURE,
    )
}

fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
