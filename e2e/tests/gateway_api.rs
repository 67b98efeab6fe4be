//! Gateway API on a real cluster, with the isolation on top of conformance:
//! two tenants each with a Gateway of class `tenant-gateway` and an HTTPRoute
//! for `shop.example.com/login` serve their own backends; a route of tenant B
//! naming tenant A's Gateway never attaches; a ReferenceGrant in A's namespace
//! granting B's routes does not let B reach A's Service; each Gateway fleet's
//! identity holds no cluster-scoped permission.
//!
//! Requests go from this host to the address each Gateway publishes in its
//! status (its Service's ClusterIP) on the listener port.

use anyhow::{anyhow, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const GROUP: &str = "gateway.networking.k8s.io";
const CLASS: &str = "tenant-gateway";

fn gateways(c: &Client, ns: &str) -> Api<DynamicObject> {
    gateway_api(c, ns, "Gateway", "gateways", "v1")
}

fn http_routes(c: &Client, ns: &str) -> Api<DynamicObject> {
    gateway_api(c, ns, "HTTPRoute", "httproutes", "v1")
}

async fn apply(api: &Api<DynamicObject>, name: &str, v: Value) -> Result<()> {
    let o: DynamicObject = obj(v);
    api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&o))
        .await?;
    Ok(())
}

async fn create_gateway(c: &Client, ns: &str) -> Result<()> {
    apply(
        &gateways(c, ns),
        "gw",
        json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Gateway",
               "metadata": {"name": "gw", "namespace": ns},
               "spec": {"gatewayClassName": CLASS,
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
    )
    .await
}

/// An HTTPRoute `name` in `ns` for shop.example.com/login to `backend`
/// (`namespace/name` or `name`), attached to the Gateway `parent_ns/gw`.
async fn create_route(
    c: &Client,
    ns: &str,
    name: &str,
    parent_ns: &str,
    backend: &str,
) -> Result<()> {
    let (backend_ns, backend_name) = backend.split_once('/').unwrap_or((ns, backend));
    apply(
        &http_routes(c, ns),
        name,
        json!({"apiVersion": format!("{GROUP}/v1"), "kind": "HTTPRoute",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"parentRefs": [{"name": "gw", "namespace": parent_ns}],
                        "hostnames": ["shop.example.com"],
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/login"}}],
                                   "backendRefs": [{"name": backend_name, "namespace": backend_ns,
                                                    "port": 80}]}]}}),
    )
    .await
}

fn condition<'a>(conditions: &'a Value, ty: &str) -> Option<&'a Value> {
    conditions.as_array()?.iter().find(|c| c["type"] == ty)
}

/// Wait until the Gateway is Programmed and publishes an address; that address on port 80.
async fn programmed_gateway(c: &Client, ns: &str) -> Result<SocketAddr> {
    let found = wait_until(
        &format!("Gateway {ns}/gw Programmed with an address"),
        Duration::from_secs(180),
        || async {
            let gw = gateways(c, ns).get("gw").await?;
            let programmed = condition(&gw.data["status"]["conditions"], "Programmed")
                .is_some_and(|c| c["status"] == "True");
            let ip = gw.data["status"]["addresses"][0]["value"]
                .as_str()
                .map(str::to_string);
            Ok(ip.filter(|_| programmed))
        },
    )
    .await;
    let ip = match found {
        Ok(ip) => ip,
        Err(e) => {
            let status = gateways(c, ns)
                .get("gw")
                .await
                .map(|g| g.data["status"].to_string())
                .unwrap_or_else(|e| format!("({e})"));
            return Err(e.context(format!(
                "Gateway {ns}/gw status: {status}\n{}",
                operator_logs(40)
            )));
        }
    };
    Ok(format!("{ip}:80").parse()?)
}

