//! NUMA memory policies: set_mempolicy, get_mempolicy, mbind.
//!
//! The sandbox presents one memory node, node 0 (as `/sys/devices/system/node` and getcpu
//! do). Policies are checked and recorded as Linux does, with node masks reduced to the nodes
//! that exist, and read back; with a single node every policy places memory on node 0, which
//! is where the sentry's memory file is anyway.

use crate::abi::{Errno, SysResult, PAGE_SIZE};
use crate::auth::cap;
use crate::kernel::Task;
use crate::mm::usermem::UserAddr;
use crate::mm::NumaPolicy;

const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_BIND: i32 = 2;
const MPOL_INTERLEAVE: i32 = 3;
const MPOL_LOCAL: i32 = 4;
const MPOL_PREFERRED_MANY: i32 = 5;
const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;
/// One past the last mode.
const MPOL_MAX: i32 = 7;

const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;
const MPOL_MODE_FLAGS: i32 = MPOL_F_NUMA_BALANCING | MPOL_F_RELATIVE_NODES | MPOL_F_STATIC_NODES;

/// get_mempolicy flags.
const MPOL_F_NODE: u64 = 1;
const MPOL_F_ADDR: u64 = 2;
const MPOL_F_MEMS_ALLOWED: u64 = 4;

/// mbind flags.
const MPOL_MF_STRICT: u64 = 1;
const MPOL_MF_MOVE: u64 = 2;
const MPOL_MF_MOVE_ALL: u64 = 4;

/// The nodes that exist: node 0 only.
const ONLINE_NODES: u64 = 1;
/// Linux's nr_node_ids here.
const NR_NODE_IDS: u64 = 1;
/// The bits of a node mask Linux reads at most (MAX_NUMNODES of a common configuration);
/// bits above must be clear.
const MAX_NUMNODES: u64 = 1024;

/// Splits `mode` into mode and mode flags and checks them (Linux's sanitize_mpol_flags).
fn split_mode(mode: i32) -> Result<(i32, i32), Errno> {
    let flags = mode & MPOL_MODE_FLAGS;
    let mode = mode & !MPOL_MODE_FLAGS;
    if !(0..MPOL_MAX).contains(&mode)
        || (flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0)
        || (flags & MPOL_F_NUMA_BALANCING != 0 && mode != MPOL_BIND && mode != MPOL_PREFERRED_MANY)
    {
        return Err(Errno::EINVAL);
    }
    Ok((mode, flags))
}

/// A node mask as read from the application: its first 64 nodes, and whether any node at
/// all was named.
#[derive(Clone, Copy)]
struct UserNodes {
    low: u64,
    any: bool,
}

/// Reads a user node mask of `maxnode` bits, of which Linux uses the first `maxnode - 1`
/// (its get_nodes).
fn read_nodes(t: &Task, nmask: UserAddr, maxnode: u64) -> Result<UserNodes, Errno> {
    let bits = maxnode.wrapping_sub(1);
    if bits == 0 || nmask.is_null() {
        return Ok(UserNodes { low: 0, any: false });
    }
    if bits > PAGE_SIZE * 8 {
        return Err(Errno::EINVAL);
    }
    let words = bits.div_ceil(64) as usize;
    let mut mask: Vec<u64> = t.mm.read_slice(nmask, words)?;
    if !bits.is_multiple_of(64) {
        if let Some(last) = mask.last_mut() {
            *last &= (1u64 << (bits % 64)) - 1;
        }
    }
    // Nodes beyond what the kernel can name are an error.
    if mask
        .iter()
        .enumerate()
        .any(|(w, &m)| m != 0 && (w as u64 + 1) * 64 > MAX_NUMNODES)
    {
        return Err(Errno::EINVAL);
    }
    Ok(UserNodes {
        low: mask.first().copied().unwrap_or(0),
        any: mask.iter().any(|&m| m != 0),
    })
}

/// Builds the policy `mode` with `flags` over the user's `nodes` (Linux's mpol_new and
/// mpol_set_nodemask): EINVAL where Linux refuses it.
fn new_policy(mode: i32, flags: i32, nodes: UserNodes) -> Result<NumaPolicy, Errno> {
    let relative = flags & MPOL_F_RELATIVE_NODES != 0;
    let user_mask = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0;
    let mode = match mode {
        MPOL_DEFAULT if nodes.any => return Err(Errno::EINVAL),
        MPOL_DEFAULT => return Ok(NumaPolicy::default()),
        MPOL_PREFERRED if !nodes.any && user_mask => return Err(Errno::EINVAL),
        MPOL_PREFERRED if !nodes.any => MPOL_LOCAL,
        MPOL_LOCAL if nodes.any || user_mask => return Err(Errno::EINVAL),
        MPOL_LOCAL => MPOL_LOCAL,
        _ if !nodes.any => return Err(Errno::EINVAL),
        m => m,
    };
    if mode == MPOL_LOCAL {
        return Ok(NumaPolicy {
            mode: MPOL_LOCAL | flags,
            nodes: 0,
        });
    }
    // The nodes the policy may use: relative masks fold onto the nodes that exist, the
    // others are intersected with them; nothing left is an error.
    let usable = if relative {
        ONLINE_NODES
    } else {
        nodes.low & ONLINE_NODES
    };
    if usable == 0 {
        return Err(Errno::EINVAL);
    }
    Ok(NumaPolicy {
        mode: mode | flags,
        // With MPOL_F_STATIC_NODES or MPOL_F_RELATIVE_NODES Linux reports the mask as given
        // (here its first 64 nodes).
        nodes: if user_mask { nodes.low } else { usable },
    })
}

