use super::*;
use crate::manifests::Manifests;
use crate::sources::ingress::annotations::table::REFUSED;

/// The objects of a multi-document manifest.
fn objects(yaml: &str) -> TenantObjects {
    let mut m = Manifests::default();
    m.add_documents(std::path::Path::new("test.yaml"), yaml)
        .expect("test manifests parse");
    m.objects
}

/// An Ingress `ns/name` of class `nginx` routing `/` of `host` to Service
/// `web` port 80, with these annotations.
fn ingress(ns: &str, name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {}\n", serde_json::to_string(v).unwrap()))
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n{ann}\
         spec:\n  ingressClassName: nginx\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n\
         \x20       backend: {{service: {{name: web, port: {{number: 80}}}}}}\n---\n"
    )
}

fn web_service(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  ports:\n  - {{name: http, port: 80}}\n---\n"
    )
}

/// Key → displayed verdict of one Ingress of the report.
fn verdicts<'r>(report: &'r Report, name: &str) -> BTreeMap<&'r str, String> {
    let ing = report.ingresses.iter().find(|i| i.name == name).unwrap();
    ing.annotations
        .iter()
        .map(|a| (a.key.as_str(), a.display()))
        .collect()
}

const N: &str = "nginx.ingress.kubernetes.io/";

fn nginx(key: &str) -> String {
    format!("{N}{key}")
}

#[test]
fn every_differs_note_is_keyed_by_a_real_row_key_once() {
    let mut seen = BTreeSet::new();
    for (key, note) in differs::DIFFERS {
        assert!(
            TABLE.iter().any(|r| r.key == *key),
            "{key} is not the key of a row of annotations/table.rs"
        );
        assert!(seen.insert(*key), "{key} twice");
        assert!(!note.is_empty());
    }
}

#[test]
fn each_annotation_gets_the_table_s_verdict_and_the_translation_s_reason() {
    let yaml = [
        web_service("shop"),
        ingress(
            "shop",
            "app",
            "app.example.com",
            &[
                (&nginx("rewrite-target"), "/$1"),
                (&nginx("use-regex"), "true"),
                (&nginx("limit-rps"), "lots"),
                (&nginx("proxy-read-timeout"), "soon"),
                (
                    &nginx("configuration-snippet"),
                    "more_set_headers \"X: y\";",
                ),
                (&nginx("custom-http-errors"), "404,503"),
                (&nginx("auth-tls-secret"), "other/client-ca"),
                (&nginx("force-ssl-redirect"), "true"),
                ("tenantgateway.io/ssl-redirect", "true"),
                (&nginx("ssl-redirect"), "false"),
                ("cert-manager.io/cluster-issuer", "letsencrypt"),
                ("kubernetes.io/ingress.class", "nginx"),
            ],
        ),
    ]
    .concat();
    let report = assess(&objects(&yaml), &[]);
    let got = verdicts(&report, "app");
    let use_regex = differs::note("tenantgateway.io/use-regex").unwrap();
    let ssl_redirect = differs::note("tenantgateway.io/ssl-redirect").unwrap();
    let custom_errors = differs::note("tenantgateway.io/custom-http-errors").unwrap();
    let want: BTreeMap<String, String> = [
        (nginx("rewrite-target"), "supported".to_string()),
        (
            nginx("use-regex"),
            format!("supported, differs: {use_regex}"),
        ),
        (nginx("force-ssl-redirect"), "supported".into()),
        (
            "tenantgateway.io/ssl-redirect".into(),
            format!("supported, differs: {ssl_redirect}"),
        ),
        (
            nginx("ssl-redirect"),
            "supported, differs: ignored: tenantgateway.io/ssl-redirect is also set and wins"
                .into(),
        ),
        (
            nginx("custom-http-errors"),
            format!("supported, differs: {custom_errors}"),
        ),
    ]
    .into_iter()
    .collect();
    for (key, verdict) in &want {
        assert_eq!(got.get(key.as_str()), Some(verdict), "{key}: {got:#?}");
    }
    // Refusals carry the translation's own message.
    let refused = |key: &str, part: &str| {
        let v = &got[key];
        assert!(v.starts_with("refused (") && v.contains(part), "{key}: {v}");
    };
    refused(&nginx("limit-rps"), "invalid value \"lots\"");
    refused(&nginx("limit-rps"), "the Ingress's rules are not served");
    // Lenient: served with the default, still a refused value.
    refused(&nginx("proxy-read-timeout"), "invalid value \"soon\"");
    refused(
        &nginx("configuration-snippet"),
        "raw proxy configuration injection",
    );
    refused(&nginx("auth-tls-secret"), "other");
    // Other prefixes are not judged, the class annotation included.
    assert!(!got.contains_key("cert-manager.io/cluster-issuer"));
    assert!(!got.contains_key("kubernetes.io/ingress.class"));
    assert_eq!(got.len(), 10, "{got:#?}");
    assert_eq!(report.worst(), Some(Level::Refused));
}

