//! The sandbox's seccomp allowlist: every host system call the sentry process may make.
//!
//! The policy is reviewed data. It is composed from
//! - [`base_rules`]: what the sentry itself needs, each entry naming the code path;
//! - the platform's own list ([`platform::Platform::host_syscalls`]): what its machinery calls
//!   from the sentry's threads. Its stub factories and stubs do not inherit this filter: they
//!   come from a zygote forked when the platform is created, before the filter is installed,
//!   and carry the platform's own, much smaller stub filter (`platform::ptrace::filter`);
//! - configuration rules ([`config_rules`]): fd-relative file access under the root fd;
//! - with `--network host` only ([`Allowlist::with_host_network`], [`host_network_rules`]):
//!   the socket calls of `net::hostinet`, whose argument rules ([`host_network_arguments`])
//!   admit only the socket kinds, flags, options and ioctls that module uses.
//! - with `--network sandbox` only ([`Allowlist::with_port_forwarding`],
//!   [`port_forwarding_rules`]): the host listener and relayed connections of `net::forward`
//!   on the pod namespace's 127.0.0.1, with argument rules ([`port_forwarding_arguments`]):
//!   AF_INET SOCK_STREAM sockets only, close-on-exec, SO_REUSEADDR, sends with MSG_NOSIGNAL.
//!
//! Argument checks ([`argument_rules`]) apply to a system call whoever asks for it; they follow
//! gVisor where it has them: `openat` only with `O_NOFOLLOW` and a non-negative dirfd, `mmap`
//! and `mprotect` without `PROT_EXEC`, `ioctl` only the terminal queries the sentry answers
//! from the host, `clone` only threads, `kill` only SIGKILL/SIGUSR2 to a single positive pid.
//!
//! A violation is `SECCOMP_RET_KILL_PROCESS`: the kernel kills the sandbox with SIGSYS and the
//! monitor reports it (`sandbox killed by seccomp (SIGSYS)`, with the system call's name when
//! the kernel's audit log shows it). In debug mode the filter answers `SECCOMP_RET_LOG`
//! instead: the call proceeds and the kernel logs it.
//!
//! `clone3` is answered with ENOSYS by a second, tiny filter (its flags live in memory a
//! filter cannot read), so the C library falls back to `clone`, whose flags are checked.

use std::collections::BTreeMap;

use platform::Platform;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use syscalls::Sysno;

/// Errors building or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the platform needs host system call {0:?}, which this build does not know")]
    UnknownSyscall(&'static str),
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("installing the seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
}

/// What a filter does with a host system call outside the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Kill the sandbox (`SECCOMP_RET_KILL_PROCESS`).
    Enforce,
    /// Let the call through and have the kernel log it (`SECCOMP_RET_LOG`, `--debug`).
    Log,
}

/// One allowed host system call.
#[derive(Debug, Clone)]
pub struct Allowed {
    pub sysno: Sysno,
    /// The code paths that need it.
    pub why: Vec<&'static str>,
    /// The argument rule, in words; empty when any arguments are allowed.
    pub args: &'static str,
}

/// The composed allowlist.
#[derive(Debug, Clone)]
pub struct Allowlist {
    allowed: BTreeMap<Sysno, Allowed>,
    /// Host sockets are allowed ([`Allowlist::with_host_network`]).
    host_network: bool,
    /// The port forwarder's host sockets are allowed ([`Allowlist::with_port_forwarding`]).
    port_forwarding: bool,
    /// Binds in volumes make host sockets ([`Allowlist::with_host_uds_create`]).
    host_uds_create: bool,
}

