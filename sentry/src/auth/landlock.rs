//! Landlock domains (landlock(7)): the restrictions a task's credentials carry.
//!
//! A [`Ruleset`] is what `landlock_create_ruleset` makes and `landlock_add_rule` fills;
//! `landlock_restrict_self` freezes a copy of it as one [`Domain`] layer stacked on the
//! caller's. A domain is immutable and shared by every task that inherited it (fork, clone,
//! execve); an access is allowed only if every layer that handles it grants it.
//!
//! Layer: part of `auth`, so it knows no files: a filesystem rule names its object by
//! `(device, inode number)` and keeps the object alive through an opaque holder; the walk
//! from a file up to the root that gathers those identities is the caller's
//! (`kernel::landlock`).

use std::collections::HashMap;
use std::sync::Arc;

/// The ABI version this implementation offers (`LANDLOCK_CREATE_RULESET_VERSION`).
pub const ABI_VERSION: u64 = 6;

/// Filesystem access rights (`LANDLOCK_ACCESS_FS_*`).
pub mod fs {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const REMOVE_DIR: u64 = 1 << 4;
    pub const REMOVE_FILE: u64 = 1 << 5;
    pub const MAKE_CHAR: u64 = 1 << 6;
    pub const MAKE_DIR: u64 = 1 << 7;
    pub const MAKE_REG: u64 = 1 << 8;
    pub const MAKE_SOCK: u64 = 1 << 9;
    pub const MAKE_FIFO: u64 = 1 << 10;
    pub const MAKE_BLOCK: u64 = 1 << 11;
    pub const MAKE_SYM: u64 = 1 << 12;
    pub const REFER: u64 = 1 << 13;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// Every right this ABI knows.
    pub const ALL: u64 = (1 << 16) - 1;
    /// The rights that make sense on a file that is not a directory.
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
}

/// Network access rights (`LANDLOCK_ACCESS_NET_*`).
pub mod net {
    pub const BIND_TCP: u64 = 1 << 0;
    pub const CONNECT_TCP: u64 = 1 << 1;
    pub const ALL: u64 = BIND_TCP | CONNECT_TCP;
}

/// IPC scopes (`LANDLOCK_SCOPE_*`).
pub mod scope {
    pub const ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    pub const SIGNAL: u64 = 1 << 1;
    pub const ALL: u64 = ABSTRACT_UNIX_SOCKET | SIGNAL;
}

/// At most this many layers stack on one task (Linux's `LANDLOCK_MAX_NUM_LAYERS`).
pub const MAX_LAYERS: usize = 16;

/// Keeps a rule's object alive while a ruleset or domain names it, so that its identity is
/// not given to another file meanwhile.
pub type Holder = Box<dyn std::any::Any + Send + Sync>;

/// What a ruleset handles and grants; a domain layer is a frozen copy of it.
#[derive(Default)]
pub struct Rules {
    pub handled_fs: u64,
    pub handled_net: u64,
    pub scoped: u64,
    /// Rights granted beneath each object, by `(device, inode number)`.
    fs: HashMap<(u64, u64), u64>,
    /// Rights granted on each TCP port.
    ports: HashMap<u64, u64>,
    holders: Vec<Arc<Holder>>,
}

impl Rules {
    /// A ruleset handling these rights and scopes, without rules yet.
    pub fn new(handled_fs: u64, handled_net: u64, scoped: u64) -> Rules {
        Rules {
            handled_fs,
            handled_net,
            scoped,
            ..Rules::default()
        }
    }

    /// Grants `access` beneath the object `ident` (which `holder` keeps alive).
    pub fn add_path(&mut self, ident: (u64, u64), access: u64, holder: Holder) {
        *self.fs.entry(ident).or_default() |= access;
        self.holders.push(Arc::new(holder));
    }

    /// Grants `access` on TCP port `port`.
    pub fn add_port(&mut self, port: u64, access: u64) {
        *self.ports.entry(port).or_default() |= access;
    }

    fn snapshot(&self) -> Rules {
        Rules {
            handled_fs: self.handled_fs,
            handled_net: self.handled_net,
            scoped: self.scoped,
            fs: self.fs.clone(),
            ports: self.ports.clone(),
            holders: self.holders.clone(),
        }
    }
}

/// One layer of restrictions and the layers below it: the domain a task runs in.
pub struct Domain {
    parent: Option<Arc<Domain>>,
    depth: usize,
    rules: Rules,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

/// Two domains are the same domain only if they are one object.
impl PartialEq for Domain {
    fn eq(&self, other: &Domain) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Domain {}

/// Why a domain could not be stacked.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyLayers;

impl Domain {
    /// `rules` stacked on `parent` as a new layer.
    ///
    /// # Errors
    /// [`TooManyLayers`] beyond [`MAX_LAYERS`].
    pub fn stack(parent: Option<Arc<Domain>>, rules: &Rules) -> Result<Arc<Domain>, TooManyLayers> {
        let depth = parent.as_ref().map_or(0, |p| p.depth) + 1;
        if depth > MAX_LAYERS {
            return Err(TooManyLayers);
        }
        Ok(Arc::new(Domain {
            parent,
            depth,
            rules: rules.snapshot(),
        }))
    }

    fn layers(&self) -> impl Iterator<Item = &Domain> {
        std::iter::successors(Some(self), |d| d.parent.as_deref())
    }

    /// The filesystem rights any layer handles.
    pub fn handled_fs(&self) -> u64 {
        self.layers().fold(0, |acc, d| acc | d.rules.handled_fs)
    }

