//! Filesystem integration tests: real programs under `runsc-rs do`, compared with native
//! runs; writes stay in the sandbox; escapes out of `--rootfs` and volumes fail.
//!
//! The binary is `$RUNSC_RS_BIN`, else `<target>/release/runsc-rs` (CARGO_TARGET_DIR or the
//! workspace's `target`). Without it, or without a working platform, each test prints
//! `SKIPPED: reason`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use runsc_rs_tests::Scratch;

fn runsc_bin() -> Option<PathBuf> {
    // The harness's lookup: a runsc-rs that was not built fails the test, it is not skipped.
    Some(runsc_rs_tests::runsc_rs_bin())
}

/// The sandbox runner, or None (after printing why) when sandboxes cannot run here.
fn sandbox() -> Option<PathBuf> {
    let Some(bin) = runsc_bin() else {
        runsc_rs_tests::skip("runsc-rs binary not built (set RUNSC_RS_BIN)");
        return None;
    };
    let probe = Command::new(&bin)
        .args(["do", "--", "/bin/busybox", "true"])
        .output()
        .ok()?;
    if !probe.status.success() {
        runsc_rs_tests::skip(&format!(
            "the sandbox cannot run programs here: {}",
            String::from_utf8_lossy(&probe.stderr)
        ));
        return None;
    }
    Some(bin)
}

fn run_sandbox(bin: &Path, extra: &[&str], cmd: &[&str]) -> Output {
    Command::new(bin)
        .arg("do")
        .args(extra)
        .arg("--")
        .args(cmd)
        .env("LC_ALL", "C")
        .output()
        .expect("running runsc-rs")
}

fn run_native(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .env("LC_ALL", "C")
        .output()
        .expect("running natively")
}

fn assert_same(bin: &Path, cmd: &[&str]) {
    let native = run_native(cmd);
    let sandboxed = run_sandbox(bin, &[], cmd);
    assert_eq!(
        String::from_utf8_lossy(&sandboxed.stdout),
        String::from_utf8_lossy(&native.stdout),
        "stdout of {cmd:?} (sandbox stderr: {})",
        String::from_utf8_lossy(&sandboxed.stderr)
    );
    assert_eq!(sandboxed.status.code(), native.status.code(), "{cmd:?}");
}

#[test]
fn dynamic_debian_programs_match_native() {
    let Some(bin) = sandbox() else { return };
    assert_same(&bin, &["/bin/ls", "-la", "/etc"]);
    assert_same(&bin, &["/bin/cat", "/etc/os-release"]);
    assert_same(&bin, &["/usr/bin/sha256sum", "/bin/bash"]);
    assert_same(&bin, &["/usr/bin/sort", "/etc/passwd"]);
    assert_same(&bin, &["/usr/bin/head", "-n3", "/etc/passwd"]);
    assert_same(&bin, &["/usr/bin/wc", "/etc/passwd"]);
    assert_same(
        &bin,
        &["/usr/bin/find", "/usr/share/doc", "-name", "copyright"],
    );
    assert_same(
        &bin,
        &["/usr/bin/grep", "-r", "root", "/etc/passwd", "/etc/group"],
    );
    assert_same(&bin, &["/usr/bin/sed", "-n", "2,4p", "/etc/passwd"]);
    assert_same(&bin, &["/usr/bin/awk", "-F:", "{print $1}", "/etc/passwd"]);
    assert_same(&bin, &["/usr/bin/uniq", "-c", "/etc/passwd"]);
    if Path::new("/usr/bin/sqlite3").exists() {
        assert_same(&bin, &["/usr/bin/sqlite3", ":memory:", "select 6*7;"]);
    }
}

