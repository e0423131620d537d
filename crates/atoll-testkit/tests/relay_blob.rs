//! Two endpoints exchange a blob through the local iroh relay, with no IP
//! transport of their own, and (as root) inside a network namespace that
//! has nothing but loopback: nothing can have left the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use atoll_core::ContentId;
use atoll_testkit::{TestRelay, netns, relay::relay_only_endpoint};
use iroh::{EndpointAddr, protocol::Router};
use iroh_blobs::{BlobsProtocol, store::mem::MemStore};

/// 1 MiB + 1: more than one BLAKE3 chunk group, not a power of two.
const SIZE: usize = 1024 * 1024 + 1;

async fn exchange_through_relay() -> anyhow::Result<()> {
    let relay = TestRelay::spawn().await?;
    assert!(relay.url().to_string().starts_with("http://127.0.0.1:"));

    let store_a = MemStore::new();
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    let tag = store_a.blobs().add_slice(&data).await?;
    assert_eq!(ContentId::of(&data).as_bytes(), tag.hash.as_bytes());

    let ep_a = relay_only_endpoint(&relay, vec![iroh_blobs::ALPN.to_vec()]).await?;
    let router = Router::builder(ep_a.clone())
        .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store_a, None))
        .spawn();
    ep_a.online().await;

    let ep_b = relay_only_endpoint(&relay, vec![]).await?;
    // B knows A only by id and relay URL: no IP address at all.
    let addr = EndpointAddr::new(ep_a.id()).with_relay_url(relay.url().clone());
    let conn = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        ep_b.connect(addr, iroh_blobs::ALPN),
    )
    .await??;
    let store_b = MemStore::new();
    let stats = store_b.remote().fetch(conn, tag.hash).await?;
    assert_eq!(stats.payload_bytes_read, SIZE as u64);
    let got = store_b.blobs().get_bytes(tag.hash).await?;
    assert_eq!(ContentId::of(&got), ContentId::of(&data));

    ep_b.close().await;
    router.shutdown().await?;
    relay.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn blob_exchange_through_local_relay() {
    exchange_through_relay().await.unwrap();
}

#[test]
fn netns_blob_exchange_with_only_loopback() {
    if !netns::available() {
        eprintln!("SKIP: needs root and iproute2");
        return;
    }
    netns::isolated(|| async { exchange_through_relay().await })
        .unwrap()
        .unwrap();
}
