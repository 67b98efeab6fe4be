//! `spec.placement`, `spec.hostNetwork` and `spec.autoscaling` in the built
//! objects, their validation, and host-port arbitration between tenants.

use super::fixtures::{claims, ctx, gateway, tenant};
use super::pss::restricted_violations;
use super::*;
use crds::{AutoscalingSettings, PlacementSettings};
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

fn build(gw: &TenantGateway) -> Vec<Desired> {
    build_all(gw, &claims(&["acme-shop"], &[]), &ctx()).unwrap()
}

fn build_allowing_host_network(gw: &TenantGateway) -> Vec<Desired> {
    let ctx = BuildContext {
        allow_host_network: true,
        ..ctx()
    };
    build_all(gw, &claims(&["acme-shop"], &[]), &ctx).unwrap()
}

fn deployment(objs: &[Desired]) -> &Deployment {
    objs.iter()
        .find_map(|o| match o {
            Desired::Deployment(d) => Some(d),
            _ => None,
        })
        .expect("a Deployment")
}

fn pod(objs: &[Desired]) -> &PodSpec {
    deployment(objs)
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn hpa(objs: &[Desired]) -> Option<&HorizontalPodAutoscaler> {
    objs.iter().find_map(|o| match o {
        Desired::HorizontalPodAutoscaler(h) => Some(h),
        _ => None,
    })
}

fn pdb(objs: &[Desired]) -> Option<&PodDisruptionBudget> {
    objs.iter().find_map(|o| match o {
        Desired::PodDisruptionBudget(p) => Some(p),
        _ => None,
    })
}

fn envoy_container(objs: &[Desired]) -> &k8s_openapi::api::core::v1::Container {
    pod(objs)
        .containers
        .iter()
        .find(|c| c.name == names::ENVOY_CONTAINER)
        .unwrap()
}

fn errors_of(gw: &TenantGateway) -> Vec<String> {
    match validate(gw) {
        Ok(()) => vec![],
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn own_selector(objs: &[Desired]) -> LabelSelector {
    LabelSelector {
        match_labels: deployment(objs)
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .clone(),
        match_expressions: None,
    }
}

fn ingress_nodes() -> PlacementSettings {
    PlacementSettings {
        node_selector: [(
            "node-role.kubernetes.io/ingress".to_string(),
            "".to_string(),
        )]
        .into(),
        tolerations: vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("ingress".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }],
        affinity: Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "topology.kubernetes.io/zone".into(),
                            operator: "In".into(),
                            values: Some(vec!["a".into(), "b".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        topology_spread_constraints: None,
        priority_class_name: Some("ingress-critical".into()),
    }
}

#[test]
fn by_default_replicas_spread_softly_across_nodes_and_nothing_else_is_set() {
    let objs = build(&tenant("acme"));
    let p = pod(&objs);
    assert_eq!(
        p.topology_spread_constraints,
        Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(own_selector(&objs)),
            ..Default::default()
        }])
    );
    assert_eq!(p.node_selector, None);
    assert_eq!(p.tolerations, None);
    assert_eq!(p.affinity, None);
    assert_eq!(p.priority_class_name, None);
    assert_eq!(p.host_network, None);
    assert_eq!(p.dns_policy, None);
    assert!(hpa(&objs).is_none());
    assert_eq!(deployment(&objs).spec.as_ref().unwrap().replicas, Some(2));
}

#[test]
fn placement_reaches_the_pod_spec_of_every_fleet() {
    let mut gw = tenant("acme");
    gw.spec.placement = Some(ingress_nodes());
    let want = ingress_nodes();
    let web = gateway("acme-shop", "web", &[("http", 80, "HTTP")]);
    let gateway_fleet =
        build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx(), &web, &[]).unwrap();
    for objs in [build(&gw), gateway_fleet] {
        let p = pod(&objs);
        assert_eq!(p.node_selector.as_ref(), Some(&want.node_selector));
        assert_eq!(p.tolerations.as_ref(), Some(&want.tolerations));
        assert_eq!(p.affinity, want.affinity);
        assert_eq!(p.priority_class_name.as_deref(), Some("ingress-critical"));
        // The default spread stays when only other placement is set.
        assert_eq!(
            p.topology_spread_constraints.as_ref().unwrap()[0].label_selector,
            Some(own_selector(&objs))
        );
        // Placement is scheduling only: the pod still passes restricted PSS.
        assert_eq!(restricted_violations(p), Vec::<String>::new());
    }
}

