//! Ingress v1 has no namespace field in its backend or TLS references: a
//! tenant naming a Service or Secret that exists only in another tenant's
//! namespace must get a diagnostic and no Envoy resource built from it, even
//! when translation is handed both namespaces' objects.

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use std::collections::BTreeSet;
use xds::{translate, GatewayOptions, TenantObjects};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn service(ns: &str) -> Service {
    obj(serde_json::json!({
        "metadata": {"name": "payments", "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
}

/// A syntactically valid (self-signed) certificate is not needed: the
/// lookup fails before the contents are read.
fn tls_secret(ns: &str) -> Secret {
    obj(serde_json::json!({
        "metadata": {"name": "wildcard", "namespace": ns},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "x", "tls.key": "y"}
    }))
}

fn ingress(ns: &str) -> Ingress {
    obj(serde_json::json!({
        "metadata": {"name": "cross", "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "tls": [{"hosts": ["pay.example.com"], "secretName": "wildcard"}],
            "rules": [{"host": "pay.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "payments", "port": {"name": "http"}}}}
            ]}}]
        }
    }))
}

fn names<T>(items: &[T], name: impl Fn(&T) -> String) -> BTreeSet<String> {
    items.iter().map(name).collect()
}

#[test]
fn service_and_secret_of_another_namespace_are_reported_and_not_served() {
    // acme's Ingress; the Service and Secret it names exist only in globex.
    let objects = TenantObjects {
        ingresses: vec![ingress("acme-shop")],
        services: vec![service("globex-shop")],
        secrets: vec![tls_secret("globex-shop")],
        ..Default::default()
    };
    // Unscoped (every object handed in) and scoped as the sidecar is.
    for namespaces in [
        None,
        Some(BTreeSet::from([
            "acme-shop".to_string(),
            "globex-shop".to_string(),
        ])),
        Some(BTreeSet::from(["acme-shop".to_string()])),
    ] {
        let options = GatewayOptions {
            namespaces: namespaces.clone(),
            ..Default::default()
        };
        let t = translate(&objects, &options);
        let fields: Vec<(&str, &str)> = t
            .diagnostics
            .iter()
            .map(|d| (d.field.as_str(), d.message.as_str()))
            .collect();
        assert!(
            fields.iter().any(
                |(f, m)| *f == "spec.rules[0].http.paths[0].backend.service.name"
                    && m.contains("\"payments\" not found")
            ),
            "{namespaces:?}: {fields:?}"
        );
        assert!(
            fields
                .iter()
                .any(|(f, m)| *f == "spec.tls[0].secretName" && m.contains("not found")),
            "{namespaces:?}: {fields:?}"
        );
        assert_eq!(t.routable_paths, 0, "{namespaces:?}");
        let clusters = names(&t.resources.clusters, |c| c.name.clone());
        assert!(
            clusters.iter().all(|c| !c.contains("globex-shop")),
            "{clusters:?}"
        );
        let secrets = names(&t.resources.secrets, |s| s.name.clone());
        assert!(secrets.is_empty(), "{secrets:?}");
    }
}

/// The control: the same Ingress with its Service and Secret in its own
/// namespace does get a cluster (so the test above can fail).
#[test]
fn same_namespace_references_are_served() {
    let objects = TenantObjects {
        ingresses: vec![ingress("acme-shop")],
        services: vec![service("acme-shop")],
        ..Default::default()
    };
    let t = translate(&objects, &GatewayOptions::default());
    assert_eq!(t.routable_paths, 1, "{:?}", t.diagnostics);
    let clusters = names(&t.resources.clusters, |c| c.name.clone());
    assert!(
        clusters.iter().any(|c| c.starts_with("acme-shop/payments")),
        "{clusters:?}"
    );
}
