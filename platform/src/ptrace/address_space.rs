//! Address spaces: one factory and the stubs of every host thread that uses it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;

use super::factory::{CommandPage, Factory, NewStub};
use super::mapper::Mapper;
use super::sys::{self, host, WaitStatus};
use super::Shared;
use crate::stub::{self, CMD_CAPACITY, STUB_BASE};
use crate::{AddressSpace, BatchError, Error, MapOp, Perms, Regs, Result};

/// Address-space ids, for logs. Never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An application address space of the ptrace platform.
pub(crate) struct PtraceAddressSpace {
    id: u64,
    me: Weak<PtraceAddressSpace>,
    shared: Arc<Shared>,
    inner: Mutex<Inner>,
    /// The command page and the mapper. Held for the whole of a batch, from writing the page
    /// until the stub stops again or the mapper reports: stubs read the page only while they
    /// run a batch, so no stub ever reads a page another batch is writing. Taken before
    /// `inner` (to make a stub); nothing else is taken under it. `None` once released: the
    /// page goes to the reaper with the processes that map it.
    commands: Mutex<Option<Commands>>,
}

/// Guarded by `PtraceAddressSpace::commands`.
struct Commands {
    /// The sentry's writable view of the address space's command page (`stub::CMD_PAGE`),
    /// which every stub of this address space (and no other) maps read-only.
    page: CommandPage,
    mapper: MapperState,
}

/// Who runs the batches of an address space.
enum MapperState {
    /// The calling thread's stub, by injection: the address space was made without a
    /// mapper, or making one failed (no user notification on this host, say).
    Off,
    /// A mapper is made for the first batch, from a stub the factory has ready. One that
    /// dies takes the address space with it.
    Due,
    Running(Mapper),
    /// The mapper died or was wedged (and was reaped): the address space is being released
    /// and no batch runs any more.
    Died,
}

/// Whether an address space applies its batches through a mapper (`mapper.rs`) or by
/// injection into the calling thread's stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batches {
    Mapper,
    Injected,
}

/// Guarded by `PtraceAddressSpace::inner`. Held while talking to the factory, so stub
/// requests are serialised and every stub is registered before anyone can release.
struct Inner {
    /// `None` once released.
    factory: Option<Factory>,
    /// Every stub created in this address space and not yet killed.
    stubs: Vec<Pid>,
}

/// A stub of the current host thread: traced by it, running in the address space at `key`.
struct LocalStub {
    /// The address of the `PtraceAddressSpace` value. `owner` keeps that allocation alive,
    /// so while this entry exists no other address space can have the same key.
    key: usize,
    /// The platform the address space belongs to (`platform_key`).
    platform: usize,
    owner: Weak<PtraceAddressSpace>,
    pid: Pid,
}

impl Drop for LocalStub {
    /// The thread is exiting (or the entry is pruned): its stubs are no use to anyone.
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.retire_stub(self.pid);
        }
    }
}

thread_local! {
    /// The stubs this host thread traces, one per address space it used.
    static LOCAL_STUBS: RefCell<Vec<LocalStub>> = const { RefCell::new(Vec::new()) };
}

/// Retires every stub the calling thread traces, as its exit would.
pub(crate) fn retire_local_stubs() {
    // Taken out first: retiring takes an address space's lock, never under the borrow.
    drop(LOCAL_STUBS.take());
}

fn local_stub(shared: &Shared, key: usize) -> Option<Pid> {
    let platform = platform_key(shared);
    LOCAL_STUBS.with_borrow(|stubs| {
        stubs
            .iter()
            .find(|s| s.key == key && s.platform == platform)
            .map(|s| s.pid)
    })
}

fn platform_key(shared: &Shared) -> usize {
    std::ptr::from_ref(shared) as usize
}

/// The key of an address space: the address of its value inside the `Arc`.
fn key_of(address_space: &Arc<dyn AddressSpace>) -> usize {
    Arc::as_ptr(address_space).cast::<()>() as usize
}

