//! Reaping the processes of a released address space off the releasing thread's path.
//!
//! Releasing an address space kills its processes at once (`SIGKILL`: none of them runs
//! another instruction of application code once it is delivered), but waiting for each to
//! finish dying costs the releasing thread a wake-up per process, and that thread is often
//! an exiting task whose parent waits in `wait4` for it. So the wait goes to one reaper
//! thread per platform. What must outlive the processes (their command page, the message
//! regions of their stubs) goes with them and is freed only after the last one is reaped,
//! so no other address space can be given a page a dying process still maps.

use std::sync::{mpsc, Mutex, PoisonError};

use nix::unistd::Pid;

use super::sys;

/// Work for the reaper thread: processes killed already, and what to run once they are all
/// reaped.
struct Job {
    pids: Vec<Pid>,
    then: Box<dyn FnOnce() + Send>,
}

impl Job {
    fn run(self) {
        sys::reap_all(&self.pids);
        (self.then)();
    }
}

/// A platform's reaper thread. Dropping it lets the thread finish the jobs it has and exit.
pub(crate) struct Reaper {
    /// `None` when the thread could not be started: jobs then run on the caller's thread.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Reaper {
    /// Starts the reaper thread (call it before the sentry installs its seccomp filter: it
    /// only waits for children, which the filter allows anyway). If the thread cannot be
    /// started, processes are reaped where they are released, as without a reaper.
    pub(crate) fn start() -> Reaper {
        let (sender, jobs) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("ptrace-reaper".into())
            .spawn(move || {
                for job in jobs {
                    job.run();
                }
            });
        let sender = match spawned {
            Ok(_) => Some(sender),
            Err(e) => {
                log::warn!("ptrace: no reaper thread ({e}): released processes are reaped inline");
                None
            }
        };
        Reaper {
            jobs: Mutex::new(sender),
        }
    }

    /// Kills every process of `pids` now; reaps them on the reaper thread and runs `then`
    /// there after the last one is reaped. `pids` must be children of the sentry that only
    /// this call will reap.
    pub(crate) fn kill_and_reap(&self, pids: Vec<Pid>, then: Box<dyn FnOnce() + Send>) {
        sys::kill_all(&pids);
        let job = Job { pids, then };
        let job = match &*self.jobs.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(sender) => match sender.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        job.run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::gone;

    /// A child that stays until killed. The reaper under test waits for it.
    #[allow(clippy::zombie_processes)]
    fn sleeper() -> Pid {
        let child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn sleep");
        Pid::from_raw(child.id() as i32)
    }

    #[test]
    fn then_runs_only_after_every_process_is_reaped() {
        let reaper = Reaper::start();
        for _ in 0..20 {
            let pids = vec![sleeper(), sleeper(), sleeper()];
            let (tx, rx) = mpsc::channel();
            let watched = pids.clone();
            reaper.kill_and_reap(
                pids.clone(),
                Box::new(move || {
                    // Reaped: no longer a zombie, the pid names nothing.
                    let all_gone = watched.iter().all(|&pid| gone(pid));
                    tx.send(all_gone).unwrap();
                }),
            );
            assert!(rx.recv().unwrap(), "`then` ran before the reaping");
        }
    }

    #[test]
    fn jobs_left_when_the_reaper_is_dropped_still_run() {
        let reaper = Reaper::start();
        let (tx, rx) = mpsc::channel();
        for _ in 0..5 {
            let tx = tx.clone();
            let pid = sleeper();
            reaper.kill_and_reap(vec![pid], Box::new(move || tx.send(gone(pid)).unwrap()));
        }
        drop((reaper, tx));
        let results: Vec<bool> = rx.iter().collect();
        assert_eq!(results, vec![true; 5]);
    }
}
