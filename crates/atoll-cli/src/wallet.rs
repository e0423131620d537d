//! `atoll wallet …`: the wallet daemon's local API from the command line.

use std::path::PathBuf;

use anyhow::{Result, bail};
use atoll_core::local_api::LocalClient;
use atoll_wallet::{
    Balance, HistoryEntry, Invoice, InvoicePaid, PayRequest, Payment, Received, Restored,
    api::{ClaimRequest, Claimed, InvoiceRequest, MintEntry, PayInvoiceRequest, ReceiveRequest},
};
use clap::Subcommand;

/// Default socket of the wallet daemon (NixOS module).
pub const DEFAULT_SOCKET: &str = "/run/atoll-wallet/walletd.sock";

/// `atoll wallet` verbs.
#[derive(Debug, Subcommand)]
pub enum WalletCmd {
    /// Show the balance, per mint.
    Balance,
    /// Receive a Cashu token (cashuA…/cashuB…): it is swapped at its mint,
    /// which must be trusted.
    Receive {
        /// The token.
        token: String,
        /// Refuse a token worth less than this (sat).
        #[arg(long, default_value_t = 1)]
        min_sat: u64,
    },
    /// Make a Cashu token worth AMOUNT sat for someone who accepts MINT's ecash.
    Send {
        /// Amount the receiver gets, in sat.
        amount_sat: u64,
        /// A mint the receiver accepts (repeatable; preferred first).
        #[arg(long = "mint", required = true)]
        mints: Vec<String>,
        /// The most the payment may cost in fees, in sat.
        #[arg(long, default_value_t = 10)]
        max_fee_sat: u64,
    },
    /// Ask MINT for a Lightning invoice; once it is paid, `atoll wallet claim` mints the ecash.
    Invoice {
        /// The mint.
        #[arg(long)]
        mint: String,
        /// Amount in sat.
        amount_sat: u64,
    },
    /// Mint the ecash of a paid invoice.
    Claim {
        /// The mint.
        #[arg(long)]
        mint: String,
        /// The quote id printed by `atoll wallet invoice`.
        quote_id: String,
    },
    /// Pay a Lightning invoice from MINT's ecash (counts against the budget).
    PayInvoice {
        /// The mint to pay from.
        #[arg(long)]
        mint: String,
        /// The BOLT11 invoice.
        bolt11: String,
    },
    /// Recent payments, receipts and swaps, newest first (times in UTC).
    History {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print the entries as JSON (times in Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// The mint trust list.
    #[command(subcommand)]
    Mints(MintsCmd),
    /// Recover all unspent ecash from the trusted mints with the seed.
    Restore,
}

/// `atoll wallet mints` verbs.
#[derive(Debug, Subcommand)]
pub enum MintsCmd {
    /// List trusted mints and their balances.
    Ls,
    /// Trust a mint: accept its tokens, hold and swap into its ecash.
    Trust {
        /// The mint URL.
        mint: String,
    },
    /// Stop trusting a mint.
    Untrust {
        /// The mint URL.
        mint: String,
    },
}

/// The wallet socket option.
#[derive(Debug, clap::Args)]
pub struct WalletArgs {
    /// The wallet daemon's local API socket.
    #[arg(long = "wallet-socket", env = "ATOLL_WALLET_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    /// What to do.
    pub cmd: WalletCmd,
}

fn mint_path(mint: &str) -> String {
    let mut out = String::new();
    for b in mint.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/mints/{out}")
}

/// Runs one `atoll wallet` verb.
pub async fn run(args: WalletArgs) -> Result<()> {
    let client = LocalClient::new(&args.socket);
    match args.cmd {
        WalletCmd::Balance => {
            let b: Balance = client.get("/balance").await?;
            println!("total: {} sat", b.total_sat);
            for (mint, sat) in b.mints {
                println!("  {sat:>10} sat  {mint}");
            }
        }
        WalletCmd::Receive { token, min_sat } => {
            let r: Received = client
                .post(
                    "/receive",
                    &ReceiveRequest {
                        token,
                        expected_amount_sat: min_sat,
                        expected_mints: vec![],
                    },
                )
                .await?;
            println!(
                "received {} sat at {} (fee {} sat)",
                r.amount_sat, r.mint, r.fee_sat
            );
        }
        WalletCmd::Send {
            amount_sat,
            mints,
            max_fee_sat,
        } => {
            if amount_sat == 0 {
                bail!("the amount must be more than 0");
            }
            let p: Payment = client
                .post(
                    "/pay",
                    &PayRequest {
                        accepted_mints: mints,
                        amount_sat,
                        max_fee_sat,
                        purpose: "atoll wallet send".into(),
                        reclaim_after_secs: None,
                    },
                )
                .await?;
            eprintln!(
                "{} sat from {} (fee {} sat):",
                p.amount_sat, p.mint, p.fee_sat
            );
            println!("{}", p.token);
        }
        WalletCmd::Invoice { mint, amount_sat } => {
            let i: Invoice = client
                .post("/invoice", &InvoiceRequest { mint, amount_sat })
                .await?;
            println!("{}", i.bolt11);
            eprintln!(
                "pay it, then: atoll wallet claim --mint {} {}",
                i.mint, i.quote_id
            );
        }
        WalletCmd::Claim { mint, quote_id } => {
            let c: Claimed = client
                .post("/invoice/claim", &ClaimRequest { mint, quote_id })
                .await?;
            println!("minted {} sat", c.minted_sat);
        }
        WalletCmd::PayInvoice { mint, bolt11 } => {
            let p: InvoicePaid = client
                .post("/pay-invoice", &PayInvoiceRequest { mint, bolt11 })
                .await?;
            println!(
                "paid {} sat from {} (fee {} sat)",
                p.amount_sat, p.mint, p.fee_sat
            );
        }
        WalletCmd::History { limit, json } => {
            let h: Vec<HistoryEntry> = client.get(&format!("/history?limit={limit}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&h)?);
                return Ok(());
            }
            if h.is_empty() {
                println!("no history");
            }
            for e in h {
                println!(
                    "{}  {:<12} {:>8} sat  fee {:>4}  {}",
                    crate::utc_minute(e.at),
                    e.kind,
                    e.amount_sat,
                    e.fee_sat,
                    e.mint
                );
            }
        }
        WalletCmd::Mints(MintsCmd::Ls) => {
            let m: Vec<MintEntry> = client.get("/mints").await?;
            if m.is_empty() {
                println!("no trusted mints: atoll wallet mints trust URL");
            }
            for e in m {
                println!("{:>10} sat  {}", e.balance_sat, e.mint);
            }
        }
        WalletCmd::Mints(MintsCmd::Trust { mint }) => {
            let e: MintEntry = client.put(&mint_path(&mint)).await?;
            println!("trusted {}", e.mint);
        }
        WalletCmd::Mints(MintsCmd::Untrust { mint }) => {
            let e: MintEntry = client.delete(&mint_path(&mint)).await?;
            println!(
                "no longer trusted: {} ({} sat still held)",
                e.mint, e.balance_sat
            );
        }
        WalletCmd::Restore => {
            let r: Vec<Restored> = client.post("/restore", &serde_json::json!({})).await?;
            for e in r {
                println!(
                    "{}: {} sat restored, {} sat found spent",
                    e.mint, e.unspent_sat, e.spent_sat
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mint_urls_are_one_path_segment() {
        assert_eq!(
            super::mint_path("http://127.0.0.1:3338"),
            "/mints/http%3A%2F%2F127.0.0.1%3A3338"
        );
        assert_eq!(
            super::mint_path("https://m.example/a b"),
            "/mints/https%3A%2F%2Fm.example%2Fa%20b"
        );
    }
}
