//! The FUSE wire protocol (Linux's `include/uapi/linux/fuse.h`, version 7.31 as the sentry
//! speaks it): request and reply headers, the bodies of the operations the sentry sends,
//! and their encoding. All integers are native-endian (x86-64: little-endian).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::Errno;

/// The protocol version the sentry offers in `FUSE_INIT`.
pub const KERNEL_MAJOR: u32 = 7;
pub const KERNEL_MINOR: u32 = 31;

/// The smallest read buffer a daemon may offer `/dev/fuse` (`FUSE_MIN_READ_BUFFER`).
pub const MIN_READ_BUFFER: usize = 8192;

/// The node ID of the filesystem's root.
pub const ROOT_ID: u64 = 1;

/// The bit of a request's `unique` that marks an interrupt request (`FUSE_INT_REQ_BIT`).
pub const INT_REQ_BIT: u64 = 1;

/// `FUSE_DEV_IOC_CLONE`: `_IOR(229, 0, uint32_t)`.
pub const DEV_IOC_CLONE: u64 = 0x8004_e500;

/// `FUSE_SUPER_MAGIC`, statfs's `f_type` of a FUSE filesystem.
pub const SUPER_MAGIC: i64 = 0x6573_5546;

/// The request opcodes the sentry sends.
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const SYMLINK: u32 = 6;
    pub const MKNOD: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const UNLINK: u32 = 10;
    pub const RMDIR: u32 = 11;
    pub const RENAME: u32 = 12;
    pub const LINK: u32 = 13;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const SETXATTR: u32 = 21;
    pub const GETXATTR: u32 = 22;
    pub const LISTXATTR: u32 = 23;
    pub const REMOVEXATTR: u32 = 24;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const INTERRUPT: u32 = 36;
    pub const RENAME2: u32 = 45;
}

/// `FUSE_BIG_WRITES`: the daemon accepts writes up to its `max_write`.
pub const INIT_BIG_WRITES: u32 = 1 << 5;

/// `fuse_setattr_in.valid` bits.
pub const FATTR_MODE: u32 = 1 << 0;
pub const FATTR_UID: u32 = 1 << 1;
pub const FATTR_GID: u32 = 1 << 2;
pub const FATTR_SIZE: u32 = 1 << 3;
pub const FATTR_ATIME: u32 = 1 << 4;
pub const FATTR_MTIME: u32 = 1 << 5;
pub const FATTR_ATIME_NOW: u32 = 1 << 7;
pub const FATTR_MTIME_NOW: u32 = 1 << 8;

