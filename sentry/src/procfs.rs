//! `/proc`: the sandbox's own process information, never the host's.
//!
//! Layer: above `kernel` (it reads tasks, thread groups and PID namespaces) and `fs` (it is
//! built from `fs::synth`); below `syscalls` and `boot`, which mount it. Nothing below the
//! kernel imports it.
//!
//! Each instance belongs to a PID namespace: `/proc/[pid]` exists for every process visible in
//! it (and `/proc/[tid]` for every thread, unlisted, as Linux), named and described with its
//! IDs in that namespace; nothing of the host's process table is reachable. The
//! per-process files are generated from what each task publishes
//! ([`crate::kernel::task::TaskView`]) and from its thread group; `cmdline` and `environ` are
//! read from the process's own memory, at the strings the loader laid out. System files are
//! generated from sentry state; host data is used only for the CPU model (`cpuinfo`) and
//! total memory, read once at boot.
//!
//! Access follows Linux: everyone may read `stat`, `status`, `cmdline`...; `environ`, the
//! `fd` directories, `maps` and the `cwd`/`root`/`exe` links need ptrace-read access (the same
//! user, or root in the sandbox); opening `mem` (the process's memory at its addresses, see
//! `mem`) needs ptrace-attach access.

mod mem;
mod net;

use std::any::Any;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::abi::Errno;
use crate::abi::{RELEASE, VERSION};
use crate::auth::Creds;
use crate::fs::synth::{
    BytesFile, Generator, SynthControl, SynthDir, SynthFile, SynthFs, SynthLink,
};
use crate::kernel::cgroup::{self, Cgroup};
use crate::kernel::ipc::msg::{MSGMAX, MSGMNB, MSGMNI};
use crate::kernel::ipc::sem::{SEMMNI, SEMMNS, SEMMSL, SEMOPM};
use crate::kernel::ipc::shm::{SHMALL, SHMMAX, SHMMNI};
use crate::kernel::ns::{NsRef, UtsName};
use crate::kernel::task::TaskView;
use crate::kernel::thread_group::COREDUMP_FILTER_MASK;
use crate::kernel::usage::{ticks, CpuTimes};
use crate::kernel::{Kernel, PidNamespace, TaskHandle, ThreadGroup};
use crate::mm::usermem::IoSrc;
use crate::mm::VmaKind;
use crate::vfs::inode::MagicTarget;
use crate::vfs::{
    rebase, Caller, Context, DirEntry, FileOps, FileType, FsContext, FsStats, Inode, IoDst, Mount,
    MountNamespace, OpenFile, Stat,
};

/// PROC_SUPER_MAGIC.
pub const PROC_MAGIC: i64 = 0x9fa0;

/// Clock ticks per second (USER_HZ), the unit of `stat` times.
const USER_HZ: u128 = 100;

/// The kernel, for a reader that is a task of it: ENOENT for the sentry itself (no task)
/// and after the kernel is gone.
fn kernel_for(kernel: &Weak<Kernel>, cx: &Caller) -> Result<Arc<Kernel>, Errno> {
    cx.task.ok_or(Errno::ENOENT)?;
    kernel.upgrade().ok_or(Errno::ENOENT)
}

/// `/proc/sys/kernel/{hostname,domainname}`: a name of the reader's UTS namespace.
struct UtsNameInode {
    fs: Arc<SynthFs>,
    ino: u64,
    kernel: Weak<Kernel>,
    name: UtsName,
}

impl UtsNameInode {
    fn new(fs: &Arc<SynthFs>, kernel: &Weak<Kernel>, name: UtsName) -> Arc<UtsNameInode> {
        Arc::new(UtsNameInode {
            fs: fs.clone(),
            ino: fs.ino(),
            kernel: kernel.clone(),
            name,
        })
    }

    fn text(&self, cx: &Caller) -> Result<Vec<u8>, Errno> {
        let k = kernel_for(&self.kernel, cx)?;
        let uts = cx
            .task
            .and_then(|t| k.namespaces_of(t.tid))
            .map_or_else(|| k.uts.clone(), |ns| ns.uts);
        let names = uts.names();
        let name = match self.name {
            UtsName::Host => &names.hostname,
            UtsName::Domain => &names.domainname,
        };
        Ok(format!("{name}\n").into_bytes())
    }
}

impl Inode for UtsNameInode {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.fs.stat(self.ino, libc::S_IFREG | 0o444, 0))
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        self.text(&Caller::kernel())
    }

    fn open(&self, cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let k = kernel_for(&self.kernel, cx)?;
        Ok(Arc::new(UtsNameFile {
            contents: BytesFile::new(self.text(cx)?, self.stat()?),
            seen: AtomicU64::new(k.uts_events.count(self.name)),
            kernel: self.kernel.clone(),
            name: self.name,
        }))
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(proc_statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// An open `/proc/sys/kernel/{hostname,domainname}`: the contents at open, and pollable as
/// Linux's `proc_sys_poll`: POLLERR|POLLPRI once the name was set (in any UTS namespace)
/// since the open or the poll that last said so (that poll consumes the event).
struct UtsNameFile {
    contents: BytesFile,
    /// The event count the last report (or the open) saw.
    seen: AtomicU64,
    kernel: Weak<Kernel>,
    name: UtsName,
}

impl FileOps for UtsNameFile {
    fn read(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        self.contents.read(t, f, dst, off)
    }

    fn write(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        src: &mut dyn IoSrc,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        self.contents.write(t, f, src, off)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.contents.stat()
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Result<u64, Errno> {
        self.contents.size()
    }

    fn pollable(&self) -> bool {
        true
    }

    fn readiness(&self) -> u32 {
        let base = (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;
        let Some(k) = self.kernel.upgrade() else {
            return base;
        };
        let now = k.uts_events.count(self.name);
        if self.seen.swap(now, Ordering::AcqRel) != now {
            base | (libc::POLLERR | libc::POLLPRI) as u32
        } else {
            base
        }
    }
}

fn text(kernel: &Weak<Kernel>, f: impl Fn(&Kernel) -> String + Send + Sync + 'static) -> Generator {
    let kernel = kernel.clone();
    Arc::new(move |cx| Ok(f(&*kernel_for(&kernel, cx)?).into_bytes()))
}

/// The filesystem types the sandbox lists, in order, all without a device ("nodev"): what
/// `/proc/filesystems` shows and sysfs(2) numbers.
pub const FILESYSTEM_TYPES: &[&str] = &["sysfs", "tmpfs", "proc", "overlay", "devtmpfs"];

/// Host facts read once (before the sandbox loses access to the host's /proc).
struct HostInfo {
    cpuinfo: String,
    mem_total_kb: u64,
    ncpu: usize,
    /// The permissions (`--xp`, or `r-xp` with `vsyscall=emulate`) of the host's legacy
    /// vsyscall page, which the host maps into every process (the application's too, where
    /// both platforms serve its calls); None when the host has none (`vsyscall=none`).
    vsyscall: Option<String>,
}

fn host_info() -> &'static HostInfo {
    static INFO: OnceLock<HostInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        // Keep the CPU description; drop microcode and bug details, and show the APIC IDs
        // and power management Linux always prints as the sandbox's own (each CPU's APIC ID
        // is its number, no power management) rather than the host's topology.
        let mut processor = 0u32;
        let cpuinfo: String = raw
            .lines()
            .filter_map(|l| {
                let key = l.split(':').next().unwrap_or("").trim();
                match key {
                    "processor" => {
                        processor = l.split(':').nth(1)?.trim().parse().unwrap_or(processor);
                        Some(format!("{l}\n"))
                    }
                    "microcode" | "bugs" => None,
                    "apicid" => Some(format!("apicid\t\t: {processor}\n")),
                    "initial apicid" => Some(format!("initial apicid\t: {processor}\n")),
                    "power management" => Some("power management:\n".to_string()),
                    _ => Some(format!("{l}\n")),
                }
            })
            .collect();
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mem_total_kb = nix::sys::sysinfo::sysinfo().map_or(1 << 20, |s| s.ram_total() / 1024);
        let vsyscall = std::fs::read_to_string("/proc/self/maps")
            .unwrap_or_default()
            .lines()
            .find(|l| l.ends_with(" [vsyscall]"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
        HostInfo {
            cpuinfo,
            mem_total_kb,
            ncpu,
            vsyscall,
        }
    })
}

/// `/proc/sys/kernel/keys`: `maxkeys`, the keyring quota of users other than root, which
/// root may change (a negative number is EINVAL).
fn keys_dir(fs: &Arc<SynthFs>, kernel: &Weak<Kernel>) -> Arc<dyn Inode> {
    let k = kernel.clone();
    let gen: Generator =
        Arc::new(move |cx| Ok(format!("{}\n", kernel_for(&k, cx)?.keys.max_keys()).into_bytes()));
    let k = kernel.clone();
    let apply: crate::fs::synth::Applier = Arc::new(move |cx, bytes| {
        let v = parse_kernel_int(bytes)?;
        let v = u32::try_from(v)
            .ok()
            .filter(|&v| v <= i32::MAX as u32)
            .ok_or(Errno::EINVAL)?;
        kernel_for(&k, cx)?.keys.set_max_keys(v);
        Ok(())
    });
    SynthDir::fixed(fs, vec![("maxkeys", SynthControl::new(fs, gen, apply))])
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

/// A random UUID in the canonical text form (`/proc/sys/kernel/random/uuid`).
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).ok();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Ticks (USER_HZ) from the sandbox's boot to `at`.
fn ticks_since_boot(k: &Kernel, at: std::time::Instant) -> u64 {
    (at.saturating_duration_since(k.boot).as_millis() * USER_HZ / 1000) as u64
}

// ---------------------------------------------------------------------------------------
// Snapshots of a process or thread.

/// The state letter `stat` and `status` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Running,
    Sleeping,
    Stopped,
    Zombie,
}

impl RunState {
    fn letter(self) -> char {
        match self {
            RunState::Running => 'R',
            RunState::Sleeping => 'S',
            RunState::Stopped => 'T',
            RunState::Zombie => 'Z',
        }
    }

    fn name(self) -> &'static str {
        match self {
            RunState::Running => "R (running)",
            RunState::Sleeping => "S (sleeping)",
            RunState::Stopped => "T (stopped)",
            RunState::Zombie => "Z (zombie)",
        }
    }
}

/// What one read of a `/proc/[pid]` file needs, copied out of the process tree (whose lock
/// is not held while memory is read or text formatted).
struct Snapshot {
    kernel: Arc<Kernel>,
    /// Global IDs of the process and thread (the process table's keys).
    tgid: i32,
    /// The thread the file is about (`tgid` for process files, unless reached as
    /// `/proc/[tid]`).
    tid: i32,
    /// The IDs shown, in the namespace of the `/proc` instance (0 where not visible there).
    vtgid: i32,
    vtid: i32,
    ppid: i32,
    /// The tracing process (`TracerPid:`), 0 when untraced.
    tracer: i32,
    pgid: i32,
    sid: i32,
    /// `NStgid:` and `NSpid:`, from the `/proc` instance's namespace down to the process's.
    nstgid: Vec<i32>,
    nspid: Vec<i32>,
    exit_signal: i32,
    zombie: bool,
    tg: Arc<ThreadGroup>,
    /// The thread (None when the process is a zombie).
    handle: Option<Arc<TaskHandle>>,
    view: Option<TaskView>,
    threads: Vec<i32>,
}

impl Snapshot {
    /// The process `tgid` (thread `tid` of it), as the tree has it now, seen from `ns`.
    fn take(
        kernel: &Arc<Kernel>,
        ns: &PidNamespace,
        tgid: i32,
        tid: i32,
    ) -> Result<Snapshot, Errno> {
        let tree = kernel.tree();
        let p = tree.procs.get(&tgid).ok_or(Errno::ENOENT)?;
        let vtgid = ns.id_of(tgid).ok_or(Errno::ENOENT)?;
        let vtid = ns.id_of(tid).ok_or(Errno::ENOENT)?;
        let shown = |id: i32| ns.id_of(id).unwrap_or(0);
        let threads: Vec<i32> = p.tg.sig().threads.keys().copied().collect();
        let handle = match tree.tasks.get(&tid) {
            Some(h) if h.tg.tgid == tgid => Some(h.clone()),
            _ if tid != tgid => return Err(Errno::ENOENT),
            // The leader has exited but other threads run: show one of them.
            _ => threads.first().and_then(|t| tree.tasks.get(t)).cloned(),
        };
        let view = handle.as_ref().and_then(|h| h.view.lock().unwrap().clone());
        let tracer = handle
            .as_ref()
            .and_then(|h| h.ptrace.lock().unwrap().tracer)
            .map_or(0, |t| shown(t.tgid));
        Ok(Snapshot {
            kernel: kernel.clone(),
            tgid,
            tid,
            vtgid,
            vtid,
            ppid: shown(p.parent),
            tracer,
            pgid: shown(p.pgid),
            sid: shown(p.sid),
            nstgid: ns.ids_down_to(&p.tg.pidns, tgid),
            nspid: ns.ids_down_to(&p.tg.pidns, tid),
            exit_signal: p.exit_signal,
            zombie: p.zombie.is_some(),
            tg: p.tg.clone(),
            handle,
            view,
            threads,
        })
    }

    fn state(&self) -> RunState {
        if self.zombie || self.handle.is_none() {
            return RunState::Zombie;
        }
        if self.tg.sig().stopped {
            return RunState::Stopped;
        }
        match &self.handle {
            Some(h) if h.waiter.is_sleeping() => RunState::Sleeping,
            _ => RunState::Running,
        }
    }

    fn creds(&self) -> Creds {
        self.view
            .as_ref()
            .map(|v| v.creds.clone())
            .unwrap_or_default()
    }

    fn comm(&self) -> String {
        let raw = match &self.handle {
            Some(h) => h.comm.lock().unwrap().clone(),
            None => Vec::new(),
        };
        String::from_utf8_lossy(&raw).into_owned()
    }

    /// (VmSize, VmRSS) in KiB.
    fn vm_kb(&self) -> (u64, u64) {
        match &self.view {
            Some(v) => {
                let size: u64 = v.mm.maps().iter().map(|m| m.end - m.start).sum();
                (size / 1024, v.mm.resident() / 1024)
            }
            None => (0, 0),
        }
    }

    /// The thread's signal mask (any thread's for a process whose leader has exited).
    fn sigmask(&self) -> u64 {
        let s = self.tg.sig();
        s.threads
            .get(&self.tid)
            .or_else(|| s.threads.values().next())
            .map_or(0, |t| t.mask)
    }

    /// (pending for the thread, pending for the process, ignored, caught).
    fn signal_sets(&self) -> (u64, u64, u64, u64) {
        let s = self.tg.sig();
        let pending = s.threads.get(&self.tid).map_or(0, |t| t.pending.set());
        let (mut ign, mut cgt) = (0u64, 0u64);
        for (i, a) in s.actions.iter().enumerate() {
            if a.handler == crate::kernel::signal::SIG_IGN {
                ign |= 1 << i;
            } else if a.handler > crate::kernel::signal::SIG_IGN {
                cgt |= 1 << i;
            }
        }
        (pending, s.shared.set(), ign, cgt)
    }

    /// Whether `cx` may inspect this process's memory, files and environment (Linux's
    /// PTRACE_MODE_READ: root, or the same user).
    fn may_inspect(&self, cx: &Caller) -> bool {
        let c = self.creds();
        cx.creds.euid == 0 || (cx.creds.euid == c.uid && cx.creds.euid == c.euid)
    }
}

// ---------------------------------------------------------------------------------------
// Per-process nodes.

/// The files of a `/proc/[pid]` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PidFile {
    Environ,
    Status,
    Limits,
    Comm,
    Cmdline,
    Stat,
    Statm,
    Maps,
    Mounts,
    MountInfo,
    SmapsRollup,
    Cgroup,
    OomScore,
    OomScoreAdj,
    CoredumpFilter,
    LoginUid,
    UidMap,
    GidMap,
    Setgroups,
    Smaps,
    Auxv,
    /// `io`: the read and write calls of the thread (under `task/`) or the process.
    Io,
    /// `children` (under `task/` only): the processes the thread made.
    Children,
}

