//! Tests over `config/`: RBAC least privilege, and every install and sample
//! manifest parsed into its typed object, strictly (a misspelt field that the
//! typed object drops fails the test).

use super::names::{GATEWAY_READER_CLUSTER_ROLE, READER_CLUSTER_ROLE};
use super::pss::restricted_violations;
use crate::claims::{arbitrate, claim_request};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const OPERATOR_CLUSTER_ROLE: &str = "tenant-gateway-operator";
const OPERATOR_NAMESPACE: &str = "tenant-gateway-system";
const OPERATOR_SA: &str = "tenant-gateway";

fn config_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(sub)
}

/// Every YAML document (as JSON values) of the `*.yaml` files directly in
/// `dir`, kustomization.yaml excluded.
fn documents(dir: &str) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML in config/{dir}");
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, doc) in xds::yaml::documents(&text).into_iter().enumerate() {
            let json = doc.unwrap_or_else(|e| panic!("{}#{i}: {e}", f.display()));
            out.push((format!("{}#{i}", f.display()), json));
        }
    }
    out
}

/// `sub` ⊆ `sup`: every field of `sub` is in `sup` with the same value
/// (`sup` may add defaults, such as the CRD types' empty sub-objects).
fn subset(sub: &Value, sup: &Value, path: &str) -> Result<(), String> {
    match (sub, sup) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let vb = b.get(k).ok_or_else(|| {
                    format!("{path}.{k}: unknown field (dropped by the typed object)")
                })?;
                subset(va, vb, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| subset(x, y, &format!("{path}[{i}]"))),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: {a} became {b}")),
    }
}

fn typed<K: DeserializeOwned + Serialize>(where_: &str, v: &Value) -> K {
    let k: K = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{where_}: {e}"));
    let back = serde_json::to_value(&k).unwrap();
    if let Err(e) = subset(v, &back, "") {
        panic!("{where_}: {e}");
    }
    k
}

/// Parsed manifests of one directory, by kind.
#[derive(Default)]
struct Parsed {
    namespaces: Vec<Namespace>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    ingresses: Vec<Ingress>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    tenant_gateways: Vec<crds::TenantGateway>,
}

fn parse(dir: &str) -> Parsed {
    let mut p = Parsed::default();
    for (at, v) in documents(dir) {
        match v["kind"].as_str().unwrap_or_default() {
            "Namespace" => p.namespaces.push(typed(&at, &v)),
            "Deployment" => p.deployments.push(typed(&at, &v)),
            "Service" => p.services.push(typed(&at, &v)),
            "Ingress" => p.ingresses.push(typed(&at, &v)),
            "ServiceAccount" => p.service_accounts.push(typed(&at, &v)),
            "ClusterRole" => p.cluster_roles.push(typed(&at, &v)),
            "ClusterRoleBinding" => p.cluster_role_bindings.push(typed(&at, &v)),
            "Role" => p.roles.push(typed(&at, &v)),
            "RoleBinding" => p.role_bindings.push(typed(&at, &v)),
            "TenantGateway" => p.tenant_gateways.push(typed(&at, &v)),
            other => panic!("{at}: unexpected kind {other:?}"),
        }
    }
    p
}

fn no_wildcards(v: &Value, path: &str) -> Result<(), String> {
    match v {
        Value::String(s) if s.contains('*') => Err(format!("{path}: {s:?}")),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| no_wildcards(x, &format!("{path}[{i}]"))),
        Value::Object(o) => o
            .iter()
            .try_for_each(|(k, x)| no_wildcards(x, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

fn rules_of<'a>(roles: &'a [ClusterRole], name: &str) -> &'a [PolicyRule] {
    roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("ClusterRole {name} missing"))
        .rules
        .as_deref()
        .unwrap_or_default()
}

#[test]
fn rbac_has_no_wildcards() {
    for (at, v) in documents("rbac") {
        no_wildcards(&v, "").unwrap_or_else(|e| panic!("{at}: wildcard at {e}"));
    }
    // The check can fail.
    let bad = serde_json::json!({"rules": [{"verbs": ["*"]}]});
    assert!(no_wildcards(&bad, "").is_err());
}

