//! Local Cashu mints for tests: a real cdk mint in process, on a temp-dir
//! SQLite database, with a [`LinkedLightning`] backend for BOLT11 `sat`,
//! served over HTTP on `127.0.0.1` by `cdk-axum`; plus wallets for them.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use atoll_testkit::lightning::LightningNetwork;
//! use atoll_testkit::mint::{TestMint, fund};
//!
//! let network = LightningNetwork::new();
//! let mint = TestMint::builder(&network).spawn().await?;
//! let wallet = mint.wallet().await?;
//! fund(&network, &wallet, 100).await?;
//! mint.shutdown().await?;
//! # Ok(())
//! # }
//! ```

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use cdk::Amount;
use cdk::amount::SplitTarget;
use cdk::mint::{Mint, MintBuilder, MintMeltLimits};
use cdk::nuts::nut00::ProofsMethods;
use cdk::nuts::nut17::SupportedMethods;
use cdk::nuts::{CurrencyUnit, PaymentMethod};
use cdk::wallet::Wallet;
use cdk_sqlite::{MintSqliteDatabase, WalletSqliteDatabase};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dirs::TempState;
use crate::lightning::{LightningNetwork, LinkedLightning};

/// How long [`fund`] waits for the mint to see its invoice paid.
const FUND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`TestMint::shutdown`] waits for open HTTP connections to close.
const SERVER_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Smallest and largest amount (sat) the test mints mint or melt at once.
const MINT_MELT_LIMITS: (u64, u64) = (1, 100_000_000);

/// Configures a [`TestMint`]; created by [`TestMint::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `spawn` is awaited"]
pub struct TestMintBuilder {
    network: LightningNetwork,
    input_fee_ppk: u64,
    melt_fee_sat: u64,
    bind: std::net::SocketAddr,
    latency_ms: Option<Arc<std::sync::atomic::AtomicU64>>,
    reply_latency_ms: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl TestMintBuilder {
    /// Delays every HTTP *answer* of the mint by the value of `ms` at the
    /// time: the request is processed at once (a melt pays), the caller
    /// learns it only later, e.g. to stop a wallet after a melt was paid
    /// but before it knows. Default: no delay.
    pub fn reply_latency_ms(mut self, ms: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.reply_latency_ms = Some(ms);
        self
    }

    /// Delays every HTTP request to the mint by the value of `ms` at the
    /// time (milliseconds; 0: none), e.g. to stop a wallet mid-payment.
    /// Default: no delay.
    pub fn latency_ms(mut self, ms: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.latency_ms = Some(ms);
        self
    }

    /// Address the mint's HTTP server listens on (port 0: an ephemeral
    /// one). Default `127.0.0.1:0`.
    pub fn bind(mut self, addr: std::net::SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Input fee of the mint's `sat` keyset, in parts per thousand per proof
    /// (NUT-02). Default 0.
    pub fn input_fee_ppk(mut self, input_fee_ppk: u64) -> Self {
        self.input_fee_ppk = input_fee_ppk;
        self
    }

    /// Fixed Lightning routing fee, in sat, that the mint's node pays for
    /// every melt; it is the melt quote's fee reserve and is spent in full.
    /// Default 0.
    pub fn melt_fee_sat(mut self, melt_fee_sat: u64) -> Self {
        self.melt_fee_sat = melt_fee_sat;
        self
    }

    /// Builds and starts the mint and serves it on its bind address
    /// (default an ephemeral port of `127.0.0.1`).
    pub async fn spawn(self) -> Result<TestMint> {
        let dir = TempState::new("mint").context("creating the mint's state directory")?;
        let db = Arc::new(
            MintSqliteDatabase::new(dir.state().join("mint.sqlite"))
                .await
                .context("opening the mint database")?,
        );

        let listener = TcpListener::bind(self.bind)
            .await
            .context("binding the mint's HTTP port")?;
        let url = format!("http://{}", listener.local_addr()?);

        let lightning = self.network.node().with_melt_fee_sat(self.melt_fee_sat);
        let (min, max) = MINT_MELT_LIMITS;
        let mut builder = MintBuilder::new(db.clone())
            .with_name(format!("atoll test mint {}", lightning.node_id()))
            .with_description("In-process mint on a fake Lightning network".to_owned())
            .with_urls(vec![url.clone()])
            .with_supported_websockets(SupportedMethods::default_bolt11(CurrencyUnit::Sat));
        builder
            .add_payment_processor(
                CurrencyUnit::Sat,
                PaymentMethod::BOLT11,
                MintMeltLimits::new(min, max),
                Arc::new(lightning.clone()),
            )
            .await
            .context("adding the Lightning backend")?;
        builder
            .set_unit_fee(&CurrencyUnit::Sat, self.input_fee_ppk)
            .context("setting the input fee")?;
        let seed: [u8; 64] = rand::random();
        let mint = Arc::new(
            builder
                .build_with_seed(db, &seed)
                .await
                .context("building the mint")?,
        );
        // Without `start` the mint never processes the backend's payment
        // events.
        mint.start().await.context("starting the mint")?;

        let router = match cdk_axum::create_mint_router(mint.clone(), vec!["bolt11".to_owned()])
            .await
            .context("creating the mint's HTTP router")
        {
            Ok(router) => router,
            Err(err) => {
                let _ = mint.stop().await;
                return Err(err);
            }
        };
        let router = match self.latency_ms {
            Some(ms) => router.layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let delay = ms.load(std::sync::atomic::Ordering::Relaxed);
                    async move {
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        next.run(req).await
                    }
                },
            )),
            None => router,
        };
        let router = match self.reply_latency_ms {
            Some(ms) => router.layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let ms = ms.clone();
                    async move {
                        let response = next.run(req).await;
                        let delay = ms.load(std::sync::atomic::Ordering::Relaxed);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        response
                    }
                },
            )),
            None => router,
        };
        let cancel = CancellationToken::new();
        let server = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await
            }
        });

        Ok(TestMint {
            url,
            mint,
            lightning,
            cancel,
            server: Some(server),
            _dir: dir,
        })
    }
}