/// The symlinks of a `/proc/[pid]` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PidLink {
    Cwd,
    Root,
    Exe,
}

/// Namespaces shown in `/proc/[pid]/ns`, in Linux's order.
const NAMESPACES: [&str; 8] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "user",
    "uts",
];

/// One node under `/proc/[pid]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    /// `/proc/[pid]` or `/proc/[pid]/task/[tid]`.
    Dir,
    TaskDir,
    FdDir,
    FdInfoDir,
    NsDir,
    Fd(i32),
    FdInfo(i32),
    Ns(usize),
    /// `net`: the network namespace's `/proc/net` directory (every process shares one).
    Net,
    /// `mem`: the process's memory.
    Mem,
    File(PidFile),
    Link(PidLink),
}

const DIR_ENTRIES: &[(&str, Node)] = &[
    ("task", Node::TaskDir),
    ("fd", Node::FdDir),
    ("fdinfo", Node::FdInfoDir),
    ("ns", Node::NsDir),
    ("environ", Node::File(PidFile::Environ)),
    ("status", Node::File(PidFile::Status)),
    ("limits", Node::File(PidFile::Limits)),
    ("comm", Node::File(PidFile::Comm)),
    ("cmdline", Node::File(PidFile::Cmdline)),
    ("stat", Node::File(PidFile::Stat)),
    ("statm", Node::File(PidFile::Statm)),
    ("maps", Node::File(PidFile::Maps)),
    ("cwd", Node::Link(PidLink::Cwd)),
    ("root", Node::Link(PidLink::Root)),
    ("exe", Node::Link(PidLink::Exe)),
    ("mounts", Node::File(PidFile::Mounts)),
    ("mountinfo", Node::File(PidFile::MountInfo)),
    ("smaps_rollup", Node::File(PidFile::SmapsRollup)),
    ("cgroup", Node::File(PidFile::Cgroup)),
    ("oom_score", Node::File(PidFile::OomScore)),
    ("oom_score_adj", Node::File(PidFile::OomScoreAdj)),
    ("coredump_filter", Node::File(PidFile::CoredumpFilter)),
    ("loginuid", Node::File(PidFile::LoginUid)),
    ("uid_map", Node::File(PidFile::UidMap)),
    ("gid_map", Node::File(PidFile::GidMap)),
    ("setgroups", Node::File(PidFile::Setgroups)),
    ("smaps", Node::File(PidFile::Smaps)),
    ("auxv", Node::File(PidFile::Auxv)),
    ("io", Node::File(PidFile::Io)),
    ("children", Node::File(PidFile::Children)),
    ("mem", Node::Mem),
    ("net", Node::Net),
];

/// A node of `/proc/[pid]` (or `/proc/[pid]/task/[tid]`). Holds the kernel weakly: a task
/// whose cwd is in `/proc` must not keep the kernel alive.
struct PidNode {
    fs: Arc<SynthFs>,
    /// The instance's `net` directory, which `/proc/[pid]/net` is.
    net: Arc<dyn Inode>,
    kernel: Weak<Kernel>,
    /// The namespace of the `/proc` instance.
    ns: Arc<PidNamespace>,
    tgid: i32,
    tid: i32,
    /// Reached through `task/`: files describe the thread, and there is no `task/` inside.
    thread: bool,
    node: Node,
}

impl PidNode {
    fn child(&self, node: Node) -> Arc<PidNode> {
        Arc::new(PidNode {
            fs: self.fs.clone(),
            net: self.net.clone(),
            kernel: self.kernel.clone(),
            ns: self.ns.clone(),
            tgid: self.tgid,
            tid: self.tid,
            thread: self.thread,
            node,
        })
    }

    /// The process or thread now; ESRCH once it is gone (reaped), as Linux answers for a
    /// `/proc/[pid]` node that outlived its task.
    fn snapshot(&self) -> Result<Snapshot, Errno> {
        let k = self.kernel.upgrade().ok_or(Errno::ESRCH)?;
        Snapshot::take(&k, &self.ns, self.tgid, self.tid).map_err(|e| match e {
            Errno::ENOENT => Errno::ESRCH,
            e => e,
        })
    }

