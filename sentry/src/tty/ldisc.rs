//! The sentry's own line discipline (Linux's `N_TTY`) for its pseudo-terminals.
//!
//! Pure state, no locks and no tasks: the pty holds it under its lock and turns what it
//! returns (signals for the foreground group) into actions after letting the lock go.
//!
//! Input (what the master writes, for the slave to read): `ISTRIP`, `IGNCR`/`ICRNL`/`INLCR`;
//! with `ISIG` the INTR, QUIT and SUSP characters become signals; with `ICANON` a line is
//! edited (ERASE, WERASE, KILL) and only complete lines (ended by NL, EOL, EOL2 or EOF) can
//! be read; echo (`ECHO`, `ECHOE`, `ECHOK`, `ECHOKE`, `ECHONL`, `ECHOCTL`). Output (what the
//! slave writes and the echo, for the master to read): `OPOST` with `ONLCR`, `OCRNL`,
//! `ONOCR`, `ONLRET`.

use std::collections::VecDeque;

use crate::abi::{Termios, Winsize};

/// Bytes the slave's input side holds (Linux's `N_TTY_BUF_SIZE`); a canonical line is at
/// most one less, so that its terminator always fits.
pub const INPUT_MAX: usize = 4096;

/// Bytes of output waiting for the master's reader before a slave writer blocks.
pub const OUTPUT_MAX: usize = 16384;

/// Raw input the master may write ahead of the line discipline (Linux's tty flip buffer,
/// `TTYB_DEFAULT_MEM_LIMIT`): it is processed as the slave's reader makes room.
pub const PENDING_MAX: usize = 65536;

const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
pub const VTIME: usize = 5;
pub const VMIN: usize = 6;
const VSUSP: usize = 10;
const VEOL: usize = 11;
const VWERASE: usize = 14;
const VLNEXT: usize = 15;
const VEOL2: usize = 16;

/// The termios Linux gives a new pty slave (`tty_std_termios`, B38400).
pub fn default_termios() -> Termios {
    let mut cc = [0u8; 19];
    let chars: [(usize, u8); 13] = [
        (VINTR, 0x03),
        (VQUIT, 0x1c),
        (VERASE, 0x7f),
        (VKILL, 0x15),
        (VEOF, 0x04),
        (VTIME, 0),
        (VMIN, 1),
        (8, 0x11), // VSTART
        (9, 0x13), // VSTOP
        (VSUSP, 0x1a),
        (12, 0x12), // VREPRINT
        (13, 0x0f), // VDISCARD
        (VWERASE, 0x17),
    ];
    for (i, c) in chars {
        cc[i] = c;
    }
    cc[VLNEXT] = 0x16;
    Termios {
        iflag: libc::ICRNL | libc::IXON,
        oflag: libc::OPOST | libc::ONLCR,
        cflag: libc::B38400 | libc::CS8 | libc::CREAD,
        lflag: libc::ISIG
            | libc::ICANON
            | libc::ECHO
            | libc::ECHOE
            | libc::ECHOK
            | libc::ECHOCTL
            | libc::ECHOKE
            | libc::IEXTEN,
        line: 0,
        cc,
    }
}

/// A signal the input asked for, for the foreground process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSignal(pub i32);

/// What feeding input did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Bytes consumed from the writer.
    pub consumed: usize,
    /// Signals for the foreground group, in order.
    pub signals: Vec<i32>,
}

/// The line discipline of one pty pair.
#[derive(Debug)]
pub struct LineDiscipline {
    pub termios: Termios,
    pub winsize: Winsize,
    /// Input the slave can read: in canonical mode complete lines (an EOF-ended line is
    /// stored without the EOF character, so it may be empty), otherwise one run of bytes.
    ready: VecDeque<Vec<u8>>,
    /// Bytes held in `ready`.
    ready_len: usize,
    /// The canonical line being edited.
    line: Vec<u8>,
    /// The next input byte is taken literally (after LNEXT).
    literal: bool,
    /// Output for the master's reader (the slave's writes and the echo).
    output: VecDeque<u8>,
    /// The output column (for ONOCR and erasing tabs).
    column: usize,
    /// Input written by the master, not yet processed (the input side was full).
    pending: VecDeque<u8>,
    /// Signals raised while processing `pending` outside a master write, for the pty to
    /// send ([`LineDiscipline::take_signals`]).
    signals: Vec<i32>,
}

