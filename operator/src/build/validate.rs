//! Spec validation beyond what the CRD schema enforces. Every error names the
//! field it is about, in the API's camelCase path form.

use super::names::{self, RESERVED_POD_PORTS, SERVICE_HTTPS_PORT, SERVICE_HTTP_PORT};
use crate::claims::ClaimDecision;
use crds::TenantGateway;
use std::collections::BTreeMap;

/// One invalid field of a TenantGateway.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Path of the field, e.g. `spec.listeners.httpPort`.
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything wrong with `gw` that does not depend on other objects.
pub fn validate(gw: &TenantGateway) -> Result<(), Vec<SpecError>> {
    let mut errs = Vec::new();
    let spec = &gw.spec;

    match gw.metadata.name.as_deref() {
        None => errs.push(SpecError::new("metadata.name", "missing")),
        Some(n) => {
            if let Err(m) = dns1123_label(n) {
                errs.push(SpecError::new("metadata.name", m));
            } else if n.len() > names::MAX_TENANT_NAME_LEN {
                errs.push(SpecError::new(
                    "metadata.name",
                    format!(
                        "must be at most {} characters so that the Service name {} fits 63",
                        names::MAX_TENANT_NAME_LEN,
                        names::service_name(n)
                    ),
                ));
            }
        }
    }

    if let Some(ns) = &spec.gateway_namespace {
        if let Err(m) = dns1123_label(ns) {
            errs.push(SpecError::new("spec.gatewayNamespace", m));
        }
    }

    if let Some(r) = spec.replicas {
        if r < 0 {
            errs.push(SpecError::new(
                "spec.replicas",
                format!("must be >= 0, got {r}"),
            ));
        }
    }

    if let Some(img) = &spec.envoy.image {
        if img.trim().is_empty() || img.chars().any(char::is_whitespace) {
            errs.push(SpecError::new(
                "spec.envoy.image",
                format!("{img:?} is not an image reference"),
            ));
        }
    }

    validate_namespaces(gw, &mut errs);
    let listener_ports = validate_listeners(gw, &mut errs);
    validate_tcp_proxies(gw, &listener_ports, &mut errs);
    validate_udp_proxies(gw, &mut errs);
    super::placement::validate_placement(gw, &mut errs);
    for (i, a) in spec.publish_status_addresses.iter().enumerate() {
        if a.parse::<std::net::IpAddr>().is_err() && dns1123_subdomain(a).is_err() {
            errs.push(SpecError::new(
                format!("spec.publishStatusAddresses[{i}]"),
                format!("{a:?} is neither an IP address nor a DNS name"),
            ));
        }
    }

    for key in spec.service.annotations.keys() {
        if let Err(m) = qualified_name(key) {
            errs.push(SpecError::new(
                format!("spec.service.annotations[{key:?}]"),
                format!("invalid key: {m}"),
            ));
        }
    }

    if let Some(class) = &spec.ingress_class.name {
        if let Err(m) = dns1123_subdomain(class) {
            errs.push(SpecError::new("spec.ingressClass.name", m));
        }
    }
    validate_client_address(gw, &mut errs);

    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Checks that need the claim decision: a TCP or UDP proxy may only point into a
/// namespace the tenant holds (its sidecar cannot read any other).
pub fn validate_against_claims(
    gw: &TenantGateway,
    claims: &ClaimDecision,
) -> Result<(), Vec<SpecError>> {
    let tcp = gw.spec.tcp_proxies.iter().map(|p| &p.service);
    let udp = gw.spec.udp_proxies.iter().map(|p| &p.service);
    let errs: Vec<SpecError> = (tcp.enumerate().map(|(i, s)| ("tcpProxies", i, s)))
        .chain(udp.enumerate().map(|(i, s)| ("udpProxies", i, s)))
        .filter(|(_, _, s)| !claims.claimed.contains(&s.namespace))
        .map(|(list, i, s)| {
            let held_by = claims
                .conflicts
                .iter()
                .find(|c| c.namespace == s.namespace)
                .map(|c| format!(" (held by TenantGateway {})", c.holder))
                .unwrap_or_default();
            SpecError::new(
                format!("spec.{list}[{i}].service.namespace"),
                format!(
                    "{:?} is not a namespace this tenant holds{held_by}",
                    s.namespace
                ),
            )
        })
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

fn validate_namespaces(gw: &TenantGateway, errs: &mut Vec<SpecError>) {
    let sel = &gw.spec.namespaces;
    for (i, n) in sel.names.iter().enumerate() {
        if let Err(m) = dns1123_label(n) {
            errs.push(SpecError::new(format!("spec.namespaces.names[{i}]"), m));
        }
    }
    let Some(selector) = &sel.selector else {
        return;
    };
    for (k, v) in selector.match_labels.iter().flatten() {
        let field = format!("spec.namespaces.selector.matchLabels[{k:?}]");
        if let Err(m) = qualified_name(k) {
            errs.push(SpecError::new(&field, format!("invalid key: {m}")));
        }
        if let Err(m) = label_value(v) {
            errs.push(SpecError::new(&field, format!("invalid value: {m}")));
        }
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("spec.namespaces.selector.matchExpressions[{i}]");
        if let Err(m) = qualified_name(&e.key) {
            errs.push(SpecError::new(
                format!("{field}.key"),
                format!("invalid key: {m}"),
            ));
        }
        let values = e.values.as_deref().unwrap_or(&[]);
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(SpecError::new(
                format!("{field}.values"),
                format!("operator {} needs at least one value", e.operator),
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(SpecError::new(
                format!("{field}.values"),
                format!("operator {} takes no values", e.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(SpecError::new(
                format!("{field}.operator"),
                format!("{other:?} is not In, NotIn, Exists or DoesNotExist"),
            )),
        }
        for (j, v) in values.iter().enumerate() {
            if let Err(m) = label_value(v) {
                errs.push(SpecError::new(format!("{field}.values[{j}]"), m));
            }
        }
    }
}

/// Returns the listener ports, by field name, for the TCP proxy checks.
fn validate_listeners(gw: &TenantGateway, errs: &mut Vec<SpecError>) -> [(&'static str, u16); 2] {
    let l = &gw.spec.listeners;
    let ports = [
        ("spec.listeners.httpPort", l.http()),
        ("spec.listeners.httpsPort", l.https()),
    ];
    for (field, port) in ports {
        if port == 0 {
            errs.push(SpecError::new(field, "must be between 1 and 65535"));
        } else if RESERVED_POD_PORTS.contains(&port) {
            errs.push(SpecError::new(field, reserved_message(port)));
        }
    }
    if l.http() == l.https() {
        errs.push(SpecError::new(
            "spec.listeners.httpPort",
            "must differ from spec.listeners.httpsPort",
        ));
    }
    ports
}

/// `spec.service.externalTrafficPolicy` (a node-level setting: LoadBalancer
/// and NodePort Services only) and `spec.listeners.clientIPDetection`.
fn validate_client_address(gw: &TenantGateway, errs: &mut Vec<SpecError>) {
    let spec = &gw.spec;
    if let (Some(policy), Some(crds::ServiceType::ClusterIP)) =
        (spec.service.external_traffic_policy, spec.service.type_)
    {
        errs.push(SpecError::new(
            "spec.service.externalTrafficPolicy",
            format!(
                "{} needs a LoadBalancer or NodePort Service, not ClusterIP",
                policy.as_str()
            ),
        ));
    }
    let Some(xff) = spec
        .listeners
        .client_ip_detection
        .as_ref()
        .and_then(|c| c.x_forwarded_for.as_ref())
    else {
        return;
    };
    let field = "spec.listeners.clientIPDetection.xForwardedFor";
    match (xff.num_trusted_hops, xff.trusted_cidrs.is_empty()) {
        (Some(_), false) => errs.push(SpecError::new(
            field,
            "numTrustedHops and trustedCIDRs are mutually exclusive",
        )),
        (None, true) => errs.push(SpecError::new(
            field,
            "set numTrustedHops or trustedCIDRs (or leave xForwardedFor out: trust none)",
        )),
        (Some(0), true) => errs.push(SpecError::new(
            format!("{field}.numTrustedHops"),
            "must be at least 1",
        )),
        _ => {}
    }
    for (i, c) in xff.trusted_cidrs.iter().enumerate() {
        if let Err(m) = c.trim().parse::<xds::model::Cidr>() {
            errs.push(SpecError::new(format!("{field}.trustedCIDRs[{i}]"), m));
        } else if c.trim() != c {
            errs.push(SpecError::new(
                format!("{field}.trustedCIDRs[{i}]"),
                format!("{c:?} has surrounding whitespace"),
            ));
        }
    }
}

fn validate_tcp_proxies(
    gw: &TenantGateway,
    listener_ports: &[(&'static str, u16)],
    errs: &mut Vec<SpecError>,
) {
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, p) in gw.spec.tcp_proxies.iter().enumerate() {
        let field = format!("spec.tcpProxies[{i}].port");
        let port = p.port;
        if port == 0 {
            errs.push(SpecError::new(&field, "must be between 1 and 65535"));
        } else if RESERVED_POD_PORTS.contains(&port) {
            errs.push(SpecError::new(&field, reserved_message(port)));
        } else if let Some((other, _)) = listener_ports.iter().find(|(_, lp)| *lp == port) {
            errs.push(SpecError::new(
                &field,
                format!("{port} collides with {other}"),
            ));
        } else if i32::from(port) == SERVICE_HTTP_PORT || i32::from(port) == SERVICE_HTTPS_PORT {
            errs.push(SpecError::new(
                &field,
                format!("{port} collides with the gateway Service's HTTP/HTTPS ports 80 and 443"),
            ));
        } else if let Some(first) = seen.get(&port) {
            errs.push(SpecError::new(
                &field,
                format!("{port} duplicates spec.tcpProxies[{first}].port"),
            ));
        }
        seen.entry(port).or_insert(i);

        validate_proxy_backend(&format!("spec.tcpProxies[{i}].service"), &p.service, errs);
    }
}

/// The Service of a TCP or UDP proxy, `svc` its field.
fn validate_proxy_backend(svc: &str, s: &crds::TcpProxyBackend, errs: &mut Vec<SpecError>) {
    if let Err(m) = dns1123_label(&s.namespace) {
        errs.push(SpecError::new(format!("{svc}.namespace"), m));
    }
    if let Err(m) = dns1035_label(&s.name) {
        errs.push(SpecError::new(format!("{svc}.name"), m));
    }
    if s.port == 0 {
        errs.push(SpecError::new(
            format!("{svc}.port"),
            "must be between 1 and 65535",
        ));
    }
}

/// UDP ports are apart from the TCP ones (listeners, TCP proxies, the
/// sidecar's and Envoy's own ports, the Service's 80 and 443): only another
/// UDP proxy can collide with one.
fn validate_udp_proxies(gw: &TenantGateway, errs: &mut Vec<SpecError>) {
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, p) in gw.spec.udp_proxies.iter().enumerate() {
        let field = format!("spec.udpProxies[{i}].port");
        if p.port == 0 {
            errs.push(SpecError::new(&field, "must be between 1 and 65535"));
        } else if let Some(first) = seen.get(&p.port) {
            errs.push(SpecError::new(
                &field,
                format!("{} duplicates spec.udpProxies[{first}].port", p.port),
            ));
        }
        seen.entry(p.port).or_insert(i);
        validate_proxy_backend(&format!("spec.udpProxies[{i}].service"), &p.service, errs);
    }
}

fn reserved_message(port: u16) -> String {
    let what = match port {
        names::ADMIN_PORT => "the Envoy admin port",
        names::HEALTH_PORT => "the sidecar health port",
        _ => "the sidecar metrics port",
    };
    format!("{port} is reserved for {what}")
}

/// RFC 1123 label: what namespace names must be.
pub(crate) fn dns1123_label(s: &str) -> Result<(), String> {
    if crds::names::is_dns1123_label(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

/// RFC 1035 label: what Service names must be.
fn dns1035_label(s: &str) -> Result<(), String> {
    if dns1123_label(s).is_ok() && s.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter)"
        ))
    }
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if crds::names::is_dns1123_subdomain(s) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a DNS-1123 subdomain"))
    }
}

/// `[prefix/]name` as used by label and annotation keys.
pub(crate) fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() || dns1123_subdomain(p).is_err() {
            return Err(format!("prefix of {s:?} is not a DNS-1123 subdomain"));
        }
    }
    if name.is_empty() || name.len() > 63 || !name_chars_ok(name) {
        return Err(format!(
            "name part of {s:?} must be 1-63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn name_chars_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub(crate) fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || (s.len() <= 63 && name_chars_ok(s)) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::{NamespaceConflict, TcpProxy, TcpProxyBackend, TenantGatewaySpec, UdpProxy};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn base() -> TenantGateway {
        TenantGateway::new(
            "acme",
            TenantGatewaySpec {
                namespaces: crds::NamespaceSelection {
                    names: vec!["acme-shop".into()],
                    selector: None,
                },
                ..Default::default()
            },
        )
    }

    fn proxy(port: u16, ns: &str, name: &str) -> TcpProxy {
        TcpProxy {
            port,
            service: TcpProxyBackend {
                namespace: ns.into(),
                name: name.into(),
                port: 5432,
            },
        }
    }

    fn udp(port: u16, ns: &str, name: &str) -> UdpProxy {
        let TcpProxy { service, .. } = proxy(port, ns, name);
        UdpProxy { port, service }
    }

    fn expr(op: &str, values: Option<&[&str]>) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tenant".into(),
                operator: op.into(),
                values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        }
    }

    fn fields(gw: &TenantGateway) -> Vec<String> {
        match validate(gw) {
            Ok(()) => vec![],
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_spec_passes() {
        assert_eq!(validate(&base()), Ok(()));
        let mut g = base();
        g.spec.tcp_proxies = vec![
            proxy(5432, "acme-shop", "db"),
            proxy(6379, "acme-shop", "redis"),
        ];
        g.spec.service.annotations = [(
            "service.beta.kubernetes.io/aws-load-balancer-type".to_string(),
            "nlb".to_string(),
        )]
        .into();
        g.spec.gateway_namespace = Some("acme-gw".into());
        g.spec.replicas = Some(0);
        assert_eq!(validate(&g), Ok(()));
        // A UDP port may share its number with a TCP proxy, a listener or a
        // reserved (TCP) port.
        g.spec.udp_proxies = [5432, 8080, 443, 9901]
            .map(|p| udp(p, "acme-shop", "dns"))
            .into();
        assert_eq!(validate(&g), Ok(()));
    }

    /// Table: one mutation of a valid spec → the error it must produce
    /// (prefix of `field: message`).
    #[test]
    fn invalid_specs_table() {
        type Mutate = fn(&mut TenantGateway);
        let cases: Vec<(Mutate, &str)> = vec![
            (
                |g| g.spec.listeners.https_port = Some(8080),
                "spec.listeners.httpPort: must differ from spec.listeners.httpsPort",
            ),
            (
                |g| g.spec.listeners.http_port = Some(9901),
                "spec.listeners.httpPort: 9901 is reserved for the Envoy admin port",
            ),
            (
                |g| g.spec.listeners.https_port = Some(8081),
                "spec.listeners.httpsPort: 8081 is reserved for the sidecar health port",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(8080, "acme-shop", "db")],
                "spec.tcpProxies[0].port: 8080 collides with spec.listeners.httpPort",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(8443, "acme-shop", "db")],
                "spec.tcpProxies[0].port: 8443 collides with spec.listeners.httpsPort",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(9901, "acme-shop", "db")],
                "spec.tcpProxies[0].port: 9901 is reserved for the Envoy admin port",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(8081, "acme-shop", "db")],
                "spec.tcpProxies[0].port: 8081 is reserved",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(9102, "acme-shop", "db")],
                "spec.tcpProxies[0].port: 9102 is reserved for the sidecar metrics port",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(443, "acme-shop", "db")],
                "spec.tcpProxies[0].port: 443 collides with the gateway Service",
            ),
            (
                |g| {
                    g.spec.tcp_proxies =
                        vec![proxy(5432, "acme-shop", "db"), proxy(5432, "acme-shop", "db2")]
                },
                "spec.tcpProxies[1].port: 5432 duplicates spec.tcpProxies[0].port",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(0, "acme-shop", "db")],
                "spec.tcpProxies[0].port: must be between",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(5432, "Acme", "db")],
                "spec.tcpProxies[0].service.namespace: \"Acme\" is not a DNS-1123 label",
            ),
            (
                |g| g.spec.tcp_proxies = vec![proxy(5432, "acme-shop", "1db")],
                "spec.tcpProxies[0].service.name: \"1db\" is not a DNS-1035 label",
            ),
            (
                |g| {
                    g.spec.udp_proxies = vec![udp(53, "acme-shop", "dns"), udp(53, "acme-shop", "dns2")]
                },
                "spec.udpProxies[1].port: 53 duplicates spec.udpProxies[0].port",
            ),
            (
                |g| g.spec.udp_proxies = vec![udp(0, "acme-shop", "dns")],
                "spec.udpProxies[0].port: must be between",
            ),
            (
                |g| g.spec.udp_proxies = vec![udp(53, "acme-shop", "Dns")],
                "spec.udpProxies[0].service.name: \"Dns\" is not a DNS-1035 label",
            ),
            (
                |g| g.spec.gateway_namespace = Some("Bad_NS".into()),
                "spec.gatewayNamespace: \"Bad_NS\" is not a DNS-1123 label",
            ),
            (
                |g| g.spec.gateway_namespace = Some("a".repeat(64)),
                "spec.gatewayNamespace:",
            ),
            (|g| g.spec.replicas = Some(-1), "spec.replicas: must be >= 0, got -1"),
            (
                |g| {
                    g.spec.service.annotations = [("bad key!".to_string(), "v".to_string())].into()
                },
                "spec.service.annotations[\"bad key!\"]: invalid key",
            ),
            (
                |g| {
                    g.spec.service.annotations =
                        [("Example.COM/x".to_string(), "v".to_string())].into()
                },
                "spec.service.annotations[\"Example.COM/x\"]: invalid key: prefix",
            ),
            (
                |g| g.spec.ingress_class.name = Some("Not_A_Class".into()),
                "spec.ingressClass.name:",
            ),
            (
                |g| g.spec.envoy.image = Some("".into()),
                "spec.envoy.image:",
            ),
            (
                |g| g.spec.namespaces.names = vec!["ok".into(), "NOT.ok".into()],
                "spec.namespaces.names[1]:",
            ),
            (
                |g| g.spec.namespaces.selector = Some(expr("Equals", Some(&["x"]))),
                "spec.namespaces.selector.matchExpressions[0].operator: \"Equals\"",
            ),
            (
                |g| g.spec.namespaces.selector = Some(expr("In", None)),
                "spec.namespaces.selector.matchExpressions[0].values: operator In needs",
            ),
            (
                |g| g.spec.namespaces.selector = Some(expr("Exists", Some(&["x"]))),
                "spec.namespaces.selector.matchExpressions[0].values: operator Exists takes no values",
            ),
            (
                |g| g.metadata.name = Some("a".repeat(60)),
                "metadata.name: must be at most 59 characters",
            ),
            (
                |g| g.metadata.name = Some("acme.corp".into()),
                "metadata.name: \"acme.corp\" is not a DNS-1123 label",
            ),
        ];
        for (i, (mutate, want)) in cases.into_iter().enumerate() {
            let mut g = base();
            mutate(&mut g);
            let got = fields(&g);
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "case {i}: want {want:?}, got {got:?}"
            );
            assert_eq!(
                got.len(),
                1,
                "case {i}: exactly one error expected: {got:?}"
            );
        }
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let mut g = base();
        g.spec.replicas = Some(-3);
        g.spec.listeners.http_port = Some(8443);
        g.spec.gateway_namespace = Some("UPPER".into());
        assert_eq!(validate(&g).unwrap_err().len(), 3);
    }

    #[test]
    fn tcp_and_udp_proxies_must_target_a_held_namespace() {
        let mut g = base();
        g.spec.tcp_proxies = vec![
            proxy(5432, "acme-shop", "db"),
            proxy(5433, "contested", "db"),
            proxy(5434, "nowhere", "db"),
        ];
        let claims = ClaimDecision {
            claimed: ["acme-shop".to_string()].into(),
            conflicts: vec![NamespaceConflict {
                namespace: "contested".into(),
                holder: "globex".into(),
            }],
        };
        let errs: Vec<String> = validate_against_claims(&g, &claims)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.tcpProxies[1].service.namespace: \"contested\" is not a namespace this tenant holds (held by TenantGateway globex)",
                "spec.tcpProxies[2].service.namespace: \"nowhere\" is not a namespace this tenant holds",
            ]
        );
        g.spec.tcp_proxies.truncate(1);
        assert_eq!(validate_against_claims(&g, &claims), Ok(()));
        g.spec.udp_proxies = vec![udp(53, "acme-shop", "dns"), udp(54, "contested", "dns")];
        assert_eq!(
            validate_against_claims(&g, &claims).unwrap_err()[0].to_string(),
            "spec.udpProxies[1].service.namespace: \"contested\" is not a namespace this tenant holds (held by TenantGateway globex)"
        );
    }

    #[test]
    fn name_syntax_table() {
        let cases = [
            ("a", true, true),
            ("a-b", true, true),
            ("0a", true, false),
            ("-a", false, false),
            ("a-", false, false),
            ("A", false, false),
            ("a.b", false, false),
            ("", false, false),
        ];
        for (s, label1123, label1035) in cases {
            assert_eq!(dns1123_label(s).is_ok(), label1123, "1123 {s:?}");
            assert_eq!(dns1035_label(s).is_ok(), label1035, "1035 {s:?}");
        }
        assert!(dns1123_label(&"a".repeat(63)).is_ok());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        let qualified = [
            ("app", true),
            ("example.com/app", true),
            ("app.kubernetes.io/name", true),
            ("a/b/c", false),
            ("/app", false),
            ("example.com/", false),
            ("Example.com/app", false),
            ("App_Name.x", true),
            ("_app", false),
        ];
        for (s, ok) in qualified {
            assert_eq!(qualified_name(s).is_ok(), ok, "qualified {s:?}");
        }
    }

    fn xff(hops: Option<u32>, cidrs: &[&str]) -> Option<crds::ClientIpDetection> {
        Some(crds::ClientIpDetection {
            x_forwarded_for: Some(crds::XForwardedForSettings {
                num_trusted_hops: hops,
                trusted_cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
            }),
        })
    }

    #[test]
    fn client_address_settings_are_validated_naming_the_field() {
        use crds::{ExternalTrafficPolicy, ServiceType};
        let with = |f: &dyn Fn(&mut TenantGateway)| {
            let mut g = base();
            f(&mut g);
            fields(&g)
        };
        // Valid: Local on the default (LoadBalancer) and NodePort types, Cluster
        // anywhere but ClusterIP, hops or CIDRs alone, PROXY protocol.
        for t in [
            None,
            Some(ServiceType::LoadBalancer),
            Some(ServiceType::NodePort),
        ] {
            for p in [ExternalTrafficPolicy::Local, ExternalTrafficPolicy::Cluster] {
                assert_eq!(
                    with(&|g| {
                        g.spec.service.type_ = t;
                        g.spec.service.external_traffic_policy = Some(p);
                    }),
                    Vec::<String>::new(),
                    "{t:?} {p:?}"
                );
            }
        }
        assert!(with(&|g| g.spec.service.type_ = Some(ServiceType::ClusterIP)).is_empty());
        assert!(with(&|g| {
            g.spec.listeners.proxy_protocol = Some(crds::ProxyProtocolSettings { enabled: true });
            g.spec.listeners.client_ip_detection = xff(Some(2), &[]);
        })
        .is_empty());
        assert!(with(&|g| g.spec.listeners.client_ip_detection =
            xff(None, &["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]))
        .is_empty());
        // No xForwardedFor at all: trust none, valid.
        assert!(with(
            &|g| g.spec.listeners.client_ip_detection = Some(crds::ClientIpDetection::default())
        )
        .is_empty());

        assert_eq!(
            with(&|g| {
                g.spec.service.type_ = Some(ServiceType::ClusterIP);
                g.spec.service.external_traffic_policy = Some(ExternalTrafficPolicy::Local);
            }),
            ["spec.service.externalTrafficPolicy: Local needs a LoadBalancer or NodePort Service, not ClusterIP"]
        );
        let x = "spec.listeners.clientIPDetection.xForwardedFor";
        assert_eq!(
            with(&|g| g.spec.listeners.client_ip_detection = xff(Some(1), &["10.0.0.0/8"])),
            [format!(
                "{x}: numTrustedHops and trustedCIDRs are mutually exclusive"
            )]
        );
        assert_eq!(
            with(&|g| g.spec.listeners.client_ip_detection = xff(None, &[])),
            [format!(
                "{x}: set numTrustedHops or trustedCIDRs (or leave xForwardedFor out: trust none)"
            )]
        );
        assert_eq!(
            with(&|g| g.spec.listeners.client_ip_detection = xff(Some(0), &[])),
            [format!("{x}.numTrustedHops: must be at least 1")]
        );
        assert_eq!(
            with(&|g| g.spec.listeners.client_ip_detection = xff(
                None,
                &[
                    "10.0.0.0/8",
                    "10.0.0.0/33",
                    "lb.example.com",
                    " 10.1.0.0/16"
                ]
            )),
            [
                format!("{x}.trustedCIDRs[1]: \"10.0.0.0/33\" has an invalid prefix length"),
                format!(
                    "{x}.trustedCIDRs[2]: \"lb.example.com\" is not an IP address or CIDR range"
                ),
                format!("{x}.trustedCIDRs[3]: \" 10.1.0.0/16\" has surrounding whitespace"),
            ]
        );
    }
}
