//! The seccomp filter of a systrap stub (built by [`crate::stub_filter`]).
//!
//! Every system call traps (`SECCOMP_RET_TRAP`, so `SIGSYS` into the stub's handler) except
//! the handler's own four, each allowed only from its one call site in the stub code page
//! and only with the arguments the handler uses:
//! - `futex(_, FUTEX_WAKE, ...)` and `futex(_, FUTEX_WAIT, ...)`: the hand-offs;
//! - `arch_prctl(ARCH_SET_FS, ...)`: loading the fs base without `wrfsbase`;
//! - `rt_sigprocmask(SIG_BLOCK, <all signals>, NULL)`: the SIGSYS handler blocking every
//!   signal before it leaves through `rt_sigreturn` (the set is the setup page's, read-only);
//! - `rt_sigreturn`: leaving the handler.
//!
//! Application code can jump to those sites with registers of its choosing; that gains it
//! futex operations on its own memory, a new fs base, or a sigreturn: all things a Linux
//! process may do anyway, none of them a host resource.

use super::sysmsg;
use crate::stub::SystrapCode;
use crate::stub_filter::{self, Insn, Rule};

/// The stub filter for the code at `code`.
pub(crate) fn program(code: &SystrapCode) -> Vec<Insn> {
    let rules = [
        Rule::any(libc::SYS_futex)
            .at(code.site_wake)
            .arg(1, libc::FUTEX_WAKE as u64),
        Rule::any(libc::SYS_futex)
            .at(code.site_wait)
            .arg(1, libc::FUTEX_WAIT as u64),
        Rule::any(libc::SYS_arch_prctl)
            .at(code.site_arch_prctl)
            .arg(0, sysmsg::ARCH_SET_FS),
        Rule::any(libc::SYS_rt_sigprocmask)
            .at(code.site_sigprocmask)
            .arg(0, libc::SIG_BLOCK as u64)
            .arg(1, crate::stub::all_signals_set())
            .arg(2, 0),
        Rule::any(libc::SYS_rt_sigreturn).at(code.site_sigreturn),
    ];
    // Everything else traps to the sentry, `int 0x80` included: the context tells it apart by
    // the SIGSYS's `si_arch` and refuses it (`crate::refuse_32bit_syscall`).
    stub_filter::program(&rules, libc::SECCOMP_RET_TRAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stub_filter::run;

    #[test]
    fn only_the_handlers_calls_from_their_sites_are_allowed() {
        let code = crate::stub::systrap_code();
        let p = program(&code);
        let allow = libc::SECCOMP_RET_ALLOW;
        let trap = libc::SECCOMP_RET_TRAP;
        let futex = libc::SYS_futex;
        let wake = [0, libc::FUTEX_WAKE as u64, 1, 0, 0, 0];
        let wait = [0, libc::FUTEX_WAIT as u64, 1, 0, 0, 0];
        assert_eq!(run(&p, futex, code.site_wake, wake), allow);
        assert_eq!(run(&p, futex, code.site_wait, wait), allow);
        assert_eq!(run(&p, futex, code.site_wake, wait), trap);
        assert_eq!(run(&p, futex, code.site_wait, wake), trap);
        let requeue = [0, libc::FUTEX_CMP_REQUEUE as u64, 0, 0, 0, 0];
        assert_eq!(run(&p, futex, code.site_wake, requeue), trap);
        assert_eq!(run(&p, futex, 0x40_0000, wake), trap);
        assert_eq!(run(&p, futex, code.site_wake + (1 << 32), wake), trap);
        let set_fs = [sysmsg::ARCH_SET_FS, 0x1234, 0, 0, 0, 0];
        let get_fs = [0x1003, 0x1234, 0, 0, 0, 0];
        let arch_prctl = libc::SYS_arch_prctl;
        assert_eq!(run(&p, arch_prctl, code.site_arch_prctl, set_fs), allow);
        assert_eq!(run(&p, arch_prctl, code.site_arch_prctl, get_fs), trap);
        let sigreturn = libc::SYS_rt_sigreturn;
        assert_eq!(run(&p, sigreturn, code.site_sigreturn, [0; 6]), allow);
        assert_eq!(run(&p, sigreturn, code.site_wake, [0; 6]), trap);
        assert_eq!(run(&p, libc::SYS_mmap, code.site_sigreturn, [0; 6]), trap);
        assert_eq!(run(&p, libc::SYS_getpid, 0x40_0007, [0; 6]), trap);
        let sigprocmask = libc::SYS_rt_sigprocmask;
        let all = crate::stub::all_signals_set();
        let block_all = [libc::SIG_BLOCK as u64, all, 0, 8, 0, 0];
        assert_eq!(
            run(&p, sigprocmask, code.site_sigprocmask, block_all),
            allow
        );
        let unblock = [libc::SIG_UNBLOCK as u64, all, 0, 8, 0, 0];
        assert_eq!(run(&p, sigprocmask, code.site_sigprocmask, unblock), trap);
        let own_set = [libc::SIG_BLOCK as u64, 0x40_0000, 0, 8, 0, 0];
        assert_eq!(run(&p, sigprocmask, code.site_sigprocmask, own_set), trap);
        assert_eq!(run(&p, sigprocmask, code.site_wake, block_all), trap);
    }
}
