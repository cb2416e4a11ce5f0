//! The system-call table: one inventory (number, name, typed arguments, handler, support
//! level) that generates dispatch, `--strace` output and `runsc-rs syscalls`.
//!
//! Handlers take the task and typed arguments decoded once here, with the width and sign
//! Linux uses:
//! ```ignore
//! 0 read(fd: Fd, buf: UserAddr, count: usize) => fd::read, Full;
//! ```
//!
//! The handlers live in one file per family:
//!
//! | family | file |
//! |---|---|
//! | open, openat, openat2, creat; mkdir, mknod, symlink, readlink, unlink, rmdir, rename, link; access; path resolution helpers | `path.rs` |
//! | stat, lstat, fstat, newfstatat, statx, statfs, fstatfs, ustat | `stat.rs` |
//! | chmod, fchmodat2, chown, utimensat/futimesat/utimes/utime, truncate, ftruncate, fallocate, umask | `attr.rs` |
//! | getdents64, getdents, getcwd, chdir, fchdir, chroot | `dir.rs` |
//! | getxattr, setxattr, listxattr, removexattr (path, l*, f* variants) | `xattr.rs` |
//! | read/write family (readv/writev, pread64/pwrite64, preadv/pwritev, preadv2/pwritev2), close, close_range, dup*, fcntl, ioctl, lseek, fadvise64, readahead | `fd.rs` |
//! | flock, fcntl record and OFD locks | `lock.rs` |
//! | fsync, fdatasync, syncfs, sync, sync_file_range | `sync.rs` |
//! | pipe, pipe2, eventfd, eventfd2, memfd_create | `pipe.rs` |
//! | sendfile, splice, tee, vmsplice, copy_file_range | `splice.rs` |
//! | poll, ppoll, select, pselect6, epoll (epoll_pwait2 too) | `poll.rs` |
//! | inotify | `inotify.rs` |
//! | mount, umount2, pivot_root | `mount.rs` |
//! | the new mount API: fsopen, fsconfig, fsmount, open_tree, move_mount, mount_setattr | `fsmount.rs` |
//! | mmap, munmap, mprotect, mremap, msync, madvise, process_madvise, mincore, cachestat, brk, mlock, mlock2, munlock, mlockall, munlockall | `mem.rs` |
//! | NUMA policies: set_mempolicy, get_mempolicy, mbind | `mempolicy.rs` |
//! | socket calls | `socket.rs` |
//! | signals: sigaction, sigprocmask, kill family, sigqueue, sigsuspend, sigtimedwait, sigaltstack | `signal.rs` |
//! | signalfd, signalfd4 | `signalfd.rs` |
//! | clocks, gettimeofday, time, nanosleep, clock_nanosleep; clock_settime, settimeofday, adjtimex, clock_adjtime | `time.rs` |
//! | alarm, itimers, POSIX timers, timerfd | `timer.rs` |
//! | futex, futex_wake, futex_wait, futex_waitv, futex_requeue | `futex.rs` |
//! | uname, sysinfo, getrandom, syslog, sysfs | `info.rs` |
//! | processes and threads: ids, clone/fork/exec, exit, wait, process groups and sessions, vhangup, rlimits, rusage, prctl, personality | `process.rs` |
//! | process_vm_readv, process_vm_writev | `process_vm.rs` |
//! | ptrace (the tracer's requests; the stops are the kernel's `ptrace`) | `ptrace.rs` |
//! | scheduling: get/setpriority, sched_* policies, parameters, attributes and affinity, ioprio_get/ioprio_set, sched_yield, getcpu | `sched.rs` |
//! | System V IPC: shmget, shmat, shmdt, shmctl, semget, semop, semtimedop, semctl, msgget, msgsnd, msgrcv, msgctl | `ipc.rs` |
//! | POSIX message queues: mq_open, mq_unlink, mq_timedsend, mq_timedreceive, mq_notify, mq_getsetattr | `mq.rs` |
//! | pidfd_open, pidfd_send_signal, pidfd_getfd, process_mrelease, setns, unshare (and the CLONE_PIDFD, P_PIDFD hooks) | `pidfd.rs` |
//! | native AIO: io_setup, io_destroy, io_submit, io_getevents, io_pgetevents, io_cancel | `aio.rs` |
//! | keyctl (session keyrings) | `keys.rs` |
//! | kcmp | `kcmp.rs` |
//! | membarrier | `membarrier.rs` |
//! | Landlock: landlock_create_ruleset, landlock_add_rule, landlock_restrict_self (and its socket and signal checks) | `landlock.rs` |
//! | credentials: get/set uid and gid family, setfsuid/setfsgid, getgroups/setgroups, capget/capset, the prctl capability options | `creds.rs` |

mod aio;
mod attr;
mod creds;
mod dir;
mod fd;
mod fsmount;
mod futex;
pub(crate) mod info;
mod inotify;
mod ipc;
mod kcmp;
mod keys;
mod landlock;
mod lock;
mod mem;
mod membarrier;
mod mempolicy;
mod mount;
mod mq;
mod ns;
mod path;
mod pidfd;
mod pipe;
mod poll;
mod process;
mod process_vm;
mod ptrace;
mod sched;
mod seccomp;
mod signal;
mod signalfd;
mod socket;
mod splice;
mod stat;
mod sync;
mod time;
mod timer;
mod xattr;

use std::sync::OnceLock;

use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::mm::usermem::{UserAddr, PATH_MAX};

/// How completely a system call is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Full,
    /// Implemented for the cases programs use; the note says what is missing.
    Partial(&'static str),
    /// Returns an error on purpose; the note says why.
    Unsupported(&'static str),
}

/// How `--strace` shows an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Int,
    Hex,
    Fd,
    Ptr,
    Path,
}

/// A file descriptor argument (`int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fd(pub i32);

/// A pointer to a NUL-terminated path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathArg(pub UserAddr);

/// A pointer to a NUL-terminated path whose final symlink is not followed (the l* calls
/// that have no flags argument to say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFollowPath(pub UserAddr);

/// Flags or other bit sets, shown in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u64);

/// Decoding of one raw register into a typed argument.
pub trait Arg {
    const KIND: ArgKind;
    fn from_raw(v: u64) -> Self;
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            const KIND: ArgKind = ArgKind::Int;
            fn from_raw(v: u64) -> Self { v as $t }
        }
    )*};
}
int_arg!(u64, i64, u32, i32, usize);

impl Arg for Fd {
    const KIND: ArgKind = ArgKind::Fd;
    fn from_raw(v: u64) -> Self {
        Fd(v as i32)
    }
}
impl Arg for UserAddr {
    const KIND: ArgKind = ArgKind::Ptr;
    fn from_raw(v: u64) -> Self {
        UserAddr(v)
    }
}
impl Arg for PathArg {
    const KIND: ArgKind = ArgKind::Path;
    fn from_raw(v: u64) -> Self {
        PathArg(UserAddr(v))
    }
}
impl Arg for NoFollowPath {
    const KIND: ArgKind = ArgKind::Path;
    fn from_raw(v: u64) -> Self {
        NoFollowPath(UserAddr(v))
    }
}
impl Arg for Flags {
    const KIND: ArgKind = ArgKind::Hex;
    fn from_raw(v: u64) -> Self {
        Flags(v)
    }
}

type Handler = fn(&mut Task, &[u64; 6]) -> SysResult;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct SyscallDef {
    pub nr: u64,
    pub name: &'static str,
    pub args: &'static [ArgKind],
    pub support: Support,
    handler: Option<Handler>,
}

macro_rules! syscall_table {
    (
        implemented { $( $nr:literal $name:ident ( $( $arg:ident : $ty:ty ),* ) => $handler:path, $support:expr; )* }
        unsupported { $( $unr:literal $uname:ident, $reason:literal; )* }
    ) => {
        static TABLE: &[SyscallDef] = &[
            $(
                SyscallDef {
                    nr: $nr,
                    name: stringify!($name),
                    args: &[ $( <$ty as Arg>::KIND ),* ],
                    support: $support,
                    handler: Some({
                        #[allow(unused_assignments, unused_mut, unused_variables)]
                        fn call(t: &mut Task, a: &[u64; 6]) -> SysResult {
                            let mut i = 0;
                            $handler(t, $( { let $arg = <$ty as Arg>::from_raw(a[i]); i += 1; $arg } ),*)
                        }
                        call
                    }),
                },
            )*
            $(
                SyscallDef { nr: $unr, name: stringify!($uname), args: &[], support: Support::Unsupported($reason), handler: None },
            )*
        ];
    };
}

