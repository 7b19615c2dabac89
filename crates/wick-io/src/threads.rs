//! The one thread-pool setup of every wick tool, done first thing in `main`.

use crate::{Error, Result};

/// Sizes rayon's global pool (all cores when `threads` is None). The data tools fork their
/// work on it, and candle sizes its own CPU pools from RAYON_NUM_THREADS on first use, so this
/// runs before any other work. Calling it again changes nothing.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let n = match threads {
        Some(0) => return Err(Error::msg("the thread count must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if threads.is_some() {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
    {
        Ok(()) => Ok(()),
        // The pool was already built (a second call, or a test that used rayon first): keep it.
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_refused_and_a_second_call_is_harmless() {
        assert!(set_threads(Some(0)).is_err());
        set_threads(Some(2)).unwrap();
        // The first call (or whatever built the pool first) decides; later ones keep it.
        let n = rayon::current_num_threads();
        set_threads(Some(n + 1)).unwrap();
        assert_eq!(rayon::current_num_threads(), n);
    }
}
