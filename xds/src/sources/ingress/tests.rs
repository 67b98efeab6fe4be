//! Table-driven tests of translation. `Router` evaluates a RouteConfiguration
//! the way Envoy does (vhost by exact domain, then longest `*.` suffix, then
//! `*`; first matching route), so cases read as the Ingress spec's tables.

use crate::diagnostics::{Diagnostic, Severity};
use crate::translate::*;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, RouteConfiguration,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::ByteString;
use std::collections::BTreeMap;

// ---------- fixtures ----------

pub(crate) fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn ts(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
}

pub(crate) fn backend(svc: &str, port: i32) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: svc.into(),
            port: Some(ServiceBackendPort {
                number: Some(port),
                name: None,
            }),
        }),
        resource: None,
    }
}

fn named_backend(svc: &str, port: &str) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: svc.into(),
            port: Some(ServiceBackendPort {
                number: None,
                name: Some(port.into()),
            }),
        }),
        resource: None,
    }
}

pub(crate) fn path(p: &str, ty: &str, b: IngressBackend) -> HTTPIngressPath {
    HTTPIngressPath {
        path: Some(p.into()),
        path_type: ty.into(),
        backend: b,
    }
}

pub(crate) fn rule(host: Option<&str>, paths: Vec<HTTPIngressPath>) -> IngressRule {
    IngressRule {
        host: host.map(Into::into),
        http: Some(HTTPIngressRuleValue { paths }),
    }
}

pub(crate) fn ingress(ns: &str, name: &str, age: i64, rules: Vec<IngressRule>) -> Ingress {
    let mut m = meta(ns, name);
    m.creation_timestamp = Some(ts(age));
    Ingress {
        metadata: m,
        spec: Some(IngressSpec {
            rules: Some(rules),
            ..Default::default()
        }),
        status: None,
    }
}

pub(crate) fn service(ns: &str, name: &str, ports: &[(Option<&str>, i32)]) -> Service {
    Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: n.map(Into::into),
                        port: *p,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// An EndpointSlice for `svc` with one port and (address, ready) endpoints.
pub(crate) fn slice(
    ns: &str,
    svc: &str,
    port_name: Option<&str>,
    port: i32,
    eps: &[(&str, Option<bool>)],
) -> EndpointSlice {
    let mut m = meta(ns, &format!("{svc}-{}", eps.len()));
    m.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_string(),
        svc.to_string(),
    )]));
    EndpointSlice {
        metadata: m,
        address_type: "IPv4".into(),
        endpoints: eps
            .iter()
            .map(|(a, ready)| Endpoint {
                addresses: vec![a.to_string()],
                conditions: Some(EndpointConditions {
                    ready: *ready,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: port_name.map(Into::into),
            port: Some(port),
            ..Default::default()
        }]),
    }
}

/// A Service `name` with port 80 → endpoints on 8080.
pub(super) fn svc_with_eps(ns: &str, name: &str, ip: &str) -> (Service, EndpointSlice) {
    (
        service(ns, name, &[(None, 80)]),
        slice(ns, name, None, 8080, &[(ip, Some(true))]),
    )
}

fn objects(ingresses: Vec<Ingress>, svcs: &[&str]) -> TenantObjects {
    let mut o = TenantObjects {
        ingresses,
        ..Default::default()
    };
    for (i, s) in svcs.iter().enumerate() {
        let (svc, es) = svc_with_eps("shop", s, &format!("10.0.0.{}", i + 1));
        o.services.push(svc);
        o.endpoint_slices.push(es);
    }
    o
}

// ---------- a minimal Envoy route evaluator ----------

#[derive(Debug, PartialEq, Eq, Clone)]
enum Outcome {
    Cluster(String),
    Status(u32),
    /// A redirect to this host (empty: the request's).
    Redirect(String),
    /// No route matched: Envoy answers 404.
    NoRoute,
}

fn cluster(ns_svc_port: &str) -> Outcome {
    Outcome::Cluster(ns_svc_port.to_string())
}

fn route_request(rc: &RouteConfiguration, host: &str, path: &str) -> Outcome {
    let host_l = host.to_ascii_lowercase();
    let bare = host_l.split(':').next().unwrap_or("");
    let exact = rc
        .virtual_hosts
        .iter()
        .find(|v| v.domains.iter().any(|d| d == bare));
    let wildcard = || {
        rc.virtual_hosts
            .iter()
            .flat_map(|v| v.domains.iter().map(move |d| (v, d)))
            .filter(|(_, d)| d.starts_with("*.") && bare.ends_with(&d[1..]))
            .max_by_key(|(_, d)| d.len())
            .map(|(v, _)| v)
    };
    let any = || {
        rc.virtual_hosts
            .iter()
            .find(|v| v.domains.iter().any(|d| d == "*"))
    };
    let Some(vh) = exact.or_else(wildcard).or_else(any) else {
        return Outcome::NoRoute;
    };
    let p = path.split('?').next().unwrap_or("");
    for r in &vh.routes {
        let m = r.r#match.as_ref().unwrap();
        let path_ok = match m.path_specifier.as_ref().unwrap() {
            route_match::PathSpecifier::Prefix(x) => p.starts_with(x.as_str()),
            route_match::PathSpecifier::Path(x) => p == x,
            route_match::PathSpecifier::PathSeparatedPrefix(x) => {
                p == x || p.starts_with(&format!("{x}/"))
            }
            other => panic!("unexpected path specifier {other:?}"),
        };
        let headers_ok = m.headers.iter().all(|h| {
            assert_eq!(h.name, ":authority");
            match h.header_match_specifier.as_ref().unwrap() {
                header_matcher::HeaderMatchSpecifier::StringMatch(sm) => {
                    match sm.match_pattern.as_ref().unwrap() {
                        string_matcher::MatchPattern::SafeRegex(re) => {
                            regex::Regex::new(&re.regex).unwrap().is_match(host)
                        }
                        other => panic!("unexpected matcher {other:?}"),
                    }
                }
                other => panic!("unexpected header matcher {other:?}"),
            }
        });
        if path_ok && headers_ok {
            return match r.action.as_ref().unwrap() {
                route::Action::Route(a) => match a.cluster_specifier.as_ref().unwrap() {
                    route_action::ClusterSpecifier::Cluster(c) => Outcome::Cluster(c.clone()),
                    other => panic!("unexpected cluster specifier {other:?}"),
                },
                route::Action::DirectResponse(d) => Outcome::Status(d.status),
                route::Action::Redirect(rd) => Outcome::Redirect(rd.host_redirect.clone()),
                other => panic!("unexpected action {other:?}"),
            };
        }
    }
    Outcome::NoRoute
}

pub(super) fn http_routes(t: &Translation) -> &RouteConfiguration {
    t.resources
        .routes
        .iter()
        .find(|r| r.name == HTTP_ROUTE_CONFIG)
        .expect("http route config")
}

pub(super) fn errors(t: &Translation) -> Vec<&Diagnostic> {
    t.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

// ---------- the Ingress spec's path examples ----------

#[test]
fn path_matching_follows_the_ingress_spec_examples() {
    // (paths as (pathType, path), request path, expected path index or None)
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        Option<usize>,
    );
    let cases: &[Case] = &[
        (&[("Prefix", "/")], "/anything/at/all", Some(0)),
        (&[("Exact", "/foo")], "/foo", Some(0)),
        (&[("Exact", "/foo")], "/bar", None),
        (&[("Exact", "/foo")], "/foo/", None),
        (&[("Exact", "/foo/")], "/foo", None),
        (&[("Prefix", "/foo")], "/foo", Some(0)),
        (&[("Prefix", "/foo")], "/foo/", Some(0)),
        (&[("Prefix", "/foo/")], "/foo", Some(0)),
        (&[("Prefix", "/foo/")], "/foo/", Some(0)),
        (&[("Prefix", "/aaa/bb")], "/aaa/bbb", None),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb/")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
        (&[("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", Some(1)),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/aaa/bbb",
            Some(2),
        ),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/ccc",
            Some(0),
        ),
        (&[("Prefix", "/aaa")], "/ccc", None),
        (&[("Prefix", "/foo"), ("Exact", "/foo")], "/foo", Some(1)),
        (&[("Exact", "/foo"), ("Prefix", "/foo")], "/foo", Some(0)),
        (&[("Exact", "/foo"), ("Prefix", "/foo")], "/foo/x", Some(1)),
        // Query strings do not take part in matching.
        (&[("Exact", "/foo")], "/foo?x=1", Some(0)),
        // ImplementationSpecific is element-wise Prefix.
        (&[("ImplementationSpecific", "/foo")], "/foo/bar", Some(0)),
        (&[("ImplementationSpecific", "/foo")], "/foobar", None),
        // Matching is case-sensitive.
        (&[("Exact", "/Foo")], "/foo", None),
        (&[("Prefix", "/Foo")], "/foo/x", None),
        // Longest wins regardless of the order written.
        (
            &[("Prefix", "/a/b/c"), ("Prefix", "/a"), ("Prefix", "/a/b")],
            "/a/b/x",
            Some(2),
        ),
    ];
    for (i, (paths, request, want)) in cases.iter().enumerate() {
        let svcs: Vec<String> = (0..paths.len()).map(|j| format!("s{j}")).collect();
        let ing = ingress(
            "shop",
            "web",
            0,
            vec![rule(
                Some("foo.bar.com"),
                paths
                    .iter()
                    .enumerate()
                    .map(|(j, (ty, p))| path(p, ty, backend(&svcs[j], 80)))
                    .collect(),
            )],
        );
        let svc_refs: Vec<&str> = svcs.iter().map(String::as_str).collect();
        let t = translate(&objects(vec![ing], &svc_refs), &GatewayOptions::default());
        assert!(errors(&t).is_empty(), "case {i}: {:?}", t.diagnostics);
        let got = route_request(http_routes(&t), "foo.bar.com", request);
        let want = match want {
            Some(j) => cluster(&format!("shop/s{j}/80")),
            None => Outcome::Status(404),
        };
        // No default backend: an unmatched path on a known host is a 404.
        let got = if got == Outcome::NoRoute {
            Outcome::Status(404)
        } else {
            got
        };
        assert_eq!(got, want, "case {i}: paths {paths:?} request {request}");
    }
}

