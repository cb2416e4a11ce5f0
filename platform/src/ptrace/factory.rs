//! Stub factories: one untraced process per address space whose only job is to create stubs.
//!
//! When the platform is created, its master thread — a dedicated, long-lived host thread,
//! because `PR_SET_PDEATHSIG` fires when the *thread* that forked exits — forks a [`Zygote`]:
//! a copy of the sentry as it is then, before the sentry installs its seccomp filter. Every
//! factory is forked by the zygote. The zygote sheds everything of the sentry once (fds, signal
//! state, rseq registration, capabilities, and every mapping but the loaded objects, its own
//! stack, the factory filter and the stub pages: [`Keep`]); a factory inherits that state, only moves its
//! socket to fd 1 and arms its death signal again, installs the platform's factory filter if
//! it has one (the ptrace platform's, `filter.rs`; stubs inherit it), then drops every mapping
//! except the stub pages and runs the factory loop of `stub.rs`.
//!
//! Why a zygote rather than forking factories from the sentry: a factory forked after the
//! sentry's filter would carry that filter under its own. Seccomp filters only add up, so the
//! stubs would stay limited to the stub filter either way, but the sentry's allowlist would
//! then have to list every call of the factory setup, the factory loop and the injected calls
//! (for the systrap platform worse: a sentry filter answering `SECCOMP_RET_KILL_PROCESS`
//! would win over the systrap stubs' `SECCOMP_RET_TRAP` for every application system call
//! outside the sentry's allowlist). With the zygote the sentry's allowlist holds only what
//! the sentry's own threads call, and each stub holds only the filter made for it.
//!
//! The sentry asks for a stub by sending one byte over the factory's socket. The new stub
//! answers by writing one byte itself; with `SO_PASSCRED` on our end the kernel attaches the
//! writer's pid to it, so the pid cannot be forged by application code (which can write the
//! factory's data page, but cannot make system calls).

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::socket::{
    recvmsg, send, setsockopt, socketpair, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixCredentials,
};
use nix::unistd::Pid;

use super::mapper::Mapper;
use super::reaper::Reaper;
use super::sys::{self, host};
use crate::stub;
use crate::stub_filter::{self, Insn};
use crate::{Error, Result, PAGE_SIZE};

/// A stub from [`Factory::new_stub`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NewStub {
    pub(crate) pid: Pid,
    /// What the platform's [`StubReadier`] returned for it, if the master thread readied it
    /// while preparing it; `None` for a stub still waiting in `pause()` to be seized. The
    /// taker owns it from then on.
    pub(crate) readied: Option<u32>,
}

/// How a platform readies the prepared stubs of the spare factory further, on the master
/// thread, so that the first thread of a new address space finds its stub ready and its
/// `fork` pays for no set-up (systrap: the stub's set-up into its handler, one ptrace stop
/// and the stub's own dozen calls, 110-330 µs of a `fork` under load).
pub(crate) trait StubReadier: Send + Sync {
    /// Readies the fresh stub `pid` (untraced, in or before its `pause()`) and returns what
    /// its taker needs to use it (systrap: its message region's slot). On failure the stub is
    /// gone: killed and reaped, or found dead and reaped.
    ///
    /// # Errors
    /// The stub could not be readied.
    fn ready(&self, pid: Pid) -> Result<u32>;
    /// Takes back what [`StubReadier::ready`] returned for stubs that were never handed out,
    /// once they are reaped.
    fn discard(&self, readied: Vec<u32>);
}

/// glibc's registration signature for rseq on x86 (`RSEQ_SIG`).
const RSEQ_SIG: u32 = 0x5305_3053;
const RSEQ_FLAG_UNREGISTER: i32 = 1;
/// Exit status of a factory child that could not set itself up.
const SETUP_FAILED: i32 = 126;

/// One factory process and our end of its socket. Dropping it kills and reaps the factory.
pub(crate) struct Factory {
    pid: Pid,
    socket: OwnedFd,
    /// Stubs created before anyone asked (see [`Factory::prepare`]), not yet handed out.
    /// Killed and reaped with the factory.
    prepared: Vec<NewStub>,
    /// What readied the prepared stubs, if anything did: takes back what it handed out for
    /// those never handed out, once they are reaped.
    readier: Option<Arc<dyn StubReadier>>,
    /// A mapper created and started before anyone asked (see [`Factory::prepare`]), not yet
    /// handed out. Killed and reaped with the factory.
    prepared_mapper: Option<Mapper>,
    /// The sentry's writable view of the factory's command page, until its address space
    /// takes it ([`Factory::take_commands`]).
    commands: Option<CommandPage>,
    /// [`Factory::kill_with`] killed the factory and its stubs and a reaper owns their
    /// pids: dropping must not signal them again (a reaped pid may name another process).
    handed_to_reaper: bool,
    /// The fd a new mapper's listener gets in its own table: the lowest one its factory's
    /// table leaves free (it holds fd 0, fd 1 and, with an extra file, fd 2).
    listener_fd: RawFd,
}

/// Command pages: how many address spaces may exist at once (the file is sparse: only pages
/// in use cost memory).
const COMMAND_PAGES: u64 = 1 << 16;

/// The command pages of every factory of a platform: one sparse memfd, created (with the
/// platform, before the sentry's seccomp filter) and mapped read-write here once, then sealed
/// against any later writable mapping (`F_SEAL_FUTURE_WRITE`), resizing and further seals.
/// Each factory maps its own page of it ([`CommandPage`]) read-only and shared at
/// `stub::CMD_PAGE`, so every stub it makes sees that page there and the sentry writes a
/// batch with plain memory writes. The sentry's mapping is the only writable one there will
/// ever be: a stub's mapping cannot be made writable even by an `mprotect` that escaped the
/// filters, and a stub sees only its own factory's page.
pub(crate) struct CommandFile {
    fd: OwnedFd,
    /// Address of the sentry's mapping of the whole file. Owned: unmapped on drop.
    base: usize,
    /// Page indexes free for a new factory; `next` is the first never used.
    free: Mutex<(Vec<u64>, u64)>,
}

