//! devpts: the filesystem of the sentry's pseudo-terminals, mounted at `/dev/pts`.
//!
//! Every mount is its own instance (Linux's `newinstance`): `ptmx` in it opens a new pty
//! pair of this instance, whose slave appears as the node `N` (the lowest free number) until
//! the master closes. The nodes live in a tmpfs directory that reports devpts's magic; the
//! mount options are Linux's `ptmxmode=`, `mode=`, `gid=` and `uid=`.
//!
//! A container's host terminal (a [`HostTty`]) takes a number of the container's instance
//! too ([`DevPts::add_host_terminal`]): under runc the console is a pty of the container's
//! own devpts, so `tty` names `/dev/pts/0`; here the node opens the host terminal, and goes
//! away when the last file of that terminal closes.
//!
//! A checkpoint saves the sentry's ptys of the container's instance (mounted at
//! `/dev/pts`) with the files that open them ([`saved_pty`]); a restore makes each pair
//! again in the new container's instance under its number, its node with the mode and
//! owner it had ([`PtyRestorer`]). The container's console (its init's host terminal) is
//! saved too ([`saved_console`]): a restore gives it the new console, whose node the
//! container has under the same number (the console is the first terminal of a fresh
//! instance), with the mode and owner the old node had. An exec's host terminal is refused.
//!
//! # Lock order
//! `Instance::used` is a leaf; it is released before the tmpfs directory is changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use super::tmpfs::{Device, TmpFs, TmpNode};
use crate::abi::Errno;
use crate::memory::MemoryFile;
use crate::tty::image::{ConsoleImage, NodeImage, PtyEnd, PtyImage};
use crate::tty::pty::{Pty, PtyOwner, SLAVE_MAJOR};
use crate::tty::HostTty;
use crate::vfs::{Caller, FileOps, FsContext, Inode, OpenFile, ProcessGroups, SetAttr};

/// DEVPTS_SUPER_MAGIC.
pub const DEVPTS_MAGIC: i64 = 0x1cd1;

/// The most ptys one instance holds (Linux's default `max=` is far larger; this bounds what
/// one sandbox may make).
const MAX_PTYS: u32 = 4096;

/// Mount options of one devpts instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevPtsOptions {
    /// Mode of the `ptmx` node.
    pub ptmx_mode: u32,
    /// Mode of each slave node.
    pub mode: u32,
    /// Owner of each slave node (None: the opener's effective UID).
    pub uid: Option<u32>,
    /// Group of each slave node (None: the opener's effective GID).
    pub gid: Option<u32>,
}

impl Default for DevPtsOptions {
    /// Linux's defaults.
    fn default() -> Self {
        DevPtsOptions {
            ptmx_mode: 0,
            mode: 0o600,
            uid: None,
            gid: None,
        }
    }
}

impl DevPtsOptions {
    /// What containers get (the OCI runtime spec's default `/dev/pts` mount):
    /// `newinstance,ptmxmode=0666,mode=0620,gid=5`.
    pub fn container() -> Self {
        DevPtsOptions {
            ptmx_mode: 0o666,
            mode: 0o620,
            uid: None,
            gid: Some(5),
        }
    }

