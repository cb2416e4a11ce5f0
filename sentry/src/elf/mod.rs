//! ELF loading and the initial stack: static, static-PIE and dynamic (PT_INTERP) executables.
//!
//! Each `PT_LOAD` segment becomes a private file mapping of the executable (or of its
//! interpreter) at the page-aligned file offset, with the segment's protections, as Linux's
//! binfmt_elf maps it: text pages come from the file's pages (a tmpfs file's own, or the page
//! cache's copy of a host file), so every process running one binary shares them until it
//! writes. When a segment's memory is larger than its file part ("bss"), the rest of the last
//! file page is zeroed in the process's private copy and the pages after it are anonymous
//! zero pages, readable and writable whatever the segment's flags (as Linux's brk-style bss
//! mapping makes them); a segment with no file part at all is only such pages.
//!
//! A mappable executable is not read whole: the headers (and a `#!` line) are read through
//! the same file pages the mappings use, so an exec of a cached binary reads nothing from
//! the host.
//!
//! Copying the segment into anonymous memory remains the fallback where a file mapping is
//! impossible: a file whose filesystem offers no pages to map (it is then read whole), or a
//! segment whose virtual address and file offset disagree modulo the page size.

use goblin::container::{Container, Ctx};
use goblin::elf::program_header::ProgramHeader;
use goblin::elf::{header, program_header, Elf};
use platform::Perms;

use std::borrow::Cow;
use std::sync::Arc;

use crate::abi::{page_down, page_up, Errno, PAGE_SIZE};
use crate::auth::landlock::fs as landlock_fs;
use crate::memory::MemoryFile;
use crate::mm::filemap::{FileMapping, Mappable};
use crate::mm::{MemoryManager, MmapRequest, Placement, VmaKind, PIE_BASE, STACK_TOP};
use crate::vfs::inode::may_access;
use crate::vfs::{inotify, Caller, Dentry, FileType, FsContext};

/// Size of an ELF64 program header (and AT_PHENT).
const PHDR_SIZE: u64 = 56;

/// Base address for the dynamic linker of a dynamic executable.
const INTERP_BASE: u64 = 0x7f00_0000_0000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an ELF executable this kernel runs: {0}")]
    BadElf(String),
    #[error("loading the program interpreter {path}: {errno}")]
    Interp { path: String, errno: Errno },
    #[error("setting up memory: {0}")]
    Memory(Errno),
    /// A loadable segment that cannot be mapped. Linux finds these only while mapping, past
    /// exec's point of no return, so the exec goes ahead and the process dies of SIGSEGV.
    #[error("mapping a segment: {0}")]
    Segment(String),
}

impl Error {
    /// The errno `execve` reports for this failure.
    pub fn errno(&self) -> Errno {
        match self {
            Error::BadElf(_) => Errno::ENOEXEC,
            Error::Interp { errno, .. } => *errno,
            Error::Memory(e) => *e,
            Error::Segment(_) => Errno::EINVAL,
        }
    }
}

/// What the new program's initial state needs.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub entry: u64,
    pub sp: u64,
    /// Where the argument and environment strings are (`/proc/[pid]/cmdline`, `environ`).
    pub strings: ArgArea,
    /// The auxiliary vector given to the program (`/proc/[pid]/auxv`).
    pub auxv: Auxv,
}

/// An auxiliary vector: (key, value) pairs, AT_NULL included.
pub type Auxv = Vec<(u64, u64)>;

/// The argv and envp strings on the initial stack, as Linux's `mm->arg_start..env_end`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArgArea {
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// Identity values the auxiliary vector reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuxIds {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// AT_SECURE: a set-ID exec (the dynamic loader then ignores LD_PRELOAD and the like).
    pub secure: bool,
}

