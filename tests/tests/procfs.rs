//! `/proc` inside a real sandbox, compared with native Linux where the two should agree:
//! per-process files for every sandbox process (and only those), `ps`/`pgrep`, the real argv
//! and environment, system files procps parses, `/proc/sys` entries.
//!
//! Uses the runsc-rs binary at `RUNSC_RS_BIN`, else the one next to this test's target dir.
//! Tests that cannot run here (not root, no busybox/procps/python3) print `SKIPPED: reason`.

use std::path::Path;
use std::process::{Command, Output};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn have(path: &str) -> bool {
    Path::new(path).is_file()
}

/// Skips unless the sandbox can run and every program in `needs` exists.
fn skip(needs: &[&str]) -> bool {
    if !is_root() {
        println!("SKIPPED: the sandbox needs root here; not root");
        return true;
    }
    if let Some(missing) = needs.iter().find(|p| !have(p)) {
        println!("SKIPPED: {missing} is not installed");
        return true;
    }
    false
}

/// A Python child that exits unreaped: prints its state letter and how many fds `/proc`
/// lists for it.
const ZOMBIE: &str = "import os,time\n\
p=os.fork()\n\
if p==0: os._exit(0)\n\
os.waitid(os.P_PID,p,os.WEXITED|os.WNOWAIT)\n\
print(open(f'/proc/{p}/stat').read().split()[2], len(os.listdir(f'/proc/{p}/fd')))\n\
os.waitpid(p,0)\n";

fn sandbox(cmd: &[&str]) -> Output {
    Command::new(runsc_rs_tests::runsc_rs_bin())
        .env("ZOMBIE", ZOMBIE)
        .arg("do")
        .arg("--")
        .args(cmd)
        .output()
        .expect("running runsc-rs")
}

fn native(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("running natively")
}

