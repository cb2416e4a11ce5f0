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
use std::sync::atomic::{AtomicU64, Ordering};
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

/// One of the names of a UTS namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtsName {
    Host,
    Domain,
}

/// How many times each UTS name was set since boot, in any namespace (Linux counts them
/// globally too): a poll of `/proc/sys/kernel/{hostname,domainname}` compares the count
/// with the one it saw last.
#[derive(Debug, Default)]
pub struct UtsEvents([AtomicU64; 2]);

impl UtsEvents {
    /// Records that `name` was set.
    pub fn note(&self, name: UtsName) {
        self.0[name as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// The number of times `name` was set so far.
    pub fn count(&self, name: UtsName) -> u64 {
        self.0[name as usize].load(Ordering::Acquire)
    }
}

/// The longest host or domain name (`__NEW_UTS_LEN`).
pub const UTS_NAME_MAX: usize = 64;

pub type UtsNs = Ns<Mutex<Uts>>;
pub type IpcNs = Ns<ipc::Namespace>;
pub type NetNs = Ns<net::Namespace>;
/// A cgroup namespace: the cgroup its members see as the root.
pub type CgroupNs = Ns<Arc<super::cgroup::Cgroup>>;

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
    pub cgroup: Arc<CgroupNs>,
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
    pub cgroup: bool,
}

impl NewNamespaces {
    /// The UTS, IPC and network flags of a clone or unshare flag word.
    pub fn from_flags(flags: u64) -> NewNamespaces {
        let has = |f: i32| flags & f as u64 != 0;
        NewNamespaces {
            uts: has(libc::CLONE_NEWUTS),
            ipc: has(libc::CLONE_NEWIPC),
            net: has(libc::CLONE_NEWNET),
            cgroup: has(libc::CLONE_NEWCGROUP),
        }
    }

    pub fn any(self) -> bool {
        self.uts || self.ipc || self.net || self.cgroup
    }
}

impl Namespaces {
    /// A copy of these with the kinds `new` names made anew and owned by `owner`: a UTS
    /// namespace starts with a copy of the names, an IPC namespace empty, a network
    /// namespace with only its loopback (never the pod's link nor host sockets, which belong
    /// to the initial one), a cgroup namespace rooted at the cgroup `current` names (the
    /// caller's).
    pub fn unshared(
        &self,
        new: NewNamespaces,
        owner: &Arc<UserNs>,
        current: impl FnOnce() -> Arc<super::cgroup::Cgroup>,
    ) -> Namespaces {
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
        if new.cgroup {
            ns.cgroup = Ns::new(current(), owner.clone());
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
    Cgroup(Arc<CgroupNs>),
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
            NsRef::Cgroup(_) => libc::CLONE_NEWCGROUP,
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
            NsRef::Cgroup(n) => n.inode,
        }
    }

    /// The user namespace that owns it (`NS_GET_USERNS`), for the kinds that have one;
    /// the parent for a user namespace.
    pub fn owner(&self) -> Option<Arc<UserNs>> {
        match self {
            NsRef::Uts(n) => Some(n.owner.clone()),
            NsRef::Ipc(n) => Some(n.owner.clone()),
            NsRef::Net(n) => Some(n.owner.clone()),
            NsRef::Cgroup(n) => Some(n.owner.clone()),
            NsRef::User(n) => n.parent.clone(),
            NsRef::Mnt(_) | NsRef::Pid(_) => Some(UserNs::initial()),
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
            NsRef::Cgroup(n) => NsWeak::Cgroup(Arc::downgrade(n)),
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
    Cgroup(Weak<CgroupNs>),
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
            NsWeak::Cgroup(n) => NsRef::Cgroup(n.upgrade()?),
        })
    }
}

/// An open namespace file (Linux's nsfs inode): holds the namespace alive, shows its
/// number as the inode number, and is what setns(2) takes.
pub struct NsFile {
    ns: NsRef,
}

/// The device number of Linux's nsfs (an anonymous device).
const NSFS_DEV: u64 = 4;

/// `NS_GET_NSTYPE` and `NS_GET_OWNER_UID` of ioctl_ns(2).
const NS_GET_NSTYPE: u32 = 0xb703;
const NS_GET_OWNER_UID: u32 = 0xb704;

/// An open namespace file naming `ns`, recorded in the kernel's table so that setns(2)
/// finds it (what opening `/proc/[pid]/ns/*` gives, and what a restore reopens).
pub fn namespace_file(kernel: &super::Kernel, ns: NsRef) -> Arc<crate::vfs::OpenFile> {
    kernel.ns_files.register(&ns);
    crate::vfs::OpenFile::new(Arc::new(NsFile { ns }), libc::O_RDONLY as u32)
}

