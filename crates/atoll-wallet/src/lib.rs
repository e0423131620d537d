#![doc = include_str!("../README.md")]

pub mod api;
pub mod config;
pub mod pay;
pub mod rotate;
pub mod seed;
pub mod store;
pub mod wallet;

pub use config::WalletConfig;
pub use pay::{CrashPoint, PayError, PayRequest, Payment, ResumeReport, Route};
pub use rotate::Rotated;
pub use store::{HistoryEntry, RouteStats, SwapStep};
pub use wallet::{
    Balance, Budget, Invoice, InvoicePaid, MintError, MintPacing, ReceiveError, Received, Restored,
    Wallet, WalletBuilder, WalletError, normalize_mint_url,
};
