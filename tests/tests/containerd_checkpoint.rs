//! End to end: checkpoint and restore of a task through a real containerd (1.6) and `ctr`,
//! with `--runtime io.containerd.runsc-rs.v2` (the shim's Task.Checkpoint and its restore at
//! Create).
//!
//! The container counts in a shell variable and writes the count to a file in its `/dev/shm`
//! (a tmpfs of the sentry's, saved in the image); `ctr task exec ... cat` reads it. A
//! restored container whose count starts at or above the one seen before the checkpoint
//! continued the old shell (a fresh one would start at 1); one that advances runs.
//!
//! containerd 1.6 offers two ways in. `ctr container checkpoint --task ID REF` pauses the task,
//! has the shim write the image into a directory containerd then packs into its content
//! store (with the spec and the runtime's name), and resumes the task; `ctr container
//! restore --live NEW REF` makes a new container from that image and creates its task with
//! the unpacked image (CreateTaskRequest.checkpoint), which the shim restores at Start.
//! `ctr task checkpoint ID` does the same first half and names the image it made. (`--exit`
//! of `ctr task checkpoint` only reaches runc's runtimes: ctr sends no options to others.)
//! A task of `ctr run -t` is checkpointed the same way; ctr 1.6 restores it without a
//! terminal and leaves, and `ctr task attach` then reaches its new one (the shim's pty).
//!
//! Needs what `containerd_e2e.rs` needs; prints `SKIPPED: reason` otherwise.

mod e2e_common;

use std::time::{Duration, Instant};

use e2e_common::{on_path, skip, start_for_test, Env, RUNTIME};
use runsc_rs_tests::tmux::Tmux;

const IMAGE: &str = "docker.io/library/runsc-rs-ckpt:latest";
const NAMESPACE: &str = "runsc-rs-ckpt";

/// The counter: a shell variable, written to /dev/shm/n ten times a second.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/n; sleep 0.1; done";

