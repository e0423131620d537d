//! Signed documents: canonical JSON with detached ed25519 signatures,
//! verified against a set of trusted keys with a k-of-n threshold.
//!
//! Release manifests, the app catalog and film entries all use this one
//! mechanism. Each kind of document has its own *context* string (e.g.
//! `atoll/release`), signed along with the bytes, so a signature made for
//! one kind of document can never be replayed as another.
//!
//! A signature covers `"atoll-signed-doc-v1\n" || context || "\n" ||
//! canonical JSON bytes`. A key is named by its key id, `ed25519:<64 hex>`
//! of the public key, so an id names exactly one key.

use std::{collections::BTreeMap, fmt, str::FromStr};

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    canonical::{CanonicalError, canonicalize},
    keys::NodeKey,
};

const DOMAIN: &[u8] = b"atoll-signed-doc-v1\n";

/// Context for documents that have no more specific one.
pub const CONTEXT_GENERIC: &str = "atoll/doc";
/// Context of signed OTA release manifests.
pub const CONTEXT_RELEASE: &str = "atoll/release";
/// Context of the signed app catalog.
pub const CONTEXT_APP_CATALOG: &str = "atoll/app-catalog";
/// Context of signed film entries.
pub const CONTEXT_FILM: &str = "atoll/film";

/// The id of an ed25519 public key: `ed25519:<64 hex>`.
///
/// Holds the 32 public-key bytes, checked to be a valid ed25519 point
/// when parsed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    const PREFIX: &'static str = "ed25519:";

    /// The key's id.
    pub fn of(key: &VerifyingKey) -> Self {
        Self(key.to_bytes())
    }

    /// The public key it names.
    pub fn key(&self) -> Result<VerifyingKey, DocError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| DocError::BadKeyId {
            key_id: self.to_string(),
            reason: "not a valid ed25519 point".into(),
        })
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = DocError;

    fn from_str(s: &str) -> Result<Self, DocError> {
        let bad = |reason: &str| DocError::BadKeyId {
            key_id: s.chars().take(80).collect(),
            reason: reason.to_owned(),
        };
        let hex = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| bad("must start with \"ed25519:\""))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| bad("needs 64 hex characters"))?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid ed25519 point"))?;
        Ok(Self(bytes))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One detached signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocSignature {
    /// Who signed.
    pub key_id: KeyId,
    /// The 64-byte ed25519 signature, hex.
    pub sig: String,
}

/// A detached signature file: the context and one or more signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    /// What kind of document these signatures are for.
    pub context: String,
    /// The signatures, one per signer.
    pub signatures: Vec<DocSignature>,
}

/// Errors signing or verifying documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The document is not acceptable canonical-JSON input.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// A key id is malformed.
    #[error("bad key id {key_id:?}: {reason}")]
    BadKeyId {
        /// The rejected id (at most 80 characters).
        key_id: String,
        /// What is wrong.
        reason: String,
    },
    /// A signature is not 128 hex characters.
    #[error("signature by {key_id} is malformed: expected 128 hex characters")]
    MalformedSignature {
        /// The signer it claims.
        key_id: KeyId,
    },
    /// A trusted key's signature does not match the document.
    #[error(
        "signature by {key_id} does not match the document: it was changed after signing, or the signature is damaged"
    )]
    BadSignature {
        /// The signer.
        key_id: KeyId,
    },
    /// The signatures were made for another kind of document.
    #[error("signatures are for {found:?} documents, expected {expected:?}")]
    WrongContext {
        /// The context required.
        expected: String,
        /// The context in the signature file.
        found: String,
    },
    /// Fewer valid signatures from trusted keys than the threshold.
    #[error("{valid} valid signature(s) from trusted keys, {required} required{}", unknown_note(.unknown))]
    NotEnoughSignatures {
        /// Valid signatures by distinct trusted keys.
        valid: usize,
        /// The threshold.
        required: usize,
        /// Signers that are not trusted (their signatures were not counted).
        unknown: Vec<KeyId>,
    },
    /// The trust set makes no sense.
    #[error("invalid trust set: {0}")]
    BadTrustSet(String),
}

fn unknown_note(unknown: &[KeyId]) -> String {
    if unknown.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = unknown.iter().map(ToString::to_string).collect();
        format!(
            "; not counted, signed by unknown key(s): {}",
            ids.join(", ")
        )
    }
}

