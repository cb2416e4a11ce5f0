//! End to end through Kubernetes' CRI: containerd's CRI plugin with the runtime handler
//! `runsc-rs` runs a pod (its sandbox container plus three app containers) in one shim and one
//! sandbox process. A container in the pod's PID namespace sees the pod's processes; one with
//! a namespace of its own sees only its own, its shell as PID 1. The pod has its own network
//! namespace (CNI's host-device plugin moves one end of a veth pair in as `eth0`) and the sandbox
//! process runs in it, its own stack holding the pod's address (`--network sandbox`). The
//! veth's other end goes into a network namespace the test makes (10.250.77.1): from there a
//! server in the pod answers at the pod IP, and a container in the pod fetches from a server
//! there. CRI `PortForward` (what `kubectl port-forward` calls) reaches the pod's server through
//! containerd's streaming server on 127.0.0.1 with Kubernetes' port-forward WebSocket protocol.
//!
//! The CRI client is `tests/e2e/cri/pod.py` on Python's grpcio, against the subset of the
//! CRI API in `tests/e2e/cri/runtime.proto` (stubs generated here with grpc_tools). Needs
//! root, `containerd`, `ctr`, a static busybox, Debian's containernetworking-plugins and a
//! Python 3 with `grpc` and `grpc_tools` (Debian: python3-grpcio python3-grpc-tools; or
//! `pip install grpcio grpcio-tools`); prints
//! `SKIPPED: reason` otherwise.

mod e2e_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_common::{skip, start_for_test, Env};
use runsc_rs_tests::netns::Netns;

const NAMESPACE: &str = "k8s.io";
const IMAGE: &str = "docker.io/library/runsc-rs-e2e:latest";
const PAUSE_IMAGE: &str = "docker.io/library/runsc-rs-pause:latest";

/// The CRI plugin's configuration (containerd 1.6): see packaging/containerd-config.toml.
const CRI_CONFIG: &str = r#"  sandbox_image = "docker.io/library/runsc-rs-pause:latest"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc-rs]
      runtime_type = "io.containerd.runsc-rs.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{tmp}/cni/conf"
"#;

/// Debian's containernetworking-plugins put the CNI plugins here.
const CNI_HOST_DEVICE: &str = "/usr/lib/cni/host-device";

/// The pod network: one end of a veth pair the test makes, moved into the pod's namespace as
/// `eth0` with a fixed address (the CRI plugin wants an `eth0` with an IP). Nothing else of the
/// host's network changes: no bridge, route or forwarding setting.
fn cni_conflist(device: &str) -> String {
    format!(
        r#"{{"cniVersion":"0.4.0","name":"runsc-rs-e2e","plugins":[{{"type":"host-device","device":"{device}","ipam":{{"type":"static","addresses":[{{"address":"10.250.77.2/24"}}]}}}}]}}"#
    )
}

/// A veth pair of the host (`NAME` and `NAMEp`), deleted on drop. (A dummy device would do,
/// but not every kernel has the dummy driver; veth is everywhere containers are.)
struct VethPair(String);

