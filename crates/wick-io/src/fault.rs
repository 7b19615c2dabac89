//! Fault injection for the crash tests: every step that changes what is on disk (a write
//! published, a rename, an unlink) is a numbered point, and a test can have the process
//! killed at any one of them.
//!
//! `WICK_FAULT_LOG=FILE` appends one line per point (`N<TAB>what`), so a test first counts
//! the points of an uninterrupted run; `WICK_FAULT_AT=N` then sends the process SIGKILL at
//! point N (no destructor, no flush: what a power cut or `kill -9` leaves). Unset, a point
//! costs one relaxed atomic load.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

struct Faults {
    at: Option<u64>,
    log: Option<Mutex<File>>,
}

static FAULTS: OnceLock<Option<Faults>> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

fn faults() -> Option<&'static Faults> {
    FAULTS
        .get_or_init(|| {
            let at = std::env::var("WICK_FAULT_AT")
                .ok()
                .and_then(|v| v.parse().ok());
            let log = std::env::var_os("WICK_FAULT_LOG").and_then(|p| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
                    .map(Mutex::new)
            });
            (at.is_some() || log.is_some()).then_some(Faults { at, log })
        })
        .as_ref()
}

/// Marks a point at which the files on disk are about to change.
pub fn point(what: impl std::fmt::Display) {
    let Some(f) = faults() else { return };
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(log) = &f.log {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(log, "{n}\t{what}");
    }
    if f.at == Some(n) {
        #[cfg(unix)]
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}
