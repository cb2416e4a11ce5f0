//! Calls that move data between files without the caller's buffers: sendfile, splice, tee,
//! vmsplice, copy_file_range.
//!
//! Data passes through a bounded sentry buffer ([`CHUNK`] at a time) with the ordinary file
//! operations; pipes are reached through [`PipeFile`], whose lock is only held inside each of
//! its calls, so no lock is held across a wait and every wait is interruptible. A transfer
//! that a signal or an error stops after moving data returns the count moved, as Linux does.
//! Bytes taken from a pipe that the destination did not accept go back to the pipe's front.

use std::os::fd::BorrowedFd;
use std::sync::Arc;

use super::Fd;
use crate::abi::{Errno, SysResult};
use crate::kernel::Task;
use crate::memory::MemoryFile;
use crate::mm::usermem::{IoDst, IoSrc, UserAddr, UserIo};
use crate::vfs::{Context as _, FileKind, FileType, OpenFile, PipeFile, Stat};

/// The most one step moves through the sentry.
const CHUNK: usize = 64 * 1024;
/// Linux's MAX_RW_COUNT: longer requests complete short.
const MAX_RW: usize = 0x7fff_f000;

const SPLICE_F_NONBLOCK: u32 = 0x02;
const SPLICE_F_ALL: u32 = 0x0f;

/// A read's destination in sentry memory.
struct BufDst {
    buf: Vec<u8>,
    want: usize,
}

impl BufDst {
    fn new(want: usize) -> BufDst {
        BufDst {
            buf: Vec::with_capacity(want),
            want,
        }
    }
}

fn host_err(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

impl IoDst for BufDst {
    fn remaining(&self) -> usize {
        self.want - self.buf.len()
    }

    fn copy_from(&mut self, src: &[u8]) -> Result<usize, Errno> {
        let n = src.len().min(self.remaining());
        self.buf.extend_from_slice(&src[..n]);
        Ok(n)
    }

    fn copy_from_memory(&mut self, mf: &MemoryFile, off: u64, len: usize) -> Result<usize, Errno> {
        let n = len.min(self.remaining());
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        mf.read(off, &mut self.buf[start..]);
        Ok(n)
    }

    /// `nowait` asks the host not to block; a host read at the fd's own offset has no way
    /// to say it, so it may wait (only files without an offset of their own get here so).
    fn read_host(
        &mut self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        nowait: bool,
    ) -> Result<usize, Errno> {
        let start = self.buf.len();
        self.buf.resize(self.want, 0);
        let dst = &mut self.buf[start..];
        let r = match file_off {
            Some(off) if nowait => rustix::io::preadv2(
                fd,
                &mut [std::io::IoSliceMut::new(dst)],
                off,
                rustix::io::ReadWriteFlags::NOWAIT,
            ),
            Some(off) => rustix::io::pread(fd, dst, off),
            None => rustix::io::read(fd, dst),
        };
        let n = r.unwrap_or(0);
        self.buf.truncate(start + n);
        r.map_err(host_err)
    }
}

/// A write's source in sentry memory.
struct BufSrc<'a> {
    data: &'a [u8],
    pos: usize,
}

