//! `atoll`: the admin tool of an Atoll node. This file only parses the
//! command line; each verb is a few calls into the service crates.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use atoll_core::{
    ContentId, KeyDir, NodeKey,
    doc::{self, KeyId, Signatures, TrustSet},
};
use clap::{Parser, Subcommand};

mod blob;
mod relay;
mod wallet;

/// The admin tool of an Atoll home server.
///
/// Examples:
///   atoll keys init --dir ./keys      make this node's identity
///   atoll keys show --dir ./keys      print its node id and Nostr key
///   atoll hash film.mp4               print a file's content id
///   atoll doc keygen release.key      make a document-signing key
///   atoll doc sign --key release.key manifest.json
///   atoll doc verify manifest.json --trust ed25519:… --threshold 1
///   atoll blob add film.mp4           add a file to the swarm node
///   atoll blob get blake3:… -o film.mp4
///   atoll status                      what the swarm node is doing
#[derive(Debug, Parser)]
#[command(name = "atoll", version, verbatim_doc_comment)]
struct Cli {
    /// The swarm node's local API socket.
    #[arg(long, global = true, env = "ATOLL_SWARM_SOCKET", default_value = blob::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage this node's keys (node identity and Nostr key).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Print the BLAKE3 content id (`blake3:<hex>`) of files ("-" reads stdin).
    Hash {
        /// Files to hash.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Sign and verify documents (release manifests, catalogs, film entries).
    #[command(subcommand)]
    Doc(DocCmd),
    /// Add, fetch, list, pin and remove blobs on the swarm node.
    #[command(subcommand)]
    Blob(blob::BlobCmd),
    /// Show what the swarm node is doing.
    Status,
    /// The wallet: balance, tokens, invoices, the mint trust list.
    Wallet(wallet::WalletArgs),
    /// Relay admission: members files, tokens, "does this relay admit me?".
    #[command(subcommand)]
    Relay(relay::RelayCmd),
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Create node.key (ed25519, also the iroh endpoint key) and nostr.key
    /// in DIR. Refuses to overwrite existing keys.
    Init {
        /// Key directory.
        #[arg(long, env = "ATOLL_KEY_DIR")]
        dir: PathBuf,
    },
    /// Print the node id (iroh endpoint id) and the Nostr public key (npub).
    Show {
        /// Key directory.
        #[arg(long, env = "ATOLL_KEY_DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DocCmd {
    /// Create a new ed25519 document-signing key file and print its key id.
    Keygen {
        /// Where to write the secret key (mode 0600; never overwritten).
        key: PathBuf,
    },
    /// Print the key id (`ed25519:<hex>`) of a signing key file.
    KeyId {
        /// The secret key file.
        key: PathBuf,
    },
    /// Sign a JSON document; the signature is added to a detached
    /// signature file (default DOC.sig), created if needed.
    Sign {
        /// The signing key file.
        #[arg(long)]
        key: PathBuf,
        /// What kind of document this is: atoll/release,
        /// atoll/app-catalog, atoll/film or atoll/doc.
        #[arg(long, default_value = doc::CONTEXT_GENERIC)]
        context: String,
        /// Signature file (default: DOC.sig).
        #[arg(long)]
        sig: Option<PathBuf>,
        /// The JSON document.
        doc: PathBuf,
    },
    /// Verify a document against trusted keys; exits non-zero unless at
    /// least THRESHOLD distinct trusted keys signed it.
    Verify {
        /// Signature file (default: DOC.sig).
        #[arg(long)]
        sig: Option<PathBuf>,
        /// A trusted key id (repeatable).
        #[arg(long = "trust", value_name = "KEY_ID")]
        trust: Vec<KeyId>,
        /// A TOML trust file: `threshold = K` and `keys = ["ed25519:…", …]`.
        #[arg(long, conflicts_with_all = ["trust", "threshold"])]
        trust_file: Option<PathBuf>,
        /// How many trusted keys must have signed.
        #[arg(long, default_value_t = 1)]
        threshold: usize,
        /// Expected kind of document.
        #[arg(long, default_value = doc::CONTEXT_GENERIC)]
        context: String,
        /// The JSON document.
        doc: PathBuf,
    },
    /// Print the canonical JSON form that signatures cover.
    Canonical {
        /// The JSON document.
        doc: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            eprintln!("atoll: error: {}", atoll_core::service::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keys(KeysCmd::Init { dir }) => {
            let keys = KeyDir::new(&dir).init()?;
            println!("created keys in {}", dir.display());
            print_keys(&keys);
        }
        Command::Keys(KeysCmd::Show { dir }) => print_keys(&KeyDir::new(&dir).load()?),
        Command::Hash { files } => {
            let mut out = std::io::stdout().lock();
            for file in files {
                let id = if file == Path::new("-") {
                    ContentId::hash_reader(std::io::stdin().lock())
                } else {
                    ContentId::hash_file(&file)
                }
                .with_context(|| format!("cannot read {}", file.display()))?;
                writeln!(out, "{id}  {}", file.display())?;
            }
        }
        Command::Doc(cmd) => run_doc(cmd)?,
        Command::Blob(cmd) => {
            let client = atoll_core::local_api::LocalClient::new(&cli.socket);
            runtime()?.block_on(blob::run(&client, cmd))?;
        }
        Command::Wallet(args) => runtime()?.block_on(wallet::run(args))?,
        Command::Status => {
            let client = atoll_core::local_api::LocalClient::new(&cli.socket);
            runtime()?.block_on(blob::status(&client))?;
        }
        Command::Relay(cmd) => relay::run(cmd)?,
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time in seconds.
pub(crate) fn utc_minute(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn print_keys(keys: &atoll_core::NodeKeys) {
    println!("node id:   {}", keys.node.endpoint_id());
    println!("nostr key: {}", keys.nostr.npub());
}

fn sig_path(doc: &Path, sig: Option<PathBuf>) -> PathBuf {
    sig.unwrap_or_else(|| {
        let mut p = doc.as_os_str().to_owned();
        p.push(".sig");
        p.into()
    })
}

fn read_doc(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read document {}", path.display()))
}

fn run_doc(cmd: DocCmd) -> Result<()> {
    match cmd {
        DocCmd::Keygen { key } => {
            let k = NodeKey::generate();
            k.write(&key)?;
            println!("{}", KeyId::of(&k.public()));
        }
        DocCmd::KeyId { key } => println!("{}", KeyId::of(&NodeKey::read(&key)?.public())),
        DocCmd::Sign {
            key,
            context,
            sig,
            doc,
        } => {
            let key = NodeKey::read(&key)?;
            let document = read_doc(&doc)?;
            let sig = sig_path(&doc, sig);
            let mut sigs = match std::fs::read(&sig) {
                Ok(bytes) => serde_json::from_slice::<Signatures>(&bytes)
                    .with_context(|| format!("{} is not a signature file", sig.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Signatures::new(&context),
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", sig.display())),
            };
            if sigs.context != context {
                bail!(
                    "{} holds signatures for {:?}, not {context:?}",
                    sig.display(),
                    sigs.context
                );
            }
            sigs.add(&document, &key)?;
            let mut text = serde_json::to_string_pretty(&sigs)?;
            text.push('\n');
            atoll_core::fsutil::write_private_atomic(&sig, text.as_bytes(), true)
                .with_context(|| format!("cannot write {}", sig.display()))?;
            println!(
                "signed {} as {}; {} signature(s) in {}",
                doc.display(),
                KeyId::of(&key.public()),
                sigs.signatures.len(),
                sig.display()
            );
        }
        DocCmd::Verify {
            sig,
            trust,
            trust_file,
            threshold,
            context,
            doc,
        } => {
            let trust = match trust_file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read trust file {}", path.display()))?;
                    let set: TrustSet = toml::from_str(&text)
                        .with_context(|| format!("bad trust file {}", path.display()))?;
                    TrustSet::new(set.threshold, set.keys)?
                }
                None if trust.is_empty() => {
                    bail!("no trusted keys: give --trust KEY_ID or --trust-file FILE")
                }
                None => TrustSet::new(threshold, trust)?,
            };
            let document = read_doc(&doc)?;
            let sig = sig_path(&doc, sig);
            let bytes =
                std::fs::read(&sig).with_context(|| format!("cannot read {}", sig.display()))?;
            let sigs: Signatures = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a signature file", sig.display()))?;
            let verified = trust
                .verify(&document, &sigs, &context)
                .with_context(|| format!("{} is NOT verified", doc.display()))?;
            println!(
                "{}: verified ({} of {} required), signed by:",
                doc.display(),
                verified.signers.len(),
                trust.threshold
            );
            for signer in verified.signers {
                println!("  {signer}");
            }
        }
        DocCmd::Canonical { doc } => {
            let canonical = atoll_core::canonical::canonicalize(&read_doc(&doc)?)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&canonical)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::{Cli, utc_minute};

    #[test]
    fn unix_seconds_become_utc_dates() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_minute(1_795_992_242), "2026-11-29 22:44");
        assert_eq!(utc_minute(4_107_542_399), "2100-02-28 23:59");
        assert_eq!(utc_minute(-1), "1969-12-31 23:59");
    }

    /// Every verb, at every depth of clap's command tree, is named in its
    /// parent's help with a description, and answers `--help` itself.
    #[test]
    fn help_names_every_verb() {
        fn walk(cmd: &mut clap::Command, path: &str, seen: &mut usize) {
            let help = cmd.render_help().to_string();
            let names: Vec<String> = cmd
                .get_subcommands()
                .filter(|c| c.get_name() != "help")
                .map(|c| c.get_name().to_owned())
                .collect();
            for name in names {
                let sub = cmd.find_subcommand_mut(&name).expect("a listed subcommand");
                let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
                assert!(!about.is_empty(), "`{path} {name}` has no description");
                let line = help
                    .lines()
                    .find(|l| l.split_whitespace().next() == Some(name.as_str()))
                    .unwrap_or_else(|| panic!("`{path} --help` does not name `{name}`:\n{help}"));
                let first: Vec<&str> = about.split_whitespace().take(3).collect();
                assert!(
                    line.contains(&first.join(" ")),
                    "`{path} --help` does not describe `{name}`:\n{help}"
                );
                *seen += 1;
                walk(sub, &format!("{path} {name}"), seen);
            }
        }
        Cli::command().debug_assert();
        let mut cmd = Cli::command();
        cmd.build();
        let mut seen = 0;
        walk(&mut cmd, "atoll", &mut seen);
        // The top-level verbs at least: keys, hash, doc, blob, status,
        // wallet, relay and their own verbs.
        assert!(seen > 7, "{seen}");
    }
}
