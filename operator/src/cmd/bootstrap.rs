//! `tenant-gateway bootstrap`: print the ADS bootstrap a tenant's Envoy
//! starts with, as the operator puts it in the tenant's ConfigMap.

use crate::build::names;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    tenant: String,
    #[arg(long, default_value = names::SOCKET_PATH)]
    socket: String,
    /// Envoy admin port (always bound to 127.0.0.1).
    #[arg(long, default_value_t = names::ADMIN_PORT)]
    admin_port: u16,
    /// Envoy's readiness listener (`GET /ready`).
    #[arg(long, default_value_t = names::ENVOY_HEALTH_PORT)]
    health_port: u16,
}

pub fn run(args: Args) -> ExitCode {
    let b = xds::bootstrap::ads_bootstrap(
        names::BOOTSTRAP_NODE_ID,
        &args.tenant,
        &args.socket,
        args.admin_port,
        Some(args.health_port),
    );
    match xds::bootstrap::to_yaml(&b) {
        Ok(y) => {
            print!("{y}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
