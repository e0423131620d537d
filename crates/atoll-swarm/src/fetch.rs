//! Fetching a blob: from peers (given, or found through seed adverts) with
//! iroh-blobs verified streaming, several peers in parallel by byte
//! segments; then from HTTP origins, whose bytes are BLAKE3-checked in a
//! temp file before they enter the store. Whatever the source, the result
//! is verified; a peer that fails or serves wrong bytes is dropped (and
//! avoided for a while) and its segment goes to another.
//!
//! Concurrent fetches of the same id share one download.
//!
//! A peer that refuses a paid blob may sell an allotment of it: when a
//! price cap and a wallet are configured, the fetcher negotiates with the
//! peers that failed, pays the first one within the cap through the wallet
//! and fetches from it (see [`crate::pay`]); otherwise the origins serve.

use std::{
    collections::{HashMap, VecDeque},
    ops::Range,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use atoll_core::ContentId;
use futures::{FutureExt, StreamExt, future::BoxFuture, future::Shared};
use iroh::{Endpoint, EndpointAddr, EndpointId, endpoint::Connection};
use iroh_blobs::protocol::{ChunkRanges, ChunkRangesExt, GetRequest};
use serde::{Deserialize, Serialize};
use tokio::{io::AsyncWriteExt, sync::watch};

use crate::{
    advert::Adverts,
    pay::{BuyerSettings, PAY_ALPN},
    store::{Blobs, PaymentRecord, hash_of},
};

/// Size of the byte segments handed to parallel peers (a multiple of the
/// 16 KiB chunk groups iroh-blobs verifies).
pub const SEGMENT: u64 = 4 << 20;
/// How long a peer that served wrong bytes (or failed mid-transfer) is
/// avoided.
pub const AVOID_FOR: Duration = Duration::from_secs(600);
/// How long a peer that could not be reached is avoided.
pub const AVOID_UNREACHABLE_FOR: Duration = Duration::from_secs(60);
/// Most peers downloaded from at once.
pub const MAX_PARALLEL_PEERS: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to fetch and where it may come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// The blob.
    pub id: Option<ContentId>,
    /// Peers to try first (from tickets or by hand).
    #[serde(default)]
    pub peers: Vec<EndpointAddr>,
    /// Full URLs of the blob at HTTP origins, tried after peers (before
    /// the configured origins).
    #[serde(default)]
    pub origins: Vec<String>,
    /// Skip the Nostr advert lookup.
    #[serde(default)]
    pub no_adverts: bool,
}

/// Where the bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "from")]
pub enum Source {
    /// Already held.
    Local,
    /// From these peers.
    Peers(Vec<String>),
    /// From this origin URL.
    Origin(String),
}

/// A finished fetch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchOutcome {
    /// The blob.
    pub id: ContentId,
    /// Its size.
    pub size: u64,
    /// Where it came from.
    pub source: Source,
    /// Peers that failed, with the reason (e.g. wrong bytes).
    pub failed_peers: Vec<(String, String)>,
    /// Origins that failed, with the reason.
    pub failed_origins: Vec<(String, String)>,
}

/// Progress of a fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// What is happening: `lookup`, `peers`, `origin`, `done`.
    pub phase: String,
    /// Verified bytes held so far.
    pub bytes: u64,
    /// Expected size, when known.
    pub total: Option<u64>,
}

/// A fetch that found no source with the right bytes.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Nobody had it, or everyone who claimed to failed.
    #[error("{id} could not be fetched: {}", summary(.failed_peers, .failed_origins, *.skipped))]
    Unavailable {
        /// The blob.
        id: ContentId,
        /// Advertised seeders skipped because they failed recently.
        skipped: usize,
        /// Peers tried and why each failed.
        failed_peers: Vec<(String, String)>,
        /// Origins tried and why each failed.
        failed_origins: Vec<(String, String)>,
    },
    /// The local store failed.
    #[error("local store: {0}")]
    Store(String),
    /// The request is malformed.
    #[error("bad fetch request: {0}")]
    BadRequest(String),
}

