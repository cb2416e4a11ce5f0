//! `/proc`: the sandbox's own process information, never the host's.
//!
//! `/proc/[pid]` exists for the calling process (other processes appear once the kernel
//! keeps a task registry); system files are generated from sentry state. Host data is used
//! only for the CPU model (`cpuinfo`) and total memory, read once at boot.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use super::synth::{Generator, ListFn, SynthDir, SynthFile, SynthFs, SynthLink};
use crate::abi::Errno;
use crate::kernel::Task;
use crate::mm::VmaKind;
use crate::syscalls::info::{RELEASE, VERSION};
use std::any::Any;

use crate::vfs::inode::MagicTarget;
use crate::vfs::{Caller, FileOps, FsStats, Inode, MountNamespace, OpenFile, Stat};

/// PROC_SUPER_MAGIC.
pub const PROC_MAGIC: i64 = 0x9fa0;

fn task<'a>(cx: &Caller<'a>) -> Result<&'a Task, Errno> {
    cx.task.ok_or(Errno::ENOENT)
}

fn text(f: impl Fn(&Task) -> String + Send + Sync + 'static) -> Generator {
    Arc::new(move |cx| Ok(f(task(cx)?).into_bytes()))
}

/// Host facts read once (before the sandbox loses access to the host's /proc).
struct HostInfo {
    cpuinfo: String,
    mem_total_kb: u64,
    ncpu: usize,
}

fn host_info() -> &'static HostInfo {
    static INFO: OnceLock<HostInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        // Keep the CPU description; drop host-identifying and microcode details.
        let cpuinfo: String = raw
            .lines()
            .filter(|l| {
                let key = l.split(':').next().unwrap_or("").trim();
                !matches!(
                    key,
                    "microcode" | "bugs" | "power management" | "apicid" | "initial apicid"
                )
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mem_total_kb = nix::sys::sysinfo::sysinfo().map_or(1 << 20, |s| s.ram_total() / 1024);
        HostInfo {
            cpuinfo,
            mem_total_kb,
            ncpu,
        }
    })
}

/// Reads the host facts now (call at boot, before any sandboxing).
pub fn prime_host_info() {
    host_info();
}

/// Number of CPUs the sandbox sees (the host's, read at boot).
pub fn host_cpus() -> usize {
    host_info().ncpu
}

/// Host memory in KiB (read at boot), the sandbox's `MemTotal`.
pub fn host_mem_total_kb() -> u64 {
    host_info().mem_total_kb
}

fn comm(t: &Task) -> String {
    exe_path(t)
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect()
}

fn exe_path(t: &Task) -> String {
    t.mm.maps()
        .into_iter()
        .find_map(|m| match m.kind {
            VmaKind::Named(n) => Some(n),
            _ => None,
        })
        .unwrap_or_default()
}

fn maps(t: &Task) -> String {
    let mut s = String::new();
    for m in t.mm.maps() {
        let name = match &m.kind {
            VmaKind::Anon => String::new(),
            VmaKind::Heap => "[heap]".into(),
            VmaKind::Stack => "[stack]".into(),
            VmaKind::Named(n) => n.clone(),
        };
        let line = format!(
            "{:08x}-{:08x} {}{}{}{} 00000000 00:00 0",
            m.start,
            m.end,
            if m.perms.read { 'r' } else { '-' },
            if m.perms.write { 'w' } else { '-' },
            if m.perms.exec { 'x' } else { '-' },
            if m.shared { 's' } else { 'p' },
        );
        if name.is_empty() {
            let _ = writeln!(s, "{line}");
        } else {
            let _ = writeln!(s, "{line:<72} {name}");
        }
    }
    s
}

fn vm_kb(t: &Task) -> (u64, u64) {
    let size: u64 = t.mm.maps().iter().map(|m| m.end - m.start).sum();
    (size / 1024, t.mm.resident() / 1024)
}

fn stat(t: &Task) -> String {
    let (vsize_kb, rss_kb) = vm_kb(t);
    let start = t.kernel.boot.elapsed().as_millis() as u64 / 10;
    format!(
        "{pid} ({comm}) R {ppid} {pid} {pid} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 {start} {vsize} {rss} \
         18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        pid = t.tg.tgid,
        comm = comm(t),
        ppid = t.kernel.tree().procs.get(&t.tg.tgid).map_or(0, |p| p.parent),
        start = start,
        vsize = vsize_kb * 1024,
        rss = rss_kb / 4,
    )
}

