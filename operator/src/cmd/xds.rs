//! `tenant-gateway xds`: the per-pod sidecar (see [`crate::sidecar`]).

use crate::build::names;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct XdsArgs {
    /// The TenantGateway this sidecar serves.
    #[arg(long)]
    tenant: String,
    /// Namespace of the gateway's Deployment, Service and claims ConfigMap.
    #[arg(long, env = "POD_NAMESPACE")]
    gateway_namespace: String,
    /// ADS Unix socket shared with Envoy (an emptyDir).
    #[arg(long, default_value = names::SOCKET_PATH)]
    socket: PathBuf,
    #[arg(long, default_value_t = crds::ListenerSettings::default().http())]
    http_port: u16,
    #[arg(long, default_value_t = crds::ListenerSettings::default().https())]
    https_port: u16,
    #[arg(long, default_value = names::LISTENER_BIND_ADDRESS)]
    bind_address: String,
    /// IngressClass served by this gateway.
    #[arg(long, default_value = crds::DEFAULT_INGRESS_CLASS)]
    ingress_class: String,
    /// Also serve Ingresses that name no class.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    serve_unclassed: bool,
    /// /healthz, /ready, /drain (Envoy's probes and preStop hook).
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::UNSPECIFIED, names::HEALTH_PORT)))]
    health_addr: SocketAddr,
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::UNSPECIFIED, names::METRICS_PORT)))]
    metrics_addr: SocketAddr,
    /// Envoy's admin interface (loopback only).
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::LOCALHOST, names::ADMIN_PORT)))]
    admin_addr: SocketAddr,
    /// Claims ConfigMap name (default: tgw-<tenant>-claims).
    #[arg(long)]
    claims_configmap: Option<String>,
    /// The tenant Service whose address goes into Ingress status (default: tgw-<tenant>).
    #[arg(long)]
    service: Option<String>,
    #[arg(long, default_value_t = 5)]
    debounce_ms: u64,
    /// Serve this Gateway (in `--gateway-namespace`) from the tenant's Gateway API
    /// routes instead of the tenant's Ingresses.
    #[arg(long)]
    gateway: Option<String>,
    /// A TCP listener: `<port>=<namespace>/<service>:<port>` (repeatable).
    #[arg(long = "tcp-proxy", value_name = "PORT=NS/SVC:PORT")]
    tcp_proxies: Vec<xds::TcpProxy>,
    /// A UDP listener: `<port>=<namespace>/<service>:<port>` (repeatable; the
    /// Service port must be UDP).
    #[arg(long = "udp-proxy", value_name = "PORT=NS/SVC:PORT")]
    udp_proxies: Vec<xds::UdpProxy>,
    /// Envoy's access log on stdout: json, text or off.
    #[arg(long = "access-log", default_value = "json")]
    access_log: crds::AccessLogFormat,
    /// Its fields, in order, comma-separated (default: the TenantGateway's defaults).
    #[arg(long = "access-log-fields", value_delimiter = ',')]
    access_log_fields: Vec<crds::AccessLogField>,
    /// Every TCP listener expects a PROXY protocol header (v1 or v2).
    #[arg(long)]
    proxy_protocol: bool,
    /// Trust this many proxies' X-Forwarded-For entries.
    #[arg(long, conflicts_with = "xff_trusted_cidrs")]
    xff_num_trusted_hops: Option<u32>,
    /// Trust X-Forwarded-For from peers in these ranges (comma-separated CIDRs).
    #[arg(long, value_delimiter = ',')]
    xff_trusted_cidrs: Vec<xds::model::Cidr>,
}

impl XdsArgs {
    fn sidecar_config(self) -> crate::sidecar::SidecarConfig {
        crate::sidecar::SidecarConfig {
            claims_configmap: self
                .claims_configmap
                .unwrap_or_else(|| names::claims_config_map_name(&self.tenant)),
            service: self
                .service
                .unwrap_or_else(|| names::service_name(&self.tenant)),
            options: xds::GatewayOptions {
                bind_address: self.bind_address,
                http_port: self.http_port,
                https_port: self.https_port,
                ingress_class: self.ingress_class,
                serve_unclassed: self.serve_unclassed,
                tenant: self.tenant.clone(),
                tcp_proxies: self.tcp_proxies,
                udp_proxies: self.udp_proxies,
                access_log: xds::AccessLog::from_settings(Some(&crds::AccessLogSettings {
                    format: self.access_log,
                    fields: self.access_log_fields,
                })),
                client_address: xds::ClientAddress {
                    proxy_protocol: self.proxy_protocol,
                    forwarded_for: match self.xff_num_trusted_hops {
                        Some(n) if n > 0 => xds::ForwardedForTrust::TrustedHops(n),
                        _ => xds::ForwardedForTrust::trusted_cidrs(self.xff_trusted_cidrs),
                    },
                },
                ..xds::GatewayOptions::default()
            },
            tenant: self.tenant,
            gateway: self.gateway,
            gateway_namespace: self.gateway_namespace,
            socket: self.socket,
            health_addr: self.health_addr,
            metrics_addr: self.metrics_addr,
            admin_addr: self.admin_addr,
            debounce: std::time::Duration::from_millis(self.debounce_ms),
        }
    }
}

pub fn run(args: XdsArgs) -> ExitCode {
    super::serve(async move {
        let client = kube::Client::try_default().await?;
        crate::sidecar::run(args.sidecar_config(), client, super::shutdown_signal()).await
    })
}

/// The gateway options the sidecar runs with, given the arguments the
/// operator gives it (the first one `xds`).
#[cfg(test)]
pub(crate) fn options_of_args(args: &[String]) -> Result<xds::GatewayOptions, clap::Error> {
    use clap::Parser;
    #[derive(Parser)]
    struct Sidecar {
        #[command(subcommand)]
        command: Sub,
    }
    #[derive(clap::Subcommand)]
    enum Sub {
        Xds(Box<XdsArgs>),
    }
    let argv = std::iter::once("tenant-gateway".to_string()).chain(args.iter().cloned());
    let Sub::Xds(a) = Sidecar::try_parse_from(argv)?.command;
    Ok(a.sidecar_config().options)
}
