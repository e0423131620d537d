//! Shared helpers: a relay on loopback for a group, tokens, low-level relay
//! clients and relay-only iroh endpoints. Nothing leaves 127.0.0.1.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use atoll_core::{admission, net::endpoint_builder};
use atoll_relay::{Relay, RelaydConfig};
use futures::{SinkExt, StreamExt};
use iroh::{Endpoint, RelayMap, RelayUrl, SecretKey, dns::DnsResolver};
use iroh_relay::{
    client::{Client, ClientBuilder, ConnectError},
    protos::{
        handshake,
        relay::{ClientToRelayMsg, RelayToClientMsg},
    },
    tls::{CaTlsConfig, default_provider},
};
use nostr::Keys;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(15);

/// A relay group: its owner, members and members file.
pub struct Group {
    pub owner: Keys,
    pub dir: tempfile::TempDir,
    pub members_file: PathBuf,
}

impl Group {
    /// A group whose members file lists `members`.
    pub fn new(members: &[&Keys]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let members_file = dir.path().join("members");
        let mut text = String::from("# test group\n");
        for m in members {
            text.push_str(&m.public_key().to_hex());
            text.push('\n');
        }
        std::fs::write(&members_file, text).unwrap();
        Self {
            owner: Keys::generate(),
            dir,
            members_file,
        }
    }

    /// A config for a plain-HTTP loopback relay of this group, and the
    /// listener it will serve on (its port is in `server.public_url`).
    pub fn config(&self) -> (RelaydConfig, std::net::TcpListener) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut c = RelaydConfig::default();
        c.server.public_url = Some(format!("http://127.0.0.1:{port}"));
        c.membership.owner = Some(self.owner.public_key().to_hex());
        c.membership.members_file = Some(self.members_file.clone());
        c.membership.reload_interval_ms = 200;
        c.admission.per_ip_burst = 10_000;
        c.admission.per_ip_per_second = 10_000;
        (c, listener)
    }

    /// Starts the relay with `tweak` applied to its config.
    pub async fn relay_with(&self, tweak: impl FnOnce(&mut RelaydConfig)) -> (Relay, RelayUrl) {
        let (mut c, listener) = self.config();
        tweak(&mut c);
        let relay = Relay::builder(c).listener(listener).spawn().await.unwrap();
        let url: RelayUrl = format!("http://{}", relay.local_addr()).parse().unwrap();
        (relay, url)
    }

    /// Starts the relay.
    pub async fn relay(&self) -> (Relay, RelayUrl) {
        self.relay_with(|_| {}).await
    }
}

/// A token for `secret`'s endpoint, signed by `keys`, for the relay at `url`.
pub fn token(keys: &Keys, url: &RelayUrl, secret: &SecretKey) -> String {
    admission::sign(keys, url.as_str(), &secret.public(), admission::DEFAULT_TTL).unwrap()
}

fn resolver() -> DnsResolver {
    DnsResolver::builder()
        .with_system_defaults()
        .disable_fallback()
        .build()
}

/// A low-level relay client for `secret`, presenting `token` (if any).
pub async fn connect(
    url: &RelayUrl,
    secret: &SecretKey,
    token: Option<&str>,
) -> Result<Client, ConnectError> {
    connect_with_roots(url, secret, token, CaTlsConfig::default()).await
}

/// Like [`connect`], trusting `roots` for HTTPS.
pub async fn connect_with_roots(
    url: &RelayUrl,
    secret: &SecretKey,
    token: Option<&str>,
    roots: CaTlsConfig,
) -> Result<Client, ConnectError> {
    let tls = roots.client_config(default_provider()).unwrap();
    let mut b = ClientBuilder::new(url.clone(), secret.clone(), resolver()).tls_client_config(tls);
    if let Some(t) = token {
        b = b.auth_token(t);
    }
    tokio::time::timeout(WAIT, b.connect())
        .await
        .expect("relay connect timed out")
}

/// The relay's reason for refusing, or a panic if it did not refuse.
pub fn denial(result: Result<Client, ConnectError>) -> String {
    match result {
        Err(ConnectError::Handshake {
            source: handshake::Error::ServerDeniedAuth { reason, .. },
            ..
        }) => reason,
        Err(e) => panic!("expected a denial, got another error: {e:#}"),
        Ok(_) => panic!("expected a denial, but the relay admitted the client"),
    }
}

/// A relay-level ping round trip.
pub async fn ping(client: &mut Client) -> anyhow::Result<()> {
    let data: [u8; 8] = rand::random();
    client.send(ClientToRelayMsg::Ping(data)).await?;
    tokio::time::timeout(WAIT, async {
        loop {
            match client.next().await {
                None => anyhow::bail!("relay closed the connection"),
                Some(Err(e)) => anyhow::bail!("relay connection error: {e}"),
                Some(Ok(RelayToClientMsg::Pong(echo))) if echo == data => return Ok(()),
                Some(Ok(RelayToClientMsg::Ping(p))) => {
                    client.send(ClientToRelayMsg::Pong(p)).await?
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await?
}

/// Waits until the relay closes `client`'s connection; returns how long it took.
pub async fn closed_within(client: &mut Client, limit: Duration) -> Duration {
    let start = std::time::Instant::now();
    tokio::time::timeout(limit, async {
        loop {
            match client.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(RelayToClientMsg::Ping(p))) => {
                    let _ = client.send(ClientToRelayMsg::Pong(p)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("connection still open after {limit:?}"));
    start.elapsed()
}

/// Polls `cond` until true, at most [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// An iroh endpoint that talks only through the relay at `url`, admitted
/// (or not) by a token signed by `nostr`.
pub async fn relay_only_endpoint(url: &RelayUrl, nostr: &Keys, alpns: Vec<Vec<u8>>) -> Endpoint {
    let secret = SecretKey::generate();
    let t = token(nostr, url, &secret);
    let map = RelayMap::from(iroh::RelayConfig::new(url.clone(), None).with_auth_token(t));
    endpoint_builder(secret, Some(map))
        .clear_ip_transports()
        .alpns(alpns)
        .bind()
        .await
        .unwrap()
}

/// Writes a self-signed certificate for 127.0.0.1 into `dir`; returns
/// (cert file, key file, certificate DER).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    (cert_file, key_file, cert.cert.der().to_vec())
}
