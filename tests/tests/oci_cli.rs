//! `runsc-rs` as an OCI runtime (runc's command line), driven directly over a bundle made by
//! `runsc-rs spec` and a busybox-static rootfs. Every scenario is a transcript of (command,
//! exit status, container status) compared with runc's answers, when runc can run here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runsc_rs_tests::{runsc_rs_bin, skip, static_busybox, Scratch};

/// One OCI runtime binary with a state directory of its own.
struct Runtime {
    bin: PathBuf,
    root: PathBuf,
}

impl Runtime {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs a command that starts nothing long-lived: (status, stdout).
    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = self
            .cmd(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.bin.display()));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// A command whose stdio becomes the container's: written to `out`, so that nothing
    /// waits for the container to close a pipe.
    fn run_with_output(&self, args: &[&str], out: &Path) -> i32 {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .unwrap();
        self.cmd(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap()
            .code()
            .unwrap_or(-1)
    }

    fn state(&self, id: &str) -> Option<serde_json::Value> {
        let (code, out) = self.run(&["state", id]);
        (code == 0).then(|| serde_json::from_str(&out).expect("state prints JSON"))
    }

    fn status(&self, id: &str) -> String {
        self.state(id)
            .map_or("gone".into(), |s| s["status"].as_str().unwrap().to_owned())
    }

    fn wait_status(&self, id: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status(id);
            if s == want || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A bundle: `rootfs/bin/busybox` with its applets, and `spec`'s config with `args`.
fn bundle(dir: &Path, runtime: &Runtime, busybox: &str, args: &[&str]) -> PathBuf {
    let bundle = dir.join("bundle");
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let (code, _) = runtime.run(&["spec", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{} spec", runtime.bin.display());
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(args);
    std::fs::write(&path, config.to_string()).unwrap();
    bundle
}

/// The runtimes to compare: runsc-rs, and runc when it is installed and can run a container
/// here (the reference answers).
fn runtimes(dir: &Path) -> Vec<Runtime> {
    let mut v = vec![Runtime {
        bin: runsc_rs_bin(),
        root: dir.join("root-runsc-rs"),
    }];
    match which("runc") {
        Some(runc) if nix::unistd::geteuid().is_root() => v.push(Runtime {
            bin: runc,
            root: dir.join("root-runc"),
        }),
        _ => skip("runc (as root) is not available: runsc-rs is checked against runc's known answers only"),
    }
    v
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// create, state, start, exec, ps, delete refused while running, kill, kill refused once
/// stopped, delete.
fn lifecycle(rt: &Runtime, dir: &Path, busybox: &str) -> Vec<String> {
    let bundle = bundle(
        dir,
        rt,
        busybox,
        &["sh", "-c", "echo hello; exec sleep 1000"],
    );
    let out = dir.join("out");
    let pid_file = dir.join("pid");
    let mut t = Vec::new();
    let id = "lifecycle";
    let code = rt.run_with_output(
        &[
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ],
        &out,
    );
    t.push(format!("create {code} {}", rt.status(id)));
    let state = rt.state(id).expect("state after create");
    for key in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ] {
        assert!(state.get(key).is_some(), "state lacks {key}: {state}");
    }
    assert_eq!(state["id"], id);
    assert_eq!(state["bundle"], bundle.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        state["pid"].to_string(),
        "--pid-file names the state's pid"
    );
    t.push(format!(
        "create again {}",
        rt.run(&["create", "--bundle", bundle.to_str().unwrap(), id])
            .0
    ));
    t.push(format!("output before start {:?}", read(&out)));
    let (code, _) = rt.run(&["start", id]);
    t.push(format!("start {code} {}", rt.status(id)));
    t.push(format!("start again {}", rt.run(&["start", id]).0));
    let (code, listed) = rt.run(&["list", "-q"]);
    t.push(format!("list {code} {}", listed.trim()));
    let (code, _) = rt.run(&["exec", id, "sh", "-c", "exit 3"]);
    t.push(format!("exec exit 3 -> {code}"));
    let (code, pids) = rt.run(&["ps", "--format", "json", id]);
    let pids: Vec<i64> = serde_json::from_str(pids.trim()).unwrap_or_default();
    t.push(format!("ps {code} nonempty={}", !pids.is_empty()));
    t.push(format!("delete running {}", rt.run(&["delete", id]).0));
    t.push(format!("kill {}", rt.run(&["kill", id, "KILL"]).0));
    t.push(format!("after kill {}", rt.wait_status(id, "stopped")));
    t.push(format!(
        "kill stopped {}",
        rt.run(&["kill", id, "9"]).0 != 0
    ));
    t.push(format!("delete {}", rt.run(&["delete", id]).0));
    t.push(format!("after delete {}", rt.status(id)));
    t.push(format!("output {:?}", read(&out)));
    t
}

/// `run` waits, returns the exit status and deletes the container; a created container is deleted without
/// --force; `delete -f` ends a running one.
fn run_and_delete(rt: &Runtime, dir: &Path, busybox: &str) -> Vec<String> {
    let bundle = bundle(dir, rt, busybox, &["sh", "-c", "echo ran; exit 7"]);
    let b = bundle.to_str().unwrap();
    let out = dir.join("out");
    let mut t = Vec::new();
    t.push(format!(
        "run {}",
        rt.run_with_output(&["run", "--bundle", b, "r1"], &out)
    ));
    t.push(format!("after run {}", rt.status("r1")));
    t.push(format!("delete {}", rt.run(&["delete", "r1"]).0));
    let code = rt.run_with_output(&["create", "--bundle", b, "r2"], &out);
    t.push(format!("create {code} {}", rt.status("r2")));
    t.push(format!("delete created {}", rt.run(&["delete", "r2"]).0));
    t.push(format!("after delete {}", rt.status("r2")));
    let code = rt.run_with_output(&["run", "-d", "--bundle", b, "r3"], &out);
    t.push(format!("run -d {code}"));
    t.push(format!("after exit {}", rt.wait_status("r3", "stopped")));
    t.push(format!("delete -f {}", rt.run(&["delete", "-f", "r3"]).0));
    t.push(format!(
        "delete missing {}",
        rt.run(&["delete", "r3"]).0 != 0
    ));
    t.push(format!("output {:?}", read(&out)));
    t
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn compare(name: &str, scenario: fn(&Runtime, &Path, &str) -> Vec<String>, expected: &[&str]) {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let scratch = Scratch::new(name);
    for rt in runtimes(&scratch.0) {
        let dir = scratch.0.join(rt.bin.file_name().unwrap());
        std::fs::create_dir(&dir).unwrap();
        let got = scenario(&rt, &dir, busybox);
        assert_eq!(
            got,
            expected,
            "{} answered differently from runc's reference",
            rt.bin.display()
        );
    }
}

#[test]
fn lifecycle_matches_runc() {
    compare(
        "life",
        lifecycle,
        &[
            "create 0 created",
            "create again 1",
            "output before start \"\"",
            "start 0 running",
            "start again 1",
            "list 0 lifecycle",
            "exec exit 3 -> 3",
            "ps 0 nonempty=true",
            "delete running 1",
            "kill 0",
            "after kill stopped",
            "kill stopped true",
            "delete 0",
            "after delete gone",
            "output \"hello\\n\"",
        ],
    );
}

#[test]
fn run_exit_status_and_delete_match_runc() {
    compare(
        "run",
        run_and_delete,
        &[
            "run 7",
            "after run gone",
            "delete 1",
            "create 0 created",
            "delete created 0",
            "after delete gone",
            "run -d 0",
            "after exit stopped",
            "delete -f 0",
            "delete missing true",
            "output \"ran\\nran\\n\"",
        ],
    );
}

#[test]
fn spec_refuses_to_overwrite_and_features_is_json() {
    let scratch = Scratch::new("spec");
    let rt = Runtime {
        bin: runsc_rs_bin(),
        root: scratch.0.join("root"),
    };
    let b = scratch.0.to_str().unwrap();
    assert_eq!(rt.run(&["spec", "--bundle", b]).0, 0);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.0.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    assert_eq!(config["process"]["args"], serde_json::json!(["sh"]));
    assert_ne!(rt.run(&["spec", "--bundle", b]).0, 0, "spec overwrote");
    let (code, out) = rt.run(&["features"]);
    assert_eq!(code, 0);
    let f: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(f["ociVersionMax"].is_string(), "{f}");
    assert_ne!(rt.run(&["state", "nosuch"]).0, 0);
    assert_ne!(rt.run(&["kill", "../x", "KILL"]).0, 0);
}

/// The directories of cgroup `path` on this host: the unified one (v2) or one per mounted v1
/// controller.
fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(rel)];
    }
    ["memory", "pids", "cpu"]
        .iter()
        .map(|c| root.join(c).join(rel))
        .collect()
}

/// A container with `linux.cgroupsPath` and limits: it is placed there with them, `events
/// --stats` reports them in runc's JSON, `update` changes them, `delete` removes the cgroup.
fn cgroup_events_update(rt: &Runtime, dir: &Path, busybox: &str) -> Vec<String> {
    let bundle = bundle(dir, rt, busybox, &["sleep", "1000"]);
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let cgroup = format!(
        "/runsc-rs-oci-test-{}-{}",
        std::process::id(),
        rt.bin.file_name().unwrap().to_string_lossy()
    );
    config["linux"]["cgroupsPath"] = cgroup.clone().into();
    config["linux"]["resources"] = serde_json::json!({
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 32}
    });
    std::fs::write(&path, config.to_string()).unwrap();
    let out = dir.join("out");
    let id = "cg";
    let mut t = Vec::new();
    let code = rt.run_with_output(
        &["run", "-d", "--bundle", bundle.to_str().unwrap(), id],
        &out,
    );
    t.push(format!("run -d {code} {}", rt.status(id)));
    let dirs = cgroup_dirs(&cgroup);
    t.push(format!("cgroup made {}", dirs.iter().all(|d| d.is_dir())));
    let pid = rt
        .state(id)
        .map(|s| s["pid"].to_string())
        .unwrap_or_default();
    let procs = std::fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap_or_default();
    t.push(format!("pid in cgroup {}", procs.lines().any(|p| p == pid)));
    let stats = |t: &mut Vec<String>| {
        let (code, out) = rt.run(&["events", "--stats", id]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        t.push(format!(
            "events {code} type={} id={} memory.limit={} pids.limit={} pids.current>0={} cpu.total={}",
            v["type"],
            v["id"],
            v["data"]["memory"]["usage"]["limit"],
            v["data"]["pids"]["limit"],
            v["data"]["pids"]["current"].as_u64().unwrap_or(0) > 0,
            v["data"]["cpu"]["usage"]["total"].is_u64()
        ));
    };
    stats(&mut t);
    let (code, _) = rt.run(&["update", "--memory", "128m", "--pids-limit", "64", id]);
    t.push(format!("update {code}"));
    stats(&mut t);
    let resources = dir.join("resources.json");
    std::fs::write(&resources, r#"{"memory": {"limit": 100663296}}"#).unwrap();
    let (code, _) = rt.run(&["update", "-r", resources.to_str().unwrap(), id]);
    t.push(format!("update -r {code}"));
    stats(&mut t);
    t.push(format!("kill {}", rt.run(&["kill", id, "KILL"]).0));
    t.push(format!("after kill {}", rt.wait_status(id, "stopped")));
    t.push(format!("delete {}", rt.run(&["delete", id]).0));
    t.push(format!(
        "cgroup removed {}",
        dirs.iter().all(|d| !d.exists())
    ));
    t
}

#[test]
fn cgroups_events_and_update_match_runc() {
    if !nix::unistd::geteuid().is_root() {
        skip("cgroups need root here");
        return;
    }
    compare(
        "cgroup",
        cgroup_events_update,
        &[
            "run -d 0 running",
            "cgroup made true",
            "pid in cgroup true",
            "events 0 type=\"stats\" id=\"cg\" memory.limit=67108864 pids.limit=32 pids.current>0=true cpu.total=true",
            "update 0",
            "events 0 type=\"stats\" id=\"cg\" memory.limit=134217728 pids.limit=64 pids.current>0=true cpu.total=true",
            "update -r 0",
            "events 0 type=\"stats\" id=\"cg\" memory.limit=100663296 pids.limit=64 pids.current>0=true cpu.total=true",
            "kill 0",
            "after kill stopped",
            "delete 0",
            "cgroup removed true",
        ],
    );
}

/// `linux.seccomp` and `process.noNewPrivileges`: calls the profile refuses fail with its
/// errno (by name, and by an argument condition) and the rest run; an exec'd process is under
/// the same profile; `/proc/self/status` shows the filter and `no_new_privs`.
fn seccomp_profile(rt: &Runtime, dir: &Path, busybox: &str) -> Vec<String> {
    let script = "busybox mkdir /made 2>/dev/null; echo mkdir=$?; \
        kill -0 $$ 2>/dev/null; echo kill0=$?; kill -CONT $$; echo cont=$?; \
        while read k v; do case $k in NoNewPrivs:|Seccomp:) echo $k $v;; esac; \
        done </proc/self/status; exec sleep 1000";
    let bundle = bundle(dir, rt, busybox, &["sh", "-c", script]);
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["noNewPrivileges"] = true.into();
    config["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_call_here"], "action": "SCMP_ACT_KILL"}
        ]
    });
    std::fs::write(&path, config.to_string()).unwrap();
    let b = bundle.to_str().unwrap();
    let out = dir.join("out");
    let mut t = Vec::new();
    let code = rt.run_with_output(&["run", "-d", "--bundle", b, "sc"], &out);
    t.push(format!("run -d {code} {}", rt.status("sc")));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read(&out).contains("Seccomp:") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    t.push(format!("output {:?}", read(&out)));
    let exec = dir.join("exec-out");
    let code = rt.run_with_output(
        &[
            "exec",
            "sc",
            "sh",
            "-c",
            "busybox mkdir /x 2>/dev/null; echo exec mkdir=$?",
        ],
        &exec,
    );
    t.push(format!("exec {code} {:?}", read(&exec)));
    t.push(format!("delete -f {}", rt.run(&["delete", "-f", "sc"]).0));
    t
}

#[test]
fn seccomp_profile_and_no_new_privileges_match_runc() {
    compare(
        "seccomp",
        seccomp_profile,
        &[
            "run -d 0 running",
            "output \"mkdir=1\\nkill0=1\\ncont=0\\nNoNewPrivs: 1\\nSeccomp: 2\\n\"",
            "exec 0 \"exec mkdir=1\\n\"",
            "delete -f 0",
        ],
    );
}
