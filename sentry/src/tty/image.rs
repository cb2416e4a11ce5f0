//! The checkpoint image of the sentry's pseudo-terminals ([`super::pty`]): what a pair
//! holds, saved with every open file of either end ([`PtyImage`]), and put back by
//! [`super::pty::Pty::restored`].
//!
//! A pair is saved whole with each file that opens it (as a pipe's bytes are with each
//! end); `id` tells the files of one pair apart from another's, and a restore makes the
//! pair once, from the first file that names it. Saved: the number, the `TIOCSPTLCK` lock,
//! packet mode and the status a packet-mode master has not read yet, whether the pair hung
//! up (its master closed) and whether a slave was ever opened, the termios and window
//! size, the line discipline's buffers in both directions (input ready for the slave,
//! the line being edited, raw input not yet processed, output for the master, the output
//! column), the session the pair controls with its foreground group, and the slave node's
//! mode and owner.
//!
//! The container's console (a [`super::HostTty`]: the slave of a host pty whose master
//! went to the runtime's console socket) is no pair of the sentry's: its line discipline
//! is the host's. Its image ([`ConsoleImage`]) is what a restore puts onto the console of
//! its own invocation: the termios and window size read from the host pty, the session
//! it controls with the foreground group, and its `/dev/pts` node. Input and output the
//! host pty buffered are the host's and are not saved.

use serde::{Deserialize, Serialize};

use crate::abi::{Termios, Winsize};

/// Which end of a pair an open file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PtyEnd {
    Master,
    Slave,
}

/// One pty pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyImage {
    /// Equal for the files of one pair in one image (numbers may repeat: a hung-up pair's
    /// number is free for a new pair).
    pub id: usize,
    pub index: u32,
    pub locked: bool,
    pub hung_up: bool,
    pub slave_opened: bool,
    pub packet: bool,
    /// `TIOCPKT_*` status bits not read by the master yet.
    pub packet_status: u8,
    /// The session the pair controls (global ID; 0: none), its foreground process group,
    /// and whether the master end was made the controlling terminal.
    pub session: i32,
    pub foreground: i32,
    pub by_master: bool,
    pub ldisc: LdiscImage,
    /// The slave node `/dev/pts/N` while the pair is not hung up.
    pub node: Option<NodeImage>,
}

/// The container's console, saved with every open file of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleImage {
    /// Read from the host pty (the host's line discipline keeps them).
    pub termios: TermiosImage,
    /// Rows, columns, x and y pixels.
    pub winsize: [u16; 4],
    /// The session it controls (global ID; 0: none) and its foreground process group.
    pub session: i32,
    pub foreground: i32,
    /// Its node `/dev/pts/N` of the container's devpts: the number, mode and owner (None:
    /// it had no node).
    pub node: Option<(u32, NodeImage)>,
}

/// The slave node's permission bits and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeImage {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The line discipline's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdiscImage {
    pub termios: TermiosImage,
    /// Rows, columns, x and y pixels.
    pub winsize: [u16; 4],
    /// Input the slave can read (complete lines in canonical mode).
    pub ready: Vec<Vec<u8>>,
    /// The canonical line being edited.
    pub line: Vec<u8>,
    /// The next input byte is taken literally (after LNEXT).
    pub literal: bool,
    /// Raw input written by the master, not processed yet.
    pub pending: Vec<u8>,
    /// Output for the master's reader.
    pub output: Vec<u8>,
    pub column: usize,
}

/// `struct termios`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermiosImage {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: Vec<u8>,
}

impl From<&Termios> for TermiosImage {
    fn from(t: &Termios) -> Self {
        TermiosImage {
            iflag: t.iflag,
            oflag: t.oflag,
            cflag: t.cflag,
            lflag: t.lflag,
            line: t.line,
            cc: t.cc.to_vec(),
        }
    }
}

impl TermiosImage {
    /// The termios.
    ///
    /// # Errors
    /// A message when the control characters are not 19.
    pub fn termios(&self) -> Result<Termios, String> {
        Ok(Termios {
            iflag: self.iflag,
            oflag: self.oflag,
            cflag: self.cflag,
            lflag: self.lflag,
            line: self.line,
            cc: self
                .cc
                .as_slice()
                .try_into()
                .map_err(|_| format!("a termios with {} control characters", self.cc.len()))?,
        })
    }
}

pub fn winsize_image(w: &Winsize) -> [u16; 4] {
    [w.row, w.col, w.xpixel, w.ypixel]
}

pub fn winsize(w: [u16; 4]) -> Winsize {
    Winsize {
        row: w[0],
        col: w[1],
        xpixel: w[2],
        ypixel: w[3],
    }
}
