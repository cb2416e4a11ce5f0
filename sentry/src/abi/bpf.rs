//! Classic BPF (`struct sock_filter` programs): the one interpreter behind seccomp filters
//! (`kernel::seccomp`, over `seccomp_data`) and socket filters (`SO_ATTACH_FILTER`, over a
//! packet). Each user validates a program for its own input before running it; the
//! interpreter then never reads outside the input, and jumps only go forward, so a run
//! ends within the program's length.

use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::Errno;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Serialize,
    Deserialize,
)]
#[repr(C)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl SockFilter {
    /// An instruction that does not jump (`BPF_STMT`).
    pub const fn stmt(code: u16, k: u32) -> SockFilter {
        SockFilter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// A conditional jump (`BPF_JUMP`): `jt` / `jf` instructions forward.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
        SockFilter { code, jt, jf, k }
    }
}

/// The longest program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// Scratch memory words (`BPF_MEMWORDS`).
pub const MEMWORDS: usize = 16;

// The encoding: class, size, mode, ALU/JMP operation, source, return value.
pub const CLASS_LD: u16 = 0x00;
pub const CLASS_LDX: u16 = 0x01;
pub const CLASS_ST: u16 = 0x02;
pub const CLASS_STX: u16 = 0x03;
pub const CLASS_ALU: u16 = 0x04;
pub const CLASS_JMP: u16 = 0x05;
pub const CLASS_RET: u16 = 0x06;
pub const CLASS_MISC: u16 = 0x07;
pub const SIZE_W: u16 = 0x00;
pub const SIZE_H: u16 = 0x08;
pub const SIZE_B: u16 = 0x10;
pub const MODE_IMM: u16 = 0x00;
pub const MODE_ABS: u16 = 0x20;
pub const MODE_IND: u16 = 0x40;
pub const MODE_MEM: u16 = 0x60;
pub const MODE_LEN: u16 = 0x80;
pub const MODE_MSH: u16 = 0xa0;
pub const SRC_X: u16 = 0x08;
pub const RVAL_A: u16 = 0x10;
pub const ALU_ADD: u16 = 0x00;
pub const ALU_SUB: u16 = 0x10;
pub const ALU_MUL: u16 = 0x20;
pub const ALU_DIV: u16 = 0x30;
pub const ALU_OR: u16 = 0x40;
pub const ALU_AND: u16 = 0x50;
pub const ALU_LSH: u16 = 0x60;
pub const ALU_RSH: u16 = 0x70;
pub const ALU_NEG: u16 = 0x80;
pub const ALU_MOD: u16 = 0x90;
pub const ALU_XOR: u16 = 0xa0;
pub const JMP_JA: u16 = 0x00;
pub const JMP_JEQ: u16 = 0x10;
pub const JMP_JGT: u16 = 0x20;
pub const JMP_JGE: u16 = 0x30;
pub const JMP_JSET: u16 = 0x40;
pub const MISC_TAX: u16 = 0x00;
pub const MISC_TXA: u16 = 0x80;

