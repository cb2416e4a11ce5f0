//! Pause, resume and checkpoint of a running container through the OCI CLI (`runsc-rs pause`,
//! `resume`, `checkpoint`), over a bundle with a busybox-static rootfs as in `oci_cli.rs`.
//!
//! The workloads print to their stdout, which is a file of the test's own: a counter loop
//! shows whether the container's processes run (its last line advances) or are stopped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runsc_rs_tests::{runsc_rs_bin, static_busybox};

/// A fresh directory of this test's own, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "runsc-rs-ckpt-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// runsc-rs with a state directory of its own; `Drop` force-deletes what the test made.
struct Runtime {
    root: PathBuf,
    ids: Vec<String>,
}

impl Runtime {
    fn new(dir: &Path) -> Runtime {
        Runtime {
            root: dir.join("root"),
            ids: Vec::new(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runsc_rs_bin());
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs a command that starts nothing long-lived: (status, stdout + stderr).
    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = self.cmd(args).stdin(Stdio::null()).output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    /// `run -d` of `bundle` as `id`, the container's stdio going to `out`.
    fn run_detached(&mut self, bundle: &Path, id: &str, out: &Path) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .unwrap();
        let code = self
            .cmd(&["run", "-d", "--bundle", bundle.to_str().unwrap(), id])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap()
            .code();
        assert_eq!(code, Some(0), "run -d {id}");
        self.ids.push(id.to_owned());
    }

    /// `checkpoint --image-path image id`: (status, what it printed).
    fn checkpoint(&self, image: &Path, id: &str) -> (i32, String) {
        self.run(&["checkpoint", "--image-path", image.to_str().unwrap(), id])
    }

    /// `run -d` of `bundle` as `id` (stdio to `out`), waits until it prints "ready", then
    /// checkpoints it into `image`.
    fn start_and_checkpoint(&mut self, bundle: &Path, id: &str, out: &Path, image: &Path) {
        self.run_detached(bundle, id, out);
        assert!(
            wait_text(out, "ready", Duration::from_secs(30)),
            "{id}: never ready: {}",
            std::fs::read_to_string(out).unwrap_or_default()
        );
        let (code, text) = self.checkpoint(image, id);
        assert_eq!(code, 0, "{id}: checkpoint: {text}");
    }

    fn status(&self, id: &str) -> String {
        let (code, out) = self.run(&["state", id]);
        if code != 0 {
            return "gone".into();
        }
        let v: serde_json::Value = serde_json::from_str(&out).expect("state prints JSON");
        v["status"].as_str().unwrap().to_owned()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.run(&["delete", "--force", id]);
        }
    }
}

/// A bundle: `rootfs/bin/busybox` with its applets, and `spec`'s config with `args`.
fn bundle(dir: &Path, rt: &Runtime, busybox: &str, args: &[&str]) -> PathBuf {
    let bundle = dir.join("bundle");
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat", "nc", "dd"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let (code, _) = rt.run(&["spec", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "spec");
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(args);
    std::fs::write(&path, config.to_string()).unwrap();
    bundle
}

/// What most tests start from: a scratch directory, a runtime of its own and a busybox
/// bundle running `args`. Fields drop in order: the runtime deletes its containers before
/// the directory goes.
struct BusyboxContainer {
    rt: Runtime,
    bundle: PathBuf,
    scratch: Scratch,
}

/// A [`BusyboxContainer`] tagged `tag` (its directory's name) running `args`; None (the
/// test skips) without a static busybox.
fn busybox_container(tag: &str, args: &[&str]) -> Option<BusyboxContainer> {
    let busybox = static_busybox()?;
    let scratch = Scratch::new(tag);
    let rt = Runtime::new(scratch.path());
    let bundle = bundle(scratch.path(), &rt, busybox, args);
    Some(BusyboxContainer {
        rt,
        bundle,
        scratch,
    })
}

impl BusyboxContainer {
    /// A path in the scratch directory.
    fn file(&self, name: impl AsRef<Path>) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// Edits the bundle's `config.json`.
    fn configure(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let config = self.bundle.join("config.json");
        let mut value = read_json(&config);
        edit(&mut value);
        std::fs::write(&config, value.to_string()).unwrap();
    }
}

/// The shell counter: one line per tick, on stdout.
const COUNTER: &[&str] = &[
    "sh",
    "-c",
    "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done",
];

/// The last complete number the counter printed (0 before the first).
fn last_count(out: &Path) -> u64 {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the counter has reached `at_least`; returns its value.
fn wait_count(out: &Path, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = last_count(out);
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pause_stops_the_counter_and_resume_continues_it() {
    let Some(mut c) = busybox_container("pause", COUNTER) else {
        return;
    };
    let out = c.file("out");
    c.rt.run_detached(&c.bundle, "counter", &out);
    assert!(wait_count(&out, 3) >= 3, "the counter never ran");

    assert_eq!(
        c.rt.run(&["resume", "counter"]).0,
        1,
        "resume of a running one"
    );
    let (code, text) = c.rt.run(&["pause", "counter"]);
    assert_eq!(code, 0, "pause: {text}");
    assert_eq!(c.rt.status("counter"), "paused");
    let (_, listed) = c.rt.run(&["list"]);
    assert!(listed.contains("paused"), "list shows the state: {listed}");
    assert_eq!(
        c.rt.run(&["pause", "counter"]).0,
        1,
        "pause of a paused one"
    );
    let (code, text) = c.rt.run(&["delete", "counter"]);
    assert_eq!(code, 1, "delete of a paused one without --force");
    assert!(text.contains("paused"), "{text}");

    let frozen = last_count(&out);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        last_count(&out),
        frozen,
        "the counter advanced while paused"
    );

    let (code, text) = c.rt.run(&["resume", "counter"]);
    assert_eq!(code, 0, "resume: {text}");
    assert_eq!(c.rt.status("counter"), "running");
    let after = wait_count(&out, frozen + 3);
    assert!(after >= frozen + 3, "the counter did not continue: {after}");
    // It continued from its value: every number printed once, in order.
    let text = std::fs::read_to_string(&out).unwrap();
    let numbers: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "the counter skipped or repeated across the pause: {numbers:?}"
    );

    // A paused container can be killed (SIGKILL ends frozen tasks) and deleted.
    assert_eq!(c.rt.run(&["pause", "counter"]).0, 0);
    let (code, text) = c.rt.run(&["delete", "--force", "counter"]);
    assert_eq!(code, 0, "delete --force of a paused one: {text}");
    assert_eq!(c.rt.status("counter"), "gone");
}