#[test]
fn operator_cluster_role_is_least_privilege() {
    let rbac = parse("rbac");
    let rules = rules_of(&rbac.cluster_roles, OPERATOR_CLUSTER_ROLE);
    let forbidden = [
        "secrets",
        "ingresses",
        "endpointslices",
        "pods",
        "endpoints",
    ];
    for r in rules {
        assert!(r.non_resource_urls.is_none(), "{r:?}");
        for res in r.resources.iter().flatten() {
            let base = res.split('/').next().unwrap_or_default();
            assert!(!forbidden.contains(&base), "operator may not touch {res}");
        }
        for verb in &r.verbs {
            assert!(
                !matches!(verb.as_str(), "escalate" | "impersonate"),
                "{verb} in {r:?}"
            );
        }
        if r.verbs.iter().any(|v| v == "bind") {
            assert_eq!(r.verbs, ["bind"], "bind stands alone: {r:?}");
            assert_eq!(
                r.resources.as_deref(),
                Some(&["clusterroles".to_string()][..])
            );
            assert_eq!(
                r.resource_names.as_deref(),
                Some(
                    &[
                        READER_CLUSTER_ROLE.to_string(),
                        GATEWAY_READER_CLUSTER_ROLE.to_string()
                    ][..]
                ),
                "bind must be limited to the reader ClusterRoles"
            );
        }
    }
    let grants = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
                && r.resource_names.is_none()
        })
    };
    // What the builders' objects need (and the `-self` Role's escalation check).
    for (group, resource, verbs) in [
        (
            "tenantgateway.io",
            "tenantgateways",
            &["get", "list", "watch", "patch", "update"][..],
        ),
        (
            "tenantgateway.io",
            "tenantgateways/status",
            &["get", "patch", "update"],
        ),
        ("", "namespaces", &["get", "list", "watch"]),
        ("", "nodes", &["get", "list", "watch"]),
        (
            "",
            "serviceaccounts",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "",
            "configmaps",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "",
            "services",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "apps",
            "deployments",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "policy",
            "poddisruptionbudgets",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "rbac.authorization.k8s.io",
            "roles",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        (
            "networking.k8s.io",
            "ingressclasses",
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        ("", "events", &["create", "patch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        (
            "gateway.networking.k8s.io",
            "gatewayclasses",
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        (
            "gateway.networking.k8s.io",
            "gatewayclasses/status",
            &["get", "patch", "update"],
        ),
        (
            "gateway.networking.k8s.io",
            "gateways",
            &["get", "list", "watch"],
        ),
        (
            "gateway.networking.k8s.io",
            "gateways/status",
            &["get", "patch", "update"],
        ),
        (
            "gateway.networking.k8s.io",
            "gateways/finalizers",
            &["update"],
        ),
    ] {
        for verb in verbs {
            assert!(
                grants(group, resource, verb),
                "operator lacks {verb} {group}/{resource}"
            );
        }
    }
    assert!(!grants(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "create"
    ));
    // Gateways belong to tenants; routes are read by each fleet alone.
    for verb in ["create", "update", "patch", "delete"] {
        assert!(
            !grants("gateway.networking.k8s.io", "gateways", verb),
            "{verb}"
        );
    }
    // Routes naming another tenant's Gateway, of every kind a fleet reads:
    // read, and their status written.
    use crate::gateway::routes::REPORTED_ROUTE_KINDS;
    for res in REPORTED_ROUTE_KINDS {
        for verb in ["get", "list", "watch"] {
            assert!(
                grants("gateway.networking.k8s.io", res, verb),
                "operator lacks {verb} {res}"
            );
        }
        for verb in ["get", "update", "patch"] {
            let status = format!("{res}/status");
            assert!(
                grants("gateway.networking.k8s.io", &status, verb),
                "operator lacks {verb} {status}"
            );
        }
    }
    // Routes are read (and their status written) only for the cross-tenant
    // entries: never written, nor a ReferenceGrant read.
    for res in REPORTED_ROUTE_KINDS.iter().copied() {
        for verb in ["create", "update", "patch", "delete", "deletecollection"] {
            assert!(
                !grants("gateway.networking.k8s.io", res, verb),
                "{verb} {res}"
            );
        }
        for verb in ["create", "delete"] {
            let status = format!("{res}/status");
            assert!(
                !grants("gateway.networking.k8s.io", &status, verb),
                "{verb} {status}"
            );
        }
    }
    for res in ["referencegrants", "backendtlspolicies"] {
        assert!(!grants("gateway.networking.k8s.io", res, "list"), "{res}");
    }
    let gateway_api_lines: BTreeSet<String> = grant_lines(rules)
        .into_iter()
        .filter(|l| l.contains("gateway.networking.k8s.io") && l.contains("routes"))
        .collect();
    let expected: BTreeSet<String> = REPORTED_ROUTE_KINDS
        .iter()
        .flat_map(|res| {
            ["get", "list", "watch"]
                .map(|v| format!("{v} gateway.networking.k8s.io/{res}"))
                .into_iter()
                .chain(
                    ["get", "update", "patch"]
                        .map(|v| format!("{v} gateway.networking.k8s.io/{res}/status")),
                )
        })
        .collect();
    assert_eq!(
        gateway_api_lines, expected,
        "the operator's route grants, nothing more"
    );
    // Exactly the route kinds a Gateway fleet reads (its reader role).
    let fleet_routes: BTreeSet<String> = rules_of(&rbac.cluster_roles, GATEWAY_READER_CLUSTER_ROLE)
        .iter()
        .flat_map(|r| r.resources.iter().flatten())
        .filter(|r| r.ends_with("routes"))
        .cloned()
        .collect();
    assert_eq!(
        fleet_routes,
        REPORTED_ROUTE_KINDS.iter().map(|r| r.to_string()).collect(),
        "a route kind the fleets read but the operator does not report on (or the reverse)"
    );
    assert!(!grants(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "create"
    ));

    // Bound to the operator's ServiceAccount, which the Deployment uses.
    let crb = rbac
        .cluster_role_bindings
        .iter()
        .find(|b| b.role_ref.name == OPERATOR_CLUSTER_ROLE)
        .unwrap();
    let subj = &crb.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (
            subj.kind.as_str(),
            subj.name.as_str(),
            subj.namespace.as_deref()
        ),
        ("ServiceAccount", OPERATOR_SA, Some(OPERATOR_NAMESPACE))
    );
    let sa = &rbac.service_accounts[0];
    assert_eq!(sa.metadata.name.as_deref(), Some(OPERATOR_SA));
    assert_eq!(sa.metadata.namespace.as_deref(), Some(OPERATOR_NAMESPACE));
}

#[test]
fn tenant_reader_cluster_role() {
    let rbac = parse("rbac");
    let granted = grant_lines(rules_of(&rbac.cluster_roles, READER_CLUSTER_ROLE));
    let mut want = event_grants();
    for (g, res) in [
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("", "services"),
        ("", "secrets"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        for v in ["get", "list", "watch"] {
            want.insert(format!("{v} {g}/{res}"));
        }
    }
    for v in ["update", "patch"] {
        want.insert(format!("{v} networking.k8s.io/ingresses/status"));
    }
    assert_eq!(granted, want, "exactly the reader's grants, nothing more");
}

/// `<verb> <group>/<resource>` for each rule's combinations.
fn grant_lines(rules: &[PolicyRule]) -> BTreeSet<String> {
    let mut granted = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    granted.insert(format!("{v} {g}/{res}"));
                }
            }
        }
    }
    granted
}

