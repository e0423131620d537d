//! The wallet's own SQLite database (`atoll-wallet.sqlite`, WAL): the mint
//! trust list, the spending record behind the budgets, the history shown to
//! the owner and the swap journal that makes cross-mint swaps crash-safe.
//!
//! The ecash itself lives in cdk's database next to it; this one only holds
//! what Atoll adds on top.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Errors of the wallet's own database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("wallet database: {source}")]
    Sqlite {
        /// The SQLite error.
        #[from]
        source: rusqlite::Error,
    },
    /// The journal holds a step name this version does not know.
    #[error("swap journal entry {id} has an unknown step `{step}`")]
    UnknownStep {
        /// Journal entry.
        id: i64,
        /// The stored step.
        step: String,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS trusted_mints (
    url TEXT PRIMARY KEY,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spends (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    amount_sat INTEGER NOT NULL,
    swap_id INTEGER,
    token_hash TEXT
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    mint TEXT NOT NULL,
    amount_sat INTEGER NOT NULL,
    fee_sat INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outstanding (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    mint TEXT NOT NULL,
    amount_sat INTEGER NOT NULL,
    reclaim_at INTEGER NOT NULL,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS routes (
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_success INTEGER,
    last_failure INTEGER,
    PRIMARY KEY (source, target)
);
CREATE TABLE IF NOT EXISTS swaps (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    amount_sat INTEGER NOT NULL,
    mint_amount_sat INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    step TEXT NOT NULL,
    step_done INTEGER NOT NULL,
    mint_quote_id TEXT,
    bolt11 TEXT,
    melt_quote_id TEXT,
    send_operation TEXT,
    fee_sat INTEGER NOT NULL DEFAULT 0,
    melt_swap_fee_sat INTEGER NOT NULL DEFAULT 0,
    token TEXT,
    finished INTEGER NOT NULL DEFAULT 0,
    outcome TEXT
);
";

/// Columns added after the first version: (table, column, definition).
const ADDED_COLUMNS: [(&str, &str, &str); 2] = [
    ("swaps", "melt_swap_fee_sat", "INTEGER NOT NULL DEFAULT 0"),
    ("spends", "token_hash", "TEXT"),
];

/// Brings a database made by an earlier version up to [`SCHEMA`].
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, definition) in ADDED_COLUMNS {
        let has_column: bool = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has_column {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

/// What the spending record keeps of a token: a hash (a token is a bearer
/// note; the record never holds one).
fn token_hash(token: &str) -> String {
    blake3::hash(token.trim().as_bytes()).to_hex().to_string()
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The steps of a cross-mint swap, in order. Each is journalled before it is
/// taken and marked done after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapStep {
    /// A mint quote (an invoice) is created at the target mint.
    MintQuote,
    /// A melt quote for that invoice is created at the source mint.
    MeltQuote,
    /// The source mint pays the invoice (the melt).
    MeltPaid,
    /// The paid quote is minted at the target mint.
    Minted,
    /// A token is made from the target mint's ecash for the payee.
    Sent,
}

impl SwapStep {
    /// Every step, in order.
    pub const ALL: [SwapStep; 5] = [
        SwapStep::MintQuote,
        SwapStep::MeltQuote,
        SwapStep::MeltPaid,
        SwapStep::Minted,
        SwapStep::Sent,
    ];

    /// The step's name in the journal (`mint_quote`, `melt_paid`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SwapStep::MintQuote => "mint_quote",
            SwapStep::MeltQuote => "melt_quote",
            SwapStep::MeltPaid => "melt_paid",
            SwapStep::Minted => "minted",
            SwapStep::Sent => "sent",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

/// One swap of the journal.
#[derive(Debug, Clone)]
pub(crate) struct SwapRecord {
    pub id: i64,
    pub source: String,
    pub target: String,
    pub amount_sat: u64,
    pub step: SwapStep,
    pub step_done: bool,
    pub mint_quote_id: Option<String>,
    pub melt_quote_id: Option<String>,
    pub send_operation: Option<String>,
    pub fee_sat: u64,
    /// Input fee of the swap cdk makes before a melt (known before the
    /// melt is confirmed, paid only if the melt goes ahead).
    pub melt_swap_fee_sat: u64,
    pub token: Option<String>,
    pub purpose: String,
}

/// What the wallet remembers of swaps from one mint into another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    /// The mint that melts.
    pub source: String,
    /// The mint that mints.
    pub target: String,
    /// Swaps that paid.
    pub succeeded: u64,
    /// Swaps that did not.
    pub failed: u64,
    /// Unix seconds of the last success.
    pub last_success: Option<i64>,
    /// Unix seconds of the last failure.
    pub last_failure: Option<i64>,
}

impl RouteStats {
    /// Preference among routes, lower first: 0 proven (its last attempt
    /// succeeded), 1 never tried, 2 its last attempt failed.
    pub fn rank(stats: Option<&RouteStats>) -> u8 {
        match stats {
            None => 1,
            Some(r) => match (r.last_success, r.last_failure) {
                (Some(ok), Some(bad)) if bad > ok => 2,
                (Some(_), _) => 0,
                (None, Some(_)) => 2,
                (None, None) => 1,
            },
        }
    }
}

/// One entry of the wallet's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds.
    pub at: i64,
    /// `pay`, `swap`, `swap_kept` (a swap whose payment was not made: the
    /// value stayed in the wallet, only the fee was spent), `reclaim` (a
    /// token its payee never took, taken back), `rotate` (ecash moved off
    /// an old keyset), `receive`, `invoice`, `pay_invoice`, `restore`.
    pub kind: String,
    /// The mint concerned (for a swap, the target).
    pub mint: String,
    /// Amount in sat.
    pub amount_sat: u64,
    /// Fees paid in sat.
    pub fee_sat: u64,
    /// The purpose given by the caller, or what happened.
    pub note: String,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The database, behind a mutex: every call is short and local.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating) the database at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        // FULL: a journalled intent must survive a power cut, not only a
        // killed process, before the step it announces is taken.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn trusted(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT url FROM trusted_mints ORDER BY url")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn is_trusted(&self, url: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM trusted_mints WHERE url = ?1", [url], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    /// Returns whether the mint was newly added.
    pub fn trust(&self, url: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "INSERT OR IGNORE INTO trusted_mints (url, added_at) VALUES (?1, ?2)",
            params![url, now()],
        )? > 0)
    }

    /// Returns whether the mint was on the list.
    pub fn distrust(&self, url: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM trusted_mints WHERE url = ?1", [url])?
            > 0)
    }

    /// Sat spent (amount and fees) since `since` (Unix seconds).
    pub fn spent_since(&self, since: i64) -> Result<u64, StoreError> {
        let total: i64 = self.conn().query_row(
            "SELECT COALESCE(SUM(amount_sat), 0) FROM spends WHERE at >= ?1",
            [since],
            |r| r.get(0),
        )?;
        Ok(to_u64(total))
    }

    /// Records a spend; returns its id.
    pub fn record_spend(&self, amount_sat: u64, swap_id: Option<i64>) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO spends (at, amount_sat, swap_id) VALUES (?1, ?2, ?3)",
            params![now(), to_i64(amount_sat), swap_id],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Sets a spend to its final amount.
    pub fn settle_spend(&self, id: i64, amount_sat: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE spends SET amount_sat = ?2 WHERE id = ?1",
            params![id, to_i64(amount_sat)],
        )?;
        Ok(())
    }

    /// Notes which token a spend paid for, so that taking the token back
    /// can refund the budget.
    pub fn spend_token(&self, id: i64, token: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE spends SET token_hash = ?2 WHERE id = ?1",
            params![id, token_hash(token)],
        )?;
        Ok(())
    }

    /// A token came back (`back_sat` of it): its spend keeps only what was
    /// lost on the way (fees). Once per token; `false` if no spend has it.
    pub fn refund_token(&self, token: &str, back_sat: u64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE spends SET amount_sat = MAX(amount_sat - ?2, 0), token_hash = NULL
             WHERE token_hash = ?1",
            params![token_hash(token), to_i64(back_sat)],
        )?;
        Ok(n > 0)
    }

    pub fn drop_spend(&self, id: i64) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM spends WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn drop_swap_spend(&self, swap_id: i64) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM spends WHERE swap_id = ?1", [swap_id])?;
        Ok(())
    }

    pub fn add_history(
        &self,
        kind: &str,
        mint: &str,
        amount_sat: u64,
        fee_sat: u64,
        note: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO history (at, kind, mint, amount_sat, fee_sat, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now(), kind, mint, to_i64(amount_sat), to_i64(fee_sat), note],
        )?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn history(&self, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, kind, mint, amount_sat, fee_sat, note FROM history ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(HistoryEntry {
                at: r.get(0)?,
                kind: r.get(1)?,
                mint: r.get(2)?,
                amount_sat: to_u64(r.get(3)?),
                fee_sat: to_u64(r.get(4)?),
                note: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Journals a new swap whose first step (a mint quote at the target) is
    /// about to be taken.
    pub fn begin_swap(
        &self,
        source: &str,
        target: &str,
        amount_sat: u64,
        mint_amount_sat: u64,
        purpose: &str,
    ) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO swaps (created_at, source, target, amount_sat, mint_amount_sat, purpose, step, step_done)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
            params![
                now(),
                source,
                target,
                to_i64(amount_sat),
                to_i64(mint_amount_sat),
                purpose,
                SwapStep::MintQuote.as_str()
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Journals that `step` is about to be taken.
    pub fn step_intent(&self, id: i64, step: SwapStep) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE swaps SET step = ?2, step_done = 0 WHERE id = ?1",
            params![id, step.as_str()],
        )?;
        Ok(())
    }

    /// Journals that `step` was taken, with what it produced.
    pub fn step_done(&self, id: i64, step: SwapStep) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE swaps SET step = ?2, step_done = 1 WHERE id = ?1",
            params![id, step.as_str()],
        )?;
        Ok(())
    }

    /// Sets one text column of a swap (`mint_quote_id`, `bolt11`,
    /// `melt_quote_id`, `send_operation`, `token`).
    pub fn set_swap_field(&self, id: i64, field: SwapField, value: &str) -> Result<(), StoreError> {
        let sql = match field {
            SwapField::MintQuoteId => "UPDATE swaps SET mint_quote_id = ?2 WHERE id = ?1",
            SwapField::Bolt11 => "UPDATE swaps SET bolt11 = ?2 WHERE id = ?1",
            SwapField::MeltQuoteId => "UPDATE swaps SET melt_quote_id = ?2 WHERE id = ?1",
            SwapField::SendOperation => "UPDATE swaps SET send_operation = ?2 WHERE id = ?1",
            SwapField::Token => "UPDATE swaps SET token = ?2 WHERE id = ?1",
        };
        self.conn().execute(sql, params![id, value])?;
        Ok(())
    }

    /// Journals that `step` was taken and cost `fee_sat`, in one statement
    /// (so a resume never counts the fee twice).
    pub fn step_done_with_fee(
        &self,
        id: i64,
        step: SwapStep,
        fee_sat: u64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE swaps SET step = ?2, step_done = 1, fee_sat = fee_sat + ?3 WHERE id = ?1",
            params![id, step.as_str(), to_i64(fee_sat)],
        )?;
        Ok(())
    }

    /// Journals the input fee of the swap a melt makes first.
    pub fn set_melt_swap_fee(&self, id: i64, fee_sat: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE swaps SET melt_swap_fee_sat = ?2 WHERE id = ?1",
            params![id, to_i64(fee_sat)],
        )?;
        Ok(())
    }

    /// Keeps a token made for a payee that redeems at once, to be taken
    /// back at `reclaim_at` (unix seconds) if it is still unredeemed then.
    pub fn add_outstanding(
        &self,
        token: &str,
        mint: &str,
        amount_sat: u64,
        reclaim_at: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO outstanding (token_hash, token, mint, amount_sat, reclaim_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token_hash(token),
                token.trim(),
                mint,
                to_i64(amount_sat),
                reclaim_at
            ],
        )?;
        Ok(())
    }

    /// Outstanding tokens due at `now`: (token, mint).
    pub fn due_outstanding(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT token, mint FROM outstanding
             WHERE outcome IS NULL AND reclaim_at <= ?1 ORDER BY reclaim_at",
        )?;
        let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Closes an outstanding token (redeemed by its payee, or taken back);
    /// its bearer text is wiped. No-op for a token not outstanding.
    pub fn settle_outstanding(&self, token: &str, outcome: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outstanding SET outcome = ?2, token = '' WHERE token_hash = ?1 AND outcome IS NULL",
            params![token_hash(token), outcome],
        )?;
        Ok(())
    }

    /// Remembers how a swap from `source` into `target` went.
    pub fn route_result(&self, source: &str, target: &str, ok: bool) -> Result<(), StoreError> {
        let sql = if ok {
            "INSERT INTO routes (source, target, succeeded, last_success) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (source, target) DO UPDATE SET succeeded = succeeded + 1, last_success = ?3"
        } else {
            "INSERT INTO routes (source, target, failed, last_failure) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (source, target) DO UPDATE SET failed = failed + 1, last_failure = ?3"
        };
        self.conn().execute(sql, params![source, target, now()])?;
        Ok(())
    }

    /// Every route tried so far.
    pub fn routes(&self) -> Result<Vec<RouteStats>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT source, target, succeeded, failed, last_success, last_failure
             FROM routes ORDER BY source, target",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RouteStats {
                source: r.get(0)?,
                target: r.get(1)?,
                succeeded: to_u64(r.get(2)?),
                failed: to_u64(r.get(3)?),
                last_success: r.get(4)?,
                last_failure: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Closes a swap whose payment was not made although its melt was,
    /// in one transaction: the value stayed in the wallet (at `target`), so
    /// its spend becomes the fee alone, and the history shows the move and
    /// its fee.
    pub fn close_kept_swap(
        &self,
        id: i64,
        target: &str,
        amount_sat: u64,
        fee_sat: u64,
        note: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE spends SET amount_sat = ?2 WHERE swap_id = ?1",
            params![id, to_i64(fee_sat)],
        )?;
        tx.execute(
            "INSERT INTO history (at, kind, mint, amount_sat, fee_sat, note)
             VALUES (?1, 'swap_kept', ?2, ?3, ?4, ?5)",
            params![now(), target, to_i64(amount_sat), to_i64(fee_sat), note],
        )?;
        tx.execute(
            "UPDATE swaps SET finished = 1, outcome = ?2 WHERE id = ?1",
            params![id, outcome],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Closes a swap's journal entry.
    pub fn finish_swap(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE swaps SET finished = 1, outcome = ?2 WHERE id = ?1",
            params![id, outcome],
        )?;
        Ok(())
    }

    pub fn swap(&self, id: i64) -> Result<Option<SwapRecord>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, source, target, amount_sat, step, step_done, mint_quote_id,
                        melt_quote_id, send_operation, fee_sat, melt_swap_fee_sat, token, purpose
                 FROM swaps WHERE id = ?1",
                [id],
                row_to_raw,
            )
            .optional()?;
        row.map(raw_to_record).transpose()
    }

    /// Swaps whose journal entry is still open.
    pub fn open_swaps(&self) -> Result<Vec<SwapRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, source, target, amount_sat, step, step_done, mint_quote_id,
                    melt_quote_id, send_operation, fee_sat, melt_swap_fee_sat, token, purpose
             FROM swaps WHERE finished = 0 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], row_to_raw)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(raw_to_record).collect()
    }
}

