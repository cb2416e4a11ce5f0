//! Advisory file locks: `flock(2)` locks and `fcntl(2)` record locks (process-owned POSIX
//! locks and open-file-description-owned OFD locks), with Linux's ownership rules.
//!
//! - flock locks belong to an open file description and only conflict with flock locks.
//! - POSIX record locks belong to a process; OFD locks to an open file description. Both
//!   kinds cover byte ranges and conflict with each other.
//! - A process's POSIX locks on a file go when it closes any fd of that file or exits; OFD and
//!   flock locks go when their open file description is released.
//!
//! Files are identified by (device, inode). Each kernel owns one table ([`Locks`]); an open
//! file description through which a lock was taken remembers the table, so that it releases
//! its locks from `Drop`, where no kernel is at hand. Per-file entries are kept once created,
//! so a task blocked on a file's queue is always woken by the entry that later releases.
//!
//! # Lock order
//! `Locks::files` → `FileLocks::held` → wait queues (leaves); `Locks::posix_owners` is a leaf.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::waiter::WaitQueue;

/// Who holds a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A POSIX record lock of the process with this TGID.
    Process(i32),
    /// An OFD or flock lock of the open file description with this identity.
    File(usize),
}

/// Read (shared) or write (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

/// Which family a lock belongs to (families never conflict with each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Flock,
    Record,
}

/// One held lock over `[start, end)` (`end == u64::MAX`: to the end of the file, however far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub owner: Owner,
    pub family: Family,
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    /// Reported by F_GETLK (-1 for OFD locks).
    pub pid: i32,
}

impl Lock {
    fn conflicts(&self, other: &Lock) -> bool {
        self.family == other.family
            && self.owner != other.owner
            && self.start < other.end
            && other.start < self.end
            && (self.kind == Kind::Write || other.kind == Kind::Write)
    }
}

/// The locks of one file and the tasks waiting for them.
#[derive(Debug, Default)]
pub struct FileLocks {
    held: Mutex<Vec<Lock>>,
    pub queue: WaitQueue,
}

impl FileLocks {
    /// The first held lock that conflicts with `want`.
    pub fn conflict(&self, want: &Lock) -> Option<Lock> {
        self.held
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.conflicts(want))
            .copied()
    }

    /// Takes `want` (or, with `kind` None, unlocks the range) if nothing conflicts; the
    /// owner's own locks in the range are replaced, split where they stick out.
    /// Returns the conflicting lock when it cannot.
    pub fn try_set(&self, want: Lock, unlock: bool) -> Result<(), Lock> {
        let mut held = self.held.lock().unwrap();
        if !unlock {
            if let Some(c) = held.iter().find(|l| l.conflicts(&want)) {
                return Err(*c);
            }
        }
        let mut kept = Vec::with_capacity(held.len() + 2);
        for l in held.drain(..) {
            let mine = l.owner == want.owner && l.family == want.family;
            if !mine || l.end <= want.start || want.end <= l.start {
                kept.push(l);
                continue;
            }
            if l.start < want.start {
                kept.push(Lock {
                    end: want.start,
                    ..l
                });
            }
            if want.end < l.end {
                kept.push(Lock {
                    start: want.end,
                    ..l
                });
            }
        }
        if !unlock {
            kept.push(want);
        }
        *held = kept;
        drop(held);
        self.queue.notify_all();
        Ok(())
    }

    fn release(&self, owner: Owner, family: Option<Family>) {
        let mut held = self.held.lock().unwrap();
        let before = held.len();
        held.retain(|l| !(l.owner == owner && family.is_none_or(|f| f == l.family)));
        let changed = held.len() != before;
        drop(held);
        if changed {
            self.queue.notify_all();
        }
    }
}

/// Every file's locks.
#[derive(Debug, Default)]
pub struct Locks {
    files: Mutex<HashMap<(u64, u64), Arc<FileLocks>>>,
    /// The processes that have taken a POSIX lock since they started (kept until they exit),
    /// so that a close by any other process looks up nothing. A leaf lock.
    posix_owners: Mutex<HashSet<i32>>,
    /// Whether any process ever took a POSIX lock: until then a close takes no lock at all.
    any_posix: AtomicBool,
}

impl Locks {
    /// The locks of the file (device, inode), created on first use.
    pub fn file(&self, key: (u64, u64)) -> Arc<FileLocks> {
        self.files.lock().unwrap().entry(key).or_default().clone()
    }

    fn existing(&self) -> Vec<Arc<FileLocks>> {
        self.files.lock().unwrap().values().cloned().collect()
    }