    /// Parses mount data (`newinstance,ptmxmode=0666,mode=620,gid=5`); unknown options are
    /// ignored as Linux ignores them.
    ///
    /// # Errors
    /// EINVAL for a malformed number.
    pub fn parse(data: &str) -> Result<Self, Errno> {
        let mut o = DevPtsOptions::default();
        for opt in data.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            let octal = || {
                u32::from_str_radix(value, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or(Errno::EINVAL)
            };
            let decimal = || value.parse::<u32>().map_err(|_| Errno::EINVAL);
            match key {
                "ptmxmode" => o.ptmx_mode = octal()? & 0o777,
                "mode" => o.mode = octal()? & 0o777,
                "uid" => o.uid = Some(decimal()?),
                "gid" => o.gid = Some(decimal()?),
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One devpts instance: its root directory (held by the mount) and its numbering.
pub struct DevPts {
    root: Arc<TmpNode>,
    instance: Arc<Instance>,
}

impl std::fmt::Debug for DevPts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPts")
            .field("options", &self.instance.options)
            .finish_non_exhaustive()
    }
}

/// What the instance's `ptmx` node keeps (the root only weakly: the node is in it).
struct Instance {
    root: Weak<TmpNode>,
    options: DevPtsOptions,
    /// Numbers in use.
    used: Mutex<BTreeSet<u32>>,
}

impl DevPts {
    /// A new instance; mount [`DevPts::root`].
    ///
    /// # Errors
    /// Only on internal inconsistencies.
    pub fn new(mf: &Arc<MemoryFile>, options: DevPtsOptions) -> Result<DevPts, Errno> {
        let root = TmpFs::new_root_with_magic(mf, 0o755, DEVPTS_MAGIC);
        let instance = Arc::new(Instance {
            root: Arc::downgrade(&root),
            options,
            used: Mutex::new(BTreeSet::new()),
        });
        let ptmx = Ptmx {
            instance: instance.clone(),
        };
        root.add_device(
            b"ptmx",
            options.ptmx_mode,
            libc::makedev(5, 2),
            Arc::new(ptmx),
        )?;
        Ok(DevPts { root, instance })
    }

    /// The root directory, to mount.
    pub fn root(&self) -> Arc<dyn Inode> {
        self.root.clone()
    }

    /// Gives host terminal `tty` the lowest free number of this instance: node `N`, owned
    /// by `uid` (and the instance's `gid=`, else `gid`), opens `tty` until it is gone.
    /// Returns `N`.
    ///
    /// # Errors
    /// ENOSPC when every number is taken.
    pub fn add_host_terminal(&self, tty: &Arc<HostTty>, uid: u32, gid: u32) -> Result<u32, Errno> {
        let instance = &self.instance;
        let index = instance.allocate()?;
        let node = HostTerminalNode {
            tty: Arc::downgrade(tty),
        };
        let added = self
            .root
            .add_device(
                index.to_string().as_bytes(),
                instance.options.mode,
                libc::makedev(SLAVE_MAJOR, index),
                Arc::new(node),
            )
            .and_then(|n| {
                n.setattr(&SetAttr {
                    uid: Some(instance.options.uid.unwrap_or(uid)),
                    gid: Some(instance.options.gid.unwrap_or(gid)),
                    ..SetAttr::default()
                })
            });
        if let Err(e) = added {
            instance.released(index);
            return Err(e);
        }
        let owner: Weak<dyn PtyOwner> = Arc::downgrade(instance) as Weak<dyn PtyOwner>;
        tty.set_node(owner, index);
        Ok(index)
    }
}

impl Instance {
    fn allocate(&self) -> Result<u32, Errno> {
        let mut used = self.used.lock().unwrap();
        let index = (0..MAX_PTYS)
            .find(|i| !used.contains(i))
            .ok_or(Errno::ENOSPC)?;
        used.insert(index);
        Ok(index)
    }

    /// A new pair for `cx`: its slave node, and the master.
    fn open_pair(self: &Arc<Self>, cx: &Caller) -> Result<Arc<dyn FileOps>, Errno> {
        let root = self.root.upgrade().ok_or(Errno::ENXIO)?;
        let index = self.allocate()?;
        let owner: Weak<dyn PtyOwner> = Arc::downgrade(self) as Weak<dyn PtyOwner>;
        let pty = Pty::new(index, owner);
        let slave = SlaveNode {
            pty: Arc::downgrade(&pty),
        };
        let name = index.to_string();
        let node = match root.add_device(
            name.as_bytes(),
            self.options.mode,
            libc::makedev(SLAVE_MAJOR, index),
            Arc::new(slave),
        ) {
            Ok(n) => n,
            Err(e) => {
                self.used.lock().unwrap().remove(&index);
                return Err(e);
            }
        };
        node.setattr(&SetAttr {
            uid: Some(self.options.uid.unwrap_or(cx.creds.euid)),
            gid: Some(self.options.gid.unwrap_or(cx.creds.egid)),
            ..SetAttr::default()
        })?;
        Ok(pty.master())
    }
}

impl PtyOwner for Instance {
    fn released(&self, index: u32) {
        if let Some(root) = self.root.upgrade() {
            root.remove_entry(index.to_string().as_bytes());
        }
        self.used.lock().unwrap().remove(&index);
    }

    fn node(&self, index: u32) -> Option<NodeImage> {
        let st = self
            .root
            .upgrade()?
            .child(index.to_string().as_bytes())?
            .stat()
            .ok()?;
        Some(NodeImage {
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
        })
    }
}

/// `ptmx`: every open makes a new pair.
struct Ptmx {
    instance: Arc<Instance>,
}

impl Device for Ptmx {
    fn open(&self, cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        self.instance.open_pair(cx)
    }
}

/// The slave node `N`.
struct SlaveNode {
    pty: Weak<Pty>,
}

impl Device for SlaveNode {
    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let pty = self.pty.upgrade().ok_or(Errno::EIO)?;
        Ok(pty.open_slave()?)
    }
}

/// The node of a host terminal: opens it while it lives.
struct HostTerminalNode {
    tty: Weak<HostTty>,
}

impl Device for HostTerminalNode {
    fn open(&self, _cx: &Caller, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let tty = self.tty.upgrade().ok_or(Errno::EIO)?;
        Ok(tty)
    }
}

/// The path `file` was opened by, when it has one.
fn opened_by(file: &OpenFile) -> Option<String> {
    let d = file.dentry.as_ref()?;
    Some(String::from_utf8_lossy(&d.path).into_owned())
}

/// What a checkpoint saves of `file` when it is a host terminal: the path it was opened by
/// and the console's state; None for any other file.
///
/// # Errors
/// What makes it unsaved: an exec's host terminal, the host pty's state unreadable.
pub fn saved_console(file: &OpenFile) -> Option<Result<(Option<String>, ConsoleImage), String>> {
    let ops = file.ops();
    let tty = ops.checkpoint_any()?.downcast_ref::<HostTty>()?;
    Some(tty.saved().map(|image| (opened_by(file), image)))
}

/// What a checkpoint saves of `file` when it is a pty of the sentry's: which end of which
/// pair it opens and the path it was opened by; None for any other file.
///
/// # Errors
/// What makes it unsaved: a pty of another devpts mount, one whose node is gone.
#[allow(clippy::type_complexity)]
pub fn saved_pty(file: &OpenFile) -> Option<Result<(PtyEnd, Option<String>, PtyImage), String>> {
    let ops = file.ops();
    let (pty, end) = crate::tty::pty::pair_of(ops)?;
    // Opened in the container's /dev/pts (or as the caller's terminal, `/dev/tty`).
    let ours = file.dentry.as_ref().is_some_and(|d| {
        (d.mount.fs_type == "devpts" && d.mount.path == b"/dev/pts")
            || (end == PtyEnd::Slave && d.path == b"/dev/tty")
    });
    if !ours {
        return Some(Err(
            "a pty of a devpts mount other than the container's /dev/pts".into(),
        ));
    }
    let mut image = pty.saved(Arc::as_ptr(pty) as usize);
    if !image.hung_up {
        image.node = pty.node();
        if image.node.is_none() {
            return Some(Err(format!(
                "a pty whose node /dev/pts/{} is gone",
                image.index
            )));
        }
    }
    Some(Ok((end, opened_by(file), image)))
}

/// Makes the pty pairs of a checkpoint again in a container's devpts instance, once each
/// however many files open them.
#[derive(Default)]
pub struct PtyRestorer {
    devpts: Option<Arc<DevPts>>,
    groups: Option<Weak<dyn ProcessGroups + Send + Sync>>,
    made: HashMap<usize, Arc<Pty>>,
    /// The pairs whose master end is open again.
    masters: BTreeSet<usize>,
    /// The restore's console, and whether the saved one was put onto it yet.
    console: Option<(Arc<HostTty>, bool)>,
}

impl PtyRestorer {
    /// Pairs go into `devpts`, the saved console onto `console`; a hang-up signals the
    /// process groups of `groups`.
    pub fn new(
        devpts: Option<Arc<DevPts>>,
        console: Option<Arc<HostTty>>,
        groups: Weak<dyn ProcessGroups + Send + Sync>,
    ) -> PtyRestorer {
        PtyRestorer {
            devpts,
            groups: Some(groups),
            made: HashMap::new(),
            masters: BTreeSet::new(),
            console: console.map(|c| (c, false)),
        }
    }

