//! The wallet: one cdk [`cdk::wallet::Wallet`] per mint URL, all derived
//! from one seed and sharing one cdk SQLite database, plus Atoll's own
//! database (trust list, budgets, history, swap journal).
//!
//! Paying lives in [`crate::pay`]; this module opens the wallet and holds
//! the simple operations: balances, trust, receiving, invoices, restore.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use atoll_core::mint_url::canonical_mint_url;
use cdk::Amount;
use cdk::amount::SplitTarget;
use cdk::cdk_database::WalletDatabase;
use cdk::mint_url::MintUrl;
use cdk::nuts::{CurrencyUnit, MeltQuoteState, PaymentMethod, Token};
use cdk::wallet::{ReceiveOptions, Wallet as CdkWallet};
use cdk_sqlite::WalletSqliteDatabase;
use serde::{Deserialize, Serialize};

use crate::pay::CrashPoint;
use crate::seed::{self, SeedError};
use crate::store::{HistoryEntry, Store, StoreError};

/// File name of cdk's database (the ecash) in the state directory.
pub const CDK_DB_FILE: &str = "cdk-wallet.sqlite";
/// File name of Atoll's database (trust list, budgets, history, journal).
pub const STORE_FILE: &str = "atoll-wallet.sqlite";
/// Default seed file, relative to the state directory.
pub const SEED_FILE: &str = "keys/wallet.seed";

/// How long one call to a mint may take before the wallet gives up on it.
/// A melt that times out stays in the journal and is settled on resume.
pub(crate) const MINT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Spending limits, in sat, counting amount and fees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Largest single payment (amount + fees). Default 1,000 sat.
    #[serde(default = "default_per_payment")]
    pub per_payment_sat: u64,
    /// Most that may be spent in any rolling 24 hours. Default 10,000 sat.
    #[serde(default = "default_per_day")]
    pub per_day_sat: u64,
}

fn default_per_payment() -> u64 {
    1_000
}

fn default_per_day() -> u64 {
    10_000
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            per_payment_sat: default_per_payment(),
            per_day_sat: default_per_day(),
        }
    }
}

/// A mint's error, or the mint could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// No answer from the mint (down, wrong URL, network).
    #[error("mint {mint} is unreachable: {source}")]
    Unreachable {
        /// The mint URL.
        mint: String,
        /// cdk's error.
        #[source]
        source: cdk::Error,
    },
    /// The mint did not answer in time.
    #[error("mint {mint} did not answer within {timeout:?} ({what})")]
    Timeout {
        /// The mint URL.
        mint: String,
        /// What was asked.
        what: &'static str,
        /// How long the wallet waited.
        timeout: Duration,
    },
    /// The mint (or cdk's wallet) refused the operation.
    #[error("mint {mint}: {source}")]
    Refused {
        /// The mint URL.
        mint: String,
        /// cdk's error.
        #[source]
        source: cdk::Error,
    },
}

impl MintError {
    pub(crate) fn from_cdk(mint: &str, source: cdk::Error) -> Self {
        match source {
            cdk::Error::HttpError(None, _) => MintError::Unreachable {
                mint: mint.to_owned(),
                source,
            },
            source => MintError::Refused {
                mint: mint.to_owned(),
                source,
            },
        }
    }

    /// The cdk error behind this one, if any.
    pub fn cdk_error(&self) -> Option<&cdk::Error> {
        match self {
            MintError::Unreachable { source, .. } | MintError::Refused { source, .. } => {
                Some(source)
            }
            MintError::Timeout { .. } => None,
        }
    }
}

/// Runs one call to a mint with [`MINT_CALL_TIMEOUT`], classifying errors.
pub(crate) async fn call<T>(
    mint: &str,
    what: &'static str,
    fut: impl Future<Output = Result<T, cdk::Error>>,
) -> Result<T, MintError> {
    match tokio::time::timeout(MINT_CALL_TIMEOUT, fut).await {
        Ok(result) => result.map_err(|e| MintError::from_cdk(mint, e)),
        Err(_) => Err(MintError::Timeout {
            mint: mint.to_owned(),
            what,
            timeout: MINT_CALL_TIMEOUT,
        }),
    }
}

