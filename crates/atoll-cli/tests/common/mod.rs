//! Running the `atoll` binary as a person would, for the CLI tests.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests may panic

use std::{
    path::Path,
    process::{Command, Output},
};

/// Runs `atoll ARGS` with a clean key-dir environment.
pub fn atoll(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atoll"))
        .args(args)
        .env_remove("ATOLL_KEY_DIR")
        .output()
        .unwrap()
}

/// Runs it, requires success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = atoll(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs it, requires failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = atoll(args);
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
