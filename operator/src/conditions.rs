//! Status conditions, merged so that a condition whose status did not change
//! keeps its `lastTransitionTime`: status writes stay idempotent and the
//! controller does not wake itself up.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const ACCEPTED: &str = "Accepted";
pub const READY: &str = "Ready";
pub const NAMESPACES_CLAIMED: &str = "NamespacesClaimed";

pub const PROGRAMMED: &str = "Programmed";

pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    condition_with_status(type_, status, reason, message, generation)
}

/// A condition whose status may be `Unknown`.
pub fn condition_with_status(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        // Filled in by `merge`.
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    }
}

/// `new` conditions, each keeping the old `lastTransitionTime` when its status
/// is unchanged, else stamped `now`. Sorted by type.
pub fn merge(old: &[Condition], new: Vec<Condition>, now: &Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = new
        .into_iter()
        .map(|mut c| {
            c.last_transition_time = match old.iter().find(|o| o.type_ == c.type_) {
                Some(o) if o.status == c.status => o.last_transition_time.clone(),
                _ => now.clone(),
            };
            c
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let first = merge(
            &[],
            vec![condition(READY, false, "Pending", "0/2", Some(1))],
            &t(100),
        );
        assert_eq!(first[0].last_transition_time, t(100));
        // Same status, new message and generation: time kept.
        let second = merge(
            &first,
            vec![condition(READY, false, "Pending", "1/2", Some(2))],
            &t(200),
        );
        assert_eq!(second[0].last_transition_time, t(100));
        assert_eq!(second[0].message, "1/2");
        assert_eq!(second[0].observed_generation, Some(2));
        // Status flips: time moves.
        let third = merge(
            &second,
            vec![condition(READY, true, "Available", "2/2", Some(2))],
            &t(300),
        );
        assert_eq!(third[0].last_transition_time, t(300));
    }

    #[test]
    fn merged_conditions_are_sorted_and_dropped_ones_disappear() {
        let old = merge(&[], vec![condition("Old", true, "X", "", None)], &t(1));
        let out = merge(
            &old,
            vec![
                condition(READY, true, "A", "", None),
                condition(ACCEPTED, true, "A", "", None),
            ],
            &t(2),
        );
        let types: Vec<&str> = out.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec![ACCEPTED, READY]);
    }
}
