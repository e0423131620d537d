//! Paid bandwidth: a peer buys an allotment of bytes of one blob with a
//! Cashu token over a small negotiation protocol on its own ALPN, and the
//! node meters the bytes it actually serves through iroh-blobs' provider
//! events.
//!
//! The negotiation, one bidirectional stream, each message a big-endian
//! `u32` length then JSON (at most [`MAX_MSG`] bytes):
//!
//! ```text
//! buyer  → Want { id }
//! seller ← Offer { price_sat, bytes, accepted_mints } | Free | Refused
//! buyer  → Token { token }
//! seller ← Granted { bytes } | Refused { reason }
//! ```
//!
//! The seller accepts a token only through its wallet's `POST /receive`
//! (the wallet swaps it at the mint: the only real acceptance). A grant is
//! kept per (peer endpoint id, blob) with the bytes remaining. The stock
//! blobs protocol is constructed with an [`EventSender`] that intercepts
//! get requests (a paid blob asked by a non-trusted peer without a
//! remaining allotment is refused) and every chunk sent (the `Throttle`
//! event, which carries the payload bytes of the chunk): served bytes are
//! deducted, and once an allotment is spent the transfer is aborted.
//! Trusted peers and blobs not marked paid are never charged.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use atoll_core::{ContentId, local_api::LocalClient};
use iroh::{
    EndpointId,
    endpoint::{Connection, RecvStream, SendStream},
    protocol::{AcceptError, ProtocolHandler},
};
use iroh_blobs::{
    Hash,
    provider::events::{
        AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage,
        RequestMode, ThrottleMode,
    },
};
use serde::{Deserialize, Serialize};

use crate::store::{Blobs, PaymentRecord, hash_of, id_of};

/// ALPN of the payment negotiation.
pub const PAY_ALPN: &[u8] = b"atoll/pay/0";
/// Largest negotiation message, in bytes.
pub const MAX_MSG: usize = 16 << 10;
/// Bytes in the "MB" prices are quoted per.
pub const MB: u64 = 1_000_000;
/// How long one negotiation step may take (a wallet's receive or pay
/// talks to a mint, so this is generous).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the wallet may take to pay (a swap is several mint calls, each
/// bounded by the wallet).
const WALLET_PAY_TIMEOUT: Duration = Duration::from_secs(180);

/// A negotiation message. `Debug` redacts the token (bearer ecash).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayMsg {
    /// The buyer wants this blob.
    Want {
        /// The blob.
        id: ContentId,
    },
    /// The seller's price for an allotment of `bytes`.
    Offer {
        /// Price of the allotment, in sat.
        price_sat: u64,
        /// Bytes granted for it (the blob's size rounded up to MB).
        bytes: u64,
        /// Mints whose ecash the seller accepts.
        accepted_mints: Vec<String>,
    },
    /// Served free (not a paid blob, or a trusted peer).
    Free,
    /// The payment.
    Token {
        /// A Cashu token.
        token: String,
    },
    /// The allotment is granted.
    Granted {
        /// Bytes now available to the buyer for this blob.
        bytes: u64,
    },
    /// No.
    Refused {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Debug for PayMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Want { id } => f.debug_struct("Want").field("id", id).finish(),
            Self::Offer {
                price_sat,
                bytes,
                accepted_mints,
            } => f
                .debug_struct("Offer")
                .field("price_sat", price_sat)
                .field("bytes", bytes)
                .field("accepted_mints", accepted_mints)
                .finish(),
            Self::Free => f.write_str("Free"),
            Self::Token { .. } => f.write_str("Token { token: <redacted> }"),
            Self::Granted { bytes } => f.debug_struct("Granted").field("bytes", bytes).finish(),
            Self::Refused { reason } => f.debug_struct("Refused").field("reason", reason).finish(),
        }
    }
}

