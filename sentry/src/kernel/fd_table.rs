//! Per-process file-descriptor tables.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::abi::Errno;
use crate::vfs::lock::Locks;
use crate::vfs::OpenFile;

#[derive(Debug, Clone)]
struct Entry {
    file: Arc<OpenFile>,
    cloexec: bool,
}

/// The table behind the lock.
#[derive(Debug, Default, Clone)]
struct Files {
    map: BTreeMap<i32, Entry>,
    /// Every fd below this one is in use, so the search for the lowest free fd starts here
    /// (without it, opening n files costs O(n^2)).
    free_from: i32,
}

impl Files {
    /// Notes that `fd` became free.
    fn freed(&mut self, fd: i32) {
        self.free_from = self.free_from.min(fd);
    }
}

/// An fd table (shared between threads, and between processes with CLONE_FILES).
///
/// Lookups, the per-call path of every fd-taking system call, share the lock: threads of one
/// process doing I/O at once do not queue behind each other; installing and closing take it
/// alone.
#[derive(Debug, Default)]
pub struct FdTable {
    files: RwLock<Files>,
}

impl FdTable {
    pub fn new() -> FdTable {
        FdTable::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Files> {
        self.files.read().unwrap()
    }

    fn write(&self) -> RwLockWriteGuard<'_, Files> {
        self.files.write().unwrap()
    }

    /// The file at `fd`.
    ///
    /// # Errors
    /// EBADF.
    pub fn get(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        self.read()
            .map
            .get(&fd)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)
    }

    /// The file at `fd` for a call that uses the open file itself (I/O, attributes through
    /// the descriptor, ioctl): an O_PATH descriptor is only a location, so it is EBADF, as
    /// Linux's fdget (unlike fdget_raw, which [`FdTable::get`] is) refuses it.
    ///
    /// # Errors
    /// EBADF.
    pub fn get_io(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        let f = self.get(fd)?;
        if f.is_path_only() {
            return Err(Errno::EBADF);
        }
        Ok(f)
    }

    /// Whether `fd` is close-on-exec.
    ///
    /// # Errors
    /// EBADF.
    pub fn cloexec(&self, fd: i32) -> Result<bool, Errno> {
        self.read()
            .map
            .get(&fd)
            .map(|e| e.cloexec)
            .ok_or(Errno::EBADF)
    }

    /// Sets close-on-exec on `fd`.
    ///
    /// # Errors
    /// EBADF.
    pub fn set_cloexec(&self, fd: i32, on: bool) -> Result<(), Errno> {
        self.write()
            .map
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
        let mut files = self.write();
        let start = min.max(files.free_from);
        let mut fd = start;
        for (&k, _) in files.map.range(start..) {
            if k != fd {
                break;
            }
            fd += 1;
        }
        if fd as u64 >= limit {
            return Err(Errno::EMFILE);
        }
        files.map.insert(fd, Entry { file, cloexec });
        if start == files.free_from {
            files.free_from = fd + 1;
        }
        Ok(fd)
    }

    /// Puts `file` at exactly `fd` (dup2), returning what was there (the caller releases
    /// its POSIX locks, [`release_posix_locks`]).
    pub fn install_at(&self, fd: i32, file: Arc<OpenFile>, cloexec: bool) -> Option<Arc<OpenFile>> {
        self.write()
            .map
            .insert(fd, Entry { file, cloexec })
            .map(|e| e.file)
    }

    /// Removes `fd`.
    ///
    /// # Errors
    /// EBADF.
    pub fn remove(&self, fd: i32) -> Result<Arc<OpenFile>, Errno> {
        let mut files = self.write();
        let file = files.map.remove(&fd).map(|e| e.file).ok_or(Errno::EBADF)?;
        files.freed(fd);
        Ok(file)
    }

    /// Closes every fd in `[first, last]`, returning the files closed (the caller releases
    /// their POSIX locks, [`release_posix_locks`]); with `cloexec_only`, marks them
    /// close-on-exec instead.
    pub fn close_range(&self, first: i32, last: i32, cloexec_only: bool) -> Vec<Arc<OpenFile>> {
        let mut files = self.write();
        let fds: Vec<i32> = files.map.range(first..=last).map(|(&k, _)| k).collect();
        let mut closed = Vec::new();
        for fd in fds {
            if cloexec_only {
                files.map.get_mut(&fd).expect("present").cloexec = true;
            } else if let Some(e) = files.map.remove(&fd) {
                files.freed(fd);
                closed.push(e.file);
            }
        }
        closed
    }

    /// Closes the close-on-exec fds (execve), returning the files closed (the caller
    /// releases their POSIX locks, [`release_posix_locks`]).
    pub fn close_on_exec(&self) -> Vec<Arc<OpenFile>> {
        let mut files = self.write();
        let fds: Vec<i32> = files
            .map
            .iter()
            .filter(|(_, e)| e.cloexec)
            .map(|(&fd, _)| fd)
            .collect();
        let mut closed = Vec::new();
        for fd in fds {
            if let Some(e) = files.map.remove(&fd) {
                files.freed(fd);
                closed.push(e.file);
            }
        }
        closed
    }

    /// A copy for a child that does not share the table (fork without CLONE_FILES).
    pub fn fork(&self) -> FdTable {
        FdTable {
            files: RwLock::new(self.read().clone()),
        }
    }

    /// The open fds.
    pub fn fds(&self) -> Vec<i32> {
        self.read().map.keys().copied().collect()
    }
}

