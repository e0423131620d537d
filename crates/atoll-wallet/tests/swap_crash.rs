//! A swap that crashes between any two steps resumes, in a fresh wallet on
//! the same state dir, without losing or double-spending a sat: the invoice
//! is paid at most once, the target quote minted at most once, and
//! source + target + fees add up to what the wallet had.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use atoll_testkit::lightning::LightningNetwork;
use atoll_testkit::mint::TestMint;
use atoll_wallet::{CrashPoint, PayError, PayRequest, Route, SwapStep};
use common::*;

/// What the payee must receive.
const AMOUNT: u64 = 30;

/// Every crash point: before and after each step.
fn crash_points() -> Vec<CrashPoint> {
    SwapStep::ALL
        .into_iter()
        .flat_map(|s| [CrashPoint::Before(s), CrashPoint::After(s)])
        .collect()
}

/// Whether the source paid the invoice by the time of `point`.
fn melt_paid_by(point: CrashPoint) -> bool {
    !matches!(
        point,
        CrashPoint::Before(SwapStep::MintQuote | SwapStep::MeltQuote | SwapStep::MeltPaid)
            | CrashPoint::After(SwapStep::MintQuote | SwapStep::MeltQuote)
    )
}

async fn crash_and_resume(point: CrashPoint) {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let request = PayRequest {
        accepted_mints: vec![mint_b.url().to_owned()],
        amount_sat: AMOUNT,
        max_fee_sat: 5,
        purpose: format!("crash at {point:?}"),
    };

    let wallet = open(dir.path(), &[mint_a.url(), mint_b.url()]).await;
    fund(&network, &wallet, mint_a.url(), FUNDS).await;
    wallet.set_crash_point(Some(point));
    let crashed = within("pay", wallet.pay(&request)).await;
    assert!(
        matches!(crashed, Err(PayError::Crashed(p)) if p == point),
        "{point:?}: {crashed:?}"
    );
    // The process is gone: nothing of this wallet runs any more.
    drop(wallet);

    let wallet = within("reopen", open(dir.path(), &[])).await;
    // `open` resumed the journal; nothing is left open.
    let report = within("resume", wallet.resume()).await.unwrap();
    assert!(report.is_empty(), "{point:?}: still open: {report:?}");

    let a = wallet.mint_balance(mint_a.url()).await.unwrap();
    let b = wallet.mint_balance(mint_b.url()).await.unwrap();
    if melt_paid_by(point) {
        // Paid once, minted once at B, value kept there (no token went out).
        assert_eq!(a, FUNDS - AMOUNT - FEE_A, "{point:?}: a={a} b={b}");
        assert_eq!(b, AMOUNT, "{point:?}: a={a} b={b}");
    } else {
        assert_eq!((a, b), (FUNDS, 0), "{point:?}");
    }
    let fees = if melt_paid_by(point) { FEE_A } else { 0 };
    assert_eq!(a + b + fees, FUNDS, "{point:?}: value not conserved");

    // A second start changes nothing.
    drop(wallet);
    let wallet = within("reopen", open(dir.path(), &[])).await;
    assert_eq!(wallet.mint_balance(mint_a.url()).await.unwrap(), a);
    assert_eq!(wallet.mint_balance(mint_b.url()).await.unwrap(), b);

    // The wallet still pays: directly now if B holds enough, else by swap.
    let payment = within("pay", wallet.pay(&request)).await.unwrap();
    if melt_paid_by(point) {
        assert_eq!(payment.route, Route::Direct, "{point:?}");
    } else {
        assert!(matches!(payment.route, Route::Swap { .. }), "{point:?}");
    }
    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

/// The crash matrix: every point, each with its own mints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_resumes_without_loss_or_double_spend() {
    for point in crash_points() {
        crash_and_resume(point).await;
    }
}

/// Resuming never pays an invoice again: after a crash right after the
/// melt, the invoice is paid (once) and a resume in a fresh wallet mints it
/// exactly once; a third start finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_the_melt_mints_exactly_once() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = open(dir.path(), &[mint_a.url(), mint_b.url()]).await;
    fund(&network, &wallet, mint_a.url(), FUNDS).await;
    wallet.set_crash_point(Some(CrashPoint::After(SwapStep::MeltPaid)));
    let request = PayRequest {
        accepted_mints: vec![mint_b.url().to_owned()],
        amount_sat: AMOUNT,
        max_fee_sat: 5,
        purpose: String::new(),
    };
    assert!(within("pay", wallet.pay(&request)).await.is_err());
    drop(wallet);

    // Two wallets over the same state dir resume one after the other.
    let first = atoll_wallet::Wallet::builder(dir.path())
        .resume_on_open(false)
        .open()
        .await
        .unwrap();
    let report = within("resume", first.resume()).await.unwrap();
    assert_eq!(report.finished.len(), 1, "{report:?}");
    assert!(report.pending.is_empty());
    let report = within("resume", first.resume()).await.unwrap();
    assert!(report.is_empty(), "{report:?}");
    drop(first);
    let second = open(dir.path(), &[]).await;
    assert_eq!(
        second.mint_balance(mint_b.url()).await.unwrap(),
        AMOUNT,
        "minted more than once"
    );
    assert_eq!(
        second.mint_balance(mint_a.url()).await.unwrap(),
        FUNDS - AMOUNT - FEE_A
    );
    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}