// ---------- hosts ----------

#[test]
fn host_matching_follows_the_ingress_spec() {
    let ing = ingress(
        "shop",
        "web",
        0,
        vec![
            rule(
                Some("foo.bar.com"),
                vec![path("/", "Prefix", backend("exact", 80))],
            ),
            rule(
                Some("*.foo.com"),
                vec![path("/", "Prefix", backend("wild", 80))],
            ),
            rule(None, vec![path("/", "Prefix", backend("nohost", 80))]),
        ],
    );
    let t = translate(
        &objects(vec![ing], &["exact", "wild", "nohost"]),
        &GatewayOptions::default(),
    );
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    let rc = http_routes(&t);
    let cases = [
        ("foo.bar.com", "shop/exact/80"),
        ("FOO.bar.com", "shop/exact/80"),
        ("foo.bar.com:8080", "shop/exact/80"),
        ("bar.foo.com", "shop/wild/80"),
        ("bar.foo.com:8080", "shop/wild/80"),
        // A wildcard covers exactly one label.
        ("baz.bar.foo.com", "shop/nohost/80"),
        ("foo.com", "shop/nohost/80"),
        ("other.example", "shop/nohost/80"),
    ];
    for (host, want) in cases {
        assert_eq!(route_request(rc, host, "/x"), cluster(want), "host {host}");
    }
}

#[test]
fn wildcard_host_without_catch_all_rejects_deeper_names() {
    let ing = ingress(
        "shop",
        "web",
        0,
        vec![rule(
            Some("*.foo.com"),
            vec![path("/", "Prefix", backend("wild", 80))],
        )],
    );
    let t = translate(&objects(vec![ing], &["wild"]), &GatewayOptions::default());
    let rc = http_routes(&t);
    assert_eq!(route_request(rc, "a.foo.com", "/"), cluster("shop/wild/80"));
    assert_eq!(route_request(rc, "a.b.foo.com", "/"), Outcome::NoRoute);
}

#[test]
fn default_backend_serves_what_no_rule_matches() {
    let mut ing = ingress(
        "shop",
        "web",
        0,
        vec![
            rule(
                Some("foo.bar.com"),
                vec![path("/api", "Prefix", backend("api", 80))],
            ),
            rule(
                Some("*.wild.com"),
                vec![path("/api", "Prefix", backend("api", 80))],
            ),
        ],
    );
    ing.spec.as_mut().unwrap().default_backend = Some(backend("fallback", 80));
    let t = translate(
        &objects(vec![ing], &["api", "fallback"]),
        &GatewayOptions::default(),
    );
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    let rc = http_routes(&t);
    assert_eq!(
        route_request(rc, "foo.bar.com", "/api/x"),
        cluster("shop/api/80")
    );
    assert_eq!(
        route_request(rc, "foo.bar.com", "/other"),
        cluster("shop/fallback/80")
    );
    assert_eq!(
        route_request(rc, "unknown.host", "/api"),
        cluster("shop/fallback/80")
    );
    assert_eq!(
        route_request(rc, "x.wild.com", "/other"),
        cluster("shop/fallback/80")
    );
    assert_eq!(
        route_request(rc, "x.y.wild.com", "/api"),
        cluster("shop/fallback/80")
    );
}

// ---------- backends ----------

#[test]
fn service_port_by_name_resolves_through_the_endpoint_slice_port_name() {
    let ing = ingress(
        "shop",
        "web",
        0,
        vec![rule(
            None,
            vec![path("/", "Prefix", named_backend("web", "http"))],
        )],
    );
    let objs = TenantObjects {
        ingresses: vec![ing],
        services: vec![service(
            "shop",
            "web",
            &[(Some("metrics"), 9090), (Some("http"), 80)],
        )],
        endpoint_slices: vec![
            // The slice's port named "http" is the target port 8080.
            EndpointSlice {
                ports: Some(vec![
                    EndpointPort {
                        name: Some("metrics".into()),
                        port: Some(9100),
                        ..Default::default()
                    },
                    EndpointPort {
                        name: Some("http".into()),
                        port: Some(8080),
                        ..Default::default()
                    },
                ]),
                ..slice("shop", "web", None, 0, &[("10.1.0.5", Some(true))])
            },
        ],
        ..Default::default()
    };
    let t = translate(&objs, &GatewayOptions::default());
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    assert_eq!(
        route_request(http_routes(&t), "x", "/"),
        cluster("shop/web/80")
    );
    let cla = &t.resources.endpoints[0];
    assert_eq!(cla.cluster_name, "shop/web/80");
    let addrs = endpoint_addrs(&t, "shop/web/80");
    assert_eq!(addrs, vec![("10.1.0.5".to_string(), 8080)]);
}

pub(super) fn endpoint_addrs(t: &Translation, cluster: &str) -> Vec<(String, u32)> {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;
    let cla = t
        .resources
        .endpoints
        .iter()
        .find(|c| c.cluster_name == cluster)
        .unwrap_or_else(|| panic!("no CLA {cluster}"));
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!()
            };
            let Some(address::Address::SocketAddress(sa)) = &ep.address.as_ref().unwrap().address
            else {
                panic!()
            };
            let Some(socket_address::PortSpecifier::PortValue(p)) = sa.port_specifier else {
                panic!()
            };
            (sa.address.clone(), p)
        })
        .collect()
}

#[test]
fn only_ready_endpoints_are_served_and_unknown_readiness_counts_as_ready() {
    let ing = ingress(
        "shop",
        "web",
        0,
        vec![rule(None, vec![path("/", "Prefix", backend("web", 80))])],
    );
    let objs = TenantObjects {
        ingresses: vec![ing],
        services: vec![service("shop", "web", &[(None, 80)])],
        endpoint_slices: vec![
            slice(
                "shop",
                "web",
                None,
                8080,
                &[
                    ("10.0.0.3", Some(false)),
                    ("10.0.0.1", Some(true)),
                    ("10.0.0.2", None),
                ],
            ),
            // The same endpoint in a second slice (during a rollout) is listed once.
            slice(
                "shop",
                "web",
                None,
                8080,
                &[
                    ("10.0.0.1", Some(true)),
                    ("x", Some(true)),
                    ("10.0.0.9", Some(false)),
                ],
            ),
            // Another Service's slice is not ours.
            slice("shop", "other", None, 8080, &[("10.9.9.9", Some(true))]),
        ],
        ..Default::default()
    };
    let t = translate(&objs, &GatewayOptions::default());
    assert_eq!(
        endpoint_addrs(&t, "shop/web/80"),
        vec![("10.0.0.1".into(), 8080), ("10.0.0.2".into(), 8080)]
    );
}

#[test]
fn bad_backends_disable_only_their_path_with_a_diagnostic_naming_the_field() {
    let ing = ingress(
        "shop",
        "web",
        0,
        vec![rule(
            Some("shop.example.com"),
            vec![
                path("/ok", "Prefix", backend("ok", 80)),
                path("/missing", "Prefix", backend("nope", 80)),
                path("/badport", "Prefix", backend("ok", 81)),
                path("/badname", "Prefix", named_backend("ok", "grpc")),
                path("relative", "Prefix", backend("ok", 80)),
                path("/typo", "Prefx", backend("ok", 80)),
            ],
        )],
    );
    let t = translate(&objects(vec![ing], &["ok"]), &GatewayOptions::default());
    let rc = http_routes(&t);
    let h = "shop.example.com";
    assert_eq!(route_request(rc, h, "/ok"), cluster("shop/ok/80"));
    assert_eq!(route_request(rc, h, "/missing"), Outcome::Status(503));
    assert_eq!(route_request(rc, h, "/badport/x"), Outcome::Status(503));
    assert_eq!(route_request(rc, h, "/badname"), Outcome::Status(503));
    assert_eq!(t.routable_paths, 1);
    let fields: Vec<(&str, &str)> = errors(&t)
        .iter()
        .map(|d| (d.field.as_str(), d.object.name.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("spec.rules[0].http.paths[1].backend.service.name", "web"),
            (
                "spec.rules[0].http.paths[2].backend.service.port.number",
                "web"
            ),
            (
                "spec.rules[0].http.paths[3].backend.service.port.name",
                "web"
            ),
            ("spec.rules[0].http.paths[4]", "web"),
            ("spec.rules[0].http.paths[5]", "web"),
        ]
    );
    assert!(t
        .diagnostics
        .iter()
        .any(|d| d.message.contains("\"nope\" not found")));
    assert!(t.diagnostics.iter().any(|d| d.message.contains("Prefx")));
}

