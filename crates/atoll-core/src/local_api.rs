//! The services' local control APIs: HTTP/JSON over unix sockets in the
//! runtime directory, guarded by file permissions (mode 0660: the owner and
//! the socket's group may call), and a small client for the CLI and for
//! service-to-service calls.
//!
//! [`serve`] hardens every service's router the same way: request bodies
//! that extractors buffer (JSON) are limited to [`MAX_JSON_BODY`] (a
//! handler that takes the raw `Body` streams without limit), a client that
//! stalls in its header or its body is dropped, and the plain-text
//! rejections of axum's extractors, which quote the input, are replaced by
//! a JSON [`ErrorBody`] that does not.

use std::{
    fs, io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::net::{UnixListener, UnixStream};

/// Mode of every local API socket: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// Largest response body the client reads, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Largest request body an extractor buffers (JSON bodies), in bytes.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Binds a unix socket at `path` with mode 0660, creating its directory.
///
/// A stale socket file left by a crashed process is replaced; a socket on
/// which something still listens is an `AddrInUse` error, and a path that
/// is not a socket is never removed.
pub async fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by another process", path.display()),
                ));
            }
            fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; not removing it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))?;
    Ok(listener)
}

/// How long a local API client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its header. Default
    /// 10 s.
    pub header: Duration,
    /// Longest pause between two pieces of a request body (a body that
    /// stalls longer is dropped; a slow but steady upload is not). Default
    /// 30 s.
    pub body_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body_idle: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight. See the module docs for what every router gets.
pub async fn serve(
    listener: UnixListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, router, shutdown, Timeouts::default()).await
}

/// [`serve`] with explicit timeouts.
pub async fn serve_with(
    listener: UnixListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeouts: Timeouts,
) -> io::Result<()> {
    let app = harden(router, timeouts);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: try again soon.
                    tracing::warn!("local API: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("local API connection: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The layers [`serve`] puts around every router: the JSON body limit,
/// the body idle timeout and the rejection scrubber. Public so that tests
/// calling a router directly see what clients see.
pub fn harden(router: Router, timeouts: Timeouts) -> Router {
    router
        .layer(axum::middleware::map_response(scrub_rejection))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            timeouts.body_idle,
        ))
}

/// Replaces a client error that is not one of ours (axum's extractor
/// rejections are plain text and may quote the path, query or body) by an
/// [`ErrorBody`] that names the problem without repeating the input.
async fn scrub_rejection(response: Response) -> Response {
    let status = response.status();
    // axum's rejections are text/plain; its "no route" and "wrong method"
    // answers have no body. Anything else (ours are JSON, a 416 carries
    // its Content-Range) passes as it is.
    let rejection = match response.headers().get(header::CONTENT_TYPE) {
        Some(v) => v.as_bytes().starts_with(b"text/plain"),
        None => matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ),
    };
    if !status.is_client_error() || !rejection {
        return response;
    }
    // Where in a JSON body the problem is: digits only, safe to repeat.
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let position = json_position(&String::from_utf8_lossy(&text));
    let message = match status {
        StatusCode::NOT_FOUND => "no such route".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body too large (JSON bodies: at most {MAX_JSON_BODY} bytes)")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "expected a JSON body (content-type: application/json)".to_owned()
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            format!("the JSON body does not have the fields and types this route expects{position}")
        }
        StatusCode::BAD_REQUEST if position.is_empty() => {
            "malformed request (path, query or body)".to_owned()
        }
        StatusCode::BAD_REQUEST => format!("the body is not valid JSON{position}"),
        _ => "request refused".to_owned(),
    };
    let mut response = (status, Json(ErrorBody { error: message })).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is not read: do not reuse the connection.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// ` (line L, column C)` from serde_json's message, or nothing.
fn json_position(text: &str) -> String {
    let Some(at) = text.rfind(" at line ") else {
        return String::new();
    };
    let mut words = text[at..].split_whitespace().skip(2);
    let line = words
        .next()
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit()));
    let column = (words.next() == Some("column"))
        .then(|| words.next())
        .flatten()
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit()));
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        _ => String::new(),
    }
}

