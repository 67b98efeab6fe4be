//! The one HTTP/1.1 client of the tests, on hyper's client connection: a
//! kept-alive [`HttpConn`], one GET on a fresh connection ([`http_get`]), and
//! [`get_then_reset`], the load generators' request (new connection, closed
//! with RST), whose errors say which failure it was (refused, timed out after
//! connecting, closed before a response).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: header::HeaderMap,
    pub body: String,
    /// The server said `Connection: close`: this connection ends here.
    pub close: bool,
}

impl HttpResponse {
    /// The first value of header `name`, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// `<id>` of a [`crate::Backend`]'s `backend=<id> ...` answer.
    pub fn backend(&self) -> &str {
        self.body
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_start_matches("backend=")
    }
    /// The path (and query) the backend saw (`path=<p>` of its answer).
    pub fn seen_path(&self) -> &str {
        self.body
            .split_whitespace()
            .find_map(|w| w.strip_prefix("path="))
            .unwrap_or("")
    }

    async fn read(response: hyper::Response<hyper::body::Incoming>) -> Result<Self, HttpError> {
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Self {
            status: parts.status.as_u16(),
            close: asks_to_close(&parts.headers),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection was refused (or failed otherwise) before a byte was sent.
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    #[error("connect timed out")]
    ConnectTimedOut,
    /// Connected, but no complete answer in time (an accepted, unanswered request).
    #[error("GET timed out after connecting (local port {local_port})")]
    TimedOutAfterConnect { local_port: u16 },
    /// The server closed or reset the connection before any byte of a response:
    /// on a kept-alive connection, a request a client may retry on a new one.
    #[error("connection closed before a response")]
    ClosedBeforeResponse,
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("invalid request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl HttpError {
    /// Refused at connect: nothing reached a server.
    pub fn is_refused(&self) -> bool {
        matches!(self, HttpError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused)
    }
}

/// How long [`get_then_reset`] waits to connect, then for the whole answer.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub exchange: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            exchange: Duration::from_secs(5),
        }
    }
}

/// A stream that counts the bytes it has read, so that a failed request can
/// tell "closed before any response byte" from "closed in the middle of one".
struct CountingStream<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.read.fetch_add(n, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn get_request(host: &str, path: &str) -> Result<Request<Full<Bytes>>, HttpError> {
    Ok(Request::get(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, "tg-test")
        .body(Full::default())?)
}

/// A reset while waiting for an answer (a server dropping an idle kept-alive
/// connection as the request arrives) is a close too, as it was for the e2e client.
fn is_reset(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .is_some_and(|io| io.kind() == io::ErrorKind::ConnectionReset)
}

fn asks_to_close(headers: &header::HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case("close")))
}

/// A persistent HTTP/1.1 connection (keep-alive).
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    read: Arc<AtomicU64>,
    connection: tokio::task::JoinHandle<()>,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> Result<Self, HttpError> {
        let stream = TcpStream::connect(addr).await.map_err(HttpError::Connect)?;
        stream.set_nodelay(true)?;
        Self::handshake(stream).await
    }

    /// HTTP/1.1 over an established stream (plain TCP, TLS, a bound socket).
    pub async fn handshake<S>(stream: S) -> Result<Self, HttpError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let read = Arc::new(AtomicU64::new(0));
        let counted = CountingStream {
            inner: stream,
            read: read.clone(),
        };
        let (sender, connection) = http1::handshake(TokioIo::new(counted)).await?;
        // Errors of the connection itself surface on the request that meets them.
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            read,
            connection,
        })
    }

    /// GET `path` with `Host: host`.
    pub async fn get(&mut self, host: &str, path: &str) -> Result<HttpResponse, HttpError> {
        self.send(get_request(host, path)?).await
    }

    /// GET `path` with `Host: host` and these extra headers.
    pub async fn get_with(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse, HttpError> {
        let mut request = get_request(host, path)?;
        for (name, value) in headers {
            request.headers_mut().append(
                header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(hyper::http::Error::from)?,
                header::HeaderValue::from_str(value).map_err(hyper::http::Error::from)?,
            );
        }
        self.send(request).await
    }

    /// POST `body` (with its Content-Length) to `path` with `Host: host`.
    pub async fn post(
        &mut self,
        host: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<HttpResponse, HttpError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, host)
            .body(Full::new(Bytes::from(body)))?;
        self.send(request).await
    }

    /// Sends `request` on this connection and reads the whole answer.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        let before = self.read.load(Ordering::Relaxed);
        let nothing_came_back = |e: hyper::Error| {
            let closed =
                e.is_canceled() || e.is_closed() || e.is_incomplete_message() || is_reset(&e);
            if closed && self.read.load(Ordering::Relaxed) == before {
                HttpError::ClosedBeforeResponse
            } else {
                HttpError::Http(e)
            }
        };
        self.sender.ready().await.map_err(nothing_came_back)?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(nothing_came_back)?;
        HttpResponse::read(response).await
    }
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// One GET on a fresh connection, 5 s for everything.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str) -> Result<HttpResponse, HttpError> {
    tokio::time::timeout(Duration::from_secs(5), async {
        HttpConn::connect(addr).await?.get(host, path).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "HTTP GET timed out"))?
}

