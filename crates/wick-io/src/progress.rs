//! Progress on stderr: a self-overwriting status line while a terminal watches, a one-line
//! summary at the end (unless `--quiet`).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    start: Instant,
    last: Instant,
    live: bool,
    quiet: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, quiet: bool) -> Self {
        let now = Instant::now();
        Progress {
            label: label.into(),
            start: now,
            last: now,
            live: !quiet && std::io::stderr().is_terminal(),
            quiet,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Redraws the status line at most a few times a second; `status` is only called then.
    pub fn tick(&mut self, status: impl FnOnce(f64) -> String) {
        if !self.live || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}: {}", self.label, status(secs));
        let _ = err.flush();
    }

    /// Clears the status line and prints the summary.
    pub fn finish(&mut self, summary: impl FnOnce(f64) -> String) {
        if self.quiet {
            return;
        }
        let secs = self.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        if self.live {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{}: {}", self.label, summary(secs));
    }
}

/// `12.3 MB` style byte counts for status lines.
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}
