//! Smoke tests of the cluster itself: each fails if the cluster is broken in a way the
//! tenant-gateway tests would trip over (scheduling, images, CNI, kube-proxy, RBAC,
//! TokenRequest). The garbage collector, PodSecurity admission and a pod reaching the
//! API server are checked by `hack/local-cluster up` itself (its self-check).
//!
//! Run: `hack/e2e` (starts and stops the local cluster), or with a running cluster
//! `cargo test -p tenant-gateway-e2e -- --test-threads=2`. `TG_E2E=0` skips them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{
    client_with_token, echo_container, http_get, node_internal_ip, running_pods, skip_requested,
    unique_suffix, wait_deployment_ready, wait_until, TestNamespace,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{ListParams, PostParams};
use kube::Api;
use serde_json::json;

const READY_TIMEOUT: Duration = Duration::from_secs(180);

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

/// (a) A Deployment of the echo image becomes Ready; its Service's EndpointSlice lists the
/// pod IP; the host reaches the pod by pod IP, ClusterIP and NodePort (loopback and node IP).
#[tokio::test]
async fn echo_deployment_reachable_by_pod_ip_cluster_ip_and_node_port() -> Result<()> {
    if skip_requested("echo_deployment_reachable_by_pod_ip_cluster_ip_and_node_port") {
        return Ok(());
    }
    let ns = TestNamespace::create("echo").await?;
    let pp = PostParams::default();
    let mut container = echo_container(&[]);
    container["ports"] = json!([{"name": "http", "containerPort": 8080}]);
    container["readinessProbe"] =
        json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1});
    let deploy: Deployment = obj(json!({
        "metadata": {"name": "echo"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "echo"}},
            "template": {
                "metadata": {"labels": {"app": "echo"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 2}
            }
        }
    }));
    ns.api::<Deployment>().create(&pp, &deploy).await?;
    let svc: Service = obj(json!({
        "metadata": {"name": "echo"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "echo"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]
        }
    }));
    let svc = ns.api::<Service>().create(&pp, &svc).await?;

    wait_deployment_ready(&ns.api(), "echo", READY_TIMEOUT).await?;
    let pods = running_pods(&ns.api::<Pod>(), "app=echo").await?;
    ensure!(
        pods.len() == 1,
        "expected 1 running pod, got {}",
        pods.len()
    );
    let pod_name = pods[0].metadata.name.clone().unwrap_or_default();
    let pod_ip: IpAddr = pods[0]
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .context("pod has no IP")?
        .parse()?;

    // The EndpointSlice controller lists the ready pod.
    let slices: Api<EndpointSlice> = ns.api();
    wait_until(
        "EndpointSlice listing the pod IP",
        READY_TIMEOUT,
        || async {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=echo"))
                .await?;
            let found = list.items.iter().flat_map(|s| s.endpoints.iter()).any(|e| {
                e.addresses.contains(&pod_ip.to_string())
                    && e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
            });
            Ok(found.then_some(()))
        },
    )
    .await?;

    let expect = format!(
        "pod={pod_name} ns={} request=GET /login HTTP/1.1\n",
        ns.name
    );
    let (code, body) = http_get(SocketAddr::new(pod_ip, 8080), "/login").await?;
    ensure!(code == 200, "pod IP answered {code}: {body}");
    ensure!(body == expect, "pod IP answered {body:?}, want {expect:?}");

    let spec = svc.spec.context("service has no spec")?;
    let node_port = spec
        .ports
        .as_ref()
        .and_then(|p| p[0].node_port)
        .context("no nodePort")? as u16;
    let cluster_ip: IpAddr = spec.cluster_ip.context("no clusterIP")?.parse()?;
    let node_ip: IpAddr = node_internal_ip(&ns.client()).await?.parse()?;
    let targets = [
        ("ClusterIP", SocketAddr::new(cluster_ip, 80)),
        (
            "NodePort on the node IP",
            SocketAddr::new(node_ip, node_port),
        ),
        (
            "NodePort on 127.0.0.1",
            SocketAddr::new([127, 0, 0, 1].into(), node_port),
        ),
    ];
    for (what, addr) in targets {
        // kube-proxy programs the rules shortly after the endpoints appear
        let body = wait_until(
            &format!("{what} {addr} to answer"),
            Duration::from_secs(60),
            || async {
                let (code, body) = http_get(addr, "/login").await?;
                Ok((code == 200).then_some(body))
            },
        )
        .await?;
        ensure!(
            body == expect,
            "{what} {addr} answered {body:?}, want {expect:?}"
        );
    }
    ns.cleanup().await
}