/// The calling thread's stub in `address_space`, created if needed.
///
/// # Errors
/// `address_space` is not one of this platform's; creating the stub failed.
pub(super) fn stub_of(shared: &Shared, address_space: &Arc<dyn AddressSpace>) -> Result<Pid> {
    let key = key_of(address_space);
    if let Some(pid) = local_stub(shared, key) {
        return Ok(pid);
    }
    let found = {
        let registry = shared
            .address_spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        registry.get(&key).and_then(Weak::upgrade)
    };
    match found {
        Some(owner) => owner.stub_for_current_thread(),
        None => Err(Error::Unavailable(
            "ptrace",
            "the address space was not created by this ptrace platform".into(),
        )),
    }
}

impl PtraceAddressSpace {
    /// Creates an address space with a fresh factory, injecting its batches, and registers
    /// it in `shared`.
    pub(crate) fn create(shared: &Arc<Shared>) -> Result<Arc<PtraceAddressSpace>> {
        Self::create_with(shared, Batches::Injected)
    }

    /// Creates an address space with a fresh factory, applying its batches as `batches`
    /// says, and registers it in `shared`.
    pub(crate) fn create_with(
        shared: &Arc<Shared>,
        batches: Batches,
    ) -> Result<Arc<PtraceAddressSpace>> {
        let mut factory = shared.master.spawn_factory()?;
        let commands = factory.take_commands().ok_or(Error::Host {
            call: "stub factory without a command page",
            source: Errno::EPROTO,
        })?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "ptrace: address space {id} created (factory {})",
            factory.pid()
        );
        let address_space = Arc::new_cyclic(|me| PtraceAddressSpace {
            id,
            me: me.clone(),
            shared: shared.clone(),
            inner: Mutex::new(Inner {
                factory: Some(factory),
                stubs: Vec::new(),
            }),
            commands: Mutex::new(Some(Commands {
                page: commands,
                mapper: match batches {
                    Batches::Mapper => MapperState::Due,
                    Batches::Injected => MapperState::Off,
                },
            })),
        });
        shared
            .address_spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(address_space.key(), Arc::downgrade(&address_space));
        Ok(address_space)
    }

    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The calling thread's stub in this address space, created and seized if needed.
    fn stub_for_current_thread(&self) -> Result<Pid> {
        let key = self.key();
        if let Some(pid) = local_stub(&self.shared, key) {
            return Ok(pid);
        }
        // The ptrace platform readies no stub: this one waits in `pause()`.
        let pid = self.spawn_stub()?.pid;
        if let Err(e) = seize(pid) {
            if matches!(e, Error::StubDied { .. }) {
                self.forget_stub(pid);
            }
            return Err(e);
        }
        log::debug!(
            "ptrace: address space {}: stub {pid} for thread {}",
            self.id,
            nix::unistd::gettid()
        );
        LOCAL_STUBS.with_borrow_mut(|stubs| {
            stubs.retain(|s| s.owner.strong_count() > 0);
            stubs.push(LocalStub {
                key,
                platform: platform_key(&self.shared),
                owner: self.me.clone(),
                pid,
            });
        });
        Ok(pid)
    }

    /// Creates a stub (waiting in `pause()`, not traced, unless the platform's readier
    /// readied it) and registers it, so that releasing the address space kills it.
    ///
    /// # Errors
    /// The address space was released, or its factory failed.
    pub(crate) fn spawn_stub(&self) -> Result<NewStub> {
        let mut inner = self.lock();
        let factory = inner
            .factory
            .as_mut()
            .ok_or_else(|| released_error("stub factory request (address space released)"))?;
        let stub = factory.new_stub()?;
        inner.stubs.push(stub.pid);
        Ok(stub)
    }

    /// True once [`AddressSpace::release`] ran.
    pub(crate) fn is_released(&self) -> bool {
        self.lock().factory.is_none()
    }

    /// Kills one stub that nobody needs any more.
    pub(crate) fn retire_stub(&self, pid: Pid) {
        let registered = {
            let mut inner = self.lock();
            let before = inner.stubs.len();
            inner.stubs.retain(|&p| p != pid);
            inner.stubs.len() != before
        };
        // An unregistered pid was already killed and reaped by `release`, and may belong to
        // someone else by now.
        if registered {
            sys::kill_and_reap(pid);
        }
    }

    /// Forgets stub `pid` without signalling it: it died and the wait that saw it die reaped
    /// it (stubs are the sentry's children), so its pid may already name another process.
    fn forget_stub(&self, pid: Pid) {
        self.lock().stubs.retain(|&p| p != pid);
    }
}

