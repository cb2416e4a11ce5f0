//! The volume swap race of issue 15: a guest with a writable volume exchanges a regular file
//! with a symlink that points outside the volume (`renameat2(RENAME_EXCHANGE)` in a loop)
//! while other threads chmod/chown/utimes/truncate/setxattr/open/rename/link/unlink the
//! file. The symlink's target is a canary next to the volume on the host; whatever the guest
//! does, the canary must come out exactly as it went in (inode, mode, owner, size, times,
//! link count, xattrs), because hostfs acts on the inode it looked up, never on the name again.
//!
//! The guest program is `tests/programs/hostfs_race.c`; the same binary, run natively, takes
//! the canary's snapshots. Without a sandbox here each test prints `SKIPPED: reason`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use runsc_rs_tests::{program_str, skip, Run, Scratch};

/// How long each race runs in the sandbox.
const RACE_MS: &str = "1500";

/// Whether `runsc-rs do` runs `prog` here; prints `SKIPPED` when not.
fn sandbox_works(prog: &str) -> bool {
    let out = Run::new(&[prog, "snapshot", "/"]).sandbox(&[]);
    if out.status != 0 {
        skip(&format!(
            "the sandbox cannot run programs here: {}",
            out.stderr_text()
        ));
        return false;
    }
    true
}

fn snapshot(prog: &str, path: &Path) -> String {
    let out = Run::new(&[prog, "snapshot", path.to_str().unwrap()]).native();
    assert_eq!(out.status, 0, "snapshot: {}", out.stderr_text());
    out.stdout_text()
}

/// Counts printed by the guest: (swaps, attempts, successes).
fn counts(stdout: &str) -> (u64, u64, u64) {
    let field = |name: &str| {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {stdout:?}"))
    };
    (field("swaps"), field("attempts"), field("successes"))
}

/// Races `op` against the swap in a fresh volume and checks the canary is untouched.
/// `must_succeed`: the operation itself works in the sandbox (so the race really exercised
/// the host call), which is every operation but setxattr (the sentry keeps no xattrs).
fn race(op: &str, must_succeed: bool) {
    let Some(prog) = program_str("hostfs_race") else {
        return;
    };
    if !sandbox_works(&prog) {
        return;
    }
    // On the workspace's file system, as a volume would be (not a tmpfs).
    let s = Scratch::under(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        &format!("hostfs-race-{op}"),
    );
    let vol = s.0.join("vol");
    std::fs::create_dir(&vol).unwrap();
    let canary = s.0.join("canary");
    std::fs::write(vol.join("f"), b"volume file\n").unwrap();
    std::os::unix::fs::symlink("../canary", vol.join("s")).unwrap();
    std::fs::write(&canary, b"canary\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o640)).unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let f = std::fs::File::options().write(true).open(&canary).unwrap();
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(old)
                .set_modified(old),
        )
        .unwrap();
    }
    let prepared = Run::new(&[prog.as_str(), "prepare", canary.to_str().unwrap()]).native();
    assert_eq!(prepared.status, 0, "prepare: {}", prepared.stderr_text());
    let before = snapshot(&prog, &canary);

    let volume = format!("{}:/data", vol.to_str().unwrap());
    let out =
        Run::new(&[prog.as_str(), "race", op, "/data", RACE_MS]).sandbox(&["--volume", &volume]);
    let after = snapshot(&prog, &canary);
    assert_eq!(
        after,
        before,
        "{op} through the swapped symlink changed the host canary outside the volume\n{}",
        out.stdout_text()
    );
    assert_eq!(out.status, 0, "guest failed: {}", out.stderr_text());
    let (swaps, attempts, successes) = counts(&out.stdout_text());
    assert!(
        swaps > 0 && attempts > 0,
        "the race did not run: {}",
        out.stdout_text()
    );
    if must_succeed {
        assert!(successes > 0, "{op} never succeeded: {}", out.stdout_text());
    }
}

#[test]
fn chmod_cannot_follow_a_swapped_symlink() {
    race("chmod", true);
}

#[test]
fn chown_cannot_follow_a_swapped_symlink() {
    race("chown", true);
}

#[test]
fn utimes_cannot_follow_a_swapped_symlink() {
    race("utimes", true);
}

#[test]
fn truncate_cannot_follow_a_swapped_symlink() {
    race("truncate", true);
}

#[test]
fn setxattr_cannot_follow_a_swapped_symlink() {
    race("setxattr", false);
}

#[test]
fn open_trunc_cannot_follow_a_swapped_symlink() {
    race("open_trunc", true);
}

#[test]
fn open_creat_cannot_follow_a_swapped_symlink() {
    race("open_creat", true);
}

#[test]
fn rename_cannot_move_the_symlink_target() {
    race("rename", true);
}

#[test]
fn link_cannot_link_the_symlink_target() {
    race("link", true);
}

#[test]
fn unlink_cannot_remove_the_symlink_target() {
    race("unlink", true);
}