/// `tar` creating and listing an archive in /tmp, and `sqlite3` on a database file in /tmp:
/// in the sandbox (whose writes must not reach the host), then natively in the same fresh
/// host directory (removed afterwards).
#[test]
fn tar_and_sqlite_in_tmp() {
    let Some(bin) = sandbox() else { return };
    let dir = format!("/tmp/runsc-rs-fs-tmp-{}", std::process::id());
    let mut script = format!(
        "set -e; mkdir {dir}; cd {dir}; mkdir d; echo hello > d/a; echo world > d/b; \
         tar cf a.tar d; tar tf a.tar | sort; rm -r d; tar xf a.tar; cat d/a d/b"
    );
    if Path::new("/usr/bin/sqlite3").exists() {
        script.push_str(
            "; sqlite3 db.sqlite 'create table t(x); insert into t values (6), (7);'; \
             sqlite3 db.sqlite 'select x * 7 from t order by x;'",
        );
    } else {
        runsc_rs_tests::skip("sqlite3 is not installed: only tar runs in /tmp");
    }
    let cmd = ["/bin/sh", "-c", script.as_str()];
    // The sandbox first: the host's /tmp is its read-only lower layer, so a native run first
    // would leave the directory for the sandbox to trip over.
    let sandboxed = run_sandbox(&bin, &[], &cmd);
    assert!(
        !Path::new(&dir).exists(),
        "the sandbox's writes reached the host"
    );
    let native = run_native(&cmd);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        String::from_utf8_lossy(&sandboxed.stdout),
        String::from_utf8_lossy(&native.stdout),
        "sandbox stderr: {}",
        String::from_utf8_lossy(&sandboxed.stderr)
    );
    assert_eq!(sandboxed.status.code(), native.status.code());
}

#[test]
fn writes_deletes_renames_stay_in_the_sandbox() {
    let Some(bin) = sandbox() else { return };
    let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "fs-overlay");
    std::fs::write(s.join("keep"), b"original\n").unwrap();
    std::fs::write(s.join("victim"), b"victim\n").unwrap();
    // One process does everything (python3 needs no fork), then reports what it sees.
    let script = format!(
        "import os\n\
         d = {d:?}\n\
         open(d + '/keep', 'w').write('changed\\n')\n\
         os.unlink(d + '/victim')\n\
         os.rename(d + '/keep', d + '/moved')\n\
         os.mkdir(d + '/newdir')\n\
         print(open(d + '/moved').read(), end='')\n\
         print('\\n'.join(sorted(os.listdir(d))))\n",
        d = s.str()
    );
    let out = run_sandbox(&bin, &[], &["/usr/bin/python3", "-c", &script]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "changed\nmoved\nnewdir\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(s.join("keep")).unwrap(), b"original\n");
    assert_eq!(std::fs::read(s.join("victim")).unwrap(), b"victim\n");
    assert!(!s.join("moved").exists());
    assert!(!s.join("newdir").exists());
}

#[test]
fn rootfs_symlink_and_dotdot_escapes_fail() {
    let Some(bin) = sandbox() else { return };
    let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "fs-rootfs");
    let root = s.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy("/bin/busybox", root.join("busybox")).unwrap();
    std::fs::write(s.join("secret"), b"host secret\n").unwrap();
    std::fs::write(root.join("secret"), b"sandbox\n").unwrap();
    std::os::unix::fs::symlink("/", root.join("slash")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
    let root_s = root.to_str().unwrap();
    for path in ["/slash/secret", "/up", "/../secret", "/../../secret"] {
        let out = run_sandbox(&bin, &["--rootfs", root_s], &["/busybox", "cat", path]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "sandbox\n", "{path}");
    }
}

