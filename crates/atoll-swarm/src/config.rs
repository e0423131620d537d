//! `atoll-swarmd`'s configuration (TOML, `ATOLL_SWARMD_` overrides). Every
//! field's doc gives its default; unknown keys are errors.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use serde::Deserialize;

/// Environment override prefix of `atoll-swarmd`.
pub const ENV_PREFIX: &str = "ATOLL_SWARMD_";

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SwarmConfig {
    /// The iroh endpoint.
    #[serde(default)]
    pub node: NodeConfig,
    /// Seed adverts on Nostr.
    #[serde(default)]
    pub nostr: NostrConfig,
    /// Fetching.
    #[serde(default)]
    pub fetch: FetchConfig,
    /// The blob store.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The local control API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Paid bandwidth (selling and buying).
    #[serde(default)]
    pub payment: PaymentConfig,
    /// Files the node may read itself (`POST /blobs/import`).
    #[serde(default)]
    pub import: ImportConfig,
}

/// `POST /blobs/import` (`atoll blob add --import`): the node reads a file
/// itself instead of receiving it over the socket. Off unless directories
/// are named; the state and key directories are never read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// Absolute directories whose regular files may be imported (symlinks
    /// are resolved first, and must stay inside). Default: none, the route
    /// refuses.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Largest file imported, in bytes. Default 64 GiB.
    #[serde(default = "default_max_import_bytes")]
    pub max_bytes: u64,
}

fn default_max_import_bytes() -> u64 {
    64 << 30
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            max_bytes: default_max_import_bytes(),
        }
    }
}

/// Where the endpoint listens: one address (`"0.0.0.0:4919"`) or a list
/// of at most one IPv4 and one IPv6 address (`["0.0.0.0:4919",
/// "[::]:4919"]`). The endpoint opens exactly these sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddrs(Vec<SocketAddr>);

impl BindAddrs {
    /// The addresses (one or two, checked by [`SwarmConfig::validate`]).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.0
    }
}

impl From<SocketAddr> for BindAddrs {
    fn from(addr: SocketAddr) -> Self {
        Self(vec![addr])
    }
}

impl From<Vec<SocketAddr>> for BindAddrs {
    fn from(addrs: Vec<SocketAddr>) -> Self {
        Self(addrs)
    }
}

impl FromStr for BindAddrs {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<SocketAddr>().map(Self::from)
    }
}

impl fmt::Display for BindAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

impl<'de> Deserialize<'de> for BindAddrs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(SocketAddr),
            Many(Vec<SocketAddr>),
        }
        match OneOrMany::deserialize(d) {
            Ok(OneOrMany::One(a)) => Ok(Self(vec![a])),
            Ok(OneOrMany::Many(v)) => Ok(Self(v)),
            Err(_) => Err(serde::de::Error::custom(
                "expected a socket address (\"0.0.0.0:4919\") or a list of them \
                 (at most one IPv4 and one IPv6)",
            )),
        }
    }
}

/// Paid bandwidth: selling allotments of paid blobs, and paying peers
/// when fetching. Off by default.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    /// Charge untrusted peers for blobs marked paid. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Price per MB (1,000,000 bytes) served, in sat; an allotment is a
    /// blob's size rounded up to whole MB. At least 1 when enabled.
    #[serde(default)]
    pub price_sat_per_mb: u64,
    /// Mint URLs whose tokens are accepted. Required when enabled.
    #[serde(default)]
    pub accepted_mints: Vec<String>,
    /// Endpoint ids never charged. Default: none.
    #[serde(default)]
    pub trusted_peers: Vec<String>,
    /// atoll-walletd's socket: receives tokens when selling, pays when
    /// buying. Required when enabled or when `max_price_sat_per_mb` > 0.
    #[serde(default)]
    pub wallet_socket: Option<PathBuf>,
    /// The most paid per MB when fetching, in sat. Default 0: never pay
    /// (a paid blob then comes from another peer or the origin).
    #[serde(default)]
    pub max_price_sat_per_mb: u64,
    /// The most paid in fees per payment, in sat. Default 0.
    #[serde(default)]
    pub max_fee_sat: u64,
}

impl PaymentConfig {
    /// The trusted peers' endpoint ids.
    pub fn trusted(&self) -> Result<std::collections::HashSet<iroh::EndpointId>, InvalidConfig> {
        self.trusted_peers
            .iter()
            .map(|p| {
                p.parse::<iroh::EndpointId>()
                    .map_err(|e| InvalidConfig(format!("payment.trusted_peers: {p:?}: {e}")))
            })
            .collect()
    }
}

