//! The mqueue file system (`mount -t mqueue`): a flat directory of the IPC namespace's
//! queues. Every mount shows the same queues (one superblock per namespace, as Linux); a
//! queue is a regular file with the queue's owner and mode whose size is the bytes queued
//! and whose contents are its status line; unlinking it is `mq_unlink`.

use std::any::Any;
use std::sync::{Arc, Weak};

use super::{Queue, QueueFile};
use crate::abi::Errno;
use crate::kernel::ns::IpcNs;
use crate::vfs::inode::now;
use crate::vfs::{Caller, DirEntry, FileOps, FileType, FsStats, Inode, NewAttrs, NewNode, Stat};

/// MQUEUE_MAGIC.
const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// The root directory's inode number.
const ROOT_INO: u64 = 1;

/// The root of a new mount of the mqueue file system of IPC namespace `ipc` (the mounting
/// task's, as on Linux).
pub fn new_root(ipc: &Arc<IpcNs>) -> Arc<dyn Inode> {
    Arc::new(Root {
        ipc: Arc::downgrade(ipc),
    })
}

fn statfs() -> FsStats {
    FsStats {
        fs_type: MQUEUE_MAGIC,
        block_size: 4096,
        name_max: 255,
        ..FsStats::default()
    }
}

/// The directory of queues. Holds the namespace weakly: a task whose cwd is here must not
/// keep the namespace alive.
struct Root {
    ipc: Weak<IpcNs>,
}

impl Root {
    fn ipc(&self) -> Result<Arc<IpcNs>, Errno> {
        self.ipc.upgrade().ok_or(Errno::ENOENT)
    }
}

impl Inode for Root {
    fn stat(&self) -> Result<Stat, Errno> {
        let k = self.ipc()?;
        let (s, ns) = now();
        Ok(Stat {
            dev: k.mq.dev(),
            ino: ROOT_INO,
            nlink: 2,
            // World-writable and sticky, as Linux's mqueue root.
            mode: libc::S_IFDIR | 0o1777,
            blksize: 4096,
            atime: s,
            atime_nsec: ns,
            mtime: s,
            mtime_nsec: ns,
            ctime: s,
            ctime_nsec: ns,
            ..Stat::default()
        })
    }

    fn lookup(&self, _cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let k = self.ipc()?;
        let q = k.mq.get(name).ok_or(Errno::ENOENT)?;
        Ok(Arc::new(QueueNode {
            dev: k.mq.dev(),
            queue: q,
        }))
    }

    fn readdir(&self, _cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        Ok(self
            .ipc()?
            .mq
            .list()
            .into_iter()
            .map(|(name, q)| DirEntry {
                name,
                ino: q.ino,
                kind: FileType::Regular,
            })
            .collect())
    }

    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        // Directories are opened by the vfs (`vfs::DirFile` over the dentry), never here.
        Err(Errno::EISDIR)
    }

    fn create(
        &self,
        _cx: &Caller,
        _name: &[u8],
        _node: NewNode,
        _attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        // Queues are made by mq_open only here (Linux also creates them with open(2)).
        Err(Errno::EPERM)
    }

    fn unlink(&self, cx: &Caller, name: &[u8], dir: bool) -> Result<(), Errno> {
        let k = self.ipc()?;
        if k.mq.get(name).is_none() {
            return Err(Errno::ENOENT);
        }
        if dir {
            return Err(Errno::ENOTDIR);
        }
        k.mq.unlink(&cx.creds, name)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// One queue as a file.
struct QueueNode {
    dev: u64,
    queue: Arc<Queue>,
}

impl Inode for QueueNode {
    fn stat(&self) -> Result<Stat, Errno> {
        let s = self.queue.state.lock().unwrap();
        Ok(Stat {
            dev: self.dev,
            ino: self.queue.ino,
            nlink: 1,
            mode: libc::S_IFREG | s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.bytes as i64,
            blksize: 4096,
            ..Stat::default()
        })
    }

    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Ok(Arc::new(QueueFile(self.queue.clone())))
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
