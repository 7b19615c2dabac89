//! Process setup shared by the model tools (train, ppl, generate), done first thing in main.

/// Sets the worker thread count: candle sizes its thread pools from RAYON_NUM_THREADS on
/// first use, so this must run before any tensor op.
pub fn setup(threads: Option<usize>) {
    if let Some(n) = threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}
