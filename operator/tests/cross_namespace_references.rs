//! Ingress v1 has no namespace field in its backend or TLS references: a
//! tenant naming a Service or Secret that exists only in another tenant's
//! namespace must get a diagnostic and no Envoy resource built from it, even
//! when translation is handed both namespaces' objects. (Translation's
//! namespace scoping, not the audit: `audit::findings_tests` covers that.)

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use std::collections::BTreeSet;
use xds::{translate, GatewayOptions, TenantObjects};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn service(ns: &str) -> Service {
    testkit::objects::http_service(ns, "payments")
}

/// Self-signed for pay.example.com (EC P-256, valid until 2126): a Secret
/// the translation accepts, so only its namespace can keep it from serving.
const TLS_CRT: &str = "-----BEGIN CERTIFICATE-----\nMIIBpzCCAU2gAwIBAgIUGBKSmQ6Poq3pxBye4ShcdhzdiywwCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPcGF5LmV4YW1wbGUuY29tMCAXDTI2MTIwMTIxNTEwOVoYDzIx\nMjYxMTA3MjE1MTA5WjAaMRgwFgYDVQQDDA9wYXkuZXhhbXBsZS5jb20wWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAASqPnyNkor3DzmkIWI0vHEG+JrSF8+7vBDK3jvo\ncTAeopUrj4M0tVpz+42DLQ2pmr4yrkx4HxJUsvAug0lJHhSfo28wbTAdBgNVHQ4E\nFgQU7kB+lbNKwUAZPJrH9TuYa9UH4akwHwYDVR0jBBgwFoAU7kB+lbNKwUAZPJrH\n9TuYa9UH4akwDwYDVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgg9wYXkuZXhhbXBs\nZS5jb20wCgYIKoZIzj0EAwIDSAAwRQIgLrDOvEm/MSWYEjUbM+ckD6C4eNQotul0\n5Y5opM3y6PgCIQCH7vND6u43TBFyiHx1LUkHplQVHnpGtagZWm0nTI/iqQ==\n-----END CERTIFICATE-----\n";
const TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHzl6mnPSxgPe5BVl\naaCdM2OEnJCfRUCIAVjk3wYZS16hRANCAASqPnyNkor3DzmkIWI0vHEG+JrSF8+7\nvBDK3jvocTAeopUrj4M0tVpz+42DLQ2pmr4yrkx4HxJUsvAug0lJHhSf\n-----END PRIVATE KEY-----\n";

fn tls_secret(ns: &str) -> Secret {
    obj(serde_json::json!({
        "metadata": {"name": "wildcard", "namespace": ns},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": TLS_CRT, "tls.key": TLS_KEY}
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

/// acme-shop's Ingress, with the Service and Secret it names in `ns`.
fn ingress_with_references_in(ns: &str) -> TenantObjects {
    TenantObjects {
        ingresses: vec![ingress("acme-shop")],
        services: vec![service(ns)],
        secrets: vec![tls_secret(ns)],
        ..Default::default()
    }
}

#[test]
fn service_and_secret_of_another_namespace_are_reported_and_not_served() {
    // acme's Ingress; the Service and Secret it names exist only in globex.
    let objects = ingress_with_references_in("globex-shop");
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

/// The control: the same Ingress with the same Service and Secret in its own
/// namespace gets its cluster and its certificate (so the test above can fail).
#[test]
fn same_namespace_references_are_served() {
    let objects = ingress_with_references_in("acme-shop");
    let t = translate(&objects, &GatewayOptions::default());
    assert_eq!(t.routable_paths, 1, "{:?}", t.diagnostics);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let secrets = names(&t.resources.secrets, |s| s.name.clone());
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    let clusters = names(&t.resources.clusters, |c| c.name.clone());
    assert!(
        clusters.iter().any(|c| c.starts_with("acme-shop/payments")),
        "{clusters:?}"
    );
}
