//! The swarm benchmark: everything on 127.0.0.1, in one run, printed as
//! tables.
//!
//! 1. Throughput of one large blob (default 1 GiB): an Atoll fetch between
//!    two in-process nodes, next to a stock iroh-blobs transfer between two
//!    plain endpoints with `FsStore`s and a plain TCP copy into a file, all
//!    of the same bytes; printed as MB/s and as ratios.
//! 2. Time to first verified byte of a 4 MiB blob, and its full fetch time,
//!    for Atoll and for stock iroh-blobs (median over fresh blobs).
//! 3. Memory of the real `atoll-swarmd` while it holds and seeds 10,000
//!    small blobs added through its local API (VmRSS, VmHWM).
//!
//! Run: `cargo bench -p atoll-swarm --bench swarm`. Speed and memory
//! targets live here, never in timed test assertions.
//!
//! Environment (all optional):
//! - `ATOLL_BENCH_QUICK=1`: a smoke run (64 MiB, 1 round, 5 TTFB runs,
//!   1,000 blobs).
//! - `ATOLL_BENCH_BYTES`: size of the throughput blob, in bytes or with a
//!   binary suffix (`256M`, `1G`, `512MiB`).
//! - `ATOLL_BENCH_ROUNDS`: throughput rounds (median is reported).
//! - `ATOLL_BENCH_TTFB_RUNS`: fresh 4 MiB blobs for the TTFB median.
//! - `ATOLL_BENCH_BLOBS`: blobs added to the daemon for the memory figure.
//! - `TMPDIR`: where the data and stores live (disk vs tmpfs matters).
//!
//! Every transferred blob is checked against its BLAKE3 hash after the
//! timed part. Under `cargo test --benches` (no `--bench` argument) the
//! benchmark does not run.

