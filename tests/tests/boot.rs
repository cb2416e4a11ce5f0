//! `runsc-rs do` boots through the same `boot::Loader` as the containerd shim: the seccomp
//! allowlist it installs is the one `runsc-rs syscalls --host` prints, and its first process
//! gets the caller's context (hostname, umask, working directory) through the process spec,
//! as a container's init gets its spec's, compared here with the same commands run natively.

use std::path::PathBuf;

use runsc_rs_tests::{
    effective_platform, host_calls_installed, host_calls_listed, runsc_rs_bin, skip, Run,
};

/// The platform both sides of a comparison use.
fn platform() -> String {
    effective_platform()
}

/// A fresh directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runsc-rs-boot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn do_installs_the_allowlist_that_syscalls_host_prints() {
    let bin = runsc_rs_bin();
    let platform = platform();
    let listed = Run::new(&[
        bin.as_os_str(),
        "syscalls".as_ref(),
        "--host".as_ref(),
        "--platform".as_ref(),
        platform.as_ref(),
    ])
    .native();
    assert_eq!(listed.status, 0, "stderr:\n{}", listed.stderr_text());
    let printed = host_calls_listed(&listed.stdout_text());
    assert!(printed.len() > 20, "{}", listed.stdout_text());

    let dir = scratch("seccomp");
    let log = dir.join("debug.log");
    let ran = Run::new(&[
        bin.as_os_str(),
        "do".as_ref(),
        "--platform".as_ref(),
        platform.as_ref(),
        "--debug-log".as_ref(),
        log.as_os_str(),
        "--".as_ref(),
        "true".as_ref(),
    ])
    .native();
    assert_eq!(ran.status, 0, "stderr:\n{}", ran.stderr_text());
    let text = std::fs::read_to_string(&log).unwrap();
    let installed = host_calls_installed(&text);
    assert_eq!(
        installed, printed,
        "`runsc-rs do` installed another list than `syscalls --host` prints"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn do_runs_with_the_callers_hostname_umask_and_directory() {
    if !std::path::Path::new("/bin/sh").exists() {
        skip("no /bin/sh");
        return;
    }
    let dir = scratch("context");
    let probe = "umask; cat /proc/sys/kernel/hostname; pwd; echo made >f; ls -l f | cut -c1-10";
    let native_run = Run::new(&[
        "sh",
        "-c",
        "cd \"$0\" && umask 027 && sh -c \"$1\"",
        &dir.to_string_lossy(),
        probe,
    ])
    .native();
    let sandboxed = Run::new(&[
        "sh",
        "-c",
        "cd \"$0\" && umask 027 && exec \"$1\" do --platform \"$2\" -- sh -c \"$3\"",
        &dir.to_string_lossy(),
        &runsc_rs_bin().to_string_lossy(),
        &platform(),
        probe,
    ])
    .native();
    assert_eq!(native_run.status, 0, "{}", native_run.stderr_text());
    assert_eq!(
        sandboxed.stdout_text(),
        native_run.stdout_text(),
        "stderr:\n{}",
        sandboxed.stderr_text()
    );
    assert!(native_run.stdout_text().starts_with("0027\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
