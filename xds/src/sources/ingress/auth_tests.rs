//! Authentication through translation: the Secret and the auth Service
//! resolved (only the tenant's), the policy in the auth table, Envoy
//! naming only its id.

use crate::diagnostics::{Diagnostic, Severity};
use crate::model::AuthCheck;
use crate::translate::*;
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    ext_authz_per_route, ExtAuthzPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;
use serde_json::json;

const APR1: &str = "$apr1$jitd..FA$xI0fCmbJ3RlUbYXd8jRj8/";
const SHA: &str = "{SHA}YWXIkDPDfrJ6I4yV+0kqTJdT5SE=";

fn ingress(
    name: &str,
    annotations: serde_json::Value,
) -> k8s_openapi::api::networking::v1::Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": "2024-01-01T00:00:00Z",
                     "annotations": annotations},
        "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))
    .expect("valid Ingress")
}

fn service(ns: &str, name: &str, port: i32) -> k8s_openapi::api::core::v1::Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"port": port, "name": "http"}]}
    }))
    .expect("valid Service")
}

fn slice(
    ns: &str,
    svc: &str,
    ip: &str,
    port: i32,
) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-1"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": [ip]}]
    }))
    .expect("valid EndpointSlice")
}

fn secret(name: &str, string_data: serde_json::Value) -> k8s_openapi::api::core::v1::Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop"},
        "type": "Opaque",
        "stringData": string_data
    }))
    .expect("valid Secret")
}

fn objects(ingresses: Vec<k8s_openapi::api::networking::v1::Ingress>) -> TenantObjects {
    TenantObjects {
        ingresses,
        services: vec![service("shop", "web", 80), service("shop", "auth", 4180)],
        endpoint_slices: vec![slice("shop", "auth", "10.0.0.7", 4181)],
        secrets: vec![
            secret(
                "htpasswd",
                json!({"auth": format!("alice:{APR1}\nbob:{SHA}\n")}),
            ),
            secret("users", json!({"carol": APR1, "dave": "plain-text"})),
            secret("empty", json!({"other": "x"})),
        ],
        ..TenantObjects::default()
    }
}

fn options() -> GatewayOptions {
    GatewayOptions {
        namespaces: Some(["shop".to_string(), "auth".to_string()].into()),
        ..GatewayOptions::default()
    }
}

fn errors(t: &Translation) -> Vec<&Diagnostic> {
    t.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// The policy ids the HTTP routes of host `h` name.
fn route_policies(t: &Translation, h: &str) -> Vec<String> {
    t.resources
        .routes
        .iter()
        .filter(|rc| rc.name == "http")
        .flat_map(|rc| &rc.virtual_hosts)
        .filter(|v| v.domains.iter().any(|d| d == h))
        .flat_map(|v| &v.routes)
        .filter_map(|r| {
            r.typed_per_filter_config
                .get("envoy.filters.http.ext_authz")
        })
        .map(|any| {
            let per = ExtAuthzPerRoute::decode(any.value.as_slice()).expect("ExtAuthzPerRoute");
            let Some(ext_authz_per_route::Override::CheckSettings(c)) = per.r#override else {
                panic!("check settings: {per:?}");
            };
            c.context_extensions["policy"].clone()
        })
        .collect()
}

/// Whether the HTTP listener runs the ext_authz filter disabled by default
/// (None: it does not run it).
fn ext_authz_filter(t: &Translation) -> Option<bool> {
    let l = t.resources.listeners.iter().find(|l| l.name == "http")?;
    let Some(filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type
    else {
        return None;
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).ok()?;
    hcm.http_filters
        .iter()
        .find(|f| f.name == "envoy.filters.http.ext_authz")
        .map(|f| f.disabled)
}

fn basic(secret: &str, secret_type: Option<&str>) -> serde_json::Value {
    let mut a = json!({
        "nginx.ingress.kubernetes.io/auth-type": "basic",
        "nginx.ingress.kubernetes.io/auth-secret": secret,
        "nginx.ingress.kubernetes.io/auth-realm": "Staff",
    });
    if let Some(ty) = secret_type {
        a["nginx.ingress.kubernetes.io/auth-secret-type"] = json!(ty);
    }
    a
}

#[test]
fn basic_auth_puts_the_users_in_the_auth_table_and_only_the_id_in_envoy() {
    let t = translate(
        &objects(vec![
            ingress("staff", basic("htpasswd", None)),
            ingress("open", json!({})),
        ]),
        &options(),
    );
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    let policy = t.resources.auth.get("ingress:shop/staff").expect("policy");
    let AuthCheck::Basic(b) = &policy.check else {
        panic!("basic: {policy:?}");
    };
    assert_eq!(b.realm, "Staff");
    assert_eq!(
        b.users
            .iter()
            .map(|(u, h)| (u.as_str(), h.as_str()))
            .collect::<Vec<_>>(),
        [("alice", APR1), ("bob", SHA)]
    );
    assert_eq!(
        route_policies(&t, "staff.example.com"),
        ["ingress:shop/staff"]
    );
    assert!(route_policies(&t, "open.example.com").is_empty());
    assert_eq!(
        ext_authz_filter(&t),
        Some(true),
        "in the chain, disabled by default"
    );
    // No hash (nor a fragment of one) in anything Envoy receives.
    let snapshot = crate::Snapshot::from(&t.resources);
    for ty in crate::ResourceType::ALL {
        for (name, any) in snapshot.resources(ty) {
            for needle in ["jitd..FA", "xI0fCmbJ3RlUbYXd8jRj8", "YWXIkDPDfrJ6I4yV"] {
                let found = any
                    .value
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes());
                assert!(!found, "{ty:?} {name} holds a hash");
            }
        }
    }
}

