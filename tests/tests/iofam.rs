//! Data-moving system calls and FIFOs compared with native Linux: FIFO opening rules
//! (blocking, O_NONBLOCK, O_RDWR, interruptible waits, one pipe per FIFO inode), sendfile,
//! splice, tee, vmsplice, copy_file_range, memfd_create with seals and the pipe-size fcntls.
//! The program (`tests/programs/iofam.c`) prints one line per step; both runs must match.

use runsc_rs_tests::assert_same_program;

/// Runs one section of the program natively and in the sandbox; checks the native run
/// itself shows `expect` (so a broken program cannot hide a sandbox bug).
fn section(name: &str, expect: &[&str]) {
    assert_same_program("iofam", &[name], expect);
}

#[test]
fn fifo_open_rules_match_native() {
    section(
        "fifo",
        &[
            "open wronly nonblock alone: -1 ENXIO\n",
            "read after reopen: -1 EAGAIN\n",
            "read child data: 10 'from child'\n",
            "write without reader: -1 EPIPE\n",
            "open rdonly interrupted: -1 EINTR\n",
            "open released by a passing writer: 0\n",
        ],
    );
}

#[test]
fn sendfile_splice_tee_vmsplice_copy_file_range_match_native() {
    section(
        "splice",
        &[
            "sendfile to socket: 20000\n",
            "splice same pipe: -1 EINVAL\n",
            "read tee input: 7 'teedata'\n",
            "vmspliced out: xyz\n",
            "copy_file_range overlapping: -1 EINVAL\n",
        ],
    );
}

#[test]
fn memfd_seals_and_pipe_sizes_match_native() {
    section(
        "memfd",
        &[
            "link: /memfd:test (deleted)\n",
            "write sealed: -1 EPERM\n",
            "mmap shared writable sealed: -1 EPERM\n",
            "old mapping wrote: still\n",
            "copy_file_range memfd to file: -1 EXDEV\n",
            "write more: -1 EAGAIN\n",
            "shrink below data: -1 EBUSY\n",
        ],
    );
}
