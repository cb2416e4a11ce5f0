//! seccomp for applications: the filters a task installs with `seccomp(2)` or
//! `prctl(PR_SET_SECCOMP)`, checked before every system call it makes (the sandbox's own
//! host filter is another thing, `boot::seccomp`).
//!
//! A filter is a classic BPF program over [`SeccompData`]. Installing one validates it as
//! Linux does (`seccomp_check_filter` and `bpf_check_classic`: only the instructions seccomp
//! allows, loads of aligned words inside `seccomp_data`, jumps forward and in bounds, no
//! scratch slot read before it is written, a `RET` last) and pushes it on the task's chain;
//! the chain is inherited by `fork`/`clone` and kept across `execve`. Every filter of the chain
//! runs on each call and the least permissive verdict wins ([`Action::precedence`]).
//! Strict mode allows only `read`, `write`, `exit` and `rt_sigreturn`.
//!
//! The state lives in the [`TaskHandle`](super::task::TaskHandle), not the `Task`, because
//! `SECCOMP_FILTER_FLAG_TSYNC` installs a filter on the other threads of the group. A task
//! that never used seccomp pays one atomic load per system call.
//!
//! A checkpoint saves each task's mode, `no_new_privs` and chain ([`SeccompImage`]): every
//! distinct filter once ([`FilterSaver`], [`FilterImage`] naming the one below it by index),
//! so threads and fork children that shared a chain prefix share it again after a restore
//! ([`restore_filters`], [`SeccompState::restore`]) and TSYNC still finds a sibling's
//! filters in its chain. No filter flag is kept after installation (`SECCOMP_FILTER_FLAG_LOG`
//! changes nothing here), so none is saved.
//!
//! Not offered: `SECCOMP_RET_USER_NOTIF` listeners (`SECCOMP_FILTER_FLAG_NEW_LISTENER` is
//! refused with EINVAL and the action reported unavailable), and tracers for
//! `SECCOMP_RET_TRACE` (ptrace's `PTRACE_O_TRACESECCOMP` is not offered, so the call fails
//! with ENOSYS as Linux does without a tracer asking for seccomp stops).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::bpf::{
    alu_ok, check_loads_after_stores, interpret, jump_ok, ALU_MOD, CLASS_ALU, CLASS_JMP, CLASS_LD,
    CLASS_LDX, CLASS_MISC, CLASS_RET, CLASS_ST, CLASS_STX, MEMWORDS, MISC_TAX, MISC_TXA, MODE_ABS,
    MODE_IMM, MODE_LEN, MODE_MEM, RVAL_A, SIZE_W,
};
use crate::abi::Errno;

/// `AUDIT_ARCH_X86_64`: the `arch` of every call the sandbox runs.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

pub use crate::abi::bpf::{SockFilter, MAX_INSNS};

/// Instructions the whole chain may hold, each filter counting 4 more
/// (`MAX_INSNS_PER_PATH`): beyond it installing fails with ENOMEM.
const MAX_INSNS_PER_PATH: usize = 32768;

/// The filter's input (`struct seccomp_data`, 64 bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `SECCOMP_RET_*` action values (the high 16 bits of a filter's return value).
pub mod ret {
    pub const KILL_PROCESS: u32 = 0x8000_0000;
    pub const KILL_THREAD: u32 = 0x0000_0000;
    pub const TRAP: u32 = 0x0003_0000;
    pub const ERRNO: u32 = 0x0005_0000;
    pub const USER_NOTIF: u32 = 0x7fc0_0000;
    pub const TRACE: u32 = 0x7ff0_0000;
    pub const LOG: u32 = 0x7ffc_0000;
    pub const ALLOW: u32 = 0x7fff_0000;
    pub const ACTION_FULL: u32 = 0xffff_0000;
    pub const DATA: u32 = 0x0000_ffff;
}

