//! Restore: a kernel rebuilt from a checkpoint image ([`super::checkpoint`] documents the
//! format), the second half of issue 17.
//!
//! [`Kernel::restore`] runs in a fresh sandbox whose container was created from the same
//! bundle (its mounts, PID namespace and stdio are the new sandbox's) and that has run
//! nothing yet. In order:
//! 1. the mounts: the bundle's namespace becomes the oldest saved one, and each other mount
//!    namespace a copy of it in the same family ([`restore_mounts`]: every mount with its
//!    ID, flags, peer group and master; the bundle's filesystems where the image has them,
//!    tmpfs mounted at run time made again, bind mounts looked up below their filesystem's
//!    root, mounts unmounted gone);
//!    the memory file: each saved range is claimed at its old offset and filled from
//!    `memory.bin` (all-zero chunks are skipped: the file reads as zero there and the host
//!    keeps no pages for them); the container must not have allocated memory yet (its
//!    mounts are made empty), else the saved offsets are taken and the restore is refused;
//!    then the files of tmpfs mounts and overlay upper layers are put back into the
//!    container's mounts of the same kind at the same place (modes and owners; new
//!    timestamps), before anything is opened;
//! 2. address spaces: the VMAs (file mappings reopened by path in the container's
//!    filesystem, refused when the file's device or inode changed) and the present pages at
//!    their memory-file offsets, copy-on-write sharing as it was (System V shared memory
//!    segments come back first, over their claimed pages, and the mappings that attached
//!    them attach them again; two address spaces naming one offset share it, with the
//!    same reference counts). Memory no address space names
//!    (the page cache of host files) is released: the new sandbox reads those files again;
//! 3. open file descriptions, once each however many fds share them: pipes with their
//!    buffered bytes (an end nobody holds is closed, so readers see EOF as before), files by
//!    path, reopened in the container's filesystem and refused when their device, inode,
//!    size or mtime changed (files put back in step 1 are new: type and size only), and
//!    the stdio the old sandbox was given, replaced by the new sandbox's by fd number;
//!    eventfds, timerfds (armed with the time that was left), signalfds and pidfds (the
//!    processes are made before the files: a signalfd reports its creator's signals, a
//!    pidfd names its process), FIFOs (reopened by path: every opener of one pipe shares
//!    the pipe the FIFO's inode keys, with its bytes back), POSIX message queues (made
//!    with their names before the files), pty pairs (made again under their numbers in
//!    the container's `/dev/pts`, each the controlling terminal of the session it was), the
//!    container's console (the saved one put onto the new sandbox's, the controlling
//!    terminal of the session it was),
//!    inotify instances (watches re-added on the files
//!    their paths name) and epoll instances, whose interest lists are filled once every
//!    table is rebuilt;
//!    the UTS, IPC, network and user namespaces other than the initial ones come back
//!    before the sockets (which name theirs), each network namespace with the netfilter
//!    tables it had (its stack started for them), and the memfds before the address spaces
//!    (which map them); `/proc` files wait for step 4 (their paths name processes);
//! 4. processes and threads with their IDs (global and in the container's PID namespace, so
//!    `getpid` answers what it did; the PID namespaces below the container's come back
//!    first, with every ID they held, their init and their inode numbers, so that a task
//!    there has its IDs at every level again), their namespaces, parents, process groups, sessions, zombies, signal
//!    actions, pending signals and masks, credentials, root, cwd and umask; then each
//!    process's timers are armed with the time that was left and their periods; System V
//!    semaphore sets and message queues come back under their identifiers;
//! 5. the threads start: each finishes the system call the checkpoint interrupted as it
//!    would have after a signal without handler (restarted; a sleep through
//!    `restart_syscall` with the rest of its time), then returns to the application.
//!
//! A restore that fails leaves nothing running; the memory and tables it made are released
//! with the sandbox.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use platform::{CpuState, FpState, Perms};
use zerocopy::FromBytes;

use super::checkpoint::{
    CpuClockImage, CpuClockOwnerImage, EpollImage, FileImage, ItimerImage, KernelImage, MmImage,
    MountRootImage, ProcessImage, RestartImage, TaskImage, TimersImage, TmpNodeImage, VmaImage,
};
use super::cpu_timers::{CpuClock, CpuClockOwner};
use super::signal::{SigAction, SigInfo};
use super::task::{register_thread, Restart, RestartBlock, Resumed, VforkDone, DISABLED_ALTSTACK};
use super::thread_group::ExecImage;
use super::{ExitStatus, FdTable, Kernel, PidNamespace, Task, TaskHandle, TaskInit, ThreadGroup};
use crate::auth::{CapSet, Caps, Creds};
use crate::memory::FileRange;
use crate::mm::filemap::FileMapping;
use crate::mm::usermem::UserAddr;
use crate::mm::{MemoryManager, RestoredVma, VmaKind};
use crate::vdso::{VDSO_NAME, VVAR_NAME};
use crate::vfs::dir::{DirFile, PathFile};
use crate::vfs::host::HostFile;
use crate::vfs::{Caller, FileKind, FileType, FsContext, NewAttrs, NewNode, OpenFile};

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot restore: {0}")]
    Unsupported(String),
    #[error("cannot restore: {0}")]
    Invalid(String),
    #[error("cannot restore: {what} changed since the checkpoint")]
    Changed { what: String },
    #[error("reading the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("decoding kernel.json: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("cannot restore: {0}")]
    Platform(#[from] platform::Error),
}

/// Where the image's processes go in the new sandbox.
#[derive(Debug)]
pub struct RestoreTarget {
    /// The Loader's container they belong to.
    pub container: Arc<str>,
    /// The container's filesystem (its mounts as created from the bundle).
    pub fs: Arc<FsContext>,
    /// The container's PID namespace.
    pub pidns: Arc<PidNamespace>,
    /// The new sandbox's stdio, by fd number: replaces the files the old one was given.
    pub stdio: [Option<OwnedFd>; 3],
    /// The container's devpts instance (`/dev/pts`), where saved ptys come back.
    pub devpts: Option<Arc<crate::fs::devpts::DevPts>>,
    /// The new sandbox's console (a container with `process.terminal`), onto which the
    /// saved console comes back; its node is in `devpts` already.
    pub console: Option<Arc<crate::tty::HostTty>>,
}

/// What [`Kernel::restore`] started.
#[derive(Debug)]
pub struct Restored {
    /// The container's first process (the one without a parent in the sandbox).
    pub init: Arc<ThreadGroup>,
    /// Its PID in the container's namespace.
    pub init_pid: i32,
    pub tasks: usize,
    pub processes: usize,
}

/// Records `term` as the controlling terminal of session `sid` (0: none), so that the
/// session finds it again (`/dev/tty`, TIOCSCTTY checks).
fn record_terminal(
    kernel: &Kernel,
    sid: i32,
    term: std::sync::Weak<dyn crate::vfs::ControllingTerminal>,
) {
    if sid != 0 {
        kernel.terminals.lock().unwrap().insert(sid, term);
    }
}

fn invalid(what: impl Into<String>) -> RestoreError {
    RestoreError::Invalid(what.into())
}

