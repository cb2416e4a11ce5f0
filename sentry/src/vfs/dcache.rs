//! Call epochs: how long an attribute a filesystem fetched from the host stays fresh.
//!
//! One system call walks a path component by component and asks each directory for its
//! attributes (search permission, "is it a directory", "is it a symlink") several times, then
//! stats the file it reached. A filesystem over the host (hostfs) must answer from the host
//! to see changes made outside the sandbox, but need not ask the host again *within the same
//! system call*: Linux itself answers one call from one lookup of each dentry. So the system
//! call dispatcher starts an epoch per call on its thread ([`begin_call`]), and a filesystem
//! may keep an attribute tagged with [`current`] and reuse it while `current()` returns the
//! same tag (see [`EpochCell`]). Outside a call (boot, control requests, tests) the epoch is
//! [`NO_EPOCH`] and nothing is reused.
//!
//! A tag names the thread (its high bits) and the call (its low bits), so a value cached by
//! one task's call is never reused by another thread's.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The epoch of a thread outside any system call: never matches a cached value.
pub const NO_EPOCH: u64 = 0;

/// Bits of a tag that count calls; the bits above name the thread.
const CALL_BITS: u32 = 40;

/// The next thread number (numbers start at 1, so no tag is [`NO_EPOCH`]).
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's number (0 until its first call) and the current epoch tag.
    static EPOCH: Cell<(u64, u64)> = const { Cell::new((0, NO_EPOCH)) };
}

/// Starts a new epoch on this thread: the system-call dispatcher calls it once per call.
pub fn begin_call() {
    EPOCH.with(|e| {
        let (mut thread, tag) = e.get();
        if thread == 0 {
            thread = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        }
        let calls = (tag.wrapping_add(1)) & ((1 << CALL_BITS) - 1);
        e.set((thread, (thread << CALL_BITS) | calls));
    });
}

/// Ends this thread's epoch: cached values are no longer reused until the next call.
pub fn end_call() {
    EPOCH.with(|e| {
        let (thread, tag) = e.get();
        // Keep the call count so the next tag differs; only the "in a call" flag goes.
        e.set((thread, tag & ((1 << CALL_BITS) - 1) | (1 << 63)));
    });
}

/// The current epoch tag ([`NO_EPOCH`] outside a system call).
pub fn current() -> u64 {
    EPOCH.with(|e| {
        let tag = e.get().1;
        if tag & (1 << 63) != 0 {
            NO_EPOCH
        } else {
            tag
        }
    })
}

/// A value valid for one epoch: what a filesystem fetched from the host during a call.
#[derive(Debug, Default)]
pub struct EpochCell<T: Copy> {
    slot: Mutex<Option<(u64, T)>>,
}

impl<T: Copy> EpochCell<T> {
    pub fn new() -> EpochCell<T> {
        EpochCell {
            slot: Mutex::new(None),
        }
    }

    /// The value stored in the current epoch, if any.
    pub fn get(&self) -> Option<T> {
        let now = current();
        if now == NO_EPOCH {
            return None;
        }
        match *self.slot.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((tag, v)) if tag == now => Some(v),
            _ => None,
        }
    }

    /// Stores `v` for the rest of the current epoch (nothing outside a call).
    pub fn set(&self, v: T) {
        let now = current();
        if now != NO_EPOCH {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, v));
        }
    }

    /// Forgets the value (the file was changed through the sentry).
    pub fn clear(&self) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A sixteenth of the sentry's own soft fd limit (the share a cache of entries that may hold
/// host fds keeps), at most `max`. Boot sizes the caches with it before the host seccomp
/// filter goes on (which refuses `prlimit64`).
pub fn fd_share(max: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 16).unwrap_or(usize::MAX).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lives_for_one_call_on_one_thread() {
        let c = EpochCell::new();
        c.set(1);
        assert_eq!(c.get(), None, "outside a call nothing is kept");
        begin_call();
        assert_eq!(c.get(), None);
        c.set(2);
        assert_eq!(c.get(), Some(2));
        std::thread::scope(|s| {
            s.spawn(|| {
                begin_call();
                assert_eq!(c.get(), None, "another thread's call");
            });
        });
        assert_eq!(c.get(), Some(2));
        c.clear();
        assert_eq!(c.get(), None);
        c.set(3);
        begin_call();
        assert_eq!(c.get(), None, "the next call");
        c.set(4);
        end_call();
        assert_eq!(c.get(), None, "after the call");
        assert_eq!(current(), NO_EPOCH);
    }
}
