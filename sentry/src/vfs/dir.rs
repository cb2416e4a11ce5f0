//! Files opened on directories (getdents64) and O_PATH descriptors, for every filesystem.

use std::sync::{Arc, Mutex};

use super::inode::{Caller, DirEntry, FileType};
use super::{Dentry, FileOps, OpenFile, Stat};
use crate::abi::Errno;
use crate::vfs::Context;
use crate::vfs::{IoDst, IoSrc};

/// An open directory. The listing is taken when reading starts (position 0) and kept until
/// the directory is rewound, so entries do not repeat or vanish while a reader iterates.
pub struct DirFile {
    dentry: Arc<Dentry>,
    listing: Mutex<Option<Vec<DirEntry>>>,
}

impl DirFile {
    pub fn new(dentry: Arc<Dentry>) -> DirFile {
        DirFile {
            dentry,
            listing: Mutex::new(None),
        }
    }
}

/// Appends one `struct linux_dirent64`; false if it does not fit in `max`.
pub fn push_dirent64(
    out: &mut Vec<u8>,
    max: usize,
    ino: u64,
    next: u64,
    kind: u8,
    name: &[u8],
) -> bool {
    let reclen = (19 + name.len() + 1).next_multiple_of(8);
    if out.len() + reclen > max {
        return false;
    }
    out.extend_from_slice(&ino.to_le_bytes());
    out.extend_from_slice(&next.to_le_bytes());
    out.extend_from_slice(&(reclen as u16).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(name);
    out.resize(out.len() + reclen - 19 - name.len(), 0);
    true
}

impl FileOps for DirFile {
    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        _dst: &mut dyn IoDst,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::EISDIR)
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        _src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::EISDIR)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.dentry.inode.stat()
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(0)
    }

    fn getdents(&self, t: &dyn Context, pos: u64, max: usize) -> Result<(Vec<u8>, u64), Errno> {
        let mut listing = self.listing.lock().unwrap();
        if pos == 0 || listing.is_none() {
            *listing = Some(self.dentry.inode.readdir(&Caller::of(t))?);
        }
        let entries = listing.as_ref().expect("just filled");
        let mut out = Vec::new();
        let mut at = pos;
        loop {
            let (ino, kind, name): (u64, u8, &[u8]) = match at {
                0 => (self.dentry.inode.stat()?.ino, libc::DT_DIR, b"."),
                1 => {
                    let parent = self.dentry.parent.as_ref().unwrap_or(&self.dentry);
                    (parent.inode.stat()?.ino, libc::DT_DIR, b"..")
                }
                n => match entries.get((n - 2) as usize) {
                    Some(e) => (e.ino, e.kind.dirent_type(), &e.name),
                    None => break,
                },
            };
            if !push_dirent64(&mut out, max, ino, at + 1, kind, name) {
                if out.is_empty() {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            at += 1;
        }
        Ok((out, at))
    }
}

/// An `O_PATH` descriptor: a location for *at calls and fstat, nothing else.
pub struct PathFile {
    dentry: Arc<Dentry>,
    /// What the descriptor keeps alive besides its dentry (a detached mount tree).
    _hold: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl PathFile {
    pub fn new(dentry: Arc<Dentry>) -> PathFile {
        PathFile {
            dentry,
            _hold: None,
        }
    }

    /// A descriptor that also keeps `hold` alive while it is open (fsmount's and
    /// open_tree's descriptors of a detached tree).
    pub fn holding(dentry: Arc<Dentry>, hold: Arc<dyn std::any::Any + Send + Sync>) -> PathFile {
        PathFile {
            dentry,
            _hold: Some(hold),
        }
    }
}

impl FileOps for PathFile {
    fn stat(&self) -> Result<Stat, Errno> {
        self.dentry.inode.stat()
    }

    fn getdents(&self, _t: &dyn Context, _pos: u64, _max: usize) -> Result<(Vec<u8>, u64), Errno> {
        Err(Errno::EBADF)
    }
}

/// Whether an inode is a directory (stat failures count as no).
pub fn is_dir(d: &Dentry) -> bool {
    d.inode.file_type().ok() == Some(FileType::Directory)
}
