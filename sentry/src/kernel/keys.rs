//! The key-retention service as far as session keyrings go (keyrings(7)): each thread has a
//! session keyring, which children inherit and `KEYCTL_JOIN_SESSION_KEYRING` replaces for
//! the calling thread only; keyrings have a serial number, an owner, a permission mask and
//! a description, and named ones can be joined again by whoever may search them.
//!
//! A keyring lives while a thread has it as its session keyring; the registry holds it
//! weakly, so a serial nobody uses any more is ENOKEY, as after Linux's garbage collector.
//! Keys other than keyrings (add_key, request_key) are not offered. A user other than root
//! may own at most `/proc/sys/kernel/keys/maxkeys` live keyrings (200 at boot, as Linux):
//! joining a new one past that is EDQUOT.
//!
//! # Lock order
//! `Keys::inner` is a leaf; a `Key`'s `perm` is a leaf taken alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::abi::Errno;
use crate::auth::Creds;

/// Permission bits, one group of six for each of possessor, user, group and other.
pub const KEY_VIEW: u32 = 0x01;
pub const KEY_READ: u32 = 0x02;
pub const KEY_WRITE: u32 = 0x04;
pub const KEY_SEARCH: u32 = 0x08;
pub const KEY_LINK: u32 = 0x10;
pub const KEY_SETATTR: u32 = 0x20;
const KEY_ALL: u32 = 0x3f;
/// Shifts of the possessor and user groups (group 8, other 0).
const POS_SHIFT: u32 = 24;
const USR_SHIFT: u32 = 16;
const GRP_SHIFT: u32 = 8;
/// Every bit a permission mask may have.
pub const KEY_PERM_MASK: u32 =
    (KEY_ALL << POS_SHIFT) | (KEY_ALL << USR_SHIFT) | (KEY_ALL << GRP_SHIFT) | KEY_ALL;

/// A new anonymous session keyring's permissions: everything for the possessor, view and
/// read for the owner.
const SESSION_PERM: u32 = (KEY_ALL << POS_SHIFT) | ((KEY_VIEW | KEY_READ) << USR_SHIFT);
/// A new named session keyring's: the owner may also link to it.
const NAMED_SESSION_PERM: u32 = SESSION_PERM | (KEY_LINK << USR_SHIFT);
/// The description of anonymous session keyrings.
const ANON_SESSION_NAME: &str = "_ses";
/// Longest description, with its NUL (KEY_MAX_DESC_SIZE).
pub const KEY_MAX_DESC_SIZE: usize = 4096;

/// One keyring.
#[derive(Debug)]
pub struct Key {
    pub serial: i32,
    pub uid: u32,
    pub gid: u32,
    perm: AtomicU32,
    pub description: String,
    /// Made by joining a name (so later joins by that name may find it).
    named: bool,
}

impl Key {
    pub fn perm(&self) -> u32 {
        self.perm.load(Ordering::Relaxed)
    }

    pub fn set_perm(&self, perm: u32) {
        self.perm.store(perm, Ordering::Relaxed);
    }

    /// The type name KEYCTL_DESCRIBE shows.
    pub fn type_name(&self) -> &'static str {
        "keyring"
    }

    /// The permission bits (one group's worth) `creds` has on the key; `possessed` adds the
    /// possessor's (Linux's key_task_permission).
    pub fn allowed(&self, creds: &Creds, possessed: bool) -> u32 {
        let perm = self.perm();
        let mut bits = if self.uid == creds.euid {
            perm >> USR_SHIFT
        } else if self.gid == creds.egid || creds.in_group(self.gid) {
            perm >> GRP_SHIFT
        } else {
            perm
        };
        if possessed {
            bits |= perm >> POS_SHIFT;
        }
        bits & KEY_ALL
    }

    /// Checks that `creds` has every bit of `need` on the key.
    ///
    /// # Errors
    /// EACCES.
    pub fn check(&self, creds: &Creds, possessed: bool, need: u32) -> Result<(), Errno> {
        if self.allowed(creds, possessed) & need == need {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_serial: HashMap<i32, Weak<Key>>,
    /// The session keyring of threads that never joined one: the container's init gets one
    /// (as runc gives each container), made when first needed.
    initial: Option<Arc<Key>>,
}

/// `/proc/sys/kernel/keys/maxkeys` at boot.
pub const DEFAULT_MAX_KEYS: u32 = 200;

/// The kernel's keyrings, by serial number.
#[derive(Debug)]
pub struct Keys {
    inner: Mutex<Inner>,
    /// How many live keyrings a user other than root may own (`maxkeys`).
    max_keys: AtomicU32,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            inner: Mutex::default(),
            max_keys: AtomicU32::new(DEFAULT_MAX_KEYS),
        }
    }
}

impl Keys {
    /// `/proc/sys/kernel/keys/maxkeys`.
    pub fn max_keys(&self) -> u32 {
        self.max_keys.load(Ordering::Relaxed)
    }

    /// Sets `maxkeys`; keyrings already owned past a lowered limit stay.
    pub fn set_max_keys(&self, max: u32) {
        self.max_keys.store(max, Ordering::Relaxed);
    }

    /// Refuses a new keyring for `creds` once its user owns `maxkeys` (root is not limited
    /// here: Linux's root_maxkeys is a million).
    fn check_quota(&self, inner: &Inner, creds: &Creds) -> Result<(), Errno> {
        if creds.euid == 0 {
            return Ok(());
        }
        let owned = inner
            .by_serial
            .values()
            .filter_map(Weak::upgrade)
            .filter(|k| k.uid == creds.euid)
            .count();
        if owned >= self.max_keys() as usize {
            return Err(Errno::EDQUOT);
        }
        Ok(())
    }