/// Writes one message.
pub async fn write_msg(send: &mut SendStream, msg: &PayMsg) -> Result<(), String> {
    let body = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
    if body.len() > MAX_MSG {
        return Err("message too large".into());
    }
    let len = u32::try_from(body.len()).map_err(|e| e.to_string())?;
    let mut buf = len.to_be_bytes().to_vec();
    buf.extend_from_slice(&body);
    send.write_all(&buf).await.map_err(|e| e.to_string())
}

/// Reads one message.
pub async fn read_msg(recv: &mut RecvStream) -> Result<PayMsg, String> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MSG {
        return Err(format!("message of {len} bytes is over {MAX_MSG}"));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("bad message: {e}"))
}

/// The allotment for a blob of `size` bytes: whole MB, at least one.
pub fn allotment(size: u64) -> u64 {
    size.div_ceil(MB).max(1) * MB
}

/// Body of the wallet's `POST /pay`.
#[derive(Debug, Serialize)]
pub(crate) struct WalletPay<'a> {
    pub accepted_mints: &'a [String],
    pub amount_sat: u64,
    pub max_fee_sat: u64,
    pub purpose: String,
    /// A seller redeems the token before it grants: if it is still
    /// unredeemed this long after (this node died before handing it over,
    /// or the seller never took it), the wallet takes it back.
    pub reclaim_after_secs: u64,
}

/// See [`WalletPay::reclaim_after_secs`].
const RECLAIM_AFTER: Duration = Duration::from_secs(600);

/// The wallet's answer to `POST /pay` (no `Debug`: it holds the token).
#[derive(Deserialize)]
pub(crate) struct WalletPayment {
    pub token: String,
    pub mint: String,
    pub amount_sat: u64,
    pub fee_sat: u64,
}

/// Body of the wallet's `POST /receive`.
#[derive(Debug, Serialize)]
struct WalletReceive<'a> {
    token: &'a str,
    expected_amount_sat: u64,
    expected_mints: &'a [String],
}

/// The wallet's answer to `POST /receive`.
#[derive(Debug, Deserialize)]
struct WalletReceived {
    mint: String,
    amount_sat: u64,
    fee_sat: u64,
}

/// The seller's settings.
#[derive(Debug, Clone)]
pub struct SellerSettings {
    /// Price per MB served, in sat.
    pub price_sat_per_mb: u64,
    /// Mints whose tokens are accepted.
    pub accepted_mints: Vec<String>,
    /// Peers never charged.
    pub trusted_peers: HashSet<EndpointId>,
    /// The wallet daemon's socket.
    pub wallet_socket: PathBuf,
}

#[derive(Debug, Default)]
struct GateState {
    /// Connection id → peer.
    conns: HashMap<u64, EndpointId>,
    /// Metered requests: (connection id, request id) → (peer, blob).
    metered: HashMap<(u64, u64), (EndpointId, Hash)>,
    /// Bytes remaining per (peer, blob).
    grants: HashMap<(EndpointId, Hash), u64>,
}

