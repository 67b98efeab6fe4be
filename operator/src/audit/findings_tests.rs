//! Findings on fixtures: a clean two-tenant cluster built by the operator's
//! own builders from the shipped RBAC, then one change per test.

use super::findings::*;
use super::rbac::{ObjectRef, RbacObjects, Request};
use crate::build::{build_all, Desired};
use crate::claims::resolve_claims;
use crds::{TenantGateway, TenantGatewayStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, HostPathVolumeSource, Volume};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeSet;
use std::sync::Arc;

const OP_NS: &str = "tenant-gateway-system";

fn yaml_docs<T: serde::de::DeserializeOwned>(text: &str, kind: &str) -> Vec<T> {
    xds::yaml::documents(text)
        .into_iter()
        .map(Result::unwrap)
        .filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

use crate::test_objects::{namespace as ns, tenant as gw};

fn sa(tenant: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: format!("tgw-{tenant}"),
        namespace: Some(OP_NS.into()),
        api_group: None,
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        role_ref: role_ref(kind, role),
        subjects: Some(subjects),
    }
}

fn crb(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(subjects),
    }
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    PolicyRule {
        verbs: s(verbs),
        api_groups: Some(s(groups)),
        resources: Some(s(resources)),
        ..Default::default()
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(rules),
        aggregation_rule: None,
    }
}

/// acme holds acme-shop, globex holds globex-shop (and wants acme-shop too,
/// which acme, older, holds). Everything is as the operator and `config/`
/// make it, plus Kubernetes' default discovery bindings.
fn clean() -> Snapshot {
    let namespaces = ["acme-shop", "globex-shop", "spare", OP_NS]
        .map(ns)
        .to_vec();
    let mut gateways = vec![
        gw("acme", 1, &["acme-shop"]),
        gw("globex", 2, &["globex-shop", "acme-shop"]),
    ];
    let op_deploy: Deployment = yaml_docs(
        include_str!("../../../config/manager/deployment.yaml"),
        "Deployment",
    )
    .remove(0);
    let ctx = build_context_from(OP_NS, Some(&op_deploy)).unwrap();
    let all: Vec<Arc<TenantGateway>> = gateways.iter().cloned().map(Arc::new).collect();
    let mut rbac = RbacObjects {
        cluster_roles: yaml_docs(SHIPPED_OPERATOR_CLUSTER_ROLE, "ClusterRole")
            .into_iter()
            .chain(yaml_docs(SHIPPED_TENANT_READER, "ClusterRole"))
            .chain(yaml_docs(SHIPPED_GATEWAY_READER, "ClusterRole"))
            .chain([cluster_role(
                "system:basic-user",
                vec![rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                )],
            )])
            .collect(),
        cluster_role_bindings: yaml_docs(
            include_str!("../../../config/rbac/cluster_role_binding.yaml"),
            "ClusterRoleBinding",
        )
        .into_iter()
        .chain([crb(
            "system:basic-user",
            "system:basic-user",
            vec![Subject {
                kind: "Group".into(),
                name: "system:authenticated".into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                namespace: None,
            }],
        )])
        .collect(),
        roles: yaml_docs(SHIPPED_LEADER_ELECTION, "Role"),
        role_bindings: yaml_docs(SHIPPED_LEADER_ELECTION, "RoleBinding"),
    };
    let mut deployments = Vec::new();
    for g in &mut gateways {
        let name = g.metadata.name.clone().unwrap();
        let decision = resolve_claims(&all, &namespaces, OP_NS, &name).unwrap();
        for d in build_all(g, &decision, &ctx).unwrap() {
            match d {
                Desired::Role(r) => rbac.roles.push(r),
                Desired::RoleBinding(r) => rbac.role_bindings.push(r),
                Desired::Deployment(d) => deployments.push(d),
                _ => {}
            }
        }
        g.status = Some(TenantGatewayStatus {
            claimed_namespaces: decision.claimed.into_iter().collect(),
            conflicts: decision.conflicts,
            ..Default::default()
        });
    }
    Snapshot {
        operator_namespace: OP_NS.into(),
        gateways,
        namespaces,
        rbac,
        deployments,
        operator_deployment: Some(op_deploy),
    }
}

