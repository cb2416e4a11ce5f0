//! FUSE in the sandbox: a real FUSE daemon (Debian's `bindfs`) mounts a directory through
//! `/dev/fuse`, and a shell script works through the mount. The same script runs natively
//! (as root, in a private mount namespace made by `unshare -m`) and in the sandbox, and
//! both must print the same.

use runsc_rs_tests::{
    assert_same_outcomes, program_str, run_native, run_sandbox, skip, Outcome, Scratch,
};

/// Starts `bindfs -f "$S" "$M"` in the background and waits (up to 10 s) for the mount to
/// show in /proc/mounts; the script after it uses `$M`, `$S` and `$daemon`.
const MOUNT: &str = r#"
S=$1 M=$2
bindfs -f "$S" "$M" & daemon=$!
i=0
while ! grep -q " $M fuse" /proc/mounts; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "no mount"; exit 9; }
    sleep 0.1
done
grep " $M " /proc/mounts | cut -d' ' -f3
"#;

/// Runs `MOUNT` then `body` natively and in the sandbox over a fresh source directory
/// holding `a.txt`; None (after a skip) when the machine cannot.
fn both(tag: &str, body: &str) -> Option<String> {
    let (script, outcomes) = outcomes(tag, body, &[])?;
    Some(assert_same_outcomes(&script, outcomes))
}

/// As [`both`], with the `fuse_mmap` test program as `$3`.
fn both_with_fuse_mmap(tag: &str, body: &str) -> Option<String> {
    let prog = program_str("fuse_mmap")?;
    let (script, outcomes) = outcomes(tag, body, &[&prog])?;
    Some(assert_same_outcomes(&script, outcomes))
}

/// The native and sandbox runs of `MOUNT` then `body` (with `extra` as `$3`...) over a fresh
/// source directory holding `a.txt`, and the script; None (after a skip) when the machine
/// cannot.
fn outcomes(tag: &str, body: &str, extra: &[&str]) -> Option<(String, (Outcome, Outcome))> {
    if run_native(&["sh", "-c", "command -v bindfs"]).status != 0 {
        skip("bindfs is not installed (Debian package bindfs)");
        return None;
    }
    if !std::path::Path::new("/dev/fuse").exists() || !nix::unistd::geteuid().is_root() {
        skip("native FUSE needs root and /dev/fuse");
        return None;
    }
    let script = format!("{MOUNT}{body}");
    let run = |sandbox: bool| {
        let dir = Scratch::new(tag);
        std::fs::create_dir(dir.join("src")).unwrap();
        std::fs::create_dir(dir.join("mnt")).unwrap();
        std::fs::write(dir.join("src/a.txt"), "hello\n").unwrap();
        let (s, m) = (dir.join("src"), dir.join("mnt"));
        let (s, m) = (s.to_str().unwrap(), m.to_str().unwrap());
        // The same path on both sides, so that messages naming it agree.
        let mut args = vec!["sh", "-c", &script, "sh", s, m];
        args.extend_from_slice(extra);
        if sandbox {
            run_sandbox(&args, &[])
        } else {
            let mut native = vec!["unshare", "-m", "--propagation", "private"];
            native.extend(args);
            run_native(&native)
        }
    };
    let native = run(false);
    let sandbox = run(true);
    Some((script, (native, sandbox)))
}

/// Files made, read, written, appended, truncated, renamed, linked, listed and removed
/// through the mount (with READ and WRITE larger than one request), statfs, then unmount:
/// the daemon exits on its own.
#[test]
fn bindfs_matches_native() {
    let body = r#"
cd "$M" || exit 1
cat a.txt
echo world > b.txt && cat b.txt
echo more >> b.txt && cat b.txt
mv b.txt c.txt && ls
mkdir d && ln -s ../a.txt d/link && readlink d/link && cat d/link
ln a.txt hard && stat -c '%n %s %F' a.txt hard d d/link && stat -c '%h' hard d
chmod 640 c.txt && stat -c '%n %a %s' c.txt
truncate -s 3 c.txt && cat c.txt && echo
head -c 1000000 /dev/zero | tr '\0' x > big && wc -c < big && md5sum < big
rmdir d 2>&1 | sed 's/.*: //'
rm d/link && rmdir d && rm c.txt hard
ls -a
stat -f -c '%T' .
ls "$S"
cd /
umount "$M"
wait $daemon
echo "daemon exited: $?"
grep -c " $M " /proc/mounts
echo end
"#;
    let Some(out) = both("fuse-bindfs", body) else {
        return;
    };
    assert!(out.starts_with("fuse\nhello\nworld\n"), "{out}");
    assert!(out.ends_with("daemon exited: 0\n0\nend\n"), "{out}");
}

