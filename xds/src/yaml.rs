//! YAML in and out through serde-saphyr (serde_yaml 0.9 is deprecated), set to
//! read manifests as serde_yaml 0.9 did: YAML 1.2 booleans (`yes` stays a
//! string), no size budget on the user's own files, alias expansion still capped.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use serde_saphyr::{Error, SerializeError};

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.budget = None;
    options
}

/// One YAML document as `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Every non-empty document of a multi-document stream, as a JSON value (the
/// Kubernetes object model); nothing follows a syntax error.
pub fn documents(text: &str) -> Vec<Result<serde_json::Value, Error>> {
    serde_saphyr::read_with_options(&mut text.as_bytes(), options()).collect()
}

/// `value` as one YAML document.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    serde_saphyr::to_string(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn scalars_resolve_as_yaml_1_2_like_serde_yaml_did() {
        let v: serde_json::Value =
            super::from_str("a: yes\nb: on\nc: true\nd: 80\ne: '80'\nf: ~\ng: 1.5\n").unwrap();
        assert_eq!(
            v,
            json!({"a": "yes", "b": "on", "c": true, "d": 80, "e": "80", "f": null, "g": 1.5})
        );
    }

    #[test]
    fn documents_skip_empty_ones_and_keep_their_order() {
        let docs: Vec<_> = super::documents("---\na: 1\n---\n---\nb: 2\n")
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn a_syntax_error_is_an_error_not_a_document() {
        let docs = super::documents("a: 1\n---\nb: [unclosed\n");
        assert!(docs.last().is_some_and(Result::is_err), "{docs:?}");
    }
}
