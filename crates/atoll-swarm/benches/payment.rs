//! The payment benchmark: what paying for bandwidth costs, with real parts
//! and everything on 127.0.0.1, in one run, printed as tables.
//!
//! The parts: two real cdk mints (`atoll_testkit::mint::TestMint`) on one
//! fake Lightning network (`LightningNetwork`); three Atoll wallets
//! (`atoll_wallet::Wallet`) each served on a unix socket by
//! `atoll_wallet::api::router` and `atoll_core::local_api::serve`, exactly
//! as atoll-walletd does; in-process swarm nodes (`atoll_swarm::Node`)
//! whose payment gate and buyer talk to those wallet APIs. The seller
//! charges 1 sat/MB and accepts mint A only; the buyer's wallet holds
//! ecash at mint A (a Direct payment), the second buyer's only at mint B
//! (a cross-mint Swap through Lightning, mint B's melt fee 1 sat). No
//! relay and no Nostr: the buyer is given the seller's direct address.
//!
//! 1. Throughput of one large blob (default 1 GiB) from seller to a fresh
//!    buyer: free (a seller without payment, and the paying seller with
//!    the blob not marked paid) next to paid (marked paid: the buyer is
//!    refused, buys an allotment through its wallet, fetches again), as
//!    MB/s and the ratio paid / free: the cost of payment. Each paid round
//!    checks that the seller's wallet balance rose by the price and the
//!    buyer's fell by the price plus the fee.
//! 2. Payments per second through the wallet API: N sequential 1 sat
//!    `POST /pay` (Direct route) on the buyer wallet's socket, some of the
//!    tokens redeemed by `POST /receive` on the seller wallet's socket, and
//!    N `GET /balance` as a baseline; rate, mean, p50 and p99 latency, and
//!    how many calls took over a second. Twice: with the wallet's default
//!    mint pacing (cdk's token bucket per mint, a burst of 20, then 20 a
//!    minute, `[wallet.mint_pacing]`), where every call that reaches the
//!    mint after the burst waits up to 3 s, which these figures show
//!    rather than hide; and with pacing off (every token redeemed), the
//!    wallet's own cost.
//!
//! Run: `cargo bench -p atoll-swarm --bench payment`.
//!
//! Environment (all optional):
//! - `ATOLL_BENCH_QUICK=1`: a smoke run (64 MiB, 1 round, 20 payments).
//! - `ATOLL_BENCH_BYTES`: size of the blob, in bytes or with a binary
//!   suffix (`256M`, `1G`, `512MiB`).
//! - `ATOLL_BENCH_ROUNDS`: throughput rounds (median is reported).
//! - `ATOLL_BENCH_PAYMENTS`: wallet API payments (default 200).
//! - `ATOLL_BENCH_RECEIVES`: how many of those tokens the paced seller
//!   redeems (default 30, quick 10: past the burst, each waits about 3 s,
//!   see above); the unpaced one redeems them all.
//! - `ATOLL_BENCH_SWAP=0`: leave out the cross-mint (Swap) row.
//! - `TMPDIR`: where the data, stores and wallets live.
//!
//! Every fetched blob is checked against its BLAKE3 hash after the timed
//! part. Under `cargo test --benches` (no `--bench` argument) the benchmark
//! does not run.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use atoll_core::{ContentId, local_api::LocalClient};
use atoll_swarm::{
    FetchRequest, Node, Source, SwarmConfig,
    pay::{MB, allotment},
    store::{Direction, hash_of},
};
use atoll_testkit::{lightning::LightningNetwork, mint::TestMint};
use atoll_wallet::{
    Balance, Budget, MintPacing, PayRequest, Payment, Received, Route, Wallet, api::ReceiveRequest,
    normalize_mint_url,
};
use iroh::EndpointAddr;
use tokio::task::JoinHandle;

mod common;
use common::*;

const ENV_PAYMENTS: &str = "ATOLL_BENCH_PAYMENTS";
const ENV_SWAP: &str = "ATOLL_BENCH_SWAP";
const ENV_RECEIVES: &str = "ATOLL_BENCH_RECEIVES";

