//! `atoll-devnet`: the local infrastructure for the demo, the
//! network-namespace scenarios and the NixOS VM tests — an iroh relay, a
//! Nostr relay and optionally a static HTTP origin, Cashu mints on one fake
//! Lightning network and an endpoint that pays their invoices from outside —
//! until SIGTERM/SIGINT. Prints one `NAME=URL` line per service on stdout
//! once they are up, and then tells systemd (`Type=notify`: READY=1, and
//! WATCHDOG=1 pings when `WatchdogSec=` is set); logs go to stderr.
//! `modules/devnet.nix` runs it as a NixOS service for the VM tests.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use atoll_testkit::lightning::LightningNetwork;
use atoll_testkit::mint::TestMint;
use atoll_testkit::{TestNostrRelay, TestRelay};

fn usage() -> ! {
    eprintln!(
        "usage: atoll-devnet [--iroh-bind ADDR] [--nostr-bind ADDR] [--origin-dir DIR --origin-bind ADDR]\n\
         \x20                   [--mints N [--mint-bind IP] [--mint-port BASE] [--melt-fee-sat SAT]\n\
         \x20                    [--lightning-bind ADDR]]\n\
         Runs an open iroh relay (plain HTTP), a Nostr relay and optionally an HTTP origin\n\
         serving the files of DIR at /<name>, for tests and the demo.\n\
         --mints N runs N Cashu test mints (fake Lightning backend, all on one network) on IP,\n\
         mint i on port BASE+i-1 (BASE 0: ephemeral ports; printed as MINT_1=URL …), each\n\
         charging SAT per melt. Their state is temporary: every start makes new mints, with\n\
         new keys and no ecash. On ADDR, an endpoint `POST /pay {{\"bolt11\": \"…\"}}` pays any\n\
         of their invoices from outside the network (for funding test wallets; printed as\n\
         LIGHTNING=URL), and `POST /latency {{\"ms\": N}}` delays every mint request by N ms\n\
         from then on.\n\
         Defaults: 127.0.0.1:0 for every ADDR (ephemeral ports), 127.0.0.1 for IP, 0 for BASE.\n\
         Not for production: the iroh relay admits everyone; use atoll-relayd for a group."
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<()> {
    atoll_core::service::init_tracing();
    let mut iroh_bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut nostr_bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut origin_bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut lightning_bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut mint_bind: IpAddr = "127.0.0.1".parse()?;
    let mut mints: u16 = 0;
    let mut mint_port: u16 = 0;
    let mut melt_fee_sat: u64 = 0;
    let mut origin_dir: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut text = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--iroh-bind" => iroh_bind = text().parse()?,
            "--nostr-bind" => nostr_bind = text().parse()?,
            "--origin-bind" => origin_bind = text().parse()?,
            "--origin-dir" => origin_dir = Some(text().into()),
            "--mints" => mints = text().parse()?,
            "--mint-bind" => mint_bind = text().parse()?,
            "--mint-port" => mint_port = text().parse()?,
            "--melt-fee-sat" => melt_fee_sat = text().parse()?,
            "--lightning-bind" => lightning_bind = text().parse()?,
            _ => usage(),
        }
    }
    let mint_ports = mint_ports(mint_port, mints)?;
    let relay = TestRelay::builder().bind(iroh_bind).spawn().await?;
    let nostr = TestNostrRelay::spawn_on(nostr_bind).await?;
    println!("IROH_RELAY={}", relay.url());
    println!("NOSTR_RELAY={}", nostr.url());
    if let Some(dir) = origin_dir {
        let listener = tokio::net::TcpListener::bind(origin_bind).await?;
        println!("ORIGIN=http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, origin(dir)).await {
                eprintln!("origin: {e}");
            }
        });
    }
    let network = LightningNetwork::new();
    let latency = Arc::new(AtomicU64::new(0));
    let mut test_mints = Vec::new();
    for (n, port) in (1..).zip(mint_ports) {
        let bind = SocketAddr::new(mint_bind, port);
        let mint = TestMint::builder(&network)
            .bind(bind)
            .melt_fee_sat(melt_fee_sat)
            .latency_ms(latency.clone())
            .spawn()
            .await
            .with_context(|| format!("starting mint {n} on {bind}"))?;
        println!("MINT_{n}={}", mint.url());
        test_mints.push(mint);
    }
    if mints > 0 {
        let listener = tokio::net::TcpListener::bind(lightning_bind).await?;
        println!("LIGHTNING=http://{}", listener.local_addr()?);
        let network = network.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, pay_endpoint(network, latency)).await {
                eprintln!("lightning: {e}");
            }
        });
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    let notifier = atoll_core::service::Notifier::from_env();
    let watchdog = notifier.spawn_watchdog();
    notifier.ready(&format!("relays up, {mints} mint(s)"));
    atoll_core::service::shutdown_signal().await;
    notifier.stopping();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    for mint in test_mints {
        if let Err(e) = mint.shutdown().await {
            eprintln!("mint: {e:#}");
        }
    }
    nostr.shutdown();
    relay.shutdown().await?;
    Ok(())
}

/// The ports of `mints` mints from `base` (`--mint-port`): `base`,
/// `base + 1`, …; all 0 (ephemeral) when `base` is 0.
fn mint_ports(base: u16, mints: u16) -> Result<Vec<u16>> {
    if base == 0 {
        return Ok(vec![0; usize::from(mints)]);
    }
    let last = u32::from(base) + u32::from(mints.max(1)) - 1;
    if last > u32::from(u16::MAX) {
        bail!("--mint-port {base} with --mints {mints}: the last mint's port {last} is over 65535");
    }
    Ok((0..mints).map(|i| base + i).collect())
}

/// `POST /pay {"bolt11": "…"}`: someone outside the fake Lightning network
/// pays the invoice ([`LightningNetwork::pay_external`]). 200 when paid,
/// 400 with the error otherwise. `POST /latency {"ms": N}`: every mint
/// request waits N ms from now on.
fn pay_endpoint(network: LightningNetwork, latency: Arc<AtomicU64>) -> axum::Router {
    use axum::{Json, http::StatusCode, routing::post};
    #[derive(serde::Deserialize)]
    struct Pay {
        bolt11: String,
    }
    #[derive(serde::Deserialize)]
    struct Latency {
        ms: u64,
    }
    axum::Router::new()
        .route(
            "/latency",
            post(move |Json(req): Json<Latency>| async move {
                latency.store(req.ms, Ordering::Relaxed);
                "ok\n"
            }),
        )
        .route(
            "/pay",
            post(move |Json(req): Json<Pay>| {
                let network = network.clone();
                async move {
                    match network.pay_external(&req.bolt11) {
                        Ok(()) => (StatusCode::OK, "paid\n".to_owned()),
                        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
                    }
                }
            }),
        )
}

/// A static file server: `GET /<name>` for plain file names in `dir`.
fn origin(dir: std::path::PathBuf) -> axum::Router {
    use axum::{extract::Path, http::StatusCode, response::IntoResponse, routing::get};
    axum::Router::new().route(
        "/{name}",
        get(move |Path(name): Path<String>| {
            let dir = dir.clone();
            async move {
                let plain = !name.starts_with('.')
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !plain {
                    return StatusCode::BAD_REQUEST.into_response();
                }
                match tokio::fs::File::open(dir.join(&name)).await {
                    Ok(f) => axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f))
                        .into_response(),
                    Err(_) => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }),
    )
}
