//! Churn driver for `hack/bench-local churn`: applies a schedule of route and
//! backend changes to a proxy under load and measures, per change, the time
//! from "change applied" to the first answer that shows it.
//!
//! Two targets, the same schedule:
//!
//! - `ads`: our ADS server on a Unix socket (`<dir>/ads.sock`), fed by
//!   `xds::translate` of generated Ingress/Service/EndpointSlice manifests;
//!   the Envoy bootstrap (`xds::bootstrap::ads_bootstrap`) is written to
//!   `<dir>/envoy.yaml` for the caller to start Envoy with. Each change
//!   re-translates the whole modified object set and pushes the snapshot.
//! - `nginx`: `<dir>/nginx.conf` is rewritten and `nginx -s reload` run for
//!   each change, as a template-and-reload ingress controller does; the caller
//!   starts nginx with that file.
//!
//! The schedule cycles through four kinds of change: add a route (a new path on
//! a loaded host), move a Service's endpoint to another backend port, remove
//! the oldest added route, and point a loaded route at another Service. The
//! routes the load generator uses (`host<h>.example.com/app<p>/…`) keep a
//! backend before and after every change, so none of their requests may fail.
//!
//! Handshake with the caller (files in `<dir>`): the driver writes `ready` once
//! `host0.example.com/app0/` answers 200 through the proxy, waits for `go`,
//! applies the changes every `interval-ms`, prints one JSON summary line on
//! stdout (per-change samples in `<dir>/changes.jsonl`), writes `done`, and
//! keeps serving until killed.
//!
//!     churn_ads <ads|nginx> <dir> <http-port> <admin-port> <backend-port> <backends>
//!               <hosts> <paths> <services> <changes> <interval-ms> [nginx-bin]

#[path = "bench_common/mod.rs"]
mod bench_common;

use bench_common::{host_name, Model, Route};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use xds::bootstrap::{ads_bootstrap, to_yaml};
use xds::{translate, AdsServer, GatewayOptions, ResourceType, Snapshot, TenantObjects};

const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Ads,
    Nginx,
}

struct Args {
    target: Target,
    dir: PathBuf,
    http_port: u16,
    admin_port: u16,
    backend_port: u16,
    backends: u16,
    hosts: usize,
    paths: usize,
    services: usize,
    changes: usize,
    interval: Duration,
    nginx_bin: String,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args().skip(1).collect();
    assert!(
        a.len() >= 11,
        "usage: churn_ads <ads|nginx> <dir> <http-port> <admin-port> <backend-port> <backends> \
         <hosts> <paths> <services> <changes> <interval-ms> [nginx-bin]"
    );
    let n = |i: usize| -> usize { a[i].parse().unwrap_or_else(|_| panic!("{:?}", a[i])) };
    let port = |i: usize| u16::try_from(n(i)).expect("port");
    Args {
        target: match a[0].as_str() {
            "ads" => Target::Ads,
            "nginx" => Target::Nginx,
            t => panic!("unknown target {t:?}"),
        },
        dir: PathBuf::from(&a[1]),
        http_port: port(2),
        admin_port: port(3),
        backend_port: port(4),
        backends: port(5),
        hosts: n(6),
        paths: n(7),
        services: n(8),
        changes: n(9),
        interval: Duration::from_millis(n(10) as u64),
        nginx_bin: a.get(11).cloned().unwrap_or_else(|| "nginx".into()),
    }
}

/// What a change must produce, checked by polling through the proxy.
#[derive(Clone, Debug)]
enum Expect {
    /// GET host/path answers 200 with this body.
    Body(String),
    /// GET host/path answers this status.
    Status(u16),
}

struct Change {
    kind: &'static str,
    host: usize,
    path: String,
    expect: Expect,
}

fn body_of(port: u16) -> String {
    format!("ok {port}\n")
}

/// Applies change `i` of the schedule to the model.
fn next_change(i: usize, m: &mut Model, grid: usize, ports: &[u16]) -> Change {
    let churned = |m: &Model| m.routes.len() - grid;
    // Remove only when something was added; otherwise add.
    let kind = match i % 4 {
        2 if churned(m) == 0 => 0,
        k => k,
    };
    match kind {
        0 => {
            let host = (i * 7) % m.hosts;
            let svc = i % m.services.len();
            let path = format!("/churn{i}");
            m.routes.push(Route {
                host,
                path: path.clone(),
                svc,
            });
            Change {
                kind: "add_route",
                host,
                path: format!("{path}/x"),
                expect: Expect::Body(body_of(m.services[svc])),
            }
        }
        1 => {
            let svc = (i / 4) % m.services.len();
            let to = *ports
                .iter()
                .find(|p| !m.services.contains(p))
                .expect("a spare backend port");
            m.services[svc] = to;
            let r = m.routes[..grid]
                .iter()
                .find(|r| r.svc == svc)
                .expect("a loaded route uses every service");
            Change {
                kind: "move_endpoint",
                host: r.host,
                path: format!("{}/item", r.path),
                expect: Expect::Body(body_of(to)),
            }
        }
        2 => {
            let r = m.routes.remove(grid);
            Change {
                kind: "remove_route",
                host: r.host,
                path: format!("{}/x", r.path),
                expect: Expect::Status(404),
            }
        }
        _ => {
            let idx = (i / 4 * 37) % grid;
            let r = &mut m.routes[idx];
            r.svc = (r.svc + 1) % m.services.len();
            Change {
                kind: "switch_service",
                host: r.host,
                path: format!("{}/item", r.path),
                expect: Expect::Body(body_of(m.services[r.svc])),
            }
        }
    }
}

