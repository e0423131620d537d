//! `atoll-walletd`'s configuration (TOML, `ATOLL_WALLETD_` overrides). Every
//! field's doc gives its default; unknown keys are errors.

use std::path::PathBuf;

use serde::Deserialize;

use atoll_core::mint_url::canonical_mint_url;

use crate::wallet::{Budget, MintPacing};

/// Environment override prefix of `atoll-walletd`.
pub const ENV_PREFIX: &str = "ATOLL_WALLETD_";

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletConfig {
    /// The seed and the mints.
    #[serde(default)]
    pub wallet: WalletSection,
    /// Spending limits.
    #[serde(default)]
    pub budget: Budget,
    /// The local API.
    #[serde(default)]
    pub api: ApiConfig,
}

/// The seed and the mints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletSection {
    /// File holding the BIP-39 mnemonic (created on first start, mode
    /// 0600). Default: `<state dir>/keys/wallet.seed`.
    #[serde(default)]
    pub seed_file: Option<PathBuf>,
    /// Mints added to the trust list at start (the list itself is kept in
    /// the state directory and edited through the API). Default: none.
    #[serde(default)]
    pub trusted_mints: Vec<String>,
    /// Allow trusting mints over plain `http://` on hosts other than this
    /// machine (a mint on the LAN without TLS). Default false: `https://`,
    /// or `http://` on 127.0.0.1, ::1 or localhost only.
    #[serde(default)]
    pub allow_insecure_mints: bool,
    /// How fast each mint may be called (`[wallet.mint_pacing]`).
    #[serde(default)]
    pub mint_pacing: MintPacing,
}

pub use atoll_core::config::{ApiConfig, InvalidConfig};

impl WalletConfig {
    /// Checks values serde cannot: mint URLs (see
    /// [`atoll_core::mint_url::canonical_mint_url`]) and budget order.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        for (i, mint) in self.wallet.trusted_mints.iter().enumerate() {
            canonical_mint_url(mint, self.wallet.allow_insecure_mints)
                .map_err(|e| InvalidConfig(format!("wallet.trusted_mints[{i}]: {e}")))?;
        }
        if self.budget.per_payment_sat > self.budget.per_day_sat {
            return Err(InvalidConfig(
                "budget.per_payment_sat is above budget.per_day_sat".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        toml: &str,
        env: &[(&str, &str)],
    ) -> Result<WalletConfig, atoll_core::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walletd.toml");
        std::fs::write(&path, toml).unwrap();
        atoll_core::config::load_from(
            Some(&path),
            ENV_PREFIX,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn defaults_and_overrides() {
        let config = load(
            "[wallet]\ntrusted_mints = [\"http://127.0.0.1:3338\"]\n",
            &[("ATOLL_WALLETD_BUDGET__PER_DAY_SAT", "500")],
        )
        .unwrap();
        assert_eq!(config.budget.per_day_sat, 500);
        assert_eq!(config.budget.per_payment_sat, 1_000);
        assert_eq!(config.wallet.trusted_mints.len(), 1);
        assert_eq!(config.wallet.mint_pacing, MintPacing::default());
        assert!(config.validate().is_err(), "per payment above per day");
    }

    #[test]
    fn mint_pacing_from_the_file_and_the_environment() {
        let config = load(
            "[wallet.mint_pacing]\nburst = 100\n",
            &[("ATOLL_WALLETD_WALLET__MINT_PACING__PER_MINUTE", "0")],
        )
        .unwrap();
        assert_eq!(
            config.wallet.mint_pacing,
            MintPacing {
                burst: 100,
                per_minute: 0
            }
        );
        assert!(load("[wallet.mint_pacing]\nrate = 1\n", &[]).is_err());
    }

    #[test]
    fn hostile_mint_urls_are_refused_in_the_config() {
        let long_host = format!("https://{}.example", "a".repeat(5000));
        for bad in [
            "file:///etc/passwd",
            "https://u:p@m.example",
            "https://user@m.example",
            long_host.as_str(),
            "http://mint.example.org",
            "javascript:alert(1)",
            "https://m.example/?q=1",
            "https://m.example/#frag",
            "https://m\u{0435}.example",
            "https://m.example\u{202e}gpj",
            "https://m.example\u{200b}",
            "ftp://m.example",
            "https:///nohost",
            "",
        ] {
            let config = load(
                &format!(
                    "[wallet]\ntrusted_mints = [{}]\n",
                    serde_json::to_string(bad).unwrap()
                ),
                &[],
            )
            .unwrap();
            assert!(config.validate().is_err(), "{bad:?} was accepted");
        }
        for good in [
            "https://mint.example.org",
            "https://mint.example.org:3338/cashu/",
            "http://127.0.0.1:3338",
            "http://[::1]:3338",
            "http://localhost:3338",
        ] {
            let config = load(&format!("[wallet]\ntrusted_mints = [\"{good}\"]\n"), &[]).unwrap();
            assert!(config.validate().is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_errors() {
        assert!(load("[wallet]\ntrusted_mint = []\n", &[]).is_err());
        let config = load("[wallet]\ntrusted_mints = [\"not a url\"]\n", &[]).unwrap();
        assert!(config.validate().is_err());
    }
}