/// Everything `execve` hands the loader.
pub struct ExecArgs<'a> {
    /// The image's bytes: the whole file, or (with `image_file`) at least its first ones;
    /// whatever else the loader needs is read through `image_file`.
    pub image: &'a [u8],
    pub argv: &'a [Vec<u8>],
    pub envp: &'a [Vec<u8>],
    /// The path as given to execve (AT_EXECFN).
    pub execfn: &'a [u8],
    /// Name shown in /proc/[pid]/maps for the image.
    pub image_name: &'a str,
    /// The image's file, to map its segments from (None: copy them).
    pub image_file: Option<ImageFile>,
    pub ids: AuxIds,
    pub random: [u8; 16],
    /// Bytes reserved for the stack ([`stack_size`] of RLIMIT_STACK).
    pub stack_size: u64,
    /// AT_MINSIGSTKSZ: the largest signal frame the kernel builds, for the host's XSAVE size.
    pub min_sigstack: u64,
    /// The vDSO to map (its address is AT_SYSINFO_EHDR); None: the program gets none.
    pub vdso: Option<&'a crate::vdso::Vdso>,
}

/// The stack reservation for an RLIMIT_STACK soft limit: the limit in whole pages, at least
/// 128 KiB (room for the arguments) and at most 128 MiB (the gap the memory layout leaves
/// above `mmap`'s area, also what an unlimited stack gets).
pub fn stack_size(limit: u64) -> u64 {
    limit.clamp(128 << 10, 128 << 20) & !(PAGE_SIZE - 1)
}

/// An executable file whose pages the loader can map.
#[derive(Clone)]
pub struct ImageFile {
    pub file: Arc<dyn Mappable>,
    /// Device and inode as `stat` shows them, for `/proc/[pid]/maps`.
    pub dev: u64,
    pub ino: u64,
}

impl std::fmt::Debug for ImageFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFile")
            .field("dev", &self.dev)
            .field("ino", &self.ino)
            .finish_non_exhaustive()
    }
}

/// Opens the executable `d` read-only to map its segments, as `mmap(2)` of a file does.
/// None when it cannot be mapped (its filesystem offers no pages, or the open fails): the
/// loader then copies the segments.
pub fn image_file(d: &Dentry, cx: &Caller, mf: &Arc<MemoryFile>) -> Option<ImageFile> {
    let st = d.inode.stat().ok()?;
    let ops = match d.inode.open(cx, libc::O_RDONLY as u32) {
        Ok(ops) => ops,
        Err(e) => {
            log::debug!("elf: opening {} to map it: {e}", d.path.escape_ascii());
            return None;
        }
    };
    let file = ops.mappable(mf)?;
    Some(ImageFile {
        file,
        dev: st.dev,
        ino: st.ino,
    })
}

/// How much of a mappable executable is read up front: the ELF header, program headers and
/// interpreter path of every usual binary, and any `#!` line.
const HEAD_BYTES: u64 = PAGE_SIZE;

/// Reads `len` bytes at `off` of `f` through its memory-file pages.
///
/// # Errors
/// EIO when the range is not all in the file (it shrank), the file's own page errors.
fn read_mapped(mf: &MemoryFile, f: &dyn Mappable, off: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut out = vec![0u8; len];
    if len == 0 {
        return Ok(out);
    }
    let end = off.checked_add(len as u64).ok_or(Errno::EIO)?;
    let first = off / PAGE_SIZE;
    let runs = f.pages(first, end.div_ceil(PAGE_SIZE) - first)?;
    let mut copied = 0u64;
    for &(idx, r) in &runs {
        let run_start = idx * PAGE_SIZE;
        let (s, e) = (run_start.max(off), (run_start + r.len).min(end));
        if s < e {
            mf.read(
                r.offset + (s - run_start),
                &mut out[(s - off) as usize..(e - off) as usize],
            );
            copied += e - s;
        }
    }
    for (_, r) in runs {
        mf.dec_ref(r);
    }
    if copied != len as u64 {
        return Err(Errno::EIO);
    }
    Ok(out)
}