fn status(t: &Task) -> String {
    let (vsize_kb, rss_kb) = vm_kb(t);
    let c = t.creds;
    format!(
        "Name:\t{comm}\nUmask:\t{umask:04o}\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\n\
         PPid:\t{ppid}\nTracerPid:\t0\nUid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nFDSize:\t64\n\
         Groups:\t\nVmPeak:\t{vsize_kb:>8} kB\nVmSize:\t{vsize_kb:>8} kB\nVmRSS:\t{rss_kb:>8} kB\n\
         Threads:\t1\nSigQ:\t0/0\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
         SigBlk:\t{sigmask:016x}\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n\
         CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n\
         CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n\
         Cpus_allowed_list:\t0-{lastcpu}\n",
        c.uid,
        c.euid,
        c.suid,
        c.euid,
        c.gid,
        c.egid,
        c.sgid,
        c.egid,
        comm = comm(t),
        umask = t.fs.umask(),
        pid = t.tg.tgid,
        ppid = t.kernel.tree().procs.get(&t.tg.tgid).map_or(0, |p| p.parent),
        sigmask = t.sigmask(),
        lastcpu = host_info().ncpu - 1,
    )
}

fn mounts_text(ns: &MountNamespace) -> String {
    let mut s = String::new();
    for m in ns.mounts() {
        let _ = writeln!(
            s,
            "{} {} {} {},relatime 0 0",
            m.source,
            String::from_utf8_lossy(&m.path),
            m.fs_type,
            if m.readonly { "ro" } else { "rw" }
        );
    }
    s
}

fn meminfo(t: &Task) -> String {
    let total = host_info().mem_total_kb;
    let used = t.kernel.memory.in_use() / 1024;
    let free = total.saturating_sub(used);
    format!(
        "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\n\
         Buffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\n\
         Active:         {used:>8} kB\nInactive:              0 kB\nSwapTotal:             0 kB\n\
         SwapFree:              0 kB\nShmem:                 0 kB\nCommitLimit:    {total:>8} kB\n\
         Committed_AS:   {used:>8} kB\n"
    )
}

fn proc_stat(t: &Task) -> String {
    let mut s = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
    for i in 0..host_info().ncpu {
        let _ = writeln!(s, "cpu{i} 0 0 0 0 0 0 0 0 0 0");
    }
    let btime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        - t.kernel.boot.elapsed().as_secs();
    let _ = write!(
        s,
        "intr 0\nctxt 0\nbtime {btime}\nprocesses {}\nprocs_running 1\nprocs_blocked 0\nsoftirq 0\n",
        t.tg.tgid
    );
    s
}

/// The `/proc/[pid]` directory of the calling process.
fn pid_dir(fs: &Arc<SynthFs>, pid: i32) -> Arc<dyn Inode> {
    let same = move |cx: &Caller<'_>| -> Result<(), Errno> {
        if task(cx)?.tg.tgid == pid {
            Ok(())
        } else {
            Err(Errno::ENOENT)
        }
    };
    let gen = move |f: fn(&Task) -> String| -> Generator {
        Arc::new(move |cx| {
            same(cx)?;
            Ok(f(task(cx)?).into_bytes())
        })
    };
    let file = |f: fn(&Task) -> String| -> Arc<dyn Inode> { SynthFile::new(fs, 0o444, gen(f)) };
    let link = |f: fn(&Task) -> String| -> Arc<dyn Inode> { SynthLink::new(fs, gen(f)) };
    let fd_fs = fs.clone();
    let fd_list: ListFn = Arc::new(move |cx| {
        same(cx)?;
        let t = task(cx)?;
        Ok(t.fds
            .fds()
            .into_iter()
            .map(|fd| {
                let l: Arc<dyn Inode> = Arc::new(FdLink {
                    fs: fd_fs.clone(),
                    ino: fd_fs.ino(),
                    fd,
                });
                (fd.to_string().into_bytes(), l)
            })
            .collect())
    });
    let entries: Vec<(&str, Arc<dyn Inode>)> = vec![
        ("cmdline", file(|t| format!("{}\0", exe_path(t)))),
        ("comm", file(|t| format!("{}\n", comm(t)))),
        (
            "cwd",
            link(|t| String::from_utf8_lossy(&t.fs.cwd().path).into_owned()),
        ),
        ("environ", file(|_| String::new())),
        ("exe", link(exe_path)),
        ("fd", SynthDir::new(fs, fd_list)),
        ("maps", file(maps)),
        ("mounts", file(|t| mounts_text(&t.fs.ns))),
        ("root", link(|_| "/".into())),
        ("stat", file(stat)),
        ("status", file(status)),
    ];
    SynthDir::fixed(fs, entries)
}

