//! POSIX ACLs (acl(5)): the `system.posix_acl_access` and `system.posix_acl_default`
//! extended attributes, kept by filesystems as raw xattr values and understood here.
//!
//! The value is Linux's xattr format: a little-endian `u32` version (2), then 8-byte entries
//! (`u16` tag, `u16` permission bits, `u32` id). What this module does, as Linux's
//! `fs/posix_acl.c`:
//! - [`parse`]: the checks of `posix_acl_from_xattr` and `posix_acl_valid` (EINVAL for a
//!   malformed or out-of-order list, EOPNOTSUPP for another version);
//! - [`equiv_mode`]: the mode an access ACL implies, and whether it says more than a mode;
//! - [`chmod`]: what `chmod` does to an access ACL (owner, mask or group, other);
//! - [`inherit`]: what a new file gets from its directory's default ACL;
//! - [`permits`]: the access check of a file that has an extended access ACL.

use crate::abi::Errno;
use crate::auth::Creds;

/// Name of the access ACL attribute.
pub const ACCESS: &[u8] = b"system.posix_acl_access";
/// Name of the default ACL attribute (directories only).
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const UNDEFINED_ID: u32 = u32::MAX;

/// Entry tags.
pub const USER_OBJ: u16 = 0x01;
pub const USER: u16 = 0x02;
pub const GROUP_OBJ: u16 = 0x04;
pub const GROUP: u16 = 0x08;
pub const MASK: u16 = 0x10;
pub const OTHER: u16 = 0x20;

/// One ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: u16,
    pub perm: u16,
    pub id: u32,
}

/// An ACL: entries in Linux's order (owner, named users, owning group, named groups, mask,
/// other).
pub type Acl = Vec<Entry>;

/// Whether `name` is one of the two ACL attributes.
pub fn is_acl_name(name: &[u8]) -> bool {
    name == ACCESS || name == DEFAULT
}

/// Parses and validates an xattr value. `Ok(None)`: the value holds no entries (empty, or
/// only a header), which removes the ACL.
///
/// # Errors
/// EINVAL for a short or misaligned value, an unknown tag, bad permission bits, an invalid
/// id or entries out of order; EOPNOTSUPP for a version other than 2.
pub fn parse(value: &[u8]) -> Result<Option<Acl>, Errno> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() < 4 || !(value.len() - 4).is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let version = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    if version != VERSION {
        return Err(Errno::EOPNOTSUPP);
    }
    let mut acl = Acl::new();
    for c in value[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([c[0], c[1]]);
        let perm = u16::from_le_bytes([c[2], c[3]]);
        let id = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        let id = match tag {
            USER_OBJ | GROUP_OBJ | MASK | OTHER => UNDEFINED_ID,
            USER | GROUP if id != UNDEFINED_ID => id,
            _ => return Err(Errno::EINVAL),
        };
        acl.push(Entry { tag, perm, id });
    }
    if acl.is_empty() {
        return Ok(None);
    }
    valid(&acl)?;
    Ok(Some(acl))
}

/// `posix_acl_valid`: each of the owner, owning group and other entries once, in order, a
/// mask exactly when there are named entries, permission bits within rwx.
fn valid(acl: &Acl) -> Result<(), Errno> {
    #[derive(PartialEq)]
    enum State {
        UserObj,
        User,
        Group,
        Other,
        Done,
    }
    let mut state = State::UserObj;
    let mut needs_mask = false;
    for e in acl {
        if e.perm & !7 != 0 {
            return Err(Errno::EINVAL);
        }
        state = match (e.tag, state) {
            (USER_OBJ, State::UserObj) => State::User,
            (USER, State::User) => {
                needs_mask = true;
                State::User
            }
            (GROUP_OBJ, State::User) => State::Group,
            (GROUP, State::Group) => {
                needs_mask = true;
                State::Group
            }
            (MASK, State::Group) => State::Other,
            (OTHER, State::Other) => State::Done,
            (OTHER, State::Group) if !needs_mask => State::Done,
            _ => return Err(Errno::EINVAL),
        };
    }
    if state == State::Done {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// The xattr value of `acl`.
pub fn encode(acl: &Acl) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + acl.len() * 8);
    v.extend_from_slice(&VERSION.to_le_bytes());
    for e in acl {
        v.extend_from_slice(&e.tag.to_le_bytes());
        v.extend_from_slice(&e.perm.to_le_bytes());
        v.extend_from_slice(&e.id.to_le_bytes());
    }
    v
}

/// `posix_acl_equiv_mode`: the permission bits of `mode` with those `acl` implies (owner,
/// mask or owning group, other), and whether the ACL says more than a mode can.
pub fn equiv_mode(acl: &Acl, mode: u32) -> (u32, bool) {
    let mut bits = 0u32;
    let mut extended = false;
    for e in acl {
        let p = u32::from(e.perm) & 7;
        match e.tag {
            USER_OBJ => bits |= p << 6,
            GROUP_OBJ => bits |= p << 3,
            OTHER => bits |= p,
            MASK => {
                bits = (bits & !0o070) | (p << 3);
                extended = true;
            }
            _ => extended = true,
        }
    }
    ((mode & !0o777) | bits, extended)
}

