//! System V message queues (`msgget`, `msgsnd`, `msgrcv`, `msgctl`).
//!
//! Each queue keeps its messages in arrival order. Senders wait for room (bytes and
//! messages are both bounded by `msg_qbytes`, as Linux), receivers for a message of the
//! type they ask for; both sleep on the queue's one wait queue, which every change wakes.
//! Neither call is restarted after a signal handler (EINTR), as Linux.
//!
//! # Lock order
//! `Msg::queues` → a queue's `WaitQueue`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{now, IpcPerm64, Lookup, Perm, Registry, CAP_SYS_RESOURCE, IPC_NOWAIT};
use crate::abi::Errno;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::waiter::WaitQueue;

/// Linux's defaults (`include/uapi/linux/msg.h`).
pub const MSGMNI: usize = 32000;
pub const MSGMAX: i64 = 8192;
pub const MSGMNB: u64 = 16384;
const MSGPOOL: i32 = (MSGMNI as i64 * MSGMNB as i64 / 1024) as i32;
const MSGSSZ: i32 = 16;

/// `msgrcv` flags.
const MSG_NOERROR: i32 = 0o10000;
const MSG_EXCEPT: i32 = 0o20000;
const MSG_COPY: i32 = 0o40000;

/// `msgctl` commands beyond the common ones.
const MSG_STAT: i32 = 11;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;

/// `struct msqid64_ds` (x86-64).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct MsqidDs {
    perm: IpcPerm64,
    stime: i64,
    rtime: i64,
    ctime: i64,
    cbytes: u64,
    qnum: u64,
    qbytes: u64,
    lspid: i32,
    lrpid: i32,
    unused: [u64; 2],
}

/// `struct msginfo`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct MsgInfo {
    msgpool: i32,
    msgmap: i32,
    msgmax: i32,
    msgmnb: i32,
    msgmni: i32,
    msgssz: i32,
    msgtql: i32,
    msgseg: u16,
    pad: u16,
}

#[derive(Debug)]
struct Queue {
    perm: Perm,
    msgs: VecDeque<(i64, Vec<u8>)>,
    /// Bytes of message text queued.
    cbytes: u64,
    qbytes: u64,
    stime: i64,
    rtime: i64,
    ctime: i64,
    lspid: i32,
    lrpid: i32,
    /// Woken by every send, receive, IPC_SET and removal.
    waiters: Arc<WaitQueue>,
}

impl Queue {
    fn stat(&self, id: i32) -> MsqidDs {
        MsqidDs {
            perm: self.perm.to_abi(id),
            stime: self.stime,
            rtime: self.rtime,
            ctime: self.ctime,
            cbytes: self.cbytes,
            qnum: self.msgs.len() as u64,
            qbytes: self.qbytes,
            lspid: self.lspid,
            lrpid: self.lrpid,
            unused: [0; 2],
        }
    }

    /// The position of the message `msgrcv` with `typ` and `flags` takes.
    fn find(&self, typ: i64, flags: i32) -> Option<usize> {
        if flags & MSG_COPY != 0 {
            return usize::try_from(typ).ok().filter(|&i| i < self.msgs.len());
        }
        let except = flags & MSG_EXCEPT != 0;
        match typ {
            0 => (!self.msgs.is_empty()).then_some(0),
            t if t > 0 => self.msgs.iter().position(|(m, _)| (*m == t) != except),
            t => {
                // The lowest type not above |t|; the first of that type.
                let limit = t.checked_neg().unwrap_or(i64::MAX);
                let lowest = self
                    .msgs
                    .iter()
                    .map(|(m, _)| *m)
                    .filter(|&m| m <= limit)
                    .min()?;
                self.msgs.iter().position(|(m, _)| *m == lowest)
            }
        }
    }
}

/// A message queue in a checkpoint image, with its messages (type, text).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueueImage {
    pub perm: Perm,
    pub msgs: Vec<(i64, Vec<u8>)>,
    pub qbytes: u64,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    pub lspid: i32,
    pub lrpid: i32,
}

/// The namespace's message queues.
#[derive(Debug, Default)]
pub struct Msg {
    queues: Mutex<Registry<Queue>>,
}

impl Msg {
    /// The queues with their messages, for a checkpoint.
    pub fn saved(&self) -> super::RegistryImage<QueueImage> {
        self.lock().saved(|q| QueueImage {
            perm: q.perm,
            msgs: q.msgs.iter().cloned().collect(),
            qbytes: q.qbytes,
            stime: q.stime,
            rtime: q.rtime,
            ctime: q.ctime,
            lspid: q.lspid,
            lrpid: q.lrpid,
        })
    }