/// Drops process `tgid`'s POSIX record locks on the files of fds it has just closed, by
/// whatever path (close, dup2/dup3 over an open fd, close_range, close-on-exec): closing any
/// fd of a file releases the process's locks on that file, as Linux's filp_close does.
/// Nothing is looked up for a process that never took a POSIX lock.
pub fn release_posix_locks(
    locks: &Locks,
    tgid: i32,
    closed: impl IntoIterator<Item = Arc<OpenFile>>,
) {
    if !locks.may_hold_posix(tgid) {
        return;
    }
    for f in closed {
        let key = match &f.dentry {
            Some(d) => d.inode.ident(),
            None => f.ops().stat().map(|st| (st.dev, st.ino)),
        };
        if let Ok(key) = key {
            locks.release_process_file(tgid, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<OpenFile> {
        OpenFile::new(crate::kernel::pipe::new_pipe().0, libc::O_RDONLY as u32)
    }

    fn install(t: &FdTable, min: i32) -> i32 {
        t.install(file(), min, false, 1 << 20).unwrap()
    }

    #[test]
    fn the_lowest_free_fd_is_taken() {
        let t = FdTable::new();
        assert_eq!(
            (0..5).map(|_| install(&t, 0)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        t.remove(1).unwrap();
        t.remove(3).unwrap();
        assert_eq!(install(&t, 0), 1);
        assert_eq!(install(&t, 2), 3);
        assert_eq!(install(&t, 0), 5);
        assert_eq!(install(&t, 10), 10);
        assert_eq!(install(&t, 0), 6);
        t.install_at(7, file(), false);
        assert_eq!(install(&t, 0), 8);
        t.close_range(2, 4, false);
        assert_eq!(install(&t, 0), 2);
        t.set_cloexec(0, true).unwrap();
        t.close_on_exec();
        assert_eq!(install(&t, 0), 0);
        assert_eq!(t.fork().install(file(), 0, false, 1 << 20), Ok(3));
    }

    #[test]
    fn the_limit_gives_emfile() {
        let t = FdTable::new();
        install(&t, 0);
        install(&t, 0);
        assert_eq!(t.install(file(), 0, false, 2), Err(Errno::EMFILE));
        t.remove(0).unwrap();
        assert_eq!(t.install(file(), 0, false, 2), Ok(0));
    }
}
