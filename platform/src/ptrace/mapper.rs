//! The mapper: one stub per address space that applies mapping batches without a ptrace stop.
//!
//! Without it, every batch of `mmap`/`munmap`/`mprotect` is injected into the calling sentry
//! thread's stub (`PTRACE_SETREGS`, `PTRACE_CONT`, a wait for the `int3` stop,
//! `PTRACE_GETREGS`). The mapper is a stub of the address space (made by its factory like any
//! other, so `CLONE_VM`, the memory file at fd 0, the factory filter) that runs a loop of the
//! stub code page (`runsc_mapper_loop`) instead of application code:
//! 1. it makes its *notify* call (`stub::MAPPER_NOTIFY_NR`, from one site), which its own
//!    seccomp filter answers with `SECCOMP_RET_USER_NOTIF`: it blocks until the sentry
//!    answers the notification (`SECCOMP_IOCTL_NOTIF_SEND`) with a count;
//! 2. it runs that many commands from the address space's read-only command page
//!    (`stub::encode_command`) with the batch loop of the injections, to the first failure;
//! 3. it makes the notify call again with the index it reached and the last result in its
//!    argument registers, which the sentry reads from the notification's `seccomp_data`
//!    (`SECCOMP_IOCTL_NOTIF_RECV`). That notification is also the wait for the next batch.
//!
//! Set-up, without any ptrace call: the address space's factory makes the mapper when asked
//! with a two-byte request (`stub::MAPPER_REQUEST`). The new stub sets no_new_privs and
//! installs the mapper filter of the read-only code page with
//! `SECCOMP_FILTER_FLAG_NEW_LISTENER` *before* it answers the request, so when the sentry
//! learns its pid (the kernel-attested sender of the answer) the listener is in its fd table,
//! at a number the factory's table fixes; [`Mapper::start`] copies it with `pidfd_getfd`
//! (the mapper is the sentry's child) and receives the mapper's first notify call, which
//! reports that number; answered, the mapper closes its own copy and runs its first batch.
//! (Formerly a seized stub was run into the set-up and detached: a seize, an interrupt stop,
//! an injection and a detach, 7 ptrace and wait calls per address space.)
//!
//! # Why the application cannot forge a batch or its outcome
//! Application threads share the mapper's memory but not its registers, and not its filter:
//! seccomp filters belong to a thread, the mapper installed its own after it was cloned, and
//! `NEW_LISTENER` gave the one listener to the sentry, so only the mapper's notify calls
//! reach it. The loop keeps no state in writable memory (no stack): its commands come from
//! the command page, which the application can read but not write (its `mmap`/`mprotect`
//! are the sentry's, and no mapping of the sealed command file can be made writable), and
//! its count from the kernel's answer. Its completion and results reach the sentry as the
//! arguments of a notification the kernel sends only when the mapper itself reached its
//! notify site after running the batch. So the application can neither run a batch nor make
//! the sentry believe one ran: a forged "unmap done" would let it keep pages the sentry then
//! frees and hands to another process. The mapper's filter allows nothing but the batch
//! loop's three calls from their site and the notify call; anything else kills it
//! (`SECCOMP_RET_KILL_PROCESS`, which ends the mapper's process only: stubs are processes).
//!
//! # When the mapper stops answering
//! Every wait polls the listener together with a pidfd of the mapper, with a deadline
//! ([`WEDGED_AFTER`]):
//! - the mapper died (the address space's processes were killed, or it was): the pidfd is
//!   readable; it is reaped and the batch fails with [`Error::StubDied`], as a batch whose
//!   stub died does. Which of its calls ran is unknown, so the address space is released
//!   (`address_space.rs`): no process keeps a mapping the sentry may have dropped, and the
//!   application's threads fail their next switch, which ends their thread group.
//! - a notification was interrupted (a signal restarted the notify call):
//!   `SECCOMP_IOCTL_NOTIF_SEND` says `ENOENT`; the restarted call is received and answered.
//! - the mapper is stopped (`SIGSTOP` from the host) or otherwise stuck: after the deadline
//!   it is killed and reaped and the batch fails as if it had died. No sentry thread ever
//!   waits for a mapper longer than that.
//!
//! An address space takes its mapper at its first batch: the one the factory master thread
//! made and started with the spare factory (`factory.rs`), or else a new one. An address
//! space that never maps still had its spare factory make one (a clone and a few calls of
//! the master thread, off the path of `fork`). Measured: fork+exec+wait of `busybox true`
//! on systrap 1.55 -> 1.40 ms (medians of 5 paired rounds, load ~9; 8 ptrace and wait calls
//! fewer per address space, no stop). Two spare factories (for the two address spaces of a
//! fork that execs) measured no better.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::sys::{self, host};
use crate::stub;
use crate::{Error, Result};

