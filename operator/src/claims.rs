//! Namespace claim arbitration across all TenantGateways.
//!
//! A namespace belongs to at most one tenant: the oldest claim
//! (creationTimestamp, a missing timestamp counting as oldest, then tenant
//! name). Everyone else who wants it gets a conflict naming the holder. The
//! decision is a pure function of the set of requests, so it is the same
//! whatever order the reconciler lists the TenantGateways in, and a namespace
//! moves to the next-oldest claim as soon as its holder lets go of it.

use crds::{NamespaceConflict, TenantGateway};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What one tenant asks for: the namespaces it selects that exist right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub tenant: String,
    pub created: Option<Time>,
    pub wanted: BTreeSet<String>,
}

/// What one tenant gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimDecision {
    /// Namespaces this tenant holds (gets RoleBindings in).
    pub claimed: BTreeSet<String>,
    /// Namespaces it wanted that an older claim holds, sorted by namespace.
    pub conflicts: Vec<NamespaceConflict>,
}

/// A namespace that is being deleted is not claimable: a RoleBinding created
/// there would be deleted with it, and the tenant's watch would end anyway.
fn is_live(ns: &Namespace) -> bool {
    let terminating_phase = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Terminating");
    !terminating_phase && ns.metadata.deletion_timestamp.is_none()
}

/// The claim request of `gw` given every Namespace in the cluster: the union of
/// `spec.namespaces.names` and selector matches, restricted to namespaces that
/// exist and are not terminating. `Err` names the invalid field.
pub fn claim_request(gw: &TenantGateway, namespaces: &[Namespace]) -> Result<ClaimRequest, String> {
    let tenant = gw
        .metadata
        .name
        .clone()
        .ok_or_else(|| "metadata.name: missing".to_string())?;
    let selected = xds::manifests::selected_namespaces(gw, namespaces)?;
    let live: BTreeSet<&str> = namespaces
        .iter()
        .filter(|ns| is_live(ns))
        .filter_map(|ns| ns.metadata.name.as_deref())
        .collect();
    let wanted = selected
        .into_iter()
        .filter(|n| live.contains(n.as_str()))
        .collect();
    Ok(ClaimRequest {
        tenant,
        created: gw.metadata.creation_timestamp.clone(),
        wanted,
    })
}

/// Decide every tenant's claims. Every tenant in `requests` has an entry in
/// the result (possibly empty). Two requests with the same tenant name are
/// merged (oldest timestamp, union of wants) so the result cannot depend on
/// their order.
pub fn arbitrate(requests: &[ClaimRequest]) -> BTreeMap<String, ClaimDecision> {
    // Merge by tenant first: the result must not depend on input order.
    let mut merged: BTreeMap<&str, (Option<&Time>, BTreeSet<&str>)> = BTreeMap::new();
    for r in requests {
        let entry = merged
            .entry(r.tenant.as_str())
            .or_insert_with(|| (r.created.as_ref(), BTreeSet::new()));
        entry.0 = entry.0.min(r.created.as_ref());
        entry.1.extend(r.wanted.iter().map(String::as_str));
    }

    // Seniority: `None < Some(_)` so a missing timestamp is the oldest claim.
    let mut by_seniority: Vec<(Option<&Time>, &str)> =
        merged.iter().map(|(t, (c, _))| (*c, *t)).collect();
    by_seniority.sort();

    let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
    for (_, tenant) in &by_seniority {
        for ns in &merged[tenant].1 {
            holder.entry(ns).or_insert(tenant);
        }
    }

    merged
        .iter()
        .map(|(tenant, (_, wanted))| {
            let mut decision = ClaimDecision::default();
            for ns in wanted {
                match holder.get(ns) {
                    Some(h) if h == tenant => {
                        decision.claimed.insert((*ns).to_string());
                    }
                    Some(h) => decision.conflicts.push(NamespaceConflict {
                        namespace: (*ns).to_string(),
                        holder: (*h).to_string(),
                    }),
                    // Unreachable: every wanted namespace got a holder above.
                    None => {}
                }
            }
            ((*tenant).to_string(), decision)
        })
        .collect()
}