/// One GET on a fresh connection (a reloaded nginx serves old keep-alive
/// connections from old workers), read to its Content-Length, not to EOF:
/// Envoy delays closing after a local reply (1 s), which is not propagation time.
async fn satisfied(addr: SocketAddr, c: &Change) -> bool {
    let Ok(Ok(answer)) = tokio::time::timeout(
        Duration::from_secs(2),
        testkit::http_get(addr, &host_name(c.host), &c.path),
    )
    .await
    else {
        return false;
    };
    match &c.expect {
        Expect::Body(b) => answer.status == 200 && answer.body == *b,
        Expect::Status(s) => answer.status == *s,
    }
}

/// The `q` quantile of sorted samples as a JSON number (`null` when empty).
fn quantile(sorted: &[f64], q: f64) -> String {
    if sorted.is_empty() {
        return "null".into();
    }
    format!(
        "{:.2}",
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    )
}

fn touch(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), b"").unwrap_or_else(|e| panic!("write {name}: {e}"));
}

struct Applier {
    target: Target,
    dir: PathBuf,
    http_port: u16,
    nginx_bin: String,
    options: GatewayOptions,
    snapshots: Option<watch::Sender<Arc<Snapshot>>>,
}

impl Applier {
    fn snapshot(&self, objects: &TenantObjects) -> Snapshot {
        let t = translate(objects, &self.options);
        assert!(
            t.diagnostics.is_empty(),
            "translation problems: {:?}",
            t.diagnostics
        );
        Snapshot::from(&t.resources)
    }

    fn write_nginx(&self, m: &Model) {
        let conf = self.dir.join("nginx.conf");
        let tmp = self.dir.join("nginx.conf.tmp");
        std::fs::write(&tmp, m.nginx_conf(self.http_port, &self.dir)).expect("write nginx.conf");
        std::fs::rename(&tmp, &conf).expect("rename nginx.conf");
    }

    /// The tenant's objects after the change, as the sidecar's watch caches
    /// hold them (generating and parsing manifests is not part of the timing).
    fn prepare(&self, m: &Model) -> Option<TenantObjects> {
        (self.target == Target::Ads).then(|| m.tenant_objects())
    }

