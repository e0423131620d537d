//! The wallet seed: a BIP-39 mnemonic in a private file (mode 0600), created
//! on first start and never logged. Every mint's ecash is derived from it
//! (NUT-13), so the file alone restores the wallet.

use std::io;
use std::path::{Path, PathBuf};

use atoll_core::config::{Secret, SecretError};

/// Errors reading or creating the seed file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The file exists but cannot be read.
    #[error("cannot read the seed file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// The file does not hold a valid BIP-39 mnemonic.
    #[error("the seed file {} does not hold a valid BIP-39 mnemonic: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's complaint (never the words).
        #[source]
        source: bip39::Error,
    },
    /// A new seed file could not be written.
    #[error("cannot write the seed file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Reads the mnemonic in `path`, creating a new 12-word one (mode 0600)
/// when the file does not exist. Returns the 64-byte BIP-39 seed.
pub fn load_or_create(path: &Path) -> Result<[u8; 64], SeedError> {
    if !path.exists() {
        let entropy: [u8; 16] = rand::random();
        let mnemonic =
            bip39::Mnemonic::from_entropy(&entropy).map_err(|source| SeedError::Invalid {
                path: path.to_owned(),
                source,
            })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SeedError::Write {
                path: path.to_owned(),
                source,
            })?;
        }
        let text = format!("{mnemonic}\n");
        match atoll_core::fsutil::write_private_atomic(path, text.as_bytes(), false) {
            Ok(()) => tracing::info!(path = %path.display(), "created a new wallet seed"),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(SeedError::Write {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    let secret = Secret::from_file(path).map_err(|source| SeedError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mnemonic =
        bip39::Mnemonic::parse(secret.expose().trim()).map_err(|source| SeedError::Invalid {
            path: path.to_owned(),
            source,
        })?;
    Ok(mnemonic.to_seed(""))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn seed_is_created_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/seed");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first);
        let words = std::fs::read_to_string(&path).unwrap();
        assert_eq!(words.split_whitespace().count(), 12);
    }

    #[test]
    fn garbage_seed_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed");
        std::fs::write(&path, "not a mnemonic at all").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err, SeedError::Invalid { .. }));
        assert!(!err.to_string().contains("mnemonic at all"));
    }
}