/// The counter with a pipeline beside it whose pipe holds data nobody reads.
const COUNTER_AND_PIPE: &[&str] = &[
    "sh",
    "-c",
    "(echo piped-data | sleep 1000) & i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done",
];

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every number the counter printed, in order.
fn numbers(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

#[test]
fn checkpoint_writes_a_versioned_image_and_restore_checks_it() {
    let Some(mut c) = busybox_container("image", COUNTER_AND_PIPE) else {
        return;
    };
    let out = c.file("out");
    c.rt.run_detached(&c.bundle, "ck", &out);
    assert!(wait_count(&out, 3) >= 3, "the counter never ran");

    // --leave-running: an image, and the counter goes on from where it was.
    let image = c.file("image");
    let started = Instant::now();
    let (code, text) = c.rt.run(&[
        "checkpoint",
        "--image-path",
        image.to_str().unwrap(),
        "--leave-running",
        "ck",
    ]);
    let took = started.elapsed();
    assert_eq!(code, 0, "checkpoint --leave-running: {text}");
    assert_eq!(c.rt.status("ck"), "running");
    let header = read_json(&image.join("header.json"));
    assert_eq!(header["format_version"], 10, "{header}");
    let memory_bytes = header["memory_bytes"].as_u64().unwrap();
    assert!(memory_bytes > 0);
    assert_eq!(
        std::fs::metadata(image.join("memory.bin")).unwrap().len(),
        memory_bytes
    );
    let kernel = read_json(&image.join("kernel.json"));
    // The image says what it lacks.
    assert!(
        kernel["not_saved"].as_array().is_some_and(|l| l
            .iter()
            .any(|s| s.as_str().unwrap().contains("mount namespaces"))),
        "{}",
        kernel["not_saved"]
    );
    let tasks = kernel["tasks"].as_array().unwrap();
    // The shell, the subshell of the pipeline, sleep 1000, and the counter's sleep (or
    // not, between two ticks).
    assert!(tasks.len() >= 3, "tasks: {}", tasks.len());
    for t in tasks {
        assert_eq!(t["regs"].as_array().unwrap().len(), 27);
        assert!(!t["fp"].as_array().unwrap().is_empty());
    }
    // A task in `sleep 1000` keeps the rest of its sleep.
    assert!(
        tasks.iter().any(|t| t["sleep_remaining_ns"]
            .as_u64()
            .is_some_and(|ns| ns > 900_000_000_000)),
        "no task keeps the rest of sleep 1000"
    );
    let piped: Vec<serde_json::Value> = b"piped-data\n".iter().map(|&b| b.into()).collect();
    let pipe_kept = kernel["fd_tables"].as_array().unwrap().iter().any(|t| {
        t["fds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["file"]["Pipe"]["buffered"].as_array() == Some(&piped))
    });
    assert!(pipe_kept, "the pipe's buffered data is not in the image");
    eprintln!(
        "checkpoint --leave-running: {took:?}, memory {memory_bytes} bytes, kernel.json {} bytes",
        std::fs::metadata(image.join("kernel.json")).unwrap().len()
    );
    let at = last_count(&out);
    assert!(wait_count(&out, at + 3) >= at + 3, "the counter stopped");
    let n = numbers(&out);
    assert!(
        n.windows(2).all(|w| w[1] == w[0] + 1),
        "the counter skipped or repeated across the checkpoint: {n:?}"
    );

    // Restore reads the header: another format version is refused by name.
    let mut old = header.clone();
    old["format_version"] = 999.into();
    let other = c.file("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("header.json"), old.to_string()).unwrap();
    let (code, text) =
        c.rt.run(&["restore", "--image-path", other.to_str().unwrap(), "r1"]);
    assert_ne!(code, 0);
    assert!(text.contains("image format version 999"), "{text}");
    assert_eq!(
        c.rt.status("r1"),
        "gone",
        "a refused restore left a container"
    );

    // Without --leave-running the container stops, and nothing runs after the image.
    let image2 = c.file("image2");
    let (code, text) = c.rt.checkpoint(&image2, "ck");
    assert_eq!(code, 0, "checkpoint: {text}");
    assert_eq!(c.rt.status("ck"), "stopped");
    assert!(image2.join("header.json").exists());
    let at = last_count(&out);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(last_count(&out), at, "the counter ran after its checkpoint");
}

impl Runtime {
    /// `restore -d` of `image` over `bundle` as `id`, the container's stdio going to `out`:
    /// (status, what the command printed).
    fn restore_detached(
        &mut self,
        image: &Path,
        bundle: &Path,
        id: &str,
        out: &Path,
    ) -> (i32, String) {
        self.restore_detached_with(image, bundle, id, out, &[])
    }

    /// [`Runtime::restore_detached`] with `extra` arguments (`--console-socket PATH`).
    fn restore_detached_with(
        &mut self,
        image: &Path,
        bundle: &Path,
        id: &str,
        out: &Path,
        extra: &[&str],
    ) -> (i32, String) {
        let file = std::fs::File::create(out).unwrap();
        // Not a pipe: the detached container keeps the command's stderr open.
        let err_path = out.with_extension("err");
        let err = std::fs::File::create(&err_path).unwrap();
        let started = Instant::now();
        let status = self
            .cmd(&["restore", "-d"])
            .args(extra)
            .args([
                "--image-path",
                image.to_str().unwrap(),
                "--bundle",
                bundle.to_str().unwrap(),
                id,
            ])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .status()
            .unwrap();
        eprintln!("restore {id}: {:?}", started.elapsed());
        self.ids.push(id.to_owned());
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(&err_path).unwrap_or_default(),
        )
    }
}

/// Waits until `out` holds `text` (a whole last line, `"done\n"`, before an output is compared:
/// a write can reach the file in pieces).
fn wait_text(out: &Path, text: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::fs::read_to_string(out)
            .unwrap_or_default()
            .contains(text)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The counter, with a pipeline whose reader sleeps 6 s before reading what the writer put
/// in the pipe at once: checkpointed before the reader wakes, the data is in the pipe only.
const COUNTER_AND_SLOW_READER: &[&str] = &[
    "sh",
    "-c",
    "(echo piped-data | (sleep 6; cat)) & i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done",
];

#[test]
fn restore_continues_the_counter_and_the_pipe_twice_from_one_image() {
    let Some(mut c) = busybox_container("restore", COUNTER_AND_SLOW_READER) else {
        return;
    };
    let out = c.file("out");
    c.rt.run_detached(&c.bundle, "orig", &out);
    assert!(wait_count(&out, 3) >= 3, "the counter never ran");
    let image = c.file("image");
    let started = Instant::now();
    let (code, text) = c.rt.checkpoint(&image, "orig");
    eprintln!("checkpoint: {:?}", started.elapsed());
    assert_eq!(code, 0, "checkpoint: {text}");
    assert_eq!(c.rt.status("orig"), "stopped");
    let at = last_count(&out);
    assert!(
        !std::fs::read_to_string(&out)
            .unwrap()
            .contains("piped-data"),
        "the reader woke before the checkpoint (machine too slow?)"
    );

    for id in ["again1", "again2"] {
        let out = c.file(format!("out-{id}"));
        let (code, text) = c.rt.restore_detached(&image, &c.bundle, id, &out);
        assert_eq!(code, 0, "restore {id}: {text}");
        assert_eq!(c.rt.status(id), "running");
        let n = wait_count(&out, at + 5);
        assert!(n >= at + 5, "{id}: the counter did not continue: {n}");
        let printed = numbers(&out);
        assert_eq!(
            printed.first(),
            Some(&(at + 1)),
            "{id}: the counter did not continue from its value {at}: {printed:?}"
        );
        assert!(
            printed.windows(2).all(|w| w[1] == w[0] + 1),
            "{id}: the counter skipped or repeated: {printed:?}"
        );
        assert!(
            wait_text(&out, "piped-data", Duration::from_secs(20)),
            "{id}: the pipe's data did not reach its reader"
        );
        let (code, text) = c.rt.run(&["delete", "--force", id]);
        assert_eq!(code, 0, "delete {id}: {text}");
    }
}

/// Files in a tmpfs mount (`/dev/shm`) and in the root overlay's upper layer (`/tmp`), one
/// of them held open, are back after a restore.
#[test]
fn restore_puts_back_tmpfs_files() {
    let script = "echo in-shm > /dev/shm/f; mkdir -p /tmp/d; echo in-upper > /tmp/d/g; \
                  exec 3</tmp/d/g; echo ready; sleep 6; cat /dev/shm/f; cat <&3; exec sleep 1000";
    let Some(mut c) = busybox_container("tmpfs", &["sh", "-c", script]) else {
        return;
    };
    let out = c.file("out");
    c.rt.run_detached(&c.bundle, "files", &out);
    assert!(
        wait_text(&out, "ready", Duration::from_secs(20)),
        "never ready"
    );
    let image = c.file("image");
    let (code, text) = c.rt.checkpoint(&image, "files");
    assert_eq!(code, 0, "checkpoint: {text}");
    assert!(
        !std::fs::read_to_string(&out).unwrap().contains("in-shm"),
        "the reader woke before the checkpoint (machine too slow?)"
    );
    let out2 = c.file("out2");
    let (code, text) = c.rt.restore_detached(&image, &c.bundle, "files2", &out2);
    assert_eq!(code, 0, "restore: {text}");
    assert!(
        wait_text(&out2, "in-shm", Duration::from_secs(20)),
        "the tmpfs file is not back"
    );
    assert!(
        wait_text(&out2, "in-upper", Duration::from_secs(20)),
        "the overlay's upper file (read through an fd held across the restore) is not back"
    );
}

/// What the image cannot hold yet (here an open `/proc/[pid]/ns/mnt` file, which it does
/// not save) fails the checkpoint by name, writes no image, and leaves the container
/// running.
#[test]
fn checkpoint_refuses_an_open_namespace_file_and_keeps_running() {
    checkpoint_refuses_by_name(
        "procfile",
        "exec 3</proc/self/ns/mnt",
        "fd 3 is a mount namespace file",
    );
}

/// A shell pipeline through a FIFO in the container's root (an overlay's upper layer):
/// a reader subshell holding the FIFO open, asleep, and the writer's two lines buffered
/// in the pipe at the checkpoint. Restored (twice, from one image), the FIFO node is back,
/// the reader reads the buffered lines, then the line the writer writes afterwards, then
/// the end of file when the writer closes; the same script natively prints the same.
#[test]
fn restore_keeps_a_fifo_pipeline_and_its_buffered_data() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    const SCRIPT: &str = "busybox mkfifo F; \
        (exec 4<F; sleep 3; while read l <&4; do echo \"got $l\"; done; echo eof) & \
        exec 3>F; echo one >&3; echo two >&3; echo ready; sleep 4; echo three >&3; \
        exec 3>&-; wait; echo done";
    let scratch = Scratch::new("fifo");
    let native_fifo = scratch.path().join("native-fifo");
    let native = Command::new(busybox)
        .args([
            "sh",
            "-c",
            &SCRIPT.replace('F', native_fifo.to_str().unwrap()),
        ])
        .output()
        .unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert_eq!(
        native, "ready\ngot one\ngot two\ngot three\neof\ndone\n",
        "natively"
    );
    let mut rt = Runtime::new(scratch.path());
    let script = SCRIPT.replace('F', "/f");
    let bundle = bundle(scratch.path(), &rt, busybox, &["sh", "-c", &script]);
    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, "fifo", &out, &image);
    let kernel = read_json(&image.join("kernel.json"));
    // The shells' fds and their `sleep` children's copies: two open file descriptions.
    let fifos: Vec<&serde_json::Value> = all_fds(&kernel)
        .filter(|f| f["file"].get("Fifo").is_some())
        .collect();
    let mut descriptions: Vec<u64> = fifos
        .iter()
        .map(|f| f["description"].as_u64().unwrap())
        .collect();
    descriptions.sort_unstable();
    descriptions.dedup();
    assert_eq!(
        descriptions.len(),
        2,
        "the reader's and the writer's: {fifos:?}"
    );
    assert!(
        fifos
            .iter()
            .all(|f| f["file"]["Fifo"]["pipe"] == fifos[0]["file"]["Fifo"]["pipe"]),
        "one pipe: {fifos:?}"
    );
    assert_eq!(
        fifos[0]["file"]["Fifo"]["buffered"],
        serde_json::json!(b"one\ntwo\n".to_vec())
    );
    for n in 1..=2 {
        let id = format!("fifo{n}");
        let out = scratch.path().join(format!("out-{id}"));
        let (code, text) = rt.restore_detached(&image, &bundle, &id, &out);
        assert_eq!(code, 0, "restore {id}: {text}");
        assert!(
            wait_text(&out, "done\n", Duration::from_secs(30)),
            "{id}: not done after the restore: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            native.strip_prefix("ready\n").unwrap(),
            "{id}"
        );
        let (code, text) = rt.run(&["delete", "--force", &id]);
        assert_eq!(code, 0, "delete {id}: {text}");
    }
}

/// Every fd of every fd table in an image's `kernel.json`.
fn all_fds(kernel: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    kernel["fd_tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["fds"].as_array().unwrap())
}

/// [`checkpoint_program_and_compare`] for the test program `name` run with `6` in the
/// sandbox, once it has printed `expected` natively (run with `0.1`: a short sleep instead
/// of the checkpoint). None when the static busybox or the program is missing.
fn checkpoint_program_like_native(
    name: &str,
    tag: &str,
    expected: &str,
) -> Option<serde_json::Value> {
    static_busybox()?;
    let prog = runsc_rs_tests::program(name)?;
    let native = Command::new(&prog).arg("0.1").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&native.stdout),
        expected,
        "{name} natively"
    );
    Some(checkpoint_program_and_compare(tag, &prog, &["6"], expected))
}

/// Checkpoints `prog` (a static test program copied into a busybox bundle, run with `args`)
/// once it printed `ready`, stopping it, and restores it twice from the one image: each
/// restored copy must print `native`'s lines after `ready`. Returns the image's
/// `kernel.json`.
fn checkpoint_program_and_compare(
    tag: &str,
    prog: &Path,
    args: &[&str],
    native: &str,
) -> serde_json::Value {
    checkpoint_configured_program_and_compare(tag, prog, args, native, |_| {})
}

/// Periodic timers of every kind keep ticking after a restore, from the rest of their
/// period: ITIMER_REAL (SIGALRM), a POSIX timer (its signal, with its `sigev_value`), a
/// timerfd; a far ITIMER_VIRTUAL, a far one-shot POSIX timer and a far POSIX timer on the
/// process's CPU clock are still armed; a signalfd still reports the signal pending for
/// it; an epoll instance still reports the timerfd and the pipe it watches (and not the
/// pipe's write end). `ckpt_timers.c` natively, with a short sleep instead of the
/// checkpoint, prints the same lines.
#[test]
fn restore_keeps_timers_signalfd_and_epoll() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_timers",
        "timers",
        "ready\nalarm=moving posix=moving si_value=42 virtual=armed far=armed cpu=armed \
         epoll=timer,pipe timerfd=moving signalfd=SIGUSR1\ndone\n",
    ) else {
        return;
    };
    let timers = &kernel["processes"][0]["timers"];
    assert!(timers["real"]["interval_ns"] == 50_000_000, "{timers}");
    assert_eq!(
        timers["posix"].as_array().map(Vec::len),
        Some(3),
        "{timers}"
    );
    // The CPU-clock timer is saved with its clock (the process's), not as a wall timer.
    assert!(
        timers["posix"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["cpu"]["owner"]["Process"].is_i64() && p["cpu"]["user_only"] == false),
        "{timers}"
    );
    assert_eq!(
        kernel["epolls"][0]["interests"].as_array().map(Vec::len),
        Some(3)
    );
}

/// System V semaphores (values, a child blocked in `semop` that the parent wakes after the
/// restore) and a message queue (messages of two types, received by type) come back under
/// their identifiers and keys, and a memfd with its name, contents and seals. `ckpt_ipc.c` natively, with a short sleep instead of the
/// checkpoint, prints the same lines.
#[test]
fn restore_keeps_system_v_semaphores_message_queues_and_memfds() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_ipc",
        "ipc",
        "ready\nsem=7,0,5 sem_by_key=same waiter=woke queued=2 msg_by_key=same \
         type2=then-type-2 then=first-of-type-1 memfd=memfd-data name=/memfd:ckpt (deleted) \
         seals=shrink,grow grow=EPERM\ndone\n",
    ) else {
        return;
    };
    assert_eq!(
        kernel["ipc"]["msg"]["objects"][0][2]["msgs"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{}",
        kernel["ipc"]
    );
}

/// System V shared memory: a keyed segment that a parent and its child attach at
/// addresses of their own (the child counting in it, the parent reading the count and
/// answering through it) and a segment removed while both attach it keep their pages
/// shared after a restore, with their identifiers, keys, sizes, modes and IPC_RMID state.
/// `ckpt_shm.c` natively, with a short sleep instead of the checkpoint, prints the same.
#[test]
fn restore_keeps_system_v_shared_memory_shared() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_shm",
        "shm",
        "ready\ncounter=moving child=0 echo=42 private=shared nattch=1 size=10000 mode=640 \
         by_key=same removed=dest nattch=1\ndone\n",
    ) else {
        return;
    };
    let segments = kernel["ipc"]["shm"]["objects"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{}", kernel["ipc"]);
    let attached = kernel["mms"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|mm| mm["vmas"].as_array().unwrap())
        .filter(|v| !v["shm"].is_null())
        .count();
    assert_eq!(attached, 4, "two processes attach two segments each");
}

/// POSIX message queues: one held open (limits, O_NONBLOCK, messages received by
/// priority then age), one no fd holds (found by name again), one unlinked but open, one
/// with an `mq_notify` registration (kept: the first message after the restore signals its
/// process) and one a child waits on in `mq_receive` (restarted, woken by a send after the
/// restore). `ckpt_mq.c` natively, with a short sleep instead of the checkpoint, prints
/// the same.
#[test]
fn restore_keeps_posix_message_queues() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_mq",
        "mq",
        "ready\nheld=4,64,3,nonblock first=high/7 second=low/1 third=low-2/1 \
         fourth=Resource temporarily unavailable idle_max=2 idle=idle/3 anon=anon/0 \
         anon_name=gone notified=yes value=77 waiter=woke\ndone\n",
    ) else {
        return;
    };
    let queues = kernel["ipc"]["mq"].as_array().unwrap();
    assert_eq!(queues.len(), 5, "{}", kernel["ipc"]["mq"]);
    assert_eq!(
        queues.iter().filter(|q| q["name"].is_null()).count(),
        1,
        "one queue is unlinked"
    );
}

