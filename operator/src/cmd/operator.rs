//! `tenant-gateway operator`: reconcile TenantGateways, one active replica
//! via a Lease, with `/healthz` and `/metrics` on `--http-addr`.

use crate::build::{names, BuildContext};
use crate::metrics::OperatorMetrics;
use crate::sidecar::health::{serve_http, text};
use clap::FromArgMatches;
use hyper::StatusCode;
use k8s_openapi::api::core::v1::Container;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The operator's namespace (default gateway namespace, Lease namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = names::OPERATOR_NAMESPACE)]
    namespace: String,
    /// The tenant-gateway image, used for the xDS sidecar.
    #[arg(long, env = "TG_IMAGE", default_value = names::SIDECAR_IMAGE)]
    image: String,
    /// Envoy image for gateways that do not name one.
    #[arg(long, env = "TG_ENVOY_IMAGE", default_value = names::ENVOY_IMAGE)]
    envoy_image: String,
    #[arg(long, env = "TG_IMAGE_PULL_POLICY")]
    image_pull_policy: Option<String>,
    /// Let TenantGateways run Envoy on the host network (`spec.hostNetwork`);
    /// their gateway namespace must admit privileged pods.
    #[arg(long, env = "TG_ALLOW_HOST_NETWORK", action = clap::ArgAction::Set,
          num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    allow_host_network: bool,
    /// /healthz and /metrics.
    #[arg(long, default_value_t = SocketAddr::from((Ipv4Addr::UNSPECIFIED, names::OPERATOR_HTTP_PORT)))]
    http_addr: SocketAddr,
}

impl Args {
    /// The builders' settings this operator runs with.
    pub fn build_context(&self) -> BuildContext {
        BuildContext {
            operator_namespace: self.namespace.clone(),
            image: self.image.clone(),
            envoy_image: self.envoy_image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            allow_host_network: self.allow_host_network,
        }
    }

    /// The settings a container running `tenant-gateway operator` starts
    /// with, read by this same parser: its arguments over its literal env
    /// values over the defaults. The caller's own environment is ignored, and
    /// so are flags this parser does not know (the operator would refuse them).
    pub fn of_container(c: &Container) -> Self {
        let cmd = <Self as clap::Args>::augment_args(clap::Command::new("operator"));
        let mut argv = vec!["operator".to_string()];
        argv.extend(env_as_flags(&cmd, c));
        argv.extend(known_flags(&cmd, &subcommand_args(c, "operator")));
        let cmd = cmd
            .mut_args(|a| a.env(clap::builder::Resettable::Reset))
            .args_override_self(true)
            .ignore_errors(true);
        cmd.try_get_matches_from(argv)
            .ok()
            .and_then(|m| Self::from_arg_matches(&m).ok())
            .unwrap_or_else(Self::without_flags)
    }

    fn without_flags() -> Self {
        let defaults = BuildContext::with_defaults(names::OPERATOR_NAMESPACE);
        Self {
            namespace: defaults.operator_namespace,
            image: defaults.image,
            envoy_image: defaults.envoy_image,
            image_pull_policy: defaults.image_pull_policy,
            allow_host_network: defaults.allow_host_network,
            http_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, names::OPERATOR_HTTP_PORT)),
        }
    }
}

/// `--flag=value` for each of `cmd`'s env-backed flags the container sets
/// a literal value for (`valueFrom` is only known in the pod).
fn env_as_flags(cmd: &clap::Command, c: &Container) -> Vec<String> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let set = c.env.iter().flatten().find(|e| var == OsStr::new(&e.name));
        if let Some(value) = set.and_then(|e| e.value.as_deref()) {
            out.push(format!("--{long}={value}"));
        }
    }
    out
}

/// `words` without the flags `cmd` does not define (each of its flags takes
/// a value: `--flag value` or `--flag=value`).
fn known_flags(cmd: &clap::Command, words: &[String]) -> Vec<String> {
    let known = |w: &str| {
        let name = w
            .strip_prefix("--")
            .map(|f| f.split('=').next().unwrap_or(f));
        name.is_some_and(|n| cmd.get_arguments().any(|a| a.get_long() == Some(n)))
    };
    let mut out = Vec::new();
    let mut words = words.iter();
    while let Some(w) = words.next() {
        if !known(w) {
            continue;
        }
        out.push(w.clone());
        if !w.contains('=') {
            out.extend(words.next().cloned());
        }
    }
    out
}

/// The words after `subcommand` in the container's command and args (all
/// of its args when it does not name the subcommand).
fn subcommand_args(c: &Container, subcommand: &str) -> Vec<String> {
    let words: Vec<&String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .collect();
    match words.iter().position(|w| *w == subcommand) {
        Some(i) => words[i + 1..].iter().map(|w| w.to_string()).collect(),
        None => c.args.clone().unwrap_or_default(),
    }
}

