//! execveat(2) (`tests/programs/execveat.c`): lookups from a directory fd and the cwd, an
//! empty path with AT_EMPTY_PATH on O_PATH, read-only, close-on-exec and memfd fds (glibc's
//! fexecve), AT_SYMLINK_NOFOLLOW, every error case, and what the new program sees: AT_EXECFN
//! (`/dev/fd/N[/path]` when an fd named the file), /proc/self/exe and comm; scripts named
//! through an fd get `/dev/fd/N` as `$0`, or ENOENT when that fd is close-on-exec. All as
//! natively.

use runsc_rs_tests::assert_same_program;

#[test]
fn execveat_resolves_flags_and_names_as_natively() {
    assert_same_program(
        "execveat",
        &[],
        &[
            "relative to dirfd:ran: argv0=argv0 execfn=/dev/fd/3/prog exe=$T/prog comm=prog\n",
            "O_PATH fd, AT_EMPTY_PATH:ran: argv0=argv0 execfn=/dev/fd/4 exe=$T/prog",
            "O_PATH fd, empty path, no AT_EMPTY_PATH: ENOENT\n",
            "dirfd, AT_EMPTY_PATH: EACCES\n",
            "file fd as the directory: ENOTDIR\n",
            "bad fd: EBADF\n",
            "unknown flags: EINVAL\n",
            "symlink, AT_SYMLINK_NOFOLLOW: ELOOP\n",
            "symlinked directory, AT_SYMLINK_NOFOLLOW:ran:",
            "script fd, AT_EMPTY_PATH: script $0=/dev/fd/8\n",
            "close-on-exec script fd, AT_EMPTY_PATH: ENOENT\n",
            "memfd, AT_EMPTY_PATH:ran: argv0=argv0 execfn=/dev/fd/11 exe=/memfd:image (deleted)",
            "memfd script, AT_EMPTY_PATH: script $0=/dev/fd/12\n",
            "fexecve:ran: argv0=argv0 execfn=/dev/fd/5 exe=$T/prog",
        ],
    );
}
