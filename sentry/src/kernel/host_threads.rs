//! Host threads for tasks: a finished task's thread parks for a while and the next new task
//! takes it instead of a new one.
//!
//! Creating a host thread and ending it cost the sentry a `clone`, the new thread's set-up
//! (its signal stack mapped, its name, robust list and rseq registered) and, at its exit,
//! the signal stack unmapped and the stack's unused pages dropped: unmaps in a process whose
//! other threads run on other CPUs, so each costs a TLB shoot-down. A short-lived process
//! (`sh -c`, a build's compiler runs) pays all of it on the critical path of its `fork`
//! and of its parent's `wait4`. A parked thread is handed its next task with one wake-up.
//!
//! At most [`MAX_PARKED`] threads are parked at once; a thread with nowhere to park exits,
//! and a parked thread exits after [`PARK_TIMEOUT`] without work, so an idle sandbox keeps
//! no extra threads for long. What a task leaves on its thread is cleaned before the thread
//! parks: the caller's job does it (the platform's traced stubs); everything else a task
//! thread keeps per thread is either per task (the platform context, dropped with the
//! task) or reusable scratch (path and read buffers, cache epochs). Task threads never
//! change their host signal mask or CPU affinity, and a thread is named for each task.
//!
//! # Lock order
//! `Pool::parked` is a leaf lock, and so is each `Parked::job`; they are never held
//! together.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Threads parked at most at once.
const MAX_PARKED: usize = 4;
/// How long a parked thread waits for a task before it exits.
const PARK_TIMEOUT: Duration = Duration::from_secs(2);
/// The stack of a task's host thread.
const STACK_SIZE: usize = 1 << 20;

/// What a thread runs: a task's whole life on it.
pub type Job = Box<dyn FnOnce() + Send>;

/// A parked thread and the job handed to it.
struct Parked {
    thread: std::thread::Thread,
    /// Set by the thread taking this one out of the pool, then taken by the thread itself.
    job: Mutex<Option<(String, Job)>>,
}

/// Parked threads.
struct Pool {
    parked: Mutex<Vec<Arc<Parked>>>,
    /// How long a parked thread waits for a job before it exits.
    timeout: Duration,
}

/// The task threads' pool.
static TASK_THREADS: Pool = Pool::new(PARK_TIMEOUT);

/// Runs `job` on a parked task thread (named `name` from now on), or on a new one.
///
/// # Errors
/// No thread was parked and a new one could not be created.
pub fn run(name: String, job: Job) -> std::io::Result<()> {
    TASK_THREADS.run(name, job)
}

impl Pool {
    const fn new(timeout: Duration) -> Pool {
        Pool {
            parked: Mutex::new(Vec::new()),
            timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Parked>>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&'static self, name: String, job: Job) -> std::io::Result<()> {
        let parked = self.lock().pop();
        if let Some(p) = parked {
            *p.job.lock().unwrap_or_else(PoisonError::into_inner) = Some((name, job));
            p.thread.unpark();
            return Ok(());
        }
        std::thread::Builder::new()
            .name(name)
            .stack_size(STACK_SIZE)
            .spawn(move || self.work(job))
            .map(drop)
    }

    /// A pool thread's life: `first`, then whatever it is handed while parked.
    fn work(&self, first: Job) {
        let mut job = first;
        loop {
            job();
            let Some((name, next)) = self.park() else {
                return;
            };
            if let Ok(name) = std::ffi::CString::new(name) {
                // Only the name in /proc and host tools: a failure changes nothing else.
                let _ = rustix::thread::set_name(&name);
            }
            job = next;
        }
    }

    /// Parks the calling thread until it is handed a job; None when the pool is full or
    /// nobody came in time (the thread should exit).
    fn park(&self) -> Option<(String, Job)> {
        let me = Arc::new(Parked {
            thread: std::thread::current(),
            job: Mutex::new(None),
        });
        {
            let mut parked = self.lock();
            if parked.len() >= MAX_PARKED {
                return None;
            }
            parked.push(me.clone());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(job) = me.job.lock().unwrap_or_else(PoisonError::into_inner).take() {
                return Some(job);
            }
            let now = Instant::now();
            if now >= deadline {
                // Still in the pool: nobody will hand us anything, leave. Gone from it: a
                // job is on its way (set before the unpark this loop will see).
                let mut parked = self.lock();
                if let Some(i) = parked.iter().position(|p| Arc::ptr_eq(p, &me)) {
                    parked.swap_remove(i);
                    return None;
                }
                drop(parked);
                std::thread::park();
            } else {
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Runs a job named `name` on `pool`: the host thread it ran on and that thread's name.
    fn run_and_report(pool: &'static Pool, name: &str) -> (i32, String) {
        let (tx, rx) = mpsc::channel();
        pool.run(
            name.into(),
            Box::new(move || {
                let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
                let tid = nix::unistd::gettid().as_raw();
                tx.send((tid, comm.trim_end().to_owned())).unwrap();
            }),
        )
        .unwrap();
        rx.recv().unwrap()
    }

    /// Waits until `pool` has `count` parked threads.
    fn wait_parked(pool: &Pool, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while pool.lock().len() != count {
            assert!(Instant::now() < deadline, "never {count} parked threads");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_finished_thread_runs_the_next_job_under_its_name() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(PARK_TIMEOUT)));
        let (first, name) = run_and_report(pool, "job-a");
        assert_eq!(name, "job-a");
        wait_parked(pool, 1);
        let (second, name) = run_and_report(pool, "job-b");
        assert_eq!(second, first, "the parked thread was not reused");
        assert_eq!(name, "job-b");
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_threads() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(PARK_TIMEOUT)));
        let (release, hold) = mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        // More jobs at once than threads may park: each holds its thread until released.
        for i in 0..MAX_PARKED + 2 {
            let hold = hold.clone();
            pool.run(
                format!("held-{i}"),
                Box::new(move || {
                    let _ = hold.lock().unwrap().recv();
                }),
            )
            .unwrap();
        }
        for _ in 0..MAX_PARKED + 2 {
            release.send(()).unwrap();
        }
        wait_parked(pool, MAX_PARKED);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.lock().len(), MAX_PARKED);
    }

    #[test]
    fn a_thread_parked_too_long_exits() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(Duration::from_millis(10))));
        let (tid, _) = run_and_report(pool, "job-idle");
        let task = format!("/proc/self/task/{tid}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::path::Path::new(&task).exists() {
            assert!(Instant::now() < deadline, "thread {tid} never exited");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(pool.lock().is_empty());
    }
}
