//! Tests over the whole build: every object, labels, owners, order,
//! determinism, and the golden rendering.

use super::fixtures::{claims, ctx, tenant};
use super::*;
use crds::{EnvoyLogLevel, TcpProxy, TcpProxyBackend};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn summary(objs: &[Desired]) -> Vec<(String, String, Option<String>)> {
    objs.iter()
        .map(|o| {
            (
                o.kind().to_string(),
                o.name().to_string(),
                o.namespace().map(str::to_string),
            )
        })
        .collect()
}

fn full_tenant() -> TenantGateway {
    let mut gw = tenant("acme");
    gw.spec.ingress_class.create = Some(true);
    gw.spec.ingress_class.name = Some("acme".into());
    gw.spec.tcp_proxies = vec![TcpProxy {
        port: 5432,
        service: TcpProxyBackend {
            namespace: "acme-shop".into(),
            name: "db".into(),
            port: 5432,
        },
    }];
    gw
}

#[test]
fn build_all_objects_in_apply_order() {
    let objs = build_all(
        &full_tenant(),
        &claims(&["acme-shop", "acme-api"], &[("shared", "globex")]),
        &ctx(),
    )
    .unwrap();
    let ns = Some("tenant-gateway-system".to_string());
    let s = |k: &str, n: &str, ns: &Option<String>| (k.to_string(), n.to_string(), ns.clone());
    assert_eq!(
        summary(&objs),
        vec![
            s("ServiceAccount", "tgw-acme", &ns),
            s("Role", "tgw-acme-self", &ns),
            s("RoleBinding", "tgw-acme-self", &ns),
            s("RoleBinding", "tgw-acme", &Some("acme-api".into())),
            s("RoleBinding", "tgw-acme", &Some("acme-shop".into())),
            s("ConfigMap", "tgw-acme-envoy", &ns),
            s("ConfigMap", "tgw-acme-claims", &ns),
            s("Service", "tgw-acme", &ns),
            s("PodDisruptionBudget", "tgw-acme", &ns),
            s("Deployment", "tgw-acme", &ns),
            s("IngressClass", "acme", &None),
        ]
    );
}

#[test]
fn minimal_tenant_with_one_replica_has_no_pdb_or_class() {
    let mut gw = tenant("acme");
    gw.spec.replicas = Some(1);
    let objs = build_all(&gw, &claims(&[], &[("acme-shop", "globex")]), &ctx()).unwrap();
    let kinds: Vec<_> = objs.iter().map(Desired::kind).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "ConfigMap",
            "Service",
            "Deployment"
        ]
    );
    // The only RoleBinding is the gateway-namespace one.
    assert!(objs
        .iter()
        .filter(|o| o.kind() == "RoleBinding")
        .all(|o| o.name() == "tgw-acme-self"));
}

#[test]
fn every_object_is_labelled_and_owned() {
    let gw = full_tenant();
    let objs = build_all(&gw, &claims(&["acme-shop"], &[]), &ctx()).unwrap();
    for o in &objs {
        let m = o.metadata();
        let labels = m.labels.as_ref().unwrap();
        for (k, v) in [
            ("app.kubernetes.io/managed-by", "tenant-gateway"),
            ("tenantgateway.io/tenant", "acme"),
            ("app.kubernetes.io/name", "tenant-gateway"),
            ("app.kubernetes.io/instance", "acme"),
        ] {
            assert_eq!(
                labels.get(k).map(String::as_str),
                Some(v),
                "{} {k}",
                o.kind()
            );
        }
        let owners = m.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        let r = &owners[0];
        assert_eq!(
            (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.name.as_str(),
                Some(r.uid.as_str()),
                r.controller,
                r.block_owner_deletion
            ),
            (
                "tenantgateway.io/v1alpha1",
                "TenantGateway",
                "acme",
                gw.metadata.uid.as_deref(),
                Some(true),
                Some(true)
            ),
            "{}",
            o.kind()
        );
    }
}

