//! Kubernetes name syntax, shared by the operator's spec validation and the
//! translation's host and annotation checks (one definition, not three).

/// RFC 1123 label: 1–63 lowercase letters, digits and '-', starting and ending
/// with a letter or digit (what namespace names and DNS labels must be).
pub fn is_dns1123_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains_follow_rfc_1123() {
        for (s, label, subdomain) in [
            ("a", true, true),
            ("a-1", true, true),
            ("1a", true, true),
            ("-a", false, false),
            ("a-", false, false),
            ("A", false, false),
            ("a_b", false, false),
            ("", false, false),
            ("a.b", false, true),
            ("a..b", false, false),
            ("a.-b", false, false),
            ("shop.example.com", false, true),
        ] {
            assert_eq!(is_dns1123_label(s), label, "label {s:?}");
            assert_eq!(is_dns1123_subdomain(s), subdomain, "subdomain {s:?}");
        }
        assert!(is_dns1123_label(&"a".repeat(63)));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        let long = vec!["a".repeat(63); 4].join("."); // 255 characters
        assert!(!is_dns1123_subdomain(&long));
        assert!(is_dns1123_subdomain(&long[2..])); // 253
    }
}
