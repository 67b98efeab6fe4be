//! Resolving backends for every source: Service → port → ready endpoints,
//! and TLS Secrets (only those of the tenant's namespaces).

use crate::model::{Backend, Certificate, ClusterSettings, ObjectRef, Provenance};
use crate::translate::{GatewayOptions, TenantObjects};
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressServiceBackend;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

type Key = (String, String);

/// Lookup tables over the tenant's Services, EndpointSlices and Secrets.
pub(crate) struct BackendIndex<'a> {
    services: BTreeMap<Key, &'a Service>,
    slices: BTreeMap<Key, Vec<&'a EndpointSlice>>,
    secrets: BTreeMap<Key, &'a Secret>,
    /// While [`Self::recording`]: every object looked up (found or not).
    reads: RefCell<Option<BTreeSet<Dep>>>,
}

/// An object lowering looked up, by namespace and name: what a memo of
/// its result depends on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Dep {
    Service(Key),
    /// The EndpointSlices of a Service.
    Endpoints(Key),
    Secret(Key),
}

/// The objects an index was last made of ([`BackendIndex::changes_since`]).
#[derive(Default)]
pub(crate) struct Seen {
    services: HashMap<Key, Service>,
    slices: HashMap<Key, Vec<EndpointSlice>>,
    secrets: HashMap<Key, Secret>,
}

/// Whether two objects are one version of one object: the API server gives
/// every change of an object a new resourceVersion (objects without one,
/// e.g. from manifest files, are compared by content).
pub(crate) fn same_version(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.resource_version.is_some() && a.resource_version == b.resource_version && a.uid == b.uid
}

/// Compare `now` with `seen`, key by key: the keys added, removed or
/// changed are put in `changed` (as `dep`), and `seen` becomes `now`.
fn diff<V, N>(
    seen: &mut HashMap<Key, V>,
    now: &BTreeMap<Key, N>,
    same: impl Fn(&V, &N) -> bool,
    own: impl Fn(&N) -> V,
    dep: impl Fn(Key) -> Dep,
    changed: &mut BTreeSet<Dep>,
) {
    seen.retain(|k, _| {
        let kept = now.contains_key(k);
        if !kept {
            changed.insert(dep(k.clone()));
        }
        kept
    });
    for (k, v) in now {
        match seen.get_mut(k) {
            Some(old) if same(old, v) => {}
            Some(old) => {
                *old = own(v);
                changed.insert(dep(k.clone()));
            }
            None => {
                seen.insert(k.clone(), own(v));
                changed.insert(dep(k.clone()));
            }
        }
    }
}

/// [`diff`] of one object per key.
fn diff_objects<K: Clone + PartialEq + Metadata<Ty = ObjectMeta>>(
    seen: &mut HashMap<Key, K>,
    now: &BTreeMap<Key, &K>,
    dep: fn(Key) -> Dep,
    changed: &mut BTreeSet<Dep>,
) {
    diff(
        seen,
        now,
        |a, b| same_object(a, b),
        |o| (*o).clone(),
        dep,
        changed,
    );
}

/// The same version of one object, or the same content.
fn same_object<K: PartialEq + Metadata<Ty = ObjectMeta>>(a: &K, b: &K) -> bool {
    same_version(a.metadata(), b.metadata()) || a == b
}

/// A Service port a backend names, resolved ([`BackendIndex::resolve_port`]).
pub(crate) struct ResolvedPort<'a> {
    /// The cluster name, `<namespace>/<service>/<port>`.
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) service: String,
    port: &'a ServicePort,
}

fn key(ns: &str, name: &str) -> Key {
    (ns.to_string(), name.to_string())
}

impl ResolvedPort<'_> {
    /// The name of the Service port (its endpoints are those of the
    /// EndpointSlices' port of the same name).
    pub(crate) fn port_name(&self) -> Option<&str> {
        self.port.name.as_deref()
    }
}

pub(crate) fn cluster_name(namespace: &str, service: &str, port: i32) -> String {
    format!("{namespace}/{service}/{port}")
}

impl<'a> BackendIndex<'a> {
    pub(crate) fn new(objects: &'a TenantObjects, options: &GatewayOptions) -> Self {
        Self::over(
            &objects.services,
            &objects.endpoint_slices,
            &objects.secrets,
            |ns| options.in_scope(ns),
        )
    }

