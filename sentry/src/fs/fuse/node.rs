//! The FUSE filesystem: inodes whose operations are requests to the daemon.
//!
//! One [`FuseNode`] exists per node ID while anything holds it; each `LOOKUP`-style reply
//! naming a node counts one lookup, and the node sends them all back in one `FORGET` when
//! it is dropped. Attributes are kept for the `attr_valid` time of the reply that brought
//! them (and for the rest of one system call: a path walk asks several times), names for
//! their `entry_valid` time.
//!
//! # Lock order
//! `FuseFs::nodes` → `FuseNode::attr`, `FuseNode::children` (leaves); no lock is held
//! across a request.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use zerocopy::IntoBytes;

use super::conn::{Conn, Requester};
use super::proto::{self, op, AttrOut, EntryOut, OpenIn, OpenOut};
use super::Options;
use crate::abi::Errno;
use crate::vfs::dcache::EpochCell;
use crate::vfs::inode::{RenameFlags, TimeSet};
use crate::vfs::{
    Caller, Context, DirEntry, FileOps, FileType, FsStats, Inode, IoDst, IoSrc, NewAttrs, NewNode,
    OpenFile, SetAttr, Stat,
};

/// Most bytes one READ asks for.
const READ_CHUNK: usize = 128 << 10;
/// Bytes one READDIR asks for.
const READDIR_CHUNK: u32 = 16 << 10;
/// `XATTR_SIZE_MAX`: the buffer offered for an attribute's value or the list of names.
const XATTR_SIZE_MAX: u32 = 65536;
/// Most names a directory keeps cached before it starts over.
const MAX_CACHED_NAMES: usize = 4096;

/// One mounted FUSE filesystem.
pub struct FuseFs {
    conn: Arc<Conn>,
    dev: u64,
    opts: Options,
    /// The live nodes by node ID.
    nodes: Mutex<HashMap<u64, Weak<FuseNode>>>,
}

impl Drop for FuseFs {
    /// Unmounted (the last reference went): the connection ends, so the daemon's read
    /// fails with ENODEV and it exits, as after Linux's `fuse_kill_sb_anon`.
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// The IDs of `cx` for a request header.
fn requester(cx: &Caller) -> Requester {
    Requester {
        uid: cx.creds.euid,
        gid: cx.creds.egid,
        pid: cx.task.map_or(0, |t| t.tid as u32),
    }
}

/// When a cache entry given `secs` and `nsec` of validity now goes stale.
fn valid_until(secs: u64, nsec: u32) -> Instant {
    let now = Instant::now();
    let ttl = Duration::new(secs.min(u64::from(u32::MAX)), nsec.min(999_999_999));
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(1 << 30))
}

impl FuseFs {
    /// The filesystem over `conn`, and its root.
    pub fn new_root(conn: Arc<Conn>, opts: Options) -> Arc<FuseNode> {
        let fs = Arc::new(FuseFs {
            conn,
            dev: crate::fs::anon_dev(),
            opts,
            nodes: Mutex::new(HashMap::new()),
        });
        let attr = proto::Attr {
            ino: proto::ROOT_ID,
            mode: fs.opts.rootmode,
            nlink: 1,
            ..proto::Attr::default()
        };
        let root = FuseNode::new(&fs, proto::ROOT_ID, &attr, 0, Instant::now());
        fs.conn.set_root(&root);
        fs.nodes
            .lock()
            .unwrap()
            .insert(proto::ROOT_ID, Arc::downgrade(&root));
        root
    }

    /// Sends a request and waits for the reply; an ENOSYS is remembered for the operations
    /// Linux remembers it for.
    fn call(
        &self,
        t: Option<&mut dyn Context>,
        opcode: u32,
        nodeid: u64,
        who: Requester,
        body: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        let r = self.conn.call(t, opcode, nodeid, who, body);
        if r == Err(Errno::ENOSYS) {
            self.conn.note_enosys(opcode);
        }
        r
    }