/// An executable opened for loading.
struct Opened {
    dentry: Arc<Dentry>,
    /// The whole file, or its first [`HEAD_BYTES`] when `file` can be mapped.
    image: Vec<u8>,
    file: Option<ImageFile>,
}

/// Resolves `path` (from the cwd, following symlinks) for execution: see [`open_resolved`].
///
/// # Errors
/// The walk's errors, and those of [`open_resolved`].
fn open_executable(
    fs: &FsContext,
    cx: &Caller,
    mf: &Arc<MemoryFile>,
    path: &[u8],
) -> Result<Opened, Errno> {
    open_resolved(fs.resolve(cx, path)?, cx, mf)
}

/// Opens `d` for execution: a regular file the caller may execute. A mappable file has only
/// its first bytes read; others are read whole.
///
/// # Errors
/// ELOOP for a symlink (an execveat(2) that did not follow it: Linux's may_open); EACCES for
/// other non-regular or non-executable files; read errors.
fn open_resolved(d: Arc<Dentry>, cx: &Caller, mf: &Arc<MemoryFile>) -> Result<Opened, Errno> {
    let st = d.inode.stat()?;
    let kind = FileType::from_mode(st.mode);
    if kind == FileType::Symlink {
        return Err(Errno::ELOOP);
    }
    if kind != FileType::Regular || !may_access(&st, &cx.creds, 1, false) || d.mount.noexec() {
        return Err(Errno::EACCES);
    }
    // Linux's open_exec opens for reading and execution.
    crate::vfs::landlock::check(&cx.creds, &d, landlock_fs::EXECUTE | landlock_fs::READ_FILE)?;
    let file = image_file(&d, cx, mf);
    let image = match &file {
        Some(f) => read_mapped(mf, &*f.file, 0, f.file.size().min(HEAD_BYTES) as usize)?,
        None => d.inode.contents()?,
    };
    // inotify sees what Linux's open_exec and its read of the file's head do.
    inotify::file_event(&d, inotify::IN_OPEN);
    if !image.is_empty() {
        inotify::file_event(&d, inotify::IN_ACCESS);
    }
    Ok(Opened {
        dentry: d,
        image,
        file,
    })
}

/// A program interpreter (`PT_INTERP`) as read for loading.
#[derive(Debug)]
pub struct Interp {
    /// See [`ExecArgs::image`].
    pub image: Vec<u8>,
    /// Its resolved path, shown in `/proc/[pid]/maps`.
    pub name: String,
    pub file: Option<ImageFile>,
}

/// Reads the interpreter at `path` (resolved from the cwd, as Linux's `open_exec`) and opens
/// it for mapping into memory of `mf`.
///
/// # Errors
/// The walk's errors; EACCES for a file that is not a regular executable (an empty path
/// names the cwd, as a kernel-made name may be empty).
pub fn read_interp(
    fs: &FsContext,
    cx: &Caller,
    mf: &Arc<MemoryFile>,
    path: &str,
) -> Result<Interp, Errno> {
    let o = if path.is_empty() {
        open_resolved(fs.cwd(), cx, mf)?
    } else {
        open_executable(fs, cx, mf, path.as_bytes())?
    };
    Ok(Interp {
        image: o.image,
        name: String::from_utf8_lossy(&o.dentry.path).into_owned(),
        file: o.file,
    })
}

struct Image {
    entry: u64,
    bias: u64,
    phdr: u64,
    phnum: u64,
    end: u64,
    interp: Option<String>,
}

fn perms(flags: u32) -> Perms {
    Perms {
        read: flags & program_header::PF_R != 0,
        write: flags & program_header::PF_W != 0,
        exec: flags & program_header::PF_X != 0,
    }
}

