//! Which listeners a route attaches to, and under which hostnames: the
//! parentRef (sectionName, port), the listener's allowedRoutes (kinds,
//! namespaces inside the tenant) and listener ∩ route hostnames.

use super::listeners::{AllowedNamespaces, Listener};
use super::spec::ParentRef;
use super::RouteKind;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct SelectorSpec {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<ExpressionSpec>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ExpressionSpec {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A Kubernetes label selector (matchLabels and matchExpressions, all must hold).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub(super) fn parse(s: SelectorSpec) -> Result<Self, String> {
        let mut reqs: Vec<Requirement> = s
            .match_labels
            .into_iter()
            .map(|(k, v)| Requirement::In(k, vec![v]))
            .collect();
        for e in s.match_expressions {
            reqs.push(match e.operator.as_str() {
                "In" => Requirement::In(e.key, e.values),
                "NotIn" => Requirement::NotIn(e.key, e.values),
                "Exists" => Requirement::Exists(e.key),
                "DoesNotExist" => Requirement::DoesNotExist(e.key),
                other => return Err(format!("unknown selector operator {other:?}")),
            });
        }
        Ok(Self(reqs))
    }

    pub(super) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// A DNS name as Gateway API hostnames are (RFC 1123 labels, an optional
/// leading `*.` label, no IP address): Envoy refuses a listener or route
/// table with anything else.
pub(super) fn valid_hostname(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && h.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `name` is matched by the wildcard `*.suffix` (one or more labels in front).
fn wildcard_matches(wildcard: &str, name: &str) -> bool {
    let Some(suffix) = wildcard.strip_prefix('*') else {
        return false;
    };
    name.len() > suffix.len() && name.ends_with(suffix)
}

/// The hostname requests must have to reach a route with `route` hostname
/// on a listener with `listener` hostname (the more specific of the two),
/// None when they do not intersect.
pub(super) fn intersect(listener: Option<&str>, route: &str) -> Option<String> {
    let Some(l) = listener else {
        return Some(route.to_string());
    };
    if l == route {
        return Some(route.to_string());
    }
    if l.starts_with("*.") && wildcard_matches(l, route) {
        return Some(route.to_string());
    }
    if route.starts_with("*.") && wildcard_matches(route, l) {
        return Some(l.to_string());
    }
    None
}

/// The hostnames a route answers on a listener; empty when none intersect.
/// `None` in the result is "any host".
pub(super) fn effective_hostnames(listener: Option<&str>, route: &[String]) -> Vec<Option<String>> {
    if route.is_empty() {
        return vec![listener.map(str::to_string)];
    }
    let mut out: Vec<Option<String>> = route
        .iter()
        .filter_map(|h| intersect(listener, h))
        .map(Some)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the parentRef names this Gateway.
pub(super) fn names_gateway(p: &ParentRef, route_ns: &str, gw_ns: &str, gw_name: &str) -> bool {
    p.group.as_deref().unwrap_or(gwapi::GROUP) == gwapi::GROUP
        && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        && p.namespace.as_deref().unwrap_or(route_ns) == gw_ns
        && p.name == gw_name
}

/// Why a route attached nowhere (the route's `Accepted=False` reason and message).
pub(super) type Refusal = (&'static str, String);

/// The listeners (indices) a parentRef attached a route to, each with the
/// hostnames it answers there (`None`: any).
pub(super) type Attached = Vec<(usize, Vec<Option<String>>)>;

/// The listeners (indices) a route attaches to through one parentRef, each
/// with its hostnames.
pub(super) fn attach(
    p: &ParentRef,
    kind: RouteKind,
    route_ns: &str,
    hostnames: &[String],
    listeners: &[Listener],
    gateway_ns: &str,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Attached, Refusal> {
    let selected: Vec<&Listener> = listeners
        .iter()
        .filter(|l| p.section_name.as_deref().is_none_or(|s| s == l.name))
        .filter(|l| p.port.is_none_or(|port| i32::from(l.port) == port))
        .collect();
    if selected.is_empty() {
        return Err((
            "NoMatchingParent",
            match (&p.section_name, p.port) {
                (Some(s), Some(port)) => {
                    format!("the Gateway has no listener {s:?} on port {port}")
                }
                (Some(s), None) => format!("the Gateway has no listener {s:?}"),
                (None, Some(port)) => format!("the Gateway has no listener on port {port}"),
                (None, None) => "the Gateway has no listeners".into(),
            },
        ));
    }
    let Some(labels) = namespaces.get(route_ns) else {
        return Err((
            "NotAllowedByListeners",
            format!("namespace {route_ns:?} is not one of the tenant's: its routes never attach to the tenant's Gateways"),
        ));
    };
    let allowed: Vec<&Listener> = selected
        .into_iter()
        .filter(|l| l.usable() && l.kinds.contains(&kind))
        .filter(|l| match &l.namespaces {
            AllowedNamespaces::Same => route_ns == gateway_ns,
            AllowedNamespaces::All => true,
            AllowedNamespaces::Selector(s) => s.as_ref().is_some_and(|s| s.matches(labels)),
        })
        .collect();
    if allowed.is_empty() {
        return Err((
            "NotAllowedByListeners",
            format!(
                "no listener selected by the parentRef allows {} from namespace {route_ns:?}",
                kind.as_str()
            ),
        ));
    }
    let attached: Attached = allowed
        .into_iter()
        .map(|l| (l, effective_hostnames(l.hostname.as_deref(), hostnames)))
        .filter(|(_, h)| !h.is_empty())
        .map(|(l, h)| (l.index, isolated(l, h, listeners)))
        .collect();
    if attached.is_empty() {
        return Err((
            "NoMatchingListenerHostname",
            "no hostname of the route intersects the hostname of a listener it may attach to"
                .into(),
        ));
    }
    Ok(attached)
}

/// Listener isolation: a request goes to the most specific listener of its
/// port that matches its host, so a route of `l` does not answer the hosts
/// that a more specific listener on the port covers.
fn isolated(
    l: &Listener,
    hosts: Vec<Option<String>>,
    listeners: &[Listener],
) -> Vec<Option<String>> {
    let more_specific: Vec<&str> = listeners
        .iter()
        .filter(|o| o.index != l.index && o.port == l.port && o.usable())
        .filter_map(|o| o.hostname.as_deref())
        .filter(|h2| match l.hostname.as_deref() {
            None => true,
            Some(mine) => *h2 != mine && wildcard_matches(mine, h2),
        })
        .collect();
    hosts
        .into_iter()
        .filter(|h| match h {
            None => true,
            Some(h) => !more_specific
                .iter()
                .any(|h2| h == h2 || wildcard_matches(h2, h)),
        })
        .collect()
}
