//! The operator's entries for routes naming another tenant's Gateway: the
//! pure rules, then one route's pass against a fake API server.

use super::*;
use crate::build::fixtures::{ctx as build_ctx, gateway, namespace, tenant};
use crate::gateway::class::build_gateway_class;
use crate::gateway::controller::tests::{recording_api, store, Log, Request};
use crate::metrics::OperatorMetrics;
use hyper::StatusCode;
use serde_json::json;
use std::sync::Mutex;

const CTRL: &str = "tenantgateway.io/gateway";

fn t(s: &str) -> Time {
    serde_json::from_value(json!(s)).expect("RFC 3339 time")
}

/// acme holds acme-shop, beta holds beta-shop; lobby is nobody's.
fn holders_of() -> BTreeMap<String, String> {
    [("acme-shop", "acme"), ("beta-shop", "beta")]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Our Gateways: acme-shop/web (acme's) and lobby/web (in nobody's namespace).
fn ours(ns: &str, name: &str) -> bool {
    matches!((ns, name), ("acme-shop", "web") | ("lobby", "web"))
}

fn route(ns: &str, refs: Value, parents: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "intruder", "namespace": ns, "generation": 7, "resourceVersion": "1"},
        "spec": {"parentRefs": refs},
        "status": {"parents": parents},
    })
}

fn next(route: &Value, now: &str) -> Option<Vec<Value>> {
    cross_tenant_parents(&RouteParents::of(route), ours, &holders_of(), &t(now))
}

const NOW: &str = "2026-01-01T00:00:00Z";
const LATER: &str = "2026-02-02T00:00:00Z";

fn to_acme() -> Value {
    json!({"name": "web", "namespace": "acme-shop"})
}

/// What a fleet writes for a route it serves.
fn fleet_entry(parent_ref: Value) -> Value {
    json!({"parentRef": parent_ref, "controllerName": CTRL, "conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
         "observedGeneration": 7, "lastTransitionTime": NOW}]})
}

fn other_controller(parent_ref: Value) -> Value {
    json!({"parentRef": parent_ref, "controllerName": "example.com/other", "conditions": []})
}

fn accepted(entry: &Value) -> &Value {
    &entry["conditions"][0]
}

#[test]
fn a_route_of_another_tenant_naming_our_gateway_is_reported() {
    let r = route("beta-shop", json!([to_acme()]), json!([]));
    let parents = next(&r, NOW).expect("an entry to write");
    assert_eq!(parents.len(), 1, "{parents:#?}");
    assert_eq!(
        parents[0]["parentRef"],
        to_acme(),
        "the parentRef as written"
    );
    assert_eq!(parents[0]["controllerName"], CTRL);
    let c = accepted(&parents[0]);
    assert_eq!(
        (&c["type"], &c["status"], &c["reason"]),
        (
            &json!("Accepted"),
            &json!("False"),
            &json!("NotAllowedByListeners")
        )
    );
    assert_eq!(
        c["message"],
        "namespace beta-shop is not in the tenant that holds Gateway acme-shop/web"
    );
    assert_eq!(c["observedGeneration"], 7);
    assert_eq!(c["lastTransitionTime"], NOW);
}

#[test]
fn a_route_in_a_namespace_nobody_holds_is_reported() {
    let r = route("lobby", json!([to_acme()]), json!([]));
    let parents = next(&r, NOW).unwrap();
    assert_eq!(
        accepted(&parents[0])["message"],
        "namespace lobby is not in the tenant that holds Gateway acme-shop/web"
    );
}

#[test]
fn same_tenant_entries_are_the_fleets_and_left_alone() {
    // acme's own route on acme's Gateway, with or without the fleet's entry.
    for parents in [json!([]), json!([fleet_entry(json!({"name": "web"}))])] {
        let r = route("acme-shop", json!([{"name": "web"}]), parents.clone());
        assert_eq!(next(&r, NOW), None, "{parents}");
    }
    // Even a fleet's NotAllowedByListeners (its own listeners refused it).
    let mut refused = fleet_entry(json!({"name": "web"}));
    refused["conditions"][0]["status"] = json!("False");
    refused["conditions"][0]["reason"] = json!("NotAllowedByListeners");
    refused["conditions"][0]["message"] = json!(
        "no listener selected by the parentRef allows HTTPRoute from namespace \"acme-shop\""
    );
    let r = route("acme-shop", json!([{"name": "web"}]), json!([refused]));
    assert_eq!(next(&r, NOW), None);
}

