//! The sandbox's clocks: the host's clocks read through the TSC, the same way by the vDSO
//! (from the `[vvar]` page) and by the sentry's own clock system calls ([`now`]), so both
//! always agree.
//!
//! # The parameters
//! `ns = base_ns[clock] + ((tsc - tsc_base) * mult) >> shift`, one `tsc_base`, `mult` and
//! `shift` for every clock and a base per clock ID (CLOCK_REALTIME, CLOCK_MONOTONIC,
//! CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME and the two _COARSE clocks, which read as the fine
//! ones as in gVisor; 0: the clock is not served, make the system call). The `[vvar]` page
//! holds them as little-endian u64s at the offsets of [`layout`], which vdso.c mirrors,
//! under a sequence counter that is odd while the sentry writes (readers retry) and a
//! `ready` word (0: make the system call).
//!
//! # Calibration and refresh
//! One thread per sentry process ([`start`], called during boot before the sandbox loses
//! sight of the host's /sys) samples the TSC and the host's clocks, publishes parameters
//! [`CALIBRATION`] later (until then everything reads the host clocks through the system
//! call) and refreshes them every [`REFRESH`], sleeping in between. Each refresh measures
//! the TSC rate against the host's CLOCK_MONOTONIC over the last interval (following NTP's
//! slewing) and
//! - starts CLOCK_MONOTONIC where the old parameters are at that TSC if that is ahead of the
//!   host, so it never goes back (the sample is taken while the counter is odd: no reader
//!   can have seen the old parameters at a later TSC);
//! - picks the rate that reaches the host clock plus [`LEAD`] at the next refresh, so the
//!   sandbox's clock stays a little ahead of the host's, which times the sentry's sleeps
//!   and timers: a sleep until an absolute time never ends early by the sandbox's clock;
//! - puts CLOCK_REALTIME and CLOCK_BOOTTIME at their host offsets from CLOCK_MONOTONIC
//!   (realtime follows the host's steps; the boot offset only grows).
//!
//! A host whose TSC is not usable (clocksource other than `tsc`, or no invariant TSC:
//! CPUID 0x80000007 EDX bit 8, Linux's constant_tsc and nonstop_tsc) gets no thread:
//! the page stays "not ready" and every read is a system call of the host clocks.
//!
//! # Lock order
//! `STATE` is a leaf lock; it is held while the pages are written.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Mutex, Once, Weak};
use std::time::Duration;

use super::Pages;

/// Offsets of the parameter page's words (vdso.c's `struct vvar`).
pub(super) mod layout {
    pub const SEQ: u64 = 0;
    pub const READY: u64 = 8;
    pub const TSC_BASE: u64 = 16;
    pub const MULT: u64 = 24;
    pub const SHIFT: u64 = 32;
    /// `base_ns[clock]` for clock IDs `0..CLOCKS`.
    pub const BASE_NS: u64 = 40;
    pub const CLOCKS: usize = 8;
}

/// Time between the first sample and the first parameters.
pub const CALIBRATION: Duration = Duration::from_millis(20);
/// Time between refreshes.
pub const REFRESH: Duration = Duration::from_millis(500);
/// How far ahead of the host's CLOCK_MONOTONIC each refresh aims the sandbox's.
pub const LEAD: Duration = Duration::from_micros(20);
/// `mult`'s fixed point.
const SHIFT: u32 = 32;

/// One reading of the TSC with the host clocks (nanoseconds).
#[derive(Debug, Clone, Copy)]
struct Sample {
    tsc: u64,
    mono: u64,
    real: u64,
    boot: u64,
    /// Nanoseconds the TSC moved while the monotonic clock was read: its uncertainty.
    spread: u64,
}

/// The parameters the page and [`now`] use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Params {
    tsc_base: u64,
    mult: u64,
    base_ns: [u64; layout::CLOCKS],
}