impl CommandFile {
    fn create() -> Result<Arc<CommandFile>> {
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // SAFETY: memfd_create with a NUL-terminated name; returns a new fd or -1.
        let raw = unsafe { libc::memfd_create(c"runsc-rs-commands".as_ptr(), flags) };
        let raw = Errno::result(raw).map_err(host("memfd_create (command pages)"))?;
        // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let len = COMMAND_PAGES * PAGE_SIZE;
        nix::unistd::ftruncate(&fd, len as i64).map_err(host("ftruncate (command pages)"))?;
        // SAFETY: a new shared mapping of the fresh memfd, placed by the kernel: it replaces
        // nothing of ours.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(host("mmap (command pages)")(Errno::last()));
        }
        let file = CommandFile {
            fd,
            base: addr as usize,
            free: Mutex::new((Vec::new(), 0)),
        };
        let seals =
            libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        fcntl(
            file.fd.as_raw_fd(),
            FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_retain(seals)),
        )
        .map_err(host("fcntl(F_ADD_SEALS) (command pages)"))?;
        Ok(Arc::new(file))
    }

    /// A page for a new factory.
    fn page(self: &Arc<CommandFile>) -> Result<CommandPage> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match free.0.pop() {
            Some(index) => index,
            None if free.1 < COMMAND_PAGES => {
                free.1 += 1;
                free.1 - 1
            }
            None => {
                return Err(Error::Host {
                    call: "command page (too many address spaces)",
                    source: Errno::EAGAIN,
                })
            }
        };
        Ok(CommandPage {
            file: self.clone(),
            index,
        })
    }
}

impl Drop for CommandFile {
    fn drop(&mut self) {
        // SAFETY: unmaps our own mapping made in `create`; no `CommandPage` refers to it any
        // more (each holds the file).
        unsafe {
            libc::munmap(
                self.base as *mut libc::c_void,
                (COMMAND_PAGES * PAGE_SIZE) as usize,
            )
        };
    }
}

/// One factory's page of the [`CommandFile`] (and so one address space's): freed for reuse
/// when dropped, which is after the factory and its stubs were killed (`Factory` kills them
/// before its fields drop; an address space drops its page after releasing its factory).
pub(crate) struct CommandPage {
    file: Arc<CommandFile>,
    index: u64,
}

impl CommandPage {
    fn offset(&self) -> u64 {
        self.index * PAGE_SIZE
    }

    /// Writes `words` from the start of the page. Call only while no stub of the address
    /// space runs a batch (the caller's lock says so): a stub reads the page only between
    /// the sentry's resume and its next stop.
    pub(crate) fn write(&mut self, words: impl IntoIterator<Item = u64>) {
        let page = (self.file.base + self.offset() as usize) as *mut u64;
        for (i, word) in words.into_iter().take((PAGE_SIZE / 8) as usize).enumerate() {
            // SAFETY: `page` is this page of the file's shared mapping, alive while `self`
            // holds the file, and `i` stays inside the page; other processes only read it.
            // Volatile, since the readers are outside this program.
            unsafe { page.add(i).write_volatile(word) };
        }
    }
}

impl Drop for CommandPage {
    fn drop(&mut self) {
        self.file
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .push(self.index);
    }
}

impl Factory {
    pub(super) fn pid(&self) -> Pid {
        self.pid
    }

    /// The sentry's view of the factory's command page; `None` once taken.
    pub(super) fn take_commands(&mut self) -> Option<CommandPage> {
        self.commands.take()
    }

    /// A stub: a process sharing the factory's address space, child of the sentry: a
    /// prepared one if any is left (readied if the master thread readied it), else a new one
    /// waiting in `pause()` to be seized.
    ///
    /// # Errors
    /// The factory died, or its clone failed.
    pub(super) fn new_stub(&mut self) -> Result<NewStub> {
        match self.prepared.pop() {
            Some(stub) => Ok(stub),
            None => self.request(1).map(|pid| NewStub { pid, readied: None }),
        }
    }

    /// A mapper (see `stub::MAPPER_REQUEST`): a new stub of the factory that installed the
    /// mapper filter with a new listener before it answered, and the number of that
    /// listener's fd in the mapper's table.
    ///
    /// # Errors
    /// The factory died, or its clone failed.
    fn new_mapper(&mut self) -> Result<(Pid, RawFd)> {
        let pid = self.request(stub::MAPPER_REQUEST)?;
        Ok((pid, self.listener_fd))
    }

    /// A running mapper of the factory's address space: the prepared one if any is left,
    /// else a new one. `register` is called with the new mapper's pid as soon as it exists
    /// (before it is started): whoever kills the address space's processes must know it.
    ///
    /// # Errors
    /// The factory died, its clone failed, or the mapper could not be started (it was
    /// killed and reaped).
    pub(super) fn start_mapper(&mut self, register: impl FnOnce(Pid)) -> Result<Mapper> {
        if let Some(mapper) = self.prepared_mapper.take() {
            register(mapper.pid());
            return Ok(mapper);
        }
        let (pid, fd) = self.new_mapper()?;
        register(pid);
        Mapper::start(pid, fd)
    }

    /// Creates up to `count` stubs (each readied by `readier`, if given) and, if `mapper`, a
    /// running mapper now, for [`Factory::new_stub`] and [`Factory::start_mapper`] to hand
    /// out later: the master thread does it for its spare factory, so that the first stubs
    /// and the mapper of an address space cost no round trip to the factory and no set-up. A
    /// failure only ends the preparation (the same failure shows again when a stub is
    /// needed).
    fn prepare(&mut self, count: usize, mapper: bool, readier: Option<&Arc<dyn StubReadier>>) {
        if self.readier.is_none() {
            self.readier = readier.cloned();
        }
        while self.prepared.len() < count {
            let pid = match self.request(1) {
                Ok(pid) => pid,
                Err(e) => {
                    log::debug!("ptrace: factory {}: preparing a stub: {e}", self.pid);
                    return;
                }
            };
            let readied = match readier.map(|r| r.ready(pid)).transpose() {
                Ok(readied) => readied,
                Err(e) => {
                    // The readier killed and reaped it.
                    log::debug!("ptrace: factory {}: readying stub {pid}: {e}", self.pid);
                    return;
                }
            };
            self.prepared.push(NewStub { pid, readied });
        }
        if mapper && self.prepared_mapper.is_none() {
            let (pid, fd) = match self.new_mapper() {
                Ok(made) => made,
                Err(e) => {
                    log::debug!("ptrace: factory {}: preparing a mapper: {e}", self.pid);
                    return;
                }
            };
            match Mapper::start(pid, fd) {
                Ok(mapper) => self.prepared_mapper = Some(mapper),
                Err(e) => {
                    log::debug!("ptrace: factory {}: preparing mapper {pid}: {e}", self.pid);
                    // A mapper that died was reaped; its pid may name another process.
                    if !matches!(e, Error::StubDied { .. }) {
                        sys::kill_and_reap(pid);
                    }
                }
            }
        }
    }