fn eval(snap: &Snapshot) -> Report {
    evaluate(snap, &[], &BTreeSet::new(), &Shipped::load().unwrap())
}

/// Findings other than the informational conflict the fixture always has.
fn findings(snap: &Snapshot) -> Vec<Finding> {
    eval(snap)
        .findings
        .into_iter()
        .filter(|f| f.check != Check::NamespaceConflict)
        .collect()
}

fn summary(fs: &[Finding]) -> Vec<(Severity, Check, Option<String>, String)> {
    fs.iter()
        .map(|f| (f.severity, f.check, f.tenant.clone(), f.object.to_string()))
        .collect()
}

fn t(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn clean_cluster_has_no_findings_and_exits_0() {
    let snap = clean();
    let report = eval(&snap);
    let sum = summary(&report.findings);
    assert_eq!(
        sum,
        vec![(
            Severity::Info,
            Check::NamespaceConflict,
            t("globex"),
            "TenantGateway/acme".into()
        )],
        "{report:#?}"
    );
    assert_eq!(report.exit_code(Severity::Medium), 0);
    assert_eq!(report.exit_code(Severity::Info), 1);
    let acme = &report.tenants[0];
    assert_eq!(acme.claimed, ["acme-shop"]);
    assert_eq!(acme.claimed_in_status, ["acme-shop"]);
    let globex = &report.tenants[1];
    assert_eq!(globex.claimed, ["globex-shop"]);
    assert_eq!(globex.lost[0].namespace, "acme-shop");
    assert_eq!(globex.lost[0].holder, "acme");
    // The reader binding, the -self binding and the ambient self-review rule.
    assert!(acme
        .permissions
        .iter()
        .all(|p| p.status != PermissionStatus::Unexpected));
    assert!(acme
        .permissions
        .iter()
        .any(|p| p.status == PermissionStatus::Ambient));
    assert_eq!(
        acme.permissions
            .iter()
            .filter(|p| p.status == PermissionStatus::Expected)
            .map(|p| p.binding.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        [
            "RoleBinding/acme-shop/tgw-acme",
            "RoleBinding/tenant-gateway-system/tgw-acme-self"
        ]
    );
    assert!(report
        .operator
        .permissions
        .iter()
        .all(|p| p.status != PermissionStatus::Unexpected));
    assert!(report.notes.is_empty());
}

#[test]
fn foreign_secret_read_is_critical_and_shares_the_namespace() {
    let mut snap = clean();
    snap.rbac.role_bindings.push(rb(
        "acme-shop",
        "by-hand",
        "ClusterRole",
        "tenant-gateway-tenant-reader",
        vec![sa("globex")],
    ));
    let fs = findings(&snap);
    assert_eq!(
        summary(&fs),
        vec![
            (
                Severity::Critical,
                Check::PermissionOutsideClaims,
                t("globex"),
                "RoleBinding/acme-shop/by-hand".into()
            ),
            (
                Severity::High,
                Check::NamespaceShared,
                None,
                "Namespace/acme-shop".into()
            ),
        ]
    );
    assert!(
        fs[0].message.contains("can read Secrets"),
        "{}",
        fs[0].message
    );
    assert!(fs[1].message.contains("acme, globex"), "{}", fs[1].message);
    assert_eq!(eval(&snap).exit_code(Severity::Critical), 1);
}

#[test]
fn cluster_wide_view_without_secrets_is_high() {
    let mut snap = clean();
    snap.rbac.cluster_roles.push(cluster_role(
        "view",
        vec![rule(
            &["get", "list", "watch"],
            &["", "networking.k8s.io"],
            &["services", "ingresses", "pods"],
        )],
    ));
    snap.rbac
        .cluster_role_bindings
        .push(crb("globex-view", "view", vec![sa("globex")]));
    let fs = findings(&snap);
    assert_eq!(
        summary(&fs),
        vec![
            (
                Severity::High,
                Check::PermissionOutsideClaims,
                t("globex"),
                "ClusterRoleBinding/globex-view".into()
            ),
            (
                Severity::High,
                Check::NamespaceShared,
                None,
                "Namespace/acme-shop".into()
            ),
        ]
    );
    assert!(fs[0].message.contains("cluster-wide"), "{}", fs[0].message);
    let report = eval(&snap);
    assert_eq!(report.exit_code(Severity::High), 1);
    assert_eq!(report.exit_code(Severity::Critical), 0);
}

#[test]
fn group_binding_reaches_every_tenant() {
    let mut snap = clean();
    snap.rbac.cluster_roles.push(cluster_role(
        "secret-reader",
        vec![rule(&["list"], &[""], &["secrets"])],
    ));
    snap.rbac.cluster_role_bindings.push(crb(
        "all-sas",
        "secret-reader",
        vec![Subject {
            kind: "Group".into(),
            name: format!("system:serviceaccounts:{OP_NS}"),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }],
    ));
    let fs = findings(&snap);
    let outside: Vec<_> = summary(&fs)
        .into_iter()
        .filter(|f| f.1 == Check::PermissionOutsideClaims)
        .collect();
    assert_eq!(
        outside,
        vec![
            (
                Severity::Critical,
                Check::PermissionOutsideClaims,
                t("acme"),
                "ClusterRoleBinding/all-sas".into()
            ),
            (
                Severity::Critical,
                Check::PermissionOutsideClaims,
                t("globex"),
                "ClusterRoleBinding/all-sas".into()
            ),
        ]
    );
    // The operator is in that group too: Secret reads it was never shipped.
    assert!(summary(&fs).contains(&(
        Severity::Critical,
        Check::OperatorExcessPermission,
        None,
        "ClusterRoleBinding/all-sas".into()
    )));
}

#[test]
fn extra_binding_inside_claims_is_medium() {
    let mut snap = clean();
    snap.rbac.cluster_roles.push(cluster_role(
        "pod-maker",
        vec![rule(&["create"], &[""], &["pods"])],
    ));
    snap.rbac.role_bindings.push(rb(
        "acme-shop",
        "pods",
        "ClusterRole",
        "pod-maker",
        vec![sa("acme")],
    ));
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::Medium,
            Check::ExtraBinding,
            t("acme"),
            "RoleBinding/acme-shop/pods".into()
        )]
    );
    let report = eval(&snap);
    assert_eq!(report.exit_code(Severity::Medium), 1);
    assert_eq!(report.exit_code(Severity::High), 0);
}