/// The route's parent status entry for the Gateway `parent_ns/gw`, once written.
async fn parent_status(c: &Client, ns: &str, route: &str, parent_ns: &str) -> Result<Value> {
    wait_until(
        &format!("HTTPRoute {ns}/{route} status for Gateway {parent_ns}/gw"),
        Duration::from_secs(60),
        || async {
            let r = http_routes(c, ns).get(route).await?;
            let entry = r.data["status"]["parents"].as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| {
                        p["parentRef"]["name"] == "gw"
                            && p["parentRef"]["namespace"].as_str().unwrap_or(ns) == parent_ns
                    })
                    .cloned()
            });
            Ok(entry)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_gateways_and_routes_for_the_same_host_stay_apart() -> Result<()> {
    if skip_requested("two_tenants_gateways_and_routes_for_the_same_host_stay_apart") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let a_ns = TestNamespace::create("gwa").await?;
    let b_ns = TestNamespace::create("gwb").await?;
    let sfx = &a_ns.name[a_ns.name.len() - 6..];
    let (a, b) = (format!("gwa-{sfx}"), format!("gwb-{sfx}"));
    for ns in [&a_ns, &b_ns] {
        deploy_echo(ns, "login", 1).await?;
    }
    create_tgw(&c, &a, json!({"names": [a_ns.name]})).await?;
    create_tgw(&c, &b, json!({"names": [b_ns.name]})).await?;
    let result = guarded(async {
        for ns in [&a_ns.name, &b_ns.name] {
            create_gateway(&c, ns).await?;
            create_route(&c, ns, "login", ns, "login").await?;
        }
        let (a_addr, b_addr) = (
            programmed_gateway(&c, &a_ns.name).await?,
            programmed_gateway(&c, &b_ns.name).await?,
        );
        served_from(a_addr, "shop.example.com", "/login", &a_ns.name).await?;
        served_from(b_addr, "shop.example.com", "/login", &b_ns.name).await?;
        for i in 0..20 {
            let (_, body) = get(a_addr, "shop.example.com", "/login").await?;
            assert!(body.contains(&format!("ns={} ", a_ns.name)), "request {i} via A: {body}");
            let (_, body) = get(b_addr, "shop.example.com", "/login").await?;
            assert!(body.contains(&format!("ns={} ", b_ns.name)), "request {i} via B: {body}");
        }
        let own = parent_status(&c, &a_ns.name, "login", &a_ns.name).await?;
        let accepted = condition(&own["conditions"], "Accepted").cloned().unwrap_or_default();
        assert_eq!(accepted["status"], "True", "A's route on A's Gateway: {own}");
        assert_eq!(own["controllerName"], "tenantgateway.io/gateway");

        // B's route naming A's Gateway, for a path only it has: never served by A.
        apply(
            &http_routes(&c, &b_ns.name),
            "intruder",
            json!({"apiVersion": format!("{GROUP}/v1"), "kind": "HTTPRoute",
                   "metadata": {"name": "intruder", "namespace": b_ns.name},
                   "spec": {"parentRefs": [{"name": "gw", "namespace": a_ns.name}],
                            "hostnames": ["shop.example.com"],
                            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/intrude"}}],
                                       "backendRefs": [{"name": "login", "port": 80}]}]}}),
        )
        .await?;
        // ...and reported on the route by the operator (A's fleet cannot see it).
        let refused = parent_status(&c, &b_ns.name, "intruder", &a_ns.name).await?;
        let accepted = condition(&refused["conditions"], "Accepted").cloned().unwrap_or_default();
        assert_eq!(accepted["status"], "False", "B's route on A's Gateway: {refused}");
        assert_eq!(accepted["reason"], "NotAllowedByListeners", "{refused}");
        assert!(!accepted["message"].as_str().unwrap_or("").contains(&a), "names no tenant: {refused}");
        // A ReferenceGrant in A's namespace granting B's routes A's Service, and
        // B's route to it on B's own Gateway: the grant crosses tenants, so it is refused.
        apply(
            &gateway_api(&c, &a_ns.name, "ReferenceGrant", "referencegrants", "v1beta1"),
            "to-b",
            json!({"apiVersion": format!("{GROUP}/v1beta1"), "kind": "ReferenceGrant",
                   "metadata": {"name": "to-b", "namespace": a_ns.name},
                   "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": b_ns.name}],
                            "to": [{"group": "", "kind": "Service"}]}}),
        )
        .await?;
        apply(
            &http_routes(&c, &b_ns.name),
            "borrow",
            json!({"apiVersion": format!("{GROUP}/v1"), "kind": "HTTPRoute",
                   "metadata": {"name": "borrow", "namespace": b_ns.name},
                   "spec": {"parentRefs": [{"name": "gw"}],
                            "hostnames": ["shop.example.com"],
                            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/borrow"}}],
                                       "backendRefs": [{"name": "login", "namespace": a_ns.name,
                                                        "port": 80}]}]}}),
        )
        .await?;
        let borrow = parent_status(&c, &b_ns.name, "borrow", &b_ns.name).await?;
        let resolved = condition(&borrow["conditions"], "ResolvedRefs").cloned().unwrap_or_default();
        assert_eq!(resolved["status"], "False", "B's route to A's Service: {borrow}");
        assert_eq!(resolved["reason"], "RefNotPermitted", "{borrow}");
        // The rule is kept and answers 500 for the unresolved backend (the spec's
        // rule), never A's backend.
        wait_until("B's /borrow answering 500", Duration::from_secs(30), || async {
            let (code, _) = get(b_addr, "shop.example.com", "/borrow").await?;
            Ok((code == 500).then_some(()))
        })
        .await?;
        for _ in 0..10 {
            let (code, body) = get(a_addr, "shop.example.com", "/intrude").await?;
            assert_eq!(code, 404, "A's Gateway never serves B's route: {body}");
            let (code, body) = get(b_addr, "shop.example.com", "/borrow").await?;
            assert!(!body.contains(&format!("ns={} ", a_ns.name)), "B reached A's backend ({code}): {body}");
        }
        // Both tenants keep serving.
        served_from(a_addr, "shop.example.com", "/login", &a_ns.name).await?;
        served_from(b_addr, "shop.example.com", "/login", &b_ns.name).await?;

        // Each Gateway fleet's identity: its own namespace's objects, nothing
        // cluster-scoped, nothing of the other tenant.
        for (ns, other) in [(&a_ns.name, &b_ns.name), (&b_ns.name, &a_ns.name)] {
            let sa = fleet_service_account(&c, ns).await?;
            let user = format!("system:serviceaccount:{ns}:{sa}");
            let groups = ["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")];
            let checks: [(&str, &str, &str, &str, bool); 9] = [
                ("list", "httproutes", GROUP, ns.as_str(), true),
                ("list", "secrets", "", ns.as_str(), true),
                ("list", "httproutes", GROUP, other.as_str(), false),
                ("get", "secrets", "", other.as_str(), false),
                // Cluster-scoped (namespace ""): every one refused.
                ("list", "secrets", "", "", false),
                ("list", "httproutes", GROUP, "", false),
                ("list", "namespaces", "", "", false),
                ("list", "gatewayclasses", GROUP, "", false),
                ("get", "nodes", "", "", false),
            ];
            for (verb, resource, group, namespace, want) in checks {
                let sar: SubjectAccessReview = obj(json!({"spec": {"user": user, "groups": groups,
                    "resourceAttributes": {"namespace": namespace, "verb": verb,
                                           "resource": resource, "group": group}}}));
                let r = Api::<SubjectAccessReview>::all(c.clone())
                    .create(&PostParams::default(), &sar)
                    .await?;
                let allowed = r.status.map(|s| s.allowed).unwrap_or(false);
                assert_eq!(allowed, want, "{user} {verb} {group}/{resource} in {namespace:?}");
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &a).await;
    delete_tgw(&c, &b).await;
    a_ns.cleanup().await?;
    b_ns.cleanup().await?;
    result
}

/// The ServiceAccount of the fleet of Gateway `ns/gw`: the one its pods run as.
async fn fleet_service_account(c: &Client, ns: &str) -> Result<String> {
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c.clone(), ns)
        .list(&kube::api::ListParams::default().labels("gateway.networking.k8s.io/gateway-name=gw"))
        .await?;
    pods.items
        .iter()
        .find_map(|p| p.spec.as_ref()?.service_account_name.clone())
        .ok_or_else(|| anyhow!("no pod of Gateway {ns}/gw"))
}
