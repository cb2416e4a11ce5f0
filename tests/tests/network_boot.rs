//! The boot side of `--network`: what `runsc-rs do --network sandbox|host` reads from the
//! network namespace it starts in, what it takes from the host, and its errors; the OCI
//! CLI's `--network sandbox` in the namespace a spec names.
//!
//! Every test makes its own namespaces (a "box" where the sandbox runs, a "peer" at the
//! other end of a veth) with private addresses only, and deletes them when done (a Drop
//! guard). Needs root and iproute2's `ip`; without them it prints `SKIPPED: reason`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use runsc_rs_tests::netns::{self, Netns};
use runsc_rs_tests::{host_calls_installed, host_calls_listed, runsc_rs_bin, skip, Scratch};

/// What these tests ask of a namespace; a namespace that cannot be set up fails the test.
trait NetnsExt {
    /// `ip -n NAME ARGS`, which must succeed.
    fn ip_ok(&self, args: &[&str]) -> String;
    /// The addresses of `dev` as `ip -o addr` prints them.
    fn addresses(&self, dev: &str) -> String;
    /// `ip netns exec NAME PROGRAM ARGS`.
    fn command_with(&self, program: &Path, args: &[&str]) -> Command;
}

impl NetnsExt for Netns {
    fn ip_ok(&self, args: &[&str]) -> String {
        self.ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn addresses(&self, dev: &str) -> String {
        self.ip_ok(&["-o", "addr", "show", "dev", dev])
    }

    fn command_with(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = self.command(program);
        c.args(args);
        c
    }
}

/// Root and `ip`, or a SKIPPED line.
fn can_run() -> bool {
    match netns::unavailable() {
        Some(why) => {
            skip(&why);
            false
        }
        None => true,
    }
}

/// A box namespace whose `eth0` (MTU 1400) is the veth to a peer namespace:
/// 10.251.`net`.2/24 and fd00:251:`net`::2/64, default route via the peer's .1.
fn veth_pair(tag: &str, net: u8) -> (Netns, Netns, String) {
    let boxed = Netns::new(&format!("nb-{tag}-box")).unwrap_or_else(|e| panic!("{e}"));
    let peer = Netns::new(&format!("nb-{tag}-peer")).unwrap_or_else(|e| panic!("{e}"));
    boxed
        .veth("eth0", &peer, "veth0", &["mtu", "1400"])
        .unwrap_or_else(|e| panic!("{e}"));
    boxed.ip_ok(&["addr", "add", &format!("10.251.{net}.2/24"), "dev", "eth0"]);
    boxed.ip_ok(&[
        "addr",
        "add",
        &format!("fd00:251:{net}::2/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    peer.ip_ok(&["addr", "add", &format!("10.251.{net}.1/24"), "dev", "veth0"]);
    boxed.ip_ok(&["route", "add", "default", "via", &format!("10.251.{net}.1")]);
    let mac = boxed
        .ip_ok(&["-o", "link", "show", "eth0"])
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("eth0 has a MAC")
        .to_owned();
    (boxed, peer, mac)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn sandbox_takes_the_links_and_their_configuration() {
    if !can_run() {
        return;
    }
    let (boxed, _peer, mac) = veth_pair("take", 201);
    let scratch = Scratch::new("take");
    let dir = &scratch.0;
    let log = dir.join("log");
    let ready = dir.join("ready");
    let child = boxed
        .command_with(
            &runsc_rs_bin(),
            &[
                "do",
                "--network",
                "sandbox",
                "--debug-log",
                log.to_str().unwrap(),
                "--",
                "/bin/sh",
                "-c",
                // Waits for the test to have looked at the host side.
                &format!(
                    "echo in sandbox; while [ ! -e {0} ]; do sleep 0.05; done",
                    ready.display()
                ),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the sandbox to take eth0", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("eth0 taken"))
    });
    // While the sandbox runs the host kernel has no address on the link (so only the sentry
    // answers for them); the link stays up.
    let during = boxed.addresses("eth0");
    let link = boxed.ip_ok(&["-o", "link", "show", "eth0"]);
    std::fs::write(&ready, "").unwrap();
    let out = finish(child);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in sandbox\n");
    assert_eq!(during, "", "the host kept addresses on the taken link");
    assert!(link.contains(",UP"), "{link}");

    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("network sandbox: ").map(|(_, rest)| rest))
        .collect();
    let link_line = lines
        .iter()
        .find(|l| l.starts_with("link 2 eth0 "))
        .unwrap_or_else(|| panic!("no link 2 eth0 in the log:\n{log}"));
    assert!(
        link_line.starts_with(&format!("link 2 eth0 mac {mac} mtu 1400 ")),
        "{link_line}"
    );
    for addr in ["10.251.201.2/24", "fd00:251:201::2/64", "fe80::"] {
        assert!(link_line.contains(addr), "{addr} missing: {link_line}");
    }
    for route in [
        "route 0.0.0.0/0 via 10.251.201.1 link 2 metric 0",
        "route 10.251.201.0/24 link 2 metric 0",
        "route fd00:251:201::/64 link 2 metric 256",
    ] {
        assert!(lines.contains(&route), "{route} missing:\n{log}");
    }
    assert!(lines.contains(&"left to the host: lo (loopback)"), "{log}");
}

#[test]
fn host_mode_reads_the_namespace_and_changes_nothing() {
    if !can_run() {
        return;
    }
    let (boxed, _peer, _) = veth_pair("host", 202);
    let before = boxed.addresses("eth0");
    let scratch = Scratch::new("host");
    let dir = &scratch.0;
    let log = dir.join("log");
    let child = boxed
        .command_with(
            &runsc_rs_bin(),
            &[
                "do",
                "--network",
                "host",
                "--debug-log",
                log.to_str().unwrap(),
                "--",
                "/bin/true",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("network host: link 2 eth0 ") && log.contains("10.251.202.2/24"),
        "{log}"
    );
    assert!(
        log.contains("network host: route 0.0.0.0/0 via 10.251.202.1 link 2"),
        "{log}"
    );
    assert_eq!(boxed.addresses("eth0"), before);
}

fn run_failing(boxed: &Netns, wrap: &[&str], args: &[&str]) -> String {
    let bin = runsc_rs_bin();
    let out = if wrap.is_empty() {
        boxed.command_with(&bin, args).output().unwrap()
    } else {
        let mut all: Vec<&str> = wrap[1..].to_vec();
        all.push(bin.to_str().unwrap());
        all.extend_from_slice(args);
        boxed
            .command_with(Path::new(wrap[0]), &all)
            .output()
            .unwrap()
    };
    assert!(!out.status.success(), "succeeded: {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn sandbox_errors_say_what_they_found() {
    if !can_run() {
        return;
    }
    let (boxed, _peer, _) = veth_pair("errors", 203);
    let args = ["do", "--network", "sandbox", "--", "/bin/true"];

    // Not root: the message names the capability, and nothing is taken.
    let before = boxed.addresses("eth0");
    let err = run_failing(
        &boxed,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
        &args,
    );
    assert!(err.contains("CAP_NET_"), "{err}");
    assert_eq!(boxed.addresses("eth0"), before);

    // No usable link: says which links it saw and why it left them.
    boxed.ip_ok(&["link", "set", "eth0", "down"]);
    let err = run_failing(&boxed, &[], &args);
    assert!(
        err.contains("no link the sandbox can take")
            && err.contains("lo (loopback)")
            && err.contains("eth0 (down)"),
        "{err}"
    );

    let err = run_failing(
        &boxed,
        &[],
        &["do", "--network", "bogus", "--", "/bin/true"],
    );
    assert!(err.contains("invalid value 'bogus'"), "{err}");
}

/// The OCI CLI: a spec naming a network namespace starts the sandbox there, and the default
/// `--network sandbox` takes its links.
#[test]
fn oci_cli_takes_the_links_of_the_specs_namespace() {
    if !can_run() {
        return;
    }
    let (boxed, _peer, _) = veth_pair("oci", 204);
    let scratch = Scratch::new("oci");
    let dir = &scratch.0;
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    let ready = dir.join("ready");
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "args": ["/bin/sh", "-c", format!(
                "while [ ! -e {0} ]; do sleep 0.05; done; echo done", ready.display())],
            "cwd": "/",
            "env": ["PATH=/usr/bin:/bin"],
            "user": {"uid": 0, "gid": 0}
        },
        "root": {"path": "/", "readonly": true},
        "mounts": [{
            "destination": dir.to_str().unwrap(),
            "type": "bind",
            "source": dir.to_str().unwrap(),
            "options": ["rbind"]
        }],
        "linux": {"namespaces": [
            {"type": "pid"},
            {"type": "network", "path": format!("/run/netns/{}", boxed.name)},
            {"type": "mount"}
        ]}
    });
    std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    let id = format!("nb-{}", std::process::id());
    let root = dir.join("state");
    let child = Command::new(runsc_rs_bin())
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the sandbox to take eth0", || {
        boxed.addresses("eth0").is_empty()
    });
    std::fs::write(&ready, "").unwrap();
    let out = finish(child);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
}

/// The host system calls `syscalls --host --network MODE` lists.
fn listed(mode: &str) -> BTreeSet<String> {
    let out = Command::new(runsc_rs_bin())
        .args(["syscalls", "--host", "--network", mode])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("network {mode})")),
        "summary names another mode:\n{text}"
    );
    host_calls_listed(&text)
}

