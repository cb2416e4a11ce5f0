//! tmpfs: files that live in sandbox memory.
//!
//! A regular file's data is a sparse set of pages of the memory file (so it counts as sandbox
//! memory, not sentry heap): holes read as zeros, truncation and hole punching give pages
//! back. The same pages back shared mappings of the file (see [`crate::mm::filemap`]), so
//! stores through a mapping and `write(2)` see each other.
//!
//! Each node keeps its attributes and contents under its own mutex. Renames are serialised by
//! the filesystem's rename lock, so at most one directory lock is held at a time otherwise.
//! The overlay uses tmpfs as its upper layer and stores whiteouts and the opaque flag here.
//!
//! # Lock order
//! `TmpFs::rename_lock` → `TmpNode::st` (one node at a time) → `MemoryFile` allocator.
//! Mappings take `TmpNode::st` under the `MemoryManager` lock; tmpfs never calls into an mm.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::abi::{Errno, PAGE_SIZE};
use crate::memory::{FileRange, MemoryFile};
use crate::mm::filemap::Mappable;
use crate::mm::pagecache;
use crate::vfs::acl;
use crate::vfs::inode::{now, relatime_due, RenameFlags, TimeSet, XATTR_CREATE, XATTR_REPLACE};
use crate::vfs::Context;
use crate::vfs::{
    Caller, DirEntry, FileOps, FileType, FsStats, Inode, NewAttrs, NewNode, OpenFile, SetAttr, Stat,
};
use crate::vfs::{IoDst, IoSrc};

/// TMPFS_MAGIC.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Largest tmpfs file. File data lives in sentry memory, densely: a larger size would make
/// one seek or fallocate cost that much host memory.
const MAX_FILE_SIZE: u64 = 1 << 30;

/// A device node's behaviour (`/dev/null` and friends).
pub trait Device: Send + Sync {
    /// Opens the device.
    ///
    /// # Errors
    /// ENXIO when the device is absent.
    fn open(&self, cx: &Caller, flags: u32) -> Result<Arc<dyn FileOps>, Errno>;
}

enum Data {
    Dir {
        entries: BTreeMap<Vec<u8>, Arc<TmpNode>>,
        /// Overlay: the lower layer's directory of the same name is hidden.
        opaque: bool,
    },
    File(FileData),
    Symlink(Vec<u8>),
    /// Overlay: the lower layer's entry of this name is deleted.
    Whiteout,
    Fifo,
    /// A bound AF_UNIX socket's name; the socket itself is found by (device, inode).
    Socket,
    Device(Arc<dyn Device>),
}

/// `F_SEAL_*`: no more seals; no shrinking; no growing; no writes; no new writable
/// mappings or writes (existing mappings keep writing); no exec-bit changes.
pub const SEAL_SEAL: u32 = 0x01;
pub const SEAL_SHRINK: u32 = 0x02;
pub const SEAL_GROW: u32 = 0x04;
pub const SEAL_WRITE: u32 = 0x08;
pub const SEAL_FUTURE_WRITE: u32 = 0x10;
pub const SEAL_EXEC: u32 = 0x20;
const SEALS_ALL: u32 = 0x3f;

/// Most bytes one step of a tmpfs read or write holds pages for.
const IO_CHUNK: usize = 256 << 10;

/// What a hole reads as.
static ZERO_PAGE: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];

/// A piece of a file's range inside one page: its memory-file offset (None: a hole) and
/// length.
struct Piece {
    page: Option<u64>,
    len: usize,
}

/// Copies each piece with `copy` until one comes up short; returns the bytes moved and
/// whether it ended on a fault.
fn copy_pieces(
    pieces: &[Piece],
    mut copy: impl FnMut(&Piece) -> Result<usize, Errno>,
) -> (usize, Result<(), Errno>) {
    let mut moved = 0usize;
    for p in pieces {
        match copy(p) {
            Ok(c) => {
                moved += c;
                if c < p.len {
                    return (moved, Err(Errno::EFAULT));
                }
            }
            Err(e) => return (moved, Err(e)),
        }
    }
    (moved, Ok(()))
}

/// Drops the references [`FileData::held_pieces`] took.
fn release_pieces(mf: &MemoryFile, pieces: &[Piece]) {
    for p in pieces {
        if let Some(page) = p.page {
            mf.dec_ref(FileRange {
                offset: page - page % PAGE_SIZE,
                len: PAGE_SIZE,
            });
        }
    }
}

/// A regular file's contents.
#[derive(Debug, Default)]
struct FileData {
    size: u64,
    /// Page index → memory-file offset of the page (the file's reference). Absent: a hole.
    pages: BTreeMap<u64, u64>,
}

