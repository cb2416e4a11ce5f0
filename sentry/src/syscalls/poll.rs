//! Waiting for readiness: poll/ppoll, select/pselect6, epoll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fd::nofile_limit;
use super::signal::{apply_temp_mask, read_temp_mask};
use super::{Fd, Flags};
use crate::abi::{Errno, SysResult, Timespec, Timeval};
use crate::kernel::epoll::wait_ready;
use crate::kernel::task::Restart;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::vfs::epoll::Epoll;
use crate::vfs::{FileKind, OpenFile};

fn deadline_ms(ms: i32) -> Option<Instant> {
    (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64))
}

fn deadline_ts(t: &Task, ts: UserAddr) -> Result<Option<Instant>, Errno> {
    if ts.is_null() {
        return Ok(None);
    }
    let ts: Timespec = t.mm.read_obj(ts)?;
    Ok(Some(
        Instant::now() + Duration::from_nanos(ts.to_nanos()?.min(u64::MAX as u128) as u64),
    ))
}

/// Writes the time left until `deadline` back to the caller's timeout, as Linux's
/// poll_select_finish does for select, pselect6 and ppoll whatever the outcome. A timeout
/// that cannot be written back leaves the result alone, except that an interrupted call
/// is then not restarted (its timeout could not be updated).
fn finish_timeout(
    t: &mut Task,
    addr: UserAddr,
    deadline: Option<Instant>,
    as_timeval: bool,
    r: SysResult,
) -> SysResult {
    let Some(d) = deadline else {
        return r;
    };
    let left = d.saturating_duration_since(Instant::now());
    let written = if as_timeval {
        let tv = Timeval {
            tv_sec: left.as_secs() as i64,
            tv_usec: left.subsec_micros() as i64,
        };
        t.mm.write_obj(addr, &tv)
    } else {
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        t.mm.write_obj(addr, &ts)
    };
    if written.is_err() && r == Err(Errno::EINTR) {
        t.restart = None;
    }
    r
}

/// `struct pollfd`.
#[derive(
    Debug, Clone, Copy, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

