//! What the operator decides for one Gateway, and the Gateway status it
//! writes itself (pure).
//!
//! Gateway, listener and route status belong to the fleet's sidecar once the
//! fleet exists. The operator writes a Gateway's status only where no fleet
//! serves it: `Accepted=False` when no tenant holds its namespace (the fleet
//! is deleted first, so nobody else writes), and `Accepted=Unknown/Pending`
//! while a new fleet starts, and then only over a status no fleet wrote (none,
//! the API server's default, or the operator's own "not claimed"): once the
//! sidecar has written any other Accepted condition the operator leaves the
//! status alone, so the two never write over each other.

use crate::conditions::{self, ACCEPTED, PROGRAMMED};
use gwapi::gateways::{Gateway, GatewayStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use std::collections::BTreeMap;

/// The spec's reason for a Gateway that cannot be served as it is: in a
/// namespace no tenant holds.
pub const REASON_INVALID: &str = "Invalid";
pub const REASON_PENDING: &str = "Pending";
/// The spec's reason for a Gateway whose `infrastructure.parametersRef`
/// cannot be used.
pub const REASON_INVALID_PARAMETERS: &str = "InvalidParameters";
/// Starts the message of the operator's "not claimed" condition (how it
/// recognises its own status).
const UNCLAIMED_PREFIX: &str = "namespace ";
const UNCLAIMED_SUFFIX: &str = " is not held by any TenantGateway";

/// What the controller does with one Gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayPlan {
    /// Not of a class naming our controller: no fleet (one left from an
    /// earlier class is deleted), no status.
    NotOurs,
    /// Ours, in a namespace no tenant holds: no fleet, `Accepted=False`.
    Unclaimed { namespace: String },
    /// Ours, in a namespace a tenant holds, but with an
    /// `infrastructure.parametersRef`: no fleet, `Accepted=False`
    /// (`InvalidParameters`) with `message`.
    InvalidParameters { message: String },
    /// Ours, in a namespace `tenant` holds: its fleet.
    Fleet { tenant: String },
}

/// Why the Gateway's `infrastructure.parametersRef` cannot be used, if it has
/// one: tenant-gateway takes no Gateway parameters (the TenantGateway spec
/// holds a tenant's fleet settings, so a tenant cannot widen them), so every
/// reference is of an unsupported kind — the spec's `InvalidParameters`.
pub fn parameters_rejection(gateway: &Gateway) -> Option<String> {
    let p = gateway
        .spec
        .infrastructure
        .as_ref()?
        .parameters_ref
        .as_ref()?;
    let group = if p.group.is_empty() {
        "core"
    } else {
        p.group.as_str()
    };
    Some(format!(
        "spec.infrastructure.parametersRef {}/{} {:?} is not supported: tenant-gateway takes no \
         Gateway parameters (the TenantGateway holds the fleet's settings); the Gateway is not served",
        group, p.kind, p.name
    ))
}

/// `ours(class)`: whether the named GatewayClass exists and names our
/// controller. `holders`: namespace → the tenant holding it.
pub fn plan(
    gateway: &Gateway,
    ours: impl Fn(&str) -> bool,
    holders: &BTreeMap<String, String>,
) -> GatewayPlan {
    if !ours(&gateway.spec.gateway_class_name) {
        return GatewayPlan::NotOurs;
    }
    let namespace = gateway.namespace().unwrap_or_default();
    match (holders.get(&namespace), parameters_rejection(gateway)) {
        (None, _) => GatewayPlan::Unclaimed { namespace },
        (Some(_), Some(message)) => GatewayPlan::InvalidParameters { message },
        (Some(tenant), None) => GatewayPlan::Fleet {
            tenant: tenant.clone(),
        },
    }
}

