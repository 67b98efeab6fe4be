//! Translation goldens: every tenant the test suite translated when they were
//! recorded (objects + options captured from `translate`'s callers), replayed
//! through today's `translate`. Each case stores the canonical version of every
//! Envoy resource and every diagnostic, so a refactor that changes one byte of
//! output, or one word of a diagnostic, fails here and names the case.
//!
//! Regenerate (after an intended change only, never in CI):
//! `TG_UPDATE_GOLDEN=1 cargo test -p tenant-gateway-xds --test golden`

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xds::{
    translate, ClientAddress, ForwardedForTrust, GatewayOptions, ResourceType, Snapshot, TcpProxy,
    TenantObjects, Translation,
};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases")
}

fn list<T: serde::de::DeserializeOwned>(v: &Value, key: &str) -> Vec<T> {
    v.get(key)
        .cloned()
        .map(|x| serde_json::from_value(x).unwrap_or_else(|e| panic!("{key}: {e}")))
        .unwrap_or_default()
}

fn objects_of(v: &Value) -> TenantObjects {
    TenantObjects {
        ingresses: list::<Ingress>(v, "ingresses"),
        services: list::<Service>(v, "services"),
        endpoint_slices: list::<EndpointSlice>(v, "endpointSlices"),
        secrets: list::<Secret>(v, "secrets"),
        ingress_classes: list::<IngressClass>(v, "ingressClasses"),
    }
}

fn options_of(v: &Value) -> GatewayOptions {
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("options.{k}"))
            .to_string()
    };
    let port = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("options.{k}")) as u16;
    GatewayOptions {
        bind_address: s("bindAddress"),
        http_port: port("httpPort"),
        https_port: port("httpsPort"),
        ingress_class: s("ingressClass"),
        serve_unclassed: v["serveUnclassed"]
            .as_bool()
            .expect("options.serveUnclassed"),
        namespaces: v["namespaces"].as_array().map(|a| {
            a.iter()
                .map(|n| n.as_str().expect("namespace").to_string())
                .collect()
        }),
        tenant: s("tenant"),
        tcp_proxies: proxies(&v["tcpProxies"]),
        udp_proxies: proxies(&v["udpProxies"]),
        access_log: Default::default(),
        client_address: client_address_of(&v["clientAddress"]),
    }
}

/// `clientAddress` (absent in most cases: the default, nothing trusted):
/// `proxyProtocol`, and `xffNumTrustedHops` or `xffTrustedCidrs`.
fn client_address_of(v: &Value) -> ClientAddress {
    let forwarded_for = match (
        v["xffNumTrustedHops"].as_u64(),
        v["xffTrustedCidrs"].as_array(),
    ) {
        (Some(n), _) => ForwardedForTrust::TrustedHops(n as u32),
        (None, Some(cidrs)) => ForwardedForTrust::trusted_cidrs(
            cidrs
                .iter()
                .map(|c| c.as_str().expect("cidr").parse().expect("cidr"))
                .collect(),
        ),
        (None, None) => ForwardedForTrust::None,
    };
    ClientAddress {
        proxy_protocol: v["proxyProtocol"].as_bool().unwrap_or(false),
        forwarded_for,
    }
}

/// `tcpProxies` or `udpProxies`: sidecar arguments (`<port>=<ns>/<svc>:<port>`).
fn proxies(v: &Value) -> Vec<TcpProxy> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    p.as_str()
                        .expect("proxy")
                        .parse::<TcpProxy>()
                        .expect("proxy")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a case asserts: each resource's canonical version, by type and name,
/// and the diagnostics, in order.
fn outcome(t: &Translation) -> Value {
    let snap = Snapshot::from(&t.resources);
    let mut resources = BTreeMap::new();
    for ty in ResourceType::ALL {
        let by_name: BTreeMap<String, String> = snap
            .resources(ty)
            .map(|(name, any)| (name.clone(), Snapshot::resource_version(any)))
            .collect();
        resources.insert(format!("{ty:?}"), by_name);
    }
    json!({
        "resources": resources,
        "diagnostics": t.diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "routablePaths": t.routable_paths,
        "servedIngresses": t.served_ingresses,
    })
}

#[test]
fn every_recorded_tenant_translates_to_the_recorded_resources_and_diagnostics() {
    let update = std::env::var_os("TG_UPDATE_GOLDEN").is_some();
    assert!(
        !(update && std::env::var_os("CI").is_some()),
        "TG_UPDATE_GOLDEN is set in CI: goldens are compared there, never rewritten"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/golden/cases")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 50, "only {} golden cases", files.len());
    let mut failed = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read case");
        let mut case: Value = serde_json::from_str(&text).expect("case JSON");
        let translation = translate(&objects_of(&case["objects"]), &options_of(&case["options"]));
        let problems = translation.resources.consistency_problems();
        assert!(problems.is_empty(), "{}: {problems:?}", f.display());
        let got = outcome(&translation);
        if update {
            case["expect"] = got;
            let mut out = serde_json::to_string_pretty(&case).expect("encode");
            out.push('\n');
            std::fs::write(f, out).expect("write case");
        } else if case["expect"] != got {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let what: Vec<&str> = [
                "resources",
                "diagnostics",
                "routablePaths",
                "servedIngresses",
            ]
            .into_iter()
            .filter(|k| case["expect"][*k] != got[*k])
            .collect();
            failed.push(format!("{name}: {what:?} differ"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases differ:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}
