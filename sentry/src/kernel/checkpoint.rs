//! Checkpoint: the saved image of a paused kernel (first slice of issue 17).
//!
//! # The image
//! A checkpoint is a directory of three files:
//!
//! | file | contents |
//! |---|---|
//! | `header.json` | [`Header`]: the image format version ([`FORMAT_VERSION`]), the runsc-rs version that wrote it, when, and the sizes of the other two files. Written last: a directory without it is not an image. |
//! | `kernel.json` | [`KernelImage`]: the kernel's state, as JSON |
//! | `memory.bin` | the used ranges of the memory file, back to back, in the order of [`KernelImage::memory`] |
//!
//! JSON for the kernel state: it is small next to the memory (a shell and a few processes
//! take a few tens of KiB), a person can read and diff it, and serde_json is already a
//! dependency; the bulk, application memory, is raw bytes in `memory.bin`, never encoded.
//! An image whose `format_version` differs from this build's is refused
//! ([`Header::check`]): there is no conversion between versions.
//!
//! What `kernel.json` holds:
//! - every task ([`TaskImage`]): its IDs (global and as its own PID namespace sees them),
//!   the general registers and the XSAVE area, the restart of the system call it was in
//!   when the kernel paused (a sleep keeps its *remaining* time, so that it wakes after the
//!   rest of its sleep once restored), the signal mask and pending signals, the
//!   alternate stack, `set_tid_address` and robust-list addresses, credentials, root and
//!   cwd paths, and which address space ([`MmImage`]) and fd table ([`FdTableImage`]) it
//!   uses (shared ones appear once);
//! - every process ([`ProcessImage`]): parent, process group, session, signal actions and
//!   group-wide pending signals, and its timers ([`TimersImage`]: ITIMER_REAL, VIRTUAL and
//!   PROF and the POSIX timers with their `sigevent` (and, on a CPU-time clock, whose
//!   clock), each as the time left to its next expiration on its clock and its period, so
//!   that a restored timer fires after the rest of its period, then every period);
//! - every address space: its VMAs (permissions, shared or private, what backs a file
//!   mapping: path, device, inode, offset; or the System V segment it attaches, by
//!   identifier) and where each present page range lies in the memory file (and whether it
//!   is shared copy-on-write; pages of a shared file mapping are not listed: they fault in
//!   again from the file or segment; `[vvar]` and `[vdso]` are named only, and a restore
//!   maps the restoring kernel's parameter page and image there, [`crate::vdso`]: the
//!   image's pages a process holds privately come back as saved, so a vvar layout change
//!   between builds needs a new format version);
//! - every fd table: per fd the close-on-exec flag, the status flags, the offset, and what
//!   the file is: a file by path with the device, inode, size and mtime it had (a restore
//!   refuses a host file that changed), a pipe end by pipe identity with the bytes it held,
//!   a file the sandbox was given (stdio), an AF_UNIX socket by its endpoint, an
//!   eventfd with its counter, a timerfd (clock, time left, period, expirations not read),
//!   a signalfd (mask, creating process), an epoll instance by index, a TCP or UDP socket
//!   of the sentry's stack ([`crate::net::inet::InetImage`]: how it is bound, its listen
//!   backlog, a UDP socket's peer, its options), a ping socket of that stack
//!   ([`crate::net::icmp::IcmpImage`]: echo identifier, peer, options), an AF_NETLINK
//!   socket ([`crate::net::netlink::NetlinkImage`]: port id, groups, replies not read,
//!   options), a raw IP socket of the sentry's stack ([`crate::net::raw::RawImage`]:
//!   protocol, local address, peer, IP_HDRINCL, ICMP_FILTER, ICMP6_FILTER, IPV6_CHECKSUM,
//!   the options its entry keeps, multicast memberships among them), an AF_PACKET socket
//!   ([`crate::net::packet::PacketImage`]: protocol, interface index, statistics,
//!   PACKET_ADD_MEMBERSHIP entries, options), a memfd by index, a FIFO opened by path (the pipe's identity, equal for
//!   every opener, and its buffered bytes), a POSIX message queue, an inotify instance (by
//!   index), a pidfd (the process's global PID, or that it was reaped), an end of a pty
//!   pair of the container's `/dev/pts` (the path it was opened by and the whole pair,
//!   [`crate::tty::image::PtyImage`], equal for every file of the pair), the container's
//!   console (the path it was opened by and [`crate::tty::image::ConsoleImage`], equal for
//!   every file of it);
//! - `memfd_create` files (`memfds`, [`MemfdImage`]): name, contents, seals, mode and owner,
//!   once each however many descriptions open them;
//! - the interest lists of epoll instances (`epolls`, [`EpollImage`]): per item the fd
//!   number, the open file description watched, the events, the data and whether
//!   EPOLLONESHOT disarmed it; readiness is polled afresh on restore (an edge-triggered item
//!   whose file is ready reports it once more);
//! - the endpoints of AF_UNIX sockets (`unix`, [`crate::net::unix::EndpointImage`]): kind,
//!   name (a path with the identity its socket file had, or an abstract name) and whether
//!   it is bound there, peer and the peer's name, a listener's backlog and the server ends
//!   of the connections waiting in its accept queue, queued messages with their
//!   credentials, the sender they count against, the sender's name and the open file
//!   descriptions in flight with them (SCM_RIGHTS), shutdown state, pending error and
//!   socket options;
//! - the open file descriptions in flight that no fd holds (`in_flight`, saved as an fd's
//!   are, with fd -1; a socket in flight brings its endpoints);
//! - System V semaphore sets (values, SEM_UNDO adjustments), message queues (their
//!   messages) and shared memory segments (size, times, PIDs, whether IPC_RMID removed one
//!   still attached, and where its pages lie in the memory file, saved with the rest of
//!   it), with their identifiers, keys, owners and modes (`ipc`); POSIX message queues
//!   (`ipc.mq`: those fds hold first, by index, then the named ones no fd holds; name or
//!   none once unlinked, limits, owner and mode, messages with their priorities, and the
//!   `mq_notify` registration, kept since its process has its PID again);
//! - inotify instances (`inotify`, [`crate::vfs::inotify::InotifyImage`]): each watch by
//!   the path it was added by, its mask, descriptor and the file's identity then (a restore
//!   refuses a host file that is another one now and watches the new inode of a file it
//!   put back in a tmpfs), the next descriptor and the events not read yet;
//! - the memory file's used ranges with their reference counts;
//! - the files of every tmpfs mount and of every overlay's upper layer ([`TmpfsImage`]:
//!   directories, regular files with their bytes, symlinks, FIFOs, socket files with the
//!   identity they had through the mount, whiteouts; mode, owner and times; each inode
//!   once, its further names as links to the first);
//! - the platform the sandbox ran on (patched system-call sites jump into its stub).
//!
//! Format 2 added to format 1: the open file description of each fd (`description`, equal
//! for fds that share one), the program break of each address space, each process's
//! executable, argument area, limits and container, `comm`, the platform and the tmpfs
//! files; zombies' status became a wait status word. Format 3 added unnamed AF_UNIX sockets
//! (socket pairs, stream, datagram and seqpacket, with their queued data), eventfds, and
//! shared mappings of files opened read-only (saved without pages: the file is read
//! again). Format 4 added the processes' timers, timerfds, signalfds, epoll instances and
//! TCP and UDP sockets: a listening socket is bound and listening again after a restore
//! (connections waiting in its accept queue are lost), a bound UDP socket is bound again
//! (datagrams queued are lost), and an established TCP connection comes back **reset**
//! (ECONNRESET once, then end of file; writes EPIPE): its peer's state is not saved; and
//! System V semaphore sets and message queues, and memfds. Format 5 added System V shared
//! memory segments and their attachments, POSIX message queues, open FIFOs and FIFO nodes
//! in tmpfs, pidfds and inotify instances; named AF_UNIX sockets (bound to a path or an
//! abstract name, listening with the connections waiting in their accept queue, connected
//! to a name; a restored path socket is bound to the socket file put back at its path, and
//! one whose file was unlinked stays unreachable by it, as before), socket files in tmpfs,
//! files in flight over SCM_RIGHTS, connected UDP sockets and ping sockets (bound and
//! connected again; datagrams and replies queued are lost, as for a bound UDP socket), and
//! netlink sockets (with their replies not read).
//! Format 6 added raw IP and packet sockets (bound, connected and with their options again;
//! packets and frames queued are lost, as for a bound UDP socket; no socket filter can be
//! attached to either, so none is saved); the sentry's pseudo-terminals: each pty pair
//! of the container's `/dev/pts` (opened by path, through `/dev/ptmx` or TIOCGPTPEER) with
//! its number, `TIOCSPTLCK` lock, packet mode and the status its master has not read,
//! whether it hung up, its termios and window size, the line discipline's buffers in both
//! directions, the session it controls with that session's foreground group, and its node's
//! mode and owner (a restore makes the pair again under its number and records it as its
//! session's controlling terminal); the UTS, IPC, network and
//! user namespaces tasks hold (`namespaces`, [`super::ns::NamespacesImage`]: each task's
//! [`TaskImage::namespaces`] and each socket's `netns` name them by index; a nested IPC
//! namespace with its System V semaphore sets and message queues and named POSIX queues, a
//! nested network namespace loopback-only with its sockets, a user namespace with its maps,
//! setgroups setting, owner and parent; inode numbers are kept); writable shared mappings of
//! tmpfs files and of memfds (without pages: the pages are the file's, saved with its
//! contents; [`VmaImage::memfd`] names a mapped memfd); `/proc` files held open (by path
//! and offset, reopened once the processes are back) and pipes reopened through
//! `/proc/[pid]/fd` (another description of the same pipe); a process blocked in vfork
//! ([`TaskImage::vfork_child`], with vfork's return value in its rax) and the link from its
//! child ([`TaskImage::vfork_parent`]): the restored parent waits again until the child
//! execs or exits, then returns from vfork (the address space they share is saved once);
//! and each task's seccomp mode, filter chain and `no_new_privs` ([`TaskImage::seccomp`]:
//! the programs are in `seccomp_filters`, each distinct filter once naming the one below
//! it, so threads and fork children share their common filters again and TSYNC still
//! works; [`super::seccomp`]).
//! Format 7 added the container's console (its init's host terminal, `process.terminal`:
//! a host pty whose master went to the runtime's console socket, a `FileImage::Console`
//! for each file of it): the termios the host pty had (ICANON, ECHO, ISIG, the control
//! characters...), its window size, the session it controls with that session's
//! foreground group, and its `/dev/pts` node's number, mode and owner. A restore puts
//! them onto the console of its own invocation (a new host pty, whose master goes to the
//! restore's console socket) and records it as its session's controlling terminal; input
//! and output the old host pty buffered are the host's and are lost; a restore given no
//! console is refused. The terminal of an exec'd process is refused.
//! Format 7 also added PID namespaces below the container's (`namespaces.pid`,
//! [`super::pidns::PidNsImage`], a parent before its children: inode number, next ID, every
//! `[global, local]` ID pair it holds, so process groups and sessions keep theirs, its init
//! and whether that init exited), each task's ID in the container's namespace
//! ([`TaskImage::container_vtid`]) and its process's PID namespace and `pid_for_children`
//! (what `unshare(CLONE_NEWPID)` or setns(2) chose; [`super::ns::TaskNsImage`]): a restored
//! task of a nested namespace has its IDs at every level, its namespace's init is its
//! child reaper again, and numbering continues above the saved IDs; and open
//! `/proc/[pid]/ns/*` files ([`FileImage::Namespace`], [`super::ns::NsFileImage`]: the kind
//! and index of the namespace named, which the image saves even when only the file holds
//! it), reopened on restore so that setns(2) through them joins the same namespace.
//! Format 8 added the netfilter tables of each network namespace whose internet stack had
//! started (`netfilter`, [`NetfilterNsImage`]: per namespace index, every table of both
//! families, [`crate::net::netfilter::TableImage`]: name, valid hooks, hook entries and
//! underflows, the number of entries, and the entries as `IPT_SO_GET_ENTRIES` gives them,
//! with each rule's packet and byte counters). A restore checks them again as an
//! `IPT_SO_SET_REPLACE` would and takes the counters; the connections REDIRECT translated
//! are not saved (their TCP connections come back reset).
//! Format 8 also added the container's mount tree (`mounts`, [`MountImage`]: each visible
//! mount's path, type, source, read-only and other flags, and a tmpfs's limits, in the
//! order they were made). A restore compares it with the mounts the bundle makes: a flag
//! changed at run time (a remount read-only) is set again, a tmpfs mounted at run time is
//! made again with its limits (its files are saved as every tmpfs's), a mount of the
//! bundle that was unmounted goes, and any other mount the bundle does not make is refused
//! by name.
//! Format 9 replaced `mounts` with every mount namespace tasks use (`mount_namespaces`,
//! [`MountNsImage`], the oldest first; each task's [`TaskImage::mount_ns`] names its own):
//! the user namespace that owns it and every mount of its table, covered ones too
//! ([`MountImage`]: ID, parent ID, mountpoint, type, source, flags, root within its
//! filesystem, the filesystem's options, peer group and master, `MNT_LOCKED` and the flags
//! locked with it, a tmpfs's limits), and what the mounts show (`mount_roots`,
//! [`MountRootImage`]): mounts showing one inode share a root; of the roots of one
//! filesystem (same type and device) the one showing the most of it is the filesystem's
//! (the bundle's mount of that kind at that place, or a tmpfs made again), the others
//! (bind mounts, of a directory or a file, and the copies a recursive bind made) a path
//! below it. A restore loads the oldest namespace into the bundle's and the others into
//! copies of it, with the same IDs, peer groups and masters, so every task sees the tree it
//! saw and a mount on a shared mount propagates to its peers and slaves again. Each tmpfs's
//! files ([`TmpfsImage`]) are saved once, by the namespace and ID of the mount that shows
//! its root. A proc, mqueue or sysfs filesystem made at run time (not one the bundle
//! makes at that place) is refused by the restore, by name; an overlay other than the
//! root, a devpts instance other than the container's `/dev/pts`, a filesystem other than a
//! tmpfs that only a namespace newer than the oldest shows (`unshare -m --mount-proc`'s
//! proc), and a bind mount of a part of a filesystem no other mount shows (its root
//! unmounted) are refused by the checkpoint.
//! Format 9 also added the times of tmpfs and overlay upper-layer files ([`TmpEntry::times`],
//! and [`TmpfsImage::root_times`] for the root directory: access, modification and change
//! times with their nanoseconds) and their hard links: an inode is saved once, at its
//! first name in pre-order, and each further name is a [`TmpNodeImage::Link`] to that
//! path, so that a restore makes them names of one inode again (same `st_ino`, the same
//! `st_nlink`). The restore gives every file its saved times once all entries are back,
//! the change time included: CRIU saves a tmpfs as a tar archive and restores it by
//! extracting it, which gives back hard links and modification times but cannot give back
//! the change time (Linux has no call that sets it), so there the change time is the
//! restore's; the sentry owns its inodes and the restore
//! puts back the same file unchanged, so it keeps the saved change time, as gVisor's own
//! save/restore does.
//! Format 10 added the clock of a POSIX timer on a CPU-time clock ([`PosixTimerImage::cpu`]:
//! whose CPU time, by global thread or process ID, and whether user time only); its `armed`
//! is then the time left on that clock.
//! [`super::restore`] reads it.
//!
//! Anything else (sockets of the host's stack (`--network host`), a FIFO reopened through
//! `/proc`, a `/proc/[pid]/ns/mnt` file, sysfs files, the host terminal of an exec'd
//! process (its master went to that exec's caller), a pty of a devpts mount other than the
//! container's `/dev/pts`; a task in a cgroup namespace of its own; the mounts named
//! under format 9 above; in a nested
//! IPC namespace, shared memory segments and message queues an fd
//! holds; a socket or mapped memfd no task or fd holds the namespace or file of; a signalfd
//! whose creating process exited; an epoll item whose file no fd holds; a writable shared
//! mapping of a host file; a device node in a tmpfs;
//! a socket file in the sentry's `/dev`, which is not saved; a FUSE mount or a `/dev/fuse` file)
//! makes the checkpoint fail with `cannot checkpoint: ... (kind not supported yet)`, never
//! a silently wrong image. What is not saved yet is listed in the image itself
//! ([`KernelImage::not_saved`], from [`NOT_SAVED`]): filesystems other than tmpfs made at run time (a restore refuses them unless the
//! bundle makes them at the same place), mount namespace inode numbers, and the files an
//! open file of another mount namespace than the oldest one names (a restore reopens
//! paths in the oldest one's).
//! Timers keep relative time: one armed for an absolute CLOCK_REALTIME time fires after the
//! time that was left, whatever the clock says after the restore. Futex waiters need nothing: a waiter
//! restarts its `futex` call, and the futex word is in saved memory.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use zerocopy::IntoBytes;