#[test]
fn stale_operator_binding_in_unclaimed_namespace() {
    let mut snap = clean();
    let mut stale = snap
        .rbac
        .role_bindings
        .iter()
        .find(|r| {
            r.metadata.name.as_deref() == Some("tgw-globex")
                && r.metadata.namespace.as_deref() == Some("globex-shop")
        })
        .unwrap()
        .clone();
    stale.metadata.namespace = Some("spare".into());
    snap.rbac.role_bindings.push(stale.clone());
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::Critical,
            Check::StaleBinding,
            t("globex"),
            "RoleBinding/spare/tgw-globex".into()
        )]
    );
    // Without the operator's labels it is a hand-made binding, not a stale one.
    stale.metadata.labels = None;
    let mut snap = clean();
    snap.rbac.role_bindings.push(stale);
    assert_eq!(
        summary(&findings(&snap))[0].1,
        Check::PermissionOutsideClaims
    );
}

#[test]
fn widened_reader_role_is_reported_on_the_role() {
    let mut snap = clean();
    let reader = snap
        .rbac
        .cluster_roles
        .iter_mut()
        .find(|c| c.metadata.name.as_deref() == Some("tenant-gateway-tenant-reader"))
        .unwrap();
    reader
        .rules
        .get_or_insert_with(Vec::new)
        .push(rule(&["create"], &[""], &["pods"]));
    assert_eq!(
        summary(&findings(&snap)),
        vec![
            (
                Severity::High,
                Check::ManagedRoleWidened,
                t("acme"),
                "ClusterRole/tenant-gateway-tenant-reader".into()
            ),
            (
                Severity::High,
                Check::ManagedRoleWidened,
                t("globex"),
                "ClusterRole/tenant-gateway-tenant-reader".into()
            ),
        ]
    );
    // The -self Role too.
    let mut snap = clean();
    let own: &mut Role = snap
        .rbac
        .roles
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some("tgw-acme-self"))
        .unwrap();
    own.rules
        .get_or_insert_with(Vec::new)
        .push(rule(&["list"], &[""], &["configmaps"]));
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::High,
            Check::ManagedRoleWidened,
            t("acme"),
            "Role/tenant-gateway-system/tgw-acme-self".into()
        )]
    );
}