impl VethPair {
    fn new(name: &str) -> VethPair {
        let peer = format!("{name}p");
        let ok = Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", &peer])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip link add {name} type veth failed");
        VethPair(name.to_owned())
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The address the test's end of the pod link has, in a namespace of the test's own.
const OUTSIDE_ADDR: &str = "10.250.77.1";
/// The pod's address (the CNI configuration's static IPAM).
const POD_ADDR: &str = "10.250.77.2";

/// A process the test started (a server in its namespace), killed and reaped on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The network namespaces the CRI plugin has made (`/var/run/netns/cni-*`).
fn cni_netns() -> Vec<PathBuf> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("cni-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The inode of a namespace file (`/proc/PID/ns/net` or a bind-mounted `/var/run/netns/X`).
fn ns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// A Python 3 that has grpcio and grpc_tools.
fn python_with_grpc() -> Option<PathBuf> {
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|py| {
            Command::new(py)
                .args(["-c", "import grpc, grpc_tools.protoc"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
}

/// Host processes running the shim binary in `shim_dir`: (shim servers, sandboxes). A
/// sandbox is a `sandbox` process started by a shim; the processes the sentry forks itself
/// (the platform's zygote, stub factories, stubs) share its binary but not its parent.
fn shim_processes(shim_dir: &Path) -> (usize, usize) {
    let exe = shim_dir.join("containerd-shim-runsc-rs-v2");
    let mut shims = Vec::new();
    let mut sandbox_parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.path();
        if std::fs::read_link(pid.join("exe")).ok().as_deref() != Some(exe.as_path()) {
            continue;
        }
        let cmdline = std::fs::read(pid.join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let own = entry.file_name().to_string_lossy().into_owned();
        match args.get(1).copied() {
            Some(b"sandbox") => sandbox_parents.push(parent_pid(&pid)),
            _ if args.iter().any(|a| *a == b"-address") => shims.push(own),
            _ => {}
        }
    }
    let sandboxes = sandbox_parents
        .iter()
        .filter(|p| p.as_ref().is_some_and(|p| shims.contains(p)))
        .count();
    (shims.len(), sandboxes)
}

/// The parent PID of the process at `/proc/PID` (field 4 of its `stat`).
fn parent_pid(proc_dir: &Path) -> Option<String> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1).map(str::to_owned)
}

fn run_pod_py(python: &Path, env: &Env, stubs: &Path, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/cri/pod.py");
    let out = Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(python)
        .arg(&script)
        .arg(stubs)
        .arg(&env.address)
        .args(args)
        .output()
        .expect("running pod.py");
    assert!(
        out.status.success(),
        "pod.py {args:?} failed: {}{}\n--- containerd log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.log()
    );
    serde_json::from_slice(&out.stdout).expect("pod.py prints JSON")
}

#[test]
fn cri_pod_runs_in_one_sandbox() {
    let Some(python) = python_with_grpc() else {
        return skip("no Python 3 with grpcio and grpc_tools (python3-grpcio python3-grpc-tools)");
    };
    if !Path::new(CNI_HOST_DEVICE).is_file() {
        return skip("no CNI host-device plugin (install containernetworking-plugins)");
    }
    let env = match start_for_test(NAMESPACE, Some(CRI_CONFIG), &["ip"]) {
        Ok(env) => env,
        Err(reason) => return skip(&reason),
    };
    // The CRI plugin watches its CNI configuration directory and is ready once a network
    // is configured there.
    let conf = env.tmp.join("cni/conf");
    std::fs::create_dir_all(&conf).unwrap();
    let device = VethPair::new(&format!("rsrs{}", std::process::id() % 100_000));
    std::fs::write(
        conf.join("10-runsc-rs-e2e.conflist"),
        cni_conflist(&device.0),
    )
    .unwrap();
    // The veth's other end goes into a namespace of the test's own, with the pod network's
    // other address: the only place traffic to and from the pod goes.
    let outside = Netns::new("cri").unwrap_or_else(|e| panic!("{e}"));
    let peer = format!("{}p", device.0);
    runsc_rs_tests::netns::ip(&["link", "set", &peer, "netns", &outside.name])
        .unwrap_or_else(|e| panic!("{e}"));
    outside
        .ip(&["addr", "add", &format!("{OUTSIDE_ADDR}/24"), "dev", &peer])
        .and_then(|_| outside.ip(&["link", "set", &peer, "up"]))
        .unwrap_or_else(|e| panic!("{e}"));
    // A server there, for a container in the pod to fetch from.
    let www = env.tmp.join("outside-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("outside.txt"), "from-the-test-namespace\n").unwrap();
    let _outside_server = Reaped(
        outside
            .command(&python)
            .args([
                "-m",
                "http.server",
                "8000",
                "--bind",
                OUTSIDE_ADDR,
                "--directory",
            ])
            .arg(&www)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting python3 -m http.server"),
    );
    let netns_before = cni_netns();
    env.build_image(IMAGE, r#"["/bin/sh"]"#);
    env.build_image(PAUSE_IMAGE, r#"["/bin/sleep","2147483"]"#);

    let stubs = env.tmp.join("cri-stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let proto_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/cri");
    let generated = Command::new(&python)
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", proto_dir.display()))
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .arg("runtime.proto")
        .status()
        .expect("running grpc_tools.protoc");
    assert!(generated.success(), "generating the CRI stubs failed");

    let logs = env.tmp.join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let up = run_pod_py(
        &python,
        &env,
        &stubs,
        &[
            "up",
            "runsc-rs",
            IMAGE,
            logs.to_str().unwrap(),
            &format!("http://{OUTSIDE_ADDR}:8000/outside.txt"),
        ],
    );
    let field = |k: &str| up[k].as_str().unwrap_or_default().to_owned();
    assert_eq!(field("c1_state"), "CONTAINER_RUNNING", "{up}");
    assert_eq!(field("c2_state"), "CONTAINER_EXITED", "{up}");
    assert_eq!(up["c2_exit"].as_i64(), Some(5), "{up}");
    let log = |c: &str| up["logs"][c].as_str().unwrap_or_default().to_owned();
    assert!(log("c1").contains(" stdout F one"), "c1 log: {up}");
    assert!(log("c2").contains(" stdout F two"), "c2 log: {up}");
    assert_eq!(field("c3_state"), "CONTAINER_RUNNING", "{up}");
    assert_eq!(field("c4_state"), "CONTAINER_RUNNING", "{up}");
    // The pod reaches a server outside it, across the pod link.
    assert!(
        log("c4").contains(" stdout F c4 fetched from-the-test-namespace\n"),
        "c4 did not fetch from {OUTSIDE_ADDR}: {up}"
    );

    // PID namespaces: c1 shares the pod's, whose init is the pause process; c3 has its own.
    // `ps` rows are "PID USER COMMAND"; busybox runs the ps applet in a forked shell, so
    // its row shows `{ps}` and the shell's command line.
    let ps_rows = |c: &str| -> Vec<String> {
        let log = log(c);
        let rows: Vec<String> = log
            .lines()
            .filter_map(|l| l.split_once(" stdout F ").map(|(_, line)| line.to_owned()))
            .skip_while(|l| !l.contains("PID"))
            .skip(1)
            .take_while(|l| *l != format!("{c} done"))
            .collect();
        assert!(!rows.is_empty(), "{c} printed no ps rows: {log}");
        rows
    };
    let pid_of_row = |row: &str| {
        row.split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok())
    };
    let c1_rows = ps_rows("c1");
    assert!(
        c1_rows
            .iter()
            .any(|r| pid_of_row(r) == Some(1) && r.ends_with("sleep 2147483")),
        "c1 sees the pod's pause process as PID 1: {c1_rows:?}"
    );
    assert!(
        c1_rows.iter().any(|r| r.contains("echo one")),
        "c1 sees itself: {c1_rows:?}"
    );
    assert!(
        !log("c1").contains(" stdout F c1 pid 1\n"),
        "c1's shell is not its namespace's init: {up}"
    );
    assert!(
        log("c3").contains(" stdout F c3 pid 1\n"),
        "c3's shell is PID 1: {up}"
    );
    let c3_rows = ps_rows("c3");
    assert!(
        c3_rows.iter().all(|r| r.contains("echo three")),
        "c3 sees only its shell and its ps: {c3_rows:?}"
    );
    assert!(
        c3_rows
            .iter()
            .any(|r| pid_of_row(r) == Some(1) && r.contains("echo three")),
        "{c3_rows:?}"
    );

    // One shim and one sandbox for the whole pod; each container's task reports the
    // sandbox process's PID.
    assert_eq!(
        shim_processes(&env.shim_dir),
        (1, 1),
        "one shim, one sandbox"
    );
    let tasks = env.ctr_ok(&["task", "ls"]);
    let pid_of = |id: &str| {
        tasks
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let pod_pid = pid_of(&field("pod"));
    assert!(pod_pid.is_some(), "the pod's task is not listed: {tasks}");
    assert_eq!(pid_of(&field("c1")), pod_pid, "{tasks}");

    // The sandbox runs in the network namespace the CRI plugin made for the pod.
    let pod_netns: Vec<PathBuf> = cni_netns()
        .into_iter()
        .filter(|p| !netns_before.contains(p))
        .collect();
    assert_eq!(pod_netns.len(), 1, "one new pod netns: {pod_netns:?}");
    let sandbox_net = PathBuf::from(format!(
        "/proc/{}/ns/net",
        pod_pid.as_deref().unwrap_or_default()
    ));
    assert_eq!(
        ns_inode(&sandbox_net),
        ns_inode(&pod_netns[0]),
        "the sandbox is not in the pod's network namespace {}",
        pod_netns[0].display()
    );
    assert_ne!(
        ns_inode(&sandbox_net),
        ns_inode(Path::new("/proc/self/ns/net")),
        "the sandbox shares the host's network namespace"
    );
    // The sandbox took the pod's link (`--network sandbox`): the link is there and up, and
    // its address is the sentry's now, not the host kernel's.
    let pod_ns_name = pod_netns[0].file_name().unwrap().to_str().unwrap();
    let link = Command::new("ip")
        .args(["-n", pod_ns_name, "-o", "addr", "show", "dev", "eth0"])
        .output()
        .expect("running ip");
    assert!(link.status.success(), "{link:?}");
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        !link.contains("10.250.77.2"),
        "the host kernel still has the pod address: {link}"
    );

    // From outside the pod, its server answers at the pod IP (c4 started it in the
    // background; give it a moment).
    let url = format!("http://{POD_ADDR}:8080/index.html");
    let deadline = Instant::now() + Duration::from_secs(15);
    let fetched = loop {
        let out = outside
            .command("curl")
            .args(["-sS", "--max-time", "3", &url])
            .output()
            .expect("running curl");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        String::from_utf8_lossy(&fetched.stdout),
        "from-the-pod\n",
        "GET {url} from the test's namespace: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );

    // CRI PortForward: containerd dials 127.0.0.1:8080 of the host kernel in the pod's
    // namespace, which the sentry relays to the pod's server.
    let pf = run_pod_py(
        &python,
        &env,
        &stubs,
        &["portforward", &field("pod"), "8080", "/index.html"],
    );
    assert!(
        pf["upgrade"].as_str().unwrap_or_default().contains(" 101 "),
        "{pf}"
    );
    assert_eq!(
        pf["headers"]["0"].as_i64(),
        Some(8080),
        "data channel's port: {pf}"
    );
    assert_eq!(
        pf["headers"]["1"].as_i64(),
        Some(8080),
        "error channel's port: {pf}"
    );
    assert_eq!(pf["error"].as_str(), Some(""), "{pf}");
    let reply = pf["reply"].as_str().unwrap_or_default();
    assert!(
        reply.starts_with("HTTP/1.") && reply.lines().next().unwrap_or_default().contains(" 200 "),
        "{pf}"
    );
    assert!(reply.ends_with("\r\n\r\nfrom-the-pod\n"), "{pf}");

    run_pod_py(
        &python,
        &env,
        &stubs,
        &[
            "down",
            &field("pod"),
            &field("c1"),
            &field("c2"),
            &field("c3"),
            &field("c4"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while shim_processes(&env.shim_dir) != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "shim or sandbox left after the pod was removed: {:?}",
            shim_processes(&env.shim_dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.ctr_ok(&["task", "ls", "-q"]).trim(), "");
    assert!(
        !pod_netns[0].exists(),
        "the pod's network namespace {} was left behind",
        pod_netns[0].display()
    );
}
