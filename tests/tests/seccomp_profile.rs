//! Learned seccomp profiles (`runsc-rs do --seccomp-profile-out`, the
//! `dev.runsc-rs.seccomp-profile-out` annotation): the profile learned from workload A in the
//! sandbox lets A run under runc with the same output, and refuses workload B, which needs a
//! system call A never made (B runs fine under runc without the profile).
//!
//! Workload A is a busybox shell script doing file I/O and `ls`, and Debian's `sqlite3`
//! (dynamically linked: the loader, glibc's start-up, mmap, locks). The rootfs is a fresh
//! directory holding busybox-static, with the host's `/usr` bound read-only (as a volume in
//! the sandbox, a bind mount under runc) and a private `/tmp`.
//!
//! Through containerd (`ctr run --annotation`, the shim) the workloads are busybox only, on
//! the end-to-end image; runc's shim then runs them with the written profile
//! (`ctr run --seccomp --seccomp-profile`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runsc_rs_tests::{runsc_rs_bin, skip, static_busybox};

/// Workload A: file I/O, `ls`, sqlite3.
const WORKLOAD_A: &str = "echo hello > /tmp/f && cat /tmp/f && /bb/busybox ls /bb && \
     sqlite3 /tmp/db 'create table t(a); insert into t values(1),(2); select sum(a) from t;'";
/// Workload B: `mkdir`, which A never calls.
const WORKLOAD_B: &str = "/bb/busybox mkdir /tmp/newdir && echo made";

/// A fresh directory of this test's own, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("runsc-rs-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the tests need: runc (as root: it makes the namespaces), busybox-static, sqlite3.
fn prerequisites() -> Option<(PathBuf, &'static str)> {
    let busybox = static_busybox()?;
    let runc = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let Some(runc) = runc else {
        skip("runc is not installed (apt-get install runc)");
        return None;
    };
    if !nix::unistd::geteuid().is_root() {
        skip("runc needs root here");
        return None;
    }
    if !Path::new("/usr/bin/sqlite3").is_file() {
        skip("/usr/bin/sqlite3 is missing (apt-get install sqlite3)");
        return None;
    }
    Some((runc, busybox))
}

/// A rootfs: `/bb/busybox`, `/bin` and friends as merged-/usr links into `/usr` (a mount),
/// and empty `/usr` and `/tmp`.
fn rootfs(dir: &Path, busybox: &str) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["usr", "bb", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bb/busybox")).unwrap();
    for l in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l)).unwrap();
    }
    root
}

/// Runs `cmd` with stdin from /dev/null, stdout and stderr to files (nothing waits for a
/// container to close a pipe), killed after 60 s: (exit code, stdout, stderr).
fn run(mut cmd: Command, dir: &Path) -> (i32, String, String) {
    let out = dir.join("stdout");
    let err = dir.join("stderr");
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{shown} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status.code().unwrap_or(-1), read(&out), read(&err))
}

/// `runsc-rs do` of `script` on a fresh rootfs, learning the profile into `profile`.
fn learn(dir: &Path, busybox: &str, script: &str, profile: &Path) -> (i32, String, String) {
    let work = dir.join("learn");
    std::fs::create_dir_all(&work).unwrap();
    let root = rootfs(&work, busybox);
    let mut cmd = Command::new(runsc_rs_bin());
    cmd.arg("do")
        .arg("--rootfs")
        .arg(&root)
        .args(["--volume", "/usr:/usr:ro", "--seccomp-profile-out"])
        .arg(profile)
        .args(["--", "/bb/busybox", "sh", "-c", script]);
    run(cmd, &work)
}

/// Docker's seccomp profile → the OCI `linux.seccomp` section. The learned profile uses only
/// keys the two formats share, so this is a check that it does.
fn oci_seccomp(profile: &serde_json::Value) -> serde_json::Value {
    const OCI_KEYS: [&str; 5] = [
        "defaultAction",
        "defaultErrnoRet",
        "architectures",
        "flags",
        "syscalls",
    ];
    let obj = profile.as_object().expect("a profile is a JSON object");
    for key in obj.keys() {
        assert!(OCI_KEYS.contains(&key.as_str()), "not an OCI key: {key}");
    }
    profile.clone()
}

/// `script` under runc in a fresh bundle, with `profile` as its `linux.seccomp` if given.
/// `no_new_privs` false is Docker's default (the filter goes on before runc drops
/// capabilities and changes identity).
fn runc(
    runc: &Path,
    dir: &Path,
    busybox: &str,
    script: &str,
    profile: Option<&serde_json::Value>,
    no_new_privs: bool,
) -> (i32, String, String) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bundle = dir.join(format!("bundle{n}"));
    std::fs::create_dir_all(&bundle).unwrap();
    rootfs(&bundle, busybox);
    let ok = Command::new(runc)
        .arg("spec")
        .arg("--bundle")
        .arg(&bundle)
        .status()
        .unwrap()
        .success();
    assert!(ok, "runc spec");
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bb/busybox", "sh", "-c", script]);
    config["process"]["noNewPrivileges"] = no_new_privs.into();
    config["root"]["readonly"] = false.into();
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.push(
        serde_json::json!({"destination": "/usr", "type": "bind", "source": "/usr",
        "options": ["rbind", "ro"]}),
    );
    mounts.push(
        serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev"]}),
    );
    if let Some(p) = profile {
        config["linux"]["seccomp"] = oci_seccomp(p);
    }
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(runc);
    cmd.arg("--root")
        .arg(dir.join("runc-state"))
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg(format!("seclearn-{}-{n}", std::process::id()));
    run(cmd, &bundle)
}