/// The iroh endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// UDP address(es) for QUIC: one address, or a list of at most one
    /// IPv4 and one IPv6 address. The node listens on exactly these.
    /// Default `0.0.0.0:4919` (IPv4 only; add `"[::]:4919"` for IPv6);
    /// port 0 picks one.
    #[serde(default = "default_bind")]
    pub bind: BindAddrs,
    /// iroh relay URLs (e.g. `https://relay.example.org`). Default: none,
    /// direct connections only. Public n0 relays are never used.
    #[serde(default)]
    pub relays: Vec<iroh::RelayUrl>,
    /// Key directory (`node.key`, `nostr.key`); created on first start.
    /// Default: `<state dir>/keys`.
    #[serde(default)]
    pub key_dir: Option<PathBuf>,
    /// Lifetime of the admission token (kind 27235, signed with the node's
    /// Nostr key) sent to each relay, in seconds. iroh sends one token per
    /// endpoint lifetime, so the daemon restarts itself (exit code 75;
    /// systemd restarts it) at 80% of this to renew it. Default 604800
    /// (7 days, the most a relay accepts); at least 3600.
    #[serde(default = "default_token_ttl")]
    pub relay_token_ttl_secs: u64,
}

fn default_bind() -> BindAddrs {
    SocketAddr::from(([0, 0, 0, 0], 4919)).into()
}

fn default_token_ttl() -> u64 {
    atoll_core::admission::MAX_TTL.as_secs()
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            relays: Vec::new(),
            key_dir: None,
            relay_token_ttl_secs: default_token_ttl(),
        }
    }
}

/// Seed adverts (kind 30081) on Nostr relays.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NostrConfig {
    /// Nostr relay URLs (`wss://…`). Default: none (no adverts, no lookup).
    #[serde(default)]
    pub relays: Vec<String>,
    /// Lifetime of an advert in seconds; it is republished at half of it.
    /// Default 3600; at least 60.
    #[serde(default = "default_advert_ttl")]
    pub advert_ttl_secs: u64,
    /// How long to wait for relays when looking up seeders, in seconds.
    /// Default 5.
    #[serde(default = "default_lookup_timeout")]
    pub lookup_timeout_secs: u64,
}

fn default_advert_ttl() -> u64 {
    3600
}
fn default_lookup_timeout() -> u64 {
    5
}

impl Default for NostrConfig {
    fn default() -> Self {
        Self {
            relays: Vec::new(),
            advert_ttl_secs: default_advert_ttl(),
            lookup_timeout_secs: default_lookup_timeout(),
        }
    }
}

/// Fetching from peers and origins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// HTTP origin base URLs: a blob is `<origin>/<hex>`. Default: none.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Give up on one peer after this many seconds without finishing.
    /// Default 60.
    #[serde(default = "default_peer_timeout")]
    pub peer_timeout_secs: u64,
    /// Give up on one origin after this many seconds. Default 600.
    #[serde(default = "default_origin_timeout")]
    pub origin_timeout_secs: u64,
    /// Largest blob accepted from an origin, in bytes. Default 64 GiB.
    #[serde(default = "default_max_origin_bytes")]
    pub max_origin_bytes: u64,
}

fn default_peer_timeout() -> u64 {
    60
}
fn default_origin_timeout() -> u64 {
    600
}
fn default_max_origin_bytes() -> u64 {
    64 << 30
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            peer_timeout_secs: default_peer_timeout(),
            origin_timeout_secs: default_origin_timeout(),
            max_origin_bytes: default_max_origin_bytes(),
        }
    }
}

/// The blob store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Most bytes of blobs to keep; over it, unpinned blobs are evicted,
    /// least recently used first. Default 0: no limit.
    #[serde(default)]
    pub quota_bytes: u64,
    /// Seconds between sweeps that delete the bytes of removed blobs.
    /// Default 60.
    #[serde(default = "default_gc")]
    pub gc_interval_secs: u64,
}

fn default_gc() -> u64 {
    60
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            quota_bytes: 0,
            gc_interval_secs: default_gc(),
        }
    }
}

pub use atoll_core::config::{ApiConfig, InvalidConfig};

