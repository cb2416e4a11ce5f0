//! The IPv4 multicast socket options of datagram and raw sockets (`IP_MULTICAST_IF`,
//! `IP_MULTICAST_TTL`, `IP_MULTICAST_LOOP`, `IP_MULTICAST_ALL`, `IP_ADD_MEMBERSHIP`,
//! `IP_DROP_MEMBERSHIP`), validated as Linux validates them and kept in the socket's
//! [`Entry`] options. One entry point each for setsockopt and getsockopt, which UDP
//! ([`super::inet`]) and raw ([`super::raw`]) sockets call first.
//!
//! The sentry's UDP demultiplexer ([`super::udp`]) delivers by these memberships.

use smoltcp::wire::{IpAddress, Ipv4Address};

use super::config::LOOPBACK_INDEX;
use super::inet::int;
use super::stack::{Entry, Inner};
use crate::abi::Errno;

/// `IP_MULTICAST_ALL` (not in the libc crate for every target).
const IP_MULTICAST_ALL: i32 = 49;
/// Linux's `igmp_max_memberships`.
const MAX_MEMBERSHIPS: usize = 20;
/// Where the memberships are kept in the entry's options: (group, ifindex) pairs.
const MEMBERSHIPS: (i32, i32) = (libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP);

/// An option's integer as Linux's IPv4 options read it: an int, or one byte when shorter.
fn ip_int(value: &[u8]) -> Result<i32, Errno> {
    match value.len() {
        0 => Err(Errno::EINVAL),
        1..=3 => Ok(i32::from(value[0])),
        _ => Ok(i32::from_ne_bytes(value[..4].try_into().expect("4 bytes"))),
    }
}

fn v4(b: &[u8]) -> Ipv4Address {
    Ipv4Address::new(b[0], b[1], b[2], b[3])
}

/// `ip_mreqn` as Linux reads an `in_addr`, `ip_mreq` or `ip_mreqn` of `value`'s length:
/// (multiaddr, address, ifindex).
fn mreqn(value: &[u8]) -> (Ipv4Address, Ipv4Address, i32) {
    let zero = Ipv4Address::UNSPECIFIED;
    match value.len() {
        n if n >= 12 => (
            v4(&value[0..4]),
            v4(&value[4..8]),
            i32::from_ne_bytes(value[8..12].try_into().expect("4 bytes")),
        ),
        n if n >= 8 => (v4(&value[0..4]), v4(&value[4..8]), 0),
        _ => (zero, v4(&value[0..4]), 0),
    }
}

/// Whether `index` names one of the sandbox's interfaces.
fn has_index(g: &Inner, index: i32) -> bool {
    index == LOOPBACK_INDEX || g.link_index == Some(index)
}

/// The interface holding our address `addr`.
fn index_of(g: &Inner, addr: Ipv4Address) -> Option<i32> {
    let ip = IpAddress::Ipv4(addr);
    if !g.is_own(ip) {
        return None;
    }
    if addr.is_loopback() {
        Some(LOOPBACK_INDEX)
    } else {
        g.link_index
    }
}

fn memberships(e: &Entry) -> Vec<(Ipv4Address, i32)> {
    e.options.get(&MEMBERSHIPS).map_or_else(Vec::new, |v| {
        v.chunks_exact(8)
            .map(|c| {
                (
                    v4(&c[..4]),
                    i32::from_ne_bytes(c[4..8].try_into().expect("4 bytes")),
                )
            })
            .collect()
    })
}

fn set_memberships(e: &mut Entry, list: &[(Ipv4Address, i32)]) {
    let mut v = Vec::with_capacity(list.len() * 8);
    for (group, index) in list {
        v.extend_from_slice(&group.octets());
        v.extend_from_slice(&index.to_ne_bytes());
    }
    e.options.insert(MEMBERSHIPS, v);
}

/// The interface IP_MULTICAST_IF names (`None`: not set).
pub fn interface(e: &Entry) -> Option<i32> {
    let v = e.options.get(&(libc::IPPROTO_IP, libc::IP_MULTICAST_IF))?;
    Some(i32::from_ne_bytes(v.get(4..8)?.try_into().ok()?))
}

/// Whether the entry joined `group` on interface `index`.
pub fn is_member(e: &Entry, group: Ipv4Address, index: i32) -> bool {
    e.options.contains_key(&MEMBERSHIPS) && memberships(e).contains(&(group, index))
}

/// IP_MULTICAST_ALL (on by default): the socket also hears the groups other sockets
/// joined.
pub fn all(e: &Entry) -> bool {
    e.options
        .get(&(libc::IPPROTO_IP, IP_MULTICAST_ALL))
        .is_none_or(|v| v.iter().any(|&b| b != 0))
}

/// IP_MULTICAST_TTL (1 by default).
pub fn ttl(e: &Entry) -> u8 {
    e.options
        .get(&(libc::IPPROTO_IP, libc::IP_MULTICAST_TTL))
        .and_then(|v| v.get(..4))
        .map_or(1, |v| {
            i32::from_ne_bytes(v.try_into().expect("4 bytes")) as u8
        })
}

/// IP_MULTICAST_LOOP (on by default): the host's own sockets get what it sends to a group.
pub fn looped(e: &Entry) -> bool {
    e.options
        .get(&(libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP))
        .is_none_or(|v| v.iter().any(|&b| b != 0))
}

