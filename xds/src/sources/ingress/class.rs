//! Which Ingresses this gateway serves, and in which order (oldest first).

use crate::translate::{GatewayOptions, TenantObjects};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub(crate) const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The tenant's Ingresses of this gateway's class, oldest first.
pub(super) fn served_ingresses<'o>(
    objects: &'o TenantObjects,
    options: &GatewayOptions,
) -> Vec<&'o Ingress> {
    let mut ingresses: Vec<&Ingress> = objects
        .ingresses
        .iter()
        .filter(|i| {
            i.metadata
                .namespace
                .as_deref()
                .is_some_and(|ns| options.in_scope(ns))
                && i.metadata.name.is_some()
                && is_ours(i, options)
        })
        .collect();
    ingresses.sort_by(|a, b| creation_key(a).cmp(&creation_key(b)));
    ingresses
}

/// Oldest first; objects without a timestamp (manifest files) sort first,
/// then by namespace/name.
fn creation_key(ing: &Ingress) -> (Option<&Time>, &str, &str) {
    (
        ing.metadata.creation_timestamp.as_ref(),
        ing.metadata.namespace.as_deref().unwrap_or(""),
        ing.metadata.name.as_deref().unwrap_or(""),
    )
}

/// The class an Ingress names: `spec.ingressClassName`, else the legacy annotation.
pub(crate) fn class_of(ing: &Ingress) -> Option<&str> {
    let class = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        .map(String::as_str);
    class.or(legacy)
}

fn is_ours(ing: &Ingress, options: &GatewayOptions) -> bool {
    match class_of(ing) {
        Some(c) => c == options.ingress_class,
        None => options.serve_unclassed,
    }
}
