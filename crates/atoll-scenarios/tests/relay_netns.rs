//! Scenario 2, Admission, on network-namespace hosts: `atoll-relayd` on an
//! infrastructure host, two member nodes that cannot reach each other
//! directly, and a non-member. The members exchange a blob through the
//! relay; the non-member is refused and cannot fetch; a member removed
//! from the members file is cut off without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::{path::Path, process::Output, time::Duration};

use anyhow::{Context, Result};
use atoll_core::ContentId;
use atoll_scenarios::{
    Daemon, Devnet, SwarmNode, bin, hub, path_str, random_file, spoke, wait_for,
};
use atoll_testkit::{Host, Lab, netns};

const NET: &str = "10.2";
const INFRA: &str = "10.2.0.1";

/// Runs the `atoll` CLI inside `host` (it dials the relay).
fn atoll_in(host: &Host, args: &[&str]) -> Result<Output> {
    Ok(host.command(bin("atoll")?).args(args).output()?)
}

fn npub(keys: &Path) -> Result<String> {
    let out = std::process::Command::new(bin("atoll")?)
        .args(["keys", "show", "--dir", path_str(keys)?])
        .output()?;
    String::from_utf8(out.stdout)?
        .lines()
        .find_map(|l| l.strip_prefix("nostr key:").map(|s| s.trim().to_owned()))
        .context("no npub")
}

