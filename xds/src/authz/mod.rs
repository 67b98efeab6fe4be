//! The sidecar's authorization server (Envoy's ext_authz, gRPC
//! `envoy.service.auth.v3.Authorization`) on a Unix socket next to the ADS
//! one. Envoy names a policy of the current snapshot (a route's context
//! extension); the policy itself — password hashes included — stays here:
//! it never enters Envoy's configuration or admin dump.
//!
//! Basic auth is verified against htpasswd hashes ([`htpasswd`]); external
//! auth makes the ingress-nginx subrequest to an endpoint of the tenant's auth
//! Service ([`external`]). Every failure denies: unknown policy, unreachable
//! service, unexpected answer.

mod external;
pub mod htpasswd;

pub use external::SubrequestClient;

use crate::model::{AuthCheck, AuthPolicy, BasicAuth, ClientAddress, Model};
use crate::snapshot::Snapshot;
use base64::Engine as _;
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{
    check_response, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;

/// The context extension naming the policy a route is checked against.
pub const POLICY_KEY: &str = "policy";

/// Every auth policy of a translation, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthTable {
    policies: BTreeMap<String, Arc<AuthPolicy>>,
    /// How Envoy computed the client address (Envoy's check names the
    /// connection's peer; the subrequest's X-Real-IP is the computed one).
    client: ClientAddress,
}

