//! The `runsc-rs` command line itself: `--version` and the syscall table.

use runsc_rs_tests::{runsc_rs_bin, syscall_table, Run, SupportLevel};
use std::collections::HashSet;

#[test]
fn version_names_the_program_and_version() {
    let bin = runsc_rs_bin();
    let out = Run::new(&[bin.as_os_str(), "--version".as_ref()]).native();
    assert_eq!(out.status, 0, "stderr:\n{}", out.stderr_text());
    let text = out.stdout_text();
    assert!(
        text.starts_with("runsc-rs ") && text.contains(env!("CARGO_PKG_VERSION")),
        "expected `runsc-rs {}...`, got {text:?}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn syscall_table_is_one_inventory_of_linux_numbers() {
    let table = syscall_table();
    assert!(
        table.len() >= 300,
        "`runsc-rs syscalls` lists {} syscalls; it should list every x86-64 syscall with its level",
        table.len()
    );
    let mut numbers = HashSet::new();
    let mut names = HashSet::new();
    for entry in &table {
        assert!(
            numbers.insert(entry.number),
            "number {} listed twice",
            entry.number
        );
        assert!(
            names.insert(entry.name.as_str()),
            "name {} listed twice",
            entry.name
        );
    }
    for (number, name) in [
        (0, "read"),
        (1, "write"),
        (9, "mmap"),
        (12, "brk"),
        (39, "getpid"),
        (60, "exit"),
        (158, "arch_prctl"),
        (231, "exit_group"),
    ] {
        let entry = table
            .iter()
            .find(|e| e.number == number)
            .unwrap_or_else(|| panic!("syscall {number} ({name}) missing from the table"));
        assert_eq!(entry.name, name, "name of syscall {number}");
    }
}

#[test]
fn syscall_table_has_getpid_full_and_some_unsupported() {
    let table = syscall_table();
    let getpid = table
        .iter()
        .find(|e| e.name == "getpid")
        .expect("getpid listed");
    assert_eq!(getpid.number, 39);
    assert_eq!(getpid.level, SupportLevel::Full, "getpid: {getpid:?}");
    for name in ["write", "exit_group", "brk", "mmap"] {
        let entry = table.iter().find(|e| e.name == name).expect("listed");
        assert!(
            entry.level.implemented(),
            "{name} must be implemented: {entry:?}"
        );
    }
    assert!(
        table.iter().any(|e| e.level == SupportLevel::Unsupported),
        "no syscall is listed as unsupported"
    );
}
