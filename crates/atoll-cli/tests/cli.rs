//! The `atoll` binary as a person uses it: exit codes and messages.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::{atoll, fails, ok, s};

#[test]
fn keys_init_show_and_refuse_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("keys");
    let init = ok(&["keys", "init", "--dir", s(&d)]);
    let show = ok(&["keys", "show", "--dir", s(&d)]);
    assert!(
        show.contains("node id:") && show.contains("npub1"),
        "{show}"
    );
    // init printed the same identity that show reads back
    assert!(
        init.contains(show.lines().next().unwrap()),
        "{init}\n{show}"
    );
    let err = fails(&["keys", "init", "--dir", s(&d)]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(ok(&["keys", "show", "--dir", s(&d)]), show);
    let err = fails(&["keys", "show", "--dir", s(&dir.path().join("none"))]);
    assert!(err.contains("atoll keys init"), "{err}");
}

#[test]
fn hash_prints_content_ids() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty");
    std::fs::write(&f, b"").unwrap();
    let out = ok(&["hash", s(&f)]);
    assert!(
        out.starts_with(
            "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262  "
        ),
        "{out}"
    );
    let err = fails(&["hash", s(&dir.path().join("missing"))]);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn doc_sign_verify_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let k1 = ok(&["doc", "keygen", s(&p("k1"))]).trim().to_owned();
    let k2 = ok(&["doc", "keygen", s(&p("k2"))]).trim().to_owned();
    let k3 = ok(&["doc", "keygen", s(&p("k3"))]).trim().to_owned();
    assert!(k1.starts_with("ed25519:"));
    assert_eq!(ok(&["doc", "key-id", s(&p("k1"))]).trim(), k1);
    fails(&["doc", "keygen", s(&p("k1"))]);
    let doc = p("manifest.json");
    std::fs::write(&doc, br#"{"version": 2, "system": "blake3:00"}"#).unwrap();
    let ctx = ["--context", "atoll/release"];
    ok(&[&["doc", "sign", "--key", s(&p("k1"))][..], &ctx, &[s(&doc)]].concat());
    let verify = |extra: &[&str]| {
        let mut a = vec!["doc", "verify", s(&doc), "--context", "atoll/release"];
        a.extend_from_slice(extra);
        atoll(&a)
    };
    let out = verify(&["--trust", &k1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&k1));

    // Too few signatures for the threshold.
    let out = verify(&["--trust", &k1, "--trust", &k2, "--threshold", "2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("1 valid signature(s) from trusted keys, 2 required")
    );
    // A second signer meets it.
    ok(&[&["doc", "sign", "--key", s(&p("k2"))][..], &ctx, &[s(&doc)]].concat());
    assert!(
        verify(&["--trust", &k1, "--trust", &k2, "--threshold", "2"])
            .status
            .success()
    );
    // Unknown key only.
    let out = verify(&["--trust", &k3]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key"));
    // Wrong context.
    let out = atoll(&["doc", "verify", s(&doc), "--trust", &k1]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("atoll/release"));
    // Trust file.
    std::fs::write(
        p("trust.toml"),
        format!("threshold = 2\nkeys = [\"{k1}\", \"{k2}\", \"{k3}\"]\n"),
    )
    .unwrap();
    assert!(
        verify(&["--trust-file", s(&p("trust.toml"))])
            .status
            .success()
    );

    // One flipped byte in the document.
    let original = std::fs::read(&doc).unwrap();
    let mut bad = original.clone();
    let i = bad.iter().position(|&b| b == b'2').unwrap();
    bad[i] = b'3';
    std::fs::write(&doc, &bad).unwrap();
    let out = verify(&["--trust", &k1]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NOT verified") && err.contains("does not match"),
        "{err}"
    );
    std::fs::write(&doc, &original).unwrap();

    // One flipped byte in the signature.
    let sig = p("manifest.json.sig");
    let sigs = std::fs::read_to_string(&sig).unwrap();
    let at = sigs.find("\"sig\": \"").unwrap() + 8;
    let mut bytes = sigs.into_bytes();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    std::fs::write(&sig, &bytes).unwrap();
    let out = verify(&["--trust", &k1]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
    // Garbage signature file.
    std::fs::write(&sig, b"not json").unwrap();
    let out = verify(&["--trust", &k1]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a signature file"));
    // No trust at all.
    assert!(fails(&["doc", "verify", s(&doc)]).contains("no trusted keys"));
}