use super::task::{Restart, RestartBlock};
use super::{Kernel, Task};
use crate::vfs::{FileKind, OpenFile};

/// The version of the image format this build reads and writes.
pub const FORMAT_VERSION: u32 = 10;

/// State a checkpoint does not save yet, listed in every image (`not_saved`) so that an
/// image says itself what it lacks. File contents of tmpfs and overlay upper layers live in
/// the sentry's heap, not in the memory file.
pub const NOT_SAVED: &[&str] = &[
    "filesystems other than tmpfs made at run time (proc, mqueue...: a restore refuses them unless the bundle makes them at the same place; bind mounts of any filesystem are kept), the inode numbers of mount namespaces, and open files and mappings by path in mount namespaces other than the oldest (reopened in the oldest one's tree)",
];

/// Why a checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot checkpoint: {what} (kind not supported yet)")]
    Unsupported { what: String },
    #[error("cannot checkpoint: task {tid} did not stop at a safe point")]
    NotStopped { tid: i32 },
    #[error("cannot checkpoint: reading the FP state of task {tid}: {source}")]
    Fp {
        tid: i32,
        #[source]
        source: platform::Error,
    },
    /// A task's own recording failed (the message of its error).
    #[error("{0}")]
    Recorded(String),
    #[error("writing the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the image: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(
        "image format version {found} cannot be restored by this runsc-rs ({ours}), which reads format {FORMAT_VERSION} only"
    )]
    Version { found: u32, ours: String },
}

/// `header.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u32,
    pub runsc_rs_version: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub kernel_json_bytes: u64,
    pub memory_bytes: u64,
}

impl Header {
    /// The header of an image this build writes now.
    pub fn current(summary: &Summary) -> Header {
        Header {
            format_version: FORMAT_VERSION,
            runsc_rs_version: env!("CARGO_PKG_VERSION").to_owned(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            kernel_json_bytes: summary.kernel_json_bytes,
            memory_bytes: summary.memory_bytes,
        }
    }

    /// Parses `header.json` and checks that this build can read the image.
    ///
    /// # Errors
    /// `Encode` for a malformed header, `Version` for another format version.
    pub fn check(bytes: &[u8]) -> Result<Header, CheckpointError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            format_version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(bytes)?;
        if v.format_version != FORMAT_VERSION {
            return Err(CheckpointError::Version {
                found: v.format_version,
                ours: env!("CARGO_PKG_VERSION").to_owned(),
            });
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// What a checkpoint wrote.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Summary {
    pub tasks: usize,
    pub processes: usize,
    pub kernel_json_bytes: u64,
    pub memory_bytes: u64,
}

/// `kernel.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KernelImage {
    /// What this image does not hold although the sandbox may have it ([`NOT_SAVED`]); a
    /// restore must refuse an image whose list names state it cannot do without.
    pub not_saved: Vec<String>,
    /// The platform the sandbox ran on: patched system-call sites jump into its stub, so a
    /// restore runs on the same one.
    pub platform: String,
    pub hostname: String,
    pub tasks: Vec<TaskImage>,
    pub processes: Vec<ProcessImage>,
    pub mms: Vec<MmImage>,
    pub fd_tables: Vec<FdTableImage>,
    pub memory: Vec<MemoryRange>,
    /// The files of tmpfs mounts and of overlay upper layers.
    pub tmpfs: Vec<TmpfsImage>,
    /// The endpoints of AF_UNIX sockets ([`FileImage::Unix`] names them by index), with
    /// their connections and queued messages.
    pub unix: Vec<crate::net::unix::EndpointImage>,
    /// The interest lists of epoll instances ([`FileImage::Epoll`] names them by index).
    pub epolls: Vec<EpollImage>,
    /// System V semaphore sets (with SEM_UNDO adjustments) and message queues (with their
    /// messages), under their identifiers and keys.
    pub ipc: super::ipc::IpcImage,
    /// `memfd_create` files ([`FileImage::Memfd`] names them by index).
    pub memfds: Vec<MemfdImage>,
    /// inotify instances ([`FileImage::Inotify`] names them by index): watches by path and
    /// mask, queued events.
    pub inotify: Vec<crate::vfs::inotify::InotifyImage>,
    /// The open file descriptions in flight over AF_UNIX sockets (SCM_RIGHTS) that no fd
    /// holds, with `fd` -1 ([`crate::net::unix::MessageImage::fds`] names them by
    /// `description`, as it names those fds hold).
    pub in_flight: Vec<FdImage>,
    /// The UTS, IPC, network and user namespaces other than the initial ones
    /// ([`TaskImage::namespaces`] and [`FdImage::netns`] name them by index).
    pub namespaces: super::ns::NamespacesImage,
    /// The applications' seccomp filters, each distinct one once, every filter after the
    /// one below it ([`TaskImage::seccomp`] names a chain by its newest filter).
    #[serde(default)]
    pub seccomp_filters: Vec<super::seccomp::FilterImage>,
    /// The mount namespaces tasks use ([`TaskImage::mount_ns`] names them by index), the
    /// oldest first, each with every mount of its table.
    pub mount_namespaces: Vec<MountNsImage>,
    /// What the mounts show ([`MountImage::root`] names them by index): the root of a
    /// filesystem, or a directory or file of one (a bind mount's).
    pub mount_roots: Vec<MountRootImage>,
    /// The netfilter tables of each network namespace whose stack had started (one that
    /// had not has Linux's initial tables).
    pub netfilter: Vec<NetfilterNsImage>,
}

/// The netfilter tables of one network namespace (`netns`, an index as
/// [`FdImage::netns`]'s): every table of both families with its rules and counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetfilterNsImage {
    pub netns: usize,
    pub tables: crate::net::netfilter::NetfilterImage,
}

