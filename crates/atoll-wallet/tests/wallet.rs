//! The wallet against real cdk mints on a linked fake Lightning network:
//! restore from the seed, direct and swap payments with fees, refusals,
//! receiving (and refusing) tokens, a mint that is down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::str::FromStr;

use atoll_testkit::lightning::LightningNetwork;
use atoll_testkit::mint::{TestMint, fund as fund_test_wallet};
use atoll_wallet::{Budget, PayError, PayRequest, ReceiveError, Route, Wallet, WalletError};
use cdk::mint_url::MintUrl;
use cdk::nuts::{CurrencyUnit, Token};

use common::*;

fn request(accepted: &[&str], amount_sat: u64, max_fee_sat: u64) -> PayRequest {
    PayRequest {
        accepted_mints: accepted.iter().map(|s| (*s).to_owned()).collect(),
        amount_sat,
        max_fee_sat,
        purpose: "test".to_owned(),
        reclaim_after_secs: None,
    }
}

/// Funds, pays part of it away (the payee redeems it, so those proofs are
/// spent), then restores the seed into a fresh state dir: the balance
/// comes back, the spent part does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_seed_brings_the_balance_back() {
    let network = LightningNetwork::new();
    let mint = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payee_dir = tempfile::tempdir().unwrap();
    let wallet = open(dir.path(), &[mint.url()]).await;
    fund(&network, &wallet, mint.url(), FUNDS).await;
    let payment = within("pay", wallet.pay(&request(&[mint.url()], 13, 0)))
        .await
        .unwrap();
    let payee = open(payee_dir.path(), &[mint.url()]).await;
    within("receive", payee.receive(&payment.token, 13, &[]))
        .await
        .unwrap();
    let before = wallet.balance().await.unwrap().total_sat;
    assert_eq!(before, FUNDS - 13);

    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fresh.path().join("keys")).unwrap();
    std::fs::copy(
        dir.path().join(atoll_wallet::wallet::SEED_FILE),
        fresh.path().join(atoll_wallet::wallet::SEED_FILE),
    )
    .unwrap();
    drop(wallet);
    let restored_wallet = open(fresh.path(), &[mint.url()]).await;
    assert_eq!(restored_wallet.balance().await.unwrap().total_sat, 0);
    let restored = within("restore", restored_wallet.restore()).await.unwrap();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].unspent_sat, before);
    assert_eq!(restored_wallet.balance().await.unwrap().total_sat, before);
    // The restored ecash is real: it pays.
    let again = within("pay", restored_wallet.pay(&request(&[mint.url()], 7, 0)))
        .await
        .unwrap();
    within("receive", payee.receive(&again.token, 7, &[]))
        .await
        .unwrap();
    mint.shutdown().await.unwrap();
}

/// A direct payment counts the keyset's input fees: the payee nets the
/// amount, the payer loses amount + the fees it was told of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_payment_counts_input_fees() {
    let network = LightningNetwork::new();
    let mint = TestMint::builder(&network)
        .input_fee_ppk(100)
        .spawn()
        .await
        .unwrap();
    let (dir, payee_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wallet = open(dir.path(), &[mint.url()]).await;
    let payee = open(payee_dir.path(), &[mint.url()]).await;
    fund(&network, &wallet, mint.url(), FUNDS).await;

    // A zero fee cap cannot pay where every proof costs a fee.
    let refused = within("pay", wallet.pay(&request(&[mint.url()], 20, 0))).await;
    assert!(
        matches!(&refused, Err(e @ PayError::NoRoute { .. }) if e.is_refusal()),
        "{refused:?}"
    );
    assert_eq!(wallet.balance().await.unwrap().total_sat, FUNDS);

    let payment = within("pay", wallet.pay(&request(&[mint.url()], 20, 5)))
        .await
        .unwrap();
    assert_eq!(payment.route, Route::Direct);
    assert!(payment.token.starts_with("cashuB"), "{}", payment.token);
    assert!(payment.fee_sat > 0 && payment.fee_sat <= 5);
    assert_eq!(
        wallet.balance().await.unwrap().total_sat,
        FUNDS - 20 - payment.fee_sat
    );
    let received = within("receive", payee.receive(&payment.token, 20, &[]))
        .await
        .unwrap();
    assert_eq!(received.amount_sat, 20);
    assert_eq!(payee.balance().await.unwrap().total_sat, 20);
    let history = wallet.history(10).unwrap();
    assert_eq!(history[0].kind, "pay");
    assert_eq!(history[0].fee_sat, payment.fee_sat);
    mint.shutdown().await.unwrap();
}

