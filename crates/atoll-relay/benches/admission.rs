//! What admission costs: `cargo bench -p atoll-relay --bench admission`.
//!
//! 1. Token verification alone (`Verifier::verify`, `MemberAccess::decide`)
//!    on one thread.
//! 2. End to end: the relay runs in a child process on a single-threaded
//!    runtime (one core); the parent connects relay clients as fast as it
//!    can and measures admissions per second, then holds them all and reads
//!    the child's resident memory per connected client. Once with full
//!    verification (members only), once with admission off (`AllowAll`).
//!
//! Not run by the tests. Knobs: `ATOLL_BENCH_CLIENTS` (default 400),
//! `ATOLL_BENCH_CONCURRENCY` (default 16).

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use atoll_core::admission::{self, DEFAULT_MAX_SKEW, DEFAULT_TTL, Verifier};
use atoll_relay::{MemberAccess, Membership, Relay, RelaydConfig, limit::Rate};
use iroh::{RelayUrl, SecretKey, dns::DnsResolver};
use iroh_relay::{
    client::{Client, ClientBuilder},
    http::ProtocolVersion,
    server::ClientRequest,
    tls::{CaTlsConfig, default_provider},
};
use nostr::Keys;

const CHILD_ENV: &str = "ATOLL_BENCH_RELAY";

fn main() -> Result<()> {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        return child(&mode);
    }
    let clients: usize = env_or("ATOLL_BENCH_CLIENTS", 400);
    let concurrency: usize = env_or("ATOLL_BENCH_CONCURRENCY", 16);
    println!("== admission benchmark ({clients} clients, {concurrency} dialling at once) ==\n");
    micro()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let member = Keys::generate();
    let with = rt.block_on(end_to_end("members", &member, clients, concurrency))?;
    let without = rt.block_on(end_to_end("allow-all", &member, clients, concurrency))?;
    println!(
        "\n{:<28}{:>14}{:>14}{:>10}",
        "", "members only", "allow-all", "ratio"
    );
    println!(
        "{:<28}{:>14.0}{:>14.0}{:>10.2}",
        "admissions / s (1 core)",
        with.per_sec,
        without.per_sec,
        with.per_sec / without.per_sec
    );
    println!(
        "{:<28}{:>14.1}{:>14.1}{:>10.2}",
        "relay KiB / client",
        with.kib_per_client,
        without.kib_per_client,
        with.kib_per_client / without.kib_per_client
    );
    println!(
        "{:<28}{:>14.2}{:>14.2}",
        "mean connect (ms)", with.mean_connect_ms, without.mean_connect_ms
    );
    Ok(())
}

