//! `tenant-gateway audit` and the gateway's hardening, on a real cluster.
//!
//! Two tenants of our own (the cluster may be shared: the audit is filtered
//! to them), a clean audit, then one hand-made problem at a time: the audit
//! must report exactly it, with the object that causes it, and exit 1; once
//! removed, the audit is clean again. Then the gateway pod's hardening:
//! admitted under `restricted`, no port open beyond the documented ones, no
//! admin interface, the xDS socket in an emptyDir.

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e::gateway::{
    get, install_operator, obj, repo, tgw_api, wait_operator_rollout, API, SYSTEM_NS,
};
use e2e::{client, guarded, skip_requested, wait_until, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use operator::audit::{audit, AuditError, AuditOptions, Check, Report, Severity};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// Ports a gateway pod may answer on from outside: listeners, Envoy's
/// readiness listener, the sidecar's health and metrics.
const ALLOWED_OPEN_PORTS: [u16; 5] = [8080, 8443, 8002, 8081, 9102];

async fn create_tgw(c: &Client, name: &str, namespace: &str) -> Result<()> {
    let tgw: DynamicObject = obj(serde_json::json!({
        "apiVersion": API, "kind": "TenantGateway",
        "metadata": {"name": name},
        "spec": {"namespaces": {"names": [namespace]}, "replicas": 1, "service": {"type": "ClusterIP"}}
    }));
    tgw_api(c).create(&PostParams::default(), &tgw).await?;
    Ok(())
}

async fn wait_ready(c: &Client, name: &str) -> Result<()> {
    wait_until(
        &format!("TenantGateway {name} Ready"),
        Duration::from_secs(180),
        || async {
            let t = tgw_api(c).get(name).await?;
            let ready = t
                .data
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            Ok(ready.then_some(()))
        },
    )
    .await
}

struct Audit {
    client: Client,
    opts: AuditOptions,
}

/// (severity, check, object) of every finding: what the assertions compare.
type Summary = BTreeSet<(Severity, Check, String)>;

fn summary(r: &Report) -> Summary {
    r.findings
        .iter()
        .map(|f| (f.severity, f.check, f.object.to_string()))
        .collect()
}

impl Audit {
    async fn run(&self) -> Result<Report> {
        Ok(audit(&self.client, &self.opts).await?)
    }

    /// Polls until the audit reports exactly `want` (the API server and the
    /// operator need a moment), then checks the exit code.
    async fn expect(&self, what: &str, want: Summary) -> Result<Report> {
        // A mismatch is an Err so that wait_until reports the last one.
        let got = wait_until(what, Duration::from_secs(60), || async {
            let r = self.run().await?;
            let got = summary(&r);
            ensure!(got == want, "findings {got:#?}, want {want:#?}");
            Ok(Some(r))
        })
        .await;
        let report = got?;
        let code = report.exit_code(Severity::Medium);
        ensure!(
            code == u8::from(!want.is_empty()),
            "{what}: exit code {code}"
        );
        Ok(report)
    }

    async fn expect_clean(&self, what: &str) -> Result<Report> {
        self.expect(what, Summary::new()).await
    }
}

/// The binary, when built (`cargo build -p tenant-gateway`): run it as CI would.
fn audit_binary() -> Option<std::path::PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let bin = target.join("debug/tenant-gateway");
    bin.exists().then_some(bin)
}