impl Kernel {
    /// Rebuilds the kernel state of `state` (`kernel.json`) and `memory` (`memory.bin`) in
    /// this kernel, which must not have run anything yet, and starts its threads.
    ///
    /// # Errors
    /// `Unsupported` for an image of another platform or with state this build cannot
    /// rebuild, `Changed` for files that changed since the checkpoint, `Invalid` for an
    /// inconsistent image, I/O and decoding failures.
    pub fn restore(
        self: &Arc<Self>,
        state: &mut dyn Read,
        memory: &mut dyn Read,
        mut target: RestoreTarget,
    ) -> Result<Restored, RestoreError> {
        let mut json = Vec::new();
        state.read_to_end(&mut json)?;
        let image: KernelImage = serde_json::from_slice(&json)?;
        if image.platform != self.platform.name() {
            return Err(RestoreError::Unsupported(format!(
                "the image was taken on the {} platform, this sandbox runs on {}",
                image.platform,
                self.platform.name()
            )));
        }
        if !self.tree().tasks.is_empty() {
            return Err(RestoreError::Unsupported(
                "the sandbox already runs processes".into(),
            ));
        }
        self.uts.names().hostname = image.hostname.clone();
        let namespaces = Arc::new(
            super::ns::RestoredNamespaces::restore(
                &image.namespaces,
                &self.initial_namespaces(),
                &target.pidns,
            )
            .map_err(invalid)?,
        );
        for saved in &image.netfilter {
            let net = namespaces
                .net
                .get(saved.netns)
                .ok_or_else(|| invalid(format!("no network namespace {}", saved.netns)))?;
            net.inet().netfilter.restore(&saved.tables).map_err(|e| {
                invalid(format!(
                    "netfilter tables of namespace {}: {e:?}",
                    saved.netns
                ))
            })?;
        }
        for t in &image.tasks {
            let level = namespaces.pid(&t.namespaces).map_err(invalid)?.level();
            if t.pidns_level != level {
                return Err(RestoreError::Unsupported(format!(
                    "task {} lives in a PID namespace of level {}, it would be of level {level} here (the container's is of level {})",
                    t.tid,
                    t.pidns_level,
                    target.pidns.level()
                )));
            }
        }
        let roots = mount_filesystems(&image, &target.fs.ns, &self.memory)?;
        let claimed = self.restore_memory(&image, memory)?;
        // The files before anything is opened: the paths of open files and mappings may
        // lie in them. After the memory: their pages go wherever the saved ranges are not.
        // Then the mount tree: a bind mount's root is looked up among those files.
        let rebuilt = refill_tmpfs(&image, &roots).and_then(|(refilled, sockets)| {
            let nss = restore_mounts(&image, &target.fs.ns, &namespaces.user, roots)?;
            let moved = moved_sockets(sockets, &target.fs)?;
            Ok((refilled, moved, nss))
        });
        let (refilled, moved, mount_nss) = match rebuilt {
            Ok(r) => r,
            Err(e) => {
                for r in claimed {
                    self.memory.dec_ref(r);
                }
                return Err(e);
            }
        };
        // The address spaces take their own references on the claimed ranges; the claims
        // are dropped whatever happens, so that memory nobody names goes back.
        // System V shared memory segments before the address spaces that attach them, and
        // while their pages are claimed.
        // Memfds before the address spaces that map them.
        let memfds = self.restore_memfds(&image.memfds);
        let mms = memfds
            .as_ref()
            .map_err(|e| invalid(e.clone()))
            .and_then(|memfds| {
                self.ipc
                    .shm
                    .restore(&self.memory, &image.ipc.shm)
                    .map_err(invalid)
                    .and_then(|segments| {
                        image
                            .mms
                            .iter()
                            .map(|m| self.restore_mm(m, &target.fs, &refilled, &segments, memfds))
                            .collect::<Result<Vec<_>, _>>()
                    })
            });
        for r in claimed {
            self.memory.dec_ref(r);
        }
        let mms = mms?;
        let names: Vec<_> = namespaces.net.iter().map(|n| &n.unix_names).collect();
        let unix =
            crate::net::unix::restore_endpoints(&names, &image.unix, &moved).map_err(invalid)?;
        // The processes before their files: a signalfd reports its creator's signals.
        let mut groups: HashMap<i32, Arc<ThreadGroup>> = HashMap::new();
        for p in &image.processes {
            let leader = image.tasks.iter().find(|t| t.tid == p.tgid);
            let pidns = match leader {
                Some(t) => namespaces.pid(&t.namespaces).map_err(invalid)?,
                None => target.pidns.clone(),
            };
            groups.insert(p.tgid, Arc::new(self.thread_group(p, &target, pidns)?));
        }
        let mqueues = self.ipc.mq.restore(&image.ipc.mq).map_err(invalid)?;
        let mut files = Files::new(
            std::mem::take(&mut target.stdio),
            refilled,
            unix.clone(),
            mqueues,
        );
        files.inotify_images = image.inotify.clone();
        let groups_of: std::sync::Weak<Kernel> = Arc::downgrade(self);
        files.ptys = crate::fs::devpts::PtyRestorer::new(
            target.devpts.clone(),
            target.console.clone(),
            groups_of,
        );
        files.memfds = memfds.map_err(invalid)?;
        files.nets = namespaces.net.clone();
        files.namespaces = Some(namespaces.clone());
        let tables = image
            .fd_tables
            .iter()
            .map(|t| files.table(t, self, &target.fs, &groups, &image.memfds))
            .collect::<Result<Vec<_>, _>>()?;
        for f in &image.in_flight {
            files.description(f, self, &target.fs, &groups, &image.memfds)?;
        }
        crate::net::unix::restore_in_flight(&unix, &image.unix, &|d| {
            files.descriptions.get(&d).cloned()
        })
        .map_err(invalid)?;
        files.fill_epolls(&image.epolls)?;
        let deferred = std::mem::take(&mut files.deferred);
        drop(files);
        self.ipc.restore(&image.ipc).map_err(invalid)?;
        let late = Late {
            namespaces: &namespaces,
            mounts: &mount_nss,
            proc_files: deferred,
        };
        self.restore_tasks(&image, &target, &mms, &tables, groups, late)
    }