/// The namespace `file` names if it is an open namespace file (for a checkpoint).
pub fn namespace_of(file: &crate::vfs::OpenFile) -> Option<NsRef> {
    let crate::vfs::FileKind::Plain(ops) = file.kind() else {
        return None;
    };
    ops.checkpoint_any()
        .and_then(|a| a.downcast_ref::<NsFile>())
        .map(|f| f.ns.clone())
}

impl crate::vfs::FileOps for NsFile {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn namespace_inode(&self) -> Option<u64> {
        Some(self.ns.inode())
    }

    fn stat(&self) -> Result<crate::vfs::Stat, crate::abi::Errno> {
        Ok(crate::vfs::Stat {
            dev: NSFS_DEV,
            ino: self.ns.inode(),
            mode: libc::S_IFREG | 0o444,
            ..crate::vfs::Stat::anonymous()
        })
    }

    fn ioctl(
        &self,
        t: &mut dyn crate::vfs::Context,
        _file: &crate::vfs::OpenFile,
        cmd: u32,
        arg: u64,
    ) -> crate::abi::SysResult {
        match cmd {
            NS_GET_NSTYPE => Ok(self.ns.clone_flag() as u64),
            NS_GET_OWNER_UID => {
                let NsRef::User(ns) = &self.ns else {
                    return Err(crate::abi::Errno::EINVAL);
                };
                let uid = t.creds().user_ns.show(ns.owner, false);
                t.mm().write_obj(crate::mm::usermem::UserAddr(arg), &uid)?;
                Ok(0)
            }
            _ => Err(crate::abi::Errno::ENOTTY),
        }
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

/// The namespaces of a checkpoint image, each once. In every list the initial namespace is
/// index 0 and is not listed (the kernel has it): index `i` names the list's entry `i - 1`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NamespacesImage {
    /// The initial UTS namespace's domain name (its host name is the image's `hostname`).
    pub domainname: String,
    /// User namespaces, a parent before its children.
    pub user: Vec<crate::auth::UserNsImage>,
    pub uts: Vec<UtsNsImage>,
    pub ipc: Vec<IpcNsImage>,
    pub net: Vec<NetNsImage>,
    /// PID namespaces below the container's, a parent before its children (index 0 names
    /// the container's own, as the other lists' 0 names the initial one).
    #[serde(default)]
    pub pid: Vec<super::pidns::PidNsImage>,
}

/// A UTS namespace of the image: its owner (an index of [`NamespacesImage::user`]), inode
/// number and names.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UtsNsImage {
    pub owner: usize,
    pub inode: u64,
    pub hostname: String,
    pub domainname: String,
}

/// An IPC namespace of the image other than the initial one (whose objects are the image's
/// `ipc`): its System V semaphore sets and message queues and its named POSIX message
/// queues. Shared memory segments and message queues an fd holds are refused there.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IpcNsImage {
    pub owner: usize,
    pub inode: u64,
    pub objects: ipc::IpcImage,
}

/// A network namespace of the image other than the initial one: a loopback-only stack
/// (what unshare(2) makes). Its sockets are saved with the fds that hold them, naming it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NetNsImage {
    pub owner: usize,
    pub inode: u64,
}

/// Which namespaces of the image a task holds (indices as [`NamespacesImage`]'s).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct TaskNsImage {
    pub user: usize,
    pub uts: usize,
    pub ipc: usize,
    pub net: usize,
    /// Its process's PID namespace.
    #[serde(default)]
    pub pid: usize,
    /// Where its new processes go when setns(2) or unshare(2) chose a PID namespace other
    /// than its process's (`pid_for_children`).
    #[serde(default)]
    pub pid_for_children: Option<usize>,
}

/// An open `/proc/[pid]/ns/*` file of the image: the namespace it names, by its kind and
/// its index in that kind's list of [`NamespacesImage`] (the container's PID namespace and
/// the initial ones are 0; there is one cgroup namespace).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NsFileImage {
    pub kind: NsKind,
    pub index: usize,
    /// The namespace, while the checkpoint is being written (indexed once every task's
    /// namespaces are known).
    #[serde(skip)]
    pub held: Option<NsRef>,
}