#[test]
fn without_auth_there_is_no_ext_authz_filter_and_no_policy() {
    let t = translate(&objects(vec![ingress("open", json!({}))]), &options());
    assert_eq!(ext_authz_filter(&t), None);
    assert!(t.resources.auth.is_empty());
}

#[test]
fn an_auth_map_secret_keeps_the_users_whose_hash_verifies_and_warns_of_the_others() {
    let t = translate(
        &objects(vec![ingress("staff", basic("users", Some("auth-map")))]),
        &options(),
    );
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    let Some(AuthCheck::Basic(b)) = t.resources.auth.get("ingress:shop/staff").map(|p| &p.check)
    else {
        panic!("basic policy");
    };
    assert_eq!(b.users.keys().collect::<Vec<_>>(), ["carol"]);
    let warning = t
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Warning)
        .expect("a warning for dave");
    assert!(warning.message.contains("\"dave\"") && warning.message.contains("cannot log in"));
    assert!(
        !warning.message.contains("plain-text"),
        "the hash is not repeated"
    );
    assert_eq!(
        warning.field,
        "metadata.annotations[\"nginx.ingress.kubernetes.io/auth-secret\"]"
    );
}

#[test]
fn a_missing_or_empty_basic_auth_secret_drops_the_ingresss_rules() {
    for (secret, ty, why) in [
        ("missing", None, "Secret shop/missing not found"),
        ("empty", None, "has no key \"auth\""),
    ] {
        let t = translate(
            &objects(vec![ingress("staff", basic(secret, ty))]),
            &options(),
        );
        let errs = errors(&t);
        assert_eq!(errs.len(), 1, "{:?}", t.diagnostics);
        assert!(errs[0].message.contains(why), "{}", errs[0].message);
        assert!(errs[0].message.contains("rules are not served"));
        assert_eq!(errs[0].object.name, "staff");
        assert_eq!(
            errs[0].field,
            "metadata.annotations[\"nginx.ingress.kubernetes.io/auth-secret\"]"
        );
        assert!(route_policies(&t, "staff.example.com").is_empty());
        assert_eq!(t.routable_paths, 0, "nothing of the Ingress is served");
    }
}

fn external(url: &str) -> serde_json::Value {
    json!({
        "nginx.ingress.kubernetes.io/auth-url": url,
        "nginx.ingress.kubernetes.io/auth-response-headers": "X-User",
    })
}

#[test]
fn auth_url_resolves_the_tenants_service_to_its_endpoints() {
    let t = translate(
        &objects(vec![ingress(
            "app",
            external("http://auth.shop.svc.cluster.local:4180/check"),
        )]),
        &options(),
    );
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    let Some(AuthCheck::External(e)) = t.resources.auth.get("ingress:shop/app").map(|p| &p.check)
    else {
        panic!("external policy");
    };
    assert_eq!(e.endpoints, [("10.0.0.7".to_string(), 4181)]);
    assert_eq!(e.host, "auth.shop.svc.cluster.local:4180");
    assert_eq!(e.path, "/check");
    assert_eq!(e.response_headers, ["x-user"]);
    assert_eq!(route_policies(&t, "app.example.com"), ["ingress:shop/app"]);
}

#[test]
fn auth_url_outside_the_tenant_or_to_a_missing_service_drops_the_rules() {
    for (url, why) in [
        (
            "http://auth.other-tenant.svc/check",
            "not one of the tenant's namespaces",
        ),
        (
            "http://nope.shop.svc/check",
            "not found among the tenant's Services",
        ),
        (
            "http://auth.auth.svc/check",
            "not found among the tenant's Services",
        ),
        ("http://auth.shop.svc:9999/check", "has no port 9999"),
    ] {
        let t = translate(&objects(vec![ingress("app", external(url))]), &options());
        let errs = errors(&t);
        assert_eq!(errs.len(), 1, "{url}: {:?}", t.diagnostics);
        assert!(errs[0].message.contains(why), "{url}: {}", errs[0].message);
        assert_eq!(
            errs[0].field,
            "metadata.annotations[\"nginx.ingress.kubernetes.io/auth-url\"]"
        );
        assert_eq!(t.routable_paths, 0, "{url}");
        assert!(t.resources.auth.is_empty());
    }
}

#[test]
fn an_auth_service_without_endpoints_is_served_failing_closed_with_a_warning() {
    let mut o = objects(vec![ingress("app", external("http://auth.shop/check"))]);
    o.services.push(service("shop", "auth", 80));
    o.services.retain(|s| {
        s.spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|p| p[0].port != 4180)
            || s.metadata.name.as_deref() != Some("auth")
    });
    o.endpoint_slices.clear();
    let t = translate(&o, &options());
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    assert!(t
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Warning && d.message.contains("no ready endpoints")));
    assert_eq!(route_policies(&t, "app.example.com"), ["ingress:shop/app"]);
}
