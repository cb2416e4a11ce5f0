//! The runsc-rs sentry: a Linux kernel in user space.
//!
//! Applications run on a [`platform`] (ptrace today) that stops them at every system call
//! and fault; the sentry implements the Linux answer. See `ARCHITECTURE.md` for the map:
//! [`abi`] (UAPI types), [`memory`] (the memory file), [`mm`] (address spaces), [`elf`]
//! (ELF), [`vfs`] (files), [`kernel`] (tasks), [`syscalls`] (the table), [`tty`] (terminals),
//! [`boot`].
//!
//! Layers, each importing only those below it (`tests/tests/layering.rs` enforces the order):
//! `abi`; `auth`, `waiter`, `memory`; `mm`; `vfs`; `elf`, `fs`, `net`, `tty`; `kernel`;
//! `procfs`, `cgroupfs`; `syscalls`; `boot`. Code below the kernel sees the calling task only as a
//! [`vfs::Context`].

pub mod abi;
pub mod auth;
pub mod boot;
pub mod cgroupfs;
pub mod elf;
pub mod fs;
pub mod kernel;
pub mod memory;
pub mod mm;
pub mod net;
pub mod procfs;
pub mod syscalls;
pub mod tty;
pub mod vdso;
pub mod vfs;
pub mod waiter;
