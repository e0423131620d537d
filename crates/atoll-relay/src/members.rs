//! Who may use the relay: the owner (always), the keys in the members file
//! (re-read when it changes, no restart) and the keys in the owner's signed
//! membership list from Nostr ([`crate::nostr_list`]).
//!
//! The members file is plain text, one Nostr public key per line (`npub1…`
//! or 64 hex characters), `#` starting a comment. A line that is not a key
//! is refused — that key is simply not a member — and reported with its
//! line number; at start-up it is an error. A members file that goes
//! missing or unreadable while running counts as empty: the relay fails
//! closed, and only the owner and list members stay admitted.

use std::{
    collections::HashSet,
    fmt, fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use nostr::{FromBech32, PublicKey, ToBech32};
use tokio::sync::watch;

/// A set of members.
pub type MemberSet = HashSet<PublicKey>;

/// A string that is not a Nostr public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Nostr public key (want npub1… or 64 hex characters)")]
pub struct BadKey;

/// Parses `npub1…` or 64 lowercase or uppercase hex characters.
pub fn parse_pubkey(s: &str) -> Result<PublicKey, BadKey> {
    if s.starts_with("npub1") {
        PublicKey::from_bech32(s).map_err(|_| BadKey)
    } else if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        PublicKey::from_hex(s).map_err(|_| BadKey)
    } else {
        Err(BadKey)
    }
}

/// A key as people write it: `npub1…` (hex if bech32 fails).
pub fn npub(key: &PublicKey) -> String {
    key.to_bech32().unwrap_or_else(|_| key.to_hex())
}

/// A line of the members file that is not a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {BadKey}", self.line)
    }
}

/// The content of a members file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersText {
    /// The keys found.
    pub members: MemberSet,
    /// Lines that are neither keys, comments nor blank.
    pub bad_lines: Vec<BadLine>,
}

/// The key on a line, if any: text before `#`, trimmed.
fn line_key(line: &str) -> Option<&str> {
    let text = line.split('#').next().unwrap_or("").trim();
    (!text.is_empty()).then_some(text)
}

/// Parses a members file's text.
pub fn parse_members(text: &str) -> MembersText {
    let mut out = MembersText::default();
    for (i, line) in text.lines().enumerate() {
        if let Some(key) = line_key(line) {
            match parse_pubkey(key) {
                Ok(k) => {
                    out.members.insert(k);
                }
                Err(_) => out.bad_lines.push(BadLine { line: i + 1 }),
            }
        }
    }
    out
}

/// Errors reading or editing a members file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembersFileError {
    /// The file cannot be read or written.
    #[error("members file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file has lines that are not keys.
    #[error("members file {}: {}", path.display(), lines.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    BadLines {
        /// The file.
        path: PathBuf,
        /// The bad lines.
        lines: Vec<BadLine>,
    },
}

