//! `atoll-swarmd`: this handles only the command line and config loading;
//! the node lives in the library.

use std::process::ExitCode;

use anyhow::Context;
use atoll_core::service::{self, Notifier, ServiceArgs};
use atoll_swarm::{Node, SwarmConfig, config::ENV_PREFIX};
use clap::Parser;

/// The Atoll swarm node: holds, seeds and fetches verified blobs.
#[derive(Debug, Parser)]
#[command(name = "atoll-swarmd", version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    service::main("atoll-swarmd", || async {
        Ok::<_, anyhow::Error>(match run(args).await? {
            Exit::Stopped => ExitCode::SUCCESS,
            Exit::RenewTokens => ExitCode::from(EXIT_RENEW),
        })
    })
}

/// Exit code asking the service manager for a restart to renew the relay
/// admission tokens (EX_TEMPFAIL).
const EXIT_RENEW: u8 = 75;

enum Exit {
    Stopped,
    RenewTokens,
}

async fn run(args: Args) -> anyhow::Result<Exit> {
    let config: SwarmConfig = args.service.load_config(ENV_PREFIX)?;
    config.validate()?;
    if args.service.check_config {
        service::report_config_ok(args.service.config.as_deref(), &config);
        return Ok(Exit::Stopped);
    }
    let state_dir = args.service.state_dir()?;
    let socket = match &config.api.socket {
        Some(p) => p.clone(),
        None => args.service.runtime_dir()?.join("swarmd.sock"),
    };
    let notifier = Notifier::from_env();
    let node = Node::builder(config, &state_dir)
        .socket(&socket)
        .spawn()
        .await
        .context("starting the swarm node")?;
    let status = node.state().status()?;
    tracing::info!(node_id = %status.node_id, socket = %socket.display(), "swarm node up");
    notifier.ready(&format!("serving {} blobs", status.blobs));
    let watchdog = notifier.spawn_watchdog();
    let renewal = node.token_renewal_due();
    let exit = tokio::select! {
        _ = service::shutdown_signal() => Exit::Stopped,
        _ = async {
            match renewal {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        } => {
            tracing::info!("relay admission tokens are due for renewal; restarting (exit {EXIT_RENEW})");
            Exit::RenewTokens
        }
    };
    notifier.stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    node.shutdown().await;
    Ok(exit)
}