/// The sentry's own host system calls (beyond the platform's), each with the path needing it.
fn base_rules() -> Vec<(Sysno, &'static str)> {
    use Sysno::*;
    vec![
        (
            read,
            "host files (stdio, a host tty): HostFile::read; std reading boot files",
        ),
        (write, "host files: HostFile::write; the debug log"),
        (pread64, "HostFile::read at an offset; the memory file"),
        (pwrite64, "HostFile::write at an offset; the memory file"),
        (
            preadv2,
            "HostFile::read straight into application pages (MemoryFile::read_host); \
             RWF_NOWAIT after a readiness poll of a host pipe or tty",
        ),
        (
            pwritev2,
            "HostFile::write straight from application pages (MemoryFile::write_host)",
        ),
        (
            close,
            "dropping OwnedFds: files the application closed, boot-time lookups",
        ),
        (fstat, "HostFile::new/stat; RootFs lookups"),
        (
            poll,
            "HostFile::readiness: poll/select/epoll of the application on a host fd \
             (donated stdio pipes, a host tty); one fd, zero timeout",
        ),
        (newfstatat, "fstat through the C library (AT_EMPTY_PATH)"),
        (statx, "std::fs::File metadata (read_to_end size hint)"),
        (lseek, "std read_to_end on regular files"),
        (
            ioctl,
            "HostFile::ioctl: terminal queries answered from the host tty; tty::HostTty",
        ),
        (fcntl, "fd flags (F_GETFL, F_SETFD); duplicating fds"),
        (
            poll,
            "HostFile::readiness: a zero-timeout poll of a donated host fd (stdio, a tty)",
        ),
        (
            mmap,
            "the allocator; the memory file's sentry mapping; thread stacks",
        ),
        (
            munmap,
            "the allocator; unmapping memory-file windows; thread stacks",
        ),
        (mprotect, "thread stack guard pages; the allocator"),
        (
            madvise,
            "the allocator returning memory; freeing thread stacks",
        ),
        (mremap, "the allocator growing large blocks"),
        (brk, "the allocator"),
        (fallocate, "the memory file: releasing pages (PUNCH_HOLE)"),
        (
            ftruncate,
            "the memory file: growing it; HostNode::setattr: truncating a bind-mounted file",
        ),
        (
            futex,
            "std Mutex/Condvar and thread joins; waking CLONE_CHILD_CLEARTID waiters",
        ),
        (sched_yield, "std spin loops"),
        (
            membarrier,
            "membarrier(2) of the application: platform::global_memory_barrier reaches the \
             host processes running its threads",
        ),
        (sched_getaffinity, "std::thread::available_parallelism"),
        (
            clock_gettime,
            "Instant::now, SystemTime::now when the vDSO falls back",
        ),
        (clock_nanosleep, "nanosleep(2) of the application"),
        (nanosleep, "std::thread::sleep"),
        (
            getrandom,
            "std's hash map keys; AT_RANDOM for new processes",
        ),
        (
            rt_sigprocmask,
            "thread start (the C library blocks signals around clone)",
        ),
        (rt_sigreturn, "returning from a signal handler"),
        (
            restart_syscall,
            "the kernel resuming an interrupted sleep after a stop (SIGSTOP/SIGCONT, a debugger)",
        ),
        (
            sigaltstack,
            "std installs a stack-overflow altstack on each new thread",
        ),
        (clone, "Task::spawn starting a task's host thread"),
        (
            clone3,
            "pthread_create tries it first; answered ENOSYS by the second filter",
        ),
        (set_robust_list, "thread start (the C library)"),
        (rseq, "thread start (the C library registers rseq)"),
        (exit, "a task's host thread exiting"),
        (
            exit_group,
            "the sandbox exiting with the application's status",
        ),
        (getpid, "the C library (raise, thread bookkeeping)"),
        (
            gettid,
            "the C library; the platform binding contexts to threads",
        ),
        (
            tgkill,
            "the C library raising a signal in the sentry itself (abort)",
        ),
        (prctl, "std naming threads (PR_SET_NAME)"),
        (
            ppoll,
            "net::stack poller on a link: sleeps on the packet socket and its wake pipe until \
             the next TCP timer",
        ),
        (
            pipe2,
            "hostfs::special: the probe pipe of has_writer, made once",
        ),
        (
            tee,
            "hostfs::special::has_writer: whether a host FIFO opened for reading has a writer",
        ),
        (
            socket,
            "hostfs::special::connect_socket: an AF_UNIX socket connected to a host socket",
        ),
        (
            connect,
            "hostfs::special::connect_socket: to /proc/self/fd/N of the host socket's O_PATH fd",
        ),
        (
            shutdown,
            "net::unix: shutdown(2) of a connection to a host socket",
        ),
    ]
}

/// Rules that depend on the configuration: directfs, the sentry's fd-relative access to the
/// rootfs and volumes (`fs::hostfs`, every path one component, `O_NOFOLLOW`, under a held
/// directory fd). The host network's socket calls are [`host_network_rules`].
fn config_rules() -> Vec<(Sysno, &'static str)> {
    vec![
        (
            Sysno::openat,
            "HostNode::child/reopen: one component under a directory fd, O_NOFOLLOW; \
             HostNode::create: O_CREAT only with O_EXCL",
        ),
        (
            Sysno::readlinkat,
            "HostNode::readlink: reading a symbolic link the sentry follows itself",
        ),
        (
            Sysno::getdents64,
            "HostNode::readdir: listing a host directory",
        ),
        (
            Sysno::mkdirat,
            "HostNode::create: mkdir on a writable volume",
        ),
        (
            Sysno::symlinkat,
            "HostNode::create: symlink on a writable volume",
        ),
        (
            Sysno::linkat,
            "HostNode::link: hard link of the target's own inode (AT_EMPTY_PATH)",
        ),
        (
            Sysno::unlinkat,
            "HostNode::unlink: unlink/rmdir on a writable volume",
        ),
        (
            Sysno::renameat2,
            "HostNode::rename: rename on a writable volume",
        ),
        (
            Sysno::fchmodat2,
            "HostNode::chmod: chmod of the node's own inode (AT_EMPTY_PATH, Linux 6.6)",
        ),
        (
            Sysno::fchmod,
            "HostNode::chmod_by_reopen: chmod before Linux 6.6, on a verified reopened fd \
             or a bind-mounted file's own fd",
        ),
        (
            Sysno::fchownat,
            "HostNode::setattr: chown of the node's own inode (AT_EMPTY_PATH)",
        ),
        (
            Sysno::utimensat,
            "HostNode::setattr: utimes of the node's own inode (AT_EMPTY_PATH)",
        ),
        (
            Sysno::fstatfs,
            "HostNode::statfs: statfs of a host filesystem; hostfs::watch::add: whether a \
             directory's filesystem reports its changes",
        ),
        (
            Sysno::inotify_add_watch,
            "hostfs::watch::add: the watch of a cached host directory or file, through \
             /proc/self/fd/N of its O_PATH fd (the instance is made at boot)",
        ),
        (
            Sysno::inotify_rm_watch,
            "hostfs::watch::release: a watched node going away",
        ),
        (
            Sysno::read,
            "hostfs::watch::sync: the inotify events, nonblocking, once per system call",
        ),
    ]
}

