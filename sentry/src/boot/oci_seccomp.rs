//! A container's seccomp profile (`linux.seccomp` of its OCI spec) as a classic BPF program
//! for the sentry's own seccomp ([`crate::kernel::seccomp`]): installed on the container's
//! init and every process exec'd into it, as runc installs it before `execve`, so a call the
//! profile refuses fails in the sandbox as it would under runc (Docker's and Podman's default
//! profiles, `--security-opt seccomp=FILE`, Kubernetes' `RuntimeDefault`).
//!
//! The program follows libseccomp's semantics for one architecture (x86-64, the only one the
//! sentry runs): calls of another architecture and x32 calls take the default action; a rule
//! matches when its call has one of the rule's names and every argument condition holds
//! (64-bit comparisons: `SCMP_CMP_EQ`, `NE`, `LT`, `LE`, `GE`, `GT` unsigned, `MASKED_EQ`
//! with `value` as the mask and `valueTwo` as the wanted value); the first rule that matches
//! decides, the default action otherwise. `errnoRet` (or `defaultErrnoRet`) is the errno of
//! `SCMP_ACT_ERRNO`, EPERM without it. A name this build does not know is left out, as runc
//! leaves out names libseccomp does not know. `SCMP_ACT_NOTIFY` (a listener outside the
//! sandbox) is refused. The sentry's filter cache makes calls whose verdict needs no
//! argument cost one lookup.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall,
};

use crate::kernel::seccomp::{SockFilter, AUDIT_ARCH_X86_64, MAX_INSNS};

/// Why a profile cannot be installed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("seccomp action SCMP_ACT_NOTIFY needs a listener outside the sandbox, which runsc-rs does not support")]
    Notify,
    #[error("seccomp rule for {name}: argument index {index} (a system call has 6)")]
    ArgIndex { name: String, index: usize },
    #[error("seccomp rule for {0} has too many argument conditions")]
    TooManyConditions(String),
    #[error("seccomp profile needs {0} BPF instructions, more than Linux's 4096")]
    TooLong(usize),
}

// Classic BPF opcodes (linux/bpf_common.h); `libc` has them as u32.
const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(index: usize) -> u32 {
    16 + 8 * index as u32
}

/// x32 system calls have this bit in their number.
const X32_BIT: u32 = 0x4000_0000;

/// The program for `profile`.
///
/// # Errors
/// [`ProfileError`] for what the sentry cannot enforce as written.
pub fn compile(profile: &LinuxSeccomp) -> Result<Vec<SockFilter>, ProfileError> {
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut prog = vec![
        SockFilter::stmt(LD_ABS, ARCH),
        SockFilter::jump(JEQ, AUDIT_ARCH_X86_64, 1, 0),
        SockFilter::stmt(RET, default),
        SockFilter::stmt(LD_ABS, NR),
        SockFilter::jump(JGE, X32_BIT, 0, 1),
        SockFilter::stmt(RET, default),
    ];
    for rule in profile.syscalls().iter().flatten() {
        let verdict = action(rule.action(), rule.errno_ret())?;
        for name in rule.names() {
            let Ok(sysno) = name.parse::<syscalls::Sysno>() else {
                log::debug!("seccomp profile: no system call {name} on x86-64; rule left out");
                continue;
            };
            rule_block(&mut prog, sysno.id() as u32, rule, name, verdict)?;
        }
    }
    prog.push(SockFilter::stmt(RET, default));
    if prog.len() > MAX_INSNS {
        return Err(ProfileError::TooLong(prog.len()));
    }
    Ok(prog)
}

/// The filter return value of an OCI action.
fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, ProfileError> {
    let data = |default: u32| errno.unwrap_or(default) & libc::SECCOMP_RET_DATA;
    Ok(match a {
        LinuxSeccompAction::ScmpActNotify => return Err(ProfileError::Notify),
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data(libc::EPERM as u32),
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE | data(libc::EPERM as u32),
        other => other.as_u32(None),
    })
}