#[test]
fn external_name_services_are_refused() {
    let ing = ingress(
        "shop",
        "web",
        0,
        vec![rule(None, vec![path("/", "Prefix", backend("ext", 80))])],
    );
    let mut svc = service("shop", "ext", &[(None, 80)]);
    let spec = svc.spec.as_mut().unwrap();
    spec.type_ = Some("ExternalName".into());
    spec.external_name = Some("localhost".into());
    let objs = TenantObjects {
        ingresses: vec![ing],
        services: vec![svc],
        ..Default::default()
    };
    let t = translate(&objs, &GatewayOptions::default());
    assert!(t.resources.clusters.is_empty());
    assert_eq!(errors(&t).len(), 1);
    assert!(errors(&t)[0].message.contains("ExternalName"));
}

#[test]
fn invalid_hosts_disable_only_their_rule() {
    let ing = ingress(
        "shop",
        "web",
        0,
        vec![
            rule(
                Some("Shop.Example.com"),
                vec![path("/", "Prefix", backend("a", 80))],
            ),
            rule(
                Some("foo.*.com"),
                vec![path("/", "Prefix", backend("a", 80))],
            ),
            rule(
                Some("10.0.0.1"),
                vec![path("/", "Prefix", backend("a", 80))],
            ),
            rule(
                Some("good.example.com"),
                vec![path("/", "Prefix", backend("a", 80))],
            ),
        ],
    );
    let t = translate(&objects(vec![ing], &["a"]), &GatewayOptions::default());
    let fields: Vec<&str> = errors(&t).iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "spec.rules[0].host",
            "spec.rules[1].host",
            "spec.rules[2].host"
        ]
    );
    assert_eq!(
        route_request(http_routes(&t), "good.example.com", "/"),
        cluster("shop/a/80")
    );
}

// ---------- merging and conflicts ----------

#[test]
fn many_ingresses_merge_and_the_oldest_wins_a_conflict() {
    let newer = ingress(
        "shop",
        "newer",
        10,
        vec![rule(
            Some("shop.example.com"),
            vec![
                path("/login", "Prefix", backend("b", 80)),
                path("/cart", "Prefix", backend("b", 80)),
            ],
        )],
    );
    let older = ingress(
        "shop",
        "older",
        5,
        vec![rule(
            Some("shop.example.com"),
            vec![path("/login/", "Prefix", backend("a", 80))],
        )],
    );
    let t = translate(
        &objects(vec![newer, older], &["a", "b"]),
        &GatewayOptions::default(),
    );
    let rc = http_routes(&t);
    assert_eq!(
        route_request(rc, "shop.example.com", "/login"),
        cluster("shop/a/80")
    );
    assert_eq!(
        route_request(rc, "shop.example.com", "/cart"),
        cluster("shop/b/80")
    );
    let errs = errors(&t);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].object.name, "newer");
    assert_eq!(errs[0].field, "spec.rules[0].http.paths[0]");
    assert!(
        errs[0].message.contains("older Ingress shop/older"),
        "{}",
        errs[0].message
    );
}

#[test]
fn equal_timestamps_break_ties_by_namespace_then_name() {
    let mk = |ns: &str, name: &str, svc: &str| {
        ingress(
            ns,
            name,
            0,
            vec![rule(
                Some("h.example.com"),
                vec![path("/", "Prefix", backend(svc, 80))],
            )],
        )
    };
    let mut objs = objects(
        vec![
            mk("shop", "b", "b"),
            mk("shop", "a", "a"),
            mk("alpha", "z", "z"),
        ],
        &["a", "b"],
    );
    let (s, e) = svc_with_eps("alpha", "z", "10.0.9.1");
    objs.services.push(s);
    objs.endpoint_slices.push(e);
    let t = translate(&objs, &GatewayOptions::default());
    assert_eq!(
        route_request(http_routes(&t), "h.example.com", "/"),
        cluster("alpha/z/80")
    );
    let losers: Vec<String> = errors(&t).iter().map(|d| d.object.to_string()).collect();
    assert_eq!(losers, vec!["Ingress shop/a", "Ingress shop/b"]);
}

#[test]
fn exact_and_prefix_on_the_same_path_are_not_a_conflict() {
    let a = ingress(
        "shop",
        "a",
        0,
        vec![rule(None, vec![path("/foo", "Prefix", backend("a", 80))])],
    );
    let b = ingress(
        "shop",
        "b",
        1,
        vec![rule(None, vec![path("/foo", "Exact", backend("b", 80))])],
    );
    let t = translate(
        &objects(vec![a, b], &["a", "b"]),
        &GatewayOptions::default(),
    );
    assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
    assert_eq!(
        route_request(http_routes(&t), "x", "/foo"),
        cluster("shop/b/80")
    );
    assert_eq!(
        route_request(http_routes(&t), "x", "/foo/1"),
        cluster("shop/a/80")
    );
}

#[test]
fn second_default_backend_is_reported() {
    let mut a = ingress("shop", "a", 0, vec![]);
    a.spec.as_mut().unwrap().default_backend = Some(backend("a", 80));
    let mut b = ingress("shop", "b", 1, vec![]);
    b.spec.as_mut().unwrap().default_backend = Some(backend("b", 80));
    let t = translate(
        &objects(vec![b, a], &["a", "b"]),
        &GatewayOptions::default(),
    );
    assert_eq!(
        route_request(http_routes(&t), "x", "/q"),
        cluster("shop/a/80")
    );
    assert_eq!(errors(&t).len(), 1);
    assert_eq!(errors(&t)[0].field, "spec.defaultBackend");
    assert_eq!(errors(&t)[0].object.name, "b");
}

// ---------- classes and scope ----------

#[test]
fn ingress_class_selects_what_this_gateway_serves() {
    let mk = |name: &str, class: Option<&str>, legacy: Option<&str>| {
        let mut i = ingress(
            "shop",
            name,
            0,
            vec![rule(
                Some(&format!("{name}.example.com")),
                vec![path("/", "Prefix", backend("a", 80))],
            )],
        );
        i.spec.as_mut().unwrap().ingress_class_name = class.map(Into::into);
        if let Some(l) = legacy {
            i.metadata.annotations = Some(BTreeMap::from([(
                "kubernetes.io/ingress.class".to_string(),
                l.to_string(),
            )]));
        }
        i
    };
    let objs = objects(
        vec![
            mk("mine", Some("tenant-gateway"), None),
            mk("nginx", Some("nginx"), None),
            mk("legacy", None, Some("tenant-gateway")),
            mk("legacynginx", None, Some("nginx")),
            mk("unclassed", None, None),
        ],
        &["a"],
    );
    let served = |opts: &GatewayOptions| -> Vec<String> {
        let t = translate(&objs, opts);
        let mut v: Vec<String> = http_routes(&t)
            .virtual_hosts
            .iter()
            .filter(|v| v.name != "*")
            .map(|v| v.name.clone())
            .collect();
        v.sort();
        v
    };
    let t = translate(&objs, &GatewayOptions::default());
    let names: Vec<&str> = t.served_ingresses.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, vec!["legacy", "mine", "unclassed"]);
    assert_eq!(
        served(&GatewayOptions::default()),
        vec![
            "legacy.example.com",
            "mine.example.com",
            "unclassed.example.com"
        ]
    );
    let strict = GatewayOptions {
        serve_unclassed: false,
        ..GatewayOptions::default()
    };
    assert_eq!(
        served(&strict),
        vec!["legacy.example.com", "mine.example.com"]
    );
}

#[test]
fn objects_outside_the_tenant_namespaces_are_never_referenced() {
    let ing_a = ingress(
        "acme",
        "web",
        0,
        vec![rule(
            Some("shop.example.com"),
            vec![path("/login", "Prefix", backend("web", 80))],
        )],
    );
    let ing_b = ingress(
        "globex",
        "web",
        0,
        vec![rule(
            Some("shop.example.com"),
            vec![path("/login", "Prefix", backend("web", 80))],
        )],
    );
    let (sa, ea) = svc_with_eps("acme", "web", "10.0.1.1");
    let (sb, eb) = svc_with_eps("globex", "web", "10.0.2.1");
    let objs = TenantObjects {
        ingresses: vec![ing_a, ing_b],
        services: vec![sa, sb],
        endpoint_slices: vec![ea, eb],
        ..Default::default()
    };
    for (tenant, other) in [("acme", "globex"), ("globex", "acme")] {
        let opts = GatewayOptions {
            namespaces: Some([tenant.to_string()].into()),
            ..GatewayOptions::default()
        };
        let t = translate(&objs, &opts);
        assert!(errors(&t).is_empty(), "{:?}", t.diagnostics);
        assert_eq!(
            route_request(http_routes(&t), "shop.example.com", "/login"),
            cluster(&format!("{tenant}/web/80"))
        );
        let dump = format!("{:?}", t.resources);
        assert!(!dump.contains(other), "{tenant}'s config mentions {other}");
    }
}

