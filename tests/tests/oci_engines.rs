//! Real engines driving `runsc-rs` as their OCI runtime: Podman (`--runtime PATH`, through
//! conmon) and Docker (a dockerd of the test's own with `runtimes` in its daemon.json,
//! through containerd's runc shim). Each uses its own storage, state and socket under a fresh
//! directory, a local image imported from a busybox-static tarball (no registry), and no
//! network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    for applet in ["sh", "echo", "sleep", "cat"] {
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

/// An engine CLI with its fixed options.
struct Engine {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// `run` options every container gets.
    run_opts: Vec<String>,
}

impl Engine {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).args(args);
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
    };
    // No host containers.conf decides anything for the test.
    std::fs::write(d.join("containers.conf"), "").unwrap();
    let tar = image_tar(d, busybox);
    engine.ok(&["import", tar.to_str().unwrap(), "localhost/runsc-rs-bb:1"]);
    engine.exercise("localhost/runsc-rs-bb:1");
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
    drop(daemon);
}
