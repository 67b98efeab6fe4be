//! Gateway API status as a Gateway fleet's sidecar writes it: pure builders
//! from translation's status model to the Gateway's `status` and to this
//! Gateway's entries of each route's `status.parents`.
//!
//! A route's `status.parents` is one list shared by every controller and every
//! parent: the sidecar replaces only the entries whose `controllerName` is ours
//! and whose `parentRef` names its own Gateway, and keeps every other entry as
//! it found it. `lastTransitionTime` moves only when a condition's status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{json, Value};

/// One condition as the sidecar wants it, before `lastTransitionTime`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedCondition {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub observed_generation: Option<i64>,
}

/// Conditions with their transition times: kept from `current` for a type
/// whose status is unchanged, `now` for the rest.
pub fn with_transition_times(
    current: &[Condition],
    wanted: &[WantedCondition],
    now: &Time,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|w| {
            let since = current
                .iter()
                .find(|c| c.type_ == w.type_ && c.status == w.status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: w.type_.clone(),
                status: w.status.clone(),
                reason: w.reason.clone(),
                // The API server rejects messages over 32768 bytes.
                message: truncate(&w.message, 32_000),
                observed_generation: w.observed_generation,
                last_transition_time: since,
            }
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn conditions_of(v: &Value) -> Vec<Condition> {
    v.get("conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default()
}

/// One listener's status as wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedListener {
    pub name: String,
    /// (group, kind)
    pub supported_kinds: Vec<(String, String)>,
    pub attached_routes: i32,
    pub conditions: Vec<WantedCondition>,
}

/// An address of the Gateway: (type, value), e.g. ("IPAddress", "10.96.0.12").
pub type GatewayAddress = (String, String);

/// The whole `status` of the Gateway: its addresses, conditions and listeners.
/// `current` is the Gateway's status as read (or `Value::Null`).
pub fn gateway_status(
    current: &Value,
    addresses: &[GatewayAddress],
    conditions: &[WantedCondition],
    listeners: &[WantedListener],
    now: &Time,
) -> Value {
    let current_listeners: Vec<Value> = current
        .get("listeners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|l| {
            let before = current_listeners
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(l.name.as_str()))
                .map(conditions_of)
                .unwrap_or_default();
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds.iter()
                    .map(|(group, kind)| json!({"group": group, "kind": kind}))
                    .collect::<Vec<_>>(),
                "attachedRoutes": l.attached_routes,
                "conditions": with_transition_times(&before, &l.conditions, now),
            })
        })
        .collect();
    let mut status = json!({
        "conditions": with_transition_times(&conditions_of(current), conditions, now),
        "listeners": listeners,
    });
    if !addresses.is_empty() {
        status["addresses"] = addresses
            .iter()
            .map(|(type_, value)| json!({"type": type_, "value": value}))
            .collect();
    }
    status
}

/// One route's wanted entries for this Gateway (none: it no longer attaches).
#[derive(Clone, Debug, PartialEq)]
pub struct WantedRoute {
    /// `HTTPRoute` or `GRPCRoute`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub parents: Vec<WantedParent>,
}

/// Everything a Gateway fleet's sidecar writes after a translation.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayApiStatus {
    pub conditions: Vec<WantedCondition>,
    pub listeners: Vec<WantedListener>,
    /// Routes with an entry for this Gateway, sorted by (kind, namespace, name).
    pub routes: Vec<WantedRoute>,
}

/// Whether two statuses say the same, ignoring transition times (so an
/// unchanged status is not rewritten, and two replicas do not flap it).
pub fn same_status(a: &Value, b: &Value) -> bool {
    strip_times(a) == strip_times(b)
}

fn strip_times(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "lastTransitionTime")
                .map(|(k, v)| (k.clone(), strip_times(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_times).collect()),
        other => other.clone(),
    }
}

