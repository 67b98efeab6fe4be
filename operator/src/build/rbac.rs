//! The tenant's identity and what it may read: a ServiceAccount, a RoleBinding
//! to the reader ClusterRole in each claimed namespace (and nowhere else), and
//! a Role in the gateway namespace for its own claims ConfigMap and Service.

use super::meta::Fleet;
use crate::claims::ClaimDecision;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const READ: [&str; 3] = ["get", "list", "watch"];

pub fn build_service_account(t: &Fleet<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: t.meta_in_gateway_ns(t.names().workload.clone()),
        // Only the sidecar gets a token, through its own projected volume.
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

fn subject(t: &Fleet<'_>) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        api_group: None,
        name: t.names().workload.clone(),
        namespace: Some(t.namespace().to_string()),
    }
}

/// One RoleBinding per claimed namespace, sorted by namespace. Conflicted
/// namespaces get none: the API server then refuses the sidecar's reads there.
pub fn build_reader_role_bindings(t: &Fleet<'_>, claims: &ClaimDecision) -> Vec<RoleBinding> {
    claims
        .claimed
        .iter()
        .map(|ns| RoleBinding {
            metadata: t.meta(t.names().reader_binding.clone(), Some(ns)),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "ClusterRole".into(),
                name: t.reader_cluster_role().into(),
            },
            subjects: Some(vec![subject(t)]),
        })
        .collect()
}

fn named(group: &str, resource: &str, name: String, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        resource_names: Some(vec![name]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        non_resource_urls: None,
    }
}

/// Read access to exactly the fleet's claims ConfigMap and Service (and a
/// Gateway fleet's own Gateway, whose status it writes). With resourceNames,
/// list/watch are allowed only with a `metadata.name=<name>` field selector.
pub fn build_self_role(t: &Fleet<'_>) -> Role {
    let mut rules = vec![
        named("", "configmaps", t.names().claims_config_map.clone(), &READ),
        named("", "services", t.names().workload.clone(), &READ),
    ];
    if let Some(g) = t.gateway_fleet() {
        rules.push(named(gwapi::GROUP, "gateways", g.name.clone(), &READ));
        rules.push(named(
            gwapi::GROUP,
            "gateways/status",
            g.name.clone(),
            &["get", "update", "patch"],
        ));
    }
    Role {
        metadata: t.meta_in_gateway_ns(t.names().self_role.clone()),
        rules: Some(rules),
    }
}

pub fn build_self_role_binding(t: &Fleet<'_>) -> RoleBinding {
    RoleBinding {
        metadata: t.meta_in_gateway_ns(t.names().self_role.clone()),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "Role".into(),
            name: t.names().self_role.clone(),
        },
        subjects: Some(vec![subject(t)]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{claims, ctx, tenant};
    use super::*;

    #[test]
    fn service_account_has_no_automounted_token() {
        let (gw, ctx) = (tenant("acme"), ctx());
        let t = Fleet::tenant(&gw, &ctx).unwrap();
        let sa = build_service_account(&t);
        assert_eq!(sa.metadata.name.as_deref(), Some("tgw-acme"));
        assert_eq!(
            sa.metadata.namespace.as_deref(),
            Some("tenant-gateway-system")
        );
        assert_eq!(sa.automount_service_account_token, Some(false));
    }

    #[test]
    fn reader_bindings_only_in_claimed_namespaces() {
        let (gw, ctx) = (tenant("acme"), ctx());
        let t = Fleet::tenant(&gw, &ctx).unwrap();
        let decision = claims(&["shop-b", "shop-a"], &[("contested", "globex")]);
        let rbs = build_reader_role_bindings(&t, &decision);
        let namespaces: Vec<_> = rbs
            .iter()
            .map(|rb| rb.metadata.namespace.as_deref().unwrap())
            .collect();
        assert_eq!(
            namespaces,
            ["shop-a", "shop-b"],
            "sorted, no conflicted namespace"
        );
        for rb in &rbs {
            assert_eq!(rb.metadata.name.as_deref(), Some("tgw-acme"));
            assert_eq!(
                rb.role_ref,
                RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "tenant-gateway-tenant-reader".into(),
                }
            );
            assert_eq!(
                rb.subjects,
                Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    api_group: None,
                    name: "tgw-acme".into(),
                    namespace: Some("tenant-gateway-system".into()),
                }])
            );
        }
        assert!(build_reader_role_bindings(&t, &claims(&[], &[("x", "y")])).is_empty());
    }

    #[test]
    fn self_role_is_limited_to_own_objects() {
        let mut gw = tenant("acme");
        gw.spec.gateway_namespace = Some("acme-gw".into());
        let ctx = ctx();
        let t = Fleet::tenant(&gw, &ctx).unwrap();
        let role = build_self_role(&t);
        assert_eq!(role.metadata.name.as_deref(), Some("tgw-acme-self"));
        assert_eq!(role.metadata.namespace.as_deref(), Some("acme-gw"));
        let rules: Vec<_> = role
            .rules
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.api_groups.unwrap(),
                    r.resources.unwrap(),
                    r.resource_names.unwrap(),
                    r.verbs,
                )
            })
            .collect();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rules,
            vec![
                (
                    s(&[""]),
                    s(&["configmaps"]),
                    s(&["tgw-acme-claims"]),
                    s(&READ)
                ),
                (s(&[""]), s(&["services"]), s(&["tgw-acme"]), s(&READ)),
            ]
        );
        let rb = build_self_role_binding(&t);
        assert_eq!(rb.metadata.namespace.as_deref(), Some("acme-gw"));
        assert_eq!(rb.role_ref.kind, "Role");
        assert_eq!(rb.role_ref.name, "tgw-acme-self");
        let subj = &rb.subjects.unwrap()[0];
        assert_eq!(
            (subj.name.as_str(), subj.namespace.as_deref()),
            ("tgw-acme", Some("acme-gw"))
        );
    }
}
