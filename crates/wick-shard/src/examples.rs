//! Whole examples for supervised fine-tuning: each document of a split (a record's ids ending
//! in EOS, from the `.docs` sidecar) with its loss mask (`.mask`), packed into rows or padded
//! one per row, epoch after epoch in a seeded order.
//!
//! Packing is next-fit: examples are taken in the epoch's shuffled order and appended to the
//! current row while they fit in its `t + 1` tokens; one that does not fit starts a new row, and
//! the rest of the row is padding. An example longer than `t + 1` tokens is truncated. Every
//! input position carries the ordinal of its example in the row (`segments`), so attention can
//! be block-diagonal; a target counts only when its mask is 1 and it belongs to the same example
//! as the input predicting it — never across a boundary, never on padding.

use wick_io::{Error, Result};

use crate::{Rng, Shard, ShardSet, Split};

/// Segment id of padding positions (distinct from every example's ordinal).
pub const PAD_SEGMENT: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Span {
    shard: usize,
    start: usize,
    len: usize,
}

/// The examples of one split of a shard directory.
pub struct Examples<'a> {
    shards: Vec<&'a Shard>,
    spans: Vec<Span>,
    pad: u32,
}

impl<'a> Examples<'a> {
    /// Needs shards with `.docs` and `.mask` sidecars (made by `pack` from tokenized SFT
    /// records). `pad` fills the rest of a row (it is never a target).
    pub fn new(set: &'a ShardSet, split: Split, pad: u32) -> Result<Self> {
        let shards = set.split(split);
        let mut spans = Vec::new();
        for (i, s) in shards.iter().enumerate() {
            if s.mask().is_none() {
                return Err(Error::msg(format!(
                    "{}: no loss mask (.mask sidecar): pack tokenized SFT records (prompt/completion, instruction/output or messages; `tokenize` gives them \"mask\") for --task sft",
                    s.path.display()
                )));
            }
            let starts = s.doc_starts().ok_or_else(|| {
                Error::msg(format!(
                    "{}: no document starts (.docs sidecar): repack with `pack`",
                    s.path.display()
                ))
            })?;
            for (j, &a) in starts.iter().enumerate() {
                let b = starts.get(j + 1).map_or(s.len(), |&b| b as usize);
                if b > a as usize + 1 {
                    spans.push(Span {
                        shard: i,
                        start: a as usize,
                        len: b - a as usize,
                    });
                }
            }
        }
        if spans.is_empty() {
            return Err(Error::msg(format!(
                "{}: the {} split holds no example",
                set.dir.display(),
                split.name()
            )));
        }
        Ok(Examples { shards, spans, pad })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Examples longer than `t + 1` tokens (they are truncated).
    pub fn longer_than(&self, t: usize) -> usize {
        self.spans.iter().filter(|s| s.len > t + 1).count()
    }

    /// Tokens of every example, and those with mask 1 (as [`Examples::batch`] trains on them:
    /// a damaged mask's other values are not counted, however large).
    pub fn token_counts(&self) -> (u64, u64) {
        let (mut all, mut trained) = (0u64, 0u64);
        for s in &self.spans {
            all += s.len as u64;
            let m = &self.shards[s.shard].mask().expect("checked in new")[s.start..][..s.len];
            trained += m.iter().filter(|&&x| x == 1).count() as u64;
        }
        (all, trained)
    }

    /// The rows of one epoch, each a list of example indices. `order` None keeps the
    /// directory's order (evaluation); Some(seed) shuffles with it.
    pub fn plan(&self, t: usize, packing: bool, order: Option<u64>) -> Vec<Vec<usize>> {
        let mut idx: Vec<usize> = (0..self.spans.len()).collect();
        if let Some(seed) = order {
            Rng::new(seed).shuffle(&mut idx);
        }
        if !packing {
            return idx.into_iter().map(|i| vec![i]).collect();
        }
        let mut rows: Vec<Vec<usize>> = Vec::new();
        let mut used = 0;
        for i in idx {
            let len = self.spans[i].len.min(t + 1);
            if rows.is_empty() || used + len > t + 1 {
                rows.push(Vec::new());
                used = 0;
            }
            rows.last_mut().expect("pushed above").push(i);
            used += len;
        }
        rows
    }

    /// One batch from `rows` (lists of example indices). Packed rows are `t + 1` tokens wide;
    /// unpacked rows (one example each) are as wide as the batch's longest example, at most
    /// `t + 1` (padding per example).
    pub fn batch(&self, rows: &[Vec<usize>], t: usize, packing: bool) -> SftBatch {
        let width = if packing {
            t + 1
        } else {
            rows.iter()
                .map(|r| {
                    r.iter()
                        .map(|&i| self.spans[i].len.min(t + 1))
                        .sum::<usize>()
                })
                .max()
                .unwrap_or(2)
                .max(2)
        };
        let tw = width - 1;
        let mut b = SftBatch {
            b: rows.len(),
            t: tw,
            tokens: Vec::with_capacity(rows.len() * width),
            weights: Vec::with_capacity(rows.len() * tw),
            segments: Vec::with_capacity(rows.len() * tw),
            examples: 0,
            truncated: 0,
        };
        let mut mask = Vec::with_capacity(width);
        let mut seg = Vec::with_capacity(width);
        for row in rows {
            mask.clear();
            seg.clear();
            let start = b.tokens.len();
            for (k, &i) in row.iter().enumerate() {
                let s = self.spans[i];
                let shard = self.shards[s.shard];
                let len = s.len.min(width - (b.tokens.len() - start));
                b.truncated += usize::from(len < s.len);
                b.examples += 1;
                shard.tokens().extend_into(s.start, len, &mut b.tokens);
                mask.extend_from_slice(&shard.mask().expect("checked in new")[s.start..][..len]);
                seg.extend(std::iter::repeat_n(k as u32, len));
            }
            let pad = start + width - b.tokens.len();
            b.tokens.extend(std::iter::repeat_n(self.pad, pad));
            mask.extend(std::iter::repeat_n(0, pad));
            seg.extend(std::iter::repeat_n(PAD_SEGMENT, pad));
            for j in 0..tw {
                let same = seg[j] == seg[j + 1] && seg[j] != PAD_SEGMENT;
                b.weights
                    .push(if same && mask[j + 1] == 1 { 1.0 } else { 0.0 });
            }
            b.segments.extend_from_slice(&seg[..tw]);
        }
        b
    }
}

/// Rows of `t + 1` tokens with, per input position, the weight of its target (1 or 0) and its
/// example's ordinal in the row.
#[derive(Debug, Clone, PartialEq)]
pub struct SftBatch {
    pub b: usize,
    pub t: usize,
    /// [b, t + 1]
    pub tokens: Vec<u32>,
    /// [b, t]: 1 where the target (the next token) is trained on.
    pub weights: Vec<f32>,
    /// [b, t]: the example each input position belongs to ([`PAD_SEGMENT`] for padding).
    pub segments: Vec<u32>,
    /// Examples in the batch, and how many of them were cut to fit.
    pub examples: usize,
    pub truncated: usize,
}

impl SftBatch {
    /// Targets that count.
    pub fn trained(&self) -> f64 {
        self.weights.iter().map(|&w| w as f64).sum()
    }
}

/// Training batches, epoch after epoch: each epoch's rows in a fresh order seeded by the run's
/// seed and the epoch number, so (epoch, row) is all an exact resume needs.
pub struct EpochLoader<'a> {
    pub examples: Examples<'a>,
    seed: u64,
    b: usize,
    t: usize,
    packing: bool,
    pub epoch: u64,
    pub row: usize,
    plan: Vec<Vec<usize>>,
}

