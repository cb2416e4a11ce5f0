//! A FUSE connection (the queue of requests between the filesystem and its daemon) and the
//! `/dev/fuse` files the daemon reads requests from and writes replies to.
//!
//! A request is queued, read by the daemon (it is then "sent"), and answered by a reply
//! whose `unique` names it. Callers block until the reply comes, the connection ends
//! (ENOTCONN) or, for a caller with a task, a signal arrives: a request the daemon has not
//! read yet is then withdrawn (EINTR); one it has read gets a `FUSE_INTERRUPT` and the caller
//! waits on for its reply, as Linux does.
//!
//! Every wait is killable ([`crate::waiter::wait_killable`]), also a caller's without a
//! task (a page fill in fault handling, on the faulting task's thread): once the thread's
//! task is dying (SIGKILL, group exit), the wait ends with EINTR; the request is withdrawn
//! if unread, else interrupted and left to complete in the background (its reply dropped).
//! Linux waits on uninterruptibly for a request the daemon has read; the sentry does not,
//! so a daemon that never answers cannot keep a killed task.
//!
//! The connection ends (aborts) when the filesystem is unmounted or the last device file
//! attached to it is closed (the daemon died): every waiting call fails with ENOTCONN, later
//! calls too, and the daemon's reads fail with ENODEV.
//!
//! # Lock order
//! `Conn::state` is a leaf: the wait queues are notified after it is released.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use zerocopy::IntoBytes;

use super::node::FuseNode;
use super::proto::{self, op, InHeader, InitIn, InitOut, OutHeader};
use crate::abi::Errno;
use crate::vfs::{Context, FileOps, IoDst, IoSrc, OpenFile, Stat};
use crate::waiter::{wait_killable, WaitQueue, Wake};

/// Who makes a request: the IDs the daemon sees in its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requester {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// Where the `FUSE_INIT` exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sent or queued; other requests wait.
    Pending,
    /// Answered with a version the sentry speaks.
    Ready,
    /// Answered with an error or a major version other than 7: calls fail with
    /// ECONNREFUSED, as Linux's `conn_error`.
    Refused,
}

/// What the daemon said in `FUSE_INIT`.
#[derive(Debug, Clone, Copy)]
pub struct Negotiated {
    pub minor: u32,
    pub max_write: u32,
}

/// The state of a request that expects a reply.
enum Slot {
    /// A caller waits for it.
    Waiting,
    /// Nobody waits (FLUSH and RELEASE of a closed file): the reply is dropped.
    Background,
    /// The reply (its body) or the error it ended with, for the waiting caller.
    Done(Result<Vec<u8>, Errno>),
}

/// A request not yet read by the daemon.
struct Queued {
    unique: u64,
    bytes: Vec<u8>,
}

/// Guarded by `Conn::state`.
struct State {
    /// Requests to read, in order (interrupts go first).
    queue: VecDeque<Queued>,
    /// Requests that expect a reply, by `unique` (queued or sent).
    slots: HashMap<u64, Slot>,
    next_unique: u64,
    phase: Phase,
    negotiated: Negotiated,
    aborted: bool,
    /// Device files attached to the connection (the mount's and its clones).
    devices: usize,
    /// Opcodes the daemon answered with ENOSYS, not sent again (Linux's `no_*` flags).
    unimplemented: HashSet<u32>,
}

/// The opcodes whose ENOSYS is remembered, as Linux remembers them.
const REMEMBERED_ENOSYS: [u32; 7] = [
    op::GETXATTR,
    op::LISTXATTR,
    op::SETXATTR,
    op::REMOVEXATTR,
    op::FLUSH,
    op::INTERRUPT,
    op::RENAME2,
];

/// One FUSE connection.
pub struct Conn {
    state: Mutex<State>,
    /// Notified when a request is queued or the connection ends (the devices' readiness).
    requests: WaitQueue,
    /// Notified when a reply arrives, INIT completes or the connection ends (every caller
    /// blocks here).
    replies: WaitQueue,
    /// The root of the filesystem the connection serves, while it is mounted.
    root: Mutex<Weak<FuseNode>>,
}