#[test]
fn missing_uid_or_invalid_spec_is_an_error() {
    let mut gw = tenant("acme");
    gw.metadata.uid = None;
    let err = build_all(&gw, &claims(&[], &[]), &ctx()).unwrap_err();
    assert!(
        matches!(err, BuildError::MissingUid { ref kind, ref name } if kind == "TenantGateway" && name == "acme"),
        "{err}"
    );
    assert_eq!(err.metric_label(), "missing_metadata");

    let mut gw = tenant("acme");
    gw.spec.listeners.https_port = Some(8080);
    gw.spec.replicas = Some(-1);
    let err = build_all(&gw, &claims(&[], &[]), &ctx()).unwrap_err();
    let BuildError::Invalid(errs) = &err else {
        panic!("{err}")
    };
    assert_eq!(errs.len(), 2);
    assert!(
        err.to_string()
            .contains("spec.listeners.httpPort: must differ from spec.listeners.httpsPort"),
        "{err}"
    );
}

fn template(objs: &[Desired]) -> PodTemplateSpec {
    objs.iter()
        .find_map(|o| match o {
            Desired::Deployment(d) => d.spec.as_ref().map(|s| s.template.clone()),
            _ => None,
        })
        .unwrap()
}

fn claims_data(objs: &[Desired]) -> String {
    objs.iter()
        .find_map(|o| match o {
            Desired::ConfigMap(cm) if o.name().ends_with("-claims") => {
                cm.data.as_ref().map(|d| d["namespaces"].clone())
            }
            _ => None,
        })
        .unwrap()
}

#[test]
fn claim_changes_do_not_roll_pods_but_envoy_settings_do() {
    let gw = tenant("acme");
    let before = build_all(&gw, &claims(&["a"], &[]), &ctx()).unwrap();
    let after = build_all(&gw, &claims(&["a", "b"], &[("c", "globex")]), &ctx()).unwrap();
    assert_ne!(claims_data(&before), claims_data(&after));
    assert_eq!(
        template(&before),
        template(&after),
        "claims must not touch the pod template"
    );

    let mut tuned = gw.clone();
    tuned.spec.envoy.log_level = Some(EnvoyLogLevel::Debug);
    let tuned = build_all(&tuned, &claims(&["a"], &[]), &ctx()).unwrap();
    assert_ne!(template(&before), template(&tuned));
}

#[test]
fn output_is_deterministic() {
    let gw = full_tenant();
    let c = claims(&["z", "a", "m"], &[("q", "globex")]);
    let render =
        || serde_json::to_string(&dynamic_all(&build_all(&gw, &c, &ctx()).unwrap())).unwrap();
    let first = render();
    for _ in 0..3 {
        assert_eq!(render(), first);
    }
    // Claim order in a different (but equal) decision makes no difference.
    let c2 = claims(&["m", "z", "a"], &[("q", "globex")]);
    assert_eq!(
        serde_json::to_string(&dynamic_all(&build_all(&gw, &c2, &ctx()).unwrap())).unwrap(),
        first
    );
}

fn dynamic_all(objs: &[Desired]) -> Vec<kube::api::DynamicObject> {
    objs.iter().map(|o| o.to_dynamic().unwrap()).collect()
}