/// Maps anonymous zero pages at `[start, end)` for the bss of segment `p`: as Linux's
/// `vm_brk_flags` makes them, readable and writable whatever the segment's flags (executable
/// when it is), and named by no file.
fn map_bss(mm: &MemoryManager, p: &ProgramHeader, start: u64, end: u64) -> Result<(), Error> {
    if end <= start {
        return Ok(());
    }
    mm.mmap(MmapRequest {
        placement: Placement::Fixed(start),
        len: end - start,
        perms: Perms {
            read: true,
            write: true,
            exec: p.p_flags & program_header::PF_X != 0,
        },
        shared: false,
        kind: VmaKind::Anon,
        file: None,
    })
    .map(drop)
    .map_err(Error::Memory)
}

/// Maps segment `p` (at `[start, seg_end)`, page aligned) from `f`: a private file mapping
/// of its file pages, the rest of the last file page zeroed when the segment has bss, and
/// anonymous zero pages for the bss pages after it.
fn map_segment(
    mm: &MemoryManager,
    p: &ProgramHeader,
    start: u64,
    seg_end: u64,
    bias: u64,
    name: &str,
    f: &ImageFile,
) -> Result<(), Error> {
    let bad = || Error::BadElf("segment out of range".into());
    let file_end = p
        .p_vaddr
        .checked_add(bias)
        .and_then(|a| a.checked_add(p.p_filesz))
        .ok_or_else(bad)?;
    let map_end = page_up(file_end).ok_or_else(bad)?.min(seg_end);
    mm.mmap(MmapRequest {
        placement: Placement::Fixed(start),
        len: map_end - start,
        perms: perms(p.p_flags),
        shared: false,
        kind: VmaKind::Named(name.to_string()),
        file: Some(FileMapping {
            file: f.file.clone(),
            offset: page_down(p.p_offset),
            may_write: false,
            may_exec: true,
            dev: f.dev,
            ino: f.ino,
            writer: None,
        }),
    })
    .map_err(Error::Memory)?;
    map_bss(mm, p, map_end, seg_end)?;
    let tail = file_end % PAGE_SIZE;
    if p.p_memsz > p.p_filesz && tail != 0 {
        // The file page holding the end of the data continues with whatever the file has
        // there (often the start of the next section): the bss must read as zero. The write
        // breaks copy-on-write, so the file's page is untouched.
        let zeros = [0u8; PAGE_SIZE as usize];
        mm.copy_out_force(file_end, &zeros[..(PAGE_SIZE - tail) as usize])
            .map_err(Error::Memory)?;
    }
    Ok(())
}

/// Copies segment `p` into fresh anonymous memory at `[start, seg_end)`: its page-aligned
/// file contents, so a page shared by two segments looks as a file mapping makes it.
fn copy_segment<'a>(
    mm: &MemoryManager,
    p: &ProgramHeader,
    start: u64,
    seg_end: u64,
    bytes: &dyn Fn(u64, u64) -> Result<Cow<'a, [u8]>, Error>,
    name: &str,
) -> Result<(), Error> {
    mm.mmap(MmapRequest {
        placement: Placement::Fixed(start),
        len: seg_end - start,
        perms: perms(p.p_flags),
        shared: false,
        kind: VmaKind::Named(name.to_string()),
        file: None,
    })
    .map_err(Error::Memory)?;
    let file_start = page_down(p.p_offset);
    let file_end = p.p_offset + p.p_filesz;
    if file_end > file_start {
        let data = bytes(file_start, file_end - file_start)?;
        mm.copy_out_force(start, &data).map_err(Error::Memory)?;
    }
    Ok(())
}