    /// Stable inode numbers: the same file has the same number on every lookup.
    fn ino(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.tgid, self.tid, self.thread, self.node).hash(&mut h);
        h.finish() | (1 << 63)
    }

    fn mode(&self) -> u32 {
        match self.node {
            Node::Dir | Node::TaskDir => libc::S_IFDIR | 0o555,
            Node::FdDir | Node::FdInfoDir => libc::S_IFDIR | 0o500,
            Node::NsDir => libc::S_IFDIR | 0o511,
            Node::Fd(_) => libc::S_IFLNK | 0o700,
            Node::Ns(_) | Node::Link(_) => libc::S_IFLNK | 0o777,
            Node::FdInfo(_) => libc::S_IFREG | 0o400,
            Node::File(PidFile::Environ | PidFile::Auxv | PidFile::Io) => libc::S_IFREG | 0o400,
            Node::Mem => libc::S_IFREG | 0o600,
            Node::File(
                PidFile::Comm
                | PidFile::OomScoreAdj
                | PidFile::CoredumpFilter
                | PidFile::LoginUid
                | PidFile::UidMap
                | PidFile::GidMap
                | PidFile::Setgroups,
            ) => libc::S_IFREG | 0o644,
            Node::Net => libc::S_IFDIR | 0o555,
            Node::File(_) => libc::S_IFREG | 0o444,
        }
    }

    fn entries(&self, cx: &Caller) -> Result<Vec<(Vec<u8>, Node)>, Errno> {
        let snap = self.snapshot()?;
        let fds = |snap: &Snapshot| -> Result<Vec<i32>, Errno> {
            if !snap.may_inspect(cx) {
                return Err(Errno::EACCES);
            }
            Ok(snap.view.as_ref().map(|v| v.fds.fds()).unwrap_or_default())
        };
        Ok(match self.node {
            Node::Dir => DIR_ENTRIES
                .iter()
                .filter(|(_, n)| match n {
                    Node::TaskDir => !self.thread,
                    Node::File(PidFile::Children) => self.thread,
                    _ => true,
                })
                .map(|(name, n)| (name.as_bytes().to_vec(), *n))
                .collect(),
            Node::TaskDir => snap
                .threads
                .iter()
                .filter_map(|&t| self.ns.id_of(t))
                .map(|t| (t.to_string().into_bytes(), Node::Dir))
                .collect(),
            Node::FdDir => fds(&snap)?
                .into_iter()
                .map(|fd| (fd.to_string().into_bytes(), Node::Fd(fd)))
                .collect(),
            Node::FdInfoDir => fds(&snap)?
                .into_iter()
                .map(|fd| (fd.to_string().into_bytes(), Node::FdInfo(fd)))
                .collect(),
            Node::NsDir => NAMESPACES
                .iter()
                .enumerate()
                .map(|(i, name)| (name.as_bytes().to_vec(), Node::Ns(i)))
                .collect(),
            _ => return Err(Errno::ENOTDIR),
        })
    }

    /// The inode for entry `node` named `name` in this directory.
    fn entry_inode(&self, name: &[u8], node: Node) -> Arc<PidNode> {
        if self.node == Node::TaskDir {
            let tid = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .and_then(|local| self.ns.lookup(local))
                .unwrap_or(self.tid);
            return Arc::new(PidNode {
                fs: self.fs.clone(),
                net: self.net.clone(),
                kernel: self.kernel.clone(),
                ns: self.ns.clone(),
                tgid: self.tgid,
                tid,
                thread: true,
                node: Node::Dir,
            });
        }
        self.child(node)
    }

    fn view(&self, cx: &Caller) -> Result<(Snapshot, TaskView), Errno> {
        let snap = self.snapshot()?;
        if !snap.may_inspect(cx) {
            return Err(Errno::EACCES);
        }
        let view = snap.view.clone().ok_or(Errno::ENOENT)?;
        Ok((snap, view))
    }

    fn open_file(&self, cx: &Caller, fd: i32) -> Result<(Arc<OpenFile>, bool), Errno> {
        let (_, view) = self.view(cx)?;
        let file = view.fds.get(fd).map_err(|_| Errno::ENOENT)?;
        let cloexec = view.fds.cloexec(fd).unwrap_or(false);
        Ok((file, cloexec))
    }

    fn generate(&self, cx: &Caller, f: PidFile) -> Result<Vec<u8>, Errno> {
        let snap = self.snapshot()?;
        let needs_access = matches!(
            f,
            PidFile::Environ
                | PidFile::Auxv
                | PidFile::Maps
                | PidFile::Smaps
                | PidFile::SmapsRollup
                | PidFile::Io
        );
        if needs_access && !snap.may_inspect(cx) {
            return Err(Errno::EACCES);
        }
        Ok(match f {
            PidFile::Cmdline => read_strings(&snap, true),
            PidFile::Environ => read_strings(&snap, false),
            // Nothing once the process has exited (its memory is gone), as Linux.
            PidFile::Auxv if snap.view.is_none() => Vec::new(),
            PidFile::Auxv => snap
                .tg
                .image
                .lock()
                .unwrap()
                .auxv
                .iter()
                .flat_map(|(k, v)| [k.to_ne_bytes(), v.to_ne_bytes()])
                .flatten()
                .collect(),
            PidFile::Io => {
                let io = match (&snap.handle, self.thread) {
                    (Some(h), true) => h.io.totals(),
                    _ => snap.tg.io_totals(),
                };
                // The sentry's files are not block devices it counts: no storage bytes.
                format!(
                    "rchar: {}\nwchar: {}\nsyscr: {}\nsyscw: {}\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n",
                    io.rchar, io.wchar, io.syscr, io.syscw
                )
                .into_bytes()
            }
            PidFile::Children => children_text(&snap, &self.ns).into_bytes(),
            PidFile::Stat => stat_text(&snap, self.thread).into_bytes(),
            PidFile::Status => status_text(&snap, &cx.creds.user_ns).into_bytes(),
            PidFile::Statm => statm_text(&snap).into_bytes(),
            PidFile::Comm => format!("{}\n", snap.comm()).into_bytes(),
            PidFile::Maps => snap
                .view
                .as_ref()
                .map(|v| maps_text(v, &reader_root(&snap.kernel, cx)))
                .unwrap_or_default()
                .into_bytes(),
            PidFile::SmapsRollup => smaps_rollup_text(&snap).into_bytes(),
            PidFile::Smaps => snap
                .view
                .as_ref()
                .map(|v| smaps_text(v, &reader_root(&snap.kernel, cx)))
                .unwrap_or_default()
                .into_bytes(),
            PidFile::Limits => limits_text(&snap.tg).into_bytes(),
            PidFile::Mounts => snap
                .view
                .as_ref()
                .map(|v| mounts_text(&v.fs))
                .unwrap_or_default()
                .into_bytes(),
            PidFile::MountInfo => snap
                .view
                .as_ref()
                .map(|v| mountinfo_text(&v.fs, &reader_cgroup_root(&snap.kernel, cx)))
                .unwrap_or_default()
                .into_bytes(),
            PidFile::Cgroup => {
                let cg = snap.kernel.cgroups.of(&snap.tg);
                let deleted = if cg.is_deleted() { " (deleted)" } else { "" };
                let root = reader_cgroup_root(&snap.kernel, cx);
                format!("0::{}{deleted}\n", cg.path_from(&root)).into_bytes()
            }
            // No OOM killer weighs processes in the sandbox: every badness is 0.
            PidFile::OomScore => b"0\n".to_vec(),
            PidFile::OomScoreAdj => {
                format!("{}\n", snap.tg.oom_score_adj.load(Ordering::Relaxed)).into_bytes()
            }
            PidFile::CoredumpFilter => {
                format!("{:08x}\n", snap.tg.coredump_filter.load(Ordering::Relaxed)).into_bytes()
            }
            PidFile::LoginUid => b"4294967295".to_vec(),
            PidFile::UidMap | PidFile::GidMap => match &snap.view {
                Some(v) => {
                    let maps = v.creds.user_ns.snapshot();
                    let map = if f == PidFile::GidMap {
                        maps.gid
                    } else {
                        maps.uid
                    };
                    let mut s = String::new();
                    for e in map.0.unwrap_or_default() {
                        let _ =
                            writeln!(s, "{:>10} {:>10} {:>10}", e.first, e.lower_first, e.count);
                    }
                    s.into_bytes()
                }
                None => Vec::new(),
            },
            PidFile::Setgroups => match &snap.view {
                Some(v) if v.creds.user_ns.snapshot().setgroups_denied => b"deny\n".to_vec(),
                _ => b"allow\n".to_vec(),
            },
        })
    }

    fn fdinfo(&self, cx: &Caller, fd: i32) -> Result<Vec<u8>, Errno> {
        let (file, cloexec) = self.open_file(cx, fd)?;
        let pos = *file.offset.lock().unwrap();
        let mut flags = file.flags();
        if cloexec {
            flags |= libc::O_CLOEXEC as u32;
        }
        if file.dentry.is_some() {
            // x86-64 Linux forces O_LARGEFILE (0100000; libc's constant is 0 on 64-bit) on
            // every open of a path.
            flags |= 0o100000;
        }

        let mnt = file.dentry.as_ref().map_or(0, |d| d.mount.id);
        let ino = file.ops().stat().map_or(0, |s| s.ino);
        Ok(format!("pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t{mnt}\nino:\t{ino}\n").into_bytes())
    }
}

impl Inode for PidNode {
    fn stat(&self) -> Result<Stat, Errno> {
        let snap = self.snapshot()?;
        let c = snap.creds();
        let mut st = self.fs.stat(self.ino(), self.mode(), 0);
        st.uid = c.euid;
        st.gid = c.egid;
        if let Node::Dir = self.node {
            st.nlink = 9;
            let start = if self.thread {
                snap.handle.as_ref().map_or(snap.tg.start, |h| h.start)
            } else {
                snap.tg.start
            };
            let since = start.saturating_duration_since(snap.kernel.boot);
            let boot_wall = std::time::SystemTime::now()
                .checked_sub(snap.kernel.boot.elapsed())
                .unwrap_or(std::time::UNIX_EPOCH);
            let t = (boot_wall + since)
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let (secs, nsec) = (t.as_secs() as i64, t.subsec_nanos() as i64);
            (st.atime, st.mtime, st.ctime) = (secs, secs, secs);
            (st.atime_nsec, st.mtime_nsec, st.ctime_nsec) = (nsec, nsec, nsec);
        }
        if let Node::TaskDir = self.node {
            // The parent's entry, `.`, and the `..` of each thread's directory.
            st.nlink = 2 + snap.threads.len() as u64;
        }
        if let Node::Fd(fd) = self.node {
            if let Some(v) = &snap.view {
                if let Ok(f) = v.fds.get(fd) {
                    let acc = f.flags() & libc::O_ACCMODE as u32;
                    st.mode = libc::S_IFLNK
                        | match acc {
                            x if x == libc::O_RDONLY as u32 => 0o500,
                            x if x == libc::O_WRONLY as u32 => 0o300,
                            _ => 0o700,
                        };
                }
            }
        }
        Ok(st)
    }

    fn lookup(&self, cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let (_, node) = self
            .entries(cx)?
            .into_iter()
            .find(|(n, _)| n == name)
            .ok_or(Errno::ENOENT)?;
        if node == Node::Net {
            return Ok(self.net.clone());
        }
        Ok(self.entry_inode(name, node))
    }

    fn readdir(&self, cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        // Listing a directory of a reaped process is ENOENT on Linux (lookups are ESRCH).
        let entries = self.entries(cx).map_err(|e| match e {
            Errno::ESRCH => Errno::ENOENT,
            e => e,
        })?;
        Ok(entries
            .into_iter()
            .map(|(name, node)| {
                let i = self.entry_inode(&name, node);
                DirEntry {
                    ino: i.ino(),
                    kind: FileType::from_mode(i.mode()),
                    name,
                }
            })
            .collect())
    }

