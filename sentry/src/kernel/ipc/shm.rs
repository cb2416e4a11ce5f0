//! System V shared memory segments (`shmget`, `shmat`, `shmdt`, `shmctl`).
//!
//! A [`Segment`] owns a range of the memory file and is a [`Mappable`]: `shmat` maps it as a
//! shared file mapping, so every attacher (and every fork child, whose VMAs are copies) maps
//! the same pages. The number of attachments is the number of VMAs that hold the segment:
//! the registry holds a live segment strongly and a removed one (IPC_RMID while attached)
//! only weakly, so the memory goes back to the memory file when the last mapping of a
//! removed segment goes, by `shmdt`, `munmap`, exec or exit alike.
//!
//! # Lock order
//! `Shm::registry` → `Segment::meta`, and → the `MemoryFile` allocator (a segment allocates
//! its pages, and frees them when the registry holds its last reference); neither is held
//! across memory-manager calls. A segment whose last mapping goes frees its pages under
//! `MemoryManager::inner`.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{now, IpcPerm64, Lookup, Perm, Registry, CAP_IPC_LOCK};
use crate::abi::{Errno, PAGE_SIZE};
use crate::auth::Creds;
use crate::memory::{FileRange, MemoryFile};
use crate::mm::filemap::Mappable;

/// Linux's defaults (`include/uapi/linux/shm.h`): no practical limit on a segment's size or
/// on all segments' pages, 4096 segments.
pub const SHMMIN: u64 = 1;
pub const SHMMAX: u64 = u64::MAX - (1 << 24);
pub const SHMALL: u64 = u64::MAX - (1 << 24);
pub const SHMMNI: u64 = 4096;

/// `shmctl` commands beyond the common ones.
pub const SHM_LOCK: i32 = 11;
pub const SHM_UNLOCK: i32 = 12;
pub const SHM_STAT: i32 = 13;
pub const SHM_INFO: i32 = 14;
pub const SHM_STAT_ANY: i32 = 15;

/// Mode bits: removed while attached; locked in memory.
pub const SHM_DEST: u32 = 0o1000;
pub const SHM_LOCKED: u32 = 0o2000;

/// `struct shmid64_ds` (x86-64).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ShmidDs {
    pub perm: IpcPerm64,
    pub segsz: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
    pub unused: [u64; 2],
}

/// `struct shminfo64`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ShmInfo64 {
    pub shmmax: u64,
    pub shmmin: u64,
    pub shmmni: u64,
    pub shmseg: u64,
    pub shmall: u64,
    pub unused: [u64; 4],
}

/// `struct shm_info`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ShmUsage {
    pub used_ids: i32,
    pub pad: i32,
    pub shm_tot: u64,
    pub shm_rss: u64,
    pub shm_swp: u64,
    pub swap_attempts: u64,
    pub swap_successes: u64,
}

/// What `shmctl` answers.
pub enum CtlReply {
    /// A plain return value.
    Value(i32),
    /// IPC_STAT/SHM_STAT: the record, and the return value.
    Stat(ShmidDs, i32),
    Info(ShmInfo64, i32),
    Usage(ShmUsage, i32),
}

/// One segment: its pages and its record.
pub struct Segment {
    size: u64,
    pages: FileRange,
    mf: Arc<MemoryFile>,
    meta: Mutex<Meta>,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    id: i32,
    perm: Perm,
    atime: i64,
    dtime: i64,
    ctime: i64,
    cpid: i32,
    lpid: i32,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Segment {
    fn meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock().unwrap()
    }

    /// Bytes a `shmat` maps: the size rounded up to pages.
    pub fn mapped_len(&self) -> u64 {
        self.pages.len
    }

    /// The identifier.
    pub fn id(&self) -> i32 {
        self.meta().id
    }

    /// The key, as `/proc/[pid]/maps` names the mapping.
    pub fn key(&self) -> i32 {
        self.meta().perm.key
    }

    /// An attach by process `pid` succeeded.
    pub fn attached(&self, pid: i32) {
        let mut m = self.meta();
        m.atime = now();
        m.lpid = pid;
    }

    /// A `shmdt` by process `pid` removed this segment's mappings.
    pub fn detached(&self, pid: i32) {
        let mut m = self.meta();
        m.dtime = now();
        m.lpid = pid;
    }
}

impl Mappable for Segment {
    fn size(&self) -> u64 {
        self.size
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        let total = self.pages.len / PAGE_SIZE;
        let end = first.saturating_add(count).min(total);
        if first >= end {
            return Ok(Vec::new());
        }
        let r = FileRange {
            offset: self.pages.offset + first * PAGE_SIZE,
            len: (end - first) * PAGE_SIZE,
        };
        self.mf.inc_ref(r);
        Ok(vec![(first, r)])
    }