use Support::{Full, Partial};

syscall_table! {
    implemented {
        0 read(fd: Fd, buf: UserAddr, count: usize) => fd::read, Full;
        1 write(fd: Fd, buf: UserAddr, count: usize) => fd::write, Full;
        2 open(path: PathArg, flags: Flags, mode: u32) => path::open, Partial("O_TMPFILE on tmpfs and the overlay (in its upper layer); host volumes are EOPNOTSUPP");
        3 close(fd: Fd) => fd::close, Full;
        4 stat(path: PathArg, statbuf: UserAddr) => stat::stat, Full;
        5 fstat(fd: Fd, statbuf: UserAddr) => stat::fstat, Full;
        6 lstat(path: PathArg, statbuf: UserAddr) => stat::lstat, Full;
        7 poll(fds: UserAddr, nfds: u32, timeout: i32) => poll::poll, Partial("host fds are re-polled every 10 ms while waiting");
        8 lseek(fd: Fd, offset: i64, whence: i32) => fd::lseek, Full;
        9 mmap(addr: UserAddr, len: u64, prot: Flags, flags: Flags, fd: Fd, off: u64) => mem::mmap, Partial("files map tmpfs pages or the page cache of host and FUSE files; shared writable mappings of host files (volumes) and FUSE files store into the cached pages, written back (pwrite on the open's fd; WRITE to the daemon) at msync, fsync, the last munmap and close, and read(2), write(2) and truncation through the sentry see them, but host processes see the stores only after a write-back and the sandbox does not see host writes to pages it cached; MAP_SHARED of a FUSE file opened with FOPEN_DIRECT_IO is ENODEV; pages past EOF after a truncate stay mapped; a packet socket maps its PACKET_RX_RING");
        10 mprotect(addr: UserAddr, len: u64, prot: Flags) => mem::mprotect, Full;
        11 munmap(addr: UserAddr, len: u64) => mem::munmap, Full;
        12 brk(addr: UserAddr) => mem::brk, Full;
        13 rt_sigaction(sig: i32, act: UserAddr, oact: UserAddr, sigsetsize: usize) => signal::rt_sigaction, Full;
        14 rt_sigprocmask(how: i32, set: UserAddr, oset: UserAddr, sigsetsize: usize) => signal::rt_sigprocmask, Full;
        15 rt_sigreturn() => signal::rt_sigreturn, Full;
        16 ioctl(fd: Fd, cmd: Flags, arg: u64) => fd::ioctl, Partial("host terminals: TCGETS, TCSETS*, TIOCGWINSZ, TIOCSWINSZ; a container terminal also TIOCGPGRP, TIOCSPGRP, TIOCGSID, TIOCSCTTY, TIOCNOTTY; FIOCLEX/FIONCLEX/FIONBIO/FIOASYNC; FIONREAD on pipes and sockets; FIOSETOWN/FIOGETOWN/SIOCSPGRP/SIOCGPGRP on sockets; the netdevice SIOCGIF* queries and SIOCSIFFLAGS (TUN/TAP links' IFF_UP) on sockets; TUNSETIFF, TUNGETIFF, TUNSETPERSIST, TUNGETFEATURES on /dev/net/tun");
        17 pread64(fd: Fd, buf: UserAddr, count: usize, off: i64) => fd::pread64, Full;
        18 pwrite64(fd: Fd, buf: UserAddr, count: usize, off: i64) => fd::pwrite64, Full;
        19 readv(fd: Fd, iov: UserAddr, iovcnt: i32) => fd::readv, Full;
        20 writev(fd: Fd, iov: UserAddr, iovcnt: i32) => fd::writev, Full;
        21 access(path: PathArg, mode: i32) => path::access, Full;
        22 pipe(fds: UserAddr) => pipe::pipe, Full;
        23 select(nfds: i32, readfds: UserAddr, writefds: UserAddr, exceptfds: UserAddr, timeout: UserAddr) => poll::select, Full;
        24 sched_yield() => sched::sched_yield, Full;
        25 mremap(old: UserAddr, old_len: u64, new_len: u64, flags: Flags, new_addr: UserAddr) => mem::mremap, Partial("growing a shared anonymous mapping backs the new part with new shared pages (Linux: SIGBUS past the mapping's object), and shrinking one drops its tail pages");
        26 msync(addr: UserAddr, len: u64, flags: Flags) => mem::msync, Full;
        27 mincore(addr: UserAddr, len: u64, vec: UserAddr) => mem::mincore, Partial("a page counts as resident once this address space has memory for it: a fault populates up to 2 MiB around the page touched, and file pages cached for other processes count only after a fault here");
        28 madvise(addr: UserAddr, len: u64, advice: i32) => mem::madvise, Partial("DONTNEED/FREE release memory, DONTFORK/WIPEONFORK shape fork children; NORMAL, RANDOM, SEQUENTIAL, WILLNEED, (UN)MERGEABLE, (NO)HUGEPAGE and DONTDUMP/DODUMP are hints; COLD, PAGEOUT, REMOVE, POPULATE_READ/WRITE, COLLAPSE and HWPOISON are EINVAL");
        29 shmget(key: i32, size: usize, flags: i32) => ipc::shmget, Full;
        30 shmat(id: i32, addr: UserAddr, flags: i32) => ipc::shmat, Full;
        31 shmctl(id: i32, cmd: i32, buf: UserAddr) => ipc::shmctl, Full;
        32 dup(fd: Fd) => fd::dup, Full;
        33 dup2(old: Fd, new: Fd) => fd::dup2, Full;
        34 pause() => signal::pause, Full;
        35 nanosleep(req: UserAddr, rem: UserAddr) => time::nanosleep, Full;
        36 getitimer(which: i32, cur: UserAddr) => timer::getitimer, Partial("ITIMER_VIRTUAL and ITIMER_PROF are checked on a 10 ms tick, against time in the application counted as wall time");
        37 alarm(seconds: u32) => timer::alarm, Full;
        38 setitimer(which: i32, new: UserAddr, old: UserAddr) => timer::setitimer, Partial("ITIMER_VIRTUAL and ITIMER_PROF are checked on a 10 ms tick, against time in the application counted as wall time");
        39 getpid() => process::getpid, Full;
        40 sendfile(out_fd: Fd, in_fd: Fd, offset: UserAddr, count: usize) => splice::sendfile, Partial("data moves through a 64 KiB sentry buffer; a stream source's bytes that the destination refused are lost");
        41 socket(domain: i32, ty: i32, protocol: i32) => socket::socket, Partial("AF_UNIX; AF_INET and AF_INET6 TCP, UDP, ICMP echo and SOCK_RAW (CAP_NET_RAW) on the sentry's own stack (loopback; the pod's link with --network sandbox) or as host sockets (--network host); AF_PACKET SOCK_RAW and SOCK_DGRAM on the sentry's links (PACKET_RX_RING with TPACKET_V1 and V2; no filters nor TX rings); AF_NETLINK NETLINK_ROUTE (dumps; RTM_NEWADDR/RTM_DELADDR on the loopback and TUN/TAP links, RTM_NEWLINK/RTM_SETLINK flags of TUN/TAP links; no notifications), NETLINK_NETFILTER (an nftables ruleset that stays empty: additions EOPNOTSUPP) and NETLINK_KOBJECT_UEVENT (no events); other families EAFNOSUPPORT");
        42 connect(fd: Fd, addr: UserAddr, len: u32) => socket::connect, Full;
        43 accept(fd: Fd, addr: UserAddr, lenp: UserAddr) => socket::accept, Full;
        44 sendto(fd: Fd, buf: UserAddr, len: usize, flags: i32, addr: UserAddr, alen: u32) => socket::sendto, Partial("no MSG_OOB");
        45 recvfrom(fd: Fd, buf: UserAddr, len: usize, flags: i32, addr: UserAddr, lenp: UserAddr) => socket::recvfrom, Partial("no MSG_OOB");
        46 sendmsg(fd: Fd, msg: UserAddr, flags: i32) => socket::sendmsg, Partial("SCM_RIGHTS and SCM_CREDENTIALS; on UDP inside the sandbox IP_TTL, IP_TOS, IP_PKTINFO, IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_PKTINFO; no MSG_OOB");
        47 recvmsg(fd: Fd, msg: UserAddr, flags: i32) => socket::recvmsg, Partial("SCM_RIGHTS and SCM_CREDENTIALS; no MSG_OOB or MSG_ERRQUEUE; UDP: SO_TIMESTAMP(NS), IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR, IPV6_PKTINFO/HOPLIMIT/TCLASS/ORIGDSTADDR for datagrams sent inside the sandbox");
        48 shutdown(fd: Fd, how: i32) => socket::shutdown, Full;
        49 bind(fd: Fd, addr: UserAddr, len: u32) => socket::bind, Partial("AF_UNIX paths on host volumes are EPERM; AF_INET: the stack's own addresses, every address of a network on lo (all of 127.0.0.0/8) and the wildcard (others EADDRNOTAVAIL); SO_REUSEADDR and SO_REUSEPORT share a port as in Linux");
        50 listen(fd: Fd, backlog: i32) => socket::listen, Partial("AF_INET backlog capped at 16 pending connections");
        51 getsockname(fd: Fd, addr: UserAddr, lenp: UserAddr) => socket::getsockname, Full;
        52 getpeername(fd: Fd, addr: UserAddr, lenp: UserAddr) => socket::getpeername, Full;
        53 socketpair(domain: i32, ty: i32, protocol: i32, sv: UserAddr) => socket::socketpair, Partial("AF_UNIX only");
        54 setsockopt(fd: Fd, level: i32, name: i32, val: UserAddr, len: u32) => socket::setsockopt, Partial("SO_PASSCRED, SO_SNDBUF/SO_RCVBUF on AF_UNIX; on AF_INET TCP: SO_REUSEADDR/REUSEPORT, SO_KEEPALIVE with TCP_KEEP*, SO_LINGER, SO_RCVLOWAT, TCP_NODELAY, TCP_CORK, TCP_INQ, TCP_SYNCNT, TCP_USER_TIMEOUT, IP_MTU_DISCOVER take effect, others ENOPROTOOPT; SO_ATTACH_FILTER/SO_DETACH_FILTER (classic BPF) on TCP and UDP; SO_BINDTODEVICE/SO_BINDTOIFINDEX (TCP and UDP); UDP: the multicast options, IP_MTU_DISCOVER and the receive control-message flags take effect, unknown SOL_SOCKET options ENOPROTOOPT; other IPPROTO_IP, IPPROTO_IPV6 and IPPROTO_UDP options are recorded only");
        55 getsockopt(fd: Fd, level: i32, name: i32, val: UserAddr, lenp: UserAddr) => socket::getsockopt, Partial("SOL_SOCKET; for AF_INET also IPPROTO_IP, IPPROTO_TCP and IPPROTO_UDP (recorded values)");
        56 clone(flags: Flags, stack: UserAddr, parent_tid: UserAddr, child_tid: UserAddr, tls: u64) => process::clone, Partial("new PID, user, UTS, IPC, network and cgroup namespaces, not mount or time ones (EPERM); CLONE_PIDFD only through clone3 (EINVAL here); CLONE_SIGHAND without CLONE_THREAD copies dispositions");
        57 fork() => process::fork, Full;
        58 vfork() => process::vfork, Full;
        59 execve(path: PathArg, argv: UserAddr, envp: UserAddr) => process::execve, Partial("ELF images (static, static-PIE, PT_INTERP) and `#!` scripts up to 5 levels deep, looked up through the sandbox's filesystem; ETXTBSY for a program open for writing (and for opening a running program for writing), no 32-bit or binfmt_misc images (ENOEXEC)");
        60 exit(code: i32) => process::exit, Full;
        61 wait4(pid: i32, status: UserAddr, options: i32, rusage: UserAddr) => process::wait4, Partial("rusage has CPU times and a sampled ru_maxrss only; user time is wall time in the application");
        62 kill(pid: i32, sig: i32) => signal::kill, Full;
        63 uname(buf: UserAddr) => ns::uname, Full;
        64 semget(key: i32, nsems: i32, flags: i32) => ipc::semget, Full;
        65 semop(id: i32, sops: UserAddr, nsops: usize) => ipc::semop, Full;
        66 semctl(id: i32, semnum: i32, cmd: i32, arg: u64) => ipc::semctl, Full;
        67 shmdt(addr: UserAddr) => ipc::shmdt, Full;
        68 msgget(key: i32, flags: i32) => ipc::msgget, Full;
        69 msgsnd(id: i32, msgp: UserAddr, size: i64, flags: i32) => ipc::msgsnd, Full;
        70 msgrcv(id: i32, msgp: UserAddr, size: i64, typ: i64, flags: i32) => ipc::msgrcv, Full;
        71 msgctl(id: i32, cmd: i32, buf: UserAddr) => ipc::msgctl, Full;
        72 fcntl(fd: Fd, cmd: i32, arg: u64) => fd::fcntl, Partial("F_DUPFD(_CLOEXEC), F_GETFD/F_SETFD, F_GETFL/F_SETFL (O_ASYNC signals on sockets, pipes, ptys, tun and inotify), F_SETOWN(_EX)/F_GETOWN(_EX), F_SETSIG/F_GETSIG, F_GETPIPE_SZ/F_SETPIPE_SZ, F_ADD_SEALS/F_GET_SEALS, record and OFD locks (no EDEADLK; POSIX locks are dropped by exit and by any close of an fd of the file: close(2), dup2/dup3 over it, close_range, close-on-exec)");
        73 flock(fd: Fd, op: i32) => lock::flock, Full;
        74 fsync(fd: Fd) => sync::fsync, Full;
        75 fdatasync(fd: Fd) => sync::fdatasync, Full;
        76 truncate(path: PathArg, len: i64) => attr::truncate, Full;
        77 ftruncate(fd: Fd, len: i64) => attr::ftruncate, Full;
        79 getcwd(buf: UserAddr, size: usize) => dir::getcwd, Full;
        80 chdir(path: PathArg) => dir::chdir, Full;
        81 fchdir(fd: Fd) => dir::fchdir, Full;
        82 rename(old: PathArg, new: PathArg) => path::rename, Partial("directories present in the lower layer are EXDEV, as overlayfs");
        83 mkdir(path: PathArg, mode: u32) => path::mkdir, Full;
        84 rmdir(path: PathArg) => path::rmdir, Full;
        85 creat(path: PathArg, mode: u32) => path::creat, Full;
        86 link(old: PathArg, new: PathArg) => path::link, Full;
        87 unlink(path: PathArg) => path::unlink, Full;
        88 symlink(target: PathArg, path: PathArg) => path::symlink, Full;
        89 readlink(path: PathArg, buf: UserAddr, size: i32) => path::readlink, Full;
        90 chmod(path: PathArg, mode: u32) => attr::chmod, Full;
        91 fchmod(fd: Fd, mode: u32) => attr::fchmod, Full;
        92 chown(path: PathArg, uid: u32, gid: u32) => attr::chown, Full;
        93 fchown(fd: Fd, uid: u32, gid: u32) => attr::fchown, Full;
        94 lchown(path: PathArg, uid: u32, gid: u32) => attr::lchown, Full;
        95 umask(mask: u32) => attr::umask, Full;
        96 gettimeofday(tv: UserAddr, tz: UserAddr) => time::gettimeofday, Full;
        97 getrlimit(resource: u32, rlim: UserAddr) => process::getrlimit, Full;
        98 getrusage(who: i32, usage: UserAddr) => process::getrusage, Partial("CPU times and a sampled ru_maxrss only; user time is wall time in the application");
        99 sysinfo(info: UserAddr) => info::sysinfo, Full;
        100 times(buf: UserAddr) => process::times, Partial("user time is wall time in the application");
        101 ptrace(request: i64, pid: i32, addr: UserAddr, data: u64) => ptrace::ptrace, Partial("between tasks of the sandbox; no hardware breakpoints (DR7 stays disabled), no PTRACE_O_TRACESECCOMP or PTRACE_PEEKSIGINFO, segment selectors are not writable; any thread of the tracing process may make requests");
        102 getuid() => creds::getuid, Full;
        103 syslog(action: i32, buf: UserAddr, len: i32) => info::syslog, Partial("the sandbox's kernel log is empty");
        104 getgid() => creds::getgid, Full;
        105 setuid(uid: u32) => creds::setuid, Full;
        106 setgid(gid: u32) => creds::setgid, Full;
        107 geteuid() => creds::geteuid, Full;
        108 getegid() => creds::getegid, Full;
        109 setpgid(pid: i32, pgid: i32) => process::setpgid, Full;
        110 getppid() => process::getppid, Full;
        111 getpgrp() => process::getpgrp, Full;
        112 setsid() => process::setsid, Full;
        113 setreuid(ruid: u32, euid: u32) => creds::setreuid, Full;
        114 setregid(rgid: u32, egid: u32) => creds::setregid, Full;
        115 getgroups(size: i32, list: UserAddr) => creds::getgroups, Full;
        116 setgroups(size: i32, list: UserAddr) => creds::setgroups, Full;
        117 setresuid(ruid: u32, euid: u32, suid: u32) => creds::setresuid, Full;
        118 getresuid(ruid: UserAddr, euid: UserAddr, suid: UserAddr) => creds::getresuid, Full;
        119 setresgid(rgid: u32, egid: u32, sgid: u32) => creds::setresgid, Full;
        120 getresgid(rgid: UserAddr, egid: UserAddr, sgid: UserAddr) => creds::getresgid, Full;
        121 getpgid(pid: i32) => process::getpgid, Full;
        122 setfsuid(fsuid: u32) => creds::setfsuid, Partial("file access checks and new files' owners use it; FUSE requests, sockets' and memfds' owners still carry the effective UID");
        123 setfsgid(fsgid: u32) => creds::setfsgid, Partial("as setfsuid: FUSE requests, sockets' and memfds' owners still carry the effective GID");
        124 getsid(pid: i32) => process::getsid, Full;
        125 capget(hdr: UserAddr, data: UserAddr) => creds::capget, Full;
        126 capset(hdr: UserAddr, data: UserAddr) => creds::capset, Full;
        127 rt_sigpending(set: UserAddr, sigsetsize: usize) => signal::rt_sigpending, Full;
        128 rt_sigtimedwait(set: UserAddr, info: UserAddr, timeout: UserAddr, sigsetsize: usize) => signal::rt_sigtimedwait, Full;
        129 rt_sigqueueinfo(tgid: i32, sig: i32, info: UserAddr) => signal::rt_sigqueueinfo, Full;
        130 rt_sigsuspend(mask: UserAddr, sigsetsize: usize) => signal::rt_sigsuspend, Full;
        131 sigaltstack(ss: UserAddr, old: UserAddr) => signal::sigaltstack, Full;
        135 personality(persona: u64) => process::personality, Partial("execution domains are recorded; ADDR_NO_RANDOMIZE holds always (no layout randomization); READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, UNAME26, the other behaviour flags and PER_LINUX32 are EINVAL");
        133 mknod(path: PathArg, mode: u32, dev: u64) => path::mknod, Partial("regular files, FIFOs, sockets and device nodes (with CAP_MKNOD; character devices 1:3, 1:5, 1:7, 1:8, 1:9, 5:0 and 10:229 open as the sentry's devices, other numbers ENXIO); not on host volumes (EPERM)");
        137 statfs(path: PathArg, buf: UserAddr) => stat::statfs, Full;
        138 fstatfs(fd: Fd, buf: UserAddr) => stat::fstatfs, Full;
        153 vhangup() => process::vhangup, Partial("the session loses its controlling terminal and its leader and foreground group get SIGHUP and SIGCONT, as Linux; descriptors open on the terminal keep working (Linux: hung-up files, reads at end of file, writes EIO)");
        136 ustat(dev: u32, buf: UserAddr) => stat::ustat, Partial("looks for the device among the mounts of the caller's mount namespace (Linux: every mounted filesystem)");
        139 sysfs(option: i32, arg1: u64, arg2: u64) => info::sysfs, Full;
        140 getpriority(which: i32, who: i32) => sched::getpriority, Partial("recorded per thread; the host schedules the sentry's threads");
        141 setpriority(which: i32, who: i32, niceval: i32) => sched::setpriority, Partial("recorded per thread; the host schedules the sentry's threads");
        142 sched_setparam(pid: i32, param: UserAddr) => sched::sched_setparam, Partial("recorded per thread; the host schedules the sentry's threads");
        143 sched_getparam(pid: i32, param: UserAddr) => sched::sched_getparam, Full;
        144 sched_setscheduler(pid: i32, policy: i32, param: UserAddr) => sched::sched_setscheduler, Partial("OTHER, BATCH, IDLE, FIFO and RR recorded per thread; the host schedules the sentry's threads");
        145 sched_getscheduler(pid: i32) => sched::sched_getscheduler, Full;
        146 sched_get_priority_max(policy: i32) => sched::sched_get_priority_max, Full;
        147 sched_get_priority_min(policy: i32) => sched::sched_get_priority_min, Full;
        149 mlock(addr: UserAddr, len: usize) => mem::mlock, Full;
        150 munlock(addr: UserAddr, len: usize) => mem::munlock, Full;
        151 mlockall(flags: i32) => mem::mlockall, Full;
        152 munlockall() => mem::munlockall, Full;
        148 sched_rr_get_interval(pid: i32, tp: UserAddr) => sched::sched_rr_get_interval, Full;
        157 prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) => process::prctl, Partial("names, parent-death signal, subreaper, no_new_privs, seccomp, dumpable (not yet shown in /proc ownership), capability bounding and ambient sets, keepcaps, securebits; PR_SET_MM is EPERM without CAP_SYS_RESOURCE and EINVAL with it, as are other options");
        158 arch_prctl(code: i32, addr: u64) => process::arch_prctl, Partial("ARCH_SET_FS/GET_FS/SET_GS/GET_GS");
        159 adjtimex(buf: UserAddr) => time::adjtimex, Partial("reads an unsynchronized clock; changes are EPERM (no CAP_SYS_TIME in a sandbox)");
        160 setrlimit(resource: u32, rlim: UserAddr) => process::setrlimit, Full;
        161 chroot(path: PathArg) => dir::chroot, Full;
        162 sync() => sync::sync, Full;
        164 settimeofday(tv: UserAddr, tz: UserAddr) => time::settimeofday, Partial("EPERM after the argument checks (no CAP_SYS_TIME in a sandbox)");
        165 mount(source: UserAddr, target: PathArg, fstype: UserAddr, flags: Flags, data: UserAddr) => mount::mount, Partial("tmpfs (size=, nr_blocks=, nr_inodes=, mode=, uid=, gid= with their limits), proc, devpts, overlay, cgroup2 (nsdelegate), mqueue, fuse and fuse.NAME (fd=, rootmode=, user_id=, group_id=, default_permissions, allow_other, max_read) and bind mounts in the caller's mount namespace; remount changes tmpfs limits and sets read-only and the nosuid/nodev/noexec/atime flags (noexec holds for execve, mmap and mprotect); MS_MOVE; MS_SHARED, MS_SLAVE and MS_PRIVATE with peer groups and propagation of mounts, recursive binds and unmounts through peers and slaves across mount namespaces, fs.mount-max per namespace (ENOSPC), MS_UNBINDABLE as private; not over /; cgroup v1 is ENODEV (EBUSY for a controller the v2 hierarchy uses), as are sysfs and other types");
        166 umount2(target: PathArg, flags: i32) => mount::umount2, Partial("MNT_EXPIRE is EAGAIN");
        170 sethostname(name: UserAddr, len: i32) => ns::sethostname, Full;
        171 setdomainname(name: UserAddr, len: i32) => ns::setdomainname, Full;
        428 open_tree(dirfd: Fd, path: PathArg, flags: Flags) => fsmount::open_tree, Partial("OPEN_TREE_CLONE and AT_RECURSIVE make a detached copy; unbindable mounts are cloned too");
        429 move_mount(from_dirfd: Fd, from_path: PathArg, to_dirfd: Fd, to_path: PathArg, flags: u32) => fsmount::move_mount, Partial("attaches a detached tree (onto an attached or a detached place) or moves an attached mount as MS_MOVE; descriptors of an attached tree keep their old path for mount crossings");
        430 fsopen(fsname: UserAddr, flags: u32) => fsmount::fsopen, Partial("tmpfs, proc, devpts, overlay, cgroup2 and mqueue, as mount(2)");
        431 fsconfig(fd: Fd, cmd: u32, key: UserAddr, value: UserAddr, aux: i32) => fsmount::fsconfig, Partial("flag and string parameters; binary, path and fd parameters are EINVAL; FSCONFIG_CMD_RECONFIGURE changes a tmpfs's limits only");
        432 fsmount(fd: Fd, flags: u32, attr_flags: u32) => fsmount::fsmount, Partial("no MOUNT_ATTR_IDMAP");
        442 mount_setattr(dirfd: Fd, path: PathArg, flags: Flags, uattr: UserAddr, size: usize) => fsmount::mount_setattr, Partial("read-only, nosuid, nodev, noexec, atime modes and propagation; no MOUNT_ATTR_IDMAP or MOUNT_ATTR_NOSYMFOLLOW (EINVAL)");
        155 pivot_root(new_root: PathArg, put_old: PathArg) => mount::pivot_root, Partial("from a chroot onto a mount (the namespace's root mount has no parent: EINVAL, as Linux's); refused out of shared mounts; no locked mounts");
        186 gettid() => process::gettid, Full;
        187 readahead(fd: Fd, offset: i64, count: usize) => fd::readahead, Partial("checks the file; pages are read when the application reads them");
        188 setxattr(path: PathArg, name: UserAddr, value: UserAddr, size: usize, flags: Flags) => xattr::set, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        189 lsetxattr(path: NoFollowPath, name: UserAddr, value: UserAddr, size: usize, flags: Flags) => xattr::set, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        190 fsetxattr(fd: Fd, name: UserAddr, value: UserAddr, size: usize, flags: Flags) => xattr::set, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        191 getxattr(path: PathArg, name: UserAddr, value: UserAddr, size: usize) => xattr::get, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        192 lgetxattr(path: NoFollowPath, name: UserAddr, value: UserAddr, size: usize) => xattr::get, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        193 fgetxattr(fd: Fd, name: UserAddr, value: UserAddr, size: usize) => xattr::get, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        194 listxattr(path: PathArg, list: UserAddr, size: usize) => xattr::list, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        195 llistxattr(path: NoFollowPath, list: UserAddr, size: usize) => xattr::list, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        196 flistxattr(fd: Fd, list: UserAddr, size: usize) => xattr::list, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        197 removexattr(path: PathArg, name: UserAddr) => xattr::remove, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        198 lremovexattr(path: NoFollowPath, name: UserAddr) => xattr::remove, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        199 fremovexattr(fd: Fd, name: UserAddr) => xattr::remove, Partial("tmpfs and the overlay (in its upper layer, copying a lower file up) store user., trusted., security. and POSIX ACL attributes, a FUSE server its own; host volumes, /proc and the other synthetic files have none (EOPNOTSUPP)");
        200 tkill(tid: i32, sig: i32) => signal::tkill, Full;
        201 time(tloc: UserAddr) => time::time, Full;
        202 futex(uaddr: UserAddr, op: i32, val: u32, timeout: UserAddr, uaddr2: UserAddr, val3: u32) => futex::futex, Partial("PI futexes without priority boosting (the sentry has no real-time scheduling); no WAIT_REQUEUE_PI or CMP_REQUEUE_PI (ENOSYS); WAKE_OP is not atomic against application stores");
        203 sched_setaffinity(pid: i32, len: usize, mask: UserAddr) => sched::sched_setaffinity, Partial("recorded per thread within the sandbox's CPUs; the host places the sentry's threads");
        204 sched_getaffinity(pid: i32, len: usize, mask: UserAddr) => sched::sched_getaffinity, Full;
        206 io_setup(nr: u32, ctxp: UserAddr) => aio::io_setup, Partial("requests run synchronously at submission; no IOCB_FLAG_RESFD");
        207 io_destroy(ctx: u64) => aio::io_destroy, Full;
        208 io_getevents(ctx: u64, min_nr: i64, nr: i64, events: UserAddr, timeout: UserAddr) => aio::io_getevents, Full;
        209 io_submit(ctx: u64, nr: i64, iocbpp: UserAddr) => aio::io_submit, Partial("PREAD, PWRITE, PREADV, PWRITEV, FSYNC, FDSYNC, done synchronously; IOCB_CMD_POLL is EINVAL");
        210 io_cancel(ctx: u64, iocb: UserAddr, result: UserAddr) => aio::io_cancel, Partial("nothing is ever in flight: EINVAL");
        333 io_pgetevents(ctx: u64, min_nr: i64, nr: i64, events: UserAddr, timeout: UserAddr, usig: UserAddr) => aio::io_pgetevents, Full;
        213 epoll_create(size: i32) => poll::epoll_create, Full;
        78 getdents(fd: Fd, dirp: UserAddr, count: u32) => dir::getdents, Full;
        217 getdents64(fd: Fd, dirp: UserAddr, count: u32) => dir::getdents64, Full;
        218 set_tid_address(tidptr: UserAddr) => process::set_tid_address, Full;
        219 restart_syscall() => signal::restart_syscall, Full;
        220 semtimedop(id: i32, sops: UserAddr, nsops: usize, timeout: UserAddr) => ipc::semtimedop, Full;
        221 fadvise64(fd: Fd, offset: i64, len: i64, advice: i32) => fd::fadvise64, Partial("advice is checked and ignored");
        222 timer_create(clock: i32, sevp: UserAddr, idp: UserAddr) => timer::timer_create, Partial("CPU-time clocks expire by the sentry's CPU accounting, looked at every 10 ms tick (Linux: every host tick); SIGEV_THREAD is signalled like SIGEV_SIGNAL (glibc uses SIGEV_THREAD_ID)");
        223 timer_settime(id: i32, flags: i32, new: UserAddr, old: UserAddr) => timer::timer_settime, Full;
        224 timer_gettime(id: i32, cur: UserAddr) => timer::timer_gettime, Full;
        225 timer_getoverrun(id: i32) => timer::timer_getoverrun, Partial("overruns of the last expiration, also while its signal is still pending");
        226 timer_delete(id: i32) => timer::timer_delete, Full;
        227 clock_settime(clock: i32, tp: UserAddr) => time::clock_settime, Partial("EPERM after the argument checks (no CAP_SYS_TIME in a sandbox)");
        228 clock_gettime(clock: i32, tp: UserAddr) => time::clock_gettime, Partial("CPU-time clocks count user time as wall time in the application");
        229 clock_getres(clock: i32, tp: UserAddr) => time::clock_getres, Full;
        230 clock_nanosleep(clock: i32, flags: i32, req: UserAddr, rem: UserAddr) => time::clock_nanosleep, Partial("CPU-time clocks are refused (EINVAL)");
        231 exit_group(code: i32) => process::exit_group, Full;
        232 epoll_wait(epfd: Fd, events: UserAddr, maxevents: i32, timeout: i32) => poll::epoll_wait, Partial("EPOLLEXCLUSIVE ignored; edge-triggered host fds re-arm only when a readiness bit newly appears");
        233 epoll_ctl(epfd: Fd, op: i32, fd: Fd, event: UserAddr) => poll::epoll_ctl, Full;
        234 tgkill(tgid: i32, tid: i32, sig: i32) => signal::tgkill, Full;
        132 utime(path: PathArg, times: UserAddr) => attr::utime, Full;
        235 utimes(path: PathArg, times: UserAddr) => attr::utimes, Full;
        237 mbind(addr: UserAddr, len: u64, mode: i32, nmask: UserAddr, maxnode: u64, flags: u32) => mempolicy::mbind, Partial("one memory node: policies are checked and recorded; nothing moves");
        238 set_mempolicy(mode: i32, nmask: UserAddr, maxnode: u64) => mempolicy::set_mempolicy, Partial("one memory node: policies are checked and recorded");
        239 get_mempolicy(policy: UserAddr, nmask: UserAddr, maxnode: u64, addr: UserAddr, flags: u64) => mempolicy::get_mempolicy, Full;
        240 mq_open(name: UserAddr, oflag: Flags, mode: u32, attr: UserAddr) => mq::mq_open, Partial("RLIMIT_MSGQUEUE is not charged; a queue opened with open(2) on the mqueue file system is its status file, not a queue descriptor");
        241 mq_unlink(name: UserAddr) => mq::mq_unlink, Full;
        242 mq_timedsend(fd: Fd, msg: UserAddr, len: usize, prio: u32, timeout: UserAddr) => mq::mq_timedsend, Full;
        243 mq_timedreceive(fd: Fd, msg: UserAddr, len: usize, prio: UserAddr, timeout: UserAddr) => mq::mq_timedreceive, Full;
        244 mq_notify(fd: Fd, sevp: UserAddr) => mq::mq_notify, Partial("SIGEV_NONE and SIGEV_SIGNAL; SIGEV_THREAD is EINVAL");
        245 mq_getsetattr(fd: Fd, new: UserAddr, old: UserAddr) => mq::mq_getsetattr, Full;
        247 waitid(idtype: i32, id: i32, infop: UserAddr, options: i32, rusage: UserAddr) => process::waitid, Partial("rusage as wait4");
        250 keyctl(op: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) => keys::keyctl, Partial("session keyrings: GET_KEYRING_ID, JOIN_SESSION_KEYRING, SETPERM, DESCRIBE; other operations and keyrings are EOPNOTSUPP");
        251 ioprio_set(which: i32, who: i32, ioprio: i32) => sched::ioprio_set, Partial("recorded per thread; the host schedules the sentry's I/O");
        252 ioprio_get(which: i32, who: i32) => sched::ioprio_get, Full;
        253 inotify_init() => inotify::inotify_init, Full;
        254 inotify_add_watch(fd: Fd, path: PathArg, mask: u32) => inotify::inotify_add_watch, Partial("only changes made in the sandbox are seen, not host-side changes to host files; sendfile/splice/copy_file_range and writes through mappings give no IN_MODIFY/IN_ACCESS; a watch on a lower-layer file stops seeing events once it is copied up (its inode number changes)");
        255 inotify_rm_watch(fd: Fd, wd: i32) => inotify::inotify_rm_watch, Full;
        257 openat(dirfd: Fd, path: PathArg, flags: Flags, mode: u32) => path::openat, Partial("O_TMPFILE on tmpfs and the overlay (in its upper layer); host volumes are EOPNOTSUPP");
        258 mkdirat(dirfd: Fd, path: PathArg, mode: u32) => path::mkdirat, Full;
        259 mknodat(dirfd: Fd, path: PathArg, mode: u32, dev: u64) => path::mknodat, Partial("regular files, FIFOs, sockets and device nodes (with CAP_MKNOD; character devices 1:3, 1:5, 1:7, 1:8, 1:9, 5:0 and 10:229 open as the sentry's devices, other numbers ENXIO); not on host volumes (EPERM)");
        260 fchownat(dirfd: Fd, path: PathArg, uid: u32, gid: u32, flags: Flags) => attr::fchownat, Full;
        261 futimesat(dirfd: Fd, path: PathArg, times: UserAddr) => attr::futimesat, Full;
        262 newfstatat(dirfd: Fd, path: PathArg, statbuf: UserAddr, flags: Flags) => stat::newfstatat, Full;
        263 unlinkat(dirfd: Fd, path: PathArg, flags: Flags) => path::unlinkat, Full;
        264 renameat(olddirfd: Fd, old: PathArg, newdirfd: Fd, new: PathArg) => path::renameat, Partial("directories present in the lower layer are EXDEV, as overlayfs");
        265 linkat(olddirfd: Fd, old: PathArg, newdirfd: Fd, new: PathArg, flags: Flags) => path::linkat, Full;
        266 symlinkat(target: PathArg, dirfd: Fd, path: PathArg) => path::symlinkat, Full;
        267 readlinkat(dirfd: Fd, path: PathArg, buf: UserAddr, size: i32) => path::readlinkat, Full;
        268 fchmodat(dirfd: Fd, path: PathArg, mode: u32) => attr::fchmodat, Full;
        269 faccessat(dirfd: Fd, path: PathArg, mode: i32) => path::faccessat, Full;
        270 pselect6(nfds: i32, readfds: UserAddr, writefds: UserAddr, exceptfds: UserAddr, timeout: UserAddr, sigmask: UserAddr) => poll::pselect6, Full;
        271 ppoll(fds: UserAddr, nfds: u32, tsp: UserAddr, sigmask: UserAddr, sigsetsize: usize) => poll::ppoll, Full;
        272 unshare(flags: Flags) => ns::unshare, Partial("CLONE_FILES, CLONE_FS, new mount (a copy: its shared mounts stay peers of the caller's, or become slaves when a new user namespace owns it), user (IDs translated by the get/set*id calls, /proc/[pid]/uid_map and status, stat and the chown calls; CAP_CHOWN, CAP_FOWNER, CAP_FSETID and CAP_DAC_* count over files whose owner and group the namespace maps), UTS, IPC and network (loopback only, up at once) namespaces, cgroup namespaces rooted at the caller's cgroup, a PID namespace for the caller's next children; thread, signal-handler and VM flags only when single-threaded; new time namespaces and CLONE_SYSVSEM are EINVAL");
        273 set_robust_list(head: UserAddr, len: usize) => process::set_robust_list, Full;
        274 get_robust_list(pid: i32, head: UserAddr, len: UserAddr) => process::get_robust_list, Partial("own thread only");
        275 splice(fd_in: Fd, off_in: UserAddr, fd_out: Fd, off_out: UserAddr, len: usize, flags: u32) => splice::splice, Partial("copies through a 64 KiB sentry buffer (SPLICE_F_MOVE and SPLICE_F_GIFT are hints)");
        276 tee(fd_in: Fd, fd_out: Fd, len: usize, flags: u32) => splice::tee, Full;
        277 sync_file_range(fd: Fd, offset: i64, nbytes: i64, flags: u32) => sync::sync_file_range, Full;
        278 vmsplice(fd: Fd, iov: UserAddr, nr_segs: usize, flags: u32) => splice::vmsplice, Partial("copies (SPLICE_F_GIFT is a hint); later changes to the memory do not reach the pipe");
        280 utimensat(dirfd: Fd, path: PathArg, times: UserAddr, flags: Flags) => attr::utimensat, Full;
        281 epoll_pwait(epfd: Fd, events: UserAddr, maxevents: i32, timeout: i32, sigmask: UserAddr, sigsetsize: usize) => poll::epoll_pwait, Partial("EPOLLEXCLUSIVE ignored; edge-triggered host fds re-arm only when a readiness bit newly appears");
        282 signalfd(fd: Fd, mask: UserAddr, size: usize) => signalfd::signalfd, Full;
        283 timerfd_create(clock: i32, flags: Flags) => timer::timerfd_create, Partial("TFD_TIMER_CANCEL_ON_SET is accepted; clock changes never cancel");
        284 eventfd(initval: u32) => pipe::eventfd, Full;
        285 fallocate(fd: Fd, mode: i32, offset: i64, len: i64) => attr::fallocate, Partial("mode 0 only");
        286 timerfd_settime(fd: Fd, flags: i32, new: UserAddr, old: UserAddr) => timer::timerfd_settime, Full;
        287 timerfd_gettime(fd: Fd, cur: UserAddr) => timer::timerfd_gettime, Full;
        288 accept4(fd: Fd, addr: UserAddr, lenp: UserAddr, flags: i32) => socket::accept4, Full;
        289 signalfd4(fd: Fd, mask: UserAddr, size: usize, flags: Flags) => signalfd::signalfd4, Partial("poll readiness follows the creating process's pending signals");
        290 eventfd2(initval: u32, flags: Flags) => pipe::eventfd2, Full;
        291 epoll_create1(flags: Flags) => poll::epoll_create1, Full;
        292 dup3(old: Fd, new: Fd, flags: Flags) => fd::dup3, Full;
        293 pipe2(fds: UserAddr, flags: Flags) => pipe::pipe2, Partial("O_DIRECT pipes are byte streams");
        294 inotify_init1(flags: Flags) => inotify::inotify_init1, Full;
        295 preadv(fd: Fd, iov: UserAddr, iovcnt: i32, pos_l: u64) => fd::preadv, Full;
        296 pwritev(fd: Fd, iov: UserAddr, iovcnt: i32, pos_l: u64) => fd::pwritev, Full;
        297 rt_tgsigqueueinfo(tgid: i32, tid: i32, sig: i32, info: UserAddr) => signal::rt_tgsigqueueinfo, Full;
        299 recvmmsg(fd: Fd, vec: UserAddr, vlen: u32, flags: i32, timeout: UserAddr) => socket::recvmmsg, Partial("as recvmsg in a loop; the timeout is checked after each message, as Linux does");
        302 prlimit64(pid: i32, resource: u32, new: UserAddr, old: UserAddr) => process::prlimit64, Full;
        305 clock_adjtime(clock: i32, buf: UserAddr) => time::clock_adjtime, Partial("CLOCK_REALTIME as adjtimex; other clocks EOPNOTSUPP");
        306 syncfs(fd: Fd) => sync::syncfs, Full;
        307 sendmmsg(fd: Fd, vec: UserAddr, vlen: u32, flags: i32) => socket::sendmmsg, Partial("as sendmsg in a loop");
        308 setns(fd: Fd, nstype: i32) => ns::setns, Partial("/proc/[pid]/ns files and pidfds; user, UTS, IPC, network, mount and cgroup namespaces; a PID namespace at or below the caller's becomes its children's (pid_for_children); the one time namespace (joining changes nothing)");
        309 getcpu(cpu: UserAddr, node: UserAddr) => sched::getcpu, Full;
        314 sched_setattr(pid: i32, attr: UserAddr, flags: u32) => sched::sched_setattr, Partial("no SCHED_DEADLINE (EINVAL) or utilization clamps (EOPNOTSUPP); recorded per thread");
        315 sched_getattr(pid: i32, attr: UserAddr, size: u32, flags: u32) => sched::sched_getattr, Full;
        316 renameat2(olddirfd: Fd, old: PathArg, newdirfd: Fd, new: PathArg, flags: Flags) => path::renameat2, Partial("RENAME_WHITEOUT is EINVAL; RENAME_EXCHANGE only on tmpfs and host volumes");
        318 getrandom(buf: UserAddr, len: usize, flags: Flags) => info::getrandom, Full;
        319 memfd_create(name: UserAddr, flags: u32) => pipe::memfd_create, Partial("no MFD_HUGETLB");
        322 execveat(dirfd: Fd, path: PathArg, argv: UserAddr, envp: UserAddr, flags: Flags) => process::execveat, Partial("as execve: paths from dirfd or the cwd, AT_EMPTY_PATH on any fd of a file (fexecve; O_PATH and memfd too), AT_SYMLINK_NOFOLLOW (ELOOP); a program named by an fd gets /dev/fd/N[/path] as AT_EXECFN and a script's path (ENOENT when the fd is close-on-exec)");
        325 mlock2(addr: UserAddr, len: usize, flags: u32) => mem::mlock2, Full;
        326 copy_file_range(fd_in: Fd, off_in: UserAddr, fd_out: Fd, off_out: UserAddr, len: usize, flags: u32) => splice::copy_file_range, Full;
        312 kcmp(pid1: i32, pid2: i32, ty: i32, idx1: u64, idx2: u64) => kcmp::kcmp, Partial("KCMP_IO takes every task's I/O context as its own (CLONE_IO is not tracked) and KCMP_SYSVSEM a process's undo list as its threads'; Linux also finds two tasks equal that have none yet");
        310 process_vm_readv(pid: i32, local: UserAddr, liovcnt: u64, remote: UserAddr, riovcnt: u64, flags: u64) => process_vm::process_vm_readv, Full;
        311 process_vm_writev(pid: i32, local: UserAddr, liovcnt: u64, remote: UserAddr, riovcnt: u64, flags: u64) => process_vm::process_vm_writev, Full;
        327 preadv2(fd: Fd, iov: UserAddr, iovcnt: i32, pos_l: u64, pos_h: u64, flags: u32) => fd::preadv2, Partial("RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOAPPEND; RWF_NOWAIT, RWF_APPEND and newer flags are EOPNOTSUPP");
        328 pwritev2(fd: Fd, iov: UserAddr, iovcnt: i32, pos_l: u64, pos_h: u64, flags: u32) => fd::pwritev2, Partial("RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOAPPEND; RWF_NOWAIT, RWF_APPEND and newer flags are EOPNOTSUPP");
        332 statx(dirfd: Fd, path: PathArg, flags: Flags, mask: u32, buf: UserAddr) => stat::statx, Full;
        424 pidfd_send_signal(fd: Fd, sig: i32, info: UserAddr, flags: u32) => pidfd::pidfd_send_signal, Partial("pidfds only (not /proc/[pid] directory fds, EBADF)");
        434 pidfd_open(pid: i32, flags: u32) => pidfd::pidfd_open, Partial("a non-leader thread without PIDFD_THREAD is EINVAL (the kernels before 6.15; ENOENT since); a checkpoint refuses PIDFD_THREAD pidfds");
        435 clone3(args: UserAddr, size: usize) => process::clone3, Partial("new PID, user, UTS, IPC, network and cgroup namespaces, not mount (EPERM) or time (EINVAL) ones; CLONE_PIDFD; CLONE_INTO_CGROUP; no set_tid");
        440 process_madvise(pidfd: Fd, vec: UserAddr, vlen: usize, advice: i32, flags: u32) => mem::process_madvise, Partial("another process takes MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED and MADV_COLLAPSE (permission checks as Linux), which change nothing the sandbox could show (no swap, no huge pages): ranges are checked and counted as advised; the caller's own process takes any advice madvise takes");
        451 cachestat(fd: Fd, range: UserAddr, cstat: UserAddr, flags: u32) => mem::cachestat, Partial("nr_cache counts a tmpfs file's (or memfd's) pages (a fault through a mapping fills the pages around the one touched, which then count) and the pages the sentry's page cache holds for a host file's mappings (not the host's own cache); dirty, writeback and evicted counts are always 0; other files report all zeros, as an uncached file");
        448 process_mrelease(pidfd: Fd, flags: u32) => pidfd::process_mrelease, Partial("an exiting process's memory is released by its exit itself: 0 at once; a running one is EINVAL, a zombie ESRCH");
        438 pidfd_getfd(fd: Fd, target_fd: i32, flags: u32) => pidfd::pidfd_getfd, Full;
        436 close_range(first: u32, last: u32, flags: Flags) => fd::close_range, Full;
        437 openat2(dirfd: Fd, path: PathArg, how: UserAddr, size: usize) => path::openat2, Partial("RESOLVE_NO_XDEV and RESOLVE_NO_MAGICLINKS are accepted but not enforced");
        317 seccomp(op: u32, flags: Flags, uargs: UserAddr) => seccomp::seccomp, Partial("no SECCOMP_RET_USER_NOTIF listeners, no tracer for SECCOMP_RET_TRACE (ENOSYS as without one)");
        439 faccessat2(dirfd: Fd, path: PathArg, mode: i32, flags: Flags) => path::faccessat2, Full;
        441 epoll_pwait2(epfd: Fd, events: UserAddr, maxevents: i32, timeout: UserAddr, sigmask: UserAddr, sigsetsize: usize) => poll::epoll_pwait2, Partial("EPOLLEXCLUSIVE ignored; edge-triggered host fds re-arm only when a readiness bit newly appears");
        454 futex_wake(uaddr: UserAddr, mask: u64, nr: i32, flags: u32) => futex::futex_wake, Partial("32-bit futexes only (EINVAL for other sizes, as Linux); no FUTEX2_NUMA or FUTEX2_MPOL (EINVAL)");
        455 futex_wait(uaddr: UserAddr, val: u64, mask: u64, flags: u32, timeout: UserAddr, clockid: i32) => futex::futex_wait, Partial("32-bit futexes only (EINVAL for other sizes, as Linux); no FUTEX2_NUMA or FUTEX2_MPOL (EINVAL)");
        449 futex_waitv(waiters: UserAddr, nr_futexes: u32, flags: u32, timeout: UserAddr, clockid: i32) => futex::futex_waitv, Partial("32-bit futexes only (EINVAL for other sizes, as Linux); no FUTEX2_NUMA or FUTEX2_MPOL (EINVAL)");
        456 futex_requeue(waiters: UserAddr, flags: u32, nr_wake: i32, nr_requeue: i32) => futex::futex_requeue, Partial("32-bit futexes only (EINVAL for other sizes, as Linux); no FUTEX2_NUMA or FUTEX2_MPOL (EINVAL)");
        444 landlock_create_ruleset(attr: UserAddr, size: usize, flags: u32) => landlock::landlock_create_ruleset, Partial("ABI 6 (no errata flag, an ABI 7 addition: EINVAL); the ruleset fd's /proc link and fdinfo do not name [landlock-ruleset]");
        445 landlock_add_rule(ruleset_fd: Fd, rule_type: u32, rule_attr: UserAddr, flags: u32) => landlock::landlock_add_rule, Full;
        446 landlock_restrict_self(ruleset_fd: Fd, flags: u32) => landlock::landlock_restrict_self, Partial("ABI 6: filesystem rights (crossing mounts as the sandbox's dentries do), TCP ports, abstract UNIX socket and signal scopes; no audit logging flags or TSYNC (ABI 7 and 8: EINVAL); not yet checked: O_TMPFILE opens, F_SETOWN signals, datagrams sent to an already connected abstract socket");
        452 fchmodat2(dirfd: Fd, path: PathArg, mode: u32, flags: Flags) => attr::fchmodat2, Full;
        324 membarrier(cmd: i32, flags: u32, cpu: i32) => membarrier::membarrier, Partial("the expedited commands are the host's global barrier (milliseconds, not microseconds); no SYNC_CORE or RSEQ variants nor GET_REGISTRATIONS (EINVAL)");
    }
    unsupported {
        334 rseq, "optional for glibc, which falls back without it";
        246 kexec_load, "never available in a sandbox";
        320 kexec_file_load, "never available in a sandbox";
        321 bpf, "never available in a sandbox";
        298 perf_event_open, "never available in a sandbox";
        169 reboot, "never available in a sandbox";
        175 init_module, "never available in a sandbox";
        313 finit_module, "never available in a sandbox";
        176 delete_module, "never available in a sandbox";
        167 swapon, "never available in a sandbox";
        168 swapoff, "never available in a sandbox";
        163 acct, "never available in a sandbox";
    }
}