fn summary(peers: &[(String, String)], origins: &[(String, String)], skipped: usize) -> String {
    let mut parts: Vec<String> = peers
        .iter()
        .map(|(p, e)| format!("peer {p}: {e}"))
        .collect();
    parts.extend(origins.iter().map(|(o, e)| format!("origin {o}: {e}")));
    if skipped > 0 {
        parts.push(format!(
            "{skipped} advertised seeder(s) skipped because they failed recently"
        ));
    }
    if parts.is_empty() {
        return "no peer advertises it and no origin is configured".into();
    }
    parts.join("; ")
}

type SharedFetch = Shared<BoxFuture<'static, Result<FetchOutcome, FetchError>>>;

struct InFlight {
    progress: watch::Receiver<Progress>,
    done: SharedFetch,
}

/// Fetch settings.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// This node's iroh relays: also tried for a peer whose advert names
    /// none (a group's nodes share their relay).
    pub relays: Vec<iroh::RelayUrl>,
    /// Configured origin base URLs (`<base>/<hex>`).
    pub origins: Vec<String>,
    /// Idle timeout per peer.
    pub peer_timeout: Duration,
    /// Timeout per origin.
    pub origin_timeout: Duration,
    /// Largest origin body accepted.
    pub max_origin_bytes: u64,
    /// Where origin downloads are checked before import.
    pub tmp_dir: PathBuf,
    /// Paying peers that charge for a blob (none: never pay).
    pub buyer: Option<BuyerSettings>,
}

/// Fetches blobs into the node's store. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

struct Inner {
    endpoint: Endpoint,
    blobs: Blobs,
    adverts: Option<Adverts>,
    http: reqwest::Client,
    settings: FetchSettings,
    inflight: Mutex<HashMap<ContentId, InFlight>>,
    avoid: Mutex<HashMap<EndpointId, Instant>>,
}