/// setsockopt at `IPPROTO_IP` for entry `id`: `None` when `name` is not a multicast option.
pub fn set(g: &mut Inner, id: u64, name: i32, value: &[u8]) -> Option<Result<(), Errno>> {
    let r = match name {
        libc::IP_MULTICAST_IF => set_if(g, id, value),
        libc::IP_MULTICAST_TTL => ip_int(value).and_then(|v| {
            let v = if v == -1 { 1 } else { v };
            if !(0..=255).contains(&v) {
                return Err(Errno::EINVAL);
            }
            store(g, id, name, v);
            Ok(())
        }),
        libc::IP_MULTICAST_LOOP | IP_MULTICAST_ALL => ip_int(value).map(|v| {
            store(g, id, name, i32::from(v != 0));
        }),
        libc::IP_ADD_MEMBERSHIP | libc::IP_DROP_MEMBERSHIP => {
            membership(g, id, name == libc::IP_ADD_MEMBERSHIP, value)
        }
        _ => return None,
    };
    Some(r)
}

fn store(g: &mut Inner, id: u64, name: i32, v: i32) {
    if let Some(e) = g.entries.get_mut(&id) {
        e.options.insert((libc::IPPROTO_IP, name), int(v));
    }
}

fn set_if(g: &mut Inner, id: u64, value: &[u8]) -> Result<(), Errno> {
    if value.len() < 4 {
        return Err(Errno::EINVAL);
    }
    let (_, addr, mut index) = mreqn(value);
    if index == 0 {
        if addr.is_unspecified() {
            if let Some(e) = g.entries.get_mut(&id) {
                e.options.remove(&(libc::IPPROTO_IP, libc::IP_MULTICAST_IF));
            }
            return Ok(());
        }
        index = index_of(g, addr).ok_or(Errno::EADDRNOTAVAIL)?;
    } else if !has_index(g, index) {
        return Err(Errno::EADDRNOTAVAIL);
    }
    let mut v = addr.octets().to_vec();
    v.extend_from_slice(&index.to_ne_bytes());
    if let Some(e) = g.entries.get_mut(&id) {
        e.options
            .insert((libc::IPPROTO_IP, libc::IP_MULTICAST_IF), v);
    }
    Ok(())
}

fn membership(g: &mut Inner, id: u64, add: bool, value: &[u8]) -> Result<(), Errno> {
    if value.len() < 8 {
        return Err(Errno::EINVAL);
    }
    let (group, addr, index) = mreqn(value);
    if !group.is_multicast() {
        return Err(Errno::EINVAL);
    }
    let index = if index != 0 {
        if !has_index(g, index) {
            return Err(Errno::ENODEV);
        }
        index
    } else if !addr.is_unspecified() {
        index_of(g, addr).ok_or(Errno::ENODEV)?
    } else {
        // By route: the link, or the loopback when there is none.
        g.link_index.unwrap_or(LOOPBACK_INDEX)
    };
    let Some(e) = g.entries.get_mut(&id) else {
        return Err(Errno::EINVAL);
    };
    let mut list = memberships(e);
    let at = list.iter().position(|&m| m == (group, index));
    match (add, at) {
        (true, Some(_)) => return Err(Errno::EADDRINUSE),
        (true, None) if list.len() >= MAX_MEMBERSHIPS => return Err(Errno::ENOBUFS),
        (true, None) => list.push((group, index)),
        (false, Some(i)) => drop(list.remove(i)),
        (false, None) => return Err(Errno::EADDRNOTAVAIL),
    }
    set_memberships(e, &list);
    Ok(())
}

/// getsockopt at `IPPROTO_IP`: `None` when `name` is not a multicast option.
pub fn get(e: &Entry, name: i32) -> Option<Result<Vec<u8>, Errno>> {
    let opt = |name: i32, default: i32| {
        Ok(e.options
            .get(&(libc::IPPROTO_IP, name))
            .cloned()
            .unwrap_or_else(|| int(default)))
    };
    Some(match name {
        // The interface's address only, as Linux answers (an in_addr).
        libc::IP_MULTICAST_IF => Ok(e
            .options
            .get(&(libc::IPPROTO_IP, name))
            .map_or_else(|| vec![0; 4], |v| v[..4].to_vec())),
        libc::IP_MULTICAST_TTL => opt(name, 1),
        libc::IP_MULTICAST_LOOP | IP_MULTICAST_ALL => opt(name, 1),
        libc::IP_ADD_MEMBERSHIP | libc::IP_DROP_MEMBERSHIP => Err(Errno::ENOPROTOOPT),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_linux_reads_them() {
        let mut v = vec![224, 0, 0, 1, 127, 0, 0, 1];
        assert_eq!(mreqn(&v).1, Ipv4Address::new(127, 0, 0, 1));
        v.extend_from_slice(&1i32.to_ne_bytes());
        assert_eq!(mreqn(&v).2, 1);
        assert_eq!(mreqn(&v[..4]).1, Ipv4Address::new(224, 0, 0, 1));
        assert_eq!(ip_int(&[7]), Ok(7));
        assert_eq!(ip_int(&[]), Err(Errno::EINVAL));
    }
}
