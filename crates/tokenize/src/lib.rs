//! The `tokenize` tool's library: the parallel, order-keeping encoder of JSONL records, the
//! decoder, and the streaming corpus reader that feeds tokenizer training.

pub mod corpus;
pub mod decode;
pub mod encode;
