//! Writes the three configurations compared by `hack/bench-local dataplane`,
//! all for the same routes (`hosts` × `paths` Prefix routes over `services`
//! local backends on ports `backend-port`…):
//!
//! - `manifests.yaml`: a TenantGateway, Ingresses, Services and EndpointSlices;
//!   `tenant-gateway render` turns them into our static Envoy bootstrap (the
//!   same resources ADS serves);
//! - `minimal-envoy.yaml`: a minimal static Envoy config (plain prefix routes,
//!   STATIC clusters, router filter only);
//! - `nginx.conf`: the equivalent nginx `server`/`location` blocks and upstreams.
//!
//! Usage:
//!
//!     cargo run --release -p tenant-gateway-xds --example dataplane_configs -- \
//!         <dir> <hosts> <paths> <services> <backend-port> <ours-port> <minimal-port> <minimal-admin-port> <nginx-port>

#[path = "bench_common/mod.rs"]
mod bench_common;

use bench_common::Model;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert_eq!(
        args.len(),
        9,
        "usage: <dir> <hosts> <paths> <services> <backend-port> <ours-port> <minimal-port> <minimal-admin-port> <nginx-port>"
    );
    let dir = PathBuf::from(&args[0]);
    let n: Vec<usize> = args[1..]
        .iter()
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let port = |i: usize| u16::try_from(n[i]).expect("port");
    let (hosts, paths, services) = (n[0], n[1], n[2]);
    let backends = (0..services)
        .map(|k| port(3) + u16::try_from(k).expect("service count"))
        .collect();
    let model = Model::grid(hosts, paths, backends);
    std::fs::create_dir_all(&dir).expect("create dir");
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    };
    // The https port is unused (no TLS host), but must differ from http.
    write(
        "manifests.yaml",
        model.manifests_yaml(port(4), port(4).wrapping_add(1000)),
    );
    write(
        "minimal-envoy.yaml",
        model.minimal_envoy_yaml(port(5), port(6)),
    );
    write("nginx.conf", model.nginx_conf(port(7), &dir));
    println!(
        "{} routes on {hosts} hosts, {services} backends",
        model.routes.len()
    );
}