impl NsFileImage {
    /// The image of a file naming `ns`, to be indexed by [`NsSaver::resolve`].
    pub fn pending(ns: NsRef) -> NsFileImage {
        NsFileImage {
            kind: NsKind::Cgroup,
            index: 0,
            held: Some(ns),
        }
    }
}

/// The kinds of namespace file an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NsKind {
    Uts,
    Ipc,
    Net,
    User,
    Pid,
    Cgroup,
}

/// The index of `x` in `list` (0: `initial`, else one past its place), added if new.
fn intern<T>(list: &mut Vec<Arc<T>>, initial: &Arc<T>, x: &Arc<T>) -> usize {
    if Arc::ptr_eq(x, initial) {
        return 0;
    }
    match list.iter().position(|n| Arc::ptr_eq(n, x)) {
        Some(i) => i + 1,
        None => {
            list.push(x.clone());
            list.len()
        }
    }
}

/// Collects the namespaces tasks hold for a checkpoint.
#[derive(Debug)]
pub struct NsSaver {
    initial: Namespaces,
    user: Vec<Arc<UserNs>>,
    uts: Vec<Arc<UtsNs>>,
    ipc: Vec<Arc<IpcNs>>,
    net: Vec<Arc<NetNs>>,
    pid: super::pidns::PidNsSaver,
}

impl NsSaver {
    /// A saver for a kernel whose initial namespaces are `initial` and whose container's
    /// PID namespaces are at level `pid_level`.
    pub fn new(initial: Namespaces, pid_level: usize) -> NsSaver {
        NsSaver {
            initial,
            user: Vec::new(),
            uts: Vec::new(),
            ipc: Vec::new(),
            net: Vec::new(),
            pid: super::pidns::PidNsSaver::new(pid_level),
        }
    }

