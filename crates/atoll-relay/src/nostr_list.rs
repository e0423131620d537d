//! The owner's signed membership list (kind 13534, NIP-43 style), read from
//! Nostr relays and kept current by a subscription.
//!
//! The list is a replaceable event signed by the relay owner; each member
//! is a tag `["member", "<hex pubkey>"]` (NIP-43) or `["p", "<hex
//! pubkey>"]`. The newest valid list wins (NIP-01 replaceable rule: later
//! `created_at`, ties to the lower id); an older or invalid one is ignored.
//! Publishing a list without a key revokes it: its live connections are
//! dropped like any other revocation.

use std::{
    collections::HashSet,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use atoll_core::kinds::MEMBERSHIP_LIST;
use nostr::{Event, EventId, Filter, Kind, PublicKey, Timestamp};
use nostr_sdk::{Client, RelayPoolNotification};
use tokio::sync::broadcast::error::RecvError;

use crate::{
    members::{MemberSet, Membership},
    task::AbortOnDrop,
};

/// Why a membership list event was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// Not kind 13534.
    #[error("kind {kind} is not a membership list ({MEMBERSHIP_LIST})")]
    WrongKind {
        /// The kind found.
        kind: u16,
    },
    /// Not signed by the relay owner.
    #[error("membership list not signed by the relay owner")]
    NotOwner,
    /// The id or signature does not verify.
    #[error("bad event id or signature")]
    BadSignature,
    /// Dated in the future beyond the allowed skew.
    #[error("membership list dated {ahead_secs} seconds in the future")]
    FromTheFuture {
        /// How far ahead.
        ahead_secs: u64,
    },
}

/// The members named by a membership list, if the list is valid: kind
/// 13534, signed by `owner`, not dated in the future beyond `max_skew`.
/// Member tags that are not valid keys are skipped.
pub fn members_from_list(
    event: &Event,
    owner: &PublicKey,
    now: SystemTime,
    max_skew: Duration,
) -> Result<MemberSet, ListError> {
    let kind = event.kind.as_u16();
    if kind != MEMBERSHIP_LIST {
        return Err(ListError::WrongKind { kind });
    }
    if event.pubkey != *owner {
        return Err(ListError::NotOwner);
    }
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created = event.created_at.as_secs();
    if created > now_secs.saturating_add(max_skew.as_secs()) {
        return Err(ListError::FromTheFuture {
            ahead_secs: created - now_secs,
        });
    }
    event.verify().map_err(|_| ListError::BadSignature)?;
    let mut members = HashSet::new();
    for tag in event.tags.iter() {
        let parts = tag.as_slice();
        let is_member_tag = matches!(parts.first().map(String::as_str), Some("member" | "p"));
        if let (true, Some(value)) = (is_member_tag, parts.get(1)) {
            match PublicKey::from_hex(value) {
                Ok(k) => {
                    members.insert(k);
                }
                Err(_) => tracing::warn!(
                    "membership list has a member tag that is not a hex key; skipped"
                ),
            }
        }
    }
    Ok(members)
}

/// Builds a membership list event for `members`, signed by `owner` (the
/// CLI and tests publish these). Unlike NIP-43's relay-published list it
/// carries no NIP-70 `-` tag: the owner publishes it to ordinary relays,
/// which refuse protected events from unauthenticated clients.
pub fn membership_list_event<'a>(
    owner: &nostr::Keys,
    members: impl IntoIterator<Item = &'a PublicKey>,
    created_at: Timestamp,
) -> Result<Event, nostr::event::builder::Error> {
    let tags = members
        .into_iter()
        .map(|k| nostr::Tag::custom(nostr::TagKind::custom("member"), [k.to_hex()]));
    nostr::EventBuilder::new(Kind::from(MEMBERSHIP_LIST), "")
        .tags(tags)
        .custom_created_at(created_at)
        .sign_with_keys(owner)
}

/// The newest list seen so far.
#[derive(Debug, Default)]
struct Newest {
    at: Option<(Timestamp, EventId)>,
}

impl Newest {
    fn is_newer(&self, event: &Event) -> bool {
        match self.at {
            None => true,
            Some((t, id)) => event.created_at > t || (event.created_at == t && event.id < id),
        }
    }
}

/// Errors starting the list subscription.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListWatchError {
    /// A relay URL was refused.
    #[error("nostr relay {url}: {reason}")]
    Relay {
        /// The relay.
        url: String,
        /// Why.
        reason: String,
    },
}

/// A running subscription to the owner's membership list.
#[derive(Debug)]
pub struct ListWatcher {
    client: Client,
    _task: AbortOnDrop,
}

