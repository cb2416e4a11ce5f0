//! Virtual filesystem: dentries, mounts, path resolution, open file descriptions and the
//! operations files implement.
//!
//! Filesystems (the `fs` module) implement [`Inode`]; [`walk::Resolver`] turns paths into
//! [`Dentry`]s one component at a time; [`OpenFile`] is what an fd points to, and its
//! [`FileKind`] says which kind of file it is (plain, epoll, inotify, socket, timerfd,
//! signalfd).
//!
//! Layer: above `abi`, `auth`, `waiter`, `memory` and `mm`; below `fs`, `net`, `tty`,
//! `kernel` and everything else. It imports nothing above it: the calling task is a
//! [`Context`] (implemented by the kernel), and the kinds implemented above it are traits
//! declared here ([`socket::Socket`], [`TimerFdFile`], [`SignalFdFile`]).

pub mod acl;
pub mod context;
pub mod dcache;
pub mod dir;
pub mod epoll;
pub mod file;
pub mod host;
pub mod inode;
pub mod inotify;
pub mod landlock;
pub mod lock;
pub mod mount;
pub mod socket;
pub mod walk;
pub mod write_access;

pub use crate::mm::usermem::{IoDst, IoSrc};
pub use context::{Context, ControllingTerminal, JobIds, ProcessGroups};
pub use file::{
    FileKind, FileOps, FileOwner, IoSignal, MqNotification, MqueueFile, OpenFile, OwnerKind,
    PidFdFile, PipeFile, SignalFdFile, Stat, TimerFdFile,
};
pub use inode::{
    Caller, DirEntry, FileType, FsStats, HostSpecial, Inode, NewAttrs, NewNode, SetAttr, TaskIds,
};
pub use mount::{
    is_detached_path, rebase, Dentry, DetachedTree, FsContext, Mount, MountNamespace, MountOpts,
    Propagation, MOUNT_MAX,
};
pub use walk::Resolver;
