//! Temporary state directories for test nodes, removed on drop unless
//! `ATOLL_KEEP_TEST_DIRS` is set (then their paths are printed).

use std::path::{Path, PathBuf};

use anyhow::Result;

/// A temporary directory tree for one test node: `state/`, `run/`, `keys/`.
#[derive(Debug)]
pub struct TempState {
    root: PathBuf,
    armed: bool,
}

impl TempState {
    /// Creates a fresh tree under the system temp dir.
    pub fn new(name: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("atoll-{name}-"))
            .tempdir()?;
        Self::adopt(dir.keep())
    }

    /// Takes charge of an existing tree (e.g. one kept by
    /// [`TempState::into_path`] across a simulated restart).
    pub fn adopt(root: PathBuf) -> Result<Self> {
        for sub in ["state", "run", "keys"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Self { root, armed: true })
    }

    /// Gives up ownership: the tree is no longer removed on drop.
    pub fn into_path(mut self) -> PathBuf {
        self.armed = false;
        self.root.clone()
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
        if !self.armed {
            return;
        }
        if std::env::var_os("ATOLL_KEEP_TEST_DIRS").is_some() {
            eprintln!("keeping test dir {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
