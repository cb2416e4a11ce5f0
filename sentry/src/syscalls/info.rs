//! System information: sysinfo, getrandom, syslog (uname is the UTS namespace's, in
//! [`super::ns`]).

use super::Flags;
use crate::abi::{Errno, SysResult, Sysinfo};
use crate::auth::cap;
use crate::kernel::task::Restart;
use crate::kernel::Task;
use crate::mm::usermem::{access_ok, UserAddr, PATH_MAX};
use crate::procfs::FILESYSTEM_TYPES;

/// sysinfo(2)
pub fn sysinfo(t: &mut Task, info: UserAddr) -> SysResult {
    // The sandbox's view: the host's memory size, minus what the sandbox's memory file holds.
    let total = crate::procfs::host_mem_total_kb() * 1024;
    let s = Sysinfo {
        uptime: t.kernel.boot.elapsed().as_secs() as i64,
        totalram: total,
        freeram: total.saturating_sub(t.kernel.memory.in_use()),
        procs: t.kernel.tree().live_count().min(u16::MAX as usize) as u16,
        mem_unit: 1,
        ..Sysinfo::default()
    };
    t.mm.write_obj(info, &s)?;
    Ok(0)
}

/// getrandom(2)
pub fn getrandom(t: &mut Task, buf: UserAddr, len: usize, flags: Flags) -> SysResult {
    let known = (libc::GRND_NONBLOCK | libc::GRND_RANDOM | libc::GRND_INSECURE) as u64;
    if flags.0 & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.min(33_554_431);
    let mut data = vec![0u8; len];
    rustix::rand::getrandom(&mut data, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    Ok(t.mm.copy_out(buf.0, &data)? as u64)
}

/// sysfs(2), over the table `/proc/filesystems` shows ([`FILESYSTEM_TYPES`]): 1 turns a
/// type name (at `arg1`) into its index, 2 copies the name of index `arg1` (with its NUL) to
/// `arg2`, 3 counts the types; EINVAL for an unknown name, index or option.
pub fn sysfs(t: &mut Task, option: i32, arg1: u64, arg2: u64) -> SysResult {
    match option {
        1 => {
            let name = t.mm.read_cstring(UserAddr(arg1), PATH_MAX)?;
            FILESYSTEM_TYPES
                .iter()
                .position(|f| f.as_bytes() == name.as_slice())
                .map(|i| i as u64)
                .ok_or(Errno::EINVAL)
        }
        2 => {
            let name = usize::try_from(arg1 as u32)
                .ok()
                .and_then(|i| FILESYSTEM_TYPES.get(i))
                .ok_or(Errno::EINVAL)?;
            let mut bytes = name.as_bytes().to_vec();
            bytes.push(0);
            t.mm.write_bytes(UserAddr(arg2), &bytes)?;
            Ok(0)
        }
        3 => Ok(FILESYSTEM_TYPES.len() as u64),
        _ => Err(Errno::EINVAL),
    }
}

const SYSLOG_ACTION_CLOSE: i32 = 0;
const SYSLOG_ACTION_OPEN: i32 = 1;
const SYSLOG_ACTION_READ: i32 = 2;
const SYSLOG_ACTION_READ_ALL: i32 = 3;
const SYSLOG_ACTION_READ_CLEAR: i32 = 4;
const SYSLOG_ACTION_CLEAR: i32 = 5;
const SYSLOG_ACTION_CONSOLE_OFF: i32 = 6;
const SYSLOG_ACTION_CONSOLE_ON: i32 = 7;
const SYSLOG_ACTION_CONSOLE_LEVEL: i32 = 8;
const SYSLOG_ACTION_SIZE_UNREAD: i32 = 9;
const SYSLOG_ACTION_SIZE_BUFFER: i32 = 10;
/// The size of the sandbox's kernel log buffer (Linux's common 1 << CONFIG_LOG_BUF_SHIFT).
const LOG_BUF_LEN: u64 = 1 << 17;

/// syslog(2): the sandbox's kernel log, which is empty: the sentry writes its own log to
/// the host, never into the application's view. As with `kernel.dmesg_restrict = 0`,
/// reading it all and asking its size need no capability; the other actions need
/// CAP_SYSLOG (or CAP_SYS_ADMIN).
pub fn syslog(t: &mut Task, action: i32, buf: UserAddr, len: i32) -> SysResult {
    let open_to_all = action == SYSLOG_ACTION_READ_ALL || action == SYSLOG_ACTION_SIZE_BUFFER;
    if !open_to_all && !t.creds.has_cap(cap::SYSLOG) && !t.creds.has_cap(cap::SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    match action {
        SYSLOG_ACTION_CLOSE | SYSLOG_ACTION_OPEN => Ok(0),
        SYSLOG_ACTION_READ | SYSLOG_ACTION_READ_ALL | SYSLOG_ACTION_READ_CLEAR => {
            if buf.is_null() || len < 0 {
                return Err(Errno::EINVAL);
            }
            if len == 0 {
                return Ok(0);
            }
            access_ok(buf, len as u64)?;
            if action == SYSLOG_ACTION_READ {
                // Waits for a message, which never comes: only a signal ends the wait.
                let r = t.sleep_until(None);
                t.restart = Some(Restart::Sys);
                return r.and(Err(Errno::EINTR));
            }
            Ok(0)
        }
        SYSLOG_ACTION_CLEAR | SYSLOG_ACTION_CONSOLE_OFF | SYSLOG_ACTION_CONSOLE_ON => Ok(0),
        SYSLOG_ACTION_CONSOLE_LEVEL if (1..=8).contains(&len) => Ok(0),
        SYSLOG_ACTION_SIZE_UNREAD => Ok(0),
        SYSLOG_ACTION_SIZE_BUFFER => Ok(LOG_BUF_LEN),
        _ => Err(Errno::EINVAL),
    }
}
