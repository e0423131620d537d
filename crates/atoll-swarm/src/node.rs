//! A running swarm node: one iroh endpoint (the node key is its identity),
//! a router serving the stock iroh-blobs protocol from the store, the
//! fetcher, the advert publisher and the local control API.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use atoll_core::{ContentId, KeyDir, NodeKeys, admission, local_api, net::endpoint_builder};
use iroh::{Endpoint, EndpointAddr, RelayMap, protocol::Router};
use iroh_blobs::BlobsProtocol;
use serde::Serialize;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    advert::Adverts,
    config::SwarmConfig,
    fetch::{FetchOutcome, FetchRequest, FetchSettings, Fetcher},
    store::{BlobInfo, Blobs},
};

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::InvalidConfig),
    /// Keys could not be loaded or created.
    #[error(transparent)]
    Keys(#[from] atoll_core::keys::KeyError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The endpoint could not bind.
    #[error("iroh endpoint: {0}")]
    Endpoint(String),
    /// Nostr relays could not be set up.
    #[error(transparent)]
    Nostr(#[from] crate::advert::NostrError),
    /// The local API socket could not be bound.
    #[error("local API socket {}: {source}", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// What the advert task is told.
#[derive(Debug)]
pub(crate) enum AdvertCmd {
    Publish(ContentId),
    Withdraw(ContentId),
}

/// Shared state of a node, used by the API handlers.
#[derive(Debug)]
pub struct NodeState {
    pub(crate) endpoint: Endpoint,
    pub(crate) blobs: Blobs,
    pub(crate) fetcher: Fetcher,
    pub(crate) keys: NodeKeys,
    pub(crate) config: SwarmConfig,
    pub(crate) adverts_on: bool,
    pub(crate) gate: Option<crate::pay::Gate>,
    pub(crate) import: crate::import::ImportPolicy,
    advert_tx: mpsc::UnboundedSender<AdvertCmd>,
    started: Instant,
}

/// The node's status.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Status {
    /// iroh endpoint id.
    pub node_id: String,
    /// Nostr public key.
    pub npub: String,
    /// How to reach this node.
    pub addr: EndpointAddr,
    /// Configured iroh relays.
    pub relays: Vec<String>,
    /// Configured Nostr relays.
    pub nostr_relays: Vec<String>,
    /// Number of held blobs.
    pub blobs: usize,
    /// Bytes held.
    pub used_bytes: u64,
    /// Quota in bytes (0: none).
    pub quota_bytes: u64,
    /// Fetches in progress.
    pub fetching: Vec<ContentId>,
    /// Peers avoided after failures.
    pub avoided_peers: Vec<String>,
    /// Seconds since start.
    pub uptime_secs: u64,
}

impl NodeState {
    /// The iroh endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The store.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// Which files `POST /blobs/import` may read.
    pub fn import_policy(&self) -> &crate::import::ImportPolicy {
        &self.import
    }

    /// The payment gate, when the node charges for paid blobs.
    pub fn payment_gate(&self) -> Option<&crate::pay::Gate> {
        self.gate.as_ref()
    }

    /// Current status.
    pub fn status(&self) -> Result<Status, crate::store::StoreError> {
        Ok(Status {
            node_id: self.endpoint.id().to_string(),
            npub: self.keys.nostr.npub(),
            addr: self.endpoint.addr(),
            relays: self
                .config
                .node
                .relays
                .iter()
                .map(ToString::to_string)
                .collect(),
            nostr_relays: self.config.nostr.relays.clone(),
            blobs: self.blobs.list()?.len(),
            used_bytes: self.blobs.used_bytes()?,
            quota_bytes: self.blobs.quota(),
            fetching: self.fetcher.in_flight(),
            avoided_peers: self
                .fetcher
                .avoided()
                .iter()
                .map(ToString::to_string)
                .collect(),
            uptime_secs: self.started.elapsed().as_secs(),
        })
    }

    /// Adds, then advertises and enforces the quota.
    pub(crate) async fn added(&self, info: BlobInfo) -> Result<BlobInfo, crate::store::StoreError> {
        if info.seeding {
            self.advert(AdvertCmd::Publish(info.id));
        }
        self.enforce_quota(&info.id).await?;
        Ok(info)
    }

    /// Fetches, then advertises and enforces the quota.
    pub async fn fetch(&self, req: FetchRequest) -> Result<FetchOutcome, crate::fetch::FetchError> {
        let out = self.fetcher.fetch(req).await?;
        if let Ok(Some(info)) = self.blobs.get(&out.id) {
            let _ = self.added(info).await;
        }
        Ok(out)
    }

    async fn enforce_quota(&self, just_added: &ContentId) -> Result<(), crate::store::StoreError> {
        let mut keep: HashSet<ContentId> = self.fetcher.in_flight().into_iter().collect();
        keep.insert(*just_added);
        for b in self.blobs.enforce_quota(&keep).await? {
            if b.seeding {
                self.advert(AdvertCmd::Withdraw(b.id));
            }
        }
        Ok(())
    }

    pub(crate) fn advert(&self, cmd: AdvertCmd) {
        if self.adverts_on {
            let _ = self.advert_tx.send(cmd);
        }
    }
}

/// Builds a [`Node`].
#[derive(Debug)]
pub struct NodeBuilder {
    config: SwarmConfig,
    state_dir: PathBuf,
    socket: Option<PathBuf>,
}

impl NodeBuilder {
    /// Where the local API listens (default: none unless set; the daemon
    /// sets it from config or the runtime dir).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// Starts the node.
    pub async fn spawn(self) -> Result<Node, StartError> {
        let config = self.config;
        config.validate()?;
        let state = self.state_dir;
        std::fs::create_dir_all(&state)
            .map_err(|e| StartError::Other(format!("{}: {e}", state.display())))?;
        let key_dir = match &config.node.key_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => state.join(d),
            None => state.join("keys"),
        };
        let keys = KeyDir::new(&key_dir).load_or_init()?;
        let import = crate::import::ImportPolicy::new(
            config.import.dirs.clone(),
            &state,
            &key_dir,
            config.import.max_bytes,
        );
        let blobs = Blobs::open(
            &state,
            config.storage.quota_bytes,
            Duration::from_secs(config.storage.gc_interval_secs),
        )
        .await?;

        // Every relay gets an admission token bound to this endpoint.
        let token_ttl = Duration::from_secs(config.node.relay_token_ttl_secs);
        let relay_map = if config.node.relays.is_empty() {
            None
        } else {
            let map = RelayMap::empty();
            for url in &config.node.relays {
                let token = admission::sign(
                    keys.nostr.keys(),
                    url.as_str(),
                    &keys.node.endpoint_id(),
                    token_ttl,
                )
                .map_err(|e| StartError::Other(format!("admission token for {url}: {e}")))?;
                map.insert(
                    url.clone(),
                    Arc::new(iroh::RelayConfig::new(url.clone(), None).with_auth_token(token)),
                );
            }
            Some(map)
        };
        let pay = &config.payment;
        let gate = if pay.enabled {
            Some(crate::pay::Gate::new(
                blobs.clone(),
                crate::pay::SellerSettings {
                    price_sat_per_mb: pay.price_sat_per_mb,
                    accepted_mints: pay.accepted_mints.clone(),
                    trusted_peers: pay.trusted()?,
                    wallet_socket: pay.wallet_socket.clone().unwrap_or_default(),
                },
            ))
        } else {
            None
        };
        let buyer = match &pay.wallet_socket {
            Some(socket) if pay.max_price_sat_per_mb > 0 => Some(crate::pay::BuyerSettings {
                wallet_socket: socket.clone(),
                max_price_sat_per_mb: pay.max_price_sat_per_mb,
                max_fee_sat: pay.max_fee_sat,
            }),
            _ => None,
        };
        let mut alpns = vec![iroh_blobs::ALPN.to_vec()];
        if gate.is_some() {
            alpns.push(crate::pay::PAY_ALPN.to_vec());
        }
        // Exactly the configured sockets: iroh's builder otherwise keeps
        // its default `[::]` (or `0.0.0.0`) socket for the other family.
        let mut builder = endpoint_builder(keys.node.to_iroh(), relay_map)
            .alpns(alpns)
            .clear_ip_transports();
        for addr in config.node.bind.addrs() {
            builder = builder
                .bind_addr(*addr)
                .map_err(|e| StartError::Endpoint(format!("node.bind {addr}: {e}")))?;
        }
        let endpoint = builder
            .bind()
            .await
            .map_err(|e| StartError::Endpoint(e.to_string()))?;
        // Charging: the blobs protocol reports requests and chunks to the
        // gate, which refuses and meters them.
        let router = match &gate {
            Some(gate) => Router::builder(endpoint.clone())
                .accept(
                    iroh_blobs::ALPN,
                    BlobsProtocol::new(blobs.store(), Some(gate.events())),
                )
                .accept(crate::pay::PAY_ALPN, gate.clone()),
            None => Router::builder(endpoint.clone())
                .accept(iroh_blobs::ALPN, BlobsProtocol::new(blobs.store(), None)),
        }
        .spawn();

        let adverts = if config.nostr.relays.is_empty() {
            None
        } else {
            Some(
                Adverts::connect(
                    keys.nostr.keys().clone(),
                    &config.nostr.relays,
                    config.advert_ttl(),
                    Duration::from_secs(config.nostr.lookup_timeout_secs),
                )
                .await?,
            )
        };
        let fetcher = Fetcher::new(
            endpoint.clone(),
            blobs.clone(),
            adverts.clone(),
            FetchSettings {
                relays: config.node.relays.clone(),
                origins: config.fetch.origins.clone(),
                peer_timeout: Duration::from_secs(config.fetch.peer_timeout_secs),
                origin_timeout: Duration::from_secs(config.fetch.origin_timeout_secs),
                max_origin_bytes: config.fetch.max_origin_bytes,
                tmp_dir: state.join("tmp"),
                buyer,
            },
        )
        .map_err(|e| StartError::Other(e.to_string()))?;
        // Leftovers of origin downloads interrupted by a crash.
        let _ = std::fs::remove_dir_all(state.join("tmp"));

        let (advert_tx, advert_rx) = mpsc::unbounded_channel();
        let node_state = Arc::new(NodeState {
            endpoint: endpoint.clone(),
            blobs: blobs.clone(),
            fetcher,
            keys,
            adverts_on: adverts.is_some(),
            gate,
            import,
            config,
            advert_tx,
            started: Instant::now(),
        });
        let mut tasks = Vec::new();
        if let Some(adverts) = adverts.clone() {
            tasks.push(tokio::spawn(advert_task(
                node_state.clone(),
                adverts,
                advert_rx,
            )));
        }
        let socket = self.socket;
        let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(path) = &socket {
            let listener = local_api::bind(path)
                .await
                .map_err(|source| StartError::Socket {
                    path: path.clone(),
                    source,
                })?;
            let app = crate::api::router(node_state.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = local_api::serve(listener, app, async {
                    let _ = api_stopped.await;
                })
                .await
                {
                    tracing::error!("local API: {e}");
                }
            }));
        }
        Ok(Node {
            state: node_state,
            router,
            adverts,
            tasks,
            api_stop: Some(api_stop),
            socket,
        })
    }
}

