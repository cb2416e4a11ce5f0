//! System V IPC: shared memory ([`shm`]), semaphore sets ([`sem`]) and message queues
//! ([`msg`]), and POSIX message queues ([`mq`]), in one IPC namespace per kernel
//! ([`Namespace`]).
//!
//! The three kinds share what `ipc/util.c` shares in Linux: objects found by key or by
//! identifier ([`Registry`]), the owner/creator/mode record with its permission check
//! ([`Perm`]) and the `IPC_SET` rules. Identifiers are `index + seq * IPCMNI`, so an
//! identifier of a removed object never names its successor at the same index.
//!
//! # Lock order
//! Each kind's registry lock is a leaf except for wait queues (`WaitQueue::waiters`); it is
//! never held while the caller's `MemoryManager::inner` is taken (user memory is copied
//! before or after), and process exit takes the semaphore registry under `Kernel::tree`.

pub mod mq;
pub mod msg;
pub mod sem;
pub mod shm;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::Errno;
use crate::auth::Creds;

/// `IPC_PRIVATE`: always a new object, never found by key.
pub const IPC_PRIVATE: i32 = 0;
/// Index range of identifiers (Linux's IPCMNI).
const IPCMNI: i32 = 32768;

/// `ipcget` flags.
pub const IPC_CREAT: i32 = 0o1000;
pub const IPC_EXCL: i32 = 0o2000;
pub const IPC_NOWAIT: i32 = 0o4000;

/// `*ctl` commands all three kinds share.
pub const IPC_RMID: i32 = 0;
pub const IPC_SET: i32 = 1;
pub const IPC_STAT: i32 = 2;
pub const IPC_INFO: i32 = 3;

/// Capabilities the IPC checks use.
const CAP_IPC_LOCK: u32 = 14;
const CAP_IPC_OWNER: u32 = 15;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;

/// The kernel's IPC namespace: every System V object its tasks can name.
#[derive(Debug, Default)]
pub struct Namespace {
    pub shm: shm::Shm,
    pub sem: sem::Sem,
    pub msg: msg::Msg,
    /// POSIX message queues.
    pub mq: mq::Mq,
}

impl Namespace {
    /// The process `tgid` is gone: apply its semaphore adjustments (SEM_UNDO).
    pub fn process_exited(&self, tgid: i32) {
        self.sem.apply_undo(tgid);
    }
}

/// Seconds since the epoch, as the `*_time` fields hold them.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `struct ipc64_perm` (x86-64).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IpcPerm64 {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    pub seq: u16,
    pub pad: u16,
    pub pad2: u32,
    pub unused1: u64,
    pub unused2: u64,
}

/// Owner, creator and mode of one object (`struct kern_ipc_perm`).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Perm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits (0777) and the kind's state bits above them.
    pub mode: u32,
}

impl Perm {
    /// The record of an object `creds` creates with the permission bits of `flags`.
    pub fn new(key: i32, creds: &Creds, flags: i32) -> Perm {
        Perm {
            key,
            uid: creds.euid,
            gid: creds.egid,
            cuid: creds.euid,
            cgid: creds.egid,
            mode: flags as u32 & 0o777,
        }
    }

