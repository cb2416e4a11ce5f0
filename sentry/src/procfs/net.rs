//! `/proc/net` and `/proc/sys/net`: the kernel's network namespace in Linux's text formats.
//!
//! Every `/proc/net` file shows the reader's network namespace. Links, addresses and routes
//! come from the namespace's configuration (the same view its NETLINK_ROUTE sockets give);
//! sockets from the namespace's live listings; `snmp` and `netstat` from its stack's
//! counters ([`crate::net::mib`], zeros before the stack starts). The sentry keeps no
//! per-link packet counters, so `dev` shows zeros. `/proc/sys/net` holds the values Linux
//! boots with that programs read (buffer sizes, port range, TCP timers), read-only, except
//! `ipv4/conf/*/{accept_local,route_localnet}` and `ipv4/{ip_forward,tcp_recovery,tcp_sack}`,
//! which keep what root writes without acting on it (the sentry's stack forwards nothing
//! between links, and its TCP's loss recovery and SACK use are its own).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, OnceLock, Weak};

use crate::abi::Errno;
use crate::fs::synth::{Applier, Generator, SynthControl, SynthDir, SynthFile, SynthFs};
use crate::kernel::Kernel;
use crate::net::config::Network;
use crate::net::netlink;
use crate::net::stack::Proto;
use crate::net::Namespace;
use crate::vfs::Inode;

/// Width Linux pads each line of `/proc/net/tcp` to (`TMPSZ - 1`).
const TCP_LINE: usize = 149;
/// Width Linux pads each line of `/proc/net/udp` and `/proc/net/route` to.
const UDP_LINE: usize = 127;
/// `__SO_ACCEPTCON`: a listening socket in `/proc/net/unix`.
const SO_ACCEPTCON: u32 = 1 << 16;

fn padded(out: &mut String, line: &str, width: usize) {
    let _ = writeln!(out, "{line:<width$}");
}

/// `/proc/net/dev`.
fn dev(ns: &Namespace) -> String {
    let mut out = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets \
         errs drop fifo colls carrier compressed\n",
    );
    for l in netlink::links(ns) {
        let _ = writeln!(
            out,
            "{:>6}:{:>8} {:>7} {:>4} {:>4} {:>4} {:>5} {:>10} {:>9} {:>8} {:>7} {:>4} {:>4} {:>4} \
             {:>5} {:>7} {:>10}",
            l.name, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        );
    }
    out
}

/// `/proc/net/route`: the main table's IPv4 routes.
fn route(ns: &Namespace) -> String {
    let mut out = String::new();
    padded(
        &mut out,
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
        UDP_LINE,
    );
    for r in netlink::ipv4_main_routes(ns) {
        let mask = u32::MAX.checked_shl(32 - u32::from(r.prefix)).unwrap_or(0);
        // RTF_UP, RTF_GATEWAY, RTF_HOST.
        let mut flags = 1;
        if r.gateway.is_some() {
            flags |= 2;
        }
        if r.prefix == 32 {
            flags |= 4;
        }
        // Linux prints the network-order words as host integers.
        let word = |a: std::net::Ipv4Addr| u32::from_ne_bytes(a.octets());
        let line = format!(
            "{}\t{:08X}\t{:08X}\t{:04X}\t0\t0\t{}\t{:08X}\t0\t0\t0",
            r.link,
            word(r.dst),
            r.gateway.map_or(0, word),
            flags,
            r.metric,
            u32::from_ne_bytes(mask.to_be_bytes()),
        );
        padded(&mut out, &line, UDP_LINE);
    }
    out
}

/// `/proc/net/if_inet6`.
fn if_inet6(ns: &Namespace) -> String {
    let mut out = String::new();
    for l in netlink::links(ns) {
        for a in &l.addrs {
            let IpAddr::V6(ip) = a.ip else { continue };
            // IPV6_ADDR_LOOPBACK, IPV6_ADDR_LINKLOCAL, global.
            let scope = if ip == Ipv6Addr::LOCALHOST {
                0x10
            } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
                0x20
            } else {
                0
            };
            let hex: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(
                out,
                "{hex} {:02x} {:02x} {scope:02x} 80 {:>8}",
                l.index, a.prefix, l.name
            );
        }
    }
    out
}

