//! A fake Lightning network that really links the test mints of one process.
//!
//! [`LightningNetwork`] is a shared ledger of BOLT11 invoices keyed by payment
//! hash; every mint joins it as a node through its own [`LinkedLightning`]
//! backend (an [`MintPayment`]). The rules are those of a real network, minus
//! routing:
//!
//! - an invoice is created by the payee node and is paid at most once, either
//!   by another node's [`MintPayment::make_payment`] (a melt) or by
//!   [`LightningNetwork::pay_external`] (a wallet outside the test network);
//! - paying a hash the network does not know, an invoice signed by another
//!   node than the one that issued the hash, a wrong amount, an expired or an
//!   already paid invoice fails, and the payer's ledger records the failure;
//! - the payee node learns of a payment through its
//!   [`MintPayment::wait_payment_event`] stream, and both status checks answer
//!   from the ledger.
//!
//! Unlike `cdk-fake-wallet`, nothing is paid automatically: an unpaid invoice
//! never mints.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use cdk_common::Amount;
use cdk_common::nuts::{CurrencyUnit, MeltOptions, MeltQuoteState};
use cdk_common::payment::{
    self, Bolt11OutgoingPaymentOptions, Bolt11Settings, CreateIncomingPaymentResponse, Event,
    IncomingPaymentOptions, MakePaymentResponse, MintPayment, OutgoingPaymentOptions,
    PaymentIdentifier, PaymentQuoteResponse, SettingsResponse, WaitPaymentResponse,
};
use futures::Stream;
use futures::channel::mpsc;
use lightning_invoice::{Bolt11Invoice, Currency, InvoiceBuilder, PaymentSecret};

/// Millisatoshis in one satoshi.
const MSAT_PER_SAT: u64 = 1_000;

/// Expiry of an invoice whose mint quote asked for none (the BOLT11 default).
const DEFAULT_INVOICE_EXPIRY: Duration = Duration::from_secs(3_600);

/// Identity of one node (one mint backend) on a [`LightningNetwork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// Who paid an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payer {
    /// A node of the network, by melting at its mint.
    Node(NodeId),
    /// Someone outside the network, see [`LightningNetwork::pay_external`].
    External,
}

/// State of an invoice on the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    /// Issued by its payee node and not paid yet.
    Unpaid,
    /// Paid once; it can never be paid again.
    Paid {
        /// Who paid it.
        payer: Payer,
    },
}

/// Why a payment on the network failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// The payment request is not a valid BOLT11 invoice.
    #[error("not a valid bolt11 invoice")]
    InvalidInvoice {
        /// The parser's complaint.
        #[source]
        source: lightning_invoice::ParseOrSemanticError,
    },
    /// The invoice has no amount; the network only pays invoices with one.
    #[error("invoice {payment_hash} has no amount")]
    NoAmount {
        /// Hex payment hash.
        payment_hash: String,
    },
    /// No node of the network issued an invoice with this payment hash.
    #[error("no node knows payment hash {payment_hash}")]
    UnknownPaymentHash {
        /// Hex payment hash.
        payment_hash: String,
    },
    /// The invoice is signed by another node than the one that issued the hash.
    #[error("invoice {payment_hash} does not lead to the node that issued it")]
    WrongDestination {
        /// Hex payment hash.
        payment_hash: String,
    },
    /// The invoice asks for another amount than the issued one.
    #[error(
        "invoice {payment_hash} asks {asked_msat} msat, the payee expects {expected_msat} msat"
    )]
    AmountMismatch {
        /// Hex payment hash.
        payment_hash: String,
        /// Amount written in the invoice that was paid.
        asked_msat: u64,
        /// Amount of the invoice the payee issued.
        expected_msat: u64,
    },
    /// The invoice has expired.
    #[error("invoice {payment_hash} has expired")]
    Expired {
        /// Hex payment hash.
        payment_hash: String,
    },
    /// The invoice was paid before; nothing is paid twice.
    #[error("invoice {payment_hash} is already paid")]
    AlreadyPaid {
        /// Hex payment hash.
        payment_hash: String,
    },
    /// The routing fee is above what the melt quote allows.
    #[error("routing fee {fee_sat} sat is above the allowed {max_fee_sat} sat")]
    FeeAboveLimit {
        /// Fee this node charges.
        fee_sat: u64,
        /// Fee the mint allowed for this payment.
        max_fee_sat: u64,
    },
}