/// The seller side: the negotiation protocol handler and the metering of
/// the blobs protocol. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    blobs: Blobs,
    settings: SellerSettings,
    state: Mutex<GateState>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate over `blobs`.
    pub fn new(blobs: Blobs, settings: SellerSettings) -> Self {
        Self {
            inner: Arc::new(GateInner {
                blobs,
                settings,
                state: Mutex::new(GateState::default()),
            }),
        }
    }

    /// Bytes `peer` may still receive of `id`.
    pub fn remaining(&self, peer: &EndpointId, id: &ContentId) -> u64 {
        self.inner
            .state
            .lock()
            .ok()
            .and_then(|s| s.grants.get(&(*peer, hash_of(id))).copied())
            .unwrap_or(0)
    }

    /// Whether `peer` is charged for `hash`: a paid blob held here and a
    /// peer not trusted. `None` when the blob is not held.
    fn charged(&self, peer: Option<&EndpointId>, hash: &Hash) -> Option<bool> {
        let info = self.inner.blobs.get(&id_of(hash)).ok().flatten()?;
        let trusted = peer.is_some_and(|p| self.inner.settings.trusted_peers.contains(p));
        Some(info.paid && !trusted)
    }

    /// The provider events of the blobs protocol: starts the task that
    /// answers them.
    pub fn events(&self) -> EventSender {
        let mask = EventMask {
            connected: ConnectMode::Intercept,
            get: RequestMode::Intercept,
            get_many: RequestMode::Intercept,
            push: RequestMode::Disabled,
            observe: ObserveMode::None,
            throttle: ThrottleMode::Intercept,
        };
        let (sender, mut rx) = EventSender::channel(64, mask);
        let gate = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                gate.on_event(msg).await;
            }
        });
        sender
    }

    async fn on_event(&self, msg: ProviderMessage) {
        match msg {
            ProviderMessage::ClientConnected(msg) => {
                if let (Some(peer), Ok(mut s)) = (msg.endpoint_id, self.inner.state.lock()) {
                    s.conns.insert(msg.connection_id, peer);
                }
                msg.tx.send(Ok(())).await.ok();
            }
            ProviderMessage::ConnectionClosed(msg) => {
                if let Ok(mut s) = self.inner.state.lock() {
                    s.conns.remove(&msg.connection_id);
                    s.metered.retain(|(c, _), _| *c != msg.connection_id);
                }
            }
            ProviderMessage::GetRequestReceived(msg) => {
                let (conn_id, req_id) = (msg.inner.connection_id, msg.inner.request_id);
                let hash = msg.inner.request.hash;
                let is_blob = msg.inner.request.ranges.is_blob();
                let mut updates = msg.rx;
                let peer = self.peer_of(conn_id);
                let verdict = match self.charged(peer.as_ref(), &hash) {
                    // Not held (the protocol answers that itself) or free.
                    None | Some(false) if is_blob => Ok(()),
                    // A free hash sequence (a collection from `atoll blob
                    // ticket`) is served with its children only if none
                    // of them is paid.
                    None | Some(false) => self.children_verdict(peer.as_ref(), hash).await,
                    // A hash sequence could smuggle paid children: only
                    // plain blob requests are metered.
                    Some(true) if !is_blob => Err(AbortReason::Permission),
                    Some(true) => match peer {
                        Some(peer) if self.take_request(peer, hash, conn_id, req_id) => {
                            let gate = self.clone();
                            // The request's update channel closes when it
                            // ends: stop metering it then.
                            tokio::spawn(async move {
                                while let Ok(Some(_)) = updates.recv().await {}
                                if let Ok(mut s) = gate.inner.state.lock() {
                                    s.metered.remove(&(conn_id, req_id));
                                }
                            });
                            Ok(())
                        }
                        _ => {
                            tracing::info!(?peer, %hash, "refused: paid blob without an allotment");
                            Err(AbortReason::Permission)
                        }
                    },
                };
                msg.tx.send(verdict).await.ok();
            }
            ProviderMessage::GetManyRequestReceived(msg) => {
                let peer = self.peer_of(msg.connection_id);
                let paid = msg
                    .request
                    .hashes
                    .iter()
                    .any(|h| self.charged(peer.as_ref(), h) == Some(true));
                let verdict = if paid {
                    Err(AbortReason::Permission)
                } else {
                    Ok(())
                };
                msg.tx.send(verdict).await.ok();
            }
            ProviderMessage::Throttle(msg) => {
                let verdict = self.meter(msg.connection_id, msg.request_id, msg.size);
                msg.tx.send(verdict).await.ok();
            }
            _ => {}
        }
    }

    /// Whether a request for the children of `root` may be served to
    /// `peer`: yes for a trusted peer, for a root not held (the protocol
    /// answers that itself) and for a small, complete hash sequence none
    /// of whose children is paid; no otherwise.
    async fn children_verdict(
        &self,
        peer: Option<&EndpointId>,
        root: Hash,
    ) -> Result<(), AbortReason> {
        /// Largest hash sequence whose children are checked (4,097 links).
        const MAX_CHECKED: u64 = 4097 * 32;
        if peer.is_some_and(|p| self.inner.settings.trusted_peers.contains(p)) {
            return Ok(());
        }
        let blobs = self.inner.blobs.store().blobs();
        let size = match blobs.status(root).await {
            Ok(iroh_blobs::api::blobs::BlobStatus::NotFound) => return Ok(()),
            Ok(iroh_blobs::api::blobs::BlobStatus::Complete { size }) => size,
            _ => return Err(AbortReason::Permission),
        };
        if size > MAX_CHECKED || size % 32 != 0 {
            return Err(AbortReason::Permission);
        }
        let seq = blobs
            .get_bytes(root)
            .await
            .ok()
            .and_then(|b| iroh_blobs::hashseq::HashSeq::try_from(b).ok())
            .ok_or(AbortReason::Permission)?;
        if seq.iter().any(|h| self.charged(peer, &h) == Some(true)) {
            tracing::info!(?peer, %root, "refused: a hash sequence with paid children");
            return Err(AbortReason::Permission);
        }
        Ok(())
    }

    fn peer_of(&self, connection_id: u64) -> Option<EndpointId> {
        self.inner
            .state
            .lock()
            .ok()
            .and_then(|s| s.conns.get(&connection_id).copied())
    }

    /// Starts metering a request if its peer has bytes left.
    fn take_request(&self, peer: EndpointId, hash: Hash, conn_id: u64, req_id: u64) -> bool {
        let Ok(mut s) = self.inner.state.lock() else {
            return false;
        };
        if s.grants.get(&(peer, hash)).copied().unwrap_or(0) == 0 {
            return false;
        }
        s.metered.insert((conn_id, req_id), (peer, hash));
        true
    }

    /// Deducts `size` payload bytes about to be sent; refuses once the
    /// allotment is spent.
    fn meter(&self, connection_id: u64, request_id: u64, size: u64) -> Result<(), AbortReason> {
        let Ok(mut s) = self.inner.state.lock() else {
            return Err(AbortReason::Permission);
        };
        let Some(key) = s.metered.get(&(connection_id, request_id)).copied() else {
            return Ok(());
        };
        let left = s.grants.entry(key).or_insert(0);
        if *left < size {
            *left = 0;
            tracing::info!(peer = %key.0, hash = %key.1, "allotment spent: transfer stopped");
            return Err(AbortReason::Permission);
        }
        *left -= size;
        Ok(())
    }

    async fn negotiate(&self, conn: &Connection) -> Result<(), String> {
        let peer = conn.remote_id();
        let (mut send, mut recv) = tokio::time::timeout(STEP_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let want = tokio::time::timeout(STEP_TIMEOUT, read_msg(&mut recv))
            .await
            .map_err(|_| "timed out".to_owned())??;
        let PayMsg::Want { id } = want else {
            return Err("expected want".into());
        };
        let hash = hash_of(&id);
        let info = match self.inner.blobs.get(&id) {
            Ok(Some(info)) => info,
            _ => {
                let reason = format!("{id} is not held here");
                write_msg(&mut send, &PayMsg::Refused { reason }).await?;
                return finish(send).await;
            }
        };
        if self.charged(Some(&peer), &hash) != Some(true) {
            write_msg(&mut send, &PayMsg::Free).await?;
            return finish(send).await;
        }
        let settings = &self.inner.settings;
        let bytes = allotment(info.size);
        let price_sat = bytes / MB * settings.price_sat_per_mb;
        write_msg(
            &mut send,
            &PayMsg::Offer {
                price_sat,
                bytes,
                accepted_mints: settings.accepted_mints.clone(),
            },
        )
        .await?;
        let msg = tokio::time::timeout(STEP_TIMEOUT, read_msg(&mut recv))
            .await
            .map_err(|_| "timed out".to_owned())??;
        let PayMsg::Token { token } = msg else {
            return Err("expected token".into());
        };
        let wallet = LocalClient::new(&settings.wallet_socket);
        let received = tokio::time::timeout(
            STEP_TIMEOUT,
            wallet.post::<_, WalletReceived>(
                "/receive",
                &WalletReceive {
                    token: &token,
                    expected_amount_sat: price_sat,
                    expected_mints: &settings.accepted_mints,
                },
            ),
        )
        .await
        .map_err(|_| "wallet timed out".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()));
        let reply = match received {
            Ok(r) => {
                let total = {
                    let mut s = self
                        .inner
                        .state
                        .lock()
                        .map_err(|_| "grant table poisoned".to_owned())?;
                    let left = s.grants.entry((peer, hash)).or_insert(0);
                    *left = left.saturating_add(bytes);
                    *left
                };
                tracing::info!(%peer, %id, sat = r.amount_sat, bytes, "allotment sold");
                if let Err(e) = self.inner.blobs.record_payment(&PaymentRecord {
                    at: 0,
                    direction: crate::store::Direction::Revenue,
                    peer: peer.to_string(),
                    id,
                    amount_sat: r.amount_sat,
                    fee_sat: r.fee_sat,
                    mint: r.mint,
                    bytes,
                }) {
                    tracing::error!("recording revenue: {e}");
                }
                PayMsg::Granted { bytes: total }
            }
            Err(reason) => {
                tracing::info!(%peer, %id, "token refused: {reason}");
                PayMsg::Refused { reason }
            }
        };
        write_msg(&mut send, &reply).await?;
        finish(send).await
    }
}