/// pidfds and inotify: a pidfd of a running child still names it after a restore (poll
/// shows it running, `pidfd_send_signal` kills it, `waitid(P_PIDFD)` reaps it with its
/// PID) and one of a child reaped before the checkpoint stays such (exited and hung up,
/// ESRCH); an inotify instance keeps its queued events and its watches on the same files
/// (a write and a creation after the restore are reported, a new watch gets the next
/// descriptor). `ckpt_notify.c` natively, with a short sleep instead of the checkpoint,
/// prints the same.
#[test]
fn restore_keeps_pidfds_and_inotify() {
    if static_busybox().is_none() {
        return;
    }
    let Some(prog) = runsc_rs_tests::program("ckpt_notify") else {
        return;
    };
    let scratch = Scratch::new("notify-native");
    let native = Command::new(&prog)
        .args(["0.1", scratch.path().to_str().unwrap()])
        .output()
        .unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert_eq!(
        native,
        "ready\nlive_poll=0 reaped_poll=1,in+hup reaped_signal=No such process live=killed \
         pid=same wds=1,2 queued=1:CREATE:a,2:MODIFY: after=2:MODIFY:,1:CREATE:b new_wd=3\n\
         done\n",
        "natively"
    );
    let kernel = checkpoint_program_and_compare("notify", &prog, &["6", "/"], &native);
    let inotify = &kernel["inotify"][0];
    assert_eq!(
        inotify["watches"].as_array().map(Vec::len),
        Some(2),
        "{inotify}"
    );
    assert_eq!(
        inotify["events"].as_array().map(Vec::len),
        Some(2),
        "{inotify}"
    );
}

/// Named AF_UNIX sockets come back bound where they were: a listener on a path in /tmp
/// (the root overlay's upper layer: its socket file is put back) with a connection
/// accepted and one waiting in its accept queue, each with unread data; a listener on an
/// abstract name with a connection waiting; a datagram from a socket bound in /dev/shm (a
/// tmpfs) to one on an abstract name, with its sender's name; files in flight over
/// SCM_RIGHTS (a pipe and a socket no fd holds). Each restored copy accepts the waiting
/// connections and a new client on the path, and all of them carry data both ways.
/// `ckpt_unix.c` natively, with a short sleep instead of the checkpoint, prints the same
/// lines.
#[test]
fn restore_keeps_named_unix_sockets_their_accept_queues_and_files_in_flight() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_unix",
        "unix",
        "ready\naccepted=a-before reply=reply names=same,same,same queued=b-queued \
         peer=unnamed b=to-b abstract=c-after peer=same new=new-client file=socket \
         dgram=dgram-from-named from=same back=back \
         in_flight=carry:in-pipe,via-passed-socket,echo\ndone\n",
    ) else {
        return;
    };
    let unix = kernel["unix"].as_array().unwrap();
    let queued: Vec<usize> = unix
        .iter()
        .filter_map(|e| e["listening"]["pending"].as_array().map(Vec::len))
        .collect();
    assert_eq!(queued, [1, 1], "two listeners, one waiting each: {unix:?}");
    assert_eq!(
        kernel["in_flight"].as_array().map(Vec::len),
        Some(2),
        "the pipe and the socket in flight"
    );
    let sockets = kernel["tmpfs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["entries"].as_array().unwrap())
        .filter(|e| e["node"].get("Socket").is_some())
        .count();
    assert_eq!(sockets, 2, "the socket files in /tmp and /dev/shm");
}

/// A UDP socket connect()ed to another on 127.0.0.1 is bound and connected again after a
/// restore: it sends to its peer without an address, from the same port, getpeername
/// names the peer, and a datagram from a third socket is not delivered to it; a ping
/// socket keeps its echo identifier and peer and gets its reply; a NETLINK_ROUTE socket
/// keeps its port id and a dump reply not read yet, and answers anew. `ckpt_inet.c` natively
/// (in a network namespace of its own whose ping_group_range allows ping sockets), with
/// a short sleep instead of the checkpoint, prints the same lines.
#[test]
fn restore_keeps_connected_udp_ping_and_netlink_sockets() {
    if static_busybox().is_none() {
        return;
    }
    let Some(prog) = runsc_rs_tests::program("ckpt_inet") else {
        return;
    };
    let native = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "echo '0 0' > /proc/sys/net/ipv4/ping_group_range && ip link set lo up && \
             exec \"$0\" 0.1",
        ])
        .arg(&prog)
        .output()
        .unwrap();
    if !native.status.success() {
        return runsc_rs_tests::skip(&format!(
            "ping sockets natively in a network namespace of the test's own: {}",
            String::from_utf8_lossy(&native.stderr)
        ));
    }
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert_eq!(
        native,
        "ready\nudp=udp-after from=same name=same peer=same back=udp-back \
         then=Resource temporarily unavailable ping_ident=4242 \
         ping_peer=Transport endpoint is not connected ping=reply nl_port=pid \
         nl_queued=newlink nl_after=newaddr\ndone\n",
        "natively"
    );
    let kernel = checkpoint_program_and_compare("udp", &prog, &["6"], &native);
    let peers = all_fds(&kernel)
        .filter(|f| f["file"]["Inet"]["peer"].is_array())
        .count();
    assert_eq!(peers, 1, "one connected UDP socket");
    let pings = all_fds(&kernel)
        .filter(|f| f["file"]["Icmp"]["bound"].is_array())
        .count();
    assert_eq!(pings, 1, "one bound ping socket");
    let netlink = all_fds(&kernel)
        .filter(|f| {
            f["file"]["Netlink"]["rx"]
                .as_array()
                .is_some_and(|rx| !rx.is_empty())
        })
        .count();
    assert_eq!(netlink, 1, "one netlink socket with its dump queued");
}

/// A bundle running `python` with `args`, the root the host's `/`, read-only (for Debian's
/// python3).
fn python_bundle(dir: &Path, rt: &Runtime, python: &str, args: &[&str]) -> PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let (code, _) = rt.run(&["spec", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "spec");
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["root"] = serde_json::json!({"path": "/", "readonly": true});
    config["process"]["terminal"] = false.into();
    let mut argv = vec![python];
    argv.extend_from_slice(args);
    config["process"]["args"] = serde_json::json!(argv);
    std::fs::write(&path, config.to_string()).unwrap();
    bundle
}

fn find_python() -> Option<&'static str> {
    ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

/// An asyncio echo server (`tests/scripts/checkpoint_server.py`, an epoll event loop)
/// listening on 127.0.0.1 with one connection open, checkpointed while it sleeps and
/// restored twice: each restored copy accepts and serves a new connection on the port it
/// listened on, its event loop's timers run on, and the connection that was open is reset
/// (documented: established TCP connections do not survive a restore). Natively, with no
/// checkpoint, the old connection is still alive and the rest is the same.
#[test]
fn restore_keeps_a_listening_asyncio_server_and_resets_its_connection() {
    let Some(python) = find_python() else {
        return runsc_rs_tests::skip("no python3");
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/checkpoint_server.py");
    let native = Command::new(python)
        .arg(&script)
        .arg("0.1")
        .output()
        .unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    let expected = "first=echo:before new=echo:after old=alive ticker_moving=True";
    assert_eq!(native, format!("ready\n{expected}\ndone\n"), "natively");
    let restored = expected.replace("old=alive", "old=reset");

    let scratch = Scratch::new("server");
    let mut rt = Runtime::new(scratch.path());
    let bundle = python_bundle(
        scratch.path(),
        &rt,
        python,
        &[script.to_str().unwrap(), "6"],
    );
    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, "srv", &out, &image);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        "ready",
        "the program went on before the checkpoint (machine too slow?)"
    );
    let kernel = read_json(&image.join("kernel.json"));
    let inet: Vec<&serde_json::Value> = all_fds(&kernel)
        .filter_map(|f| f["file"].get("Inet"))
        .collect();
    assert_eq!(
        inet.iter().filter(|i| i["listening"].is_number()).count(),
        1,
        "one listening socket: {inet:?}"
    );
    assert_eq!(
        inet.iter().filter(|i| i["connection"] == true).count(),
        2,
        "both ends of the open connection: {inet:?}"
    );
    for id in ["srv1", "srv2"] {
        let out = scratch.path().join(format!("out-{id}"));
        let (code, text) = rt.restore_detached(&image, &bundle, id, &out);
        assert_eq!(code, 0, "restore {id}: {text}");
        assert!(
            wait_text(&out, "done\n", Duration::from_secs(30)),
            "{id}: not done after the restore: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("{restored}\ndone\n"),
            "{id}"
        );
        let (code, text) = rt.run(&["delete", "--force", id]);
        assert_eq!(code, 0, "delete {id}: {text}");
    }
}

/// The line `tests/scripts/checkpoint_threads.py` prints when everything came back.
const PYTHON_EXPECTED: &str = "pipe=in-the-pipe stream=in-the-stream dgrams=dgram-1,dgram-2 \
                               eventfd=5 threads_moving=True echo=back,dgram-back";