    /// The container's PID namespace that `ns` lies in.
    pub fn container_pidns<'a>(&self, ns: &'a super::PidNamespace) -> &'a super::PidNamespace {
        self.pid.container_of(ns)
    }

    /// The index of user namespace `u`, its ancestors added before it.
    pub(super) fn user(&mut self, u: &Arc<UserNs>) -> usize {
        let Some(parent) = &u.parent else { return 0 };
        if let Some(i) = self.user.iter().position(|n| Arc::ptr_eq(n, u)) {
            return i + 1;
        }
        self.user(parent);
        self.user.push(u.clone());
        self.user.len()
    }

    /// Records the namespaces of a task (`user`: its credentials'; `pidns`: its process's
    /// PID namespace).
    ///
    /// # Errors
    /// What the image cannot hold: a PID namespace above the container's.
    pub fn task(
        &mut self,
        ns: &Namespaces,
        user: &Arc<UserNs>,
        pidns: &Arc<super::PidNamespace>,
    ) -> Result<TaskNsImage, String> {
        if !Arc::ptr_eq(&ns.cgroup, &self.initial.cgroup) {
            return Err("a cgroup namespace of its own".into());
        }
        let pid_for_children = match &ns.pid_for_children {
            Some(p) if !Arc::ptr_eq(p, pidns) => Some(self.pid.intern(p)?),
            _ => None,
        };
        Ok(TaskNsImage {
            user: self.user(user),
            uts: intern(&mut self.uts, &self.initial.uts, &ns.uts),
            ipc: intern(&mut self.ipc, &self.initial.ipc, &ns.ipc),
            net: intern(&mut self.net, &self.initial.net, &ns.net),
            pid: self.pid.intern(pidns)?,
            pid_for_children,
        })
    }

    /// The image of an open namespace file naming `ns`.
    ///
    /// # Errors
    /// A mount namespace (the image has no mount tree), a PID namespace above the
    /// container's.
    pub fn file(&mut self, ns: &NsRef) -> Result<NsFileImage, String> {
        let (kind, index) = match ns {
            NsRef::Uts(n) => (NsKind::Uts, intern(&mut self.uts, &self.initial.uts, n)),
            NsRef::Ipc(n) => (NsKind::Ipc, intern(&mut self.ipc, &self.initial.ipc, n)),
            NsRef::Net(n) => (NsKind::Net, intern(&mut self.net, &self.initial.net, n)),
            NsRef::User(n) => (NsKind::User, self.user(n)),
            NsRef::Pid(n) => (NsKind::Pid, self.pid.intern(n)?),
            NsRef::Cgroup(n) if Arc::ptr_eq(n, &self.initial.cgroup) => (NsKind::Cgroup, 0),
            NsRef::Cgroup(_) => return Err("a file of a cgroup namespace of its own".into()),
            NsRef::Mnt(_) => return Err("a mount namespace file".into()),
        };
        Ok(NsFileImage {
            kind,
            index,
            held: None,
        })
    }

    /// Indexes the namespace of a [`NsFileImage::pending`] file image.
    ///
    /// # Errors
    /// As [`NsSaver::file`].
    pub fn resolve(&mut self, f: &mut NsFileImage) -> Result<(), String> {
        if let Some(ns) = f.held.take() {
            *f = self.file(&ns)?;
        }
        Ok(())
    }

    /// The network namespaces the tasks hold, the initial one first (a socket names its
    /// own by this index).
    pub fn nets(&self) -> Vec<Arc<NetNs>> {
        std::iter::once(self.initial.net.clone())
            .chain(self.net.iter().cloned())
            .collect()
    }

    /// The image of the namespaces recorded; `open_mqueues` are the POSIX message queues fds
    /// hold (saved with the initial namespace's objects).
    ///
    /// # Errors
    /// What the image cannot hold (System V shared memory in, or a message queue an fd
    /// holds named in, an IPC namespace other than the initial one).
    pub fn finish(
        mut self,
        open_mqueues: &[Arc<ipc::mq::Queue>],
    ) -> Result<NamespacesImage, String> {
        let owners = |s: &mut NsSaver, owners: Vec<Arc<UserNs>>| -> Vec<usize> {
            owners.iter().map(|o| s.user(o)).collect()
        };
        fn of<T>(list: &[Arc<Ns<T>>]) -> Vec<Arc<UserNs>> {
            list.iter().map(|n| n.owner.clone()).collect()
        }
        let uts_owners = of(&self.uts);
        let uts_owners = owners(&mut self, uts_owners);
        let ipc_owners = of(&self.ipc);
        let ipc_owners = owners(&mut self, ipc_owners);
        let net_owners = of(&self.net);
        let net_owners = owners(&mut self, net_owners);
        let mut user = Vec::new();
        for u in &self.user {
            let parent = match &u.parent {
                Some(p) => self
                    .user
                    .iter()
                    .position(|n| Arc::ptr_eq(n, p))
                    .map_or(0, |i| i + 1),
                None => 0,
            };
            user.push(u.saved(parent));
        }
        let uts = self
            .uts
            .iter()
            .zip(uts_owners)
            .map(|(n, owner)| {
                let names = n.names().clone();
                UtsNsImage {
                    owner,
                    inode: n.inode,
                    hostname: names.hostname,
                    domainname: names.domainname,
                }
            })
            .collect();
        let mut ipcs = Vec::new();
        for (n, owner) in self.ipc.iter().zip(ipc_owners) {
            if open_mqueues.iter().any(|q| n.mq.names(q)) {
                return Err(
                    "a POSIX message queue of an IPC namespace of its own is open in an fd".into(),
                );
            }
            let objects = n.saved(&[])?;
            if !objects.shm.objects.is_empty() {
                return Err("System V shared memory in an IPC namespace of its own".into());
            }
            ipcs.push(IpcNsImage {
                owner,
                inode: n.inode,
                objects,
            });
        }
        let net = self
            .net
            .iter()
            .zip(net_owners)
            .map(|(n, owner)| NetNsImage {
                owner,
                inode: n.inode,
            })
            .collect();
        Ok(NamespacesImage {
            domainname: self.initial.uts.names().domainname.clone(),
            user,
            uts,
            ipc: ipcs,
            net,
            pid: self.pid.finish(),
        })
    }
}

/// The namespaces of an image rebuilt (a restore), the initial ones at index 0.
#[derive(Debug)]
pub struct RestoredNamespaces {
    /// The initial cgroup namespace (an image holds no other).
    pub cgroup: Arc<CgroupNs>,
    pub user: Vec<Arc<UserNs>>,
    pub uts: Vec<Arc<UtsNs>>,
    pub ipc: Vec<Arc<IpcNs>>,
    pub net: Vec<Arc<NetNs>>,
    /// The container's PID namespace, then those below it.
    pub pid: Vec<Arc<super::PidNamespace>>,
}