#[test]
fn topology_spread_constraints_replace_the_default_and_get_the_fleet_selector() {
    let mut gw = tenant("acme");
    let zone = TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".into(),
        when_unsatisfiable: "DoNotSchedule".into(),
        ..Default::default()
    };
    let chosen = LabelSelector {
        match_labels: Some([("app".to_string(), "x".to_string())].into()),
        match_expressions: None,
    };
    let host = TopologySpreadConstraint {
        max_skew: 2,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "DoNotSchedule".into(),
        label_selector: Some(chosen.clone()),
        ..Default::default()
    };
    gw.spec.placement = Some(PlacementSettings {
        topology_spread_constraints: Some(vec![zone.clone(), host.clone()]),
        ..Default::default()
    });
    let objs = build(&gw);
    let got = pod(&objs).topology_spread_constraints.clone().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].topology_key, "topology.kubernetes.io/zone");
    assert_eq!(got[0].when_unsatisfiable, "DoNotSchedule");
    assert_eq!(got[0].label_selector, Some(own_selector(&objs)));
    // A constraint's own selector is kept.
    assert_eq!(got[1], host);

    gw.spec.placement = Some(PlacementSettings {
        topology_spread_constraints: Some(vec![]),
        ..Default::default()
    });
    assert_eq!(pod(&build(&gw)).topology_spread_constraints, None);
}

#[test]
fn autoscaling_builds_an_hpa_leaves_replicas_to_it_and_the_pdb_follows_its_minimum() {
    let mut gw = tenant("acme");
    gw.spec.autoscaling = Some(AutoscalingSettings {
        min_replicas: Some(3),
        max_replicas: 10,
        target_cpu_utilization_percentage: Some(60),
        scale_down_stabilization_seconds: Some(30),
    });
    let objs = build(&gw);
    let d = deployment(&objs);
    assert_eq!(
        d.spec.as_ref().unwrap().replicas,
        None,
        "the HPA owns replicas"
    );
    let h = hpa(&objs).expect("an HPA");
    assert_eq!(h.metadata.name, d.metadata.name);
    assert_eq!(h.metadata.namespace, d.metadata.namespace);
    assert_eq!(h.metadata.owner_references, d.metadata.owner_references);
    assert_eq!(h.metadata.labels, d.metadata.labels);
    let spec = h.spec.as_ref().unwrap();
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(
        spec.scale_target_ref.api_version.as_deref(),
        Some("apps/v1")
    );
    assert_eq!(Some(&spec.scale_target_ref.name), d.metadata.name.as_ref());
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 10));
    let metric = &spec.metrics.as_ref().unwrap()[0];
    let resource = metric.resource.as_ref().unwrap();
    assert_eq!(
        (metric.type_.as_str(), resource.name.as_str()),
        ("Resource", "cpu")
    );
    assert_eq!(resource.target.type_, "Utilization");
    assert_eq!(resource.target.average_utilization, Some(60));
    // The scale-down window and nothing else of the behavior: the API
    // server's default policies stay, and scaling up is not slowed.
    let behavior = spec.behavior.as_ref().expect("a behavior");
    assert_eq!(behavior.scale_up, None);
    let down = behavior.scale_down.as_ref().unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(30));
    assert_eq!((&down.policies, &down.select_policy), (&None, &None));
    // The HPA comes after the Deployment it scales.
    let kinds: Vec<&str> = objs.iter().map(|o| o.kind()).collect();
    let pos = |k| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos("HorizontalPodAutoscaler") > pos("Deployment"));
    // Utilization needs a CPU request: Envoy gets the default one.
    let requests = envoy_container(&objs)
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap();
    assert_eq!(requests.get("cpu"), Some(&Quantity("100m".into())));
    assert!(pdb(&objs).is_some(), "min 3: a PDB");

    // Minimum 1: no PDB (it would block drains); the user's own request is kept.
    gw.spec.autoscaling = Some(AutoscalingSettings {
        min_replicas: Some(1),
        max_replicas: 4,
        target_cpu_utilization_percentage: None,
        ..Default::default()
    });
    gw.spec.envoy.resources = Some(ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_string(), Quantity("250m".into())),
                ("memory".to_string(), Quantity("128Mi".into())),
            ]
            .into(),
        ),
        ..Default::default()
    });
    let objs = build(&gw);
    assert!(pdb(&objs).is_none(), "min 1: no PDB");
    let h = hpa(&objs).unwrap().spec.as_ref().unwrap();
    assert_eq!(
        h.metrics.as_ref().unwrap()[0]
            .resource
            .as_ref()
            .unwrap()
            .target
            .average_utilization,
        Some(80),
        "default target"
    );
    assert_eq!(
        h.behavior, None,
        "no window: the cluster's default behavior"
    );
    let requests = envoy_container(&objs)
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap();
    assert_eq!(requests.get("cpu"), Some(&Quantity("250m".into())));
    assert_eq!(requests.get("memory"), Some(&Quantity("128Mi".into())));

    // Without autoscaling Envoy's resources are exactly the spec's (none).
    assert_eq!(envoy_container(&build(&tenant("acme"))).resources, None);
}

