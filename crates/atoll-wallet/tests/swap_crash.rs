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

/// Per-day budget of these wallets: what is left of it shows what the
/// wallet counted as spent.
const PER_DAY: u64 = 1_000;

/// The history without the funding invoice.
fn payments_history(wallet: &atoll_wallet::Wallet) -> Vec<atoll_wallet::HistoryEntry> {
    let mut history = wallet.history(100).unwrap();
    history.retain(|e| e.kind != "invoice");
    history
}

/// A wallet on `dir` whose budget shows its spending.
async fn open_counted(dir: &std::path::Path, mints: &[&str]) -> atoll_wallet::Wallet {
    atoll_wallet::Wallet::builder(dir)
        .budget(atoll_wallet::Budget {
            per_payment_sat: 10 * PER_DAY,
            per_day_sat: PER_DAY,
        })
        .trust(mints.iter().copied())
        .open()
        .await
        .unwrap()
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
        reclaim_after_secs: None,
    };

    let wallet = open_counted(dir.path(), &[mint_a.url(), mint_b.url()]).await;
    fund(&network, &wallet, mint_a.url(), FUNDS).await;
    wallet.set_crash_point(Some(point));
    let crashed = within("pay", wallet.pay(&request)).await;
    assert!(
        matches!(crashed, Err(PayError::Crashed(p)) if p == point),
        "{point:?}: {crashed:?}"
    );
    // The process is gone: nothing of this wallet runs any more.
    drop(wallet);

    let wallet = within("reopen", open_counted(dir.path(), &[])).await;
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

    // The fee is in the history and counted against the budget, however
    // the swap was cut short; a swap that never paid costs nothing.
    let history = payments_history(&wallet);
    if melt_paid_by(point) {
        assert_eq!(history.len(), 1, "{point:?}: {history:?}");
        let kept = &history[0];
        assert_eq!(kept.kind, "swap_kept", "{point:?}: {kept:?}");
        assert_eq!(
            kept.mint,
            atoll_wallet::normalize_mint_url(mint_b.url()).unwrap(),
            "{point:?}: {kept:?}"
        );
        assert_eq!(
            (kept.amount_sat, kept.fee_sat),
            (AMOUNT, FEE_A),
            "{point:?}: {kept:?}"
        );
        assert!(
            kept.note.contains("payment not made"),
            "{point:?}: {kept:?}"
        );
    } else {
        assert!(history.is_empty(), "{point:?}: {history:?}");
    }
    assert_eq!(
        wallet.budget_left().unwrap(),
        PER_DAY - fees,
        "{point:?}: the budget counts exactly the fee"
    );

    // A second start changes nothing.
    drop(wallet);
    let wallet = within("reopen", open_counted(dir.path(), &[])).await;
    assert_eq!(payments_history(&wallet), history);
    assert_eq!(wallet.budget_left().unwrap(), PER_DAY - fees);
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
    for point in CrashPoint::all() {
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
        reclaim_after_secs: None,
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

/// The process dies while the melt is in flight: the source mint paid the
/// invoice, the wallet never heard back (cdk's melt saga and the journal
/// both stop mid-step). A fresh wallet finishes the melt from cdk's saga,
/// mints once at the target and records the melt fee in the history and
/// the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_cut_off_during_the_melt_records_its_fee() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use cdk::nuts::MintQuoteState;

    let network = LightningNetwork::new();
    let reply_delay = Arc::new(AtomicU64::new(0));
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .reply_latency_ms(reply_delay.clone())
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = open_counted(dir.path(), &[mint_a.url(), mint_b.url()]).await;
    fund(&network, &wallet, mint_a.url(), FUNDS).await;

    // Mint A now answers 5 s late: the melt is paid at once, the wallet
    // waits for the answer, and is killed while it waits.
    reply_delay.store(5_000, Ordering::Relaxed);
    let request = PayRequest {
        accepted_mints: vec![mint_b.url().to_owned()],
        amount_sat: AMOUNT,
        max_fee_sat: 5,
        purpose: "cut off".to_owned(),
        reclaim_after_secs: None,
    };
    let paying = tokio::spawn({
        let wallet = wallet.clone();
        async move { wallet.pay(&request).await }
    });
    let deadline = std::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let quotes = mint_b.mint().mint_quotes().await.unwrap();
        if quotes.iter().any(|q| q.state() == MintQuoteState::Paid) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the melt never paid");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The process is gone mid-melt.
    paying.abort();
    assert!(paying.await.unwrap_err().is_cancelled());
    drop(wallet);
    reply_delay.store(0, Ordering::Relaxed);

    let wallet = within("reopen", open_counted(dir.path(), &[])).await;
    assert!(within("resume", wallet.resume()).await.unwrap().is_empty());
    let a = wallet.mint_balance(mint_a.url()).await.unwrap();
    let b = wallet.mint_balance(mint_b.url()).await.unwrap();
    assert_eq!(
        (a, b),
        (FUNDS - AMOUNT - FEE_A, AMOUNT),
        "paid once, minted once"
    );
    let history = payments_history(&wallet);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].kind, "swap_kept", "{history:?}");
    assert_eq!(
        (history[0].amount_sat, history[0].fee_sat),
        (AMOUNT, FEE_A),
        "the melt fee learned after the crash: {history:?}"
    );
    assert_eq!(wallet.budget_left().unwrap(), PER_DAY - FEE_A);
    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}
