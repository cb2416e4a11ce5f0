//! A process's stdio: containerd's FIFOs turned into descriptors for the sandbox.
//!
//! - stdout/stderr: the FIFO is opened read-write, so opening never blocks, writes never
//!   fail with EPIPE while containerd is away (a restart), and the sandbox holds the only
//!   write end: the reader sees EOF exactly when the process's last copy closes. `file://`
//!   paths are appended to.
//! - stdin: the process gets the read end of a pipe; a copier thread copies the FIFO into
//!   it. The shim holds a write end of the FIFO itself, as runc's shim does, so a client
//!   that goes away (`ctr run -d` exiting) is not an end of input. CloseIO drops that write
//!   end: the copier then delivers everything containerd wrote and closes the pipe, so the
//!   process sees EOF after the last byte, never before.
//! - an empty path is `/dev/null`.
//! - `terminal=true` ([`open_console`]): the shim owns a host pty. Its slave goes to the
//!   sandbox (the process's stdin, stdout and stderr; the host pty does the line
//!   discipline); copier threads move stdin FIFO → master and master → stdout FIFO. The
//!   output copier ends when the last slave fd in the sandbox closes (EIO on the master),
//!   which is when the process's output is complete.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{mpsc, Mutex};

use sentry::boot::control::StdioPresent;

use crate::error::{Error, Result};

/// The shim's hold on a process's stdin: a write end of the stdin FIFO.
#[derive(Debug, Default)]
pub struct StdinHandle {
    keepalive: Mutex<Option<File>>,
}

impl StdinHandle {
    /// CloseIO: the end of what containerd has written becomes the process's EOF (the copier
    /// still delivers all of it).
    pub fn close(&self) {
        self.keepalive.lock().unwrap().take();
    }
}

/// Descriptors for the sandbox, in stdin, stdout, stderr order.
#[derive(Debug)]
pub struct Opened {
    pub fds: Vec<OwnedFd>,
    pub present: StdioPresent,
    pub stdin: StdinHandle,
}

fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.into(),
        source,
    }
}

fn dev_null(write: bool) -> Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map_err(io_err("opening", "/dev/null"))?;
    Ok(f.into())
}

fn output(path: &str) -> Result<OwnedFd> {
    if path.is_empty() {
        return dev_null(true);
    }
    let file = if let Some(file) = path.strip_prefix("file://") {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)
            .map_err(io_err("opening", path))?
    } else if path.contains("://") {
        return Err(Error::Unsupported("stdio URIs other than fifo and file://"));
    } else {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io_err("opening", path))?
    };
    clear_nonblock(&file, path)?;
    Ok(file.into())
}

fn clear_nonblock(file: &File, path: &str) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let errno = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
    let flags = fcntl(std::os::fd::AsRawFd::as_raw_fd(file), FcntlArg::F_GETFL)
        .map_err(|e| io_err("fcntl", path)(errno(e)))?;
    let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(file),
        FcntlArg::F_SETFL(flags),
    )
    .map_err(|e| io_err("fcntl", path)(errno(e)))?;
    Ok(())
}

fn input(path: &str) -> Result<(OwnedFd, StdinHandle)> {
    if path.is_empty() {
        return Ok((dev_null(false)?, StdinHandle::default()));
    }
    let (reader, writer) = std::io::pipe().map_err(io_err("pipe for", path))?;
    let handle = spawn_stdin_copier(path, File::from(OwnedFd::from(writer)), Box::new(|_| ()))?;
    Ok((reader.into(), handle))
}

/// What the stdin copier shows each chunk to before passing it on (the console's typed
/// signal keys).
type Inspect = Box<dyn Fn(&[u8]) + Send>;

/// Opens the stdin FIFO at `path` and starts a thread copying it into `dst`, showing each
/// chunk to `inspect` first; `dst` is closed when the FIFO reaches its end after CloseIO.
///
/// The read end is opened non-blocking (containerd may not have opened its end yet), which
/// lets the shim open its own write end at once; both are then made blocking.
fn spawn_stdin_copier(path: &str, dst: File, inspect: Inspect) -> Result<StdinHandle> {
    let fifo = |write: bool| {
        OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err("opening", path))
    };
    let src = fifo(false)?;
    let keepalive = fifo(true)?;
    clear_nonblock(&src, path)?;
    std::thread::Builder::new()
        .name("stdin-copy".into())
        .spawn(move || copy_stdin(src, dst, &*inspect))
        .map_err(io_err("starting the stdin copier for", path))?;
    Ok(StdinHandle {
        keepalive: Mutex::new(Some(keepalive)),
    })
}