#[test]
fn volumes_work_and_ro_is_enforced() {
    let Some(bin) = sandbox() else { return };
    let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "fs-volume");
    std::fs::write(s.join("data"), b"from host\n").unwrap();
    let rw = format!("{}:/mnt/vol", s.str());
    let out = run_sandbox(
        &bin,
        &["--volume", &rw],
        &["/bin/busybox", "cat", "/mnt/vol/data"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from host\n");
    let out = run_sandbox(
        &bin,
        &["--volume", &rw],
        &["/bin/busybox", "touch", "/mnt/vol/created"],
    );
    assert!(out.status.success());
    assert!(s.join("created").exists());

    let ro = format!("{}:/mnt/vol:ro", s.str());
    let out = run_sandbox(
        &bin,
        &["--volume", &ro],
        &["/bin/busybox", "touch", "/mnt/vol/nope"],
    );
    assert!(!out.status.success());
    assert!(!s.join("nope").exists());
    // `..` out of the volume lands in the sandbox's /mnt, not the host's parent directory.
    let ls = |path: &str| {
        let out = run_sandbox(
            &bin,
            &["--volume", &ro],
            &["/bin/busybox", "ls", "-a", path],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mnt = ls("/mnt");
    assert!(mnt.lines().any(|l| l == "vol"), "{mnt}");
    assert_eq!(ls("/mnt/vol/.."), mnt);
    assert_eq!(ls("/mnt/vol/../../.."), ls("/"));
}

/// `--volume FILE:GUEST`: a single host file bound over (or created at) a path in the
/// sandbox; reads, `>` and attribute changes reach the host file, `:ro` refuses writes,
/// the mountpoint cannot be renamed or removed (EBUSY, as on Linux), and listings show the
/// host file's size.
#[test]
fn file_volumes_read_write_and_ro() {
    let Some(bin) = sandbox() else { return };
    let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "fs-filevol");
    let host = s.join("motd");
    std::fs::write(&host, b"hello from the host\n").unwrap();
    let rw = format!("{}:/etc/motd.test", host.display());
    let ro = format!("{rw}:ro");
    let sh = |vol: &str, script: &str| {
        let out = run_sandbox(
            &bin,
            &["--volume", vol],
            &["/bin/busybox", "sh", "-c", script],
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, out, err) = sh(&rw, "cat /etc/motd.test");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "hello from the host\n"),
        "{err}"
    );
    // The size through stat, through a listing of the file and of its directory (the
    // mountpoint was created: /etc has no motd.test on the host).
    let (_, out, err) = sh(
        &rw,
        "stat -c %s /etc/motd.test; ls -l /etc/motd.test; ls -l /etc | grep motd.test",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}{err}");
    assert_eq!(lines[0], "20");
    for l in &lines[1..] {
        assert_eq!(l.split_whitespace().nth(4), Some("20"), "{l}");
        assert!(l.starts_with("-rw-"), "{l}");
    }
    // A private mapping sees the file's bytes.
    if Path::new("/usr/bin/python3").exists() {
        let out = run_sandbox(
            &bin,
            &["--volume", &rw],
            &[
                "/usr/bin/python3",
                "-c",
                "import mmap; f = open('/etc/motd.test', 'rb'); \
                 m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ); \
                 print(m[:5].decode())",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Read-write: `>` truncates and writes the host file, `>>` appends, chmod reaches it.
    let (code, _, err) = sh(
        &rw,
        "echo new > /etc/motd.test && echo more >> /etc/motd.test && chmod 600 /etc/motd.test",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read(&host).unwrap(), b"new\nmore\n");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&host).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The mountpoint is busy: no rename or unlink of it, even on a writable mount.
    let (_, out, _) = sh(
        &rw,
        "mv /etc/motd.test /etc/moved 2>&1; echo mv=$?; rm /etc/motd.test 2>&1; echo rm=$?; \
         cat /etc/motd.test",
    );
    assert!(out.contains("mv=1"), "{out}");
    assert!(out.contains("rm=1"), "{out}");
    assert!(out.contains("busy"), "{out}");
    assert!(out.ends_with("new\nmore\n"), "{out}");
    assert_eq!(std::fs::read(&host).unwrap(), b"new\nmore\n");
    // The errors themselves (mv would hide a wrong EXDEV behind its copy fallback).
    if Path::new("/usr/bin/python3").exists() {
        let out = run_sandbox(
            &bin,
            &["--volume", &rw],
            &[
                "/usr/bin/python3",
                "-c",
                "import os\n\
                 for op in (lambda: os.rename('/etc/motd.test', '/etc/moved'),\n\
                 \x20         lambda: os.rename('/etc/passwd', '/etc/motd.test'),\n\
                 \x20         lambda: os.unlink('/etc/motd.test')):\n\
                 \x20   try: op(); print('done')\n\
                 \x20   except OSError as e: print(os.strerror(e.errno))",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Device or resource busy\n".repeat(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Read-only: the shell reports the error, the host file is unchanged, reads still work.
    let (code, out, err) = sh(
        &ro,
        "echo bad > /etc/motd.test; echo status=$?; chmod 666 /etc/motd.test; \
         echo chmod=$?; cat /etc/motd.test",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("status=1\nchmod=1\nnew\nmore\n"), "{out}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(std::fs::read(&host).unwrap(), b"new\nmore\n");
}

/// A volume whose host path is a symlink is refused, not followed: a link swapped in for
/// the file the operator named (here, to /etc/shadow) cannot make the sandbox read the
/// link's target. Symlinks the sandbox finds inside a directory volume are the sentry's to
/// resolve (see `rootfs_symlink_and_dotdot_escapes_fail`); a file volume has none below it.
#[test]
fn file_volume_that_is_a_symlink_is_refused() {
    let Some(bin) = sandbox() else { return };
    let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "fs-filevol-link");
    let secret = s.join("secret");
    std::fs::write(&secret, b"root:host-secret-hash\n").unwrap();
    let link = s.join("motd");
    for target in [secret.to_str().unwrap(), "/etc/shadow"] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        for suffix in ["", ":ro"] {
            let vol = format!("{}:/etc/motd.test{suffix}", link.display());
            let out = run_sandbox(
                &bin,
                &["--volume", &vol],
                &["/bin/busybox", "cat", "/etc/motd.test"],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{vol}");
            assert!(out.stdout.is_empty(), "{vol}: {:?}", out.stdout);
            assert!(stderr.contains("symbolic link"), "{vol}: {stderr}");
        }
    }
    // The target itself, named directly, is what the operator asked for.
    let vol = format!("{}:/etc/motd.test:ro", secret.display());
    let out = run_sandbox(
        &bin,
        &["--volume", &vol],
        &["/bin/busybox", "cat", "/etc/motd.test"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "root:host-secret-hash\n"
    );
}

/// Times the sentry keeps for files in its own filesystem (the sandbox's /tmp is a tmpfs
/// upper layer) as Linux keeps them: a read and a directory listing set the access time
/// (once, by relatime's rule), a rename sets the renamed file's change time.
#[test]
fn read_listing_and_rename_times_match_native() {
    runsc_rs_tests::assert_same_program(
        "file_times",
        &[],
        &[
            "read sets atime: yes, later than before: yes\n",
            "relatime: second read keeps atime: yes\n",
            "listing sets atime: yes, keeps mtime: yes\n",
            "rename sets ctime: yes, keeps mtime: yes, keeps atime: yes\n",
        ],
    );
}

/// Runs section `name` of `tests/programs/file_perms.c` natively and in the sandbox (both
/// as root: its checks change users and make device nodes).
fn file_perms_section(name: &str, expect: &[&str]) {
    if !nix::unistd::geteuid().is_root() {
        runsc_rs_tests::skip("file_perms changes users and makes devices: needs root");
        return;
    }
    runsc_rs_tests::assert_same_program("file_perms", &[name], expect);
}

/// Removing or renaming a name needs write access to its directory (EACCES), and in a
/// sticky directory ownership of the file or the directory (EPERM); chmod by another user
/// is EPERM, and a set-group-ID bit outside the caller's groups is dropped.
#[test]
fn name_and_mode_permissions_match_native() {
    file_perms_section(
        "names",
        &[
            "unlink in a closed dir: -1 EACCES\n",
            "rename into a closed dir: -1 EACCES\n",
            "unlink another's file in a sticky dir: -1 EPERM\n",
            "rename over another's file in a sticky dir: -1 EPERM\n",
            "unlink own file in a sticky dir: 0\n",
            "chmod another's file: -1 EPERM\n",
            "mode after: 755\n",
            "mknod a device without CAP_MKNOD: -1 EPERM\n",
        ],
    );
}

/// chown clears set-user-ID, a group-executable set-group-ID and the file capabilities.
#[test]
fn chown_clears_set_id_bits_and_capabilities_like_native() {
    file_perms_section(
        "owners",
        &[
            "mode of 6755 after: 755\n",
            "mode of 6745 after: 2745\n",
            "mode of 2745 after: 2745\n",
            "security.capability after: -1 ENODATA\n",
        ],
    );
}

/// mknod makes character and block device nodes; a known number opens as its device, an
/// unknown one is ENXIO; S_IFDIR is EPERM, an unknown type EINVAL.
#[test]
fn mknod_devices_match_native() {
    file_perms_section(
        "devices",
        &[
            "type chr: 1, rdev 1:3\n",
            "write to it: 1\n",
            "mknod block 240:77: 0\n",
            "open it: -1 ENXIO\n",
            "mknod a directory: -1 EPERM\n",
            "mknod a bad type: -1 EINVAL\n",
        ],
    );
}
