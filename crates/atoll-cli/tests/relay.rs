//! `atoll relay …` as a person uses it, against a real relay on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::{atoll, fails, ok, s};

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use atoll_core::{KeyDir, admission};
use atoll_relay::{Relay, RelaydConfig, members};

fn npub_of(dir: &Path) -> String {
    KeyDir::new(dir).load().unwrap().nostr.npub()
}

#[test]
fn members_add_ls_rm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members");
    let (a, b) = (
        nostr::Keys::generate().public_key(),
        nostr::Keys::generate().public_key(),
    );
    let (na, hb) = (members::npub(&a), b.to_hex());
    let out = ok(&["relay", "members", "add", "--file", s(&file), &na, &hb]);
    assert!(out.contains(&format!("added {na}")), "{out}");
    assert!(ok(&["relay", "members", "add", "--file", s(&file), &na]).contains("already"));
    let mut want = vec![na.clone(), members::npub(&b)];
    want.sort();
    assert_eq!(
        ok(&["relay", "members", "ls", "--file", s(&file)])
            .lines()
            .collect::<Vec<_>>(),
        want
    );
    assert!(ok(&["relay", "members", "rm", "--file", s(&file), &hb]).contains("removed"));
    assert_eq!(
        ok(&["relay", "members", "ls", "--file", s(&file)]).trim(),
        na
    );
    let err = fails(&["relay", "members", "rm", "--file", s(&file), &hb]);
    assert!(err.contains("not in"), "{err}");
    let err = fails(&["relay", "members", "add", "--file", s(&file), "npub1bogus"]);
    assert!(err.contains("not a Nostr public key"), "{err}");
    // A hand-edited file with a bad line is reported, not half-read.
    std::fs::write(&file, format!("{na}\noops\n")).unwrap();
    let err = fails(&["relay", "members", "ls", "--file", s(&file)]);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn token_is_bound_to_this_node_and_relay() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    ok(&["keys", "init", "--dir", s(&keys)]);
    let token = ok(&[
        "relay",
        "token",
        "--dir",
        s(&keys),
        "--relay",
        "https://Relay.Example.org/",
    ]);
    let node = KeyDir::new(&keys).load().unwrap();
    let adm = admission::verify(
        token.trim(),
        "https://relay.example.org",
        &node.node.endpoint_id(),
        SystemTime::now(),
        admission::DEFAULT_MAX_SKEW,
    )
    .unwrap();
    assert_eq!(adm.pubkey, node.nostr.keys().public_key());
    assert!(adm.expires_at > SystemTime::now() + Duration::from_secs(23 * 3600));
    let err = fails(&[
        "relay",
        "token",
        "--dir",
        s(&keys),
        "--relay",
        "https://x",
        "--ttl-hours",
        "1000",
    ]);
    assert!(err.contains("lifetime"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_admitted_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (member, outsider) = (dir.path().join("member"), dir.path().join("outsider"));
    ok(&["keys", "init", "--dir", s(&member)]);
    ok(&["keys", "init", "--dir", s(&outsider)]);
    let file = dir.path().join("members");
    ok(&[
        "relay",
        "members",
        "add",
        "--file",
        s(&file),
        &npub_of(&member),
    ]);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut config = RelaydConfig::default();
    config.server.public_url = Some(url.clone());
    config.membership.owner = Some(nostr::Keys::generate().public_key().to_hex());
    config.membership.members_file = Some(file.clone());
    let relay = Relay::builder(config)
        .listener(listener)
        .spawn()
        .await
        .unwrap();

    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            atoll(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let check = |d: &Path| {
        vec![
            "relay".into(),
            "check".into(),
            url.clone(),
            "--dir".into(),
            s(d).into(),
        ]
    };
    let out = run(check(&member)).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("admitted"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(check(&outsider)).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("refused") && stderr.contains("not a member"),
        "{stderr}"
    );

    // Removing the member is seen by the next check.
    ok(&[
        "relay",
        "members",
        "rm",
        "--file",
        s(&file),
        &npub_of(&member),
    ]);
    let gone = KeyDir::new(&member)
        .load()
        .unwrap()
        .nostr
        .keys()
        .public_key();
    tokio::time::timeout(Duration::from_secs(15), async {
        while relay.membership().is_member(&gone) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the relay re-reads its members file");
    let out = run(check(&member)).await.unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    relay.shutdown().await;

    // Nobody listening: an error, not a verdict.
    let mut args = check(&member);
    args.extend(["--timeout-secs".into(), "3".into()]);
    let out = run(args).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stderr.contains("refused by"),
        "{stderr}"
    );
}
