//! What the audit concludes: pure functions from a [`Snapshot`] of the
//! cluster (and the SubjectAccessReview answers) to a [`Report`] of tenants,
//! permissions and findings. No I/O: every check is unit-tested on fixtures.

use super::rbac::{
    self, allowed, describe_rule, is_ambient, rule_covered, rule_reads_secrets, Grant, Identity,
    ObjectRef, RbacObjects, Request, Scope,
};
use super::AuditError;
use crate::build::{build_all, build_rbac, names, BuildContext, Desired, Fleet};
use crate::claims::{resolve_claims, ClaimDecision};
use crds::{NamespaceConflict, TenantGateway, LABEL_MANAGED_BY, LABEL_TENANT, MANAGER};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, SecurityContext};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// The operator's own ClusterRole, as shipped.
pub const SHIPPED_OPERATOR_CLUSTER_ROLE: &str =
    include_str!("../../../config/rbac/cluster_role.yaml");
/// The operator's leader-election Role and RoleBinding, as shipped.
pub const SHIPPED_LEADER_ELECTION: &str = include_str!("../../../config/rbac/leader_election.yaml");
/// The reader ClusterRole tenants are bound to, as shipped.
pub const SHIPPED_TENANT_READER: &str =
    include_str!("../../../config/rbac/tenant_reader_cluster_role.yaml");
/// The reader ClusterRole Gateway fleets are bound to, as shipped.
pub const SHIPPED_GATEWAY_READER: &str =
    include_str!("../../../config/rbac/gateway_reader_cluster_role.yaml");
/// The operator's ServiceAccount (config/rbac/service_account.yaml).
pub const OPERATOR_SERVICE_ACCOUNT: &str = names::OPERATOR_NAME;
/// The operator's Deployment (config/manager/deployment.yaml).
pub const OPERATOR_DEPLOYMENT: &str = names::OPERATOR_NAME;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// Which check produced a finding (stable names, for CI filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The tenant's ServiceAccount can do something outside its claimed namespaces.
    PermissionOutsideClaims,
    /// A binding to the tenant's ServiceAccount the operator did not make,
    /// granting only inside claimed namespaces.
    ExtraBinding,
    /// An operator-labelled reader RoleBinding in a namespace the tenant does not hold.
    StaleBinding,
    /// The reader ClusterRole or the tenant's `-self` Role allows more than shipped.
    ManagedRoleWidened,
    /// Two tenants' ServiceAccounts can both read one namespace.
    NamespaceShared,
    /// The live gateway Deployment differs from what the operator builds.
    DeploymentDrift,
    /// The gateway Deployment does not exist.
    DeploymentMissing,
    /// The operator's ServiceAccount holds a rule its shipped RBAC does not have.
    OperatorExcessPermission,
    /// The API server's answer (SubjectAccessReview) disagrees with the RBAC objects.
    AccessReviewMismatch,
    /// A namespace the tenant asks for is held by an older TenantGateway.
    NamespaceConflict,
    /// `status.claimedNamespaces` differs from the claims recomputed now.
    ClaimsStatusStale,
    /// The TenantGateway cannot be evaluated (invalid spec or selector).
    InvalidTenantGateway,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name is the display name.
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    pub check: Check,
    /// `None` for findings about the operator itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The object that causes the finding (the one to fix or delete).
    pub object: ObjectRef,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// How a permission of an audited identity was classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionStatus {
    /// Granted by what the operator creates (or ships, for the operator).
    Expected,
    /// Held by every authenticated identity (discovery, self reviews).
    Ambient,
    /// Anything else: the subject of a finding.
    Unexpected,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Permission {
    pub scope: Scope,
    pub rule: String,
    pub binding: ObjectRef,
    pub role: ObjectRef,
    pub status: PermissionStatus,
}

impl Permission {
    /// What `g` grants, as reported, with its verdict.
    fn of(g: &Grant, status: PermissionStatus) -> Self {
        Permission {
            scope: g.scope.clone(),
            rule: describe_rule(&g.rule),
            binding: g.binding.clone(),
            role: g.role.clone(),
            status,
        }
    }
}

