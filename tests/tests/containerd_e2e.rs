//! End to end: a real containerd (started here under a temporary root) runs containers with
//! `--runtime io.containerd.runsc-rs.v2`.
//!
//! Needs root, `containerd` and `ctr` on PATH and a static busybox (`/bin/busybox`, Debian's
//! busybox-static); prints `SKIPPED: reason` otherwise. Builds the shim binary itself
//! (`cargo build --release -p shim`) so a plain `cargo test --release` is enough.

mod e2e_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_common::{build_shim, is_root, on_path, skip, Env, RUNTIME};

const IMAGE: &str = "docker.io/library/runsc-rs-e2e:latest";
const NAMESPACE: &str = "runsc-rs-e2e";

#[test]
fn containerd_runs_containers_in_the_sandbox() {
    if !is_root() {
        return skip("containerd e2e needs root");
    }
    for tool in ["containerd", "ctr", "timeout", "tar", "sha256sum"] {
        if !on_path(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        return skip("no static /bin/busybox (install busybox-static)");
    }
    let shim_dir = build_shim();
    let env = Env::start(&shim_dir, NAMESPACE, None);

    let image = env.tmp.join("image.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/build-image.sh");
    let built = Command::new("sh")
        .arg(&script)
        .arg(&image)
        .arg(IMAGE)
        .arg(env.tmp.join("image-work"))
        .status()
        .expect("running build-image.sh");
    assert!(built.success(), "building the test image failed");
    env.ctr_ok(&["images", "import", image.to_str().unwrap()]);

    // Exit code and output of the container's init.
    let out = env.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        "t1",
        "/bin/sh",
        "-c",
        "echo hi; exit 7",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hi",
        "stderr: {}\n--- containerd log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        env.log()
    );
    assert_eq!(out.status.code(), Some(7));

    // The kernel the container sees is the sentry's, not the host's.
    let uname = env.ctr_ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        "t2",
        "uname",
        "-a",
    ]);
    let host_release = Command::new("uname")
        .arg("-r")
        .output()
        .expect("uname -r")
        .stdout;
    let host_release = String::from_utf8_lossy(&host_release).trim().to_owned();
    assert!(uname.contains("SMP runsc-rs"), "uname -a said {uname:?}");
    assert!(
        !uname.contains(&host_release),
        "uname -a shows the host's {host_release}"
    );

    // A long-running container: exec a second process into it, list it, kill it.
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "t3",
        "sleep",
        "100",
    ]);
    let exec = env.ctr_ok(&["task", "exec", "--exec-id", "e1", "t3", "echo", "from-exec"]);
    assert_eq!(exec.trim(), "from-exec");
    check_sandbox_isolation(&env, "t3");

    // Pause freezes the whole sandbox through its cgroup (v1 freezer); metrics read it.
    let freezer = Path::new("/sys/fs/cgroup/freezer")
        .join(NAMESPACE)
        .join("t3");
    env.ctr_ok(&["task", "pause", "t3"]);
    assert_eq!(env.task_status("t3").as_deref(), Some("PAUSED"));
    if freezer.exists() {
        let state = std::fs::read_to_string(freezer.join("freezer.state")).unwrap();
        assert_eq!(state.trim(), "FROZEN");
    }
    env.ctr_ok(&["task", "resume", "t3"]);
    assert_eq!(env.task_status("t3").as_deref(), Some("RUNNING"));
    let metrics = env.ctr_ok(&["task", "metrics", "t3"]);
    assert!(
        metrics.contains("memory.usage_in_bytes") && metrics.contains("pids.current"),
        "ctr task metrics t3 said {metrics:?}"
    );
    let ps = env.ctr_ok(&["task", "ps", "t3"]);
    assert!(ps.lines().count() >= 2, "ctr task ps t3 said {ps:?}");
    assert_eq!(env.task_status("t3").as_deref(), Some("RUNNING"));
    env.ctr_ok(&["task", "kill", "-s", "KILL", "t3"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.task_status("t3").as_deref() != Some("STOPPED") {
        assert!(Instant::now() < deadline, "t3 did not stop after SIGKILL");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.ctr_ok(&["task", "delete", "t3"]);
    env.ctr_ok(&["containers", "rm", "t3"]);
    assert!(!freezer.exists(), "the sandbox cgroup was left behind");

    // Bind mounts arrive in the sandbox as fds (directories, and single files open for I/O:
    // read-only for `ro`), tmpfs mounts are the sentry's.
    let shared = env.tmp.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("note"), "from-the-host\n").unwrap();
    let bind = format!(
        "type=bind,src={},dst=/data,options=rbind:ro",
        shared.display()
    );
    let ro_file = env.tmp.join("note-file");
    std::fs::write(&ro_file, "file-from-the-host\n").unwrap();
    let ro_file_bind = format!(
        "type=bind,src={},dst=/etc/note,options=rbind:ro",
        ro_file.display()
    );
    let rw_file = env.tmp.join("termination-log");
    std::fs::write(&rw_file, "").unwrap();
    let rw_file_bind = format!(
        "type=bind,src={},dst=/dev/termination-log,options=rbind:rw",
        rw_file.display()
    );
    let out = env.ctr_ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--mount",
        &bind,
        "--mount",
        "type=tmpfs,src=tmpfs,dst=/scratch,options=mode=0755",
        "--mount",
        &ro_file_bind,
        "--mount",
        &rw_file_bind,
        IMAGE,
        "t4",
        "/bin/sh",
        "-c",
        "cat /data/note; echo x > /data/new || echo ro-refused; \
         echo y > /scratch/f && cat /scratch/f; grep -c ' /scratch ' /proc/mounts; \
         cat /etc/note; echo z > /etc/note || echo note-ro-refused; \
         echo died-happily > /dev/termination-log && echo log-written",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"from-the-host"), "t4 said {out:?}");
    assert!(lines.contains(&"ro-refused"), "t4 said {out:?}");
    assert!(lines.contains(&"y"), "t4 said {out:?}");
    assert!(!shared.join("new").exists());
    assert!(lines.contains(&"file-from-the-host"), "t4 said {out:?}");
    assert!(lines.contains(&"note-ro-refused"), "t4 said {out:?}");
    assert_eq!(
        std::fs::read_to_string(&ro_file).unwrap(),
        "file-from-the-host\n"
    );
    assert!(lines.contains(&"log-written"), "t4 said {out:?}");
    assert_eq!(std::fs::read_to_string(&rw_file).unwrap(), "died-happily\n");

    check_terminal(&env);
    sandbox_death_is_a_task_exit(&env);
}

