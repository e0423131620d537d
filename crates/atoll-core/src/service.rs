//! Daemon plumbing shared by every Atoll service: the common command line,
//! logging to stderr (journald adds the timestamps), sd-notify (READY,
//! STATUS, WATCHDOG, STOPPING) and graceful shutdown on SIGTERM/SIGINT.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::de::DeserializeOwned;

use crate::config::{self, ConfigError};

/// The command line every daemon shares. Flatten it into the daemon's own
/// `clap` parser.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// TOML config file. Without one, built-in defaults and environment
    /// overrides apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory. Default: $STATE_DIRECTORY (set by systemd).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Runtime directory for local sockets. Default: $RUNTIME_DIRECTORY,
    /// else `<state dir>/run`.
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Load and validate the config, print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// Errors in the common service setup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The config did not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No state directory was given.
    #[error("no state directory: pass --state-dir DIR or run under systemd with StateDirectory=")]
    NoStateDir,
}

fn first_dir(var: &str) -> Option<PathBuf> {
    // systemd joins several directories with ':'; the first is ours.
    let value = std::env::var_os(var)?;
    let first = value.to_str()?.split(':').next()?.to_owned();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

impl ServiceArgs {
    /// Loads the config with the binary's environment prefix.
    pub fn load_config<T: DeserializeOwned>(&self, env_prefix: &str) -> Result<T, ConfigError> {
        config::load(self.config.as_deref(), env_prefix)
    }

    /// The state directory: `--state-dir`, else `$STATE_DIRECTORY`.
    pub fn state_dir(&self) -> Result<PathBuf, ServiceError> {
        self.state_dir
            .clone()
            .or_else(|| first_dir("STATE_DIRECTORY"))
            .ok_or(ServiceError::NoStateDir)
    }

    /// The runtime directory: `--runtime-dir`, else `$RUNTIME_DIRECTORY`,
    /// else `<state dir>/run`.
    pub fn runtime_dir(&self) -> Result<PathBuf, ServiceError> {
        if let Some(dir) = self
            .runtime_dir
            .clone()
            .or_else(|| first_dir("RUNTIME_DIRECTORY"))
        {
            return Ok(dir);
        }
        Ok(self.state_dir()?.join("run"))
    }
}

/// Starts logging to stderr. `RUST_LOG` sets the filter (default `info`).
/// Under systemd (`$JOURNAL_STREAM` set) timestamps and colours are left
/// to journald.
pub fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    drop(result);
}

/// Talks to systemd's service manager over `$NOTIFY_SOCKET` (the
/// `sd_notify(3)` protocol); every call is a no-op without a socket.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<std::ffi::OsString>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd set up for this process, from `$NOTIFY_SOCKET`,
    /// `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Self::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// A notifier from explicit values (what [`Notifier::from_env`] reads).
    /// The watchdog applies only when `watchdog_pid` is absent or ours.
    pub fn from_vars(
        notify_socket: Option<std::ffi::OsString>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        our_pid: u32,
    ) -> Self {
        let pid_ok = watchdog_pid.is_none_or(|p| p.parse::<u32>().ok() == Some(our_pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && pid_ok)
            .map(Duration::from_micros);
        Self {
            socket: notify_socket.filter(|s| !s.is_empty()),
            watchdog,
        }
    }

    /// The watchdog timeout systemd set, if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The service is up: READY=1 with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    /// A human-readable status line.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}\n"));
    }

    /// The service is shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping\n");
    }

    /// Keeps the watchdog fed at half of its timeout until the task is
    /// aborted or the process ends. `None` when systemd set no watchdog.
    pub fn spawn_watchdog(&self) -> Option<tokio::task::JoinHandle<()>> {
        let period = watchdog_period(self.watchdog?);
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                this.send("WATCHDOG=1\n");
            }
        }))
    }

    fn send(&self, message: &str) {
        let Some(socket) = &self.socket else { return };
        if let Err(e) = send_datagram(socket, message.as_bytes()) {
            tracing::warn!("sd_notify to {}: {e}", socket.to_string_lossy());
        }
    }
}