/// What the filters decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// Allowed and logged (`SECCOMP_RET_LOG`).
    Log,
    /// Fail the call with this errno, without running it.
    Errno(u16),
    /// Deliver SIGSYS (`si_code` SYS_SECCOMP, `si_errno` the data), without running the call.
    Trap(u16),
    /// For a tracer; with none, the call fails with ENOSYS.
    Trace(u16),
    /// For a user-space listener (none can exist here): ENOSYS.
    UserNotif,
    /// Kill the calling thread as if by SIGSYS (the process, when it is the last thread).
    KillThread,
    /// Kill the process with SIGSYS.
    KillProcess,
}

impl Action {
    /// A filter's return value as an action. Unknown actions are KILL_PROCESS, as Linux treats
    /// them.
    pub fn from_ret(value: u32) -> Action {
        let data = (value & ret::DATA) as u16;
        match value & ret::ACTION_FULL {
            ret::KILL_PROCESS => Action::KillProcess,
            ret::KILL_THREAD => Action::KillThread,
            ret::TRAP => Action::Trap(data),
            ret::ERRNO => Action::Errno(data),
            ret::USER_NOTIF => Action::UserNotif,
            ret::TRACE => Action::Trace(data),
            ret::LOG => Action::Log,
            ret::ALLOW => Action::Allow,
            _ => Action::KillProcess,
        }
    }

    /// Whether `SECCOMP_GET_ACTION_AVAIL` reports `value` as available here.
    pub fn available(value: u32) -> bool {
        matches!(
            value,
            ret::KILL_PROCESS
                | ret::KILL_THREAD
                | ret::TRAP
                | ret::ERRNO
                | ret::TRACE
                | ret::LOG
                | ret::ALLOW
        )
    }
}

/// The precedence of a return value: Linux compares the action bits as a signed number and
/// the smallest (least permissive) wins.
fn precedence(value: u32) -> i32 {
    (value & ret::ACTION_FULL) as i32
}

/// System call numbers below this have a slot in a filter's verdict cache (x86-64's highest
/// is 462; x32 numbers are above 0x4000_0000 and always run the programs).
const CACHED_NRS: usize = 512;

/// One installed filter and the chain below it.
#[derive(Debug)]
pub struct Filter {
    prog: Box<[SockFilter]>,
    prev: Option<Arc<Filter>>,
    /// The chain's verdict by system call number, where no program of the chain looks at
    /// anything but the number and the architecture for it (Linux's action cache does the
    /// same): most calls of a container's profile then cost one lookup, not a run of every
    /// program.
    cache: Box<[Option<u32>]>,
}

impl Filter {
    /// `prog` (validated) pushed on `prev`, its verdict cache filled.
    fn new(prog: Vec<SockFilter>, prev: Option<Arc<Filter>>) -> Filter {
        let cache = (0..CACHED_NRS)
            .map(|nr| {
                let mine = constant_verdict(&prog, nr as i32)?;
                match &prev {
                    None => Some(mine),
                    Some(below) => {
                        let theirs = below.cache[nr]?;
                        Some(if precedence(theirs) < precedence(mine) {
                            theirs
                        } else {
                            mine
                        })
                    }
                }
            })
            .collect();
        Filter {
            prog: prog.into_boxed_slice(),
            prev,
            cache,
        }
    }

    /// Instructions in this filter and those below it, with Linux's overhead of 4 per filter.
    fn path_len(self: &Arc<Self>) -> usize {
        self.chain().map(|f| f.prog.len() + 4).sum()
    }

    fn chain(self: &Arc<Self>) -> impl Iterator<Item = &Arc<Filter>> {
        std::iter::successors(Some(self), |f| f.prev.as_ref())
    }

    /// Whether `other` is this filter or one below it.
    fn descends_from(self: &Arc<Self>, other: &Arc<Filter>) -> bool {
        self.chain().any(|f| Arc::ptr_eq(f, other))
    }