    /// Claims each saved range of the memory file and fills it from `memory`.
    fn restore_memory(
        &self,
        image: &KernelImage,
        memory: &mut dyn Read,
    ) -> Result<Vec<FileRange>, RestoreError> {
        let mut claimed = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let result = (|| {
            for r in &image.memory {
                self.memory.claim(r.offset, r.len).map_err(|_| {
                    invalid(format!(
                        "memory range {:#x}+{:#x} overlaps another or lies outside the memory file",
                        r.offset, r.len
                    ))
                })?;
                claimed.push(FileRange {
                    offset: r.offset,
                    len: r.len,
                });
                let mut done = 0u64;
                while done < r.len {
                    let n = (r.len - done).min(buf.len() as u64) as usize;
                    memory.read_exact(&mut buf[..n])?;
                    if buf[..n].iter().any(|&b| b != 0) {
                        self.memory.write(r.offset + done, &buf[..n]);
                    }
                    done += n as u64;
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(claimed),
            Err(e) => {
                for r in claimed {
                    self.memory.dec_ref(r);
                }
                Err(e)
            }
        }
    }

    /// The memfds of the image, by index, with their contents and seals.
    fn restore_memfds(
        &self,
        images: &[super::checkpoint::MemfdImage],
    ) -> Result<HashMap<usize, Arc<crate::vfs::Dentry>>, String> {
        let mut made = HashMap::new();
        for (i, m) in images.iter().enumerate() {
            let attrs = NewAttrs {
                mode: m.mode & 0o7777,
                uid: m.uid,
                gid: m.gid,
            };
            let (_, d) = self
                .memfds
                .restored(&Caller::kernel(), &m.name, attrs, &m.data, m.seals)
                .map_err(|e| format!("memfd {i} ({e:?})"))?;
            made.insert(i, d);
        }
        Ok(made)
    }

    fn restore_mm(
        &self,
        image: &MmImage,
        fs: &Arc<FsContext>,
        refilled: &HashSet<String>,
        segments: &HashMap<i32, Arc<super::ipc::shm::Segment>>,
        memfds: &HashMap<usize, Arc<crate::vfs::Dentry>>,
    ) -> Result<Arc<MemoryManager>, RestoreError> {
        let mm = MemoryManager::new(self.memory.clone(), self.platform.new_address_space()?);
        let mut vmas = Vec::new();
        for v in &image.vmas {
            let file = match v.shm {
                Some(id) => {
                    let seg = segments.get(&id).ok_or_else(|| {
                        invalid(format!(
                            "the mapping at {:#x} attaches System V segment {id}, which is not in the image",
                            v.start
                        ))
                    })?;
                    Some(FileMapping {
                        file: seg.clone(),
                        offset: v.offset,
                        may_write: v.may_write,
                        may_exec: true,
                        dev: v.dev,
                        ino: v.ino,
                        writer: None,
                    })
                }
                // The vDSO's pages are this kernel's, with this sentry's clock parameters.
                None if v.file && [VVAR_NAME, VDSO_NAME].contains(&v.name.as_str()) => {
                    let vdso = self
                        .vdso
                        .get(&self.memory)
                        .map_err(|e| RestoreError::Unsupported(format!("the vDSO ({e:?})")))?;
                    vdso.restored_mapping(&v.name, v.offset)
                }
                None if v.file => Some(match v.memfd {
                    Some(i) => self.memfd_mapping(
                        v,
                        memfds.get(&i).ok_or_else(|| {
                            invalid(format!(
                                "the mapping at {:#x} maps memfd {i}, which is not in the image",
                                v.start
                            ))
                        })?,
                    )?,
                    None => self.mapping(v, fs, refilled)?,
                }),
                None => None,
            };
            vmas.push(RestoredVma {
                start: v.start,
                end: v.end,
                perms: perms(&v.perms)?,
                shared: v.shared,
                kind: vma_kind(v),
                file,
            });
        }
        let pages: Vec<(u64, u64, u64, bool)> = image
            .pages
            .iter()
            .map(|p| (p.start, p.end, p.file_offset, p.cow))
            .collect();
        mm.restore(vmas, &pages, image.brk)
            .map_err(|e| invalid(format!("inconsistent address space ({e:?})")))?;
        if image.membarrier_private {
            mm.register_membarrier_private();
        }
        Ok(Arc::new(mm))
    }

    /// A VMA's memfd, `d` (restored already).
    fn memfd_mapping(
        &self,
        v: &VmaImage,
        d: &Arc<crate::vfs::Dentry>,
    ) -> Result<FileMapping, RestoreError> {
        let failed = |e: crate::abi::Errno| {
            RestoreError::Unsupported(format!("the memfd mapped at {:#x} ({e:?})", v.start))
        };
        let ops = d
            .inode
            .open(&Caller::kernel(), libc::O_RDWR as u32)
            .map_err(failed)?;
        let st = ops.stat().map_err(failed)?;
        let file = ops
            .mappable(&self.memory)
            .ok_or_else(|| failed(crate::abi::Errno::ENODEV))?;
        let may_write = v.shared && v.may_write;
        Ok(FileMapping {
            writer: may_write.then(|| crate::mm::filemap::WritableMapping::new(&file)),
            may_exec: true,
            file,
            offset: v.offset,
            may_write,
            dev: st.dev,
            ino: st.ino,
        })
    }

    /// A file VMA's file, reopened by path and checked to be the same file.
    fn mapping(
        &self,
        v: &VmaImage,
        fs: &Arc<FsContext>,
        refilled: &HashSet<String>,
    ) -> Result<FileMapping, RestoreError> {
        let cx = Caller::kernel();
        let d = fs
            .resolve(&cx, v.name.as_bytes())
            .map_err(|e| RestoreError::Changed {
                what: format!("the file mapped at {:#x}, {} ({e:?})", v.start, v.name),
            })?;
        let st = d.inode.stat().map_err(|e| RestoreError::Changed {
            what: format!("{} ({e:?})", v.name),
        })?;
        // A shared mapping that may write the file (a tmpfs file's) opens it for writing.
        let may_write = v.shared && v.may_write;
        let mode = if may_write {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let ops = d.inode.open(&cx, mode as u32).map_err(|e| {
            RestoreError::Unsupported(format!("{} can no longer be opened ({e:?})", v.name))
        })?;
        // mmap(2) records the identity its open file reports, which for a file under an
        // overlay is the layer's own; the path gives the merged one. Either names the file.
        let opened = ops.stat().map_err(|e| RestoreError::Changed {
            what: format!("{} ({e:?})", v.name),
        })?;
        let same = |s: &crate::vfs::Stat| (s.dev, s.ino) == (v.dev, v.ino);
        if !same(&st) && !same(&opened) && !refilled.contains(&v.name) {
            return Err(RestoreError::Changed {
                what: format!(
                    "the file mapped at {:#x}, {} (device and inode {:#x}:{} were {:#x}:{})",
                    v.start, v.name, st.dev, st.ino, v.dev, v.ino
                ),
            });
        }
        let file = ops.mappable(&self.memory).ok_or_else(|| {
            RestoreError::Unsupported(format!("{} can no longer be mapped", v.name))
        })?;
        let (dev, ino) = if refilled.contains(&v.name) {
            (st.dev, st.ino)
        } else {
            (v.dev, v.ino)
        };
        if may_write && !file.shared_writable() {
            return Err(RestoreError::Unsupported(format!(
                "{}, mapped shared and writable at {:#x}, is not a tmpfs file any more",
                v.name, v.start
            )));
        }
        Ok(FileMapping {
            writer: may_write.then(|| crate::mm::filemap::WritableMapping::new(&file)),
            may_exec: true,
            file,
            offset: v.offset,
            may_write,
            dev,
            ino,
        })
    }

    fn restore_tasks(
        self: &Arc<Self>,
        image: &KernelImage,
        target: &RestoreTarget,
        mms: &[Arc<MemoryManager>],
        tables: &[Arc<FdTable>],
        groups: HashMap<i32, Arc<ThreadGroup>>,
        late: Late<'_>,
    ) -> Result<Restored, RestoreError> {
        let Late {
            namespaces,
            mounts,
            proc_files: deferred,
        } = late;
        let tasks_of = |tgid: i32| image.tasks.iter().filter(move |t| t.tgid == tgid);
        // An mm two processes share (a vfork child and its parent) is marked so, as clone
        // does: an execve of one of them must not take its host address space.
        let mut user_of: HashMap<usize, i32> = HashMap::new();
        for t in &image.tasks {
            if *user_of.entry(t.mm).or_insert(t.tgid) != t.tgid {
                if let Some(mm) = mms.get(t.mm) {
                    mm.mark_vm_shared();
                }
            }
        }
        // The IDs first, so that every process and thread has its old ones.
        for p in &image.processes {
            let local = match tasks_of(p.tgid).find(|t| t.tid == p.tgid) {
                Some(t) => t.container_vtid,
                None if p.zombie.is_some() => {
                    return Err(RestoreError::Unsupported(format!(
                        "zombie {} (its PID in the container is not in the image)",
                        p.tgid
                    )))
                }
                None => return Err(invalid(format!("process {} has no leader", p.tgid))),
            };
            target
                .pidns
                .claim(p.tgid, local, true)
                .map_err(|_| invalid(format!("PID {} taken twice", p.tgid)))?;
        }
        for t in image.tasks.iter().filter(|t| t.tid != t.tgid) {
            target
                .pidns
                .claim(t.tid, t.container_vtid, false)
                .map_err(|_| invalid(format!("TID {} taken twice", t.tid)))?;
        }
        let mut inits = Vec::new();
        let mut starts = Vec::new();
        {
            let mut tree = self.tree();
            for p in &image.processes {
                let tg = groups[&p.tgid].clone();
                tree.add_proc(tg.clone(), 0, p.exit_signal);
                let proc = tree.procs.get_mut(&p.tgid).expect("just added");
                proc.parent = p.parent;
                proc.pgid = p.pgid;
                proc.sid = p.sid;
                proc.did_exec = p.did_exec;
                if let Some(w) = p.zombie {
                    let status = exit_status(w);
                    proc.zombie = Some(status);
                    tg.set_done(status);
                }
                if p.parent == 0 {
                    inits.push(tg);
                }
            }
            for p in &image.processes {
                if let Some(parent) = tree.procs.get_mut(&p.parent) {
                    parent.children.insert(p.tgid);
                }
            }
            let filters =
                super::seccomp::restore_filters(&image.seccomp_filters).map_err(invalid)?;
            for t in &image.tasks {
                let tg = groups
                    .get(&t.tgid)
                    .ok_or_else(|| invalid(format!("task {} has no process", t.tid)))?;
                let handle = TaskHandle::new(t.tid, tg.clone(), t.comm.clone());
                handle
                    .seccomp
                    .restore(&t.seccomp, &filters)
                    .map_err(|e| invalid(format!("task {}: {e}", t.tid)))?;
                tree.tasks.insert(t.tid, handle.clone());
                register_thread(&handle, t.mask);
                {
                    let mut s = tg.sig();
                    if let Some(me) = s.threads.get_mut(&t.tid) {
                        for info in &t.pending {
                            me.pending.push(siginfo(info)?);
                        }
                    }
                }
                starts.push(self.task_init(t, handle, mms, tables, (namespaces, mounts))?);
            }
        }
        // A vfork parent waits again for its child when the child's image says it still
        // holds that parent (one that exec'd or exited before the pause has ended the wait:
        // the parent returns from vfork at once).
        let index: HashMap<i32, usize> = image
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.tid, i))
            .collect();
        for (i, t) in image.tasks.iter().enumerate() {
            let Some(c) = t.vfork_child.and_then(|child| index.get(&child).copied()) else {
                continue;
            };
            if image.tasks[c].vfork_parent != Some(t.tid) || c == i {
                continue;
            }
            let done = VforkDone::new(starts[i].0.handle.waiter.clone(), t.tid);
            starts[c].0.vfork_done = Some(done.clone());
            starts[i].1.vfork_wait = Some((done, image.tasks[c].tid));
        }
        // Timers once every thread is in the tree (an expiry finds its target), before any
        // runs.
        for p in image.processes.iter().filter(|p| p.zombie.is_none()) {
            self.restore_timers(&groups[&p.tgid], &p.timers);
        }
        // /proc files once every process is in the tree (their paths name processes).
        let opener = |table: &Arc<FdTable>| {
            let t = image
                .tasks
                .iter()
                .find(|t| tables.get(t.fds).is_some_and(|x| Arc::ptr_eq(x, table)))?;
            Some(crate::vfs::TaskIds {
                tid: t.tid,
                tgid: t.tgid,
            })
        };
        reopen_proc_files(&target.fs, deferred, &opener)?;
        inits.sort_by_key(|tg| tg.tgid);
        let init = inits
            .first()
            .cloned()
            .ok_or_else(|| invalid("no process without a parent"))?;
        let init_pid = target.pidns.id_of(init.tgid).unwrap_or(0);
        let tasks = starts.len();
        for (init, resumed) in starts {
            // The thread runs detached; the Loader's reaper waits on the thread group.
            Task::spawn_restored(init, resumed)?;
        }
        Ok(Restored {
            init,
            init_pid,
            tasks,
            processes: image.processes.len(),
        })
    }

    /// Arms the process's timers as the image has them: each expires after the rest of
    /// its period, then every period.
    fn restore_timers(self: &Arc<Self>, tg: &Arc<ThreadGroup>, image: &TimersImage) {
        use super::cpu_timers::{arm, cpu_clock};
        use super::timer::{real_timer, PosixTimer, TimerEvent};
        let setting = |i: &ItimerImage| {
            (
                Some(Duration::from_nanos(i.remaining_ns.max(1))),
                (i.interval_ns > 0).then(|| Duration::from_nanos(i.interval_ns)),
            )
        };
        if let Some(i) = &image.real {
            let (value, interval) = setting(i);
            real_timer(self, tg).set(value, interval);
        }
        let times = tg.cpu_times();
        {
            let mut timers = tg.timers.lock().unwrap();
            if let Some(i) = &image.virt {
                let (value, interval) = setting(i);
                let now = cpu_clock(&times, libc::ITIMER_VIRTUAL);
                timers.virt.set(now, value, interval);
            }
            if let Some(i) = &image.prof {
                let (value, interval) = setting(i);
                let now = cpu_clock(&times, libc::ITIMER_PROF);
                timers.prof.set(now, value, interval);
            }
        }
        for p in &image.posix {
            let event = TimerEvent {
                notify: p.notify,
                signo: p.signo,
                value: p.value,
                thread: p.thread,
            };
            let cpu = p.cpu.as_ref().map(|c| self.restored_cpu_clock(c));
            let now = cpu.as_ref().and_then(|c| c.read()).unwrap_or_default();
            let mut timer = PosixTimer::new(self, tg, p.id, p.clock, cpu, event);
            timer
                .overrun
                .store(p.overrun, std::sync::atomic::Ordering::Relaxed);
            if let Some(i) = &p.armed {
                let (value, interval) = setting(i);
                timer.set(now, value, interval);
            }
            tg.timers.lock().unwrap().posix.insert(p.id, timer);
        }
        // What the CPU-time timers and RLIMIT_CPU need.
        arm(self, tg);
    }

    /// A POSIX timer's CPU-time clock as the image names it: its thread or process in the
    /// restored tree (one that is not there reads no time, as a reaped owner's).
    fn restored_cpu_clock(&self, image: &CpuClockImage) -> CpuClock {
        let tree = self.tree();
        let owner = match image.owner {
            Some(CpuClockOwnerImage::Thread(tid)) => {
                CpuClockOwner::Thread(tree.tasks.get(&tid).map_or_else(Weak::new, Arc::downgrade))
            }
            Some(CpuClockOwnerImage::Process(tgid)) => CpuClockOwner::Process(
                tree.procs
                    .get(&tgid)
                    .map_or_else(Weak::new, |p| Arc::downgrade(&p.tg)),
            ),
            None => CpuClockOwner::Process(Weak::new()),
        };
        CpuClock {
            owner,
            user_only: image.user_only,
        }
    }

    fn thread_group(
        &self,
        p: &ProcessImage,
        target: &RestoreTarget,
        pidns: Arc<PidNamespace>,
    ) -> Result<ThreadGroup, RestoreError> {
        let tg = ThreadGroup::new(p.tgid, pidns, target.container.clone());
        {
            let mut limits = tg.limits.lock().unwrap();
            for (l, [cur, max]) in limits.iter_mut().zip(&p.limits) {
                l.cur = *cur;
                l.max = *max;
            }
        }
        {
            let mut s = tg.sig();
            for (a, [handler, flags, restorer, mask]) in s.actions.iter_mut().zip(&p.actions) {
                *a = SigAction {
                    handler: *handler,
                    flags: *flags,
                    restorer: *restorer,
                    mask: *mask,
                };
            }
            for info in &p.shared_pending {
                s.shared.push(siginfo(info)?);
            }
        }
        let exe = p
            .exe
            .as_ref()
            .and_then(|path| target.fs.resolve(&Caller::kernel(), path.as_bytes()).ok());
        *tg.image.lock().unwrap() = ExecImage {
            exe,
            // Not in the image: a restored process's program may be opened for writing.
            exe_deny: None,
            strings: crate::elf::ArgArea {
                arg_start: p.args[0],
                arg_end: p.args[1],
                env_start: p.args[2],
                env_end: p.args[3],
            },
            // Not in the image (format 2): a restored process's auxv file is empty.
            auxv: Vec::new(),
        };
        Ok(tg)
    }

    fn task_init(
        self: &Arc<Self>,
        t: &TaskImage,
        handle: Arc<TaskHandle>,
        mms: &[Arc<MemoryManager>],
        tables: &[Arc<FdTable>],
        (namespaces, mounts): (
            &super::ns::RestoredNamespaces,
            &[Arc<crate::vfs::MountNamespace>],
        ),
    ) -> Result<(TaskInit, Resumed), RestoreError> {
        let (ns, user_ns) = namespaces
            .task(&t.namespaces)
            .map_err(|e| invalid(format!("task {}: {e}", t.tid)))?;
        let mm = mms
            .get(t.mm)
            .ok_or_else(|| invalid(format!("task {}: no address space {}", t.tid, t.mm)))?;
        let fds = tables
            .get(t.fds)
            .ok_or_else(|| invalid(format!("task {}: no fd table {}", t.tid, t.fds)))?;
        if t.fp.len() != platform::xsave_size() {
            return Err(RestoreError::Unsupported(format!(
                "task {}: its XSAVE area has {} bytes, this CPU's {}",
                t.tid,
                t.fp.len(),
                platform::xsave_size()
            )));
        }
        let mut cpu = CpuState::new(0, 0);
        set_regs(&mut cpu.regs, &t.regs)
            .ok_or_else(|| invalid(format!("task {}: bad registers", t.tid)))?;
        cpu.fp = FpState {
            area: t.fp.clone(),
            valid: true,
            dirty: true,
        };
        let c = &t.creds;
        let creds = Creds {
            uid: c.uid[0],
            euid: c.uid[1],
            suid: c.uid[2],
            gid: c.gid[0],
            egid: c.gid[1],
            sgid: c.gid[2],
            // An image keeps no filesystem IDs: they follow the effective ones again.
            fsuid: c.uid[1],
            fsgid: c.gid[1],
            groups: c.groups.clone().into(),
            caps: Caps {
                permitted: CapSet(c.caps[0]),
                effective: CapSet(c.caps[1]),
                inheritable: CapSet(c.caps[2]),
                bounding: CapSet(c.caps[3]),
                ambient: CapSet(c.caps[4]),
            },
            // A checkpoint refuses tasks with a Landlock domain.
            landlock: None,
            securebits: c.securebits,
            user_ns,
        };
        let mount_ns = mounts
            .get(t.mount_ns)
            .ok_or_else(|| invalid(format!("task {}: no mount namespace {}", t.tid, t.mount_ns)))?;
        let fs = FsContext::new(mount_ns.clone(), t.umask);
        let cx = Caller::kernel();
        let walk = |path: &str| {
            fs.resolve(&cx, path.as_bytes())
                .map_err(|e| RestoreError::Changed {
                    what: format!("task {}'s directory {path} ({e:?})", t.tid),
                })
        };
        if t.root != "/" {
            let root = walk(&t.root)?;
            fs.set_root(root);
        }
        let cwd = walk(&t.cwd)?;
        fs.set_cwd(cwd);
        let altstack: [u8; 24] = t
            .altstack
            .as_slice()
            .try_into()
            .unwrap_or(DISABLED_ALTSTACK);
        let restart = t.restart.map(|r| match r {
            RestartImage::Sys => Restart::Sys,
            RestartImage::NoIntr => Restart::NoIntr,
            RestartImage::NoHand => Restart::NoHand,
            RestartImage::Block => Restart::Block,
        });
        let restart_block = match (t.sleep_remaining_ns, t.sleep_rem_addr) {
            (Some(ns), Some(rem)) => Some(RestartBlock::Sleep {
                deadline: Instant::now() + Duration::from_nanos(ns),
                rem: UserAddr(rem),
            }),
            _ => None,
        };
        let init = TaskInit {
            kernel: self.clone(),
            handle,
            mm: mm.clone(),
            cpu,
            fds: fds.clone(),
            creds,
            fs,
            ns,
            clear_child_tid: t.clear_child_tid,
            altstack,
            vfork_done: None,
        };
        let resumed = Resumed {
            restart,
            restart_block,
            saved_mask: t.saved_mask,
            robust_list: t.robust_list,
            vfork_wait: None,
        };
        Ok((init, resumed))
    }
}

/// What the tasks take besides their address spaces and fd tables: their namespaces, and
/// the /proc files of the tables, opened once every process is in the tree.
struct Late<'a> {
    namespaces: &'a super::ns::RestoredNamespaces,
    /// The mount namespaces, by their index in the image.
    mounts: &'a [Arc<crate::vfs::MountNamespace>],
    proc_files: Vec<(Arc<FdTable>, super::checkpoint::FdImage)>,
}

/// The open file descriptions being rebuilt, by their identity in the image.
struct Files {
    descriptions: HashMap<usize, Arc<OpenFile>>,
    /// Both ends of each pipe, by the pipe's identity in the image, until every table is
    /// rebuilt (an end no fd names is dropped then: closed).
    pipes: HashMap<usize, [Option<Arc<super::pipe::PipeEnd>>; 2]>,
    stdio: [Option<OwnedFd>; 3],
    /// Paths of the files the restore put back in tmpfs mounts and overlay upper layers:
    /// new files, whose identity is checked by type and size only.
    refilled: HashSet<String>,
    /// The AF_UNIX endpoints of the image, each taken by the one socket file that owns it.
    unix: Vec<Option<Arc<crate::net::unix::Endpoint>>>,
    /// The epoll instances made so far, by their index in the image; their interest lists
    /// are filled once every table is rebuilt ([`Files::fill_epolls`]).
    epolls: HashMap<usize, Arc<crate::vfs::epoll::Epoll>>,
    /// The memfds made so far, by their index in the image.
    memfds: HashMap<usize, Arc<crate::vfs::Dentry>>,
    /// The POSIX message queues, in the image's order.
    mqueues: Vec<Arc<super::ipc::mq::Queue>>,
    /// The FIFOs' pipes (by their identity in the image) whose bytes are back already.
    fifos: HashSet<usize>,
    /// The image's inotify instances, and those made so far by index.
    inotify_images: Vec<crate::vfs::inotify::InotifyImage>,
    inotify: HashMap<usize, Arc<crate::vfs::inotify::Inotify>>,
    /// The pty pairs made so far.
    ptys: crate::fs::devpts::PtyRestorer,
    /// The network namespaces, by their index in the image (sockets name theirs).
    nets: Vec<Arc<super::ns::NetNs>>,
    /// Every namespace of the image (open namespace files name theirs).
    namespaces: Option<Arc<super::ns::RestoredNamespaces>>,
    /// The /proc files of the tables, opened once the processes exist.
    deferred: Vec<(Arc<FdTable>, super::checkpoint::FdImage)>,
    /// An end of each pipe, by the pipe's identity in the image: a description reopened
    /// through /proc makes another end of it.
    pipe_of: HashMap<usize, Arc<super::pipe::PipeEnd>>,
}

impl Drop for Files {
    /// An endpoint no fd took (its socket file was not in any table) is closed, as its file
    /// would have been, so that its peer sees the end of the connection.
    fn drop(&mut self) {
        for ep in self.unix.drain(..).flatten() {
            if !ep.is_closed() && !ep.awaits_accept() {
                drop(crate::net::unix::UnixSocket::restored(&ep));
            }
        }
    }
}

impl Files {
    fn new(
        stdio: [Option<OwnedFd>; 3],
        refilled: HashSet<String>,
        unix: Vec<Arc<crate::net::unix::Endpoint>>,
        mqueues: Vec<Arc<super::ipc::mq::Queue>>,
    ) -> Files {
        Files {
            descriptions: HashMap::new(),
            pipes: HashMap::new(),
            stdio,
            refilled,
            unix: unix.into_iter().map(Some).collect(),
            epolls: HashMap::new(),
            memfds: HashMap::new(),
            mqueues,
            fifos: HashSet::new(),
            inotify_images: Vec::new(),
            inotify: HashMap::new(),
            ptys: crate::fs::devpts::PtyRestorer::default(),
            nets: Vec::new(),
            namespaces: None,
            deferred: Vec::new(),
            pipe_of: HashMap::new(),
        }
    }