impl From<PayError> for payment::Error {
    fn from(err: PayError) -> Self {
        match err {
            PayError::AlreadyPaid { .. } => payment::Error::InvoiceAlreadyPaid,
            other => payment::Error::Backend(Box::new(other)),
        }
    }
}

/// One invoice issued by a node.
#[derive(Debug)]
struct InvoiceEntry {
    payee: NodeId,
    payee_key: PublicKey,
    amount_msat: u64,
    /// Amount in the unit the payee's mint asked for, reported back to it.
    amount: Amount<CurrencyUnit>,
    expires_at: SystemTime,
    preimage: [u8; 32],
    paid_by: Option<Payer>,
}

/// What a node knows about a payment it attempted.
#[derive(Debug, Clone)]
enum Outgoing {
    Paid {
        total_spent_sat: u64,
        preimage: [u8; 32],
    },
    Failed,
}

/// Per-node delivery of incoming payment events.
#[derive(Debug, Default)]
struct NodeInbox {
    /// The current `wait_payment_event` stream, if one is open.
    subscriber: Option<mpsc::UnboundedSender<Event>>,
    /// Events that arrived while no stream was open, delivered on the next one.
    undelivered: Vec<Event>,
}

impl NodeInbox {
    fn deliver(&mut self, event: Event) {
        let event = match self.subscriber.as_ref() {
            Some(tx) => match tx.unbounded_send(event) {
                Ok(()) => return,
                Err(err) => err.into_inner(),
            },
            None => event,
        };
        self.subscriber = None;
        self.undelivered.push(event);
    }
}

#[derive(Debug, Default)]
struct Ledger {
    next_node: u64,
    invoices: HashMap<[u8; 32], InvoiceEntry>,
    outgoing: HashMap<(NodeId, [u8; 32]), Outgoing>,
    inboxes: HashMap<NodeId, NodeInbox>,
}

impl Ledger {
    /// Checks that `invoice` can be paid now and marks it paid by `payer`,
    /// telling the payee node. Returns the invoice's amount in msat and the
    /// preimage.
    fn settle(
        &mut self,
        invoice: &Bolt11Invoice,
        payer: Payer,
    ) -> Result<(u64, [u8; 32]), PayError> {
        let hash = payment_hash(invoice);
        let payment_hash = hex::encode(hash);
        let asked_msat = invoice
            .amount_milli_satoshis()
            .ok_or_else(|| PayError::NoAmount {
                payment_hash: payment_hash.clone(),
            })?;
        let entry = self
            .invoices
            .get_mut(&hash)
            .ok_or_else(|| PayError::UnknownPaymentHash {
                payment_hash: payment_hash.clone(),
            })?;
        if entry.paid_by.is_some() {
            return Err(PayError::AlreadyPaid { payment_hash });
        }
        if invoice.get_payee_pub_key() != entry.payee_key {
            return Err(PayError::WrongDestination { payment_hash });
        }
        if asked_msat != entry.amount_msat {
            return Err(PayError::AmountMismatch {
                payment_hash,
                asked_msat,
                expected_msat: entry.amount_msat,
            });
        }
        if SystemTime::now() >= entry.expires_at {
            return Err(PayError::Expired { payment_hash });
        }

        entry.paid_by = Some(payer);
        let event = Event::PaymentReceived(WaitPaymentResponse {
            payment_identifier: PaymentIdentifier::PaymentHash(hash),
            payment_amount: entry.amount.clone(),
            payment_id: payment_hash,
        });
        let (payee, amount_msat, preimage) = (entry.payee, entry.amount_msat, entry.preimage);
        self.inboxes.entry(payee).or_default().deliver(event);
        Ok((amount_msat, preimage))
    }
}

/// The shared ledger of a fake Lightning network; cheap to clone, all clones
/// are the same network.
///
/// Give each mint its own node with [`LightningNetwork::node`].
#[derive(Debug, Clone, Default)]
pub struct LightningNetwork {
    ledger: Arc<Mutex<Ledger>>,
}

