//! Helpers shared by the swarm tests: nodes on loopback, test data, an
//! HTTP origin that can serve good, wrong, truncated or failing bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use atoll_core::ContentId;
use atoll_swarm::{Node, SwarmConfig};
use atoll_testkit::TempState;
use axum::{Router, extract::Path, http::StatusCode, response::IntoResponse, routing::get};
use iroh::EndpointAddr;

/// Deterministic pseudo-random bytes (xorshift), so no two sizes share a prefix pattern.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub struct TestNode {
    pub node: Node,
    pub dir: TempState,
}

impl TestNode {
    pub async fn spawn(name: &str, f: impl FnOnce(&mut SwarmConfig)) -> Self {
        let dir = TempState::new(name).unwrap();
        Self::spawn_in(dir, f).await
    }

    pub async fn spawn_in(dir: TempState, f: impl FnOnce(&mut SwarmConfig)) -> Self {
        let mut c = SwarmConfig::default();
        c.node.bind = "127.0.0.1:0".parse().unwrap();
        c.storage.gc_interval_secs = 1;
        c.fetch.peer_timeout_secs = 10;
        c.fetch.origin_timeout_secs = 10;
        f(&mut c);
        let node = Node::builder(c, dir.state())
            .socket(dir.run().join("swarmd.sock"))
            .spawn()
            .await
            .unwrap();
        Self { node, dir }
    }

    /// The node's address once it has a direct one.
    pub async fn addr(&self) -> EndpointAddr {
        let ep = self.node.state().endpoint();
        for _ in 0..100 {
            let a = ep.addr();
            if a.ip_addrs().next().is_some() {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("endpoint has no direct address");
    }

    pub fn client(&self) -> atoll_core::local_api::LocalClient {
        atoll_core::local_api::LocalClient::new(self.dir.run().join("swarmd.sock"))
    }

    pub fn data_file(&self, id: &ContentId) -> std::path::PathBuf {
        self.dir
            .state()
            .join(format!("blobs/data/{}.data", id.to_hex()))
    }
}

/// How the test origin answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginMode {
    Good,
    WrongBytes,
    Truncated,
    Error500,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// Serves `blobs` at `/<hex>`, answering as `mode` says.
    pub async fn spawn(blobs: Vec<Vec<u8>>, mode: OriginMode) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let blobs = Arc::new(blobs);
        let app = Router::new().route(
            "/{hex}",
            get(move |Path(hex): Path<String>| {
                let blobs = blobs.clone();
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let Some(b) = blobs.iter().find(|b| ContentId::of(b).to_hex() == hex) else {
                        return StatusCode::NOT_FOUND.into_response();
                    };
                    match mode {
                        OriginMode::Good => b.clone().into_response(),
                        OriginMode::WrongBytes => {
                            let mut b = b.clone();
                            let mid = b.len() / 2;
                            b[mid] ^= 1;
                            b.into_response()
                        }
                        OriginMode::Truncated => {
                            // Claims the full length, sends half, then closes.
                            let half = bytes::Bytes::copy_from_slice(&b[..b.len() / 2]);
                            let stream = futures::stream::iter(vec![
                                Ok::<_, std::io::Error>(half),
                                Err(std::io::Error::other("connection dropped")),
                            ]);
                            axum::response::Response::builder()
                                .header("content-length", b.len())
                                .body(axum::body::Body::from_stream(stream))
                                .unwrap()
                        }
                        OriginMode::Error500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, hits, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn blob_url(&self, id: &ContentId) -> String {
        format!("http://{}/{}", self.addr, id.to_hex())
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