/// What the containerd shim's sandbox process needs beyond the default: its control channel
/// to the shim (`boot::control`), a socket inherited at start, with fds riding along.
fn control_channel_rules() -> Vec<(Sysno, &'static str)> {
    vec![
        (
            Sysno::recvmsg,
            "control::Channel::recv: calls from the shim, with rootfs/mount/stdio fds",
        ),
        (
            Sysno::sendmsg,
            "control::Channel::send: replies and exit events to the shim",
        ),
    ]
}

/// What `--network host` adds: the host sockets `net::hostinet` holds for the application.
fn host_network_rules() -> Vec<(Sysno, &'static str)> {
    use Sysno::*;
    vec![
        (
            socket,
            "hostinet::socket: AF_INET/AF_INET6 TCP, UDP and ICMP echo sockets, nonblocking",
        ),
        (bind, "HostSocket::bind"),
        (listen, "HostSocket::listen"),
        (
            connect,
            "HostSocket::connect (AF_UNSPEC: disconnecting a datagram socket)",
        ),
        (
            accept4,
            "HostSocket::accept: the new connection, nonblocking and close-on-exec",
        ),
        (getsockname, "HostSocket::local_addr"),
        (getpeername, "HostSocket::peer_addr"),
        (shutdown, "HostSocket::shutdown"),
        (
            sendto,
            "HostSocket::send: data copied out of the application, always MSG_NOSIGNAL",
        ),
        (
            recvfrom,
            "HostSocket::recv: data copied into a sentry buffer, with the sender's address",
        ),
        (
            getsockopt,
            "HostSocket::getsockopt: the options of hostinet::HostOption; SO_ERROR after a \
             nonblocking connect",
        ),
        (
            setsockopt,
            "HostSocket::setsockopt: the settable options of hostinet::HostOption",
        ),
        (ioctl, "HostSocket::ioctl: FIONREAD"),
        (
            poll,
            "HostSocket::readiness: a zero-timeout poll of one socket; the first waits of a \
             blocking socket call: one socket, hostinet::HOST_POLL_MS",
        ),
        (close, "dropping a HostSocket"),
    ]
}

/// What `--network sandbox` adds: the host sockets of `net::forward`, which relays
/// connections to the pod namespace's 127.0.0.1 into the sandbox's stack.
fn port_forwarding_rules() -> Vec<(Sysno, &'static str)> {
    use Sysno::*;
    vec![
        (
            socket,
            "forward::host_listener: the host listener on 127.0.0.1:PORT",
        ),
        (
            setsockopt,
            "forward::host_listener: SO_REUSEADDR (a port closed and listened on again)",
        ),
        (bind, "forward::host_listener: 127.0.0.1:PORT"),
        (listen, "forward::host_listener"),
        (
            accept4,
            "forward::serve: a host connection to relay, blocking, close-on-exec",
        ),
        (
            sendto,
            "forward::send_all: the application's data to the host connection",
        ),
        (
            shutdown,
            "forward::closed (waking the accept thread); the relay passing on a FIN or a \
             reset, or ending a connection it cannot relay",
        ),
    ]
}

/// What `--host-uds=create` (or `all`) adds: the host sockets a bind in a volume makes
/// (`net::unix_host::HostListener`), which host programs connect to.
fn host_uds_create_rules() -> Vec<(Sysno, &'static str)> {
    use Sysno::*;
    vec![
        (
            bind,
            "hostfs::special::bind_socket: an AF_UNIX socket bound to /proc/self/fd/N/NAME, N a \
             volume directory's O_PATH fd, NAME one checked component",
        ),
        (
            listen,
            "unix_host::HostListener::listen: the application listens on its host socket",
        ),
        (
            accept4,
            "unix_host::HostListener::accept: a host connection to the sandbox's listener, \
             nonblocking and close-on-exec, after a readiness poll",
        ),
    ]
}

/// The argument rules of the port forwarder's calls that have one; None for the others,
/// which keep [`argument_rules`].
fn port_forwarding_arguments(sysno: Sysno) -> Option<(Vec<SeccompRule>, &'static str)> {
    use crate::net::forward::{HOST_SEND_FLAGS, HOST_SOCKET_FLAGS};
    Some(match sysno {
        Sysno::socket => {
            let mut rules = host_unix_socket_rules();
            rules.push(rule(vec![
                cond(0, Len::Dword, Op::Eq, libc::AF_INET as u64),
                cond(
                    1,
                    Len::Dword,
                    Op::Eq,
                    (libc::SOCK_STREAM | HOST_SOCKET_FLAGS) as u64,
                ),
                cond(2, Len::Dword, Op::Eq, 0),
            ]));
            (
                rules,
                "AF_INET, SOCK_STREAM|SOCK_CLOEXEC, protocol 0; AF_UNIX to host sockets",
            )
        }
        Sysno::accept4 => (one_of(3, &[HOST_SOCKET_FLAGS as u64]), "flags SOCK_CLOEXEC"),
        Sysno::setsockopt => {
            let (mut rules, _) = argument_rules(sysno)?;
            rules.push(rule(vec![
                cond(1, Len::Dword, Op::Eq, libc::SOL_SOCKET as u64),
                cond(2, Len::Dword, Op::Eq, libc::SO_REUSEADDR as u64),
            ]));
            (rules, "SOL_SOCKET, SO_PASSCRED or SO_REUSEADDR")
        }
        Sysno::sendto => (one_of(3, &[HOST_SEND_FLAGS as u64]), "flags MSG_NOSIGNAL"),
        Sysno::shutdown => (
            one_of(
                1,
                &[
                    libc::SHUT_RD as u64,
                    libc::SHUT_WR as u64,
                    libc::SHUT_RDWR as u64,
                ],
            ),
            "SHUT_RD, SHUT_WR or SHUT_RDWR (SHUT_RD: net::unix to a host socket)",
        ),
        _ => return None,
    })
}