    /// The factory and the stubs it has prepared.
    #[cfg(test)]
    pub(super) fn pids(&self) -> Vec<Pid> {
        std::iter::once(self.pid)
            .chain(self.prepared.iter().map(|s| s.pid))
            .chain(self.prepared_mapper.as_ref().map(Mapper::pid))
            .collect()
    }

    /// Kills the factory together with `stubs` (those it handed out) and has `reaper` reap
    /// them, then run `then`. The factory's socket and command page go with the job: the
    /// page is reused only once no process maps it.
    pub(super) fn kill_with(
        mut self,
        stubs: Vec<Pid>,
        reaper: &Reaper,
        then: Box<dyn FnOnce() + Send>,
    ) {
        // The prepared stubs stay listed: dropping the factory, after the reap, takes back
        // what readied them.
        let mut pids: Vec<Pid> = self.prepared.iter().map(|s| s.pid).collect();
        pids.extend(self.prepared_mapper.take().map(|m| m.pid()));
        pids.extend(stubs);
        pids.push(self.pid);
        self.handed_to_reaper = true;
        reaper.kill_and_reap(
            pids,
            Box::new(move || {
                drop(self);
                then();
            }),
        );
    }

    /// Has the factory create a stub (a request of `len` bytes: 1, or
    /// [`stub::MAPPER_REQUEST`] for a mapper) and returns its pid.
    fn request(&self, len: usize) -> Result<Pid> {
        let fd = self.socket.as_raw_fd();
        loop {
            match send(fd, &[1, 1][..len], MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(self.died()),
                Err(e) => return Err(host("send (stub factory request)")(e)),
            }
        }
        let mut byte = [0u8; 1];
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        let (len, sender) = loop {
            let mut iov = [IoSliceMut::new(&mut byte)];
            match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(msg) => {
                    let sender = msg
                        .cmsgs()
                        .map_err(host("recvmsg (stub factory reply)"))?
                        .find_map(|c| match c {
                            ControlMessageOwned::ScmCredentials(cred) => {
                                Some(Pid::from_raw(cred.pid()))
                            }
                            _ => None,
                        });
                    break (msg.bytes, sender);
                }
                Err(Errno::EINTR) => continue,
                // The factory died with our request unread.
                Err(Errno::ECONNRESET) => return Err(self.died()),
                Err(e) => return Err(host("recvmsg (stub factory reply)")(e)),
            }
        };
        match sender {
            _ if len == 0 => Err(self.died()),
            Some(pid) if pid == self.pid => Err(Error::Host {
                call: "clone (stub factory)",
                source: Errno::from_raw(i32::from(byte[0])),
            }),
            Some(pid) if pid.as_raw() > 0 => Ok(pid),
            _ => Err(Error::Host {
                call: "recvmsg (stub factory reply without credentials)",
                source: Errno::EPROTO,
            }),
        }
    }

    /// The error for a factory that closed its socket; waits for it to finish dying (without
    /// reaping it, so its pid stays ours until `Drop`) to say how it died.
    fn died(&self) -> Error {
        // SAFETY: all-zero is a valid siginfo_t; it is only an out parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out pointer for the duration of the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid.as_raw() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        let status = if rc == 0 {
            // SAFETY: waitid succeeded for an exited child, so the union holds si_status.
            let code = unsafe { info.si_status() };
            if info.si_code == libc::CLD_EXITED {
                format!("factory exited with status {code}")
            } else {
                format!("factory killed by signal {code}")
            }
        } else {
            format!("factory closed its socket ({})", Errno::last())
        };
        Error::StubDied {
            pid: self.pid.as_raw(),
            status,
        }
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        if !self.handed_to_reaper {
            let mut pids: Vec<Pid> = self.prepared.iter().map(|s| s.pid).collect();
            pids.extend(self.prepared_mapper.take().map(|m| m.pid()));
            pids.push(self.pid);
            sys::kill_and_reap_all(&pids);
        }
        // Every prepared stub is reaped now (here, or by the reaper before it dropped us).
        let readied: Vec<u32> = self.prepared.iter().filter_map(|s| s.readied).collect();
        if let (Some(readier), false) = (&self.readier, readied.is_empty()) {
            readier.discard(readied);
        }
    }
}

/// The master thread, which forks the [`Zygote`] when the platform is created and then has it
/// fork every factory.
pub(crate) struct FactoryMaster {
    requests: Mutex<Requests>,
    /// The factory the master thread keeps ready (with the stubs of a first thread), taken
    /// here without a round trip to the master thread; `None` until it has made one, or
    /// while it makes the next. Shared with the master thread, which fills it.
    spare: Arc<Mutex<Option<Factory>>>,
    #[cfg(test)]
    zygote: Pid,
}

/// What the master thread is asked for.
enum Request {
    /// A factory, answered on the given channel (the spare if there is one).
    Factory(mpsc::Sender<Result<Factory>>),
    /// The spare was taken by a thread running on this CPU (if known): make the next one,
    /// elsewhere if possible ([`Placement`]).
    Refill(Option<usize>),
}

/// Where the zygote may run its next fork. A spare factory is forked right after the last one
/// was taken, while the taker goes on with its `fork` (and then the application runs, on
/// the same CPU more often than not). A fork of the zygote and the new factory's set-up cost
/// on the order of 100 µs of CPU: when the scheduler puts the zygote on the taker's CPU, that
/// is added to the `fork` the spare was to speed up. So the master thread keeps the zygote
/// off the taker's CPU for a background fork, if the sentry may run on another one, and lets
/// it run anywhere for a fork someone waits for. Each factory takes the zygote's original
/// CPU set back right after its fork ([`become_zygote`]), before it makes any stub.
struct Placement {
    zygote: Pid,
    /// The CPUs the sentry may use ([`Zygote::cpus`]).
    all: Option<CpuSet>,
    /// The CPU the zygote is kept off now.
    avoided: Option<usize>,
}

impl Placement {
    fn new(zygote: &Zygote) -> Placement {
        Placement {
            zygote: zygote.pid,
            all: zygote.cpus,
            avoided: None,
        }
    }

