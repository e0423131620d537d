//! A local iroh relay server on loopback (plain HTTP, ephemeral port) and
//! endpoints that use only it.

use std::{net::Ipv4Addr, sync::Arc};

use anyhow::{Context, Result};
use atoll_core::net::endpoint_builder;
use iroh::{Endpoint, RelayMap, RelayUrl, SecretKey};
use iroh_relay::server::{self, DynAccessControl, Server, ServerConfig};

/// A running iroh relay on 127.0.0.1.
#[derive(Debug)]
pub struct TestRelay {
    server: Server,
    url: RelayUrl,
}

/// Builds a [`TestRelay`].
#[derive(Debug, Default)]
pub struct TestRelayBuilder {
    access: Option<Arc<dyn DynAccessControl>>,
    bind: Option<std::net::SocketAddr>,
}

impl TestRelayBuilder {
    /// Admission control for the relay (default: admit everyone).
    pub fn access(mut self, access: Arc<dyn DynAccessControl>) -> Self {
        self.access = Some(access);
        self
    }

    /// Address to bind (default: 127.0.0.1 on an ephemeral port).
    pub fn bind(mut self, addr: std::net::SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Starts the relay.
    pub async fn spawn(self) -> Result<TestRelay> {
        let addr = self.bind.unwrap_or_else(|| (Ipv4Addr::LOCALHOST, 0).into());
        let mut relay = server::RelayConfig::new(addr);
        if let Some(access) = self.access {
            relay.access = access;
        }
        let mut config = ServerConfig::default();
        config.relay = Some(relay);
        let server = Server::spawn(config).await.context("starting iroh relay")?;
        let addr = server.http_addr().context("relay has no HTTP address")?;
        let url: RelayUrl = format!("http://{addr}").parse()?;
        Ok(TestRelay { server, url })
    }
}

impl TestRelay {
    /// A builder.
    pub fn builder() -> TestRelayBuilder {
        TestRelayBuilder::default()
    }

    /// Starts an admit-everyone relay on an ephemeral loopback port.
    pub async fn spawn() -> Result<Self> {
        Self::builder().spawn().await
    }

    /// The relay's URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    /// A relay map holding only this relay.
    pub fn relay_map(&self) -> RelayMap {
        RelayMap::from(iroh::RelayConfig::new(self.url.clone(), None))
    }

    /// Stops the relay.
    pub async fn shutdown(self) -> Result<()> {
        self.server.shutdown().await?;
        Ok(())
    }
}

/// Binds an endpoint that talks only through `relay`: no IP transports,
/// no DNS, no pkarr, no public relays.
pub async fn relay_only_endpoint(relay: &TestRelay, alpns: Vec<Vec<u8>>) -> Result<Endpoint> {
    let ep = endpoint_builder(SecretKey::generate(), Some(relay.relay_map()))
        .clear_ip_transports()
        .alpns(alpns)
        .bind()
        .await?;
    Ok(ep)
}

/// Binds an endpoint with direct loopback addresses and `relay` (if any).
pub async fn local_endpoint(relay: Option<&TestRelay>, alpns: Vec<Vec<u8>>) -> Result<Endpoint> {
    let ep = endpoint_builder(SecretKey::generate(), relay.map(TestRelay::relay_map))
        .alpns(alpns)
        .bind()
        .await?;
    Ok(ep)
}