impl Conn {
    /// A new connection with one device file attached and `FUSE_INIT` queued.
    fn new() -> Arc<Conn> {
        let conn = Arc::new(Conn {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                slots: HashMap::new(),
                next_unique: 2,
                phase: Phase::Pending,
                negotiated: Negotiated {
                    minor: proto::KERNEL_MINOR,
                    max_write: 4096,
                },
                aborted: false,
                devices: 1,
                unimplemented: HashSet::new(),
            }),
            requests: WaitQueue::new(),
            replies: WaitQueue::new(),
            root: Mutex::new(Weak::new()),
        });
        let init = InitIn {
            major: proto::KERNEL_MAJOR,
            minor: proto::KERNEL_MINOR,
            max_readahead: 128 << 10,
            flags: proto::INIT_BIG_WRITES,
        };
        let mut st = conn.lock();
        let unique = st.enqueue(op::INIT, 0, Requester::default(), init.as_bytes());
        st.slots.insert(unique, Slot::Background);
        drop(st);
        conn
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_all(&self) {
        self.replies.notify(Wake::Any);
        self.requests.notify(Wake::Any);
    }

    /// Records the root of the filesystem the connection serves.
    pub fn set_root(&self, root: &Arc<FuseNode>) {
        *self.root.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(root);
    }

    /// The root of the filesystem the connection serves, if it is still mounted.
    pub fn root(&self) -> Option<Arc<FuseNode>> {
        self.root
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade()
    }

    /// What `FUSE_INIT` settled (defaults until it is answered).
    pub fn negotiated(&self) -> Negotiated {
        self.lock().negotiated
    }

    /// Ends the connection: waiting calls fail with ENOTCONN, the daemon's reads with ENODEV.
    pub fn abort(&self) {
        let mut st = self.lock();
        if st.aborted {
            return;
        }
        st.aborted = true;
        st.queue.clear();
        st.slots.retain(|_, s| !matches!(s, Slot::Background));
        for slot in st.slots.values_mut() {
            *slot = Slot::Done(Err(Errno::ENOTCONN));
        }
        drop(st);
        log::debug!("fuse: connection aborted");
        self.wake_all();
    }

    /// Sends a request that gets no reply (FORGET).
    pub fn send_noreply(&self, opcode: u32, nodeid: u64, body: &[u8]) {
        let mut st = self.lock();
        if st.aborted || st.phase != Phase::Ready {
            return;
        }
        st.enqueue(opcode, nodeid, Requester::default(), body);
        drop(st);
        self.requests.notify(Wake::Readable);
    }

    /// Sends a request whose reply nobody waits for (FLUSH, RELEASE of a closed file).
    pub fn send_background(&self, opcode: u32, nodeid: u64, who: Requester, body: &[u8]) {
        let mut st = self.lock();
        if st.aborted || st.phase != Phase::Ready || st.unimplemented.contains(&opcode) {
            return;
        }
        let unique = st.enqueue(opcode, nodeid, who, body);
        st.slots.insert(unique, Slot::Background);
        drop(st);
        self.requests.notify(Wake::Readable);
    }

    /// Sends a request and waits for its reply's body. With `t`, a signal interrupts the
    /// wait; without, only the death of the thread's task (see the module documentation).
    ///
    /// # Errors
    /// ENOTCONN when the connection ends, ECONNREFUSED after a refused INIT, ENOSYS for an
    /// operation the daemon said it lacks, EINTR, and the daemon's own errors.
    pub fn call(
        &self,
        t: Option<&mut dyn Context>,
        opcode: u32,
        nodeid: u64,
        who: Requester,
        body: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        match t {
            Some(t) => self.call_interruptible(t, opcode, nodeid, who, body),
            None => {
                self.wait_ready()?;
                let unique = self.submit(self.lock(), opcode, nodeid, who, body)?;
                self.wait_reply(unique, false)
            }
        }
    }

    fn call_interruptible(
        &self,
        t: &mut dyn Context,
        opcode: u32,
        nodeid: u64,
        who: Requester,
        body: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        t.block_on(&[&self.replies], None, || {
            let st = self.lock();
            match (st.aborted, st.phase) {
                (true, _) => Some(Err(Errno::ENOTCONN)),
                (false, Phase::Pending) => None,
                (false, Phase::Refused) => Some(Err(Errno::ECONNREFUSED)),
                (false, Phase::Ready) => Some(Ok(())),
            }
        })?;
        let unique = self.submit(self.lock(), opcode, nodeid, who, body)?;
        let waited = t.block_on(&[&self.replies], None, || {
            let mut st = self.lock();
            st.take_reply(unique)
        });
        match waited {
            Err(Errno::EINTR) => self.interrupted(unique),
            other => other,
        }
    }

    /// A signal came while `unique` waited: withdraw it if unread, else interrupt it.
    fn interrupted(&self, unique: u64) -> Result<Vec<u8>, Errno> {
        let mut st = self.lock();
        if let Some(r) = st.withdraw(unique) {
            return r;
        }
        self.interrupt(st, unique);
        self.wait_reply(unique, true)
    }

    /// Queues a `FUSE_INTERRUPT` for the sent request `unique`, unless the daemon said it
    /// has none.
    fn interrupt(&self, mut st: MutexGuard<'_, State>, unique: u64) {
        if !st.unimplemented.contains(&op::INTERRUPT) {
            st.queue_interrupt(unique);
            drop(st);
            self.requests.notify(Wake::Readable);
        }
    }

    /// The caller of `unique` is dying: withdraw the request if unread, else interrupt it
    /// (unless it was `interrupted` already) and let it complete in the background. A reply
    /// that came meanwhile is returned.
    fn abandon(&self, unique: u64, interrupted: bool) -> Result<Vec<u8>, Errno> {
        let mut st = self.lock();
        if let Some(r) = st.withdraw(unique) {
            return r;
        }
        st.slots.insert(unique, Slot::Background);
        log::debug!("fuse: request {unique} left to the background (its caller is dying)");
        if !interrupted {
            self.interrupt(st, unique);
        }
        Err(Errno::EINTR)
    }

    /// Blocks (without a task, killably) until INIT is answered.
    fn wait_ready(&self) -> Result<(), Errno> {
        wait_killable(&[&self.replies], || {
            let st = self.lock();
            match (st.aborted, st.phase) {
                (true, _) => Some(Err(Errno::ENOTCONN)),
                (false, Phase::Refused) => Some(Err(Errno::ECONNREFUSED)),
                (false, Phase::Ready) => Some(Ok(())),
                (false, Phase::Pending) => None,
            }
        })
        .unwrap_or(Err(Errno::EINTR))
    }

    /// Queues a request that expects a reply; returns its `unique`.
    fn submit(
        &self,
        mut st: MutexGuard<'_, State>,
        opcode: u32,
        nodeid: u64,
        who: Requester,
        body: &[u8],
    ) -> Result<u64, Errno> {
        if st.aborted {
            return Err(Errno::ENOTCONN);
        }
        if st.unimplemented.contains(&opcode) {
            return Err(Errno::ENOSYS);
        }
        let unique = st.enqueue(opcode, nodeid, who, body);
        st.slots.insert(unique, Slot::Waiting);
        drop(st);
        self.requests.notify(Wake::Readable);
        Ok(unique)
    }

    /// Blocks (without a task, killably) until `unique` is answered or the connection
    /// ends; `interrupted` when a `FUSE_INTERRUPT` went for it already.
    fn wait_reply(&self, unique: u64, interrupted: bool) -> Result<Vec<u8>, Errno> {
        wait_killable(&[&self.replies], || self.lock().take_reply(unique))
            .unwrap_or_else(|_| self.abandon(unique, interrupted))
    }

    /// The daemon reads a request (`read(2)` of `/dev/fuse`).
    fn read_request(
        &self,
        t: &mut dyn Context,
        nonblocking: bool,
        dst: &mut dyn IoDst,
    ) -> Result<usize, Errno> {
        let max_write = self.lock().negotiated.max_write as usize;
        let least = proto::MIN_READ_BUFFER
            .max(std::mem::size_of::<InHeader>() + std::mem::size_of::<proto::IoIn>() + max_write);
        if dst.remaining() < least {
            return Err(Errno::EINVAL);
        }
        let next = |st: &mut State| -> Option<Result<Queued, Errno>> {
            if st.aborted {
                return Some(Err(Errno::ENODEV));
            }
            st.queue.pop_front().map(Ok)
        };
        let req = if nonblocking {
            next(&mut self.lock()).unwrap_or(Err(Errno::EAGAIN))?
        } else {
            t.block_on(&[&self.requests], None, || next(&mut self.lock()))?
        };
        if req.bytes.len() > dst.remaining() {
            self.finish(req.unique, Err(Errno::EIO));
            return Err(Errno::EIO);
        }
        match dst.copy_from(&req.bytes) {
            Ok(n) if n == req.bytes.len() => Ok(n),
            Ok(_) => {
                self.finish(req.unique, Err(Errno::EIO));
                Err(Errno::EFAULT)
            }
            Err(e) => {
                self.finish(req.unique, Err(Errno::EIO));
                Err(e)
            }
        }
    }

    /// Ends request `unique` with `result` (if something waits for it).
    fn finish(&self, unique: u64, result: Result<Vec<u8>, Errno>) {
        let mut st = self.lock();
        if let Some(slot) = st.slots.get_mut(&unique) {
            if matches!(slot, Slot::Background) {
                st.slots.remove(&unique);
            } else {
                *slot = Slot::Done(result);
            }
        }
        drop(st);
        self.replies.notify(Wake::Any);
    }

    /// The daemon writes a reply (`write(2)` of `/dev/fuse`); returns the bytes taken.
    fn write_reply(&self, msg: &[u8]) -> Result<usize, Errno> {
        let hdr: OutHeader = proto::parse(msg).map_err(|_| Errno::EINVAL)?;
        if hdr.len as usize != msg.len() {
            return Err(Errno::EINVAL);
        }
        if hdr.unique == 0 {
            // Notifications (cache invalidation, poll wake-ups): the sentry asks for none.
            return Err(Errno::EINVAL);
        }
        if hdr.error > 0 || hdr.error <= -1000 {
            return Err(Errno::EINVAL);
        }
        let body = &msg[std::mem::size_of::<OutHeader>()..];
        let mut st = self.lock();
        if st.aborted {
            return Err(Errno::ENOENT);
        }
        if hdr.unique & proto::INT_REQ_BIT != 0 {
            // The answer to an interrupt: EAGAIN asks for it again, ENOSYS says never again.
            let target = hdr.unique & !proto::INT_REQ_BIT;
            if hdr.error == -libc::ENOSYS {
                st.unimplemented.insert(op::INTERRUPT);
            } else if hdr.error == -libc::EAGAIN && st.slots.contains_key(&target) {
                st.queue_interrupt(target);
                drop(st);
                self.requests.notify(Wake::Readable);
            }
            return Ok(msg.len());
        }
        if !st.slots.contains_key(&hdr.unique) {
            return Err(Errno::ENOENT);
        }
        let (result, written) = if hdr.error != 0 {
            if !body.is_empty() {
                (Err(Errno::EIO), Err(Errno::EINVAL))
            } else {
                (Err(Errno::from_raw(-hdr.error)), Ok(msg.len()))
            }
        } else {
            (Ok(body.to_vec()), Ok(msg.len()))
        };
        if st.phase == Phase::Pending {
            // The first reply is INIT's (it is the first request, and nothing else is sent
            // before it is answered).
            st.complete_init(&result);
            st.slots.remove(&hdr.unique);
            drop(st);
            self.wake_all();
            return written;
        }
        drop(st);
        self.finish(hdr.unique, result);
        written
    }

    /// The opcode of `unique`'s request answered ENOSYS: remember it for the operations
    /// Linux remembers.
    pub fn note_enosys(&self, opcode: u32) {
        if REMEMBERED_ENOSYS.contains(&opcode) {
            self.lock().unimplemented.insert(opcode);
        }
    }

    fn attach(&self) {
        self.lock().devices += 1;
    }

    fn detach(&self) {
        let mut st = self.lock();
        st.devices -= 1;
        let last = st.devices == 0;
        drop(st);
        if last {
            self.abort();
        }
    }
}

