//! Authentication annotations: basic auth (`auth-type: basic`,
//! `auth-secret`, `auth-secret-type`, `auth-realm`) and external auth
//! (`auth-url` and its companions), parsed and validated. The Secret and
//! the auth Service are resolved when the Ingress is lowered.

use super::table::{
    AUTH_ALWAYS_SET_COOKIE, AUTH_METHOD, AUTH_REALM, AUTH_REQUEST_REDIRECT, AUTH_RESPONSE_HEADERS,
    AUTH_SECRET, AUTH_SECRET_TYPE, AUTH_SIGNIN, AUTH_SIGNIN_REDIRECT_PARAM, AUTH_TYPE, AUTH_URL,
};
use super::{host_and_port, valid_url_path, OnInvalid, Reader};

/// `auth-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AuthType {
    Basic,
}

/// How the `auth-secret` holds its users.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum AuthSecretType {
    /// Key `auth`: htpasswd lines.
    #[default]
    AuthFile,
    /// Keys are users, values their hashes.
    AuthMap,
}

/// An `auth-url`: a Service of the tenant by its cluster DNS name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AuthUrl {
    pub url: String,
    pub service: String,
    pub namespace: String,
    pub port: u16,
    /// The authority as written (the subrequest's Host).
    pub host: String,
    /// Path and query.
    pub path: String,
}