    /// The index of these objects in the namespaces `in_scope` accepts.
    pub(crate) fn over(
        all_services: &'a [Service],
        endpoint_slices: &'a [EndpointSlice],
        all_secrets: &'a [Secret],
        in_scope: impl Fn(&str) -> bool,
    ) -> Self {
        let mut services = BTreeMap::new();
        for s in all_services {
            let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) else {
                continue;
            };
            if in_scope(ns) {
                services.insert(key(ns, name), s);
            }
        }
        let mut slices: BTreeMap<Key, Vec<&EndpointSlice>> = BTreeMap::new();
        for es in endpoint_slices {
            let Some(ns) = &es.metadata.namespace else {
                continue;
            };
            let svc = es
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(svc) = svc {
                if in_scope(ns) {
                    slices.entry(key(ns, svc)).or_default().push(es);
                }
            }
        }
        let mut secrets = BTreeMap::new();
        for s in all_secrets {
            let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) else {
                continue;
            };
            if in_scope(ns) {
                secrets.insert(key(ns, name), s);
            }
        }
        Self {
            services,
            slices,
            secrets,
            reads: RefCell::new(None),
        }
    }

    /// `f`'s result and every object it looked up in the index.
    pub(crate) fn recording<T>(&self, f: impl FnOnce() -> T) -> (T, BTreeSet<Dep>) {
        let outer = self.reads.replace(Some(BTreeSet::new()));
        let out = f();
        let reads = self.reads.replace(outer).unwrap_or_default();
        (out, reads)
    }

    fn read(&self, dep: impl FnOnce() -> Dep) {
        if let Ok(mut reads) = self.reads.try_borrow_mut() {
            if let Some(reads) = reads.as_mut() {
                reads.insert(dep());
            }
        }
    }

    /// The objects that differ from `seen` (added, removed or changed),
    /// `seen` updated to this index's.
    pub(crate) fn changes_since(&self, seen: &mut Seen) -> BTreeSet<Dep> {
        let mut changed = BTreeSet::new();
        diff_objects(
            &mut seen.services,
            &self.services,
            Dep::Service,
            &mut changed,
        );
        diff(
            &mut seen.slices,
            &self.slices,
            |a, b| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_object(x, *y)),
            |v| v.iter().map(|es| (*es).clone()).collect(),
            Dep::Endpoints,
            &mut changed,
        );
        diff_objects(&mut seen.secrets, &self.secrets, Dep::Secret, &mut changed);
        changed
    }

    /// Record that the endpoints of a Service were read (from a copy of
    /// a backend resolved earlier).
    pub(crate) fn read_endpoints(&self, namespace: &str, service: &str) {
        self.read(|| Dep::Endpoints(key(namespace, service)));
    }

    fn get_service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        let k = key(namespace, name);
        let found = self.services.get(&k).copied();
        self.read(|| Dep::Service(k));
        found
    }

    fn get_secret(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        let k = key(namespace, name);
        let found = self.secrets.get(&k).copied();
        self.read(|| Dep::Secret(k));
        found
    }

    /// A Service of the index.
    pub(crate) fn service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        self.get_service(namespace, name)
    }

    /// Resolve a service backend in `namespace`. `Err` is a human-readable
    /// reason naming the Service and port.
    pub(crate) fn resolve_service(
        &self,
        namespace: &str,
        backend: &IngressServiceBackend,
    ) -> Result<Backend, BackendError> {
        self.resolve_port(namespace, backend)
            .map(|port| self.backend(port))
    }

    /// The Service port a backend names and its cluster name, without
    /// reading its endpoints ([`Self::backend`] does): a source that already
    /// holds the cluster skips that work.
    pub(crate) fn resolve_port(
        &self,
        namespace: &str,
        backend: &IngressServiceBackend,
    ) -> Result<ResolvedPort<'a>, BackendError> {
        let svc = self
            .get_service(namespace, &backend.name)
            .ok_or_else(|| BackendError::ServiceNotFound(backend.name.clone()))?;
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Err(BackendError::ExternalName(backend.name.clone()));
        }
        let port = service_port(svc, backend)?;
        Ok(ResolvedPort {
            name: cluster_name(namespace, &backend.name, port.port),
            namespace: namespace.to_string(),
            service: backend.name.clone(),
            port,
        })
    }

    /// The backend of a resolved port, with its ready endpoints.
    pub(crate) fn backend(&self, p: ResolvedPort<'a>) -> Backend {
        let endpoints = self.ready_endpoints(&p.namespace, &p.service, p.port);
        Backend {
            name: p.name,
            namespace: p.namespace,
            service: p.service,
            endpoints,
            settings: ClusterSettings::default(),
            fallbacks: Vec::new(),
        }
    }

    /// The ready (address, target port) pairs of one Service port, from the
    /// EndpointSlices' port of the same name.
    fn ready_endpoints(
        &self,
        namespace: &str,
        service: &str,
        svc_port: &ServicePort,
    ) -> BTreeSet<(String, u16)> {
        let port_name = svc_port.name.as_deref().unwrap_or("");
        let mut endpoints = BTreeSet::new();
        let k = key(namespace, service);
        let slices = self.slices.get(&k).map(Vec::as_slice).unwrap_or(&[]);
        self.read(|| Dep::Endpoints(k));
        for es in slices {
            if es.address_type != "IPv4" && es.address_type != "IPv6" {
                continue;
            }
            let Some(target) = es
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            for ep in &es.endpoints {
                // A nil `ready` means "unknown"; the API asks consumers to treat it as ready.
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for addr in &ep.addresses {
                    if addr.parse::<std::net::IpAddr>().is_ok() {
                        endpoints.insert((addr.clone(), target));
                    }
                }
            }
        }
        endpoints
    }

    /// Resolve the UDP port `port` of a Service in `namespace` (a TenantGateway's
    /// `udpProxies`): the cluster is `<namespace>/<service>/<port>/udp`, apart
    /// from a TCP port of the same number. `Err` says what is wrong, naming the
    /// Service and port.
    pub(crate) fn resolve_udp_service(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<Backend, String> {
        let svc = self
            .service(namespace, service)
            .ok_or_else(|| format!("Service {service:?} not found"))?;
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Err(BackendError::ExternalName(service.to_string()).to_string());
        }
        let ports: &[ServicePort] = spec.and_then(|s| s.ports.as_deref()).unwrap_or(&[]);
        let numbered: Vec<&ServicePort> =
            ports.iter().filter(|p| p.port == i32::from(port)).collect();
        let protocol = |p: &ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let svc_port = match numbered.iter().find(|p| protocol(p) == "UDP") {
            Some(p) => *p,
            None if numbered.is_empty() => {
                return Err(format!("Service {service:?} has no port {port}"))
            }
            None => {
                return Err(format!(
                    "Service {service:?} port {port} has protocol {}, not UDP",
                    protocol(numbered[0])
                ))
            }
        };
        Ok(Backend {
            name: format!("{}/udp", cluster_name(namespace, service, svc_port.port)),
            namespace: namespace.to_string(),
            service: service.to_string(),
            endpoints: self.ready_endpoints(namespace, service, svc_port),
            settings: ClusterSettings::default(),
            fallbacks: Vec::new(),
        })
    }

    /// The cluster IP and port of a service backend (`service-upstream`);
    /// `Err` when the Service is headless or has no cluster IP.
    pub(crate) fn cluster_ip(
        &self,
        namespace: &str,
        backend: &IngressServiceBackend,
    ) -> Result<(String, u16), String> {
        let svc = self
            .get_service(namespace, &backend.name)
            .ok_or_else(|| BackendError::ServiceNotFound(backend.name.clone()).to_string())?;
        let port = service_port(svc, backend).map_err(|e| e.to_string())?;
        let ip = svc
            .spec
            .as_ref()
            .and_then(|s| s.cluster_ip.as_deref())
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
            .ok_or_else(|| {
                format!(
                    "Service {:?} has no cluster IP (headless or not yet assigned)",
                    backend.name
                )
            })?;
        let port = u16::try_from(port.port).map_err(|_| {
            format!(
                "Service {:?} port {} is out of range",
                backend.name, port.port
            )
        })?;
        Ok((ip.to_string(), port))
    }

    /// Every key of a Secret and its value (`data`, then `stringData`), or None
    /// when the tenant has no such Secret.
    pub(crate) fn secret_values(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<BTreeMap<String, Vec<u8>>> {
        let secret = self.get_secret(namespace, name)?;
        let mut out: BTreeMap<String, Vec<u8>> = secret
            .string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        out.extend(
            secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone())),
        );
        Some(out)
    }

    /// The `ca.crt` of a `kubernetes.io/tls` Secret (the only type the
    /// sidecar may read), as validated PEM.
    pub(crate) fn resolve_ca(&self, namespace: &str, name: &str) -> Result<Vec<u8>, String> {
        let secret = self
            .get_secret(namespace, name)
            .ok_or_else(|| format!("Secret {namespace}/{name} not found"))?;
        if secret.type_.as_deref() != Some("kubernetes.io/tls") {
            return Err(format!(
                "Secret {namespace}/{name} is not of type kubernetes.io/tls (the gateway reads only those); put the CA in the ca.crt key of a kubernetes.io/tls Secret"
            ));
        }
        let ca = secret_value(secret, "ca.crt")
            .ok_or_else(|| format!("Secret {namespace}/{name} has no ca.crt"))?;
        check_pem_certs(&ca).map_err(|e| format!("Secret {namespace}/{name} ca.crt {e}"))?;
        Ok(ca)
    }

    /// The `ca.crl` of the Secret `resolve_ca` read, if it has one, as
    /// validated PEM.
    pub(crate) fn resolve_crl(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let Some(secret) = self.get_secret(namespace, name) else {
            return Ok(None);
        };
        let Some(crl) = secret_value(secret, "ca.crl") else {
            return Ok(None);
        };
        let pems: Vec<_> = rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(&crl)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("Secret {namespace}/{name} ca.crl is not valid PEM: {e}"))?;
        if pems.is_empty() {
            return Err(format!(
                "Secret {namespace}/{name} ca.crl holds no PEM certificate revocation list"
            ));
        }
        Ok(Some(crl))
    }

    pub(crate) fn resolve_tls_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Certificate, String> {
        let secret = self
            .get_secret(namespace, name)
            .ok_or_else(|| format!("Secret {namespace}/{name} not found"))?;
        let get = |k: &str| secret_value(secret, k);
        let cert =
            get("tls.crt").ok_or_else(|| format!("Secret {namespace}/{name} has no tls.crt"))?;
        let key =
            get("tls.key").ok_or_else(|| format!("Secret {namespace}/{name} has no tls.key"))?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("Secret {namespace}/{name} tls.crt is not valid PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "Secret {namespace}/{name} tls.crt holds no PEM certificate"
            ));
        }
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
            format!("Secret {namespace}/{name} tls.key holds no valid PEM private key: {e}")
        })?;
        Ok(Certificate {
            name: format!("{namespace}/{name}"),
            provenance: Provenance::new(
                &Arc::new(ObjectRef::new("Secret", namespace, name)),
                "data",
            ),
            cert_chain: cert,
            private_key: key,
        })
    }
}