/// Reads a members file, strictly: any bad line is an error.
pub fn read_members_file(path: &Path) -> Result<MemberSet, MembersFileError> {
    let text = fs::read_to_string(path).map_err(|source| MembersFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let parsed = parse_members(&text);
    if !parsed.bad_lines.is_empty() {
        return Err(MembersFileError::BadLines {
            path: path.to_owned(),
            lines: parsed.bad_lines,
        });
    }
    Ok(parsed.members)
}

fn read_text_or_empty(path: &Path) -> Result<String, MembersFileError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(MembersFileError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `text` to `path` atomically (temp file, fsync, rename), keeping
/// the mode of an existing file (new files: 0644, the relay may run as
/// another user).
fn write_atomic(path: &Path, text: &str) -> Result<(), MembersFileError> {
    use std::{io::Write, os::unix::fs::PermissionsExt};
    let io_err = |source| MembersFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

/// Adds `key` to the members file (created if missing). Comments and other
/// lines are kept. Returns `false` when the key was already there.
pub fn add_member(path: &Path, key: &PublicKey) -> Result<bool, MembersFileError> {
    let text = read_text_or_empty(path)?;
    if parse_members(&text).members.contains(key) {
        return Ok(false);
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&npub(key));
    out.push('\n');
    write_atomic(path, &out)?;
    Ok(true)
}

/// Removes every line naming `key` (in either spelling) from the members
/// file. Returns `false` when the key was not there.
pub fn remove_member(path: &Path, key: &PublicKey) -> Result<bool, MembersFileError> {
    let text = read_text_or_empty(path)?;
    let mut removed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let names_key = line_key(line).and_then(|k| parse_pubkey(k).ok()).as_ref() == Some(key);
        if names_key {
            removed = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if removed {
        write_atomic(path, &out)?;
    }
    Ok(removed)
}

#[derive(Debug, Default)]
struct Sources {
    file: MemberSet,
    list: MemberSet,
}

/// The live membership: owner ∪ members file ∪ signed list. Cheap to
/// query; changes are broadcast so live connections can be re-checked.
#[derive(Debug, Clone)]
pub struct Membership {
    inner: Arc<MembershipInner>,
}

#[derive(Debug)]
struct MembershipInner {
    owner: PublicKey,
    sources: Mutex<Sources>,
    current: watch::Sender<Arc<MemberSet>>,
}

impl Membership {
    /// A membership of the owner alone.
    pub fn new(owner: PublicKey) -> Self {
        let (current, _) = watch::channel(Arc::new(HashSet::from([owner])));
        Self {
            inner: Arc::new(MembershipInner {
                owner,
                sources: Mutex::new(Sources::default()),
                current,
            }),
        }
    }

    /// The relay owner.
    pub fn owner(&self) -> &PublicKey {
        &self.inner.owner
    }

    /// Whether `key` is a member now.
    pub fn is_member(&self, key: &PublicKey) -> bool {
        self.inner.current.borrow().contains(key)
    }

    /// Everyone who is a member now.
    pub fn current(&self) -> Arc<MemberSet> {
        self.inner.current.borrow().clone()
    }

    /// Notified whenever the membership changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.inner.current.subscribe()
    }

    /// Replaces the members taken from the members file.
    pub fn set_file_members(&self, members: MemberSet) {
        self.update(|s| s.file = members);
    }

    /// Replaces the members taken from the signed membership list.
    pub fn set_list_members(&self, members: MemberSet) {
        self.update(|s| s.list = members);
    }

    fn update(&self, f: impl FnOnce(&mut Sources)) {
        let Ok(mut sources) = self.inner.sources.lock() else {
            // A poisoned lock means a panic mid-update: admit only the owner.
            self.inner
                .current
                .send_replace(Arc::new(HashSet::from([self.inner.owner])));
            return;
        };
        f(&mut sources);
        let mut all: MemberSet = sources.file.union(&sources.list).copied().collect();
        all.insert(self.inner.owner);
        self.inner.current.send_if_modified(|cur| {
            if **cur == all {
                false
            } else {
                *cur = Arc::new(all);
                true
            }
        });
    }
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    changed: i64,
    changed_ns: i64,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path)?;
    Ok(Stamp {
        modified: m.modified().ok(),
        changed: m.ctime(),
        changed_ns: m.ctime_nsec(),
        len: m.len(),
        ino: m.ino(),
    })
}

/// Reads the members file into `membership` now and then whenever its
/// modification time, size or inode change (checked every `interval`),
/// until the task is aborted.
pub fn spawn_file_watcher(
    path: PathBuf,
    membership: Membership,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<Result<Stamp, io::ErrorKind>> = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(&path).map_err(|e| e.kind());
            if last.as_ref() == Some(&now) {
                continue;
            }
            last = Some(now);
            reload(&path, &membership);
        }
    })
}

