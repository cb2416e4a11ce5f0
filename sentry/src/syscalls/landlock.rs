//! Landlock (landlock(7)): landlock_create_ruleset(2), landlock_add_rule(2),
//! landlock_restrict_self(2), and the network and scope checks of socket calls and
//! signals. The domain is [`crate::auth::landlock`]; the filesystem checks are
//! [`crate::vfs::landlock`].

use std::sync::{Arc, Mutex};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::Fd;
use crate::abi::{Errno, SysResult};
use crate::auth::cap;
use crate::auth::landlock::{self, fs, net, scope, Domain, Rules};
use crate::auth::Creds;
use crate::kernel::{Task, ThreadGroup};
use crate::mm::usermem::UserAddr;
use crate::vfs::{FileOps, OpenFile, Stat};

const CREATE_RULESET_VERSION: u32 = 1 << 0;

const RULE_PATH_BENEATH: u32 = 1;
const RULE_NET_PORT: u32 = 2;

/// `struct landlock_ruleset_attr`.
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed: 12 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// A ruleset file (`anon_inode:[landlock-ruleset]`): the rules being gathered.
struct RulesetFile {
    rules: Mutex<Rules>,
}

impl FileOps for RulesetFile {
    fn device_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat::anonymous())
    }
}

/// landlock_create_ruleset(2)
pub fn landlock_create_ruleset(t: &mut Task, attr: UserAddr, size: usize, flags: u32) -> SysResult {
    if flags != 0 {
        if flags == CREATE_RULESET_VERSION && attr.is_null() && size == 0 {
            return Ok(landlock::ABI_VERSION);
        }
        return Err(Errno::EINVAL);
    }
    // Linux's copy_min_struct_from_user: at least handled_access_fs, at most a page, and
    // only zeros past what this ABI knows.
    if attr.is_null() {
        return Err(Errno::EFAULT);
    }
    let known = size_of::<RulesetAttr>();
    if size < size_of::<u64>() {
        return Err(Errno::EINVAL);
    }
    if size > crate::abi::PAGE_SIZE as usize {
        return Err(Errno::E2BIG);
    }
    let bytes = t.mm.read_bytes(attr, size)?;
    if bytes.iter().skip(known).any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let mut a = RulesetAttr::default();
    let n = size.min(known);
    a.as_mut_bytes()[..n].copy_from_slice(&bytes[..n]);
    if a.handled_access_fs & !fs::ALL != 0
        || a.handled_access_net & !net::ALL != 0
        || a.scoped & !scope::ALL != 0
    {
        return Err(Errno::EINVAL);
    }
    if a.handled_access_fs == 0 && a.handled_access_net == 0 && a.scoped == 0 {
        return Err(Errno::ENOMSG);
    }
    let rules = Rules::new(a.handled_access_fs, a.handled_access_net, a.scoped);
    let file = OpenFile::new(
        Arc::new(RulesetFile {
            rules: Mutex::new(rules),
        }),
        libc::O_RDWR as u32,
    );
    let limit = super::fd::nofile_limit(t);
    Ok(t.fds.install(file, 0, true, limit)? as u64)
}

/// The ruleset behind `fd`: EBADF for no open file (or an O_PATH one), EBADFD for a file
/// of another kind.
fn ruleset(t: &Task, fd: Fd) -> Result<Arc<OpenFile>, Errno> {
    let f = t.fds.get_io(fd.0)?;
    if f.ops().device_any().is_none_or(|a| !a.is::<RulesetFile>()) {
        return Err(Errno::EBADFD);
    }
    Ok(f)
}

/// Runs `op` on the rules of the ruleset file `f`.
fn with_rules<R>(f: &OpenFile, op: impl FnOnce(&mut Rules) -> R) -> R {
    let file = f
        .ops()
        .device_any()
        .and_then(|a| a.downcast_ref::<RulesetFile>());
    let file = file.expect("checked by ruleset()");
    let mut rules = file.rules.lock().unwrap();
    op(&mut rules)
}

