//! Process setup shared by the model tools (train, ppl, generate), done first thing in main.

/// Sets the thread count, then runs `f` (the whole tool) on one of rayon's worker threads.
/// The kernels fork their work on rayon's pool: from a worker thread a fork is a push onto its
/// own queue that the other workers steal, while from the main thread every op is injected into
/// the pool and the main thread sleeps until it is done, two thread wake-ups per op.
///
/// With WICK_GEMM_PROFILE=1, prints the time the matrix products took (`kernels::products_report`)
/// to stderr at the end.
pub fn run<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    // The tools call wick_io::set_threads first and report a bad count; here it only makes sure
    // the pool is set up when a caller did not.
    let _ = wick_io::set_threads(threads);
    keep_freed_memory();
    let started = std::time::Instant::now();
    let r = rayon::scope(|_| f());
    if let Some(report) = crate::kernels::products_report(started.elapsed().as_secs_f64()) {
        eprint!("{report}");
    }
    r
}

/// The device a tool's `--device NAME` names, opened, with an error that names the flag:
/// "--device cuda: this build has no CUDA support; ...".
pub fn open_device(name: &str) -> wick_io::Result<candle_core::Device> {
    crate::device(name).map_err(|e| e.context(format_args!("--device {name}")))
}

/// `mi_option_purge_delay` in mimalloc's option enum, 15 in both mimalloc 2 and 3 (libmimalloc-sys
/// names only some options).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Tells mimalloc (the model tools' allocator) to keep freed memory instead of returning it to
/// the OS 10 ms later. A training step or a scoring batch frees and reallocates the same large
/// buffers every time; returned, each comes back as fresh pages the kernel must zero on first
/// touch; kept, peak memory stays the same.
fn keep_freed_memory() {
    // SAFETY: sets one integer option; mimalloc reads options at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
