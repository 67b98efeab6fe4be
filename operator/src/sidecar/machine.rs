//! The sidecar's decisions as a pure state machine: which namespaces to
//! watch, when to translate, what to publish, when ADS may start, which
//! problems to report. `step` does no I/O; the async shell (`driver`) executes
//! the effects it returns and feeds their results back as inputs.

use super::gateway_status::GatewayApiStatus;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use xds::{Diagnostic, Snapshot};

/// Something the sidecar observed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The claims ConfigMap changed: the claimed namespaces, or None when it
    /// is missing (then the last claims and configuration stay in force).
    ClaimsChanged(Option<BTreeSet<String>>),
    /// Every kind in this namespace has completed its first list.
    NamespaceSynced(String),
    /// A watched object (or the tenant Service) changed.
    ObjectsChanged,
    /// The debounce armed by `Effect::ArmDebounce` has run out.
    DebounceElapsed,
    /// The result of an `Effect::Translate`.
    Translated(TranslationOutcome),
    Shutdown,
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    StartWatch(String),
    StopWatch(String),
    /// Send `Input::DebounceElapsed` after this long.
    ArmDebounce(Duration),
    /// Translate the objects of exactly these (fully synced) namespaces.
    Translate {
        namespaces: BTreeSet<String>,
    },
    /// Hand a changed snapshot to the ADS server; `previous` is the one it replaces.
    Publish {
        snapshot: Arc<Snapshot>,
        previous: Option<Arc<Snapshot>>,
    },
    /// Start serving ADS (once, right after the first snapshot is published).
    StartAds,
    /// Report a problem that was not in the previous translation.
    EmitEvent(Diagnostic),
    /// Bring `status.loadBalancer` of these served Ingresses (namespace, name) up to date.
    WriteStatus(Vec<(String, String)>),
    /// Bring the served Gateway's status and its routes' parent statuses up to date.
    WriteGatewayStatus(Arc<GatewayApiStatus>),
    /// Close ADS streams and end the loop.
    Stop,
}

/// What a translation produced, as far as the state machine cares.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationOutcome {
    pub snapshot: Arc<Snapshot>,
    pub diagnostics: BTreeSet<Diagnostic>,
    /// Ingresses of this gateway's class, as (namespace, name).
    pub served_ingresses: Vec<(String, String)>,
    /// A Gateway fleet's Gateway API status (None for an Ingress fleet).
    pub gateway_api: Option<Arc<GatewayApiStatus>>,
}

#[derive(Debug)]
pub struct SidecarState {
    debounce: Duration,
    /// None until the claims ConfigMap has been read once.
    claimed: Option<BTreeSet<String>>,
    /// Claimed namespaces whose watches have completed their first list.
    synced: BTreeSet<String>,
    debouncing: bool,
    /// The last snapshot handed to ADS; None means ADS has not started.
    published: Option<Arc<Snapshot>>,
    /// The problems of the last translation, each already reported once.
    reported: BTreeSet<Diagnostic>,
    stopped: bool,
}