/// Killing the sandbox process from the host: containerd sees the task exit, and delete and
/// rm then work with nothing of the sandbox left running.
fn sandbox_death_is_a_task_exit(env: &Env) {
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "t6",
        "sleep",
        "100",
    ]);
    let tasks = env.ctr_ok(&["task", "ls"]);
    let pid: i32 = tasks
        .lines()
        .find(|l| l.split_whitespace().next() == Some("t6"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("t6 listed with the sandbox's pid");
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -9 {pid}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.task_status("t6").as_deref() != Some("STOPPED") {
        assert!(
            Instant::now() < deadline,
            "t6 did not stop after its sandbox was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    env.ctr_ok(&["task", "delete", "t6"]);
    env.ctr_ok(&["containers", "rm", "t6"]);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the killed sandbox {pid} is still there"
    );
}

/// Drives `ctr run -t` from a pty (python's `pty` module, as a person at a terminal would):
/// the shell in the container gets a terminal of the window size ctr passes on, `^C` stops
/// `sleep 100` but not the shell, which runs what is typed next and exits with its code.
fn check_terminal(env: &Env) {
    const DRIVER: &str = r##"
import fcntl, os, pty, select, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
# (what to wait for in the output, how often, what to type then)
steps = [
    (b"/ # ", 1, b"test -t 0 && echo on-a-tty; stty size; sleep 100\n"),
    (b"30 100", 1, b"\x03"),
    (b"/ # ", 2, b"echo hi; exit 3\n"),
]
out = b""
deadline = time.time() + 30
while time.time() < deadline:
    if steps and out.count(steps[0][0]) >= steps[0][1]:
        time.sleep(0.3)
        os.write(fd, steps.pop(0)[2])
    ready, _, _ = select.select([fd], [], [], 0.2)
    if not ready:
        continue
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"##;
    if !on_path("python3") {
        return skip("terminal check: python3 is not installed");
    }
    let out = Command::new("timeout")
        .args(["-k", "5", "40", "python3", "-c", DRIVER, "ctr", "-a"])
        .arg(&env.address)
        .args(["-n", NAMESPACE, "run", "-t", "--rm", "--runtime", RUNTIME])
        .args([IMAGE, "t5", "/bin/sh"])
        .stdin(Stdio::null())
        .output()
        .expect("running the pty driver");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"hi") && lines.contains(&"30 100"),
        "ctr run -t said {text:?} (stderr {})\n--- containerd log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        env.log()
    );
    assert!(
        lines.contains(&"on-a-tty"),
        "the shell has no terminal: {text:?}"
    );
    assert_eq!(out.status.code(), Some(3), "ctr run -t said {text:?}");
}

/// Reads `/proc/<pid>/<what>` of a host process.
fn proc_file(pid: &str, what: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{what}")).unwrap_or_default()
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// The sandbox process of running task `id`, seen from the host: its own namespaces, an
/// empty root, a seccomp filter, no_new_privs and only the directfs capabilities.
fn check_sandbox_isolation(env: &Env, id: &str) {
    let tasks = env.ctr_ok(&["task", "ls"]);
    let pid = tasks
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("task listed")
        .to_owned();
    let status = proc_file(&pid, "status");
    assert_eq!(status_field(&status, "Seccomp:"), "2", "{status}");
    assert_eq!(status_field(&status, "NoNewPrivs:"), "1", "{status}");
    // CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID: bits 0-4.
    assert_eq!(status_field(&status, "CapEff:"), "000000000000001f");
    assert_eq!(status_field(&status, "CapBnd:"), "000000000000001f");
    // PID 1 of its own PID namespace.
    let nspid = status_field(&status, "NSpid:");
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{status}");
    for ns in ["mnt", "pid", "ipc", "uts", "net"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns} namespace shared with the host");
    }
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .expect("listing the sandbox root")
        .collect();
    assert!(root.is_empty(), "the sandbox root is not empty: {root:?}");
}