/// The seller's price, and the buyers' cap.
const PRICE_SAT_PER_MB: u64 = 1;
/// The buyers' fee cap per payment.
const MAX_FEE_SAT: u64 = 5;
/// Mint B's Lightning routing fee per melt (what a swap costs).
const MELT_FEE_SAT: u64 = 1;
/// Extra sat funded on top of what the run needs.
const FUND_MARGIN_SAT: u64 = 100;

fn main() -> Result<()> {
    bench_main("payment", |common| Ok(run(Settings::from_env(common)?)))
}

/// What to run, from the environment.
#[derive(Debug)]
struct Settings {
    common: Common,
    payments: usize,
    receives: usize,
    swap: bool,
}

impl Settings {
    fn from_env(common: Common) -> Result<Self> {
        let count = |name, default, quick_default| common.count(name, default, quick_default);
        Ok(Self {
            common,
            payments: count(ENV_PAYMENTS, 200, 20)?,
            receives: count(ENV_RECEIVES, 30, 10)?,
            swap: std::env::var(ENV_SWAP).map_or(true, |v| v.trim() != "0"),
        })
    }

    /// The price of one allotment of the blob, in sat.
    fn price_sat(&self) -> u64 {
        allotment(self.common.bytes) / MB * PRICE_SAT_PER_MB
    }
}

async fn run(s: Settings) -> Result<()> {
    let tmp = std::env::temp_dir();
    println!();
    println!("Atoll payment benchmark");
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
    println!(
        "  MB = 10^6 bytes; every fetch is BLAKE3-checked after the clock stops; \
         price {PRICE_SAT_PER_MB} sat/MB"
    );
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("atoll-bench-pay")
        .tempdir()?;
    let market = Market::start(&s, dir.path())
        .await
        .context("mints and wallets")?;
    throughput(&s, &market, dir.path())
        .await
        .context("throughput")?;
    payments(
        &s,
        "cdk's default mint pacing, as shipped",
        &market.buyer,
        &market.seller,
        market.mint_a.url(),
        s.receives,
    )
    .await
    .context("wallet API payments")?;
    payments(
        &s,
        "mint pacing off ([wallet.mint_pacing] burst = 0)",
        &market.unpaced_buyer,
        &market.unpaced_seller,
        market.mint_a.url(),
        s.payments,
    )
    .await
    .context("wallet API payments without pacing")?;
    market.shutdown().await?;
    println!();
    println!("  total bench time {}", secs(started.elapsed()));
    Ok(())
}

// ---------------------------------------------------------------------
// Mints and wallets

/// Two mints, the seller's wallet (trusts A), the buyer's (A, funded at
/// A) and the swap buyer's (A and B, funded at B only), each served on its
/// own socket.
struct Market {
    network: LightningNetwork,
    mint_a: TestMint,
    mint_b: TestMint,
    seller: Served,
    buyer: Served,
    swap_buyer: Served,
    /// Buyer and seller at mint A whose wallets do not pace mint calls.
    unpaced_buyer: Served,
    unpaced_seller: Served,
}

/// A wallet and the local API serving it.
struct Served {
    wallet: Wallet,
    socket: PathBuf,
    task: JoinHandle<()>,
}

impl Served {
    async fn open(dir: &Path, name: &str, mints: &[&str]) -> Result<Self> {
        Self::open_paced(dir, name, mints, MintPacing::default()).await
    }

    async fn open_paced(
        dir: &Path,
        name: &str,
        mints: &[&str],
        pacing: MintPacing,
    ) -> Result<Self> {
        let wallet = Wallet::builder(dir.join(name))
            .mint_pacing(pacing)
            .budget(Budget {
                per_payment_sat: 1_000_000_000,
                per_day_sat: 1_000_000_000,
            })
            .trust(mints.iter().copied())
            .open()
            .await
            .with_context(|| format!("opening wallet {name}"))?;
        // As atoll-walletd serves it.
        let socket = dir.join(format!("{name}.sock"));
        let listener = atoll_core::local_api::bind(&socket)
            .await
            .with_context(|| format!("binding {}", socket.display()))?;
        let router = atoll_wallet::api::router(wallet.clone());
        let task = tokio::spawn(async move {
            if let Err(e) =
                atoll_core::local_api::serve(listener, router, std::future::pending()).await
            {
                eprintln!("    wallet API stopped: {e}");
            }
        });
        Ok(Self {
            wallet,
            socket,
            task,
        })
    }

    fn client(&self) -> LocalClient {
        LocalClient::new(&self.socket)
    }