/// `/proc/net/tcp`, `udp` (AF_INET sockets, lines padded as Linux pads them), `tcp6`, `udp6`
/// (AF_INET6 sockets, unpadded).
fn inet(ns: &Namespace, proto: Proto, family: i32) -> String {
    let v6 = family == libc::AF_INET6;
    let addr_head = if v6 {
        "local_address                         remote_address                        st"
    } else {
        "local_address rem_address   st"
    };
    let tail = match proto {
        Proto::Udp => " inode ref pointer drops",
        _ => " inode",
    };
    let sl = if proto == Proto::Udp && !v6 {
        "   sl  "
    } else {
        "  sl  "
    };
    let header =
        format!("{sl}{addr_head} tx_queue rx_queue tr tm->when retrnsmt   uid  timeout{tail}");
    let width = match (proto, v6) {
        (_, true) => 0,
        (Proto::Udp, false) => UDP_LINE,
        _ => TCP_LINE,
    };
    let mut out = String::new();
    padded(&mut out, &header, width);
    // The address as the kernel prints it: its 32-bit words, each in host byte order.
    let hex = |a: std::net::IpAddr| -> String {
        let octets = match a {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        octets
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .collect()
    };
    let sockets = ns.inet_sockets();
    let listed = sockets
        .iter()
        .filter(|s| s.proto == proto && s.family == family);
    for (i, s) in listed.enumerate() {
        let common = format!(
            "{}:{:04X} {}:{:04X} {:02X} {:08X}:{:08X} 00:00000000 00000000 {:>5} {:>8} {}",
            hex(s.local.0),
            s.local.1,
            hex(s.remote.0),
            s.remote.1,
            s.state,
            s.tx_queue,
            s.rx_queue,
            0,
            0,
            s.ino
        );
        let line = match proto {
            Proto::Udp => format!("{i:>5}: {common} 2 0000000000000000 0"),
            _ => format!("{i:>4}: {common} 1 0000000000000000 100 0 0 10 0"),
        };
        padded(&mut out, &line, width);
    }
    out
}

/// `/proc/net/unix`.
fn unix(ns: &Namespace) -> String {
    let mut out = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
    for b in ns.unix_names.list() {
        let flags = if b.listening { SO_ACCEPTCON } else { 0 };
        // SS_UNCONNECTED, SS_CONNECTED.
        let st = if b.connected { 3 } else { 1 };
        let _ = write!(
            out,
            "0000000000000000: 00000002 00000000 {flags:08X} {:04X} {st:02X} {:>5}",
            b.sock_type, b.ino
        );
        match &b.path {
            Some(p) => {
                let _ = writeln!(out, " {}", String::from_utf8_lossy(p));
            }
            None => out.push('\n'),
        }
    }
    out
}

/// `/proc/net/snmp`: Linux's SNMP MIB lines (names, then values) for IPv4, ICMP, TCP
/// (both families, as Linux) and UDP over IPv4, from the stack's counters.
fn snmp(ns: &Namespace) -> String {
    let m = ns.counters();
    let mut out = String::new();
    let mut lines = |name: &str, fields: &[(&str, i64)]| {
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        let values: Vec<String> = fields.iter().map(|f| f.1.to_string()).collect();
        let _ = writeln!(out, "{name}: {}", names.join(" "));
        let _ = writeln!(out, "{name}: {}", values.join(" "));
    };
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let ip = &m.ip;
    lines(
        "Ip",
        &[
            // Not a router (the stack forwards nothing between links).
            ("Forwarding", 2),
            ("DefaultTTL", 64),
            ("InReceives", n(ip.in_receives)),
            ("InHdrErrors", 0),
            ("InAddrErrors", 0),
            ("ForwDatagrams", 0),
            ("InUnknownProtos", 0),
            ("InDiscards", 0),
            ("InDelivers", n(ip.in_delivers)),
            ("OutRequests", n(ip.out_requests)),
            ("OutDiscards", 0),
            ("OutNoRoutes", 0),
            ("ReasmTimeout", 0),
            ("ReasmReqds", 0),
            ("ReasmOKs", 0),
            ("ReasmFails", 0),
            ("FragOKs", 0),
            ("FragFails", 0),
            ("FragCreates", 0),
            ("OutTransmits", n(ip.out_requests)),
        ],
    );
    let of = |types: &std::collections::BTreeMap<u8, u64>, ty: u8| {
        n(types.get(&ty).copied().unwrap_or(0))
    };
    let (i, o) = (&m.icmp.in_types, &m.icmp.out_types);
    let sum = |types: &std::collections::BTreeMap<u8, u64>| n(types.values().sum());
    lines(
        "Icmp",
        &[
            ("InMsgs", sum(i)),
            ("InErrors", 0),
            ("InCsumErrors", 0),
            ("InDestUnreachs", of(i, 3)),
            ("InTimeExcds", of(i, 11)),
            ("InParmProbs", of(i, 12)),
            ("InSrcQuenchs", of(i, 4)),
            ("InRedirects", of(i, 5)),
            ("InEchos", of(i, 8)),
            ("InEchoReps", of(i, 0)),
            ("InTimestamps", of(i, 13)),
            ("InTimestampReps", of(i, 14)),
            ("InAddrMasks", of(i, 17)),
            ("InAddrMaskReps", of(i, 18)),
            ("OutMsgs", sum(o)),
            ("OutErrors", 0),
            ("OutRateLimitGlobal", 0),
            ("OutRateLimitHost", 0),
            ("OutDestUnreachs", of(o, 3)),
            ("OutTimeExcds", of(o, 11)),
            ("OutParmProbs", of(o, 12)),
            ("OutSrcQuenchs", of(o, 4)),
            ("OutRedirects", of(o, 5)),
            ("OutEchos", of(o, 8)),
            ("OutEchoReps", of(o, 0)),
            ("OutTimestamps", of(o, 13)),
            ("OutTimestampReps", of(o, 14)),
            ("OutAddrMasks", of(o, 17)),
            ("OutAddrMaskReps", of(o, 18)),
        ],
    );
    // IcmpMsg: the types seen, received ones first, as Linux (absent when none).
    let msgs: Vec<(String, i64)> = i
        .iter()
        .map(|(t, c)| (format!("InType{t}"), n(*c)))
        .chain(o.iter().map(|(t, c)| (format!("OutType{t}"), n(*c))))
        .collect();
    for chunk in msgs.chunks(16) {
        let fields: Vec<(&str, i64)> = chunk.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        lines("IcmpMsg", &fields);
    }
    let t = &m.tcp;
    lines(
        "Tcp",
        &[
            ("RtoAlgorithm", 1),
            ("RtoMin", 200),
            ("RtoMax", 120_000),
            ("MaxConn", -1),
            ("ActiveOpens", n(t.active_opens)),
            ("PassiveOpens", n(t.passive_opens)),
            ("AttemptFails", n(t.attempt_fails)),
            ("EstabResets", n(t.estab_resets)),
            ("CurrEstab", n(m.curr_estab)),
            ("InSegs", n(t.in_segs)),
            ("OutSegs", n(t.out_segs)),
            ("RetransSegs", 0),
            ("InErrs", 0),
            ("OutRsts", n(t.out_rsts)),
            ("InCsumErrors", 0),
        ],
    );
    let u = &m.udp;
    let udp_fields = |u: &crate::net::mib::Udp| {
        vec![
            ("InDatagrams", n(u.in_datagrams)),
            ("NoPorts", n(u.no_ports)),
            ("InErrors", n(u.in_errors)),
            ("OutDatagrams", n(u.out_datagrams)),
            ("RcvbufErrors", n(u.rcvbuf_errors)),
            ("SndbufErrors", 0),
            ("InCsumErrors", 0),
            ("IgnoredMulti", n(u.ignored_multi)),
            ("MemErrors", 0),
        ]
    };
    lines("Udp", &udp_fields(u));
    // The sentry has no UDP-Lite (socket(2) refuses IPPROTO_UDPLITE).
    lines("UdpLite", &udp_fields(&crate::net::mib::Udp::default()));
    out
}

/// The `TcpExt:` counters Linux lists, in its order; the stack counts `TCPOrigDataSent`
/// (segments with data, retransmissions included), the others it does not see (0).
const TCP_EXT: &str = "SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts \
    PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled \
    TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait \
    DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits \
    TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder \
    TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo \
    TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans \
    TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery TCPRenoRecoveryFail \
    TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent \
    TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory \
    TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed TCPMemoryPressures \
    TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld TCPDSACKIgnoredNoUndo \
    TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPSackShifted \
    TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop \
    TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow TCPReqQFullDoCookies \
    TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue TCPOFODrop TCPOFOMerge \
    TCPChallengeACK TCPSYNChallenge TCPFastOpenActive TCPFastOpenActiveFail \
    TCPFastOpenPassive TCPFastOpenPassiveFail TCPFastOpenListenOverflow \
    TCPFastOpenCookieReqd TCPFastOpenBlackhole TCPSpuriousRtxHostQueues BusyPollRxPackets \
    TCPAutoCorking TCPFromZeroWindowAdv TCPToZeroWindowAdv TCPWantZeroWindowAdv \
    TCPSynRetrans TCPOrigDataSent TCPHystartTrainDetect TCPHystartTrainCwnd \
    TCPHystartDelayDetect TCPHystartDelayCwnd TCPACKSkippedSynRecv TCPACKSkippedPAWS \
    TCPACKSkippedSeq TCPACKSkippedFinWait2 TCPACKSkippedTimeWait TCPACKSkippedChallenge \
    TCPWinProbe TCPKeepAlive TCPMTUPFail TCPMTUPSuccess TCPDelivered TCPDeliveredCE \
    TCPAckCompressed TCPZeroWindowDrop TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey \
    TcpTimeoutRehash TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious \
    TCPMigrateReqSuccess TCPMigrateReqFailure TCPPLBRehash";

/// The `IpExt:` counters Linux lists; the stack counts the IPv4 octets each way.
const IP_EXT: &str = "InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts \
    OutBcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets \
    InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps";

/// `/proc/net/netstat`: the `TcpExt:` and `IpExt:` lines.
fn netstat(ns: &Namespace) -> String {
    let m = ns.counters();
    let mut out = String::new();
    let mut lines = |name: &str, names: &str, value: &dyn Fn(&str) -> u64| {
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<String> = names.iter().map(|f| value(f).to_string()).collect();
        let _ = writeln!(out, "{name}: {}", names.join(" "));
        let _ = writeln!(out, "{name}: {}", values.join(" "));
    };
    lines("TcpExt", TCP_EXT, &|f| match f {
        "TCPOrigDataSent" => m.tcp.data_segs_out,
        _ => 0,
    });
    lines("IpExt", IP_EXT, &|f| match f {
        "InOctets" => m.ip.in_octets,
        "OutOctets" => m.ip.out_octets,
        _ => 0,
    });
    out
}

/// `/proc/net`: each file shows the reader's network namespace, as Linux's
/// `/proc/self/net`.
pub fn net_dir(fs: &Arc<SynthFs>, kernel: &Weak<Kernel>) -> Arc<dyn Inode> {
    let f = |g: fn(&Namespace) -> String| -> Arc<dyn Inode> {
        let kernel = kernel.clone();
        let gen: Generator = Arc::new(move |cx| Ok(g(&**caller_net(&kernel, cx)?).into_bytes()));
        SynthFile::new(fs, 0o444, gen)
    };
    SynthDir::fixed(
        fs,
        vec![
            ("dev", f(dev)),
            ("if_inet6", f(if_inet6)),
            ("netstat", f(netstat)),
            ("route", f(route)),
            ("snmp", f(snmp)),
            ("tcp", f(|k| inet(k, Proto::Tcp, libc::AF_INET))),
            ("tcp6", f(|k| inet(k, Proto::Tcp, libc::AF_INET6))),
            ("udp", f(|k| inet(k, Proto::Udp, libc::AF_INET))),
            ("udp6", f(|k| inet(k, Proto::Udp, libc::AF_INET6))),
            ("unix", f(unix)),
        ],
    )
}

/// A directory entry: name and inode.
type Entry = (Vec<u8>, Arc<dyn Inode>);

/// `/proc/sys/net/ipv4/ip_local_port_range`: the stack's ephemeral ports, which root in the
/// sandbox may change ("LOW HIGH", as Linux: HIGH >= LOW >= 1024). With host networking the
/// host's ports are not the sandbox's to change: EACCES, as gVisor's hostinet.
fn local_port_range(fs: &Arc<SynthFs>, kernel: &Weak<Kernel>) -> Arc<dyn Inode> {
    let k = kernel.clone();
    let gen: Generator = Arc::new(move |cx| {
        let net = caller_net(&k, cx)?;
        let (lo, hi) = if matches!(net.network, Network::Host { .. }) {
            // The host's range is not read: Linux's default is shown.
            (32768, 60999)
        } else {
            net.inet().lock().port_range()
        };
        Ok(format!("{lo}\t{hi}\n").into_bytes())
    });
    let k = kernel.clone();
    let apply: Applier = Arc::new(move |cx, bytes| {
        let net = caller_net(&k, cx)?;
        if matches!(net.network, Network::Host { .. }) {
            return Err(Errno::EACCES);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Errno::EINVAL)?;
        let mut it = text.split_whitespace().map(|w| w.parse::<u16>());
        let (Some(Ok(lo)), Some(Ok(hi)), None) = (it.next(), it.next(), it.next()) else {
            return Err(Errno::EINVAL);
        };
        let result = net.inet().lock().set_port_range(lo, hi);
        result
    });
    SynthControl::new(fs, gen, apply)
}

/// The network namespace of the task reading or writing a file (the kernel's initial one
/// for the kernel's own reads).
fn caller_net(
    kernel: &Weak<Kernel>,
    cx: &crate::vfs::Caller,
) -> Result<Arc<crate::kernel::ns::NetNs>, Errno> {
    let k = super::kernel_for(kernel, cx)?;
    Ok(cx
        .task
        .and_then(|t| k.namespaces_of(t.tid))
        .map_or_else(|| k.net.clone(), |ns| ns.net))
}

/// `/proc/sys/net`.
/// A `conf` directory: one directory per link plus `all` and `default`, as Linux, each
/// holding what `files` makes. The links never change after boot: the directories are made
/// once, on first use, so that their inode numbers stay put.
fn per_link_dirs(
    fs: &Arc<SynthFs>,
    kernel: &Weak<Kernel>,
    files: impl Fn(&Arc<SynthFs>) -> Vec<(&'static str, Arc<dyn Inode>)> + Send + Sync + 'static,
) -> Arc<dyn Inode> {
    let dir_fs = fs.clone();
    let kernel = kernel.clone();
    let made: Arc<OnceLock<Vec<Entry>>> = Arc::default();
    SynthDir::new(
        fs,
        Arc::new(move |cx| {
            let k = super::kernel_for(&kernel, cx)?;
            let entries = made.get_or_init(|| {
                let mut names = vec!["all".to_string(), "default".to_string()];
                names.extend(netlink::links(&k.net).into_iter().map(|l| l.name));
                names
                    .into_iter()
                    .map(|n| {
                        let dir: Arc<dyn Inode> = SynthDir::fixed(&dir_fs, files(&dir_fs));
                        (n.into_bytes(), dir)
                    })
                    .collect()
            });
            Ok(entries.clone())
        }),
    )
}

pub fn sys_net_dir(fs: &Arc<SynthFs>, kernel: &Weak<Kernel>) -> Arc<dyn Inode> {
    let fixed = |s: &str| -> Arc<dyn Inode> { SynthFile::fixed(fs, format!("{s}\n")) };
    let core = SynthDir::fixed(
        fs,
        vec![
            ("rmem_default", fixed("212992")),
            ("rmem_max", fixed("212992")),
            ("somaxconn", fixed("4096")),
            ("wmem_default", fixed("212992")),
            ("wmem_max", fixed("212992")),
        ],
    );
    // `conf/{all,default,<link>}` with the two martian settings programs toggle
    // (accept_local, route_localnet): recorded, without effect (the sentry's stack drops no
    // martian packets).
    let ipv4_conf = per_link_dirs(fs, kernel, |fs| {
        vec![
            ("accept_local", SynthControl::setting(fs, "0\n")),
            ("forwarding", SynthFile::fixed(fs, "0\n")),
            ("route_localnet", SynthControl::setting(fs, "0\n")),
        ]
    });
    let ipv4 = SynthDir::fixed(
        fs,
        vec![
            ("conf", ipv4_conf),
            ("ip_default_ttl", fixed("64")),
            ("ip_forward", SynthControl::setting(fs, "0\n")),
            ("ip_local_port_range", local_port_range(fs, kernel)),
            ("ip_nonlocal_bind", fixed("0")),
            ("tcp_fin_timeout", fixed("60")),
            ("tcp_keepalive_intvl", fixed("75")),
            ("tcp_keepalive_probes", fixed("9")),
            ("tcp_keepalive_time", fixed("7200")),
            ("tcp_rmem", fixed("4096\t131072\t6291456")),
            ("tcp_recovery", SynthControl::setting(fs, "1\n")),
            ("tcp_sack", SynthControl::setting(fs, "1\n")),
            ("tcp_syn_retries", fixed("6")),
            ("tcp_synack_retries", fixed("5")),
            ("tcp_syncookies", fixed("1")),
            ("tcp_timestamps", fixed("1")),
            ("tcp_tw_reuse", fixed("2")),
            ("tcp_window_scaling", fixed("1")),
            ("tcp_wmem", fixed("4096\t16384\t4194304")),
        ],
    );
    let conf = per_link_dirs(fs, kernel, |fs| {
        vec![
            ("disable_ipv6", SynthFile::fixed(fs, "0\n")),
            ("forwarding", SynthFile::fixed(fs, "0\n")),
        ]
    });
    let ipv6 = SynthDir::fixed(
        fs,
        vec![
            ("auto_flowlabels", fixed("1")),
            ("bindv6only", fixed("0")),
            ("conf", conf),
            ("ip6frag_time", fixed("60")),
            ("ip_nonlocal_bind", fixed("0")),
        ],
    );
    SynthDir::fixed(fs, vec![("core", core), ("ipv4", ipv4), ("ipv6", ipv6)])
}
