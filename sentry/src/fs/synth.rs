//! Building blocks for synthetic filesystems (`/proc`, `/dev`): files whose contents are
//! generated when opened (and control files that also take writes), symlinks whose targets are computed, fixed directories.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::abi::Errno;
use crate::vfs::inode::now;
use crate::vfs::Context;
use crate::vfs::{Caller, DirEntry, FileOps, FileType, FsStats, Inode, OpenFile, Stat};
use crate::vfs::{IoDst, IoSrc};

/// Generates a file's contents or a link's target for the caller.
pub type Generator = Arc<dyn Fn(&Caller) -> Result<Vec<u8>, Errno> + Send + Sync>;

/// Identity shared by the nodes of one synthetic filesystem.
#[derive(Debug)]
pub struct SynthFs {
    pub dev: u64,
    pub magic: i64,
    next_ino: AtomicU64,
}

impl SynthFs {
    pub fn new(magic: i64) -> Arc<SynthFs> {
        Arc::new(SynthFs {
            dev: super::anon_dev(),
            magic,
            next_ino: AtomicU64::new(2),
        })
    }

    /// A fresh inode number.
    pub fn ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    /// A stat for a synthetic file of type/mode `mode`.
    pub fn stat(&self, ino: u64, mode: u32, size: i64) -> Stat {
        let (s, ns) = now();
        Stat {
            dev: self.dev,
            ino,
            nlink: if mode & libc::S_IFMT == libc::S_IFDIR {
                2
            } else {
                1
            },
            mode,
            blksize: 4096,
            size,
            atime: s,
            atime_nsec: ns,
            mtime: s,
            mtime_nsec: ns,
            ctime: s,
            ctime_nsec: ns,
            ..Stat::default()
        }
    }

    fn statfs(&self) -> FsStats {
        FsStats {
            fs_type: self.magic,
            block_size: 4096,
            name_max: 255,
            ..FsStats::default()
        }
    }
}

/// Contents snapshotted at open.
pub struct BytesFile {
    data: Vec<u8>,
    st: Stat,
}

impl BytesFile {
    pub fn new(data: Vec<u8>, st: Stat) -> BytesFile {
        BytesFile { data, st }
    }
}

impl FileOps for BytesFile {
    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        dst.copy_from_offset(&self.data, off.unwrap_or(0))
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        _src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        Err(Errno::EACCES)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.st)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(self.data.len() as u64)
    }
}

/// A read-only file generated at open (size 0 in stat, as procfs).
pub struct SynthFile {
    fs: Arc<SynthFs>,
    ino: u64,
    mode: u32,
    gen: Generator,
}

impl SynthFile {
    pub fn new(fs: &Arc<SynthFs>, mode: u32, gen: Generator) -> Arc<SynthFile> {
        Arc::new(SynthFile {
            fs: fs.clone(),
            ino: fs.ino(),
            mode,
            gen,
        })
    }

    /// A file with fixed contents.
    pub fn fixed(fs: &Arc<SynthFs>, data: impl Into<Vec<u8>>) -> Arc<SynthFile> {
        let data: Vec<u8> = data.into();
        Self::new(fs, 0o444, Arc::new(move |_| Ok(data.clone())))
    }
}

