//! keyctl(2): the session-keyring operations of the key-retention service
//! ([`crate::kernel::keys`]): GET_KEYRING_ID, JOIN_SESSION_KEYRING, SETPERM and DESCRIBE.
//! Other operations, and the other special keyrings (thread, process, user, group), are
//! EOPNOTSUPP.

use std::sync::Arc;

use crate::abi::{Errno, SysResult};
use crate::auth::cap;
use crate::kernel::keys::{
    Key, KEY_MAX_DESC_SIZE, KEY_PERM_MASK, KEY_SEARCH, KEY_SETATTR, KEY_VIEW,
};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;

const KEYCTL_GET_KEYRING_ID: i32 = 0;
const KEYCTL_JOIN_SESSION_KEYRING: i32 = 1;
const KEYCTL_SETPERM: i32 = 5;
const KEYCTL_DESCRIBE: i32 = 6;

const KEY_SPEC_SESSION_KEYRING: i32 = -3;
/// The lowest special serial (KEY_SPEC_REQUESTOR_KEYRING).
const KEY_SPEC_LOWEST: i32 = -8;

/// The caller's session keyring (the initial one until it joins another).
fn session_keyring(t: &Task) -> Arc<Key> {
    let mut own = t.handle.session_keyring.lock().unwrap();
    own.get_or_insert_with(|| t.kernel.keys.initial_session(&t.creds))
        .clone()
}

/// The keyring `serial` names for the caller, and whether the caller possesses it: the
/// session keyring named by its special serial always, by its number when its possessor
/// may search it (Linux finds possession by searching the caller's keyrings).
fn resolve(t: &Task, serial: i32) -> Result<(Arc<Key>, bool), Errno> {
    match serial {
        KEY_SPEC_SESSION_KEYRING => Ok((session_keyring(t), true)),
        s if (KEY_SPEC_LOWEST..0).contains(&s) => Err(Errno::EOPNOTSUPP),
        s if s <= 0 => Err(Errno::EINVAL),
        s => {
            let key = t.kernel.keys.lookup(s)?;
            let session = session_keyring(t);
            let possessed =
                Arc::ptr_eq(&key, &session) && key.allowed(&t.creds, true) & KEY_SEARCH != 0;
            Ok((key, possessed))
        }
    }
}

/// keyctl(2)
pub fn keyctl(t: &mut Task, op: i32, arg2: u64, arg3: u64, arg4: u64, _arg5: u64) -> SysResult {
    // Key serials are C ints.
    let serial = arg2 as i32;
    match op {
        KEYCTL_GET_KEYRING_ID => {
            let (key, possessed) = resolve(t, serial)?;
            key.check(&t.creds, possessed, KEY_SEARCH)?;
            Ok(key.serial as u64)
        }
        KEYCTL_JOIN_SESSION_KEYRING => {
            let name = if arg2 == 0 {
                None
            } else {
                let raw =
                    t.mm.read_cstring(UserAddr(arg2), KEY_MAX_DESC_SIZE)
                        .map_err(|e| {
                            if e == Errno::ENAMETOOLONG {
                                Errno::EINVAL
                            } else {
                                e
                            }
                        })?;
                Some(String::from_utf8_lossy(&raw).into_owned())
            };
            let key = t.kernel.keys.join_session(&t.creds, name.as_deref())?;
            let serial = key.serial;
            *t.handle.session_keyring.lock().unwrap() = Some(key);
            Ok(serial as u64)
        }
        KEYCTL_SETPERM => {
            // Linux takes the mask as a 32-bit key_perm_t.
            let perm = arg3 as u32;
            if perm & !KEY_PERM_MASK != 0 {
                return Err(Errno::EINVAL);
            }
            let (key, possessed) = resolve(t, serial)?;
            key.check(&t.creds, possessed, KEY_SETATTR)?;
            if key.uid != t.creds.euid && !t.creds.has_cap(cap::SYS_ADMIN) {
                return Err(Errno::EACCES);
            }
            key.set_perm(perm);
            Ok(0)
        }
        KEYCTL_DESCRIBE => {
            let (key, possessed) = resolve(t, serial)?;
            key.check(&t.creds, possessed, KEY_VIEW)?;
            let mut desc = format!(
                "{};{};{};{:08x};{}",
                key.type_name(),
                key.uid,
                key.gid,
                key.perm(),
                key.description
            )
            .into_bytes();
            desc.push(0);
            let buf = UserAddr(arg3);
            // Copied only when it fits whole (Linux's keyctl_describe_key).
            if !buf.is_null() && arg4 >= desc.len() as u64 {
                t.mm.write_bytes(buf, &desc)?;
            }
            Ok(desc.len() as u64)
        }
        _ => Err(Errno::EOPNOTSUPP),
    }
}
