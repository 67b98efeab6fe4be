//! Incremental translation (`xds::Translator`) against the reference, the
//! full translation: over random sequences of changes to a tenant (Ingresses
//! with the annotations that make routes depend on each other, Services,
//! endpoints, TLS Secrets), every step's snapshot must be byte for byte
//! `Snapshot::from(&translate(..).resources)`, with the same diagnostics.

use base64::Engine;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use xds::{translate, GatewayOptions, ResourceType, Snapshot, TenantObjects, Translator};

/// SplitMix64: a seeded, dependency-free generator, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const NS: &str = "shop";
const SEEDS: u64 = 60;
const HOSTS: &[&str] = &[
    "a.example.com",
    "b.example.com",
    "*.example.com",
    "c.example.com",
    "",
];
const PATHS: &[&str] = &["/", "/app", "/app/v1", "/api", "/api/"];
const SERVICES: &[&str] = &["svc0", "svc1", "svc2", "missing"];
const SECRETS: &[&str] = &["cert0", "cert1"];

/// Annotations whose routes depend on other objects or other Ingresses.
fn annotations(rng: &mut Rng) -> BTreeMap<String, String> {
    let options: &[(&str, &[&str])] = &[
        ("ssl-redirect", &["true", "false"]),
        ("force-ssl-redirect", &["true"]),
        ("rewrite-target", &["/", "/v2"]),
        (
            "whitelist-source-range",
            &["10.0.0.0/8", "192.168.0.0/16,10.1.0.0/16"],
        ),
        ("server-alias", &["alias.example.com", "b.example.com"]),
        ("from-to-www-redirect", &["true"]),
        ("custom-http-errors", &["404,503"]),
        ("default-backend", &["svc1", "missing"]),
        ("limit-rps", &["5"]),
        ("enable-cors", &["true"]),
        ("app-root", &["/app"]),
        ("permanent-redirect", &["https://example.org/"]),
        ("affinity", &["cookie"]),
        ("proxy-body-size", &["1k"]),
        ("ssl-passthrough", &["true"]),
    ];
    let mut out = BTreeMap::new();
    for (key, values) in options {
        if rng.chance(12) {
            let v = rng.pick(values);
            out.insert(format!("nginx.ingress.kubernetes.io/{key}"), v.to_string());
        }
    }
    if rng.chance(15) {
        out.insert("nginx.ingress.kubernetes.io/canary".into(), "true".into());
        let by = rng.pick(&["canary-weight", "canary-by-header", "canary-by-cookie"]);
        let value = if by == "canary-weight" {
            "30"
        } else {
            "x-canary"
        };
        out.insert(format!("nginx.ingress.kubernetes.io/{by}"), value.into());
    }
    out
}

fn backend(rng: &mut Rng) -> Value {
    let port = if rng.chance(70) {
        json!({"name": "http"})
    } else {
        json!({"number": rng.pick(&["80", "81"]).parse::<i32>().unwrap()})
    };
    json!({"service": {"name": rng.pick(SERVICES), "port": port}})
}

fn random_ingress(rng: &mut Rng, name: &str) -> Ingress {
    let mut rules = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let paths: Vec<Value> = (0..1 + rng.below(3))
            .map(|_| {
                json!({
                    "path": rng.pick(PATHS),
                    "pathType": rng.pick(&["Prefix", "Exact", "ImplementationSpecific"]),
                    "backend": backend(rng),
                })
            })
            .collect();
        let host = rng.pick(HOSTS);
        let mut rule = json!({"http": {"paths": paths}});
        if !host.is_empty() {
            rule["host"] = json!(host);
        }
        rules.push(rule);
    }
    let mut spec = json!({"rules": rules});
    if rng.chance(15) {
        spec["defaultBackend"] = backend(rng);
    }
    if rng.chance(30) {
        spec["tls"] = json!([{"hosts": [rng.pick(&HOSTS[..4])], "secretName": rng.pick(SECRETS)}]);
    }
    if rng.chance(10) {
        spec["ingressClassName"] = json!(rng.pick(&["tenant-gateway", "other"]));
    }
    let created = format!("2024-01-0{}T00:00:00Z", 1 + rng.below(3));
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": created,
                     "annotations": annotations(rng)},
        "spec": spec,
    }))
    .expect("valid Ingress")
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "alt", "port": 81, "targetPort": 8081}]}
    }))
    .expect("valid Service")
}

