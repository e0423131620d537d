//! Paid bandwidth with real parts: two cdk test mints on one fake
//! Lightning network, two Atoll wallets served over their unix-socket
//! API, swarm nodes on loopback.
//!
//! A charges 1 sat/MB for a paid blob and accepts only its wallet's mint
//! (mint A); B's wallet holds ecash only at mint B, so it pays through a
//! swap. B buys an allotment and fetches; balances move by the price (plus
//! the fee the wallet reports); the allotment is metered and a spent one
//! stops a transfer. D (max price 0) is refused and falls back to the
//! origin without paying; trusted C and a free blob cost nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::{path::Path, time::Duration};

use atoll_core::ContentId;
use atoll_swarm::{FetchRequest, Source, pay::MB, store::Direction};
use atoll_testkit::{TempState, lightning::LightningNetwork, mint::TestMint};
use atoll_wallet::{Budget, Wallet};
use common::{Origin, OriginMode, TestNode, data};

/// 1.5 MB: an allotment of 2 MB, 2 sat at 1 sat/MB.
const SIZE: usize = 1_500_000;
const PRICE: u64 = 2;
const FUNDS: u64 = 100;
const STEP: Duration = Duration::from_secs(60);

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in {STEP:?}"))
}

async fn open_wallet(dir: &Path, mints: &[&str]) -> Wallet {
    Wallet::builder(dir)
        .budget(Budget {
            per_payment_sat: 1_000,
            per_day_sat: 10_000,
        })
        .trust(mints.iter().copied())
        .open()
        .await
        .unwrap()
}

/// Serves `wallet`'s local API on `sock`, as atoll-walletd does.
async fn serve_wallet(wallet: Wallet, sock: &Path) -> tokio::task::JoinHandle<()> {
    let listener = atoll_core::local_api::bind(sock).await.unwrap();
    tokio::spawn(async move {
        atoll_core::local_api::serve(
            listener,
            atoll_wallet::api::router(wallet),
            std::future::pending(),
        )
        .await
        .unwrap();
    })
}

