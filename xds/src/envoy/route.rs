//! RDS: the route configuration of each listener — virtual hosts by host,
//! each route's Envoy routes (alternatives, WebSocket, the route itself) with
//! its policies as route actions and per-filter configurations.

use super::filters::{
    buffer, compressor, cors, custom_response, ext_authz, fault, ratelimit, rbac,
};
use super::{dur, secs, Scheme, SNI_HEADER};
use crate::model::{
    Action, Affinity, ClientAuth, ClientVerify, HeaderEdits, HeaderMatch, HostMatch, HostRoutes,
    Hsts, Mirror, Model, PathMatch, PathRewrite, QueryMatch, Redirect, RedirectPath,
    Route as ModelRoute, RouteConditions, RoutePolicy, WeightedBackend,
};
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, RuntimeFractionalPercent};
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option, HeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, query_parameter_matcher, redirect_action, retry_policy, route, route_action,
    route_match, weighted_cluster, DirectResponseAction, HeaderMatcher, QueryParameterMatcher,
    RedirectAction, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    WeightedCluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher, RegexMatchAndSubstitute, RegexMatcher, StringMatcher,
};
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use envoy_types::pb::envoy::r#type::v3::{fractional_percent, FractionalPercent};
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub(super) fn configuration(model: &Model, name: &str, scheme: Scheme) -> RouteConfiguration {
    RouteConfiguration {
        virtual_hosts: virtual_hosts(model, scheme),
        ..configuration_shell(model, name, scheme)
    }
}

/// The route configuration without its virtual hosts.
fn configuration_shell(model: &Model, name: &str, scheme: Scheme) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: Vec::new(),
        // `Host: shop.example.com:8080` matches the vhost `shop.example.com`.
        ignore_port_in_host_matching: true,
        // As ingress-nginx, never the client's own headers: the client
        // address, the Host the client asked for (evaluated before a route's
        // host rewrite) and the port the gateway's Service publishes for the
        // scheme (nginx's `$server_port`). Envoy itself appends
        // X-Forwarded-For and sets X-Forwarded-Proto (`use_remote_address`).
        request_headers_to_add: vec![
            set_header("x-real-ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
            set_header("x-forwarded-host", "%REQ(:AUTHORITY)%"),
            set_header("x-forwarded-port", scheme.public_port()),
        ],
        // The listener's SNI name for the client-certificate routes.
        request_headers_to_remove: (scheme == Scheme::Https
            && model.tls.values().any(|sni| sni.client_auth.is_some()))
        .then(|| SNI_HEADER.to_string())
        .into_iter()
        .collect(),
        // A route's own header edits apply after (and win over) these.
        most_specific_header_mutations_wins: true,
        ..Default::default()
    }
}

/// Everything a host's virtual host is made of besides the host and the
/// scheme: the virtual host is a pure function of these, which is what lets
/// [`RouteMemo`] reuse it.
struct HostParts<'m> {
    routes: &'m [ModelRoute],
    tls: bool,
    guard: Vec<Route>,
    fallback: Option<&'m ModelRoute>,
    /// The catch-all routes a wildcard host ends with (empty for the others).
    catch_all: &'m [Route],
}

impl<'m> HostParts<'m> {
    fn of(
        model: &'m Model,
        scheme: Scheme,
        host: &HostMatch,
        routes: &'m [ModelRoute],
        catch_all: &'m [Route],
    ) -> Self {
        let guard = model
            .tls
            .get(host.display())
            .and_then(|sni| sni.client_auth.as_deref())
            .map(|c| client_certificate_guard(model, c, host, scheme))
            .unwrap_or_default();
        Self {
            routes,
            tls: model.host_has_tls(host),
            guard,
            fallback: model.routes.fallback.as_ref(),
            catch_all: match host {
                HostMatch::Wildcard(_) => catch_all,
                HostMatch::Any | HostMatch::Exact(_) => &[],
            },
        }
    }
}

/// [`HostParts`] kept from an earlier build.
struct OwnedHostParts {
    routes: Vec<ModelRoute>,
    tls: bool,
    guard: Vec<Route>,
    fallback: Option<ModelRoute>,
    catch_all: Vec<Route>,
}

impl OwnedHostParts {
    fn of(p: &HostParts<'_>) -> Self {
        Self {
            routes: p.routes.to_vec(),
            tls: p.tls,
            guard: p.guard.clone(),
            fallback: p.fallback.cloned(),
            catch_all: p.catch_all.to_vec(),
        }
    }

