//! `memfd_create`'s files: unnamed regular files of one internal tmpfs per kernel (Linux's
//! internal shm mount, which no mount namespace shows), each named `/memfd:NAME (deleted)`
//! in `/proc/[pid]/fd` and `/proc/[pid]/maps`. Seals live on the tmpfs node.

use std::sync::Arc;

use crate::abi::Errno;
use crate::memory::MemoryFile;
use crate::vfs::inotify::FsNotify;
use crate::vfs::{Caller, Dentry, FileOps, Inode, Mount, NewAttrs};

use super::tmpfs::{TmpFs, TmpNode, SEAL_SEAL};

/// The internal filesystem that holds every memfd of one kernel.
pub struct MemfdFs {
    root: Arc<TmpNode>,
    dentry: Arc<Dentry>,
}

impl std::fmt::Debug for MemfdFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemfdFs").finish_non_exhaustive()
    }
}

impl MemfdFs {
    /// An empty one keeping file data in `mf`.
    pub fn new(mf: &Arc<MemoryFile>, notify: &Arc<FsNotify>) -> MemfdFs {
        let root = TmpFs::new_root(mf, 0o1777);
        let mount = Arc::new(Mount {
            id: 0,
            root: root.clone(),
            path: b"/".to_vec(),
            fs_type: "tmpfs",
            source: "memfd".to_owned(),
            readonly: false,
            sb_readonly: false,
            notify: notify.clone(),
            flags: 0,
            root_path: b"/".to_vec(),
            fs_options: String::new(),
            parent: 0,
            group: 0,
            master: 0,
            locked: false,
            locked_flags: 0,
            connected: Default::default(),
        });
        let dentry = Arc::new(Dentry {
            inode: root.clone(),
            parent: None,
            name: Vec::new(),
            path: b"/".to_vec(),
            mount,
        });
        MemfdFs { root, dentry }
    }

    /// A new memfd named `name` (already checked for length): its file operations and the
    /// dentry that names it. `sealing`: seals may be added (MFD_ALLOW_SEALING); `seals`: the
    /// seals it starts with beyond that.
    ///
    /// # Errors
    /// ENOMEM-class failures of the tmpfs.
    pub fn create(
        &self,
        cx: &Caller,
        name: &[u8],
        attrs: NewAttrs,
        sealing: bool,
        seals: u32,
    ) -> Result<(Arc<dyn FileOps>, Arc<Dentry>), Errno> {
        let start = if sealing { seals } else { SEAL_SEAL | seals };
        let node = self.root.new_memfd(attrs, start)?;
        self.named(cx, name, node)
    }

    /// A memfd a checkpoint saved: named `name`, holding `data`, with `seals` (as
    /// `F_GET_SEALS` gave them).
    ///
    /// # Errors
    /// ENOMEM-class failures of the tmpfs.
    pub fn restored(
        &self,
        cx: &Caller,
        name: &[u8],
        attrs: NewAttrs,
        data: &[u8],
        seals: u32,
    ) -> Result<(Arc<dyn FileOps>, Arc<Dentry>), Errno> {
        let node = self.root.restored_memfd(attrs, data, seals)?;
        self.named(cx, name, node)
    }

    /// Opens `node` and gives it the dentry that names it `memfd:NAME`.
    fn named(
        &self,
        cx: &Caller,
        name: &[u8],
        node: Arc<TmpNode>,
    ) -> Result<(Arc<dyn FileOps>, Arc<Dentry>), Errno> {
        let ops = node.open(cx, libc::O_RDWR as u32)?;
        let mut leaf = b"memfd:".to_vec();
        leaf.extend_from_slice(name);
        let mut path = b"/".to_vec();
        path.extend_from_slice(&leaf);
        path.extend_from_slice(b" (deleted)");
        let dentry = Arc::new(Dentry {
            inode: node,
            parent: Some(self.dentry.clone()),
            name: leaf,
            path,
            mount: self.dentry.mount.clone(),
        });
        Ok((ops, dentry))
    }
}