/// A Python program with three counting threads, data left in a pipe, in a stream and a
/// datagram AF_UNIX socket pair and in an eventfd, checkpointed while it sleeps and
/// restored twice from the one image: each restored copy reads everything back, its threads
/// count on, and both socket pairs still carry data both ways. The same program natively
/// prints the same line (with no checkpoint between). The root is the host's `/`,
/// read-only, for Debian's python3.
#[test]
fn restore_brings_back_python_threads_pipes_socket_pairs_and_eventfd() {
    let Some(python) = find_python() else {
        return runsc_rs_tests::skip("no python3");
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/checkpoint_threads.py");
    let native = Command::new(python)
        .arg(&script)
        .arg("0.1")
        .output()
        .unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert_eq!(native.lines().last(), Some(PYTHON_EXPECTED), "natively");

    let scratch = Scratch::new("python");
    let mut rt = Runtime::new(scratch.path());
    let bundle = python_bundle(
        scratch.path(),
        &rt,
        python,
        &[script.to_str().unwrap(), "6"],
    );

    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, "py", &out, &image);
    assert!(
        !std::fs::read_to_string(&out).unwrap().contains("pipe="),
        "the program woke before the checkpoint (machine too slow?)"
    );
    let kernel = read_json(&image.join("kernel.json"));
    assert_eq!(
        kernel["unix"].as_array().map(Vec::len),
        Some(4),
        "four endpoints"
    );

    for id in ["py1", "py2"] {
        let out = scratch.path().join(format!("out-{id}"));
        let (code, text) = rt.restore_detached(&image, &bundle, id, &out);
        assert_eq!(code, 0, "restore {id}: {text}");
        assert!(
            wait_text(&out, "pipe=", Duration::from_secs(30)),
            "{id}: nothing after the restore: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        let printed = std::fs::read_to_string(&out).unwrap();
        assert_eq!(printed.trim(), PYTHON_EXPECTED, "{id}");
        let (code, text) = rt.run(&["delete", "--force", id]);
        assert_eq!(code, 0, "delete {id}: {text}");
    }
}

/// Checkpoints `args` once it printed `ready`, stopping it, then restores it; returns
/// (checkpoint time, restore time, memory.bin bytes, kernel.json bytes).
fn measure(busybox: &str, tag: &str, args: &[&str]) -> (Duration, Duration, u64, u64) {
    let scratch = Scratch::new(tag);
    let mut rt = Runtime::new(scratch.path());
    let bundle = bundle(scratch.path(), &rt, busybox, args);
    let out = scratch.path().join("out");
    rt.run_detached(&bundle, tag, &out);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(Instant::now() < deadline, "{tag} never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let image = scratch.path().join("image");
    let started = Instant::now();
    let (code, text) = rt.checkpoint(&image, tag);
    let took = started.elapsed();
    assert_eq!(code, 0, "checkpoint {tag}: {text}");
    let size = |f: &str| std::fs::metadata(image.join(f)).unwrap().len();
    let id = format!("{tag}-restored");
    let started = Instant::now();
    let (code, text) = rt.restore_detached(&image, &bundle, &id, &scratch.path().join("out2"));
    let restored = started.elapsed();
    assert_eq!(code, 0, "restore {tag}: {text}");
    assert_eq!(rt.status(&id), "running");
    (took, restored, size("memory.bin"), size("kernel.json"))
}

/// The figures of the report: image size, checkpoint and restore time (through the CLI:
/// pause, sandbox start and container creation included) for an idle shell and for a
/// process holding 256 MiB (`dd`'s buffer, filled from /dev/zero, then blocked writing to
/// a pipe nobody reads). Printed, never asserted.
#[test]
fn checkpoint_and_restore_figures() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let idle = ["sh", "-c", "echo ready; exec sleep 1000"];
    let big = [
        "sh",
        "-c",
        "dd if=/dev/zero bs=256M count=1 2>/dev/null | (sleep 8; echo ready; exec sleep 1000)",
    ];
    for (tag, args) in [("idle", &idle), ("big", &big)] {
        let (took, restored, memory, kernel) = measure(busybox, tag, args);
        eprintln!(
            "FIGURES {tag}: checkpoint {took:?}, restore {restored:?}, memory.bin {memory} bytes, kernel.json {kernel} bytes"
        );
        assert!(memory > 0 && kernel > 0);
    }
}

/// [`checkpoint_program_and_compare`] over a bundle whose `config.json` `edit` changes first
/// (capabilities, say).
fn checkpoint_configured_program_and_compare(
    tag: &str,
    prog: &Path,
    args: &[&str],
    native: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> serde_json::Value {
    let busybox = static_busybox().expect("checked by the caller");
    let scratch = Scratch::new(tag);
    let mut rt = Runtime::new(scratch.path());
    let mut argv = vec!["/bin/prog"];
    argv.extend_from_slice(args);
    let bundle = bundle(scratch.path(), &rt, busybox, &argv);
    let config = bundle.join("config.json");
    let mut value = read_json(&config);
    edit(&mut value);
    std::fs::write(&config, value.to_string()).unwrap();
    std::fs::copy(prog, bundle.join("rootfs/bin/prog")).unwrap();
    std::fs::create_dir_all(bundle.join("rootfs/tmp")).unwrap();
    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, tag, &out, &image);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        "ready",
        "{tag}: the program went on before the checkpoint (machine too slow?)"
    );
    let want = native
        .split_once("ready\n")
        .map_or(native, |(_, rest)| rest);
    for n in 1..=2 {
        let id = format!("{tag}{n}");
        let out = scratch.path().join(format!("out-{id}"));
        let (code, text) = rt.restore_detached(&image, &bundle, &id, &out);
        assert_eq!(code, 0, "restore {id}: {text}");
        assert!(
            wait_text(&out, "done\n", Duration::from_secs(30)),
            "{id}: not done after the restore: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), want, "{id}");
        let (code, text) = rt.run(&["delete", "--force", &id]);
        assert_eq!(code, 0, "delete {id}: {text}");
    }
    read_json(&image.join("kernel.json"))
}

/// Raw IP sockets and a packet socket come back with their options after a restore, twice
/// from one image: a raw ICMP socket bound and connected to 127.0.0.1 keeps ICMP_FILTER,
/// IP_TTL, SO_RCVBUF and its multicast membership, sends an echo request without an
/// address and reads the reply only; a raw socket with IP_HDRINCL gets its own packet back;
/// one shut down for reading still is; an IPv6 raw socket keeps IPV6_CHECKSUM; a packet
/// socket keeps its interface (lo), protocol, PACKET_ADD_MEMBERSHIP and SO_RCVBUF and sees
/// the echo request. `ckpt_raw.c` natively (as root, in a network namespace of its own),
/// with a short sleep instead of the checkpoint, prints the same lines.
#[test]
fn restore_keeps_raw_and_packet_sockets_with_their_options() {
    if static_busybox().is_none() {
        return;
    }
    let Some(prog) = runsc_rs_tests::program("ckpt_raw") else {
        return;
    };
    let native = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" 0.1"])
        .arg(&prog)
        .output()
        .unwrap();
    if !native.status.success() {
        return runsc_rs_tests::skip(&format!(
            "raw and packet sockets natively in a network namespace of the test's own: {}",
            String::from_utf8_lossy(&native.stderr)
        ));
    }
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    let expected = "ready\nfilter=replies ttl=33 rcvbuf=same bound=127.0.0.1 member=yes \
         hdrincl=1 v6sum=2 pkt_if=lo pkt_proto=0x800 pkt_member=yes pkt_rcvbuf=same \
         echo=reply p253=back shut_nb=Resource temporarily unavailable shut=eof \
         pkt_seen=request\ndone\n";
    // Under the full suite's load the host now and then does not hand the packet socket its
    // copy of the echo request at all (seen in CI, never alone): that one fact cannot be
    // compared then, and the sandbox must still print what Linux prints when it delivers.
    if native != expected && native == expected.replace("pkt_seen=request", "pkt_seen=none") {
        eprintln!("note: natively the packet socket missed the echo request this time");
    } else {
        assert_eq!(native, expected, "natively");
    }
    let kernel = checkpoint_configured_program_and_compare("raw", &prog, &["6"], expected, |c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_NET_RAW".into());
        }
    });
    let raw = all_fds(&kernel)
        .filter(|f| f["file"]["Raw"].is_object())
        .count();
    assert_eq!(raw, 4, "four raw sockets");
    let packet = all_fds(&kernel)
        .filter(|f| f["file"]["Packet"]["ifindex"] == 1)
        .count();
    assert_eq!(packet, 1, "one packet socket bound to lo");
}

/// The sentry's pseudo-terminals come back whole: a pair (opened by its /dev/pts path) in
/// raw mode with a window size and its master in packet mode, with input for the slave and
/// output for the master unread and a flush the master was not told of yet; a pair whose
/// slave came through TIOCGPTPEER, locked again, with a typed line and a partial one (and
/// their echo); the session that pair controls, led by a child, with a grandchild's group
/// in the foreground (getsid, getpgrp, tcgetsid, tcgetpgrp, a background read); a hung-up
/// pair. `ckpt_pty.c` natively, with a short sleep instead of the checkpoint, prints the
/// same lines.
#[test]
fn restore_keeps_ptys_their_buffers_and_the_session_they_control() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_pty",
        "pty",
        "ready\n\
         a_pkt=1 a_lock=0 a_raw=yes vmin=1 a_win=30x100,7,9 a_slave_queued=10 \
         a_master_status=1:\\x02 a_master_data=11:\\x00to-master\\x0a \
         a_slave=10:to-slave\\x0d\\x03 \n\
         b_lock=1 b_canon=yes b_echo=11:line1\\x0d\\x0apart b_line=6:line1\\x0a \
         b_rest=8:partial\\x0a b_sid_from_master=child\n\
         child: sid=self pgrp=self tcgetsid=self tcgetpgrp=grandchild \
         dev_tty=Input/output error bg_read=Input/output error\n\
         child_exit=0 c_read=0: c_write=Input/output error \
         b_open_locked=Input/output error\n\
         done\n",
    ) else {
        return;
    };
    let ptys: Vec<&serde_json::Value> = all_fds(&kernel)
        .filter_map(|f| f["file"].get("Pty"))
        .collect();
    assert!(
        ptys.iter()
            .any(|p| p["end"] == "Master" && p["pty"]["packet"] == true),
        "{ptys:?}"
    );
    assert!(
        ptys.iter()
            .any(|p| p["end"] == "Slave" && p["pty"]["hung_up"] == true),
        "{ptys:?}"
    );
    assert!(ptys.iter().any(|p| p["pty"]["session"] != 0), "{ptys:?}");
}

/// Receives, on a thread, the pty master the runtime hands to the console socket `path`.
fn console_socket(path: &Path) -> std::thread::JoinHandle<std::os::fd::OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut name = [0u8; 64];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            &stream,
            &mut [std::io::IoSliceMut::new(&mut name)],
            &mut control,
            RecvFlags::empty(),
        )
        .unwrap();
        control
            .drain()
            .find_map(|m| match m {
                RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                _ => None,
            })
            .expect("a pty master over the console socket")
    })
}

/// What a pty master shows, read on a thread (a read blocks while nothing is written).
struct Screen {
    master: std::fs::File,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    shown: Vec<u8>,
}

impl Screen {
    fn new(master: std::os::fd::OwnedFd) -> Screen {
        let master = std::fs::File::from(master);
        let mut reader = master.try_clone().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Screen {
            master,
            rx,
            shown: Vec::new(),
        }
    }

    /// Waits until what is shown from `since` (an offset in [`Screen::text`]) on holds
    /// `what`; true if it came.
    fn wait_from(&mut self, since: usize, what: &str) -> bool {
        self.wait_within(since, what, Duration::from_secs(30))
    }

    /// [`Screen::wait_from`], giving up after `within`.
    fn wait_within(&mut self, since: usize, what: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.text()[since.min(self.shown.len())..].contains(what) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if let Ok(chunk) = self.rx.recv_timeout(Duration::from_millis(100)) {
                self.shown.extend(chunk);
            }
        }
    }

    /// Waits for `what` among what comes from now on.
    fn wait_for(&mut self, what: &str) -> bool {
        self.wait_from(self.shown.len(), what)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.shown).into_owned()
    }

    fn type_in(&self, bytes: &[u8]) {
        use std::io::Write;
        (&self.master).write_all(bytes).unwrap();
    }
}

/// The terminal of a process started by `exec -t` is refused by name: its pty's master
/// went to that exec's caller, whom a restore cannot reach (the container's own console is
/// saved: see `restore_puts_the_console_onto_the_new_console_socket` below). The refused
/// checkpoint leaves the container running, the exec's terminal working.
#[test]
fn checkpoint_refuses_an_exec_terminal_by_name_and_keeps_running() {
    let Some(mut c) = busybox_container("execterm", COUNTER) else {
        return;
    };
    let out = c.file("out");
    c.rt.run_detached(&c.bundle, "execterm", &out);
    assert!(wait_count(&out, 3) >= 3, "the counter never ran");
    let socket = c.file("console.sock");
    let master = console_socket(&socket);
    let code =
        c.rt.cmd(&[
            "exec",
            "-d",
            "-t",
            "--console-socket",
            socket.to_str().unwrap(),
            "execterm",
            "sh",
            "-c",
            "echo ready; while :; do echo tick; sleep 0.05; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code();
    assert_eq!(code, Some(0), "exec -d -t");
    let mut screen = Screen::new(master.join().unwrap());
    assert!(screen.wait_for("ready"), "the terminal never showed ready");
    let image = c.file("image");
    let (code, text) = c.rt.checkpoint(&image, "execterm");
    assert_ne!(code, 0, "an exec's terminal was checkpointed: {text}");
    assert!(
        text.contains("cannot checkpoint: fd 0 is the terminal of an exec'd process"),
        "{text}"
    );
    assert!(!image.join("header.json").exists());
    assert_eq!(c.rt.status("execterm"), "running");
    assert!(
        screen.wait_for("tick"),
        "the refused checkpoint left it stopped"
    );
    let at = last_count(&out);
    assert!(wait_count(&out, at + 2) >= at + 2, "the counter stopped");
}

/// An interactive busybox shell with job control on a pty of the sentry's, driven through
/// the master by `ckpt_pty_shell.c`: `cat` in the foreground at the checkpoint. Restored
/// (twice, from one image), cat still echoes a typed line, ^C interrupts it (the shell
/// reports status 130, so the foreground group and the session came back) and the shell
/// exits. Natively, with a short sleep instead of the checkpoint, the same lines.
#[test]
fn restore_keeps_an_interactive_shell_and_its_foreground_job_on_a_pty() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let Some(prog) = runsc_rs_tests::program("ckpt_pty_shell") else {
        return;
    };
    let native = Command::new(&prog)
        .args(["0.1", busybox])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert_eq!(
        native, "ready\ncat_after=echoes prompt_after_intr=yes status=130 shell_exit=0\ndone\n",
        "natively"
    );
    let kernel = checkpoint_program_and_compare("ptyshell", &prog, &["6", "/bin/sh"], &native);
    assert!(
        all_fds(&kernel).any(|f| f["file"]["Pty"]["pty"]["session"] != 0),
        "the shell's terminal controls its session"
    );
}

/// A process in UTS, IPC, network and user namespaces of its own comes back in them, twice
/// from one image: its host and domain names, its uid and gid maps (it is root inside), the
/// namespace's inode number, the System V semaphore set and message queue and the POSIX
/// message queue of its IPC namespace, the abstract AF_UNIX name and the UDP port bound in
/// its network namespace; and its child, left in the caller's namespaces, still sees none
/// of them. `ckpt_ns.c` natively, with a short sleep instead of the checkpoint, prints the
/// same lines. Needs root natively (it unshares a user namespace and maps itself to root).
#[test]
fn restore_keeps_uts_ipc_net_and_user_namespaces() {
    if !nix::unistd::geteuid().is_root() {
        return runsc_rs_tests::skip("ckpt_ns maps the caller's root into its user namespace");
    }
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_ns",
        "ns",
        "ready\ninside: host=ckpt-ns domain=ckpt-dom uid=0 gid=0 uts_ino=same\n\
         ipc: sem=5 msg=3:in-the-ns mq=posix-in-ns:2\n\
         net: abstract=delivered udp_port=kept rebind=EADDRINUSE\n\
         outside: host=other sem=absent mq=absent abstract=absent udp_port=free\ndone\n",
    ) else {
        return;
    };
    let ns = &kernel["namespaces"];
    assert_eq!(ns["uts"][0]["hostname"], "ckpt-ns", "{ns}");
    assert_eq!(ns["user"][0]["setgroups_denied"], true, "{ns}");
    assert_eq!(ns["ipc"].as_array().map(Vec::len), Some(1), "{ns}");
    assert_eq!(ns["net"].as_array().map(Vec::len), Some(1), "{ns}");
    let inside = kernel["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["namespaces"]["net"] == 1)
        .count();
    assert_eq!(inside, 1, "one task in the new namespaces");
    assert_eq!(kernel["unix"][0]["netns"], 1);
}

/// Writable shared mappings of a tmpfs file and of a memfd come back as the file's pages:
/// after each of two restores from one image, what was written through the mapping before
/// the checkpoint reads through the fd and what was written through the fd shows in the
/// mapping, and writes after the restore go both ways too. `ckpt_shared.c` natively, with
/// a short sleep instead of the checkpoint, prints the same lines.
#[test]
fn restore_keeps_shared_writable_mappings_of_tmpfs_files_and_memfds() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_shared",
        "shared",
        "ready\ntmpfs: map->read=before-map read->map=before-fd after: map->read=after-map \
         read->map=after-fd\nmemfd: map->read=before-map read->map=before-fd after: \
         map->read=after-map read->map=after-fd\ndone\n",
    ) else {
        return;
    };
    let vmas: Vec<&serde_json::Value> = kernel["mms"][0]["vmas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["shared"] == true && v["may_write"] == true)
        .collect();
    assert_eq!(vmas.len(), 2, "{vmas:?}");
    assert!(vmas.iter().any(|v| v["memfd"] == 0), "{vmas:?}");
}