// ---------- TLS ----------

fn tls_secret(ns: &str, name: &str) -> Secret {
    let cert = rcgen::generate_simple_self_signed(vec!["shop.example.com".into()]).unwrap();
    Secret {
        metadata: meta(ns, name),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".into(), ByteString(cert.cert.pem().into_bytes())),
            (
                "tls.key".into(),
                ByteString(cert.signing_key.serialize_pem().into_bytes()),
            ),
        ])),
        ..Default::default()
    }
}

#[test]
fn tls_hosts_get_sni_filter_chains_from_secrets_in_the_ingress_namespace() {
    let mut ing = ingress(
        "shop",
        "web",
        0,
        vec![rule(
            Some("shop.example.com"),
            vec![path("/", "Prefix", backend("a", 80))],
        )],
    );
    ing.spec.as_mut().unwrap().tls = Some(vec![
        IngressTLS {
            hosts: Some(vec!["shop.example.com".into(), "*.shop.example.com".into()]),
            secret_name: Some("shop-tls".into()),
        },
        IngressTLS {
            hosts: Some(vec!["other.example.com".into()]),
            secret_name: Some("missing".into()),
        },
        IngressTLS {
            hosts: Some(vec!["third.example.com".into()]),
            secret_name: Some("elsewhere".into()),
        },
    ]);
    let mut objs = objects(vec![ing], &["a"]);
    objs.secrets.push(tls_secret("shop", "shop-tls"));
    // A Secret of the same name in another namespace is never used.
    objs.secrets.push(tls_secret("other", "elsewhere"));
    let opts = GatewayOptions {
        namespaces: Some(["shop".to_string()].into()),
        ..GatewayOptions::default()
    };
    let t = translate(&objs, &opts);
    let names: Vec<&str> = t
        .resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, vec!["http", "https"]);
    let https = &t.resources.listeners[1];
    assert_eq!(https.filter_chains.len(), 1);
    let m = https.filter_chains[0].filter_chain_match.as_ref().unwrap();
    assert_eq!(
        m.server_names,
        vec!["*.shop.example.com", "shop.example.com"]
    );
    assert_eq!(t.resources.secrets.len(), 1);
    assert_eq!(t.resources.secrets[0].name, "shop/shop-tls");
    let fields: Vec<&str> = errors(&t).iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["spec.tls[1].secretName", "spec.tls[2].secretName"]
    );
    // HTTP on the TLS host keeps working.
    assert_eq!(
        route_request(http_routes(&t), "shop.example.com", "/"),
        cluster("shop/a/80")
    );
}

#[test]
fn malformed_tls_secret_is_reported_not_served() {
    let mut ing = ingress("shop", "web", 0, vec![]);
    ing.spec.as_mut().unwrap().tls = Some(vec![IngressTLS {
        hosts: Some(vec!["shop.example.com".into()]),
        secret_name: Some("bad".into()),
    }]);
    let mut s = tls_secret("shop", "bad");
    s.data
        .as_mut()
        .unwrap()
        .insert("tls.key".into(), ByteString(b"not a key".to_vec()));
    let mut objs = objects(vec![ing], &[]);
    objs.secrets.push(s);
    let t = translate(&objs, &GatewayOptions::default());
    assert!(t.resources.secrets.is_empty());
    assert_eq!(
        t.resources.listeners.len(),
        1,
        "no https listener without a valid cert"
    );
    assert!(
        errors(&t)[0].message.contains("tls.key"),
        "{:?}",
        t.diagnostics
    );
}

// ---------- determinism ----------

#[test]
fn output_is_byte_identical_whatever_the_input_order() {
    use prost::Message;
    let mut ings = Vec::new();
    for i in 0..20 {
        ings.push(ingress(
            "shop",
            &format!("ing{i}"),
            i % 3,
            vec![rule(
                Some(&format!("h{}.example.com", i % 4)),
                vec![path(
                    &format!("/p{}", i % 3),
                    "Prefix",
                    backend(&format!("s{}", i % 3), 80),
                )],
            )],
        ));
    }
    let objs = objects(ings.clone(), &["s0", "s1", "s2"]);
    let mut rev = objs.clone();
    rev.ingresses.reverse();
    rev.services.reverse();
    rev.endpoint_slices.reverse();
    let a = translate(&objs, &GatewayOptions::default());
    let b = translate(&rev, &GatewayOptions::default());
    assert_eq!(a, b);
    let enc = |t: &Translation| -> Vec<Vec<u8>> {
        t.resources
            .routes
            .iter()
            .map(|r| r.encode_to_vec())
            .collect()
    };
    assert_eq!(enc(&a), enc(&b));
    let sa = crate::Snapshot::from(&a.resources);
    let sb = crate::Snapshot::from(&b.resources);
    for ty in crate::ResourceType::ALL {
        assert_eq!(sa.version(ty), sb.version(ty));
    }
    assert!(
        !a.diagnostics.is_empty(),
        "the fixture has conflicts to report"
    );
}

// ---------- annotations ----------

pub(super) fn annotated(mut ing: Ingress, pairs: &[(&str, &str)]) -> Ingress {
    ing.metadata.annotations = Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    ing
}

/// A tenant using every annotation-driven route and cluster feature at once.
fn annotated_tenant() -> TenantObjects {
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let main = annotated(
        ingress(
            "shop",
            "web",
            0,
            vec![rule(
                Some("shop.example.com"),
                vec![
                    path("/", "Prefix", backend("s0", 80)),
                    path("/api", "Prefix", backend("s1", 80)),
                ],
            )],
        ),
        &[
            (&n("affinity"), "cookie"),
            (&n("session-cookie-samesite"), "Strict"),
            (&n("whitelist-source-range"), "10.0.0.0/8,127.0.0.1"),
            (&n("denylist-source-range"), "10.9.0.0/16"),
            (&n("proxy-connect-timeout"), "2"),
            (&n("proxy-next-upstream"), "error http_502 http_503"),
            ("tenantgateway.io/hsts-max-age", "600"),
            // Several per-route filters (RBAC + buffer) and listener filters.
            (&n("proxy-body-size"), "8m"),
            (&n("limit-rps"), "10"),
            ("tenantgateway.io/request-headers-add", "X-A: 1; X-B: 2"),
            (
                "tenantgateway.io/response-headers-remove",
                "server, x-powered-by",
            ),
            // A third per-route filter (compressor) and cluster health settings.
            ("tenantgateway.io/compression", "gzip"),
            ("tenantgateway.io/health-check-path", "/healthz"),
            ("tenantgateway.io/outlier-consecutive-5xx", "5"),
        ],
    );
    let canary = annotated(
        ingress(
            "shop",
            "web-canary",
            1,
            vec![rule(
                Some("shop.example.com"),
                vec![path("/", "Prefix", backend("s2", 80))],
            )],
        ),
        &[
            (&n("canary"), "true"),
            (&n("canary-weight"), "25"),
            (&n("canary-by-header"), "X-Canary"),
            (&n("canary-by-cookie"), "c"),
        ],
    );
    let regex = annotated(
        ingress(
            "shop",
            "regex",
            2,
            vec![rule(
                Some("re.example.com"),
                vec![path(
                    "/v(\\d+)/(.*)",
                    "ImplementationSpecific",
                    backend("s1", 80),
                )],
            )],
        ),
        &[(&n("rewrite-target"), "/$2"), (&n("app-root"), "/home")],
    );
    objects(vec![main, canary, regex], &["s0", "s1", "s2"])
}

