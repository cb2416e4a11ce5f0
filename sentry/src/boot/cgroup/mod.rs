//! The sandbox process's cgroup: placement, freezing, resource updates, OOM kills, and the
//! files its statistics are read from. Shared by the containerd shim and the OCI runtime CLI
//! (`runsc-rs create`), which both start one sandbox process per cgroup.
//!
//! The whole sandbox (the sentry, its ptrace stubs, every application process they run) is
//! one process tree, so it lives in one cgroup: the `linux.cgroupsPath` of the spec that
//! started it (the first container, or a pod's sandbox container). Everything forked in the
//! sandbox later inherits it. Both host layouts are handled, as one [`SandboxCgroup`] with a
//! backend per layout (the `v1` and `v2` submodules), chosen from `/proc/self/mountinfo`
//! ([`SandboxCgroup::create`]):
//!
//! - **cgroup v2** (a `cgroup2` mount at `/sys/fs/cgroup`): one directory under the unified
//!   hierarchy; the `cpu`, `memory` and `pids` controllers are enabled in the ancestors'
//!   `cgroup.subtree_control` where the kernel offers them.
//! - **cgroup v1** (anything else, including the v1 half of a hybrid layout): one directory
//!   per controller this shim uses (`freezer`, `memory`, `cpu`, `cpuacct`, `pids`).
//!
//! What each Task call does with it:
//! - Placement ([`Placement`]): the sandbox is born inside its cgroup, before it forks
//!   anything. v1 moves single threads, so the shim's spawner thread joins the `tasks` files
//!   and the child inherits them. v2 moves whole processes, so the shim opens `cgroup.procs`
//!   and hands it to the sandbox as its stdout; the sandbox's first act is to write `0` to it
//!   and put `/dev/null` in its place ([`join_through_stdout`]).
//! - Pause/Resume: v1 `freezer.state`, v2 `cgroup.freeze`; both wait for the kernel to report
//!   the state reached (ptrace stops included).
//! - Stats: [`SandboxCgroup::layout`] says where the files are; the shim turns them into
//!   containerd's metrics messages, the OCI CLI into runc's `events` JSON. Containers of one
//!   pod share the sandbox, so they report the same numbers.
//! - Update: the spec's memory, CPU and pids limits, in the layout's files and units.
//! - OOM: [`SandboxCgroup::oom_kills`] counts the kernel's OOM kills in the cgroup and
//!   [`OomNotifier`] blocks until that count may have changed.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

mod v1;
mod v2;

/// Where production looks for the unified hierarchy.
const V2_ROOT: &str = "/sys/fs/cgroup";

/// How long freezing or thawing may take.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// What can go wrong with a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid OCI spec: {0}")]
    BadSpec(&'static str),
    #[error("the sandbox's cgroup has no {0} controller")]
    NoController(&'static str),
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The sandbox's cgroup.
#[derive(Debug)]
pub struct SandboxCgroup {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    V1(v1::V1),
    V2(v2::V2),
}

/// How the sandbox process gets into its cgroup; see the module docs.
#[derive(Debug)]
pub enum Placement {
    /// v1: the spawning thread writes its TID to each of these `tasks` files before it
    /// spawns; the child inherits the thread's cgroups.
    JoinThread(Vec<PathBuf>),
    /// v2: `cgroup.procs`, opened for writing, to become the sandbox's stdout; the sandbox
    /// runs with `--join-cgroup` and calls [`join_through_stdout`] first thing.
    ProcsOnStdout(File),
}

/// Where a cgroup's files are, for readers of its statistics.
#[derive(Debug, Clone, Copy)]
pub enum Layout<'a> {
    /// One directory per mounted controller: (controller, directory).
    V1(&'a [(&'static str, PathBuf)]),
    /// The one directory in the unified hierarchy.
    V2(&'a Path),
}

impl<'a> Layout<'a> {
    /// The directory holding `controller`'s files (v2: the one directory).
    pub fn dir(self, controller: &str) -> Option<&'a Path> {
        match self {
            Layout::V1(dirs) => dirs
                .iter()
                .find(|(c, _)| *c == controller)
                .map(|(_, d)| d.as_path()),
            Layout::V2(dir) => Some(dir),
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `(mount point, filesystem type, super options)` of every mount in `/proc/self/mountinfo`.
fn mounts() -> Vec<(PathBuf, String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some((
                PathBuf::from(fields.get(4)?),
                (*fields.get(sep + 1)?).to_owned(),
                (*fields.get(sep + 3)?).to_owned(),
            ))
        })
        .collect()
}

