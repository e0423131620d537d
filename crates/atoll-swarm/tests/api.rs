//! The swarm node's local API and endpoint as an attacker on the socket
//! (or a careless config) would try them: imports of the node's own
//! secrets and of things that are not files, oversized JSON, uploads that
//! must not be seeded, where the endpoint listens, and collection tickets
//! that stock iroh tools understand.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use atoll_core::ContentId;
use atoll_swarm::{api::TicketAnswer, store::BlobInfo};
use atoll_testkit::TestNostrRelay;
use common::{TestNode, data};
use hyper::Method;
use iroh_blobs::{BlobFormat, format::collection::Collection, ticket::BlobTicket};

async fn import(node: &TestNode, path: &std::path::Path) -> (u16, String) {
    let body = serde_json::to_vec(&serde_json::json!({ "path": path })).unwrap();
    let (status, answer) = node
        .client()
        .send(Method::POST, "/blobs/import", Some(body))
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn import_never_reads_the_node_secrets_or_non_files() {
    let outside = tempfile::tempdir().unwrap();
    let inbox = outside.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let dirs = vec![inbox.clone()];
    let node = TestNode::spawn("import", |c| {
        c.import.dirs = dirs;
        c.import.max_bytes = 1 << 20;
    })
    .await;
    let keys = node.dir.state().join("keys");
    let secrets = [keys.join("node.key"), keys.join("nostr.key")];
    for s in &secrets {
        assert!(s.exists(), "{}", s.display());
    }
    std::os::unix::fs::symlink(&secrets[0], inbox.join("innocent.txt")).unwrap();
    std::os::unix::fs::symlink(&keys, inbox.join("keys")).unwrap();
    std::fs::create_dir(inbox.join("sub")).unwrap();
    let elsewhere = outside.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, b"not in an import directory").unwrap();
    // Things that are not regular files, refused without being read (the
    // old import read /dev/zero until the disk was full, and blocked on a
    // FIFO).
    std::os::unix::fs::symlink("/dev/zero", inbox.join("zeros")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(inbox.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(inbox.join("big.bin"), vec![1u8; (1 << 20) + 1]).unwrap();
    let refused = [
        secrets[0].clone(),
        secrets[1].clone(),
        inbox.join("innocent.txt"),
        inbox.join("keys/nostr.key"),
        inbox.join("sub"),
        inbox.join("sub/../../elsewhere.txt"),
        elsewhere.clone(),
        node.dir.state().join("meta.db"),
        inbox.join("zeros"),
        inbox.join("fifo"),
        inbox.join("big.bin"),
        std::path::PathBuf::from("inbox/relative.txt"),
    ];
    for path in &refused {
        let (status, answer) = import(&node, path).await;
        assert!(
            (400..500).contains(&status),
            "{} was imported: {status} {answer}",
            path.display()
        );
        // The answer names the rule, never the path or the file's bytes.
        let err: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let text = err["error"].as_str().unwrap();
        assert!(!text.contains(outside.path().to_str().unwrap()), "{text}");
    }
    assert!(
        node.node.state().blobs().list().unwrap().is_empty(),
        "nothing was added"
    );
    // A regular file in the import directory is imported, and with
    // ?seed=false it is not seeded.
    let film = inbox.join("film.bin");
    std::fs::write(&film, data(300_000, 5)).unwrap();
    let body = serde_json::to_vec(&serde_json::json!({ "path": film })).unwrap();
    let (status, answer) = node
        .client()
        .send(Method::POST, "/blobs/import?seed=false", Some(body))
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let info: BlobInfo = serde_json::from_slice(&answer).unwrap();
    assert_eq!(info.id, ContentId::of(&data(300_000, 5)));
    assert!(!info.seeding);
    node.node.shutdown().await;
}

#[tokio::test]
async fn import_is_off_without_import_dirs() {
    let node = TestNode::spawn("noimport", |_| {}).await;
    let file = node.dir.path().join("file.txt");
    std::fs::write(&file, b"data").unwrap();
    let (status, answer) = import(&node, &file).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("import.dirs"), "{answer}");
    node.node.shutdown().await;
}

#[tokio::test]
async fn json_routes_refuse_large_bodies() {
    let node = TestNode::spawn("limits", |_| {}).await;
    let big = format!(
        r#"{{"id": "{}", "origins": ["http://x/{}"]}}"#,
        ContentId::of(b"x"),
        "a".repeat(1 << 20)
    );
    for route in ["/fetch", "/blobs/import"] {
        let (status, answer) = node
            .client()
            .send(Method::POST, route, Some(big.clone().into_bytes()))
            .await
            .unwrap();
        assert_eq!(status, 413, "{route}: {}", String::from_utf8_lossy(&answer));
        assert!(answer.len() < 1000, "the answer does not quote the body");
    }
    // The upload route streams: larger than any JSON limit.
    let bytes = data(3 << 20, 7);
    let (status, _) = node
        .client()
        .send(Method::POST, "/blobs", Some(bytes))
        .await
        .unwrap();
    assert_eq!(status, 201);
    node.node.shutdown().await;
}

#[tokio::test]
async fn an_ipv4_bind_opens_no_ipv6_socket() {
    let node = TestNode::spawn("bind", |_| {}).await;
    let bound = node.node.state().endpoint().bound_sockets();
    assert!(!bound.is_empty());
    for addr in &bound {
        assert!(
            addr.ip().is_loopback() && addr.is_ipv4(),
            "bound {addr} (all: {bound:?}) though the config says 127.0.0.1:0"
        );
    }
    // And the kernel agrees: this process has no IPv6 UDP socket (each
    // test runs in its own process under nextest).
    let inodes = own_socket_inodes();
    let udp6 = std::fs::read_to_string("/proc/self/net/udp6").unwrap_or_default();
    for line in udp6.lines().skip(1) {
        let inode: u64 = line.split_whitespace().nth(9).unwrap().parse().unwrap();
        assert!(
            !inodes.contains(&inode),
            "an IPv6 UDP socket is open: {line}"
        );
    }
    node.node.shutdown().await;
}

/// Inodes of this process's sockets.
fn own_socket_inodes() -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                out.push(n.parse().unwrap());
            }
        }
    }
    out
}