/// Copies `src` into `dst` until `src` ends (every writer of the FIFO, the shim's included,
/// has closed it) or `dst` is gone (the process closed its stdin), then closes `dst`.
fn copy_stdin(mut src: File, mut dst: File, inspect: &dyn Fn(&[u8])) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("reading stdin: {e}");
                break;
            }
        };
        inspect(&buf[..n]);
        if dst.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// The shim's side of a process's terminal.
#[derive(Debug)]
pub struct Console {
    master: OwnedFd,
    /// Closed (disconnected) when the output copier has written everything.
    output_done: Mutex<mpsc::Receiver<()>>,
}

impl Console {
    /// ResizePty: sets the pty's window size (the sandbox then sends SIGWINCH).
    ///
    /// # Errors
    /// The host ioctl failed.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&self.master, ws)
            .map_err(|e| io_err("resizing", "the console")(e.into()))
    }

    /// Waits (at most `timeout`) until the terminal's output has all been copied.
    pub fn wait_output(&self, timeout: std::time::Duration) {
        let rx = self.output_done.lock().unwrap();
        let _ = rx.recv_timeout(timeout);
    }
}

fn cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(fd),
        FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC),
    )
    .map(drop)
    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
}

/// The signals typed input raises on a terminal in `termios` (`^C`, `^\`, `^Z` with
/// `ISIG`), in order.
fn typed_signals(termios: &libc::termios, input: &[u8]) -> Vec<i32> {
    if termios.c_lflag & libc::ISIG == 0 {
        return Vec::new();
    }
    let keys = [
        (termios.c_cc[libc::VINTR], libc::SIGINT),
        (termios.c_cc[libc::VQUIT], libc::SIGQUIT),
        (termios.c_cc[libc::VSUSP], libc::SIGTSTP),
    ];
    input
        .iter()
        .filter_map(|b| {
            keys.iter()
                // 0 is _POSIX_VDISABLE: the key is switched off.
                .find(|(key, _)| *key != 0 && key == b)
                .map(|(_, sig)| *sig)
        })
        .collect()
}

/// Opens a terminal for a process: a host pty whose slave is the only fd for the sandbox
/// (as stdin), with copiers to and from containerd's FIFOs (stderr goes to the terminal).
///
/// Typed `^C`/`^\`/`^Z` reach the host pty, whose `ISIG` handling drops them: it has no
/// session of its own to signal. The input copier sees them first and hands the signal to
/// `signal_foreground`, which has the sandbox signal the terminal's foreground group.
///
/// # Errors
/// The pty or a FIFO could not be opened.
pub fn open_console(
    stdin: &str,
    stdout: &str,
    signal_foreground: Box<dyn Fn(i32) + Send>,
) -> Result<(Opened, Console)> {
    let pty = nix::pty::openpty(None, None)
        .map_err(|e| io_err("opening", "a pty")(std::io::Error::from_raw_os_error(e as i32)))?;
    cloexec(&pty.master).map_err(io_err("fcntl", "the pty master"))?;
    cloexec(&pty.slave).map_err(io_err("fcntl", "the pty slave"))?;
    let out = File::from(output(stdout)?);
    let reader = File::from(
        pty.master
            .try_clone()
            .map_err(io_err("dup", "the pty master"))?,
    );
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("console-out".into())
        .spawn(move || {
            copy_console_output(reader, out);
            drop(done_tx);
        })
        .map_err(io_err("starting the console copier for", stdout))?;
    let handle = if stdin.is_empty() {
        StdinHandle::default()
    } else {
        let writer = File::from(
            pty.master
                .try_clone()
                .map_err(io_err("dup", "the pty master"))?,
        );
        let master = pty
            .master
            .try_clone()
            .map_err(io_err("dup", "the pty master"))?;
        let inspect = move |input: &[u8]| {
            // Termios calls on the master act on the pty pair's (the slave's) settings.
            let Ok(termios) = nix::sys::termios::tcgetattr(&master) else {
                return;
            };
            for signo in typed_signals(&termios.into(), input) {
                signal_foreground(signo);
            }
        };
        spawn_stdin_copier(stdin, writer, Box::new(inspect))?
    };
    let opened = Opened {
        fds: vec![pty.slave],
        present: StdioPresent {
            stdin: true,
            stdout: false,
            stderr: false,
        },
        stdin: handle,
    };
    let console = Console {
        master: pty.master,
        output_done: Mutex::new(done_rx),
    };
    Ok((opened, console))
}