use std::{
    net::SocketAddr,
    ops::Deref,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use atoll_core::{ContentId, local_api::LocalClient, net::endpoint_builder};
use atoll_swarm::{
    FetchRequest, Node, Source, Status, SwarmConfig,
    store::{BlobInfo, hash_of},
};
use futures::StreamExt;
use iroh::{Endpoint, EndpointAddr, SecretKey, protocol::Router};
use iroh_blobs::{BlobsProtocol, Hash, api::Store, store::fs::FsStore, store::mem::MemStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod common;
use common::*;

const ENV_TTFB_RUNS: &str = "ATOLL_BENCH_TTFB_RUNS";
const ENV_BLOBS: &str = "ATOLL_BENCH_BLOBS";

/// Size of the TTFB blob.
const TTFB_BLOB: usize = 4 << 20;
/// Smallest and largest blob added to the daemon in the memory run.
const SMALL_BLOB_MIN: usize = 1 << 10;
const SMALL_BLOB_MAX: usize = 64 << 10;
/// Uploads in flight at once against the daemon's API.
const UPLOAD_CONCURRENCY: usize = 4;

fn main() -> Result<()> {
    bench_main("swarm", |common| Ok(run(Settings::from_env(common)?)))
}

/// What to run, from the environment.
#[derive(Debug)]
struct Settings {
    common: Common,
    ttfb_runs: usize,
    blobs: usize,
}

impl Settings {
    fn from_env(common: Common) -> Result<Self> {
        let count = |name, default, quick_default| common.count(name, default, quick_default);
        Ok(Self {
            common,
            ttfb_runs: count(ENV_TTFB_RUNS, 20, 5)?,
            blobs: count(ENV_BLOBS, 10_000, 1_000)?,
        })
    }
}

async fn run(s: Settings) -> Result<()> {
    let tmp = std::env::temp_dir();
    println!();
    println!("Atoll swarm benchmark");
    println!(
        "  profile {}, {} cores, data under {}{}",
        if cfg!(debug_assertions) {
            "DEBUG (numbers are meaningless)"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        tmp.display(),
        if s.common.quick { ", quick mode" } else { "" },
    );
    println!("  MB = 10^6 bytes; every transfer is BLAKE3-checked after the clock stops");
    let started = Instant::now();
    throughput(&s).await.context("throughput")?;
    ttfb(&s).await.context("time to first byte")?;
    memory(&s).await.context("daemon memory")?;
    println!();
    println!("  total bench time {}", secs(started.elapsed()));
    Ok(())
}

// ---------------------------------------------------------------------
// Test data

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// BLAKE3 hash and length of a file.
async fn hash_file(path: PathBuf) -> Result<(blake3::Hash, u64)> {
    tokio::task::spawn_blocking(move || -> Result<(blake3::Hash, u64)> {
        let file = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(file)?;
        Ok((hasher.finalize(), hasher.count()))
    })
    .await?
}

// ---------------------------------------------------------------------
// Peers

/// An Atoll node on loopback with no local API socket.
async fn atoll_node(state_dir: &Path) -> Result<Node> {
    let mut config = SwarmConfig::default();
    config.node.bind = SocketAddr::from(([127, 0, 0, 1], 0)).into();
    Ok(Node::builder(config, state_dir).spawn().await?)
}

/// A plain iroh endpoint on loopback: no relay, no discovery.
async fn plain_endpoint(accept_blobs: bool) -> Result<Endpoint> {
    let mut builder = endpoint_builder(SecretKey::generate(), None);
    if accept_blobs {
        builder = builder.alpns(vec![iroh_blobs::ALPN.to_vec()]);
    }
    builder
        .bind_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| anyhow::anyhow!("bind address: {e}"))?
        .bind()
        .await
        .map_err(|e| anyhow::anyhow!("bind endpoint: {e}"))
}

/// A stock iroh-blobs provider: endpoint, `FsStore`, `BlobsProtocol`.
struct StockSender {
    store: FsStore,
    router: Router,
    addr: EndpointAddr,
}

impl StockSender {
    async fn spawn(dir: &Path) -> Result<Self> {
        let store = FsStore::load(dir).await?;
        let ep = plain_endpoint(true).await?;
        let router = Router::builder(ep.clone())
            .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store, None))
            .spawn();
        let addr = direct_addr(&ep).await?;
        Ok(Self {
            store,
            router,
            addr,
        })
    }

    async fn shutdown(self) -> Result<()> {
        // Shutting the router down also shuts the store down.
        self.router.shutdown().await?;
        Ok(())
    }
}

/// A stock iroh-blobs downloader: an endpoint and a store (`FsStore`, or
/// `MemStore` as a no-disk control).
struct StockReceiver<S> {
    store: S,
    ep: Endpoint,
}

impl StockReceiver<FsStore> {
    async fn spawn(dir: &Path) -> Result<Self> {
        Ok(Self {
            store: FsStore::load(dir).await?,
            ep: plain_endpoint(false).await?,
        })
    }
}

impl StockReceiver<MemStore> {
    async fn in_memory() -> Result<Self> {
        Ok(Self {
            store: MemStore::new(),
            ep: plain_endpoint(false).await?,
        })
    }
}

impl<S: Deref<Target = Store>> StockReceiver<S> {
    /// Dials `from` and fetches the whole blob (what a ticket download
    /// does).
    async fn fetch(&self, from: &EndpointAddr, hash: Hash) -> Result<u64> {
        let conn = self.ep.connect(from.clone(), iroh_blobs::ALPN).await?;
        let stats = self
            .store
            .remote()
            .fetch(conn.clone(), hash)
            .complete()
            .await?;
        conn.close(0u32.into(), b"done");
        Ok(stats.payload_bytes_read)
    }

