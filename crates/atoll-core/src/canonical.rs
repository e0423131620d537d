//! Canonical JSON: the one byte form of a JSON document that signatures
//! cover.
//!
//! Rules: objects have their keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings escaped as `serde_json` writes them,
//! numbers only as integers (a float has no single spelling, so signed
//! documents may not contain one), and a key may not appear twice in an
//! object (a duplicate would let two readers see two different documents).

use std::{collections::BTreeMap, fmt};

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, MapAccess, SeqAccess, Visitor},
};

/// Largest document accepted for canonicalisation, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Why a document is not acceptable canonical-JSON input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("document is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid JSON, or JSON that signed documents may not contain.
    #[error("document is not acceptable JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A JSON value restricted to what signed documents may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    String(String),
    Array(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::String(v) => s.serialize_str(v),
            Value::Array(items) => s.collect_seq(items),
            Value::Object(map) => s.collect_map(map),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(E::custom(
            "numbers with a fraction or exponent are not allowed in signed documents; use integers or strings",
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// The canonical bytes of a JSON document given as text.
pub fn canonicalize(json: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    if json.len() > MAX_DOCUMENT_BYTES {
        return Err(CanonicalError::TooLarge {
            size: json.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    let value: Value = serde_json::from_slice(json)?;
    Ok(serde_json::to_vec(&value)?)
}

/// The canonical bytes of any serialisable value.
pub fn to_canonical<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    canonicalize(&serde_json::to_vec(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(canonicalize(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        assert_eq!(
            canon(r#" { "b" : 1, "a": [ true, null, {"z": -3, "y": "x"} ] } "#),
            r#"{"a":[true,null,{"y":"x","z":-3}],"b":1}"#
        );
        // Same document, different spelling: same bytes.
        assert_eq!(canon(r#"{"a":"\u00e9"}"#), canon("{\"a\":\"é\"}"));
        assert_eq!(
            canon(r#"{"n":18446744073709551615}"#),
            r#"{"n":18446744073709551615}"#
        );
    }

    #[test]
    fn refuses_what_has_no_single_spelling() {
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":1}x"#,
            r#"{"a":"#,
            "",
            r#"{"a":18446744073709551616}"#,
        ] {
            assert!(canonicalize(bad.as_bytes()).is_err(), "{bad}");
        }
        let err = canonicalize(br#"{"k":{"d":1,"d":1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate key"), "{err}");
    }

    #[test]
    fn refuses_oversized_and_deeply_nested() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(
            canonicalize(&big),
            Err(CanonicalError::TooLarge { .. })
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(canonicalize(deep.as_bytes()).is_err());
    }
}
