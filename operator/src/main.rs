//! `tenant-gateway`: the operator, the per-tenant xDS sidecar and offline tools.

use clap::{Parser, Subcommand};
use operator::cmd;
use std::process::ExitCode;

/// jemalloc gives memory back to the OS after a tenant shrinks (decay after
/// ~10 s); glibc's per-thread arenas kept it.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "tenant-gateway",
    version,
    about = "Per-tenant Envoy ingress fleets for shared Kubernetes clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the TenantGateway CustomResourceDefinition as YAML.
    Crds(cmd::crds::Args),
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
    Render(cmd::render::Args),
    /// Print the ADS bootstrap a tenant's Envoy starts with (as in its ConfigMap).
    Bootstrap(cmd::bootstrap::Args),
    /// Run the operator: reconcile TenantGateways (one active replica via a Lease).
    Operator(cmd::operator::Args),
    /// Run the per-pod xDS sidecar: watch the tenant's claimed namespaces, translate,
    /// and serve ADS to Envoy over a Unix socket.
    Xds(Box<cmd::xds::XdsArgs>),
    /// Audit tenants' effective RBAC, namespace claims and gateway Deployments
    /// (cluster admin). Exit status: 0 clean, 1 findings at or above --fail-on, 2 errors.
    Audit(cmd::audit::Args),
}

fn main() -> ExitCode {
    // Purge freed pages in the background (after jemalloc's ~10 s decay), so an
    // idle sidecar or operator gives memory back after its tenant shrinks.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    match Cli::parse().command {
        Command::Crds(a) => cmd::crds::run(a),
        Command::Render(a) => cmd::render::run(a),
        Command::Bootstrap(a) => cmd::bootstrap::run(a),
        Command::Operator(a) => cmd::operator::run(a),
        Command::Xds(a) => cmd::xds::run(*a),
        Command::Audit(a) => cmd::audit::run(a),
    }
}
