//! Strict configuration: a TOML file, then environment overrides, then
//! `serde` with `deny_unknown_fields` on the service's config type, so a
//! typo is an error and never a silent default.
//!
//! Overrides are variables named `<PREFIX><SECTION>__<KEY>` (one prefix per
//! binary, e.g. `ATOLL_SWARMD_`), with `__` between nested keys:
//! `ATOLL_SWARMD_NOSTR__RELAYS='["ws://127.0.0.1:7777"]'`. A value is read
//! as a TOML value when it parses as one, otherwise as a string.
//!
//! Secrets never sit in the config itself: the config names a file (or a
//! systemd credential) and [`Secret`] reads it; `Debug` shows `<redacted>`.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};

use serde::de::DeserializeOwned;

/// Errors loading configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file named on the command line does not exist or cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An environment override names no valid key.
    #[error("environment variable {var}: {reason}")]
    BadOverride {
        /// The variable.
        var: String,
        /// Why it was refused.
        reason: String,
    },
    /// The merged config does not fit the service's config type.
    #[error("invalid configuration ({origin}): {message}")]
    Invalid {
        /// Where the values came from.
        origin: String,
        /// What is wrong (unknown key, wrong type, bad value).
        message: String,
    },
}

/// A config value that parses but makes no sense (a range, an order, a
/// URL shape); what each service's `validate` returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {0}")]
pub struct InvalidConfig(pub String);

/// The `[api]` section every service has: where its local API listens.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Unix socket path (mode 0660). Default: `<runtime dir>/<service>.sock`
    /// (`swarmd.sock`, `walletd.sock`).
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

/// Loads a config of type `T` from an optional TOML file and the process
/// environment (variables starting with `env_prefix`).
///
/// With no file, only the defaults of `T` and the overrides apply. A file
/// that was named but is missing is an error.
pub fn load<T: DeserializeOwned>(path: Option<&Path>, env_prefix: &str) -> Result<T, ConfigError> {
    load_from(path, env_prefix, std::env::vars())
}

/// Like [`load`], with the environment given explicitly (for tests).
pub fn load_from<T: DeserializeOwned>(
    path: Option<&Path>,
    env_prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut table = match path {
        Some(path) => {
            let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
        }
        None => toml::Table::new(),
    };
    let mut overridden = Vec::new();
    let mut env: Vec<_> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(env_prefix) && k.len() > env_prefix.len())
        .collect();
    env.sort();
    for (var, value) in env {
        apply_override(&mut table, &var[env_prefix.len()..], &value).map_err(|reason| {
            ConfigError::BadOverride {
                var: var.clone(),
                reason,
            }
        })?;
        overridden.push(var);
    }
    let origin = match (path, overridden.is_empty()) {
        (Some(p), true) => p.display().to_string(),
        (Some(p), false) => format!("{} with overrides {}", p.display(), overridden.join(", ")),
        (None, true) => "built-in defaults".to_owned(),
        (None, false) => format!("defaults with overrides {}", overridden.join(", ")),
    };
    T::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
        origin,
        message: e.to_string().trim_end().to_owned(),
    })
}

fn apply_override(table: &mut toml::Table, name: &str, value: &str) -> Result<(), String> {
    let path: Vec<String> = name.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err("empty key segment (use one `__` between nested keys)".into());
    }
    let value = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = path.split_last().ok_or("empty name")?;
    let mut cur = table;
    for key in parents {
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a table in the config"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// A secret string: read from a file, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Errors reading a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file cannot be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is empty.
    #[error("secret file {} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A systemd credential was asked for outside systemd.
    #[error("credential {name:?} requested but $CREDENTIALS_DIRECTORY is not set")]
    NoCredentials {
        /// The credential's name.
        name: String,
    },
}

