//! Malformed and hostile input applied to a live tenant (issue 7): about 200
//! bad Ingresses and a set of bad TenantGateways go through the real API
//! server while traffic flows to a good route. Whatever the API server accepts
//! must be reported by us (a Warning Event on the Ingress, or `Accepted=False`
//! naming the field on the TenantGateway); whatever it rejects was reported by
//! the API server. The good route never fails, and no gateway or operator
//! container restarts.

use anyhow::Result;
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, PostParams};
use std::collections::BTreeSet;
use std::time::Duration;

fn ingress(name: &str, annotations: serde_json::Value, rules: serde_json::Value) -> Ingress {
    obj(serde_json::json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"rules": rules}
    }))
}

fn rule(
    host: Option<&str>,
    path: &str,
    path_type: &str,
    svc: &str,
    port: serde_json::Value,
) -> serde_json::Value {
    let mut r = serde_json::json!({"http": {"paths": [
        {"path": path, "pathType": path_type, "backend": {"service": {"name": svc, "port": port}}}
    ]}});
    if let Some(h) = host {
        r["host"] = serde_json::json!(h);
    }
    r
}

/// ~200 bad Ingresses; every one is bad in a way the gateway must report.
fn corpus() -> Vec<Ingress> {
    let none = serde_json::json!({});
    let num = |n: i64| serde_json::json!({"number": n});
    let mut out = Vec::new();
    let mut n = 0;
    let mut push = |annotations: serde_json::Value, rules: serde_json::Value| {
        out.push(ingress(&format!("bad-{n:03}"), annotations, rules));
        n += 1;
    };
    // Hosts the API server may or may not accept.
    for h in [
        "Shop.Example.com",
        "shop..example.com",
        "*.",
        "foo.*.com",
        "10.0.0.1",
        "shöp.example.com",
        "-a.example.com",
        "a-.example.com",
        &"x".repeat(300),
    ] {
        push(
            none.clone(),
            serde_json::json!([rule(Some(h), "/", "Prefix", "login", num(80))]),
        );
    }
    // Paths.
    for (p, t) in [
        ("relative", "Prefix"),
        ("/a b", "Prefix"),
        ("/a?b", "Exact"),
        ("/a#b", "Prefix"),
        ("../../etc/passwd", "Prefix"),
        ("/ok", "Regex"),
        ("/ok", "prefix"),
    ] {
        push(
            none.clone(),
            serde_json::json!([rule(Some("hostile.example.com"), p, t, "login", num(80))]),
        );
    }
    // Backends: missing Service, unknown port number and name, ports out of range.
    for i in 0..45 {
        push(
            none.clone(),
            serde_json::json!([rule(
                Some(&format!("m{i}.example.com")),
                "/",
                "Prefix",
                &format!("missing-{i}"),
                num(80)
            )]),
        );
    }
    for i in 0..20 {
        push(
            none.clone(),
            serde_json::json!([rule(
                Some(&format!("p{i}.example.com")),
                "/",
                "Prefix",
                "login",
                num(81 + i)
            )]),
        );
        push(
            none.clone(),
            serde_json::json!([rule(
                Some(&format!("n{i}.example.com")),
                "/",
                "Prefix",
                "login",
                serde_json::json!({"name": format!("nope{i}")})
            )]),
        );
    }
    for port in [0, -1, 65536, 2147483647] {
        push(
            none.clone(),
            serde_json::json!([rule(
                Some("range.example.com"),
                "/",
                "Prefix",
                "login",
                num(port)
            )]),
        );
    }
    // The good route, claimed again by younger Ingresses: they lose and are reported.
    for _ in 0..40 {
        push(
            none.clone(),
            serde_json::json!([rule(
                Some("shop.example.com"),
                "/login",
                "Prefix",
                "login",
                serde_json::json!({"name": "http"})
            )]),
        );
    }
    // Annotations: invalid values, raw-config snippets, unknown ingress-nginx ones.
    let bad_annotations = [
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "forever"),
        ("nginx.ingress.kubernetes.io/ssl-redirect", "maybe"),
        (
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "more_set_headers \"X: y\";",
        ),
        (
            "nginx.ingress.kubernetes.io/server-snippet",
            "location /admin { return 200; }",
        ),
        ("nginx.ingress.kubernetes.io/auth-url", "http://evil/"),
        ("nginx.ingress.kubernetes.io/some-unknown-annotation", "1"),
        ("nginx.ingress.kubernetes.io/limit-rps", "-5"),
        ("nginx.ingress.kubernetes.io/canary-weight", "250"),
        (
            "nginx.ingress.kubernetes.io/whitelist-source-range",
            "not-a-cidr",
        ),
        ("nginx.ingress.kubernetes.io/rewrite-target", "/$9"),
    ];
    for (i, (k, v)) in bad_annotations.iter().enumerate() {
        for j in 0..5 {
            push(
                serde_json::json!({ *k: *v }),
                serde_json::json!([rule(
                    Some(&format!("a{i}-{j}.example.com")),
                    "/",
                    "Prefix",
                    "login",
                    serde_json::json!({"name": "http"})
                )]),
            );
        }
    }
    // use-regex with an invalid regex.
    for i in 0..5 {
        push(
            serde_json::json!({"nginx.ingress.kubernetes.io/use-regex": "true"}),
            serde_json::json!([rule(
                Some(&format!("re{i}.example.com")),
                "/(unclosed",
                "ImplementationSpecific",
                "login",
                serde_json::json!({"name": "http"})
            )]),
        );
    }
    // Huge: one Ingress with 500 hosts, all to a missing Service.
    let many: Vec<serde_json::Value> = (0..500)
        .map(|i| {
            rule(
                Some(&format!("h{i}.huge.example.com")),
                "/",
                "Prefix",
                "ghost",
                num(80),
            )
        })
        .collect();
    push(none.clone(), serde_json::Value::Array(many));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_objects_on_a_live_tenant_are_reported_and_the_good_route_keeps_serving(
) -> Result<()> {
    if skip_requested(
        "hostile_objects_on_a_live_tenant_are_reported_and_the_good_route_keeps_serving",
    ) {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("hostile").await?;
    let tenant = format!("hostile-{}", &ns.name[ns.name.len() - 6..]);
    deploy_echo(&ns, "login", 1).await?;
    create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
    create_tgw_with(&c, &tenant, serde_json::json!({"names": [ns.name]}), 1).await?;
    let mut bad_tgws: Vec<String> = Vec::new();
    let result = guarded(async {
        let gw = ready_gateway(&c, &tenant).await?;
        served_from(gw, "shop.example.com", "/login", &ns.name).await?;
        let traffic = Traffic::start(gw, "shop.example.com", "/login");

        let corpus = corpus();
        assert!(corpus.len() >= 200, "corpus has {}", corpus.len());
        let api = ns.api::<Ingress>();
        let mut accepted = BTreeSet::new();
        let mut rejected = 0;
        for ing in &corpus {
            match api.create(&PostParams::default(), ing).await {
                Ok(_) => {
                    accepted.insert(ing.metadata.name.clone().unwrap_or_default());
                }
                Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => rejected += 1,
                Err(e) => return Err(e.into()),
            }
        }
        eprintln!("{} bad Ingresses: {} accepted by the API server, {rejected} rejected by it", corpus.len(), accepted.len());

        // Bad TenantGateways: schema-invalid ones are refused by the API server;
        // the rest get Accepted=False naming the field.
        let tgws = tgw_api(&c);
        let bad_specs = [
            serde_json::json!({"listeners": {"httpPort": 9000, "httpsPort": 9000}}),
            serde_json::json!({"listeners": {"httpPort": 9901}}),
            serde_json::json!({"namespaces": {"selector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}}}),
            serde_json::json!({"gatewayNamespace": "Not_A_Namespace"}),
            serde_json::json!({"replicas": -3}),
            serde_json::json!({"listeners": {"httpPort": 70000}}),
            serde_json::json!({"tcpProxies": [{"port": 8080, "service": {"namespace": "x", "name": "y", "port": 1}}]}),
            serde_json::json!({"service": {"type": "Bogus"}}),
        ];
        let mut tgw_rejected = 0;
        for (i, spec) in bad_specs.iter().enumerate() {
            let name = format!("{tenant}-bad{i}");
            let o: kube::api::DynamicObject = obj(serde_json::json!({
                "apiVersion": "tenantgateway.io/v1alpha1", "kind": "TenantGateway",
                "metadata": {"name": name}, "spec": spec
            }));
            match tgws.create(&PostParams::default(), &o).await {
                Ok(_) => bad_tgws.push(name),
                Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => tgw_rejected += 1,
                Err(e) => return Err(e.into()),
            }
        }
        eprintln!("{} bad TenantGateways: {} accepted, {tgw_rejected} rejected by the API server", bad_specs.len(), bad_tgws.len());

        // Every accepted bad TenantGateway: Accepted=False with a field in the message.
        for name in &bad_tgws {
            let msg = wait_until(&format!("{name} Accepted=False"), Duration::from_secs(60), || async {
                let t = tgws.get(name).await?;
                Ok(condition(&t, "Accepted").filter(|(s, _)| s == "False").map(|(_, m)| m))
            })
            .await?;
            assert!(msg.contains("spec."), "{name}: {msg}");
        }
        // Every accepted bad Ingress: a Warning Event on it.
        let events: Api<Event> = Api::namespaced(c.clone(), &ns.name);
        let unreported = wait_until("a Warning Event on every accepted bad Ingress", Duration::from_secs(90), || async {
            let list = events.list(&ListParams::default()).await?;
            let warned: BTreeSet<String> = list
                .items
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .filter_map(|e| e.regarding.as_ref().and_then(|r| r.name.clone()))
                .collect();
            let missing: Vec<&String> = accepted.iter().filter(|n| !warned.contains(*n)).collect();
            Ok(missing.is_empty().then_some(()))
        })
        .await;
        if let Err(e) = unreported {
            let list = events.list(&ListParams::default()).await?;
            let warned: BTreeSet<String> = list.items.iter().filter_map(|e| e.regarding.as_ref().and_then(|r| r.name.clone())).collect();
            let missing: Vec<&String> = accepted.iter().filter(|n| !warned.contains(*n)).collect();
            anyhow::bail!("{e}: not reported: {missing:?}");
        }

        traffic
            .finish_via_node_port("the good route while hostile objects were applied").await?;
        // Nothing crashed: no restarts of the gateway's containers or the operator.
        for p in gateway_pods(&c, &tenant).await? {
            for (container, restarts) in pod_restarts(&p) {
                assert_eq!(restarts, 0, "{container} restarted");
            }
        }
        let ops = Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
            .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
            .await?;
        for p in &ops.items {
            for (container, restarts) in pod_restarts(p) {
                assert_eq!(restarts, 0, "operator {container} restarted");
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    for name in &bad_tgws {
        delete_tgw(&c, name).await;
    }
    delete_tgw(&c, &tenant).await;
    ns.cleanup().await?;
    result
}