    /// `routes_kept`: the caller knows the routes are those of the last build.
    fn same(&self, p: &HostParts<'_>, routes_kept: bool) -> bool {
        self.tls == p.tls
            && (routes_kept || self.routes == p.routes)
            && self.guard == p.guard
            && self.fallback.as_ref() == p.fallback
            && self.catch_all == p.catch_all
    }
}

/// Per (scheme, host): what its virtual host was made of, and its bytes.
type HostMemo = HashMap<(Scheme, HostMatch), (OwnedHostParts, Arc<Vec<u8>>)>;

/// The encoded virtual host of every host of the last build, with what it
/// was made of: a build reuses the bytes of every host whose parts did not
/// change, so a change costs the hosts it touches (plus comparing the
/// others), not the whole table.
#[derive(Default)]
pub(crate) struct RouteMemo {
    hosts: HostMemo,
    /// What the build in progress used (the next `hosts`).
    used: HostMemo,
    /// Virtual hosts encoded by the last build (the others were reused).
    pub(crate) encoded: usize,
}

impl RouteMemo {
    /// Forget the hosts the finished build did not use.
    pub(crate) fn finish(&mut self) {
        self.hosts = std::mem::take(&mut self.used);
        self.used.reserve(self.hosts.len());
    }

    fn virtual_host(
        &mut self,
        host: &HostMatch,
        scheme: Scheme,
        parts: &HostParts<'_>,
        routes_kept: bool,
    ) -> Option<Arc<Vec<u8>>> {
        let key = (scheme, host.clone());
        let entry = match self.hosts.remove(&key) {
            Some(kept) if kept.0.same(parts, routes_kept) => kept,
            _ => {
                let vhost = host_virtual_host(host, scheme, parts)?;
                self.encoded += 1;
                let bytes = Arc::new(crate::snapshot::encode_virtual_host(&vhost));
                (OwnedHostParts::of(parts), bytes)
            }
        };
        let bytes = entry.1.clone();
        self.used.insert(key, entry);
        Some(bytes)
    }
}

/// [`configuration`] encoded as [`crate::snapshot::Snapshot`] encodes it,
/// through `memo`: byte for byte the same (the incremental property test).
/// The routes of hosts not in `relowered` are those of the memo's last
/// build, so they are not compared again.
pub(super) fn configuration_encoded(
    model: &Model,
    name: &str,
    scheme: Scheme,
    memo: &mut RouteMemo,
    relowered: &BTreeSet<HostMatch>,
) -> Vec<u8> {
    let catch_all = catch_all_routes(model, scheme);
    let mut parts: BTreeMap<String, Arc<Vec<u8>>> = BTreeMap::new();
    for (host, routes) in &model.routes.hosts {
        let hp = HostParts::of(model, scheme, host, routes, &catch_all);
        let kept = !relowered.contains(host);
        if let (Some(bytes), Some(domain)) =
            (memo.virtual_host(host, scheme, &hp, kept), domain(host))
        {
            parts.insert(domain.to_string(), bytes);
        }
    }
    for (host, vhost) in custom_errors_hosts(model) {
        parts
            .entry(host)
            .or_insert_with(|| Arc::new(crate::snapshot::encode_virtual_host(&vhost)));
    }
    let last = crate::snapshot::encode_virtual_host(&catch_all_virtual_host(catch_all));
    let shell = configuration_shell(model, name, scheme);
    crate::snapshot::encode_route_configuration(
        &shell,
        parts
            .values()
            .map(|b| b.as_slice())
            .chain(std::iter::once(last.as_slice())),
    )
}

/// The virtual host name (and domain) of a rule host; None for no host.
fn domain(host: &HostMatch) -> Option<&str> {
    match host {
        HostMatch::Any => None,
        HostMatch::Exact(h) | HostMatch::Wildcard(h) => Some(h),
    }
}

/// The routes of requests matching no host: the routes without host, then
/// the fallback.
fn catch_all_routes(model: &Model, scheme: Scheme) -> Vec<Route> {
    let table = &model.routes;
    let any = HostMatch::Any;
    table
        .hosts
        .get(&any)
        .into_iter()
        .flatten()
        .chain(table.fallback.iter())
        .flat_map(|r| envoy_routes(r, &any, None, scheme, false))
        .collect()
}

fn catch_all_virtual_host(routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: "*".into(),
        domains: vec!["*".into()],
        routes,
        ..Default::default()
    }
}