/// POST with an empty body on a fresh connection; the answer.
pub async fn http_post(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<HttpResponse, HttpError> {
    tokio::time::timeout(Duration::from_secs(5), async {
        HttpConn::connect(addr)
            .await?
            .post(host, path, Vec::new())
            .await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "HTTP POST timed out"))?
}

/// True once `GET path` through `addr` answers 200 from backend `id`.
pub async fn served_by(addr: SocketAddr, host: &str, path: &str, id: &str) -> bool {
    matches!(http_get(addr, host, path).await, Ok(r) if r.status == 200 && r.body.starts_with(&format!("backend={id} ")))
}

/// One GET with `Connection: close` on a new connection, read to the server's
/// close, then closed with RST (SO_LINGER 0). Thousands of connections a
/// second from one host to one NodePort otherwise reuse source ports whose
/// conntrack entry (and the pod's socket) is still in TIME_WAIT: such a SYN is
/// now and then dropped or not NATed at all (refused by the host), an artefact
/// of a client on the node that no request from another host meets.
pub async fn get_then_reset(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeouts: Timeouts,
) -> Result<HttpResponse, HttpError> {
    let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(addr))
        .await
        .map_err(|_| HttpError::ConnectTimedOut)?
        .map_err(HttpError::Connect)?;
    let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::time::timeout(timeouts.exchange, exchange_then_reset(stream, host, path))
        .await
        .map_err(|_| HttpError::TimedOutAfterConnect { local_port })?
}

