//! POSIX message queues (`mq_overview(7)`): named queues of the IPC namespace, each a list
//! of messages ordered by priority (highest first, then oldest first), with Linux's
//! `/proc/sys/fs/mqueue` defaults as limits. An open queue is an open file
//! ([`crate::vfs::MqueueFile`]): `read(2)` shows the queue's status line, poll says whether
//! a message can be received (POLLIN) or sent (POLLOUT).
//!
//! The mqueue file system ([`fs`], `mount -t mqueue`) shows the same queues as files: stat
//! and read (the status line) them, unlink removes one. A queue opened through it with
//! open(2) is a plain file of the status line, not a queue descriptor for the `mq_*` calls,
//! and creating files there is refused (EPERM). Not offered either: SIGEV_THREAD
//! notification (glibc's netlink helper) and RLIMIT_MSGQUEUE accounting.
//!
//! # Lock order
//! [`Mq::queues`] → one [`Queue::state`] → `WaitQueue::waiters`. Neither is held across a
//! wait or a user-memory copy.

pub mod fs;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::abi::Errno;
use crate::auth::Creds;
use crate::mm::usermem::IoDst;
use crate::vfs::{Context, FileOps, MqNotification, MqueueFile, OpenFile, Stat};
use crate::waiter::{WaitQueue, Wake};

/// `/proc/sys/fs/mqueue/queues_max`.
pub const QUEUES_MAX: usize = 256;
/// `/proc/sys/fs/mqueue/msg_max` and `msg_default`.
pub const MSG_MAX: i64 = 10;
/// `/proc/sys/fs/mqueue/msgsize_max` and `msgsize_default`.
pub const MSGSIZE_MAX: i64 = 8192;
/// Limits even CAP_SYS_RESOURCE cannot pass (Linux's HARD_MSGMAX, HARD_MSGSIZEMAX).
const HARD_MSGMAX: i64 = 65536;
const HARD_MSGSIZEMAX: i64 = 16 << 20;
/// Priorities are below this (`MQ_PRIO_MAX`).
pub const PRIO_MAX: u32 = 32768;
/// `NAME_MAX`.
const NAME_MAX: usize = 255;

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_FOWNER: u32 = 3;
const CAP_SYS_RESOURCE: u32 = 24;

/// `sigev_notify` values.
pub const SIGEV_SIGNAL: i32 = 0;
pub const SIGEV_NONE: i32 = 1;

/// The named queues of one IPC namespace.
#[derive(Debug, Default)]
pub struct Mq {
    queues: Mutex<HashMap<Vec<u8>, Arc<Queue>>>,
    /// The device number every mount of the namespace's mqueue file system shows.
    dev: OnceLock<u64>,
}