    /// Without `allow_other`, only the mounting user (its real, effective and saved IDs)
    /// may use the filesystem, as Linux's `fuse_allow_current_process`.
    fn allowed(&self, cx: &Caller) -> Result<(), Errno> {
        let c = &cx.creds;
        let (u, g) = (self.opts.user_id, self.opts.group_id);
        let owner = [c.uid, c.euid, c.suid] == [u; 3] && [c.gid, c.egid, c.sgid] == [g; 3];
        if self.opts.allow_other || cx.task.is_none() || owner {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    /// The `stat` of a node with `attr`.
    fn stat_of(&self, attr: &proto::Attr) -> Stat {
        Stat {
            dev: self.dev,
            ino: attr.ino,
            nlink: u64::from(attr.nlink),
            mode: attr.mode,
            uid: attr.uid,
            gid: attr.gid,
            rdev: proto::decode_dev(attr.rdev),
            size: attr.size as i64,
            blksize: if attr.blksize == 0 {
                4096
            } else {
                i64::from(attr.blksize)
            },
            blocks: attr.blocks as i64,
            atime: attr.atime as i64,
            atime_nsec: i64::from(attr.atimensec),
            mtime: attr.mtime as i64,
            mtime_nsec: i64::from(attr.mtimensec),
            ctime: attr.ctime as i64,
            ctime_nsec: i64::from(attr.ctimensec),
            ..Stat::default()
        }
    }

    /// The node an entry reply names, counting one lookup of it. Node ID 0 is a negative
    /// entry (ENOENT).
    fn node_of_entry(self: &Arc<Self>, e: &EntryOut) -> Result<Arc<FuseNode>, Errno> {
        if e.nodeid == 0 {
            return Err(Errno::ENOENT);
        }
        let mut nodes = self.nodes.lock().unwrap();
        if let Some(n) = nodes.get(&e.nodeid).and_then(Weak::upgrade) {
            drop(nodes);
            n.nlookup.fetch_add(1, Ordering::Relaxed);
            n.set_attr(&e.attr, e.attr_valid, e.attr_valid_nsec)?;
            return Ok(n);
        }
        let until = valid_until(e.attr_valid, e.attr_valid_nsec);
        let n = FuseNode::new(self, e.nodeid, &e.attr, 1, until);
        nodes.insert(e.nodeid, Arc::downgrade(&n));
        Ok(n)
    }
}

/// A name looked up in a directory: its node while alive, until the entry timeout.
type CachedName = (Weak<FuseNode>, Instant);

/// A file of a FUSE filesystem.
pub struct FuseNode {
    fs: Arc<FuseFs>,
    nodeid: u64,
    /// The file type (a node never changes type).
    kind: FileType,
    /// Lookups the daemon counted for this node and not yet forgotten.
    nlookup: AtomicU64,
    /// The attributes and when they go stale.
    attr: Mutex<(Stat, Instant)>,
    /// The attributes fetched in the current system call.
    this_call: EpochCell<Stat>,
    /// Names looked up in this directory, until their entry timeout.
    children: Mutex<HashMap<Vec<u8>, CachedName>>,
    /// Changes to the data made through the sentry (writes, truncations) and opens that
    /// drop the cached pages (no FOPEN_KEEP_CACHE): part of the cached pages' version
    /// ([`super::map`]).
    pub(super) changes: AtomicU64,
    /// The mappings made of the file ([`super::map`]), while they live.
    pub(super) maps: Mutex<Vec<Weak<super::map::FuseMapping>>>,
    /// The error of a write-back at munmap (0: none), for the next msync or fsync.
    pub(super) writeback_error: AtomicI32,
    me: Weak<FuseNode>,
}

impl Drop for FuseNode {
    fn drop(&mut self) {
        let n = self.nlookup.load(Ordering::Relaxed);
        if n > 0 {
            self.fs.conn.send_noreply(
                op::FORGET,
                self.nodeid,
                proto::ForgetIn { nlookup: n }.as_bytes(),
            );
        }
        let mut nodes = self.fs.nodes.lock().unwrap();
        if nodes
            .get(&self.nodeid)
            .is_some_and(|w| w.strong_count() == 0)
        {
            nodes.remove(&self.nodeid);
        }
    }
}

impl FuseNode {
    /// A node with `attr`, fresh until `until`, counting `nlookup` lookups.
    fn new(
        fs: &Arc<FuseFs>,
        nodeid: u64,
        attr: &proto::Attr,
        nlookup: u64,
        until: Instant,
    ) -> Arc<FuseNode> {
        let st = fs.stat_of(attr);
        Arc::new_cyclic(|me| FuseNode {
            fs: fs.clone(),
            nodeid,
            kind: FileType::from_mode(attr.mode),
            nlookup: AtomicU64::new(nlookup),
            attr: Mutex::new((st, until)),
            this_call: EpochCell::new(),
            children: Mutex::new(HashMap::new()),
            changes: AtomicU64::new(0),
            maps: Mutex::new(Vec::new()),
            writeback_error: AtomicI32::new(0),
            me: me.clone(),
        })
    }

    /// The node ID.
    pub(super) fn nodeid(&self) -> u64 {
        self.nodeid
    }

    /// The most bytes one READ may ask for: the `max_read` mount option (at least a page,
    /// as Linux's), at most [`READ_CHUNK`].
    pub(super) fn read_size(&self) -> usize {
        self.fs
            .opts
            .max_read
            .map_or(READ_CHUNK, |m| (m as usize).clamp(4096, READ_CHUNK))
    }

    /// The most bytes one WRITE may carry.
    pub(super) fn max_write(&self) -> u32 {
        self.fs.conn.negotiated().max_write
    }

    /// Mapped pages were written back: the daemon's attributes (mtime, size) changed.
    pub(super) fn written_back(&self) {
        self.expire();
    }

    /// The filesystem's device number.
    pub(super) fn fs_dev(&self) -> u64 {
        self.fs.dev
    }

    /// The mount options of the filesystem, as mountinfo shows them.
    pub fn shown_options(&self) -> String {
        self.fs.opts.shown()
    }

    fn this(&self) -> Result<Arc<FuseNode>, Errno> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    /// Records attributes from a reply, valid for `secs`.`nsec`. A reply that changes the
    /// file type is EIO (Linux marks such an inode bad).
    fn set_attr(&self, attr: &proto::Attr, secs: u64, nsec: u32) -> Result<Stat, Errno> {
        if FileType::from_mode(attr.mode) != self.kind {
            return Err(Errno::EIO);
        }
        let st = self.fs.stat_of(attr);
        *self.attr.lock().unwrap() = (st, valid_until(secs, nsec));
        self.this_call.set(st);
        Ok(st)
    }

    /// The file's data changed through the sentry, or its cached pages are to go: later
    /// mappings fill afresh.
    pub(super) fn drop_cached_pages(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets the attributes (the file changed through the sentry).
    fn expire(&self) {
        self.attr.lock().unwrap().1 = Instant::now();
        self.this_call.clear();
    }

    fn forget_name(&self, name: &[u8]) {
        if let Some((w, _)) = self.children.lock().unwrap().remove(name) {
            if let Some(n) = w.upgrade() {
                n.expire();
            }
        }
    }

    fn remember_name(&self, name: &[u8], n: &Arc<FuseNode>, secs: u64, nsec: u32) {
        let mut c = self.children.lock().unwrap();
        if c.len() >= MAX_CACHED_NAMES {
            c.clear();
        }
        c.insert(name.to_vec(), (Arc::downgrade(n), valid_until(secs, nsec)));
    }

    fn cached_name(&self, name: &[u8]) -> Option<Arc<FuseNode>> {
        let c = self.children.lock().unwrap();
        let (w, until) = c.get(name)?;
        (Instant::now() < *until).then(|| w.upgrade()).flatten()
    }

    fn getattr(&self) -> Result<Stat, Errno> {
        let reply = self.fs.call(
            None,
            op::GETATTR,
            self.nodeid,
            Requester::default(),
            proto::GetattrIn::default().as_bytes(),
        )?;
        let out: AttrOut = proto::parse(&reply)?;
        self.set_attr(&out.attr, out.attr_valid, out.attr_valid_nsec)
    }

    /// A request that makes a new name in this directory; its entry reply's node.
    fn make(
        &self,
        opcode: u32,
        who: Requester,
        body: &[u8],
        name: &[u8],
    ) -> Result<Arc<FuseNode>, Errno> {
        let reply = self.fs.call(None, opcode, self.nodeid, who, body)?;
        let e: EntryOut = proto::parse(&reply)?;
        let n = self.fs.node_of_entry(&e)?;
        self.expire();
        self.remember_name(name, &n, e.entry_valid, e.entry_valid_nsec);
        Ok(n)
    }

    fn open_handle(&self, who: Requester, opcode: u32, flags: u32) -> Result<OpenOut, Errno> {
        let flags =
            flags & !((libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC) as u32);
        let reply = self.fs.call(
            None,
            opcode,
            self.nodeid,
            who,
            OpenIn {
                flags,
                open_flags: 0,
            }
            .as_bytes(),
        )?;
        proto::parse(&reply)
    }

    pub(super) fn release(&self, who: Requester, opcode: u32, fh: u64, flags: u32) {
        let rel = proto::ReleaseIn {
            fh,
            flags,
            ..proto::ReleaseIn::default()
        };
        self.fs
            .conn
            .send_background(opcode, self.nodeid, who, rel.as_bytes());
    }

    /// One READ of up to `size` bytes at `offset` of handle `fh`.
    pub(super) fn read_chunk(
        &self,
        t: Option<&mut dyn Context>,
        who: Requester,
        fh: u64,
        offset: u64,
        size: usize,
        flags: u32,
    ) -> Result<Vec<u8>, Errno> {
        let arg = proto::IoIn {
            fh,
            offset,
            size: size as u32,
            flags,
            ..proto::IoIn::default()
        };
        let mut data = self
            .fs
            .call(t, op::READ, self.nodeid, who, arg.as_bytes())?;
        data.truncate(size);
        Ok(data)
    }

    /// One WRITE of `data` at `offset` of handle `fh` (`from_cache`: a write-back of
    /// mapped pages); the bytes the daemon took.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_chunk(
        &self,
        t: Option<&mut dyn Context>,
        who: Requester,
        fh: u64,
        offset: u64,
        data: &[u8],
        flags: u32,
        from_cache: bool,
    ) -> Result<usize, Errno> {
        let arg = proto::IoIn {
            fh,
            offset,
            size: data.len() as u32,
            io_flags: if from_cache { proto::WRITE_CACHE } else { 0 },
            flags,
            ..proto::IoIn::default()
        };
        let mut body = arg.as_bytes().to_vec();
        body.extend_from_slice(data);
        let r = self
            .fs
            .call(t, op::WRITE, self.nodeid, who, &body)
            .and_then(|reply| proto::parse::<proto::WriteOut>(&reply));
        self.expire();
        r.map(|w| (w.size as usize).min(data.len()))
    }

    /// A WRITE of mapped pages at `offset` of handle `fh` whose reply nobody waits for.
    pub(super) fn write_background(
        &self,
        who: Requester,
        fh: u64,
        offset: u64,
        data: &[u8],
        flags: u32,
    ) {
        let arg = proto::IoIn {
            fh,
            offset,
            size: data.len() as u32,
            io_flags: proto::WRITE_CACHE,
            flags,
            ..proto::IoIn::default()
        };
        let mut body = arg.as_bytes().to_vec();
        body.extend_from_slice(data);
        self.fs
            .conn
            .send_background(op::WRITE, self.nodeid, who, &body);
        self.expire();
    }

    fn read_dir(&self, who: Requester, fh: u64) -> Result<Vec<DirEntry>, Errno> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let arg = proto::IoIn {
                fh,
                offset,
                size: READDIR_CHUNK,
                flags: libc::O_DIRECTORY as u32,
                ..proto::IoIn::default()
            };
            let reply = self
                .fs
                .call(None, op::READDIR, self.nodeid, who, arg.as_bytes())?;
            let records = proto::parse_dirents(&reply)?;
            let Some(last) = records.last() else {
                return Ok(out);
            };
            if last.off == offset || out.len() > 1 << 20 {
                // A daemon that does not move on would have the listing go on forever.
                return Err(Errno::EIO);
            }
            offset = last.off;
            for r in records {
                if r.name == b"." || r.name == b".." {
                    continue;
                }
                out.push(DirEntry {
                    name: r.name,
                    ino: r.ino,
                    kind: FileType::from_mode(r.kind << 12),
                });
            }
        }
    }