impl SwapRecord {
    /// Whether the journal recorded the melt as done (so `fee_sat` holds its
    /// fee).
    pub fn step_done_after_melt(&self) -> bool {
        match self.step {
            SwapStep::MintQuote | SwapStep::MeltQuote => false,
            SwapStep::MeltPaid => self.step_done,
            SwapStep::Minted | SwapStep::Sent => true,
        }
    }
}

/// Text columns of the swap journal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SwapField {
    MintQuoteId,
    Bolt11,
    MeltQuoteId,
    SendOperation,
    Token,
}

type RawSwap = (
    i64,
    String,
    String,
    i64,
    String,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<String>,
    String,
);

fn row_to_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawSwap> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn raw_to_record(raw: RawSwap) -> Result<SwapRecord, StoreError> {
    let (
        id,
        source,
        target,
        amount,
        step,
        step_done,
        mq,
        melt,
        op,
        fee,
        melt_swap_fee,
        token,
        purpose,
    ) = raw;
    let step = SwapStep::parse(&step).ok_or(StoreError::UnknownStep { id, step })?;
    Ok(SwapRecord {
        id,
        source,
        target,
        amount_sat: to_u64(amount),
        step,
        step_done,
        mint_quote_id: mq,
        melt_quote_id: melt,
        send_operation: op,
        fee_sat: to_u64(fee),
        melt_swap_fee_sat: to_u64(melt_swap_fee),
        token,
        purpose,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may panic

    use super::*;

    /// A journal written by the first version (no `melt_swap_fee_sat`)
    /// opens, keeps its open swap and gains the column.
    #[test]
    fn a_first_version_journal_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atoll-wallet.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            let old = SCHEMA
                .replace("    melt_swap_fee_sat INTEGER NOT NULL DEFAULT 0,\n", "")
                .replace(
                    "    swap_id INTEGER,\n    token_hash TEXT\n",
                    "    swap_id INTEGER\n",
                );
            assert!(!old.contains("melt_swap_fee") && !old.contains("swap_id INTEGER,"));
            conn.execute_batch(&old).unwrap();
            conn.execute(
                "INSERT INTO swaps (created_at, source, target, amount_sat, mint_amount_sat,
                                    purpose, step, step_done, fee_sat)
                 VALUES (1, 'http://a', 'http://b', 30, 31, 'film', 'melt_paid', 0, 0)",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let open = store.open_swaps().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].step, SwapStep::MeltPaid);
        assert_eq!(open[0].melt_swap_fee_sat, 0);
        assert_eq!(open[0].purpose, "film");
        store.set_melt_swap_fee(open[0].id, 2).unwrap();
        assert_eq!(
            store.swap(open[0].id).unwrap().unwrap().melt_swap_fee_sat,
            2
        );
        let spend = store.record_spend(10, None).unwrap();
        store.spend_token(spend, "cashuBtoken").unwrap();
        assert!(store.refund_token(" cashuBtoken\n", 9).unwrap());
        assert_eq!(store.spent_since(0).unwrap(), 1, "the fee stays spent");
        assert!(!store.refund_token("cashuBtoken", 9).unwrap(), "once only");
        // Outstanding tokens: due ones listed once, then settled.
        store
            .add_outstanding("cashuBone", "http://b", 3, 100)
            .unwrap();
        store
            .add_outstanding("cashuBtwo", "http://b", 4, 200)
            .unwrap();
        assert_eq!(store.due_outstanding(150).unwrap().len(), 1);
        store.settle_outstanding(" cashuBone", "redeemed").unwrap();
        assert!(store.due_outstanding(150).unwrap().is_empty());
        assert_eq!(store.due_outstanding(200).unwrap()[0].0, "cashuBtwo");
        // Routes: proven first, untried next, last failed last.
        assert_eq!(RouteStats::rank(None), 1);
        store.route_result("http://a", "http://b", false).unwrap();
        store.route_result("http://c", "http://b", true).unwrap();
        let routes = store.routes().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(
            (routes[0].failed, RouteStats::rank(Some(&routes[0]))),
            (1, 2)
        );
        assert_eq!(
            (routes[1].succeeded, RouteStats::rank(Some(&routes[1]))),
            (1, 0)
        );
        // Opening again is a no-op.
        drop(store);
        assert_eq!(Store::open(&path).unwrap().open_swaps().unwrap().len(), 1);
    }
}