/// Every TenantGateway's claim, arbitrated together; `tenant`'s share.
/// `reserved` (the operator's own namespace) is never claimable: a tenant
/// holding it could read whatever the operator's namespace stores.
pub fn resolve_claims(
    gateways: &[Arc<TenantGateway>],
    namespaces: &[Namespace],
    reserved: &str,
    tenant: &str,
) -> Result<ClaimDecision, String> {
    let requests = claim_requests(gateways, namespaces, reserved, Some(tenant))?;
    Ok(arbitrate(&requests).remove(tenant).unwrap_or_default())
}

/// Every tenant's share, as [`resolve_claims`] decides each (a tenant whose
/// spec cannot be read keeps what its status says it holds).
pub fn resolve_all_claims(
    gateways: &[Arc<TenantGateway>],
    namespaces: &[Namespace],
    reserved: &str,
) -> BTreeMap<String, ClaimDecision> {
    // With no tenant to fail for, claim_requests cannot fail.
    arbitrate(&claim_requests(gateways, namespaces, reserved, None).unwrap_or_default())
}

/// Namespace → the tenant holding it.
pub fn holders(decisions: &BTreeMap<String, ClaimDecision>) -> BTreeMap<String, String> {
    decisions
        .iter()
        .flat_map(|(tenant, d)| d.claimed.iter().map(move |ns| (ns.clone(), tenant.clone())))
        .collect()
}

/// Every live gateway's request; `Err` when `strict`'s own spec is invalid.
fn claim_requests(
    gateways: &[Arc<TenantGateway>],
    namespaces: &[Namespace],
    reserved: &str,
    strict: Option<&str>,
) -> Result<Vec<ClaimRequest>, String> {
    let claimable: Vec<Namespace> = namespaces
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(reserved))
        .cloned()
        .collect();
    let mut requests: Vec<ClaimRequest> = Vec::new();
    for gw in gateways {
        // A gateway being deleted lets go of its namespaces at once.
        if gw.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match claim_request(gw, &claimable) {
            Ok(r) => requests.push(r),
            Err(e) if Some(gw.name_any().as_str()) == strict => return Err(e),
            // An invalid spec is not applied, so that gateway's RoleBindings
            // stay: it keeps holding what it held, or two tenants could read
            // the same namespace.
            Err(_) => requests.push(held_in_status(gw, &claimable)),
        }
    }
    Ok(requests)
}

