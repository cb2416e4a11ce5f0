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

use std::sync::Arc;

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
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const SYS_CHROOT: u32 = 18;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_NICE: u32 = 23;
    pub const SYS_RESOURCE: u32 = 24;
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

/// The five capability sets of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub permitted: CapSet,
    pub effective: CapSet,
    pub inheritable: CapSet,
    pub bounding: CapSet,
    pub ambient: CapSet,
}

/// User and group identity of a task, with its privileges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    /// Supplementary groups, sorted as Linux keeps them (getgroups(2) returns them in this
    /// order); shared because credentials are copied on every fork.
    pub groups: Arc<[u32]>,
    pub caps: Caps,
    /// `secbit` bits.
    pub securebits: u32,
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
            groups: sorted_groups(groups),
            caps: Caps {
                permitted: privileged,
                effective: privileged,
                inheritable: CapSet::EMPTY,
                bounding,
                ambient: CapSet::EMPTY,
            },
            securebits: 0,
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

    /// Whether the task holds `cap` in its effective set.
    pub fn has_cap(&self, cap: u32) -> bool {
        self.caps.effective.has(cap)
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
    /// `fscreds` checks with the filesystem IDs (the effective ones here; `/proc/[pid]/mem`),
    /// otherwise with the real IDs (ptrace, process_vm_readv). The checking IDs must be all
    /// of the target's user and group IDs, or the caller has CAP_SYS_PTRACE.
    pub fn may_ptrace_attach(&self, target: &Creds, fscreds: bool) -> bool {
        let (uid, gid) = if fscreds {
            (self.euid, self.egid)
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

    /// Whether `gid` is the effective group or one of the supplementary groups (the group
    /// class of a file's permission bits).
    pub fn in_group(&self, gid: u32) -> bool {
        self.egid == gid || self.groups.binary_search(&gid).is_ok()
    }

    /// The credentials access(2) and faccessat(2) without `AT_EACCESS` check with: the real
    /// IDs, and the capabilities root has unless `SECBIT_NOROOT` is set (Linux's
    /// `access_override_creds`).
    pub fn for_real_ids(&self) -> Creds {
        let mut c = self.clone();
        c.euid = c.uid;
        c.egid = c.gid;
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

    /// The credentials after execve(2) of a file without set-user-ID bits or file
    /// capabilities: root (real or effective, unless `SECBIT_NOROOT`) gets its bounding and
    /// inheritable sets permitted, others keep only their ambient set; the effective set is
    /// the new permitted set for an effective root, the ambient set otherwise. The saved
    /// IDs become the effective ones and `SECBIT_KEEP_CAPS` is cleared.
    pub fn after_exec(&self) -> Creds {
        let mut c = self.clone();
        let root_privileged = c.securebits & secbit::NOROOT == 0;
        let mut permitted = CapSet::EMPTY;
        let mut effective_root = false;
        if root_privileged && (c.euid == 0 || c.uid == 0) {
            permitted = c.caps.bounding.union(c.caps.inheritable);
            effective_root = c.euid == 0;
        }
        c.suid = c.euid;
        c.sgid = c.egid;
        c.caps.permitted = permitted.union(c.caps.ambient);
        c.caps.effective = if effective_root {
            c.caps.permitted
        } else {
            c.caps.ambient
        };
        c.securebits &= !secbit::KEEP_CAPS;
        c
    }
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
