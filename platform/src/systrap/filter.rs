//! The seccomp filter of a systrap stub, as a hand-written classic BPF program.
//!
//! Every system call traps (`SECCOMP_RET_TRAP`, so `SIGSYS` into the stub's handler) except
//! the handler's own four, each allowed only from its one call site in the stub code page
//! and only with the arguments the handler uses:
//! - `futex(_, FUTEX_WAKE, ...)` and `futex(_, FUTEX_WAIT, ...)`: the hand-offs;
//! - `arch_prctl(ARCH_SET_FS, ...)`: loading the fs base without `wrfsbase`;
//! - `rt_sigreturn`: leaving the handler.
//!
//! Application code can jump to those sites with registers of its choosing; that gains it
//! futex operations on its own memory, a new fs base, or a sigreturn: all things a Linux
//! process may do anyway, none of them a host resource. seccompiler cannot express the
//! instruction-pointer checks, hence the hand-written program.

use super::sysmsg;
use crate::ptrace::stub::SystrapCode;

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

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

fn load(offset: u32) -> Insn {
    Insn {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

/// Falls through when equal, else skips `skip` instructions.
fn jeq_else_skip(value: u32, skip: u8) -> Insn {
    Insn {
        code: BPF_JEQ_K,
        jt: 0,
        jf: skip,
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

/// One allowed call: the instruction after its `syscall`, its number, and optionally one
/// argument that must equal a value.
struct Site {
    ip: u64,
    nr: i64,
    arg: Option<(u32, u64)>,
}

/// The stub filter for the code at `code`.
pub(crate) fn program(code: &SystrapCode) -> Vec<Insn> {
    let sites = [
        Site {
            ip: code.site_wake,
            nr: libc::SYS_futex,
            arg: Some((1, libc::FUTEX_WAKE as u64)),
        },
        Site {
            ip: code.site_wait,
            nr: libc::SYS_futex,
            arg: Some((1, libc::FUTEX_WAIT as u64)),
        },
        Site {
            ip: code.site_arch_prctl,
            nr: libc::SYS_arch_prctl,
            arg: Some((0, sysmsg::ARCH_SET_FS)),
        },
        Site {
            ip: code.site_sigreturn,
            nr: libc::SYS_rt_sigreturn,
            arg: None,
        },
    ];
    let ip_hi = (code.handler >> 32) as u32;
    let mut p = vec![
        load(ARCH),
        Insn {
            code: BPF_JEQ_K,
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH_X86_64,
        },
        // Not x86-64 (`int 0x80`): the sentry sees it like any other system call, as with
        // ptrace's PTRACE_SYSEMU; never allowed.
        ret(libc::SECCOMP_RET_TRAP),
        load(IP_HI),
    ];
    let mut blocks: Vec<Vec<Insn>> = Vec::new();
    for site in &sites {
        assert_eq!(site.ip >> 32, u64::from(ip_hi), "stub code crosses 4 GiB");
        // After the ip check: nr, optional argument, allow; a mismatch after the ip matched
        // goes to the block's final trap.
        let mut tail = vec![load(NR), jeq_else_skip(site.nr as u32, 0)];
        if let Some((i, value)) = site.arg {
            tail.extend([
                load(arg_lo(i)),
                jeq_else_skip(value as u32, 0),
                load(arg_hi(i)),
                jeq_else_skip((value >> 32) as u32, 0),
            ]);
        }
        tail.push(ret(libc::SECCOMP_RET_ALLOW));
        tail.push(ret(libc::SECCOMP_RET_TRAP));
        // Point every "not equal" in the tail at the final trap.
        let last = tail.len() - 1;
        for (i, insn) in tail.iter_mut().enumerate() {
            if insn.code == BPF_JEQ_K {
                insn.jf = u8::try_from(last - i - 1).expect("short block");
            }
        }
        let mut block = vec![
            load(IP_LO),
            jeq_else_skip(
                site.ip as u32,
                u8::try_from(tail.len()).expect("short block"),
            ),
        ];
        block.extend(tail);
        blocks.push(block);
    }
    // The ip-high check skips all site blocks when the call is not from the stub page.
    let sites_len: usize = blocks.iter().map(Vec::len).sum();
    p.push(jeq_else_skip(
        ip_hi,
        u8::try_from(sites_len).expect("filter too long for a short jump"),
    ));
    for block in blocks {
        p.extend(block);
    }
    p.push(ret(libc::SECCOMP_RET_TRAP));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter of the instructions `program` uses.
    fn run(p: &[Insn], nr: i64, ip: u64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
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

    #[test]
    fn only_the_handlers_calls_from_their_sites_are_allowed() {
        let code = crate::ptrace::stub::systrap_code();
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
    }
}
