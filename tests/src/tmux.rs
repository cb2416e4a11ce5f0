//! A tmux server of a test's own, to drive a program on a real terminal as a person would
//! (type keys, read the screen), for the terminal tests of containerd and the engines.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A tmux server of our own (its socket in the test's directory), killed on drop.
pub struct Tmux {
    /// The server's socket, in the test's directory.
    pub socket: PathBuf,
    /// The session the keys go to and the screen is read from (`new-session -s NAME`).
    pub session: String,
}

impl Tmux {
    pub fn command(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("running tmux")
    }

    /// Types `keys` (tmux key names such as `Enter` or `C-c` are keys, not text).
    pub fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session.as_str()];
        args.extend(keys);
        let out = self.command(&args);
        assert!(
            out.status.success(),
            "tmux send-keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pane's lines, history included, trailing blanks trimmed.
    pub fn screen(&self) -> Vec<String> {
        let out = self.command(&["capture-pane", "-p", "-J", "-S", "-", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_owned())
            .collect()
    }

    /// Waits up to 20 s until `done` holds for the screen; panics with the screen otherwise.
    pub fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}; the terminal shows:\n{}",
                screen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a line that is exactly `line`.
    pub fn wait_line(&self, line: &str) {
        self.wait_for(&format!("the line {line:?}"), |s| {
            s.iter().any(|l| l == line)
        });
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The server also ends by itself when its session's command exits.
        let _ = self.command(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}
