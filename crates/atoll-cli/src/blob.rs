//! `atoll blob …` and `atoll status`: the swarm node's local API from the
//! command line.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use atoll_core::{ContentId, local_api::LocalClient};
use atoll_swarm::{
    FetchOutcome, FetchRequest, Source, Status,
    api::{PaymentsAnswer, Removed, TicketAnswer},
    fetch::Progress,
    store::{BlobInfo, Direction},
};
use clap::Subcommand;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use iroh_blobs::ticket::BlobTicket;
use tokio::io::AsyncWriteExt;

/// Default socket of the swarm node (NixOS module, systemd RuntimeDirectory).
pub const DEFAULT_SOCKET: &str = "/run/atoll-swarm/swarmd.sock";

/// `atoll blob` verbs.
#[derive(Debug, Subcommand)]
pub enum BlobCmd {
    /// Add a file to the node (it is seeded unless --no-seed).
    Add {
        /// The file.
        file: PathBuf,
        /// Pin it (never evicted by the storage quota).
        #[arg(long)]
        pin: bool,
        /// Do not advertise it to peers.
        #[arg(long)]
        no_seed: bool,
    },
    /// Fetch a blob (from peers, else origins), verify it, and write it to a file.
    Get {
        /// Content id (`blake3:<hex>`); not needed with --ticket.
        #[arg(required_unless_present = "ticket")]
        id: Option<ContentId>,
        /// Where to write it ("-" for stdout).
        #[arg(short, long)]
        output: PathBuf,
        /// An HTTP URL of the blob to fall back to (repeatable).
        #[arg(long = "origin", value_name = "URL")]
        origins: Vec<String>,
        /// An iroh-blobs ticket naming the blob and a peer that has it.
        #[arg(long)]
        ticket: Option<BlobTicket>,
    },
    /// Print a ticket with which any iroh-blobs client can download a blob from this node.
    Ticket {
        /// Content id.
        id: ContentId,
    },
    /// List held blobs.
    Ls,
    /// Pin a blob: never evicted.
    Pin {
        /// Content id.
        id: ContentId,
    },
    /// Unpin a blob.
    Unpin {
        /// Content id.
        id: ContentId,
    },
    /// Forget a blob (and withdraw its advert).
    Rm {
        /// Content id.
        id: ContentId,
    },
    /// Advertise a blob to peers.
    Seed {
        /// Content id.
        id: ContentId,
    },
    /// Stop advertising a blob.
    Unseed {
        /// Content id.
        id: ContentId,
    },
    /// Mark a blob as paid content: peers pay for it when this node charges
    /// (`[payment]` in the node's config; trusted peers never pay).
    Charge {
        /// Content id.
        id: ContentId,
    },
    /// Serve a blob free again.
    Free {
        /// Content id.
        id: ContentId,
    },
    /// What this node earned serving paid blobs and spent fetching them.
    Payments {
        /// Show at most this many payments, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    let pb = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{msg:8} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_owned());
    // Only show up for transfers that take more than a moment.
    pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    pb
}

fn show_after_a_moment(pb: &ProgressBar) -> tokio::task::JoinHandle<()> {
    let pb = pb.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    })
}

