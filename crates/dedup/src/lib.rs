//! The `dedup` tool's library: normalisation, shingles, MinHash/LSH, and the dedup engine.

pub mod engine;
pub mod minhash;
pub mod normalize;
pub mod shingle;
