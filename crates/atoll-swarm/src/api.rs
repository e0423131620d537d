//! The swarm node's local control API (HTTP/JSON on a unix socket).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/status` | node id, addresses, usage |
//! | GET | `/blobs` | held blobs, most recently used first |
//! | POST | `/blobs` | add the request body as a blob (streamed; `?seed=false`: do not advertise it) |
//! | POST | `/blobs/import` | add a file from the node's import directories: `{"path": "…"}` (see [`crate::import`]; `?seed=false` too) |
//! | GET | `/blobs/{hex}` | the bytes, with `Range` support |
//! | DELETE | `/blobs/{hex}` | forget a blob (and withdraw its advert) |
//! | PUT/DELETE | `/blobs/{hex}/pin` | pin / unpin |
//! | PUT/DELETE | `/blobs/{hex}/seed` | seed / stop seeding |
//! | PUT/DELETE | `/blobs/{hex}/paid` | charge for it / serve it free (see [`crate::pay`]) |
//! | GET | `/payments` | revenue and spending: totals and entries, newest first |
//! | GET | `/blobs/{hex}/ticket` | a ticket for this node: `?format=collection` (default; what `sendme receive` takes) or `raw`, `&name=FILE` (default: the hex id) |
//! | POST | `/collections/resolve` | `{"ticket": "blob…"}` of a collection → its files' names and ids, read from the ticket's peer |
//! | POST | `/fetch` | fetch: `{"id": "blake3:…", "peers": [], "origins": []}` |
//! | GET | `/fetch/{hex}` | progress of a running fetch |
//!
//! JSON bodies are limited to 64 KiB and slow clients are dropped
//! ([`atoll_core::local_api::serve`]); only the upload streams.

use std::{io::SeekFrom, sync::Arc};

use atoll_core::{ContentId, local_api::ApiError};
use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use futures::TryStreamExt;
use iroh_blobs::{BlobFormat, ticket::BlobTicket};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{
    collection::CollectionError,
    fetch::{FetchError, FetchRequest},
    import::ImportError,
    node::{AdvertCmd, NodeState},
    store::{StoreError, hash_of},
};

type St = State<Arc<NodeState>>;

/// The API router over a node's state.
pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/blobs", get(list).post(upload))
        .route("/blobs/import", post(import))
        .route("/blobs/{hex}", get(read).delete(remove))
        .route("/blobs/{hex}/pin", put(pin).delete(unpin))
        .route("/blobs/{hex}/seed", put(seed).delete(unseed))
        .route("/blobs/{hex}/paid", put(paid).delete(unpaid))
        .route("/payments", get(payments))
        .route("/blobs/{hex}/ticket", get(ticket))
        .route("/collections/resolve", post(resolve))
        .route("/fetch", post(fetch))
        .route("/fetch/{hex}", get(fetch_progress))
        // JSON bodies get `local_api`'s small limit; the upload takes the
        // raw body, which streams into the store with no limit but the
        // disk (and the quota).
        .with_state(state)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(id) => ApiError::not_found(format!("{id} is not held here")),
        StoreError::Io { source, .. } => ApiError::bad_request(format!("cannot read: {source}")),
        other => ApiError::internal(other),
    }
}

fn parse_id(hex: &str) -> Result<ContentId, ApiError> {
    hex.strip_prefix(ContentId::PREFIX)
        .map_or_else(|| ContentId::from_hex(hex), ContentId::from_hex)
        .map_err(|e| ApiError::bad_request(format!("bad content id: {e}")))
}

async fn status(State(s): St) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.status().map_err(store_error)?))
}

async fn list(State(s): St) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.blobs().list().map_err(store_error)?))
}

/// Query of `POST /blobs` and `POST /blobs/import`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddQuery {
    /// Advertise the blob to peers. Default true; false: nothing is
    /// published until `PUT /blobs/{hex}/seed` (a blob already held and
    /// seeded stays seeded).
    pub seed: Option<bool>,
}

async fn upload(
    State(s): St,
    Query(q): Query<AddQuery>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    // The store wants a Sync stream: forward through a channel.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = futures::StreamExt::next(&mut stream).await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    let rx = tokio_stream_from(rx);
    let info = s
        .blobs()
        .add_stream(rx, q.seed.unwrap_or(true))
        .await
        .map_err(store_error)?;
    let info = s.added(info).await.map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(info)))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Body of `POST /blobs/import`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Absolute path of a regular file in one of the node's import
    /// directories (`import.dirs`).
    pub path: std::path::PathBuf,
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::Disabled
        | ImportError::OutsideImportDirs
        | ImportError::Forbidden
        | ImportError::Changed => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
        ImportError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        ImportError::Unreadable(ref io) if io.kind() == std::io::ErrorKind::NotFound => {
            ApiError::not_found("the file to import does not exist")
        }
        _ => ApiError::bad_request(e.to_string()),
    }
}