impl Secret {
    /// Wraps a secret held in memory.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret from a file; one trailing newline is dropped.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Err(SecretError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// Reads a systemd credential (`LoadCredential=name:…`).
    pub fn from_credential(name: &str) -> Result<Self, SecretError> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
            SecretError::NoCredentials {
                name: name.to_owned(),
            }
        })?;
        Self::from_file(&Path::new(&dir).join(name))
    }

    /// The secret itself. Call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        /// Default: 7.
        #[serde(default = "seven")]
        port: u16,
        #[serde(default)]
        nostr: Nostr,
        #[serde(default)]
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Nostr {
        #[serde(default)]
        relays: Vec<String>,
    }

    fn seven() -> u16 {
        7
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_file_and_overrides() {
        let c: Cfg = load_from(None, "T_", env(&[])).unwrap();
        assert_eq!(c.port, 7);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        fs::write(&p, "port = 9\n[nostr]\nrelays = [\"ws://a\"]\n").unwrap();
        let c: Cfg = load_from(Some(&p), "T_", env(&[("OTHER", "1")])).unwrap();
        assert_eq!((c.port, c.nostr.relays.len()), (9, 1));
        let c: Cfg = load_from(
            Some(&p),
            "T_",
            env(&[
                ("T_PORT", "10"),
                ("T_NOSTR__RELAYS", "[\"ws://b\", \"ws://c\"]"),
                ("T_NAME", "my node"),
            ]),
        )
        .unwrap();
        assert_eq!(c.port, 10);
        assert_eq!(c.nostr.relays, vec!["ws://b", "ws://c"]);
        assert_eq!(c.name.as_deref(), Some("my node"));
    }

    #[test]
    fn strictness() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        // Missing file named on the command line.
        let err = load_from::<Cfg>(Some(&p), "T_", env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        // Unknown key, with the file named in the message.
        fs::write(&p, "prot = 9\n").unwrap();
        let err = load_from::<Cfg>(Some(&p), "T_", env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot") && err.contains("c.toml"), "{err}");
        // Bad type.
        fs::write(&p, "port = \"nine\"\n").unwrap();
        assert!(matches!(
            load_from::<Cfg>(Some(&p), "T_", env(&[])),
            Err(ConfigError::Invalid { .. })
        ));
        // Out of range.
        fs::write(&p, "port = 70000\n").unwrap();
        assert!(load_from::<Cfg>(Some(&p), "T_", env(&[])).is_err());
        // Syntax.
        fs::write(&p, "port = \n").unwrap();
        assert!(matches!(
            load_from::<Cfg>(Some(&p), "T_", env(&[])),
            Err(ConfigError::Syntax { .. })
        ));
        // Unknown override key and a bad override value name the variable.
        let err = load_from::<Cfg>(None, "T_", env(&[("T_PROT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("T_PROT"), "{err}");
        let err = load_from::<Cfg>(None, "T_", env(&[("T_PORT", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("T_PORT"), "{err}");
        assert!(matches!(
            load_from::<Cfg>(None, "T_", env(&[("T_NOSTR____X", "1")])),
            Err(ConfigError::BadOverride { .. })
        ));
        // `port` is a number, not a table: the merged config is refused,
        // naming the variable that did it.
        let err = load_from::<Cfg>(None, "T_", env(&[("T_PORT__X", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("T_PORT__X"), "{err}");
        fs::write(&p, "port = 9\n").unwrap();
        assert!(matches!(
            load_from::<Cfg>(Some(&p), "T_", env(&[("T_PORT__X", "1")])),
            Err(ConfigError::BadOverride { .. })
        ));
    }

    #[test]
    fn secrets_are_redacted_and_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        fs::write(&p, "hunter2\n").unwrap();
        let s = Secret::from_file(&p).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        fs::write(&p, "\n").unwrap();
        assert!(matches!(
            Secret::from_file(&p),
            Err(SecretError::Empty { .. })
        ));
        assert!(Secret::from_file(&dir.path().join("none")).is_err());
    }
}