impl FileData {
    fn read(&self, mf: &MemoryFile, buf: &mut [u8], off: u64) -> usize {
        if off >= self.size {
            return 0;
        }
        let n = buf.len().min((self.size - off) as usize);
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let in_page = pos % PAGE_SIZE;
            let k = (n - done).min((PAGE_SIZE - in_page) as usize);
            let dst = &mut buf[done..done + k];
            match self.pages.get(&(pos / PAGE_SIZE)) {
                Some(&page) => mf.read(page + in_page, dst),
                None => dst.fill(0),
            }
            done += k;
        }
        n
    }

    /// The pieces of `[off, end)`, each page with a reference taken for the caller (so
    /// truncation cannot free it mid-copy).
    fn held_pieces(&self, mf: &MemoryFile, off: u64, end: u64) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut pos = off;
        while pos < end {
            let in_page = pos % PAGE_SIZE;
            let k = (end - pos).min(PAGE_SIZE - in_page);
            let page = self.pages.get(&(pos / PAGE_SIZE)).copied();
            if let Some(p) = page {
                mf.inc_ref(FileRange {
                    offset: p,
                    len: PAGE_SIZE,
                });
            }
            pieces.push(Piece {
                page: page.map(|p| p + in_page),
                len: k as usize,
            });
            pos += k;
        }
        pieces
    }

    /// Allocates the missing pages of `[first, end)` in order, each run of holes in one piece,
    /// as far as the filesystem's size limit and the memory file allow. Returns the index of
    /// the first page still missing (`end` when all are there).
    fn fill_holes(&mut self, fs: &TmpFs, first: u64, end: u64) -> u64 {
        let mut idx = first;
        while idx < end {
            if self.pages.contains_key(&idx) {
                idx += 1;
                continue;
            }
            let run_end = self.pages.range(idx..end).next().map_or(end, |(&k, _)| k);
            let got = fs.charge_pages(run_end - idx);
            if got == 0 {
                return idx;
            }
            let Ok(r) = fs.mf.allocate(got * PAGE_SIZE) else {
                fs.uncharge_pages(got);
                return idx;
            };
            for k in idx..idx + got {
                self.pages.insert(k, r.offset + (k - idx) * PAGE_SIZE);
            }
            idx += got;
            if idx < run_end {
                return idx;
            }
        }
        end
    }

    fn write(&mut self, fs: &TmpFs, buf: &[u8], off: u64) -> Result<usize, Errno> {
        let mf = &fs.mf;
        let end = off.checked_add(buf.len() as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        if self.fill_holes(fs, off / PAGE_SIZE, end.div_ceil(PAGE_SIZE)) < end.div_ceil(PAGE_SIZE) {
            return Err(Errno::ENOSPC);
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = off + done as u64;
            let in_page = pos % PAGE_SIZE;
            let k = (buf.len() - done).min((PAGE_SIZE - in_page) as usize);
            mf.write(
                self.pages[&(pos / PAGE_SIZE)] + in_page,
                &buf[done..done + k],
            );
            done += k;
        }
        self.size = self.size.max(end);
        Ok(buf.len())
    }

    /// Drops the pages `[first, end)` (mappings that hold them keep them).
    fn drop_pages(&mut self, fs: &TmpFs, first: u64, end: u64) {
        let gone: Vec<(u64, u64)> = self
            .pages
            .range(first..end)
            .map(|(&k, &v)| (k, v))
            .collect();
        fs.uncharge_pages(gone.len() as u64);
        for (k, off) in gone {
            self.pages.remove(&k);
            fs.mf.dec_ref(FileRange {
                offset: off,
                len: PAGE_SIZE,
            });
        }
    }

    /// fallocate(2) mode 0: every page of `[off, end)` present, or none added (ENOSPC, as
    /// Linux's shmem undoes a partial allocation).
    fn allocate(&mut self, fs: &TmpFs, off: u64, end: u64) -> Result<(), Errno> {
        let (first, last) = (off / PAGE_SIZE, end.div_ceil(PAGE_SIZE));
        let had: Vec<u64> = self.pages.range(first..last).map(|(&k, _)| k).collect();
        if self.fill_holes(fs, first, last) < last {
            let added: Vec<u64> = self
                .pages
                .range(first..last)
                .map(|(&k, _)| k)
                .filter(|k| had.binary_search(k).is_err())
                .collect();
            for k in added {
                self.drop_pages(fs, k, k + 1);
            }
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    /// Zeroes `[off, end)` inside one page, if that page exists.
    fn zero_in_page(&self, mf: &MemoryFile, off: u64, end: u64) {
        if let Some(&page) = self.pages.get(&(off / PAGE_SIZE)) {
            mf.zero(page + off % PAGE_SIZE, end - off);
        }
    }

    fn truncate(&mut self, fs: &TmpFs, size: u64) {
        if size < self.size {
            self.drop_pages(fs, size.div_ceil(PAGE_SIZE), u64::MAX);
            // The rest of the last page reads as zero if the file grows again.
            if !size.is_multiple_of(PAGE_SIZE) {
                self.zero_in_page(&fs.mf, size, page_end(size));
            }
        }
        self.size = size;
    }

    /// Zeroes `[off, off+len)`, giving whole pages back (FALLOC_FL_PUNCH_HOLE).
    fn punch_hole(&mut self, fs: &TmpFs, off: u64, len: u64) {
        let mf = &fs.mf;
        let end = off.saturating_add(len).min(self.size);
        if off >= end {
            return;
        }
        let first_whole = off.div_ceil(PAGE_SIZE);
        let end_whole = end / PAGE_SIZE;
        if first_whole < end_whole {
            self.drop_pages(fs, first_whole, end_whole);
        }
        if !off.is_multiple_of(PAGE_SIZE) {
            self.zero_in_page(mf, off, page_end(off).min(end));
        }
        if !end.is_multiple_of(PAGE_SIZE) && end / PAGE_SIZE >= first_whole {
            self.zero_in_page(mf, (end / PAGE_SIZE * PAGE_SIZE).max(off), end);
        }
    }
}

/// The end of the page holding `off`.
fn page_end(off: u64) -> u64 {
    (off / PAGE_SIZE + 1) * PAGE_SIZE
}

struct TmpState {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    /// An `O_TMPFILE` file without `O_EXCL` that has not been linked yet: `link` may give
    /// it its first name.
    linkable: bool,
    rdev: u64,
    /// `F_SEAL_*` (memfd seals): F_SEAL_SEAL alone unless created by `memfd_create` with
    /// MFD_ALLOW_SEALING, as Linux's shmem files.
    seals: u32,
    /// Shared mappings that may be written (`mm::filemap::WritableMapping`): F_SEAL_WRITE is
    /// refused while there are any.
    writable_maps: u64,
    atime: (i64, i64),
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// Extended attributes (user, trusted, security, and the ACLs as their raw values).
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    data: Data,
}

/// One tmpfs instance.
pub struct TmpFs {
    /// Where file data lives.
    mf: Arc<MemoryFile>,
    dev: u64,
    magic: i64,
    next_ino: AtomicU64,
    rename_lock: Mutex<()>,
    usage: Mutex<Usage>,
}

/// A tmpfs's limits and what it holds against them. Pages count file data (allocated pages,
/// not sizes: holes are free) and symbolic links whose target does not fit in the inode;
/// inodes count every node, the root included, until its last reference goes.
#[derive(Debug, Default)]
struct Usage {
    /// No limit when `None` (the sentry's own tmpfs instances).
    max_pages: Option<u64>,
    max_inodes: Option<u64>,
    pages: u64,
    inodes: u64,
    /// The limits a new mount gets when not given (Linux: half of memory), which
    /// mountinfo leaves out.
    default_pages: Option<u64>,
    default_inodes: Option<u64>,
    /// The root's mode, owner and group at mount time, for mountinfo.
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Longest symbolic-link target (with its NUL) kept in the inode; longer ones take a page,
/// as shmem's inline symlinks.
const SHORT_SYMLINK_LEN: usize = 128;

/// Whether a symbolic link to `target` takes a page of the filesystem's size.
fn symlink_takes_page(target: &[u8]) -> bool {
    target.len() + 1 > SHORT_SYMLINK_LEN
}

/// The options a tmpfs is mounted or remounted with (`mount -t tmpfs -o ...`): each is `None`
/// when not given. A limit of 0 means none.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TmpfsOptions {
    /// Size limit in pages: `size=` (bytes with a k/m/g/... suffix or a percentage of
    /// memory, rounded up to pages) or `nr_blocks=`.
    pub pages: Option<u64>,
    /// `nr_inodes=`.
    pub inodes: Option<u64>,
    /// `mode=` (octal), the root directory's permissions.
    pub mode: Option<u32>,
    /// `uid=` and `gid=`, the root directory's owner.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A number as Linux's `memparse`: decimal, `0x` hex or `0` octal, then an optional
/// binary suffix (k, m, g, t, p, e). Returns the value and the rest of the string.
fn memparse(s: &str) -> Option<(u64, &str)> {
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 && radix != 8 {
        return None;
    }
    let v = if end == 0 {
        0
    } else {
        u64::from_str_radix(&digits[..end], radix).ok()?
    };
    let rest = &digits[end..];
    let shift = match rest.chars().next() {
        Some('k' | 'K') => 10,
        Some('m' | 'M') => 20,
        Some('g' | 'G') => 30,
        Some('t' | 'T') => 40,
        Some('p' | 'P') => 50,
        Some('e' | 'E') => 60,
        _ => return Some((v, rest)),
    };
    Some((
        v.checked_shl(shift).filter(|r| r >> shift == v)?,
        &rest[1..],
    ))
}

impl TmpfsOptions {
    /// Parses mount data; `mem_bytes` is the memory a `size=N%` is a share of. Options that
    /// change nothing in the sandbox (`huge=`, `inode64`, `noswap`) are accepted; anything
    /// else, or a bad value, is EINVAL.
    ///
    /// # Errors
    /// EINVAL.
    pub fn parse(data: &str, mem_bytes: u64) -> Result<TmpfsOptions, Errno> {
        let mut o = TmpfsOptions::default();
        for opt in data.split(',').filter(|o| !o.is_empty()) {
            let (key, val) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            let bad = Errno::EINVAL;
            match (key, val) {
                ("size", Some(v)) => {
                    let (n, rest) = memparse(v).ok_or(bad)?;
                    let bytes = match rest {
                        "" => n,
                        "%" => {
                            let pages = mem_bytes / PAGE_SIZE;
                            n.checked_mul(pages).ok_or(bad)? / 100 * PAGE_SIZE
                        }
                        _ => return Err(bad),
                    };
                    o.pages = Some(bytes.div_ceil(PAGE_SIZE));
                }
                ("nr_blocks", Some(v)) => match memparse(v) {
                    Some((n, "")) if n <= i64::MAX as u64 => o.pages = Some(n),
                    _ => return Err(bad),
                },
                ("nr_inodes", Some(v)) => match memparse(v) {
                    Some((n, "")) => o.inodes = Some(n),
                    _ => return Err(bad),
                },
                ("mode", Some(v)) => {
                    o.mode = Some(u32::from_str_radix(v, 8).map_err(|_| bad)? & 0o7777);
                }
                ("uid" | "gid", Some(v)) => {
                    let id = v
                        .parse::<u32>()
                        .ok()
                        .filter(|&i| i != u32::MAX)
                        .ok_or(bad)?;
                    if key == "uid" {
                        o.uid = Some(id);
                    } else {
                        o.gid = Some(id);
                    }
                }
                ("huge", Some("never" | "always" | "within_size" | "advise"))
                | ("inode64" | "noswap", None) => {}
                _ => return Err(bad),
            }
        }
        Ok(o)
    }
}

impl std::fmt::Debug for TmpFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TmpFs").field("dev", &self.dev).finish()
    }
}

/// Most bytes of names and values one file's extended attributes may hold (Linux's tmpfs
/// bounds them by its inode space; this keeps one file from taking unbounded sentry heap).
const XATTRS_MAX_BYTES: usize = 1 << 20;

/// Whether tmpfs keeps the attribute `name` on a file in `st`, as shmem's handlers: the
/// user, trusted and security namespaces, and the two ACLs except on symbolic links.
fn xattr_supported(st: &TmpState, name: &[u8]) -> Result<(), Errno> {
    if acl::is_acl_name(name) {
        if matches!(st.data, Data::Symlink(_)) {
            return Err(Errno::EOPNOTSUPP);
        }
        return Ok(());
    }
    if [&b"user."[..], b"trusted.", b"security."]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Ok(());
    }
    Err(Errno::EOPNOTSUPP)
}

