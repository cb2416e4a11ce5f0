//! Credentials: the user and group IDs, supplementary groups and capabilities of the
//! calling thread (get*id/set*id, getgroups/setgroups, capget/capset and prctl's
//! capability options). The rules themselves live in [`crate::auth`]; these handlers decode
//! arguments, check privilege and commit the new credentials.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::{Errno, SysResult};
use crate::auth::{cap, secbit, CapSet, Creds, NGROUPS_MAX};
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;

/// The "leave unchanged" ID of setresuid(2) and friends.
const UNCHANGED: u32 = u32::MAX;

const CAP_VERSION_1: u32 = 0x1998_0330;
const CAP_VERSION_2: u32 = 0x2007_1026;
const CAP_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`: one 32-bit half of each set.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Installs `new` as the caller's credentials and shows them to `/proc`. A change of the
/// effective or filesystem IDs makes the process undumpable (Linux's commit_creds).
fn commit(t: &mut Task, new: Creds) {
    let c = &t.creds;
    if (new.euid, new.egid, new.fsuid, new.fsgid) != (c.euid, c.egid, c.fsuid, c.fsgid) {
        t.tg.dumpable.store(0, std::sync::atomic::Ordering::Relaxed);
    }
    t.creds = new;
    t.sync_creds();
}

/// Kernel ID `kid` as the caller's user namespace shows it (65534 when unmapped).
fn shown(t: &Task, kid: u32, gid: bool) -> u32 {
    t.creds.user_ns.show(kid, gid)
}

/// The kernel ID of the caller's namespace ID `id` (-1, "unchanged", stays itself).
///
/// # Errors
/// EINVAL when the caller's user namespace does not map `id`.
fn kernel_id(t: &Task, id: u32, gid: bool) -> Result<u32, Errno> {
    if id == UNCHANGED {
        return Ok(id);
    }
    t.creds.user_ns.to_kernel(id, gid).ok_or(Errno::EINVAL)
}

/// Whether the caller holds `c` in its own user namespace (over its IDs).
fn privileged(t: &Task, c: u32) -> bool {
    t.creds.has_cap_in(&t.creds.user_ns, c)
}

/// Installs user IDs changed from the current ones, with Linux's capability fix-up; the
/// filesystem UID follows the effective one.
fn commit_uids(t: &mut Task, mut new: Creds) {
    new.fsuid = new.euid;
    new.fix_caps_after_setuid(&t.creds);
    commit(t, new);
}

/// Installs group IDs changed from the current ones; the filesystem GID follows the
/// effective one.
fn commit_gids(t: &mut Task, mut new: Creds) {
    new.fsgid = new.egid;
    commit(t, new);
}

/// setfsuid(2): the previous filesystem UID, always. The new one takes effect when it is
/// one of the real, effective, saved or filesystem UIDs, or with CAP_SETUID; an ID the
/// caller's namespace does not map (-1 in particular, the usual query) changes nothing.
pub fn setfsuid(t: &mut Task, uid: u32) -> SysResult {
    let old = t.creds.fsuid;
    let shown_old = u64::from(shown(t, old, false));
    let Some(uid) = t
        .creds
        .user_ns
        .to_kernel(uid, false)
        .filter(|&u| u != UNCHANGED)
    else {
        return Ok(shown_old);
    };
    let c = &t.creds;
    let allowed = [c.uid, c.euid, c.suid, c.fsuid].contains(&uid) || privileged(t, cap::SETUID);
    if allowed && uid != old {
        let mut new = t.creds.clone();
        new.set_fsuid(uid);
        commit(t, new);
    }
    Ok(shown_old)
}

/// setfsgid(2): as setfsuid(2) for the filesystem GID, with CAP_SETGID (no capability
/// changes).
pub fn setfsgid(t: &mut Task, gid: u32) -> SysResult {
    let old = t.creds.fsgid;
    let shown_old = u64::from(shown(t, old, true));
    let Some(gid) = t
        .creds
        .user_ns
        .to_kernel(gid, true)
        .filter(|&g| g != UNCHANGED)
    else {
        return Ok(shown_old);
    };
    let c = &t.creds;
    let allowed = [c.gid, c.egid, c.sgid, c.fsgid].contains(&gid) || privileged(t, cap::SETGID);
    if allowed && gid != old {
        let mut new = t.creds.clone();
        new.fsgid = gid;
        commit(t, new);
    }
    Ok(shown_old)
}

/// getuid(2)
pub fn getuid(t: &mut Task) -> SysResult {
    Ok(shown(t, t.creds.uid, false).into())
}

/// geteuid(2)
pub fn geteuid(t: &mut Task) -> SysResult {
    Ok(shown(t, t.creds.euid, false).into())
}

/// getgid(2)
pub fn getgid(t: &mut Task) -> SysResult {
    Ok(shown(t, t.creds.gid, true).into())
}

/// getegid(2)
pub fn getegid(t: &mut Task) -> SysResult {
    Ok(shown(t, t.creds.egid, true).into())
}

/// getresuid(2)
pub fn getresuid(t: &mut Task, r: UserAddr, e: UserAddr, s: UserAddr) -> SysResult {
    let c = &t.creds;
    let (uid, euid, suid) = (
        shown(t, c.uid, false),
        shown(t, c.euid, false),
        shown(t, c.suid, false),
    );
    t.mm.write_obj(r, &uid)?;
    t.mm.write_obj(e, &euid)?;
    t.mm.write_obj(s, &suid)?;
    Ok(0)
}

/// getresgid(2)
pub fn getresgid(t: &mut Task, r: UserAddr, e: UserAddr, s: UserAddr) -> SysResult {
    let c = &t.creds;
    let (gid, egid, sgid) = (
        shown(t, c.gid, true),
        shown(t, c.egid, true),
        shown(t, c.sgid, true),
    );
    t.mm.write_obj(r, &gid)?;
    t.mm.write_obj(e, &egid)?;
    t.mm.write_obj(s, &sgid)?;
    Ok(0)
}

/// setuid(2): with CAP_SETUID every user ID, otherwise only the effective one and only to
/// the real or saved ID.
pub fn setuid(t: &mut Task, uid: u32) -> SysResult {
    let uid = kernel_id(t, uid, false)?;
    if uid == UNCHANGED {
        return Err(Errno::EINVAL);
    }
    let mut new = t.creds.clone();
    if privileged(t, cap::SETUID) {
        (new.uid, new.euid, new.suid) = (uid, uid, uid);
    } else if uid == t.creds.uid || uid == t.creds.suid {
        new.euid = uid;
    } else {
        return Err(Errno::EPERM);
    }
    commit_uids(t, new);
    Ok(0)
}

/// setgid(2): as setuid(2), with CAP_SETGID.
pub fn setgid(t: &mut Task, gid: u32) -> SysResult {
    let gid = kernel_id(t, gid, true)?;
    if gid == UNCHANGED {
        return Err(Errno::EINVAL);
    }
    let mut new = t.creds.clone();
    if privileged(t, cap::SETGID) {
        (new.gid, new.egid, new.sgid) = (gid, gid, gid);
    } else if gid == t.creds.gid || gid == t.creds.sgid {
        new.egid = gid;
    } else {
        return Err(Errno::EPERM);
    }
    commit_gids(t, new);
    Ok(0)
}

/// The new (real, effective, saved) IDs of setreuid(2)/setregid(2) from `old`: without the
/// capability the real ID may become the real or effective one and the effective ID any of
/// the three; the saved ID follows the effective one when the real ID is set or the
/// effective one moves away from the real one.
fn setre(old: [u32; 3], r: u32, e: u32, privileged: bool) -> Result<[u32; 3], Errno> {
    let [oreal, oeff, osaved] = old;
    let mut new = old;
    if r != UNCHANGED {
        if !privileged && r != oreal && r != oeff {
            return Err(Errno::EPERM);
        }
        new[0] = r;
    }
    if e != UNCHANGED {
        if !privileged && e != oreal && e != oeff && e != osaved {
            return Err(Errno::EPERM);
        }
        new[1] = e;
    }
    if r != UNCHANGED || (e != UNCHANGED && e != oreal) {
        new[2] = new[1];
    }
    Ok(new)
}

/// The new IDs of setresuid(2)/setresgid(2): without the capability each given ID must be
/// one of the current three.
fn setres(old: [u32; 3], ids: [u32; 3], privileged: bool) -> Result<[u32; 3], Errno> {
    let mut new = old;
    for (slot, id) in new.iter_mut().zip(ids) {
        if id == UNCHANGED {
            continue;
        }
        if !privileged && !old.contains(&id) {
            return Err(Errno::EPERM);
        }
        *slot = id;
    }
    Ok(new)
}

/// setreuid(2)
pub fn setreuid(t: &mut Task, r: u32, e: u32) -> SysResult {
    let (r, e) = (kernel_id(t, r, false)?, kernel_id(t, e, false)?);
    let c = &t.creds;
    let ids = setre([c.uid, c.euid, c.suid], r, e, privileged(t, cap::SETUID))?;
    let mut new = t.creds.clone();
    [new.uid, new.euid, new.suid] = ids;
    commit_uids(t, new);
    Ok(0)
}

/// setregid(2)
pub fn setregid(t: &mut Task, r: u32, e: u32) -> SysResult {
    let (r, e) = (kernel_id(t, r, true)?, kernel_id(t, e, true)?);
    let c = &t.creds;
    let ids = setre([c.gid, c.egid, c.sgid], r, e, privileged(t, cap::SETGID))?;
    let mut new = t.creds.clone();
    [new.gid, new.egid, new.sgid] = ids;
    commit_gids(t, new);
    Ok(0)
}

/// setresuid(2)
pub fn setresuid(t: &mut Task, r: u32, e: u32, s: u32) -> SysResult {
    let (r, e, s) = (
        kernel_id(t, r, false)?,
        kernel_id(t, e, false)?,
        kernel_id(t, s, false)?,
    );
    let c = &t.creds;
    let ids = setres(
        [c.uid, c.euid, c.suid],
        [r, e, s],
        privileged(t, cap::SETUID),
    )?;
    let mut new = t.creds.clone();
    [new.uid, new.euid, new.suid] = ids;
    commit_uids(t, new);
    Ok(0)
}

/// setresgid(2)
pub fn setresgid(t: &mut Task, r: u32, e: u32, s: u32) -> SysResult {
    let (r, e, s) = (
        kernel_id(t, r, true)?,
        kernel_id(t, e, true)?,
        kernel_id(t, s, true)?,
    );
    let c = &t.creds;
    let ids = setres(
        [c.gid, c.egid, c.sgid],
        [r, e, s],
        privileged(t, cap::SETGID),
    )?;
    let mut new = t.creds.clone();
    [new.gid, new.egid, new.sgid] = ids;
    commit_gids(t, new);
    Ok(0)
}

/// getgroups(2): the count alone for a size of 0, EINVAL when `size` is too small.
pub fn getgroups(t: &mut Task, size: i32, list: UserAddr) -> SysResult {
    let size = usize::try_from(size).map_err(|_| Errno::EINVAL)?;
    let groups: Vec<u32> = t.creds.groups.iter().map(|&g| shown(t, g, true)).collect();
    if size != 0 {
        if size < groups.len() {
            return Err(Errno::EINVAL);
        }
        t.mm.write_bytes(list, groups.as_bytes())?;
    }
    Ok(groups.len() as u64)
}

/// setgroups(2): needs CAP_SETGID, and a namespace whose gid_map is written and whose
/// `setgroups` is not `deny` (Linux's `may_setgroups`, checked first); at most `NGROUPS_MAX`
/// groups.
pub fn setgroups(t: &mut Task, size: i32, list: UserAddr) -> SysResult {
    let maps = t.creds.user_ns.snapshot();
    if !privileged(t, cap::SETGID) || maps.setgroups_denied || maps.gid.0.is_none() {
        return Err(Errno::EPERM);
    }
    let size = usize::try_from(size)
        .ok()
        .filter(|&n| n <= NGROUPS_MAX)
        .ok_or(Errno::EINVAL)?;
    let bytes = t.mm.read_bytes(list, size * 4)?;
    let groups = bytes
        .chunks_exact(4)
        .map(|b| {
            let g = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            t.creds.user_ns.to_kernel(g, true).ok_or(Errno::EINVAL)
        })
        .collect::<Result<Vec<u32>, Errno>>()?;
    let mut new = t.creds.clone();
    new.set_groups(&groups);
    commit(t, new);
    Ok(0)
}

/// Reads the header of capget/capset and the number of `CapData` its version uses. An
/// unknown version is EINVAL after the preferred version is written back (the probe
/// libcap makes).
fn cap_header(t: &mut Task, hdr: UserAddr) -> Result<(CapHeader, usize), Errno> {
    let h: CapHeader = t.mm.read_obj(hdr)?;
    let words = match h.version {
        CAP_VERSION_1 => 1,
        CAP_VERSION_2 | CAP_VERSION_3 => 2,
        _ => {
            t.mm.write_obj(hdr, &CAP_VERSION_3)?;
            return Err(Errno::EINVAL);
        }
    };
    Ok((h, words))
}

/// capget(2): the capability sets of the caller or of the thread `pid`.
pub fn capget(t: &mut Task, hdr: UserAddr, data: UserAddr) -> SysResult {
    let (h, words) = match cap_header(t, hdr) {
        Err(Errno::EINVAL) if data.is_null() => return Ok(0),
        r => r?,
    };
    if data.is_null() {
        return Ok(0);
    }
    let caps = match h.pid {
        p if p < 0 => return Err(Errno::EINVAL),
        0 => t.creds.caps,
        p => {
            let tid = t.lookup_pid(p).ok_or(Errno::ESRCH)?;
            let handle = t.kernel.tree().tasks.get(&tid).cloned();
            let handle = handle.ok_or(Errno::ESRCH)?;
            let view = handle.view.lock().unwrap();
            view.as_ref().map(|v| v.creds.caps).ok_or(Errno::ESRCH)?
        }
    };
    let half = |s: CapSet, i: usize| (s.0 >> (32 * i)) as u32;
    let out: Vec<CapData> = (0..words)
        .map(|i| CapData {
            effective: half(caps.effective, i),
            permitted: half(caps.permitted, i),
            inheritable: half(caps.inheritable, i),
        })
        .collect();
    t.mm.write_bytes(data, out.as_bytes())?;
    Ok(0)
}

/// capset(2): only the caller's own sets. The inheritable set may grow only within the
/// permitted set (unless CAP_SETPCAP) and never beyond the bounding set; the permitted set
/// may only shrink; the effective set must stay within the permitted one.
pub fn capset(t: &mut Task, hdr: UserAddr, data: UserAddr) -> SysResult {
    let (h, words) = cap_header(t, hdr)?;
    if h.pid != 0 && h.pid != t.vtid() {
        return Err(Errno::EPERM);
    }
    let bytes =
        t.mm.read_bytes(data, words * std::mem::size_of::<CapData>())?;
    let mut sets = [CapSet::EMPTY; 3];
    for (i, chunk) in bytes
        .chunks_exact(std::mem::size_of::<CapData>())
        .enumerate()
    {
        let d = CapData::read_from_bytes(chunk).map_err(|_| Errno::EFAULT)?;
        let parts = [d.effective, d.permitted, d.inheritable];
        for (set, part) in sets.iter_mut().zip(parts) {
            set.0 |= u64::from(part) << (32 * i);
        }
    }
    let [effective, permitted, inheritable] = sets.map(CapSet::truncated);
    let old = &t.creds.caps;
    if !inheritable.is_subset_of(old.inheritable.union(old.permitted))
        && !t.creds.has_cap(cap::SETPCAP)
    {
        return Err(Errno::EPERM);
    }
    if !inheritable.is_subset_of(old.inheritable.union(old.bounding))
        || !permitted.is_subset_of(old.permitted)
        || !effective.is_subset_of(permitted)
    {
        return Err(Errno::EPERM);
    }
    let mut new = t.creds.clone();
    new.caps.effective = effective;
    new.caps.permitted = permitted;
    new.caps.inheritable = inheritable;
    new.caps.ambient = new.caps.ambient.intersect(permitted).intersect(inheritable);
    commit(t, new);
    Ok(0)
}

/// A capability number argument of prctl(2), EINVAL when Linux does not know it.
fn cap_arg(v: u64) -> Result<u32, Errno> {
    if CapSet::valid(v) {
        Ok(v as u32)
    } else {
        Err(Errno::EINVAL)
    }
}

/// The capability options of prctl(2) (`PR_CAPBSET_*`, `PR_CAP_AMBIENT`, keepcaps,
/// securebits); `None` for other options.
pub fn prctl_caps(t: &mut Task, option: i32, args: [u64; 4]) -> Option<SysResult> {
    let [arg2, arg3, arg4, arg5] = args;
    let c = t.creds.clone();
    let result = match option {
        libc::PR_CAPBSET_READ => cap_arg(arg2).map(|n| u64::from(c.caps.bounding.has(n))),
        libc::PR_CAPBSET_DROP => {
            if !c.has_cap(cap::SETPCAP) {
                return Some(Err(Errno::EPERM));
            }
            cap_arg(arg2).map(|n| {
                let mut new = c.clone();
                new.caps.bounding = new.caps.bounding.without(n);
                commit(t, new);
                0
            })
        }
        libc::PR_GET_KEEPCAPS => Ok(u64::from(c.securebits & secbit::KEEP_CAPS != 0)),
        libc::PR_SET_KEEPCAPS => {
            if arg2 > 1 {
                Err(Errno::EINVAL)
            } else if c.securebits & secbit::KEEP_CAPS_LOCKED != 0 {
                Err(Errno::EPERM)
            } else {
                let mut new = c.clone();
                new.securebits &= !secbit::KEEP_CAPS;
                if arg2 == 1 {
                    new.securebits |= secbit::KEEP_CAPS;
                }
                commit(t, new);
                Ok(0)
            }
        }
        libc::PR_GET_SECUREBITS => Ok(c.securebits.into()),
        libc::PR_SET_SECUREBITS => set_securebits(t, arg2),
        libc::PR_CAP_AMBIENT => cap_ambient(t, arg2, arg3, arg4 | arg5),
        _ => return None,
    };
    Some(result)
}

/// `PR_SET_SECUREBITS`: needs CAP_SETPCAP; a locked bit may not change and a lock may not
/// be released.
fn set_securebits(t: &mut Task, bits: u64) -> SysResult {
    let old = t.creds.securebits;
    let unknown = bits & !u64::from(secbit::ALL_BITS | secbit::ALL_LOCKS) != 0;
    let bits = bits as u32;
    let locked = (old & secbit::ALL_LOCKS) >> 1;
    if locked & (old ^ bits) != 0
        || old & secbit::ALL_LOCKS & !bits != 0
        || unknown
        || !t.creds.has_cap(cap::SETPCAP)
    {
        return Err(Errno::EPERM);
    }
    let mut new = t.creds.clone();
    new.securebits = bits;
    commit(t, new);
    Ok(0)
}

/// `PR_CAP_AMBIENT`: a capability may be raised into the ambient set only while it is both
/// permitted and inheritable.
fn cap_ambient(t: &mut Task, op: u64, capnr: u64, rest: u64) -> SysResult {
    let mut new = t.creds.clone();
    if op == libc::PR_CAP_AMBIENT_CLEAR_ALL as u64 {
        if capnr | rest != 0 {
            return Err(Errno::EINVAL);
        }
        new.caps.ambient = CapSet::EMPTY;
        commit(t, new);
        return Ok(0);
    }
    if rest != 0 {
        return Err(Errno::EINVAL);
    }
    let n = cap_arg(capnr)?;
    let caps = new.caps;
    match op as i32 {
        libc::PR_CAP_AMBIENT_IS_SET => return Ok(caps.ambient.has(n).into()),
        libc::PR_CAP_AMBIENT_RAISE => {
            if !caps.permitted.has(n)
                || !caps.inheritable.has(n)
                || new.securebits & secbit::NO_CAP_AMBIENT_RAISE != 0
            {
                return Err(Errno::EPERM);
            }
            new.caps.ambient = caps.ambient.with(n);
        }
        libc::PR_CAP_AMBIENT_LOWER => new.caps.ambient = caps.ambient.without(n),
        _ => return Err(Errno::EINVAL),
    }
    commit(t, new);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setre_follows_linux() {
        // An unprivileged swap of real and effective IDs is allowed; the saved ID follows.
        assert_eq!(setre([1, 2, 3], 2, 1, false), Ok([2, 1, 1]));
        // The real ID may not become the saved one without the capability.
        assert_eq!(setre([1, 2, 3], 3, UNCHANGED, false), Err(Errno::EPERM));
        // Setting the effective ID to the real one leaves the saved ID.
        assert_eq!(setre([1, 2, 3], UNCHANGED, 1, false), Ok([1, 1, 3]));
        assert_eq!(setre([0, 0, 0], 5, 6, true), Ok([5, 6, 6]));
    }

    #[test]
    fn setres_allows_only_current_ids_unprivileged() {
        assert_eq!(setres([1, 2, 3], [3, 1, 2], false), Ok([3, 1, 2]));
        assert_eq!(
            setres([1, 2, 3], [4, UNCHANGED, UNCHANGED], false),
            Err(Errno::EPERM)
        );
        assert_eq!(
            setres([1, 2, 3], [UNCHANGED, 9, UNCHANGED], true),
            Ok([1, 9, 3])
        );
    }
}