/// (b) A ServiceAccount bound to a reader ClusterRole only in namespace A can list
/// Ingresses and read Secrets in A and gets 403 in B — with a real token from the
/// TokenRequest API, and the same answer from a SubjectAccessReview.
#[tokio::test]
async fn service_account_rbac_is_scoped_to_its_namespace() -> Result<()> {
    if skip_requested("service_account_rbac_is_scoped_to_its_namespace") {
        return Ok(());
    }
    let mut a = TestNamespace::create("rbac-a").await?;
    let b = TestNamespace::create("rbac-b").await?;
    let pp = PostParams::default();
    let admin = a.client();

    let role_name = format!("tg-e2e-reader-{}", unique_suffix());
    let role: ClusterRole = obj(json!({
        "metadata": {"name": role_name, "labels": {e2e::E2E_LABEL: "true"}},
        "rules": [
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
        ]
    }));
    Api::<ClusterRole>::all(admin.clone())
        .create(&pp, &role)
        .await?;
    a.delete_cluster_role_at_end(&role_name);

    let sa: ServiceAccount = obj(json!({"metadata": {"name": "reader"}}));
    a.api::<ServiceAccount>().create(&pp, &sa).await?;
    let rb: RoleBinding = obj(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": a.name}]
    }));
    a.api::<RoleBinding>().create(&pp, &rb).await?;
    for ns in [&a, &b] {
        let s: Secret = obj(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}));
        ns.api::<Secret>().create(&pp, &s).await?;
    }

    let tr: TokenRequest = obj(json!({"spec": {"audiences": [], "expirationSeconds": 600}}));
    let tr = a
        .api::<ServiceAccount>()
        .create_token_request("reader", &pp, &tr)
        .await?;
    let token = tr.status.context("TokenRequest has no status")?.token;
    let sa_client = client_with_token(&token).await?;

    // Allowed in A (the RBAC cache may take a moment to see the new binding).
    let ing_a: Api<Ingress> = Api::namespaced(sa_client.clone(), &a.name);
    let sec_a: Api<Secret> = Api::namespaced(sa_client.clone(), &a.name);
    wait_until(
        "the SA to read in namespace A",
        Duration::from_secs(30),
        || async {
            ing_a.list(&ListParams::default()).await?;
            sec_a.get("s").await?;
            Ok(Some(()))
        },
    )
    .await?;

    // Forbidden in B, for real.
    let ing_b: Api<Ingress> = Api::namespaced(sa_client.clone(), &b.name);
    let sec_b: Api<Secret> = Api::namespaced(sa_client.clone(), &b.name);
    expect_forbidden(
        "list ingresses in B",
        ing_b.list(&ListParams::default()).await.map(|_| ()),
    )?;
    expect_forbidden("get secret in B", sec_b.get("s").await.map(|_| ()))?;
    expect_forbidden(
        "list secrets in B",
        sec_b.list(&ListParams::default()).await.map(|_| ()),
    )?;

    // And the authorizer says the same through SubjectAccessReview.
    let user = format!("system:serviceaccount:{}:reader", a.name);
    let sars = Api::<SubjectAccessReview>::all(admin.clone());
    for (ns, group, resource, verb, want) in [
        (&a.name, "networking.k8s.io", "ingresses", "list", true),
        (&a.name, "", "secrets", "get", true),
        (&b.name, "networking.k8s.io", "ingresses", "list", false),
        (&b.name, "", "secrets", "get", false),
    ] {
        let sar: SubjectAccessReview = obj(json!({
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", a.name), "system:authenticated"],
                "resourceAttributes": {"namespace": ns, "group": group, "resource": resource, "verb": verb}
            }
        }));
        let got = sars.create(&pp, &sar).await?;
        let allowed = got.status.map(|s| s.allowed).unwrap_or(false);
        ensure!(
            allowed == want,
            "SubjectAccessReview {verb} {resource} in {ns}: allowed={allowed}, want {want}"
        );
    }
    b.cleanup().await?;
    a.cleanup().await
}

fn expect_forbidden(what: &str, r: kube::Result<()>) -> Result<()> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "{what}: expected 403 Forbidden, got error {e}"
        )),
        Ok(()) => Err(anyhow::anyhow!(
            "{what}: expected 403 Forbidden, but it was allowed"
        )),
    }
}
