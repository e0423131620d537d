//! Two or three real cdk mints on one fake Lightning network: a melt at one
//! mint pays another mint's invoice exactly once, and nothing else mints.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::HashMap;
use std::time::Duration;

use atoll_testkit::lightning::{InvoiceStatus, LightningNetwork, PayError, Payer};
use atoll_testkit::mint::{TestMint, TestWallet, fund};
use bitcoin::hashes::{Hash, sha256};
use cdk::Amount;
use cdk::amount::SplitTarget;
use cdk::nuts::{CurrencyUnit, MeltQuoteState, MintQuoteState, PaymentMethod};
use cdk::wallet::MintQuote;
use cdk_common::payment::{Bolt11IncomingPaymentOptions, IncomingPaymentOptions, MintPayment};
use lightning_invoice::Bolt11Invoice;

/// Routing fee mint A's node pays per melt, in sat.
const FEE_A: u64 = 2;
/// Routing fee mint C's node pays per melt, in sat.
const FEE_C: u64 = 1;
/// What the paying wallets start with, in sat.
const FUNDS: u64 = 100;
/// How long a wallet waits for a paid quote before the test fails.
const MINT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a melt may take before the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The wallet's balance in sat.
async fn balance(wallet: &TestWallet) -> Result<u64, cdk::Error> {
    Ok(u64::from(wallet.total_balance().await?))
}

/// A mint quote of `amount` sat at the wallet's mint: the mint's invoice.
async fn invoice_of(wallet: &TestWallet, amount: u64) -> Result<MintQuote, cdk::Error> {
    wallet
        .mint_quote(
            PaymentMethod::BOLT11,
            Some(Amount::from(amount)),
            None,
            None,
        )
        .await
}

/// Awaits `step`, failing the test if it takes longer than [`STEP_TIMEOUT`]
/// (a melt whose outcome the mint cannot settle waits forever).
async fn within<F: Future>(what: &str, step: F) -> F::Output {
    tokio::time::timeout(STEP_TIMEOUT, step)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in {STEP_TIMEOUT:?}"))
}

/// Melts `bolt11` from `wallet`: quote, prepare, confirm.
async fn melt(wallet: &TestWallet, bolt11: &str) -> Result<cdk::types::FinalizedMelt, cdk::Error> {
    within("melt", async {
        let quote = wallet
            .melt_quote(PaymentMethod::BOLT11, bolt11, None, None)
            .await?;
        wallet
            .prepare_melt(&quote.id, HashMap::new())
            .await?
            .confirm()
            .await
    })
    .await
}

/// A wallet funded at mint A pays mint B's invoice; B's wallet then mints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn melt_at_one_mint_pays_another_mints_invoice() {
    const AMOUNT: u64 = 40;
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    assert!(mint_a.url().starts_with("http://127.0.0.1:"));
    assert!(mint_b.url().starts_with("http://127.0.0.1:"));

    let wallet_a = mint_a.wallet().await.unwrap();
    fund(&network, &wallet_a, FUNDS).await.unwrap();
    assert_eq!(balance(&wallet_a).await.unwrap(), FUNDS);

    let wallet_b = mint_b.wallet().await.unwrap();
    let quote_b = invoice_of(&wallet_b, AMOUNT).await.unwrap();
    assert_eq!(
        network.invoice_status(&quote_b.request).unwrap(),
        Some(InvoiceStatus::Unpaid)
    );

    let melt_quote = wallet_a
        .melt_quote(PaymentMethod::BOLT11, quote_b.request.clone(), None, None)
        .await
        .unwrap();
    assert_eq!(u64::from(melt_quote.amount), AMOUNT);
    assert_eq!(u64::from(melt_quote.fee_reserve), FEE_A);
    let prepared = wallet_a
        .prepare_melt(&melt_quote.id, HashMap::new())
        .await
        .unwrap();
    let finalized = within("melt", prepared.confirm()).await.unwrap();
    assert_eq!(finalized.state(), MeltQuoteState::Paid);
    assert_eq!(u64::from(finalized.amount()), AMOUNT);
    assert_eq!(u64::from(finalized.fee_paid()), FEE_A);

    // The proof of payment is the invoice's preimage.
    let invoice: Bolt11Invoice = quote_b.request.parse().unwrap();
    let preimage = hex::decode(finalized.payment_proof().unwrap()).unwrap();
    assert_eq!(sha256::Hash::hash(&preimage), *invoice.payment_hash());

    assert_eq!(
        network.invoice_status(&quote_b.request).unwrap(),
        Some(InvoiceStatus::Paid {
            payer: Payer::Node(mint_a.lightning().node_id())
        })
    );

    let proofs = wallet_b
        .wait_and_mint_quote(quote_b, SplitTarget::default(), None, MINT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        proofs.iter().map(|p| u64::from(p.amount)).sum::<u64>(),
        AMOUNT
    );

    assert_eq!(balance(&wallet_a).await.unwrap(), FUNDS - AMOUNT - FEE_A);
    assert_eq!(balance(&wallet_b).await.unwrap(), AMOUNT);

    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