/// Requests whose host matches a host of the table are answered by its
/// routes, then the fallback; requests matching no host use the routes
/// without host.
fn virtual_hosts(model: &Model, scheme: Scheme) -> Vec<VirtualHost> {
    let catch_all = catch_all_routes(model, scheme);
    let mut vhosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
    for (host, routes) in &model.routes.hosts {
        let parts = HostParts::of(model, scheme, host, routes, &catch_all);
        if let Some(vhost) = host_virtual_host(host, scheme, &parts) {
            vhosts.insert(vhost.name.clone(), vhost);
        }
    }
    // A rule host spelled like an internal one (`*.custom-errors.invalid`) keeps its own.
    for (host, vhost) in custom_errors_hosts(model) {
        vhosts.entry(host).or_insert(vhost);
    }
    let mut out: Vec<VirtualHost> = vhosts.into_values().collect();
    out.push(catch_all_virtual_host(catch_all));
    out
}

/// The virtual host of one rule host (None for no host: its routes are
/// the catch-all's).
fn host_virtual_host(host: &HostMatch, scheme: Scheme, p: &HostParts<'_>) -> Option<VirtualHost> {
    let (domain, authority) = match host {
        HostMatch::Any => return None,
        HostMatch::Exact(h) => (h.clone(), None),
        HostMatch::Wildcard(w) => (w.clone(), Some(one_label_authority(w))),
    };
    let fallback_for = |auth: Option<&HeaderMatcher>| -> Vec<Route> {
        match p.fallback {
            Some(d) => envoy_routes(d, host, auth, scheme, p.tls),
            None => vec![not_found(host, auth)],
        }
    };
    let expand = |rs: &mut dyn Iterator<Item = &ModelRoute>| -> Vec<Route> {
        rs.flat_map(|r| envoy_routes(r, host, authority.as_ref(), scheme, p.tls))
            .collect()
    };
    // Over plain HTTP, a host's client-certificate guard redirects every
    // request to HTTPS; its ACME HTTP-01 challenge routes stay in front of
    // it and are answered (see `PathMatch::is_acme_challenge`).
    let (mut head, mut list) = if scheme == Scheme::Http && !p.guard.is_empty() {
        (
            expand(&mut p.routes.iter().filter(|r| r.path.is_acme_challenge())),
            expand(&mut p.routes.iter().filter(|r| !r.path.is_acme_challenge())),
        )
    } else {
        (Vec::new(), expand(&mut p.routes.iter()))
    };
    match &authority {
        None => {
            if p.fallback.is_some() {
                list.extend(fallback_for(None));
            }
        }
        Some(auth) => {
            list.extend(fallback_for(Some(auth)));
            // Deeper names (a.b.example.com) match no rule host: fall back.
            list.extend(p.catch_all.iter().cloned());
        }
    }
    head.dedup();
    list.dedup();
    head.extend(p.guard.iter().cloned());
    head.extend(list);
    Some(VirtualHost {
        name: domain.clone(),
        domains: vec![domain],
        routes: head,
        ..Default::default()
    })
}

