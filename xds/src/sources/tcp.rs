//! The TenantGateway's own source of routes: TCP proxying
//! (`spec.tcpProxies`), one listener per port, forwarding connections to a
//! Service port in the tenant's namespaces.

use super::backends::BackendIndex;
use crate::diagnostics::{Diagnostics, ObjectRef};
use crate::model::{Model, Provenance, TcpRoute};
use crate::translate::GatewayOptions;
use k8s_openapi::api::networking::v1::{IngressServiceBackend, ServiceBackendPort};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A TCP listener port forwarded to a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TcpProxy {
    pub port: u16,
    pub namespace: String,
    pub service: String,
    pub service_port: u16,
}

impl From<&crds::TcpProxy> for TcpProxy {
    fn from(p: &crds::TcpProxy) -> Self {
        Self {
            port: p.port,
            namespace: p.service.namespace.clone(),
            service: p.service.name.clone(),
            service_port: p.service.port,
        }
    }
}

/// The sidecar's `--tcp-proxy` form: `<port>=<namespace>/<service>:<port>`.
impl fmt::Display for TcpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}/{}:{}",
            self.port, self.namespace, self.service, self.service_port
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected <port>=<namespace>/<service>:<port>, got {0:?}")]
pub struct TcpProxyParseError(String);

impl FromStr for TcpProxy {
    type Err = TcpProxyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TcpProxyParseError(s.to_string());
        let (port, rest) = s.split_once('=').ok_or_else(err)?;
        let (ns, rest) = rest.split_once('/').ok_or_else(err)?;
        let (svc, svc_port) = rest.rsplit_once(':').ok_or_else(err)?;
        let port: u16 = port.parse().map_err(|_| err())?;
        let service_port: u16 = svc_port.parse().map_err(|_| err())?;
        if port == 0 || service_port == 0 || ns.is_empty() || svc.is_empty() {
            return Err(err());
        }
        Ok(Self {
            port,
            namespace: ns.to_string(),
            service: svc.to_string(),
            service_port,
        })
    }
}

/// Resolve each TCP proxy to a backend; problems are reported on the
/// TenantGateway's `spec.tcpProxies[i]` and that port gets no listener.
pub(crate) fn lower(
    options: &GatewayOptions,
    index: &BackendIndex<'_>,
    model: &mut Model,
    diags: &mut Diagnostics,
) {
    let obj = Arc::new(ObjectRef::new("TenantGateway", "", &options.tenant));
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, p) in options.tcp_proxies.iter().enumerate() {
        // The whole entry: its port, namespace and Service are read together.
        let field = format!("spec.tcpProxies[{i}]");
        if p.port == options.http_port || p.port == options.https_port {
            diags.error(
                &obj,
                field.clone(),
                format!(
                    "port {} is the gateway's HTTP or HTTPS port; no TCP listener",
                    p.port
                ),
            );
            continue;
        }
        if let Err(e) = check_entry(options, p, (i, "tcpProxies", "TCP"), &mut seen) {
            diags.error(&obj, field.clone(), e);
            continue;
        }
        let backend = IngressServiceBackend {
            name: p.service.clone(),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(p.service_port)),
                name: None,
            }),
        };
        match index.resolve_service(&p.namespace, &backend) {
            Ok(backend) => {
                let name = backend.name.clone();
                model.backends.entry(name.clone()).or_insert(backend);
                let provenance = Provenance::new(&obj, field);
                model.tcp.insert(
                    p.port,
                    TcpRoute {
                        backend: name,
                        provenance,
                    },
                );
            }
            Err(e) => {
                diags.error(
                    &obj,
                    field.clone(),
                    format!(
                        "{} in namespace {:?}; no TCP listener on port {}",
                        e, p.namespace, p.port
                    ),
                );
            }
        }
    }
}

/// What a TCP or UDP proxy entry (`i` of `list`, for `proto`) must pass before
/// its Service is resolved: a port not taken in its list (`seen`, port →
/// first entry), a namespace of the tenant. `Err` is the diagnostic message.
pub(super) fn check_entry(
    options: &GatewayOptions,
    p: &TcpProxy,
    (i, list, proto): (usize, &str, &str),
    seen: &mut BTreeMap<u16, usize>,
) -> Result<(), String> {
    if let Some(first) = seen.get(&p.port) {
        return Err(format!(
            "port {} duplicates spec.{list}[{first}]; no {proto} listener",
            p.port
        ));
    }
    seen.insert(p.port, i);
    if !options.in_scope(&p.namespace) {
        return Err(format!(
            "namespace {:?} is not one of the tenant's namespaces; no {proto} listener on port {}",
            p.namespace, p.port
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_and_bad_ones_are_refused() {
        let p: TcpProxy = "5432=shop/db:5432".parse().unwrap();
        assert_eq!(
            p,
            TcpProxy {
                port: 5432,
                namespace: "shop".into(),
                service: "db".into(),
                service_port: 5432
            }
        );
        assert_eq!(p.to_string(), "5432=shop/db:5432");
        for bad in [
            "",
            "5432",
            "5432=db:5432",
            "5432=shop/db",
            "0=shop/db:1",
            "x=shop/db:1",
            "1=shop/db:70000",
            "1=/db:1",
            "1=shop/:1",
        ] {
            assert!(bad.parse::<TcpProxy>().is_err(), "{bad:?}");
        }
    }
}