    fn xattr_request(&self, opcode: u32, body: &[u8]) -> Result<Vec<u8>, Errno> {
        match self
            .fs
            .call(None, opcode, self.nodeid, Requester::default(), body)
        {
            Err(Errno::ENOSYS) => Err(Errno::EOPNOTSUPP),
            r => r,
        }
    }
}

impl Inode for FuseNode {
    fn stat(&self) -> Result<Stat, Errno> {
        if let Some(st) = self.this_call.get() {
            return Ok(st);
        }
        let (st, until) = *self.attr.lock().unwrap();
        if Instant::now() < until {
            return Ok(st);
        }
        self.getattr()
    }

    fn file_type(&self) -> Result<FileType, Errno> {
        Ok(self.kind)
    }

    fn lookup(&self, cx: &Caller, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        self.fs.allowed(cx)?;
        if self.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if let Some(n) = self.cached_name(name) {
            return Ok(n);
        }
        let reply = self.fs.call(
            None,
            op::LOOKUP,
            self.nodeid,
            requester(cx),
            &proto::body(&[], &[name]),
        )?;
        let e: EntryOut = proto::parse(&reply)?;
        let n = self.fs.node_of_entry(&e)?;
        self.remember_name(name, &n, e.entry_valid, e.entry_valid_nsec);
        Ok(n)
    }

