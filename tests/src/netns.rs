//! Network namespaces and veth pairs that a test makes for itself: the only places network
//! tests send traffic (private addresses inside namespaces they made, or 127.0.0.0/8). Every
//! namespace is deleted when its guard drops, and with it the veth ends inside it.

use std::ffi::{OsStr, OsString};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{assert_no_sentry_panic, runsc_rs_bin, skip, test_platform, Outcome, Run};

/// Runs iproute2's `ip ARGS`; its standard output, or what went wrong.
///
/// # Errors
/// `ip` is missing or fails (the message carries its stderr).
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why this machine cannot make namespaces for a test (not root, no `ip`), if it cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root to make network namespaces".to_owned());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2's ip".to_owned());
    }
    None
}

/// `10.251.N.HOST`: the test networks' IPv4 addresses.
pub fn v4(net: u8, host: u8) -> String {
    format!("10.251.{net}.{host}")
}

/// `fd00:251:N::HOST`: the test networks' IPv6 addresses.
pub fn v6(net: u8, host: u8) -> String {
    format!("fd00:251:{net}::{host}")
}

/// A named network namespace of the test's own (`/run/netns/NAME`), its loopback up; deleted
/// on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace named after `tag`, unique to this process and call.
    ///
    /// # Errors
    /// `ip netns add` fails.
    pub fn new(tag: &str) -> Result<Netns, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rsrs-{tag}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS`.
    ///
    /// # Errors
    /// As [`ip`].
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NAME`, to be followed by a program and its arguments.
    pub fn exec_argv(&self) -> Vec<OsString> {
        ["ip", "netns", "exec", &self.name]
            .map(OsString::from)
            .to_vec()
    }

    /// The processes in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        let out = ip(&["netns", "pids", &self.name]).unwrap_or_default();
        out.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// A command running `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// A veth pair between this namespace (`dev`) and `peer` (`peer_dev`), both ends up;
    /// `extra` goes to `ip link add` (e.g. `["mtu", "1400"]`).
    ///
    /// # Errors
    /// As [`ip`].
    pub fn veth(
        &self,
        dev: &str,
        peer: &Netns,
        peer_dev: &str,
        extra: &[&str],
    ) -> Result<(), String> {
        let mut args = vec!["link", "add", dev];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "type", "veth", "peer", "name", peer_dev, "netns", &peer.name,
        ]);
        self.ip(&args)?;
        self.ip(&["link", "set", dev, "up"])?;
        peer.ip(&["link", "set", peer_dev, "up"])?;
        Ok(())
    }

    /// Gives `dev` the addresses `HOST` of test network `net` (/24 and /64; the IPv6 one
    /// without duplicate-address detection, so it is usable at once). `replace`: also when the
    /// link has them already (a sandbox takes them off the host kernel and does not put them
    /// back).
    ///
    /// # Errors
    /// As [`ip`].
    pub fn address(&self, dev: &str, net: u8, host: u8) -> Result<(), String> {
        let (a4, a6) = (
            format!("{}/24", v4(net, host)),
            format!("{}/64", v6(net, host)),
        );
        self.ip(&["addr", "replace", &a4, "dev", dev])?;
        self.ip(&["-6", "addr", "replace", &a6, "dev", dev, "nodad"])?;
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Two namespaces joined by a veth: `a` (device `veth-a`, host 1 of test network `net`) and
/// `b` (device `veth-b`, host 2).
#[derive(Debug)]
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
    pub net: u8,
}

impl VethPair {
    /// The device names inside `a` and `b`.
    pub const DEVS: [&'static str; 2] = ["veth-a", "veth-b"];

    /// A new pair on test network `net`, named after `tag`.
    ///
    /// # Errors
    /// Namespaces or links cannot be made.
    pub fn new(tag: &str, net: u8) -> Result<VethPair, String> {
        let a = Netns::new(&format!("{tag}-a"))?;
        let b = Netns::new(&format!("{tag}-b"))?;
        let [da, db] = Self::DEVS;
        a.veth(da, &b, db, &[])?;
        a.address(da, net, 1)?;
        b.address(db, net, 2)?;
        Ok(VethPair { a, b, net })
    }
}

/// Two network namespaces joined by a veth pair for sandbox-versus-native tests: sandboxes
/// run in `a` (host 1) with `--network sandbox`, the peer's programs in `b` (host 2);
/// deleted on drop.
#[derive(Debug)]
pub struct SandboxPair {
    pub net: VethPair,
}

impl SandboxPair {
    /// A fresh pair named after `tag`, on one of the test networks 1..=200 in turn; `None`
    /// (after printing SKIPPED) where namespaces cannot be made.
    pub fn new(tag: &str) -> Option<SandboxPair> {
        if let Some(why) = unavailable() {
            skip(&why);
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (NEXT.fetch_add(1, Ordering::Relaxed) % 200 + 1) as u8;
        match VethPair::new(tag, n) {
            Ok(net) => Some(SandboxPair { net }),
            Err(e) => {
                skip(&format!("cannot make the namespaces: {e}"));
                None
            }
        }
    }

    /// The network number N of 10.251.N.0/24.
    pub fn n(&self) -> u8 {
        self.net.net
    }

    /// `argv` run natively in namespace `i` (0: the sandbox's, 1: the peer's).
    pub fn native(&self, i: usize, argv: &[&str]) -> Run {
        let ns = if i == 0 { &self.net.a } else { &self.net.b };
        let mut full = ns.exec_argv();
        full.extend(argv.iter().map(OsString::from));
        Run::new(&full)
    }

    /// `argv` in a sandbox on the sandbox namespace's link, stopped after `timeout`.
    ///
    /// # Panics
    /// The link cannot be readdressed, or the sentry panicked.
    pub fn sandbox(&self, argv: &[&str], timeout: Duration) -> Outcome {
        // A sandbox takes the addresses off the host kernel and does not put them back.
        self.net
            .a
            .address(VethPair::DEVS[0], self.n(), 1)
            .unwrap_or_else(|e| panic!("readdressing the link: {e}"));
        let mut full = self.net.a.exec_argv();
        full.extend([runsc_rs_bin().into(), "do".into()]);
        if let Some(p) = test_platform() {
            full.push("--platform".into());
            full.push(p.into());
        }
        full.extend(["--network", "sandbox", "--"].map(OsString::from));
        full.extend(argv.iter().map(OsString::from));
        let out = Run::new(&full).timeout(timeout).native();
        assert_no_sentry_panic(&full, &out);
        out
    }
}
