//! Per-thread scheduling attributes: policy, real-time priority, nice value, I/O priority and
//! CPU affinity.
//!
//! The host schedules the sentry's threads, so these are what the scheduler system calls
//! record and read back, what `/proc/[pid]/stat` shows and what a child inherits; they do not
//! change how the host runs the thread (as in gVisor).
//!
//! # Lock order
//! `TaskHandle::sched` is a leaf.

/// SCHED_OTHER (SCHED_NORMAL).
pub const SCHED_OTHER: u32 = 0;
pub const SCHED_FIFO: u32 = 1;
pub const SCHED_RR: u32 = 2;
pub const SCHED_BATCH: u32 = 3;
pub const SCHED_IDLE: u32 = 5;
/// Or-ed into a policy: a child starts with the default policy and a nice value of at least 0.
pub const SCHED_RESET_ON_FORK: u32 = 0x4000_0000;

/// The nice range.
pub const MIN_NICE: i32 = -20;
pub const MAX_NICE: i32 = 19;

/// Highest real-time priority (MAX_RT_PRIO - 1).
pub const MAX_RT_PRIORITY: u32 = 99;

/// The scheduling state of one thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedAttr {
    /// One of the SCHED_* policies above (without SCHED_RESET_ON_FORK).
    pub policy: u32,
    /// 1..=99 for SCHED_FIFO and SCHED_RR, 0 otherwise.
    pub rt_priority: u32,
    /// -20..=19; kept also under a real-time policy, as Linux does.
    pub nice: i32,
    pub reset_on_fork: bool,
    /// The I/O priority ioprio_set(2) gave (class << 13 | level; 0: none set).
    pub ioprio: u32,
    /// The CPUs the thread may run on, one bit each (64 to a word); None is every CPU of the
    /// sandbox.
    pub affinity: Option<Vec<u64>>,
}

impl SchedAttr {
    /// Whether `policy` is a real-time one.
    pub fn is_rt_policy(policy: u32) -> bool {
        policy == SCHED_FIFO || policy == SCHED_RR
    }

    /// What a new thread or process created by this one starts with.
    pub fn for_child(&self) -> SchedAttr {
        let mut child = self.clone();
        if self.reset_on_fork {
            // As Linux's sched_fork: a real-time thread's child gets SCHED_OTHER at nice 0;
            // other policies (SCHED_IDLE included) stay, with a negative nice raised to 0.
            if Self::is_rt_policy(child.policy) {
                child.policy = SCHED_OTHER;
                child.rt_priority = 0;
                child.nice = 0;
            }
            child.nice = child.nice.max(0);
            child.reset_on_fork = false;
        }
        child
    }

    /// The `priority` field of `/proc/[pid]/stat`: 20 + nice for the fair policies, -1 minus
    /// the real-time priority for the real-time ones (Linux's `prio - MAX_RT_PRIO`).
    pub fn stat_priority(&self) -> i32 {
        if Self::is_rt_policy(self.policy) {
            -1 - self.rt_priority as i32
        } else {
            20 + self.nice
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_on_fork_drops_rt_and_negative_nice_only_in_the_child() {
        let idle = SchedAttr {
            policy: SCHED_IDLE,
            nice: -3,
            reset_on_fork: true,
            ..SchedAttr::default()
        };
        assert_eq!(idle.for_child().policy, SCHED_IDLE);
        assert_eq!(idle.for_child().nice, 0);
        let parent = SchedAttr {
            policy: SCHED_FIFO,
            rt_priority: 10,
            nice: -5,
            reset_on_fork: true,
            ioprio: 3 << 13,
            affinity: Some(vec![1]),
        };
        let child = parent.for_child();
        assert_eq!(child.policy, SCHED_OTHER);
        assert_eq!(child.rt_priority, 0);
        assert_eq!(child.nice, 0);
        assert!(!child.reset_on_fork);
        assert_eq!(child.affinity, Some(vec![1]));
        assert_eq!(child.ioprio, 3 << 13);
        let plain = SchedAttr {
            policy: SCHED_BATCH,
            nice: 7,
            ..SchedAttr::default()
        };
        assert_eq!(plain.for_child(), plain);
    }

    #[test]
    fn stat_priority_is_linux_prio_minus_100() {
        let fair = SchedAttr {
            nice: -3,
            ..SchedAttr::default()
        };
        assert_eq!(fair.stat_priority(), 17);
        let rt = SchedAttr {
            policy: SCHED_RR,
            rt_priority: 5,
            ..SchedAttr::default()
        };
        assert_eq!(rt.stat_priority(), -6);
    }
}