    /// Linux's `ipcperms`: whether `creds` may access the object with the rwx bits of `flag`
    /// (only the bits `flag` asks for in any of its three triplets are checked).
    ///
    /// # Errors
    /// EACCES.
    pub fn check(&self, creds: &Creds, flag: u32) -> Result<(), Errno> {
        let requested = (flag >> 6) | (flag >> 3) | flag;
        let granted = if creds.euid == self.cuid || creds.euid == self.uid {
            self.mode >> 6
        } else if creds.in_group(self.cgid) || creds.in_group(self.gid) {
            self.mode >> 3
        } else {
            self.mode
        };
        if requested & !granted & 0o7 != 0 && !creds.has_cap(CAP_IPC_OWNER) {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// Whether `creds` owns or created the object (IPC_SET, IPC_RMID), or has CAP_SYS_ADMIN.
    ///
    /// # Errors
    /// EPERM.
    pub fn check_owner(&self, creds: &Creds) -> Result<(), Errno> {
        if creds.euid == self.uid || creds.euid == self.cuid || creds.has_cap(CAP_SYS_ADMIN) {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// IPC_SET: the new owner and permission bits (other mode bits are kept).
    pub fn set(&mut self, from: &IpcPerm64) {
        self.uid = from.uid;
        self.gid = from.gid;
        self.mode = (self.mode & !0o777) | (from.mode & 0o777);
    }

    /// The user-visible record; `seq` is the identifier's sequence number.
    pub fn to_abi(self, id: i32) -> IpcPerm64 {
        IpcPerm64 {
            key: self.key,
            uid: self.uid,
            gid: self.gid,
            cuid: self.cuid,
            cgid: self.cgid,
            mode: self.mode,
            seq: (id / IPCMNI) as u16,
            ..IpcPerm64::default()
        }
    }
}

/// The objects of one kind: by index (the identifier's low part) and by key.
#[derive(Debug)]
pub struct Registry<T> {
    /// index → (sequence number, object).
    objects: BTreeMap<i32, (i32, T)>,
    /// key → index, for objects not created with IPC_PRIVATE and not removed.
    keys: HashMap<i32, i32>,
    /// Indices below `unused` that are free again; every index from `unused` up is free.
    /// (Finding the lowest free index by scanning would make creating many objects
    /// quadratic.)
    freed: BTreeSet<i32>,
    unused: i32,
    next_seq: i32,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            objects: BTreeMap::new(),
            keys: HashMap::new(),
            freed: BTreeSet::new(),
            unused: 0,
            next_seq: 0,
        }
    }
}

/// A [`Registry`] in a checkpoint image.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RegistryImage<U> {
    /// (index, sequence number, object).
    pub objects: Vec<(i32, i32, U)>,
    /// (key, index).
    pub keys: Vec<(i32, i32)>,
    pub freed: Vec<i32>,
    pub unused: i32,
    pub next_seq: i32,
}

/// The System V objects of an IPC namespace in a checkpoint image: semaphore sets, message
/// queues and shared memory segments (whose pages are in the image's memory).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IpcImage {
    pub sem: sem::SemImage,
    pub msg: RegistryImage<msg::QueueImage>,
    pub shm: RegistryImage<shm::SegmentImage>,
    /// POSIX message queues: first those fds hold (by index), then named ones no fd holds.
    pub mq: Vec<mq::QueueImage>,
}

impl Namespace {
    /// The namespace's IPC objects for a checkpoint; `open_mqueues` are the POSIX message
    /// queues the fd tables hold, in the order their images name them.
    ///
    /// # Errors
    /// What the image cannot hold.
    pub fn saved(&self, open_mqueues: &[std::sync::Arc<mq::Queue>]) -> Result<IpcImage, String> {
        Ok(IpcImage {
            sem: self.sem.saved(),
            msg: self.msg.saved(),
            shm: self.shm.saved()?,
            mq: self.mq.saved(open_mqueues),
        })
    }

    /// Puts back the semaphore sets and message queues of [`Namespace::saved`], in a
    /// namespace that has none yet. (Shared memory segments come back before the address
    /// spaces that attach them, [`shm::Shm::restore`], and POSIX message queues before the
    /// files that open them, [`mq::Mq::restore`].)
    ///
    /// # Errors
    /// A malformed image.
    pub fn restore(&self, image: &IpcImage) -> Result<(), String> {
        self.sem.restore(&image.sem)?;
        self.msg.restore(&image.msg)
    }
}

/// What `ipcget` found for a key.
pub enum Lookup {
    /// Create a new object (after the kind's own checks) with this key.
    Create,
    /// The existing object with this identifier (its permissions still to be checked).
    Existing(i32),
}

impl<T> Registry<T> {
    /// The common part of `shmget`/`semget`/`msgget`: whether `key` with `flags` names an
    /// existing object or asks for a new one.
    ///
    /// # Errors
    /// ENOENT (no such key and no IPC_CREAT), EEXIST (IPC_CREAT|IPC_EXCL of an existing key).
    pub fn lookup_key(&self, key: i32, flags: i32) -> Result<Lookup, Errno> {
        if key == IPC_PRIVATE {
            return Ok(Lookup::Create);
        }
        match self.keys.get(&key) {
            None if flags & IPC_CREAT != 0 => Ok(Lookup::Create),
            None => Err(Errno::ENOENT),
            Some(_) if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 => Err(Errno::EEXIST),
            Some(&idx) => Ok(Lookup::Existing(idx + self.objects[&idx].0 * IPCMNI)),
        }
    }