/// A virtual host per internal error host of `custom-http-errors`: its one
/// route sends the redirected request to the error backend with path `/`
/// (query kept) and ingress-nginx's headers. The host name cannot be an
/// Ingress host; a client that sends it itself only ever gets that
/// Ingress's error backend.
fn custom_errors_hosts(model: &Model) -> BTreeMap<String, VirtualHost> {
    let mut out = BTreeMap::new();
    for e in model
        .routes
        .routes()
        .filter_map(|r| r.policy.custom_errors.as_deref())
    {
        out.entry(e.host.clone()).or_insert_with(|| VirtualHost {
            name: e.host.clone(),
            domains: vec![e.host.clone()],
            routes: vec![Route {
                name: format!("custom-errors|{}", e.host),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        e.backend.clone(),
                    )),
                    // nginx's `rewrite (.*) / break`.
                    regex_rewrite: Some(RegexMatchAndSubstitute {
                        pattern: Some(RegexMatcher {
                            regex: ".*".into(),
                            ..Default::default()
                        }),
                        substitution: "/".into(),
                    }),
                    ..Default::default()
                })),
                // Evaluated before the rewrite: the client's path and query.
                request_headers_to_add: vec![
                    set_header("x-original-uri", "%REQ(:PATH)%"),
                    set_header("x-format", "%REQ(ACCEPT)%"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    out
}

/// The SNI names whose connections were checked like `c`'s host's (the
/// same client-certificate settings), as one case-insensitive RE2 regex.
fn same_client_auth_names(model: &Model, c: &ClientAuth) -> String {
    let names: Vec<String> = model
        .tls
        .iter()
        .filter(|(_, sni)| sni.client_auth.as_deref() == Some(c))
        .map(|(name, _)| match name.strip_prefix("*.") {
            Some(suffix) => format!("[^.]+\\.{}", regex::escape(suffix)),
            None => regex::escape(name),
        })
        .collect();
    format!("(?i)^(?:{})$", names.join("|"))
}

/// The first routes of a host asking for client certificates: a request
/// over a connection not checked with the host's settings (another host's
/// SNI) gets 421, as nginx; one whose connection carries no verified
/// certificate (`on`) or an unverified one (`optional`) gets
/// ingress-nginx's 400 or the error page (302); over plain HTTP, `on`
/// redirects to HTTPS (308).
fn client_certificate_guard(
    model: &Model,
    c: &ClientAuth,
    host: &HostMatch,
    scheme: Scheme,
) -> Vec<Route> {
    use route_match::TlsContextMatchOptions;
    let name = |what: &str| format!("client-certificate|{}|{what}", host.display());
    let matching = |presented: Option<bool>, validated: bool| RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
        tls_context: Some(TlsContextMatchOptions {
            presented: presented.map(|value| BoolValue { value }),
            validated: Some(BoolValue { value: validated }),
        }),
        ..Default::default()
    };
    let answer = |body: &str| match &c.error_page {
        Some(r) => route::Action::Redirect(redirect(r)),
        None => route::Action::DirectResponse(DirectResponseAction {
            status: 400,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.into())),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let guard = |what: &str, m: RouteMatch, body: &str| Route {
        name: name(what),
        r#match: Some(m),
        action: Some(answer(body)),
        ..Default::default()
    };
    match (scheme, c.verify) {
        (_, ClientVerify::OptionalNoCa) | (Scheme::Http, ClientVerify::Optional) => vec![],
        (Scheme::Http, ClientVerify::On) => vec![https_redirect(
            name("https"),
            RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                ..Default::default()
            },
        )],
        (Scheme::Https, verify) => {
            let other_connection = HeaderMatcher {
                invert_match: true,
                treat_missing_header_as_empty: true,
                ..header_regex(SNI_HEADER, same_client_auth_names(model, c))
            };
            let mut out = vec![Route {
                name: name("misdirected"),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    headers: vec![other_connection],
                    ..Default::default()
                }),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status: 421,
                    body: Some(DataSource {
                        specifier: Some(data_source::Specifier::InlineString(
                            "421 Misdirected Request: the connection's TLS name is not this host's\n"
                                .into(),
                        )),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            }];
            if verify == ClientVerify::On {
                out.push(guard(
                    "missing",
                    matching(Some(false), false),
                    "400 Bad Request: No required SSL certificate was sent\n",
                ));
            }
            out.push(guard(
                "invalid",
                matching(Some(true), false),
                "400 Bad Request: The SSL certificate error\n",
            ));
            out
        }
    }
}

fn not_found(host: &HostMatch, authority: Option<&HeaderMatcher>) -> Route {
    Route {
        name: format!("not-found|{}", host.display()),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            headers: authority.cloned().into_iter().collect(),
            ..Default::default()
        }),
        action: Some(route::Action::DirectResponse(DirectResponseAction {
            status: 404,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn route_name(r: &ModelRoute, host: &HostMatch) -> String {
    let path = match &r.path {
        PathMatch::Exact(p) => format!("exact:{p}"),
        PathMatch::Prefix(p) => format!("prefix:{p}"),
        PathMatch::Regex(p) => format!("regex:{p}"),
        PathMatch::RegularExpression(p) => format!("re2:{p}"),
    };
    let object = &r.provenance.object;
    format!(
        "{}/{}|{}|{path}",
        object.namespace,
        object.name,
        host.display()
    )
}

/// The route's policies that Envoy applies through HTTP filters enabled per
/// route. Several entries are fine: snapshots encode these maps sorted by key.
fn per_filter_configs(p: &RoutePolicy) -> Vec<(String, Any)> {
    [
        (
            rbac::NAME,
            rbac::per_route(&p.access, p.rate_limit.as_ref().map_or(&[], |r| &r.exempt)),
        ),
        (buffer::NAME, buffer::per_route(p.max_body_bytes)),
        (cors::NAME, p.cors.as_ref().map(cors::per_route)),
        (
            ext_authz::NAME,
            p.auth.as_ref().map(|a| ext_authz::per_route(&a.id)),
        ),
        (
            custom_response::NAME,
            p.custom_errors.as_deref().map(custom_response::per_route),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .chain(p.compression.as_ref().map(compressor::per_route))
    .collect()
}

/// A Gateway API route table: one virtual host per host (Envoy's own domain
/// matching: exact, then the longest wildcard suffix, then `*`), routes in
/// the table's order; what no route matches gets Envoy's 404.
pub(super) fn host_routes_configuration(table: &HostRoutes) -> RouteConfiguration {
    let virtual_hosts = table
        .hosts
        .iter()
        .map(|(host, routes)| {
            let domain = match host {
                HostMatch::Any => "*".to_string(),
                HostMatch::Exact(h) | HostMatch::Wildcard(h) => h.clone(),
            };
            let routes = routes
                .iter()
                .flat_map(|r| {
                    let name = format!(
                        "{}|{}|{}",
                        r.provenance.object,
                        host.display(),
                        r.provenance.field
                    );
                    envoy_routes_named(r, name, None, Scheme::Http, false)
                })
                .collect();
            VirtualHost {
                name: domain.clone(),
                domains: vec![domain],
                routes,
                ..Default::default()
            }
        })
        .collect();
    RouteConfiguration {
        name: table.name.clone(),
        virtual_hosts,
        ignore_port_in_host_matching: true,
        most_specific_header_mutations_wins: true,
        ..Default::default()
    }
}

/// The Envoy routes of one model route, most specific first: the body-size
/// guard, the alternatives, the WebSocket route, then the route itself.
fn envoy_routes(
    r: &ModelRoute,
    host: &HostMatch,
    authority: Option<&HeaderMatcher>,
    scheme: Scheme,
    host_tls: bool,
) -> Vec<Route> {
    envoy_routes_named(r, route_name(r, host), authority, scheme, host_tls)
}

fn envoy_routes_named(
    r: &ModelRoute,
    name: String,
    authority: Option<&HeaderMatcher>,
    scheme: Scheme,
    host_tls: bool,
) -> Vec<Route> {
    let p = &r.policy;
    let matcher = |extra: Vec<HeaderMatcher>| RouteMatch {
        path_specifier: Some(path_specifier(&r.path)),
        headers: authority
            .cloned()
            .into_iter()
            .chain(condition_headers(&r.conditions))
            .chain(extra)
            .collect(),
        query_parameters: r.conditions.query.iter().map(query_matcher).collect(),
        ..Default::default()
    };
    if scheme == Scheme::Http && p.https_redirect.applies(host_tls) && !r.path.is_acme_challenge() {
        return vec![https_redirect(name, matcher(vec![]))];
    }
    let filter_configs = per_filter_configs(p);
    let hsts = match scheme {
        Scheme::Https => p.hsts.as_ref(),
        Scheme::Http => None,
    };
    let headers = HeaderMutations::new(&p.headers, hsts);
    let route = |name: String, m: RouteMatch, action: route::Action| Route {
        name,
        r#match: Some(m),
        action: Some(action),
        typed_per_filter_config: filter_configs
            .iter()
            .map(|(k, a)| (k.to_string(), a.clone()))
            .collect(),
        request_headers_to_add: headers.request_add.clone(),
        request_headers_to_remove: p.headers.request_remove.clone(),
        response_headers_to_add: headers.response_add.clone(),
        response_headers_to_remove: p.headers.response_remove.clone(),
        ..Default::default()
    };
    let action = |a: &Action| action(a, p, r.rewrite.as_ref());
    let mut out = Vec::new();
    if let Some(max) = p.max_body_bytes {
        out.push(route(
            format!("{name}|body-too-large"),
            matcher(vec![content_length_above(max)]),
            route::Action::DirectResponse(DirectResponseAction {
                status: 413,
                ..Default::default()
            }),
        ));
    }
    for alt in &r.alternatives {
        out.push(route(
            format!("{name}|{}", alt.name),
            matcher(alt.headers.iter().map(header_matcher).collect()),
            action(&alt.action),
        ));
    }
    let main = action(&r.action);
    if let (Some(ws), route::Action::Route(a)) = (p.timeouts.websocket_idle, &main) {
        let mut a = a.clone();
        a.idle_timeout = Some(dur(ws));
        out.push(route(
            format!("{name}|websocket"),
            matcher(vec![websocket_upgrade()]),
            route::Action::Route(a),
        ));
    }
    out.push(route(name, matcher(vec![]), main));
    out
}

/// 308 like ingress-nginx: the method and body are kept.
fn https_redirect(name: String, m: RouteMatch) -> Route {
    Route {
        name,
        r#match: Some(m),
        action: Some(route::Action::Redirect(RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(
                true,
            )),
            response_code: redirect_action::RedirectResponseCode::PermanentRedirect as i32,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Header additions of a route's responses and requests, as Envoy options.
struct HeaderMutations {
    request_add: Vec<HeaderValueOption>,
    response_add: Vec<HeaderValueOption>,
}

impl HeaderMutations {
    fn new(edits: &HeaderEdits, hsts: Option<&Hsts>) -> Self {
        let response_add = hsts
            .map(hsts_header)
            .into_iter()
            .chain(edits.response_add.iter().map(|(k, v)| set_header(k, v)))
            .chain(
                edits
                    .response_append
                    .iter()
                    .map(|(k, v)| append_header(k, v)),
            )
            .collect();
        Self {
            request_add: edits
                .request_add
                .iter()
                .map(|(k, v)| set_header(k, v))
                .chain(
                    edits
                        .request_append
                        .iter()
                        .map(|(k, v)| append_header(k, v)),
                )
                .collect(),
            response_add,
        }
    }
}

fn hsts_header(h: &Hsts) -> HeaderValueOption {
    let mut value = format!("max-age={}", h.max_age);
    if h.include_subdomains {
        value.push_str("; includeSubDomains");
    }
    set_header("strict-transport-security", &value)
}

/// A declared Content-Length above the limit: 413 before anything is read.
fn content_length_above(max: u32) -> HeaderMatcher {
    HeaderMatcher {
        name: "content-length".into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::RangeMatch(
            Int64Range {
                start: i64::from(max) + 1,
                end: i64::MAX,
            },
        )),
        ..Default::default()
    }
}

fn websocket_upgrade() -> HeaderMatcher {
    HeaderMatcher {
        name: "upgrade".into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact("websocket".into())),
                ignore_case: true,
            },
        )),
        ..Default::default()
    }
}

/// A route's own header and method conditions (the method is the `:method` pseudo-header).
fn condition_headers(c: &RouteConditions) -> impl Iterator<Item = HeaderMatcher> + '_ {
    c.headers
        .iter()
        .map(header_matcher)
        .chain(c.method.iter().map(|m| header_exact(":method", m)))
}

fn query_matcher(m: &QueryMatch) -> QueryParameterMatcher {
    let (name, matcher) = match m {
        QueryMatch::Exact { name, value } => (name, exact_string(value)),
        QueryMatch::Regex { name, regex } => (name, regex_string(regex.clone())),
    };
    QueryParameterMatcher {
        name: name.clone(),
        query_parameter_match_specifier: Some(
            query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(matcher),
        ),
    }
}

fn header_matcher(m: &HeaderMatch) -> HeaderMatcher {
    match m {
        HeaderMatch::Exact { name, value } => header_exact(name, value),
        HeaderMatch::Regex { name, regex } => header_regex(name, regex.clone()),
    }
}

fn action(a: &Action, p: &RoutePolicy, rewrite: Option<&PathRewrite>) -> route::Action {
    match a {
        Action::Forward(backends) => {
            route::Action::Route(route_action(p, rewrite, cluster_specifier(backends)))
        }
        Action::DirectResponse { status } => route::Action::DirectResponse(DirectResponseAction {
            status: *status,
            ..Default::default()
        }),
        Action::Redirect(r) => route::Action::Redirect(redirect(r)),
        Action::ForwardOrFail {
            backends,
            failed_weight,
            status,
        } => match backends.first() {
            None => route::Action::DirectResponse(DirectResponseAction {
                status: *status,
                ..Default::default()
            }),
            Some(first) => {
                let mut clusters: Vec<_> = backends.iter().map(cluster_weight).collect();
                {
                    // The failed share is an existing cluster whose requests the
                    // fault filter answers itself (weighted entries cannot answer).
                    clusters.push(weighted_cluster::ClusterWeight {
                        name: first.backend.clone(),
                        weight: Some(UInt32Value {
                            value: *failed_weight,
                        }),
                        typed_per_filter_config: [(
                            fault::NAME.to_string(),
                            fault::abort_all(*status),
                        )]
                        .into_iter()
                        .collect(),
                        ..Default::default()
                    });
                }
                let spec = route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
                    clusters,
                    ..Default::default()
                });
                route::Action::Route(route_action(p, rewrite, spec))
            }
        },
    }
}

fn redirect(r: &Redirect) -> RedirectAction {
    use redirect_action::{PathRewriteSpecifier, SchemeRewriteSpecifier};
    RedirectAction {
        scheme_rewrite_specifier: r.scheme.clone().map(SchemeRewriteSpecifier::SchemeRedirect),
        host_redirect: r.host.clone().unwrap_or_default(),
        port_redirect: r.port.map(u32::from).unwrap_or_default(),
        path_rewrite_specifier: r.path.as_ref().map(|p| match p {
            RedirectPath::Full(p) => PathRewriteSpecifier::PathRedirect(p.clone()),
            RedirectPath::Prefix(p) => PathRewriteSpecifier::PrefixRewrite(p.clone()),
            RedirectPath::Regex {
                pattern,
                substitution,
            } => PathRewriteSpecifier::RegexRewrite(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: pattern.clone(),
                    ..Default::default()
                }),
                substitution: substitution.clone(),
            }),
        }),
        response_code: redirect_code(r.status) as i32,
        strip_query: r.strip_query,
    }
}

