//! Shared writable mappings of host files on a volume: SQLite in WAL mode (which maps its
//! `-shm` file MAP_SHARED|PROT_WRITE) on a volume, and `tests/programs/volume_mmap.c`
//! (stores through a shared mapping reach the file at msync, fsync, munmap and close; read(2),
//! write(2) and ftruncate see or show through the mapping), each run natively and in the
//! sandbox on a fresh directory of its own, with the same output; and open(O_CREAT) racing an
//! unlink of the same name (`tests/programs/creat_race.c`), which SQLite does with `-shm`.
//!
//! Without a sandbox here, or without `sqlite3` on the host for that test, each test
//! prints `SKIPPED: reason`.

use std::path::Path;

use runsc_rs_tests::{program_str, skip, Outcome, Run, Scratch};

/// Runs `argv` (with `{DIR}` standing for the directory) natively on a fresh directory,
/// and in the sandbox with another fresh directory as the volume `/data`; both must exit 0
/// with the same output. Returns the native output.
fn same_on_volume(runs: &[Vec<&str>]) -> String {
    let native_dir = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "vmm-native");
    let sandbox_dir = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "vmm-sandbox");
    let volume = format!("{}:/data", sandbox_dir.str());
    let mut native_all = String::new();
    for argv in runs {
        let subst =
            |dir: &str| -> Vec<String> { argv.iter().map(|a| a.replace("{DIR}", dir)).collect() };
        let native: Outcome = Run::new(&subst(native_dir.str())).native();
        let sandbox: Outcome = Run::new(&subst("/data")).sandbox(&["--volume", &volume]);
        assert_eq!(
            native.status,
            0,
            "native {argv:?}: {}{}",
            native.stdout_text(),
            native.stderr_text()
        );
        assert_eq!(
            (sandbox.status, sandbox.stdout_text()),
            (native.status, native.stdout_text()),
            "{argv:?}: sandbox stderr: {}",
            sandbox.stderr_text()
        );
        native_all.push_str(&native.stdout_text());
    }
    native_all
}

/// Whether `runsc-rs do` runs programs here; prints `SKIPPED` when not.
fn sandbox_works() -> bool {
    let out = Run::new(&["/bin/true"]).sandbox(&[]);
    if out.status != 0 {
        skip(&format!(
            "the sandbox cannot run programs here: {}",
            out.stderr_text()
        ));
        return false;
    }
    true
}

#[test]
fn sqlite_wal_database_on_a_volume() {
    let sqlite = "/usr/bin/sqlite3";
    if !Path::new(sqlite).exists() {
        skip("no /usr/bin/sqlite3 on the host");
        return;
    }
    if !sandbox_works() {
        return;
    }
    let db = "{DIR}/t.db";
    let out = same_on_volume(&[
        vec![
            sqlite,
            db,
            "pragma journal_mode=wal; create table t(a, b); insert into t values(1, 'one'); \
             select * from t;",
        ],
        vec![
            sqlite,
            db,
            "insert into t select a + 1, b || '+' from t; \
             insert into t select a + 10, b from t; \
             create index ti on t(b); \
             select count(*), sum(a) from t; select * from t where a > 10 order by a;",
        ],
        vec![
            sqlite,
            db,
            "pragma journal_mode; pragma integrity_check; select group_concat(a) from t;",
        ],
    ]);
    assert_eq!(
        out, "wal\n1|one\n4|26\n11|one\n12|one+\nwal\nok\n1,2,11,12\n",
        "native output"
    );
}

#[test]
fn shared_writable_mapping_of_a_volume_file() {
    let Some(prog) = program_str("volume_mmap") else {
        return;
    };
    if !sandbox_works() {
        return;
    }
    let out = same_on_volume(&[vec![&prog, "{DIR}"]]);
    for want in [
        "ro shared writable: Permission denied",
        "read while mapped: helloAAAAA",
        "first mapping sees: AAQA",
        "reopened 200: ..late..",
        "remapped: later",
    ] {
        assert!(out.contains(want), "native output lacks {want:?}:\n{out}");
    }
    assert!(out.ends_with("done\n"), "{out}");
}

/// SQLite unlinks `-shm` at its last close while other processes open it with O_CREAT: an
/// open(O_CREAT) without O_EXCL racing an unlink of the same name on a volume must still
/// open a file, as on Linux, where lookup and create are one step. (The sandbox's lookup,
/// host create and host open are separate steps; `tests/programs/creat_race.c` hits the
/// gaps between them within a few thousand rounds.)
#[test]
fn open_creat_racing_unlink_on_a_volume() {
    let Some(prog) = program_str("creat_race") else {
        return;
    };
    if !sandbox_works() {
        return;
    }
    let out = same_on_volume(&[vec![&prog, "{DIR}"]]);
    for k in 1..=3 {
        let want = format!("opener {k} failed 0 of 10000");
        assert!(out.contains(&want), "native output lacks {want:?}:\n{out}");
    }
}