/// Holding only mint A's ecash, the wallet pays a payee who accepts only
/// mint B by a swap through Lightning, within the fee cap; value is
/// conserved across both mints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_pays_from_another_trusted_mint() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let (dir, payee_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wallet = open(dir.path(), &[mint_a.url(), mint_b.url()]).await;
    let payee = open(payee_dir.path(), &[mint_b.url()]).await;
    fund(&network, &wallet, mint_a.url(), FUNDS).await;

    // The routing fee is above a cap of 1 sat: refused, nothing spent.
    let refused = within("pay", wallet.pay(&request(&[mint_b.url()], 30, 1))).await;
    assert!(
        matches!(refused, Err(PayError::NoRoute { .. })),
        "{refused:?}"
    );
    assert_eq!(wallet.mint_balance(mint_a.url()).await.unwrap(), FUNDS);

    let payment = within("pay", wallet.pay(&request(&[mint_b.url()], 30, 5)))
        .await
        .unwrap();
    assert_eq!(
        payment.route,
        Route::Swap {
            from: canon(mint_a.url())
        }
    );
    assert_eq!(payment.mint, canon(mint_b.url()));
    assert_eq!(payment.fee_sat, FEE_A);
    let a = wallet.mint_balance(mint_a.url()).await.unwrap();
    let b = wallet.mint_balance(mint_b.url()).await.unwrap();
    assert_eq!(a + b + 30 + payment.fee_sat, FUNDS);
    let received = within(
        "receive",
        payee.receive(&payment.token, 30, &[mint_b.url().to_owned()]),
    )
    .await
    .unwrap();
    assert_eq!(received.amount_sat, 30);
    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

/// Budgets per payment and per day, and untrusted targets, refuse with a
/// typed error and spend nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_and_trust_refuse_payments() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network).spawn().await.unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::builder(dir.path())
        .budget(Budget {
            per_payment_sat: 40,
            per_day_sat: 60,
        })
        .trust([mint_a.url()])
        .open()
        .await
        .unwrap();
    fund(&network, &wallet, mint_a.url(), FUNDS).await;

    let over = within("pay", wallet.pay(&request(&[mint_a.url()], 41, 0))).await;
    assert!(
        matches!(over, Err(PayError::OverBudget { left_sat: 40, .. })),
        "{over:?}"
    );
    within("pay", wallet.pay(&request(&[mint_a.url()], 40, 0)))
        .await
        .unwrap();
    // 40 of the day's 60 are spent.
    let over_day = within("pay", wallet.pay(&request(&[mint_a.url()], 21, 0))).await;
    assert!(
        matches!(over_day, Err(PayError::OverBudget { left_sat: 20, .. })),
        "{over_day:?}"
    );
    // B is not trusted and holds nothing: no swap into it.
    let untrusted = within("pay", wallet.pay(&request(&[mint_b.url()], 5, 10))).await;
    assert!(
        matches!(&untrusted, Err(PayError::NoRoute { reasons }) if reasons.iter().any(|r| r.contains("trusted"))),
        "{untrusted:?}"
    );
    assert!(matches!(
        within("pay", wallet.pay(&request(&[mint_a.url()], 0, 0))).await,
        Err(PayError::ZeroAmount)
    ));
    assert_eq!(wallet.balance().await.unwrap().total_sat, FUNDS - 40);
    // Budget state survives a restart.
    drop(wallet);
    let wallet = Wallet::builder(dir.path())
        .budget(Budget {
            per_payment_sat: 40,
            per_day_sat: 60,
        })
        .open()
        .await
        .unwrap();
    assert_eq!(wallet.budget_left().unwrap(), 20);
    assert_eq!(wallet.trusted_mints().unwrap(), vec![canon(mint_a.url())]);
    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

