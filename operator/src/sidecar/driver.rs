//! Executes the state machine's effects. What an effect does to the world is
//! behind `SidecarEffects`: the cluster in `run`, a recording fake in tests.

use super::gateway_status::GatewayApiStatus;
use super::machine::{Effect, Input, SidecarState, TranslationOutcome};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use xds::{Diagnostic, Snapshot};

pub(crate) trait SidecarEffects {
    fn start_watch(&mut self, namespace: &str);
    fn stop_watch(&mut self, namespace: &str);
    fn arm_debounce(&mut self, after: Duration);
    fn translate(&mut self, namespaces: &BTreeSet<String>) -> TranslationOutcome;
    fn publish(&mut self, snapshot: Arc<Snapshot>, previous: Option<Arc<Snapshot>>);
    fn start_ads(&mut self);
    async fn emit_event(&mut self, diagnostic: &Diagnostic);
    async fn write_status(&mut self, ingresses: &[(String, String)]);
    async fn write_gateway_status(&mut self, status: &GatewayApiStatus);
    async fn stop(&mut self);
}

/// Feed one input and execute every effect it leads to, in order; a
/// translation's outcome goes straight back in, so its effects follow.
pub(crate) async fn feed(state: &mut SidecarState, world: &mut impl SidecarEffects, input: Input) {
    let mut effects = VecDeque::from(state.step(input));
    while let Some(effect) = effects.pop_front() {
        match effect {
            Effect::StartWatch(ns) => world.start_watch(&ns),
            Effect::StopWatch(ns) => world.stop_watch(&ns),
            Effect::ArmDebounce(after) => world.arm_debounce(after),
            Effect::Translate { namespaces } => {
                let outcome = world.translate(&namespaces);
                effects.extend(state.step(Input::Translated(outcome)));
            }
            Effect::Publish { snapshot, previous } => world.publish(snapshot, previous),
            Effect::StartAds => world.start_ads(),
            Effect::EmitEvent(d) => world.emit_event(&d).await,
            Effect::WriteStatus(ingresses) => world.write_status(&ingresses).await,
            Effect::WriteGatewayStatus(status) => world.write_gateway_status(&status).await,
            Effect::Stop => world.stop().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use serde_json::json;
    use std::collections::BTreeMap;
    use xds::{GatewayOptions, ResourceType, TenantObjects};

    /// Records what the effects would do; translates with the real `xds::translate`.
    #[derive(Default)]
    struct FakeWorld {
        objects: BTreeMap<String, TenantObjects>,
        log: Vec<String>,
        published: Vec<Arc<Snapshot>>,
    }

    impl FakeWorld {
        /// One Ingress `web` → Service `web` per namespace.
        fn with_namespaces(namespaces: &[&str]) -> Self {
            let mut world = Self::default();
            for ns in namespaces {
                let ingress = json!({
                    "metadata": {"name": "web", "namespace": ns, "creationTimestamp": "2024-01-01T00:00:00Z"},
                    "spec": {"rules": [{"host": format!("{ns}.example.com"), "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
                });
                let service = json!({
                    "metadata": {"name": "web", "namespace": ns},
                    "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
                });
                let objects = TenantObjects {
                    ingresses: vec![serde_json::from_value(ingress).expect("valid Ingress")],
                    services: vec![serde_json::from_value(service).expect("valid Service")],
                    ..TenantObjects::default()
                };
                world.objects.insert(ns.to_string(), objects);
            }
            world
        }

        fn take_log(&mut self) -> Vec<String> {
            std::mem::take(&mut self.log)
        }
    }

    impl SidecarEffects for FakeWorld {
        fn start_watch(&mut self, namespace: &str) {
            self.log.push(format!("start {namespace}"));
        }
        fn stop_watch(&mut self, namespace: &str) {
            self.log.push(format!("stop {namespace}"));
        }
        fn arm_debounce(&mut self, after: Duration) {
            self.log.push(format!("arm {}ms", after.as_millis()));
        }
        fn translate(&mut self, namespaces: &BTreeSet<String>) -> TranslationOutcome {
            self.log.push(format!("translate {namespaces:?}"));
            let mut objects = TenantObjects::default();
            for o in namespaces.iter().filter_map(|ns| self.objects.get(ns)) {
                objects.ingresses.extend(o.ingresses.iter().cloned());
                objects.services.extend(o.services.iter().cloned());
            }
            let options = GatewayOptions {
                namespaces: Some(namespaces.clone()),
                ..GatewayOptions::default()
            };
            let t = xds::translate(&objects, &options);
            TranslationOutcome {
                snapshot: Arc::new(Snapshot::from(&t.resources)),
                diagnostics: t.diagnostics.into_iter().collect(),
                served_ingresses: t.served_ingresses,
                gateway_api: None,
            }
        }
        fn publish(&mut self, snapshot: Arc<Snapshot>, previous: Option<Arc<Snapshot>>) {
            assert_eq!(
                previous.as_ref(),
                self.published.last(),
                "previous is what ADS holds"
            );
            self.log.push("publish".into());
            self.published.push(snapshot);
        }
        fn start_ads(&mut self) {
            self.log.push("start ADS".into());
        }
        async fn emit_event(&mut self, diagnostic: &Diagnostic) {
            self.log.push(format!("event {}", diagnostic.message));
        }
        async fn write_status(&mut self, ingresses: &[(String, String)]) {
            self.log.push(format!("status {ingresses:?}"));
        }
        async fn write_gateway_status(&mut self, status: &GatewayApiStatus) {
            self.log
                .push(format!("gateway status {} routes", status.routes.len()));
        }
        async fn stop(&mut self) {
            self.log.push("stop ADS".into());
        }
    }

    fn claims(namespaces: &[&str]) -> Input {
        Input::ClaimsChanged(Some(namespaces.iter().map(|ns| ns.to_string()).collect()))
    }

    /// A sidecar that has seen nothing yet, with these namespaces' objects in the cluster.
    fn fresh_sidecar(namespaces: &[&str]) -> (SidecarState, FakeWorld) {
        let state = SidecarState::new(Duration::from_millis(5));
        (state, FakeWorld::with_namespaces(namespaces))
    }

    /// Claim these namespaces and report each of them fully listed.
    async fn claim_and_list(state: &mut SidecarState, world: &mut FakeWorld, namespaces: &[&str]) {
        feed(state, world, claims(namespaces)).await;
        for ns in namespaces {
            feed(state, world, Input::NamespaceSynced(ns.to_string())).await;
        }
    }

    /// Does any resource of the snapshot name this host?
    fn routes_host(snapshot: &Snapshot, host: &str) -> bool {
        let host = host.as_bytes();
        ResourceType::ALL.into_iter().any(|ty| {
            snapshot
                .resources(ty)
                .any(|(_, any)| any.value.windows(host.len()).any(|w| w == host))
        })
    }

    #[test]
    fn feed_executes_effects_in_order_and_feeds_each_translation_back() {
        let (mut state, mut world) = fresh_sidecar(&["a", "b"]);
        block_on(async {
            claim_and_list(&mut state, &mut world, &["a", "b"]).await;
            assert_eq!(world.take_log(), ["start a", "start b", "arm 5ms"]);
            feed(&mut state, &mut world, Input::DebounceElapsed).await;
            assert_eq!(
                world.take_log(),
                [
                    r#"translate {"a", "b"}"#,
                    "publish",
                    "start ADS",
                    r#"status [("a", "web"), ("b", "web")]"#,
                ],
                "the snapshot is published before ADS starts"
            );
            feed(&mut state, &mut world, Input::Shutdown).await;
            assert_eq!(world.take_log(), ["stop ADS"]);
        });
    }

    #[test]
    fn the_snapshot_after_a_claims_change_drops_the_released_namespace() {
        let (mut state, mut world) = fresh_sidecar(&["a", "b"]);
        block_on(async {
            claim_and_list(&mut state, &mut world, &["a", "b"]).await;
            feed(&mut state, &mut world, Input::DebounceElapsed).await;
            feed(&mut state, &mut world, claims(&["b"])).await;
            feed(&mut state, &mut world, Input::DebounceElapsed).await;
        });
        let [first, second] = &world.published[..] else {
            panic!("expected two snapshots, got {}", world.published.len());
        };
        assert!(routes_host(first, "a.example.com") && routes_host(first, "b.example.com"));
        assert!(!routes_host(second, "a.example.com"), "a was released");
        assert!(routes_host(second, "b.example.com"));
        assert!(world.log.contains(&"stop a".to_string()));
    }
}