impl SwarmConfig {
    /// Checks values serde cannot: ranges and URL shapes.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let max_ttl = atoll_core::admission::MAX_TTL.as_secs();
        if !(3600..=max_ttl).contains(&self.node.relay_token_ttl_secs) {
            return Err(InvalidConfig(format!(
                "node.relay_token_ttl_secs must be between 3600 and {max_ttl}"
            )));
        }
        if self.nostr.advert_ttl_secs < 60 {
            return Err(InvalidConfig(
                "nostr.advert_ttl_secs must be at least 60".into(),
            ));
        }
        for r in &self.nostr.relays {
            if !(r.starts_with("ws://") || r.starts_with("wss://")) {
                return Err(InvalidConfig(format!(
                    "nostr.relays: {r:?} is not a ws:// or wss:// URL"
                )));
            }
        }
        for o in &self.fetch.origins {
            let url = reqwest::Url::parse(o)
                .map_err(|e| InvalidConfig(format!("fetch.origins: {o:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(InvalidConfig(format!(
                    "fetch.origins: {o:?} is not http(s)"
                )));
            }
        }
        if self.fetch.peer_timeout_secs == 0 || self.fetch.origin_timeout_secs == 0 {
            return Err(InvalidConfig(
                "fetch timeouts must be at least 1 second".into(),
            ));
        }
        let bind = self.node.bind.addrs();
        if bind.is_empty()
            || bind.iter().filter(|a| a.is_ipv4()).count() > 1
            || bind.iter().filter(|a| a.is_ipv6()).count() > 1
        {
            return Err(InvalidConfig(
                "node.bind must be one address, or a list of at most one IPv4 and one IPv6 address"
                    .into(),
            ));
        }
        for (i, dir) in self.import.dirs.iter().enumerate() {
            if !dir.is_absolute() {
                return Err(InvalidConfig(format!(
                    "import.dirs[{i}] must be an absolute path"
                )));
            }
        }
        let pay = &self.payment;
        pay.trusted()?;
        for (i, mint) in pay.accepted_mints.iter().enumerate() {
            // Peers are told these: no file://, user info or junk. Plain
            // http is the buyer's wallet's call.
            atoll_core::mint_url::canonical_mint_url(mint, true)
                .map_err(|e| InvalidConfig(format!("payment.accepted_mints[{i}]: {e}")))?;
        }
        if pay.enabled {
            if pay.price_sat_per_mb == 0 {
                return Err(InvalidConfig(
                    "payment.price_sat_per_mb must be at least 1 when payment is enabled".into(),
                ));
            }
            if pay.accepted_mints.is_empty() {
                return Err(InvalidConfig(
                    "payment.accepted_mints must name a mint when payment is enabled".into(),
                ));
            }
        }
        if (pay.enabled || pay.max_price_sat_per_mb > 0) && pay.wallet_socket.is_none() {
            return Err(InvalidConfig(
                "payment.wallet_socket is required to sell or buy".into(),
            ));
        }
        if self.storage.gc_interval_secs == 0 {
            return Err(InvalidConfig(
                "storage.gc_interval_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Advert lifetime.
    pub fn advert_ttl(&self) -> Duration {
        Duration::from_secs(self.nostr.advert_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SwarmConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("swarmd.toml");
        std::fs::write(&p, text).unwrap();
        let c: SwarmConfig = atoll_core::config::load_from(Some(&p), ENV_PREFIX, Vec::new())
            .map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_and_full_file() {
        let c = parse("").unwrap();
        assert_eq!(c.node.bind.addrs(), ["0.0.0.0:4919".parse().unwrap()]);
        assert!(c.import.dirs.is_empty());
        let c = parse("[node]\nbind = [\"127.0.0.1:0\", \"[::1]:0\"]\n").unwrap();
        assert_eq!(c.node.bind.addrs().len(), 2);
        let c = parse("[import]\ndirs = [\"/srv/inbox\"]\nmax_bytes = 1000\n").unwrap();
        assert_eq!(c.import.max_bytes, 1000);
        assert_eq!(c.storage.quota_bytes, 0);
        let c = parse(
            r#"
[node]
bind = "127.0.0.1:0"
relays = ["http://127.0.0.1:3340"]
[nostr]
relays = ["ws://127.0.0.1:7777"]
advert_ttl_secs = 120
[fetch]
origins = ["http://127.0.0.1:8080/blobs"]
[storage]
quota_bytes = 1000000
"#,
        )
        .unwrap();
        assert_eq!(c.node.relays.len(), 1);
        assert_eq!(c.fetch.origins.len(), 1);
        assert!(!c.payment.enabled);
        let c = parse(
            "[payment]\nenabled = true\nprice_sat_per_mb = 2\naccepted_mints = [\"http://m\"]\n\
             wallet_socket = \"/run/atoll/walletd.sock\"\nmax_price_sat_per_mb = 3\nmax_fee_sat = 1\n",
        )
        .unwrap();
        assert_eq!(c.payment.price_sat_per_mb, 2);
        assert_eq!(c.payment.max_price_sat_per_mb, 3);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "[node]\nbind = \"nope\"\n",
            "[node]\nbind = []\n",
            "[node]\nbind = [\"127.0.0.1:0\", \"0.0.0.0:0\"]\n",
            "[node]\nbind = [\"[::1]:0\", \"[::]:0\"]\n",
            "[import]\ndirs = [\"relative/dir\"]\n",
            "[import]\ndir = [\"/srv\"]\n",
            "[payment]\naccepted_mints = [\"file:///etc/passwd\"]\n",
            "[payment]\naccepted_mints = [\"https://u:p@m.example\"]\n",
            "[node]\nrelays = [\"not a url\"]\n",
            "[nostr]\nrelays = [\"http://x\"]\n",
            "[nostr]\nadvert_ttl_secs = 5\n",
            "[node]\nrelay_token_ttl_secs = 60\n",
            "[node]\nrelay_token_ttl_secs = 99999999\n",
            "[fetch]\norigins = [\"ftp://x\"]\n",
            "[fetch]\npeer_timeout_secs = 0\n",
            "[storage]\nquota = 5\n",
            "[payment]\nenabled = true\nprice_sat_per_mb = 1\naccepted_mints = [\"http://m\"]\n",
            "[payment]\nenabled = true\nwallet_socket = \"/w\"\naccepted_mints = [\"http://m\"]\n",
            "[payment]\nenabled = true\nwallet_socket = \"/w\"\nprice_sat_per_mb = 1\n",
            "[payment]\nmax_price_sat_per_mb = 3\n",
            "[payment]\ntrusted_peers = [\"nope\"]\n",
            "unknown = 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