    fn readdir(&self, cx: &Caller) -> Result<Vec<DirEntry>, Errno> {
        self.fs.allowed(cx)?;
        let who = requester(cx);
        let flags = libc::O_RDONLY as u32 | libc::O_DIRECTORY as u32;
        let open = self.open_handle(who, op::OPENDIR, flags)?;
        let listing = self.read_dir(who, open.fh);
        self.release(who, op::RELEASEDIR, open.fh, flags);
        listing
    }

    fn readlink(&self, cx: &Caller) -> Result<Vec<u8>, Errno> {
        if self.kind != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        self.fs
            .call(None, op::READLINK, self.nodeid, requester(cx), &[])
    }

    fn contents(&self) -> Result<Vec<u8>, Errno> {
        if self.kind != FileType::Regular {
            return Err(Errno::EINVAL);
        }
        let who = Requester::default();
        let flags = libc::O_RDONLY as u32;
        let open = self.open_handle(who, op::OPEN, flags)?;
        let mut out = Vec::new();
        let result = loop {
            match self.read_chunk(
                None,
                who,
                open.fh,
                out.len() as u64,
                self.read_size(),
                flags,
            ) {
                Ok(d) if d.is_empty() => break Ok(()),
                Ok(d) => out.extend_from_slice(&d),
                Err(e) => break Err(e),
            }
        };
        self.release(who, op::RELEASE, open.fh, flags);
        result.map(|()| out)
    }