    /// Like [`Self::fetch`], also timing the first verified bytes.
    async fn timed_fetch(&self, from: &EndpointAddr, hash: Hash) -> Result<(Duration, Duration)> {
        let watch = FirstBytes::watch(&self.store, hash).await?;
        let t = Instant::now();
        let first = tokio::spawn(watch.wait(t));
        self.fetch(from, hash).await?;
        let full = t.elapsed();
        let first = first.await??;
        check_in_store(&self.store, hash, TTFB_BLOB as u64, "iroh-blobs").await?;
        Ok((first, full))
    }

    async fn shutdown(self) -> Result<()> {
        self.store.shutdown().await?;
        self.ep.close().await;
        Ok(())
    }
}

fn fetch_request(id: ContentId, from: &EndpointAddr) -> FetchRequest {
    FetchRequest {
        id: Some(id),
        peers: vec![from.clone()],
        no_adverts: true,
        ..FetchRequest::default()
    }
}

// ---------------------------------------------------------------------
// 1. Throughput

async fn throughput(s: &Settings) -> Result<()> {
    let size = s.common.bytes;
    let dir = tempfile::Builder::new()
        .prefix("atoll-bench-tput")
        .tempdir()?;
    let data = dir.path().join("data.bin");
    eprintln!("[1] generating {} of test data…", mib(size));
    let expected = write_data_file(data.clone(), size, 1).await?;
    let id = ContentId::from(expected);
    let hash = hash_of(&id);

    // Senders: the same file imported (copied) into each store.
    let a = atoll_node(&dir.path().join("atoll-a")).await?;
    let t = Instant::now();
    let info = a.state().blobs().add_file(&data).await?;
    let atoll_import = t.elapsed();
    ensure!(
        info.id == id && info.size == size,
        "Atoll import: wrong blob {}",
        info.id
    );
    let a_addr = direct_addr(a.state().endpoint()).await?;

    let stock = StockSender::spawn(&dir.path().join("stock-a")).await?;
    let t = Instant::now();
    let tt = stock.store.blobs().add_path(&data).temp_tag().await?;
    let stock_import = t.elapsed();
    ensure!(
        tt.hash() == hash,
        "iroh-blobs import: wrong hash {}",
        tt.hash()
    );

    let (mut atoll, mut iroh, mut tcp) = (Vec::new(), Vec::new(), Vec::new());
    // Each round starts with a different path, and dirty pages are
    // flushed before each transfer, so no path pays for another's writes.
    const PATHS: [&str; 3] = ["Atoll", "iroh-blobs", "TCP"];
    for round in 0..s.common.rounds {
        let order: Vec<usize> = (0..PATHS.len())
            .map(|i| (i + round) % PATHS.len())
            .collect();
        let names: Vec<&str> = order.iter().map(|&i| PATHS[i]).collect();
        eprintln!(
            "[1] round {}/{}: {}…",
            round + 1,
            s.common.rounds,
            names.join(", ")
        );
        for path in order {
            settle().await;
            match path {
                0 => atoll.push(
                    atoll_round(&a_addr, id, size, &dir.path().join("atoll-b"))
                        .await
                        .context("Atoll")?,
                ),
                1 => iroh.push(
                    stock_round(&stock.addr, hash, size, &dir.path().join("stock-b"))
                        .await
                        .context("iroh-blobs")?,
                ),
                _ => tcp.push(
                    tcp_round(&data, dir.path(), expected, size)
                        .await
                        .context("plain TCP")?,
                ),
            }
        }
    }
    drop(tt);
    stock.shutdown().await?;
    a.shutdown().await;

    let (atoll_m, iroh_m, tcp_m) = (median(&atoll), median(&iroh), median(&tcp));
    println!();
    println!(
        "1. Throughput: one {} blob over 127.0.0.1 (median of {} round{}, dial included)",
        mib(size),
        s.common.rounds,
        if s.common.rounds == 1 { "" } else { "s" }
    );
    println!(
        "   {:<44} {:>9} {:>10} {:>20}",
        "path", "MB/s", "time", "range MB/s"
    );
    for (name, runs, m) in [
        ("Atoll: node B FetchRequest{peers:[A]}", &atoll, atoll_m),
        ("iroh-blobs: FsStore -> remote().fetch", &iroh, iroh_m),
        ("plain TCP: tokio TcpStream -> file", &tcp, tcp_m),
    ] {
        println!(
            "   {:<44} {:>9.1} {:>10} {:>20}",
            name,
            mbps(size, m),
            secs(m),
            range(size, runs)
        );
    }
    println!(
        "   {:<44} {:>9.2}",
        "ratio Atoll / iroh-blobs",
        mbps(size, atoll_m) / mbps(size, iroh_m)
    );
    println!(
        "   {:<44} {:>9.2}",
        "ratio Atoll / plain TCP",
        mbps(size, atoll_m) / mbps(size, tcp_m)
    );
    println!(
        "   (source import into the store, add_path copy: Atoll {:.1} MB/s, iroh-blobs {:.1} MB/s)",
        mbps(size, atoll_import),
        mbps(size, stock_import)
    );
    Ok(())
}

