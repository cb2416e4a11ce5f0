//! Debian's static busybox in the sandbox, against the same applets run natively.

use runsc_rs_tests::{assert_same, run_sandbox, static_busybox};

#[test]
fn busybox_echo_hello() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let out = run_sandbox(&[busybox, "echo", "hello"], &[]);
    assert_eq!(
        out.stdout_text(),
        "hello\n",
        "stderr:\n{}",
        out.stderr_text()
    );
    assert_eq!(out.status, 0);
}

#[test]
fn busybox_true_and_false_exit_statuses() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let (native, _) = assert_same(&[busybox, "true"]);
    assert_eq!(native.status, 0);
    let (native, _) = assert_same(&[busybox, "false"]);
    assert_eq!(native.status, 1);
}

#[test]
fn busybox_echo_arguments() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let (native, _) = assert_same(&[
        busybox,
        "echo",
        "-n",
        "two words",
        "",
        "tab\there",
        "ünïcödé",
    ]);
    assert_eq!(native.stdout_text(), "two words  tab\there ünïcödé");
}

/// The README's run command.
#[test]
fn readme_command_prints_hello_from_the_sandbox() {
    let Some(busybox) = static_busybox() else {
        return;
    };
    let out = run_sandbox(&[busybox, "sh", "-c", "echo hello from the sandbox"], &[]);
    assert_eq!(
        out.stdout_text(),
        "hello from the sandbox\n",
        "stderr:\n{}",
        out.stderr_text()
    );
    assert_eq!(out.status, 0);
}
