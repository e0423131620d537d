//! `atoll-relayd`: this handles only the command line and config loading;
//! the relay lives in the library.

use std::process::ExitCode;

use anyhow::Context;
use atoll_core::service::{self, Notifier, ServiceArgs};
use atoll_relay::{Relay, RelaydConfig, config::ENV_PREFIX, members};
use clap::Parser;

/// The Atoll relay: an iroh relay that admits only its group's members.
#[derive(Debug, Parser)]
#[command(name = "atoll-relayd", version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    service::main("atoll-relayd", || async {
        run(args).await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config: RelaydConfig = args.service.load_config(ENV_PREFIX)?;
    let checked = config.validate()?;
    if args.service.check_config {
        if let Some(path) = &config.membership.members_file {
            let found = members::read_members_file(path)?;
            println!("{}: {} member(s)", path.display(), found.len());
        }
        for file in config.tls.iter().flat_map(|t| [&t.cert_file, &t.key_file]) {
            std::fs::metadata(file).with_context(|| format!("TLS file {}", file.display()))?;
        }
        println!("relay URL: {}", checked.public_url);
        service::report_config_ok(args.service.config.as_deref(), &config);
        return Ok(());
    }
    let notifier = Notifier::from_env();
    let relay = Relay::builder(config)
        .spawn()
        .await
        .context("starting the relay")?;
    notifier.ready(&format!(
        "relay {} on {}, {} member(s) including the owner",
        relay.url(),
        relay.local_addr(),
        relay.membership().current().len()
    ));
    let watchdog = notifier.spawn_watchdog();
    service::shutdown_signal().await;
    notifier.stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    relay.shutdown().await;
    Ok(())
}
