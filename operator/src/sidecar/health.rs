//! The sidecar's HTTP endpoints on the pod IP (never xDS, never Envoy admin):
//! `/healthz` (sidecar alive), `/ready` (config pushed and Envoy ready),
//! `/drain` (Envoy's preStop: fail health, drain listeners, wait for
//! connections to close) and `/metrics` (Prometheus).

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Shared state the endpoints read.
#[derive(Clone)]
pub struct HealthState {
    /// Set once the first complete configuration has been pushed.
    pub configured: Arc<AtomicBool>,
    pub draining: Arc<AtomicBool>,
    pub admin: SocketAddr,
    /// Keep accepting for at least this long after a drain starts: endpoint
    /// removal reaches every node's proxy asynchronously, so new connections
    /// may still arrive for a moment.
    pub min_drain: Duration,
    pub drain_timeout: Duration,
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
}

/// One request to Envoy's admin interface on loopback: (status, body).
pub async fn admin_request(
    admin: SocketAddr,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(admin).await?;
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed admin response"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "Envoy admin timed out"))?
}

/// Active downstream connections on the tenant listeners (from admin /stats).
fn active_connections(stats: &str) -> u64 {
    stats
        .lines()
        // The admin listener's own connection (this very request) does not count.
        .filter(|l| {
            l.starts_with("http.")
                && !l.starts_with("http.admin.")
                && l.contains(".downstream_cx_active:")
        })
        .filter_map(|l| l.rsplit(':').next()?.trim().parse::<u64>().ok())
        .sum()
}

/// Drain Envoy gracefully: stop passing health checks, stop accepting and
/// close idle connections, then wait until in-flight ones finish.
pub async fn drain(state: &HealthState) -> String {
    state.draining.store(true, Ordering::SeqCst);
    let _ = admin_request(state.admin, "POST", "/healthcheck/fail").await;
    let started = tokio::time::Instant::now();
    let deadline = started + state.drain_timeout;
    // Keep serving exactly as before while the endpoint removal reaches
    // kube-proxy: connections still routed here must be answered. Only then
    // ask Envoy to close its connections gracefully.
    tokio::time::sleep(state.min_drain).await;
    let _ = admin_request(state.admin, "POST", "/drain_listeners?graceful").await;
    loop {
        let active =
            match admin_request(state.admin, "GET", "/stats?filter=downstream_cx_active").await {
                Ok((200, body)) => active_connections(&body),
                // Envoy already gone: nothing left to drain.
                _ => 0,
            };
        if active == 0 {
            return "drained\n".into();
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(active, "drain timeout reached with connections still open");
            return format!("drain timeout with {active} connections open\n");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn handle(state: HealthState, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, body: String| text(code, body);
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/ready") => {
            if state.draining.load(Ordering::SeqCst) {
                return reply(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into());
            }
            if !state.configured.load(Ordering::SeqCst) {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no configuration pushed yet\n".into(),
                );
            }
            match admin_request(state.admin, "GET", "/ready").await {
                Ok((200, _)) => reply(StatusCode::OK, "ready\n".into()),
                Ok((code, body)) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("envoy: {code} {body}"),
                ),
                Err(e) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("envoy admin: {e}\n"),
                ),
            }
        }
        (_, "/drain") => reply(StatusCode::OK, drain(&state).await),
        (&Method::GET, "/metrics") => {
            let mut r = reply(StatusCode::OK, (state.metrics)());
            if let Ok(v) = "application/openmetrics-text; version=1.0.0; charset=utf-8".parse() {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            r
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Serve the sidecar's endpoints on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: HealthState) {
    serve_http(listener, move |req| handle(state.clone(), req)).await
}

/// A minimal HTTP/1.1 server: one `handler` call per request.
pub async fn serve_http<F, Fut>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let fut = handler(req);
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// A plain-text response.
pub fn text(code: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_active_connections_of_every_http_listener() {
        let stats = "http.http.downstream_cx_active: 3\nhttp.https.downstream_cx_active: 2\nhttp.admin.downstream_cx_active: 1\nlistener.admin.downstream_cx_active: 9\n";
        assert_eq!(active_connections(stats), 5);
        assert_eq!(active_connections(""), 0);
    }
}