async fn fund(network: &LightningNetwork, wallet: &Wallet, mint: &str, amount: u64) {
    let invoice = wallet.invoice(mint, amount).await.unwrap();
    network.pay_external(&invoice.bolt11).unwrap();
    within("claiming an invoice", async {
        loop {
            if wallet.claim_invoice(mint, &invoice.quote_id).await.unwrap() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

async fn balance(wallet: &Wallet) -> u64 {
    wallet.balance().await.unwrap().total_sat
}

fn req(id: ContentId, peers: Vec<iroh::EndpointAddr>, origins: Vec<String>) -> FetchRequest {
    FetchRequest {
        id: Some(id),
        peers,
        origins,
        no_adverts: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_blobs_are_bought_metered_and_otherwise_fetched_from_the_origin() {
    let network = LightningNetwork::new();
    let mint_a = TestMint::builder(&network).spawn().await.unwrap();
    let mint_b = TestMint::builder(&network)
        .melt_fee_sat(1)
        .spawn()
        .await
        .unwrap();
    let wallets = TempState::new("wallets").unwrap();
    let wallet_a = open_wallet(&wallets.state().join("a"), &[mint_a.url()]).await;
    let wallet_b = open_wallet(&wallets.state().join("b"), &[mint_a.url(), mint_b.url()]).await;
    fund(&network, &wallet_b, mint_b.url(), FUNDS).await;
    let sock_a = wallets.run().join("wallet-a.sock");
    let sock_b = wallets.run().join("wallet-b.sock");
    let _serve_a = serve_wallet(wallet_a.clone(), &sock_a).await;
    let _serve_b = serve_wallet(wallet_b.clone(), &sock_b).await;

    // C is trusted by A; D has a wallet but never pays.
    let c = TestNode::spawn("c", |_| {}).await;
    let d = TestNode::spawn("d", |cfg| {
        cfg.payment.wallet_socket = Some(sock_b.clone());
    })
    .await;
    let c_id = c.node.state().endpoint().id().to_string();
    let mint_a_url = mint_a.url().to_owned();
    let a = TestNode::spawn("a", move |cfg| {
        cfg.payment.enabled = true;
        cfg.payment.price_sat_per_mb = 1;
        cfg.payment.accepted_mints = vec![mint_a_url];
        cfg.payment.trusted_peers = vec![c_id];
        cfg.payment.wallet_socket = Some(sock_a.clone());
    })
    .await;
    let b = TestNode::spawn("b", move |cfg| {
        cfg.payment.wallet_socket = Some(sock_b.clone());
        cfg.payment.max_price_sat_per_mb = 1;
        cfg.payment.max_fee_sat = 5;
    })
    .await;

    let paid_bytes = data(SIZE, 7);
    let free_bytes = data(SIZE, 8);
    let paid = a
        .node
        .state()
        .blobs()
        .add_bytes(paid_bytes.clone())
        .await
        .unwrap();
    let free = a
        .node
        .state()
        .blobs()
        .add_bytes(free_bytes.clone())
        .await
        .unwrap();
    // Marked paid through the API.
    let info: atoll_swarm::store::BlobInfo = a
        .client()
        .put(&format!("/blobs/{}/paid", paid.id.to_hex()))
        .await
        .unwrap();
    assert!(info.paid);
    let origin = Origin::spawn(
        vec![paid_bytes.clone(), free_bytes.clone()],
        OriginMode::Good,
    )
    .await;
    let a_addr = a.addr().await;
    let a_id = a.node.state().endpoint().id();
    let b_id = b.node.state().endpoint().id();
    let gate = a.node.state().payment_gate().unwrap().clone();

    // A free blob costs nothing.
    let out = within(
        "free fetch",
        b.node
            .state()
            .fetch(req(free.id, vec![a_addr.clone()], vec![])),
    )
    .await
    .unwrap();
    assert_eq!(out.source, Source::Peers(vec![a_id.to_string()]));
    assert_eq!(balance(&wallet_b).await, FUNDS);
    assert!(b.node.state().blobs().payments().unwrap().is_empty());

    // D never pays: A refuses it without a grant, and the origin serves.
    let out = within(
        "D's fetch",
        d.node.state().fetch(req(
            paid.id,
            vec![a_addr.clone()],
            vec![origin.blob_url(&paid.id)],
        )),
    )
    .await
    .unwrap();
    assert_eq!(out.source, Source::Origin(origin.blob_url(&paid.id)));
    assert!(
        out.failed_peers.iter().any(|(p, _)| *p == a_id.to_string()),
        "{:?}",
        out.failed_peers
    );
    assert_eq!(balance(&wallet_b).await, FUNDS);
    assert!(d.node.state().blobs().payments().unwrap().is_empty());

    // Trusted C pays nothing.
    let out = within(
        "C's fetch",
        c.node
            .state()
            .fetch(req(paid.id, vec![a_addr.clone()], vec![])),
    )
    .await
    .unwrap();
    assert_eq!(out.source, Source::Peers(vec![a_id.to_string()]));

    // B buys an allotment (through a swap: its ecash is at mint B) and
    // fetches from A; the origin is never asked.
    let seller_before = balance(&wallet_a).await;
    let hits_before = origin.hits.load(std::sync::atomic::Ordering::SeqCst);
    let out = within(
        "B's paid fetch",
        b.node.state().fetch(req(
            paid.id,
            vec![a_addr.clone()],
            vec![origin.blob_url(&paid.id)],
        )),
    )
    .await
    .unwrap();
    assert_eq!(out.source, Source::Peers(vec![a_id.to_string()]));
    assert!(
        out.failed_peers.is_empty(),
        "A's first refusal was settled by the purchase: {:?}",
        out.failed_peers
    );
    assert_eq!(
        origin.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits_before
    );
    let spent = b.node.state().blobs().payments().unwrap();
    assert_eq!(spent.len(), 1, "{spent:?}");
    assert_eq!(spent[0].direction, Direction::Spending);
    assert_eq!(spent[0].amount_sat, PRICE);
    assert_eq!(spent[0].bytes, 2 * MB);
    assert_eq!(
        spent[0].mint,
        atoll_wallet::normalize_mint_url(mint_a.url()).unwrap()
    );
    assert_eq!(spent[0].fee_sat, 1, "mint B's melt fee: {spent:?}");
    assert_eq!(
        balance(&wallet_b).await,
        FUNDS - PRICE - spent[0].fee_sat,
        "B's wallet moves by the price plus the fee"
    );
    assert_eq!(balance(&wallet_a).await, seller_before + PRICE);
    let revenue = a.node.state().blobs().payment_totals().unwrap();
    assert_eq!(revenue.revenue_sat, PRICE);
    assert_eq!(revenue.spent_sat, 0);
    // Exactly the bytes served were deducted.
    assert_eq!(gate.remaining(&b_id, &paid.id), 2 * MB - SIZE as u64);
    // Neither C nor D has a grant.
    assert_eq!(gate.remaining(&c.node.state().endpoint().id(), &paid.id), 0);

    // What is left of the allotment does not cover the blob: a raw get
    // from B is cut off when it is spent.
    let conn = b
        .node
        .state()
        .endpoint()
        .connect(a_addr.clone(), iroh_blobs::ALPN)
        .await
        .unwrap();
    let got = within(
        "raw get",
        iroh_blobs::get::request::get_blob(conn, iroh_blobs::Hash::from_bytes(*paid.id.as_bytes()))
            .bytes(),
    )
    .await;
    assert!(got.is_err(), "a spent allotment still served the blob");
    assert_eq!(gate.remaining(&b_id, &paid.id), 0);

    // A seller that redeems the token and serves nothing costs B one
    // allotment; it is avoided afterwards and the origin serves.
    let rogue = Rogue::spawn(mint_a.url(), RogueMode::RedeemAndGrant).await;
    let rogue_bytes = data(SIZE, 9);
    let rogue_id = ContentId::of(&rogue_bytes);
    let origin2 = Origin::spawn(vec![rogue_bytes], OriginMode::Good).await;
    let before = balance(&wallet_b).await;
    let out = within(
        "fetch from a rogue seller",
        b.node.state().fetch(req(
            rogue_id,
            vec![rogue.addr.clone()],
            vec![origin2.blob_url(&rogue_id)],
        )),
    )
    .await
    .unwrap();
    assert_eq!(out.source, Source::Origin(origin2.blob_url(&rogue_id)));
    let to_rogue: Vec<_> = b
        .node
        .state()
        .blobs()
        .payments()
        .unwrap()
        .into_iter()
        .filter(|p| p.peer == rogue.addr.id.to_string())
        .collect();
    assert_eq!(to_rogue.len(), 1, "{to_rogue:?}");
    assert_eq!(to_rogue[0].amount_sat, 1);
    assert_eq!(
        balance(&wallet_b).await,
        before - to_rogue[0].amount_sat - to_rogue[0].fee_sat
    );
    assert!(
        b.node.state().fetcher().avoided().contains(&rogue.addr.id),
        "the rogue seller is avoided"
    );
    rogue.router.shutdown().await.unwrap();

    // A seller that says "granted" but neither redeems the token nor
    // serves: B takes the token back (only the fee of buying it is gone)
    // and avoids the seller.
    let idle = Rogue::spawn(mint_a.url(), RogueMode::Grant).await;
    let idle_bytes = data(SIZE, 11);
    let idle_id = ContentId::of(&idle_bytes);
    let origin4 = Origin::spawn(vec![idle_bytes], OriginMode::Good).await;
    let before = balance(&wallet_b).await;
    let out = within(
        "fetch from a seller that grants and serves nothing",
        b.node.state().fetch(req(
            idle_id,
            vec![idle.addr.clone()],
            vec![origin4.blob_url(&idle_id)],
        )),
    )
    .await
    .unwrap();
    assert_eq!(out.source, Source::Origin(origin4.blob_url(&idle_id)));
    let payments = b.node.state().blobs().payments().unwrap();
    assert!(
        !payments.iter().any(|p| p.peer == idle.addr.id.to_string()),
        "a token taken back is no payment: {payments:?}"
    );
    let history = wallet_b.history(10).unwrap();
    let bought = history
        .iter()
        .find(|e| e.note.contains(&idle_id.to_string()))
        .unwrap_or_else(|| panic!("no purchase in {history:?}"));
    assert_eq!(history[0].kind, "reclaim", "{history:?}");
    assert_eq!(
        balance(&wallet_b).await,
        before - bought.fee_sat,
        "{history:?}"
    );
    assert!(
        b.node.state().fetcher().avoided().contains(&idle.addr.id),
        "the idle seller is avoided"
    );
    idle.router.shutdown().await.unwrap();

    // A seller that refuses the token it asked for (without redeeming
    // it): B takes the token back and loses nothing.
    let refuser = Rogue::spawn(mint_a.url(), RogueMode::Refuse).await;
    let refused_bytes = data(SIZE, 10);
    let refused_id = ContentId::of(&refused_bytes);
    let origin3 = Origin::spawn(vec![refused_bytes], OriginMode::Good).await;
    let before = balance(&wallet_b).await;
    let out = within(
        "fetch from a seller that refuses the token",
        b.node.state().fetch(req(
            refused_id,
            vec![refuser.addr.clone()],
            vec![origin3.blob_url(&refused_id)],
        )),
    )
    .await
    .unwrap();
    assert_eq!(out.source, Source::Origin(origin3.blob_url(&refused_id)));
    let payments = b.node.state().blobs().payments().unwrap();
    assert!(
        !payments
            .iter()
            .any(|p| p.peer == refuser.addr.id.to_string()),
        "a token taken back is no payment: {payments:?}"
    );
    // B bought the token by a swap into the seller's mint: only that
    // swap's fee is gone.
    let history = wallet_b.history(10).unwrap();
    let bought = history
        .iter()
        .find(|e| e.note.contains(&refused_id.to_string()))
        .unwrap_or_else(|| panic!("no purchase in {history:?}"));
    assert_eq!(
        balance(&wallet_b).await,
        before - bought.fee_sat,
        "the token came back whole: {history:?}"
    );
    assert!(
        history
            .iter()
            .any(|e| e.kind == "reclaim" && e.amount_sat == 1),
        "{history:?}"
    );
    refuser.router.shutdown().await.unwrap();

    a.node.shutdown().await;
    b.node.shutdown().await;
    c.node.shutdown().await;
    d.node.shutdown().await;
    mint_a.shutdown().await.unwrap();
    mint_b.shutdown().await.unwrap();
}

/// What a [`Rogue`] does with the token.
#[derive(Debug, Clone, Copy)]
enum RogueMode {
    /// Redeems it at the mint, then says "granted".
    RedeemAndGrant,
    /// Says "granted" without redeeming it.
    Grant,
    /// Refuses it without redeeming it.
    Refuse,
}

/// A seller that offers 1 MB for 1 sat, answers a token as its
/// [`RogueMode`] says, and serves nothing (its blob store is empty).
struct Rogue {
    router: iroh::protocol::Router,
    addr: iroh::EndpointAddr,
    _store: iroh_blobs::store::mem::MemStore,
}

#[derive(Clone)]
struct RogueHandler {
    mint: String,
    mode: RogueMode,
    wallet: std::sync::Arc<atoll_testkit::mint::TestWallet>,
}

impl std::fmt::Debug for RogueHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RogueHandler")
            .field("mint", &self.mint)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl iroh::protocol::ProtocolHandler for RogueHandler {
    async fn accept(
        &self,
        conn: iroh::endpoint::Connection,
    ) -> Result<(), iroh::protocol::AcceptError> {
        use atoll_swarm::pay::{PayMsg, read_msg, write_msg};
        let (mut send, mut recv) = conn.accept_bi().await?;
        let Ok(PayMsg::Want { .. }) = read_msg(&mut recv).await else {
            return Ok(());
        };
        let offer = PayMsg::Offer {
            price_sat: 1,
            bytes: MB,
            accepted_mints: vec![self.mint.clone()],
        };
        write_msg(&mut send, &offer).await.unwrap();
        if let Ok(PayMsg::Token { token }) = read_msg(&mut recv).await {
            let answer = match self.mode {
                RogueMode::RedeemAndGrant => {
                    self.wallet
                        .receive(&token, cdk::wallet::ReceiveOptions::default())
                        .await
                        .unwrap();
                    PayMsg::Granted { bytes: MB }
                }
                RogueMode::Grant => PayMsg::Granted { bytes: MB },
                RogueMode::Refuse => PayMsg::Refused {
                    reason: "no".to_owned(),
                },
            };
            write_msg(&mut send, &answer).await.unwrap();
        }
        send.finish()?;
        let _ = send.stopped().await;
        Ok(())
    }
}

impl Rogue {
    async fn spawn(mint: &str, mode: RogueMode) -> Self {
        let wallet = std::sync::Arc::new(atoll_testkit::mint::test_wallet(mint).await.unwrap());
        let endpoint = atoll_core::net::endpoint_builder(iroh::SecretKey::generate(), None)
            .bind_addr("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
            .unwrap()
            .bind()
            .await
            .unwrap();
        let store = iroh_blobs::store::mem::MemStore::new();
        let router = iroh::protocol::Router::builder(endpoint.clone())
            .accept(
                iroh_blobs::ALPN,
                iroh_blobs::BlobsProtocol::new(&store, None),
            )
            .accept(
                atoll_swarm::pay::PAY_ALPN,
                RogueHandler {
                    mint: mint.to_owned(),
                    mode,
                    wallet,
                },
            )
            .spawn();
        let mut addr = endpoint.addr();
        for _ in 0..100 {
            if addr.ip_addrs().next().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            addr = endpoint.addr();
        }
        Self {
            router,
            addr,
            _store: store,
        }
    }
}

/// A metadata database made before the `paid` column existed is migrated
/// on open; blobs in it are free.
#[tokio::test]
async fn old_metadata_gains_the_paid_column() {
    let dir = TempState::new("migrate").unwrap();
    let state = dir.state();
    std::fs::create_dir_all(&state).unwrap();
    {
        let conn = rusqlite::Connection::open(state.join("meta.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE blobs (
                hash TEXT PRIMARY KEY,
                size INTEGER NOT NULL,
                pinned INTEGER NOT NULL DEFAULT 0,
                seeding INTEGER NOT NULL DEFAULT 1,
                added_at INTEGER NOT NULL,
                last_access INTEGER NOT NULL
            );",
        )
        .unwrap();
    }
    let blobs = atoll_swarm::store::Blobs::open(&state, 0, Duration::from_secs(60))
        .await
        .unwrap();
    let info = blobs.add_bytes(data(1000, 3)).await.unwrap();
    assert!(!info.paid);
    assert!(blobs.set_paid(&info.id, true).unwrap().paid);
    assert!(blobs.get(&info.id).unwrap().unwrap().paid);
    assert!(!blobs.set_paid(&info.id, false).unwrap().paid);
    blobs.shutdown().await;
}