#[test]
fn managed_binding_pointing_elsewhere_is_not_trusted() {
    let mut snap = clean();
    snap.rbac
        .cluster_roles
        .push(cluster_role("admin", vec![rule(&["*"], &["*"], &["*"])]));
    let b = snap
        .rbac
        .role_bindings
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some("tgw-acme"))
        .unwrap();
    b.role_ref.name = "admin".into();
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::Medium,
            Check::ExtraBinding,
            t("acme"),
            "RoleBinding/acme-shop/tgw-acme".into()
        )]
    );
}

fn gateway_deployment<'a>(snap: &'a mut Snapshot, tenant: &str) -> &'a mut Deployment {
    let name = format!("tgw-{tenant}");
    snap.deployments
        .iter_mut()
        .find(|d| d.metadata.name.as_deref() == Some(name.as_str()))
        .unwrap()
}

fn pod(d: &mut Deployment) -> &mut k8s_openapi::api::core::v1::PodSpec {
    d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
}

#[test]
fn deployment_drift_table() {
    type Edit = fn(&mut Deployment);
    let cases: Vec<(&str, Edit, Severity, &str)> = vec![
        (
            "hostNetwork",
            |d| pod(d).host_network = Some(true),
            Severity::High,
            "spec.template.spec.hostNetwork",
        ),
        (
            "hostPID",
            |d| pod(d).host_pid = Some(true),
            Severity::Critical,
            "spec.template.spec.hostPID",
        ),
        (
            "hostIPC",
            |d| pod(d).host_ipc = Some(true),
            Severity::High,
            "spec.template.spec.hostIPC",
        ),
        (
            "privileged",
            |d| {
                pod(d).containers[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .privileged = Some(true)
            },
            Severity::Critical,
            "spec.template.spec.containers[envoy].securityContext.privileged",
        ),
        (
            "capabilities",
            |d| {
                pod(d).containers[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .capabilities
                    .as_mut()
                    .unwrap()
                    .add = Some(vec!["NET_ADMIN".into()])
            },
            Severity::High,
            "spec.template.spec.containers[envoy].securityContext.capabilities.add",
        ),
        (
            "container securityContext",
            |d| {
                pod(d).init_containers.as_mut().unwrap()[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .allow_privilege_escalation = Some(true)
            },
            Severity::High,
            "spec.template.spec.initContainers[xds].securityContext",
        ),
        (
            "pod securityContext",
            |d| {
                pod(d).security_context.as_mut().unwrap().run_as_user = Some(0);
            },
            Severity::High,
            "spec.template.spec.securityContext",
        ),
        (
            "hostPath",
            |d| {
                pod(d).volumes.as_mut().unwrap().push(Volume {
                    name: "root".into(),
                    host_path: Some(HostPathVolumeSource {
                        path: "/".into(),
                        type_: None,
                    }),
                    ..Default::default()
                })
            },
            Severity::Critical,
            "spec.template.spec.volumes[root].hostPath",
        ),
        (
            "extra container",
            |d| {
                pod(d).containers.push(Container {
                    name: "miner".into(),
                    ..Default::default()
                })
            },
            Severity::High,
            "spec.template.spec.containers[miner]",
        ),
        (
            "missing sidecar",
            |d| pod(d).init_containers = None,
            Severity::High,
            "spec.template.spec.initContainers[xds]",
        ),
        (
            "image",
            |d| pod(d).containers[0].image = Some("evil/envoy:latest".into()),
            Severity::Medium,
            "spec.template.spec.containers[envoy].image",
        ),
        (
            "serviceAccountName",
            |d| pod(d).service_account_name = Some("default".into()),
            Severity::High,
            "spec.template.spec.serviceAccountName",
        ),
        (
            "automount",
            |d| pod(d).automount_service_account_token = Some(true),
            Severity::Medium,
            "spec.template.spec.automountServiceAccountToken",
        ),
    ];
    for (name, edit, severity, field) in cases {
        let mut snap = clean();
        edit(gateway_deployment(&mut snap, "acme"));
        let fs = findings(&snap);
        assert_eq!(
            summary(&fs),
            vec![(
                severity,
                Check::DeploymentDrift,
                t("acme"),
                "Deployment/tenant-gateway-system/tgw-acme".into()
            )],
            "{name}: {fs:#?}"
        );
        assert!(
            fs[0].message.starts_with(&format!("{field} is ")),
            "{name}: {}",
            fs[0].message
        );
    }
}

/// The expected images are what the operator's own flags make of its
/// Deployment: a flag there moves what every gateway pod must run.
#[test]
fn the_operator_deployments_image_flag_is_what_gateways_are_compared_to() {
    let mut snap = clean();
    let operator = snap.operator_deployment.as_mut().unwrap();
    pod(operator).containers[0]
        .args
        .get_or_insert_with(Vec::new)
        .extend(["--envoy-image".to_string(), "reg/envoy:2".to_string()]);
    let fs = findings(&snap);
    let drifted = |tenant: &str| {
        (
            Severity::Medium,
            Check::DeploymentDrift,
            t(tenant),
            format!("Deployment/tenant-gateway-system/tgw-{tenant}"),
        )
    };
    assert_eq!(
        summary(&fs),
        vec![drifted("acme"), drifted("globex")],
        "{fs:#?}"
    );
    assert!(fs.iter().all(|f| f
        .message
        .starts_with("spec.template.spec.containers[envoy].image is ")));

    // Pods running the image the flag names are what the operator builds.
    for tenant in ["acme", "globex"] {
        pod(gateway_deployment(&mut snap, tenant)).containers[0].image = Some("reg/envoy:2".into());
    }
    assert!(findings(&snap).is_empty(), "{:#?}", findings(&snap));
}

#[test]
fn images_are_compared_only_when_the_operator_is_found() {
    let mut snap = clean();
    pod(gateway_deployment(&mut snap, "acme")).containers[0].image = Some("other".into());
    snap.operator_deployment = None;
    let report = eval(&snap);
    assert!(findings(&snap).is_empty(), "{:?}", report.findings);
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
}

#[test]
fn missing_deployment_is_low() {
    let mut snap = clean();
    snap.deployments
        .retain(|d| d.metadata.name.as_deref() != Some("tgw-globex"));
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::Low,
            Check::DeploymentMissing,
            t("globex"),
            "Deployment/tenant-gateway-system/tgw-globex".into()
        )]
    );
}