#[test]
fn annotated_output_is_byte_identical_whatever_the_input_order() {
    let objs = annotated_tenant();
    let a = translate(&objs, &GatewayOptions::default());
    assert!(errors(&a).is_empty(), "{:?}", a.diagnostics);
    for _ in 0..8 {
        let mut rev = objs.clone();
        rev.ingresses.reverse();
        rev.services.reverse();
        rev.endpoint_slices.reverse();
        // Annotation maps are rebuilt, so any hashed state is fresh.
        for ing in &mut rev.ingresses {
            let ann = ing.metadata.annotations.take();
            ing.metadata.annotations = ann.map(|m| m.into_iter().rev().collect());
        }
        let b = translate(&rev, &GatewayOptions::default());
        assert_eq!(a, b);
        let (sa, sb) = (
            crate::Snapshot::from(&a.resources),
            crate::Snapshot::from(&b.resources),
        );
        for ty in crate::ResourceType::ALL {
            assert_eq!(sa.version(ty), sb.version(ty));
        }
    }
    // prost encodes proto maps from a HashMap in random order; routes with
    // several per-filter configs are encoded canonically by the snapshot.
    assert!(http_routes(&a)
        .virtual_hosts
        .iter()
        .flat_map(|v| &v.routes)
        .any(|r| r.typed_per_filter_config.len() >= 2));
    let packed = |t: &Translation| -> Vec<(crate::ResourceType, String, Vec<u8>)> {
        let s = crate::Snapshot::from(&t.resources);
        crate::ResourceType::ALL
            .into_iter()
            .flat_map(|ty| {
                s.resources(ty)
                    .map(|(n, any)| (ty, n.clone(), any.value.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let first = packed(&a);
    for _ in 0..50 {
        // Fresh HashMaps each time: a random order would show up here.
        let again = packed(&translate(&objs, &GatewayOptions::default()));
        assert!(again == first, "snapshot bytes differ between translations");
    }
}

#[test]
fn clusters_with_non_default_settings_get_a_stable_suffix_and_defaults_keep_their_name() {
    let t = translate(&annotated_tenant(), &GatewayOptions::default());
    let names: Vec<&str> = t
        .resources
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    // s1 is used with defaults (regex Ingress) and with affinity (web).
    assert!(names.contains(&"shop/s1/80"), "{names:?}");
    let hashed: Vec<&&str> = names
        .iter()
        .filter(|n| n.matches('/').count() == 3)
        .collect();
    assert_eq!(hashed.len(), 2, "{names:?}");
    for n in &hashed {
        let suffix = n.rsplit('/').next().unwrap();
        assert_eq!(suffix.len(), 8, "{n}");
        let c = t
            .resources
            .clusters
            .iter()
            .find(|c| c.name == ***n)
            .unwrap();
        assert_eq!(c.connect_timeout.as_ref().unwrap().seconds, 2);
        assert_eq!(
            c.lb_policy,
            envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy::RingHash as i32
        );
    }
    // Every cluster has endpoints under its own name.
    let eds: Vec<&str> = t
        .resources
        .endpoints
        .iter()
        .map(|e| e.cluster_name.as_str())
        .collect();
    assert_eq!(names, eds);
}

#[test]
fn bad_annotations_affect_only_their_ingress() {
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let good = ingress(
        "shop",
        "good",
        0,
        vec![rule(
            Some("a.example.com"),
            vec![path("/", "Prefix", backend("s0", 80))],
        )],
    );
    let dropped = annotated(
        ingress(
            "shop",
            "dropped",
            1,
            vec![rule(
                Some("b.example.com"),
                vec![path("/", "Prefix", backend("s0", 80))],
            )],
        ),
        &[(&n("whitelist-source-range"), "10.0.0.0/99")],
    );
    let bad_regex = annotated(
        ingress(
            "shop",
            "bad-regex",
            2,
            vec![rule(
                Some("c.example.com"),
                vec![
                    path("/(?=x)", "Prefix", backend("s0", 80)),
                    path("/ok/(.*)", "Prefix", backend("s0", 80)),
                ],
            )],
        ),
        &[(&n("rewrite-target"), "/$1")],
    );
    let lenient = annotated(
        ingress(
            "shop",
            "lenient",
            3,
            vec![rule(
                Some("d.example.com"),
                vec![path("/", "Prefix", backend("s0", 80))],
            )],
        ),
        &[(&n("proxy-read-timeout"), "forever")],
    );
    let orphan_canary = annotated(
        ingress(
            "shop",
            "orphan",
            4,
            vec![rule(
                Some("e.example.com"),
                vec![path("/", "Prefix", backend("s0", 80))],
            )],
        ),
        &[(&n("canary"), "true"), (&n("canary-weight"), "50")],
    );
    let t = translate(
        &objects(
            vec![good, dropped, bad_regex, lenient, orphan_canary],
            &["s0"],
        ),
        &GatewayOptions::default(),
    );
    let rc = http_routes(&t);
    assert_eq!(
        route_request(rc, "a.example.com", "/"),
        cluster("shop/s0/80")
    );
    assert_eq!(route_request(rc, "b.example.com", "/"), Outcome::NoRoute);
    assert_eq!(
        route_request(rc, "d.example.com", "/"),
        cluster("shop/s0/80")
    );
    assert_eq!(route_request(rc, "e.example.com", "/"), Outcome::NoRoute);
    let errs: Vec<(String, String)> = errors(&t)
        .iter()
        .map(|d| (d.object.name.clone(), d.field.clone()))
        .collect();
    assert_eq!(
        errs,
        [
            (
                "bad-regex".to_string(),
                "spec.rules[0].http.paths[0]".to_string()
            ),
            (
                "dropped".to_string(),
                "metadata.annotations[\"nginx.ingress.kubernetes.io/whitelist-source-range\"]"
                    .to_string()
            ),
            (
                "orphan".to_string(),
                "spec.rules[0].http.paths[0]".to_string()
            ),
        ]
    );
    let warn = t
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Warning)
        .unwrap();
    assert_eq!(warn.object.name, "lenient");
    assert!(warn.message.contains("\"forever\""));
    // The dropped Ingress is still listed as served (its status names it).
    assert!(t
        .served_ingresses
        .contains(&("shop".into(), "dropped".into())));
}

// ---------- backend protocol ----------

fn ca_secret(name: &str, ty: &str, ca: Option<&[u8]>) -> Secret {
    let mut s = tls_secret("shop", name);
    s.type_ = Some(ty.into());
    if let (Some(ca), Some(d)) = (ca, s.data.as_mut()) {
        d.insert("ca.crt".into(), ByteString(ca.to_vec()));
    }
    s
}

#[test]
fn backend_protocols_shape_the_cluster_and_a_bad_ca_drops_only_that_ingress() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    use prost::Message;
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()])
        .unwrap()
        .cert
        .pem();
    let ing = |name: &str, age, svc: &str, pairs: &[(&str, &str)]| {
        annotated(
            ingress(
                "shop",
                name,
                age,
                vec![rule(
                    Some(&format!("{name}.example.com")),
                    vec![path("/", "Prefix", backend(svc, 80))],
                )],
            ),
            pairs,
        )
    };
    let mut o = objects(
        vec![
            ing("grpc", 0, "s0", &[(&n("backend-protocol"), "GRPC")]),
            ing(
                "tls",
                1,
                "s1",
                &[
                    (&n("backend-protocol"), "HTTPS"),
                    (&n("proxy-ssl-secret"), "shop/good"),
                ],
            ),
            ing(
                "opaque",
                2,
                "s1",
                &[
                    (&n("backend-protocol"), "HTTPS"),
                    (&n("proxy-ssl-secret"), "opaque"),
                ],
            ),
            ing(
                "no-ca",
                3,
                "s1",
                &[
                    (&n("backend-protocol"), "HTTPS"),
                    (&n("proxy-ssl-secret"), "no-ca"),
                ],
            ),
            ing(
                "bad-ca",
                4,
                "s1",
                &[
                    (&n("backend-protocol"), "HTTPS"),
                    (&n("proxy-ssl-secret"), "bad-ca"),
                ],
            ),
        ],
        &["s0", "s1"],
    );
    o.secrets = vec![
        ca_secret("good", "kubernetes.io/tls", Some(ca.as_bytes())),
        ca_secret("opaque", "Opaque", Some(ca.as_bytes())),
        ca_secret("no-ca", "kubernetes.io/tls", None),
        ca_secret(
            "bad-ca",
            "kubernetes.io/tls",
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ),
    ];
    let t = translate(&o, &GatewayOptions::default());
    let errs: Vec<(&str, &str)> = errors(&t)
        .iter()
        .map(|d| (d.object.name.as_str(), d.field.as_str()))
        .collect();
    let field = "metadata.annotations[\"nginx.ingress.kubernetes.io/proxy-ssl-secret\"]";
    assert_eq!(
        errs,
        [("bad-ca", field), ("no-ca", field), ("opaque", field)],
        "{:?}",
        t.diagnostics
    );
    let rc = http_routes(&t);
    for host in ["opaque", "no-ca", "bad-ca"] {
        assert_eq!(
            route_request(rc, &format!("{host}.example.com"), "/"),
            Outcome::NoRoute,
            "{host}"
        );
    }
    let by_name = |prefix: &str| {
        t.resources
            .clusters
            .iter()
            .find(|c| c.name.starts_with(prefix) && c.name.len() > prefix.len())
            .unwrap_or_else(|| panic!("no cluster {prefix}/…"))
    };
    let grpc = by_name("shop/s0/80");
    assert_eq!(grpc.typed_extension_protocol_options.len(), 1);
    assert!(grpc.transport_socket.is_none());
    let tls = by_name("shop/s1/80");
    assert!(tls.typed_extension_protocol_options.is_empty());
    let socket = tls.transport_socket.as_ref().unwrap();
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        a,
    )) = &socket.config_type
    else {
        panic!("no typed config")
    };
    let ctx = UpstreamTlsContext::decode(a.value.as_slice()).unwrap();
    assert_eq!(ctx.sni, "s1.shop.svc");
    assert!(ctx
        .common_tls_context
        .unwrap()
        .validation_context_type
        .is_some());
}