async fn atoll_round(
    from: &EndpointAddr,
    id: ContentId,
    size: u64,
    dir: &Path,
) -> Result<Duration> {
    let b = atoll_node(dir).await?;
    let t = Instant::now();
    let out = b.state().fetch(fetch_request(id, from)).await?;
    let elapsed = t.elapsed();
    ensure!(
        out.size == size,
        "fetched {} bytes, expected {size}",
        out.size
    );
    ensure!(
        matches!(out.source, Source::Peers(_)),
        "source was {:?}",
        out.source
    );
    check_in_store(b.state().blobs().store(), hash_of(&id), size, "Atoll").await?;
    b.shutdown().await;
    std::fs::remove_dir_all(dir)?;
    Ok(elapsed)
}

async fn stock_round(from: &EndpointAddr, hash: Hash, size: u64, dir: &Path) -> Result<Duration> {
    let rx = StockReceiver::spawn(dir).await?;
    let t = Instant::now();
    let read = rx.fetch(from, hash).await?;
    let elapsed = t.elapsed();
    ensure!(read == size, "read {read} payload bytes, expected {size}");
    check_in_store(&rx.store, hash, size, "iroh-blobs").await?;
    rx.shutdown().await?;
    std::fs::remove_dir_all(dir)?;
    Ok(elapsed)
}

async fn tcp_round(data: &Path, dir: &Path, expected: blake3::Hash, size: u64) -> Result<Duration> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let out = dir.join("tcp.out");
    let dst = out.clone();
    let receiver = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await?;
        let mut file = tokio::fs::File::create(&dst).await?;
        let n = copy_chunks(&mut sock, &mut file).await?;
        file.flush().await?;
        anyhow::Ok(n)
    });
    let t = Instant::now();
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let mut src = tokio::fs::File::open(data).await?;
    copy_chunks(&mut src, &mut sock).await?;
    sock.shutdown().await?;
    let received = receiver.await??;
    let elapsed = t.elapsed();
    ensure!(
        received == size,
        "received {received} bytes, expected {size}"
    );
    let (got, len) = hash_file(out.clone()).await?;
    ensure!(got == expected && len == size, "TCP copy: wrong bytes");
    std::fs::remove_file(&out)?;
    Ok(elapsed)
}

/// Copies in whole `COPY_BUF` chunks (a full buffer per file operation).
async fn copy_chunks<R, W>(r: &mut R, w: &mut W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = r.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled > 0 {
            w.write_all(&buf[..filled]).await?;
            total += filled as u64;
        }
        if filled < buf.len() {
            return Ok(total);
        }
    }
}

// ---------------------------------------------------------------------
// 2. Time to first byte