fn names(profile: &serde_json::Value) -> Vec<String> {
    profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().unwrap().iter())
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

fn read_profile(path: &Path) -> serde_json::Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn learned_profile_runs_the_workload_under_runc_and_refuses_another() {
    let Some((runc_bin, busybox)) = prerequisites() else {
        return;
    };
    let dir = Scratch::new("seclearn");
    let path = dir.0.join("profile.json");
    let (code, out, err) = learn(&dir.0, busybox, WORKLOAD_A, &path);
    assert_eq!(code, 0, "workload A in the sandbox: {err}");
    assert_eq!(out, "hello\nbusybox\n3\n");

    let profile = read_profile(&path);
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(profile["defaultErrnoRet"], 1);
    assert_eq!(
        profile["architectures"],
        serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    let allowed = names(&profile);
    for want in [
        "openat", "read", "write", "mmap", "execve", "wait4", "pwrite64",
    ] {
        assert!(
            allowed.contains(&want.to_owned()),
            "{want} missing: {allowed:?}"
        );
    }
    // glibc registers rseq, which the sentry answers ENOSYS: the attempt is in the profile, so
    // under runc the program gets the host's answer rather than EPERM.
    assert!(allowed.contains(&"rseq".to_owned()), "{allowed:?}");
    for never in ["mkdir", "mkdirat", "ptrace", "unshare", "mount"] {
        assert!(!allowed.contains(&never.to_owned()), "{never} allowed");
    }

    let native = runc(&runc_bin, &dir.0, busybox, WORKLOAD_A, None, false);
    assert_eq!(native.0, 0, "workload A under runc: {}", native.2);
    assert_eq!(native.1, out, "runc and the sandbox disagree");
    for no_new_privs in [false, true] {
        let (code, got, err) = runc(
            &runc_bin,
            &dir.0,
            busybox,
            WORKLOAD_A,
            Some(&profile),
            no_new_privs,
        );
        assert_eq!(
            (code, got.as_str()),
            (0, native.1.as_str()),
            "workload A under runc with its profile (noNewPrivileges {no_new_privs}): {err}"
        );
    }

    let (code, out, err) = runc(&runc_bin, &dir.0, busybox, WORKLOAD_B, None, false);
    assert_eq!(
        (code, out.as_str()),
        (0, "made\n"),
        "workload B under runc: {err}"
    );
    let (code, out, err) = runc(
        &runc_bin,
        &dir.0,
        busybox,
        WORKLOAD_B,
        Some(&profile),
        false,
    );
    assert_ne!(code, 0, "workload B ran under A's profile: {out}");
    assert!(
        err.contains("Operation not permitted"),
        "workload B's refusal: {err}"
    );
}

#[test]
fn profile_output_refuses_a_symlink_and_keeps_the_exit_status() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let dir = Scratch::new("seclearn-out");
    let target = dir.0.join("target");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.0.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut cmd = Command::new(runsc_rs_bin());
    cmd.arg("do")
        .arg("--seccomp-profile-out")
        .arg(&link)
        .args(["--", busybox, "true"]);
    let (code, _, err) = run(cmd, &dir.0);
    assert_ne!(code, 0, "a symlink was accepted");
    assert!(err.contains("seccomp profile"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");

    // The command's exit status is unchanged by recording; the file is written regardless.
    let out = dir.0.join("out.json");
    let mut cmd = Command::new(runsc_rs_bin());
    cmd.arg("do")
        .arg("--seccomp-profile-out")
        .arg(&out)
        .args(["--", busybox, "sh", "-c", "exit 3"]);
    let (code, _, err) = run(cmd, &dir.0);
    assert_eq!(code, 3, "{err}");
    assert!(names(&read_profile(&out)).contains(&"exit_group".to_owned()));
}

#[test]
fn oci_annotation_writes_the_profile_when_the_sandbox_ends() {
    let Some((runc_bin, busybox)) = prerequisites() else {
        return;
    };
    let dir = Scratch::new("seclearn-oci");
    let bundle = dir.0.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    rootfs(&bundle, busybox);
    let rt = runsc_rs_bin();
    let root = dir.0.join("state");
    let ok = Command::new(&rt)
        .arg("spec")
        .arg("--bundle")
        .arg(&bundle)
        .status()
        .unwrap()
        .success();
    assert!(ok, "runsc-rs spec");
    let profile_path = dir.0.join("learned.json");
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bb/busybox", "sh", "-c", WORKLOAD_A]);
    config["root"]["readonly"] = false.into();
    config["mounts"].as_array_mut().unwrap().push(
        serde_json::json!({"destination": "/usr", "type": "bind", "source": "/usr",
            "options": ["rbind", "ro"]}),
    );
    config["annotations"]["dev.runsc-rs.seccomp-profile-out"] =
        profile_path.to_str().unwrap().into();
    std::fs::write(&path, config.to_string()).unwrap();
    let id = format!("seclearn-oci-{}", std::process::id());
    let mut cmd = Command::new(&rt);
    cmd.arg("--root")
        .arg(&root)
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg(&id);
    let (code, out, err) = run(cmd, &dir.0);
    assert_eq!(code, 0, "runsc-rs run: {err}");
    assert_eq!(out, "hello\nbusybox\n3\n");
    // `run` deletes the container when its init exits (as runc's); the sandbox writes the
    // file as it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let profile = loop {
        let text = std::fs::read(&profile_path).unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no profile at {}",
            profile_path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (code, got, err) = runc(
        &runc_bin,
        &dir.0,
        busybox,
        WORKLOAD_A,
        Some(&profile),
        false,
    );
    assert_eq!((code, got.as_str()), (0, out.as_str()), "{err}");
    let (code, _, _) = runc(
        &runc_bin,
        &dir.0,
        busybox,
        WORKLOAD_B,
        Some(&profile),
        false,
    );
    assert_ne!(code, 0, "workload B ran under A's profile");
}

/// Workload A through containerd: file I/O and `ls`, busybox applets of the e2e image.
const CTR_WORKLOAD_A: &str = "echo hello > /tmp/f && cat /tmp/f && ls /bin/sh /bin/ls";
/// Workload B through containerd: `mkdir`, which A never calls.
const CTR_WORKLOAD_B: &str = "busybox mkdir /tmp/newdir && echo made";

#[test]
fn containerd_annotation_writes_the_profile_through_the_shim() {
    use runsc_rs_tests::containerd::{on_path, start_for_test, RUNC_RUNTIME, RUNTIME};
    const IMAGE: &str = "docker.io/library/runsc-rs-seclearn:latest";
    let env = match start_for_test("runsc-rs-seclearn", None, &[]) {
        Ok(env) => env,
        Err(reason) => return skip(&reason),
    };
    env.build_image(IMAGE, r#"["/bin/sh"]"#);
    let profile_path = env.tmp.join("learned.json");
    let annotation = format!(
        "dev.runsc-rs.seccomp-profile-out={}",
        profile_path.display()
    );
    let ctr_run = |runtime: &str, extra: &[&str], id: &str, script: &str| {
        let mut args = vec!["run", "--rm", "--runtime", runtime];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, id, "/bin/sh", "-c", script]);
        let out = env.ctr(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = ctr_run(
        RUNTIME,
        &["--annotation", &annotation],
        "learn",
        CTR_WORKLOAD_A,
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "hello\n/bin/ls\n/bin/sh\n"),
        "workload A on the shim: {err}\n--- containerd log ---\n{}",
        env.log()
    );
    // The sandbox writes the file as it ends, which `ctr run --rm` need not wait for.
    let deadline = Instant::now() + Duration::from_secs(10);
    let profile = loop {
        let text = std::fs::read(&profile_path).unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no profile at {}\n--- containerd log ---\n{}",
            profile_path.display(),
            env.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let allowed = names(&profile);
    for want in ["execve", "openat", "write", "getdents64", "exit_group"] {
        assert!(
            allowed.contains(&want.to_owned()),
            "{want} missing: {allowed:?}"
        );
    }
    for never in ["mkdir", "mkdirat", "ptrace", "mount"] {
        assert!(!allowed.contains(&never.to_owned()), "{never} allowed");
    }

    if !on_path("runc") {
        return skip("runc is not installed: the profile is not tried under runc");
    }
    let file = profile_path.to_string_lossy().into_owned();
    let with_profile = ["--seccomp", "--seccomp-profile", file.as_str()];
    let (code, got, err) = ctr_run(RUNC_RUNTIME, &with_profile, "a-runc", CTR_WORKLOAD_A);
    assert_eq!(
        (code, got.as_str()),
        (0, out.as_str()),
        "workload A under runc with its profile: {err}"
    );
    let (code, got, err) = ctr_run(RUNC_RUNTIME, &[], "b-runc", CTR_WORKLOAD_B);
    assert_eq!(
        (code, got.as_str()),
        (0, "made\n"),
        "workload B under runc: {err}"
    );
    let (code, got, err) = ctr_run(RUNC_RUNTIME, &with_profile, "b-refused", CTR_WORKLOAD_B);
    assert_ne!(code, 0, "workload B ran under A's profile: {got}");
    assert!(
        err.contains("Operation not permitted") || got.contains("Operation not permitted"),
        "workload B's refusal: {got} {err}"
    );
}
