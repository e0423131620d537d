//! `atoll blob …` against a real swarm node on a unix socket: where the
//! output lands, and tickets from stock iroh tools.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::{path::Path, process::Output, time::Duration};

use atoll_core::ContentId;
use atoll_swarm::{Node, SwarmConfig};
use atoll_testkit::TempState;
use common::s;
use iroh::{Endpoint, protocol::Router};
use iroh_blobs::{
    BlobFormat, BlobsProtocol, format::collection::Collection, store::mem::MemStore,
    ticket::BlobTicket,
};

async fn node(name: &str) -> (Node, TempState) {
    let dir = TempState::new(name).unwrap();
    let mut c = SwarmConfig::default();
    c.node.bind = "127.0.0.1:0".parse().unwrap();
    c.fetch.peer_timeout_secs = 10;
    let node = Node::builder(c, dir.state())
        .socket(dir.run().join("swarmd.sock"))
        .spawn()
        .await
        .unwrap();
    (node, dir)
}

async fn cli(socket: &Path, args: &[&str]) -> Output {
    let mut full = vec!["--socket", s(socket), "blob"];
    full.extend_from_slice(args);
    let full: Vec<String> = full.into_iter().map(String::from).collect();
    // The CLI blocks on its own runtime: run it off this one.
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        common::atoll(&refs)
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_never_writes_through_a_planted_part_file() {
    let (node, dir) = node("part").await;
    let socket = dir.run().join("swarmd.sock");
    let content = bytes(300_000, 1);
    let file = dir.path().join("film.bin");
    std::fs::write(&file, &content).unwrap();
    let out = cli(&socket, &["add", s(&file)]).await;
    assert!(out.status.success(), "{}", text(&out));
    let id = ContentId::of(&content).to_string();

    // Someone who can write to the output directory plants OUT.part
    // pointing at a file of the victim's.
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let outdir = dir.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let output = outdir.join("copy.bin");
    std::os::unix::fs::symlink(&victim, outdir.join("copy.bin.part")).unwrap();
    let out = cli(&socket, &["get", &id, "-o", s(&output)]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(
        std::fs::read(&output).unwrap() == content,
        "the blob's bytes"
    );
    // No temp file is left behind.
    let left: Vec<_> = std::fs::read_dir(&outdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["copy.bin", "copy.bin.part"], "{left:?}");
    node.shutdown().await;
}

/// A sender built the way `sendme send` builds one: a plain iroh
/// endpoint serving a store that holds a collection of named files.
struct Sender {
    router: Router,
    _store: MemStore,
    ticket: BlobTicket,
}

async fn sendme_like(files: &[(&str, Vec<u8>)]) -> Sender {
    let store = MemStore::new();
    let mut tags = Vec::new();
    let mut collection = Collection::default();
    for (name, data) in files {
        let tt = store.add_bytes(data.clone()).temp_tag().await.unwrap();
        collection.push((*name).to_owned(), tt.hash());
        tags.push(tt);
    }
    let tt = collection.store(&store).await.unwrap();
    let ep: Endpoint = atoll_core::net::endpoint_builder(iroh::SecretKey::generate(), None)
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    let router = Router::builder(ep.clone())
        .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store, None))
        .spawn();
    let mut addr = ep.addr();
    for _ in 0..100 {
        if addr.ip_addrs().next().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        addr = ep.addr();
    }
    let ticket = BlobTicket::new(addr, tt.hash(), BlobFormat::HashSeq);
    // The collection's tag keeps everything alive from here on.
    std::mem::forget(tt);
    drop(tags);
    Sender {
        router,
        _store: store,
        ticket,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_a_collection_ticket_writes_the_file_not_the_hash_sequence() {
    let (node, dir) = node("coll").await;
    let socket = dir.run().join("swarmd.sock");
    let content = bytes(500_000, 2);
    let sender = sendme_like(&[("film.mp4", content.clone())]).await;
    let output = dir.path().join("film-copy.mp4");
    let out = cli(
        &socket,
        &[
            "get",
            "--ticket",
            &sender.ticket.to_string(),
            "-o",
            s(&output),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read(&output).unwrap() == content,
        "the file itself, not the hash sequence"
    );
    sender.router.shutdown().await.unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_of_several_files_goes_into_a_directory_under_checked_names() {
    let (node, dir) = node("multi").await;
    let socket = dir.run().join("swarmd.sock");
    let (a, b) = (bytes(40_000, 3), bytes(70_000, 4));
    let sender = sendme_like(&[("a.txt", a.clone()), ("sub/b.txt", b.clone())]).await;
    let out = dir.path().join("received");
    let res = cli(
        &socket,
        &["get", "--ticket", &sender.ticket.to_string(), "-o", s(&out)],
    )
    .await;
    assert!(res.status.success(), "{}", text(&res));
    assert!(std::fs::read(out.join("a.txt")).unwrap() == a);
    assert!(std::fs::read(out.join("sub/b.txt")).unwrap() == b);
    // To stdout: refused, several files cannot go there.
    let res = cli(
        &socket,
        &["get", "--ticket", &sender.ticket.to_string(), "-o", "-"],
    )
    .await;
    assert!(!res.status.success());
    // One file of it, by id.
    let one = dir.path().join("just-b.txt");
    let res = cli(
        &socket,
        &[
            "get",
            &ContentId::of(&b).to_string(),
            "--ticket",
            &sender.ticket.to_string(),
            "-o",
            s(&one),
        ],
    )
    .await;
    assert!(res.status.success(), "{}", text(&res));
    assert!(std::fs::read(&one).unwrap() == b);
    sender.router.shutdown().await.unwrap();

    // Names that would escape the directory: refused before anything is
    // written, anywhere.
    for evil in [
        "../escaped.txt",
        "/tmp/absolute.txt",
        "sub/../../up.txt",
        "a\\..\\b",
    ] {
        let sender = sendme_like(&[("fine.txt", a.clone()), (evil, b.clone())]).await;
        let out = dir.path().join("evil-out");
        let res = cli(
            &socket,
            &["get", "--ticket", &sender.ticket.to_string(), "-o", s(&out)],
        )
        .await;
        assert!(!res.status.success(), "{evil}: {}", text(&res));
        assert!(text(&res).contains("unsafe name"), "{}", text(&res));
        assert!(!out.exists(), "{evil}: something was written");
        assert!(!dir.path().join("escaped.txt").exists());
        sender.router.shutdown().await.unwrap();
    }
    // A symlink planted inside the target directory is not followed.
    let out = dir.path().join("planted");
    std::fs::create_dir(&out).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("sub")).unwrap();
    let sender = sendme_like(&[("a.txt", a.clone()), ("sub/b.txt", b.clone())]).await;
    let res = cli(
        &socket,
        &["get", "--ticket", &sender.ticket.to_string(), "-o", s(&out)],
    )
    .await;
    assert!(!res.status.success(), "{}", text(&res));
    assert!(!elsewhere.join("b.txt").exists());
    sender.router.shutdown().await.unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_prints_a_collection_by_default_and_raw_on_request() {
    let (node, dir) = node("ticket").await;
    let socket = dir.run().join("swarmd.sock");
    let content = bytes(10_000, 5);
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, &content).unwrap();
    let out = cli(&socket, &["add", s(&file)]).await;
    assert!(out.status.success(), "{}", text(&out));
    let id = ContentId::of(&content).to_string();
    let t = cli(&socket, &["ticket", &id, "--name", "notes.txt"]).await;
    assert!(t.status.success(), "{}", text(&t));
    let t: BlobTicket = String::from_utf8_lossy(&t.stdout).trim().parse().unwrap();
    assert_eq!(t.format(), BlobFormat::HashSeq);
    let raw = cli(&socket, &["ticket", &id, "--raw"]).await;
    let raw: BlobTicket = String::from_utf8_lossy(&raw.stdout).trim().parse().unwrap();
    assert_eq!(raw.format(), BlobFormat::Raw);
    assert_eq!(raw.hash().as_bytes(), ContentId::of(&content).as_bytes());
    node.shutdown().await;
}

/// `sendme` on PATH, if any.
fn sendme() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("sendme"))
            .find(|p| p.is_file())
    })
}