// ---------- TCP proxies ----------

#[test]
fn tcp_proxies_get_a_listener_only_for_services_of_the_tenant() {
    let mut objs = objects(vec![], &["db"]);
    let (svc, es) = svc_with_eps("other", "db", "10.9.9.9");
    objs.services.push(svc);
    objs.endpoint_slices.push(es);
    let proxy = |port: u16, ns: &str, svc: &str, svc_port: u16| crate::TcpProxy {
        port,
        namespace: ns.into(),
        service: svc.into(),
        service_port: svc_port,
    };
    let opts = GatewayOptions {
        namespaces: Some(["shop".to_string()].into()),
        tenant: "acme".into(),
        tcp_proxies: vec![
            proxy(5432, "shop", "db", 80),
            proxy(5433, "other", "db", 80),
            proxy(5434, "shop", "missing", 80),
            proxy(5435, "shop", "db", 81),
            proxy(8080, "shop", "db", 80),
            proxy(5432, "shop", "db", 80),
        ],
        ..GatewayOptions::default()
    };
    let t = translate(&objs, &opts);
    let names: Vec<&str> = t
        .resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["http", "tcp-5432"]);
    let clusters: Vec<&str> = t
        .resources
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(clusters, ["shop/db/80"]);
    assert_eq!(
        endpoint_addrs(&t, "shop/db/80"),
        [("10.0.0.1".to_string(), 8080)]
    );
    let errs: Vec<(&str, &str)> = t
        .diagnostics
        .iter()
        .map(|d| (d.object.kind.as_str(), d.field.as_str()))
        .collect();
    assert_eq!(
        errs,
        [
            ("TenantGateway", "spec.tcpProxies[1]"),
            ("TenantGateway", "spec.tcpProxies[2]"),
            ("TenantGateway", "spec.tcpProxies[3]"),
            ("TenantGateway", "spec.tcpProxies[4]"),
            ("TenantGateway", "spec.tcpProxies[5]"),
        ]
    );
    assert!(t.diagnostics.iter().all(|d| d.object.name == "acme"));
    assert!(t.diagnostics[0]
        .message
        .contains("not one of the tenant's namespaces"));
    // Deterministic, and from_spec carries the list.
    assert_eq!(translate(&objs, &opts), t);
    let spec = crds::TenantGatewaySpec {
        tcp_proxies: vec![crds::TcpProxy {
            port: 5432,
            service: crds::TcpProxyBackend {
                namespace: "shop".into(),
                name: "db".into(),
                port: 80,
            },
        }],
        ..Default::default()
    };
    assert_eq!(
        GatewayOptions::from_spec(&spec).tcp_proxies,
        [proxy(5432, "shop", "db", 80)]
    );
}

#[test]
fn route_and_endpoint_changes_leave_listeners_byte_identical() {
    use prost::Message;
    // A listener update makes Envoy drain connections: Ingress, Service and
    // endpoint changes without new filters must only touch RDS/CDS/EDS.
    let base = objects(
        vec![ingress(
            "shop",
            "a",
            0,
            vec![rule(
                Some("a.example.com"),
                vec![path("/", "Prefix", backend("s0", 80))],
            )],
        )],
        &["s0", "s1"],
    );
    let mut changed = base.clone();
    changed.ingresses.push(ingress(
        "shop",
        "b",
        1,
        vec![rule(
            Some("b.example.com"),
            vec![path("/v2", "Exact", backend("s1", 80))],
        )],
    ));
    changed.endpoint_slices[0] = slice(
        "shop",
        "s0",
        None,
        9090,
        &[("10.9.9.9", Some(true)), ("10.9.9.8", Some(true))],
    );
    let (a, b) = (
        translate(&base, &GatewayOptions::default()),
        translate(&changed, &GatewayOptions::default()),
    );
    let enc = |t: &Translation| -> Vec<Vec<u8>> {
        t.resources
            .listeners
            .iter()
            .map(|l| l.encode_to_vec())
            .collect()
    };
    assert_eq!(
        enc(&a),
        enc(&b),
        "listeners changed on a route/endpoint change"
    );
    assert_ne!(a.resources.routes, b.resources.routes);
}

/// An Ingress in `shop` serving `Prefix /` of `host` from `svc`.
fn one_path(name: &str, age: i64, host: &str, svc: &str) -> Ingress {
    one_rule(name, age, host, "/", svc)
}

/// An Ingress in `shop` whose one rule sends `host` `p` (Prefix) to `svc`:80.
fn one_rule(name: &str, age: i64, host: &str, p: &str, svc: &str) -> Ingress {
    let paths = vec![path(p, "Prefix", backend(svc, 80))];
    ingress("shop", name, age, vec![rule(Some(host), paths)])
}

#[test]
fn server_aliases_and_www_redirects_serve_new_names_and_never_take_a_host_over() {
    let ng = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let wild = one_path("wild", 0, "*.wild.test", "s0");
    let mut main = annotated(
        ingress(
            "shop",
            "main",
            1,
            vec![
                rule(Some("a.test"), vec![path("/", "Prefix", backend("s1", 80))]),
                rule(
                    Some("www.second.test"),
                    vec![path("/", "Prefix", backend("s1", 80))],
                ),
            ],
        ),
        &[
            (&ng("server-alias"), "b.test, x.wild.test, c.test"),
            (&ng("from-to-www-redirect"), "true"),
        ],
    );
    main.spec.as_mut().unwrap().tls = Some(vec![IngressTLS {
        hosts: Some(vec!["a.test".into()]),
        secret_name: Some("a-tls".into()),
    }]);
    // Younger, but its rule host is its own.
    let younger = one_path("younger", 2, "c.test", "s2");
    let mut objs = objects(vec![younger, main, wild], &["s0", "s1", "s2"]);
    objs.secrets.push(tls_secret("shop", "a-tls"));
    let t = translate(&objs, &GatewayOptions::default());
    let rc = http_routes(&t);
    for (host, want) in [
        ("a.test", cluster("shop/s1/80")),
        ("b.test", cluster("shop/s1/80")),
        ("x.wild.test", cluster("shop/s0/80")),
        ("c.test", cluster("shop/s2/80")),
        ("www.a.test", Outcome::Redirect("a.test".into())),
        ("second.test", Outcome::Redirect("www.second.test".into())),
        ("www.second.test", cluster("shop/s1/80")),
    ] {
        assert_eq!(route_request(rc, host, "/p"), want, "{host}");
    }
    // The alias and the www name of a TLS host share its certificate.
    let https = t
        .resources
        .listeners
        .iter()
        .find(|l| l.name == "https")
        .expect("https listener");
    let names = &https.filter_chains[0]
        .filter_chain_match
        .as_ref()
        .unwrap()
        .server_names;
    assert_eq!(names, &["a.test", "b.test", "www.a.test"]);
    let field = format!("metadata.annotations[{:?}]", ng("server-alias"));
    let found: Vec<(Severity, &str, &str)> = t
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.object.name.as_str(), d.field.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Severity::Warning, "main", field.as_str()),
            (Severity::Warning, "main", field.as_str())
        ],
        "{:?}",
        t.diagnostics
    );
    let msgs: Vec<&str> = t.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("c.test") && m.contains("shop/younger")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("x.wild.test") && m.contains("*.wild.test")),
        "{msgs:?}"
    );
}

#[test]
fn redirect_ingresses_answer_every_path_with_their_redirect_and_cors_reaches_the_route() {
    let ng = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let moved = annotated(
        ingress(
            "shop",
            "moved",
            0,
            vec![rule(
                Some("moved.test"),
                vec![
                    path("/", "Prefix", backend("ghost", 80)),
                    path("/api", "Prefix", backend("s0", 80)),
                ],
            )],
        ),
        &[(&ng("permanent-redirect"), "https://new.test/")],
    );
    let cors = annotated(
        one_path("cors", 1, "cors.test", "s0"),
        &[
            (&ng("enable-cors"), "true"),
            (&ng("upstream-vhost"), "inside.test"),
            (&ng("x-forwarded-prefix"), "/p"),
        ],
    );
    let t = translate(
        &objects(vec![moved, cors], &["s0"]),
        &GatewayOptions::default(),
    );
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let rc = http_routes(&t);
    for p in ["/", "/api/x"] {
        assert_eq!(
            route_request(rc, "moved.test", p),
            Outcome::Redirect("new.test".into())
        );
    }
    // The redirect's backends are never resolved, so no cluster for them.
    assert_eq!(
        t.resources
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["shop/s0/80"]
    );
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "cors.test")
        .unwrap();
    let r = &vh.routes[0];
    assert!(r
        .typed_per_filter_config
        .contains_key("envoy.filters.http.cors"));
    let Some(route::Action::Route(a)) = &r.action else {
        panic!("{r:?}")
    };
    assert_eq!(
        a.host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "inside.test".into()
        ))
    );
    let added: Vec<(&str, &str)> = r
        .request_headers_to_add
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(added, [("x-forwarded-prefix", "/p")]);
    // The CORS filter is in the listeners (first) only when a route asks for it.
    let http_filters = |t: &Translation| -> Vec<String> {
        use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
        use prost::Message;
        let Some(ConfigType::TypedConfig(any)) =
            &t.resources.listeners[0].filter_chains[0].filters[0].config_type
        else {
            panic!("no HCM")
        };
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        hcm.http_filters.into_iter().map(|f| f.name).collect()
    };
    assert_eq!(http_filters(&t)[0], "envoy.filters.http.cors");
    let plain = translate(&objects(vec![], &["s0"]), &GatewayOptions::default());
    assert!(!http_filters(&plain).contains(&"envoy.filters.http.cors".to_string()));
}

