//! The wallet's local API (HTTP/JSON on a unix socket, mode 0660: only the
//! services that may spend get the group).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/balance` | spendable sat per mint and in total |
//! | POST | `/pay` | [`PayRequest`] → [`crate::Payment`]; 409 when refused (fall back to the origin). Runs to its end if the caller leaves; the token is then taken back |
//! | POST | `/receive` | `{"token", "expected_amount_sat", "expected_mints"}` → [`crate::Received`] |
//! | POST | `/reclaim` | `{"token"}`: takes back a token this wallet made that the payee never took → [`crate::Received`]; 409 if already redeemed |
//! | POST | `/invoice` | `{"mint", "amount_sat"}` → [`crate::Invoice`] (a mint quote) |
//! | POST | `/invoice/claim` | `{"mint", "quote_id"}` → `{"minted_sat"}` once paid |
//! | POST | `/pay-invoice` | `{"mint", "bolt11"}` → [`crate::InvoicePaid`] (a melt) |
//! | POST | `/restore` | restore from the seed at every trusted mint → [`crate::Restored`] list |
//! | GET | `/history?limit=N` | newest entries first (default 100) |
//! | GET | `/mints` | the trust list |
//! | GET/PUT/DELETE | `/mints/{url-encoded mint URL}` | look up / trust / distrust |
//!
//! Errors are `{"error": "…"}`; internal details go to the log only.

use atoll_core::local_api::ApiError;
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use crate::pay::{PayError, PayRequest, Payment};
use crate::store::HistoryEntry;
use crate::wallet::{
    Balance, Invoice, InvoicePaid, MintError, ReceiveError, Received, Restored, Wallet, WalletError,
};

type St = State<Wallet>;

/// The API router over a wallet.
pub fn router(wallet: Wallet) -> Router {
    Router::new()
        .route("/balance", get(balance))
        .route("/pay", post(pay))
        .route("/receive", post(receive))
        .route("/reclaim", post(reclaim))
        .route("/invoice", post(invoice))
        .route("/invoice/claim", post(claim))
        .route("/pay-invoice", post(pay_invoice))
        .route("/restore", post(restore))
        .route("/history", get(history))
        .route("/mints", get(mints))
        .route("/mints/{mint}", get(mint_info).put(trust).delete(distrust))
        .with_state(wallet)
}

/// Body of `POST /receive`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    /// The Cashu token.
    pub token: String,
    /// The least the token must be worth, in sat. Default 0.
    #[serde(default)]
    pub expected_amount_sat: u64,
    /// Mints the token may come from (each must also be trusted). Default:
    /// any trusted mint.
    #[serde(default)]
    pub expected_mints: Vec<String>,
}

/// Body of `POST /invoice`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceRequest {
    /// A trusted mint.
    pub mint: String,
    /// Amount in sat.
    pub amount_sat: u64,
}

/// Body of `POST /invoice/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The mint of the invoice.
    pub mint: String,
    /// The quote id from `POST /invoice`.
    pub quote_id: String,
}

/// Answer of `POST /invoice/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claimed {
    /// Sat minted now (0 while the invoice is unpaid).
    pub minted_sat: u64,
}

/// Body of `POST /pay-invoice`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayInvoiceRequest {
    /// The mint whose ecash pays.
    pub mint: String,
    /// The BOLT11 invoice.
    pub bolt11: String,
}

/// One mint as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintEntry {
    /// Canonical URL.
    pub mint: String,
    /// On the trust list.
    pub trusted: bool,
    /// Spendable sat held there.
    pub balance_sat: u64,
}

/// Query of `GET /history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Most entries to return. Default 100.
    pub limit: Option<u32>,
}

fn mint_error(e: MintError) -> ApiError {
    match e {
        MintError::Unreachable { .. } | MintError::Refused { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
        }
        MintError::Timeout { .. } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
    }
}

fn wallet_error(e: WalletError) -> ApiError {
    match e {
        WalletError::BadMintUrl { .. } | WalletError::MintUrl(_) => {
            ApiError::bad_request(e.to_string())
        }
        WalletError::Untrusted { .. } | WalletError::OverBudget { .. } => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        WalletError::NotPaid { .. } => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
        WalletError::Mint(e) => mint_error(e),
        other => ApiError::internal(other),
    }
}

fn pay_error(e: PayError) -> ApiError {
    match e {
        e if e.is_refusal() => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        PayError::Mint(e) => mint_error(e),
        e @ PayError::SwapPending { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        other => ApiError::internal(other),
    }
}

fn receive_error(e: ReceiveError) -> ApiError {
    match e {
        ReceiveError::Malformed { .. }
        | ReceiveError::WrongUnit { .. }
        | ReceiveError::TooSmall { .. }
        | ReceiveError::BadMintUrl => ApiError::bad_request(e.to_string()),
        ReceiveError::UntrustedMint { .. } | ReceiveError::UnexpectedMint { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, e.to_string())
        }
        ReceiveError::AlreadySpent => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        ReceiveError::Mint(e) => mint_error(e),
        other => ApiError::internal(other),
    }
}