    /// Puts back the queues of [`Msg::saved`].
    ///
    /// # Errors
    /// A malformed image, or a namespace that has queues already.
    pub fn restore(&self, image: &super::RegistryImage<QueueImage>) -> Result<(), String> {
        let mut r = self.lock();
        if !r.is_empty() {
            return Err("the namespace has message queues already".into());
        }
        *r = Registry::restored(image, |q| {
            Ok(Queue {
                perm: q.perm,
                msgs: q.msgs.iter().cloned().collect(),
                cbytes: q.msgs.iter().map(|(_, m)| m.len() as u64).sum(),
                qbytes: q.qbytes,
                stime: q.stime,
                rtime: q.rtime,
                ctime: q.ctime,
                lspid: q.lspid,
                lrpid: q.lrpid,
                waiters: Arc::default(),
            })
        })?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Registry<Queue>> {
        self.queues.lock().unwrap()
    }

    /// `msgget(2)`.
    ///
    /// # Errors
    /// ENOENT, EEXIST, EACCES, ENOSPC.
    pub fn get(&self, t: &Task, key: i32, flags: i32) -> Result<i32, Errno> {
        let mut r = self.lock();
        match r.lookup_key(key, flags)? {
            Lookup::Existing(id) => {
                r.get(id)?.perm.check(&t.creds, flags as u32)?;
                Ok(id)
            }
            Lookup::Create => r.insert(
                key,
                MSGMNI,
                Queue {
                    perm: Perm::new(key, &t.creds, flags),
                    msgs: VecDeque::new(),
                    cbytes: 0,
                    qbytes: MSGMNB,
                    stime: 0,
                    rtime: 0,
                    ctime: now(),
                    lspid: 0,
                    lrpid: 0,
                    waiters: Arc::default(),
                },
            ),
        }
    }

    /// `msgsnd(2)`.
    ///
    /// # Errors
    /// EFAULT, EINVAL, EACCES, EAGAIN (IPC_NOWAIT and no room), EIDRM, EINTR.
    pub fn send(
        &self,
        t: &mut Task,
        id: i32,
        msgp: UserAddr,
        size: i64,
        flags: i32,
    ) -> Result<u64, Errno> {
        let typ: i64 = t.mm.read_obj(msgp)?;
        if !(0..=MSGMAX).contains(&size) || id < 0 || typ < 1 {
            return Err(Errno::EINVAL);
        }
        let text = t.mm.read_bytes(msgp.offset(8)?, size as usize)?;
        let waiters = {
            let r = self.lock();
            let q = r.get(id)?;
            q.perm.check(&t.creds, 0o222)?;
            q.waiters.clone()
        };
        let pid = t.vtgid();
        let mut text = Some(text);
        let r = t.block_on(&[&waiters], None, |_| {
            let mut r = self.lock();
            let Ok(q) = r.get_mut(id) else {
                return Some(Err(Errno::EIDRM));
            };
            let len = size as u64;
            if q.cbytes + len <= q.qbytes && (q.msgs.len() as u64) < q.qbytes {
                q.msgs.push_back((typ, text.take().unwrap_or_default()));
                q.cbytes += len;
                q.stime = now();
                q.lspid = pid;
                q.waiters.notify_all();
                Some(Ok(0))
            } else if flags & IPC_NOWAIT != 0 {
                Some(Err(Errno::EAGAIN))
            } else {
                None
            }
        });
        not_restarted(t, r)
    }

    /// `msgrcv(2)`: returns the bytes of text copied.
    ///
    /// # Errors
    /// EINVAL, EACCES, E2BIG, ENOMSG, EIDRM, EFAULT, EINTR.
    pub fn receive(
        &self,
        t: &mut Task,
        id: i32,
        msgp: UserAddr,
        size: i64,
        typ: i64,
        flags: i32,
    ) -> Result<u64, Errno> {
        if size < 0 || id < 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MSG_COPY != 0 && (flags & IPC_NOWAIT == 0 || flags & MSG_EXCEPT != 0) {
            return Err(Errno::EINVAL);
        }
        let waiters = {
            let r = self.lock();
            let q = r.get(id)?;
            q.perm.check(&t.creds, 0o444)?;
            q.waiters.clone()
        };
        let pid = t.vtgid();
        let r = t.block_on(&[&waiters], None, |_| {
            let mut r = self.lock();
            let Ok(q) = r.get_mut(id) else {
                return Some(Err(Errno::EIDRM));
            };
            let Some(pos) = q.find(typ, flags) else {
                return (flags & IPC_NOWAIT != 0).then_some(Err(Errno::ENOMSG));
            };
            if q.msgs[pos].1.len() as u64 > size as u64 && flags & MSG_NOERROR == 0 {
                return Some(Err(Errno::E2BIG));
            }
            if flags & MSG_COPY != 0 {
                // Linux copies into a buffer of the caller's size, which MSG_NOERROR does
                // not make room in.
                if q.msgs[pos].1.len() as u64 > size as u64 {
                    return Some(Err(Errno::EINVAL));
                }
                return Some(Ok(q.msgs[pos].clone()));
            }
            let m = q.msgs.remove(pos).expect("found");
            q.cbytes -= m.1.len() as u64;
            q.rtime = now();
            q.lrpid = pid;
            q.waiters.notify_all();
            Some(Ok(m))
        });
        let (mtype, mut text) = not_restarted(t, r)?;
        text.truncate(size as usize);
        t.mm.write_obj(msgp, &mtype)?;
        t.mm.write_bytes(msgp.offset(8)?, &text)?;
        Ok(text.len() as u64)
    }

    /// `msgctl(2)`.
    ///
    /// # Errors
    /// EINVAL, EACCES, EPERM, EFAULT.
    pub fn ctl(&self, t: &mut Task, id: i32, cmd: i32, buf: UserAddr) -> Result<u64, Errno> {
        match cmd {
            super::IPC_INFO | MSG_INFO => {
                let r = self.lock();
                let mut info = MsgInfo {
                    msgpool: MSGPOOL,
                    msgmap: MSGMNB as i32,
                    msgmax: MSGMAX as i32,
                    msgmnb: MSGMNB as i32,
                    msgmni: MSGMNI as i32,
                    msgssz: MSGSSZ,
                    msgtql: MSGMNB as i32,
                    msgseg: u16::MAX,
                    pad: 0,
                };
                if cmd == MSG_INFO {
                    info.msgpool = r.len() as i32;
                    info.msgmap = r.iter().map(|(_, q)| q.msgs.len() as i32).sum();
                    info.msgtql = r.iter().map(|(_, q)| q.cbytes as i32).sum();
                }
                let max = r.max_index();
                drop(r);
                t.mm.write_obj(buf, &info)?;
                Ok(max as u64)
            }
            super::IPC_STAT | MSG_STAT | MSG_STAT_ANY => {
                let (ds, ret) = {
                    let r = self.lock();
                    let (real, q) = if cmd == super::IPC_STAT {
                        (id, r.get(id)?)
                    } else {
                        r.at_index(id)?
                    };
                    if cmd != MSG_STAT_ANY {
                        q.perm.check(&t.creds, 0o444)?;
                    }
                    (q.stat(real), if cmd == super::IPC_STAT { 0 } else { real })
                };
                t.mm.write_obj(buf, &ds)?;
                Ok(ret as u64)
            }
            super::IPC_SET => {
                let new: MsqidDs = t.mm.read_obj(buf)?;
                let mut r = self.lock();
                let q = r.get_mut(id)?;
                q.perm.check_owner(&t.creds)?;
                if new.qbytes > MSGMNB && !t.creds.has_cap(CAP_SYS_RESOURCE) {
                    return Err(Errno::EPERM);
                }
                q.qbytes = new.qbytes;
                q.perm.set(&new.perm);
                q.ctime = now();
                q.waiters.notify_all();
                Ok(0)
            }
            super::IPC_RMID => {
                let mut r = self.lock();
                r.get(id)?.perm.check_owner(&t.creds)?;
                if let Some(q) = r.remove(id) {
                    q.waiters.notify_all();
                }
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// `/proc/sysvipc/msg`.
    pub fn proc_table(&self) -> String {
        let mut out = String::from("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n");
        let r = self.lock();
        for (id, q) in r.iter() {
            let p = q.perm;
            out.push_str(&format!(
                "{:10} {:10}  {:4o}  {:10} {:10} {:5} {:5} {:5} {:5} {:5} {:5} {:10} {:10} {:10}\n",
                p.key,
                id,
                p.mode,
                q.cbytes,
                q.msgs.len(),
                q.lspid,
                q.lrpid,
                p.uid,
                p.gid,
                p.cuid,
                p.cgid,
                q.stime,
                q.rtime,
                q.ctime
            ));
        }
        out
    }
}

/// System V IPC calls interrupted by a handler fail with EINTR, never restarted (signal(7));
/// one interrupted by a pause of the kernel (a checkpoint) restarts, unseen.
fn not_restarted<T>(t: &mut Task, r: Result<T, Errno>) -> Result<T, Errno> {
    if r.is_err() && t.restart.is_some() && !t.kernel.freezer.is_frozen() {
        t.restart = None;
    }
    r
}