/// With input fees, the payer loses exactly amount + routing fee + input fees
/// (of the melt and of the swap before it), as the wallet reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_fees_and_routing_fee_are_both_counted() {
    const AMOUNT: u64 = 40;
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .input_fee_ppk(100)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let wallet_a = mint_a.wallet().await.unwrap();
    fund(&network, &wallet_a, FUNDS).await.unwrap();
    let wallet_b = mint_b.wallet().await.unwrap();
    let quote_b = invoice_of(&wallet_b, AMOUNT).await.unwrap();

    let melt_quote = wallet_a
        .melt_quote(PaymentMethod::BOLT11, quote_b.request.clone(), None, None)
        .await
        .unwrap();
    let prepared = wallet_a
        .prepare_melt(&melt_quote.id, HashMap::new())
        .await
        .unwrap();
    // Fees of the swap that `prepare_melt` may do to get exact inputs; they
    // are not part of `FinalizedMelt::fee_paid`.
    let swap_fee = u64::from(prepared.swap_fee());
    let finalized = within("melt", prepared.confirm()).await.unwrap();
    // Routing fee plus the melt's own input fee.
    let fee_paid = u64::from(finalized.fee_paid());
    assert!(fee_paid > FEE_A, "fee {fee_paid} has no input fee in it");
    assert_eq!(
        balance(&wallet_a).await.unwrap(),
        FUNDS - AMOUNT - fee_paid - swap_fee
    );

    wallet_b
        .wait_and_mint_quote(quote_b, SplitTarget::default(), None, MINT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(balance(&wallet_b).await.unwrap(), AMOUNT);

    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

/// Nobody paid B's invoice, so B mints nothing for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_invoice_does_not_mint() {
    let network = LightningNetwork::new();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let wallet_b = mint_b.wallet().await.unwrap();
    let quote = invoice_of(&wallet_b, 21).await.unwrap();

    assert!(
        wallet_b
            .mint(&quote.id, SplitTarget::default(), None)
            .await
            .is_err()
    );
    let waited = wallet_b
        .wait_and_mint_quote(
            quote.clone(),
            SplitTarget::default(),
            None,
            Duration::from_secs(3),
        )
        .await;
    assert!(waited.is_err(), "an unpaid quote minted: {waited:?}");

    let state = wallet_b.check_mint_quote_status(&quote.id).await.unwrap();
    assert_eq!(state.state, MintQuoteState::Unpaid);
    assert_eq!(u64::from(state.amount_paid), 0);
    assert_eq!(
        network.invoice_status(&quote.request).unwrap(),
        Some(InvoiceStatus::Unpaid)
    );
    assert_eq!(balance(&wallet_b).await.unwrap(), 0);

    mint_b.shutdown().await.unwrap();
}