impl Fetcher {
    /// A fetcher for `blobs` over `endpoint`.
    pub fn new(
        endpoint: Endpoint,
        blobs: Blobs,
        adverts: Option<Adverts>,
        settings: FetchSettings,
    ) -> Result<Self, FetchError> {
        // reqwest is built without a bundled crypto provider: use ring,
        // like iroh (a no-op when a provider is already installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| FetchError::Store(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                blobs,
                adverts,
                http,
                settings,
                inflight: Mutex::new(HashMap::new()),
                avoid: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Ids being fetched right now.
    pub fn in_flight(&self) -> Vec<ContentId> {
        self.inner
            .inflight
            .lock()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Peers currently avoided because they failed.
    pub fn avoided(&self) -> Vec<EndpointId> {
        let now = Instant::now();
        self.inner
            .avoid
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, t)| **t > now)
                    .map(|(k, _)| *k)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Starts (or joins) the fetch of `req.id`; returns its progress and
    /// its outcome.
    pub fn start(
        &self,
        req: FetchRequest,
    ) -> Result<(watch::Receiver<Progress>, SharedFetch), FetchError> {
        let id = req
            .id
            .ok_or_else(|| FetchError::BadRequest("no content id".into()))?;
        let mut map = self
            .inner
            .inflight
            .lock()
            .map_err(|_| FetchError::Store("fetch table poisoned".into()))?;
        if let Some(f) = map.get(&id) {
            return Ok((f.progress.clone(), f.done.clone()));
        }
        let (tx, rx) = watch::channel(Progress {
            phase: "lookup".into(),
            ..Progress::default()
        });
        let inner = self.inner.clone();
        let done: SharedFetch = async move {
            let result = inner.clone().run(id, req, tx).await;
            if let Ok(mut m) = inner.inflight.lock() {
                m.remove(&id);
            }
            result
        }
        .boxed()
        .shared();
        map.insert(
            id,
            InFlight {
                progress: rx.clone(),
                done: done.clone(),
            },
        );
        drop(map);
        // Drive it even if every caller goes away.
        tokio::spawn(done.clone());
        Ok((rx, done))
    }

    /// Fetches `req.id` and waits for the outcome.
    pub async fn fetch(&self, req: FetchRequest) -> Result<FetchOutcome, FetchError> {
        let (_progress, done) = self.start(req)?;
        done.await
    }
}

fn store_err(e: impl std::fmt::Display) -> FetchError {
    FetchError::Store(e.to_string())
}

impl Inner {
    async fn run(
        self: Arc<Self>,
        id: ContentId,
        req: FetchRequest,
        progress: watch::Sender<Progress>,
    ) -> Result<FetchOutcome, FetchError> {
        let mut outcome = FetchOutcome {
            id,
            size: 0,
            source: Source::Local,
            failed_peers: Vec::new(),
            failed_origins: Vec::new(),
        };
        self.blobs.protect(&id).await.map_err(store_err)?;
        if let Some(size) = self.blobs.complete_size(&id).await.map_err(store_err)? {
            return self.done(outcome, size, Source::Local, &progress);
        }

        // Peers: given ones first, then advertised ones.
        let me = self.endpoint.id();
        let mut peers: Vec<EndpointAddr> = Vec::new();
        let mut size_hint = None;
        let mut skipped = 0;
        for p in req.peers {
            if p.id != me && !peers.iter().any(|x| x.id == p.id) {
                peers.push(p);
            }
        }
        if !req.no_adverts
            && let Some(adverts) = &self.adverts
        {
            match adverts.lookup(&id).await {
                Ok(seeders) => {
                    let avoided = self.avoided_now();
                    for s in seeders {
                        if s.addr.id == me || peers.iter().any(|x| x.id == s.addr.id) {
                            continue;
                        }
                        if avoided.contains(&s.addr.id) {
                            skipped += 1;
                            continue;
                        }
                        size_hint = size_hint.or(Some(s.size));
                        peers.push(s.addr);
                    }
                }
                Err(e) => tracing::warn!(%id, "advert lookup failed: {e}"),
            }
        }

        // A peer with no relay in its address may still be reachable
        // through ours.
        for p in &mut peers {
            if p.relay_urls().next().is_none() {
                *p = p.clone().with_addrs(
                    self.settings
                        .relays
                        .iter()
                        .cloned()
                        .map(iroh::TransportAddr::Relay),
                );
            }
        }
        if !peers.is_empty() {
            progress.send_modify(|p| {
                p.phase = "peers".into();
                p.total = size_hint;
            });
            let mut served = self
                .clone()
                .fetch_peers(
                    id,
                    peers.clone(),
                    size_hint,
                    &progress,
                    &mut outcome.failed_peers,
                )
                .await;
            // Peers that refused may sell it: buy from one, within budget.
            if let Some(buyer) = &self.settings.buyer
                && self
                    .blobs
                    .complete_size(&id)
                    .await
                    .map_err(store_err)?
                    .is_none()
            {
                let refused: Vec<EndpointAddr> = peers
                    .into_iter()
                    .filter(|p| {
                        let pid = p.id.to_string();
                        outcome
                            .failed_peers
                            .iter()
                            .any(|(f, why)| *f == pid && !why.starts_with("connect:"))
                    })
                    .collect();
                for addr in refused {
                    let pid = addr.id;
                    match self.buy_from(id, addr, buyer).await {
                        Ok(()) => {
                            // Its refusal was "pay first"; it is settled.
                            let pid = pid.to_string();
                            outcome.failed_peers.retain(|(f, _)| *f != pid);
                            served.push(pid);
                            break;
                        }
                        Err(e) => {
                            tracing::info!(%id, peer = %pid, "not bought: {e}");
                            outcome.failed_peers.push((pid.to_string(), e));
                        }
                    }
                }
            }
            if let Some(size) = self.blobs.complete_size(&id).await.map_err(store_err)? {
                return self.done(outcome, size, Source::Peers(served), &progress);
            }
        }

        // Origins: the request's full URLs, then the configured bases.
        let mut urls = req.origins;
        urls.extend(
            self.settings
                .origins
                .iter()
                .map(|base| format!("{}/{}", base.trim_end_matches('/'), id.to_hex())),
        );
        for url in urls {
            progress.send_modify(|p| {
                p.phase = "origin".into();
                p.bytes = 0;
            });
            match self.fetch_origin(&id, &url, &progress).await {
                Ok(size) => {
                    return self.done(outcome, size, Source::Origin(url), &progress);
                }
                Err(e) => {
                    tracing::warn!(%id, %url, "origin failed: {e}");
                    outcome.failed_origins.push((url, e));
                }
            }
        }
        Err(FetchError::Unavailable {
            id,
            skipped,
            failed_peers: outcome.failed_peers,
            failed_origins: outcome.failed_origins,
        })
    }

