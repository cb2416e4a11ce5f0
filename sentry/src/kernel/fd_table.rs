//! Per-process file-descriptor tables.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::abi::Errno;
use crate::vfs::OpenFile;

#[derive(Debug, Clone)]
struct Entry {
    file: Arc<OpenFile>,
    cloexec: bool,
}

/// An fd table (shared between threads, and between processes with CLONE_FILES).
#[derive(Debug, Default)]
pub struct FdTable {
    files: Mutex<BTreeMap<i32, Entry>>,
}

impl FdTable {
    pub fn new() -> FdTable {
        FdTable::default()
    }

    /// The file at `fd`.
    ///
    /// # Errors
    /// EBADF.
    pub fn get(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        self.files
            .lock()
            .unwrap()
            .get(&fd)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)
    }

    /// Whether `fd` is close-on-exec.
    ///
    /// # Errors
    /// EBADF.
    pub fn cloexec(&self, fd: i32) -> Result<bool, Errno> {
        self.files
            .lock()
            .unwrap()
            .get(&fd)
            .map(|e| e.cloexec)
            .ok_or(Errno::EBADF)
    }

    /// Sets close-on-exec on `fd`.
    ///
    /// # Errors
    /// EBADF.
    pub fn set_cloexec(&self, fd: i32, on: bool) -> Result<(), Errno> {
        self.files
            .lock()
            .unwrap()
            .get_mut(&fd)
            .map(|e| e.cloexec = on)
            .ok_or(Errno::EBADF)
    }

    /// Installs `file` at the lowest free fd >= `min` below `limit`.
    ///
    /// # Errors
    /// EMFILE when none is free.
    pub fn install(
        &self,
        file: Arc<OpenFile>,
        min: i32,
        cloexec: bool,
        limit: u64,
    ) -> Result<i32, Errno> {
        let mut files = self.files.lock().unwrap();
        let mut fd = min;
        for (&k, _) in files.range(min..) {
            if k != fd {
                break;
            }
            fd += 1;
        }
        if fd as u64 >= limit {
            return Err(Errno::EMFILE);
        }
        files.insert(fd, Entry { file, cloexec });
        Ok(fd)
    }

    /// Puts `file` at exactly `fd` (dup2), returning what was there.
    pub fn install_at(&self, fd: i32, file: Arc<OpenFile>, cloexec: bool) -> Option<Arc<OpenFile>> {
        self.files
            .lock()
            .unwrap()
            .insert(fd, Entry { file, cloexec })
            .map(|e| e.file)
    }

    /// Removes `fd`.
    ///
    /// # Errors
    /// EBADF.
    pub fn remove(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        self.files
            .lock()
            .unwrap()
            .remove(&fd)
            .map(|e| e.file)
            .ok_or(Errno::EBADF)
    }

    /// Closes every fd in `[first, last]`; with `cloexec_only`, marks them close-on-exec.
    pub fn close_range(&self, first: i32, last: i32, cloexec_only: bool) {
        let mut files = self.files.lock().unwrap();
        let fds: Vec<i32> = files.range(first..=last).map(|(&k, _)| k).collect();
        for fd in fds {
            if cloexec_only {
                files.get_mut(&fd).expect("present").cloexec = true;
            } else {
                files.remove(&fd);
            }
        }
    }

    /// Closes the close-on-exec fds (execve).
    pub fn close_on_exec(&self) {
        self.files.lock().unwrap().retain(|_, e| !e.cloexec);
    }

    /// A copy for a child that does not share the table (fork without CLONE_FILES).
    pub fn fork(&self) -> FdTable {
        FdTable {
            files: Mutex::new(self.files.lock().unwrap().clone()),
        }
    }

    /// The open fds.
    pub fn fds(&self) -> Vec<i32> {
        self.files.lock().unwrap().keys().copied().collect()
    }
}
