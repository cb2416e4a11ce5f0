//! Seccomp filters for the processes that run application code (stub factories and stubs of
//! both platforms), as hand-written classic BPF programs.
//!
//! A filter is a list of [`Rule`]s: a system call is allowed (or gets the rule's own action)
//! when one rule matches its number, optionally the exact instruction pointer after its
//! `syscall` instruction, and every argument the rule names; anything else gets the filter's
//! `otherwise` action. Calls not made through
//! the x86-64 ABI (`int 0x80`, x32 numbers) never match. seccompiler cannot express the
//! instruction-pointer checks, hence the hand-written program.
//!
//! Users: `systrap::filter` (each systrap stub's own filter, `SECCOMP_RET_TRAP`) and
//! `ptrace::filter` (what every ptrace factory and stub may do on the host,
//! `SECCOMP_RET_KILL_PROCESS`).

/// `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

impl Insn {
    /// The instruction as the kernel reads it (`struct sock_filter`, little endian).
    pub(crate) fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.code.to_le_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_le_bytes());
        b
    }
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// `struct seccomp_data` offsets.
const NR: u32 = 0;
const ARCH: u32 = 4;
const IP_LO: u32 = 8;
const IP_HI: u32 = 12;
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
const fn arg_hi(i: u32) -> u32 {
    20 + 8 * i
}

use crate::AUDIT_ARCH_X86_64;

/// One allowed system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) nr: i64,
    /// The instruction after its `syscall` (what seccomp reports as the instruction pointer),
    /// when only one call site may make it.
    pub(crate) ip: Option<u64>,
    /// Arguments (index, value) that must be equal, all 64 bits.
    pub(crate) args: Vec<(u32, u64)>,
    /// What a matching call gets: `SECCOMP_RET_ALLOW` unless [`Rule::answer`] says otherwise.
    pub(crate) action: u32,
}

impl Rule {
    /// `nr` from anywhere, with any arguments.
    pub(crate) fn any(nr: i64) -> Rule {
        Rule {
            nr,
            ip: None,
            args: Vec::new(),
            action: libc::SECCOMP_RET_ALLOW,
        }
    }

    /// A matching call gets `action` (a `SECCOMP_RET_*`) instead of being allowed.
    pub(crate) fn answer(mut self, action: u32) -> Rule {
        self.action = action;
        self
    }

    /// Only from the call site whose next instruction is at `ip`.
    pub(crate) fn at(mut self, ip: u64) -> Rule {
        self.ip = Some(ip);
        self
    }

    /// Only with argument `index` equal to `value`.
    pub(crate) fn arg(mut self, index: u32, value: u64) -> Rule {
        self.args.push((index, value));
        self
    }
}

fn load(offset: u32) -> Insn {
    Insn {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

/// Falls through when equal; the "not equal" target is patched by the caller.
fn jeq(value: u32) -> Insn {
    Insn {
        code: BPF_JEQ_K,
        jt: 0,
        jf: 0,
        k: value,
    }
}

fn ret(action: u32) -> Insn {
    Insn {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: action,
    }
}

/// Loads and compares the 64-bit value at `lo`/`hi`.
fn check64(block: &mut Vec<Insn>, lo: u32, hi: u32, value: u64) {
    block.extend([
        load(lo),
        jeq(value as u32),
        load(hi),
        jeq((value >> 32) as u32),
    ]);
}

/// The program allowing `rules`; every other call gets `otherwise` (a `SECCOMP_RET_*` action).
///
/// # Panics
/// A rule so long that a short jump cannot skip it (more than 60 arguments).
pub(crate) fn program(rules: &[Rule], otherwise: u32) -> Vec<Insn> {
    let mut p = vec![
        load(ARCH),
        Insn {
            code: BPF_JEQ_K,
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH_X86_64,
        },
        ret(otherwise),
    ];
    for rule in rules {
        // Each rule is one block ending in its action; a mismatch skips to the next block.
        let mut block = vec![load(NR), jeq(rule.nr as u32)];
        if let Some(ip) = rule.ip {
            check64(&mut block, IP_LO, IP_HI, ip);
        }
        for &(i, value) in &rule.args {
            check64(&mut block, arg_lo(i), arg_hi(i), value);
        }
        block.push(ret(rule.action));
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code == BPF_JEQ_K {
                insn.jf = u8::try_from(len - i - 1).expect("seccomp rule too long");
            }
        }
        p.extend(block);
    }
    p.push(ret(otherwise));
    p
}

/// Installs `program` on the calling thread (after `PR_SET_NO_NEW_PRIVS`) with raw system
/// calls only ([`crate::raw_syscall`]): usable in a fork-like child that may not allocate
/// and has no copy of the C library's data. Returns false on failure.
///
/// # Safety
/// `program` must stay valid for the call (the kernel copies it).
pub(crate) unsafe fn install_raw(program: &[Insn]) -> bool {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut().cast(),
    };
    // SAFETY: `fprog` and the instructions it points to live across both calls; prctl and
    // seccomp only read them.
    unsafe {
        crate::raw_syscall(
            libc::SYS_prctl,
            [libc::c_long::from(libc::PR_SET_NO_NEW_PRIVS), 1, 0, 0, 0, 0],
        ) == 0
            && crate::raw_syscall(
                libc::SYS_seccomp,
                [
                    libc::c_long::from(libc::SECCOMP_SET_MODE_FILTER),
                    0,
                    (&raw const fprog) as libc::c_long,
                    0,
                    0,
                    0,
                ],
            ) == 0
    }
}