/// /proc files held open come back by path at their offsets, naming the same processes (a
/// process's own status file, its child's stat file), and a pipe reopened through
/// /proc/self/fd is the same pipe again: its second reader reads what both writers wrote,
/// and closing both writers gives end of file. `ckpt_proc.c` natively, with a short sleep
/// instead of the checkpoint, prints the same lines.
#[test]
fn restore_keeps_proc_files_and_pipes_reopened_through_proc() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_proc",
        "proc",
        "ready\nstatus at offset 6: its name\nchild stat after its pid: (its name)\n\
         reopened reader: abcdefghi\nafter closing both writers: end of file\ndone\n",
    ) else {
        return;
    };
    let fds: Vec<&serde_json::Value> = all_fds(&kernel).collect();
    assert!(
        fds.iter()
            .any(|f| f["file"]["Path"]["fs_type"] == "proc" && f["offset"] == 6),
        "{fds:?}"
    );
}

/// A process blocked in vfork is saved waiting for its child (issue 17): the child, still
/// in the vfork window (sharing the parent's memory), is checkpointed asleep; each restored
/// copy's parent stays blocked until the child exits, then vfork returns the child's PID,
/// waitpid gives its status, and a second vfork works. `ckpt_vfork.c` natively, with a
/// short sleep instead of the checkpoint, prints the same lines.
#[test]
fn restore_keeps_a_parent_blocked_in_vfork() {
    let Some(kernel) = checkpoint_program_like_native(
        "ckpt_vfork",
        "vfork",
        "ready\nvfork returned the child: yes\nchild status 7\nsecond vfork: ok, status 3\n\
         done\n",
    ) else {
        return;
    };
    let tasks = kernel["tasks"].as_array().unwrap();
    let parent = tasks
        .iter()
        .find(|t| !t["vfork_child"].is_null())
        .unwrap_or_else(|| panic!("no task waits for a vfork child: {tasks:?}"));
    let child = tasks
        .iter()
        .find(|t| t["tid"] == parent["vfork_child"])
        .unwrap_or_else(|| panic!("the vfork child is not in the image: {tasks:?}"));
    assert_eq!(child["vfork_parent"], parent["tid"]);
    assert_eq!(child["mm"], parent["mm"], "one shared address space");
}

/// A checkpoint with `--leave-running` while a process is blocked in vfork: the parent,
/// parked inside its wait for the image, goes on waiting once the kernel resumes and
/// returns from vfork when its child exits, as natively.
#[test]
fn checkpoint_leave_running_keeps_a_parent_blocked_in_vfork_waiting() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let Some(prog) = runsc_rs_tests::program("ckpt_vfork") else {
        return;
    };
    let scratch = Scratch::new("vforklive");
    let mut rt = Runtime::new(scratch.path());
    let bundle = bundle(scratch.path(), &rt, busybox, &["/bin/prog", "3"]);
    std::fs::copy(&prog, bundle.join("rootfs/bin/prog")).unwrap();
    let out = scratch.path().join("out");
    rt.run_detached(&bundle, "vforklive", &out);
    assert!(
        wait_text(&out, "ready", Duration::from_secs(30)),
        "never ready: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let image = scratch.path().join("image");
    let (code, text) = rt.run(&[
        "checkpoint",
        "--image-path",
        image.to_str().unwrap(),
        "--leave-running",
        "vforklive",
    ]);
    assert_eq!(code, 0, "checkpoint --leave-running: {text}");
    assert!(
        wait_text(&out, "done\n", Duration::from_secs(30)),
        "not done after the checkpoint: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "ready\nvfork returned the child: yes\nchild status 7\nsecond vfork: ok, status 3\n\
         done\n"
    );
    let kernel = read_json(&image.join("kernel.json"));
    let tasks = kernel["tasks"].as_array().unwrap();
    assert!(
        tasks.iter().any(|t| !t["vfork_child"].is_null()),
        "{tasks:?}"
    );
}

/// seccomp filters and `no_new_privs` survive a checkpoint: `ckpt_seccomp.c` sets
/// `no_new_privs` and installs two filters, starts a thread and forks a child; after each
/// restore the filters still fail their calls with their errnos in all three tasks,
/// `PR_GET_NO_NEW_PRIVS` is 1, `/proc/self/status` says `Seccomp: 2`, a TSYNC filter still
/// reaches the thread (whose chain is the main thread's) and the child can add one of its
/// own. The image holds the filters once, all three tasks naming the top one. The
/// bundle asks for `noNewPrivileges` and carries a seccomp profile (refusing only `acct`),
/// as container bundles do: enforced, it is the chain's first filter. Natively, with a short sleep instead of the checkpoint, the program
/// prints the same lines.
#[test]
fn restore_keeps_seccomp_filters_and_no_new_privs() {
    let expected = "ready\n\
         main: nnp=1 seccomp=2 getppid=42 getpgrp=43 tsync=0 getsid=67\n\
         thread: getppid=42 getpgrp=43 getsid=67\n\
         child: nnp=1 seccomp=2 getppid=42 getpgrp=43 added=0 getsid=51\n\
         done\n";
    if static_busybox().is_none() {
        return;
    }
    let Some(prog) = runsc_rs_tests::program("ckpt_seccomp") else {
        return;
    };
    let native = Command::new(&prog).arg("0.1").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&native.stdout),
        expected,
        "ckpt_seccomp natively"
    );
    let kernel =
        checkpoint_configured_program_and_compare("seccomp", &prog, &["6"], expected, |config| {
            config["process"]["noNewPrivileges"] = serde_json::json!(true);
            config["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}],
            });
        });
    let filters = kernel["seccomp_filters"]
        .as_array()
        .expect("seccomp_filters");
    // The bundle's profile is the chain's base, then the program's two filters.
    assert_eq!(filters.len(), 3, "{filters:?}");
    assert_eq!(filters[0]["prev"], serde_json::Value::Null, "{filters:?}");
    assert_eq!(filters[1]["prev"], 0, "{filters:?}");
    assert_eq!(filters[2]["prev"], 1, "{filters:?}");
    let tasks = kernel["tasks"].as_array().unwrap();
    let filtered: Vec<_> = tasks
        .iter()
        .filter(|t| t["seccomp"]["filter"] == 2)
        .collect();
    assert_eq!(filtered.len(), 3, "{tasks:?}");
    for t in filtered {
        assert_eq!(t["seccomp"]["mode"], 2);
        assert_eq!(t["seccomp"]["no_new_privs"], true);
    }
}

/// The shell of the console test: its terminal in `-icanon -echo` mode (set by `stty`), a
/// counter in the background, and commands read from the terminal in the foreground (a
/// `read` a trapped signal interrupts fails, as at end of file: it is read again, up to 50
/// times in a row).
const CONSOLE_SHELL: &str = r#"trap 'echo "winch $(stty size)"' WINCH
trap 'echo intr' INT
stty -icanon -echo min 1 time 0
(i=0; while :; do i=$((i+1)); echo "n=$i"; sleep 0.1; done) &
echo ready
while :; do
  read -r line || { f=$((f+1)); [ $f -lt 50 ] && continue; break; }
  f=0
  case "$line" in
    modes) echo "<<"; stty -a; echo ">>";;
    job) echo started; sleep 1000; echo "job=$?";;
    *) echo "got=$line";;
  esac
done"#;

/// The counter values `text` shows (`n=K` lines).
fn console_counts(text: &str) -> Vec<u64> {
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("n=")?.parse().ok())
        .collect()
}

