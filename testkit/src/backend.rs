//! Local HTTP backends that say who answered.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A local HTTP backend answering `backend=<id> path=<path> host=<host>`;
/// `GET /sleep/<ms>` waits that long before answering (timeouts);
/// `GET /healthz` answers 200, or 503 once `healthy` is set to false;
/// every request answers 500 while `failing` is true; `GET /text/<n>`
/// answers `text/plain` with the usual line repeated n times (compression);
/// `GET /status/<code>` answers that status. Every request is recorded in
/// `seen` (mirrors, headers a backend received).
pub struct Backend {
    pub id: String,
    pub addr: SocketAddr,
    pub healthy: Arc<std::sync::atomic::AtomicBool>,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    pub seen: Arc<std::sync::Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

/// A request as a [`Backend`] received it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Names lowercase, in the order received.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Backend {
    /// The requests received so far, health checks left out.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen
            .lock()
            .map(|s| s.iter().filter(|r| r.uri != "/healthz").cloned().collect())
            .unwrap_or_default()
    }
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
        let seen: Arc<std::sync::Mutex<Vec<SeenRequest>>> = Arc::default();
        let (h, f, log) = (healthy.clone(), failing.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let ident = ident.clone();
                let (healthy, failing, log) = (h.clone(), f.clone(), log.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            if let Ok(mut log) = log.lock() {
                                log.push(SeenRequest {
                                    method: req.method().to_string(),
                                    uri: req
                                        .uri()
                                        .path_and_query()
                                        .map_or("/".into(), |p| p.to_string()),
                                    headers: req
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_owned(),
                                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                            )
                                        })
                                        .collect(),
                                });
                            }
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
                            let asked = path
                                .strip_prefix("/status/")
                                .and_then(|c| c.parse::<u16>().ok());
                            let status = if let Some(code) = asked {
                                code
                            } else if failing.load(SeqCst)
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
            seen,
            task,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