/// One SubjectAccessReview: asked of the API server and compared with the
/// RBAC model.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessCheck {
    /// The tenant; `None` for the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub user: String,
    #[serde(skip)]
    pub groups: Vec<String>,
    pub request: Request,
    /// What the RBAC objects say.
    pub expected: bool,
    /// What the API server says (`None` until asked).
    pub allowed: Option<bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantReport {
    pub tenant: String,
    pub gateway_namespace: String,
    pub service_account: String,
    /// `status.claimedNamespaces` as the operator last wrote it.
    pub claimed_in_status: Vec<String>,
    /// Recomputed now from live Namespaces and TenantGateways.
    pub claimed: Vec<String>,
    /// Asked for, held by an older TenantGateway.
    pub lost: Vec<NamespaceConflict>,
    pub permissions: Vec<Permission>,
    pub access_checks: Vec<AccessCheck>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorReport {
    pub namespace: String,
    pub service_account: String,
    pub permissions: Vec<Permission>,
    pub access_checks: Vec<AccessCheck>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tenants: Vec<TenantReport>,
    pub operator: OperatorReport,
    /// Sorted by severity (highest first), then check, tenant and object.
    pub findings: Vec<Finding>,
    /// Things the audit could not check, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    /// The highest severity found, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// 0: nothing at or above `fail_on`; 1: something is. (2 is for errors,
    /// which never produce a report.)
    pub fn exit_code(&self, fail_on: Severity) -> u8 {
        u8::from(self.findings.iter().any(|f| f.severity >= fail_on))
    }
}

/// Everything the audit reads from the cluster.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub operator_namespace: String,
    pub gateways: Vec<TenantGateway>,
    pub namespaces: Vec<Namespace>,
    pub rbac: RbacObjects,
    /// The live `tgw-<tenant>` Deployments that exist.
    pub deployments: Vec<Deployment>,
    /// The operator's Deployment: the images it builds gateways with.
    pub operator_deployment: Option<Deployment>,
}

/// The shipped manifests the audit compares against.
#[derive(Clone, Debug)]
pub struct Shipped {
    pub operator_rules: Vec<PolicyRule>,
    pub leader_election_rules: Vec<PolicyRule>,
    pub reader_rules: Vec<PolicyRule>,
}

impl Shipped {
    pub fn load() -> Result<Self, AuditError> {
        let cluster_role = |file: &'static str, text: &str| {
            xds::yaml::from_str::<ClusterRole>(text)
                .map(|cr| cr.rules.unwrap_or_default())
                .map_err(|e| AuditError::Shipped {
                    file,
                    source: e.into(),
                })
        };
        let mut leader_election_rules = Vec::new();
        for doc in xds::yaml::documents(SHIPPED_LEADER_ELECTION) {
            let v = doc.map_err(|e| AuditError::Shipped {
                file: "leader_election.yaml",
                source: e.into(),
            })?;
            if v.get("kind").and_then(|k| k.as_str()) == Some("Role") {
                let role: Role = serde_json::from_value(v).map_err(|e| AuditError::Shipped {
                    file: "leader_election.yaml",
                    source: e.into(),
                })?;
                leader_election_rules.extend(role.rules.unwrap_or_default());
            }
        }
        Ok(Self {
            operator_rules: cluster_role("cluster_role.yaml", SHIPPED_OPERATOR_CLUSTER_ROLE)?,
            leader_election_rules,
            reader_rules: cluster_role("tenant_reader_cluster_role.yaml", SHIPPED_TENANT_READER)?,
        })
    }
}

/// The operator's settings, read back from its Deployment: the container's
/// arguments and env values, read by `tenant-gateway operator`'s own parser
/// (same flags, env vars and defaults). `None` when it cannot be found: the
/// audit then does not compare images.
pub fn build_context_from(operator_ns: &str, d: Option<&Deployment>) -> Option<BuildContext> {
    let pod = d?.spec.as_ref()?.template.spec.as_ref()?;
    let c = pod
        .containers
        .iter()
        .find(|c| c.args.iter().flatten().any(|a| a == "operator"))
        .or_else(|| pod.containers.first())?;
    let args = crate::cmd::operator::Args::of_container(c);
    Some(BuildContext {
        operator_namespace: operator_ns.to_string(),
        ..args.build_context()
    })
}

/// One tenant, evaluated: its claims, identity, grants and desired objects.
struct Tenant<'a> {
    gw: &'a TenantGateway,
    name: String,
    gateway_ns: String,
    identity: Identity,
    decision: Result<ClaimDecision, String>,
    /// The recomputed claims, or those in status when they cannot be computed.
    claimed: BTreeSet<String>,
    /// The Role, RoleBindings and Deployment the operator builds.
    desired: Vec<Desired>,
    grants: Vec<Grant>,
}

fn is_audited(filter: &BTreeSet<String>, tenant: &str) -> bool {
    filter.is_empty() || filter.contains(tenant)
}