#[test]
fn an_entry_that_no_longer_applies_is_removed() {
    let written = next(&route("beta-shop", json!([to_acme()]), json!([])), NOW).unwrap();
    let kept = other_controller(json!({"name": "elsewhere"}));
    let mut parents = written.clone();
    parents.push(kept.clone());
    // The route stopped naming the Gateway.
    let r = route("beta-shop", json!([{"name": "elsewhere"}]), json!(parents));
    assert_eq!(next(&r, LATER), Some(vec![kept.clone()]));
    // The route's namespace is now acme's: the fleet writes the entry.
    let r = route("acme-shop", json!([to_acme()]), json!(parents));
    assert_eq!(next(&r, LATER), Some(vec![kept.clone()]));
    // The Gateway is gone (or no longer of our class).
    let none = |_: &str, _: &str| false;
    let r = route("beta-shop", json!([to_acme()]), json!(parents));
    let gone = cross_tenant_parents(&RouteParents::of(&r), none, &holders_of(), &t(LATER));
    assert_eq!(gone, Some(vec![kept]));
}

#[test]
fn other_controllers_and_other_gateways_entries_are_kept_in_place() {
    let theirs = other_controller(to_acme());
    let own = fleet_entry(json!({"name": "gw"}));
    let r = route(
        "beta-shop",
        json!([{"name": "gw"}, to_acme()]),
        json!([theirs, own]),
    );
    let parents = next(&r, NOW).unwrap();
    assert_eq!(parents.len(), 3, "{parents:#?}");
    assert_eq!(parents[0], theirs);
    assert_eq!(parents[1], own, "beta's fleet's entry for its own Gateway");
    assert_eq!(accepted(&parents[2])["reason"], "NotAllowedByListeners");
    // The fleet writes its entry again later: nothing moves, nothing to write.
    let again = route(
        "beta-shop",
        json!([{"name": "gw"}, to_acme()]),
        json!(parents),
    );
    assert_eq!(next(&again, LATER), None);
}

#[test]
fn unchanged_is_none_and_the_transition_time_stays() {
    let first = next(&route("beta-shop", json!([to_acme()]), json!([])), NOW).unwrap();
    let r = route("beta-shop", json!([to_acme()]), json!(first));
    assert_eq!(next(&r, LATER), None);
    // A new generation: observedGeneration moves, lastTransitionTime does not.
    let mut newer = r.clone();
    newer["metadata"]["generation"] = json!(8);
    let parents = next(&newer, LATER).unwrap();
    assert_eq!(accepted(&parents[0])["observedGeneration"], 8);
    assert_eq!(accepted(&parents[0])["lastTransitionTime"], NOW);
}

#[test]
fn a_fleets_entry_from_before_the_namespace_moved_is_replaced() {
    // beta-shop was acme's: acme's fleet accepted the route, then lost sight of it.
    let r = route(
        "beta-shop",
        json!([to_acme()]),
        json!([fleet_entry(to_acme())]),
    );
    let parents = next(&r, LATER).unwrap();
    assert_eq!(parents.len(), 1);
    assert_eq!(accepted(&parents[0])["status"], "False");
    assert_eq!(accepted(&parents[0])["lastTransitionTime"], LATER);
}

#[test]
fn only_our_gateways_in_a_held_namespace_are_reported() {
    for refs in [
        json!([{"name": "web", "namespace": "beta-shop"}]),
        json!([{"name": "web", "namespace": "acme-shop", "kind": "Service", "group": ""}]),
        json!([{"name": "web", "namespace": "acme-shop", "group": "example.com"}]),
        // Our Gateway in a namespace nobody holds: served by nobody, its own
        // status says so.
        json!([{"name": "web", "namespace": "lobby"}]),
        json!([]),
    ] {
        let r = route("beta-shop", refs.clone(), json!([]));
        assert_eq!(next(&r, NOW), None, "{refs}");
    }
    // Every field written, the defaults' values.
    let full = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway",
                      "namespace": "acme-shop", "name": "web", "sectionName": "http", "port": 80});
    let parents = next(&route("beta-shop", json!([full]), json!([])), NOW).unwrap();
    assert_eq!(parents[0]["parentRef"], full);
}