fn slice(service: &str, ready: bool, last_octet: usize) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-x"), "namespace": NS,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [format!("10.0.0.{last_octet}")], "conditions": {"ready": ready}}],
        "ports": [{"name": "http", "port": 8080}, {"name": "alt", "port": 8081}]
    }))
    .expect("valid EndpointSlice")
}

fn tls_secret(name: &str, valid: bool) -> Secret {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    static CERT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (crt, key) = if valid {
        CERT.get_or_init(|| {
            let c = rcgen::generate_simple_self_signed(vec!["a.example.com".to_string()])
                .expect("certificate");
            (c.cert.pem(), c.signing_key.serialize_pem())
        })
        .clone()
    } else {
        ("not a certificate".to_string(), "not a key".to_string())
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&crt), "tls.key": b64(&key)}
    }))
    .expect("valid Secret")
}

/// The tenant, changed one object at a time.
#[derive(Default)]
struct Tenant {
    ingresses: BTreeMap<String, Ingress>,
    services: BTreeMap<String, Service>,
    slices: BTreeMap<String, EndpointSlice>,
    secrets: BTreeMap<String, Secret>,
}

impl Tenant {
    fn objects(&self) -> TenantObjects {
        TenantObjects {
            ingresses: self.ingresses.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
            endpoint_slices: self.slices.values().cloned().collect(),
            secrets: self.secrets.values().cloned().collect(),
            ingress_classes: Vec::new(),
        }
    }

    /// One random change; returns what it was, for a failure's report.
    fn change(&mut self, rng: &mut Rng) -> String {
        let name = format!("ing{}", rng.below(6));
        match rng.below(10) {
            0..=4 => {
                let ing = random_ingress(rng, &name);
                self.ingresses.insert(name.clone(), ing);
                format!("upsert Ingress {name}")
            }
            5 => {
                self.ingresses.remove(&name);
                format!("delete Ingress {name}")
            }
            6 => {
                let svc = rng.pick(&SERVICES[..3]).to_string();
                if self.services.remove(&svc).is_none() {
                    self.services.insert(svc.clone(), service(&svc));
                }
                format!("toggle Service {svc}")
            }
            7 | 8 => {
                let svc = rng.pick(&SERVICES[..3]).to_string();
                let s = slice(&svc, rng.chance(70), 1 + rng.below(3));
                self.slices.insert(svc.clone(), s);
                format!("change endpoints of {svc}")
            }
            _ => {
                let sec = rng.pick(SECRETS).to_string();
                if self.secrets.remove(&sec).is_none() {
                    self.secrets
                        .insert(sec.clone(), tls_secret(&sec, rng.chance(80)));
                }
                format!("toggle Secret {sec}")
            }
        }
    }
}

fn options() -> GatewayOptions {
    GatewayOptions {
        tenant: "shop".into(),
        ..GatewayOptions::default()
    }
}

#[test]
fn incremental_translation_equals_full_translation_over_random_sequences_of_changes() {
    let (mut steps, mut reused, mut hosts) = (0, 0usize, 0usize);
    for seed in 0..SEEDS {
        let mut rng = Rng(seed);
        let mut tenant = Tenant::default();
        for s in SERVICES[..2].iter() {
            tenant.services.insert(s.to_string(), service(s));
            tenant.slices.insert(s.to_string(), slice(s, true, 1));
        }
        let mut translator = Translator::default();
        let mut history = Vec::new();
        for step in 0..30 {
            history.push(tenant.change(&mut rng));
            let objects = tenant.objects();
            let full = translate(&objects, &options());
            let inc = translator.translate(&objects, &options());
            let want = Snapshot::from(&full.resources);
            for ty in ResourceType::ALL {
                let got: Vec<_> = inc.snapshot.resources(ty).collect();
                let wanted: Vec<_> = want.resources(ty).collect();
                assert!(
                    got == wanted,
                    "seed {seed} step {step}: {ty:?} differ after {history:#?}"
                );
            }
            assert!(
                inc.snapshot == want,
                "seed {seed} step {step}: auth table differs"
            );
            assert_eq!(inc.diagnostics, full.diagnostics, "seed {seed} step {step}");
            assert_eq!(inc.served_ingresses, full.served_ingresses);
            assert_eq!(inc.routable_paths, full.routable_paths);
            let vhosts: usize = full
                .resources
                .routes
                .iter()
                .map(|rc| rc.virtual_hosts.len())
                .sum();
            hosts += vhosts;
            reused += vhosts.saturating_sub(inc.virtual_hosts_encoded);
            steps += 1;
        }
    }
    // Not vacuous: the memo was used, and the sequences changed routes often.
    assert!(
        reused > hosts / 4,
        "reused {reused} of {hosts} virtual hosts"
    );
    assert!(
        reused < hosts,
        "every virtual host was reused: nothing changed"
    );
    assert_eq!(steps, SEEDS * 30);
}

