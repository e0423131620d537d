//! The `atoll-walletd` binary: `--check-config`, a bad config, and a real
//! start that reports READY to systemd, serves its socket and stops on
//! SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use atoll_core::local_api::LocalClient;
use atoll_wallet::Balance;

const BIN: &str = env!("CARGO_BIN_EXE_atoll-walletd");

#[test]
fn check_config_accepts_good_and_refuses_bad() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[wallet]\ntrusted_mints = [\"http://127.0.0.1:3338\"]\n[budget]\nper_payment_sat = 50\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[budget]\nper_paymnt_sat = 50\n").unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("per_paymnt_sat"));

    let out = Command::new(BIN)
        .args(["--check-config"])
        .env("ATOLL_WALLETD_BUDGET__PER_PAYMENT_SAT", "99999999")
        .output()
        .unwrap();
    assert!(!out.status.success(), "per payment above per day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_notifies_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let state = dir.path().join("state");
    let run = dir.path().join("run");
    let child = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .arg("--runtime-dir")
        .arg(&run)
        .env("NOTIFY_SOCKET", &notify)
        .env_remove("ATOLL_WALLETD_API__SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut buf = [0u8; 256];
    let len = listener.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
    assert!(msg.contains("READY=1"), "{msg}");

    let seed = state.join(atoll_wallet::wallet::SEED_FILE);
    let mode = std::fs::metadata(&seed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let words = std::fs::read_to_string(&seed).unwrap();

    let client = LocalClient::new(run.join("walletd.sock"));
    let balance: Balance = client.get("/balance").await.unwrap();
    assert_eq!(balance.total_sat, 0);

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.status.success(), "{exit:?}");
    // The seed never reaches the log.
    let log = String::from_utf8_lossy(&exit.stderr);
    assert!(!log.contains(words.trim()), "seed in the log");
}
