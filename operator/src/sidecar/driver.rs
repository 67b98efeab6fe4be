//! Executes the state machine's effects. What an effect does to the world is
//! behind `SidecarEffects`: the cluster in `run`, a recording fake in tests.

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
            Effect::Stop => world.stop().await,
        }
    }
}