/// What an Ingress's authentication annotations ask for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AuthSettings {
    Basic {
        secret: String,
        secret_type: AuthSecretType,
        realm: String,
    },
    External(Box<ExternalAuthSettings>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExternalAuthSettings {
    pub url: AuthUrl,
    pub signin: Option<String>,
    pub signin_redirect_param: String,
    pub response_headers: Vec<String>,
    pub request_redirect: Option<String>,
    pub method: String,
    pub always_set_cookie: bool,
}

const NO_BASIC: &str = "has no effect without auth-type: basic (as in ingress-nginx)";
const NO_URL: &str = "has no effect without auth-url (as in ingress-nginx)";

/// The Ingress's authentication. Both kinds on one Ingress fail closed
/// (nginx would require both; we check one policy per route).
pub(super) fn read_auth(r: &mut Reader<'_>) -> Option<AuthSettings> {
    let kind = r.read(&AUTH_TYPE);
    let kind_invalid = kind.is_none() && r.get(AUTH_TYPE.row).is_some();
    let secret = r.read(&AUTH_SECRET);
    let secret_type = r.read(&AUTH_SECRET_TYPE);
    let realm = r.read(&AUTH_REALM);
    let url = r.read(&AUTH_URL);
    let url_invalid = url.is_none() && r.get(AUTH_URL.row).is_some();
    let external = read_external(r, url.is_some() || url_invalid);
    if kind.is_some() && (url.is_some() || url_invalid) {
        r.reject_as(
            AUTH_URL.row,
            "auth-type and auth-url on one Ingress are not supported (nginx would require both)",
            OnInvalid::Strict,
        );
        return None;
    }
    let basic = match kind {
        Some(AuthType::Basic) => match secret {
            Some(secret) => Some(AuthSettings::Basic {
                secret,
                secret_type: secret_type.unwrap_or_default(),
                realm: realm.unwrap_or_default(),
            }),
            None => {
                if r.get(AUTH_SECRET.row).is_none() {
                    r.reject_as(
                        AUTH_TYPE.row,
                        "basic authentication needs auth-secret",
                        OnInvalid::Strict,
                    );
                }
                None
            }
        },
        None => {
            if !kind_invalid {
                let valid = [
                    (AUTH_SECRET.row, secret.is_some()),
                    (AUTH_SECRET_TYPE.row, secret_type.is_some()),
                    (AUTH_REALM.row, realm.is_some()),
                ];
                for (row, _) in valid.into_iter().filter(|(_, v)| *v) {
                    r.reject_as(row, NO_BASIC, OnInvalid::Lenient);
                }
            }
            None
        }
    };
    basic.or_else(|| url.map(|url| AuthSettings::External(Box::new(external(url)))))
}

/// The `auth-url` companions, read whether or not there is an `auth-url`
/// (so invalid values are reported); a closure completing the settings.
fn read_external(
    r: &mut Reader<'_>,
    has_url: bool,
) -> impl FnOnce(AuthUrl) -> ExternalAuthSettings {
    let signin = r.read(&AUTH_SIGNIN);
    let signin_redirect_param = r.read(&AUTH_SIGNIN_REDIRECT_PARAM);
    let response_headers = r.read(&AUTH_RESPONSE_HEADERS);
    let request_redirect = r.read(&AUTH_REQUEST_REDIRECT);
    let method = r.read(&AUTH_METHOD);
    let always_set_cookie = r.read(&AUTH_ALWAYS_SET_COOKIE);
    if !has_url {
        // The valid ones (an invalid one was reported already).
        let valid = [
            (AUTH_SIGNIN.row, signin.is_some()),
            (
                AUTH_SIGNIN_REDIRECT_PARAM.row,
                signin_redirect_param.is_some(),
            ),
            (AUTH_RESPONSE_HEADERS.row, response_headers.is_some()),
            (AUTH_REQUEST_REDIRECT.row, request_redirect.is_some()),
            (AUTH_METHOD.row, method.is_some()),
            (AUTH_ALWAYS_SET_COOKIE.row, always_set_cookie.is_some()),
        ];
        for (row, _) in valid.into_iter().filter(|(_, v)| *v) {
            r.reject_as(row, NO_URL, OnInvalid::Lenient);
        }
    }
    move |url| ExternalAuthSettings {
        url,
        signin,
        signin_redirect_param: signin_redirect_param.unwrap_or_else(|| "rd".into()),
        response_headers: response_headers.unwrap_or_default(),
        request_redirect,
        method: method.unwrap_or_else(|| "GET".into()),
        always_set_cookie: always_set_cookie.unwrap_or(false),
    }
}

pub(crate) fn parse_auth_type(v: &str) -> Result<AuthType, String> {
    match v {
        "basic" => Ok(AuthType::Basic),
        "digest" => Err(
            "digest authentication is not supported (use basic, or auth-url); serving without it would expose the app"
                .into(),
        ),
        _ => Err("expected basic".into()),
    }
}

pub(crate) fn parse_auth_secret_type(v: &str) -> Result<AuthSecretType, String> {
    match v {
        "auth-file" => Ok(AuthSecretType::AuthFile),
        "auth-map" => Ok(AuthSecretType::AuthMap),
        _ => Err("expected auth-file or auth-map".into()),
    }
}

/// Sent inside `Basic realm="…"`: printable ASCII without `"` or `\`.
pub(crate) fn parse_realm(v: &str) -> Result<String, String> {
    if v.len() > 256
        || !v
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(
            "must be up to 256 printable ASCII characters without quotes or backslashes".into(),
        );
    }
    Ok(v.to_string())
}

const AUTH_URL_FORM: &str =
    "http://<service>.<namespace>.svc.cluster.local[:port]/path (or <service>.<namespace>.svc, <service>.<namespace>)";

