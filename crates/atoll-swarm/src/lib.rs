#![doc = include_str!("../README.md")]

pub mod advert;
pub mod api;
pub mod collection;
pub mod config;
pub mod fetch;
pub mod import;
pub mod node;
pub mod pay;
pub mod store;

pub use config::SwarmConfig;
pub use fetch::{FetchOutcome, FetchRequest, Source};
pub use node::{Node, NodeState, Status};
