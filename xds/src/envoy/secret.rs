//! SDS: TLS certificates served to the HTTPS listener's filter chains.

use super::inline_bytes;
use crate::model::Certificate;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, Secret, TlsCertificate,
};

pub(super) fn secret(c: &Certificate) -> Secret {
    Secret {
        name: c.name.clone(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline_bytes(&c.cert_chain)),
            private_key: Some(inline_bytes(&c.private_key)),
            ..Default::default()
        })),
    }
}
