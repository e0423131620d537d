//! Seed adverts: NIP-33 addressable Nostr events of kind 30081 saying
//! "this endpoint holds this blob", one per (node, blob), replaced when
//! republished and by an empty tombstone when the node stops seeding.
//!
//! Readers trust nothing in an advert but its signature: an advert can only
//! waste a fetcher's time, because every byte is BLAKE3-verified. Expired,
//! future-dated, malformed, oversized and badly signed adverts are ignored.

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use atoll_core::{ContentId, kinds};
use iroh::{EndpointAddr, EndpointId, RelayUrl, TransportAddr};
use nostr_sdk::prelude::{Event, EventBuilder, Filter, Keys, Kind, Tag, Timestamp};
use serde::{Deserialize, Serialize};

/// Largest advert content accepted, in bytes.
pub const MAX_ADVERT_BYTES: usize = 4096;
/// Most direct addresses taken from one advert.
pub const MAX_ADDRS: usize = 16;
/// How far in the future an advert's `created_at` may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(600);

/// The JSON content of a seed advert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertContent {
    /// The seeder's iroh endpoint id (hex).
    pub endpoint_id: String,
    /// The seeder's home relay, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
    /// Direct addresses of the seeder.
    #[serde(default)]
    pub addrs: Vec<SocketAddr>,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Unix time after which the advert is void.
    pub expires_at: u64,
}

/// A seeder learned from a valid advert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeder {
    /// How to reach it.
    pub addr: EndpointAddr,
    /// Claimed blob size.
    pub size: u64,
    /// When the advert expires (unix seconds).
    pub expires_at: u64,
}

/// Why an advert was ignored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdvertError {
    /// Not kind 30081.
    #[error("wrong kind {0}")]
    WrongKind(u16),
    /// Signature or id does not verify.
    #[error("bad signature or event id")]
    BadSignature,
    /// The `d` tag is missing or not the blob asked for.
    #[error("d tag missing or not the requested blob")]
    WrongBlob,
    /// An empty tombstone: the author stopped seeding.
    #[error("tombstone (no longer seeded)")]
    Tombstone,
    /// Content too large.
    #[error("content of {0} bytes is too large")]
    TooLarge(usize),
    /// Content is not the advert JSON.
    #[error("malformed content: {0}")]
    Malformed(String),
    /// Past its `expires_at`.
    #[error("expired")]
    Expired,
    /// Dated too far in the future.
    #[error("created in the future")]
    FromTheFuture,
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The advert of `addr` holding `id` (`size` bytes), valid for `ttl`.
pub fn build(
    keys: &Keys,
    id: &ContentId,
    size: u64,
    addr: &EndpointAddr,
    ttl: Duration,
) -> Result<Event, nostr_sdk::event::builder::Error> {
    let expires_at = now_secs() + ttl.as_secs();
    let content = AdvertContent {
        endpoint_id: addr.id.to_string(),
        relay_url: addr.relay_urls().next().map(|u| u.to_string()),
        addrs: addr.ip_addrs().take(MAX_ADDRS).copied().collect(),
        size,
        expires_at,
    };
    let json = serde_json::to_string(&content).unwrap_or_default();
    EventBuilder::new(Kind::Custom(kinds::SEED_ADVERT), json)
        .tag(Tag::identifier(id.to_hex()))
        .tag(Tag::expiration(Timestamp::from(expires_at)))
        .sign_with_keys(keys)
}

/// The empty tombstone that replaces `keys`' advert for `id`.
pub fn tombstone(keys: &Keys, id: &ContentId) -> Result<Event, nostr_sdk::event::builder::Error> {
    EventBuilder::new(Kind::Custom(kinds::SEED_ADVERT), "")
        .tag(Tag::identifier(id.to_hex()))
        .sign_with_keys(keys)
}

/// The relay filter for adverts of `id`.
pub fn filter(id: &ContentId) -> Filter {
    Filter::new()
        .kind(Kind::Custom(kinds::SEED_ADVERT))
        .identifier(id.to_hex())
}