/// The JSON body of every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong, written for a person.
    pub error: String,
}

/// An error answer of a local API: a status and a message for the caller.
/// Internal details belong in the log, not in `message`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the caller.
    pub message: String,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: logs `detail` and tells the caller only that it failed.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the service log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// Errors calling a local API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket cannot be reached.
    #[error("cannot connect to {}: {source} (is the service running, and may you use its socket?)", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// HTTP failed on the connection.
    #[error("local API request failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The service answered with an error.
    #[error("{message} (HTTP {status})")]
    Status {
        /// HTTP status.
        status: u16,
        /// The service's message.
        message: String,
    },
    /// The answer was too large.
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// The answer was not the JSON expected.
    #[error("unexpected answer from the service: {0}")]
    Decode(#[from] serde_json::Error),
}

fn error_message(bytes: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(bytes)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).chars().take(500).collect())
}

/// A client for one local API socket. Each request opens its own
/// connection: these are low-rate control calls.
#[derive(Debug, Clone)]
pub struct LocalClient {
    path: PathBuf,
}

impl LocalClient {
    /// A client for the socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Sends a request and returns the status and whole body.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let has_body = body.is_some();
        let resp = self
            .request(
                method,
                uri,
                has_body.then_some("application/json"),
                Full::new(Bytes::from(body.unwrap_or_default())),
            )
            .await?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|_| ClientError::TooLarge)?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Sends a request with any body (e.g. a streamed upload) and returns
    /// the response with its body unread (e.g. a streamed download).
    pub async fn request<B>(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: B,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream =
            UnixStream::connect(&self.path)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.path.clone(),
                    source,
                })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends when the response body is done.
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Ok(sender.send_request(req.body(body)?).await?)
    }

    /// Turns a non-2xx answer into [`ClientError::Status`] with the
    /// service's message.
    pub async fn check(
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(ClientError::Status {
            status,
            message: error_message(&bytes),
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.send(method, uri, body).await?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Status {
                status,
                message: error_message(&bytes),
            });
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// GET `uri`, decoding a JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, uri: &str) -> Result<T, ClientError> {
        self.json(Method::GET, uri, None).await
    }

    /// PUT with no body, decoding a JSON answer.
    pub async fn put<T: DeserializeOwned>(&self, uri: &str) -> Result<T, ClientError> {
        self.json(Method::PUT, uri, None).await
    }

    /// DELETE, decoding a JSON answer.
    pub async fn delete<T: DeserializeOwned>(&self, uri: &str) -> Result<T, ClientError> {
        self.json(Method::DELETE, uri, None).await
    }

    /// POST a JSON body to `uri`, decoding a JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        uri: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, uri, Some(serde_json::to_vec(body)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{extract::Path as UrlPath, routing::get};

    fn router() -> Router {
        Router::new()
            .route(
                "/hello/{name}",
                get(|UrlPath(name): UrlPath<String>| async move {
                    Json(serde_json::json!({ "hello": name }))
                }),
            )
            .route(
                "/boom",
                get(|| async { Err::<(), _>(ApiError::internal("secret db path /x/y")) }),
            )
            .route(
                "/echo",
                axum::routing::post(|Json(v): Json<serde_json::Value>| async move { Json(v) }),
            )
    }

    #[tokio::test]
    async fn serves_json_on_a_private_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/api.sock");
        let listener = bind(&path).await.unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router(), async {
            let _ = rx.await;
        }));
        let client = LocalClient::new(&path);
        let v: serde_json::Value = client.get("/hello/atoll").await.unwrap();
        assert_eq!(v["hello"], "atoll");
        let v: serde_json::Value = client
            .post("/echo", &serde_json::json!({"a": 1}))
            .await
            .unwrap();
        assert_eq!(v["a"], 1);
        // Internal details stay in the log.
        let err = client.get::<serde_json::Value>("/boom").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Status { status: 500, message } if !message.contains("/x/y")),
            "{err}"
        );
        let err = client.get::<serde_json::Value>("/nope").await.unwrap_err();
        assert!(matches!(err, ClientError::Status { status: 404, .. }));
        // A second server on a live socket is refused.
        assert_eq!(
            bind(&path).await.unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        // After a crash the stale socket file is replaced.
        assert!(path.exists());
        drop(bind(&path).await.unwrap());
    }

    /// A typed route: a bad body's error must not quote the body.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Typed {
        amount: u64,
    }

    async fn spawn_server() -> (
        tempfile::TempDir,
        PathBuf,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listener = bind(&path).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router().route(
            "/typed",
            axum::routing::post(|Json(t): Json<Typed>| async move { Json(t.amount) }),
        );
        // Short timeouts so the slow-client tests finish quickly.
        let timeouts = Timeouts {
            header: std::time::Duration::from_secs(1),
            body_idle: std::time::Duration::from_secs(1),
        };
        let server = tokio::spawn(serve_with(
            listener,
            app,
            async {
                let _ = rx.await;
            },
            timeouts,
        ));
        (dir, path, tx, server)
    }

    #[tokio::test]
    async fn bad_bodies_are_refused_without_echo() {
        let (_dir, path, tx, server) = spawn_server().await;
        let client = LocalClient::new(&path);
        for body in [
            r#"{"amount": "SECRET-cashuBxyz"}"#.to_owned(),
            r#"{"amount": 1, "SECRET-cashuBxyz": 2}"#.to_owned(),
            r#"{"amount": SECRET-cashuBxyz}"#.to_owned(),
            r#"["SECRET-cashuBxyz"]"#.to_owned(),
        ] {
            let (status, answer) = client
                .send(Method::POST, "/typed", Some(body.clone().into_bytes()))
                .await
                .unwrap();
            assert!((400..500).contains(&status), "{body}: {status}");
            let text = String::from_utf8_lossy(&answer);
            assert!(!text.contains("SECRET"), "{body} echoed: {text}");
            let err: ErrorBody = serde_json::from_slice(&answer).expect("a JSON error body");
            assert!(!err.error.is_empty());
        }
        // A JSON body over the limit is refused before it is read whole.
        let big = format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(1 << 20));
        let (status, answer) = client
            .send(Method::POST, "/typed", Some(big.into_bytes()))
            .await
            .unwrap();
        assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    /// Reads until the server closes the connection; returns what it sent.
    async fn read_until_closed(stream: &mut UnixStream) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_client_that_stalls_in_its_header_is_dropped() {
        use tokio::io::AsyncWriteExt;
        let (_dir, path, tx, server) = spawn_server().await;
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(b"GET /hello/x HTTP/1.1\r\nhost: local")
            .await
            .unwrap();
        // The server hangs up on its own (the guard only keeps a broken
        // server from hanging the test).
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            read_until_closed(&mut stream),
        )
        .await;
        assert!(
            closed.is_ok(),
            "a half-sent header kept the connection open"
        );
        // Graceful shutdown does not wait for such a client either.
        let mut stalled = UnixStream::connect(&path).await.unwrap();
        stalled.write_all(b"GET /hel").await.unwrap();
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(60), server)
            .await
            .expect("shutdown waited on a stalled client")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_dropped() {
        use tokio::io::AsyncWriteExt;
        let (_dir, path, tx, server) = spawn_server().await;
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(
                b"POST /echo HTTP/1.1\r\nhost: local\r\ncontent-type: application/json\r\n\
                  content-length: 100\r\n\r\n{\"a\": ",
            )
            .await
            .unwrap();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(90),
            read_until_closed(&mut stream),
        )
        .await;
        assert!(closed.is_ok(), "a stalled body kept the request open");
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn refuses_to_remove_a_regular_file_and_reports_missing_service() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-socket");
        fs::write(&path, b"data").unwrap();
        assert!(bind(&path).await.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"data");
        let err = LocalClient::new(dir.path().join("none.sock"))
            .get::<serde_json::Value>("/")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }));
        assert!(err.to_string().contains("is the service running"));
    }
}
