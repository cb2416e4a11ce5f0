//! Linux UAPI types and constants the sentry exposes to applications.
//!
//! Constants come from `libc` where it has them; structures that cross the user-memory
//! boundary are declared here with `zerocopy` derives so they can be copied without `unsafe`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use nix::errno::Errno;

pub mod bpf;

/// Result of a system call handler: the value for `rax`, or an errno.
pub type SysResult = Result<u64, Errno>;

/// `struct timespec`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

impl Timespec {
    pub fn from_nanos(ns: u128) -> Timespec {
        Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as i64,
        }
    }

    /// Nanoseconds, or EINVAL for a negative or out-of-range `tv_nsec` (as Linux checks).
    pub fn to_nanos(self) -> Result<u128, Errno> {
        if self.tv_sec < 0 || !(0..1_000_000_000).contains(&self.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        Ok(self.tv_sec as u128 * 1_000_000_000 + self.tv_nsec as u128)
    }
}

/// `struct timeval`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// `struct iovec`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Iovec {
    pub base: u64,
    pub len: u64,
}

/// The kernel release the sandbox reports (see ARCHITECTURE.md).
pub const RELEASE: &str = "4.19.0";
/// The kernel version string: says which kernel this really is.
pub const VERSION: &str = "#1 SMP runsc-rs";

/// `struct utsname` (65-byte fields).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Utsname {
    pub sysname: [u8; 65],
    pub nodename: [u8; 65],
    pub release: [u8; 65],
    pub version: [u8; 65],
    pub machine: [u8; 65],
    pub domainname: [u8; 65],
}

/// `struct rlimit64`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

/// `struct winsize`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Winsize {
    pub row: u16,
    pub col: u16,
    pub xpixel: u16,
    pub ypixel: u16,
}

/// `struct termios` as the kernel's `TCGETS` returns it (`struct termios2` without speeds).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; 19],
}

impl From<&libc::termios> for Termios {
    /// A host terminal's termios (glibc's `struct termios` has more control characters and
    /// the speeds; the first 19 are the kernel's).
    fn from(raw: &libc::termios) -> Termios {
        let mut cc = [0; 19];
        cc.copy_from_slice(&raw.c_cc[..19]);
        Termios {
            iflag: raw.c_iflag,
            oflag: raw.c_oflag,
            cflag: raw.c_cflag,
            lflag: raw.c_lflag,
            line: raw.c_line,
            cc,
        }
    }
}

/// `struct sysinfo`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Sysinfo {
    pub uptime: i64,
    pub loads: [u64; 3],
    pub totalram: u64,
    pub freeram: u64,
    pub sharedram: u64,
    pub bufferram: u64,
    pub totalswap: u64,
    pub freeswap: u64,
    pub procs: u16,
    pub pad: [u16; 3],
    pub totalhigh: u64,
    pub freehigh: u64,
    pub mem_unit: u32,
    pub pad2: u32,
}

/// Page size the sentry presents.
pub const PAGE_SIZE: u64 = 4096;

/// Rounds `x` down to a page boundary.
pub const fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// Rounds `x` up to a page boundary, or None on overflow.
pub const fn page_up(x: u64) -> Option<u64> {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}
