//! `tenant-gateway`: the operator, the per-tenant xDS sidecar and offline tools.

use clap::{Parser, Subcommand};
use operator::render::{render, Format, RenderOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc gives memory back to the OS after a tenant shrinks (decay after
/// ~10 s); glibc's per-thread arenas kept it.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use xds::manifests::Manifests;

#[derive(Parser)]
#[command(
    name = "tenant-gateway",
    version,
    about = "Per-tenant Envoy ingress fleets for shared Kubernetes clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the TenantGateway CustomResourceDefinition as YAML.
    Crds,
    /// Print the static Envoy bootstrap for one tenant's manifests (offline preview and lint).
    ///
    /// Reads files or directories of YAML/JSON manifests (multi-document YAML, `List`s)
    /// holding one TenantGateway and its tenant's Ingresses, Services, EndpointSlices,
    /// Secrets and IngressClasses, and prints a complete Envoy bootstrap whose
    /// static_resources equal what the xDS sidecar would serve (RDS, EDS and SDS
    /// inlined). Admin listens on 127.0.0.1 only. `envoy -c <output>` serves the routes.
    ///
    /// Problems (a missing Service, an unknown port, a conflicting path, a bad Secret)
    /// are printed on stderr, naming the object and field. Exit status: 0 when the
    /// bootstrap was printed (even with problems), 1 when there were problems and no
    /// valid route remains, 2 when the manifests cannot be read or hold no usable
    /// TenantGateway.
    #[command(verbatim_doc_comment)]
    Render {
        /// Manifest files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The TenantGateway to render when the manifests hold several.
        #[arg(long)]
        tenant: Option<String>,
        /// Envoy admin port (always bound to 127.0.0.1).
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
        /// Address the HTTP/HTTPS listeners bind to.
        #[arg(long, default_value = "0.0.0.0")]
        bind_address: String,
        #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
    /// Print the ADS bootstrap a tenant's Envoy starts with (as in its ConfigMap).
    Bootstrap {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "/var/run/tenant-gateway/ads.sock")]
        socket: String,
        /// Envoy admin port (always bound to 127.0.0.1).
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
        /// Envoy's readiness listener (`GET /ready`).
        #[arg(long, default_value_t = operator::build::names::ENVOY_HEALTH_PORT)]
        health_port: u16,
    },
    /// Run the operator: reconcile TenantGateways (one active replica via a Lease).
    Operator {
        /// The operator's namespace (default gateway namespace, Lease namespace).
        #[arg(long, env = "POD_NAMESPACE", default_value = "tenant-gateway-system")]
        namespace: String,
        /// The tenant-gateway image, used for the xDS sidecar.
        #[arg(long, env = "TG_IMAGE", default_value = "localhost/tenant-gateway:dev")]
        image: String,
        /// Envoy image for gateways that do not name one.
        #[arg(long, env = "TG_ENVOY_IMAGE", default_value = "localhost/envoy:1.40")]
        envoy_image: String,
        #[arg(long, env = "TG_IMAGE_PULL_POLICY")]
        image_pull_policy: Option<String>,
        /// /healthz and /metrics.
        #[arg(long, default_value = "0.0.0.0:8080")]
        http_addr: std::net::SocketAddr,
    },
    /// Run the per-pod xDS sidecar: watch the tenant's claimed namespaces, translate,
    /// and serve ADS to Envoy over a Unix socket.
    Xds(Box<XdsArgs>),
    /// Audit tenants' effective RBAC, namespace claims and gateway Deployments
    /// (cluster admin). Exit status: 0 clean, 1 findings at or above --fail-on, 2 errors.
    Audit(operator::audit::AuditArgs),
}

#[derive(clap::Args)]
struct XdsArgs {
    /// The TenantGateway this sidecar serves.
    #[arg(long)]
    tenant: String,
    /// Namespace of the gateway's Deployment, Service and claims ConfigMap.
    #[arg(long, env = "POD_NAMESPACE")]
    gateway_namespace: String,
    /// ADS Unix socket shared with Envoy (an emptyDir).
    #[arg(long, default_value = "/var/run/tenant-gateway/ads.sock")]
    socket: PathBuf,
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    #[arg(long, default_value_t = 8443)]
    https_port: u16,
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: String,
    /// IngressClass served by this gateway.
    #[arg(long, default_value = crds::DEFAULT_INGRESS_CLASS)]
    ingress_class: String,
    /// Also serve Ingresses that name no class.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    serve_unclassed: bool,
    /// /healthz, /ready, /drain (Envoy's probes and preStop hook).
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_addr: std::net::SocketAddr,
    #[arg(long, default_value = "0.0.0.0:9102")]
    metrics_addr: std::net::SocketAddr,
    /// Envoy's admin interface (loopback only).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin_addr: std::net::SocketAddr,
    /// Claims ConfigMap name (default: tgw-<tenant>-claims).
    #[arg(long)]
    claims_configmap: Option<String>,
    /// The tenant Service whose address goes into Ingress status (default: tgw-<tenant>).
    #[arg(long)]
    service: Option<String>,
    #[arg(long, default_value_t = 5)]
    debounce_ms: u64,
    /// A TCP listener: `<port>=<namespace>/<service>:<port>` (repeatable).
    #[arg(long = "tcp-proxy", value_name = "PORT=NS/SVC:PORT")]
    tcp_proxies: Vec<xds::TcpProxy>,
}

fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

fn run_async(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // Purge freed pages in the background (after jemalloc's ~10 s decay), so an
    // idle sidecar or operator gives memory back after its tenant shrinks.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = Cli::parse();
    match cli.command {
        Command::Operator {
            namespace,
            image,
            envoy_image,
            image_pull_policy,
            http_addr,
        } => {
            init_logging();
            run_async(async move {
                let client = kube::Client::try_default().await?;
                let metrics = std::sync::Arc::new(operator::metrics::OperatorMetrics::new());
                let m = metrics.clone();
                let listener = tokio::net::TcpListener::bind(http_addr).await?;
                tokio::spawn(operator::sidecar::health::serve_http(
                    listener,
                    move |req| {
                        let m = m.clone();
                        async move {
                            use hyper::StatusCode;
                            match req.uri().path() {
                                "/healthz" => {
                                    operator::sidecar::health::text(StatusCode::OK, "ok\n")
                                }
                                "/metrics" => {
                                    operator::sidecar::health::text(StatusCode::OK, m.encode())
                                }
                                _ => operator::sidecar::health::text(
                                    StatusCode::NOT_FOUND,
                                    "not found\n",
                                ),
                            }
                        }
                    },
                ));
                let identity = std::env::var("POD_NAME")
                    .unwrap_or_else(|_| format!("tenant-gateway-{}", std::process::id()));
                let leases = kube::Api::namespaced(client.clone(), &namespace);
                // Spawned: the renewal future is not Sync, the shutdown trigger must be.
                let lost = tokio::spawn(operator::leader::acquire(leases, identity).await);
                let build = operator::build::BuildContext {
                    operator_namespace: namespace,
                    image,
                    envoy_image,
                    image_pull_policy,
                };
                let shutdown = async {
                    tokio::select! {
                        _ = shutdown_signal() => {},
                        _ = lost => tracing::error!("lost leadership; stopping"),
                    }
                };
                operator::reconcile::run(client, build, metrics, shutdown).await;
                Ok(())
            })
        }
        Command::Xds(a) => {
            init_logging();
            run_async(async move {
                let client = kube::Client::try_default().await?;
                let tenant = a.tenant.clone();
                let cfg = operator::sidecar::SidecarConfig {
                    claims_configmap: a
                        .claims_configmap
                        .unwrap_or_else(|| format!("tgw-{}-claims", a.tenant)),
                    service: a.service.unwrap_or_else(|| format!("tgw-{}", a.tenant)),
                    tenant: a.tenant,
                    gateway_namespace: a.gateway_namespace,
                    socket: a.socket,
                    options: xds::GatewayOptions {
                        bind_address: a.bind_address,
                        http_port: a.http_port,
                        https_port: a.https_port,
                        ingress_class: a.ingress_class,
                        serve_unclassed: a.serve_unclassed,
                        tenant: tenant.clone(),
                        tcp_proxies: a.tcp_proxies,
                        ..xds::GatewayOptions::default()
                    },
                    health_addr: a.health_addr,
                    metrics_addr: a.metrics_addr,
                    admin_addr: a.admin_addr,
                    debounce: std::time::Duration::from_millis(a.debounce_ms),
                };
                operator::sidecar::run(cfg, client, shutdown_signal()).await
            })
        }
        Command::Bootstrap {
            tenant,
            socket,
            admin_port,
            health_port,
        } => {
            let b = xds::bootstrap::ads_bootstrap(
                "tenant-gateway",
                &tenant,
                &socket,
                admin_port,
                Some(health_port),
            );
            match xds::bootstrap::to_yaml(&b) {
                Ok(y) => {
                    print!("{y}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit(a) => operator::audit::main(a),
        Command::Crds => {
            print!("{}", crds::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Render {
            paths,
            tenant,
            admin_port,
            bind_address,
            output,
        } => {
            let manifests = match Manifests::load(&paths) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = RenderOptions {
                tenant,
                admin_port,
                bind_address,
                format: output,
            };
            match render(&manifests, &opts) {
                Ok(r) => {
                    for n in &r.notes {
                        eprintln!("note: {n}");
                    }
                    for d in r.diagnostics() {
                        eprintln!("{d}");
                    }
                    print!("{}", r.output);
                    ExitCode::from(r.exit_code() as u8)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