/// The count task `id` last wrote, if it could be read.
fn count(env: &Env, id: &str, exec: &str) -> Option<u64> {
    let out = env.ctr(&["task", "exec", "--exec-id", exec, id, "cat", "/dev/shm/n"]);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Waits until task `id`'s count reaches `at_least`; returns it. Panics after 20 s.
fn wait_count(env: &Env, id: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        if let Some(c) = count(env, id, &format!("w{n}")) {
            if c >= at_least {
                return c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{id}'s count never reached {at_least}\n--- containerd log ---\n{}",
            env.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kill_and_remove(env: &Env, id: &str) {
    env.ctr_ok(&["task", "kill", "-s", "KILL", id]);
    assert!(
        env.wait_status(id, "STOPPED", Duration::from_secs(10)),
        "{id} did not stop after SIGKILL"
    );
    env.delete_task(id);
    env.ctr_ok(&["containers", "rm", id]);
}

/// Restores `ref` as container `id` and checks that its count goes on from `before` or
/// later, and keeps going.
fn restore_and_check(env: &Env, reference: &str, id: &str, before: u64) {
    let begin = Instant::now();
    env.ctr_ok(&["containers", "restore", "--live", id, reference]);
    assert_eq!(env.task_status(id).as_deref(), Some("RUNNING"));
    let first = wait_count(env, id, 1);
    // A fresh shell would count from 1: after the time it took, far below `before`.
    let fresh = u64::try_from(begin.elapsed().as_millis() / 100).unwrap() + 1;
    assert!(
        first >= before && before > fresh + 5,
        "{id}: count {first} after restore, {before} before the checkpoint \
         (a fresh start would be near {fresh})"
    );
    let later = wait_count(env, id, first + 3);
    assert!(later > first);
}

#[test]
fn containerd_checkpoints_and_restores_a_task() {
    let env = match start_for_test(NAMESPACE, None, &[]) {
        Ok(env) => env,
        Err(reason) => return skip(&reason),
    };
    env.build_image(IMAGE, r#"["/bin/sh"]"#);

    // The task route names the image it made; the task goes on. (On a container of its
    // own: containerd 1.6 stores the spec with every checkpoint and fails a second
    // checkpoint of one container with "content sha256:...: already exists".)
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "c0",
        "/bin/sh",
        "-c",
        COUNTER,
    ]);
    let early = wait_count(&env, "c0", 3);
    let named = env.ctr_ok(&["task", "checkpoint", "c0"]);
    let named = named.trim();
    assert!(!named.is_empty(), "ctr task checkpoint named no image");
    let images = env.ctr_ok(&["images", "ls", "-q"]);
    assert!(images.lines().any(|l| l == named), "images: {images}");
    assert_eq!(env.task_status("c0").as_deref(), Some("RUNNING"));
    wait_count(&env, "c0", early + 3);
    kill_and_remove(&env, "c0");

    // The container route: the image with the task, the spec and the runtime.
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "c1",
        "/bin/sh",
        "-c",
        COUNTER,
    ]);
    // Long enough that a restarted counter could not catch up within the checks below.
    let before = wait_count(&env, "c1", 40);
    env.ctr_ok(&["containers", "checkpoint", "--task", "c1", "ckpt/c1:1"]);
    let images = env.ctr_ok(&["images", "ls", "-q"]);
    assert!(images.lines().any(|l| l == "ckpt/c1:1"), "images: {images}");
    // containerd paused the task for the checkpoint and resumed it: it counts on.
    assert_eq!(env.task_status("c1").as_deref(), Some("RUNNING"));
    wait_count(&env, "c1", before + 3);

    // The restored spec names c1's cgroup: c1 goes first.
    kill_and_remove(&env, "c1");

    // Two restores from one image, one after the other.
    restore_and_check(&env, "ckpt/c1:1", "c2", before);
    kill_and_remove(&env, "c2");
    restore_and_check(&env, "ckpt/c1:1", "c3", before);
    kill_and_remove(&env, "c3");

    // A task the image cannot hold (an open /proc/[pid]/ns/mnt file): the checkpoint fails with
    // the sentry's reason, and the task runs on (containerd resumes it).
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "c4",
        "/bin/sh",
        "-c",
        "exec 3</proc/self/ns/mnt; exec sleep 100",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let out = env.ctr(&["containers", "checkpoint", "--task", "c4", "ckpt/c4:1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot checkpoint"),
        "checkpoint of c4: {stderr}"
    );
    assert_eq!(env.task_status("c4").as_deref(), Some("RUNNING"));
    let exec = env.ctr_ok(&["task", "exec", "--exec-id", "e1", "c4", "echo", "alive"]);
    assert_eq!(exec.trim(), "alive");
    kill_and_remove(&env, "c4");

    restore_with_a_terminal(&env);
}

/// The counter of [`restore_with_a_terminal`] on the shell's terminal: a line `n=N` about five
/// times a second, and `got=LINE` for each line typed.
const TERMINAL_COUNTER: &str =
    "i=0; while :; do i=$((i+1)); echo n=$i; read -t 0.2 x && echo got=$x; done";

/// A tmux window of its own (`session`) running `ctr COMMAND` for each of `commands` in turn,
/// then saying how the last one exited.
fn ctr_on_terminal(env: &Env, session: &str, commands: &[&str]) -> Tmux {
    let tmux = Tmux {
        socket: env.tmp.join(format!("tmux-{session}.sock")),
        session: session.to_owned(),
    };
    // `--foreground`: ctr stays in the terminal's foreground group and can read it.
    let ctr = format!(
        "timeout --foreground -k 5 120 ctr -a {} -n {NAMESPACE}",
        env.address.display()
    );
    let command = commands
        .iter()
        .map(|c| format!("{ctr} {c}"))
        .collect::<Vec<_>>()
        .join(" && ");
    let command = format!("{command}; echo ctr-exited=$?; sleep 60");
    let started = tmux.command(&[
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    assert!(
        started.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    tmux
}

/// The highest `n=N` line on `screen`.
fn last_count(screen: &[String]) -> u64 {
    screen
        .iter()
        .filter_map(|l| l.strip_prefix("n=")?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// A task with a terminal (`ctr run -t`, the shell counting on it), checkpointed and restored
/// with `ctr containers restore --live` and `ctr task attach` on another terminal: the
/// restored shell's count goes on from where it was on the new terminal (a fresh shell would
/// only show its prompt), and a line typed there reaches it.
fn restore_with_a_terminal(env: &Env) {
    if !on_path("tmux") {
        return skip("terminal restore: tmux is not installed");
    }
    let _log = LogOnPanic(env);
    let run = format!("run -t --runtime {RUNTIME} {IMAGE} t1 /bin/sh");
    let first = ctr_on_terminal(env, "t1", &[&run]);
    first.wait_for("the shell's prompt", |s| {
        s.iter().any(|l| l.starts_with("/ #"))
    });
    first.send(&[TERMINAL_COUNTER, "Enter"]);
    first.wait_for("the count on the first terminal", |s| last_count(s) >= 5);
    first.send(&["first", "Enter"]);
    first.wait_line("got=first");
    let before = last_count(&first.screen());
    env.ctr_ok(&["containers", "checkpoint", "--task", "t1", "ckpt/t1:1"]);
    first.wait_for("the count after the checkpoint", |s| {
        last_count(s) >= before + 3
    });
    end_on_terminal(env, "t1");

    // ctr 1.6 restores without a terminal and leaves at once; the restored task's console
    // is the shim's pty all the same, which `ctr task attach` reaches as a terminal.
    let restore = ["containers restore --live t2 ckpt/t1:1", "task attach t2"];
    let second = ctr_on_terminal(env, "t2", &restore);
    second.wait_for("the count going on on the new terminal", |s| {
        last_count(s) > before
    });
    let restored = last_count(&second.screen());
    second.send(&["second", "Enter"]);
    second.wait_line("got=second");
    second.wait_for("the count going on", |s| last_count(s) >= restored + 3);
    assert!(
        !second.screen().iter().any(|l| l == "got=first"),
        "the new terminal shows the old one's output"
    );
    end_on_terminal(env, "t2");
}

/// SIGKILLs task `id` of a `ctr run` or `ctr task attach` on a terminal, which deletes the
/// task once it has stopped; then removes the container.
fn end_on_terminal(env: &Env, id: &str) {
    env.ctr_ok(&["task", "kill", "-s", "KILL", id]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.task_status(id).is_some() {
        assert!(
            Instant::now() < deadline,
            "ctr did not delete task {id} after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    env.ctr_ok(&["containers", "rm", id]);
}

/// Prints containerd's log (the shim's and the sandbox's lines) when a check panics.
struct LogOnPanic<'a>(&'a Env);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- containerd log ---\n{}", self.0.log());
        }
    }
}