impl<'a> EpochLoader<'a> {
    pub fn new(examples: Examples<'a>, seed: u64, b: usize, t: usize, packing: bool) -> Self {
        let mut l = EpochLoader {
            examples,
            seed,
            b,
            t,
            packing,
            epoch: 0,
            row: 0,
            plan: Vec::new(),
        };
        l.seek(0, 0);
        l
    }

    fn epoch_seed(&self, epoch: u64) -> u64 {
        self.seed ^ epoch.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F)
    }

    /// Continues from row `row` of epoch `epoch` (a resumed run).
    pub fn seek(&mut self, epoch: u64, row: usize) {
        self.epoch = epoch;
        self.row = row;
        self.plan = self
            .examples
            .plan(self.t, self.packing, Some(self.epoch_seed(epoch)));
    }

    /// Rows in the first epoch (later ones differ by a few when packing).
    pub fn rows_per_epoch(&self) -> usize {
        self.examples
            .plan(self.t, self.packing, Some(self.epoch_seed(0)))
            .len()
    }

    /// Rows in the current epoch.
    pub fn rows_this_epoch(&self) -> usize {
        self.plan.len()
    }

    /// The next `b` rows, running on into the next epoch when this one ends.
    pub fn next_batch(&mut self) -> SftBatch {
        let mut rows = Vec::with_capacity(self.b);
        while rows.len() < self.b {
            if self.row >= self.plan.len() {
                self.seek(self.epoch + 1, 0);
            }
            rows.push(self.plan[self.row].clone());
            self.row += 1;
        }
        self.examples.batch(&rows, self.t, self.packing)
    }
}
