//! `MemberAccess` as iroh-relay calls it: `on_connect` with constructed
//! `ClientRequest`s, one per kind of refusal, and the live-connection index
//! that revocation works from.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::{collections::HashSet, time::Duration};

use atoll_core::admission::{self, DEFAULT_MAX_SKEW, DEFAULT_TTL, Verifier};
use atoll_relay::{MemberAccess, Membership, limit::Rate};
use iroh::SecretKey;
use iroh_relay::{
    http::ProtocolVersion,
    server::{Access, AccessControl, ClientRequest},
};
use nostr::Keys;

const URL: &str = "https://relay.example.org";

fn request(
    endpoint: &SecretKey,
    authorization: Option<&str>,
    query: Option<&str>,
) -> ClientRequest {
    let uri = match query {
        Some(q) => format!("{URL}/relay?{q}"),
        None => format!("{URL}/relay"),
    };
    let mut req = hyper::Request::builder().method("GET").uri(uri);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let (parts, ()) = req.body(()).unwrap().into_parts();
    ClientRequest::new(endpoint.public(), ProtocolVersion::V2, parts)
}

fn access(owner: &Keys, members: &[&Keys], rate: Rate) -> MemberAccess {
    let m = Membership::new(owner.public_key());
    m.set_file_members(members.iter().map(|k| k.public_key()).collect());
    MemberAccess::new(Verifier::new(URL, DEFAULT_MAX_SKEW).unwrap(), m, rate)
}

const GENEROUS: Rate = Rate {
    burst: 1000,
    per_sec: 1000.0,
};

