//! The ADS server against a real Envoy (see tests/support for the harness).

mod support;

use envoy_types::pb::google::protobuf::Duration as PbDuration;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::resources::{eds_cluster, endpoints, http_config};
use testkit::{
    free_port, http_get, served_by, time_until, wait_until, AdsFixture, Backend, Envoy, HttpConn,
};
use xds::{EnvoyResources, ResourceType, Snapshot};

const UP: Duration = Duration::from_secs(15);

fn listener_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// ADS server + one Envoy, converged on `initial`, with `path` served by `backend`.
async fn start(initial: EnvoyResources, node: &str) -> (AdsFixture, Envoy) {
    let ads = AdsFixture::start(Snapshot::from(&initial)).await;
    let envoy = Envoy::start(node, &ads.socket).await;
    (ads, envoy)
}

async fn assert_served(addr: SocketAddr, path: &str, id: &str) {
    assert!(
        wait_until(UP, || served_by(addr, "shop.example.com", path, id)).await,
        "{path} was not served by backend {id}; last answer: {:?}",
        http_get(addr, "shop.example.com", path).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_comes_up_from_an_ads_snapshot_and_serves_a_route() {
    let a = Backend::start("a").await;
    let port = free_port();
    let (ads, envoy) = start(
        http_config(port, &[("/a", "a")], &[("a", a.addr)]),
        "node-a",
    )
    .await;
    assert_served(listener_addr(port), "/a/hello?x=1", "a").await;
    let r = http_get(listener_addr(port), "shop.example.com", "/a/hello?x=1")
        .await
        .expect("GET");
    assert_eq!(r.body, "backend=a path=/a/hello?x=1 host=shop.example.com");
    // Unrouted paths are Envoy's 404, not a backend.
    let r = http_get(listener_addr(port), "shop.example.com", "/nowhere")
        .await
        .expect("GET");
    assert_eq!(r.status, 404);
    ads.settle().await;
    let stats = ads.stats.snapshot();
    for ty in [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ] {
        let c = stats.types.get(&ty).copied().unwrap_or_default();
        assert!(
            c.pushes >= 1 && c.acks == c.pushes && c.nacks == 0,
            "{ty:?}: {c:?}"
        );
    }
    assert_eq!(
        stats.types.get(&ResourceType::Secret),
        None,
        "no SDS subscription, no SDS push"
    );
    assert_eq!(stats.active_streams, 1);
    let snap = Snapshot::from(&http_config(port, &[("/a", "a")], &[("a", a.addr)]));
    assert_eq!(
        envoy
            .text_stat("cluster_manager.cds.version_text")
            .await
            .as_deref(),
        Some(snap.version(ResourceType::Cluster).as_str()),
        "Envoy runs the snapshot's CDS version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_change_is_served_and_a_removed_cluster_never_causes_a_503() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let port = free_port();
    let addr = listener_addr(port);
    let before = http_config(
        port,
        &[("/a", "a"), ("/c", "c")],
        &[("a", a.addr), ("c", c.addr)],
    );
    let (ads, envoy) = start(before, "node-b").await;
    assert_served(addr, "/a", "a").await;
    assert_served(addr, "/c", "c").await;
    ads.settle().await;

    // Watch /c while it goes away: 200 (old) then 404 (route gone), never a 503
    // (route still pointing at a cluster Envoy already dropped).
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let watcher = {
        let (stop, statuses) = (stop.clone(), statuses.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let s = http_get(addr, "h", "/c")
                    .await
                    .map(|r| r.status)
                    .unwrap_or(0);
                statuses.lock().unwrap().push(s);
            }
        })
    };
    let after = http_config(
        port,
        &[("/a", "a"), ("/b", "b")],
        &[("a", a.addr), ("b", b.addr)],
    );
    let t0 = Instant::now();
    ads.push(Snapshot::from(&after));
    let latency = time_until(UP, || served_by(addr, "h", "/b/x", "b")).await;
    let latency = latency.expect("new route to b was never served");
    println!("push → first 200 on the new route: {latency:?}");
    assert!(
        wait_until(UP, || async {
            matches!(http_get(addr, "h", "/c").await, Ok(r) if r.status == 404)
        })
        .await
    );
    // The dropped cluster leaves Envoy once nothing routes to it.
    assert!(
        wait_until(UP, || async {
            let dump = envoy
                .admin_get("/config_dump?resource=dynamic_active_clusters")
                .await;
            dump.contains("\"b\"") && !dump.contains("\"c\"")
        })
        .await,
        "cluster c was not removed from Envoy"
    );
    stop.store(true, Ordering::Relaxed);
    watcher.await.expect("watcher");
    let statuses = statuses.lock().unwrap().clone();
    println!(
        "{} probes of /c during the change ({:?} total)",
        statuses.len(),
        t0.elapsed()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 404),
        "unexpected statuses on /c: {statuses:?}"
    );
    assert!(statuses.contains(&404));
    assert_served(addr, "/a", "a").await;
    assert_eq!(ads.stats.snapshot().last_nack, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_sees_no_error_while_50_snapshots_change_other_routes() {
    let (stable, other) = (
        Backend::start("stable").await,
        Backend::start("other").await,
    );
    let port = free_port();
    let addr = listener_addr(port);
    let config = |i: usize| {
        let name = format!("x{i}");
        let prefix = format!("/x{i}");
        let mut r = http_config(
            port,
            &[("/stable", "stable"), (prefix.as_str(), name.as_str())],
            &[("stable", stable.addr), (name.as_str(), other.addr)],
        );
        // Every other snapshot also adds a second extra cluster.
        if i.is_multiple_of(2) {
            let extra = format!("y{i}");
            r.clusters.push(eds_cluster(&extra));
            r.endpoints.push(endpoints(&extra, &[other.addr]));
            r.clusters.sort_by(|a, b| a.name.cmp(&b.name));
            r.endpoints
                .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
        }
        r
    };
    let (ads, _envoy) = start(config(0), "node-c").await;
    assert_served(addr, "/stable", "stable").await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for keep_alive in [true, false] {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            let mut conn = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() || !keep_alive {
                    conn = HttpConn::connect(addr).await.ok();
                }
                let result = match conn.as_mut() {
                    Some(c) => c.get("shop.example.com", "/stable/ping").await,
                    None => Err(std::io::Error::other("connect failed").into()),
                };
                match result {
                    Ok(r) if r.status == 200 && r.body.starts_with("backend=stable ") => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failures.lock().unwrap().push(format!("{other:?}"));
                        conn = None;
                    }
                }
            }
        }));
    }
    for i in 1..=50 {
        ads.push(Snapshot::from(&config(i)));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_served(addr, "/x50", "other").await;
    assert!(
        wait_until(UP, || async {
            matches!(http_get(addr, "h", "/x49").await, Ok(r) if r.status == 404)
        })
        .await,
        "stale route /x49 still served"
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let failures = failures.lock().unwrap().clone();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "{ok} requests to the unchanged route while 50 snapshots were pushed, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(10)]
    );
    assert!(ok > 100, "too little traffic to prove anything: {ok}");
    ads.settle().await;
    let stats = ads.stats.snapshot();
    assert_eq!(stats.last_nack, None);
    println!("server counters: {:?}", stats.types);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_config_is_counted_and_the_last_good_one_keeps_serving() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    let addr = listener_addr(port);
    let good = http_config(port, &[("/a", "a")], &[("a", a.addr)]);
    let (ads, envoy) = start(good.clone(), "node-d").await;
    assert_served(addr, "/a", "a").await;
    ads.settle().await;
    let good_cds = Snapshot::from(&good).version(ResourceType::Cluster);

    let mut bad = good.clone();
    let mut broken = eds_cluster("broken");
    broken.connect_timeout = Some(PbDuration {
        seconds: -1,
        nanos: 0,
    });
    bad.clusters.push(broken);
    bad.endpoints.push(endpoints("broken", &[b.addr]));
    let bad_snap = Snapshot::from(&bad);
    ads.push(bad_snap.clone());
    assert!(
        wait_until(UP, || async {
            ads.stats.counters(ResourceType::Cluster).nacks == 1
        })
        .await,
        "no NACK counted: {:?}",
        ads.stats.snapshot()
    );
    let nack = ads.stats.last_nack().expect("last NACK");
    println!("NACK: {nack:?}");
    assert_eq!(nack.ty, ResourceType::Cluster);
    assert_eq!(nack.node, "node-d");
    assert_eq!(
        nack.rejected_version,
        bad_snap.version(ResourceType::Cluster)
    );
    assert_eq!(nack.kept_version, good_cds);
    assert!(
        nack.message.contains("duration") && nack.message.contains("-1"),
        "Envoy's own message is reported: {}",
        nack.message
    );
    assert!(envoy.stat("cluster_manager.cds.update_rejected").await >= Some(1));
    // Old config still serves, and the rejected one is not sent again.
    assert_served(addr, "/a", "a").await;
    let pushes = ads.stats.counters(ResourceType::Cluster).pushes;
    ads.push(bad_snap.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ads.stats.counters(ResourceType::Cluster).pushes,
        pushes,
        "rejected CDS re-sent"
    );
    assert_eq!(ads.stats.counters(ResourceType::Cluster).nacks, 1);

    // A good snapshot afterwards is accepted.
    let fixed = http_config(
        port,
        &[("/a", "a"), ("/b", "b")],
        &[("a", a.addr), ("b", b.addr)],
    );
    let acks = ads.stats.counters(ResourceType::Cluster).acks;
    ads.push(Snapshot::from(&fixed));
    assert_served(addr, "/b", "b").await;
    assert_served(addr, "/a", "a").await;
    assert!(ads.stats.counters(ResourceType::Cluster).acks > acks);
    assert_eq!(
        envoy
            .text_stat("cluster_manager.cds.version_text")
            .await
            .as_deref(),
        Some(
            Snapshot::from(&fixed)
                .version(ResourceType::Cluster)
                .as_str()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_snapshot_is_not_pushed_again() {
    let a = Backend::start("a").await;
    let port = free_port();
    let config = http_config(port, &[("/a", "a")], &[("a", a.addr)]);
    let (ads, envoy) = start(config.clone(), "node-e").await;
    assert_served(listener_addr(port), "/a", "a").await;
    ads.settle().await;
    let envoy_stats = [
        "cluster_manager.cds.update_attempt",
        "cluster_manager.cds.update_success",
        "listener_manager.lds.update_attempt",
        "http.http.rds.http-routes.update_attempt",
        "cluster.a.update_attempt",
    ];
    let read = || async {
        let mut v = Vec::new();
        for s in envoy_stats {
            v.push(envoy.stat(s).await.unwrap_or_else(|| panic!("no stat {s}")));
        }
        (v, envoy.text_stat("cluster_manager.cds.version_text").await)
    };
    let before = read().await;
    let pushes = ads.stats.total_pushes();
    for _ in 0..3 {
        ads.push(Snapshot::from(&config));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        ads.stats.total_pushes(),
        pushes,
        "server re-pushed an unchanged snapshot"
    );
    assert_eq!(read().await, before, "Envoy saw an update");
    // Sanity: a real change does move the counters.
    ads.push(Snapshot::from(&http_config(
        port,
        &[("/a2", "a")],
        &[("a", a.addr)],
    )));
    assert_served(listener_addr(port), "/a2", "a").await;
    assert!(ads.stats.total_pushes() > pushes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_envoys_on_one_server_both_serve_and_follow_changes() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    let addr = listener_addr(port);
    let config = http_config(port, &[("/a", "a")], &[("a", a.addr)]);
    let ads = AdsFixture::start(Snapshot::from(&config)).await;
    // Both bind the same port (SO_REUSEPORT, Envoy's default on Linux), like
    // two replicas behind one Service; the kernel spreads connections.
    let e1 = Envoy::start("replica-1", &ads.socket).await;
    let e2 = Envoy::start("replica-2", &ads.socket).await;
    for e in [&e1, &e2] {
        assert!(
            wait_until(UP, || async {
                e.stat("listener_manager.total_listeners_active").await == Some(1)
            })
            .await,
            "{} has no active listener",
            e.node_id
        );
    }
    assert_served(addr, "/a", "a").await;
    assert_eq!(ads.stats.snapshot().active_streams, 2);

    let after = http_config(port, &[("/b", "b")], &[("b", b.addr)]);
    let routes_version = Snapshot::from(&after).version(ResourceType::Route);
    ads.push(Snapshot::from(&after));
    for e in [&e1, &e2] {
        assert!(
            wait_until(UP, || async {
                e.text_stat("http.http.rds.http-routes.version_text")
                    .await
                    .as_deref()
                    == Some(routes_version.as_str())
            })
            .await,
            "{} did not take the new routes",
            e.node_id
        );
    }
    for i in 0..60 {
        let r = http_get(addr, "h", &format!("/b/{i}")).await.expect("GET");
        assert_eq!(
            (r.status, r.body.starts_with("backend=b ")),
            (200, true),
            "{r:?}"
        );
    }
    for e in [&e1, &e2] {
        let served = e.stat("http.http.downstream_rq_2xx").await.unwrap_or(0);
        assert!(served > 0, "{} served nothing", e.node_id);
    }
    drop(e2);
    assert!(wait_until(UP, || async { ads.stats.snapshot().active_streams == 1 }).await);
}

/// Benchmark, not a test:
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_snapshots_coalesces_and_ends_on_the_latest() {
    let a = Backend::start("a").await;
    let port = free_port();
    let addr = listener_addr(port);
    let config = |i: usize| {
        let p = format!("/burst{i}");
        http_config(port, &[(p.as_str(), "a")], &[("a", a.addr)])
    };
    let (ads, envoy) = start(config(0), "node-g").await;
    assert_served(addr, "/burst0", "a").await;
    ads.settle().await;
    let before = ads.stats.counters(ResourceType::Route).pushes;
    for i in 1..=30 {
        ads.push(Snapshot::from(&config(i)));
    }
    let last = Snapshot::from(&config(30)).version(ResourceType::Route);
    assert!(
        wait_until(UP, || async {
            envoy
                .text_stat("http.http.rds.http-routes.version_text")
                .await
                .as_deref()
                == Some(last.as_str())
        })
        .await,
        "Envoy did not end on the latest snapshot"
    );
    assert_served(addr, "/burst30", "a").await;
    let r = http_get(addr, "h", "/burst29").await.expect("GET");
    assert_eq!(r.status, 404, "a stale route is still served");
    ads.settle().await;
    let pushed = ads.stats.counters(ResourceType::Route).pushes - before;
    println!("30 snapshots in a burst → {pushed} RDS pushes");
    assert!(
        (1..30).contains(&pushed),
        "{pushed} RDS pushes for a burst of 30"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_is_private_replaces_a_stale_socket_shutdown_ends_streams_and_envoy_reconnects()
{
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ads.sock");
    // A stale socket from a previous run.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    let a = Backend::start("a").await;
    let port = free_port();
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot::from(&http_config(
        port,
        &[("/a", "a")],
        &[("a", a.addr)],
    ))));
    let (server, stats) = xds::AdsServer::new(rx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(xds::serve_unix(path.clone(), server, async {
        let _ = stopped.await;
    }));
    // The stale socket had the umask's mode; ours is group-private.
    let mode = || {
        std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert!(
        wait_until(UP, || async { mode() == 0o660 }).await,
        "socket mode {:o}",
        mode()
    );
    let envoy = Envoy::start("node-h", &path).await;
    assert_served(listener_addr(port), "/a", "a").await;
    assert_eq!(stats.snapshot().active_streams, 1);
    // Shutdown must not hang on Envoy's long-lived stream.
    stop.send(()).expect("stop");
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("server did not shut down while Envoy was connected")
        .expect("join");
    assert!(result.is_ok(), "{result:?}");
    assert!(!path.exists(), "socket left behind");
    assert_eq!(stats.snapshot().active_streams, 0);
    drop(tx);

    // Envoy keeps its last config while the server is away...
    assert_served(listener_addr(port), "/a", "a").await;
    // ...and a restarted server (new snapshot) is picked up on reconnect.
    let b = Backend::start("b").await;
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot::from(&http_config(
        port,
        &[("/b", "b")],
        &[("b", b.addr)],
    ))));
    let (server, stats) = xds::AdsServer::new(rx);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(xds::serve_unix(path.clone(), server, async {
        let _ = stopped.await;
    }));
    assert_served(listener_addr(port), "/b", "b").await;
    assert!(
        wait_until(UP, || async {
            matches!(http_get(listener_addr(port), "h", "/a").await, Ok(r) if r.status == 404)
        })
        .await
    );
    assert_eq!(stats.snapshot().total_streams, 1);
    stop.send(()).expect("stop");
    serving.await.expect("join").expect("serve");
    drop(envoy);

    // Anything that is not a socket is left alone.
    std::fs::write(&path, "not a socket").expect("file");
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    let (server, _) = xds::AdsServer::new(rx);
    let err = xds::serve_unix(&path, server, async {})
        .await
        .expect_err("must refuse");
    assert!(matches!(err, xds::AdsError::NotASocket { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("file"),
        "not a socket"
    );
}

/// The signal a status writer waits for (`AdsServer::served`): each time it
/// names the snapshot just pushed, that snapshot's new route answers at once
/// — a client that trusts a status written then never gets a 404. Also for a
/// new cluster (the route's cluster must be warm first) and a removed route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_names_a_snapshot_only_once_envoy_answers_its_new_routes() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    let addr = listener_addr(port);
    // Snapshot i: /r1 … /ri, each to its own cluster (odd ones on b).
    let config = |i: usize| {
        let names: Vec<(String, String)> = (1..=i)
            .map(|k| (format!("/r{k}/"), format!("c{k}")))
            .collect();
        let routes: Vec<(&str, &str)> = names
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        let backends: Vec<(&str, SocketAddr)> = names
            .iter()
            .enumerate()
            .map(|(k, (_, c))| {
                (
                    c.as_str(),
                    if k.is_multiple_of(2) { b.addr } else { a.addr },
                )
            })
            .collect();
        http_config(port, &routes, &backends)
    };
    let (ads, _envoy) = start(config(1), "node-served").await;
    let mut served = ads.served.clone();
    assert_served(addr, "/r1/", "b").await;
    let backend_of = |k: usize| if (k - 1).is_multiple_of(2) { "b" } else { "a" };
    for i in 2..=20 {
        let snap = Arc::new(Snapshot::from(&config(i)));
        ads.snapshots.send_replace(snap.clone());
        tokio::time::timeout(
            UP,
            served.wait_for(|s| s.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snap))),
        )
        .await
        .unwrap_or_else(|_| panic!("snapshot {i} never reported served"))
        .expect("ADS server alive");
        let r = http_get(addr, "shop.example.com", &format!("/r{i}/"))
            .await
            .expect("GET");
        assert!(
            r.status == 200 && r.body.starts_with(&format!("backend={} ", backend_of(i))),
            "snapshot {i} reported served, but /r{i}/ answered {} {}",
            r.status,
            r.body
        );
    }
    // A removal: once served, the route is gone.
    let snap = Arc::new(Snapshot::from(&config(5)));
    ads.snapshots.send_replace(snap.clone());
    tokio::time::timeout(
        UP,
        served.wait_for(|s| s.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snap))),
    )
    .await
    .expect("the smaller snapshot reported served")
    .expect("ADS server alive");
    let r = http_get(addr, "shop.example.com", "/r20")
        .await
        .expect("GET");
    assert_eq!(r.status, 404, "a removed route once served");
}