/// How long a batch (or the set-up's first notification) may take before the mapper counts
/// as wedged and is killed. Far beyond any batch (at most `stub::CMD_CAPACITY` calls).
const WEDGED_AFTER: Duration = Duration::from_secs(if cfg!(test) { 3 } else { 10 });

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the mapper and the sentry thread hand
/// over to each other on one CPU.
const SYNC_WAKE_UP: u64 = 1;

/// The mapper of one address space, owned by it under its command lock.
pub(crate) struct Mapper {
    pid: Pid,
    pidfd: OwnedFd,
    listener: OwnedFd,
    /// The notification the mapper waits in: answering it starts the next batch.
    pending: u64,
}

impl Mapper {
    /// Takes the listener of `pid`, a mapper its factory just made (`stub::MAPPER_REQUEST`),
    /// from fd `fd` of its table, and waits for its first notify call: then it waits for its
    /// first batch.
    ///
    /// # Errors
    /// The mapper died ([`Error::StubDied`], then it was reaped), or a host call failed (user
    /// notification unsupported, say: then the mapper reports a failed seccomp call, or has
    /// no fd `fd`): the caller kills the mapper.
    pub(crate) fn start(pid: Pid, fd: RawFd) -> Result<Mapper> {
        let pidfd = owned(
            "pidfd_open (mapper)",
            // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
            unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) },
        )?;
        let listener = owned(
            "pidfd_getfd (mapper listener)",
            // SAFETY: pidfd_getfd takes an fd, a number in the target's fd table and flags;
            // it returns a new fd (close-on-exec) or -1.
            unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) },
        )?;
        // SAFETY: the ioctl reads one u64 from a valid pointer.
        let rc = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SYNC_WAKE_UP,
            )
        };
        if rc != 0 {
            log::debug!(
                "ptrace: mapper {pid}: no synchronous wake-ups ({})",
                Errno::last()
            );
        }
        let mut mapper = Mapper {
            pid,
            pidfd,
            listener,
            pending: 0,
        };
        // The first notify call reports the fd the mapper's seccomp call returned: the one we
        // copied, or the mapper and we disagree about its table. Answering it lets the mapper
        // close its copy.
        let (id, args) = mapper.receive()?;
        if args[0] != fd as u64 {
            log::error!(
                "ptrace: mapper {pid}: its listener is {}, not fd {fd}",
                args[0] as i64
            );
            return Err(host("seccomp (mapper listener)")(Errno::EPROTO));
        }
        mapper.pending = id;
        Ok(mapper)
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Runs the first `count` commands of the command page (1 to `stub::CMD_CAPACITY`, just
    /// written by the caller, who holds the command lock) and returns the index of the call
    /// the mapper stopped at and its raw result: the first that failed, or the last.
    ///
    /// # Errors
    /// [`Error::StubDied`] when the mapper died or was wedged (it is reaped: forget its pid);
    /// a host call failed.
    pub(crate) fn run(&mut self, count: usize) -> Result<(u64, u64)> {
        let mut answer = libc::seccomp_notif_resp {
            id: self.pending,
            val: count as i64,
            error: 0,
            flags: 0,
        };
        loop {
            // SAFETY: the ioctl reads and writes the `seccomp_notif_resp` it is given.
            let rc = unsafe {
                libc::ioctl(
                    self.listener.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_SEND,
                    &raw mut answer,
                )
            };
            match Errno::result(rc) {
                Ok(_) => break,
                Err(Errno::EINTR) => {}
                // The notify call was interrupted and restarted (or the mapper died): answer
                // the restarted one.
                Err(Errno::ENOENT) => answer.id = self.receive()?.0,
                Err(e) => return Err(host("ioctl(SECCOMP_IOCTL_NOTIF_SEND)")(e)),
            }
        }
        let (id, args) = self.receive()?;
        self.pending = id;
        Ok((args[0], args[1]))
    }

    /// The mapper's next notification: its id and the call's first two arguments.
    fn receive(&mut self) -> Result<(u64, [u64; 2])> {
        let deadline = Instant::now() + WEDGED_AFTER;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.wedged());
            }
            let timeout = libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
            };
            let mut fds =
                [self.listener.as_raw_fd(), self.pidfd.as_raw_fd()].map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            // SAFETY: `fds` holds two valid pollfds and `timeout` is a valid timespec, both
            // alive across the call; no signal mask is passed.
            let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &timeout, std::ptr::null()) };
            match Errno::result(rc) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(host("ppoll (mapper)")(e)),
            }
            if fds[0].revents & libc::POLLIN != 0 {
                // SAFETY: all-zero is a valid seccomp_notif (the kernel wants it zeroed).
                let mut notification: libc::seccomp_notif = unsafe { std::mem::zeroed() };
                // SAFETY: the ioctl writes one seccomp_notif to a valid pointer.
                let rc = unsafe {
                    libc::ioctl(
                        self.listener.as_raw_fd(),
                        libc::SECCOMP_IOCTL_NOTIF_RECV,
                        &raw mut notification,
                    )
                };
                match Errno::result(rc) {
                    Ok(_) => return self.check(&notification),
                    // Gone again before we took it (the mapper was interrupted).
                    Err(Errno::ENOENT | Errno::EINTR) => continue,
                    Err(e) => return Err(host("ioctl(SECCOMP_IOCTL_NOTIF_RECV)")(e)),
                }
            }
            if fds[1].revents != 0 || fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                return Err(self.died());
            }
        }
    }

    /// The id and arguments of `n`, which must be the mapper's notify call: only the mapper
    /// carries the filter, so anything else means the kernel and we disagree.
    fn check(&self, n: &libc::seccomp_notif) -> Result<(u64, [u64; 2])> {
        let ours = i64::from(n.data.nr) == stub::MAPPER_NOTIFY_NR
            && n.data.instruction_pointer == stub::mapper_sites().notify
            && i64::from(n.pid) == i64::from(self.pid.as_raw());
        if !ours {
            log::error!(
                "ptrace: mapper {}: unexpected notification (pid {}, nr {}, ip {:#x})",
                self.pid,
                n.pid,
                n.data.nr,
                n.data.instruction_pointer
            );
            return Err(host("ioctl(SECCOMP_IOCTL_NOTIF_RECV)")(Errno::EPROTO));
        }
        Ok((n.id, [n.data.args[0], n.data.args[1]]))
    }

    /// The mapper exited: reaps it (it is the sentry's child, untraced) and says how it died.
    fn died(&self) -> Error {
        let status = match sys::wait(self.pid) {
            Ok(status) => status.describe(),
            Err(e) => format!("gone ({e})"),
        };
        log::debug!("ptrace: mapper {} died ({status})", self.pid);
        Error::StubDied {
            pid: self.pid.as_raw(),
            status,
        }
    }

    /// The mapper did not answer in time: kills and reaps it.
    fn wedged(&self) -> Error {
        log::warn!(
            "ptrace: mapper {} did not answer in {WEDGED_AFTER:?}: killed",
            self.pid
        );
        // The pid is still ours: the mapper is our unreaped child.
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        self.died()
    }
}