#[test]
fn operator_excess_permission() {
    let mut snap = clean();
    snap.rbac.cluster_roles.push(cluster_role(
        "extra",
        vec![rule(&["list"], &[""], &["pods"])],
    ));
    let op = Subject {
        kind: "ServiceAccount".into(),
        name: "tenant-gateway".into(),
        namespace: Some(OP_NS.into()),
        api_group: None,
    };
    snap.rbac
        .cluster_role_bindings
        .push(crb("operator-extra", "extra", vec![op.clone()]));
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::High,
            Check::OperatorExcessPermission,
            None,
            "ClusterRoleBinding/operator-extra".into()
        )]
    );
    // An extra rule on the shipped ClusterRole itself, reading Secrets.
    let mut snap = clean();
    snap.rbac
        .cluster_roles
        .iter_mut()
        .find(|c| c.metadata.name.as_deref() == Some("tenant-gateway-operator"))
        .unwrap()
        .rules
        .get_or_insert_with(Vec::new)
        .push(rule(&["get"], &[""], &["secrets"]));
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::Critical,
            Check::OperatorExcessPermission,
            None,
            "ClusterRoleBinding/tenant-gateway-operator".into()
        )]
    );
    // Leader election rules are fine in the operator's namespace only.
    let mut snap = clean();
    snap.rbac.role_bindings.push(rb(
        "acme-shop",
        "leases-elsewhere",
        "ClusterRole",
        "leases",
        vec![op],
    ));
    snap.rbac.cluster_roles.push(cluster_role(
        "leases",
        vec![rule(
            &["get", "create", "update"],
            &["coordination.k8s.io"],
            &["leases"],
        )],
    ));
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::High,
            Check::OperatorExcessPermission,
            None,
            "RoleBinding/acme-shop/leases-elsewhere".into()
        )]
    );
}

