//! `atoll relay …`: a relay's members file, this node's admission token,
//! and "does this relay admit me?".

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use atoll_core::{KeyDir, admission};
use atoll_relay::{
    client::{self, CheckOutcome},
    members,
};
use clap::Subcommand;

/// `atoll relay` verbs.
#[derive(Debug, Subcommand)]
pub enum RelayCmd {
    /// Edit or list a relay's members file (one npub per line). The relay
    /// re-reads it within a second; removed members are cut off.
    #[command(subcommand)]
    Members(MembersCmd),
    /// Print an admission token for this node's endpoint at a relay.
    Token {
        /// Key directory of the node.
        #[arg(long, env = "ATOLL_KEY_DIR")]
        dir: PathBuf,
        /// The relay's URL, e.g. `https://relay.example.org`.
        #[arg(long)]
        relay: String,
        /// Token lifetime in hours (at most 168).
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
    /// Dial a relay with this node's token: is it admitted or refused?
    /// Exits non-zero unless admitted.
    Check {
        /// The relay's URL.
        url: String,
        /// Key directory of the node.
        #[arg(long, env = "ATOLL_KEY_DIR")]
        dir: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
        /// Also trust the CA certificates in this PEM file (a relay with a
        /// private or self-signed certificate).
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
}

/// `atoll relay members` verbs.
#[derive(Debug, Subcommand)]
pub enum MembersCmd {
    /// Add keys (npub1… or hex) to the members file, creating it if needed.
    Add {
        /// The members file.
        #[arg(long)]
        file: PathBuf,
        /// Nostr public keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Remove keys from the members file.
    Rm {
        /// The members file.
        #[arg(long)]
        file: PathBuf,
        /// Nostr public keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// List the members in the file (npub form).
    Ls {
        /// The members file.
        #[arg(long)]
        file: PathBuf,
    },
}

fn parse_keys(keys: &[String]) -> Result<Vec<nostr::PublicKey>> {
    keys.iter()
        .map(|k| members::parse_pubkey(k).with_context(|| format!("{k:?}")))
        .collect()
}

/// Runs an `atoll relay` verb.
pub fn run(cmd: RelayCmd) -> Result<()> {
    match cmd {
        RelayCmd::Members(MembersCmd::Add { file, keys }) => {
            for key in parse_keys(&keys)? {
                let added = members::add_member(&file, &key)?;
                let npub = members::npub(&key);
                println!(
                    "{} {npub}",
                    if added { "added" } else { "already a member:" }
                );
            }
        }
        RelayCmd::Members(MembersCmd::Rm { file, keys }) => {
            let mut missing = Vec::new();
            for key in parse_keys(&keys)? {
                let npub = members::npub(&key);
                if members::remove_member(&file, &key)? {
                    println!("removed {npub}");
                } else {
                    missing.push(npub);
                }
            }
            if !missing.is_empty() {
                bail!("not in {}: {}", file.display(), missing.join(", "));
            }
        }
        RelayCmd::Members(MembersCmd::Ls { file }) => {
            let mut all: Vec<String> = members::read_members_file(&file)?
                .iter()
                .map(members::npub)
                .collect();
            all.sort();
            for m in all {
                println!("{m}");
            }
        }
        RelayCmd::Token {
            dir,
            relay,
            ttl_hours,
        } => {
            let keys = KeyDir::new(&dir).load()?;
            let ttl = Duration::from_secs(ttl_hours.saturating_mul(3600));
            let token = admission::sign(keys.nostr.keys(), &relay, &keys.node.endpoint_id(), ttl)?;
            println!("{token}");
        }
        RelayCmd::Check {
            url,
            dir,
            timeout_secs,
            ca_cert,
        } => {
            let keys = KeyDir::new(&dir).load()?;
            let relay_url: iroh::RelayUrl = url
                .parse()
                .with_context(|| format!("{url:?} is not a URL"))?;
            let secret = keys.node.to_iroh();
            let token = admission::sign(
                keys.nostr.keys(),
                &url,
                &secret.public(),
                Duration::from_secs(600),
            )?;
            let roots = client::roots(ca_cert.as_deref())?;
            let timeout = Duration::from_secs(timeout_secs.max(1));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let outcome = runtime.block_on(client::check_admission(
                &relay_url, &secret, &token, roots, timeout,
            ))?;
            match outcome {
                CheckOutcome::Admitted => println!(
                    "admitted: {url} lets in {} (endpoint {})",
                    keys.nostr.npub(),
                    secret.public()
                ),
                CheckOutcome::Refused { reason } => bail!("refused by {url}: {reason}"),
            }
        }
    }
    Ok(())
}