impl Params {
    /// `clock` at TSC value `tsc`; None for clocks the parameters do not serve.
    fn nanos(&self, clock: usize, tsc: u64) -> Option<u64> {
        let base = *self.base_ns.get(clock)?;
        if base == 0 {
            return None;
        }
        let delta = tsc.saturating_sub(self.tsc_base);
        Some(base + ((delta as u128 * self.mult as u128) >> SHIFT) as u64)
    }
}

#[derive(Default)]
struct State {
    params: Option<Params>,
    /// The sample the current parameters were made from.
    last: Option<Sample>,
    /// CLOCK_BOOTTIME minus CLOCK_MONOTONIC, the largest seen.
    boot_offset: u64,
    /// The parameter pages of every live vDSO of this process.
    pages: Vec<Weak<Pages>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    params: None,
    last: None,
    boot_offset: 0,
    pages: Vec::new(),
});

static START: Once = Once::new();

/// CLOCK_MONOTONIC's parameters once more, for a reader that must not take `STATE`'s lock:
/// CPU-time accounting reads the clock twice per switch ([`monotonic_ns`]). A sequence lock
/// over atomics, written only under `STATE`'s lock (one writer at a time) and odd from
/// before a refresh's sample to its new parameters, as the pages' counters are; a reader
/// that finds it odd reads the host's clock instead of waiting for a writer that may be
/// preempted. `base_ns` 0 while there are no parameters.
struct Monotonic {
    seq: AtomicU64,
    tsc_base: AtomicU64,
    mult: AtomicU64,
    base_ns: AtomicU64,
}

static MONOTONIC: Monotonic = Monotonic {
    seq: AtomicU64::new(0),
    tsc_base: AtomicU64::new(0),
    mult: AtomicU64::new(0),
    base_ns: AtomicU64::new(0),
};

/// Makes [`MONOTONIC`]'s counter odd (the caller holds `STATE`'s lock).
fn hold_monotonic() {
    let m = &MONOTONIC;
    m.seq
        .store(m.seq.load(Ordering::Relaxed) | 1, Ordering::Relaxed);
    fence(Ordering::Release);
}

/// Copies `params`' CLOCK_MONOTONIC into [`MONOTONIC`] and makes its counter even again
/// (the caller holds `STATE`'s lock).
fn publish_monotonic(params: Option<&Params>) {
    hold_monotonic();
    let p = params.copied().unwrap_or_default();
    let m = &MONOTONIC;
    let seq = m.seq.load(Ordering::Relaxed);
    m.tsc_base.store(p.tsc_base, Ordering::Relaxed);
    m.mult.store(p.mult, Ordering::Relaxed);
    m.base_ns
        .store(p.base_ns[libc::CLOCK_MONOTONIC as usize], Ordering::Relaxed);
    m.seq.store(seq + 1, Ordering::Release);
}

/// The sandbox's CLOCK_MONOTONIC now, in nanoseconds, from an unfenced TSC read and no lock:
/// the clock [`now`] and the vDSO read, within the few cycles the read may move by. None
/// before the parameters are ready and without a usable TSC (the caller reads the host's
/// clock, which the sandbox's never runs behind: see the module documentation).
pub fn monotonic_ns() -> Option<u64> {
    let m = &MONOTONIC;
    let seq = m.seq.load(Ordering::Acquire);
    let tsc_base = m.tsc_base.load(Ordering::Relaxed);
    let mult = m.mult.load(Ordering::Relaxed);
    let base = m.base_ns.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    if !seq.is_multiple_of(2) || m.seq.load(Ordering::Relaxed) != seq || base == 0 {
        return None;
    }
    let delta = platform::rdtsc_unordered().saturating_sub(tsc_base);
    Some(base + ((delta as u128 * mult as u128) >> SHIFT) as u64)
}