    /// The balance, through the API.
    async fn balance(&self) -> Result<u64> {
        let b: Balance = self.client().get("/balance").await?;
        Ok(b.total_sat)
    }
}

impl Market {
    async fn start(s: &Settings, dir: &Path) -> Result<Self> {
        let network = LightningNetwork::new();
        let mint_a = TestMint::builder(&network).spawn().await?;
        let mint_b = TestMint::builder(&network)
            .melt_fee_sat(MELT_FEE_SAT)
            .spawn()
            .await?;
        let wallets = dir.join("wallets");
        let seller = Served::open(&wallets, "seller", &[mint_a.url()]).await?;
        let buyer = Served::open(&wallets, "buyer", &[mint_a.url()]).await?;
        let swap_buyer =
            Served::open(&wallets, "swap-buyer", &[mint_a.url(), mint_b.url()]).await?;
        let unpaced_buyer =
            Served::open_paced(&wallets, "unpaced-buyer", &[mint_a.url()], MintPacing::OFF).await?;
        let unpaced_seller =
            Served::open_paced(&wallets, "unpaced-seller", &[mint_a.url()], MintPacing::OFF)
                .await?;
        fund(
            &network,
            &unpaced_buyer.wallet,
            mint_a.url(),
            s.payments as u64 + FUND_MARGIN_SAT,
        )
        .await?;
        let rounds = s.common.rounds as u64;
        let direct_funds = rounds * s.price_sat() + s.payments as u64 + FUND_MARGIN_SAT;
        fund(&network, &buyer.wallet, mint_a.url(), direct_funds).await?;
        if s.swap {
            let swap_funds = rounds * (s.price_sat() + MAX_FEE_SAT) + FUND_MARGIN_SAT;
            fund(&network, &swap_buyer.wallet, mint_b.url(), swap_funds).await?;
        }
        Ok(Self {
            network,
            mint_a,
            mint_b,
            seller,
            buyer,
            swap_buyer,
            unpaced_buyer,
            unpaced_seller,
        })
    }

    async fn shutdown(self) -> Result<()> {
        for w in [
            &self.seller,
            &self.buyer,
            &self.swap_buyer,
            &self.unpaced_buyer,
            &self.unpaced_seller,
        ] {
            w.task.abort();
        }
        drop(self.network);
        self.mint_a.shutdown().await?;
        self.mint_b.shutdown().await?;
        Ok(())
    }
}