    fn open(&self, cx: &Caller, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        self.fs.allowed(cx)?;
        match self.kind {
            FileType::Regular => {}
            FileType::CharDevice | FileType::BlockDevice => {
                let rdev = self.stat()?.rdev;
                let block = self.kind == FileType::BlockDevice;
                return crate::fs::dev::by_number(block, rdev).open(cx, flags);
            }
            FileType::Directory => return Err(Errno::EISDIR),
            FileType::Symlink => return Err(Errno::ELOOP),
            FileType::Fifo | FileType::Socket => return Err(Errno::ENXIO),
        }
        let who = requester(cx);
        let open = self.open_handle(who, op::OPEN, flags)?;
        let handle = Arc::new(Handle {
            node: self.this()?,
            who,
            fh: open.fh,
            flags,
        });
        if open.open_flags & proto::FOPEN_KEEP_CACHE == 0 {
            // Linux's `fuse_finish_open` drops the file's page cache on such an open; while
            // a shared mapping may write the pages they are written back and kept, so that
            // every shared mapping shares them (see `super::map`).
            if super::map::has_writers(self) {
                let _ = super::map::write_back(self);
            } else {
                self.drop_cached_pages();
            }
        }
        Ok(Arc::new(FuseFile {
            h: handle,
            open_flags: open.open_flags,
        }))
    }