async fn ttfb(s: &Settings) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("atoll-bench-ttfb")
        .tempdir()?;
    let a = atoll_node(&dir.path().join("atoll-a")).await?;
    let b = atoll_node(&dir.path().join("atoll-b")).await?;
    let a_addr = direct_addr(a.state().endpoint()).await?;
    let stock = StockSender::spawn(&dir.path().join("stock-a")).await?;
    let rx = StockReceiver::spawn(&dir.path().join("stock-b")).await?;
    let mem = StockReceiver::in_memory().await?;
    eprintln!("[2] {} fresh 4 MiB blobs…", s.ttfb_runs);

    let (mut atoll_first, mut atoll_full) = (Vec::new(), Vec::new());
    let (mut iroh_first, mut iroh_full) = (Vec::new(), Vec::new());
    let (mut mem_first, mut mem_full) = (Vec::new(), Vec::new());
    let mut tags = Vec::new();
    for run in 0..s.ttfb_runs {
        let bytes = random_bytes(TTFB_BLOB, 1_000 + run as u64);
        let id = ContentId::of(&bytes);
        let hash = hash_of(&id);
        a.state().blobs().add_bytes(bytes.clone()).await?;
        tags.push(stock.store.blobs().add_bytes(bytes).temp_tag().await?);

        // Atoll: the node's own fetch path; first bytes seen in B's store.
        let store = b.state().blobs().store();
        let watch = FirstBytes::watch(store, hash).await?;
        let t = Instant::now();
        let (_progress, done) = b.state().fetcher().start(fetch_request(id, &a_addr))?;
        let first = tokio::spawn(watch.wait(t));
        let out = done.await?;
        atoll_full.push(t.elapsed());
        atoll_first.push(first.await??);
        ensure!(
            out.size == TTFB_BLOB as u64,
            "Atoll fetched {} bytes",
            out.size
        );
        check_in_store(store, hash, TTFB_BLOB as u64, "Atoll").await?;

        // Stock iroh-blobs: dial and fetch the whole blob, into an
        // FsStore, then (control: no disk) into a MemStore.
        let (first, full) = rx.timed_fetch(&stock.addr, hash).await?;
        iroh_first.push(first);
        iroh_full.push(full);
        let (first, full) = mem.timed_fetch(&stock.addr, hash).await?;
        mem_first.push(first);
        mem_full.push(full);
    }
    drop(tags);
    rx.shutdown().await?;
    mem.shutdown().await?;
    stock.shutdown().await?;
    a.shutdown().await;
    b.shutdown().await;

    println!();
    println!(
        "2. Time to first verified byte of a 4 MiB blob (median of {} fresh blobs, new connection each)",
        s.ttfb_runs
    );
    println!(
        "   {:<44} {:>11} {:>11} {:>11} {:>9}",
        "path", "first byte", "p90", "full 4 MiB", "MB/s"
    );
    for (name, first, full) in [
        (
            "Atoll: Fetcher::start, watch B's store",
            &atoll_first,
            &atoll_full,
        ),
        ("iroh-blobs: dial + remote().fetch", &iroh_first, &iroh_full),
        (
            "  control: same into a MemStore (no disk)",
            &mem_first,
            &mem_full,
        ),
    ] {
        println!(
            "   {:<44} {:>11} {:>11} {:>11} {:>9.1}",
            name,
            millis(median(first)),
            millis(percentile(first, 0.9)),
            millis(median(full)),
            mbps(TTFB_BLOB as u64, median(full))
        );
    }
    println!("   (first byte: the receiving store's bitfield shows a first verified chunk group)");
    Ok(())
}

/// Watches a store for the first verified bytes of one blob.
struct FirstBytes {
    stream: futures::stream::BoxStream<'static, iroh_blobs::api::proto::Bitfield>,
}

impl FirstBytes {
    /// Subscribes and reads the initial state, which must be empty.
    async fn watch(store: &Store, hash: Hash) -> Result<Self> {
        let mut stream = store.blobs().observe(hash).stream().await?.boxed();
        let initial = stream.next().await.context("observe: no initial state")?;
        ensure!(initial.ranges.is_empty(), "{hash} is already present");
        Ok(Self { stream })
    }

