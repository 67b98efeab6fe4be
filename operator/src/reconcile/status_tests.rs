//! Status tables: gateway, claims, live Deployment and Service, clock in;
//! status, write decision and Event out.

use super::*;
use crate::build::fixtures::{claims, tenant};
use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

fn at(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

fn deployment(available: i32, updated: i32) -> Deployment {
    Deployment {
        status: Some(DeploymentStatus {
            available_replicas: Some(available),
            updated_replicas: Some(updated),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(cluster_ip: Option<&str>, lb: &[(Option<&str>, Option<&str>)]) -> Service {
    Service {
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ip.map(str::to_string),
            ..Default::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    lb.iter()
                        .map(|(ip, hostname)| LoadBalancerIngress {
                            ip: ip.map(str::to_string),
                            hostname: hostname.map(str::to_string),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn gateway(generation: i64, replicas: Option<i32>) -> TenantGateway {
    let mut gw = tenant("acme");
    gw.metadata.generation = Some(generation);
    gw.spec.replicas = replicas;
    gw
}

/// (type, status, reason, message) of every condition, sorted by type.
fn conds(s: &TenantGatewayStatus) -> Vec<(String, String, String, String)> {
    s.conditions
        .iter()
        .map(|c| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            )
        })
        .collect()
}

fn cond(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> (String, String, String, String) {
    (type_.into(), status.into(), reason.into(), message.into())
}

fn condition_named<'a>(s: &'a TenantGatewayStatus, type_: &str) -> &'a Condition {
    s.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn applied_status_table() {
    struct Case {
        name: &'static str,
        replicas: Option<i32>,
        decision: ClaimDecision,
        deployment: Option<Deployment>,
        service: Option<Service>,
        ready: bool,
        claims: (&'static str, &'static str, &'static str),
        ready_cond: (&'static str, &'static str, &'static str),
        addresses: Vec<(&'static str, &'static str)>,
        event: Option<&'static str>,
    }
    let cases = vec![
        Case {
            name: "nothing observed yet",
            replicas: None,
            decision: claims(&["acme-shop"], &[]),
            deployment: None,
            service: None,
            ready: false,
            claims: ("True", "Claimed", "claimed acme-shop"),
            ready_cond: ("False", "Unavailable", "Deployment not found yet"),
            addresses: vec![],
            event: None,
        },
        Case {
            name: "one replica available of the default two, cluster IP only",
            replicas: None,
            decision: claims(&["acme-api", "acme-shop"], &[]),
            deployment: Some(deployment(1, 2)),
            service: Some(service(Some("10.0.0.7"), &[])),
            ready: true,
            claims: ("True", "Claimed", "claimed acme-api, acme-shop"),
            ready_cond: ("True", "Available", "1/2 replicas available, 2 updated"),
            addresses: vec![("IPAddress", "10.0.0.7")],
            event: None,
        },
        Case {
            name: "none available; load balancer addresses win over the cluster IP",
            replicas: Some(3),
            decision: claims(&["acme-shop"], &[]),
            deployment: Some(deployment(0, 1)),
            service: Some(service(
                Some("10.0.0.7"),
                &[(Some("192.0.2.1"), None), (None, Some("lb.example")), (None, None)],
            )),
            ready: false,
            claims: ("True", "Claimed", "claimed acme-shop"),
            ready_cond: ("False", "Unavailable", "0/3 replicas available, 1 updated"),
            addresses: vec![("IPAddress", "192.0.2.1"), ("Hostname", "lb.example")],
            event: None,
        },
        Case {
            name: "scaled to zero is ready; a headless Service has no address",
            replicas: Some(0),
            decision: claims(&[], &[]),
            deployment: Some(deployment(0, 0)),
            service: Some(service(Some("None"), &[])),
            ready: true,
            claims: ("True", "Claimed", "claimed "),
            ready_cond: ("True", "Available", "0/0 replicas available, 0 updated"),
            addresses: vec![],
            event: None,
        },
        Case {
            name: "conflicts: condition false and one Event naming each holder",
            replicas: None,
            decision: claims(&["acme-shop"], &[("shared", "globex"), ("db", "initech")]),
            deployment: Some(deployment(2, 2)),
            service: None,
            ready: true,
            claims: (
                "False",
                "NamespaceConflict",
                "namespaces held by older TenantGateways: shared (held by globex), db (held by initech)",
            ),
            ready_cond: ("True", "Available", "2/2 replicas available, 2 updated"),
            addresses: vec![],
            event: Some("shared is held by globex; db is held by initech"),
        },
    ];
    for c in cases {
        let gw = gateway(4, c.replicas);
        let u = applied(
            &gw,
            &c.decision,
            c.deployment.as_ref(),
            c.service.as_ref(),
            &at(0),
        );
        assert_eq!(u.ready, c.ready, "{}", c.name);
        assert!(u.changed, "{}: a first status is always written", c.name);
        assert_eq!(
            conds(&u.status),
            vec![
                cond(
                    "Accepted",
                    "True",
                    "Accepted",
                    "spec is valid and objects are applied"
                ),
                cond("NamespacesClaimed", c.claims.0, c.claims.1, c.claims.2),
                cond("Ready", c.ready_cond.0, c.ready_cond.1, c.ready_cond.2),
            ],
            "{}",
            c.name
        );
        assert!(u
            .status
            .conditions
            .iter()
            .all(|k| k.observed_generation == Some(4)));
        assert_eq!(u.status.observed_generation, Some(4), "{}", c.name);
        let claimed: Vec<&str> = u
            .status
            .claimed_namespaces
            .iter()
            .map(String::as_str)
            .collect();
        let want: Vec<&str> = c.decision.claimed.iter().map(String::as_str).collect();
        assert_eq!(claimed, want, "{}", c.name);
        assert_eq!(u.status.conflicts, c.decision.conflicts, "{}", c.name);
        let addresses: Vec<(&str, &str)> = u
            .status
            .addresses
            .iter()
            .map(|a| (a.type_.as_str(), a.value.as_str()))
            .collect();
        assert_eq!(addresses, c.addresses, "{}", c.name);
        assert_eq!(
            u.event,
            c.event.map(|note| StatusEvent {
                reason: "NamespaceConflict",
                note: note.into(),
            }),
            "{}",
            c.name
        );
    }
}

/// Under an autoscaler the wanted count is what it last set on the
/// Deployment (its minimum before it has set any).
#[test]
fn autoscaled_ready_message_counts_against_the_deployment_replicas() {
    let mut gw = gateway(1, None);
    gw.spec.autoscaling = Some(crds::AutoscalingSettings {
        min_replicas: Some(2),
        max_replicas: 8,
        target_cpu_utilization_percentage: None,
        ..Default::default()
    });
    let ready_message = |d: &Deployment| {
        let u = applied(&gw, &claims(&["acme-shop"], &[]), Some(d), None, &at(0));
        condition_named(&u.status, "Ready").message.clone()
    };
    let mut d = deployment(3, 5);
    assert_eq!(ready_message(&d), "3/2 replicas available, 5 updated");
    d.spec = Some(k8s_openapi::api::apps::v1::DeploymentSpec {
        replicas: Some(5),
        ..Default::default()
    });
    assert_eq!(ready_message(&d), "3/5 replicas available, 5 updated");
}

/// A second pass over the same world writes nothing, keeps every transition
/// time, and does not repeat the conflict Event; a flip moves only its time.
#[test]
fn unchanged_world_writes_nothing_and_a_flip_moves_only_its_transition_time() {
    let decision = claims(&["acme-shop"], &[("shared", "globex")]);
    let mut gw = gateway(1, None);
    let first = applied(&gw, &decision, Some(&deployment(0, 0)), None, &at(0));
    gw.status = Some(first.status.clone());

    let again = applied(&gw, &decision, Some(&deployment(0, 0)), None, &at(60));
    assert!(!again.changed);
    assert_eq!(again.event, None);
    assert_eq!(again.status, first.status);

    let up = applied(&gw, &decision, Some(&deployment(1, 1)), None, &at(120));
    assert!(up.changed && up.ready);
    assert_eq!(
        condition_named(&up.status, "Ready").last_transition_time,
        at(120)
    );
    for kept in ["Accepted", "NamespacesClaimed"] {
        assert_eq!(
            condition_named(&up.status, kept).last_transition_time,
            at(0),
            "{kept}"
        );
    }
}

#[test]
fn invalid_spec_keeps_the_rest_and_announces_each_new_message_once() {
    let mut gw = gateway(2, None);
    let earlier = applied(
        &gw,
        &claims(&["acme-shop"], &[]),
        Some(&deployment(2, 2)),
        Some(&service(Some("10.0.0.7"), &[])),
        &at(0),
    );
    gw.status = Some(earlier.status.clone());
    gw.metadata.generation = Some(3);

    let u = invalid_spec(&gw, "spec.replicas: -1 is negative".into(), &at(10));
    assert!(u.changed && !u.ready);
    assert_eq!(
        conds(&u.status),
        vec![cond(
            "Accepted",
            "False",
            "InvalidSpec",
            "spec.replicas: -1 is negative"
        )]
    );
    assert_eq!(u.status.observed_generation, Some(3));
    assert_eq!(
        u.status.claimed_namespaces,
        earlier.status.claimed_namespaces
    );
    assert_eq!(u.status.addresses, earlier.status.addresses);
    assert_eq!(
        u.event,
        Some(StatusEvent {
            reason: "InvalidSpec",
            note: "spec.replicas: -1 is negative".into(),
        })
    );

    // The same message for the same generation: written, not announced again.
    gw.status = Some(u.status.clone());
    let again = invalid_spec(&gw, "spec.replicas: -1 is negative".into(), &at(20));
    assert_eq!(again.event, None);
    assert_eq!(again.status, u.status);
    // A new generation is announced even with the same message.
    gw.metadata.generation = Some(4);
    assert!(
        invalid_spec(&gw, "spec.replicas: -1 is negative".into(), &at(30))
            .event
            .is_some()
    );
}