/// Malformed, truncated, foreign-unit, untrusted-mint, too-small,
/// already-spent and double-presented tokens are refused with clear,
/// typed errors, and none of them changes a balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network).spawn().await.unwrap();
    let mint_c = TestMint::builder(&network).spawn().await.unwrap();
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wallet = open(dir.path(), &[mint_a.url()]).await;
    let other = open(other_dir.path(), &[mint_a.url()]).await;

    let sender = mint_a.wallet().await.unwrap();
    fund_test_wallet(&network, &sender, 50).await.unwrap();
    let token_of = |amount: u64| {
        let sender = &sender;
        async move {
            sender
                .prepare_send(cdk::Amount::from(amount), Default::default())
                .await
                .unwrap()
                .confirm(None)
                .await
                .unwrap()
                .to_string()
        }
    };

    // Malformed and truncated.
    for bad in ["", "hello", "cashuBnot-base64!!", "cashuAeyJ0b2tlbiI6"] {
        let err = wallet.receive(bad, 0, &[]).await.unwrap_err();
        assert!(
            matches!(err, ReceiveError::Malformed { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains("not a valid Cashu token"));
    }
    let token = token_of(5).await;
    let truncated = &token[..token.len() / 2];
    let err = wallet.receive(truncated, 0, &[]).await.unwrap_err();
    assert!(matches!(err, ReceiveError::Malformed { .. }), "{err:?}");
    // A sentence for a person, not the parser's debug output.
    let text = err.to_string();
    for debug in ["Io(", "UnexpectedEof", "Error {", "kind:"] {
        assert!(!text.contains(debug), "{text}");
    }
    assert!(text.contains("truncated"), "{text}");

    // Foreign unit: real proofs, labelled usd.
    let proofs = sender.get_unspent_proofs().await.unwrap();
    let usd = Token::new(
        MintUrl::from_str(mint_a.url()).unwrap(),
        proofs,
        None,
        CurrencyUnit::Usd,
    )
    .to_string();
    assert!(matches!(
        wallet.receive(&usd, 0, &[]).await,
        Err(ReceiveError::WrongUnit { .. })
    ));

    // Too small for what was expected.
    assert!(matches!(
        wallet.receive(&token, 6, &[]).await,
        Err(ReceiveError::TooSmall {
            value_sat: 5,
            expected_sat: 6
        })
    ));

    // From a mint not on the list, or not among the expected mints.
    let sender_c = mint_c.wallet().await.unwrap();
    fund_test_wallet(&network, &sender_c, 10).await.unwrap();
    let token_c = sender_c
        .prepare_send(cdk::Amount::from(10), Default::default())
        .await
        .unwrap()
        .confirm(None)
        .await
        .unwrap()
        .to_string();
    let err = wallet.receive(&token_c, 0, &[]).await.unwrap_err();
    assert!(matches!(err, ReceiveError::UntrustedMint { .. }), "{err:?}");
    // It says how to trust the mint.
    assert!(
        err.to_string()
            .contains(&format!("atoll wallet mints trust {}", mint_c.url())),
        "{err}"
    );
    assert!(matches!(
        wallet.receive(&token, 0, &[mint_c.url().to_owned()]).await,
        Err(ReceiveError::UnexpectedMint { .. })
    ));
    assert_eq!(wallet.balance().await.unwrap().total_sat, 0);

    // The good token is taken once.
    let received = within(
        "receive",
        wallet.receive(&token, 5, &[mint_a.url().to_owned()]),
    )
    .await
    .unwrap();
    assert_eq!(received.amount_sat, 5);
    // Presented again to the same wallet, and to another one.
    let again = within("receive", wallet.receive(&token, 5, &[])).await;
    assert!(
        matches!(again, Err(ReceiveError::AlreadySpent)),
        "{again:?}"
    );
    let elsewhere = within("receive", other.receive(&token, 5, &[])).await;
    assert!(
        matches!(elsewhere, Err(ReceiveError::AlreadySpent)),
        "{elsewhere:?}"
    );
    assert_eq!(wallet.balance().await.unwrap().total_sat, 5);
    assert_eq!(other.balance().await.unwrap().total_sat, 0);
    mint_a.shutdown().await.unwrap();
    mint_c.shutdown().await.unwrap();
}

/// A trusted mint that is down: paying into it, asking it for an invoice
/// and receiving its tokens fail with a clear error, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_that_is_down_loses_nothing() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network).spawn().await.unwrap();
    let down = closed_port_url();
    let dir = tempfile::tempdir().unwrap();
    let wallet = open(dir.path(), &[mint_a.url(), down.as_str()]).await;
    fund(&network, &wallet, mint_a.url(), FUNDS).await;

    let paid = within("pay", wallet.pay(&request(&[down.as_str()], 10, 10))).await;
    match paid {
        Err(PayError::NoRoute { reasons }) => {
            assert!(
                reasons.iter().any(|r| r.contains("unreachable")),
                "{reasons:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(wallet.mint_balance(mint_a.url()).await.unwrap(), FUNDS);
    assert!(wallet.resume().await.unwrap().is_empty());

    let invoice = within("invoice", wallet.invoice(&down, 10)).await;
    assert!(
        matches!(invoice, Err(WalletError::Mint(ref e)) if e.to_string().contains("unreachable")),
        "{invoice:?}"
    );

    // A token whose mint went down after it was made.
    let sender_dir = tempfile::tempdir().unwrap();
    let sender = open(sender_dir.path(), &[mint_a.url()]).await;
    fund(&network, &sender, mint_a.url(), 10).await;
    let payment = within("pay", sender.pay(&request(&[mint_a.url()], 10, 0)))
        .await
        .unwrap();
    mint_a.shutdown().await.unwrap();
    let received = within("receive", wallet.receive(&payment.token, 10, &[])).await;
    assert!(
        matches!(received, Err(ReceiveError::Mint(ref e)) if e.to_string().contains("unreachable")),
        "{received:?}"
    );
    assert_eq!(wallet.balance().await.unwrap().total_sat, FUNDS);
}

/// A swap between mints that both charge input fees: the payee nets the
/// amount, the fee reported is what the wallet lost beyond the amount and
/// what it kept, and it is within the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_with_input_fees_reports_every_fee() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .input_fee_ppk(200)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network)
        .input_fee_ppk(300)
        .spawn()
        .await
        .unwrap();
    let (dir, payee_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wallet = open(dir.path(), &[mint_a.url(), mint_b.url()]).await;
    let payee = open(payee_dir.path(), &[mint_b.url()]).await;
    fund(&network, &wallet, mint_a.url(), FUNDS).await;

    const MAX_FEE: u64 = 15;
    let payment = within("pay", wallet.pay(&request(&[mint_b.url()], 25, MAX_FEE)))
        .await
        .unwrap();
    assert!(matches!(payment.route, Route::Swap { .. }));
    assert!(
        payment.fee_sat > FEE_A && payment.fee_sat <= MAX_FEE,
        "fee {}",
        payment.fee_sat
    );
    let a = wallet.mint_balance(mint_a.url()).await.unwrap();
    let b = wallet.mint_balance(mint_b.url()).await.unwrap();
    assert_eq!(
        a + b + 25 + payment.fee_sat,
        FUNDS,
        "a={a} b={b} {payment:?}"
    );
    let received = within("receive", payee.receive(&payment.token, 25, &[]))
        .await
        .unwrap();
    assert_eq!(received.amount_sat, 25);
    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

/// The mint retires the keyset the wallet's ecash is on: a rotation moves
/// it all to the new active keyset, paying (and recording) the input fee
/// of the old one; a second rotation finds nothing left to move, and the
/// wallet still pays from the moved ecash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecash_on_a_retired_keyset_is_moved_to_the_active_one() {
    let network = LightningNetwork::new();
    let mint = TestMint::builder(&network)
        .input_fee_ppk(100)
        .spawn()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = open(dir.path(), &[mint.url()]).await;
    fund(&network, &wallet, mint.url(), FUNDS).await;
    // Nothing to move while the keyset is active.
    assert!(
        within("rotate", wallet.rotate_keysets())
            .await
            .unwrap()
            .is_empty()
    );

    let amounts: Vec<u64> = (0..32).map(|i| 1u64 << i).collect();
    mint.mint()
        .rotate_keyset(CurrencyUnit::Sat, amounts, 0, false, None)
        .await
        .unwrap();
    let rotated = within("rotate", wallet.rotate_keysets()).await.unwrap();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let r = &rotated[0];
    assert_eq!(r.moved_sat, FUNDS);
    assert!(r.fee_sat > 0 && r.fee_sat < 5, "{r:?}");
    assert_eq!(
        wallet.balance().await.unwrap().total_sat,
        FUNDS - r.fee_sat,
        "only the input fee is gone"
    );
    let history = wallet.history(10).unwrap();
    assert_eq!(
        (history[0].kind.as_str(), history[0].fee_sat),
        ("rotate", r.fee_sat)
    );
    assert!(
        within("rotate", wallet.rotate_keysets())
            .await
            .unwrap()
            .is_empty(),
        "everything is on the active keyset now"
    );
    // The new keyset charges no input fee: paying costs nothing.
    let payment = within("pay", wallet.pay(&request(&[mint.url()], 20, 0)))
        .await
        .unwrap();
    assert_eq!((payment.route, payment.fee_sat), (Route::Direct, 0));
    mint.shutdown().await.unwrap();
}

/// Routes are remembered: a swap route that failed (its source mint's
/// Lightning node cannot reach the payee mint's) is tried after one that
/// paid, even though its source holds more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proven_route_is_tried_before_one_that_failed() {
    let network = LightningNetwork::new();
    let elsewhere = LightningNetwork::new();
    // A is on another Lightning network: it can never pay B's invoices.
    let mint_a = TestMint::builder(&elsewhere).spawn().await.unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let mint_c = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = open(dir.path(), &[mint_a.url(), mint_b.url(), mint_c.url()]).await;
    fund(&elsewhere, &wallet, mint_a.url(), FUNDS).await;
    fund(&network, &wallet, mint_c.url(), FUNDS / 2).await;
    let a = atoll_wallet::normalize_mint_url(mint_a.url()).unwrap();
    let c = atoll_wallet::normalize_mint_url(mint_c.url()).unwrap();

    // First payment: A (the larger balance) is tried, fails, C pays.
    let first = within("pay", wallet.pay(&request(&[mint_b.url()], 10, 5)))
        .await
        .unwrap();
    assert_eq!(first.route, Route::Swap { from: c.clone() });
    let routes = wallet.routes().unwrap();
    let stats = |from: &str| routes.iter().find(|r| r.source == from).cloned().unwrap();
    assert_eq!(
        (stats(&a).succeeded, stats(&a).failed),
        (0, 1),
        "{routes:?}"
    );
    assert_eq!(
        (stats(&c).succeeded, stats(&c).failed),
        (1, 0),
        "{routes:?}"
    );
    assert_eq!(
        wallet.mint_balance(mint_a.url()).await.unwrap(),
        FUNDS,
        "the failed route cost nothing"
    );

    // Second payment: C, proven, goes first; A is not tried again.
    let second = within("pay", wallet.pay(&request(&[mint_b.url()], 10, 5)))
        .await
        .unwrap();
    assert_eq!(second.route, Route::Swap { from: c.clone() });
    let routes = wallet.routes().unwrap();
    let stats = |from: &str| routes.iter().find(|r| r.source == from).cloned().unwrap();
    assert_eq!(
        (stats(&a).succeeded, stats(&a).failed),
        (0, 1),
        "{routes:?}"
    );
    assert_eq!(stats(&c).succeeded, 2, "{routes:?}");
    for m in [mint_a, mint_b, mint_c] {
        m.shutdown().await.unwrap();
    }
}

/// An HTTP server on 127.0.0.1 that answers every request with `body`
/// (status 200, JSON content type): a mint gone wrong.
async fn garbage_mint(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(move || async move { ([("content-type", "application/json")], body) });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Mints that answer garbage (not JSON; JSON of the wrong shape; a huge
/// string) are refused with an error naming them, as payee mints, as
/// swap targets and for invoices; the ecash held elsewhere is untouched
/// and no swap is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_that_answers_garbage_is_refused_and_costs_nothing() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network).spawn().await.unwrap();
    let huge: &'static str = Box::leak("x".repeat(4 << 20).into_boxed_str());
    for body in [
        "<html>not a mint</html>",
        r#"{"keysets": 7, "quote": null}"#,
        huge,
    ] {
        let bad = garbage_mint(body).await;
        let dir = tempfile::tempdir().unwrap();
        let wallet = open(dir.path(), &[mint_a.url(), bad.as_str()]).await;
        fund(&network, &wallet, mint_a.url(), FUNDS).await;

        let paid = within("pay", wallet.pay(&request(&[bad.as_str()], 10, 10))).await;
        match paid {
            Err(e @ PayError::NoRoute { .. }) => {
                assert!(e.is_refusal());
                assert!(e.to_string().contains(&bad), "{e}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let invoice = within("invoice", wallet.invoice(&bad, 10)).await;
        assert!(matches!(invoice, Err(WalletError::Mint(_))), "{invoice:?}");
        assert_eq!(wallet.mint_balance(mint_a.url()).await.unwrap(), FUNDS);
        assert!(wallet.resume().await.unwrap().is_empty());
        assert_eq!(wallet.unsettled_swaps().unwrap(), 0);
    }
    mint_a.shutdown().await.unwrap();
}

/// A token made for a payee that redeems at once (`reclaim_after_secs`)
/// and still unredeemed when due never reached its payee: the sweep takes
/// it back. One the payee redeemed is closed; one made without the option
/// is left to its payee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unredeemed_tokens_are_taken_back_when_due() {
    let network = LightningNetwork::new();
    let mint = TestMint::builder(&network).spawn().await.unwrap();
    let (dir, payee_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wallet = open(dir.path(), &[mint.url()]).await;
    let payee = open(payee_dir.path(), &[mint.url()]).await;
    fund(&network, &wallet, mint.url(), FUNDS).await;
    let due_now = |amount| PayRequest {
        reclaim_after_secs: Some(0),
        ..request(&[mint.url()], amount, 0)
    };

    // Lost on the way (nobody redeems it), redeemed, and a plain one.
    let lost = within("pay", wallet.pay(&due_now(7))).await.unwrap();
    let redeemed = within("pay", wallet.pay(&due_now(5))).await.unwrap();
    let plain = within("pay", wallet.pay(&request(&[mint.url()], 3, 0)))
        .await
        .unwrap();
    within("receive", payee.receive(&redeemed.token, 5, &[]))
        .await
        .unwrap();
    assert_eq!(wallet.balance().await.unwrap().total_sat, FUNDS - 15);

    let taken = within("sweep", wallet.sweep_outstanding()).await.unwrap();
    assert_eq!(taken, 1, "only the lost token comes back");
    assert_eq!(wallet.balance().await.unwrap().total_sat, FUNDS - 8);
    assert_eq!(wallet.history(1).unwrap()[0].kind, "reclaim");
    // Nothing is due any more: a second sweep asks no mint.
    assert_eq!(
        within("sweep", wallet.sweep_outstanding()).await.unwrap(),
        0
    );
    // The lost token is worthless now; the plain one is still the payee's.
    let late = within("receive", payee.receive(&lost.token, 7, &[])).await;
    assert!(matches!(late, Err(ReceiveError::AlreadySpent)), "{late:?}");
    within("receive", payee.receive(&plain.token, 3, &[]))
        .await
        .unwrap();
    assert_eq!(payee.balance().await.unwrap().total_sat, 8);
    mint.shutdown().await.unwrap();
}