fn run_binary(bin: &std::path::Path, tenants: &[&str], fail_on: &str) -> Result<(i32, String)> {
    let mut c = Command::new(bin);
    c.args(["audit", "-o", "json", "--fail-on", fail_on]);
    for t in tenants {
        c.args(["--tenant", t]);
    }
    if std::env::var_os("KUBECONFIG").is_none() {
        c.arg("--kubeconfig").arg(e2e::local_cluster_kubeconfig());
    }
    let out = c.output().context("running tenant-gateway audit")?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

async fn scale_operator(c: &Client, replicas: i32) -> Result<()> {
    Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS)
        .patch(
            "tenant-gateway",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    if replicas == 0 {
        wait_until("operator stopped", Duration::from_secs(60), || async {
            let pods = Api::<Pod>::namespaced(c.clone(), SYSTEM_NS)
                .list(&ListParams::default().labels(
                    "app.kubernetes.io/name=tenant-gateway,app.kubernetes.io/component=operator",
                ))
                .await?;
            Ok(pods.items.is_empty().then_some(()))
        })
        .await
    } else {
        wait_operator_rollout()
    }
}

fn set(items: &[(Severity, Check, String)]) -> Summary {
    items.iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_reports_each_hand_made_problem_and_nothing_else() -> Result<()> {
    if skip_requested("audit_reports_each_hand_made_problem_and_nothing_else") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let acme_ns = TestNamespace::create("audit-acme").await?;
    let globex_ns = TestNamespace::create("audit-globex").await?;
    let spare_ns = TestNamespace::create("audit-spare").await?;
    let sfx = acme_ns.name[acme_ns.name.len() - 6..].to_string();
    let (acme, globex) = (format!("acme-{sfx}"), format!("globex-{sfx}"));
    create_tgw(&c, &acme, &acme_ns.name).await?;
    create_tgw(&c, &globex, &globex_ns.name).await?;
    let extra_role = format!("audit-e2e-extra-{sfx}");
    let view_binding = format!("audit-e2e-view-{sfx}");

    let result = guarded(async {
        wait_ready(&c, &acme).await?;
        wait_ready(&c, &globex).await?;
        let a = Audit {
            client: c.clone(),
            opts: AuditOptions {
                operator_namespace: SYSTEM_NS.into(),
                tenants: [acme.clone(), globex.clone()].into(),
            },
        };
        let report = a.expect_clean("a clean start").await?;
        let acme_report = report
            .tenants
            .iter()
            .find(|t| t.tenant == acme)
            .ok_or_else(|| anyhow!("no report for {acme}"))?;
        assert_eq!(acme_report.claimed, std::slice::from_ref(&acme_ns.name));
        assert_eq!(acme_report.claimed_in_status, std::slice::from_ref(&acme_ns.name));
        // The API server was asked, and agrees with the model: own Secrets yes, others' no.
        let asked = |ns: &str| {
            acme_report.access_checks.iter().find(|c| {
                c.request.verb == "get"
                    && c.request.resource == "secrets"
                    && c.request.namespace.as_deref() == Some(ns)
            })
        };
        assert_eq!(asked(&acme_ns.name).and_then(|c| c.allowed), Some(true));
        assert_eq!(asked(&globex_ns.name).and_then(|c| c.allowed), Some(false));
        if let Some(bin) = audit_binary() {
            let (code, out) = run_binary(&bin, &[&acme, &globex], "medium")?;
            assert_eq!(code, 0, "binary on a clean cluster: {out}");
            let v: serde_json::Value = serde_json::from_str(&out)?;
            assert_eq!(v["findings"].as_array().map(Vec::len), Some(0), "{out}");
        } else {
            eprintln!("note: target/debug/tenant-gateway not built; the binary run is skipped");
        }

        // An auditor without rights gets an error (exit 2), never a clean report.
        let token = wait_until("a token for acme's default ServiceAccount", Duration::from_secs(30), || async {
            let tr: TokenRequest = obj(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 600}}));
            let t = acme_ns
                .api::<ServiceAccount>()
                .create_token_request("default", &PostParams::default(), &tr)
                .await?;
            Ok(t.status.map(|s| s.token))
        })
        .await?;
        let limited = e2e::client_with_token(&token).await?;
        match audit(&limited, &a.opts).await {
            Err(e @ AuditError::Read { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("403") && msg.contains("the auditor needs"), "{msg}");
            }
            other => bail!("an auditor without rights must fail: {other:?}"),
        }
        if let Some(bin) = audit_binary() {
            let out = Command::new(&bin)
                .args(["audit", "--kubeconfig", "/nonexistent/kubeconfig"])
                .output()?;
            assert_eq!(out.status.code(), Some(2), "{out:?}");
        }

        // 1. globex may read acme's Secrets through a hand-made RoleBinding.
        let steal: RoleBinding = obj(serde_json::json!({
            "metadata": {"name": "audit-e2e-steal"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tenant-gateway-tenant-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": format!("tgw-{globex}"), "namespace": SYSTEM_NS}]
        }));
        acme_ns
            .api::<RoleBinding>()
            .create(&PostParams::default(), &steal)
            .await?;
        let r = a
            .expect(
                "globex reads acme's Secrets",
                set(&[
                    (
                        Severity::Critical,
                        Check::PermissionOutsideClaims,
                        format!("RoleBinding/{}/audit-e2e-steal", acme_ns.name),
                    ),
                    (
                        Severity::High,
                        Check::NamespaceShared,
                        format!("Namespace/{}", acme_ns.name),
                    ),
                ]),
            )
            .await?;
        let f = &r.findings[0];
        assert_eq!(f.tenant.as_deref(), Some(globex.as_str()));
        assert!(f.message.contains("can read Secrets"), "{}", f.message);
        // The API server confirms the access the model found.
        let confirmed = r
            .tenants
            .iter()
            .find(|t| t.tenant == globex)
            .and_then(|t| {
                t.access_checks.iter().find(|c| {
                    c.request.verb == "get"
                        && c.request.resource == "secrets"
                        && c.request.namespace.as_deref() == Some(acme_ns.name.as_str())
                })
            })
            .and_then(|c| c.allowed);
        assert_eq!(confirmed, Some(true));
        if let Some(bin) = audit_binary() {
            let (code, out) = run_binary(&bin, &[&acme, &globex], "medium")?;
            assert_eq!(code, 1, "binary with a critical finding: {out}");
            let (code, _) = run_binary(&bin, &[&acme], "medium")?;
            assert_eq!(code, 0, "acme alone is clean: the binding is globex's");
        }
        acme_ns
            .api::<RoleBinding>()
            .delete("audit-e2e-steal", &DeleteParams::default())
            .await?;
        a.expect_clean("after removing the RoleBinding").await?;

        // 2. globex bound to `view` cluster-wide (no Secrets in view: high).
        let view: ClusterRoleBinding = obj(serde_json::json!({
            "metadata": {"name": view_binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": format!("tgw-{globex}"), "namespace": SYSTEM_NS}]
        }));
        Api::<ClusterRoleBinding>::all(c.clone())
            .create(&PostParams::default(), &view)
            .await?;
        a.expect(
            "globex bound to view",
            set(&[
                (
                    Severity::High,
                    Check::PermissionOutsideClaims,
                    format!("ClusterRoleBinding/{view_binding}"),
                ),
                (
                    Severity::High,
                    Check::NamespaceShared,
                    format!("Namespace/{}", acme_ns.name),
                ),
            ]),
        )
        .await?;
        Api::<ClusterRoleBinding>::all(c.clone())
            .delete(&view_binding, &DeleteParams::default())
            .await?;
        a.expect_clean("after removing the ClusterRoleBinding").await?;

        // 3. The operator holds a rule it was never shipped.
        let extra: ClusterRole = obj(serde_json::json!({
            "metadata": {"name": extra_role},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
        }));
        Api::<ClusterRole>::all(c.clone())
            .create(&PostParams::default(), &extra)
            .await?;
        let extra_binding: ClusterRoleBinding = obj(serde_json::json!({
            "metadata": {"name": extra_role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": extra_role},
            "subjects": [{"kind": "ServiceAccount", "name": "tenant-gateway", "namespace": SYSTEM_NS}]
        }));
        Api::<ClusterRoleBinding>::all(c.clone())
            .create(&PostParams::default(), &extra_binding)
            .await?;
        a.expect(
            "the operator with an extra ClusterRoleBinding",
            set(&[(
                Severity::High,
                Check::OperatorExcessPermission,
                format!("ClusterRoleBinding/{extra_role}"),
            )]),
        )
        .await?;
        Api::<ClusterRoleBinding>::all(c.clone())
            .delete(&extra_role, &DeleteParams::default())
            .await?;
        Api::<ClusterRole>::all(c.clone())
            .delete(&extra_role, &DeleteParams::default())
            .await?;
        a.expect_clean("after removing the operator's extra binding")
            .await?;

        // 4 and 5 need the operator stopped: it would delete the stale
        // binding and revert the Deployment on its next reconcile.
        scale_operator(&c, 0).await?;
        let stopped = async {
            // 4. An operator-labelled reader binding where globex holds nothing.
            let stale: RoleBinding = obj(serde_json::json!({
                "metadata": {"name": format!("tgw-{globex}"), "labels": {
                    "app.kubernetes.io/managed-by": "tenant-gateway",
                    "tenantgateway.io/tenant": globex,
                }},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tenant-gateway-tenant-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": format!("tgw-{globex}"), "namespace": SYSTEM_NS}]
            }));
            spare_ns
                .api::<RoleBinding>()
                .create(&PostParams::default(), &stale)
                .await?;
            a.expect(
                "a stale reader binding",
                set(&[(
                    Severity::Critical,
                    Check::StaleBinding,
                    format!("RoleBinding/{}/tgw-{globex}", spare_ns.name),
                )]),
            )
            .await?;
            spare_ns
                .api::<RoleBinding>()
                .delete(&format!("tgw-{globex}"), &DeleteParams::default())
                .await?;
            a.expect_clean("after removing the stale binding").await?;

            // 5. The gateway Deployment edited by hand.
            let deployments = Api::<Deployment>::namespaced(c.clone(), SYSTEM_NS);
            let host_network = |v: serde_json::Value| {
                serde_json::json!({"spec": {"template": {"spec": {"hostNetwork": v}}}})
            };
            deployments
                .patch(
                    &format!("tgw-{acme}"),
                    &PatchParams::default(),
                    &Patch::Merge(&host_network(serde_json::json!(true))),
                )
                .await?;
            let r = a
                .expect(
                    "hostNetwork on the gateway",
                    set(&[(
                        Severity::High,
                        Check::DeploymentDrift,
                        format!("Deployment/{SYSTEM_NS}/tgw-{acme}"),
                    )]),
                )
                .await?;
            assert!(
                r.findings[0]
                    .message
                    .starts_with("spec.template.spec.hostNetwork is true"),
                "{}",
                r.findings[0].message
            );
            deployments
                .patch(
                    &format!("tgw-{acme}"),
                    &PatchParams::default(),
                    &Patch::Merge(&host_network(serde_json::Value::Null)),
                )
                .await?;
            a.expect_clean("after reverting the Deployment").await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        let restarted = scale_operator(&c, 1).await;
        stopped?;
        restarted?;
        a.expect_clean("with the operator back").await?;
        Ok::<_, anyhow::Error>(())
    })
    .await;

    // Whatever happened: the operator runs, and what we made is gone.
    let _ = scale_operator(&c, 1).await;
    for name in [&view_binding, &extra_role] {
        let _ = Api::<ClusterRoleBinding>::all(c.clone())
            .delete(name, &DeleteParams::default())
            .await;
    }
    let _ = Api::<ClusterRole>::all(c.clone())
        .delete(&extra_role, &DeleteParams::default())
        .await;
    for t in [&acme, &globex] {
        let _ = tgw_api(&c).delete(t, &DeleteParams::background()).await;
    }
    acme_ns.cleanup().await?;
    globex_ns.cleanup().await?;
    spare_ns.cleanup().await?;
    result
}

/// Connects to every TCP port of `ip`; returns those that accept.
async fn open_ports(ip: std::net::IpAddr) -> Vec<u16> {
    use futures::StreamExt;
    futures::stream::iter(1..=u16::MAX)
        .map(|port| async move {
            let addr = SocketAddr::new(ip, port);
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_secs(2), connect).await {
                Ok(Ok(_)) => Some(port),
                _ => None,
            }
        })
        .buffer_unordered(512)
        .filter_map(|p| async move { p })
        .collect::<Vec<_>>()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_pod_is_restricted_and_exposes_no_xds_or_admin() -> Result<()> {
    if skip_requested("gateway_pod_is_restricted_and_exposes_no_xds_or_admin") {
        return Ok(());
    }
    install_operator()?;
    let c = client().await?;
    let ns = TestNamespace::create("harden").await?;
    let other = TestNamespace::create("harden-other").await?;
    let tenant = format!("harden-{}", &ns.name[ns.name.len() - 6..]);
    create_tgw(&c, &tenant, &ns.name).await?;
    let result = guarded(async {
        // The gateway namespace enforces the restricted profile...
        let sys = Api::<Namespace>::all(c.clone()).get(SYSTEM_NS).await?;
        let labels = sys.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );
        // ...and the gateway pod was admitted there and runs.
        wait_ready(&c, &tenant).await?;
        let pods = e2e::running_pods(
            &Api::<Pod>::namespaced(c.clone(), SYSTEM_NS),
            &format!("tenantgateway.io/tenant={tenant},app.kubernetes.io/component=envoy"),
        )
        .await?;
        let pod = pods
            .first()
            .ok_or_else(|| anyhow!("no running gateway pod"))?;
        let spec = pod.spec.clone().unwrap_or_default();

        // No container port for xDS: only the documented ones are declared.
        let declared: BTreeSet<u16> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| p.container_port as u16)
            .collect();
        assert!(
            declared.iter().all(|p| ALLOWED_OPEN_PORTS.contains(p)),
            "declared ports {declared:?}"
        );
        // The socket directory is an emptyDir shared by the two containers.
        let socket_volume = spec
            .containers
            .iter()
            .flat_map(|c| c.volume_mounts.iter().flatten())
            .find(|m| m.mount_path == operator::build::names::SOCKET_DIR)
            .map(|m| m.name.clone())
            .ok_or_else(|| anyhow!("no mount at the socket dir"))?;
        let vol = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == socket_volume)
            .ok_or_else(|| anyhow!("no volume {socket_volume}"))?;
        assert!(vol.empty_dir.is_some(), "{vol:?}");

        // From the host: the admin port is refused, and nothing but the
        // documented ports accepts a connection.
        let ip: std::net::IpAddr = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or_else(|| anyhow!("no pod IP"))?
            .parse()?;
        let admin = tokio::net::TcpStream::connect(SocketAddr::new(ip, 9901)).await;
        assert!(
            matches!(&admin, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "admin port: {admin:?}"
        );
        let open = open_ports(ip).await;
        assert!(!open.is_empty(), "the scan reaches the pod at all");
        assert!(
            open.iter().all(|p| ALLOWED_OPEN_PORTS.contains(p)),
            "open ports {open:?}"
        );
        assert!(open.contains(&8080), "HTTP listener open: {open:?}");

        // An Ingress cannot use another namespace's Service or Secret: the
        // names exist only in `other`, so the rule is reported and not served.
        let svc: Service = obj(serde_json::json!({
            "metadata": {"name": "payments"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }));
        other
            .api::<Service>()
            .create(&PostParams::default(), &svc)
            .await?;
        let secret: Secret = obj(serde_json::json!({
            "metadata": {"name": "wildcard"},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "not a cert", "tls.key": "not a key"}
        }));
        other
            .api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await?;
        let ing: Ingress = obj(serde_json::json!({
            "metadata": {"name": "cross"},
            "spec": {
                "tls": [{"hosts": ["pay.example.com"], "secretName": "wildcard"}],
                "rules": [{"host": "pay.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "payments", "port": {"name": "http"}}}}
            ]}}]}
        }));
        ns.api::<Ingress>()
            .create(&PostParams::default(), &ing)
            .await?;
        let reported = wait_until(
            "a Warning Event naming the missing Service",
            Duration::from_secs(60),
            || async {
                let events = ns
                    .api::<k8s_openapi::api::core::v1::Event>()
                    .list(&ListParams::default())
                    .await?;
                let notes: Vec<String> = events
                    .items
                    .iter()
                    .filter(|e| e.involved_object.name.as_deref() == Some("cross"))
                    .filter_map(|e| e.message.clone())
                    .collect();
                let all = notes.join("\n");
                Ok(all.contains("\"payments\" not found").then_some(all))
            },
        )
        .await?;
        assert!(reported.contains("in the Ingress's namespace"), "{reported}");
        // 404 until the sidecar has translated the Ingress; then 503: the
        // rule exists, its backend does not.
        let direct = SocketAddr::new(ip, 8080);
        wait_until("503 for the cross-namespace backend", Duration::from_secs(60), || async {
            let (code, body) = get(direct, "pay.example.com", "/").await?;
            ensure!(code == 404 || code == 503, "unexpected {code}: {body}");
            Ok((code == 503).then_some(()))
        })
        .await?;
        // The only TLS host's Secret lives in `other`: no HTTPS listener at all.
        let https = tokio::net::TcpStream::connect(SocketAddr::new(ip, 8443)).await;
        assert!(
            matches!(&https, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "HTTPS served with another namespace's Secret: {https:?}"
        );
        Ok::<_, anyhow::Error>(())
    })
    .await;
    let _ = tgw_api(&c)
        .delete(&tenant, &DeleteParams::background())
        .await;
    ns.cleanup().await?;
    other.cleanup().await?;
    result
}
