//! `tenant-gateway crds`: print the TenantGateway CRD.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    print!("{}", crds::crd_yaml());
    ExitCode::SUCCESS
}