    /// Adds an object at the lowest free index; returns its identifier.
    ///
    /// # Errors
    /// ENOSPC when `limit` objects exist already.
    pub fn insert(&mut self, key: i32, limit: usize, obj: T) -> Result<i32, Errno> {
        if self.objects.len() >= limit.min(IPCMNI as usize) {
            return Err(Errno::ENOSPC);
        }
        let idx = match self.freed.pop_first() {
            Some(i) => i,
            None if self.unused < IPCMNI => {
                self.unused += 1;
                self.unused - 1
            }
            None => return Err(Errno::ENOSPC),
        };
        let seq = self.next_seq;
        self.next_seq = (self.next_seq + 1) % (i32::MAX / IPCMNI);
        self.objects.insert(idx, (seq, obj));
        if key != IPC_PRIVATE {
            self.keys.insert(key, idx);
        }
        Ok(idx + seq * IPCMNI)
    }

    /// The object with identifier `id`.
    ///
    /// # Errors
    /// EINVAL when there is none (a negative, stale or never used identifier).
    pub fn get(&self, id: i32) -> Result<&T, Errno> {
        let (idx, seq) = split_id(id)?;
        match self.objects.get(&idx) {
            Some((s, o)) if *s == seq => Ok(o),
            _ => Err(Errno::EINVAL),
        }
    }

