//! Ctrl-C (SIGINT) or SIGTERM (what `kill`, Slurm's time limit and container stops send)
//! during training asks the loop to checkpoint and stop at the end of the step, instead of
//! killing the process mid-write. A second signal ends the process at once.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    // Restore the defaults so that a second signal ends the process at once.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
}

pub fn install_ctrl_c() {
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn interrupted() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The signal that stopped the run, for messages: "Ctrl-C" or "SIGTERM".
pub fn signal_name() -> &'static str {
    match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGTERM => "SIGTERM",
        _ => "Ctrl-C",
    }
}