fn map_image(
    mm: &MemoryManager,
    data: &[u8],
    base_for_dyn: u64,
    name: &str,
    file: Option<&ImageFile>,
) -> Result<Image, Error> {
    let bad_elf = |e: goblin::error::Error| Error::BadElf(e.to_string());
    let hdr = Elf::parse_header(data).map_err(bad_elf)?;
    if hdr.e_ident[header::EI_CLASS] != header::ELFCLASS64
        || hdr.e_ident[header::EI_DATA] != header::ELFDATA2LSB
        || hdr.e_machine != header::EM_X86_64
        || hdr.e_phentsize as u64 != PHDR_SIZE
    {
        return Err(Error::BadElf("not an x86-64 ELF64 image".into()));
    }
    // The file's size bounds every offset: the whole image, or the mapped file's size.
    let size = file.map_or(data.len() as u64, |f| f.file.size());
    let mf = mm.memory_file();
    let bytes = |off: u64, len: u64| -> Result<Cow<'_, [u8]>, Error> {
        let end = off
            .checked_add(len)
            .filter(|&e| e <= size)
            .ok_or_else(|| Error::BadElf("header or segment past the end of the file".into()))?;
        if end <= data.len() as u64 {
            return Ok(Cow::Borrowed(&data[off as usize..end as usize]));
        }
        let f = file.ok_or_else(|| Error::BadElf("truncated image".into()))?;
        read_mapped(mf, &*f.file, off, len as usize)
            .map(Cow::Owned)
            .map_err(Error::Memory)
    };
    let phnum = hdr.e_phnum as u64;
    let ph_bytes = bytes(hdr.e_phoff, phnum * PHDR_SIZE)?;
    let ctx = Ctx::new(Container::Big, goblin::container::Endian::Little);
    let program_headers =
        ProgramHeader::parse(&ph_bytes, 0, phnum as usize, ctx).map_err(bad_elf)?;
    let interp = match program_headers
        .iter()
        .find(|p| p.p_type == program_header::PT_INTERP)
    {
        // Linux refuses interpreter paths longer than PATH_MAX.
        Some(p) if p.p_filesz < 2 || p.p_filesz > 4096 => {
            return Err(Error::BadElf("bad PT_INTERP".into()))
        }
        Some(p) => {
            let raw = bytes(p.p_offset, p.p_filesz)?;
            // Linux wants the segment NUL-terminated; the path ends at the first NUL.
            if raw.last() != Some(&0) {
                return Err(Error::BadElf("PT_INTERP is not NUL-terminated".into()));
            }
            let path = raw.split(|&b| b == 0).next().unwrap_or_default();
            Some(
                std::str::from_utf8(path)
                    .map_err(|_| Error::BadElf("PT_INTERP is not UTF-8".into()))?
                    .to_string(),
            )
        }
        None => None,
    };
    let bias = match hdr.e_type {
        header::ET_EXEC => 0,
        header::ET_DYN => base_for_dyn,
        t => return Err(Error::BadElf(format!("ELF type {t} is not executable"))),
    };
    let loads: Vec<_> = program_headers
        .iter()
        .filter(|p| p.p_type == program_header::PT_LOAD)
        .collect();
    if loads.is_empty() {
        return Err(Error::BadElf("no PT_LOAD segments".into()));
    }
    let min_vaddr = loads
        .iter()
        .map(|p| page_down(p.p_vaddr))
        .min()
        .unwrap_or(0);
    let bias = bias.wrapping_sub(if bias != 0 { min_vaddr } else { 0 });
    let mut end = 0u64;
    let mut phdr = 0u64;
    for p in &loads {
        let bad = || Error::Segment("segment out of range".into());
        if p.p_filesz > p.p_memsz || p.p_offset.checked_add(p.p_filesz).is_none() {
            return Err(bad());
        }
        let start = page_down(p.p_vaddr.wrapping_add(bias));
        let seg_end = p
            .p_vaddr
            .checked_add(p.p_memsz)
            .and_then(|e| e.checked_add(bias))
            .and_then(page_up)
            .ok_or_else(bad)?;
        if seg_end > platform::MAX_USER_ADDRESS || start < crate::mm::MMAP_MIN_ADDR {
            return Err(bad());
        }
        match file.filter(|_| p.p_filesz > 0) {
            // Nothing of the file in the segment: Linux maps only the bss.
            _ if p.p_filesz == 0 => map_bss(mm, p, start, seg_end),
            // Linux maps the file: a segment whose address and file offset disagree within
            // the page cannot be, and pages past the end of the file fault when touched.
            Some(_) if p.p_vaddr % PAGE_SIZE != p.p_offset % PAGE_SIZE => Err(Error::Segment(
                "file offset and address disagree within the page".into(),
            )),
            Some(f) => map_segment(mm, p, start, seg_end, bias, name, f),
            // No file to map (filesz 0 has nothing to map): copy what the image holds.
            None if p.p_offset + p.p_filesz > size => Err(bad()),
            None => copy_segment(mm, p, start, seg_end, &bytes, name),
        }
        .map_err(|e| match e {
            Error::Segment(_) => e,
            e => Error::Segment(e.to_string()),
        })?;
        if p.p_offset <= hdr.e_phoff && hdr.e_phoff < p.p_offset + p.p_filesz {
            phdr = p.p_vaddr + (hdr.e_phoff - p.p_offset) + bias;
        }
        end = end.max(seg_end);
    }
    if let Some(ph) = program_headers
        .iter()
        .find(|p| p.p_type == program_header::PT_PHDR)
    {
        phdr = ph.p_vaddr.wrapping_add(bias);
    }
    Ok(Image {
        entry: hdr.e_entry.wrapping_add(bias),
        bias,
        phdr,
        phnum,
        end,
        interp,
    })
}