    /// Keeps the zygote off `cpu` (`None`: lets it run on every CPU of the sentry).
    fn avoid(&mut self, cpu: Option<usize>) {
        let Some(all) = self.all else {
            return;
        };
        let others =
            (0..CpuSet::count()).filter(|&c| Some(c) != cpu && all.is_set(c).unwrap_or(false));
        let cpu = cpu.filter(|&c| all.is_set(c).unwrap_or(false) && others.count() > 0);
        if cpu == self.avoided {
            return;
        }
        let mut set = all;
        if let Some(c) = cpu {
            // In range: `is_set` accepted it above.
            let _ = set.unset(c);
        }
        // The zygote sleeps in its recvmsg now (the master thread is its only client), so
        // this moves nothing; its next fork runs where the set allows. It fails only if the
        // sentry's CPU set changed meanwhile (a cpuset update, which resets the zygote's too).
        match sched_setaffinity(self.zygote, &set) {
            Ok(()) => self.avoided = cpu,
            Err(e) => log::debug!("ptrace: zygote {}: sched_setaffinity: {e}", self.zygote),
        }
    }
}

/// The CPU the calling thread runs on, if the C library tells (from the thread's rseq area or
/// the vDSO, else a `getcpu` call).
fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no argument and returns a CPU number or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// A request channel to the master thread.
type Requests = mpsc::Sender<Request>;

impl FactoryMaster {
    /// Starts the master thread and its zygote now. Call it before the sentry installs its
    /// seccomp filter: factories and stubs then carry only `filter` (installed by each factory
    /// before it serves requests, if given) and whatever filter the platform gives a stub
    /// itself. `memfd` becomes fd 0 and `extra`, if given, fd 2 of every factory and stub.
    /// `stubs_per_space` is how many stubs an address space's first thread needs: the spare
    /// factory has that many ready (each readied by `readier`, if given), and with
    /// `prepare_mapper` a running mapper too (for address spaces made with
    /// `Batches::Mapper`).
    ///
    /// # Errors
    /// The master thread or the zygote cannot be started.
    pub(crate) fn start(
        memfd: OwnedFd,
        extra: Option<OwnedFd>,
        filter: Option<Vec<Insn>>,
        stubs_per_space: usize,
        prepare_mapper: bool,
        readier: Option<Arc<dyn StubReadier>>,
    ) -> Result<FactoryMaster> {
        let (sender, requests) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::channel::<Result<Pid>>();
        let spare = Arc::new(Mutex::new(None::<Factory>));
        let slot = spare.clone();
        std::thread::Builder::new()
            .name("ptrace-factory".into())
            .spawn(move || {
                let rseq = RseqArea::of_current_thread();
                let extra_fd = extra.as_ref().map(AsFd::as_fd);
                let zygote = match Zygote::spawn(memfd.as_fd(), extra_fd, rseq, filter.as_deref()) {
                    Ok(zygote) => zygote,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // The zygote holds its own copies of the files and of the filter.
                drop((memfd, extra, filter));
                let _ = ready_tx.send(Ok(zygote.pid));
                // One factory is kept ready in the spare slot, with the stubs of a first
                // thread: a requester takes it from there and the next one is forked and
                // given its stubs while the requester goes on (often on the other CPU),
                // which takes the zygote's fork, the factory's clones and the hand-off to
                // this thread off the critical path of `fork`. A spare (or a prepared stub)
                // that died meanwhile shows as a dead one at first use.
                let lock = || slot.lock().unwrap_or_else(PoisonError::into_inner);
                let mut placement = Placement::new(&zygote);
                let refill = |placement: &mut Placement, avoid: Option<usize>| {
                    if lock().is_some() {
                        return;
                    }
                    placement.avoid(avoid);
                    let made = zygote.spawn_factory().ok().map(|mut factory| {
                        factory.prepare(stubs_per_space, prepare_mapper, readier.as_ref());
                        factory
                    });
                    *lock() = made;
                };
                for request in requests {
                    match request {
                        Request::Factory(reply) => {
                            let spare = lock().take();
                            let factory = spare.map_or_else(
                                || {
                                    placement.avoid(None);
                                    zygote.spawn_factory()
                                },
                                Ok,
                            );
                            // The requester may have given up waiting; then nobody needs the
                            // answer and dropping the factory kills it.
                            let _ = reply.send(factory);
                            refill(&mut placement, None);
                        }
                        Request::Refill(cpu) => refill(&mut placement, cpu),
                    }
                }
                drop(lock().take());
                log::info!("ptrace: factory master thread exits");
            })
            .map_err(|e| Error::Host {
                call: "clone (ptrace factory master thread)",
                source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
            })?;
        let zygote = ready.recv().map_err(|_| master_gone())??;
        log::debug!("ptrace: factory master thread ready, zygote {zygote}");
        Ok(FactoryMaster {
            requests: Mutex::new(sender),
            spare,
            #[cfg(test)]
            zygote,
        })
    }

    /// Has the zygote fork a new factory (through the master thread). A master thread that
    /// died is not restarted: a zygote forked now would inherit the sentry's seccomp filter.
    ///
    /// # Errors
    /// The master thread is gone, or the fork failed.
    pub(super) fn spawn_factory(&self) -> Result<Factory> {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(factory) = spare {
            // No answer to wait for: a master thread gone now only means no next spare.
            let _ = requests.send(Request::Refill(current_cpu()));
            return Ok(factory);
        }
        let (reply, replies) = mpsc::channel();
        requests
            .send(Request::Factory(reply))
            .map_err(|_| master_gone())?;
        drop(requests);
        replies.recv().map_err(|_| master_gone())?
    }
}

#[cfg(test)]
impl FactoryMaster {
    /// The pids of the spare factory and its prepared stubs, if the slot holds one.
    pub(super) fn spare_pids(&self) -> Option<Vec<Pid>> {
        let spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        spare.as_ref().map(Factory::pids)
    }

