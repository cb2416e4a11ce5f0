//! System information: uname, sysinfo, getrandom.

use super::Flags;
use crate::abi::{Errno, SysResult, Sysinfo, Utsname, RELEASE, VERSION};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;

fn field(s: &str) -> [u8; 65] {
    let mut f = [0u8; 65];
    let b = s.as_bytes();
    let n = b.len().min(64);
    f[..n].copy_from_slice(&b[..n]);
    f
}

/// uname(2)
pub fn uname(t: &mut Task, buf: UserAddr) -> SysResult {
    let host = t.kernel.hostname.lock().unwrap().clone();
    let u = Utsname {
        sysname: field("Linux"),
        nodename: field(&host),
        release: field(RELEASE),
        version: field(VERSION),
        machine: field("x86_64"),
        domainname: field("(none)"),
    };
    t.mm.write_obj(buf, &u)?;
    Ok(0)
}

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
