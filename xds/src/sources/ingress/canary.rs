//! Canary Ingresses: each path joins the main route of the same host and
//! path instead of conflicting with it.

use super::lower::AttachedCanary;
use super::memo::HostLowering;
use super::prepare::{Body, Rank};
use crate::sources::ingress::annotations::Canary;
use std::sync::Arc;

impl HostLowering<'_> {
    /// The canary Ingress's path `i` (of this host) onto its main route.
    pub(super) fn attach_canary(
        &mut self,
        rank: &Arc<Rank>,
        body: &Body,
        i: usize,
        canary: &Canary,
    ) {
        let (cx, Some(p)) = (&body.cx, body.paths.get(i)) else {
            return;
        };
        if !self.claimed.contains_key(&p.path) {
            let msg = format!(
                "canary for {}, which no main Ingress serves; not served",
                self.host_path(p)
            );
            self.diags.error(&cx.obj, p.field.clone(), msg);
            return;
        }
        let target = self.apply(&p.target, (rank.clone(), 3, i));
        let main = self.routes.iter_mut().find(|r| r.path == p.path);
        match main {
            Some(main) if main.canary.is_none() => {
                main.canary = Some(AttachedCanary {
                    target,
                    canary: canary.clone(),
                    source: cx.owner.clone(),
                });
            }
            Some(main) => {
                let holder = main.canary.as_ref().map(|c| c.source.clone());
                let msg = format!(
                    "{} already has the canary {}; not served",
                    self.host_path(p),
                    holder.unwrap_or_default()
                );
                self.diags.error(&cx.obj, p.field.clone(), msg);
            }
            None => {}
        }
    }
}
