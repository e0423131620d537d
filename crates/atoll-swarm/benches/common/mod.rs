//! What the benchmarks share: sizes, test data, store checks, figures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use iroh::{Endpoint, EndpointAddr};
use iroh_blobs::{Hash, api::Store};
use tokio::io::AsyncReadExt;

/// How long to wait for a daemon or an endpoint to come up.
pub(crate) const STARTUP: Duration = Duration::from_secs(30);

/// Buffer of the plain TCP copy and of file generation.
pub(crate) const COPY_BUF: usize = 1 << 20;

pub(crate) const MIB: u64 = 1 << 20;

/// `1073741824`, `256M`, `256MiB`, `1G`, `64k`.
pub(crate) fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().context("not a number")?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        other => bail!("unknown unit {other:?} (use K, M or G: binary multiples)"),
    };
    n.checked_mul(1 << shift).context("too large")
}

/// Writes `size` pseudo-random bytes to `path`; returns their BLAKE3 hash.
pub(crate) async fn write_data_file(path: PathBuf, size: u64, seed: u64) -> Result<blake3::Hash> {
    tokio::task::spawn_blocking(move || -> Result<blake3::Hash> {
        use std::io::Write;
        let mut file = std::fs::File::create(&path).with_context(|| path.display().to_string())?;
        let mut rng = Rng::new(seed);
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; COPY_BUF];
        let mut left = size;
        while left > 0 {
            let n = left.min(COPY_BUF as u64) as usize;
            rng.fill(&mut buf[..n]);
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        Ok(hasher.finalize())
    })
    .await?
}

/// BLAKE3 hash and length of a blob as a store reads it back.
pub(crate) async fn hash_in_store(store: &Store, hash: Hash) -> Result<(blake3::Hash, u64)> {
    let mut reader = store.blobs().reader(hash);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize(), hasher.count()))
}

pub(crate) async fn check_in_store(store: &Store, hash: Hash, size: u64, what: &str) -> Result<()> {
    let (got, len) = hash_in_store(store, hash).await?;
    ensure!(
        len == size && got.as_bytes() == hash.as_bytes(),
        "{what}: read back {len} bytes hashing to {got}, expected {size} bytes of {hash}"
    );
    Ok(())
}

/// Flushes dirty pages (`sync(1)`), so a transfer does not compete with
/// the writeback of the one before.
pub(crate) async fn settle() {
    let synced = tokio::process::Command::new("sync").status().await;
    if !synced.is_ok_and(|s| s.success()) {
        eprintln!("    (sync failed: writeback may overlap the next transfer)");
    }
}

/// The endpoint's address once it has a direct one.
pub(crate) async fn direct_addr(ep: &Endpoint) -> Result<EndpointAddr> {
    let deadline = Instant::now() + STARTUP;
    loop {
        let a = ep.addr();
        if a.ip_addrs().next().is_some() {
            return Ok(a);
        }
        ensure!(Instant::now() < deadline, "endpoint has no direct address");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn median(v: &[Duration]) -> Duration {
    percentile(v, 0.5)
}

/// Nearest-rank percentile (`p` in 0..=1) of a non-empty list.
pub(crate) fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

pub(crate) fn mbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64().max(1e-9)
}

pub(crate) fn range(bytes: u64, runs: &[Duration]) -> String {
    let (Some(fast), Some(slow)) = (runs.iter().min(), runs.iter().max()) else {
        return String::new();
    };
    format!("{:.1}..{:.1}", mbps(bytes, *slow), mbps(bytes, *fast))
}

pub(crate) fn secs(t: Duration) -> String {
    format!("{:.2} s", t.as_secs_f64())
}

pub(crate) fn millis(t: Duration) -> String {
    format!("{:.2} ms", t.as_secs_f64() * 1e3)
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// xorshift64*: fast, incompressible-looking bytes (not zeros).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

pub(crate) const ENV_QUICK: &str = "ATOLL_BENCH_QUICK";
pub(crate) const ENV_BYTES: &str = "ATOLL_BENCH_BYTES";
pub(crate) const ENV_ROUNDS: &str = "ATOLL_BENCH_ROUNDS";

/// Runs a benchmark's `main`: nothing when a test runner lists targets or
/// runs without `--bench` (`cargo test --benches`), else `run` on a
/// multi-threaded runtime.
pub(crate) fn bench_main<F>(name: &str, run: impl FnOnce(Common) -> Result<F>) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    let args: Vec<String> = std::env::args().collect();
    // Test runners list targets first: there are no tests in here.
    if args.iter().any(|a| a == "--list") {
        return Ok(());
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "{name} benchmark skipped: run it with `cargo bench -p atoll-swarm --bench {name}`"
        );
        return Ok(());
    }
    let common = Common::from_env()?;
    let fut = run(common)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(fut)
}

/// The settings every benchmark takes from the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common {
    /// `ATOLL_BENCH_QUICK`: a smoke run.
    pub quick: bool,
    /// `ATOLL_BENCH_BYTES`: size of the throughput blob (1 GiB, quick 64 MiB).
    pub bytes: u64,
    /// `ATOLL_BENCH_ROUNDS`: throughput rounds (3, quick 1).
    pub rounds: usize,
}

impl Common {
    fn from_env() -> Result<Self> {
        let quick = std::env::var(ENV_QUICK).is_ok_and(|v| !v.is_empty() && v != "0");
        let bytes = match std::env::var(ENV_BYTES) {
            Ok(v) => parse_size(&v).with_context(|| format!("{ENV_BYTES}={v:?}"))?,
            Err(_) if quick => 64 * MIB,
            Err(_) => 1024 * MIB,
        };
        ensure!(bytes > 0, "{ENV_BYTES} must be at least 1 byte");
        Ok(Self {
            quick,
            bytes,
            rounds: env_count(quick, ENV_ROUNDS, 3, 1)?,
        })
    }

    /// A count from the environment variable `name` (at least 1), else
    /// `default` (`quick_default` in a quick run).
    pub(crate) fn count(&self, name: &str, default: usize, quick_default: usize) -> Result<usize> {
        env_count(self.quick, name, default, quick_default)
    }
}

fn env_count(quick: bool, name: &str, default: usize, quick_default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => {
            let n: usize = v.trim().parse().with_context(|| format!("{name}={v:?}"))?;
            ensure!(n > 0, "{name} must be at least 1");
            Ok(n)
        }
        Err(_) => Ok(if quick { quick_default } else { default }),
    }
}