/// A copy of `percent`% of the requests to the mirror's cluster.
fn mirror_policy(m: &Mirror) -> route_action::RequestMirrorPolicy {
    route_action::RequestMirrorPolicy {
        cluster: m.backend.clone(),
        runtime_fraction: match m.per_million {
            Some(n) => Some(RuntimeFractionalPercent {
                default_value: Some(FractionalPercent {
                    numerator: n,
                    denominator: fractional_percent::DenominatorType::Million as i32,
                }),
                ..Default::default()
            }),
            None => (m.percent < 100).then(|| RuntimeFractionalPercent {
                default_value: Some(FractionalPercent {
                    numerator: m.percent,
                    denominator: fractional_percent::DenominatorType::Hundred as i32,
                }),
                ..Default::default()
            }),
        },
        // nginx sends the mirror's own Host; Envoy would append `-shadow`.
        host_rewrite_literal: m.host.clone().unwrap_or_default(),
        disable_shadow_host_suffix_append: m.host.is_some(),
        ..Default::default()
    }
}

fn redirect_code(status: u16) -> redirect_action::RedirectResponseCode {
    use redirect_action::RedirectResponseCode as Code;
    match status {
        302 => Code::Found,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        _ => Code::MovedPermanently,
    }
}

/// One backend by name; several (or one with its own header edits) as
/// weighted clusters.
fn cluster_specifier(backends: &[WeightedBackend]) -> route_action::ClusterSpecifier {
    match backends {
        [one] if one.headers.is_none() => {
            route_action::ClusterSpecifier::Cluster(one.backend.clone())
        }
        many => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many.iter().map(cluster_weight).collect(),
            ..Default::default()
        }),
    }
}

