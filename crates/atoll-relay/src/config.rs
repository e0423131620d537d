//! `atoll-relayd`'s configuration (TOML, `ATOLL_RELAYD_` environment
//! overrides, unknown keys are errors). Every field's doc gives its default.
//!
//! ```toml
//! [server]
//! bind = "0.0.0.0:443"
//! public_url = "https://relay.example.org"
//! [tls]
//! cert_file = "/var/lib/acme/relay.example.org/fullchain.pem"
//! key_file = "/var/lib/acme/relay.example.org/key.pem"
//! [quic]
//! address_discovery = true
//! [membership]
//! owner = "npub1…"
//! members_file = "/var/lib/atoll-relayd/members"
//! nostr_relays = ["wss://nostr.example.org"]
//! ```

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use atoll_core::admission::{self, MAX_TTL};
use nostr::PublicKey;
use serde::Deserialize;

use crate::{limit::Rate, members::parse_pubkey};

/// Environment override prefix of `atoll-relayd`.
pub const ENV_PREFIX: &str = "ATOLL_RELAYD_";

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RelaydConfig {
    /// The relay's HTTP(S) listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// TLS certificate; without it the relay speaks plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// QUIC address discovery.
    #[serde(default)]
    pub quic: QuicConfig,
    /// Who is admitted.
    #[serde(default)]
    pub membership: MembershipConfig,
    /// Token checks and rate limits.
    #[serde(default)]
    pub admission: AdmissionConfig,
}

/// The relay's HTTP(S) listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// TCP address to listen on: HTTPS when `[tls]` is set, plain HTTP
    /// otherwise. Default `127.0.0.1:3340`.
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// The URL nodes use for this relay (`https://relay.example.org`).
    /// Tokens must name it. Required.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Allow plain HTTP on a non-loopback address (behind a TLS-terminating
    /// proxy on another host, or in a lab). Default false: refused.
    #[serde(default)]
    pub insecure_http: bool,
    /// Seconds a client has to finish TLS and the relay upgrade. Default 15.
    #[serde(default = "default_establish_timeout")]
    pub establish_timeout_secs: u64,
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3340))
}
fn default_establish_timeout() -> u64 {
    15
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            public_url: None,
            insecure_http: false,
            establish_timeout_secs: default_establish_timeout(),
        }
    }
}

/// A TLS certificate from PEM files (re-read periodically, so renewals
/// need no restart).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Required in `[tls]`.
    pub cert_file: PathBuf,
    /// PEM private key. Required in `[tls]`.
    pub key_file: PathBuf,
    /// Seconds between re-reads of the files. Default 3600.
    #[serde(default = "default_tls_reload")]
    pub reload_interval_secs: u64,
}

fn default_tls_reload() -> u64 {
    3600
}

/// QUIC address discovery (QAD): tells clients their public address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuicConfig {
    /// Serve QAD. Needs `[tls]`. Default false.
    #[serde(default)]
    pub address_discovery: bool,
    /// UDP address for QAD. Default `0.0.0.0:7842` (iroh's default port).
    #[serde(default = "default_quic_bind")]
    pub bind: SocketAddr,
}

fn default_quic_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7842))
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            address_discovery: false,
            bind: default_quic_bind(),
        }
    }
}

/// Who is admitted: the owner, the members file and the signed list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipConfig {
    /// The relay owner's Nostr key (`npub1…` or hex); always a member, and
    /// the signer of the membership list. Required.
    #[serde(default)]
    pub owner: Option<String>,
    /// Members file: one key per line, `#` comments; re-read when it
    /// changes. Use an absolute path. Default: none.
    #[serde(default)]
    pub members_file: Option<PathBuf>,
    /// Milliseconds between checks of the members file. Default 1000;
    /// 100 to 4000 (a revocation takes effect within this plus ~1 s).
    #[serde(default = "default_reload_ms")]
    pub reload_interval_ms: u64,
    /// Nostr relays (`wss://…`) to follow the owner's membership list
    /// (kind 13534) on. Default: none.
    #[serde(default)]
    pub nostr_relays: Vec<String>,
}

fn default_reload_ms() -> u64 {
    1000
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            owner: None,
            members_file: None,
            reload_interval_ms: default_reload_ms(),
            nostr_relays: Vec::new(),
        }
    }
}

