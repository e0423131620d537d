//! `atoll-relayd` end to end on loopback: real iroh endpoints and relay
//! clients against the real relay over HTTP(S), admission, refusal and
//! revocation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use atoll_core::admission::{self, MAX_TOKEN_BYTES};
use atoll_relay::{info::RelayInfo, members, nostr_list};
use base64::Engine as _;
use common::*;
use iroh::{EndpointAddr, SecretKey};
use nostr::{EventBuilder, Keys, Kind, Tag, TagKind, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ECHO: &[u8] = b"atoll-test/echo/0";

/// Serves one echo stream per connection until the endpoint closes.
fn serve_echo(ep: iroh::Endpoint) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok((mut send, mut recv)) = conn.accept_bi().await else {
                    return;
                };
                if tokio::io::copy(&mut recv, &mut send).await.is_ok() {
                    let _ = send.finish();
                }
                conn.closed().await;
            });
        }
    })
}

/// Dials `to` and echoes `msg`, giving up after `limit` (a dial through a
/// relay that refused us hangs rather than failing).
async fn echo_via_relay(
    from: &iroh::Endpoint,
    to: EndpointAddr,
    msg: &[u8],
    limit: Duration,
) -> anyhow::Result<Vec<u8>> {
    tokio::time::timeout(limit, async {
        let conn = from.connect(to, ECHO).await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(msg).await?;
        send.finish()?;
        let got = recv.read_to_end(1 << 20).await?;
        conn.close(0u32.into(), b"done");
        anyhow::Ok(got)
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_reach_each_other_through_the_relay_and_outsiders_do_not() {
    let (alice, bob, mallory) = (Keys::generate(), Keys::generate(), Keys::generate());
    let group = Group::new(&[&alice, &bob]);
    let (relay, url) = group.relay().await;

    let a = relay_only_endpoint(&url, &alice, vec![]).await;
    let b = relay_only_endpoint(&url, &bob, vec![ECHO.to_vec()]).await;
    let echo = serve_echo(b.clone());
    tokio::time::timeout(WAIT, async { tokio::join!(a.online(), b.online()) })
        .await
        .expect("members' endpoints came online through the relay");
    assert!(relay.access().is_connected(&a.id()) && relay.access().is_connected(&b.id()));

    let to_b = EndpointAddr::new(b.id()).with_relay_url(url.clone());
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let got = echo_via_relay(&a, to_b.clone(), &msg, WAIT).await.unwrap();
    assert_eq!(got, msg, "echo through the relay");

    // Mallory's token is well-formed and hers, but she is not a member:
    // her endpoint never gets a home relay and cannot reach Bob.
    let m = relay_only_endpoint(&url, &mallory, vec![]).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(3), m.online())
            .await
            .is_err(),
        "a non-member's endpoint must not come online"
    );
    assert!(
        echo_via_relay(&m, to_b, b"hi", Duration::from_secs(3))
            .await
            .is_err()
    );
    assert!(!relay.access().is_connected(&m.id()));
    let stats = relay.access().stats();
    assert!(stats.admitted >= 2 && stats.refused >= 1, "{stats:?}");

    for ep in [a, b, m] {
        ep.close().await;
    }
    echo.abort();
    relay.shutdown().await;
}

/// A signed kind-27235 event with these tags, as a token.
fn custom_token(keys: &Keys, kind: u16, created: u64, tags: &[[&str; 2]]) -> String {
    let ev = EventBuilder::new(Kind::from(kind), "")
        .tags(
            tags.iter()
                .map(|[k, v]| Tag::custom(TagKind::custom(k.to_string()), [*v])),
        )
        .custom_created_at(Timestamp::from_secs(created))
        .sign_with_keys(keys)
        .unwrap();
    admission::encode(&ev).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_over_the_wire() {
    let alice = Keys::generate();
    let group = Group::new(&[&alice]);
    let (relay, url) = group.relay().await;
    let now = Timestamp::now().as_secs();
    let fresh = || SecretKey::generate();
    let canon = admission::canonical_relay_url(url.as_str()).unwrap();

    // The control: a member's own token is admitted.
    let s = fresh();
    let mut ok = connect(&url, &s, Some(&token(&alice, &url, &s)))
        .await
        .unwrap();
    ping(&mut ok).await.unwrap();
    // The owner is always a member.
    let s = fresh();
    let mut owner = connect(&url, &s, Some(&token(&group.owner, &url, &s)))
        .await
        .unwrap();

    let tag_set = |s: &SecretKey, u: &str, m: &str, exp: u64| {
        let id = s.public().to_string();
        let exp = exp.to_string();
        vec![
            ["u", u].map(str::to_owned),
            ["method", m].map(str::to_owned),
            ["endpoint", &id].map(str::to_owned),
            ["expiration", &exp].map(str::to_owned),
        ]
    };
    let signed = |keys: &Keys, kind: u16, created: u64, tags: Vec<[String; 2]>| {
        let tags: Vec<[&str; 2]> = tags.iter().map(|[a, b]| [a.as_str(), b.as_str()]).collect();
        custom_token(keys, kind, created, &tags)
    };

    type Case = (
        &'static str,
        Box<dyn Fn(&SecretKey) -> Option<String>>,
        &'static str,
    );
    let alice2 = alice.clone();
    let canon2 = canon.clone();
    let url2 = url.clone();
    let cases: Vec<Case> = vec![
        ("no token", Box::new(|_| None), "no admission token"),
        // HTTP drops the trailing space of `Bearer `: no token at all.
        (
            "empty",
            Box::new(|_| Some(String::new())),
            "no admission token",
        ),
        (
            "non-member",
            Box::new({
                let url = url2.clone();
                move |s| Some(token(&Keys::generate(), &url, s))
            }),
            "not a member",
        ),
        (
            "expired",
            Box::new({
                let (k, c) = (alice2.clone(), canon2.clone());
                move |s| {
                    Some(signed(
                        &k,
                        27235,
                        now - 7200,
                        tag_set(s, &c, "GET", now - 3600),
                    ))
                }
            }),
            "expired",
        ),
        (
            "future-dated",
            Box::new({
                let (k, c) = (alice2.clone(), canon2.clone());
                move |s| {
                    Some(signed(
                        &k,
                        27235,
                        now + 3600,
                        tag_set(s, &c, "GET", now + 7200),
                    ))
                }
            }),
            "in the future",
        ),
        (
            "wrong URL",
            Box::new({
                let k = alice2.clone();
                move |s| {
                    Some(signed(
                        &k,
                        27235,
                        now,
                        tag_set(s, "https://other.example.org", "GET", now + 600),
                    ))
                }
            }),
            "another relay URL",
        ),
        (
            "wrong method",
            Box::new({
                let (k, c) = (alice2.clone(), canon2.clone());
                move |s| Some(signed(&k, 27235, now, tag_set(s, &c, "POST", now + 600)))
            }),
            "another HTTP method",
        ),
        (
            "wrong kind",
            Box::new({
                let (k, c) = (alice2.clone(), canon2.clone());
                move |s| Some(signed(&k, 1, now, tag_set(s, &c, "GET", now + 600)))
            }),
            "kind 1",
        ),
        (
            "another endpoint's token",
            Box::new({
                let (k, u) = (alice2.clone(), url2.clone());
                move |_| Some(token(&k, &u, &SecretKey::generate()))
            }),
            "another endpoint",
        ),
        (
            "bad signature",
            Box::new({
                let (k, c) = (alice2.clone(), canon2.clone());
                move |s| {
                    let t = signed(&k, 27235, now, tag_set(s, &c, "GET", now + 600));
                    let json = String::from_utf8(
                        base64::engine::general_purpose::STANDARD.decode(t).unwrap(),
                    )
                    .unwrap();
                    let tampered = json.replace(&(now + 600).to_string(), &(now + 601).to_string());
                    Some(base64::engine::general_purpose::STANDARD.encode(tampered))
                }
            }),
            "signature",
        ),
        (
            "not base64",
            Box::new(|_| Some("%%%not-base64%%%".into())),
            "not standard base64",
        ),
        (
            "whitespace inside",
            Box::new({
                let (k, u) = (alice2.clone(), url2.clone());
                move |s| {
                    let mut t = token(&k, &u, s);
                    t.insert(40, ' ');
                    Some(t)
                }
            }),
            "whitespace",
        ),
        (
            "oversized",
            Box::new(|_| Some("A".repeat(MAX_TOKEN_BYTES + 4))),
            "byte limit",
        ),
    ];
    for (name, make, want) in cases {
        let s = fresh();
        let reason = denial(connect(&url, &s, make(&s).as_deref()).await);
        assert!(
            reason.contains(want),
            "{name}: refused with {reason:?}, expected {want:?}"
        );
    }
    // The members' connections were untouched by all that.
    ping(&mut ok).await.unwrap();
    ping(&mut owner).await.unwrap();
    assert_eq!(relay.access().live_connections(), 2);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_member_is_dropped_within_5s_and_refused_after() {
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let group = Group::new(&[&alice, &bob]);
    let (relay, url) = group.relay().await;

    let (sa, sb) = (SecretKey::generate(), SecretKey::generate());
    let mut a = connect(&url, &sa, Some(&token(&alice, &url, &sa)))
        .await
        .unwrap();
    let mut b = connect(&url, &sb, Some(&token(&bob, &url, &sb)))
        .await
        .unwrap();
    ping(&mut a).await.unwrap();
    ping(&mut b).await.unwrap();

    assert!(members::remove_member(&group.members_file, &alice.public_key()).unwrap());
    let took = closed_within(&mut a, Duration::from_secs(5)).await;
    eprintln!("revoked connection dropped after {took:?}");
    // Bob is unaffected.
    ping(&mut b).await.unwrap();
    wait_until("the relay to forget Alice", || {
        !relay.access().is_connected(&sa.public())
    })
    .await;
    assert_eq!(relay.access().stats().revoked, 1);
    // Alice's next connection, same still-valid token, is refused.
    let reason = denial(connect(&url, &sa, Some(&token(&alice, &url, &sa))).await);
    assert!(reason.contains("not a member"), "{reason}");
    // Re-adding her admits her again, without a restart.
    members::add_member(&group.members_file, &alice.public_key()).unwrap();
    wait_until("Alice to be a member again", || {
        relay.membership().is_member(&alice.public_key())
    })
    .await;
    let mut a = connect(&url, &sa, Some(&token(&alice, &url, &sa)))
        .await
        .unwrap();
    ping(&mut a).await.unwrap();
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_a_live_iroh_endpoint_off() {
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let group = Group::new(&[&alice, &bob]);
    let (relay, url) = group.relay().await;
    let a = relay_only_endpoint(&url, &alice, vec![]).await;
    let b = relay_only_endpoint(&url, &bob, vec![ECHO.to_vec()]).await;
    let echo = serve_echo(b.clone());
    tokio::time::timeout(WAIT, async { tokio::join!(a.online(), b.online()) })
        .await
        .unwrap();
    let to_b = EndpointAddr::new(b.id()).with_relay_url(url.clone());
    assert_eq!(
        echo_via_relay(&a, to_b.clone(), b"before", WAIT)
            .await
            .unwrap(),
        b"before"
    );

    members::remove_member(&group.members_file, &bob.public_key()).unwrap();
    let start = std::time::Instant::now();
    wait_until("Bob's relay connection to be dropped", || {
        !relay.access().is_connected(&b.id())
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    // Bob's endpoint keeps redialling with its token and is refused each time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!relay.access().is_connected(&b.id()));
    assert!(
        echo_via_relay(&a, to_b, b"after", Duration::from_secs(3))
            .await
            .is_err()
    );
    for ep in [a, b] {
        ep.close().await;
    }
    echo.abort();
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_membership_list_from_nostr_admits_and_revokes() {
    let carol = Keys::generate();
    let group = Group::new(&[]);
    let nostr_relay = atoll_testkit::TestNostrRelay::spawn().await.unwrap();
    let (relay, url) = group
        .relay_with(|c| c.membership.nostr_relays = vec![nostr_relay.url().to_owned()])
        .await;
    let s = SecretKey::generate();
    let t = token(&carol, &url, &s);
    assert!(denial(connect(&url, &s, Some(&t)).await).contains("not a member"));

    let publisher = nostr_sdk::Client::builder()
        .signer(group.owner.clone())
        .build();
    publisher.add_relay(nostr_relay.url()).await.unwrap();
    publisher.connect().await;
    let now = Timestamp::now().as_secs();
    let list = nostr_list::membership_list_event(
        &group.owner,
        [&carol.public_key()],
        Timestamp::from_secs(now),
    )
    .unwrap();
    publisher.send_event(&list).await.unwrap();
    wait_until("Carol to join through the list", || {
        relay.membership().is_member(&carol.public_key())
    })
    .await;
    // Publishing the list again is not a change (same event).
    let mut c = connect(&url, &s, Some(&t)).await.unwrap();
    ping(&mut c).await.unwrap();

    // A list from someone else than the owner is ignored.
    let forged =
        nostr_list::membership_list_event(&Keys::generate(), [], Timestamp::from_secs(now + 1))
            .unwrap();
    publisher.send_event(&forged).await.unwrap();
    // The owner's newer list without Carol revokes her.
    let newer =
        nostr_list::membership_list_event(&group.owner, [], Timestamp::from_secs(now + 2)).unwrap();
    publisher.send_event(&newer).await.unwrap();
    closed_within(&mut c, Duration::from_secs(5)).await;
    assert!(denial(connect(&url, &s, Some(&t)).await).contains("not a member"));
    publisher.shutdown().await;
    relay.shutdown().await;
}

/// GET over a raw TCP connection; the body, or `None` when the relay
/// closed the connection without answering.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8(out).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_document_tells_how_to_get_in() {
    let group = Group::new(&[]);
    let (relay, url) = group
        .relay_with(|c| c.membership.nostr_relays = vec!["ws://127.0.0.1:9".into()])
        .await;
    let body = http_get(relay.local_addr(), atoll_relay::info::INFO_PATH)
        .await
        .expect("info document");
    let info: RelayInfo = serde_json::from_str(&body).unwrap();
    assert_eq!(
        info.url,
        admission::canonical_relay_url(url.as_str()).unwrap()
    );
    assert_eq!(info.admission.kind, 27235);
    assert_eq!(info.admission.method, "GET");
    assert_eq!(info.owner, members::npub(&group.owner.public_key()));
    assert_eq!(info.membership_list.kind, 13534);
    assert_eq!(
        info.membership_list.nostr_relays,
        vec!["ws://127.0.0.1:9".to_owned()]
    );
    // The usual relay endpoints are there too.
    assert!(http_get(relay.local_addr(), "/healthz").await.is_some());
    assert!(http_get(relay.local_addr(), "/ping").await.is_some());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_rate_limit_drops_connection_floods() {
    let group = Group::new(&[]);
    let (relay, _) = group
        .relay_with(|c| {
            c.admission.per_ip_burst = 3;
            c.admission.per_ip_per_second = 1;
        })
        .await;
    let mut answered = Vec::new();
    for _ in 0..12 {
        answered.push(http_get(relay.local_addr(), "/healthz").await.is_some());
    }
    assert!(answered[..3].iter().all(|a| *a), "{answered:?}");
    assert!(answered.iter().any(|a| !*a), "{answered:?}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_endpoint_rate_limit_slows_retries() {
    let alice = Keys::generate();
    let group = Group::new(&[&alice]);
    let (relay, url) = group
        .relay_with(|c| {
            c.admission.per_endpoint_burst = 2;
            c.admission.per_endpoint_per_minute = 1;
        })
        .await;
    let s = SecretKey::generate();
    for _ in 0..2 {
        assert!(denial(connect(&url, &s, Some("garbage")).await).contains("base64"));
    }
    // Now even a good token from this endpoint waits its turn.
    let reason = denial(connect(&url, &s, Some(&token(&alice, &url, &s))).await);
    assert!(reason.contains("too many"), "{reason}");
    // Another endpoint is not affected.
    let s2 = SecretKey::generate();
    connect(&url, &s2, Some(&token(&alice, &url, &s2)))
        .await
        .unwrap();
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_relay_admits_members_over_https_and_serves_address_discovery() {
    let alice = Keys::generate();
    let group = Group::new(&[&alice]);
    let (cert_file, key_file, der) = self_signed(group.dir.path());
    let (relay, _) = group
        .relay_with(|c| {
            let port = c
                .server
                .public_url
                .as_deref()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_owned();
            c.server.public_url = Some(format!("https://127.0.0.1:{port}"));
            c.tls = Some(atoll_relay::config::TlsConfig {
                cert_file,
                key_file,
                reload_interval_secs: 3600,
            });
            c.quic.address_discovery = true;
            c.quic.bind = "127.0.0.1:0".parse().unwrap();
        })
        .await;
    assert!(relay.quic_addr().is_some());
    let url: iroh::RelayUrl = format!("https://{}", relay.local_addr()).parse().unwrap();
    let roots = || iroh_relay::tls::CaTlsConfig::custom_roots([der.clone().into()]);
    let s = SecretKey::generate();
    let mut c = connect_with_roots(&url, &s, Some(&token(&alice, &url, &s)), roots())
        .await
        .unwrap();
    ping(&mut c).await.unwrap();
    let s = SecretKey::generate();
    let reason = denial(
        connect_with_roots(&url, &s, Some(&token(&Keys::generate(), &url, &s)), roots()).await,
    );
    assert!(reason.contains("not a member"), "{reason}");
    // A token for the plain-HTTP spelling of the URL is for another relay.
    let http: iroh::RelayUrl = format!("http://{}", relay.local_addr()).parse().unwrap();
    let s = SecretKey::generate();
    let reason =
        denial(connect_with_roots(&url, &s, Some(&token(&alice, &http, &s)), roots()).await);
    assert!(reason.contains("another relay URL"), "{reason}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_relay_stops_it() {
    let alice = Keys::generate();
    let group = Group::new(&[&alice]);
    let (relay, url) = group.relay().await;
    let s = SecretKey::generate();
    let mut c = connect(&url, &s, Some(&token(&alice, &url, &s)))
        .await
        .unwrap();
    ping(&mut c).await.unwrap();
    let addr = relay.local_addr();
    drop(relay);
    // Clients are disconnected and the port is closed, with no shutdown().
    closed_within(&mut c, Duration::from_secs(5)).await;
    wait_until("the listener to close", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
}
