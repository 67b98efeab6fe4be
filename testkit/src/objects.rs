//! Builders of the Kubernetes objects a tenant's translation reads: Ingresses,
//! Services with ready EndpointSlices, as typed objects or as manifests.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::path::Path;
use xds::manifests::Manifests;
use xds::TenantObjects;

pub fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A backend naming Service `svc` and its port by number and/or name.
pub fn service_backend(svc: &str, number: Option<i32>, name: Option<&str>) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: svc.into(),
            port: Some(ServiceBackendPort {
                number,
                name: name.map(Into::into),
            }),
        }),
        resource: None,
    }
}

pub fn ingress_path(
    path: Option<&str>,
    path_type: &str,
    backend: IngressBackend,
) -> HTTPIngressPath {
    HTTPIngressPath {
        path: path.map(Into::into),
        path_type: path_type.into(),
        backend,
    }
}

pub fn ingress_rule(host: Option<&str>, paths: Vec<HTTPIngressPath>) -> IngressRule {
    IngressRule {
        host: host.map(Into::into),
        http: Some(HTTPIngressRuleValue { paths }),
    }
}

pub fn ingress(
    ns: &str,
    name: &str,
    rules: Vec<IngressRule>,
    tls: Option<Vec<IngressTLS>>,
) -> Ingress {
    Ingress {
        metadata: meta(ns, name),
        spec: Some(IngressSpec {
            rules: Some(rules),
            tls,
            ..Default::default()
        }),
        status: None,
    }
}

/// A Service with one port, 80, named `http`.
pub fn http_service(ns: &str, name: &str) -> Service {
    Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// EndpointSlice `slice` of Service `service`: one ready endpoint per address,
/// all on `port` (named `http`).
pub fn ready_endpoint_slice(
    ns: &str,
    service: &str,
    slice: &str,
    addresses: Vec<String>,
    port: i32,
) -> EndpointSlice {
    let mut metadata = meta(ns, slice);
    metadata.labels = Some(
        [(
            "kubernetes.io/service-name".to_string(),
            service.to_string(),
        )]
        .into(),
    );
    EndpointSlice {
        metadata,
        address_type: "IPv4".into(),
        endpoints: addresses
            .into_iter()
            .map(|address| Endpoint {
                addresses: vec![address],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(port),
            ..Default::default()
        }]),
    }
}

/// Manifests of a Service `name` (port 80, named `http`) and one EndpointSlice
/// per port, each listing 127.0.0.1 at that port as ready.
pub fn local_service_yaml(ns: &str, name: &str, ports: &[u16]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports:\n  - {{name: http, port: 80}}\n---\n"
    );
    for (i, port) in ports.iter().enumerate() {
        out.push_str(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: {name}}}\n\
             addressType: IPv4\nports:\n- {{name: http, port: {port}}}\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\n---\n",
        ));
    }
    out
}

/// The tenant objects of a multi-document manifest, read as `render` reads files.
pub fn objects_from_yaml(yaml: &str) -> TenantObjects {
    let mut m = Manifests::default();
    m.add_documents(Path::new("test.yaml"), yaml)
        .expect("test manifests parse");
    m.objects
}
