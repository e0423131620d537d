//! The swarm daemon killed (SIGKILL) in the middle of a fetch and
//! restarted: the partial blob is never listed or served as complete, its
//! verified part is kept, and fetching again completes it. Both nodes run
//! in one network namespace whose loopback is throttled to 80 Mbit/s, so
//! the kill lands mid-transfer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::{process::Stdio, time::Duration};

use anyhow::Result;
use atoll_core::ContentId;
use atoll_scenarios::{SwarmNode, bin, path_str, random_file, wait_for};
use atoll_testkit::{Lab, netns};

const CONFIG: &str = r#"[node]
bind = "127.0.0.1:0"
[fetch]
peer_timeout_secs = 60
"#;

#[test]
fn netns_swarmd_killed_mid_fetch_resumes_and_never_serves_a_partial_blob() -> Result<()> {
    if !netns::available() {
        eprintln!("SKIP: needs root and iproute2");
        return Ok(());
    }
    let dir = atoll_testkit::TempState::new("crash-scenario")?;
    let d = dir.path();
    let mut lab = Lab::new()?;
    let host = lab.host("solo")?;
    let tc = host
        .command("tc")
        .args([
            "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "80mbit", "burst", "256kb",
            "latency", "50ms",
        ])
        .status()?;
    anyhow::ensure!(tc.success(), "tc failed");

    let src = SwarmNode::start(&host, d, "src", CONFIG)?;
    let original = d.join("big.bin");
    random_file(&original, 40 * 1024 * 1024, 3)?;
    let id = ContentId::hash_file(&original)?;
    src.atoll(&["blob", "add", path_str(&original)?])?;
    let ticket = String::from_utf8(src.atoll(&["blob", "ticket", &id.to_string()])?.stdout)?;
    let ticket = ticket.trim().to_owned();

    let mut dst = SwarmNode::start(&host, d, "dst", CONFIG)?;
    let out = d.join("dst.out");
    let mut getter = std::process::Command::new(bin("atoll")?)
        .arg("--socket")
        .arg(&dst.socket)
        .args(["blob", "get", "--ticket", &ticket, "-o", path_str(&out)?])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // Wait until a good part has arrived, then kill -9 the daemon.
    let data = dst.state.join(format!("blobs/data/{}.data", id.to_hex()));
    wait_for(
        "part of the blob to arrive",
        Duration::from_secs(60),
        || {
            std::fs::metadata(&data)
                .ok()
                .filter(|m| m.len() > 8 * 1024 * 1024)
        },
    )?;
    dst.daemon.kill()?;
    let status = getter.wait()?;
    assert!(
        !status.success(),
        "the CLI must report the interrupted fetch"
    );
    assert!(
        !out.exists(),
        "nothing may be written from an unfinished fetch"
    );
    let kept = std::fs::metadata(&data)?.len();
    assert!(
        kept < 40 * 1024 * 1024,
        "the kill came too late to test anything ({kept} bytes)"
    );

    // Restarted: the partial blob is not listed and cannot be read whole.
    let dst = SwarmNode::start(&host, d, "dst", CONFIG)?;
    let ls = String::from_utf8(dst.atoll(&["blob", "ls"])?.stdout)?;
    assert!(!ls.contains(&id.to_string()), "partial blob listed: {ls}");
    let no_source = dst.atoll(&[
        "blob",
        "get",
        &id.to_string(),
        "-o",
        path_str(&d.join("x"))?,
    ]);
    assert!(
        no_source.is_err(),
        "a partial blob must not be served as complete"
    );
    assert!(!d.join("x").exists());

    // Fetching again completes it, verified.
    dst.atoll(&["blob", "get", "--ticket", &ticket, "-o", path_str(&out)?])?;
    assert_eq!(ContentId::hash_file(&out)?, id);
    Ok(())
}