// ---------- client certificates and TLS passthrough ----------

fn with_tls(mut ing: Ingress, host: &str, secret: &str) -> Ingress {
    ing.spec.as_mut().unwrap().tls = Some(vec![IngressTLS {
        hosts: Some(vec![host.into()]),
        secret_name: Some(secret.into()),
    }]);
    ing
}

fn tls_options() -> GatewayOptions {
    GatewayOptions {
        namespaces: Some(["shop".to_string()].into()),
        ..GatewayOptions::default()
    }
}

fn downstream_tls(
    chain: &envoy_types::pb::envoy::config::listener::v3::FilterChain,
) -> Option<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    use prost::Message;
    let ConfigType::TypedConfig(any) = chain.transport_socket.as_ref()?.config_type.as_ref()?;
    Some(
        envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext::decode(
            any.value.as_slice(),
        )
        .unwrap(),
    )
}

fn diag_of<'t>(t: &'t Translation, name: &str, needle: &str) -> Option<&'t Diagnostic> {
    t.diagnostics
        .iter()
        .find(|d| d.object.name == name && d.message.contains(needle))
}

#[test]
fn client_certificates_are_the_hosts_and_the_oldest_ingress_sets_them() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        certificate_validation_context::TrustChainVerification, common_tls_context,
    };
    let host = "shop.example.com";
    let first = annotated(
        with_tls(one_rule("first", 0, host, "/", "a"), host, "shop-tls"),
        &[
            (
                "nginx.ingress.kubernetes.io/auth-tls-secret",
                "shop/client-ca",
            ),
            (
                "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream",
                "true",
            ),
        ],
    );
    // Another Ingress of the host asks for `optional`: reported, the first's kept.
    let second = annotated(
        one_rule("second", 1, host, "/b", "b"),
        &[
            ("nginx.ingress.kubernetes.io/auth-tls-secret", "client-ca"),
            (
                "nginx.ingress.kubernetes.io/auth-tls-verify-client",
                "optional",
            ),
        ],
    );
    // A CA Secret that does not exist: the Ingress is not served.
    let missing = annotated(
        one_rule("missing", 2, "m.example.com", "/", "a"),
        &[("nginx.ingress.kubernetes.io/auth-tls-secret", "nope")],
    );
    // `on` for a host without TLS: it answers 503 rather than serve without.
    let plain = annotated(
        one_rule("plain", 3, "plain.example.com", "/", "a"),
        &[("nginx.ingress.kubernetes.io/auth-tls-secret", "client-ca")],
    );
    // A CA Secret whose `ca.crl` is not a PEM CRL: not served either.
    let bad_crl = annotated(
        one_rule("badcrl", 4, "crl.example.com", "/", "a"),
        &[("nginx.ingress.kubernetes.io/auth-tls-secret", "bad-crl")],
    );
    let mut objs = objects(vec![first, second, missing, plain, bad_crl], &["a", "b"]);
    objs.secrets.push(tls_secret("shop", "shop-tls"));
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
    let ca_pem = ca.cert.pem();
    let ca = ca_secret("client-ca", "kubernetes.io/tls", Some(ca_pem.as_bytes()));
    let mut bad = ca_secret("bad-crl", "kubernetes.io/tls", Some(ca_pem.as_bytes()));
    let crl = ByteString(b"not a CRL".to_vec());
    bad.data.as_mut().unwrap().insert("ca.crl".into(), crl);
    objs.secrets.push(ca);
    objs.secrets.push(bad);
    let t = translate(&objs, &tls_options());
    let d = diag_of(&t, "badcrl", "ca.crl").expect("bad CRL reported");
    assert!(d.message.contains("rules are not served"), "{d:?}");
    assert_eq!(
        route_request(http_routes(&t), "crl.example.com", "/"),
        Outcome::NoRoute
    );

    let conflict = diag_of(&t, "second", "older Ingress shop/first").expect("conflict reported");
    assert_eq!(conflict.severity, Severity::Error);
    assert_eq!(
        conflict.field,
        "metadata.annotations[\"nginx.ingress.kubernetes.io/auth-tls-secret\"]"
    );
    let missing = diag_of(&t, "missing", "Secret shop/nope not found").expect("missing CA");
    assert!(
        missing.message.contains("rules are not served"),
        "{missing:?}"
    );
    assert!(
        diag_of(&t, "plain", "answers 503").is_some(),
        "{:?}",
        t.diagnostics
    );

    let https = t
        .resources
        .listeners
        .iter()
        .find(|l| l.name == "https")
        .unwrap();
    assert_eq!(https.filter_chains.len(), 1);
    let chain = &https.filter_chains[0];
    assert_eq!(
        chain.name,
        "shop/shop-tls|client-ca=shop/client-ca|on|depth=1"
    );
    let ctx = downstream_tls(chain).expect("TLS");
    assert!(!ctx.require_client_certificate.is_some_and(|b| b.value));
    let Some(common_tls_context::ValidationContextType::ValidationContext(v)) =
        ctx.common_tls_context.unwrap().validation_context_type
    else {
        panic!("no validation context")
    };
    assert!(v.trusted_ca.is_some());
    assert_eq!(v.max_verify_depth.map(|d| d.value), Some(1));
    assert_eq!(
        v.trust_chain_verification,
        TrustChainVerification::AcceptUntrusted as i32
    );

    let rc = |name: &str| t.resources.routes.iter().find(|r| r.name == name).unwrap();
    let vhost = |rc: &RouteConfiguration, d: &str| {
        rc.virtual_hosts
            .iter()
            .find(|v| v.domains == [d])
            .cloned()
            .unwrap()
    };
    // HTTPS: no certificate, or one not verified, gets 400 before any route.
    let v = vhost(rc("https"), host);
    let names: Vec<&str> = v.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        &names[..3],
        [
            "client-certificate|shop.example.com|misdirected",
            "client-certificate|shop.example.com|missing",
            "client-certificate|shop.example.com|invalid"
        ]
    );
    // Another host's connection: 421, unless its SNI name is the host's.
    let misdirected = &v.routes[0].r#match.as_ref().unwrap().headers[0];
    assert!(misdirected.invert_match && misdirected.treat_missing_header_as_empty);
    assert_eq!(misdirected.name, "x-tenantgateway-sni");
    for r in &v.routes[1..3] {
        let tls = r.r#match.as_ref().unwrap().tls_context.as_ref().unwrap();
        assert_eq!(tls.validated.as_ref().map(|b| b.value), Some(false));
        assert!(matches!(r.action, Some(route::Action::DirectResponse(ref d)) if d.status == 400));
    }
    // Both Ingresses' paths are behind it and send the certificate headers
    // (the first passes the certificate, the second only the names).
    let headers = |r: &envoy_types::pb::envoy::config::route::v3::Route| -> Vec<(String, String)> {
        r.request_headers_to_add
            .iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect()
    };
    let root = v.routes.iter().find(|r| r.name.contains("first")).unwrap();
    assert!(headers(root).contains(&("ssl-client-cert".into(), "%DOWNSTREAM_PEER_CERT%".into())));
    assert!(root
        .request_headers_to_remove
        .contains(&"ssl-client-cert".to_string()));
    let b = v.routes.iter().find(|r| r.name.contains("second")).unwrap();
    assert!(!headers(b).iter().any(|(k, _)| k == "ssl-client-cert"));
    assert!(b
        .request_headers_to_remove
        .contains(&"ssl-client-cert".to_string()));
    assert!(headers(b).contains(&(
        "ssl-client-subject-dn".into(),
        "%DOWNSTREAM_PEER_SUBJECT%".into()
    )));
    // Plain HTTP to the host goes to HTTPS; the host without TLS answers 503.
    assert_eq!(
        route_request(rc("http"), host, "/"),
        Outcome::Redirect(String::new())
    );
    assert_eq!(
        route_request(rc("http"), "plain.example.com", "/"),
        Outcome::Status(503)
    );
    assert_eq!(
        route_request(rc("http"), "m.example.com", "/"),
        Outcome::NoRoute
    );
}

