//! cgroup v2 in the sandbox: `/sys/fs/cgroup` and `mount -t cgroup2` show the sentry's
//! hierarchy; a child cgroup with the pids controller refuses a fork past `pids.max` with
//! EAGAIN, `cgroup.procs` moves a process, `/proc/self/cgroup` names the path.
//!
//! Sandbox only: natively every cgroup2 mount is the host's one hierarchy, so the program
//! would create and limit cgroups of the machine running the tests. The expected lines are
//! Linux's answers (Documentation/admin-guide/cgroup-v2.rst, and gVisor's cgroup2 suite,
//! which holds them against Linux).

use runsc_rs_tests::{program_str, run_sandbox};

#[test]
fn cgroup2_hierarchy_limits_and_moves_processes() {
    let Some(p) = program_str("cgroup2") else {
        return;
    };
    let out = run_sandbox(&[&p], &[]);
    let text = out.stdout_text();
    assert_eq!(out.status, 0, "{text}{}", out.stderr_text());
    let expect = [
        "/sys/fs/cgroup is cgroup2: 1\n",
        "same mount again: errno 16\n",
        "cgroup.controllers: cpu memory pids|\n",
        "enable pids memory: 0 0\n",
        "enable bogus: 22\n",
        "mkdir: 0\n",
        "t/cgroup.type: domain|\n",
        "t/cgroup.events: populated 0|frozen 0|\n",
        "t/pids.max: max|\n",
        "cgroup.stat: nr_descendants 1|nr_dying_descendants 0|\n",
        "memory.max 100M: 0\n",
        "t/memory.max: 104857600|\n",
        "memory.max abc: 22\n",
        "pids.max 1: 0\n",
        "move child: 0\n",
        "t/cgroup.events: populated 1|frozen 0|\n",
        "rmdir busy: 16\n",
        "/proc/self/cgroup: 0::/t\n",
        "fork in t: errno 11\n",
        "child exit: 0\n",
        "t/pids.events: max 1|\n",
        "t/pids.current: 0|\n",
        "t/cgroup.procs: \n",
        "rmdir: 0\n",
        "umount: 0\n",
        "done\n",
    ];
    for line in expect {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

/// cgroup namespaces: unshare(CLONE_NEWCGROUP) roots one at the caller's cgroup;
/// `/proc/PID/cgroup` is relative to the reader's root (`/../a` for a sibling); a cgroup2
/// mount made inside is rooted there (mountinfo root `/` inside, the real path from the
/// initial namespace, `/../..` for the full hierarchy seen from inside); setns returns to
/// the initial namespace; clone(CLONE_NEWCGROUP) starts at `/`. Sandbox only, for the
/// reason above; the lines are Linux's (gVisor's cgroup2 suite checks them natively).
#[test]
fn cgroup_namespaces_root_paths_at_the_creators_cgroup() {
    let Some(p) = program_str("cgroup_ns") else {
        return;
    };
    let out = run_sandbox(&[&p], &[]);
    let text = out.stdout_text();
    assert_eq!(out.status, 0, "{text}{}", out.stderr_text());
    let expect = [
        "park in t/a: 0\n",
        "enter t/b: 0\n",
        "unshare: 0\n",
        "self inside: /\n",
        "sibling seen from inside: /../a\n",
        "move to sub: 0\n",
        "self in sub: /sub\n",
        "mount inside: 0\n",
        "its root has cgroup.type: 1\n",
        "its root has sub: 1\n",
        "mountinfo root inside: /\n",
        "full hierarchy seen from inside: /../..\n",
        "setns back: 0\n",
        "self after setns: /t/b/sub\n",
        "mountinfo root after setns: /t/b\n",
        "unshare child: 0\n",
        "clone child: /\n",
        "clone child: 0\n",
        "done\n",
    ];
    for line in expect {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

/// nsdelegate: a cgroup2 mount with it from the initial cgroup namespace shows it in
/// `/proc/self/mounts` and makes cgroup namespaces delegation boundaries: inside one, the
/// namespace root's non-delegatable files are EPERM (an fd opened outside still writes),
/// its cgroup.procs and the files below it are writable, and a process moves only between
/// cgroups of the namespace (ENOENT, CLONE_INTO_CGROUP too); a mount without it clears the
/// flag. Sandbox only: natively the flag is the host hierarchy's and the program would
/// change it for the whole machine. The lines are Linux's (kernel/cgroup/cgroup.c, held
/// against Linux by gVisor's cgroup2 Nsdelegate* cases).
#[test]
fn cgroup_nsdelegate_makes_namespaces_delegation_boundaries() {
    let Some(p) = program_str("cgroup_nsdelegate") else {
        return;
    };
    let out = run_sandbox(&[&p], &[]);
    let text = out.stdout_text();
    assert_eq!(out.status, 0, "{text}{}", out.stderr_text());
    let expect = [
        "mount nsdelegate: 0\nmounts show nsdelegate: 1\n",
        "enter d: 0\n",
        "unshare: 0\n",
        "ns root max.depth: EPERM\n",
        "ns root max.depth through an fd opened outside: 0\n",
        "below the root max.depth: 0\n",
        "ns root cgroup.procs: 0\n",
        "move out of the ns: ENOENT\n",
        "move within: 0\n",
        "clone into a cgroup outside: -1 ENOENT\n",
        "clone into a cgroup inside: exit 7\n",
        "back to d: 0\n",
        "mount without nsdelegate: 0\nmounts show nsdelegate: 0\n",
        "ns root max.depth without nsdelegate: 0\n",
        "move out of the ns without nsdelegate: 0\n",
        "done\n",
    ];
    for line in expect {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

/// Memory is charged where it became resident and stays there when its process moves
/// (cgroup-v2.rst, "Memory Ownership"; gVisor's
/// Cgroup2Test.MemoryIsChargedToNearestAncestorWithController holds it against Linux):
/// a group the process joins is not charged with what it already had, a group without the
/// controller charges its nearest ancestor that has it, and a removed group's charges count
/// in its parent. Sandbox only, as above.
#[test]
fn cgroup2_memory_stays_charged_where_it_was_made() {
    let Some(p) = program_str("cgroup2_memory") else {
        return;
    };
    let out = run_sandbox(&[&p], &[]);
    let text = out.stdout_text();
    assert_eq!(out.status, 0, "{text}{}", out.stderr_text());
    let expect = [
        "enable memory: 0\n",
        "enable memory in m: 0\n",
        "move to m/child/gc: 0\n",
        "m/child empty at first: 1\n",
        "m/child charged 8 MiB from below (no memory controller in gc): 1\n",
        "m charged the same: 1\n",
        "move to m/child: 0\n",
        "rmdir m/child/gc: 0\n",
        "m/child keeps the charge: 1\n",
        "move back to the root: 0\n",
        "m/child still charged after the process left: 1\n",
        "done\n",
    ];
    assert_eq!(text, expect.concat());
}
