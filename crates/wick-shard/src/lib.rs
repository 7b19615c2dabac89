//! Token shards: llm.c's binary format (so wick and llm.c read each other's data), with a
//! manifest, checksums, sidecars for document starts and loss masks, a packer that splits
//! and shuffles documents, and a memory-mapped reader that samples training batches.

mod examples;
mod format;
mod manifest;
mod pack;
mod reader;
mod sample;
mod verify;

pub use examples::{EpochLoader, Examples, SftBatch, PAD_SEGMENT};
pub use format::{Dtype, HEADER_BYTES};
pub use manifest::{Manifest, ShardEntry, SplitTotals, MANIFEST};
pub use pack::{split_of, PackOptions, Packer};
pub use reader::{Shard, ShardSet, Tokens};
pub use sample::{Batch, Sampler, Sequential};
pub use verify::{verify, Report};
pub use wick_io::Rng;

/// Which part of the data a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}
