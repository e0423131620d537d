//! The swarm node's public behaviour, in process on loopback: peers,
//! adverts, origins, lying peers, deduplication, quota, the local API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use atoll_core::ContentId;
use atoll_swarm::{FetchRequest, Source, api::TicketAnswer, store::BlobInfo};
use atoll_testkit::TestNostrRelay;
use common::{Origin, OriginMode, TestNode, data};
use iroh_blobs::ticket::BlobTicket;

/// 3 MiB + 1: several 4 MiB-segment-sized pieces would be too slow for a
/// unit test; this still crosses many 16 KiB chunk groups.
const SIZE: usize = 3 * 1024 * 1024 + 1;

fn req(id: ContentId) -> FetchRequest {
    FetchRequest {
        id: Some(id),
        ..Default::default()
    }
}

#[tokio::test]
async fn fetch_from_a_known_peer_and_serve_ranges() {
    let a = TestNode::spawn("a", |_| {}).await;
    let b = TestNode::spawn("b", |_| {}).await;
    let bytes = data(SIZE, 1);
    let id = ContentId::of(&bytes);
    let added: BlobInfo = {
        let (status, body) = a
            .client()
            .send(hyper::Method::POST, "/blobs", Some(bytes.clone()))
            .await
            .unwrap();
        assert_eq!(status, 201);
        serde_json::from_slice(&body).unwrap()
    };
    assert_eq!(added.id, id);
    assert_eq!(added.size, SIZE as u64);

    let out = b
        .node
        .state()
        .fetch(FetchRequest {
            peers: vec![a.addr().await],
            ..req(id)
        })
        .await
        .unwrap();
    assert_eq!(out.size, SIZE as u64);
    assert_eq!(
        out.source,
        Source::Peers(vec![a.node.state().endpoint().id().to_string()])
    );

    // Whole blob and ranges through B's API, verified against the source.
    let c = b.client();
    let (status, body) = c
        .send(hyper::Method::GET, &format!("/blobs/{}", id.to_hex()), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(ContentId::of(&body), id);
    let range_req = |range: &'static str| {
        let sock = b.dir.run().join("swarmd.sock");
        let path = format!("/blobs/{}", id.to_hex());
        async move { raw_get(&sock, &path, Some(range)).await }
    };
    let (status, headers, body) = range_req("bytes=1000-1999").await;
    assert_eq!(status, 206);
    assert_eq!(&body[..], &bytes[1000..2000]);
    assert_eq!(
        headers.get("content-range").unwrap(),
        &format!("bytes 1000-1999/{SIZE}")
    );
    let (status, _, body) = range_req("bytes=-10").await;
    assert_eq!((status, &body[..]), (206, &bytes[SIZE - 10..]));
    let (status, headers, _) = range_req("bytes=99999999-").await;
    assert_eq!(status, 416);
    assert_eq!(
        headers.get("content-range").unwrap(),
        &format!("bytes */{SIZE}")
    );

    // Listing, pinning, malformed and unknown ids.
    let list: Vec<BlobInfo> = c.get("/blobs").await.unwrap();
    assert_eq!(list.len(), 1);
    let pinned: BlobInfo = c
        .send_json_put(&format!("/blobs/{}/pin", id.to_hex()))
        .await;
    assert!(pinned.pinned);
    for bad in [
        "/blobs/xyz",
        "/blobs/blake3:12",
        &format!("/blobs/{}", id.to_hex().to_uppercase()),
    ] {
        let (status, _) = c.send(hyper::Method::GET, bad, None).await.unwrap();
        assert_eq!(status, 400, "{bad}");
    }
    let other = ContentId::of(b"nope").to_hex();
    let (status, _) = c
        .send(hyper::Method::GET, &format!("/blobs/{other}"), None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, _) = c
        .send(
            hyper::Method::POST,
            "/fetch",
            Some(br#"{"id":"blake3:zz"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 422);
    let (status, _) = c
        .send(
            hyper::Method::POST,
            "/fetch",
            Some(format!(r#"{{"id":"{id}","origins":["file:///etc/passwd"]}}"#).into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    // Delete: gone from the list and unreadable.
    let (status, _) = c
        .send(
            hyper::Method::DELETE,
            &format!("/blobs/{}", id.to_hex()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = c
        .send(hyper::Method::GET, &format!("/blobs/{}", id.to_hex()), None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// GET with an optional Range header; returns status, headers, body.
async fn raw_get(
    sock: &std::path::Path,
    path: &str,
    range: Option<&str>,
) -> (u16, hyper::HeaderMap, bytes::Bytes) {
    use http_body_util::BodyExt;
    let stream = tokio::net::UnixStream::connect(sock).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", "localhost");
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = send
        .send_request(
            req.body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

trait PutJson {
    async fn send_json_put<T: serde::de::DeserializeOwned>(&self, path: &str) -> T;
}

impl PutJson for atoll_core::local_api::LocalClient {
    async fn send_json_put<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let (status, body) = self.send(hyper::Method::PUT, path, None).await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

#[tokio::test]
async fn stock_iroh_blobs_client_downloads_with_a_ticket() {
    let a = TestNode::spawn("a", |_| {}).await;
    let bytes = data(SIZE, 2);
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
        .get(&format!("/blobs/{}/ticket?format=raw", info.id.to_hex()))
        .await
        .unwrap();
    let ticket: BlobTicket = t.ticket.parse().unwrap();

    // A plain iroh endpoint and MemStore, nothing of Atoll's.
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
    store.remote().fetch(conn, ticket.hash()).await.unwrap();
    let got = store.blobs().get_bytes(ticket.hash()).await.unwrap();
    assert_eq!(ContentId::of(&got), info.id);
    ep.close().await;
    a.node.shutdown().await;
}

#[tokio::test]
async fn adverts_find_seeders_and_tombstones_withdraw_them() {
    let relay = TestNostrRelay::spawn().await.unwrap();
    let url = relay.url().to_owned();
    let cfg = |c: &mut atoll_swarm::SwarmConfig| {
        c.nostr.relays = vec![url.clone()];
        c.nostr.lookup_timeout_secs = 2;
    };
    let a = TestNode::spawn("a", cfg).await;
    let b = TestNode::spawn("b", cfg).await;
    let _ = a.addr().await;
    let bytes = data(SIZE, 3);
    let id = ContentId::of(&bytes);
    let (status, _) = a
        .client()
        .send(hyper::Method::POST, "/blobs", Some(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(status, 201);

    // B knows nothing but the relay: the advert leads it to A.
    let mut out = None;
    for _ in 0..20 {
        match b.node.state().fetch(req(id)).await {
            Ok(o) => {
                out = Some(o);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let out = out.expect("B found A through its advert");
    assert!(matches!(out.source, Source::Peers(_)));

    // Both stop seeding: their tombstones replace the adverts, and a new
    // node finds no seeder (and says so).
    for n in [&a, &b] {
        let (status, _) = n
            .client()
            .send(
                hyper::Method::DELETE,
                &format!("/blobs/{}/seed", id.to_hex()),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = TestNode::spawn("c", cfg).await;
    let err = c.node.state().fetch(req(id)).await.unwrap_err().to_string();
    assert!(err.contains("no peer advertises it"), "{err}");
    for n in [a, b, c] {
        n.node.shutdown().await;
    }
}

#[tokio::test]
async fn lying_peer_is_caught_and_the_fetch_completes_elsewhere() {
    let honest = TestNode::spawn("honest", |_| {}).await;
    let liar = TestNode::spawn("liar", |_| {}).await;
    let bytes = data(SIZE, 4);
    let id = ContentId::of(&bytes);
    honest
        .node
        .state()
        .blobs()
        .add_bytes(bytes.clone())
        .await
        .unwrap();
    liar.node
        .state()
        .blobs()
        .add_bytes(bytes.clone())
        .await
        .unwrap();
    // Bit rot (or malice) on the liar's disk: it now serves wrong bytes
    // under the right hash.
    let path = liar.data_file(&id);
    let mut on_disk = std::fs::read(&path).unwrap();
    for i in (0..on_disk.len()).step_by(4096) {
        on_disk[i] ^= 0xff;
    }
    std::fs::write(&path, on_disk).unwrap();

    let fetcher = TestNode::spawn("fetcher", |_| {}).await;
    let liar_id = liar.node.state().endpoint().id().to_string();
    let out = fetcher
        .node
        .state()
        .fetch(FetchRequest {
            // The liar first, so it is surely asked.
            peers: vec![liar.addr().await, honest.addr().await],
            ..req(id)
        })
        .await
        .unwrap();
    assert!(
        out.failed_peers.iter().any(|(p, _)| *p == liar_id),
        "{out:?}"
    );
    assert!(
        matches!(&out.source, Source::Peers(p) if !p.contains(&liar_id)),
        "{out:?}"
    );
    let got = fetcher
        .node
        .state()
        .blobs()
        .store()
        .blobs()
        .get_bytes(iroh_blobs::Hash::from_bytes(*id.as_bytes()))
        .await
        .unwrap();
    assert_eq!(&got[..], &bytes[..]);
    // The liar is avoided from now on.
    assert!(
        fetcher
            .node
            .state()
            .fetcher()
            .avoided()
            .iter()
            .any(|p| p.to_string() == liar_id)
    );
    for n in [honest, liar, fetcher] {
        n.node.shutdown().await;
    }
}

#[tokio::test]
async fn origins_are_verified_before_import() {
    let bytes = data(SIZE, 5);
    let id = ContentId::of(&bytes);
    let wrong = Origin::spawn(vec![bytes.clone()], OriginMode::WrongBytes).await;
    let truncated = Origin::spawn(vec![bytes.clone()], OriginMode::Truncated).await;
    let failing = Origin::spawn(vec![bytes.clone()], OriginMode::Error500).await;
    let good = Origin::spawn(vec![bytes.clone()], OriginMode::Good).await;

    let n = TestNode::spawn("n", |_| {}).await;
    // Only bad origins: a clear error naming each, and nothing held.
    let err = n
        .node
        .state()
        .fetch(FetchRequest {
            origins: vec![
                wrong.blob_url(&id),
                truncated.blob_url(&id),
                failing.blob_url(&id),
            ],
            ..req(id)
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("served wrong bytes"), "{err}");
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains(&truncated.url()), "{err}");
    assert!(n.node.state().blobs().list().unwrap().is_empty());
    assert!(
        n.node
            .state()
            .blobs()
            .complete_size(&id)
            .await
            .unwrap()
            .is_none()
    );
    // No temp files left behind.
    let tmp = n.dir.state().join("tmp");
    assert!(!tmp.exists() || std::fs::read_dir(&tmp).unwrap().count() == 0);

    // A configured origin (base URL) after the bad one: it wins.
    let n2 = TestNode::spawn("n2", |c| c.fetch.origins = vec![good.url()]).await;
    let out = n2
        .node
        .state()
        .fetch(FetchRequest {
            origins: vec![wrong.blob_url(&id)],
            ..req(id)
        })
        .await
        .unwrap();
    assert_eq!(out.source, Source::Origin(good.blob_url(&id)));
    assert_eq!(out.failed_origins.len(), 1);
    // An origin larger than allowed is refused before its bytes are read.
    let small = TestNode::spawn("small", |c| c.fetch.max_origin_bytes = 1000).await;
    let err = small
        .node
        .state()
        .fetch(FetchRequest {
            origins: vec![good.blob_url(&id)],
            ..req(id)
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("limit"), "{err}");
    for x in [n, n2, small] {
        x.node.shutdown().await;
    }
}

#[tokio::test]
async fn concurrent_fetches_of_one_id_share_one_download() {
    let bytes = data(SIZE, 6);
    let id = ContentId::of(&bytes);
    let origin = Origin::spawn(vec![bytes.clone()], OriginMode::Good).await;
    let n = TestNode::spawn("n", |c| c.fetch.origins = vec![origin.url()]).await;
    let st = n.node.state().clone();
    let fetches = (0..5).map(|_| {
        let st = st.clone();
        async move { st.fetch(req(id)).await }
    });
    let results = futures::future::join_all(fetches).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| o.size == SIZE as u64))
    );
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1);
    // Held now: a later fetch is local and costs no request.
    let out = st.fetch(req(id)).await.unwrap();
    assert_eq!(out.source, Source::Local);
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1);
    n.node.shutdown().await;
}

#[tokio::test]
async fn quota_evicts_least_recently_used_unpinned_blobs() {
    let n = TestNode::spawn("q", |c| c.storage.quota_bytes = 3 * 1024 * 1024).await;
    let st = n.node.state();
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let info = st
            .blobs()
            .add_bytes(data(1024 * 1024, 10 + i))
            .await
            .unwrap();
        st.blobs().set_last_access(&info.id, 1000 + i).unwrap();
        ids.push(info.id);
    }
    st.blobs().set_pinned(&ids[0], true).unwrap();
    // A fourth MiB through the API: over quota by one blob. The oldest
    // (ids[0]) is pinned, so the next oldest (ids[1]) goes.
    let (status, body) = n
        .client()
        .send(hyper::Method::POST, "/blobs", Some(data(1024 * 1024, 20)))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let newest: BlobInfo = serde_json::from_slice(&body).unwrap();
    let held: Vec<ContentId> = st
        .blobs()
        .list()
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert!(held.contains(&ids[0]), "pinned stays");
    assert!(!held.contains(&ids[1]), "least recently used goes");
    assert!(held.contains(&ids[2]) && held.contains(&newest.id));
    assert!(st.blobs().used_bytes().unwrap() <= 3 * 1024 * 1024);
    n.node.shutdown().await;
}

#[tokio::test]
async fn restart_never_serves_a_partial_blob_and_resumes_it() {
    let bytes = data(SIZE, 7);
    let id = ContentId::of(&bytes);
    let dir = atoll_testkit::TempState::new("r").unwrap();
    let path = dir.path().to_owned();
    {
        // Simulate a fetch cut short: the first half arrives, verified,
        // then the process dies.
        let src = TestNode::spawn("src", |_| {}).await;
        src.node
            .state()
            .blobs()
            .add_bytes(bytes.clone())
            .await
            .unwrap();
        let n = TestNode::spawn_in(dir, |_| {}).await;
        n.node.state().blobs().protect(&id).await.unwrap();
        let conn = n
            .node
            .state()
            .endpoint()
            .connect(src.addr().await, iroh_blobs::ALPN)
            .await
            .unwrap();
        use iroh_blobs::protocol::{ChunkRanges, ChunkRangesExt, GetRequest};
        let half = GetRequest::builder()
            .root(ChunkRanges::bytes(0..(SIZE as u64 / 2)))
            .build(iroh_blobs::Hash::from_bytes(*id.as_bytes()));
        n.node
            .state()
            .blobs()
            .store()
            .remote()
            .execute_get(conn, half)
            .complete()
            .await
            .unwrap();
        assert!(
            n.node
                .state()
                .blobs()
                .complete_size(&id)
                .await
                .unwrap()
                .is_none()
        );
        let TestNode { node, dir } = n;
        node.shutdown().await;
        // Keep the directory for the restart.
        assert_eq!(dir.into_path(), path);
        src.node.shutdown().await;
    }
    let dir = atoll_testkit::TempState::adopt(path).unwrap();
    let n = TestNode::spawn_in(dir, |_| {}).await;
    // Not listed, not readable.
    assert!(n.node.state().blobs().list().unwrap().is_empty());
    let (status, _) = n
        .client()
        .send(hyper::Method::GET, &format!("/blobs/{}", id.to_hex()), None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    // The half that arrived is kept: resuming reads only the rest.
    let local = n
        .node
        .state()
        .blobs()
        .store()
        .remote()
        .local(iroh_blobs::Hash::from_bytes(*id.as_bytes()))
        .await
        .unwrap();
    assert!(
        local.local_bytes() >= SIZE as u64 / 2 - 16 * 1024,
        "{}",
        local.local_bytes()
    );
    let src = TestNode::spawn("src2", |_| {}).await;
    src.node
        .state()
        .blobs()
        .add_bytes(bytes.clone())
        .await
        .unwrap();
    let out = n
        .node
        .state()
        .fetch(FetchRequest {
            peers: vec![src.addr().await],
            ..req(id)
        })
        .await
        .unwrap();
    assert_eq!(out.size, SIZE as u64);
    let (status, body) = n
        .client()
        .send(hyper::Method::GET, &format!("/blobs/{}", id.to_hex()), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(ContentId::of(&body), id);
    n.node.shutdown().await;
    src.node.shutdown().await;
}