impl LightningNetwork {
    /// An empty network with no nodes and no invoices.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins a new node with a fresh node key and no routing fee.
    pub fn node(&self) -> LinkedLightning {
        let node = {
            let mut ledger = self.lock();
            let node = NodeId(ledger.next_node);
            ledger.next_node += 1;
            ledger.inboxes.insert(node, NodeInbox::default());
            node
        };
        let secp = Secp256k1::new();
        let node_key = random_secret_key();
        LinkedLightning {
            network: self.clone(),
            node,
            node_pubkey: node_key.public_key(&secp),
            node_key,
            secp,
            melt_fee_sat: 0,
        }
    }

    /// Someone outside the test network (a user's own Lightning wallet) pays
    /// `bolt11`, an invoice one of the nodes issued.
    ///
    /// This is the honest way to fund a wallet at a test mint: pay the mint
    /// quote's invoice with this, then mint. The same rules as for a melt
    /// apply: unknown, foreign, expired or already paid invoices fail.
    pub fn pay_external(&self, bolt11: &str) -> Result<(), PayError> {
        let invoice = parse_invoice(bolt11)?;
        self.lock().settle(&invoice, Payer::External)?;
        Ok(())
    }

    /// The ledger's state of `bolt11`, or `None` when no node issued its
    /// payment hash.
    pub fn invoice_status(&self, bolt11: &str) -> Result<Option<InvoiceStatus>, PayError> {
        let invoice = parse_invoice(bolt11)?;
        let ledger = self.lock();
        Ok(ledger
            .invoices
            .get(&payment_hash(&invoice))
            .map(|entry| match entry.paid_by {
                None => InvoiceStatus::Unpaid,
                Some(payer) => InvoiceStatus::Paid { payer },
            }))
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // The ledger holds no invariant a panicking holder could have broken
        // half-way (every update is a single insert or field write).
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A mint's Lightning backend: one node of a [`LightningNetwork`].
///
/// Supports BOLT11 in `sat` only; no amountless invoices, no MPP.
#[derive(Clone)]
pub struct LinkedLightning {
    network: LightningNetwork,
    node: NodeId,
    node_key: SecretKey,
    node_pubkey: PublicKey,
    secp: Secp256k1<All>,
    melt_fee_sat: u64,
}

impl fmt::Debug for LinkedLightning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedLightning")
            .field("node", &self.node)
            .field("node_pubkey", &self.node_pubkey)
            .field("melt_fee_sat", &self.melt_fee_sat)
            .finish_non_exhaustive()
    }
}

impl LinkedLightning {
    /// Charges a fixed routing fee of `fee_sat` for every payment this node
    /// makes; it is quoted as the melt quote's fee reserve and spent in full.
    /// Default 0.
    pub fn with_melt_fee_sat(mut self, fee_sat: u64) -> Self {
        self.melt_fee_sat = fee_sat;
        self
    }

    /// This node's identity on the network.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The key this node signs its invoices with.
    pub fn node_pubkey(&self) -> PublicKey {
        self.node_pubkey
    }

    /// The fixed routing fee this node pays per payment, in sat.
    pub fn melt_fee_sat(&self) -> u64 {
        self.melt_fee_sat
    }

    fn create_invoice(
        &self,
        amount_msat: u64,
        description: String,
        expiry: Duration,
    ) -> Result<(Bolt11Invoice, [u8; 32]), payment::Error> {
        let preimage: [u8; 32] = rand::random();
        let hash = sha256::Hash::hash(&preimage);
        let invoice = InvoiceBuilder::new(Currency::Regtest)
            .description(description)
            .payment_hash(hash)
            .payment_secret(PaymentSecret(rand::random()))
            .amount_milli_satoshis(amount_msat)
            .current_timestamp()
            .expiry_time(expiry)
            .min_final_cltv_expiry_delta(144)
            .build_signed(|msg| self.secp.sign_ecdsa_recoverable(msg, &self.node_key))
            .map_err(|err| payment::Error::Custom(format!("could not build invoice: {err}")))?;
        Ok((invoice, preimage))
    }