    /// An open file of the console, opened by `path` in `fs` with `flags`: the restore's
    /// console, onto which the saved one (`image`) is put the first time. Also returns the
    /// console.
    ///
    /// # Errors
    /// A message: the restore was given no console, or the saved one does not fit it.
    pub fn console_file(
        &mut self,
        fs: &FsContext,
        path: Option<&str>,
        image: &ConsoleImage,
        flags: u32,
    ) -> Result<(Arc<OpenFile>, Arc<HostTty>), String> {
        let groups = self
            .groups
            .clone()
            .ok_or("no kernel to restore a console in")?;
        let Some((tty, put)) = &mut self.console else {
            return Err(
                "the processes had a terminal (the container's console) and this restore was given none: restore with process.terminal set and a console (--console-socket)"
                    .into(),
            );
        };
        if !*put {
            tty.restore(image, groups)?;
            if let Some((index, node)) = image.node {
                let devpts = self
                    .devpts
                    .as_ref()
                    .ok_or("a console node, and the container has no /dev/pts of the sentry's")?;
                devpts
                    .root
                    .child(index.to_string().as_bytes())
                    .ok_or_else(|| format!("the console's node /dev/pts/{index} is gone"))?
                    .setattr(&SetAttr {
                        mode: Some(node.mode & 0o7777),
                        uid: Some(node.uid),
                        gid: Some(node.gid),
                        ..SetAttr::default()
                    })
                    .map_err(|e| format!("the console's node /dev/pts/{index} ({e:?})"))?;
            }
            *put = true;
        }
        let ops: Arc<dyn FileOps> = tty.clone();
        let file = match path.and_then(|p| fs.resolve(&Caller::kernel(), p.as_bytes()).ok()) {
            Some(d) => OpenFile::with_dentry(ops, flags, d),
            None => OpenFile::new(ops, flags),
        };
        Ok((file, tty.clone()))
    }