/// The argument rules of host mode for the calls whose rules it widens or adds; None for the
/// others, which keep [`argument_rules`].
fn host_network_arguments(sysno: Sysno) -> Option<(Vec<SeccompRule>, &'static str)> {
    use crate::net::hostinet::{HostOption, FAMILIES, HOST_POLL_MS, SOCKET_FLAGS, SOCKET_TYPES};
    let option_rules = |settable_only: bool| -> Vec<SeccompRule> {
        HostOption::ALL
            .into_iter()
            .filter(|o| o.settable() || !settable_only)
            .map(|o| {
                let (level, name) = o.key();
                rule(vec![
                    cond(1, Len::Dword, Op::Eq, level as u64),
                    cond(2, Len::Dword, Op::Eq, name as u64),
                ])
            })
            .collect()
    };
    Some(match sysno {
        Sysno::socket => (
            host_unix_socket_rules()
                .into_iter()
                .chain(FAMILIES.iter().flat_map(|&family| {
                    SOCKET_TYPES.iter().map(move |&(ty, protocol)| {
                        rule(vec![
                            cond(0, Len::Dword, Op::Eq, family as u64),
                            cond(1, Len::Dword, Op::Eq, (ty | SOCKET_FLAGS) as u64),
                            cond(2, Len::Dword, Op::Eq, protocol as u64),
                        ])
                    })
                }))
                .collect(),
            "AF_INET/AF_INET6; SOCK_STREAM (0, TCP) or SOCK_DGRAM (0, UDP, ICMP, ICMPV6); \
             always SOCK_NONBLOCK|SOCK_CLOEXEC; AF_UNIX to host sockets",
        ),
        Sysno::poll => (
            [0, u64::from(HOST_POLL_MS)]
                .iter()
                .map(|&ms| {
                    rule(vec![
                        cond(1, Len::Qword, Op::Eq, 1),
                        cond(2, Len::Dword, Op::Eq, ms),
                    ])
                })
                .collect(),
            "one fd; zero timeout, or hostinet::HOST_POLL_MS (a socket wait, then a signal check)",
        ),
        Sysno::accept4 => (
            one_of(3, &[SOCKET_FLAGS as u64]),
            "flags SOCK_NONBLOCK|SOCK_CLOEXEC",
        ),
        Sysno::getsockopt => (option_rules(false), "the options of hostinet::HostOption"),
        Sysno::setsockopt => {
            let (mut rules, _) = argument_rules(sysno)?;
            rules.extend(option_rules(true));
            (
                rules,
                "SOL_SOCKET, SO_PASSCRED; the settable options of hostinet::HostOption",
            )
        }
        Sysno::ioctl => {
            let (mut rules, _) = argument_rules(sysno)?;
            rules.extend(one_of(1, &[libc::FIONREAD]));
            (
                rules,
                "TCGETS, TIOCGWINSZ; TCSETS, TCSETSW, TCSETSF, TIOCSWINSZ (host tty); \
                 SECCOMP_IOCTL_NOTIF_RECV, _SEND, _SET_FLAGS (the platform's mapper \
                 listener); FIONREAD (host sockets)",
            )
        }
        _ => return None,
    })
}

/// The argument rules of `sysno`, with or without host mode's.
fn rules_in_mode(host_network: bool, sysno: Sysno) -> Option<(Vec<SeccompRule>, &'static str)> {
    if host_network {
        if let Some(r) = host_network_arguments(sysno) {
            return Some(r);
        }
    }
    argument_rules(sysno)
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, len, op, value).expect("argument index below 6")
}

fn rule(conds: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conds).expect("at least one condition")
}

/// A non-negative `int` fd (rejects AT_FDCWD).
fn fd_non_negative(arg: u8) -> SeccompCondition {
    cond(arg, Len::Dword, Op::Le, i32::MAX as u64)
}

/// The sentry's inotify fd as a rule value (`u32::MAX`, which no fd is, when it has none).
fn inotify_fd() -> u64 {
    crate::fs::hostfs::watch_fd().map_or(u64::from(u32::MAX), |fd| fd as u64)
}

/// One of `values` in argument `arg` (32-bit compare).
fn one_of(arg: u8, values: &[u64]) -> Vec<SeccompRule> {
    values
        .iter()
        .map(|&v| rule(vec![cond(arg, Len::Dword, Op::Eq, v)]))
        .collect()
}

