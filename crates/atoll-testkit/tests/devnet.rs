//! The `atoll-devnet` binary as a service would run it: with `--mint-port`
//! its mints listen on fixed, consecutive ports (what the NixOS module and
//! VM tests rely on), it prints `NAME=URL` lines, and it exits cleanly on
//! SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_atoll-devnet");

/// Two consecutive free ports of 127.0.0.1 (free a moment ago).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports");
}

/// The devnet's stdout lines up to `LIGHTNING=…` (the last one it prints).
fn read_urls(child: &mut Child) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let last = line.starts_with("LIGHTNING=");
            if tx.send(line).is_err() || last {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while lines
        .last()
        .is_none_or(|l: &String| !l.starts_with("LIGHTNING="))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("the devnet printed only {lines:?}: {e}"),
        }
    }
    lines
}

/// `GET path` over plain HTTP/1.0; the whole answer.
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn mints_on_fixed_ports_and_sigterm_stops_it() {
    let base = free_port_pair();
    let mut child = Command::new(BIN)
        .args(["--mints", "2", "--mint-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = read_urls(&mut child);
    assert!(
        lines.contains(&format!("MINT_1=http://127.0.0.1:{base}")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("MINT_2=http://127.0.0.1:{}", base + 1)),
        "{lines:?}"
    );
    for port in [base, base + 1] {
        let info = http_get(port, "/v1/info");
        assert!(
            info.starts_with("HTTP/1.0 200") || info.starts_with("HTTP/1.1 200"),
            "{info}"
        );
        assert!(info.contains("atoll test mint"), "{info}");
    }

    // The shell's builtin kill: no procps needed (e.g. in the Nix sandbox).
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the devnet did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
}

#[test]
fn mint_ports_past_65535_are_refused() {
    let out = Command::new(BIN)
        .args(["--mints", "2", "--mint-port", "65535"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("over 65535"), "{stderr}");
}
