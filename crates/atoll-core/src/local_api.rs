//! The services' local control APIs: HTTP/JSON over unix sockets in the
//! runtime directory, guarded by file permissions (mode 0660: the owner and
//! the socket's group may call), and a small client for the CLI and for
//! service-to-service calls.

use std::{
    fs, io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
};

use axum::{
    Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::net::{UnixListener, UnixStream};

/// Mode of every local API socket: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// Largest response body the client reads, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

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

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn serve(
    listener: UnixListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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