fn index() -> &'static [Option<&'static SyscallDef>] {
    static INDEX: OnceLock<Vec<Option<&'static SyscallDef>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let max = TABLE.iter().map(|d| d.nr).max().unwrap_or(0) as usize;
        let mut v = vec![None; max + 1];
        for d in TABLE {
            v[d.nr as usize] = Some(d);
        }
        v
    })
}

/// The table row for `nr`, if the sentry knows it.
pub fn lookup(nr: u64) -> Option<&'static SyscallDef> {
    index().get(usize::try_from(nr).ok()?).copied().flatten()
}

/// The Linux name of `nr` (whether or not we implement it).
pub fn name(nr: u64) -> &'static str {
    match lookup(nr) {
        Some(d) => d.name,
        None => usize::try_from(nr)
            .ok()
            .and_then(syscalls::Sysno::new)
            .map_or("unknown", |s| s.name()),
    }
}

/// Every x86-64 system call with its support level, for `runsc-rs syscalls`.
pub fn inventory() -> Vec<(u64, &'static str, Support)> {
    syscalls::Sysno::iter()
        .map(|s| {
            let nr = s.id() as u64;
            match lookup(nr) {
                Some(d) => (nr, d.name, d.support),
                None => (nr, s.name(), Support::Unsupported("not implemented")),
            }
        })
        .collect()
}