    pub(super) fn zygote_pid(&self) -> Pid {
        self.zygote
    }
}

fn master_gone() -> Error {
    Error::Unavailable("ptrace", "the factory master thread has exited".into())
}

/// A connected pair of close-on-exec Unix stream sockets; `call` names it in errors.
fn unix_socketpair(call: &'static str) -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(host(call))
}

/// Duplicates `fd` with close-on-exec set.
pub(crate) fn dup_cloexec(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    let raw = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(0))
        .map_err(host("fcntl(F_DUPFD_CLOEXEC)"))?;
    // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// What a fork-like child of the sentry keeps: these files become fd 0 (`memfd`), fd 1
/// (`socket`) and fd 2 (`extra`, if any); `parent` is the sentry's pid; `rseq` is the rseq
/// area registered for the forking thread, if any.
#[derive(Clone, Copy)]
struct ChildSetup {
    memfd: RawFd,
    extra: Option<RawFd>,
    socket: RawFd,
    parent: libc::pid_t,
    rseq: Option<RseqArea>,
}

/// Installs `filter` (if given) and jumps to the stub's factory loop at `entry`
/// ([`stub::factory_entry`], found before the fork: the child has no global offset table).
///
/// # Safety
/// Call only in the child of a fork-like clone (its own copy of the address space, with only
/// the calling thread) already stripped down to the factory's files, signal state and
/// credentials. Never returns.
unsafe fn run_factory(filter: Option<&[Insn]>, entry: u64) -> ! {
    // SAFETY: `filter` points into this process's copy of the memory it was built in; only
    // raw system calls are made.
    if filter.is_some_and(|program| !unsafe { stub_filter::install_raw(program) }) {
        // SAFETY: ends this process; nothing to clean up.
        unsafe { exit_setup_failed() };
    }
    // SAFETY: the stub code at STUB_BASE was mapped in the sentry before any fork and so is
    // present here; the factory loop never returns and uses only raw system calls.
    unsafe {
        let entry: extern "C" fn() -> ! = std::mem::transmute(entry as usize);
        entry()
    }
}

/// Ends a fork-like child whose set-up failed, with a raw system call.
///
/// # Safety
/// Only in such a child; nothing is cleaned up.
unsafe fn exit_setup_failed() -> ! {
    // SAFETY: exit_group does not return; the caller accepts that nothing is cleaned up.
    unsafe {
        crate::raw_syscall(
            libc::SYS_exit_group,
            [libc::c_long::from(SETUP_FAILED), 0, 0, 0, 0, 0],
        )
    };
    unreachable!("exit_group returned")
}

/// Strips a fork-like child of the sentry down to what factories (and the zygote) start
/// with: the files of `setup` as fd 0, 1 and 2, nothing else open; killed when the master
/// thread exits; default signal dispositions, nothing blocked; no rseq area; no capabilities. Exits the child with [`SETUP_FAILED`] if any step fails.
///
/// # Safety
/// Call only in the child of a fork-like clone: its own copy of the address space, with only
/// the calling thread. After it, only raw system calls may run in the child.
unsafe fn shed_sentry(setup: ChildSetup) {
    use libc::{c_long, syscall};
    let ChildSetup {
        memfd,
        extra,
        socket,
        parent,
        rseq,
    } = setup;
    // A kernel `struct sigaction` with SIG_DFL and no flags, and (its first word) an empty set.
    let default_action = [0u64; 4];
    // SAFETY: we are a single-threaded copy of the sentry that is about to abandon it: only
    // raw system calls follow (no locks, no allocation). The pointers passed point to
    // `default_action`, `cap_header` or `cap_data` on this stack, or to our registered rseq
    // area. Closing fds and dropping the signal handlers cannot harm Rust code of the sentry
    // because none runs here again.
    unsafe {
        let high = |fd: RawFd| {
            syscall(
                libc::SYS_fcntl,
                c_long::from(fd),
                c_long::from(libc::F_DUPFD),
                3,
            )
        };
        let memfd = high(memfd);
        let socket = high(socket);
        let extra = extra.map_or(-1, high);
        let first_closed: c_long = if extra >= 0 { 3 } else { 2 };
        let ready = memfd >= 0
            && socket >= 0
            && syscall(libc::SYS_dup2, memfd, 0) == 0
            && syscall(libc::SYS_dup2, socket, 1) == 1
            && (extra < 0 || syscall(libc::SYS_dup2, extra, 2) == 2)
            && syscall(libc::SYS_close_range, first_closed, c_long::from(u32::MAX), 0) == 0
            && syscall(libc::SYS_prctl, c_long::from(libc::PR_SET_PDEATHSIG), c_long::from(libc::SIGKILL)) == 0
            // The sentry may have died before the death signal was armed.
            && syscall(libc::SYS_getppid) == c_long::from(parent)
            && syscall(libc::SYS_rt_sigprocmask, c_long::from(libc::SIG_SETMASK), default_action.as_ptr(), 0, 8) == 0;
        // The kernel writes to a registered rseq area when it preempts us; the area is about
        // to be unmapped, and a failed write is a SIGSEGV.
        let ready = ready
            && rseq.is_none_or(|area| {
                syscall(
                    libc::SYS_rseq,
                    area.addr,
                    c_long::from(area.len),
                    c_long::from(RSEQ_FLAG_UNREGISTER),
                    c_long::from(RSEQ_SIG),
                ) == 0
            });
        // No capabilities: what runs application code (and what forks it) needs none. A
        // `struct __user_cap_header_struct` (version 3, this process) and two zeroed
        // `__user_cap_data_struct`s (effective, permitted, inheritable).
        let cap_header: [u32; 2] = [0x2008_0522, 0];
        let cap_data = [0u32; 6];
        let ready = ready && syscall(libc::SYS_capset, cap_header.as_ptr(), cap_data.as_ptr()) == 0;
        if !ready {
            syscall(libc::SYS_exit_group, c_long::from(SETUP_FAILED));
        }
        for signo in 1..=64 {
            if signo != libc::SIGKILL && signo != libc::SIGSTOP {
                syscall(
                    libc::SYS_rt_sigaction,
                    c_long::from(signo),
                    default_action.as_ptr(),
                    0,
                    8,
                );
            }
        }
    }
}

/// A process forked from the sentry before its seccomp filter is installed, whose only job is
/// to fork factories (`clone(CLONE_PARENT)`, so they are children of the sentry as if the
/// master thread had forked them). Factories, and the stubs they make, then carry no filter
/// of the sentry (see the module doc). The zygote itself has no filter: it never runs
/// application code, and its only input is its socket to the sentry.
///
/// Protocol on its socket: the sentry sends the offset of the new factory's command page in
/// the command file (8 bytes) carrying the factory's socket end and the command file
/// (`SCM_RIGHTS`, in that order); the zygote answers with the factory's pid, or a negated errno, as 4 bytes.
/// End of file ends the zygote. It holds the memory file (fd 0), the socket (fd 1) and the
/// extra file (fd 2), and stays a copy of the sentry as it was at platform creation.
struct Zygote {
    pid: Pid,
    socket: OwnedFd,
    commands: Arc<CommandFile>,
    /// Its CPU set as forked (the master thread's), which each factory takes back; `None` if
    /// it could not be read (then nothing narrows the zygote's).
    cpus: Option<CpuSet>,
    /// The lowest fd a factory's table leaves free ([`Factory::listener_fd`]).
    listener_fd: RawFd,
}

impl Zygote {
    /// Forks the zygote, which keeps `memfd` and `extra` for its factories. Runs on the
    /// master thread, whose rseq area is `rseq`. Every factory it forks installs `filter`, if
    /// given.
    fn spawn(
        memfd: BorrowedFd<'_>,
        extra: Option<BorrowedFd<'_>>,
        rseq: Option<RseqArea>,
        filter: Option<&[Insn]>,
    ) -> Result<Zygote> {
        let commands = CommandFile::create()?;
        let (ours, theirs) = unix_socketpair("socketpair (zygote)")?;
        let setup = ChildSetup {
            memfd: memfd.as_raw_fd(),
            extra: extra.map(|fd| fd.as_raw_fd()),
            socket: theirs.as_raw_fd(),
            parent: nix::unistd::getpid().as_raw(),
            rseq,
        };
        // Read here, not in the zygote: the master thread narrows the zygote's set as soon as
        // it has forked it ([`Placement`]).
        let cpus = sched_getaffinity(Pid::from_raw(0))
            .inspect_err(|e| log::debug!("ptrace: sched_getaffinity: {e}"))
            .ok();
        let keep = Keep::of_current_thread(filter);
        if keep.is_none() {
            log::debug!("ptrace: the zygote keeps every mapping of the sentry");
        }
        // SAFETY: a clone without CLONE_VM gives the child its own copy of this address space
        // (fork without running atfork handlers). The child only runs `become_zygote`, which
        // makes raw system calls, uses stack buffers and never returns, so no lock or
        // allocator state copied from other threads is ever used there.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::c_long::from(libc::SIGCHLD),
                0,
                0,
                0,
                0,
            )
        };
        if rc == 0 {
            // SAFETY: we are the freshly cloned child described above, and `keep` was taken on
            // this thread.
            unsafe { become_zygote(setup, keep.as_ref(), filter, cpus) }
        }
        let pid = Errno::result(rc).map_err(host("clone (zygote)"))?;
        let pid = Pid::from_raw(pid as libc::pid_t);
        log::debug!("ptrace: forked zygote {pid}");
        Ok(Zygote {
            pid,
            socket: ours,
            commands,
            cpus,
            listener_fd: if setup.extra.is_some() { 3 } else { 2 },
        })
    }

    /// Has the zygote fork a factory.
    fn spawn_factory(&self) -> Result<Factory> {
        let (ours, theirs) = unix_socketpair("socketpair (stub factory)")?;
        setsockopt(&ours, sockopt::PassCred, &true).map_err(host("setsockopt(SO_PASSCRED)"))?;
        let commands = self.commands.page()?;
        let fds = [theirs.as_raw_fd(), self.commands.fd.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let offset = commands.offset().to_ne_bytes();
        let iov = [std::io::IoSlice::new(&offset)];
        loop {
            match nix::sys::socket::sendmsg::<()>(
                self.socket.as_raw_fd(),
                &iov,
                &cmsg,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(host("sendmsg (zygote request)")(e)),
            }
        }
        drop(theirs);
        let mut answer = [0u8; 4];
        let mut got = 0;
        while got < answer.len() {
            match nix::unistd::read(self.socket.as_raw_fd(), &mut answer[got..]) {
                Ok(0) => {
                    return Err(Error::StubDied {
                        pid: self.pid.as_raw(),
                        status: "zygote closed its socket".into(),
                    })
                }
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(host("read (zygote reply)")(e)),
            }
        }
        let pid = i32::from_ne_bytes(answer);
        if pid <= 0 {
            return Err(Error::Host {
                call: "clone (zygote)",
                source: Errno::from_raw(-pid),
            });
        }
        let pid = Pid::from_raw(pid);
        log::debug!("ptrace: zygote forked stub factory {pid}");
        Ok(Factory {
            pid,
            socket: ours,
            prepared: Vec::new(),
            readier: None,
            prepared_mapper: None,
            commands: Some(commands),
            handed_to_reaper: false,
            listener_fd: self.listener_fd,
        })
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        sys::kill_and_reap(self.pid);
    }
}