impl Default for LineDiscipline {
    fn default() -> Self {
        LineDiscipline {
            termios: default_termios(),
            winsize: Winsize::default(),
            ready: VecDeque::new(),
            ready_len: 0,
            line: Vec::new(),
            literal: false,
            output: VecDeque::new(),
            column: 0,
            pending: VecDeque::new(),
            signals: Vec::new(),
        }
    }
}

fn is_ctl(c: u8) -> bool {
    (c < 0x20 && c != b'\t' && c != b'\n') || c == 0x7f
}

impl LineDiscipline {
    fn iflag(&self, f: u32) -> bool {
        self.termios.iflag & f != 0
    }

    fn lflag(&self, f: u32) -> bool {
        self.termios.lflag & f != 0
    }

    fn oflag(&self, f: u32) -> bool {
        self.termios.oflag & f != 0
    }

    pub fn canonical(&self) -> bool {
        self.lflag(libc::ICANON)
    }

    /// Replaces the termios; leaving canonical mode makes the partial line readable, as
    /// Linux does.
    pub fn set_termios(&mut self, t: Termios) {
        let was_canon = self.canonical();
        self.termios = t;
        if was_canon && !self.canonical() && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.push_ready(line);
        }
        self.process_pending();
    }

    /// Bytes the slave could read now (`FIONREAD` on the slave).
    pub fn input_available(&self) -> usize {
        self.ready_len
    }

    /// Whether a read on the slave would return something now: a complete line in
    /// canonical mode (an empty one is end of file), any byte otherwise.
    pub fn readable(&self) -> bool {
        if self.canonical() {
            !self.ready.is_empty()
        } else {
            self.ready_len > 0
        }
    }

    /// Bytes waiting for the master's reader (`FIONREAD` on the master, `TIOCOUTQ` on the
    /// slave).
    pub fn output_available(&self) -> usize {
        self.output.len()
    }

    /// Bytes of input held, complete or not, processed or not (`TIOCOUTQ` on the master).
    pub fn input_held(&self) -> usize {
        self.ready_len + self.line.len() + self.pending.len()
    }

    /// Room for the slave's writer.
    pub fn output_room(&self) -> usize {
        OUTPUT_MAX.saturating_sub(self.output.len())
    }

    /// Whether the master's writer may add input now.
    pub fn input_room(&self) -> bool {
        self.pending.len() < PENDING_MAX
    }

    /// Whether the input side takes another processed byte: complete lines up to
    /// [`INPUT_MAX`] in canonical mode (the line being edited drops what does not fit), one
    /// less byte otherwise, as Linux's `N_TTY` buffer.
    fn processing_room(&self) -> bool {
        if self.canonical() {
            self.ready_len < INPUT_MAX
        } else {
            self.ready_len < INPUT_MAX - 1
        }
    }

    /// Discards input (`TCIFLUSH`), what is not processed yet too.
    pub fn flush_input(&mut self) {
        self.flush_processed();
        self.pending.clear();
    }

    /// Discards processed input (a signal character without NOFLSH): the bytes written
    /// after it are still to come.
    fn flush_processed(&mut self) {
        self.ready.clear();
        self.ready_len = 0;
        self.line.clear();
    }

    /// Signals raised by input processed when the slave's reader made room.
    pub fn take_signals(&mut self) -> Vec<i32> {
        std::mem::take(&mut self.signals)
    }

    /// Processes pending input while the input side has room.
    fn process_pending(&mut self) {
        while self.processing_room() {
            let Some(raw) = self.pending.pop_front() else {
                break;
            };
            if let Some(sig) = self.input_byte(raw) {
                self.signals.push(sig);
            }
        }
    }

    /// Discards output (`TCOFLUSH`).
    pub fn flush_output(&mut self) {
        self.output.clear();
    }

    fn push_ready(&mut self, data: Vec<u8>) {
        self.ready_len += data.len();
        if !self.canonical() {
            if let Some(last) = self.ready.back_mut() {
                last.extend_from_slice(&data);
                return;
            }
            if data.is_empty() {
                return;
            }
        }
        self.ready.push_back(data);
    }

    /// Takes up to `max` bytes of input for the slave's reader: at most one line in
    /// canonical mode. Returns None when nothing is readable.
    pub fn take_input(&mut self, max: usize) -> Option<Vec<u8>> {
        if !self.readable() {
            return None;
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(front) = self.ready.front_mut() else {
                break;
            };
            let n = front.len().min(max - out.len());
            out.extend(front.drain(..n));
            if front.is_empty() {
                self.ready.pop_front();
                if self.canonical() {
                    break;
                }
            } else if self.canonical() {
                break;
            }
        }
        self.ready_len -= out.len();
        self.process_pending();
        Some(out)
    }

    /// Puts bytes the reader could not take back at the front.
    pub fn untake_input(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.ready_len += data.len();
        let canonical = self.canonical();
        match self.ready.front_mut() {
            Some(front) if !canonical => {
                let mut v = data.to_vec();
                v.append(front);
                *front = v;
            }
            _ => self.ready.push_front(data.to_vec()),
        }
    }

    /// Takes up to `max` bytes of output for the master's reader.
    pub fn take_output(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.output.len());
        self.output.drain(..n).collect()
    }

    /// Puts output the reader could not take back at the front.
    pub fn untake_output(&mut self, data: &[u8]) {
        for &c in data.iter().rev() {
            self.output.push_front(c);
        }
    }

    /// One output byte through `OPOST` processing.
    fn put_output(&mut self, c: u8) {
        if !self.oflag(libc::OPOST) {
            self.output.push_back(c);
            return;
        }
        match c {
            b'\n' => {
                if self.oflag(libc::ONLCR) {
                    self.output.push_back(b'\r');
                    self.output.push_back(b'\n');
                    self.column = 0;
                    return;
                }
                if self.oflag(libc::ONLRET) {
                    self.column = 0;
                }
                self.output.push_back(b'\n');
            }
            b'\r' => {
                if self.oflag(libc::ONOCR) && self.column == 0 {
                    return;
                }
                if self.oflag(libc::OCRNL) {
                    self.output.push_back(b'\n');
                    if self.oflag(libc::ONLRET) {
                        self.column = 0;
                    }
                    return;
                }
                self.column = 0;
                self.output.push_back(b'\r');
            }
            b'\t' => {
                self.column = (self.column | 7) + 1;
                self.output.push_back(b'\t');
            }
            0x08 => {
                self.column = self.column.saturating_sub(1);
                self.output.push_back(c);
            }
            _ => {
                if !c.is_ascii_control() {
                    self.column += 1;
                }
                self.output.push_back(c);
            }
        }
    }

    /// What the slave writes: as much of `data` as fits in the output; returns the count.
    pub fn write_output(&mut self, data: &[u8]) -> usize {
        let mut n = 0;
        for &c in data {
            // A byte may become two (ONLCR): stop while there is room for both.
            if self.output.len() + 2 > OUTPUT_MAX {
                break;
            }
            self.put_output(c);
            n += 1;
        }
        n
    }

    /// Echoes `c` (as `^X` for control characters with ECHOCTL). Echo that does not fit is
    /// dropped, as Linux's.
    fn echo(&mut self, c: u8) {
        if self.output.len() + 3 > OUTPUT_MAX {
            return;
        }
        if self.lflag(libc::ECHOCTL) && is_ctl(c) {
            self.output.push_back(b'^');
            self.output.push_back(c ^ 0x40);
            self.column += 2;
        } else {
            self.put_output(c);
        }
    }

    /// Erases the last character of the line, echoing the erasure.
    fn erase_one(&mut self) -> bool {
        // With IUTF8 a character goes whole, from its first byte; continuation bytes with no
        // first byte before them are not erased at all (Linux erases no partial character).
        let start = if self.iflag(libc::IUTF8) {
            match self.line.iter().rposition(|&b| b & 0xc0 != 0x80) {
                Some(i) => i,
                None => return false,
            }
        } else {
            match self.line.len().checked_sub(1) {
                Some(i) => i,
                None => return false,
            }
        };
        let c = self.line[start];
        self.line.truncate(start);
        if self.lflag(libc::ECHO) {
            let width = if self.lflag(libc::ECHOCTL) && is_ctl(c) {
                2
            } else {
                1
            };
            for _ in 0..width {
                for b in [0x08, b' ', 0x08] {
                    self.put_output(b);
                }
            }
        }
        true
    }

    /// Feeds what the master writes: processed now as far as the input side has room, the
    /// rest held raw up to [`PENDING_MAX`]. Stops early only when that is full too.
    pub fn write_input(&mut self, data: &[u8]) -> Fed {
        let room = PENDING_MAX.saturating_sub(self.pending.len());
        let consumed = data.len().min(room);
        self.pending.extend(&data[..consumed]);
        self.process_pending();
        Fed {
            consumed,
            signals: self.take_signals(),
        }
    }

    fn input_byte(&mut self, raw: u8) -> Option<i32> {
        let mut c = raw;
        if self.iflag(libc::ISTRIP) {
            c &= 0x7f;
        }
        if self.literal {
            self.literal = false;
            return self.store(c, true);
        }
        if c == b'\r' {
            if self.iflag(libc::IGNCR) {
                return None;
            }
            if self.iflag(libc::ICRNL) {
                c = b'\n';
            }
        } else if c == b'\n' && self.iflag(libc::INLCR) {
            c = b'\r';
        }
        let cc = self.termios.cc;
        let is = |i: usize| cc[i] != 0 && cc[i] == c;
        if self.lflag(libc::ISIG) {
            let sig = if is(VINTR) {
                Some(libc::SIGINT)
            } else if is(VQUIT) {
                Some(libc::SIGQUIT)
            } else if is(VSUSP) {
                Some(libc::SIGTSTP)
            } else {
                None
            };
            if let Some(sig) = sig {
                if !self.lflag(libc::NOFLSH) {
                    self.flush_processed();
                    self.output.clear();
                }
                if self.lflag(libc::ECHO) {
                    self.echo(c);
                }
                return Some(sig);
            }
        }
        if self.canonical() {
            if self.lflag(libc::IEXTEN) && is(VLNEXT) {
                self.literal = true;
                if self.lflag(libc::ECHO) && self.lflag(libc::ECHOCTL) {
                    self.output.extend([b'^', 0x08]);
                }
                return None;
            }
            if is(VERASE) {
                if self.lflag(libc::ECHOE) {
                    self.erase_one();
                } else if self.line.pop().is_some() && self.lflag(libc::ECHO) {
                    self.echo(c);
                }
                return None;
            }
            if self.lflag(libc::IEXTEN) && is(VWERASE) {
                // erase_one refuses a partial UTF-8 character: stop there rather than spin.
                while self.line.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    if !self.erase_one() {
                        break;
                    }
                }
                while self.line.last().is_some_and(|b| !b.is_ascii_whitespace()) {
                    if !self.erase_one() {
                        break;
                    }
                }
                return None;
            }
            if is(VKILL) {
                if self.lflag(libc::ECHOKE) && self.lflag(libc::ECHOE) {
                    while self.erase_one() {}
                } else {
                    self.line.clear();
                    if self.lflag(libc::ECHO) {
                        self.echo(c);
                        if self.lflag(libc::ECHOK) {
                            self.put_output(b'\n');
                        }
                    }
                }
                return None;
            }
            if is(VEOF) {
                let line = std::mem::take(&mut self.line);
                self.push_ready(line);
                return None;
            }
        }
        self.store(c, false)
    }

    /// Stores an ordinary input byte (ends the line on NL, EOL, EOL2), echoing it.
    fn store(&mut self, c: u8, literal: bool) -> Option<i32> {
        let cc = self.termios.cc;
        if !self.canonical() {
            if self.lflag(libc::ECHO) {
                self.echo(c);
            }
            self.push_ready(vec![c]);
            return None;
        }
        let ends = !literal
            && (c == b'\n'
                || (cc[VEOL] != 0 && c == cc[VEOL])
                || (cc[VEOL2] != 0 && c == cc[VEOL2]));
        if !ends && self.line.len() >= INPUT_MAX - 1 {
            return None;
        }
        if self.lflag(libc::ECHO) {
            self.echo(c);
        } else if c == b'\n' && self.lflag(libc::ECHONL) {
            self.put_output(b'\n');
        }
        self.line.push(c);
        if ends {
            let line = std::mem::take(&mut self.line);
            self.push_ready(line);
        }
        None
    }
}