async fn import(
    State(s): St,
    Query(q): Query<AddQuery>,
    Json(req): Json<ImportRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let policy = s.import_policy().clone();
    let max = policy.max_bytes();
    let opened = tokio::task::spawn_blocking(move || policy.open(&req.path))
        .await
        .map_err(ApiError::internal)?
        .map_err(import_error)?;
    let info = s
        .blobs()
        .add_opened(opened, max, q.seed.unwrap_or(true))
        .await
        .map_err(|e| match e {
            e @ StoreError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            other => store_error(other),
        })?;
    let info = s.added(info).await.map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// A byte range request that cannot be satisfied.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a `Range` header for a blob of `size` bytes into an inclusive
/// `(first, last)` pair. `Ok(None)` means "send everything": no header,
/// a unit other than bytes, several ranges, or a malformed header (all of
/// which a server may ignore, RFC 9110 §14.2).
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ok(None),
        // Suffix: the last n bytes.
        (true, false) => match parse(b) {
            None => Ok(None),
            Some(0) => Err(Unsatisfiable),
            Some(_) if size == 0 => Err(Unsatisfiable),
            Some(n) => Ok(Some((size.saturating_sub(n), size - 1))),
        },
        (false, _) => {
            let Some(first) = parse(a) else {
                return Ok(None);
            };
            let last = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match parse(b) {
                    None => return Ok(None),
                    Some(l) if l < first => return Ok(None),
                    Some(l) => l.min(size.saturating_sub(1)),
                }
            };
            if first >= size {
                return Err(Unsatisfiable);
            }
            Ok(Some((first, last)))
        }
    }
}

async fn read(
    State(s): St,
    Path(hex): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&hex)?;
    let info = s
        .blobs()
        .get(&id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("{id} is not held here")))?;
    // Never serve a blob the store does not hold whole.
    let size = s
        .blobs()
        .complete_size(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("{id} is not complete here")))?;
    let _ = s.blobs().touch(&id);
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let etag = format!("\"{}\"", id.to_hex());
    let mut builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ETAG, &etag)
        // Content-addressed: the bytes behind this URL never change.
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    let (status, first, len) = match parse_range(range, size) {
        Err(Unsatisfiable) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .map_err(ApiError::internal);
        }
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((first, last))) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {first}-{last}/{size}"),
            );
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
    };
    let mut reader = s.blobs().store().blobs().reader(hash_of(&id));
    if first > 0 {
        reader
            .seek(SeekFrom::Start(first))
            .await
            .map_err(ApiError::internal)?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(reader.take(len), 64 * 1024);
    debug_assert!(info.size == size || info.size == 0);
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(len))
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// Answer of `DELETE /blobs/{hex}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Removed {
    /// Whether anything was held.
    pub removed: bool,
}

async fn remove(State(s): St, Path(hex): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&hex)?;
    let was_seeding = s.blobs().get(&id).ok().flatten().is_some_and(|b| b.seeding);
    let removed = s.blobs().remove(&id).await.map_err(store_error)?;
    if was_seeding {
        s.advert(AdvertCmd::Withdraw(id));
    }
    Ok(Json(Removed { removed }))
}

async fn pin(State(s): St, Path(hex): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        s.blobs()
            .set_pinned(&parse_id(&hex)?, true)
            .map_err(store_error)?,
    ))
}

async fn unpin(State(s): St, Path(hex): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        s.blobs()
            .set_pinned(&parse_id(&hex)?, false)
            .map_err(store_error)?,
    ))
}

async fn seed(State(s): St, Path(hex): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&hex)?;
    let info = s.blobs().set_seeding(&id, true).map_err(store_error)?;
    s.advert(AdvertCmd::Publish(id));
    Ok(Json(info))
}

async fn unseed(State(s): St, Path(hex): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&hex)?;
    let info = s.blobs().set_seeding(&id, false).map_err(store_error)?;
    s.advert(AdvertCmd::Withdraw(id));
    Ok(Json(info))
}

async fn paid(State(s): St, Path(hex): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        s.blobs()
            .set_paid(&parse_id(&hex)?, true)
            .map_err(store_error)?,
    ))
}

async fn unpaid(State(s): St, Path(hex): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        s.blobs()
            .set_paid(&parse_id(&hex)?, false)
            .map_err(store_error)?,
    ))
}

/// Answer of `GET /payments`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PaymentsAnswer {
    /// Sums.
    pub totals: crate::store::PaymentTotals,
    /// Every recorded payment, newest first.
    pub entries: Vec<crate::store::PaymentRecord>,
}

async fn payments(State(s): St) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(PaymentsAnswer {
        totals: s.blobs().payment_totals().map_err(store_error)?,
        entries: s.blobs().payments().map_err(store_error)?,
    }))
}

