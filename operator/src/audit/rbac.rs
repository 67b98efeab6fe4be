//! RBAC evaluation, as the API server's RBAC authorizer does it: which
//! bindings apply to an identity (directly or through its groups), what the
//! referenced Roles and ClusterRoles (including aggregated ones) allow, and
//! whether one rule set covers another. Pure: objects in, answers out.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The object a finding or a grant points at.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Who is asking: a user name and its groups, as the authenticator gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// A ServiceAccount as the API server authenticates its tokens.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// `(namespace, name)` when this is a ServiceAccount user.
    fn service_account_parts(&self) -> Option<(&str, &str)> {
        let rest = self.user.strip_prefix("system:serviceaccount:")?;
        rest.split_once(':')
    }
}

/// Whether `subject` of a binding (in `binding_ns` for a RoleBinding) names
/// `id`. As in the RBAC authorizer, a ServiceAccount subject without a
/// namespace means the binding's namespace.
pub fn subject_matches(subject: &Subject, id: &Identity, binding_ns: Option<&str>) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == id.user,
        "Group" => id.groups.contains(&subject.name),
        "ServiceAccount" => {
            let Some((ns, name)) = id.service_account_parts() else {
                return false;
            };
            let sub_ns = subject.namespace.as_deref().filter(|s| !s.is_empty());
            subject.name == name && sub_ns.or(binding_ns) == Some(ns)
        }
        _ => false,
    }
}

/// One request attribute set, as in a SubjectAccessReview.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Request {
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `None`: cluster-scoped, or across all namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Request {
    pub fn new(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Self {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (resource, None),
        };
        Self {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource,
            name: None,
            namespace: namespace.map(str::to_string),
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    fn combined_resource(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        write!(f, "{} {}{group}", self.verb, self.combined_resource())?;
        if let Some(n) = &self.name {
            write!(f, "/{n}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

fn has_or_star(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    has_or_star(&rule.verbs, verb)
}

pub fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    has_or_star(rule.api_groups.as_deref().unwrap_or(&[]), group)
}

/// `resources` entries: `*`, `name`, `name/sub`, `*/sub` (any resource's
/// subresource `sub`). A plain `ingresses` does not cover `ingresses/status`.
pub fn resource_matches(rule: &PolicyRule, resource: &str, subresource: Option<&str>) -> bool {
    let combined = match subresource {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    rule.resources.iter().flatten().any(|r| {
        r == "*" || *r == combined || subresource.is_some_and(|s| r.strip_prefix("*/") == Some(s))
    })
}

/// No `resourceNames` in the rule: every name. Otherwise the request must
/// name one of them (a list or a create without a name does not match).
pub fn resource_name_matches(rule: &PolicyRule, name: Option<&str>) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
    }
}

/// `nonResourceURLs`: `*`, an exact path, or a prefix ending in `*`.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .iter()
        .flatten()
        .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
}

/// Whether `rule` allows the resource request (namespace scoping is the
/// binding's business, not the rule's).
pub fn rule_allows(rule: &PolicyRule, req: &Request) -> bool {
    verb_matches(rule, &req.verb)
        && group_matches(rule, &req.group)
        && resource_matches(rule, &req.resource, req.subresource.as_deref())
        && resource_name_matches(rule, req.name.as_deref())
}

/// Whether `rule` allows a non-resource request (`get /healthz`).
pub fn rule_allows_non_resource(rule: &PolicyRule, verb: &str, path: &str) -> bool {
    verb_matches(rule, verb) && non_resource_url_matches(rule, path)
}

/// Where a grant applies. Serialized as the namespace name, or `*` for
/// cluster-wide.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Through a ClusterRoleBinding: every namespace and cluster-scoped objects.
    Cluster,
    /// Through a RoleBinding: this namespace only.
    Namespace(String),
}

impl Scope {
    pub fn applies_to(&self, namespace: Option<&str>) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespace(ns) => namespace == Some(ns.as_str()),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::Cluster => s.serialize_str("*"),
            Scope::Namespace(ns) => s.serialize_str(ns),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Cluster => write!(f, "cluster-wide"),
            Scope::Namespace(ns) => write!(f, "in {ns}"),
        }
    }
}

/// One rule an identity holds, with where it applies and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Grant {
    pub scope: Scope,
    pub rule: PolicyRule,
    /// The RoleBinding or ClusterRoleBinding.
    pub binding: ObjectRef,
    /// The Role or ClusterRole it references.
    pub role: ObjectRef,
}

