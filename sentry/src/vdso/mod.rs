//! The vDSO: a small shared object of our own (vdso.c, laid out by vdso.lds, built by
//! build.rs with the C compiler and embedded here) that every new address space maps, so
//! that `clock_gettime`, `gettimeofday` and `time` read the time without trapping into the
//! sentry. It exports `__vdso_clock_gettime`, `__vdso_gettimeofday`, `__vdso_time`,
//! `__vdso_getcpu`, `__vdso_clock_getres` and their unprefixed weak aliases, all under the
//! version `LINUX_2.6`, as Linux's x86-64 vDSO does (glibc, musl and Go look them up by it).
//!
//! # Mappings
//! `exec` maps two VMAs ([`Vdso::map`]) and passes the second's address as
//! `AT_SYSINFO_EHDR`:
//! - `[vvar]`: one read-only shared page, the clock parameters the sentry keeps current
//!   ([`clock`]); every address space of the kernel maps the same memory-file page, so one
//!   write reaches them all. It may never be written (`mprotect` adding write access fails
//!   with EACCES, a store faults).
//! - `[vdso]`: the image, read-execute, private (copy-on-write: a debugger's breakpoint or
//!   the platform's syscall patching changes only that process's copy).
//!
//! Both lie just below the `mmap` base at the first free address, which with the sentry's
//! fixed layout is the same address in every process. Both are ordinary file VMAs
//! otherwise: fork copies them, munmap removes them, mremap moves them; a checkpoint saves
//! them by name and a restore maps this kernel's pages at the same addresses
//! ([`Vdso::restored_mapping`]), with the parameters of the restoring sentry.
//!
//! `getcpu` always makes the system call: the CPU the sandbox reports follows the calling
//! task's affinity, which the vDSO cannot see.

pub mod clock;

use std::sync::{Arc, Mutex};

use platform::Perms;

use crate::abi::{Errno, PAGE_SIZE};
use crate::memory::{FileRange, MemoryFile};
use crate::mm::filemap::{FileMapping, Mappable};
use crate::mm::{MemoryManager, MmapRequest, Placement, VmaKind};

/// The built vDSO image.
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// `/proc/[pid]/maps` name of the parameter page.
pub const VVAR_NAME: &str = "[vvar]";
/// `/proc/[pid]/maps` name of the image.
pub const VDSO_NAME: &str = "[vdso]";

/// Memory-file pages with a fixed content, mapped by every address space that maps them.
pub(crate) struct Pages {
    mf: Arc<MemoryFile>,
    range: FileRange,
    /// Bytes that belong to the file (the rest of the last page is zero).
    size: u64,
}

impl Pages {
    fn new(mf: &Arc<MemoryFile>, bytes: &[u8], size: u64) -> Result<Arc<Pages>, Errno> {
        let range = mf.allocate(size).map_err(|_| Errno::ENOMEM)?;
        mf.write(range.offset, bytes);
        Ok(Arc::new(Pages {
            mf: mf.clone(),
            range,
            size,
        }))
    }
}

impl Mappable for Pages {
    fn size(&self) -> u64 {
        self.size
    }

    fn pages(&self, first: u64, count: u64) -> Result<Vec<(u64, FileRange)>, Errno> {
        let total = self.range.len / PAGE_SIZE;
        let n = count.min(total.saturating_sub(first));
        if n == 0 {
            return Ok(Vec::new());
        }
        let run = FileRange {
            offset: self.range.offset + first * PAGE_SIZE,
            len: n * PAGE_SIZE,
        };
        self.mf.inc_ref(run);
        Ok(vec![(first, run)])
    }

    fn shared_writable(&self) -> bool {
        false
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.mf.dec_ref(self.range);
    }
}

/// A kernel's vDSO: its parameter page and image in the memory file.
pub struct Vdso {
    vvar: Arc<Pages>,
    image: Arc<Pages>,
}

impl std::fmt::Debug for Vdso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vdso")
            .field("vvar", &self.vvar.range)
            .field("image", &self.image.range)
            .finish()
    }
}

/// Where a kernel keeps its vDSO, made on first use (the first exec, or a restore after
/// the checkpoint's memory is back in place).
#[derive(Debug, Default)]
pub struct VdsoSlot(Mutex<Option<Arc<Vdso>>>);

