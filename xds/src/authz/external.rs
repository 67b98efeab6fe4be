//! External authentication (ingress-nginx `auth-url`): the subrequest made
//! to an endpoint of the tenant's auth Service, and what its answer means —
//! 2xx allows (with headers copied upstream), 401 and 403 deny (a 401 may
//! redirect to `auth-signin`), anything else or no answer is 500.

use super::{Original, Verdict};
use crate::model::ExternalAuth;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Below the ext_authz filter's own timeout, so the client gets our 500.
const SUBREQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Request headers never passed on to the auth service (hop-by-hop, the
/// body's, and those the subrequest sets itself).
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "x-forwarded-proto",
    "x-original-url",
    "x-original-method",
    "x-sent-from",
    "x-real-ip",
    "x-forwarded-for",
    "x-auth-request-redirect",
];

/// Makes auth subrequests, spreading them over the Service's endpoints.
#[derive(Clone, Debug)]
pub struct SubrequestClient {
    next: Arc<AtomicUsize>,
    timeout: Duration,
}

impl Default for SubrequestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl SubrequestClient {
    pub fn new() -> Self {
        Self::with_timeout(SUBREQUEST_TIMEOUT)
    }

    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            next: Arc::new(AtomicUsize::new(0)),
            timeout,
        }
    }

    /// Ask the auth service about `original`.
    pub async fn check(&self, e: &ExternalAuth, original: &Original) -> Verdict {
        match tokio::time::timeout(self.timeout, self.ask(e, original)).await {
            Ok(Ok((status, headers))) => verdict(e, original, status, &headers),
            Ok(Err(why)) => {
                tracing::warn!(url = %e.url, error = %why, "auth service unreachable; denied with 500");
                Verdict::error()
            }
            Err(_) => {
                tracing::warn!(url = %e.url, "auth service timed out; denied with 500");
                Verdict::error()
            }
        }
    }

    /// The auth service's status and headers; endpoints are tried in turn
    /// (starting from the next in rotation) until one accepts a connection.
    async fn ask(
        &self,
        e: &ExternalAuth,
        original: &Original,
    ) -> Result<(u16, Vec<(String, String)>), String> {
        let n = e.endpoints.len();
        if n == 0 {
            return Err("the Service has no ready endpoints".into());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut last = String::new();
        for i in 0..n {
            let (ip, port) = &e.endpoints[(start + i) % n];
            match tokio::net::TcpStream::connect((ip.as_str(), *port)).await {
                Ok(stream) => return send(stream, e, original).await,
                Err(err) => last = format!("{ip}:{port}: {err}"),
            }
        }
        Err(last)
    }
}

async fn send(
    stream: tokio::net::TcpStream,
    e: &ExternalAuth,
    original: &Original,
) -> Result<(u16, Vec<(String, String)>), String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| err.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(e.method.as_str())
        .uri(e.path.as_str());
    for (k, v) in subrequest_headers(e, original) {
        req = req.header(k, v);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|err| format!("building the subrequest: {err}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|err| err.to_string())?;
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Ok((resp.status().as_u16(), headers))
}

/// The subrequest's headers, as ingress-nginx sends them: the request's
/// own (without body or hop-by-hop ones), the auth URL's Host, and
/// `X-Original-URL`, `X-Original-Method`, `X-Sent-From`, `X-Real-IP`,
/// `X-Forwarded-For`, `X-Auth-Request-Redirect`.
pub(crate) fn subrequest_headers(e: &ExternalAuth, o: &Original) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = o
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with(':') && !NOT_FORWARDED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let forwarded_for = o
        .headers
        .get("x-forwarded-for")
        .cloned()
        .unwrap_or_else(|| o.remote_ip.clone());
    out.extend([
        ("host".to_string(), e.host.clone()),
        (
            "x-original-url".into(),
            format!("{}://{}{}", o.scheme, o.host, o.path),
        ),
        ("x-original-method".into(), o.method.clone()),
        ("x-sent-from".into(), "nginx-ingress-controller".into()),
        ("x-real-ip".into(), o.remote_ip.clone()),
        ("x-forwarded-for".into(), forwarded_for),
        (
            "x-auth-request-redirect".into(),
            e.request_redirect.clone().unwrap_or_else(|| o.path.clone()),
        ),
    ]);
    out
}

