//! Real engines driving `runsc-rs` as their OCI runtime: Podman (`--runtime PATH`, through
//! conmon) and Docker (a dockerd of the test's own with `runtimes` in its daemon.json,
//! through containerd's runc shim). Each uses its own storage, state and socket under a fresh
//! directory, a local image imported from a busybox-static tarball (no registry), and no
//! network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use runsc_rs_tests::tmux::Tmux;
use runsc_rs_tests::{runsc_rs_bin, skip, static_busybox, Scratch};

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// An image tarball: busybox-static and a few applets.
fn image_tar(dir: &Path, busybox: &str) -> PathBuf {
    let root = dir.join("image");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in [
        "sh", "echo", "sleep", "cat", "stty", "tty", "readlink", "ls", "stat",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tar = dir.join("image.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar failed");
    tar
}

/// Runs `cmd` with `stdin`, with a time limit.
fn output(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write as _;
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{shown} did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An engine CLI with its fixed options.
#[derive(Clone)]
struct Engine {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// `run` options every container gets.
    run_opts: Vec<String>,
    /// Where the engine's commands run: the test's own directory, so that nothing an engine
    /// or runtime writes to a relative path lands in the source tree.
    cwd: PathBuf,
}

impl Engine {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.current_dir(&self.cwd).args(&self.args).args(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with_stdin(args, b"")
    }

    fn ok_with_stdin(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = output(self.cmd(args), stdin);
        assert!(
            out.status.success(),
            "{} {args:?}: {}\nstderr: {}",
            self.program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `stop` and `rm -f`: podman 4.3 runs its own cleanup in the command and in the
    /// `container cleanup` that conmon starts when the container exits; when both unmount the
    /// container's shm at once, the loser fails with EBUSY though the container is stopped.
    /// That podman race is retried once; any other failure fails the test.
    fn ok_racing_cleanup(&self, args: &[&str]) {
        let out = output(self.cmd(args), b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("device or resource busy") {
            std::thread::sleep(Duration::from_millis(500));
            self.ok(args);
            return;
        }
        assert!(
            out.status.success(),
            "{args:?}: {}\nstderr: {stderr}",
            out.status
        );
    }

    fn code(&self, args: &[&str]) -> i32 {
        output(self.cmd(args), b"").status.code().unwrap_or(-1)
    }

    /// The same engine with option `ours` replaced by `theirs` (runc for the reference).
    fn with_runtime(&self, ours: &str, theirs: &str) -> Engine {
        let swap = |v: &Vec<String>| {
            v.iter()
                .map(|a| {
                    if a == ours {
                        theirs.to_owned()
                    } else {
                        a.clone()
                    }
                })
                .collect()
        };
        Engine {
            args: swap(&self.args),
            run_opts: swap(&self.run_opts),
            ..self.clone()
        }
    }

    /// `run -it` in a tmux window, as a person at a terminal: the shell has a terminal of
    /// the window's size, named by `tty` and `/proc/self/fd/0`, a resize reaches the
    /// foreground job as SIGWINCH and shows in `stty size`, `^C` ends the foreground `sleep`
    /// but not the shell, `docker exec -t` gets a terminal too (and its name), and the engine
    /// exits with the shell's `exit 3`. Returns the transcript, to compare with runc's.
    fn terminal_session(&self, image: &str, dir: &Path, tag: &str) -> Vec<String> {
        let status_file = dir.join(format!("tty-{tag}.status"));
        let tmux = Tmux {
            socket: dir.join(format!("tmux-{tag}.sock")),
            session: "oci".to_owned(),
        };
        let name = format!("tty-{tag}");
        let mut cmd = vec!["env".to_owned()];
        cmd.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.push(self.program.display().to_string());
        cmd.extend(self.args.iter().cloned());
        cmd.extend(
            self.run_args(&["run", "--rm", "-it", "--name", &name], &[image, "sh"])
                .iter()
                .map(|a| (*a).to_owned()),
        );
        let session = format!(
            "timeout --foreground -k 5 120 {}; echo $? > {}",
            cmd.join(" "),
            status_file.display()
        );
        let started = tmux.command(&[
            "new-session",
            "-d",
            "-s",
            "oci",
            "-x",
            "100",
            "-y",
            "30",
            &session,
        ]);
        assert!(started.status.success(), "tmux: {}", text(&started.stderr));
        let mut t = Vec::new();
        let prompts = |s: &[String]| s.iter().filter(|l| l.starts_with("/ #")).count();
        tmux.wait_for("the shell's prompt", |s| prompts(s) >= 1);
        tmux.send(&["test -t 0 && echo on-a-tty", "Enter"]);
        tmux.wait_line("on-a-tty");
        // dockerd 20.10 sizes the terminal only after `start` (through the pty's master), so
        // a shell quick to its prompt may still see 0x0 (runc's too): ask until it is set,
        // as a person would.
        let sized = |s: &[String]| s.iter().any(|l| l == "30 100");
        for _ in 0..20 {
            tmux.send(&["stty size", "Enter"]);
            std::thread::sleep(Duration::from_millis(300));
            if sized(&tmux.screen()) {
                break;
            }
        }
        tmux.wait_line("30 100");
        t.push("on-a-tty 30 100".to_owned());
        // The name of the terminal, and `/dev/console` (runc binds the init's terminal there).
        let names = concat!(
            "echo name=$(tty) fd0=$(readlink /proc/self/fd/0)",
            " console=$(stat -c %t:%T /dev/console)"
        );
        tmux.send(&[names, "Enter"]);
        tmux.wait_for("the terminal's name", |s| {
            s.iter().any(|l| l.starts_with("name="))
        });
        let screen = tmux.screen();
        let name_line = screen.iter().find(|l| l.starts_with("name=")).unwrap();
        t.push(name_line.clone());
        // A background job that reads the terminal stops (SIGTTIN) instead of taking what
        // is typed for the shell.
        tmux.send(&["cat &", "Enter"]);
        std::thread::sleep(Duration::from_millis(300));
        tmux.send(&["echo typed-for-the-shell", "Enter"]);
        tmux.wait_line("typed-for-the-shell");
        tmux.wait_for("the background cat stopped", |s| {
            s.iter().any(|l| l.contains("Stopped (tty input)"))
        });
        tmux.send(&["kill -9 %1", "Enter"]);
        t.push("background read stops".to_owned());
        tmux.send(&[
            "sh -c 'trap \"echo got-winch; exit\" WINCH; echo waiting; while :; do sleep 0.2; done'",
            "Enter",
        ]);
        tmux.wait_line("waiting");
        let resized = tmux.command(&["resize-window", "-t", "oci", "-x", "120", "-y", "40"]);
        assert!(resized.status.success(), "tmux: {}", text(&resized.stderr));
        tmux.wait_line("got-winch");
        tmux.send(&["stty size", "Enter"]);
        tmux.wait_line("40 120");
        t.push("got-winch 40 120".to_owned());
        tmux.send(&["sh -c 'echo sleeping; exec sleep 100'", "Enter"]);
        tmux.wait_line("sleeping");
        std::thread::sleep(Duration::from_millis(300));
        let before = prompts(&tmux.screen());
        tmux.send(&["C-c"]);
        tmux.wait_for("a prompt after ^C", |s| prompts(s) > before);
        tmux.send(&["echo still-here", "Enter"]);
        tmux.wait_line("still-here");
        t.push("^C ended sleep, shell still-here".to_owned());
        let out = self.ok(&[
            "exec",
            "-t",
            &name,
            "sh",
            "-c",
            "test -t 1 && echo exec-tty; tty",
        ]);
        t.push(format!("exec -t: {:?}", out.replace('\r', "")));
        tmux.send(&["exit 3", "Enter"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let status = std::fs::read_to_string(&status_file).unwrap_or_default();
            if status.ends_with('\n') {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "run -it did not exit after `exit 3`; the terminal shows:\n{}",
                tmux.screen().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        t.push(format!("exit {}", status.trim()));
        t
    }

    /// `inspect --format FORMAT NAME`, trimmed.
    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, name])
            .trim()
            .to_owned()
    }

    /// Polls `inspect` until it says `want` (30 s at most); returns what it last said.
    fn wait_inspect(&self, name: &str, format: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.inspect(name, format);
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The memory limit of the cgroup a running container's PID is in (v1 or v2).
    fn memory_limit(&self, name: &str) -> String {
        let pid = self.inspect(name, "{{.State.Pid}}");
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        for line in cgroups.lines() {
            let mut f = line.splitn(3, ':');
            let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
            if controllers.split(',').any(|c| c == "memory") {
                let file = format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes");
                return std::fs::read_to_string(file)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
            }
            if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                let file = format!("/sys/fs/cgroup{path}/memory.max");
                return std::fs::read_to_string(file)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
            }
        }
        "no memory cgroup".to_owned()
    }

    /// What engines do with a runtime beyond run/exec/stop: logs, a restart policy, stop of
    /// an init that traps SIGTERM, `--memory` (the limit in the cgroup, an allocation past it
    /// killed as by the OOM killer), `update`. Returns the transcript, to compare with runc's.
    fn features(&self, image: &str) -> Vec<String> {
        let mut t = Vec::new();
        self.ok(&self.run_args(
            &["run", "-d", "--name", "lg"],
            &[image, "sh", "-c", "echo out; echo err >&2"],
        ));
        t.push(format!("wait {}", self.ok(&["wait", "lg"]).trim()));
        let out = output(self.cmd(&["logs", "lg"]), b"");
        t.push(format!(
            "logs {:?} {:?}",
            text(&out.stdout),
            text(&out.stderr)
        ));
        self.ok(&["rm", "lg"]);

        // runc reports a missing program at `create`; engines tell it from a runtime failure
        // by the message (127 rather than 126).
        let out = output(
            self.cmd(&self.run_args(&["run", "--rm"], &[image, "nosuchcmd"])),
            b"",
        );
        t.push(format!(
            "missing command: exit {:?}, says not found {}",
            out.status.code(),
            text(&out.stderr).contains("executable file not found")
        ));

        // The engine's default seccomp profile (unshare needs CAP_SYS_ADMIN there) and
        // no-new-privileges reach the container's processes.
        let out = self.ok(&self.run_args(
            &["run", "--rm", "--security-opt", "no-new-privileges"],
            &[
                image,
                "sh",
                "-c",
                "busybox unshare -U true 2>/dev/null; echo unshare=$?; \
                 busybox grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
            ],
        ));
        t.push(format!("default seccomp profile {out:?}"));

        self.ok(&self.run_args(
            &["run", "-d", "--name", "rs", "--restart", "on-failure:2"],
            &[image, "sh", "-c", "exit 1"],
        ));
        let restarts = self.wait_inspect("rs", "{{.RestartCount}} {{.State.Status}}", "2 exited");
        t.push(format!("restarts {restarts}"));
        t.push(format!(
            "exit {}",
            self.inspect("rs", "{{.State.ExitCode}}")
        ));
        self.ok_racing_cleanup(&["rm", "-f", "rs"]);

        self.ok(&self.run_args(
            &["run", "-d", "--name", "tr"],
            &[
                image,
                "sh",
                "-c",
                "trap 'echo term; exit 0' TERM; echo up; while :; do sleep 1; done",
            ],
        ));
        self.wait_logs("tr", "up\n");
        let begun = Instant::now();
        self.ok_racing_cleanup(&["stop", "-t", "20", "tr"]);
        t.push(format!(
            "stop trapped: exit {} within 10 s {}",
            self.inspect("tr", "{{.State.ExitCode}}"),
            begun.elapsed() < Duration::from_secs(10)
        ));
        t.push(format!("logs {:?}", self.ok(&["logs", "tr"])));
        self.ok(&["rm", "tr"]);

        let code = self.code(&self.run_args(
            &[
                "run",
                "--name",
                "oom",
                "--memory",
                "64m",
                "--memory-swap",
                "64m",
            ],
            &[
                image,
                "busybox",
                "dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=128M",
                "count=1",
            ],
        ));
        t.push(format!("oom run {code}"));
        t.push(format!(
            "oom state {}",
            self.inspect("oom", "{{.State.ExitCode}} {{.State.OOMKilled}}")
        ));
        self.ok(&["rm", "oom"]);

        self.ok(&self.run_args(
            &[
                "run",
                "-d",
                "--name",
                "up",
                "--memory",
                "64m",
                "--memory-swap",
                "64m",
            ],
            &[image, "sleep", "1000"],
        ));
        t.push(format!("limit {}", self.memory_limit("up")));
        self.ok(&["update", "--memory", "96m", "--memory-swap", "96m", "up"]);
        t.push(format!("updated limit {}", self.memory_limit("up")));
        self.ok_racing_cleanup(&["rm", "-f", "up"]);
        t
    }

    /// Waits until `logs NAME` shows `want`.
    fn wait_logs(&self, name: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ok(&["logs", name]) != want {
            assert!(Instant::now() < deadline, "{name} never logged {want:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The features and the terminal session on runsc-rs and on runc give the same
    /// transcripts.
    fn matches_runc(&self, reference: &Engine, image: &str, dir: &Path) {
        let ours = self.features(image);
        let theirs = reference.features(image);
        assert_eq!(ours, theirs, "runsc-rs's transcript differs from runc's");
        self.terminal_matches(reference, image, dir);
    }

    /// The terminal session on runsc-rs and on runc give the same transcript.
    fn terminal_matches(&self, reference: &Engine, image: &str, dir: &Path) {
        if which("tmux").is_none() {
            skip("terminal check: tmux is not installed");
            return;
        }
        let ours = self.terminal_session(image, dir, "ours");
        let theirs = reference.terminal_session(image, dir, "runc");
        assert_eq!(
            ours, theirs,
            "runsc-rs's terminal session differs from runc's"
        );
    }

    fn run_args<'a>(&'a self, head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = head.to_vec();
        v.extend(self.run_opts.iter().map(String::as_str));
        v.extend_from_slice(tail);
        v
    }

    /// The same checks for both engines: output, exit status, exec (status and stdin),
    /// stop (SIGTERM ignored by a PID 1 without a handler, then SIGKILL: 137), kill, rm.
    fn exercise(&self, image: &str) {
        let out = self.ok(&self.run_args(&["run", "--rm"], &[image, "echo", "hi"]));
        assert_eq!(out, "hi\n");
        let code = self.code(&self.run_args(&["run", "--rm"], &[image, "sh", "-c", "exit 5"]));
        assert_eq!(code, 5, "run's exit status");

        self.ok(&self.run_args(&["run", "-d", "--name", "svc"], &[image, "sleep", "1000"]));
        let out = self.ok(&[
            "exec",
            "svc",
            "sh",
            "-c",
            "echo in-exec; cat /proc/1/cmdline",
        ]);
        assert_eq!(out, "in-exec\nsleep\u{0}1000\u{0}");
        assert_eq!(self.code(&["exec", "svc", "sh", "-c", "exit 4"]), 4);
        let out = self.ok_with_stdin(&["exec", "-i", "svc", "cat"], b"through stdin\n");
        assert_eq!(out, "through stdin\n");
        self.ok_racing_cleanup(&["stop", "-t", "1", "svc"]);
        let state = self.ok(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            "svc",
        ]);
        assert_eq!(state.trim(), "exited 137");
        self.ok(&["rm", "svc"]);

        self.ok(&self.run_args(
            &["run", "-d", "--name", "killed"],
            &[image, "sleep", "1000"],
        ));
        self.ok(&["kill", "killed"]);
        assert_eq!(self.ok(&["wait", "killed"]).trim(), "137");
        self.ok(&["rm", "killed"]);

        self.ok(&self.run_args(
            &["run", "-d", "--name", "forced"],
            &[image, "sleep", "1000"],
        ));
        self.ok_racing_cleanup(&["rm", "-f", "forced"]);
        assert_eq!(self.ok(&["ps", "-aq"]).trim(), "", "containers left");
    }
}

fn root_with(program: &str) -> Option<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        skip(&format!("{program} needs root here"));
        return None;
    }
    let found = which(program);
    if found.is_none() {
        skip(&format!("{program} is not installed (apt-get install it)"));
    }
    found
}

#[test]
fn podman_runs_containers_on_runsc_rs() {
    let (Some(busybox), Some(podman)) = (static_busybox(), root_with("podman")) else {
        return;
    };
    let scratch = Scratch::new("podman");
    let d = &scratch.0;
    let path = |p: &str| d.join(p).to_string_lossy().into_owned();
    let engine = Engine {
        program: podman,
        args: vec![
            format!("--root={}", path("storage")),
            format!("--runroot={}", path("run")),
            "--storage-driver=vfs".into(),
            "--cgroup-manager=cgroupfs".into(),
            "--events-backend=file".into(),
            format!("--tmpdir={}", path("tmp")),
            format!("--runtime={}", runsc_rs_bin().display()),
        ],
        env: vec![("CONTAINERS_CONF".into(), path("containers.conf"))],
        run_opts: [
            "--network=none",
            "--ulimit=nofile=1024:1024",
            "--ulimit=nproc=1024:1024",
        ]
        .map(String::from)
        .to_vec(),
        cwd: d.clone(),
    };
    // No host containers.conf decides anything for the test.
    std::fs::write(d.join("containers.conf"), "").unwrap();
    let tar = image_tar(d, busybox);
    engine.ok(&["import", tar.to_str().unwrap(), "localhost/runsc-rs-bb:1"]);
    engine.exercise("localhost/runsc-rs-bb:1");
    if let Some(runc) = which("runc") {
        let ours = format!("--runtime={}", runsc_rs_bin().display());
        let reference = engine.with_runtime(&ours, &format!("--runtime={}", runc.display()));
        engine.matches_runc(&reference, "localhost/runsc-rs-bb:1", d);
    } else {
        skip("runc is not installed: no reference for the terminal check");
    }
    engine.ok(&["rmi", "-a", "-f"]);
}

/// A dockerd of the test's own; stopped (and waited for) on drop.
struct Dockerd(Child);

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn docker_runs_containers_on_runsc_rs() {
    let (Some(busybox), Some(dockerd), Some(_)) =
        (static_busybox(), root_with("dockerd"), which("containerd"))
    else {
        return;
    };
    let Some(docker) = which("docker") else {
        skip("the docker CLI is not installed");
        return;
    };
    let scratch = Scratch::new("docker");
    let d = &scratch.0;
    let path = |p: &str| d.join(p).to_string_lossy().into_owned();
    let config = serde_json::json!({
        "runtimes": {"runsc-rs": {"path": runsc_rs_bin()}}
    });
    std::fs::write(d.join("daemon.json"), config.to_string()).unwrap();
    let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
    let socket = format!("unix://{}", path("docker.sock"));
    let daemon = Dockerd(
        Command::new(dockerd)
            .current_dir(d)
            .arg(format!("--data-root={}", path("data")))
            .arg(format!("--exec-root={}", path("exec")))
            .arg(format!("--host={socket}"))
            .arg(format!("--pidfile={}", path("docker.pid")))
            .arg(format!("--config-file={}", path("daemon.json")))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--exec-opt=native.cgroupdriver=cgroupfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd"),
    );
    let engine = Engine {
        program: docker,
        args: vec![],
        env: vec![
            ("DOCKER_HOST".into(), socket),
            ("DOCKER_CONFIG".into(), path("client")),
        ],
        run_opts: ["--runtime=runsc-rs", "--network=none"]
            .map(String::from)
            .to_vec(),
        cwd: d.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine.code(&["version"]) != 0 {
        assert!(
            Instant::now() < deadline,
            "dockerd did not answer; its log:\n{}",
            std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let tar = image_tar(d, busybox);
    engine.ok(&["import", tar.to_str().unwrap(), "runsc-rs-bb:1"]);
    engine.exercise("runsc-rs-bb:1");
    let reference = engine.with_runtime("--runtime=runsc-rs", "--runtime=runc");
    engine.matches_runc(&reference, "runsc-rs-bb:1", d);
    learned_profile_on_runc(&reference, "runsc-rs-bb:1", d);
    drop(daemon);
}

/// Workload A of the seccomp check: file I/O and `ls`.
const SECCOMP_A: &str = "echo hello > /f && cat /f && ls /bin/sh /bin/ls";
/// Workload B: `mkdir`, which A never calls.
const SECCOMP_B: &str = "busybox mkdir /newdir && echo made";

/// `docker run --security-opt seccomp=PROFILE` on runc (`engine`), with the profile
/// `runsc-rs do --seccomp-profile-out` learned from workload A on the image's files: A runs
/// with the sandbox's output, B (fine without the profile) is refused.
fn learned_profile_on_runc(engine: &Engine, image: &str, dir: &Path) {
    let profile = dir.join("learned.json");
    let mut learn = Command::new(runsc_rs_bin());
    learn
        .current_dir(dir)
        .arg("do")
        .arg("--rootfs")
        .arg(dir.join("image"))
        .arg("--seccomp-profile-out")
        .arg(&profile)
        .args(["--", "/bin/sh", "-c", SECCOMP_A]);
    let learned = output(learn, b"");
    let sandbox_out = text(&learned.stdout);
    assert!(
        learned.status.success() && sandbox_out == "hello\n/bin/ls\n/bin/sh\n",
        "workload A in the sandbox: {} {sandbox_out:?} {}",
        learned.status,
        text(&learned.stderr)
    );
    let seccomp = format!("--security-opt=seccomp={}", profile.display());
    let run = |opts: &[&str], script: &str| {
        let mut head = vec!["run", "--rm"];
        head.extend_from_slice(opts);
        output(
            engine.cmd(&engine.run_args(&head, &[image, "sh", "-c", script])),
            b"",
        )
    };
    let a = run(&[&seccomp], SECCOMP_A);
    assert!(
        a.status.success() && text(&a.stdout) == sandbox_out,
        "workload A under runc with its profile: {} {:?} {}",
        a.status,
        text(&a.stdout),
        text(&a.stderr)
    );
    let b = run(&[], SECCOMP_B);
    assert_eq!(
        text(&b.stdout),
        "made\n",
        "workload B under runc: {}",
        text(&b.stderr)
    );
    let refused = run(&[&seccomp], SECCOMP_B);
    assert!(
        !refused.status.success() && text(&refused.stderr).contains("Operation not permitted"),
        "workload B under A's profile: {} {:?} {}",
        refused.status,
        text(&refused.stdout),
        text(&refused.stderr)
    );
}