/// The fd a raw call returned, or its errno.
fn owned(call: &'static str, rc: libc::c_long) -> Result<OwnedFd> {
    let fd = Errno::result(rc).map_err(host(call))?;
    // SAFETY: the call just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::sync::Arc;

    use nix::sys::ptrace;
    use nix::sys::signal::{kill, Signal};
    use nix::sys::uio::{process_vm_writev, RemoteIoVec};

    use super::super::address_space::{injection_regs, seize, Batches, PtraceAddressSpace};
    use super::super::Ptrace;
    use super::*;
    use crate::testing::{reaped, Guest, DATA};
    use crate::{AddressSpace, BatchError, MapOp, Perms, PAGE_SIZE};

    fn space(guest: &Guest, batches: Batches) -> (Ptrace, Arc<PtraceAddressSpace>) {
        let platform = Ptrace::new(guest.memfd.as_fd()).unwrap();
        let space = PtraceAddressSpace::create_with(&platform.shared, batches).unwrap();
        (platform, space)
    }

    /// Permissions and file offset of the mapping of `pid` that starts at `addr`.
    fn mapping(pid: Pid, addr: u64) -> Option<(String, u64)> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let starts_at = |l: &&str| {
            let start = l.split('-').next().unwrap();
            u64::from_str_radix(start, 16).unwrap() == addr
        };
        maps.lines().find(starts_at).map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (
                fields[1].to_string(),
                u64::from_str_radix(fields[2], 16).unwrap(),
            )
        })
    }

    /// The fds open in process `pid`, sorted.
    fn open_fds(pid: Pid) -> Vec<String> {
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        fds.sort();
        fds
    }

    fn map(addr: u64, file_offset: u64, perms: Perms) -> MapOp {
        MapOp::Map {
            addr,
            len: PAGE_SIZE,
            file_offset,
            perms,
        }
    }

    /// Runs `ops` on a fresh thread, which has no stub of its own.
    fn apply_from_new_thread(
        space: &Arc<PtraceAddressSpace>,
        ops: Vec<MapOp>,
    ) -> std::result::Result<(), BatchError> {
        let space: Arc<dyn AddressSpace> = space.clone();
        std::thread::spawn(move || space.apply(&ops))
            .join()
            .unwrap()
    }

    #[test]
    fn batches_run_in_the_mapper_not_in_the_callers_stub() {
        let guest = Guest::new();
        let (_platform, space) = space(&guest, Batches::Mapper);
        let ops = vec![
            map(DATA, 0x1000, Perms::RW),
            map(DATA + PAGE_SIZE, 0x5000, Perms::RX),
            MapOp::Protect {
                addr: DATA,
                len: PAGE_SIZE,
                perms: Perms::R,
            },
        ];
        apply_from_new_thread(&space, ops).unwrap();
        let mapper = space.mapper_pid().expect("a mapper runs");
        // Made by its factory, never traced, and after its first batch it holds no listener
        // (only the sentry does): the memory file is its only fd.
        assert_eq!(open_fds(mapper), ["0"]);
        let status = std::fs::read_to_string(format!("/proc/{mapper}/status")).unwrap();
        assert!(status.contains("TracerPid:\t0\n"), "{status}");
        assert_eq!(mapping(mapper, DATA), Some(("r--s".into(), 0x1000)));
        assert_eq!(
            mapping(mapper, DATA + PAGE_SIZE),
            Some(("r-xs".into(), 0x5000))
        );
        // A batch makes no stub for the calling thread (which keeps its stubs).
        let processes = space.pids().len();
        let unmap = MapOp::Unmap {
            addr: DATA,
            len: PAGE_SIZE,
        };
        space.apply(&[unmap]).unwrap();
        assert_eq!(space.pids().len(), processes);
        assert_eq!(mapping(mapper, DATA), None);
        // A failure names its call, as an injected batch does: mprotect of nothing.
        let failing = vec![
            map(DATA, 0x2000, Perms::RW),
            MapOp::Protect {
                addr: DATA + 2 * PAGE_SIZE,
                len: PAGE_SIZE,
                perms: Perms::R,
            },
            unmap,
        ];
        let e = apply_from_new_thread(&space, failing).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(
            matches!(
                e.error,
                Error::Injected {
                    errno: libc::ENOMEM,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(mapping(mapper, DATA), Some(("rw-s".into(), 0x2000)));
        // A full command page in one go.
        let many: Vec<MapOp> = (0..stub::CMD_CAPACITY as u64 + 5)
            .map(|i| map(DATA + 2 * i * PAGE_SIZE, i * PAGE_SIZE, Perms::R))
            .collect();
        space.apply(&many).unwrap();
        assert_eq!(
            mapping(mapper, DATA + 2 * 171 * PAGE_SIZE),
            Some(("r--s".into(), 171 * PAGE_SIZE))
        );
        assert_eq!(space.mapper_pid(), Some(mapper));
    }

    /// Prints what one single-call batch costs each way (no timing is asserted).
    #[test]
    fn batch_round_trip_time() {
        let guest = Guest::new();
        for batches in [Batches::Injected, Batches::Mapper] {
            let (_platform, space) = space(&guest, batches);
            let ops = [map(DATA, 0, Perms::RW), map(DATA, 0, Perms::R)];
            space.apply(&ops).unwrap();
            let rounds = 2000;
            let start = std::time::Instant::now();
            for i in 0..rounds {
                space.apply(&ops[i % 2..i % 2 + 1]).unwrap();
            }
            let per_batch = start.elapsed() / rounds as u32;
            eprintln!(
                "{batches:?}: {} ns per one-call batch",
                per_batch.as_nanos()
            );
        }
    }

    #[test]
    fn without_a_mapper_batches_are_injected() {
        let guest = Guest::new();
        let (_platform, space) = space(&guest, Batches::Injected);
        let processes = space.pids().len();
        space.apply(&[map(DATA, 0x1000, Perms::RW)]).unwrap();
        assert_eq!(space.mapper_pid(), None);
        assert_eq!(space.pids().len(), processes + 1, "the thread's own stub");
    }

    #[test]
    fn application_code_cannot_forge_a_batch_or_its_outcome() {
        let guest = Guest::new();
        let (_platform, space) = space(&guest, Batches::Mapper);
        space.apply(&[map(DATA, 0, Perms::RW)]).unwrap();
        let mapper = space.mapper_pid().unwrap();
        // Garbage over every page the application can write: all the writable mappings.
        let maps = std::fs::read_to_string(format!("/proc/{mapper}/maps")).unwrap();
        let mut written = 0;
        for line in maps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields[1].starts_with("rw") {
                continue;
            }
            let (start, end) = fields[0].split_once('-').unwrap();
            let start = usize::from_str_radix(start, 16).unwrap();
            let end = usize::from_str_radix(end, 16).unwrap();
            let garbage = vec![0xa5u8; end - start];
            let remote = [RemoteIoVec {
                base: start,
                len: end - start,
            }];
            let n = process_vm_writev(mapper, &[std::io::IoSlice::new(&garbage)], &remote);
            assert_eq!(n, Ok(end - start), "{line}");
            written += 1;
        }
        assert!(written >= 2, "the stub data page and DATA:\n{maps}");
        // Not the command page, which the batches come from.
        let remote = [RemoteIoVec {
            base: stub::CMD_PAGE as usize,
            len: 8,
        }];
        let write = process_vm_writev(mapper, &[std::io::IoSlice::new(&[0xa5; 8])], &remote);
        assert_eq!(write, Err(Errno::EFAULT));
        // Another stub of the address space (what runs application code) making the notify
        // call from its very site gets ENOSYS: it reaches no listener. (The loop then takes
        // that for a refusal and runs into its `ud2`.)
        let stub = space.spawn_stub().unwrap().pid;
        seize(stub).unwrap();
        let notify = stub::mapper_sites().notify - 2;
        let regs = injection_regs(notify, stub::MAPPER_NOTIFY_NR, [0, 0, 0, 0, 0, 0]);
        ptrace::setregs(stub, regs).unwrap();
        ptrace::cont(stub, None).unwrap();
        assert!(matches!(
            sys::wait(stub),
            Ok(sys::WaitStatus::Stopped {
                signal: libc::SIGILL,
                ..
            })
        ));
        let result = ptrace::getregs(stub).unwrap().rax as i64;
        assert_eq!(result, -i64::from(libc::ENOSYS));
        space.retire_stub(stub);
        // The next batches still do exactly what they say.
        let ops = [
            MapOp::Unmap {
                addr: DATA,
                len: PAGE_SIZE,
            },
            map(DATA + 2 * PAGE_SIZE, 0x3000, Perms::RW),
        ];
        space.apply(&ops).unwrap();
        assert_eq!(mapping(mapper, DATA), None);
        assert_eq!(
            mapping(mapper, DATA + 2 * PAGE_SIZE),
            Some(("rw-s".into(), 0x3000))
        );
        assert_eq!(space.mapper_pid(), Some(mapper));
    }

    /// The address space is released: every process that mapped it died, and batches fail.
    fn assert_released(space: &PtraceAddressSpace, processes: &[Pid]) {
        assert!(space.is_released());
        for &pid in processes {
            assert!(reaped(pid), "process {pid} of the address space");
        }
        let e = space.apply(&[map(DATA, 0, Perms::R)]).unwrap_err();
        assert!(matches!(e.error, Error::Host { .. }), "{e:?}");
    }

    #[test]
    fn a_killed_mapper_fails_its_batch_and_takes_the_address_space() {
        let guest = Guest::new();
        let (_platform, space) = space(&guest, Batches::Mapper);
        space.apply(&[map(DATA, 0, Perms::RW)]).unwrap();
        let mapper = space.mapper_pid().unwrap();
        let processes = space.pids();
        kill(mapper, Signal::SIGKILL).unwrap();
        let e = space.apply(&[map(DATA, 0, Perms::R)]).unwrap_err();
        match e.error {
            Error::StubDied { pid, status } => {
                assert_eq!(pid, mapper.as_raw());
                assert_eq!(status, "killed by signal 9");
            }
            other => panic!("expected StubDied, got {other:?}"),
        }
        assert_released(&space, &processes);
    }

    #[test]
    fn a_stopped_mapper_is_waited_for_only_so_long() {
        let guest = Guest::new();
        let (_platform, space) = space(&guest, Batches::Mapper);
        space.apply(&[map(DATA, 0, Perms::RW)]).unwrap();
        let mapper = space.mapper_pid().unwrap();
        // Stopped and continued: its notify call restarts, and the batch still runs.
        kill(mapper, Signal::SIGSTOP).unwrap();
        kill(mapper, Signal::SIGCONT).unwrap();
        space.apply(&[map(DATA, 0x1000, Perms::R)]).unwrap();
        assert_eq!(mapping(mapper, DATA), Some(("r--s".into(), 0x1000)));
        // Stopped for good: the batch fails once the deadline passes.
        let processes = space.pids();
        kill(mapper, Signal::SIGSTOP).unwrap();
        let e = space.apply(&[map(DATA, 0, Perms::R)]).unwrap_err();
        assert!(
            matches!(e.error, Error::StubDied { pid, .. } if pid == mapper.as_raw()),
            "{e:?}"
        );
        assert_released(&space, &processes);
    }
}
