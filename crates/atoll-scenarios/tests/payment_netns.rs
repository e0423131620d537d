//! Scenario 3, Payment, on network-namespace hosts with the real binaries:
//! an infrastructure host (iroh relay, Nostr relay, HTTP origin, two Cashu
//! test mints on one fake Lightning network and an endpoint that pays
//! their invoices from outside) and three spokes, each running
//! atoll-walletd and atoll-swarmd, that reach each other only through the
//! relay.
//!
//! A sells at 1 sat/MB and accepts only mint 2; B holds ecash only at
//! mint 1 (so it pays through a swap, whose fee its wallet reports); C is
//! trusted by A and holds nothing. C gets a paid blob free; B buys it and
//! the balances move by exactly the price (plus B's fee); B over its
//! wallet budget is refused and the origin serves; no sat appears or
//! disappears. Then B's wallet is killed (SIGKILL) mid-swap and restarted,
//! once at each of the ten journal points of a swap (before and after each
//! step; `ATOLL_WALLET_TEST_PAUSE_AT` holds the swap there until the kill)
//! and in rounds where the devnet slows every mint request so the kill
//! lands inside a mint call: no sat is lost or spent twice, and every fee
//! (the melt's, once it was paid) is in B's history.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use atoll_core::ContentId;
use atoll_scenarios::{
    Daemon, Devnet, SwarmNode, bin, cli, hub, path_str, random_file, spoke, wait_for,
};
use atoll_testkit::{Host, Lab, netns};

const NET: &str = "10.3";
const INFRA: &str = "10.3.0.1";
/// 20 MB of 10^6 bytes: an allotment of 20 MB, 20 sat at 1 sat/MB.
const BLOB_BYTES: usize = 20_000_000;
const PRICE: u64 = 20;
/// 3.5 MB: 4 sat, above B's later per-payment budget of 3 sat.
const BLOB2_BYTES: usize = 3_500_000;
const SMALL_BUDGET: u64 = 3;
/// Every melt at a devnet mint pays this Lightning fee.
const MELT_FEE: u64 = 1;
const MAX_FEE: u64 = 5;
const FUNDS: u64 = 100;
/// 2.5 MB: 3 sat, bought while B's wallet is killed.
const BLOB3_BYTES: usize = 2_500_000;
const BLOB3_PRICE: u64 = 3;
/// The steps of a swap, each paused at and killed in one round (the names
/// of `ATOLL_WALLET_TEST_PAUSE_AT`): the melt is paid from the sixth on.
const STEPS: [&str; 10] = [
    "before:mint_quote",
    "after:mint_quote",
    "before:melt_quote",
    "after:melt_quote",
    "before:melt_paid",
    "after:melt_paid",
    "before:minted",
    "after:minted",
    "before:sent",
    "after:sent",
];

/// How a round kills B's wallet.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// When it pauses at this swap step.
    AtStep(&'static str),
    /// After this many mint requests' worth of LATENCY.
    AfterRequests(f64),
}

/// Delay of every mint request while B's wallet is killed mid-swap.
const LATENCY: Duration = Duration::from_millis(600);

