//! The namespaces a task holds besides its PID namespace (its thread group's) and its mount
//! namespace (its filesystem context's): UTS, IPC and network ([`Namespaces`]). The user
//! namespace is part of the credentials ([`crate::auth::UserNs`]).
//!
//! Each namespace records the user namespace that owns it: capabilities over what it holds
//! (setting the hostname, the IPC objects' ownership overrides, network administration)
//! are checked there, so a process that made a user namespace of its own and a UTS or
//! network namespace inside it may administer those, and nothing of the initial ones.
//!
//! The kernel holds the initial namespaces (`Kernel::uts`, `Kernel::ipc`, `Kernel::net`);
//! unshare(2), clone(2) and setns(2) give tasks others. A namespace lives while a task or a
//! file (a socket, an open `/proc/[pid]/ns/*` file) holds it.
//!
//! # Lock order
//! `Ns<Mutex<Uts>>` is a leaf.

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::ipc;
use crate::auth::{next_ns_inode, UserNs};
use crate::net;

/// Linux's fixed inode numbers of the initial namespaces.
pub const INITIAL_IPC_INODE: u64 = 0xEFFF_FFFF;
pub const INITIAL_UTS_INODE: u64 = 0xEFFF_FFFE;
pub const INITIAL_CGROUP_INODE: u64 = 0xEFFF_FFFB;
/// The initial network namespace's number is allocated at boot on Linux; this is the one
/// a freshly booted kernel usually shows.
pub const INITIAL_NET_INODE: u64 = 0xF000_0098;

/// A namespace of some kind: its contents, its inode number (`/proc/[pid]/ns/*`) and the
/// user namespace that owns it. Compared by identity.
#[derive(Debug)]
pub struct Ns<T> {
    pub inode: u64,
    pub owner: Arc<UserNs>,
    inner: T,
}

impl<T> Ns<T> {
    /// A namespace owned by `owner`, numbered `inode`.
    pub fn with_inode(inner: T, owner: Arc<UserNs>, inode: u64) -> Arc<Ns<T>> {
        Arc::new(Ns {
            inode,
            owner,
            inner,
        })
    }

    /// A new namespace owned by `owner`.
    pub fn new(inner: T, owner: Arc<UserNs>) -> Arc<Ns<T>> {
        Ns::with_inode(inner, owner, next_ns_inode())
    }
}

impl<T> Deref for Ns<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// What a UTS namespace holds: the names uname(2) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uts {
    pub hostname: String,
    pub domainname: String,
}

/// The longest host or domain name (`__NEW_UTS_LEN`).
pub const UTS_NAME_MAX: usize = 64;

pub type UtsNs = Ns<Mutex<Uts>>;
pub type IpcNs = Ns<ipc::Namespace>;
pub type NetNs = Ns<net::Namespace>;

impl Ns<Mutex<Uts>> {
    /// The names, locked (a leaf).
    pub fn names(&self) -> MutexGuard<'_, Uts> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The kinds of namespace a task holds here, one of each.
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub uts: Arc<UtsNs>,
    pub ipc: Arc<IpcNs>,
    pub net: Arc<NetNs>,
    /// Where the task's new processes go when setns(2) chose a PID namespace below its
    /// own (Linux's `pid_for_children`); None: its process's namespace.
    pub pid_for_children: Option<Arc<super::PidNamespace>>,
}

/// Which namespaces to make anew ([`Namespaces::unshared`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NewNamespaces {
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
}

impl NewNamespaces {
    /// The UTS, IPC and network flags of a clone or unshare flag word.
    pub fn from_flags(flags: u64) -> NewNamespaces {
        let has = |f: i32| flags & f as u64 != 0;
        NewNamespaces {
            uts: has(libc::CLONE_NEWUTS),
            ipc: has(libc::CLONE_NEWIPC),
            net: has(libc::CLONE_NEWNET),
        }
    }

    pub fn any(self) -> bool {
        self.uts || self.ipc || self.net
    }
}

impl Namespaces {
    /// A copy of these with the kinds `new` names made anew and owned by `owner`: a UTS
    /// namespace starts with a copy of the names, an IPC namespace empty, a network
    /// namespace with only its loopback (never the pod's link nor host sockets, which belong
    /// to the initial one).
    pub fn unshared(&self, new: NewNamespaces, owner: &Arc<UserNs>) -> Namespaces {
        let mut ns = self.clone();
        if new.uts {
            let names = self.uts.names().clone();
            ns.uts = Ns::new(Mutex::new(names), owner.clone());
        }
        if new.ipc {
            ns.ipc = Ns::new(ipc::Namespace::default(), owner.clone());
        }
        if new.net {
            ns.net = Ns::new(
                net::Namespace::new(net::config::Network::Loopback),
                owner.clone(),
            );
        }
        ns
    }
}