    /// The open file of `end` of the pair `image`, opened by `path` in `fs` with `flags`;
    /// the pair is made the first time. Also returns the pair.
    ///
    /// # Errors
    /// A message: no devpts instance, the number taken, an inconsistent image.
    pub fn file(
        &mut self,
        fs: &FsContext,
        end: PtyEnd,
        path: Option<&str>,
        image: &PtyImage,
        flags: u32,
    ) -> Result<(Arc<OpenFile>, Arc<Pty>), String> {
        let pty = match self.made.get(&image.id) {
            Some(p) => p.clone(),
            None => {
                let p = self.make(image)?;
                self.made.insert(image.id, p.clone());
                p
            }
        };
        let ops: Arc<dyn FileOps> = match end {
            PtyEnd::Master => {
                if image.hung_up || !self.masters.insert(image.id) {
                    return Err(format!(
                        "pty {}: a master that is hung up or saved twice",
                        image.index
                    ));
                }
                pty.restored_master()
            }
            PtyEnd::Slave => pty.restored_slave(),
        };
        // The node the file was opened by, while it is there (a hung-up pair has none).
        let dentry = path
            .filter(|_| !pty.hung_up())
            .and_then(|p| fs.resolve(&Caller::kernel(), p.as_bytes()).ok());
        let file = match dentry {
            Some(d) => OpenFile::with_dentry(ops, flags, d),
            None => OpenFile::new(ops, flags),
        };
        Ok((file, pty))
    }

