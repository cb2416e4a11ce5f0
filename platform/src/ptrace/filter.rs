//! The seccomp filter of every ptrace stub factory, and so of every stub it creates (built by
//! [`crate::stub_filter`]).
//!
//! It lists what these processes really execute on the host, each call only from its one
//! call site in the stub code page and only with the arguments that site uses:
//! - the factory loop (`stub.rs`): `munmap` of everything but the stub pages (twice), `read`
//!   of a request from fd 1, `clone(CLONE_VM | CLONE_PARENT)` of a stub, `write` of a failed
//!   clone's errno to fd 1, `exit_group` at end of file;
//! - a new stub before its first stop: `prctl(PR_SET_PDEATHSIG, SIGKILL)`, `write` of its
//!   answer to fd 1, `close(1)`, `pause` (restarted in place if interrupted);
//! - the calls the sentry injects (`address_space.rs`), all through the stub's `syscall; int3`:
//!   `mmap(MAP_SHARED | MAP_FIXED)` of the memory file (fd 0), `munmap`, `mprotect` (of
//!   what those mappings cover: the stub's own pages are mapped from elsewhere, so the
//!   sentry never asks, and the stub's code cannot become writable through it), `close(1)`;
//!   and the same `mmap`, `munmap` and `mprotect` from the batch loop's one `syscall`
//!   (`stub::batch_site`), which runs several of them in one stop;
//! - the mapper (`mapper.rs`, `stub::MAPPER_REQUEST`): its set-up's `prctl(PR_SET_NO_NEW_PRIVS)`,
//!   `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, <the mapper filter
//!   in the read-only code page>)` (whoever makes it gets that filter and nothing more),
//!   `write` of its answer to fd 1, `close(1)` and `close` of its copy of the listener, each
//!   from its one site; the batch loop's calls
//!   above; its notify call from its one site (a number no host call has: allowed here, the
//!   mapper's own filter turns it into a user notification).
//!
//! Anything else kills the process (`SECCOMP_RET_KILL_PROCESS`, so `SIGSYS`). Application
//! system calls never reach the filter: `PTRACE_SYSEMU` stops a stub at syscall entry and the
//! kernel skips the call before seccomp is evaluated (`syscall_trace_enter`), so the filter
//! only sees what runs while the stub is not under `PTRACE_SYSEMU` — and the application's
//! calls of the legacy vsyscall page, which the host emulates without a syscall-entry stop
//! but through seccomp (`emulate_vsyscall`). Those three (`gettimeofday`, `time`, `getcpu`,
//! each from its own entry) trap instead (`SECCOMP_RET_TRAP`): the host skips the call and
//! returns to the caller, and the `SIGSYS` stop hands it to the sentry
//! ([`crate::Exit::Vsyscall`]).
//!
//! The filter is installed by each factory before it enters its loop (`factory.rs`); the
//! factories themselves come from a zygote forked before the sentry installs its own seccomp
//! filter, so factories and stubs carry this filter alone and the sentry's allowlist need not
//! list their calls.

use crate::stub::{self, STUB_CLONE_FLAGS};
use crate::stub_filter::{self, Insn, Rule};