/// The calling thread's stub `pid` died and was reaped: drop it from the thread's stubs and
/// from its address space, so that nothing (retiring it, releasing the address space) sends
/// SIGKILL to a pid that may have been reused. The thread gets a new stub on its next use.
pub(super) fn forget_dead_stub(pid: Pid) {
    let entry = LOCAL_STUBS.with_borrow_mut(|stubs| {
        let i = stubs.iter().position(|s| s.pid == pid)?;
        Some(stubs.swap_remove(i))
    });
    if let Some(owner) = entry.as_ref().and_then(|e| e.owner.upgrade()) {
        owner.forget_stub(pid);
    }
    // Dropping the entry retires a pid its address space no longer lists: no signal is sent.
    drop(entry);
}

/// A ptrace request on stub `pid`, which should be in a ptrace stop, failed with `e`. ESRCH
/// there means the stub was killed while stopped (from outside, or by the OOM killer): its
/// death is collected (the wait reaps it) and reported as [`Error::StubDied`].
pub(crate) fn stopped_stub_error(pid: Pid, call: &'static str, e: nix::errno::Errno) -> Error {
    if e != nix::errno::Errno::ESRCH {
        return host(call)(e);
    }
    loop {
        match sys::wait(pid) {
            // A stop reported before the kill comes first; the exit follows.
            Ok(WaitStatus::Stopped { .. }) => {}
            Ok(died) => {
                return Error::StubDied {
                    pid: pid.as_raw(),
                    status: died.describe(),
                }
            }
            Err(_) => return host(call)(e),
        }
    }
}

/// Runs host system call `nr` in stub `pid`, stopped and traced by the calling thread, and
/// returns its result. The stub's registers are left as the call left them: they matter only
/// when the sentry runs application code in the stub, and every switch loads them all first.
///
/// # Errors
/// ptrace failures, the stub died, or the call failed (the errno in [`Error::Injected`]).
pub(crate) fn inject_into(
    pid: Pid,
    call: &'static str,
    nr: libc::c_long,
    args: [u64; 6],
) -> Result<u64> {
    let regs = injection_regs(stub::syscall_insn(), nr, args);
    let result = run_injected(pid, call, regs)?.rax;
    injected_result(call, result)
}

