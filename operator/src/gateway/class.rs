//! The GatewayClass the operator ships and the status of every GatewayClass
//! naming its controller (pure; the controller applies them).

use super::features::supported_features;
use crate::build::names::{GATEWAY_CLASS_NAME, GATEWAY_CONTROLLER_NAME};
use crate::conditions::{self, ACCEPTED};
use gwapi::gatewayclasses::{GatewayClass, GatewayClassSpec, GatewayClassStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// GatewayClass `tenant-gateway`, as the operator applies it at startup.
pub fn build_gateway_class() -> GatewayClass {
    GatewayClass {
        metadata: ObjectMeta {
            name: Some(GATEWAY_CLASS_NAME.into()),
            labels: Some(
                [
                    (
                        crds::LABEL_MANAGED_BY.to_string(),
                        crds::MANAGER.to_string(),
                    ),
                    (
                        crate::build::names::LABEL_NAME.to_string(),
                        crds::MANAGER.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: GatewayClassSpec {
            controller_name: GATEWAY_CONTROLLER_NAME.into(),
            description: Some(DESCRIPTION.into()),
            parameters_ref: None,
        },
        status: None,
    }
}

/// The class's `spec.description` (the CRD allows at most 64 bytes).
pub const DESCRIPTION: &str = "tenant-gateway: an Envoy fleet per Gateway, inside its tenant";

/// Whether this operator serves `class`.
pub fn is_ours(class: &GatewayClass) -> bool {
    class.spec.controller_name == GATEWAY_CONTROLLER_NAME
}

/// Why `class` cannot be accepted, if it cannot: this implementation takes
/// no parameters, so any `parametersRef` is unsupported.
pub fn rejection(class: &GatewayClass) -> Option<String> {
    class.spec.parameters_ref.as_ref().map(|p| {
        format!(
            "parametersRef {}/{} {:?} is not supported: tenant-gateway takes no GatewayClass \
             parameters (the TenantGateway holds the settings)",
            p.group, p.kind, p.name
        )
    })
}

/// The status of one of our classes: `Accepted` (or `InvalidParameters`)
/// with `observedGeneration`, merged with the old conditions so an unchanged
/// status keeps its `lastTransitionTime`; and `supportedFeatures`.
pub fn class_status(class: &GatewayClass, now: &Time) -> GatewayClassStatus {
    let generation = class.metadata.generation;
    let accepted = match rejection(class) {
        None => conditions::condition(
            ACCEPTED,
            true,
            "Accepted",
            "tenant-gateway provisions a fleet per Gateway of this class",
            generation,
        ),
        Some(why) => conditions::condition(ACCEPTED, false, "InvalidParameters", why, generation),
    };
    let old = class
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    GatewayClassStatus {
        conditions: Some(conditions::merge(old, vec![accepted], now)),
        supported_features: Some(supported_features()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gwapi::gatewayclasses::GatewayClassParametersRef;

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    fn class(generation: i64) -> GatewayClass {
        let mut c = build_gateway_class();
        c.metadata.generation = Some(generation);
        c
    }

    #[test]
    fn shipped_class_names_our_controller() {
        let c = build_gateway_class();
        assert_eq!(c.metadata.name.as_deref(), Some("tenant-gateway"));
        assert_eq!(c.spec.controller_name, "tenantgateway.io/gateway");
        assert!(is_ours(&c));
        let mut other = c.clone();
        other.spec.controller_name = "example.com/other".into();
        assert!(!is_ours(&other));
        // Applied by the operator: apiVersion and kind come with the type.
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(v["kind"], "GatewayClass");
        assert!(v.get("status").is_none());
    }

    /// The API server refused the class once for a description over the
    /// CRD's limit: every string of the spec stays within the shipped CRD's
    /// `maxLength` (read from config/gateway-api, the CRD users install).
    #[test]
    fn shipped_class_fits_the_crds_length_limits() {
        let crd: serde_json::Value = xds::yaml::from_str(include_str!(
            "../../../config/gateway-api/gateway.networking.k8s.io_gatewayclasses.yaml"
        ))
        .expect("the CRD parses");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"];
        let c = serde_json::to_value(build_gateway_class()).unwrap();
        for field in ["controllerName", "description"] {
            let max = spec[field]["maxLength"].as_u64().expect("a maxLength");
            let len = c["spec"][field].as_str().expect("set").len() as u64;
            assert!(
                len <= max,
                "spec.{field}: {len} bytes, the CRD allows {max}"
            );
        }
    }

    #[test]
    fn accepted_with_observed_generation_and_features() {
        let s = class_status(&class(3), &t(100));
        let conds = s.conditions.unwrap();
        assert_eq!(conds.len(), 1);
        let c = &conds[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Accepted", "True", "Accepted")
        );
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time, t(100));
        let features: Vec<String> = s
            .supported_features
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        let expected: Vec<String> = super::super::features::supported_features()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(features, expected);
        assert!(features.iter().any(|f| f == "HTTPRoute"));
    }

    #[test]
    fn parameters_ref_is_invalid_parameters() {
        let mut c = class(2);
        c.spec.parameters_ref = Some(GatewayClassParametersRef {
            group: "example.com".into(),
            kind: "Config".into(),
            name: "cfg".into(),
            namespace: None,
        });
        let cond = &class_status(&c, &t(1)).conditions.unwrap()[0];
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "InvalidParameters")
        );
        assert!(
            cond.message.contains("example.com/Config \"cfg\""),
            "{}",
            cond.message
        );
        assert_eq!(cond.observed_generation, Some(2));
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let mut c = class(1);
        c.status = Some(class_status(&c, &t(100)));
        let again = class_status(&c, &t(200));
        assert_eq!(
            Some(&again),
            c.status.as_ref(),
            "idempotent: no needless write"
        );
        // The API server's default (Unknown/Pending) is replaced, with a new time.
        let mut fresh = class(1);
        fresh.status = Some(GatewayClassStatus {
            conditions: Some(vec![super::super::api_server_default(ACCEPTED)]),
            supported_features: None,
        });
        let s = class_status(&fresh, &t(300));
        assert_eq!(s.conditions.unwrap()[0].last_transition_time, t(300));
    }
}