    fn create(
        &self,
        cx: &Caller,
        name: &[u8],
        node: NewNode,
        attrs: NewAttrs,
    ) -> Result<Arc<dyn Inode>, Errno> {
        self.fs.allowed(cx)?;
        let who = Requester {
            uid: attrs.uid,
            gid: attrs.gid,
            ..requester(cx)
        };
        let perm = attrs.mode & 0o7777;
        let (opcode, body) = match node {
            NewNode::Directory => (
                op::MKDIR,
                proto::body(
                    &[proto::MkdirIn {
                        mode: perm,
                        umask: 0,
                    }
                    .as_bytes()],
                    &[name],
                ),
            ),
            NewNode::Symlink(target) => (op::SYMLINK, proto::body(&[], &[name, &target])),
            other => {
                let (kind, rdev) = match other {
                    NewNode::Fifo => (libc::S_IFIFO, 0),
                    NewNode::Socket => (libc::S_IFSOCK, 0),
                    NewNode::Device { block, rdev } => (
                        if block { libc::S_IFBLK } else { libc::S_IFCHR },
                        proto::encode_dev(rdev),
                    ),
                    _ => (libc::S_IFREG, 0),
                };
                let arg = proto::MknodIn {
                    mode: kind | perm,
                    rdev,
                    umask: 0,
                    padding: 0,
                };
                (op::MKNOD, proto::body(&[arg.as_bytes()], &[name]))
            }
        };
        Ok(self.make(opcode, who, &body, name)?)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> Result<(), Errno> {
        let target = target
            .clone()
            .as_any()
            .downcast::<FuseNode>()
            .map_err(|_| Errno::EXDEV)?;
        if !Arc::ptr_eq(&target.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        let arg = target.nodeid.to_ne_bytes();
        let body = proto::body(&[&arg], &[name]);
        self.make(op::LINK, Requester::default(), &body, name)?;
        target.expire();
        Ok(())
    }

    fn unlink(&self, cx: &Caller, name: &[u8], dir: bool) -> Result<(), Errno> {
        self.fs.allowed(cx)?;
        let opcode = if dir { op::RMDIR } else { op::UNLINK };
        let r = self.fs.call(
            None,
            opcode,
            self.nodeid,
            requester(cx),
            &proto::body(&[], &[name]),
        );
        self.forget_name(name);
        self.expire();
        r.map(drop)
    }

    fn rename(
        &self,
        cx: &Caller,
        name: &[u8],
        new_dir: &Arc<dyn Inode>,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.fs.allowed(cx)?;
        let new_dir = new_dir
            .clone()
            .as_any()
            .downcast::<FuseNode>()
            .map_err(|_| Errno::EXDEV)?;
        if !Arc::ptr_eq(&new_dir.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        let bits = u32::from(flags.noreplace) | (u32::from(flags.exchange) << 1);
        let (opcode, arg) = if bits == 0 {
            (op::RENAME, new_dir.nodeid.as_bytes().to_vec())
        } else {
            let arg = proto::Rename2In {
                newdir: new_dir.nodeid,
                flags: bits,
                padding: 0,
            };
            (op::RENAME2, arg.as_bytes().to_vec())
        };
        let body = proto::body(&[&arg], &[name, new_name]);
        let r = self
            .fs
            .call(None, opcode, self.nodeid, requester(cx), &body);
        for (dir, n) in [(self, name), (&*new_dir, new_name)] {
            dir.forget_name(n);
            dir.expire();
        }
        match r {
            // Linux answers a daemon without RENAME2 with EINVAL.
            Err(Errno::ENOSYS) if opcode == op::RENAME2 => Err(Errno::EINVAL),
            r => r.map(drop),
        }
    }

    fn setattr(&self, attr: &SetAttr) -> Result<(), Errno> {
        let mut arg = proto::SetattrIn::default();
        if let Some(m) = attr.mode {
            arg.valid |= proto::FATTR_MODE;
            arg.mode = self.kind.mode_bits() | (m & 0o7777);
        }
        if let Some(u) = attr.uid {
            arg.valid |= proto::FATTR_UID;
            arg.uid = u;
        }
        if let Some(g) = attr.gid {
            arg.valid |= proto::FATTR_GID;
            arg.gid = g;
        }
        if let Some(s) = attr.size {
            arg.valid |= proto::FATTR_SIZE;
            arg.size = s;
        }
        match attr.atime {
            Some(TimeSet::Now) => arg.valid |= proto::FATTR_ATIME | proto::FATTR_ATIME_NOW,
            Some(TimeSet::At(s, ns)) => {
                arg.valid |= proto::FATTR_ATIME;
                (arg.atime, arg.atimensec) = (s as u64, ns as u32);
            }
            None => {}
        }
        match attr.mtime {
            Some(TimeSet::Now) => arg.valid |= proto::FATTR_MTIME | proto::FATTR_MTIME_NOW,
            Some(TimeSet::At(s, ns)) => {
                arg.valid |= proto::FATTR_MTIME;
                (arg.mtime, arg.mtimensec) = (s as u64, ns as u32);
            }
            None => {}
        }
        let reply = self.fs.call(
            None,
            op::SETATTR,
            self.nodeid,
            Requester::default(),
            arg.as_bytes(),
        )?;
        let out: AttrOut = proto::parse(&reply)?;
        if let Some(s) = attr.size {
            super::map::resized(self, s);
        }
        self.set_attr(&out.attr, out.attr_valid, out.attr_valid_nsec)
            .map(drop)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        let reply = self
            .fs
            .call(None, op::STATFS, self.nodeid, Requester::default(), &[])?;
        let s: proto::StatfsOut = proto::parse(&reply)?;
        Ok(FsStats {
            fs_type: proto::SUPER_MAGIC,
            block_size: i64::from(s.bsize),
            blocks: s.blocks,
            blocks_free: s.bfree,
            blocks_avail: s.bavail,
            files: s.files,
            files_free: s.ffree,
            name_max: i64::from(s.namelen),
        })
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn getxattr(&self, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let size = proto::XattrSize {
            size: XATTR_SIZE_MAX,
            padding: 0,
        };
        self.xattr_request(op::GETXATTR, &proto::body(&[size.as_bytes()], &[name]))
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        let arg = proto::SetxattrIn {
            size: value.len() as u32,
            flags,
        };
        let mut body = proto::body(&[arg.as_bytes()], &[name]);
        body.extend_from_slice(value);
        self.xattr_request(op::SETXATTR, &body)?;
        self.expire();
        Ok(())
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        self.xattr_request(op::REMOVEXATTR, &proto::body(&[], &[name]))?;
        self.expire();
        Ok(())
    }

    fn listxattr(&self) -> Result<Vec<Vec<u8>>, Errno> {
        let size = proto::XattrSize {
            size: XATTR_SIZE_MAX,
            padding: 0,
        };
        let names = self.xattr_request(op::LISTXATTR, size.as_bytes())?;
        Ok(names
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }
}

/// A daemon's handle (`fh`) of an open regular file, held by the open file and by the
/// mappings made from it: the last holder sends RELEASE, as Linux releases a file when its
/// last mapping goes.
pub(super) struct Handle {
    pub(super) node: Arc<FuseNode>,
    /// The opener, named in the requests on the handle.
    pub(super) who: Requester,
    pub(super) fh: u64,
    /// The `O_*` flags it was opened with.
    pub(super) flags: u32,
}

impl Drop for Handle {
    /// RELEASE, whose reply nobody waits for.
    fn drop(&mut self) {
        self.node
            .release(self.who, op::RELEASE, self.fh, self.flags);
    }
}

/// An open regular file of a FUSE filesystem.
struct FuseFile {
    h: Arc<Handle>,
    /// `FOPEN_*` from the OPEN reply.
    open_flags: u32,
}

impl Drop for FuseFile {
    /// The last close: the write-back of shared mappings' stores, then FLUSH (then RELEASE,
    /// once no mapping holds the handle), as Linux's `fuse_flush`.
    fn drop(&mut self) {
        if super::map::has_writers(&self.h.node) {
            // A failure here has no caller to go to; Linux's close would return it.
            let _ = super::map::write_back(&self.h.node);
        }
        let flush = proto::FlushIn {
            fh: self.h.fh,
            ..proto::FlushIn::default()
        };
        let n = &self.h.node;
        n.fs.conn
            .send_background(op::FLUSH, n.nodeid, self.h.who, flush.as_bytes());
    }
}

impl FileOps for FuseFile {
    fn read(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        dst: &mut dyn IoDst,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        let mut pos = off.unwrap_or(0);
        let mut done = 0usize;
        while dst.remaining() > 0 {
            let want = dst.remaining().min(self.h.node.read_size());
            // While a shared mapping may store into the cached pages, they are the file's
            // data (Linux reads the same pages): read them, filling missing ones by READ.
            let cached = super::map::read_cached(&self.h.node, pos, want);
            let data = match cached.unwrap_or_else(|| {
                self.h
                    .node
                    .read_chunk(Some(&mut *t), self.h.who, self.h.fh, pos, want, f.flags())
            }) {
                Ok(d) => d,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if data.is_empty() {
                break;
            }
            let n = match dst.copy_from(&data) {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += n;
            pos += n as u64;
            if n < data.len() || data.len() < want {
                break;
            }
        }
        Ok(done)
    }

    fn write(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        src: &mut dyn IoSrc,
        off: Option<u64>,
    ) -> Result<usize, Errno> {
        let max_write = self.h.node.fs.conn.negotiated().max_write as usize;
        let mut pos = off.unwrap_or(0);
        let mut done = 0usize;
        let mut buf = vec![0u8; src.remaining().min(max_write)];
        while src.remaining() > 0 {
            let want = src.remaining().min(max_write);
            let n = match src.copy_to(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if n == 0 {
                break;
            }
            let r = self.h.node.write_chunk(
                Some(&mut *t),
                self.h.who,
                self.h.fh,
                pos,
                &buf[..n],
                f.flags(),
                false,
            );
            let written = match r {
                Ok(w) => w,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if f.flags() & libc::O_APPEND as u32 == 0 {
                super::map::written(&self.h.node, pos, &buf[..written]);
            } else {
                // Where an append landed is the daemon's to say: later mappings fill afresh.
                self.h.node.drop_cached_pages();
            }
            done += written;
            pos += written as u64;
            if written < n {
                break;
            }
        }
        Ok(done)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.h.node.stat()
    }

    /// Writes back the stores of shared mappings (FUSE_FSYNC is not sent).
    fn fsync(&self) -> Result<(), Errno> {
        super::map::write_back(&self.h.node)
    }

    fn seekable(&self) -> bool {
        self.open_flags & proto::FOPEN_NONSEEKABLE == 0
    }

    fn pollable(&self) -> bool {
        false
    }

    /// Regular files map through the page cache, filled by READ on the handle (see
    /// [`super::map`]).
    fn mappable(
        &self,
        mf: &Arc<crate::memory::MemoryFile>,
    ) -> Option<Arc<dyn crate::mm::filemap::Mappable>> {
        super::map::mapping(mf, &self.h, self.open_flags)
    }
}
