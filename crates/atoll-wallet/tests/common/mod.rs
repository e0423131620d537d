//! Shared fixtures: real cdk mints on a linked fake Lightning network and
//! Atoll wallets in temp dirs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::Path;
use std::time::Duration;

use atoll_testkit::lightning::LightningNetwork;
use atoll_wallet::{Budget, Wallet};

/// What the paying wallets start with, in sat.
pub const FUNDS: u64 = 100;
/// Routing fee the source mint's node pays per melt, in sat.
pub const FEE_A: u64 = 2;
/// How long a test step may take before the test fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A generous budget, so that only the tests about budgets hit one.
pub fn big_budget() -> Budget {
    Budget {
        per_payment_sat: 10_000,
        per_day_sat: 100_000,
    }
}

/// Opens a wallet in `dir` trusting `mints`.
pub async fn open(dir: &Path, mints: &[&str]) -> Wallet {
    Wallet::builder(dir)
        .budget(big_budget())
        .trust(mints.iter().copied())
        .open()
        .await
        .unwrap()
}

/// Awaits `fut`, failing the test after [`STEP_TIMEOUT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in {STEP_TIMEOUT:?}"))
}

/// Funds `wallet` at `mint` with `amount` sat: invoice, paid from outside
/// the network, claimed.
pub async fn fund(network: &LightningNetwork, wallet: &Wallet, mint: &str, amount: u64) {
    let invoice = wallet.invoice(mint, amount).await.unwrap();
    network.pay_external(&invoice.bolt11).unwrap();
    within("claiming an invoice", async {
        loop {
            let minted = wallet.claim_invoice(mint, &invoice.quote_id).await.unwrap();
            if minted > 0 {
                assert_eq!(minted, amount);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// The canonical form of a mint URL.
pub fn canon(url: &str) -> String {
    atoll_wallet::normalize_mint_url(url).unwrap()
}

/// A URL on which nothing listens.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