/// Handles the system call the task just made and writes the result to `rax`.
pub fn dispatch(t: &mut Task) {
    let r = &t.cpu.regs;
    let nr = r.orig_rax;
    let args = [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9];
    if let Some(seen) = &t.kernel.seen_syscalls {
        seen.insert(nr);
    }
    let def = lookup(nr);
    let entry = if t.kernel.config.strace {
        Some(strace_entry(t, nr, def, &args))
    } else {
        None
    };
    let gated = seccomp::gate(t, nr, &args);
    crate::vfs::dcache::begin_call();
    let result = match (gated, def.and_then(|d| d.handler)) {
        (Some(verdict), _) => verdict,
        (None, Some(h)) => h(t, &args),
        (None, None) => {
            if t.kernel.first_unsupported(nr) {
                log::warn!(
                    "unsupported syscall {} ({nr}) from task {}: ENOSYS",
                    name(nr),
                    t.tid
                );
            }
            Err(Errno::ENOSYS)
        }
    };
    crate::vfs::dcache::end_call();
    if let Some(line) = entry {
        let res = match result {
            Ok(v) if v < 0x10000 => v.to_string(),
            Ok(v) => format!("{v:#x}"),
            Err(e) => format!("-1 {e:?} ({})", e.desc()),
        };
        eprintln!("{line} = {res}");
    }
    t.cpu.regs.rax = match result {
        Ok(v) => v,
        Err(e) => (-(e as i64)) as u64,
    };
}

