//! The ELF loader maps segments from the executable's file, as Linux does: `/proc/self/maps`
//! names the binary and the dynamic linker for their segments with Linux's permissions, a
//! `.bss` that begins mid-page reads as zero while the initialized data before it is intact,
//! and a write to a global stays private to its process (the file and a later process running
//! the same binary keep the original bytes). A segment that cannot be mapped (file offset and
//! address disagreeing within the page, an address that overflows) fails after exec's point of
//! no return, so execve does not return and the process dies of SIGSEGV, while a segment
//! reaching past the end of the file maps what the file has.
//!
//! Each test checks the native run against what Linux must show, then the sandbox against it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use runsc_rs_tests::{assert_same, program_str, run_native, run_sandbox, skip, target_dir};

/// `(path, permissions)` of the file-backed mappings in a maps text whose path is `exe` or
/// whose file name starts with `ld-linux` (the dynamic linker).
fn image_mappings(maps: &str, exe: &str) -> BTreeSet<(String, String)> {
    maps.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let (perms, path) = (fields.get(1)?, fields.get(5)?);
            let name = path.rsplit('/').next().unwrap_or(path);
            (*path == exe || name.starts_with("ld-linux"))
                .then(|| ((*path).to_owned(), (*perms).to_owned()))
        })
        .collect()
}

#[test]
fn maps_of_a_dynamic_program_name_its_files() {
    let cat = match std::fs::canonicalize("/usr/bin/cat") {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(e) => return skip(&format!("no /usr/bin/cat: {e}")),
    };
    let argv = [cat.as_str(), "/proc/self/maps"];
    let native = run_native(&argv);
    assert_eq!(native.status, 0, "{}", native.stderr_text());
    let want = image_mappings(&native.stdout_text(), &cat);
    // Linux: the executable's read-only, text and data segments, and the linker's.
    for perms in ["r--p", "r-xp", "rw-p"] {
        assert!(
            want.contains(&(cat.clone(), perms.to_owned())),
            "native maps lack {perms} {cat}: {want:?}"
        );
        assert!(
            want.iter()
                .any(|(p, m)| p.contains("ld-linux") && m == perms),
            "native maps lack {perms} of the dynamic linker: {want:?}"
        );
    }
    let sandbox = run_sandbox(&argv, &[]);
    assert_eq!(sandbox.status, 0, "{}", sandbox.stderr_text());
    let maps = sandbox.stdout_text();
    let got = image_mappings(&maps, &cat);
    assert_eq!(got, want, "sandbox maps:\n{maps}");
    // The file mappings carry the file's inode, not 0 as anonymous memory does.
    for l in maps.lines().filter(|l| l.ends_with(&cat)) {
        let ino = l.split_whitespace().nth(4).unwrap_or("0");
        assert_ne!(ino, "0", "{l}");
    }
}

/// Lines `elf_bss` prints when every check holds (Linux's behaviour).
const BSS_EXPECTED: &str = "data ends mid-page: yes
bss array covers the rest of that page: yes
data intact: yes
bss zero: yes
file has data after .data: yes
child that writes: 0
own write kept: yes
second child sees the file's data: 0
file unchanged: yes
";

fn check_bss_program(path: &str) {
    let (native, sandbox) = assert_same(&[path]);
    assert_eq!(native.stdout_text(), BSS_EXPECTED);
    assert_eq!(native.status, 0);
    assert_eq!(sandbox.status, 0);
}

#[test]
fn bss_mid_page_and_private_globals_static() {
    let Some(prog) = program_str("elf_bss") else {
        return;
    };
    check_bss_program(&prog);
}

#[test]
fn bss_mid_page_and_private_globals_dynamic() {
    let src = runsc_rs_tests::workspace_dir().join("tests/programs/elf_bss.c");
    let dir = target_dir().join("test-programs");
    std::fs::create_dir_all(&dir).unwrap();
    let out: PathBuf = dir.join("elf_bss_dynamic");
    match Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("cc {} failed: {s}", src.display()),
        Err(e) => return skip(&format!("no C compiler: {e}")),
    }
    check_bss_program(out.to_str().expect("UTF-8 target path"));
}

/// What `elf_late_fail` prints natively.
const LATE_FAIL_EXPECTED: &str = "well formed: exit 7\n\
unaligned offset: killed by Segmentation fault\n\
pie overflow: killed by Segmentation fault\n\
past the end of the file: exit 7\n\
done\n";

#[test]
fn unmappable_segments_fail_past_the_point_of_no_return() {
    let Some(prog) = program_str("elf_late_fail") else {
        return;
    };
    let (native, sandbox) = assert_same(&[&prog]);
    assert_eq!(native.stdout_text(), LATE_FAIL_EXPECTED);
    assert_eq!(sandbox.status, 0);
}

/// What `elf_anon_segment` prints natively: the page of a read-only segment with no file part
/// is Linux's anonymous bss page, writable and unnamed.
const ANON_SEGMENT_EXPECTED: &str = "anon page: rw-p, no name\nchild: exit 7\n";

#[test]
fn segment_without_file_part_is_a_writable_anonymous_page() {
    let Some(prog) = program_str("elf_anon_segment") else {
        return;
    };
    let (native, sandbox) = assert_same(&[&prog]);
    assert_eq!(native.stdout_text(), ANON_SEGMENT_EXPECTED);
    assert_eq!(sandbox.status, 0);
}