    /// [`Registry::get`], mutable.
    ///
    /// # Errors
    /// EINVAL as [`Registry::get`].
    pub fn get_mut(&mut self, id: i32) -> Result<&mut T, Errno> {
        let (idx, seq) = split_id(id)?;
        match self.objects.get_mut(&idx) {
            Some((s, o)) if *s == seq => Ok(o),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The object at `index` (the `*_STAT` commands) and its identifier.
    ///
    /// # Errors
    /// EINVAL when the index is free.
    pub fn at_index(&self, index: i32) -> Result<(i32, &T), Errno> {
        match self.objects.get(&index) {
            Some((seq, o)) => Ok((index + seq * IPCMNI, o)),
            None => Err(Errno::EINVAL),
        }
    }

    /// Forgets the key of `id` (the object stays until [`Registry::remove`]), as IPC_RMID
    /// of a shared memory segment still attached does.
    pub fn forget_key(&mut self, id: i32) {
        let idx = id % IPCMNI;
        self.keys.retain(|_, i| *i != idx);
    }

    /// Removes `id`; returns the object.
    pub fn remove(&mut self, id: i32) -> Option<T> {
        let (idx, seq) = split_id(id).ok()?;
        if self.objects.get(&idx).is_none_or(|(s, _)| *s != seq) {
            return None;
        }
        self.forget_key(id);
        self.freed.insert(idx);
        self.objects.remove(&idx).map(|(_, o)| o)
    }

    /// Keeps only the objects `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        let before = self.objects.len();
        let freed = &mut self.freed;
        self.objects.retain(|&idx, (_, o)| {
            let k = keep(o);
            if !k {
                freed.insert(idx);
            }
            k
        });
        if self.objects.len() != before {
            let objects = &self.objects;
            self.keys.retain(|_, idx| objects.contains_key(idx));
        }
    }

    /// The registry for a checkpoint, each object as `save` gives it: identifiers, keys and
    /// the allocator's state are kept, so a restored object has its identifier and the next
    /// one created gets what it would have.
    pub fn saved<U>(&self, save: impl Fn(&T) -> U) -> RegistryImage<U> {
        RegistryImage {
            objects: self
                .objects
                .iter()
                .map(|(&idx, (seq, o))| (idx, *seq, save(o)))
                .collect(),
            keys: self.keys.iter().map(|(&k, &i)| (k, i)).collect(),
            freed: self.freed.iter().copied().collect(),
            unused: self.unused,
            next_seq: self.next_seq,
        }
    }

    /// A registry as [`Registry::saved`] described it, each object made by `restore`.
    ///
    /// # Errors
    /// An index out of range or used twice, a key naming no object, or `restore`'s error.
    pub fn restored<U>(
        image: &RegistryImage<U>,
        restore: impl Fn(&U) -> Result<T, String>,
    ) -> Result<Registry<T>, String> {
        let mut r = Registry {
            objects: BTreeMap::new(),
            keys: HashMap::new(),
            freed: image.freed.iter().copied().collect(),
            unused: image.unused.clamp(0, IPCMNI),
            next_seq: image.next_seq.clamp(0, i32::MAX / IPCMNI - 1),
        };
        for (idx, seq, o) in &image.objects {
            if !(0..IPCMNI).contains(idx) || !(0..i32::MAX / IPCMNI).contains(seq) {
                return Err(format!("IPC identifier index {idx} sequence {seq}"));
            }
            if r.objects.insert(*idx, (*seq, restore(o)?)).is_some() {
                return Err(format!("IPC index {idx} used twice"));
            }
        }
        for &(key, idx) in &image.keys {
            if !r.objects.contains_key(&idx) {
                return Err(format!("IPC key {key} names no object"));
            }
            r.keys.insert(key, idx);
        }
        Ok(r)
    }

    /// Every object with its identifier, by index.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &T)> {
        self.objects
            .iter()
            .map(|(&idx, (seq, o))| (idx + seq * IPCMNI, o))
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Highest index in use (the IPC_INFO and *_INFO return value), 0 when empty.
    pub fn max_index(&self) -> i32 {
        self.objects.keys().next_back().copied().unwrap_or(0)
    }
}

fn split_id(id: i32) -> Result<(i32, i32), Errno> {
    if id < 0 {
        return Err(Errno::EINVAL);
    }
    Ok((id % IPCMNI, id / IPCMNI))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CapSet;

    #[test]
    fn a_removed_identifier_never_names_the_object_reusing_its_index() {
        let mut r: Registry<&str> = Registry::default();
        let first = r.insert(42, 10, "first").unwrap();
        assert!(matches!(r.lookup_key(42, 0), Ok(Lookup::Existing(id)) if id == first));
        assert_eq!(r.remove(first), Some("first"));
        assert_eq!(r.lookup_key(42, 0).err(), Some(Errno::ENOENT));
        let second = r.insert(42, 10, "second").unwrap();
        assert_eq!(first % IPCMNI, second % IPCMNI, "the index is reused");
        assert_ne!(first, second);
        assert_eq!(r.get(first).err(), Some(Errno::EINVAL));
        assert_eq!(r.get(second), Ok(&"second"));
        assert_eq!(r.get(-1).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn keys_follow_ipcget_rules() {
        let mut r: Registry<()> = Registry::default();
        assert!(matches!(r.lookup_key(IPC_PRIVATE, 0), Ok(Lookup::Create)));
        assert_eq!(r.lookup_key(7, 0).err(), Some(Errno::ENOENT));
        assert!(matches!(r.lookup_key(7, IPC_CREAT), Ok(Lookup::Create)));
        r.insert(7, 10, ()).unwrap();
        r.insert(IPC_PRIVATE, 10, ()).unwrap();
        assert!(matches!(
            r.lookup_key(7, IPC_CREAT),
            Ok(Lookup::Existing(_))
        ));
        assert_eq!(
            r.lookup_key(7, IPC_CREAT | IPC_EXCL).err(),
            Some(Errno::EEXIST)
        );
        // Private objects are never found by key, and count against the limit.
        assert!(matches!(
            r.lookup_key(IPC_PRIVATE, IPC_CREAT),
            Ok(Lookup::Create)
        ));
        assert_eq!(r.insert(8, 2, ()).err(), Some(Errno::ENOSPC));
    }

    #[test]
    fn permission_checks_use_the_owner_group_or_other_bits_only() {
        let owner = Creds::new(1000, 1000, &[], CapSet::EMPTY);
        let member = Creds::new(1001, 2000, &[1000], CapSet::EMPTY);
        let other = Creds::new(1002, 2000, &[], CapSet::EMPTY);
        let root = Creds::new(0, 0, &[], CapSet::FULL);
        let p = Perm::new(1, &owner, 0o640);
        assert_eq!(p.check(&owner, 0o600), Ok(()));
        assert_eq!(p.check(&member, 0o400), Ok(()));
        assert_eq!(p.check(&member, 0o200), Err(Errno::EACCES));
        // The group's bits apply to a member even when the other bits would allow more.
        let q = Perm::new(1, &owner, 0o606);
        assert_eq!(q.check(&member, 0o400), Err(Errno::EACCES));
        assert_eq!(q.check(&other, 0o600), Ok(()));
        assert_eq!(p.check(&other, 0o400), Err(Errno::EACCES));
        assert_eq!(p.check(&other, 0), Ok(()));
        assert_eq!(p.check(&root, 0o666), Ok(()), "CAP_IPC_OWNER");
        assert_eq!(p.check_owner(&member), Err(Errno::EPERM));
        assert_eq!(p.check_owner(&root), Ok(()), "CAP_SYS_ADMIN");
    }
}