/// Funds `wallet` at `mint`: a mint quote, its invoice paid from outside
/// the Lightning network, minted.
async fn fund(network: &LightningNetwork, wallet: &Wallet, mint: &str, amount: u64) -> Result<()> {
    let invoice = wallet.invoice(mint, amount).await?;
    network
        .pay_external(&invoice.bolt11)
        .map_err(|e| anyhow::anyhow!("paying the funding invoice: {e:?}"))?;
    let deadline = Instant::now() + STARTUP;
    loop {
        let minted = wallet.claim_invoice(mint, &invoice.quote_id).await?;
        if minted > 0 {
            ensure!(minted == amount, "minted {minted} sat, expected {amount}");
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "funding invoice never minted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------
// Test data

// ---------------------------------------------------------------------
// Nodes

/// An Atoll node on loopback with no local API socket.
async fn atoll_node(state_dir: &Path, f: impl FnOnce(&mut SwarmConfig)) -> Result<Node> {
    let mut config = SwarmConfig::default();
    config.node.bind = SocketAddr::from(([127, 0, 0, 1], 0)).into();
    f(&mut config);
    Ok(Node::builder(config, state_dir).spawn().await?)
}

/// A buyer paying through the wallet on `wallet_socket`, within the cap.
async fn buyer_node(state_dir: &Path, wallet_socket: &Path) -> Result<Node> {
    atoll_node(state_dir, |c| {
        c.payment.wallet_socket = Some(wallet_socket.to_owned());
        c.payment.max_price_sat_per_mb = PRICE_SAT_PER_MB;
        c.payment.max_fee_sat = MAX_FEE_SAT;
    })
    .await
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

/// The transfers of one round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    /// A seller without payment (no gate, no metering).
    Plain,
    /// The paying seller, the blob not marked paid (metered, not charged).
    Free,
    /// Marked paid; the buyer pays from ecash at the seller's mint.
    Direct,
    /// Marked paid; the buyer swaps from mint B through Lightning.
    Swap,
}

impl Row {
    fn label(self) -> &'static str {
        match self {
            Self::Plain => "free: seller without payment",
            Self::Free => "free: paying seller, blob not marked paid",
            Self::Direct => "paid: Direct (buyer holds mint A)",
            Self::Swap => "paid: Swap (buyer holds mint B only)",
        }
    }
}

/// What one paid round cost.
#[derive(Debug, Clone, Copy)]
struct Paid {
    amount_sat: u64,
    fee_sat: u64,
}

async fn throughput(s: &Settings, m: &Market, dir: &Path) -> Result<()> {
    let size = s.common.bytes;
    let data = dir.join("data.bin");
    eprintln!("[1] generating {} of test data…", mib(size));
    let expected = write_data_file(data.clone(), size, 1).await?;
    let id = ContentId::from(expected);

    // Two sellers holding the same bytes: one plain, one charging.
    let plain = atoll_node(&dir.join("seller-plain"), |_| {}).await?;
    let mint_a = m.mint_a.url().to_owned();
    let seller_socket = m.seller.socket.clone();
    let seller = atoll_node(&dir.join("seller-paid"), move |c| {
        c.payment.enabled = true;
        c.payment.price_sat_per_mb = PRICE_SAT_PER_MB;
        c.payment.accepted_mints = vec![mint_a];
        c.payment.wallet_socket = Some(seller_socket);
    })
    .await?;
    ensure!(
        seller.state().payment_gate().is_some(),
        "the paying seller has no payment gate"
    );
    for node in [&plain, &seller] {
        let info = node.state().blobs().add_file(&data).await?;
        ensure!(
            info.id == id && info.size == size,
            "import: wrong blob {}",
            info.id
        );
    }
    std::fs::remove_file(&data)?;
    let plain_addr = direct_addr(plain.state().endpoint()).await?;
    let seller_addr = direct_addr(seller.state().endpoint()).await?;

    let mut paths = vec![Row::Plain, Row::Free, Row::Direct];
    if s.swap {
        paths.push(Row::Swap);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut paid: Vec<Vec<Paid>> = vec![Vec::new(); paths.len()];
    // Each round starts with a different path, and dirty pages are
    // flushed before each transfer, so no path pays for another's writes.
    for round in 0..s.common.rounds {
        let order: Vec<usize> = (0..paths.len())
            .map(|i| (i + round) % paths.len())
            .collect();
        eprintln!("[1] round {}/{}…", round + 1, s.common.rounds);
        for i in order {
            let path = paths[i];
            settle().await;
            let buyer_dir = dir.join("buyer");
            let from = if path == Row::Plain {
                &plain_addr
            } else {
                &seller_addr
            };
            let wallet = if path == Row::Swap {
                // It must hold nothing at mint A, or it would pay Direct.
                let at_a = m.swap_buyer.wallet.mint_balance(m.mint_a.url()).await?;
                ensure!(at_a == 0, "the swap buyer holds {at_a} sat at mint A");
                &m.swap_buyer
            } else {
                &m.buyer
            };
            let charged = matches!(path, Row::Direct | Row::Swap);
            seller.state().blobs().set_paid(&id, charged)?;
            let (t, cost) = fetch_round(s, m, wallet, from, id, &buyer_dir, charged)
                .await
                .with_context(|| path.label())?;
            times[i].push(t);
            if let Some(c) = cost {
                paid[i].push(c);
            }
        }
    }
    plain.shutdown().await;
    seller.shutdown().await;

    let med: Vec<Duration> = times.iter().map(|t| median(t)).collect();
    println!();
    println!(
        "1. Throughput: one {} blob over 127.0.0.1, seller -> fresh buyer \
         (median of {} round{}, dial and payment included)",
        mib(size),
        s.common.rounds,
        if s.common.rounds == 1 { "" } else { "s" }
    );
    println!(
        "   {:<44} {:>9} {:>10} {:>20} {:>14}",
        "path", "MB/s", "time", "range MB/s", "sat/round"
    );
    for (i, path) in paths.iter().enumerate() {
        let cost = match paid[i].first() {
            Some(p) => format!("{} + {} fee", p.amount_sat, p.fee_sat),
            None => "0".to_owned(),
        };
        println!(
            "   {:<44} {:>9.1} {:>10} {:>20} {:>14}",
            path.label(),
            mbps(size, med[i]),
            secs(med[i]),
            range(size, &times[i]),
            cost
        );
    }
    let free = med[1];
    for (i, path) in paths.iter().enumerate().skip(2) {
        let name = if *path == Row::Direct {
            "ratio paid Direct / free"
        } else {
            "ratio paid Swap / free"
        };
        println!(
            "   {:<44} {:>9.2}   (+{} per fetch)",
            name,
            mbps(size, med[i]) / mbps(size, free),
            millis(med[i].saturating_sub(free))
        );
    }
    println!(
        "   {:<44} {:>9.2}",
        "ratio free (metered) / free (no gate)",
        mbps(size, med[1]) / mbps(size, med[0])
    );
    println!(
        "   (price {} sat for a {} MB allotment; each paid round checked: seller's wallet +price, \
         buyer's wallet -(price + fee), through GET /balance)",
        s.price_sat(),
        allotment(size) / MB
    );
    Ok(())
}

/// One fetch into a fresh buyer; for a paid one, checks that the price
/// moved between the wallets.
async fn fetch_round(
    s: &Settings,
    m: &Market,
    wallet: &Served,
    from: &EndpointAddr,
    id: ContentId,
    dir: &Path,
    charged: bool,
) -> Result<(Duration, Option<Paid>)> {
    let size = s.common.bytes;
    let seller_before = m.seller.balance().await?;
    let buyer_before = wallet.balance().await?;
    let b = buyer_node(dir, &wallet.socket).await?;
    let t = Instant::now();
    let out = b.state().fetch(fetch_request(id, from)).await?;
    let elapsed = t.elapsed();
    ensure!(
        out.size == size,
        "fetched {} bytes, expected {size}",
        out.size
    );
    ensure!(
        out.source == Source::Peers(vec![from.id.to_string()]),
        "source was {:?} (failed peers {:?})",
        out.source,
        out.failed_peers
    );
    check_in_store(b.state().blobs().store(), hash_of(&id), size, "buyer").await?;
    let spent = b.state().blobs().payments()?;
    let seller_after = m.seller.balance().await?;
    let buyer_after = wallet.balance().await?;
    b.shutdown().await;
    std::fs::remove_dir_all(dir)?;

    if !charged {
        ensure!(spent.is_empty(), "a free fetch paid: {spent:?}");
        ensure!(
            buyer_after == buyer_before && seller_after == seller_before,
            "balances moved on a free fetch: buyer {buyer_before} -> {buyer_after}, \
             seller {seller_before} -> {seller_after}"
        );
        return Ok((elapsed, None));
    }
    ensure!(spent.len() == 1, "expected one payment, got {spent:?}");
    let p = &spent[0];
    let price = s.price_sat();
    ensure!(
        p.direction == Direction::Spending && p.amount_sat == price,
        "paid {} sat, expected {price}",
        p.amount_sat
    );
    ensure!(
        p.mint == normalize_mint_url(m.mint_a.url())?,
        "paid in {}",
        p.mint
    );
    ensure!(
        seller_after == seller_before + price,
        "seller's wallet went {seller_before} -> {seller_after}, expected +{price}"
    );
    ensure!(
        buyer_after + price + p.fee_sat == buyer_before,
        "buyer's wallet went {buyer_before} -> {buyer_after}, expected -({price} + {} fee)",
        p.fee_sat
    );
    Ok((
        elapsed,
        Some(Paid {
            amount_sat: p.amount_sat,
            fee_sat: p.fee_sat,
        }),
    ))
}

// ---------------------------------------------------------------------
// 2. Payments per second through the wallet API

async fn payments(
    s: &Settings,
    label: &str,
    buyer_w: &Served,
    seller_w: &Served,
    mint_a: &str,
    receives: usize,
) -> Result<()> {
    let n = s.payments;
    let buyer = buyer_w.client();
    let seller = seller_w.client();
    let mint_a = mint_a.to_owned();
    let request = PayRequest {
        accepted_mints: vec![mint_a.clone()],
        amount_sat: 1,
        max_fee_sat: 0,
        purpose: "payment benchmark".to_owned(),
        reclaim_after_secs: None,
    };
    // Warm up: one connection and one balance read each.
    buyer_w.balance().await?;
    seller_w.balance().await?;
    let buyer_before = buyer_w.balance().await?;
    let seller_before = seller_w.balance().await?;

    eprintln!("[2] {label}: {n} payments through POST /pay…");
    let mut tokens = Vec::with_capacity(n);
    let mut pay_lat = Vec::with_capacity(n);
    let mut fees = 0;
    let t = Instant::now();
    for _ in 0..n {
        let t1 = Instant::now();
        let p: Payment = buyer.post("/pay", &request).await?;
        pay_lat.push(t1.elapsed());
        ensure!(
            p.route == Route::Direct && p.amount_sat == 1,
            "paid {} sat by {:?}",
            p.amount_sat,
            p.route
        );
        fees += p.fee_sat;
        tokens.push(p.token);
    }
    let pay_total = t.elapsed();

    let r_n = receives.min(n);
    eprintln!("[2] {r_n} of the tokens redeemed through POST /receive…");
    let mut recv_lat = Vec::with_capacity(r_n);
    let t = Instant::now();
    for token in tokens.into_iter().take(r_n) {
        let body = ReceiveRequest {
            token,
            expected_amount_sat: 1,
            expected_mints: vec![mint_a.clone()],
        };
        let t1 = Instant::now();
        let r: Received = seller.post("/receive", &body).await?;
        recv_lat.push(t1.elapsed());
        ensure!(r.amount_sat == 1, "received {} sat", r.amount_sat);
    }
    let recv_total = t.elapsed();

    eprintln!("[2] {n} GET /balance…");
    let mut bal_lat = Vec::with_capacity(n);
    let t = Instant::now();
    for _ in 0..n {
        let t1 = Instant::now();
        let _: Balance = buyer.get("/balance").await?;
        bal_lat.push(t1.elapsed());
    }
    let bal_total = t.elapsed();

    let buyer_after = buyer_w.balance().await?;
    let seller_after = seller_w.balance().await?;
    ensure!(
        buyer_after + n as u64 + fees == buyer_before,
        "buyer's wallet went {buyer_before} -> {buyer_after}, expected -({n} + {fees} fees)"
    );
    ensure!(
        seller_after == seller_before + r_n as u64,
        "seller's wallet went {seller_before} -> {seller_after}, expected +{r_n}"
    );

    println!();
    println!(
        "2. Wallet API over its unix socket: sequential calls \
         (1 sat each, Direct route, mint on 127.0.0.1); {label}"
    );
    println!(
        "   {:<44} {:>6} {:>9} {:>11} {:>11} {:>11} {:>6}",
        "call", "calls", "per s", "mean", "p50", "p99", ">1 s"
    );
    let rate = |lat: &[Duration], total: Duration| lat.len() as f64 / total.as_secs_f64().max(1e-9);
    let mut slow_total = 0;
    for (name, lat, total) in [
        ("POST /pay (buyer: token out)", &pay_lat, pay_total),
        (
            "POST /receive (seller: swap at the mint)",
            &recv_lat,
            recv_total,
        ),
        ("GET /balance (baseline)", &bal_lat, bal_total),
    ] {
        let slow = lat.iter().filter(|t| **t > Duration::from_secs(1)).count();
        slow_total += slow;
        println!(
            "   {:<44} {:>6} {:>9.1} {:>11} {:>11} {:>11} {:>6}",
            name,
            lat.len(),
            rate(lat, total),
            millis(mean(lat)),
            millis(median(lat)),
            millis(percentile(lat, 0.99)),
            slow
        );
    }
    println!(
        "   {:<44} {:>6} {:>9}",
        "ratio POST /pay / GET /balance (per s)",
        "",
        ratio(rate(&pay_lat, pay_total) / rate(&bal_lat, bal_total))
    );
    println!("   (balances checked: buyer -{n} sat, {fees} sat fees; seller +{r_n} sat)");
    if slow_total > 0 {
        println!(
            "   (calls over 1 s waited for cdk's client-side pacing of mint requests: \
             a burst of 20, then one per 3 s per mint)"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Figures

fn mean(v: &[Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.iter().sum::<Duration>() / v.len() as u32
}

/// A ratio with three significant digits however small it is.
fn ratio(x: f64) -> String {
    if x >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}