/// A running in-process cdk mint, reachable at [`TestMint::url`].
///
/// Dropping it stops the HTTP server; [`TestMint::shutdown`] also stops the
/// mint's background tasks and waits for both.
#[derive(Debug)]
pub struct TestMint {
    url: String,
    mint: Arc<Mint>,
    lightning: LinkedLightning,
    cancel: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempState,
}

impl TestMint {
    /// Starts configuring a mint whose Lightning node joins `network`.
    pub fn builder(network: &LightningNetwork) -> TestMintBuilder {
        TestMintBuilder {
            network: network.clone(),
            input_fee_ppk: 0,
            melt_fee_sat: 0,
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            latency_ms: None,
            reply_latency_ms: None,
        }
    }

    /// The mint URL, `http://ADDR:PORT` (default `http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cdk mint itself, for looking at its database or quotes directly.
    pub fn mint(&self) -> &Arc<Mint> {
        &self.mint
    }

    /// The mint's Lightning node.
    pub fn lightning(&self) -> &LinkedLightning {
        &self.lightning
    }

    /// A new wallet for this mint, see [`test_wallet`].
    pub async fn wallet(&self) -> Result<TestWallet> {
        test_wallet(&self.url).await
    }

    /// Stops the HTTP server, then the mint's background tasks.
    pub async fn shutdown(mut self) -> Result<()> {
        self.cancel.cancel();
        if let Some(server) = self.server.take() {
            // Graceful shutdown waits for open connections; a wallet may still
            // hold one, so give up after a while and abort.
            let abort = server.abort_handle();
            match tokio::time::timeout(SERVER_SHUTDOWN_TIMEOUT, server).await {
                Ok(joined) => joined
                    .context("mint HTTP server task failed")?
                    .context("mint HTTP server failed")?,
                Err(_) => abort.abort(),
            }
        }
        self.mint.stop().await.context("stopping the mint")?;
        Ok(())
    }
}

impl Drop for TestMint {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A cdk [`Wallet`] in `sat` with a random seed and its own temp-dir SQLite
/// database, which lives as long as this value (kept when
/// `ATOLL_KEEP_TEST_DIRS` is set). Derefs to the [`Wallet`].
#[derive(Debug)]
pub struct TestWallet {
    wallet: Wallet,
    _dir: TempState,
}

impl TestWallet {
    /// The cdk wallet.
    pub fn wallet(&self) -> &Wallet {
        &self.wallet
    }
}

impl Deref for TestWallet {
    type Target = Wallet;

    fn deref(&self) -> &Wallet {
        &self.wallet
    }
}

/// Creates a `sat` wallet for `mint_url` with a random seed and a temp-dir
/// SQLite database.
pub async fn test_wallet(mint_url: &str) -> Result<TestWallet> {
    let dir = TempState::new("wallet").context("creating the wallet's state directory")?;
    let db = WalletSqliteDatabase::new(dir.state().join("wallet.sqlite"))
        .await
        .context("opening the wallet database")?;
    let seed: [u8; 64] = rand::random();
    let wallet = Wallet::new(mint_url, CurrencyUnit::Sat, Arc::new(db), seed, None)
        .with_context(|| format!("creating a wallet for {mint_url}"))?;
    Ok(TestWallet { wallet, _dir: dir })
}

/// Funds `wallet` with `amount` sat the honest way: asks its mint for a mint
/// quote, has someone outside the network pay the quote's invoice
/// ([`LightningNetwork::pay_external`]) and mints the proofs.
///
/// Returns the amount minted, which is `amount`.
pub async fn fund(network: &LightningNetwork, wallet: &Wallet, amount: u64) -> Result<Amount> {
    let quote = wallet
        .mint_quote(
            PaymentMethod::BOLT11,
            Some(Amount::from(amount)),
            None,
            None,
        )
        .await
        .context("requesting a mint quote")?;
    network
        .pay_external(&quote.request)
        .context("paying the mint quote's invoice")?;
    let proofs = wallet
        .wait_and_mint_quote(quote, SplitTarget::default(), None, FUND_TIMEOUT)
        .await
        .context("minting the paid quote")?;
    let minted = proofs.total_amount()?;
    ensure!(
        minted == Amount::from(amount),
        "minted {minted} sat, expected {amount}"
    );
    Ok(minted)
}
