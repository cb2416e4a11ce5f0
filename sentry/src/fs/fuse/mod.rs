//! FUSE: filesystems implemented by a daemon in the sandbox, which reads the requests of
//! the filesystem's operations from `/dev/fuse` and writes the replies back (Linux's
//! `fs/fuse`, `man 4 fuse`).
//!
//! - [`proto`]: the wire format.
//! - [`conn`]: the request queue between a mount and its daemon, and the `/dev/fuse`
//!   files ([`DevFile`]).
//! - [`node`]: the filesystem, whose inodes send the requests.
//! - [`map`]: mappings of its regular files, through the page cache.
//!
//! `mount -t fuse` (or `fuse.NAME`) with `fd=N` names an open `/dev/fuse`: the mount makes
//! a new connection on it and queues `FUSE_INIT`; other requests wait until the daemon
//! answers it. The kernel checks permissions from the daemon's attributes whether or not
//! `default_permissions` is given (FUSE_ACCESS is not sent).

pub mod conn;
mod map;
pub mod node;
pub mod proto;

use std::sync::{Arc, Mutex};

pub use conn::DevFile;

use crate::abi::Errno;
use crate::vfs::{Inode, OpenFile};

/// The options of a FUSE mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub fd: i32,
    /// The root's `st_mode` (type bits included) until the daemon says otherwise.
    pub rootmode: u32,
    pub user_id: u32,
    pub group_id: u32,
    pub default_permissions: bool,
    pub allow_other: bool,
    pub max_read: Option<u32>,
}

impl Options {
    /// Parses mount(2)'s data as Linux's `fuse_parse_param`: `fd`, `rootmode`, `user_id`
    /// and `group_id` are required; an unknown option, a bad number or a root mode that is
    /// no file type is EINVAL.
    ///
    /// # Errors
    /// EINVAL.
    pub fn parse(data: &str) -> Result<Options, Errno> {
        let (mut fd, mut rootmode, mut user_id, mut group_id) = (None, None, None, None);
        let mut o = Options {
            fd: -1,
            rootmode: 0,
            user_id: 0,
            group_id: 0,
            default_permissions: false,
            allow_other: false,
            max_read: None,
        };
        let num = |v: &str, radix| u32::from_str_radix(v, radix).map_err(|_| Errno::EINVAL);
        for opt in data.split(',').filter(|o| !o.is_empty()) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k {
                "fd" => fd = Some(v.parse::<i32>().map_err(|_| Errno::EINVAL)?),
                "rootmode" => rootmode = Some(num(v, 8)?),
                "user_id" => user_id = Some(num(v, 10)?),
                "group_id" => group_id = Some(num(v, 10)?),
                "default_permissions" => o.default_permissions = true,
                "allow_other" => o.allow_other = true,
                "max_read" => o.max_read = Some(num(v, 10)?),
                // A mount(2) caller's source and subtype are not mount options.
                "subtype" | "source" => {}
                _ => {
                    log::debug!("mount fuse: unsupported option {opt}");
                    return Err(Errno::EINVAL);
                }
            }
        }
        let (Some(fd), Some(rootmode), Some(user_id), Some(group_id)) =
            (fd, rootmode, user_id, group_id)
        else {
            return Err(Errno::EINVAL);
        };
        let typed = matches!(
            rootmode & libc::S_IFMT,
            libc::S_IFREG
                | libc::S_IFDIR
                | libc::S_IFLNK
                | libc::S_IFCHR
                | libc::S_IFBLK
                | libc::S_IFIFO
                | libc::S_IFSOCK
        );
        if !typed {
            return Err(Errno::EINVAL);
        }
        Ok(Options {
            fd,
            rootmode,
            user_id,
            group_id,
            ..o
        })
    }

    /// What mountinfo shows, as Linux's `fuse_show_options` (each with a leading comma).
    pub fn shown(&self) -> String {
        let mut s = format!(",user_id={},group_id={}", self.user_id, self.group_id);
        if self.default_permissions {
            s.push_str(",default_permissions");
        }
        if self.allow_other {
            s.push_str(",allow_other");
        }
        if let Some(m) = self.max_read {
            s.push_str(&format!(",max_read={m}"));
        }
        s
    }
}

