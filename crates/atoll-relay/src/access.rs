//! Where the relay decides admission: an
//! [`iroh_relay::server::AccessControl`] that lets a client in only with a
//! valid admission token ([`atoll_core::admission`]) signed by a current
//! member, and remembers which member each live connection belongs to so
//! a revocation can find and drop them.
//!
//! Every error refuses (fail closed). Attempts are rate limited per
//! endpoint id here, and per IP address at the TCP accept
//! ([`crate::server`]). Tokens are never logged; refusals are logged with
//! the endpoint id and the reason only.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime},
};

use atoll_core::admission::{Admission, AdmissionError, Verifier};
use iroh::EndpointId;
use iroh_relay::server::{Access, AccessControl, ClientRequest, ConnectionId};
use nostr::PublicKey;

use crate::{
    limit::{Limiter, Rate},
    members::{Membership, npub},
};

/// Most endpoint ids tracked by the per-endpoint rate limit at once.
pub const ENDPOINT_LIMIT_CAPACITY: usize = 100_000;

/// Why a client was refused. The text is sent back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Too many attempts from this endpoint.
    #[error("too many admission attempts; slow down")]
    RateLimited,
    /// No token at all.
    #[error("no admission token (send `Authorization: Bearer <token>`)")]
    NoToken,
    /// A token that does not verify.
    #[error("bad admission token: {0}")]
    Token(#[from] AdmissionError),
    /// A valid token from someone who is not a member.
    #[error("the token's signer is not a member of this relay's group")]
    NotMember,
}

/// Admission counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessStats {
    /// Connections admitted.
    pub admitted: u64,
    /// Attempts refused.
    pub refused: u64,
    /// Live connections dropped because their member was revoked.
    pub revoked: u64,
}

/// The relay's admission control: members only, by signed token.
#[derive(Debug)]
pub struct MemberAccess {
    verifier: Verifier,
    membership: Membership,
    limiter: Limiter<EndpointId>,
    live: Mutex<HashMap<(EndpointId, ConnectionId), PublicKey>>,
    admitted: AtomicU64,
    refused: AtomicU64,
    revoked: AtomicU64,
}

impl MemberAccess {
    /// Admission for the relay whose tokens `verifier` checks, for the
    /// members of `membership`, at most `per_endpoint` attempts per
    /// endpoint id.
    pub fn new(verifier: Verifier, membership: Membership, per_endpoint: Rate) -> Self {
        Self {
            verifier,
            membership,
            limiter: Limiter::new(per_endpoint, ENDPOINT_LIMIT_CAPACITY),
            live: Mutex::new(HashMap::new()),
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
        }
    }

    /// The membership admission is checked against.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The decision for `request`, without recording anything but the
    /// rate-limit attempt. Cheapest checks first; the signature is checked
    /// only for a well-formed, current token bound to this endpoint.
    pub fn decide(&self, request: &ClientRequest, now: SystemTime) -> Result<Admission, Refusal> {
        let endpoint = request.endpoint_id();
        if !self.limiter.check(&endpoint, Instant::now()) {
            return Err(Refusal::RateLimited);
        }
        let token = request.auth_token().ok_or(Refusal::NoToken)?;
        let admission = self.verifier.verify(&token, &endpoint, now)?;
        if !self.membership.is_member(&admission.pubkey) {
            return Err(Refusal::NotMember);
        }
        Ok(admission)
    }

    /// Live connections whose member is no longer a member: the ones to
    /// drop. They stay listed until the relay reports them gone.
    pub fn revoked_connections(&self) -> Vec<(EndpointId, ConnectionId)> {
        let members = self.membership.current();
        self.live
            .lock()
            .map(|live| {
                live.iter()
                    .filter(|(_, pk)| !members.contains(pk))
                    .map(|(k, _)| *k)
                    .collect()
            })
            // Poisoned: we cannot tell who is who; the sweeper will retry.
            .unwrap_or_default()
    }

    /// Counts a revoked connection that was asked to close.
    pub(crate) fn note_revoked(&self, n: usize) {
        self.revoked.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Number of live admitted connections.
    pub fn live_connections(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Whether `endpoint` has a live admitted connection.
    pub fn is_connected(&self, endpoint: &EndpointId) -> bool {
        self.live
            .lock()
            .map(|l| l.keys().any(|(e, _)| e == endpoint))
            .unwrap_or(false)
    }

    /// Counters since start.
    pub fn stats(&self) -> AccessStats {
        AccessStats {
            admitted: self.admitted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            revoked: self.revoked.load(Ordering::Relaxed),
        }
    }
}

impl AccessControl for MemberAccess {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        let endpoint = request.endpoint_id();
        match self.decide(request, SystemTime::now()) {
            Ok(admission) => {
                let Ok(mut live) = self.live.lock() else {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    return Access::Deny {
                        reason: Some("relay error".into()),
                    };
                };
                live.insert((endpoint, request.connection_id()), admission.pubkey);
                drop(live);
                self.admitted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    endpoint = %endpoint.fmt_short(),
                    member = %npub(&admission.pubkey),
                    "admitted"
                );
                Access::Allow
            }
            Err(refusal) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if refusal == Refusal::RateLimited {
                    tracing::debug!(endpoint = %endpoint.fmt_short(), "refused: {refusal}");
                } else {
                    tracing::info!(endpoint = %endpoint.fmt_short(), "refused: {refusal}");
                }
                Access::Deny {
                    reason: Some(refusal.to_string()),
                }
            }
        }
    }

    fn on_disconnect(&self, endpoint_id: EndpointId, connection_id: ConnectionId) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&(endpoint_id, connection_id));
        }
    }
}