    /// Runs every filter of the chain (or takes the cached verdict); returns the winning
    /// return value.
    fn run(self: &Arc<Self>, data: &SeccompData) -> u32 {
        if let Some(&Some(v)) = usize::try_from(data.nr)
            .ok()
            .and_then(|nr| self.cache.get(nr))
        {
            return v;
        }
        let bytes = data.as_bytes();
        let mut verdict = ret::ALLOW;
        for f in self.chain() {
            let v = execute(&f.prog, bytes);
            if precedence(v) < precedence(verdict) {
                verdict = v;
            }
        }
        verdict
    }
}

/// Checks `prog` as Linux does when a filter is installed; EINVAL if it is refused.
pub fn validate(prog: &[SockFilter]) -> Result<(), Errno> {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    let data_len = std::mem::size_of::<SeccompData>() as u32;
    for (pc, ins) in prog.iter().enumerate() {
        let k = ins.k;
        let ok = match ins.code & 0x07 {
            CLASS_LD => match ins.code {
                c if c == CLASS_LD | SIZE_W | MODE_ABS => k < data_len && k % 4 == 0,
                c if c == CLASS_LD | SIZE_W | MODE_LEN => true,
                c if c == CLASS_LD | MODE_IMM => true,
                c if c == CLASS_LD | MODE_MEM => (k as usize) < MEMWORDS,
                _ => false,
            },
            CLASS_LDX => match ins.code {
                c if c == CLASS_LDX | SIZE_W | MODE_LEN => true,
                c if c == CLASS_LDX | MODE_IMM => true,
                c if c == CLASS_LDX | MODE_MEM => (k as usize) < MEMWORDS,
                _ => false,
            },
            CLASS_ST | CLASS_STX => ins.code & !0x07 == 0 && (k as usize) < MEMWORDS,
            // Every ALU operation of classic BPF but BPF_MOD.
            CLASS_ALU => ins.code & 0xf0 != ALU_MOD && alu_ok(ins.code, k),
            CLASS_JMP => jump_ok(ins, pc, prog.len()),
            CLASS_RET => ins.code == CLASS_RET || ins.code == CLASS_RET | RVAL_A,
            CLASS_MISC => ins.code == CLASS_MISC | MISC_TAX || ins.code == CLASS_MISC | MISC_TXA,
            _ => false,
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

/// Runs a validated program over the 64 bytes of `seccomp_data`.
fn execute(prog: &[SockFilter], data: &[u8]) -> u32 {
    interpret(prog, data.len() as u32, |_, k| {
        let k = k as usize;
        Some(
            data.get(k..k + 4)
                .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        )
    })
}

/// What a validated program returns for system call `nr` whatever its arguments and
/// instruction pointer: None when the path it takes for `nr` loads any word of
/// `seccomp_data` but the number and the architecture.
fn constant_verdict(prog: &[SockFilter], nr: i32) -> Option<u32> {
    let depends = std::cell::Cell::new(false);
    let verdict = interpret(prog, SECCOMP_DATA_LEN, |_, k| match k {
        0 => Some(nr as u32),
        4 => Some(AUDIT_ARCH_X86_64),
        _ => {
            depends.set(true);
            Some(0)
        }
    });
    (!depends.get()).then_some(verdict)
}

/// The size of `seccomp_data` (what `BPF_LEN` loads).
const SECCOMP_DATA_LEN: u32 = 64;

/// The seccomp mode (`PR_GET_SECCOMP`, /proc/[pid]/status `Seccomp:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Disabled = 0,
    Strict = 1,
    Filter = 2,
}

/// A task's seccomp state and its `no_new_privs` bit.
#[derive(Debug, Default)]
pub struct SeccompState {
    /// [`Mode`] as a number, read without the lock on every system call.
    mode: AtomicU8,
    no_new_privs: AtomicBool,
    filter: Mutex<Option<Arc<Filter>>>,
}

/// Why TSYNC could not install a filter on a sibling thread.
#[derive(Debug, PartialEq, Eq)]
pub struct SyncConflict {
    pub tid: i32,
}

impl SeccompState {
    /// Takes the parent's mode, filters and `no_new_privs` (a new task made by fork or clone,
    /// before it runs).
    pub fn inherit_from(&self, parent: &SeccompState) {
        *self.filter.lock().unwrap_or_else(|e| e.into_inner()) = parent.current();
        self.no_new_privs
            .store(parent.no_new_privs(), Ordering::Release);
        self.mode
            .store(parent.mode.load(Ordering::Acquire), Ordering::Release);
    }

    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Acquire) {
            1 => Mode::Strict,
            2 => Mode::Filter,
            _ => Mode::Disabled,
        }
    }

    pub fn no_new_privs(&self) -> bool {
        self.no_new_privs.load(Ordering::Acquire)
    }

    /// `PR_SET_NO_NEW_PRIVS`: once set it stays set.
    pub fn set_no_new_privs(&self) {
        self.no_new_privs.store(true, Ordering::Release);
    }

    /// The newest filter of the chain.
    pub fn current(&self) -> Option<Arc<Filter>> {
        self.filter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Filters installed (/proc/[pid]/status `Seccomp_filters:`).
    pub fn filter_count(&self) -> usize {
        self.current().map_or(0, |f| f.chain().count())
    }

    /// Enters strict mode; EINVAL when filters are installed.
    pub fn set_strict(&self) -> Result<(), Errno> {
        match self.mode() {
            Mode::Filter => Err(Errno::EINVAL),
            _ => {
                self.mode.store(Mode::Strict as u8, Ordering::Release);
                Ok(())
            }
        }
    }

    /// Pushes a validated `prog` on this task's chain: EINVAL in strict mode, ENOMEM past
    /// the total length Linux allows.
    pub fn install(&self, prog: Vec<SockFilter>) -> Result<Arc<Filter>, Errno> {
        if self.mode() == Mode::Strict {
            return Err(Errno::EINVAL);
        }
        let mut slot = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        let filter = Arc::new(Filter::new(prog, slot.clone()));
        if filter.path_len() > MAX_INSNS_PER_PATH {
            return Err(Errno::ENOMEM);
        }
        *slot = Some(filter.clone());
        self.mode.store(Mode::Filter as u8, Ordering::Release);
        Ok(filter)
    }

    /// Whether TSYNC may give this thread a filter pushed on `chain` (a sibling's): its own
    /// filters must all be in `chain`, and it must not be in strict mode.
    pub fn can_take_filter_above(&self, chain: Option<&Arc<Filter>>) -> bool {
        match (self.mode(), self.current(), chain) {
            (Mode::Strict, _, _) => false,
            (_, None, _) => true,
            (_, Some(_), None) => false,
            (_, Some(mine), Some(chain)) => chain.descends_from(&mine),
        }
    }

    /// TSYNC: this thread takes `filter`, and `no_new_privs` when the caller has it.
    pub fn sync_to(&self, filter: &Arc<Filter>, no_new_privs: bool) {
        *self.filter.lock().unwrap_or_else(|e| e.into_inner()) = Some(filter.clone());
        self.mode.store(Mode::Filter as u8, Ordering::Release);
        if no_new_privs {
            self.set_no_new_privs();
        }
    }

    /// The verdict for system call `nr` with `args` made at `ip`; None (allowed, nothing to
    /// evaluate) for a task without seccomp.
    pub fn check(&self, nr: u64, args: &[u64; 6], ip: u64) -> Option<Action> {
        match self.mode() {
            Mode::Disabled => None,
            Mode::Strict => {
                let allowed = matches!(
                    nr as i64,
                    libc::SYS_read | libc::SYS_write | libc::SYS_exit | libc::SYS_rt_sigreturn
                );
                Some(if allowed {
                    Action::Allow
                } else {
                    Action::KillThread
                })
            }
            Mode::Filter => {
                let filter = self.current()?;
                let data = SeccompData {
                    nr: nr as i32,
                    arch: AUDIT_ARCH_X86_64,
                    instruction_pointer: ip,
                    args: *args,
                };
                Some(Action::from_ret(filter.run(&data)))
            }
        }
    }
}

/// A task's seccomp state in a checkpoint image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompImage {
    /// [`Mode`] as a number.
    pub mode: u8,
    pub no_new_privs: bool,
    /// The newest filter of its chain, an index of the image's filter list.
    pub filter: Option<usize>,
}