/// The registers of an injection entered at `entry` with system call `nr` and `args`: the
/// 64-bit user segments and plain flags of a fresh thread; the call sets the rest it reads.
/// No stub's registers are kept across an injection, so nothing needs saving: one
/// PTRACE_SETREGS and one PTRACE_GETREGS (for the result) per stop.
pub(super) fn injection_regs(entry: u64, nr: libc::c_long, args: [u64; 6]) -> Regs {
    let mut regs = crate::initial_regs(entry, 0);
    regs.rax = nr as u64;
    // Not in a system call: no restart logic may rewrite rax or rip on the way out.
    regs.orig_rax = u64::MAX;
    [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = args;
    regs
}

/// A raw system-call result: the value, or the errno as [`Error::Injected`].
pub(super) fn injected_result(call: &'static str, result: u64) -> Result<u64> {
    let signed = result as i64;
    if (-4095..0).contains(&signed) {
        return Err(Error::Injected {
            call,
            errno: -signed as i32,
        });
    }
    Ok(result)
}

/// Runs stub `pid`, stopped and traced by the calling thread, from `regs` to its next
/// `int3` and returns its registers there. The stub's registers are left as the injected
/// code left them: they matter only when the sentry runs application code in the stub, and
/// every switch loads them all first.
///
/// # Errors
/// ptrace failures, or the stub died.
pub(super) fn run_injected(pid: Pid, call: &'static str, regs: Regs) -> Result<Regs> {
    ptrace::setregs(pid, regs).map_err(|e| stopped_stub_error(pid, "ptrace(PTRACE_SETREGS)", e))?;
    loop {
        ptrace::cont(pid, None).map_err(|e| stopped_stub_error(pid, "ptrace(PTRACE_CONT)", e))?;
        match sys::wait(pid).map_err(host("wait4 (stub)"))? {
            WaitStatus::Stopped {
                signal: libc::SIGTRAP,
                event: 0,
            } => break,
            // A late interrupt signal or a leftover seize stop: suppress it and go on.
            WaitStatus::Stopped { signal, event } => {
                log::debug!("ptrace: stub {pid}: suppressed stop (signal {signal}, event {event}) during {call}");
            }
            died => {
                return Err(Error::StubDied {
                    pid: pid.as_raw(),
                    status: died.describe(),
                })
            }
        }
    }
    ptrace::getregs(pid).map_err(host("ptrace(PTRACE_GETREGS)"))
}

/// One operation of a batch as the stub runs it.
struct Call {
    name: &'static str,
    nr: libc::c_long,
    addr: u64,
    len: u64,
    prot: i32,
    offset: u64,
}

impl Call {
    fn of(op: &MapOp) -> Call {
        match *op {
            MapOp::Map {
                addr,
                len,
                file_offset,
                perms,
            } => Call {
                name: "mmap",
                nr: libc::SYS_mmap,
                addr,
                len,
                prot: perms.prot(),
                offset: file_offset,
            },
            MapOp::Unmap { addr, len } => Call {
                name: "munmap",
                nr: libc::SYS_munmap,
                addr,
                len,
                prot: 0,
                offset: 0,
            },
            MapOp::Protect { addr, len, perms } => Call {
                name: "mprotect",
                nr: libc::SYS_mprotect,
                addr,
                len,
                prot: perms.prot(),
                offset: 0,
            },
        }
    }

    /// The system-call arguments of the call (`mmap` maps the memory file, fd 0 of every
    /// stub, shared and fixed; the other calls ignore the arguments they do not take).
    fn args(&self) -> [u64; 6] {
        let flags = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
        [self.addr, self.len, self.prot as u64, flags, 0, self.offset]
    }

    /// The call's words on the command page.
    fn command(&self) -> [u64; 3] {
        stub::encode_command(self.nr, self.addr, self.len, self.prot, self.offset)
    }
}

impl PtraceAddressSpace {
    /// Runs `ops` in the mapper or the calling thread's stub, as many at a time as the
    /// command page holds.
    fn apply_batched(&self, ops: &[MapOp]) -> std::result::Result<(), BatchError> {
        let calls: Vec<Call> = ops.iter().map(Call::of).collect();
        // Everything before the first refused range runs; the refused one fails.
        let valid = calls
            .iter()
            .position(|c| Self::check_range(c.name, c.addr, c.len).is_err())
            .unwrap_or(calls.len());
        let mut done = 0;
        while done < valid {
            let end = valid.min(done + CMD_CAPACITY);
            self.run_batch(&calls[done..end])
                .map_err(|(i, error)| BatchError {
                    index: done + i,
                    error,
                })?;
            done = end;
        }
        match calls.get(valid) {
            Some(c) => Err(BatchError {
                index: valid,
                error: Self::check_range(c.name, c.addr, c.len).unwrap_err(),
            }),
            None => Ok(()),
        }
    }

    /// Runs `calls` (1 to `CMD_CAPACITY`) in one go: in the mapper, or in one stop of the
    /// calling thread's stub (the first call from the registers, the rest from the command
    /// page). On failure, the index of the call that failed (nothing after it ran).
    fn run_batch(&self, calls: &[Call]) -> std::result::Result<(), (usize, Error)> {
        let mut guard = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        let commands = guard
            .as_mut()
            .filter(|c| !matches!(c.mapper, MapperState::Died))
            .ok_or((0, released_error("batched injection")))?;
        if let Some(mapper) = self.mapper(&mut commands.mapper) {
            let pid = mapper.pid();
            commands.page.write(calls.iter().flat_map(Call::command));
            return match mapper.run(calls.len()) {
                Ok((index, result)) => batch_outcome(pid, calls, index as usize, result),
                Err(e) => {
                    if let Error::StubDied { .. } = e {
                        // Which calls of the batch ran is unknown: an unmap that did not
                        // would leave the application pages the sentry frees and reuses. So
                        // the address space goes, with every process that maps it; its
                        // threads' next switch fails.
                        log::error!(
                            "ptrace: address space {}: its mapper died ({e}): released",
                            self.id
                        );
                        self.forget_stub(pid);
                        // Under the lock: a batch waiting for it must fail, not use this
                        // mapper, whose pid was reaped (a wait for it could reap another
                        // process that took the pid).
                        commands.mapper = MapperState::Died;
                        drop(guard);
                        self.release();
                    }
                    Err((0, e))
                }
            };
        }
        let pid = self.stub_for_current_thread().map_err(|e| (0, e))?;
        commands
            .page
            .write(calls[1..].iter().flat_map(Call::command));
        let first = &calls[0];
        let mut regs = injection_regs(stub::batch_entry(), first.nr, first.args());
        regs.r12 = (calls.len() - 1) as u64;
        regs.r14 = stub::batch_trap();
        let regs = run_injected(pid, first.name, regs).map_err(|e| {
            if let Error::StubDied { .. } = e {
                forget_dead_stub(pid);
            }
            (0, e)
        })?;
        batch_outcome(pid, calls, regs.r13 as usize, regs.rax)
    }

    /// The running mapper, made first if one is due; `None` when batches are injected.
    fn mapper<'a>(&self, state: &'a mut MapperState) -> Option<&'a mut Mapper> {
        if let MapperState::Due = state {
            *state = match self.start_mapper() {
                Ok(mapper) => {
                    log::debug!("ptrace: address space {}: mapper {}", self.id, mapper.pid());
                    MapperState::Running(mapper)
                }
                Err(e) => {
                    log::warn!(
                        "ptrace: address space {}: no mapper ({e}); injecting batches",
                        self.id
                    );
                    MapperState::Off
                }
            };
        }
        match state {
            MapperState::Running(mapper) => Some(mapper),
            MapperState::Off | MapperState::Due | MapperState::Died => None,
        }
    }

    fn start_mapper(&self) -> Result<Mapper> {
        let mut inner = self.lock();
        let Inner { factory, stubs } = &mut *inner;
        let factory = factory
            .as_mut()
            .ok_or_else(|| released_error("stub factory request (address space released)"))?;
        let mut made = None;
        let started = factory.start_mapper(|pid| {
            stubs.push(pid);
            made = Some(pid);
        });
        drop(inner);
        started.inspect_err(|e| {
            if let Some(pid) = made {
                match e {
                    Error::StubDied { .. } => self.forget_stub(pid),
                    _ => self.retire_stub(pid),
                }
            }
        })
    }

    /// The mapper's pid, if it runs (for tests).
    #[cfg(test)]
    pub(crate) fn mapper_pid(&self) -> Option<Pid> {
        let commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        match commands.as_ref().map(|c| &c.mapper) {
            Some(MapperState::Running(mapper)) => Some(mapper.pid()),
            _ => None,
        }
    }
}