impl Grant {
    pub fn allows(&self, req: &Request) -> bool {
        self.scope.applies_to(req.namespace.as_deref()) && rule_allows(&self.rule, req)
    }
}

/// Every RBAC object in the cluster, indexed for evaluation.
#[derive(Clone, Debug, Default)]
pub struct RbacObjects {
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

fn labels_of(cr: &ClusterRole) -> BTreeMap<String, String> {
    cr.metadata.labels.clone().unwrap_or_default()
}

impl RbacObjects {
    /// The rules of a ClusterRole, including those aggregated from other
    /// ClusterRoles by its `aggregationRule` (followed transitively, so the
    /// answer does not depend on the aggregation controller having run).
    pub fn cluster_role_rules(&self, name: &str) -> Vec<PolicyRule> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        self.collect_cluster_role_rules(name, &mut seen, &mut out);
        out
    }

    fn collect_cluster_role_rules(
        &self,
        name: &str,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<PolicyRule>,
    ) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some(cr) = self
            .cluster_roles
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
        else {
            return;
        };
        for r in cr.rules.iter().flatten() {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        let selectors = cr
            .aggregation_rule
            .as_ref()
            .and_then(|a| a.cluster_role_selectors.clone())
            .unwrap_or_default();
        for other in &self.cluster_roles {
            let Some(other_name) = other.metadata.name.as_deref() else {
                continue;
            };
            let labels = labels_of(other);
            // An invalid selector selects nothing (the controller skips it too).
            let selected = selectors
                .iter()
                .any(|s| crds::selector::matches(s, &labels).unwrap_or(false));
            if selected {
                self.collect_cluster_role_rules(other_name, seen, out);
            }
        }
    }

    fn role_rules(&self, namespace: &str, name: &str) -> Vec<PolicyRule> {
        self.roles
            .iter()
            .find(|r| {
                r.metadata.name.as_deref() == Some(name)
                    && r.metadata.namespace.as_deref() == Some(namespace)
            })
            .and_then(|r| r.rules.clone())
            .unwrap_or_default()
    }

    /// The role a binding references and its rules. A RoleBinding may
    /// reference a Role in its own namespace or a ClusterRole.
    fn resolve(
        &self,
        role_ref: &RoleRef,
        binding_ns: Option<&str>,
    ) -> (ObjectRef, Vec<PolicyRule>) {
        match (role_ref.kind.as_str(), binding_ns) {
            ("Role", Some(ns)) => (
                ObjectRef::new("Role", Some(ns), &role_ref.name),
                self.role_rules(ns, &role_ref.name),
            ),
            ("ClusterRole", _) => (
                ObjectRef::new("ClusterRole", None, &role_ref.name),
                self.cluster_role_rules(&role_ref.name),
            ),
            // A ClusterRoleBinding to a Role is invalid and grants nothing.
            (kind, _) => (ObjectRef::new(kind, None, &role_ref.name), Vec::new()),
        }
    }

    /// Every rule `id` holds, one [`Grant`] per (binding, rule), sorted by
    /// binding then rule order.
    pub fn effective_grants(&self, id: &Identity) -> Vec<Grant> {
        let mut out = Vec::new();
        for crb in &self.cluster_role_bindings {
            let applies = crb
                .subjects
                .iter()
                .flatten()
                .any(|s| subject_matches(s, id, None));
            if !applies {
                continue;
            }
            let binding = ObjectRef::new(
                "ClusterRoleBinding",
                None,
                crb.metadata.name.as_deref().unwrap_or_default(),
            );
            let (role, rules) = self.resolve(&crb.role_ref, None);
            out.extend(rules.into_iter().map(|rule| Grant {
                scope: Scope::Cluster,
                rule,
                binding: binding.clone(),
                role: role.clone(),
            }));
        }
        for rb in &self.role_bindings {
            let Some(ns) = rb.metadata.namespace.as_deref() else {
                continue;
            };
            let applies = rb
                .subjects
                .iter()
                .flatten()
                .any(|s| subject_matches(s, id, Some(ns)));
            if !applies {
                continue;
            }
            let binding = ObjectRef::new(
                "RoleBinding",
                Some(ns),
                rb.metadata.name.as_deref().unwrap_or_default(),
            );
            let (role, rules) = self.resolve(&rb.role_ref, Some(ns));
            out.extend(rules.into_iter().map(|rule| Grant {
                scope: Scope::Namespace(ns.to_string()),
                rule,
                binding: binding.clone(),
                role: role.clone(),
            }));
        }
        out.sort_by(|a, b| a.binding.cmp(&b.binding));
        out
    }
}