/// Errors of the wallet's operations other than paying and receiving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The seed file.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// Atoll's database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state directory cannot be created.
    #[error("cannot create the state directory {}: {source}", path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// cdk's database failed.
    #[error("cdk wallet database: {source}")]
    CdkDatabase {
        /// cdk's error.
        #[source]
        source: cdk::cdk_database::Error,
    },
    /// Not a valid mint URL (the message does not repeat it).
    #[error("not a valid mint URL")]
    BadMintUrl {
        /// What was given.
        url: String,
    },
    /// A mint URL refused for the trust list (https only, no user info,
    /// bounded; see [`atoll_core::mint_url`]).
    #[error(transparent)]
    MintUrl(#[from] atoll_core::mint_url::MintUrlError),
    /// The mint is not on the trust list.
    #[error("mint {mint} is not trusted (to trust it: atoll wallet mints trust {mint})")]
    Untrusted {
        /// The mint URL.
        mint: String,
    },
    /// The invoice costs more than is allowed.
    #[error("paying this invoice costs {cost_sat} sat, above the {limit_sat} sat allowed")]
    OverBudget {
        /// Amount plus fee reserve.
        cost_sat: u64,
        /// What the budget allows now.
        limit_sat: u64,
    },
    /// The melt did not settle.
    #[error("the invoice was not paid (melt state {state})")]
    NotPaid {
        /// The melt quote's final state.
        state: MeltQuoteState,
    },
    /// A mint failed or could not be reached.
    #[error(transparent)]
    Mint(#[from] MintError),
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The text is not a Cashu token (malformed or truncated). The
    /// parser's words are kept as the source, for the log.
    #[error(
        "not a valid Cashu token: it is truncated or garbled (copy the whole text, from cashuA or cashuB to the end)"
    )]
    Malformed {
        /// The parser's complaint.
        #[source]
        source: cdk::nuts::nut00::Error,
    },
    /// The token is not in sat.
    #[error("token unit is {unit}, only sat is accepted")]
    WrongUnit {
        /// The token's unit.
        unit: String,
    },
    /// The token's mint is not on the trust list.
    #[error(
        "token mint {mint} is not trusted here (to accept its tokens: atoll wallet mints trust {mint})"
    )]
    UntrustedMint {
        /// The token's mint.
        mint: String,
    },
    /// The token's mint is trusted but not among the mints this payment
    /// accepts.
    #[error("token mint {mint} is not one of the mints accepted for this payment")]
    UnexpectedMint {
        /// The token's mint.
        mint: String,
    },
    /// The token is worth less than expected.
    #[error("token is worth {value_sat} sat, {expected_sat} sat expected")]
    TooSmall {
        /// The token's face value.
        value_sat: u64,
        /// What was expected.
        expected_sat: u64,
    },
    /// The token (or part of it) was already redeemed.
    #[error("token already spent")]
    AlreadySpent,
    /// The mint failed or could not be reached; nothing was received.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// Atoll's database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not a valid mint URL in the token.
    #[error("token names an invalid mint URL")]
    BadMintUrl,
}

/// What [`Wallet::receive`] took in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The token's mint.
    pub mint: String,
    /// Sat now held, after the mint's input fee.
    pub amount_sat: u64,
    /// The input fee the swap cost.
    pub fee_sat: u64,
}

/// An invoice to be paid to this wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The mint that issued it.
    pub mint: String,
    /// The mint quote id; the wallet mints it when paid.
    pub quote_id: String,
    /// The BOLT11 invoice.
    pub bolt11: String,
    /// Amount in sat.
    pub amount_sat: u64,
}

/// What [`Wallet::pay_invoice`] paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaid {
    /// The mint that melted.
    pub mint: String,
    /// Amount in sat.
    pub amount_sat: u64,
    /// Routing and input fees paid.
    pub fee_sat: u64,
    /// The payment preimage, when the mint returned one.
    pub preimage: Option<String>,
}