/// Runs `atoll status`.
pub async fn status(client: &LocalClient) -> Result<()> {
    let s: Status = client.get("/status").await?;
    println!("node id:      {}", s.node_id);
    println!("nostr key:    {}", s.npub);
    let addrs: Vec<String> = s.addr.ip_addrs().map(ToString::to_string).collect();
    println!(
        "addresses:    {}",
        if addrs.is_empty() {
            "-".into()
        } else {
            addrs.join(", ")
        }
    );
    println!(
        "iroh relays:  {}",
        if s.relays.is_empty() {
            "-".into()
        } else {
            s.relays.join(", ")
        }
    );
    println!(
        "nostr relays: {}",
        if s.nostr_relays.is_empty() {
            "-".into()
        } else {
            s.nostr_relays.join(", ")
        }
    );
    let quota = if s.quota_bytes == 0 {
        "no quota".into()
    } else {
        format!("of {}", human(s.quota_bytes))
    };
    println!(
        "blobs:        {} ({} {quota})",
        s.blobs,
        human(s.used_bytes)
    );
    if !s.fetching.is_empty() {
        println!(
            "fetching:     {}",
            s.fetching
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !s.avoided_peers.is_empty() {
        println!("avoiding:     {}", s.avoided_peers.join(", "));
    }
    println!("uptime:       {} s", s.uptime_secs);
    Ok(())
}

/// Runs one `atoll blob` verb.
pub async fn run(client: &LocalClient, cmd: BlobCmd) -> Result<()> {
    match cmd {
        BlobCmd::Add { file, pin, no_seed } => {
            let info = upload(client, &file).await?;
            if pin {
                let _: BlobInfo = client
                    .put(&format!("/blobs/{}/pin", info.id.to_hex()))
                    .await?;
            }
            if no_seed {
                let _: BlobInfo = client
                    .delete(&format!("/blobs/{}/seed", info.id.to_hex()))
                    .await?;
            }
            println!("{}  {} ({})", info.id, file.display(), human(info.size));
        }
        BlobCmd::Get {
            id,
            output,
            origins,
            ticket,
        } => {
            let (id, peers) = match (&ticket, id) {
                (Some(t), Some(id)) if ContentId::from_bytes(*t.hash().as_bytes()) != id => {
                    bail!("the ticket is for blake3:{}, not {id}", t.hash().to_hex())
                }
                (Some(t), _) => (
                    ContentId::from_bytes(*t.hash().as_bytes()),
                    vec![t.addr().clone()],
                ),
                (None, Some(id)) => (id, vec![]),
                (None, None) => bail!("give a content id or --ticket"),
            };
            let out = fetch(client, id, peers, origins).await?;
            match &out.source {
                Source::Local => eprintln!("{id}: already held"),
                Source::Peers(p) => eprintln!("{id}: fetched from peer(s) {}", p.join(", ")),
                Source::Origin(o) => eprintln!("{id}: fetched from origin {o}"),
            }
            for (p, e) in &out.failed_peers {
                eprintln!("  peer {p} failed and is avoided: {e}");
            }
            for (o, e) in &out.failed_origins {
                eprintln!("  origin {o} failed: {e}");
            }
            download(client, &id, out.size, &output).await?;
        }
        BlobCmd::Ticket { id } => {
            let t: TicketAnswer = client
                .get(&format!("/blobs/{}/ticket", id.to_hex()))
                .await?;
            println!("{}", t.ticket);
        }
        BlobCmd::Ls => {
            let list: Vec<BlobInfo> = client.get("/blobs").await?;
            if list.is_empty() {
                println!("no blobs");
            }
            for b in list {
                let flags = format!(
                    "{}{}{}",
                    if b.pinned { "pinned " } else { "" },
                    if b.seeding { "seeding " } else { "" },
                    if b.paid { "paid" } else { "" }
                );
                println!("{}  {:>10}  {}", b.id, human(b.size), flags.trim());
            }
        }
        BlobCmd::Pin { id } => {
            let _: BlobInfo = client.put(&format!("/blobs/{}/pin", id.to_hex())).await?;
            println!("{id}: pinned");
        }
        BlobCmd::Unpin { id } => {
            let _: BlobInfo = client
                .delete(&format!("/blobs/{}/pin", id.to_hex()))
                .await?;
            println!("{id}: unpinned");
        }
        BlobCmd::Seed { id } => {
            let _: BlobInfo = client.put(&format!("/blobs/{}/seed", id.to_hex())).await?;
            println!("{id}: seeding");
        }
        BlobCmd::Unseed { id } => {
            let _: BlobInfo = client
                .delete(&format!("/blobs/{}/seed", id.to_hex()))
                .await?;
            println!("{id}: not seeding");
        }
        BlobCmd::Charge { id } => {
            let _: BlobInfo = client.put(&format!("/blobs/{}/paid", id.to_hex())).await?;
            println!("{id}: paid content (peers pay when this node charges)");
        }
        BlobCmd::Free { id } => {
            let _: BlobInfo = client
                .delete(&format!("/blobs/{}/paid", id.to_hex()))
                .await?;
            println!("{id}: free");
        }
        BlobCmd::Payments { limit } => {
            let p: PaymentsAnswer = client.get("/payments").await?;
            println!(
                "earned {} sat, spent {} sat (fees included)",
                p.totals.revenue_sat, p.totals.spent_sat
            );
            for e in p.entries.iter().take(limit) {
                let way = match e.direction {
                    Direction::Revenue => "earned",
                    Direction::Spending => "spent ",
                };
                println!(
                    "{}  {way} {:>6} sat  fee {:>3}  {}  {}  peer {}",
                    e.at,
                    e.amount_sat,
                    e.fee_sat,
                    human(e.bytes),
                    e.id,
                    e.peer
                );
            }
        }
        BlobCmd::Rm { id } => {
            let r: Removed = client.delete(&format!("/blobs/{}", id.to_hex())).await?;
            if !r.removed {
                bail!("{id} was not held");
            }
            println!("{id}: removed");
        }
    }
    Ok(())
}

async fn upload(client: &LocalClient, file: &Path) -> Result<BlobInfo> {
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let size = f.metadata().await?.len();
    let pb = bar(Some(size), "adding");
    let shown = show_after_a_moment(&pb);
    let sent = Arc::new(AtomicU64::new(0));
    let pb2 = pb.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).map(move |chunk| {
        if let Ok(c) = &chunk {
            pb2.set_position(sent.fetch_add(c.len() as u64, Ordering::Relaxed) + c.len() as u64);
        }
        chunk.map(hyper::body::Frame::data)
    });
    let body = http_body_util::StreamBody::new(stream);
    let resp = client
        .request(
            Method::POST,
            "/blobs",
            Some("application/octet-stream"),
            body,
        )
        .await?;
    let resp = LocalClient::check(resp).await?;
    let bytes = resp.into_body().collect().await?.to_bytes();
    shown.abort();
    pb.finish_and_clear();
    let info: BlobInfo = serde_json::from_slice(&bytes)?;
    // The node hashed what it received; it must be what we sent.
    let local = ContentId::hash_file(file)?;
    if local != info.id {
        bail!(
            "the node stored {} but the file hashes to {local} (it changed while adding?)",
            info.id
        );
    }
    Ok(info)
}

async fn fetch(
    client: &LocalClient,
    id: ContentId,
    peers: Vec<iroh::EndpointAddr>,
    origins: Vec<String>,
) -> Result<FetchOutcome> {
    let req = FetchRequest {
        id: Some(id),
        peers,
        origins,
        no_adverts: false,
    };
    let pb = bar(None, "fetching");
    let shown = show_after_a_moment(&pb);
    let poller = {
        let client = client.clone();
        let pb = pb.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(p) = client
                    .get::<Progress>(&format!("/fetch/{}", id.to_hex()))
                    .await
                {
                    if let Some(t) = p.total {
                        pb.set_length(t);
                    }
                    pb.set_position(p.bytes);
                    pb.set_message(p.phase);
                }
            }
        })
    };
    let result: Result<FetchOutcome, _> = client.post("/fetch", &req).await;
    poller.abort();
    shown.abort();
    pb.finish_and_clear();
    Ok(result?)
}