/// The unified hierarchy's mount point when the host is pure cgroup v2.
fn pure_v2_root() -> Option<PathBuf> {
    mounts()
        .into_iter()
        .find(|(point, fstype, _)| point == Path::new(V2_ROOT) && fstype == "cgroup2")
        .map(|(point, _, _)| point)
}

pub fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A v2 limit file (`memory.max`, `pids.max`): `max` is `u64::MAX`, as containerd reports it.
pub fn read_limit(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.trim() {
        "max" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, ...) as a lookup; `None` when
/// the file does not exist.
pub fn read_keyed(path: &Path) -> Option<impl Fn(&str) -> u64> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(move |key: &str| keyed_value(&text, key).unwrap_or(0))
}

pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The relative directory of `cgroups_path`, or `None` when the sandbox is not placed.
fn relative_path(cgroups_path: &str) -> Result<Option<&str>> {
    let relative = cgroups_path.trim_start_matches('/');
    if relative.is_empty() || cgroups_path.contains(':') {
        log::info!("cgroups path {cgroups_path:?}: the sandbox is not placed in a cgroup");
        return Ok(None);
    }
    if relative.split('/').any(|c| c == "..") {
        return Err(Error::BadSpec("linux.cgroupsPath must not contain .."));
    }
    Ok(Some(relative))
}

impl SandboxCgroup {
    /// Creates `cgroups_path` (absolute, as containerd's cgroupfs paths are) in the host's
    /// layout: under `/sys/fs/cgroup` on a pure cgroup v2 host, else under each v1
    /// controller. `None` when there is nothing to do: no path, a systemd-style
    /// `slice:prefix:name` path, or no cgroup mounted.
    ///
    /// # Errors
    /// A directory could not be created, or the path contains `..`.
    pub fn create(cgroups_path: &str) -> Result<Option<SandboxCgroup>> {
        match pure_v2_root() {
            Some(root) => SandboxCgroup::create_v2(&root, cgroups_path),
            None => SandboxCgroup::create_v1(cgroups_path),
        }
    }

    /// Creates `cgroups_path` under the unified hierarchy mounted at `root`, enabling the
    /// controllers it needs in each ancestor where the kernel offers and allows them.
    ///
    /// # Errors
    /// As [`SandboxCgroup::create`].
    pub fn create_v2(root: &Path, cgroups_path: &str) -> Result<Option<SandboxCgroup>> {
        let Some(relative) = relative_path(cgroups_path)? else {
            return Ok(None);
        };
        Ok(Some(SandboxCgroup {
            backend: Backend::V2(v2::V2::create(root, relative)?),
        }))
    }

    fn create_v1(cgroups_path: &str) -> Result<Option<SandboxCgroup>> {
        let Some(relative) = relative_path(cgroups_path)? else {
            return Ok(None);
        };
        Ok(v1::V1::create(relative)?.map(|v1| SandboxCgroup {
            backend: Backend::V1(v1),
        }))
    }

    /// How the sandbox process joins this cgroup.
    ///
    /// # Errors
    /// v2: `cgroup.procs` could not be opened.
    pub fn placement(&self) -> Result<Placement> {
        match &self.backend {
            Backend::V1(v1) => Ok(Placement::JoinThread(v1.tasks_files())),
            Backend::V2(v2) => Ok(Placement::ProcsOnStdout(v2.open_procs()?)),
        }
    }