fn message(context: &str, canonical: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + context.len() + 1 + canonical.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(context.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(canonical);
    m
}

/// Signs a JSON document (given as text) for `context`.
pub fn sign(document: &[u8], context: &str, key: &NodeKey) -> Result<DocSignature, DocError> {
    let canonical = canonicalize(document)?;
    let sig = key.signing_key().sign(&message(context, &canonical));
    Ok(DocSignature {
        key_id: KeyId::of(&key.public()),
        sig: hex::encode(sig.to_bytes()),
    })
}

impl Signatures {
    /// An empty signature set for `context`.
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            signatures: Vec::new(),
        }
    }

    /// Signs `document` with `key` and adds (or replaces) that key's signature.
    pub fn add(&mut self, document: &[u8], key: &NodeKey) -> Result<(), DocError> {
        let entry = sign(document, &self.context, key)?;
        self.signatures.retain(|s| s.key_id != entry.key_id);
        self.signatures.push(entry);
        Ok(())
    }
}

/// Keys trusted to sign one kind of document, and how many must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSet {
    /// How many distinct trusted keys must have signed (k).
    pub threshold: usize,
    /// The trusted keys (n).
    pub keys: Vec<KeyId>,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The canonical bytes that were verified.
    pub canonical: Vec<u8>,
    /// The trusted keys whose valid signatures were counted.
    pub signers: Vec<KeyId>,
}

impl TrustSet {
    /// A trust set; `threshold` must be between 1 and the number of
    /// distinct keys.
    pub fn new(threshold: usize, keys: Vec<KeyId>) -> Result<Self, DocError> {
        let set = Self { threshold, keys };
        set.check()?;
        Ok(set)
    }

    fn check(&self) -> Result<(), DocError> {
        let distinct = self
            .keys
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if self.threshold == 0 {
            return Err(DocError::BadTrustSet("threshold must be at least 1".into()));
        }
        if self.threshold > distinct {
            return Err(DocError::BadTrustSet(format!(
                "threshold {} is more than the {distinct} distinct trusted key(s)",
                self.threshold
            )));
        }
        Ok(())
    }