/// A namespace of any kind, held strongly: what a `/proc/[pid]/ns/*` file names and
/// setns(2) joins.
#[derive(Debug, Clone)]
pub enum NsRef {
    Uts(Arc<UtsNs>),
    Ipc(Arc<IpcNs>),
    Net(Arc<NetNs>),
    User(Arc<UserNs>),
    Mnt(Arc<crate::vfs::MountNamespace>),
    Pid(Arc<super::PidNamespace>),
    /// The one cgroup namespace (none can be made).
    Cgroup,
}

impl NsRef {
    /// The `CLONE_NEW*` flag of its kind (what setns's `nstype` names).
    pub fn clone_flag(&self) -> i32 {
        match self {
            NsRef::Uts(_) => libc::CLONE_NEWUTS,
            NsRef::Ipc(_) => libc::CLONE_NEWIPC,
            NsRef::Net(_) => libc::CLONE_NEWNET,
            NsRef::User(_) => libc::CLONE_NEWUSER,
            NsRef::Mnt(_) => libc::CLONE_NEWNS,
            NsRef::Pid(_) => libc::CLONE_NEWPID,
            NsRef::Cgroup => libc::CLONE_NEWCGROUP,
        }
    }

    /// The inode number its files show.
    pub fn inode(&self) -> u64 {
        match self {
            NsRef::Uts(n) => n.inode,
            NsRef::Ipc(n) => n.inode,
            NsRef::Net(n) => n.inode,
            NsRef::User(n) => n.inode,
            NsRef::Mnt(n) => n.inode(),
            NsRef::Pid(n) => n.inode(),
            NsRef::Cgroup => INITIAL_CGROUP_INODE,
        }
    }

    /// The user namespace that owns it (`NS_GET_USERNS`), for the kinds that have one;
    /// the parent for a user namespace.
    pub fn owner(&self) -> Option<Arc<UserNs>> {
        match self {
            NsRef::Uts(n) => Some(n.owner.clone()),
            NsRef::Ipc(n) => Some(n.owner.clone()),
            NsRef::Net(n) => Some(n.owner.clone()),
            NsRef::User(n) => n.parent.clone(),
            NsRef::Mnt(_) | NsRef::Pid(_) | NsRef::Cgroup => Some(UserNs::initial()),
        }
    }

    fn downgrade(&self) -> NsWeak {
        match self {
            NsRef::Uts(n) => NsWeak::Uts(Arc::downgrade(n)),
            NsRef::Ipc(n) => NsWeak::Ipc(Arc::downgrade(n)),
            NsRef::Net(n) => NsWeak::Net(Arc::downgrade(n)),
            NsRef::User(n) => NsWeak::User(Arc::downgrade(n)),
            NsRef::Mnt(n) => NsWeak::Mnt(Arc::downgrade(n)),
            NsRef::Pid(n) => NsWeak::Pid(Arc::downgrade(n)),
            NsRef::Cgroup => NsWeak::Cgroup,
        }
    }
}

#[derive(Debug)]
enum NsWeak {
    Uts(Weak<UtsNs>),
    Ipc(Weak<IpcNs>),
    Net(Weak<NetNs>),
    User(Weak<UserNs>),
    Mnt(Weak<crate::vfs::MountNamespace>),
    Pid(Weak<super::PidNamespace>),
    Cgroup,
}

impl NsWeak {
    fn upgrade(&self) -> Option<NsRef> {
        Some(match self {
            NsWeak::Uts(n) => NsRef::Uts(n.upgrade()?),
            NsWeak::Ipc(n) => NsRef::Ipc(n.upgrade()?),
            NsWeak::Net(n) => NsRef::Net(n.upgrade()?),
            NsWeak::User(n) => NsRef::User(n.upgrade()?),
            NsWeak::Mnt(n) => NsRef::Mnt(n.upgrade()?),
            NsWeak::Pid(n) => NsRef::Pid(n.upgrade()?),
            NsWeak::Cgroup => NsRef::Cgroup,
        })
    }
}

/// The namespaces that open `/proc/[pid]/ns/*` files name, by inode number: a namespace
/// file's operations (in `procfs`) hold the namespace and report only its number, and
/// setns(2) finds the namespace here. Held weakly: the files keep them alive. A leaf lock.
#[derive(Debug, Default)]
pub struct NsFiles {
    by_inode: Mutex<std::collections::HashMap<u64, NsWeak>>,
}

impl NsFiles {
    /// Records `ns`, which a namespace file now holds.
    pub fn register(&self, ns: &NsRef) {
        let mut map = self.by_inode.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.upgrade().is_some());
        map.insert(ns.inode(), ns.downgrade());
    }

    /// The namespace numbered `inode`, if a file still holds it.
    pub fn find(&self, inode: u64) -> Option<NsRef> {
        let map = self.by_inode.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&inode).and_then(NsWeak::upgrade)
    }
}
