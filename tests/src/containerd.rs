//! A containerd of our own for the end-to-end tests and the benchmark: started under a
//! temporary root with its own socket, driven with `ctr`, the shim built from this workspace on
//! its PATH, a test image imported from `tests/e2e/build-image.sh` (no registry), and
//! everything it left behind removed on drop.
//!
//! Functions that a test calls panic on failure (a broken fixture fails the test); the `try_`
//! variants return the reason instead, for the benchmark, which reports `n/a (reason)`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The runtime name containerd maps to `containerd-shim-runsc-rs-v2`.
pub const RUNTIME: &str = "io.containerd.runsc-rs.v2";
/// runc's shim, the reference the end-to-end tests compare with.
pub const RUNC_RUNTIME: &str = "io.containerd.runc.v2";

/// Whether an executable `name` is in a directory of `$PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Whether this process runs as root (real uid 0 in /proc/self/status).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// What containerd, `ctr` and the image script need, or why this machine cannot run them.
///
/// # Errors
/// The first missing piece: not root, a tool not on PATH, no static busybox.
pub fn check_prerequisites() -> Result<(), String> {
    if !is_root() {
        return Err("containerd needs root".into());
    }
    for tool in ["containerd", "ctr", "timeout", "tar", "sha256sum", "ldd"] {
        if !on_path(tool) {
            return Err(format!("{tool} is not installed"));
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        return Err("no static /bin/busybox (install busybox-static)".into());
    }
    Ok(())
}

/// How a containerd end-to-end test starts: [`check_prerequisites`] and the `tools` it needs
/// besides, then the shim built and a containerd of its own ([`Env::start`], `cri` as there).
///
/// # Errors
/// Why this machine cannot run the test (the reason it prints `SKIPPED:` with).
pub fn start_for_test(
    namespace: &'static str,
    cri: Option<&str>,
    tools: &[&str],
) -> Result<Env, String> {
    check_prerequisites()?;
    if let Some(tool) = tools.iter().find(|t| !on_path(t)) {
        return Err(format!("{tool} is not installed"));
    }
    Ok(Env::start(&build_shim(), namespace, cri))
}

/// Builds the shim with cargo and returns the directory holding it.
pub fn build_shim() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = crate::workspace_dir().join("Cargo.toml");
    let out = Command::new(cargo)
        .args(["build", "--release", "-p", "shim", "--message-format=json"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(out.status.success(), "building the shim failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exe = stdout
        .lines()
        .filter(|l| l.contains("\"executable\":\"") && l.contains("containerd-shim-runsc-rs-v2"))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[start..].find('"')? + start;
            Some(PathBuf::from(&l[start..end]))
        })
        .expect("cargo did not report the shim executable");
    exe.parent()
        .expect("executable has a directory")
        .to_path_buf()
}

/// The directory of the already built shim (`$RUNSC_RS_SHIM_BIN` or `<target>/release`).
///
/// # Errors
/// Says where it looked when the shim has not been built.
pub fn find_shim_dir() -> Result<PathBuf, String> {
    let shim = crate::find_release_bin("RUNSC_RS_SHIM_BIN", "containerd-shim-runsc-rs-v2")?;
    Ok(shim
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

/// Every path below `root` (directories before nothing in particular; callers sort).
pub fn list_tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
    }
    out
}

/// Mount points (from /proc/self/mountinfo) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.to_string_lossy().into_owned();
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_owned)
        .collect()
}

/// Host processes whose command line contains `args` as consecutive arguments.
pub fn processes_with_args(args: &[&str]) -> Vec<u32> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            argv.windows(args.len())
                .any(|w| w.iter().zip(args).all(|(a, b)| *a == b.as_bytes()))
        })
        .collect()
}

/// Everything the test started or created; dropping it cleans up.
pub struct Env {
    /// The temporary root: containerd's root and state, its socket, the log, scratch files.
    pub tmp: PathBuf,
    /// containerd's gRPC socket.
    pub address: PathBuf,
    /// The containerd namespace `ctr` works in.
    pub namespace: &'static str,
    /// The directory holding the shim (first on containerd's PATH).
    pub shim_dir: PathBuf,
    containerd: Option<Child>,
    /// Entries under /run/containerd before the test (what is new there is ours).
    run_before: Vec<PathBuf>,
}