    /// Verifies `document` against `signatures` for `context`.
    ///
    /// Signatures by unknown keys are ignored (and named in the error if
    /// the threshold is not met); a trusted key's signature that does not
    /// verify fails the whole document, since it means tampering.
    pub fn verify(
        &self,
        document: &[u8],
        signatures: &Signatures,
        context: &str,
    ) -> Result<Verified, DocError> {
        self.check()?;
        if signatures.context != context {
            return Err(DocError::WrongContext {
                expected: context.to_owned(),
                found: signatures.context.chars().take(80).collect(),
            });
        }
        let canonical = canonicalize(document)?;
        let msg = message(context, &canonical);
        let mut counted = BTreeMap::new();
        let mut unknown = Vec::new();
        for entry in &signatures.signatures {
            if !self.keys.contains(&entry.key_id) {
                unknown.push(entry.key_id);
                continue;
            }
            let mut raw = [0u8; 64];
            hex::decode_to_slice(&entry.sig, &mut raw).map_err(|_| {
                DocError::MalformedSignature {
                    key_id: entry.key_id,
                }
            })?;
            entry
                .key_id
                .key()?
                .verify_strict(&msg, &Signature::from_bytes(&raw))
                .map_err(|_| DocError::BadSignature {
                    key_id: entry.key_id,
                })?;
            counted.insert(entry.key_id, ());
        }
        if counted.len() < self.threshold {
            return Err(DocError::NotEnoughSignatures {
                valid: counted.len(),
                required: self.threshold,
                unknown,
            });
        }
        Ok(Verified {
            canonical,
            signers: counted.into_keys().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> NodeKey {
        NodeKey::from_bytes(&[n; 32])
    }

    /// Checked-in vectors: known keys ([1;32], [2;32], [3;32] secret bytes),
    /// a known document, and the signatures over it.
    const VECTOR_DOC: &[u8] = include_bytes!("../testdata/doc.json");
    const VECTOR_SIGS: &str = include_str!("../testdata/doc.sig.json");
    const VECTOR_CANONICAL: &[u8] = include_bytes!("../testdata/doc.canonical.json");

    fn trust(threshold: usize, ns: &[u8]) -> TrustSet {
        TrustSet::new(
            threshold,
            ns.iter().map(|n| KeyId::of(&key(*n).public())).collect(),
        )
        .unwrap()
    }

    #[test]
    fn checked_in_vectors_verify() {
        // The well-known public key of the all-ones ed25519 seed.
        assert_eq!(
            KeyId::of(&key(1).public()).to_string(),
            "ed25519:8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        let sigs: Signatures = serde_json::from_str(VECTOR_SIGS).unwrap();
        let ok = trust(2, &[1, 2, 3])
            .verify(VECTOR_DOC, &sigs, CONTEXT_RELEASE)
            .unwrap();
        assert_eq!(ok.canonical, VECTOR_CANONICAL.trim_ascii_end());
        assert_eq!(ok.signers.len(), 2);
        // Signing is deterministic (RFC 8032): we reproduce the vectors.
        let mut again = Signatures::new(CONTEXT_RELEASE);
        again.add(VECTOR_DOC, &key(1)).unwrap();
        again.add(VECTOR_DOC, &key(2)).unwrap();
        assert_eq!(again, sigs);
    }

    #[test]
    fn round_trip_and_threshold() {
        let doc = br#"{"version": 2, "artifacts": ["blake3:00"]}"#;
        let mut sigs = Signatures::new(CONTEXT_GENERIC);
        sigs.add(doc, &key(1)).unwrap();
        assert!(trust(1, &[1]).verify(doc, &sigs, CONTEXT_GENERIC).is_ok());
        let err = trust(2, &[1, 2])
            .verify(doc, &sigs, CONTEXT_GENERIC)
            .unwrap_err();
        assert!(matches!(
            err,
            DocError::NotEnoughSignatures {
                valid: 1,
                required: 2,
                ..
            }
        ));
        // The same key twice counts once.
        let mut twice = sigs.clone();
        twice.signatures.push(sigs.signatures[0].clone());
        assert!(
            trust(2, &[1, 2])
                .verify(doc, &twice, CONTEXT_GENERIC)
                .is_err()
        );
        sigs.add(doc, &key(2)).unwrap();
        assert_eq!(
            trust(2, &[1, 2])
                .verify(doc, &sigs, CONTEXT_GENERIC)
                .unwrap()
                .signers
                .len(),
            2
        );
        // Whitespace and key order do not matter; content does.
        let respelled = br#"{ "artifacts": ["blake3:00"], "version": 2 }"#;
        assert!(
            trust(2, &[1, 2])
                .verify(respelled, &sigs, CONTEXT_GENERIC)
                .is_ok()
        );
    }

    #[test]
    fn every_flipped_byte_of_the_content_is_refused() {
        let doc = br#"{"version":2,"name":"atoll"}"#;
        let mut sigs = Signatures::new(CONTEXT_RELEASE);
        sigs.add(doc, &key(1)).unwrap();
        let trust = trust(1, &[1]);
        for i in 0..doc.len() {
            let mut bad = doc.to_vec();
            bad[i] ^= 0x01;
            assert!(
                trust.verify(&bad, &sigs, CONTEXT_RELEASE).is_err(),
                "byte {i}"
            );
        }
        for i in 0..sigs.signatures[0].sig.len() {
            let mut bad = sigs.clone();
            let mut chars: Vec<char> = bad.signatures[0].sig.chars().collect();
            chars[i] = if chars[i] == '0' { '1' } else { '0' };
            bad.signatures[0].sig = chars.into_iter().collect();
            let err = trust.verify(doc, &bad, CONTEXT_RELEASE).unwrap_err();
            assert!(matches!(err, DocError::BadSignature { .. }), "{i}: {err}");
        }
    }

    #[test]
    fn unknown_keys_wrong_context_and_malformed_are_refused() {
        let doc = br#"{"a":1}"#;
        let mut sigs = Signatures::new(CONTEXT_FILM);
        sigs.add(doc, &key(9)).unwrap();
        let err = trust(1, &[1]).verify(doc, &sigs, CONTEXT_FILM).unwrap_err();
        assert!(
            matches!(&err, DocError::NotEnoughSignatures { valid: 0, unknown, .. } if unknown.len() == 1)
        );
        assert!(err.to_string().contains("unknown key"), "{err}");
        // A film signature is not a release signature.
        let mut film = Signatures::new(CONTEXT_FILM);
        film.add(doc, &key(1)).unwrap();
        assert!(matches!(
            trust(1, &[1]).verify(doc, &film, CONTEXT_RELEASE),
            Err(DocError::WrongContext { .. })
        ));
        // Relabelling the context does not help: the context is signed.
        film.context = CONTEXT_RELEASE.into();
        assert!(matches!(
            trust(1, &[1]).verify(doc, &film, CONTEXT_RELEASE),
            Err(DocError::BadSignature { .. })
        ));
        let mut short = Signatures::new(CONTEXT_FILM);
        short.add(doc, &key(1)).unwrap();
        short.signatures[0].sig.truncate(10);
        assert!(matches!(
            trust(1, &[1]).verify(doc, &short, CONTEXT_FILM),
            Err(DocError::MalformedSignature { .. })
        ));
        assert!(
            serde_json::from_str::<Signatures>(r#"{"context":"x","signatures":[],"extra":1}"#)
                .is_err()
        );
        assert!("ed25519:zz".parse::<KeyId>().is_err());
        assert!("rsa:00".parse::<KeyId>().is_err());
    }

    #[test]
    fn bad_trust_sets_are_refused() {
        let k = KeyId::of(&key(1).public());
        assert!(TrustSet::new(0, vec![k]).is_err());
        assert!(TrustSet::new(2, vec![k, k]).is_err());
        assert!(TrustSet::new(1, vec![]).is_err());
    }
}