/// Reads the members file once into `membership`, failing closed: a
/// missing or unreadable file counts as empty, bad lines are skipped.
pub fn reload(path: &Path, membership: &Membership) {
    match fs::read_to_string(path) {
        Ok(text) => {
            let parsed = parse_members(&text);
            for bad in &parsed.bad_lines {
                tracing::error!(file = %path.display(), "members file {bad}; that line admits nobody");
            }
            tracing::info!(file = %path.display(), members = parsed.members.len(), "members file loaded");
            membership.set_file_members(parsed.members);
        }
        Err(e) => {
            tracing::error!(file = %path.display(), "cannot read members file ({e}); no file members are admitted until it is back");
            membership.set_file_members(MemberSet::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PublicKey {
        nostr::Keys::generate().public_key()
    }

    #[test]
    fn parses_npub_hex_comments_and_reports_bad_lines() {
        let (a, b) = (key(), key());
        let text = format!(
            "# group members\n{}  # alice\n\n   {}\nnot-a-key\nnpub1qqqq\n{}\n",
            npub(&a),
            b.to_hex().to_uppercase(),
            &a.to_hex()[..63]
        );
        let parsed = parse_members(&text);
        assert_eq!(parsed.members, HashSet::from([a, b]));
        assert_eq!(
            parsed.bad_lines,
            vec![
                BadLine { line: 5 },
                BadLine { line: 6 },
                BadLine { line: 7 }
            ]
        );
    }

    #[test]
    fn add_remove_keep_comments_and_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("members");
        let (a, b) = (key(), key());
        fs::write(&path, format!("# keep me\n{}\n", a.to_hex())).unwrap();
        assert!(add_member(&path, &b).unwrap());
        assert!(!add_member(&path, &b).unwrap());
        assert_eq!(read_members_file(&path).unwrap(), HashSet::from([a, b]));
        // Removing by key matches the hex spelling written by hand.
        assert!(remove_member(&path, &a).unwrap());
        assert!(!remove_member(&path, &a).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# keep me\n"), "{text}");
        assert_eq!(read_members_file(&path).unwrap(), HashSet::from([b]));
        // A missing file is created by `add`.
        let fresh = dir.path().join("new");
        assert!(add_member(&fresh, &a).unwrap());
        assert_eq!(read_members_file(&fresh).unwrap(), HashSet::from([a]));
        // Strict reading refuses bad lines.
        fs::write(&path, "junk\n").unwrap();
        assert!(matches!(
            read_members_file(&path),
            Err(MembersFileError::BadLines { .. })
        ));
    }

    #[test]
    fn membership_is_the_union_and_always_has_the_owner() {
        let (owner, a, b) = (key(), key(), key());
        let m = Membership::new(owner);
        let mut rx = m.subscribe();
        assert!(m.is_member(&owner) && !m.is_member(&a));
        m.set_file_members(HashSet::from([a]));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        m.set_list_members(HashSet::from([b, owner]));
        assert!(m.is_member(&a) && m.is_member(&b));
        rx.mark_unchanged();
        // The same set again is not a change.
        m.set_list_members(HashSet::from([b, owner]));
        assert!(!rx.has_changed().unwrap());
        m.set_file_members(HashSet::new());
        m.set_list_members(HashSet::new());
        assert!(!m.is_member(&a) && !m.is_member(&b) && m.is_member(&owner));
        assert_eq!(m.current().len(), 1);
    }

    #[tokio::test]
    async fn watcher_follows_edits_and_fails_closed_when_the_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("members");
        let (owner, a) = (key(), key());
        fs::write(&path, format!("{}\n", npub(&a))).unwrap();
        let m = Membership::new(owner);
        let task = spawn_file_watcher(path.clone(), m.clone(), Duration::from_millis(20));
        let wait = |want: bool| {
            let m = m.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), async {
                    while m.is_member(&a) != want {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await
                .unwrap()
            }
        };
        wait(true).await;
        remove_member(&path, &a).unwrap();
        wait(false).await;
        add_member(&path, &a).unwrap();
        wait(true).await;
        fs::remove_file(&path).unwrap();
        wait(false).await;
        assert!(m.is_member(&owner));
        task.abort();
    }
}
