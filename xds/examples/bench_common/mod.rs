//! Shared by the local benchmark examples (`dataplane_configs`, `churn_ads`):
//! one routing model rendered three ways — Kubernetes manifests for our
//! translation, a hand-written-style minimal static Envoy config, and an nginx
//! config with the equivalent `server`/`location` blocks and upstreams.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;
use xds::manifests::Manifests;
use xds::TenantObjects;

/// The namespace every benchmark object lives in.
pub const NAMESPACE: &str = "bench";

/// One Prefix route: `host<host>.example.com` + `path` → Service `svc<svc>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub host: usize,
    pub path: String,
    pub svc: usize,
}

/// Hosts, Prefix routes, and Services each backed by one local endpoint port.
#[derive(Clone, Debug)]
pub struct Model {
    pub hosts: usize,
    pub routes: Vec<Route>,
    /// `services[k]` is the backend port of Service `svc<k>`'s only endpoint.
    pub services: Vec<u16>,
}

pub fn host_name(h: usize) -> String {
    format!("host{h}.example.com")
}

impl Model {
    /// `hosts` × `paths` Prefix routes `/app<p>`; route (h, p) goes to
    /// Service (h + p) mod `services.len()`.
    pub fn grid(hosts: usize, paths: usize, services: Vec<u16>) -> Self {
        let n = services.len();
        let routes = (0..hosts)
            .flat_map(|h| {
                (0..paths).map(move |p| Route {
                    host: h,
                    path: format!("/app{p}"),
                    svc: (h + p) % n,
                })
            })
            .collect();
        Self {
            hosts,
            routes,
            services,
        }
    }

    fn routes_of(&self, h: usize) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter(move |r| r.host == h)
    }

    /// Manifests for `tenant-gateway render` and for `xds::translate`: a
    /// TenantGateway, one Ingress per host, one Service + EndpointSlice per
    /// backend.
    pub fn manifests_yaml(&self, http_port: u16, https_port: u16) -> String {
        let mut y = String::new();
        let _ = write!(
            y,
            "apiVersion: tenantgateway.io/v1alpha1\nkind: TenantGateway\nmetadata: {{name: bench}}\n\
             spec:\n  namespaces: {{names: [{NAMESPACE}]}}\n  listeners: {{httpPort: {http_port}, httpsPort: {https_port}}}\n"
        );
        for h in 0..self.hosts {
            let mut paths = String::new();
            for r in self.routes_of(h) {
                let _ = writeln!(
                    paths,
                    "      - {{path: {}, pathType: Prefix, backend: {{service: {{name: svc{}, port: {{name: http}}}}}}}}",
                    r.path, r.svc
                );
            }
            if paths.is_empty() {
                continue;
            }
            let _ = write!(
                y,
                "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n\
                 metadata: {{name: host{h}, namespace: {NAMESPACE}, creationTimestamp: \"2024-01-01T00:00:00Z\"}}\n\
                 spec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n{paths}",
                host = host_name(h)
            );
        }
        for (k, port) in self.services.iter().enumerate() {
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{k}, namespace: {NAMESPACE}}}\n\
                 spec:\n  ports:\n  - {{name: http, port: 80, targetPort: {port}}}\n\
                 ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                 metadata:\n  name: svc{k}-1\n  namespace: {NAMESPACE}\n  labels: {{kubernetes.io/service-name: svc{k}}}\n\
                 addressType: IPv4\nports:\n- {{name: http, port: {port}}}\n\
                 endpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\n"
            );
        }
        y
    }

    /// The tenant's objects, read from [`Model::manifests_yaml`] exactly as
    /// `render` reads manifests.
    pub fn tenant_objects(&self) -> TenantObjects {
        let mut m = Manifests::default();
        m.add_documents(Path::new("bench.yaml"), &self.manifests_yaml(1, 2))
            .expect("generated manifests parse");
        m.objects
    }

    /// A minimal static Envoy config for the same routes: plain `prefix`
    /// matches, STATIC clusters, the router filter, nothing else.
    pub fn minimal_envoy_yaml(&self, port: u16, admin_port: u16) -> String {
        let mut y = format!(
            "admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}\n\
             static_resources:\n  listeners:\n  - name: http\n\
             \x20   address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n\
             \x20   filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n\
             \x20       typed_config:\n\
             \x20         \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n\
             \x20         stat_prefix: http\n\
             \x20         http_filters:\n\
             \x20         - name: envoy.filters.http.router\n\
             \x20           typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}\n\
             \x20         route_config:\n            virtual_hosts:\n"
        );
        for h in 0..self.hosts {
            let _ = write!(
                y,
                "            - name: h{h}\n              domains: [\"{}\"]\n              routes:\n",
                host_name(h)
            );
            for r in self.routes_of(h) {
                let _ = writeln!(
                    y,
                    "              - {{match: {{prefix: \"{}\"}}, route: {{cluster: svc{}}}}}",
                    r.path, r.svc
                );
            }
        }
        y.push_str("  clusters:\n");
        for (k, p) in self.services.iter().enumerate() {
            let _ = writeln!(
                y,
                "  - name: svc{k}\n    type: STATIC\n    connect_timeout: 1s\n\
                 \x20   load_assignment: {{cluster_name: svc{k}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}}}]}}]}}"
            );
        }
        y
    }

    /// nginx with the equivalent `server`/`location` blocks and upstreams
    /// (upstream keep-alive on, access log off, as a tuned ingress would be).
    /// `dir` holds the pid file, logs and temp paths.
    pub fn nginx_conf(&self, port: u16, dir: &Path) -> String {
        let d = dir.display();
        let mut c = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 keepalive_requests 1000000;\n  keepalive_timeout 65s;\n\
             \x20 proxy_http_version 1.1;\n  proxy_set_header Connection \"\";\n  proxy_set_header Host $host;\n\
             \x20 proxy_buffering off;\n\n"
        );
        for (k, p) in self.services.iter().enumerate() {
            let _ = writeln!(
                c,
                "  upstream svc{k} {{ server 127.0.0.1:{p}; keepalive 64; keepalive_requests 1000000; }}"
            );
        }
        let _ = writeln!(
            c,
            "\n  server {{ listen 127.0.0.1:{port} default_server; location / {{ return 404; }} }}"
        );
        for h in 0..self.hosts {
            let _ = writeln!(
                c,
                "  server {{\n    listen 127.0.0.1:{port};\n    server_name {};",
                host_name(h)
            );
            for r in self.routes_of(h) {
                let _ = writeln!(
                    c,
                    "    location {} {{ proxy_pass http://svc{}; }}",
                    r.path, r.svc
                );
            }
            c.push_str("  }\n");
        }
        c.push_str("}\n");
        c
    }
}