/// The zygote's loop (see [`Zygote`]), after it dropped every mapping but `keep`, if given.
/// Each factory takes `cpus` (the zygote's CPU set as forked) back, if given.
///
/// # Safety
/// As for [`run_factory`], in a fresh child not stripped yet; `keep` was taken on the thread
/// that forked it, with the same `filter`. Never returns.
unsafe fn become_zygote(
    setup: ChildSetup,
    keep: Option<&Keep>,
    filter: Option<&[Insn]>,
    cpus: Option<CpuSet>,
) -> ! {
    use libc::{c_long, syscall};
    // Read back (volatile) in each factory, so that the compiler cannot compute it again
    // there from the global offset table, which a factory does not have.
    let entry = stub::factory_entry();
    // SAFETY: the caller guarantees we are a fresh single-threaded fork-like child; from here
    // on it runs only code of the loaded objects, on this thread's stack, reading `filter`,
    // and its factories (see the clone below) not even the objects' writable data.
    unsafe {
        shed_sentry(setup);
        if let Some(keep) = keep {
            keep.unmap_the_rest();
            keep.unshare();
        }
    }
    // Each factory keeps the zygote's own fd 0 and fd 2, and its stripped state.
    let parent = setup.parent;
    loop {
        let mut offset = 0u64;
        let mut iov = libc::iovec {
            iov_base: (&raw mut offset).cast(),
            iov_len: 8,
        };
        // Room for one cmsghdr and two fds (CMSG_SPACE(2 * sizeof(int)) is 24 on x86-64).
        let mut control = [0u64; 4];
        // SAFETY: all-zero is a valid msghdr; the pointers are set just below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` describes buffers on this stack that live across the call.
        let n = unsafe { syscall(libc::SYS_recvmsg, 1, &raw mut msg, 0) };
        if n <= 0 {
            // SAFETY: ends this process; nothing to clean up.
            unsafe { syscall(libc::SYS_exit_group, 0) };
        }
        let header = control.as_ptr().cast::<libc::cmsghdr>();
        // SAFETY: `header` points into `control`, which the kernel filled (or left zeroed);
        // the fds are read only when the header says they are there (a lone one is closed).
        let (fd, commands) = unsafe {
            let rights = msg.msg_controllen >= libc::CMSG_LEN(4) as usize
                && (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_RIGHTS;
            let data = libc::CMSG_DATA(header).cast::<i32>();
            if rights && (*header).cmsg_len >= libc::CMSG_LEN(8) as usize {
                (data.read_unaligned(), data.add(1).read_unaligned())
            } else {
                if rights {
                    syscall(libc::SYS_close, c_long::from(data.read_unaligned()));
                }
                (-1, -1)
            }
        };
        let answer: i32 = if fd < 0 || n != 8 {
            // SAFETY: closes the fds received above, if any (-1 is harmless).
            unsafe {
                syscall(libc::SYS_close, c_long::from(fd));
                syscall(libc::SYS_close, c_long::from(commands));
            }
            -libc::EPROTO
        } else {
            // SAFETY: a fork-like clone of this single-threaded zygote; the child turns into a
            // factory with raw system calls only and never returns. It has no copy of the
            // loaded objects' writable data (`Keep::unshare`), so it reads no `errno`, no
            // global offset table and no static: the `syscall` instruction itself, its stack,
            // the filter and `entry`.
            let pid = unsafe {
                crate::raw_syscall(
                    libc::SYS_clone,
                    [c_long::from(libc::CLONE_PARENT), 0, 0, 0, 0, 0],
                )
            };
            if pid == 0 {
                // SAFETY: we are that child: a copy of the zygote, which `shed_sentry` already
                // stripped (fds 0 and 2, signal state, rseq, capabilities are the factory's),
                // so only the socket moves to fd 1, the command page replaces the inherited
                // private one at CMD_PAGE (read-only, shared with the sentry's writable view;
                // the stub pages are never used by this Rust code) and the death signal,
                // which a fork clears, is armed again.
                unsafe {
                    use crate::raw_syscall as raw;
                    let page = stub::CMD_PAGE as c_long;
                    let (fd, commands) = (c_long::from(fd), c_long::from(commands));
                    let ready = raw(libc::SYS_dup2, [fd, 1, 0, 0, 0, 0]) == 1
                        && raw(libc::SYS_close, [fd, 0, 0, 0, 0, 0]) == 0
                        && raw(
                            libc::SYS_mmap,
                            [
                                page,
                                PAGE_SIZE as c_long,
                                c_long::from(libc::PROT_READ),
                                c_long::from(libc::MAP_SHARED | libc::MAP_FIXED),
                                commands,
                                offset as c_long,
                            ],
                        ) == page
                        && raw(libc::SYS_close, [commands, 0, 0, 0, 0, 0]) == 0
                        && raw(
                            libc::SYS_prctl,
                            [
                                c_long::from(libc::PR_SET_PDEATHSIG),
                                c_long::from(libc::SIGKILL),
                                0,
                                0,
                                0,
                                0,
                            ],
                        ) == 0
                        && raw(libc::SYS_getppid, [0; 6]) == c_long::from(parent);
                    if !ready {
                        exit_setup_failed();
                    }
                    // Back to every CPU of the sentry, before any stub (which inherits it)
                    // is made. Best effort: it fails only if a cpuset update since allows
                    // none of those CPUs, and then the kernel runs this process where the
                    // cpuset allows (the zygote's narrower set is no better).
                    if let Some(set) = cpus {
                        raw(
                            libc::SYS_sched_setaffinity,
                            [
                                0,
                                std::mem::size_of::<CpuSet>() as c_long,
                                (&raw const set) as c_long,
                                0,
                                0,
                                0,
                            ],
                        );
                    }
                    run_factory(filter, std::ptr::read_volatile(&raw const entry))
                }
            }
            // SAFETY: closes our copies of the factory's socket end and command page,
            // received above.
            unsafe {
                syscall(libc::SYS_close, c_long::from(fd));
                syscall(libc::SYS_close, c_long::from(commands));
            }
            // The new factory's pid, or the clone's negated errno.
            pid as i32
        };
        let bytes = answer.to_ne_bytes();
        // SAFETY: writes 4 bytes from this stack.
        unsafe { syscall(libc::SYS_write, 1, bytes.as_ptr(), 4) };
    }
}

/// Most ranges a [`Keep`] holds (after merging); a thread whose ranges do not fit keeps
/// everything.
const KEEP_MAX: usize = 32;

/// What of the sentry's address space the zygote keeps, in page-aligned, sorted, disjoint
/// ranges: every loaded object's segments (the zygote's and a new factory's code until it
/// jumps to the stub, their data and the GOT), the forking thread's stack (with its TLS and
/// thread descriptor at the top, where `errno` lives), the factory filter and the stub pages.
/// The rest (the heap, other threads' stacks and arenas, the memory file's and the command
/// file's mappings, the main stack) would otherwise be copied by every factory's fork, page
/// tables of its anonymous memory included, and then unmapped by the factory again.
///
/// Of the kept ranges, the loaded objects' writable segments (their relocated data, global
/// offset table, `.data` and `.bss`: the only kept memory with private pages of its own) are
/// not copied into the factories at all ([`Keep::unshare`]): a new factory runs only code,
/// its stack and the filter before it jumps to the stub and unmaps the rest.
#[derive(Clone, Copy)]
struct Keep {
    ranges: Ranges,
    unshared: Ranges,
}

/// Page-aligned, sorted, disjoint address ranges, at most [`KEEP_MAX`].
#[derive(Clone, Copy)]
struct Ranges {
    ranges: [(u64, u64); KEEP_MAX],
    len: usize,
}

impl Keep {
    /// The ranges for a zygote forked by the calling thread, which holds `filter`; `None`
    /// (keep everything) if the thread's stack cannot be found or the ranges do not fit.
    fn of_current_thread(filter: Option<&[Insn]>) -> Option<Keep> {
        let segments = loaded_segments();
        let unshared = segments.iter().filter(|s| s.writable).map(|s| s.range);
        let unshared = Ranges::merged(unshared.collect())?;
        let mut ranges: Vec<_> = segments.iter().map(|s| s.range).collect();
        ranges.push(current_thread_stack()?);
        if let Some(program) = filter {
            let start = program.as_ptr() as u64;
            ranges.push((start, start + std::mem::size_of_val(program) as u64));
        }
        ranges.push((stub::STUB_BASE, stub::CMD_PAGE + PAGE_SIZE));
        Some(Keep {
            ranges: Ranges::merged(ranges)?,
            unshared,
        })
    }

    /// Unmaps every user address outside the kept ranges.
    ///
    /// # Safety
    /// Only in a single-threaded fork-like child that from now on touches nothing but the
    /// kept ranges. Makes raw system calls only and cannot panic.
    unsafe fn unmap_the_rest(&self) {
        let mut from = 0;
        for &(start, end) in self.ranges.iter() {
            if start > from {
                // SAFETY: the caller guarantees nothing outside the kept ranges is used.
                unsafe { libc::syscall(libc::SYS_munmap, from, start - from) };
            }
            from = end;
        }
        if from < stub::TASK_SIZE {
            // SAFETY: as above.
            unsafe { libc::syscall(libc::SYS_munmap, from, stub::TASK_SIZE - from) };
        }
    }

    /// Marks the loaded objects' writable segments `MADV_DONTFORK`: the calling process
    /// keeps them, its children get none of them.
    ///
    /// # Safety
    /// Only in the zygote, whose factories never touch those segments. Raw system calls only.
    unsafe fn unshare(&self) {
        for &(start, end) in self.unshared.iter() {
            // SAFETY: changes only what children inherit; a failure leaves them the copy.
            unsafe { libc::syscall(libc::SYS_madvise, start, end - start, libc::MADV_DONTFORK) };
        }
    }
}

impl Ranges {
    /// The ranges, without panicking.
    fn iter(&self) -> impl Iterator<Item = &(u64, u64)> {
        self.ranges.iter().take(self.len)
    }

    /// `ranges` widened to pages, sorted and merged; `None` if more than [`KEEP_MAX`] remain.
    fn merged(mut ranges: Vec<(u64, u64)>) -> Option<Ranges> {
        for range in &mut ranges {
            *range = (
                range.0 & !(PAGE_SIZE - 1),
                range.1.div_ceil(PAGE_SIZE) * PAGE_SIZE,
            );
        }
        ranges.sort_unstable();
        let mut keep = Ranges {
            ranges: [(0, 0); KEEP_MAX],
            len: 0,
        };
        for (start, end) in ranges {
            match keep.len.checked_sub(1).map(|last| &mut keep.ranges[last]) {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ if keep.len == KEEP_MAX => return None,
                _ => {
                    keep.ranges[keep.len] = (start, end);
                    keep.len += 1;
                }
            }
        }
        Some(keep)
    }
}

/// A loaded object's `PT_LOAD` segment (its `.bss` included).
struct Segment {
    range: (u64, u64),
    /// Its data is written (relocated, at least): it has private pages.
    writable: bool,
}

/// Every loaded object's `PT_LOAD` segments.
fn loaded_segments() -> Vec<Segment> {
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        ranges: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the C library passes a valid `info` whose `dlpi_phdr` holds `dlpi_phnum`
        // headers, and our own `ranges` pointer from below.
        unsafe {
            let info = &*info;
            let ranges = &mut *ranges.cast::<Vec<Segment>>();
            for i in 0..usize::from(info.dlpi_phnum) {
                let header = &*info.dlpi_phdr.add(i);
                if header.p_type == libc::PT_LOAD {
                    let start = info.dlpi_addr.wrapping_add(header.p_vaddr);
                    ranges.push(Segment {
                        range: (start, start.wrapping_add(header.p_memsz)),
                        writable: header.p_flags & libc::PF_W != 0,
                    });
                }
            }
        }
        0
    }
    let mut ranges: Vec<Segment> = Vec::new();
    // SAFETY: `collect` only reads the headers it is given and pushes to `ranges`, which
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(collect), (&raw mut ranges).cast()) };
    ranges
}

