#![doc = include_str!("../README.md")]

pub mod admission;
pub mod canonical;
pub mod config;
pub mod doc;
pub mod fsutil;
pub mod id;
pub mod keys;
pub mod kinds;
pub mod local_api;
pub mod mint_url;
pub mod net;
pub mod service;

pub use id::{ContentId, ContentIdError};
pub use keys::{KeyDir, NodeKey, NodeKeys, NostrKey};
