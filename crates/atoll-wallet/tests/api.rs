//! The local API: through `router.oneshot` for every route and error shape,
//! and once over a real unix socket with mode 0660.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::os::unix::fs::PermissionsExt;

use atoll_core::local_api::{self, ClientError, LocalClient};
use atoll_testkit::lightning::LightningNetwork;
use atoll_testkit::mint::TestMint;
use atoll_wallet::api::{MintEntry, router};
use atoll_wallet::{Balance, HistoryEntry, Invoice, InvoicePaid, Payment, Received};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::*;

/// Percent-encodes a mint URL for a path segment.
fn enc(url: &str) -> String {
    url.replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        // axum's own rejections (bad JSON) are plain text.
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network)
        .melt_fee_sat(FEE_A)
        .spawn()
        .await
        .unwrap();
    let mint_b = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = open(dir.path(), &[]).await;
    let app = router(wallet.clone());
    let a = canon(mint_a.url());

    // Trust list.
    let (status, body) = call(&app, Method::GET, "/mints", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, _) = call(
        &app,
        Method::POST,
        "/invoice",
        Some(json!({"mint": a, "amount_sat": 50})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "untrusted mint gives no invoice"
    );
    let (status, body) = call(&app, Method::PUT, &format!("/mints/{}", enc(&a)), None).await;
    assert_eq!(status, StatusCode::OK);
    let entry: MintEntry = serde_json::from_value(body).unwrap();
    assert_eq!(
        entry,
        MintEntry {
            mint: a.clone(),
            trusted: true,
            balance_sat: 0
        }
    );
    let (status, _) = call(&app, Method::PUT, "/mints/not%20a%20url", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Invoice → paid from outside → claimed → balance.
    let (status, body) = call(
        &app,
        Method::POST,
        "/invoice",
        Some(json!({"mint": a, "amount_sat": FUNDS})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let invoice: Invoice = serde_json::from_value(body).unwrap();
    network.pay_external(&invoice.bolt11).unwrap();
    within("claim", async {
        loop {
            let (status, body) = call(
                &app,
                Method::POST,
                "/invoice/claim",
                Some(json!({"mint": a, "quote_id": invoice.quote_id})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["minted_sat"] == json!(FUNDS) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_, body) = call(&app, Method::GET, "/balance", None).await;
    let balance: Balance = serde_json::from_value(body).unwrap();
    assert_eq!(balance.total_sat, FUNDS);
    assert_eq!(balance.mints.get(&a), Some(&FUNDS));

    // Pay and receive (to ourselves: the token goes back in).
    let (status, body) = call(
        &app,
        Method::POST,
        "/pay",
        Some(json!({
            "accepted_mints": [a], "amount_sat": 10, "max_fee_sat": 0, "purpose": "film"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let payment: Payment = serde_json::from_value(body).unwrap();
    let (status, body) = call(
        &app,
        Method::POST,
        "/receive",
        Some(json!({
            "token": payment.token, "expected_amount_sat": 10, "expected_mints": [a]
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let received: Received = serde_json::from_value(body).unwrap();
    assert_eq!(received.amount_sat, 10);
    let (status, body) = call(
        &app,
        Method::POST,
        "/receive",
        Some(json!({"token": payment.token})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "token already spent");
    let (status, body) = call(
        &app,
        Method::POST,
        "/receive",
        Some(json!({"token": "cashuBxyz"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A token nobody took is taken back once; a second time it is spent.
    let (status, body) = call(
        &app,
        Method::POST,
        "/pay",
        Some(json!({"accepted_mints": [a], "amount_sat": 7, "max_fee_sat": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let payment: Payment = serde_json::from_value(body).unwrap();
    let reclaim = json!({"token": payment.token});
    let (status, body) = call(&app, Method::POST, "/reclaim", Some(reclaim.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let back: Received = serde_json::from_value(body).unwrap();
    assert_eq!(back.amount_sat, 7);
    let (status, body) = call(&app, Method::POST, "/reclaim", Some(reclaim)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for hostile in [
        json!({"token": "cashuBxyz"}),
        json!({"token": ""}),
        json!({"token": "x".repeat(100_000)}),
    ] {
        let (status, body) = call(&app, Method::POST, "/reclaim", Some(hostile)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        "/reclaim",
        Some(json!({"token": "cashuBxyz", "amount": 1})),
    )
    .await;
    assert!(status.is_client_error());
    let (_, body) = call(&app, Method::GET, "/balance", None).await;
    let balance: Balance = serde_json::from_value(body).unwrap();
    assert_eq!(
        balance.total_sat, FUNDS,
        "pay + reclaim leaves the balance whole"
    );

    // Refusals are 409 with a reason; unknown fields are refused.
    let (status, body) = call(
        &app,
        Method::POST,
        "/pay",
        Some(json!({
            "accepted_mints": [a], "amount_sat": 0, "max_fee_sat": 0
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = call(
        &app,
        Method::POST,
        "/pay",
        Some(json!({
            "accepted_mints": [a], "amount_sat": 1, "max_fee_sat": 0, "tip": 3
        })),
    )
    .await;
    assert!(status.is_client_error());

    // Pay mint B's invoice with A's ecash (a melt).
    let wallet_b = mint_b.wallet().await.unwrap();
    let quote = wallet_b
        .mint_quote(
            cdk::nuts::PaymentMethod::BOLT11,
            Some(cdk::Amount::from(20)),
            None,
            None,
        )
        .await
        .unwrap();
    let (status, body) = call(
        &app,
        Method::POST,
        "/pay-invoice",
        Some(json!({"mint": a, "bolt11": quote.request})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let paid: InvoicePaid = serde_json::from_value(body).unwrap();
    assert_eq!((paid.amount_sat, paid.fee_sat), (20, FEE_A));
    assert!(paid.preimage.is_some());

    // History, newest first.
    let (status, body) = call(&app, Method::GET, "/history?limit=3", None).await;
    assert_eq!(status, StatusCode::OK);
    let history: Vec<HistoryEntry> = serde_json::from_value(body).unwrap();
    let kinds: Vec<&str> = history.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(kinds, ["pay_invoice", "reclaim", "pay"]);

    // Restore on a wallet that already holds its ecash changes nothing.
    let (_, body) = call(&app, Method::GET, "/balance", None).await;
    let before: Balance = serde_json::from_value(body).unwrap();
    let (status, body) = call(&app, Method::POST, "/restore", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["mint"], json!(a));
    assert_eq!(body[0]["unspent_sat"], json!(before.total_sat));
    let (_, body) = call(&app, Method::GET, "/balance", None).await;
    let after: Balance = serde_json::from_value(body).unwrap();
    assert_eq!(after, before);

    // Distrust, then a second time is 404.
    let (status, body) = call(&app, Method::DELETE, &format!("/mints/{}", enc(&a)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["trusted"], json!(false));
    let (status, _) = call(&app, Method::DELETE, &format!("/mints/{}", enc(&a)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_a_private_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = open(&dir.path().join("state"), &[]).await;
    let socket = dir.path().join("run/walletd.sock");
    let listener = local_api::bind(&socket).await.unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(local_api::serve(listener, router(wallet), async {
        let _ = stopped.await;
    }));

    let client = LocalClient::new(&socket);
    let balance: Balance = client.get("/balance").await.unwrap();
    assert_eq!(balance.total_sat, 0);
    let entry: MintEntry = client
        .put(&format!("/mints/{}", enc("http://127.0.0.1:3338")))
        .await
        .unwrap();
    assert!(entry.trusted);
    let err = client
        .post::<_, Received>("/receive", &json!({"token": "garbage"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: 400, ref message } if message.contains("not a valid Cashu token")),
        "{err:?}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A caller that goes away while its payment is under way (the swarm node
/// timing out, a killed CLI) does not cut the payment short, and the token
/// it never collected is taken back: the balance comes back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_caller_left_is_taken_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let network = LightningNetwork::new();
    let latency = Arc::new(AtomicU64::new(0));
    let mint = TestMint::builder(&network)
        .latency_ms(latency.clone())
        .spawn()
        .await
        .unwrap();
    let payee_mint = TestMint::builder(&network).spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A per-day budget of 1,000 sat, so that what is left shows what was
    // counted as spent.
    let wallet = atoll_wallet::Wallet::builder(dir.path().join("state"))
        .budget(atoll_wallet::Budget {
            per_payment_sat: 10_000,
            per_day_sat: 1_000,
        })
        .trust([mint.url(), payee_mint.url()])
        .open()
        .await
        .unwrap();
    fund(&network, &wallet, mint.url(), FUNDS).await;
    let socket = dir.path().join("run/walletd.sock");
    let listener = local_api::bind(&socket).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(local_api::serve(listener, router(wallet.clone()), async {
        let _ = stopped.await;
    }));

    // The payee takes only the other mint's ecash, so the wallet swaps;
    // every request to the source mint now takes 400 ms and the caller
    // gives up after 100.
    latency.store(400, Ordering::Relaxed);
    let client = LocalClient::new(&socket);
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        client.post::<_, Payment>(
            "/pay",
            &json!({"accepted_mints": [payee_mint.url()], "amount_sat": 9, "max_fee_sat": 0}),
        ),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the payment should outlast the caller: {gave_up:?}"
    );

    let history = within("the token to be taken back", async {
        loop {
            let history = wallet.history(10).unwrap();
            if history.iter().any(|e| e.kind == "reclaim") {
                return history;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[..2], ["reclaim", "swap"], "{history:?}");
    latency.store(0, Ordering::Relaxed);
    assert_eq!(wallet.balance().await.unwrap().total_sat, FUNDS);
    assert_eq!(
        wallet.budget_left().unwrap(),
        1_000,
        "a token taken back costs no budget"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    mint.shutdown().await.unwrap();
    payee_mint.shutdown().await.unwrap();
}
