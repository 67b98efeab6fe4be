//! Which other tenants a change must reconcile. A tenant's pass reads more
//! than its own object: the claims arbitrated over every TenantGateway and
//! Namespace, the host ports of the older hostNetwork tenants, and the Nodes
//! its published addresses come from. Reconciling every tenant on every
//! change of any of them made the work quadratic in the number of tenants
//! (each pass writes its own status, which is a TenantGateway change), so
//! here the shared part of every tenant's inputs is computed once per batch
//! of changes and only the tenants whose part differs are reconciled; a
//! tenant's own changes reach it through the controller's primary watch.

use crate::build::{self, node_inputs, NodeInput};
use crate::claims::{resolve_all_claims, ClaimDecision};
use crds::TenantGateway;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Changes arriving within this long are looked at together.
pub const BATCH: Duration = Duration::from_millis(20);

/// What a tenant's pass reads of the others and of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared {
    pub claims: ClaimDecision,
    /// The `spec.hostNetwork` conflicts with older tenants, as reported.
    pub host_network: Vec<String>,
}

/// Every tenant's shared inputs, and the Nodes' (which every tenant reads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct World {
    pub tenants: BTreeMap<String, Shared>,
    pub nodes: Vec<NodeInput>,
}

impl World {
    pub fn of(
        gateways: &[Arc<TenantGateway>],
        namespaces: &[Namespace],
        nodes: &[Arc<Node>],
        reserved: &str,
    ) -> Self {
        let mut claims = resolve_all_claims(gateways, namespaces, reserved);
        let all: Vec<&TenantGateway> = gateways.iter().map(|g| &**g).collect();
        let tenants = gateways
            .iter()
            .filter(|g| g.metadata.deletion_timestamp.is_none())
            .map(|g| {
                let name = g.name_any();
                let shared = Shared {
                    claims: claims.remove(&name).unwrap_or_default(),
                    host_network: build::host_network_conflicts(g, &all)
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                };
                (name, shared)
            })
            .collect();
        Self {
            tenants,
            nodes: node_inputs(nodes),
        }
    }

