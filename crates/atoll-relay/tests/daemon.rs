//! The `atoll-relayd` binary: `--check-config`, READY to systemd, and a
//! clean stop on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::{
    os::unix::net::UnixDatagram,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn relayd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atoll-relayd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ATOLL_RELAYD_") {
            c.env_remove(k);
        }
    }
    c
}

fn write_config(dir: &Path, server: &str) -> std::path::PathBuf {
    let members = dir.join("members");
    std::fs::write(
        &members,
        format!("{}\n", nostr::Keys::generate().public_key().to_hex()),
    )
    .unwrap();
    let path = dir.join("relayd.toml");
    let owner = nostr::Keys::generate().public_key().to_hex();
    std::fs::write(
        &path,
        format!(
            "[server]\n{server}\n[membership]\nowner = \"{owner}\"\nmembers_file = \"{}\"\n",
            members.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_reports_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "public_url = \"http://127.0.0.1:3340/\"");
    let out = relayd()
        .arg("--config")
        .arg(&good)
        .arg("--check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 member(s)") && stdout.contains("relay URL: http://127.0.0.1:3340\n"),
        "{stdout}"
    );

    let open = write_config(
        dir.path(),
        "bind = \"0.0.0.0:3340\"\npublic_url = \"http://x\"",
    );
    let out = relayd()
        .arg("--config")
        .arg(&open)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing plain HTTP"));

    // A named config file that does not exist is an error, not defaults.
    let out = relayd()
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Kills the daemon if the test fails half-way.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn notifies_ready_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "bind = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"",
    );
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Reaped(
        relayd()
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &sock_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("READY within 30 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.contains("READY=1") && msg.contains("2 member(s) including the owner"),
        "{msg}"
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "atoll-relayd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
}