fn do_poll(t: &mut Task, fds: UserAddr, nfds: u32, deadline: Option<Instant>) -> SysResult {
    if nfds as u64 > nofile_limit(t).max(1024) {
        return Err(Errno::EINVAL);
    }
    let mut pfds: Vec<PollFd> = t.mm.read_slice(fds, nfds as usize)?;
    let files: Vec<Option<Arc<OpenFile>>> = pfds
        .iter()
        .map(|p| (p.fd >= 0).then(|| t.fds.get(p.fd).ok()).flatten())
        .collect();
    let watched: Vec<Arc<OpenFile>> = files.iter().flatten().cloned().collect();
    let always = (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as u32;
    let scan = |pfds: &mut [PollFd]| {
        let mut n = 0;
        for (p, f) in pfds.iter_mut().zip(&files) {
            p.revents = 0;
            if p.fd < 0 {
                continue;
            }
            let r = match f {
                None => libc::POLLNVAL as u32,
                Some(f) => f.ops().readiness() & (p.events as u16 as u32 | always),
            };
            p.revents = r as i16;
            if r != 0 {
                n += 1;
            }
        }
        n
    };
    let found = wait_ready(t, &watched, deadline, |_| {
        let n = scan(&mut pfds);
        (n > 0).then_some(n)
    });
    let n = match found {
        Ok(Some(n)) => n,
        Ok(None) => 0,
        Err(e) => {
            t.restart = Some(Restart::NoHand);
            return Err(e);
        }
    };
    t.mm.write_bytes(fds, zerocopy::IntoBytes::as_bytes(pfds.as_slice()))?;
    Ok(n as u64)
}

/// poll(2)
pub fn poll(t: &mut Task, fds: UserAddr, nfds: u32, timeout: i32) -> SysResult {
    do_poll(t, fds, nfds, deadline_ms(timeout))
}

/// ppoll(2)
pub fn ppoll(
    t: &mut Task,
    fds: UserAddr,
    nfds: u32,
    tsp: UserAddr,
    sigmask: UserAddr,
    sigsetsize: usize,
) -> SysResult {
    let deadline = deadline_ts(t, tsp)?;
    let mask = read_temp_mask(t, sigmask, sigsetsize)?;
    apply_temp_mask(t, mask);
    let r = do_poll(t, fds, nfds, deadline);
    finish_timeout(t, tsp, deadline, false, r)
}

fn read_fdset(t: &Task, addr: UserAddr, nfds: usize) -> Result<Option<Vec<u64>>, Errno> {
    if addr.is_null() {
        return Ok(None);
    }
    Ok(Some(t.mm.read_slice(addr, nfds.div_ceil(64))?))
}

fn do_select(
    t: &mut Task,
    nfds: i32,
    sets: [UserAddr; 3],
    deadline: Option<Instant>,
) -> Result<(u64, Option<Instant>), Errno> {
    if nfds < 0 || nfds as u64 > nofile_limit(t).max(1024) {
        return Err(Errno::EINVAL);
    }
    let n = nfds as usize;
    let ins: Vec<Option<Vec<u64>>> = sets
        .iter()
        .map(|&a| read_fdset(t, a, n))
        .collect::<Result<_, _>>()?;
    let mut files: Vec<(usize, Arc<OpenFile>)> = Vec::new();
    for fd in 0..n {
        let wanted = ins.iter().any(|s| {
            s.as_ref()
                .is_some_and(|v| v[fd / 64] & (1 << (fd % 64)) != 0)
        });
        if wanted {
            files.push((fd, t.fds.get(fd as i32)?));
        }
    }
    let watched: Vec<Arc<OpenFile>> = files.iter().map(|(_, f)| f.clone()).collect();
    let rmask = (libc::POLLIN | libc::POLLRDNORM | libc::POLLHUP | libc::POLLERR) as u32;
    let wmask = (libc::POLLOUT | libc::POLLWRNORM | libc::POLLERR) as u32;
    let emask = libc::POLLPRI as u32;
    let words = n.div_ceil(64);
    let scan = |_: &mut Task| {
        let mut outs = vec![vec![0u64; words]; 3];
        let mut count = 0u64;
        for (fd, f) in &files {
            let r = f.ops().readiness();
            for (i, m) in [rmask, wmask, emask].iter().enumerate() {
                let asked = ins[i]
                    .as_ref()
                    .is_some_and(|v| v[fd / 64] & (1 << (fd % 64)) != 0);
                if asked && r & m != 0 {
                    outs[i][fd / 64] |= 1 << (fd % 64);
                    count += 1;
                }
            }
        }
        (count > 0).then_some((count, outs))
    };
    let (count, outs) = match wait_ready(t, &watched, deadline, scan) {
        Ok(Some(v)) => v,
        Ok(None) => (0, vec![vec![0u64; words]; 3]),
        Err(e) => {
            t.restart = Some(Restart::NoHand);
            return Err(e);
        }
    };
    for (i, a) in sets.iter().enumerate() {
        if !a.is_null() && words > 0 {
            t.mm.write_bytes(*a, zerocopy::IntoBytes::as_bytes(outs[i].as_slice()))?;
        }
    }
    Ok((count, deadline))
}

/// select(2)
pub fn select(
    t: &mut Task,
    nfds: i32,
    r: UserAddr,
    w: UserAddr,
    e: UserAddr,
    timeout: UserAddr,
) -> SysResult {
    let deadline = if timeout.is_null() {
        None
    } else {
        let tv: Timeval = t.mm.read_obj(timeout)?;
        if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
            return Err(Errno::EINVAL);
        }
        Some(Instant::now() + Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
    };
    let res = do_select(t, nfds, [r, w, e], deadline).map(|(count, _)| count);
    finish_timeout(t, timeout, deadline, true, res)
}

/// pselect6(2): the sixth argument points to { const sigset_t *ss; size_t ss_len; }.
pub fn pselect6(
    t: &mut Task,
    nfds: i32,
    r: UserAddr,
    w: UserAddr,
    e: UserAddr,
    timeout: UserAddr,
    sig: UserAddr,
) -> SysResult {
    let deadline = deadline_ts(t, timeout)?;
    let mask = if sig.is_null() {
        None
    } else {
        let [ptr, len]: [u64; 2] = t.mm.read_obj(sig)?;
        read_temp_mask(t, UserAddr(ptr), len as usize)?
    };
    apply_temp_mask(t, mask);
    let res = do_select(t, nfds, [r, w, e], deadline).map(|(count, _)| count);
    finish_timeout(t, timeout, deadline, false, res)
}

/// epoll_create1(2)
pub fn epoll_create1(t: &mut Task, flags: Flags) -> SysResult {
    if flags.0 & !(libc::O_CLOEXEC as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = OpenFile::of_kind(
        FileKind::Epoll(Arc::new(Epoll::default())),
        libc::O_RDWR as u32,
    );
    let limit = nofile_limit(t);
    Ok(t.fds.install(f, 0, flags.0 != 0, limit)? as u64)
}

/// epoll_create(2)
pub fn epoll_create(t: &mut Task, size: i32) -> SysResult {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    epoll_create1(t, Flags(0))
}

/// `struct epoll_event` (packed on x86-64).
fn read_event(t: &Task, addr: UserAddr) -> Result<(u32, u64), Errno> {
    let b = t.mm.read_bytes(addr, 12)?;
    Ok((
        u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
        u64::from_le_bytes(b[4..12].try_into().expect("8 bytes")),
    ))
}

/// epoll_ctl(2)
pub fn epoll_ctl(t: &mut Task, epfd: Fd, op: i32, fd: Fd, event: UserAddr) -> SysResult {
    let ep = t.fds.get(epfd.0)?;
    let target = t.fds.get(fd.0)?;
    if Arc::ptr_eq(&ep, &target) {
        return Err(Errno::EINVAL);
    }
    let FileKind::Epoll(epoll) = ep.kind() else {
        return Err(Errno::EINVAL);
    };
    if !target.ops().pollable() {
        return Err(Errno::EPERM);
    }
    let (events, data) = if op == libc::EPOLL_CTL_DEL {
        (0, 0)
    } else {
        read_event(t, event)?
    };
    epoll.ctl(op, fd.0, &target, events, data)?;
    Ok(0)
}

fn do_epoll_wait(
    t: &mut Task,
    epfd: Fd,
    events: UserAddr,
    max: i32,
    deadline: Option<Instant>,
) -> SysResult {
    if max <= 0 || max as usize > (i32::MAX as usize / 12) {
        return Err(Errno::EINVAL);
    }
    let ep = t.fds.get(epfd.0)?;
    let FileKind::Epoll(epoll) = ep.kind() else {
        return Err(Errno::EINVAL);
    };
    let files = epoll.files();
    let got = match wait_ready(t, &files, deadline, |_| {
        let v = epoll.collect(max as usize);
        (!v.is_empty()).then_some(v)
    }) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => {
            t.restart = Some(Restart::NoHand);
            return Err(e);
        }
    };
    let mut out = Vec::with_capacity(got.len() * 12);
    for (ev, data) in &got {
        out.extend_from_slice(&ev.to_le_bytes());
        out.extend_from_slice(&data.to_le_bytes());
    }
    if !out.is_empty() {
        t.mm.write_bytes(events, &out)?;
    }
    Ok(got.len() as u64)
}

/// epoll_wait(2)
pub fn epoll_wait(t: &mut Task, epfd: Fd, events: UserAddr, max: i32, timeout: i32) -> SysResult {
    do_epoll_wait(t, epfd, events, max, deadline_ms(timeout))
}

/// epoll_pwait(2)
pub fn epoll_pwait(
    t: &mut Task,
    epfd: Fd,
    events: UserAddr,
    max: i32,
    timeout: i32,
    sigmask: UserAddr,
    sigsetsize: usize,
) -> SysResult {
    let mask = read_temp_mask(t, sigmask, sigsetsize)?;
    apply_temp_mask(t, mask);
    do_epoll_wait(t, epfd, events, max, deadline_ms(timeout))
}

/// epoll_pwait2(2): epoll_pwait with a `struct timespec` timeout (NULL waits without end;
/// an invalid one is EINVAL). Unlike ppoll, the time left is not written back.
pub fn epoll_pwait2(
    t: &mut Task,
    epfd: Fd,
    events: UserAddr,
    max: i32,
    timeout: UserAddr,
    sigmask: UserAddr,
    sigsetsize: usize,
) -> SysResult {
    let deadline = deadline_ts(t, timeout)?;
    let mask = read_temp_mask(t, sigmask, sigsetsize)?;
    apply_temp_mask(t, mask);
    do_epoll_wait(t, epfd, events, max, deadline)
}