/// A `memfd_create` file: its name (without `memfd:`), contents, seals, mode and owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemfdImage {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    pub seals: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The memfds met while walking the fd tables, each once (by its inode).
#[derive(Default)]
struct Memfds {
    index: HashMap<usize, usize>,
    images: Vec<MemfdImage>,
}

/// One epoll instance: its interest list. Readiness is not saved: it is polled afresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpollImage {
    pub interests: Vec<InterestImage>,
}

/// One item of an epoll interest list: the fd number it was added by and the open file
/// description it watches (an index as [`FdImage::description`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterestImage {
    pub fd: i32,
    pub description: usize,
    pub events: u32,
    pub data: u64,
    /// EPOLLONESHOT fired and it was not re-armed.
    pub disarmed: bool,
}

/// A process's timers. Times are what was left when the checkpoint was taken: a restored
/// timer expires after the rest of its period, then every period.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimersImage {
    /// ITIMER_REAL (on the wall clock), ITIMER_VIRTUAL and ITIMER_PROF (on the process's
    /// CPU clocks); None: disarmed.
    pub real: Option<ItimerImage>,
    pub virt: Option<ItimerImage>,
    pub prof: Option<ItimerImage>,
    pub posix: Vec<PosixTimerImage>,
}

/// An armed timer: nanoseconds to its next expiration and its period (0: one-shot).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ItimerImage {
    pub remaining_ns: u64,
    pub interval_ns: u64,
}

/// A POSIX timer with its `sigevent`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PosixTimerImage {
    pub id: i32,
    pub clock: i32,
    pub notify: i32,
    pub signo: i32,
    pub value: u64,
    /// SIGEV_THREAD_ID's thread (global TID).
    pub thread: Option<i32>,
    /// None: disarmed.
    pub armed: Option<ItimerImage>,
    pub overrun: i32,
    /// The CPU-time clock it counts on (None: a wall clock); `armed` is then in that
    /// clock's time.
    #[serde(default)]
    pub cpu: Option<CpuClockImage>,
}

/// A POSIX timer's CPU-time clock: whose time (global IDs; None once its owner was reaped)
/// and whether user time only.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CpuClockImage {
    pub owner: Option<CpuClockOwnerImage>,
    pub user_only: bool,
}

/// Whose CPU time a [`CpuClockImage`] reads.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum CpuClockOwnerImage {
    Thread(i32),
    Process(i32),
}

impl CpuClockImage {
    fn of(clock: &super::cpu_timers::CpuClock) -> CpuClockImage {
        use super::cpu_timers::CpuClockOwner;
        let owner = match &clock.owner {
            CpuClockOwner::Thread(h) => h.upgrade().map(|h| CpuClockOwnerImage::Thread(h.tid())),
            CpuClockOwner::Process(tg) => {
                tg.upgrade().map(|tg| CpuClockOwnerImage::Process(tg.tgid))
            }
        };
        CpuClockImage {
            owner,
            user_only: clock.user_only,
        }
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A timer setting as `Timer::get` reports it, for the image.
pub(super) fn itimer_image(
    (value, interval): (Option<std::time::Duration>, Option<std::time::Duration>),
) -> Option<ItimerImage> {
    value.map(|v| ItimerImage {
        remaining_ns: nanos(v),
        interval_ns: interval.map_or(0, nanos),
    })
}

/// The timers of process `tg` (which must not hold its `timers` lock).
fn timers_image(tg: &super::ThreadGroup) -> TimersImage {
    use super::cpu_timers::cpu_clock;
    let times = tg.cpu_times();
    // The POSIX timers' CPU clocks, read without the timers lock (as the sampler does).
    let cpu_clocks: Vec<(i32, super::cpu_timers::CpuClock)> = {
        let timers = tg.timers.lock().unwrap();
        timers
            .posix
            .iter()
            .filter_map(|(&id, p)| Some((id, p.cpu_clock()?.clone())))
            .collect()
    };
    let cpu_now: HashMap<i32, std::time::Duration> = cpu_clocks
        .iter()
        .filter_map(|(id, c)| Some((*id, c.read()?)))
        .collect();
    let timers = tg.timers.lock().unwrap();
    TimersImage {
        real: timers.real.as_ref().and_then(|t| itimer_image(t.get())),
        virt: itimer_image(timers.virt.get(cpu_clock(&times, libc::ITIMER_VIRTUAL))),
        prof: itimer_image(timers.prof.get(cpu_clock(&times, libc::ITIMER_PROF))),
        posix: timers
            .posix
            .iter()
            .map(|(&id, p)| PosixTimerImage {
                id,
                clock: p.clock,
                notify: p.event.notify,
                signo: p.event.signo,
                value: p.event.value,
                thread: p.event.thread,
                // A CPU timer whose clock's owner is gone never expires again.
                armed: match (p.cpu_clock(), cpu_now.get(&id)) {
                    (None, _) => itimer_image(p.get(std::time::Duration::ZERO)),
                    (Some(_), Some(&now)) => itimer_image(p.get(now)),
                    (Some(_), None) => None,
                },
                overrun: p.overrun.load(std::sync::atomic::Ordering::Relaxed),
                cpu: p.cpu_clock().map(CpuClockImage::of),
            })
            .collect(),
    }
}

/// A mount namespace: the user namespace that owns it and its mounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountNsImage {
    /// An index as [`super::ns::TaskNsImage::user`]'s (0: the initial one).
    pub owner: usize,
    /// Every mount of its table, covered ones too: by mountpoint, each stack from the
    /// bottom.
    pub mounts: Vec<MountImage>,
}

/// A mount of a mount namespace, as `/proc/[pid]/mountinfo` shows it (IDs, peer groups
/// and masters are kept: a restore makes them again with the same numbers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountImage {
    pub id: u64,
    /// The ID of the mount it is on (0: the namespace's root).
    pub parent: u64,
    pub path: String,
    pub fs_type: String,
    pub source: String,
    pub readonly: bool,
    pub sb_readonly: bool,
    /// The other `MS_*` flags ([`crate::vfs::mount::MOUNT_FLAGS`]).
    pub flags: u64,
    /// What it shows, an index of [`KernelImage::mount_roots`].
    pub root: usize,
    /// Where its root is in its filesystem (mountinfo's fourth field).
    pub root_path: String,
    /// The filesystem's options mountinfo shows after its own (tmpfs `mode=`...).
    pub fs_options: String,
    /// Peer group (`shared:N`, 0: private) and master (`master:N`, 0: none).
    pub group: u64,
    pub master: u64,
    /// `MNT_LOCKED` and the flags locked with it ([`crate::vfs::Mount::locked_flags`]).
    pub locked: bool,
    pub locked_flags: u64,
    /// A tmpfs's limits and root attributes (its files are in [`KernelImage::tmpfs`]).
    pub tmpfs: Option<crate::fs::tmpfs::TmpfsLimitsImage>,
}

/// What a mount shows ([`MountImage::root`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MountRootImage {
    /// The root of a filesystem as the mount `mount` of namespace `ns` (of
    /// [`KernelImage::mount_namespaces`]) shows it, the filesystem's first mount showing
    /// the most of it: a restore takes the bundle's mount of that kind at that place, or
    /// makes a tmpfs again.
    Filesystem { ns: usize, mount: usize },
    /// The directory or file at `path` (relative, empty for that root itself) below the
    /// root `of` (a `Filesystem` one): what a bind mount shows.
    Below { of: usize, path: String },
}

/// The files of one tmpfs mount, or of the upper layer of the overlay mounted there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TmpfsImage {
    /// The mountpoint.
    pub mount: String,
    /// The mount ([`MountImage::id`]) in namespace `ns` of
    /// [`KernelImage::mount_namespaces`] that shows the filesystem's root.
    #[serde(default)]
    pub ns: usize,
    #[serde(default)]
    pub id: u64,
    pub overlay_upper: bool,
    /// The times of the root directory (of the mount, or of the upper layer).
    pub root_times: crate::fs::tmpfs::TimesImage,
    /// In pre-order: a directory before its entries.
    pub entries: Vec<TmpEntry>,
}

