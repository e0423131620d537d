//! Small file-system helpers: atomic private writes, quarantine of
//! corrupt files, and names from strangers made safe to write under a
//! directory.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

/// Writes `data` to `path` with mode 0600 so that readers see either no file
/// or the whole file. With `overwrite == false` an existing file is never
/// replaced (the call fails with `AlreadyExists`).
pub fn write_private_atomic(path: &Path, data: &[u8], overwrite: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            fs::rename(&tmp, path)?;
        } else {
            // A hard link fails when the target exists: no window in which
            // a concurrent writer's file could be replaced.
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
        }
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a directory (and parents) readable only by its owner.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Moves a corrupt file aside to `<path>.bad.<unix seconds>` and returns
/// where it went. Nothing is deleted.
pub fn quarantine(path: &Path) -> io::Result<PathBuf> {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut target = PathBuf::from(format!("{}.bad.{epoch}", path.display()));
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{}.bad.{epoch}.{n}", path.display()));
        n += 1;
    }
    fs::rename(path, &target)?;
    Ok(target)
}

/// Files next to `path` that [`quarantine`] made from it.
pub fn quarantined(path: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let prefix = format!(
        "{}.bad.",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Longest file name component accepted from a stranger, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Most directory levels in a name accepted from a stranger.
pub const MAX_NAME_DEPTH: usize = 16;

/// A name someone else chose (a collection's file name, say) as a relative
/// path that stays inside whatever directory it is joined to: components
/// separated by `/`, none empty, `.` or `..`, none with a backslash, NUL or
/// control character, each at most [`MAX_NAME_BYTES`], at most
/// [`MAX_NAME_DEPTH`] of them. `None` when the name is not safe.
///
/// This only checks the name: a symlink already inside the target
/// directory can still lead elsewhere, so writers must not follow them
/// (see `atoll blob get`).
pub fn safe_relative_path(name: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > MAX_NAME_DEPTH {
        return None;
    }
    let mut out = PathBuf::new();
    for part in parts {
        let bad = part.is_empty()
            || part == "."
            || part == ".."
            || part.len() > MAX_NAME_BYTES
            || part.chars().any(|c| c == '\\' || c.is_control());
        if bad {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_private_atomic(&path, b"one", false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = write_private_atomic(&path, b"two", false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_private_atomic(&path, b"three", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn quarantine_keeps_every_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, b"a").unwrap();
        let first = quarantine(&path).unwrap();
        fs::write(&path, b"b").unwrap();
        let second = quarantine(&path).unwrap();
        assert_ne!(first, second);
        assert!(!path.exists());
        assert_eq!(quarantined(&path).unwrap().len(), 2);
        assert_eq!(fs::read(second).unwrap(), b"b");
    }

    #[test]
    fn names_from_strangers_stay_inside() {
        for good in ["film.mp4", "dir/film.mp4", "a b/c-d_e.txt", "...", "..film"] {
            assert!(safe_relative_path(good).is_some(), "{good}");
        }
        let long = "x".repeat(256);
        let deep = vec!["d"; 17].join("/");
        for bad in [
            "",
            "/etc/passwd",
            "../up",
            "a/../../up",
            "a/./b",
            "a//b",
            "dir/",
            ".",
            "..",
            "a\\..\\b",
            "nul\0byte",
            "line\nbreak",
            long.as_str(),
            deep.as_str(),
        ] {
            assert!(safe_relative_path(bad).is_none(), "{bad:?}");
        }
    }
}