fn stdout_ok(o: &Output) -> String {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Rows of `ps`-style output below the header, split into columns.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn procps_ps_shows_the_shell_as_pid_1_and_nothing_of_the_host() {
    if skip(&["/usr/bin/ps", "/bin/sh"]) {
        return;
    }
    let cmd = ["/bin/sh", "-c", "/usr/bin/ps -e -o pid,ppid,comm; true"];
    let inside = stdout_ok(&sandbox(&cmd));
    let outside = stdout_ok(&native(&cmd));
    assert_eq!(
        inside.lines().next(),
        outside.lines().next(),
        "headers differ"
    );
    let r = rows(&inside);
    assert_eq!(r.len(), 2, "exactly the shell and ps:\n{inside}");
    assert_eq!(r[0][..2], ["1", "0"], "{inside}");
    assert_eq!(r[0][2], "sh", "{inside}");
    assert_eq!(r[1][1], "1", "ps is the shell's child:\n{inside}");
    assert_eq!(r[1][2], "ps", "{inside}");
}

#[test]
fn procps_ps_ef_and_pgrep_see_exactly_the_sandbox_processes() {
    if skip(&["/usr/bin/ps", "/usr/bin/pgrep", "/bin/sh"]) {
        return;
    }
    let out = stdout_ok(&sandbox(&[
        "/bin/sh",
        "-c",
        "sleep 5 & echo bg $!; /usr/bin/ps -ef; echo pgrep $(pgrep -x sleep); kill $!",
    ]));
    let bg = out
        .lines()
        .find_map(|l| l.strip_prefix("bg "))
        .expect("background pid");
    let found = out
        .lines()
        .find_map(|l| l.strip_prefix("pgrep "))
        .expect("pgrep line");
    assert_eq!(found.trim(), bg, "{out}");
    let ps: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("UID"))
        .skip(1)
        .take_while(|l| !l.starts_with("pgrep"))
        .collect();
    assert_eq!(ps.len(), 3, "sh, sleep, ps:\n{out}");
    let cmds: Vec<String> = ps
        .iter()
        .map(|l| l.split_whitespace().skip(7).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(cmds[0].starts_with("/bin/sh -c sleep 5"), "{out}");
    assert_eq!(cmds[1], "sleep 5", "{out}");
    assert_eq!(cmds[2], "/usr/bin/ps -ef", "{out}");
}

#[test]
fn busybox_ps_lists_only_sandbox_processes() {
    if skip(&["/usr/bin/busybox"]) {
        return;
    }
    let out = stdout_ok(&sandbox(&[
        "/usr/bin/busybox",
        "sh",
        "-c",
        "busybox sleep 5 & busybox ps; kill $!",
    ]));
    let r = rows(&out);
    let pids: Vec<&str> = r.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(pids.len(), 3, "{out}");
    assert_eq!(pids[0], "1", "{out}");
    assert!(r[1].join(" ").contains("sleep 5"), "{out}");
}

#[test]
fn cmdline_and_environ_are_the_real_argv_and_environment() {
    if skip(&["/usr/bin/cat", "/usr/bin/env"]) {
        return;
    }
    let cmd = [
        "/usr/bin/env",
        "-i",
        "FOO=bar",
        "EMPTY=",
        "/usr/bin/cat",
        "/proc/self/cmdline",
        "/proc/self/environ",
    ];
    let inside = sandbox(&cmd);
    let outside = native(&cmd);
    assert!(inside.status.success(), "{inside:?}");
    assert_eq!(inside.stdout, outside.stdout);
    assert_eq!(
        inside.stdout,
        b"/usr/bin/cat\0/proc/self/cmdline\0/proc/self/environ\0FOO=bar\0EMPTY=\0"
    );
}

#[test]
fn stat_and_status_have_the_linux_layout() {
    if skip(&["/bin/sh", "/usr/bin/cat"]) {
        return;
    }
    let cmd = ["/bin/sh", "-c", "cat /proc/$$/stat; cat /proc/self/status"];
    let inside = stdout_ok(&sandbox(&cmd));
    let outside = stdout_ok(&native(&cmd));
    let stat_fields = |t: &str| t.lines().next().unwrap().split_whitespace().count();
    assert_eq!(stat_fields(&inside), stat_fields(&outside), "{inside}");
    let stat: Vec<&str> = inside.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(stat[0], "1");
    assert_eq!(stat[1], "(sh)");
    assert_eq!(stat[2], "S", "the shell waits for cat: {inside}");
    assert_eq!(&stat[3..6], ["0", "1", "1"], "ppid pgrp session");
    let keys = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
            .collect()
    };
    let native_keys = keys(&outside);
    for k in [
        "Name", "Umask", "State", "Tgid", "Pid", "PPid", "Uid", "Gid", "Threads", "SigBlk",
        "SigIgn", "SigCgt", "VmRSS", "NSpid",
    ] {
        assert!(keys(&inside).iter().any(|x| x == k), "no {k}:\n{inside}");
        assert!(native_keys.iter().any(|x| x == k), "native has no {k}");
    }
    let status_of = |key: &str| {
        inside
            .lines()
            .skip(1)
            .find_map(|l| l.strip_prefix(&format!("{key}:\t")))
            .unwrap()
            .to_string()
    };
    assert_eq!(status_of("Name"), "cat");
    assert_eq!(status_of("PPid"), "1");
    assert_eq!(status_of("Threads"), "1");
}

#[test]
fn threads_appear_under_task() {
    if skip(&["/usr/bin/python3"]) {
        return;
    }
    let script = "import threading,os\n\
                  ev=threading.Event()\n\
                  ts=[threading.Thread(target=ev.wait) for _ in range(3)]\n\
                  [t.start() for t in ts]\n\
                  tids=sorted(int(t) for t in os.listdir('/proc/self/task'))\n\
                  st=open('/proc/self/status').read()\n\
                  th=[l for l in st.splitlines() if l.startswith('Threads:')][0].split()[1]\n\
                  own=[int(open(f'/proc/self/task/{t}/stat').read().split()[0]) for t in tids]\n\
                  print(len(tids), th, own==tids, tids[0]==os.getpid())\n\
                  ev.set()\n";
    let out = stdout_ok(&sandbox(&["/usr/bin/python3", "-c", script]));
    assert_eq!(out.trim(), "4 4 True True");
}

#[test]
fn fd_links_and_fdinfo_match_native() {
    if skip(&["/bin/sh", "/usr/bin/readlink", "/usr/bin/cat"]) {
        return;
    }
    let cmd = [
        "/bin/sh",
        "-c",
        "exec 3</etc/hostname; readlink /proc/self/fd/3; head -c 5 <&3 >/dev/null; \
         grep -E '^(pos|flags)' /proc/self/fdinfo/3",
    ];
    let inside = sandbox(&cmd);
    let outside = native(&cmd);
    assert_eq!(stdout_ok(&inside), stdout_ok(&outside));
}