    /// Applies the change: translate and push the snapshot, or render the
    /// config, rewrite the file and reload nginx.
    async fn apply(&self, m: &Model, objects: Option<TenantObjects>) {
        match self.target {
            Target::Ads => {
                let snap = self.snapshot(&objects.expect("objects"));
                self.snapshots
                    .as_ref()
                    .expect("ADS channel")
                    .send_replace(Arc::new(snap));
            }
            Target::Nginx => {
                self.write_nginx(m);
                let conf = self.dir.join("nginx.conf");
                let status = tokio::process::Command::new(&self.nginx_bin)
                    .arg("-c")
                    .arg(&conf)
                    .arg("-p")
                    .arg(format!("{}/", self.dir.display()))
                    .args(["-s", "reload"])
                    .status()
                    .await
                    .expect("run nginx -s reload");
                assert!(status.success(), "nginx -s reload failed: {status}");
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    std::fs::create_dir_all(&a.dir).expect("create dir");
    for f in ["ready", "go", "done"] {
        let _ = std::fs::remove_file(a.dir.join(f));
    }
    let ports: Vec<u16> = (0..a.backends).map(|i| a.backend_port + i).collect();
    assert!(
        ports.len() > a.services,
        "need more backend ports than services (spares for endpoint moves)"
    );
    let mut model = Model::grid(a.hosts, a.paths, ports[..a.services].to_vec());
    let grid = model.routes.len();
    let mut applier = Applier {
        target: a.target,
        dir: a.dir.clone(),
        http_port: a.http_port,
        nginx_bin: a.nginx_bin.clone(),
        options: GatewayOptions {
            bind_address: "127.0.0.1".into(),
            http_port: a.http_port,
            https_port: a.http_port.wrapping_add(1000),
            namespaces: Some([bench_common::NAMESPACE.to_string()].into()),
            ..GatewayOptions::default()
        },
        snapshots: None,
    };
    let mut stats = None;
    match a.target {
        Target::Ads => {
            let socket = a.dir.join("ads.sock");
            let (tx, rx) = watch::channel(Arc::new(applier.snapshot(&model.tenant_objects())));
            let (server, s) = AdsServer::new(rx);
            stats = Some(s);
            applier.snapshots = Some(tx);
            let path = socket.clone();
            tokio::spawn(async move {
                if let Err(e) = xds::serve_unix(&path, server, std::future::pending()).await {
                    eprintln!("ADS server failed: {e}");
                    std::process::exit(1);
                }
            });
            let bootstrap = ads_bootstrap(
                "churn",
                "bench",
                &socket.display().to_string(),
                a.admin_port,
                None,
            );
            std::fs::write(
                a.dir.join("envoy.yaml"),
                to_yaml(&bootstrap).expect("bootstrap YAML"),
            )
            .expect("write envoy.yaml");
        }
        Target::Nginx => applier.write_nginx(&model),
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], a.http_port));
    let probe = Change {
        kind: "probe",
        host: 0,
        path: "/app0/item".into(),
        expect: Expect::Status(200),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !satisfied(addr, &probe).await {
        assert!(Instant::now() < deadline, "the proxy never answered 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    touch(&a.dir, "ready");
    while !a.dir.join("go").exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut samples = std::fs::File::create(a.dir.join("changes.jsonl")).expect("changes.jsonl");
    let (mut prop, mut apply_ms, mut timeouts) = (Vec::new(), Vec::new(), 0usize);
    let mut by_kind: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let start = Instant::now();
    for i in 0..a.changes {
        let change = next_change(i, &mut model, grid, &ports);
        let objects = applier.prepare(&model);
        let t0 = Instant::now();
        applier.apply(&model, objects).await;
        let applied = t0.elapsed().as_secs_f64() * 1000.0;
        let mut ok = false;
        while t0.elapsed() < PROPAGATION_TIMEOUT {
            if satisfied(addr, &change).await {
                ok = true;
                break;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        writeln!(
            samples,
            "{{\"i\":{i},\"kind\":\"{}\",\"apply_ms\":{applied:.3},\"propagation_ms\":{ms:.3},\"ok\":{ok}}}",
            change.kind
        )
        .expect("write sample");
        apply_ms.push(applied);
        if ok {
            prop.push(ms);
            by_kind.entry(change.kind).or_default().push(ms);
        } else {
            timeouts += 1;
        }
        let next = start + a.interval * (i as u32 + 1);
        tokio::time::sleep_until(next.into()).await;
    }
    let duration = start.elapsed().as_secs_f64();
    for v in [&mut prop, &mut apply_ms] {
        v.sort_by(f64::total_cmp);
    }
    let kinds: Vec<String> = by_kind
        .iter_mut()
        .map(|(k, v)| {
            v.sort_by(f64::total_cmp);
            format!(
                "\"{k}\":{{\"n\":{},\"median_ms\":{},\"p99_ms\":{}}}",
                v.len(),
                quantile(v, 0.5),
                quantile(v, 0.99)
            )
        })
        .collect();
    let (pushes, nacks) = stats.as_ref().map_or((0, 0), |s| {
        let snap = s.snapshot();
        (
            s.total_pushes(),
            snap.types.values().map(|c| c.nacks).sum::<u64>(),
        )
    });
    let rds = stats
        .as_ref()
        .map_or(0, |s| s.counters(ResourceType::Route).pushes);
    println!(
        "{{\"bench\":\"churn_propagation\",\"target\":\"{}\",\"changes\":{},\"duration_s\":{duration:.1},\
         \"propagation_median_ms\":{},\"propagation_p99_ms\":{},\"propagation_max_ms\":{},\"timeouts\":{timeouts},\
         \"apply_median_ms\":{},\"apply_p99_ms\":{},\"by_kind\":{{{}}},\"ads_pushes\":{pushes},\"ads_rds_pushes\":{rds},\"ads_nacks\":{nacks}}}",
        match a.target {
            Target::Ads => "ads",
            Target::Nginx => "nginx",
        },
        a.changes,
        quantile(&prop, 0.5),
        quantile(&prop, 0.99),
        quantile(&prop, 1.0),
        quantile(&apply_ms, 0.5),
        quantile(&apply_ms, 0.99),
        kinds.join(",")
    );
    let _ = std::io::stdout().flush();
    touch(&a.dir, "done");
    // Keep serving (Envoy keeps its ADS stream) until the caller stops us.
    std::future::pending::<()>().await;
}
