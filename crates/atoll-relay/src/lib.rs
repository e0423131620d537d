#![doc = include_str!("../README.md")]

pub mod access;
pub mod client;
pub mod config;
pub mod info;
pub mod limit;
pub mod members;
pub mod nostr_list;
pub mod server;
mod task;

pub use access::{MemberAccess, Refusal};
pub use config::RelaydConfig;
pub use members::Membership;
pub use server::{Relay, RelayBuilder, StartError};