/// Writes `nodes` as a mask of `maxnode - 1` bits, rounded up to whole words (Linux's
/// copy_nodes_to_user). Masks longer than set_mempolicy accepts are EINVAL rather than a
/// clear of an arbitrarily large user range.
fn write_nodes(t: &Task, nmask: UserAddr, maxnode: u64, nodes: u64) -> Result<(), Errno> {
    let bits = maxnode.saturating_sub(1);
    if bits > PAGE_SIZE * 8 {
        return Err(Errno::EINVAL);
    }
    let words = bits.div_ceil(64) as usize;
    if words == 0 {
        return Ok(());
    }
    let mut out = vec![0u8; words * 8];
    out[..8].copy_from_slice(&nodes.to_ne_bytes());
    t.mm.write_bytes(nmask, &out)
}

/// set_mempolicy(2): the calling thread's policy, inherited by its children.
pub fn set_mempolicy(t: &mut Task, mode: i32, nmask: UserAddr, maxnode: u64) -> SysResult {
    let (mode, flags) = split_mode(mode)?;
    let nodes = read_nodes(t, nmask, maxnode)?;
    let policy = new_policy(mode, flags, nodes)?;
    *t.handle.mempolicy.lock().unwrap() = policy;
    Ok(0)
}

/// get_mempolicy(2)
pub fn get_mempolicy(
    t: &mut Task,
    policy: UserAddr,
    nmask: UserAddr,
    maxnode: u64,
    addr: UserAddr,
    flags: u64,
) -> SysResult {
    if flags & !(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) != 0 {
        return Err(Errno::EINVAL);
    }
    if !nmask.is_null() && maxnode < NR_NODE_IDS {
        return Err(Errno::EINVAL);
    }
    let (value, nodes) = if flags & MPOL_F_MEMS_ALLOWED != 0 {
        if flags & (MPOL_F_NODE | MPOL_F_ADDR) != 0 {
            return Err(Errno::EINVAL);
        }
        (0, ONLINE_NODES)
    } else {
        let own = *t.handle.mempolicy.lock().unwrap();
        let pol = if flags & MPOL_F_ADDR != 0 {
            t.mm.numa_policy(addr.0)?
        } else if !addr.is_null() {
            return Err(Errno::EINVAL);
        } else {
            own
        };
        let mode = pol.mode & !MPOL_MODE_FLAGS;
        let value = if flags & MPOL_F_NODE != 0 {
            if flags & MPOL_F_ADDR != 0 {
                // The node of the page at `addr`: every page is on node 0.
                0
            } else if mode == MPOL_INTERLEAVE || mode == MPOL_WEIGHTED_INTERLEAVE {
                // The next node an interleaved allocation uses: the only one.
                0
            } else {
                return Err(Errno::EINVAL);
            }
        } else {
            pol.mode
        };
        (value, pol.nodes)
    };
    if !policy.is_null() {
        t.mm.write_obj(policy, &value)?;
    }
    if !nmask.is_null() {
        write_nodes(t, nmask, maxnode, nodes)?;
    }
    Ok(0)
}

/// mbind(2): the policy of a range of mappings.
pub fn mbind(
    t: &mut Task,
    addr: UserAddr,
    len: u64,
    mode: i32,
    nmask: UserAddr,
    maxnode: u64,
    flags: u32,
) -> SysResult {
    let (mode, mode_flags) = split_mode(mode)?;
    let nodes = read_nodes(t, nmask, maxnode)?;
    let flags = u64::from(flags);
    if flags & !(MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_MF_MOVE_ALL != 0 && !t.creds.has_cap(cap::SYS_NICE) {
        return Err(Errno::EPERM);
    }
    if !addr.0.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let policy = new_policy(mode, mode_flags, nodes)?;
    // Every page is on the one node, so nothing ever needs moving and MPOL_MF_STRICT never
    // finds a misplaced page.
    t.mm.set_numa_policy(addr.0, len, policy)?;
    Ok(0)
}