/// Loads `args.image` into the (empty) `mm`, with its interpreter if it has one (read with
/// `read_interp`, usually [`read_interp`]), builds the initial stack and returns where to start.
///
/// # Errors
/// ENOEXEC-class errors for bad images, the interpreter's open errors, ENOMEM.
pub fn load(
    mm: &MemoryManager,
    args: &ExecArgs<'_>,
    read_interp: &dyn Fn(&str) -> Result<Interp, Errno>,
) -> Result<Loaded, Error> {
    let exe = map_image(
        mm,
        args.image,
        PIE_BASE,
        args.image_name,
        args.image_file.as_ref(),
    )?;
    mm.set_brk_start(exe.end);
    let (entry, interp_base) = match &exe.interp {
        Some(path) => {
            let interp_err = |errno| Error::Interp {
                path: path.clone(),
                errno,
            };
            let i = read_interp(path).map_err(interp_err)?;
            // Linux checks the interpreter's magic and machine before the point of no return.
            let machine = i
                .image
                .get(18..20)
                .map(|m| u16::from_le_bytes([m[0], m[1]]));
            if !i.image.starts_with(header::ELFMAG) || machine != Some(header::EM_X86_64) {
                return Err(interp_err(Errno::ELIBBAD));
            }
            let interp = map_image(mm, &i.image, INTERP_BASE, &i.name, i.file.as_ref())?;
            if interp.interp.is_some() {
                return Err(Error::BadElf("interpreter has an interpreter".into()));
            }
            (interp.entry, interp.bias)
        }
        None => (exe.entry, 0),
    };
    let sysinfo = args
        .vdso
        .map(|v| v.map(mm))
        .transpose()
        .map_err(Error::Memory)?;
    let (sp, strings, auxv) = build_stack(mm, args, &exe, interp_base, sysinfo)?;
    Ok(Loaded {
        entry,
        sp,
        strings,
        auxv,
    })
}

/// Auxiliary-vector keys (include/uapi/linux/auxvec.h).
mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
    pub const SYSINFO_EHDR: u64 = 33;
    pub const MINSIGSTKSZ: u64 = 51;
}

