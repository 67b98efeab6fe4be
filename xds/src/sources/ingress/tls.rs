//! TLS hosts: SNI host → certificate from a Secret in the Ingress's own
//! namespace; the oldest Ingress configuring a host wins it.

use super::{rules, Collector, IngressContext};
use crate::model::{Provenance, SniCertificate};
use k8s_openapi::api::networking::v1::IngressSpec;

impl Collector<'_, '_> {
    pub(super) fn tls(&mut self, spec: &IngressSpec, cx: &IngressContext<'_>) {
        let obj = cx.obj;
        for (ti, tls) in spec.tls.iter().flatten().enumerate() {
            let hosts = tls.hosts.as_deref().unwrap_or(&[]);
            let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                self.diags.error(
                    obj,
                    format!("spec.tls[{ti}].secretName"),
                    "no secretName: TLS is not served for these hosts (there is no default certificate)",
                );
                continue;
            };
            if hosts.is_empty() {
                self.diags.error(
                    obj,
                    format!("spec.tls[{ti}].hosts"),
                    "no hosts: TLS is selected by SNI host, so this entry is not served",
                );
                continue;
            }
            let secret = match self.index.resolve_tls_secret(&obj.namespace, secret_name) {
                Ok(s) => s,
                Err(e) => {
                    self.diags.error(
                        obj,
                        format!("spec.tls[{ti}].secretName"),
                        format!(
                            "{e}; TLS is not served for {} (plain HTTP still is)",
                            hosts.join(", ")
                        ),
                    );
                    continue;
                }
            };
            for (hi, h) in hosts.iter().enumerate() {
                let field = format!("spec.tls[{ti}].hosts[{hi}]");
                if let Err(e) = rules::parse_host(h) {
                    self.diags.error(obj, field, e);
                    continue;
                }
                if let Some(holder) = self.tls_owner.get(h) {
                    let same_certificate = self
                        .model
                        .tls
                        .get(h)
                        .is_some_and(|sni| sni.certificate == secret.name);
                    if *holder != cx.owner || !same_certificate {
                        self.diags.error(
                            obj,
                            field,
                            format!("TLS for host {h} is already configured by the older Ingress {holder}"),
                        );
                    }
                    continue;
                }
                self.tls_owner.insert(h.clone(), cx.owner.clone());
                let sni = SniCertificate {
                    certificate: secret.name.clone(),
                    min_version: cx.settings.tls_min_version,
                    client_auth: None,
                    provenance: Provenance::new(obj, field),
                };
                self.model.tls.insert(h.clone(), sni);
            }
            if self
                .model
                .tls
                .values()
                .any(|sni| sni.certificate == secret.name)
            {
                self.model.certificates.insert(secret.name.clone(), secret);
            }
        }
    }
}
