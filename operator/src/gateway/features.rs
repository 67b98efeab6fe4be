//! The Gateway API features this implementation supports: the one list
//! written into the GatewayClass's `status.supportedFeatures`. Add a feature
//! here when the translation (xds) supports it; the conformance suite runs
//! the tests of exactly these features.

use gwapi::gatewayclasses::GatewayClassStatusSupportedFeatures;

/// Feature names as `sigs.k8s.io/gateway-api/pkg/features` spells them.
pub const SUPPORTED_FEATURES: &[&str] = &[
    // Core features.
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "GRPCRoute",
    "TLSRoute",
    // Extended features whose conformance tests pass (docs/conformance/).
    "GatewayHTTPListenerIsolation",
    "GatewayInfrastructure",
    "GatewayPort8080",
    "GRPCRouteNamedRouteRule",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "TCPRoute",
    "TLSRouteModeMixed",
    "TLSRouteModeTerminate",
    "UDPRoute",
];

/// [`SUPPORTED_FEATURES`] as the status field wants them: sorted by name
/// ascending (byte order, as Go's `sort.Strings`), no duplicates.
pub fn supported_features() -> Vec<GatewayClassStatusSupportedFeatures> {
    let mut names: Vec<&str> = SUPPORTED_FEATURES.to_vec();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|n| GatewayClassStatusSupportedFeatures { name: n.into() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_features_are_sorted_unique_and_start_with_the_core() {
        let names: Vec<String> = supported_features().into_iter().map(|f| f.name).collect();
        for core in [
            "GRPCRoute",
            "Gateway",
            "HTTPRoute",
            "ReferenceGrant",
            "TLSRoute",
        ] {
            assert!(names.iter().any(|n| n == core), "{core} in {names:?}");
        }
        // Mesh features are not implemented: never claimed.
        for not_ours in ["Mesh", "MeshClusterIPMatching"] {
            assert!(!names.iter().any(|n| n == not_ours), "{not_ours} claimed");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(names.len() <= 64, "the CRD allows 64");
    }
}
