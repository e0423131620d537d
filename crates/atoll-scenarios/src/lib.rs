//! The release scenarios (shared/DESIGN.md) on network-namespace hosts,
//! with the very binaries and TOML config files the NixOS modules use.
//! Each scenario is a test in `tests/` whose name contains `netns`: it
//! needs root and is skipped (with a message) without it.
//!
//! The binaries are taken from the cargo target directory next to the
//! test executable; `make test` builds the whole workspace first.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use atoll_testkit::{Host, Lab};

/// Path of a workspace binary in the same target directory as the
/// running test.
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected test executable location")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --workspace` first",
            path.display()
        );
    }
    Ok(path)
}

/// A daemon in a host, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program args` inside `host`, logging to `log`.
    pub fn spawn(
        host: &Host,
        name: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
    ) -> Result<Self> {
        Self::spawn_with_env(host, name, program, args, &[], log)
    }

    /// [`Daemon::spawn`] with extra environment variables.
    pub fn spawn_with_env(
        host: &Host,
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self> {
        let out = std::fs::File::create(log)?;
        let child = host
            .command(program)
            .args(args)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                "info,atoll_swarm=debug,iroh=warn,iroh_relay=warn,noq=warn",
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self {
            child,
            name: name.to_owned(),
            log: log.to_owned(),
        })
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits (SIGKILL after 10 s).
    pub fn stop(&mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("{} did not stop on SIGTERM", self.name)
    }

    /// Kills it with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `f` succeeds or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A swarm node (`atoll-swarmd`) in a host with its own state dir.
#[derive(Debug)]
pub struct SwarmNode {
    /// The daemon.
    pub daemon: Daemon,
    /// Its state directory.
    pub state: PathBuf,
    /// Its local API socket.
    pub socket: PathBuf,
}

impl SwarmNode {
    /// Writes `config` (TOML) to `<dir>/<name>.toml` and starts the node.
    pub fn start(host: &Host, dir: &Path, name: &str, config: &str) -> Result<Self> {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, config)?;
        let state = dir.join(name);
        let socket = state.join("run/swarmd.sock");
        let daemon = Daemon::spawn(
            host,
            name,
            &bin("atoll-swarmd")?,
            &[
                "--config",
                path_str(&cfg)?,
                "--state-dir",
                path_str(&state)?,
            ],
            &dir.join(format!("{name}.log")),
        )?;
        let mut node = Self {
            daemon,
            state,
            socket,
        };
        let sock = node.socket.clone();
        wait_for(
            &format!("{name} to answer on its socket"),
            Duration::from_secs(30),
            || {
                atoll(&sock, &["status"])
                    .ok()
                    .filter(|o| o.status.success())
            },
        )
        .with_context(|| node.daemon.log())?;
        if !node.daemon.running() {
            bail!("{name} exited: {}", node.daemon.log());
        }
        Ok(node)
    }

    /// Runs the `atoll` CLI against this node; fails unless it succeeds.
    pub fn atoll(&self, args: &[&str]) -> Result<Output> {
        succeeded(args, atoll(&self.socket, args)?)
    }

    /// This node's endpoint id.
    pub fn node_id(&self) -> Result<String> {
        let out = self.atoll(&["status"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("node id:"))
            .map(|s| s.trim().to_owned())
            .context("no node id in status")
    }
}

/// Runs the `atoll` CLI with `--socket`.
pub fn atoll(socket: &Path, args: &[&str]) -> Result<Output> {
    Ok(Command::new(bin("atoll")?)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()?)
}

/// Runs the `atoll` CLI (no swarm socket); fails unless it succeeds.
pub fn cli(args: &[&str]) -> Result<Output> {
    succeeded(args, Command::new(bin("atoll")?).args(args).output()?)
}

/// `out` of `atoll args`, or an error with what it printed.
fn succeeded(args: &[&str], out: Output) -> Result<Output> {
    if !out.status.success() {
        bail!(
            "atoll {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// `atoll-devnet` in a host (relays, origin, test mints: whatever `args`
/// ask for), logging to `devnet.log` in the test's directory.
pub struct Devnet {
    /// The process.
    pub daemon: Daemon,
    /// What it printed once up.
    log: String,
}

impl Devnet {
    /// Starts it and waits until it printed `NAME=URL` for every name in
    /// `ready` (`NOSTR_RELAY`, `LIGHTNING`, …).
    pub fn spawn(host: &Host, dir: &Path, args: &[&str], ready: &[&str]) -> Result<Self> {
        let log_path = dir.join("devnet.log");
        let daemon = Daemon::spawn(host, "devnet", &bin("atoll-devnet")?, args, &log_path)?;
        let log = wait_for("atoll-devnet", Duration::from_secs(30), || {
            std::fs::read_to_string(&log_path)
                .ok()
                .filter(|l| ready.iter().all(|n| l.contains(&format!("{n}="))))
        })
        .with_context(|| daemon.log())?;
        Ok(Self { daemon, log })
    }

    /// The URL it printed as `NAME=URL`.
    pub fn value(&self, name: &str) -> Result<String> {
        self.log
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .with_context(|| format!("atoll-devnet printed no {name}"))
    }
}

/// A path as UTF-8.
pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

/// Writes `len` pseudo-random bytes to `path` (xorshift; fast, not zeros).
pub fn random_file(path: &Path, len: usize, seed: u64) -> Result<()> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(len);
    std::fs::write(path, buf)?;
    Ok(())
}

/// Adds the hub of a star network: host `name` with the service address
/// `<net>.0.1` (e.g. `10.1.0.1`) on its loopback.
pub fn hub(lab: &mut Lab, name: &str, net: &str) -> Result<Host> {
    let h = lab.host(name)?;
    let status = h
        .command("ip")
        .args(["addr", "add", &format!("{net}.0.1/32"), "dev", "lo"])
        .status()?;
    if !status.success() {
        bail!("cannot add {net}.0.1 to {name}");
    }
    Ok(h)
}

/// Adds host `name` on its own link to `hub` (subnet `<net>.<n>.0/24`)
/// with a route to the hub's service address only: no path to any other
/// spoke, so spokes talk to each other only through services on the hub.
pub fn spoke(lab: &mut Lab, hub: &Host, net: &str, name: &str, n: u8) -> Result<Host> {
    let h = lab.host(name)?;
    lab.link(
        hub,
        &format!("{net}.{n}.1/24"),
        &h,
        &format!("{net}.{n}.2/24"),
    )?;
    h.route(&format!("{net}.0.1/32"), &format!("{net}.{n}.1"))?;
    Ok(h)
}