    /// Pays `options.bolt11` on the ledger and records the outcome for this
    /// node, so `check_outgoing_payment` tells the truth afterwards.
    fn pay(&self, options: &Bolt11OutgoingPaymentOptions) -> Result<(u64, [u8; 32]), PayError> {
        let hash = payment_hash(&options.bolt11);
        let mut ledger = self.network.lock();
        let result = match max_fee_sat(options) {
            Some(max_fee_sat) if self.melt_fee_sat > max_fee_sat => Err(PayError::FeeAboveLimit {
                fee_sat: self.melt_fee_sat,
                max_fee_sat,
            }),
            _ => ledger.settle(&options.bolt11, Payer::Node(self.node)),
        };
        match &result {
            Ok((amount_msat, preimage)) => {
                let total_spent_sat = msat_to_sat_ceil(*amount_msat) + self.melt_fee_sat;
                ledger.outgoing.insert(
                    (self.node, hash),
                    Outgoing::Paid {
                        total_spent_sat,
                        preimage: *preimage,
                    },
                );
            }
            // A failed retry must not hide an earlier success of this node.
            Err(_) => {
                ledger
                    .outgoing
                    .entry((self.node, hash))
                    .or_insert(Outgoing::Failed);
            }
        }
        result
    }
}

#[async_trait]
impl MintPayment for LinkedLightning {
    type Err = payment::Error;

    async fn get_settings(&self) -> Result<SettingsResponse, Self::Err> {
        Ok(SettingsResponse {
            unit: CurrencyUnit::Sat.to_string(),
            bolt11: Some(Bolt11Settings {
                mpp: false,
                amountless: false,
                invoice_description: true,
            }),
            bolt12: None,
            onchain: None,
            custom: HashMap::new(),
        })
    }