#[test]
fn claims_status_drift_and_invalid_selector() {
    let mut snap = clean();
    snap.gateways[0].status.as_mut().unwrap().claimed_namespaces = vec!["spare".into()];
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::Low,
            Check::ClaimsStatusStale,
            t("acme"),
            "TenantGateway/acme".into()
        )]
    );
    let mut snap = clean();
    snap.gateways[0].spec.namespaces.selector = Some(
        serde_json::from_value(serde_json::json!({
            "matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]
        }))
        .unwrap(),
    );
    // Its bindings (still in place) stay trusted for the namespaces in status,
    // and arbitration keeps them its own, so globex does not win acme-shop
    // (two tenants never hold one namespace): only the invalid spec is reported.
    assert_eq!(
        summary(&findings(&snap)),
        vec![(
            Severity::Medium,
            Check::InvalidTenantGateway,
            t("acme"),
            "TenantGateway/acme".into()
        )]
    );
}

#[test]
fn access_reviews_confirm_the_model() {
    let snap = clean();
    let plan = plan_access_checks(&snap, &BTreeSet::new());
    let find = |tenant: Option<&str>, req: &Request| {
        plan.iter()
            .find(|c| c.tenant.as_deref() == tenant && c.request == *req)
            .unwrap_or_else(|| panic!("{req} for {tenant:?} not planned"))
            .expected
    };
    assert!(find(
        Some("acme"),
        &Request::new("get", "", "secrets", Some("acme-shop"))
    ));
    assert!(!find(
        Some("acme"),
        &Request::new("get", "", "secrets", Some("globex-shop"))
    ));
    assert!(!find(
        Some("globex"),
        &Request::new("list", "networking.k8s.io", "ingresses", Some("acme-shop"))
    ));
    assert!(!find(
        Some("acme"),
        &Request::new("list", "", "secrets", None)
    ));
    assert!(!find(
        Some("acme"),
        &Request::new("create", "", "pods", Some("acme-shop"))
    ));
    assert!(!find(None, &Request::new("list", "", "secrets", None)));
    let acme = &plan
        .iter()
        .find(|c| c.tenant.as_deref() == Some("acme"))
        .unwrap();
    assert_eq!(
        acme.user,
        "system:serviceaccount:tenant-gateway-system:tgw-acme"
    );
    assert!(acme.groups.contains(&"system:serviceaccounts".to_string()));

    // The API server agrees: no findings. It allows what the model does not:
    // critical for Secrets. It denies what the model allows: info.
    let answer = |c: &AccessCheck, allowed: bool| AccessCheck {
        allowed: Some(allowed),
        ..c.clone()
    };
    let agreed: Vec<_> = plan.iter().map(|c| answer(c, c.expected)).collect();
    let shipped = Shipped::load().unwrap();
    let r = evaluate(&snap, &agreed, &BTreeSet::new(), &shipped);
    assert!(r
        .findings
        .iter()
        .all(|f| f.check != Check::AccessReviewMismatch));
    let mut disagreed = agreed.clone();
    let i = plan
        .iter()
        .position(|c| {
            c.tenant.as_deref() == Some("globex")
                && c.request == Request::new("get", "", "secrets", Some("acme-shop"))
        })
        .unwrap();
    disagreed[i] = answer(&plan[i], true);
    let j = plan
        .iter()
        .position(|c| {
            c.tenant.as_deref() == Some("acme")
                && c.request == Request::new("get", "", "secrets", Some("acme-shop"))
        })
        .unwrap();
    disagreed[j] = answer(&plan[j], false);
    let r = evaluate(&snap, &disagreed, &BTreeSet::new(), &shipped);
    let mismatches: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.check == Check::AccessReviewMismatch)
        .map(|f| (f.severity, f.tenant.clone()))
        .collect();
    assert_eq!(
        mismatches,
        vec![
            (Severity::Critical, t("globex")),
            (Severity::Info, t("acme"))
        ]
    );
}

