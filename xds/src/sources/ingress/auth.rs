//! An Ingress's authentication lowered into a policy: the basic-auth Secret
//! read into users and hashes, the `auth-url` Service resolved to its
//! endpoints (only a Service of the tenant). Any failure fails closed: the
//! Ingress's rules are not served.

use super::annotations::{self, AuthSecretType, AuthSettings, ExternalAuthSettings};
use super::{annotation_key, Collector};
use crate::authz::htpasswd;
use crate::diagnostics::{ObjectRef, Severity};
use crate::model::{AuthCheck, AuthPolicy, BasicAuth, ExternalAuth};
use crate::sources::backends::BackendError;
use k8s_openapi::api::networking::v1::{Ingress, IngressServiceBackend, ServiceBackendPort};
use std::collections::BTreeMap;
use std::sync::Arc;

impl Collector<'_, '_> {
    /// The Ingress's auth policy (None without auth annotations); `Err` when
    /// it does not resolve, reported.
    pub(super) fn auth_policy(
        &mut self,
        ing: &Ingress,
        settings: Option<&AuthSettings>,
        obj: &ObjectRef,
    ) -> Result<Option<Arc<AuthPolicy>>, ()> {
        let Some(settings) = settings else {
            return Ok(None);
        };
        let (suffix, check) = match settings {
            AuthSettings::Basic {
                secret,
                secret_type,
                realm,
            } => (
                "auth-secret",
                self.basic_auth(ing, obj, secret, *secret_type, realm)
                    .map(AuthCheck::Basic),
            ),
            AuthSettings::External(e) => (
                "auth-url",
                self.external_auth(ing, obj, e).map(AuthCheck::External),
            ),
        };
        match check {
            Ok(check) => Ok(Some(Arc::new(AuthPolicy {
                id: format!("ingress:{}/{}", obj.namespace, obj.name),
                check,
            }))),
            Err(e) => {
                let key = annotation_key(ing, suffix);
                self.diags.error(
                    obj,
                    annotations::field(&key),
                    format!("{e}; the Ingress's rules are not served"),
                );
                Err(())
            }
        }
    }

    fn basic_auth(
        &mut self,
        ing: &Ingress,
        obj: &ObjectRef,
        secret: &str,
        secret_type: AuthSecretType,
        realm: &str,
    ) -> Result<BasicAuth, String> {
        let ns = &obj.namespace;
        let values = self.index.secret_values(ns, secret).ok_or_else(|| {
            format!("Secret {ns}/{secret} not found (the gateway reads Secrets of type Opaque or kubernetes.io/tls)")
        })?;
        let (entries, problems) = match secret_type {
            AuthSecretType::AuthFile => {
                let file = values.get("auth").ok_or_else(|| {
                    format!("Secret {ns}/{secret} has no key \"auth\" (auth-secret-type auth-file: htpasswd lines under \"auth\")")
                })?;
                let text = std::str::from_utf8(file)
                    .map_err(|_| format!("Secret {ns}/{secret} key \"auth\" is not UTF-8 text"))?;
                htpasswd::parse_file(text)
            }
            AuthSecretType::AuthMap => {
                let mut problems = Vec::new();
                let mut entries = Vec::new();
                for (user, hash) in &values {
                    match std::str::from_utf8(hash) {
                        Ok(h) => entries.push((user.clone(), h.trim().to_string())),
                        Err(_) => problems.push(format!("the value of {user:?} is not UTF-8 text")),
                    }
                }
                (entries, problems)
            }
        };
        let field = annotations::field(&annotation_key(ing, "auth-secret"));
        let warn = |diags: &mut crate::diagnostics::Diagnostics, msg: String| {
            diags.push(Severity::Warning, obj, field.clone(), msg);
        };
        for p in problems {
            warn(
                &mut self.diags,
                format!("Secret {ns}/{secret}: {p}; ignored"),
            );
        }
        let mut users = BTreeMap::new();
        for (user, hash) in entries {
            match htpasswd::format_of(&hash) {
                // The first line of a user wins, as nginx reads the file.
                Ok(_) => {
                    users.entry(user).or_insert(hash);
                }
                Err(e) => warn(
                    &mut self.diags,
                    format!("Secret {ns}/{secret}: user {user:?}: {e}; this user cannot log in"),
                ),
            }
        }
        if users.is_empty() {
            warn(
                &mut self.diags,
                format!("Secret {ns}/{secret} holds no usable user: every request answers 401"),
            );
        }
        Ok(BasicAuth {
            realm: realm.to_string(),
            users,
        })
    }

    fn external_auth(
        &mut self,
        ing: &Ingress,
        obj: &ObjectRef,
        e: &ExternalAuthSettings,
    ) -> Result<ExternalAuth, String> {
        let url = &e.url;
        if self
            .namespaces
            .is_some_and(|set| !set.contains(&url.namespace))
        {
            return Err(format!(
                "{:?} names a Service in namespace {:?}, which is not one of the tenant's namespaces: the auth service must be a Service of the tenant",
                url.url, url.namespace
            ));
        }
        let backend = IngressServiceBackend {
            name: url.service.clone(),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(url.port)),
                name: None,
            }),
        };
        let resolved = self
            .index
            .resolve_service(&url.namespace, &backend)
            .map_err(|err| match err {
                BackendError::ServiceNotFound(_) => format!(
                    "{:?}: Service {}/{} not found among the tenant's Services",
                    url.url, url.namespace, url.service
                ),
                other => format!("{:?}: {other}", url.url),
            })?;
        if resolved.endpoints.is_empty() {
            let key = annotation_key(ing, "auth-url");
            self.diags.push(
                Severity::Warning,
                obj,
                annotations::field(&key),
                format!(
                    "Service {}/{} has no ready endpoints: requests answer 500 until it has",
                    url.namespace, url.service
                ),
            );
        }
        Ok(ExternalAuth {
            url: url.url.clone(),
            host: url.host.clone(),
            path: url.path.clone(),
            endpoints: resolved.endpoints.into_iter().collect(),
            method: e.method.clone(),
            signin: e.signin.clone(),
            signin_redirect_param: e.signin_redirect_param.clone(),
            response_headers: e.response_headers.clone(),
            request_redirect: e.request_redirect.clone(),
            always_set_cookie: e.always_set_cookie,
        })
    }
}
