//! ingress-nginx's `custom-http-errors` as the custom_response filter: a
//! backend answer with one of a route's codes is replaced by an internal
//! redirect to the error backend's virtual host (see `route::custom_errors_hosts`).

use crate::envoy::any;
use crate::envoy::route::set_header;
use crate::model::CustomErrors;
use envoy_types::pb::envoy::config::route::v3::RedirectAction;
use envoy_types::pb::envoy::extensions::filters::http::custom_response::v3::CustomResponse;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::http::custom_response::redirect_policy::v3::{
    redirect_policy, RedirectPolicy,
};
use envoy_types::pb::envoy::r#type::matcher::v3::HttpResponseStatusCodeMatchInput;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::{
    predicate, FieldMatcher, Predicate,
};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{
    on_match, MatcherList, MatcherType, OnMatch,
};
use envoy_types::pb::xds::r#type::matcher::v3::{string_matcher, Matcher, StringMatcher};

pub(in crate::envoy) const NAME: &str = "envoy.filters.http.custom_response";

/// Off unless a route enables it with its codes: the redirected request's
/// own route (the error backend's) has none, so an error page is never
/// redirected again.
pub(super) fn disabled_filter() -> HttpFilter {
    HttpFilter {
        name: NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(
            &CustomResponse::default(),
        ))),
        disabled: true,
        ..Default::default()
    }
}

/// One matcher per code, in code order: the request goes again, as a GET
/// without body, to the error host with the same path and query, carrying
/// `X-Code` and the route's own headers.
pub(in crate::envoy) fn per_route(e: &CustomErrors) -> Any {
    let matchers = e
        .codes
        .iter()
        .map(|code| FieldMatcher {
            predicate: Some(Predicate {
                match_type: Some(predicate::MatchType::SinglePredicate(
                    predicate::SinglePredicate {
                        input: Some(TypedExtensionConfig {
                            name: "status".into(),
                            typed_config: Some(any(&HttpResponseStatusCodeMatchInput {})),
                        }),
                        matcher: Some(predicate::single_predicate::Matcher::ValueMatch(
                            StringMatcher {
                                match_pattern: Some(string_matcher::MatchPattern::Exact(
                                    code.to_string(),
                                )),
                                ignore_case: false,
                            },
                        )),
                    },
                )),
            }),
            on_match: Some(OnMatch {
                keep_matching: false,
                on_match: Some(on_match::OnMatch::Action(TypedExtensionConfig {
                    name: format!("custom-error-{code}"),
                    typed_config: Some(any(&redirect(e, *code))),
                })),
            }),
        })
        .collect();
    any(&CustomResponse {
        custom_response_matcher: Some(Matcher {
            matcher_type: Some(MatcherType::MatcherList(MatcherList { matchers })),
            on_no_match: None,
        }),
    })
}

/// Only the host changes: the error route keeps the path for
/// `X-Original-URI`. No status override: the client gets the error
/// backend's status, as nginx passes the custom backend's answer as it is.
fn redirect(e: &CustomErrors, code: u16) -> RedirectPolicy {
    RedirectPolicy {
        redirect_action_specifier: Some(redirect_policy::RedirectActionSpecifier::RedirectAction(
            RedirectAction {
                host_redirect: e.host.clone(),
                ..Default::default()
            },
        )),
        request_headers_to_add: std::iter::once(set_header("x-code", &code.to_string()))
            .chain(e.headers.iter().map(|(k, v)| set_header(k, v)))
            .collect(),
        ..Default::default()
    }
}
