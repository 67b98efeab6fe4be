//! Benchmark: time from an ADS push to the first 200 on the new route through a
//! real Envoy, for a route-only change (RDS) and for a new route to a new
//! cluster (CDS → EDS → RDS). Prints median/min/max over R runs; asserts nothing.
//!
//!     ENVOY_BIN=... cargo run --release -p tenant-gateway-xds --example push_latency_bench -- [runs]

#[path = "../tests/support/resources.rs"]
mod resources;

use resources::http_config;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{free_port, served_by, time_until, AdsFixture, Backend, Envoy};
use xds::{EnvoyResources, Snapshot};

const UP: Duration = Duration::from_secs(15);

/// A kind of change: its label, the path prefix of its routes, the config of run `i`.
type Scenario<'a> = (
    &'static str,
    &'static str,
    &'a dyn Fn(usize) -> EnvoyResources,
);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let backend = Backend::start("a").await;
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let routes_only = |i: usize| {
        let p = format!("/r{i}");
        http_config(port, &[(p.as_str(), "a")], &[("a", backend.addr)])
    };
    let new_cluster = |i: usize| {
        let (p, c) = (format!("/c{i}"), format!("c{i}"));
        http_config(
            port,
            &[(p.as_str(), c.as_str())],
            &[(c.as_str(), backend.addr)],
        )
    };
    let ads = AdsFixture::start(Snapshot::from(&routes_only(0))).await;
    let _envoy = Envoy::start("bench", &ads.socket).await;
    if time_until(UP, || served_by(addr, "h", "/r0", "a"))
        .await
        .is_none()
    {
        eprintln!("Envoy never served the first route");
        std::process::exit(1);
    }
    let changes: [Scenario<'_>; 2] = [
        ("route only", "/r", &routes_only),
        ("new cluster + route", "/c", &new_cluster),
    ];
    for (label, prefix, config) in changes {
        let mut samples = Vec::new();
        for i in 1..=runs {
            let path = format!("{prefix}{i}");
            ads.push(Snapshot::from(&config(i)));
            match time_until(UP, || served_by(addr, "h", &path, "a")).await {
                Some(t) => samples.push(t),
                None => eprintln!("{label}: {path} not served within {UP:?}"),
            }
            ads.settle().await;
        }
        print_figures(label, &mut samples);
    }
}

fn print_figures(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let (Some(min), Some(max)) = (samples.first(), samples.last()) else {
        println!("{label}: no run was served");
        return;
    };
    println!(
        "{label}: push → first 200 over {} runs: median {:?}, min {min:?}, max {max:?}",
        samples.len(),
        samples[samples.len() / 2],
    );
}