/// A tmpfs file.
pub struct TmpNode {
    fs: Arc<TmpFs>,
    /// This node's own `Arc`, for handing out open files.
    me: Weak<TmpNode>,
    ino: u64,
    st: Mutex<TmpState>,
}

impl std::fmt::Debug for TmpNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TmpNode").field("ino", &self.ino).finish()
    }
}

impl TmpFs {
    /// A new, empty tmpfs keeping file data in `mf`; returns its root directory.
    pub fn new_root(mf: &Arc<MemoryFile>, mode: u32) -> Arc<TmpNode> {
        Self::new_root_with_magic(mf, mode, TMPFS_MAGIC)
    }

    /// A tmpfs reporting `magic` in statfs (the overlay's upper layer, devtmpfs).
    pub fn new_root_with_magic(mf: &Arc<MemoryFile>, mode: u32, magic: i64) -> Arc<TmpNode> {
        Self::new_fs(mf, magic, Usage::default(), mode, 0, 0)
    }

    /// A tmpfs mounted with `opts` (mount(2)); `mem_bytes` is the memory its default limits
    /// are half of, as Linux's.
    pub fn new_root_mounted(
        mf: &Arc<MemoryFile>,
        opts: &TmpfsOptions,
        mem_bytes: u64,
    ) -> Arc<TmpNode> {
        let half = (mem_bytes / PAGE_SIZE / 2).max(1);
        let limit = |given: Option<u64>| match given {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(half),
        };
        let usage = Usage {
            max_pages: limit(opts.pages),
            max_inodes: limit(opts.inodes),
            default_pages: Some(half),
            default_inodes: Some(half),
            ..Usage::default()
        };
        Self::new_fs(
            mf,
            TMPFS_MAGIC,
            usage,
            opts.mode.unwrap_or(0o1777),
            opts.uid.unwrap_or(0),
            opts.gid.unwrap_or(0),
        )
    }

