//! Which files the node reads for `POST /blobs/import`: regular files
//! inside the configured import directories, never anything in its state
//! or key directories, at most `import.max_bytes`.
//!
//! Whoever can open the API socket chooses the path, and the daemon may be
//! able to read more than they can, so the checks assume a hostile caller
//! who can also change the file system while the node looks:
//!
//! 1. the path is resolved (`..` and every symlink) and must lie inside a
//!    (resolved) import directory and outside the (resolved) state and key
//!    directories;
//! 2. the resolved path is opened with `O_NOFOLLOW | O_NONBLOCK` (a swapped
//!    in symlink fails, a FIFO does not block the open);
//! 3. the open file is checked, not the path: `fstat` must say regular file
//!    (no FIFO, device or directory is ever read), the kernel's name for the
//!    descriptor (`/proc/self/fd/N`) must still be inside an import
//!    directory and outside the forbidden ones (a directory swapped for a
//!    symlink between the checks and the open is caught), and it must not
//!    be one of the key files under another name (a hard link);
//! 4. only then is it read, at most `max_bytes`.

use std::{
    fs::File,
    io,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Why a file was not imported. Messages never repeat the path (the
/// caller knows it) nor anything read from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// No import directory is configured.
    #[error(
        "importing files is off on this node: name directories in import.dirs of its config, or stream the file instead (atoll blob add without --import)"
    )]
    Disabled,
    /// The path is relative.
    #[error("the path to import must be absolute")]
    NotAbsolute,
    /// The path cannot be resolved or opened.
    #[error("cannot open the file to import: {0}")]
    Unreadable(#[source] io::Error),
    /// The file is not inside an import directory.
    #[error("the file is outside the node's import directories (import.dirs)")]
    OutsideImportDirs,
    /// The file is in the node's state or key directory (or is a key).
    #[error("the node's own state and keys are never imported")]
    Forbidden,
    /// Not a regular file.
    #[error("only regular files are imported, this is a {kind}")]
    NotRegularFile {
        /// What it is.
        kind: &'static str,
    },
    /// The path changed while it was being opened.
    #[error("the file changed while it was being opened (a symlink or a moved directory)")]
    Changed,
    /// Larger than `import.max_bytes`.
    #[error("the file is {size} bytes, more than import.max_bytes ({max} bytes)")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// The import rules of one node.
#[derive(Debug, Clone)]
pub struct ImportPolicy {
    dirs: Vec<PathBuf>,
    forbidden: Vec<PathBuf>,
    key_dir: PathBuf,
    max_bytes: u64,
}

/// A file opened for import: checked, not yet read.
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file (positioned at its start).
    pub file: File,
    /// Its size when checked.
    pub size: u64,
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

impl ImportPolicy {
    /// Files under `dirs` (directories that do not exist are skipped at
    /// each request) may be imported, nothing under `state_dir` or
    /// `key_dir`, at most `max_bytes` each.
    pub fn new(dirs: Vec<PathBuf>, state_dir: &Path, key_dir: &Path, max_bytes: u64) -> Self {
        Self {
            dirs,
            forbidden: vec![state_dir.to_owned(), key_dir.to_owned()],
            key_dir: key_dir.to_owned(),
            max_bytes,
        }
    }

    /// The size limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether imports are possible at all.
    pub fn enabled(&self) -> bool {
        !self.dirs.is_empty()
    }

    /// Whether `path` (already resolved) may be read.
    fn allowed(&self, path: &Path) -> Result<(), ImportError> {
        let resolved = |d: &PathBuf| std::fs::canonicalize(d).ok();
        if self
            .forbidden
            .iter()
            .filter_map(resolved)
            .chain(self.forbidden.iter().cloned())
            .any(|f| path.starts_with(f))
        {
            return Err(ImportError::Forbidden);
        }
        if !self
            .dirs
            .iter()
            .filter_map(resolved)
            .any(|d| path.starts_with(d))
        {
            return Err(ImportError::OutsideImportDirs);
        }
        Ok(())
    }

    /// Checks and opens `path` for import (see the module docs for the
    /// order of the checks). Blocking: call it off the async runtime.
    pub fn open(&self, path: &Path) -> Result<OpenedFile, ImportError> {
        if !self.enabled() {
            return Err(ImportError::Disabled);
        }
        if !path.is_absolute() {
            return Err(ImportError::NotAbsolute);
        }
        let resolved = std::fs::canonicalize(path).map_err(ImportError::Unreadable)?;
        self.allowed(&resolved)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&resolved)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    ImportError::Changed
                } else {
                    ImportError::Unreadable(e)
                }
            })?;
        let meta = file.metadata().map_err(ImportError::Unreadable)?;
        if !meta.file_type().is_file() {
            return Err(ImportError::NotRegularFile {
                kind: kind_of(meta.file_type()),
            });
        }
        // What the kernel says this descriptor is, not what the path was.
        use std::os::fd::AsRawFd;
        let actual = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|_| ImportError::Changed)?;
        if actual != resolved {
            return Err(ImportError::Changed);
        }
        self.allowed(&actual)?;
        // A key file under another name (a hard link).
        if let Ok(entries) = std::fs::read_dir(&self.key_dir) {
            for e in entries.flatten() {
                if let Ok(m) = e.metadata()
                    && m.dev() == meta.dev()
                    && m.ino() == meta.ino()
                {
                    return Err(ImportError::Forbidden);
                }
            }
        }
        if meta.len() > self.max_bytes {
            return Err(ImportError::TooLarge {
                size: meta.len(),
                max: self.max_bytes,
            });
        }
        Ok(OpenedFile {
            file,
            size: meta.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _root: tempfile::TempDir,
        inbox: PathBuf,
        state: PathBuf,
        keys: PathBuf,
        policy: ImportPolicy,
    }

    fn fixture(max: u64) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let inbox = root.path().join("inbox");
        let state = root.path().join("state");
        let keys = state.join("keys");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("node.key"), b"secret").unwrap();
        std::fs::write(inbox.join("film.bin"), b"film").unwrap();
        let policy = ImportPolicy::new(vec![inbox.clone()], &state, &keys, max);
        Fixture {
            _root: root,
            inbox,
            state,
            keys,
            policy,
        }
    }

    #[test]
    fn regular_files_inside_the_import_dirs_only() {
        let f = fixture(100);
        let ok = f.policy.open(&f.inbox.join("film.bin")).unwrap();
        assert_eq!(ok.size, 4);
        // A symlink inside pointing inside is fine (it is resolved).
        std::os::unix::fs::symlink(f.inbox.join("film.bin"), f.inbox.join("alias")).unwrap();
        assert!(f.policy.open(&f.inbox.join("alias")).is_ok());
        let err = |p: &Path| f.policy.open(p).unwrap_err();
        assert!(matches!(
            err(&f.keys.join("node.key")),
            ImportError::Forbidden
        ));
        assert!(matches!(
            err(&f.state.join("nothing")),
            ImportError::Unreadable(_)
        ));
        assert!(matches!(
            err(Path::new("relative/film.bin")),
            ImportError::NotAbsolute
        ));
        assert!(matches!(
            err(&f.inbox.join("../state/keys/node.key")),
            ImportError::Forbidden
        ));
        // Hard link of a key into the import directory.
        std::fs::hard_link(f.keys.join("node.key"), f.inbox.join("hard")).unwrap();
        assert!(matches!(err(&f.inbox.join("hard")), ImportError::Forbidden));
        // Too large.
        std::fs::write(f.inbox.join("big"), vec![0u8; 101]).unwrap();
        assert!(matches!(
            err(&f.inbox.join("big")),
            ImportError::TooLarge {
                size: 101,
                max: 100
            }
        ));
        // A directory, a FIFO (refused without blocking on the open).
        std::fs::create_dir(f.inbox.join("dir")).unwrap();
        assert!(matches!(
            err(&f.inbox.join("dir")),
            ImportError::NotRegularFile { kind: "directory" }
        ));
        let fifo = f.inbox.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(matches!(
            err(&fifo),
            ImportError::NotRegularFile { kind: "FIFO" }
        ));
        // Off when no directory is configured.
        let off = ImportPolicy::new(vec![], &f.state, &f.keys, 100);
        assert!(matches!(
            off.open(&f.inbox.join("film.bin")),
            Err(ImportError::Disabled)
        ));
    }

    #[test]
    fn an_import_dir_inside_the_state_dir_does_not_open_it() {
        let f = fixture(100);
        let inside = ImportPolicy::new(vec![f.state.clone()], &f.state, &f.keys, 100);
        assert!(matches!(
            inside.open(&f.keys.join("node.key")),
            Err(ImportError::Forbidden)
        ));
    }
}