    /// The network namespace of socket `f`.
    fn net(&self, f: &super::checkpoint::FdImage) -> Result<Arc<super::ns::NetNs>, RestoreError> {
        self.nets
            .get(f.netns)
            .cloned()
            .ok_or_else(|| invalid(format!("fd {}: no network namespace {}", f.fd, f.netns)))
    }

    /// The network namespace of socket `f`, whose `what` belongs to the sentry's stack:
    /// refused when this sandbox uses the host's.
    fn sentry_stack(
        &self,
        f: &super::checkpoint::FdImage,
        what: &str,
    ) -> Result<Arc<super::ns::NetNs>, RestoreError> {
        let net = self.net(f)?;
        if matches!(net.network, crate::net::config::Network::Host { .. }) {
            return Err(RestoreError::Unsupported(format!(
                "fd {}: {what} of the sentry's stack, and this sandbox uses the host's",
                f.fd
            )));
        }
        Ok(net)
    }

    /// Puts back the interest lists of the epoll instances the tables hold.
    fn fill_epolls(&self, images: &[EpollImage]) -> Result<(), RestoreError> {
        for (&index, ep) in &self.epolls {
            let image = images
                .get(index)
                .ok_or_else(|| invalid(format!("no epoll instance {index}")))?;
            for i in &image.interests {
                let file = self.descriptions.get(&i.description).ok_or_else(|| {
                    invalid(format!(
                        "an epoll instance watches open file {}, which no fd holds",
                        i.description
                    ))
                })?;
                ep.restore_interest(i.fd, file, i.events, i.data, i.disarmed);
            }
        }
        Ok(())
    }