    /// Freezes (`true`) or thaws every task of the sandbox and waits until the kernel says
    /// it is done.
    ///
    /// # Errors
    /// No freezer, a state file could not be written, or the kernel did not get there in
    /// time.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match &self.backend {
            Backend::V1(v1) => v1.freeze(frozen),
            Backend::V2(v2) => v2.freeze(frozen),
        }
    }

    /// Where its files are.
    pub fn layout(&self) -> Layout<'_> {
        match &self.backend {
            Backend::V1(v1) => Layout::V1(v1.controller_dirs()),
            Backend::V2(v2) => Layout::V2(v2.dir()),
        }
    }

    /// Writes the memory, CPU and pids limits of `r`.
    ///
    /// # Errors
    /// The cgroup lacks a controller `r` needs (`NoController`), or a limit could not be
    /// written (for example a memory limit below current usage).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        match &self.backend {
            Backend::V1(v1) => v1.update(r),
            Backend::V2(v2) => v2.update(r),
        }
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup (v1
    /// `memory.oom_control`, kernel ≥ 4.13; v2 `memory.events`); `None` without a memory
    /// controller.
    pub fn oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.oom_file()?).ok()?;
        keyed_value(&text, "oom_kill")
    }

    /// The file with the `oom_kill` counter, which the notifier also watches.
    fn oom_file(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::V1(v1) => v1.oom_control(),
            Backend::V2(v2) => v2.memory_events(),
        }
    }

    /// A notifier that wakes when the cgroup's OOM state may have changed; `None` without a
    /// memory controller.
    ///
    /// # Errors
    /// The notification could not be registered.
    pub fn oom_notifier(&self) -> Result<Option<OomNotifier>> {
        let Some(file) = self.oom_file() else {
            return Ok(None);
        };
        match &self.backend {
            Backend::V1(_) => OomNotifier::v1(&file).map(Some),
            Backend::V2(_) => OomNotifier::v2(&file).map(Some),
        }
    }

    /// Removes the directories once the sandbox is gone (best effort: the kernel refuses
    /// while a task is still inside, so this retries for a moment).
    pub fn remove(&self) {
        let dirs: Vec<&Path> = match &self.backend {
            Backend::V1(v1) => v1.dirs().collect(),
            Backend::V2(v2) => vec![v2.dir()],
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        for dir in dirs {
            while dir.exists() {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        log::warn!("removing cgroup {}: {e}", dir.display());
                        break;
                    }
                }
            }
        }
    }
}

fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_owned()
    }
}

/// Polls `reached` until it says yes, for up to [`FREEZE_TIMEOUT`].
fn wait_for(path: &Path, mut reached: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        if reached()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Io {
                op: "waiting for",
                path: path.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Blocks until a cgroup's OOM state may have changed: v1 an eventfd registered in
/// `cgroup.event_control` for `memory.oom_control` (the kernel signals it on OOM and when
/// the cgroup is removed), v2 an inotify watch on `memory.events` (modified on every memory
/// event; the watch ends when the cgroup is removed).
#[derive(Debug)]
pub struct OomNotifier {
    fd: OwnedFd,
    /// A file that exists as long as the cgroup does.
    alive: PathBuf,
    /// v1: the `memory.oom_control` the eventfd listens to (the registration holds it).
    _oom_control: Option<File>,
}

impl OomNotifier {
    fn v1(control_path: &Path) -> Result<OomNotifier> {
        let dir = control_path.parent().expect("a file in the cgroup");
        let oom_control = File::open(control_path).map_err(io_err("opening", control_path))?;
        let event_control = dir.join("cgroup.event_control");
        let fd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).map_err(|e| {
            Error::Io {
                op: "creating an eventfd for",
                path: event_control.clone(),
                source: e.into(),
            }
        })?;
        let registration = format!(
            "{} {}",
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            std::os::fd::AsRawFd::as_raw_fd(&oom_control)
        );
        std::fs::write(&event_control, registration).map_err(io_err("writing", &event_control))?;
        Ok(OomNotifier {
            fd,
            alive: control_path.to_path_buf(),
            _oom_control: Some(oom_control),
        })
    }

    fn v2(events: &Path) -> Result<OomNotifier> {
        use rustix::fs::inotify;
        let as_io = |e: rustix::io::Errno| std::io::Error::from(e);
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC)
            .map_err(|e| io_err("watching", events)(as_io(e)))?;
        inotify::add_watch(&fd, events, inotify::WatchFlags::MODIFY)
            .map_err(|e| io_err("watching", events)(as_io(e)))?;
        Ok(OomNotifier {
            fd,
            alive: events.to_path_buf(),
            _oom_control: None,
        })
    }

    /// Waits for the next notification. False once the cgroup is gone (nothing more will
    /// come) or the notifier failed.
    pub fn wait(&self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(self.fd.as_fd(), &mut buf) {
                Ok(_) => return self.alive.exists(),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    log::warn!("OOM notifier for {}: {e}", self.alive.display());
                    return false;
                }
            }
        }
    }
}

