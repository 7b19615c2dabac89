//! The JSONL metrics log: one object per line, flushed as it is written so that `tail -f`,
//! `plot --follow` or a crash all see every finished step.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wick_io::{Error, Result};

pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Starts a fresh log (an existing one is replaced).
    pub fn create(path: &Path) -> Result<MetricsLog> {
        wick_io::fault::point(format_args!("truncate {}", path.display()));
        let file = File::create(path).map_err(|e| Error::io(path.display(), e))?;
        Ok(MetricsLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Continues a log after resuming at `step`: lines of later steps (written after that
    /// checkpoint by the run that stopped) and a torn last line are dropped, so the log
    /// reads as if the run had never stopped. Lines are taken one by one: a line that is not
    /// JSON (a write cut in the middle of a UTF-8 character included) loses only itself.
    pub fn resume(path: &Path, step: u64) -> Result<MetricsLog> {
        let old = std::fs::read(path).unwrap_or_default();
        let mut kept = Vec::new();
        for line in old.split_inclusive(|&b| b == b'\n') {
            // As str::lines: a line ends at "\n" or "\r\n".
            let line = match line.strip_suffix(b"\n") {
                Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
                None => line,
            };
            // (serde_json refuses bytes that are not UTF-8.)
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            if v.get("step")
                .and_then(Value::as_u64)
                .is_some_and(|s| s > step)
            {
                continue;
            }
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
        wick_io::write_atomic(path, &kept)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path.display(), e))?;
        Ok(MetricsLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Forces the lines written so far to disk (before a checkpoint that counts on them).
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(self.path.display(), e))
    }

    pub fn log(&mut self, record: &Value) -> Result<()> {
        wick_io::fault::point(format_args!("append {}", self.path.display()));
        let mut line = serde_json::to_string(record).expect("a JSON value serialises");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(self.path.display(), e))
    }
}