/// Whether any grant allows `req`.
pub fn allowed(grants: &[Grant], req: &Request) -> bool {
    grants.iter().any(|g| g.allows(req))
}

/// The grants that allow `req` (the evidence for an access).
pub fn allowing<'a>(grants: &'a [Grant], req: &Request) -> Vec<&'a Grant> {
    grants.iter().filter(|g| g.allows(req)).collect()
}

fn list_or_star(v: Option<&Vec<String>>) -> Vec<String> {
    v.cloned().unwrap_or_default()
}

/// Whether every request `rule` allows is allowed by some rule of `by`. A
/// wildcard in `rule` is covered only by a wildcard in `by`; a rule without
/// `resourceNames` only by a rule without them.
pub fn rule_covered(rule: &PolicyRule, by: &[PolicyRule]) -> bool {
    let covers_token = |list: Option<&Vec<String>>, want: &str| {
        list.is_some_and(|l| l.iter().any(|x| x == "*" || x == want))
    };
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.iter().flatten() {
            let ok = by.iter().any(|b| {
                covers_token(Some(&b.verbs), verb)
                    && b.non_resource_urls.iter().flatten().any(|u| {
                        u == "*"
                            || u == url
                            || u.strip_suffix('*').is_some_and(|p| url.starts_with(p))
                    })
            });
            if !ok {
                return false;
            }
        }
        for group in list_or_star(rule.api_groups.as_ref()) {
            for resource in list_or_star(rule.resources.as_ref()) {
                let names = rule.resource_names.clone().unwrap_or_default();
                let ok = by.iter().any(|b| {
                    let resource_ok = b.resources.iter().flatten().any(|r| {
                        r == "*"
                            || *r == resource
                            || resource
                                .split_once('/')
                                .is_some_and(|(_, sub)| r.strip_prefix("*/") == Some(sub))
                    });
                    let names_ok = match b.resource_names.as_deref() {
                        None | Some([]) => true,
                        Some(allowed) => {
                            !names.is_empty() && names.iter().all(|n| allowed.contains(n))
                        }
                    };
                    covers_token(Some(&b.verbs), verb)
                        && covers_token(b.api_groups.as_ref(), &group)
                        && resource_ok
                        && names_ok
                });
                if !ok {
                    return false;
                }
            }
        }
    }
    true
}

/// Read verbs that expose object contents.
pub const READ_VERBS: [&str; 3] = ["get", "list", "watch"];

/// Whether `rule` lets its holder read Secrets (get, list or watch; with
/// `resourceNames` it still reads those Secrets).
pub fn rule_reads_secrets(rule: &PolicyRule) -> bool {
    READ_VERBS.iter().any(|v| verb_matches(rule, v))
        && group_matches(rule, "")
        && resource_matches(rule, "secrets", None)
}

/// Rules every authenticated identity holds by Kubernetes' own defaults
/// (discovery, health and version URLs; asking about its own access). Not
/// worth a finding on any cluster.
pub fn is_ambient(rule: &PolicyRule) -> bool {
    let non_resource_get_only = rule
        .non_resource_urls
        .as_ref()
        .is_some_and(|u| !u.is_empty())
        && rule.resources.as_ref().is_none_or(|r| r.is_empty())
        && rule.verbs.iter().all(|v| v == "get" || v == "head");
    let self_review = rule.resources.as_ref().is_some_and(|rs| {
        !rs.is_empty()
            && rs.iter().all(|r| {
                matches!(
                    r.as_str(),
                    "selfsubjectaccessreviews" | "selfsubjectrulesreviews" | "selfsubjectreviews"
                )
            })
    }) && rule.api_groups.as_ref().is_some_and(|gs| {
        gs.iter()
            .all(|g| g == "authorization.k8s.io" || g == "authentication.k8s.io")
    }) && rule.verbs.iter().all(|v| v == "create")
        && rule.non_resource_urls.as_ref().is_none_or(|u| u.is_empty());
    non_resource_get_only || self_review
}