/// One file of a [`TmpfsImage`]; `path` is relative to the mount's root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TmpEntry {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Access, modification and change times (None for a whiteout and for a
    /// [`TmpNodeImage::Link`], whose inode has them at its first name).
    pub times: Option<crate::fs::tmpfs::TimesImage>,
    pub node: TmpNodeImage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TmpNodeImage {
    Dir {
        opaque: bool,
    },
    File {
        data: Vec<u8>,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A socket file (bind(2) made it): the device and inode it had as the mount showed
    /// them, which name the socket bound there ([`crate::net::unix::Addr::Path`]).
    Socket {
        dev: u64,
        ino: u64,
    },
    /// An overlay whiteout: the lower layer's file of this name was removed.
    Whiteout,
    /// A named pipe (its data, if open, is with the fds that hold it: [`FileImage::Fifo`]).
    Fifo,
    /// A further name (hard link) of the file saved earlier at `to` (a path relative to
    /// the same mount's root): each inode is saved once, at its first name in pre-order,
    /// and its link count is the number of names that point at it.
    Link {
        to: String,
    },
}

/// One task, as its own thread recorded it when it parked ([`Task::image`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskImage {
    pub tid: i32,
    pub tgid: i32,
    /// `comm`.
    pub comm: Vec<u8>,
    /// The TID as the task's own PID namespace numbers it, and that namespace's level.
    pub vtid: i32,
    pub pidns_level: usize,
    /// The TID as the container's PID namespace numbers it (`vtid` for a task of that
    /// namespace; a task of a namespace below it has an ID at every level between, which
    /// that namespace's image keeps: [`super::pidns::PidNsImage::ids`]).
    #[serde(default)]
    pub container_vtid: i32,
    /// `user_regs_struct` in its field order (r15 ... gs).
    pub regs: Vec<u64>,
    /// The XSAVE area.
    pub fp: Vec<u8>,
    /// How the system call the pause interrupted continues (none: it had finished).
    pub restart: Option<RestartImage>,
    /// Remaining nanoseconds of a sleep `restart_syscall` continues.
    pub sleep_remaining_ns: Option<u64>,
    pub sleep_rem_addr: Option<u64>,
    pub saved_mask: Option<u64>,
    pub mask: u64,
    /// Pending thread-directed signals as `siginfo_t` bytes.
    pub pending: Vec<Vec<u8>>,
    pub altstack: Vec<u8>,
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
    /// A vfork parent waiting for its child: the child's global TID (vfork's return value
    /// is already in `regs`' rax; a restore waits for that child again before returning).
    #[serde(default)]
    pub vfork_child: Option<i32>,
    /// The global TID of the vfork parent still waiting for this task to exec or exit.
    #[serde(default)]
    pub vfork_parent: Option<i32>,
    pub creds: CredsImage,
    pub root: String,
    pub cwd: String,
    pub umask: u32,
    /// Index into [`KernelImage::mms`] and [`KernelImage::fd_tables`].
    pub mm: usize,
    pub fds: usize,
    /// Its mount namespace, an index of [`KernelImage::mount_namespaces`].
    #[serde(default)]
    pub mount_ns: usize,
    /// The UTS, IPC, network and user namespaces it holds, as indices of
    /// [`KernelImage::namespaces`].
    pub namespaces: super::ns::TaskNsImage,
    /// Its seccomp mode, `no_new_privs` and chain (an index of
    /// [`KernelImage::seccomp_filters`]).
    #[serde(default)]
    pub seccomp: super::seccomp::SeccompImage,
    #[serde(skip)]
    ns_held: Option<(super::ns::Namespaces, Arc<crate::auth::UserNs>)>,
    #[serde(skip)]
    mm_ref: Option<Arc<crate::mm::MemoryManager>>,
    #[serde(skip)]
    fds_ref: Option<Arc<super::FdTable>>,
    #[serde(skip)]
    ns_ref: Option<Arc<crate::vfs::MountNamespace>>,
}

/// [`Restart`] in the image.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum RestartImage {
    Sys,
    NoIntr,
    NoHand,
    Block,
}

