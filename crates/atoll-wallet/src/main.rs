//! `atoll-walletd`: this handles only the command line and config loading;
//! the wallet lives in the library.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use atoll_core::local_api;
use atoll_core::service::{self, Notifier, ServiceArgs};
use atoll_wallet::{Wallet, WalletConfig, config::ENV_PREFIX};
use clap::Parser;

/// The Atoll wallet: Cashu ecash over several trusted mints, within budgets.
#[derive(Debug, Parser)]
#[command(name = "atoll-walletd", version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
}

/// How often open swaps (a mint was down) are tried again.
const RESUME_EVERY: Duration = Duration::from_secs(60);

/// How often ecash is moved off retired or expiring keysets.
const ROTATE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Background upkeep, every minute: a swap left open because a mint was
/// down is settled once it is back; tokens a payee should have redeemed at
/// once and did not are taken back; ecash on retired or expiring keysets is
/// moved to the active ones, at start and then daily.
async fn upkeep(wallet: Wallet) {
    let mut tick = tokio::time::interval(RESUME_EVERY);
    let mut rotated: Option<Instant> = None;
    loop {
        tick.tick().await;
        if matches!(wallet.unsettled_swaps(), Ok(n) if n > 0) {
            match wallet.resume().await {
                Ok(report) => tracing::info!(?report, "resumed the swap journal"),
                Err(e) => tracing::warn!("resuming the swap journal: {e}"),
            }
        }
        match wallet.sweep_outstanding().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(n, "took back tokens their payees never redeemed"),
            Err(e) => tracing::warn!("checking outstanding tokens: {e}"),
        }
        if rotated.is_none_or(|at| at.elapsed() >= ROTATE_EVERY) {
            rotated = Some(Instant::now());
            match wallet.rotate_keysets().await {
                Ok(moved) if moved.is_empty() => {}
                Ok(moved) => tracing::info!(?moved, "ecash moved to active keysets"),
                Err(e) => tracing::warn!("moving ecash off old keysets: {e}"),
            }
        }
    }
}

/// Names a swap step at which the first swap pauses for good, for tests
/// that kill the daemon there.
const TEST_PAUSE_ENV: &str = "ATOLL_WALLET_TEST_PAUSE_AT";

fn main() -> ExitCode {
    let args = Args::parse();
    service::main("atoll-walletd", || async {
        run(args).await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config: WalletConfig = args.service.load_config(ENV_PREFIX)?;
    config.validate()?;
    if args.service.check_config {
        service::report_config_ok(args.service.config.as_deref(), &config);
        return Ok(());
    }
    let state_dir = args.service.state_dir()?;
    let socket = match &config.api.socket {
        Some(p) => p.clone(),
        None => args.service.runtime_dir()?.join("walletd.sock"),
    };
    let mut builder = Wallet::builder(&state_dir)
        .budget(config.budget)
        .allow_insecure_mints(config.wallet.allow_insecure_mints)
        .trust(config.wallet.trusted_mints.iter().cloned())
        .mint_pacing(config.wallet.mint_pacing);
    if let Some(seed) = &config.wallet.seed_file {
        builder = builder.seed_file(seed);
    }
    // For tests that kill the daemon at one step of a swap (see
    // `WalletBuilder::test_pause_at`).
    if let Ok(point) = std::env::var(TEST_PAUSE_ENV) {
        let point = point
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{TEST_PAUSE_ENV}: {e}"))?;
        tracing::warn!(%point, "{TEST_PAUSE_ENV} is set: the first swap to reach it stops there");
        builder = builder.test_pause_at(Some(point));
    }
    let notifier = Notifier::from_env();
    let wallet = builder.open().await.context("opening the wallet")?;
    let listener = local_api::bind(&socket)
        .await
        .with_context(|| format!("binding {}", socket.display()))?;
    let balance = wallet.balance().await.context("reading the balance")?;
    tracing::info!(socket = %socket.display(), total_sat = balance.total_sat, "wallet up");
    notifier.ready(&format!("holding {} sat", balance.total_sat));
    let watchdog = notifier.spawn_watchdog();
    let upkeep = tokio::spawn(upkeep(wallet.clone()));
    let served = local_api::serve(
        listener,
        atoll_wallet::api::router(wallet),
        service::shutdown_signal(),
    )
    .await;
    notifier.stopping();
    upkeep.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    served.context("serving the local API")
}