    async fn create_incoming_payment_request(
        &self,
        options: IncomingPaymentOptions,
    ) -> Result<CreateIncomingPaymentResponse, Self::Err> {
        let IncomingPaymentOptions::Bolt11(options) = options else {
            return Err(payment::Error::UnsupportedPaymentOption);
        };
        let amount_msat = options.amount.to_msat()?;
        let expiry = match options.unix_expiry {
            Some(unix_expiry) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|err| payment::Error::Custom(err.to_string()))?;
                Duration::from_secs(unix_expiry.saturating_sub(now.as_secs()).max(1))
            }
            None => DEFAULT_INVOICE_EXPIRY,
        };
        let (invoice, preimage) =
            self.create_invoice(amount_msat, options.description.unwrap_or_default(), expiry)?;
        let hash = payment_hash(&invoice);
        let expires_at = invoice
            .expires_at()
            .map(|since_epoch| UNIX_EPOCH + since_epoch)
            .unwrap_or_else(|| SystemTime::now() + expiry);

        let mut ledger = self.network.lock();
        ledger.invoices.insert(
            hash,
            InvoiceEntry {
                payee: self.node,
                payee_key: self.node_pubkey,
                amount_msat,
                amount: options.amount,
                expires_at,
                preimage,
                paid_by: None,
            },
        );

        Ok(CreateIncomingPaymentResponse {
            request_lookup_id: PaymentIdentifier::PaymentHash(hash),
            request: invoice.to_string(),
            expiry: options.unix_expiry,
            extra_json: None,
        })
    }

    /// Quotes any amount-carrying BOLT11 invoice, like a node estimating a
    /// route: whether the invoice can be paid is decided in `make_payment`.
    async fn get_payment_quote(
        &self,
        unit: &CurrencyUnit,
        options: OutgoingPaymentOptions,
    ) -> Result<PaymentQuoteResponse, Self::Err> {
        let options = bolt11_options(unit, options)?;
        let amount_msat = requested_msat(&options)?;
        Ok(PaymentQuoteResponse {
            request_lookup_id: Some(PaymentIdentifier::PaymentHash(payment_hash(
                &options.bolt11,
            ))),
            amount: Amount::new(msat_to_sat_ceil(amount_msat), CurrencyUnit::Sat),
            fee: Amount::new(self.melt_fee_sat, CurrencyUnit::Sat),
            state: MeltQuoteState::Unpaid,
            extra_json: None,
            estimated_blocks: None,
            fee_options: None,
        })
    }

    async fn make_payment(
        &self,
        unit: &CurrencyUnit,
        options: OutgoingPaymentOptions,
    ) -> Result<MakePaymentResponse, Self::Err> {
        let options = bolt11_options(unit, options)?;
        requested_msat(&options)?;
        let (_, preimage) = self.pay(&options)?;
        let hash = payment_hash(&options.bolt11);
        self.check_outgoing_payment(&PaymentIdentifier::PaymentHash(hash))
            .await
            .map(|response| MakePaymentResponse {
                payment_proof: Some(hex::encode(preimage)),
                ..response
            })
    }

    async fn wait_payment_event(
        &self,
    ) -> Result<Pin<Box<dyn Stream<Item = Event> + Send>>, Self::Err> {
        let (tx, rx) = mpsc::unbounded();
        let mut ledger = self.network.lock();
        let inbox = ledger.inboxes.entry(self.node).or_default();
        for event in inbox.undelivered.drain(..) {
            // `rx` is alive right here, so the channel cannot be closed.
            let _ = tx.unbounded_send(event);
        }
        inbox.subscriber = Some(tx);
        Ok(Box::pin(rx))
    }

    fn is_payment_event_stream_active(&self) -> bool {
        self.network
            .lock()
            .inboxes
            .get(&self.node)
            .and_then(|inbox| inbox.subscriber.as_ref())
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Ends the open event stream (after it yields what it already holds);
    /// later events wait for the next `wait_payment_event`.
    fn cancel_payment_event_stream(&self) {
        if let Some(inbox) = self.network.lock().inboxes.get_mut(&self.node) {
            inbox.subscriber = None;
        }
    }

    async fn check_incoming_payment_status(
        &self,
        payment_identifier: &PaymentIdentifier,
    ) -> Result<Vec<WaitPaymentResponse>, Self::Err> {
        let PaymentIdentifier::PaymentHash(hash) = payment_identifier else {
            return Err(payment::Error::UnsupportedPaymentOption);
        };
        let ledger = self.network.lock();
        Ok(ledger
            .invoices
            .get(hash)
            .filter(|entry| entry.payee == self.node && entry.paid_by.is_some())
            .map(|entry| WaitPaymentResponse {
                payment_identifier: payment_identifier.clone(),
                payment_amount: entry.amount.clone(),
                payment_id: hex::encode(hash),
            })
            .into_iter()
            .collect())
    }

    /// `Unpaid` when this node never attempted the payment: payments settle
    /// synchronously, so nothing can be in flight.
    async fn check_outgoing_payment(
        &self,
        payment_identifier: &PaymentIdentifier,
    ) -> Result<MakePaymentResponse, Self::Err> {
        let PaymentIdentifier::PaymentHash(hash) = payment_identifier else {
            return Err(payment::Error::UnsupportedPaymentOption);
        };
        let outgoing = self
            .network
            .lock()
            .outgoing
            .get(&(self.node, *hash))
            .cloned();
        let (status, total_spent_sat, payment_proof) = match outgoing {
            Some(Outgoing::Paid {
                total_spent_sat,
                preimage,
            }) => (
                MeltQuoteState::Paid,
                total_spent_sat,
                Some(hex::encode(preimage)),
            ),
            Some(Outgoing::Failed) => (MeltQuoteState::Failed, 0, None),
            None => (MeltQuoteState::Unpaid, 0, None),
        };
        Ok(MakePaymentResponse {
            payment_lookup_id: payment_identifier.clone(),
            payment_proof,
            status,
            total_spent: Amount::new(total_spent_sat, CurrencyUnit::Sat),
        })
    }
}

fn parse_invoice(bolt11: &str) -> Result<Bolt11Invoice, PayError> {
    Bolt11Invoice::from_str(bolt11).map_err(|source| PayError::InvalidInvoice { source })
}

fn payment_hash(invoice: &Bolt11Invoice) -> [u8; 32] {
    invoice.payment_hash().to_byte_array()
}

fn msat_to_sat_ceil(msat: u64) -> u64 {
    msat.div_ceil(MSAT_PER_SAT)
}

fn random_secret_key() -> SecretKey {
    loop {
        // Fails only for zero or a value above the curve order (p < 2^-127).
        if let Ok(key) = SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            return key;
        }
    }
}

