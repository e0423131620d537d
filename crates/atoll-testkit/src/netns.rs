//! Network-namespace hosts for multi-host tests: each [`Host`] is a Linux
//! network namespace with its own loopback, joined to others by veth
//! pairs. Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and `ip` from
//! iproute2.
//!
//! Everything a [`Lab`] made is deleted when it is dropped, also when a
//! test panics; namespaces left by a process that was killed are swept by
//! the next [`Lab::new`]. Names are `atl<pid>-<host>`.

use std::{
    fs::File,
    path::Path,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result, bail};

const PREFIX: &str = "atl";
static NEXT_LINK: AtomicU32 = AtomicU32::new(0);

/// Whether this process may create network namespaces (root with `ip`).
pub fn available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    root && Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ip(args: &[&str]) -> Result<Output> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// A set of hosts that is torn down as a whole.
#[derive(Debug)]
pub struct Lab {
    pid: u32,
    namespaces: Vec<String>,
}

/// One network namespace.
#[derive(Debug, Clone)]
pub struct Host {
    ns: String,
    name: String,
}

impl Lab {
    /// A new, empty lab; sweeps namespaces of dead test processes first.
    pub fn new() -> Result<Self> {
        sweep_stale()?;
        Ok(Self {
            pid: std::process::id(),
            namespaces: Vec::new(),
        })
    }

    /// Adds a host with only loopback up.
    pub fn host(&mut self, name: &str) -> Result<Host> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("host names are ASCII letters and digits: {name:?}");
        }
        let ns = format!("{PREFIX}{}-{name}", self.pid);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(Host {
            ns,
            name: name.to_owned(),
        })
    }

    /// Joins two hosts with a veth pair and gives each end an address in
    /// CIDR form (`10.0.1.1/24`). Returns the interface names (a, b).
    pub fn link(
        &mut self,
        a: &Host,
        a_addr: &str,
        b: &Host,
        b_addr: &str,
    ) -> Result<(String, String)> {
        let n = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
        // Interface names are at most 15 bytes.
        let ia = format!("v{:x}{n}a", self.pid & 0xfffff);
        let ib = format!("v{:x}{n}b", self.pid & 0xfffff);
        ip(&[
            "link", "add", &ia, "netns", &a.ns, "type", "veth", "peer", "name", &ib, "netns", &b.ns,
        ])?;
        for (host, iface, addr) in [(a, &ia, a_addr), (b, &ib, b_addr)] {
            ip(&["-n", &host.ns, "addr", "add", addr, "dev", iface])?;
            ip(&["-n", &host.ns, "link", "set", iface, "up"])?;
        }
        Ok((ia, ib))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..).rev() {
            // Processes still inside keep their namespace alive until they
            // exit; the name is gone either way.
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("netns cleanup: {e:#}");
            }
        }
    }
}

fn sweep_stale() -> Result<()> {
    let out = ip(&["netns", "list"])?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
    Ok(())
}

impl Host {
    /// The host's name as given to [`Lab::host`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.ns
    }

    /// A command that runs `program` inside this host.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec").arg(&self.ns).arg(program);
        cmd
    }

    /// Adds a route on this host: `ip route add DEST via GATEWAY`.
    pub fn route(&self, dest: &str, via: &str) -> Result<()> {
        ip(&["-n", &self.ns, "route", "add", dest, "via", via])?;
        Ok(())
    }

    /// Turns IPv4 forwarding on (the host becomes a router).
    pub fn forward(&self) -> Result<()> {
        let out = self
            .command("sysctl")
            .args(["-qw", "net.ipv4.ip_forward=1"])
            .output()?;
        if !out.status.success() {
            bail!(
                "sysctl in {}: {}",
                self.ns,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Runs `f` on a new thread that has entered this host's namespace,
    /// with a current-thread tokio runtime: every socket `f` opens lives in
    /// the host.
    pub fn run<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || -> Result<T> {
            let file = File::open(&path).with_context(|| format!("opening {path}"))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("entering {path}"))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(f()))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in {} panicked", self.ns))?
    }
}

/// Runs `f` on a new thread in a brand-new network namespace that has only
/// loopback: nothing it does can leave the machine or even reach the host's
/// other interfaces.
pub fn isolated<F, Fut, T>(f: F) -> Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || -> Result<T> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .context("unshare(CLONE_NEWNET)")?;
        // `ip` forks from this thread and so acts on the new namespace.
        ip(&["link", "set", "lo", "up"])?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(rt.block_on(f()))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("isolated thread panicked"))?
}
