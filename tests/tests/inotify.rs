//! inotify and O_TMPFILE compared with native Linux (the programs make their own
//! directories with mkdtemp: in the sandbox /tmp is an in-memory overlay of the host's).

use runsc_rs_tests::assert_same_program;

#[test]
fn inotify_events_match_native() {
    // The native run shows the behaviours under test (a broken program cannot hide a
    // sandbox bug): cookies on renames, IN_ISDIR, one-shot, deletion of a watched file,
    // a blocking read woken by another process, the queue's overflow, the order of an
    // rmdir's events, ESPIPE before EBADF for pwrite.
    assert_same_program(
        "inotify",
        &[],
        &[
            "1 0x40 f 1\n1 0x80 g 1\n",
            "1 0x40000100 sub 0\n",
            "2 0x2 - 0\n2 0x8000 - 0\n",
            "0x400 - 0\n1 0x8000 - 0\n",
            "small read -1 EINVAL\n",
            "epoll event 1 0x1 7\nepoll again 0\nepoll new event 1\n",
            "blocking read 1 0x100 from-child\n",
            "overflow events 16385 overflows 1 last -1 0x4000\n",
            "pwrite on inotify -1 ESPIPE\n",
            "== rmdir watched\n2 0x400 - 0\n2 0x8000 - 0\n1 0x40000200 gone 0\n",
            // Unlinked while open: no link left, IN_EXCL_UNLINK watches ignore the file,
            // IN_DELETE_SELF waits for the last close (of a directory too).
            "unlinked open file nlink 0\n",
            "== closed excluded\n2 0x400 - 0\n2 0x8000 - 0\n",
            "== closed not excluded\n3 0x8 - 0\n3 0x400 - 0\n3 0x8000 - 0\n",
            "== closed directory\n4 0x40000010 - 0\n4 0x400 - 0\n4 0x8000 - 0\n",
        ],
    );
}

#[test]
fn o_tmpfile_matches_native() {
    assert_same_program(
        "otmpfile",
        &[],
        &[
            "fstat nlink 0 size 5",
            "linkat 0 -\n",
            "linkat-excl -1 ENOENT\n",
            "rdonly -1 EINVAL\n",
        ],
    );
}