#[test]
fn every_refused_key_is_refused_with_the_translation_s_message() {
    // Whatever REFUSED holds today (a key that becomes a row leaves it).
    let keys: Vec<(&str, &str)> = REFUSED.iter().map(|(k, _)| (*k, "x")).collect();
    let yaml = [
        web_service("shop"),
        ingress("shop", "all", "a.example.com", &keys),
    ]
    .concat();
    let report = assess(&objects(&yaml), &[]);
    let ing = &report.ingresses[0];
    assert_eq!(ing.annotations.len(), REFUSED.len());
    for a in &ing.annotations {
        assert_eq!(a.level, Level::Refused, "{a:?}");
        assert!(a.why.as_deref().is_some_and(|w| !w.is_empty()), "{a:?}");
        assert!(!a.display().contains("refused: "), "prefix stripped: {a:?}");
    }
}

#[test]
fn problems_name_the_class_and_the_translation_s_other_diagnostics() {
    // No Service: the backend is reported apart from the annotations.
    let yaml = ingress(
        "shop",
        "app",
        "app.example.com",
        &[(&nginx("enable-cors"), "true")],
    );
    let report = assess(&objects(&yaml), &[]);
    let ing = &report.ingresses[0];
    assert_eq!(ing.annotations.len(), 1);
    assert_eq!(ing.annotations[0].level, Level::Differs);
    assert_eq!(ing.problems.len(), 2, "{:?}", ing.problems);
    assert!(ing.problems[0]
        .starts_with("note class: \"nginx\" is not the gateway's class \"tenant-gateway\""));
    assert!(ing.problems[1].starts_with("error spec.rules[0].http.paths[0].backend.service"));
    assert!(
        ing.problems[1].contains("Service \"web\" not found"),
        "{}",
        ing.problems[1]
    );
}

#[test]
fn ingresses_are_judged_per_tenant_with_its_options_and_summed_per_tenant() {
    let yaml = [
        web_service("acme-shop"),
        web_service("globex-web"),
        web_service("loose"),
        ingress(
            "acme-shop",
            "a1",
            "a.example.com",
            &[(&nginx("canary"), "maybe")],
        ),
        ingress(
            "acme-shop",
            "a2",
            "b.example.com",
            &[(&nginx("enable-cors"), "true")],
        ),
        ingress(
            "globex-web",
            "g1",
            "g.example.com",
            &[(&nginx("server-snippet"), "x")],
        ),
        ingress(
            "loose",
            "l1",
            "l.example.com",
            &[(&nginx("affinity"), "cookie")],
        ),
        ingress("loose2", "l2", "l.example.com", &[]),
    ]
    .concat();
    let scope = |tenant: &str, ns: &str, class: &str| TenantScope {
        tenant: tenant.into(),
        namespaces: [ns.to_string()].into(),
        options: GatewayOptions {
            ingress_class: class.into(),
            ..GatewayOptions::default()
        },
    };
    let tenants = [
        scope("globex", "globex-web", "tenant-gateway"),
        scope("acme", "acme-shop", "nginx"),
    ];
    let report = assess(&objects(&yaml), &tenants);
    let order: Vec<(Option<&str>, &str)> = report
        .ingresses
        .iter()
        .map(|i| (i.tenant.as_deref(), i.name.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (Some("acme"), "a1"),
            (Some("acme"), "a2"),
            (Some("globex"), "g1"),
            (None, "l1"),
            (None, "l2"),
        ]
    );
    // acme serves class nginx: no class note there; globex does not.
    assert!(
        report.ingresses[0].problems.is_empty(),
        "{:?}",
        report.ingresses[0].problems
    );
    assert!(report.ingresses[2].problems[0].starts_with("note class"));
    let summary = |t: &TenantSummary| {
        (
            t.tenant.clone(),
            t.ingresses,
            t.supported,
            t.differs,
            t.not_supported,
            t.refused,
        )
    };
    let got: Vec<_> = report.tenants.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            (Some("acme".to_string()), 2, 0, 1, 0, 1),
            (Some("globex".to_string()), 1, 0, 0, 0, 1),
            (None, 2, 0, 1, 0, 0),
        ]
    );
    // Deterministic whatever the order of the objects and tenants.
    let mut reversed = objects(&yaml);
    reversed.ingresses.reverse();
    let tenants_rev = [tenants[1].clone(), tenants[0].clone()];
    assert_eq!(assess(&reversed, &tenants_rev), report);
}

#[test]
fn worst_is_none_without_judged_annotations_and_levels_order_best_to_worst() {
    let yaml = [
        web_service("shop"),
        ingress("shop", "plain", "p.example.com", &[]),
    ]
    .concat();
    let report = assess(&objects(&yaml), &[]);
    assert_eq!(report.worst(), None);
    assert!(Level::Supported < Level::Differs);
    assert!(Level::Differs < Level::NotSupported);
    assert!(Level::NotSupported < Level::Refused);
    let json = serde_json::to_value(&report.tenants[0]).unwrap();
    assert_eq!(json["notSupported"], 0);
    assert_eq!(
        serde_json::to_value(Level::NotSupported).unwrap(),
        "not supported"
    );
}

#[test]
fn table_level_follows_the_table_for_every_row_key_and_alias() {
    for row in TABLE {
        let want = match differs::note(row.key) {
            Some(_) => Level::Differs,
            None => Level::Supported,
        };
        for key in row.keys() {
            assert_eq!(table_level(key), Some(want), "{key}");
        }
    }
    for (key, _) in REFUSED {
        assert_eq!(table_level(key), Some(Level::Refused), "{key}");
    }
    assert_eq!(
        table_level(&nginx("no-such-thing")),
        Some(Level::NotSupported)
    );
    assert_eq!(table_level("example.com/whatever"), None);
}