impl State {
    /// Appends a request; returns its `unique` (even: the low bit marks interrupts).
    fn enqueue(&mut self, opcode: u32, nodeid: u64, who: Requester, body: &[u8]) -> u64 {
        let unique = self.next_unique;
        self.next_unique += 2;
        let hdr = InHeader {
            len: (std::mem::size_of::<InHeader>() + body.len()) as u32,
            opcode,
            unique,
            nodeid,
            uid: who.uid,
            gid: who.gid,
            pid: who.pid,
            total_extlen: 0,
            padding: 0,
        };
        let mut bytes = hdr.as_bytes().to_vec();
        bytes.extend_from_slice(body);
        self.queue.push_back(Queued { unique, bytes });
        unique
    }

    fn queue_interrupt(&mut self, target: u64) {
        let unique = target | proto::INT_REQ_BIT;
        let hdr = InHeader {
            len: (std::mem::size_of::<InHeader>() + 8) as u32,
            opcode: op::INTERRUPT,
            unique,
            ..InHeader::default()
        };
        let mut bytes = hdr.as_bytes().to_vec();
        bytes.extend_from_slice(proto::InterruptIn { unique: target }.as_bytes());
        self.queue.push_front(Queued { unique, bytes });
    }

    /// What ends a wait for `unique` that will not go on: the request withdrawn if the
    /// daemon has not read it (EINTR), or its reply if one came; None when it is read and
    /// unanswered.
    fn withdraw(&mut self, unique: u64) -> Option<Result<Vec<u8>, Errno>> {
        if let Some(i) = self.queue.iter().position(|q| q.unique == unique) {
            self.queue.remove(i);
            self.slots.remove(&unique);
            return Some(Err(Errno::EINTR));
        }
        self.take_reply(unique)
    }