/// `posix_acl_chmod`: the owner, other and mask (or, without a mask, owning group) entries
/// take the new permission bits.
pub fn chmod(acl: &mut Acl, mode: u32) {
    let has_mask = acl.iter().any(|e| e.tag == MASK);
    for e in acl.iter_mut() {
        match e.tag {
            USER_OBJ => e.perm = ((mode >> 6) & 7) as u16,
            MASK => e.perm = ((mode >> 3) & 7) as u16,
            GROUP_OBJ if !has_mask => e.perm = ((mode >> 3) & 7) as u16,
            OTHER => e.perm = (mode & 7) as u16,
            _ => {}
        }
    }
}

/// What a new file created with `mode` (the creator's mode, without the umask) gets from a
/// directory whose default ACL is `default`, as `posix_acl_create`: its permission bits, its
/// access ACL (None when the mode says it all) and, for a directory, its own default ACL.
pub fn inherit(default: &Acl, mode: u32, dir: bool) -> (u32, Option<Acl>, Option<Acl>) {
    let mut acl = default.clone();
    let mut mode = mode;
    let mut extended = false;
    let mut group_obj = None;
    let mut mask_obj = None;
    for (i, e) in acl.iter_mut().enumerate() {
        match e.tag {
            USER_OBJ => {
                e.perm &= ((mode >> 6) & 7) as u16;
                mode &= (u32::from(e.perm) << 6) | !0o700;
            }
            USER | GROUP => extended = true,
            GROUP_OBJ => group_obj = Some(i),
            MASK => {
                extended = true;
                mask_obj = Some(i);
            }
            OTHER => {
                e.perm &= (mode & 7) as u16;
                mode &= u32::from(e.perm) | !0o007;
            }
            _ => {}
        }
    }
    if let Some(i) = mask_obj.or(group_obj) {
        acl[i].perm &= ((mode >> 3) & 7) as u16;
        mode &= (u32::from(acl[i].perm) << 3) | !0o070;
    }
    let access = extended.then_some(acl);
    let default = dir.then(|| default.clone());
    (mode, access, default)
}

/// `posix_acl_permission`: whether `creds` (not the owner: the owner's check is the mode's)
/// may access the file for `want` (R=4, W=2, X=1) by its access ACL, without capabilities.
pub fn permits(acl: &Acl, file_gid: u32, creds: &Creds, want: u32) -> bool {
    let want = (want & 7) as u16;
    let mask = acl.iter().find(|e| e.tag == MASK).map(|e| e.perm);
    let masked = |perm: u16| perm & mask.unwrap_or(7) & want == want;
    let mut found = false;
    for e in acl {
        match e.tag {
            USER if e.id == creds.fsuid => return masked(e.perm),
            GROUP_OBJ | GROUP => {
                let gid = if e.tag == GROUP_OBJ { file_gid } else { e.id };
                if creds.in_group(gid) {
                    found = true;
                    if e.perm & want == want {
                        return masked(e.perm);
                    }
                }
            }
            OTHER => return !found && e.perm & want == want,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: u16, perm: u16, id: u32) -> Entry {
        Entry { tag, perm, id }
    }

    #[test]
    fn parse_checks_as_linux() {
        let good = vec![
            e(USER_OBJ, 6, UNDEFINED_ID),
            e(USER, 4, 1000),
            e(GROUP_OBJ, 4, UNDEFINED_ID),
            e(MASK, 6, UNDEFINED_ID),
            e(OTHER, 4, UNDEFINED_ID),
        ];
        let v = encode(&good);
        assert_eq!(parse(&v), Ok(Some(good.clone())));
        assert_eq!(parse(&v[..4]), Ok(None));
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&v[..1]), Err(Errno::EINVAL));
        assert_eq!(parse(&v[..v.len() - 1]), Err(Errno::EINVAL));
        let mut bad_version = v.clone();
        bad_version[0] = 1;
        assert_eq!(parse(&bad_version), Err(Errno::EOPNOTSUPP));
        let no_mask = vec![good[0], good[1], good[2], good[4]];
        assert_eq!(parse(&encode(&no_mask)), Err(Errno::EINVAL));
        let bad_perm = vec![e(USER_OBJ, 8, 0), good[2], good[4]];
        assert_eq!(parse(&encode(&bad_perm)), Err(Errno::EINVAL));
    }

    #[test]
    fn mode_and_chmod() {
        let mut acl = vec![
            e(USER_OBJ, 6, UNDEFINED_ID),
            e(USER, 4, 1000),
            e(GROUP_OBJ, 4, UNDEFINED_ID),
            e(MASK, 7, UNDEFINED_ID),
            e(OTHER, 4, UNDEFINED_ID),
        ];
        assert_eq!(equiv_mode(&acl, 0o100644), (0o100674, true));
        chmod(&mut acl, 0o460);
        assert_eq!(acl[0].perm, 4);
        assert_eq!(acl[2].perm, 4);
        assert_eq!(acl[3].perm, 6);
        assert_eq!(acl[4].perm, 0);
    }
}
