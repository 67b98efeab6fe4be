//! The TenantGateway status a reconcile pass writes: a pure function of the
//! gateway, its claim decision, the live Deployment and Service, and the
//! clock, with the Warning Event the change deserves.

use crate::claims::ClaimDecision;
use crate::conditions::{self, condition};
use crds::{GatewayAddress, NamespaceConflict, TenantGateway, TenantGatewayStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A Warning Event to publish with a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    pub reason: &'static str,
    pub note: String,
}

/// What the pass writes and announces.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub status: TenantGatewayStatus,
    /// The status differs from the gateway's: write it (always for an invalid spec).
    pub changed: bool,
    pub ready: bool,
    pub event: Option<StatusEvent>,
}

/// An invalid spec: `Accepted=False` naming the fields, everything else kept.
/// The Event is published once per new message or generation, not per pass.
pub fn invalid_spec(gw: &TenantGateway, message: String, now: &Time) -> StatusUpdate {
    let old = gw.status.clone().unwrap_or_default();
    let generation = gw.metadata.generation;
    let conds = conditions::merge(
        &old.conditions,
        vec![condition(
            conditions::ACCEPTED,
            false,
            "InvalidSpec",
            message.clone(),
            generation,
        )],
        now,
    );
    let announce = old.conditions != conds || old.observed_generation != generation;
    let event = announce.then_some(StatusEvent {
        reason: "InvalidSpec",
        note: message,
    });
    StatusUpdate {
        status: TenantGatewayStatus {
            observed_generation: generation,
            conditions: conds,
            ..old
        },
        changed: true,
        ready: false,
        event,
    }
}

/// An applied spec: Accepted, NamespacesClaimed (or the conflicts), Ready from
/// the Deployment, and the Service's addresses.
pub fn applied(
    gw: &TenantGateway,
    decision: &ClaimDecision,
    deployment: Option<&Deployment>,
    service: Option<&Service>,
    now: &Time,
) -> StatusUpdate {
    let old = gw.status.clone().unwrap_or_default();
    let generation = gw.metadata.generation;
    // Under an autoscaler: what it last asked the Deployment for.
    let replicas = crate::build::deployment_replicas(gw).unwrap_or_else(|| {
        deployment
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or_else(|| crate::build::min_replicas(gw))
    });
    let (ready, ready_msg) = deployment_ready(deployment, replicas);
    let conflicts = decision.conflicts.clone();
    let conds = conditions::merge(
        &old.conditions,
        vec![
            condition(
                conditions::ACCEPTED,
                true,
                "Accepted",
                "spec is valid and objects are applied",
                generation,
            ),
            claims_condition(decision, generation),
            condition(
                conditions::READY,
                ready,
                if ready { "Available" } else { "Unavailable" },
                ready_msg,
                generation,
            ),
        ],
        now,
    );
    let event = (conflicts != old.conflicts && !conflicts.is_empty()).then(|| StatusEvent {
        reason: "NamespaceConflict",
        note: conflicts
            .iter()
            .map(|c| format!("{} is held by {}", c.namespace, c.holder))
            .collect::<Vec<_>>()
            .join("; "),
    });
    let status = TenantGatewayStatus {
        observed_generation: generation,
        conditions: conds,
        claimed_namespaces: decision.claimed.iter().cloned().collect(),
        conflicts,
        addresses: service_addresses(service),
    };
    StatusUpdate {
        changed: Some(&status) != gw.status.as_ref(),
        status,
        ready,
        event,
    }
}

fn claims_condition(
    decision: &ClaimDecision,
    generation: Option<i64>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    if decision.conflicts.is_empty() {
        let claimed: Vec<&str> = decision.claimed.iter().map(String::as_str).collect();
        return condition(
            conditions::NAMESPACES_CLAIMED,
            true,
            "Claimed",
            format!("claimed {}", claimed.join(", ")),
            generation,
        );
    }
    condition(
        conditions::NAMESPACES_CLAIMED,
        false,
        "NamespaceConflict",
        format!(
            "namespaces held by older TenantGateways: {}",
            held_by(&decision.conflicts)
        ),
        generation,
    )
}

fn held_by(conflicts: &[NamespaceConflict]) -> String {
    conflicts
        .iter()
        .map(|c| format!("{} (held by {})", c.namespace, c.holder))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ready when one replica is available (always when scaled to zero).
fn deployment_ready(d: Option<&Deployment>, want: i32) -> (bool, String) {
    let Some(d) = d else {
        return (false, "Deployment not found yet".into());
    };
    let status = d.status.as_ref();
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let ok = want == 0 || available >= 1;
    (
        ok,
        format!("{available}/{want} replicas available, {updated} updated"),
    )
}

/// The load balancer's addresses, else the cluster IP.
/// What the operator published on the Service (see
/// [`crate::build::published_addresses`]); a Service without the
/// annotation (an older operator's): its load-balancer ingress, else its
/// cluster IP.
fn service_addresses(s: Option<&Service>) -> Vec<GatewayAddress> {
    let Some(s) = s else { return vec![] };
    if let Some(published) = crate::build::published_on(s) {
        return crate::build::gateway_addresses(&published);
    }
    let mut out: Vec<GatewayAddress> = s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| match (&i.ip, &i.hostname) {
            (Some(ip), _) => Some(address("IPAddress", ip)),
            (None, Some(h)) => Some(address("Hostname", h)),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        let cluster_ip = s.spec.as_ref().and_then(|sp| sp.cluster_ip.as_deref());
        if let Some(ip) = cluster_ip.filter(|ip| *ip != "None" && !ip.is_empty()) {
            out.push(address("IPAddress", ip));
        }
    }
    out
}

fn address(type_: &str, value: &str) -> GatewayAddress {
    GatewayAddress {
        type_: type_.into(),
        value: value.into(),
        ports: vec![],
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