async fn finish(mut send: SendStream) -> Result<(), String> {
    send.finish().map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
    Ok(())
}

impl ProtocolHandler for Gate {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        if let Err(e) = self.negotiate(&connection).await {
            tracing::debug!(peer = %connection.remote_id(), "payment negotiation: {e}");
        }
        Ok(())
    }
}

/// The buyer's settings.
#[derive(Debug, Clone)]
pub struct BuyerSettings {
    /// The wallet daemon's socket.
    pub wallet_socket: PathBuf,
    /// Most paid per MB, in sat.
    pub max_price_sat_per_mb: u64,
    /// Most paid in fees per payment, in sat.
    pub max_fee_sat: u64,
}

/// Buys an allotment of `id` from the peer on `conn` (a connection on
/// [`PAY_ALPN`]). `Ok(None)`: the peer serves it free; `Ok(Some(bought))`:
/// granted, what was spent and the token (to take back if the peer then
/// serves nothing); `Err`: no deal (nothing spent unless the record in the
/// error says so).
pub(crate) async fn buy(
    conn: &Connection,
    id: &ContentId,
    settings: &BuyerSettings,
) -> Result<Option<Bought>, (String, Option<PaymentRecord>)> {
    let no_spend = |e: String| -> (String, Option<PaymentRecord>) { (e, None) };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| no_spend(e.to_string()))?;
    write_msg(&mut send, &PayMsg::Want { id: *id })
        .await
        .map_err(no_spend)?;
    let offer = tokio::time::timeout(STEP_TIMEOUT, read_msg(&mut recv))
        .await
        .map_err(|_| no_spend("timed out".into()))?
        .map_err(no_spend)?;
    let (price_sat, bytes, accepted_mints) = match offer {
        PayMsg::Free => return Ok(None),
        PayMsg::Offer {
            price_sat,
            bytes,
            accepted_mints,
        } => (price_sat, bytes, accepted_mints),
        PayMsg::Refused { reason } => return Err(no_spend(format!("refused: {reason}"))),
        other => return Err(no_spend(format!("unexpected {other:?}"))),
    };
    // price per MB ≤ max, in integers.
    let affordable = u128::from(price_sat) * u128::from(MB)
        <= u128::from(settings.max_price_sat_per_mb) * u128::from(bytes);
    if !affordable || bytes == 0 {
        return Err(no_spend(format!(
            "price {price_sat} sat for {bytes} bytes is over {} sat/MB",
            settings.max_price_sat_per_mb
        )));
    }
    let wallet = LocalClient::new(&settings.wallet_socket);
    // A swap through slow mints can take a while; if this gives up, the
    // wallet still finishes and takes back the token nobody took.
    let paid: WalletPayment = tokio::time::timeout(
        WALLET_PAY_TIMEOUT,
        wallet.post(
            "/pay",
            &WalletPay {
                accepted_mints: &accepted_mints,
                amount_sat: price_sat,
                max_fee_sat: settings.max_fee_sat,
                purpose: format!("swarm {id} from {}", conn.remote_id()),
                reclaim_after_secs: RECLAIM_AFTER.as_secs(),
            },
        ),
    )
    .await
    .map_err(|_| no_spend("wallet timed out (it takes back the token it makes)".into()))?
    .map_err(|e| no_spend(format!("wallet: {e}")))?;
    // The token has left the wallet: from here on it is spent.
    let record = PaymentRecord {
        at: 0,
        direction: crate::store::Direction::Spending,
        peer: conn.remote_id().to_string(),
        id: *id,
        amount_sat: paid.amount_sat,
        fee_sat: paid.fee_sat,
        mint: paid.mint,
        bytes,
    };
    let token = paid.token;
    let error = match write_msg(
        &mut send,
        &PayMsg::Token {
            token: token.clone(),
        },
    )
    .await
    {
        Err(e) => e,
        Ok(()) => match tokio::time::timeout(STEP_TIMEOUT, read_msg(&mut recv)).await {
            Err(_) => "timed out".to_owned(),
            Ok(Err(e)) => e,
            Ok(Ok(PayMsg::Granted { .. })) => return Ok(Some(Bought { record, token })),
            Ok(Ok(PayMsg::Refused { reason })) => format!("token refused: {reason}"),
            Ok(Ok(other)) => format!("unexpected {other:?}"),
        },
    };
    // No allotment: take the token back unless the peer redeemed it (then
    // it is spent, the loss bounded by this one allotment).
    Err(match reclaim(&settings.wallet_socket, &token).await {
        Ok(()) => (format!("{error}; token taken back"), None),
        Err(e) => (format!("{error}; token not taken back: {e}"), Some(record)),
    })
}