/// Whether a route's `parentRef` (as written) names the Gateway `namespace/name`.
pub fn names_gateway(
    parent_ref: &Value,
    route_namespace: &str,
    namespace: &str,
    name: &str,
) -> bool {
    let s = |k: &str| parent_ref.get(k).and_then(Value::as_str);
    s("group").unwrap_or(gwapi::GROUP) == gwapi::GROUP
        && s("kind").unwrap_or("Gateway") == "Gateway"
        && s("namespace").unwrap_or(route_namespace) == namespace
        && s("name") == Some(name)
}

/// This Gateway's entry for one parentRef of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedParent {
    /// The parentRef exactly as the route wrote it.
    pub parent_ref: Value,
    pub conditions: Vec<WantedCondition>,
}

/// A route's new `status.parents`: every entry not ours-for-this-Gateway as
/// found; ours replaced where they stand by the wanted entry of the same
/// parentRef, or dropped when none is wanted; then the wanted entries that
/// were not there yet (in the route's parentRef order). `current` is the
/// route's `status.parents` as read. No entry moves: two writers of one route
/// (two Gateways' fleets, a fleet and the operator) never reorder each other's
/// entries, so neither sees a change to write.
pub fn route_parents(
    current: &[Value],
    controller: &str,
    route_namespace: &str,
    gateway: (&str, &str),
    wanted: &[WantedParent],
    now: &Time,
) -> Vec<Value> {
    let ours = |entry: &Value| {
        entry.get("controllerName").and_then(Value::as_str) == Some(controller)
            && entry
                .get("parentRef")
                .is_some_and(|p| names_gateway(p, route_namespace, gateway.0, gateway.1))
    };
    let entry = |w: &WantedParent, before: &[Condition]| {
        json!({
            "parentRef": w.parent_ref,
            "controllerName": controller,
            "conditions": with_transition_times(before, &w.conditions, now),
        })
    };
    let mut placed = vec![false; wanted.len()];
    let mut parents = Vec::with_capacity(current.len().max(wanted.len()));
    for e in current {
        if !ours(e) {
            parents.push(e.clone());
            continue;
        }
        let same = wanted
            .iter()
            .enumerate()
            .find(|(i, w)| !placed[*i] && e.get("parentRef") == Some(&w.parent_ref));
        if let Some((i, w)) = same {
            placed[i] = true;
            parents.push(entry(w, &conditions_of(e)));
        }
    }
    for (w, _) in wanted.iter().zip(&placed).filter(|(_, placed)| !**placed) {
        parents.push(entry(w, &[]));
    }
    parents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        serde_json::from_value(json!(s)).expect("RFC 3339 time")
    }

    fn cond(type_: &str, status: &str, reason: &str) -> WantedCondition {
        WantedCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(3),
        }
    }

    const CTRL: &str = "tenantgateway.io/gateway";

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let before = with_transition_times(
            &[],
            &[cond("Accepted", "True", "Accepted")],
            &t("2026-01-01T00:00:00Z"),
        );
        let same = with_transition_times(
            &before,
            &[cond("Accepted", "True", "Accepted")],
            &t("2026-02-02T00:00:00Z"),
        );
        assert_eq!(same[0].last_transition_time, t("2026-01-01T00:00:00Z"));
        let flipped = with_transition_times(
            &same,
            &[cond("Accepted", "False", "NotAllowedByListeners")],
            &t("2026-02-02T00:00:00Z"),
        );
        assert_eq!(flipped[0].last_transition_time, t("2026-02-02T00:00:00Z"));
        assert_eq!(flipped[0].observed_generation, Some(3));
    }

    #[test]
    fn gateway_status_carries_addresses_listeners_and_compares_without_times() {
        let listeners = [WantedListener {
            name: "http".into(),
            supported_kinds: vec![(gwapi::GROUP.into(), "HTTPRoute".into())],
            attached_routes: 2,
            conditions: vec![cond("Programmed", "True", "Programmed")],
        }];
        let addresses = [("IPAddress".to_string(), "10.96.0.9".to_string())];
        let wanted = [cond("Accepted", "True", "Accepted")];
        let first = gateway_status(
            &Value::Null,
            &addresses,
            &wanted,
            &listeners,
            &t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(first["addresses"][0]["value"], "10.96.0.9");
        assert_eq!(first["listeners"][0]["attachedRoutes"], 2);
        assert_eq!(
            first["listeners"][0]["supportedKinds"][0]["kind"],
            "HTTPRoute"
        );
        let later = gateway_status(
            &first,
            &addresses,
            &wanted,
            &listeners,
            &t("2026-03-03T00:00:00Z"),
        );
        assert_eq!(
            later, first,
            "nothing changed: the same status, times included"
        );
        let moved = gateway_status(&first, &addresses, &wanted, &[], &t("2026-03-03T00:00:00Z"));
        assert!(!same_status(&first, &moved));
        let at_another_time = gateway_status(
            &Value::Null,
            &addresses,
            &wanted,
            &listeners,
            &t("2026-05-05T00:00:00Z"),
        );
        assert!(same_status(&first, &at_another_time));
    }

    #[test]
    fn route_parents_replace_only_this_gateways_entries_and_keep_others() {
        let others = json!({"parentRef": {"name": "gw"}, "controllerName": "example.com/other",
                            "conditions": []});
        let other_gateway = json!({"parentRef": {"name": "gw2"}, "controllerName": CTRL,
                                   "conditions": []});
        let stale = json!({"parentRef": {"name": "gw", "sectionName": "gone"},
                           "controllerName": CTRL, "conditions": []});
        let current = vec![others.clone(), other_gateway.clone(), stale];
        let wanted = [WantedParent {
            parent_ref: json!({"name": "gw", "sectionName": "http"}),
            conditions: vec![cond("Accepted", "True", "Accepted")],
        }];
        let now = t("2026-01-01T00:00:00Z");
        let parents = route_parents(&current, CTRL, "app", ("app", "gw"), &wanted, &now);
        assert_eq!(parents.len(), 3, "{parents:#?}");
        assert_eq!(parents[0], others);
        assert_eq!(parents[1], other_gateway);
        assert_eq!(parents[2]["parentRef"]["sectionName"], "http");
        assert_eq!(parents[2]["controllerName"], CTRL);
        // A route that no longer names this Gateway loses only this Gateway's entries.
        let cleared = route_parents(&parents, CTRL, "app", ("app", "gw"), &[], &now);
        assert_eq!(cleared, vec![others, other_gateway]);
    }

    #[test]
    fn two_writers_of_one_route_do_not_reorder_each_other() {
        let now = t("2026-01-01T00:00:00Z");
        let wanted = |name: &str| {
            [WantedParent {
                parent_ref: json!({"name": name}),
                conditions: vec![cond("Accepted", "True", "Accepted")],
            }]
        };
        // gw2's writer came first; gw's entry is added after it.
        let first = route_parents(&[], CTRL, "app", ("app", "gw2"), &wanted("gw2"), &now);
        let both = route_parents(&first, CTRL, "app", ("app", "gw"), &wanted("gw"), &now);
        assert_eq!(both[0]["parentRef"]["name"], "gw2");
        assert_eq!(both[1]["parentRef"]["name"], "gw");
        // Each writer again, later: nothing to write for either.
        let later = t("2026-02-02T00:00:00Z");
        for gw in ["gw", "gw2"] {
            let again = route_parents(&both, CTRL, "app", ("app", gw), &wanted(gw), &later);
            assert_eq!(again, both, "{gw} moved or rewrote an entry");
        }
    }

    #[test]
    fn a_parent_ref_names_a_gateway_by_its_defaults() {
        assert!(names_gateway(&json!({"name": "gw"}), "app", "app", "gw"));
        assert!(names_gateway(
            &json!({"name": "gw", "namespace": "infra", "kind": "Gateway",
                    "group": "gateway.networking.k8s.io"}),
            "app",
            "infra",
            "gw"
        ));
        assert!(!names_gateway(&json!({"name": "gw"}), "app", "infra", "gw"));
        assert!(!names_gateway(
            &json!({"name": "gw", "kind": "Service", "group": ""}),
            "app",
            "app",
            "gw"
        ));
        assert!(!names_gateway(
            &json!({"name": "other"}),
            "app",
            "app",
            "gw"
        ));
    }
}