impl ListWatcher {
    /// Connects to `relays` and keeps `membership`'s list members equal to
    /// the newest valid list signed by its owner.
    pub async fn spawn(
        relays: &[String],
        membership: Membership,
        max_skew: Duration,
    ) -> Result<Self, ListWatchError> {
        let client = Client::builder().build();
        for url in relays {
            client
                .add_relay(url)
                .await
                .map_err(|e| ListWatchError::Relay {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        }
        let owner = *membership.owner();
        let filter = Filter::new()
            .kind(Kind::from(MEMBERSHIP_LIST))
            .author(owner);
        let mut notes = client.notifications();
        client.connect().await;
        let task_client = client.clone();
        let task = tokio::spawn(async move {
            let client = task_client;
            let mut newest = Newest::default();
            // Subscribing fails when no relay is connected yet; retry.
            let mut backoff = Duration::from_millis(200);
            while let Err(e) = client.subscribe(filter.clone(), None).await {
                tracing::warn!("membership list subscription: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            loop {
                match notes.recv().await {
                    Ok(RelayPoolNotification::Event { event, .. }) => {
                        offer(&event, &membership, &mut newest, max_skew);
                    }
                    Ok(RelayPoolNotification::Shutdown) | Err(RecvError::Closed) => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        match client
                            .fetch_events(filter.clone(), Duration::from_secs(10))
                            .await
                        {
                            Ok(events) => {
                                for event in events.iter() {
                                    offer(event, &membership, &mut newest, max_skew);
                                }
                            }
                            Err(e) => tracing::warn!("membership list re-fetch: {e}"),
                        }
                    }
                }
            }
        });
        Ok(Self {
            client,
            _task: AbortOnDrop(task),
        })
    }

    /// Stops the subscription and disconnects.
    pub async fn shutdown(self) {
        self.client.shutdown().await;
    }
}

fn offer(event: &Event, membership: &Membership, newest: &mut Newest, max_skew: Duration) {
    if !newest.is_newer(event) {
        return;
    }
    match members_from_list(event, membership.owner(), SystemTime::now(), max_skew) {
        Ok(members) => {
            newest.at = Some((event.created_at, event.id));
            tracing::info!(
                members = members.len(),
                created_at = event.created_at.as_secs(),
                "membership list updated"
            );
            membership.set_list_members(members);
        }
        Err(e) => tracing::warn!("membership list ignored: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn valid_list_names_its_members() {
        let owner = nostr::Keys::generate();
        let (a, b) = (
            nostr::Keys::generate().public_key(),
            nostr::Keys::generate().public_key(),
        );
        let ev =
            membership_list_event(&owner, [&a, &b], Timestamp::from_secs(1_800_000_000)).unwrap();
        let got =
            members_from_list(&ev, &owner.public_key(), now(), Duration::from_secs(60)).unwrap();
        assert_eq!(got, HashSet::from([a, b]));
        // `p` tags are read too, and junk member tags are skipped.
        let ev = nostr::EventBuilder::new(Kind::from(MEMBERSHIP_LIST), "")
            .tags([
                nostr::Tag::custom(nostr::TagKind::custom("p"), [a.to_hex()]),
                nostr::Tag::custom(nostr::TagKind::custom("member"), ["zz"]),
            ])
            .custom_created_at(Timestamp::from_secs(1_800_000_000))
            .sign_with_keys(&owner)
            .unwrap();
        assert_eq!(
            members_from_list(&ev, &owner.public_key(), now(), Duration::from_secs(60)).unwrap(),
            HashSet::from([a])
        );
    }

    #[test]
    fn invalid_lists_are_refused() {
        let owner = nostr::Keys::generate();
        let a = nostr::Keys::generate().public_key();
        let t = Timestamp::from_secs(1_800_000_000);
        let skew = Duration::from_secs(60);
        let other = nostr::Keys::generate();
        let ev = membership_list_event(&other, [&a], t).unwrap();
        assert_eq!(
            members_from_list(&ev, &owner.public_key(), now(), skew),
            Err(ListError::NotOwner)
        );
        let ev = membership_list_event(&owner, [&a], Timestamp::from_secs(1_800_000_061)).unwrap();
        assert!(matches!(
            members_from_list(&ev, &owner.public_key(), now(), skew),
            Err(ListError::FromTheFuture { .. })
        ));
        let ev = nostr::EventBuilder::new(Kind::from(3u16), "")
            .custom_created_at(t)
            .sign_with_keys(&owner)
            .unwrap();
        assert_eq!(
            members_from_list(&ev, &owner.public_key(), now(), skew),
            Err(ListError::WrongKind { kind: 3 })
        );
        // A member smuggled into a signed list breaks the id.
        let mut ev = membership_list_event(&owner, [&a], t).unwrap();
        let mut tags = ev.tags.clone().to_vec();
        tags.push(nostr::Tag::custom(
            nostr::TagKind::custom("member"),
            [other.public_key().to_hex()],
        ));
        ev.tags = nostr::Tags::from_list(tags);
        assert_eq!(
            members_from_list(&ev, &owner.public_key(), now(), skew),
            Err(ListError::BadSignature)
        );
    }

    #[test]
    fn newest_list_wins() {
        let owner = nostr::Keys::generate();
        let m = Membership::new(owner.public_key());
        let (a, b) = (
            nostr::Keys::generate().public_key(),
            nostr::Keys::generate().public_key(),
        );
        let base = Timestamp::now().as_secs() - 100;
        let old = membership_list_event(&owner, [&a], Timestamp::from_secs(base)).unwrap();
        let new = membership_list_event(&owner, [&b], Timestamp::from_secs(base + 10)).unwrap();
        let mut newest = Newest::default();
        let skew = Duration::from_secs(60);
        offer(&new, &m, &mut newest, skew);
        offer(&old, &m, &mut newest, skew);
        assert!(m.is_member(&b) && !m.is_member(&a));
        // An empty newer list revokes everyone on the list.
        let empty = membership_list_event(&owner, [], Timestamp::from_secs(base + 20)).unwrap();
        offer(&empty, &m, &mut newest, skew);
        assert!(!m.is_member(&b));
    }
}