    /// The reply of `unique` if it has come (the slot is then freed), or ENOTCONN.
    fn take_reply(&mut self, unique: u64) -> Option<Result<Vec<u8>, Errno>> {
        match self.slots.get(&unique) {
            Some(Slot::Done(_)) => match self.slots.remove(&unique) {
                Some(Slot::Done(r)) => Some(r),
                _ => None,
            },
            Some(_) => None,
            None => Some(Err(Errno::ENOTCONN)),
        }
    }

    /// Settles the protocol from INIT's reply, as Linux's `process_init_reply`.
    fn complete_init(&mut self, reply: &Result<Vec<u8>, Errno>) {
        let out = match reply {
            Ok(body) if body.len() >= proto::COMPAT_INIT_OUT_SIZE => {
                let mut full = body.clone();
                full.resize(full.len().max(std::mem::size_of::<InitOut>()), 0);
                proto::parse::<InitOut>(&full).ok()
            }
            _ => None,
        };
        match out {
            Some(o) if o.major == proto::KERNEL_MAJOR => {
                let max_write = if o.minor < 5 { 4096 } else { o.max_write };
                self.negotiated = Negotiated {
                    minor: o.minor.min(proto::KERNEL_MINOR),
                    max_write: max_write.clamp(4096, 1 << 20),
                };
                self.phase = Phase::Ready;
                log::debug!("fuse: protocol 7.{}", self.negotiated.minor);
            }
            _ => {
                log::debug!("fuse: INIT refused");
                self.phase = Phase::Refused;
            }
        }
    }
}