/// What `modes` printed (`stty -a`) after offset `since` of `screen`'s text.
fn console_modes(screen: &mut Screen) -> String {
    let since = screen.shown.len();
    screen.type_in(b"modes\n");
    assert!(
        screen.wait_from(since, ">>"),
        "no stty -a: {}",
        screen.text()
    );
    let text = screen.text()[since..].to_owned();
    let start = text.find("<<\r\n").unwrap() + 4;
    let end = text.find(">>").unwrap();
    // The counter's lines may come between.
    text[start..end]
        .split("\r\n")
        .filter(|l| !l.starts_with("n=") && !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Issue 17: a container with a terminal (`process.terminal`, its pty master handed to
/// `--console-socket`) checkpoints, and `restore --console-socket` puts it onto the new
/// console: the counter continues on the new master, `stty -a` shows the same modes and
/// window size (`-icanon -echo`, 40x100, set before the checkpoint; the new pty was made
/// 0x0), a typed line reaches the shell unechoed, a resize through the new master raises
/// SIGWINCH in the shell, and ^C interrupts its foreground job (`sleep`, status 130).
/// Without a console socket the restore is refused.
#[test]
fn restore_puts_the_console_onto_the_new_console_socket() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let scratch = Scratch::new("console");
    let mut rt = Runtime::new(scratch.path());
    let bundle = bundle(scratch.path(), &rt, busybox, &["sh", "-c", CONSOLE_SHELL]);
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/stty")).unwrap();
    let config = bundle.join("config.json");
    let mut spec = read_json(&config);
    spec["process"]["terminal"] = true.into();
    std::fs::write(&config, spec.to_string()).unwrap();

    let socket = scratch.path().join("console.sock");
    let master = console_socket(&socket);
    let code = rt
        .cmd(&[
            "run",
            "-d",
            "--console-socket",
            socket.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
            "console",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code();
    rt.ids.push("console".into());
    assert_eq!(code, Some(0), "run -d with a terminal");
    let mut screen = Screen::new(master.join().unwrap());
    assert!(screen.wait_for("ready"), "never ready: {}", screen.text());
    assert!(screen.wait_from(0, "n=2"), "the counter never ran");
    let size = |rows, cols| rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&screen.master, size(40, 100)).unwrap();
    assert!(screen.wait_for("winch 40 100"), "{}", screen.text());
    let modes = console_modes(&mut screen);
    assert!(modes.contains("rows 40; columns 100"), "{modes}");
    assert!(
        modes.contains("-icanon") && modes.contains("-echo "),
        "{modes}"
    );
    assert!(screen.wait_for("n=3"), "the counter never ran");

    let image = scratch.path().join("image");
    let (code, text) = rt.checkpoint(&image, "console");
    assert_eq!(code, 0, "checkpoint: {text}");
    assert_eq!(rt.status("console"), "stopped");
    let before = *console_counts(&screen.text()).last().unwrap();
    let kernel = read_json(&image.join("kernel.json"));
    assert!(
        all_fds(&kernel).any(|f| f["file"]["Console"]["console"]["session"] != 0),
        "the console controls the shell's session"
    );

    // No console for a container whose image has one: refused, nothing left running.
    let out = scratch.path().join("out-noconsole");
    let (code, text) = rt.restore_detached(&image, &bundle, "noconsole", &out);
    assert_ne!(code, 0, "restored without a console");
    assert!(text.contains("--console-socket"), "{text}");
    // The same rootfs (the image's files are checked), no terminal.
    let mut plain = read_json(&config);
    plain["process"]["terminal"] = false.into();
    plain["root"]["path"] = bundle.join("rootfs").to_str().unwrap().into();
    let plain_bundle = scratch.path().join("plain");
    std::fs::create_dir(&plain_bundle).unwrap();
    std::fs::write(plain_bundle.join("config.json"), plain.to_string()).unwrap();
    let (code, text) = rt.restore_detached(&image, &plain_bundle, "plain", &out);
    assert_ne!(code, 0, "restored a console onto no terminal");
    assert!(text.contains("this restore was given none"), "{text}");

    let socket = scratch.path().join("console2.sock");
    let master = console_socket(&socket);
    let out = scratch.path().join("out-again");
    let console = ["--console-socket", socket.to_str().unwrap()];
    let (code, text) = rt.restore_detached_with(&image, &bundle, "again", &out, &console);
    assert_eq!(code, 0, "restore: {text}");
    assert_eq!(rt.status("again"), "running");
    let mut screen = Screen::new(master.join().unwrap());
    assert!(
        screen.wait_for(&format!("n={}", before + 3)),
        "{}",
        screen.text()
    );
    let counts = console_counts(&screen.text());
    assert!(
        counts.first().is_some_and(|&n| n > before) && counts.windows(2).all(|w| w[1] == w[0] + 1),
        "the counter did not continue from {before}: {counts:?}"
    );
    assert_eq!(
        console_modes(&mut screen),
        modes,
        "stty -a after the restore"
    );

    let since = screen.shown.len();
    screen.type_in(b"hello\n");
    assert!(
        screen.wait_from(since, "got=hello\r\n"),
        "{}",
        screen.text()
    );
    assert_eq!(
        screen.text()[since..].matches("hello").count(),
        1,
        "the typed line was echoed: {}",
        screen.text()
    );

    rustix::termios::tcsetwinsize(&screen.master, size(50, 120)).unwrap();
    screen.type_in(b"x\n");
    assert!(
        screen.wait_for("winch 50 120"),
        "no SIGWINCH: {}",
        screen.text()
    );

    let since = screen.shown.len();
    screen.type_in(b"job\n");
    assert!(screen.wait_from(since, "started"), "{}", screen.text());
    // ^C until the job reports (the shell may still be starting `sleep`).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !screen.text()[since..].contains("job=") && Instant::now() < deadline {
        screen.type_in(b"\x03");
        screen.wait_within(since, "job=", Duration::from_millis(500));
    }
    assert!(
        screen.wait_from(since, "job=130"),
        "^C did not interrupt the foreground job: {}",
        screen.text()
    );
    let (code, text) = rt.run(&["delete", "--force", "again"]);
    assert_eq!(code, 0, "delete: {text}");
}

/// A busybox bundle whose container runs `sh -c outer` with `INNER=inner` in its
/// environment (a script file held open would be a host file the restored sandbox sees
/// anew), the applets namespace workloads use and CAP_SYS_ADMIN (unshare(2), setns(2)).
fn namespace_bundle(dir: &Path, rt: &Runtime, busybox: &str, outer: &str, inner: &str) -> PathBuf {
    let bundle = bundle(dir, rt, busybox, &["sh", "-c", outer]);
    let rootfs = bundle.join("rootfs");
    for applet in ["unshare", "nsenter", "readlink", "grep", "tr"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let path = bundle.join("config.json");
    let mut config = read_json(&path);
    config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(format!("INNER={inner}").into());
    for set in ["bounding", "effective", "permitted"] {
        config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_ADMIN".into());
    }
    std::fs::write(&path, config.to_string()).unwrap();
    bundle
}

/// A tick of the nested namespace's loop: (tick, nested PID namespace's `NSpid` pair).
fn nested_ticks(text: &str) -> Vec<(u64, [u64; 2])> {
    text.lines()
        .filter_map(|l| {
            let (n, rest) = l.split_once(' ')?;
            let n = n.parse().ok()?;
            assert!(
                rest.starts_with("ppid=1 child=alive nspid=NSpid: "),
                "a tick seen from the nested namespace: {l}"
            );
            let ids: Vec<u64> = rest
                .rsplit_once("NSpid: ")?
                .1
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!(
                ids.len(),
                2,
                "an ID in the container's and the nested namespace: {l}"
            );
            Some((n, [ids[0], ids[1]]))
        })
        .collect()
}

/// `unshare -p -f` in the container: a shell that is PID 1 of a nested PID namespace, with
/// a child (PID 2 there) and a counter; each tick a new process reports its parent (the
/// nested init, 1), that the child is there (`kill -0` by its nested PID) and its own IDs
/// at both levels (`NSpid` in the container's /proc). After a restore the counter continues,
/// the nested init still answers 1 to its children and finds its child by its nested PID,
/// new processes have IDs at both levels numbered on from the old ones, and at the end the
/// nested init reaps its killed child (SIGTERM) and `unshare`, in the container's namespace,
/// reaps the nested init. Natively (as root) the scripts print the same kind of lines.
#[test]
fn restore_keeps_a_nested_pid_namespace_and_its_ids_at_every_level() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    const INNER: &str = "sleep 1000 &\nc=$!\necho \"inner=$$ child=$c\"\ni=0\n\
        while [ $i -lt 80 ]; do\n  i=$((i+1))\n  \
        echo \"$i ppid=$(sh -c 'echo $PPID') child=$(kill -0 $c && echo alive) nspid=$(grep NSpid /proc/self/status | tr -s '\\t' ' ')\"\n  \
        [ $i = 3 ] && echo ready\n  sleep 0.05\ndone\nkill $c\nwait $c\necho \"child-status=$?\"\n";
    const OUTER: &str = "unshare -p -f sh -c \"$INNER\"\necho \"unshare=$?\"\necho done\n";
    let scratch = Scratch::new("pidns");
    let mut rt = Runtime::new(scratch.path());
    let bundle = namespace_bundle(scratch.path(), &rt, busybox, OUTER, INNER);
    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, "pidns", &out, &image);
    let before = std::fs::read_to_string(&out).unwrap();
    assert!(before.starts_with("inner=1 child=2\n"), "{before}");
    let old = nested_ticks(&before);
    let (last_tick, [last_outer, last_inner]) = *old.last().expect("ticks before the checkpoint");

    let kernel = read_json(&image.join("kernel.json"));
    let pid = kernel["namespaces"]["pid"]
        .as_array()
        .expect("namespaces.pid");
    assert_eq!(pid.len(), 1, "one nested PID namespace: {pid:?}");
    assert_eq!(pid[0]["parent"], 0);
    let tasks = kernel["tasks"].as_array().unwrap();
    let nested: Vec<_> = tasks
        .iter()
        .filter(|t| t["namespaces"]["pid"] == 1)
        .collect();
    assert!(
        nested.len() >= 2,
        "the nested init and its child: {tasks:?}"
    );
    let init = nested
        .iter()
        .find(|t| t["vtid"] == 1)
        .expect("the nested init");
    assert_eq!(pid[0]["init"], init["tid"], "{pid:?}");
    assert_ne!(init["container_vtid"], 1);
    let unshare = tasks
        .iter()
        .find(|t| t["namespaces"]["pid_for_children"] == 1)
        .expect("unshare's children go to the nested namespace");
    assert_eq!(unshare["namespaces"]["pid"], 0);

    let id = "pidns-restored";
    let out = scratch.path().join("out-restored");
    let (code, text) = rt.restore_detached(&image, &bundle, id, &out);
    assert_eq!(code, 0, "restore: {text}");
    assert!(
        wait_text(&out, "done\n", Duration::from_secs(40)),
        "not done after the restore: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let after = std::fs::read_to_string(&out).unwrap();
    let new = nested_ticks(&after);
    let (first, _) = *new.first().expect("ticks after the restore");
    assert!(
        first > 3 && first <= last_tick + 1,
        "the counter continues from {last_tick}: {after}"
    );
    assert_eq!(new.last().map(|t| t.0), Some(80), "{after}");
    for (_, [outer, inner]) in &new {
        assert!(
            *outer > last_outer && *inner > last_inner,
            "IDs are numbered on at both levels (after {last_outer} {last_inner}): {after}"
        );
    }
    assert!(
        after.ends_with("child-status=143\nunshare=0\ndone\n"),
        "the nested init reaps its child, unshare the nested init: {after}"
    );
}

/// An fd on another process's `/proc/[pid]/ns/net` (a network namespace only that fd keeps,
/// its process gone) is kept across a restore: `nsenter --net=/proc/$$/fd/3` joins the same
/// namespace (its inode number as before, not the shell's own) after it as before it.
#[test]
fn restore_keeps_a_namespace_fd_that_setns_joins() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    const OUTER: &str = "unshare -n sleep 1000 &\np=$!\nsleep 0.3\n\
        exec 3</proc/$p/ns/net\nkill $p\nwait $p\n\
        echo \"via=$(nsenter --net=/proc/$$/fd/3 readlink /proc/self/ns/net) own=$(readlink /proc/self/ns/net)\"\n\
        echo ready\ni=0\nwhile [ $i -lt 40 ]; do i=$((i+1)); sleep 0.05; done\n\
        echo \"via=$(nsenter --net=/proc/$$/fd/3 readlink /proc/self/ns/net) own=$(readlink /proc/self/ns/net)\"\n\
        echo done\n";
    let scratch = Scratch::new("nsfd");
    let mut rt = Runtime::new(scratch.path());
    let bundle = namespace_bundle(scratch.path(), &rt, busybox, OUTER, "");
    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, "nsfd", &out, &image);
    let before = std::fs::read_to_string(&out).unwrap();
    // The shell may report the killed job ("Terminated") first.
    let line = before
        .lines()
        .find(|l| l.starts_with("via="))
        .unwrap_or_default()
        .to_owned();
    let (via, own) = line
        .strip_prefix("via=")
        .and_then(|l| l.split_once(" own="))
        .unwrap_or_else(|| panic!("{before}"));
    assert!(
        via.starts_with("net:[") && own.starts_with("net:["),
        "{before}"
    );
    assert_ne!(via, own, "the fd names another namespace: {before}");

    let kernel = read_json(&image.join("kernel.json"));
    let held: Vec<_> = kernel["fd_tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["fds"].as_array().unwrap())
        .filter(|f| f["fd"] == 3)
        .map(|f| f["file"]["Namespace"].clone())
        .collect();
    assert!(
        held.iter().all(|n| n["kind"] == "Net" && n["index"] == 1),
        "{held:?}"
    );
    assert_eq!(
        kernel["namespaces"]["net"].as_array().map(Vec::len),
        Some(1)
    );

    let out = scratch.path().join("out-restored");
    let (code, text) = rt.restore_detached(&image, &bundle, "nsfd-restored", &out);
    assert_eq!(code, 0, "restore: {text}");
    assert!(
        wait_text(&out, "done\n", Duration::from_secs(30)),
        "not done after the restore: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{line}\ndone\n"),
        "setns through the restored fd joins the same namespace"
    );
}

/// Rules the container's `iptables-legacy` set up, then its checks once restored: the
/// listings of every table it changed (IPv4 filter and nat, IPv6 filter), and the UDP DROP
/// rule's counters, before and after one more datagram it drops. `$1` is the pause
/// between the two halves (the checkpoint falls in it).
const IPTABLES_SCRIPT: &str = r#"R=iptables-legacy
$R -N CKPT && $R -A CKPT -p tcp --dport 9 -j DROP && $R -A INPUT -j CKPT \
  && $R -A OUTPUT -p udp --dport 7 -j DROP \
  && $R -t nat -A OUTPUT -p tcp -d 127.0.0.2 --dport 80 -j REDIRECT --to-ports 8080 \
  && ip6tables-legacy -A INPUT -p tcp --dport 9 -j DROP || echo setup failed