fn cluster_weight(b: &WeightedBackend) -> weighted_cluster::ClusterWeight {
    let mut w = weighted_cluster::ClusterWeight {
        name: b.backend.clone(),
        weight: Some(UInt32Value { value: b.weight }),
        ..Default::default()
    };
    if let Some(edits) = &b.headers {
        let m = HeaderMutations::new(edits, None);
        w.request_headers_to_add = m.request_add;
        w.request_headers_to_remove = edits.request_remove.clone();
        w.response_headers_to_add = m.response_add;
        w.response_headers_to_remove = edits.response_remove.clone();
    }
    w
}

fn route_action(
    p: &RoutePolicy,
    rewrite: Option<&PathRewrite>,
    spec: route_action::ClusterSpecifier,
) -> RouteAction {
    let mut a = RouteAction {
        cluster_specifier: Some(spec),
        // No overall deadline unless asked (long polls, WebSockets); idle like
        // nginx's proxy-read-timeout.
        timeout: Some(p.timeouts.request.map_or_else(|| secs(0), dur)),
        idle_timeout: Some(dur(p.timeouts.idle)),
        rate_limits: ratelimit::route_rate_limits(p),
        request_mirror_policies: p.mirrors.iter().map(mirror_policy).collect(),
        ..Default::default()
    };
    if p.retry.retries > 0 && !p.retry.on.is_empty() {
        a.retry_policy = Some(RetryPolicy {
            retry_on: p.retry.on.join(","),
            num_retries: Some(UInt32Value {
                value: p.retry.retries,
            }),
            retriable_status_codes: p.retry.status_codes.clone(),
            per_try_timeout: p.timeouts.backend_request.map(dur),
            retry_host_predicate: retry_other_host(&p.affinity),
            host_selection_retry_max_attempts: if retry_other_host(&p.affinity).is_empty() {
                0
            } else {
                HOST_SELECTION_ATTEMPTS
            },
            ..Default::default()
        });
    }
    if let Some(host) = &p.host_rewrite {
        a.host_rewrite_specifier = Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            host.clone(),
        ));
    }
    a.hash_policy = hash_policy(&p.affinity);
    match rewrite {
        Some(PathRewrite::Prefix(to)) => a.prefix_rewrite = to.clone(),
        Some(PathRewrite::Regex {
            pattern,
            substitution,
        }) => {
            a.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: pattern.clone(),
                    ..Default::default()
                }),
                substitution: substitution.clone(),
            });
        }
        None => {}
    }
    a
}