/// What a batch of `calls` that ended at call `index` with raw result `result` means: done,
/// or the index of the call that failed.
fn batch_outcome(
    pid: Pid,
    calls: &[Call],
    index: usize,
    result: u64,
) -> std::result::Result<(), (usize, Error)> {
    let Some(call) = calls.get(index) else {
        log::error!(
            "ptrace: stub {pid} stopped its batch at call {index} of {}",
            calls.len()
        );
        return Err((0, host("batched injection")(Errno::EIO)));
    };
    injected_result(call.name, result).map_err(|e| (index, e))?;
    if index + 1 != calls.len() {
        log::error!(
            "ptrace: stub {pid} stopped its batch early, at call {index} of {}",
            calls.len()
        );
        return Err((index + 1, host("batched injection")(Errno::EIO)));
    }
    Ok(())
}

impl PtraceAddressSpace {
    /// A batch of one.
    fn apply_one(&self, op: MapOp) -> Result<()> {
        self.apply_batched(&[op]).map_err(|e| e.error)
    }

    /// Refuses ranges that would reach the stub pages (or wrap).
    fn check_range(call: &'static str, addr: u64, len: u64) -> Result<()> {
        match addr.checked_add(len) {
            Some(end) if end <= STUB_BASE => Ok(()),
            _ => Err(Error::Injected {
                call,
                errno: libc::EINVAL,
            }),
        }
    }
}