#[test]
fn autoscaling_with_default_minimum_has_a_pdb_and_reaches_gateway_fleets() {
    let mut gw = tenant("acme");
    gw.spec.autoscaling = Some(AutoscalingSettings {
        min_replicas: None,
        max_replicas: 5,
        target_cpu_utilization_percentage: None,
        ..Default::default()
    });
    let web = gateway("acme-shop", "web", &[("http", 80, "HTTP")]);
    let objs = build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx(), &web, &[]).unwrap();
    let h = hpa(&objs).expect("the Gateway fleet has its own HPA");
    assert_eq!(h.metadata.namespace.as_deref(), Some("acme-shop"));
    assert_eq!(h.metadata.name, deployment(&objs).metadata.name);
    assert_eq!(h.spec.as_ref().unwrap().min_replicas, Some(2));
    assert!(pdb(&objs).is_some());
}

#[test]
fn invalid_placement_and_autoscaling_are_named_by_field() {
    let mut gw = tenant("acme");
    gw.spec.replicas = Some(3);
    gw.spec.autoscaling = Some(AutoscalingSettings {
        min_replicas: Some(6),
        max_replicas: 4,
        target_cpu_utilization_percentage: Some(0),
        scale_down_stabilization_seconds: Some(3601),
    });
    gw.spec.placement = Some(PlacementSettings {
        node_selector: [("bad key!".to_string(), "ok".to_string())].into(),
        tolerations: vec![
            Toleration {
                key: Some("k".into()),
                operator: Some("Exists".into()),
                value: Some("v".into()),
                ..Default::default()
            },
            Toleration {
                key: Some("k".into()),
                operator: Some("Sometimes".into()),
                effect: Some("NoWay".into()),
                ..Default::default()
            },
        ],
        topology_spread_constraints: Some(vec![TopologySpreadConstraint {
            max_skew: 0,
            topology_key: "".into(),
            when_unsatisfiable: "Maybe".into(),
            ..Default::default()
        }]),
        priority_class_name: Some("Not_A_Name".into()),
        affinity: None,
    });
    let errs = errors_of(&gw);
    for field in [
        "spec.replicas: must be unset when spec.autoscaling is set",
        "spec.autoscaling.minReplicas: must be between 1 and maxReplicas (4), got 6",
        "spec.autoscaling.targetCPUUtilizationPercentage",
        "spec.autoscaling.scaleDownStabilizationSeconds: must be between 0 and 3600, got 3601",
        "spec.placement.nodeSelector[\"bad key!\"]: invalid key",
        "spec.placement.tolerations[0].value: must be empty when operator is Exists",
        "spec.placement.tolerations[1].operator: \"Sometimes\" is not Exists or Equal",
        "spec.placement.tolerations[1].effect",
        "spec.placement.topologySpreadConstraints[0].maxSkew",
        "spec.placement.topologySpreadConstraints[0].topologyKey",
        "spec.placement.topologySpreadConstraints[0].whenUnsatisfiable",
        "spec.placement.priorityClassName",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(field)),
            "no error starting {field:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 12, "{errs:#?}");
    // build_all refuses it with the same errors.
    assert!(matches!(
        build_all(&gw, &claims(&["acme-shop"], &[]), &ctx()),
        Err(BuildError::Invalid(e)) if e.len() == 12
    ));
    // A valid placement passes.
    let mut ok = tenant("acme");
    ok.spec.placement = Some(ingress_nodes());
    assert_eq!(errors_of(&ok), Vec::<String>::new());
}

#[test]
fn host_network_needs_the_operator_to_allow_it() {
    let mut gw = tenant("acme");
    gw.spec.host_network = true;
    let err = build_all(&gw, &claims(&["acme-shop"], &[]), &ctx()).unwrap_err();
    let BuildError::Invalid(errs) = err else {
        panic!("not a spec error: {err}")
    };
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.hostNetwork");
    assert!(
        errs[0].message.contains("--allow-host-network"),
        "{}",
        errs[0]
    );
}

#[test]
fn host_network_pods_use_the_node_network_cluster_dns_and_replace_in_place() {
    let mut gw = tenant("acme");
    gw.spec.host_network = true;
    gw.spec.listeners.http_port = Some(80);
    gw.spec.listeners.https_port = Some(443);
    let objs = build_allowing_host_network(&gw);
    let p = pod(&objs);
    assert_eq!(p.host_network, Some(true));
    assert_eq!(p.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let ports: Vec<(String, i32)> = envoy_container(&objs)
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    for want in [
        ("http", 80),
        ("https", 443),
        ("envoy-ready", i32::from(names::ENVOY_HEALTH_PORT)),
        ("envoy-admin", i32::from(names::ADMIN_PORT)),
    ] {
        assert!(
            ports.contains(&(want.0.to_string(), want.1)),
            "{want:?} not in {ports:?}"
        );
    }
    let ru = deployment(&objs)
        .spec
        .as_ref()
        .unwrap()
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .clone()
        .unwrap();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(ru.max_surge, Some(IntOrString::Int(0)));
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(1)));
    // It is outside the restricted profile: that is why it is gated.
    assert!(restricted_violations(p)
        .iter()
        .any(|v| v.contains("hostNetwork")));

    // The same tenant's Gateway fleets stay on the pod network.
    let ctx = BuildContext {
        allow_host_network: true,
        ..ctx()
    };
    let web = gateway("acme-shop", "web", &[("http", 80, "HTTP")]);
    let gf = build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx, &web, &[]).unwrap();
    assert_eq!(pod(&gf).host_network, None);
    let gru = deployment(&gf)
        .spec
        .as_ref()
        .unwrap()
        .strategy
        .clone()
        .unwrap();
    assert_eq!(
        gru.rolling_update.unwrap().max_surge,
        Some(IntOrString::Int(1))
    );
    // Without hostNetwork: surge first, no extra ports.
    let plain = build(&tenant("acme"));
    assert!(!envoy_container(&plain)
        .ports
        .iter()
        .flatten()
        .any(|p| p.name.as_deref() == Some("envoy-admin")));
}