impl AuthTable {
    /// The policies of every route of the model.
    pub(crate) fn of(model: &Model) -> Self {
        let policies = model
            .routes
            .routes()
            .filter_map(|r| r.policy.auth.clone())
            .map(|p| (p.id.clone(), p))
            .collect();
        Self {
            policies,
            client: model.client_address.clone(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&AuthPolicy> {
        self.policies.get(id).map(Arc::as_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }
}

/// The request being checked, as Envoy describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Original {
    pub method: String,
    pub scheme: String,
    /// The Host header as sent (`:authority`).
    pub host: String,
    /// Path and query (`$request_uri`).
    pub path: String,
    /// Lowercase names; repeated headers joined with `,` (as Envoy sends them).
    pub headers: BTreeMap<String, String>,
    /// The client's address as Envoy saw it.
    pub remote_ip: String,
}

impl Original {
    fn of(req: &CheckRequest) -> (Option<String>, Self) {
        let attrs = req.attributes.as_ref();
        let policy = attrs.and_then(|a| a.context_extensions.get(POLICY_KEY).cloned());
        let http = attrs
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let remote_ip = attrs
            .and_then(|a| a.source.as_ref())
            .and_then(|s| s.address.as_ref())
            .and_then(|a| match &a.address {
                Some(
                    envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s),
                ) => Some(s.address.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let original = match http {
            Some(h) => Original {
                method: h.method.clone(),
                scheme: h.scheme.clone(),
                host: h.host.clone(),
                path: h.path.clone(),
                headers: h
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
                remote_ip,
            },
            None => Original {
                remote_ip,
                ..Original::default()
            },
        };
        (policy, original)
    }
}

/// What the check decided, before it is put into Envoy's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// None: allowed; else the status the client gets.
    pub denied: Option<u16>,
    /// Allowed: set on the upstream request. Denied: sent to the client.
    pub headers: Vec<(String, String)>,
    /// Allowed: removed from the upstream request.
    pub remove: Vec<String>,
    /// Allowed: added to the client's response.
    pub response_headers: Vec<(String, String)>,
    /// Denied: the body.
    pub body: String,
}

impl Verdict {
    fn allow() -> Self {
        Self::default()
    }

    pub(crate) fn deny(status: u16, body: &str) -> Self {
        Self {
            denied: Some(status),
            body: body.to_string(),
            ..Self::default()
        }
    }

    pub(crate) fn error() -> Self {
        Self::deny(500, "500 Internal Server Error\n")
    }

    fn into_response(self) -> CheckResponse {
        let option = |action: HeaderAppendAction| {
            move |(key, value): (String, String)| HeaderValueOption {
                header: Some(HeaderValue {
                    key,
                    value,
                    ..Default::default()
                }),
                append_action: action as i32,
                ..Default::default()
            }
        };
        let overwrite = option(HeaderAppendAction::OverwriteIfExistsOrAdd);
        let append = option(HeaderAppendAction::AppendIfExistsOrAdd);
        match self.denied {
            None => CheckResponse {
                status: Some(RpcStatus {
                    code: tonic::Code::Ok as i32,
                    ..Default::default()
                }),
                http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
                    headers: self.headers.into_iter().map(overwrite).collect(),
                    headers_to_remove: self.remove,
                    response_headers_to_add: self
                        .response_headers
                        .into_iter()
                        .map(append)
                        .collect(),
                    ..Default::default()
                })),
                ..Default::default()
            },
            Some(status) => CheckResponse {
                status: Some(RpcStatus {
                    code: tonic::Code::PermissionDenied as i32,
                    ..Default::default()
                }),
                http_response: Some(check_response::HttpResponse::DeniedResponse(
                    DeniedHttpResponse {
                        status: Some(HttpStatus {
                            code: i32::from(status),
                        }),
                        headers: self.headers.into_iter().map(append).collect(),
                        body: self.body,
                    },
                )),
                ..Default::default()
            },
        }
    }
}

/// `Authorization: Basic <base64(user:password)>`.
fn basic_credentials(headers: &BTreeMap<String, String>) -> Option<(String, String)> {
    let value = headers.get("authorization")?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Basic auth: the user's hash must verify the password; else 401 with the
/// realm, as nginx's `auth_basic`.
pub fn check_basic(b: &BasicAuth, original: &Original) -> Verdict {
    let ok = basic_credentials(&original.headers).is_some_and(|(user, password)| {
        b.users
            .get(&user)
            .is_some_and(|hash| htpasswd::verify(&password, hash))
    });
    if ok {
        return Verdict::allow();
    }
    Verdict {
        headers: vec![(
            "www-authenticate".into(),
            format!("Basic realm=\"{}\"", b.realm),
        )],
        ..Verdict::deny(401, "401 Authorization Required\n")
    }
}

/// Check a request against a policy.
pub async fn check(policy: &AuthPolicy, original: &Original, client: &SubrequestClient) -> Verdict {
    match &policy.check {
        AuthCheck::Basic(b) => {
            // Hashing (bcrypt above all) is CPU work: off the async threads.
            let (b, original) = (b.clone(), original.clone());
            tokio::task::spawn_blocking(move || check_basic(&b, &original))
                .await
                .unwrap_or_else(|_| Verdict::error())
        }
        AuthCheck::External(e) => client.check(e, original).await,
    }
}

/// The gRPC service: checks against the auth table of the latest snapshot.
#[derive(Clone)]
pub struct AuthzServer {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    client: SubrequestClient,
}

impl AuthzServer {
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>) -> Self {
        Self {
            snapshots,
            client: SubrequestClient::new(),
        }
    }

    pub fn into_service(self) -> AuthorizationServer<Self> {
        AuthorizationServer::new(self)
    }
}

#[tonic::async_trait]
impl Authorization for AuthzServer {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let (policy, mut original) = Original::of(request.get_ref());
        let snapshot = self.snapshots.borrow().clone();
        // Envoy's check names the connection's peer (the PROXY header's
        // address): the trusted X-Forwarded-For entry, as Envoy computed it.
        original.remote_ip = snapshot.auth().client.computed(
            &original.remote_ip,
            original.headers.get("x-forwarded-for").map(String::as_str),
        );
        let verdict = match policy.as_deref().and_then(|id| snapshot.auth().get(id)) {
            Some(p) => check(p, &original, &self.client).await,
            None => {
                // A route names a policy this snapshot does not have: only
                // while a change is on its way to Envoy. Fail closed.
                tracing::warn!(policy = ?policy, "check names no known auth policy; denied");
                Verdict::error()
            }
        };
        Ok(tonic::Response::new(verdict.into_response()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("{path}: {source}")]
    Socket {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving authorization checks: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves checks on a Unix socket at `path` (mode [`crate::ads::SOCKET_MODE`],
/// a stale socket replaced) until `shutdown` completes.
pub async fn serve_unix(
    path: impl AsRef<Path>,
    server: AuthzServer,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AuthzError> {
    let path = path.as_ref();
    let socket_err = |source| AuthzError::Socket {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(path).map_err(socket_err)?;
        }
        Ok(_) => {
            return Err(socket_err(std::io::Error::other(
                "refusing to replace a file that is not a socket",
            )))
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(socket_err)?;
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(crate::ads::SOCKET_MODE),
    )
    .map_err(socket_err)?;
    tracing::info!(path = %path.display(), "serving authorization checks on a Unix socket");
    let result = tonic::transport::Server::builder()
        .add_service(server.into_service())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = std::fs::remove_file(path);
    result.map_err(AuthzError::from)
}

/// A CheckRequest as Envoy sends it.
#[cfg(test)]
pub(crate) fn check_request(policy: &str, original: &Original) -> CheckRequest {
    use envoy_types::pb::envoy::config::core::v3::{address, Address, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request,
    };
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    let headers: std::collections::HashMap<String, String> =
        original.headers.clone().into_iter().collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: original.remote_ip.clone(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    method: original.method.clone(),
                    scheme: original.scheme.clone(),
                    host: original.host.clone(),
                    path: original.path.clone(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: [(POLICY_KEY.to_string(), policy.to_string())].into(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests;