fn send_datagram(socket: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<usize> {
    use std::os::{linux::net::SocketAddrExt, unix::ffi::OsStrExt, unix::net::UnixDatagram};
    let sock = UnixDatagram::unbound()?;
    match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(message, &addr)
        }
        None => sock.send_to(message, socket),
    }
}

/// How often to feed a watchdog with the given timeout: half of it, and
/// never less than 10 ms.
pub fn watchdog_period(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(10))
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// The body of every daemon's `main`: starts logging and a multi-threaded
/// runtime, runs `run`, and turns its error into a log line, a message on
/// stderr and a failing exit code.
pub fn main<F, Fut, E>(name: &str, run: F) -> std::process::ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<std::process::ExitCode, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(code) => code,
        Err(e) => {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            let message = error_chain(&*e);
            tracing::error!("{message}");
            eprintln!("{name}: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its sources on one line, `outer: inner: …`, leaving out a
/// source whose text the message already holds (many errors here name
/// their source in their own message and also keep it as `source()`).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(src) = next {
        let text = src.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = src.source();
    }
    out
}

/// Prints the outcome of `--check-config` for a loaded config.
pub fn report_config_ok<T: std::fmt::Debug>(path: Option<&Path>, config: &T) {
    match path {
        Some(p) => println!("{}: ok", p.display()),
        None => println!("built-in defaults: ok"),
    }
    println!("{config:#?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn error_chains_say_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let outer = crate::config::ConfigError::Read {
            path: "/etc/x.toml".into(),
            source: io,
        };
        let text = error_chain(&outer);
        assert_eq!(text.matches("disk on fire").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot read config file /etc/x.toml"),
            "{text}"
        );
    }

    #[test]
    fn watchdog_period_is_half_the_timeout() {
        assert_eq!(
            watchdog_period(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(
            watchdog_period(Duration::from_millis(1)),
            Duration::from_millis(10)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notifications_reach_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("notify");
        let listener = UnixDatagram::bind(&sock).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::from_vars(Some(sock.into()), Some("40000"), Some("42"), 42);
        assert_eq!(n.watchdog_timeout(), Some(Duration::from_millis(40)));
        n.ready("serving");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(
            msg.contains("READY=1") && msg.contains("STATUS=serving"),
            "{msg}"
        );
        let dog = n.spawn_watchdog().expect("watchdog configured");
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap().trim(),
            "WATCHDOG=1"
        );
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap().trim(),
            "WATCHDOG=1"
        );
        dog.abort();
        n.stopping();
        // Drain to the STOPPING message (a last tick may race the abort).
        loop {
            let len = listener.recv(&mut buf).unwrap();
            if std::str::from_utf8(&buf[..len])
                .unwrap()
                .contains("STOPPING=1")
            {
                break;
            }
        }
    }

    #[test]
    fn watchdog_is_only_for_the_named_pid() {
        assert!(
            Notifier::from_vars(None, Some("40000"), Some("41"), 42)
                .watchdog_timeout()
                .is_none()
        );
        assert!(
            Notifier::from_vars(None, Some("0"), None, 42)
                .watchdog_timeout()
                .is_none()
        );
        assert!(
            Notifier::from_vars(None, Some("junk"), None, 42)
                .watchdog_timeout()
                .is_none()
        );
        assert!(
            Notifier::from_vars(None, None, None, 42)
                .spawn_watchdog()
                .is_none()
        );
        // No socket: calls are harmless no-ops.
        Notifier::from_vars(None, None, None, 42).ready("x");
    }

    #[test]
    fn abstract_socket_names_are_supported() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("atoll-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Notifier::from_vars(Some(format!("@{name}").into()), None, None, 1).status("hi");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=hi\n");
    }

    #[test]
    fn state_and_runtime_dirs() {
        let args = ServiceArgs {
            config: None,
            state_dir: Some("/var/lib/x".into()),
            runtime_dir: None,
            check_config: false,
        };
        assert_eq!(args.state_dir().unwrap(), PathBuf::from("/var/lib/x"));
        if std::env::var_os("RUNTIME_DIRECTORY").is_none() {
            assert_eq!(args.runtime_dir().unwrap(), PathBuf::from("/var/lib/x/run"));
        }
    }
}
