//! `atoll wallet …` against a real wallet API on a unix socket, over real
//! cdk mints on the testkit's linked fake Lightning network.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::{path::Path, process::Output};

use atoll_testkit::{lightning::LightningNetwork, mint::TestMint};
use atoll_wallet::{Budget, Wallet};
use common::s;

async fn cli(socket: &Path, args: &[&str]) -> Output {
    let mut full = vec!["wallet", "--wallet-socket", s(socket)];
    full.extend_from_slice(args);
    let full: Vec<String> = full.into_iter().map(String::from).collect();
    // The CLI blocks on its own runtime: run it off this one.
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        common::atoll(&refs)
    })
    .await
    .unwrap()
}

async fn ok(socket: &Path, args: &[&str]) -> String {
    let out = cli(socket, args).await;
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn serve(wallet: Wallet, socket: &Path) -> tokio::task::JoinHandle<()> {
    let listener = atoll_core::local_api::bind(socket).await.unwrap();
    let app = atoll_wallet::api::router(wallet);
    tokio::spawn(async move {
        atoll_core::local_api::serve(listener, app, std::future::pending())
            .await
            .unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_verbs_move_real_ecash() {
    let network = LightningNetwork::new();
    let mint = TestMint::builder(&network).spawn().await.unwrap();
    let url = mint.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        Wallet::builder(dir.path().join(name))
            .budget(Budget {
                per_payment_sat: 1000,
                per_day_sat: 10_000,
            })
            .open()
    };
    let (alice, bob) = (open("alice").await.unwrap(), open("bob").await.unwrap());
    let (sa, sb) = (dir.path().join("alice.sock"), dir.path().join("bob.sock"));
    let _a = serve(alice, &sa).await;
    let _b = serve(bob, &sb).await;

    // Nothing trusted yet: invoices are refused with a clear message.
    let out = cli(&sa, &["invoice", "--mint", &url, "50"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("trust"),
        "{out:?}"
    );
    for sock in [&sa, &sb] {
        assert!(
            ok(sock, &["mints", "trust", &url])
                .await
                .contains("trusted")
        );
    }
    assert!(
        ok(&sa, &["mints", "ls"])
            .await
            .contains(&url.trim_end_matches('/').to_owned())
    );

    // Invoice, paid from outside, claimed.
    let out = cli(&sa, &["invoice", "--mint", &url, "50"]).await;
    assert!(out.status.success(), "{out:?}");
    let bolt11 = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let quote = stderr.split_whitespace().last().unwrap().to_owned();
    // Unpaid: claiming mints nothing.
    assert!(
        ok(&sa, &["claim", "--mint", &url, &quote])
            .await
            .contains("minted 0 sat")
    );
    network.pay_external(&bolt11).unwrap();
    let mut minted = String::new();
    for _ in 0..100 {
        minted = ok(&sa, &["claim", "--mint", &url, &quote]).await;
        if !minted.contains("minted 0 sat") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(minted.contains("minted 50 sat"), "{minted}");
    assert!(ok(&sa, &["balance"]).await.contains("total: 50 sat"));

    // Send 20 to Bob as a token; Bob receives it once.
    let token = ok(&sa, &["send", "20", "--mint", &url, "--max-fee-sat", "0"]).await;
    let token = token.trim();
    assert!(token.starts_with("cashu"), "{token}");
    assert!(
        ok(&sb, &["receive", token])
            .await
            .contains("received 20 sat")
    );
    let again = cli(&sb, &["receive", token]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("spent"),
        "{again:?}"
    );
    assert!(ok(&sa, &["balance"]).await.contains("total: 30 sat"));
    assert!(ok(&sb, &["balance"]).await.contains("total: 20 sat"));
    // Malformed input is refused clearly.
    let bad = cli(&sb, &["receive", "cashuBnotatoken"]).await;
    assert!(!bad.status.success());
    // Over the per-payment budget.
    let over = cli(&sa, &["send", "5000", "--mint", &url]).await;
    assert!(!over.status.success());
    // History shows dates (UTC), not Unix seconds; --json keeps seconds.
    let history = ok(&sa, &["history"]).await;
    assert!(!history.contains("no history"));
    let first = history.lines().next().unwrap();
    let date = first.split_whitespace().next().unwrap();
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{history}"
    );
    assert!(date.starts_with("20"), "{history}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&sa, &["history", "--json"]).await).expect("--json prints JSON");
    assert!(json[0]["at"].as_i64().unwrap() > 1_700_000_000, "{json}");
    // A mint URL that is not one is refused before it reaches the list.
    for bad in [
        "file:///etc/passwd",
        "https://u:p@m.example",
        "javascript:alert(1)",
    ] {
        let out = cli(&sa, &["mints", "trust", bad]).await;
        assert!(!out.status.success(), "{bad} was trusted");
    }
    let listed = ok(&sa, &["mints", "ls"]).await;
    assert!(
        !listed.contains("file:") && !listed.contains("u:p@"),
        "{listed}"
    );
    assert!(
        ok(&sb, &["mints", "untrust", &url])
            .await
            .contains("20 sat still held")
    );
    mint.shutdown().await.unwrap();
}