/// Streams the blob to `output`, hashing as it goes; the file appears
/// only when its hash is right.
async fn download(client: &LocalClient, id: &ContentId, size: u64, output: &Path) -> Result<()> {
    let resp = client
        .request(
            Method::GET,
            &format!("/blobs/{}", id.to_hex()),
            None,
            http_body_util::Empty::<bytes::Bytes>::new(),
        )
        .await?;
    let resp = LocalClient::check(resp).await?;
    let mut body = resp.into_body();
    let mut hasher = blake3::Hasher::new();
    let to_stdout = output == Path::new("-");
    let part = PathBuf::from(format!("{}.part", output.display()));
    let mut file = if to_stdout {
        None
    } else {
        Some(
            tokio::fs::File::create(&part)
                .await
                .with_context(|| format!("cannot create {}", part.display()))?,
        )
    };
    let mut stdout = tokio::io::stdout();
    let pb = bar(Some(size), "writing");
    let shown = show_after_a_moment(&pb);
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            match &mut file {
                Some(f) => f.write_all(&data).await?,
                None => stdout.write_all(&data).await?,
            }
            written += data.len() as u64;
            pb.set_position(written);
        }
    }
    shown.abort();
    pb.finish_and_clear();
    let got = ContentId::from(hasher.finalize());
    if got != *id {
        if file.is_some() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        bail!("the node sent bytes hashing to {got}, not {id}; nothing written");
    }
    if let Some(mut f) = file {
        f.flush().await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&part, output).await?;
        eprintln!(
            "{id}: verified, {} written to {}",
            human(written),
            output.display()
        );
    } else {
        stdout.flush().await?;
    }
    Ok(())
}