#[test]
fn dynamic_objects_and_api_resources() {
    let objs = build_all(&full_tenant(), &claims(&["acme-shop"], &[]), &ctx()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for o in &objs {
        let d = o.to_dynamic().unwrap();
        let ar = o.api_resource();
        let types = d.types.as_ref().unwrap();
        assert_eq!(types.api_version, ar.api_version, "{}", o.kind());
        assert_eq!(types.kind, o.kind());
        assert_eq!(d.metadata.name.as_deref(), Some(o.name()));
        assert_eq!(d.metadata.namespace.as_deref(), o.namespace());
        assert!(
            d.data.get("status").is_none(),
            "{}: never apply status",
            o.kind()
        );
        seen.insert((ar.group, ar.version, ar.kind, ar.plural));
    }
    let s = |g: &str, v: &str, k: &str, p: &str| (g.into(), v.into(), k.into(), p.into());
    let want: std::collections::BTreeSet<(String, String, String, String)> = [
        s("", "v1", "ServiceAccount", "serviceaccounts"),
        s("", "v1", "ConfigMap", "configmaps"),
        s("", "v1", "Service", "services"),
        s("rbac.authorization.k8s.io", "v1", "Role", "roles"),
        s(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
        ),
        s("apps", "v1", "Deployment", "deployments"),
        s(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        ),
        s("networking.k8s.io", "v1", "IngressClass", "ingressclasses"),
    ]
    .into();
    assert_eq!(seen, want);
}

/// Set `TG_UPDATE_GOLDEN=1` to rewrite the file after an intended change:
/// `TG_UPDATE_GOLDEN=1 cargo test -p tenant-gateway --lib build::tests::golden`
/// (never in CI: there the golden is compared, and the test fails if asked to rewrite).
#[test]
fn golden_rendering_of_a_full_tenant() {
    let update = std::env::var_os("TG_UPDATE_GOLDEN").is_some();
    assert!(
        !(update && std::env::var_os("CI").is_some()),
        "TG_UPDATE_GOLDEN is set in CI: goldens are compared there, never rewritten"
    );
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/build/testdata/acme.yaml");
    let objs = build_all(
        &full_tenant(),
        &claims(&["acme-api", "acme-shop"], &[("shared", "globex")]),
        &ctx(),
    )
    .unwrap();
    let rendered: String = objs
        .iter()
        .map(|o| {
            format!(
                "---\n{}",
                xds::yaml::to_string(&o.to_dynamic().unwrap()).unwrap()
            )
        })
        .collect();
    if update {
        std::fs::write(&path, &rendered).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == rendered,
        "{} differs from the build output; if the change is intended, run \
         TG_UPDATE_GOLDEN=1 cargo test -p tenant-gateway --lib build::tests::golden",
        path.display()
    );
}

#[test]
fn network_policy_only_when_enabled_and_only_the_serving_ports() {
    let mut gw = full_tenant();
    let none = build_all(&gw, &claims(&["acme-shop"], &[]), &ctx()).unwrap();
    assert!(!none.iter().any(|d| d.kind() == "NetworkPolicy"));
    gw.spec.network_policy = Some(crds::NetworkPolicySettings { enabled: true });
    let objs = build_all(&gw, &claims(&["acme-shop"], &[]), &ctx()).unwrap();
    let np = objs
        .iter()
        .find_map(|d| match d {
            Desired::NetworkPolicy(np) => Some(np),
            _ => None,
        })
        .expect("a NetworkPolicy");
    let spec = np.spec.as_ref().unwrap();
    assert_eq!(
        spec.pod_selector.as_ref().unwrap().match_labels,
        Some(super::meta::selector_labels("acme"))
    );
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    let ports: Vec<Option<IntOrString>> = spec.ingress.as_ref().unwrap()[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.port.clone())
        .collect();
    // Listeners, TCP proxy 5432, Envoy readiness, sidecar health and metrics;
    // never the admin port 9901.
    let want: Vec<Option<IntOrString>> = [5432, 8002, 8080, 8081, 8443, 9102]
        .into_iter()
        .map(|p| Some(IntOrString::Int(p)))
        .collect();
    assert_eq!(ports, want);
}

/// Stale deletion and the controller's watches cover exactly the kinds
/// built: every kind a fully featured tenant produces is in the table, once.
#[test]
fn every_built_kind_is_a_managed_kind() {
    let mut gw = full_tenant();
    gw.spec.network_policy = Some(crds::NetworkPolicySettings { enabled: true });
    gw.spec.replicas = None;
    gw.spec.autoscaling = Some(crds::AutoscalingSettings {
        min_replicas: Some(2),
        max_replicas: 4,
        target_cpu_utilization_percentage: None,
        ..Default::default()
    });
    let objs = build_all(&gw, &claims(&["acme-shop"], &[]), &ctx()).unwrap();
    let built: std::collections::BTreeSet<&str> = objs.iter().map(|d| d.kind()).collect();
    let table: std::collections::BTreeSet<&str> = MANAGED_KINDS.iter().map(|k| k.kind).collect();
    assert_eq!(table.len(), MANAGED_KINDS.len(), "a kind listed twice");
    assert_eq!(built, table, "built kinds vs MANAGED_KINDS");
    for k in MANAGED_KINDS {
        assert_eq!(k.api_resource().kind, k.kind);
    }
    for d in &objs {
        let row = MANAGED_KINDS.iter().find(|k| k.kind == d.kind()).unwrap();
        assert_eq!(row.api_resource(), d.api_resource(), "{}", d.kind());
    }
}

/// The controller re-reconciles on changes to these kinds only (as before the
/// table): the others are left to the periodic requeue.
#[test]
fn watched_managed_kinds() {
    let watched: Vec<&str> = MANAGED_KINDS
        .iter()
        .filter(|k| k.watched)
        .map(|k| k.kind)
        .collect();
    assert_eq!(
        watched,
        [
            "ServiceAccount",
            "RoleBinding",
            "ConfigMap",
            "Service",
            "Deployment"
        ]
    );
}
