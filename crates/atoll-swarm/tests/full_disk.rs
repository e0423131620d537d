//! A full disk during a fetch: a clear error, nothing half-written held or
//! listed, and the node keeps working. Needs root (it mounts a small
//! tmpfs); prints SKIP otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::process::Command;

use atoll_core::ContentId;
use atoll_swarm::FetchRequest;
use common::{Origin, OriginMode, TestNode, data};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[tokio::test]
async fn full_disk_gives_a_clear_error_and_keeps_nothing() {
    if !is_root() {
        eprintln!("SKIP: needs root to mount a small tmpfs");
        return;
    }
    let dir = atoll_testkit::TempState::new("full").unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let _mount = Mount(dir.path().to_owned());
    let dir = atoll_testkit::TempState::adopt(dir.into_path()).unwrap();

    let big = data(6 * 1024 * 1024, 30);
    let small = data(64 * 1024, 31);
    let (big_id, small_id) = (ContentId::of(&big), ContentId::of(&small));
    let origin = Origin::spawn(vec![big, small.clone()], OriginMode::Good).await;
    let n = TestNode::spawn_in(dir, |_| {}).await;

    let err = n
        .node
        .state()
        .fetch(FetchRequest {
            id: Some(big_id),
            origins: vec![origin.blob_url(&big_id)],
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(n.node.state().blobs().list().unwrap().is_empty());
    assert!(
        n.node
            .state()
            .blobs()
            .complete_size(&big_id)
            .await
            .unwrap()
            .is_none()
    );
    let tmp = n.dir.state().join("tmp");
    assert!(
        !tmp.exists() || std::fs::read_dir(&tmp).unwrap().count() == 0,
        "temp file left behind"
    );

    // The space is back: a blob that fits still arrives, verified.
    let out = n
        .node
        .state()
        .fetch(FetchRequest {
            id: Some(small_id),
            origins: vec![origin.blob_url(&small_id)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.size, small.len() as u64);
    n.node.shutdown().await;
}