pub fn run(args: Args) -> ExitCode {
    super::serve(async move {
        let client = kube::Client::try_default().await?;
        let metrics = Arc::new(OperatorMetrics::new());
        let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
        tokio::spawn(serve_health_and_metrics(listener, metrics.clone()));
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("tenant-gateway-{}", std::process::id()));
        let leases = kube::Api::namespaced(client.clone(), &args.namespace);
        // Spawned: the renewal future is not Sync, the shutdown trigger must be.
        let lost = tokio::spawn(crate::leader::acquire(leases, identity).await);
        let shutdown = async {
            tokio::select! {
                _ = super::shutdown_signal() => {},
                _ = lost => tracing::error!("lost leadership; stopping"),
            }
        };
        crate::reconcile::run(client, args.build_context(), metrics, shutdown).await;
        Ok(())
    })
}

/// `/healthz` and `/metrics`.
async fn serve_health_and_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<OperatorMetrics>,
) {
    serve_http(listener, move |req| {
        let metrics = metrics.clone();
        async move {
            match req.uri().path() {
                "/healthz" => text(StatusCode::OK, "ok\n"),
                "/metrics" => text(StatusCode::OK, metrics.encode()),
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn container(command: &[&str], args: &[&str], env: Vec<EnvVar>) -> Container {
        let words = |w: &[&str]| Some(w.iter().map(|s| s.to_string()).collect());
        Container {
            name: "operator".into(),
            command: words(command),
            args: words(args),
            env: Some(env),
            ..Default::default()
        }
    }

    /// What the audit expects of a container, as the operator would read it.
    #[test]
    fn of_container_reads_flags_over_env_over_defaults() {
        let cases = [
            (
                "nothing set: the defaults",
                container(&[], &["operator"], vec![]),
                (names::SIDECAR_IMAGE, names::ENVOY_IMAGE, None),
            ),
            (
                "env values",
                container(
                    &[],
                    &["operator"],
                    vec![
                        env("TG_IMAGE", "reg/tg:1"),
                        env("TG_IMAGE_PULL_POLICY", "Always"),
                    ],
                ),
                ("reg/tg:1", names::ENVOY_IMAGE, Some("Always")),
            ),
            (
                "a flag wins over its env var, both spellings",
                container(
                    &["tenant-gateway", "operator"],
                    &["--image", "reg/tg:2", "--envoy-image=reg/envoy:2"],
                    vec![
                        env("TG_IMAGE", "reg/tg:1"),
                        env("TG_ENVOY_IMAGE", "reg/envoy:1"),
                    ],
                ),
                ("reg/tg:2", "reg/envoy:2", None),
            ),
            (
                "an unknown flag does not hide the known ones",
                container(&[], &["operator", "--bogus", "--image=reg/tg:3"], vec![]),
                ("reg/tg:3", names::ENVOY_IMAGE, None),
            ),
        ];
        for (name, c, (image, envoy_image, pull)) in cases {
            let ctx = Args::of_container(&c).build_context();
            assert_eq!(ctx.image, image, "{name}");
            assert_eq!(ctx.envoy_image, envoy_image, "{name}");
            assert_eq!(ctx.image_pull_policy.as_deref(), pull, "{name}");
        }
    }

    #[test]
    fn allow_host_network_from_flag_or_env() {
        let cases = [
            ("default", container(&[], &["operator"], vec![]), false),
            (
                "bare flag",
                container(&[], &["operator", "--allow-host-network"], vec![]),
                true,
            ),
            (
                "flag with value",
                container(&[], &["operator", "--allow-host-network=false"], vec![]),
                false,
            ),
            (
                "env",
                container(
                    &[],
                    &["operator"],
                    vec![env("TG_ALLOW_HOST_NETWORK", "true")],
                ),
                true,
            ),
            (
                "flag over env, other settings still read",
                container(
                    &[],
                    &["operator", "--allow-host-network=false", "--image=reg/tg:9"],
                    vec![env("TG_ALLOW_HOST_NETWORK", "true")],
                ),
                false,
            ),
        ];
        for (name, c, want) in cases {
            let ctx = Args::of_container(&c).build_context();
            assert_eq!(ctx.allow_host_network, want, "{name}");
        }
        let c = container(
            &[],
            &["operator", "--allow-host-network", "--image=reg/tg:9"],
            vec![],
        );
        assert_eq!(Args::of_container(&c).build_context().image, "reg/tg:9");
    }

    #[test]
    fn without_flags_matches_the_parser_defaults() {
        let parsed = Args::of_container(&container(&[], &["operator"], vec![]));
        assert_eq!(
            parsed.build_context(),
            Args::without_flags().build_context()
        );
        assert_eq!(parsed.http_addr, Args::without_flags().http_addr);
    }
}
