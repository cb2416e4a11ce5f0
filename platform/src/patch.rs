//! System-call patching: the byte formats of the rewrite (the sentry decides and writes; see
//! `sentry::mm::MemoryManager::patch_syscall`).
//!
//! A `syscall` that follows `mov $NR, %eax` (`b8 NR32 0f 05`, what glibc's wrappers emit) and
//! traps a second time in a thread is rewritten in place into `jmp *THUNK` (`ff 24 25
//! THUNK32`, also 7 bytes): an indirect jump through the first word of a *thunk* in the patch
//! table, a private read + execute mapping at [`TABLE_ADDR`] in the application's address
//! space. Each patched site has its own 32-byte thunk:
//!
//! ```text
//! +0   u64  address of +8 (what the site's indirect jump loads)
//! +8   mov  $NR, %eax
//! +13  movabs $SITE+7, %rcx    (the return address, as `syscall` leaves it in rcx)
//! +23  jmp  *[rip -> TABLE_ADDR]  (the table's first word: the stub's fast entry)
//! ```
//!
//! The fast entry (in the systrap stub code) saves the registers into the stub's message
//! region, hands off to the sentry like the SIGSYS handler, and returns to rcx: no seccomp
//! trap and no signal.
//!
//! # Atomicity
//! The table lies at `0x6xxxx`, so byte 5 of the jump (where the `syscall` opcode was) is
//! `0x06`, an invalid opcode in 64-bit mode. The site is written in three steps: byte 5
//! (`0x06`), then bytes 1-6, then byte 0 (`0xff`). A thread that ran the old `mov` before
//! the rewrite and reaches byte 5 afterwards takes SIGILL at `SITE+5`; the sentry sees a
//! patched site behind it ([`is_patched_site`]) and restarts the thread at `SITE`. Any
//! other interleaving decodes as the old or the new instruction.

/// Where the patch table is mapped (byte 2 must be 0x06: see the module documentation).
pub const TABLE_ADDR: u64 = 0x6_0000;
/// Bytes of the patch table (its thunks stay below 0x7_0000).
pub const TABLE_LEN: u64 = 0x1_0000;
/// Bytes of one thunk; thunk 0 is the table header.
pub const THUNK_LEN: u64 = 32;
/// Bytes of a patched site (`mov $NR, %eax; syscall`, then `jmp *THUNK`).
pub const SITE_LEN: usize = 7;
/// Offset in a site of the byte that becomes 0x06 first.
pub const SITE_FAULT_OFFSET: usize = 5;
/// `ff 24 25`: `jmp *disp32` (absolute indirect).
const JMP_ABS_INDIRECT: [u8; 3] = [0xff, 0x24, 0x25];

const _: () = assert!((TABLE_ADDR >> 16) & 0xff == 0x06);
const _: () = assert!(((TABLE_ADDR + TABLE_LEN - 1) >> 16) & 0xff == 0x06);

/// The table header (thunk 0): the fast entry's address, then padding.
pub fn table_header(fast_entry: u64) -> [u8; THUNK_LEN as usize] {
    let mut h = [0xcc; THUNK_LEN as usize];
    h[..8].copy_from_slice(&fast_entry.to_le_bytes());
    h
}

/// Address of thunk `index` (1-based; 0 is the header), None past the table.
pub fn thunk_addr(index: u64) -> Option<u64> {
    (index > 0 && (index + 1) * THUNK_LEN <= TABLE_LEN).then(|| TABLE_ADDR + index * THUNK_LEN)
}

/// The thunk at `addr` for system call `sysno` of the site at `site`.
pub fn thunk(addr: u64, sysno: u32, site: u64) -> [u8; THUNK_LEN as usize] {
    let mut t = [0xcc; THUNK_LEN as usize];
    t[..8].copy_from_slice(&(addr + 8).to_le_bytes());
    t[8] = 0xb8;
    t[9..13].copy_from_slice(&sysno.to_le_bytes());
    t[13] = 0x48;
    t[14] = 0xb9;
    t[15..23].copy_from_slice(&(site + SITE_LEN as u64).to_le_bytes());
    t[23] = 0xff;
    t[24] = 0x25;
    // rip-relative from the end of this jump (addr + 29) back to the header.
    let disp = TABLE_ADDR as i64 - (addr as i64 + 29);
    t[25..29].copy_from_slice(&(disp as i32).to_le_bytes());
    t
}

/// Whether `code` (the 7 bytes before a trapped system call's return address) is
/// `mov $sysno, %eax; syscall`.
pub fn is_patchable(code: &[u8; SITE_LEN], sysno: u64) -> bool {
    code[0] == 0xb8
        && code[5..] == [0x0f, 0x05]
        && u64::from(u32::from_le_bytes([code[1], code[2], code[3], code[4]])) == sysno
}

/// The rewritten site jumping through the thunk at `thunk`.
pub fn site(thunk: u64) -> [u8; SITE_LEN] {
    let mut s = [0u8; SITE_LEN];
    s[..3].copy_from_slice(&JMP_ABS_INDIRECT);
    s[3..].copy_from_slice(&(thunk as u32).to_le_bytes());
    s
}

/// Whether `code` is a rewritten site (a jump into the patch table).
pub fn is_patched_site(code: &[u8; SITE_LEN]) -> bool {
    let target = u64::from(u32::from_le_bytes([code[3], code[4], code[5], code[6]]));
    code[..3] == JMP_ABS_INDIRECT
        && thunk_addr(1).is_some_and(|first| target >= first)
        && target < TABLE_ADDR + TABLE_LEN
        && (target - TABLE_ADDR).is_multiple_of(THUNK_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interleaving_of_the_rewrite_faults_or_decodes_whole() {
        let old = [0xb8, 39, 0, 0, 0, 0x0f, 0x05];
        assert!(is_patchable(&old, 39));
        assert!(!is_patchable(&old, 40));
        let t = thunk_addr(1).unwrap();
        let new = site(t);
        // Byte 5 of the new site is the 0x06 the first step writes.
        assert_eq!(new[SITE_FAULT_OFFSET], 0x06);
        assert!(is_patched_site(&new));
        assert!(!is_patched_site(&old));
        let last = thunk_addr(TABLE_LEN / THUNK_LEN - 1).unwrap();
        assert_eq!(site(last)[SITE_FAULT_OFFSET], 0x06);
        assert_eq!(thunk_addr(TABLE_LEN / THUNK_LEN), None);
        assert_eq!(thunk_addr(0), None);
    }

    #[test]
    fn a_thunk_loads_its_own_code_and_jumps_to_the_header() {
        let a = thunk_addr(3).unwrap();
        let t = thunk(a, 39, 0x40_1000);
        assert_eq!(u64::from_le_bytes(t[..8].try_into().unwrap()), a + 8);
        assert_eq!(&t[8..13], &[0xb8, 39, 0, 0, 0]);
        assert_eq!(u64::from_le_bytes(t[15..23].try_into().unwrap()), 0x40_1007);
        let disp = i32::from_le_bytes(t[25..29].try_into().unwrap());
        assert_eq!((a as i64 + 29 + i64::from(disp)) as u64, TABLE_ADDR);
    }
}
