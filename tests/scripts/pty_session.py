"""Drives programs on a pty, as a terminal user would: a shell with job control, ^C into
cat, line editing, hang-up. Prints facts that native Linux and the sandbox must agree on."""
# A shell with job control on a pty: background job, jobs, kill %1; then ^C into cat.
import os, pty, sys, time, select, signal

# The terminal's signals act by default whatever the launcher ignored (a background job of a
# non-interactive shell starts with SIGINT and SIGQUIT ignored, nohup ignores SIGHUP, and an
# ignored signal stays ignored across fork and exec).
for _sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
    signal.signal(_sig, signal.SIG_DFL)

def drive(argv, steps, timeout=20):
    pid, m = pty.fork()
    if pid == 0:
        os.environ["PS1"] = "$ "
        os.execvp(argv[0], argv)
    out = b""
    for send, wait_for in steps:
        if send is not None:
            os.write(m, send)
        deadline = time.time() + timeout
        while wait_for not in out and time.time() < deadline:
            r, _, _ = select.select([m], [], [], 0.5)
            if r:
                try:
                    d = os.read(m, 4096)
                except OSError:
                    break
                if not d:
                    break
                out += d
        if wait_for not in out:
            print("MISSING", wait_for, file=sys.stderr)
            print(out, file=sys.stderr)
    _, status = os.waitpid(pid, 0)
    return out, status

mode = sys.argv[1]
if mode == "jobs":
    out, status = drive(["sh", "-i"], [
        (None, b"$ "),
        (b"sleep 10 &\n", b"$ "),
        (b"jobs\n", b"Running"),
        # kill %1 before the job has exec'd sleep would hit the forked shell while it still
        # ignores SIGTERM as an interactive shell does, and the signal would be lost (natively
        # too): wait until the job is sleep.
        (b'until [ "$(cat /proc/$!/comm 2>/dev/null)" = sleep ]; do sleep 0.05; done; '
         b'echo E""XECED\n', b"EXECED"),
        # kill and wait on one line: with a prompt between them, whether the shell has
        # already reported (and forgotten) the job depends on how fast SIGCHLD comes.
        (b'kill %1; wait %1; echo W""AITED $?\n', b"WAITED "),
        (b"exit 3\n", b"exit 3"),
    ])
    print("running listed", b"Running" in out and b"sleep 10" in out)
    import re
    print("waited", re.findall(rb"WAITED (\d+)", out)[-1:])
    print("status", os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1)
elif mode == "intr":
    out, status = drive(["cat"], [(b"hello\n", b"hello\r\nhello\r\n"), (b"\x03", b"^C")])
    print("echo and copy", out.count(b"hello") == 2)
    print("signaled", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT)
elif mode == "erase":
    out, status = drive(["head", "-n1"], [(b"abcd\x7f\x7fXY\x15good\x7fd line\n", b"good line\r\n")])
    print(repr(out.split(b"\r\n")[-2]))
    print("status", os.WEXITSTATUS(status))
elif mode == "hangup":
    # The child ignores nothing: the master's close sends SIGHUP to the session.
    pid, m = pty.fork()
    if pid == 0:
        os.execvp("sh", ["sh", "-c", "echo ready; read x; echo never"])
    buf = b""
    while b"ready" not in buf:
        buf += os.read(m, 100)
    os.close(m)
    _, status = os.waitpid(pid, 0)
    print("hup", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGHUP, os.WIFEXITED(status) and os.WEXITSTATUS(status))
