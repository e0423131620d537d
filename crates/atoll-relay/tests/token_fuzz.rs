//! The token parser over thousands of mutated and random inputs, on stable
//! and deterministically (the cargo-fuzz target in `fuzz/` explores further
//! on nightly). Whatever comes in, `verify` must return without panicking,
//! must never admit anyone but the true signer for the true endpoint, and
//! its error text must never echo the input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atoll_core::admission::{self, AdmissionError, MAX_TOKEN_BYTES, Verifier};
use base64::Engine as _;
use iroh::SecretKey;
use nostr::Keys;

const URL: &str = "https://relay.example.org";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// xorshift64*: reproducible without a seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Interesting bytes for JSON and base64: structure, quotes, digits, the
/// base64 alphabet's edges, whitespace, non-ASCII.
const SPICE: &[u8] = b"{}[]\":,\\0123456789-+eE.AZaz+/= \t\n\x00\xff\xc3tfn";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let pos = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = pos.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(pos, SPICE[rng.below(SPICE.len())]),
            2 if pos < v.len() => {
                v.remove(pos);
            }
            3 => v.truncate(pos),
            4 if !v.is_empty() => {
                // Duplicate a slice (repeated tags, keys, digits).
                let a = rng.below(v.len());
                let b = (a + rng.below(64)).min(v.len());
                let chunk = v[a..b].to_vec();
                v.splice(pos..pos, chunk);
            }
            5 if !v.is_empty() => {
                let i = pos.min(v.len() - 1);
                v[i] = SPICE[rng.below(SPICE.len())];
            }
            _ => {}
        }
    }
    v
}

struct Case {
    verifier: Verifier,
    endpoint: SecretKey,
    signer: Keys,
    now: SystemTime,
    admitted: usize,
    refused: usize,
}

impl Case {
    fn check(&mut self, token: &str) {
        match self
            .verifier
            .verify(token, &self.endpoint.public(), self.now)
        {
            Ok(adm) => {
                // Only the real signer is ever admitted, whatever was changed.
                assert_eq!(
                    adm.pubkey,
                    self.signer.public_key(),
                    "admitted a forged signer"
                );
                assert_eq!(
                    adm.expires_at,
                    self.now + Duration::from_secs(3600),
                    "expiry changed"
                );
                self.admitted += 1;
            }
            Err(e) => {
                let text = e.to_string();
                // Never the token, nor a piece of it from the middle.
                let (a, b) = (token.len() / 2, token.len() / 2 + 12);
                if b <= token.len() && token.is_char_boundary(a) && token.is_char_boundary(b) {
                    assert!(!text.contains(&token[a..b]), "{e:?} echoes the input");
                }
                self.refused += 1;
            }
        }
    }
}

#[test]
fn thousands_of_mutated_tokens_never_panic_and_never_admit_a_forgery() {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let endpoint = SecretKey::from_bytes(&[3; 32]);
    let signer = Keys::generate();
    let token = admission::sign_at(
        &signer,
        URL,
        &endpoint.public(),
        now,
        Duration::from_secs(3600),
    )
    .unwrap();
    let json = B64.decode(&token).unwrap();
    let mut case = Case {
        verifier: Verifier::new(URL, Duration::from_secs(60)).unwrap(),
        endpoint,
        signer,
        now,
        admitted: 0,
        refused: 0,
    };
    case.check(&token);
    assert_eq!(case.admitted, 1, "the unmutated token must pass");

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Mutations of the base64 text: the decoder's side.
    for _ in 0..2000 {
        let m = mutate(&mut rng, token.as_bytes());
        if m != token.as_bytes() {
            case.check(&String::from_utf8_lossy(&m));
        }
    }
    // Mutations of the JSON, re-encoded: the event parser's and the
    // checks' side (every mutant decodes).
    for _ in 0..3000 {
        let m = mutate(&mut rng, &json);
        if m != json {
            case.check(&B64.encode(&m));
        }
    }
    // Random text and random bytes of random length.
    for _ in 0..1000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        case.check(&String::from_utf8_lossy(&bytes));
        case.check(&B64.encode(&bytes));
    }
    // Sizes around the cap.
    for len in [
        MAX_TOKEN_BYTES - 4,
        MAX_TOKEN_BYTES,
        MAX_TOKEN_BYTES + 1,
        4 * MAX_TOKEN_BYTES,
    ] {
        let t = "QUJD".repeat(len / 4);
        let r = case.verifier.verify(&t, &case.endpoint.public(), now);
        if t.len() > MAX_TOKEN_BYTES {
            assert!(matches!(r, Err(AdmissionError::TooLarge { .. })));
        } else {
            assert!(!matches!(r, Err(AdmissionError::TooLarge { .. }) | Ok(_)));
        }
    }
    // Almost everything must be refused; a few JSON mutations that only
    // touch insignificant whitespace may still verify, and that is fine.
    eprintln!("refused {}, admitted {}", case.refused, case.admitted);
    assert!(case.refused > 5000, "refused only {}", case.refused);
    assert!(case.admitted < 100, "admitted {}", case.admitted);
}
