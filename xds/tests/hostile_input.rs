//! Malformed and hostile input: a generated corpus of bad Ingresses must never
//! panic, must each be reported, and must never stop a good route; and a
//! property test that one tenant's output never references another tenant's
//! namespaces, whatever the input.

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressRule, IngressTLS};
use k8s_openapi::ByteString;
use proptest::prelude::*;
use std::collections::BTreeSet;
use testkit::objects::{
    http_service, ingress, ingress_path, ingress_rule, meta, ready_endpoint_slice, service_backend,
};
use xds::{translate, GatewayOptions, TenantObjects};

fn backend(svc: &str, port: Option<i32>, port_name: Option<&str>) -> IngressBackend {
    service_backend(svc, port, port_name)
}

fn rule(host: Option<&str>, path: Option<&str>, ty: &str, b: IngressBackend) -> IngressRule {
    ingress_rule(host, vec![ingress_path(path, ty, b)])
}

fn service(ns: &str, name: &str) -> (Service, EndpointSlice) {
    let slice = format!("{name}-x");
    (
        http_service(ns, name),
        ready_endpoint_slice(ns, name, &slice, vec!["10.0.0.1".into()], 8080),
    )
}

/// At least 200 bad Ingresses of many kinds, each named `bad-<n>`.
fn bad_corpus(ns: &str) -> Vec<Ingress> {
    let good = || backend("web", Some(80), None);
    let long = "a".repeat(300);
    let long_label = format!("{}.example.com", "b".repeat(64));
    let bad_hosts: Vec<String> = vec![
        "Shop.Example.com".into(),
        "shop..example.com".into(),
        "-shop.example.com".into(),
        "shop-.example.com".into(),
        "*.".into(),
        "*".into(),
        "foo.*.com".into(),
        "**.example.com".into(),
        "10.0.0.1".into(),
        "shöp.example.com".into(),
        "例え.jp".into(),
        "shop.example.com:8080".into(),
        "shop example.com".into(),
        "shop.example.com/path".into(),
        long.clone(),
        long_label,
        "\u{0}.example.com".into(),
        "shop.example.com\r\nX-Injected: 1".into(),
        ".example.com".into(),
        "example.com.".into(),
    ];
    let bad_paths: Vec<(Option<String>, &str)> = vec![
        (Some("relative".into()), "Prefix"),
        (Some("".into()), "Prefix"),
        (None, "Exact"),
        (Some("/a b".into()), "Prefix"),
        (Some("/a?b=c".into()), "Exact"),
        (Some("/a#frag".into()), "Prefix"),
        (Some("/a\r\nX: y".into()), "Prefix"),
        (Some("/\u{7}".into()), "Exact"),
        (Some(format!("/{}", "x".repeat(5000))), "Prefix"),
        (Some("/ok".into()), "Regex"),
        (Some("/ok".into()), ""),
        (Some("/ok".into()), "prefix"),
        (Some("../../etc/passwd".into()), "Prefix"),
        (Some("..".into()), "Exact"),
        (Some("\\windows".into()), "Prefix"),
    ];
    let bad_backends: Vec<IngressBackend> = vec![
        backend("missing", Some(80), None),
        backend("web", Some(81), None),
        backend("web", Some(0), None),
        backend("web", Some(-1), None),
        backend("web", Some(i32::MAX), None),
        backend("web", None, Some("nope")),
        backend("web", None, Some("")),
        backend("web", None, None),
        backend("", Some(80), None),
        backend(&"s".repeat(300), Some(80), None),
        backend("other-tenant-svc", Some(80), None),
        IngressBackend {
            service: None,
            resource: None,
        },
        IngressBackend {
            service: None,
            resource: Some(k8s_openapi::api::core::v1::TypedLocalObjectReference {
                api_group: Some("storage.k8s.io".into()),
                kind: "Bucket".into(),
                name: "b".into(),
            }),
        },
    ];
    let mut out = Vec::new();
    let mut n = 0;
    let mut push = |rules: Vec<IngressRule>, tls: Option<Vec<IngressTLS>>| {
        out.push(ingress(ns, &format!("bad-{n}"), rules, tls));
        n += 1;
    };
    for h in &bad_hosts {
        for ty in ["Prefix", "Exact", "ImplementationSpecific"] {
            push(vec![rule(Some(h), Some("/"), ty, good())], None);
        }
    }
    for (p, ty) in &bad_paths {
        for host in [None, Some("corpus.example.com"), Some("*.wild.example.com")] {
            push(vec![rule(host, p.as_deref(), ty, good())], None);
        }
    }
    for b in &bad_backends {
        for path in ["/x", "/y/z", "/", "/deep/er/path"] {
            push(
                vec![rule(
                    Some("corpus.example.com"),
                    Some(path),
                    "Prefix",
                    b.clone(),
                )],
                None,
            );
        }
    }
    for b in &bad_backends {
        let mut i = ingress(ns, &format!("bad-{n}"), vec![], None);
        if let Some(spec) = i.spec.as_mut() {
            spec.default_backend = Some(b.clone());
        }
        out.push(i);
        n += 1;
    }
    let mut push = |rules: Vec<IngressRule>, tls: Option<Vec<IngressTLS>>| {
        out.push(ingress(ns, &format!("bad-{n}"), rules, tls));
        n += 1;
    };
    // TLS: missing Secret, no secretName, no hosts, Secret in another namespace, malformed Secret.
    for secret in [
        Some("missing-tls"),
        None,
        Some(""),
        Some("other-tenant-tls"),
        Some("broken-tls"),
    ] {
        for hosts in [
            Some(vec!["tls.example.com".to_string()]),
            None,
            Some(vec!["Bad Host".to_string()]),
        ] {
            push(
                vec![],
                Some(vec![IngressTLS {
                    hosts: hosts.clone(),
                    secret_name: secret.map(Into::into),
                }]),
            );
        }
    }
    // Duplicated everything: the same good-looking path claimed by many Ingresses
    // (all but the oldest lose), and one Ingress listing the same path 50 times.
    for _ in 0..20 {
        push(
            vec![rule(
                Some("shop.example.com"),
                Some("/login"),
                "Prefix",
                good(),
            )],
            None,
        );
    }
    push(
        (0..50)
            .map(|_| {
                rule(
                    Some("dup.example.com"),
                    Some("/d"),
                    "Prefix",
                    backend("missing", Some(80), None),
                )
            })
            .collect(),
        None,
    );
    // Huge numbers of hosts, all pointing at a missing Service.
    push(
        (0..2000)
            .map(|i| {
                rule(
                    Some(&format!("h{i}.huge.example.com")),
                    Some("/"),
                    "Prefix",
                    backend("missing", Some(80), None),
                )
            })
            .collect(),
        None,
    );
    // All created after the good Ingress (as on a live cluster, where every
    // object has a creationTimestamp).
    let later = k8s_openapi::jiff::Timestamp::from_second(3600).expect("valid timestamp");
    for i in &mut out {
        i.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(later));
    }
    out
}