impl AddressSpace for PtraceAddressSpace {
    fn map(&self, addr: u64, len: u64, file_offset: u64, perms: Perms) -> Result<()> {
        self.apply_one(MapOp::Map {
            addr,
            len,
            file_offset,
            perms,
        })
    }

    fn unmap(&self, addr: u64, len: u64) -> Result<()> {
        self.apply_one(MapOp::Unmap { addr, len })
    }

    fn protect(&self, addr: u64, len: u64, perms: Perms) -> Result<()> {
        self.apply_one(MapOp::Protect { addr, len, perms })
    }

    fn apply(&self, ops: &[MapOp]) -> std::result::Result<(), BatchError> {
        self.apply_batched(ops)
    }

    fn release(&self) {
        self.release_then(Box::new(|| {}));
    }
}

impl PtraceAddressSpace {
    /// [`AddressSpace::release`], running `then` once every process of the address space is
    /// reaped (on the reaper thread): for what those processes map that must not be reused
    /// before. Runs `then` at once if the address space was released already.
    pub(crate) fn release_then(&self, then: Box<dyn FnOnce() + Send>) {
        // The command lock first: no batch of another thread is running, and none starts.
        let commands = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (factory, stubs) = {
            let mut inner = self.lock();
            (inner.factory.take(), std::mem::take(&mut inner.stubs))
        };
        let Some(factory) = factory else {
            then();
            return;
        };
        log::info!(
            "ptrace: address space {} released ({} stubs)",
            self.id,
            stubs.len()
        );
        factory.kill_with(
            stubs,
            &self.shared.reaper,
            Box::new(move || {
                drop(commands);
                then();
            }),
        );
    }
}

/// The error of work asked of a released address space.
fn released_error(call: &'static str) -> Error {
    Error::Host {
        call,
        source: Errno::ESRCH,
    }
}

impl Drop for PtraceAddressSpace {
    fn drop(&mut self) {
        self.release();
        let mut registry = self
            .shared
            .address_spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        registry.remove(&self.key());
    }
}

/// Makes the calling thread the tracer of a fresh stub and waits for it to stop.
///
/// The stop may come between the stub's answer to its factory and its own `close(1)`: a stub
/// kept stopped there would hold the factory's socket open forever, and a dead factory would
/// never show as end of file. So unless the stub stopped past its close (in its `pause` loop,
/// as almost always), the close is injected here.
pub(crate) fn seize(pid: Pid) -> Result<()> {
    seize_stopped(pid)?;
    let sites = stub::factory_sites();
    let rip = ptrace::getregs(pid)
        .map_err(|e| stopped_stub_error(pid, "ptrace(PTRACE_GETREGS)", e))?
        .rip;
    if (sites.close..=sites.pause).contains(&rip) {
        return Ok(());
    }
    match inject_into(pid, "close", libc::SYS_close, [1, 0, 0, 0, 0, 0]) {
        Ok(_) | Err(Error::Injected { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the calling thread the tracer of a fresh stub and waits for it to stop, leaving its
/// factory socket (fd 1) open: the caller must close it (see [`seize`]).
pub(crate) fn seize_stopped(pid: Pid) -> Result<()> {
    let options = ptrace::Options::PTRACE_O_TRACESYSGOOD | ptrace::Options::PTRACE_O_EXITKILL;
    ptrace::seize(pid, options).map_err(host("ptrace(PTRACE_SEIZE)"))?;
    ptrace::interrupt(pid).map_err(host("ptrace(PTRACE_INTERRUPT)"))?;
    match sys::wait(pid).map_err(host("wait4 (stub)"))? {
        WaitStatus::Stopped { .. } => Ok(()),
        died => Err(Error::StubDied {
            pid: pid.as_raw(),
            status: died.describe(),
        }),
    }
}

/// Registry of a platform's live address spaces by key (see [`stub_of`]).
pub(super) type Registry = Mutex<HashMap<usize, Weak<PtraceAddressSpace>>>;

#[cfg(test)]
impl PtraceAddressSpace {
    /// The factory, its prepared stubs and every registered stub, for tests that check they
    /// are gone.
    pub(crate) fn pids(&self) -> Vec<Pid> {
        let inner = self.lock();
        inner
            .factory
            .iter()
            .flat_map(Factory::pids)
            .chain(inner.stubs.iter().copied())
            .collect()
    }
}
