//! Objects the unit tests build again and again.

use crds::{TenantGateway, TenantGatewaySpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// A Namespace with a name and nothing else.
pub(crate) fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A TenantGateway naming `namespaces`, created `secs` after 2023-11-14,
/// with the uid `uid-<name>`.
pub(crate) fn tenant(name: &str, secs: i64, namespaces: &[&str]) -> TenantGateway {
    let mut g = TenantGateway::new(
        name,
        TenantGatewaySpec {
            namespaces: crds::NamespaceSelection {
                names: namespaces.iter().map(|s| s.to_string()).collect(),
                selector: None,
            },
            ..Default::default()
        },
    );
    g.metadata.uid = Some(format!("uid-{name}"));
    g.metadata.creation_timestamp = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap(),
    ));
    g
}
