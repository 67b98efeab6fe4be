//! The `tenant-gateway` subcommands, one file each: its clap `Args` and
//! `run(args) -> ExitCode`. The long-running ones start through [`serve`].

pub mod audit;
pub mod bootstrap;
pub mod crds;
pub mod operator;
pub mod render;
pub mod xds;

use std::future::Future;
use std::process::ExitCode;

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