async fn exchange_then_reset(
    stream: TcpStream,
    host: &str,
    path: &str,
) -> Result<HttpResponse, HttpError> {
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    let mut request = get_request(host, path)?;
    request.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    let exchange = async move { HttpResponse::read(sender.send_request(request).await?).await };
    // `without_shutdown` hands the socket back once the exchange is over.
    let (parts, response) = tokio::join!(connection.without_shutdown(), exchange);
    let response = response?;
    let mut stream = parts?.io.into_inner();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{free_port, Backend};
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    const QUICK: Timeouts = Timeouts {
        connect: Duration::from_secs(2),
        exchange: Duration::from_millis(300),
    };

    async fn listen() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// Reads one request head; its lines, lowercased.
    async fn read_head(r: &mut BufReader<TcpStream>) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                return lines;
            }
            lines.push(line.trim_end().to_ascii_lowercase());
        }
    }

    #[tokio::test]
    async fn get_then_reset_reads_the_answer_to_the_servers_close_then_sends_rst() {
        let (listener, addr) = listen().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut r = BufReader::new(stream);
            let head = read_head(&mut r).await;
            r.get_mut()
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                )
                .await
                .unwrap();
            r.get_mut().shutdown().await.unwrap();
            // A FIN from the client would read as Ok(0); SO_LINGER 0 resets.
            let after_close = r.read_line(&mut String::new()).await;
            (head, after_close.map_err(|e| e.kind()))
        });
        let r = get_then_reset(addr, "shop.example.com", "/login", QUICK)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str(), r.close), (200, "hello", true));
        let (head, after_close) = server.await.unwrap();
        assert_eq!(head[0], "get /login http/1.1");
        assert!(
            head.contains(&"host: shop.example.com".to_string()),
            "{head:?}"
        );
        assert!(head.contains(&"connection: close".to_string()), "{head:?}");
        assert_eq!(after_close, Err(io::ErrorKind::ConnectionReset));
    }

    #[tokio::test]
    async fn a_refused_connect_is_classified_as_refused() {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let e = get_then_reset(addr, "h", "/", QUICK).await.unwrap_err();
        assert!(e.is_refused(), "{e:?}");
        let e = HttpConn::connect(addr).await.err().unwrap();
        assert!(e.is_refused(), "{e:?}");
    }

    #[tokio::test]
    async fn an_accepted_unanswered_request_is_a_timeout_after_connecting() {
        let (listener, addr) = listen().await;
        let _holder = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(stream);
        });
        let e = get_then_reset(addr, "h", "/", QUICK).await.unwrap_err();
        assert!(
            matches!(e, HttpError::TimedOutAfterConnect { local_port } if local_port != 0),
            "{e:?}"
        );
        assert!(!e.is_refused());
        // Traffic::finish_draining counts these by this message.
        assert!(
            e.to_string().starts_with("GET timed out after connecting"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_5xx_is_an_answer_with_its_status_not_an_error() {
        let backend = Backend::start("a").await;
        backend.failing.store(true, SeqCst);
        let r = get_then_reset(backend.addr, "h", "/x", QUICK)
            .await
            .unwrap();
        assert_eq!(r.status, 500);
        backend.failing.store(false, SeqCst);
        let r = http_get(backend.addr, "shop", "/x?y=1").await.unwrap();
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "backend=a path=/x?y=1 host=shop")
        );
        assert!(served_by(backend.addr, "shop", "/", "a").await);
        assert!(!served_by(backend.addr, "shop", "/", "b").await);
    }

    /// A server that answers `answers` requests on its first connection, then
    /// writes `last` (possibly a truncated answer) and closes; the number of
    /// connections it accepted.
    async fn one_connection_server(
        answers: usize,
        last: &'static [u8],
    ) -> (SocketAddr, Arc<AtomicU64>) {
        let (listener, addr) = listen().await;
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, SeqCst);
            let mut r = BufReader::new(stream);
            for _ in 0..answers {
                read_head(&mut r).await;
                r.get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            read_head(&mut r).await;
            if last == RESET {
                socket2::SockRef::from(r.get_ref())
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            } else {
                let _ = r.get_mut().write_all(last).await;
            }
            drop(r);
            while let Ok((_, _)) = listener.accept().await {
                count.fetch_add(1, SeqCst);
            }
        });
        (addr, accepted)
    }

    /// As `last`: write nothing and reset the connection instead of closing it.
    const RESET: &[u8] = b"<reset>";

    #[tokio::test]
    async fn a_kept_alive_connection_reset_before_an_answer_is_closed_before_response() {
        let (addr, _) = one_connection_server(1, RESET).await;
        let mut conn = HttpConn::connect(addr).await.unwrap();
        conn.get("h", "/").await.unwrap();
        let e = conn.get("h", "/").await.unwrap_err();
        assert!(matches!(e, HttpError::ClosedBeforeResponse), "{e:?}");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_carries_every_request_until_the_server_closes_it() {
        let (addr, accepted) = one_connection_server(3, b"").await;
        let mut conn = HttpConn::connect(addr).await.unwrap();
        for _ in 0..3 {
            let r = conn.get("h", "/").await.unwrap();
            assert_eq!((r.status, r.body.as_str(), r.close), (200, "ok", false));
        }
        let e = conn.get("h", "/").await.unwrap_err();
        assert!(matches!(e, HttpError::ClosedBeforeResponse), "{e:?}");
        assert_eq!(accepted.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_closed_in_the_middle_of_an_answer_is_not_closed_before_response() {
        let (addr, _) =
            one_connection_server(1, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ntrunc").await;
        let mut conn = HttpConn::connect(addr).await.unwrap();
        conn.get("h", "/").await.unwrap();
        let e = conn.get("h", "/").await.unwrap_err();
        assert!(matches!(e, HttpError::Http(_)), "{e:?}");
    }
}
