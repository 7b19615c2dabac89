//! Batches for training (random windows) and evaluation (sequential windows).

use wick_io::{Error, Result};

use crate::{Rng, Shard, ShardSet, Split};

/// `b` rows of `t + 1` consecutive tokens: inputs are `row[..t]`, targets `row[1..]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub b: usize,
    pub t: usize,
    pub tokens: Vec<u32>,
    /// Per-token loss mask aligned with `tokens`, when the shards carry one.
    pub mask: Option<Vec<u8>>,
}

impl Batch {
    fn new(b: usize, t: usize, with_mask: bool) -> Batch {
        Batch {
            b: 0,
            t,
            tokens: Vec::with_capacity(b * (t + 1)),
            mask: with_mask.then(|| Vec::with_capacity(b * (t + 1))),
        }
    }

    fn push(&mut self, shard: &Shard, start: usize) {
        let n = self.t + 1;
        shard.tokens().extend_into(start, n, &mut self.tokens);
        if let Some(m) = self.mask.as_mut() {
            m.extend_from_slice(
                &shard.mask().expect("checked when the sampler was made")[start..start + n],
            );
        }
        self.b += 1;
    }
}

/// Random training windows, uniform over every window position of the split. The generator's
/// state (`rng`) is all there is to save for an exact resume.
pub struct Sampler<'a> {
    shards: Vec<&'a Shard>,
    /// Cumulative count of window starts, per shard.
    cum: Vec<u64>,
    pub rng: Rng,
    b: usize,
    t: usize,
    with_mask: bool,
}

fn usable(set: &ShardSet, split: Split, t: usize) -> Result<(Vec<&Shard>, bool)> {
    let shards: Vec<&Shard> = set
        .split(split)
        .into_iter()
        .filter(|s| s.len() > t)
        .collect();
    if shards.is_empty() {
        return Err(Error::msg(format!(
            "{}: no {} shard holds a window of {} tokens (T+1)",
            set.dir.display(),
            split.name(),
            t + 1
        )));
    }
    let with_mask = shards.iter().all(|s| s.mask().is_some());
    Ok((shards, with_mask))
}

impl<'a> Sampler<'a> {
    pub fn new(set: &'a ShardSet, split: Split, b: usize, t: usize, seed: u64) -> Result<Self> {
        let (shards, with_mask) = usable(set, split, t)?;
        let mut total = 0;
        let cum = shards
            .iter()
            .map(|s| {
                total += (s.len() - t) as u64;
                total
            })
            .collect();
        Ok(Sampler {
            shards,
            cum,
            rng: Rng::new(seed),
            b,
            t,
            with_mask,
        })
    }

    pub fn next_batch(&mut self) -> Batch {
        let mut batch = Batch::new(self.b, self.t, self.with_mask);
        let total = *self.cum.last().expect("at least one shard");
        for _ in 0..self.b {
            let r = self.rng.below(total);
            let i = self.cum.partition_point(|&c| c <= r);
            let before = if i == 0 { 0 } else { self.cum[i - 1] };
            batch.push(self.shards[i], (r - before) as usize);
        }
        batch
    }
}

/// Evaluation order: each shard of the split in turn, windows of `t + 1` tokens starting every
/// `t` tokens (so every token but a shard's first is a target exactly once); a shard's final
/// partial window is left out.
pub struct Sequential<'a> {
    shards: Vec<&'a Shard>,
    b: usize,
    t: usize,
    with_mask: bool,
    shard: usize,
    pos: usize,
}

impl<'a> Sequential<'a> {
    pub fn new(set: &'a ShardSet, split: Split, b: usize, t: usize) -> Result<Self> {
        let (shards, with_mask) = usable(set, split, t)?;
        Ok(Sequential {
            shards,
            b,
            t,
            with_mask,
            shard: 0,
            pos: 0,
        })
    }
}

impl Iterator for Sequential<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut batch = Batch::new(self.b, self.t, self.with_mask);
        while batch.b < self.b && self.shard < self.shards.len() {
            let s = self.shards[self.shard];
            if self.pos + self.t < s.len() {
                batch.push(s, self.pos);
                self.pos += self.t;
            } else {
                self.shard += 1;
                self.pos = 0;
            }
        }
        (batch.b > 0).then_some(batch)
    }
}
