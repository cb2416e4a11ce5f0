//! Address spaces: a ptrace address space (factory, injection, stub registry) plus the
//! message regions of the systrap stubs running in it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::unistd::Pid;

use super::sysmsg::Slot;
use super::Shared;
use crate::ptrace::address_space::{Batches, PtraceAddressSpace};
use crate::{AddressSpace, BatchError, MapOp, Perms, Result};

/// An application address space of the systrap platform.
pub(super) struct SystrapAddressSpace {
    shared: Arc<Shared>,
    pub(super) ptrace: Arc<PtraceAddressSpace>,
    slots: Mutex<Slots>,
    /// Set when the address space is released; each context's stub holds it, so that a
    /// switch finds a release without upgrading its weak reference or taking a lock.
    pub(super) released: Arc<AtomicBool>,
}

/// Guarded by `SystrapAddressSpace::slots`.
#[derive(Default)]
struct Slots {
    /// Regions mapped in this address space, in use by a stub or not.
    all: Vec<Slot>,
    /// Regions of retired stubs: still mapped here, so only this address space may reuse
    /// them (another one's stub would share its registers with this application).
    free: Vec<Slot>,
}

impl SystrapAddressSpace {
    pub(super) fn create(shared: &Arc<Shared>) -> Result<Arc<SystrapAddressSpace>> {
        // Batches go through the address space's mapper: a systrap thread has no ptrace stop
        // of its own to inject them in.
        let ptrace = PtraceAddressSpace::create_with(&shared.ptrace, Batches::Mapper)?;
        let space = Arc::new(SystrapAddressSpace {
            shared: shared.clone(),
            ptrace,
            slots: Mutex::default(),
            released: Arc::default(),
        });
        shared
            .address_spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(space.key(), Arc::downgrade(&space));
        Ok(space)
    }

    pub(super) fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The regions mapped here.
    #[cfg(test)]
    pub(super) fn slots(&self) -> Vec<Slot> {
        self.lock().all.clone()
    }

    /// A message region for a new stub.
    pub(super) fn alloc_slot(&self) -> Result<Slot> {
        if let Some(slot) = self.lock().free.pop() {
            return Ok(slot);
        }
        let slot = self.shared.sysmsg.alloc()?;
        self.lock().all.push(slot);
        Ok(slot)
    }

    /// Takes over `slot`, the region of a stub the factory master readied (see
    /// [`crate::ptrace::factory::StubReadier`]): mapped here from now on, like one
    /// [`SystrapAddressSpace::alloc_slot`] handed out.
    pub(super) fn adopt_slot(&self, slot: Slot) {
        self.lock().all.push(slot);
    }

    /// Kills a stub nobody needs any more and keeps its region for reuse here. After a
    /// release the region went to the reaper with the others (or, made since, is freed on
    /// drop), so it is not kept.
    pub(super) fn retire(&self, pid: Option<Pid>, slot: Slot) {
        if let Some(pid) = pid {
            self.ptrace.retire_stub(pid);
        }
        if !self.ptrace.is_released() {
            self.lock().free.push(slot);
        }
    }

    /// Releases the processes; their message regions return to the platform once the
    /// reaper has reaped them (until then a dying stub may still map them).
    fn release_processes(&self) {
        self.released.store(true, Ordering::Release);
        let slots = {
            let mut slots = self.lock();
            slots.free.clear();
            std::mem::take(&mut slots.all)
        };
        let shared = self.shared.clone();
        self.ptrace
            .release_then(Box::new(move || shared.sysmsg.free(slots)));
    }
}

impl AddressSpace for SystrapAddressSpace {
    fn map(&self, addr: u64, len: u64, file_offset: u64, perms: Perms) -> Result<()> {
        self.ptrace.map(addr, len, file_offset, perms)
    }

    fn unmap(&self, addr: u64, len: u64) -> Result<()> {
        self.ptrace.unmap(addr, len)
    }

    fn protect(&self, addr: u64, len: u64, perms: Perms) -> Result<()> {
        self.ptrace.protect(addr, len, perms)
    }

    fn apply(&self, ops: &[MapOp]) -> std::result::Result<(), BatchError> {
        self.ptrace.apply(ops)
    }

    fn release(&self) {
        self.release_processes();
    }
}

impl Drop for SystrapAddressSpace {
    fn drop(&mut self) {
        // Every process of the address space is killed here and its regions go to other
        // address spaces only once the reaper has reaped them all.
        self.release_processes();
        self.shared
            .address_spaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key());
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::testing::{reaped, Guest, DATA};
    use crate::{Error, PAGE_SIZE};

    #[test]
    fn batches_go_through_the_mapper() {
        let guest = Guest::new();
        let platform = super::super::Systrap::new(guest.memfd.as_fd()).unwrap();
        let space = SystrapAddressSpace::create(&platform.shared).unwrap();
        space.map(DATA, PAGE_SIZE, 0, Perms::RW).unwrap();
        let mapper = space.ptrace.mapper_pid().expect("a mapper");
        // The spare factory's mapper, started by the master thread: it closed its copy of the
        // listener, and holds the memory file and the message file only.
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{mapper}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        fds.sort();
        assert_eq!(fds, ["0", "2"]);
        let processes = space.ptrace.pids();
        space.map(DATA, PAGE_SIZE, PAGE_SIZE, Perms::R).unwrap();
        // The mapper did it: the calling thread got no stub of its own.
        assert_eq!(space.ptrace.pids(), processes);
        let maps = std::fs::read_to_string(format!("/proc/{mapper}/maps")).unwrap();
        assert!(
            maps.lines().any(|l| l.starts_with(&format!("{DATA:08x}-"))),
            "{maps}"
        );
    }

    /// The spare factory's mapper was started by the master thread; one that died before
    /// its address space's first batch fails that batch and takes the address space.
    #[test]
    fn a_spare_mapper_that_died_fails_the_first_batch_and_releases_its_address_space() {
        use nix::sys::signal::{kill, Signal};
        let guest = Guest::new();
        let platform = super::super::Systrap::new(guest.memfd.as_fd()).unwrap();
        // The first address space asks for a factory, and the master thread then makes the
        // spare.
        drop(SystrapAddressSpace::create(&platform.shared).unwrap());
        let spare = platform.shared.ptrace.wait_for_spare();
        assert_eq!(spare.len(), 3, "factory, stub and mapper: {spare:?}");
        let mapper = spare[2];
        let space = SystrapAddressSpace::create(&platform.shared).unwrap();
        assert_eq!(space.ptrace.pids(), spare, "the spare was taken");
        kill(mapper, Signal::SIGKILL).unwrap();
        let e = space.map(DATA, PAGE_SIZE, 0, Perms::RW).unwrap_err();
        assert!(
            matches!(e, Error::StubDied { pid, .. } if pid == mapper.as_raw()),
            "{e:?}"
        );
        assert!(space.ptrace.is_released());
        for pid in spare {
            assert!(reaped(pid), "process {pid} of the address space");
        }
    }
}