#[test]
fn netns_relay_admission_scenario() -> Result<()> {
    if !netns::available() {
        eprintln!("SKIP: needs root and iproute2");
        return Ok(());
    }
    let dir = atoll_testkit::TempState::new("relay-scenario")?;
    let d = dir.path();
    let mut lab = Lab::new()?;
    let infra = hub(&mut lab, "infra", NET)?;
    let ha = spoke(&mut lab, &infra, NET, "a", 1)?;
    let hb = spoke(&mut lab, &infra, NET, "b", 2)?;
    let hc = spoke(&mut lab, &infra, NET, "c", 3)?;

    // Keys first, so the members file can name them.
    for n in ["owner", "a", "b", "c"] {
        let keys = d.join(n).join("keys");
        let out = std::process::Command::new(bin("atoll")?)
            .args(["keys", "init", "--dir", path_str(&keys)?])
            .output()?;
        anyhow::ensure!(out.status.success(), "{out:?}");
    }
    let members = d.join("members");
    let out = std::process::Command::new(bin("atoll")?)
        .args(["relay", "members", "add", "--file", path_str(&members)?])
        .arg(npub(&d.join("a/keys"))?)
        .arg(npub(&d.join("b/keys"))?)
        .output()?;
    anyhow::ensure!(out.status.success(), "{out:?}");

    let relay_cfg = d.join("relayd.toml");
    std::fs::write(
        &relay_cfg,
        format!(
            r#"# Same schema as services.atoll.relay.settings in modules/relay.nix.
[server]
bind = "{INFRA}:3340"
public_url = "http://{INFRA}:3340"
insecure_http = true

[membership]
owner = "{owner}"
members_file = "{members}"
reload_interval_ms = 250
"#,
            owner = npub(&d.join("owner/keys"))?,
            members = members.display()
        ),
    )?;
    let relayd_state = d.join("relayd");
    let _relayd = Daemon::spawn(
        &infra,
        "relayd",
        &bin("atoll-relayd")?,
        &[
            "--config",
            path_str(&relay_cfg)?,
            "--state-dir",
            path_str(&relayd_state)?,
        ],
        &d.join("relayd.log"),
    )?;
    // Seed adverts need a Nostr relay; atoll-devnet's open iroh relay is
    // kept on loopback where no node can use it.
    let _nostr = Devnet::spawn(
        &infra,
        d,
        &[
            "--iroh-bind",
            "127.0.0.1:0",
            "--nostr-bind",
            &format!("{INFRA}:7777"),
        ],
        &["NOSTR_RELAY"],
    )?;
    let url = format!("http://{INFRA}:3340");
    wait_for("the relay", Duration::from_secs(20), || {
        atoll_in(
            &ha,
            &[
                "relay",
                "check",
                &url,
                "--dir",
                path_str(&d.join("a/keys")).ok()?,
            ],
        )
        .ok()
        .filter(|o| o.status.success())
    })
    .with_context(|| std::fs::read_to_string(d.join("relayd.log")).unwrap_or_default())?;

    // Admission as the CLI sees it.
    let c_check = atoll_in(
        &hc,
        &[
            "relay",
            "check",
            &url,
            "--dir",
            path_str(&d.join("c/keys"))?,
        ],
    )?;
    assert!(
        !c_check.status.success(),
        "non-member admitted: {c_check:?}"
    );
    let text = String::from_utf8_lossy(&c_check.stdout).to_string()
        + &String::from_utf8_lossy(&c_check.stderr);
    assert!(text.contains("refused"), "{text}");

    let cfg = format!(
        r#"[node]
bind = "0.0.0.0:4919"
relays = ["{url}"]
key_dir = "keys"
[nostr]
relays = ["ws://{INFRA}:7777"]
lookup_timeout_secs = 3
[fetch]
peer_timeout_secs = 20
"#
    );
    // The state dirs already hold the keys made above.
    let a = SwarmNode::start(&ha, d, "a", &cfg)?;
    let b = SwarmNode::start(&hb, d, "b", &cfg)?;
    let c = SwarmNode::start(&hc, d, "c", &cfg)?;

    let original = d.join("blob.bin");
    random_file(&original, 8 * 1024 * 1024 + 3, 7)?;
    let id = ContentId::hash_file(&original)?;
    a.atoll(&["blob", "add", path_str(&original)?])?;

    // B, a member, fetches through the relay.
    let out_b = d.join("b.out");
    let mut last = String::new();
    wait_for(
        "B to fetch through the relay",
        Duration::from_secs(90),
        || match b.atoll(&["blob", "get", &id.to_string(), "-o", path_str(&out_b).ok()?]) {
            Ok(_) => Some(()),
            Err(e) => {
                last = format!("{e:#}");
                std::thread::sleep(Duration::from_secs(1));
                None
            }
        },
    )
    .with_context(|| last.clone())?;
    assert_eq!(ContentId::hash_file(&out_b)?, id);

    // C, not a member, finds A's advert but cannot reach A.
    let err = c
        .atoll(&[
            "blob",
            "get",
            &id.to_string(),
            "-o",
            path_str(&d.join("c.out"))?,
        ])
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("could not be fetched"), "{err}");
    assert!(!d.join("c.out").exists());

    // B is removed from the members file: the relay drops it at once, and
    // a new blob from A no longer reaches it.
    let out = std::process::Command::new(bin("atoll")?)
        .args(["relay", "members", "rm", "--file", path_str(&members)?])
        .arg(npub(&d.join("b/keys"))?)
        .output()?;
    anyhow::ensure!(out.status.success(), "{out:?}");
    wait_for("B's check to be refused", Duration::from_secs(10), || {
        atoll_in(
            &hb,
            &[
                "relay",
                "check",
                &url,
                "--dir",
                path_str(&d.join("b/keys")).ok()?,
            ],
        )
        .ok()
        .filter(|o| !o.status.success())
    })?;
    let second = d.join("second.bin");
    random_file(&second, 1024 * 1024, 8)?;
    let id2 = ContentId::hash_file(&second)?;
    a.atoll(&["blob", "add", path_str(&second)?])?;
    std::thread::sleep(Duration::from_secs(1));
    let err = b
        .atoll(&[
            "blob",
            "get",
            &id2.to_string(),
            "-o",
            path_str(&d.join("b2.out"))?,
        ])
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("could not be fetched"),
        "{err:#}"
    );
    Ok(())
}