/// A tiny interpreter of the instructions [`program`] emits, for tests: the action for a call
/// `nr` from `ip` with `args` through the x86-64 ABI.
#[cfg(test)]
pub(crate) fn run(p: &[Insn], nr: i64, ip: u64, args: [u64; 6]) -> u32 {
    run_arch(p, AUDIT_ARCH_X86_64, nr, ip, args)
}

#[cfg(test)]
fn run_arch(p: &[Insn], arch: u32, nr: i64, ip: u64, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    data[8..16].copy_from_slice(&ip.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let insn = p[pc];
        pc += 1;
        match insn.code {
            BPF_LD_W_ABS => {
                let k = insn.k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
            }
            BPF_JEQ_K => {
                pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf });
            }
            BPF_RET_K => return insn.k,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    #[test]
    fn a_call_is_allowed_only_when_one_rule_matches_all_it_names() {
        let p = program(
            &[
                Rule::any(libc::SYS_read).arg(0, 1),
                Rule::any(libc::SYS_write).at(0x7ffe_0000_0010),
                Rule::any(libc::SYS_exit_group),
            ],
            KILL,
        );
        assert_eq!(
            run(&p, libc::SYS_read, 0x40_0000, [1, 2, 3, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(run(&p, libc::SYS_read, 0x40_0000, [0, 2, 3, 0, 0, 0]), KILL);
        assert_eq!(
            run(&p, libc::SYS_read, 0, [1 << 32 | 1, 0, 0, 0, 0, 0]),
            KILL
        );
        assert_eq!(run(&p, libc::SYS_write, 0x7ffe_0000_0010, [0; 6]), ALLOW);
        assert_eq!(run(&p, libc::SYS_write, 0x7ffe_0000_0012, [0; 6]), KILL);
        assert_eq!(run(&p, libc::SYS_write, 0x0000_0000_0010, [0; 6]), KILL);
        assert_eq!(run(&p, libc::SYS_exit_group, 0, [7; 6]), ALLOW);
        assert_eq!(run(&p, libc::SYS_getppid, 0, [0; 6]), KILL);
        // The same number through the 32-bit ABI is another call.
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        assert_eq!(
            run_arch(&p, AUDIT_ARCH_I386, libc::SYS_exit_group, 0, [0; 6]),
            KILL
        );
    }

    #[test]
    fn long_rule_lists_still_reach_the_final_action() {
        let rules: Vec<Rule> = (0..100).map(|nr| Rule::any(nr).arg(0, 5)).collect();
        let p = program(&rules, KILL);
        assert_eq!(run(&p, 99, 0, [5, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&p, 99, 0, [4, 0, 0, 0, 0, 0]), KILL);
        assert_eq!(run(&p, 500, 0, [5, 0, 0, 0, 0, 0]), KILL);
        assert_eq!(run_arch(&p, 0x4000_0003, 99, 0, [5, 0, 0, 0, 0, 0]), KILL);
    }
}