/// Runs a validated program over an input of `len` bytes whose loads `load(size, offset)`
/// answers (`None`: outside the input, which ends the program with 0, as Linux does).
pub fn interpret(prog: &[SockFilter], len: u32, load: impl Fn(u32, u32) -> Option<u32>) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    let size = |code: u16| match code & 0x18 {
        SIZE_H => 2,
        SIZE_B => 1,
        _ => 4,
    };
    // Jumps only go forward (checked at install), so this ends within prog.len() steps.
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        let k = ins.k;
        let src = if ins.code & SRC_X != 0 { x } else { k };
        match ins.code & 0x07 {
            CLASS_LD => {
                a = match ins.code & 0xe0 {
                    MODE_ABS => match load(size(ins.code), k) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MODE_IND => match load(size(ins.code), x.wrapping_add(k)) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MODE_LEN => len,
                    MODE_MEM => mem[k as usize % MEMWORDS],
                    _ => k,
                }
            }
            CLASS_LDX => {
                x = match ins.code & 0xe0 {
                    MODE_LEN => len,
                    MODE_MEM => mem[k as usize % MEMWORDS],
                    // The IPv4 header length at byte k (`4 * (P[k] & 0xf)`).
                    MODE_MSH => match load(1, k) {
                        Some(v) => 4 * (v & 0xf),
                        None => return 0,
                    },
                    _ => k,
                }
            }
            CLASS_ST => mem[k as usize % MEMWORDS] = a,
            CLASS_STX => mem[k as usize % MEMWORDS] = x,
            CLASS_ALU => {
                a = match ins.code & 0xf0 {
                    ALU_ADD => a.wrapping_add(src),
                    ALU_SUB => a.wrapping_sub(src),
                    ALU_MUL => a.wrapping_mul(src),
                    // Division by a zero X ends the program with 0, as in Linux.
                    ALU_DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    ALU_MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    ALU_OR => a | src,
                    ALU_AND => a & src,
                    ALU_LSH => a.checked_shl(src).unwrap_or(0),
                    ALU_RSH => a.checked_shr(src).unwrap_or(0),
                    ALU_NEG => a.wrapping_neg(),
                    _ => a ^ src,
                }
            }
            CLASS_JMP => {
                let taken = match ins.code & 0xf0 {
                    JMP_JA => {
                        pc += k as usize;
                        continue;
                    }
                    JMP_JEQ => a == src,
                    JMP_JGT => a > src,
                    JMP_JGE => a >= src,
                    _ => a & src != 0,
                };
                pc += if taken { ins.jt } else { ins.jf } as usize;
            }
            CLASS_RET => return if ins.code & RVAL_A != 0 { a } else { k },
            _ => {
                if ins.code & 0xf8 == MISC_TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
    // Unreachable for a validated program (its last instruction returns).
    0
}

/// Whether `code` is an ALU operation classic BPF knows, with a valid constant operand.
pub fn alu_ok(code: u16, k: u32) -> bool {
    let op = code & 0xf0;
    let rest = code & !(0xf0 | 0x07 | SRC_X);
    let known = matches!(
        op,
        ALU_ADD
            | ALU_SUB
            | ALU_MUL
            | ALU_DIV
            | ALU_MOD
            | ALU_OR
            | ALU_AND
            | ALU_LSH
            | ALU_RSH
            | ALU_XOR
    ) || (op == ALU_NEG && code & SRC_X == 0);
    let by_k = code & SRC_X == 0;
    let k_ok = !by_k
        || match op {
            ALU_DIV | ALU_MOD => k != 0,
            ALU_LSH | ALU_RSH => k < 32,
            _ => true,
        };
    known && rest == 0 && k_ok
}

/// Whether the jump at `pc` of a program of `len` instructions is known and lands inside.
pub fn jump_ok(ins: &SockFilter, pc: usize, len: usize) -> bool {
    let op = ins.code & 0xf0;
    let rest = ins.code & !(0xf0 | 0x07 | SRC_X);
    let after = len - pc - 1;
    match op {
        JMP_JA if ins.code == CLASS_JMP | JMP_JA => (ins.k as usize) < after,
        JMP_JEQ | JMP_JGT | JMP_JGE | JMP_JSET => {
            rest == 0 && (ins.jt as usize) < after && (ins.jf as usize) < after
        }
        _ => false,
    }
}

/// Linux's `check_load_and_stores`: a scratch slot must be written on every path before it
/// is read.
///
/// # Errors
/// EINVAL when one may be read first.
pub fn check_loads_after_stores(prog: &[SockFilter]) -> Result<(), Errno> {
    const ALL: u16 = 0xffff;
    // Per instruction, the slots known written on every path reaching it (ALL: unreached).
    let mut valid = vec![ALL; prog.len()];
    let mut written: u16 = 0;
    for (pc, ins) in prog.iter().enumerate() {
        written &= valid[pc];
        let class = ins.code & 0x07;
        let slot = 1u16.checked_shl(ins.k).unwrap_or(0);
        match class {
            CLASS_ST | CLASS_STX => written |= slot,
            CLASS_LD | CLASS_LDX if ins.code & 0xe0 == MODE_MEM && written & slot == 0 => {
                return Err(Errno::EINVAL);
            }
            CLASS_JMP => {
                if ins.code & 0xf0 == JMP_JA {
                    let target = pc + 1 + ins.k as usize;
                    valid[target] &= written;
                    // Nothing falls through an unconditional jump.
                    written = ALL;
                } else {
                    valid[pc + 1 + ins.jt as usize] &= written;
                    valid[pc + 1 + ins.jf as usize] &= written;
                    written = ALL;
                }
            }
            CLASS_RET => written = ALL,
            _ => {}
        }
    }
    Ok(())
}

/// Linux's negative load offsets (`SKF_AD_OFF`, `SKF_NET_OFF`, `SKF_LL_OFF`) start here.
const SKF_SPECIAL: u32 = 0xffff_f000;

/// Checks a socket filter (`SO_ATTACH_FILTER`) as Linux's `bpf_check_classic` does: known
/// instructions, scratch slots in range and written before read, jumps forward and inside,
/// a `RET` last.
///
/// # Errors
/// EINVAL for a program Linux refuses, and for the ancillary and link- or network-relative
/// loads (offsets from `SKF_AD_OFF` up), which are not offered.
pub fn check_socket_filter(prog: &[SockFilter]) -> Result<(), Errno> {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    for (pc, ins) in prog.iter().enumerate() {
        let k = ins.k;
        let sized = matches!(ins.code & 0x18, SIZE_W | SIZE_H | SIZE_B);
        let ok = match ins.code & 0x07 {
            CLASS_LD => match ins.code & 0xe0 {
                MODE_ABS | MODE_IND => sized && k < SKF_SPECIAL,
                MODE_LEN | MODE_IMM => ins.code & 0x18 == SIZE_W,
                MODE_MEM => ins.code & 0x18 == SIZE_W && (k as usize) < MEMWORDS,
                _ => false,
            },
            CLASS_LDX => match ins.code {
                c if c == CLASS_LDX | SIZE_W | MODE_LEN => true,
                c if c == CLASS_LDX | MODE_IMM => true,
                c if c == CLASS_LDX | MODE_MEM => (k as usize) < MEMWORDS,
                c if c == CLASS_LDX | SIZE_B | MODE_MSH => k < SKF_SPECIAL,
                _ => false,
            },
            CLASS_ST | CLASS_STX => ins.code & !0x07 == 0 && (k as usize) < MEMWORDS,
            CLASS_ALU => alu_ok(ins.code, k),
            CLASS_JMP => jump_ok(ins, pc, prog.len()),
            CLASS_RET => ins.code == CLASS_RET || ins.code == CLASS_RET | RVAL_A,
            _ => ins.code == CLASS_MISC | MISC_TAX || ins.code == CLASS_MISC | MISC_TXA,
        };
        if !ok {
            return Err(Errno::EINVAL);
        }
    }
    if prog[prog.len() - 1].code & 0x07 != CLASS_RET {
        return Err(Errno::EINVAL);
    }
    check_loads_after_stores(prog)
}

/// A socket filter as `setsockopt(SO_ATTACH_FILTER)` hands it to a socket: the program's
/// instructions (the system call read them from the `sock_fprog`), checked.
///
/// # Errors
/// EINVAL as [`check_socket_filter`].
pub fn parse_socket_filter(bytes: &[u8]) -> Result<Vec<SockFilter>, Errno> {
    let prog: Vec<SockFilter> = bytes
        .chunks_exact(std::mem::size_of::<SockFilter>())
        .filter_map(|c| SockFilter::read_from_bytes(c).ok())
        .collect();
    check_socket_filter(&prog)?;
    Ok(prog)
}

/// What a socket filter checked by [`check_socket_filter`] returns for `packet`: 0 drops
/// it, a smaller length trims it. Loads are big-endian, as network data.
pub fn run_socket_filter(prog: &[SockFilter], packet: &[u8]) -> u32 {
    let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    interpret(prog, len, |size, off| {
        let start = off as usize;
        let bytes = packet.get(start..start.checked_add(size as usize)?)?;
        Some(bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tcpdump -dd udp dst port 1234` on a link without a link header (IPv4 only).
    fn udp_port_1234() -> Vec<SockFilter> {
        vec![
            SockFilter::stmt(CLASS_LD | SIZE_B | MODE_ABS, 9),
            SockFilter::jump(CLASS_JMP | JMP_JEQ, 17, 0, 4),
            SockFilter::stmt(CLASS_LDX | SIZE_B | MODE_MSH, 0),
            SockFilter::stmt(CLASS_LD | SIZE_H | MODE_IND, 2),
            SockFilter::jump(CLASS_JMP | JMP_JEQ, 1234, 0, 1),
            SockFilter::stmt(CLASS_RET, 0x40000),
            SockFilter::stmt(CLASS_RET, 0),
        ]
    }

    fn ipv4_udp(dst_port: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p[22..24].copy_from_slice(&dst_port.to_be_bytes());
        p
    }

    #[test]
    fn socket_filters_match_on_packet_bytes() {
        let prog = udp_port_1234();
        check_socket_filter(&prog).unwrap();
        assert_eq!(run_socket_filter(&prog, &ipv4_udp(1234)), 0x40000);
        assert_eq!(run_socket_filter(&prog, &ipv4_udp(80)), 0);
        // A load past the end ends the program with 0.
        assert_eq!(run_socket_filter(&prog, &ipv4_udp(1234)[..21]), 0);
    }

    #[test]
    fn socket_filters_are_checked() {
        let ret = SockFilter::stmt(CLASS_RET, 0);
        assert_eq!(check_socket_filter(&[]), Err(Errno::EINVAL));
        // Not ending in RET, a jump out of the program, an unknown opcode, an ancillary load.
        let ld = SockFilter::stmt(CLASS_LD | SIZE_W | MODE_ABS, 0);
        assert_eq!(check_socket_filter(&[ld]), Err(Errno::EINVAL));
        let far = SockFilter::jump(CLASS_JMP | JMP_JEQ, 0, 5, 0);
        assert_eq!(check_socket_filter(&[far, ret]), Err(Errno::EINVAL));
        assert_eq!(
            check_socket_filter(&[SockFilter::stmt(0xff, 0), ret]),
            Err(Errno::EINVAL)
        );
        let ad = SockFilter::stmt(CLASS_LD | SIZE_W | MODE_ABS, 0xffff_f000);
        assert_eq!(check_socket_filter(&[ad, ret]), Err(Errno::EINVAL));
        // A scratch slot read before it is written.
        let mem = SockFilter::stmt(CLASS_LD | MODE_MEM, 3);
        assert_eq!(check_socket_filter(&[mem, ret]), Err(Errno::EINVAL));
        assert_eq!(check_socket_filter(&[ret]), Ok(()));
    }
}