    fn alloc(&self, inner: &mut Inner, creds: &Creds, description: &str, named: bool) -> Arc<Key> {
        inner.by_serial.retain(|_, k| k.strong_count() > 0);
        // Serials are random positive numbers, as Linux's, so they cannot be guessed.
        let serial = loop {
            let mut b = [0u8; 4];
            if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
                b = (inner.by_serial.len() as u32 + 4).to_ne_bytes();
            }
            let s = (u32::from_ne_bytes(b) & 0x7fff_ffff) as i32;
            if s > 3 && !inner.by_serial.contains_key(&s) {
                break s;
            }
        };
        let key = Arc::new(Key {
            serial,
            uid: creds.euid,
            gid: creds.egid,
            perm: AtomicU32::new(if named {
                NAMED_SESSION_PERM
            } else {
                SESSION_PERM
            }),
            description: description.to_owned(),
            named,
        });
        inner.by_serial.insert(serial, Arc::downgrade(&key));
        key
    }

    /// The keyring with `serial`, if some thread still has it.
    ///
    /// # Errors
    /// ENOKEY.
    pub fn lookup(&self, serial: i32) -> Result<Arc<Key>, Errno> {
        let inner = self.inner.lock().unwrap();
        inner
            .by_serial
            .get(&serial)
            .and_then(Weak::upgrade)
            .ok_or(Errno::ENOKEY)
    }

    /// The session keyring of a thread that has not joined one.
    pub fn initial_session(&self, creds: &Creds) -> Arc<Key> {
        let mut inner = self.inner.lock().unwrap();
        if let Some(k) = &inner.initial {
            return k.clone();
        }
        let k = self.alloc(&mut inner, creds, ANON_SESSION_NAME, false);
        inner.initial = Some(k.clone());
        k
    }

    /// KEYCTL_JOIN_SESSION_KEYRING: a new anonymous keyring for None; for a name, an
    /// existing named keyring `creds` may search, else a new one with that name.
    ///
    /// # Errors
    /// EDQUOT when a new keyring would pass the user's `maxkeys`.
    pub fn join_session(&self, creds: &Creds, name: Option<&str>) -> Result<Arc<Key>, Errno> {
        let mut inner = self.inner.lock().unwrap();
        let Some(name) = name else {
            self.check_quota(&inner, creds)?;
            return Ok(self.alloc(&mut inner, creds, ANON_SESSION_NAME, false));
        };
        let found = inner
            .by_serial
            .values()
            .filter_map(Weak::upgrade)
            .filter(|k| k.named && k.description == name)
            .find(|k| k.check(creds, false, KEY_SEARCH).is_ok());
        match found {
            Some(k) => Ok(k),
            None => {
                self.check_quota(&inner, creds)?;
                Ok(self.alloc(&mut inner, creds, name, true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CapSet;

    fn creds(uid: u32) -> Creds {
        Creds::new(uid, uid, &[], CapSet::EMPTY)
    }

    #[test]
    fn named_keyrings_are_found_only_when_searchable() {
        let keys = Keys::default();
        let c = creds(1000);
        let first = keys.join_session(&c, Some("ring")).unwrap();
        assert_eq!(first.perm(), 0x3f13_0000);
        // The owner lacks search on a new named keyring: joining again makes another.
        let second = keys.join_session(&c, Some("ring")).unwrap();
        assert_ne!(first.serial, second.serial);
        first.set_perm(first.perm() | (KEY_SEARCH << USR_SHIFT));
        let again = keys.join_session(&c, Some("ring")).unwrap();
        assert_eq!(again.serial, first.serial);
        // Another user has only the "other" bits, which are clear.
        let stranger = keys.join_session(&creds(2000), Some("ring")).unwrap();
        assert_ne!(stranger.serial, first.serial);
    }

    #[test]
    fn permissions_follow_owner_and_possession() {
        let keys = Keys::default();
        let c = creds(1000);
        let k = keys.join_session(&c, None).unwrap();
        assert_eq!(k.description, "_ses");
        assert_eq!(k.allowed(&c, false), KEY_VIEW | KEY_READ);
        assert_eq!(k.allowed(&c, true), KEY_ALL);
        assert_eq!(k.check(&creds(2000), false, KEY_VIEW), Err(Errno::EACCES));
        k.set_perm(0);
        assert_eq!(k.check(&c, true, KEY_VIEW), Err(Errno::EACCES));
    }

    #[test]
    fn users_other_than_root_are_held_to_maxkeys() {
        let keys = Keys::default();
        keys.set_max_keys(2);
        let c = creds(1000);
        let held = [
            keys.join_session(&c, None).unwrap(),
            keys.join_session(&c, None).unwrap(),
        ];
        assert_eq!(keys.join_session(&c, None).err(), Some(Errno::EDQUOT));
        assert_eq!(keys.join_session(&c, Some("n")).err(), Some(Errno::EDQUOT));
        // Root is not counted against maxkeys; a dropped keyring frees its place.
        assert!(keys.join_session(&creds(0), None).is_ok());
        drop(held);
        assert!(keys.join_session(&c, None).is_ok());
    }

    #[test]
    fn serials_of_dropped_keyrings_are_gone() {
        let keys = Keys::default();
        let k = keys.join_session(&creds(0), None).unwrap();
        let serial = k.serial;
        assert!(serial > 3);
        assert_eq!(keys.lookup(serial).unwrap().serial, serial);
        drop(k);
        assert_eq!(keys.lookup(serial).map(|k| k.serial), Err(Errno::ENOKEY));
    }
}
