//! The node's keys: an ed25519 identity (also its iroh `SecretKey`, so the
//! node id is the iroh endpoint id) and a separate Nostr key for adverts,
//! relay admission and membership.
//!
//! Both live in one key directory as `node.key` (64 hex characters) and
//! `nostr.key` (`nsec1…`), mode 0600, written atomically. A key file that
//! cannot be read back is moved aside to `<file>.bad.<epoch>` and reported;
//! a new key is never generated in its place behind the owner's back,
//! because something may have been signed with the old one.

use std::{
    fmt, fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use ed25519_dalek::SigningKey;
use nostr::{FromBech32, ToBech32};

use crate::fsutil;

/// File name of the node identity inside a key directory.
pub const NODE_KEY_FILE: &str = "node.key";
/// File name of the Nostr key inside a key directory.
pub const NOSTR_KEY_FILE: &str = "nostr.key";

/// Errors reading or writing keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file exists and `init` was asked not to overwrite it.
    #[error("{} already exists; refusing to overwrite a key (move it away first if you really mean to replace it)", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key file is missing.
    #[error("no key at {}: run `atoll keys init --dir {}`", path.display(), path.parent().unwrap_or(Path::new(".")).display())]
    Missing {
        /// The expected file.
        path: PathBuf,
    },
    /// A key file was corrupt and has been moved aside.
    #[error("{} is corrupt ({reason}); moved it to {} — restore it from a backup, or run `atoll keys init` to make a new identity", path.display(), moved_to.display())]
    Corrupt {
        /// Where the key was.
        path: PathBuf,
        /// Where the corrupt file is now.
        moved_to: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// An earlier corrupt key was moved aside and no replacement was made.
    #[error("{} is missing but a corrupt copy was set aside at {}; not generating a new identity silently — restore it, or run `atoll keys init` to make a new one", path.display(), quarantined.display())]
    Quarantined {
        /// The expected file.
        path: PathBuf,
        /// The newest quarantined copy.
        quarantined: PathBuf,
    },
    /// An I/O error.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// An ed25519 secret key: the node identity, or a document-signing key.
#[derive(Clone)]
pub struct NodeKey(SigningKey);

impl NodeKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_bytes(&rand::random())
    }

    /// A key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(bytes))
    }

    /// The 32 secret bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The ed25519 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The public half.
    pub fn public(&self) -> ed25519_dalek::VerifyingKey {
        self.0.verifying_key()
    }

    /// The same key as an iroh secret key: the node id is the endpoint id.
    pub fn to_iroh(&self) -> iroh::SecretKey {
        iroh::SecretKey::from_bytes(&self.to_bytes())
    }

    /// The iroh endpoint id of this node.
    pub fn endpoint_id(&self) -> iroh::EndpointId {
        self.to_iroh().public()
    }

    fn encode(&self) -> String {
        format!("{}\n", hex::encode(self.to_bytes()))
    }

    fn decode(text: &str) -> Result<Self, String> {
        let text = text.trim_end_matches('\n');
        if text.len() != 64 {
            return Err(format!("expected 64 hex characters, found {}", text.len()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|e| format!("not hex: {e}"))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Reads a key file written by [`NodeKey::write`].
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        read_key(path, Self::decode)
    }

    /// Writes the key to `path` (mode 0600, atomic; never overwrites).
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        write_key(path, &self.encode())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NodeKey(public {})",
            hex::encode(self.public().as_bytes())
        )
    }
}

/// The node's Nostr key (secp256k1, BIP-340).
#[derive(Clone)]
pub struct NostrKey(nostr::Keys);

impl NostrKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(nostr::Keys::generate())
    }

    /// The nostr key pair.
    pub fn keys(&self) -> &nostr::Keys {
        &self.0
    }

    /// The public key as `npub1…`.
    pub fn npub(&self) -> String {
        self.0
            .public_key()
            .to_bech32()
            .unwrap_or_else(|_| self.0.public_key().to_hex())
    }

    fn encode(&self) -> Result<String, String> {
        self.0
            .secret_key()
            .to_bech32()
            .map(|s| format!("{s}\n"))
            .map_err(|e| e.to_string())
    }

    fn decode(text: &str) -> Result<Self, String> {
        let secret = nostr::SecretKey::from_bech32(text.trim_end_matches('\n'))
            .map_err(|e| format!("not an nsec key: {e}"))?;
        Ok(Self(nostr::Keys::new(secret)))
    }

    /// Reads a key file written by [`NostrKey::write`].
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        read_key(path, Self::decode)
    }

    /// Writes the key to `path` (mode 0600, atomic; never overwrites).
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let text = self.encode().map_err(|e| KeyError::Io {
            path: path.to_owned(),
            source: io::Error::other(e),
        })?;
        write_key(path, &text)
    }
}

impl fmt::Debug for NostrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NostrKey({})", self.npub())
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_key<T>(path: &Path, decode: impl FnOnce(&str) -> Result<T, String>) -> Result<T, KeyError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(
                match fsutil::quarantined(path).ok().and_then(|mut q| q.pop()) {
                    Some(quarantined) => KeyError::Quarantined {
                        path: path.to_owned(),
                        quarantined,
                    },
                    None => KeyError::Missing {
                        path: path.to_owned(),
                    },
                },
            );
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "key file is readable by others; chmod 600 it");
    }
    let decoded = std::str::from_utf8(&bytes)
        .map_err(|_| "not UTF-8 text".to_owned())
        .and_then(decode);
    match decoded {
        Ok(key) => Ok(key),
        Err(reason) => {
            let moved_to = fsutil::quarantine(path).map_err(io_err(path))?;
            tracing::error!(path = %path.display(), moved_to = %moved_to.display(), %reason, "corrupt key file moved aside");
            Err(KeyError::Corrupt {
                path: path.to_owned(),
                moved_to,
                reason,
            })
        }
    }
}