/// Starts calibrating the TSC in the background if the host's is usable (once per
/// process). Reads /sys: call it before the sandbox gives up the host's filesystem.
pub fn start() {
    START.call_once(|| {
        if !tsc_usable() {
            log::info!("vDSO: the host TSC is not usable, clocks read through system calls");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("vdso-clock".into())
            .spawn(refresher);
        if let Err(e) = spawned {
            log::warn!("vDSO: no clock thread ({e}), clocks read through system calls");
        }
    });
}

/// Whether the host keeps time with an invariant TSC.
fn tsc_usable() -> bool {
    let invariant = platform::cpuid(0x8000_0000, 0).0 >= 0x8000_0007
        && platform::cpuid(0x8000_0007, 0).3 & (1 << 8) != 0;
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    invariant && source.trim() == "tsc"
}

/// The sandbox's `clock` (a clock ID) now, in nanoseconds; None before the parameters are
/// ready, without a usable TSC, and for clocks they do not serve (the caller reads the
/// host's).
pub fn now(clock: i32) -> Option<u64> {
    let clock = usize::try_from(clock).ok()?;
    let state = STATE.lock().unwrap();
    let params = state.params?;
    params.nanos(clock, platform::rdtsc())
}

/// Writes the current parameters to `page` now and at every refresh while it lives.
pub(super) fn publish_to(page: &std::sync::Arc<Pages>) {
    let mut state = STATE.lock().unwrap();
    state.pages.retain(|p| p.strong_count() > 0);
    state.pages.push(std::sync::Arc::downgrade(page));
    update(page, state.params.as_ref());
}

/// The thread [`start`] runs: calibrate, then refresh forever (it sleeps in between).
fn refresher() {
    let Some(first) = sample() else {
        log::warn!("vDSO: the host clocks cannot be read, clocks read through system calls");
        return;
    };
    STATE.lock().unwrap().last = Some(first);
    loop {
        std::thread::sleep(if STATE.lock().unwrap().params.is_some() {
            REFRESH
        } else {
            CALIBRATION
        });
        if !refresh() {
            log::warn!("vDSO: calibration failed, clocks read through system calls");
            let mut state = STATE.lock().unwrap();
            state.params = None;
            publish_monotonic(None);
            let pages: Vec<_> = state.pages.iter().filter_map(Weak::upgrade).collect();
            for page in &pages {
                update(page, None);
            }
            return;
        }
    }
}

/// Makes and publishes new parameters. False when the TSC cannot be trusted (it went back
/// or did not move).
fn refresh() -> bool {
    let mut guard = STATE.lock().unwrap();
    let state = &mut *guard;
    let pages: Vec<_> = state.pages.iter().filter_map(Weak::upgrade).collect();
    state.pages.retain(|p| p.strong_count() > 0);
    // The counter goes odd before the sample: no reader finishes with the old parameters
    // at a TSC later than the new base.
    for page in &pages {
        let seq = read_seq(page);
        write_seq(page, seq | 1);
    }
    hold_monotonic();
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    let made = sample().and_then(|s| {
        let last = state.last?;
        let params = next_params(state.params.as_ref(), &last, &s, &mut state.boot_offset)?;
        Some((s, params))
    });
    let ok = made.is_some();
    if let Some((s, params)) = made {
        state.params = Some(params);
        state.last = Some(s);
    }
    publish_monotonic(state.params.as_ref());
    for page in &pages {
        write_params(page, state.params.as_ref());
        let seq = read_seq(page);
        write_seq(page, (seq | 1) + 1);
    }
    ok
}

/// Rewrites `page` with `params` under its counter.
fn update(page: &Pages, params: Option<&Params>) {
    let seq = read_seq(page);
    write_seq(page, seq | 1);
    write_params(page, params);
    write_seq(page, (seq | 1) + 1);
}

/// The parameters for the interval that starts at `now`, after `old` made from `last`.
/// None when the TSC did not move forward since `last`.
fn next_params(
    old: Option<&Params>,
    last: &Sample,
    now: &Sample,
    boot_offset: &mut u64,
) -> Option<Params> {
    let ticks = now.tsc.checked_sub(last.tsc).filter(|&t| t > 0)?;
    let elapsed = now.mono.checked_sub(last.mono).filter(|&e| e > 0)?;
    // Nanoseconds per tick as the host's monotonic clock ran over the last interval.
    let rate = elapsed as f64 / ticks as f64;
    let mono = match old.and_then(|p| p.nanos(libc::CLOCK_MONOTONIC as usize, now.tsc)) {
        Some(extrapolated) => extrapolated.max(now.mono),
        // The first parameters start after any time the system call could have shown.
        None => now.mono + now.spread,
    };
    let lead = (mono - now.mono) as f64;
    let period = REFRESH.as_nanos() as f64;
    let target = period + LEAD.as_nanos() as f64 - lead;
    // Slower while far ahead, never backwards nor more than a little faster.
    let factor = (target / period).clamp(0.5, 1.0 + 2.0 * LEAD.as_nanos() as f64 / period);
    let mult = (rate * factor * (1u64 << SHIFT) as f64) as u64;
    if mult == 0 {
        return None;
    }
    *boot_offset = (*boot_offset).max(now.boot.saturating_sub(now.mono));
    let real = (mono as i128 + now.real as i128 - now.mono as i128).max(1) as u64;
    let boot = mono + *boot_offset;
    let mut base_ns = [0u64; layout::CLOCKS];
    for (clock, base) in [
        (libc::CLOCK_REALTIME, real),
        (libc::CLOCK_REALTIME_COARSE, real),
        (libc::CLOCK_MONOTONIC, mono),
        (libc::CLOCK_MONOTONIC_COARSE, mono),
        (libc::CLOCK_MONOTONIC_RAW, mono),
        (libc::CLOCK_BOOTTIME, boot),
    ] {
        base_ns[clock as usize] = base;
    }
    Some(Params {
        tsc_base: now.tsc,
        mult,
        base_ns,
    })
}

/// A host clock in nanoseconds (read through the host's vDSO).
fn host_nanos(clock: libc::clockid_t) -> Option<u64> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::from_raw(clock)).ok()?;
    Some(u64::try_from(ts.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec()).ok()?)
}