fn values<'h>(headers: &'h [(String, String)], name: &str) -> impl Iterator<Item = &'h str> {
    let name = name.to_string();
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v.as_str())
}

fn cookies(headers: &[(String, String)]) -> Vec<(String, String)> {
    values(headers, "set-cookie")
        .map(|v| ("set-cookie".to_string(), v.to_string()))
        .collect()
}

/// What the auth service's answer means for the request.
pub(crate) fn verdict(
    e: &ExternalAuth,
    o: &Original,
    status: u16,
    headers: &[(String, String)],
) -> Verdict {
    let denied_cookies = || {
        if e.always_set_cookie {
            cookies(headers)
        } else {
            Vec::new()
        }
    };
    match status {
        200..=299 => {
            let mut set = Vec::new();
            let mut remove = Vec::new();
            for name in &e.response_headers {
                let got: Vec<&str> = values(headers, name).collect();
                if got.is_empty() {
                    // The client's own copy must not pass for the service's.
                    remove.push(name.clone());
                } else {
                    set.push((name.clone(), got.join(", ")));
                }
            }
            Verdict {
                headers: set,
                remove,
                response_headers: cookies(headers),
                ..Verdict::allow()
            }
        }
        401 => match &e.signin {
            Some(signin) => Verdict {
                headers: [("location".to_string(), signin_location(e, signin, o))]
                    .into_iter()
                    .chain(denied_cookies())
                    .collect(),
                ..Verdict::deny(302, "")
            },
            None => Verdict {
                headers: values(headers, "www-authenticate")
                    .map(|v| ("www-authenticate".to_string(), v.to_string()))
                    .chain(denied_cookies())
                    .collect(),
                ..Verdict::deny(401, "401 Authorization Required\n")
            },
        },
        403 => Verdict {
            headers: denied_cookies(),
            ..Verdict::deny(403, "403 Forbidden\n")
        },
        _ => {
            tracing::warn!(url = %e.url, status, "auth service answered neither 2xx, 401 nor 403; denied with 500");
            Verdict::error()
        }
    }
}

/// nginx's `set_escape_uri`: everything but unreserved characters escaped.
pub(crate) fn escape_uri(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signin URL with its variables expanded and, unless it has one, the
/// redirect parameter appended: `rd=$scheme://$http_host$escaped_request_uri`
/// (ingress-nginx's `buildAuthSignURL`).
pub(crate) fn signin_location(e: &ExternalAuth, signin: &str, o: &Original) -> String {
    let param = &e.signin_redirect_param;
    let has_param = signin.split_once('?').is_some_and(|(_, q)| {
        q.split('&').any(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| k == param && !v.is_empty())
        })
    });
    let template = if has_param {
        signin.to_string()
    } else {
        let sep = if signin.contains('?') { '&' } else { '?' };
        format!("{signin}{sep}{param}=$scheme://$http_host$escaped_request_uri")
    };
    let host_only = o
        .host
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(o.host.as_str(), |(h, _)| h)
        .to_ascii_lowercase();
    let escaped = escape_uri(&o.path);
    let vars: [(&str, &str); 6] = [
        ("$escaped_request_uri", &escaped),
        ("$pass_access_scheme", &o.scheme),
        ("$request_uri", &o.path),
        ("$http_host", &o.host),
        ("$scheme", &o.scheme),
        ("$host", &host_only),
    ];
    // One pass, so a value (the request's path) is never expanded again.
    let mut out = String::with_capacity(template.len() + o.path.len());
    let mut rest = template.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match vars.iter().find(|(name, _)| rest.starts_with(name)) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &rest[name.len()..];
            }
            None => {
                out.push('$');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
