//! Source ranges (an access list) as the RBAC filter, enabled per route.

use crate::envoy::any;
use crate::model::{AccessList, Cidr};
use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    permission, principal, rbac, Permission, Policy, Principal, Rbac as RbacRules,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{Rbac, RbacPerRoute};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};

pub(in crate::envoy) const NAME: &str = "envoy.filters.http.rbac";
/// The key of the shadow rules' result (`allowed`/`denied`) in the dynamic
/// metadata the filter writes under [`NAME`].
pub(in crate::envoy) const SHADOW_RESULT: &str = "shadow_engine_result";

/// Off unless a route enables it with its own policy.
pub(super) fn disabled_filter() -> HttpFilter {
    HttpFilter {
        name: NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&Rbac::default()))),
        disabled: true,
        ..Default::default()
    }
}

fn cidr(c: &Cidr) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::RemoteIp(CidrRange {
            address_prefix: c.addr.to_string(),
            prefix_len: Some(UInt32Value { value: c.len }),
        })),
    }
}

fn any_of(ranges: &[Cidr]) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set {
            ids: ranges.iter().map(cidr).collect(),
        })),
    }
}

/// One ALLOW policy of these principals (so the proto map holds one
/// entry and encodes deterministically).
fn allow_only(name: &str, principal: Principal) -> RbacRules {
    let policy = Policy {
        permissions: vec![Permission {
            rule: Some(permission::Rule::Any(true)),
        }],
        principals: vec![principal],
        ..Default::default()
    };
    RbacRules {
        action: rbac::Action::Allow as i32,
        policies: [(name.to_string(), policy)].into_iter().collect(),
        ..Default::default()
    }
}

/// Source ranges as one ALLOW policy: in an allowed range and in no denied
/// one. Clients in `rate_limit_exempt` get `allowed` as the shadow result
/// (read by the rate limits), the others `denied`; nothing is enforced by it.
pub(in crate::envoy) fn per_route(access: &AccessList, rate_limit_exempt: &[Cidr]) -> Option<Any> {
    if access.is_empty() && rate_limit_exempt.is_empty() {
        return None;
    }
    let shadow_rules = (!rate_limit_exempt.is_empty())
        .then(|| allow_only("rate-limit-exempt", any_of(rate_limit_exempt)));
    if access.is_empty() {
        return Some(any(&RbacPerRoute {
            rbac: Some(Rbac {
                shadow_rules,
                ..Default::default()
            }),
        }));
    }
    let mut ids = Vec::new();
    if !access.allow.is_empty() {
        ids.push(any_of(&access.allow));
    }
    if !access.deny.is_empty() {
        ids.push(Principal {
            identifier: Some(principal::Identifier::NotId(Box::new(any_of(&access.deny)))),
        });
    }
    let rules = allow_only(
        "source-ranges",
        Principal {
            identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
        },
    );
    Some(any(&RbacPerRoute {
        rbac: Some(Rbac {
            rules: Some(rules),
            shadow_rules,
            ..Default::default()
        }),
    }))
}