/// Answer of `GET /blobs/{hex}/ticket`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TicketAnswer {
    /// The iroh-blobs ticket.
    pub ticket: String,
}

/// What a ticket names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketFormat {
    /// A one-file collection (hash sequence + metadata naming the file):
    /// what `sendme receive` and other collection clients take, and what
    /// `atoll blob get --ticket` also reads.
    #[default]
    Collection,
    /// The raw blob: for iroh-blobs clients that fetch one blob by hash.
    Raw,
}

/// Query of `GET /blobs/{hex}/ticket`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    /// Default [`TicketFormat::Collection`].
    pub format: Option<TicketFormat>,
    /// The file's name in a collection (one plain name, no `/`). Default:
    /// the blob's hex id.
    pub name: Option<String>,
}

async fn ticket(
    State(s): St,
    Path(hex): Path<String>,
    Query(q): Query<TicketQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&hex)?;
    if s.blobs().get(&id).map_err(store_error)?.is_none() {
        return Err(ApiError::not_found(format!("{id} is not held here")));
    }
    let t = match q.format.unwrap_or_default() {
        TicketFormat::Raw => BlobTicket::new(s.endpoint().addr(), hash_of(&id), BlobFormat::Raw),
        TicketFormat::Collection => {
            let name = q.name.unwrap_or_else(|| id.to_hex());
            let seq = crate::collection::make(s.blobs(), &id, &name)
                .await
                .map_err(|e| match e {
                    CollectionError::BadName => ApiError::bad_request(e.to_string()),
                    other => ApiError::internal(other),
                })?;
            BlobTicket::new(s.endpoint().addr(), seq, BlobFormat::HashSeq)
        }
    };
    Ok(Json(TicketAnswer {
        ticket: t.to_string(),
    }))
}

/// Body of `POST /collections/resolve`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// A collection ticket (`blob…`, format hash sequence), e.g. from
    /// `sendme send` or `atoll blob ticket`.
    pub ticket: String,
}

/// One file of a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionEntry {
    /// The name its sender gave it, unchecked: check it before using it as
    /// a path ([`atoll_core::fsutil::safe_relative_path`]).
    pub name: String,
    /// Its content id.
    pub id: ContentId,
}

/// Answer of `POST /collections/resolve`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResolveAnswer {
    /// The files, in the collection's order.
    pub entries: Vec<CollectionEntry>,
}

async fn resolve(
    State(s): St,
    Json(req): Json<ResolveRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let ticket: BlobTicket = req
        .ticket
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("not a blob ticket"))?;
    if ticket.format() != BlobFormat::HashSeq {
        return Err(ApiError::bad_request(
            "this ticket names a single blob, not a collection",
        ));
    }
    let entries =
        crate::collection::read_remote(s.endpoint(), ticket.addr().clone(), ticket.hash())
            .await
            .map_err(|e| match e {
                CollectionError::NotACollection(_) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                }
                other => ApiError::new(StatusCode::BAD_GATEWAY, other.to_string()),
            })?;
    Ok(Json(ResolveAnswer {
        entries: entries
            .into_iter()
            .map(|e| CollectionEntry {
                name: e.name,
                id: e.id,
            })
            .collect(),
    }))
}

async fn fetch(State(s): St, Json(req): Json<FetchRequest>) -> Result<impl IntoResponse, ApiError> {
    for o in &req.origins {
        match reqwest::Url::parse(o) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "origin {o:?} is not an http(s) URL"
                )));
            }
        }
    }
    match s.fetch(req).await {
        Ok(out) => Ok(Json(out)),
        Err(FetchError::BadRequest(m)) => Err(ApiError::bad_request(m)),
        Err(e @ FetchError::Unavailable { .. }) => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn fetch_progress(
    State(s): St,
    Path(hex): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&hex)?;
    if !s.fetcher().in_flight().contains(&id) {
        return Err(ApiError::not_found(format!("no fetch of {id} in progress")));
    }
    let (progress, _) = s
        .fetcher()
        .start(FetchRequest {
            id: Some(id),
            ..Default::default()
        })
        .map_err(ApiError::internal)?;
    let p = progress.borrow().clone();
    Ok(Json(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(r("bytes=0-9"), Ok(Some((0, 9))));
        assert_eq!(r("bytes=90-"), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-10"), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-1000"), Ok(Some((0, 99))));
        assert_eq!(r("bytes=50-1000"), Ok(Some((50, 99))));
        assert_eq!(r("bytes=99-99"), Ok(Some((99, 99))));
        assert_eq!(r("bytes=100-"), Err(Unsatisfiable));
        assert_eq!(r("bytes=-0"), Err(Unsatisfiable));
        // Ignored (whole body): other units, lists, junk, reversed.
        for h in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
            "bytes=18446744073709551616-",
        ] {
            assert_eq!(r(h), Ok(None), "{h}");
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=-5"), 0), Err(Unsatisfiable));
    }
}
