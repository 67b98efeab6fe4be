//! Benchmark: translate one tenant with N Ingress paths across H hosts.
//! Prints median/p99 time over R runs and the memory translation adds at peak.
//!
//!     cargo run --release -p tenant-gateway-xds --example translate_bench -- [paths] [hosts] [runs] [incremental runs]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Instant;
use testkit::objects::{
    http_service, ingress, ingress_path, ingress_rule, ready_endpoint_slice, service_backend,
};
use xds::{translate, GatewayOptions, Snapshot, TenantObjects, Translator};

/// The `q` quantile of sorted `times`.
fn percentile(times: &[f64], q: f64) -> f64 {
    times[((times.len() - 1) as f64 * q).round() as usize]
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `paths` paths over `hosts` hosts, one Ingress per host, 100 Services with 3 endpoints each.
pub fn tenant(paths: usize, hosts: usize) -> TenantObjects {
    let services = 100;
    let mut o = TenantObjects::default();
    for s in 0..services {
        let svc = format!("svc{s}");
        o.services.push(http_service("shop", &svc));
        let addresses = (0..3)
            .map(|e| format!("10.{}.{}.{}", s / 250, s % 250, e + 1))
            .collect();
        o.endpoint_slices.push(ready_endpoint_slice(
            "shop",
            &svc,
            &format!("svc{s}-abc"),
            addresses,
            8080,
        ));
    }
    let per_host = paths.div_ceil(hosts);
    for h in 0..hosts {
        let ps = (0..per_host)
            .filter(|p| h * per_host + p < paths)
            .map(|p| {
                let svc = format!("svc{}", (h + p) % services);
                ingress_path(
                    Some(&format!("/app{p}/v{}", p % 7)),
                    if p % 3 == 0 { "Exact" } else { "Prefix" },
                    service_backend(&svc, None, Some("http")),
                )
            })
            .collect();
        let rule = ingress_rule(Some(&format!("host{h}.example.com")), ps);
        o.ingresses
            .push(ingress("shop", &format!("ing{h}"), vec![rule], None));
    }
    o
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let paths = args.first().copied().unwrap_or(10_000);
    let hosts = args.get(1).copied().unwrap_or(1_000);
    let runs = args.get(2).copied().unwrap_or(21);
    let mut objects = tenant(paths, hosts);
    versioned(&mut objects);
    let opts = GatewayOptions::default();
    let before = vm_hwm_kib();
    let mut times = Vec::with_capacity(runs);
    let mut translate_only = Vec::with_capacity(runs);
    let mut routes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let t = translate(&objects, &opts);
        translate_only.push(start.elapsed().as_secs_f64() * 1000.0);
        let snap = Snapshot::from(&t.resources);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        routes = t.routable_paths;
        assert!(t.diagnostics.is_empty(), "{:?}", &t.diagnostics[..1]);
        std::hint::black_box(snap);
    }
    let after = vm_hwm_kib();
    times.sort_by(|a, b| a.total_cmp(b));
    translate_only.sort_by(|a, b| a.total_cmp(b));
    let translate_median = translate_only[translate_only.len() / 2];
    let pct = |q: f64| percentile(&times, q);
    println!(
        "{{\"bench\":\"translate\",\"paths\":{paths},\"hosts\":{hosts},\"routable\":{routes},\"runs\":{runs},\"median_ms\":{:.1},\"p99_ms\":{:.1},\"translate_only_median_ms\":{:.1},\"peak_rss_mib\":{:.1},\"translation_peak_mib\":{:.1}}}",
        pct(0.5),
        pct(0.99),
        translate_median,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0
    );
    // A fourth argument: the runs of the incremental part (e.g. many, to profile it).
    incremental(objects, &opts, args.get(3).copied().unwrap_or(runs));
}

/// Every object a uid and resourceVersion, as the API server gives them
/// (the sidecar's objects come from it).
fn versioned(o: &mut TenantObjects) {
    let metas = o
        .ingresses
        .iter_mut()
        .map(|i| &mut i.metadata)
        .chain(o.services.iter_mut().map(|s| &mut s.metadata))
        .chain(o.endpoint_slices.iter_mut().map(|e| &mut e.metadata));
    for (i, m) in metas.enumerate() {
        m.uid = Some(format!("uid-{i}"));
        m.resource_version = Some("1".into());
    }
}

/// A new resourceVersion, as the API server gives a changed object.
fn bump(m: &mut ObjectMeta, run: usize) {
    m.resource_version = Some((run + 2).to_string());
}

/// `xds::Translator` (the sidecar's), after a first full call: one
/// Ingress's path moved per run (alternating between two values); then one
/// Service changed per run (a port's target port, alternating; it backs
/// 1 % of the paths); then one EndpointSlice's addresses changed per run.
fn incremental(mut objects: TenantObjects, opts: &GatewayOptions, runs: usize) {
    let mut translator = Translator::default();
    let start = Instant::now();
    let first = translator.translate(&objects, opts);
    let first_ms = start.elapsed().as_secs_f64() * 1000.0;
    let paths = first.routable_paths;
    std::hint::black_box(first);
    // One call timed; the virtual hosts it encoded.
    let mut timed = |objects: &TenantObjects, times: &mut Vec<f64>| {
        let start = Instant::now();
        let t = translator.translate(objects, opts);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(t).virtual_hosts_encoded
    };
    let mut ingress_encoded = 0;
    let (mut ingress, mut service, mut endpoints) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let moved = if i % 2 == 0 { "/moved" } else { "/app0/v0" };
        if let Some(path) = objects.ingresses[0]
            .spec
            .as_mut()
            .and_then(|s| s.rules.as_mut())
            .and_then(|r| r[0].http.as_mut())
            .map(|h| &mut h.paths[0])
        {
            path.path = Some(moved.into());
        }
        bump(&mut objects.ingresses[0].metadata, i);
        ingress_encoded = timed(&objects, &mut ingress);
    }
    for i in 0..runs {
        if let Some(port) = objects.services[0]
            .spec
            .as_mut()
            .and_then(|s| s.ports.as_mut())
            .and_then(|p| p.first_mut())
        {
            port.target_port = Some(IntOrString::Int(if i % 2 == 0 { 8081 } else { 8080 }));
        }
        bump(&mut objects.services[0].metadata, i);
        timed(&objects, &mut service);
    }
    for i in 0..runs {
        if let Some(ep) = objects.endpoint_slices[0].endpoints.first_mut() {
            ep.addresses = vec![format!("10.0.0.{}", 1 + i % 2)];
        }
        bump(&mut objects.endpoint_slices[0].metadata, i);
        timed(&objects, &mut endpoints);
    }
    for times in [&mut ingress, &mut service, &mut endpoints] {
        times.sort_by(|a, b| a.total_cmp(b));
    }
    println!(
        "{{\"bench\":\"translate_incremental\",\"paths\":{paths},\"runs\":{runs},\"first_ms\":{first_ms:.1},\"one_ingress_change_median_ms\":{:.1},\"p99_ms\":{:.1},\"virtual_hosts_encoded\":{ingress_encoded},\"one_service_change_median_ms\":{:.1},\"endpoints_change_median_ms\":{:.1}}}",
        percentile(&ingress, 0.5),
        percentile(&ingress, 0.99),
        percentile(&service, 0.5),
        percentile(&endpoints, 0.5),
    );
}