/// One filter in a checkpoint image: its instructions as `(code, jt, jf, k)` and the filter
/// below it, an index smaller than its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterImage {
    pub prog: Vec<(u16, u8, u8, u32)>,
    pub prev: Option<usize>,
}

/// Collects the filters of the tasks a checkpoint saves, each distinct one once, every
/// filter after the one below it.
#[derive(Default)]
pub struct FilterSaver {
    /// By address: the filters are kept alive in `held` meanwhile.
    index: HashMap<usize, usize>,
    held: Vec<Arc<Filter>>,
    images: Vec<FilterImage>,
}

impl FilterSaver {
    /// The image of one task's state, its filters added to the list.
    pub fn task(&mut self, state: &SeccompState) -> SeccompImage {
        // One lock for the mode, the bit and the chain, so they agree with each other.
        let slot = state.filter.lock().unwrap_or_else(|e| e.into_inner());
        SeccompImage {
            mode: state.mode.load(Ordering::Acquire),
            no_new_privs: state.no_new_privs(),
            filter: slot.as_ref().map(|f| self.intern(f)),
        }
    }

    fn intern(&mut self, top: &Arc<Filter>) -> usize {
        let key = |f: &Arc<Filter>| Arc::as_ptr(f) as usize;
        // The filters not seen yet, newest first; the chain below them is already saved.
        let mut new = Vec::new();
        let mut below = None;
        for f in top.chain() {
            if let Some(&i) = self.index.get(&key(f)) {
                below = Some(i);
                break;
            }
            new.push(f.clone());
        }
        for f in new.into_iter().rev() {
            let i = self.images.len();
            self.images.push(FilterImage {
                prog: f.prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect(),
                prev: below,
            });
            self.index.insert(key(&f), i);
            self.held.push(f);
            below = Some(i);
        }
        below.expect("a chain has at least its top filter")
    }