fn build_stack(
    mm: &MemoryManager,
    args: &ExecArgs<'_>,
    exe: &Image,
    interp_base: u64,
    sysinfo: Option<u64>,
) -> Result<(u64, ArgArea, Auxv), Error> {
    let bottom = STACK_TOP - args.stack_size;
    mm.mmap(MmapRequest {
        placement: Placement::Fixed(bottom),
        len: args.stack_size,
        perms: Perms::RW,
        shared: false,
        kind: VmaKind::Stack,
        file: None,
    })
    .map_err(Error::Memory)?;
    let mut sp = STACK_TOP;
    let mut push = |bytes: &[u8], align: u64| -> Result<u64, Error> {
        sp = (sp - bytes.len() as u64) & !(align - 1);
        if sp < bottom + PAGE_SIZE {
            return Err(Error::Memory(Errno::E2BIG));
        }
        mm.copy_out(sp, bytes).map_err(Error::Memory)?;
        Ok(sp)
    };
    let cstr = |s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0);
        v
    };
    let execfn = push(&cstr(args.execfn), 1)?;
    let mut envp = Vec::new();
    for e in args.envp.iter().rev() {
        envp.push(push(&cstr(e), 1)?);
    }
    envp.reverse();
    let mut argv = Vec::new();
    for a in args.argv.iter().rev() {
        argv.push(push(&cstr(a), 1)?);
    }
    argv.reverse();
    // Pushed downwards with byte alignment: the argv strings, then the envp strings, lie
    // back to back below AT_EXECFN's string.
    let env_start = envp.first().copied().unwrap_or(execfn);
    let strings = ArgArea {
        arg_start: argv.first().copied().unwrap_or(env_start),
        arg_end: env_start,
        env_start,
        env_end: execfn,
    };
    let platform = push(b"x86_64\0", 1)?;
    let random = push(&args.random, 16)?;
    // Leaf 1 EDX is what Linux reports as AT_HWCAP on x86.
    let hwcap = cpuid_edx_leaf1();
    // Linux puts AT_SYSINFO_EHDR first (ARCH_DLINFO), when there is a vDSO.
    let vdso = sysinfo.map(|a| (at::SYSINFO_EHDR, a));
    let auxv: Vec<(u64, u64)> = vdso
        .into_iter()
        .chain([
            (at::PHDR, exe.phdr),
            (at::PHENT, PHDR_SIZE),
            (at::PHNUM, exe.phnum),
            (at::PAGESZ, PAGE_SIZE),
            (at::BASE, interp_base),
            (at::FLAGS, 0),
            (at::ENTRY, exe.entry),
            (at::UID, args.ids.uid as u64),
            (at::EUID, args.ids.euid as u64),
            (at::GID, args.ids.gid as u64),
            (at::EGID, args.ids.egid as u64),
            (at::SECURE, args.ids.secure.into()),
            (at::RANDOM, random),
            (at::HWCAP, hwcap),
            (at::HWCAP2, 0),
            (at::CLKTCK, 100),
            (at::PLATFORM, platform),
            (at::EXECFN, execfn),
            (at::MINSIGSTKSZ, args.min_sigstack),
            (at::NULL, 0),
        ])
        .collect();
    // argc, argv..., NULL, envp..., NULL, auxv pairs: 16-byte aligned at argc.
    let words = 1 + argv.len() + 1 + envp.len() + 1 + auxv.len() * 2;
    let mut table = Vec::with_capacity(words * 8);
    table.extend_from_slice(&(argv.len() as u64).to_le_bytes());
    for p in argv.iter().chain([&0u64]) {
        table.extend_from_slice(&p.to_le_bytes());
    }
    for p in envp.iter().chain([&0u64]) {
        table.extend_from_slice(&p.to_le_bytes());
    }
    for (k, v) in &auxv {
        table.extend_from_slice(&k.to_le_bytes());
        table.extend_from_slice(&v.to_le_bytes());
    }
    Ok((push(&table, 16)?, strings, auxv))
}

fn cpuid_edx_leaf1() -> u64 {
    platform::cpuid(1, 0).3 as u64
}