fn env_or(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Token checks alone, one thread.
fn micro() -> Result<()> {
    const URL: &str = "https://relay.example.org";
    const N: u32 = 3000;
    let signer = Keys::generate();
    let secret = SecretKey::generate();
    let token = admission::sign(&signer, URL, &secret.public(), DEFAULT_TTL)?;
    let verifier = Verifier::new(URL, DEFAULT_MAX_SKEW)?;
    let now = SystemTime::now();
    let start = Instant::now();
    for _ in 0..N {
        std::hint::black_box(verifier.verify(std::hint::black_box(&token), &secret.public(), now))?;
    }
    let verify = start.elapsed() / N;

    let membership = Membership::new(Keys::generate().public_key());
    membership.set_file_members(
        (0..10_000)
            .map(|_| Keys::generate().public_key())
            .chain([signer.public_key()])
            .collect(),
    );
    let access = MemberAccess::new(
        verifier.clone(),
        membership,
        Rate {
            burst: u32::MAX,
            per_sec: 1e9,
        },
    );
    let (parts, ()) = hyper::Request::builder()
        .uri(format!("{URL}/relay"))
        .header("authorization", format!("Bearer {token}"))
        .body(())?
        .into_parts();
    let req = ClientRequest::new(secret.public(), ProtocolVersion::V2, parts);
    let start = Instant::now();
    for _ in 0..N {
        std::hint::black_box(access.decide(&req, now))?;
    }
    let decide = start.elapsed() / N;

    // A refusal that fails before the signature: what a flood of junk costs.
    let junk = admission::sign(
        &signer,
        "https://other.example.org",
        &secret.public(),
        DEFAULT_TTL,
    )?;
    let start = Instant::now();
    for _ in 0..N {
        let _ = std::hint::black_box(verifier.verify(&junk, &secret.public(), now));
    }
    let cheap = start.elapsed() / N;
    println!(
        "token verify (valid):        {:>8.1} µs  ({:.0}/s)",
        us(verify),
        1e6 / us(verify)
    );
    println!(
        "decide (10k members):        {:>8.1} µs  ({:.0}/s)",
        us(decide),
        1e6 / us(decide)
    );
    println!(
        "verify, wrong URL (no sig):  {:>8.1} µs  ({:.0}/s)",
        us(cheap),
        1e6 / us(cheap)
    );
    println!("token size:                  {:>8} bytes", token.len());
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Figures {
    per_sec: f64,
    kib_per_client: f64,
    mean_connect_ms: f64,
}

/// The child: a relay on one core until stdin closes.
fn child(mode: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let dir = tempfile::tempdir()?;
        let members = dir.path().join("members");
        std::fs::write(&members, std::env::var("ATOLL_BENCH_MEMBER")?)?;
        let mut c = RelaydConfig::default();
        c.server.public_url = Some(url.clone());
        c.membership.owner = Some(Keys::generate().public_key().to_hex());
        c.membership.members_file = Some(members);
        c.admission.per_ip_burst = u32::MAX;
        c.admission.per_ip_per_second = u32::MAX;
        let mut b = Relay::builder(c).listener(listener);
        if mode == "allow-all" {
            b = b.admit_everyone();
        }
        let relay = b.spawn().await?;
        println!("URL {url}");
        std::io::stdout().flush()?;
        // Parent closes stdin when done.
        tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await?;
        relay.shutdown().await;
        anyhow::Ok(())
    })
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

async fn end_to_end(mode: &str, member: &Keys, n: usize, concurrency: usize) -> Result<Figures> {
    let mut child = ChildGuard(
        Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, mode)
            .env("ATOLL_BENCH_MEMBER", member.public_key().to_hex())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let pid = child.0.id();
    let stdout = child.0.stdout.take().context("child stdout")?;
    let line =
        tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next().transpose())
            .await??
            .context("child said nothing")?;
    let Some(url) = line.strip_prefix("URL ") else {
        bail!("child said {line:?}")
    };
    let url: RelayUrl = url.parse()?;

    // Tokens are made before the clock starts: signing is the client's cost.
    let jobs: Vec<(SecretKey, String)> = (0..n)
        .map(|_| {
            let s = SecretKey::generate();
            let t = admission::sign(member, url.as_str(), &s.public(), DEFAULT_TTL)?;
            Ok((s, t))
        })
        .collect::<Result<_>>()?;
    let tls = CaTlsConfig::default().client_config(default_provider())?;
    let resolver = DnsResolver::builder()
        .with_system_defaults()
        .disable_fallback()
        .build();
    // Warm up (first connection pays for lazy setup).
    let warm = SecretKey::generate();
    let warm_token = admission::sign(member, url.as_str(), &warm.public(), DEFAULT_TTL)?;
    drop(connect(&url, &warm, &warm_token, &tls, &resolver).await?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib(pid)?;

    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (secret, token) in jobs {
        let permit = sem.clone().acquire_owned().await?;
        let (url, tls, resolver) = (url.clone(), tls.clone(), resolver.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let c = connect(&url, &secret, &token, &tls, &resolver).await;
            drop(permit);
            c.map(|c| (c, t0.elapsed()))
        });
    }
    let mut held = Vec::with_capacity(n);
    let mut total = Duration::ZERO;
    while let Some(r) = tasks.join_next().await {
        let (client, took) = r??;
        total += took;
        held.push(client);
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(pid)?;
    let f = Figures {
        per_sec: n as f64 / elapsed.as_secs_f64(),
        kib_per_client: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        mean_connect_ms: total.as_secs_f64() * 1000.0 / n as f64,
    };
    println!(
        "{mode:>10}: {n} admissions in {elapsed:.2?} = {:.0}/s; relay RSS {rss_before} → {rss_after} KiB ({:.1} KiB/client)",
        f.per_sec, f.kib_per_client
    );
    drop(held);
    drop(child);
    Ok(f)
}

async fn connect(
    url: &RelayUrl,
    secret: &SecretKey,
    token: &str,
    tls: &rustls::ClientConfig,
    resolver: &DnsResolver,
) -> Result<Client> {
    let client = ClientBuilder::new(url.clone(), secret.clone(), resolver.clone())
        .tls_client_config(tls.clone())
        .auth_token(token)
        .connect()
        .await?;
    Ok(client)
}
