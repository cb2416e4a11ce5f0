//! AF_UNIX semantics compared with native Linux: `tests/scripts/unix_semantics.py` runs
//! natively and under `runsc-rs do` and must print the same (SO_RCVTIMEO, SOCK_RAW as
//! datagram, per-message credentials and their coalescing, MSG_CTRUNC cuts, files ending a
//! stream read, a listener's SO_PEERCRED, SO_SNDBUF-bounded datagram sends and their POLLOUT,
//! POLLHUP after a full shutdown, unknown options, the sender's name on a connection, abstract
//! names per socket type, autobind under SO_PASSCRED, SO_MARK's value and capability, fchmod
//! of a socket and the mode its bind gives the file).
//!
//! Needs a built `runsc-rs` and Debian's python3; without python3 it prints `SKIPPED: reason`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(bin: Option<&Path>, argv: &[&str], dir: &Path) -> (String, i32) {
    let mut cmd = match bin {
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
    let out = cmd.current_dir(dir).output().expect("spawn");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn unix_socket_semantics_match_native() {
    let Some(py) = ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        return runsc_rs_tests::skip("Debian's python3 is not installed");
    };
    let bin = runsc_rs_tests::runsc_rs_bin();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/unix_semantics.py");
    let script = script.to_string_lossy().into_owned();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("unix-semantics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let argv = [py, script.as_str()];
    let native = run(None, &argv, &dir);
    assert_eq!(native.1, 0, "the script fails natively: {}", native.0);
    let sandbox = run(Some(&bin), &argv, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(native, sandbox, "native vs sandbox");
}