    fn readlink(&self, cx: &Caller) -> Result<Vec<u8>, Errno> {
        match self.node {
            Node::Ns(i) => {
                let name = NAMESPACES[i];
                let name = name.strip_suffix("_for_children").unwrap_or(name);
                let ino = self.namespace(cx, i)?.inode();
                Ok(format!("{name}:[{ino}]").into_bytes())
            }
            Node::Fd(fd) => {
                let (f, _) = self.open_file(cx, fd)?;
                Ok(self.seen_by(cx, file_name(&f)))
            }
            Node::Link(l) => match self.link_target(cx, l)? {
                MagicTarget::Path(d) => Ok(self.seen_by(cx, d.path.clone())),
                MagicTarget::File(f) => Ok(self.seen_by(cx, file_name(&f))),
            },
            _ => Err(Errno::EINVAL),
        }
    }

    fn magic_link(&self, cx: &Caller) -> Option<Result<MagicTarget, Errno>> {
        match self.node {
            Node::Fd(fd) => Some(self.open_file(cx, fd).map(|(f, _)| match &f.dentry {
                Some(d) => MagicTarget::Path(d.clone()),
                None => MagicTarget::File(f),
            })),
            Node::Link(l) => Some(self.link_target(cx, l)),
            Node::Ns(i) => Some(self.namespace_file(cx, i)),
            _ => None,
        }
    }

    fn open(&self, cx: &Caller, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let data = match self.node {
            Node::Dir | Node::TaskDir | Node::FdDir | Node::FdInfoDir | Node::NsDir | Node::Net => {
                return Err(Errno::EISDIR)
            }
            Node::Fd(_) | Node::Ns(_) | Node::Link(_) => return Err(Errno::ELOOP),
            Node::FdInfo(fd) => self.fdinfo(cx, fd)?,
            Node::Mem => return Ok(Arc::new(self.open_mem(cx)?)),
            Node::File(f) => {
                let data = self.generate(cx, f)?;
                if flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32 {
                    if !matches!(
                        f,
                        PidFile::Comm
                            | PidFile::OomScoreAdj
                            | PidFile::CoredumpFilter
                            | PidFile::UidMap
                            | PidFile::GidMap
                            | PidFile::Setgroups
                    ) {
                        return Err(Errno::EACCES);
                    }
                    return Ok(Arc::new(PidWriteFile {
                        node: self.child(self.node),
                        file: f,
                        contents: BytesFile::new(data, Inode::stat(self)?),
                    }));
                }
                if matches!(f, PidFile::UidMap | PidFile::GidMap | PidFile::Setgroups) {
                    // The user namespace is taken at open (Linux's proc_id_map_open): reads
                    // show it even after the process is gone.
                    return Ok(Arc::new(BytesFile::new(data, Inode::stat(self)?)));
                }
                let mounts = match (f, self.snapshot()?.view) {
                    (PidFile::Mounts | PidFile::MountInfo, Some(view)) => {
                        let ns = view.fs.ns.clone();
                        Some((AtomicU64::new(ns.event()), ns))
                    }
                    _ => None,
                };
                return Ok(Arc::new(PidTextFile {
                    node: self.child(self.node),
                    file: f,
                    mounts,
                    data: Mutex::new(data),
                    st: Inode::stat(self)?,
                }));
            }
        };
        Ok(Arc::new(BytesFile::new(data, Inode::stat(self)?)))
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(proc_statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl PidNode {
    /// Opens `mem`: ptrace-attach access with the filesystem IDs unless the caller is the
    /// process itself.
    fn open_mem(&self, cx: &Caller) -> Result<mem::MemFile, Errno> {
        let snap = self.snapshot()?;
        let own = cx.task.is_some_and(|t| t.tgid == snap.tgid);
        if !own && !cx.creds.may_ptrace_attach(&snap.creds(), true) {
            return Err(Errno::EACCES);
        }
        Ok(mem::MemFile::new(
            snap.view.as_ref().map(|v| &v.mm),
            Inode::stat(self)?,
        ))
    }

    /// The namespace `/proc/[pid]/ns/NAMESPACES[i]` names (the caller must be allowed to
    /// inspect the process, as ptrace's read access demands on Linux).
    fn namespace(&self, cx: &Caller, i: usize) -> Result<NsRef, Errno> {
        let (snap, view) = self.view(cx)?;
        Ok(match NAMESPACES[i] {
            "cgroup" => NsRef::Cgroup(view.ns.cgroup),
            "ipc" => NsRef::Ipc(view.ns.ipc),
            "mnt" => NsRef::Mnt(view.fs.ns.clone()),
            "net" => NsRef::Net(view.ns.net),
            "pid" => NsRef::Pid(snap.tg.pidns.clone()),
            "pid_for_children" => NsRef::Pid(
                view.ns
                    .pid_for_children
                    .unwrap_or_else(|| snap.tg.pidns.clone()),
            ),
            "user" => NsRef::User(view.creds.user_ns),
            _ => NsRef::Uts(view.ns.uts),
        })
    }

    /// The open namespace file a `/proc/[pid]/ns/*` link leads to.
    fn namespace_file(&self, cx: &Caller, i: usize) -> Result<MagicTarget, Errno> {
        let ns = self.namespace(cx, i)?;
        let k = self.kernel.upgrade().ok_or(Errno::ENOENT)?;
        Ok(MagicTarget::File(crate::kernel::ns::namespace_file(&k, ns)))
    }

    /// The absolute sandbox path `path` as the reader `cx` names it (Linux's d_path from
    /// the reader's root): below its root, from there; elsewhere (unreachable) unchanged.
    fn seen_by(&self, cx: &Caller, path: Vec<u8>) -> Vec<u8> {
        match self.kernel.upgrade() {
            Some(k) => from_root(path, &reader_root(&k, cx)),
            None => path,
        }
    }

    fn link_target(&self, cx: &Caller, l: PidLink) -> Result<MagicTarget, Errno> {
        let (snap, view) = self.view(cx)?;
        Ok(MagicTarget::Path(match l {
            PidLink::Cwd => view.fs.cwd(),
            PidLink::Root => view.fs.root(),
            PidLink::Exe => snap
                .tg
                .image
                .lock()
                .unwrap()
                .exe
                .clone()
                .ok_or(Errno::ENOENT)?,
        }))
    }
}

/// A `/proc/[pid]` file open for reading: generated again when read from the start (as
/// Linux's seq_file), so a read after the process exits and is reaped fails with ESRCH and
/// one while it is a zombie sees what a zombie shows.
///
/// `mounts` and `mountinfo` are pollable too: POLLPRI|POLLERR once the mount namespace they
/// were opened in changed since the poll that last said so (that poll consumes the event).
struct PidTextFile {
    node: Arc<PidNode>,
    file: PidFile,
    /// For `mounts` and `mountinfo`: the namespace's event count the last report (or the
    /// open) saw, and the namespace.
    mounts: Option<(AtomicU64, Arc<MountNamespace>)>,
    /// What the last read from the start generated.
    data: Mutex<Vec<u8>>,
    st: Stat,
}

impl FileOps for PidTextFile {
    fn read(
        &self,
        t: &mut dyn Context,
        _f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        let off = off.unwrap_or(0);
        let mut data = self.data.lock().unwrap();
        if off == 0 {
            *data = self.node.generate(&Caller::of(t), self.file)?;
        }
        dst.copy_from_offset(&data, off)
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        _src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::EBADF)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.st)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(self.data.lock().unwrap().len() as u64)
    }

    fn pollable(&self) -> bool {
        self.mounts.is_some()
    }

    fn readiness(&self) -> u32 {
        let Some((seen, ns)) = &self.mounts else {
            return (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;
        };
        let base = (libc::POLLIN | libc::POLLRDNORM) as u32;
        let now = ns.event();
        let changed = seen.swap(now, Ordering::AcqRel) != now;
        if changed {
            base | (libc::POLLPRI | libc::POLLERR) as u32
        } else {
            base
        }
    }
}

/// A writable `/proc/[pid]` file (`comm`, `oom_score_adj`, `coredump_filter`) open for
/// writing: reads see the contents at open, each write is parsed and applied at once.
struct PidWriteFile {
    node: Arc<PidNode>,
    file: PidFile,
    contents: BytesFile,
}

/// The bytes of one write to a `/proc` control file: at most `max` of them, up to a NUL,
/// as Linux copies them into a small buffer.
fn control_bytes(src: &mut dyn IoSrc, max: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; src.remaining().min(max)];
    let n = src.copy_to(&mut buf)?;
    buf.truncate(n);
    if let Some(nul) = buf.iter().position(|&b| b == 0) {
        buf.truncate(nul);
    }
    Ok(buf)
}

/// An integer as the kernel's `kstrtoint(.., 0, ..)` reads it: optional sign, then decimal,
/// `0x` hex or `0` octal, with surrounding whitespace (a trailing newline) allowed.
fn parse_kernel_int(bytes: &[u8]) -> Result<i64, Errno> {
    let s = std::str::from_utf8(bytes)
        .map_err(|_| Errno::EINVAL)?
        .trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, h)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(Errno::EINVAL);
    }
    let v = i64::from_str_radix(digits, radix).map_err(|_| Errno::EINVAL)?;
    Ok(if neg { -v } else { v })
}

/// TASK_COMM_LEN - 1: the longest thread name.
const COMM_MAX: usize = 15;