send() { python3 -c 'import socket
try: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 7)); print("sent")
except OSError as e: print("send", e.errno)'; }
show() { $R -S; $R -t nat -S; ip6tables-legacy -S; $R -S OUTPUT -v | grep dport; }
send; show; echo ready
sleep $1
echo restored; show; send; $R -S OUTPUT -v | grep dport; echo done
"#;

/// Netfilter tables survive a restore: the container's `iptables-legacy -S` listings after
/// the restore equal those before the checkpoint (rules, a user chain, a nat REDIRECT, an
/// IPv6 rule, a DROP rule's packet and byte counters), and the DROP rule still drops (the
/// send fails and its counter goes up). The same script natively, in a network namespace
/// of its own with a short pause, prints the same lines.
#[test]
fn restore_keeps_netfilter_rules_and_counters() {
    let Some((busybox, native_out)) = iptables_natively(IPTABLES_SCRIPT) else {
        return;
    };
    let (before, after) =
        iptables_checkpoint_and_restore("nf", busybox, IPTABLES_SCRIPT, &native_out, |image| {
            let kernel = read_json(&image.join("kernel.json"));
            assert_eq!(
                kernel["netfilter"].as_array().map(Vec::len),
                Some(1),
                "the container's network namespace's tables are in the image"
            );
        });
    // What the listings showed before the checkpoint, they show after the restore.
    let listing = |text: &str, from: &str| -> String {
        let start = text.find(from).map_or(0, |i| i + from.len());
        text[start..]
            .lines()
            .take_while(|l| !l.starts_with("send") && *l != "ready")
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(listing(&before, "send 1\n"), listing(&after, "restored\n"));
    assert!(
        after.contains("send 1\n") && after.contains("-c 2 58 -j DROP"),
        "the DROP rule still drops (EPERM) and counts: {after}"
    );
}

/// Adds `caps` to the bounding, effective and permitted sets of a bundle's `config`.
fn add_capabilities(config: &mut serde_json::Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        let list = config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap();
        list.extend(caps.iter().map(|c| serde_json::Value::from(*c)));
    }
}

/// Mounts the container made at run time, after a restore: a tmpfs mounted on `/mnt` with
/// its limits and mode and the file written in it, the bundle's `/dev/shm` remounted
/// read-only, and the bundle's `/sys` unmounted (lazily: it has submounts). `$1` is the pause the checkpoint falls in.
const MOUNTS_SCRIPT: &str = r#"busybox mount -t tmpfs -o size=1m,mode=750 none /mnt \
  && echo kept > /mnt/f && busybox mount -o remount,ro /dev/shm && busybox umount -l /sys \
  || echo setup failed
echo ready
sleep $1
cat /mnt/f
busybox grep -E ' /(mnt|dev/shm|sys) ' /proc/mounts | while read src at type opts rest; do
  echo "$at $type ${opts%%,*}"
done
busybox stat -c %a /mnt
busybox touch /dev/shm/x 2>/dev/null || echo shm read-only
echo done
"#;

/// A tmpfs mounted at run time comes back with its file, limits and mode, a remount
/// read-only of a bundle's mount stays, and a bundle's mount that was unmounted stays
/// gone, twice from one image. The image lists the mounts.
#[test]
fn restore_keeps_mounts_made_at_run_time() {
    let Some(mut c) = busybox_container("mnt", &["sh", "-c", MOUNTS_SCRIPT, "sh", "6"]) else {
        return;
    };
    std::fs::create_dir(c.bundle.join("rootfs/mnt")).unwrap();
    c.configure(|config| add_capabilities(config, &["CAP_SYS_ADMIN"]));

    let out = c.file("out");
    let image = c.file("image");
    c.rt.start_and_checkpoint(&c.bundle, "mnt", &out, &image);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "ready\n");
    let kernel = read_json(&image.join("kernel.json"));
    let mounts = kernel["mount_namespaces"][0]["mounts"].as_array().unwrap();
    let mnt = mounts
        .iter()
        .find(|m| m["path"] == "/mnt")
        .expect("/mnt in the image");
    assert_eq!(mnt["fs_type"], "tmpfs", "{mnt}");
    assert!(!mounts.iter().any(|m| m["path"] == "/sys"), "{mounts:?}");

    for n in 1..=2 {
        let id = format!("mnt{n}");
        let out = c.file(format!("out-{id}"));
        let (code, text) = c.rt.restore_detached(&image, &c.bundle, &id, &out);
        assert_eq!(code, 0, "restore {id}: {text}");
        assert!(
            wait_text(&out, "done\n", Duration::from_secs(30)),
            "{id}: not done after the restore: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "kept\n/dev/shm tmpfs ro\n/mnt tmpfs rw\n750\nshm read-only\ndone\n",
            "{id}"
        );
        let (code, text) = c.rt.run(&["delete", "--force", &id]);
        assert_eq!(code, 0, "delete {id}: {text}");
    }
}

/// Runs `script` (sh, `$1` its pause: 0.1 s) natively in a network namespace of its own;
/// returns the static busybox for the sandbox's run and what the script printed, which ends
/// with `done`; `None` (after printing why it skips) when the test cannot run here.
fn iptables_natively(script: &str) -> Option<(&'static str, String)> {
    let skip = |reason: &str| {
        runsc_rs_tests::skip(reason);
        None
    };
    for tool in ["/usr/sbin/iptables-legacy", "/usr/sbin/ip6tables-legacy"] {
        if !Path::new(tool).is_file() {
            return skip(&format!("{tool} is not installed (package iptables)"));
        }
    }
    if !nix::unistd::geteuid().is_root() {
        return skip("the native run needs root for unshare -n");
    }
    let busybox = static_busybox()?;
    let native = Command::new("unshare")
        .args(["-n", "sh", "-c"])
        .arg(format!("ip link set lo up || exit 99\n{script}"))
        .args(["sh", "0.1"])
        .output()
        .unwrap();
    let native_out = String::from_utf8_lossy(&native.stdout).into_owned();
    let native_err = String::from_utf8_lossy(&native.stderr);
    if native.status.code() == Some(99) || native_err.contains("can't initialize") {
        return skip(&format!("no legacy iptables natively: {native_err}"));
    }
    assert!(
        native_out.ends_with("done\n"),
        "natively: {native_out}{native_err}"
    );
    Some((busybox, native_out))
}