/// Checks an advert event for `id` at time `now` and extracts the seeder.
pub fn parse(event: &Event, id: &ContentId, now: u64) -> Result<Seeder, AdvertError> {
    if event.kind != Kind::Custom(kinds::SEED_ADVERT) {
        return Err(AdvertError::WrongKind(event.kind.as_u16()));
    }
    if event.content.len() > MAX_ADVERT_BYTES {
        return Err(AdvertError::TooLarge(event.content.len()));
    }
    event.verify().map_err(|_| AdvertError::BadSignature)?;
    let want = id.to_hex();
    if event.tags.identifier() != Some(want.as_str()) {
        return Err(AdvertError::WrongBlob);
    }
    if event.created_at.as_secs() > now + MAX_CLOCK_SKEW.as_secs() {
        return Err(AdvertError::FromTheFuture);
    }
    if event.content.is_empty() {
        return Err(AdvertError::Tombstone);
    }
    let content: AdvertContent =
        serde_json::from_str(&event.content).map_err(|e| AdvertError::Malformed(e.to_string()))?;
    if content.expires_at <= now {
        return Err(AdvertError::Expired);
    }
    let endpoint: EndpointId = content
        .endpoint_id
        .parse()
        .map_err(|_| AdvertError::Malformed("endpoint_id is not an endpoint id".into()))?;
    if content.addrs.len() > MAX_ADDRS {
        return Err(AdvertError::Malformed(format!(
            "more than {MAX_ADDRS} addresses"
        )));
    }
    let mut addrs: Vec<TransportAddr> = content
        .addrs
        .iter()
        .map(|a| TransportAddr::Ip(*a))
        .collect();
    if let Some(relay) = &content.relay_url {
        let url: RelayUrl = relay
            .parse()
            .map_err(|_| AdvertError::Malformed("relay_url is not a URL".into()))?;
        addrs.push(TransportAddr::Relay(url));
    }
    Ok(Seeder {
        addr: EndpointAddr::from_parts(endpoint, addrs),
        size: content.size,
        expires_at: content.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> EndpointAddr {
        let id = iroh::SecretKey::from_bytes(&[5; 32]).public();
        EndpointAddr::new(id)
            .with_relay_url("http://127.0.0.1:3340".parse().unwrap())
            .with_ip_addr("10.0.0.1:4919".parse().unwrap())
    }

    fn sign(keys: &Keys, kind: u16, d: &str, content: &str, created: u64) -> Event {
        EventBuilder::new(Kind::Custom(kind), content)
            .tag(Tag::identifier(d))
            .custom_created_at(Timestamp::from(created))
            .sign_with_keys(keys)
            .unwrap()
    }

    #[test]
    fn round_trip() {
        let keys = Keys::generate();
        let id = ContentId::of(b"film");
        let ev = build(&keys, &id, 42, &addr(), Duration::from_secs(600)).unwrap();
        let s = parse(&ev, &id, now_secs()).unwrap();
        assert_eq!(s.addr, addr());
        assert_eq!(s.size, 42);
        assert!(
            ev.tags
                .iter()
                .any(|t| t.kind() == nostr_sdk::TagKind::Expiration)
        );
    }

    #[test]
    fn hostile_adverts_are_ignored() {
        let keys = Keys::generate();
        let id = ContentId::of(b"film");
        let now = now_secs();
        let good = build(&keys, &id, 42, &addr(), Duration::from_secs(600)).unwrap();
        // Another blob's advert.
        assert_eq!(
            parse(&good, &ContentId::of(b"other"), now),
            Err(AdvertError::WrongBlob)
        );
        // Expired (checked at a later time).
        assert_eq!(parse(&good, &id, now + 601), Err(AdvertError::Expired));
        // Tampered content: the signature no longer verifies.
        let mut bad = good.clone();
        bad.content = bad.content.replace("42", "43");
        assert_eq!(parse(&bad, &id, now), Err(AdvertError::BadSignature));
        // Tombstone.
        assert_eq!(
            parse(&tombstone(&keys, &id).unwrap(), &id, now),
            Err(AdvertError::Tombstone)
        );
        let d = id.to_hex();
        let ok_json = serde_json::to_string(&AdvertContent {
            endpoint_id: addr().id.to_string(),
            relay_url: None,
            addrs: vec![],
            size: 1,
            expires_at: now + 100,
        })
        .unwrap();
        assert!(
            parse(
                &sign(&keys, kinds::SEED_ADVERT, &d, &ok_json, now),
                &id,
                now
            )
            .is_ok()
        );
        assert_eq!(
            parse(&sign(&keys, 1, &d, &ok_json, now), &id, now),
            Err(AdvertError::WrongKind(1))
        );
        assert_eq!(
            parse(
                &sign(&keys, kinds::SEED_ADVERT, &d, &ok_json, now + 3600),
                &id,
                now
            ),
            Err(AdvertError::FromTheFuture)
        );
        for content in [
            "not json",
            "{}",
            r#"{"endpoint_id":"zz","size":1,"expires_at":99999999999}"#,
            r#"{"endpoint_id":1,"size":1,"expires_at":99999999999}"#,
            &format!(
                r#"{{"endpoint_id":"{}","size":-1,"expires_at":99999999999}}"#,
                addr().id
            ),
            &format!(
                r#"{{"endpoint_id":"{}","size":1,"expires_at":99999999999,"relay_url":"::"}}"#,
                addr().id
            ),
        ] {
            let ev = sign(&keys, kinds::SEED_ADVERT, &d, content, now);
            assert!(
                matches!(parse(&ev, &id, now), Err(AdvertError::Malformed(_))),
                "{content}"
            );
        }
        let many: Vec<String> = (0..17).map(|i| format!("\"10.0.0.{i}:1\"")).collect();
        let content = format!(
            r#"{{"endpoint_id":"{}","size":1,"expires_at":99999999999,"addrs":[{}]}}"#,
            addr().id,
            many.join(",")
        );
        assert!(matches!(
            parse(
                &sign(&keys, kinds::SEED_ADVERT, &d, &content, now),
                &id,
                now
            ),
            Err(AdvertError::Malformed(_))
        ));
        let huge = "x".repeat(MAX_ADVERT_BYTES + 1);
        assert!(matches!(
            parse(&sign(&keys, kinds::SEED_ADVERT, &d, &huge, now), &id, now),
            Err(AdvertError::TooLarge(_))
        ));
        // No d tag at all.
        let no_d = EventBuilder::new(Kind::Custom(kinds::SEED_ADVERT), ok_json)
            .sign_with_keys(&keys)
            .unwrap();
        assert_eq!(parse(&no_d, &id, now), Err(AdvertError::WrongBlob));
    }
}

/// How long a publish may wait for relays.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes this node's adverts and looks up other nodes' adverts on the
/// configured Nostr relays.
#[derive(Debug, Clone)]
pub struct Adverts {
    client: nostr_sdk::Client,
    keys: Keys,
    ttl: Duration,
    lookup_timeout: Duration,
}

/// Errors talking to Nostr relays.
#[derive(Debug, thiserror::Error)]
#[error("nostr: {0}")]
pub struct NostrError(String);

impl Adverts {
    /// Connects to `relays` (in the background; unreachable relays are
    /// retried by the client).
    pub async fn connect(
        keys: Keys,
        relays: &[String],
        ttl: Duration,
        lookup_timeout: Duration,
    ) -> Result<Self, NostrError> {
        let client = nostr_sdk::Client::builder().signer(keys.clone()).build();
        for r in relays {
            client
                .add_relay(r)
                .await
                .map_err(|e| NostrError(format!("{r}: {e}")))?;
        }
        client.connect().await;
        Ok(Self {
            client,
            keys,
            ttl,
            lookup_timeout,
        })
    }

    /// Advert lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Publishes (or renews) the advert for `id`.
    pub async fn publish(
        &self,
        id: &ContentId,
        size: u64,
        addr: &EndpointAddr,
    ) -> Result<(), NostrError> {
        let ev =
            build(&self.keys, id, size, addr, self.ttl).map_err(|e| NostrError(e.to_string()))?;
        self.send(ev).await
    }

    /// Replaces the advert for `id` with an empty tombstone.
    pub async fn withdraw(&self, id: &ContentId) -> Result<(), NostrError> {
        let ev = tombstone(&self.keys, id).map_err(|e| NostrError(e.to_string()))?;
        self.send(ev).await
    }

    async fn send(&self, ev: Event) -> Result<(), NostrError> {
        let out = tokio::time::timeout(SEND_TIMEOUT, self.client.send_event(&ev))
            .await
            .map_err(|_| NostrError("no relay answered in time".into()))?
            .map_err(|e| NostrError(e.to_string()))?;
        if out.success.is_empty() {
            return Err(NostrError(format!(
                "no relay accepted the event: {:?}",
                out.failed
            )));
        }
        Ok(())
    }

    /// Valid seeders of `id` from every configured relay.
    pub async fn lookup(&self, id: &ContentId) -> Result<Vec<Seeder>, NostrError> {
        let events = self
            .client
            .fetch_events(filter(id), self.lookup_timeout)
            .await
            .map_err(|e| NostrError(e.to_string()))?;
        let now = now_secs();
        let mut seeders: Vec<Seeder> = Vec::new();
        for ev in events.into_iter() {
            match parse(&ev, id, now) {
                Ok(s) => {
                    if !seeders.iter().any(|x| x.addr.id == s.addr.id) {
                        seeders.push(s);
                    }
                }
                Err(AdvertError::Tombstone) => {}
                Err(e) => tracing::debug!(author = %ev.pubkey, "ignoring advert: {e}"),
            }
        }
        Ok(seeders)
    }

    /// Disconnects from the relays.
    pub async fn shutdown(&self) {
        self.client.shutdown().await;
    }
}
