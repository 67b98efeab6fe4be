//! Benchmark: translate one tenant with N Ingress paths across H hosts.
//! Prints median/p99 time over R runs and the memory translation adds at peak.
//!
//!     cargo run --release -p tenant-gateway-xds --example translate_bench -- [paths] [hosts] [runs]

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::time::Instant;
use xds::{translate, GatewayOptions, Snapshot, TenantObjects};

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

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// `paths` paths over `hosts` hosts, one Ingress per host, 100 Services with 3 endpoints each.
pub fn tenant(paths: usize, hosts: usize) -> TenantObjects {
    let services = 100;
    let mut o = TenantObjects::default();
    for s in 0..services {
        o.services.push(Service {
            metadata: meta("shop", &format!("svc{s}")),
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        });
        let mut m = meta("shop", &format!("svc{s}-abc"));
        m.labels = Some([("kubernetes.io/service-name".to_string(), format!("svc{s}"))].into());
        o.endpoint_slices.push(EndpointSlice {
            metadata: m,
            address_type: "IPv4".into(),
            endpoints: (0..3)
                .map(|e| Endpoint {
                    addresses: vec![format!("10.{}.{}.{}", s / 250, s % 250, e + 1)],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                ..Default::default()
            }]),
        });
    }
    let per_host = paths.div_ceil(hosts);
    for h in 0..hosts {
        let ps: Vec<HTTPIngressPath> = (0..per_host)
            .filter(|p| h * per_host + p < paths)
            .map(|p| HTTPIngressPath {
                path: Some(format!("/app{p}/v{}", p % 7)),
                path_type: if p % 3 == 0 { "Exact" } else { "Prefix" }.into(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: format!("svc{}", (h + p) % services),
                        port: Some(ServiceBackendPort {
                            name: Some("http".into()),
                            number: None,
                        }),
                    }),
                    resource: None,
                },
            })
            .collect();
        o.ingresses.push(Ingress {
            metadata: meta("shop", &format!("ing{h}")),
            spec: Some(IngressSpec {
                rules: Some(vec![IngressRule {
                    host: Some(format!("host{h}.example.com")),
                    http: Some(HTTPIngressRuleValue { paths: ps }),
                }]),
                ..Default::default()
            }),
            status: None,
        });
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
    let objects = tenant(paths, hosts);
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
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{{\"bench\":\"translate\",\"paths\":{paths},\"hosts\":{hosts},\"routable\":{routes},\"runs\":{runs},\"median_ms\":{:.1},\"p99_ms\":{:.1},\"translate_only_median_ms\":{:.1},\"peak_rss_mib\":{:.1},\"translation_peak_mib\":{:.1}}}",
        pct(0.5),
        pct(0.99),
        translate_median,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0
    );
}