#[test]
fn system_files_parse_like_linux() {
    if skip(&["/bin/sh", "/usr/bin/cat"]) {
        return;
    }
    let files = [
        "/proc/stat",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/version",
        "/proc/filesystems",
        "/proc/mounts",
        "/proc/cpuinfo",
        "/proc/meminfo",
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/osrelease",
        "/proc/sys/kernel/pid_max",
        "/proc/sys/kernel/ngroups_max",
        "/proc/sys/kernel/random/boot_id",
        "/proc/sys/kernel/random/uuid",
        "/proc/sys/fs/file-max",
        "/proc/sys/fs/nr_open",
        "/proc/sys/fs/pipe-max-size",
        "/proc/sys/vm/overcommit_memory",
        "/proc/self/limits",
        "/proc/self/mountinfo",
        "/proc/self/smaps_rollup",
        "/proc/self/maps",
    ];
    let script: String = files
        .iter()
        .map(|f| format!("echo '== {f}'; cat {f} || echo FAILED;"))
        .collect();
    let out = stdout_ok(&sandbox(&["/bin/sh", "-c", &script]));
    let section = |f: &str| -> String {
        out.split(&format!("== {f}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {f}"))
            .split("\n== ")
            .next()
            .unwrap()
            .to_string()
    };
    for f in files {
        assert!(!section(f).contains("FAILED"), "{f}: {out}");
    }
    let uuid = |s: &str| {
        let s = s.trim();
        s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
    };
    assert!(uuid(&section("/proc/sys/kernel/random/boot_id")));
    assert!(uuid(&section("/proc/sys/kernel/random/uuid")));
    let stat = section("/proc/stat");
    assert_eq!(stat.lines().next().unwrap().split_whitespace().count(), 11);
    assert!(stat.lines().any(|l| l.starts_with("btime ")));
    assert_eq!(section("/proc/uptime").split_whitespace().count(), 2);
    let load: Vec<String> = section("/proc/loadavg")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(load.len(), 5);
    assert!(load[3].contains('/'));
    assert!(section("/proc/meminfo").starts_with("MemTotal:"));
    assert!(section("/proc/mounts").contains(" /proc proc "));
    let limits = section("/proc/self/limits");
    let native_limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    assert_eq!(limits.lines().next(), native_limits.lines().next());
    assert_eq!(limits.lines().count(), native_limits.lines().count());
    let mi = section("/proc/self/mountinfo");
    assert!(mi.lines().all(|l| l.contains(" - ")), "{mi}");
    assert!(section("/proc/self/smaps_rollup").contains("[rollup]"));
    for t in ["free", "uptime"] {
        if have(&format!("/usr/bin/{t}")) {
            stdout_ok(&sandbox(&[&format!("/usr/bin/{t}")]));
        }
    }
}