/// A compact one-line form of a rule: `get,list secrets (core)`.
pub fn describe_rule(rule: &PolicyRule) -> String {
    let verbs = rule.verbs.join(",");
    if let Some(urls) = rule.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
        return format!("{verbs} {}", urls.join(","));
    }
    let groups: Vec<&str> = rule
        .api_groups
        .iter()
        .flatten()
        .map(|g| if g.is_empty() { "core" } else { g.as_str() })
        .collect();
    let mut s = format!(
        "{verbs} {} ({})",
        rule.resources.clone().unwrap_or_default().join(","),
        groups.join(",")
    );
    if let Some(names) = rule.resource_names.as_ref().filter(|n| !n.is_empty()) {
        s.push_str(&format!(" names={}", names.join(",")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    pub(crate) fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: s(verbs),
            api_groups: Some(s(groups)),
            resources: Some(s(resources)),
            resource_names: None,
            non_resource_urls: None,
        }
    }

    fn named(mut r: PolicyRule, names: &[&str]) -> PolicyRule {
        r.resource_names = Some(s(names));
        r
    }

    fn urls(verbs: &[&str], u: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: s(verbs),
            non_resource_urls: Some(s(u)),
            ..Default::default()
        }
    }

    #[test]
    fn rule_matching_table() {
        let ing = |verb: &str, res: &str| Request::new(verb, "networking.k8s.io", res, Some("a"));
        let cases: Vec<(&str, PolicyRule, Request, bool)> = vec![
            (
                "verb listed",
                rule(&["get", "list"], &[""], &["secrets"]),
                Request::new("get", "", "secrets", None),
                true,
            ),
            (
                "verb not listed",
                rule(&["get", "list"], &[""], &["secrets"]),
                Request::new("delete", "", "secrets", None),
                false,
            ),
            (
                "verb *",
                rule(&["*"], &[""], &["secrets"]),
                Request::new("delete", "", "secrets", None),
                true,
            ),
            (
                "core group only",
                rule(&["get"], &[""], &["ingresses"]),
                ing("get", "ingresses"),
                false,
            ),
            (
                "group *",
                rule(&["get"], &["*"], &["ingresses"]),
                ing("get", "ingresses"),
                true,
            ),
            (
                "group listed",
                rule(&["get"], &["networking.k8s.io"], &["ingresses"]),
                ing("get", "ingresses"),
                true,
            ),
            (
                "resource * ",
                rule(&["get"], &["*"], &["*"]),
                ing("get", "ingresses/status"),
                true,
            ),
            (
                "resource does not cover its subresource",
                rule(&["update"], &["*"], &["ingresses"]),
                ing("update", "ingresses/status"),
                false,
            ),
            (
                "subresource listed",
                rule(&["update"], &["*"], &["ingresses/status"]),
                ing("update", "ingresses/status"),
                true,
            ),
            (
                "subresource does not cover the resource",
                rule(&["update"], &["*"], &["ingresses/status"]),
                ing("update", "ingresses"),
                false,
            ),
            (
                "*/status",
                rule(&["update"], &["*"], &["*/status"]),
                ing("update", "ingresses/status"),
                true,
            ),
            (
                "*/status not the resource",
                rule(&["update"], &["*"], &["*/status"]),
                ing("update", "ingresses"),
                false,
            ),
            (
                "*/status not another subresource",
                rule(&["get"], &["*"], &["*/status"]),
                Request::new("get", "", "pods/log", None),
                false,
            ),
            (
                "resourceNames: the name",
                named(rule(&["get"], &[""], &["configmaps"]), &["a"]),
                Request::new("get", "", "configmaps", None).named("a"),
                true,
            ),
            (
                "resourceNames: another name",
                named(rule(&["get"], &[""], &["configmaps"]), &["a"]),
                Request::new("get", "", "configmaps", None).named("b"),
                false,
            ),
            (
                "resourceNames: list without name",
                named(rule(&["list"], &[""], &["configmaps"]), &["a"]),
                Request::new("list", "", "configmaps", None),
                false,
            ),
            (
                "empty resourceNames: any",
                named(rule(&["get"], &[""], &["configmaps"]), &[]),
                Request::new("get", "", "configmaps", None).named("z"),
                true,
            ),
            (
                "non-resource rule grants no resource",
                urls(&["get"], &["*"]),
                Request::new("get", "", "secrets", None),
                false,
            ),
        ];
        for (name, r, req, want) in cases {
            assert_eq!(rule_allows(&r, &req), want, "{name}: {r:?} {req}");
        }
    }

    #[test]
    fn non_resource_url_table() {
        let cases = [
            (urls(&["get"], &["/healthz"]), "get", "/healthz", true),
            (urls(&["get"], &["/healthz"]), "get", "/healthz/etcd", false),
            (urls(&["get"], &["/healthz*"]), "get", "/healthz/etcd", true),
            (urls(&["get"], &["/api/*"]), "get", "/api/v1", true),
            (urls(&["get"], &["/api/*"]), "get", "/apis", false),
            (urls(&["get"], &["*"]), "get", "/metrics", true),
            (urls(&["get"], &["*"]), "post", "/metrics", false),
            (urls(&["*"], &["/metrics"]), "post", "/metrics", true),
            (rule(&["get"], &["*"], &["*"]), "get", "/metrics", false),
        ];
        for (r, verb, path, want) in cases {
            assert_eq!(
                rule_allows_non_resource(&r, verb, path),
                want,
                "{r:?} {verb} {path}"
            );
        }
    }

    fn subject(kind: &str, name: &str, ns: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
            api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
        }
    }

    #[test]
    fn subject_matching_table() {
        let id = Identity::service_account("gw", "tgw-acme");
        let cases = [
            (
                subject("ServiceAccount", "tgw-acme", Some("gw")),
                None,
                true,
            ),
            (
                subject("ServiceAccount", "tgw-acme", Some("other")),
                None,
                false,
            ),
            (
                subject("ServiceAccount", "tgw-globex", Some("gw")),
                None,
                false,
            ),
            // RoleBinding subject without namespace: the binding's namespace.
            (
                subject("ServiceAccount", "tgw-acme", None),
                Some("gw"),
                true,
            ),
            (
                subject("ServiceAccount", "tgw-acme", None),
                Some("shop"),
                false,
            ),
            (subject("ServiceAccount", "tgw-acme", None), None, false),
            (
                subject("User", "system:serviceaccount:gw:tgw-acme", None),
                None,
                true,
            ),
            (subject("User", "tgw-acme", None), None, false),
            (subject("Group", "system:serviceaccounts", None), None, true),
            (
                subject("Group", "system:serviceaccounts:gw", None),
                None,
                true,
            ),
            (
                subject("Group", "system:serviceaccounts:shop", None),
                None,
                false,
            ),
            (subject("Group", "system:authenticated", None), None, true),
            (subject("Group", "system:masters", None), None, false),
            (subject("Unknown", "tgw-acme", Some("gw")), None, false),
        ];
        for (sub, binding_ns, want) in cases {
            assert_eq!(
                subject_matches(&sub, &id, binding_ns),
                want,
                "{sub:?} in {binding_ns:?}"
            );
        }
        let user = Identity {
            user: "alice".into(),
            groups: vec![],
        };
        assert!(!subject_matches(
            &subject("ServiceAccount", "alice", Some("gw")),
            &user,
            None
        ));
    }

    fn meta(name: &str, ns: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(str::to_string),
            labels: Some(crate::build::fixtures::label_map(labels)),
            ..Default::default()
        }
    }

    pub(crate) fn cluster_role(
        name: &str,
        labels: &[(&str, &str)],
        rules: Vec<PolicyRule>,
    ) -> ClusterRole {
        ClusterRole {
            metadata: meta(name, None, labels),
            rules: Some(rules),
            aggregation_rule: None,
        }
    }

    fn aggregated(name: &str, labels: &[(&str, &str)], select: &[(&str, &str)]) -> ClusterRole {
        let mut cr = cluster_role(name, labels, vec![]);
        cr.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(
                    select
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                match_expressions: None,
            }]),
        });
        cr
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    pub(crate) fn crb(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: meta(name, None, &[]),
            role_ref: role_ref("ClusterRole", role),
            subjects: Some(subjects),
        }
    }

    fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: meta(name, Some(ns), &[]),
            role_ref: role_ref(kind, role),
            subjects: Some(subjects),
        }
    }

    #[test]
    fn aggregated_cluster_roles_collect_selected_rules_transitively() {
        let objs = RbacObjects {
            cluster_roles: vec![
                aggregated("top", &[], &[("agg-to-top", "true")]),
                // Itself aggregated into `top`, and aggregating `leaf`.
                aggregated("mid", &[("agg-to-top", "true")], &[("agg-to-mid", "true")]),
                cluster_role(
                    "leaf",
                    &[("agg-to-mid", "true")],
                    vec![rule(&["get"], &[""], &["secrets"])],
                ),
                cluster_role(
                    "direct",
                    &[("agg-to-top", "true")],
                    vec![rule(&["list"], &[""], &["pods"])],
                ),
                cluster_role(
                    "unrelated",
                    &[("agg-to-top", "false")],
                    vec![rule(&["*"], &["*"], &["*"])],
                ),
                // A cycle must not loop.
                aggregated("cycle-a", &[("c", "b")], &[("c", "a")]),
                aggregated("cycle-b", &[("c", "a")], &[("c", "b")]),
            ],
            ..Default::default()
        };
        let rules = objs.cluster_role_rules("top");
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert!(rules.contains(&rule(&["get"], &[""], &["secrets"])));
        assert!(rules.contains(&rule(&["list"], &[""], &["pods"])));
        assert!(objs.cluster_role_rules("cycle-a").is_empty());
        assert!(objs.cluster_role_rules("missing").is_empty());

        // Bound through the aggregate, the leaf's rule is granted.
        let id = Identity::service_account("gw", "tgw-acme");
        let mut with_binding = objs.clone();
        with_binding.cluster_role_bindings = vec![crb(
            "to-top",
            "top",
            vec![subject("ServiceAccount", "tgw-acme", Some("gw"))],
        )];
        let grants = with_binding.effective_grants(&id);
        assert!(allowed(
            &grants,
            &Request::new("get", "", "secrets", Some("anywhere"))
        ));
        assert!(!allowed(
            &grants,
            &Request::new("delete", "", "secrets", Some("anywhere"))
        ));
    }

    #[test]
    fn effective_grants_scope_by_binding_kind() {
        let me = subject("ServiceAccount", "tgw-acme", Some("gw"));
        let objs = RbacObjects {
            roles: vec![
                Role {
                    metadata: meta("own", Some("shop"), &[]),
                    rules: Some(vec![rule(&["get"], &[""], &["configmaps"])]),
                },
                Role {
                    metadata: meta("elsewhere", Some("other"), &[]),
                    rules: Some(vec![rule(&["*"], &["*"], &["*"])]),
                },
            ],
            role_bindings: vec![
                rb("shop", "to-role", "Role", "own", vec![me.clone()]),
                rb(
                    "shop",
                    "to-reader",
                    "ClusterRole",
                    "reader",
                    vec![me.clone()],
                ),
                // A RoleBinding can only use Roles of its own namespace.
                rb(
                    "shop",
                    "to-foreign-role",
                    "Role",
                    "elsewhere",
                    vec![me.clone()],
                ),
                rb(
                    "shop",
                    "someone-else",
                    "ClusterRole",
                    "admin",
                    vec![subject("ServiceAccount", "tgw-globex", Some("gw"))],
                ),
                rb(
                    "viagroup",
                    "group",
                    "ClusterRole",
                    "reader",
                    vec![subject("Group", "system:serviceaccounts:gw", None)],
                ),
            ],
            cluster_roles: vec![
                cluster_role("reader", &[], vec![rule(&["list"], &[""], &["secrets"])]),
                cluster_role("admin", &[], vec![rule(&["*"], &["*"], &["*"])]),
                cluster_role("nodes", &[], vec![rule(&["list"], &[""], &["nodes"])]),
            ],
            cluster_role_bindings: vec![crb("nodes", "nodes", vec![me])],
        };
        let g = objs.effective_grants(&Identity::service_account("gw", "tgw-acme"));
        let list_secrets = |ns: Option<&str>| Request::new("list", "", "secrets", ns);
        assert!(allowed(&g, &list_secrets(Some("shop"))));
        assert!(
            allowed(&g, &list_secrets(Some("viagroup"))),
            "through a group"
        );
        assert!(!allowed(&g, &list_secrets(Some("other"))));
        assert!(
            !allowed(&g, &list_secrets(None)),
            "a RoleBinding is not cluster-wide"
        );
        assert!(allowed(
            &g,
            &Request::new("get", "", "configmaps", Some("shop"))
        ));
        assert!(
            !allowed(&g, &Request::new("delete", "", "pods", Some("shop"))),
            "not the foreign Role nor globex's admin"
        );
        assert!(allowed(&g, &Request::new("list", "", "nodes", None)));
        assert!(allowed(&g, &Request::new("list", "", "nodes", Some("any"))));
        let bindings: BTreeSet<String> = g.iter().map(|x| x.binding.to_string()).collect();
        assert_eq!(
            bindings.into_iter().collect::<Vec<_>>(),
            [
                "ClusterRoleBinding/nodes",
                "RoleBinding/shop/to-reader",
                "RoleBinding/shop/to-role",
                "RoleBinding/viagroup/group"
            ]
        );
    }

    #[test]
    fn rule_coverage_table() {
        let shipped = vec![
            rule(&["get", "list", "watch"], &[""], &["services", "secrets"]),
            rule(
                &["update", "patch"],
                &["networking.k8s.io"],
                &["ingresses/status"],
            ),
            named(
                rule(&["bind"], &["rbac.authorization.k8s.io"], &["clusterroles"]),
                &["reader"],
            ),
            urls(&["get"], &["/metrics"]),
        ];
        let cases = [
            ("subset of verbs", rule(&["get"], &[""], &["secrets"]), true),
            (
                "two rules together",
                rule(&["list"], &[""], &["services", "secrets"]),
                true,
            ),
            (
                "extra verb",
                rule(&["get", "delete"], &[""], &["secrets"]),
                false,
            ),
            ("extra resource", rule(&["get"], &[""], &["pods"]), false),
            (
                "other group",
                rule(&["get"], &["apps"], &["services"]),
                false,
            ),
            ("verb wildcard", rule(&["*"], &[""], &["secrets"]), false),
            (
                "group wildcard",
                rule(&["get"], &["*"], &["secrets"]),
                false,
            ),
            ("resource wildcard", rule(&["get"], &[""], &["*"]), false),
            (
                "subresource",
                rule(&["patch"], &["networking.k8s.io"], &["ingresses/status"]),
                true,
            ),
            (
                "not the parent of a subresource",
                rule(&["patch"], &["networking.k8s.io"], &["ingresses"]),
                false,
            ),
            (
                "named within",
                named(
                    rule(&["bind"], &["rbac.authorization.k8s.io"], &["clusterroles"]),
                    &["reader"],
                ),
                true,
            ),
            (
                "other name",
                named(
                    rule(&["bind"], &["rbac.authorization.k8s.io"], &["clusterroles"]),
                    &["admin"],
                ),
                false,
            ),
            (
                "no names = all names",
                rule(&["bind"], &["rbac.authorization.k8s.io"], &["clusterroles"]),
                false,
            ),
            ("url", urls(&["get"], &["/metrics"]), true),
            ("other url", urls(&["get"], &["/debug/pprof"]), false),
        ];
        for (name, r, want) in cases {
            assert_eq!(rule_covered(&r, &shipped), want, "{name}");
        }
        let star = vec![rule(&["*"], &["*"], &["*"])];
        assert!(rule_covered(&rule(&["*"], &["*"], &["*"]), &star));
        assert!(rule_covered(
            &named(rule(&["get"], &["x"], &["y/z"]), &["n"]),
            &star
        ));
    }

    #[test]
    fn secrets_and_ambient_classification() {
        assert!(rule_reads_secrets(&rule(&["get"], &[""], &["secrets"])));
        assert!(rule_reads_secrets(&rule(&["*"], &["*"], &["*"])));
        assert!(rule_reads_secrets(&named(
            rule(&["get"], &[""], &["secrets"]),
            &["one"]
        )));
        assert!(!rule_reads_secrets(&rule(
            &["create", "delete"],
            &[""],
            &["secrets"]
        )));
        assert!(!rule_reads_secrets(&rule(
            &["get"],
            &["apps"],
            &["secrets"]
        )));
        assert!(!rule_reads_secrets(&rule(&["get"], &[""], &["configmaps"])));

        assert!(is_ambient(&urls(&["get"], &["/api", "/api/*", "/version"])));
        assert!(is_ambient(&rule(
            &["create"],
            &["authorization.k8s.io"],
            &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]
        )));
        assert!(!is_ambient(&urls(&["post"], &["/api"])));
        assert!(!is_ambient(&rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews"]
        )));
        assert!(!is_ambient(&rule(
            &["create"],
            &["*"],
            &["selfsubjectaccessreviews"]
        )));
        assert!(!is_ambient(&rule(&["get"], &[""], &["secrets"])));
    }
}