/// Most distinct `fuse.NAME` types kept for mountinfo (each name is kept for the life of
/// the sentry).
const MAX_TYPE_NAMES: usize = 64;

/// The filesystem type `fstype` (`fuse` or `fuse.NAME`) as mountinfo shows it, kept for
/// the life of the sentry; plain `fuse` for a name too long or once [`MAX_TYPE_NAMES`]
/// are kept.
pub fn type_name(fstype: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.iter().find(|n| **n == fstype) {
        return n;
    }
    if fstype == "fuse" || names.len() >= MAX_TYPE_NAMES || fstype.len() > 64 {
        return "fuse";
    }
    let n: &'static str = Box::leak(fstype.to_owned().into_boxed_str());
    names.push(n);
    n
}

/// The `/dev/fuse` file of `f`, if it is one.
fn dev_file(f: &OpenFile) -> Option<&DevFile> {
    f.ops().device_any()?.downcast_ref::<DevFile>()
}

/// A new FUSE filesystem from mount(2)'s `data`; `file` finds the file of the `fd=` option
/// in the caller's table. Returns the root and the options mountinfo shows.
///
/// # Errors
/// EINVAL for bad options, a bad fd, a file that is not `/dev/fuse`, or one that served a
/// filesystem now gone. A file serving a mount mounts that filesystem again.
pub fn mount(
    data: &str,
    file: impl FnOnce(i32) -> Result<Arc<OpenFile>, Errno>,
) -> Result<(Arc<dyn Inode>, String), Errno> {
    let opts = Options::parse(data)?;
    let f = file(opts.fd).map_err(|_| Errno::EINVAL)?;
    let dev = dev_file(&f).ok_or(Errno::EINVAL)?;
    if let Some(conn) = dev.connection() {
        // A device that serves a mount already mounts that filesystem again (Linux 5.10
        // and later); one whose filesystem is gone is EINVAL.
        let root = conn.root().ok_or(Errno::EINVAL)?;
        let shown = root.shown_options();
        return Ok((root, shown));
    }
    let conn = dev.connect()?;
    let root: Arc<dyn Inode> = node::FuseFs::new_root(conn, opts);
    Ok((root, opts.shown()))
}

/// `FUSE_DEV_IOC_CLONE` on `to`: it serves the connection of `from` too.
///
/// # Errors
/// EINVAL when either is not `/dev/fuse`, `to` is attached or `from` is not.
pub fn clone_device(to: &OpenFile, from: &OpenFile) -> Result<(), Errno> {
    let to = dev_file(to).ok_or(Errno::ENOTTY)?;
    let from = dev_file(from).ok_or(Errno::EINVAL)?;
    to.clone_from(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_need_the_four_keys_and_a_file_type() {
        let o = Options::parse("fd=3,rootmode=40000,user_id=0,group_id=0,allow_other").unwrap();
        assert_eq!(o.fd, 3);
        assert_eq!(o.rootmode, libc::S_IFDIR);
        assert!(o.allow_other);
        assert_eq!(o.shown(), ",user_id=0,group_id=0,allow_other");
        for bad in [
            "rootmode=40000,user_id=0,group_id=0",
            "fd=3,user_id=0,group_id=0",
            "fd=3,rootmode=40000,group_id=0",
            "fd=3,rootmode=40000,user_id=0",
            "fd=3,rootmode=0,user_id=0,group_id=0",
            "fd=3,rootmode=40000,user_id=0,group_id=0,bogus",
            "fd=x,rootmode=40000,user_id=0,group_id=0",
        ] {
            assert_eq!(Options::parse(bad), Err(Errno::EINVAL), "{bad}");
        }
    }
}