impl VdsoSlot {
    /// The vDSO of the kernel whose memory file is `mf`.
    ///
    /// # Errors
    /// ENOMEM when the memory file has no room for it.
    pub fn get(&self, mf: &Arc<MemoryFile>) -> Result<Arc<Vdso>, Errno> {
        let mut slot = self.0.lock().unwrap();
        if let Some(v) = &*slot {
            return Ok(v.clone());
        }
        let vvar = Pages::new(mf, &[], PAGE_SIZE)?;
        clock::publish_to(&vvar);
        let vdso = Arc::new(Vdso {
            vvar,
            image: Pages::new(mf, IMAGE, IMAGE.len() as u64)?,
        });
        *slot = Some(vdso.clone());
        Ok(vdso)
    }
}

impl Vdso {
    /// Bytes of the image's mapping.
    fn image_len(&self) -> u64 {
        self.image.range.len
    }

    /// Maps `[vvar]` and `[vdso]` into `mm` at the first free address below the mmap base
    /// and returns the image's address (`AT_SYSINFO_EHDR`).
    ///
    /// # Errors
    /// ENOMEM when there is no room.
    pub fn map(&self, mm: &MemoryManager) -> Result<u64, Errno> {
        let vvar =
            mm.mmap(self.request(VVAR_NAME, Placement::Hint(0), PAGE_SIZE + self.image_len()))?;
        let image = vvar + PAGE_SIZE;
        mm.mmap(self.request(VDSO_NAME, Placement::Fixed(image), self.image_len()))?;
        Ok(image)
    }

    fn request(&self, name: &str, placement: Placement, len: u64) -> MmapRequest {
        let (file, perms) = self.mapping(name).expect("a name of ours");
        MmapRequest {
            placement,
            len,
            perms,
            shared: name == VVAR_NAME,
            kind: VmaKind::Named(name.into()),
            file: Some(file),
        }
    }

    /// What a VMA named `name` maps, with the permissions exec gives it: None for names
    /// other than [`VVAR_NAME`] and [`VDSO_NAME`].
    fn mapping(&self, name: &str) -> Option<(FileMapping, Perms)> {
        let (pages, perms): (&Arc<Pages>, Perms) = match name {
            VVAR_NAME => (&self.vvar, Perms::R),
            VDSO_NAME => (
                &self.image,
                Perms {
                    read: true,
                    write: false,
                    exec: true,
                },
            ),
            _ => return None,
        };
        let file: Arc<dyn Mappable> = pages.clone();
        Some((
            FileMapping {
                file,
                offset: 0,
                may_write: false,
                may_exec: name == VDSO_NAME,
                dev: 0,
                ino: 0,
                writer: None,
            },
            perms,
        ))
    }

    /// The file behind a restored VMA named `name` at file offset `offset`: this kernel's
    /// parameter page or image. None when `name` is not one of ours.
    pub fn restored_mapping(&self, name: &str, offset: u64) -> Option<FileMapping> {
        self.mapping(name).map(|(f, _)| FileMapping { offset, ..f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    #[test]
    fn image_exports_the_linux_symbols_under_linux_2_6_without_relocations() {
        let elf = Elf::parse(IMAGE).unwrap();
        assert!(elf.dynrelas.is_empty() && elf.dynrels.is_empty() && elf.pltrelocs.is_empty());
        let verdef = elf.verdef.as_ref().expect("a version definition section");
        let names: Vec<String> = verdef
            .iter()
            .filter_map(|d| {
                let aux = d.iter().next()?;
                elf.dynstrtab.get_at(aux.vda_name).map(str::to_owned)
            })
            .collect();
        assert!(names.iter().any(|n| n == "LINUX_2.6"), "{names:?}");
        let versym = elf.versym.as_ref().expect("symbol versions");
        for want in [
            "__vdso_clock_gettime",
            "__vdso_gettimeofday",
            "__vdso_time",
            "__vdso_getcpu",
            "__vdso_clock_getres",
            "clock_gettime",
            "gettimeofday",
            "time",
            "getcpu",
            "clock_getres",
        ] {
            let (i, sym) = elf
                .dynsyms
                .iter()
                .enumerate()
                .find(|(_, s)| elf.dynstrtab.get_at(s.st_name) == Some(want))
                .unwrap_or_else(|| panic!("{want} missing"));
            assert!(sym.st_value != 0 && sym.is_function(), "{want}");
            // Version index 2 is LINUX_2.6 (1 is the object's own base version).
            assert_eq!(versym.get_at(i).unwrap().vs_val & 0x7fff, 2, "{want}");
        }
        let loads: Vec<_> = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
            .collect();
        assert_eq!(loads.len(), 1);
        assert_eq!(loads[0].p_vaddr, 0);
    }
}
