//! `atoll-devnet`: the local infrastructure for the demo, the
//! network-namespace scenarios and the NixOS VM tests — an iroh relay, a
//! Nostr relay and optionally a static HTTP origin — until SIGTERM/SIGINT.
//! Prints one `NAME=URL` line per service on stdout once they are up.

use std::net::SocketAddr;

use anyhow::Result;
use atoll_testkit::{TestNostrRelay, TestRelay};

fn usage() -> ! {
    eprintln!(
        "usage: atoll-devnet [--iroh-bind ADDR] [--nostr-bind ADDR] [--origin-dir DIR --origin-bind ADDR]\n\
         Runs an open iroh relay (plain HTTP), a Nostr relay and optionally an HTTP origin\n\
         serving the files of DIR at /<name>, for tests and the demo.\n\
         Defaults: 127.0.0.1:0 for both (ephemeral ports). Not for production: the iroh\n\
         relay admits everyone; use atoll-relayd for a group."
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut iroh_bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut nostr_bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut origin_bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut origin_dir: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value =
            || -> Result<SocketAddr> { Ok(args.next().unwrap_or_else(|| usage()).parse()?) };
        match a.as_str() {
            "--iroh-bind" => iroh_bind = value()?,
            "--nostr-bind" => nostr_bind = value()?,
            "--origin-bind" => origin_bind = value()?,
            "--origin-dir" => origin_dir = Some(args.next().unwrap_or_else(|| usage()).into()),
            _ => usage(),
        }
    }
    let relay = TestRelay::builder().bind(iroh_bind).spawn().await?;
    let nostr = TestNostrRelay::spawn_on(nostr_bind).await?;
    println!("IROH_RELAY={}", relay.url());
    println!("NOSTR_RELAY={}", nostr.url());
    if let Some(dir) = origin_dir {
        let listener = tokio::net::TcpListener::bind(origin_bind).await?;
        println!("ORIGIN=http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, origin(dir)).await {
                eprintln!("origin: {e}");
            }
        });
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    atoll_core::service::Notifier::from_env().ready("relays up");
    atoll_core::service::shutdown_signal().await;
    nostr.shutdown();
    relay.shutdown().await?;
    Ok(())
}

/// A static file server: `GET /<name>` for plain file names in `dir`.
fn origin(dir: std::path::PathBuf) -> axum::Router {
    use axum::{extract::Path, http::StatusCode, response::IntoResponse, routing::get};
    axum::Router::new().route(
        "/{name}",
        get(move |Path(name): Path<String>| {
            let dir = dir.clone();
            async move {
                let plain = !name.starts_with('.')
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !plain {
                    return StatusCode::BAD_REQUEST.into_response();
                }
                match tokio::fs::File::open(dir.join(&name)).await {
                    Ok(f) => axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f))
                        .into_response(),
                    Err(_) => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }),
    )
}
