//! How a supported annotation behaves differently from ingress-nginx, by the
//! row key of `annotations/table.rs` (an alias's row is found through the
//! table). A row not listed here is reported `supported`. The wording
//! follows `docs/migration-from-ingress-nginx.md` and `docs/annotations.md`.

pub(crate) const DIFFERS: &[(&str, &str)] = &[
    (
        "tenantgateway.io/ssl-redirect",
        "default false (ingress-nginx: true for hosts with TLS); 308; only hosts with TLS",
    ),
    (
        "tenantgateway.io/tls-min-version",
        "only a minimum of TLS 1.2 or 1.3 per host, no protocol list",
    ),
    (
        "tenantgateway.io/auth-tls-verify-client",
        "ssl-client-verify is not sent upstream; with `on`, plain HTTP is redirected to HTTPS",
    ),
    (
        "tenantgateway.io/auth-tls-pass-certificate-to-upstream",
        "ssl-client-cert, -subject-dn and -issuer-dn are sent; ssl-client-verify is not",
    ),
    (
        "tenantgateway.io/ssl-passthrough",
        "SNI goes to the first path's Service port (other paths are ignored for TLS); a host is passed through or terminated, never both",
    ),
    (
        "tenantgateway.io/use-regex",
        "RE2 syntax only (no PCRE look-around or backreferences); applies to this Ingress only, not to every Ingress of the host",
    ),
    (
        "tenantgateway.io/read-timeout",
        "read and send timeouts become one idle timer (the longer of the two); 504 on expiry",
    ),
    (
        "tenantgateway.io/send-timeout",
        "read and send timeouts become one idle timer (the longer of the two); 504 on expiry",
    ),
    (
        "tenantgateway.io/retry-on",
        "error, timeout, invalid_header, http_xxx and off only; non_idempotent is ignored",
    ),
    (
        "tenantgateway.io/affinity",
        "Envoy ring hash: stickiness holds while the endpoint set is stable; no `balanced` mode, no change-on-failure",
    ),
    (
        "tenantgateway.io/upstream-hash-by",
        "only $remote_addr",
    ),
    (
        "tenantgateway.io/limit-rps",
        "per client address, counted by each Envoy replica on its own",
    ),
    (
        "tenantgateway.io/limit-rpm",
        "per client address, counted by each Envoy replica on its own",
    ),
    (
        "tenantgateway.io/backend-protocol",
        "HTTP, HTTPS, GRPC, GRPCS and H2C; not AUTO_HTTP or FCGI",
    ),
    (
        "tenantgateway.io/proxy-ssl-secret",
        "the CA is the ca.crt of a kubernetes.io/tls Secret; verification is on when a CA is given; SNI is always sent",
    ),
    (
        "tenantgateway.io/proxy-body-size",
        "413 over the limit; bodies without Content-Length are buffered up to the limit",
    ),
    (
        "tenantgateway.io/enable-cors",
        "Envoy's CORS filter: preflights get 200 (nginx: 204); Access-Control-Allow-Origin echoes the Origin (never *); with origin * credentials are not allowed",
    ),
    (
        "tenantgateway.io/permanent-redirect",
        "only $request_uri of nginx's variables, right after the host",
    ),
    (
        "tenantgateway.io/temporal-redirect",
        "only $request_uri of nginx's variables, right after the host; codes 301, 302, 303, 307",
    ),
    (
        "tenantgateway.io/server-alias",
        "no wildcard aliases; never takes over a host another Ingress's rule or wildcard covers",
    ),
    (
        "tenantgateway.io/upstream-vhost",
        "a host name (and port), no nginx variables",
    ),
    (
        "tenantgateway.io/retry-timeout",
        "an Envoy route timeout: bounds the whole request (a try in progress is cut too), 504; 0 = none",
    ),
    (
        "tenantgateway.io/session-cookie-expires",
        "sent as Max-Age (no Expires date); max-age wins when both are set",
    ),
    (
        "tenantgateway.io/session-cookie-change-on-failure",
        "retries avoid the failed endpoint; the cookie is not re-issued",
    ),
    (
        "tenantgateway.io/canary-by-header-pattern",
        "RE2, not PCRE; unanchored as nginx; a canary-by-header-value set too wins",
    ),
    (
        "tenantgateway.io/limit-connections",
        "requests in flight per Ingress and Service for all clients together (circuit breaker), not per client address; 503 at once",
    ),
    (
        "tenantgateway.io/default-backend",
        "serves a path while its Service has no healthy endpoint (Envoy aggregate cluster); a missing Service still answers 503",
    ),
    (
        "tenantgateway.io/custom-http-errors",
        "only with the Ingress's default-backend (no global one: else ignored, warned); the error backend gets a GET without body, Host <namespace>.<ingress>.custom-errors.invalid",
    ),
    (
        "tenantgateway.io/mirror-target",
        "a Service of the tenant only (else refused); the request's own path, no fixed path",
    ),
    (
        "tenantgateway.io/mirror-request-body",
        "the body is always mirrored (off is reported)",
    ),
    (
        "tenantgateway.io/auth-url",
        "the auth service must be a Service of the tenant by cluster DNS name, http:// only, no nginx variables; no response cache; 500 when it is unreachable or answers other than 2xx/401/403",
    ),
    (
        "tenantgateway.io/auth-always-set-cookie",
        "an allowed request's Set-Cookie is added to every response, not only 2xx/3xx",
    ),
];

/// The note of a row key, if its behaviour differs.
pub(crate) fn note(row_key: &str) -> Option<&'static str> {
    DIFFERS.iter().find(|(k, _)| *k == row_key).map(|(_, n)| *n)
}