/// The stock `sendme` binary (0.37) against a node, both ways, offline:
/// relays disabled, loopback addresses only. Runs only when `sendme` is on
/// PATH (`cargo install sendme@0.37.1 --locked`); prints SKIP otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sendme_binary_receives_and_sends_collections() {
    let Some(sendme) = sendme() else {
        eprintln!("SKIP: no `sendme` on PATH (cargo install sendme@0.37.1 --locked)");
        return;
    };
    let (node, dir) = node("sendme").await;
    let socket = dir.run().join("swarmd.sock");
    // Node → sendme receive.
    let content = bytes(2_000_000, 6);
    let file = dir.path().join("film.bin");
    std::fs::write(&file, &content).unwrap();
    assert!(cli(&socket, &["add", s(&file)]).await.status.success());
    let id = ContentId::of(&content).to_string();
    let t = cli(&socket, &["ticket", &id, "--name", "film-from-atoll.bin"]).await;
    assert!(t.status.success(), "{}", text(&t));
    let ticket = String::from_utf8_lossy(&t.stdout).trim().to_owned();
    let cwd = dir.path().join("sendme-recv");
    std::fs::create_dir(&cwd).unwrap();
    let bin = sendme.clone();
    let recv_cwd = cwd.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["receive", "--relay", "disabled", "--no-progress", &ticket])
            .current_dir(recv_cwd)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "sendme receive: {}", text(&out));
    assert!(
        std::fs::read(cwd.join("film-from-atoll.bin")).unwrap() == content,
        "sendme wrote the file under its name"
    );

    // sendme send → atoll blob get --ticket.
    let other = bytes(1_500_000, 7);
    let src = dir.path().join("sendme-send");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("from-sendme.bin"), &other).unwrap();
    let mut child = std::process::Command::new(&sendme)
        .args([
            "send",
            "--relay",
            "disabled",
            "--no-progress",
            "--ticket-type",
            "addresses",
            "--magic-ipv4-addr",
            "127.0.0.1:0",
            "from-sendme.bin",
        ])
        .current_dir(&src)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ticket = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("sendme receive ").map(str::to_owned))
    })
    .await
    .unwrap()
    .expect("sendme send printed a ticket");
    let got = dir.path().join("got.bin");
    let res = cli(&socket, &["get", "--ticket", &ticket, "-o", s(&got)]).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(res.status.success(), "{}", text(&res));
    assert!(
        std::fs::read(&got).unwrap() == other,
        "the file sendme sent"
    );
    node.shutdown().await;
}
