//! The node's blob store: an iroh-blobs `FsStore` (verified, resumable,
//! served to peers as is) plus a small SQLite table of what the node holds
//! and why: pinned, seeding, size, last access. Quota enforcement evicts
//! unpinned blobs, least recently used first.
//!
//! Every held or in-flight blob has a named tag `atoll/blob/<hex>` that
//! protects its bytes from the store's garbage collector; removing a blob
//! drops the tag and its row, and the collector deletes the bytes at its
//! next sweep. A blob is listed (and readable through the API) only once
//! it is complete in the store.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use atoll_core::ContentId;
use futures::StreamExt;
use iroh_blobs::{
    BlobFormat, Hash, HashAndFormat,
    api::{Store, blobs::BlobStatus},
    store::{
        GcConfig,
        fs::{FsStore, options::Options},
    },
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::advert::now_secs;

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The iroh-blobs store failed.
    #[error("blob store: {0}")]
    Blobs(String),
    /// The metadata database failed.
    #[error("blob metadata database: {0}")]
    Meta(#[from] rusqlite::Error),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The blob is not held.
    #[error("{0} is not held here")]
    NotFound(ContentId),
    /// A file being imported grew past the limit while it was read.
    #[error("the file grew past import.max_bytes ({max} bytes) while it was read")]
    TooLarge {
        /// The limit.
        max: u64,
    },
}

fn blobs_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Blobs(e.to_string())
}

/// What the node holds about one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BlobInfo {
    /// Content id.
    pub id: ContentId,
    /// Size in bytes.
    pub size: u64,
    /// Pinned blobs are never evicted.
    pub pinned: bool,
    /// Seeded blobs are advertised on Nostr.
    pub seeding: bool,
    /// When it was added (unix seconds).
    pub added_at: u64,
    /// When it was last read or added (unix seconds).
    pub last_access: u64,
    /// Paid blobs are served to untrusted peers only for a payment (when
    /// the node charges; see [`crate::pay`]).
    #[serde(default)]
    pub paid: bool,
}

/// Which way a payment went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received for serving a peer.
    Revenue,
    /// Paid to a peer for fetching.
    Spending,
}

/// One recorded payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PaymentRecord {
    /// When (unix seconds; set when recorded).
    pub at: u64,
    /// Which way.
    pub direction: Direction,
    /// The peer's endpoint id.
    pub peer: String,
    /// The blob.
    pub id: ContentId,
    /// Sat received (revenue: after the mint's input fee) or sent to the
    /// peer (spending).
    pub amount_sat: u64,
    /// Fees paid on top, in sat.
    pub fee_sat: u64,
    /// The token's mint.
    pub mint: String,
    /// Bytes of the allotment.
    pub bytes: u64,
}

/// Sums of the recorded payments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PaymentTotals {
    /// Sat received.
    pub revenue_sat: u64,
    /// Sat paid to peers plus fees.
    pub spent_sat: u64,
}

/// The store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Blobs {
    fs: FsStore,
    meta: Arc<Mutex<Connection>>,
    quota: u64,
}

/// The tag protecting a blob's bytes.
pub fn tag_name(id: &ContentId) -> String {
    format!("atoll/blob/{}", id.to_hex())
}

/// iroh-blobs hash of a content id.
pub fn hash_of(id: &ContentId) -> Hash {
    Hash::from_bytes(*id.as_bytes())
}

/// Content id of an iroh-blobs hash.
pub fn id_of(hash: &Hash) -> ContentId {
    ContentId::from_bytes(*hash.as_bytes())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    seeding INTEGER NOT NULL DEFAULT 1,
    added_at INTEGER NOT NULL,
    last_access INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    hash TEXT NOT NULL,
    amount_sat INTEGER NOT NULL,
    fee_sat INTEGER NOT NULL,
    mint TEXT NOT NULL,
    bytes INTEGER NOT NULL
);";