/// The daemon is killed: calls on the mount fail with ENOTCONN, never hang, and the mount
/// can still be unmounted; the sandbox then exits.
#[test]
fn killed_daemon_gives_enotconn() {
    let body = r#"
cat "$M/a.txt"
kill -9 $daemon
wait $daemon
echo "daemon: $?"
cat "$M/a.txt" 2>&1 | sed 's/.*: //'
touch "$M/new" 2>&1 | sed 's/.*: //'
stat -c %n "$M/x" 2>&1 | sed 's/.*: //'
umount "$M" && echo unmounted
"#;
    let Some(out) = both("fuse-killed", body) else {
        return;
    };
    assert!(
        out.contains("daemon: 137\nTransport endpoint is not connected\n"),
        "{out}"
    );
    assert!(out.ends_with("unmounted\n"), "{out}");
}

/// The protocol by hand (`tests/programs/fuse_raw.c`): mount options, INIT, LOOKUP,
/// GETATTR, OPEN and a READ the daemon holds until the reader is signalled: the reader's
/// wait sends FUSE_INTERRUPT naming the READ and ends with the daemon's EINTR; then the
/// closed device makes the mount answer ENOTCONN.
#[test]
fn raw_protocol_and_interrupt_match_native() {
    if !std::path::Path::new("/dev/fuse").exists() {
        skip("native FUSE needs /dev/fuse");
        return;
    }
    runsc_rs_tests::assert_same_program(
        "fuse_raw",
        &[],
        &[
            "mount without fd: -1 EINVAL",
            "second mount of the connection: 0",
            "interrupt names the read: 1",
            "reader read: -1 EINTR",
            "stat after the daemon closed: -1 ENOTCONN",
            "stat of the second mount: -1 ENOTCONN",
            "umount second: 0",
        ],
    );
}