/// Attempts at picking a host not tried yet before a retry takes a tried one.
const HOST_SELECTION_ATTEMPTS: i64 = 5;

/// `session-cookie-change-on-failure`: a retry avoids the endpoints already
/// tried (Envoy's ring hash would pick the same one again).
fn retry_other_host(affinity: &Affinity) -> Vec<retry_policy::RetryHostPredicate> {
    use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
    match affinity {
        Affinity::Cookie(c) if c.change_on_failure => vec![retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                super::any(&PreviousHostsPredicate::default()),
            )),
        }],
        _ => vec![],
    }
}

fn hash_policy(affinity: &Affinity) -> Vec<route_action::HashPolicy> {
    use route_action::hash_policy;
    let specifier =
        match affinity {
            Affinity::None => return vec![],
            Affinity::Cookie(c) => hash_policy::PolicySpecifier::Cookie(hash_policy::Cookie {
                name: c.name.clone(),
                // Present: Envoy sets the cookie when missing; zero = session cookie.
                ttl: Some(c.max_age.map_or(secs(0), dur)),
                path: c.path.clone().unwrap_or_else(|| "/".into()),
                attributes: c
                    .same_site
                    .iter()
                    .map(|v| hash_policy::CookieAttribute {
                        name: "SameSite".into(),
                        value: v.clone(),
                    })
                    // An empty value is sent as the bare attribute name.
                    .chain(c.secure.then(|| hash_policy::CookieAttribute {
                        name: "Secure".into(),
                        value: String::new(),
                    }))
                    .collect(),
            }),
            Affinity::SourceIp => hash_policy::PolicySpecifier::ConnectionProperties(
                hash_policy::ConnectionProperties { source_ip: true },
            ),
        };
    vec![route_action::HashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    }]
}