/// Builds `/proc`.
pub fn new_proc() -> Arc<dyn Inode> {
    let fs = SynthFs::new(PROC_MAGIC);
    let f = |g: fn(&Task) -> String| -> Arc<dyn Inode> { SynthFile::new(&fs, 0o444, text(g)) };
    let fixed = |s: &str| -> Arc<dyn Inode> { SynthFile::fixed(&fs, s) };
    let kernel_dir: Arc<dyn Inode> = SynthDir::fixed(
        &fs,
        vec![
            (
                "hostname",
                f(|t| format!("{}\n", t.kernel.hostname.lock().unwrap())),
            ),
            ("osrelease", fixed(&format!("{RELEASE}\n"))),
            ("ostype", fixed("Linux\n")),
            ("version", fixed(&format!("{VERSION}\n"))),
            ("pid_max", fixed("4194304\n")),
            ("ngroups_max", fixed("65536\n")),
        ],
    );
    let sys: Arc<dyn Inode> = SynthDir::fixed(
        &fs,
        vec![
            ("kernel", kernel_dir),
            (
                "fs",
                SynthDir::fixed(
                    &fs,
                    vec![
                        ("pipe-max-size", fixed("1048576\n")),
                        ("file-max", fixed("9223372036854775807\n")),
                        ("nr_open", fixed("1048576\n")),
                    ],
                ),
            ),
            (
                "vm",
                SynthDir::fixed(&fs, vec![("overcommit_memory", fixed("0\n"))]),
            ),
        ],
    );
    let fixed_entries: Vec<(Vec<u8>, Arc<dyn Inode>)> = vec![
        (
            "cpuinfo",
            SynthFile::fixed(&fs, host_info().cpuinfo.clone()) as Arc<dyn Inode>,
        ),
        (
            "filesystems",
            fixed("nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\toverlay\nnodev\tdevtmpfs\n"),
        ),
        (
            "loadavg",
            f(|t| format!("0.00 0.00 0.00 1/1 {}\n", t.tg.tgid)),
        ),
        ("meminfo", f(meminfo)),
        ("mounts", SynthLink::fixed(&fs, "self/mounts")),
        ("self", SynthLink::new(&fs, text(|t| t.tg.tgid.to_string()))),
        (
            "thread-self",
            SynthLink::new(&fs, text(|t| t.tg.tgid.to_string())),
        ),
        ("stat", f(proc_stat)),
        ("sys", sys),
        (
            "uptime",
            f(|t| {
                let up = t.kernel.boot.elapsed().as_secs_f64();
                format!("{up:.2} {:.2}\n", up * host_info().ncpu as f64)
            }),
        ),
        (
            "version",
            fixed(&format!("Linux version {RELEASE} (runsc-rs) {VERSION}\n")),
        ),
    ]
    .into_iter()
    .map(|(n, i)| (n.as_bytes().to_vec(), i))
    .collect();
    let pfs = fs.clone();
    SynthDir::new(
        &fs,
        Arc::new(move |cx| {
            let mut v = fixed_entries.clone();
            if let Some(t) = cx.task {
                v.push((t.tg.tgid.to_string().into_bytes(), pid_dir(&pfs, t.tg.tgid)));
            }
            Ok(v)
        }),
    )
}

/// `/proc/[pid]/fd/N`: reads as the file's path, follows to the open file itself.
struct FdLink {
    fs: Arc<SynthFs>,
    ino: u64,
    fd: i32,
}

impl FdLink {
    fn file(&self, cx: &Caller<'_>) -> Result<Arc<OpenFile>, Errno> {
        task(cx)?.fds.get(self.fd).map_err(|_| Errno::ENOENT)
    }
}

impl Inode for FdLink {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.fs.stat(self.ino, libc::S_IFLNK | 0o700, 64))
    }

    fn readlink(&self, cx: &Caller<'_>) -> Result<Vec<u8>, Errno> {
        let f = self.file(cx)?;
        Ok(match &f.dentry {
            Some(d) => d.path.clone(),
            None => {
                let st = f.ops.stat()?;
                match st.mode & libc::S_IFMT {
                    libc::S_IFIFO => format!("pipe:[{}]", st.ino),
                    libc::S_IFSOCK => format!("socket:[{}]", st.ino),
                    libc::S_IFCHR => "/dev/tty".to_string(),
                    _ => format!("anon_inode:[{}]", st.ino),
                }
                .into_bytes()
            }
        })
    }

    fn magic_link(&self, cx: &Caller<'_>) -> Option<Result<MagicTarget, Errno>> {
        Some(self.file(cx).map(|f| match &f.dentry {
            Some(d) => MagicTarget::Path(d.clone()),
            None => MagicTarget::File(f),
        }))
    }

    fn open(&self, _cx: &Caller<'_>, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Err(Errno::ELOOP)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Inode::stat(self).map(|_| FsStats {
            fs_type: PROC_MAGIC,
            block_size: 4096,
            name_max: 255,
            ..FsStats::default()
        })
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
