//! Gateway API status, computed (the sidecar writes it): conditions of the
//! Gateway, its listeners and each route's parent.

use super::spec::ParentRef;

/// One `metav1.Condition` without `lastTransitionTime` (the writer keeps or sets it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConditionModel {
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub observed_generation: Option<i64>,
}

impl ConditionModel {
    pub(super) fn new(
        type_: &str,
        ok: bool,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerStatusModel {
    pub name: String,
    /// (group, kind) of the route kinds the listener accepts.
    pub supported_kinds: Vec<(String, String)>,
    pub attached_routes: i32,
    /// Accepted, Programmed, ResolvedRefs, Conflicted.
    pub conditions: Vec<ConditionModel>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayStatusModel {
    /// Accepted, Programmed.
    pub conditions: Vec<ConditionModel>,
    /// In spec order.
    pub listeners: Vec<ListenerStatusModel>,
}

/// The status of one route for one of its parentRefs that names this Gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteStatusModel {
    /// `HTTPRoute`, `GRPCRoute`, `TLSRoute`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The parentRef as written.
    pub parent_ref: ParentRef,
    /// Accepted, ResolvedRefs, and PartiallyInvalid when some rules were dropped.
    pub conditions: Vec<ConditionModel>,
}

impl RouteStatusModel {
    pub fn condition(&self, type_: &str) -> Option<&ConditionModel> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl ListenerStatusModel {
    pub fn condition(&self, type_: &str) -> Option<&ConditionModel> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl GatewayStatusModel {
    pub fn condition(&self, type_: &str) -> Option<&ConditionModel> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
    pub fn listener(&self, name: &str) -> Option<&ListenerStatusModel> {
        self.listeners.iter().find(|l| l.name == name)
    }
}
