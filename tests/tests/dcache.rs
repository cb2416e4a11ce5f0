//! The host dentry cache (`sentry::fs::hostfs`) sees changes made on the host while the sandbox
//! runs: names replaced by other files, removed and created, and files changed in place, both
//! in a writable volume and in the root's read-only host layer (the overlay's lower layer
//! under `runsc-rs do`). The guest looks every name up once before the change (so the cache
//! holds it), hands over to the test through a file in the volume, waits for the test's
//! answer, and looks again.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use runsc_rs_tests::{static_busybox, Run, Scratch};

/// The guest's script: `$1` the volume, `$2` the same kind of tree in the host layer.
const SCRIPT: &str = r#"
for dir in "$1" "$2"; do
  cat "$dir/d/f" "$dir/same"; stat -c %s "$dir/same"; cat "$dir/gone"
  cat "$dir/new" 2>/dev/null || echo "no new"
done
touch "$1/ready"
while [ ! -e "$1/go" ]; do usleep 20000; done
for dir in "$1" "$2"; do
  cat "$dir/d/f" "$dir/same"; stat -c %s "$dir/same"
  cat "$dir/gone" 2>/dev/null || echo "gone is gone"
  cat "$dir/new"
done
"#;

fn populate(dir: &Path) {
    std::fs::create_dir_all(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/f"), b"first f\n").unwrap();
    std::fs::write(dir.join("same"), b"short\n").unwrap();
    std::fs::write(dir.join("gone"), b"still here\n").unwrap();
}

/// What the host does behind the guest's back.
fn change(dir: &Path) {
    std::fs::rename(dir.join("d"), dir.join("d.old")).unwrap();
    std::fs::create_dir(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/f"), b"second f\n").unwrap();
    // In place: the same inode, longer.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("same"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"and longer\n"))
        .unwrap();
    std::fs::remove_file(dir.join("gone")).unwrap();
    std::fs::write(dir.join("new"), b"new file\n").unwrap();
}

#[test]
fn host_changes_are_seen_through_the_cache() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    // On the workspace's file system, which `runsc-rs do` shows through the root's host layer.
    let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "dcache");
    let vol = s.join("vol");
    let lower = s.join("lower");
    populate(&vol);
    populate(&lower);
    let changer = {
        let (vol, lower) = (vol.clone(), lower.clone());
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !vol.join("ready").exists() {
                if Instant::now() > deadline {
                    return false;
                }
                thread::sleep(Duration::from_millis(20));
            }
            change(&vol);
            change(&lower);
            std::fs::write(vol.join("go"), b"").unwrap();
            true
        })
    };
    let volume = format!("{}:/mnt/vol", vol.display());
    let out = Run::new(&[
        busybox,
        "sh",
        "-c",
        SCRIPT,
        "sh",
        "/mnt/vol",
        lower.to_str().unwrap(),
    ])
    .sandbox(&["--volume", &volume]);
    let changed = changer.join().unwrap();
    assert!(changed, "the guest never got ready: {}", out.stderr_text());
    assert_eq!(out.status, 0, "stderr: {}", out.stderr_text());
    let before = "first f\nshort\n6\nstill here\nno new\n";
    let after = "second f\nshort\nand longer\n17\ngone is gone\nnew file\n";
    assert_eq!(
        out.stdout_text(),
        [before, before, after, after].concat(),
        "stderr: {}",
        out.stderr_text()
    );
}