    fn new_fs(
        mf: &Arc<MemoryFile>,
        magic: i64,
        mut usage: Usage,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Arc<TmpNode> {
        usage.mode = mode & 0o7777;
        usage.uid = uid;
        usage.gid = gid;
        // The root is an inode like any other.
        usage.inodes = 1;
        let fs = Arc::new(TmpFs {
            mf: mf.clone(),
            dev: super::anon_dev(),
            magic,
            next_ino: AtomicU64::new(2),
            rename_lock: Mutex::new(()),
            usage: Mutex::new(usage),
        });
        TmpNode::new(
            &fs,
            1,
            libc::S_IFDIR | (mode & 0o7777),
            uid,
            gid,
            Data::Dir {
                entries: BTreeMap::new(),
                opaque: false,
            },
        )
    }

    /// Takes up to `want` pages of the size limit; returns how many it got.
    fn charge_pages(&self, want: u64) -> u64 {
        let mut u = self.usage.lock().unwrap();
        let got = match u.max_pages {
            Some(m) => want.min(m.saturating_sub(u.pages)),
            None => want,
        };
        u.pages += got;
        got
    }

    fn uncharge_pages(&self, n: u64) {
        let mut u = self.usage.lock().unwrap();
        u.pages = u.pages.saturating_sub(n);
    }

    /// Takes one inode of the limit (ENOSPC when none is left).
    fn charge_inode(&self) -> Result<(), Errno> {
        let mut u = self.usage.lock().unwrap();
        if u.max_inodes.is_some_and(|m| u.inodes >= m) {
            return Err(Errno::ENOSPC);
        }
        u.inodes += 1;
        Ok(())
    }

    fn uncharge_inode(&self) {
        let mut u = self.usage.lock().unwrap();
        u.inodes = u.inodes.saturating_sub(1);
    }
}

fn set_time(t: TimeSet) -> (i64, i64) {
    match t {
        TimeSet::Now => now(),
        TimeSet::At(s, ns) => (s, ns),
    }
}

impl TmpNode {
    fn new(fs: &Arc<TmpFs>, ino: u64, mode: u32, uid: u32, gid: u32, data: Data) -> Arc<TmpNode> {
        let t = now();
        Arc::new_cyclic(|me| TmpNode {
            fs: fs.clone(),
            me: me.clone(),
            ino,
            st: Mutex::new(TmpState {
                mode,
                uid,
                gid,
                nlink: 1,
                linkable: false,
                rdev: 0,
                seals: SEAL_SEAL,
                writable_maps: 0,
                atime: t,
                mtime: t,
                ctime: t,
                xattrs: BTreeMap::new(),
                data,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TmpState> {
        self.st.lock().unwrap()
    }

    /// A new node of this filesystem, counted against its inode limit (ENOSPC at it).
    fn new_node(&self, mode: u32, attrs: NewAttrs, data: Data) -> Result<Arc<TmpNode>, Errno> {
        self.fs.charge_inode()?;
        Ok(self.new_node_charged(mode, attrs, data))
    }

    /// [`TmpNode::new_node`] for a node whose inode is already counted.
    fn new_node_charged(&self, mode: u32, attrs: NewAttrs, data: Data) -> Arc<TmpNode> {
        let ino = self.fs.next_ino.fetch_add(1, Ordering::Relaxed);
        TmpNode::new(
            &self.fs,
            ino,
            mode | (attrs.mode & 0o7777),
            attrs.uid,
            attrs.gid,
            data,
        )
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The entry `name`, whiteouts included.
    pub fn child(&self, name: &[u8]) -> Option<Arc<TmpNode>> {
        match &self.lock().data {
            Data::Dir { entries, .. } => entries.get(name).cloned(),
            _ => None,
        }
    }

    /// Every entry, whiteouts included.
    pub fn children(&self) -> Vec<(Vec<u8>, Arc<TmpNode>)> {
        match &self.lock().data {
            Data::Dir { entries, .. } => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_whiteout(&self) -> bool {
        matches!(self.lock().data, Data::Whiteout)
    }

    pub fn is_opaque(&self) -> bool {
        matches!(self.lock().data, Data::Dir { opaque: true, .. })
    }

    pub fn set_opaque(&self) {
        if let Data::Dir { opaque, .. } = &mut self.lock().data {
            *opaque = true;
        }
    }

    /// Puts a whiteout at `name`, replacing what is there.
    pub fn put_whiteout(&self, name: &[u8]) {
        // Counted, never refused: the overlay's upper layer has no limits.
        self.fs.usage.lock().unwrap().inodes += 1;
        let wo = self.new_node_charged(
            libc::S_IFCHR,
            NewAttrs {
                mode: 0,
                uid: 0,
                gid: 0,
            },
            Data::Whiteout,
        );
        let mut st = self.lock();
        if let Data::Dir { entries, .. } = &mut st.data {
            entries.insert(name.to_vec(), wo);
        }
        st.mtime = now();
        st.ctime = st.mtime;
    }

    /// Removes the entry `name` whatever it is (whiteouts included).
    pub fn remove_entry(&self, name: &[u8]) -> Option<Arc<TmpNode>> {
        let mut st = self.lock();
        let removed = match &mut st.data {
            Data::Dir { entries, .. } => entries.remove(name),
            _ => None,
        };
        if let Some(r) = &removed {
            let mut rs = r.lock();
            rs.nlink = rs.nlink.saturating_sub(1);
            rs.ctime = now();
        }
        st.mtime = now();
        st.ctime = st.mtime;
        removed
    }

    /// After an unlink: a name of a file that keeps others gives its inode back (the last
    /// one goes with the node).
    fn name_removed(&self) {
        if self.kind() != FileType::Directory && self.lock().nlink >= 1 {
            self.fs.uncharge_inode();
        }
    }

    /// Removes every whiteout in this directory.
    pub fn clear_whiteouts(&self) {
        if let Data::Dir { entries, .. } = &mut self.lock().data {
            entries.retain(|_, n| !n.is_whiteout());
        }
    }

    /// Creates a regular file holding `data` (overlay copy-up).
    ///
    /// # Errors
    /// EEXIST, ENOSPC when the memory file is exhausted.
    pub fn create_file_with(
        &self,
        name: &[u8],
        data: &[u8],
        attrs: NewAttrs,
    ) -> Result<Arc<TmpNode>, Errno> {
        self.fs.charge_inode()?;
        let mut contents = FileData::default();
        if let Err(e) = contents.write(&self.fs, data, 0) {
            contents.truncate(&self.fs, 0);
            self.fs.uncharge_inode();
            return Err(e);
        }
        let node = self.new_node_charged(libc::S_IFREG, attrs, Data::File(contents));
        self.insert(name, node.clone())?;
        Ok(node)
    }

    /// Creates a device node.
    ///
    /// # Errors
    /// EEXIST.
    pub fn add_device(
        &self,
        name: &[u8],
        mode: u32,
        rdev: u64,
        dev: Arc<dyn Device>,
    ) -> Result<Arc<TmpNode>, Errno> {
        let node = self.new_node(
            libc::S_IFCHR,
            NewAttrs {
                mode,
                uid: 0,
                gid: 0,
            },
            Data::Device(dev),
        )?;
        node.lock().rdev = rdev;
        self.insert(name, node.clone())?;
        Ok(node)
    }

    /// Copies times from a stat (overlay copy-up preserves them).
    pub fn set_times_from(&self, st: &Stat) {
        let mut s = self.lock();
        s.atime = (st.atime, st.atime_nsec);
        s.mtime = (st.mtime, st.mtime_nsec);
        s.ctime = (st.ctime, st.ctime_nsec);
    }

    fn insert(&self, name: &[u8], node: Arc<TmpNode>) -> Result<(), Errno> {
        let mut st = self.lock();
        let Data::Dir { entries, .. } = &mut st.data else {
            return Err(Errno::ENOTDIR);
        };
        match entries.get(name) {
            Some(e) if !e.is_whiteout() => return Err(Errno::EEXIST),
            _ => {}
        }
        entries.insert(name.to_vec(), node);
        st.mtime = now();
        st.ctime = st.mtime;
        Ok(())
    }

    fn dir_is_empty(&self) -> bool {
        match &self.lock().data {
            Data::Dir { entries, .. } => entries.values().all(|e| e.is_whiteout()),
            _ => false,
        }
    }

    fn kind(&self) -> FileType {
        FileType::from_mode(self.lock().mode)
    }

    /// Reads file data at `off`.
    /// Slice-based access for the unit tests, which check page layout directly.
    #[cfg(test)]
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let st = self.lock();
        match &st.data {
            Data::File(d) => Ok(d.read(&self.fs.mf, buf, off)),
            Data::Dir { .. } => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Slice-based access for the unit tests, which check page layout directly.
    #[cfg(test)]
    fn write_at(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        let mut st = self.lock();
        let Data::File(d) = &mut st.data else {
            return Err(Errno::EINVAL);
        };
        d.write(&self.fs, buf, off)?;
        st.mtime = now();
        st.ctime = st.mtime;
        Ok(buf.len())
    }

    /// Reads into `dst` from `off`, straight from the file's pages. Each step takes up to
    /// [`IO_CHUNK`] bytes' pages under the node lock with a reference of its own, then copies
    /// without the lock: a fault on a mapping of this file takes the lock.
    fn read_to(&self, dst: &mut dyn IoDst, off: u64) -> Result<usize, Errno> {
        let mf = &self.fs.mf;
        let mut done = 0usize;
        while dst.remaining() > 0 {
            let pieces = {
                let st = self.lock();
                let d = match &st.data {
                    Data::File(d) => d,
                    Data::Dir { .. } => return Err(Errno::EISDIR),
                    _ => return Err(Errno::EINVAL),
                };
                let pos = off + done as u64;
                let end = pos
                    .saturating_add(dst.remaining().min(IO_CHUNK) as u64)
                    .min(d.size);
                d.held_pieces(mf, pos, end)
            };
            if pieces.is_empty() {
                break;
            }
            let (moved, r) = copy_pieces(&pieces, |p| match p.page {
                Some(page) => dst.copy_from_memory(mf, page, p.len),
                None => dst.copy_from(&ZERO_PAGE[..p.len]),
            });
            release_pieces(mf, &pieces);
            done += moved;
            match r {
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
                Ok(()) => {}
            }
        }
        Ok(done)
    }

    /// Writes from `src` at `off`, straight into the file's pages (chunked as
    /// [`TmpNode::read_to`]); a source that faults ends the write with what came before.
    fn write_from(&self, src: &mut dyn IoSrc, off: u64) -> Result<usize, Errno> {
        let mf = &self.fs.mf;
        let end = off
            .checked_add(src.remaining() as u64)
            .ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        // Seals refuse a write as Linux's shmem_write_begin refuses each page's part of it:
        // an empty write passes, and with F_SEAL_GROW the pages that stay inside the file
        // are written before the one that would extend it fails.
        let mut limit = usize::MAX;
        if end > off {
            let st = self.lock();
            if st.seals & (SEAL_WRITE | SEAL_FUTURE_WRITE) != 0 {
                return Err(Errno::EPERM);
            }
            if let Data::File(d) = &st.data {
                if st.seals & SEAL_GROW != 0 && end > d.size {
                    let inside = d.size / PAGE_SIZE * PAGE_SIZE;
                    if inside <= off {
                        return Err(Errno::EPERM);
                    }
                    limit = (inside - off) as usize;
                }
            }
        }
        let mut done = 0usize;
        while src.remaining() > 0 && done < limit {
            let pos = off + done as u64;
            let pieces = {
                let mut st = self.lock();
                let Data::File(d) = &mut st.data else {
                    return Err(Errno::EINVAL);
                };
                let want = src.remaining().min(IO_CHUNK).min(limit - done);
                // At the size limit the write stops at the last page it could get, as
                // Linux's: a partial count, or ENOSPC when not one byte fits.
                let avail = d.fill_holes(
                    &self.fs,
                    pos / PAGE_SIZE,
                    (pos + want as u64).div_ceil(PAGE_SIZE),
                );
                let chunk_end = (pos + want as u64).min(avail * PAGE_SIZE);
                if chunk_end <= pos {
                    if done == 0 {
                        return Err(Errno::ENOSPC);
                    }
                    break;
                }
                d.held_pieces(mf, pos, chunk_end)
            };
            let (moved, r) = copy_pieces(&pieces, |p| {
                src.copy_to_memory(mf, p.page.expect("holes filled"), p.len)
            });
            release_pieces(mf, &pieces);
            done += moved;
            if moved > 0 {
                let mut st = self.lock();
                if let Data::File(d) = &mut st.data {
                    d.size = d.size.max(pos + moved as u64);
                }
                st.mtime = now();
                st.ctime = st.mtime;
            }
            match r {
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
                Ok(()) => {}
            }
        }
        Ok(done)
    }

    fn size(&self) -> u64 {
        match &self.lock().data {
            Data::File(d) => d.size,
            Data::Symlink(t) => t.len() as u64,
            Data::Dir { .. } => 4096,
            _ => 0,
        }
    }

    /// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`: zeroes the range and gives its
    /// whole pages back.
    ///
    /// # Errors
    /// EINVAL for files that are not regular.
    pub fn punch_hole(&self, off: u64, len: u64) -> Result<(), Errno> {
        let mut st = self.lock();
        let Data::File(d) = &mut st.data else {
            return Err(Errno::EINVAL);
        };
        d.punch_hole(&self.fs, off, len);
        st.mtime = now();
        st.ctime = st.mtime;
        Ok(())
    }
}

impl Mappable for TmpNode {
    fn size(&self) -> u64 {
        self.size()
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        let mut st = self.lock();
        let Data::File(d) = &mut st.data else {
            return Err(Errno::ENODEV);
        };
        let end = first.saturating_add(count).min(d.size.div_ceil(PAGE_SIZE));
        if first >= end {
            return Ok(Vec::new());
        }
        // A mapping takes what pages the size limit leaves; the fault on a page it cannot
        // have is ENOSPC (SIGBUS, as Linux's shmem fault).
        let avail = d.fill_holes(&self.fs, first, end);
        if avail == first {
            return Err(Errno::ENOSPC);
        }
        Ok(pagecache::runs(&d.pages, first, avail, &self.fs.mf))
    }

    fn shared_writable(&self) -> bool {
        true
    }

    /// The pages written or faulted in so far (holes hold none).
    fn cached_pages(&self, first: u64, last: u64) -> u64 {
        match &self.lock().data {
            Data::File(d) if first <= last => d.pages.range(first..=last).count() as u64,
            _ => 0,
        }
    }

    fn count_writable_mapping(&self, up: bool) {
        let mut st = self.lock();
        if up {
            st.writable_maps += 1;
        } else {
            st.writable_maps -= 1;
        }
    }
}

impl Drop for TmpNode {
    fn drop(&mut self) {
        match &mut self.st.get_mut().unwrap().data {
            Data::File(d) => d.truncate(&self.fs, 0),
            Data::Symlink(t) if symlink_takes_page(t) => self.fs.uncharge_pages(1),
            _ => {}
        }
        self.fs.uncharge_inode();
    }
}

/// An open tmpfs regular file.
struct TmpFile {
    node: Arc<TmpNode>,
}

impl FileOps for TmpFile {
    fn read(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        self.node.read_to(dst, off.unwrap_or(0))
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        src: &mut dyn IoSrc,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        self.node.write_from(src, off.unwrap_or(0))
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.node.stat()
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(self.node.size())
    }

    fn mappable(&self, _mf: &Arc<MemoryFile>) -> Option<Arc<dyn Mappable>> {
        Some(self.node.clone())
    }

    fn seals(&self) -> Option<u32> {
        Some(self.node.lock().seals)
    }

    fn add_seals(&self, seals: u32) -> Result<(), Errno> {
        if seals & !SEALS_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let mut st = self.node.lock();
        if st.seals & SEAL_SEAL != 0 {
            return Err(Errno::EPERM);
        }
        // Nothing is sealed while a shared mapping could still write.
        if seals & SEAL_WRITE != 0 && st.seals & SEAL_WRITE == 0 && st.writable_maps > 0 {
            return Err(Errno::EBUSY);
        }
        st.seals |= seals;
        Ok(())
    }
}

impl Inode for TmpNode {
    fn stat(&self) -> Result<Stat, Errno> {
        let st = self.lock();
        let (size, nlink) = match &st.data {
            Data::File(d) => (d.size, st.nlink),
            Data::Symlink(t) => (t.len() as u64, st.nlink),
            Data::Dir { entries, .. } => (
                4096,
                2 + entries
                    .values()
                    .filter(|e| !e.is_whiteout() && e.kind() == FileType::Directory)
                    .count() as u64,
            ),
            _ => (0, st.nlink),
        };
        Ok(Stat {
            dev: self.fs.dev,
            ino: self.ino,
            nlink,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            rdev: st.rdev,
            size: size as i64,
            blksize: 4096,
            blocks: match &st.data {
                Data::File(d) => (d.pages.len() as u64 * PAGE_SIZE / 512) as i64,
                _ => size.div_ceil(512) as i64,
            },
            atime: st.atime.0,
            atime_nsec: st.atime.1,
            mtime: st.mtime.0,
            mtime_nsec: st.mtime.1,
            ctime: st.ctime.0,
            ctime_nsec: st.ctime.1,
            ..Stat::default()
        })
    }

    fn lookup(&self, _cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let st = self.lock();
        let Data::Dir { entries, .. } = &st.data else {
            return Err(Errno::ENOTDIR);
        };
        match entries.get(name) {
            Some(n) if !n.is_whiteout() => Ok(n.clone()),
            _ => Err(Errno::ENOENT),
        }
    }

    fn readdir(&self, _cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        let st = self.lock();
        let Data::Dir { entries, .. } = &st.data else {
            return Err(Errno::ENOTDIR);
        };
        Ok(entries
            .iter()
            .filter(|(_, n)| !n.is_whiteout())
            .map(|(k, n)| DirEntry {
                name: k.clone(),
                ino: n.ino,
                kind: n.kind(),
            })
            .collect())
    }

    fn readlink(&self, _cx: &Caller) -> Result<Vec<u8>, Errno> {
        match &self.lock().data {
            Data::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        match &self.lock().data {
            Data::File(d) => {
                let mut out = vec![0u8; d.size as usize];
                d.read(&self.fs.mf, &mut out, 0);
                Ok(out)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn open(&self, cx: &Caller, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let dev = match &self.lock().data {
            Data::File(_) => None,
            Data::Device(d) => Some(d.clone()),
            Data::Fifo | Data::Socket => return Err(Errno::ENXIO),
            _ => return Err(Errno::EINVAL),
        };
        match dev {
            Some(d) => d.open(cx, flags),
            None => Ok(Arc::new(TmpFile {
                node: self.self_arc()?,
            })),
        }
    }

    fn create(
        &self,
        _cx: &Caller,
        name: &[u8],
        node: NewNode,
        attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        let (mode, data) = match node {
            NewNode::Regular => (libc::S_IFREG, Data::File(FileData::default())),
            NewNode::Directory => (
                libc::S_IFDIR,
                Data::Dir {
                    entries: BTreeMap::new(),
                    opaque: false,
                },
            ),
            NewNode::Symlink(t) => (libc::S_IFLNK, Data::Symlink(t)),
            NewNode::Fifo => (libc::S_IFIFO, Data::Fifo),
            NewNode::Socket => (libc::S_IFSOCK, Data::Socket),
            NewNode::Device { block, rdev } => {
                let n = self.new_node(
                    if block { libc::S_IFBLK } else { libc::S_IFCHR },
                    attrs,
                    Data::Device(super::dev::by_number(block, rdev)),
                )?;
                n.lock().rdev = rdev;
                self.insert(name, n.clone())?;
                return Ok(n);
            }
        };
        let attrs = if mode == libc::S_IFLNK {
            NewAttrs {
                mode: 0o777,
                ..attrs
            }
        } else {
            attrs
        };
        // A long symlink target takes a page; the node gives it back when it goes (and so
        // when the insert below fails).
        let page = matches!(&data, Data::Symlink(t) if symlink_takes_page(t));
        if page && self.fs.charge_pages(1) == 0 {
            return Err(Errno::ENOSPC);
        }
        let n = self.new_node(mode, attrs, data).inspect_err(|_| {
            if page {
                self.fs.uncharge_pages(1);
            }
        })?;
        self.insert(name, n.clone())?;
        Ok(n)
    }

    fn create_tmpfile(
        &self,
        _cx: &Caller,
        attrs: NewAttrs,
        linkable: bool,
    ) -> Result<Arc<dyn Inode>, Errno> {
        Ok(self.new_tmpfile(attrs, linkable)?)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> Result<(), Errno> {
        let t = target
            .clone()
            .as_any()
            .downcast::<TmpNode>()
            .map_err(|_| Errno::EXDEV)?;
        if !Arc::ptr_eq(&t.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        if t.kind() == FileType::Directory {
            return Err(Errno::EPERM);
        }
        {
            let ts = t.lock();
            if ts.nlink == 0 && !ts.linkable {
                return Err(Errno::ENOENT);
            }
        }
        // Each further name of a file counts as an inode, as Linux's tmpfs.
        let first_name = t.lock().nlink == 0;
        if !first_name {
            self.fs.charge_inode()?;
        }
        self.insert(name, t.clone()).inspect_err(|_| {
            if !first_name {
                self.fs.uncharge_inode();
            }
        })?;
        let mut ts = t.lock();
        ts.linkable = false;
        ts.nlink += 1;
        ts.ctime = now();
        Ok(())
    }

    fn unlink(&self, _cx: &Caller, name: &[u8], dir: bool) -> Result<(), Errno> {
        let child = self.child(name).filter(|c| !c.is_whiteout());
        let Some(child) = child else {
            return Err(Errno::ENOENT);
        };
        let is_dir = child.kind() == FileType::Directory;
        match (dir, is_dir) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !child.dir_is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        if let Some(gone) = self.remove_entry(name) {
            gone.name_removed();
        }
        Ok(())
    }

    fn rename(
        &self,
        _cx: &Caller,
        name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let nd = new_dir
            .clone()
            .as_any()
            .downcast::<TmpNode>()
            .map_err(|_| Errno::EXDEV)?;
        if !Arc::ptr_eq(&nd.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        let _g = self.fs.rename_lock.lock().unwrap();
        let src = self
            .child(name)
            .filter(|c| !c.is_whiteout())
            .ok_or(Errno::ENOENT)?;
        let dst = nd.child(new_name).filter(|c| !c.is_whiteout());
        if flags.exchange {
            let dst = dst.ok_or(Errno::ENOENT)?;
            dst.touch_ctime();
            src.touch_ctime();
            self.replace_entry(name, dst);
            nd.replace_entry(new_name, src);
            return Ok(());
        }
        if let Some(d) = &dst {
            if flags.noreplace {
                return Err(Errno::EEXIST);
            }
            if Arc::ptr_eq(d, &src) {
                return Ok(());
            }
            match (
                src.kind() == FileType::Directory,
                d.kind() == FileType::Directory,
            ) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !d.dir_is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            if let Some(gone) = nd.remove_entry(new_name) {
                gone.name_removed();
            }
        }
        self.remove_entry(name);
        src.lock().nlink += 1;
        nd.replace_entry(new_name, src);
        Ok(())
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        let mut st = self.lock();
        let seals = st.seals;
        if let Some(size) = a.size {
            match &mut st.data {
                Data::File(d) => {
                    if size > MAX_FILE_SIZE {
                        return Err(Errno::EFBIG);
                    }
                    if (size < d.size && seals & SEAL_SHRINK != 0)
                        || (size > d.size && seals & SEAL_GROW != 0)
                    {
                        return Err(Errno::EPERM);
                    }
                    d.truncate(&self.fs, size);
                    st.mtime = now();
                }
                Data::Dir { .. } => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        }
        if let Some(m) = a.mode {
            st.mode = (st.mode & libc::S_IFMT) | (m & 0o7777);
            // chmod changes an extended access ACL with the mode (posix_acl_chmod).
            if let Some(v) = st.xattrs.get_mut(acl::ACCESS) {
                if let Ok(Some(mut entries)) = acl::parse(v) {
                    acl::chmod(&mut entries, m);
                    *v = acl::encode(&entries);
                }
            }
        }
        if let Some(u) = a.uid {
            st.uid = u;
        }
        if let Some(g) = a.gid {
            st.gid = g;
        }
        if let Some(t) = a.atime {
            st.atime = set_time(t);
        }
        if let Some(t) = a.mtime {
            st.mtime = set_time(t);
        }
        st.ctime = now();
        Ok(())
    }

    fn touch_atime(&self, relatime: bool) {
        let mut st = self.lock();
        let t = now();
        if !relatime || relatime_due(st.atime, st.mtime, st.ctime, t) {
            st.atime = t;
        }
    }

    fn getxattr(&self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let st = self.lock();
        xattr_supported(&st, name)?;
        st.xattrs.get(name).cloned().ok_or(Errno::ENODATA)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        let mut st = self.lock();
        xattr_supported(&st, name)?;
        let exists = st.xattrs.contains_key(name);
        if exists && flags & XATTR_CREATE != 0 {
            return Err(Errno::EEXIST);
        }
        if !exists && flags & XATTR_REPLACE != 0 {
            return Err(Errno::ENODATA);
        }
        let total: usize = st
            .xattrs
            .iter()
            .filter(|(k, _)| k.as_slice() != name)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if total + name.len() + value.len() > XATTRS_MAX_BYTES {
            return Err(Errno::ENOSPC);
        }
        st.xattrs.insert(name.to_vec(), value.to_vec());
        st.ctime = now();
        Ok(())
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        let mut st = self.lock();
        xattr_supported(&st, name)?;
        // Removing an ACL the file does not have succeeds, as shmem's simple_set_acl(NULL).
        if st.xattrs.remove(name).is_none() && !acl::is_acl_name(name) {
            return Err(Errno::ENODATA);
        }
        st.ctime = now();
        Ok(())
    }

    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        Ok(self.lock().xattrs.keys().cloned().collect())
    }

    fn access_acl(&self) -> Option<acl::Acl> {
        let st = self.lock();
        acl::parse(st.xattrs.get(acl::ACCESS)?).ok().flatten()
    }

    fn allocate(&self, off: u64, end: u64) -> Result<(), Errno> {
        let mut st = self.lock();
        let seals = st.seals;
        let Data::File(d) = &mut st.data else {
            return Err(Errno::ENODEV);
        };
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        if end > d.size && seals & SEAL_GROW != 0 {
            return Err(Errno::EPERM);
        }
        d.allocate(&self.fs, off, end)?;
        if end > d.size {
            d.size = end;
            st.mtime = now();
        }
        st.ctime = now();
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        let u = self.fs.usage.lock().unwrap();
        let (blocks, blocks_free) = u
            .max_pages
            .map_or((1 << 20, 1 << 20), |m| (m, m.saturating_sub(u.pages)));
        let (files, files_free) = u
            .max_inodes
            .map_or((1 << 20, 1 << 20), |m| (m, m.saturating_sub(u.inodes)));
        Ok(FsStats {
            fs_type: self.fs.magic,
            block_size: 4096,
            blocks,
            blocks_free,
            blocks_avail: blocks_free,
            files,
            files_free,
            name_max: 255,
        })
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl TmpNode {
    fn self_arc(&self) -> Result<Arc<TmpNode>, Errno> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    /// A regular file with no name (link count 0) in this directory's filesystem
    /// (`O_TMPFILE`).
    ///
    /// # Errors
    /// ENOTDIR when this is not a directory.
    pub fn new_tmpfile(&self, attrs: NewAttrs, linkable: bool) -> Result<Arc<TmpNode>, Errno> {
        if self.kind() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let n = self.new_node(libc::S_IFREG, attrs, Data::File(FileData::default()))?;
        {
            let mut st = n.lock();
            st.nlink = 0;
            st.linkable = linkable;
        }
        Ok(n)
    }

    /// A `memfd_create` file: like [`TmpNode::new_tmpfile`], with `seals` to start with.
    ///
    /// # Errors
    /// ENOTDIR when this is not a directory.
    pub fn new_memfd(&self, attrs: NewAttrs, seals: u32) -> Result<Arc<TmpNode>, Errno> {
        let n = self.new_tmpfile(attrs, false)?;
        n.lock().seals = seals;
        Ok(n)
    }

    /// A restored `memfd_create` file: `data` written, then `seals` set (a checkpoint's
    /// memfd, whose seals may forbid writing).
    ///
    /// # Errors
    /// ENOTDIR when this is not a directory, ENOSPC when the memory file is exhausted.
    pub fn restored_memfd(
        &self,
        attrs: NewAttrs,
        data: &[u8],
        seals: u32,
    ) -> Result<Arc<TmpNode>, Errno> {
        let n = self.new_tmpfile(attrs, false)?;
        {
            let mut st = n.lock();
            if let Data::File(f) = &mut st.data {
                if let Err(e) = f.write(&self.fs, data, 0) {
                    f.truncate(&self.fs, 0);
                    return Err(e);
                }
            }
            st.seals = seals;
        }
        Ok(n)
    }

    /// The filesystem's options as mountinfo shows them after `rw`/`ro`, each with a leading
    /// comma: limits that differ from a new mount's defaults, then the root's mode, owner
    /// and group when not 1777, 0 and 0 (Linux's order and formats).
    pub fn fs_options(&self) -> String {
        let u = self.fs.usage.lock().unwrap();
        let mut o = String::new();
        if u.max_pages != u.default_pages {
            o.push_str(&format!(
                ",size={}k",
                u.max_pages.unwrap_or(0) * (PAGE_SIZE / 1024)
            ));
        }
        if u.max_inodes != u.default_inodes {
            o.push_str(&format!(",nr_inodes={}", u.max_inodes.unwrap_or(0)));
        }
        if u.mode != 0o1777 {
            o.push_str(&format!(",mode={:03o}", u.mode));
        }
        if u.uid != 0 {
            o.push_str(&format!(",uid={}", u.uid));
        }
        if u.gid != 0 {
            o.push_str(&format!(",gid={}", u.gid));
        }
        o
    }

    /// A remount with `opts`: new limits (0 lifts one); `mode=`, `uid=` and `gid=` change
    /// nothing on a remount, as Linux's.
    ///
    /// # Errors
    /// EINVAL when a limit would be set on a filesystem that has none, or is below what is
    /// in use.
    pub fn reconfigure(&self, opts: &TmpfsOptions) -> Result<(), Errno> {
        let mut u = self.fs.usage.lock().unwrap();
        let check = |given: Option<u64>, max: Option<u64>, used: u64| match given {
            Some(n) if n != 0 && (max.is_none() || used > n) => Err(Errno::EINVAL),
            _ => Ok(()),
        };
        check(opts.pages, u.max_pages, u.pages)?;
        check(opts.inodes, u.max_inodes, u.inodes)?;
        if let Some(n) = opts.pages {
            u.max_pages = (n != 0).then_some(n);
        }
        if let Some(n) = opts.inodes {
            u.max_inodes = (n != 0).then_some(n);
        }
        Ok(())
    }

    /// Removes `name` without counting it as an unlink (overlay rename moves it on).
    pub fn take_entry(&self, name: &[u8]) -> Option<Arc<TmpNode>> {
        let mut st = self.lock();
        let r = match &mut st.data {
            Data::Dir { entries, .. } => entries.remove(name),
            _ => None,
        };
        st.mtime = now();
        st.ctime = st.mtime;
        r
    }

    /// Creates `name` and returns the concrete node (overlay upper layer).
    ///
    /// # Errors
    /// EEXIST.
    pub fn create_node(
        &self,
        name: &[u8],
        node: NewNode,
        attrs: NewAttrs,
    ) -> Result<Arc<TmpNode>, Errno> {
        let n = Inode::create(self, &Caller::kernel(), name, node, attrs)?;
        n.as_any().downcast::<TmpNode>().map_err(|_| Errno::EIO)
    }

    /// A name of this file (not a directory) went without the unlink's accounting (the
    /// overlay's unlink): one link fewer, and a new change time.
    pub fn drop_link(&self) {
        let mut st = self.lock();
        if FileType::from_mode(st.mode) != FileType::Directory {
            st.nlink = st.nlink.saturating_sub(1);
        }
        st.ctime = now();
    }

    /// Sets the change time to now (a rename changes the renamed file's).
    pub fn touch_ctime(&self) {
        self.lock().ctime = now();
    }

    /// Puts `node` at `name`, replacing what is there.
    pub fn replace_entry(&self, name: &[u8], node: Arc<TmpNode>) {
        let mut st = self.lock();
        if let Data::Dir { entries, .. } = &mut st.data {
            entries.insert(name.to_vec(), node);
        }
        st.mtime = now();
        st.ctime = st.mtime;
    }
}

/// A mounted tmpfs's limits and its root's attributes at mount time, as a checkpoint image
/// saves them (its files are saved apart).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TmpfsLimitsImage {
    pub max_pages: Option<u64>,
    pub max_inodes: Option<u64>,
    pub default_pages: Option<u64>,
    pub default_inodes: Option<u64>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl TmpNode {
    /// The limits of this node's filesystem (for a checkpoint).
    pub fn limits_image(&self) -> TmpfsLimitsImage {
        let u = self.fs.usage.lock().unwrap();
        TmpfsLimitsImage {
            max_pages: u.max_pages,
            max_inodes: u.max_inodes,
            default_pages: u.default_pages,
            default_inodes: u.default_inodes,
            mode: u.mode,
            uid: u.uid,
            gid: u.gid,
        }
    }
}

/// A file's access, modification and change times as a checkpoint image saves them, each
/// `(seconds, nanoseconds)` since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimesImage {
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl TmpNode {
    /// This file's times (for a checkpoint).
    pub fn times_image(&self) -> TimesImage {
        let st = self.lock();
        TimesImage {
            atime: st.atime,
            mtime: st.mtime,
            ctime: st.ctime,
        }
    }

    /// Gives this file the times a checkpoint saved, the change time included: a restore
    /// puts the same file back, it does not change it.
    pub fn set_times_image(&self, t: &TimesImage) {
        let mut st = self.lock();
        (st.atime, st.mtime, st.ctime) = (t.atime, t.mtime, t.ctime);
    }
}

impl TmpFs {
    /// A new, empty tmpfs with the limits a checkpoint saved (its files are put back
    /// after); returns its root directory.
    pub fn new_root_restored(mf: &Arc<MemoryFile>, image: &TmpfsLimitsImage) -> Arc<TmpNode> {
        let usage = Usage {
            max_pages: image.max_pages,
            max_inodes: image.max_inodes,
            default_pages: image.default_pages,
            default_inodes: image.default_inodes,
            ..Usage::default()
        };
        Self::new_fs(mf, TMPFS_MAGIC, usage, image.mode, image.uid, image.gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> NewAttrs {
        NewAttrs {
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn new_root() -> (Arc<MemoryFile>, Arc<TmpNode>) {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let root = TmpFs::new_root(&mf, 0o755);
        (mf, root)
    }

    #[test]
    fn links_renames_and_rmdir_rules() {
        let (_mf, root) = new_root();
        let cx = Caller::kernel();
        let r: Arc<dyn Inode> = root.clone();
        let f = root.create(&cx, b"f", NewNode::Regular, attrs()).unwrap();
        assert_eq!(
            root.create(&cx, b"f", NewNode::Regular, attrs()).err(),
            Some(Errno::EEXIST)
        );
        root.link(b"g", &f).unwrap();
        assert_eq!(f.stat().unwrap().nlink, 2);
        root.unlink(&cx, b"f", false).unwrap();
        assert_eq!(f.stat().unwrap().nlink, 1);
        let d = root.create(&cx, b"d", NewNode::Directory, attrs()).unwrap();
        assert_eq!(root.stat().unwrap().nlink, 3);
        d.create(&cx, b"x", NewNode::Regular, attrs()).unwrap();
        assert_eq!(root.unlink(&cx, b"d", true), Err(Errno::ENOTEMPTY));
        assert_eq!(root.unlink(&cx, b"d", false), Err(Errno::EISDIR));
        assert_eq!(root.unlink(&cx, b"g", true), Err(Errno::ENOTDIR));
        let flags = RenameFlags::default();
        assert_eq!(root.rename(&cx, b"g", &r, b"d", flags), Err(Errno::EISDIR));
        let noreplace = RenameFlags {
            noreplace: true,
            ..flags
        };
        root.create(&cx, b"h", NewNode::Regular, attrs()).unwrap();
        assert_eq!(
            root.rename(&cx, b"g", &r, b"h", noreplace),
            Err(Errno::EEXIST)
        );
        root.rename(&cx, b"g", &r, b"h", flags).unwrap();
        assert_eq!(root.lookup(&cx, b"g").err(), Some(Errno::ENOENT));
        let dir: Arc<dyn Inode> = d.clone();
        root.rename(&cx, b"h", &dir, b"moved", flags).unwrap();
        assert_eq!(
            d.lookup(&cx, b"moved").unwrap().stat().unwrap().ino,
            f.stat().unwrap().ino
        );
    }

    #[test]
    fn file_data_and_truncate() {
        let (mf, root) = new_root();
        let cx = Caller::kernel();
        let f = root.create_node(b"f", NewNode::Regular, attrs()).unwrap();
        f.write_at(b"hello", 3).unwrap();
        assert_eq!(mf.in_use(), PAGE_SIZE);
        assert_eq!(f.contents().unwrap(), b"\0\0\0hello");
        f.setattr(&SetAttr {
            size: Some(4),
            ..SetAttr::default()
        })
        .unwrap();
        assert_eq!(f.contents().unwrap(), b"\0\0\0h");
        let mut buf = [0u8; 8];
        assert_eq!(f.read_at(&mut buf, 10).unwrap(), 0);
        assert_eq!(root.readdir(&cx).unwrap().len(), 1);
    }

    #[test]
    fn sparse_pages_in_the_memory_file() {
        let (mf, root) = new_root();
        let f = root.create_node(b"f", NewNode::Regular, attrs()).unwrap();
        let p = PAGE_SIZE;
        // A write far out allocates only its own page; the hole reads as zeros.
        f.write_at(b"end", 10 * p).unwrap();
        assert_eq!(mf.in_use(), p);
        assert_eq!(f.stat().unwrap().size as u64, 10 * p + 3);
        assert_eq!(f.stat().unwrap().blocks as u64, p / 512);
        let mut buf = vec![1u8; 2 * p as usize];
        assert_eq!(f.read_at(&mut buf, 9 * p).unwrap(), p as usize + 3);
        assert!(buf[..p as usize].iter().all(|&b| b == 0));
        assert_eq!(&buf[p as usize..p as usize + 3], b"end");
        // A write across a page boundary.
        f.write_at(&[7u8; 10], 2 * p - 5).unwrap();
        assert_eq!(mf.in_use(), 3 * p);
        // Punching a hole gives whole pages back and zeroes partial ones.
        f.punch_hole(2 * p - 2, p + 10).unwrap();
        assert_eq!(mf.in_use(), 2 * p);
        let mut b = [9u8; 10];
        f.read_at(&mut b, 2 * p - 5).unwrap();
        assert_eq!(b, [7, 7, 7, 0, 0, 0, 0, 0, 0, 0]);
        // Truncating gives pages back; growing again reads zeros past the old end.
        f.setattr(&SetAttr {
            size: Some(2 * p - 4),
            ..SetAttr::default()
        })
        .unwrap();
        assert_eq!(mf.in_use(), p);
        f.setattr(&SetAttr {
            size: Some(2 * p),
            ..SetAttr::default()
        })
        .unwrap();
        f.read_at(&mut b[..5], 2 * p - 5).unwrap();
        assert_eq!(&b[..5], [7, 0, 0, 0, 0]);
        // Unlinking the last name frees everything.
        root.unlink(&Caller::kernel(), b"f", false).unwrap();
        drop(f);
        assert_eq!(mf.in_use(), 0);
    }

    #[test]
    fn mapped_pages_are_the_file_pages() {
        let (mf, root) = new_root();
        let f = root.create_node(b"f", NewNode::Regular, attrs()).unwrap();
        f.setattr(&SetAttr {
            size: Some(3 * PAGE_SIZE - 1),
            ..SetAttr::default()
        })
        .unwrap();
        assert_eq!(mf.in_use(), 0);
        let runs = Mappable::pages(f.as_ref(), 1, 5).unwrap();
        assert_eq!(runs.len(), 1);
        let (idx, r) = runs[0];
        assert_eq!((idx, r.len), (1, 2 * PAGE_SIZE));
        // A store through the mapping is file data; the mapping holds its own reference.
        mf.write(r.offset + 10, b"mapped");
        let mut b = [0u8; 6];
        f.read_at(&mut b, PAGE_SIZE + 10).unwrap();
        assert_eq!(&b, b"mapped");
        assert_eq!(mf.refs(r.offset), 2);
        f.setattr(&SetAttr {
            size: Some(0),
            ..SetAttr::default()
        })
        .unwrap();
        assert_eq!(mf.refs(r.offset), 1);
        mf.dec_ref(r);
        assert_eq!(mf.in_use(), 0);
    }

    #[test]
    fn mount_options_parse_as_linux() {
        let mem = 1 << 30;
        let o = TmpfsOptions::parse("size=2048,mode=0755,uid=5,gid=6", mem).unwrap();
        assert_eq!(o.pages, Some(1));
        assert_eq!((o.mode, o.uid, o.gid), (Some(0o755), Some(5), Some(6)));
        assert_eq!(
            TmpfsOptions::parse("size=1m", mem).unwrap().pages,
            Some(256)
        );
        assert_eq!(
            TmpfsOptions::parse("size=0x2000", mem).unwrap().pages,
            Some(2)
        );
        assert_eq!(
            TmpfsOptions::parse("size=50%", mem).unwrap().pages,
            Some(mem / PAGE_SIZE / 2)
        );
        assert_eq!(
            TmpfsOptions::parse("nr_blocks=3,nr_inodes=1k", mem)
                .unwrap()
                .inodes,
            Some(1024)
        );
        assert_eq!(TmpfsOptions::parse("", mem), Ok(TmpfsOptions::default()));
        for bad in [
            "size",
            "size=1q",
            "mode=9",
            "uid=x",
            "bogus",
            "nr_inodes=",
            "mpol=default",
        ] {
            assert_eq!(TmpfsOptions::parse(bad, mem), Err(Errno::EINVAL), "{bad}");
        }
    }

    #[test]
    fn size_limit_counts_pages_symlinks_and_inodes() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let opts = TmpfsOptions {
            pages: Some(2),
            inodes: Some(3),
            ..TmpfsOptions::default()
        };
        let root = TmpFs::new_root_mounted(&mf, &opts, 1 << 30);
        assert_eq!(root.fs_options(), ",size=8k,nr_inodes=3");
        let f = root.create_node(b"f", NewNode::Regular, attrs()).unwrap();
        // A write past the limit stops at the last page it could get.
        assert_eq!(f.write_at(&[1; 10], PAGE_SIZE - 5), Ok(10));
        assert_eq!(
            Inode::allocate(f.as_ref(), 0, 3 * PAGE_SIZE),
            Err(Errno::ENOSPC)
        );
        assert_eq!(f.stat().unwrap().size as u64, PAGE_SIZE + 5);
        // Short symlink targets live in the inode; the third inode is the last.
        let long = NewNode::Symlink(vec![b'a'; 128]);
        assert_eq!(
            root.create_node(b"l", long, attrs()).unwrap_err(),
            Errno::ENOSPC
        );
        root.create_node(b"s", NewNode::Symlink(vec![b'a'; 127]), attrs())
            .unwrap();
        assert_eq!(
            root.create_node(b"d", NewNode::Directory, attrs())
                .unwrap_err(),
            Errno::ENOSPC
        );
        // Removing a file gives its pages back; a remount cannot go below what is used.
        assert_eq!(
            root.reconfigure(&TmpfsOptions {
                pages: Some(1),
                ..TmpfsOptions::default()
            }),
            Err(Errno::EINVAL)
        );
        drop(f);
        root.unlink(&Caller::kernel(), b"f", false).unwrap();
        assert_eq!(root.statfs().unwrap().blocks_free, 2);
        root.reconfigure(&TmpfsOptions {
            pages: Some(1),
            ..TmpfsOptions::default()
        })
        .unwrap();
        assert_eq!(root.statfs().unwrap().blocks, 1);
    }
}