fn path_specifier(p: &PathMatch) -> route_match::PathSpecifier {
    match p {
        PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
        PathMatch::Prefix(p) if p == "/" => route_match::PathSpecifier::Prefix("/".into()),
        // Element-wise: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, never `/foobar`.
        PathMatch::Prefix(p) => route_match::PathSpecifier::PathSeparatedPrefix(p.clone()),
        // Full match in Envoy; ingress-nginx's `~* "^<path>"` is a case-insensitive prefix.
        PathMatch::Regex(p) => route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: format!("(?i)(?:{p}).*"),
            ..Default::default()
        }),
        PathMatch::RegularExpression(p) => route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: p.clone(),
            ..Default::default()
        }),
    }
}

/// `*.example.com` in Envoy matches any depth; Kubernetes means exactly one label.
fn one_label_authority(wildcard: &str) -> HeaderMatcher {
    let suffix = wildcard.trim_start_matches('*');
    HeaderMatcher {
        name: ":authority".into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                    // Host names are case-insensitive (ignore_case does not apply to regexes).
                    regex: format!("(?i)^[^.:]+{}(:[0-9]+)?$", regex::escape(suffix)),
                    ..Default::default()
                })),
                ignore_case: false,
            },
        )),
        ..Default::default()
    }
}

fn header_regex(name: &str, regex: String) -> HeaderMatcher {
    header_string_match(name, regex_string(regex))
}

fn header_exact(name: &str, value: &str) -> HeaderMatcher {
    header_string_match(name, exact_string(value))
}

fn header_string_match(name: &str, matcher: StringMatcher) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(matcher)),
        ..Default::default()
    }
}

/// Case-sensitive, as Gateway API and Ingress header/query matches are.
fn exact_string(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(value.into())),
        ignore_case: false,
    }
}

fn regex_string(regex: String) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex,
            ..Default::default()
        })),
        ignore_case: false,
    }
}

fn append_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        append_action: header_value_option::HeaderAppendAction::AppendIfExistsOrAdd as i32,
        ..set_header(key, value)
    }
}

pub(super) fn set_header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}