/// The AF_UNIX sockets `hostfs::special::connect_socket` makes to reach host sockets.
fn host_unix_socket_rules() -> Vec<SeccompRule> {
    [libc::SOCK_STREAM, libc::SOCK_SEQPACKET, libc::SOCK_DGRAM]
        .iter()
        .map(|&ty| {
            rule(vec![
                cond(0, Len::Dword, Op::Eq, libc::AF_UNIX as u64),
                cond(
                    1,
                    Len::Dword,
                    Op::Eq,
                    (ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u64,
                ),
                cond(2, Len::Dword, Op::Eq, 0),
            ])
        })
        .collect()
}

const HOST_UNIX_SOCKET_DOC: &str =
    "AF_UNIX, SOCK_STREAM/SOCK_SEQPACKET/SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC, protocol 0";

/// Argument checks of the system calls we constrain, with their description.
fn argument_rules(sysno: Sysno) -> Option<(Vec<SeccompRule>, &'static str)> {
    let prot_exec = libc::PROT_EXEC as u64;
    let no_exec = || cond(2, Len::Dword, Op::MaskedEq(prot_exec), 0);
    let flags_are =
        |arg: u8, mask: u64, value: u64| cond(arg, Len::Dword, Op::MaskedEq(mask), value);
    let nofollow = libc::O_NOFOLLOW as u64;
    let creat_excl = (libc::O_CREAT | libc::O_EXCL) as u64;
    let empty_path = libc::AT_EMPTY_PATH as u64;
    Some(match sysno {
        // An O_CREAT that may open an existing file would follow nothing (O_NOFOLLOW) but
        // could land on a name swapped in after the lookup: hostfs creates only with O_EXCL.
        Sysno::openat => (
            vec![
                rule(vec![
                    fd_non_negative(0),
                    flags_are(2, nofollow | libc::O_CREAT as u64, nofollow),
                ]),
                rule(vec![
                    fd_non_negative(0),
                    flags_are(2, nofollow | creat_excl, nofollow | creat_excl),
                ]),
            ],
            "dirfd >= 0, O_NOFOLLOW set, O_CREAT only with O_EXCL",
        ),
        // Only the sentry's own inotify instance (made at boot; without one, the fd -1 that
        // no call has), with the two masks hostfs uses.
        Sysno::inotify_add_watch => (
            [
                crate::fs::hostfs::WATCH_DIR_FLAGS,
                crate::fs::hostfs::WATCH_FILE_FLAGS,
            ]
            .iter()
            .map(|&flags| {
                rule(vec![
                    cond(0, Len::Dword, Op::Eq, inotify_fd()),
                    cond(2, Len::Dword, Op::Eq, u64::from(flags)),
                ])
            })
            .collect(),
            "the sentry's inotify fd, hostfs's directory or file watch mask",
        ),
        Sysno::inotify_rm_watch => (
            vec![rule(vec![cond(0, Len::Dword, Op::Eq, inotify_fd())])],
            "the sentry's inotify fd",
        ),
        Sysno::readlinkat | Sysno::newfstatat | Sysno::mkdirat => {
            (vec![rule(vec![fd_non_negative(0)])], "dirfd >= 0")
        }
        // Attribute changes act on an fd's own inode, never on a name below it.
        Sysno::fchmodat2 | Sysno::utimensat => (
            vec![rule(vec![
                fd_non_negative(0),
                cond(3, Len::Dword, Op::Eq, empty_path),
            ])],
            "fd >= 0, flags AT_EMPTY_PATH",
        ),
        Sysno::fchownat => (
            vec![rule(vec![
                fd_non_negative(0),
                cond(4, Len::Dword, Op::Eq, empty_path),
            ])],
            "fd >= 0, flags AT_EMPTY_PATH",
        ),
        Sysno::unlinkat => (
            [0, libc::AT_REMOVEDIR as u64]
                .iter()
                .map(|&f| rule(vec![fd_non_negative(0), cond(2, Len::Dword, Op::Eq, f)]))
                .collect(),
            "dirfd >= 0, flags 0 or AT_REMOVEDIR",
        ),
        Sysno::symlinkat => (vec![rule(vec![fd_non_negative(1)])], "dirfd >= 0"),
        Sysno::linkat => (
            vec![rule(vec![
                fd_non_negative(0),
                fd_non_negative(2),
                cond(4, Len::Dword, Op::Eq, empty_path),
            ])],
            "both fds >= 0, flags AT_EMPTY_PATH (links an fd's own inode)",
        ),
        Sysno::renameat2 => (
            vec![rule(vec![
                fd_non_negative(0),
                fd_non_negative(2),
                flags_are(
                    4,
                    !u64::from(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) & 0xffff_ffff,
                    0,
                ),
            ])],
            "both dirfds >= 0, flags within RENAME_NOREPLACE|RENAME_EXCHANGE",
        ),
        // Executable mappings of application code are made in stubs, by injection, under the
        // stubs' own filter.
        Sysno::mmap | Sysno::mprotect => (vec![rule(vec![no_exec()])], "no PROT_EXEC"),
        Sysno::poll => (
            vec![rule(vec![
                cond(1, Len::Qword, Op::Eq, 1),
                cond(2, Len::Dword, Op::Eq, 0),
            ])],
            "one fd, zero timeout (never blocks the sentry)",
        ),
        Sysno::ioctl => (
            one_of(
                1,
                &[
                    libc::TCGETS,
                    libc::TIOCGWINSZ,
                    // tty::HostTty forwarding the application's termios and window size to
                    // the host pty the shim gave it (line discipline stays on the host).
                    libc::TCSETS,
                    libc::TCSETSW,
                    libc::TCSETSF,
                    libc::TIOCSWINSZ,
                    // platform::ptrace::mapper: the mapper's seccomp listener.
                    libc::SECCOMP_IOCTL_NOTIF_RECV,
                    libc::SECCOMP_IOCTL_NOTIF_SEND,
                    libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                ],
            ),
            "TCGETS, TIOCGWINSZ; TCSETS, TCSETSW, TCSETSF, TIOCSWINSZ (host tty); \
             SECCOMP_IOCTL_NOTIF_RECV, _SEND, _SET_FLAGS (the platform's mapper listener)",
        ),
        // Only pthread_create: the platforms fork their zygote before this filter exists, and
        // factories forking stubs run under their own filter.
        Sysno::clone => (
            one_of(
                0,
                &[(libc::CLONE_VM
                    | libc::CLONE_FS
                    | libc::CLONE_FILES
                    | libc::CLONE_SIGHAND
                    | libc::CLONE_THREAD
                    | libc::CLONE_SYSVSEM
                    | libc::CLONE_SETTLS
                    | libc::CLONE_PARENT_SETTID
                    | libc::CLONE_CHILD_CLEARTID) as u64],
            ),
            "threads only",
        ),
        Sysno::kill => (
            [libc::SIGKILL, libc::SIGUSR2]
                .iter()
                .map(|&sig| {
                    rule(vec![
                        cond(0, Len::Dword, Op::Le, i32::MAX as u64),
                        cond(0, Len::Dword, Op::Ne, 0),
                        cond(1, Len::Dword, Op::Eq, sig as u64),
                    ])
                })
                .collect(),
            "pid > 0, SIGKILL or SIGUSR2",
        ),
        Sysno::tgkill => (
            vec![rule(vec![cond(
                0,
                Len::Dword,
                Op::Eq,
                std::process::id() as u64,
            )])],
            "own thread group only",
        ),
        Sysno::prctl => (one_of(0, &[libc::PR_SET_NAME as u64]), "PR_SET_NAME"),
        Sysno::socketpair => (one_of(0, &[libc::AF_UNIX as u64]), "AF_UNIX"),
        Sysno::socket => (host_unix_socket_rules(), HOST_UNIX_SOCKET_DOC),
        Sysno::pipe2 => (
            one_of(1, &[(libc::O_CLOEXEC | libc::O_NONBLOCK) as u64]),
            "O_CLOEXEC|O_NONBLOCK",
        ),
        Sysno::tee => (
            one_of(3, &[libc::SPLICE_F_NONBLOCK as u64]),
            "SPLICE_F_NONBLOCK",
        ),
        Sysno::setsockopt => (
            vec![rule(vec![
                cond(1, Len::Dword, Op::Eq, libc::SOL_SOCKET as u64),
                cond(2, Len::Dword, Op::Eq, libc::SO_PASSCRED as u64),
            ])],
            "SOL_SOCKET, SO_PASSCRED",
        ),
        Sysno::membarrier => (
            [0, 1]
                .iter()
                .map(|&cmd| {
                    rule(vec![
                        cond(0, Len::Dword, Op::Eq, cmd),
                        cond(1, Len::Dword, Op::Eq, 0),
                    ])
                })
                .collect(),
            "MEMBARRIER_CMD_QUERY or MEMBARRIER_CMD_GLOBAL, no flags",
        ),
        Sysno::fcntl => (
            one_of(
                1,
                &[
                    libc::F_GETFD as u64,
                    libc::F_SETFD as u64,
                    libc::F_GETFL as u64,
                    libc::F_SETFL as u64,
                    libc::F_DUPFD as u64,
                    libc::F_DUPFD_CLOEXEC as u64,
                ],
            ),
            "F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD, F_DUPFD_CLOEXEC",
        ),
        _ => return None,
    })
}

fn by_name(name: &'static str) -> Result<Sysno, Error> {
    Sysno::iter()
        .find(|s| s.name() == name)
        .ok_or(Error::UnknownSyscall(name))
}

impl Allowlist {
    /// The allowlist of a sandbox on `platform` in the default configuration.
    ///
    /// # Errors
    /// The platform names a system call unknown to this build.
    pub fn new(platform: &dyn Platform) -> Result<Allowlist, Error> {
        let mut list = Allowlist {
            allowed: BTreeMap::new(),
            host_network: false,
            port_forwarding: false,
            host_uds_create: false,
        };
        for (sysno, why) in base_rules().into_iter().chain(config_rules()) {
            list.add(sysno, why);
        }
        for (name, why) in platform.host_syscalls() {
            list.add(by_name(name)?, why);
        }
        Ok(list)
    }

    /// The allowlist of the containerd shim's sandbox process: the default one plus the
    /// control channel ([`control_channel_rules`]).
    ///
    /// # Errors
    /// As [`Allowlist::new`].
    pub fn with_control_channel(platform: &dyn Platform) -> Result<Allowlist, Error> {
        let mut list = Allowlist::new(platform)?;
        for (sysno, why) in control_channel_rules() {
            list.add(sysno, why);
        }
        Ok(list)
    }

    /// This allowlist plus the host sockets of `--network host` ([`host_network_rules`]),
    /// with their argument rules. Only a sandbox in host mode installs it; `runsc-rs
    /// syscalls --host` shows it for that mode.
    pub fn with_host_network(mut self) -> Allowlist {
        self.host_network = true;
        for (sysno, why) in host_network_rules() {
            self.add(sysno, why);
        }
        // Calls already present (ioctl, setsockopt) now carry host mode's wider rules.
        for (sysno, a) in self.allowed.iter_mut() {
            a.args = rules_in_mode(true, *sysno).map_or("", |(_, doc)| doc);
        }
        self
    }

    /// This allowlist plus the host sockets of the port forwarder of `--network sandbox`
    /// ([`port_forwarding_rules`]), with their argument rules. Only a sandbox in sandbox
    /// network mode installs it; `runsc-rs syscalls --host --network sandbox` shows it.
    pub fn with_port_forwarding(mut self) -> Allowlist {
        self.port_forwarding = true;
        for (sysno, why) in port_forwarding_rules() {
            self.add(sysno, why);
        }
        // setsockopt was present: it now carries the wider rule.
        let forwarding = |s| port_forwarding_arguments(s).map(|(_, doc)| doc);
        for (sysno, a) in self.allowed.iter_mut() {
            if let Some(doc) = forwarding(*sysno) {
                a.args = doc;
            }
        }
        self
    }

    /// This allowlist plus the host calls of `--host-uds=create` ([`host_uds_create_rules`]):
    /// bind, listen and accept of host AF_UNIX sockets in volumes. Applied after the network
    /// mode's: its accept4 rule widens theirs.
    pub fn with_host_uds_create(mut self) -> Allowlist {
        self.host_uds_create = true;
        for (sysno, why) in host_uds_create_rules() {
            self.add(sysno, why);
        }
        if let Some((_, doc)) = self.arguments(Sysno::accept4) {
            if let Some(a) = self.allowed.get_mut(&Sysno::accept4) {
                a.args = doc;
            }
        }
        self
    }

    /// Whether host sockets are allowed.
    pub fn host_network(&self) -> bool {
        self.host_network
    }

    /// The argument rules of `sysno` under this allowlist's configuration.
    fn arguments(&self, sysno: Sysno) -> Option<(Vec<SeccompRule>, &'static str)> {
        if self.host_uds_create && sysno == Sysno::accept4 {
            let flags = (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u64;
            let (mut rules, doc) = if self.port_forwarding {
                port_forwarding_arguments(sysno)
            } else {
                rules_in_mode(self.host_network, sysno)
            }
            .unwrap_or((Vec::new(), ""));
            rules.extend(one_of(3, &[flags]));
            let doc = if doc.is_empty() || self.host_network {
                "flags SOCK_NONBLOCK|SOCK_CLOEXEC"
            } else {
                "flags SOCK_CLOEXEC (the port forwarder) or SOCK_NONBLOCK|SOCK_CLOEXEC"
            };
            return Some((rules, doc));
        }
        if self.port_forwarding {
            if let Some(r) = port_forwarding_arguments(sysno) {
                return Some(r);
            }
        }
        rules_in_mode(self.host_network, sysno)
    }

    fn add(&mut self, sysno: Sysno, why: &'static str) {
        let args = self.arguments(sysno).map_or("", |(_, doc)| doc);
        self.allowed
            .entry(sysno)
            .or_insert_with(|| Allowed {
                sysno,
                why: Vec::new(),
                args,
            })
            .why
            .push(why);
    }

    /// Number of distinct host system calls allowed.
    pub fn len(&self) -> usize {
        self.allowed.len()
    }

    /// True if nothing is allowed (never, for a real sandbox).
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// The entries, by system-call number.
    pub fn entries(&self) -> impl Iterator<Item = &Allowed> {
        self.allowed.values()
    }

    /// Compiles the filters, in installation order: `clone3` -> ENOSYS, then the allowlist.
    ///
    /// # Errors
    /// The filter does not fit in a BPF program.
    pub fn compile(&self, mode: Mode) -> Result<Vec<BpfProgram>, Error> {
        let rules = self
            .allowed
            .keys()
            .map(|&s| {
                (
                    i64::from(s.id()),
                    self.arguments(s).map_or_else(Vec::new, |(r, _)| r),
                )
            })
            .collect();
        let violation = match mode {
            Mode::Enforce => SeccompAction::KillProcess,
            Mode::Log => SeccompAction::Log,
        };
        let allowlist =
            SeccompFilter::new(rules, violation, SeccompAction::Allow, TargetArch::x86_64)?;
        let clone3 = SeccompFilter::new(
            [(i64::from(Sysno::clone3.id()), Vec::new())]
                .into_iter()
                .collect(),
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            TargetArch::x86_64,
        )?;
        // clone3's filter goes first: once the allowlist is on, `seccomp` itself is not allowed.
        Ok(vec![clone3.try_into()?, allowlist.try_into()?])
    }

    /// Installs the filters on every thread of the process (TSYNC). Sets `no_new_privs`.
    ///
    /// # Errors
    /// Compiling or installing failed; the sandbox must not start.
    pub fn install(&self, mode: Mode) -> Result<(), Error> {
        crate::memory::settle_host_allocator(crate::procfs::host_cpus());
        for program in self.compile(mode)? {
            seccompiler::apply_filter_all_threads(&program)?;
        }
        log::info!(
            "seccomp: installed allowlist of {} host system calls ({})",
            self.len(),
            match mode {
                Mode::Enforce => "violations kill the sandbox",
                Mode::Log => "debug: violations are logged by the kernel, not killed",
            }
        );
        // The whole list, so a debug log shows which policy this sandbox runs under.
        let names: Vec<&str> = self.allowed.keys().map(|s| s.name()).collect();
        log::debug!("seccomp: allowed host system calls: {}", names.join(" "));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPlatform;

    impl Platform for NoPlatform {
        fn name(&self) -> &'static str {
            "none"
        }
        fn new_address_space(
            &self,
        ) -> platform::Result<std::sync::Arc<dyn platform::AddressSpace>> {
            unreachable!()
        }
        fn new_context(&self) -> platform::Result<Box<dyn platform::Context>> {
            unreachable!()
        }
        fn host_syscalls(&self) -> Vec<(&'static str, &'static str)> {
            vec![("ptrace", "test"), ("mmap", "test")]
        }
    }

    #[test]
    fn composes_and_compiles() {
        let list = Allowlist::new(&NoPlatform).unwrap();
        assert!(list.entries().any(|a| a.sysno == Sysno::ptrace));
        let mmap = list.entries().find(|a| a.sysno == Sysno::mmap).unwrap();
        assert_eq!(mmap.why.len(), 2);
        assert!(!mmap.args.is_empty());
        for mode in [Mode::Enforce, Mode::Log] {
            let progs = list.compile(mode).unwrap();
            assert!(progs[1].len() < 4096);
        }
    }

    /// Issue 15: no host call that changes a file by a name the host resolves again.
    #[test]
    fn no_name_following_attribute_calls() {
        let list = Allowlist::new(&NoPlatform).unwrap();
        for gone in [Sysno::fchmodat, Sysno::mknodat, Sysno::chmod, Sysno::chown] {
            assert!(list.entries().all(|a| a.sysno != gone), "{gone:?}");
        }
        for fd_only in [
            Sysno::fchmodat2,
            Sysno::fchownat,
            Sysno::utimensat,
            Sysno::linkat,
        ] {
            let entry = list.entries().find(|a| a.sysno == fd_only).unwrap();
            assert!(entry.args.contains("AT_EMPTY_PATH"), "{fd_only:?}");
        }
    }

    /// hostfs's watches: only on the sentry's own inotify fd, only with its mask.
    #[test]
    fn inotify_calls_are_bound_to_the_sentrys_instance() {
        let list = Allowlist::new(&NoPlatform).unwrap();
        for s in [Sysno::inotify_add_watch, Sysno::inotify_rm_watch] {
            let entry = list.entries().find(|a| a.sysno == s).unwrap();
            assert!(entry.args.contains("inotify fd"), "{s:?}");
        }
        assert!(list.entries().all(|a| a.sysno != Sysno::inotify_init1));
    }

    /// Host sockets only in host mode, and there only the kinds hostinet makes.
    #[test]
    fn port_forwarding_adds_only_its_restricted_calls() {
        let base = Allowlist::new(&NoPlatform).unwrap();
        for s in [Sysno::accept4, Sysno::bind] {
            assert!(base.entries().all(|a| a.sysno != s), "{s:?}");
        }
        let base_socket = base.entries().find(|a| a.sysno == Sysno::socket).unwrap();
        assert_eq!(base_socket.args, HOST_UNIX_SOCKET_DOC);
        let fwd = Allowlist::new(&NoPlatform).unwrap().with_port_forwarding();
        assert!(!fwd.host_network());
        let args = |s| fwd.entries().find(|a| a.sysno == s).unwrap().args;
        assert!(args(Sysno::socket).starts_with("AF_INET, SOCK_STREAM"));
        assert!(args(Sysno::setsockopt).contains("SO_REUSEADDR"));
        assert!(args(Sysno::sendto).contains("MSG_NOSIGNAL"));
        for mode in [Mode::Enforce, Mode::Log] {
            let progs = fwd.compile(mode).unwrap();
            assert!(progs[1].len() < 4096);
        }
    }

    #[test]
    fn host_network_extends_only_host_mode() {
        let socket_calls = [Sysno::accept4, Sysno::getsockopt];
        let base = Allowlist::new(&NoPlatform).unwrap();
        assert!(!base.host_network());
        for s in socket_calls {
            assert!(base.entries().all(|a| a.sysno != s), "{s:?}");
        }
        let ioctl = base.entries().find(|a| a.sysno == Sysno::ioctl).unwrap();
        assert!(!ioctl.args.contains("FIONREAD"));
        let host = Allowlist::new(&NoPlatform).unwrap().with_host_network();
        for s in socket_calls {
            let a = host.entries().find(|a| a.sysno == s).unwrap();
            assert!(!a.args.is_empty(), "{s:?}");
        }
        let ioctl = host.entries().find(|a| a.sysno == Sysno::ioctl).unwrap();
        assert!(ioctl.args.contains("FIONREAD") && ioctl.args.contains("TCGETS"));
        for mode in [Mode::Enforce, Mode::Log] {
            let progs = host.compile(mode).unwrap();
            assert!(progs[1].len() < 4096);
        }
    }

    /// bind, listen and accept4 only with `--host-uds=create`; with the port forwarder's
    /// accept4 rule, both flag sets are allowed.
    #[test]
    fn host_uds_create_adds_bind_listen_accept() {
        let calls = [Sysno::bind, Sysno::listen, Sysno::accept4];
        let base = Allowlist::new(&NoPlatform).unwrap();
        for s in calls {
            assert!(base.entries().all(|a| a.sysno != s), "{s:?}");
        }
        let lists = [
            Allowlist::new(&NoPlatform).unwrap().with_host_uds_create(),
            Allowlist::new(&NoPlatform)
                .unwrap()
                .with_port_forwarding()
                .with_host_uds_create(),
            Allowlist::new(&NoPlatform)
                .unwrap()
                .with_host_network()
                .with_host_uds_create(),
        ];
        for list in &lists {
            for s in calls {
                assert!(list.entries().any(|a| a.sysno == s), "{s:?}");
            }
            let (rules, doc) = list.arguments(Sysno::accept4).unwrap();
            assert!(doc.contains("SOCK_NONBLOCK|SOCK_CLOEXEC"), "{doc}");
            assert!(!rules.is_empty());
            assert!(list.compile(Mode::Enforce).unwrap()[1].len() < 4096);
        }
        let (forwarding, _) = lists[1].arguments(Sysno::accept4).unwrap();
        assert_eq!(forwarding.len(), 2);
    }

    #[test]
    fn unknown_platform_syscall_is_an_error() {
        assert!(matches!(
            by_name("no_such_call"),
            Err(Error::UnknownSyscall(_))
        ));
    }
}