impl IoSrc for BufSrc<'_> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn copy_to(&mut self, dst: &mut [u8]) -> Result<usize, Errno> {
        let n = dst.len().min(self.remaining());
        dst[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn copy_to_memory(&mut self, mf: &MemoryFile, off: u64, len: usize) -> Result<usize, Errno> {
        let n = len.min(self.remaining());
        mf.write(off, &self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn write_host(
        &mut self,
        fd: BorrowedFd<'_>,
        file_off: Option<u64>,
        nowait: bool,
    ) -> Result<usize, Errno> {
        let src = &self.data[self.pos..];
        let r = match file_off {
            Some(off) if nowait => rustix::io::pwritev2(
                fd,
                &[std::io::IoSlice::new(src)],
                off,
                rustix::io::ReadWriteFlags::NOWAIT,
            ),
            Some(off) => rustix::io::pwrite(fd, src, off),
            None => rustix::io::write(fd, src),
        };
        let n = r.map_err(host_err)?;
        self.pos += n;
        Ok(n)
    }
}

fn pipe_of(f: &OpenFile) -> Option<&Arc<dyn PipeFile>> {
    match f.kind() {
        FileKind::Pipe(p) => Some(p),
        _ => None,
    }
}

/// Reads up to `max` bytes of `f` at `off` (None: a file without an offset).
fn read_chunk(t: &mut Task, f: &OpenFile, max: usize, off: Option<u64>) -> Result<Vec<u8>, Errno> {
    let mut dst = BufDst::new(max);
    match off {
        Some(o) => f.read_at(t, &mut dst, o)?,
        None => f.read(t, &mut dst)?,
    };
    Ok(dst.buf)
}

/// Writes `data` to `f` at `off` (None: at the file's own offset, or O_APPEND's end).
fn write_chunk(t: &mut Task, f: &OpenFile, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
    let data = if f.ops().seekable() {
        let pos = off.unwrap_or_else(|| *f.offset.lock().unwrap());
        &data[..fsize_limit(t, pos, data.len())?]
    } else {
        data
    };
    let mut src = BufSrc { data, pos: 0 };
    match off {
        Some(o) => f.write_at(t, &mut src, o),
        None => f.write(t, &mut src),
    }
}

/// How much of a `len`-byte write at `pos` RLIMIT_FSIZE allows, as Linux's
/// generic_write_check_limits: a write that starts at or past the limit raises SIGXFSZ and
/// fails with EFBIG, one that crosses it is shortened.
pub(super) fn fsize_limit(t: &mut Task, pos: u64, len: usize) -> Result<usize, Errno> {
    let limit = t.tg.limits.lock().unwrap()[libc::RLIMIT_FSIZE as usize].cur;
    if limit == libc::RLIM_INFINITY || len == 0 {
        return Ok(len);
    }
    if pos >= limit {
        t.raise_signal(libc::SIGXFSZ);
        return Err(Errno::EFBIG);
    }
    Ok(len.min((limit - pos) as usize))
}

/// The outcome of a transfer that may stop part-way: the count when something moved (the
/// call is then not restarted), else the error.
fn partial(t: &mut Task, done: usize, e: Errno) -> SysResult {
    if done > 0 {
        t.restart = None;
        Ok(done as u64)
    } else {
        Err(e)
    }
}

/// An optional `loff_t *` argument.
fn read_offset(t: &Task, p: UserAddr) -> Result<Option<i64>, Errno> {
    if p.is_null() {
        return Ok(None);
    }
    Ok(Some(t.mm.read_obj::<i64>(p)?))
}

/// Where a seekable file's transfer of `len` bytes starts: the given offset or the file's
/// own. As Linux's rw_verify_area, a negative start or an end past the largest offset is
/// EINVAL.
fn start_pos(f: &OpenFile, off: Option<i64>, len: usize) -> Result<u64, Errno> {
    let pos = match off {
        Some(o) if o < 0 => return Err(Errno::EINVAL),
        Some(o) => o as u64,
        None => *f.offset.lock().unwrap(),
    };
    if pos
        .checked_add(len as u64)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err(Errno::EINVAL);
    }
    Ok(pos)
}

/// Records where a seekable file's transfer ended: in the caller's offset or the file's.
fn end_pos(t: &Task, f: &OpenFile, ptr: UserAddr, pos: u64) -> Result<(), Errno> {
    if ptr.is_null() {
        *f.offset.lock().unwrap() = pos;
        Ok(())
    } else {
        t.mm.write_obj(ptr, &(pos as i64))
    }
}

fn stat_of(f: &OpenFile) -> Result<Stat, Errno> {
    match &f.dentry {
        Some(d) => d.inode.stat(),
        None => f.ops().stat(),
    }
}

/// Moves up to `len` bytes from `input` (a file; at `pos` when it has an offset) into the
/// pipe `out` (Linux's splice_file_to_pipe): waits for room once, then fills what fits.
fn file_to_pipe(
    t: &mut Task,
    input: &OpenFile,
    pos: Option<u64>,
    out: &Arc<dyn PipeFile>,
    len: usize,
    nonblock: bool,
) -> Result<usize, Errno> {
    let room = out.wait_room(t, nonblock)?;
    let data = read_chunk(t, input, len.min(room).min(CHUNK), pos)?;
    out.push(&data);
    Ok(data.len())
}

/// Moves up to `len` bytes from the pipe `input` to `out` (a file; at `pos` when it has an
/// offset), as Linux's splice to a file: waits for data only before the first byte, then
/// stops when the pipe is empty.
fn pipe_to_file(
    t: &mut Task,
    input: &Arc<dyn PipeFile>,
    out: &OpenFile,
    mut pos: Option<u64>,
    len: usize,
    nonblock: bool,
) -> Result<usize, Errno> {
    let mut done = 0usize;
    while done < len {
        let avail = match input.wait_data(t, nonblock || done > 0) {
            Ok(n) => n,
            Err(Errno::EAGAIN) if done > 0 => break,
            Err(e) => return partial(t, done, e).map(|n| n as usize),
        };
        if avail == 0 {
            break;
        }
        let data = input.take((len - done).min(avail).min(CHUNK), true);
        match write_chunk(t, out, &data, pos) {
            Ok(n) => {
                input.unread(&data[n..]);
                done += n;
                pos = pos.map(|p| p + n as u64);
                if n < data.len() {
                    break;
                }
            }
            Err(e) => {
                input.unread(&data);
                return partial(t, done, e).map(|n| n as usize);
            }
        }
    }
    Ok(done)
}

/// splice(2)
pub fn splice(
    t: &mut Task,
    fd_in: Fd,
    off_in: UserAddr,
    fd_out: Fd,
    off_out: UserAddr,
    len: usize,
    flags: u32,
) -> SysResult {
    if len == 0 {
        return Ok(0);
    }
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let input = t.fds.get(fd_in.0)?;
    let out = t.fds.get(fd_out.0)?;
    let (ipipe, opipe) = (pipe_of(&input), pipe_of(&out));
    if (ipipe.is_some() && !off_in.is_null()) || (opipe.is_some() && !off_out.is_null()) {
        return Err(Errno::ESPIPE);
    }
    let oin = read_offset(t, off_in)?;
    let oout = read_offset(t, off_out)?;
    if !input.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    let len = len.min(MAX_RW);
    let mut nonblock = flags & SPLICE_F_NONBLOCK != 0;
    match (ipipe, opipe) {
        (Some(ip), Some(op)) => {
            if ip.pipe_id() == op.pipe_id() {
                return Err(Errno::EINVAL);
            }
            nonblock |= input.nonblocking() || out.nonblocking();
            let avail = ip.wait_data(t, nonblock)?;
            if avail == 0 {
                return Ok(0);
            }
            let room = op.wait_room(t, nonblock)?;
            let data = ip.take(len.min(room), true);
            op.push(&data);
            Ok(data.len() as u64)
        }
        (Some(ip), None) => {
            if oout.is_some() && !out.ops().seekable() {
                return Err(Errno::EINVAL);
            }
            if out.flags() & libc::O_APPEND as u32 != 0 {
                return Err(Errno::EINVAL);
            }
            nonblock |= input.nonblocking();
            let pos = if out.ops().seekable() {
                Some(start_pos(&out, oout, len)?)
            } else {
                None
            };
            let n = pipe_to_file(t, ip, &out, pos, len, nonblock)?;
            if let Some(p) = pos {
                end_pos(t, &out, off_out, p + n as u64)?;
            }
            Ok(n as u64)
        }
        (None, Some(op)) => {
            if oin.is_some() && !input.ops().seekable() {
                return Err(Errno::EINVAL);
            }
            nonblock |= out.nonblocking();
            let pos = if input.ops().seekable() {
                Some(start_pos(&input, oin, len)?)
            } else {
                None
            };
            let n = file_to_pipe(t, &input, pos, op, len, nonblock)?;
            if let Some(p) = pos {
                end_pos(t, &input, off_in, p + n as u64)?;
            }
            Ok(n as u64)
        }
        (None, None) => Err(Errno::EINVAL),
    }
}

/// tee(2): copies from one pipe to another without consuming.
pub fn tee(t: &mut Task, fd_in: Fd, fd_out: Fd, len: usize, flags: u32) -> SysResult {
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let input = t.fds.get(fd_in.0)?;
    let out = t.fds.get(fd_out.0)?;
    if !input.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    let (Some(ip), Some(op)) = (pipe_of(&input), pipe_of(&out)) else {
        return Err(Errno::EINVAL);
    };
    if ip.pipe_id() == op.pipe_id() {
        return Err(Errno::EINVAL);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || input.nonblocking() || out.nonblocking();
    let avail = ip.wait_data(t, nonblock)?;
    let room = op.wait_room(t, nonblock)?;
    let data = ip.take(len.min(avail).min(room), false);
    op.push(&data);
    Ok(data.len() as u64)
}

/// vmsplice(2): the caller's memory into a pipe (a writable end) or out of one.
pub fn vmsplice(t: &mut Task, fd: Fd, iov: UserAddr, nr_segs: usize, flags: u32) -> SysResult {
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get(fd.0)?;
    if !f.writable() && !f.readable() {
        return Err(Errno::EBADF);
    }
    let iovs = t.mm.read_iovecs(iov, nr_segs)?;
    let total = iovs
        .iter()
        .map(|v| v.len as usize)
        .sum::<usize>()
        .min(MAX_RW);
    if total == 0 {
        return Ok(0);
    }
    let p = pipe_of(&f).ok_or(Errno::EBADF)?.clone();
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || f.nonblocking();
    let mm = t.mm.clone();
    if f.writable() {
        let room = p.wait_room(t, nonblock)?;
        let mut src = UserIo::new(&mm, iovs, total.min(room));
        let mut data = vec![0u8; IoSrc::remaining(&src)];
        let mut got = 0;
        while got < data.len() {
            match src.copy_to(&mut data[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            }
        }
        p.push(&data[..got]);
        Ok(got as u64)
    } else {
        let avail = p.wait_data(t, nonblock)?;
        let data = p.take(total.min(avail), true);
        let mut dst = UserIo::new(&mm, iovs, total);
        let mut put = 0;
        while put < data.len() {
            match dst.copy_from(&data[put..]) {
                Ok(0) => break,
                Ok(n) => put += n,
                Err(e) if put == 0 => {
                    p.unread(&data);
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        p.unread(&data[put..]);
        Ok(put as u64)
    }
}

/// sendfile(2)
pub fn sendfile(t: &mut Task, out_fd: Fd, in_fd: Fd, offset: UserAddr, count: usize) -> SysResult {
    let input = t.fds.get(in_fd.0)?;
    if !input.readable() {
        return Err(Errno::EBADF);
    }
    let oin = read_offset(t, offset)?;
    if oin.is_some() && !input.ops().seekable() {
        return Err(Errno::ESPIPE);
    }
    let out = t.fds.get(out_fd.0)?;
    if !out.writable() {
        return Err(Errno::EBADF);
    }
    // Linux reads the source with splice_read, which pipes lack.
    if pipe_of(&input).is_some() {
        return Err(Errno::EINVAL);
    }
    if pipe_of(&out).is_none() && out.flags() & libc::O_APPEND as u32 != 0 {
        return Err(Errno::EINVAL);
    }
    let count = count.min(MAX_RW);
    let seekable = input.ops().seekable();
    let mut pos = if seekable {
        start_pos(&input, oin, count)?
    } else {
        0
    };
    if let Some(op) = pipe_of(&out) {
        // As Linux's splice_file_to_pipe: one wait for room, then what fits.
        let nonblock = input.nonblocking() || out.nonblocking();
        let n = file_to_pipe(t, &input, seekable.then_some(pos), op, count, nonblock)?;
        if seekable {
            end_pos(t, &input, offset, pos + n as u64)?;
        }
        return Ok(n as u64);
    }
    let mut done = 0usize;
    let mut stop = None;
    while done < count {
        let want = (count - done).min(CHUNK);
        let data = match read_chunk(t, &input, want, seekable.then_some(pos)) {
            Ok(d) => d,
            Err(e) => {
                stop = Some(e);
                break;
            }
        };
        if data.is_empty() {
            break;
        }
        let n = match write_chunk(t, &out, &data, None) {
            Ok(n) => n,
            Err(e) => {
                stop = Some(e);
                break;
            }
        };
        done += n;
        pos += n as u64;
        if n < data.len() {
            break;
        }
    }
    if seekable {
        end_pos(t, &input, offset, pos)?;
    }
    match stop {
        Some(e) => partial(t, done, e),
        None => Ok(done as u64),
    }
}

/// copy_file_range(2) between regular files of one filesystem (Linux 5.19+ refuses copies
/// across filesystems that have no copy operation of their own with EXDEV).
pub fn copy_file_range(
    t: &mut Task,
    fd_in: Fd,
    off_in: UserAddr,
    fd_out: Fd,
    off_out: UserAddr,
    len: usize,
    flags: u32,
) -> SysResult {
    let input = t.fds.get(fd_in.0)?;
    let out = t.fds.get(fd_out.0)?;
    let oin = read_offset(t, off_in)?;
    let oout = read_offset(t, off_out)?;
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let (sin, sout) = (stat_of(&input)?, stat_of(&out)?);
    let (kin, kout) = (
        FileType::from_mode(sin.mode),
        FileType::from_mode(sout.mode),
    );
    if kin == FileType::Directory || kout == FileType::Directory {
        return Err(Errno::EISDIR);
    }
    if kin != FileType::Regular || kout != FileType::Regular {
        return Err(Errno::EINVAL);
    }
    if !input.readable() || !out.writable() || out.flags() & libc::O_APPEND as u32 != 0 {
        return Err(Errno::EBADF);
    }
    let len = len.min(MAX_RW);
    let pin = start_pos(&input, oin, len)?;
    let pout = start_pos(&out, oout, len)?;
    // Only what the source holds is copied.
    let size = sin.size.max(0) as u64;
    let len = if pin >= size {
        0
    } else {
        len.min((size - pin) as usize)
    };
    if sin.dev == sout.dev
        && sin.ino == sout.ino
        && pin < pout + len as u64
        && pout < pin + len as u64
    {
        return Err(Errno::EINVAL);
    }
    if sin.dev != sout.dev {
        return Err(Errno::EXDEV);
    }
    let mut done = 0usize;
    let mut stop = None;
    while done < len {
        let want = (len - done).min(CHUNK);
        let data = match read_chunk(t, &input, want, Some(pin + done as u64)) {
            Ok(d) => d,
            Err(e) => {
                stop = Some(e);
                break;
            }
        };
        if data.is_empty() {
            break;
        }
        let n = match write_chunk(t, &out, &data, Some(pout + done as u64)) {
            Ok(n) => n,
            Err(e) => {
                stop = Some(e);
                break;
            }
        };
        done += n;
        if n < data.len() {
            break;
        }
    }
    end_pos(t, &input, off_in, pin + done as u64)?;
    end_pos(t, &out, off_out, pout + done as u64)?;
    match stop {
        Some(e) => partial(t, done, e),
        None => Ok(done as u64),
    }
}