#[test]
fn other_processes_are_inspectable_and_zombies_show_z() {
    if skip(&["/bin/sh", "/usr/bin/cat", "/usr/bin/python3"]) {
        return;
    }
    let out = stdout_ok(&sandbox(&[
        "/bin/sh",
        "-c",
        "readlink /proc/1/exe; tr '\\0' ' ' </proc/1/cmdline; echo; python3 -c \"$ZOMBIE\"; true",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with("sh") || lines[0].ends_with("dash"),
        "{out}"
    );
    assert!(lines[1].starts_with("/bin/sh -c readlink"), "{out}");
    assert_eq!(lines[2], "Z 0", "{out}");
}

#[test]
fn mount_and_umount_stay_in_the_sandbox() {
    if skip(&["/bin/sh", "/usr/bin/mount", "/usr/bin/umount"]) {
        return;
    }
    let before = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let out = stdout_ok(&sandbox(&[
        "/bin/sh",
        "-c",
        "mkdir -p /mnt/rs-t /mnt/rs-p /mnt/rs-b; \
         mount -t tmpfs -o mode=700 none /mnt/rs-t && echo data > /mnt/rs-t/f && cat /mnt/rs-t/f; \
         stat -c %a /mnt/rs-t; \
         mount -t proc proc /mnt/rs-p && test -e /mnt/rs-p/self/stat && echo proc; \
         mount --bind /etc /mnt/rs-b && test -e /mnt/rs-b/hostname && echo bind; \
         grep -c ' /mnt/rs-' /proc/mounts; \
         mount -t ext4 /dev/null /mnt/rs-t 2>/dev/null || echo nodev; \
         cd /mnt/rs-t; umount /mnt/rs-t 2>/dev/null || echo busy; cd /; \
         umount /mnt/rs-t && umount -l /mnt/rs-p && umount /mnt/rs-b && echo gone; \
         grep -c ' /mnt/rs-' /proc/mounts; test -e /mnt/rs-t/f || echo empty",
    ]));
    assert_eq!(
        out, "data\n700\nproc\nbind\n3\nnodev\nbusy\ngone\n0\nempty\n",
        "{out}"
    );
    let after = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!after.contains("/mnt/rs-"), "a host mount appeared");
    assert_eq!(before.lines().count(), after.lines().count());
}

#[test]
fn process_control_files_take_writes_like_linux() {
    if skip(&["/bin/sh", "/usr/bin/cat", "/usr/bin/readlink"]) {
        return;
    }
    // oom_score_adj and coredump_filter are per process and inherited by children; a thread
    // may rename itself through task/[tid]/comm (the newline is kept, as on Linux); out of
    // range values are refused; /proc/net is the link to self/net.
    let cmd = [
        "/bin/sh",
        "-c",
        "echo 7 > /proc/self/oom_score_adj; cat /proc/$$/oom_score_adj; \
         sh -c 'cat /proc/$$/oom_score_adj'; \
         (echo 2000 > /proc/self/oom_score_adj) 2>/dev/null || echo refused; \
         echo 0x31 > /proc/self/coredump_filter; cat /proc/$$/coredump_filter; \
         sh -c 'cat /proc/$$/coredump_filter'; \
         echo 100 > /proc/self/coredump_filter; cat /proc/$$/coredump_filter; \
         echo renamed > /proc/self/task/$$/comm; cat /proc/$$/comm; \
         readlink /proc/net; test -d /proc/self/net && test -e /proc/self/net/tcp && echo netdir; \
         grep -q '^VmFlags: ' /proc/self/smaps && grep -q '^Rss: ' /proc/self/smaps && echo smaps",
    ];
    let inside = stdout_ok(&sandbox(&cmd));
    assert_eq!(inside, stdout_ok(&native(&cmd)));
    assert!(
        inside.contains("refused\n") && inside.ends_with("smaps\n"),
        "{inside}"
    );
}

#[test]
fn memory_devices_answer_every_seek_with_zero() {
    if skip(&["/usr/bin/python3"]) {
        return;
    }
    let cmd = [
        "/usr/bin/python3",
        "-c",
        "import os\n\
         fd = os.open('/dev/null', os.O_RDONLY)\n\
         print(os.lseek(fd, 1000, 1), os.lseek(fd, -10, 1), os.lseek(fd, 5, 2))\n\
         fd = os.open('/dev/urandom', os.O_RDONLY); os.read(fd, 10)\n\
         print(os.lseek(fd, -10, 1), os.lseek(fd, 0, 1))\n\
         fd = os.open('/dev/full', os.O_RDONLY)\n\
         print(os.lseek(fd, 123, 0), os.lseek(fd, 123, 2))\n\
         try: os.lseek(fd, 0, 9)\n\
         except OSError as e: print(e.errno)\n",
    ];
    let inside = stdout_ok(&sandbox(&cmd));
    assert_eq!(inside, stdout_ok(&native(&cmd)));
    assert_eq!(inside, "0 0 0\n0 0\n0 0\n22\n");
}

#[test]
fn unshare_newns_gives_a_private_copy_of_the_mounts() {
    if skip(&[
        "/bin/sh",
        "/usr/bin/unshare",
        "/usr/bin/mount",
        "/usr/bin/umount",
    ]) {
        return;
    }
    // The child namespace starts with the parent's mounts; unmounting or mounting there
    // leaves the parent's alone, and the two have different ns/mnt numbers.
    let out = stdout_ok(&sandbox(&[
        "/bin/sh",
        "-c",
        "mkdir -p /mnt/rs-ns; mount -t tmpfs none /mnt/rs-ns; echo x > /mnt/rs-ns/f; \
         unshare -m sh -c 'cat /mnt/rs-ns/f && umount /mnt/rs-ns && test ! -e /mnt/rs-ns/f \
           && echo child-unmounted'; \
         cat /mnt/rs-ns/f; \
         unshare -m sh -c 'mount -t tmpfs none /mnt/rs-ns && test ! -e /mnt/rs-ns/f \
           && echo child-mounted'; \
         cat /mnt/rs-ns/f; \
         [ \"$(readlink /proc/self/ns/mnt)\" != \"$(unshare -m readlink /proc/self/ns/mnt)\" ] \
           && echo differs",
    ]));
    assert_eq!(
        out, "x\nchild-unmounted\nx\nchild-mounted\nx\ndiffers\n",
        "{out}"
    );
}

#[test]
fn mount_flags_show_in_mountinfo_and_statfs_and_noexec_holds() {
    if skip(&["/bin/sh", "/usr/bin/mount", "/usr/bin/python3"]) {
        return;
    }
    // Linux's formats: mountinfo's root (a bind mount of a subdirectory shows it), the
    // mount's options in Linux's order, tmpfs's mode among the filesystem's options; statfs
    // reports the flags as ST_* bits; noexec refuses execve (EACCES) and PROT_EXEC mappings
    // (EPERM); a remount replaces the flags.
    let out = stdout_ok(&sandbox(&[
        "/bin/sh",
        "-c",
        "mkdir -p /mnt/rs-x /mnt/rs-b; \
         mount -t tmpfs -o noexec,nodev,mode=750 none /mnt/rs-x; mkdir /mnt/rs-x/sub; \
         mount --bind /mnt/rs-x/sub /mnt/rs-b; \
         grep -E ' /mnt/rs-(x|b) ' /proc/self/mountinfo | cut -d' ' -f4-6,8-; \
         grep ' /mnt/rs-x ' /proc/mounts; \
         printf '#!/bin/sh\\necho ran\\n' > /mnt/rs-x/s; chmod 755 /mnt/rs-x/s; \
         /mnt/rs-x/s 2>/dev/null || echo refused; \
         python3 -c \"import os, mmap\n\
print(hex(os.statvfs('/mnt/rs-x').f_flag))\n\
f = open('/mnt/rs-x/s', 'rb')\n\
try: mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)\n\
except OSError as e: print(e.errno)\"; \
         mount -o remount,bind,exec,dev /mnt/rs-x; grep -c noexec /proc/mounts; /mnt/rs-x/s",
    ]));
    assert_eq!(
        out,
        "/ /mnt/rs-x rw,nodev,noexec,relatime tmpfs none rw,mode=750\n\
         /sub /mnt/rs-b rw,nodev,noexec,relatime tmpfs none rw,mode=750\n\
         none /mnt/rs-x tmpfs rw,nodev,noexec,relatime,mode=750 0 0\n\
         refused\n0x100c\n1\n1\nran\n",
        "{out}"
    );
}

#[test]
fn auxv_is_the_vector_the_program_started_with() {
    if skip(&["/usr/bin/python3"]) {
        return;
    }
    // Every entry of /proc/self/auxv is what getauxval(3) reports (but AT_HWCAP, which glibc
    // answers from its own CPU model, and the vDSO's), and the vector ends with AT_NULL.
    let cmd = [
        "/usr/bin/python3",
        "-c",
        "import ctypes, struct\n\
         libc = ctypes.CDLL(None); libc.getauxval.restype = ctypes.c_ulong\n\
         data = open('/proc/self/auxv', 'rb').read()\n\
         pairs = [struct.unpack_from('QQ', data, i) for i in range(0, len(data), 16)]\n\
         print(pairs[-1] == (0, 0), dict(pairs)[6],\n\
               all(libc.getauxval(k) == v for k, v in pairs if k not in (0, 16, 32, 33)))\n",
    ];
    let inside = stdout_ok(&sandbox(&cmd));
    assert_eq!(inside, stdout_ok(&native(&cmd)));
    assert_eq!(inside, "True 4096 True\n");
}

/// MAP_POPULATE shows in statm, /proc/cpuinfo has apicid and power management, read-only
/// /proc files refuse truncation (EACCES) and writes, directories without read permission
/// cannot be listed: as natively (root, to change users).
#[test]
fn populate_rss_cpuinfo_fields_and_read_only_files() {
    if !nix::unistd::geteuid().is_root() {
        return runsc_rs_tests::skip("setuid to another user needs root natively");
    }
    runsc_rs_tests::assert_same_program(
        "proc_facts",
        &[],
        &[
            "populate counted: 1\n",
            "apicid: 1\n",
            "initial apicid: 1\n",
            "power management: 1\n",
            "root opens for writing: 1\n",
            "root write fails: 1\n",
            "user truncate: EACCES\n",
            "user lists root's 0700 directory: EACCES\n",
            "user lists root's fd directory: EACCES\n",
        ],
    );
}

/// `/proc/[pid]/mem`: the caller's own memory read and written at addresses (read-only pages
/// too), offsets moved by read and lseek, SEEK_END refused, EIO at an unmapped address, a
/// child's memory read by its parent, nothing once it has exited, another user refused: as
/// natively (root, to change users).
#[test]
fn proc_pid_mem_reads_and_writes_memory_like_linux() {
    if !nix::unistd::geteuid().is_root() {
        return runsc_rs_tests::skip("setuid to another user needs root natively");
    }
    runsc_rs_tests::assert_same_program(
        "proc_mem",
        &[],
        &[
            "pread: 12 hello-world\n",
            "pwrite: 12 written-now\n",
            "write read-only page: 4 poke\n",
            "read advances: 3 345\n",
            "seek end: EINVAL\n",
            "read across the end of a mapping: 2 x\n",
            "read unmapped: EIO\n",
            "read child: 11 child-own!\n",
            "other user opens: EACCES\n",
            "read after exit: 0\n",
        ],
    );
}

/// `/proc/[pid]/task/[tid]/io` counts the thread's read and write calls and their bytes,
/// and `/proc/[pid]/io` keeps an exited thread's in the process's sum: as natively.
#[test]
fn io_accounting_counts_read_and_write_calls_like_linux() {
    runsc_rs_tests::assert_same_program(
        "proc_io",
        &[],
        &[
            "thread: rchar 10 wchar 21 syscr 5 syscw 7\n",
            "mode: 400\n",
            "process counts the thread: yes\n",
        ],
    );
}

/// `/proc/net/snmp` and `/proc/net/netstat` of a fresh network namespace: the TCP and UDP
/// lines have Linux's fields, and a refused connect, an accepted connection reset on close
/// and UDP datagrams to a closed and to a bound port move the counters as natively.
#[test]
fn net_snmp_counts_connections_and_datagrams_like_linux() {
    if !is_root() {
        return runsc_rs_tests::skip("a network namespace of its own needs root natively");
    }
    runsc_rs_tests::assert_same_program(
        "net_snmp",
        &[],
        &[
            "fresh: ActiveOpens 0 InSegs 0 InDatagrams 0\n",
            "netstat: TCPOrigDataSent 1 TCPSynRetrans 1 InOctets 1\n",
            "refused: ActiveOpens+1 PassiveOpens+0 AttemptFails+1 EstabResets+0 CurrEstab+0 \
             OutRsts+1",
            "refused segments: in +2 out +2\n",
            "accepted: ActiveOpens+1 PassiveOpens+1 AttemptFails+0 EstabResets+0 CurrEstab+2",
            "reset: ActiveOpens+0 PassiveOpens+0 AttemptFails+0 EstabResets+2 CurrEstab-2",
            "udp closed port: ActiveOpens+0 PassiveOpens+0 AttemptFails+0 EstabResets+0 \
             CurrEstab+0 OutRsts+0 InDatagrams+0 NoPorts+1 OutDatagrams+1\n",
            "udp received: ActiveOpens+0 PassiveOpens+0 AttemptFails+0 EstabResets+0 \
             CurrEstab+0 OutRsts+0 InDatagrams+1 NoPorts+0 OutDatagrams+1\n",
        ],
    );
}

/// A Python parent that lists its thread's `children`, holds a `/proc/[pid]` file and
/// directory of a child open across the child's death and reaping, then reads them.
const REAPED: &str = "import errno,os,time\n\
p=os.fork()\n\
if p==0:\n    time.sleep(60)\n    os._exit(0)\n\
me=os.getpid()\n\
kids=open(f'/proc/{me}/task/{me}/children').read()\n\
f=os.open(f'/proc/{p}/status',os.O_RDONLY)\n\
d=os.open(f'/proc/{p}',os.O_RDONLY|os.O_DIRECTORY)\n\
os.kill(p,9)\n\
os.waitpid(p,0)\n\
def attempt(call):\n    try:\n        call()\n        return 'ok'\n    except OSError as e:\n        return errno.errorcode[e.errno]\n\
print(kids==f'{p} ', os.path.exists(f'/proc/{me}/children'), attempt(lambda: os.read(f,64)), attempt(lambda: os.readlink('exe',dir_fd=d)))\n";

#[test]
fn task_children_lists_the_threads_children_and_a_reaped_processs_files_fail_with_esrch() {
    if skip(&["/usr/bin/python3"]) {
        return;
    }
    let cmd = ["/usr/bin/python3", "-c", REAPED];
    let inside = stdout_ok(&sandbox(&cmd));
    assert_eq!(inside, "True False ESRCH ESRCH\n");
    assert_eq!(inside, stdout_ok(&native(&cmd)));
}