impl SidecarState {
    pub fn new(debounce: Duration) -> Self {
        Self {
            debounce,
            claimed: None,
            synced: BTreeSet::new(),
            debouncing: false,
            published: None,
            reported: BTreeSet::new(),
            stopped: false,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    pub fn step(&mut self, input: Input) -> Vec<Effect> {
        if self.stopped {
            return Vec::new();
        }
        match input {
            Input::ClaimsChanged(Some(claims)) => {
                let mut effects = self.reclaim(claims);
                effects.extend(self.changed());
                effects
            }
            // No claims ConfigMap (yet, or deleted): keep watching what we watch.
            Input::ClaimsChanged(None) | Input::ObjectsChanged => self.changed(),
            Input::NamespaceSynced(ns) => {
                let claimed = self.claimed.as_ref().is_some_and(|c| c.contains(&ns));
                if claimed && self.synced.insert(ns) {
                    self.changed()
                } else {
                    Vec::new()
                }
            }
            // Only an armed debounce leads to a translation, never a stray timer.
            Input::DebounceElapsed if !self.debouncing => Vec::new(),
            Input::DebounceElapsed => {
                self.debouncing = false;
                self.complete_namespaces()
                    .map(|namespaces| Effect::Translate { namespaces })
                    .into_iter()
                    .collect()
            }
            Input::Translated(outcome) => self.translated(outcome),
            Input::Shutdown => {
                self.stopped = true;
                vec![Effect::Stop]
            }
        }
    }

    /// Watch newly claimed namespaces and stop watching released ones; a
    /// namespace claimed again must list again before it counts as synced.
    fn reclaim(&mut self, claims: BTreeSet<String>) -> Vec<Effect> {
        let before = self.claimed.take().unwrap_or_default();
        let stopped = before.difference(&claims).cloned().map(Effect::StopWatch);
        let started = claims.difference(&before).cloned().map(Effect::StartWatch);
        let effects = stopped.chain(started).collect();
        self.synced.retain(|ns| claims.contains(ns));
        self.claimed = Some(claims);
        effects
    }

    /// Coalesce a burst of changes: the first one arms the debounce, later
    /// ones within the window are covered by the translation it leads to.
    fn changed(&mut self) -> Vec<Effect> {
        if self.debouncing {
            return Vec::new();
        }
        self.debouncing = true;
        vec![Effect::ArmDebounce(self.debounce)]
    }

    /// What to translate. Before the first snapshot: the claimed namespaces
    /// once every one has synced (translating a half-listed tenant would
    /// publish a partial config — on a restart, withdraw routes Envoy still
    /// serves). After it: the claimed namespaces that have synced, so that a
    /// newly claimed namespace still listing (or retrying a 403 while the
    /// API server's authorizer catches up with its fresh RoleBinding) stalls
    /// nothing else; its objects join when it has synced, and were not
    /// served before it was claimed anyway.
    fn complete_namespaces(&self) -> Option<BTreeSet<String>> {
        let claimed = self.claimed.as_ref()?;
        if self.published.is_some() {
            return Some(claimed.intersection(&self.synced).cloned().collect());
        }
        claimed.is_subset(&self.synced).then(|| claimed.clone())
    }

    fn translated(&mut self, outcome: TranslationOutcome) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Unchanged config is never re-pushed.
        if self.published.as_ref() != Some(&outcome.snapshot) {
            let previous = self.published.replace(outcome.snapshot.clone());
            let first = previous.is_none();
            effects.push(Effect::Publish {
                snapshot: outcome.snapshot,
                previous,
            });
            if first {
                effects.push(Effect::StartAds);
            }
        }
        effects.extend(
            outcome
                .diagnostics
                .difference(&self.reported)
                .cloned()
                .map(Effect::EmitEvent),
        );
        self.reported = outcome.diagnostics;
        if !outcome.served_ingresses.is_empty() {
            effects.push(Effect::WriteStatus(outcome.served_ingresses));
        }
        // After the publish above, so what the status says is served is in the
        // snapshot Envoy has been handed.
        if let Some(status) = outcome.gateway_api {
            effects.push(Effect::WriteGatewayStatus(status));
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xds::{ObjectRef, ResourceType, Severity};

    const DEBOUNCE: Duration = Duration::from_millis(5);

    fn set(namespaces: &[&str]) -> BTreeSet<String> {
        namespaces.iter().map(|ns| ns.to_string()).collect()
    }

    /// A snapshot told apart by its cluster names.
    fn snapshot(clusters: &[&str]) -> Arc<Snapshot> {
        let mut s = Snapshot::default();
        for c in clusters {
            s.insert(ResourceType::Cluster, *c, Default::default());
        }
        Arc::new(s)
    }

    fn problem(ingress: &str, message: &str) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            object: ObjectRef::new("Ingress", "a", ingress),
            field: "spec.rules[0]".into(),
            message: message.into(),
        }
    }

    fn outcome(snapshot: Arc<Snapshot>, problems: &[Diagnostic]) -> TranslationOutcome {
        TranslationOutcome {
            snapshot,
            diagnostics: problems.iter().cloned().collect(),
            served_ingresses: Vec::new(),
            gateway_api: None,
        }
    }

    /// A sidecar whose claims are read and whose every namespace has listed.
    fn synced(namespaces: &[&str]) -> SidecarState {
        let mut s = SidecarState::new(DEBOUNCE);
        s.step(Input::ClaimsChanged(Some(set(namespaces))));
        for ns in namespaces {
            s.step(Input::NamespaceSynced(ns.to_string()));
        }
        s
    }

    fn claim(s: &mut SidecarState, namespaces: &[&str]) -> Vec<Effect> {
        s.step(Input::ClaimsChanged(Some(set(namespaces))))
    }

    fn start(ns: &str) -> Effect {
        Effect::StartWatch(ns.into())
    }

    fn stop(ns: &str) -> Effect {
        Effect::StopWatch(ns.into())
    }

    /// Let the debounce run out: the namespaces translated, if any.
    fn elapse(s: &mut SidecarState) -> Option<BTreeSet<String>> {
        let mut effects = s.step(Input::DebounceElapsed).into_iter();
        let translated = match effects.next() {
            Some(Effect::Translate { namespaces }) => Some(namespaces),
            None => None,
            Some(other) => panic!("unexpected effect {other:?}"),
        };
        assert_eq!(effects.next(), None);
        translated
    }

    /// One change, its debounce, and the translation it leads to (if any).
    fn round(s: &mut SidecarState) -> Vec<Effect> {
        let mut effects = s.step(Input::ObjectsChanged);
        effects.extend(s.step(Input::DebounceElapsed));
        effects
    }

    #[test]
    fn nothing_is_translated_until_the_claims_configmap_has_been_read() {
        let mut s = SidecarState::new(DEBOUNCE);
        assert_eq!(round(&mut s), vec![Effect::ArmDebounce(DEBOUNCE)]);
        s.step(Input::ClaimsChanged(None));
        assert_eq!(elapse(&mut s), None);
        // An empty claim set is complete: the tenant serves nothing, deliberately.
        claim(&mut s, &[]);
        assert_eq!(
            s.step(Input::DebounceElapsed),
            vec![Effect::Translate {
                namespaces: set(&[])
            }]
        );
    }

    #[test]
    fn ads_starts_with_the_first_snapshot_once_every_claimed_namespace_has_synced() {
        let mut s = SidecarState::new(DEBOUNCE);
        assert_eq!(
            claim(&mut s, &["a", "b"]),
            vec![start("a"), start("b"), Effect::ArmDebounce(DEBOUNCE),]
        );
        assert_eq!(s.step(Input::NamespaceSynced("a".into())), vec![]);
        assert_eq!(elapse(&mut s), None, "b is still listing");
        assert_eq!(
            s.step(Input::NamespaceSynced("b".into())),
            vec![Effect::ArmDebounce(DEBOUNCE)],
            "a namespace that finishes listing is a change"
        );
        assert_eq!(
            s.step(Input::DebounceElapsed),
            vec![Effect::Translate {
                namespaces: set(&["a", "b"])
            }]
        );
        let first = snapshot(&["a/web"]);
        assert_eq!(
            s.step(Input::Translated(outcome(first.clone(), &[]))),
            vec![
                Effect::Publish {
                    snapshot: first.clone(),
                    previous: None
                },
                Effect::StartAds,
            ]
        );
        round(&mut s);
        let second = snapshot(&["a/web", "b/web"]);
        assert_eq!(
            s.step(Input::Translated(outcome(second.clone(), &[]))),
            vec![Effect::Publish {
                snapshot: second,
                previous: Some(first)
            }],
            "ADS starts once"
        );
    }

    #[test]
    fn a_restarted_sidecar_publishes_nothing_while_a_claimed_namespace_is_listing() {
        // After a restart Envoy reconnects at once; an empty or partial
        // snapshot would withdraw the tenant's routes.
        let mut s = SidecarState::new(DEBOUNCE);
        claim(&mut s, &["a", "b"]);
        s.step(Input::NamespaceSynced("a".into()));
        assert_eq!(elapse(&mut s), None);
        for _ in 0..10 {
            let effects = round(&mut s);
            assert_eq!(effects, vec![Effect::ArmDebounce(DEBOUNCE)]);
        }
    }

    #[test]
    fn claims_change_watches_new_namespaces_stops_released_ones_and_translates_only_claimed() {
        let mut s = synced(&["a", "b"]);
        assert_eq!(elapse(&mut s), Some(set(&["a", "b"])));
        assert_eq!(
            claim(&mut s, &["b", "c"]),
            vec![stop("a"), start("c"), Effect::ArmDebounce(DEBOUNCE),]
        );
        assert_eq!(elapse(&mut s), None, "c is still listing");
        // A late sync report from a's stopped watch must not count.
        assert_eq!(s.step(Input::NamespaceSynced("a".into())), vec![]);
        s.step(Input::NamespaceSynced("c".into()));
        assert_eq!(
            elapse(&mut s),
            Some(set(&["b", "c"])),
            "the released namespace is no longer translated"
        );
    }

    #[test]
    fn once_serving_a_newly_claimed_namespace_still_listing_stalls_no_other_change() {
        let mut s = synced(&["a"]);
        assert_eq!(elapse(&mut s), Some(set(&["a"])));
        let first = snapshot(&["a/web"]);
        s.step(Input::Translated(outcome(first, &[])));
        assert_eq!(
            claim(&mut s, &["a", "new"]),
            vec![start("new"), Effect::ArmDebounce(DEBOUNCE)]
        );
        assert_eq!(
            elapse(&mut s),
            Some(set(&["a"])),
            "the claim itself translates what has synced"
        );
        // Changes in `a` keep going live while `new` lists (or retries a 403).
        for _ in 0..3 {
            assert_eq!(
                round(&mut s),
                vec![
                    Effect::ArmDebounce(DEBOUNCE),
                    Effect::Translate {
                        namespaces: set(&["a"])
                    }
                ]
            );
        }
        assert_eq!(
            s.step(Input::NamespaceSynced("new".into())),
            vec![Effect::ArmDebounce(DEBOUNCE)]
        );
        assert_eq!(elapse(&mut s), Some(set(&["a", "new"])));
        // Releasing a namespace does not wait for one still listing either.
        claim(&mut s, &["new", "later"]);
        assert_eq!(elapse(&mut s), Some(set(&["new"])));
    }

    #[test]
    fn a_namespace_claimed_again_must_list_again_before_translating() {
        let mut s = synced(&["a"]);
        s.step(Input::DebounceElapsed);
        assert_eq!(
            claim(&mut s, &[]),
            vec![stop("a"), Effect::ArmDebounce(DEBOUNCE)]
        );
        s.step(Input::DebounceElapsed);
        assert_eq!(
            claim(&mut s, &["a"]),
            vec![start("a"), Effect::ArmDebounce(DEBOUNCE)]
        );
        assert_eq!(elapse(&mut s), None);
        s.step(Input::NamespaceSynced("a".into()));
        assert_eq!(elapse(&mut s), Some(set(&["a"])));
    }

    #[test]
    fn a_missing_claims_configmap_keeps_the_watches_and_the_translation() {
        let mut s = synced(&["a"]);
        s.step(Input::DebounceElapsed);
        assert_eq!(
            s.step(Input::ClaimsChanged(None)),
            vec![Effect::ArmDebounce(DEBOUNCE)]
        );
        assert_eq!(elapse(&mut s), Some(set(&["a"])));
    }

    #[test]
    fn a_burst_of_changes_within_the_debounce_window_gives_one_translation() {
        let mut s = synced(&["a"]);
        s.step(Input::DebounceElapsed);
        let mut effects = Vec::new();
        for i in 0..100 {
            effects.extend(s.step(if i % 10 == 0 {
                Input::ClaimsChanged(Some(set(&["a"])))
            } else {
                Input::ObjectsChanged
            }));
        }
        // Armed once, by the first change: later ones neither re-arm nor extend the window.
        assert_eq!(effects, vec![Effect::ArmDebounce(DEBOUNCE)]);
        assert_eq!(elapse(&mut s), Some(set(&["a"])));
        assert_eq!(
            s.step(Input::DebounceElapsed),
            vec![],
            "no second translation"
        );
        assert_eq!(
            s.step(Input::ObjectsChanged),
            vec![Effect::ArmDebounce(DEBOUNCE)],
            "the next change starts a new window"
        );
    }

    #[test]
    fn an_unchanged_snapshot_is_not_published_again() {
        let mut s = synced(&["a"]);
        s.step(Input::DebounceElapsed);
        let effects = s.step(Input::Translated(outcome(snapshot(&["a/web"]), &[])));
        assert!(effects.contains(&Effect::StartAds));
        round(&mut s);
        assert_eq!(
            s.step(Input::Translated(outcome(snapshot(&["a/web"]), &[]))),
            vec![]
        );
    }

    #[test]
    fn the_same_problem_in_successive_translations_gives_one_event() {
        let mut s = synced(&["a"]);
        s.step(Input::DebounceElapsed);
        let (bad, worse) = (
            problem("web", "no such Service"),
            problem("api", "bad port"),
        );
        let effects = s.step(Input::Translated(outcome(
            snapshot(&["a/web"]),
            std::slice::from_ref(&bad),
        )));
        assert_eq!(
            effects,
            vec![
                Effect::Publish {
                    snapshot: snapshot(&["a/web"]),
                    previous: None
                },
                Effect::StartAds,
                Effect::EmitEvent(bad.clone()),
            ]
        );
        round(&mut s);
        let effects = s.step(Input::Translated(outcome(
            snapshot(&["a/web"]),
            &[bad.clone(), worse.clone()],
        )));
        assert_eq!(effects, vec![Effect::EmitEvent(worse)], "only the new one");
    }

    #[test]
    fn a_problem_that_goes_away_and_comes_back_gives_a_new_event() {
        let mut s = synced(&["a"]);
        let bad = problem("web", "no such Service");
        let snap = snapshot(&["a/web"]);
        let events = |effects: Vec<Effect>| {
            effects
                .into_iter()
                .filter(|e| matches!(e, Effect::EmitEvent(_)))
                .count()
        };
        s.step(Input::DebounceElapsed);
        let with = |s: &mut SidecarState, problems: &[Diagnostic]| {
            round(s);
            s.step(Input::Translated(outcome(snap.clone(), problems)))
        };
        assert_eq!(events(with(&mut s, std::slice::from_ref(&bad))), 1);
        assert_eq!(events(with(&mut s, &[])), 0);
        assert_eq!(events(with(&mut s, std::slice::from_ref(&bad))), 1);
    }

    #[test]
    fn served_ingresses_get_their_status_after_every_translation_even_unchanged() {
        // The Service's address can change while the config does not.
        let mut s = synced(&["a"]);
        let served = vec![("a".to_string(), "web".to_string())];
        for _ in 0..2 {
            round(&mut s);
            let mut o = outcome(snapshot(&["a/web"]), &[]);
            o.served_ingresses = served.clone();
            let effects = s.step(Input::Translated(o));
            assert_eq!(effects.last(), Some(&Effect::WriteStatus(served.clone())));
        }
    }

    #[test]
    fn shutdown_stops_once_and_ignores_everything_after() {
        let mut s = synced(&["a"]);
        assert_eq!(s.step(Input::Shutdown), vec![Effect::Stop]);
        assert!(s.is_stopped());
        assert_eq!(s.step(Input::Shutdown), vec![]);
        assert_eq!(claim(&mut s, &["b"]), vec![]);
        assert_eq!(elapse(&mut s), None);
    }
}
