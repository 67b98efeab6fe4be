//! Kubernetes label selector matching (matchLabels + matchExpressions).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Whether `labels` satisfy `selector`. An empty selector matches everything,
/// as in the Kubernetes API. `Err` names the invalid expression.
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let values = e.values.as_deref().unwrap_or(&[]);
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: operator {} needs values",
                    e.operator
                ))
            }
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => !have.is_some_and(|v| values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                "matchExpressions[{i}].operator {other:?} is not In, NotIn, Exists or DoesNotExist"
            ))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn selector_table() {
        let labels: BTreeMap<String, String> = [
            ("tenant".to_string(), "acme".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]
        .into();
        let ml = |k: &str, v: &str| LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            ..Default::default()
        };
        let me = |r: LabelSelectorRequirement| LabelSelector {
            match_expressions: Some(vec![r]),
            ..Default::default()
        };
        let cases = [
            (LabelSelector::default(), Ok(true)),
            (ml("tenant", "acme"), Ok(true)),
            (ml("tenant", "globex"), Ok(false)),
            (me(req("env", "In", &["prod", "dev"])), Ok(true)),
            (me(req("env", "In", &["dev"])), Ok(false)),
            (me(req("env", "NotIn", &["dev"])), Ok(true)),
            (me(req("missing", "NotIn", &["dev"])), Ok(true)),
            (me(req("env", "Exists", &[])), Ok(true)),
            (me(req("missing", "Exists", &[])), Ok(false)),
            (me(req("missing", "DoesNotExist", &[])), Ok(true)),
            (me(req("env", "In", &[])), Err(())),
            (me(req("env", "Equals", &["x"])), Err(())),
        ];
        for (i, (sel, want)) in cases.into_iter().enumerate() {
            assert_eq!(matches(&sel, &labels).map_err(|_| ()), want, "case {i}");
        }
    }
}