/// An open `/dev/fuse`: unattached until a mount names it (`fd=`) or it clones an
/// attached one (`FUSE_DEV_IOC_CLONE`).
#[derive(Default)]
pub struct DevFile {
    conn: OnceLock<Arc<Conn>>,
}

impl DevFile {
    /// A new connection for a mount naming this file.
    ///
    /// # Errors
    /// EINVAL when the file already serves a connection.
    pub fn connect(&self) -> Result<Arc<Conn>, Errno> {
        let conn = Conn::new();
        self.conn.set(conn.clone()).map_err(|_| Errno::EINVAL)?;
        Ok(conn)
    }

    /// `FUSE_DEV_IOC_CLONE`: attaches this file to `from`'s connection.
    ///
    /// # Errors
    /// EINVAL when this file is attached already or `from` is not.
    pub fn clone_from(&self, from: &DevFile) -> Result<(), Errno> {
        let conn = from.conn.get().ok_or(Errno::EINVAL)?;
        self.conn.set(conn.clone()).map_err(|_| Errno::EINVAL)?;
        conn.attach();
        Ok(())
    }

    /// The connection the file serves, if any.
    pub fn connection(&self) -> Option<&Arc<Conn>> {
        self.conn.get()
    }

    fn attached(&self) -> Result<&Arc<Conn>, Errno> {
        self.conn.get().ok_or(Errno::EPERM)
    }
}