    /// Notes that process `tgid` takes a POSIX lock (see [`Locks::may_hold_posix`]).
    pub fn note_posix_owner(&self, tgid: i32) {
        self.any_posix.store(true, Ordering::Relaxed);
        self.posix_owners.lock().unwrap().insert(tgid);
    }

    /// Whether process `tgid` may hold POSIX locks: false when it never took one, so that
    /// its closes need not identify the file.
    pub fn may_hold_posix(&self, tgid: i32) -> bool {
        self.any_posix.load(Ordering::Relaxed) && self.posix_owners.lock().unwrap().contains(&tgid)
    }

    /// Drops process `tgid`'s POSIX locks on the file `key` (it closed an fd of it).
    pub fn release_process_file(&self, tgid: i32, key: (u64, u64)) {
        let f = self.files.lock().unwrap().get(&key).cloned();
        if let Some(f) = f {
            f.release(Owner::Process(tgid), Some(Family::Record));
        }
    }

    /// Drops every POSIX lock of process `tgid` (it exited).
    pub fn release_process(&self, tgid: i32) {
        self.posix_owners.lock().unwrap().remove(&tgid);
        for f in self.existing() {
            f.release(Owner::Process(tgid), None);
        }
    }

    /// Drops the OFD and flock locks of open file description `id` (it was released).
    pub fn release_file(&self, id: usize) {
        for f in self.existing() {
            f.release(Owner::File(id), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(owner: Owner, kind: Kind, start: u64, end: u64) -> Lock {
        Lock {
            owner,
            family: Family::Record,
            kind,
            start,
            end,
            pid: 1,
        }
    }

    #[test]
    fn tables_of_two_kernels_are_independent() {
        let (k1, k2) = (Locks::default(), Locks::default());
        let key = (1, 2);
        let (a, b) = (Owner::Process(1), Owner::Process(2));
        k1.file(key)
            .try_set(lock(a, Kind::Write, 0, 10), false)
            .unwrap();
        // The same file key in the other kernel's table is free.
        assert!(k2
            .file(key)
            .try_set(lock(b, Kind::Write, 0, 10), false)
            .is_ok());
        assert!(k1.file(key).conflict(&lock(b, Kind::Read, 0, 1)).is_some());
        // Process 1 of the other kernel exiting releases nothing here.
        k2.release_process(1);
        assert!(k1.file(key).conflict(&lock(b, Kind::Read, 0, 1)).is_some());
        k1.release_process(1);
        assert!(k1.file(key).conflict(&lock(b, Kind::Read, 0, 1)).is_none());
    }

    #[test]
    fn shared_and_exclusive_ranges() {
        let f = FileLocks::default();
        let (a, b) = (Owner::Process(1), Owner::Process(2));
        f.try_set(lock(a, Kind::Read, 0, 10), false).unwrap();
        f.try_set(lock(b, Kind::Read, 5, 15), false).unwrap();
        assert!(f.try_set(lock(b, Kind::Write, 5, 15), false).is_err());
        assert!(f.try_set(lock(b, Kind::Write, 10, 20), false).is_ok());
        f.try_set(lock(a, Kind::Read, 0, 10), true).unwrap();
        assert!(f.try_set(lock(a, Kind::Write, 0, 5), false).is_ok());
        assert_eq!(f.conflict(&lock(b, Kind::Read, 0, 1)).unwrap().owner, a);
    }

    #[test]
    fn unlocking_the_middle_splits() {
        let f = FileLocks::default();
        let (a, b) = (Owner::Process(1), Owner::Process(2));
        f.try_set(lock(a, Kind::Write, 0, u64::MAX), false).unwrap();
        f.try_set(lock(a, Kind::Write, 10, 20), true).unwrap();
        assert!(f.conflict(&lock(b, Kind::Write, 10, 20)).is_none());
        assert!(f.conflict(&lock(b, Kind::Write, 19, 21)).is_some());
        assert!(f.conflict(&lock(b, Kind::Write, 9, 10)).is_some());
    }

    #[test]
    fn flock_and_record_locks_do_not_interact() {
        let f = FileLocks::default();
        let whole = |owner, family| Lock {
            owner,
            family,
            kind: Kind::Write,
            start: 0,
            end: u64::MAX,
            pid: -1,
        };
        f.try_set(whole(Owner::File(1), Family::Flock), false)
            .unwrap();
        assert!(f
            .try_set(whole(Owner::File(2), Family::Record), false)
            .is_ok());
        assert!(f
            .try_set(whole(Owner::File(2), Family::Flock), false)
            .is_err());
        f.release(Owner::File(1), None);
        assert!(f
            .try_set(whole(Owner::File(2), Family::Flock), false)
            .is_ok());
    }
}