/// landlock_add_rule(2)
pub fn landlock_add_rule(
    t: &mut Task,
    fd: Fd,
    rule_type: u32,
    attr: UserAddr,
    flags: u32,
) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let f = ruleset(t, fd)?;
    match rule_type {
        RULE_PATH_BENEATH => {
            let a: PathBeneathAttr = t.mm.read_obj(attr)?;
            let allowed = a.allowed_access;
            if allowed == 0 {
                return Err(Errno::ENOMSG);
            }
            let handled = with_rules(&f, |r| r.handled_fs);
            if allowed & !handled != 0 {
                return Err(Errno::EINVAL);
            }
            let parent = t.fds.get(a.parent_fd)?;
            let d = parent.dentry.clone().ok_or(Errno::EBADFD)?;
            if parent
                .ops()
                .device_any()
                .is_some_and(|a| a.is::<RulesetFile>())
            {
                return Err(Errno::EBADFD);
            }
            let is_dir = d.inode.file_type()? == crate::vfs::FileType::Directory;
            if !is_dir && allowed & !fs::FILE != 0 {
                return Err(Errno::EINVAL);
            }
            let ident = d.inode.ident()?;
            with_rules(&f, |r| {
                r.add_path(ident, allowed, Box::new(d.inode.clone()))
            });
        }
        RULE_NET_PORT => {
            let a: NetPortAttr = t.mm.read_obj(attr)?;
            if a.allowed_access == 0 {
                return Err(Errno::ENOMSG);
            }
            let handled = with_rules(&f, |r| r.handled_net);
            if a.allowed_access & !handled != 0 || a.port > u64::from(u16::MAX) {
                return Err(Errno::EINVAL);
            }
            with_rules(&f, |r| r.add_port(a.port, a.allowed_access));
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

/// landlock_restrict_self(2)
pub fn landlock_restrict_self(t: &mut Task, fd: Fd, flags: u32) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    if !t.handle.seccomp.no_new_privs() && !t.creds.has_cap(cap::SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let f = ruleset(t, fd)?;
    let domain =
        with_rules(&f, |r| Domain::stack(t.creds.landlock.clone(), r)).map_err(|_| Errno::E2BIG)?;
    t.creds.landlock = Some(domain);
    t.sync_creds();
    Ok(0)
}

/// EACCES for a TCP bind (`access` [`net::BIND_TCP`]) or connect ([`net::CONNECT_TCP`])
/// of the socket `f` to the address `sa` that the caller's domain does not allow.
///
/// # Errors
/// EACCES; EINVAL for an IPv4 or IPv6 address too short to hold a port.
pub fn check_tcp(creds: &Creds, f: &OpenFile, sa: &[u8], access: u64) -> Result<(), Errno> {
    let Some(dom) = &creds.landlock else {
        return Ok(());
    };
    let crate::vfs::FileKind::Socket(s) = f.kind() else {
        return Ok(());
    };
    let opt = |name| {
        s.getsockopt(libc::SOL_SOCKET, name).ok().and_then(|v| {
            v.get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        })
    };
    let tcp = opt(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && opt(libc::SO_PROTOCOL) == Some(libc::IPPROTO_TCP)
        && matches!(opt(libc::SO_DOMAIN), Some(libc::AF_INET | libc::AF_INET6));
    if !tcp || sa.len() < 2 {
        return Ok(());
    }
    let family = i32::from(u16::from_ne_bytes([sa[0], sa[1]]));
    let min = match family {
        libc::AF_INET => size_of::<libc::sockaddr_in>(),
        // SIN6_LEN_RFC2133: without the scope ID.
        libc::AF_INET6 => 24,
        // AF_UNSPEC: a connect dissolves the association; other families fail in the
        // socket with their own error.
        _ => return Ok(()),
    };
    if sa.len() < min {
        return Err(Errno::EINVAL);
    }
    let port = u16::from_be_bytes([sa[2], sa[3]]);
    if dom.allows_port(access, port) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// Whether the caller's domain lets it signal `target` (`LANDLOCK_SCOPE_SIGNAL`: only
/// processes in its own domain or ones nested in it).
pub fn may_signal(creds: &Creds, target: &ThreadGroup) -> bool {
    let Some(dom) = &creds.landlock else {
        return true;
    };
    let target = target.published_creds();
    dom.reaches(
        scope::SIGNAL,
        target.as_ref().and_then(|c| c.landlock.as_ref()),
    )
}
