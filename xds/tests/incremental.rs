//! Incremental translation (`xds::Translator`) against the reference, the
//! full translation: over random sequences of changes to a tenant (Ingresses
//! with the annotations that make routes depend on each other or on other
//! objects, their creation order, Services and their ports, endpoints,
//! Secrets for TLS, basic auth and CAs, IngressClasses, the gateway's
//! options), every step's snapshot must be byte for byte
//! `Snapshot::from(&translate(..).resources)`, with the same diagnostics.
//! Half the seeds give objects a uid and resourceVersion (bumped on every
//! change, as the API server does), half do not.

use base64::Engine;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
const SEEDS: u64 = 80;
const STEPS: u64 = 40;
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
        ("auth-tls-secret", &["ca0", "cert0", "missing"]),
        ("auth-tls-verify-client", &["on", "optional"]),
        ("proxy-ssl-secret", &["shop/ca0", "shop/missing"]),
        (
            "auth-url",
            &[
                "http://svc2.shop.svc.cluster.local/auth",
                "http://svc1.shop.svc:81/auth",
                "http://svc2.other.svc/auth",
            ],
        ),
        (
            "mirror-target",
            &[
                "http://svc2.shop.svc.cluster.local:80",
                "http://missing.shop.svc:80",
            ],
        ),
        ("service-upstream", &["true"]),
    ];
    let mut out = BTreeMap::new();
    for (key, values) in options {
        if rng.chance(12) {
            let v = rng.pick(values);
            out.insert(format!("nginx.ingress.kubernetes.io/{key}"), v.to_string());
        }
    }
    if rng.chance(10) {
        out.insert(
            "nginx.ingress.kubernetes.io/auth-type".into(),
            "basic".into(),
        );
        let secret = rng.pick(&["auth0", "missing"]);
        out.insert(
            "nginx.ingress.kubernetes.io/auth-secret".into(),
            secret.into(),
        );
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
    service_variant(name, 0)
}

/// A Service in one of its shapes: both ports; only `http`, on another
/// target port; `http` on port 81 and headless; both ports by the same
/// number, TCP and UDP (`alt` is UDP); ExternalName.
fn service_variant(name: &str, variant: usize) -> Service {
    let spec = match variant {
        0 => json!({"clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "alt", "port": 81, "targetPort": 8081}]}),
        1 => json!({"clusterIP": "10.96.0.11", "ports": [
            {"name": "http", "port": 80, "targetPort": 8081}]}),
        2 => json!({"clusterIP": "None", "ports": [
            {"name": "http", "port": 81, "targetPort": 8080}]}),
        3 => json!({"clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "alt", "port": 80, "targetPort": 8081, "protocol": "UDP"}]}),
        _ => json!({"type": "ExternalName", "externalName": "example.org"}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
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
        "data": {"tls.crt": b64(&crt), "tls.key": b64(&key), "ca.crt": b64(&crt)}
    }))
    .expect("valid Secret")
}

/// `auth0`: a basic-auth Secret, with one user or with none usable.
fn auth_secret(usable: bool) -> Secret {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let line = if usable {
        "user:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M="
    } else {
        "user:not-a-hash"
    };
    serde_json::from_value(json!({
        "metadata": {"name": "auth0", "namespace": NS},
        "type": "Opaque",
        "data": {"auth": b64(line)}
    }))
    .expect("valid Secret")
}

fn ingress_class(name: &str) -> IngressClass {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"controller": "tenantgateway.io/gateway"}
    }))
    .expect("valid IngressClass")
}

/// The tenant, changed one object at a time.
#[derive(Default)]
struct Tenant {
    ingresses: BTreeMap<String, Ingress>,
    services: BTreeMap<String, Service>,
    slices: BTreeMap<String, EndpointSlice>,
    secrets: BTreeMap<String, Secret>,
    classes: BTreeMap<String, IngressClass>,
    /// Give objects a uid and resourceVersion (a new one on every change).
    versions: bool,
    /// The last resourceVersion given.
    version: u64,
    options: GatewayOptions,
}

impl Tenant {
    fn objects(&self) -> TenantObjects {
        TenantObjects {
            ingresses: self.ingresses.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
            endpoint_slices: self.slices.values().cloned().collect(),
            secrets: self.secrets.values().cloned().collect(),
            ingress_classes: self.classes.values().cloned().collect(),
        }
    }

