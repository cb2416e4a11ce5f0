//! Write access against execution (Linux's `i_writecount`, `get_write_access` and
//! `deny_write_access`): a file open for writing cannot be executed, and a file a process
//! image runs cannot be opened for writing or truncated; both are ETXTBSY.
//!
//! Files are identified by (device, inode), as the lock table does. Each kernel owns one
//! table ([`WriteAccess`]); each holder keeps an [`Access`], which gives its count back when
//! dropped: an open file description its write access, a process image (shared by the
//! processes forked from it) its denial.
//!
//! # Lock order
//! `WriteAccess::counts` is a leaf.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::abi::Errno;

/// Every file's count: writers (> 0) or process images running it (< 0). Files with neither
/// have no entry.
#[derive(Debug, Default)]
pub struct WriteAccess {
    counts: Mutex<HashMap<(u64, u64), i64>>,
}

/// One writer's or one image's hold on a file's count, given back on drop.
#[derive(Debug)]
pub struct Access {
    table: Arc<WriteAccess>,
    key: (u64, u64),
    /// +1 for a writer, -1 for a denial.
    delta: i64,
}

impl WriteAccess {
    /// Write access to the file `key` (an open for writing, a truncate).
    ///
    /// # Errors
    /// ETXTBSY while a process image runs it.
    pub fn get_write(self: &Arc<Self>, key: (u64, u64)) -> Result<Access, Errno> {
        self.take(key, 1)
    }

    /// Denies writes to the file `key` while the returned hold lives (execve).
    ///
    /// # Errors
    /// ETXTBSY while it is open for writing.
    pub fn deny_write(self: &Arc<Self>, key: (u64, u64)) -> Result<Access, Errno> {
        self.take(key, -1)
    }

    fn take(self: &Arc<Self>, key: (u64, u64), delta: i64) -> Result<Access, Errno> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count * delta < 0 {
            return Err(Errno::ETXTBSY);
        }
        *count += delta;
        Ok(Access {
            table: self.clone(),
            key,
            delta,
        })
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= self.delta;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_and_images_exclude_each_other() {
        let t = Arc::new(WriteAccess::default());
        let w1 = t.get_write((1, 1)).unwrap();
        let w2 = t.get_write((1, 1)).unwrap();
        assert_eq!(t.deny_write((1, 1)).unwrap_err(), Errno::ETXTBSY);
        let other = t.deny_write((1, 2)).unwrap();
        drop(w1);
        assert_eq!(t.deny_write((1, 1)).unwrap_err(), Errno::ETXTBSY);
        drop(w2);
        let d1 = t.deny_write((1, 1)).unwrap();
        let d2 = t.deny_write((1, 1)).unwrap();
        assert_eq!(t.get_write((1, 1)).unwrap_err(), Errno::ETXTBSY);
        drop((d1, d2, other));
        assert!(t.get_write((1, 1)).is_ok());
        assert!(t.counts.lock().unwrap().is_empty());
    }
}