impl PidWriteFile {
    fn apply(&self, t: &mut dyn Context, src: &mut dyn IoSrc) -> Result<(), Errno> {
        let snap = self.node.snapshot()?;
        match self.file {
            PidFile::Comm => {
                let name = control_bytes(src, COMM_MAX)?;
                // Only threads of the writer's own process may be renamed.
                if snap.tgid != t.tgid() {
                    return Err(Errno::EINVAL);
                }
                let h = snap.handle.as_ref().ok_or(Errno::ESRCH)?;
                *h.comm.lock().unwrap() = name;
            }
            PidFile::OomScoreAdj => {
                let v = parse_kernel_int(&control_bytes(src, 12)?)?;
                if !(-1000..=1000).contains(&v) {
                    return Err(Errno::EINVAL);
                }
                let old = snap.tg.oom_score_adj.load(Ordering::Relaxed);
                // Lowering it below what it was takes CAP_SYS_RESOURCE.
                if (v as i32) < old && !t.creds().has_cap(crate::auth::cap::SYS_RESOURCE) {
                    return Err(Errno::EACCES);
                }
                snap.tg.oom_score_adj.store(v as i32, Ordering::Relaxed);
            }
            PidFile::CoredumpFilter => {
                let v = parse_kernel_int(&control_bytes(src, 127)?)?;
                let v = u32::try_from(v).map_err(|_| Errno::EINVAL)?;
                snap.tg
                    .coredump_filter
                    .store(v & COREDUMP_FILTER_MASK, Ordering::Relaxed);
            }
            PidFile::UidMap | PidFile::GidMap => {
                let ns = snap
                    .view
                    .as_ref()
                    .ok_or(Errno::ESRCH)?
                    .creds
                    .user_ns
                    .clone();
                let text = control_bytes(src, 4096)?;
                write_id_map(&t.creds(), &ns, self.file == PidFile::GidMap, &text)?;
            }
            PidFile::Setgroups => {
                let ns = snap
                    .view
                    .as_ref()
                    .ok_or(Errno::ESRCH)?
                    .creds
                    .user_ns
                    .clone();
                let text = control_bytes(src, 8)?;
                let deny = match text.trim_ascii() {
                    b"deny" => true,
                    b"allow" => false,
                    _ => return Err(Errno::EINVAL),
                };
                let creds = t.creds();
                if !creds.has_cap_in(&ns, crate::auth::cap::SYS_ADMIN) {
                    return Err(Errno::EPERM);
                }
                let mut maps = ns.maps.lock().unwrap();
                // Settled once the gid_map is written, and a denial is final.
                if maps.gid.0.is_some() || (maps.setgroups_denied && !deny) {
                    return Err(Errno::EPERM);
                }
                maps.setgroups_denied = deny;
            }
            _ => return Err(Errno::EACCES),
        }
        Ok(())
    }
}

/// The most lines a `uid_map` or `gid_map` takes (Linux's UID_GID_MAP_MAX_EXTENTS).
const MAX_ID_EXTENTS: usize = 340;

/// Writes user namespace `ns`'s uid_map (or gid_map) as `writer` (user_namespaces(7),
/// "Defining user and group ID mappings"): once; by a process of the namespace or of its
/// parent holding CAP_SETUID (CAP_SETGID) over it; every line's IDs mapped in the parent;
/// and either the writer holds the capability in the parent namespace too, or it owns the
/// namespace and maps only its own effective ID (for a gid_map, after setgroups is denied).
fn write_id_map(
    writer: &Creds,
    ns: &Arc<crate::auth::UserNs>,
    gid: bool,
    text: &[u8],
) -> Result<(), Errno> {
    use crate::auth::{cap, IdExtent};
    let parent = ns.parent.as_ref().ok_or(Errno::EPERM)?;
    let own = Arc::ptr_eq(&writer.user_ns, ns) || Arc::ptr_eq(&writer.user_ns, parent);
    let setid = if gid { cap::SETGID } else { cap::SETUID };
    if !own || !writer.has_cap_in(ns, setid) {
        return Err(Errno::EPERM);
    }
    let text = std::str::from_utf8(text).map_err(|_| Errno::EINVAL)?;
    let mut extents: Vec<IdExtent> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<u32> = line
            .split_ascii_whitespace()
            .map(|f| f.parse::<u32>().map_err(|_| Errno::EINVAL))
            .collect::<Result<_, _>>()?;
        let [first, lower_first, count] = fields[..] else {
            return Err(Errno::EINVAL);
        };
        if count == 0
            || first.checked_add(count - 1).is_none()
            || lower_first.checked_add(count - 1).is_none()
        {
            return Err(Errno::EINVAL);
        }
        let overlaps = |a: u32, b: u32| a < b.saturating_add(count) && b < a.saturating_add(count);
        if extents
            .iter()
            .any(|e| overlaps(e.first, first) || overlaps(e.lower_first, lower_first))
        {
            return Err(Errno::EINVAL);
        }
        extents.push(IdExtent {
            first,
            lower_first,
            count,
        });
    }
    if extents.is_empty() || extents.len() > MAX_ID_EXTENTS {
        return Err(Errno::EINVAL);
    }
    for e in &extents {
        let last = e.lower_first + (e.count - 1);
        if parent.to_kernel(e.lower_first, gid).is_none() || parent.to_kernel(last, gid).is_none() {
            return Err(Errno::EPERM);
        }
    }
    let own_id_only = extents.len() == 1
        && extents[0].count == 1
        && ns.owner == writer.euid
        && if gid {
            ns.snapshot().setgroups_denied
                && parent.to_kernel(extents[0].lower_first, true) == Some(writer.egid)
        } else {
            parent.to_kernel(extents[0].lower_first, false) == Some(writer.euid)
        };
    if !own_id_only && !writer.has_cap_in(parent, setid) {
        return Err(Errno::EPERM);
    }
    if ns.set_map(gid, extents) {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

impl FileOps for PidWriteFile {
    fn read(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        self.contents.read(t, f, dst, off)
    }

    fn write(
        &self,
        t: &mut dyn Context,
        _f: &OpenFile,
        src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        // Linux answers with the whole count whatever part of it the file took.
        let count = src.remaining();
        self.apply(t, src)?;
        Ok(count)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.contents.stat()
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Result<u64, Errno> {
        self.contents.size()
    }
}

fn proc_statfs() -> FsStats {
    FsStats {
        fs_type: PROC_MAGIC,
        block_size: 4096,
        name_max: 255,
        ..FsStats::default()
    }
}

/// What `readlink` shows for an open file.
fn file_name(f: &OpenFile) -> Vec<u8> {
    match &f.dentry {
        Some(d) => d.path.clone(),
        None => match f.ops().stat() {
            Ok(st) => match st.mode & libc::S_IFMT {
                libc::S_IFIFO => format!("pipe:[{}]", st.ino),
                libc::S_IFSOCK => format!("socket:[{}]", st.ino),
                libc::S_IFCHR => "/dev/tty".to_string(),
                _ => format!("anon_inode:[{}]", st.ino),
            },
            Err(_) => "anon_inode:[unknown]".to_string(),
        }
        .into_bytes(),
    }
}

/// Upper bound on what `cmdline`/`environ` return (Linux caps reads at the area's size;
/// the sandbox's argument area is bounded by the stack).
const MAX_STRINGS: u64 = 1 << 21;

/// `cmdline` (`args`) or `environ` read from the process's memory. As Linux, a cmdline whose
/// last byte is not NUL (the process rewrote its arguments) continues into the environment
/// area up to the first NUL.
/// `/proc/[pid]/task/[tid]/children`: the processes the thread made, as IDs in `ns`, each
/// followed by a space, in increasing order. Children no thread made (adopted ones, or
/// those of a thread that exited) are shown under the process's first live thread.
fn children_text(snap: &Snapshot, ns: &PidNamespace) -> String {
    let first = snap.threads.iter().min() == Some(&snap.tid);
    let tree = snap.kernel.tree();
    let mut ids: Vec<i32> = tree
        .procs
        .get(&snap.tgid)
        .map(|p| {
            p.children
                .iter()
                .filter(|c| {
                    tree.procs.get(c).is_some_and(|c| {
                        c.parent_thread == snap.tid || (c.parent_thread == 0 && first)
                    })
                })
                .filter_map(|&c| ns.id_of(c))
                .collect()
        })
        .unwrap_or_default();
    drop(tree);
    ids.sort_unstable();
    ids.iter().map(|id| format!("{id} ")).collect()
}

fn read_strings(snap: &Snapshot, args: bool) -> Vec<u8> {
    let Some(view) = &snap.view else {
        return Vec::new();
    };
    let area = snap.tg.image.lock().unwrap().strings;
    let read = |start: u64, end: u64| -> Vec<u8> {
        let len = end.saturating_sub(start).min(MAX_STRINGS) as usize;
        let mut buf = vec![0u8; len];
        let n = view.mm.copy_in(start, &mut buf).unwrap_or(0);
        buf.truncate(n);
        buf
    };
    if !args {
        return read(area.env_start, area.env_end);
    }
    let mut out = read(area.arg_start, area.arg_end);
    if out.last().is_some_and(|&b| b != 0) {
        let env = read(area.env_start, area.env_end);
        let upto = env.iter().position(|&b| b == 0).unwrap_or(env.len());
        out.extend_from_slice(&env[..upto]);
    }
    out
}

fn stat_text(s: &Snapshot, thread: bool) -> String {
    let (vsize_kb, rss_kb) = s.vm_kb();
    let start_at = if thread {
        s.handle.as_ref().map_or(s.tg.start, |h| h.start)
    } else {
        s.tg.start
    };
    let (pending, shared, ign, cgt) = s.signal_sets();
    let area = s.tg.image.lock().unwrap().strings;
    let exit_code = match s.tg.exit_status() {
        Some(st) if s.zombie => st.wait_status(),
        _ => 0,
    };
    let pid = if thread || s.tid != s.tgid {
        s.vtid
    } else {
        s.vtgid
    };
    // utime/stime: the thread's for a task's stat, the process's otherwise; cutime/cstime:
    // the process's waited-for children either way (as Linux).
    let own = match (&s.handle, thread) {
        (Some(h), true) => h.clock.times(),
        _ => s.tg.cpu_times(),
    };
    let children = s.tg.rusage_children().times;
    let sched = s
        .handle
        .as_ref()
        .map(|h| h.sched.lock().unwrap().clone())
        .unwrap_or_default();
    format!(
        "{pid} ({comm}) {state} {ppid} {pgid} {sid} 0 -1 4194560 0 0 0 0 {utime} {stime} \
         {cutime} {cstime} {priority} {nice} \
         {threads} 0 {start} {vsize} {rss} 18446744073709551615 1 1 0 0 0 {sig} {blocked} \
         {ign} {cgt} 0 0 0 {exit_signal} 0 {rt_priority} {policy} 0 0 0 0 0 0 {arg_start} \
         {arg_end} {env_start} {env_end} {exit_code}\n",
        priority = sched.stat_priority(),
        nice = sched.nice,
        rt_priority = sched.rt_priority,
        policy = sched.policy,
        comm = s.comm(),
        state = s.state().letter(),
        utime = ticks(own.user),
        stime = ticks(own.sys),
        cutime = ticks(children.user),
        cstime = ticks(children.sys),
        ppid = s.ppid,
        pgid = s.pgid,
        sid = s.sid,
        threads = s.threads.len().max(1),
        start = ticks_since_boot(&s.kernel, start_at),
        vsize = vsize_kb * 1024,
        rss = rss_kb / 4,
        sig = pending | shared,
        blocked = s.sigmask(),
        exit_signal = s.exit_signal,
        arg_start = area.arg_start,
        arg_end = area.arg_end,
        env_start = area.env_start,
        env_end = area.env_end,
    )
}

/// IDs separated by tabs, as `NSpid:` lists them.
fn join_ids(ids: &[i32]) -> String {
    let v: Vec<String> = ids.iter().map(i32::to_string).collect();
    v.join("\t")
}

/// The `Groups:` value as Linux prints it: the groups separated by spaces, then a space
/// (also when there are none).
fn groups_text(groups: &[u32]) -> String {
    let mut s = groups
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    s.push(' ');
    s
}

fn statm_text(s: &Snapshot) -> String {
    let (vsize_kb, rss_kb) = s.vm_kb();
    format!("{} {} 0 0 0 0 0\n", vsize_kb / 4, rss_kb / 4)
}

/// `/proc/[pid]/status` as a reader in user namespace `reader` sees it: the IDs shown
/// through its namespace (65534 for IDs it does not map), as Linux's task_state.
fn status_text(s: &Snapshot, reader: &crate::auth::UserNs) -> String {
    let (vsize_kb, rss_kb) = s.vm_kb();
    let c = s.creds();
    let (pending, shared, ign, cgt) = s.signal_sets();
    let umask = s.view.as_ref().map_or(0o022, |v| v.fs.umask());
    let fdsize = s
        .view
        .as_ref()
        .and_then(|v| v.fds.fds().last().copied())
        .map_or(64, |m| ((m as u32 + 1).next_power_of_two()).max(64));
    let state = s.state();
    let affinity = s
        .handle
        .as_ref()
        .and_then(|h| h.sched.lock().unwrap().affinity.clone());
    let allowed = allowed_cpus(affinity.as_deref());
    let mut out = format!(
        "Name:\t{comm}\nUmask:\t{umask:04o}\nState:\t{state}\nTgid:\t{tgid}\nNgid:\t0\nPid:\t{pid}\n\
         PPid:\t{ppid}\nTracerPid:\t{tracer}\nUid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nFDSize:\t{fdsize}\n\
         Groups:\t{groups}\nNStgid:\t{nstgid}\nNSpid:\t{nspid}\nNSpgid:\t{pgid}\nNSsid:\t{sid}\n",
        reader.show(c.uid, false),
        reader.show(c.euid, false),
        reader.show(c.suid, false),
        reader.show(c.fsuid, false),
        reader.show(c.gid, true),
        reader.show(c.egid, true),
        reader.show(c.sgid, true),
        reader.show(c.fsgid, true),
        groups = groups_text(&c.groups.iter().map(|&g| reader.show(g, true)).collect::<Vec<_>>()),
        comm = s.comm(),
        state = state.name(),
        tgid = s.vtgid,
        pid = s.vtid,
        nstgid = join_ids(&s.nstgid),
        nspid = join_ids(&s.nspid),
        ppid = s.ppid,
        tracer = s.tracer,
        pgid = s.pgid,
        sid = s.sid,
    );
    if state != RunState::Zombie {
        let _ = write!(
            out,
            "VmPeak:\t{vsize_kb:>8} kB\nVmSize:\t{vsize_kb:>8} kB\nVmLck:\t       0 kB\n\
             VmPin:\t       0 kB\nVmHWM:\t{rss_kb:>8} kB\nVmRSS:\t{rss_kb:>8} kB\n\
             RssAnon:\t{rss_kb:>8} kB\nRssFile:\t       0 kB\nRssShmem:\t       0 kB\n\
             VmData:\t{vsize_kb:>8} kB\nVmStk:\t     132 kB\nVmExe:\t       0 kB\n\
             VmLib:\t       0 kB\nVmPTE:\t       0 kB\nVmSwap:\t       0 kB\n"
        );
    }
    let _ =
        write!(
        out,
        "Threads:\t{threads}\nSigQ:\t0/{sigq}\nSigPnd:\t{pending:016x}\nShdPnd:\t{shared:016x}\n\
         SigBlk:\t{blocked:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n\
         CapInh:\t{inh:016x}\nCapPrm:\t{prm:016x}\nCapEff:\t{eff:016x}\n\
         CapBnd:\t{bnd:016x}\nCapAmb:\t{amb:016x}\nNoNewPrivs:\t{nnp}\nSeccomp:\t{seccomp}\n\
         Seccomp_filters:\t{filters}\nSpeculation_Store_Bypass:\tthread vulnerable\n\
         Cpus_allowed:\t{mask:x}\nCpus_allowed_list:\t{cpu_list}\nMems_allowed:\t1\n\
         Mems_allowed_list:\t0\nvoluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n",
        threads = s.threads.len().max(1),
        nnp = s.handle.as_ref().map_or(0, |h| h.seccomp.no_new_privs() as u8),
        seccomp = s.handle.as_ref().map_or(0, |h| h.seccomp.mode() as u8),
        filters = s.handle.as_ref().map_or(0, |h| h.seccomp.filter_count()),
        sigq = s.tg.limits.lock().unwrap()[libc::RLIMIT_SIGPENDING as usize].cur,
        blocked = s.sigmask(),
        inh = c.caps.inheritable.0,
        prm = c.caps.permitted.0,
        eff = c.caps.effective.0,
        bnd = c.caps.bounding.0,
        amb = c.caps.ambient.0,
        mask = allowed
            .iter()
            .filter(|&&cpu| cpu < 128)
            .fold(0u128, |m, &cpu| m | 1 << cpu),
        cpu_list = cpu_list(&allowed),
    );
    out
}

/// The CPUs of an affinity mask (None: every CPU of the sandbox).
fn allowed_cpus(affinity: Option<&[u64]>) -> Vec<usize> {
    (0..host_info().ncpu)
        .filter(|&cpu| {
            affinity.is_none_or(|words| {
                words
                    .get(cpu / 64)
                    .is_some_and(|w| w >> (cpu % 64) & 1 == 1)
            })
        })
        .collect()
}

/// CPUs as Linux lists them: ascending ranges, `0-3,6`.
fn cpu_list(cpus: &[usize]) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &cpu in cpus {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == cpu => *end = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    parts.join(",")
}

/// Whether maps and smaps show `m` as shared. The vDSO's parameter page is one page every
/// address space shares, but Linux shows its `[vvar]` (a special mapping) as private.
fn shows_shared(m: &crate::mm::MapsEntry) -> bool {
    m.shared && !matches!(&m.kind, VmaKind::Named(n) if n == crate::vdso::VVAR_NAME)
}

/// `/proc/[pid]/maps`, file names seen from the reader's root `root`.
fn maps_text(v: &TaskView, root: &[u8]) -> String {
    let mut s = String::new();
    for m in v.mm.maps() {
        let name = match &m.kind {
            // Shared anonymous memory is a deleted shmem file on Linux (proc(5)).
            VmaKind::Anon if m.shared => "/dev/zero (deleted)".into(),
            VmaKind::Anon => String::new(),
            VmaKind::Heap => "[heap]".into(),
            VmaKind::Stack => "[stack]".into(),
            VmaKind::Named(n) => {
                String::from_utf8_lossy(&from_root(n.clone().into_bytes(), root)).into_owned()
            }
        };
        // Device as major:minor in hex (the glibc encoding of dev_t).
        let (major, minor) = (libc::major(m.dev), libc::minor(m.dev));
        let line = format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} {major:02x}:{minor:02x} {}",
            m.start,
            m.end,
            if m.perms.read { 'r' } else { '-' },
            if m.perms.write { 'w' } else { '-' },
            if m.perms.exec { 'x' } else { '-' },
            if shows_shared(&m) { 's' } else { 'p' },
            m.offset,
            m.ino,
        );
        if name.is_empty() {
            // Linux ends the header with a space whether or not a name follows.
            let _ = writeln!(s, "{line} ");
        } else {
            let _ = writeln!(s, "{line:<72} {name}");
        }
    }
    if let Some(perms) = &host_info().vsyscall {
        let _ = writeln!(s, "{}", vsyscall_line(perms));
    }
    s
}