/// Token checks and rate limits on admission attempts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Longest token lifetime accepted, in seconds. Default and maximum
    /// 604800 (7 days).
    #[serde(default = "default_max_ttl")]
    pub max_ttl_secs: u64,
    /// Clock difference tolerated, in seconds. Default 60; at most 600.
    #[serde(default = "default_skew")]
    pub max_skew_secs: u64,
    /// Admission attempts one endpoint may make back to back. Default 10.
    #[serde(default = "default_endpoint_burst")]
    pub per_endpoint_burst: u32,
    /// Attempts an endpoint regains per minute. Default 30.
    #[serde(default = "default_endpoint_per_min")]
    pub per_endpoint_per_minute: u32,
    /// TCP connections one IP address may open back to back (checked
    /// before TLS). Default 60.
    #[serde(default = "default_ip_burst")]
    pub per_ip_burst: u32,
    /// Connections an IP address regains per second. Default 10.
    #[serde(default = "default_ip_per_sec")]
    pub per_ip_per_second: u32,
}

fn default_max_ttl() -> u64 {
    MAX_TTL.as_secs()
}
fn default_skew() -> u64 {
    admission::DEFAULT_MAX_SKEW.as_secs()
}
fn default_endpoint_burst() -> u32 {
    10
}
fn default_endpoint_per_min() -> u32 {
    30
}
fn default_ip_burst() -> u32 {
    60
}
fn default_ip_per_sec() -> u32 {
    10
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_ttl_secs: default_max_ttl(),
            max_skew_secs: default_skew(),
            per_endpoint_burst: default_endpoint_burst(),
            per_endpoint_per_minute: default_endpoint_per_min(),
            per_ip_burst: default_ip_burst(),
            per_ip_per_second: default_ip_per_sec(),
        }
    }
}

impl AdmissionConfig {
    /// The per-endpoint rate.
    pub fn endpoint_rate(&self) -> Rate {
        Rate {
            burst: self.per_endpoint_burst,
            per_sec: f64::from(self.per_endpoint_per_minute) / 60.0,
        }
    }

    /// The per-IP rate.
    pub fn ip_rate(&self) -> Rate {
        Rate {
            burst: self.per_ip_burst,
            per_sec: f64::from(self.per_ip_per_second),
        }
    }
}

pub use atoll_core::config::InvalidConfig;

/// The checked essentials of a config.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The canonical public URL.
    pub public_url: String,
    /// The owner's key.
    pub owner: PublicKey,
}

impl RelaydConfig {
    /// Checks what serde cannot; returns the parsed owner and URL.
    pub fn validate(&self) -> Result<Checked, InvalidConfig> {
        let bad = |m: String| Err(InvalidConfig(m));
        let Some(url) = &self.server.public_url else {
            return bad("server.public_url is required (the URL nodes use for this relay)".into());
        };
        let public_url = admission::canonical_relay_url(url)
            .map_err(|e| InvalidConfig(format!("server.public_url {url:?}: {e}")))?;
        let Some(owner) = &self.membership.owner else {
            return bad("membership.owner is required (the relay owner's npub)".into());
        };
        let owner =
            parse_pubkey(owner).map_err(|e| InvalidConfig(format!("membership.owner: {e}")))?;
        if self.tls.is_none() && !self.server.bind.ip().is_loopback() && !self.server.insecure_http
        {
            return bad(format!(
                "server.bind {} is not a loopback address and [tls] is not set: refusing plain HTTP \
                 (set [tls] cert_file and key_file, or server.insecure_http = true behind a TLS proxy)",
                self.server.bind
            ));
        }
        if self.quic.address_discovery && self.tls.is_none() {
            return bad("quic.address_discovery needs [tls]".into());
        }
        if let Some(tls) = &self.tls
            && tls.reload_interval_secs == 0
        {
            return bad("tls.reload_interval_secs must be at least 1".into());
        }
        if !(100..=4000).contains(&self.membership.reload_interval_ms) {
            return bad("membership.reload_interval_ms must be between 100 and 4000".into());
        }
        for r in &self.membership.nostr_relays {
            if !(r.starts_with("ws://") || r.starts_with("wss://")) {
                return bad(format!(
                    "membership.nostr_relays: {r:?} is not a ws:// or wss:// URL"
                ));
            }
        }
        let a = &self.admission;
        if a.max_ttl_secs == 0 || a.max_ttl_secs > MAX_TTL.as_secs() {
            return bad(format!(
                "admission.max_ttl_secs must be between 1 and {}",
                MAX_TTL.as_secs()
            ));
        }
        if a.max_skew_secs > 600 {
            return bad("admission.max_skew_secs must be at most 600".into());
        }
        if a.per_endpoint_burst == 0
            || a.per_endpoint_per_minute == 0
            || a.per_ip_burst == 0
            || a.per_ip_per_second == 0
        {
            return bad("admission rate limits must be at least 1".into());
        }
        if self.server.establish_timeout_secs == 0 {
            return bad("server.establish_timeout_secs must be at least 1".into());
        }
        Ok(Checked { public_url, owner })
    }