    fn shared_writable(&self) -> bool {
        true
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.mf.dec_ref(self.pages);
    }
}

/// A registry entry: strong while the segment exists, weak once removed while attached.
#[derive(Debug)]
enum Slot {
    Live(Arc<Segment>),
    Removed(Weak<Segment>),
}

impl Slot {
    fn segment(&self) -> Option<Arc<Segment>> {
        match self {
            Slot::Live(s) => Some(s.clone()),
            Slot::Removed(w) => w.upgrade(),
        }
    }

    /// Mappings of the segment (`shm_nattch`).
    fn attachments(&self) -> u64 {
        match self {
            Slot::Live(s) => Arc::strong_count(s) as u64 - 1,
            Slot::Removed(w) => w.strong_count() as u64,
        }
    }
}

/// The namespace's segments.
#[derive(Debug, Default)]
pub struct Shm {
    registry: Mutex<Registry<Slot>>,
}

impl Shm {
    /// The registry, without removed segments whose last mapping has gone.
    fn lock(&self) -> MutexGuard<'_, Registry<Slot>> {
        let mut r = self.registry.lock().unwrap();
        r.retain(|s| !matches!(s, Slot::Removed(w) if w.strong_count() == 0));
        r
    }

    /// `shmget(2)`: the identifier of the segment `key` names, created if asked.
    ///
    /// # Errors
    /// ENOENT, EEXIST, EACCES, EINVAL (size out of range or above an existing segment's),
    /// ENOSPC (too many segments), ENOMEM (no memory for the pages).
    pub fn get(
        &self,
        mf: &Arc<MemoryFile>,
        creds: &Creds,
        pid: i32,
        key: i32,
        size: u64,
        flags: i32,
    ) -> Result<i32, Errno> {
        let mut r = self.lock();
        match r.lookup_key(key, flags)? {
            Lookup::Existing(id) => {
                let seg = r.get(id)?.segment().ok_or(Errno::EIDRM)?;
                if seg.size < size {
                    return Err(Errno::EINVAL);
                }
                seg.meta().perm.check(creds, flags as u32)?;
                Ok(id)
            }
            Lookup::Create => {
                if !(SHMMIN..=SHMMAX).contains(&size) {
                    return Err(Errno::EINVAL);
                }
                if r.len() as u64 >= SHMMNI {
                    return Err(Errno::ENOSPC);
                }
                let pages = mf.allocate(size).map_err(|_| Errno::ENOMEM)?;
                let seg = Arc::new(Segment {
                    size,
                    pages,
                    mf: mf.clone(),
                    meta: Mutex::new(Meta {
                        id: 0,
                        perm: Perm::new(key, creds, flags),
                        atime: 0,
                        dtime: 0,
                        ctime: now(),
                        cpid: pid,
                        lpid: 0,
                    }),
                });
                let id = r.insert(key, SHMMNI as usize, Slot::Live(seg.clone()))?;
                seg.meta().id = id;
                Ok(id)
            }
        }
    }

    /// The segment `shmat(2)` maps, after checking `creds` may map it for reading (and for
    /// writing unless `read_only`, for executing if `exec`).
    ///
    /// # Errors
    /// EINVAL (no such segment), EIDRM (its last mapping went meanwhile), EACCES.
    pub fn for_attach(
        &self,
        creds: &Creds,
        id: i32,
        read_only: bool,
        exec: bool,
    ) -> Result<Arc<Segment>, Errno> {
        let r = self.lock();
        let seg = r.get(id)?.segment().ok_or(Errno::EIDRM)?;
        let mut want = 0o444;
        if !read_only {
            want |= 0o222;
        }
        if exec {
            want |= 0o111;
        }
        seg.meta().perm.check(creds, want)?;
        Ok(seg)
    }

    /// Every segment that still exists, for `shmdt(2)` to recognise its mappings.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.lock()
            .iter()
            .filter_map(|(_, s)| s.segment())
            .collect()
    }

    /// `shmctl(2)`.
    ///
    /// # Errors
    /// EINVAL (unknown command or segment), EACCES, EPERM, EFAULT of `set` is the caller's.
    pub fn ctl(
        &self,
        creds: &Creds,
        id: i32,
        cmd: i32,
        set: Option<&ShmidDs>,
    ) -> Result<CtlReply, Errno> {
        let mut r = self.lock();
        match cmd {
            super::IPC_INFO => Ok(CtlReply::Info(
                ShmInfo64 {
                    shmmax: SHMMAX,
                    shmmin: SHMMIN,
                    shmmni: SHMMNI,
                    shmseg: SHMMNI,
                    shmall: SHMALL,
                    unused: [0; 4],
                },
                r.max_index(),
            )),
            SHM_INFO => {
                let mut u = ShmUsage {
                    used_ids: r.len() as i32,
                    ..ShmUsage::default()
                };
                for seg in r.iter().filter_map(|(_, s)| s.segment()) {
                    u.shm_tot += seg.pages.len / PAGE_SIZE;
                    u.shm_rss += seg.pages.len / PAGE_SIZE;
                }
                Ok(CtlReply::Usage(u, r.max_index()))
            }
            SHM_STAT | SHM_STAT_ANY => {
                let (real_id, slot) = r.at_index(id)?;
                let ds = stat(slot)?;
                if cmd == SHM_STAT {
                    perm_of(slot)?.check(creds, 0o444)?;
                }
                Ok(CtlReply::Stat(ds, real_id))
            }
            super::IPC_STAT => {
                let slot = r.get(id)?;
                perm_of(slot)?.check(creds, 0o444)?;
                Ok(CtlReply::Stat(stat(slot)?, 0))
            }
            super::IPC_SET => {
                let seg = r.get(id)?.segment().ok_or(Errno::EIDRM)?;
                let mut m = seg.meta();
                m.perm.check_owner(creds)?;
                let new = set.ok_or(Errno::EFAULT)?;
                m.perm.set(&new.perm);
                m.ctime = now();
                Ok(CtlReply::Value(0))
            }
            super::IPC_RMID => {
                let slot = r.get(id)?;
                let seg = slot.segment().ok_or(Errno::EIDRM)?;
                {
                    let mut m = seg.meta();
                    m.perm.check_owner(creds)?;
                    m.perm.mode |= SHM_DEST;
                    m.perm.key = super::IPC_PRIVATE;
                    m.ctime = now();
                }
                r.forget_key(id);
                // Attached or not, the registry lets go of it: the last mapping frees it.
                *r.get_mut(id)? = Slot::Removed(Arc::downgrade(&seg));
                drop(seg);
                r.retain(|s| !matches!(s, Slot::Removed(w) if w.strong_count() == 0));
                Ok(CtlReply::Value(0))
            }
            SHM_LOCK | SHM_UNLOCK => {
                let seg = r.get(id)?.segment().ok_or(Errno::EIDRM)?;
                let mut m = seg.meta();
                if !creds.has_cap(CAP_IPC_LOCK) {
                    m.perm.check_owner(creds)?;
                    m.perm.check(creds, 0o444)?;
                }
                if cmd == SHM_LOCK {
                    m.perm.mode |= SHM_LOCKED;
                } else {
                    m.perm.mode &= !SHM_LOCKED;
                }
                Ok(CtlReply::Value(0))
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// The segments for a checkpoint: identifiers, keys, records and where their pages lie
    /// in the memory file (which the image saves with the rest of it). A segment removed
    /// while attached is saved as such: the mappings that hold it are its only owners.
    ///
    /// # Errors
    /// None in a paused kernel; a removed segment whose last mapping went meanwhile.
    pub fn saved(&self) -> Result<super::RegistryImage<SegmentImage>, String> {
        let r = self.lock();
        let image = r.saved(|slot| {
            slot.segment().map(|seg| {
                let m = *seg.meta();
                SegmentImage {
                    size: seg.size,
                    offset: seg.pages.offset,
                    len: seg.pages.len,
                    perm: m.perm,
                    atime: m.atime,
                    dtime: m.dtime,
                    ctime: m.ctime,
                    cpid: m.cpid,
                    lpid: m.lpid,
                    removed: matches!(slot, Slot::Removed(_)),
                }
            })
        });
        let objects = image
            .objects
            .into_iter()
            .map(|(idx, seq, o)| {
                o.map(|o| (idx, seq, o))
                    .ok_or_else(|| format!("System V shared memory segment at index {idx} went"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(super::RegistryImage {
            objects,
            keys: image.keys,
            freed: image.freed,
            unused: image.unused,
            next_seq: image.next_seq,
        })
    }

    /// Puts back the segments of [`Shm::saved`] in a namespace that has none, over pages of
    /// `mf` the restore has claimed already (each segment takes its own reference). Returns
    /// every segment by identifier: the restored mappings attach them (a removed one lives
    /// only as long as they do).
    ///
    /// # Errors
    /// A malformed image: pages not in the memory file, a size that does not fit them.
    pub fn restore(
        &self,
        mf: &Arc<MemoryFile>,
        image: &super::RegistryImage<SegmentImage>,
    ) -> Result<std::collections::HashMap<i32, Arc<Segment>>, String> {
        let mut r = self.registry.lock().unwrap();
        if !r.is_empty() {
            return Err("the namespace has shared memory segments already".into());
        }
        let segments = std::sync::Mutex::new(Vec::new());
        let restored = Registry::restored(image, |s| {
            let pages = FileRange {
                offset: s.offset,
                len: s.len,
            };
            let fits = s.offset.is_multiple_of(PAGE_SIZE)
                && s.len == s.size.div_ceil(PAGE_SIZE) * PAGE_SIZE
                && (SHMMIN..=SHMMAX).contains(&s.size);
            if !fits || !mf.is_used(pages) {
                return Err(format!(
                    "a shared memory segment of {} bytes at {:#x}+{:#x} of the memory file",
                    s.size, s.offset, s.len
                ));
            }
            mf.inc_ref(pages);
            let seg = Arc::new(Segment {
                size: s.size,
                pages,
                mf: mf.clone(),
                meta: Mutex::new(Meta {
                    id: 0,
                    perm: s.perm,
                    atime: s.atime,
                    dtime: s.dtime,
                    ctime: s.ctime,
                    cpid: s.cpid,
                    lpid: s.lpid,
                }),
            });
            segments.lock().unwrap().push(seg.clone());
            Ok(if s.removed {
                Slot::Removed(Arc::downgrade(&seg))
            } else {
                Slot::Live(seg)
            })
        })?;
        let segments = segments.into_inner().unwrap();
        let mut by_id = std::collections::HashMap::new();
        for (id, slot) in restored.iter() {
            if let Some(seg) = segments.iter().find(|s| slot_holds(slot, s)) {
                seg.meta().id = id;
                by_id.insert(id, seg.clone());
            }
        }
        *r = restored;
        Ok(by_id)
    }

    /// Segments in the namespace (removed ones still mapped included).
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// `/proc/sysvipc/shm`.
    pub fn proc_table(&self) -> String {
        let mut out = String::from(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n",
        );
        let r = self.lock();
        for (_, slot) in r.iter() {
            let Ok(ds) = stat(slot) else { continue };
            let p = ds.perm;
            out.push_str(&format!(
                "{:10} {:10}  {:4o} {:21} {:5} {:5}  {:5} {:5} {:5} {:5} {:5} {:10} {:10} {:10} {:21} {:21}\n",
                p.key, stat_id(slot), p.mode, ds.segsz, ds.cpid, ds.lpid, ds.nattch, p.uid, p.gid,
                p.cuid, p.cgid, ds.atime, ds.dtime, ds.ctime, ds.segsz.div_ceil(PAGE_SIZE) * PAGE_SIZE, 0
            ));
        }
        out
    }
}

/// Whether `slot` names `seg`.
fn slot_holds(slot: &Slot, seg: &Arc<Segment>) -> bool {
    match slot {
        Slot::Live(s) => Arc::ptr_eq(s, seg),
        Slot::Removed(w) => std::ptr::eq(w.as_ptr(), Arc::as_ptr(seg)),
    }
}

/// A segment in a checkpoint image: its record and where its pages lie in the memory file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SegmentImage {
    pub size: u64,
    pub offset: u64,
    pub len: u64,
    pub perm: Perm,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    /// IPC_RMID while attached: the mappings hold it, the registry no longer does.
    pub removed: bool,
}

fn perm_of(slot: &Slot) -> Result<Perm, Errno> {
    Ok(slot.segment().ok_or(Errno::EIDRM)?.meta().perm)
}

fn stat_id(slot: &Slot) -> i32 {
    slot.segment().map_or(0, |s| s.meta().id)
}

/// The `shmid64_ds` of a segment.
fn stat(slot: &Slot) -> Result<ShmidDs, Errno> {
    let seg = slot.segment().ok_or(Errno::EIDRM)?;
    let m = *seg.meta();
    // `seg` is one more reference than the mappings hold.
    let nattch = slot.attachments() - 1;
    Ok(ShmidDs {
        perm: m.perm.to_abi(m.id),
        segsz: seg.size,
        atime: m.atime,
        dtime: m.dtime,
        ctime: m.ctime,
        cpid: m.cpid,
        lpid: m.lpid,
        nattch,
        unused: [0; 2],
    })
}