/// Sets the devnet mints' request delay.
fn set_latency(host: &Host, lightning: &str, ms: u64) -> Result<()> {
    let out = host
        .command("curl")
        .args([
            "-sS",
            "-f",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(format!("{{\"ms\": {ms}}}"))
        .arg(format!("{lightning}/latency"))
        .output()?;
    ensure!(
        out.status.success(),
        "setting the mint latency: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// An atoll-walletd in a host, with its config file and socket.
struct WalletNode {
    daemon: Daemon,
    name: String,
    socket: PathBuf,
}

impl WalletNode {
    /// Writes the config (trusted `mints`, per-payment budget) and starts it.
    fn start(host: &Host, d: &Path, name: &str, mints: &[&str], per_payment: u64) -> Result<Self> {
        Self::start_pausing(host, d, name, mints, per_payment, None)
    }

    /// [`WalletNode::start`]; with `pause`, the first swap stops for good
    /// at that step (`ATOLL_WALLET_TEST_PAUSE_AT`, e.g. `after:melt_paid`).
    fn start_pausing(
        host: &Host,
        d: &Path,
        name: &str,
        mints: &[&str],
        per_payment: u64,
        pause: Option<&str>,
    ) -> Result<Self> {
        let dir = d.join(format!("{name}-wallet"));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("walletd.sock");
        let trusted: Vec<String> = mints.iter().map(|m| format!("\"{m}\"")).collect();
        let cfg = dir.join("walletd.toml");
        std::fs::write(
            &cfg,
            format!(
                "# Same schema as the wallet module's settings.\n\
                 [wallet]\ntrusted_mints = [{}]\n\
                 # The devnet mints speak plain http on the infra host.\n\
                 allow_insecure_mints = true\n\n\
                 [wallet.mint_pacing]\n\
                 # The devnet mints set no request limit; pacing as shipped\n\
                 # (20 a minute) would make each round wait for it.\n\
                 burst = 0\n\n\
                 [budget]\nper_payment_sat = {per_payment}\nper_day_sat = 10000\n\n\
                 [api]\nsocket = \"{}\"\n",
                trusted.join(", "),
                socket.display()
            ),
        )?;
        let _ = std::fs::remove_file(&socket);
        let env: Vec<(&str, &str)> = pause
            .map(|p| ("ATOLL_WALLET_TEST_PAUSE_AT", p))
            .into_iter()
            .collect();
        let mut daemon = Daemon::spawn_with_env(
            host,
            &format!("{name}-wallet"),
            &bin("atoll-walletd")?,
            &[
                "--config",
                path_str(&cfg)?,
                "--state-dir",
                path_str(&dir.join("state"))?,
            ],
            &env,
            &d.join(format!("{name}-wallet.log")),
        )?;
        let node = Self {
            daemon: {
                let sock = socket.clone();
                wait_for(
                    &format!("{name}'s wallet to answer"),
                    Duration::from_secs(30),
                    || {
                        Command::new(bin("atoll").ok()?)
                            .args(["wallet", "--wallet-socket"])
                            .arg(&sock)
                            .arg("balance")
                            .output()
                            .ok()
                            .filter(|o| o.status.success())
                    },
                )
                .with_context(|| daemon.log())?;
                ensure!(daemon.running(), "{name}'s wallet exited: {}", daemon.log());
                daemon
            },
            name: name.to_owned(),
            socket,
        };
        Ok(node)
    }

    fn wallet(&self, args: &[&str]) -> Result<Output> {
        let mut all = vec!["wallet", "--wallet-socket", path_str(&self.socket)?];
        all.extend_from_slice(args);
        cli(&all)
    }

    /// Total balance in sat.
    fn balance(&self) -> Result<u64> {
        let out = self.wallet(&["balance"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("total:"))
            .and_then(|s| s.trim().strip_suffix("sat"))
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("no total in {text}"))
    }

    /// Balance at `mint` in sat (0 if none).
    fn mint_balance(&self, mint: &str) -> Result<u64> {
        let out = self.wallet(&["balance"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "  {sat:>10} sat  {mint}"
        Ok(text
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w[..] {
                    [sat, "sat", m] if m.trim_end_matches('/') == mint.trim_end_matches('/') => {
                        sat.parse::<u64>().ok()
                    }
                    _ => None,
                }
            })
            .sum())
    }

    /// Hands everything held at `mint` to `to` as a token (so the next
    /// payment must swap again); a token of value 0 is not made.
    fn give_away(&self, to: &WalletNode, mint: &str) -> Result<()> {
        let held = self.mint_balance(mint)?;
        if held == 0 {
            return Ok(());
        }
        let out = self.wallet(&[
            "send",
            &held.to_string(),
            "--mint",
            mint,
            "--max-fee-sat",
            "0",
        ])?;
        let token = String::from_utf8(out.stdout)?.trim().to_owned();
        to.wallet(&["receive", &token])?;
        ensure!(
            self.mint_balance(mint)? == 0,
            "{} still holds ecash at {mint}",
            self.name
        );
        Ok(())
    }

    /// The wallet's history: (kind, amount, fee) per entry.
    fn history(&self) -> Result<Vec<(String, u64, u64)>> {
        let out = self.wallet(&["history", "--limit", "1000", "--json"])?;
        let entries: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).context("atoll wallet history --json")?;
        entries
            .iter()
            .map(|e| {
                let field = |k: &str| e[k].as_u64().with_context(|| format!("history entry {e}"));
                Ok((
                    e["kind"].as_str().unwrap_or_default().to_owned(),
                    field("amount_sat")?,
                    field("fee_sat")?,
                ))
            })
            .collect()
    }

    /// The sum of the fees the wallet reports.
    fn fees(&self) -> Result<u64> {
        Ok(self.history()?.iter().map(|e| e.2).sum())
    }

    /// Funds it with `amount` sat at `mint`: an invoice, paid from outside
    /// through the devnet's Lightning endpoint, then claimed.
    fn fund(&self, host: &Host, lightning: &str, mint: &str, amount: u64) -> Result<()> {
        let out = self.wallet(&["invoice", "--mint", mint, &amount.to_string()])?;
        let bolt11 = String::from_utf8(out.stdout)?.trim().to_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let quote = stderr
            .split_whitespace()
            .last()
            .context("no quote id")?
            .to_owned();
        let paid = host
            .command("curl")
            .args(["-sS", "-w", "\n%{http_code}", "-X", "POST"])
            .args(["-H", "content-type: application/json", "-d"])
            .arg(format!("{{\"bolt11\": \"{bolt11}\"}}"))
            .arg(format!("{lightning}/pay"))
            .output()?;
        let answer = String::from_utf8_lossy(&paid.stdout).into_owned();
        ensure!(
            answer.trim_end().ends_with("200"),
            "the devnet did not pay {}'s invoice: {answer}{}",
            self.name,
            String::from_utf8_lossy(&paid.stderr)
        );
        let mut last = String::new();
        wait_for(
            "the paid invoice to be claimed",
            Duration::from_secs(30),
            || match self.wallet(&["claim", "--mint", mint, &quote]) {
                Ok(o) if String::from_utf8_lossy(&o.stdout).trim() != "minted 0 sat" => Some(()),
                Ok(o) => {
                    last = String::from_utf8_lossy(&o.stdout).into_owned();
                    std::thread::sleep(Duration::from_millis(200));
                    None
                }
                Err(e) => {
                    last = format!("{e:#}");
                    std::thread::sleep(Duration::from_millis(200));
                    None
                }
            },
        )
        .with_context(|| last.clone())?;
        Ok(())
    }
}

fn node_config(payment: &str) -> String {
    format!(
        r#"# Same schema as services.atoll.swarm.settings in modules/swarm.nix.
[node]
bind = "0.0.0.0:4919"
relays = ["http://{INFRA}:3340"]

[nostr]
relays = ["ws://{INFRA}:7777"]
lookup_timeout_secs = 3

[fetch]
peer_timeout_secs = 60

[payment]
{payment}
"#
    )
}

/// `atoll blob get` with a ticket (and an origin); the stderr report.
fn get(
    node: &SwarmNode,
    id: &ContentId,
    ticket: &str,
    out: &Path,
    origin: Option<&str>,
) -> Result<String> {
    let id_s = id.to_string();
    let mut args = vec![
        "blob",
        "get",
        id_s.as_str(),
        "-o",
        path_str(out)?,
        "--ticket",
        ticket,
    ];
    if let Some(o) = origin {
        args.extend_from_slice(&["--origin", o]);
    }
    let o = node.atoll(&args)?;
    ensure!(
        ContentId::hash_file(out)? == *id,
        "{} does not hash to {id}",
        out.display()
    );
    Ok(String::from_utf8_lossy(&o.stderr).into_owned())
}

fn ticket(node: &SwarmNode, id: &ContentId) -> Result<String> {
    Ok(
        String::from_utf8(node.atoll(&["blob", "ticket", &id.to_string()])?.stdout)?
            .trim()
            .to_owned(),
    )
}

/// Marks `id` paid on `node` (`atoll blob charge`), and checks it is
/// listed so.
fn mark_paid(node: &SwarmNode, id: &ContentId) -> Result<()> {
    node.atoll(&["blob", "charge", &id.to_string()])?;
    let listed = String::from_utf8(node.atoll(&["blob", "ls"])?.stdout)?;
    ensure!(
        listed
            .lines()
            .any(|l| l.starts_with(&id.to_string()) && l.ends_with("paid")),
        "{id} is not listed as paid: {listed}"
    );
    Ok(())
}

/// `atoll blob payments`: (earned, spent) in sat.
fn node_payments(node: &SwarmNode) -> Result<(u64, u64)> {
    let out = String::from_utf8(node.atoll(&["blob", "payments"])?.stdout)?;
    // "earned {r} sat, spent {s} sat (fees included)"
    let w: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    match w[..] {
        ["earned", r, "sat,", "spent", s, "sat", ..] => Ok((r.parse()?, s.parse()?)),
        _ => bail!("unexpected `atoll blob payments` output: {out}"),
    }
}

#[test]
fn netns_payment_scenario() -> Result<()> {
    if !netns::available() {
        eprintln!("SKIP: needs root and iproute2");
        return Ok(());
    }
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIP: needs curl");
        return Ok(());
    }
    let started = Instant::now();
    let dir = atoll_testkit::TempState::new("payment-scenario")?;
    let d = dir.path();
    let mut lab = Lab::new()?;
    let infra = hub(&mut lab, "infra", NET)?;
    let hosts: Vec<Host> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| spoke(&mut lab, &infra, NET, n, i as u8 + 1))
        .collect::<Result<_>>()?;
    let [ha, hb, hc] = &hosts[..] else {
        unreachable!()
    };

    // The origin holds the second paid blob (not the first).
    let origin_dir = d.join("origin");
    std::fs::create_dir_all(&origin_dir)?;
    let blob2 = origin_dir.join("second.bin");
    random_file(&blob2, BLOB2_BYTES, 2)?;
    let id2 = ContentId::hash_file(&blob2)?;
    let devnet = Devnet::spawn(
        &infra,
        d,
        &[
            "--iroh-bind",
            &format!("{INFRA}:3340"),
            "--nostr-bind",
            &format!("{INFRA}:7777"),
            "--origin-bind",
            &format!("{INFRA}:8080"),
            "--origin-dir",
            path_str(&origin_dir)?,
            "--mints",
            "2",
            "--mint-bind",
            INFRA,
            "--melt-fee-sat",
            &MELT_FEE.to_string(),
            "--lightning-bind",
            &format!("{INFRA}:8090"),
        ],
        &["LIGHTNING"],
    )?;
    let mint1 = devnet.value("MINT_1")?;
    let mint2 = devnet.value("MINT_2")?;
    let lightning = devnet.value("LIGHTNING")?;
    assert!(mint1.starts_with(&format!("http://{INFRA}:")), "{mint1}");

    // Wallets: A takes mint 2; B holds mint 1 ecash and may swap into
    // mint 2; C trusts mint 2 and holds nothing.
    let wa = WalletNode::start(ha, d, "a", &[&mint2], 1_000)?;
    let mut wb = WalletNode::start(hb, d, "b", &[&mint1, &mint2], 1_000)?;
    let wc = WalletNode::start(hc, d, "c", &[&mint2], 1_000)?;
    wb.fund(hb, &lightning, &mint1, FUNDS)?;
    assert_eq!(wb.balance()?, FUNDS, "B's wallet holds what was funded");
    assert_eq!(wb.fees()?, 0, "funding costs B no fee");
    eprintln!("[{:?}] wallets up, B funded", started.elapsed());

    // C's identity first: A trusts it.
    let c_keys = d.join("c/keys");
    cli(&["keys", "init", "--dir", path_str(&c_keys)?])?;
    let shown = String::from_utf8(cli(&["keys", "show", "--dir", path_str(&c_keys)?])?.stdout)?;
    let c_id = shown
        .lines()
        .find_map(|l| l.strip_prefix("node id:"))
        .map(|s| s.trim().to_owned())
        .context("no node id from `atoll keys show`")?;

    let a = SwarmNode::start(
        ha,
        d,
        "a",
        &node_config(&format!(
            "enabled = true\nprice_sat_per_mb = 1\naccepted_mints = [\"{mint2}\"]\n\
             trusted_peers = [\"{c_id}\"]\nwallet_socket = \"{}\"",
            wa.socket.display()
        )),
    )?;
    let buyer = |w: &WalletNode| {
        node_config(&format!(
            "wallet_socket = \"{}\"\nmax_price_sat_per_mb = 2\nmax_fee_sat = {MAX_FEE}",
            w.socket.display()
        ))
    };
    let mut b = SwarmNode::start(hb, d, "b", &buyer(&wb))?;
    let c = SwarmNode::start(hc, d, "c", &buyer(&wc))?;
    let a_id = a.node_id()?;
    assert_eq!(c.node_id()?, c_id, "C runs with the keys made first");

    // A adds a 20 MB blob and charges for it.
    let original = d.join("film.bin");
    random_file(&original, BLOB_BYTES, 1)?;
    let id = ContentId::hash_file(&original)?;
    a.atoll(&["blob", "add", path_str(&original)?])?;
    mark_paid(&a, &id)?;
    let t1 = ticket(&a, &id)?;

    // Trusted C, with no funds at all, gets it from A for nothing (the
    // origin does not have it).
    let t = Instant::now();
    let log = get(&c, &id, &t1, &d.join("c.out"), None)?;
    assert!(
        log.contains(&format!("fetched from peer(s) {a_id}")),
        "C's source should be A alone: {log}"
    );
    assert_eq!(wc.balance()?, 0, "C's wallet is untouched");
    assert!(wc.history()?.is_empty(), "C's wallet made no payment");
    assert_eq!(wa.balance()?, 0, "A earned nothing from trusted C");
    eprintln!(
        "[{:?}] C fetched free in {:?}",
        started.elapsed(),
        t.elapsed()
    );
    // C no longer holds it, so B can only buy it from A.
    c.atoll(&["blob", "rm", &id.to_string()])?;

    // B buys 20 MB from A through a swap from mint 1 to mint 2.
    let t = Instant::now();
    let log = get(&b, &id, &t1, &d.join("b.out"), None)?;
    assert!(
        log.contains(&format!("fetched from peer(s) {a_id}")),
        "B's source should be A alone: {log}"
    );
    eprintln!(
        "[{:?}] B bought and fetched in {:?}",
        started.elapsed(),
        t.elapsed()
    );
    let fee_b = wb.fees()?;
    assert!(
        fee_b <= MAX_FEE,
        "B's fee {fee_b} sat is over its max_fee_sat {MAX_FEE}: {:?}",
        wb.history()?
    );
    assert_eq!(
        fee_b,
        MELT_FEE,
        "the swap costs mint 1's melt fee: {:?}",
        wb.history()?
    );
    assert_eq!(
        wb.balance()?,
        FUNDS - PRICE - fee_b,
        "B's wallet moves by exactly the price plus the fee it reports: {:?}",
        wb.history()?
    );
    let a_after = wait_for("A's receive", Duration::from_secs(10), || {
        wa.balance().ok().filter(|b| *b > 0)
    })?;
    assert_eq!(
        a_after,
        PRICE,
        "A's wallet rises by exactly the price: {:?}",
        wa.history()?
    );
    let fee_a = wa.fees()?;
    assert_eq!(fee_a, 0, "A's receive at mint 2 costs nothing");
    // The nodes' own records agree with the wallets.
    assert_eq!(node_payments(&a)?, (PRICE, 0), "A's `atoll blob payments`");
    assert_eq!(
        node_payments(&b)?,
        (0, PRICE + fee_b),
        "B's `atoll blob payments`"
    );
    assert_eq!(node_payments(&c)?, (0, 0), "trusted C paid nothing");

    // B over its wallet budget: the wallet refuses the payment, A is left
    // and the origin serves; nothing is spent.
    wb.daemon.stop()?;
    wb = WalletNode::start(hb, d, "b", &[&mint1, &mint2], SMALL_BUDGET)?;
    // B's node talks to its wallet per request, so it keeps running.
    ensure!(b.daemon.running(), "B's node exited: {}", b.daemon.log());
    assert_eq!(
        wb.balance()?,
        FUNDS - PRICE - fee_b,
        "a restart keeps B's ecash"
    );
    a.atoll(&["blob", "add", path_str(&blob2)?])?;
    mark_paid(&a, &id2)?;
    let t2 = ticket(&a, &id2)?;
    let url = format!("http://{INFRA}:8080/second.bin");
    let t = Instant::now();
    let log = get(&b, &id2, &t2, &d.join("b2.out"), Some(&url))?;
    assert!(
        log.contains("fetched from origin"),
        "over budget, B's copy comes from the origin: {log}"
    );
    assert!(
        log.contains(&format!("peer {a_id} failed")),
        "A was asked and the deal failed: {log}"
    );
    eprintln!(
        "[{:?}] B over budget fell back to the origin in {:?}",
        started.elapsed(),
        t.elapsed()
    );
    assert_eq!(
        wb.balance()?,
        FUNDS - PRICE - fee_b,
        "B over budget spends nothing: {:?}",
        wb.history()?
    );
    assert_eq!(wb.fees()?, fee_b, "B over budget pays no fee");
    assert_eq!(
        wa.balance()?,
        PRICE,
        "A earns nothing from the refused deal"
    );

    // Conservation: everything funded is held or went to fees.
    let held = wa.balance()? + wb.balance()? + wc.balance()?;
    let fees = wa.fees()? + wb.fees()? + wc.fees()?;
    assert_eq!(
        held + fees,
        FUNDS,
        "sats are conserved: {held} held + {fees} fees != {FUNDS} funded"
    );

    // B's wallet is killed (SIGKILL) in the middle of a swap, at each step
    // in turn: ATOLL_WALLET_TEST_PAUSE_AT stops the first swap at the step
    // (its journal as a crash there leaves it) and the test kills the
    // process once it says so. Then rounds where every mint request takes
    // LATENCY and the kill comes after a number of them, landing inside
    // the mint calls themselves (the melt included). After a restart the
    // swap journal is settled: no sat is lost or spent twice, and every
    // fee is in B's history.
    wb.daemon.stop()?;
    drop(wb);
    let rounds = STEPS
        .iter()
        .map(|s| Kill::AtStep(s))
        .chain([2.5_f64, 4.5, 6.5].map(Kill::AfterRequests));
    for (round, kill) in rounds.enumerate() {
        let pause = match kill {
            Kill::AtStep(step) => Some(step),
            Kill::AfterRequests(_) => None,
        };
        let wb = WalletNode::start_pausing(hb, d, "b", &[&mint1, &mint2], 1_000, pause)?;
        // Ecash left at mint 2 by an earlier round goes to C, so that B
        // has to swap again.
        wb.give_away(&wc, &mint2)?;
        let name = format!("third-{round}.bin");
        let blob3 = origin_dir.join(&name);
        random_file(&blob3, BLOB3_BYTES, 3 + round as u64)?;
        let id3 = ContentId::hash_file(&blob3)?;
        a.atoll(&["blob", "add", path_str(&blob3)?])?;
        mark_paid(&a, &id3)?;
        let t3 = ticket(&a, &id3)?;
        let url3 = format!("http://{INFRA}:8080/{name}");
        let a_before = wa.balance()?;
        let b_before = wb.balance()?;
        let fees_before = wb.fees()?;
        let kept_before = kept_swaps(&wb)?;
        if let Kill::AfterRequests(_) = kill {
            set_latency(hb, &lightning, LATENCY.as_millis() as u64)?;
        }
        let id3_s = id3.to_string();
        let out3 = d.join(format!("b3-{round}.out"));
        let fetch = Command::new(bin("atoll")?)
            .arg("--socket")
            .arg(&b.socket)
            .args(["blob", "get", &id3_s, "-o", path_str(&out3)?])
            .args(["--ticket", &t3, "--origin", &url3])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        match kill {
            Kill::AtStep(step) => {
                wait_for(
                    &format!("B's wallet to pause at {step}"),
                    Duration::from_secs(60),
                    || wb.daemon.log().contains("test pause").then_some(()),
                )
                .with_context(|| wb.daemon.log())?;
            }
            Kill::AfterRequests(n) => std::thread::sleep(LATENCY.mul_f64(n)),
        }
        drop(wb); // SIGKILL
        set_latency(hb, &lightning, 0)?;
        let fetched = fetch.wait_with_output()?;
        ensure!(
            fetched.status.success() && ContentId::hash_file(&out3)? == id3,
            "B still gets blob {round} (from the origin): {}",
            String::from_utf8_lossy(&fetched.stderr)
        );
        let wb = WalletNode::start(hb, d, "b", &[&mint1, &mint2], 1_000)?;
        let resumed = wb
            .daemon
            .log()
            .lines()
            .filter_map(|l| l.split_once("report").map(|(_, r)| r.to_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        // A receives only if the kill came after the token left B's wallet.
        let received = wa.balance()? - a_before;
        let fees = wb.fees()? - fees_before;
        let b_after = wb.balance()?;
        let kept = kept_swaps(&wb)? - kept_before;
        eprintln!(
            "[{:?}] round {round}: killed {kill:?}; B {b_before} -> {b_after} sat, A received \
             {received} sat, B's fees {fees} sat, kept swaps {kept}; resume:{resumed}",
            started.elapsed()
        );
        ensure!(b_after <= b_before, "round {round}: B's wallet gained sats");
        assert!(
            received == 0 || received == BLOB3_PRICE,
            "round {round}: A received {received} sat, neither nothing nor the price"
        );
        assert!(
            fees <= MAX_FEE,
            "round {round}: B's reported fees {fees} sat are over max_fee_sat"
        );
        // Everything that left B's wallet went to A or is a fee in B's
        // history; a second melt (the swap paid twice) would show here as
        // at least the amount.
        assert_eq!(
            b_before - b_after,
            received + fees,
            "round {round}: a crash mid-swap lost or double-spent sats: B had {b_before} sat, \
             now {b_after}, A received {received}, reported fees {fees}; resume:{resumed}; \
             history {:?}",
            wb.history()?
        );
        if let Kill::AtStep(step) = kill {
            // A paused swap never handed its token over.
            assert_eq!(received, 0, "round {round} ({step}): A was paid");
            let melted = !STEPS[..5].contains(&step);
            let (want_fees, want_kept) = if melted { (MELT_FEE, 1) } else { (0, 0) };
            assert_eq!(
                (fees, kept),
                (want_fees, want_kept),
                "round {round} ({step}): the melt fee is reported once if the melt was paid; \
                 resume:{resumed}; history {:?}",
                wb.history()?
            );
        }
        let held = wa.balance()? + wb.balance()? + wc.balance()?;
        let all_fees = wa.fees()? + wb.fees()? + wc.fees()?;
        assert_eq!(
            held + all_fees,
            FUNDS,
            "round {round}: sats are conserved after the crash: {held} held + {all_fees} \
             fees != {FUNDS} funded"
        );
    }
    b.daemon.stop()?;
    eprintln!("[{:?}] payment scenario done", started.elapsed());
    Ok(())
}

/// How many swaps B's wallet closed with the value kept (history).
fn kept_swaps(w: &WalletNode) -> Result<usize> {
    Ok(w.history()?.iter().filter(|e| e.0 == "swap_kept").count())
}
