//! Scenario 1, Swarm, on network-namespace hosts: an infrastructure host
//! (iroh relay, Nostr relay, HTTP origin) and swarm nodes that can reach
//! it but not each other, so every transfer goes through the relay.
//!
//! A adds a 50 MB blob; B fetches it; C fetches from A and B; A stops and
//! a new node D still gets it from B/C; a node serving corrupted bytes is
//! caught and the fetch completes elsewhere; with no seeders the origin
//! serves it; every result is BLAKE3-checked by the CLI and again here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use atoll_core::ContentId;
use atoll_scenarios::{Devnet, SwarmNode, hub, path_str, random_file, spoke, wait_for};
use atoll_testkit::{Host, Lab, netns};

const NET: &str = "10.1";
const INFRA: &str = "10.1.0.1";
const BLOB_BYTES: usize = 50 * 1024 * 1024;

fn node_config() -> String {
    format!(
        r#"# Same schema as services.atoll.swarm.settings in modules/swarm.nix.
[node]
bind = "0.0.0.0:4919"
relays = ["http://{INFRA}:3340"]

[nostr]
relays = ["ws://{INFRA}:7777"]
lookup_timeout_secs = 3

[fetch]
peer_timeout_secs = 60
"#
    )
}

fn get(node: &SwarmNode, id: &ContentId, out: &Path, extra: &[&str]) -> Result<String> {
    let id_s = id.to_string();
    let mut args = vec!["blob", "get", id_s.as_str(), "-o", path_str(out)?];
    args.extend_from_slice(extra);
    let o = node.atoll(&args)?;
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    anyhow::ensure!(
        ContentId::hash_file(out)? == *id,
        "{} does not hash to {id}",
        out.display()
    );
    Ok(stderr)
}

/// Fetching right after an add may race the advert; retry for a while.
fn get_eventually(node: &SwarmNode, id: &ContentId, out: &Path) -> Result<String> {
    let mut last = String::new();
    wait_for(
        "a seeder to be found",
        Duration::from_secs(60),
        || match get(node, id, out, &[]) {
            Ok(s) => Some(s),
            Err(e) => {
                last = format!("{e:#}");
                std::thread::sleep(Duration::from_millis(500));
                None
            }
        },
    )
    .with_context(|| last.clone())
}

#[test]
fn netns_swarm_scenario() -> Result<()> {
    if !netns::available() {
        eprintln!("SKIP: needs root and iproute2");
        return Ok(());
    }
    let dir = atoll_testkit::TempState::new("swarm-scenario")?;
    let d = dir.path();
    let mut lab = Lab::new()?;
    let infra = hub(&mut lab, "infra", NET)?;
    let hosts: Vec<Host> = ["a", "b", "c", "d", "e", "f", "g"]
        .iter()
        .enumerate()
        .map(|(i, n)| spoke(&mut lab, &infra, NET, n, i as u8 + 1))
        .collect::<Result<_>>()?;
    let [ha, hb, hc, hd, he, hf, hg] = &hosts[..] else {
        unreachable!()
    };

    // The origin holds a second blob that no node will ever seed.
    let origin_dir = d.join("origin");
    std::fs::create_dir_all(&origin_dir)?;
    random_file(
        &origin_dir.join("only-at-origin.bin"),
        3 * 1024 * 1024 + 7,
        99,
    )?;
    let origin_only = ContentId::hash_file(&origin_dir.join("only-at-origin.bin"))?;
    let _infra = Devnet::spawn(
        &infra,
        d,
        &[
            "--iroh-bind",
            &format!("{INFRA}:3340"),
            "--nostr-bind",
            &format!("{INFRA}:7777"),
            "--origin-bind",
            &format!("{INFRA}:8080"),
            "--origin-dir",
            path_str(&origin_dir)?,
        ],
        &["NOSTR_RELAY", "ORIGIN"],
    )?;

    // Direct paths are blocked: a cannot reach b's address.
    let blocked = ha
        .command("ip")
        .args(["route", "get", "10.1.2.2"])
        .output()?;
    assert!(!blocked.status.success(), "a has a route to b");

    let cfg = node_config();
    let mut a = SwarmNode::start(ha, d, "a", &cfg)?;
    let b = SwarmNode::start(hb, d, "b", &cfg)?;
    let c = SwarmNode::start(hc, d, "c", &cfg)?;
    let (a_id, b_id) = (a.node_id()?, b.node_id()?);

    // A adds a 50 MB blob.
    let original = d.join("film.bin");
    random_file(&original, BLOB_BYTES, 1)?;
    let id = ContentId::hash_file(&original)?;
    a.atoll(&["blob", "add", path_str(&original)?])?;

    // B fetches it from A, through the relay.
    let log = get_eventually(&b, &id, &d.join("b.out"))?;
    assert!(log.contains(&a_id), "B's source should be A: {log}");

    // C fetches from A and B (in parallel segments).
    let log = get_eventually(&c, &id, &d.join("c.out"))?;
    assert!(log.contains(&a_id) || log.contains(&b_id), "{log}");
    eprintln!("C: {log}");

    // A stops; a new node D still gets it, from B or C.
    a.daemon.stop()?;
    let dn = SwarmNode::start(hd, d, "d", &cfg)?;
    let log = get_eventually(&dn, &id, &d.join("d.out"))?;
    assert!(log.contains("fetched from peer"), "{log}");
    assert!(
        !log.contains(&format!("peer(s) {a_id}")),
        "A is gone: {log}"
    );

    // E holds the blob but its disk serves corrupted bytes; F asks E
    // first (by ticket) and still ends with the right bytes.
    let e = SwarmNode::start(he, d, "e", &cfg)?;
    get_eventually(&e, &id, &d.join("e.out"))?;
    let e_id = e.node_id()?;
    let data_file = e.state.join(format!("blobs/data/{}.data", id.to_hex()));
    let mut bytes = std::fs::read(&data_file)?;
    for i in (0..bytes.len()).step_by(64 * 1024) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(&data_file, bytes)?;
    let ticket = String::from_utf8(e.atoll(&["blob", "ticket", &id.to_string()])?.stdout)?;
    let f = SwarmNode::start(hf, d, "f", &cfg)?;
    let log = get(&f, &id, &d.join("f.out"), &["--ticket", ticket.trim()])?;
    assert!(
        log.contains(&format!("peer {e_id} failed")),
        "the liar must be caught: {log}"
    );
    let status = String::from_utf8(f.atoll(&["status"])?.stdout)?;
    assert!(status.contains(&e_id), "F avoids E: {status}");

    // No seeder anywhere: the origin serves it, verified.
    let g = SwarmNode::start(hg, d, "g", &cfg)?;
    let url = format!("http://{INFRA}:8080/only-at-origin.bin");
    let log = get(&g, &origin_only, &d.join("g.out"), &["--origin", &url])?;
    assert!(log.contains("fetched from origin"), "{log}");
    // A wrong origin is named in the error and nothing is written.
    let wrong = ContentId::of(b"not this");
    let err = get(&g, &wrong, &d.join("wrong.out"), &["--origin", &url]).unwrap_err();
    assert!(format!("{err:#}").contains("served wrong bytes"), "{err:#}");
    assert!(!d.join("wrong.out").exists());
    Ok(())
}