    /// The image's filter list.
    pub fn finish(self) -> Vec<FilterImage> {
        self.images
    }
}

/// The filters of an image, rebuilt in order with their chains; each program is checked
/// again as an install checks it, so a damaged image cannot give the sentry a program it
/// would refuse.
pub fn restore_filters(images: &[FilterImage]) -> Result<Vec<Arc<Filter>>, String> {
    let mut filters: Vec<Arc<Filter>> = Vec::with_capacity(images.len());
    for (i, image) in images.iter().enumerate() {
        let prog: Vec<SockFilter> = image
            .prog
            .iter()
            .map(|&(code, jt, jf, k)| SockFilter { code, jt, jf, k })
            .collect();
        validate(&prog).map_err(|_| format!("seccomp filter {i} is not a valid program"))?;
        let prev = match image.prev {
            None => None,
            Some(p) if p < i => Some(filters[p].clone()),
            Some(p) => return Err(format!("seccomp filter {i} names filter {p} below it")),
        };
        let filter = Arc::new(Filter::new(prog, prev));
        if filter.path_len() > MAX_INSNS_PER_PATH {
            return Err(format!("seccomp filter {i} makes too long a chain"));
        }
        filters.push(filter);
    }
    Ok(filters)
}

impl SeccompState {
    /// Puts back a task's state from its image (a restored task, before it runs), the chain
    /// taken from `filters` ([`restore_filters`]) so that shared filters stay shared.
    pub fn restore(&self, image: &SeccompImage, filters: &[Arc<Filter>]) -> Result<(), String> {
        let filter = match image.filter {
            None => None,
            Some(i) => Some(
                filters
                    .get(i)
                    .ok_or_else(|| format!("no seccomp filter {i}"))?
                    .clone(),
            ),
        };
        let consistent = match image.mode {
            m if m == Mode::Disabled as u8 || m == Mode::Strict as u8 => filter.is_none(),
            m if m == Mode::Filter as u8 => filter.is_some(),
            _ => false,
        };
        if !consistent {
            return Err(format!(
                "seccomp mode {} does not fit its filters",
                image.mode
            ));
        }
        *self.filter.lock().unwrap_or_else(|e| e.into_inner()) = filter;
        self.no_new_privs
            .store(image.no_new_privs, Ordering::Release);
        self.mode.store(image.mode, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::bpf::{ALU_ADD, ALU_DIV, ALU_LSH, ALU_OR, JMP_JEQ};

    const LD_NR: u16 = CLASS_LD | SIZE_W | MODE_ABS;
    const JEQ_K: u16 = CLASS_JMP | JMP_JEQ;
    const RET_K: u16 = CLASS_RET;

    /// Denies getpid (39) with EPERM, allows the rest.
    fn deny_getpid() -> Vec<SockFilter> {
        vec![
            SockFilter::stmt(LD_NR, 0),
            SockFilter::jump(JEQ_K, 39, 0, 1),
            SockFilter::stmt(RET_K, ret::ERRNO | 1),
            SockFilter::stmt(RET_K, ret::ALLOW),
        ]
    }

    #[test]
    fn a_filter_decides_by_number() {
        let s = SeccompState::default();
        assert_eq!(s.check(39, &[0; 6], 0), None);
        validate(&deny_getpid()).unwrap();
        s.install(deny_getpid()).unwrap();
        assert_eq!(s.mode(), Mode::Filter);
        assert_eq!(s.check(39, &[0; 6], 0), Some(Action::Errno(1)));
        assert_eq!(s.check(0, &[0; 6], 0), Some(Action::Allow));
    }

    #[test]
    fn the_least_permissive_filter_wins_and_children_inherit() {
        let s = SeccompState::default();
        s.install(deny_getpid()).unwrap();
        s.install(vec![SockFilter::stmt(RET_K, ret::TRAP | 7)])
            .unwrap();
        assert_eq!(s.check(39, &[0; 6], 0), Some(Action::Trap(7)));
        s.install(vec![SockFilter::stmt(RET_K, ret::KILL_PROCESS)])
            .unwrap();
        let child = SeccompState::default();
        child.inherit_from(&s);
        assert_eq!(child.filter_count(), 3);
        assert_eq!(child.check(1, &[0; 6], 0), Some(Action::KillProcess));
    }

    #[test]
    fn the_cache_keeps_only_verdicts_that_need_no_arguments() {
        // write (1) is denied when its fd (args[0]) is 2; getpid denied; the rest allowed.
        let by_fd = vec![
            SockFilter::stmt(LD_NR, 0),
            SockFilter::jump(JEQ_K, 1, 0, 3),
            SockFilter::stmt(LD_NR, 16),
            SockFilter::jump(JEQ_K, 2, 0, 1),
            SockFilter::stmt(RET_K, ret::ERRNO | 9),
            SockFilter::stmt(RET_K, ret::ALLOW),
        ];
        validate(&by_fd).unwrap();
        let s = SeccompState::default();
        s.install(deny_getpid()).unwrap();
        s.install(by_fd).unwrap();
        let top = s.current().unwrap();
        assert_eq!(top.cache[1], None, "write looks at its fd");
        assert_eq!(
            top.cache[39],
            Some(ret::ERRNO | 1),
            "the filter below decides getpid"
        );
        assert_eq!(top.cache[0], Some(ret::ALLOW));
        assert_eq!(top.cache.len(), CACHED_NRS);
        // Cached or not, the verdicts are the programs'.
        assert_eq!(s.check(1, &[2, 0, 0, 0, 0, 0], 0), Some(Action::Errno(9)));
        assert_eq!(s.check(1, &[1, 0, 0, 0, 0, 0], 0), Some(Action::Allow));
        assert_eq!(s.check(39, &[2, 0, 0, 0, 0, 0], 0), Some(Action::Errno(1)));
        for nr in [0u64, 1, 39, 300, 511, 512, 0x4000_0001] {
            for args in [[0u64; 6], [2, 0, 0, 0, 0, 0]] {
                let data = SeccompData {
                    nr: nr as i32,
                    arch: AUDIT_ARCH_X86_64,
                    instruction_pointer: 0,
                    args,
                };
                let slow = top
                    .chain()
                    .map(|f| execute(&f.prog, data.as_bytes()))
                    .min_by_key(|&v| precedence(v))
                    .unwrap();
                assert_eq!(top.run(&data), slow, "nr {nr} args {args:?}");
            }
        }
    }

    #[test]
    fn arguments_and_scratch_memory() {
        // A = args[0] low word; mem[0] = A; X = mem[0]; A = X + 1; return A (as an ERRNO).
        let prog = vec![
            SockFilter::stmt(LD_NR, 16),
            SockFilter::stmt(CLASS_ST, 0),
            SockFilter::stmt(CLASS_LDX | MODE_MEM, 0),
            SockFilter::stmt(CLASS_MISC | MISC_TXA, 0),
            SockFilter::stmt(CLASS_ALU | ALU_ADD, 1),
            SockFilter::stmt(CLASS_ALU | ALU_OR, ret::ERRNO),
            SockFilter::stmt(CLASS_RET | RVAL_A, 0),
        ];
        validate(&prog).unwrap();
        let s = SeccompState::default();
        s.install(prog).unwrap();
        assert_eq!(s.check(0, &[41, 0, 0, 0, 0, 0], 0), Some(Action::Errno(42)));
    }

    #[test]
    fn bad_programs_are_refused() {
        let bad: &[&[SockFilter]] = &[
            &[],
            // No RET at the end.
            &[SockFilter::stmt(LD_NR, 0)],
            // Unaligned and out-of-range loads.
            &[SockFilter::stmt(LD_NR, 2), SockFilter::stmt(RET_K, 0)],
            &[SockFilter::stmt(LD_NR, 64), SockFilter::stmt(RET_K, 0)],
            // Packet loads other than absolute words.
            &[
                SockFilter::stmt(CLASS_LD | 0x08 | MODE_ABS, 0),
                SockFilter::stmt(RET_K, 0),
            ],
            // A jump past the end.
            &[SockFilter::jump(JEQ_K, 0, 5, 0), SockFilter::stmt(RET_K, 0)],
            // Division by a zero constant, a shift by 32.
            &[
                SockFilter::stmt(CLASS_ALU | ALU_DIV, 0),
                SockFilter::stmt(RET_K, 0),
            ],
            &[
                SockFilter::stmt(CLASS_ALU | ALU_LSH, 32),
                SockFilter::stmt(RET_K, 0),
            ],
            // A scratch slot read before any write.
            &[
                SockFilter::stmt(CLASS_LD | MODE_MEM, 3),
                SockFilter::stmt(RET_K, 0),
            ],
            // MOD is not in seccomp's list.
            &[
                SockFilter::stmt(CLASS_ALU | 0x90, 3),
                SockFilter::stmt(RET_K, 0),
            ],
        ];
        for prog in bad {
            assert_eq!(validate(prog), Err(Errno::EINVAL), "{prog:?}");
        }
        assert_eq!(
            validate(&vec![SockFilter::stmt(RET_K, 0); MAX_INSNS + 1]),
            Err(Errno::EINVAL)
        );
        validate(&vec![SockFilter::stmt(RET_K, 0); MAX_INSNS]).unwrap();
    }

    #[test]
    fn a_write_on_one_path_only_does_not_count() {
        // if A == 0 { mem[1] = A } ; A = mem[1]
        let prog = vec![
            SockFilter::jump(JEQ_K, 0, 0, 1),
            SockFilter::stmt(CLASS_ST, 1),
            SockFilter::stmt(CLASS_LD | MODE_MEM, 1),
            SockFilter::stmt(RET_K, 0),
        ];
        assert_eq!(validate(&prog), Err(Errno::EINVAL));
    }

    #[test]
    fn strict_mode_allows_four_calls() {
        let s = SeccompState::default();
        s.set_strict().unwrap();
        assert_eq!(s.check(0, &[0; 6], 0), Some(Action::Allow));
        assert_eq!(s.check(39, &[0; 6], 0), Some(Action::KillThread));
        assert_eq!(s.install(deny_getpid()).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn an_image_keeps_shared_chains_shared() {
        let parent = SeccompState::default();
        parent.set_no_new_privs();
        parent.install(deny_getpid()).unwrap();
        let child = SeccompState::default();
        child.inherit_from(&parent);
        child
            .install(vec![SockFilter::stmt(RET_K, ret::ERRNO | 5)])
            .unwrap();
        parent
            .install(vec![SockFilter::stmt(RET_K, ret::ALLOW)])
            .unwrap();
        let strict = SeccompState::default();
        strict.set_strict().unwrap();
        let plain = SeccompState::default();

        let mut saver = FilterSaver::default();
        let images: Vec<SeccompImage> = [&parent, &child, &strict, &plain]
            .iter()
            .map(|s| saver.task(s))
            .collect();
        let list = saver.finish();
        // The shared bottom filter once, then each task's own.
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].prev, None);
        assert_eq!(list[1].prev, Some(0));
        assert_eq!(list[2].prev, Some(0));
        assert_eq!(images[2].filter, None);
        assert_eq!(images[2].mode, Mode::Strict as u8);

        let json = serde_json::to_string(&(&images, &list)).unwrap();
        let (images, list): (Vec<SeccompImage>, Vec<FilterImage>) =
            serde_json::from_str(&json).unwrap();
        let filters = restore_filters(&list).unwrap();
        let states: Vec<SeccompState> = images
            .iter()
            .map(|i| {
                let s = SeccompState::default();
                s.restore(i, &filters).unwrap();
                s
            })
            .collect();
        let (p, c) = (&states[0], &states[1]);
        assert!(p.no_new_privs() && c.no_new_privs());
        assert_eq!(p.check(39, &[0; 6], 0), Some(Action::Errno(1)));
        assert_eq!(c.check(1, &[0; 6], 0), Some(Action::Errno(5)));
        assert_eq!((p.filter_count(), c.filter_count()), (2, 2));
        let (pc, cc) = (p.current().unwrap(), c.current().unwrap());
        assert!(Arc::ptr_eq(
            pc.prev.as_ref().unwrap(),
            cc.prev.as_ref().unwrap()
        ));
        assert_eq!(states[2].mode(), Mode::Strict);
        assert_eq!(states[3].check(39, &[0; 6], 0), None);
    }

    #[test]
    fn a_damaged_image_is_refused() {
        let ret_allow = (RET_K, 0, 0, ret::ALLOW);
        let forward = FilterImage {
            prog: vec![ret_allow],
            prev: Some(0),
        };
        assert!(restore_filters(&[forward]).is_err());
        let bad = FilterImage {
            prog: vec![(LD_NR, 0, 0, 2), ret_allow],
            prev: None,
        };
        assert!(restore_filters(&[bad]).is_err());
        let s = SeccompState::default();
        let image = SeccompImage {
            mode: Mode::Filter as u8,
            no_new_privs: false,
            filter: None,
        };
        assert!(s.restore(&image, &[]).is_err());
        let image = SeccompImage {
            filter: Some(3),
            ..image
        };
        assert!(s.restore(&image, &[]).is_err());
    }

    #[test]
    fn the_chain_has_a_length_limit() {
        let s = SeccompState::default();
        let big = vec![SockFilter::stmt(RET_K, ret::ALLOW); MAX_INSNS];
        for _ in 0..7 {
            s.install(big.clone()).unwrap();
        }
        assert_eq!(s.install(big).err(), Some(Errno::ENOMEM));
    }
}