fn write_key(path: &Path, text: &str) -> Result<(), KeyError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        fsutil::create_private_dir(dir).map_err(io_err(dir))?;
    }
    fsutil::write_private_atomic(path, text.as_bytes(), false).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_owned(),
            }
        } else {
            io_err(path)(e)
        }
    })
}

/// A key directory holding `node.key` and `nostr.key`.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

/// Both keys of a node.
#[derive(Debug, Clone)]
pub struct NodeKeys {
    /// The ed25519 node identity (iroh endpoint key).
    pub node: NodeKey,
    /// The Nostr key.
    pub nostr: NostrKey,
}

impl KeyDir {
    /// A key directory at `dir` (nothing is touched yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Path of the node identity file.
    pub fn node_path(&self) -> PathBuf {
        self.dir.join(NODE_KEY_FILE)
    }

    /// Path of the Nostr key file.
    pub fn nostr_path(&self) -> PathBuf {
        self.dir.join(NOSTR_KEY_FILE)
    }

    /// Creates both keys. Refuses, before writing anything, when either
    /// file already exists.
    pub fn init(&self) -> Result<NodeKeys, KeyError> {
        for path in [self.node_path(), self.nostr_path()] {
            if path.exists() {
                return Err(KeyError::Exists { path });
            }
        }
        let keys = NodeKeys {
            node: NodeKey::generate(),
            nostr: NostrKey::generate(),
        };
        keys.node.write(&self.node_path())?;
        keys.nostr.write(&self.nostr_path())?;
        Ok(keys)
    }

    /// Reads both keys.
    pub fn load(&self) -> Result<NodeKeys, KeyError> {
        Ok(NodeKeys {
            node: NodeKey::read(&self.node_path())?,
            nostr: NostrKey::read(&self.nostr_path())?,
        })
    }

    /// Reads both keys, creating any that was never made. A key that was
    /// set aside as corrupt is not replaced: that is an error for a person.
    pub fn load_or_init(&self) -> Result<NodeKeys, KeyError> {
        let node = match NodeKey::read(&self.node_path()) {
            Err(KeyError::Missing { .. }) => {
                let key = NodeKey::generate();
                key.write(&self.node_path())?;
                key
            }
            other => other?,
        };
        let nostr = match NostrKey::read(&self.nostr_path()) {
            Err(KeyError::Missing { .. }) => {
                let key = NostrKey::generate();
                key.write(&self.nostr_path())?;
                key
            }
            other => other?,
        };
        Ok(NodeKeys { node, nostr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_round_trips_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let kd = KeyDir::new(dir.path().join("keys"));
        let made = kd.init().unwrap();
        let loaded = kd.load().unwrap();
        assert_eq!(made.node.to_bytes(), loaded.node.to_bytes());
        assert_eq!(made.nostr.npub(), loaded.nostr.npub());
        assert!(loaded.nostr.npub().starts_with("npub1"));
        for p in [kd.node_path(), kd.nostr_path()] {
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(matches!(kd.init(), Err(KeyError::Exists { .. })));
        assert_eq!(kd.load().unwrap().node.to_bytes(), made.node.to_bytes());
    }

    #[test]
    fn node_id_is_the_iroh_endpoint_id() {
        let key = NodeKey::from_bytes(&[7u8; 32]);
        assert_eq!(key.endpoint_id().as_bytes(), key.public().as_bytes());
        assert_eq!(key.to_iroh().to_bytes(), [7u8; 32]);
    }

    #[test]
    fn corrupt_key_is_moved_aside_and_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let kd = KeyDir::new(dir.path());
        kd.init().unwrap();
        fs::write(kd.node_path(), "zz not a key\n").unwrap();
        let err = kd.load().unwrap_err();
        let KeyError::Corrupt { moved_to, .. } = &err else {
            panic!("expected Corrupt, got {err:?}")
        };
        assert_eq!(fs::read_to_string(moved_to).unwrap(), "zz not a key\n");
        assert!(!kd.node_path().exists());
        // A daemon restart must not quietly mint a new identity.
        assert!(matches!(
            kd.load_or_init(),
            Err(KeyError::Quarantined { .. })
        ));
        assert!(!kd.node_path().exists());
        assert!(err.to_string().contains("moved it to"));
    }

    #[test]
    fn truncated_and_binary_keys_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        for bad in [&b"abcd"[..], &[0xff, 0xfe, 0x00][..], &[b'a'; 65][..], b""] {
            fs::write(&path, bad).unwrap();
            assert!(
                matches!(NodeKey::read(&path), Err(KeyError::Corrupt { .. })),
                "{bad:?}"
            );
        }
        let npath = dir.path().join("nostr.key");
        fs::write(&npath, "nsec1qqqq\n").unwrap();
        assert!(matches!(
            NostrKey::read(&npath),
            Err(KeyError::Corrupt { .. })
        ));
    }

    #[test]
    fn load_or_init_creates_missing_keys_once() {
        let dir = tempfile::tempdir().unwrap();
        let kd = KeyDir::new(dir.path());
        let a = kd.load_or_init().unwrap();
        let b = kd.load_or_init().unwrap();
        assert_eq!(a.node.to_bytes(), b.node.to_bytes());
        assert!(matches!(
            KeyDir::new(dir.path().join("none")).load(),
            Err(KeyError::Missing { .. })
        ));
    }
}