/// The instructions of one rule for system call `nr` (the accumulator holds the number
/// before and after them): without conditions a compare and a return; with conditions, a
/// compare that skips the block, the conditions (each jumping to the block's end when it
/// does not hold), the return, and a reload of the number at the end.
fn rule_block(
    prog: &mut Vec<SockFilter>,
    nr: u32,
    rule: &LinuxSyscall,
    name: &str,
    verdict: u32,
) -> Result<(), ProfileError> {
    let args = rule.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        prog.push(SockFilter::jump(JEQ, nr, 0, 1));
        prog.push(SockFilter::stmt(RET, verdict));
        return Ok(());
    }
    let mut block = Vec::new();
    // Indexes (in `block`) of the jumps whose false branch goes to the failure label, and
    // of those whose true branch does.
    let mut fail_jf = Vec::new();
    let mut fail_jt = Vec::new();
    for arg in args {
        if arg.index() >= 6 {
            return Err(ProfileError::ArgIndex {
                name: name.to_owned(),
                index: arg.index(),
            });
        }
        condition(&mut block, arg, &mut fail_jf, &mut fail_jt);
    }
    block.push(SockFilter::stmt(RET, verdict));
    let fail = block.len();
    block.push(SockFilter::stmt(LD_ABS, NR));
    if block.len() > usize::from(u8::MAX) {
        return Err(ProfileError::TooManyConditions(name.to_owned()));
    }
    for i in fail_jf {
        block[i].jf = offset(i, fail);
    }
    for i in fail_jt {
        block[i].jt = offset(i, fail);
    }
    // The compare skips the whole block, reload included (the number is still loaded).
    prog.push(SockFilter::jump(JEQ, nr, 0, offset(0, block.len() + 1)));
    prog.extend(block);
    Ok(())
}

/// The forward distance from the jump at `from` to `to`, both in a block of at most 255
/// instructions (checked), so it fits a jump's byte.
fn offset(from: usize, to: usize) -> u8 {
    (to - from - 1) as u8
}