/// An allotment bought: what it cost, and the token that paid for it.
#[derive(Debug, Clone)]
pub(crate) struct Bought {
    /// The spending.
    pub record: PaymentRecord,
    /// The token handed over.
    pub token: String,
}

/// Asks the wallet on `socket` to take back a token the peer did not take
/// (fails if the peer redeemed it).
pub(crate) async fn reclaim(socket: &std::path::Path, token: &str) -> Result<(), String> {
    let wallet = LocalClient::new(socket);
    #[derive(Serialize)]
    struct Reclaim<'a> {
        token: &'a str,
    }
    let _: serde_json::Value = tokio::time::timeout(
        WALLET_PAY_TIMEOUT,
        wallet.post("/reclaim", &Reclaim { token }),
    )
    .await
    .map_err(|_| "wallet timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allotments_are_whole_mb() {
        assert_eq!(allotment(0), MB);
        assert_eq!(allotment(1), MB);
        assert_eq!(allotment(MB), MB);
        assert_eq!(allotment(MB + 1), 2 * MB);
    }

    #[test]
    fn messages_are_tagged_json_and_tokens_stay_out_of_logs() {
        let m = PayMsg::Token {
            token: "cashuBsecret".into(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"type":"token","token":"cashuBsecret"}"#);
        assert_eq!(serde_json::from_str::<PayMsg>(&json).unwrap(), m);
        assert!(!format!("{m:?}").contains("secret"));
        let free: PayMsg = serde_json::from_str(r#"{"type":"free"}"#).unwrap();
        assert_eq!(free, PayMsg::Free);
    }
}