/// Reads the TSC around the host's CLOCK_MONOTONIC a few times and keeps the tightest pair.
fn sample() -> Option<Sample> {
    let mut best: Option<Sample> = None;
    for _ in 0..5 {
        let before = platform::rdtsc();
        let mono = host_nanos(libc::CLOCK_MONOTONIC)?;
        let after = platform::rdtsc();
        let real = host_nanos(libc::CLOCK_REALTIME)?;
        let boot = host_nanos(libc::CLOCK_BOOTTIME)?;
        let Some(ticks) = after.checked_sub(before) else {
            continue;
        };
        let s = Sample {
            tsc: before + ticks / 2,
            mono,
            real,
            boot,
            // Ticks as an upper bound of nanoseconds (TSCs tick at 1 GHz or faster).
            spread: ticks,
        };
        if best.is_none_or(|b| s.spread < b.spread) {
            best = Some(s);
        }
    }
    best
}

fn read_seq(page: &Pages) -> u64 {
    let mut b = [0u8; 8];
    page.mf.read(page.range.offset + layout::SEQ, &mut b);
    u64::from_le_bytes(b)
}

/// Stores the counter, ordered after every earlier store to the page and before every
/// later one (x86 keeps stores in order; the fence keeps the compiler from moving them).
fn write_seq(page: &Pages, seq: u64) {
    use std::sync::atomic::{compiler_fence, Ordering};
    compiler_fence(Ordering::SeqCst);
    page.mf
        .write(page.range.offset + layout::SEQ, &seq.to_le_bytes());
    compiler_fence(Ordering::SeqCst);
}

