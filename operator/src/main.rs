//! `tenant-gateway`: the operator, the per-tenant xDS sidecar and offline tools.

use clap::{Parser, Subcommand};
use operator::render::{render, Format, RenderOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use xds::manifests::Manifests;

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
    Crds,
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
    Render {
        /// Manifest files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The TenantGateway to render when the manifests hold several.
        #[arg(long)]
        tenant: Option<String>,
        /// Envoy admin port (always bound to 127.0.0.1).
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
        /// Address the HTTP/HTTPS listeners bind to.
        #[arg(long, default_value = "0.0.0.0")]
        bind_address: String,
        #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", crds::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Render {
            paths,
            tenant,
            admin_port,
            bind_address,
            output,
        } => {
            let manifests = match Manifests::load(&paths) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = RenderOptions {
                tenant,
                admin_port,
                bind_address,
                format: output,
            };
            match render(&manifests, &opts) {
                Ok(r) => {
                    for n in &r.notes {
                        eprintln!("note: {n}");
                    }
                    for d in r.diagnostics() {
                        eprintln!("{d}");
                    }
                    print!("{}", r.output);
                    ExitCode::from(r.exit_code() as u8)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