/// Balance per mint and in total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Spendable sat in total.
    pub total_sat: u64,
    /// Spendable sat per mint URL.
    pub mints: BTreeMap<String, u64>,
}

/// What [`Wallet::restore`] found at one mint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// The mint.
    pub mint: String,
    /// Sat restored as spendable.
    pub unspent_sat: u64,
    /// Sat found already spent (dropped).
    pub spent_sat: u64,
}

/// How fast the wallet may call each mint: a token bucket per mint (cdk's
/// client-side pacing). Mints limit requests per client (nutshell: 60 a
/// minute), and a wallet over that limit gets errors, so the default stays
/// under it; a node that sells a lot through its own group mint can raise
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintPacing {
    /// Requests that may go at once. Default 20; 0 turns pacing off.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Requests per minute once the burst is used. Default 20; 0 turns
    /// pacing off.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
}

fn default_burst() -> u32 {
    20
}

fn default_per_minute() -> u32 {
    20
}

impl Default for MintPacing {
    fn default() -> Self {
        Self {
            burst: default_burst(),
            per_minute: default_per_minute(),
        }
    }
}

impl MintPacing {
    /// No pacing: every request goes at once.
    pub const OFF: MintPacing = MintPacing {
        burst: 0,
        per_minute: 0,
    };

    fn apply(self, wallet: &CdkWallet) {
        match cdk::wallet::RateLimitConfig::try_new(self.burst, self.per_minute) {
            Some(config) => wallet.set_rate_limiting_config(config),
            None => wallet.disable_rate_limiting(),
        }
    }
}

/// Configures a [`Wallet`]; see [`Wallet::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `open` is awaited"]
pub struct WalletBuilder {
    state_dir: PathBuf,
    seed_file: Option<PathBuf>,
    budget: Budget,
    trusted: Vec<String>,
    resume: bool,
    pause_at: Option<CrashPoint>,
    pacing: MintPacing,
    allow_insecure_mints: bool,
}