impl Env {
    /// Starts containerd with the shim on its PATH. `cri`: the CRI plugin's configuration
    /// (TOML under `[plugins."io.containerd.grpc.v1.cri"]`, `{tmp}` replaced by the test's
    /// directory), or `None` to disable the plugin. Panics if containerd does not come up.
    pub fn start(shim_dir: &Path, namespace: &'static str, cri: Option<&str>) -> Env {
        Self::try_start(shim_dir, namespace, cri).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Env::start`], returning why containerd did not come up instead of panicking.
    ///
    /// # Errors
    /// Writing the configuration, spawning containerd, or containerd not answering within
    /// 15 s (the message includes its log).
    pub fn try_start(
        shim_dir: &Path,
        namespace: &'static str,
        cri: Option<&str>,
    ) -> Result<Env, String> {
        let tmp = std::env::temp_dir().join(format!("runsc-rs-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        let run = Path::new("/run/containerd");
        let mut env = Env {
            address: tmp.join("containerd.sock"),
            run_before: list_tree(run),
            tmp,
            namespace,
            shim_dir: shim_dir.to_path_buf(),
            containerd: None,
        };
        let config = env.tmp.join("config.toml");
        let mut text = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             [grpc]\n  address = \"{1}\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{0}/opt\"\n",
            env.tmp.display(),
            env.address.display()
        );
        match cri {
            None => text.insert_str(0, "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"),
            Some(cri) => {
                text.push_str("[plugins.\"io.containerd.grpc.v1.cri\"]\n");
                text.push_str(&cri.replace("{tmp}", &env.tmp.to_string_lossy()));
            }
        }
        std::fs::write(&config, text).map_err(|e| format!("writing the config: {e}"))?;
        let log = std::fs::File::create(env.tmp.join("containerd.log"))
            .map_err(|e| format!("creating containerd.log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("containerd.log: {e}"))?;
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .env("PATH", path)
            .current_dir(&env.tmp)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting containerd: {e}"))?;
        env.containerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !env.ctr(&["version"]).status.success() {
            if Instant::now() > deadline {
                return Err(format!("containerd did not come up: {}", env.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(env)
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.join("containerd.log")).unwrap_or_default()
    }

    /// Runs `ctr` against our containerd with a timeout (30 s).
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// The command `ctr ARGS` against our containerd, under a 30 s `timeout`, for callers that
    /// spawn it themselves.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "30", "ctr", "-a"])
            .arg(&self.address)
            .args(["-n", self.namespace])
            .args(args);
        cmd
    }

    /// `ctr ARGS`, which must succeed; returns its stdout. Panics with stderr and the
    /// containerd log otherwise.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}): {}{}\n--- containerd log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The STATUS column of `ctr task ls` for task `id`.
    pub fn task_status(&self, id: &str) -> Option<String> {
        self.task_ls_column(id, 2)
    }

    /// The PID column of `ctr task ls` for task `id`: the host process containerd knows.
    pub fn task_pid(&self, id: &str) -> Option<u32> {
        self.task_ls_column(id, 1).and_then(|p| p.parse().ok())
    }

    fn task_ls_column(&self, id: &str, column: usize) -> Option<String> {
        let out = self.ctr_ok(&["task", "ls"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(column).map(str::to_owned))
    }

    /// Waits up to `within` for task `id` to have `status`; false if it never did.
    pub fn wait_status(&self, id: &str, status: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.task_status(id).as_deref() == Some(status) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr task delete ID` of a stopped task; returns the exit status it reports (ctr 1.6 warns
    /// `task ID exit with non-zero exit code N` on stderr, and says nothing for 0).
    pub fn delete_task(&self, id: &str) -> i32 {
        // runc's shim unmounts the rootfs on delete and fails with EBUSY while the last
        // processes of a `kill -a` are still going away; it succeeds once they are gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ctr(&["task", "delete", id]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success()
                && stderr.contains("device or resource busy")
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            assert!(
                out.status.success(),
                "ctr task delete {id} failed ({}): {stderr}\n--- containerd log ---\n{}",
                out.status,
                self.log()
            );
            return exit_code_from_delete(&stderr);
        }
    }

    /// The bundle directory containerd made for container `id` (config.json, rootfs, the
    /// shim's `address` file).
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.tmp
            .join("state/io.containerd.runtime.v2.task")
            .join(self.namespace)
            .join(id)
    }

    /// The shim's socket for container `id`, from the bundle's `address` file
    /// (`unix:///run/containerd/s/<hash>`), while the bundle exists.
    pub fn shim_socket(&self, id: &str) -> Option<PathBuf> {
        let address = std::fs::read_to_string(self.bundle_dir(id).join("address")).ok()?;
        let address = address.trim();
        Some(PathBuf::from(
            address.strip_prefix("unix://").unwrap_or(address),
        ))
    }