/// Adds columns a database made by an older version lacks.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("PRAGMA table_info(blobs)")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<_>>()?;
    if !columns.iter().any(|c| c == "paid") {
        conn.execute_batch("ALTER TABLE blobs ADD COLUMN paid INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

const COLUMNS: &str = "hash, size, pinned, seeding, added_at, last_access, paid";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, BlobInfoRow)> {
    Ok((
        r.get(0)?,
        BlobInfoRow {
            size: r.get::<_, i64>(1)? as u64,
            pinned: r.get(2)?,
            seeding: r.get(3)?,
            added_at: r.get::<_, i64>(4)? as u64,
            last_access: r.get::<_, i64>(5)? as u64,
            paid: r.get(6)?,
        },
    ))
}

struct BlobInfoRow {
    size: u64,
    pinned: bool,
    seeding: bool,
    added_at: u64,
    last_access: u64,
    paid: bool,
}

impl BlobInfoRow {
    fn into_info(self, hex: &str) -> Option<BlobInfo> {
        Some(BlobInfo {
            id: ContentId::from_hex(hex).ok()?,
            size: self.size,
            pinned: self.pinned,
            seeding: self.seeding,
            added_at: self.added_at,
            last_access: self.last_access,
            paid: self.paid,
        })
    }
}

impl Blobs {
    /// Opens (or creates) the store under `dir`.
    pub async fn open(dir: &Path, quota: u64, gc_interval: Duration) -> Result<Self, StoreError> {
        let blobs_dir = dir.join("blobs");
        std::fs::create_dir_all(&blobs_dir).map_err(|source| StoreError::Io {
            path: blobs_dir.clone(),
            source,
        })?;
        let mut options = Options::new(&blobs_dir);
        options.gc = Some(GcConfig {
            interval: gc_interval,
            add_protected: None,
        });
        let fs = FsStore::load_with_opts(blobs_dir.join("blobs.db"), options)
            .await
            .map_err(blobs_err)?;
        let conn = Connection::open(dir.join("meta.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let this = Self {
            fs,
            meta: Arc::new(Mutex::new(conn)),
            quota,
        };
        this.reconcile().await?;
        Ok(this)
    }

    /// After a crash: drop rows whose blob is not complete (never list
    /// what cannot be served whole), and record complete blobs that were
    /// tagged but not yet recorded. Partial blobs keep their tag so a new
    /// fetch resumes them.
    async fn reconcile(&self) -> Result<(), StoreError> {
        for info in self.list()? {
            if self.complete_size(&info.id).await?.is_none() {
                tracing::warn!(id = %info.id, "listed blob is not complete in the store; dropping it from the list");
                self.meta()?.execute(
                    "DELETE FROM blobs WHERE hash = ?1",
                    params![info.id.to_hex()],
                )?;
            }
        }
        let mut tags = self
            .fs
            .tags()
            .list_prefix("atoll/blob/")
            .await
            .map_err(blobs_err)?;
        let mut tagged = Vec::new();
        while let Some(tag) = tags.next().await {
            tagged.push(tag.map_err(blobs_err)?.hash);
        }
        for hash in tagged {
            let id = id_of(&hash);
            if self.get(&id)?.is_none()
                && let Some(size) = self.complete_size(&id).await?
            {
                self.record(&id, size)?;
            }
        }
        Ok(())
    }

    /// The iroh-blobs store (for the blobs protocol and fetching).
    pub fn store(&self) -> &Store {
        &self.fs
    }

    fn meta(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.meta
            .lock()
            .map_err(|_| StoreError::Blobs("metadata lock poisoned".into()))
    }

    /// The size of `id` if the store holds all of it.
    pub async fn complete_size(&self, id: &ContentId) -> Result<Option<u64>, StoreError> {
        match self
            .fs
            .blobs()
            .status(hash_of(id))
            .await
            .map_err(blobs_err)?
        {
            BlobStatus::Complete { size } => Ok(Some(size)),
            _ => Ok(None),
        }
    }

    /// Protects `id`'s bytes (complete or not) from garbage collection.
    pub async fn protect(&self, id: &ContentId) -> Result<(), StoreError> {
        self.fs
            .tags()
            .set(
                tag_name(id),
                HashAndFormat::new(hash_of(id), BlobFormat::Raw),
            )
            .await
            .map_err(blobs_err)
    }

    /// Records a complete blob as held (seeding, unpinned), keeping the
    /// flags of an existing row.
    pub fn record(&self, id: &ContentId, size: u64) -> Result<BlobInfo, StoreError> {
        self.record_with(id, size, true)
    }

    /// Records a complete blob as held, seeding it or not if it is new; an
    /// existing row keeps its flags.
    pub fn record_with(
        &self,
        id: &ContentId,
        size: u64,
        seeding: bool,
    ) -> Result<BlobInfo, StoreError> {
        let now = now_secs() as i64;
        let meta = self.meta()?;
        meta.execute(
            "INSERT INTO blobs (hash, size, seeding, added_at, last_access) VALUES (?1, ?2, ?4, ?3, ?3)
             ON CONFLICT(hash) DO UPDATE SET last_access = ?3",
            params![id.to_hex(), size as i64, now, seeding],
        )?;
        drop(meta);
        self.get(id)?.ok_or(StoreError::NotFound(*id))
    }

    /// Adds bytes held in memory.
    pub async fn add_bytes(&self, data: impl Into<bytes::Bytes>) -> Result<BlobInfo, StoreError> {
        let data = data.into();
        let id = ContentId::of(&data);
        let size = data.len() as u64;
        self.protect(&id).await?;
        let _tt = self
            .fs
            .blobs()
            .add_bytes(data)
            .temp_tag()
            .await
            .map_err(blobs_err)?;
        self.record(&id, size)
    }

    /// Adds a file the daemon can read (copied into the store).
    pub async fn add_file(&self, path: &Path) -> Result<BlobInfo, StoreError> {
        let path = std::path::absolute(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        std::fs::metadata(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let tt = self
            .fs
            .blobs()
            .add_path(&path)
            .temp_tag()
            .await
            .map_err(blobs_err)?;
        self.hold(&tt, true).await
    }

    /// Adds a file opened and checked by [`crate::import::ImportPolicy`],
    /// reading at most `max_bytes` (a file that grew past it since it was
    /// checked is refused, not cut short).
    pub async fn add_opened(
        &self,
        opened: crate::import::OpenedFile,
        max_bytes: u64,
        seeding: bool,
    ) -> Result<BlobInfo, StoreError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::AsyncReadExt;
        let file = tokio::fs::File::from_std(opened.file).take(max_bytes.saturating_add(1));
        let over = Arc::new(AtomicBool::new(false));
        let flag = over.clone();
        let mut read = 0u64;
        let stream =
            tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
                let chunk = chunk?;
                read += chunk.len() as u64;
                if read > max_bytes {
                    flag.store(true, Ordering::Relaxed);
                    return Err(std::io::Error::other("over import.max_bytes"));
                }
                Ok(chunk)
            });
        match self.add_stream(stream, seeding).await {
            Err(_) if over.load(Ordering::Relaxed) => Err(StoreError::TooLarge { max: max_bytes }),
            other => other,
        }
    }

    /// Tags and records a blob the store just imported (while its temp
    /// tag still protects it).
    async fn hold(
        &self,
        tt: &iroh_blobs::api::TempTag,
        seeding: bool,
    ) -> Result<BlobInfo, StoreError> {
        let id = id_of(&tt.hash());
        self.protect(&id).await?;
        let size = self
            .complete_size(&id)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        self.record_with(&id, size, seeding)
    }

    /// Adds a byte stream (an upload), seeding it or not if it is new.
    pub async fn add_stream(
        &self,
        stream: impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static,
        seeding: bool,
    ) -> Result<BlobInfo, StoreError> {
        let tt = self
            .fs
            .blobs()
            .add_stream(stream)
            .await
            .temp_tag()
            .await
            .map_err(blobs_err)?;
        self.hold(&tt, seeding).await
    }

    /// One held blob.
    pub fn get(&self, id: &ContentId) -> Result<Option<BlobInfo>, StoreError> {
        let hex = id.to_hex();
        let r = self
            .meta()?
            .query_row(
                &format!("SELECT {COLUMNS} FROM blobs WHERE hash = ?1"),
                params![hex],
                row,
            )
            .optional()?;
        Ok(r.and_then(|(h, r)| r.into_info(&h)))
    }

    /// Every held blob, most recently used first.
    pub fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let meta = self.meta()?;
        let mut stmt = meta.prepare(&format!(
            "SELECT {COLUMNS} FROM blobs ORDER BY last_access DESC, hash"
        ))?;
        let rows = stmt.query_map([], row)?;
        let mut out = Vec::new();
        for r in rows {
            let (h, r) = r?;
            if let Some(info) = r.into_info(&h) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Marks a read.
    pub fn touch(&self, id: &ContentId) -> Result<(), StoreError> {
        self.meta()?.execute(
            "UPDATE blobs SET last_access = ?2 WHERE hash = ?1",
            params![id.to_hex(), now_secs() as i64],
        )?;
        Ok(())
    }

    fn set_flag(&self, id: &ContentId, column: &str, value: bool) -> Result<BlobInfo, StoreError> {
        let sql = format!("UPDATE blobs SET {column} = ?2 WHERE hash = ?1");
        let n = self.meta()?.execute(&sql, params![id.to_hex(), value])?;
        if n == 0 {
            return Err(StoreError::NotFound(*id));
        }
        self.get(id)?.ok_or(StoreError::NotFound(*id))
    }

    /// Pins or unpins.
    pub fn set_pinned(&self, id: &ContentId, pinned: bool) -> Result<BlobInfo, StoreError> {
        self.set_flag(id, "pinned", pinned)
    }

    /// Starts or stops seeding.
    pub fn set_seeding(&self, id: &ContentId, seeding: bool) -> Result<BlobInfo, StoreError> {
        self.set_flag(id, "seeding", seeding)
    }

    /// Marks a blob paid or free.
    pub fn set_paid(&self, id: &ContentId, paid: bool) -> Result<BlobInfo, StoreError> {
        self.set_flag(id, "paid", paid)
    }

    /// Records a payment (its time is set now).
    pub fn record_payment(&self, p: &PaymentRecord) -> Result<(), StoreError> {
        let direction = match p.direction {
            Direction::Revenue => "revenue",
            Direction::Spending => "spending",
        };
        self.meta()?.execute(
            "INSERT INTO payments (at, direction, peer, hash, amount_sat, fee_sat, mint, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                now_secs() as i64,
                direction,
                p.peer,
                p.id.to_hex(),
                p.amount_sat as i64,
                p.fee_sat as i64,
                p.mint,
                p.bytes as i64
            ],
        )?;
        Ok(())
    }

    /// Recorded payments, newest first.
    pub fn payments(&self) -> Result<Vec<PaymentRecord>, StoreError> {
        let meta = self.meta()?;
        let mut stmt = meta.prepare(
            "SELECT at, direction, peer, hash, amount_sat, fee_sat, mint, bytes
             FROM payments ORDER BY seq DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (at, direction, peer, hash, amount, fee, mint, bytes) = r?;
            let Ok(id) = ContentId::from_hex(&hash) else {
                continue;
            };
            out.push(PaymentRecord {
                at: at as u64,
                direction: if direction == "revenue" {
                    Direction::Revenue
                } else {
                    Direction::Spending
                },
                peer,
                id,
                amount_sat: amount as u64,
                fee_sat: fee as u64,
                mint,
                bytes: bytes as u64,
            });
        }
        Ok(out)
    }

    /// Sums of the recorded payments.
    pub fn payment_totals(&self) -> Result<PaymentTotals, StoreError> {
        let mut t = PaymentTotals::default();
        for p in self.payments()? {
            match p.direction {
                Direction::Revenue => t.revenue_sat += p.amount_sat,
                Direction::Spending => t.spent_sat += p.amount_sat + p.fee_sat,
            }
        }
        Ok(t)
    }

    /// Forgets a blob (held or partial); its bytes go at the next sweep.
    pub async fn remove(&self, id: &ContentId) -> Result<bool, StoreError> {
        let rows = self
            .meta()?
            .execute("DELETE FROM blobs WHERE hash = ?1", params![id.to_hex()])?;
        let tags = self
            .fs
            .tags()
            .delete(tag_name(id))
            .await
            .map_err(blobs_err)?;
        // Collections made of it (`atoll blob ticket`) go with it.
        self.fs
            .tags()
            .delete_prefix(crate::collection::tag_prefix(id))
            .await
            .map_err(blobs_err)?;
        Ok(rows > 0 || tags > 0)
    }

    /// Total bytes of held blobs.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let total: i64 =
            self.meta()?
                .query_row("SELECT COALESCE(SUM(size), 0) FROM blobs", [], |r| r.get(0))?;
        Ok(total as u64)
    }

    /// The quota in bytes (0: none).
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// Evicts unpinned blobs, least recently used first, until the held
    /// bytes fit the quota. Blobs in `keep` (in use right now) stay.
    pub async fn enforce_quota(
        &self,
        keep: &HashSet<ContentId>,
    ) -> Result<Vec<BlobInfo>, StoreError> {
        let mut evicted = Vec::new();
        if self.quota == 0 {
            return Ok(evicted);
        }
        let mut used = self.used_bytes()?;
        if used <= self.quota {
            return Ok(evicted);
        }
        let mut candidates: Vec<BlobInfo> = self
            .list()?
            .into_iter()
            .filter(|b| !b.pinned && !keep.contains(&b.id))
            .collect();
        candidates.sort_by_key(|b| (b.last_access, b.added_at));
        for b in candidates {
            if used <= self.quota {
                break;
            }
            self.remove(&b.id).await?;
            used = used.saturating_sub(b.size);
            tracing::info!(id = %b.id, size = b.size, "evicted (storage quota)");
            evicted.push(b);
        }
        if used > self.quota {
            tracing::warn!(
                used,
                quota = self.quota,
                "over quota: the rest is pinned or in use"
            );
        }
        Ok(evicted)
    }

    /// Sets a blob's last access time (tests of eviction order).
    #[doc(hidden)]
    pub fn set_last_access(&self, id: &ContentId, t: u64) -> Result<(), StoreError> {
        self.meta()?.execute(
            "UPDATE blobs SET last_access = ?2 WHERE hash = ?1",
            params![id.to_hex(), t as i64],
        )?;
        Ok(())
    }

    /// Flushes and closes the store.
    pub async fn shutdown(&self) {
        if let Err(e) = self.fs.shutdown().await {
            tracing::warn!("blob store shutdown: {e}");
        }
    }
}