/// Checks a queue name as the kernel sees it (glibc has removed the leading slash).
///
/// # Errors
/// ENOENT (empty), EACCES (a slash inside), ENAMETOOLONG.
pub fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Errno::ENOENT);
    }
    if name.contains(&b'/') {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// What `mq_open` asks for.
#[derive(Debug, Clone, Copy)]
pub struct OpenRequest {
    /// O_CREAT, and O_EXCL with it.
    pub create: bool,
    pub exclusive: bool,
    /// Read and write access asked for (O_ACCMODE).
    pub read: bool,
    pub write: bool,
    /// Permission bits of a new queue (umask applied).
    pub mode: u32,
    /// (mq_maxmsg, mq_msgsize) of a new queue; None: the defaults.
    pub attr: Option<(i64, i64)>,
}

impl Mq {
    /// `mq_open`: the queue named `name`, created as `req` says.
    ///
    /// # Errors
    /// ENOENT, EEXIST, EACCES, EINVAL (attributes), ENOSPC (queues_max).
    pub fn open(&self, creds: &Creds, name: &[u8], req: OpenRequest) -> Result<Arc<Queue>, Errno> {
        check_name(name)?;
        let mut queues = self.queues.lock().unwrap();
        if let Some(q) = queues.get(name) {
            if req.create && req.exclusive {
                return Err(Errno::EEXIST);
            }
            let mut want = 0;
            if req.read {
                want |= 4;
            }
            if req.write {
                want |= 2;
            }
            q.check_access(creds, want)?;
            return Ok(q.clone());
        }
        if !req.create {
            return Err(Errno::ENOENT);
        }
        let privileged = creds.has_cap(CAP_SYS_RESOURCE);
        let (maxmsg, msgsize) = match req.attr {
            None => (MSG_MAX, MSGSIZE_MAX),
            Some((m, s)) => {
                if m <= 0 || s <= 0 || m > HARD_MSGMAX || s > HARD_MSGSIZEMAX {
                    return Err(Errno::EINVAL);
                }
                if !privileged && (m > MSG_MAX || s > MSGSIZE_MAX) {
                    return Err(Errno::EINVAL);
                }
                (m, s)
            }
        };
        if queues.len() >= QUEUES_MAX && !privileged {
            return Err(Errno::ENOSPC);
        }
        let q = Arc::new(Queue {
            ino: next_ino(),
            maxmsg,
            msgsize,
            events: WaitQueue::new(),
            state: Mutex::new(State {
                uid: creds.euid,
                gid: creds.egid,
                mode: req.mode & 0o777,
                messages: BTreeMap::new(),
                next_seq: 0,
                bytes: 0,
                notify: None,
                receivers: 0,
            }),
        });
        queues.insert(name.to_vec(), q.clone());
        Ok(q)
    }

    /// `mq_unlink`: the name goes; the queue lives on while open.
    ///
    /// # Errors
    /// ENOENT, EACCES (bad name), EPERM (another user's queue in the sticky directory).
    pub fn unlink(&self, creds: &Creds, name: &[u8]) -> Result<(), Errno> {
        check_name(name)?;
        let mut queues = self.queues.lock().unwrap();
        let q = queues.get(name).ok_or(Errno::ENOENT)?;
        if q.state.lock().unwrap().uid != creds.euid && !creds.has_cap(CAP_FOWNER) {
            return Err(Errno::EPERM);
        }
        queues.remove(name);
        Ok(())
    }

    /// The queue named `name`, if it exists.
    pub fn get(&self, name: &[u8]) -> Option<Arc<Queue>> {
        self.queues.lock().unwrap().get(name).cloned()
    }

    /// Every named queue, sorted by name.
    pub fn list(&self) -> Vec<(Vec<u8>, Arc<Queue>)> {
        let mut v: Vec<_> = self
            .queues
            .lock()
            .unwrap()
            .iter()
            .map(|(n, q)| (n.clone(), q.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn dev(&self) -> u64 {
        *self.dev.get_or_init(crate::fs::anon_dev)
    }
}

/// A new queue's inode number in the mqueue file system.
fn next_ino() -> u64 {
    static NEXT_INO: AtomicU64 = AtomicU64::new(2);
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

/// A message queue in a checkpoint image.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueueImage {
    /// Its name (without the slash); None: unlinked, reachable only by the fds that hold it.
    pub name: Option<Vec<u8>>,
    pub maxmsg: i64,
    pub msgsize: i64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// (priority, bytes), in the order they are received.
    pub messages: Vec<(u32, Vec<u8>)>,
    /// The `mq_notify` registration: (global PID of the process, `sigev_notify`, signal,
    /// `sigev_value`). Kept: the process has its PID again after a restore.
    pub notify: Option<(i32, i32, i32, u64)>,
}

impl Mq {
    /// Whether `q` is one of the queues this namespace names.
    pub fn names(&self, q: &Arc<Queue>) -> bool {
        let queues = self.queues.lock().unwrap();
        queues.values().any(|n| Arc::ptr_eq(n, q))
    }

    /// Every queue for a checkpoint: first those of `open` (the queues fds hold, an fd's
    /// image names its queue by index in it), then the named ones no fd holds.
    pub fn saved(&self, open: &[Arc<Queue>]) -> Vec<QueueImage> {
        let queues = self.queues.lock().unwrap();
        let name_of = |q: &Arc<Queue>| {
            queues
                .iter()
                .find(|(_, n)| Arc::ptr_eq(n, q))
                .map(|(name, _)| name.clone())
        };
        let idle = queues
            .values()
            .filter(|q| !open.iter().any(|o| Arc::ptr_eq(o, q)));
        open.iter()
            .chain(idle)
            .map(|q| {
                let s = q.state.lock().unwrap();
                QueueImage {
                    name: name_of(q),
                    maxmsg: q.maxmsg,
                    msgsize: q.msgsize,
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                    messages: s
                        .messages
                        .iter()
                        .map(|(&(rprio, _), m)| (PRIO_MAX - 1 - rprio, m.clone()))
                        .collect(),
                    notify: s.notify.map(|n| (n.tgid, n.notify, n.signo, n.value)),
                }
            })
            .collect()
    }

    /// Puts back the queues of [`Mq::saved`] in a namespace that has none; returns them in
    /// the image's order (the restored fds take theirs by index).
    ///
    /// # Errors
    /// A malformed image or a namespace with queues already.
    pub fn restore(&self, images: &[QueueImage]) -> Result<Vec<Arc<Queue>>, String> {
        let mut queues = self.queues.lock().unwrap();
        if !queues.is_empty() {
            return Err("the namespace has POSIX message queues already".into());
        }
        let mut restored = Vec::new();
        let mut named = HashMap::new();
        for image in images {
            let bad = |what: &str| format!("a POSIX message queue with {what}");
            if !(1..=HARD_MSGMAX).contains(&image.maxmsg)
                || !(1..=HARD_MSGSIZEMAX).contains(&image.msgsize)
            {
                return Err(bad("impossible limits"));
            }
            if image.messages.len() as i64 > image.maxmsg
                || image
                    .messages
                    .iter()
                    .any(|(p, m)| *p >= PRIO_MAX || m.len() as i64 > image.msgsize)
            {
                return Err(bad("messages beyond its limits"));
            }
            let mut messages = BTreeMap::new();
            let mut bytes = 0;
            for (seq, (prio, m)) in image.messages.iter().enumerate() {
                bytes += m.len() as u64;
                messages.insert((PRIO_MAX - 1 - prio, seq as u64), m.clone());
            }
            let q = Arc::new(Queue {
                ino: next_ino(),
                maxmsg: image.maxmsg,
                msgsize: image.msgsize,
                events: WaitQueue::new(),
                state: Mutex::new(State {
                    uid: image.uid,
                    gid: image.gid,
                    mode: image.mode & 0o777,
                    messages,
                    next_seq: image.messages.len() as u64,
                    bytes,
                    notify: image.notify.map(|(tgid, notify, signo, value)| Notify {
                        tgid,
                        notify,
                        signo,
                        value,
                    }),
                    receivers: 0,
                }),
            });
            if let Some(name) = &image.name {
                check_name(name).map_err(|_| bad("a bad name"))?;
                if named.insert(name.clone(), q.clone()).is_some() {
                    return Err(bad("a name used twice"));
                }
            }
            restored.push(q);
        }
        *queues = named;
        Ok(restored)
    }
}

/// A registered `mq_notify` request.
#[derive(Debug, Clone, Copy)]
struct Notify {
    tgid: i32,
    notify: i32,
    signo: i32,
    value: u64,
}

#[derive(Debug)]
struct State {
    uid: u32,
    gid: u32,
    mode: u32,
    /// (priority reversed, sequence) → message: the first entry is the next to receive.
    messages: BTreeMap<(u32, u64), Vec<u8>>,
    next_seq: u64,
    /// Bytes of all messages (QSIZE).
    bytes: u64,
    notify: Option<Notify>,
    /// Receivers blocked right now (a notification goes out only when there are none).
    receivers: usize,
}

/// One message queue.
#[derive(Debug)]
pub struct Queue {
    /// The inode number the mqueue file system shows.
    ino: u64,
    maxmsg: i64,
    msgsize: i64,
    events: WaitQueue,
    state: Mutex<State>,
}

impl Queue {
    /// Whether `creds` may open the queue for the rwx bits `want`.
    fn check_access(&self, creds: &Creds, want: u32) -> Result<(), Errno> {
        let s = self.state.lock().unwrap();
        let granted = if creds.euid == s.uid {
            s.mode >> 6
        } else if creds.in_group(s.gid) {
            s.mode >> 3
        } else {
            s.mode
        };
        if want & !granted & 0o7 != 0 && !creds.has_cap(CAP_DAC_OVERRIDE) {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    fn curmsgs(s: &State) -> i64 {
        s.messages.len() as i64
    }
}

/// The open queue: what an mq_open fd's open file description holds.
pub struct QueueFile(pub Arc<Queue>);

impl MqueueFile for QueueFile {
    fn send(
        &self,
        t: &mut dyn Context,
        msg: Vec<u8>,
        prio: u32,
        nonblock: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<MqNotification>, Errno> {
        let q = &self.0;
        if prio >= PRIO_MAX {
            return Err(Errno::EINVAL);
        }
        if msg.len() as i64 > q.msgsize {
            return Err(Errno::EMSGSIZE);
        }
        let mut msg = Some(msg);
        let notification = t.block_on(&[&q.events], deadline, || {
            let mut s = q.state.lock().unwrap();
            if Queue::curmsgs(&s) >= q.maxmsg {
                return nonblock.then_some(Err(Errno::EAGAIN));
            }
            let was_empty = s.messages.is_empty();
            let m = msg.take().unwrap_or_default();
            s.bytes += m.len() as u64;
            let seq = s.next_seq;
            s.next_seq += 1;
            s.messages.insert((PRIO_MAX - 1 - prio, seq), m);
            // A notification is sent once, when a message arrives in an empty queue that
            // no receiver is waiting on; then the registration is gone.
            let n = if was_empty && s.receivers == 0 {
                s.notify.take().map(|n| MqNotification {
                    tgid: n.tgid,
                    signo: if n.notify == SIGEV_SIGNAL { n.signo } else { 0 },
                    value: n.value,
                })
            } else {
                None
            };
            Some(Ok(n))
        })?;
        q.events.notify(Wake::Readable);
        Ok(notification)
    }

    fn receive(
        &self,
        t: &mut dyn Context,
        max: usize,
        nonblock: bool,
        deadline: Option<Instant>,
    ) -> Result<(Vec<u8>, u32), Errno> {
        let q = &self.0;
        if (max as i64) < q.msgsize {
            return Err(Errno::EMSGSIZE);
        }
        q.state.lock().unwrap().receivers += 1;
        let r = t.block_on(&[&q.events], deadline, || {
            let mut s = q.state.lock().unwrap();
            match s.messages.pop_first() {
                Some(((rprio, _), m)) => {
                    s.bytes -= m.len() as u64;
                    Some(Ok((m, PRIO_MAX - 1 - rprio)))
                }
                None if nonblock => Some(Err(Errno::EAGAIN)),
                None => None,
            }
        });
        q.state.lock().unwrap().receivers -= 1;
        let r = r?;
        q.events.notify(Wake::Writable);
        Ok(r)
    }

    fn attr(&self) -> [i64; 3] {
        let s = self.0.state.lock().unwrap();
        [self.0.maxmsg, self.0.msgsize, Queue::curmsgs(&s)]
    }

    fn notify(&self, tgid: i32, request: Option<(i32, i32, u64)>) -> Result<(), Errno> {
        let mut s = self.0.state.lock().unwrap();
        match request {
            None => {
                if s.notify.is_some_and(|n| n.tgid == tgid) {
                    s.notify = None;
                }
                Ok(())
            }
            Some(_) if s.notify.is_some() => Err(Errno::EBUSY),
            Some((notify, signo, value)) => {
                s.notify = Some(Notify {
                    tgid,
                    notify,
                    signo,
                    value,
                });
                Ok(())
            }
        }
    }
}

impl Queue {
    /// The status line `read(2)` shows (Linux's format).
    fn status(&self) -> String {
        let s = self.state.lock().unwrap();
        let (notify, signo, pid) = s.notify.map_or((0, 0, 0), |n| (n.notify, n.signo, n.tgid));
        format!(
            "QSIZE:{:<10} NOTIFY:{:<5} SIGNO:{:<5} NOTIFY_PID:{:<6}\n",
            s.bytes, notify, signo, pid
        )
    }
}

impl FileOps for QueueFile {
    fn checkpoint_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn read(
        &self,
        _t: &mut dyn Context,
        _file: &OpenFile,
        dst: &mut dyn IoDst,
        offset: Option<u64>,
    ) -> Result<usize, Errno> {
        let status = self.0.status();
        let at = usize::try_from(offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let part = status.as_bytes().get(at..).unwrap_or(&[]);
        dst.copy_from(part)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let s = self.0.state.lock().unwrap();
        Ok(Stat {
            mode: libc::S_IFREG | s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.bytes as i64,
            ..Stat::anonymous()
        })
    }

    fn seekable(&self) -> bool {
        true
    }

    fn readiness(&self) -> u32 {
        let [maxmsg, _, cur] = self.attr();
        let mut r = 0;
        if cur > 0 {
            r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        if cur < maxmsg {
            r |= (libc::POLLOUT | libc::POLLWRNORM) as u32;
        }
        r
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.0.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_linux_does() {
        assert_eq!(check_name(b"q"), Ok(()));
        assert_eq!(check_name(b""), Err(Errno::ENOENT));
        assert_eq!(check_name(b"a/b"), Err(Errno::EACCES));
        assert_eq!(check_name(&[b'a'; 256]), Err(Errno::ENAMETOOLONG));
        assert_eq!(check_name(&[b'a'; 255]), Ok(()));
    }
}