/// The Service port a backend names, by number or by name.
fn service_port<'s>(
    svc: &'s Service,
    backend: &IngressServiceBackend,
) -> Result<&'s ServicePort, BackendError> {
    let ports: &[ServicePort] = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let port = backend.port.as_ref();
    match (
        port.and_then(|p| p.number),
        port.and_then(|p| p.name.as_deref()),
    ) {
        // A TCP port before a UDP one of the same number (a DNS Service
        // has both): the TCP proxies and HTTP routes go to TCP.
        (Some(n), _) => ports
            .iter()
            .filter(|p| p.port == n)
            .min_by_key(|p| p.protocol.as_deref() == Some("UDP"))
            .ok_or_else(|| BackendError::PortNumberNotFound(backend.name.clone(), n)),
        (None, Some(name)) if !name.is_empty() => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .ok_or_else(|| BackendError::PortNameNotFound(backend.name.clone(), name.to_string())),
        _ => Err(BackendError::NoPort(backend.name.clone())),
    }
}

/// A Secret's value under `key`, from `data` or else `stringData`.
fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.as_bytes().to_vec())
        })
}

/// PEM certificates whose DER is at least a well-formed outer SEQUENCE
/// (Envoy refuses a trust bundle it cannot parse).
pub(crate) fn check_pem_certs(pem: &[u8]) -> Result<(), String> {
    let certs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    for c in &certs {
        if !der_sequence_ok(c) {
            return Err("holds a certificate that is not valid DER".into());
        }
    }
    Ok(())
}

fn der_sequence_ok(der: &[u8]) -> bool {
    let (Some(&0x30), Some(&first)) = (der.first(), der.get(1)) else {
        return false;
    };
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || der.len() < 2 + n {
            return false;
        }
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    header + len == der.len()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BackendError {
    #[error("Service {0:?} not found in the Ingress's namespace")]
    ServiceNotFound(String),
    #[error("Service {0:?} is of type ExternalName, which is not served (it could point the gateway at arbitrary hosts, including its own admin interface)")]
    ExternalName(String),
    #[error("Service {0:?} has no port {1}")]
    PortNumberNotFound(String, i32),
    #[error("Service {0:?} has no port named {1:?}")]
    PortNameNotFound(String, String),
    #[error("backend for Service {0:?} names no port")]
    NoPort(String),
}

impl BackendError {
    /// The field below `...backend.service` that is wrong.
    pub(crate) fn field_suffix(&self) -> &'static str {
        match self {
            BackendError::ServiceNotFound(_) | BackendError::ExternalName(_) => "name",
            BackendError::PortNumberNotFound(..) => "port.number",
            BackendError::PortNameNotFound(..) => "port.name",
            BackendError::NoPort(_) => "port",
        }
    }
}
