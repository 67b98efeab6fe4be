//! The generated types read what the API server sends for the objects users write.

use crate::gateways::Gateway;
use crate::grpcroutes::GrpcRoute;
use crate::httproutes::HttpRoute;
use crate::referencegrants::ReferenceGrant;
use kube::Resource;

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_saphyr::from_str(text).expect("fixture parses")
}

#[test]
fn an_httproute_with_every_filter_and_an_integer_redirect_status_reads() {
    let route: HttpRoute = yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: acme}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [shop.example.com]
  rules:
  - name: login
    matches:
    - path: {type: PathPrefix, value: /login}
      headers: [{name: x-env, value: canary}]
      queryParams: [{type: RegularExpression, name: q, value: "^a+$"}]
      method: POST
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, statusCode: 301, port: 443}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: a, value: b}], remove: [c]}
    backendRefs:
    - {name: web, port: 8080, weight: 3}
    timeouts: {request: 10s}
"#,
    );
    let rule = &route.spec.rules.as_ref().expect("rules")[0];
    let filters = rule.filters.as_ref().expect("filters");
    let redirect = filters[0].request_redirect.as_ref().expect("redirect");
    assert_eq!(redirect.status_code, Some(301));
    assert_eq!(redirect.port, Some(443));
    assert_eq!(rule.name.as_deref(), Some("login"));
    assert_eq!(rule.backend_refs.as_ref().expect("refs")[0].weight, Some(3));
    let back = serde_json::to_value(&route).expect("serializes");
    assert_eq!(
        back["spec"]["rules"][0]["filters"][0]["requestRedirect"]["statusCode"], 301,
        "written back as a JSON number, as the CRD's schema requires"
    );
}

#[test]
fn kinds_groups_and_versions_are_gateway_apis() {
    assert_eq!(HttpRoute::kind(&()), "HTTPRoute");
    assert_eq!(GrpcRoute::kind(&()), "GRPCRoute");
    assert_eq!(Gateway::api_version(&()), "gateway.networking.k8s.io/v1");
    assert_eq!(ReferenceGrant::plural(&()), "referencegrants");
    assert_eq!(HttpRoute::group(&()), crate::GROUP);
}

#[test]
fn a_gateway_with_listeners_tls_and_status_reads() {
    let gw: Gateway = yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: acme, generation: 2}
spec:
  gatewayClassName: tenant-gateway
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "*.example.com"
    tls: {mode: Terminate, certificateRefs: [{name: cert}]}
status:
  conditions:
  - {type: Accepted, status: "True", reason: Accepted, message: "", observedGeneration: 2,
     lastTransitionTime: "2026-12-01T00:00:00Z"}
"#,
    );
    let listeners = &gw.spec.listeners;
    assert_eq!(listeners.len(), 2);
    assert_eq!(listeners[1].hostname.as_deref(), Some("*.example.com"));
    let tls = listeners[1].tls.as_ref().expect("tls");
    assert_eq!(tls.certificate_refs.as_ref().expect("refs")[0].name, "cert");
    let status = gw.status.expect("status");
    assert_eq!(
        status.conditions.expect("conditions")[0].observed_generation,
        Some(2)
    );
}

#[test]
fn the_version_constant_is_the_pinned_release() {
    let versions = include_str!("../../hack/versions");
    let pinned = versions
        .lines()
        .find_map(|l| l.strip_prefix("GATEWAY_API_VERSION="))
        .expect("hack/versions pins GATEWAY_API_VERSION");
    assert_eq!(crate::GATEWAY_API_VERSION, pinned.trim());
}