#[test]
fn tenant_filter_limits_tenants_and_sharing() {
    let mut snap = clean();
    snap.rbac.role_bindings.push(rb(
        "acme-shop",
        "by-hand",
        "ClusterRole",
        "tenant-gateway-tenant-reader",
        vec![sa("globex")],
    ));
    let only_acme: BTreeSet<String> = ["acme".to_string()].into();
    let r = evaluate(&snap, &[], &only_acme, &Shipped::load().unwrap());
    assert_eq!(r.tenants.len(), 1);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(plan_access_checks(&snap, &only_acme)
        .iter()
        .all(|c| c.tenant.as_deref() != Some("globex")));
}

#[test]
fn exit_code_follows_the_threshold() {
    let finding = |severity| Finding {
        severity,
        check: Check::ExtraBinding,
        tenant: None,
        object: ObjectRef::new("RoleBinding", Some("a"), "b"),
        message: String::new(),
        details: vec![],
    };
    let mut report = eval(&clean());
    report.findings = vec![finding(Severity::Low), finding(Severity::High)];
    let table = [
        (Severity::Info, 1),
        (Severity::Low, 1),
        (Severity::Medium, 1),
        (Severity::High, 1),
        (Severity::Critical, 0),
    ];
    for (fail_on, want) in table {
        assert_eq!(report.exit_code(fail_on), want, "--fail-on {fail_on}");
    }
    report.findings.clear();
    assert_eq!(report.exit_code(Severity::Info), 0);
    assert_eq!(report.max_severity(), None);
}

#[test]
fn shipped_manifests_parse() {
    let s = Shipped::load().unwrap();
    assert!(!s.operator_rules.is_empty());
    assert_eq!(s.leader_election_rules.len(), 1);
    assert!(s.reader_rules.iter().any(super::rbac::rule_reads_secrets));
    assert!(!s.operator_rules.iter().any(super::rbac::rule_reads_secrets));
}

