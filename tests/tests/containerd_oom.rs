//! End to end with a real containerd: where the shim places the sandbox process.
//!
//! - OOM: a container that needs more memory than its `--memory-limit` is killed by the
//!   host's OOM killer; containerd gets `/tasks/oom` for it before its `/tasks/exit`, and the
//!   exit status is 137, as with runc (compared in the same run when runc's shim is there).
//! - Network: `ctr run --with-ns network:PATH` puts the sandbox process in that namespace.
//!
//! Needs root, `containerd`, `ctr`, `ip` and a static busybox; prints `SKIPPED: reason`
//! otherwise. Both parts share one containerd (the harness's temporary directory is per
//! test process).

mod e2e_common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_common::{on_path, skip, start_for_test, Env, RUNTIME};

const IMAGE: &str = "docker.io/library/runsc-rs-e2e:latest";
const NAMESPACE: &str = "runsc-rs-e2e-oom";
const RUNC: &str = "io.containerd.runc.v2";

/// Needs more than its 64 MiB limit: busybox dd allocates its whole block and fills it.
const FILL_MEMORY: &str = "dd if=/dev/zero of=/dev/null bs=256M count=1";

#[test]
fn containerd_reports_oom_and_joins_pod_network() {
    let env = match start_for_test(NAMESPACE, None, &["ip"]) {
        Ok(env) => env,
        Err(reason) => return skip(&reason),
    };
    env.build_image(IMAGE, r#"["/bin/sh"]"#);

    oom_is_reported_before_the_exit(&env);
    sandbox_joins_the_pod_network(&env);
}

/// `ctr events` in the background, writing to a file.
struct Events {
    child: Child,
    path: std::path::PathBuf,
}

impl Events {
    fn start(env: &Env) -> Events {
        let path = env.tmp.join("events.log");
        let out = std::fs::File::create(&path).unwrap();
        let child = Command::new("ctr")
            .arg("-a")
            .arg(&env.address)
            .arg("events")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ctr events");
        // `ctr events` subscribes asynchronously; give it a moment before anything happens.
        std::thread::sleep(Duration::from_millis(500));
        Events { child, path }
    }

    /// The topics of the events of container `id` so far, in order, with their lines.
    fn of(&self, id: &str) -> Vec<(String, String)> {
        let needle = format!("\"container_id\":\"{id}\"");
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| {
                let topic = l.split_whitespace().find(|w| w.starts_with("/tasks/"))?;
                Some((topic.to_owned(), l.to_owned()))
            })
            .collect()
    }

    /// Waits until container `id` has a `/tasks/exit` event, then returns its events.
    fn until_exit(&self, id: &str) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.of(id);
            if events.iter().any(|(t, _)| t == "/tasks/exit") || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the memory filler under `runtime` as container `id`; returns its exit code and its
/// events.
fn run_out_of_memory(
    env: &Env,
    events: &Events,
    runtime: &str,
    id: &str,
) -> (Option<i32>, Vec<(String, String)>) {
    let out = env.ctr(&[
        "run",
        "--rm",
        "--runtime",
        runtime,
        "--memory-limit",
        "67108864",
        IMAGE,
        id,
        "sh",
        "-c",
        FILL_MEMORY,
    ]);
    eprintln!(
        "{runtime}: {} stdout {:?} stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), events.until_exit(id))
}

fn assert_oom_then_exit(runtime: &str, code: Option<i32>, events: &[(String, String)], env: &Env) {
    let topics: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    let oom = topics.iter().position(|t| *t == "/tasks/oom");
    let exit = topics.iter().position(|t| *t == "/tasks/exit");
    assert!(
        matches!((oom, exit), (Some(o), Some(e)) if o < e),
        "{runtime}: no /tasks/oom before /tasks/exit: {events:#?}\n--- containerd log ---\n{}",
        env.log()
    );
    let exit_line = &events[exit.unwrap()].1;
    assert!(
        exit_line.contains("\"exit_status\":137"),
        "{runtime}: {exit_line}"
    );
    assert_eq!(code, Some(137), "{runtime}: ctr run's exit code");
}

fn oom_is_reported_before_the_exit(env: &Env) {
    let events = Events::start(env);
    let (code, ours) = run_out_of_memory(env, &events, RUNTIME, "oom1");
    assert_oom_then_exit(RUNTIME, code, &ours, env);
    // What native Linux does with the same container.
    if on_path("runc") && on_path("containerd-shim-runc-v2") {
        let (code, runc) = run_out_of_memory(env, &events, RUNC, "oom-runc");
        assert_oom_then_exit(RUNC, code, &runc, env);
    } else {
        eprintln!("runc is not installed: not compared with runc");
    }
}

/// The namespace identity (`dev:inode`) of a namespace file.
fn ns_id(path: &str) -> String {
    let out = Command::new("stat")
        .args(["-L", "-c", "%d:%i", path])
        .output()
        .expect("running stat");
    assert!(out.status.success(), "stat {path}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes the named network namespace on drop.
struct NetNs(String);

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sandbox_joins_the_pod_network(env: &Env) {
    let name = format!("runsc-rs-e2e-{}", std::process::id());
    let added = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(added.success(), "ip netns add {name}");
    let netns = NetNs(name);
    let path = format!("/var/run/netns/{}", netns.0);
    let with_ns = format!("network:{path}");
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--with-ns",
        &with_ns,
        IMAGE,
        "t-net",
        "sleep",
        "100",
    ]);
    let tasks = env.ctr_ok(&["task", "ls"]);
    let pid = tasks
        .lines()
        .find(|l| l.split_whitespace().next() == Some("t-net"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("t-net listed")
        .to_owned();
    let sandbox_net = ns_id(&format!("/proc/{pid}/ns/net"));
    assert_eq!(
        sandbox_net,
        ns_id(&path),
        "the sandbox is not in the pod's network namespace"
    );
    assert_ne!(sandbox_net, ns_id("/proc/self/ns/net"));
    // Only the network: the other namespaces are still the sandbox's own.
    for ns in ["mnt", "pid", "ipc", "uts"] {
        assert_ne!(
            ns_id(&format!("/proc/{pid}/ns/{ns}")),
            ns_id(&format!("/proc/self/ns/{ns}")),
            "{ns} namespace shared with the host"
        );
    }
    env.ctr_ok(&["task", "kill", "-s", "KILL", "t-net"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.task_status("t-net").as_deref() != Some("STOPPED") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    env.ctr_ok(&["task", "delete", "t-net"]);
    env.ctr_ok(&["containers", "rm", "t-net"]);
}