/// `auth-url`: a Service by its cluster DNS name, over plain HTTP; never an
/// address, `localhost` or another host (the check must stay inside the
/// tenant; which namespaces are the tenant's is checked when resolving).
pub(crate) fn parse_auth_url(v: &str) -> Result<AuthUrl, String> {
    if v.len() > 2048 {
        return Err("longer than 2048 characters".into());
    }
    if v.contains('$') {
        return Err(format!(
            "nginx variables are not supported in auth-url; expected {AUTH_URL_FORM}"
        ));
    }
    let lower = v.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &v[7..]
    } else if lower.starts_with("https://") {
        return Err(format!(
            "https:// is not supported: the gateway reaches the auth Service over plain HTTP inside the cluster; expected {AUTH_URL_FORM}"
        ));
    } else {
        return Err(format!("expected {AUTH_URL_FORM}"));
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err("user information in the URL is not supported".into());
    }
    let bare = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() || authority.starts_with('[') {
        return Err(format!(
            "an IP address is not allowed: name a Service of the tenant, {AUTH_URL_FORM}"
        ));
    }
    let (host, port) = host_and_port(authority)?;
    if host == "localhost" || host.ends_with(".localhost") {
        return Err(format!(
            "localhost is not allowed (it is the gateway itself): name a Service of the tenant, {AUTH_URL_FORM}"
        ));
    }
    let labels: Vec<&str> = host.split('.').collect();
    let (service, namespace) = match labels[..] {
        [s, n] | [s, n, "svc"] | [s, n, "svc", "cluster", "local"] => (s, n),
        _ => {
            return Err(format!(
                "{host:?} is not a Service of the tenant by its cluster DNS name; expected {AUTH_URL_FORM}"
            ))
        }
    };
    if !crds::names::is_dns1123_label(service) || !crds::names::is_dns1123_label(namespace) {
        return Err(format!(
            "{host:?} does not name a Service; expected {AUTH_URL_FORM}"
        ));
    }
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if !valid_url_path(&path) {
        return Err(
            "the path and query may hold URL characters only (no spaces, quotes or fragment)"
                .into(),
        );
    }
    Ok(AuthUrl {
        url: v.to_string(),
        service: service.to_string(),
        namespace: namespace.to_string(),
        port: port.unwrap_or(80),
        host: match port {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        },
        path,
    })
}

/// Variables `auth-signin` may use (expanded per request).
pub(crate) const SIGNIN_VARIABLES: &[&str] = &[
    "$escaped_request_uri",
    "$pass_access_scheme",
    "$request_uri",
    "$http_host",
    "$scheme",
    "$host",
];

/// `auth-signin`: an absolute http(s) URL where a 401 sends the client;
/// it may use the variables of [`SIGNIN_VARIABLES`].
pub(crate) fn parse_signin_url(v: &str) -> Result<String, String> {
    if v.len() > 2048 {
        return Err("longer than 2048 characters".into());
    }
    let lower = v.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &v[8..]
    } else if lower.starts_with("http://") {
        &v[7..]
    } else if lower.starts_with("$scheme://") || lower.starts_with("$pass_access_scheme://") {
        &v[v.find("://").map_or(0, |i| i + 3)..]
    } else {
        return Err("must be an absolute http:// or https:// URL".into());
    };
    // Every variable must be one we expand; then the rest must be URL characters.
    let mut plain = rest.to_string();
    for var in SIGNIN_VARIABLES {
        plain = plain.replace(var, "x");
    }
    if plain.contains('$') {
        return Err(format!(
            "the only nginx variables allowed are {}",
            SIGNIN_VARIABLES.join(", ")
        ));
    }
    let split = plain.find(['/', '?', '#']).unwrap_or(plain.len());
    let (authority, path) = plain.split_at(split);
    host_and_port(authority)?;
    if !path.is_empty() && !valid_url_path(path) {
        return Err(
            "the path and query may hold URL characters only (no spaces, quotes or fragment)"
                .into(),
        );
    }
    Ok(v.to_string())
}

/// `auth-signin-redirect-param`: a query parameter name.
pub(crate) fn parse_query_param(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !ok {
        return Err("must be 1-64 letters, digits, -, ., _ or ~".into());
    }
    Ok(v.to_string())
}

/// `auth-method`: an HTTP method, upper case.
pub(crate) fn parse_method(v: &str) -> Result<String, String> {
    let m = v.to_ascii_uppercase();
    match m.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => Ok(m),
        _ => Err("expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS".into()),
    }
}