impl WalletBuilder {
    /// The seed file. Default `<state dir>/keys/wallet.seed`.
    pub fn seed_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.seed_file = Some(path.into());
        self
    }

    /// Spending limits. Default [`Budget::default`].
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Mints added to the persisted trust list on open.
    pub fn trust(mut self, mints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.trusted.extend(mints.into_iter().map(Into::into));
        self
    }

    /// Whether mints may be trusted over plain http on hosts other than
    /// this machine. Default false: https, or http on loopback only.
    pub fn allow_insecure_mints(mut self, allow: bool) -> Self {
        self.allow_insecure_mints = allow;
        self
    }

    /// How fast each mint may be called. Default [`MintPacing::default`].
    pub fn mint_pacing(mut self, pacing: MintPacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// Whether `open` resumes the swap journal (default true). Entries that
    /// cannot be settled now (a mint down) stay open for the next start.
    pub fn resume_on_open(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// For tests that kill the process at a given step of a swap: the
    /// first swap to reach `point` logs `test pause` and stops there for
    /// good (the rest of the wallet keeps serving). atoll-walletd sets it
    /// from `ATOLL_WALLET_TEST_PAUSE_AT` (`before:melt_paid`, …). Default
    /// none.
    pub fn test_pause_at(mut self, point: Option<CrashPoint>) -> Self {
        self.pause_at = point;
        self
    }

    /// Opens the wallet, creating the state directory and the seed on first
    /// start, then resumes unfinished swaps.
    pub async fn open(self) -> Result<Wallet, WalletError> {
        atoll_core::fsutil::create_private_dir(&self.state_dir).map_err(|source| {
            WalletError::StateDir {
                path: self.state_dir.clone(),
                source,
            }
        })?;
        let seed_file = self
            .seed_file
            .unwrap_or_else(|| self.state_dir.join(SEED_FILE));
        let seed = seed::load_or_create(&seed_file)?;
        let cdk_db = WalletSqliteDatabase::new(self.state_dir.join(CDK_DB_FILE))
            .await
            .map_err(|source| WalletError::CdkDatabase { source })?;
        let store = Store::open(&self.state_dir.join(STORE_FILE))?;
        for mint in &self.trusted {
            store.trust(&canonical_mint_url(mint, self.allow_insecure_mints)?)?;
        }
        let wallet = Wallet {
            inner: Arc::new(Inner {
                seed,
                cdk_db: Arc::new(cdk_db),
                wallets: Mutex::new(HashMap::new()),
                store,
                budget: self.budget,
                pay_lock: tokio::sync::Mutex::new(()),
                crash_point: Mutex::new(None),
                pause_point: self.pause_at,
                pacing: self.pacing,
                allow_insecure_mints: self.allow_insecure_mints,
            }),
        };
        if self.resume {
            match wallet.resume().await {
                Ok(report) if report.is_empty() => {}
                Ok(report) => tracing::info!(?report, "resumed the swap journal"),
                Err(e) => tracing::warn!("swap journal not fully resumed: {e}"),
            }
        }
        Ok(wallet)
    }
}

pub(crate) struct Inner {
    seed: [u8; 64],
    pub(crate) cdk_db: Arc<WalletSqliteDatabase>,
    wallets: Mutex<HashMap<String, CdkWallet>>,
    pub(crate) store: Store,
    pub(crate) budget: Budget,
    pub(crate) pay_lock: tokio::sync::Mutex<()>,
    pub(crate) crash_point: Mutex<Option<CrashPoint>>,
    pub(crate) pause_point: Option<CrashPoint>,
    pacing: MintPacing,
    allow_insecure_mints: bool,
}

/// The Atoll wallet: ecash at several mints, a trust list, budgets and a
/// swap journal. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Wallet {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("seed", &"<redacted>")
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

/// The canonical form of a mint URL (as cdk writes it in tokens).
pub fn normalize_mint_url(url: &str) -> Result<String, WalletError> {
    MintUrl::from_str(url.trim())
        .map(|u| u.to_string())
        .map_err(|_| WalletError::BadMintUrl {
            url: url.to_owned(),
        })
}

impl Wallet {
    /// Starts configuring a wallet kept in `state_dir`.
    pub fn builder(state_dir: impl AsRef<Path>) -> WalletBuilder {
        WalletBuilder {
            state_dir: state_dir.as_ref().to_owned(),
            seed_file: None,
            budget: Budget::default(),
            trusted: Vec::new(),
            resume: true,
            pause_at: None,
            pacing: MintPacing::default(),
            allow_insecure_mints: false,
        }
    }

    /// The cdk wallet for one mint (created on first use; no network).
    pub(crate) fn cdk(&self, mint: &str) -> Result<CdkWallet, MintError> {
        let mut wallets = self
            .inner
            .wallets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = wallets.get(mint) {
            return Ok(w.clone());
        }
        let wallet = CdkWallet::new(
            mint,
            CurrencyUnit::Sat,
            self.inner.cdk_db.clone(),
            self.inner.seed,
            None,
        )
        .map_err(|e| MintError::from_cdk(mint, e))?;
        self.inner.pacing.apply(&wallet);
        wallets.insert(mint.to_owned(), wallet.clone());
        Ok(wallet)
    }

    /// How many swaps the journal still holds open (a mint was down when
    /// they were resumed): [`Wallet::resume`] again settles them.
    pub fn unsettled_swaps(&self) -> Result<usize, StoreError> {
        Ok(self.inner.store.open_swaps()?.len())
    }

    /// The spending limits.
    pub fn budget(&self) -> Budget {
        self.inner.budget
    }

    /// Mints whose ecash the wallet may hold: the trusted ones and any in
    /// cdk's database.
    async fn known_mints(&self) -> Result<Vec<String>, WalletError> {
        use cdk::cdk_database::WalletDatabase;
        let mut mints: Vec<String> = self.inner.store.trusted()?;
        let in_db = self
            .inner
            .cdk_db
            .get_mints()
            .await
            .map_err(|source| WalletError::CdkDatabase { source })?;
        mints.extend(in_db.into_keys().map(|u| u.to_string()));
        mints.sort();
        mints.dedup();
        Ok(mints)
    }

    /// Spendable sat at one mint (local; no network).
    pub async fn mint_balance(&self, mint: &str) -> Result<u64, WalletError> {
        let mint = normalize_mint_url(mint)?;
        let wallet = self.cdk(&mint)?;
        let amount = wallet
            .total_balance()
            .await
            .map_err(|e| MintError::from_cdk(&mint, e))?;
        Ok(u64::from(amount))
    }

    /// Spendable sat per mint and in total (local; no network).
    pub async fn balance(&self) -> Result<Balance, WalletError> {
        let mut mints = BTreeMap::new();
        let mut total = 0u64;
        for mint in self.known_mints().await? {
            let sat = self.mint_balance(&mint).await?;
            if sat > 0 || self.inner.store.is_trusted(&mint)? {
                total = total.saturating_add(sat);
                mints.insert(mint, sat);
            }
        }
        Ok(Balance {
            total_sat: total,
            mints,
        })
    }

    /// The trusted mints.
    pub fn trusted_mints(&self) -> Result<Vec<String>, WalletError> {
        Ok(self.inner.store.trusted()?)
    }

    /// Whether a mint is trusted.
    pub fn is_trusted(&self, mint: &str) -> Result<bool, WalletError> {
        Ok(self.inner.store.is_trusted(&normalize_mint_url(mint)?)?)
    }

    /// Adds a mint to the trust list; returns its canonical URL. The URL
    /// must pass [`canonical_mint_url`] (https, or http on loopback unless
    /// insecure mints are allowed; no user info, query or fragment; at
    /// most 512 bytes of printable ASCII).
    pub fn trust_mint(&self, mint: &str) -> Result<String, WalletError> {
        let mint = canonical_mint_url(mint, self.inner.allow_insecure_mints)?;
        self.inner.store.trust(&mint)?;
        tracing::info!(%mint, "mint trusted");
        Ok(mint)
    }

    /// Removes a mint from the trust list; returns whether it was on it.
    /// Ecash already held there stays and can still be sent.
    pub fn distrust_mint(&self, mint: &str) -> Result<bool, WalletError> {
        let mint = normalize_mint_url(mint)?;
        let removed = self.inner.store.distrust(&mint)?;
        tracing::info!(%mint, removed, "mint no longer trusted");
        Ok(removed)
    }

    /// The newest `limit` history entries, newest first.
    pub fn history(&self, limit: u32) -> Result<Vec<HistoryEntry>, WalletError> {
        Ok(self.inner.store.history(limit)?)
    }

    /// Accepts a token: its mint must be trusted (and among
    /// `expected_mints` when that is not empty), its unit sat and its value
    /// at least `expected_sat`; then it is swapped at its mint, which is the
    /// only real acceptance.
    pub async fn receive(
        &self,
        token: &str,
        expected_sat: u64,
        expected_mints: &[String],
    ) -> Result<Received, ReceiveError> {
        self.accept(token, expected_sat, expected_mints, false)
            .await
    }

    /// Takes back a token this wallet made that its payee never took (a
    /// caller that went away, a peer that refused it): it is received
    /// again at its mint, which must be one this wallet has used (trusted
    /// or not any more). Whoever swaps a token first has it: if the payee
    /// redeemed it already this fails with [`ReceiveError::AlreadySpent`].
    pub async fn reclaim(&self, token: &str) -> Result<Received, ReceiveError> {
        self.accept(token, 0, &[], true).await
    }

    async fn accept(
        &self,
        token: &str,
        expected_sat: u64,
        expected_mints: &[String],
        reclaim: bool,
    ) -> Result<Received, ReceiveError> {
        let token = token.trim();
        let parsed = Token::from_str(token).map_err(|source| ReceiveError::Malformed { source })?;
        let mint = parsed
            .mint_url()
            .map_err(|source| ReceiveError::Malformed { source })?
            .to_string();
        let unit = parsed.unit().unwrap_or_default();
        if unit != CurrencyUnit::Sat {
            return Err(ReceiveError::WrongUnit {
                unit: unit.to_string(),
            });
        }
        let expected: Vec<String> = expected_mints
            .iter()
            .filter_map(|m| normalize_mint_url(m).ok())
            .collect();
        let known = if reclaim {
            self.inner.store.is_trusted(&mint)? || self.has_used(&mint).await
        } else {
            self.inner.store.is_trusted(&mint)?
                && (expected_mints.is_empty() || expected.contains(&mint))
        };
        if !known {
            return Err(if reclaim || !self.inner.store.is_trusted(&mint)? {
                ReceiveError::UntrustedMint { mint }
            } else {
                ReceiveError::UnexpectedMint { mint }
            });
        }
        let value = u64::from(
            parsed
                .value()
                .map_err(|source| ReceiveError::Malformed { source })?,
        );
        if value < expected_sat {
            return Err(ReceiveError::TooSmall {
                value_sat: value,
                expected_sat,
            });
        }
        let wallet = self.cdk(&mint)?;
        // One value-moving operation at a time: a resume's recovery of
        // cdk's unfinished operations never meets a live one.
        let _guard = self.inner.pay_lock.lock().await;
        let received = call(
            &mint,
            "receive",
            wallet.receive(token, ReceiveOptions::default()),
        )
        .await
        .map_err(|e| match e.cdk_error() {
            Some(cdk::Error::TokenAlreadySpent) => ReceiveError::AlreadySpent,
            _ => ReceiveError::Mint(e),
        })?;
        let amount_sat = u64::from(received);
        let fee_sat = value.saturating_sub(amount_sat);
        let (kind, note) = if reclaim {
            // What came back no longer counts against the budget.
            self.inner.store.refund_token(token, amount_sat)?;
            self.inner.store.settle_outstanding(token, "taken back")?;
            ("reclaim", "undelivered token taken back")
        } else {
            ("receive", "token received")
        };
        self.inner
            .store
            .add_history(kind, &mint, amount_sat, fee_sat, note)?;
        tracing::info!(%mint, amount_sat, fee_sat, "{note}");
        Ok(Received {
            mint,
            amount_sat,
            fee_sat,
        })
    }

    /// Whether cdk's database knows `mint` (this wallet has used it).
    async fn has_used(&self, mint: &str) -> bool {
        let Ok(url) = MintUrl::from_str(mint) else {
            return false;
        };
        matches!(self.inner.cdk_db.get_mint(url).await, Ok(Some(_)))
    }

    /// Asks a trusted mint for an invoice of `amount_sat` (a mint quote).
    /// Once it is paid, [`Wallet::claim_invoice`] mints the ecash.
    pub async fn invoice(&self, mint: &str, amount_sat: u64) -> Result<Invoice, WalletError> {
        let mint = self.require_trusted(mint)?;
        let wallet = self.cdk(&mint)?;
        let quote = call(
            &mint,
            "mint quote",
            wallet.mint_quote(
                PaymentMethod::BOLT11,
                Some(Amount::from(amount_sat)),
                None,
                None,
            ),
        )
        .await?;
        self.inner
            .store
            .add_history("invoice", &mint, amount_sat, 0, "invoice issued")?;
        Ok(Invoice {
            mint,
            quote_id: quote.id,
            bolt11: quote.request,
            amount_sat,
        })
    }

    /// Mints a paid invoice of [`Wallet::invoice`]; returns the sat minted
    /// (0 when it is not paid yet).
    pub async fn claim_invoice(&self, mint: &str, quote_id: &str) -> Result<u64, WalletError> {
        let mint = normalize_mint_url(mint)?;
        let wallet = self.cdk(&mint)?;
        let _guard = self.inner.pay_lock.lock().await;
        let quote = call(
            &mint,
            "mint quote status",
            wallet.check_mint_quote_status(quote_id),
        )
        .await?;
        if quote.amount_paid <= quote.amount_issued {
            return Ok(0);
        }
        let proofs = call(
            &mint,
            "mint",
            wallet.mint(quote_id, SplitTarget::default(), None),
        )
        .await?;
        let minted: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
        Ok(minted)
    }

    /// Pays a BOLT11 invoice by melting at `mint` (which must hold the
    /// ecash), within the budget.
    pub async fn pay_invoice(&self, mint: &str, bolt11: &str) -> Result<InvoicePaid, WalletError> {
        let mint = normalize_mint_url(mint)?;
        let wallet = self.cdk(&mint)?;
        let _guard = self.inner.pay_lock.lock().await;
        let quote = call(
            &mint,
            "melt quote",
            wallet.melt_quote(PaymentMethod::BOLT11, bolt11, None, None),
        )
        .await?;
        let cost = u64::from(quote.amount).saturating_add(u64::from(quote.fee_reserve));
        let limit = self.budget_left()?;
        if cost > limit {
            return Err(WalletError::OverBudget {
                cost_sat: cost,
                limit_sat: limit,
            });
        }
        let spend = self.inner.store.record_spend(cost, None)?;
        let prepared = match call(
            &mint,
            "prepare melt",
            wallet.prepare_melt(&quote.id, HashMap::new()),
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                self.inner.store.drop_spend(spend)?;
                return Err(e.into());
            }
        };
        let swap_fee = u64::from(prepared.swap_fee());
        let finalized = match call(&mint, "melt", prepared.confirm()).await {
            Ok(f) => f,
            Err(e) => {
                // Only a definite refusal frees the budget; a timeout may
                // still settle.
                if matches!(e, MintError::Refused { .. } | MintError::Unreachable { .. }) {
                    self.inner.store.drop_spend(spend)?;
                }
                return Err(e.into());
            }
        };
        if finalized.state() != MeltQuoteState::Paid {
            self.inner.store.drop_spend(spend)?;
            return Err(WalletError::NotPaid {
                state: finalized.state(),
            });
        }
        let amount_sat = u64::from(finalized.amount());
        let fee_sat = u64::from(finalized.fee_paid()).saturating_add(swap_fee);
        self.inner
            .store
            .settle_spend(spend, amount_sat.saturating_add(fee_sat))?;
        self.inner
            .store
            .add_history("pay_invoice", &mint, amount_sat, fee_sat, "invoice paid")?;
        Ok(InvoicePaid {
            mint,
            amount_sat,
            fee_sat,
            preimage: finalized.payment_proof().map(str::to_owned),
        })
    }

    /// Restores ecash from the seed at every trusted mint (NUT-09 restore;
    /// proofs the mint reports spent, NUT-07, are dropped). For a fresh
    /// state directory with an old seed file.
    pub async fn restore(&self) -> Result<Vec<Restored>, WalletError> {
        let _guard = self.inner.pay_lock.lock().await;
        let mut out = Vec::new();
        for mint in self.inner.store.trusted()? {
            let wallet = self.cdk(&mint)?;
            let restored = call(&mint, "restore", wallet.restore()).await?;
            let unspent_sat = u64::from(restored.unspent);
            let spent_sat = u64::from(restored.spent);
            self.inner
                .store
                .add_history("restore", &mint, unspent_sat, 0, "restored from seed")?;
            tracing::info!(%mint, unspent_sat, spent_sat, "restored from seed");
            out.push(Restored {
                mint,
                unspent_sat,
                spent_sat,
            });
        }
        Ok(out)
    }

    pub(crate) fn require_trusted(&self, mint: &str) -> Result<String, WalletError> {
        let mint = normalize_mint_url(mint)?;
        if !self.inner.store.is_trusted(&mint)? {
            return Err(WalletError::Untrusted { mint });
        }
        Ok(mint)
    }

    /// What may still be spent in one payment now: the smaller of the
    /// per-payment limit and what is left of the rolling day.
    pub fn budget_left(&self) -> Result<u64, StoreError> {
        let spent = self
            .inner
            .store
            .spent_since(crate::store::now().saturating_sub(86_400))?;
        Ok(self
            .inner
            .budget
            .per_payment_sat
            .min(self.inner.budget.per_day_sat.saturating_sub(spent)))
    }
}
