//! End to end: a real containerd (started here under a temporary root) runs containers with
//! `--runtime io.containerd.runsc-rs.v2`, and where runc is installed the same sequences with
//! `--runtime io.containerd.runc.v2` for comparison.
//!
//! The image is built locally (`tests/e2e/build-image.sh`: the static busybox plus Debian's
//! bash, env and cat with their libraries and loader) and imported with `ctr images import`.
//! Needs root, `containerd` and `ctr` on PATH and a static busybox (`/bin/busybox`, Debian's
//! busybox-static); the terminal check needs tmux. Prints `SKIPPED: reason` otherwise. Builds
//! the shim binary itself (`cargo build --release -p shim`) so a plain `cargo test --release`
//! is enough.

mod e2e_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runsc_rs_tests::tmux::Tmux;

use e2e_common::{mounts_under, on_path, skip, start_for_test, Env, RUNC_RUNTIME, RUNTIME};

const IMAGE: &str = "docker.io/library/runsc-rs-e2e:latest";
const NAMESPACE: &str = "runsc-rs-e2e";

#[test]
fn containerd_runs_containers_in_the_sandbox() {
    let env = match start_for_test(NAMESPACE, None, &[]) {
        Ok(env) => env,
        Err(reason) => return skip(&reason),
    };
    env.build_image(IMAGE, r#"["/bin/sh"]"#);

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

    // The same checks with runc where it is installed: "behaves as with runc".
    let runtimes: Vec<&str> = if on_path("runc") {
        vec![RUNTIME, RUNC_RUNTIME]
    } else {
        skip("runc is not installed: runsc-rs is not compared with it");
        vec![RUNTIME]
    };
    check_dynamic_programs(&env, &runtimes);
    check_stdin(&env, &runtimes);
    check_task_lifecycle(&env, &runtimes);
    check_terminal(&env, &runtimes);
    sandbox_death_is_a_task_exit(&env);
}

/// A short name for a runtime, for container ids.
fn short(runtime: &str) -> &'static str {
    if runtime == RUNTIME {
        "rs"
    } else {
        "runc"
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Debian's dynamically linked bash, env and cat run from the image, through the dynamic
/// loader and libraries copied next to them; bash reports the host's version.
fn check_dynamic_programs(env: &Env, runtimes: &[&str]) {
    let host = Command::new("/bin/bash")
        .args(["-c", "echo $BASH_VERSION"])
        .output()
        .expect("running the host's bash");
    let expected = format!("{}A=1\nroot:x:0:\n", text(&host.stdout));
    for runtime in runtimes {
        let id = format!("dyn-{}", short(runtime));
        let out = env.ctr(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            IMAGE,
            &id,
            "/usr/bin/bash",
            "-c",
            "echo $BASH_VERSION; /usr/bin/env -i A=1 /usr/bin/env; /usr/bin/cat /etc/group",
        ]);
        assert_eq!(
            text(&out.stdout),
            expected,
            "{runtime}: stderr {}\n--- containerd log ---\n{}",
            text(&out.stderr),
            env.log()
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{runtime}: {}",
            text(&out.stderr)
        );
    }
}

/// What a runtime did in [`check_task_lifecycle`]; equal for runc and runsc-rs.
#[derive(Debug, PartialEq, Eq)]
struct Lifecycle {
    /// `ps` run with `ctr task exec`: (PID, COMMAND) of the init and of `ps` itself.
    exec_ps: Vec<(String, String)>,
    /// States `ctr task ls` showed after pause and after resume.
    paused: (Option<String>, Option<String>),
    /// What the init's TERM trap wrote to the bind-mounted host directory.
    term_file: String,
    /// The init's exit status after `kill -s TERM` (its trap exits 0).
    term_exit: i32,
    /// Exit status of the exec'd process killed by `kill -a -s KILL`, as `ctr task exec`
    /// reported it, and of the init.
    kill_all: (Option<i32>, i32),
}

/// `ctr run -d`, `ctr task exec ... ps`, `ctr task ps`, pause/resume, metrics, `kill -s TERM`
/// seen by a trap in the container, `kill -a -s KILL` with an exec'd process running too,
/// `ctr task delete`, `ctr container rm`, for each runtime; the observable results must match.
fn check_task_lifecycle(env: &Env, runtimes: &[&str]) {
    let seen: Vec<Lifecycle> = runtimes
        .iter()
        .map(|runtime| task_lifecycle(env, runtime))
        .collect();
    for (runtime, lifecycle) in runtimes.iter().zip(&seen) {
        assert_eq!(
            lifecycle.term_file, "got-term\n",
            "{runtime}: {lifecycle:?}"
        );
        assert_eq!(lifecycle.term_exit, 0, "{runtime}: {lifecycle:?}");
        assert_eq!(
            lifecycle.kill_all,
            (Some(137), 137),
            "{runtime}: {lifecycle:?}"
        );
        let paused = (Some("PAUSED".to_owned()), Some("RUNNING".to_owned()));
        assert_eq!(lifecycle.paused, paused, "{runtime}: {lifecycle:?}");
    }
    if let [ours, runc] = &seen[..] {
        assert_eq!(ours, runc, "runsc-rs (left) and runc (right) differ");
    }
}

fn task_lifecycle(env: &Env, runtime: &str) -> Lifecycle {
    // A TERM trap in the init, reporting through a bind-mounted host directory.
    let id = format!("life-{}", short(runtime));
    let data = env.tmp.join(format!("{id}-data"));
    std::fs::create_dir_all(&data).unwrap();
    let bind = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        data.display()
    );
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        "--mount",
        &bind,
        IMAGE,
        &id,
        "/bin/sh",
        "-c",
        "trap 'echo got-term > /data/out; exit 0' TERM; echo ready > /data/ready; \
         while :; do sleep 1; done",
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !data.join("ready").exists() {
        assert!(
            Instant::now() < deadline,
            "{runtime}: the init never ran its script\n--- containerd log ---\n{}",
            env.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // busybox ps in the container lists its processes: the init as PID 1, `ps` itself, and
    // the loop's `sleep 1` (left out: it comes and goes).
    let ps = env.ctr_ok(&["task", "exec", "--exec-id", "e1", &id, "ps"]);
    let mut rows = ps.lines();
    let header: Vec<&str> = rows.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(
        header,
        ["PID", "USER", "COMMAND"],
        "{runtime}: ps said {ps:?}"
    );
    let exec_ps: Vec<(String, String)> = rows
        .filter_map(|row| {
            let mut fields = row.split_whitespace();
            let pid = fields.next()?.to_owned();
            let command = fields.skip(1).collect::<Vec<_>>().join(" ");
            Some((pid, command))
        })
        // Also `{exe} sleep 1`: caught between the exec of /proc/self/exe and busybox
        // naming itself, as Linux shows it too.
        .filter(|(_, command)| !command.ends_with("sleep 1"))
        .map(|(pid, command)| {
            // PIDs other than the init's differ between runtimes; keep the shape.
            if pid == "1" {
                (pid, command)
            } else {
                ("N".to_owned(), command)
            }
        })
        .collect();
    assert!(
        exec_ps
            .iter()
            .any(|(pid, c)| pid == "1" && c.starts_with("/bin/sh -c trap"))
            && exec_ps.iter().any(|(_, c)| c == "ps"),
        "{runtime}: ps said {ps:?}"
    );

    env.ctr_ok(&["task", "pause", &id]);
    let paused = env.task_status(&id);
    env.ctr_ok(&["task", "resume", &id]);
    let resumed = env.task_status(&id);
    let metrics = env.ctr_ok(&["task", "metrics", &id]);
    assert!(
        metrics.contains("memory.usage_in_bytes") && metrics.contains("pids.current"),
        "{runtime}: ctr task metrics said {metrics:?}"
    );

    env.ctr_ok(&["task", "kill", "-s", "TERM", &id]);
    assert!(
        env.wait_status(&id, "STOPPED", Duration::from_secs(15)),
        "{runtime}: the init did not stop after SIGTERM"
    );
    let term_file = std::fs::read_to_string(data.join("out")).unwrap_or_default();
    let term_exit = env.delete_task(&id);
    env.ctr_ok(&["containers", "rm", &id]);

    Lifecycle {
        exec_ps,
        paused: (paused, resumed),
        term_file,
        term_exit,
        kill_all: kill_all(env, runtime),
    }
}

/// Stdin through the shim, as runc's shim delivers it: every byte piped into `ctr run` reaches
/// the process before EOF (CloseIO comes right after the last write), and a detached
/// container's stdin stays open after `ctr run -d` exits.
fn check_stdin(env: &Env, runtimes: &[&str]) {
    let input = env.tmp.join("stdin-1MiB");
    let data: Vec<u8> = (0..1usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();
    for runtime in runtimes {
        for attempt in 0..3 {
            let id = format!("stdin-{}-{attempt}", short(runtime));
            let out = env
                .ctr_command(&["run", "--rm", "--runtime", runtime, IMAGE, &id, "cat"])
                .stdin(std::fs::File::open(&input).unwrap())
                .output()
                .expect("running ctr");
            assert!(out.status.success(), "{runtime}: ctr run {id} cat: {out:?}");
            assert!(
                out.stdout == data,
                "{runtime}: cat gave back {} of {} bytes of its stdin (attempt {attempt})",
                out.stdout.len(),
                data.len()
            );
        }

        // `ctr run -d` copies its stdin (a pipe this test keeps open) into the FIFO and exits:
        // that is no end of input, so `cat` keeps running.
        let id = format!("stdin-detached-{}", short(runtime));
        let mut ctr = env
            .ctr_command(&["run", "-d", "--runtime", runtime, IMAGE, &id, "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning ctr run -d");
        let held_stdin = ctr.stdin.take();
        assert!(ctr.wait().expect("waiting for ctr run -d").success());
        assert!(env.wait_status(&id, "RUNNING", Duration::from_secs(10)));
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            env.task_status(&id).as_deref(),
            Some("RUNNING"),
            "{runtime}: a detached container's stdin ended when ctr exited"
        );
        drop(held_stdin);
        env.ctr_ok(&["task", "kill", "-s", "KILL", &id]);
        assert!(
            env.wait_status(&id, "STOPPED", Duration::from_secs(15)),
            "{runtime}: {id} still {:?} after SIGKILL; ps: {}\n--- containerd log ---\n{}",
            env.task_status(&id),
            env.ctr_ok(&["task", "ps", &id]),
            env.log()
        );
        env.delete_task(&id);
        env.ctr_ok(&["containers", "rm", &id]);
    }
}

/// `ctr task kill -a -s KILL` on a task whose init has a child and which runs an exec'd
/// process: the exec'd process and the init die of SIGKILL, the task stops.
fn kill_all(env: &Env, runtime: &str) -> (Option<i32>, i32) {
    let id = format!("all-{}", short(runtime));
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        IMAGE,
        &id,
        "/bin/sh",
        "-c",
        "sleep 1000 & wait",
    ]);
    let mut exec = env
        .ctr_command(&["task", "exec", "--exec-id", "e2", &id, "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning ctr task exec");
    // The init, its `sleep 1000` and the exec'd `sleep 1000`.
    let expected_rows = 3;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ps;
    loop {
        ps = env.ctr_ok(&["task", "ps", &id]);
        if ps.lines().skip(1).count() >= expected_rows || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let header: Vec<&str> = ps
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["PID", "INFO"],
        "{runtime}: ctr task ps said {ps:?}"
    );
    let rows = ps.lines().skip(1).count();
    assert_eq!(rows, 3, "{runtime}: ctr task ps said {ps:?}");
    // The exec'd process is named by its exec id, as runc's shim names it.
    assert_eq!(
        ps.lines().filter(|l| l.contains("ExecID:e2")).count(),
        1,
        "{runtime}: ctr task ps said {ps:?}"
    );

    env.ctr_ok(&["task", "kill", "-a", "-s", "KILL", &id]);
    assert!(
        env.wait_status(&id, "STOPPED", Duration::from_secs(15)),
        "{runtime}: the task did not stop after kill -a -s KILL"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let exec_status = loop {
        if let Some(status) = exec.try_wait().expect("waiting for ctr task exec") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = exec.kill();
            let _ = exec.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let init_status = env.delete_task(&id);
    env.ctr_ok(&["containers", "rm", &id]);
    (exec_status, init_status)
}

/// Killing the sandbox process from the host: containerd sees the task exit, and delete and
/// rm then work with nothing of the container left: no sandbox, stub or shim process, no
/// mount under the test's root, no shim socket, no bundle.
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
    let pid = env
        .task_pid("t6")
        .expect("t6 listed with the sandbox's pid");
    // The sandbox is PID 1 of its own PID namespace; its stubs live there too.
    let pid_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("sandbox pid ns");
    let shims = env.shim_pids("t6");
    assert_eq!(shims.len(), 1, "one shim server for t6: {shims:?}");
    let socket = env
        .shim_socket("t6")
        .expect("t6's bundle names its shim socket");
    assert!(socket.exists(), "no shim socket at {}", socket.display());
    assert!(
        !mounts_under(&env.tmp).is_empty(),
        "t6's rootfs is not mounted under {}",
        env.tmp.display()
    );

    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -9 {pid}");
    assert!(
        env.wait_status("t6", "STOPPED", Duration::from_secs(10)),
        "t6 did not stop after its sandbox was killed"
    );
    assert_eq!(env.delete_task("t6"), 137, "the sandbox died of SIGKILL");
    env.ctr_ok(&["containers", "rm", "t6"]);

    // The shim exits after delete on its own time; give it a moment.
    let leftovers = || {
        let mut left = Vec::new();
        if Path::new(&format!("/proc/{pid}")).exists() {
            left.push(format!("sandbox process {pid}"));
        }
        left.extend(
            processes_in_pid_ns(&pid_ns)
                .into_iter()
                .map(|p| format!("process {p} in the sandbox's PID namespace")),
        );
        left.extend(
            env.shim_pids("t6")
                .into_iter()
                .map(|p| format!("shim process {p}")),
        );
        left.extend(
            mounts_under(&env.tmp)
                .into_iter()
                .map(|m| format!("mount {m}")),
        );
        if socket.exists() {
            left.push(format!("shim socket {}", socket.display()));
        }
        if env.bundle_dir("t6").exists() {
            left.push(format!("bundle {}", env.bundle_dir("t6").display()));
        }
        left
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leftovers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind after t6's sandbox was killed and t6 deleted: {:?}",
            leftovers()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Host processes in the PID namespace `ns` (a `/proc/PID/ns/pid` link target).
fn processes_in_pid_ns(ns: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_deref()
                == Some(ns)
        })
        .collect()
}

/// Drives `ctr run -t` in a tmux window, as a person at a terminal would: the shell in the
/// container has a terminal of the window's size (`/dev/pts/0`), a resize reaches it (ResizePty, SIGWINCH to
/// the foreground job, the new size in `stty size`), `^C` stops `sleep 100` but not the shell,
/// which runs what is typed next and exits with its code.
fn check_terminal(env: &Env, runtimes: &[&str]) {
    if !on_path("tmux") {
        return skip("terminal check: tmux is not installed");
    }
    for runtime in runtimes {
        terminal_session(env, runtime);
    }
}

fn terminal_session(env: &Env, runtime: &str) {
    let id = format!("tty-{}", short(runtime));
    let status_file: PathBuf = env.tmp.join(format!("{id}.status"));
    let tmux = Tmux {
        socket: env.tmp.join(format!("tmux-{id}.sock")),
        session: "e2e".to_owned(),
    };
    // `--foreground`: timeout otherwise puts ctr in a process group of its own, which is not the
    // terminal's foreground group, and ctr stops (SIGTTIN) reading the terminal.
    let session = format!(
        "timeout --foreground -k 5 120 ctr -a {} -n {NAMESPACE} run -t --rm --runtime {runtime} {IMAGE} {id} \
         /bin/sh; echo $? > {}",
        env.address.display(),
        status_file.display()
    );
    let started = tmux.command(&[
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "100",
        "-y",
        "30",
        &session,
    ]);
    assert!(
        started.status.success(),
        "tmux new-session: {}",
        text(&started.stderr)
    );

    let prompts = |s: &[String]| s.iter().filter(|l| l.starts_with("/ #")).count();
    tmux.wait_for("the shell's prompt", |s| prompts(s) >= 1);
    tmux.send(&["test -t 0 && echo on-a-tty; stty size", "Enter"]);
    tmux.wait_line("on-a-tty");
    tmux.wait_line("30 100");
    // The terminal is a pty of the container's own devpts, as runc makes it.
    tmux.send(&["echo name=$(busybox tty)", "Enter"]);
    tmux.wait_line("name=/dev/pts/0");

    // A foreground job that waits for SIGWINCH, then the new size.
    tmux.send(&[
        "sh -c 'trap \"echo got-winch; exit\" WINCH; echo waiting; while :; do sleep 0.2; done'",
        "Enter",
    ]);
    tmux.wait_line("waiting");
    let resized = tmux.command(&["resize-window", "-t", "e2e", "-x", "120", "-y", "40"]);
    assert!(
        resized.status.success(),
        "tmux resize-window: {}",
        text(&resized.stderr)
    );
    tmux.wait_line("got-winch");
    tmux.send(&["stty size", "Enter"]);
    tmux.wait_line("40 120");

    // ^C interrupts the foreground sleep; the shell carries on.
    tmux.send(&["sleep 100", "Enter"]);
    // Wait until `sleep 100` runs: a ^C typed before it is the foreground job would reach
    // the shell instead, and the sleep would then run its full 100 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in 0.. {
        let ps = env.ctr(&["task", "exec", "--exec-id", &format!("ps{n}"), &id, "ps"]);
        if text(&ps.stdout).lines().any(|l| l.ends_with(" sleep 100")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{runtime}: `sleep 100` never ran; the terminal shows:\n{}",
            tmux.screen().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = prompts(&tmux.screen());
    tmux.send(&["C-c"]);
    tmux.wait_for("a prompt after ^C", |s| prompts(s) > before);
    tmux.send(&["echo still-here", "Enter"]);
    tmux.wait_line("still-here");

    tmux.send(&["exit 3", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        if status.ends_with('\n') {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{runtime}: ctr run -t did not exit after `exit 3`; the terminal shows:\n{}",
            tmux.screen().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.trim(), "3", "{runtime}: exit status of ctr run -t");
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
    // The sandbox root holds nothing but `proc`: a procfs of the sandbox's own processes
    // only (`subset=pid`: no /proc/sys, no sysrq-trigger), for connecting to host sockets
    // through /proc/self/fd.
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .expect("listing the sandbox root")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        root.is_empty() || root == ["proc"],
        "the sandbox root holds more than its private procfs: {root:?}"
    );
    if !root.is_empty() {
        let mountinfo = proc_file(&pid, "mountinfo");
        let proc_mount = mountinfo
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/proc"))
            .unwrap_or_else(|| panic!("no mount at the sandbox's /proc: {mountinfo}"));
        assert!(
            proc_mount.contains(" - proc ") && proc_mount.contains("subset=pid"),
            "the sandbox's /proc is not a procfs of process directories only: {proc_mount}"
        );
    }
}