impl Drop for DevFile {
    fn drop(&mut self) {
        if let Some(c) = self.conn.get() {
            c.detach();
        }
    }
}

impl FileOps for DevFile {
    fn device_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(
        &self,
        t: &mut dyn Context,
        f: &OpenFile,
        dst: &mut dyn IoDst,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        self.attached()?.read_request(t, f.nonblocking(), dst)
    }

    fn write(
        &self,
        _t: &mut dyn Context,
        _f: &OpenFile,
        src: &mut dyn IoSrc,
        _off: Option<u64>,
    ) -> Result<usize, Errno> {
        let conn = self.attached()?;
        let len = src.remaining();
        if len < std::mem::size_of::<OutHeader>() {
            return Err(Errno::EINVAL);
        }
        let max = std::mem::size_of::<OutHeader>() + (1 << 20) + 4096;
        let mut msg = vec![0u8; len.min(max)];
        let n = src.copy_to(&mut msg)?;
        msg.truncate(n);
        conn.write_reply(&msg)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat {
            mode: libc::S_IFCHR | 0o666,
            rdev: libc::makedev(10, 229),
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        })
    }

    fn readiness(&self) -> u32 {
        let Some(conn) = self.conn.get() else {
            return libc::POLLERR as u32;
        };
        let st = conn.lock();
        if st.aborted {
            return libc::POLLERR as u32;
        }
        let mut mask = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        if !st.queue.is_empty() {
            mask |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        mask
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        self.conn.get().map(|c| &c.requests)
    }

    fn async_allowed(&self) -> Result<(), Errno> {
        self.attached().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::waiter::{set_thread_owner, TestOwner};

    /// A connection past INIT, and an owner for the calling thread.
    fn ready() -> (Arc<Conn>, Arc<TestOwner>) {
        let conn = Conn::new();
        let mut st = conn.lock();
        st.queue.clear();
        st.slots.clear();
        st.phase = Phase::Ready;
        drop(st);
        let owner = TestOwner::new();
        (conn, owner)
    }

    #[test]
    fn a_dying_callers_unread_request_is_withdrawn() {
        let (conn, owner) = ready();
        owner.dying.store(true, Ordering::SeqCst);
        set_thread_owner(Some(owner));
        let r = conn.call(None, op::GETATTR, 1, Requester::default(), &[]);
        set_thread_owner(None);
        assert_eq!(r, Err(Errno::EINTR));
        let st = conn.lock();
        assert!(st.queue.is_empty() && st.slots.is_empty());
    }

    #[test]
    fn a_dying_callers_read_request_is_interrupted_and_left_to_the_background() {
        let (conn, owner) = ready();
        let (c, o) = (conn.clone(), owner.clone());
        // The daemon: reads the request, then the caller's task is killed.
        let daemon = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let unique = loop {
                if let Some(q) = c.lock().queue.pop_front() {
                    break q.unique;
                }
                assert!(Instant::now() < deadline, "no request");
                std::thread::sleep(Duration::from_millis(1));
            };
            o.dying.store(true, Ordering::SeqCst);
            o.waiter.notify();
            unique
        });
        set_thread_owner(Some(owner));
        let r = conn.call(None, op::GETATTR, 1, Requester::default(), &[]);
        set_thread_owner(None);
        let unique = daemon.join().unwrap();
        assert_eq!(r, Err(Errno::EINTR));
        {
            let st = conn.lock();
            assert!(matches!(st.slots.get(&unique), Some(Slot::Background)));
            assert_eq!(
                st.queue.front().map(|q| q.unique),
                Some(unique | proto::INT_REQ_BIT)
            );
        }
        // The late reply is taken and dropped.
        let hdr = OutHeader {
            len: std::mem::size_of::<OutHeader>() as u32,
            error: 0,
            unique,
        };
        assert_eq!(
            conn.write_reply(hdr.as_bytes()),
            Ok(std::mem::size_of::<OutHeader>())
        );
        assert!(conn.lock().slots.is_empty());
    }
}
