//! Walks that reuse what earlier walks built (the sentry's dentry cache and the overlay's
//! node reuse) still see every change made through the sandbox: a file of the host layer
//! copied up, removed, replaced by a directory and back, renamed, reached through a symlink
//! that is pointed elsewhere, through `..` from a directory that moved, and from a working
//! directory whose dentry the cache no longer holds while the file is removed and created
//! again through a new one (more names are walked than the cache keeps). Each name is
//! looked up before and after every change; the guest's output is compared with the same
//! script run natively on the same tree (the sandbox run goes first: its writes go to the
//! overlay's upper layer, so the host tree is untouched for the native run).

use std::path::Path;

use runsc_rs_tests::{diff, static_busybox, Run, Scratch};

/// The script: `$1` is the tree. Every step stats and reads names the steps before walked.
const SCRIPT: &str = r#"
cd "$1" || exit 1
s() { for n in "$@"; do echo "$n: $(stat -c %F "$n" 2>&1 | sed 's/.*: //')"; done; }
s d d/f d/f; cat d/f
echo more >> d/f; s d/f; cat d/f
rm d/f; s d/f d/f
mkdir d/f; s d/f d/f/x
rmdir d/f; echo again > d/f; s d/f; cat d/f
mkdir n; echo in-n > n/g; s n/g
mv n m; s n/g m/g; cat m/g
ln -s m/g l; s l; cat l
rm l; ln -s d/f l; s l; cat l
cd m; s ../m/g ../d/f; cd ..
mv m n2; s m/g n2/g; cat n2/g
mv d/f d/f2; s d/f d/f2; cat d/f2
mv d/f2 d/f; s d/f d/f2; cat d/f
mkdir w many; echo one > w/f; cd w; s f
for i in $(seq 1200); do : > ../many/z$i; done; ls -l ../many | wc -l
s f; rm "$1/w/f"; s f f
echo two > "$1/w/f"; s f; cat f; cd ..
echo done
"#;

#[test]
fn walks_see_every_change_made_in_the_sandbox() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    // On the workspace's file system, which `runsc-rs do` shows through the root's host layer.
    let s = Scratch::under(Path::new(env!("CARGO_TARGET_TMPDIR")), "walk-cache");
    let tree = s.join("tree");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("d/f"), b"lower f\n").unwrap();
    let run = Run::new(&[busybox, "sh", "-c", SCRIPT, "sh", tree.to_str().unwrap()]);
    let sandbox = run.sandbox(&[]);
    assert_eq!(
        std::fs::read(tree.join("d/f")).unwrap(),
        b"lower f\n",
        "the sandbox wrote to the host layer"
    );
    let native = run.native();
    assert_eq!(native.status, 0, "native stderr: {}", native.stderr_text());
    assert!(native.stdout_text().ends_with("done\n"));
    assert!(
        native.stdout == sandbox.stdout && sandbox.status == 0,
        "- native, + sandbox:\n{}\nsandbox stderr: {}",
        diff(&native.stdout, &sandbox.stdout),
        sandbox.stderr_text()
    );
}