/// Publishes adverts for seeded blobs, renews them at half their
/// lifetime, and withdraws them on request. A publish or withdrawal that
/// fails (relay down, not yet connected) is retried every few seconds
/// until it succeeds or is superseded.
async fn advert_task(
    node: Arc<NodeState>,
    adverts: Adverts,
    mut rx: mpsc::UnboundedReceiver<AdvertCmd>,
) {
    const RETRY: Duration = Duration::from_secs(3);
    let mut renew = tokio::time::interval(adverts.ttl() / 2);
    let mut retry = tokio::time::interval(RETRY);
    // Latest wish per blob: true = advertise, false = withdraw.
    let mut pending: std::collections::BTreeMap<ContentId, bool> = Default::default();
    // Adverts go out at once with the addresses known now; when the
    // endpoint picks its home relay a moment later, the address-change
    // check below republishes them. (Fetchers also try their own relays
    // for a seeder whose advert names none.)
    let mut advertised_addr = node.endpoint.addr();
    loop {
        tokio::select! {
            _ = renew.tick() => {
                if let Ok(list) = node.blobs.list() {
                    for b in list.into_iter().filter(|b| b.seeding) {
                        pending.insert(b.id, true);
                    }
                }
            }
            _ = retry.tick() => {
                // Our address changed (new home relay, new interface):
                // every advert must say so.
                let addr = node.endpoint.addr();
                if addr != advertised_addr {
                    advertised_addr = addr;
                    if let Ok(list) = node.blobs.list() {
                        for b in list.into_iter().filter(|b| b.seeding) {
                            pending.entry(b.id).or_insert(true);
                        }
                    }
                }
            }
            cmd = rx.recv() => match cmd {
                Some(AdvertCmd::Publish(id)) => { pending.insert(id, true); }
                Some(AdvertCmd::Withdraw(id)) => { pending.insert(id, false); }
                None => break,
            },
        }
        let addr = node.endpoint.addr();
        let work: Vec<(ContentId, bool)> = pending.iter().map(|(k, v)| (*k, *v)).collect();
        for (id, publish) in work {
            let result = if publish {
                match node.blobs.get(&id) {
                    Ok(Some(b)) if b.seeding => adverts.publish(&id, b.size, &addr).await,
                    _ => Ok(()),
                }
            } else {
                adverts.withdraw(&id).await
            };
            match result {
                Ok(()) => {
                    tracing::info!(%id, "{}", if publish { "advertised" } else { "advert withdrawn" });
                    // Unless a newer wish arrived meanwhile.
                    if pending.get(&id) == Some(&publish) {
                        pending.remove(&id);
                    }
                }
                Err(e) => tracing::warn!(%id, "advert (will retry): {e}"),
            }
        }
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    state: Arc<NodeState>,
    router: Router,
    adverts: Option<Adverts>,
    tasks: Vec<JoinHandle<()>>,
    api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    socket: Option<PathBuf>,
}

impl Node {
    /// A builder for a node keeping its state in `state_dir`.
    pub fn builder(config: SwarmConfig, state_dir: impl Into<PathBuf>) -> NodeBuilder {
        NodeBuilder {
            config,
            state_dir: state_dir.into(),
            socket: None,
        }
    }

    /// The shared state (for in-process callers and tests).
    pub fn state(&self) -> &Arc<NodeState> {
        &self.state
    }

    /// The local API socket, if one was bound.
    pub fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// When the relay admission tokens should be renewed (80% of their
    /// lifetime after start), if the node uses relays. Renewal needs a new
    /// endpoint: the daemon restarts.
    pub fn token_renewal_due(&self) -> Option<Duration> {
        (!self.state.config.node.relays.is_empty())
            .then(|| Duration::from_secs(self.state.config.node.relay_token_ttl_secs) * 4 / 5)
    }

    /// Stops everything: API, adverts, router (and with it the store).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
        if let Some(a) = &self.adverts {
            a.shutdown().await;
        }
        if let Err(e) = self.router.shutdown().await {
            tracing::warn!("router shutdown: {e}");
        }
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}
