//! Network-namespace hosts: linked hosts reach each other over TCP, hosts
//! that are not linked cannot, and everything is gone after the lab drops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::process::Command;

use atoll_testkit::{Lab, netns};

fn namespaces() -> String {
    String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

#[test]
fn netns_hosts_link_and_clean_up() {
    if !netns::available() {
        eprintln!("SKIP: needs root and iproute2");
        return;
    }
    let names;
    {
        let mut lab = Lab::new().unwrap();
        let a = lab.host("a").unwrap();
        let b = lab.host("b").unwrap();
        let c = lab.host("c").unwrap();
        lab.link(&a, "10.77.1.1/24", &b, "10.77.1.2/24").unwrap();
        names = [
            a.netns().to_owned(),
            b.netns().to_owned(),
            c.netns().to_owned(),
        ];
        let listed = namespaces();
        assert!(
            names.iter().all(|n| listed.contains(n.as_str())),
            "{listed}"
        );

        // A TCP server in b, a client in a (its own thread): linked hosts talk.
        let a2 = a.clone();
        let (msg, peer) = b
            .run(move || async move {
                let l = tokio::net::TcpListener::bind("10.77.1.2:7001")
                    .await
                    .unwrap();
                let client = std::thread::spawn(move || {
                    a2.run(|| async {
                        let mut s = tokio::net::TcpStream::connect("10.77.1.2:7001")
                            .await
                            .unwrap();
                        tokio::io::AsyncWriteExt::write_all(&mut s, b"hello from a")
                            .await
                            .unwrap();
                    })
                    .unwrap()
                });
                let (mut s, peer) = l.accept().await.unwrap();
                let mut buf = String::new();
                tokio::io::AsyncReadExt::read_to_string(&mut s, &mut buf)
                    .await
                    .unwrap();
                client.join().unwrap();
                (buf, peer.ip().to_string())
            })
            .unwrap();
        assert_eq!(msg, "hello from a");
        assert_eq!(peer, "10.77.1.1");

        // c has no link: it cannot reach b, and its loopback is its own.
        let unreachable = c
            .run(|| async {
                tokio::net::TcpStream::connect("10.77.1.2:7001")
                    .await
                    .is_err()
            })
            .unwrap();
        assert!(unreachable);
        let out = c.command("ip").args(["-4", "addr"]).output().unwrap();
        let addrs = String::from_utf8_lossy(&out.stdout);
        assert!(
            addrs.contains("127.0.0.1") && !addrs.contains("10.77."),
            "{addrs}"
        );
    }
    let listed = namespaces();
    assert!(
        names.iter().all(|n| !listed.contains(n.as_str())),
        "{listed}"
    );
}

#[test]
fn netns_cleanup_survives_a_panicking_test() {
    if !netns::available() {
        eprintln!("SKIP: needs root and iproute2");
        return;
    }
    let name = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let n2 = name.clone();
    let result = std::panic::catch_unwind(move || {
        let mut lab = Lab::new().unwrap();
        let h = lab.host("p").unwrap();
        *n2.lock().unwrap() = h.netns().to_owned();
        panic!("test failure inside a lab");
    });
    assert!(result.is_err());
    let name = name.lock().unwrap().clone();
    assert!(!name.is_empty());
    assert!(!namespaces().contains(&name));
}