fn tenants<'a>(snap: &'a Snapshot, ctx: &BuildContext) -> Vec<Tenant<'a>> {
    let all: Vec<Arc<TenantGateway>> = snap.gateways.iter().cloned().map(Arc::new).collect();
    let mut out = Vec::new();
    for gw in &snap.gateways {
        let Some(name) = gw.metadata.name.clone() else {
            continue;
        };
        let gateway_ns = names::gateway_namespace(gw, &snap.operator_namespace);
        let identity = Identity::service_account(&gateway_ns, &names::service_account_name(&name));
        let decision = resolve_claims(&all, &snap.namespaces, &snap.operator_namespace, &name);
        // When claims cannot be computed, the operator keeps what it last
        // applied: the namespaces in status.
        let effective = decision.clone().unwrap_or_else(|_| ClaimDecision {
            claimed: gw
                .status
                .as_ref()
                .map(|s| s.claimed_namespaces.iter().cloned().collect())
                .unwrap_or_default(),
            conflicts: Vec::new(),
        });
        let mut desired = expected_rbac(gw, &effective, ctx);
        // An invalid spec builds no Deployment: nothing to compare.
        desired.extend(
            build_all(gw, &effective, ctx)
                .unwrap_or_default()
                .into_iter()
                .filter(|d| matches!(d, Desired::Deployment(_))),
        );
        let grants = snap.rbac.effective_grants(&identity);
        out.push(Tenant {
            gw,
            name,
            gateway_ns,
            identity,
            claimed: effective.claimed,
            decision,
            desired,
            grants,
        });
    }
    out
}

/// The RBAC the operator applies for a tenant. Built without validating the
/// spec: an invalid TenantGateway keeps the bindings it had.
fn expected_rbac(gw: &TenantGateway, claims: &ClaimDecision, ctx: &BuildContext) -> Vec<Desired> {
    match Fleet::tenant(gw, ctx) {
        Ok(t) => build_rbac(&t, claims),
        Err(_) => Vec::new(),
    }
}

