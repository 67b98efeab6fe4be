//! Canary Ingresses: each path joins the main route of the same host and
//! path instead of conflicting with it.

use super::lower::AttachedCanary;
use super::{rules, Collector, IngressContext};
use crate::diagnostics::Severity;
use crate::sources::ingress::annotations::Canary;
use k8s_openapi::api::networking::v1::IngressSpec;

impl Collector<'_, '_> {
    pub(super) fn attach_canary(
        &mut self,
        spec: &IngressSpec,
        canary: &Canary,
        cx: &IngressContext<'_>,
    ) {
        if spec.default_backend.is_some() {
            self.diags.push(
                Severity::Warning,
                cx.obj,
                "spec.defaultBackend",
                "ignored on a canary Ingress",
            );
        }
        let rules = rules::valid_rules(spec, &cx.settings, cx.obj, "", self.diags);
        for p in &rules.paths {
            if !self.claimed.contains_key(&(p.host.clone(), p.path.clone())) {
                self.diags.error(
                    cx.obj,
                    p.field.clone(),
                    format!(
                        "canary for host {} path {}, which no main Ingress serves; not served",
                        p.host.display(),
                        p.path.display()
                    ),
                );
                continue;
            }
            let target = self.target(p.backend, cx, &format!("{}.backend", p.field));
            let main = self
                .hosts
                .get_mut(&p.host)
                .and_then(|routes| routes.iter_mut().find(|r| r.path == p.path));
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
                    self.diags.error(
                        cx.obj,
                        p.field.clone(),
                        format!(
                            "host {} path {} already has the canary {}; not served",
                            p.host.display(),
                            p.path.display(),
                            holder.unwrap_or_default()
                        ),
                    );
                }
                None => {}
            }
        }
    }
}
