//! Keeping ecash spendable: proofs on a keyset the mint retired (inactive)
//! or that expires soon are swapped to the mint's active keyset ahead of
//! time, while the mint still honours them. The swap's input fee is in the
//! history (`rotate`).

use std::time::{SystemTime, UNIX_EPOCH};

use cdk::amount::SplitTarget;
use cdk::nuts::{Id, KeySet};
use cdk::wallet::types::KeysetLoadPolicy;
use serde::{Deserialize, Serialize};

use crate::wallet::{MintError, Wallet, WalletError, call};

/// Proofs on a keyset that expires within this many seconds are moved.
pub const EXPIRY_MARGIN_SECS: u64 = 7 * 24 * 3600;

/// What one mint's rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotated {
    /// The mint.
    pub mint: String,
    /// Sat moved off retired or expiring keysets (before fees).
    pub moved_sat: u64,
    /// Input fee of the swap, in sat.
    pub fee_sat: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether proofs of `keyset` should be moved at `now` (unix seconds).
fn is_stale(keyset: &KeySet, now: u64) -> bool {
    keyset.active == Some(false)
        || keyset
            .final_expiry
            .is_some_and(|at| at <= now.saturating_add(EXPIRY_MARGIN_SECS))
}

/// The keyset to move to: active, not expiring soon, lowest fee.
fn target(keysets: &[KeySet], now: u64) -> Option<Id> {
    keysets
        .iter()
        .filter(|k| k.active == Some(true) && !is_stale(k, now))
        .min_by_key(|k| k.input_fee_ppk)
        .map(|k| k.id)
}

impl Wallet {
    /// Moves the ecash of every mint that holds some off retired or
    /// expiring keysets (asking each mint for its keysets). A mint that is
    /// down is skipped and tried at the next rotation.
    pub async fn rotate_keysets(&self) -> Result<Vec<Rotated>, WalletError> {
        let _guard = self.inner.pay_lock.lock().await;
        let mut done = Vec::new();
        for (mint, sat) in self.balance().await?.mints {
            if sat == 0 {
                continue;
            }
            match self.rotate_mint(&mint).await {
                Ok(Some(r)) => done.push(r),
                Ok(None) => {}
                Err(e) => tracing::warn!(%mint, "keyset rotation left for later: {e}"),
            }
        }
        Ok(done)
    }

    async fn rotate_mint(&self, mint: &str) -> Result<Option<Rotated>, WalletError> {
        let wallet = self.cdk(mint)?;
        let keysets = call(mint, "keysets", wallet.keysets(KeysetLoadPolicy::Refresh)).await?;
        let now = now();
        let stale: Vec<Id> = keysets
            .iter()
            .filter(|k| is_stale(k, now))
            .map(|k| k.id)
            .collect();
        if stale.is_empty() {
            return Ok(None);
        }
        let Some(to) = target(&keysets, now) else {
            tracing::warn!(%mint, "no active keyset that does not expire soon; ecash left where it is");
            return Ok(None);
        };
        let proofs: cdk::nuts::Proofs = wallet
            .get_unspent_proofs()
            .await
            .map_err(|e| MintError::from_cdk(mint, e))?
            .into_iter()
            .filter(|p| stale.contains(&p.keyset_id) && p.keyset_id != to)
            .collect();
        let moved: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
        if moved == 0 {
            return Ok(None);
        }
        // Under the lock nothing else moves this mint's ecash: the fee is
        // what the balance lost.
        let before = self.mint_balance(mint).await?;
        call(
            mint,
            "swap",
            wallet.swap(None, SplitTarget::default(), proofs, None, false, false),
        )
        .await?;
        let fee_sat = before.saturating_sub(self.mint_balance(mint).await?);
        self.inner.store.add_history(
            "rotate",
            mint,
            moved,
            fee_sat,
            "moved off a retired or expiring keyset",
        )?;
        tracing::info!(%mint, moved, fee_sat, %to, "ecash moved to the active keyset");
        Ok(Some(Rotated {
            mint: mint.to_owned(),
            moved_sat: moved,
            fee_sat,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyset(id: u8, active: bool, expiry: Option<u64>, ppk: u64) -> KeySet {
        let mut bytes = [0u8; 8];
        bytes[7] = id;
        KeySet {
            id: Id::from_bytes(&bytes).unwrap_or_else(|_| panic!("id")),
            unit: cdk::nuts::CurrencyUnit::Sat,
            active: Some(active),
            keys: cdk::nuts::Keys::new(Default::default()),
            input_fee_ppk: ppk,
            final_expiry: expiry,
        }
    }

    #[test]
    fn retired_and_expiring_keysets_are_stale_and_never_the_target() {
        let now = 1_000_000;
        let retired = keyset(1, false, None, 0);
        let expiring = keyset(2, true, Some(now + 3600), 0);
        let later = keyset(3, true, Some(now + 2 * EXPIRY_MARGIN_SECS), 100);
        let forever = keyset(4, true, None, 200);
        assert!(is_stale(&retired, now));
        assert!(is_stale(&expiring, now));
        assert!(!is_stale(&later, now));
        assert!(!is_stale(&forever, now));
        // Lowest fee among the good ones.
        let all = [retired.clone(), expiring.clone(), later.clone(), forever];
        assert_eq!(target(&all, now), Some(later.id));
        // Nothing good: nowhere to go.
        assert_eq!(target(&[retired, expiring], now), None);
    }
}