/// A bundle running `script` under sh with a pause of 6 s (the checkpoint falls in it), with
/// iptables, python3 and their libraries from the host's /usr, iptables' lock file in a tmpfs
/// /run, and CAP_NET_ADMIN and CAP_NET_RAW.
fn iptables_bundle(dir: &Path, rt: &Runtime, busybox: &str, script: &str) -> PathBuf {
    let bundle = bundle(dir, rt, busybox, &["sh", "-c", script, "sh", "6"]);
    let rootfs = bundle.join("rootfs");
    for dir in ["usr", "run"] {
        std::fs::create_dir(rootfs.join(dir)).unwrap();
    }
    for link in ["lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), rootfs.join(link)).unwrap();
    }
    let config = bundle.join("config.json");
    let mut value = read_json(&config);
    let mounts = value["mounts"].as_array_mut().unwrap();
    mounts.push(serde_json::json!({
        "destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]
    }));
    mounts.push(serde_json::json!({
        "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
    }));
    add_capabilities(&mut value, &["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    std::fs::write(&config, value.to_string()).unwrap();
    bundle
}

/// A listener on 127.0.0.1:8080 behind a nat OUTPUT REDIRECT of 127.0.0.2:80, asked once
/// before the pause `$1` (the checkpoint falls in it) and once after: each connection to
/// 127.0.0.2:80 is accepted by the listener, whose end's `SO_ORIGINAL_DST` names 127.0.0.2:80,
/// and the listener reads what the client sent.
const REDIRECT_SCRIPT: &str = r#"iptables-legacy -t nat -A OUTPUT -p tcp -d 127.0.0.2 --dport 80 \
  -j REDIRECT --to-ports 8080 || echo setup failed
python3 -c 'import socket, struct, sys, time
srv = socket.socket()
srv.bind(("127.0.0.1", 8080))
srv.listen(4)
def ask(tag):
    c = socket.create_connection(("127.0.0.2", 80), timeout=10)
    s, _ = srv.accept()
    od = s.getsockopt(socket.SOL_IP, 80, 16)
    c.sendall(tag.encode())
    got = s.recv(16).decode()
    print(got, socket.inet_ntoa(od[4:8]), struct.unpack("!H", od[2:4])[0], flush=True)
    s.close()
    c.close()
ask("before")
print("ready", flush=True)
time.sleep(float(sys.argv[1]))
print("restored", flush=True)
ask("after")
print("done", flush=True)' "$1"
"#;

/// A listening socket behind a REDIRECT rule keeps working after a restore: the image holds
/// the rule and the listener (not the translations of connections, which a restore resets),
/// and a new connection to the redirected address after the restore reaches the listener
/// with the original destination, as natively.
#[test]
fn restore_keeps_a_listener_behind_a_redirect_rule() {
    let Some((busybox, native_out)) = iptables_natively(REDIRECT_SCRIPT) else {
        return;
    };
    assert_eq!(
        native_out,
        "before 127.0.0.2 80\nready\nrestored\nafter 127.0.0.2 80\ndone\n"
    );
    iptables_checkpoint_and_restore("redirect", busybox, REDIRECT_SCRIPT, &native_out, |_| {});
}

/// Runs `script` in a container with `busybox` and the iptables tools ([`iptables_bundle`]),
/// checkpoints it at `ready` (`check_image` looks at the image), restores it and waits for
/// `done`; asserts that what it printed before and after equals `native_out` (from
/// [`iptables_natively`]) and returns the two parts.
fn iptables_checkpoint_and_restore(
    id: &str,
    busybox: &str,
    script: &str,
    native_out: &str,
    check_image: impl FnOnce(&Path),
) -> (String, String) {
    let scratch = Scratch::new(id);
    let mut rt = Runtime::new(scratch.path());
    let bundle = iptables_bundle(scratch.path(), &rt, busybox, script);
    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, id, &out, &image);
    let before = std::fs::read_to_string(&out).unwrap();
    check_image(&image);
    let restored_out = scratch.path().join("out-restored");
    let restored_id = format!("{id}-restored");
    let (code, text) = rt.restore_detached(&image, &bundle, &restored_id, &restored_out);
    assert_eq!(code, 0, "restore: {text}");
    assert!(
        wait_text(&restored_out, "done\n", Duration::from_secs(30)),
        "not done after the restore: {}",
        std::fs::read_to_string(&restored_out).unwrap_or_default()
    );
    let after = std::fs::read_to_string(&restored_out).unwrap();
    assert_eq!(
        format!("{before}{after}"),
        native_out,
        "sandbox (left), native (right)"
    );
    (before, after)
}

/// The vDSO comes back where it was (glibc keeps pointers into it) with the restoring
/// sentry's clock parameters: CLOCK_MONOTONIC read through it never goes back across the
/// checkpoint, and its clocks agree with the system calls afterwards. `ckpt_vdso.c`
/// natively, with a short sleep instead of the checkpoint, prints the same lines.
#[test]
fn restore_keeps_the_vdso_at_its_address_with_fresh_clocks() {
    checkpoint_program_like_native(
        "ckpt_vdso",
        "vdso",
        "ready\nmaps=same monotonic=yes agrees=yes\ndone\n",
    );
}

/// The container's init (the "outer" view): a shared tmpfs on `/mnt`, then a process in a
/// mount namespace of its own (`unshare -m`, every mount made shared: its `/mnt` is a peer of
/// the init's) that runs [`INNER_VIEW`] and waits for it to set up. Both print their
/// `/proc/self/mountinfo` (IDs and device numbers cut) before the checkpoint (`$1` is the
/// pause it falls in) and after; then the inner process mounts on its `/mnt`, which the init
/// must see (propagation after the restore).
const OUTER_VIEW: &str = r#"M="busybox mount"
info() { sed "s/^[0-9]* [0-9]* [0-9:]* /$1 /" /proc/self/mountinfo; }
$M -t tmpfs -o size=1m none /mnt && $M --make-shared /mnt && mkdir /mnt/late \
  && echo outer > /mnt/o || echo outer setup failed
unshare -m --propagation shared sh -c "$(cat /inner.sh)" inner "$1" &
while [ ! -e /mnt/inner-ready ]; do sleep 0.05; done
info outer-before
echo ready
sleep $1
info outer-after
: > /mnt/go
wait
cat /mnt/late/l
[ -e /data/d ] || echo outer sees no /data/d
echo all done
"#;

/// The process in its own mount namespace: a tmpfs on `/data` with a tmpfs below it, a
/// bind of one of its directories remounted read-only, a bind of one of its files, a
/// recursive bind of `/data` (taking the submount along) and a bind of a directory of the
/// root filesystem.
const INNER_VIEW: &str = r#"M="busybox mount"
info() { sed "s/^[0-9]* [0-9]* [0-9:]* /$1 /" /proc/self/mountinfo; }
$M -t tmpfs -o mode=700 none /data && mkdir /data/d /data/sub && echo bound > /data/d/b \
  && echo file > /data/f && $M --bind /data/d /bindd && $M -o remount,bind,ro /bindd \
  && $M --bind /data/f /bfile && $M -t tmpfs none /data/sub && echo sub > /data/sub/s \
  && $M --rbind /data /rdata && $M --bind /bin /rbin || echo inner setup failed
info inner-before
: > /mnt/inner-ready
sleep $1
info inner-after
cat /bindd/b /bfile /rdata/sub/s /mnt/o
ls /rbin | grep -x busybox
touch /bindd/x 2>/dev/null || echo bindd read-only
while [ ! -e /mnt/go ]; do sleep 0.05; done
$M -t tmpfs none /mnt/late && echo late > /mnt/late/l || echo late mount failed
echo inner-done
"#;

/// The lines of `text` that start with `tag`, without it, sorted.
fn tagged(text: &str, tag: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(tag))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// A process in a mount namespace of its own keeps its view after a restore (a tmpfs,
/// binds of a directory, read-only, and of a file, a recursive bind, a bind of the root
/// filesystem's directory) while the container's init keeps its own, twice from one
/// image: each one's mountinfo (IDs and device numbers cut) is the same before and after,
/// and a mount on the shared `/mnt` in one namespace still shows in the other.
#[test]
fn restore_keeps_mount_namespaces_bind_mounts_and_propagation() {
    let Some(mut c) = busybox_container("mntns", &["sh", "-c", OUTER_VIEW, "sh", "6"]) else {
        return;
    };
    let rootfs = c.bundle.join("rootfs");
    for applet in ["mkdir", "ls", "grep", "touch", "sed", "unshare"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    for dir in ["mnt", "data", "bindd", "rdata", "rbin"] {
        std::fs::create_dir(rootfs.join(dir)).unwrap();
    }
    std::fs::write(rootfs.join("bfile"), "").unwrap();
    std::fs::write(rootfs.join("inner.sh"), INNER_VIEW).unwrap();
    c.configure(|config| add_capabilities(config, &["CAP_SYS_ADMIN"]));

    let out = c.file("out");
    let image = c.file("image");
    c.rt.start_and_checkpoint(&c.bundle, "mntns", &out, &image);
    let before = std::fs::read_to_string(&out).unwrap();
    assert!(!before.contains("failed"), "{before}");
    let (inner, outer) = (
        tagged(&before, "inner-before "),
        tagged(&before, "outer-before "),
    );
    assert!(inner.iter().any(|l| l.contains(" /bindd ")), "{before}");
    assert!(!outer.iter().any(|l| l.contains(" /data ")), "{before}");
    let kernel = read_json(&image.join("kernel.json"));
    assert_eq!(
        kernel["mount_namespaces"].as_array().map(Vec::len),
        Some(2),
        "two mount namespaces in the image"
    );

    for n in 1..=2 {
        let id = format!("mntns{n}");
        let out = c.file(format!("out-{id}"));
        let (code, text) = c.rt.restore_detached(&image, &c.bundle, &id, &out);
        assert_eq!(code, 0, "restore {id}: {text}");
        assert!(
            wait_text(&out, "all done", Duration::from_secs(30)),
            "{id}: not done after the restore: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        );
        let after = std::fs::read_to_string(&out).unwrap();
        assert_eq!(tagged(&after, "inner-after "), inner, "{id}: {after}");
        assert_eq!(tagged(&after, "outer-after "), outer, "{id}: {after}");
        let rest: Vec<&str> = after
            .lines()
            .filter(|l| !l.starts_with("inner-after ") && !l.starts_with("outer-after "))
            .collect();
        assert_eq!(
            rest,
            [
                "bound",
                "file",
                "sub",
                "outer",
                "busybox",
                "bindd read-only",
                "inner-done",
                "late",
                "outer sees no /data/d",
                "all done"
            ],
            "{id}"
        );
        let (code, text) = c.rt.run(&["delete", "--force", &id]);
        assert_eq!(code, 0, "delete {id}: {text}");
    }
}

/// Runs `setup` (with CAP_SYS_ADMIN), then the counter; its checkpoint must fail naming
/// `refused`, write no image, and leave the container running.
fn checkpoint_refuses_by_name(tag: &str, setup: &str, refused: &str) {
    let script = format!("{setup} || echo setup failed; {}", COUNTER[2]);
    let Some(mut c) = busybox_container(tag, &["sh", "-c", &script]) else {
        return;
    };
    std::fs::create_dir(c.bundle.join("rootfs/mnt")).unwrap();
    std::os::unix::fs::symlink("busybox", c.bundle.join("rootfs/bin/unshare")).unwrap();
    c.configure(|config| add_capabilities(config, &["CAP_SYS_ADMIN"]));
    let out = c.file("out");
    c.rt.run_detached(&c.bundle, tag, &out);
    assert!(wait_count(&out, 3) >= 3, "the counter never ran");
    assert!(!std::fs::read_to_string(&out).unwrap().contains("failed"));
    let image = c.file("image");
    let (code, text) = c.rt.checkpoint(&image, tag);
    assert_ne!(code, 0, "{tag}: checkpointed: {text}");
    assert!(
        text.contains(&format!("cannot checkpoint: {refused}")),
        "{text}"
    );
    assert!(!image.join("header.json").exists());
    assert_eq!(c.rt.status(tag), "running");
    let at = last_count(&out);
    assert!(
        wait_count(&out, at + 3) >= at + 3,
        "the refused checkpoint left it stopped"
    );
}

/// A mount the image cannot make again (a devpts instance of its own: its options are not
/// kept) fails the checkpoint by name, writes no image, and leaves the container running.
#[test]
fn checkpoint_refuses_a_devpts_instance_of_its_own_by_name() {
    checkpoint_refuses_by_name(
        "devpts",
        "busybox mount -t devpts none /mnt",
        "the devpts mount at /mnt (a devpts instance of its own",
    );
}

/// An open `/dev/fuse` (a FUSE daemon's connection, which the image cannot hold) fails the
/// checkpoint by name.
#[test]
fn checkpoint_refuses_an_open_dev_fuse_by_name() {
    checkpoint_refuses_by_name(
        "devfuse",
        "exec 3<>/dev/fuse",
        "fd 3 is a /dev/fuse file: its connection is not saved",
    );
}

/// So does a proc mounted at run time in a mount namespace of its own (`unshare -m
/// --mount-proc`), whose PID namespace the image does not tie it to.
#[test]
fn checkpoint_refuses_a_proc_of_a_mount_namespace_of_its_own_by_name() {
    checkpoint_refuses_by_name(
        "mntproc",
        "(unshare -m --mount-proc sleep 1000 &); sleep 0.5",
        "the proc mount at /proc (a filesystem made at run time in a mount namespace of its own",
    );
}

/// Names of files in a tmpfs mount (`/dev/shm`) and in the root overlay's upper layer
/// (`/tmp/l`), as `stat -c '%i %h %Y %X %Z'` shows them, printed as `TAG PATH STAT`.
const LINKS_AND_TIMES_STAT: &str = "st() { for p in /dev/shm/f /dev/shm/g /dev/shm/d \
    /dev/shm/d/h /dev/shm/d/k /tmp/l/u /tmp/l/v; do echo \"$1 $p $(stat -c '%i %h %Y %X %Z' $p)\"; \
    done; }";

/// The `STAT` fields of the lines tagged `tag`, by path.
fn stats_tagged(text: &str, tag: &str) -> std::collections::BTreeMap<String, Vec<u64>> {
    text.lines()
        .filter_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
        .map(|l| {
            let mut f = l.split_whitespace();
            let path = f.next().unwrap().to_owned();
            (path, f.map(|n| n.parse().unwrap()).collect())
        })
        .collect()
}

/// Hard links and set times of tmpfs and overlay upper-layer files survive a restore: the
/// two names of a file are one inode again with the link count it had, and the access,
/// modification and change times (`touch -d` set the first two) are the saved ones, for
/// files and for a directory.
#[test]
fn restore_keeps_tmpfs_hard_links_and_times() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let scratch = Scratch::new("links");
    let mut rt = Runtime::new(scratch.path());
    let script = format!(
        "{LINKS_AND_TIMES_STAT}; cd /dev/shm && echo x > f && ln f g && mkdir d && \
         echo y > d/h && ln d/h d/k && touch -d '2001-02-03 04:05:06' f d/h d && mkdir -p /tmp/l && cd /tmp/l && \
         echo z > u && ln u v && touch -d '2003-04-05 06:07:08' u && cd / && st B && \
         echo ready; sleep 6; st A; echo done; exec sleep 1000"
    );
    let bundle = bundle(scratch.path(), &rt, busybox, &["sh", "-c", &script]);
    let out = scratch.path().join("out");
    let image = scratch.path().join("image");
    rt.start_and_checkpoint(&bundle, "links", &out, &image);
    let before = stats_tagged(&std::fs::read_to_string(&out).unwrap(), "B");
    assert_eq!(before.len(), 7, "{before:?}");
    let restored_out = scratch.path().join("out-restored");
    let (code, text) = rt.restore_detached(&image, &bundle, "links-restored", &restored_out);
    assert_eq!(code, 0, "restore: {text}");
    assert!(
        wait_text(&restored_out, "done\n", Duration::from_secs(30)),
        "not done after the restore: {}",
        std::fs::read_to_string(&restored_out).unwrap_or_default()
    );
    let after = stats_tagged(&std::fs::read_to_string(&restored_out).unwrap(), "A");
    for (path, b) in &before {
        let a = &after[path];
        assert_eq!(
            a[1..],
            b[1..],
            "{path}: nlink, mtime, atime, ctime: after, before"
        );
    }
    for (one, other) in [
        ("/dev/shm/f", "/dev/shm/g"),
        ("/dev/shm/d/h", "/dev/shm/d/k"),
        ("/tmp/l/u", "/tmp/l/v"),
    ] {
        assert_eq!(
            after[one][0], after[other][0],
            "{one} and {other} are not one inode"
        );
        assert_eq!(after[one][1], 2, "{one}: nlink");
    }
    assert_ne!(
        before["/dev/shm/f"][2], before["/tmp/l/u"][2],
        "touch -d did not set the times"
    );
}

/// A shell running a script file of the rootfs (which it holds open, in the root overlay's
/// lower layer) is restored and goes on counting: the image records the file's identity as
/// the restore's path lookup sees it (the overlay's), not the host file's.
#[test]
fn restore_keeps_a_script_of_the_rootfs_open() {
    let Some(mut c) = busybox_container("script", &["sh", "/count.sh"]) else {
        return;
    };
    std::fs::write(
        c.bundle.join("rootfs/count.sh"),
        "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done\n",
    )
    .unwrap();
    let out = c.file("out");
    c.rt.run_detached(&c.bundle, "script", &out);
    let before = wait_count(&out, 3);
    assert!(before >= 3, "the script never counted");
    let image = c.file("image");
    let (code, text) = c.rt.checkpoint(&image, "script");
    assert_eq!(code, 0, "checkpoint: {text}");
    let at_checkpoint = last_count(&out);
    let out2 = c.file("out2");
    let (code, text) = c.rt.restore_detached(&image, &c.bundle, "script2", &out2);
    assert_eq!(code, 0, "restore: {text}");
    let after = wait_count(&out2, at_checkpoint + 3);
    assert!(
        after > at_checkpoint,
        "the restored script did not go on from {at_checkpoint}: {}",
        std::fs::read_to_string(&out2).unwrap_or_default()
    );
}