    /// A new uid and resourceVersion for every object whose content changed
    /// since the last call (none without `versions`).
    fn bump_versions(&mut self, before: &TenantObjects) {
        if !self.versions {
            return;
        }
        fn bump<K: k8s_openapi::Metadata<Ty = ObjectMeta> + Clone + PartialEq>(
            objects: &mut BTreeMap<String, K>,
            before: &[K],
            version: &mut u64,
        ) {
            for o in objects.values_mut() {
                let mut unversioned = o.clone();
                let meta = unversioned.metadata_mut();
                meta.resource_version = None;
                meta.uid = None;
                let same = before.iter().any(|b| {
                    let mut b = b.clone();
                    let m = b.metadata_mut();
                    m.resource_version = None;
                    m.uid = None;
                    b == unversioned
                });
                if !same || o.metadata().resource_version.is_none() {
                    *version += 1;
                    let meta = o.metadata_mut();
                    meta.resource_version = Some(version.to_string());
                    meta.uid.get_or_insert_with(|| format!("uid-{version}"));
                }
            }
        }
        bump(&mut self.ingresses, &before.ingresses, &mut self.version);
        bump(&mut self.services, &before.services, &mut self.version);
        bump(&mut self.slices, &before.endpoint_slices, &mut self.version);
        bump(&mut self.secrets, &before.secrets, &mut self.version);
    }

    /// One random change; returns what it was, for a failure's report.
    fn change(&mut self, rng: &mut Rng) -> String {
        let before = self.objects();
        let what = self.change_one(rng);
        self.bump_versions(&before);
        what
    }

