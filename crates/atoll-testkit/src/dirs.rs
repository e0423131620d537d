//! Temporary state directories for test nodes, removed on drop unless
//! `ATOLL_KEEP_TEST_DIRS` is set (then their paths are printed).

use std::path::{Path, PathBuf};

use anyhow::Result;

/// A temporary directory tree for one test node: `state/`, `run/`, `keys/`.
#[derive(Debug)]
pub struct TempState {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl TempState {
    /// Creates a fresh tree under the system temp dir.
    pub fn new(name: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("atoll-{name}-"))
            .tempdir()?;
        for sub in ["state", "run", "keys"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        let root = dir.path().to_owned();
        Ok(Self {
            dir: Some(dir),
            root,
        })
    }

    /// The root of the tree.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The state directory.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The runtime directory (sockets).
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }

    /// The key directory.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }
}

impl Drop for TempState {
    fn drop(&mut self) {
        if std::env::var_os("ATOLL_KEEP_TEST_DIRS").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping test dir {}", dir.keep().display());
        }
    }
}
