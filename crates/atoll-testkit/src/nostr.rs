//! A local Nostr relay (NIP-01 over websocket) from `nostr-relay-builder`,
//! in process, on loopback.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Result;
use nostr_relay_builder::{LocalRelay, RelayBuilder};

/// A running in-memory Nostr relay.
#[derive(Debug)]
pub struct TestNostrRelay {
    relay: LocalRelay,
    url: String,
}

impl TestNostrRelay {
    /// Starts a relay on 127.0.0.1 with an ephemeral port.
    pub async fn spawn() -> Result<Self> {
        Self::spawn_with(RelayBuilder::default()).await
    }

    /// Starts a relay from a builder (policies, limits); the address is
    /// set to 127.0.0.1.
    pub async fn spawn_with(builder: RelayBuilder) -> Result<Self> {
        Self::spawn_from(builder.addr(IpAddr::V4(Ipv4Addr::LOCALHOST))).await
    }

    /// Starts a relay on `addr` (port 0 picks one).
    pub async fn spawn_on(addr: std::net::SocketAddr) -> Result<Self> {
        let mut builder = RelayBuilder::default().addr(addr.ip());
        if addr.port() != 0 {
            builder = builder.port(addr.port());
        }
        Self::spawn_from(builder).await
    }

    async fn spawn_from(builder: RelayBuilder) -> Result<Self> {
        let relay = LocalRelay::new(builder);
        relay.run().await?;
        let url = relay.url().await.to_string();
        Ok(Self { relay, url })
    }

    /// The relay's `ws://127.0.0.1:PORT` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the relay.
    pub fn shutdown(&self) {
        self.relay.shutdown();
    }
}

impl Drop for TestNostrRelay {
    fn drop(&mut self) {
        self.relay.shutdown();
    }
}
