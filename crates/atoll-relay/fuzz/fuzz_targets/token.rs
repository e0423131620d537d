//! Fuzzes the relay admission token parser: `cargo +nightly fuzz run token`
//! from `crates/atoll-relay`. Any input must be refused or verified without
//! a panic, and nothing but the one signer's token may ever be admitted.
#![no_main]

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use atoll_core::admission::Verifier;
use libfuzzer_sys::fuzz_target;

const URL: &str = "https://relay.example.org";

struct Fixture {
    verifier: Verifier,
    endpoint: iroh::EndpointId,
    signer: nostr::PublicKey,
    now: SystemTime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let keys =
            nostr::Keys::parse("0000000000000000000000000000000000000000000000000000000000000001")
                .expect("fixed test key");
        Fixture {
            verifier: Verifier::new(URL, Duration::from_secs(60)).expect("valid URL"),
            endpoint: iroh::SecretKey::from_bytes(&[3; 32]).public(),
            signer: keys.public_key(),
            now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // As text (what arrives in the header)...
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(adm) = f.verifier.verify(text, &f.endpoint, f.now) {
            assert_eq!(adm.pubkey, f.signer);
        }
    }
    // ...and as the JSON inside a well-encoded token, to get past base64.
    let token = admission_token_of(data);
    if let Ok(adm) = f.verifier.verify(&token, &f.endpoint, f.now) {
        assert_eq!(adm.pubkey, f.signer);
    }
});

fn admission_token_of(json: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(json)
}