    fn make(&self, image: &PtyImage) -> Result<Arc<Pty>, String> {
        let groups = self.groups.clone().ok_or("no kernel to restore a pty in")?;
        let Some(node) = image.node.filter(|_| !image.hung_up) else {
            // Hung up: no number, no node, and nobody to tell.
            let owner: Weak<dyn PtyOwner> = Weak::<Instance>::new();
            return Pty::restored(image, owner, groups);
        };
        let devpts = self
            .devpts
            .as_ref()
            .ok_or("a pty, and the container has no /dev/pts of the sentry's")?;
        let instance = &devpts.instance;
        if image.index >= MAX_PTYS || !instance.used.lock().unwrap().insert(image.index) {
            return Err(format!("pty number {} is taken", image.index));
        }
        let owner: Weak<dyn PtyOwner> = Arc::downgrade(instance) as Weak<dyn PtyOwner>;
        let pty = match Pty::restored(image, owner, groups) {
            Ok(p) => p,
            Err(e) => {
                instance.used.lock().unwrap().remove(&image.index);
                return Err(e);
            }
        };
        let slave = SlaveNode {
            pty: Arc::downgrade(&pty),
        };
        let added = devpts
            .root
            .add_device(
                image.index.to_string().as_bytes(),
                node.mode & 0o7777,
                libc::makedev(SLAVE_MAJOR, image.index),
                Arc::new(slave),
            )
            .and_then(|n| {
                n.setattr(&SetAttr {
                    uid: Some(node.uid),
                    gid: Some(node.gid),
                    ..SetAttr::default()
                })
            });
        if let Err(e) = added {
            devpts.root.remove_entry(image.index.to_string().as_bytes());
            instance.used.lock().unwrap().remove(&image.index);
            return Err(format!("pty {}: its node ({e:?})", image.index));
        }
        Ok(pty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let o = DevPtsOptions::parse("newinstance,ptmxmode=0666,mode=0620,gid=5").unwrap();
        assert_eq!(o, DevPtsOptions::container());
        assert_eq!(DevPtsOptions::parse("").unwrap(), DevPtsOptions::default());
        assert_eq!(DevPtsOptions::parse("mode=9"), Err(Errno::EINVAL));
        assert_eq!(DevPtsOptions::parse("uid=x"), Err(Errno::EINVAL));
    }

    #[test]
    fn nodes_come_and_go_with_masters() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let fs = DevPts::new(&mf, DevPtsOptions::container()).unwrap();
        let cx = Caller::kernel();
        let ptmx = fs.root.child(b"ptmx").unwrap();
        let open = || ptmx.open(&cx, libc::O_RDWR as u32).unwrap();
        let m0 = open();
        let m1 = open();
        assert!(fs.root.child(b"0").is_some());
        assert!(fs.root.child(b"1").is_some());
        let st = fs.root.child(b"1").unwrap().stat().unwrap();
        assert_eq!(st.mode, libc::S_IFCHR | 0o620);
        assert_eq!(st.gid, 5);
        assert_eq!(st.rdev, libc::makedev(SLAVE_MAJOR, 1));
        drop(m0);
        assert!(fs.root.child(b"0").is_none());
        let again = open();
        assert!(fs.root.child(b"0").is_some());
        drop((m1, again));
    }

    #[test]
    fn host_terminal_takes_a_number_until_it_is_gone() {
        let mf = Arc::new(MemoryFile::new().unwrap());
        let fs = DevPts::new(&mf, DevPtsOptions::container()).unwrap();
        let cx = Caller::kernel();
        let host = nix::pty::openpty(None, None).unwrap();
        let tty = HostTty::new(host.slave);
        assert_eq!(fs.add_host_terminal(&tty, 1000, 1000), Ok(0));
        let node = fs.root.child(b"0").unwrap();
        let st = node.stat().unwrap();
        assert_eq!(st.mode, libc::S_IFCHR | 0o620);
        assert_eq!((st.uid, st.gid), (1000, 5));
        assert_eq!(st.rdev, libc::makedev(SLAVE_MAJOR, 0));
        let opened = node.open(&cx, libc::O_RDWR as u32).unwrap();
        // A pty of the sentry's own takes the next number.
        let ptmx = fs.root.child(b"ptmx").unwrap();
        let master = ptmx.open(&cx, libc::O_RDWR as u32).unwrap();
        assert!(fs.root.child(b"1").is_some());
        drop(tty);
        assert!(fs.root.child(b"0").is_some(), "an open file keeps it");
        drop(opened);
        assert!(fs.root.child(b"0").is_none());
        drop(master);
    }
}
