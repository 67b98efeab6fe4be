//! The tenant's Envoy Deployment: Envoy plus the xDS sidecar as a native
//! sidecar, restricted Pod Security, API credentials in the sidecar only.

use super::meta::Fleet;
use super::names::{
    ADMIN_PORT, BOOTSTRAP_DIR, BOOTSTRAP_HASH_ANNOTATION, BOOTSTRAP_KEY, ENVOY_CONTAINER,
    ENVOY_HEALTH_PORT, HEALTH_PORT, METRICS_PORT, SIDECAR_CONTAINER, SOCKET_DIR, SOCKET_PATH,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort,
    DownwardAPIProjection, DownwardAPIVolumeFile, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

/// Default Envoy replicas.
pub const DEFAULT_REPLICAS: i32 = 2;
/// Preemption budget: preStop drain (Envoy `--drain-time-s 20`) plus slack.
pub const TERMINATION_GRACE_SECONDS: i64 = 45;
/// UID/GID of the images (distroless `nonroot`).
pub const NONROOT_ID: i64 = 65532;

const TOKEN_VOLUME: &str = "kube-api-access";
const TOKEN_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const SOCKET_VOLUME: &str = "xds-socket";
const BOOTSTRAP_VOLUME: &str = "envoy-bootstrap";
const TMP_VOLUME: &str = "tmp";
/// Same lifetime the kubelet gives its own projected tokens; it rotates them.
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Hex sha256 of the bootstrap, for the pod-template annotation.
pub fn bootstrap_hash(bootstrap_yaml: &str) -> String {
    hex::encode(Sha256::digest(bootstrap_yaml.as_bytes()))
}

pub fn build_envoy_deployment(t: &Fleet<'_>, bootstrap_yaml: &str) -> Deployment {
    let selector = t.selector().clone();
    let mut pod_labels = t.labels().clone();
    pod_labels.extend(selector.clone());
    let pod_annotations = [(
        BOOTSTRAP_HASH_ANNOTATION.to_string(),
        bootstrap_hash(bootstrap_yaml),
    )]
    .into();

    Deployment {
        metadata: t.meta_in_gateway_ns(t.names().workload.clone()),
        spec: Some(DeploymentSpec {
            // Unset under an autoscaler: it owns the count.
            replicas: super::placement::deployment_replicas(t.gw),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            strategy: Some(rollout(t)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: t.annotations_with(&pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec(t, selector)),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Surge first: a new pod is Ready before an old one drains. On the host
/// network a surge pod would find its node's ports taken: replace in place,
/// one node at a time (the PDB still bounds voluntary evictions).
fn rollout(t: &Fleet<'_>) -> DeploymentStrategy {
    let (surge, unavailable) = if super::placement::uses_host_network(t) {
        (0, 1)
    } else {
        (1, 0)
    };
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(surge)),
            max_unavailable: Some(IntOrString::Int(unavailable)),
        }),
    }
}

fn pod_spec(t: &Fleet<'_>, selector: std::collections::BTreeMap<String, String>) -> PodSpec {
    let mut pod = base_pod_spec(t);
    super::placement::apply_placement(t, &selector, &mut pod);
    pod
}

fn base_pod_spec(t: &Fleet<'_>) -> PodSpec {
    PodSpec {
        service_account_name: Some(t.names().workload.clone()),
        automount_service_account_token: Some(false),
        // Service env vars of a shared namespace are noise and a leak.
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NONROOT_ID),
            run_as_group: Some(NONROOT_ID),
            fs_group: Some(NONROOT_ID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        init_containers: Some(vec![xds_sidecar(t)]),
        containers: vec![envoy(t)],
        volumes: Some(volumes(t)),
        ..Default::default()
    }
}

fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            add: None,
            drop: Some(vec!["ALL".into()]),
        }),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: path.into(),
            }),
            ..Default::default()
        }),
    }
}

fn pod_env() -> Vec<EnvVar> {
    vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ]
}

