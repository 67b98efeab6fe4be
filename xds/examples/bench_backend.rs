//! A small, fast HTTP/1.1 backend for the local benchmarks: listens on
//! 127.0.0.1 at every port given and answers every request `200 ok <port>\n`
//! (a fixed body per port, so a client can tell which backend answered).
//!
//!     cargo run --release -p tenant-gateway-xds --example bench_backend -- <first-port> <count> [threads]
//!
//! Multi-threaded (tokio, `threads` workers, default: the CPUs it may run on).
//! Prints `ready` on stdout once every port is bound; runs until killed.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let first =
        u16::try_from(*args.first().expect("usage: <first-port> <count> [threads]")).expect("port");
    let count = args.get(1).copied().unwrap_or(1);
    let threads = args.get(2).copied().unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..count {
            let port = first + u16::try_from(i).expect("port count");
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
            let body = Bytes::from(format!("ok {port}\n"));
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let body = body.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |_req: Request<_>| {
                            let body = body.clone();
                            async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }));
        }
        println!("ready");
        let _ = std::io::stdout().flush();
        futures::future::join_all(tasks).await;
    });
}
