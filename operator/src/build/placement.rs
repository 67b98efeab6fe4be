//! Where a tenant's gateway pods run and how many: `spec.placement`
//! (node selector, tolerations, affinity, topology spread, priority class),
//! `spec.hostNetwork` and `spec.autoscaling` (a HorizontalPodAutoscaler; the
//! PodDisruptionBudget follows its lower bound).
//!
//! Placement and autoscaling apply to every fleet of the tenant; hostNetwork
//! to the tenant's own (Ingress) fleet only: a Gateway fleet's listener ports
//! come from its Gateway, and two fleets of one tenant on one node would
//! collide on the host's ports.

use super::meta::Fleet;
use super::names::{ADMIN_PORT, ENVOY_HEALTH_PORT, HEALTH_PORT, METRICS_PORT};
use super::validate::{dns1123_subdomain, label_value, qualified_name, SpecError};
use crds::{AutoscalingSettings, TenantGateway};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{PodSpec, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// The DNS policy a hostNetwork pod needs to resolve cluster names.
pub const HOST_NETWORK_DNS_POLICY: &str = "ClusterFirstWithHostNet";

/// Whether this fleet's pods run in the node's network namespace.
pub fn uses_host_network(t: &Fleet<'_>) -> bool {
    t.gw.spec.host_network && t.gateway_fleet().is_none()
}

/// The replicas the Deployment asks for: `None` when an autoscaler owns them.
pub fn deployment_replicas(gw: &TenantGateway) -> Option<i32> {
    match &gw.spec.autoscaling {
        Some(_) => None,
        None => Some(
            gw.spec
                .replicas
                .unwrap_or(super::workload::DEFAULT_REPLICAS),
        ),
    }
}

/// The fewest replicas the fleet runs with (the PDB exists above 1).
pub fn min_replicas(gw: &TenantGateway) -> i32 {
    match &gw.spec.autoscaling {
        Some(a) => a.min(),
        None => gw
            .spec
            .replicas
            .unwrap_or(super::workload::DEFAULT_REPLICAS),
    }
}

/// `spec.placement` and `spec.hostNetwork` applied to a pod spec built
/// without them. `selector`: the fleet's pod selector, for the default
/// spread and for constraints that name no labelSelector.
pub fn apply_placement(t: &Fleet<'_>, selector: &BTreeMap<String, String>, pod: &mut PodSpec) {
    let own = || LabelSelector {
        match_labels: Some(selector.clone()),
        match_expressions: None,
    };
    let placement = t.gw.spec.placement.clone().unwrap_or_default();
    pod.topology_spread_constraints = match placement.topology_spread_constraints {
        // Soft: a single-node cluster still runs every replica.
        None => Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(own()),
            ..Default::default()
        }]),
        Some(list) if list.is_empty() => None,
        Some(list) => Some(
            list.into_iter()
                .map(|mut c| {
                    c.label_selector.get_or_insert_with(own);
                    c
                })
                .collect(),
        ),
    };
    pod.node_selector = (!placement.node_selector.is_empty()).then_some(placement.node_selector);
    pod.tolerations = (!placement.tolerations.is_empty()).then_some(placement.tolerations);
    pod.affinity = placement.affinity;
    pod.priority_class_name = placement.priority_class_name;
    if uses_host_network(t) {
        pod.host_network = Some(true);
        pod.dns_policy = Some(HOST_NETWORK_DNS_POLICY.into());
    }
}

/// The HorizontalPodAutoscaler of a fleet whose tenant asks for one.
pub fn build_hpa(t: &Fleet<'_>) -> Option<HorizontalPodAutoscaler> {
    let a: &AutoscalingSettings = t.gw.spec.autoscaling.as_ref()?;
    let name = t.names().workload.clone();
    Some(HorizontalPodAutoscaler {
        metadata: t.meta_in_gateway_ns(name.clone()),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name,
            },
            min_replicas: Some(a.min()),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu()),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            behavior: hpa_behavior(a),
        }),
        status: None,
    })
}

/// The longest scale-down stabilization window the HPA API accepts (one hour).
pub const MAX_SCALE_DOWN_STABILIZATION_SECONDS: i32 = 3600;

