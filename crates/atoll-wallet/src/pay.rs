//! Paying a peer: plan Direct (send a token from a mint the payee accepts)
//! before Swap (melt at a held trusted mint to pay an invoice of an accepted
//! trusted mint, mint there, send), within the fee cap and the budgets;
//! refuse with a typed error otherwise, so the caller falls back to the
//! origin.
//!
//! A swap is crash-safe: each step is journalled before it is taken
//! ([`SwapStep`]), and [`Wallet::resume`] settles unfinished swaps on start:
//! a swap that never paid is abandoned, a paid invoice is minted exactly
//! once at the target, and an invoice is never paid twice (the melt state at
//! the source is checked; resume never melts).

use std::collections::HashMap;
use std::sync::PoisonError;

use cdk::Amount;
use cdk::amount::SplitTarget;
use cdk::cdk_database::WalletDatabase;
use cdk::nuts::{MeltQuoteState, MintQuoteState, PaymentMethod};
use cdk::wallet::SendOptions;
use cdk::wallet::types::{TransactionDirection, TransactionStatus};
use serde::{Deserialize, Serialize};

use crate::store::{RouteStats, StoreError, SwapField, SwapRecord, SwapStep};
use crate::wallet::{MintError, Wallet, call, normalize_mint_url};

/// A payment asked of the wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    /// Mints whose ecash the payee accepts, in its order of preference.
    pub accepted_mints: Vec<String>,
    /// What the payee must receive, in sat.
    pub amount_sat: u64,
    /// The most this payment may cost in fees, in sat.
    pub max_fee_sat: u64,
    /// What the payment is for (kept in the history).
    #[serde(default)]
    pub purpose: String,
    /// For a payee that redeems a token at once (a swarm peer): if the
    /// token is still unredeemed this many seconds after it was made (it
    /// never reached the payee: the caller crashed or gave up), the wallet
    /// takes it back. None (the default): the token is the payee's for as
    /// long as it likes.
    #[serde(default)]
    pub reclaim_after_secs: Option<u64>,
}

/// How a payment was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Route {
    /// From ecash already held at the payee's mint.
    Direct,
    /// Through Lightning from another mint.
    Swap {
        /// The mint that melted.
        from: String,
    },
}

/// A payment made: the token for the payee and what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The Cashu token (`cashuB…`) to hand to the payee.
    pub token: String,
    /// The token's mint.
    pub mint: String,
    /// What the payee receives after redeeming, in sat.
    pub amount_sat: u64,
    /// Fees actually paid (input fees, routing fee), in sat.
    pub fee_sat: u64,
    /// How it was paid.
    pub route: Route,
}

/// Where a simulated crash happens: just before a step is taken (its intent
/// journalled) or just after (taken, not yet journalled as done).
///
/// Written `before:<step>` or `after:<step>` (`after:melt_paid`), the form
/// `ATOLL_WALLET_TEST_PAUSE_AT` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrashPoint {
    /// The intent is journalled; the step is not taken.
    Before(SwapStep),
    /// The step is taken; the journal does not know yet.
    After(SwapStep),
}

impl CrashPoint {
    /// Every point: before and after each step, in order.
    pub fn all() -> impl Iterator<Item = CrashPoint> {
        SwapStep::ALL
            .into_iter()
            .flat_map(|s| [CrashPoint::Before(s), CrashPoint::After(s)])
    }
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrashPoint::Before(s) => write!(f, "before:{}", s.as_str()),
            CrashPoint::After(s) => write!(f, "after:{}", s.as_str()),
        }
    }
}

