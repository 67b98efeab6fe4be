//! The operator end to end on a real cluster: TenantGateways in, isolated
//! Envoy fleets out. Installs `config/` (CRD, RBAC, operator) once per run.
//!
//! Requests go from this host to the tenant Services' NodePorts on the node IP.

use anyhow::{anyhow, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_share_host_and_path_isolated_by_rbac() -> Result<()> {
    if skip_requested("two_tenants_share_host_and_path_isolated_by_rbac") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let acme_ns = TestNamespace::create("acme").await?;
    let globex_ns = TestNamespace::create("globex").await?;
    let sfx = &acme_ns.name[acme_ns.name.len() - 6..];
    let (acme, globex) = (format!("acme-{sfx}"), format!("globex-{sfx}"));
    // globex claims by label selector, acme by name.
    let label = serde_json::json!({"metadata": {"labels": {"e2e-tenant": globex}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(c.clone())
        .patch(
            &globex_ns.name,
            &PatchParams::default(),
            &Patch::Merge(&label),
        )
        .await?;
    for ns in [&acme_ns, &globex_ns] {
        deploy_echo(ns, "login", 1).await?;
        create_ingress(ns, "login", "shop.example.com", "/login", "login").await?;
    }
    create_tgw(&c, &acme, serde_json::json!({"names": [acme_ns.name]})).await?;
    create_tgw(
        &c,
        &globex,
        serde_json::json!({"selector": {"matchLabels": {"e2e-tenant": globex}}}),
    )
    .await?;
    let result = guarded(async {
        let (a, g) = (ready_gateway(&c, &acme).await?, ready_gateway(&c, &globex).await?);
        served_from(a, "shop.example.com", "/login", &acme_ns.name).await?;
        served_from(g, "shop.example.com", "/login", &globex_ns.name).await?;
        for i in 0..30 {
            let (_, body) = get(a, "shop.example.com", "/login").await?;
            assert!(body.contains(&format!("ns={} ", acme_ns.name)), "request {i} via acme: {body}");
            let (_, body) = get(g, "shop.example.com", "/login").await?;
            assert!(body.contains(&format!("ns={} ", globex_ns.name)), "request {i} via globex: {body}");
        }

        // The sidecar identity of globex cannot read acme's Secrets or Ingresses.
        let sa = format!("tgw-{globex}");
        let user = format!("system:serviceaccount:{SYSTEM_NS}:{sa}");
        for (verb, resource, group) in [("get", "secrets", ""), ("list", "secrets", ""), ("list", "ingresses", "networking.k8s.io")] {
            for (ns, want) in [(&acme_ns.name, false), (&globex_ns.name, true)] {
                let sar: SubjectAccessReview = obj(serde_json::json!({"spec": {"user": user, "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{SYSTEM_NS}")],
                    "resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource, "group": group}}}));
                let r = Api::<SubjectAccessReview>::all(c.clone()).create(&PostParams::default(), &sar).await?;
                let allowed = r.status.map(|s| s.allowed).unwrap_or(false);
                assert_eq!(allowed, want, "{user} {verb} {resource} in {ns}");
            }
        }
        let tr: TokenRequest = obj(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 600}}));
        let token = Api::<ServiceAccount>::namespaced(c.clone(), SYSTEM_NS)
            .create_token_request(&sa, &PostParams::default(), &tr)
            .await?
            .status
            .ok_or_else(|| anyhow!("no token"))?
            .token;
        let as_globex = e2e::client_with_token(&token).await?;
        let denied = Api::<Ingress>::namespaced(as_globex.clone(), &acme_ns.name).list(&ListParams::default()).await;
        assert!(matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403), "{denied:?}");
        let denied = Api::<Secret>::namespaced(as_globex.clone(), &acme_ns.name).list(&ListParams::default()).await;
        assert!(matches!(denied, Err(kube::Error::Api(ref e)) if e.code == 403), "{denied:?}");
        let own = Api::<Ingress>::namespaced(as_globex, &globex_ns.name).list(&ListParams::default()).await?;
        assert_eq!(own.items.len(), 1, "globex can read its own Ingresses");

        // The Ingress status shows the gateway address.
        let ing = wait_until("acme Ingress status", Duration::from_secs(30), || async {
            let i = acme_ns.api::<Ingress>().get("login").await?;
            let has = i.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref()).is_some_and(|v| !v.is_empty());
            Ok(has.then_some(i))
        })
        .await?;
        assert!(ing.status.is_some());

        // Deleting a TenantGateway deletes everything it created.
        delete_tgw(&c, &acme).await;
        wait_until("acme's objects garbage-collected", Duration::from_secs(90), || async {
            let left = Api::<Deployment>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len()
                + Api::<Service>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len()
                + Api::<RoleBinding>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len()
                + Api::<ServiceAccount>::all(c.clone()).list(&managed_selector(&acme)).await?.items.len();
            Ok((left == 0).then_some(()))
        })
        .await?;
        // globex is untouched.
        served_from(g, "shop.example.com", "/login", &globex_ns.name).await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &acme).await;
    delete_tgw(&c, &globex).await;
    acme_ns.cleanup().await?;
    globex_ns.cleanup().await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_namespace_goes_to_the_older_tenant_and_moves_when_it_lets_go() -> Result<()> {
    if skip_requested("a_claimed_namespace_goes_to_the_older_tenant_and_moves_when_it_lets_go") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("claim").await?;
    let sfx = &ns.name[ns.name.len() - 6..];
    let (first, second) = (format!("first-{sfx}"), format!("second-{sfx}"));
    deploy_echo(&ns, "login", 1).await?;
    create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
    create_tgw(&c, &first, serde_json::json!({"names": [ns.name]})).await?;
    // Creation timestamps have second resolution: make "second" clearly younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create_tgw(&c, &second, serde_json::json!({"names": [ns.name]})).await?;
    let result = guarded(async {
        let a = ready_gateway(&c, &first).await?;
        served_from(a, "shop.example.com", "/login", &ns.name).await?;
        let msg = wait_until(
            "second's conflict condition",
            Duration::from_secs(60),
            || async {
                let t = tgw_api(&c).get(&second).await?;
                Ok(condition(&t, "NamespacesClaimed")
                    .filter(|(s, _)| s == "False")
                    .map(|(_, m)| m))
            },
        )
        .await?;
        assert!(msg.contains(&ns.name) && msg.contains(&first), "{msg}");
        let t = tgw_api(&c).get(&second).await?;
        assert_eq!(t.data["status"]["conflicts"][0]["holder"], first.as_str());
        let rb = ns
            .api::<RoleBinding>()
            .get_opt(&format!("tgw-{second}"))
            .await?;
        assert!(
            rb.is_none(),
            "the loser must get no RoleBinding in the contested namespace"
        );
        let b = ready_gateway(&c, &second).await?;
        let (code, _) = get(b, "shop.example.com", "/login").await?;
        assert_eq!(
            code, 404,
            "second serves nothing from a namespace it does not hold"
        );
        served_from(a, "shop.example.com", "/login", &ns.name).await?;

        // The holder lets go: the namespace moves to the next claim.
        delete_tgw(&c, &first).await;
        served_from(b, "shop.example.com", "/login", &ns.name).await?;
        let rb = ns
            .api::<RoleBinding>()
            .get_opt(&format!("tgw-{second}"))
            .await?;
        assert!(rb.is_some(), "the new holder gets its RoleBinding");
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &first).await;
    delete_tgw(&c, &second).await;
    ns.cleanup().await?;
    result
}

/// Requests in a loop until stopped: (ok count, failure count, first failures).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_go_live_without_envoy_restarts_and_fail_no_requests() -> Result<()> {
    if skip_requested("changes_go_live_without_envoy_restarts_and_fail_no_requests") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("churn").await?;
    let tenant = format!("churn-{}", &ns.name[ns.name.len() - 6..]);
    deploy_echo(&ns, "login", 1).await?;
    deploy_echo(&ns, "other", 1).await?;
    create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
    // Two replicas, as by default: one pod's sidecar can restart while the other serves.
    create_tgw_with(&c, &tenant, serde_json::json!({"names": [ns.name]}), 2).await?;
    let result = guarded(async {
        let gw = ready_gateway(&c, &tenant).await?;
        served_from(gw, "shop.example.com", "/login", &ns.name).await?;
        let pods_before = gateway_pods(&c, &tenant).await?;
        assert_eq!(pods_before.len(), 2);

        // Continuous traffic to an unchanged route while Ingresses and
        // Services change and a backend scales.
        // Straight to each gateway pod (Envoy itself): zero failures. Through
        // the Service's NodePort (kube-proxy too): zero failed requests; see
        // `NODE_PORT_REFUSED_PER` for the connects kube-proxy may refuse.
        let direct0 = Traffic::start(
            pod_http_addr(&pods_before[0])?,
            "shop.example.com",
            "/login",
        );
        let direct1 = Traffic::start(
            pod_http_addr(&pods_before[1])?,
            "shop.example.com",
            "/login",
        );
        let traffic = Traffic::start(gw, "shop.example.com", "/login");
        create_ingress(&ns, "extra", "extra.example.com", "/", "other").await?;
        served_from(gw, "extra.example.com", "/x", &ns.name).await?;
        create_ingress(&ns, "extra", "extra.example.com", "/v2", "other").await?;
        wait_until("changed path", Duration::from_secs(30), || async {
            Ok((get(gw, "extra.example.com", "/x").await?.0 == 404
                && get(gw, "extra.example.com", "/v2").await?.0 == 200)
                .then_some(()))
        })
        .await?;
        ns.api::<Deployment>()
            .patch(
                "other",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"spec": {"replicas": 3}})),
            )
            .await?;
        wait_until(
            "3 backend pods answering",
            Duration::from_secs(120),
            || async {
                let mut pods = std::collections::BTreeSet::new();
                for _ in 0..30 {
                    let (code, body) = get(gw, "extra.example.com", "/v2").await?;
                    if code == 200 {
                        if let Some(p) = body.split_whitespace().find(|w| w.starts_with("pod=")) {
                            pods.insert(p.to_string());
                        }
                    }
                }
                Ok((pods.len() == 3).then_some(()))
            },
        )
        .await?;
        ns.api::<Ingress>()
            .delete("extra", &DeleteParams::default())
            .await?;
        wait_until("deleted Ingress gone", Duration::from_secs(30), || async {
            Ok((get(gw, "extra.example.com", "/v2").await?.0 == 404).then_some(()))
        })
        .await?;
        direct0
            .finish("gateway pod 1 during Ingress/Service/scale changes")
            .await?;
        direct1
            .finish("gateway pod 2 during Ingress/Service/scale changes")
            .await?;
        traffic
            .finish_via_node_port("Service traffic during Ingress/Service/scale changes")
            .await?;

        // Kill one pod's xDS sidecar: its Envoy keeps serving the last config
        // (traffic straight to that pod), and the Service keeps serving.
        let victim = &pods_before[0];
        let victim_name = victim.metadata.name.clone().unwrap_or_default();
        let direct = pod_http_addr(victim)?;
        let via_service = Traffic::start(gw, "shop.example.com", "/login");
        let via_pod = Traffic::start(direct, "shop.example.com", "/login");
        kill_sidecar(&tenant, &victim_name)?;
        let restarted = wait_until(
            "sidecar restarted and pod Ready again",
            Duration::from_secs(60),
            || async {
                let p = Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
                    .get(&victim_name)
                    .await?;
                let xds = pod_restarts(&p).iter().any(|(n, r)| n == "xds" && *r >= 1);
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                Ok((xds && ready).then_some(p))
            },
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        via_pod
            .finish("direct to the pod whose sidecar was killed")
            .await?;
        via_service
            .finish_via_node_port("Service traffic while a sidecar restarts")
            .await?;
        assert_eq!(restarted.metadata.uid, victim.metadata.uid);

        // Same pods; no Envoy ever restarted; the restarted sidecar follows changes again.
        let after = gateway_pods(&c, &tenant).await?;
        let uids = |ps: &[Pod]| {
            ps.iter()
                .map(|p| p.metadata.uid.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(uids(&after), uids(&pods_before), "gateway pods replaced");
        for p in &after {
            let envoy = pod_restarts(p)
                .into_iter()
                .find(|(n, _)| n == "envoy")
                .map(|(_, r)| r);
            assert_eq!(envoy, Some(0), "Envoy restarted");
        }
        create_ingress(&ns, "after", "after.example.com", "/", "login").await?;
        served_from(direct, "after.example.com", "/", &ns.name).await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &tenant).await;
    ns.cleanup().await?;
    result
}

/// Issue 15 item 6: the sidecar writes an Ingress's `status.loadBalancer`
/// only once its Envoy has ACKed the routes that serve it, so a client that
/// waits for the status and then sends its first request gets a 200, never
/// Envoy's 404. One replica: the rule is per pod (each pod's sidecar writes
/// after its own Envoy), so with several replicas behind one Service another
/// pod may still be a moment behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_status_appears_only_once_the_gateway_answers_it() -> Result<()> {
    if skip_requested("an_ingress_status_appears_only_once_the_gateway_answers_it") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("acked").await?;
    let tenant = format!("acked-{}", &ns.name[ns.name.len() - 6..]);
    deploy_echo(&ns, "login", 1).await?;
    create_ingress(&ns, "login", "shop.example.com", "/login", "login").await?;
    create_tgw_with(&c, &tenant, serde_json::json!({"names": [ns.name]}), 1).await?;
    let result = guarded(async {
        let gw = ready_gateway(&c, &tenant).await?;
        served_from(gw, "shop.example.com", "/login", &ns.name).await?;
        let want = format!("ns={} ", ns.name);
        for i in 0..10 {
            let (name, host) = (format!("web-{i}"), format!("s{i}.example.com"));
            create_ingress(&ns, &name, &host, "/", "login").await?;
            let api = ns.api::<Ingress>();
            // Polled every 10 ms (wait_until's 500 ms would hide a race).
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let has = api
                    .get(&name)
                    .await?
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|l| l.ingress)
                    .is_some_and(|v| !v.is_empty());
                if has {
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "{name} got no status in 30 s"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The first request after the status appeared.
            let (code, body) = get(gw, &host, "/").await?;
            anyhow::ensure!(
                code == 200 && body.contains(&want),
                "{name} had its status but {host} answered {code} {body}"
            );
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &tenant).await;
    ns.cleanup().await?;
    result
}