fn strace_entry(t: &Task, nr: u64, def: Option<&SyscallDef>, args: &[u64; 6]) -> String {
    let shown: Vec<String> = match def {
        Some(d) if d.handler.is_some() => d
            .args
            .iter()
            .zip(args)
            .map(|(k, &v)| match k {
                ArgKind::Int => (v as i64).to_string(),
                ArgKind::Fd => (v as i32).to_string(),
                ArgKind::Hex | ArgKind::Ptr => format!("{v:#x}"),
                ArgKind::Path => match t.mm.read_cstring(UserAddr(v), PATH_MAX) {
                    Ok(s) => format!("{:?}", String::from_utf8_lossy(&s)),
                    Err(_) => format!("{v:#x}"),
                },
            })
            .collect(),
        _ => args.iter().map(|v| format!("{v:#x}")).collect(),
    };
    format!("[{:>4}] {}({})", t.tid, name(nr), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regrouping handlers rewrites many rows; each must still be the call its number is.
    #[test]
    fn each_row_is_the_linux_call_of_its_number_once() {
        let mut seen = std::collections::HashSet::new();
        for d in TABLE {
            assert!(seen.insert(d.nr), "{} ({}) appears twice", d.name, d.nr);
            let linux = syscalls::Sysno::new(d.nr as usize).map(|s| s.name());
            assert_eq!(linux, Some(d.name), "row {} is named {}", d.nr, d.name);
        }
    }

    /// The xattr handlers are generic over how the file is found; the row's argument type
    /// chooses it, so a path row typed `Fd` (or the reverse) would still compile.
    #[test]
    fn xattr_rows_find_their_file_as_linux_does() {
        for d in TABLE.iter().filter(|d| d.name.ends_with("xattr")) {
            let want = if d.name.starts_with('f') {
                ArgKind::Fd
            } else {
                ArgKind::Path
            };
            assert_eq!(d.args[0], want, "{}", d.name);
        }
        assert_eq!(
            TABLE.iter().filter(|d| d.name.ends_with("xattr")).count(),
            12
        );
    }
}