fn host_tenant(name: &str, created: i64, selector: &[(&str, &str)]) -> TenantGateway {
    let mut gw = tenant(name);
    gw.spec.host_network = true;
    gw.metadata.creation_timestamp = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
    ));
    if !selector.is_empty() {
        gw.spec.placement = Some(PlacementSettings {
            node_selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        });
    }
    gw
}

#[test]
fn two_host_network_tenants_on_the_same_nodes_conflict_and_the_older_keeps_them() {
    let acme = host_tenant("acme", 1_700_000_000, &[]);
    let mut globex = host_tenant("globex", 1_700_000_100, &[]);
    globex.spec.listeners.http_port = Some(9080);
    globex.spec.listeners.https_port = Some(9443);
    let plain = tenant("initech");
    for all in [vec![&acme, &globex, &plain], vec![&plain, &globex, &acme]] {
        assert_eq!(
            host_network_conflicts(&acme, &all),
            vec![],
            "older: no conflict"
        );
        let errs = host_network_conflicts(&globex, &all);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.hostNetwork");
        // Different listener ports still share the fixed ones.
        assert!(
            errs[0].message.starts_with("TenantGateway acme (older)"),
            "{}",
            errs[0]
        );
        assert!(errs[0]
            .message
            .contains("8002/TCP, 8081/TCP, 9102/TCP, 9901/TCP"));
        assert!(!errs[0].message.contains("9080"));
        assert_eq!(host_network_conflicts(&plain, &all), vec![]);
    }
    // Listener ports shared as well are named.
    let same_ports = host_tenant("hooli", 1_700_000_200, &[]);
    let errs = host_network_conflicts(&same_ports, &[&acme, &same_ports]);
    assert!(errs[0].message.contains("8080/TCP") && errs[0].message.contains("8443/TCP"));
}

#[test]
fn host_network_tenants_on_disjoint_node_selectors_do_not_conflict() {
    let acme = host_tenant("acme", 1_700_000_000, &[("pool", "acme")]);
    let globex = host_tenant("globex", 1_700_000_100, &[("pool", "globex")]);
    let all = [&acme, &globex];
    assert_eq!(host_network_conflicts(&globex, &all), vec![]);
    // A selector on another key may still overlap.
    let initech = host_tenant("initech", 1_700_000_200, &[("zone", "a")]);
    let errs = host_network_conflicts(&initech, &[&acme, &globex, &initech]);
    let named: Vec<&str> = errs
        .iter()
        .map(|e| e.message.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(named, ["acme", "globex"]);
    // A tenant being deleted no longer holds its ports.
    let mut leaving = host_tenant("acme", 1_700_000_000, &[("pool", "globex")]);
    leaving.metadata.deletion_timestamp = leaving.metadata.creation_timestamp.clone();
    assert_eq!(
        host_network_conflicts(&globex, &[&leaving, &globex]),
        vec![]
    );
}