async fn balance(State(w): St) -> Result<Json<Balance>, ApiError> {
    w.balance().await.map(Json).map_err(wallet_error)
}

async fn pay(State(w): St, Json(req): Json<PayRequest>) -> Result<Json<Payment>, ApiError> {
    // The payment runs to its end even if the caller goes away (a swap is
    // never cut short by a dropped connection), and a token nobody took
    // is taken back.
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = w.pay(&req).await;
        if let Err(Ok(payment)) = tx.send(result) {
            tracing::warn!(
                mint = %payment.mint,
                amount_sat = payment.amount_sat,
                "the caller left before taking its token; taking it back"
            );
            if let Err(e) = w.reclaim(&payment.token).await {
                tracing::error!(mint = %payment.mint, "taking back an undelivered token: {e}");
            }
        }
    });
    rx.await
        .map_err(|_| ApiError::internal("the payment task ended without an answer"))?
        .map(Json)
        .map_err(pay_error)
}

/// `POST /reclaim`: a token this wallet made that its payee never took.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReclaimRequest {
    /// The token.
    pub token: String,
}

async fn reclaim(
    State(w): St,
    Json(req): Json<ReclaimRequest>,
) -> Result<Json<Received>, ApiError> {
    w.reclaim(&req.token).await.map(Json).map_err(receive_error)
}

async fn receive(
    State(w): St,
    Json(req): Json<ReceiveRequest>,
) -> Result<Json<Received>, ApiError> {
    w.receive(&req.token, req.expected_amount_sat, &req.expected_mints)
        .await
        .map(Json)
        .map_err(receive_error)
}

async fn invoice(State(w): St, Json(req): Json<InvoiceRequest>) -> Result<Json<Invoice>, ApiError> {
    if req.amount_sat == 0 {
        return Err(ApiError::bad_request("amount_sat must be more than 0"));
    }
    w.invoice(&req.mint, req.amount_sat)
        .await
        .map(Json)
        .map_err(wallet_error)
}

async fn claim(State(w): St, Json(req): Json<ClaimRequest>) -> Result<Json<Claimed>, ApiError> {
    let minted_sat = w
        .claim_invoice(&req.mint, &req.quote_id)
        .await
        .map_err(wallet_error)?;
    Ok(Json(Claimed { minted_sat }))
}

async fn pay_invoice(
    State(w): St,
    Json(req): Json<PayInvoiceRequest>,
) -> Result<Json<InvoicePaid>, ApiError> {
    w.pay_invoice(&req.mint, &req.bolt11)
        .await
        .map(Json)
        .map_err(wallet_error)
}

async fn restore(State(w): St) -> Result<Json<Vec<Restored>>, ApiError> {
    w.restore().await.map(Json).map_err(wallet_error)
}

async fn history(
    State(w): St,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    w.history(q.limit.unwrap_or(100))
        .map(Json)
        .map_err(wallet_error)
}

async fn entry(w: &Wallet, mint: &str) -> Result<MintEntry, ApiError> {
    let mint = crate::wallet::normalize_mint_url(mint).map_err(wallet_error)?;
    Ok(MintEntry {
        trusted: w.is_trusted(&mint).map_err(wallet_error)?,
        balance_sat: w.mint_balance(&mint).await.map_err(wallet_error)?,
        mint,
    })
}

async fn mints(State(w): St) -> Result<Json<Vec<MintEntry>>, ApiError> {
    let mut out = Vec::new();
    for mint in w.trusted_mints().map_err(wallet_error)? {
        out.push(entry(&w, &mint).await?);
    }
    Ok(Json(out))
}

async fn mint_info(State(w): St, Path(mint): Path<String>) -> Result<Json<MintEntry>, ApiError> {
    entry(&w, &mint).await.map(Json)
}

async fn trust(State(w): St, Path(mint): Path<String>) -> Result<Json<MintEntry>, ApiError> {
    w.trust_mint(&mint).map_err(wallet_error)?;
    entry(&w, &mint).await.map(Json)
}

async fn distrust(State(w): St, Path(mint): Path<String>) -> Result<Json<MintEntry>, ApiError> {
    if !w.distrust_mint(&mint).map_err(wallet_error)? {
        return Err(ApiError::not_found("that mint is not trusted"));
    }
    entry(&w, &mint).await.map(Json)
}