/// The legacy vsyscall page's `maps` line, last as in Linux (the "gate" area lies above
/// every mapping).
fn vsyscall_line(perms: &str) -> String {
    let page = platform::VSYSCALL_PAGE;
    let line = format!(
        "{page:08x}-{:08x} {perms} {:08x} 00:00 0",
        page + platform::PAGE_SIZE,
        0
    );
    format!("{line:<72} [vsyscall]")
}

/// `/proc/[pid]/smaps`: each mapping's `maps` line, its sizes and its `VmFlags`. Pages are
/// never shared between address spaces in the sentry's accounting (copy-on-write pages
/// count for each), so the resident pages of a mapping are its private ones.
fn smaps_text(v: &TaskView, root: &[u8]) -> String {
    let maps_lines = maps_text(v, root);
    let mut out = String::new();
    for (m, line) in v.mm.maps().iter().zip(maps_lines.lines()) {
        let size = (m.end - m.start) / 1024;
        let rss = v.mm.resident_in(m.start, m.end) / 1024;
        // Shared anonymous memory is a shmem file on Linux, not anonymous pages.
        let anon = if m.is_file || m.shared { 0 } else { rss };
        let (clean, dirty) = if m.perms.write { (0, rss) } else { (rss, 0) };
        let _ = writeln!(out, "{line}");
        for (k, val) in [
            ("Size", size),
            ("KernelPageSize", 4),
            ("MMUPageSize", 4),
            ("Rss", rss),
            ("Pss", rss),
            ("Shared_Clean", 0),
            ("Shared_Dirty", 0),
            ("Private_Clean", clean),
            ("Private_Dirty", dirty),
            ("Referenced", rss),
            ("Anonymous", anon),
            ("LazyFree", 0),
            ("AnonHugePages", 0),
            ("ShmemPmdMapped", 0),
            ("FilePmdMapped", 0),
            ("Shared_Hugetlb", 0),
            ("Private_Hugetlb", 0),
            ("Swap", 0),
            ("SwapPss", 0),
            ("Locked", if m.locked { rss } else { 0 }),
        ] {
            let _ = writeln!(out, "{:<16}{val:>8} kB", format!("{k}:"));
        }
        let _ = writeln!(out, "THPeligible:    0");
        let mut flags = Vec::new();
        for (on, name) in [
            (m.perms.read, "rd"),
            (m.perms.write, "wr"),
            (m.perms.exec, "ex"),
            (m.shared && m.may_write, "sh"),
            (true, "mr"),
            (m.may_write, "mw"),
            (true, "me"),
            (shows_shared(m), "ms"),
            (matches!(m.kind, VmaKind::Stack), "gd"),
            (m.locked, "lo"),
            (!m.shared && m.perms.write, "ac"),
        ] {
            if on {
                flags.push(name);
            }
        }
        let _ = writeln!(out, "VmFlags: {} ", flags.join(" "));
    }
    if let Some(perms) = &host_info().vsyscall {
        // Nothing of the page is counted: it is the kernel's.
        let _ = writeln!(out, "{}", vsyscall_line(perms));
        let _ = writeln!(out, "{:<16}{:>8} kB", "Size:", platform::PAGE_SIZE / 1024);
        for k in ["KernelPageSize", "MMUPageSize"] {
            let _ = writeln!(out, "{:<16}{:>8} kB", format!("{k}:"), 4);
        }
        for k in [
            "Rss",
            "Pss",
            "Shared_Clean",
            "Shared_Dirty",
            "Private_Clean",
            "Private_Dirty",
            "Referenced",
            "Anonymous",
            "LazyFree",
            "AnonHugePages",
            "ShmemPmdMapped",
            "FilePmdMapped",
            "Shared_Hugetlb",
            "Private_Hugetlb",
            "Swap",
            "SwapPss",
            "Locked",
        ] {
            let _ = writeln!(out, "{:<16}{:>8} kB", format!("{k}:"), 0);
        }
        let _ = writeln!(out, "THPeligible:    0");
        let flags: Vec<&str> = [(perms.starts_with('r'), "rd"), (perms.contains('x'), "ex")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        let _ = writeln!(out, "VmFlags: {} ", flags.join(" "));
    }
    out
}

fn smaps_rollup_text(s: &Snapshot) -> String {
    let Some(v) = &s.view else {
        return String::new();
    };
    let maps = v.mm.maps();
    let (lo, hi) = (
        maps.first().map_or(0, |m| m.start),
        maps.last().map_or(0, |m| m.end),
    );
    let rss = v.mm.resident() / 1024;
    let head = format!("{lo:08x}-{hi:08x} ---p 00000000 00:00 0");
    let mut out = format!("{head:<72} [rollup]\n");
    for (k, val) in [
        ("Rss", rss),
        ("Pss", rss),
        ("Pss_Anon", rss),
        ("Pss_File", 0),
        ("Pss_Shmem", 0),
        ("Shared_Clean", 0),
        ("Shared_Dirty", 0),
        ("Private_Clean", 0),
        ("Private_Dirty", rss),
        ("Referenced", rss),
        ("Anonymous", rss),
        ("LazyFree", 0),
        ("AnonHugePages", 0),
        ("ShmemPmdMapped", 0),
        ("FilePmdMapped", 0),
        ("Shared_Hugetlb", 0),
        ("Private_Hugetlb", 0),
        ("Swap", 0),
        ("SwapPss", 0),
        ("Locked", 0),
    ] {
        let _ = writeln!(out, "{:<16}{val:>8} kB", format!("{k}:"));
    }
    out
}

fn limits_text(tg: &ThreadGroup) -> String {
    const NAMES: [(&str, &str); 16] = [
        ("Max cpu time", "seconds"),
        ("Max file size", "bytes"),
        ("Max data size", "bytes"),
        ("Max stack size", "bytes"),
        ("Max core file size", "bytes"),
        ("Max resident set", "bytes"),
        ("Max processes", "processes"),
        ("Max open files", "files"),
        ("Max locked memory", "bytes"),
        ("Max address space", "bytes"),
        ("Max file locks", "locks"),
        ("Max pending signals", "signals"),
        ("Max msgqueue size", "bytes"),
        ("Max nice priority", ""),
        ("Max realtime priority", ""),
        ("Max realtime timeout", "us"),
    ];
    let limits = *tg.limits.lock().unwrap();
    let mut s = format!(
        "{:<25} {:<20} {:<20} {:<10}\n",
        "Limit", "Soft Limit", "Hard Limit", "Units"
    );
    let show = |v: u64| {
        if v == u64::MAX {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    for (i, (name, unit)) in NAMES.iter().enumerate() {
        let _ = write!(
            s,
            "{name:<25} {:<20} {:<20} ",
            show(limits[i].cur),
            show(limits[i].max)
        );
        if !unit.is_empty() {
            let _ = write!(s, "{unit:<10}");
        }
        s.push('\n');
    }
    s
}

/// The path of the reader's root directory (`/` unless it chrooted; the sentry's is `/`).
fn reader_root(k: &Kernel, cx: &Caller) -> Vec<u8> {
    cx.task
        .and_then(|t| k.tree().tasks.get(&t.tid).cloned())
        .and_then(|h| {
            h.view
                .lock()
                .unwrap()
                .as_ref()
                .map(|v| v.fs.root().path.clone())
        })
        .unwrap_or_else(|| b"/".to_vec())
}

/// `path` (absolute in the sandbox) seen from the root directory `root`: rebased when at or
/// below it, else unchanged (Linux shows an unreachable path from the namespace root).
fn from_root(path: Vec<u8>, root: &[u8]) -> Vec<u8> {
    if root == b"/" || !path.starts_with(b"/") {
        return path;
    }
    rebase(&path, root, b"/").unwrap_or(path)
}

/// The root of the reader's cgroup namespace (paths of cgroups are shown from it); the
/// hierarchy's root for the sentry itself.
fn reader_cgroup_root(k: &Kernel, cx: &Caller) -> Arc<Cgroup> {
    cx.task
        .and_then(|t| k.namespaces_of(t.tid))
        .map_or_else(|| k.cgroups.root().clone(), |ns| (*ns.cgroup).clone())
}

/// Octal-escapes what would break `/proc/mounts` fields (space, tab, newline, backslash).
fn mangle(path: &[u8]) -> String {
    let mut s = String::new();
    for &b in path {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => {
                let _ = write!(s, "\\{b:03o}");
            }
            _ => s.push(b as char),
        }
    }
    s
}

/// The mounts of the namespace of `fs` its root reaches, each with its mountpoint seen
/// from that root (Linux skips the others).
fn mounts_seen_from(fs: &FsContext) -> Vec<(Arc<Mount>, Vec<u8>)> {
    let root = fs.root().path.clone();
    fs.ns
        .mounts()
        .into_iter()
        .filter_map(|m| {
            let at = if root == b"/" {
                m.path.clone()
            } else {
                rebase(&m.path, &root, b"/")?
            };
            Some((m, at))
        })
        .collect()
}

/// `/proc/[pid]/mounts` of the process whose filesystem context is `fs`.
fn mounts_text(fs: &FsContext) -> String {
    let mut s = String::new();
    for (m, at) in mounts_seen_from(fs) {
        let _ = writeln!(
            s,
            "{} {} {} {}{} 0 0",
            m.source,
            mangle(&at),
            m.fs_type,
            m.options(),
            m.fs_options
        );
    }
    s
}

/// `/proc/[pid]/mountinfo` of the process whose filesystem context is `fs`; a `cgroup2`
/// mount's root is shown from `cgroup_root`, the reader's cgroup namespace root, as Linux's.
fn mountinfo_text(fs: &FsContext, cgroup_root: &Cgroup) -> String {
    let mut s = String::new();
    for (m, at) in mounts_seen_from(fs) {
        // The namespace's root shows itself as its parent.
        let parent = if m.parent == 0 { m.id } else { m.parent };
        let dev = m.root.stat().map_or(0, |st| st.dev);
        let (major, minor) = (
            ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
            (dev & 0xff) | ((dev >> 12) & !0xff),
        );
        let root_path = if m.fs_type == "cgroup2" {
            let path = String::from_utf8_lossy(&m.root_path);
            cgroup::path_from(&path, &cgroup_root.path).into_bytes()
        } else {
            m.root_path.clone()
        };
        let _ = writeln!(
            s,
            "{} {parent} {major}:{minor} {} {} {}{} - {} {} {}",
            m.id,
            mangle(&root_path),
            mangle(&at),
            m.options(),
            m.optional_fields(),
            m.fs_type,
            m.source,
            m.super_options(),
        );
    }
    s
}

// ---------------------------------------------------------------------------------------
// System files.

fn meminfo(k: &Kernel) -> String {
    let total = host_info().mem_total_kb;
    let used = k.memory.in_use() / 1024;
    let free = total.saturating_sub(used);
    let mut s = String::new();
    for (k, v) in [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", free),
        ("Buffers", 0),
        ("Cached", 0),
        ("SwapCached", 0),
        ("Active", used),
        ("Inactive", 0),
        ("Active(anon)", used),
        ("Inactive(anon)", 0),
        ("Active(file)", 0),
        ("Inactive(file)", 0),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", used),
        ("Mapped", 0),
        ("Shmem", 0),
        ("KReclaimable", 0),
        ("Slab", 0),
        ("SReclaimable", 0),
        ("SUnreclaim", 0),
        ("KernelStack", 0),
        ("PageTables", 0),
        ("CommitLimit", total),
        ("Committed_AS", used),
        ("VmallocTotal", 34_359_738_367),
        ("VmallocUsed", 0),
        ("VmallocChunk", 0),
    ] {
        let _ = writeln!(s, "{:<15} {v:>8} kB", format!("{k}:"));
    }
    s
}

/// (running, total) tasks, and the highest TID in use, as namespace `ns` sees them.
fn task_counts(k: &Kernel, ns: &PidNamespace) -> (usize, usize, i32) {
    let tree = k.tree();
    let visible: Vec<(i32, &Arc<TaskHandle>)> = tree
        .tasks
        .iter()
        .filter_map(|(&tid, h)| ns.id_of(tid).map(|v| (v, h)))
        .collect();
    let running = visible
        .iter()
        .filter(|(_, h)| !h.waiter.is_sleeping())
        .count();
    let last = visible.iter().map(|(v, _)| *v).max().unwrap_or(0);
    (running.max(1), visible.len(), last)
}

fn proc_stat(k: &Kernel, ns: &PidNamespace) -> String {
    let up = k.boot.elapsed();
    let ncpu = host_info().ncpu as u64;
    // Busy time: the CPU time of every process of the sandbox, its reaped children's
    // included (a reaped process's time lives on in its parent's). Idle time is the rest
    // of the uptime of every CPU. The sentry does not know which CPU ran what, so each CPU
    // line shows an equal share.
    let procs: Vec<Arc<ThreadGroup>> = k.tree().procs.values().map(|p| p.tg.clone()).collect();
    let busy = procs.iter().fold(CpuTimes::default(), |acc, tg| {
        acc + tg.cpu_times() + tg.rusage_children().times
    });
    let (user, sys) = (ticks(busy.user), ticks(busy.sys));
    let total = (up.as_millis() * USER_HZ / 1000) as u64 * ncpu;
    let idle = total.saturating_sub(user + sys);
    let mut s = format!("cpu  {user} 0 {sys} {idle} 0 0 0 0 0 0\n");
    for i in 0..ncpu {
        let _ = writeln!(
            s,
            "cpu{i} {} 0 {} {} 0 0 0 0 0 0",
            user / ncpu,
            sys / ncpu,
            idle / ncpu
        );
    }
    let btime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .saturating_sub(up.as_secs());
    let (running, _, last) = task_counts(k, ns);
    let _ = write!(
        s,
        "intr 0\nctxt 0\nbtime {btime}\nprocesses {last}\nprocs_running {running}\n\
         procs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
    );
    s
}

/// Builds a `/proc` of `kernel` showing the processes of PID namespace `ns`. Holds the
/// kernel weakly: a task whose cwd is in `/proc` must not keep the kernel alive.
pub fn new_proc(kernel: Weak<Kernel>, ns: Arc<PidNamespace>) -> Arc<dyn Inode> {
    let fs = SynthFs::new(PROC_MAGIC);
    let f = |g: fn(&Kernel) -> String| -> Arc<dyn Inode> {
        SynthFile::new(&fs, 0o444, text(&kernel, g))
    };
    let fixed = |s: &str| -> Arc<dyn Inode> { SynthFile::fixed(&fs, s) };
    let boot_id = random_uuid();
    let random_dir: Arc<dyn Inode> = SynthDir::fixed(
        &fs,
        vec![
            ("boot_id", fixed(&format!("{boot_id}\n"))),
            ("uuid", f(|_| format!("{}\n", random_uuid()))),
            ("entropy_avail", fixed("256\n")),
            ("poolsize", fixed("256\n")),
        ],
    );
    let kernel_dir: Arc<dyn Inode> = SynthDir::fixed(
        &fs,
        vec![
            ("cap_last_cap", fixed("40\n")),
            ("keys", keys_dir(&fs, &kernel)),
            (
                "domainname",
                UtsNameInode::new(&fs, &kernel, UtsName::Domain),
            ),
            ("hostname", UtsNameInode::new(&fs, &kernel, UtsName::Host)),
            ("msgmax", fixed(&format!("{MSGMAX}\n"))),
            ("msgmnb", fixed(&format!("{MSGMNB}\n"))),
            ("msgmni", fixed(&format!("{MSGMNI}\n"))),
            ("ngroups_max", fixed("65536\n")),
            ("osrelease", fixed(&format!("{RELEASE}\n"))),
            ("ostype", fixed("Linux\n")),
            ("overflowgid", fixed("65534\n")),
            ("overflowuid", fixed("65534\n")),
            // Linux's default, max(32768, 1024 * CPUs); procps sizes its PID columns by it.
            (
                "pid_max",
                fixed(&format!("{}\n", (1024 * host_info().ncpu).max(32768))),
            ),
            ("random", random_dir),
            // The sentry lays out every address space the same way: no randomisation.
            ("randomize_va_space", fixed("0\n")),
            (
                "sem",
                fixed(&format!("{SEMMSL}\t{SEMMNS}\t{SEMOPM}\t{SEMMNI}\n")),
            ),
            ("shmall", fixed(&format!("{SHMALL}\n"))),
            ("shmmax", fixed(&format!("{SHMMAX}\n"))),
            ("shmmni", fixed(&format!("{SHMMNI}\n"))),
            ("threads-max", fixed("4194304\n")),
            ("version", fixed(&format!("{VERSION}\n"))),
        ],
    );
    let sys: Arc<dyn Inode> = SynthDir::fixed(
        &fs,
        vec![
            (
                "fs",
                SynthDir::fixed(
                    &fs,
                    vec![
                        ("file-max", fixed("9223372036854775807\n")),
                        ("mount-max", fixed(&format!("{}\n", crate::vfs::MOUNT_MAX))),
                        ("nr_open", fixed("1048576\n")),
                        ("pipe-max-size", fixed("1048576\n")),
                    ],
                ),
            ),
            ("kernel", kernel_dir),
            ("net", net::sys_net_dir(&fs, &kernel)),
            (
                "vm",
                SynthDir::fixed(
                    &fs,
                    vec![
                        ("max_map_count", fixed("65530\n")),
                        ("mmap_min_addr", fixed("65536\n")),
                        ("overcommit_memory", fixed("0\n")),
                    ],
                ),
            ),
        ],
    );
    let fixed_entries: Vec<(Vec<u8>, Arc<dyn Inode>)> = vec![
        // There is no boot command line: a sandbox has no bootloader.
        ("cmdline", fixed("quiet\n")),
        (
            "cpuinfo",
            SynthFile::fixed(&fs, host_info().cpuinfo.clone()) as Arc<dyn Inode>,
        ),
        // The character devices the sentry implements: the memory devices, the terminal
        // devices and the pty slaves; no block devices.
        (
            "devices",
            fixed(&format!(
                "Character devices:\n  1 mem\n  5 /dev/tty\n  5 /dev/ptmx\n{:3} pts\n\n\
                 Block devices:\n",
                crate::tty::pty::SLAVE_MAJOR
            )),
        ),
        (
            "filesystems",
            fixed(
                &FILESYSTEM_TYPES
                    .iter()
                    .map(|f| format!("nodev\t{f}\n"))
                    .collect::<String>(),
            ),
        ),
        ("loadavg", {
            let ns = ns.clone();
            SynthFile::new(
                &fs,
                0o444,
                text(&kernel, move |k| {
                    let (running, total, last) = task_counts(k, &ns);
                    format!("0.00 0.00 0.00 {running}/{total} {last}\n")
                }),
            )
        }),
        ("meminfo", f(meminfo)),
        ("mounts", SynthLink::fixed(&fs, "self/mounts")),
        // As on Linux, `/proc/net` is `self/net`: the network namespace's files.
        ("net", SynthLink::fixed(&fs, "self/net")),
        ("self", {
            let ns = ns.clone();
            SynthLink::new(
                &fs,
                Arc::new(move |cx| {
                    let ids = cx.task.ok_or(Errno::ENOENT)?;
                    let pid = ns.id_of(ids.tgid).ok_or(Errno::ENOENT)?;
                    Ok(pid.to_string().into_bytes())
                }),
            )
        }),
        ("stat", {
            let ns = ns.clone();
            SynthFile::new(&fs, 0o444, text(&kernel, move |k| proc_stat(k, &ns)))
        }),
        ("sys", sys),
        (
            "sysvipc",
            SynthDir::fixed(
                &fs,
                vec![
                    ("msg", f(|k| k.ipc.msg.proc_table())),
                    ("sem", f(|k| k.ipc.sem.proc_table())),
                    ("shm", f(|k| k.ipc.shm.proc_table())),
                ],
            ),
        ),
        ("thread-self", {
            let ns = ns.clone();
            SynthLink::new(
                &fs,
                Arc::new(move |cx| {
                    let ids = cx.task.ok_or(Errno::ENOENT)?;
                    let pid = ns.id_of(ids.tgid).ok_or(Errno::ENOENT)?;
                    let tid = ns.id_of(ids.tid).ok_or(Errno::ENOENT)?;
                    Ok(format!("{pid}/task/{tid}").into_bytes())
                }),
            )
        }),
        (
            "uptime",
            f(|k| {
                let up = k.boot.elapsed().as_secs_f64();
                format!("{up:.2} {:.2}\n", up * host_info().ncpu as f64)
            }),
        ),
        (
            "version",
            fixed(&format!(
                "Linux version {RELEASE} (runsc-rs@sandbox) (runsc-rs) {VERSION}\n"
            )),
        ),
    ]
    .into_iter()
    .map(|(n, i)| (n.as_bytes().to_vec(), i))
    .collect();
    Arc::new(ProcRoot {
        net: net::net_dir(&fs, &kernel),
        fs,
        kernel,
        ns,
        fixed: fixed_entries,
    })
}

/// `/proc` itself: the fixed entries plus one directory per sandbox process.
struct ProcRoot {
    fs: Arc<SynthFs>,
    net: Arc<dyn Inode>,
    kernel: Weak<Kernel>,
    ns: Arc<PidNamespace>,
    fixed: Vec<(Vec<u8>, Arc<dyn Inode>)>,
}

impl ProcRoot {
    fn pid_dir(&self, k: &Arc<Kernel>, tgid: i32, tid: i32) -> Arc<PidNode> {
        Arc::new(PidNode {
            fs: self.fs.clone(),
            net: self.net.clone(),
            kernel: Arc::downgrade(k),
            ns: self.ns.clone(),
            tgid,
            tid,
            thread: false,
            node: Node::Dir,
        })
    }
}

impl Inode for ProcRoot {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.fs.stat(1, libc::S_IFDIR | 0o555, 0))
    }

    fn lookup(&self, cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        if let Some((_, i)) = self.fixed.iter().find(|(n, _)| n == name) {
            return Ok(i.clone());
        }
        let id: i32 = std::str::from_utf8(name)
            .ok()
            .filter(|s| !s.starts_with(['+', '-', '0']))
            .and_then(|s| s.parse().ok())
            .ok_or(Errno::ENOENT)?;
        let k = &kernel_for(&self.kernel, cx)?;
        let id = self.ns.lookup(id).ok_or(Errno::ENOENT)?;
        let tgid = {
            let tree = k.tree();
            if tree.procs.contains_key(&id) {
                id
            } else {
                tree.tasks
                    .get(&id)
                    .map(|h| h.tg.tgid)
                    .ok_or(Errno::ENOENT)?
            }
        };
        Ok(self.pid_dir(k, tgid, id))
    }

    fn readdir(&self, cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        let mut v: Vec<DirEntry> = self
            .fixed
            .iter()
            .map(|(name, i)| {
                let st = i.stat()?;
                Ok(DirEntry {
                    name: name.clone(),
                    ino: st.ino,
                    kind: FileType::from_mode(st.mode),
                })
            })
            .collect::<Result<_, Errno>>()?;
        if let Ok(k) = kernel_for(&self.kernel, cx) {
            let mut pids: Vec<(i32, i32)> = k
                .tree()
                .procs
                .keys()
                .filter_map(|&pid| self.ns.id_of(pid).map(|local| (local, pid)))
                .collect();
            pids.sort_unstable();
            for (local, pid) in pids {
                v.push(DirEntry {
                    name: local.to_string().into_bytes(),
                    ino: self.pid_dir(&k, pid, pid).ino(),
                    kind: FileType::Directory,
                });
            }
        }
        Ok(v)
    }

    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Err(Errno::EISDIR)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(proc_statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_escaped() {
        assert_eq!(mangle(b"/a b\\c\td\ne"), "/a\\040b\\134c\\011d\\012e");
    }

    #[test]
    fn cpu_lists_are_ranges() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(cpu_list(&[1]), "1");
        assert_eq!(cpu_list(&[]), "");
    }

    #[test]
    fn limits_have_linux_columns() {
        let text = limits_text(&ThreadGroup::new(1, PidNamespace::new_root(), "".into()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 17);
        assert_eq!(
            lines[0],
            "Limit                     Soft Limit           Hard Limit           Units     "
        );
        assert_eq!(
            lines[8],
            "Max open files            1024                 1048576              files     "
        );
        assert_eq!(
            lines[14],
            "Max nice priority         0                    0                    "
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]));
        assert_ne!(u, random_uuid());
    }
}