#[test]
fn a_corpus_of_bad_ingresses_is_reported_one_by_one_and_the_good_route_keeps_serving() {
    let ns = "shop";
    let mut good = ingress(
        ns,
        "good",
        vec![rule(
            Some("shop.example.com"),
            Some("/login"),
            "Prefix",
            backend("web", Some(80), None),
        )],
        None,
    );
    // The good Ingress is the oldest, so it wins the duplicated path.
    good.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let corpus = bad_corpus(ns);
    assert!(corpus.len() >= 200, "corpus has {} Ingresses", corpus.len());
    let (svc, es) = service(ns, "web");
    let (other_svc, other_es) = service("other-tenant", "other-tenant-svc");
    let broken = Secret {
        metadata: meta(ns, "broken-tls"),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            [
                (
                    "tls.crt".to_string(),
                    ByteString(
                        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
                            .to_vec(),
                    ),
                ),
                ("tls.key".to_string(), ByteString(b"garbage".to_vec())),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let mut objects = TenantObjects {
        ingresses: corpus.clone(),
        services: vec![svc, other_svc],
        endpoint_slices: vec![es, other_es],
        secrets: vec![broken],
        ..Default::default()
    };
    objects.ingresses.push(good);
    let opts = GatewayOptions {
        namespaces: Some([ns.to_string()].into()),
        ..GatewayOptions::default()
    };
    let t = translate(&objects, &opts);
    assert_eq!(t.resources.consistency_problems(), Vec::<String>::new());

    // Every bad Ingress is reported, by name.
    let reported: BTreeSet<&str> = t
        .diagnostics
        .iter()
        .map(|d| d.object.name.as_str())
        .collect();
    let unreported: Vec<&str> = corpus
        .iter()
        .filter_map(|i| i.metadata.name.as_deref())
        .filter(|n| !reported.contains(n))
        .collect();
    assert!(
        unreported.is_empty(),
        "bad Ingresses not reported: {unreported:?}"
    );
    assert!(
        !reported.contains("good"),
        "the good Ingress was reported: {:?}",
        t.diagnostics
            .iter()
            .filter(|d| d.object.name == "good")
            .collect::<Vec<_>>()
    );
    // Every diagnostic names a field.
    assert!(t
        .diagnostics
        .iter()
        .all(|d| !d.field.is_empty() && !d.message.is_empty()));

    // The good route is served, by the good Ingress, to its backend.
    let rc = t
        .resources
        .routes
        .iter()
        .find(|r| r.name == "http")
        .expect("http routes");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "shop.example.com")
        .expect("good host");
    assert_eq!(
        vh.routes[0].name,
        "shop/good|shop.example.com|prefix:/login"
    );
    assert!(t.resources.clusters.iter().any(|c| c.name == "shop/web/80"));
    // Nothing from outside the tenant, nothing unsafe reached Envoy.
    let dump = format!("{:?}", t.resources);
    for needle in ["other-tenant", "X-Injected", "etc/passwd", "\\r\\n"] {
        assert!(!dump.contains(needle), "output contains {needle:?}");
    }
    // The result is valid Envoy config by construction: checked byte-for-byte
    // deterministic here; `render` + `envoy --mode validate` is covered in
    // translate_envoy.rs.
    assert_eq!(translate(&objects, &opts), t);
}

// ---------- property: no cross-tenant references, whatever the input ----------

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web".to_string()),
        Just("api".to_string()),
        Just("".to_string()),
        "[a-z]{1,5}",
        ".{0,12}",
    ]
}

