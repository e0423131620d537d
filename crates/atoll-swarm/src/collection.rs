//! iroh-blobs collections, the format stock iroh tools (`sendme`) speak: a
//! hash sequence whose first entry is a metadata blob (`CollectionV0.`
//! header and the file names, postcard-encoded) and whose other entries
//! are the files.
//!
//! Sending: [`make`] wraps one held blob in a one-file collection with a
//! name, stores the metadata blob and the hash sequence, and tags the
//! sequence (`atoll/collection/<blob hex>/<seq hex>`, format `HashSeq`) so
//! garbage collection keeps all three; removing the blob drops its
//! collection tags ([`crate::store::Blobs::remove`]).
//!
//! Receiving: [`read_remote`] asks a peer for a collection's hash sequence
//! and metadata, each as a plain blob request, both bounded before they
//! are read; the files are then fetched like any blob (verified, paid for
//! if need be). Nothing of the collection is stored on the way.

use std::time::Duration;

use atoll_core::ContentId;
use bytes::Bytes;
use iroh::{Endpoint, EndpointAddr, endpoint::Connection};
use iroh_blobs::{
    Hash, HashAndFormat,
    format::collection::{Collection, CollectionMeta},
    get::fsm,
    hashseq::HashSeq,
    protocol::GetRequest,
};

use crate::store::{Blobs, hash_of, id_of};

/// Prefix of the tags that keep collections alive.
pub const TAG_PREFIX: &str = "atoll/collection/";
/// Most files accepted in a collection read from a peer.
pub const MAX_FILES: usize = 4096;
/// Largest collection metadata blob accepted from a peer, in bytes.
pub const MAX_META_BYTES: u64 = 1 << 20;
/// How long a peer may take to connect and answer each request.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors making or reading a collection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectionError {
    /// The file name is not one plain name.
    #[error(
        "a collection file name must be one plain name: no '/', '\\', control characters, '.' or '..', at most 255 bytes"
    )]
    BadName,
    /// The local store failed.
    #[error("blob store: {0}")]
    Store(String),
    /// The peer could not be reached or failed.
    #[error("peer {peer}: {reason}")]
    Peer {
        /// The peer's endpoint id.
        peer: String,
        /// What went wrong.
        reason: String,
    },
    /// What the peer holds under this hash is not a collection.
    #[error("not a collection: {0}")]
    NotACollection(String),
}

/// The tag-name prefix of `id`'s collections.
pub fn tag_prefix(id: &ContentId) -> String {
    format!("{TAG_PREFIX}{}/", id.to_hex())
}

/// Wraps the held blob `id` in a one-file collection naming it `name`,
/// stores it and tags it; returns the hash sequence's hash (what a
/// collection ticket names).
pub async fn make(blobs: &Blobs, id: &ContentId, name: &str) -> Result<Hash, CollectionError> {
    let single = atoll_core::fsutil::safe_relative_path(name)
        .filter(|p| p.components().count() == 1)
        .ok_or(CollectionError::BadName)?;
    debug_assert_eq!(single.to_str(), Some(name));
    let collection: Collection = [(name.to_owned(), hash_of(id))].into_iter().collect();
    let store = blobs.store();
    let tt = collection
        .store(store)
        .await
        .map_err(|e| CollectionError::Store(e.to_string()))?;
    let seq = tt.hash();
    store
        .tags()
        .set(
            format!("{}{}", tag_prefix(id), seq.to_hex()),
            HashAndFormat::hash_seq(seq),
        )
        .await
        .map_err(|e| CollectionError::Store(e.to_string()))?;
    Ok(seq)
}

/// One file of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name the sender gave it (not checked: whoever writes it to disk
    /// must, e.g. with [`atoll_core::fsutil::safe_relative_path`]).
    pub name: String,
    /// Its content id.
    pub id: ContentId,
}

/// Reads the names and ids of the collection `seq` from the peer `addr`:
/// the hash sequence (at most [`MAX_FILES`] files) and the metadata blob
/// (at most [`MAX_META_BYTES`]), each verified as it streams.
pub async fn read_remote(
    endpoint: &Endpoint,
    addr: EndpointAddr,
    seq: Hash,
) -> Result<Vec<Entry>, CollectionError> {
    let peer = addr.id.fmt_short().to_string();
    let fail = |reason: String| CollectionError::Peer {
        peer: peer.clone(),
        reason,
    };
    let conn = tokio::time::timeout(PEER_TIMEOUT, endpoint.connect(addr, iroh_blobs::ALPN))
        .await
        .map_err(|_| fail("no connection within 30 s".into()))?
        .map_err(|e| fail(format!("cannot connect: {e}")))?;
    let result = read_from(&conn, seq).await;
    conn.close(0u32.into(), b"done");
    result.map_err(|e| match e {
        ReadError::Peer(reason) => fail(reason),
        ReadError::Format(reason) => CollectionError::NotACollection(reason),
    })
}

enum ReadError {
    Peer(String),
    Format(String),
}

async fn read_from(conn: &Connection, seq: Hash) -> Result<Vec<Entry>, ReadError> {
    let max_seq = (MAX_FILES as u64 + 1) * 32;
    let links = get_bounded(conn, seq, max_seq, "hash sequence").await?;
    let links = HashSeq::try_from(links)
        .map_err(|_| ReadError::Format("its length is not a multiple of 32 bytes".into()))?;
    let meta_hash = links
        .get(0)
        .ok_or_else(|| ReadError::Format("the hash sequence is empty".into()))?;
    let meta = get_bounded(conn, meta_hash, MAX_META_BYTES, "metadata").await?;
    let meta: CollectionMeta = postcard::from_bytes(&meta)
        .map_err(|_| ReadError::Format("its metadata blob does not parse".into()))?;
    if !meta.check_header() {
        return Err(ReadError::Format(
            "its metadata blob has no CollectionV0. header".into(),
        ));
    }
    if meta.names().len() + 1 != links.len() {
        return Err(ReadError::Format(format!(
            "{} names for {} files",
            meta.names().len(),
            links.len() - 1
        )));
    }
    Ok(meta
        .names()
        .iter()
        .zip(links.iter().skip(1))
        .map(|(name, hash)| Entry {
            name: name.clone(),
            id: id_of(&hash),
        })
        .collect())
}

/// One whole blob in memory, refused before it is read if its (claimed,
/// then verified) size is over `max`.
async fn get_bounded(
    conn: &Connection,
    hash: Hash,
    max: u64,
    what: &str,
) -> Result<Bytes, ReadError> {
    let peer = |e: &dyn std::fmt::Display| ReadError::Peer(format!("{what}: {e}"));
    let read = async {
        let start = fsm::start(conn.clone(), GetRequest::blob(hash), Default::default());
        let connected = start.next().await.map_err(|e| peer(&e))?;
        let fsm::ConnectedNext::StartRoot(root) = connected.next().await.map_err(|e| peer(&e))?
        else {
            return Err(peer(&"unexpected answer"));
        };
        let (content, size) = root.next().next().await.map_err(|e| peer(&e))?;
        if size > max {
            return Err(ReadError::Format(format!(
                "its {what} is {size} bytes, more than the {max} accepted"
            )));
        }
        let (end, data) = content.concatenate_into_vec().await.map_err(|e| peer(&e))?;
        if let fsm::EndBlobNext::Closing(closing) = end.next() {
            closing.next().await.map_err(|e| peer(&e))?;
        }
        Ok(Bytes::from(data))
    };
    tokio::time::timeout(PEER_TIMEOUT, read)
        .await
        .map_err(|_| ReadError::Peer(format!("{what}: no answer within 30 s")))?
}