/// The calling thread's stack mapping without its guard (glibc keeps the thread descriptor
/// and static TLS at its top), if the C library tells it and it holds the stack pointer.
fn current_thread_stack() -> Option<(u64, u64)> {
    // SAFETY: all-zero is a valid out parameter; pthread_getattr_np initialises it, and it is
    // destroyed below only if that succeeded.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a valid out pointer; pthread_self is the calling thread.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) } != 0 {
        return None;
    }
    let mut addr = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: `attr` was initialised above; the out pointers are valid.
    let got = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) } == 0;
    // SAFETY: `attr` was initialised by pthread_getattr_np and is not used again.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    let (start, end) = (addr as u64, addr as u64 + size as u64);
    let here = (&raw const attr) as u64;
    (got && (start..end).contains(&here)).then_some((start, end))
}

/// The rseq area glibc registered for a thread (glibc 2.35+ registers one per thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RseqArea {
    pub(super) addr: u64,
    pub(super) len: u32,
}

impl RseqArea {
    /// The calling thread's registration, if the C library made one.
    pub(super) fn of_current_thread() -> Option<RseqArea> {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks up a symbol.
        let (offset, size) = unsafe {
            (
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()),
                libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()),
            )
        };
        if offset.is_null() || size.is_null() {
            return None;
        }
        // SAFETY: glibc defines `ptrdiff_t __rseq_offset` and `unsigned int __rseq_size`,
        // initialised before any thread starts and constant afterwards.
        let (offset, size) = unsafe { (*offset.cast::<isize>(), *size.cast::<u32>()) };
        if size == 0 {
            return None;
        }
        let thread_pointer: u64;
        // SAFETY: on x86-64 Linux the fs base is the thread pointer, and the TLS ABI puts the
        // thread pointer's own value in the first word it points to. Reads memory only.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) thread_pointer, options(nostack, readonly, preserves_flags));
        }
        // glibc registers `max(__rseq_size, 32)` bytes: 32 is the original `struct rseq`.
        Some(RseqArea {
            addr: thread_pointer.wrapping_add_signed(offset as i64),
            len: size.max(32),
        })
    }
}