fn old_conditions(gateway: &Gateway) -> &[Condition] {
    gateway
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn with_conditions(gateway: &Gateway, new: Vec<Condition>, now: &Time) -> GatewayStatus {
    let old = old_conditions(gateway);
    // Other condition types (a fleet's, from before) are dropped with it.
    GatewayStatus {
        conditions: Some(conditions::merge(old, new, now)),
        ..Default::default()
    }
}

/// `Accepted=False` and `Programmed=False` (reason `Invalid`), naming the
/// namespace, with `observedGeneration`.
pub fn unclaimed_status(gateway: &Gateway, now: &Time) -> GatewayStatus {
    let generation = gateway.metadata.generation;
    let ns = gateway.namespace().unwrap_or_default();
    let message = format!(
        "{UNCLAIMED_PREFIX}{ns}{UNCLAIMED_SUFFIX}: a Gateway of this class is served only in a \
         tenant's namespace"
    );
    with_conditions(
        gateway,
        vec![
            conditions::condition(ACCEPTED, false, REASON_INVALID, message.clone(), generation),
            conditions::condition(PROGRAMMED, false, REASON_INVALID, message, generation),
        ],
        now,
    )
}

/// `Accepted=False` (`InvalidParameters`) and `Programmed=False` (`Invalid`)
/// with `message`, with `observedGeneration`.
pub fn invalid_parameters_status(gateway: &Gateway, message: &str, now: &Time) -> GatewayStatus {
    let generation = gateway.metadata.generation;
    with_conditions(
        gateway,
        vec![
            conditions::condition(
                ACCEPTED,
                false,
                REASON_INVALID_PARAMETERS,
                message,
                generation,
            ),
            conditions::condition(PROGRAMMED, false, REASON_INVALID, message, generation),
        ],
        now,
    )
}

/// Whether the Gateway's Accepted condition is one no fleet wrote: absent,
/// the API server's default (`Pending`), the operator's "not claimed" or its
/// `InvalidParameters`.
pub fn status_is_the_operators(gateway: &Gateway) -> bool {
    match old_conditions(gateway).iter().find(|c| c.type_ == ACCEPTED) {
        None => true,
        Some(c) if c.reason == REASON_PENDING || c.reason == REASON_INVALID_PARAMETERS => true,
        Some(c) => {
            c.reason == REASON_INVALID
                && c.message.starts_with(UNCLAIMED_PREFIX)
                && c.message.contains(UNCLAIMED_SUFFIX)
        }
    }
}

/// `Accepted=Unknown` and `Programmed=Unknown` (reason `Pending`) while the
/// fleet starts; `None` once the fleet's sidecar owns the status.
pub fn pending_status(gateway: &Gateway, tenant: &str, now: &Time) -> Option<GatewayStatus> {
    if !status_is_the_operators(gateway) {
        return None;
    }
    let generation = gateway.metadata.generation;
    let message =
        format!("TenantGateway {tenant} holds this namespace; its Envoy fleet is starting");
    Some(with_conditions(
        gateway,
        vec![
            conditions::condition_with_status(
                ACCEPTED,
                "Unknown",
                REASON_PENDING,
                message.clone(),
                generation,
            ),
            conditions::condition_with_status(
                PROGRAMMED,
                "Unknown",
                REASON_PENDING,
                message,
                generation,
            ),
        ],
        now,
    ))
}

/// Whether writing `new` would change the Gateway's status.
pub fn changes(gateway: &Gateway, new: &GatewayStatus) -> bool {
    gateway.status.as_ref() != Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gwapi::gateways::{GatewayListeners, GatewaySpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    fn gateway(ns: &str, class: &str) -> Gateway {
        Gateway {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some(ns.into()),
                generation: Some(4),
                ..Default::default()
            },
            spec: GatewaySpec {
                gateway_class_name: class.into(),
                listeners: vec![GatewayListeners {
                    name: "http".into(),
                    port: 80,
                    protocol: "HTTP".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            status: None,
        }
    }

    fn holders(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// Each condition as (type, status, reason, observedGeneration).
    fn summary(conds: &[Condition]) -> Vec<(&str, &str, &str, Option<i64>)> {
        conds
            .iter()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_str(),
                    c.observed_generation,
                )
            })
            .collect()
    }

    #[test]
    fn plan_table() {
        let ours = |c: &str| c == "tenant-gateway";
        let h = holders(&[("shop", "acme")]);
        let cases = [
            (
                "shop",
                "tenant-gateway",
                GatewayPlan::Fleet {
                    tenant: "acme".into(),
                },
            ),
            (
                "lobby",
                "tenant-gateway",
                GatewayPlan::Unclaimed {
                    namespace: "lobby".into(),
                },
            ),
            ("shop", "other", GatewayPlan::NotOurs),
            ("lobby", "other", GatewayPlan::NotOurs),
        ];
        for (ns, class, want) in cases {
            assert_eq!(plan(&gateway(ns, class), ours, &h), want, "{ns} {class}");
        }
    }

    #[test]
    fn a_parameters_ref_is_invalid_parameters_and_gets_no_fleet() {
        use gwapi::gateways::{GatewayInfrastructure, GatewayInfrastructureParametersRef};
        let ours = |c: &str| c == "tenant-gateway";
        let mut g = gateway("shop", "tenant-gateway");
        g.spec.infrastructure = Some(GatewayInfrastructure {
            labels: Some(BTreeMap::from([("team".into(), "a".into())])),
            ..Default::default()
        });
        // Labels and annotations alone are honoured: a fleet.
        assert!(matches!(
            plan(&g, ours, &holders(&[("shop", "acme")])),
            GatewayPlan::Fleet { .. }
        ));
        g.spec.infrastructure.as_mut().unwrap().parameters_ref =
            Some(GatewayInfrastructureParametersRef {
                group: "invalid.io".into(),
                kind: "InvalidParameters".into(),
                name: "invalid".into(),
            });
        let GatewayPlan::InvalidParameters { message } =
            plan(&g, ours, &holders(&[("shop", "acme")]))
        else {
            panic!("not InvalidParameters");
        };
        assert!(
            message.contains("invalid.io/InvalidParameters \"invalid\""),
            "{message}"
        );
        // Unclaimed wins: the namespace is the first thing wrong.
        assert!(matches!(
            plan(&g, ours, &holders(&[])),
            GatewayPlan::Unclaimed { .. }
        ));
        let s = invalid_parameters_status(&g, &message, &t(3));
        assert_eq!(
            summary(s.conditions.as_deref().unwrap()),
            [
                ("Accepted", "False", "InvalidParameters", Some(4)),
                ("Programmed", "False", "Invalid", Some(4))
            ]
        );
        // Once the reference is removed, the operator's Pending may follow.
        g.status = Some(s);
        assert!(status_is_the_operators(&g));
        g.spec.infrastructure = None;
        assert!(pending_status(&g, "acme", &t(4)).is_some());
    }

    #[test]
    fn unclaimed_gateway_is_not_accepted_and_names_the_namespace() {
        let g = gateway("lobby", "tenant-gateway");
        let s = unclaimed_status(&g, &t(10));
        let conds = s.conditions.clone().unwrap();
        assert_eq!(
            summary(&conds),
            [
                ("Accepted", "False", "Invalid", Some(4)),
                ("Programmed", "False", "Invalid", Some(4))
            ]
        );
        assert!(
            conds[0].message.contains("namespace lobby "),
            "{}",
            conds[0].message
        );
        assert!(s.listeners.is_none() && s.addresses.is_none());
        // Written again, nothing changes.
        let mut written = g.clone();
        written.status = Some(s.clone());
        assert!(!changes(&written, &unclaimed_status(&written, &t(20))));
        // The operator recognises its own condition: Pending may follow.
        assert!(status_is_the_operators(&written));
    }

    #[test]
    fn pending_only_over_a_status_no_fleet_wrote() {
        let fresh = gateway("shop", "tenant-gateway");
        let s = pending_status(&fresh, "acme", &t(1)).unwrap();
        let accepted = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (
                accepted.status.as_str(),
                accepted.reason.as_str(),
                accepted.observed_generation
            ),
            ("Unknown", "Pending", Some(4))
        );
        // The API server's default status.
        let mut defaulted = fresh.clone();
        defaulted.status = Some(GatewayStatus {
            conditions: Some(vec![super::super::api_server_default(ACCEPTED)]),
            ..Default::default()
        });
        assert!(pending_status(&defaulted, "acme", &t(1)).is_some());
        // The sidecar's verdict, either way, is left alone.
        for ok in [true, false] {
            let mut served = fresh.clone();
            served.status = Some(GatewayStatus {
                conditions: Some(vec![conditions::condition(
                    ACCEPTED,
                    ok,
                    if ok { "Accepted" } else { "ListenersNotValid" },
                    "",
                    Some(4),
                )]),
                ..Default::default()
            });
            assert_eq!(pending_status(&served, "acme", &t(1)), None, "{ok}");
        }
    }
}