#[test]
fn report_renders_in_every_format() {
    let mut snap = clean();
    snap.rbac.role_bindings.push(rb(
        "acme-shop",
        "by-hand",
        "ClusterRole",
        "tenant-gateway-tenant-reader",
        vec![sa("globex")],
    ));
    let report = eval(&snap);
    let table = super::report::render(&report, super::OutputFormat::Table).unwrap();
    assert!(
        table
            .contains("critical  permission-outside-claims  globex  RoleBinding/acme-shop/by-hand"),
        "{table}"
    );
    assert!(table.starts_with("TENANT"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&super::report::render(&report, super::OutputFormat::Json).unwrap())
            .unwrap();
    assert_eq!(json["findings"][0]["check"], "permission-outside-claims");
    assert_eq!(json["findings"][0]["severity"], "critical");
    assert_eq!(json["findings"][0]["object"]["namespace"], "acme-shop");
    assert_eq!(json["tenants"][0]["claimed"][0], "acme-shop");
    let yaml: serde_json::Value =
        xds::yaml::from_str(&super::report::render(&report, super::OutputFormat::Yaml).unwrap())
            .unwrap();
    assert_eq!(yaml["findings"][0]["object"]["name"], "by-hand");
    let clean_table = super::report::table(&eval(&clean()));
    assert!(clean_table.contains("namespace-conflict"), "{clean_table}");
}

/// The clean cluster plus acme's Gateway `web` in acme-shop, its fleet's
/// RBAC as the operator builds it.
fn with_gateway_fleet(namespace: &str) -> Snapshot {
    let mut snap = clean();
    let all: Vec<Arc<TenantGateway>> = snap.gateways.iter().cloned().map(Arc::new).collect();
    let decision = resolve_claims(&all, &snap.namespaces, OP_NS, "acme").unwrap();
    let acme = snap.gateways[0].clone();
    let web = crate::build::fixtures::gateway(namespace, "web", &[("http", 80, "HTTP")]);
    let ctx = crate::build::BuildContext::with_defaults(OP_NS);
    let fleet = crate::build::build_gateway_fleet(&acme, &decision, &ctx, &web, &snap.namespaces);
    for d in fleet.unwrap() {
        match d {
            Desired::Role(r) => snap.rbac.roles.push(r),
            Desired::RoleBinding(r) => snap.rbac.role_bindings.push(r),
            _ => {}
        }
    }
    snap
}

fn fleet_sa(namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: "web-tenant-gateway".into(),
        namespace: Some(namespace.into()),
        api_group: None,
    }
}

#[test]
fn a_gateway_fleet_as_built_has_no_findings() {
    assert_eq!(summary(&findings(&with_gateway_fleet("acme-shop"))), vec![]);
}

#[test]
fn a_gateway_fleet_with_a_cluster_scoped_grant_is_critical() {
    let mut snap = with_gateway_fleet("acme-shop");
    snap.rbac.cluster_role_bindings.push(crb(
        "fleet-wide",
        "tenant-gateway-gateway-reader",
        vec![fleet_sa("acme-shop")],
    ));
    let fs = findings(&snap);
    assert_eq!(
        summary(&fs),
        vec![(
            Severity::Critical,
            Check::PermissionOutsideClaims,
            t("acme"),
            "ClusterRoleBinding/fleet-wide".to_string()
        )]
    );
    assert!(
        fs[0].message.contains("acme-shop/web-tenant-gateway"),
        "{}",
        fs[0].message
    );
    assert!(fs[0].message.contains("cluster"), "{}", fs[0].message);
}

#[test]
fn a_gateway_fleet_left_in_a_namespace_the_tenant_lost_is_reported() {
    // "spare" is nobody's: the fleet's -self binding there is outside acme's claims.
    let fs = findings(&with_gateway_fleet("spare"));
    let objects: Vec<String> = fs
        .iter()
        .filter(|f| f.check == Check::PermissionOutsideClaims)
        .map(|f| f.object.to_string())
        .collect();
    assert_eq!(
        objects,
        ["RoleBinding/spare/web-tenant-gateway-self"],
        "{fs:#?}"
    );
}
