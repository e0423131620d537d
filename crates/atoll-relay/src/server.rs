//! The running relay: iroh-relay's [`RelayService`] driven by our own TCP
//! accept loop, with [`MemberAccess`] as its admission control.
//!
//! Why not `iroh_relay::server::Server`: it cannot serve extra routes (the
//! information document must be reachable from the relay URL alone) and
//! never sees the client's IP address, so it cannot rate-limit per IP.
//! Owning the accept loop gives both; iroh-relay's own pieces do the rest
//! (`RelayService::handle_connection` for TLS, HTTP and the relay protocol;
//! a QUIC-only `Server` for address discovery).
//!
//! Revocation: [`MemberAccess`] records the member behind every live
//! connection; a sweeper wakes on every membership change and every
//! second, and asks iroh-relay's client registry to close each connection
//! whose member is gone (`Clients::disconnect(endpoint, Some(connection))`).

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use atoll_core::admission::Verifier;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{HeaderMap, HeaderValue},
};
use iroh_relay::{
    KeyCache,
    defaults::DEFAULT_KEY_CACHE_CAPACITY,
    http::RELAY_PROBE_PATH,
    server::{
        AllowAll, DynAccessControl, Metrics,
        http_server::{BytesBody, Handlers, HyperResult, RelayService, TlsConfig},
    },
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::{
    access::MemberAccess,
    config::{InvalidConfig, RelaydConfig},
    info::{INFO_PATH, RelayInfo},
    limit::Limiter,
    members::{self, MembersFileError, Membership},
    nostr_list::{ListWatchError, ListWatcher},
    task::AbortOnDrop,
};

/// Most IP addresses (IPv6: /64 prefixes) tracked by the per-IP limit.
pub const IP_LIMIT_CAPACITY: usize = 100_000;
/// How often live connections are re-checked against the membership even
/// when no change was signalled.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Errors starting the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// The members file is unreadable or has bad lines.
    #[error(transparent)]
    Members(#[from] MembersFileError),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The QUIC address discovery server did not start.
    #[error("QUIC address discovery: {reason}")]
    Quic {
        /// Why.
        reason: String,
    },
    /// The membership list subscription did not start.
    #[error(transparent)]
    Nostr(#[from] ListWatchError),
}

/// Builds a [`Relay`].
#[derive(Debug)]
pub struct RelayBuilder {
    config: RelaydConfig,
    listener: Option<std::net::TcpListener>,
    admit_everyone: bool,
}

impl RelayBuilder {
    /// Serves on an already bound listener instead of `server.bind` (tests
    /// bind port 0 first to learn the port for `server.public_url`).
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Turns admission off: everyone is let in. For benchmarks comparing
    /// the cost of admission; never for a real relay.
    pub fn admit_everyone(mut self) -> Self {
        self.admit_everyone = true;
        self
    }

    /// Starts the relay.
    pub async fn spawn(self) -> Result<Relay, StartError> {
        let config = self.config;
        let checked = config.validate()?;
        let membership = Membership::new(checked.owner);
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();

        if let Some(path) = &config.membership.members_file {
            membership.set_file_members(members::read_members_file(path)?);
            tasks.push(AbortOnDrop(members::spawn_file_watcher(
                path.clone(),
                membership.clone(),
                config.reload_interval(),
            )));
        }

        let verifier = Verifier::new(
            &checked.public_url,
            Duration::from_secs(config.admission.max_skew_secs),
        )
        .map_err(|e| InvalidConfig(e.to_string()))?
        .max_ttl(Duration::from_secs(config.admission.max_ttl_secs));
        let access = Arc::new(MemberAccess::new(
            verifier,
            membership.clone(),
            config.admission.endpoint_rate(),
        ));
        let dyn_access: Arc<dyn DynAccessControl> = if self.admit_everyone {
            tracing::warn!("admission is OFF: every client is admitted (benchmark mode)");
            Arc::new(AllowAll)
        } else {
            access.clone()
        };

        let tls = match &config.tls {
            Some(t) => Some(load_tls(&t.cert_file, &t.key_file, t.reload_interval_secs).await?),
            None => None,
        };

        let qad = match (&tls, config.quic.address_discovery) {
            (Some(server_config), true) => {
                let mut quic = iroh_relay::server::QuicConfig::new(config.quic.bind);
                quic.server_config = Some((**server_config).clone());
                let mut sc = iroh_relay::server::ServerConfig::default();
                sc.quic = Some(quic);
                let server =
                    iroh_relay::server::Server::spawn(sc)
                        .await
                        .map_err(|e| StartError::Quic {
                            reason: e.to_string(),
                        })?;
                Some(server)
            }
            _ => None,
        };
        let quic_addr = qad.as_ref().and_then(|s| s.quic_addr());

        let info = RelayInfo::new(
            &checked.public_url,
            &members::npub(&checked.owner),
            config.admission.max_ttl_secs,
            config.admission.max_skew_secs,
            config.membership.nostr_relays.clone(),
            quic_addr.map(|a| a.port()),
        );
        let mut headers = HeaderMap::new();
        if tls.is_some() {
            for (name, value) in TLS_HEADERS {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
        let service = RelayService::new(
            handlers(&info)?,
            headers,
            None,
            KeyCache::new(DEFAULT_KEY_CACHE_CAPACITY),
            dyn_access,
            Arc::new(Metrics::default()),
        );

        let listener = match self.listener {
            Some(l) => {
                let addr = l.local_addr().unwrap_or(config.server.bind);
                l.set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(l))
                    .map_err(|source| StartError::Bind { addr, source })?
            }
            None => TcpListener::bind(config.server.bind)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.server.bind,
                    source,
                })?,
        };
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.server.bind,
            source,
        })?;

        let accept = tokio::spawn(
            accept_loop(
                listener,
                service.clone(),
                tls.map(TlsConfig::new),
                Arc::new(Limiter::new(config.admission.ip_rate(), IP_LIMIT_CAPACITY)),
                Duration::from_secs(config.server.establish_timeout_secs),
                cancel.clone(),
            )
            .instrument(tracing::info_span!("relay", %addr)),
        );
        if !self.admit_everyone {
            tasks.push(AbortOnDrop(tokio::spawn(sweep(
                access.clone(),
                service.clone(),
                cancel.clone(),
            ))));
        }

        let list = if config.membership.nostr_relays.is_empty() {
            None
        } else {
            Some(
                ListWatcher::spawn(
                    &config.membership.nostr_relays,
                    membership.clone(),
                    Duration::from_secs(config.admission.max_skew_secs),
                )
                .await?,
            )
        };

        tracing::info!(
            %addr,
            url = %checked.public_url,
            tls = config.tls.is_some(),
            quic = ?quic_addr,
            members = membership.current().len(),
            "relay listening"
        );
        Ok(Relay {
            addr,
            quic_addr,
            url: checked.public_url,
            service,
            access,
            membership,
            stop: cancel.drop_guard(),
            accept,
            _tasks: tasks,
            list,
            qad,
        })
    }
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    quic_addr: Option<SocketAddr>,
    url: String,
    service: RelayService,
    access: Arc<MemberAccess>,
    membership: Membership,
    /// Cancels the accept loop and the sweeper, also when dropped.
    stop: DropGuard,
    accept: JoinHandle<()>,
    /// Aborted when dropped.
    _tasks: Vec<AbortOnDrop>,
    list: Option<ListWatcher>,
    qad: Option<iroh_relay::server::Server>,
}

