//! Real local parts for Atoll's tests and the demo, all on loopback with no
//! internet: an iroh relay server and endpoints that never reach n0 services,
//! a NIP-01 Nostr relay, Cashu mints on a linked fake Lightning network, temp
//! state directories and network-namespace hosts.

pub mod dirs;
pub mod lightning;
pub mod mint;
pub mod netns;
pub mod nostr;
pub mod relay;

pub use dirs::TempState;
pub use netns::{Host, Lab};
pub use nostr::TestNostrRelay;
pub use relay::TestRelay;
