//! ELF loading and the initial stack: static, static-PIE and dynamic (PT_INTERP) executables.
//!
//! Each `PT_LOAD` segment becomes a private file mapping of the executable (or of its
//! interpreter) at the page-aligned file offset, with the segment's protections, as Linux's
//! binfmt_elf maps it: text pages come from the file's pages (a tmpfs file's own, or the page
//! cache's copy of a host file), so every process running one binary shares them until it
//! writes. When a segment's memory is larger than its file part ("bss"), the rest of the last
//! file page is zeroed in the process's private copy and the pages after it are anonymous
//! zero pages.
//!
//! Copying the segment into anonymous memory remains the fallback where a file mapping is
//! impossible: a file whose filesystem offers no pages to map, or a segment whose virtual
//! address and file offset disagree modulo the page size.

use goblin::elf::{header, program_header, Elf};
use platform::Perms;

use std::sync::Arc;

use crate::abi::{page_down, page_up, Errno, PAGE_SIZE};
use crate::memory::MemoryFile;
use crate::mm::filemap::{FileMapping, Mappable};
use crate::mm::{MemoryManager, MmapRequest, Placement, VmaKind, PIE_BASE, STACK_SIZE, STACK_TOP};
use crate::vfs::{Caller, Dentry, FsContext};

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
}