/// Sandbox side of the v2 placement handshake ([`Placement::ProcsOnStdout`]): stdout is the
/// sandbox cgroup's `cgroup.procs`; writing `0` moves this whole process into it, then
/// `/dev/null` takes stdout's place so nothing later writes there by mistake. Call first
/// thing, before any thread or child exists.
///
/// # Errors
/// The write was refused (the process is then not in its cgroup and must not go on), or
/// `/dev/null` could not replace stdout.
pub fn join_through_stdout() -> std::io::Result<()> {
    join_through(std::io::stdout().as_fd())?;
    let null = File::options().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    Ok(())
}

/// Writes `0` to `procs`, an open `cgroup.procs`: the kernel moves the writing process, all
/// its threads, into that cgroup.
fn join_through(procs: BorrowedFd<'_>) -> std::io::Result<()> {
    File::from(procs.try_clone_to_owned()?).write_all(b"0")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
    use std::process::{Command, Stdio};

    pub(super) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sandbox-cg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn keyed_files_parse() {
        let dir = temp_dir("keyed");
        std::fs::write(dir.join("stat"), "user 12\nsystem 3\n").unwrap();
        let stat = read_keyed(&dir.join("stat")).unwrap();
        assert_eq!((stat("user"), stat("system"), stat("none")), (12, 3, 0));
        assert!(read_keyed(&dir.join("missing")).is_none());
        std::fs::write(dir.join("max"), "max\n").unwrap();
        assert_eq!(read_limit(&dir.join("max")), Some(u64::MAX));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unusable_paths_are_not_placed() {
        assert!(SandboxCgroup::create("").unwrap().is_none());
        assert!(SandboxCgroup::create("system.slice:runsc:x")
            .unwrap()
            .is_none());
        assert!(matches!(
            SandboxCgroup::create("/a/../../etc"),
            Err(Error::BadSpec(_))
        ));
    }

    /// The OOM notifier and counter on this host's real memory controller: a process that
    /// needs more than the limit is killed, the notifier wakes, the count says 1, and once
    /// the cgroup is removed the notifier reports the end.
    #[test]
    fn oom_kill_is_noticed_and_counted() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIPPED: creating cgroups needs root");
            return;
        }
        let path = format!("/shim-oom-test-{}", std::process::id());
        let Some(cg) = SandboxCgroup::create(&path).unwrap() else {
            println!("SKIPPED: no cgroup hierarchy mounted");
            return;
        };
        let Some(notifier) = cg.oom_notifier().unwrap() else {
            cg.remove();
            println!("SKIPPED: no memory controller");
            return;
        };
        let limit = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(32 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        cg.update(&limit).unwrap();
        assert_eq!(cg.oom_kills(), Some(0));
        // Waits for a go on stdin, so that it runs inside the cgroup before it allocates.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "read go; exec dd if=/dev/zero of=/dev/null bs=128M count=1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        match cg.placement().unwrap() {
            Placement::JoinThread(tasks) => {
                for t in tasks {
                    std::fs::write(t, &pid).unwrap();
                }
            }
            Placement::ProcsOnStdout(mut procs) => procs.write_all(pid.as_bytes()).unwrap(),
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            while notifier.wait() {
                tx.send(()).unwrap();
            }
        });
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let status = child.wait().unwrap();
        let woke = rx.recv_timeout(Duration::from_secs(10));
        let kills = cg.oom_kills();
        cg.remove();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{status}"
        );
        assert!(woke.is_ok(), "the notifier did not wake");
        assert_eq!(kills, Some(1));
        // Removing the cgroup ends the notifier.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !waiter.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the notifier outlived its cgroup"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The environment variable that makes this test binary the child of
    /// [`v2_placement_and_freezing_on_a_real_hierarchy`].
    const CHILD_ENV: &str = "SHIM_CGROUP_TEST_CHILD";

    /// The child's role (a no-op in a normal test run): join the way the sandbox does, fork a
    /// grandchild (which must land in the cgroup too), report both PIDs on stderr, then
    /// spin until killed. `cgroup.procs` comes as stdin, not stdout: the test harness
    /// writes to stdout before any test runs.
    #[test]
    fn v2_placement_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        join_through(std::io::stdin().as_fd()).expect("joining the cgroup");
        let mut grandchild = Command::new("sleep").arg("60").spawn().unwrap();
        eprintln!("pids {} {}", std::process::id(), grandchild.id());
        // Busy, so that running and frozen look different from outside.
        while grandchild.try_wait().unwrap().is_none() {
            std::hint::spin_loop();
        }
    }

    /// User plus system CPU time of process `pid` (all its threads), in clock ticks.
    fn cpu_ticks(pid: u32) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<u64> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields.iter().sum()
    }

    /// Whether `pid` gets CPU time over a moment (its test thread spins).
    fn is_running(pid: u32) -> bool {
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(300));
        cpu_ticks(pid) > before
    }

    /// Placement, freezing, metrics and removal on a real cgroup v2 hierarchy mounted for
    /// the test (on a v1 host its controllers stay bound to v1, so only the core files
    /// exist: `cgroup.procs`, `cgroup.freeze`, `cgroup.events`, `cpu.stat`).
    #[test]
    fn v2_placement_and_freezing_on_a_real_hierarchy() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIPPED: mounting a cgroup2 hierarchy needs root");
            return;
        }
        let mount_point = temp_dir("v2mount");
        let mounted = Command::new("mount")
            .args(["-t", "cgroup2", "none"])
            .arg(&mount_point)
            .status()
            .unwrap();
        if !mounted.success() {
            println!("SKIPPED: this kernel cannot mount cgroup2");
            return;
        }
        let result = std::panic::catch_unwind(|| placement_and_freezing(&mount_point));
        // Lazily: sandboxes other tests start meanwhile may hold copies of this mount.
        let _ = Command::new("umount").arg("-l").arg(&mount_point).status();
        let _ = std::fs::remove_dir(&mount_point);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }

    fn placement_and_freezing(root: &Path) {
        let cg = SandboxCgroup::create_v2(root, "/shim-test/sandbox")
            .unwrap()
            .unwrap();
        let dir = root.join("shim-test/sandbox");
        let Placement::ProcsOnStdout(procs) = cg.placement().unwrap() else {
            panic!("v1 placement for a v2 cgroup");
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "boot::cgroup::tests::v2_placement_child",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::from(procs))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stderr.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let pids: Vec<u32> = line
            .trim()
            .strip_prefix("pids ")
            .unwrap_or_else(|| panic!("child said {line:?}"))
            .split(' ')
            .map(|p| p.parse().unwrap())
            .collect();
        let checks = || {
            let members: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap()
                .lines()
                .map(|p| p.parse().unwrap())
                .collect();
            assert_eq!(members.len(), 2, "cgroup.procs: {members:?}");
            for pid in &pids {
                assert!(members.contains(pid), "{pid} not in {members:?}");
            }
            assert_eq!(
                child.id(),
                pids[0],
                "the child reported a different PID than it has"
            );

            assert!(
                is_running(pids[0]),
                "the child does not run before freezing"
            );
            cg.freeze(true).unwrap();
            let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
            assert_eq!(keyed_value(&events, "frozen"), Some(1), "{events}");
            assert!(!is_running(pids[0]), "frozen but still running");

            cg.freeze(false).unwrap();
            let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
            assert_eq!(keyed_value(&events, "frozen"), Some(0), "{events}");
            assert!(is_running(pids[0]), "thawed but not running");

            // cpu.stat is core in v2: the child's busy loop shows as usage.
            let stat =
                read_keyed(&cg.layout().dir("cpu").unwrap().join("cpu.stat")).expect("no cpu.stat");
            assert!(stat("usage_usec") > 0);
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(checks));
        for pid in pids.iter().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(*pid).unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.wait();
        // The grandchild is reparented; wait for the cgroup to empty before removing it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|p| !p.trim().is_empty())
            .unwrap_or(false)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        cg.remove();
        let _ = std::fs::remove_dir(root.join("shim-test"));
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
        assert!(!dir.exists(), "the cgroup was not removed");
    }
}