impl Relay {
    /// A builder for a relay with `config`.
    pub fn builder(config: RelaydConfig) -> RelayBuilder {
        RelayBuilder {
            config,
            listener: None,
            admit_everyone: false,
        }
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of QUIC address discovery, when served.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic_addr
    }

    /// The relay's canonical public URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admission control (its counters and live connections).
    pub fn access(&self) -> &Arc<MemberAccess> {
        &self.access
    }

    /// The live membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// iroh-relay's service (its client registry).
    pub fn relay_service(&self) -> &RelayService {
        &self.service
    }

    /// Stops accepting, disconnects every client and stops all tasks.
    /// (Dropping the relay stops it too, without waiting.)
    pub async fn shutdown(self) {
        drop(self.stop);
        if let Err(e) = self.accept.await {
            tracing::warn!("relay accept loop: {e}");
        }
        if let Some(list) = self.list {
            list.shutdown().await;
        }
        if let Some(qad) = self.qad
            && let Err(e) = qad.shutdown().await
        {
            tracing::warn!("QUIC address discovery shutdown: {e}");
        }
    }
}

/// Security headers on every HTTPS response (as iroh-relay's server).
const TLS_HEADERS: [(&str, &str); 2] = [
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'self'; block-all-mixed-content; plugin-types 'none'",
    ),
];

async fn load_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
    reload_secs: u64,
) -> Result<Arc<rustls::ServerConfig>, StartError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls {
            reason: e.to_string(),
        })?
        .with_no_client_auth();
    let resolver = iroh_relay::server::reloading_resolver(
        &provider,
        cert.to_owned(),
        key.to_owned(),
        Duration::from_secs(reload_secs),
    )
    .await
    .map_err(|e| StartError::Tls {
        reason: format!("{} / {}: {e:#}", cert.display(), key.display()),
    })?;
    Ok(Arc::new(builder.with_cert_resolver(resolver)))
}