/// Each `--network` mode installs the allowlist `syscalls --host --network MODE` prints; the
/// sandbox's own stack adds to loopback's only the calls of the loopback forwarder, host
/// sockets add theirs.
#[test]
fn each_network_mode_installs_the_list_syscalls_prints() {
    if !can_run() {
        return;
    }
    let (boxed, _peer, _) = veth_pair("seccomp", 205);
    let scratch = Scratch::new("seccomp");
    let none = listed("none");
    for mode in ["sandbox", "host"] {
        let log = scratch.0.join(format!("{mode}.log"));
        let child = boxed
            .command_with(
                &runsc_rs_bin(),
                &[
                    "do",
                    "--network",
                    mode,
                    "--debug-log",
                    log.to_str().unwrap(),
                    "--",
                    "/bin/true",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish(child);
        let text = std::fs::read_to_string(&log).unwrap();
        let installed = host_calls_installed(&text);
        let printed = listed(mode);
        assert_eq!(installed, printed, "--network {mode}");
        match mode {
            // The sandbox's own stack adds only what forwarding the host's loopback to
            // its listeners needs (net/forward.rs).
            "sandbox" => {
                let forwarding: BTreeSet<String> =
                    ["accept4", "bind", "listen", "shutdown", "socket"]
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect();
                assert_eq!(printed, &none | &forwarding);
            }
            _ => assert!(printed.is_superset(&none) && printed.contains("socket")),
        }
        // The sandbox left the link without addresses; the next mode reads it as it was.
        boxed.ip_ok(&["addr", "replace", "10.251.205.2/24", "dev", "eth0"]);
    }
}