#[tokio::test]
async fn an_upload_without_seeding_publishes_no_advert() {
    let relay = TestNostrRelay::spawn().await.unwrap();
    let url = relay.url().to_owned();
    let node = TestNode::spawn("noseed", |c| {
        c.nostr.relays = vec![url.clone()];
        c.nostr.lookup_timeout_secs = 2;
    })
    .await;
    let quiet = data(100_000, 11);
    let quiet_id = ContentId::of(&quiet);
    let (status, answer) = node
        .client()
        .send(Method::POST, "/blobs?seed=false", Some(quiet))
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let info: BlobInfo = serde_json::from_slice(&answer).unwrap();
    assert!(!info.seeding);
    // A seeded upload after it: once its advert is on the relay, the
    // advert task has been through everything queued before.
    let loud = data(100_000, 12);
    let loud_id = ContentId::of(&loud);
    let (status, _) = node
        .client()
        .send(Method::POST, "/blobs", Some(loud))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let reader = nostr_sdk::Client::default();
    reader.add_relay(&url).await.unwrap();
    reader.connect().await;
    let events = |id: ContentId| {
        let reader = reader.clone();
        async move {
            reader
                .fetch_events(atoll_swarm::advert::filter(&id), Duration::from_secs(2))
                .await
                .unwrap()
                .len()
        }
    };
    let mut seen = false;
    for _ in 0..60 {
        if events(loud_id).await > 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(seen, "the seeded blob was advertised");
    assert_eq!(
        events(quiet_id).await,
        0,
        "no advert (nor tombstone) for the unseeded blob"
    );
    reader.shutdown().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn stock_collection_client_downloads_with_the_default_ticket() {
    let a = TestNode::spawn("collection", |_| {}).await;
    let bytes = data(200_000, 13);
    let info = a
        .node
        .state()
        .blobs()
        .add_bytes(bytes.clone())
        .await
        .unwrap();
    let _ = a.addr().await;
    let t: TicketAnswer = a
        .client()
        .get(&format!("/blobs/{}/ticket?name=film.bin", info.id.to_hex()))
        .await
        .unwrap();
    let ticket: BlobTicket = t.ticket.parse().unwrap();
    assert_eq!(ticket.format(), BlobFormat::HashSeq, "a collection ticket");
    // The sequence and the metadata blob outlive a garbage collection
    // (the test node sweeps every second).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // What `sendme receive` does: the whole hash sequence, then the
    // collection read back from the local store.
    let ep = atoll_core::net::endpoint_builder(iroh::SecretKey::generate(), None)
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    let store = iroh_blobs::store::mem::MemStore::new();
    let conn = ep
        .connect(ticket.addr().clone(), iroh_blobs::ALPN)
        .await
        .unwrap();
    store
        .remote()
        .fetch(conn, ticket.hash_and_format())
        .await
        .unwrap();
    let collection = Collection::load(ticket.hash(), &*store).await.unwrap();
    let entries: Vec<_> = collection.iter().cloned().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "film.bin");
    let got = store.blobs().get_bytes(entries[0].1).await.unwrap();
    assert!(got[..] == bytes[..], "the blob's bytes");
    ep.close().await;
    // Removing the blob drops its collections too.
    let (status, _) = a
        .client()
        .send(
            Method::DELETE,
            &format!("/blobs/{}", info.id.to_hex()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let tags = a
        .node
        .state()
        .blobs()
        .store()
        .tags()
        .list_prefix(atoll_swarm::collection::TAG_PREFIX)
        .await
        .unwrap();
    let tags: Vec<_> = futures::StreamExt::collect(tags).await;
    assert!(tags.is_empty(), "{tags:?}");
    a.node.shutdown().await;
}

/// What a stock collection client (`sendme receive`) does with a ticket:
/// the whole hash sequence, then the collection read from its store.
async fn stock_collection_fetch(ticket: &BlobTicket) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let ep = atoll_core::net::endpoint_builder(iroh::SecretKey::generate(), None)
        .bind_addr("127.0.0.1:0")?
        .bind()
        .await?;
    let store = iroh_blobs::store::mem::MemStore::new();
    let result = async {
        let conn = ep.connect(ticket.addr().clone(), iroh_blobs::ALPN).await?;
        store.remote().fetch(conn, ticket.hash_and_format()).await?;
        let collection = Collection::load(ticket.hash(), &*store).await?;
        let mut out = Vec::new();
        for (name, hash) in collection.iter() {
            out.push((name.clone(), store.blobs().get_bytes(*hash).await?.to_vec()));
        }
        anyhow::Ok(out)
    }
    .await;
    ep.close().await;
    result
}

#[tokio::test]
async fn a_collection_ticket_never_serves_a_paid_blob_free() {
    let wallet = tempfile::tempdir().unwrap();
    let socket = wallet.path().join("walletd.sock");
    let a = TestNode::spawn("seller", |c| {
        c.payment.enabled = true;
        c.payment.price_sat_per_mb = 1;
        c.payment.accepted_mints = vec!["http://127.0.0.1:3338".into()];
        c.payment.wallet_socket = Some(socket);
    })
    .await;
    let _ = a.addr().await;
    let free = a
        .node
        .state()
        .blobs()
        .add_bytes(data(50_000, 21))
        .await
        .unwrap();
    let paid = a
        .node
        .state()
        .blobs()
        .add_bytes(data(50_000, 22))
        .await
        .unwrap();
    a.node.state().blobs().set_paid(&paid.id, true).unwrap();
    let ticket_of = |id: ContentId| {
        let client = a.client();
        async move {
            let t: TicketAnswer = client
                .get(&format!("/blobs/{}/ticket?name=f.bin", id.to_hex()))
                .await
                .unwrap();
            t.ticket.parse::<BlobTicket>().unwrap()
        }
    };
    // A free blob's collection is served to anyone.
    let got = stock_collection_fetch(&ticket_of(free.id).await)
        .await
        .unwrap();
    assert!(
        got == vec![("f.bin".to_owned(), data(50_000, 21))],
        "the free blob"
    );
    // A paid blob's collection is not: its children are checked.
    let err = stock_collection_fetch(&ticket_of(paid.id).await).await;
    assert!(
        err.is_err(),
        "the paid blob came free through its collection"
    );
    a.node.shutdown().await;
}

#[tokio::test]
async fn resolve_reads_a_collection_and_refuses_what_is_not_one() {
    let a = TestNode::spawn("sender", |_| {}).await;
    let b = TestNode::spawn("receiver", |_| {}).await;
    let _ = a.addr().await;
    let info = a
        .node
        .state()
        .blobs()
        .add_bytes(data(10_000, 31))
        .await
        .unwrap();
    let resolve = |ticket: String| {
        let client = b.client();
        async move {
            let body = serde_json::to_vec(&serde_json::json!({ "ticket": ticket })).unwrap();
            let (status, answer) = client
                .send(Method::POST, "/collections/resolve", Some(body))
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&answer).into_owned())
        }
    };
    let t: TicketAnswer = a
        .client()
        .get(&format!(
            "/blobs/{}/ticket?name=notes.txt",
            info.id.to_hex()
        ))
        .await
        .unwrap();
    let (status, answer) = resolve(t.ticket.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let entries: atoll_swarm::api::ResolveAnswer = serde_json::from_str(&answer).unwrap();
    assert_eq!(entries.entries.len(), 1);
    assert_eq!(entries.entries[0].name, "notes.txt");
    assert_eq!(entries.entries[0].id, info.id);
    // Nothing of the collection was stored on the way.
    assert!(b.node.state().blobs().list().unwrap().is_empty());
    // A raw ticket, a blob that is not a collection, garbage.
    let raw: TicketAnswer = a
        .client()
        .get(&format!("/blobs/{}/ticket?format=raw", info.id.to_hex()))
        .await
        .unwrap();
    assert_eq!(resolve(raw.ticket.clone()).await.0, 400);
    let raw: BlobTicket = raw.ticket.parse().unwrap();
    let fake = BlobTicket::new(raw.addr().clone(), raw.hash(), BlobFormat::HashSeq);
    let (status, answer) = resolve(fake.to_string()).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(resolve("blobnonsense".into()).await.0, 400);
    // Unsafe names are refused when a ticket is made.
    for bad in ["../x", "a/b", "", "."] {
        let (status, _) = a
            .client()
            .send(
                Method::GET,
                &format!(
                    "/blobs/{}/ticket?name={}",
                    info.id.to_hex(),
                    bad.replace('/', "%2F")
                ),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad:?}");
    }
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test]
async fn a_file_that_grows_past_the_limit_while_read_is_refused() {
    let node = TestNode::spawn("grows", |_| {}).await;
    let path = node.dir.path().join("growing.bin");
    std::fs::write(&path, data(3000, 41)).unwrap();
    // Checked when it was 1,000 bytes (the limit); 3,000 by the time it is read.
    let opened = atoll_swarm::import::OpenedFile {
        file: std::fs::File::open(&path).unwrap(),
        size: 1000,
    };
    let err = node
        .node
        .state()
        .blobs()
        .add_opened(opened, 1000, true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, atoll_swarm::store::StoreError::TooLarge { max: 1000 }),
        "{err}"
    );
    assert!(node.node.state().blobs().list().unwrap().is_empty());
    node.node.shutdown().await;
}