    fn table(
        &mut self,
        image: &super::checkpoint::FdTableImage,
        kernel: &Arc<Kernel>,
        fs: &Arc<FsContext>,
        groups: &HashMap<i32, Arc<ThreadGroup>>,
        memfds: &[super::checkpoint::MemfdImage],
    ) -> Result<Arc<FdTable>, RestoreError> {
        let table = Arc::new(FdTable::new());
        for f in &image.fds {
            if matches!(&f.file, FileImage::Path { fs_type, .. } if fs_type == "proc") {
                self.deferred.push((table.clone(), f.clone()));
                continue;
            }
            let file = self.description(f, kernel, fs, groups, memfds)?;
            table.install_at(f.fd, file, f.cloexec);
        }
        Ok(table)
    }

    /// The open file description `f` names, made the first time.
    fn description(
        &mut self,
        f: &super::checkpoint::FdImage,
        kernel: &Arc<Kernel>,
        fs: &Arc<FsContext>,
        groups: &HashMap<i32, Arc<ThreadGroup>>,
        memfds: &[super::checkpoint::MemfdImage],
    ) -> Result<Arc<OpenFile>, RestoreError> {
        if let Some(file) = self.descriptions.get(&f.description) {
            return Ok(file.clone());
        }
        let file = self.open(f, kernel, fs, groups, memfds)?;
        *file.offset.lock().unwrap() = f.offset;
        self.descriptions.insert(f.description, file.clone());
        Ok(file)
    }