#[test]
fn one_entry_per_parent_ref_naming_the_gateway() {
    let refs = json!([
        {"name": "web", "namespace": "acme-shop", "sectionName": "http"},
        {"name": "web", "namespace": "acme-shop", "sectionName": "https"},
    ]);
    let parents = next(&route("beta-shop", refs.clone(), json!([])), NOW).unwrap();
    let sections: Vec<_> = parents
        .iter()
        .map(|p| p["parentRef"]["sectionName"].clone())
        .collect();
    assert_eq!(sections, [json!("http"), json!("https")]);
    // One of them dropped from the route: its entry goes, the other stays.
    let fewer = route("beta-shop", json!([refs[1].clone()]), json!(parents));
    let left = next(&fewer, LATER).unwrap();
    assert_eq!(left, vec![parents[1].clone()]);
}

#[test]
fn a_route_that_may_not_concern_us_never_changes() {
    let cases = [
        route("beta-shop", json!([{"name": "gw"}]), json!([])),
        route(
            "beta-shop",
            json!([{"name": "gw"}]),
            json!([fleet_entry(json!({"name": "gw"}))]),
        ),
        route("acme-shop", json!([{"name": "web"}]), json!([])),
    ];
    for r in &cases {
        let view = RouteParents::of(r);
        if !may_concern(&view, ours) {
            assert_eq!(next(r, NOW), None, "{r}");
        }
    }
    assert!(!may_concern(&RouteParents::of(&cases[0]), ours));
    assert!(may_concern(&RouteParents::of(&cases[2]), ours));
    let written = next(&route("beta-shop", json!([to_acme()]), json!([])), NOW).unwrap();
    let stale = route("beta-shop", json!([]), json!(written));
    assert!(
        may_concern(&RouteParents::of(&stale), ours),
        "its own entry to remove"
    );
}

#[test]
fn a_parent_ref_names_its_gateway_with_the_routes_namespace_by_default() {
    assert_eq!(
        gateway_of(&json!({"name": "web"}), "app"),
        Some(("app".to_string(), "web".to_string()))
    );
    assert_eq!(
        gateway_of(&to_acme(), "app"),
        Some(("acme-shop".to_string(), "web".to_string()))
    );
    assert_eq!(
        gateway_of(&json!({"name": "web", "kind": "ListenerSet"}), "app"),
        None
    );
    assert_eq!(gateway_of(&json!({"namespace": "app"}), "app"), None);
}

/// Answers a status PUT with its body after `conflicts` 409s, and a GET with
/// `fresh`.
async fn fake_api(fresh: Value, conflicts: usize) -> (kube::Client, Log) {
    let left = Mutex::new(conflicts);
    recording_api(move |req| match req.method.as_str() {
        "GET" => (StatusCode::OK, fresh.clone()),
        _ if *left.lock().unwrap() > 0 => {
            *left.lock().unwrap() -= 1;
            let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "Conflict", "code": 409, "message": "conflict"});
            (StatusCode::CONFLICT, conflict)
        }
        _ => (StatusCode::OK, req.body.clone()),
    })
    .await
}

fn context(client: kube::Client) -> Arc<GatewayContext> {
    let mut beta = tenant("beta");
    beta.metadata.uid = Some("00000000-0000-0000-0000-00000000beta".into());
    Arc::new(GatewayContext {
        client,
        build: build_ctx(),
        tenants: store(vec![tenant("acme"), beta]),
        namespaces: store(vec![
            namespace("acme-shop", &[]),
            namespace("beta-shop", &[]),
            namespace("lobby", &[]),
        ]),
        nodes: store(vec![]),
        services: store(vec![]),
        classes: store(vec![build_gateway_class()]),
        gateways: store(vec![gateway("acme-shop", "web", &[("http", 80, "HTTP")])]),
        metrics: Arc::new(OperatorMetrics::default()),
    })
}

async fn pass(seen: Value, fresh: Value, conflicts: usize) -> Vec<Request> {
    let (client, log) = fake_api(fresh, conflicts).await;
    let route: HttpRoute = serde_json::from_value(seen).unwrap();
    let action = route_pass(Arc::new(route), context(client)).await.unwrap();
    assert_eq!(action, Action::requeue(REPLAN * 5));
    let log = log.lock().unwrap().clone();
    log
}

const STATUS_PATH: &str =
    "/apis/gateway.networking.k8s.io/v1/namespaces/beta-shop/httproutes/intruder/status";

