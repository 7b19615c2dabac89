//! Shared plumbing of the wick tools: JSONL records with line-numbered errors, `-` for
//! stdin/stdout, atomic file writes, and progress on stderr.

mod error;
mod ids;
mod jsonl;
mod output;
mod pipeline;
mod progress;
mod skip;

pub use error::{run_main, Error, Result};
pub use ids::{read_ids, write_ids};
pub use jsonl::{kind_of, parse_object, Line, LineReader, MAX_LINE_BYTES};
pub use output::{create_dir_all, write_atomic, AtomicFile, Output};
pub use pipeline::{for_each_batch, write_behind, ChunkSender};
pub use progress::{human_bytes, Progress};
pub use skip::Skipped;

/// The input names a tool was given, with "-" (stdin) when there were none.
pub fn inputs_or_stdin(paths: &[String]) -> Vec<String> {
    if paths.is_empty() {
        vec!["-".to_string()]
    } else {
        paths.to_vec()
    }
}