impl From<Restart> for RestartImage {
    fn from(r: Restart) -> RestartImage {
        match r {
            Restart::Sys => RestartImage::Sys,
            Restart::NoIntr => RestartImage::NoIntr,
            Restart::NoHand => RestartImage::NoHand,
            Restart::Block => RestartImage::Block,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredsImage {
    pub uid: [u32; 3],
    pub gid: [u32; 3],
    pub groups: Vec<u32>,
    pub caps: [u64; 5],
    pub securebits: u32,
}

/// One process (thread group).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessImage {
    pub tgid: i32,
    pub parent: i32,
    pub pgid: i32,
    pub sid: i32,
    pub exit_signal: i32,
    /// `sigaction` per signal: handler, flags, restorer, mask.
    pub actions: Vec<[u64; 4]>,
    pub shared_pending: Vec<Vec<u8>>,
    pub threads: Vec<i32>,
    /// A zombie's status as a wait status word.
    pub zombie: Option<i32>,
    /// The Loader's container the process belongs to.
    pub container: String,
    /// The executable's path (`/proc/[pid]/exe`) and where its argument and environment
    /// strings lie: `[arg_start, arg_end, env_start, env_end]`.
    pub exe: Option<String>,
    pub args: [u64; 4],
    /// Resource limits, `[soft, hard]` per resource.
    pub limits: Vec<[u64; 2]>,
    pub did_exec: bool,
    pub timers: TimersImage,
}

/// One address space.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MmImage {
    pub vmas: Vec<VmaImage>,
    /// Present pages: `[start, end)` at `file_offset` of the memory file.
    pub pages: Vec<PageRange>,
    pub brk: crate::mm::BrkState,
    /// Registered for `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (absent in older images: no).
    #[serde(default)]
    pub membarrier_private: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmaImage {
    pub start: u64,
    pub end: u64,
    /// `rwx`.
    pub perms: String,
    pub shared: bool,
    /// `[anon]`, `[heap]`, `[stack]` or the mapped file's path.
    pub name: String,
    pub offset: u64,
    pub dev: u64,
    pub ino: u64,
    /// A file backs it (reopened by `name` on restore); else anonymous memory.
    pub file: bool,
    /// A System V shared memory segment it attaches (by identifier): restored, it maps the
    /// segment's pages again, shared with every other attachment.
    pub shm: Option<i32>,
    /// Whether the mapping may be made writable (an attachment without SHM_RDONLY, a
    /// shared mapping of a tmpfs file or memfd open for writing).
    pub may_write: bool,
    /// The memfd it maps (an index of [`KernelImage::memfds`]): restored, it maps that
    /// memfd's pages again, shared with its fds.
    #[serde(default)]
    pub memfd: Option<usize>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PageRange {
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
    pub cow: bool,
}

/// One fd table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdTableImage {
    pub fds: Vec<FdImage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdImage {
    pub fd: i32,
    pub cloexec: bool,
    pub flags: u32,
    pub offset: u64,
    /// The open file description: equal for fds that share one (dup, fork).
    pub description: usize,
    pub file: FileImage,
    /// A socket's network namespace (an index of [`KernelImage::namespaces`]; 0: the
    /// initial one).
    #[serde(default)]
    pub netns: usize,
}

/// What an open file is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FileImage {
    /// A file opened by path: checked on restore against what it was.
    Path {
        path: String,
        fs_type: String,
        mode: u32,
        dev: u64,
        ino: u64,
        size: i64,
        mtime: (i64, i64),
    },
    /// A pipe end; `pipe` is equal for the ends of one pipe; `buffered` is what it held.
    Pipe { pipe: usize, buffered: Vec<u8> },
    /// A FIFO opened by path (for reading, writing or both, as the fd's flags say); `pipe`
    /// is equal for every opener of one FIFO's pipe, `buffered` is what it held.
    Fifo {
        path: String,
        pipe: usize,
        buffered: Vec<u8>,
    },
    /// A file the sandbox was given (the container's stdio), by its mode.
    Donated { mode: u32 },
    /// An unnamed AF_UNIX socket: its endpoint in [`KernelImage::unix`].
    Unix { endpoint: usize },
    /// An eventfd: its counter and whether it is a semaphore.
    EventFd { count: u64, semaphore: bool },
    /// A timerfd: its clock, setting (None: disarmed) and expirations not read yet.
    TimerFd {
        clock: i32,
        armed: Option<ItimerImage>,
        ticks: u64,
    },
    /// A signalfd: its mask and the process that created it (whose signals it reports).
    SignalFd { mask: u64, tgid: i32 },
    /// An epoll instance: its interest list in [`KernelImage::epolls`].
    Epoll { epoll: usize },
    /// A TCP or UDP socket of the sandbox's stack: bound and listening again on restore, a
    /// connection reset.
    Inet(crate::net::inet::InetImage),
    /// A ping socket of the sandbox's stack: bound and connected again on restore.
    Icmp(crate::net::icmp::IcmpImage),
    /// An AF_NETLINK socket: bound to its port id again on restore, with its replies.
    Netlink(crate::net::netlink::NetlinkImage),
    /// A raw IP socket of the sandbox's stack: bound and connected again on restore.
    Raw(crate::net::raw::RawImage),
    /// An AF_PACKET socket: bound to its interface and protocol again on restore.
    Packet(crate::net::packet::PacketImage),
    /// A `memfd_create` file: its contents and seals in [`KernelImage::memfds`].
    Memfd { memfd: usize },
    /// A POSIX message queue: its name, limits and messages in [`KernelImage::ipc`]'s `mq`.
    Mqueue { queue: usize },
    /// An inotify instance: its watches and events in [`KernelImage::inotify`].
    Inotify { inotify: usize },
    /// A pidfd: the global PID of its process (which keeps it across a restore); `reaped`:
    /// the process was reaped already, and the pidfd names none.
    PidFd { tgid: i32, reaped: bool },
    /// An open `/proc/[pid]/ns/*` file: the namespace it names (reopened on restore, so
    /// that setns(2) through it joins that namespace).
    Namespace(super::ns::NsFileImage),
    /// An end of a pty pair of the container's `/dev/pts`, opened by `path`; the pair's
    /// state is saved with each of its files ([`crate::tty::image`]).
    Pty {
        end: crate::tty::image::PtyEnd,
        path: Option<String>,
        pty: crate::tty::image::PtyImage,
    },
    /// The container's console, opened by `path`; its state is saved with each of its
    /// files and put onto the restore's console ([`crate::tty::image::ConsoleImage`]).
    Console {
        path: Option<String>,
        console: crate::tty::image::ConsoleImage,
    },
}

/// A used range of the memory file and its reference count.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MemoryRange {
    pub offset: u64,
    pub len: u64,
    pub refs: u32,
}

fn regs_words(r: &platform::Regs) -> Vec<u64> {
    vec![
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ]
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Task {
    /// Records this task for a checkpoint; called by the task itself when it parks
    /// (`restart` is how its interrupted system call continues).
    ///
    /// # Errors
    /// The platform could not give the FP state.
    pub(super) fn image(&mut self, restart: Option<Restart>) -> Result<TaskImage, CheckpointError> {
        // An image cannot hold a Landlock domain; restoring without it would lift it.
        if self.creds.landlock.is_some() {
            return Err(CheckpointError::Unsupported {
                what: format!("task {} is restricted by Landlock", self.tid),
            });
        }
        self.pull_fp().map_err(|source| CheckpointError::Fp {
            tid: self.tid,
            source,
        })?;
        let (mask, pending) = {
            let s = self.tg.sig();
            s.threads.get(&self.tid).map_or((0, Vec::new()), |t| {
                (
                    // Stopped inside rt_sigtimedwait, whose restart unblocks again.
                    if t.real_blocked != 0 {
                        t.real_blocked
                    } else {
                        t.mask
                    },
                    t.pending
                        .queued()
                        .iter()
                        .map(|i| i.as_bytes().to_vec())
                        .collect(),
                )
            })
        };
        // A sleep is what `restart_syscall` continues only when the pause interrupted it.
        let (sleep_remaining_ns, sleep_rem_addr) = match self.restart_block {
            Some(RestartBlock::Sleep { deadline, rem }) if restart == Some(Restart::Block) => (
                Some(
                    u64::try_from(
                        deadline
                            .saturating_duration_since(Instant::now())
                            .as_nanos(),
                    )
                    .unwrap_or(u64::MAX),
                ),
                Some(rem.0),
            ),
            _ => (None, None),
        };
        let c = &self.creds;
        Ok(TaskImage {
            tid: self.tid,
            tgid: self.tg.tgid,
            comm: self.handle.comm.lock().unwrap().clone(),
            vtid: self.vtid(),
            pidns_level: self.tg.pidns.level(),
            container_vtid: 0,
            regs: regs_words(&self.cpu.regs),
            fp: self.cpu.fp.area.clone(),
            restart: restart.map(RestartImage::from),
            sleep_remaining_ns,
            sleep_rem_addr,
            saved_mask: self.saved_mask,
            mask,
            pending,
            altstack: self.altstack.to_vec(),
            clear_child_tid: self.clear_child_tid,
            robust_list: self.robust_list,
            vfork_child: None,
            vfork_parent: self.vfork_done.as_ref().map(|d| d.parent_tid),
            creds: CredsImage {
                uid: [c.uid, c.euid, c.suid],
                gid: [c.gid, c.egid, c.sgid],
                groups: c.groups.to_vec(),
                caps: [
                    c.caps.permitted.0,
                    c.caps.effective.0,
                    c.caps.inheritable.0,
                    c.caps.bounding.0,
                    c.caps.ambient.0,
                ],
                securebits: c.securebits,
            },
            root: lossy(&self.fs.root().path),
            cwd: lossy(&self.fs.cwd().path),
            umask: self.fs.umask(),
            mm: 0,
            fds: 0,
            namespaces: super::ns::TaskNsImage::default(),
            mount_ns: 0,
            seccomp: super::seccomp::SeccompImage::default(),
            ns_held: Some((self.ns.clone(), self.creds.user_ns.clone())),
            mm_ref: Some(self.mm.clone()),
            fds_ref: Some(self.fds.clone()),
            ns_ref: Some(self.fs.ns.clone()),
        })
    }
}

/// Interns shared objects by identity: the index of each in its image list.
struct Interner<T> {
    index: HashMap<usize, usize>,
    items: Vec<Arc<T>>,
}

impl<T> Interner<T> {
    fn new() -> Interner<T> {
        Interner {
            index: HashMap::new(),
            items: Vec::new(),
        }
    }

    fn get(&self, item: &Arc<T>) -> Option<usize> {
        self.index
            .get(&(Arc::as_ptr(item) as *const () as usize))
            .copied()
    }

    fn intern(&mut self, item: &Arc<T>) -> usize {
        let key = Arc::as_ptr(item) as *const () as usize;
        *self.index.entry(key).or_insert_with(|| {
            self.items.push(item.clone());
            self.items.len() - 1
        })
    }
}

impl Kernel {
    /// Writes the image of this paused kernel: `kernel.json` to `state`, the memory file's
    /// used ranges to `memory` (the module documentation describes both).
    ///
    /// # Errors
    /// `Unsupported` (with what) for state the image cannot hold yet, `NotStopped` when a
    /// task has not parked, I/O and encoding failures.
    pub fn checkpoint(
        &self,
        state: &mut dyn Write,
        memory: &mut dyn Write,
    ) -> Result<Summary, CheckpointError> {
        let mut images = self.freezer.images();
        let mut filters = super::seccomp::FilterSaver::default();
        let (tasks, processes) = {
            let tree = self.tree();
            let mut tasks = Vec::new();
            for (tid, handle) in &tree.tasks {
                match images.remove(tid) {
                    Some(Ok(mut image)) => {
                        image.seccomp = filters.task(&handle.seccomp);
                        tasks.push(image)
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err(CheckpointError::NotStopped { tid: *tid }),
                }
            }
            // A zombie the Loader started (an exec'd process that exited, which the
            // runtime has not reaped yet) is left out: nothing in the sandbox can wait for
            // it, and the restored sandbox's runtime never knew it. Unless a process group
            // or session still bears its ID.
            let runtime_zombie = |tgid: i32, p: &super::pids::Proc| {
                p.zombie.is_some()
                    && p.parent == 0
                    && !tree.procs.values().any(|o| o.pgid == tgid || o.sid == tgid)
            };
            let processes: Vec<ProcessImage> = tree
                .procs
                .iter()
                .filter(|(&tgid, p)| !runtime_zombie(tgid, p))
                .map(|(&tgid, p)| {
                    let image = p.tg.image.lock().unwrap().clone();
                    let timers = timers_image(&p.tg);
                    let s = p.tg.sig();
                    ProcessImage {
                        tgid,
                        parent: p.parent,
                        pgid: p.pgid,
                        sid: p.sid,
                        exit_signal: p.exit_signal,
                        actions: s
                            .actions
                            .iter()
                            .map(|a| [a.handler, a.flags, a.restorer, a.mask])
                            .collect(),
                        shared_pending: s
                            .shared
                            .queued()
                            .iter()
                            .map(|i| i.as_bytes().to_vec())
                            .collect(),
                        threads: s.threads.keys().copied().collect(),
                        zombie: p.zombie.map(super::ExitStatus::wait_status),
                        container: p.tg.container.to_string(),
                        exe: image.exe.as_ref().map(|d| lossy(&d.path)),
                        args: [
                            image.strings.arg_start,
                            image.strings.arg_end,
                            image.strings.env_start,
                            image.strings.env_end,
                        ],
                        limits: p
                            .tg
                            .limits
                            .lock()
                            .unwrap()
                            .iter()
                            .map(|l| [l.cur, l.max])
                            .collect(),
                        did_exec: p.did_exec,
                        timers,
                    }
                })
                .collect();
            (tasks, processes)
        };
        let mut tasks = tasks;
        tasks.sort_by_key(|t| t.tid);
        // The container's processes are those of the shallowest PID namespace; the
        // namespaces below it are saved with every ID they hold.
        let pid_level = tasks.iter().map(|t| t.pidns_level).min().unwrap_or(0);
        let mut ns_saver = super::ns::NsSaver::new(self.initial_namespaces(), pid_level);
        let (mut mms, mut fd_tables) = (Interner::new(), Interner::new());
        // The mount namespaces tasks use, the oldest first (a restore loads that one into
        // the bundle's namespace, the others into copies of it).
        let mut mount_nss: Vec<Arc<crate::vfs::MountNamespace>> = Vec::new();
        for ns in tasks.iter().filter_map(|t| t.ns_ref.as_ref()) {
            if !mount_nss.iter().any(|n| Arc::ptr_eq(n, ns)) {
                mount_nss.push(ns.clone());
            }
        }
        mount_nss.sort_by_key(|n| n.inode());
        for t in &mut tasks {
            if let Some(ns) = t.ns_ref.take() {
                t.mount_ns = mount_nss
                    .iter()
                    .position(|n| Arc::ptr_eq(n, &ns))
                    .unwrap_or_default();
            }
            if let Some((ns, user)) = t.ns_held.take() {
                let pidns = self.tree().tasks.get(&t.tid).map(|h| h.tg.pidns.clone());
                if let Some(pidns) = pidns {
                    t.namespaces = ns_saver.task(&ns, &user, &pidns).map_err(|what| {
                        CheckpointError::Unsupported {
                            what: format!("task {} holds {what}", t.tid),
                        }
                    })?;
                    t.container_vtid = ns_saver
                        .container_pidns(&pidns)
                        .id_of(t.tid)
                        .unwrap_or(t.vtid);
                }
            }
            if let Some(mm) = t.mm_ref.take() {
                t.mm = mms.intern(&mm);
            }
            if let Some(fds) = t.fds_ref.take() {
                t.fds = fd_tables.intern(&fds);
            }
        }
        let mut descriptions = Interner::new();
        let mut unix = crate::net::unix::Saver::default();
        let mut epolls = Interner::new();
        let mut memfds = Memfds::default();
        let mut mqueues = Interner::new();
        let mut inotify = Interner::new();
        let nets = ns_saver.nets();
        let fd_tables = fd_tables
            .items
            .iter()
            .map(|table| {
                let mut image = fd_table_image(
                    table,
                    &mut descriptions,
                    &mut unix,
                    &mut epolls,
                    &mut memfds,
                    &mut mqueues,
                    &mut inotify,
                )?;
                for f in &mut image.fds {
                    if let Ok(file) = table.get(f.fd) {
                        f.netns = socket_netns(&file, &nets)?;
                    }
                    resolve_ns_file(f, &mut ns_saver)?;
                }
                Ok(image)
            })
            .collect::<Result<Vec<_>, CheckpointError>>()?;
        // The endpoints the tables reach, and what their queued messages carry: a file in
        // flight is saved as an fd's is, and may be a socket with more endpoints.
        let mut in_flight = Vec::new();
        loop {
            let mut flying = Vec::new();
            unix.save_pending(&mut |file| {
                if let Some(d) = descriptions.get(file) {
                    return d;
                }
                flying.push(file.clone());
                descriptions.intern(file)
            });
            if flying.is_empty() {
                break;
            }
            for file in flying {
                let mut f = FdImage {
                    fd: -1,
                    cloexec: false,
                    flags: file.flags(),
                    offset: *file.offset.lock().unwrap(),
                    description: descriptions.intern(&file),
                    netns: socket_netns(&file, &nets)?,
                    file: file_image(
                        "a file in flight (SCM_RIGHTS)",
                        &file,
                        &mut unix,
                        &mut epolls,
                        &mut memfds,
                        &mut mqueues,
                        &mut inotify,
                    )?,
                };
                resolve_ns_file(&mut f, &mut ns_saver)?;
                in_flight.push(f);
            }
        }
        let unix = unix
            .finish(&|names| nets.iter().position(|n| Arc::ptr_eq(&n.unix_names, names)))
            .map_err(|what| CheckpointError::Unsupported { what })?;
        let inotify = inotify
            .items
            .iter()
            .map(|i| {
                i.saved()
                    .map_err(|what| CheckpointError::Unsupported { what })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let epolls = epolls
            .items
            .iter()
            .map(|ep| epoll_image(ep, &descriptions))
            .collect::<Result<Vec<_>, _>>()?;
        // A FIFO reopened through /proc is a description of the FIFO's pipe, which the
        // image names by path only.
        let fifo_pipes: std::collections::HashSet<usize> = fd_tables
            .iter()
            .flat_map(|t| &t.fds)
            .chain(&in_flight)
            .filter_map(|f| match f.file {
                FileImage::Fifo { pipe, .. } => Some(pipe),
                _ => None,
            })
            .collect();
        if let Some(f) = fd_tables
            .iter()
            .flat_map(|t| &t.fds)
            .chain(&in_flight)
            .find(|f| matches!(f.file, FileImage::Pipe { pipe, .. } if fifo_pipes.contains(&pipe)))
        {
            return Err(CheckpointError::Unsupported {
                what: format!("fd {} is a FIFO reopened through /proc", f.fd),
            });
        }
        // A signalfd reports the signals of the process that made it: that process must
        // be in the image.
        for f in fd_tables.iter().flat_map(|t| &t.fds) {
            if let FileImage::SignalFd { tgid, .. } = f.file {
                if !processes
                    .iter()
                    .any(|p| p.tgid == tgid && p.zombie.is_none())
                {
                    return Err(CheckpointError::Unsupported {
                        what: format!(
                            "fd {} is a signalfd whose creating process {tgid} has exited",
                            f.fd
                        ),
                    });
                }
            }
        }
        let segments = self.ipc.shm.segments();
        let mms = mms
            .items
            .iter()
            .map(|mm| mm_image(mm, &segments, &memfds.index))
            .collect::<Result<Vec<_>, _>>()?;
        let owners = mount_nss
            .iter()
            .map(|ns| ns_saver.user(ns.owner()))
            .collect::<Vec<_>>();
        let (mount_namespaces, mount_roots) = mount_tree_image(&mount_nss, &owners)?;
        let mut tmpfs = Vec::new();
        for (index, ns) in mount_nss.iter().enumerate() {
            tmpfs.extend(tmpfs_images(ns, index, &mount_roots, &mount_namespaces)?);
        }
        let ipc = self
            .ipc
            .saved(&mqueues.items)
            .map_err(|what| CheckpointError::Unsupported { what })?;
        let netfilter = nets
            .iter()
            .enumerate()
            .filter_map(|(netns, n)| {
                let tables = n.started_inet()?.netfilter.image();
                Some(NetfilterNsImage { netns, tables })
            })
            .collect();
        let namespaces = ns_saver
            .finish(&mqueues.items)
            .map_err(|what| CheckpointError::Unsupported { what })?;
        let mut memory_ranges = Vec::new();
        let mut memory_bytes = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        for (offset, len, refs) in self.memory.used_ranges() {
            memory_ranges.push(MemoryRange { offset, len, refs });
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                self.memory.read(offset + done, &mut buf[..n]);
                memory.write_all(&buf[..n])?;
                done += n as u64;
            }
            memory_bytes += len;
        }
        memory.flush()?;
        let image = KernelImage {
            not_saved: NOT_SAVED.iter().map(|s| (*s).to_owned()).collect(),
            platform: self.platform.name().to_owned(),
            hostname: self.uts.names().hostname.clone(),
            tasks,
            processes,
            mms,
            fd_tables,
            memory: memory_ranges,
            tmpfs,
            unix,
            epolls,
            ipc,
            memfds: memfds.images,
            inotify,
            in_flight,
            namespaces,
            seccomp_filters: filters.finish(),
            mount_namespaces,
            mount_roots,
            netfilter,
        };
        let json = serde_json::to_vec(&image)?;
        state.write_all(&json)?;
        state.flush()?;
        Ok(Summary {
            tasks: image.tasks.len(),
            processes: image.processes.len(),
            kernel_json_bytes: json.len() as u64,
            memory_bytes,
        })
    }
}

/// The mount tables of `nss` (whose owners' indices are `owners`) and what their mounts
/// show. Mounts showing the same inode share a root; the roots of one filesystem (same
/// type and device) are all below the one of them that shows the most of it, a
/// [`MountRootImage::Filesystem`], which a restore gets from the bundle or makes again.
///
/// # Errors
/// What cannot be made again: a bind mount of a part of its filesystem no other mount
/// shows (the filesystem's root was unmounted), an overlay other than the root (its layers
/// are not saved), a devpts instance other than the container's `/dev/pts`, a filesystem
/// other than a tmpfs that only a namespace newer than the oldest shows (made at run time).
fn mount_tree_image(
    nss: &[Arc<crate::vfs::MountNamespace>],
    owners: &[usize],
) -> Result<(Vec<MountNsImage>, Vec<MountRootImage>), CheckpointError> {
    // Each distinct root with the first mount that shows it.
    let mut roots: Vec<(Arc<crate::vfs::Mount>, usize, usize)> = Vec::new();
    let mut images = Vec::with_capacity(nss.len());
    for (ni, ns) in nss.iter().enumerate() {
        let mut mounts = Vec::new();
        for (mi, m) in ns.saved_mounts().into_iter().enumerate() {
            let root = match roots
                .iter()
                .position(|(r, ..)| std::ptr::addr_eq(Arc::as_ptr(&r.root), Arc::as_ptr(&m.root)))
            {
                Some(i) => i,
                None => {
                    roots.push((m.clone(), ni, mi));
                    roots.len() - 1
                }
            };
            mounts.push(MountImage {
                id: m.id,
                parent: m.parent,
                path: lossy(&m.path),
                fs_type: m.fs_type.to_owned(),
                source: m.source.clone(),
                readonly: m.readonly,
                sb_readonly: m.sb_readonly,
                flags: m.flags,
                root,
                root_path: lossy(&m.root_path),
                fs_options: m.fs_options.clone(),
                group: m.group,
                master: m.master,
                locked: m.locked,
                locked_flags: m.locked_flags,
                tmpfs: (m.fs_type == "tmpfs")
                    .then(|| {
                        m.root
                            .clone()
                            .as_any()
                            .downcast::<crate::fs::tmpfs::TmpNode>()
                            .ok()
                    })
                    .flatten()
                    .map(|root| root.limits_image()),
            });
        }
        images.push(MountNsImage {
            owner: owners.get(ni).copied().unwrap_or_default(),
            mounts,
        });
    }
    // The filesystem of each root: its type and device (the console's node, bound over
    // `/dev/console`, is a root of its own: a restore binds its own console there).
    let fs_of = |i: usize| -> Result<(&'static str, u64), CheckpointError> {
        let m = &roots[i].0;
        if m.path == b"/dev/console" {
            return Ok(("console", i as u64));
        }
        let st = m.root.stat().map_err(|err| CheckpointError::Unsupported {
            what: format!("the {} mount at {} ({err:?})", m.fs_type, lossy(&m.path)),
        })?;
        Ok((m.fs_type, st.dev))
    };
    let keys = (0..roots.len()).map(fs_of).collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(roots.len());
    for (i, (m, ns, mount)) in roots.iter().enumerate() {
        let first = (0..roots.len())
            .filter(|&j| keys[j] == keys[i])
            .min_by_key(|&j| (roots[j].0.root_path.len(), j))
            .unwrap_or(i);
        let unsupported = |why: &str| CheckpointError::Unsupported {
            what: format!("the {} mount at {} ({why})", m.fs_type, lossy(&m.path)),
        };
        if first != i {
            let below = crate::vfs::rebase(&m.root_path, &roots[first].0.root_path, b"")
                .ok_or_else(|| {
                    unsupported("a bind mount of a part of its filesystem no other mount shows")
                })?;
            out.push(MountRootImage::Below {
                of: first,
                path: lossy(below.strip_prefix(b"/").unwrap_or(&below)),
            });
            continue;
        }
        match m.fs_type {
            "overlay" if m.path != b"/" => {
                return Err(unsupported(
                    "an overlay made at run time: its layers are not saved",
                ))
            }
            t if t == "fuse" || t.starts_with("fuse.") => {
                return Err(unsupported(
                    "a FUSE filesystem: its daemon's connection and the daemon's view of its inodes are not saved",
                ))
            }
            "devpts" if m.path != b"/dev/pts" && m.path != b"/dev/console" => {
                return Err(unsupported(
                    "a devpts instance of its own: its options are not saved",
                ))
            }
            // The bundle's filesystems are made in the container's namespace: one that only
            // a newer namespace shows was made at run time there (`unshare --mount-proc`),
            // and what it was made of (a PID or IPC namespace...) is not saved.
            "tmpfs" => {}
            _ if *ns != 0 => {
                return Err(unsupported(
                    "a filesystem made at run time in a mount namespace of its own",
                ))
            }
            _ => {}
        }
        out.push(MountRootImage::Filesystem {
            ns: *ns,
            mount: *mount,
        });
    }
    Ok((images, out))
}

/// The files of every tmpfs filesystem of `ns` (the `index`th of the image's mount
/// namespaces) that the image makes again there ([`MountRootImage::Filesystem`]), but the
/// sentry's own `/dev`, and of the upper layer of every overlay.
fn tmpfs_images(
    ns: &crate::vfs::MountNamespace,
    index: usize,
    roots: &[MountRootImage],
    images_of: &[MountNsImage],
) -> Result<Vec<TmpfsImage>, CheckpointError> {
    use crate::fs::overlay::OvlNode;
    use crate::fs::tmpfs::TmpNode;
    let mut images = Vec::new();
    for (mi, m) in ns.saved_mounts().into_iter().enumerate() {
        let defines = images_of[index].mounts.get(mi).is_some_and(|i| {
            matches!(roots.get(i.root), Some(MountRootImage::Filesystem { ns, mount }) if (*ns, *mount) == (index, mi))
        });
        if !defines {
            continue;
        }
        let visible = m.path == b"/" || ns.mount_at(&m.path).is_some_and(|v| v.id == m.id);
        if m.source == "devtmpfs" {
            // Not saved (the restored sandbox makes its own): a socket bound there would
            // come back unreachable by its name.
            let root = m.root.clone().as_any().downcast::<TmpNode>().ok();
            if let Some(path) = root.and_then(|r| socket_file_in(&r, &lossy(&m.path))) {
                return Err(CheckpointError::Unsupported {
                    what: format!("the socket file {path} in the sentry's /dev"),
                });
            }
            continue;
        }
        let root = m.root.clone().as_any();
        let (root, overlay_upper) = match (m.fs_type, root) {
            ("tmpfs", root) => match root.downcast::<TmpNode>() {
                Ok(n) => (n, false),
                Err(_) => continue,
            },
            ("overlay", root) => match root
                .downcast::<OvlNode>()
                .ok()
                .and_then(|o| o.upper_layer())
            {
                Some(n) => (n, true),
                None => continue,
            },
            _ => continue,
        };
        let mut entries = Vec::new();
        tmp_entries(
            &root,
            "",
            &mut entries,
            &mut HashMap::new(),
            &lossy(&m.path),
        )?;
        // A socket's name holds the identity its file has through the mount (an overlay
        // reports its own device and numbers), so it is asked of the path.
        let resolver = crate::vfs::Resolver::new(crate::vfs::Caller::kernel(), ns.root(), ns);
        for e in &mut entries {
            if let TmpNodeImage::Socket { dev, ino } = &mut e.node {
                if !visible {
                    return Err(CheckpointError::Unsupported {
                        what: format!(
                            "the socket file {} in a covered tmpfs at {}",
                            e.path,
                            lossy(&m.path)
                        ),
                    });
                }
                let mut path = m.path.clone();
                if path != b"/" {
                    path.push(b'/');
                }
                path.extend_from_slice(e.path.as_bytes());
                let st = resolver
                    .resolve(ns.root(), &path, false)
                    .and_then(|d| d.inode.stat())
                    .map_err(|err| CheckpointError::Unsupported {
                        what: format!("the socket file {} ({err:?})", lossy(&path)),
                    })?;
                (*dev, *ino) = (st.dev, st.ino);
            }
        }
        images.push(TmpfsImage {
            mount: lossy(&m.path),
            ns: index,
            id: m.id,
            overlay_upper,
            root_times: root.times_image(),
            entries,
        });
    }
    Ok(images)
}

/// The path of a socket file under `dir` (whose path is `prefix`), if there is one.
fn socket_file_in(dir: &crate::fs::tmpfs::TmpNode, prefix: &str) -> Option<String> {
    use crate::vfs::Inode;
    for (name, node) in dir.children() {
        if node.is_whiteout() {
            continue;
        }
        let path = format!("{prefix}/{}", lossy(&name));
        match node.stat().map(|st| st.mode & libc::S_IFMT) {
            Ok(libc::S_IFSOCK) => return Some(path),
            Ok(libc::S_IFDIR) => {
                if let Some(p) = socket_file_in(&node, &path) {
                    return Some(p);
                }
            }
            _ => {}
        }
    }
    None
}

/// Appends the entries under `dir` (whose path is `prefix`) to `out`, in pre-order;
/// `first_names` maps each file (not directory) met so far to the path it was saved at,
/// so that its further names are saved as [`TmpNodeImage::Link`]s to it.
fn tmp_entries(
    dir: &crate::fs::tmpfs::TmpNode,
    prefix: &str,
    out: &mut Vec<TmpEntry>,
    first_names: &mut HashMap<usize, String>,
    mount: &str,
) -> Result<(), CheckpointError> {
    use crate::vfs::Inode;
    for (name, node) in dir.children() {
        let path = format!("{prefix}{}", lossy(&name));
        let unsupported = |what: &str| CheckpointError::Unsupported {
            what: format!("{what} {path} in the tmpfs at {mount}"),
        };
        let image = if node.is_whiteout() {
            TmpNodeImage::Whiteout
        } else {
            let st = node.stat().map_err(|_| unsupported("unreadable"))?;
            let is_dir = st.mode & libc::S_IFMT == libc::S_IFDIR;
            let key = Arc::as_ptr(&node) as usize;
            if let Some(to) = first_names.get(&key).filter(|_| !is_dir) {
                out.push(TmpEntry {
                    path,
                    mode: st.mode,
                    uid: st.uid,
                    gid: st.gid,
                    times: None,
                    node: TmpNodeImage::Link { to: to.clone() },
                });
                continue;
            }
            if !is_dir {
                first_names.insert(key, path.clone());
            }
            let kind = match st.mode & libc::S_IFMT {
                libc::S_IFDIR => TmpNodeImage::Dir {
                    opaque: node.is_opaque(),
                },
                libc::S_IFREG => TmpNodeImage::File {
                    data: node.contents().map_err(|_| unsupported("unreadable"))?,
                },
                libc::S_IFLNK => TmpNodeImage::Symlink {
                    target: node
                        .readlink(&crate::vfs::Caller::kernel())
                        .map_err(|_| unsupported("unreadable"))?,
                },
                libc::S_IFIFO => TmpNodeImage::Fifo,
                // Its identity as the mount shows it is filled in by `tmpfs_images`.
                libc::S_IFSOCK => TmpNodeImage::Socket { dev: 0, ino: 0 },
                _ => return Err(unsupported("a special file")),
            };
            out.push(TmpEntry {
                path: path.clone(),
                mode: st.mode,
                uid: st.uid,
                gid: st.gid,
                times: Some(node.times_image()),
                node: kind,
            });
            if is_dir {
                tmp_entries(&node, &format!("{path}/"), out, first_names, mount)?;
            }
            continue;
        };
        out.push(TmpEntry {
            path,
            mode: 0,
            uid: 0,
            gid: 0,
            times: None,
            node: image,
        });
    }
    Ok(())
}

fn mm_image(
    mm: &crate::mm::MemoryManager,
    segments: &[Arc<super::ipc::shm::Segment>],
    memfds: &HashMap<usize, usize>,
) -> Result<MmImage, CheckpointError> {
    let maps = mm.maps();
    let files = mm.mapped_files();
    // The memfds mapped (by the start of their mappings), those fds hold: the image has
    // them, and their pages are theirs.
    let memfd: HashMap<u64, usize> = files
        .iter()
        .filter_map(|(start, file)| {
            memfds
                .get(&(Arc::as_ptr(file) as *const () as usize))
                .map(|&i| (*start, i))
        })
        .collect();
    // Files whose pages shared mappings write (tmpfs files, memfds): the pages are the
    // file's, saved with its contents, and fault in from it again once it is restored.
    let writable_file: std::collections::HashSet<u64> = files
        .iter()
        .filter(|(_, file)| file.shared_writable())
        .map(|(start, _)| *start)
        .collect();
    // Files whose stores live in cached pages until a write-back (host and FUSE files):
    // the stores reach the file now, since the restored mappings fault in from it.
    for (start, file) in files.iter().filter(|(s, _)| writable_file.contains(s)) {
        file.sync().map_err(|e| CheckpointError::Unsupported {
            what: format!("writing back the shared mapping at {start:#x}: {e:?}"),
        })?;
    }
    // The System V segments attached, by the start of their mappings: their pages are the
    // segment's, saved once with the memory file, and fault in again from it.
    let shm: HashMap<u64, i32> = mm
        .mapped_files()
        .into_iter()
        .filter_map(|(start, file)| {
            segments
                .iter()
                .find(|s| std::ptr::addr_eq(Arc::as_ptr(&file), Arc::as_ptr(*s)))
                .map(|s| (start, s.id()))
        })
        .collect();

    let file_backed: Vec<(u64, u64)> = maps
        .iter()
        .filter(|m| m.shared && m.is_file)
        .map(|m| (m.start, m.end))
        .collect();
    // A shared mapping of a file opened read-only (glibc's gconv cache, for one) only ever
    // shows the file: it is saved as a mapping without pages, which the restored process
    // faults in from the file again; so is one that writes a tmpfs file or a memfd, whose
    // pages are the file's. A host file's cached pages are not written back to it.
    if let Some(m) = maps.iter().find(|m| {
        m.shared
            && m.is_file
            && m.may_write
            && !shm.contains_key(&m.start)
            && !writable_file.contains(&m.start)
    }) {
        return Err(CheckpointError::Unsupported {
            what: format!(
                "a writable shared mapping of a host file at {:#x} ({})",
                m.start,
                match &m.kind {
                    crate::mm::VmaKind::Named(n) => n.as_str(),
                    _ => "?",
                }
            ),
        });
    }
    // A mapping of a memfd names a file no path reaches again: the memfd must be in the
    // image, which holds those fds hold.
    if let Some(m) = maps.iter().find(|m| {
        m.is_file
            && !memfd.contains_key(&m.start)
            && matches!(&m.kind, crate::mm::VmaKind::Named(n) if n.starts_with("/memfd:"))
    }) {
        return Err(CheckpointError::Unsupported {
            what: format!("a mapping of a memfd no fd holds at {:#x}", m.start),
        });
    }
    let vmas = maps
        .into_iter()
        .map(|m| VmaImage {
            start: m.start,
            end: m.end,
            perms: format!(
                "{}{}{}",
                if m.perms.read { 'r' } else { '-' },
                if m.perms.write { 'w' } else { '-' },
                if m.perms.exec { 'x' } else { '-' }
            ),
            shared: m.shared,
            name: match m.kind {
                crate::mm::VmaKind::Anon => "[anon]".to_owned(),
                crate::mm::VmaKind::Heap => "[heap]".to_owned(),
                crate::mm::VmaKind::Stack => "[stack]".to_owned(),
                crate::mm::VmaKind::Named(n) => n,
            },
            offset: m.offset,
            dev: m.dev,
            ino: m.ino,
            file: m.is_file,
            shm: shm.get(&m.start).copied(),
            may_write: m.may_write,
            memfd: memfd.get(&m.start).copied(),
        })
        .collect();
    let mut pages = Vec::new();
    for (start, end, file_offset, cow) in mm.present_ranges() {
        let overlapping = file_backed
            .iter()
            .find(|&&(s, e)| start < e && s < end)
            .copied();
        match overlapping {
            Some((s, e)) if s <= start && end <= e => continue,
            Some((s, _)) => {
                return Err(CheckpointError::Unsupported {
                    what: format!("pages straddling the shared file mapping at {s:#x}"),
                })
            }
            None => pages.push(PageRange {
                start,
                end,
                file_offset,
                cow,
            }),
        }
    }
    Ok(MmImage {
        vmas,
        pages,
        brk: mm.brk_state(),
        membarrier_private: mm.membarrier_private(),
    })
}

/// The interest list of `ep`; every watched file must be open in some fd table.
fn epoll_image(
    ep: &crate::vfs::epoll::Epoll,
    descriptions: &Interner<OpenFile>,
) -> Result<EpollImage, CheckpointError> {
    let interests = ep
        .saved()
        .into_iter()
        .map(|(fd, file, events, data, disarmed)| {
            let description =
                descriptions
                    .get(&file)
                    .ok_or_else(|| CheckpointError::Unsupported {
                        what: format!("an epoll instance watches fd {fd}, which no fd holds now"),
                    })?;
            Ok(InterestImage {
                fd,
                description,
                events,
                data,
                disarmed,
            })
        })
        .collect::<Result<Vec<_>, CheckpointError>>()?;
    Ok(EpollImage { interests })
}

fn fd_table_image(
    table: &super::FdTable,
    descriptions: &mut Interner<OpenFile>,
    unix: &mut crate::net::unix::Saver,
    epolls: &mut Interner<crate::vfs::epoll::Epoll>,
    memfds: &mut Memfds,
    mqueues: &mut Interner<super::ipc::mq::Queue>,
    inotify: &mut Interner<crate::vfs::inotify::Inotify>,
) -> Result<FdTableImage, CheckpointError> {
    let mut fds = Vec::new();
    for fd in table.fds() {
        let (Ok(file), Ok(cloexec)) = (table.get(fd), table.cloexec(fd)) else {
            continue;
        };
        fds.push(FdImage {
            fd,
            cloexec,
            flags: file.flags(),
            offset: *file.offset.lock().unwrap(),
            description: descriptions.intern(&file),
            netns: 0,
            file: file_image(
                &format!("fd {fd}"),
                &file,
                unix,
                epolls,
                memfds,
                mqueues,
                inotify,
            )?,
        });
    }
    Ok(FdTableImage { fds })
}

/// Indexes the namespace an open namespace file `f` names.
fn resolve_ns_file(f: &mut FdImage, saver: &mut super::ns::NsSaver) -> Result<(), CheckpointError> {
    if let FileImage::Namespace(n) = &mut f.file {
        saver
            .resolve(n)
            .map_err(|what| CheckpointError::Unsupported {
                what: format!("fd {} is {what}", f.fd),
            })?;
    }
    Ok(())
}

/// The network namespace (an index of `nets`) of `file` if it is a socket of the sentry's;
/// 0 for anything else.
fn socket_netns(file: &OpenFile, nets: &[Arc<super::ns::NetNs>]) -> Result<usize, CheckpointError> {
    let FileKind::Socket(s) = file.kind() else {
        return Ok(0);
    };
    let Some(any) = s.checkpoint_any() else {
        return Ok(0);
    };
    let found = if let Some(s) = any.downcast_ref::<crate::net::inet::InetSocket>() {
        nets.iter().position(|n| n.holds_stack(s.stack()))
    } else if let Some(s) = any.downcast_ref::<crate::net::icmp::IcmpSocket>() {
        nets.iter().position(|n| n.holds_stack(s.stack()))
    } else if let Some(s) = any.downcast_ref::<crate::net::netlink::NetlinkSocket>() {
        nets.iter().position(|n| s.in_namespace(n))
    } else {
        // AF_UNIX sockets name theirs per endpoint (`EndpointImage::netns`); others are
        // refused by `file_image`.
        Some(0)
    };
    found.ok_or_else(|| CheckpointError::Unsupported {
        what: "a socket of a network namespace no task holds".into(),
    })
}

/// What `file` is; `whose` names it in a refusal ("fd 3").
fn file_image(
    whose: &str,
    file: &OpenFile,
    unix: &mut crate::net::unix::Saver,
    epolls: &mut Interner<crate::vfs::epoll::Epoll>,
    memfds: &mut Memfds,
    mqueues: &mut Interner<super::ipc::mq::Queue>,
    inotify: &mut Interner<crate::vfs::inotify::Inotify>,
) -> Result<FileImage, CheckpointError> {
    use crate::net::unix::UnixSocket;
    let unsupported = |kind: &str| CheckpointError::Unsupported {
        what: format!("{whose} is {kind}"),
    };
    match file.kind() {
        FileKind::Socket(s) => {
            let any = s.checkpoint_any();
            if let Some(socket) = any.and_then(|a| a.downcast_ref::<UnixSocket>()) {
                return Ok(FileImage::Unix {
                    endpoint: unix.socket(socket),
                });
            }
            if let Some(socket) = any.and_then(|a| a.downcast_ref::<crate::net::icmp::IcmpSocket>())
            {
                return Ok(FileImage::Icmp(socket.saved()));
            }
            if let Some(socket) =
                any.and_then(|a| a.downcast_ref::<crate::net::netlink::NetlinkSocket>())
            {
                return Ok(FileImage::Netlink(socket.saved()));
            }
            if let Some(socket) = any.and_then(|a| a.downcast_ref::<crate::net::raw::RawSocket>()) {
                return Ok(FileImage::Raw(socket.saved()));
            }
            if let Some(socket) =
                any.and_then(|a| a.downcast_ref::<crate::net::packet::PacketSocket>())
            {
                return socket
                    .saved()
                    .map(FileImage::Packet)
                    .map_err(|what| unsupported(&what));
            }
            return match any.and_then(|a| a.downcast_ref::<crate::net::inet::InetSocket>()) {
                Some(socket) => socket
                    .saved()
                    .map(FileImage::Inet)
                    .map_err(|what| unsupported(&what)),
                None => Err(unsupported(
                    "a socket other than AF_UNIX, TCP, UDP, ping, raw, AF_PACKET or AF_NETLINK",
                )),
            };
        }
        FileKind::Epoll(ep) => {
            return Ok(FileImage::Epoll {
                epoll: epolls.intern(ep),
            })
        }
        FileKind::Inotify(i) => {
            return Ok(FileImage::Inotify {
                inotify: inotify.intern(i),
            })
        }
        FileKind::TimerFd(t) => {
            return match t
                .checkpoint_any()
                .and_then(|a| a.downcast_ref::<super::timer::TimerFd>())
            {
                Some(t) => {
                    let (clock, setting, ticks) = t.saved();
                    Ok(FileImage::TimerFd {
                        clock,
                        armed: itimer_image(setting),
                        ticks,
                    })
                }
                None => Err(unsupported("a timerfd of an unknown kind")),
            }
        }
        FileKind::SignalFd(f) => {
            return match f
                .checkpoint_any()
                .and_then(|a| a.downcast_ref::<super::signalfd::SignalFd>())
            {
                Some(f) => {
                    let (mask, tgid) = f.saved();
                    Ok(FileImage::SignalFd { mask, tgid })
                }
                None => Err(unsupported("a signalfd of an unknown kind")),
            }
        }
        FileKind::PidFd(p) => {
            return match p
                .checkpoint_any()
                .and_then(|a| a.downcast_ref::<super::pidfd::PidFd>())
            {
                Some(p) => {
                    let (tgid, present) = p.saved();
                    Ok(FileImage::PidFd {
                        tgid,
                        reaped: !present,
                    })
                }
                None => Err(unsupported("a pidfd of an unknown kind")),
            }
        }
        FileKind::Mqueue(q) => {
            return match q
                .checkpoint_any()
                .and_then(|a| a.downcast_ref::<super::ipc::mq::QueueFile>())
            {
                Some(q) => Ok(FileImage::Mqueue {
                    queue: mqueues.intern(&q.0),
                }),
                None => Err(unsupported("a message queue of an unknown kind")),
            }
        }
        FileKind::Pipe(p) if file.dentry.is_none() => {
            return Ok(FileImage::Pipe {
                pipe: p.pipe_id(),
                buffered: p.buffered(),
            })
        }
        FileKind::Pipe(p) => {
            return match &file.dentry {
                Some(d) if d.mount.fs_type != "proc" => Ok(FileImage::Fifo {
                    path: lossy(&d.path),
                    pipe: p.pipe_id(),
                    buffered: p.buffered(),
                }),
                // Reopened through /proc/[pid]/fd: another description of the same pipe.
                _ => Ok(FileImage::Pipe {
                    pipe: p.pipe_id(),
                    buffered: p.buffered(),
                }),
            };
        }
        FileKind::Plain(ops) => {
            if let Some(saved) = crate::fs::devpts::saved_console(file) {
                let (path, console) = saved.map_err(|what| unsupported(&what))?;
                return Ok(FileImage::Console { path, console });
            }
            if let Some(ns) = super::ns::namespace_of(file) {
                return Ok(FileImage::Namespace(super::ns::NsFileImage::pending(ns)));
            }
            if ops.device_any().is_some() {
                return Err(unsupported("a /dev/fuse file: its connection is not saved"));
            }
            if let Some(saved) = crate::fs::devpts::saved_pty(file) {
                let (end, path, pty) = saved.map_err(|what| unsupported(&what))?;
                return Ok(FileImage::Pty { end, path, pty });
            }
            if let Some(e) = ops
                .checkpoint_any()
                .and_then(|a| a.downcast_ref::<super::epoll::EventFd>())
            {
                let (count, semaphore) = e.saved();
                return Ok(FileImage::EventFd { count, semaphore });
            }
        }
    }
    let ops_stat = || {
        file.ops()
            .stat()
            .map_err(|e| unsupported(&format!("a file whose stat fails ({e:?})")))
    };
    match &file.dentry {
        Some(d) if d.mount.source == "memfd" => {
            let key = Arc::as_ptr(&d.inode) as *const () as usize;
            if let Some(&memfd) = memfds.index.get(&key) {
                return Ok(FileImage::Memfd { memfd });
            }
            let data = d
                .inode
                .contents()
                .map_err(|e| unsupported(&format!("a memfd that cannot be read ({e:?})")))?;
            let name = d.name.strip_prefix(b"memfd:").unwrap_or(&d.name).to_vec();
            let st = ops_stat()?;
            memfds.images.push(MemfdImage {
                name,
                data,
                seals: file.ops().seals().unwrap_or(0),
                mode: st.mode,
                uid: st.uid,
                gid: st.gid,
            });
            let memfd = memfds.images.len() - 1;
            memfds.index.insert(key, memfd);
            Ok(FileImage::Memfd { memfd })
        }
        Some(d) => {
            let fs_type = d.mount.fs_type;
            // A /proc file is opened again by its path (PIDs are kept); a namespace file
            // names a namespace, not what its path names after a setns.
            if fs_type == "sysfs" {
                return Err(unsupported("a sysfs file"));
            }
            if fs_type == "proc" && d.path.windows(4).any(|w| w == b"/ns/") {
                return Err(unsupported("a namespace file"));
            }
            // The identity a restore checks is what its path lookup finds: the dentry's
            // inode (an overlay's, for a file of the root filesystem), not the file's own
            // ops, which for a lower-layer file opened read-only are the host file's.
            let st = d
                .inode
                .stat()
                .map_err(|e| unsupported(&format!("a file whose stat fails ({e:?})")))?;
            Ok(FileImage::Path {
                path: lossy(&d.path),
                fs_type: fs_type.to_owned(),
                mode: st.mode,
                dev: st.dev,
                ino: st.ino,
                size: st.size,
                mtime: (st.mtime, st.mtime_nsec),
            })
        }
        None => match ops_stat()?.mode {
            mode if matches!(
                mode & libc::S_IFMT,
                libc::S_IFREG | libc::S_IFCHR | libc::S_IFIFO
            ) =>
            {
                Ok(FileImage::Donated { mode })
            }
            _ => Err(unsupported("an anonymous file")),
        },
    }
}