fn arb_ns() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("tenant-a-1".to_string()),
        Just("tenant-a-2".to_string()),
        Just("tenant-b-1".to_string()),
        Just("tenant-b-2".to_string()),
    ]
}

fn arb_ingress() -> impl Strategy<Value = Ingress> {
    (
        arb_ns(),
        "[a-z]{1,6}",
        proptest::collection::vec(
            (
                proptest::option::of(prop_oneof![
                    Just("shop.example.com".to_string()),
                    Just("*.example.com".to_string()),
                    ".{0,20}"
                ]),
                proptest::option::of(prop_oneof![
                    Just("/".to_string()),
                    Just("/login".to_string()),
                    ".{0,10}"
                ]),
                prop_oneof![
                    Just("Prefix"),
                    Just("Exact"),
                    Just("ImplementationSpecific"),
                    Just("bogus")
                ],
                arb_name(),
                proptest::option::of(-2i32..70000),
                proptest::option::of(arb_name()),
            ),
            0..6,
        ),
        proptest::option::of(proptest::collection::vec(
            (
                proptest::option::of(arb_name()),
                proptest::option::of(".{0,20}"),
            ),
            0..3,
        )),
        proptest::option::of(arb_name()),
    )
        .prop_map(|(ns, name, rules, tls, default)| {
            let rules = rules
                .into_iter()
                .map(|(host, path, ty, svc, num, pname)| {
                    rule(
                        host.as_deref(),
                        path.as_deref(),
                        ty,
                        backend(&svc, num, pname.as_deref()),
                    )
                })
                .collect();
            let tls = tls.map(|v| {
                v.into_iter()
                    .map(|(secret, host)| IngressTLS {
                        secret_name: secret,
                        hosts: host.map(|h| vec![h]),
                    })
                    .collect()
            });
            let mut i = ingress(&ns, &name, rules, tls);
            if let (Some(d), Some(spec)) = (default, i.spec.as_mut()) {
                spec.default_backend = Some(backend(&d, Some(80), None));
            }
            i
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_tenants_output_never_references_another_tenants_namespaces(
        ingresses in proptest::collection::vec(arb_ingress(), 0..12),
        service_ns in proptest::collection::vec((arb_ns(), arb_name()), 0..6),
    ) {
        let mut objects = TenantObjects { ingresses, ..Default::default() };
        for (ns, name) in service_ns {
            let (s, e) = service(&ns, &name);
            objects.services.push(s);
            objects.endpoint_slices.push(e);
            objects.secrets.push(Secret { metadata: meta(&ns, &name), ..Default::default() });
        }
        let a: BTreeSet<String> = ["tenant-a-1".to_string(), "tenant-a-2".to_string()].into();
        let opts = GatewayOptions { namespaces: Some(a), ..GatewayOptions::default() };
        let t = translate(&objects, &opts);
        prop_assert_eq!(t.resources.consistency_problems(), Vec::<String>::new());
        let dump = format!("{:?}", t.resources);
        prop_assert!(!dump.contains("tenant-b-"), "tenant A's config references tenant B");
        prop_assert!(t.diagnostics.iter().all(|d| d.object.namespace.starts_with("tenant-a-")));
        prop_assert!(t.served_ingresses.iter().all(|(ns, _)| ns.starts_with("tenant-a-")));
        // Deterministic whatever the order.
        let mut rev = objects.clone();
        rev.ingresses.reverse();
        rev.services.reverse();
        rev.endpoint_slices.reverse();
        prop_assert_eq!(translate(&rev, &opts).resources, t.resources);
    }
}
