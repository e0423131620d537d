//! The relay's information document (in the spirit of NIP-11), served as
//! JSON at [`INFO_PATH`] on the relay's own port, so a node (or a person)
//! given only the relay URL learns how to be admitted. Members are never
//! listed.

use atoll_core::{
    admission::{self, ENDPOINT_TAG, METHOD},
    kinds::{HTTP_AUTH, MEMBERSHIP_LIST},
};
use serde::{Deserialize, Serialize};

/// Where the document is served.
pub const INFO_PATH: &str = "/.well-known/atoll-relay";

/// Name of the admission scheme in [`AdmissionInfo::scheme`].
pub const SCHEME: &str = "atoll-nostr-event";

/// The information document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayInfo {
    /// `atoll-relayd`.
    pub software: String,
    /// Its version.
    pub version: String,
    /// The relay's canonical URL: the `u` tag tokens must carry.
    pub url: String,
    /// The owner's Nostr key (npub): always a member, signs the list.
    pub owner: String,
    /// How to be admitted.
    pub admission: AdmissionInfo,
    /// Where the owner's membership list is published.
    pub membership_list: MembershipListInfo,
    /// UDP port of QUIC address discovery, when served.
    pub quic_addr_discovery_port: Option<u16>,
}

/// How to be admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionInfo {
    /// [`SCHEME`]: a signed Nostr event, standard base64 of its JSON.
    pub scheme: String,
    /// Event kind: 27235 (NIP-98 HTTP auth).
    pub kind: u16,
    /// How the token travels.
    pub header: String,
    /// Required tags, each exactly once.
    pub tags: Vec<String>,
    /// Value of the `method` tag.
    pub method: String,
    /// Longest lifetime accepted (`expiration` − now), in seconds.
    pub max_ttl_secs: u64,
    /// Clock difference tolerated, in seconds.
    pub max_skew_secs: u64,
    /// Largest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// Where the owner's membership list lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipListInfo {
    /// Event kind: 13534.
    pub kind: u16,
    /// Nostr relays the relay follows it on.
    pub nostr_relays: Vec<String>,
}

impl RelayInfo {
    /// The document for a relay at `url` owned by `owner_npub`.
    pub fn new(
        url: &str,
        owner_npub: &str,
        max_ttl_secs: u64,
        max_skew_secs: u64,
        nostr_relays: Vec<String>,
        quic_addr_discovery_port: Option<u16>,
    ) -> Self {
        Self {
            software: "atoll-relayd".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            url: url.into(),
            owner: owner_npub.into(),
            admission: AdmissionInfo {
                scheme: SCHEME.into(),
                kind: HTTP_AUTH,
                header: "Authorization: Bearer <base64 of the event JSON>".into(),
                tags: ["u", "method", ENDPOINT_TAG, "expiration"]
                    .map(String::from)
                    .to_vec(),
                method: METHOD.into(),
                max_ttl_secs,
                max_skew_secs,
                max_token_bytes: admission::MAX_TOKEN_BYTES,
            },
            membership_list: MembershipListInfo {
                kind: MEMBERSHIP_LIST,
                nostr_relays,
            },
            quic_addr_discovery_port,
        }
    }
}
