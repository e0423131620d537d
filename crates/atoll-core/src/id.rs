//! Content ids: BLAKE3 hashes, written `blake3:<64 lowercase hex>` in
//! documents and as bare hex in URLs.

use std::{fmt, io, path::Path, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A BLAKE3 content id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId([u8; 32]);

/// Why a string is not a content id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentIdError {
    /// The `blake3:` prefix is missing.
    #[error("content id must start with \"blake3:\" (got {found:?})")]
    MissingPrefix {
        /// The start of the rejected input (at most 16 characters).
        found: String,
    },
    /// The hex part does not have 64 characters.
    #[error("content id must have 64 hex characters after the prefix, got {len}")]
    WrongLength {
        /// The length that was found.
        len: usize,
    },
    /// A character that is not lowercase hex.
    #[error("content id has a non-hex character {found:?} at position {position} (only 0-9 a-f)")]
    NotHex {
        /// Position in the hex part, from 0.
        position: usize,
        /// The offending character.
        found: char,
    },
}

impl ContentId {
    /// The prefix of the written form.
    pub const PREFIX: &'static str = "blake3:";

    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw hash bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id of a byte slice.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// Hashes everything a reader yields, in constant memory.
    pub fn hash_reader(mut reader: impl io::Read) -> io::Result<Self> {
        let mut hasher = blake3::Hasher::new();
        io::copy(&mut reader, &mut hasher)?;
        Ok(Self(*hasher.finalize().as_bytes()))
    }

    /// Hashes a file, in constant memory.
    pub fn hash_file(path: &Path) -> io::Result<Self> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(path)?)?;
        Ok(Self(*hasher.finalize().as_bytes()))
    }

    /// The bare 64-character lowercase hex form used in URLs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the bare hex form used in URLs (no prefix).
    pub fn from_hex(s: &str) -> Result<Self, ContentIdError> {
        if s.len() != 64 {
            return Err(ContentIdError::WrongLength { len: s.len() });
        }
        if let Some((position, found)) = s
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(ContentIdError::NotHex { position, found });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| ContentIdError::WrongLength { len: s.len() })?;
        Ok(Self(bytes))
    }
}

impl FromStr for ContentId {
    type Err = ContentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix(Self::PREFIX) {
            Some(hex) => Self::from_hex(hex),
            None => Err(ContentIdError::MissingPrefix {
                found: s.chars().take(16).collect(),
            }),
        }
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.to_hex())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl From<blake3::Hash> for ContentId {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BLAKE3 of the empty input, from the BLAKE3 reference test vectors.
    const EMPTY: &str = "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    #[test]
    fn known_vector_and_round_trip() {
        let id = ContentId::of(b"");
        assert_eq!(id.to_string(), EMPTY);
        assert_eq!(EMPTY.parse::<ContentId>().unwrap(), id);
        assert_eq!(ContentId::from_hex(&id.to_hex()).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<ContentId>(&json).unwrap(), id);
    }

    #[test]
    fn streaming_hash_matches_one_shot() {
        // Larger than one BLAKE3 chunk (1 KiB) and not a multiple of it.
        let data: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
        let streamed = ContentId::hash_reader(&data[..]).unwrap();
        assert_eq!(streamed, ContentId::of(&data));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(ContentId::hash_file(&path).unwrap(), streamed);
        assert_ne!(streamed, ContentId::of(&data[1..]));
    }

    #[test]
    fn rejects_malformed() {
        let hex = &EMPTY[7..];
        assert!(matches!(
            hex.parse::<ContentId>(),
            Err(ContentIdError::MissingPrefix { .. })
        ));
        assert!(matches!(
            format!("sha256:{hex}").parse::<ContentId>(),
            Err(ContentIdError::MissingPrefix { .. })
        ));
        assert_eq!(
            format!("blake3:{}", &hex[1..]).parse::<ContentId>(),
            Err(ContentIdError::WrongLength { len: 63 })
        );
        assert_eq!(
            format!("blake3:{hex}0").parse::<ContentId>(),
            Err(ContentIdError::WrongLength { len: 65 })
        );
        assert_eq!(
            "blake3:".parse::<ContentId>(),
            Err(ContentIdError::WrongLength { len: 0 })
        );
        let bad = format!("blake3:{}g", &hex[1..]);
        assert_eq!(
            bad.parse::<ContentId>(),
            Err(ContentIdError::NotHex {
                position: 63,
                found: 'g'
            })
        );
        // Uppercase is refused: one content, one spelling.
        let upper = format!("blake3:{}", hex.to_uppercase());
        assert!(matches!(
            upper.parse::<ContentId>(),
            Err(ContentIdError::NotHex {
                position: 0,
                found: 'A'
            })
        ));
        // Multi-byte characters are counted, not sliced.
        let multi = format!("blake3:{}é", &hex[2..]);
        assert!(multi.parse::<ContentId>().is_err());
        assert!(serde_json::from_str::<ContentId>("\"blake3:00\"").is_err());
        let err = "nope".parse::<ContentId>().unwrap_err().to_string();
        assert!(err.contains("blake3:"), "{err}");
    }
}
