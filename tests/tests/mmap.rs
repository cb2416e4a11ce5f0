//! File mappings: MAP_SHARED of tmpfs files across fork, MAP_PRIVATE copy-on-write (of a
//! host file filled window by window too), mremap's
//! corner cases, madvise's fork advice, what execve leaves of the old program's memory
//! (`tests/programs/exec_fresh.c`), Python multiprocessing (semaphores in /dev/shm) and
//! sqlite3 in WAL mode (a shared-memory index file), natively and in the sandbox, compared on
//! stdout and exit status.
//!
//! Needs a built `runsc-rs` (`cargo build --release -p sentry`; found through RUNSC_RS_BIN,
//! CARGO_TARGET_DIR or `<workspace>/target/release`), `cc` for `tests/programs/mmap_shared.c`,
//! python3 and sqlite3. A missing piece prints `SKIPPED: reason`.
//!
//! Programs live under the target directory; the sandbox side works in `/tmp` (its writes stay
//! in the sandbox's memory), the native side in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runsc() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RUNSC_RS_BIN").map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("release/runsc-rs")),
        Some(workspace().join("target/release/runsc-rs")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// (stdout, exit code) of `argv`, through `runsc-rs do` when `sandbox` is set.
fn run(sandbox: Option<&Path>, argv: &[&str]) -> (String, i32) {
    let mut cmd = match sandbox {
        Some(b) => {
            let mut c = Command::new(b);
            c.arg("do").arg("--").args(argv);
            c
        }
        None => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let out = cmd.output().expect("spawn");
    let code = out.status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
    });
    (String::from_utf8_lossy(&out.stdout).into_owned(), code)
}

/// A fresh scratch directory outside `/tmp` for the native run.
fn scratch(tag: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mmap-{tag}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles `tests/programs/<name>.c` statically; None (after printing SKIPPED) without cc.
fn program(name: &str) -> Option<String> {
    let src = workspace().join(format!("tests/programs/{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    match Command::new("cc")
        .args(["-O1", "-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => Some(out.to_string_lossy().into_owned()),
        _ => {
            println!("SKIPPED: cannot build {name}.c with cc -static");
            None
        }
    }
}

/// Runs `argv` natively with `dir` in place of `{dir}` and in the sandbox with `/tmp`, and
/// asserts both print the same and exit the same. Returns the sandbox output.
fn assert_same_in_dirs(tag: &str, argv: &[&str]) -> Option<String> {
    let Some(bin) = runsc() else {
        println!("SKIPPED: runsc-rs is not built (cargo build --release -p sentry)");
        return None;
    };
    if !Path::new(argv[0]).exists() {
        println!("SKIPPED: {} is not installed", argv[0]);
        return None;
    }
    let dir = scratch(tag);
    let dir = dir.to_str().unwrap();
    let with = |d: &str| -> Vec<String> { argv.iter().map(|a| a.replace("{dir}", d)).collect() };
    let native_argv = with(dir);
    let sandbox_argv = with("/tmp");
    let native = run(
        None,
        &native_argv.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let sandbox = run(
        Some(&bin),
        &sandbox_argv.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(native, sandbox, "native vs sandbox for {argv:?}");
    Some(sandbox.0)
}

#[test]
fn shared_and_private_file_mappings() {
    let Some(prog) = program("mmap_shared") else {
        return;
    };
    let before = std::fs::read(&prog).unwrap();
    if let Some(out) = assert_same_in_dirs("c", &[&prog, "{dir}"]) {
        assert!(out.ends_with("done\n"), "{out}");
    }
    // The program wrote to a private mapping of its own (host) file.
    assert_eq!(std::fs::read(&prog).unwrap(), before, "host file changed");
}

/// execve starts from an empty address space: a page the old program mapped faults in the
/// new one, and a new page at that address reads zero, also when another thread was writing
/// the page at the time (the sandbox hands the old program's host address space on to the new
/// one after clearing it); a vfork parent's memory survives its child's execve (that one
/// shares the parent's and gets a new host address space).
#[test]
fn exec_starts_from_an_empty_address_space() {
    let Some(prog) = program("exec_fresh") else {
        return;
    };
    if let Some(out) = assert_same_in_dirs("exec", &[&prog]) {
        assert!(
            out.contains("single: reading the old page faults\n"),
            "{out}"
        );
        assert!(out.contains("threads: new page reads 0\n"), "{out}");
        assert!(
            out.contains("vfork: child exited 0, parent's page intact\n"),
            "{out}"
        );
    }
}

#[test]
fn mremap_moves_grows_shrinks_and_duplicates_like_linux() {
    let Some(prog) = program("mremap_cases") else {
        return;
    };
    if let Some(out) = assert_same_in_dirs("mremap", &[&prog]) {
        assert!(out.ends_with("done\n"), "{out}");
    }
}

#[test]
fn madvise_dontfork_and_wipeonfork_shape_the_child_like_linux() {
    let Some(prog) = program("madvise_fork") else {
        return;
    };
    if let Some(out) = assert_same_in_dirs("madvise", &[&prog]) {
        assert!(out.ends_with("done\n"), "{out}");
    }
}

#[test]
fn python_multiprocessing_pool() {
    assert_same_in_dirs(
        "py",
        &[
            "/usr/bin/python3",
            "-c",
            "import multiprocessing as m\n\
             with m.Pool(4) as p: print(p.map(abs, range(-10, 0)))\n\
             print(m.Pool(4).map(abs, range(-10, 0)))\n\
             v = m.Value('i', 0)\n\
             def add(n):\n    with v.get_lock(): v.value += n\n\
             ps = [m.Process(target=add, args=(i,)) for i in range(5)]\n\
             [x.start() for x in ps]; [x.join() for x in ps]\n\
             print(v.value)",
        ],
    );
}

#[test]
fn sqlite3_wal_in_tmp() {
    let sql = "PRAGMA journal_mode=WAL; create table t(a integer, b text); \
               insert into t values(1,'one'),(2,'two'),(3,'three'); \
               select a, b from t order by a; select count(*), sum(a) from t; \
               PRAGMA mmap_size=1048576; update t set b = upper(b); select b from t; \
               PRAGMA integrity_check;";
    assert_same_in_dirs("sqlite", &["/usr/bin/sqlite3", "{dir}/t.db", sql]);
}

/// A private mapping of a host file (the sandbox's page cache, which fills a window of it
/// per fault) touched out of order with other memory allocated between the fills: every
/// page reads as the file, the last page is zero past the end and the page after it raises
/// SIGBUS, and after fork each side's writes stay its own (`tests/programs/filemap_windows.c`).
#[test]
fn a_host_file_filled_window_by_window_maps_like_linux() {
    let Some(prog) = program("filemap_windows") else {
        return;
    };
    let Some(bin) = runsc() else {
        println!("SKIPPED: runsc-rs is not built (cargo build --release -p sentry)");
        return;
    };
    let dir = scratch("windows");
    let file = dir.join("data.bin");
    // 21 windows of 128 KiB and a partial page, with bytes that differ from page to page.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..21 * 128 * 1024 + 1234)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&file, &data).unwrap();
    let argv = [prog.as_str(), file.to_str().unwrap()];
    let native = run(None, &argv);
    let sandbox = run(Some(&bin), &argv);
    assert_eq!(native, sandbox, "native vs sandbox");
    assert!(
        sandbox.0.contains("contents match: 1\n")
            && sandbox.0.contains("page past the end: SIGBUS\n")
            && sandbox.0.contains("parent keeps its writes: 1\n"),
        "{}",
        sandbox.0
    );
}