/// `fuse_open_out.open_flags`: reads and writes bypass the page cache (`FOPEN_DIRECT_IO`):
/// the file maps only privately.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
/// `fuse_open_out.open_flags`: the open keeps the file's cached pages (`FOPEN_KEEP_CACHE`);
/// without it an open drops them.
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;
/// `fuse_open_out.open_flags`: the file has no offset (`FOPEN_NONSEEKABLE`).
pub const FOPEN_NONSEEKABLE: u32 = 1 << 2;

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InHeader {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub total_extlen: u16,
    pub padding: u16,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OutHeader {
    pub len: u32,
    pub error: i32,
    pub unique: u64,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub atimensec: u32,
    pub mtimensec: u32,
    pub ctimensec: u32,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EntryOut {
    pub nodeid: u64,
    pub generation: u64,
    pub entry_valid: u64,
    pub attr_valid: u64,
    pub entry_valid_nsec: u32,
    pub attr_valid_nsec: u32,
    pub attr: Attr,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct AttrOut {
    pub attr_valid: u64,
    pub attr_valid_nsec: u32,
    pub dummy: u32,
    pub attr: Attr,
}

/// `fuse_init_in` as version 7.31 has it (no `flags2`).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InitIn {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InitOut {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    pub max_background: u16,
    pub congestion_threshold: u16,
    pub max_write: u32,
    pub time_gran: u32,
    pub max_pages: u16,
    pub map_alignment: u16,
    pub flags2: u32,
    pub unused: [u32; 7],
}

/// The shortest `fuse_init_out` a daemon may send (`FUSE_COMPAT_INIT_OUT_SIZE`: major,
/// minor); the rest reads as zeroes.
pub const COMPAT_INIT_OUT_SIZE: usize = 8;

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ForgetIn {
    pub nlookup: u64,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GetattrIn {
    pub getattr_flags: u32,
    pub dummy: u32,
    pub fh: u64,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SetattrIn {
    pub valid: u32,
    pub padding: u32,
    pub fh: u64,
    pub size: u64,
    pub lock_owner: u64,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub atimensec: u32,
    pub mtimensec: u32,
    pub ctimensec: u32,
    pub mode: u32,
    pub unused4: u32,
    pub uid: u32,
    pub gid: u32,
    pub unused5: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OpenIn {
    pub flags: u32,
    pub open_flags: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OpenOut {
    pub fh: u64,
    pub open_flags: u32,
    pub padding: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MknodIn {
    pub mode: u32,
    pub rdev: u32,
    pub umask: u32,
    pub padding: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MkdirIn {
    pub mode: u32,
    pub umask: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Rename2In {
    pub newdir: u64,
    pub flags: u32,
    pub padding: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ReleaseIn {
    pub fh: u64,
    pub flags: u32,
    pub release_flags: u32,
    pub lock_owner: u64,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FlushIn {
    pub fh: u64,
    pub unused: u32,
    pub padding: u32,
    pub lock_owner: u64,
}

/// `fuse_write_in.write_flags`: the write comes from the page cache (a write-back of
/// mapped pages).
pub const WRITE_CACHE: u32 = 1 << 0;

/// `fuse_read_in` and `fuse_write_in` (one layout).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IoIn {
    pub fh: u64,
    pub offset: u64,
    pub size: u32,
    pub io_flags: u32,
    pub lock_owner: u64,
    pub flags: u32,
    pub padding: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct WriteOut {
    pub size: u32,
    pub padding: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StatfsOut {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
    pub padding: u32,
    pub spare: [u32; 6],
}

/// `fuse_getxattr_in` and `fuse_getxattr_out` (one layout: a size).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XattrSize {
    pub size: u32,
    pub padding: u32,
}

/// `fuse_setxattr_in` as versions before 7.33 have it (`FUSE_COMPAT_SETXATTR_IN_SIZE`).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SetxattrIn {
    pub size: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InterruptIn {
    pub unique: u64,
}

/// The fixed part of a `fuse_dirent` (the name follows, padded to 8 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Dirent {
    pub ino: u64,
    pub off: u64,
    pub namelen: u32,
    pub kind: u32,
}

/// A reply body as `T`. A body shorter than `T` is EIO, as Linux fails a reply whose
/// argument is short.
///
/// # Errors
/// EIO.
pub fn parse<T: FromBytes>(body: &[u8]) -> Result<T, Errno> {
    T::read_from_prefix(body)
        .map(|(v, _)| v)
        .map_err(|_| Errno::EIO)
}

/// A request body: `args` (fixed structs) followed by `names`, each NUL-terminated.
pub fn body(args: &[&[u8]], names: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in args {
        out.extend_from_slice(a);
    }
    for n in names {
        out.extend_from_slice(n);
        out.push(0);
    }
    out
}

/// One directory entry of a `FUSE_READDIR` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirentRecord {
    pub ino: u64,
    pub off: u64,
    /// `d_type` (`DT_*`).
    pub kind: u32,
    pub name: Vec<u8>,
}

/// Splits a `FUSE_READDIR` reply into its entries, as Linux's `parse_dirfile`: a record
/// cut short by the end of the reply ends the listing.
///
/// # Errors
/// EIO for an empty or oversized name, or one holding `/`.
pub fn parse_dirents(mut buf: &[u8]) -> Result<Vec<DirentRecord>, Errno> {
    let fixed = std::mem::size_of::<Dirent>();
    let mut out = Vec::new();
    while buf.len() >= fixed {
        let d: Dirent = parse(buf)?;
        let namelen = d.namelen as usize;
        if namelen == 0 || namelen > 1024 {
            return Err(Errno::EIO);
        }
        let reclen = (fixed + namelen).next_multiple_of(8);
        if reclen > buf.len() {
            break;
        }
        let name = &buf[fixed..fixed + namelen];
        if name.contains(&b'/') {
            return Err(Errno::EIO);
        }
        out.push(DirentRecord {
            ino: d.ino,
            off: d.off,
            kind: d.kind,
            name: name.to_vec(),
        });
        buf = &buf[reclen..];
    }
    Ok(out)
}

/// Linux's `new_encode_dev`: the 32-bit device number FUSE carries.
pub fn encode_dev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Linux's `new_decode_dev`.
pub fn decode_dev(dev: u32) -> u64 {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    libc::makedev(major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_linux() {
        use std::mem::size_of;
        assert_eq!(size_of::<InHeader>(), 40);
        assert_eq!(size_of::<OutHeader>(), 16);
        assert_eq!(size_of::<Attr>(), 88);
        assert_eq!(size_of::<EntryOut>(), 128);
        assert_eq!(size_of::<AttrOut>(), 104);
        assert_eq!(size_of::<InitOut>(), 64);
        assert_eq!(size_of::<SetattrIn>(), 88);
        assert_eq!(size_of::<IoIn>(), 40);
        assert_eq!(size_of::<StatfsOut>(), 80);
    }

    #[test]
    fn dirents_parse_as_linux() {
        let record = |ino: u64, name: &[u8]| {
            let mut buf = Dirent {
                ino,
                off: ino,
                namelen: name.len() as u32,
                kind: u32::from(libc::DT_REG),
            }
            .as_bytes()
            .to_vec();
            buf.extend_from_slice(name);
            buf.resize(buf.len().next_multiple_of(8), 0);
            buf
        };
        let buf = [record(5, b"a"), record(6, b"longer-name")].concat();
        let got = parse_dirents(&buf).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].name, b"longer-name");
        assert_eq!(
            parse_dirents(&buf[..40]).unwrap().len(),
            1,
            "a cut record ends it"
        );
        assert_eq!(parse_dirents(&record(7, b"a/b")), Err(Errno::EIO));
        assert_eq!(parse_dirents(&record(7, b"")), Err(Errno::EIO));
    }

    #[test]
    fn device_numbers_round_trip() {
        for rdev in [libc::makedev(1, 3), libc::makedev(259, 70000)] {
            assert_eq!(decode_dev(encode_dev(rdev)), rdev);
        }
    }
}