/// The RoleBindings the operator makes for a tenant, with the rules each may
/// grant: the shipped reader rules, or the built `-self` Role's rules.
fn expected_bindings(t: &Tenant<'_>, shipped: &Shipped) -> BTreeMap<ObjectRef, Vec<PolicyRule>> {
    let mut out = BTreeMap::new();
    let roles: BTreeMap<String, Vec<PolicyRule>> = t
        .desired
        .iter()
        .filter_map(|d| match d {
            Desired::Role(r) => Some((
                r.metadata.name.clone().unwrap_or_default(),
                r.rules.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    for d in &t.desired {
        let Desired::RoleBinding(rb) = d else {
            continue;
        };
        let rules = match rb.role_ref.kind.as_str() {
            "ClusterRole" if rb.role_ref.name == names::READER_CLUSTER_ROLE => {
                shipped.reader_rules.clone()
            }
            "Role" => roles.get(&rb.role_ref.name).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        out.insert(
            ObjectRef::new(
                "RoleBinding",
                rb.metadata.namespace.as_deref(),
                rb.metadata.name.as_deref().unwrap_or_default(),
            ),
            rules,
        );
    }
    out
}

fn live_role_binding<'a>(snap: &'a Snapshot, r: &ObjectRef) -> Option<&'a RoleBinding> {
    snap.rbac.role_bindings.iter().find(|rb| {
        rb.metadata.namespace == r.namespace && rb.metadata.name.as_deref() == Some(&r.name)
    })
}

/// An operator-labelled reader RoleBinding of `tenant` (what the reconciler
/// would have made in a namespace the tenant held).
fn is_operator_reader_binding(rb: &RoleBinding, tenant: &str) -> bool {
    let labels = rb.metadata.labels.clone().unwrap_or_default();
    labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER)
        && labels.get(LABEL_TENANT).map(String::as_str) == Some(tenant)
        && rb.role_ref.kind == "ClusterRole"
        && rb.role_ref.name == names::READER_CLUSTER_ROLE
}

fn inside(scope: &Scope, claimed: &BTreeSet<String>) -> bool {
    matches!(scope, Scope::Namespace(ns) if claimed.contains(ns))
}

fn grant_line(g: &Grant) -> String {
    format!(
        "{} {} (via {} -> {})",
        describe_rule(&g.rule),
        g.scope,
        g.binding,
        g.role
    )
}

/// Classifies a tenant's grants and emits the binding findings: at most one
/// finding per binding (stale, outside claims, or extra), plus one per
/// managed role that allows more than shipped.
fn tenant_permissions(
    snap: &Snapshot,
    t: &Tenant<'_>,
    shipped: &Shipped,
    findings: &mut Vec<Finding>,
) -> Vec<Permission> {
    let expected = expected_bindings(t, shipped);
    let desired_ref = |r: &ObjectRef| {
        t.desired.iter().find_map(|d| match d {
            Desired::RoleBinding(rb)
                if rb.metadata.namespace == r.namespace
                    && rb.metadata.name.as_deref() == Some(&r.name) =>
            {
                Some(rb.role_ref.clone())
            }
            _ => None,
        })
    };
    let mut permissions = Vec::new();
    let mut unexpected: BTreeMap<ObjectRef, Vec<&Grant>> = BTreeMap::new();
    let mut widened: BTreeMap<ObjectRef, Vec<&Grant>> = BTreeMap::new();
    for g in &t.grants {
        let status = if is_ambient(&g.rule) {
            PermissionStatus::Ambient
        } else {
            let managed = expected.get(&g.binding).filter(|_| {
                live_role_binding(snap, &g.binding).map(|rb| &rb.role_ref)
                    == desired_ref(&g.binding).as_ref()
            });
            match managed {
                Some(rules) if rule_covered(&g.rule, rules) => PermissionStatus::Expected,
                Some(_) => {
                    widened.entry(g.role.clone()).or_default().push(g);
                    PermissionStatus::Unexpected
                }
                None => {
                    unexpected.entry(g.binding.clone()).or_default().push(g);
                    PermissionStatus::Unexpected
                }
            }
        };
        permissions.push(Permission::of(g, status));
    }

    for (role, grants) in widened {
        findings.push(Finding {
            severity: Severity::High,
            check: Check::ManagedRoleWidened,
            tenant: Some(t.name.clone()),
            object: role.clone(),
            message: format!(
                "{role} allows {} rule(s) beyond what the operator ships or builds",
                grants.len()
            ),
            details: grants.iter().map(|g| grant_line(g)).collect(),
        });
    }

    for (binding, grants) in unexpected {
        findings.push(unexpected_binding(snap, t, binding, &grants));
    }
    permissions
}

/// A binding the operator did not make: stale (a reader binding left in a
/// namespace the tenant lost), outside the claims, or extra inside them.
fn unexpected_binding(
    snap: &Snapshot,
    t: &Tenant<'_>,
    binding: ObjectRef,
    grants: &[&Grant],
) -> Finding {
    let claimed = &t.claimed;
    let outside: Vec<&&Grant> = grants
        .iter()
        .filter(|g| !inside(&g.scope, claimed))
        .collect();
    let secrets = outside.iter().any(|g| rule_reads_secrets(&g.rule));
    let severity = if secrets {
        Severity::Critical
    } else if outside.is_empty() {
        Severity::Medium
    } else {
        Severity::High
    };
    let stale = binding.kind == "RoleBinding"
        && binding.name == names::reader_role_binding_name(&t.name)
        && live_role_binding(snap, &binding)
            .is_some_and(|rb| is_operator_reader_binding(rb, &t.name));
    let (check, message) = if stale {
        (
            Check::StaleBinding,
            format!(
                "operator-labelled reader RoleBinding in namespace {} which {} does not hold",
                binding.namespace.as_deref().unwrap_or_default(),
                t.name
            ),
        )
    } else if !outside.is_empty() {
        let what = if secrets {
            "can read Secrets"
        } else {
            "has permissions"
        };
        let wheres: BTreeSet<String> = outside.iter().map(|g| g.scope.to_string()).collect();
        (
            Check::PermissionOutsideClaims,
            format!(
                "{} {what} outside its claimed namespaces ({}) through a binding the operator did not make",
                t.name,
                wheres.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    } else {
        (
            Check::ExtraBinding,
            format!(
                "binding the operator did not make grants {} more than the reader role in its namespaces",
                t.name
            ),
        )
    };
    Finding {
        severity,
        check,
        tenant: Some(t.name.clone()),
        object: binding,
        message,
        details: grants.iter().map(|g| grant_line(g)).collect(),
    }
}

/// The identities of the tenants' Gateway fleets: the ServiceAccounts the
/// operator's Gateway-fleet RoleBindings name, with their tenant.
fn gateway_fleet_identities(snap: &Snapshot) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rb in &snap.rbac.role_bindings {
        let labels = rb.metadata.labels.clone().unwrap_or_default();
        let ours = labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER)
            && labels.contains_key(names::LABEL_GATEWAY_NAME);
        let Some(tenant) = labels.get(LABEL_TENANT).filter(|_| ours) else {
            continue;
        };
        for s in rb.subjects.iter().flatten() {
            if let (true, Some(ns)) = (s.kind == "ServiceAccount", &s.namespace) {
                out.insert((tenant.clone(), ns.clone(), s.name.clone()));
            }
        }
    }
    out
}

/// A Gateway fleet's identity holds nothing outside its tenant's claimed
/// namespaces: no cluster-scoped permission, no namespace the tenant lost
/// (a fleet whose Gateway's namespace is no longer held shows here through
/// its `-self` binding).
fn gateway_fleet_findings(
    snap: &Snapshot,
    tenants: &[Tenant<'_>],
    filter: &BTreeSet<String>,
    findings: &mut Vec<Finding>,
) {
    let none = BTreeSet::new();
    for (tenant, ns, sa) in gateway_fleet_identities(snap) {
        if !is_audited(filter, &tenant) {
            continue;
        }
        let claimed = tenants
            .iter()
            .find(|t| t.name == tenant)
            .map_or(&none, |t| &t.claimed);
        let grants = snap
            .rbac
            .effective_grants(&Identity::service_account(&ns, &sa));
        let mut outside: BTreeMap<ObjectRef, Vec<&Grant>> = BTreeMap::new();
        for g in grants
            .iter()
            .filter(|g| !is_ambient(&g.rule) && !inside(&g.scope, claimed))
        {
            outside.entry(g.binding.clone()).or_default().push(g);
        }
        for (binding, grants) in outside {
            let secrets = grants.iter().any(|g| rule_reads_secrets(&g.rule));
            let wheres: BTreeSet<String> = grants.iter().map(|g| g.scope.to_string()).collect();
            findings.push(Finding {
                severity: if secrets { Severity::Critical } else { Severity::High },
                check: Check::PermissionOutsideClaims,
                tenant: Some(tenant.clone()),
                object: binding,
                message: format!(
                    "Gateway fleet {ns}/{sa} of {tenant} {} outside the tenant's claimed namespaces ({})",
                    if secrets { "can read Secrets" } else { "has permissions" },
                    wheres.into_iter().collect::<Vec<_>>().join(", ")
                ),
                details: grants.iter().map(|g| grant_line(g)).collect(),
            });
        }
    }
}

/// Reads that expose a namespace's tenant data.
fn tenant_data_reads(ns: &str) -> [Request; 3] {
    [
        Request::new("list", "networking.k8s.io", "ingresses", Some(ns)),
        Request::new("get", "", "secrets", Some(ns)),
        Request::new("list", "", "services", Some(ns)),
    ]
}

fn non_ambient(grants: &[Grant]) -> Vec<Grant> {
    grants
        .iter()
        .filter(|g| !is_ambient(&g.rule))
        .cloned()
        .collect()
}

/// A namespace two audited tenants can both read.
fn shared_namespaces(snap: &Snapshot, tenants: &[&Tenant<'_>], findings: &mut Vec<Finding>) {
    let grants: Vec<(&str, Vec<Grant>)> = tenants
        .iter()
        .map(|t| (t.name.as_str(), non_ambient(&t.grants)))
        .collect();
    for ns in snap
        .namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
    {
        let reads = tenant_data_reads(ns);
        let readers: Vec<(&str, BTreeSet<String>)> = grants
            .iter()
            .filter_map(|(t, gs)| {
                let via: BTreeSet<String> = reads
                    .iter()
                    .flat_map(|r| rbac::allowing(gs, r))
                    .map(|g| g.binding.to_string())
                    .collect();
                (!via.is_empty()).then_some((*t, via))
            })
            .collect();
        if readers.len() < 2 {
            continue;
        }
        findings.push(Finding {
            severity: Severity::High,
            check: Check::NamespaceShared,
            tenant: None,
            object: ObjectRef::new("Namespace", None, ns),
            message: format!(
                "namespace {ns} is readable by {} tenants: {}",
                readers.len(),
                readers
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            details: readers
                .iter()
                .map(|(t, via)| {
                    format!(
                        "{t} via {}",
                        via.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
                .collect(),
        });
    }
}

/// One difference between the built and the live Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub field: String,
    pub live: String,
    pub built: String,
    pub severity: Severity,
}

fn show<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn pod_spec(d: &Deployment) -> PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default()
}

fn all_containers(p: &PodSpec) -> BTreeMap<String, (&'static str, &Container)> {
    let mut out = BTreeMap::new();
    for c in p.init_containers.iter().flatten() {
        out.insert(c.name.clone(), ("initContainers", c));
    }
    for c in &p.containers {
        out.insert(c.name.clone(), ("containers", c));
    }
    out
}

/// Security-relevant differences between the Deployment the operator builds
/// and the live one. Images are compared only when the operator's settings
/// are known.
pub fn deployment_drift(built: &Deployment, live: &Deployment, images: bool) -> Vec<Drift> {
    let (b, l) = (pod_spec(built), pod_spec(live));
    let mut out = Vec::new();
    let mut push = |field: String, live: String, built: String, severity| {
        out.push(Drift {
            field,
            live,
            built,
            severity,
        })
    };
    pod_drift(&b, &l, &mut push);
    let p = POD_SPEC;
    let (bc, lc) = (all_containers(&b), all_containers(&l));
    for (name, (list, c)) in &lc {
        let Some((blist, bc)) = bc.get(name) else {
            push(
                format!("{p}.{list}[{name}]"),
                "present".into(),
                "absent".into(),
                Severity::High,
            );
            continue;
        };
        let at = format!("{p}.{list}[{name}]");
        if list != blist {
            push(at.clone(), (*list).into(), (*blist).into(), Severity::High);
        }
        container_drift(&at, c, bc, images, &mut push);
    }
    for (name, (list, _)) in &bc {
        if !lc.contains_key(name) {
            push(
                format!("{p}.{list}[{name}]"),
                "absent".into(),
                "present".into(),
                Severity::High,
            );
        }
    }
    out
}

const POD_SPEC: &str = "spec.template.spec";

/// Pod-level fields that widen what the gateway pod can do.
fn pod_drift(b: &PodSpec, l: &PodSpec, push: &mut impl FnMut(String, String, String, Severity)) {
    let p = POD_SPEC;
    for (field, lv, bv, sev) in [
        (
            "hostNetwork",
            l.host_network,
            b.host_network,
            Severity::High,
        ),
        ("hostPID", l.host_pid, b.host_pid, Severity::Critical),
        ("hostIPC", l.host_ipc, b.host_ipc, Severity::High),
    ] {
        // Unset and false are the same pod.
        if lv.unwrap_or(false) != bv.unwrap_or(false) {
            push(format!("{p}.{field}"), show(&lv), show(&bv), sev);
        }
    }
    // Unset here means "the ServiceAccount decides": not the same as false.
    if l.automount_service_account_token != b.automount_service_account_token {
        push(
            format!("{p}.automountServiceAccountToken"),
            show(&l.automount_service_account_token),
            show(&b.automount_service_account_token),
            Severity::Medium,
        );
    }
    if l.service_account_name != b.service_account_name {
        push(
            format!("{p}.serviceAccountName"),
            show(&l.service_account_name),
            show(&b.service_account_name),
            Severity::High,
        );
    }
    if l.security_context != b.security_context {
        push(
            format!("{p}.securityContext"),
            show(&l.security_context),
            show(&b.security_context),
            Severity::High,
        );
    }
    for v in l.volumes.iter().flatten() {
        if let Some(hp) = &v.host_path {
            push(
                format!("{p}.volumes[{}].hostPath", v.name),
                show(hp),
                "absent".into(),
                Severity::Critical,
            );
        }
    }
}

/// One container present in both: its image and its securityContext.
fn container_drift(
    at: &str,
    c: &Container,
    bc: &Container,
    images: bool,
    push: &mut impl FnMut(String, String, String, Severity),
) {
    if images && c.image != bc.image {
        push(
            format!("{at}.image"),
            show(&c.image),
            show(&bc.image),
            Severity::Medium,
        );
    }
    let (ls, bs) = (
        c.security_context.clone().unwrap_or_default(),
        bc.security_context.clone().unwrap_or_default(),
    );
    if ls.privileged == Some(true) && bs.privileged != Some(true) {
        push(
            format!("{at}.securityContext.privileged"),
            "true".into(),
            show(&bs.privileged),
            Severity::Critical,
        );
    }
    let caps = |s: &SecurityContext| -> BTreeSet<String> {
        s.capabilities
            .as_ref()
            .and_then(|c| c.add.clone())
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    let added: Vec<String> = caps(&ls).difference(&caps(&bs)).cloned().collect();
    if !added.is_empty() {
        push(
            format!("{at}.securityContext.capabilities.add"),
            show(&added),
            show(&caps(&bs)),
            Severity::High,
        );
    }
    // Whatever else changed in the securityContext, once.
    let strip = |s: &SecurityContext| {
        let mut s = s.clone();
        s.privileged = None;
        if let Some(c) = s.capabilities.as_mut() {
            c.add = None;
        }
        s
    };
    if strip(&ls) != strip(&bs) {
        push(
            format!("{at}.securityContext"),
            show(&c.security_context),
            show(&bc.security_context),
            Severity::High,
        );
    }
}

fn deployment_findings(snap: &Snapshot, t: &Tenant<'_>, images: bool, findings: &mut Vec<Finding>) {
    let Some(built) = t.desired.iter().find_map(|d| match d {
        Desired::Deployment(d) => Some(d),
        _ => None,
    }) else {
        return;
    };
    let name = names::deployment_name(&t.name);
    let object = ObjectRef::new("Deployment", Some(&t.gateway_ns), &name);
    let live = snap.deployments.iter().find(|d| {
        d.metadata.name.as_deref() == Some(&name)
            && d.metadata.namespace.as_deref() == Some(&t.gateway_ns)
    });
    let Some(live) = live else {
        findings.push(Finding {
            severity: Severity::Low,
            check: Check::DeploymentMissing,
            tenant: Some(t.name.clone()),
            object,
            message: "the gateway Deployment does not exist (not reconciled yet?)".into(),
            details: vec![],
        });
        return;
    };
    for d in deployment_drift(built, live, images) {
        findings.push(Finding {
            severity: d.severity,
            check: Check::DeploymentDrift,
            tenant: Some(t.name.clone()),
            object: object.clone(),
            message: format!(
                "{} is {} (the operator builds {})",
                d.field, d.live, d.built
            ),
            details: vec![],
        });
    }
}

fn claims_findings(
    t: &Tenant<'_>,
    findings: &mut Vec<Finding>,
) -> (Vec<String>, Vec<NamespaceConflict>) {
    let object = ObjectRef::new("TenantGateway", None, &t.name);
    let status: BTreeSet<String> =
        t.gw.status
            .as_ref()
            .map(|s| s.claimed_namespaces.iter().cloned().collect())
            .unwrap_or_default();
    match &t.decision {
        Err(e) => {
            findings.push(Finding {
                severity: Severity::Medium,
                check: Check::InvalidTenantGateway,
                tenant: Some(t.name.clone()),
                object,
                message: format!("claims cannot be computed: {e}"),
                details: vec![],
            });
            (Vec::new(), Vec::new())
        }
        Ok(d) => {
            for c in &d.conflicts {
                findings.push(Finding {
                    severity: Severity::Info,
                    check: Check::NamespaceConflict,
                    tenant: Some(t.name.clone()),
                    object: ObjectRef::new("TenantGateway", None, &c.holder),
                    message: format!(
                        "namespace {} is asked for but held by TenantGateway {}",
                        c.namespace, c.holder
                    ),
                    details: vec![],
                });
            }
            if status != d.claimed {
                findings.push(Finding {
                    severity: Severity::Low,
                    check: Check::ClaimsStatusStale,
                    tenant: Some(t.name.clone()),
                    object,
                    message: format!(
                        "status.claimedNamespaces [{}] differs from the claims recomputed now [{}]",
                        status.iter().cloned().collect::<Vec<_>>().join(", "),
                        d.claimed.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    details: vec![],
                });
            }
            (d.claimed.iter().cloned().collect(), d.conflicts.clone())
        }
    }
}

/// The operator's grants, each checked against the shipped ClusterRole (any
/// scope) and the shipped leader-election Role (its own namespace only).
fn operator_permissions(
    snap: &Snapshot,
    shipped: &Shipped,
    findings: &mut Vec<Finding>,
) -> Vec<Permission> {
    let id = Identity::service_account(&snap.operator_namespace, OPERATOR_SERVICE_ACCOUNT);
    let grants = snap.rbac.effective_grants(&id);
    let mut excess: BTreeMap<ObjectRef, Vec<&Grant>> = BTreeMap::new();
    let mut permissions = Vec::new();
    for g in &grants {
        let status = if is_ambient(&g.rule) {
            PermissionStatus::Ambient
        } else if rule_covered(&g.rule, &shipped.operator_rules)
            || (g.scope == Scope::Namespace(snap.operator_namespace.clone())
                && rule_covered(&g.rule, &shipped.leader_election_rules))
        {
            PermissionStatus::Expected
        } else {
            excess.entry(g.binding.clone()).or_default().push(g);
            PermissionStatus::Unexpected
        };
        permissions.push(Permission::of(g, status));
    }
    for (binding, gs) in excess {
        let secrets = gs.iter().any(|g| rule_reads_secrets(&g.rule));
        findings.push(Finding {
            severity: if secrets {
                Severity::Critical
            } else {
                Severity::High
            },
            check: Check::OperatorExcessPermission,
            tenant: None,
            object: binding,
            message: format!(
                "the operator's ServiceAccount {}/{OPERATOR_SERVICE_ACCOUNT} holds {} rule(s) not in the shipped config/rbac{}",
                snap.operator_namespace,
                gs.len(),
                if secrets { ", including Secret reads" } else { "" }
            ),
            details: gs.iter().map(|g| grant_line(g)).collect(),
        });
    }
    permissions
}

/// The SubjectAccessReviews to ask, with what the RBAC objects predict: for
/// every audited tenant, Secret and Ingress reads in every namespace, pod
/// creation in its claimed namespaces and cluster-wide, and cluster-wide
/// reads of namespaces, nodes and Secrets; for the operator, Secret reads.
pub fn plan_access_checks(snap: &Snapshot, filter: &BTreeSet<String>) -> Vec<AccessCheck> {
    let ctx = build_context_from(&snap.operator_namespace, snap.operator_deployment.as_ref())
        .unwrap_or_else(|| BuildContext::with_defaults(&snap.operator_namespace));
    let mut out = Vec::new();
    let namespaces: Vec<&str> = snap
        .namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let mut plan = |tenant: Option<&str>, id: &Identity, grants: &[Grant], req: Request| {
        out.push(AccessCheck {
            tenant: tenant.map(str::to_string),
            user: id.user.clone(),
            groups: id.groups.clone(),
            expected: allowed(grants, &req),
            request: req,
            allowed: None,
            reason: String::new(),
        });
    };
    for t in tenants(snap, &ctx)
        .iter()
        .filter(|t| is_audited(filter, &t.name))
    {
        let tn = Some(t.name.as_str());
        for ns in &namespaces {
            for verb in ["get", "list", "watch"] {
                plan(
                    tn,
                    &t.identity,
                    &t.grants,
                    Request::new(verb, "", "secrets", Some(ns)),
                );
            }
            for verb in ["list", "watch"] {
                plan(
                    tn,
                    &t.identity,
                    &t.grants,
                    Request::new(verb, "networking.k8s.io", "ingresses", Some(ns)),
                );
            }
        }
        for ns in &t.claimed {
            plan(
                tn,
                &t.identity,
                &t.grants,
                Request::new("create", "", "pods", Some(ns)),
            );
        }
        for req in [
            Request::new("create", "", "pods", None),
            Request::new("list", "", "secrets", None),
            Request::new("list", "", "namespaces", None),
            Request::new("list", "", "nodes", None),
            Request::new("list", "networking.k8s.io", "ingresses", None),
        ] {
            plan(tn, &t.identity, &t.grants, req);
        }
    }
    let op = Identity::service_account(&snap.operator_namespace, OPERATOR_SERVICE_ACCOUNT);
    let op_grants = snap.rbac.effective_grants(&op);
    for req in [
        Request::new("list", "", "secrets", None),
        Request::new("get", "", "secrets", Some(&snap.operator_namespace)),
        Request::new("list", "networking.k8s.io", "ingresses", None),
        Request::new("create", "", "pods", None),
    ] {
        plan(None, &op, &op_grants, req);
    }
    out
}

fn access_findings(checks: &[AccessCheck], findings: &mut Vec<Finding>) {
    for c in checks {
        let Some(allowed) = c.allowed else { continue };
        if allowed == c.expected {
            continue;
        }
        let secrets = c.request.resource == "secrets";
        let (severity, message) = if allowed {
            (
                if secrets {
                    Severity::Critical
                } else {
                    Severity::High
                },
                format!(
                    "the API server allows {} {} but no RBAC binding explains it ({})",
                    c.user, c.request, c.reason
                ),
            )
        } else {
            (
                Severity::Info,
                format!(
                    "the RBAC objects allow {} {} but the API server denies it",
                    c.user, c.request
                ),
            )
        };
        findings.push(Finding {
            severity,
            check: Check::AccessReviewMismatch,
            tenant: c.tenant.clone(),
            object: ObjectRef::new("SubjectAccessReview", None, &c.request.to_string()),
            message,
            details: vec![],
        });
    }
}

/// Evaluates the snapshot. `checks` are the planned access checks with the
/// API server's answers (unanswered ones are ignored).
pub fn evaluate(
    snap: &Snapshot,
    checks: &[AccessCheck],
    filter: &BTreeSet<String>,
    shipped: &Shipped,
) -> Report {
    let mut notes = Vec::new();
    let known_ctx = build_context_from(&snap.operator_namespace, snap.operator_deployment.as_ref());
    if known_ctx.is_none() {
        notes.push(format!(
            "operator Deployment {}/{OPERATOR_DEPLOYMENT} not found: gateway images are not compared",
            snap.operator_namespace
        ));
    }
    let images = known_ctx.is_some();
    let ctx = known_ctx.unwrap_or_else(|| BuildContext::with_defaults(&snap.operator_namespace));
    let all = tenants(snap, &ctx);
    let audited: Vec<&Tenant<'_>> = all.iter().filter(|t| is_audited(filter, &t.name)).collect();
    let mut findings = Vec::new();
    let mut reports = Vec::new();
    for t in &audited {
        let (claimed, lost) = claims_findings(t, &mut findings);
        let permissions = tenant_permissions(snap, t, shipped, &mut findings);
        deployment_findings(snap, t, images, &mut findings);
        reports.push(TenantReport {
            tenant: t.name.clone(),
            gateway_namespace: t.gateway_ns.clone(),
            service_account: names::service_account_name(&t.name),
            claimed_in_status: t
                .gw
                .status
                .as_ref()
                .map(|s| s.claimed_namespaces.clone())
                .unwrap_or_default(),
            claimed,
            lost,
            permissions,
            access_checks: checks
                .iter()
                .filter(|c| c.tenant.as_deref() == Some(t.name.as_str()))
                .cloned()
                .collect(),
        });
    }
    shared_namespaces(snap, &audited, &mut findings);
    gateway_fleet_findings(snap, &all, filter, &mut findings);
    let operator = OperatorReport {
        namespace: snap.operator_namespace.clone(),
        service_account: OPERATOR_SERVICE_ACCOUNT.into(),
        permissions: operator_permissions(snap, shipped, &mut findings),
        access_checks: checks
            .iter()
            .filter(|c| c.tenant.is_none())
            .cloned()
            .collect(),
    };
    access_findings(checks, &mut findings);
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.check.cmp(&b.check))
            .then(a.tenant.cmp(&b.tenant))
            .then(a.object.cmp(&b.object))
            .then(a.message.cmp(&b.message))
    });
    Report {
        tenants: reports,
        operator,
        findings,
        notes,
    }
}
