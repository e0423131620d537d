//! An event published to the local Nostr relay is read back, by a second
//! client, with its signature intact; a replaceable event is replaced.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::Duration;

use atoll_core::kinds;
use atoll_testkit::TestNostrRelay;
use nostr_sdk::prelude::*;

#[tokio::test]
async fn publish_and_read_back() {
    let relay = TestNostrRelay::spawn().await.unwrap();
    assert!(relay.url().starts_with("ws://127.0.0.1:"));

    let keys = Keys::generate();
    let writer = Client::new(keys.clone());
    writer.add_relay(relay.url()).await.unwrap();
    writer.connect().await;
    let d = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    let first = EventBuilder::new(Kind::Custom(kinds::SEED_ADVERT), "{\"size\":1}")
        .tag(Tag::identifier(d))
        .sign_with_keys(&keys)
        .unwrap();
    let out = writer.send_event(&first).await.unwrap();
    assert_eq!(out.success.len(), 1, "{out:?}");
    // Same author, kind and d tag, later: replaces the first (NIP-33).
    let second = EventBuilder::new(Kind::Custom(kinds::SEED_ADVERT), "{\"size\":2}")
        .tag(Tag::identifier(d))
        .custom_created_at(first.created_at + 1)
        .sign_with_keys(&keys)
        .unwrap();
    writer.send_event(&second).await.unwrap();

    let reader = Client::default();
    reader.add_relay(relay.url()).await.unwrap();
    reader.connect().await;
    let filter = Filter::new()
        .kind(Kind::Custom(kinds::SEED_ADVERT))
        .author(keys.public_key())
        .identifier(d);
    let events = reader
        .fetch_events(filter, Duration::from_secs(10))
        .await
        .unwrap();
    let events: Vec<Event> = events.into_iter().collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].id, second.id);
    assert_eq!(events[0].content, "{\"size\":2}");
    events[0].verify().unwrap();

    // A forged event (content changed after signing) is refused by the
    // relay (or by the client before sending), and never stored.
    let mut forged = second.clone();
    forged.content = "{\"size\":3}".into();
    if let Ok(out) = writer.send_event(&forged).await {
        assert!(out.success.is_empty(), "{out:?}");
    }
    let filter = Filter::new().kind(Kind::Custom(kinds::SEED_ADVERT));
    let events = reader
        .fetch_events(filter, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events.into_iter().all(|e| e.content == "{\"size\":2}"));
    relay.shutdown();
}