    /// The tenants of `self` to reconcile after `before`: every one when the
    /// Nodes changed, else those whose shared inputs differ. A tenant new in
    /// `self` is left to its own watch event.
    pub fn changed_since(&self, before: &World) -> Vec<String> {
        let all_nodes = self.nodes != before.nodes;
        self.tenants
            .iter()
            .filter(|(name, shared)| {
                before
                    .tenants
                    .get(*name)
                    .is_some_and(|was| all_nodes || was != *shared)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Until the sender is dropped: after each batch of changes that `changed`
/// signals, the tenants whose shared inputs moved go to `tx`. The stores are
/// the ones their passes read, so a tenant sent here reads the change. The
/// caller has waited for the Namespace and Node stores' first lists; `listed`
/// turns true after the TenantGateways' (the controller itself waits on that
/// store, and a Store wakes only one of several waiters).
pub async fn run(
    gateways: Store<TenantGateway>,
    namespaces: Store<Namespace>,
    nodes: Store<Node>,
    reserved: String,
    (changed, mut listed): (Arc<Notify>, tokio::sync::watch::Receiver<bool>),
    tx: futures::channel::mpsc::UnboundedSender<ObjectRef<TenantGateway>>,
) {
    if listed.wait_for(|done| *done).await.is_err() {
        return;
    }
    let world = || {
        let ns = super::namespaces_of(&namespaces);
        World::of(&gateways.state(), &ns, &nodes.state(), &reserved)
    };
    let mut last = world();
    loop {
        changed.notified().await;
        tokio::time::sleep(BATCH).await;
        let now = world();
        for tenant in now.changed_since(&last) {
            if tx.unbounded_send(ObjectRef::new(&tenant)).is_err() {
                return;
            }
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn gw(name: &str, age: i64, wants: &[&str]) -> Arc<TenantGateway> {
        Arc::new(crate::test_objects::tenant(name, age, wants))
    }

    fn ns(name: &str) -> Namespace {
        crate::test_objects::namespace(name)
    }

    fn node(name: &str, ip: &str, heartbeat: i64) -> Arc<Node> {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {
                "addresses": [{"type": "InternalIP", "address": ip}],
                "conditions": [{"type": "Ready", "status": "True",
                    "lastHeartbeatTime": k8s_openapi::jiff::Timestamp::from_second(heartbeat).unwrap().to_string()}]
            }
        }))
        .unwrap();
        Arc::new(n)
    }

    fn world(gws: &[Arc<TenantGateway>], namespaces: &[&str], nodes: &[Arc<Node>]) -> World {
        let namespaces: Vec<Namespace> = namespaces.iter().map(|n| ns(n)).collect();
        World::of(gws, &namespaces, nodes, "tenant-gateway-system")
    }

    #[test]
    fn a_status_change_of_one_tenant_reconciles_no_other() {
        let (a, b) = (gw("a", 1, &["shop"]), gw("b", 2, &["blog"]));
        let before = world(&[a.clone(), b.clone()], &["shop", "blog"], &[]);
        let mut a2 = (*a).clone();
        a2.status = Some(crds::TenantGatewayStatus {
            observed_generation: Some(7),
            ..Default::default()
        });
        let after = world(&[Arc::new(a2), b], &["shop", "blog"], &[]);
        assert_eq!(after.changed_since(&before), Vec::<String>::new());
    }

    #[test]
    fn creating_many_tenants_with_their_own_namespaces_reconciles_no_other() {
        let namespaces: Vec<String> = (0..50).map(|i| format!("ns{i}")).collect();
        let names: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        let mut gws = Vec::new();
        let mut last = world(&gws, &names, &[]);
        for (i, n) in names.iter().enumerate() {
            gws.push(gw(&format!("t{i}"), i as i64, &[n]));
            let now = world(&gws, &names, &[]);
            assert_eq!(now.changed_since(&last), Vec::<String>::new(), "t{i}");
            last = now;
        }
    }

    #[test]
    fn deleting_the_holder_reconciles_the_tenant_that_waited() {
        let (old, young, other) = (
            gw("old", 1, &["shop"]),
            gw("young", 2, &["shop"]),
            gw("other", 3, &["blog"]),
        );
        let before = world(
            &[old.clone(), young.clone(), other.clone()],
            &["shop", "blog"],
            &[],
        );
        assert!(before.tenants["young"].claims.claimed.is_empty());
        // Gone from the store…
        let after = world(&[young.clone(), other.clone()], &["shop", "blog"], &[]);
        assert_eq!(after.changed_since(&before), ["young"]);
        // …or being deleted (it lets go at once).
        let mut deleting = (*old).clone();
        deleting.metadata.deletion_timestamp =
            Some(Time(k8s_openapi::jiff::Timestamp::from_second(9).unwrap()));
        let after = world(&[Arc::new(deleting), young, other], &["shop", "blog"], &[]);
        assert_eq!(after.changed_since(&before), ["young"]);
    }

    #[test]
    fn a_namespace_appearing_reconciles_the_tenant_that_names_it() {
        let (a, b) = (gw("a", 1, &["shop", "later"]), gw("b", 2, &["blog"]));
        let before = world(&[a.clone(), b.clone()], &["shop", "blog"], &[]);
        let after = world(&[a, b], &["shop", "blog", "later"], &[]);
        assert_eq!(after.changed_since(&before), ["a"]);
    }

    #[test]
    fn an_older_tenant_claiming_a_namespace_reconciles_its_holder() {
        let (a, b) = (gw("a", 1, &["shop"]), gw("b", 2, &["blog"]));
        let before = world(&[a.clone(), b.clone()], &["shop", "blog"], &[]);
        // The older tenant now also wants `blog`: it takes it from b.
        let a2 = gw("a", 1, &["shop", "blog"]);
        let after = world(&[a2, b], &["shop", "blog"], &[]);
        assert_eq!(after.changed_since(&before), ["a", "b"]);
    }

    #[test]
    fn an_older_tenant_moving_to_the_host_network_reconciles_the_younger_one_there() {
        let on_host = |g: &Arc<TenantGateway>| {
            let mut g = (**g).clone();
            g.spec.host_network = true;
            Arc::new(g)
        };
        let (old, young) = (gw("old", 1, &["shop"]), on_host(&gw("young", 2, &["blog"])));
        let before = world(&[old.clone(), young.clone()], &["shop", "blog"], &[]);
        assert!(before.tenants["young"].host_network.is_empty());
        let after = world(&[on_host(&old), young], &["shop", "blog"], &[]);
        assert_eq!(after.tenants["young"].host_network.len(), 1);
        assert_eq!(after.changed_since(&before), ["young"]);
    }

    #[test]
    fn a_node_heartbeat_reconciles_no_one_and_a_new_address_everyone() {
        let gws = [gw("a", 1, &["shop"]), gw("b", 2, &["blog"])];
        let before = world(&gws, &["shop", "blog"], &[node("n1", "10.0.0.1", 1)]);
        let beat = world(&gws, &["shop", "blog"], &[node("n1", "10.0.0.1", 99)]);
        assert_eq!(beat.changed_since(&before), Vec::<String>::new());
        let moved = world(&gws, &["shop", "blog"], &[node("n1", "10.0.0.2", 99)]);
        assert_eq!(moved.changed_since(&before), ["a", "b"]);
    }
}