/// What every fleet's sidecar may do with Events (in its namespaces).
fn event_grants() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for g in ["", "events.k8s.io"] {
        for v in ["create", "patch"] {
            out.insert(format!("{v} {g}/events"));
        }
    }
    out
}

/// The Gateway fleets' reader: Gateway API objects and their status, and the
/// backends and Secrets they name; bound only by RoleBindings.
#[test]
fn gateway_reader_cluster_role() {
    let rbac = parse("rbac");
    let rules = rules_of(&rbac.cluster_roles, GATEWAY_READER_CLUSTER_ROLE);
    for r in rules {
        assert!(
            r.non_resource_urls.is_none() && r.resource_names.is_none(),
            "{r:?}"
        );
    }
    let granted = grant_lines(rules);
    let mut want = event_grants();
    let gw = "gateway.networking.k8s.io";
    let read = [
        ("", "services"),
        ("", "secrets"),
        ("discovery.k8s.io", "endpointslices"),
        (gw, "gateways"),
        (gw, "httproutes"),
        (gw, "grpcroutes"),
        (gw, "tlsroutes"),
        (gw, "tcproutes"),
        (gw, "udproutes"),
        (gw, "referencegrants"),
        (gw, "backendtlspolicies"),
    ];
    for (g, res) in read {
        for v in ["get", "list", "watch"] {
            want.insert(format!("{v} {g}/{res}"));
        }
        if g == gw && res != "referencegrants" {
            for v in ["get", "update", "patch"] {
                want.insert(format!("{v} {g}/{res}/status"));
            }
        }
    }
    assert_eq!(
        granted, want,
        "exactly the gateway reader's grants, nothing more"
    );
    assert!(
        rbac.cluster_role_bindings
            .iter()
            .all(|b| b.role_ref.name != GATEWAY_READER_CLUSTER_ROLE),
        "never bound cluster-wide"
    );
}

#[test]
fn leader_election_role() {
    let rbac = parse("rbac");
    let role = rbac
        .roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("tenant-gateway-leader-election"))
        .unwrap();
    assert_eq!(role.metadata.namespace.as_deref(), Some(OPERATOR_NAMESPACE));
    let rules = role.rules.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].api_groups.as_deref(),
        Some(&["coordination.k8s.io".to_string()][..])
    );
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["leases".to_string()][..])
    );
    assert_eq!(rules[0].verbs, ["get", "create", "update"]);
    let rb = rbac
        .role_bindings
        .iter()
        .find(|b| b.role_ref.name == "tenant-gateway-leader-election")
        .unwrap();
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(rb.subjects.as_ref().unwrap()[0].name, OPERATOR_SA);
}

