//! Shared plumbing of the wick tools: JSONL records with line-numbered errors, `-` for
//! stdin/stdout, outputs that never destroy what wick did not write (atomic, synced files and
//! folders), and progress on stderr.

mod durable;
mod error;
pub mod fault;
mod ids;
mod jsonl;
mod outdir;
mod output;
mod pipeline;
mod progress;
mod rng;
mod skip;
mod threads;

pub use durable::{
    clean_stale, parent_of, remove_dir_all, remove_file, rename, replace_dir, sync_dir, sync_tree,
    temp_sibling,
};
pub use error::{run_main, Error, Result};
pub use ids::{read_ids, write_ids};
pub use jsonl::{kind_of, parse_object, Line, LineReader, MAX_LINE_BYTES};
pub use outdir::{
    check_distinct_outputs, check_replaceable, open_shared_dir, Kind, Marker, OutDir, RunDir, LOCK,
    MARKER,
};
pub use output::{create_dir_all, write_atomic, AtomicFile, Output};
pub use pipeline::{for_each_batch, write_behind, ChunkSender};
pub use progress::{human_bytes, Progress};
pub use rng::Rng;
pub use skip::Skipped;
pub use threads::set_threads;

/// The input names a tool was given, with "-" (stdin) when there were none.
pub fn inputs_or_stdin(paths: &[String]) -> Vec<String> {
    if paths.is_empty() {
        vec!["-".to_string()]
    } else {
        paths.to_vec()
    }
}
