//! Authentication annotations on a live tenant (issue 13): an Ingress with
//! `auth-url` to an auth Service of its own tenant is served behind it, one with
//! basic auth from an `Opaque` htpasswd Secret too, and one whose `auth-url`
//! names another tenant's Service is refused (not served, a Warning Event
//! naming the annotation) while the tenant's other Ingresses keep serving.

use anyhow::{anyhow, Result};
use e2e::gateway::*;
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{HttpConn, HttpResponse};

const N: &str = "nginx.ingress.kubernetes.io/";

fn ingress(name: &str, host: &str, annotations: serde_json::Value) -> Ingress {
    obj(serde_json::json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "app", "port": {"name": "http"}}}}
        ]}}]}
    }))
}

async fn request(gw: SocketAddr, host: &str, headers: &[(&str, &str)]) -> Result<HttpResponse> {
    let mut conn = HttpConn::connect(gw).await?;
    Ok(conn.get_with(host, "/page", headers).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_url_to_the_tenants_service_and_basic_auth_are_enforced_and_another_tenants_service_is_refused(
) -> Result<()> {
    if skip_requested("auth_url_to_the_tenants_service_and_basic_auth_are_enforced_and_another_tenants_service_is_refused") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("auth").await?;
    let other = TestNamespace::create("authother").await?;
    let sfx = &ns.name[ns.name.len() - 6..];
    let (tenant, other_tenant) = (format!("auth-{sfx}"), format!("authother-{sfx}"));
    deploy_echo_with_env(
        &ns,
        "app",
        1,
        &[("ECHO_HEADERS", "x-auth-user,authorization")],
    )
    .await?;
    deploy_echo_with_env(&ns, "authz", 1, &[("AUTH_TOKEN", "good-token")]).await?;
    deploy_echo_with_env(&other, "authz", 1, &[("AUTH_TOKEN", "good-token")]).await?;
    let secret: Secret = obj(serde_json::json!({
        "metadata": {"name": "users"}, "type": "Opaque",
        // alice / s3cret, htpasswd -s
        "stringData": {"auth": "alice:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=\n"}
    }));
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    let apply = |i: Ingress| {
        let api = ns.api::<Ingress>();
        async move {
            let name = i.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &PatchParams::apply("e2e").force(), &Patch::Apply(&i))
                .await
        }
    };
    apply(ingress("open", "open.example.com", serde_json::json!({}))).await?;
    apply(ingress(
        "external",
        "external.example.com",
        serde_json::json!({
            format!("{N}auth-url"): format!("http://authz.{}.svc.cluster.local/check", ns.name),
            format!("{N}auth-response-headers"): "X-Auth-User",
        }),
    ))
    .await?;
    apply(ingress(
        "basic",
        "basic.example.com",
        serde_json::json!({
            format!("{N}auth-type"): "basic",
            format!("{N}auth-secret"): "users",
            format!("{N}auth-realm"): "E2E",
        }),
    ))
    .await?;
    apply(ingress(
        "cross",
        "cross.example.com",
        serde_json::json!({
            format!("{N}auth-url"): format!("http://authz.{}.svc.cluster.local/check", other.name),
        }),
    ))
    .await?;
    create_tgw_with(&c, &tenant, serde_json::json!({"names": [ns.name]}), 1).await?;
    create_tgw_with(
        &c,
        &other_tenant,
        serde_json::json!({"names": [other.name]}),
        1,
    )
    .await?;
    let result = guarded(async {
        let gw = ready_gateway(&c, &tenant).await?;
        served_from(gw, "open.example.com", "/page", &ns.name).await?;

        // auth-url: the subrequest goes to the tenant's authz pods.
        let denied = wait_until(
            "external.example.com answers 401 without a token",
            Duration::from_secs(60),
            || async {
                let r = request(gw, "external.example.com", &[]).await?;
                Ok((r.status == 401).then_some(r))
            },
        )
        .await?;
        assert!(
            !denied.body.contains("pod="),
            "the app must not answer a denied request: {}",
            denied.body
        );
        let r = request(
            gw,
            "external.example.com",
            &[("authorization", "Bearer wrong")],
        )
        .await?;
        assert_eq!(r.status, 401, "a wrong token: {}", r.body);
        let r = request(
            gw,
            "external.example.com",
            &[("authorization", "Bearer good-token")],
        )
        .await?;
        assert_eq!(r.status, 200, "the right token: {}", r.body);
        assert!(r.body.contains(&format!("ns={} ", ns.name)), "{}", r.body);
        assert!(
            r.body.contains("x-auth-user=e2e-user"),
            "auth-response-headers copied upstream: {}",
            r.body
        );

        // Basic auth from the Opaque Secret.
        let r = request(gw, "basic.example.com", &[]).await?;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"E2E\""));
        let r = request(
            gw,
            "basic.example.com",
            &[("authorization", "Basic YWxpY2U6d3Jvbmc=")],
        )
        .await?; // alice:wrong
        assert_eq!(r.status, 401, "a wrong password: {}", r.body);
        let r = request(
            gw,
            "basic.example.com",
            &[("authorization", "Basic YWxpY2U6czNjcmV0")],
        )
        .await?; // alice:s3cret
        assert_eq!(r.status, 200, "alice: {}", r.body);
        assert!(r.body.contains(&format!("ns={} ", ns.name)), "{}", r.body);

        // auth-url into another tenant: not served (fail closed), reported.
        let r = request(
            gw,
            "cross.example.com",
            &[("authorization", "Bearer good-token")],
        )
        .await?;
        assert_eq!(
            r.status, 404,
            "an Ingress refused for its auth-url must not be served: {}",
            r.body
        );
        let events: Api<Event> = Api::namespaced(c.clone(), &ns.name);
        let note = wait_until(
            "a Warning Event on Ingress cross",
            Duration::from_secs(60),
            || async {
                let list = events.list(&ListParams::default()).await?;
                Ok(list.items.into_iter().find_map(|e| {
                    let on_cross =
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("cross");
                    (on_cross && e.type_.as_deref() == Some("Warning"))
                        .then_some(e.note)
                        .flatten()
                }))
            },
        )
        .await?;
        assert!(
            note.contains("auth-url"),
            "the Event names the annotation: {note}"
        );
        assert!(
            note.contains("not one of the tenant's namespaces"),
            "{note}"
        );
        assert!(
            note.contains(&other.name),
            "the Event names the namespace: {note}"
        );

        // The rest keeps serving.
        served_from(gw, "open.example.com", "/page", &ns.name).await?;
        let r = request(
            gw,
            "external.example.com",
            &[("authorization", "Bearer good-token")],
        )
        .await?;
        assert_eq!(r.status, 200, "{}", r.body);
        Ok::<_, anyhow::Error>(())
    })
    .await;
    delete_tgw(&c, &tenant).await;
    delete_tgw(&c, &other_tenant).await;
    ns.cleanup().await?;
    other.cleanup().await?;
    result.map_err(|e| anyhow!("{e:#}"))
}
