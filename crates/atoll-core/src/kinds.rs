//! The Nostr event kinds Atoll uses.

/// Seed advert (NIP-33 addressable): `d` tag = blake3 hex of the blob.
pub const SEED_ADVERT: u16 = 30081;
/// Film entry (NIP-33 addressable): `d` tag = film id, signed by the publisher.
pub const FILM_ENTRY: u16 = 30082;
/// NIP-98 HTTP auth: relay admission and admin HTTP calls.
pub const HTTP_AUTH: u16 = 27235;
/// Membership list (NIP-43 style) of a relay's group.
pub const MEMBERSHIP_LIST: u16 = 13534;