/// `scaleDownStabilizationSeconds` as the HPA's scale-down window; nothing
/// else of the behavior is set, so the API server's defaults (its policies,
/// scaling up at once) stay in force, and no field at all when it is unset.
fn hpa_behavior(a: &AutoscalingSettings) -> Option<HorizontalPodAutoscalerBehavior> {
    let window = a.scale_down_stabilization_seconds?;
    Some(HorizontalPodAutoscalerBehavior {
        scale_down: Some(HPAScalingRules {
            stabilization_window_seconds: Some(window),
            ..Default::default()
        }),
        scale_up: None,
    })
}

/// The ports a hostNetwork fleet of `gw` takes on each node it runs on:
/// its listeners, TCP and UDP proxies, and the fixed health, metrics and
/// admin ports (`(port, protocol)`, sorted).
pub fn host_ports(gw: &TenantGateway) -> BTreeSet<(u16, &'static str)> {
    let spec = &gw.spec;
    let mut out: BTreeSet<(u16, &'static str)> =
        [ADMIN_PORT, HEALTH_PORT, METRICS_PORT, ENVOY_HEALTH_PORT]
            .into_iter()
            .chain([spec.listeners.http(), spec.listeners.https()])
            .chain(spec.tcp_proxies.iter().map(|p| p.port))
            .map(|p| (p, "TCP"))
            .collect();
    out.extend(spec.udp_proxies.iter().map(|p| (p.port, "UDP")));
    out
}

/// Whether two tenants' pods may land on one node, judged from their node
/// selectors alone: they cannot when both select a different value of one
/// label. Affinity and taints are not reasoned about (the scheduler's own
/// host-port check keeps such pods Pending, and the condition says why).
fn may_share_nodes(a: &TenantGateway, b: &TenantGateway) -> bool {
    let sel = |g: &TenantGateway| {
        g.spec
            .placement
            .as_ref()
            .map(|p| p.node_selector.clone())
            .unwrap_or_default()
    };
    let (sa, sb) = (sel(a), sel(b));
    !sa.iter()
        .any(|(k, v)| sb.get(k).is_some_and(|other| other != v))
}

/// Older first: creationTimestamp (missing = oldest), then name — the same
/// order as namespace claims.
fn age_key(g: &TenantGateway) -> (Option<k8s_openapi::jiff::Timestamp>, String) {
    (
        g.metadata.creation_timestamp.as_ref().map(|t| t.0),
        g.metadata.name.clone().unwrap_or_default(),
    )
}

/// A hostNetwork tenant's conflict with an older hostNetwork tenant that may
/// run on the same nodes and would take the same host ports there (always
/// the fixed health, metrics and admin ports). The older one keeps running;
/// this one gets the error and no Deployment, instead of pods that crash on
/// a bound port or wait Pending forever. Pure: same inputs, same answer.
pub fn host_network_conflicts(gw: &TenantGateway, all: &[&TenantGateway]) -> Vec<SpecError> {
    if !gw.spec.host_network {
        return vec![];
    }
    let me = age_key(gw);
    let mine = host_ports(gw);
    let mut older: Vec<&TenantGateway> = all
        .iter()
        .copied()
        .filter(|o| o.spec.host_network && o.metadata.deletion_timestamp.is_none())
        .filter(|o| o.metadata.name != gw.metadata.name && age_key(o) < me)
        .filter(|o| may_share_nodes(gw, o))
        .collect();
    older.sort_by_key(|o| age_key(o));
    older
        .into_iter()
        .filter_map(|o| {
            let shared: Vec<String> = host_ports(o)
                .intersection(&mine)
                .map(|(p, proto)| format!("{p}/{proto}"))
                .collect();
            (!shared.is_empty()).then(|| {
                SpecError::new(
                    "spec.hostNetwork",
                    format!(
                        "TenantGateway {} (older) also runs on the host network on nodes this one may use, \
                         and both would bind host ports {}: give the two disjoint \
                         spec.placement.nodeSelector values",
                        o.metadata.name.as_deref().unwrap_or_default(),
                        shared.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// Spec checks of `placement`, `hostNetwork` and `autoscaling` that the CRD
/// schema does not make.
pub fn validate_placement(gw: &TenantGateway, errs: &mut Vec<SpecError>) {
    let spec = &gw.spec;
    if let Some(a) = &spec.autoscaling {
        if spec.replicas.is_some() {
            errs.push(SpecError::new(
                "spec.replicas",
                "must be unset when spec.autoscaling is set (the HorizontalPodAutoscaler owns the replica count)",
            ));
        }
        if a.max_replicas < 1 {
            errs.push(SpecError::new(
                "spec.autoscaling.maxReplicas",
                format!("must be >= 1, got {}", a.max_replicas),
            ));
        }
        if a.min() < 1 || a.min() > a.max_replicas {
            errs.push(SpecError::new(
                "spec.autoscaling.minReplicas",
                format!(
                    "must be between 1 and maxReplicas ({}), got {}",
                    a.max_replicas,
                    a.min()
                ),
            ));
        }
        if !(1..=100).contains(&a.target_cpu()) {
            errs.push(SpecError::new(
                "spec.autoscaling.targetCPUUtilizationPercentage",
                format!("must be between 1 and 100, got {}", a.target_cpu()),
            ));
        }
        if let Some(w) = a.scale_down_stabilization_seconds {
            if !(0..=MAX_SCALE_DOWN_STABILIZATION_SECONDS).contains(&w) {
                errs.push(SpecError::new(
                    "spec.autoscaling.scaleDownStabilizationSeconds",
                    format!(
                        "must be between 0 and {MAX_SCALE_DOWN_STABILIZATION_SECONDS}, got {w}"
                    ),
                ));
            }
        }
    }
    let Some(p) = &spec.placement else { return };
    for (k, v) in &p.node_selector {
        let field = format!("spec.placement.nodeSelector[{k:?}]");
        if let Err(m) = qualified_name(k) {
            errs.push(SpecError::new(&field, format!("invalid key: {m}")));
        }
        if let Err(m) = label_value(v) {
            errs.push(SpecError::new(&field, format!("invalid value: {m}")));
        }
    }
    for (i, t) in p.tolerations.iter().enumerate() {
        let field = |f: &str| format!("spec.placement.tolerations[{i}].{f}");
        let op = t.operator.as_deref().unwrap_or("Equal");
        match op {
            "Exists" if t.value.as_deref().is_some_and(|v| !v.is_empty()) => errs.push(
                SpecError::new(field("value"), "must be empty when operator is Exists"),
            ),
            "Exists" | "Equal" => {}
            other => errs.push(SpecError::new(
                field("operator"),
                format!("{other:?} is not Exists or Equal"),
            )),
        }
        if t.key.as_deref().unwrap_or_default().is_empty() && op != "Exists" {
            errs.push(SpecError::new(
                field("key"),
                "may be empty only with operator Exists",
            ));
        }
        if let Some(e) = t.effect.as_deref() {
            if !["", "NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&e) {
                errs.push(SpecError::new(
                    field("effect"),
                    format!("{e:?} is not NoSchedule, PreferNoSchedule or NoExecute"),
                ));
            }
        }
    }
    for (i, c) in p.topology_spread_constraints.iter().flatten().enumerate() {
        let field = |f: &str| format!("spec.placement.topologySpreadConstraints[{i}].{f}");
        if c.max_skew < 1 {
            errs.push(SpecError::new(
                field("maxSkew"),
                format!("must be >= 1, got {}", c.max_skew),
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(SpecError::new(field("topologyKey"), "must not be empty"));
        }
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&c.when_unsatisfiable.as_str()) {
            errs.push(SpecError::new(
                field("whenUnsatisfiable"),
                format!(
                    "{:?} is not DoNotSchedule or ScheduleAnyway",
                    c.when_unsatisfiable
                ),
            ));
        }
    }
    if let Some(pc) = &p.priority_class_name {
        if let Err(m) = dns1123_subdomain(pc) {
            errs.push(SpecError::new("spec.placement.priorityClassName", m));
        }
    }
}