    fn change_one(&mut self, rng: &mut Rng) -> String {
        let name = format!("ing{}", rng.below(6));
        match rng.below(16) {
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
            9 => {
                let sec = rng.pick(SECRETS).to_string();
                if self.secrets.remove(&sec).is_none() {
                    self.secrets
                        .insert(sec.clone(), tls_secret(&sec, rng.chance(80)));
                }
                format!("toggle Secret {sec}")
            }
            10 => {
                let svc = rng.pick(&SERVICES[..3]).to_string();
                let variant = rng.below(5);
                self.services
                    .insert(svc.clone(), service_variant(&svc, variant));
                format!("Service {svc} ports variant {variant}")
            }
            11 => {
                let (sec, valid) = (rng.pick(&["auth0", "ca0"]), rng.chance(70));
                if rng.chance(30) {
                    self.secrets.remove(sec);
                    return format!("delete Secret {sec}");
                }
                let secret = match sec {
                    "auth0" => auth_secret(valid),
                    _ => tls_secret(sec, valid),
                };
                self.secrets.insert(sec.to_string(), secret);
                format!("Secret {sec} valid {valid}")
            }
            12 => {
                // Older or newer: who wins a shared host and path changes.
                let Some(ing) = self.ingresses.get_mut(&name) else {
                    return format!("no Ingress {name} to age");
                };
                let created = format!("2024-01-0{}T00:00:00Z", 1 + rng.below(3));
                ing.metadata.creation_timestamp =
                    serde_json::from_value(json!(created)).expect("valid time");
                format!("Ingress {name} created {created}")
            }
            13 => {
                let class = rng.pick(&["tenant-gateway", "other"]).to_string();
                if self.classes.remove(&class).is_none() {
                    self.classes.insert(class.clone(), ingress_class(&class));
                }
                format!("toggle IngressClass {class}")
            }
            14 => {
                // Only the annotations: the spec is the same.
                let Some(ing) = self.ingresses.get_mut(&name) else {
                    return format!("no Ingress {name} to annotate");
                };
                ing.metadata.annotations = Some(annotations(rng));
                format!("annotations of Ingress {name}")
            }
            _ => {
                let o = &mut self.options;
                match rng.below(3) {
                    0 => o.serve_unclassed = !o.serve_unclassed,
                    1 => o.http_port = if o.http_port == 8080 { 8081 } else { 8080 },
                    _ => {
                        o.namespaces = match o.namespaces {
                            None => Some([NS.to_string()].into()),
                            Some(_) => None,
                        }
                    }
                }
                "change the gateway's options".to_string()
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

/// How often the sequences served what the memo depends on (the test is
/// vacuous for a dependency never served).
#[derive(Debug, Default)]
struct Seen {
    auth: usize,
    tls: usize,
    fallback_clusters: usize,
    passthrough: usize,
    upstream_ip: usize,
    mirrors: usize,
    conflicts: usize,
    canaries: usize,
}

impl Seen {
    fn note(&mut self, t: &xds::Translation) {
        let r = &t.resources;
        self.auth += usize::from(!r.auth.is_empty());
        self.tls += usize::from(!r.secrets.is_empty());
        let clusters = r.clusters.iter().map(|c| c.name.as_str());
        self.fallback_clusters += clusters.clone().filter(|c| c.contains("|or|")).count();
        self.passthrough += r
            .listeners
            .iter()
            .flat_map(|l| &l.filter_chains)
            .filter(|c| c.name.starts_with("passthrough"))
            .count();
        let routes = format!("{:?}", r.routes);
        self.mirrors +=
            usize::from(routes.contains("request_mirror_policies: [RequestMirrorPolicy"));
        self.canaries += usize::from(routes.contains("canary"));
        let endpoints = format!("{:?}", r.endpoints);
        self.upstream_ip += usize::from(endpoints.contains("10.96.0."));
        self.conflicts += t
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("already served by the older Ingress"))
            .count();
    }

    fn assert_all(&self) {
        eprintln!("{self:?}");
        let all = [
            self.auth,
            self.tls,
            self.fallback_clusters,
            self.passthrough,
            self.upstream_ip,
            self.mirrors,
            self.conflicts,
            self.canaries,
        ];
        assert!(all.iter().all(|n| *n > 0), "{self:?}");
    }
}

#[test]
fn incremental_translation_equals_full_translation_over_random_sequences_of_changes() {
    let (mut steps, mut reused, mut hosts) = (0, 0usize, 0usize);
    let mut seen = Seen::default();
    for seed in 0..SEEDS {
        let mut rng = Rng(seed);
        let mut tenant = Tenant {
            versions: seed % 2 == 0,
            options: options(),
            ..Tenant::default()
        };
        for s in SERVICES[..2].iter() {
            tenant.services.insert(s.to_string(), service(s));
            tenant.slices.insert(s.to_string(), slice(s, true, 1));
        }
        let mut translator = Translator::default();
        let mut history = Vec::new();
        for step in 0..STEPS {
            history.push(tenant.change(&mut rng));
            let objects = tenant.objects();
            let full = translate(&objects, &tenant.options);
            let inc = translator.translate(&objects, &tenant.options);
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
            seen.note(&full);
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
    assert_eq!(steps, SEEDS * STEPS);
    seen.assert_all();
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

/// Two Ingresses name one cluster (`shop/dns/80`) with other endpoints: by
/// port number (TCP, 8080) and by the name of the UDP port of the same
/// number (8081). The older one's backend is served; aging them in turn
/// must swap it.
#[test]
fn the_older_ingress_keeps_a_shared_cluster_name_when_creation_order_changes() {
    let mut tenant = Tenant {
        options: options(),
        ..Tenant::default()
    };
    tenant
        .services
        .insert("dns".into(), service_variant("dns", 3));
    tenant.slices.insert("dns".into(), slice("dns", true, 1));
    let ingress = |name: &str, host: &str, port: Value, created: &str| -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "dns", "port": port}}}]}}]}
        }))
        .expect("valid Ingress")
    };
    let mut translator = Translator::default();
    let mut endpoints = Vec::new();
    for (a, b) in [("01", "02"), ("02", "01"), ("01", "02")] {
        let time = |d: &str| format!("2024-01-{d}T00:00:00Z");
        let number = json!({"number": 80});
        let named = json!({"name": "alt"});
        tenant
            .ingresses
            .insert("a".into(), ingress("a", "a.example.com", number, &time(a)));
        let mut b_ing = ingress("b", "b.example.com", named.clone(), &time(b));
        // Its default backend too: one the tenant-wide arbitration adds.
        if let Some(spec) = b_ing.spec.as_mut() {
            spec.default_backend =
                serde_json::from_value(json!({"service": {"name": "dns", "port": named}}))
                    .expect("valid backend");
        }
        tenant.ingresses.insert("b".into(), b_ing);
        let objects = tenant.objects();
        let inc = translator.translate(&objects, &tenant.options);
        let full = Snapshot::from(&translate(&objects, &tenant.options).resources);
        assert!(inc.snapshot == full, "created {a} and {b}");
        endpoints.push(full.version(ResourceType::Endpoint));
    }
    assert_ne!(
        endpoints[0], endpoints[1],
        "the other Ingress's backend is served"
    );
    assert_eq!(endpoints[0], endpoints[2]);
}

/// A canary Ingress older than its main one still attaches to the main
/// route: canaries are lowered after every main Ingress, whatever their age
/// (through the Translator as in full).
#[test]
fn a_canary_older_than_its_main_ingress_still_attaches() {
    let mut tenant = many_hosts();
    let canary: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "canary", "namespace": NS, "creationTimestamp": "2023-01-01T00:00:00Z",
                     "annotations": {"nginx.ingress.kubernetes.io/canary": "true",
                                     "nginx.ingress.kubernetes.io/canary-weight": "30"}},
        "spec": {"rules": [{"host": "h1.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "svc1", "port": {"name": "http"}}}}]}}]}
    }))
    .expect("valid Ingress");
    tenant.ingresses.insert("canary".into(), canary);
    tenant.services.insert("svc1".into(), service("svc1"));
    let full = translate(&tenant.objects(), &options());
    assert!(full.diagnostics.is_empty(), "{:?}", full.diagnostics);
    let routes = format!("{:?}", full.resources.routes);
    assert!(
        routes.contains("shop/svc1/80"),
        "the canary's cluster is routed to"
    );
    let inc = Translator::default().translate(&tenant.objects(), &options());
    assert!(inc.snapshot == Snapshot::from(&full.resources));
}