    /// Host PIDs of the shim server of container `id` (its command line has `-id ID` and
    /// this test's containerd address).
    pub fn shim_pids(&self, id: &str) -> Vec<u32> {
        let address = self.address.to_string_lossy();
        let exe = self.shim_dir.join("containerd-shim-runsc-rs-v2");
        processes_with_args(&["-id", id])
            .into_iter()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe"))
                    .ok()
                    .as_deref()
                    == Some(exe.as_path())
                    && process_args(*pid).iter().any(|a| *a == address)
            })
            .collect()
    }

    /// Builds the test image with `tests/e2e/build-image.sh` (`cmd_json`: its command, a JSON
    /// array) and imports it as `name` with `ctr images import`. Panics on failure.
    pub fn build_image(&self, name: &str, cmd_json: &str) {
        self.try_build_image(name, cmd_json)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Env::build_image`], returning why it failed instead of panicking.
    ///
    /// # Errors
    /// The image script or `ctr images import` failing.
    pub fn try_build_image(&self, name: &str, cmd_json: &str) -> Result<(), String> {
        let tar = self
            .tmp
            .join(format!("{}.tar", name.replace(['/', ':'], "_")));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/build-image.sh");
        let built = Command::new("sh")
            .arg(&script)
            .arg(&tar)
            .arg(name)
            .arg(self.tmp.join("image-work"))
            .env("CMD_JSON", cmd_json)
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("running build-image.sh: {e}"))?;
        if !built.status.success() {
            return Err(format!(
                "building {name} failed: {}",
                String::from_utf8_lossy(&built.stderr)
            ));
        }
        let tar = tar.to_string_lossy().into_owned();
        let imported = self.ctr(&["images", "import", &tar]);
        if !imported.status.success() {
            return Err(format!(
                "ctr images import {name} failed: {}",
                String::from_utf8_lossy(&imported.stderr)
            ));
        }
        Ok(())
    }
}

/// The exit status `ctr task delete` reports: 0 unless it warned `... exit with non-zero exit
/// code N`.
fn exit_code_from_delete(stderr: &str) -> i32 {
    stderr
        .split("exit with non-zero exit code ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Paths of the Unix sockets something listens on (from /proc/net/unix).
fn listening_unix_sockets() -> Vec<PathBuf> {
    const SO_ACCEPTCON: u32 = 0x10000;
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let path = fields.get(7)?;
            (flags & SO_ACCEPTCON != 0 && path.starts_with('/')).then(|| PathBuf::from(path))
        })
        .collect()
}

/// The arguments of host process `pid` (empty once it is gone).
fn process_args(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort: leave no container, shim, sandbox, mount or directory behind.
        let tasks = self.ctr(&["task", "ls", "-q"]);
        for id in String::from_utf8_lossy(&tasks.stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-a", "-s", "KILL", id]);
            let _ = self.ctr(&["task", "delete", "-f", id]);
        }
        let containers = self.ctr(&["containers", "ls", "-q"]);
        for id in String::from_utf8_lossy(&containers.stdout).lines() {
            let _ = self.ctr(&["containers", "rm", id]);
        }
        if let Some(mut c) = self.containerd.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let mut mounts = mounts_under(&self.tmp);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
        // What appeared under /run/containerd since we started is ours (shim sockets, ctr's
        // fifo directories, runc state), except what another containerd on this machine still
        // uses: a socket something listens on, and the directories holding such sockets.
        let run = Path::new("/run/containerd");
        let live = listening_unix_sockets();
        let mut ours: Vec<PathBuf> = list_tree(run)
            .into_iter()
            .filter(|p| !self.run_before.contains(p) && !live.contains(p))
            .collect();
        ours.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in ours {
            // remove_dir only takes empty directories: one holding a live socket stays.
            let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir(&p));
        }
        if self.run_before.is_empty() {
            let _ = std::fs::remove_dir(run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exit_code_of_delete() {
        let warning = "time=\"2026-11-29T08:44:39Z\" level=warning msg=\"task b exit with \
                       non-zero exit code 137\"\n";
        assert_eq!(exit_code_from_delete(warning), 137);
        assert_eq!(exit_code_from_delete(""), 0);
    }

    #[test]
    fn finds_processes_by_arguments() {
        let marker = format!("marker-{}", std::process::id());
        // `read` is a shell builtin: the shell never forks a child that would carry the same
        // command line for a moment.
        let mut child = Command::new("/bin/sh")
            .args(["-c", "read x", &marker])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        // Until the child has exec'd, its command line is still ours.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = processes_with_args(&["read x", &marker]);
        while found.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = processes_with_args(&["read x", &marker]);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, [child.id()]);
        assert!(processes_with_args(&[&marker, "read x"]).is_empty());
    }

    #[test]
    fn lists_listening_sockets_only() {
        let dir = std::env::temp_dir().join(format!("runsc-rs-sockets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let listening = dir.join("live.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&listening).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "").unwrap();
        let live = listening_unix_sockets();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(live.contains(&listening), "{live:?}");
        assert!(!live.contains(&plain));
    }
}