#[test]
fn ssl_passthrough_hosts_get_sni_tcp_chains_first_and_are_never_also_terminated() {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy, TcpProxy,
    };
    use prost::Message;
    let pass = annotated(
        with_tls(
            ingress(
                "shop",
                "pass",
                0,
                vec![rule(
                    Some("pass.example.com"),
                    vec![
                        path("/", "Prefix", backend("a", 80)),
                        path("/x", "Prefix", backend("b", 80)),
                    ],
                )],
            ),
            "pass.example.com",
            "shop-tls",
        ),
        &[("nginx.ingress.kubernetes.io/ssl-passthrough", "true")],
    );
    // A younger Ingress terminating the passed-through host: reported.
    let term_pass = with_tls(
        one_rule("term-pass", 1, "pass.example.com", "/t", "b"),
        "pass.example.com",
        "shop-tls",
    );
    // An older Ingress terminating a host a younger one passes through.
    let term = with_tls(
        one_rule("term", 2, "term.example.com", "/", "b"),
        "term.example.com",
        "shop-tls",
    );
    let late = annotated(
        one_rule("late", 3, "term.example.com", "/late", "a"),
        &[("tenantgateway.io/ssl-passthrough", "true")],
    );
    let mut objs = objects(vec![late, term, term_pass, pass], &["a", "b"]);
    objs.secrets.push(tls_secret("shop", "shop-tls"));
    let t = translate(&objs, &tls_options());

    let https = t
        .resources
        .listeners
        .iter()
        .find(|l| l.name == "https")
        .unwrap();
    let names: Vec<&str> = https
        .filter_chains
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["passthrough|pass.example.com", "shop/shop-tls"]);
    let chain = &https.filter_chains[0];
    assert!(
        chain.transport_socket.is_none(),
        "passthrough terminates nothing"
    );
    assert_eq!(
        chain.filter_chain_match.as_ref().unwrap().server_names,
        ["pass.example.com"]
    );
    let Some(ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!()
    };
    let proxy = TcpProxy::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        proxy.cluster_specifier,
        Some(tcp_proxy::ClusterSpecifier::Cluster("shop/a/80".into()))
    );
    assert_eq!(
        https.filter_chains[1]
            .filter_chain_match
            .as_ref()
            .unwrap()
            .server_names,
        ["term.example.com"]
    );
    assert_eq!(
        https.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );

    assert!(
        diag_of(&t, "pass", "not used for TLS").is_some_and(|d| d.field
            == "spec.rules[0].http.paths[1]"
            && d.severity == Severity::Warning)
    );
    assert!(diag_of(&t, "pass", "presents its own certificate").is_some());
    let d = diag_of(
        &t,
        "term-pass",
        "passed through to its backend by the older Ingress shop/pass",
    )
    .expect("terminating a passed-through host is reported");
    assert_eq!(d.severity, Severity::Error);
    let d = diag_of(
        &t,
        "late",
        "already terminated by the older Ingress shop/term",
    )
    .expect("passing a terminated host through is reported");
    assert_eq!(
        d.field,
        "metadata.annotations[\"tenantgateway.io/ssl-passthrough\"]"
    );
    // Plain HTTP still serves every path, as ingress-nginx does.
    let http = http_routes(&t);
    assert_eq!(
        route_request(http, "pass.example.com", "/x"),
        cluster("shop/b/80")
    );
    assert_eq!(
        route_request(http, "term.example.com", "/late"),
        cluster("shop/a/80")
    );
}

// ---------- ACME HTTP-01 challenges (cert-manager) ----------

/// cert-manager's HTTP-01 solver: its own Ingress for the host (path
/// `ImplementationSpecific`, the tenant's class, the `whitelist-source-range`
/// it sets), or its path added to the host's Ingress (`http01-edit-in-place`).
/// The challenge is answered over plain HTTP before the host's Secret exists,
/// and is never redirected to HTTPS — neither by `ssl-redirect` or
/// `force-ssl-redirect` nor by a client-certificate host's redirect — as
/// ingress-nginx's default `no-tls-redirect-locations` does. Every other path
/// keeps its redirect.
#[test]
fn acme_http01_challenge_paths_are_answered_over_http_and_never_redirected() {
    let ng = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let token = "/.well-known/acme-challenge/bWFkZS11cC10b2tlbg";
    let solver = |name: &str, age: i64, host: &str| {
        let mut ing = annotated(
            ingress(
                "shop",
                name,
                age,
                vec![rule(
                    Some(host),
                    vec![path(token, "ImplementationSpecific", backend("solver", 80))],
                )],
            ),
            &[(&ng("whitelist-source-range"), "0.0.0.0/0,::/0")],
        );
        ing.spec.as_mut().unwrap().ingress_class_name = Some("tenant-gateway".into());
        ing
    };
    // new.test: the Certificate is not issued yet (Secret missing), ssl-redirect asked.
    let new = annotated(
        with_tls(one_path("new", 0, "new.test", "s0"), "new.test", "new-tls"),
        &[(&ng("ssl-redirect"), "true")],
    );
    // forced.test: force-ssl-redirect, and the challenge path added in place.
    let mut forced = annotated(
        with_tls(
            one_path("forced", 1, "forced.test", "s0"),
            "forced.test",
            "shop-tls",
        ),
        &[(&ng("force-ssl-redirect"), "true")],
    );
    forced.spec.as_mut().unwrap().rules.as_mut().unwrap()[0]
        .http
        .as_mut()
        .unwrap()
        .paths
        .push(path(token, "ImplementationSpecific", backend("solver", 80)));
    // mtls.test: client certificates `on` (plain HTTP is redirected to HTTPS).
    let mtls = annotated(
        with_tls(
            one_path("mtls", 2, "mtls.test", "s0"),
            "mtls.test",
            "shop-tls",
        ),
        &[(&ng("auth-tls-secret"), "client-ca")],
    );
    let mut objs = objects(
        vec![
            new,
            forced,
            mtls,
            solver("cm-acme-http-solver-new", 10, "new.test"),
            solver("cm-acme-http-solver-mtls", 11, "mtls.test"),
        ],
        &["s0", "solver"],
    );
    objs.secrets.push(tls_secret("shop", "shop-tls"));
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
    objs.secrets.push(ca_secret(
        "client-ca",
        "kubernetes.io/tls",
        Some(ca.cert.pem().as_bytes()),
    ));
    let t = translate(&objs, &tls_options());
    // Only the missing Secret is reported; the solver Ingresses are clean.
    let reported: Vec<(&str, &str)> = errors(&t)
        .iter()
        .map(|d| (d.object.name.as_str(), d.field.as_str()))
        .collect();
    assert_eq!(
        reported,
        [("new", "spec.tls[0].secretName")],
        "{:?}",
        t.diagnostics
    );
    let http = http_routes(&t);
    let solver = cluster("shop/solver/80");
    let redirect = Outcome::Redirect(String::new());
    for (host, p, want) in [
        // no certificate yet: plain HTTP serves the host and its challenge
        ("new.test", token, &solver),
        ("new.test", "/", &cluster("shop/s0/80")),
        ("forced.test", token, &solver),
        ("forced.test", "/", &redirect),
        // a challenge path no solver serves is the host's ordinary route
        (
            "forced.test",
            "/.well-known/acme-challenge/other",
            &redirect,
        ),
        ("mtls.test", token, &solver),
        ("mtls.test", "/", &redirect),
        ("mtls.test", "/.well-known/acme-challenge/other", &redirect),
    ] {
        assert_eq!(&route_request(http, host, p), want, "http://{host}{p}");
    }
    // Over HTTPS the client-certificate checks stay first, the challenge included.
    let https = t
        .resources
        .routes
        .iter()
        .find(|r| r.name == HTTPS_ROUTE_CONFIG)
        .expect("https route config");
    let vh = https
        .virtual_hosts
        .iter()
        .find(|v| v.name == "mtls.test")
        .unwrap();
    assert!(
        vh.routes[0]
            .name
            .starts_with("client-certificate|mtls.test|"),
        "{:?}",
        vh.routes.iter().map(|r| &r.name).collect::<Vec<_>>()
    );
}

#[test]
fn acme_challenge_paths_are_those_at_or_under_the_well_known_prefix() {
    use crate::model::PathMatch;
    for (p, want) in [
        (
            PathMatch::Prefix("/.well-known/acme-challenge".into()),
            true,
        ),
        (
            PathMatch::Prefix("/.well-known/acme-challenge/t".into()),
            true,
        ),
        (
            PathMatch::Exact("/.well-known/acme-challenge/t".into()),
            true,
        ),
        (
            PathMatch::Prefix("/.well-known/acme-challenges".into()),
            false,
        ),
        (PathMatch::Prefix("/.well-known".into()), false),
        (PathMatch::Prefix("/".into()), false),
        (
            PathMatch::Regex("/.well-known/acme-challenge/.*".into()),
            false,
        ),
    ] {
        assert_eq!(p.is_acme_challenge(), want, "{p:?}");
    }
}