type Handler = Box<
    dyn Fn(Request<Incoming>, hyper::http::response::Builder) -> HyperResult<Response<BytesBody>>
        + Send
        + Sync
        + 'static,
>;

fn body(bytes: impl Into<Bytes>) -> BytesBody {
    Box::new(Full::new(bytes.into()))
}

fn handlers(info: &RelayInfo) -> Result<Handlers, StartError> {
    let info_json = Bytes::from(
        serde_json::to_vec_pretty(info)
            .map_err(|e| InvalidConfig(format!("info document: {e}")))?,
    );
    let mut h = Handlers::default();
    let mut add = |path: &'static str, f: Handler| {
        h.insert((Method::GET, path), f);
    };
    add(
        "/",
        Box::new(|_r, res| {
            Ok(res
                .status(StatusCode::OK)
                .header("content-type", "text/plain; charset=utf-8")
                .body(body(format!(
                    "Atoll relay (iroh relay protocol). Members only: see {INFO_PATH}\n"
                )))?)
        }),
    );
    add(
        INFO_PATH,
        Box::new(move |_r, res| {
            Ok(res
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("access-control-allow-origin", "*")
                .body(body(info_json.clone()))?)
        }),
    );
    add(
        RELAY_PROBE_PATH,
        Box::new(|_r, res| {
            Ok(res
                .status(StatusCode::OK)
                .header("access-control-allow-origin", "*")
                .body(body(Bytes::new()))?)
        }),
    );
    add("/generate_204", Box::new(no_content));
    add(
        "/healthz",
        Box::new(|_r, res| {
            Ok(res
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(body(r#"{"status":"ok"}"#))?)
        }),
    );
    add(
        "/robots.txt",
        Box::new(|_r, res| {
            Ok(res
                .status(StatusCode::OK)
                .body(body("User-agent: *\nDisallow: /\n"))?)
        }),
    );
    Ok(h)
}

/// Captive-portal check: 204, echoing a well-formed challenge as iroh
/// clients expect.
fn no_content(
    req: Request<Incoming>,
    mut res: hyper::http::response::Builder,
) -> HyperResult<Response<BytesBody>> {
    if let Some(challenge) = req.headers().get("x-iroh-challenge")
        && !challenge.is_empty()
        && challenge.len() < 64
        && challenge
            .as_bytes()
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
    {
        let mut value = b"response ".to_vec();
        value.extend_from_slice(challenge.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            res = res.header("x-iroh-response", v);
        }
    }
    Ok(res
        .status(StatusCode::NO_CONTENT)
        .body(body(Bytes::new()))?)
}

/// The key a client IP is rate-limited under: the address for IPv4 (and
/// IPv4-mapped IPv6), the /64 prefix for IPv6 (one subscriber's share).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    service: RelayService,
    tls: Option<TlsConfig>,
    ip_limiter: Arc<Limiter<IpAddr>>,
    establish_timeout: Duration,
    cancel: CancellationToken,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    if !ip_limiter.check(&ip_key(peer.ip()), Instant::now()) {
                        tracing::debug!(%peer, "connection refused: over the per-IP rate");
                        drop(stream);
                        continue;
                    }
                    let service = service.clone();
                    let tls = tls.clone();
                    conns.spawn(
                        service
                            .handle_connection(stream, tls, establish_timeout)
                            .instrument(tracing::debug_span!("conn", %peer)),
                    );
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    service.shutdown().await;
    conns.shutdown().await;
}

/// Drops live connections of revoked members: on every membership change
/// and every [`SWEEP_INTERVAL`].
async fn sweep(access: Arc<MemberAccess>, service: RelayService, cancel: CancellationToken) {
    let mut changes = access.membership().subscribe();
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asked = HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
            changed = changes.changed() => if changed.is_err() { break },
        }
        let revoked = access.revoked_connections();
        let mut newly = 0;
        for conn in &revoked {
            let (endpoint, connection) = *conn;
            // Asked again every sweep until the relay reports it gone: a
            // client admitted a moment before its revocation may not have
            // been registered yet at the first try.
            if service.clients().disconnect(endpoint, Some(connection)) && asked.insert(*conn) {
                newly += 1;
                tracing::info!(endpoint = %endpoint.fmt_short(), "dropping connection of a revoked member");
            }
        }
        let still: HashSet<_> = revoked.into_iter().collect();
        asked.retain(|c| still.contains(c));
        if newly > 0 {
            access.note_revoked(newly);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_group_ipv6_by_64_and_unmap_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_ne!(
            ip_key("192.0.2.7".parse().unwrap()),
            ip_key("192.0.2.8".parse().unwrap())
        );
    }
}
