//! `tenant-gateway`: the operator, the per-tenant xDS sidecar and offline
//! tools; the command line is [`operator::cmd`].

use std::process::ExitCode;

/// jemalloc gives memory back to the OS after a tenant shrinks (decay after
/// ~10 s); glibc's per-thread arenas kept it.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Purge freed pages in the background (after jemalloc's ~10 s decay), so an
    // idle sidecar or operator gives memory back after its tenant shrinks.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    operator::cmd::main()
}
