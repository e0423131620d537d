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
use atoll_core::fsutil::safe_relative_path;
use atoll_core::{ContentId, local_api::LocalClient};
use atoll_swarm::{
    FetchOutcome, FetchRequest, Source, Status,
    api::{ImportRequest, PaymentsAnswer, Removed, ResolveAnswer, ResolveRequest, TicketAnswer},
    fetch::Progress,
    store::{BlobInfo, Direction},
};
use clap::Subcommand;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use iroh_blobs::{BlobFormat, ticket::BlobTicket};
use tokio::io::AsyncWriteExt;

/// Default socket of the swarm node (NixOS module, systemd RuntimeDirectory).
pub const DEFAULT_SOCKET: &str = "/run/atoll-swarm/swarmd.sock";

/// `atoll blob` verbs.
#[derive(Debug, Subcommand)]
pub enum BlobCmd {
    /// Add a file to the node: streamed to it over the socket (seeded
    /// unless --no-seed).
    Add {
        /// The file.
        file: PathBuf,
        /// Pin it (never evicted by the storage quota).
        #[arg(long)]
        pin: bool,
        /// Do not advertise it to peers (nothing is published; `atoll blob
        /// seed ID` starts seeding later).
        #[arg(long)]
        no_seed: bool,
        /// Let the node read the file itself instead of streaming it (no
        /// copy through the socket). Only for files in the node's
        /// `import.dirs`; the node refuses anything else.
        #[arg(long)]
        import: bool,
    },
    /// Fetch a blob (from peers, else origins), verify it, and write it to a file.
    ///
    /// With a collection ticket (from `atoll blob ticket` or `sendme send`)
    /// the collection's files are fetched: one file is written to OUTPUT,
    /// several go into the directory OUTPUT under their (checked) names.
    Get {
        /// Content id (`blake3:<hex>`); not needed with --ticket. With a
        /// collection ticket, the id of one of its files fetches only that.
        #[arg(required_unless_present = "ticket")]
        id: Option<ContentId>,
        /// Where to write it ("-" for stdout); a directory for a
        /// collection of several files.
        #[arg(short, long)]
        output: PathBuf,
        /// An HTTP URL of the blob to fall back to (repeatable).
        #[arg(long = "origin", value_name = "URL")]
        origins: Vec<String>,
        /// An iroh-blobs ticket (a blob or a collection) naming a peer that
        /// has it.
        #[arg(long)]
        ticket: Option<BlobTicket>,
    },
    /// Print a ticket with which others download a blob from this node.
    ///
    /// By default a one-file collection ticket, which `sendme receive` and
    /// `atoll blob get --ticket` both take (stock iroh tools ask for
    /// collections, and a collection carries the file's name). --raw
    /// prints the plain blob ticket for clients that fetch one blob by
    /// hash.
    Ticket {
        /// Content id.
        id: ContentId,
        /// The file name the receiver gets (default: the hex id).
        #[arg(long, conflicts_with = "raw")]
        name: Option<String>,
        /// A raw blob ticket instead of a collection.
        #[arg(long)]
        raw: bool,
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
        BlobCmd::Add {
            file,
            pin,
            no_seed,
            import,
        } => {
            let info = if import {
                import_file(client, &file, !no_seed).await?
            } else {
                upload(client, &file, !no_seed).await?
            };
            if pin {
                let _: BlobInfo = client
                    .put(&format!("/blobs/{}/pin", info.id.to_hex()))
                    .await?;
            }
            if no_seed && info.seeding {
                eprintln!(
                    "{}: already held and seeded; `atoll blob unseed {}` stops seeding it",
                    info.id, info.id
                );
            }
            println!("{}  {} ({})", info.id, file.display(), human(info.size));
        }
        BlobCmd::Get {
            id,
            output,
            origins,
            ticket,
        } => match &ticket {
            Some(t) if t.format() == BlobFormat::HashSeq => {
                get_collection(client, t, id, origins, &output).await?;
            }
            Some(t) => {
                let tid = ContentId::from_bytes(*t.hash().as_bytes());
                if id.is_some_and(|id| id != tid) {
                    bail!("the ticket is for {tid}, not the id given");
                }
                get_one(client, tid, vec![t.addr().clone()], origins, &output).await?;
            }
            None => {
                let id = id.context("give a content id or --ticket")?;
                get_one(client, id, vec![], origins, &output).await?;
            }
        },
        BlobCmd::Ticket { id, name, raw } => {
            let mut uri = format!(
                "/blobs/{}/ticket?format={}",
                id.to_hex(),
                if raw { "raw" } else { "collection" }
            );
            if let Some(name) = &name {
                uri.push_str("&name=");
                uri.push_str(&query_escape(name));
            }
            let t: TicketAnswer = client.get(&uri).await?;
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
                    crate::utc_minute(i64::try_from(e.at).unwrap_or(i64::MAX)),
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

/// Percent-encodes a query value (everything but unreserved characters).
fn query_escape(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fetches one blob and writes it to `output`, reporting where it came
/// from.
async fn get_one(
    client: &LocalClient,
    id: ContentId,
    peers: Vec<iroh::EndpointAddr>,
    origins: Vec<String>,
    output: &Path,
) -> Result<()> {
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
    download(client, &id, out.size, output).await
}

/// `atoll blob get --ticket` with a collection ticket: the node reads the
/// collection's names and ids from the ticket's peer, then each file is
/// fetched and written like a single blob. Every name is checked before
/// anything is fetched; the hash sequence itself is never written.
async fn get_collection(
    client: &LocalClient,
    ticket: &BlobTicket,
    only: Option<ContentId>,
    origins: Vec<String>,
    output: &Path,
) -> Result<()> {
    let peers = vec![ticket.addr().clone()];
    let answer: Result<ResolveAnswer, _> = client
        .post(
            "/collections/resolve",
            &ResolveRequest {
                ticket: ticket.to_string(),
            },
        )
        .await;
    let mut entries = match (answer, only) {
        (Ok(a), _) => a.entries,
        // The id is known: the ticket's peer is only a hint, and other
        // seeders or the origins may still have it.
        (Err(e), Some(id)) => {
            eprintln!(
                "(cannot read the collection from the ticket's peer: {e}; fetching {id} anyway)"
            );
            return get_one(client, id, peers, origins, output).await;
        }
        (Err(e), None) => {
            return Err(e).context("reading the collection from the ticket's peer");
        }
    };
    if let Some(id) = only {
        entries.retain(|e| e.id == id);
        if entries.is_empty() {
            bail!("{id} is not a file of this collection");
        }
        entries.truncate(1);
    }
    match entries.as_slice() {
        [] => bail!("the collection is empty: nothing to write"),
        [one] => {
            if safe_relative_path(&one.name).is_none() {
                eprintln!("(the file's name in the collection is unsafe; ignored)");
            }
            get_one(client, one.id, peers, origins, output).await
        }
        many => {
            if output == Path::new("-") {
                bail!(
                    "the collection holds {} files: give a directory with -o, not -",
                    many.len()
                );
            }
            // Every name is checked before anything is fetched.
            let mut targets = Vec::with_capacity(many.len());
            for (i, e) in many.iter().enumerate() {
                let rel = safe_relative_path(&e.name).with_context(|| {
                    format!(
                        "file {} of the collection has an unsafe name (absolute, '..', \
                         control characters or too long); nothing written",
                        i + 1
                    )
                })?;
                if targets
                    .iter()
                    .any(|(r, _): &(PathBuf, ContentId)| r == &rel)
                {
                    bail!(
                        "file {} of the collection repeats a name; nothing written",
                        i + 1
                    );
                }
                targets.push((rel, e.id));
            }
            prepare_dir(output)?;
            eprintln!(
                "collection of {} files into {}",
                targets.len(),
                output.display()
            );
            for (rel, id) in targets {
                let target = inside(output, &rel)?;
                get_one(client, id, peers.clone(), origins.clone(), &target).await?;
            }
            Ok(())
        }
    }
}

/// Creates `dir` (refusing a symlink or a non-directory in its place).
fn prepare_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "{} exists and is not a directory (a collection of several files needs one)",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot use {}", dir.display())),
    }
}

/// `root/rel`, creating the directories between; none of them may be a
/// symlink (one planted inside `root` would lead out of it).
fn inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        if i + 1 == parts.len() {
            break;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is in the way (not a directory)", at.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)
                .with_context(|| format!("cannot create {}", at.display()))?,
            Err(e) => return Err(e).with_context(|| format!("cannot use {}", at.display())),
        }
    }
    Ok(at)
}