impl Inode for SynthFile {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.fs.stat(self.ino, libc::S_IFREG | self.mode, 0))
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        (self.gen)(&Caller::kernel())
    }

    fn open(&self, cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        // Opening for writing is the mode's business (root may, as on Linux); every write
        // then fails.
        Ok(Arc::new(BytesFile::new((self.gen)(cx)?, self.stat()?)))
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.fs.statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Applies one write to a control file: the caller that opened it and the bytes written.
pub type Applier = Arc<dyn Fn(&Caller, &[u8]) -> Result<(), Errno> + Send + Sync>;

/// The most a control file takes in one write (a page, as Linux's sysctl buffer).
const CONTROL_WRITE_MAX: usize = 4096;

/// A file generated at open that also takes writes (a sysctl): each write is handed whole
/// to its applier.
pub struct SynthControl {
    fs: Arc<SynthFs>,
    ino: u64,
    gen: Generator,
    apply: Applier,
}

impl SynthControl {
    /// A root-owned 0644 control file.
    pub fn new(fs: &Arc<SynthFs>, gen: Generator, apply: Applier) -> Arc<SynthControl> {
        Arc::new(SynthControl {
            fs: fs.clone(),
            ino: fs.ino(),
            gen,
            apply,
        })
    }
}

impl SynthControl {
    /// A sysctl the sentry records but does not act on: it holds an integer (`initial` at
    /// first) that root may replace; anything but an integer is EINVAL.
    pub fn setting(fs: &Arc<SynthFs>, initial: &str) -> Arc<SynthControl> {
        let value = Arc::new(std::sync::Mutex::new(initial.as_bytes().to_vec()));
        let current = value.clone();
        let gen: Generator =
            Arc::new(move |_| Ok(current.lock().unwrap_or_else(|e| e.into_inner()).clone()));
        let apply: Applier = Arc::new(move |_, data| {
            let text = String::from_utf8_lossy(data);
            let v = text.trim().parse::<i64>().map_err(|_| Errno::EINVAL)?;
            *value.lock().unwrap_or_else(|e| e.into_inner()) = format!("{v}\n").into_bytes();
            Ok(())
        });
        SynthControl::new(fs, gen, apply)
    }
}

impl Inode for SynthControl {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.fs.stat(self.ino, libc::S_IFREG | 0o644, 0))
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        (self.gen)(&Caller::kernel())
    }

    fn open(&self, cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Ok(Arc::new(ControlFile {
            contents: Mutex::new(BytesFile::new((self.gen)(cx)?, self.stat()?)),
            gen: self.gen.clone(),
            apply: self.apply.clone(),
            opener: cx.clone(),
        }))
    }

    fn setattr(&self, _attr: &crate::vfs::inode::SetAttr) -> Result<(), Errno> {
        // Truncation at open (`O_TRUNC`, a shell's `>`) is accepted and changes nothing.
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.fs.statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// An open [`SynthControl`]: reads see the contents at open or after this file's last
/// write, writes are applied at once.
struct ControlFile {
    contents: Mutex<BytesFile>,
    gen: Generator,
    apply: Applier,
    opener: Caller,
}

impl FileOps for ControlFile {
    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        // The generated bytes are copied out of the lock: `dst` may fault.
        let data = self.contents.lock().unwrap().data.clone();
        dst.copy_from_offset(&data, off.unwrap_or(0))
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        let count = src.remaining();
        let mut buf = vec![0u8; count.min(CONTROL_WRITE_MAX)];
        let n = src.copy_to(&mut buf)?;
        buf.truncate(n);
        (self.apply)(&self.opener, &buf)?;
        // A read through this file now sees the new value, as a sysctl's next read does.
        let fresh = (self.gen)(&self.opener)?;
        let mut contents = self.contents.lock().unwrap();
        *contents = BytesFile::new(fresh, contents.stat()?);
        Ok(count)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.contents.lock().unwrap().stat()
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Result<u64, Errno> {
        self.contents.lock().unwrap().size()
    }
}

/// A symlink whose target is computed per caller (`/proc/self`, `/proc/[pid]/exe`).
pub struct SynthLink {
    fs: Arc<SynthFs>,
    ino: u64,
    target: Generator,
}

impl SynthLink {
    pub fn new(fs: &Arc<SynthFs>, target: Generator) -> Arc<SynthLink> {
        Arc::new(SynthLink {
            fs: fs.clone(),
            ino: fs.ino(),
            target,
        })
    }

    /// A link with a fixed target.
    pub fn fixed(fs: &Arc<SynthFs>, target: &str) -> Arc<SynthLink> {
        let t = target.as_bytes().to_vec();
        Self::new(fs, Arc::new(move |_| Ok(t.clone())))
    }
}

impl Inode for SynthLink {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.fs.stat(self.ino, libc::S_IFLNK | 0o777, 0))
    }

    fn readlink(&self, cx: &Caller) -> Result<Vec<u8>, Errno> {
        (self.target)(cx)
    }

    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Err(Errno::ELOOP)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.fs.statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// A directory whose entries are listed by a function (fixed or per caller).
pub struct SynthDir {
    fs: Arc<SynthFs>,
    ino: u64,
    list: ListFn,
}

/// Lists a synthetic directory's entries for the caller.
pub type ListFn =
    Arc<dyn Fn(&Caller) -> Result<Vec<(Vec<u8>, Arc<dyn Inode>)>, Errno> + Send + Sync>;

impl SynthDir {
    pub fn new(fs: &Arc<SynthFs>, list: ListFn) -> Arc<SynthDir> {
        Arc::new(SynthDir {
            fs: fs.clone(),
            ino: fs.ino(),
            list,
        })
    }

    /// A directory with fixed entries.
    pub fn fixed(fs: &Arc<SynthFs>, entries: Vec<(&str, Arc<dyn Inode>)>) -> Arc<SynthDir> {
        let entries: Vec<(Vec<u8>, Arc<dyn Inode>)> = entries
            .into_iter()
            .map(|(n, i)| (n.as_bytes().to_vec(), i))
            .collect();
        Self::new(fs, Arc::new(move |_| Ok(entries.clone())))
    }
}

impl Inode for SynthDir {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.fs.stat(self.ino, libc::S_IFDIR | 0o555, 0))
    }

    fn lookup(&self, cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        (self.list)(cx)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
            .ok_or(Errno::ENOENT)
    }

    fn readdir(&self, cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        (self.list)(cx)?
            .into_iter()
            .map(|(name, i)| {
                let st = i.stat()?;
                Ok(DirEntry {
                    name,
                    ino: st.ino,
                    kind: FileType::from_mode(st.mode),
                })
            })
            .collect()
    }

    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Err(Errno::EISDIR)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.fs.statfs())
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