fn tcp_port(name: String, port: u16) -> ContainerPort {
    container_port(name, i32::from(port), "TCP")
}

fn container_port(name: String, port: i32, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name),
        container_port: port,
        protocol: Some(protocol.into()),
        ..Default::default()
    }
}

fn http_get(path: &str, port: u16) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.into()),
        port: IntOrString::Int(i32::from(port)),
        scheme: Some("HTTP".into()),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failure_threshold: i32) -> Probe {
    probe_on(path, HEALTH_PORT, period, failure_threshold)
}

fn probe_on(path: &str, port: u16, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(http_get(path, port)),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// Runs as an init container with `restartPolicy: Always` (a native sidecar):
/// it is started, and its startup probe passes, before Envoy starts, and it
/// is stopped only after Envoy has exited, so drains always reach it.
fn xds_sidecar(t: &Fleet<'_>) -> Container {
    let spec = &t.gw.spec;
    let (http, https) = (
        spec.listeners.http().to_string(),
        spec.listeners.https().to_string(),
    );
    let serve_unclassed = spec.ingress_class.serves_unclassed().to_string();
    let mut args: Vec<String> = [
        "xds",
        "--tenant",
        t.name(),
        "--gateway-namespace",
        t.namespace(),
        "--socket",
        SOCKET_PATH,
        "--http-port",
        &http,
        "--https-port",
        &https,
        "--ingress-class",
        spec.ingress_class.class_name(),
        "--serve-unclassed",
        &serve_unclassed,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every fleet of the tenant logs as its spec says (absent: the sidecar's default, JSON).
    if let Some(log) = &spec.access_log {
        args.push("--access-log".into());
        args.push(log.format.name().into());
        if !log.fields.is_empty() {
            args.push("--access-log-fields".into());
            args.push(
                log.fields
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    // How every fleet of the tenant finds the client address (absent: the peer).
    if spec
        .listeners
        .proxy_protocol
        .as_ref()
        .is_some_and(|p| p.enabled)
    {
        args.push("--proxy-protocol".into());
    }
    if let Some(xff) = spec
        .listeners
        .client_ip_detection
        .as_ref()
        .and_then(|c| c.x_forwarded_for.as_ref())
    {
        if let Some(n) = xff.num_trusted_hops.filter(|n| *n > 0) {
            args.push("--xff-num-trusted-hops".into());
            args.push(n.to_string());
        }
        if !xff.trusted_cidrs.is_empty() {
            args.push("--xff-trusted-cidrs".into());
            args.push(xff.trusted_cidrs.join(","));
        }
    }
    match t.gateway_fleet() {
        // The TCP and UDP listeners the sidecar serves (the ports are on both containers' Service).
        None => {
            for p in &spec.tcp_proxies {
                args.push("--tcp-proxy".into());
                args.push(xds::TcpProxy::from(p).to_string());
            }
            for p in &spec.udp_proxies {
                args.push("--udp-proxy".into());
                args.push(xds::UdpProxy::from(p).to_string());
            }
        }
        // The tenant's TCP proxies stay on its Ingress fleet: a Gateway
        // fleet serves its Gateway's listeners only.
        Some(g) => {
            for (flag, value) in [
                ("--gateway", g.name.as_str()),
                ("--claims-configmap", t.names().claims_config_map.as_str()),
                ("--service", t.names().workload.as_str()),
            ] {
                args.push(flag.into());
                args.push(value.into());
            }
        }
    }
    Container {
        name: SIDECAR_CONTAINER.into(),
        image: Some(t.ctx.image.clone()),
        image_pull_policy: t.ctx.image_pull_policy.clone(),
        args: Some(args),
        env: Some(pod_env()),
        ports: Some(vec![
            tcp_port("health".into(), HEALTH_PORT),
            tcp_port("metrics".into(), METRICS_PORT),
        ]),
        restart_policy: Some("Always".into()),
        startup_probe: Some(http_probe("/healthz", 1, 60)),
        readiness_probe: Some(http_probe("/healthz", 5, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), Quantity("10m".into())),
                    ("memory".to_string(), Quantity("32Mi".into())),
                ]
                .into(),
            ),
            ..Default::default()
        }),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![
            mount(TOKEN_VOLUME, TOKEN_MOUNT, true),
            mount(SOCKET_VOLUME, SOCKET_DIR, false),
        ]),
        ..Default::default()
    }
}

fn envoy(t: &Fleet<'_>) -> Container {
    let spec = &t.gw.spec;
    let log_level = spec.envoy.log_level.map_or("info", |l| l.as_str());
    let bootstrap_path = format!("{BOOTSTRAP_DIR}/{BOOTSTRAP_KEY}");
    let args = [
        "-c",
        &bootstrap_path,
        "--service-node",
        "$(POD_NAME)",
        "--service-cluster",
        t.name(),
        "--log-level",
        log_level,
        "--drain-time-s",
        "20",
        "--drain-strategy",
        "immediate",
        "--disable-hot-restart",
    ];
    let mut ports: Vec<ContainerPort> = t
        .ports()
        .into_iter()
        .map(|p| container_port(p.name, p.container_port, p.protocol))
        .collect();
    if super::placement::uses_host_network(t) {
        // Declared so that the scheduler reserves them on the node (a
        // hostNetwork pod's container ports are its host ports); admin still
        // listens on 127.0.0.1 only.
        ports.push(tcp_port("envoy-ready".into(), ENVOY_HEALTH_PORT));
        ports.push(tcp_port("envoy-admin".into(), ADMIN_PORT));
    }
    Container {
        name: ENVOY_CONTAINER.into(),
        image: Some(
            spec.envoy
                .image
                .clone()
                .unwrap_or_else(|| t.ctx.envoy_image.clone()),
        ),
        image_pull_policy: t.ctx.image_pull_policy.clone(),
        command: Some(vec!["envoy".into()]),
        args: Some(args.iter().map(|s| s.to_string()).collect()),
        env: Some(pod_env()),
        ports: Some(ports),
        // Served by Envoy itself (a static health listener): it stays ready
        // while the sidecar restarts, goes ready only after the first
        // complete config (initial_fetch_timeout 0), and fails once a drain
        // starts (/healthcheck/fail).
        readiness_probe: Some(probe_on("/ready", ENVOY_HEALTH_PORT, 2, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                http_get: Some(http_get("/drain", HEALTH_PORT)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: envoy_resources(t),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![
            mount(BOOTSTRAP_VOLUME, BOOTSTRAP_DIR, true),
            mount(TMP_VOLUME, "/tmp", false),
            mount(SOCKET_VOLUME, SOCKET_DIR, false),
        ]),
        ..Default::default()
    }
}

/// Envoy's CPU request under an autoscaler when `envoy.resources` sets none.
pub const AUTOSCALED_ENVOY_CPU_REQUEST: &str = "100m";

/// `spec.envoy.resources`; under an autoscaler with a CPU request (the HPA's
/// utilization is relative to the pods' requests).
fn envoy_resources(t: &Fleet<'_>) -> Option<ResourceRequirements> {
    let mut r = t.gw.spec.envoy.resources.clone();
    if t.gw.spec.autoscaling.is_some() {
        let req = r
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(Default::default);
        req.entry("cpu".into())
            .or_insert_with(|| Quantity(AUTOSCALED_ENVOY_CPU_REQUEST.into()));
    }
    r
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

/// Sorted by name.
fn volumes(t: &Fleet<'_>) -> Vec<Volume> {
    vec![
        Volume {
            name: BOOTSTRAP_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: t.names().bootstrap_config_map.clone(),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        // What the kubelet would automount, given to the sidecar alone.
        Volume {
            name: TOKEN_VOLUME.into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o444),
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                            audience: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![KeyToPath {
                                key: "ca.crt".into(),
                                path: "ca.crt".into(),
                                mode: None,
                            }]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    api_version: Some("v1".into()),
                                    field_path: "metadata.namespace".into(),
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        },
        empty_dir(TMP_VOLUME),
        empty_dir(SOCKET_VOLUME),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ctx, tenant};
    use super::super::pss::restricted_violations;
    use super::*;
    use crds::{EnvoyLogLevel, TcpProxy, TcpProxyBackend};

    fn deployment(gw: &crds::TenantGateway) -> Deployment {
        let ctx = ctx();
        let t = Fleet::tenant(gw, &ctx).unwrap();
        let yaml = super::super::envoy_bootstrap_yaml(t.name()).unwrap();
        build_envoy_deployment(&t, &yaml)
    }

    /// The xDS sidecar's arguments in the Deployment built for `gw`.
    fn sidecar_args(gw: &crds::TenantGateway) -> Vec<String> {
        let d = deployment(gw);
        pod(&d).init_containers.as_ref().unwrap()[0]
            .args
            .clone()
            .unwrap()
    }

    fn pod(d: &Deployment) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn container<'a>(p: &'a PodSpec, name: &str) -> &'a Container {
        p.init_containers
            .iter()
            .flatten()
            .chain(&p.containers)
            .find(|c| c.name == name)
            .unwrap()
    }

    fn mounts(c: &Container) -> Vec<(&str, &str, bool)> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.mount_path.as_str(),
                    m.read_only == Some(true),
                )
            })
            .collect()
    }

    #[test]
    fn pod_passes_restricted_pod_security() {
        let mut gw = tenant("acme");
        gw.spec.tcp_proxies = vec![TcpProxy {
            port: 5432,
            service: TcpProxyBackend {
                namespace: "acme-shop".into(),
                name: "db".into(),
                port: 5432,
            },
        }];
        let d = deployment(&gw);
        assert_eq!(restricted_violations(pod(&d)), Vec::<String>::new());
        let psc = pod(&d).security_context.as_ref().unwrap();
        assert_eq!(
            (psc.run_as_user, psc.run_as_group, psc.fs_group),
            (Some(65532), Some(65532), Some(65532))
        );
        for c in pod(&d)
            .init_containers
            .iter()
            .flatten()
            .chain(&pod(&d).containers)
        {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(sc.privileged, Some(false), "{}", c.name);
        }
    }

    #[test]
    fn sidecar_is_native_and_holds_the_only_token() {
        let d = deployment(&tenant("acme"));
        let p = pod(&d);
        assert_eq!(p.automount_service_account_token, Some(false));
        assert_eq!(p.service_account_name.as_deref(), Some("tgw-acme"));
        let inits = p.init_containers.as_ref().unwrap();
        assert_eq!(inits.len(), 1);
        let xds = &inits[0];
        assert_eq!(xds.name, "xds");
        assert_eq!(xds.restart_policy.as_deref(), Some("Always"));
        assert_eq!(xds.image.as_deref(), Some("localhost/tenant-gateway:dev"));
        assert_eq!(xds.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            xds.args.as_ref().unwrap(),
            &[
                "xds",
                "--tenant",
                "acme",
                "--gateway-namespace",
                "tenant-gateway-system",
                "--socket",
                "/var/run/tenant-gateway/ads.sock",
                "--http-port",
                "8080",
                "--https-port",
                "8443",
                "--ingress-class",
                "tenant-gateway",
                "--serve-unclassed",
                "true"
            ]
        );
        assert_eq!(
            mounts(xds),
            [
                (
                    "kube-api-access",
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                    true
                ),
                ("xds-socket", "/var/run/tenant-gateway", false),
            ]
        );
        let probe = |p: &Option<Probe>| {
            let g = p.as_ref().unwrap().http_get.as_ref().unwrap();
            (g.path.clone().unwrap(), g.port.clone())
        };
        assert_eq!(
            probe(&xds.readiness_probe),
            ("/healthz".into(), IntOrString::Int(8081))
        );
        assert_eq!(
            probe(&xds.startup_probe),
            ("/healthz".into(), IntOrString::Int(8081))
        );
        let ports: Vec<_> = xds
            .ports
            .iter()
            .flatten()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [8081, 9102]);
        let env: Vec<_> = xds.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(env, ["POD_NAME", "POD_NAMESPACE"]);

        // Envoy: no API credentials of any kind.
        let envoy = container(p, "envoy");
        assert!(
            !mounts(envoy).iter().any(|(n, path, _)| *n == "kube-api-access"
                || path.starts_with("/var/run/secrets")),
            "{:?}",
            mounts(envoy)
        );
        assert_eq!(
            mounts(envoy),
            [
                ("envoy-bootstrap", "/etc/envoy", true),
                ("tmp", "/tmp", false),
                ("xds-socket", "/var/run/tenant-gateway", false),
            ]
        );
        let projected = p
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "kube-api-access")
            .and_then(|v| v.projected.as_ref())
            .unwrap();
        let sources = projected.sources.as_ref().unwrap();
        assert!(sources[0].service_account_token.is_some());
        assert_eq!(
            sources[1].config_map.as_ref().unwrap().name,
            "kube-root-ca.crt"
        );
        assert!(sources[2].downward_api.is_some());
    }

    #[test]
    fn sidecar_gets_one_tcp_proxy_arg_per_entry() {
        let mut gw = tenant("acme");
        let proxy = |port: u16, ns: &str, name: &str, svc_port: u16| TcpProxy {
            port,
            service: TcpProxyBackend {
                namespace: ns.into(),
                name: name.into(),
                port: svc_port,
            },
        };
        gw.spec.tcp_proxies = vec![
            proxy(5432, "acme-shop", "db", 5432),
            proxy(6379, "acme-api", "cache", 6380),
        ];
        let d = deployment(&gw);
        let xds = &pod(&d).init_containers.as_ref().unwrap()[0];
        let args = xds.args.as_ref().unwrap();
        let tail: Vec<&str> = args.iter().skip(15).map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "--tcp-proxy",
                "5432=acme-shop/db:5432",
                "--tcp-proxy",
                "6379=acme-api/cache:6380"
            ]
        );
        // The sidecar parses them back into GatewayOptions.tcp_proxies.
        let parsed: Vec<xds::TcpProxy> = tail
            .iter()
            .skip(1)
            .step_by(2)
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(parsed, xds::GatewayOptions::from_spec(&gw.spec).tcp_proxies);
    }

    #[test]
    fn the_access_log_spec_reaches_the_sidecar_and_parses_back() {
        use crds::{AccessLogField, AccessLogFormat, AccessLogSettings};
        let args = sidecar_args;
        let mut gw = tenant("acme");
        // Absent: no flag, the sidecar's default (JSON, default fields).
        assert!(!args(&gw).iter().any(|a| a.starts_with("--access-log")));
        gw.spec.access_log = Some(AccessLogSettings {
            format: AccessLogFormat::Text,
            fields: vec![AccessLogField::Status, AccessLogField::Route],
        });
        let a = args(&gw);
        let at = a.iter().position(|x| x == "--access-log").unwrap();
        assert_eq!(
            a[at..at + 4],
            [
                "--access-log",
                "text",
                "--access-log-fields",
                "status,route"
            ]
        );
        let fields: Vec<AccessLogField> =
            a[at + 3].split(',').map(|f| f.parse().unwrap()).collect();
        assert_eq!(fields, [AccessLogField::Status, AccessLogField::Route]);
        assert_eq!(a[at + 1].parse(), Ok(AccessLogFormat::Text));
    }

    #[test]
    fn the_client_address_settings_reach_the_sidecar_and_parse_back() {
        use crds::{ClientIpDetection, ProxyProtocolSettings, XForwardedForSettings};
        let args = sidecar_args;
        let xff = |hops: Option<u32>, cidrs: &[&str]| {
            Some(ClientIpDetection {
                x_forwarded_for: Some(XForwardedForSettings {
                    num_trusted_hops: hops,
                    trusted_cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
                }),
            })
        };
        let mut gw = tenant("acme");
        // Absent: no flags, the sidecar trusts nothing and expects no PROXY header.
        let a = args(&gw);
        assert!(!a
            .iter()
            .any(|x| x.starts_with("--proxy-protocol") || x.starts_with("--xff")));
        assert_eq!(
            crate::cmd::xds::options_of_args(&a).unwrap().client_address,
            xds::ClientAddress::default()
        );
        let cases = [
            (
                true,
                xff(Some(2), &[]),
                vec!["--proxy-protocol", "--xff-num-trusted-hops", "2"],
            ),
            (
                false,
                xff(None, &["10.0.0.0/8", "2001:db8::/32"]),
                vec!["--xff-trusted-cidrs", "10.0.0.0/8,2001:db8::/32"],
            ),
            (true, None, vec!["--proxy-protocol"]),
        ];
        for (proxy, detection, want) in cases {
            gw.spec.listeners.proxy_protocol = Some(ProxyProtocolSettings { enabled: proxy });
            gw.spec.listeners.client_ip_detection = detection;
            let a = args(&gw);
            let ours: Vec<&str> = a
                .iter()
                .enumerate()
                .filter(|(i, x)| {
                    x.starts_with("--proxy-protocol")
                        || x.starts_with("--xff")
                        || i.checked_sub(1).is_some_and(|p| a[p].starts_with("--xff"))
                })
                .map(|(_, x)| x.as_str())
                .collect();
            assert_eq!(ours, want);
            // What the sidecar makes of them is what the spec says.
            assert_eq!(
                crate::cmd::xds::options_of_args(&a).unwrap().client_address,
                xds::ClientAddress::from_settings(&gw.spec.listeners).unwrap(),
                "{want:?}"
            );
        }
        // The sidecar refuses both trust modes at once.
        let both = [
            "xds",
            "--tenant",
            "t",
            "--gateway-namespace",
            "g",
            "--xff-num-trusted-hops",
            "1",
            "--xff-trusted-cidrs",
            "10.0.0.0/8",
        ]
        .map(String::from);
        assert!(crate::cmd::xds::options_of_args(&both).is_err());
    }

    #[test]
    fn sidecar_gets_one_udp_proxy_arg_per_entry_after_the_tcp_ones() {
        let mut gw = tenant("acme");
        let backend = |name: &str, port: u16| TcpProxyBackend {
            namespace: "acme-shop".into(),
            name: name.into(),
            port,
        };
        gw.spec.tcp_proxies = vec![TcpProxy {
            port: 53,
            service: backend("dns", 53),
        }];
        gw.spec.udp_proxies = vec![
            crds::UdpProxy {
                port: 53,
                service: backend("dns", 53),
            },
            crds::UdpProxy {
                port: 514,
                service: backend("syslog", 5514),
            },
        ];
        let d = deployment(&gw);
        let xds = &pod(&d).init_containers.as_ref().unwrap()[0];
        let tail: Vec<&str> = xds.args.as_ref().unwrap()[15..]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            [
                "--tcp-proxy",
                "53=acme-shop/dns:53",
                "--udp-proxy",
                "53=acme-shop/dns:53",
                "--udp-proxy",
                "514=acme-shop/syslog:5514"
            ]
        );
        let parsed: Vec<xds::UdpProxy> = tail[2..]
            .iter()
            .skip(1)
            .step_by(2)
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(parsed, xds::GatewayOptions::from_spec(&gw.spec).udp_proxies);
    }

    #[test]
    fn envoy_container_command_ports_probes() {
        let mut gw = tenant("acme");
        gw.spec.listeners.http_port = Some(18080);
        gw.spec.envoy.log_level = Some(EnvoyLogLevel::Debug);
        gw.spec.envoy.image = Some("example.com/envoy:custom".into());
        gw.spec.tcp_proxies = vec![TcpProxy {
            port: 5432,
            service: TcpProxyBackend::default(),
        }];
        // The same number as a TCP proxy: a UDP port of its own.
        gw.spec.udp_proxies = vec![crds::UdpProxy {
            port: 5432,
            service: TcpProxyBackend::default(),
        }];
        let d = deployment(&gw);
        let envoy = container(pod(&d), "envoy");
        assert_eq!(envoy.image.as_deref(), Some("example.com/envoy:custom"));
        assert_eq!(envoy.command.as_ref().unwrap(), &["envoy"]);
        assert_eq!(
            envoy.args.as_ref().unwrap().join(" "),
            "-c /etc/envoy/envoy.yaml --service-node $(POD_NAME) --service-cluster acme \
             --log-level debug --drain-time-s 20 --drain-strategy immediate --disable-hot-restart"
        );
        let ports: Vec<_> = envoy
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.as_deref().unwrap(),
                    p.container_port,
                    p.protocol.as_deref().unwrap(),
                    p.host_port,
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("http", 18080, "TCP", None),
                ("https", 8443, "TCP", None),
                ("tcp-5432", 5432, "TCP", None),
                ("udp-5432", 5432, "UDP", None)
            ]
        );
        let ready = envoy
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        // Envoy's own health listener, not the sidecar: a sidecar restart
        // must not take the pod out of the Service.
        assert_eq!(
            (ready.path.as_deref(), &ready.port),
            (Some("/ready"), &IntOrString::Int(8002))
        );
        let pre_stop = envoy
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.http_get.as_ref())
            .unwrap();
        assert_eq!(
            (pre_stop.path.as_deref(), &pre_stop.port),
            (Some("/drain"), &IntOrString::Int(8081))
        );
        let env: Vec<_> = envoy
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert!(env.contains(&"POD_NAME"), "$(POD_NAME) needs the env var");
        assert_eq!(pod(&d).termination_grace_period_seconds, Some(45));

        let defaults = deployment(&tenant("acme"));
        let envoy = container(pod(&defaults), "envoy");
        assert_eq!(envoy.image.as_deref(), Some("localhost/envoy:1.40"));
        assert!(envoy
            .args
            .as_ref()
            .unwrap()
            .join(" ")
            .contains("--log-level info"));
    }

    #[test]
    fn replicas_selector_and_labels() {
        let d = deployment(&tenant("acme"));
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        let sel = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(
            sel.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            [
                ("app.kubernetes.io/component", "envoy"),
                ("tenantgateway.io/tenant", "acme")
            ]
        );
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, v) in sel {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "pod template carries selector {k}"
            );
        }
        assert_eq!(pod_labels["app.kubernetes.io/managed-by"], "tenant-gateway");

        let mut gw = tenant("acme");
        gw.spec.replicas = Some(0);
        assert_eq!(deployment(&gw).spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn bootstrap_hash_annotation() {
        let hash = |d: &Deployment| {
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[BOOTSTRAP_HASH_ANNOTATION]
                .clone()
        };
        let d = deployment(&tenant("acme"));
        let yaml = super::super::envoy_bootstrap_yaml("acme").unwrap();
        assert_eq!(hash(&d), bootstrap_hash(&yaml));
        assert_eq!(hash(&d).len(), 64);
        // A different bootstrap (here: another tenant's) gives another hash.
        let other = super::super::envoy_bootstrap_yaml("globex").unwrap();
        assert_ne!(bootstrap_hash(&yaml), bootstrap_hash(&other));
        let ctx = ctx();
        let gw = tenant("acme");
        let t = Fleet::tenant(&gw, &ctx).unwrap();
        assert_ne!(hash(&build_envoy_deployment(&t, &other)), hash(&d));
    }
}
