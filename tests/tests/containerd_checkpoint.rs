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
//!
//! Needs what `containerd_e2e.rs` needs; prints `SKIPPED: reason` otherwise.

mod e2e_common;

use std::time::{Duration, Instant};

use e2e_common::{skip, start_for_test, Env, RUNTIME};

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
}