impl LineDiscipline {
    /// The image of this line discipline (signals raised and not yet sent are not in it:
    /// the pty sends them before it lets its lock go).
    pub fn saved(&self) -> super::image::LdiscImage {
        super::image::LdiscImage {
            termios: (&self.termios).into(),
            winsize: super::image::winsize_image(&self.winsize),
            ready: self.ready.iter().cloned().collect(),
            line: self.line.clone(),
            literal: self.literal,
            pending: self.pending.iter().copied().collect(),
            output: self.output.iter().copied().collect(),
            column: self.column,
        }
    }

    /// The line discipline `image` describes.
    ///
    /// # Errors
    /// A message for an image beyond the buffers' limits.
    pub fn restored(image: &super::image::LdiscImage) -> Result<LineDiscipline, String> {
        let ready_len: usize = image.ready.iter().map(Vec::len).sum();
        if ready_len > INPUT_MAX
            || image.line.len() >= INPUT_MAX
            || image.pending.len() > PENDING_MAX
            || image.output.len() > OUTPUT_MAX
        {
            return Err("a pty whose buffers exceed their limits".into());
        }
        Ok(LineDiscipline {
            termios: image.termios.termios()?,
            winsize: super::image::winsize(image.winsize),
            ready: image.ready.iter().cloned().collect(),
            ready_len,
            line: image.line.clone(),
            literal: image.literal,
            output: image.output.iter().copied().collect(),
            // A column is never beyond the output buffer's size (no arithmetic overflows).
            column: image.column.min(OUTPUT_MAX),
            pending: image.pending.iter().copied().collect(),
            signals: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(l: &mut LineDiscipline) -> Vec<u8> {
        l.take_output(usize::MAX)
    }

    #[test]
    fn canonical_line_with_echo_and_crnl() {
        let mut l = LineDiscipline::default();
        let fed = l.write_input(b"ab\r");
        assert_eq!(fed.consumed, 3);
        assert_eq!(read_all(&mut l), b"ab\r\n");
        assert_eq!(l.take_input(100).unwrap(), b"ab\n");
        assert!(l.take_input(100).is_none());
    }

    #[test]
    fn erase_and_kill_edit_the_line() {
        let mut l = LineDiscipline::default();
        l.write_input(b"abc\x7f\x7fd\n");
        assert_eq!(l.take_input(100).unwrap(), b"ad\n");
        assert_eq!(read_all(&mut l), b"abc\x08 \x08\x08 \x08d\r\n");
        l.write_input(b"xyz\x15q\n");
        assert_eq!(l.take_input(100).unwrap(), b"q\n");
    }

    #[test]
    fn eof_ends_a_line_without_itself() {
        let mut l = LineDiscipline::default();
        l.write_input(b"hi\x04\x04");
        assert_eq!(l.take_input(100).unwrap(), b"hi");
        assert_eq!(l.take_input(100).unwrap(), b"");
        assert!(!l.readable());
    }

    #[test]
    fn canonical_read_returns_one_line_at_a_time() {
        let mut l = LineDiscipline::default();
        l.write_input(b"one\ntwo\n");
        assert_eq!(l.take_input(2).unwrap(), b"on");
        assert_eq!(l.take_input(100).unwrap(), b"e\n");
        assert_eq!(l.take_input(100).unwrap(), b"two\n");
    }

    #[test]
    fn isig_characters_become_signals() {
        let mut l = LineDiscipline::default();
        let fed = l.write_input(b"par\x03");
        assert_eq!(fed.signals, vec![libc::SIGINT]);
        assert_eq!(l.input_held(), 0);
        assert_eq!(read_all(&mut l), b"^C");
        assert_eq!(
            l.write_input(b"\x1c\x1a").signals,
            vec![libc::SIGQUIT, libc::SIGTSTP]
        );
    }

    #[test]
    fn raw_mode_passes_bytes() {
        let mut l = LineDiscipline::default();
        let mut t = l.termios;
        t.lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
        t.iflag &= !libc::ICRNL;
        l.set_termios(t);
        l.write_input(b"a\r\x03");
        assert_eq!(l.input_available(), 3);
        assert_eq!(l.take_input(100).unwrap(), b"a\r\x03");
        assert!(read_all(&mut l).is_empty());
    }

    #[test]
    fn leaving_canonical_mode_releases_the_partial_line() {
        let mut l = LineDiscipline::default();
        l.write_input(b"part");
        assert!(!l.readable());
        let mut t = l.termios;
        t.lflag &= !libc::ICANON;
        l.set_termios(t);
        assert_eq!(l.take_input(100).unwrap(), b"part");
    }

    #[test]
    fn output_processing_maps_newlines() {
        let mut l = LineDiscipline::default();
        assert_eq!(l.write_output(b"a\nb"), 3);
        assert_eq!(read_all(&mut l), b"a\r\nb");
        let mut t = l.termios;
        t.oflag &= !libc::OPOST;
        l.set_termios(t);
        l.write_output(b"a\n");
        assert_eq!(read_all(&mut l), b"a\n");
    }

    #[test]
    fn echonl_without_echo() {
        let mut l = LineDiscipline::default();
        let mut t = l.termios;
        t.lflag &= !libc::ECHO;
        t.lflag |= libc::ECHONL;
        l.set_termios(t);
        l.write_input(b"secret\n");
        assert_eq!(read_all(&mut l), b"\r\n");
    }

    #[test]
    fn iutf8_erases_whole_characters_and_no_partial_one() {
        let mut l = LineDiscipline::default();
        let mut t = l.termios;
        t.iflag |= libc::IUTF8;
        l.set_termios(t);
        l.write_input("gvisö\x7f\n".as_bytes());
        assert_eq!(l.take_input(usize::MAX).unwrap(), b"gvis\n");
        // A lone continuation byte is not erased; WERASE stops at it instead of spinning.
        l.write_input(b"\x80\x7f\x17\n");
        assert_eq!(l.take_input(usize::MAX).unwrap(), b"\x80\n");
    }

    #[test]
    fn input_beyond_the_buffer_waits_for_the_reader() {
        let mut l = LineDiscipline::default();
        let mut t = l.termios;
        t.lflag &= !(libc::ICANON | libc::ECHO);
        l.set_termios(t);
        let fed = l.write_input(&[b'x'; 2 * INPUT_MAX]);
        assert_eq!(fed.consumed, 2 * INPUT_MAX);
        assert_eq!(l.input_available(), INPUT_MAX - 1);
        let mut total = 0;
        while let Some(d) = l.take_input(1000) {
            total += d.len();
        }
        assert_eq!(total, 2 * INPUT_MAX);
    }

    #[test]
    fn a_full_line_drops_characters_but_keeps_the_newline() {
        let mut l = LineDiscipline::default();
        let mut t = l.termios;
        t.lflag &= !libc::ECHO;
        l.set_termios(t);
        let fed = l.write_input(&[b'x'; INPUT_MAX + 10]);
        assert_eq!(fed.consumed, INPUT_MAX + 10);
        l.write_input(b"\n");
        assert_eq!(l.take_input(usize::MAX).unwrap().len(), INPUT_MAX);
    }

    #[test]
    fn an_image_round_trips_every_buffer() {
        let mut l = LineDiscipline::default();
        l.write_input(b"one\ntwo\nparti");
        l.write_output(b"out\n");
        let image = l.saved();
        let mut back = LineDiscipline::restored(&image).unwrap();
        assert_eq!(back.saved(), image);
        assert_eq!(back.take_input(100).unwrap(), b"one\n");
        assert_eq!(back.take_input(100).unwrap(), b"two\n");
        assert!(back.take_input(100).is_none());
        back.write_input(b"al\n");
        assert_eq!(back.take_input(100).unwrap(), b"partial\n");
        assert!(read_all(&mut back).starts_with(b"one\r\ntwo\r\npartiout\r\n"));
        let mut too_big = image;
        too_big.output = vec![0; OUTPUT_MAX + 1];
        assert!(LineDiscipline::restored(&too_big).is_err());
    }
}