    /// Members file re-check interval.
    pub fn reload_interval(&self) -> Duration {
        Duration::from_millis(self.membership.reload_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d";

    fn parse(text: &str) -> Result<RelaydConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("relayd.toml");
        std::fs::write(&p, text).unwrap();
        let c: RelaydConfig = atoll_core::config::load_from(Some(&p), ENV_PREFIX, Vec::new())
            .map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    fn minimal(extra: &str) -> String {
        format!(
            "[server]\npublic_url = \"http://127.0.0.1:3340\"\n[membership]\nowner = \"{OWNER}\"\n{extra}"
        )
    }

    #[test]
    fn minimal_and_full_files() {
        let c = parse(&minimal("")).unwrap();
        assert_eq!(c.server.bind, default_bind());
        assert!(c.tls.is_none() && !c.quic.address_discovery);
        assert_eq!(c.validate().unwrap().public_url, "http://127.0.0.1:3340");
        let c = parse(&format!(
            r#"
[server]
bind = "0.0.0.0:443"
public_url = "https://RELAY.example.org:443/"
[tls]
cert_file = "/etc/cert.pem"
key_file = "/etc/key.pem"
[quic]
address_discovery = true
[membership]
owner = "{OWNER}"
members_file = "/var/lib/atoll-relayd/members"
nostr_relays = ["wss://nostr.example.org"]
[admission]
max_ttl_secs = 86400
per_ip_burst = 5
"#
        ))
        .unwrap();
        assert_eq!(
            c.validate().unwrap().public_url,
            "https://relay.example.org"
        );
        assert_eq!(
            c.admission.ip_rate(),
            Rate {
                burst: 5,
                per_sec: 10.0
            }
        );
    }

    #[test]
    fn plain_http_off_loopback_needs_an_explicit_opt_in() {
        let text = |extra: &str| {
            format!(
                "[server]\nbind = \"0.0.0.0:3340\"\npublic_url = \"http://x\"\n{extra}\n[membership]\nowner = \"{OWNER}\"\n"
            )
        };
        let err = parse(&text("")).unwrap_err();
        assert!(err.contains("refusing plain HTTP"), "{err}");
        assert!(parse(&text("insecure_http = true")).is_ok());
        // IPv6 loopback is loopback.
        assert!(
            parse(&minimal("").replace("[server]\n", "[server]\nbind = \"[::1]:3340\"\n")).is_ok()
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "[server]\npublic_url = \"http://x\"\n".to_owned(), // no owner
            format!("[membership]\nowner = \"{OWNER}\"\n"),     // no URL
            minimal("").replace(OWNER, "npub1nope"),
            minimal("").replace("http://127.0.0.1:3340", "ftp://x"),
            minimal("[quic]\naddress_discovery = true\n"),
            minimal("[admission]\nmax_ttl_secs = 604801\n"),
            minimal("[admission]\nmax_ttl_secs = 0\n"),
            minimal("[admission]\nper_ip_burst = 0\n"),
            minimal("[admission]\nmax_skew_secs = 3600\n"),
            minimal("").replace(
                "[membership]\n",
                "[membership]\nreload_interval_ms = 10000\n",
            ),
            minimal("").replace(
                "[membership]\n",
                "[membership]\nnostr_relays = [\"http://x\"]\n",
            ),
            minimal("[tls]\ncert_file = \"/c\"\n"),
            minimal("[admission]\ntypo = 1\n"),
            minimal("unknown = 1\n"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_overrides_apply() {
        let c: RelaydConfig = atoll_core::config::load_from(
            None,
            ENV_PREFIX,
            vec![
                (
                    "ATOLL_RELAYD_SERVER__PUBLIC_URL".into(),
                    "http://127.0.0.1:9".into(),
                ),
                ("ATOLL_RELAYD_MEMBERSHIP__OWNER".into(), OWNER.into()),
            ],
        )
        .unwrap();
        assert_eq!(c.validate().unwrap().public_url, "http://127.0.0.1:9");
    }
}