/// How many `#!` scripts may lead to the program: Linux's exec_binprm gives up (ELOOP) when
/// a sixth rewrite would be needed.
const MAX_SHEBANG_DEPTH: usize = 5;

/// A program ready to load: its file, ELF image and argv after `#!` rewriting.
#[derive(Debug)]
pub struct Program {
    pub exe: Arc<Dentry>,
    /// See [`ExecArgs::image`].
    pub image: Vec<u8>,
    /// The file to map the image from (None: copy it).
    pub file: Option<ImageFile>,
    pub argv: Vec<Vec<u8>>,
}

/// The file an exec runs, already looked up by its caller, and the name it goes by (Linux's
/// `linux_binprm` file and filename).
#[derive(Debug)]
pub struct ExecFile {
    pub dentry: Arc<Dentry>,
    /// The path the caller gave, or `/dev/fd/N` (`/dev/fd/N/PATH`) when execveat(2) named the
    /// file by fd N (and a relative PATH): the new program's AT_EXECFN, and the script path
    /// a `#!` interpreter is given.
    pub name: Vec<u8>,
    /// `name` will not open in the new program (fd N is close-on-exec), so a script cannot
    /// be run: its interpreter could not open it.
    pub name_inaccessible: bool,
    /// The new program's comm comes from the file's own name rather than from `name`
    /// (execveat(2) with an empty path, whose `/dev/fd/N` says nothing: Linux 6.14 and
    /// later).
    pub comm_from_file: bool,
}

/// Opens `exe` for loading into memory of `mf` (see [`ExecArgs::image`]), following `#!`
/// lines as binfmt_script does: the interpreter, its optional argument and the script's
/// name replace `argv[0]`; interpreters are looked up through `fs` (from the cwd).
///
/// # Errors
/// The path that failed and why: ENOENT (also a script whose name is inaccessible), EACCES
/// (not a regular executable file), ELOOP (a symlink; too many nested interpreters).
pub fn read_program(
    fs: &FsContext,
    cx: &Caller,
    mf: &Arc<MemoryFile>,
    exe: ExecFile,
    argv: &[Vec<u8>],
) -> Result<Program, (Vec<u8>, Errno)> {
    let mut argv = argv.to_vec();
    let mut path = exe.name;
    let mut resolved = Some(exe.dentry);
    for _ in 0..=MAX_SHEBANG_DEPTH {
        let opened = match resolved.take() {
            Some(d) => open_resolved(d, cx, mf),
            None => open_executable(fs, cx, mf, &path),
        };
        let o = match opened {
            Ok(v) => v,
            Err(e) => return Err((path, e)),
        };
        let Some((interp, arg)) = parse_shebang(&o.image) else {
            return Ok(Program {
                exe: o.dentry,
                image: o.image,
                file: o.file,
                argv,
            });
        };
        // A script is only read: its interpreter runs, and the script file is closed.
        inotify::file_event(&o.dentry, inotify::IN_CLOSE_NOWRITE);
        if exe.name_inaccessible {
            return Err((path, Errno::ENOENT));
        }
        let mut new_argv = vec![interp.clone()];
        new_argv.extend(arg);
        new_argv.push(path.clone());
        new_argv.extend(argv.into_iter().skip(1));
        argv = new_argv;
        path = interp;
    }
    Err((path, Errno::ELOOP))
}

/// Reads the `#!` line of a script: interpreter and optional argument.
pub fn parse_shebang(image: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let rest = image.strip_prefix(b"#!")?;
    let line_end = rest
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(rest.len().min(255));
    let line = &rest[..line_end.min(255)];
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    let split = line.iter().position(|b| b.is_ascii_whitespace());
    match split {
        Some(i) => {
            let arg = line[i..].trim_ascii();
            Some((line[..i].to_vec(), (!arg.is_empty()).then(|| arg.to_vec())))
        }
        None => Some((line.to_vec(), None)),
    }
}
