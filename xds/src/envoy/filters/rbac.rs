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

/// Source ranges as one ALLOW policy (so the proto map holds one entry and
/// encodes deterministically): in an allowed range and in no denied one.
pub(in crate::envoy) fn per_route(access: &AccessList) -> Option<Any> {
    if access.is_empty() {
        return None;
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
    let policy = Policy {
        permissions: vec![Permission {
            rule: Some(permission::Rule::Any(true)),
        }],
        principals: vec![Principal {
            identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
        }],
        ..Default::default()
    };
    let rules = RbacRules {
        action: rbac::Action::Allow as i32,
        policies: [("source-ranges".to_string(), policy)]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    Some(any(&RbacPerRoute {
        rbac: Some(Rbac {
            rules: Some(rules),
            ..Default::default()
        }),
    }))
}