/// Copies the terminal's output until every slave fd is closed (EIO).
fn copy_console_output(mut master: File, mut out: File) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: the last slave fd closed.
            Err(_) => break,
        };
        if out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Opens the three streams containerd named.
///
/// # Errors
/// A FIFO or file could not be opened, or an unsupported URI.
pub fn open(stdin: &str, stdout: &str, stderr: &str) -> Result<Opened> {
    let (stdin_fd, handle) = input(stdin)?;
    let fds = vec![stdin_fd, output(stdout)?, output(stderr)?];
    Ok(Opened {
        fds,
        present: StdioPresent {
            stdin: true,
            stdout: true,
            stderr: true,
        },
        stdin: handle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn fifo_output_opens_without_a_reader() {
        let dir = std::env::temp_dir().join(format!("shim-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fd = output(fifo.to_str().unwrap()).unwrap();
        let mut f = File::from(fd);
        f.write_all(b"hi").unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn typed_interrupt_keys_become_signals() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut t: libc::termios = nix::sys::termios::tcgetattr(&pty.slave).unwrap().into();
        assert_eq!(
            typed_signals(&t, b"ab\x03c\x1c\x1a"),
            [libc::SIGINT, libc::SIGQUIT, libc::SIGTSTP]
        );
        t.c_lflag &= !libc::ISIG;
        assert!(typed_signals(&t, b"\x03").is_empty());
    }

    /// A FIFO in a fresh directory, removed on drop.
    struct Fifo {
        dir: PathBuf,
        path: PathBuf,
    }

    impl Fifo {
        fn new(tag: &str) -> Fifo {
            let dir = std::env::temp_dir().join(format!("shim-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("in");
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            Fifo { dir, path }
        }

        fn client(&self) -> File {
            OpenOptions::new().write(true).open(&self.path).unwrap()
        }
    }

    impl Drop for Fifo {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn readable_within(f: &File, ms: u16) -> bool {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        nix::poll::poll(&mut fds, ms).unwrap() > 0
    }

    #[test]
    fn stdin_ends_at_close_io_not_when_the_client_leaves() {
        let fifo = Fifo::new("in");
        let (reader, handle) = input(fifo.path.to_str().unwrap()).unwrap();
        let mut reader = File::from(reader);
        let mut client = fifo.client();
        client.write_all(b"abc").unwrap();
        drop(client);
        let mut got = [0u8; 3];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abc");
        // The client is gone (a detached `ctr run -d` exited): no EOF yet.
        assert!(
            !readable_within(&reader, 300),
            "stdin ended without CloseIO"
        );
        handle.close();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn close_io_delivers_everything_written_before_it() {
        let fifo = Fifo::new("all");
        let (reader, handle) = input(fifo.path.to_str().unwrap()).unwrap();
        // More than the pipe and one copier chunk hold (64 + 32 KiB), less than they and the
        // FIFO do: the client's writes all complete while nothing reads.
        let data: Vec<u8> = (0..128 * 1024usize)
            .map(|i| (i * 7 + i / 4096) as u8)
            .collect();
        let reading = std::thread::spawn(move || {
            // The process reads only after CloseIO: data is still in the FIFO then.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let mut got = Vec::new();
            File::from(reader).read_to_end(&mut got).unwrap();
            got
        });
        let mut client = fifo.client();
        client.write_all(&data).unwrap();
        drop(client);
        handle.close();
        let got = reading.join().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "stdin arrived altered");
    }
}