    /// Time from `start` until a first verified chunk is in the store.
    async fn wait(mut self, start: Instant) -> Result<Duration> {
        while let Some(bitfield) = self.stream.next().await {
            if !bitfield.ranges.is_empty() {
                return Ok(start.elapsed());
            }
        }
        bail!("observe stream ended before any bytes arrived")
    }
}

// ---------------------------------------------------------------------
// 3. Memory of the daemon

async fn memory(s: &Settings) -> Result<()> {
    let daemon = Daemon::start().await?;
    let client = daemon.client();
    let status: Status = client.get("/status").await?;
    ensure!(
        status.blobs == 0,
        "fresh daemon holds {} blobs",
        status.blobs
    );
    let idle = daemon.mem()?;

    eprintln!("[3] adding {} blobs through POST /blobs…", s.blobs);
    let sizes: Vec<usize> = (0..s.blobs).map(small_blob_size).collect();
    let total: u64 = sizes.iter().map(|&n| n as u64).sum();
    let t = Instant::now();
    let mut ids: Vec<ContentId> = futures::stream::iter(sizes.iter().enumerate())
        .map(|(i, &len)| {
            let client = client.clone();
            async move {
                let bytes = random_bytes(len, 1_000_000 + i as u64);
                let want = ContentId::of(&bytes);
                let (code, body) = client
                    .send(hyper::Method::POST, "/blobs", Some(bytes))
                    .await?;
                ensure!(
                    code == 201,
                    "POST /blobs: HTTP {code}: {}",
                    String::from_utf8_lossy(&body)
                );
                let info: BlobInfo = serde_json::from_slice(&body)?;
                ensure!(info.id == want, "POST /blobs stored {} for {want}", info.id);
                Ok(info.id)
            }
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .collect::<Vec<Result<ContentId>>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let add_time = t.elapsed();
    let status: Status = client.get("/status").await?;
    ensure!(
        status.blobs == s.blobs,
        "daemon lists {} blobs, expected {}",
        status.blobs,
        s.blobs
    );
    let added = daemon.mem()?;

    // Seeding: a peer fetches a sample of them over iroh-blobs.
    let sample = (s.blobs / 10).clamp(1, 1_000);
    eprintln!("[3] a peer fetches {sample} of them…");
    ids.sort();
    let t = Instant::now();
    fetch_sample(&status.addr, &ids, sample).await?;
    let serve_time = t.elapsed();
    let served = daemon.mem()?;
    drop(daemon);

    println!();
    println!(
        "3. Memory of atoll-swarmd holding and seeding {} blobs ({}..{} KiB, {} total)",
        s.blobs,
        SMALL_BLOB_MIN >> 10,
        SMALL_BLOB_MAX >> 10,
        mib(total)
    );
    println!(
        "   {:<44} {:>11} {:>11} {:>11}",
        "when", "VmRSS", "RssAnon", "VmHWM"
    );
    for (when, m) in [
        ("started, empty store".to_owned(), &idle),
        (format!("after adding {} blobs", s.blobs), &added),
        (format!("after a peer fetched {sample} of them"), &served),
    ] {
        println!(
            "   {:<44} {:>11} {:>11} {:>11}",
            when,
            in_mib(m.rss),
            in_mib(m.anon),
            in_mib(m.hwm)
        );
    }
    let per_blob = |m: &Mem| (m.rss.saturating_sub(idle.rss) as f64) * 1024.0 / s.blobs as f64;
    println!(
        "   {:<44} {:>11.0} B (after adding), {:.0} B (after serving)",
        "RSS growth per held blob",
        per_blob(&added),
        per_blob(&served)
    );
    println!(
        "   (adds: {:.0} blobs/s, {:.1} MB/s with {UPLOAD_CONCURRENCY} uploads in flight; \
         serving: {:.0} blobs/s to one peer)",
        s.blobs as f64 / add_time.as_secs_f64(),
        mbps(total, add_time),
        sample as f64 / serve_time.as_secs_f64()
    );
    Ok(())
}

fn small_blob_size(i: usize) -> usize {
    let span = (SMALL_BLOB_MAX - SMALL_BLOB_MIN + 1) as u64;
    SMALL_BLOB_MIN + (Rng::new(i as u64).next_u64() % span) as usize
}

/// Fetches `n` of `ids` (spread over the list) from `from` into memory.
async fn fetch_sample(from: &EndpointAddr, ids: &[ContentId], n: usize) -> Result<()> {
    ensure!(
        from.ip_addrs().next().is_some(),
        "daemon status has no direct address: {from:?}"
    );
    let ep = plain_endpoint(false).await?;
    let store = MemStore::new();
    let conn = ep.connect(from.clone(), iroh_blobs::ALPN).await?;
    let step = (ids.len() / n).max(1);
    for id in ids.iter().step_by(step).take(n) {
        // The fetch verifies every chunk against the hash.
        store
            .remote()
            .fetch(conn.clone(), hash_of(id))
            .complete()
            .await?;
    }
    conn.close(0u32.into(), b"done");
    store.shutdown().await?;
    ep.close().await;
    Ok(())
}

/// Memory figures of a process, in KiB.
#[derive(Debug, Default)]
struct Mem {
    rss: u64,
    anon: u64,
    hwm: u64,
}

fn read_mem(pid: u32) -> Result<Mem> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    let mut m = Mem::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let kb = || -> Result<u64> {
            let v = value.trim().trim_end_matches("kB").trim();
            v.parse().with_context(|| format!("{path}: {line:?}"))
        };
        match key {
            "VmRSS" => m.rss = kb()?,
            "RssAnon" => m.anon = kb()?,
            "VmHWM" => m.hwm = kb()?,
            _ => {}
        }
    }
    ensure!(m.rss > 0, "{path} has no VmRSS");
    Ok(m)
}

