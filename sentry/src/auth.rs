//! Credentials: who a task is for permission checks (gVisor's kernel/auth).
//!
//! Layer: below `vfs`, `net`, `tty` and `kernel`; imports nothing of the sentry. Tasks own
//! their [`Creds`]; file, socket and terminal code receives them through the caller's
//! context.
//!
//! Besides the user and group IDs, credentials carry the supplementary groups, the five
//! capability sets of capabilities(7) and the securebits. The transitions Linux applies to
//! the capability sets when the user IDs change ([`Creds::fix_caps_after_setuid`]) and on
//! execve ([`Creds::after_exec`]) live here so that every caller applies the same rules.

pub mod landlock;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The highest capability number Linux knows (`CAP_CHECKPOINT_RESTORE`, as
/// `/proc/sys/kernel/cap_last_cap` reports).
pub const CAP_LAST_CAP: u32 = 40;

/// Capability numbers of capabilities(7) that the sentry checks.
pub mod cap {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const MKNOD: u32 = 27;
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const SYS_CHROOT: u32 = 18;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_NICE: u32 = 23;
    pub const SYS_RESOURCE: u32 = 24;
    pub const SYS_TTY_CONFIG: u32 = 26;
    pub const SETFCAP: u32 = 31;
    pub const SYSLOG: u32 = 34;
}

/// `NGROUPS_MAX`: the most supplementary groups a task may have.
pub const NGROUPS_MAX: usize = 65536;

/// The securebits of capabilities(7) (`PR_SET_SECUREBITS`).
pub mod secbit {
    pub const NOROOT: u32 = 1 << 0;
    pub const NO_SETUID_FIXUP: u32 = 1 << 2;
    pub const KEEP_CAPS: u32 = 1 << 4;
    pub const KEEP_CAPS_LOCKED: u32 = 1 << 5;
    pub const NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;
    /// Every settable bit; each has its lock bit just above it.
    pub const ALL_BITS: u32 = NOROOT | NO_SETUID_FIXUP | KEEP_CAPS | NO_CAP_AMBIENT_RAISE;
    pub const ALL_LOCKS: u32 = ALL_BITS << 1;
}

/// Capability names by number, as capabilities(7) spells them without the `CAP_` prefix (the
/// form OCI specs use, with or without the prefix).
const CAP_NAMES: [&str; CAP_LAST_CAP as usize + 1] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A set of capabilities: bit `n` is capability `n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);
    /// Every capability up to [`CAP_LAST_CAP`].
    pub const FULL: CapSet = CapSet((1 << (CAP_LAST_CAP + 1)) - 1);
    /// The filesystem capabilities (Linux's CAP_FS_MASK): CHOWN, DAC_OVERRIDE,
    /// DAC_READ_SEARCH, FOWNER, FSETID, LINUX_IMMUTABLE (9), MKNOD and MAC_OVERRIDE (32),
    /// which setfsuid(2) drops and raises.
    pub const FS_MASK: CapSet = CapSet(
        1 << cap::CHOWN
            | 1 << cap::DAC_OVERRIDE
            | 1 << cap::DAC_READ_SEARCH
            | 1 << cap::FOWNER
            | 1 << cap::FSETID
            | 1 << 9
            | 1 << cap::MKNOD
            | 1 << 32,
    );

    /// Whether `cap` is a capability number Linux knows.
    pub fn valid(cap: u64) -> bool {
        cap <= u64::from(CAP_LAST_CAP)
    }

    pub fn has(self, cap: u32) -> bool {
        cap <= CAP_LAST_CAP && self.0 & (1 << cap) != 0
    }

    pub fn with(self, cap: u32) -> CapSet {
        CapSet(self.0 | (1 << cap))
    }

    pub fn without(self, cap: u32) -> CapSet {
        CapSet(self.0 & !(1 << cap))
    }

    pub fn union(self, o: CapSet) -> CapSet {
        CapSet(self.0 | o.0)
    }

    pub fn intersect(self, o: CapSet) -> CapSet {
        CapSet(self.0 & o.0)
    }

    pub fn is_subset_of(self, o: CapSet) -> bool {
        self.0 & !o.0 == 0
    }

    /// The set named by `names` (`CAP_CHOWN` or `CHOWN`, any case) and the names it does
    /// not know, which runc too leaves out with a warning.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> (CapSet, Vec<String>) {
        let mut set = CapSet::EMPTY;
        let mut unknown = Vec::new();
        for name in names {
            let upper = name.as_ref().to_ascii_uppercase();
            let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
            match CAP_NAMES.iter().position(|n| *n == bare) {
                Some(n) => set = set.with(n as u32),
                None => unknown.push(name.as_ref().to_owned()),
            }
        }
        (set, unknown)
    }

    /// Drops bits above [`CAP_LAST_CAP`], as Linux does with what capset(2) is given.
    pub fn truncated(self) -> CapSet {
        self.intersect(CapSet::FULL)
    }
}

/// A user namespace other than the initial one in a checkpoint image.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UserNsImage {
    /// The parent's index in the image's list (0: the initial namespace).
    pub parent: usize,
    /// The effective user and group (kernel IDs) of the process that made it.
    pub owner: [u32; 2],
    pub inode: u64,
    /// `uid_map` and `gid_map` as `[first, lower_first, count]` lines; None: not written.
    pub uid_map: Option<Vec<[u32; 3]>>,
    pub gid_map: Option<Vec<[u32; 3]>>,
    pub setgroups_denied: bool,
}

/// The five capability sets of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub permitted: CapSet,
    pub effective: CapSet,
    pub inheritable: CapSet,
    pub bounding: CapSet,
    pub ambient: CapSet,
}

/// The first inode number handed to a namespace made at run time (Linux numbers
/// namespaces from 0xF0000000; the initial ones have fixed numbers just below).
static NEXT_NS_INODE: AtomicU64 = AtomicU64::new(0xF000_2000);

/// A fresh namespace inode number (`/proc/[pid]/ns/*`, `NS_GET_*`), unique in the process.
pub fn next_ns_inode() -> u64 {
    NEXT_NS_INODE.fetch_add(1, Ordering::Relaxed)
}

/// Keeps `inode`, a number a restored namespace takes again, from being handed out anew.
pub fn reserve_ns_inode(inode: u64) {
    NEXT_NS_INODE.fetch_max(inode.saturating_add(1), Ordering::Relaxed);
}

/// The user ID a user namespace shows for a kernel ID it does not map (Linux's
/// `overflowuid` and `overflowgid`).
pub const OVERFLOW_ID: u32 = 65534;

/// How deep user namespaces may nest below the initial one (Linux's limit).
pub const MAX_USER_NS_LEVEL: u32 = 32;

/// One line of a `uid_map` or `gid_map`: IDs `first..first+count` of the namespace are
/// `lower_first..` of its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdExtent {
    pub first: u32,
    pub lower_first: u32,
    pub count: u32,
}

/// A namespace's ID map, written once (`None`: not written yet, every ID unmapped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap(pub Option<Vec<IdExtent>>);

impl IdMap {
    /// The parent's ID of namespace ID `id`.
    fn down(&self, id: u32) -> Option<u32> {
        self.0.as_ref()?.iter().find_map(|e| {
            let off = id.checked_sub(e.first)?;
            (off < e.count).then(|| e.lower_first + off)
        })
    }

    /// The namespace's ID of the parent's ID `lower`.
    fn up(&self, lower: u32) -> Option<u32> {
        self.0.as_ref()?.iter().find_map(|e| {
            let off = lower.checked_sub(e.lower_first)?;
            (off < e.count).then(|| e.first + off)
        })
    }
}

/// The ID maps of a user namespace and its `setgroups` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserNsMaps {
    pub uid: IdMap,
    pub gid: IdMap,
    /// `/proc/[pid]/setgroups` says `deny`: setgroups(2) is refused in the namespace (and
    /// an unprivileged gid_map may then be written).
    pub setgroups_denied: bool,
}

/// A user namespace (user_namespaces(7)): which IDs of its parent it maps, and who owns it.
/// Credentials hold kernel IDs (those of the initial namespace); the namespace translates
/// at the system-call boundary. Compared by identity.
#[derive(Debug)]
pub struct UserNs {
    pub parent: Option<Arc<UserNs>>,
    /// 0 for the initial namespace.
    pub level: u32,
    /// The effective user and group of the process that made it (kernel IDs).
    pub owner: u32,
    pub owner_gid: u32,
    /// The inode number of its `/proc/[pid]/ns/user` file.
    pub inode: u64,
    /// Guards the maps; a leaf lock.
    pub maps: Mutex<UserNsMaps>,
}

impl PartialEq for UserNs {
    fn eq(&self, other: &UserNs) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for UserNs {}

static INITIAL_USER_NS: LazyLock<Arc<UserNs>> = LazyLock::new(|| {
    let all = IdExtent {
        first: 0,
        lower_first: 0,
        count: u32::MAX,
    };
    Arc::new(UserNs {
        parent: None,
        level: 0,
        owner: 0,
        owner_gid: 0,
        // Linux's fixed number for the initial user namespace.
        inode: 0xEFFF_FFFD,
        maps: Mutex::new(UserNsMaps {
            uid: IdMap(Some(vec![all])),
            gid: IdMap(Some(vec![all])),
            setgroups_denied: false,
        }),
    })
});

impl UserNs {
    /// The initial user namespace, which maps every ID to itself.
    pub fn initial() -> Arc<UserNs> {
        INITIAL_USER_NS.clone()
    }

    /// A new namespace under `parent`, owned by `owner`:`owner_gid`, with nothing mapped and
    /// the parent's `setgroups` setting (as Linux copies the namespace flags).
    pub fn new_child(parent: &Arc<UserNs>, owner: u32, owner_gid: u32) -> Arc<UserNs> {
        Arc::new(UserNs {
            parent: Some(parent.clone()),
            level: parent.level + 1,
            owner,
            owner_gid,
            inode: next_ns_inode(),
            maps: Mutex::new(UserNsMaps {
                setgroups_denied: parent.snapshot().setgroups_denied,
                ..UserNsMaps::default()
            }),
        })
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, UserNsMaps> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the maps.
    pub fn snapshot(&self) -> UserNsMaps {
        self.maps().clone()
    }

    /// The namespace in a checkpoint image; `parent` is the index its parent has there.
    pub fn saved(&self, parent: usize) -> UserNsImage {
        let maps = self.snapshot();
        let extents = |m: &IdMap| {
            m.0.as_ref().map(|v| {
                v.iter()
                    .map(|e| [e.first, e.lower_first, e.count])
                    .collect()
            })
        };
        UserNsImage {
            parent,
            owner: [self.owner, self.owner_gid],
            inode: self.inode,
            uid_map: extents(&maps.uid),
            gid_map: extents(&maps.gid),
            setgroups_denied: maps.setgroups_denied,
        }
    }

    /// The namespace of `image` (a restore) under `parent`, with its inode number again.
    ///
    /// # Errors
    /// A namespace nested deeper than Linux allows.
    pub fn restored(parent: &Arc<UserNs>, image: &UserNsImage) -> Result<Arc<UserNs>, String> {
        if parent.level >= MAX_USER_NS_LEVEL {
            return Err("a user namespace nested too deep".into());
        }
        let map = |m: &Option<Vec<[u32; 3]>>| {
            IdMap(m.as_ref().map(|v| {
                v.iter()
                    .map(|&[first, lower_first, count]| IdExtent {
                        first,
                        lower_first,
                        count,
                    })
                    .collect()
            }))
        };
        reserve_ns_inode(image.inode);
        Ok(Arc::new(UserNs {
            parent: Some(parent.clone()),
            level: parent.level + 1,
            owner: image.owner[0],
            owner_gid: image.owner[1],
            inode: image.inode,
            maps: Mutex::new(UserNsMaps {
                uid: map(&image.uid_map),
                gid: map(&image.gid_map),
                setgroups_denied: image.setgroups_denied,
            }),
        }))
    }

    /// Whether `self` is `ns` or one of its ancestors.
    pub fn is_ancestor_of(self: &Arc<UserNs>, ns: &Arc<UserNs>) -> bool {
        let mut cur = Some(ns);
        while let Some(n) = cur {
            if Arc::ptr_eq(n, self) {
                return true;
            }
            cur = n.parent.as_ref();
        }
        false
    }

    /// The kernel ID of this namespace's `id` (`gid` picks the group map), if mapped.
    pub fn to_kernel(&self, id: u32, gid: bool) -> Option<u32> {
        if self.parent.is_none() {
            return Some(id);
        }
        let maps = self.maps();
        let down = if gid {
            maps.gid.down(id)
        } else {
            maps.uid.down(id)
        }?;
        drop(maps);
        match &self.parent {
            Some(p) => p.to_kernel(down, gid),
            None => Some(down),
        }
    }

    /// This namespace's ID for kernel ID `kid`, if it maps it.
    pub fn from_kernel(&self, kid: u32, gid: bool) -> Option<u32> {
        if self.parent.is_none() {
            return Some(kid);
        }
        let lower = match &self.parent {
            Some(p) => p.from_kernel(kid, gid)?,
            None => kid,
        };
        let maps = self.maps();
        if gid {
            maps.gid.up(lower)
        } else {
            maps.uid.up(lower)
        }
    }

    /// This namespace's ID for kernel ID `kid`, or [`OVERFLOW_ID`] (what getuid(2) and
    /// stat(2) show for an unmapped ID).
    pub fn show(&self, kid: u32, gid: bool) -> u32 {
        self.from_kernel(kid, gid).unwrap_or(OVERFLOW_ID)
    }

    /// Records a written map (the caller has checked it); false if it was written before.
    pub fn set_map(&self, gid: bool, extents: Vec<IdExtent>) -> bool {
        let mut maps = self.maps();
        let slot = if gid { &mut maps.gid } else { &mut maps.uid };
        if slot.0.is_some() {
            return false;
        }
        slot.0 = Some(extents);
        true
    }
}

/// User and group identity of a task, with its privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    /// The filesystem user ID, which file access checks and new files' owners use: the
    /// effective UID, unless setfsuid(2) made it another.
    pub fsuid: u32,
    /// The filesystem group ID (see [`Creds::fsuid`]).
    pub fsgid: u32,
    /// Supplementary groups, sorted as Linux keeps them (getgroups(2) returns them in this
    /// order); shared because credentials are copied on every fork.
    pub groups: Arc<[u32]>,
    pub caps: Caps,
    /// `secbit` bits.
    pub securebits: u32,
    /// The user namespace the capabilities hold in (and the IDs are shown through).
    pub user_ns: Arc<UserNs>,
    /// The Landlock domain restricting the task (None: unrestricted).
    pub landlock: Option<Arc<landlock::Domain>>,
}

impl Default for Creds {
    fn default() -> Creds {
        Creds {
            uid: 0,
            euid: 0,
            suid: 0,
            gid: 0,
            egid: 0,
            sgid: 0,
            fsuid: 0,
            fsgid: 0,
            groups: Arc::from([]),
            caps: Caps::default(),
            securebits: 0,
            user_ns: UserNs::initial(),
            landlock: None,
        }
    }
}

impl Creds {
    /// The credentials of a process the sandbox starts as `uid:gid` with `groups`: root gets
    /// every capability in `bounding` permitted and effective, as a container's root does;
    /// other users start with none (capabilities(7), "Capabilities and execution of
    /// programs by root").
    pub fn new(uid: u32, gid: u32, groups: &[u32], bounding: CapSet) -> Creds {
        let privileged = if uid == 0 { bounding } else { CapSet::EMPTY };
        Creds {
            uid,
            euid: uid,
            suid: uid,
            gid,
            egid: gid,
            sgid: gid,
            fsuid: uid,
            fsgid: gid,
            groups: sorted_groups(groups),
            caps: Caps {
                permitted: privileged,
                effective: privileged,
                inheritable: CapSet::EMPTY,
                bounding,
                ambient: CapSet::EMPTY,
            },
            securebits: 0,
            user_ns: UserNs::initial(),
            landlock: None,
        }
    }

    /// Replaces the capability sets with a container spec's (as runc applies
    /// `process.capabilities` whatever the user). The ambient set is limited to what is
    /// both permitted and inheritable, as Linux allows no more.
    pub fn with_spec_caps(mut self, mut caps: Caps) -> Creds {
        caps.ambient = caps
            .ambient
            .intersect(caps.permitted)
            .intersect(caps.inheritable);
        self.caps = caps;
        self
    }

    /// Whether the task holds `cap` over what the initial user namespace owns (the
    /// sandbox's files, devices, its first network, UTS and IPC namespaces): in its
    /// effective set, and its own user namespace is the initial one.
    pub fn has_cap(&self, cap: u32) -> bool {
        self.has_cap_in(&UserNs::initial(), cap)
    }

    /// Whether the task holds `cap` over what user namespace `ns` owns (Linux's
    /// `ns_capable`): its effective set if `ns` is its own namespace, every capability if it
    /// owns `ns` or an ancestor of `ns` below its own, nothing if `ns` is not its own or a
    /// descendant of it.
    pub fn has_cap_in(&self, ns: &Arc<UserNs>, cap: u32) -> bool {
        let mut target = ns;
        loop {
            if Arc::ptr_eq(target, &self.user_ns) {
                return self.caps.effective.has(cap);
            }
            if target.level <= self.user_ns.level {
                return false;
            }
            let Some(parent) = target.parent.as_ref() else {
                return false;
            };
            if Arc::ptr_eq(parent, &self.user_ns) && target.owner == self.euid {
                return true;
            }
            target = parent;
        }
    }

    /// The credentials of a task that has just entered user namespace `ns` (by unshare,
    /// clone or setns): every capability there, none inherited, default securebits.
    pub fn entering(&self, ns: Arc<UserNs>) -> Creds {
        let mut c = self.clone();
        c.caps = Caps {
            permitted: CapSet::FULL,
            effective: CapSet::FULL,
            inheritable: CapSet::EMPTY,
            bounding: CapSet::FULL,
            ambient: CapSet::EMPTY,
        };
        c.securebits = 0;
        c.user_ns = ns;
        c
    }

    /// Whether these credentials may signal a process with credentials `target` (Linux's
    /// `kill_ok_by_cred`): a real or effective UID that is the target's real or saved UID,
    /// or CAP_KILL.
    pub fn may_signal(&self, target: &Creds) -> bool {
        [self.uid, self.euid]
            .iter()
            .any(|u| *u == target.uid || *u == target.suid)
            || self.has_cap(cap::KILL)
    }

    /// Whether these credentials may attach to (or read and write the memory of) a process
    /// of another thread group with credentials `target` (Linux's PTRACE_MODE_ATTACH):
    /// `fscreds` checks with the filesystem IDs (`/proc/[pid]/mem`),
    /// otherwise with the real IDs (ptrace, process_vm_readv). The checking IDs must be all
    /// of the target's user and group IDs, or the caller has CAP_SYS_PTRACE.
    pub fn may_ptrace_attach(&self, target: &Creds, fscreds: bool) -> bool {
        let (uid, gid) = if fscreds {
            (self.fsuid, self.fsgid)
        } else {
            (self.uid, self.gid)
        };
        let ids_match = [target.uid, target.euid, target.suid]
            .iter()
            .all(|&u| u == uid)
            && [target.gid, target.egid, target.sgid]
                .iter()
                .all(|&g| g == gid);
        ids_match || self.has_cap(cap::SYS_PTRACE)
    }

    /// Whether `gid` is the filesystem group or one of the supplementary groups (the group
    /// class of a file's permission bits; Linux's in_group_p).
    pub fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid || self.groups.binary_search(&gid).is_ok()
    }

    /// The credentials access(2) and faccessat(2) without `AT_EACCESS` check with: the real
    /// IDs, and the capabilities root has unless `SECBIT_NOROOT` is set (Linux's
    /// `access_override_creds`).
    pub fn for_real_ids(&self) -> Creds {
        let mut c = self.clone();
        c.euid = c.uid;
        c.egid = c.gid;
        c.fsuid = c.uid;
        c.fsgid = c.gid;
        c.caps.effective = if c.uid == 0 && c.securebits & secbit::NOROOT == 0 {
            c.caps.permitted
        } else {
            CapSet::EMPTY
        };
        c
    }

    /// Sets the supplementary groups (setgroups(2)).
    pub fn set_groups(&mut self, groups: &[u32]) {
        self.groups = sorted_groups(groups);
    }

    /// Applies Linux's capability changes after the user IDs went from `old` to `self`
    /// (capabilities(7), "Effect of user ID changes on capabilities"), unless
    /// `SECBIT_NO_SETUID_FIXUP` asks to keep the sets.
    pub fn fix_caps_after_setuid(&mut self, old: &Creds) {
        if self.securebits & secbit::NO_SETUID_FIXUP != 0 {
            return;
        }
        let was_root = old.uid == 0 || old.euid == 0 || old.suid == 0;
        let now_root = self.uid == 0 || self.euid == 0 || self.suid == 0;
        if was_root && !now_root {
            if self.securebits & secbit::KEEP_CAPS == 0 {
                self.caps.permitted = CapSet::EMPTY;
                self.caps.effective = CapSet::EMPTY;
            }
            self.caps.ambient = CapSet::EMPTY;
        }
        if old.euid == 0 && self.euid != 0 {
            self.caps.effective = CapSet::EMPTY;
        }
        if old.euid != 0 && self.euid == 0 {
            self.caps.effective = self.caps.permitted;
        }
    }

    /// setfsuid(2)'s change of the filesystem UID to `fsuid`, with Linux's capability
    /// fix-up (unless `SECBIT_NO_SETUID_FIXUP`): leaving 0 drops the filesystem
    /// capabilities from the effective set, reaching 0 raises the permitted ones of them.
    pub fn set_fsuid(&mut self, fsuid: u32) {
        let old = self.fsuid;
        self.fsuid = fsuid;
        if self.securebits & secbit::NO_SETUID_FIXUP != 0 {
            return;
        }
        let fs_caps = CapSet::FS_MASK;
        if old == 0 && fsuid != 0 {
            self.caps.effective = CapSet(self.caps.effective.0 & !fs_caps.0);
        }
        if old != 0 && fsuid == 0 {
            self.caps.effective =
                CapSet(self.caps.effective.0 | (self.caps.permitted.0 & fs_caps.0));
        }
    }

    /// The credentials after execve(2) of a file without set-user-ID bits or file
    /// capabilities (see [`Creds::after_setid_exec`]).
    pub fn after_exec(&self) -> Creds {
        self.after_setid_exec(SetIdExec::default()).0
    }

    /// The credentials after execve(2) of a file whose set-user-ID or set-group-ID bits
    /// give the effective IDs `setid` (the file has no file capabilities): root (real or
    /// effective, unless `SECBIT_NOROOT`) gets its bounding and inheritable sets permitted,
    /// others keep only their ambient set, which a set-ID exec (new effective IDs other
    /// than the old real ones) clears; the effective set is the new permitted set for an
    /// effective root, the ambient set otherwise. The saved IDs become the effective ones
    /// and `SECBIT_KEEP_CAPS` is cleared. Also returns whether the exec is a secure one
    /// (AT_SECURE: a set-ID exec, as Linux's secureexec without file capabilities).
    pub fn after_setid_exec(&self, setid: SetIdExec) -> (Creds, bool) {
        let mut c = self.clone();
        c.euid = setid.euid.unwrap_or(c.euid);
        c.egid = setid.egid.unwrap_or(c.egid);
        let is_setid = c.euid != self.uid || c.egid != self.gid;
        if is_setid {
            c.caps.ambient = CapSet::EMPTY;
        }
        let root_privileged = c.securebits & secbit::NOROOT == 0;
        let mut permitted = CapSet::EMPTY;
        let mut effective_root = false;
        if root_privileged && (c.euid == 0 || c.uid == 0) {
            permitted = c.caps.bounding.union(c.caps.inheritable);
            effective_root = c.euid == 0;
        }
        c.suid = c.euid;
        c.sgid = c.egid;
        c.fsuid = c.euid;
        c.fsgid = c.egid;
        c.caps.permitted = permitted.union(c.caps.ambient);
        c.caps.effective = if effective_root {
            c.caps.permitted
        } else {
            c.caps.ambient
        };
        c.securebits &= !secbit::KEEP_CAPS;
        (c, is_setid)
    }
}

/// The effective IDs execve(2) of a set-user-ID or set-group-ID file gives (None:
/// unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetIdExec {
    pub euid: Option<u32>,
    pub egid: Option<u32>,
}

fn sorted_groups(groups: &[u32]) -> Arc<[u32]> {
    let mut v = groups.to_vec();
    v.sort_unstable();
    v.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Creds {
        Creds::new(0, 0, &[], CapSet::FULL)
    }

    #[test]
    fn a_new_user_namespace_gives_capabilities_over_what_it_owns_only() {
        let user = Creds::new(1000, 1000, &[], CapSet::FULL);
        assert!(!user.has_cap(cap::SYS_ADMIN));
        let ns = UserNs::new_child(&user.user_ns, user.euid, user.egid);
        // Its owner, still outside, holds every capability over it.
        assert!(user.has_cap_in(&ns, cap::SYS_ADMIN));
        let inside = user.entering(ns.clone());
        assert!(inside.has_cap_in(&ns, cap::SYS_ADMIN));
        assert!(!inside.has_cap(cap::SYS_ADMIN));
        assert!(!inside.has_cap_in(&UserNs::initial(), cap::NET_ADMIN));
        // A namespace below its own, made by another user, gives it nothing of the owner's.
        let other = UserNs::new_child(&ns, 2000, 2000);
        assert!(inside.has_cap_in(&other, cap::SYS_ADMIN));
        let mut dropped = inside.clone();
        dropped.caps.effective = CapSet::EMPTY;
        assert!(!dropped.has_cap_in(&other, cap::SYS_ADMIN));
        // Root of the initial namespace holds its capabilities over every namespace.
        assert!(root().has_cap_in(&other, cap::SYS_ADMIN));
    }

    #[test]
    fn ids_translate_through_the_maps_and_unmapped_ones_overflow() {
        let ns = UserNs::new_child(&UserNs::initial(), 1000, 1000);
        assert_eq!(ns.show(1000, false), OVERFLOW_ID);
        assert_eq!(ns.to_kernel(0, false), None);
        let one = |first, lower_first, count| IdExtent {
            first,
            lower_first,
            count,
        };
        assert!(ns.set_map(false, vec![one(0, 1000, 1), one(10, 5000, 10)]));
        assert!(!ns.set_map(false, vec![one(0, 0, 1)]), "written once");
        assert_eq!(ns.to_kernel(0, false), Some(1000));
        assert_eq!(ns.to_kernel(19, false), Some(5009));
        assert_eq!(ns.to_kernel(20, false), None);
        assert_eq!(ns.show(5003, false), 13);
        assert_eq!(ns.show(1000, true), OVERFLOW_ID, "the gid map is separate");
        let nested = UserNs::new_child(&ns, 1000, 1000);
        assert!(nested.set_map(false, vec![one(7, 12, 1)]));
        assert_eq!(nested.to_kernel(7, false), Some(5002));
        assert_eq!(nested.show(5002, false), 7);
        assert_eq!(nested.show(1000, false), OVERFLOW_ID);
    }

    #[test]
    fn user_namespace_images_round_trip() {
        let ns = UserNs::new_child(&UserNs::initial(), 1000, 1001);
        let one = IdExtent {
            first: 0,
            lower_first: 1000,
            count: 1,
        };
        assert!(ns.set_map(false, vec![one]));
        ns.maps().setgroups_denied = true;
        let image = ns.saved(0);
        let back = UserNs::restored(&UserNs::initial(), &image).unwrap();
        assert_eq!(back.snapshot(), ns.snapshot());
        assert_eq!(
            (back.owner, back.owner_gid, back.inode),
            (1000, 1001, ns.inode)
        );
        assert_eq!(back.level, 1);
        assert_eq!(back.to_kernel(0, false), Some(1000));
        // The number is not handed out again.
        assert!(next_ns_inode() > ns.inode);
    }

    fn set_uids(c: &Creds, r: u32, e: u32, s: u32) -> Creds {
        let mut n = c.clone();
        (n.uid, n.euid, n.suid) = (r, e, s);
        n.fix_caps_after_setuid(c);
        n
    }

    #[test]
    fn root_starts_with_the_bounding_set_and_others_with_nothing() {
        let r = root();
        assert_eq!(r.caps.permitted, CapSet::FULL);
        assert_eq!(r.caps.effective, CapSet::FULL);
        assert_eq!(r.caps.inheritable, CapSet::EMPTY);
        let bounded = Creds::new(0, 0, &[], CapSet::FULL.without(cap::SYS_ADMIN));
        assert!(!bounded.has_cap(cap::SYS_ADMIN));
        let user = Creds::new(1000, 1000, &[], CapSet::FULL);
        assert_eq!(user.caps.permitted, CapSet::EMPTY);
        assert_eq!(user.caps.bounding, CapSet::FULL);
    }

    #[test]
    fn capability_names_map_to_numbers() {
        let (set, unknown) = CapSet::from_names(&["CAP_CHOWN", "sys_admin", "CAP_NOPE"]);
        assert_eq!(set, CapSet(1).with(cap::SYS_ADMIN));
        assert_eq!(unknown, ["CAP_NOPE"]);
        let (all, none) = CapSet::from_names(&CAP_NAMES);
        assert_eq!((all, none.len()), (CapSet::FULL, 0));
    }

    #[test]
    fn groups_are_sorted_and_searched() {
        let c = Creds::new(1000, 100, &[30, 10, 20], CapSet::FULL);
        assert_eq!(&*c.groups, &[10, 20, 30]);
        assert!(c.in_group(20));
        assert!(c.in_group(100));
        assert!(!c.in_group(0));
    }

    #[test]
    fn fsuid_leaving_and_reaching_root_drops_and_raises_only_the_fs_caps() {
        let mut c = root();
        c.set_fsuid(1000);
        assert!(!c.has_cap(cap::DAC_OVERRIDE) && !c.has_cap(cap::CHOWN) && !c.has_cap(cap::MKNOD));
        assert!(c.has_cap(cap::KILL) && c.has_cap(cap::SYS_ADMIN));
        assert_eq!(c.caps.permitted, CapSet::FULL, "the permitted set stays");
        c.set_fsuid(0);
        assert_eq!(c.caps.effective, CapSet::FULL);

        let mut fixed = root();
        fixed.securebits |= secbit::NO_SETUID_FIXUP;
        fixed.set_fsuid(1000);
        assert_eq!((fixed.fsuid, fixed.caps.effective), (1000, CapSet::FULL));
    }

    #[test]
    fn setuid_away_from_root_clears_caps_unless_keepcaps() {
        let n = set_uids(&root(), 1000, 1000, 1000);
        assert_eq!(n.caps.permitted, CapSet::EMPTY);
        assert_eq!(n.caps.effective, CapSet::EMPTY);

        let mut keep = root();
        keep.securebits |= secbit::KEEP_CAPS;
        keep.caps.ambient = CapSet(1);
        keep.caps.inheritable = CapSet(1);
        let n = set_uids(&keep, 1000, 1000, 1000);
        assert_eq!(n.caps.permitted, CapSet::FULL);
        assert_eq!(n.caps.effective, CapSet::EMPTY);
        assert_eq!(n.caps.ambient, CapSet::EMPTY);
    }

    #[test]
    fn seteuid_round_trip_restores_effective() {
        let n = set_uids(&root(), 0, 1000, 0);
        assert_eq!(n.caps.permitted, CapSet::FULL);
        assert_eq!(n.caps.effective, CapSet::EMPTY);
        let back = set_uids(&n, 0, 0, 0);
        assert_eq!(back.caps.effective, CapSet::FULL);
    }

    #[test]
    fn no_setuid_fixup_keeps_every_set() {
        let mut c = root();
        c.securebits = secbit::NO_SETUID_FIXUP;
        let n = set_uids(&c, 1000, 1000, 1000);
        assert_eq!(n.caps, c.caps);
    }

    #[test]
    fn a_set_user_id_exec_changes_the_effective_and_saved_ids_and_clears_ambient_caps() {
        let mut u = Creds::new(1000, 1000, &[], CapSet::FULL);
        u.caps.ambient = CapSet(0b10);
        u.caps.permitted = CapSet(0b10);
        u.caps.inheritable = CapSet(0b10);
        let (e, secure) = u.after_setid_exec(SetIdExec {
            euid: Some(5000),
            egid: None,
        });
        assert!(secure);
        assert_eq!((e.uid, e.euid, e.suid, e.egid), (1000, 5000, 5000, 1000));
        assert_eq!(e.caps.ambient, CapSet::EMPTY);
        assert_eq!(e.caps.permitted, CapSet::EMPTY);
        // Set-user-ID root: full permitted and effective sets, a secure exec.
        let (r, secure) = u.after_setid_exec(SetIdExec {
            euid: Some(0),
            egid: None,
        });
        assert!(secure && r.euid == 0 && r.caps.effective == r.caps.bounding);
        // A plain exec is not a secure one and keeps the ambient set.
        let (p, secure) = u.after_setid_exec(SetIdExec::default());
        assert!(!secure);
        assert_eq!(p.caps.ambient, CapSet(0b10));
    }

    #[test]
    fn exec_gives_root_its_bounding_set_and_others_their_ambient_set() {
        let mut r = root();
        r.caps.effective = CapSet::EMPTY;
        r.caps.bounding = CapSet::FULL.without(cap::SYS_ADMIN);
        r.securebits = secbit::KEEP_CAPS;
        let e = r.after_exec();
        assert_eq!(e.caps.permitted, CapSet::FULL.without(cap::SYS_ADMIN));
        assert_eq!(e.caps.effective, e.caps.permitted);
        assert_eq!(e.securebits, 0);

        let mut u = set_uids(&root(), 1000, 1000, 1000);
        u.caps.permitted = CapSet(0b11);
        u.caps.inheritable = CapSet(0b11);
        u.caps.ambient = CapSet(0b10);
        let e = u.after_exec();
        assert_eq!(e.caps.permitted, CapSet(0b10));
        assert_eq!(e.caps.effective, CapSet(0b10));

        let mut real_root = set_uids(&root(), 0, 1000, 1000);
        real_root.suid = 5;
        let e = real_root.after_exec();
        assert_eq!(e.caps.permitted, CapSet::FULL);
        assert_eq!(e.caps.effective, CapSet::EMPTY);
        assert_eq!(e.suid, 1000);
    }

    #[test]
    fn access_checks_with_the_real_ids_use_roots_permitted_set() {
        let mut c = set_uids(&root(), 0, 1000, 0);
        assert!(!c.has_cap(cap::DAC_OVERRIDE));
        assert!(c.for_real_ids().has_cap(cap::DAC_OVERRIDE));
        c.securebits = secbit::NOROOT;
        assert!(!c.for_real_ids().has_cap(cap::DAC_OVERRIDE));
    }
}