    fn open(
        &mut self,
        f: &super::checkpoint::FdImage,
        kernel: &Arc<Kernel>,
        fs: &Arc<FsContext>,
        groups: &HashMap<i32, Arc<ThreadGroup>>,
        memfds: &[super::checkpoint::MemfdImage],
    ) -> Result<Arc<OpenFile>, RestoreError> {
        match &f.file {
            FileImage::Memfd { memfd } => {
                let cx = Caller::kernel();
                let failed = |e: crate::abi::Errno| {
                    RestoreError::Unsupported(format!("fd {}: a memfd ({e:?})", f.fd))
                };
                let (ops, dentry) = match self.memfds.get(memfd) {
                    // Another description of a memfd made already.
                    Some(d) => (d.inode.open(&cx, f.flags).map_err(failed)?, d.clone()),
                    None => {
                        let m = memfds
                            .get(*memfd)
                            .ok_or_else(|| invalid(format!("fd {}: no memfd {memfd}", f.fd)))?;
                        let attrs = NewAttrs {
                            mode: m.mode & 0o7777,
                            uid: m.uid,
                            gid: m.gid,
                        };
                        let (ops, d) = kernel
                            .memfds
                            .restored(&cx, &m.name, attrs, &m.data, m.seals)
                            .map_err(failed)?;
                        self.memfds.insert(*memfd, d.clone());
                        (ops, d)
                    }
                };
                Ok(OpenFile::with_dentry(ops, f.flags, dentry))
            }
            FileImage::TimerFd {
                clock,
                armed,
                ticks,
            } => {
                let (value, interval) = armed.map_or((None, None), |i| {
                    (
                        Some(Duration::from_nanos(i.remaining_ns.max(1))),
                        (i.interval_ns > 0).then(|| Duration::from_nanos(i.interval_ns)),
                    )
                });
                let t = super::timer::TimerFd::restored(
                    &kernel.timers,
                    *clock,
                    value,
                    interval,
                    *ticks,
                );
                Ok(OpenFile::of_kind(FileKind::TimerFd(Arc::new(t)), f.flags))
            }
            FileImage::SignalFd { mask, tgid } => {
                let tg = groups.get(tgid).ok_or_else(|| {
                    invalid(format!(
                        "fd {}: a signalfd of process {tgid}, which is not in the image",
                        f.fd
                    ))
                })?;
                let sfd = super::signalfd::SignalFd::new(kernel, tg.clone(), *mask);
                Ok(OpenFile::of_kind(
                    FileKind::SignalFd(Arc::new(sfd)),
                    f.flags,
                ))
            }
            FileImage::Inet(image) => {
                let net = self.sentry_stack(f, "a socket")?;
                let stack = net.inet();
                let socket = crate::net::inet::InetSocket::restored(stack, image).map_err(|e| {
                    RestoreError::Unsupported(format!("fd {}: a socket: {e}", f.fd))
                })?;
                Ok(OpenFile::of_kind(
                    FileKind::Socket(Arc::new(socket)),
                    f.flags,
                ))
            }
            FileImage::Fifo {
                path,
                pipe,
                buffered,
            } => {
                let changed = |why: String| RestoreError::Changed {
                    what: format!("fd {}, the FIFO {path} ({why})", f.fd),
                };
                let (d, st) = resolve_saved(fs, path, changed)?;
                if st.mode & libc::S_IFMT != libc::S_IFIFO {
                    return Err(changed("no longer a FIFO".into()));
                }
                let end = kernel
                    .fifos
                    .restored(&(st.dev, st.ino), f.flags)
                    .map_err(|e| invalid(format!("fd {}: FIFO flags ({e:?})", f.fd)))?;
                if self.fifos.insert(*pipe) {
                    end.refill(buffered);
                }
                Ok(OpenFile::of_kind_with_dentry(
                    FileKind::Pipe(end),
                    f.flags,
                    d,
                ))
            }
            FileImage::PidFd { tgid, reaped } => {
                let pidfd = if *reaped {
                    super::pidfd::PidFd::reaped(kernel, *tgid)
                } else {
                    let tg = groups.get(tgid).ok_or_else(|| {
                        invalid(format!(
                            "fd {}: a pidfd of process {tgid}, which is not in the image",
                            f.fd
                        ))
                    })?;
                    super::pidfd::PidFd::new(kernel, tg)
                };
                Ok(OpenFile::of_kind(FileKind::PidFd(Arc::new(pidfd)), f.flags))
            }
            FileImage::Inotify { inotify } => {
                if let Some(i) = self.inotify.get(inotify) {
                    return Ok(OpenFile::of_kind(FileKind::Inotify(i.clone()), f.flags));
                }
                let image = self.inotify_images.get(*inotify).ok_or_else(|| {
                    invalid(format!("fd {}: no inotify instance {inotify}", f.fd))
                })?;
                let refilled = &self.refilled;
                let mut find = |w: &crate::vfs::inotify::WatchImage| {
                    let path = String::from_utf8_lossy(&w.path).into_owned();
                    let st = fs
                        .resolve(&Caller::kernel(), &w.path)
                        .and_then(|d| d.inode.stat())
                        .map_err(|e| {
                            format!("the file {path} inotify watch {} watches ({e:?})", w.wd)
                        })?;
                    if !refilled.contains(&path) && (st.dev, st.ino) != (w.dev, w.ino) {
                        return Err(format!(
                            "the file {path} inotify watch {} watches is another file now",
                            w.wd
                        ));
                    }
                    Ok(st)
                };
                let i = crate::vfs::inotify::Inotify::restored(&kernel.notify, image, &mut find)
                    .map_err(|what| RestoreError::Changed { what })?;
                self.inotify.insert(*inotify, i.clone());
                Ok(OpenFile::of_kind(FileKind::Inotify(i), f.flags))
            }
            FileImage::Pty { end, path, pty } => {
                let (file, pair) = self
                    .ptys
                    .file(fs, *end, path.as_deref(), pty, f.flags)
                    .map_err(|e| RestoreError::Unsupported(format!("fd {}: {e}", f.fd)))?;
                record_terminal(kernel, pair.controlled_session(), pair.weak_terminal());
                Ok(file)
            }
            FileImage::Console { path, console } => {
                let (file, tty) = self
                    .ptys
                    .console_file(fs, path.as_deref(), console, f.flags)
                    .map_err(|e| RestoreError::Unsupported(format!("fd {}: {e}", f.fd)))?;
                record_terminal(kernel, console.session, tty.weak_terminal());
                Ok(file)
            }
            FileImage::Mqueue { queue } => {
                let q = self
                    .mqueues
                    .get(*queue)
                    .ok_or_else(|| invalid(format!("fd {}: no message queue {queue}", f.fd)))?;
                let file = super::ipc::mq::QueueFile(q.clone());
                Ok(OpenFile::of_kind(FileKind::Mqueue(Arc::new(file)), f.flags))
            }
            FileImage::Icmp(image) => {
                let net = self.sentry_stack(f, "a ping socket")?;
                let socket =
                    crate::net::icmp::IcmpSocket::restored(net.inet(), image).map_err(|e| {
                        RestoreError::Unsupported(format!("fd {}: a ping socket: {e}", f.fd))
                    })?;
                Ok(OpenFile::of_kind(
                    FileKind::Socket(Arc::new(socket)),
                    f.flags,
                ))
            }
            FileImage::Raw(image) => {
                let net = self.sentry_stack(f, "a raw socket")?;
                let socket = crate::net::raw::RawSocket::restored(net.inet(), &net.owner, image)
                    .map_err(|e| {
                        RestoreError::Unsupported(format!("fd {}: a raw socket: {e}", f.fd))
                    })?;
                Ok(OpenFile::of_kind(
                    FileKind::Socket(Arc::new(socket)),
                    f.flags,
                ))
            }
            FileImage::Packet(image) => {
                let net = self.sentry_stack(f, "a packet socket")?;
                let socket =
                    crate::net::packet::PacketSocket::restored(net.inet(), &kernel.memory, image)
                        .map_err(|e| {
                        RestoreError::Unsupported(format!("fd {}: a packet socket: {e}", f.fd))
                    })?;
                Ok(OpenFile::of_kind(
                    FileKind::Socket(Arc::new(socket)),
                    f.flags,
                ))
            }
            FileImage::Netlink(image) => {
                let net = self.net(f)?;
                let socket = crate::net::netlink::NetlinkSocket::restored(&net, &net.owner, image)
                    .map_err(|e| {
                        RestoreError::Unsupported(format!("fd {}: a netlink socket: {e}", f.fd))
                    })?;
                Ok(OpenFile::of_kind(
                    FileKind::Socket(Arc::new(socket)),
                    f.flags,
                ))
            }
            FileImage::Epoll { epoll } => {
                let ep = self.epolls.entry(*epoll).or_default().clone();
                Ok(OpenFile::of_kind(FileKind::Epoll(ep), f.flags))
            }
            FileImage::Pipe { pipe, buffered } => {
                let pipe_of = &mut self.pipe_of;
                let ends = self.pipes.entry(*pipe).or_insert_with(|| {
                    let (r, w) = kernel.fifos.new_pipe();
                    r.refill(buffered);
                    pipe_of.insert(*pipe, r.clone());
                    [Some(r), Some(w)]
                });
                let mode = f.flags & libc::O_ACCMODE as u32;
                let write = mode == libc::O_WRONLY as u32;
                // A description reopened through /proc (read-write, or a second one of an
                // end) is another end of the same pipe.
                let taken = if mode == libc::O_RDWR as u32 {
                    None
                } else {
                    ends[usize::from(write)].take()
                };
                let end = match taken {
                    Some(end) => end,
                    None => self.pipe_of[pipe].another(f.flags).map_err(|e| {
                        invalid(format!("fd {}: a pipe's access mode ({e:?})", f.fd))
                    })?,
                };
                Ok(OpenFile::of_kind(FileKind::Pipe(end), f.flags))
            }
            FileImage::Unix { endpoint } => {
                let ep = self
                    .unix
                    .get_mut(*endpoint)
                    .and_then(Option::take)
                    .ok_or_else(|| {
                        RestoreError::Invalid(format!(
                            "fd {}: AF_UNIX endpoint {endpoint} missing or owned twice",
                            f.fd
                        ))
                    })?;
                let socket = crate::net::unix::UnixSocket::restored(&ep);
                Ok(OpenFile::of_kind(
                    FileKind::Socket(Arc::new(socket)),
                    f.flags,
                ))
            }
            FileImage::Namespace(image) => {
                let ns = self
                    .namespaces
                    .as_ref()
                    .ok_or_else(|| invalid("namespaces not restored yet"))?
                    .file(image)
                    .map_err(|e| invalid(format!("fd {}: {e}", f.fd)))?;
                Ok(super::ns::namespace_file(kernel, ns))
            }
            FileImage::EventFd { count, semaphore } => Ok(OpenFile::new(
                Arc::new(super::epoll::EventFd::new(*count, *semaphore)),
                f.flags,
            )),
            FileImage::Donated { .. } => {
                let host = usize::try_from(f.fd)
                    .ok()
                    .and_then(|i| self.stdio.get_mut(i))
                    .and_then(Option::take)
                    .ok_or_else(|| {
                        RestoreError::Unsupported(format!(
                            "fd {}: a file the old sandbox was given, not at fd 0, 1 or 2",
                            f.fd
                        ))
                    })?;
                Ok(OpenFile::new(Arc::new(HostFile::donated(host)), f.flags))
            }
            FileImage::Path {
                path,
                mode,
                dev,
                ino,
                size,
                mtime,
                ..
            } => {
                let cx = Caller::kernel();
                let changed = |why: String| RestoreError::Changed {
                    what: format!("fd {}, {path} ({why})", f.fd),
                };
                let (d, st) = resolve_saved(fs, path, changed)?;
                let kind = FileType::from_mode(st.mode);
                if st.mode & libc::S_IFMT != mode & libc::S_IFMT {
                    return Err(changed("its type".into()));
                }
                let refilled = self.refilled.contains(path);
                match kind {
                    FileType::Regular if refilled && st.size != *size => {
                        return Err(changed("size".into()));
                    }
                    FileType::Regular
                        if !refilled
                            && (st.dev, st.ino, st.size, (st.mtime, st.mtime_nsec))
                                != (*dev, *ino, *size, *mtime) =>
                    {
                        return Err(changed("device, inode, size or mtime".into()));
                    }
                    FileType::Directory if !refilled && (st.dev, st.ino) != (*dev, *ino) => {
                        return Err(changed("device or inode".into()));
                    }
                    FileType::Fifo | FileType::Socket | FileType::Symlink => {
                        return Err(RestoreError::Unsupported(format!(
                            "fd {}: {path} is a {kind:?}",
                            f.fd
                        )));
                    }
                    _ => {}
                }
                let ops: Arc<dyn crate::vfs::FileOps> = if f.flags & libc::O_PATH as u32 != 0 {
                    Arc::new(PathFile::new(d.clone()))
                } else if kind == FileType::Directory {
                    Arc::new(DirFile::new(d.clone()))
                } else {
                    d.inode
                        .open(&cx, f.flags)
                        .map_err(|e| changed(format!("opening: {e:?}")))?
                };
                Ok(OpenFile::with_dentry(ops, f.flags, d))
            }
        }
    }
}

/// Opens the /proc files of the tables (`deferred`) by their paths, once every process of
/// the image is in the tree, and installs them; fds that shared a description share it
/// again.
fn reopen_proc_files(
    fs: &FsContext,
    deferred: Vec<(Arc<FdTable>, super::checkpoint::FdImage)>,
    opener: &dyn Fn(&Arc<FdTable>) -> Option<crate::vfs::TaskIds>,
) -> Result<(), RestoreError> {
    let mut opened: HashMap<usize, Arc<OpenFile>> = HashMap::new();
    for (table, f) in deferred {
        let FileImage::Path { path, mode, .. } = &f.file else {
            continue;
        };
        let file = match opened.get(&f.description) {
            Some(file) => file.clone(),
            None => {
                let changed = |why: String| RestoreError::Changed {
                    what: format!("fd {}, {path} ({why})", f.fd),
                };
                // /proc answers tasks only: the lookup is made as a task holding the table.
                let cx = Caller {
                    task: opener(&table),
                    ..Caller::kernel()
                };
                let d = fs
                    .resolve(&cx, path.as_bytes())
                    .map_err(|e| changed(format!("{e:?}")))?;
                let st = d.inode.stat().map_err(|e| changed(format!("{e:?}")))?;
                if st.mode & libc::S_IFMT != mode & libc::S_IFMT {
                    return Err(changed("its type".into()));
                }
                let ops: Arc<dyn crate::vfs::FileOps> = if f.flags & libc::O_PATH as u32 != 0 {
                    Arc::new(PathFile::new(d.clone()))
                } else if st.mode & libc::S_IFMT == libc::S_IFDIR {
                    Arc::new(DirFile::new(d.clone()))
                } else {
                    d.inode
                        .open(&cx, f.flags)
                        .map_err(|e| changed(format!("opening: {e:?}")))?
                };
                let file = OpenFile::with_dentry(ops, f.flags, d);
                *file.offset.lock().unwrap() = f.offset;
                opened.insert(f.description, file.clone());
                file
            }
        };
        table.install_at(f.fd, file, f.cloexec);
    }
    Ok(())
}

/// The file an fd saved by `path` names now, and its attributes; `changed` says why a
/// lookup or stat failed.
fn resolve_saved(
    fs: &FsContext,
    path: &str,
    changed: impl Fn(String) -> RestoreError,
) -> Result<(Arc<crate::vfs::Dentry>, crate::vfs::Stat), RestoreError> {
    let d = fs
        .resolve(&Caller::kernel(), path.as_bytes())
        .map_err(|e| changed(format!("{e:?}")))?;
    let st = d.inode.stat().map_err(|e| changed(format!("{e:?}")))?;
    Ok((d, st))
}

/// Old and new (device, inode) of the socket files a restore put back.
type Moved = HashMap<(u64, u64), (u64, u64)>;

/// The roots of the filesystems of `image`'s mounts ([`MountRootImage::Filesystem`], by
/// their index in [`KernelImage::mount_roots`]; the others are None): the bundle's mount of
/// the same kind at the same place in its namespace `ns` (by ID first, then by place) or,
/// for a tmpfs, a new one with its limits (its files are put back by [`refill_tmpfs`]).
/// The console's node (`/dev/console`) is the restore's own, bound by the Loader; a restore
/// given none leaves it out (and is refused when the console's files come back).
///
/// # Errors
/// `Unsupported` for a filesystem other than a tmpfs that the bundle does not make (its
/// contents are not in the image), named; `Invalid` for an inconsistent image.
fn mount_filesystems(
    image: &KernelImage,
    ns: &crate::vfs::MountNamespace,
    memory: &Arc<crate::memory::MemoryFile>,
) -> Result<MountRoots, RestoreError> {
    let mut bundle = ns.saved_mounts();
    let mut roots: MountRoots = vec![None; image.mount_roots.len()];
    for (i, r) in image.mount_roots.iter().enumerate() {
        let MountRootImage::Filesystem { ns: n, mount } = r else {
            continue;
        };
        let m = image
            .mount_namespaces
            .get(*n)
            .and_then(|i| i.mounts.get(*mount))
            .ok_or_else(|| invalid(format!("no mount {mount} in mount namespace {n}")))?;
        let same_place = |b: &Arc<crate::vfs::Mount>| {
            b.path == m.path.as_bytes()
                && b.fs_type == m.fs_type
                && b.root_path == m.root_path.as_bytes()
        };
        let found = bundle
            .iter()
            .position(|b| b.id == m.id && same_place(b))
            .or_else(|| bundle.iter().position(same_place));
        roots[i] = if let Some(k) = found {
            let b = bundle.remove(k);
            Some((b.root.clone(), b.fs_type))
        } else if let Some(limits) = &m.tmpfs {
            let root: Arc<dyn crate::vfs::Inode> =
                crate::fs::tmpfs::TmpFs::new_root_restored(memory, limits);
            Some((root, "tmpfs"))
        } else if m.path == "/dev/console" {
            None
        } else {
            return Err(RestoreError::Unsupported(format!(
                "the {} mount at {} is not one the bundle makes (a filesystem of that kind made at run time cannot be restored)",
                m.fs_type, m.path
            )));
        };
    }
    Ok(roots)
}

/// What each mount root of an image is ([`mount_filesystems`]): an inode and its
/// filesystem's type.
type MountRoots = Vec<Option<(Arc<dyn crate::vfs::Inode>, &'static str)>>;

/// Makes the mount namespaces of `image` over the filesystems `roots` (with their files
/// back): the first is loaded into the bundle's namespace `ns`, the others into copies of
/// it (one family: propagation crosses between them), each owned by its user namespace of
/// `users`, with the saved IDs, peer groups and masters. A bind mount's root is looked up
/// below its filesystem's. A mount of the bundle absent from the image goes.
///
/// # Errors
/// `Changed` for a bind mount's root that is not there; `Invalid` for an inconsistent
/// image.
fn restore_mounts(
    image: &KernelImage,
    ns: &Arc<crate::vfs::MountNamespace>,
    users: &[Arc<crate::auth::UserNs>],
    mut roots: MountRoots,
) -> Result<Vec<Arc<crate::vfs::MountNamespace>>, RestoreError> {
    for (i, r) in image.mount_roots.iter().enumerate() {
        let MountRootImage::Below { of, path } = r else {
            continue;
        };
        let Some((mut at, fs_type)) = roots.get(*of).cloned().flatten() else {
            continue;
        };
        for name in path.split('/').filter(|c| !c.is_empty()) {
            at = at.lookup(&Caller::kernel(), name.as_bytes()).map_err(|e| {
                RestoreError::Changed {
                    what: format!("{path}, which a bind mount shows, in its filesystem ({e:?})"),
                }
            })?;
        }
        roots[i] = Some((at, fs_type));
    }
    let mut nss = Vec::with_capacity(image.mount_namespaces.len());
    for (n, saved_ns) in image.mount_namespaces.iter().enumerate() {
        let mut mounts = Vec::with_capacity(saved_ns.mounts.len());
        for m in &saved_ns.mounts {
            let Some((root, fs_type)) = roots.get(m.root).cloned().flatten() else {
                continue;
            };
            if fs_type != m.fs_type && m.path != "/dev/console" {
                return Err(invalid(format!(
                    "the mount at {} is {}, its filesystem {fs_type}",
                    m.path, m.fs_type
                )));
            }
            mounts.push(crate::vfs::Mount {
                id: m.id,
                root,
                path: m.path.as_bytes().to_vec(),
                fs_type,
                source: m.source.clone(),
                readonly: m.readonly,
                sb_readonly: m.sb_readonly,
                notify: ns.notify().clone(),
                flags: m.flags,
                root_path: m.root_path.as_bytes().to_vec(),
                fs_options: m.fs_options.clone(),
                parent: m.parent,
                group: m.group,
                master: m.master,
                locked: m.locked,
                locked_flags: m.locked_flags,
                connected: Default::default(),
            });
        }
        if n == 0 {
            if saved_ns.owner != 0 {
                return Err(RestoreError::Unsupported(
                    "the oldest mount namespace is owned by a user namespace of its own".into(),
                ));
            }
            ns.load(mounts);
            nss.push(ns.clone());
        } else {
            let owner = users.get(saved_ns.owner).ok_or_else(|| {
                invalid(format!(
                    "mount namespace {n}: no user namespace {}",
                    saved_ns.owner
                ))
            })?;
            nss.push(ns.loaded_copy(owner, mounts));
        }
    }
    if nss.is_empty() {
        nss.push(ns.clone());
    }
    Ok(nss)
}

/// Puts the saved files back into the tmpfs filesystems and overlay upper layers of
/// `kernel` (the roots `roots` of the mounts each names); returns their absolute paths (as
/// the mount that shows each filesystem's root shows them) and the socket files put back,
/// for [`moved_sockets`].
fn refill_tmpfs(
    kernel: &KernelImage,
    roots: &MountRoots,
) -> Result<(HashSet<String>, Sockets), RestoreError> {
    let mut sockets = Vec::new();
    use crate::fs::overlay::OvlNode;
    use crate::fs::tmpfs::TmpNode;
    let mut refilled = HashSet::new();
    for image in &kernel.tmpfs {
        let mount = kernel
            .mount_namespaces
            .get(image.ns)
            .and_then(|n| n.mounts.iter().find(|m| m.id == image.id));
        let root = mount
            .and_then(|m| roots.get(m.root).cloned().flatten())
            .and_then(|(root, fs_type)| {
                let any = root.as_any();
                match (fs_type, image.overlay_upper) {
                    ("tmpfs", false) => any.downcast::<TmpNode>().ok(),
                    ("overlay", true) => {
                        any.downcast::<OvlNode>().ok().and_then(|o| o.upper_layer())
                    }
                    _ => None,
                }
            });
        let root = root.ok_or_else(|| {
            RestoreError::Unsupported(format!(
                "the bundle has no {} at {} any more",
                if image.overlay_upper {
                    "overlay"
                } else {
                    "tmpfs"
                },
                image.mount
            ))
        })?;
        // The file put back at each path (for the further names of its inode), and the
        // times to give each file once every entry is back (an entry made in a directory
        // changes the directory's times).
        let mut nodes: HashMap<&str, Arc<TmpNode>> = HashMap::new();
        let mut times = vec![(root.clone(), image.root_times)];
        for e in &image.entries {
            let (dir, name) = match e.path.rsplit_once('/') {
                Some((parent, name)) => (walk_tmp(&root, parent), name),
                None => (Some(root.clone()), e.path.as_str()),
            };
            let dir = dir.ok_or_else(|| invalid(format!("{}: no parent directory", e.path)))?;
            let name = name.as_bytes();
            let attrs = NewAttrs {
                mode: e.mode & 0o7777,
                uid: e.uid,
                gid: e.gid,
            };
            let failed = |err: crate::abi::Errno| {
                invalid(format!(
                    "putting back {} in {} ({err:?})",
                    e.path, image.mount
                ))
            };
            let node = match &e.node {
                TmpNodeImage::Dir { opaque } => {
                    let d = match dir.child(name).filter(|c| !c.is_whiteout()) {
                        Some(d) => d,
                        None => {
                            dir.remove_entry(name);
                            dir.create_node(name, NewNode::Directory, attrs)
                                .map_err(failed)?
                        }
                    };
                    if *opaque {
                        d.set_opaque();
                    }
                    Some(d)
                }
                TmpNodeImage::File { data } => {
                    dir.remove_entry(name);
                    Some(dir.create_file_with(name, data, attrs).map_err(failed)?)
                }
                TmpNodeImage::Symlink { target } => {
                    dir.remove_entry(name);
                    Some(
                        dir.create_node(name, NewNode::Symlink(target.clone()), attrs)
                            .map_err(failed)?,
                    )
                }
                TmpNodeImage::Fifo => {
                    dir.remove_entry(name);
                    Some(
                        dir.create_node(name, NewNode::Fifo, attrs)
                            .map_err(failed)?,
                    )
                }
                TmpNodeImage::Socket { .. } => {
                    dir.remove_entry(name);
                    Some(
                        dir.create_node(name, NewNode::Socket, attrs)
                            .map_err(failed)?,
                    )
                }
                TmpNodeImage::Link { to } => {
                    let first = nodes.get(to.as_str()).cloned().ok_or_else(|| {
                        invalid(format!(
                            "{}: a link to {to}, which is not saved before it",
                            e.path
                        ))
                    })?;
                    dir.remove_entry(name);
                    let target: Arc<dyn crate::vfs::Inode> = first;
                    crate::vfs::Inode::link(&*dir, name, &target).map_err(failed)?;
                    None
                }
                TmpNodeImage::Whiteout => {
                    dir.put_whiteout(name);
                    None
                }
            };
            if let Some(node) = node {
                if let Some(t) = e.times {
                    times.push((node.clone(), t));
                }
                nodes.insert(e.path.as_str(), node);
            }
            let abs = if image.mount == "/" {
                format!("/{}", e.path)
            } else {
                format!("{}/{}", image.mount, e.path)
            };
            if let TmpNodeImage::Socket { dev, ino } = e.node {
                sockets.push(((dev, ino), abs.clone()));
            }
            refilled.insert(abs);
        }
        for (node, t) in times {
            node.set_times_image(&t);
        }
    }
    Ok((refilled, sockets))
}

/// The socket files put back: the identity each had, and its path.
type Sockets = Vec<((u64, u64), String)>;

/// The old and new identities of the socket files put back, through the mounts of `fs`
/// (as the checkpoint asked them of the paths), once the mount tree is back.
fn moved_sockets(sockets: Sockets, fs: &FsContext) -> Result<Moved, RestoreError> {
    let mut moved = HashMap::new();
    for (old, path) in sockets {
        let st = fs
            .resolve(&Caller::kernel(), path.as_bytes())
            .and_then(|d| d.inode.stat())
            .map_err(|e| invalid(format!("the socket file {path} put back ({e:?})")))?;
        moved.insert(old, (st.dev, st.ino));
    }
    Ok(moved)
}

/// The directory at relative `path` under `root`.
fn walk_tmp(
    root: &Arc<crate::fs::tmpfs::TmpNode>,
    path: &str,
) -> Option<Arc<crate::fs::tmpfs::TmpNode>> {
    let mut at = root.clone();
    for part in path.split('/') {
        at = at.child(part.as_bytes()).filter(|c| !c.is_whiteout())?;
    }
    Some(at)
}

fn perms(s: &str) -> Result<Perms, RestoreError> {
    let b = s.as_bytes();
    if b.len() != 3 {
        return Err(invalid(format!("bad permissions {s:?}")));
    }
    Ok(Perms {
        read: b[0] == b'r',
        write: b[1] == b'w',
        exec: b[2] == b'x',
    })
}

fn vma_kind(v: &VmaImage) -> VmaKind {
    match v.name.as_str() {
        "[anon]" if !v.file => VmaKind::Anon,
        "[heap]" if !v.file => VmaKind::Heap,
        "[stack]" if !v.file => VmaKind::Stack,
        name => VmaKind::Named(name.to_owned()),
    }
}

fn siginfo(bytes: &[u8]) -> Result<SigInfo, RestoreError> {
    SigInfo::read_from_bytes(bytes).map_err(|_| invalid("a pending signal of the wrong size"))
}

/// The exit status a wait status word stands for.
fn exit_status(w: i32) -> ExitStatus {
    match w & 0x7f {
        0 => ExitStatus::Exited(((w >> 8) & 0xff) as u8),
        signo => ExitStatus::Signaled {
            signo,
            core: w & 0x80 != 0,
        },
    }
}

/// Sets `regs` from the image's words (`user_regs_struct` order); None for a wrong count.
fn set_regs(r: &mut platform::Regs, w: &[u64]) -> Option<()> {
    let w: &[u64; 27] = w.try_into().ok()?;
    [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ] = *w;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_round_trip() {
        for s in [
            ExitStatus::Exited(0),
            ExitStatus::Exited(42),
            ExitStatus::Signaled {
                signo: 9,
                core: false,
            },
            ExitStatus::Signaled {
                signo: 11,
                core: true,
            },
        ] {
            assert_eq!(exit_status(s.wait_status()), s);
        }
    }

    #[test]
    fn registers_round_trip_in_image_order() {
        let mut cpu = CpuState::new(0x1234, 0x5678);
        let words: Vec<u64> = (1..=27).collect();
        set_regs(&mut cpu.regs, &words).unwrap();
        assert_eq!(cpu.regs.r15, 1);
        assert_eq!(cpu.regs.rip, 17);
        assert_eq!(cpu.regs.gs, 27);
        assert!(set_regs(&mut cpu.regs, &words[1..]).is_none());
        assert_eq!(perms("r-x").unwrap(), Perms::RX);
        assert!(perms("rw").is_err());
    }
}