    /// The rights among `access` that some layer handles and does not grant to a file whose
    /// identity and its ancestors' (nearest first, up to the root) `path` yields. Every
    /// layer handles [`fs::REFER`] (Linux denies reparenting unless a rule allows it), once
    /// any layer handles filesystem rights at all.
    pub fn denied_fs(&self, access: u64, path: &[(u64, u64)]) -> u64 {
        if self.handled_fs() == 0 {
            return 0;
        }
        let mut denied = 0;
        for layer in self.layers() {
            let needed = access & (layer.rules.handled_fs | fs::REFER) & !denied;
            if needed == 0 {
                continue;
            }
            let mut granted = 0;
            for ident in path {
                granted |= layer.rules.fs.get(ident).copied().unwrap_or(0);
                if needed & !granted == 0 {
                    break;
                }
            }
            denied |= needed & !granted;
        }
        denied
    }

    /// Whether moving (or linking) a file from the place `from` (the file itself, then its
    /// ancestors) to the directory `to` (then its ancestors) would give it, in some layer,
    /// a right it did not have where it was.
    pub fn reparent_gains(&self, from: &[(u64, u64)], to: &[(u64, u64)]) -> bool {
        let granted = |layer: &Domain, path: &[(u64, u64)]| {
            path.iter()
                .filter_map(|i| layer.rules.fs.get(i))
                .fold(0, |acc, g| acc | g)
                & layer.rules.handled_fs
        };
        self.layers()
            .any(|layer| granted(layer, to) & !granted(layer, from) != 0)
    }

    /// Whether a TCP `access` (bind or connect) on `port` is allowed.
    pub fn allows_port(&self, access: u64, port: u16) -> bool {
        self.layers().all(|layer| {
            layer.rules.handled_net & access == 0
                || layer
                    .rules
                    .ports
                    .get(&u64::from(port))
                    .is_some_and(|g| g & access == access)
        })
    }

    /// Whether this domain's `scope` lets it reach a task or socket owner in `target`: every
    /// layer scoping it must also be one of the target's (the target is inside it).
    pub fn reaches(&self, scope: u64, target: Option<&Arc<Domain>>) -> bool {
        self.layers().all(|layer| {
            layer.rules.scoped & scope == 0
                || target.is_some_and(|t| t.layers().any(|l| std::ptr::eq(l, layer)))
        })
    }
}

/// Whether a task in `domain` may reach one in `target` under `scope` (no domain reaches
/// everything).
pub fn reaches(domain: Option<&Arc<Domain>>, scope: u64, target: Option<&Arc<Domain>>) -> bool {
    domain.is_none_or(|d| d.reaches(scope, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(handled_fs: u64) -> Rules {
        Rules {
            handled_fs,
            ..Rules::default()
        }
    }

    #[test]
    fn every_layer_must_grant() {
        let mut a = rules(fs::READ_FILE | fs::WRITE_FILE);
        a.add_path((1, 10), fs::READ_FILE | fs::WRITE_FILE, Box::new(()));
        let d1 = Domain::stack(None, &a).unwrap();
        // Beneath /10 (the file 11 in it): both rights.
        assert_eq!(
            d1.denied_fs(fs::READ_FILE | fs::WRITE_FILE, &[(1, 11), (1, 10)]),
            0
        );
        assert_eq!(
            d1.denied_fs(fs::READ_FILE, &[(1, 12), (1, 2)]),
            fs::READ_FILE
        );
        // Unhandled rights are never denied.
        assert_eq!(d1.denied_fs(fs::EXECUTE, &[(1, 12)]), 0);
        let mut b = rules(fs::WRITE_FILE);
        b.add_path((1, 11), fs::WRITE_FILE, Box::new(()));
        let d2 = Domain::stack(Some(d1.clone()), &b).unwrap();
        assert_eq!(d2.denied_fs(fs::WRITE_FILE, &[(1, 11), (1, 10)]), 0);
        assert_eq!(
            d2.denied_fs(fs::WRITE_FILE, &[(1, 13), (1, 10)]),
            fs::WRITE_FILE
        );
        assert_eq!(d2.denied_fs(fs::READ_FILE, &[(1, 13), (1, 10)]), 0);
        assert_eq!(d2.handled_fs(), fs::READ_FILE | fs::WRITE_FILE);
    }

    #[test]
    fn at_most_sixteen_layers() {
        let mut d = None;
        for _ in 0..MAX_LAYERS {
            d = Some(Domain::stack(d, &rules(fs::READ_FILE)).unwrap());
        }
        assert_eq!(Domain::stack(d, &rules(0)).unwrap_err(), TooManyLayers);
    }

    #[test]
    fn ports_and_scopes() {
        let mut r = Rules {
            handled_net: net::ALL,
            scoped: scope::SIGNAL,
            ..Rules::default()
        };
        r.add_port(80, net::BIND_TCP);
        let d = Domain::stack(None, &r).unwrap();
        assert!(d.allows_port(net::BIND_TCP, 80));
        assert!(!d.allows_port(net::CONNECT_TCP, 80));
        assert!(!d.allows_port(net::BIND_TCP, 81));
        let child = Domain::stack(Some(d.clone()), &Rules::default()).unwrap();
        assert!(reaches(Some(&d), scope::SIGNAL, Some(&child)));
        // A nested domain still reaches the domain whose layer scopes it.
        assert!(reaches(Some(&child), scope::SIGNAL, Some(&d)));
        assert!(!reaches(Some(&d), scope::SIGNAL, None));
        assert!(reaches(Some(&d), scope::ABSTRACT_UNIX_SOCKET, None));
        assert!(reaches(None, scope::SIGNAL, None));
    }
}