impl std::str::FromStr for CrashPoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{text}` is not a swap step point; one of: {}",
                CrashPoint::all()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (when, step) = text.split_once(':').ok_or_else(bad)?;
        let step = SwapStep::parse(step).ok_or_else(bad)?;
        match when {
            "before" => Ok(CrashPoint::Before(step)),
            "after" => Ok(CrashPoint::After(step)),
            _ => Err(bad()),
        }
    }
}

/// Why a payment was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// Nothing to pay.
    #[error("the amount must be more than 0 sat")]
    ZeroAmount,
    /// The payment does not fit the budget.
    #[error("{needed_sat} sat is over the budget ({left_sat} sat left)")]
    OverBudget {
        /// Amount (plus fees when known).
        needed_sat: u64,
        /// What the budgets allow now.
        left_sat: u64,
    },
    /// Neither a direct payment nor a swap fits the balance, trust list,
    /// fee cap or budget. Nothing was spent.
    #[error("no way to pay: {}", reasons.join("; "))]
    NoRoute {
        /// Why each option was turned down.
        reasons: Vec<String>,
    },
    /// A mint failed after value started to move; the swap journal keeps the
    /// rest and [`Wallet::resume`] settles it.
    #[error("payment failed: {0}")]
    Mint(#[from] MintError),
    /// The melt's outcome is not known yet; the journal keeps the swap and
    /// [`Wallet::resume`] settles it (never paying twice).
    #[error("swap {swap_id} is unsettled ({detail}); it will be resumed")]
    SwapPending {
        /// Journal entry.
        swap_id: i64,
        /// What went wrong.
        detail: String,
    },
    /// A simulated crash ([`Wallet::set_crash_point`]).
    #[error("simulated crash at {0:?}")]
    Crashed(CrashPoint),
    /// Atoll's database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PayError {
    /// Whether the wallet refused up front (nothing spent), so the caller
    /// should fall back to the origin.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PayError::ZeroAmount | PayError::OverBudget { .. } | PayError::NoRoute { .. }
        )
    }
}

/// What [`Wallet::resume`] did with the open journal entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeReport {
    /// Swaps closed, with how they ended.
    pub finished: Vec<(i64, String)>,
    /// Swaps that cannot be settled yet (a mint down, a payment pending).
    pub pending: Vec<i64>,
}

impl ResumeReport {
    /// Nothing was open.
    pub fn is_empty(&self) -> bool {
        self.finished.is_empty() && self.pending.is_empty()
    }
}

/// Input fee (sat) of about as many proofs as `amount` needs, at
/// `input_fee_ppk` parts per thousand per proof, rounded up.
fn input_fee_estimate(input_fee_ppk: u64, amount: u64) -> u64 {
    if input_fee_ppk == 0 {
        return 0;
    }
    let proofs = u64::from(amount.count_ones()) + 4;
    input_fee_ppk.saturating_mul(proofs).div_ceil(1000)
}

fn send_options() -> SendOptions {
    SendOptions {
        // The token carries the payee's redeem fee: it nets the amount.
        include_fee: true,
        ..SendOptions::default()
    }
}

/// A swap that did not go ahead: why (nothing moved), or a real error.
enum SwapFail {
    Refused(String),
    Error(PayError),
}

impl From<PayError> for SwapFail {
    fn from(e: PayError) -> Self {
        SwapFail::Error(e)
    }
}

impl From<StoreError> for SwapFail {
    fn from(e: StoreError) -> Self {
        SwapFail::Error(e.into())
    }
}

/// cdk's record of the finished melt of `quote_id`, if there is one.
async fn completed_melt(
    wallet: &cdk::wallet::Wallet,
    quote_id: &str,
) -> Option<cdk::wallet::types::Transaction> {
    match wallet
        .list_transactions(Some(TransactionDirection::Outgoing))
        .await
    {
        Ok(txs) => txs.into_iter().find(|t| {
            t.quote_id.as_deref() == Some(quote_id) && t.status == TransactionStatus::Completed
        }),
        Err(e) => {
            tracing::warn!(%quote_id, "reading cdk's record of a melt: {e}");
            None
        }
    }
}

/// How one journal entry was settled.
enum Settled {
    Finished(String),
    Pending,
}

impl Wallet {
    /// Simulates a crash at `point` in the next swap: the swap returns
    /// [`PayError::Crashed`] there, leaving the journal as a crash would.
    /// Open a new [`Wallet`] on the same state directory to resume. For
    /// tests.
    pub fn set_crash_point(&self, point: Option<CrashPoint>) {
        *self
            .inner
            .crash_point
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = point;
    }

    /// A simulated crash ([`Wallet::set_crash_point`]) or a test pause
    /// ([`crate::WalletBuilder::test_pause_at`]) at `point`, else nothing.
    async fn crash(&self, point: CrashPoint) -> Result<(), PayError> {
        let crash = {
            let mut armed = self
                .inner
                .crash_point
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let hit = *armed == Some(point);
            if hit {
                *armed = None;
            }
            hit
        };
        if crash {
            return Err(PayError::Crashed(point));
        }
        if self.inner.pause_point == Some(point) {
            // For a test that kills the process here (kill -9): the point
            // is announced, then this payment never goes on.
            tracing::warn!(%point, "test pause: swap stopped here until the process is killed");
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    /// Pays `request.amount_sat` to a payee that accepts ecash of
    /// `request.accepted_mints`: directly when enough of an accepted mint's
    /// ecash is held, else by a swap from another trusted mint into an
    /// accepted trusted one.
    pub async fn pay(&self, request: &PayRequest) -> Result<Payment, PayError> {
        let _guard = self.inner.pay_lock.lock().await;
        let amount = request.amount_sat;
        if amount == 0 {
            return Err(PayError::ZeroAmount);
        }
        let left = self.budget_left()?;
        if amount > left {
            return Err(PayError::OverBudget {
                needed_sat: amount,
                left_sat: left,
            });
        }
        let mut reasons = Vec::new();
        let mut accepted = Vec::new();
        for mint in &request.accepted_mints {
            match normalize_mint_url(mint) {
                Ok(m) if !accepted.contains(&m) => accepted.push(m),
                Ok(_) => {}
                Err(_) => reasons.push(format!("`{mint}` is not a mint URL")),
            }
        }

        for mint in &accepted {
            match self.try_direct(mint, request, left).await? {
                Ok(payment) => return Ok(payment),
                Err(reason) => reasons.push(reason),
            }
        }

        let trusted = self.inner.store.trusted()?;
        let targets: Vec<&String> = accepted.iter().filter(|m| trusted.contains(m)).collect();
        if targets.is_empty() {
            reasons.push("no accepted mint is trusted, so no swap".to_owned());
        }
        let mut sources = Vec::new();
        for mint in &trusted {
            let balance = self.mint_balance(mint).await.unwrap_or(0);
            if balance > 0 {
                sources.push((mint.clone(), balance));
            }
        }
        let routes = self.inner.store.routes()?;
        for target in targets {
            // Proven routes first, then untried ones, then those whose last
            // attempt failed; the largest balance first among equals.
            sources.sort_by_key(|(source, balance)| {
                let stats = routes
                    .iter()
                    .find(|r| &r.source == source && &r.target == target);
                (RouteStats::rank(stats), std::cmp::Reverse(*balance))
            });
            let wallet_t = self.cdk(target)?;
            let ppk_t = match call(target, "keysets", wallet_t.active_keyset()).await {
                Ok(k) => k.input_fee_ppk,
                Err(e) => {
                    reasons.push(format!("swap into {target}: {e}"));
                    continue;
                }
            };
            let margin = 2 * input_fee_estimate(ppk_t, amount);
            let mint_amount = amount.saturating_add(margin);
            for (source, balance) in &sources {
                if source == target {
                    continue;
                }
                if *balance < mint_amount {
                    reasons.push(format!(
                        "swap {source} → {target}: holds {balance} sat, needs more than {mint_amount}"
                    ));
                    continue;
                }
                let swapped = self
                    .swap(source, target, request, mint_amount, margin, left)
                    .await;
                if !matches!(swapped, Err(SwapFail::Error(PayError::Crashed(_)))) {
                    self.inner
                        .store
                        .route_result(source, target, swapped.is_ok())?;
                }
                match swapped {
                    Ok(payment) => return Ok(payment),
                    Err(SwapFail::Refused(reason)) => {
                        reasons.push(format!("swap {source} → {target}: {reason}"));
                    }
                    Err(SwapFail::Error(e)) => return Err(e),
                }
            }
        }
        if reasons.is_empty() {
            reasons.push("no ecash held".to_owned());
        }
        Err(PayError::NoRoute { reasons })
    }

    /// A direct payment from `mint`: `Ok(Err(reason))` when it does not fit.
    async fn try_direct(
        &self,
        mint: &str,
        request: &PayRequest,
        left: u64,
    ) -> Result<Result<Payment, String>, PayError> {
        let amount = request.amount_sat;
        let balance = self.mint_balance(mint).await.unwrap_or(0);
        if balance < amount {
            return Ok(Err(format!(
                "direct from {mint}: holds {balance} sat, {amount} needed"
            )));
        }
        let wallet = self.cdk(mint)?;
        let prepared = match call(
            mint,
            "prepare send",
            wallet.prepare_send(Amount::from(amount), send_options()),
        )
        .await
        {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("direct from {mint}: {e}"))),
        };
        let fee = u64::from(prepared.fee());
        let refusal = if fee > request.max_fee_sat {
            Some(format!(
                "direct from {mint}: fee {fee} sat above the cap of {} sat",
                request.max_fee_sat
            ))
        } else if amount.saturating_add(fee) > left {
            Some(format!(
                "direct from {mint}: {} sat over the budget ({left} sat left)",
                amount.saturating_add(fee)
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            if let Err(e) = prepared.cancel().await {
                tracing::warn!(%mint, "cancelling a prepared send: {e}");
            }
            return Ok(Err(reason));
        }
        let spend = self
            .inner
            .store
            .record_spend(amount.saturating_add(fee), None)?;
        let token = match call(mint, "send", prepared.confirm(None)).await {
            Ok(t) => t,
            Err(e) => {
                self.inner.store.drop_spend(spend)?;
                return Err(e.into());
            }
        };
        let token = token.to_string();
        self.inner.store.spend_token(spend, &token)?;
        self.note_outstanding(request, &token, mint)?;
        self.inner
            .store
            .add_history("pay", mint, amount, fee, &request.purpose)?;
        tracing::info!(%mint, amount, fee, purpose = %request.purpose, "paid directly");
        Ok(Ok(Payment {
            token,
            mint: mint.to_owned(),
            amount_sat: amount,
            fee_sat: fee,
            route: Route::Direct,
        }))
    }

    /// Closes a swap whose melt was paid but whose payment was not made:
    /// the value stays at `target`, the budget and the history count the
    /// fee.
    fn keep_swap_value(
        &self,
        id: i64,
        target: &str,
        amount: u64,
        purpose: &str,
        fee: u64,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let note = if purpose.is_empty() {
            format!("payment not made; {amount} sat moved here ({outcome})")
        } else {
            format!("{purpose}: payment not made; {amount} sat moved here ({outcome})")
        };
        self.inner
            .store
            .close_kept_swap(id, target, amount, fee, &note, outcome)
    }

    /// Keeps `token` for [`Wallet::sweep_outstanding`] when the request
    /// asks for it.
    fn note_outstanding(
        &self,
        request: &PayRequest,
        token: &str,
        mint: &str,
    ) -> Result<(), StoreError> {
        if let Some(after) = request.reclaim_after_secs {
            let at = crate::store::now().saturating_add(i64::try_from(after).unwrap_or(i64::MAX));
            self.inner
                .store
                .add_outstanding(token, mint, request.amount_sat, at)?;
        }
        Ok(())
    }

    /// Takes back the tokens made with `reclaim_after_secs` that are due
    /// and still unredeemed (their payee never got them); a token the payee
    /// redeemed is closed. A mint that is down is tried again next time.
    /// Returns how many were taken back.
    pub async fn sweep_outstanding(&self) -> Result<usize, StoreError> {
        let due = self.inner.store.due_outstanding(crate::store::now())?;
        let mut taken = 0;
        for (token, mint) in due {
            match self.reclaim(&token).await {
                Ok(r) => {
                    taken += 1;
                    tracing::warn!(%mint, amount_sat = r.amount_sat, "took back a token its payee never redeemed");
                }
                Err(crate::ReceiveError::AlreadySpent) => {
                    self.inner.store.settle_outstanding(&token, "redeemed")?;
                }
                Err(crate::ReceiveError::Mint(e)) => {
                    tracing::warn!(%mint, "outstanding token checked again later: {e}");
                }
                Err(e) => {
                    // Cannot be taken back (a mint no longer known): give up.
                    tracing::warn!(%mint, "outstanding token given up: {e}");
                    self.inner
                        .store
                        .settle_outstanding(&token, &format!("given up: {e}"))?;
                }
            }
        }
        Ok(taken)
    }

    /// What the wallet remembers of its swap routes (proven ones are tried
    /// first).
    pub fn routes(&self) -> Result<Vec<RouteStats>, StoreError> {
        self.inner.store.routes()
    }

    /// Closes a swap that moved nothing, releasing its budget.
    fn abandon(&self, id: i64, why: &str) -> Result<(), StoreError> {
        self.inner.store.drop_swap_spend(id)?;
        self.inner
            .store
            .finish_swap(id, &format!("abandoned: {why}"))
    }

    /// A swap from `source` into `target`, journalled step by step.
    async fn swap(
        &self,
        source: &str,
        target: &str,
        request: &PayRequest,
        mint_amount: u64,
        margin: u64,
        left: u64,
    ) -> Result<Payment, SwapFail> {
        let store = &self.inner.store;
        let amount = request.amount_sat;
        let wallet_s = self.cdk(source).map_err(PayError::from)?;
        let wallet_t = self.cdk(target).map_err(PayError::from)?;

        let id = store.begin_swap(source, target, amount, mint_amount, &request.purpose)?;
        self.crash(CrashPoint::Before(SwapStep::MintQuote)).await?;
        let mint_quote = match call(
            target,
            "mint quote",
            wallet_t.mint_quote(
                PaymentMethod::BOLT11,
                Some(Amount::from(mint_amount)),
                None,
                None,
            ),
        )
        .await
        {
            Ok(q) => q,
            Err(e) => {
                self.abandon(id, "no invoice from the target")?;
                return Err(SwapFail::Refused(e.to_string()));
            }
        };
        self.crash(CrashPoint::After(SwapStep::MintQuote)).await?;
        store.set_swap_field(id, SwapField::MintQuoteId, &mint_quote.id)?;
        store.set_swap_field(id, SwapField::Bolt11, &mint_quote.request)?;
        store.step_done(id, SwapStep::MintQuote)?;

        store.step_intent(id, SwapStep::MeltQuote)?;
        self.crash(CrashPoint::Before(SwapStep::MeltQuote)).await?;
        let melt_quote = match call(
            source,
            "melt quote",
            wallet_s.melt_quote(
                PaymentMethod::BOLT11,
                mint_quote.request.clone(),
                None,
                None,
            ),
        )
        .await
        {
            Ok(q) => q,
            Err(e) => {
                self.abandon(id, "no melt quote from the source")?;
                return Err(SwapFail::Refused(e.to_string()));
            }
        };
        self.crash(CrashPoint::After(SwapStep::MeltQuote)).await?;
        store.set_swap_field(id, SwapField::MeltQuoteId, &melt_quote.id)?;
        store.step_done(id, SwapStep::MeltQuote)?;

        let ppk_s = call(source, "keysets", wallet_s.active_keyset())
            .await
            .map(|k| k.input_fee_ppk)
            .unwrap_or(0);
        let estimate = u64::from(melt_quote.fee_reserve)
            .saturating_add(input_fee_estimate(ppk_s, mint_amount))
            .saturating_add(margin);
        if let Some(reason) = self.over_limits(request, estimate, left) {
            self.abandon(id, &reason)?;
            return Err(SwapFail::Refused(reason));
        }
        let spend = store.record_spend(amount.saturating_add(estimate), Some(id))?;

        store.step_intent(id, SwapStep::MeltPaid)?;
        self.crash(CrashPoint::Before(SwapStep::MeltPaid)).await?;
        let prepared = match call(
            source,
            "prepare melt",
            wallet_s.prepare_melt(&melt_quote.id, HashMap::new()),
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                self.abandon(id, "the source cannot melt")?;
                return Err(SwapFail::Refused(e.to_string()));
            }
        };
        let melt_estimate = u64::from(prepared.total_fee()).saturating_add(margin);
        if let Some(reason) = self.over_limits(request, melt_estimate, left) {
            if let Err(e) = prepared.cancel().await {
                tracing::warn!(%source, "cancelling a prepared melt: {e}");
            }
            self.abandon(id, &reason)?;
            return Err(SwapFail::Refused(reason));
        }
        let swap_fee = u64::from(prepared.swap_fee());
        // Known now, paid only if the melt goes ahead: a resume after a
        // paid melt adds it to the fee cdk records for the melt itself.
        store.set_melt_swap_fee(id, swap_fee)?;
        let finalized = match call(source, "melt", prepared.confirm()).await {
            Ok(f) if f.state() == MeltQuoteState::Paid => f,
            other => {
                // Paid or not? Ask the mints rather than guess.
                let err = match other {
                    Ok(f) => format!("melt ended {}", f.state()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(swap = id, "melt did not settle: {err}; checking");
                if let Some(record) = store.swap(id)? {
                    match self.settle(record).await {
                        Ok(Settled::Finished(outcome)) if outcome.starts_with("abandoned") => {
                            return Err(SwapFail::Refused(err));
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(swap = id, "settling: {e}"),
                    }
                }
                return Err(SwapFail::Error(PayError::SwapPending {
                    swap_id: id,
                    detail: err,
                }));
            }
        };
        let melt_fee = u64::from(finalized.fee_paid()).saturating_add(swap_fee);
        self.crash(CrashPoint::After(SwapStep::MeltPaid)).await?;
        store.step_done_with_fee(id, SwapStep::MeltPaid, melt_fee)?;

        store.step_intent(id, SwapStep::Minted)?;
        self.crash(CrashPoint::Before(SwapStep::Minted)).await?;
        call(
            target,
            "mint",
            wallet_t.wait_and_mint_quote(
                mint_quote.clone(),
                SplitTarget::default(),
                None,
                crate::wallet::MINT_CALL_TIMEOUT,
            ),
        )
        .await
        .map_err(PayError::from)?;
        self.crash(CrashPoint::After(SwapStep::Minted)).await?;
        store.step_done(id, SwapStep::Minted)?;

        store.step_intent(id, SwapStep::Sent)?;
        self.crash(CrashPoint::Before(SwapStep::Sent)).await?;
        // No token for the payee: the value stays here, the fee is spent.
        let keep = |outcome: &str| {
            self.keep_swap_value(id, target, amount, &request.purpose, melt_fee, outcome)
        };
        let prepared = match call(
            target,
            "prepare send",
            wallet_t.prepare_send(Amount::from(amount), send_options()),
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                keep("minted at target; no token made, value kept")?;
                return Err(PayError::from(e).into());
            }
        };
        let send_fee = u64::from(prepared.fee());
        store.set_swap_field(
            id,
            SwapField::SendOperation,
            &prepared.operation_id().to_string(),
        )?;
        let token = match call(target, "send", prepared.confirm(None)).await {
            Ok(t) => t,
            Err(e) => {
                keep("minted at target; send failed, value kept")?;
                return Err(PayError::from(e).into());
            }
        };
        self.crash(CrashPoint::After(SwapStep::Sent)).await?;
        let token = token.to_string();
        let fee = melt_fee.saturating_add(send_fee);
        store.set_swap_field(id, SwapField::Token, &token)?;
        // Before the journal closes: a token that then never reaches the
        // payee is still taken back in time.
        self.note_outstanding(request, &token, target)?;
        store.step_done_with_fee(id, SwapStep::Sent, send_fee)?;
        store.finish_swap(id, "sent")?;
        store.settle_spend(spend, amount.saturating_add(fee))?;
        store.spend_token(spend, &token)?;
        store.add_history("swap", target, amount, fee, &request.purpose)?;
        tracing::info!(%source, %target, amount, fee, purpose = %request.purpose, "paid by swap");
        Ok(Payment {
            token,
            mint: target.to_owned(),
            amount_sat: amount,
            fee_sat: fee,
            route: Route::Swap {
                from: source.to_owned(),
            },
        })
    }

    fn over_limits(&self, request: &PayRequest, fee: u64, left: u64) -> Option<String> {
        if fee > request.max_fee_sat {
            Some(format!(
                "fees of about {fee} sat are above the cap of {} sat",
                request.max_fee_sat
            ))
        } else if request.amount_sat.saturating_add(fee) > left {
            Some(format!(
                "{} sat with fees is over the budget ({left} sat left)",
                request.amount_sat.saturating_add(fee)
            ))
        } else {
            None
        }
    }

    /// Settles every open swap of the journal (done by
    /// [`crate::WalletBuilder::open`]). Never pays an invoice: a swap whose
    /// invoice is unpaid is abandoned, a paid one is minted once at its
    /// target, and a token made for a swap that did not finish (so never
    /// returned to the caller) is revoked.
    pub async fn resume(&self) -> Result<ResumeReport, PayError> {
        let _guard = self.inner.pay_lock.lock().await;
        self.recover_sagas().await;
        let mut report = ResumeReport::default();
        for record in self.inner.store.open_swaps()? {
            let id = record.id;
            match self.settle(record).await {
                Ok(Settled::Finished(outcome)) => report.finished.push((id, outcome)),
                Ok(Settled::Pending) => report.pending.push(id),
                Err(e) => {
                    tracing::warn!(swap = id, "cannot settle yet: {e}");
                    report.pending.push(id);
                }
            }
        }
        Ok(report)
    }

    /// Finishes or rolls back cdk's own unfinished operations (a send,
    /// receive, mint or melt cut short by a crash) at every mint that has
    /// one, so no proof stays reserved and no paid output is left
    /// unclaimed. A mint that is down is tried again at the next resume.
    async fn recover_sagas(&self) {
        let sagas = match self.inner.cdk_db.get_incomplete_sagas().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("reading cdk's unfinished operations: {e}");
                return;
            }
        };
        let mut mints: Vec<String> = sagas
            .iter()
            .filter(|s| s.unit == cdk::nuts::CurrencyUnit::Sat)
            .map(|s| s.mint_url.to_string())
            .collect();
        mints.sort();
        mints.dedup();
        for mint in mints {
            let recovered = match self.cdk(&mint) {
                Ok(w) => call(&mint, "recover", w.recover_incomplete_sagas())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match recovered {
                Ok(r) => tracing::info!(%mint, ?r, "finished interrupted wallet operations"),
                Err(e) => {
                    tracing::warn!(%mint, "interrupted wallet operations left for later: {e}")
                }
            }
        }
    }

    /// Takes back the token of a swap that was made but never handed over.
    async fn revoke_undelivered(
        &self,
        wallet: &cdk::wallet::Wallet,
        target: &str,
        id: i64,
        operation: &str,
        token_recorded: bool,
    ) -> Result<String, PayError> {
        let op = match uuid::Uuid::parse_str(operation) {
            Ok(op) => op,
            Err(e) => {
                tracing::warn!(swap = id, "bad send operation id: {e}");
                return Ok("minted at target; send operation unknown, value kept".to_owned());
            }
        };
        match call(target, "revoke send", wallet.revoke_send(op)).await {
            Ok(_) => Ok("minted at target; undelivered token revoked, value kept".to_owned()),
            // Down or slow: try again at the next start.
            Err(e @ (MintError::Unreachable { .. } | MintError::Timeout { .. })) => Err(e.into()),
            Err(e) => {
                // The send never completed (crash between prepare and
                // confirm): cdk's saga recovery releases its proofs.
                tracing::warn!(swap = id, token_recorded, "revoke refused: {e}; recovering");
                if let Err(e) = wallet.recover_incomplete_sagas().await {
                    tracing::warn!(swap = id, "recovering send sagas: {e}");
                }
                Ok("minted at target; unfinished send released, value kept".to_owned())
            }
        }
    }

    /// The fee of a swap's melt that was paid while the journal did not
    /// record it (the process died during the melt): what cdk recorded for
    /// that melt quote once its saga is finished, plus the journalled input
    /// fee of the swap the melt made first. If cdk cannot finish the saga
    /// yet (the source mint is down), the quote's fee reserve stands in: an
    /// upper bound, so the budget is never undercounted.
    async fn learn_melt_fee(&self, wallet_s: &cdk::wallet::Wallet, record: &SwapRecord) -> u64 {
        let id = record.id;
        let Some(quote_id) = &record.melt_quote_id else {
            return record.melt_swap_fee_sat;
        };
        // A melt cut short by a crash was finished (its change included)
        // and recorded by cdk's saga recovery, which `resume` runs first;
        // an interrupted confirm runs it itself.
        let melt_fee = match completed_melt(wallet_s, quote_id).await {
            Some(t) => u64::from(t.fee),
            None => {
                let reserve = call(
                    &record.source,
                    "melt quote status",
                    wallet_s.check_melt_quote_status(quote_id),
                )
                .await
                .map(|q| u64::from(q.fee_reserve))
                .unwrap_or(0);
                tracing::warn!(
                    swap = id,
                    reserve,
                    "no record of the melt's fee yet; counting its fee reserve"
                );
                reserve
            }
        };
        melt_fee.saturating_add(record.melt_swap_fee_sat)
    }

    /// Settles one open swap from what the mints say.
    async fn settle(&self, record: SwapRecord) -> Result<Settled, PayError> {
        let store = &self.inner.store;
        let id = record.id;
        let wallet_s = self.cdk(&record.source)?;
        let wallet_t = self.cdk(&record.target)?;
        let target = record.target.as_str();

        if matches!(record.step, SwapStep::MintQuote | SwapStep::MeltQuote) {
            // The melt was never journalled, so never attempted.
            let why = "stopped before paying";
            self.abandon(id, why)?;
            return Ok(Settled::Finished(format!("abandoned: {why}")));
        }
        // What the swap cost so far, and whether its melt was paid.
        let mut fee_sat = record.fee_sat;
        let mut melted = record.step_done_after_melt();
        if record.step == SwapStep::MeltPaid && !record.step_done {
            // Was the invoice paid? The target knows; else the source.
            let target_paid = match &record.mint_quote_id {
                Some(q) => {
                    let quote = call(
                        target,
                        "mint quote status",
                        wallet_t.check_mint_quote_status(q),
                    )
                    .await?;
                    matches!(quote.state, MintQuoteState::Paid | MintQuoteState::Issued)
                }
                None => false,
            };
            if !target_paid {
                let melt_state = match &record.melt_quote_id {
                    Some(q) => {
                        call(
                            &record.source,
                            "melt quote status",
                            wallet_s.check_melt_quote_status(q),
                        )
                        .await?
                        .state
                    }
                    None => MeltQuoteState::Unpaid,
                };
                match melt_state {
                    MeltQuoteState::Paid => {}
                    MeltQuoteState::Pending => return Ok(Settled::Pending),
                    _ => {
                        // Proofs a prepared melt reserved go back.
                        if let Err(e) = wallet_s.recover_incomplete_sagas().await {
                            tracing::warn!(swap = id, "recovering melt sagas: {e}");
                        }
                        self.abandon(id, "the invoice was never paid")?;
                        return Ok(Settled::Finished(
                            "abandoned: the invoice was never paid".to_owned(),
                        ));
                    }
                }
            }
            let fee = self.learn_melt_fee(&wallet_s, &record).await;
            store.step_done_with_fee(id, SwapStep::MeltPaid, fee)?;
            fee_sat = fee_sat.saturating_add(fee);
            melted = true;
        }

        if record.step != SwapStep::Sent && !(record.step == SwapStep::Minted && record.step_done) {
            store.step_intent(id, SwapStep::Minted)?;
            let Some(q) = &record.mint_quote_id else {
                // Unreachable by construction: a paid melt has a quote.
                return Ok(Settled::Pending);
            };
            let quote = call(
                target,
                "mint quote status",
                wallet_t.check_mint_quote_status(q),
            )
            .await?;
            match quote.state {
                MintQuoteState::Paid => {
                    call(
                        target,
                        "mint",
                        wallet_t.mint(q, SplitTarget::default(), None),
                    )
                    .await?;
                }
                MintQuoteState::Issued => {}
                _ => return Ok(Settled::Pending),
            }
            store.step_done(id, SwapStep::Minted)?;
        }

        // The token is returned to the caller only after the journal entry
        // is closed, so a token of an open entry never reached anyone: take
        // it back.
        let outcome = match (record.step, &record.send_operation) {
            (SwapStep::Sent, Some(op)) => {
                self.revoke_undelivered(&wallet_t, target, id, op, record.token.is_some())
                    .await?
            }
            _ => "minted at target; no token made, value kept".to_owned(),
        };
        if melted {
            // Only the fees were spent: the value stayed in the wallet.
            self.keep_swap_value(
                id,
                target,
                record.amount_sat,
                &record.purpose,
                fee_sat,
                &outcome,
            )?;
        } else {
            store.finish_swap(id, &outcome)?;
        }
        tracing::info!(swap = id, fee_sat, amount_sat = record.amount_sat, %outcome, "swap settled");
        Ok(Settled::Finished(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_fee_estimate_rounds_up_and_is_zero_without_fees() {
        assert_eq!(input_fee_estimate(0, 1_000), 0);
        // 40 = 0b101000: 2 proofs + 4 spare, at 100 ppk: 0.6 → 1.
        assert_eq!(input_fee_estimate(100, 40), 1);
        assert_eq!(input_fee_estimate(1_000, 40), 6);
    }
}