impl Error {
    /// The errno `execve` reports for this failure.
    pub fn errno(&self) -> Errno {
        match self {
            Error::BadElf(_) => Errno::ENOEXEC,
            Error::Interp { errno, .. } => *errno,
            Error::Memory(e) => *e,
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
}

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
}

/// Everything `execve` hands the loader.
pub struct ExecArgs<'a> {
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
pub fn image_file(d: &Dentry, cx: &Caller<'_>, mf: &Arc<MemoryFile>) -> Option<ImageFile> {
    let st = d.inode.stat().ok()?;
    let ops = match d.inode.open(cx, libc::O_RDONLY as u32) {
        Ok(ops) => ops,
        Err(e) => {
            log::debug!("loader: opening {} to map it: {e}", d.path.escape_ascii());
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

/// A program interpreter (`PT_INTERP`) as read for loading.
#[derive(Debug)]
pub struct Interp {
    pub image: Vec<u8>,
    /// Its resolved path, shown in `/proc/[pid]/maps`.
    pub name: String,
    pub file: Option<ImageFile>,
}

/// Reads the interpreter at `path` (resolved from the cwd, as Linux's `open_exec`) and opens
/// it for mapping into memory of `mf`.
///
/// # Errors
/// The walk's errors; EACCES for a file that is not a regular executable.
pub fn read_interp(
    fs: &FsContext,
    cx: &Caller<'_>,
    mf: &Arc<MemoryFile>,
    path: &str,
) -> Result<Interp, Errno> {
    let (d, image) = fs.read_executable(cx, path.as_bytes())?;
    Ok(Interp {
        image,
        name: String::from_utf8_lossy(&d.path).into_owned(),
        file: image_file(&d, cx, mf),
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

/// Maps segment `p` (at `[start, seg_end)`, page aligned) from `f`: a private file mapping
/// of its file pages, the rest of the last file page zeroed when the segment has bss, and
/// anonymous zero pages for the bss pages after it.
fn map_segment(
    mm: &MemoryManager,
    p: &program_header::ProgramHeader,
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
            dev: f.dev,
            ino: f.ino,
        }),
    })
    .map_err(Error::Memory)?;
    if seg_end > map_end {
        mm.mmap(MmapRequest {
            placement: Placement::Fixed(map_end),
            len: seg_end - map_end,
            perms: perms(p.p_flags),
            shared: false,
            kind: VmaKind::Anon,
            file: None,
        })
        .map_err(Error::Memory)?;
    }
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
fn copy_segment(
    mm: &MemoryManager,
    p: &program_header::ProgramHeader,
    start: u64,
    seg_end: u64,
    data: &[u8],
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
        mm.copy_out_force(start, &data[file_start as usize..file_end as usize])
            .map_err(Error::Memory)?;
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
    let elf = Elf::parse(data).map_err(|e| Error::BadElf(e.to_string()))?;
    if !elf.is_64 || elf.header.e_machine != header::EM_X86_64 {
        return Err(Error::BadElf("not an x86-64 ELF64 image".into()));
    }
    let bias = match elf.header.e_type {
        header::ET_EXEC => 0,
        header::ET_DYN => base_for_dyn,
        t => return Err(Error::BadElf(format!("ELF type {t} is not executable"))),
    };
    let loads: Vec<_> = elf
        .program_headers
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
        let bad = || Error::BadElf("segment out of range".into());
        if p.p_filesz > p.p_memsz
            || p.p_offset
                .checked_add(p.p_filesz)
                .is_none_or(|e| e > data.len() as u64)
        {
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
        match file.filter(|_| p.p_filesz > 0 && p.p_vaddr % PAGE_SIZE == p.p_offset % PAGE_SIZE) {
            Some(f) => map_segment(mm, p, start, seg_end, bias, name, f)?,
            // No file to map, or a segment Linux would refuse to map (its address and file
            // offset disagree within the page; filesz 0 has nothing to map): copy it.
            None => copy_segment(mm, p, start, seg_end, data, name)?,
        }
        if p.p_offset <= elf.header.e_phoff && elf.header.e_phoff < p.p_offset + p.p_filesz {
            phdr = p.p_vaddr + (elf.header.e_phoff - p.p_offset) + bias;
        }
        end = end.max(seg_end);
    }
    if let Some(ph) = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == program_header::PT_PHDR)
    {
        phdr = ph.p_vaddr.wrapping_add(bias);
    }
    Ok(Image {
        entry: elf.header.e_entry.wrapping_add(bias),
        bias,
        phdr,
        phnum: elf.header.e_phnum as u64,
        end,
        interp: elf.interpreter.map(str::to_string),
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
            let i = read_interp(path).map_err(|errno| Error::Interp {
                path: path.clone(),
                errno,
            })?;
            let interp = map_image(mm, &i.image, INTERP_BASE, &i.name, i.file.as_ref())?;
            if interp.interp.is_some() {
                return Err(Error::BadElf("interpreter has an interpreter".into()));
            }
            (interp.entry, interp.bias)
        }
        None => (exe.entry, 0),
    };
    let (sp, strings) = build_stack(mm, args, &exe, interp_base)?;
    Ok(Loaded { entry, sp, strings })
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
    pub const MINSIGSTKSZ: u64 = 51;
}

fn build_stack(
    mm: &MemoryManager,
    args: &ExecArgs<'_>,
    exe: &Image,
    interp_base: u64,
) -> Result<(u64, ArgArea), Error> {
    let bottom = STACK_TOP - STACK_SIZE;
    mm.mmap(MmapRequest {
        placement: Placement::Fixed(bottom),
        len: STACK_SIZE,
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
    let auxv: Vec<(u64, u64)> = vec![
        (at::PHDR, exe.phdr),
        (at::PHENT, 56),
        (at::PHNUM, exe.phnum),
        (at::PAGESZ, PAGE_SIZE),
        (at::BASE, interp_base),
        (at::FLAGS, 0),
        (at::ENTRY, exe.entry),
        (at::UID, args.ids.uid as u64),
        (at::EUID, args.ids.euid as u64),
        (at::GID, args.ids.gid as u64),
        (at::EGID, args.ids.egid as u64),
        (at::SECURE, 0),
        (at::RANDOM, random),
        (at::HWCAP, hwcap),
        (at::HWCAP2, 0),
        (at::CLKTCK, 100),
        (at::PLATFORM, platform),
        (at::EXECFN, execfn),
        (at::MINSIGSTKSZ, 2048),
        (at::NULL, 0),
    ];
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
    for (k, v) in auxv {
        table.extend_from_slice(&k.to_le_bytes());
        table.extend_from_slice(&v.to_le_bytes());
    }
    Ok((push(&table, 16)?, strings))
}

fn cpuid_edx_leaf1() -> u64 {
    platform::cpuid(1, 0).3 as u64
}

/// Linux's limit on nested `#!` interpreters (BINPRM_MAX_RECURSION).
const MAX_SHEBANG_DEPTH: usize = 4;

/// A program ready to load: its file, ELF image and argv after `#!` rewriting.
#[derive(Debug)]
pub struct Program {
    pub exe: Arc<Dentry>,
    pub image: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
}

/// Reads the program at `path` through the sandbox's filesystem (execve's lookup), following
/// `#!` lines as binfmt_script does: the interpreter, its optional argument and the script
/// path replace `argv[0]`.
///
/// # Errors
/// The path that failed and why: ENOENT, EACCES (not a regular executable file), ELOOP (too
/// many nested interpreters).
pub fn read_program(
    fs: &FsContext,
    cx: &Caller<'_>,
    path: &[u8],
    argv: &[Vec<u8>],
) -> Result<Program, (Vec<u8>, Errno)> {
    let mut argv = argv.to_vec();
    let mut path = path.to_vec();
    for _ in 0..=MAX_SHEBANG_DEPTH {
        let (exe, image) = match fs.read_executable(cx, &path) {
            Ok(v) => v,
            Err(e) => return Err((path, e)),
        };
        let Some((interp, arg)) = parse_shebang(&image) else {
            return Ok(Program { exe, image, argv });
        };
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