fn write_params(page: &Pages, params: Option<&Params>) {
    let at = |off: u64, v: u64| page.mf.write(page.range.offset + off, &v.to_le_bytes());
    let p = params.copied().unwrap_or_default();
    at(layout::TSC_BASE, p.tsc_base);
    at(layout::MULT, p.mult);
    at(layout::SHIFT, SHIFT as u64);
    for (i, b) in p.base_ns.iter().enumerate() {
        at(layout::BASE_NS + 8 * i as u64, *b);
    }
    at(layout::READY, params.is_some() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tsc: u64, mono: u64) -> Sample {
        Sample {
            tsc,
            mono,
            real: mono + 1_000_000_000_000,
            boot: mono + 5,
            spread: 10,
        }
    }

    #[test]
    fn monotonic_never_goes_back_across_refreshes() {
        // A 1 GHz TSC against a host clock that runs 100 ppm slow, then 100 ppm fast.
        let mut boot = 0;
        let first = s(1_000, 1_000_000);
        let second = s(1_000 + 20_000_000, 1_000_000 + 19_998_000);
        let mut p = next_params(None, &first, &second, &mut boot).unwrap();
        let mut last = second;
        let mut prev_read = p.nanos(1, second.tsc).unwrap();
        assert!(prev_read > second.mono);
        for i in 0..20u64 {
            let host_rate = if i < 10 { 0.9999 } else { 1.0001 };
            let ticks = 500_000_000;
            let now = s(
                last.tsc + ticks,
                last.mono + (ticks as f64 * host_rate) as u64,
            );
            // Just before the refresh, with the old parameters.
            let before = p.nanos(1, now.tsc - 1).unwrap();
            assert!(before >= prev_read);
            p = next_params(Some(&p), &last, &now, &mut boot).unwrap();
            let after = p.nanos(1, now.tsc).unwrap();
            assert!(after >= before, "refresh {i}: {after} < {before}");
            assert!(after >= now.mono, "behind the host");
            assert!(after - now.mono < 1_000_000, "far ahead of the host");
            assert_eq!(p.nanos(0, now.tsc).unwrap() - after, 1_000_000_000_000);
            assert_eq!(p.nanos(7, now.tsc).unwrap() - after, 5);
            assert_eq!(p.nanos(2, now.tsc), None, "CPU clocks are the sentry's");
            prev_read = after;
            last = now;
        }
    }

    /// The lock-free reading of CLOCK_MONOTONIC is what the parameters give at a TSC read
    /// between two of the test's, and is the host's clock while held or without parameters.
    /// Real samples of this host's TSC, so the global parameters stay near the host's clock
    /// for any other test reading them meanwhile.
    #[test]
    fn monotonic_ns_reads_the_published_parameters_without_a_lock() {
        if !tsc_usable() {
            return;
        }
        let first = sample().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = sample().unwrap();
        let p = next_params(None, &first, &second, &mut 0).unwrap();
        let _state = STATE.lock().unwrap();
        publish_monotonic(Some(&p));
        let mono = libc::CLOCK_MONOTONIC as usize;
        let mut last = 0;
        for _ in 0..10_000 {
            let before = p.nanos(mono, platform::rdtsc()).unwrap();
            let read = monotonic_ns().expect("published parameters");
            let after = p.nanos(mono, platform::rdtsc()).unwrap();
            // Unfenced, the read may move by a few cycles either way.
            assert!(
                read + 1_000 >= before && read <= after + 1_000,
                "{before} {read} {after}"
            );
            assert!(read >= last, "went back: {last} -> {read}");
            last = read;
        }
        let host = host_nanos(libc::CLOCK_MONOTONIC).unwrap();
        assert!(last.abs_diff(host) < 1_000_000, "{last} vs host {host}");
        hold_monotonic();
        assert_eq!(monotonic_ns(), None, "read while held");
        publish_monotonic(None);
        assert_eq!(monotonic_ns(), None, "read without parameters");
        publish_monotonic(Some(&p));
        assert!(monotonic_ns().is_some());
    }

    #[test]
    fn a_tsc_that_does_not_move_is_refused() {
        let mut boot = 0;
        assert!(next_params(None, &s(5, 10), &s(5, 20), &mut boot).is_none());
        assert!(next_params(None, &s(5, 10), &s(4, 20), &mut boot).is_none());
    }
}
