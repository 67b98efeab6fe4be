//! An Ingress's rules as validated (host, path, backend) entries: the one
//! walk over `spec.rules` that main and canary Ingresses share.

use crate::diagnostics::{Diagnostics, ObjectRef};
use crate::model::{HostMatch, PathMatch};
use crate::sources::ingress::annotations::{self, IngressSettings};
use k8s_openapi::api::networking::v1::{IngressBackend, IngressSpec};
use std::collections::BTreeSet;

/// One valid path of a rule with a valid host.
pub(super) struct RulePath<'i> {
    pub host: HostMatch,
    pub path: PathMatch,
    pub backend: &'i IngressBackend,
    /// `spec.rules[i].http.paths[j]`.
    pub field: String,
}

/// The valid rules of an Ingress: their hosts (also of rules without paths)
/// and every valid path, in spec order.
pub(super) struct Rules<'i> {
    pub hosts: BTreeSet<HostMatch>,
    pub paths: Vec<RulePath<'i>>,
}

/// Validate every rule: an invalid host disables its rule (reported with
/// `invalid_host_note` appended), an invalid path only itself.
pub(super) fn valid_rules<'i>(
    spec: &'i IngressSpec,
    settings: &IngressSettings,
    obj: &ObjectRef,
    invalid_host_note: &str,
    diags: &mut Diagnostics,
) -> Rules<'i> {
    let mut rules = Rules {
        hosts: BTreeSet::new(),
        paths: Vec::new(),
    };
    for (ri, rule) in spec.rules.iter().flatten().enumerate() {
        let host = match rule.host.as_deref() {
            None | Some("") => HostMatch::Any,
            Some(h) => match parse_host(h) {
                Ok(h) => h,
                Err(e) => {
                    let field = format!("spec.rules[{ri}].host");
                    diags.error(obj, field, format!("{e}{invalid_host_note}"));
                    continue;
                }
            },
        };
        rules.hosts.insert(host.clone());
        for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
            let field = format!("spec.rules[{ri}].http.paths[{pi}]");
            match path_for(p.path.as_deref(), &p.path_type, settings) {
                Ok(path) => rules.paths.push(RulePath {
                    host: host.clone(),
                    path,
                    backend: &p.backend,
                    field,
                }),
                Err(e) => diags.error(obj, field, format!("{e}; path not served")),
            }
        }
    }
    rules
}

/// Validate an Ingress host as the API server does: a lowercase DNS-1123
/// subdomain, optionally with a leading `*.` label.
pub(crate) fn parse_host(host: &str) -> Result<HostMatch, String> {
    let (wild, rest) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    if host.len() > 253 || !crds::names::is_dns1123_subdomain(rest) {
        return Err(format!(
            "host {host:?} is not a valid lowercase DNS name (optionally starting with \"*.\")"
        ));
    }
    if rest.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "host {host:?} must be a DNS name, not an IP address"
        ));
    }
    Ok(if wild {
        HostMatch::Wildcard(host.to_string())
    } else {
        HostMatch::Exact(host.to_string())
    })
}

/// Validate and normalise a path by its pathType.
pub(crate) fn parse_path(path: Option<&str>, path_type: &str) -> Result<PathMatch, String> {
    let path = path.unwrap_or("");
    let check_chars = |p: &str| -> Result<(), String> {
        if !p.starts_with('/') {
            return Err(format!("path {p:?} must be absolute (start with \"/\")"));
        }
        if p.len() > 4096 {
            return Err("path is longer than 4096 characters".into());
        }
        if p.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(format!(
                "path {p:?} must not contain whitespace, control characters, '?' or '#'"
            ));
        }
        Ok(())
    };
    match path_type {
        "Exact" => {
            check_chars(path)?;
            Ok(PathMatch::Exact(path.to_string()))
        }
        // ImplementationSpecific is served exactly like Prefix (documented choice).
        "Prefix" | "ImplementationSpecific" => {
            let path = if path.is_empty() && path_type == "ImplementationSpecific" {
                "/"
            } else {
                path
            };
            check_chars(path)?;
            let trimmed = path.trim_end_matches('/');
            Ok(PathMatch::Prefix(if trimmed.is_empty() {
                "/".to_string()
            } else {
                trimmed.to_string()
            }))
        }
        "" => Err("pathType is required (Exact, Prefix or ImplementationSpecific)".into()),
        other => Err(format!(
            "pathType {other:?} is not one of Exact, Prefix, ImplementationSpecific"
        )),
    }
}

/// Validate one path by its pathType and the Ingress's regex settings.
fn path_for(
    p: Option<&str>,
    path_type: &str,
    settings: &IngressSettings,
) -> Result<PathMatch, String> {
    let parsed = parse_path(p, path_type)?;
    if !settings.use_regex || path_type == "Exact" {
        if let Some(target) = settings.rewrite_target.as_deref() {
            if annotations::max_group(target) > 0 {
                return Err("rewrite-target uses capture groups but the path is Exact".into());
            }
        }
        return Ok(parsed);
    }
    let raw = p.filter(|p| !p.is_empty()).unwrap_or("/");
    let groups =
        annotations::check_regex(raw).map_err(|e| format!("path {raw:?} (use-regex): {e}"))?;
    if let Some(target) = &settings.rewrite_target {
        let used = annotations::max_group(target);
        if used > groups {
            return Err(format!(
                "rewrite-target uses capture group ${used} but path {raw:?} has only {groups}"
            ));
        }
    }
    Ok(PathMatch::Regex(raw.to_string()))
}