/// `POST /blobs/import`: the node reads the file itself.
async fn import_file(client: &LocalClient, file: &Path, seed: bool) -> Result<BlobInfo> {
    let path =
        std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    client
        .post(
            &format!("/blobs/import?seed={seed}"),
            &ImportRequest { path },
        )
        .await
        .with_context(|| format!("the node did not import {}", file.display()))
}

async fn upload(client: &LocalClient, file: &Path, seed: bool) -> Result<BlobInfo> {
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
            &format!("/blobs?seed={seed}"),
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

/// A new temp file next to `output` (same directory, so the final rename
/// is atomic): `O_CREAT | O_EXCL` with a random name, mode 0666 less the
/// umask like any new file.
fn partial_file(output: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = output
        .file_name()
        .with_context(|| format!("{} names no file", output.display()))?;
    tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".part")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))
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
    // The partial file: a new, randomly named file in the target directory
    // (created exclusively, so nothing planted there is followed or
    // overwritten), renamed over OUTPUT once verified, removed otherwise.
    let part = if to_stdout {
        None
    } else {
        Some(partial_file(output)?)
    };
    let mut file = match &part {
        Some(p) => Some(tokio::fs::File::from_std(p.as_file().try_clone()?)),
        None => None,
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
        // Dropping `part` removes it.
        bail!("the node sent bytes hashing to {got}, not {id}; nothing written");
    }
    if let (Some(mut f), Some(part)) = (file, part) {
        f.flush().await?;
        f.sync_all().await?;
        drop(f);
        part.persist(output)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", output.display()))?;
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