/// The request of a gateway whose spec cannot be read: the namespaces its
/// status says it holds, where they still exist.
fn held_in_status(gw: &TenantGateway, namespaces: &[Namespace]) -> ClaimRequest {
    ClaimRequest {
        tenant: gw.name_any(),
        created: gw.metadata.creation_timestamp.clone(),
        wanted: gw
            .status
            .iter()
            .flat_map(|s| s.claimed_namespaces.iter().cloned())
            .filter(|n| {
                namespaces
                    .iter()
                    .any(|ns| ns.metadata.name.as_deref() == Some(n.as_str()))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::TenantGatewaySpec;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap())
    }

    fn req(tenant: &str, created: Option<i64>, wanted: &[&str]) -> ClaimRequest {
        ClaimRequest {
            tenant: tenant.into(),
            created: created.map(t),
            wanted: wanted.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn conflict(ns: &str, holder: &str) -> NamespaceConflict {
        NamespaceConflict {
            namespace: ns.into(),
            holder: holder.into(),
        }
    }

    fn ns(name: &str, labels: &[(&str, &str)], terminating: bool) -> Namespace {
        Namespace {
            status: terminating.then(|| NamespaceStatus {
                phase: Some("Terminating".into()),
                ..Default::default()
            }),
            ..crate::build::fixtures::namespace(name, labels)
        }
    }

    fn gw(name: &str, names: &[&str], selector: Option<LabelSelector>) -> TenantGateway {
        let mut g = TenantGateway::new(
            name,
            TenantGatewaySpec {
                namespaces: crds::NamespaceSelection {
                    names: names.iter().map(|s| s.to_string()).collect(),
                    selector,
                },
                ..Default::default()
            },
        );
        g.metadata.creation_timestamp = Some(t(5));
        g
    }

    /// Table: requests in, (tenant, claimed, conflicts) out.
    #[test]
    fn arbitration_table() {
        type Want<'a> = &'a [(&'a str, &'a [&'a str], &'a [(&'a str, &'a str)])];
        let cases: Vec<(&str, Vec<ClaimRequest>, Want<'_>)> = vec![
            (
                "disjoint",
                vec![req("a", Some(1), &["x"]), req("b", Some(2), &["y"])],
                &[("a", &["x"], &[]), ("b", &["y"], &[])],
            ),
            (
                "older wins",
                vec![
                    req("new", Some(9), &["x", "y"]),
                    req("old", Some(1), &["x"]),
                ],
                &[("new", &["y"], &[("x", "old")]), ("old", &["x"], &[])],
            ),
            (
                "tie on timestamp: name decides",
                vec![req("b", Some(3), &["x"]), req("a", Some(3), &["x"])],
                &[("a", &["x"], &[]), ("b", &[], &[("x", "a")])],
            ),
            (
                "missing timestamp is oldest",
                vec![req("a", Some(0), &["x"]), req("z", None, &["x"])],
                &[("a", &[], &[("x", "z")]), ("z", &["x"], &[])],
            ),
            (
                "three-way contention",
                vec![
                    req("c", Some(3), &["shared", "c-only"]),
                    req("a", Some(1), &["shared"]),
                    req("b", Some(2), &["shared", "b-and-c"]),
                    req("d", Some(4), &["b-and-c"]),
                ],
                &[
                    ("a", &["shared"], &[]),
                    ("b", &["b-and-c"], &[("shared", "a")]),
                    ("c", &["c-only"], &[("shared", "a")]),
                    ("d", &[], &[("b-and-c", "b")]),
                ],
            ),
            (
                "tenant wanting nothing still gets an entry",
                vec![req("a", Some(1), &[])],
                &[("a", &[], &[])],
            ),
            (
                "duplicate tenant entries merge",
                vec![
                    req("a", Some(5), &["x"]),
                    req("b", Some(3), &["x", "y"]),
                    req("a", Some(1), &["y"]),
                ],
                &[
                    ("a", &["x", "y"], &[]),
                    ("b", &[], &[("x", "a"), ("y", "a")]),
                ],
            ),
        ];
        for (name, requests, want) in cases {
            let got = arbitrate(&requests);
            let want: BTreeMap<String, ClaimDecision> = want
                .iter()
                .map(|(tenant, claimed, conflicts)| {
                    (
                        tenant.to_string(),
                        ClaimDecision {
                            claimed: set(claimed),
                            conflicts: conflicts.iter().map(|(n, h)| conflict(n, h)).collect(),
                        },
                    )
                })
                .collect();
            assert_eq!(got, want, "case {name:?}");
        }
    }

    #[test]
    fn never_two_holders() {
        let requests = vec![
            req("a", Some(2), &["x", "y", "z"]),
            req("b", Some(2), &["x", "y"]),
            req("c", None, &["z"]),
        ];
        let got = arbitrate(&requests);
        for ns in ["x", "y", "z"] {
            let holders: Vec<_> = got.iter().filter(|(_, d)| d.claimed.contains(ns)).collect();
            assert_eq!(holders.len(), 1, "{ns}: {holders:?}");
        }
    }

    #[test]
    fn claim_moves_when_holder_lets_go_or_is_deleted() {
        let a = req("a", Some(1), &["x"]);
        let b = req("b", Some(2), &["x"]);
        let c = req("c", Some(3), &["x"]);
        let before = arbitrate(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(before["a"].claimed, set(&["x"]));
        assert_eq!(before["c"].conflicts, vec![conflict("x", "a")]);

        // Holder deleted: the next-oldest claim takes over, the rest follow it.
        let after_delete = arbitrate(&[b.clone(), c.clone()]);
        assert!(!after_delete.contains_key("a"));
        assert_eq!(after_delete["b"].claimed, set(&["x"]));
        assert!(after_delete["b"].conflicts.is_empty());
        assert_eq!(after_delete["c"].conflicts, vec![conflict("x", "b")]);

        // Holder stops wanting it (edits its spec).
        let after_edit = arbitrate(&[req("a", Some(1), &[]), b, c]);
        assert!(after_edit["a"].claimed.is_empty() && after_edit["a"].conflicts.is_empty());
        assert_eq!(after_edit["b"].claimed, set(&["x"]));
    }

    /// Every permutation of the input gives the same decision.
    #[test]
    fn order_independent_over_all_permutations() {
        let base = vec![
            req("d", Some(2), &["p", "q"]),
            req("a", Some(2), &["q", "r"]),
            req("c", None, &["r"]),
            req("b", Some(1), &["p", "s"]),
            req("e", Some(0), &["s", "t"]),
        ];
        let expected = arbitrate(&base);
        let mut count = 0;
        let mut perm = base.clone();
        permute(&mut perm, 0, &mut |p| {
            count += 1;
            assert_eq!(arbitrate(p), expected, "permutation {p:?}");
        });
        assert_eq!(count, 120);
        // Sanity: the expected decision is the one the rules give.
        assert_eq!(expected["c"].claimed, set(&["r"]));
        assert_eq!(expected["e"].claimed, set(&["s", "t"]));
        assert_eq!(expected["b"].claimed, set(&["p"]));
        assert_eq!(expected["a"].claimed, set(&["q"]));
        assert_eq!(
            expected["d"].conflicts,
            vec![conflict("p", "b"), conflict("q", "a")]
        );
    }

    fn permute(v: &mut Vec<ClaimRequest>, k: usize, f: &mut dyn FnMut(&[ClaimRequest])) {
        if k == v.len() {
            f(v);
            return;
        }
        for i in k..v.len() {
            v.swap(k, i);
            permute(v, k + 1, f);
            v.swap(k, i);
        }
    }

    #[test]
    fn request_is_names_union_selector_filtered_to_live_namespaces() {
        let all = vec![
            ns("named", &[], false),
            ns("labelled", &[("tenant", "acme")], false),
            ns("both", &[("tenant", "acme")], false),
            ns("other", &[("tenant", "globex")], false),
            ns("dying-named", &[], true),
            ns("dying-labelled", &[("tenant", "acme")], true),
        ];
        let sel = LabelSelector {
            match_labels: Some([("tenant".to_string(), "acme".to_string())].into()),
            ..Default::default()
        };
        let g = gw(
            "acme",
            &["named", "both", "missing", "dying-named"],
            Some(sel),
        );
        let r = claim_request(&g, &all).unwrap();
        assert_eq!(r.tenant, "acme");
        assert_eq!(r.created, Some(t(5)));
        assert_eq!(r.wanted, set(&["both", "labelled", "named"]));
    }

    #[test]
    fn namespace_with_deletion_timestamp_is_not_claimed() {
        let mut dying = ns("x", &[], false);
        dying.metadata.deletion_timestamp = Some(t(1));
        let r = claim_request(&gw("a", &["x"], None), &[dying]).unwrap();
        assert!(r.wanted.is_empty());
    }

    #[test]
    fn invalid_selector_names_the_field() {
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tenant".into(),
                operator: "Equals".into(),
                values: Some(vec!["acme".into()]),
            }]),
            ..Default::default()
        };
        let err = claim_request(&gw("a", &[], Some(sel)), &[ns("x", &[], false)]).unwrap_err();
        assert!(
            err.starts_with("spec.namespaces.selector.matchExpressions[0].operator"),
            "{err}"
        );
    }

    #[test]
    fn missing_name_is_an_error() {
        let mut g = gw("a", &[], None);
        g.metadata.name = None;
        assert_eq!(
            claim_request(&g, &[]).unwrap_err(),
            "metadata.name: missing"
        );
    }

    /// A gateway selecting namespaces labelled `tenant=acme`, created at `age`.
    fn selecting_acme(name: &str, age: i64) -> Arc<TenantGateway> {
        let selector = LabelSelector {
            match_labels: Some([("tenant".to_string(), "acme".to_string())].into()),
            ..Default::default()
        };
        let mut g = gw(name, &[], Some(selector));
        g.metadata.creation_timestamp = Some(t(age));
        Arc::new(g)
    }

    const OPERATOR_NS: &str = "tenant-gateway-system";

    #[test]
    fn the_operator_namespace_is_never_claimed_and_deleting_gateways_release_theirs() {
        let labels = [("tenant", "acme")];
        let namespaces = vec![ns("shop", &labels, false), ns(OPERATOR_NS, &labels, false)];
        let acme = selecting_acme("acme", 10);
        let d = resolve_claims(
            std::slice::from_ref(&acme),
            &namespaces,
            OPERATOR_NS,
            "acme",
        )
        .unwrap();
        assert_eq!(d.claimed, set(&["shop"]));

        // An older gateway wants the same namespace: acme loses it...
        let older = selecting_acme("older", 1);
        let d = resolve_claims(
            &[acme.clone(), older.clone()],
            &namespaces,
            OPERATOR_NS,
            "acme",
        )
        .unwrap();
        assert!(d.claimed.is_empty());
        assert_eq!(d.conflicts, vec![conflict("shop", "older")]);
        // ...until the older one is being deleted.
        let mut deleting = (*older).clone();
        deleting.metadata.deletion_timestamp = Some(t(50));
        let d = resolve_claims(
            &[acme, Arc::new(deleting)],
            &namespaces,
            OPERATOR_NS,
            "acme",
        )
        .unwrap();
        assert_eq!(d.claimed, set(&["shop"]));
    }

    /// What the Gateway controller uses: every tenant's share is what
    /// `resolve_claims` gives that tenant, and each claimed namespace has
    /// one holder.
    #[test]
    fn all_claims_agree_with_each_tenants_and_name_one_holder() {
        let namespaces = vec![
            ns("shop", &[("tenant", "acme")], false),
            ns("lobby", &[], false),
            ns(OPERATOR_NS, &[("tenant", "acme")], false),
        ];
        let gws = [selecting_acme("acme", 10), selecting_acme("older", 1)];
        let all = resolve_all_claims(&gws, &namespaces, OPERATOR_NS);
        for tenant in ["acme", "older"] {
            let one = resolve_claims(&gws, &namespaces, OPERATOR_NS, tenant).unwrap();
            assert_eq!(all[tenant], one, "{tenant}");
        }
        let h = holders(&all);
        assert_eq!(h.get("shop").map(String::as_str), Some("older"));
        assert_eq!(h.get("lobby"), None);
        assert_eq!(h.get(OPERATOR_NS), None, "reserved");
    }

    #[test]
    fn a_gateway_whose_selector_became_invalid_keeps_what_it_held() {
        let namespaces = vec![ns("shop", &[("tenant", "acme")], false)];
        // "holder" is older and holds shop; then its selector turns invalid.
        let mut holder = (*selecting_acme("holder", 1)).clone();
        holder.spec.namespaces.selector = Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tenant".into(),
                operator: "Bogus".into(),
                values: None,
            }]),
            ..Default::default()
        });
        holder.status = Some(crds::TenantGatewayStatus {
            claimed_namespaces: vec!["shop".into()],
            ..Default::default()
        });
        let younger = selecting_acme("younger", 10);
        let gws = [Arc::new(holder.clone()), younger.clone()];
        let d = resolve_claims(&gws, &namespaces, OPERATOR_NS, "younger").unwrap();
        assert!(
            d.claimed.is_empty(),
            "the younger tenant must not get a namespace the invalid one still holds"
        );
        assert_eq!(d.conflicts, vec![conflict("shop", "holder")]);
        // The invalid gateway itself gets the error naming the field.
        assert!(resolve_claims(&gws, &namespaces, OPERATOR_NS, "holder").is_err());
        // Once the holder no longer holds it (status empty), it moves.
        holder.status = None;
        let gws = [Arc::new(holder), younger];
        let d = resolve_claims(&gws, &namespaces, OPERATOR_NS, "younger").unwrap();
        assert_eq!(d.claimed, set(&["shop"]));
    }
}
