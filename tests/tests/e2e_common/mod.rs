//! What the containerd end-to-end tests share: a containerd of their own under a temporary
//! root, `ctr` against it, the shim built from this workspace, cleanup on drop.

#![allow(dead_code)] // Each test binary uses its own part.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const RUNTIME: &str = "io.containerd.runsc-rs.v2";

pub fn skip(reason: &str) {
    runsc_rs_tests::skip(reason);
}

pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Builds the shim and returns the directory holding it.
pub fn build_shim() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
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

/// Everything the test started or created; dropping it cleans up.
pub struct Env {
    pub tmp: PathBuf,
    pub address: PathBuf,
    /// The containerd namespace `ctr` works in.
    pub namespace: &'static str,
    containerd: Option<Child>,
    /// Entries under /run/containerd before the test (everything else there is ours).
    run_before: Option<Vec<PathBuf>>,
}

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

impl Env {
    /// Starts containerd with the shim on its PATH. `cri`: the CRI plugin's configuration
    /// (TOML under `[plugins."io.containerd.grpc.v1.cri"]`, `{tmp}` replaced by the test's
    /// directory), or `None` to disable the plugin.
    pub fn start(shim_dir: &Path, namespace: &'static str, cri: Option<&str>) -> Env {
        let tmp = std::env::temp_dir().join(format!("runsc-rs-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let run = Path::new("/run/containerd");
        let mut env = Env {
            address: tmp.join("containerd.sock"),
            run_before: run.exists().then(|| list_tree(run)),
            tmp,
            namespace,
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
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(env.tmp.join("containerd.log")).unwrap();
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
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        env.containerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !env.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                env.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        env
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.join("containerd.log")).unwrap_or_default()
    }

    /// Runs `ctr` against our containerd with a timeout.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "30", "ctr", "-a"])
            .arg(&self.address)
            .args(["-n", self.namespace])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

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

    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr_ok(&["task", "ls"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort: leave no container, shim, sandbox, mount or directory behind.
        let tasks = self.ctr(&["task", "ls", "-q"]);
        for id in String::from_utf8_lossy(&tasks.stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
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
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let tmp = self.tmp.to_string_lossy().into_owned();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&tmp))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
        let run = Path::new("/run/containerd");
        match &self.run_before {
            None => {
                let _ = std::fs::remove_dir_all(run);
            }
            Some(before) => {
                let mut ours: Vec<PathBuf> = list_tree(run)
                    .into_iter()
                    .filter(|p| !before.contains(p))
                    .collect();
                ours.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
                for p in ours {
                    let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
                }
            }
        }
    }
}

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