fn reason(a: Access) -> String {
    match a {
        Access::Deny { reason } => reason.unwrap_or_default(),
        Access::Allow => panic!("expected a refusal, got Allow"),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn members_are_admitted_by_header_or_query_and_indexed() {
    let (owner, alice) = (Keys::generate(), Keys::generate());
    let acc = access(&owner, &[&alice], GENEROUS);
    let s = SecretKey::generate();
    let t = admission::sign(&alice, URL, &s.public(), DEFAULT_TTL).unwrap();
    let req = request(&s, Some(&bearer(&t)), None);
    assert_eq!(acc.on_connect(&req).await, Access::Allow);
    assert!(acc.is_connected(&s.public()));
    // The `token` query parameter works too (iroh in browsers sends that).
    let s2 = SecretKey::generate();
    let t2 = admission::sign(&owner, URL, &s2.public(), DEFAULT_TTL).unwrap();
    let q = format!(
        "token={}",
        t2.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    assert_eq!(
        acc.on_connect(&request(&s2, None, Some(&q))).await,
        Access::Allow
    );
    assert_eq!(acc.live_connections(), 2);
    acc.on_disconnect(s.public(), req.connection_id());
    assert!(!acc.is_connected(&s.public()));
    assert_eq!(acc.live_connections(), 1);
    assert_eq!(acc.stats().admitted, 2);
}

/// Makes the `Authorization` header (if any) for an endpoint.
type MakeAuth = Box<dyn Fn(&SecretKey) -> Option<String>>;

#[tokio::test]
async fn each_kind_of_bad_token_is_refused() {
    let (owner, alice) = (Keys::generate(), Keys::generate());
    let acc = access(&owner, &[&alice], GENEROUS);
    let now = std::time::SystemTime::now();
    let cases: Vec<(&str, MakeAuth, &str)> = vec![
        ("no header", Box::new(|_| None), "no admission token"),
        (
            "another scheme",
            Box::new(|_| Some("Basic dXNlcjpwdw==".into())),
            "no admission token",
        ),
        ("empty", Box::new(|_| Some("Bearer ".into())), "empty token"),
        (
            "non-member",
            Box::new(|s| {
                Some(bearer(
                    &admission::sign(&Keys::generate(), URL, &s.public(), DEFAULT_TTL).unwrap(),
                ))
            }),
            "not a member",
        ),
        (
            "expired",
            Box::new({
                let a = alice.clone();
                move |s| {
                    Some(bearer(
                        &admission::sign_at(
                            &a,
                            URL,
                            &s.public(),
                            now - Duration::from_secs(7200),
                            Duration::from_secs(60),
                        )
                        .unwrap(),
                    ))
                }
            }),
            "expired",
        ),
        (
            "future-dated",
            Box::new({
                let a = alice.clone();
                move |s| {
                    Some(bearer(
                        &admission::sign_at(
                            &a,
                            URL,
                            &s.public(),
                            now + Duration::from_secs(600),
                            DEFAULT_TTL,
                        )
                        .unwrap(),
                    ))
                }
            }),
            "in the future",
        ),
        (
            "wrong URL",
            Box::new({
                let a = alice.clone();
                move |s| {
                    Some(bearer(
                        &admission::sign(
                            &a,
                            "https://relay.example.org:8443",
                            &s.public(),
                            DEFAULT_TTL,
                        )
                        .unwrap(),
                    ))
                }
            }),
            "another relay URL",
        ),
        (
            "other endpoint",
            Box::new({
                let a = alice.clone();
                move |_| {
                    Some(bearer(
                        &admission::sign(&a, URL, &SecretKey::generate().public(), DEFAULT_TTL)
                            .unwrap(),
                    ))
                }
            }),
            "another endpoint",
        ),
        ("not base64", Box::new(|_| Some(bearer("!!!!"))), "base64"),
        (
            "whitespace",
            Box::new({
                let a = alice.clone();
                move |s| {
                    let mut t = admission::sign(&a, URL, &s.public(), DEFAULT_TTL).unwrap();
                    t.insert(10, '\t');
                    Some(bearer(&t))
                }
            }),
            "whitespace",
        ),
        (
            "oversized",
            Box::new(|_| Some(bearer(&"QUFB".repeat(admission::MAX_TOKEN_BYTES / 4 + 1)))),
            "byte limit",
        ),
        (
            "json, not an event",
            Box::new(|_| Some(bearer("eyJhIjoxfQ=="))),
            "not a Nostr event",
        ),
    ];
    for (name, make, want) in cases {
        let s = SecretKey::generate();
        let auth = make(&s);
        let r = reason(acc.on_connect(&request(&s, auth.as_deref(), None)).await);
        assert!(r.contains(want), "{name}: {r:?} does not contain {want:?}");
        assert!(!acc.is_connected(&s.public()), "{name}");
    }
    assert_eq!(acc.stats().admitted, 0);
    assert_eq!(acc.live_connections(), 0);
}

#[tokio::test]
async fn endpoint_attempts_are_rate_limited() {
    let (owner, alice) = (Keys::generate(), Keys::generate());
    let acc = access(
        &owner,
        &[&alice],
        Rate {
            burst: 3,
            per_sec: 0.001,
        },
    );
    let s = SecretKey::generate();
    for _ in 0..3 {
        assert!(
            reason(acc.on_connect(&request(&s, Some("Bearer x"), None)).await).contains("base64")
        );
    }
    let t = admission::sign(&alice, URL, &s.public(), DEFAULT_TTL).unwrap();
    assert!(
        reason(acc.on_connect(&request(&s, Some(&bearer(&t)), None)).await).contains("too many")
    );
    let s2 = SecretKey::generate();
    let t2 = admission::sign(&alice, URL, &s2.public(), DEFAULT_TTL).unwrap();
    assert_eq!(
        acc.on_connect(&request(&s2, Some(&bearer(&t2)), None))
            .await,
        Access::Allow
    );
}

#[tokio::test]
async fn revoked_connections_are_the_live_ones_of_removed_members() {
    let (owner, alice, bob) = (Keys::generate(), Keys::generate(), Keys::generate());
    let acc = access(&owner, &[&alice, &bob], GENEROUS);
    let mut reqs = Vec::new();
    for k in [&alice, &alice, &bob, &owner] {
        let s = SecretKey::generate();
        let t = admission::sign(k, URL, &s.public(), DEFAULT_TTL).unwrap();
        let req = request(&s, Some(&bearer(&t)), None);
        assert_eq!(acc.on_connect(&req).await, Access::Allow);
        reqs.push(req);
    }
    assert!(acc.revoked_connections().is_empty());
    acc.membership()
        .set_file_members(HashSet::from([bob.public_key()]));
    let revoked: HashSet<_> = acc.revoked_connections().into_iter().collect();
    let alices: HashSet<_> = reqs[..2]
        .iter()
        .map(|r| (r.endpoint_id(), r.connection_id()))
        .collect();
    assert_eq!(revoked, alices);
    // The owner cannot be revoked; once the relay reports Alice's
    // connections gone, nothing is left to drop.
    acc.membership().set_file_members(HashSet::new());
    assert_eq!(acc.revoked_connections().len(), 3);
    for r in &reqs[..3] {
        acc.on_disconnect(r.endpoint_id(), r.connection_id());
    }
    assert!(acc.revoked_connections().is_empty());
    assert_eq!(acc.live_connections(), 1);
}