/// One Ingress per host; 50 hosts.
fn many_hosts() -> Tenant {
    let mut tenant = Tenant::default();
    tenant.services.insert("svc0".into(), service("svc0"));
    tenant.slices.insert("svc0".into(), slice("svc0", true, 1));
    for h in 0..50 {
        let name = format!("ing{h}");
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"rules": [{"host": format!("h{h}.example.com"), "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "svc0", "port": {"name": "http"}}}}]}}]}
        }))
        .expect("valid Ingress");
        tenant.ingresses.insert(name, ing);
    }
    tenant
}

#[test]
fn a_change_to_one_ingress_encodes_only_its_host_and_an_endpoint_change_none() {
    let mut tenant = many_hosts();
    let mut translator = Translator::default();
    let first = translator.translate(&tenant.objects(), &options());
    assert_eq!(
        first.virtual_hosts_encoded, 50,
        "the first call builds every host"
    );
    let again = translator.translate(&tenant.objects(), &options());
    assert_eq!(again.virtual_hosts_encoded, 0, "nothing changed");
    assert_eq!(again.snapshot, first.snapshot);

    let ing = tenant.ingresses.get_mut("ing7").expect("ing7");
    let spec = ing.spec.as_mut().expect("spec");
    let rules = spec.rules.as_mut().expect("rules");
    let paths = &mut rules[0].http.as_mut().expect("http").paths;
    paths[0].path = Some("/moved".into());
    let changed = translator.translate(&tenant.objects(), &options());
    assert_eq!(changed.virtual_hosts_encoded, 1, "only h7.example.com");
    let full = Snapshot::from(&translate(&tenant.objects(), &options()).resources);
    assert_eq!(changed.snapshot, full);

    tenant.slices.insert("svc0".into(), slice("svc0", true, 2));
    let endpoints = translator.translate(&tenant.objects(), &options());
    assert_eq!(
        endpoints.virtual_hosts_encoded, 0,
        "routes do not name endpoints"
    );
    assert_eq!(
        endpoints.snapshot.version(ResourceType::Route),
        changed.snapshot.version(ResourceType::Route)
    );
    assert_ne!(
        endpoints.snapshot.version(ResourceType::Endpoint),
        changed.snapshot.version(ResourceType::Endpoint)
    );
}

/// A backend scaled 0 → 1 (its EndpointSlice goes from no endpoints and no
/// ports, as the EndpointSlice controller writes it for a selector that
/// matches no pod, to one ready endpoint) and back: only EDS changes.
#[test]
fn a_backend_scaled_from_zero_and_back_changes_endpoints_only() {
    let mut tenant = many_hosts();
    let empty: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "svc0-x", "namespace": NS,
                     "labels": {"kubernetes.io/service-name": "svc0"}},
        "addressType": "IPv4", "endpoints": null, "ports": null
    }))
    .expect("valid EndpointSlice");
    let mut translator = Translator::default();
    tenant.slices.insert("svc0".into(), empty.clone());
    let zero = translator.translate(&tenant.objects(), &options());
    tenant.slices.insert("svc0".into(), slice("svc0", true, 1));
    let one = translator.translate(&tenant.objects(), &options());
    tenant.slices.insert("svc0".into(), empty);
    let back = translator.translate(&tenant.objects(), &options());
    for (what, a, b) in [("0 → 1", &zero, &one), ("1 → 0", &one, &back)] {
        for ty in [
            ResourceType::Cluster,
            ResourceType::Listener,
            ResourceType::Route,
        ] {
            assert_eq!(
                a.snapshot.version(ty),
                b.snapshot.version(ty),
                "{what}: {ty:?} changed"
            );
        }
        assert_ne!(
            a.snapshot.version(ResourceType::Endpoint),
            b.snapshot.version(ResourceType::Endpoint),
            "{what}: the endpoints changed"
        );
        assert_eq!(b.virtual_hosts_encoded, 0, "{what}");
    }
}