/// One argument condition: falls through when it holds, jumps to the failure label (the
/// jumps recorded in `fail_jf` / `fail_jt`) when it does not.
fn condition(
    block: &mut Vec<SockFilter>,
    arg: &LinuxSeccompArg,
    fail_jf: &mut Vec<usize>,
    fail_jt: &mut Vec<usize>,
) {
    let (lo, hi) = (arg_low(arg.index()), arg_low(arg.index()) + 4);
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (v_lo, v_hi) = split(arg.value());
    let at = block.len();
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq => {
            block.extend([
                SockFilter::stmt(LD_ABS, hi),
                SockFilter::jump(JEQ, v_hi, 0, 0),
                SockFilter::stmt(LD_ABS, lo),
                SockFilter::jump(JEQ, v_lo, 0, 0),
            ]);
            fail_jf.extend([at + 1, at + 3]);
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            // Holds when either half differs.
            block.extend([
                SockFilter::stmt(LD_ABS, hi),
                SockFilter::jump(JEQ, v_hi, 0, 2),
                SockFilter::stmt(LD_ABS, lo),
                SockFilter::jump(JEQ, v_lo, 0, 0),
            ]);
            fail_jt.push(at + 3);
        }
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let (m_lo, m_hi) = (v_lo, v_hi);
            let (w_lo, w_hi) = split(arg.value_two().unwrap_or(0));
            block.extend([
                SockFilter::stmt(LD_ABS, hi),
                SockFilter::stmt(AND, m_hi),
                SockFilter::jump(JEQ, w_hi, 0, 0),
                SockFilter::stmt(LD_ABS, lo),
                SockFilter::stmt(AND, m_lo),
                SockFilter::jump(JEQ, w_lo, 0, 0),
            ]);
            fail_jf.extend([at + 2, at + 5]);
        }
        LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe => {
            // High half above: holds; below: fails; equal: the low half decides.
            let low = if arg.op() == LinuxSeccompOperator::ScmpCmpGt {
                JGT
            } else {
                JGE
            };
            block.extend([
                SockFilter::stmt(LD_ABS, hi),
                SockFilter::jump(JGT, v_hi, 3, 0),
                SockFilter::jump(JEQ, v_hi, 0, 0),
                SockFilter::stmt(LD_ABS, lo),
                SockFilter::jump(low, v_lo, 0, 0),
            ]);
            fail_jf.extend([at + 2, at + 4]);
        }
        LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe => {
            // High half below: holds; above: fails; equal: the low half decides (LT fails
            // from v up, LE from v + 1 up).
            let low = if arg.op() == LinuxSeccompOperator::ScmpCmpLt {
                JGE
            } else {
                JGT
            };
            block.extend([
                SockFilter::stmt(LD_ABS, hi),
                SockFilter::jump(JGE, v_hi, 0, 3),
                SockFilter::jump(JEQ, v_hi, 0, 0),
                SockFilter::stmt(LD_ABS, lo),
                SockFilter::jump(low, v_lo, 0, 0),
            ]);
            fail_jf.push(at + 2);
            fail_jt.push(at + 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::seccomp::{validate, Action, SeccompState};

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn installed(json: &str) -> SeccompState {
        let prog = compile(&profile(json)).unwrap();
        validate(&prog).unwrap();
        let s = SeccompState::default();
        s.install(prog).unwrap();
        s
    }

    fn verdict(s: &SeccompState, nr: i64, args: [u64; 6]) -> Action {
        s.check(nr as u64, &args, 0).unwrap()
    }

    #[test]
    fn names_actions_and_the_default() {
        let s = installed(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "syscalls":[{"names":["getpid","no_such_call","mkdir"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["getppid"],"action":"SCMP_ACT_ERRNO"},
                            {"names":["getuid"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                            {"names":["getgid"],"action":"SCMP_ACT_KILL"},
                            {"names":["gettid"],"action":"SCMP_ACT_TRAP"}]}"#,
        );
        assert_eq!(verdict(&s, libc::SYS_getpid, [0; 6]), Action::Allow);
        assert_eq!(verdict(&s, libc::SYS_mkdir, [0; 6]), Action::Allow);
        assert_eq!(verdict(&s, libc::SYS_getppid, [0; 6]), Action::Errno(1));
        assert_eq!(verdict(&s, libc::SYS_getuid, [0; 6]), Action::Errno(13));
        assert_eq!(verdict(&s, libc::SYS_getgid, [0; 6]), Action::KillThread);
        assert_eq!(verdict(&s, libc::SYS_gettid, [0; 6]), Action::Trap(0));
        assert_eq!(verdict(&s, libc::SYS_read, [0; 6]), Action::Errno(38));
        assert_eq!(verdict(&s, 0x4000_0000 | 39, [0; 6]), Action::Errno(38));
    }

    #[test]
    fn argument_conditions_compare_all_64_bits() {
        let rule = |op: &str, value: u64| {
            format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["personality"],
                    "action":"SCMP_ACT_ERRNO","args":[{{"index":1,"value":{value},"op":"{op}"}}]}}]}}"#
            )
        };
        let big = 0x1_0000_0005u64;
        let probes = [
            0u64,
            4,
            5,
            6,
            0x1_0000_0004,
            big,
            0x1_0000_0006,
            0x2_0000_0000,
        ];
        type Holds = fn(u64, u64) -> bool;
        let ops: [(&str, Holds); 6] = [
            ("SCMP_CMP_EQ", |a, v| a == v),
            ("SCMP_CMP_NE", |a, v| a != v),
            ("SCMP_CMP_LT", |a, v| a < v),
            ("SCMP_CMP_LE", |a, v| a <= v),
            ("SCMP_CMP_GT", |a, v| a > v),
            ("SCMP_CMP_GE", |a, v| a >= v),
        ];
        for (op, holds) in ops {
            for value in [5u64, big] {
                let s = installed(&rule(op, value));
                for a in probes {
                    let want = if holds(a, value) {
                        Action::Errno(1)
                    } else {
                        Action::Allow
                    };
                    let args = [0, a, 0, 0, 0, 0];
                    assert_eq!(
                        verdict(&s, libc::SYS_personality, args),
                        want,
                        "{a:#x} {op} {value:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn masked_equality_and_several_conditions_all_hold() {
        // clone is refused when it asks for a new user namespace and its 2nd arg is 0.
        let s = installed(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],
                "action":"SCMP_ACT_ERRNO","args":[
                  {"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"},
                  {"index":1,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let newuser = libc::CLONE_NEWUSER as u64;
        assert_eq!(
            verdict(&s, libc::SYS_clone, [newuser | 17, 0, 0, 0, 0, 0]),
            Action::Errno(1)
        );
        assert_eq!(
            verdict(&s, libc::SYS_clone, [newuser, 8, 0, 0, 0, 0]),
            Action::Allow
        );
        assert_eq!(
            verdict(&s, libc::SYS_clone, [17, 0, 0, 0, 0, 0]),
            Action::Allow
        );
        assert_eq!(
            verdict(&s, libc::SYS_getpid, [newuser, 0, 0, 0, 0, 0]),
            Action::Allow
        );
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let s = installed(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,
                 "args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"}]},
                {"names":["socket"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(
            verdict(&s, libc::SYS_socket, [16, 3, 0, 0, 0, 0]),
            Action::Errno(97)
        );
        assert_eq!(
            verdict(&s, libc::SYS_socket, [2, 1, 0, 0, 0, 0]),
            Action::Allow
        );
    }

    #[test]
    fn what_cannot_be_enforced_is_refused() {
        let notify = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#;
        assert_eq!(compile(&profile(notify)), Err(ProfileError::Notify));
        let index = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],
            "action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#;
        assert!(matches!(
            compile(&profile(index)),
            Err(ProfileError::ArgIndex { index: 6, .. })
        ));
    }
}
