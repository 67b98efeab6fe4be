//! `tenant-gateway render`: a tenant's manifests in, a static Envoy
//! bootstrap out (see [`crate::render`]).

use crate::build::names;
use crate::render::{render, Format, RenderOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use xds::manifests::Manifests;

/// Exit status when the manifests cannot be read or hold no usable TenantGateway.
const UNUSABLE_INPUT: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifest files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The TenantGateway to render when the manifests hold several.
    #[arg(long)]
    tenant: Option<String>,
    /// Envoy admin port (always bound to 127.0.0.1).
    #[arg(long, default_value_t = names::ADMIN_PORT)]
    admin_port: u16,
    /// Address the HTTP/HTTPS listeners bind to.
    #[arg(long, default_value = names::LISTENER_BIND_ADDRESS)]
    bind_address: String,
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

pub fn run(args: Args) -> ExitCode {
    let manifests = match Manifests::load(&args.paths) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(UNUSABLE_INPUT);
        }
    };
    let opts = RenderOptions {
        tenant: args.tenant,
        admin_port: args.admin_port,
        bind_address: args.bind_address,
        format: args.output,
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
            ExitCode::from(UNUSABLE_INPUT)
        }
    }
}