    /// Buys an allotment of `id` from `addr` and fetches it from there.
    /// A peer that takes the payment and does not serve the whole blob is
    /// avoided, and its token taken back unless it redeemed it: the loss is
    /// at most one allotment.
    async fn buy_from(
        &self,
        id: ContentId,
        addr: EndpointAddr,
        buyer: &BuyerSettings,
    ) -> Result<(), String> {
        let pid = addr.id;
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.endpoint.connect(addr.clone(), PAY_ALPN),
        )
        .await
        .map_err(|_| "payment: connect timed out".to_owned())?
        .map_err(|e| format!("payment: connect: {e}"))?;
        let bought = crate::pay::buy(&conn, &id, buyer).await;
        conn.close(0u32.into(), b"done");
        let bought = match bought {
            Ok(None) => return Err("payment: the peer says it is free".into()),
            Ok(Some(bought)) => bought,
            Err((e, spent)) => {
                if let Some(record) = spent {
                    self.record_spending(&record);
                    self.avoid_peer(pid, AVOID_FOR);
                }
                return Err(format!("payment: {e}"));
            }
        };
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.endpoint.connect(addr, iroh_blobs::ALPN),
        )
        .await
        .map_err(|_| "paid, then: connect timed out".to_owned())
        .and_then(|r| r.map_err(|e| format!("paid, then: connect: {e}")));
        let result = match conn {
            Ok(conn) => {
                let r = idle_timeout(
                    self.blobs
                        .store()
                        .remote()
                        .fetch(conn.clone(), hash_of(&id)),
                    self.settings.peer_timeout,
                )
                .await;
                conn.close(0u32.into(), b"done");
                r.map_err(|e| format!("paid, then: {e}"))
            }
            Err(e) => Err(e),
        };
        let complete = matches!(self.blobs.complete_size(&id).await, Ok(Some(_)));
        let error = match result {
            Ok(_) if complete => {
                self.record_spending(&bought.record);
                if let Ok(mut m) = self.avoid.lock() {
                    m.remove(&pid);
                }
                return Ok(());
            }
            Ok(_) => "paid, then the blob was not served whole".to_owned(),
            Err(e) => e,
        };
        self.avoid_peer(pid, AVOID_FOR);
        match crate::pay::reclaim(&buyer.wallet_socket, &bought.token).await {
            Ok(()) => Err(format!("{error}; the unredeemed token was taken back")),
            Err(e) => {
                self.record_spending(&bought.record);
                // Redeemed by the peer (lost), or the wallet could not be
                // asked now (its sweep takes it back later if unredeemed).
                Err(format!("{error}; the token was not taken back ({e})"))
            }
        }
    }

    fn record_spending(&self, record: &PaymentRecord) {
        tracing::info!(id = %record.id, peer = %record.peer, sat = record.amount_sat, fee = record.fee_sat, "paid for an allotment");
        if let Err(e) = self.blobs.record_payment(record) {
            tracing::error!("recording spending: {e}");
        }
    }

    /// The blob is complete (`size` bytes, from `source`): list it and
    /// report the end.
    fn done(
        &self,
        mut outcome: FetchOutcome,
        size: u64,
        source: Source,
        progress: &watch::Sender<Progress>,
    ) -> Result<FetchOutcome, FetchError> {
        self.blobs.record(&outcome.id, size).map_err(store_err)?;
        outcome.size = size;
        outcome.source = source;
        progress.send_replace(Progress {
            phase: "done".into(),
            bytes: size,
            total: Some(size),
        });
        Ok(outcome)
    }

    fn avoided_now(&self) -> Vec<EndpointId> {
        let now = Instant::now();
        self.avoid
            .lock()
            .map(|mut m| {
                m.retain(|_, t| *t > now);
                m.keys().copied().collect()
            })
            .unwrap_or_default()
    }

    fn avoid_peer(&self, id: EndpointId, for_how_long: Duration) {
        if let Ok(mut m) = self.avoid.lock() {
            let until = Instant::now() + for_how_long;
            let entry = m.entry(id).or_insert(until);
            *entry = (*entry).max(until);
        }
    }

    /// Downloads from `peers` in parallel segments; returns the peers that
    /// served data. Failures are appended to `failed`.
    async fn fetch_peers(
        self: Arc<Self>,
        id: ContentId,
        peers: Vec<EndpointAddr>,
        size_hint: Option<u64>,
        progress: &watch::Sender<Progress>,
        failed: &mut Vec<(String, String)>,
    ) -> Vec<String> {
        let hash = hash_of(&id);
        // The order peers were given in (given ones first, then advertised).
        let order: Vec<EndpointId> = peers.iter().map(|p| p.id).collect();
        // Connect to up to MAX_PARALLEL_PEERS at once.
        let mut conns: Vec<(EndpointId, Connection)> = Vec::new();
        let dials = peers.into_iter().map(|addr| {
            let ep = self.endpoint.clone();
            async move {
                let pid = addr.id;
                let r =
                    tokio::time::timeout(CONNECT_TIMEOUT, ep.connect(addr, iroh_blobs::ALPN)).await;
                (pid, r)
            }
        });
        let mut dials = futures::stream::iter(dials).buffer_unordered(MAX_PARALLEL_PEERS * 2);
        while let Some((pid, r)) = dials.next().await {
            match r {
                Ok(Ok(conn)) => {
                    if conns.len() < MAX_PARALLEL_PEERS {
                        conns.push((pid, conn));
                    }
                }
                Ok(Err(e)) => {
                    failed.push((pid.to_string(), format!("connect: {e}")));
                    self.avoid_peer(pid, AVOID_UNREACHABLE_FOR);
                }
                Err(_) => {
                    failed.push((pid.to_string(), "connect: timed out".into()));
                    self.avoid_peer(pid, AVOID_UNREACHABLE_FOR);
                }
            }
        }
        drop(dials);
        if conns.is_empty() {
            return Vec::new();
        }
        // Dials finish in any order; whole-blob requests below go to peers
        // in the order they were given.
        conns.sort_by_key(|(pid, _)| order.iter().position(|p| p == pid));

        // Watch verified bytes grow.
        let watcher = {
            let blobs = self.blobs.clone();
            let progress = progress.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok(local) = blobs.store().remote().local(hash).await {
                        let bytes = local.local_bytes();
                        progress.send_modify(|p| p.bytes = bytes);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };

        let segments: VecDeque<Range<u64>> = match size_hint {
            Some(size) if size > SEGMENT && conns.len() > 1 => (0..size.div_ceil(SEGMENT))
                .map(|i| i * SEGMENT..((i + 1) * SEGMENT).min(size))
                .collect(),
            _ => VecDeque::new(),
        };
        let queue = Arc::new(Mutex::new(segments));
        let served = Arc::new(Mutex::new(Vec::<String>::new()));
        let failures = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let timeout = self.settings.peer_timeout;

        let workers = conns.iter().cloned().map(|(pid, conn)| {
            let this = self.clone();
            let queue = queue.clone();
            let served = served.clone();
            let failures = failures.clone();
            async move {
                let mut did_serve = false;
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(range) = next else { break };
                    let request = GetRequest::builder()
                        .root(ChunkRanges::bytes(range.clone()))
                        .build(hash);
                    let get = this
                        .blobs
                        .store()
                        .remote()
                        .execute_get(conn.clone(), request);
                    match tokio::time::timeout(timeout, get.complete()).await {
                        Ok(Ok(_)) => did_serve = true,
                        Ok(Err(e)) => {
                            if let Ok(mut q) = queue.lock() {
                                q.push_back(range);
                            }
                            this.peer_failed(&failures, pid, format!("{e}"));
                            return;
                        }
                        Err(_) => {
                            if let Ok(mut q) = queue.lock() {
                                q.push_back(range);
                            }
                            this.peer_failed(&failures, pid, "timed out".into());
                            return;
                        }
                    }
                }
                if did_serve && let Ok(mut s) = served.lock() {
                    s.push(pid.to_string());
                }
            }
        });
        futures::future::join_all(workers).await;

        // Whatever is still missing (unknown or wrong size hint, failed
        // segments): whole-blob requests, which fetch only missing ranges,
        // peer by peer.
        let bad: Vec<String> = failures
            .lock()
            .map(|f| f.iter().map(|(p, _)| p.clone()).collect())
            .unwrap_or_default();
        for (pid, conn) in &conns {
            if bad.contains(&pid.to_string()) {
                continue;
            }
            if matches!(self.blobs.complete_size(&id).await, Ok(Some(_))) {
                break;
            }
            let fetch = self.blobs.store().remote().fetch(conn.clone(), hash);
            match idle_timeout(fetch, timeout).await {
                Ok(stats) => {
                    if stats > 0
                        && let Ok(mut s) = served.lock()
                        && !s.contains(&pid.to_string())
                    {
                        s.push(pid.to_string());
                    }
                }
                Err(e) => self.peer_failed(&failures, *pid, e),
            }
        }
        watcher.abort();
        for (_, conn) in conns {
            conn.close(0u32.into(), b"done");
        }
        if let Ok(f) = failures.lock() {
            failed.extend(f.iter().cloned());
        }
        served.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn peer_failed(
        &self,
        failures: &Mutex<Vec<(String, String)>>,
        pid: EndpointId,
        reason: String,
    ) {
        tracing::warn!(peer = %pid, "peer failed: {reason}");
        self.avoid_peer(pid, AVOID_FOR);
        if let Ok(mut f) = failures.lock() {
            f.push((pid.to_string(), reason));
        }
    }

    /// Downloads `url` into a temp file, checks its BLAKE3 hash, and only
    /// then imports it. Returns the size.
    async fn fetch_origin(
        &self,
        id: &ContentId,
        url: &str,
        progress: &watch::Sender<Progress>,
    ) -> Result<u64, String> {
        let max = self.settings.max_origin_bytes;
        let work = async {
            let resp = self
                .http
                .get(url)
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status();
            if status != reqwest::StatusCode::OK {
                return Err(format!("HTTP {status}"));
            }
            if let Some(len) = resp.content_length() {
                if len > max {
                    return Err(format!("body of {len} bytes is over the {max}-byte limit"));
                }
                progress.send_modify(|p| p.total = Some(len));
            }
            std::fs::create_dir_all(&self.settings.tmp_dir)
                .map_err(|e| format!("temp dir: {e}"))?;
            let tmp = TempFile(self.settings.tmp_dir.join(format!(
                "origin-{}-{:x}",
                id.to_hex(),
                rand::random::<u64>()
            )));
            let mut file = tokio::fs::File::create(&tmp.0)
                .await
                .map_err(|e| format!("temp file: {e}"))?;
            let mut hasher = blake3::Hasher::new();
            let mut size = 0u64;
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| format!("body: {e}"))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(format!("body is over the {max}-byte limit"));
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| format!("writing temp file: {e}"))?;
                progress.send_modify(|p| p.bytes = size);
            }
            file.flush()
                .await
                .map_err(|e| format!("writing temp file: {e}"))?;
            drop(file);
            let got = ContentId::from(hasher.finalize());
            if got != *id {
                return Err(format!(
                    "served wrong bytes ({size} bytes hashing to {got})"
                ));
            }
            self.blobs
                .add_file(&tmp.0)
                .await
                .map_err(|e| format!("import: {e}"))?;
            Ok(size)
        };
        tokio::time::timeout(self.settings.origin_timeout, work)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

/// Runs an iroh-blobs fetch, failing if it takes longer than `timeout`.
async fn idle_timeout(
    fetch: iroh_blobs::api::remote::GetProgress,
    timeout: Duration,
) -> Result<u64, String> {
    match tokio::time::timeout(timeout, fetch.complete()).await {
        Ok(Ok(stats)) => Ok(stats.payload_bytes_read),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