/// The BOLT11 options of a `sat` payment; anything else is unsupported.
fn bolt11_options(
    unit: &CurrencyUnit,
    options: OutgoingPaymentOptions,
) -> Result<Box<Bolt11OutgoingPaymentOptions>, payment::Error> {
    if *unit != CurrencyUnit::Sat {
        return Err(payment::Error::UnsupportedUnit);
    }
    match options {
        OutgoingPaymentOptions::Bolt11(options) => Ok(options),
        _ => Err(payment::Error::UnsupportedPaymentOption),
    }
}

/// The amount to pay: the invoice's own; an amountless melt option must agree
/// with it and MPP is not supported.
fn requested_msat(options: &Bolt11OutgoingPaymentOptions) -> Result<u64, payment::Error> {
    let invoice_msat =
        options
            .bolt11
            .amount_milli_satoshis()
            .ok_or_else(|| PayError::NoAmount {
                payment_hash: hex::encode(payment_hash(&options.bolt11)),
            })?;
    match options.melt_options {
        None => Ok(invoice_msat),
        Some(MeltOptions::Amountless { amountless })
            if u64::from(amountless.amount_msat) == invoice_msat =>
        {
            Ok(invoice_msat)
        }
        Some(MeltOptions::Amountless { .. }) => Err(payment::Error::AmountMismatch),
        Some(MeltOptions::Mpp { .. }) => Err(payment::Error::UnsupportedPaymentOption),
    }
}

/// The fee limit the mint set for this payment, in sat.
fn max_fee_sat(options: &Bolt11OutgoingPaymentOptions) -> Option<u64> {
    options
        .max_fee_amount
        .as_ref()
        .and_then(|max| max.to_sat().ok())
}

#[cfg(test)]
mod tests {
    use cdk_common::QuoteId;
    use cdk_common::payment::Bolt11IncomingPaymentOptions;
    use futures::StreamExt;

    use super::*;

    async fn invoice(node: &LinkedLightning, sat: u64) -> String {
        node.create_incoming_payment_request(IncomingPaymentOptions::Bolt11(
            Bolt11IncomingPaymentOptions {
                description: Some("test".to_owned()),
                amount: Amount::new(sat, CurrencyUnit::Sat),
                unix_expiry: None,
            },
        ))
        .await
        .unwrap()
        .request
    }

    fn outgoing(bolt11: &str, max_fee_sat: Option<u64>) -> OutgoingPaymentOptions {
        OutgoingPaymentOptions::Bolt11(Box::new(Bolt11OutgoingPaymentOptions {
            bolt11: bolt11.parse().unwrap(),
            max_fee_amount: max_fee_sat.map(|fee| Amount::new(fee, CurrencyUnit::Sat)),
            timeout_secs: None,
            melt_options: None,
            quote_id: QuoteId::new(),
        }))
    }

    fn hash_id(bolt11: &str) -> PaymentIdentifier {
        PaymentIdentifier::PaymentHash(payment_hash(&parse_invoice(bolt11).unwrap()))
    }