impl RestoredNamespaces {
    /// Rebuilds the namespaces of `image` beside the kernel's `initial` ones (whose domain
    /// name it sets), with their inode numbers, owners, names and IPC objects, and the PID
    /// namespaces below the container's `pid_base` with every ID they hold.
    ///
    /// # Errors
    /// An inconsistent image.
    pub fn restore(
        image: &NamespacesImage,
        initial: &Namespaces,
        pid_base: &Arc<super::PidNamespace>,
    ) -> Result<RestoredNamespaces, String> {
        let pid = super::pidns::restore_tree(pid_base, &image.pid)?;
        initial.uts.names().domainname = image.domainname.clone();
        let mut user = vec![UserNs::initial()];
        for u in &image.user {
            let parent = user
                .get(u.parent)
                .ok_or_else(|| format!("user namespace {} is not before its child", u.parent))?
                .clone();
            user.push(UserNs::restored(&parent, u)?);
        }
        let owner = |i: usize| {
            user.get(i)
                .cloned()
                .ok_or_else(|| format!("no user namespace {i}"))
        };
        let mut uts = vec![initial.uts.clone()];
        for n in &image.uts {
            let names = Uts {
                hostname: n.hostname.clone(),
                domainname: n.domainname.clone(),
            };
            if names.hostname.len() > UTS_NAME_MAX || names.domainname.len() > UTS_NAME_MAX {
                return Err("a host or domain name too long".into());
            }
            crate::auth::reserve_ns_inode(n.inode);
            uts.push(Ns::with_inode(Mutex::new(names), owner(n.owner)?, n.inode));
        }
        let mut ipcs = vec![initial.ipc.clone()];
        for n in &image.ipc {
            if !n.objects.shm.objects.is_empty() {
                return Err("System V shared memory in an IPC namespace of its own".into());
            }
            crate::auth::reserve_ns_inode(n.inode);
            let ns = Ns::with_inode(ipc::Namespace::default(), owner(n.owner)?, n.inode);
            ns.restore(&n.objects)?;
            ns.mq.restore(&n.objects.mq)?;
            ipcs.push(ns);
        }
        let mut net = vec![initial.net.clone()];
        for n in &image.net {
            crate::auth::reserve_ns_inode(n.inode);
            net.push(Ns::with_inode(
                net::Namespace::new(net::config::Network::Loopback),
                owner(n.owner)?,
                n.inode,
            ));
        }
        Ok(RestoredNamespaces {
            cgroup: initial.cgroup.clone(),
            user,
            uts,
            ipc: ipcs,
            net,
            pid,
        })
    }

    /// The namespaces a task of the image holds, and its user namespace.
    ///
    /// # Errors
    /// An index the image does not have.
    pub fn task(&self, t: &TaskNsImage) -> Result<(Namespaces, Arc<UserNs>), String> {
        let pid_for_children = match t.pid_for_children {
            Some(i) => Some(get(&self.pid, i, "PID")?),
            None => None,
        };
        Ok((
            Namespaces {
                uts: get(&self.uts, t.uts, "UTS")?,
                ipc: get(&self.ipc, t.ipc, "IPC")?,
                net: get(&self.net, t.net, "network")?,
                cgroup: self.cgroup.clone(),
                pid_for_children,
            },
            get(&self.user, t.user, "user")?,
        ))
    }

    /// The namespace an open namespace file of the image names.
    ///
    /// # Errors
    /// An index the image does not have.
    pub fn file(&self, f: &NsFileImage) -> Result<NsRef, String> {
        Ok(match f.kind {
            NsKind::Uts => NsRef::Uts(get(&self.uts, f.index, "UTS")?),
            NsKind::Ipc => NsRef::Ipc(get(&self.ipc, f.index, "IPC")?),
            NsKind::Net => NsRef::Net(get(&self.net, f.index, "network")?),
            NsKind::User => NsRef::User(get(&self.user, f.index, "user")?),
            NsKind::Pid => NsRef::Pid(get(&self.pid, f.index, "PID")?),
            NsKind::Cgroup => NsRef::Cgroup(self.cgroup.clone()),
        })
    }

    /// The PID namespace of a task's process (`t.pid`).
    ///
    /// # Errors
    /// An index the image does not have.
    pub fn pid(&self, t: &TaskNsImage) -> Result<Arc<super::PidNamespace>, String> {
        get(&self.pid, t.pid, "PID")
    }

    /// Network namespace `i`.
    ///
    /// # Errors
    /// An index the image does not have.
    pub fn net(&self, i: usize) -> Result<&Arc<NetNs>, String> {
        self.net
            .get(i)
            .ok_or_else(|| format!("no network namespace {i}"))
    }
}

/// Entry `i` of a restored namespace list.
fn get<T>(list: &[Arc<T>], i: usize, kind: &str) -> Result<Arc<T>, String> {
    list.get(i)
        .cloned()
        .ok_or_else(|| format!("no {kind} namespace {i}"))
}