/// The factory filter.
pub(crate) fn program() -> Vec<Insn> {
    use libc::*;
    let factory = stub::factory_sites();
    // The instruction after the injection `syscall` (`syscall` is two bytes).
    let injected = stub::syscall_insn() + 2;
    let batch = stub::batch_site();
    let mapper = stub::mapper_sites();
    let rules = [
        Rule::any(SYS_munmap).at(factory.munmap_low),
        Rule::any(SYS_munmap).at(factory.munmap_high),
        Rule::any(SYS_read).at(factory.read).arg(0, 1),
        Rule::any(SYS_clone)
            .at(factory.clone)
            .arg(0, STUB_CLONE_FLAGS as u64)
            .arg(1, 0),
        Rule::any(SYS_write).at(factory.write_error).arg(0, 1),
        Rule::any(SYS_exit_group).at(factory.exit_group),
        Rule::any(SYS_prctl)
            .at(factory.prctl)
            .arg(0, PR_SET_PDEATHSIG as u64)
            .arg(1, SIGKILL as u64),
        Rule::any(SYS_write).at(factory.write_ready).arg(0, 1),
        Rule::any(SYS_close).at(factory.close).arg(0, 1),
        Rule::any(SYS_pause).at(factory.pause),
        Rule::any(SYS_mmap)
            .at(injected)
            .arg(3, (MAP_SHARED | MAP_FIXED) as u64)
            .arg(4, 0),
        Rule::any(SYS_munmap).at(injected),
        Rule::any(SYS_mprotect).at(injected),
        Rule::any(SYS_close).at(injected).arg(0, 1),
        Rule::any(SYS_mmap)
            .at(batch)
            .arg(3, (MAP_SHARED | MAP_FIXED) as u64)
            .arg(4, 0),
        Rule::any(SYS_munmap).at(batch),
        Rule::any(SYS_mprotect).at(batch),
        Rule::any(SYS_prctl)
            .at(mapper.no_new_privs)
            .arg(0, PR_SET_NO_NEW_PRIVS as u64)
            .arg(1, 1),
        Rule::any(SYS_seccomp)
            .at(mapper.seccomp)
            .arg(0, u64::from(SECCOMP_SET_MODE_FILTER))
            .arg(1, SECCOMP_FILTER_FLAG_NEW_LISTENER)
            .arg(2, stub::MAPPER_FPROG),
        Rule::any(SYS_write).at(mapper.write_ready).arg(0, 1),
        Rule::any(SYS_close).at(mapper.close_socket).arg(0, 1),
        Rule::any(SYS_close).at(mapper.close),
        Rule::any(stub::MAPPER_NOTIFY_NR).at(mapper.notify),
        Rule::any(SYS_gettimeofday)
            .at(crate::VSYSCALL_PAGE)
            .answer(SECCOMP_RET_TRAP),
        Rule::any(SYS_time)
            .at(crate::VSYSCALL_PAGE + 0x400)
            .answer(SECCOMP_RET_TRAP),
        Rule::any(SYS_getcpu)
            .at(crate::VSYSCALL_PAGE + 0x800)
            .answer(SECCOMP_RET_TRAP),
    ];
    stub_filter::program(&rules, SECCOMP_RET_KILL_PROCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stub_filter::run;

    #[test]
    fn only_the_factory_stub_and_injected_calls_are_allowed() {
        let p = program();
        let allow = libc::SECCOMP_RET_ALLOW;
        let kill = libc::SECCOMP_RET_KILL_PROCESS;
        let injected = stub::syscall_insn() + 2;
        let shared_fixed = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
        let map = [0x40_0000, 4096, 5, shared_fixed, 0, 0x1000];
        assert_eq!(run(&p, libc::SYS_mmap, injected, map), allow);
        let other_fd = [0x40_0000, 4096, 5, shared_fixed, 3, 0];
        assert_eq!(run(&p, libc::SYS_mmap, injected, other_fd), kill);
        let anonymous = [
            0,
            4096,
            7,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            0,
            0,
        ];
        assert_eq!(run(&p, libc::SYS_mmap, injected, anonymous), kill);
        assert_eq!(run(&p, libc::SYS_mmap, 0x40_0002, map), kill);
        assert_eq!(
            run(
                &p,
                libc::SYS_munmap,
                injected,
                [0x40_0000, 4096, 0, 0, 0, 0]
            ),
            allow
        );
        assert_eq!(
            run(&p, libc::SYS_close, injected, [1, 0, 0, 0, 0, 0]),
            allow
        );
        let protect = [0x40_0000, 4096, libc::PROT_READ as u64, 0, 0, 0];
        assert_eq!(run(&p, libc::SYS_mprotect, injected, protect), allow);
        assert_eq!(run(&p, libc::SYS_mprotect, 0x40_0002, protect), kill);
        assert_eq!(run(&p, libc::SYS_close, injected, [0, 0, 0, 0, 0, 0]), kill);
        let factory = stub::factory_sites();
        let flags = STUB_CLONE_FLAGS as u64;
        assert_eq!(
            run(&p, libc::SYS_clone, factory.clone, [flags, 0, 0, 0, 0, 0]),
            allow
        );
        let new_user = flags | libc::CLONE_NEWUSER as u64;
        assert_eq!(
            run(
                &p,
                libc::SYS_clone,
                factory.clone,
                [new_user, 0, 0, 0, 0, 0]
            ),
            kill
        );
        assert_eq!(
            run(&p, libc::SYS_clone, injected, [flags, 0, 0, 0, 0, 0]),
            kill
        );
        let deathsig = [
            libc::PR_SET_PDEATHSIG as u64,
            libc::SIGKILL as u64,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(run(&p, libc::SYS_prctl, factory.prctl, deathsig), allow);
        let dumpable = [libc::PR_SET_DUMPABLE as u64, 1, 0, 0, 0, 0];
        assert_eq!(run(&p, libc::SYS_prctl, factory.prctl, dumpable), kill);
        assert_eq!(run(&p, libc::SYS_pause, factory.pause, [0; 6]), allow);
        let socket = [1, 0, 0, 0, 0, 0];
        assert_eq!(run(&p, libc::SYS_close, factory.close, socket), allow);
        let memfd = [0; 6];
        assert_eq!(run(&p, libc::SYS_close, factory.close, memfd), kill);
        assert_eq!(
            run(&p, libc::SYS_write, factory.write_ready, [1, 0, 1, 0, 0, 0]),
            allow
        );
        assert_eq!(
            run(&p, libc::SYS_write, factory.write_ready, [2, 0, 1, 0, 0, 0]),
            kill
        );
        let batch = stub::batch_site();
        assert_eq!(run(&p, libc::SYS_mmap, batch, map), allow);
        assert_eq!(run(&p, libc::SYS_mmap, batch, other_fd), kill);
        assert_eq!(run(&p, libc::SYS_mmap, batch, anonymous), kill);
        assert_eq!(run(&p, libc::SYS_mprotect, batch, protect), allow);
        assert_eq!(run(&p, libc::SYS_close, batch, [1, 0, 0, 0, 0, 0]), kill);
        assert_eq!(
            run(&p, libc::SYS_clone, batch, [flags, 0, 0, 0, 0, 0]),
            kill
        );
        let mapper_filter = [
            u64::from(libc::SECCOMP_SET_MODE_FILTER),
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            stub::MAPPER_FPROG,
            0,
            0,
            0,
        ];
        let mapper = stub::mapper_sites();
        let seccomp = mapper.seccomp;
        assert_eq!(run(&p, libc::SYS_seccomp, seccomp, mapper_filter), allow);
        let mut own_filter = mapper_filter;
        own_filter[2] = 0x40_0000;
        assert_eq!(run(&p, libc::SYS_seccomp, seccomp, own_filter), kill);
        let mut other_flags = mapper_filter;
        other_flags[1] = libc::SECCOMP_FILTER_FLAG_TSYNC;
        assert_eq!(run(&p, libc::SYS_seccomp, seccomp, other_flags), kill);
        assert_eq!(run(&p, libc::SYS_seccomp, injected, mapper_filter), kill);
        let no_new_privs = [libc::PR_SET_NO_NEW_PRIVS as u64, 1, 0, 0, 0, 0];
        let nnp_site = mapper.no_new_privs;
        assert_eq!(run(&p, libc::SYS_prctl, nnp_site, no_new_privs), allow);
        assert_eq!(run(&p, libc::SYS_prctl, nnp_site, dumpable), kill);
        assert_eq!(run(&p, libc::SYS_prctl, injected, no_new_privs), kill);
        assert_eq!(
            run(&p, libc::SYS_close, mapper.close, [3, 0, 0, 0, 0, 0]),
            allow
        );
        let answer = [1, stub::STUB_BASE, 1, 0, 0, 0];
        assert_eq!(run(&p, libc::SYS_write, mapper.write_ready, answer), allow);
        let to_memfd = [0, stub::STUB_BASE, 1, 0, 0, 0];
        assert_eq!(run(&p, libc::SYS_write, mapper.write_ready, to_memfd), kill);
        assert_eq!(run(&p, libc::SYS_close, mapper.close_socket, socket), allow);
        assert_eq!(run(&p, libc::SYS_close, mapper.close_socket, memfd), kill);
        let notify = stub::MAPPER_NOTIFY_NR;
        assert_eq!(run(&p, notify, mapper.notify, [0; 6]), allow);
        assert_eq!(run(&p, notify, injected, [0; 6]), kill);
        assert_eq!(run(&p, libc::SYS_getppid, mapper.notify, [0; 6]), kill);
        for nr in [
            libc::SYS_getppid,
            libc::SYS_open,
            libc::SYS_openat,
            libc::SYS_execve,
        ] {
            assert_eq!(run(&p, nr, injected, [0; 6]), kill, "{nr}");
        }
    }

    #[test]
    fn vsyscalls_trap_from_their_own_entries_only() {
        let p = program();
        let trap = libc::SECCOMP_RET_TRAP;
        let kill = libc::SECCOMP_RET_KILL_PROCESS;
        let page = crate::VSYSCALL_PAGE;
        assert_eq!(run(&p, libc::SYS_gettimeofday, page, [0; 6]), trap);
        assert_eq!(run(&p, libc::SYS_time, page + 0x400, [0; 6]), trap);
        assert_eq!(run(&p, libc::SYS_getcpu, page + 0x800, [0; 6]), trap);
        assert_eq!(run(&p, libc::SYS_time, page, [0; 6]), kill);
        assert_eq!(run(&p, libc::SYS_getpid, page + 0x400, [0; 6]), kill);
        assert_eq!(run(&p, libc::SYS_time, 0x40_0002, [0; 6]), kill);
    }
}