    #[tokio::test]
    async fn a_melt_pays_the_payee_once_and_tells_it() {
        let network = LightningNetwork::new();
        let payer = network.node().with_melt_fee_sat(3);
        let payee = network.node();
        let other = network.node();
        let mut events = payee.wait_payment_event().await.unwrap();
        assert!(payee.is_payment_event_stream_active());
        let bolt11 = invoice(&payee, 50).await;
        let id = hash_id(&bolt11);

        assert!(
            payee
                .check_incoming_payment_status(&id)
                .await
                .unwrap()
                .is_empty()
        );
        let quote = payer
            .get_payment_quote(&CurrencyUnit::Sat, outgoing(&bolt11, None))
            .await
            .unwrap();
        assert_eq!(quote.amount, Amount::new(50, CurrencyUnit::Sat));
        assert_eq!(quote.fee, Amount::new(3, CurrencyUnit::Sat));

        let paid = payer
            .make_payment(&CurrencyUnit::Sat, outgoing(&bolt11, Some(3)))
            .await
            .unwrap();
        assert_eq!(paid.status, MeltQuoteState::Paid);
        assert_eq!(paid.total_spent, Amount::new(53, CurrencyUnit::Sat));

        let Some(Event::PaymentReceived(received)) = events.next().await else {
            panic!("payee was not told");
        };
        assert_eq!(received.payment_identifier, id);
        assert_eq!(received.payment_amount, Amount::new(50, CurrencyUnit::Sat));
        assert_eq!(
            payee
                .check_incoming_payment_status(&id)
                .await
                .unwrap()
                .len(),
            1
        );
        // Only the payee sees the incoming payment.
        assert!(
            other
                .check_incoming_payment_status(&id)
                .await
                .unwrap()
                .is_empty()
        );

        let checked = payer.check_outgoing_payment(&id).await.unwrap();
        assert_eq!(checked.status, MeltQuoteState::Paid);
        assert_eq!(checked.total_spent, Amount::new(53, CurrencyUnit::Sat));
        // A node that never paid reports so, not the invoice's state.
        let never = other.check_outgoing_payment(&id).await.unwrap();
        assert_eq!(never.status, MeltQuoteState::Unpaid);

        let twice = other
            .make_payment(&CurrencyUnit::Sat, outgoing(&bolt11, None))
            .await;
        assert!(matches!(twice, Err(payment::Error::InvoiceAlreadyPaid)));
        let failed = other.check_outgoing_payment(&id).await.unwrap();
        assert_eq!(failed.status, MeltQuoteState::Failed);
        assert!(matches!(
            network.pay_external(&bolt11),
            Err(PayError::AlreadyPaid { .. })
        ));
        assert_eq!(
            network.invoice_status(&bolt11).unwrap(),
            Some(InvoiceStatus::Paid {
                payer: Payer::Node(payer.node_id())
            })
        );
    }

    #[tokio::test]
    async fn events_wait_for_the_next_stream() {
        let network = LightningNetwork::new();
        let payee = network.node();
        let bolt11 = invoice(&payee, 7).await;
        assert!(!payee.is_payment_event_stream_active());
        network.pay_external(&bolt11).unwrap();

        let mut events = payee.wait_payment_event().await.unwrap();
        assert!(matches!(
            events.next().await,
            Some(Event::PaymentReceived(_))
        ));
        payee.cancel_payment_event_stream();
        assert!(events.next().await.is_none());
        assert!(!payee.is_payment_event_stream_active());
    }

    #[tokio::test]
    async fn unknown_forged_and_overpriced_payments_fail() {
        let network = LightningNetwork::new();
        let payer = network.node().with_melt_fee_sat(5);
        let payee = network.node();

        let stranger = LightningNetwork::new().node();
        let unknown = invoice(&stranger, 10).await;
        let result = payer.pay(&bolt11_of(&unknown, None));
        assert!(matches!(result, Err(PayError::UnknownPaymentHash { .. })));

        // Same payment hash as a real invoice, signed by another node.
        let real = invoice(&payee, 10).await;
        let real_invoice = parse_invoice(&real).unwrap();
        let forged = InvoiceBuilder::new(Currency::Regtest)
            .description(String::new())
            .payment_hash(*real_invoice.payment_hash())
            .payment_secret(PaymentSecret([7; 32]))
            .amount_milli_satoshis(10_000)
            .current_timestamp()
            .min_final_cltv_expiry_delta(144)
            .build_signed(|msg| {
                stranger
                    .secp
                    .sign_ecdsa_recoverable(msg, &stranger.node_key)
            })
            .unwrap()
            .to_string();
        let result = payer.pay(&bolt11_of(&forged, None));
        assert!(matches!(result, Err(PayError::WrongDestination { .. })));

        let result = payer.pay(&bolt11_of(&real, Some(4)));
        assert!(matches!(result, Err(PayError::FeeAboveLimit { .. })));
        assert_eq!(
            network.invoice_status(&real).unwrap(),
            Some(InvoiceStatus::Unpaid)
        );
        assert_eq!(
            payer
                .check_outgoing_payment(&hash_id(&real))
                .await
                .unwrap()
                .status,
            MeltQuoteState::Failed
        );
    }

    fn bolt11_of(bolt11: &str, max_fee_sat: Option<u64>) -> Bolt11OutgoingPaymentOptions {
        match outgoing(bolt11, max_fee_sat) {
            OutgoingPaymentOptions::Bolt11(options) => *options,
            _ => unreachable!(),
        }
    }
}
