//! The system-call numbers a kernel's applications made, for learning a seccomp profile
//! (`runsc-rs do --seccomp-profile-out`, the `dev.runsc-rs.seccomp-profile-out` annotation).
//!
//! The syscall dispatch records every call of every task, exec'd programs included, before
//! the handler runs, so calls the sentry answers with an error (ENOSYS, EPERM) are in the set
//! too. The hot path is one relaxed atomic load, plus one `fetch_or` the first time a number
//! is seen (a load first keeps the shared cache line from bouncing between the cores of a
//! multi-threaded application once its calls are known).
//!
//! # Lock order
//! `others` is a leaf, taken only for numbers past the bitset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Numbers below this are bits; every x86-64 system call is (the highest is below 470).
const BITS: usize = 512;
/// How many numbers past the bitset are kept (for the warning that names the skipped ones):
/// an application can make 2^64 distinct numbers, and the set must not grow with them.
const MAX_OTHERS: usize = 32;

/// A set of system-call numbers, filled concurrently by the tasks of one kernel.
#[derive(Debug, Default)]
pub struct SyscallSet {
    words: [AtomicU64; BITS / 64],
    /// Numbers at or past `BITS` (x32's `0x40000000 |` range, garbage), at most
    /// `MAX_OTHERS` of them; `others_dropped` says more were seen.
    others: Mutex<Vec<u64>>,
    others_dropped: std::sync::atomic::AtomicBool,
}

impl SyscallSet {
    /// Records `nr`.
    pub fn insert(&self, nr: u64) {
        let word = usize::try_from(nr / 64)
            .ok()
            .and_then(|w| self.words.get(w));
        match word {
            Some(word) => {
                let bit = 1u64 << (nr % 64);
                if word.load(Ordering::Relaxed) & bit == 0 {
                    word.fetch_or(bit, Ordering::Relaxed);
                }
            }
            None => {
                let mut others = self.others.lock().unwrap();
                if others.contains(&nr) {
                    return;
                }
                if others.len() < MAX_OTHERS {
                    others.push(nr);
                } else {
                    self.others_dropped.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// The numbers recorded so far, ascending, and whether numbers past the bitset were
    /// left out for want of room.
    pub fn numbers(&self) -> (Vec<u64>, bool) {
        let mut out: Vec<u64> = (0..BITS as u64)
            .filter(|&nr| {
                self.words[nr as usize / 64].load(Ordering::Relaxed) & (1 << (nr % 64)) != 0
            })
            .collect();
        out.extend(self.others.lock().unwrap().iter().copied());
        out.sort_unstable();
        (out, self.others_dropped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_each_number_once_and_bounds_the_rest() {
        let set = SyscallSet::default();
        for nr in [0, 1, 63, 64, 511, 1, 0x4000_0000, 0x4000_0000, u64::MAX] {
            set.insert(nr);
        }
        assert_eq!(
            set.numbers(),
            (vec![0, 1, 63, 64, 511, 0x4000_0000, u64::MAX], false)
        );
        for nr in 0..100u64 {
            set.insert(1000 + nr);
        }
        let (nums, dropped) = set.numbers();
        assert!(dropped);
        assert_eq!(nums.len(), 5 + MAX_OTHERS);
    }
}