/// B's invoice is paid once by A; a second payment, from A again or from
/// another mint C, fails and costs its wallet nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_is_paid_only_once() {
    const AMOUNT: u64 = 30;
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let mint_c = TestMint::builder(&network)
        .melt_fee_sat(FEE_C)
        .spawn()
        .await
        .unwrap();
    let wallet_a = mint_a.wallet().await.unwrap();
    let wallet_b = mint_b.wallet().await.unwrap();
    let wallet_c = mint_c.wallet().await.unwrap();
    fund(&network, &wallet_a, FUNDS).await.unwrap();
    fund(&network, &wallet_c, FUNDS).await.unwrap();

    let quote_b = invoice_of(&wallet_b, AMOUNT).await.unwrap();
    melt(&wallet_a, &quote_b.request).await.unwrap();
    let after_first = FUNDS - AMOUNT - FEE_A;
    assert_eq!(balance(&wallet_a).await.unwrap(), after_first);

    // Again from the same mint: mint A refuses to melt a paid request.
    let again = melt(&wallet_a, &quote_b.request).await;
    assert!(
        matches!(again, Err(cdk::Error::RequestAlreadyPaid)),
        "paid twice from A: {again:?}"
    );
    assert_eq!(balance(&wallet_a).await.unwrap(), after_first);

    // From another mint: the network refuses in C's `make_payment`.
    let again = melt(&wallet_c, &quote_b.request).await;
    assert!(
        matches!(again, Err(cdk::Error::PaymentFailed)),
        "paid twice from C: {again:?}"
    );
    assert_eq!(balance(&wallet_c).await.unwrap(), FUNDS);
    assert_eq!(
        network.invoice_status(&quote_b.request).unwrap(),
        Some(InvoiceStatus::Paid {
            payer: Payer::Node(mint_a.lightning().node_id())
        })
    );

    // The failed melt left C's proofs unspent at mint C, not only in the
    // wallet's database: they still pay a fresh invoice of all but the fee.
    let fresh = invoice_of(&wallet_b, FUNDS - FEE_C).await.unwrap();
    let finalized = melt(&wallet_c, &fresh.request).await.unwrap();
    assert_eq!(finalized.state(), MeltQuoteState::Paid);
    assert_eq!(balance(&wallet_c).await.unwrap(), 0);

    // B was paid once per invoice.
    wallet_b
        .wait_and_mint_quote(quote_b, SplitTarget::default(), None, MINT_TIMEOUT)
        .await
        .unwrap();
    wallet_b
        .wait_and_mint_quote(fresh, SplitTarget::default(), None, MINT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(balance(&wallet_b).await.unwrap(), AMOUNT + FUNDS - FEE_C);

    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
    mint_c.shutdown().await.unwrap();
}

/// A valid invoice from a node of another network cannot be paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn melting_an_unknown_invoice_fails() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .spawn()
        .await
        .unwrap();
    let wallet_a = mint_a.wallet().await.unwrap();
    fund(&network, &wallet_a, FUNDS).await.unwrap();

    let elsewhere = LightningNetwork::new().node();
    let foreign = elsewhere
        .create_incoming_payment_request(IncomingPaymentOptions::Bolt11(
            Bolt11IncomingPaymentOptions {
                description: None,
                amount: cdk_common::Amount::new(10, CurrencyUnit::Sat),
                unix_expiry: None,
            },
        ))
        .await
        .unwrap()
        .request;
    assert_eq!(network.invoice_status(&foreign).unwrap(), None);

    let result = melt(&wallet_a, &foreign).await;
    assert!(
        matches!(result, Err(cdk::Error::PaymentFailed)),
        "paid an unknown invoice: {result:?}"
    );
    assert_eq!(balance(&wallet_a).await.unwrap(), FUNDS);
    assert!(matches!(
        network.pay_external(&foreign),
        Err(PayError::UnknownPaymentHash { .. })
    ));

    mint_a.shutdown().await.unwrap();
}