#[test]
fn manager_manifests() {
    let m = parse("manager");
    let ns = &m.namespaces[0];
    assert_eq!(ns.metadata.name.as_deref(), Some(OPERATOR_NAMESPACE));
    assert_eq!(
        ns.metadata.labels.as_ref().unwrap()["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let d = &m.deployments[0];
    assert_eq!(d.metadata.namespace.as_deref(), Some(OPERATOR_NAMESPACE));
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(restricted_violations(pod), Vec::<String>::new());
    assert_eq!(pod.service_account_name.as_deref(), Some(OPERATOR_SA));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("localhost/tenant-gateway:dev"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(c.args.as_deref(), Some(&["operator".to_string()][..]));
    let env: BTreeSet<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    for want in ["POD_NAMESPACE", "TG_IMAGE", "TG_ENVOY_IMAGE"] {
        assert!(env.contains(want), "{want} missing");
    }
    let port = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .map(|g| (g.path.clone(), g.port.clone()))
    };
    let health = Some((
        Some("/healthz".to_string()),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()),
    ));
    assert_eq!(port(&c.readiness_probe), health);
    assert_eq!(port(&c.liveness_probe), health);
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
}

#[test]
fn samples_parse_validate_and_claim_disjointly() {
    let s = parse("samples");
    assert_eq!(s.tenant_gateways.len(), 2);
    for gw in &s.tenant_gateways {
        assert_eq!(super::validate(gw), Ok(()), "{:?}", gw.metadata.name);
        assert_eq!(gw.spec.service.type_, Some(crds::ServiceType::NodePort));
    }
    for d in &s.deployments {
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(
            restricted_violations(pod),
            Vec::<String>::new(),
            "{:?}",
            d.metadata
        );
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("localhost/echo:dev"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    }
    let requests: Vec<_> = s
        .tenant_gateways
        .iter()
        .map(|gw| claim_request(gw, &s.namespaces).unwrap())
        .collect();
    let decisions = arbitrate(&requests);
    let claimed = |t: &str| decisions[t].claimed.iter().cloned().collect::<Vec<_>>();
    assert_eq!(claimed("acme"), ["acme-shop"]);
    assert_eq!(claimed("globex"), ["globex-shop"]);
    assert!(decisions.values().all(|d| d.conflicts.is_empty()));

    let mut hosts = Vec::new();
    for ing in &s.ingresses {
        let rule = &ing.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        let path = &rule.http.as_ref().unwrap().paths[0];
        hosts.push((
            ing.metadata.namespace.clone().unwrap(),
            rule.host.clone().unwrap(),
            path.path.clone().unwrap(),
            path.path_type.clone(),
            path.backend.service.as_ref().unwrap().name.clone(),
        ));
    }
    hosts.sort();
    let h = |ns: &str| {
        (
            ns.to_string(),
            "shop.example.com".to_string(),
            "/login".to_string(),
            "Prefix".to_string(),
            "echo".to_string(),
        )
    };
    assert_eq!(hosts, [h("acme-shop"), h("globex-shop")]);
    let svc_ns: BTreeSet<_> = s
        .services
        .iter()
        .map(|svc| {
            (
                svc.metadata.namespace.clone().unwrap(),
                svc.metadata.name.clone().unwrap(),
            )
        })
        .collect();
    assert!(svc_ns.contains(&("acme-shop".into(), "echo".into())));
    assert!(svc_ns.contains(&("globex-shop".into(), "echo".into())));
}

#[test]
fn strict_parsing_catches_typos() {
    let v = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"selectr": {"a": "b"}}
    });
    let r = std::panic::catch_unwind(|| typed::<Service>("test", &v));
    assert!(r.is_err(), "a misspelt field must fail");
}

/// Each kustomization lists exactly the manifests of its directory.
#[test]
fn kustomizations_list_every_manifest() {
    for (dir, subdirs) in [
        ("", &["crd", "rbac", "manager"][..]),
        ("crd", &[]),
        ("rbac", &[]),
        ("manager", &[]),
        ("samples", &[]),
    ] {
        let path = config_dir(dir).join("kustomization.yaml");
        let k: Value = xds::yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(k["kind"], "Kustomization", "{}", path.display());
        let listed: BTreeSet<String> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        let mut want: BTreeSet<String> = subdirs.iter().map(|s| s.to_string()).collect();
        if subdirs.is_empty() {
            for e in std::fs::read_dir(config_dir(dir)).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".yaml") && name != "kustomization.yaml" {
                    want.insert(name);
                }
            }
        }
        assert_eq!(listed, want, "{}", path.display());
        for r in &listed {
            assert!(config_dir(dir).join(r).exists(), "{r} listed but missing");
        }
    }
}