/// `tests/programs/fuse_mmap.c` on the bindfs mount: private mappings read the file and
/// keep their stores, shared read-only ones read it, mappings made after write(2) and
/// truncate see the change, a mapping outlives its file's close, and a static binary copied
/// onto the mount runs. A shared writable mapping's stores are seen by read(2) at once, it
/// sees a pwrite(2), and its stores reach the daemon's own file (read directly in the source
/// directory) by msync, munmap, fsync and close.
#[test]
fn mmap_and_exec_match_native() {
    let Some(prog) = program_str("fuse_mmap") else {
        return;
    };
    let body = r#"
"$3" "$M" "$S"
echo "status: $?"
cd /
umount "$M"
wait $daemon
echo "daemon exited: $?"
"#;
    let Some((script, (native, sandbox))) = outcomes("fuse-mmap", body, &[&prog]) else {
        return;
    };
    let shared = |o: &Outcome| -> (Outcome, Vec<String>) {
        let (lines, rest): (Vec<&str>, Vec<&str>) = std::str::from_utf8(&o.stdout)
            .unwrap()
            .lines()
            .partition(|l| l.starts_with("shared writable "));
        let mut o = o.clone();
        o.stdout = rest
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes();
        (o, lines.iter().map(|l| l.to_string()).collect())
    };
    let ((native, native_shared), (sandbox, sandbox_shared)) = (shared(&native), shared(&sandbox));
    let out = assert_same_outcomes(&script, (native, sandbox));
    for line in [
        "private read matches: 1",
        "past the end of the file zero: 1",
        "shared read matches: 1",
        "writable shared mmap of a read-only open: -1 EACCES",
        "mapping sees its store: 1",
        "file unchanged: 1",
        "new mapping sees the write: 1",
        "new mapping sees the truncation: 1",
        "read after close: 1",
        "child: running from the mount",
        "exec status: 7",
        "done",
        "status: 0",
        "daemon exited: 0",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    let expected = [
        "shared writable mmap: 0",
        "shared writable pread: 6",
        "shared writable store seen by read(2) at once: 1",
        "shared writable pwrite: 4",
        "shared writable mapping sees the pwrite: 1",
        "shared writable msync: 0",
        "shared writable msync reached the daemon: 1",
        "shared writable munmap reached the daemon: 1",
        "shared writable pread after munmap: 8",
        "shared writable store reached the file: 1",
        "shared writable fsync: 0",
        "shared writable fsync reached the daemon: 1",
        "shared writable close: 0",
        "shared writable close reached the daemon: 1",
        "shared writable mapping keeps its bytes: 1",
        "shared writable size unchanged: 1",
    ];
    assert_eq!(native_shared, expected, "native");
    assert_eq!(sandbox_shared, expected, "sandbox");
}

/// Script lines that start `fuse_mmap MODE FILE` (`$holder`) with its input the FIFO `$F`
/// (held open as fd 3, so it waits there until told to go on) and its output in `$O`, then
/// wait until it printed `ready` (10 s at most).
fn start_holder(mode: &str, file: &str, ready: &str) -> String {
    format!(
        r#"
F=$(mktemp -u /tmp/fuse-mmap-fifo.XXXXXX); mkfifo "$F"
O=$(mktemp /tmp/fuse-mmap-out.XXXXXX)
"$3" {mode} "{file}" < "$F" > "$O" & holder=$!
exec 3> "$F"
i=0
while ! grep -q {ready} "$O"; do
    i=$((i + 1)); [ $i -gt 100 ] && {{ echo "not {ready}"; break; }}
    sleep 0.1
done
"#
    )
}

/// The end of scripts that started a holder: the daemon killed (its status printed), the
/// holder let go on (its status and output printed), then the mount taken down.
const KILL_DAEMON_THEN_RELEASE_HOLDER: &str = r#"
kill -9 $daemon
wait $daemon
echo "daemon: $?"
echo go >&3
wait $holder
echo "holder: $?"
cat "$O"
rm -f "$F" "$O"
umount "$M" && echo unmounted
"#;

/// The start of the scripts of the tests below: an 8 MiB file on the mount and a `fuse_mmap
/// hold` process that maps it and reads its first page, then waits on `$F` before touching
/// the rest.
fn holder_mapped() -> String {
    let file = r#"
head -c 8388608 /dev/zero | tr '\0' a > "$M/big"
"#;
    [file, &start_holder("hold", "$M/big", "mapped")].concat()
}

/// A store through a shared writable mapping, then the daemon killed: msync and fsync end
/// (never hang) and report how, natively and in the sandbox alike, and the holder and the
/// mount can still go.
#[test]
fn killed_daemon_fails_write_back() {
    let body = &[
        r#"
echo data > "$M/w"
"#,
        &start_holder("dirty", "$M/w", "stored"),
        KILL_DAEMON_THEN_RELEASE_HOLDER,
    ]
    .concat();
    let Some(out) = both_with_fuse_mmap("fuse-wb-killed", body) else {
        return;
    };
    assert!(
        out.contains(concat!(
            "daemon: 137\nholder: 0\nstored\n",
            "msync after the daemon died: -1 ENOTCONN\n",
            "fsync after the daemon died: -1 ENOTCONN\n"
        )),
        "{out}"
    );
    assert!(out.ends_with("unmounted\n"), "{out}");
}

/// A process that stores through a shared writable mapping and is killed (no munmap, msync
/// or close of its own): the stores still reach the daemon's file, natively and in the
/// sandbox.
#[test]
fn killed_writer_stores_reach_the_daemon() {
    let body = r#"
echo hello-world > "$M/k"
"$3" killed "$M/k"
echo "writer: $?"
head -c 11 "$M/k"; echo
umount "$M"
wait $daemon
echo "daemon exited: $?"
head -c 11 "$S/k"; echo
"#;
    let Some(out) = both_with_fuse_mmap("fuse-wb-writer-killed", body) else {
        return;
    };
    assert!(
        out.ends_with("writer: 137\nkilledworld\ndaemon exited: 0\nkilledworld\n"),
        "{out}"
    );
}

/// A file mapped and partly read, then the daemon killed: a fault on a page never read is
/// SIGBUS, natively and in the sandbox (the fill fails with the connection's end).
#[test]
fn killed_daemon_faults_sigbus() {
    let body = &[holder_mapped().as_str(), KILL_DAEMON_THEN_RELEASE_HOLDER].concat();
    let Some(out) = both_with_fuse_mmap("fuse-sigbus", body) else {
        return;
    };
    assert!(
        out.contains("daemon: 137\nholder: 135\nfirst byte: 97\nmapped\n"),
        "{out}"
    );
    assert!(out.ends_with("unmounted\n"), "{out}");
}

/// The daemon stopped (SIGSTOP) while a process faults on a page it must read: that process
/// waits, the rest of the sandbox goes on (the shell runs and sees the faulting process
/// alive); the daemon killed, the fault ends in SIGBUS.
#[test]
fn stopped_daemon_blocks_only_the_faulting_process() {
    let body = &[
        holder_mapped().as_str(),
        r#"
kill -STOP $daemon
echo go >&3
sleep 0.5
kill -0 $holder && echo "holder waits"
cat "$O"
kill -9 $daemon
wait $daemon
echo "daemon: $?"
wait $holder
echo "holder: $?"
rm -f "$F" "$O"
umount "$M" && echo unmounted
"#,
    ]
    .concat();
    let Some(out) = both_with_fuse_mmap("fuse-stopped", body) else {
        return;
    };
    assert!(
        out.contains("holder waits\nfirst byte: 97\nmapped\ndaemon: 137\nholder: 135\n"),
        "{out}"
    );
    assert!(out.ends_with("unmounted\n"), "{out}");
}

/// The daemon stopped while a process faults on a page it must read, then that process
/// killed: SIGKILL ends it (status 137) while the daemon is still stopped, natively and in
/// the sandbox, where the fill's wait is killable and the unread READ is withdrawn; the
/// daemon continued, the mount unmounts. On a sentry whose fill waits uninterruptibly the
/// holder is still alive until the daemon continues.
#[test]
fn stopped_daemon_lets_the_faulting_process_be_killed() {
    let body = &[
        holder_mapped().as_str(),
        r#"
kill -STOP $daemon
echo go >&3
sleep 0.5
kill -0 $holder && echo "holder waits"
kill -9 $holder
sleep 0.5
# Ended (a zombie, or reaped) with the daemon still stopped.
if [ -e /proc/$holder/stat ] && [ "$(cut -d' ' -f3 /proc/$holder/stat)" != Z ]; then
    echo "holder alive"
else
    echo "holder ended"
fi
kill -CONT $daemon
wait $holder
echo "holder: $?"
cat "$O"
rm -f "$F" "$O"
umount "$M" && echo unmounted
wait $daemon
echo "daemon: $?"
"#,
    ]
    .concat();
    let Some(out) = both_with_fuse_mmap("fuse-killable", body) else {
        return;
    };
    assert!(
        out.contains(
            "holder waits\nholder ended\nholder: 137\nfirst byte: 97\nmapped\nunmounted\n"
        ),
        "{out}"
    );
}

/// A process that is its own daemon (`tests/programs/fuse_selfkill.c`) faults on its own
/// mount while its daemon thread reads no more requests: SIGKILL ends it, natively and in
/// the sandbox, where the fault's wait holds the address space (so the daemon thread could
/// not even take the request) and used to make the process unkillable.
#[test]
fn own_daemon_faulting_on_its_mount_can_be_killed() {
    if !std::path::Path::new("/dev/fuse").exists() {
        skip("native FUSE needs /dev/fuse");
        return;
    }
    runsc_rs_tests::assert_same_program(
        "fuse_selfkill",
        &[],
        &[
            "child mapped the file: 1",
            "faulting process waits: 1",
            "faulting process: killed by signal 9",
            "stat after the daemon died: -1 ENOTCONN",
            "umount: 0",
        ],
    );
}