#[tokio::test]
async fn the_pass_writes_the_entry_with_the_resource_version() {
    let seen = route("beta-shop", json!([to_acme()]), json!([]));
    let log = pass(seen.clone(), seen, 0).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("PUT", STATUS_PATH)
    );
    assert_eq!(log[0].body["metadata"]["resourceVersion"], "1");
    let parents = log[0].body["status"]["parents"].as_array().unwrap();
    assert_eq!(accepted(&parents[0])["reason"], "NotAllowedByListeners");
    assert!(accepted(&parents[0])["message"]
        .as_str()
        .unwrap()
        .contains("is not in the tenant that holds Gateway"));
}

#[tokio::test]
async fn a_conflict_is_retried_from_a_fresh_read() {
    let seen = route("beta-shop", json!([to_acme()]), json!([]));
    let theirs = other_controller(to_acme());
    let mut fresh = route("beta-shop", json!([to_acme()]), json!([theirs]));
    fresh["metadata"]["resourceVersion"] = json!("2");
    let log = pass(seen, fresh, 1).await;
    let methods: Vec<&str> = log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["PUT", "GET", "PUT"]);
    assert_eq!(log[1].path, STATUS_PATH);
    let last = &log[2].body;
    assert_eq!(last["metadata"]["resourceVersion"], "2");
    let parents = last["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2, "{parents:#?}");
    assert_eq!(parents[0], theirs, "the other controller's entry kept");
}

#[tokio::test]
async fn nothing_is_written_for_a_same_tenant_route_or_an_unchanged_one() {
    let own = route("acme-shop", json!([{"name": "web"}]), json!([]));
    assert!(pass(own.clone(), own, 0).await.is_empty());
    let done = next(&route("beta-shop", json!([to_acme()]), json!([])), NOW).unwrap();
    let seen = route("beta-shop", json!([to_acme()]), json!(done));
    assert!(pass(seen.clone(), seen, 0).await.is_empty());
}

/// The fixture route as a `kind` (TLSRoutes need hostnames; every kind rules).
fn as_kind(route: &mut Value, kind: &str) {
    route["kind"] = json!(kind);
    route["spec"]["rules"] = json!([{"backendRefs": [{"name": "backend", "port": 443}]}]);
    if kind == "TLSRoute" {
        route["spec"]["hostnames"] = json!(["shop.example.com"]);
    }
}

/// One pass over a route of kind `K` seen as `seen` (and read fresh as the same).
async fn pass_of<K: ParentedRoute>(seen: Value) -> Vec<Request> {
    let (client, log) = fake_api(seen.clone(), 0).await;
    let route: K = serde_json::from_value(seen).unwrap();
    let action = route_pass(Arc::new(route), context(client)).await.unwrap();
    assert_eq!(action, Action::requeue(REPLAN * 5));
    let log = log.lock().unwrap().clone();
    log
}

#[tokio::test]
async fn tls_tcp_and_udp_routes_naming_another_tenants_gateway_are_reported_too() {
    for (kind, plural) in [
        ("TLSRoute", "tlsroutes"),
        ("TCPRoute", "tcproutes"),
        ("UDPRoute", "udproutes"),
    ] {
        let mut seen = route("beta-shop", json!([to_acme()]), json!([]));
        as_kind(&mut seen, kind);
        let log = match kind {
            "TLSRoute" => pass_of::<TlsRoute>(seen).await,
            "TCPRoute" => pass_of::<TcpRoute>(seen).await,
            _ => pass_of::<UdpRoute>(seen).await,
        };
        assert_eq!(log.len(), 1, "{kind}: {log:#?}");
        assert_eq!(
            (log[0].method.as_str(), log[0].path.as_str()),
            (
                "PUT",
                format!(
                    "/apis/gateway.networking.k8s.io/v1/namespaces/beta-shop/{plural}/intruder/status"
                )
                .as_str()
            ),
            "{kind}"
        );
        let parents = log[0].body["status"]["parents"].as_array().unwrap();
        assert_eq!(parents[0]["parentRef"], to_acme(), "{kind}");
        assert_eq!(
            accepted(&parents[0])["reason"],
            "NotAllowedByListeners",
            "{kind}"
        );
        // The same route in acme's own namespace is its fleet's: no write.
        let mut own = route("acme-shop", json!([{"name": "web"}]), json!([]));
        as_kind(&mut own, kind);
        let log = match kind {
            "TLSRoute" => pass_of::<TlsRoute>(own).await,
            "TCPRoute" => pass_of::<TcpRoute>(own).await,
            _ => pass_of::<UdpRoute>(own).await,
        };
        assert!(log.is_empty(), "{kind}: {log:#?}");
    }
}