/// The real `atoll-swarmd` binary as a child process, killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    // Last, so the directory goes after the child is dead.
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start() -> Result<Self> {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_atoll-swarmd"));
        ensure!(
            bin.exists(),
            "{} is missing: run `cargo build --release -p atoll-swarm` first",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("atoll-bench-mem")
            .tempdir()?;
        let config = dir.path().join("swarmd.toml");
        std::fs::write(&config, "[node]\nbind = \"127.0.0.1:0\"\n")?;
        let state = dir.path().join("state");
        let run = dir.path().join("run");
        let log = dir.path().join("swarmd.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .arg("--runtime-dir")
            .arg(&run)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        // Nothing from this environment may change the daemon's config.
        for (key, _) in std::env::vars_os() {
            if key
                .to_string_lossy()
                .starts_with(atoll_swarm::config::ENV_PREFIX)
            {
                cmd.env_remove(&key);
            }
        }
        for key in [
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "STATE_DIRECTORY",
            "RUNTIME_DIRECTORY",
        ] {
            cmd.env_remove(key);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut daemon = Self {
            child,
            socket: run.join("swarmd.sock"),
            log,
            _dir: dir,
        };
        daemon.wait_ready().await?;
        Ok(daemon)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP;
        let client = self.client();
        loop {
            if let Some(code) = self.child.try_wait()? {
                bail!("atoll-swarmd exited with {code}:\n{}", self.log_tail());
            }
            if let Ok(status) = client.get::<Status>("/status").await
                && status.addr.ip_addrs().next().is_some()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "atoll-swarmd did not come up within {STARTUP:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn client(&self) -> LocalClient {
        LocalClient::new(&self.socket)
    }

    fn mem(&self) -> Result<Mem> {
        read_mem(self.child.id())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------
// Figures

fn in_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
