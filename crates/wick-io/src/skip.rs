//! `--skip-invalid`: bad records are counted, and the first few shown, instead of ending the run.

use crate::Error;

/// Shown on stderr before the rest are only counted.
const SHOWN: u64 = 5;

#[derive(Debug)]
pub struct Skipped {
    tool: &'static str,
    quiet: bool,
    pub count: u64,
}

impl Skipped {
    pub fn new(tool: &'static str, quiet: bool) -> Skipped {
        Skipped {
            tool,
            quiet,
            count: 0,
        }
    }

    pub fn note(&mut self, e: &Error) {
        if self.count < SHOWN && !self.quiet {
            eprintln!("{}: skipped {e}", self.tool);
        }
        self.count += 1;
    }

    /// ", N invalid skipped" for a summary line, or nothing.
    pub fn suffix(count: u64) -> String {
        if count > 0 {
            format!(", {count} invalid skipped")
        } else {
            String::new()
        }
    }
}
