//! MinHash signatures and their LSH bands, as datatrove computes them: shingle hashes permuted
//! by (a·x + b) mod (2^61 − 1) with seeded a, b; the signature is the per-permutation minimum;
//! band b hashes rows [b·r, (b+1)·r) of it.

use xxhash_rust::xxh3::xxh3_64_with_seed;

const MERSENNE: u64 = (1 << 61) - 1;

pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
    pub bands: usize,
    pub rows: usize,
}

impl MinHasher {
    pub fn new(bands: usize, rows: usize, seed: u64) -> MinHasher {
        let mut rng = SplitMix(seed);
        let n = bands * rows;
        let a = (0..n).map(|_| rng.next() % (MERSENNE - 1) + 1).collect();
        let b = (0..n).map(|_| rng.next() % MERSENNE).collect();
        MinHasher { a, b, bands, rows }
    }

    /// The signature of a shingle set (all u64::MAX for an empty set).
    pub fn signature(&self, shingles: &[u64]) -> Vec<u64> {
        let mut sig = vec![u64::MAX; self.a.len()];
        for &s in shingles {
            let x = s % MERSENNE;
            for (k, m) in sig.iter_mut().enumerate() {
                let h = mod_mersenne(self.a[k] as u128 * x as u128 + self.b[k] as u128);
                if h < *m {
                    *m = h;
                }
            }
        }
        sig
    }

    /// One hash per band.
    pub fn band_hashes(&self, sig: &[u64]) -> Vec<u64> {
        sig.chunks(self.rows)
            .enumerate()
            .map(|(band, rows)| {
                let bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
                xxh3_64_with_seed(&bytes, band as u64)
            })
            .collect()
    }
}

/// x mod (2^61 − 1) without a division: fold the high bits onto the low ones.
fn mod_mersenne(x: u128) -> u64 {
    let r = (x as u64 & MERSENNE) + (x >> 61) as u64;
    let r = (r & MERSENNE) + (r >> 61);
    if r >= MERSENNE {
        r - MERSENNE
    } else {
        r
    }
}

/// Fraction of equal signature positions: the MinHash estimate of Jaccard similarity.
pub fn estimate(a: &[u64], b: &[u64]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// Bands and rows for a Jaccard threshold: of b·r ≈ `perms` hashes, the split whose S-curve
/// midpoint (1/b)^(1/r) is closest to the threshold.
pub fn bands_for_threshold(threshold: f64, perms: usize) -> (usize, usize) {
    let mut best = (1, perms, f64::MAX);
    for rows in 1..=perms {
        let bands = perms / rows;
        if bands == 0 {
            break;
        }
        let mid = (1.0 / bands as f64).powf(1.0 / rows as f64);
        let err = (mid - threshold).abs();
        if err < best.2 {
            best = (bands, rows, err);
        }
    }
    (best.0, best.1)
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_tracks_jaccard() {
        let h = MinHasher::new(16, 8, 1);
        let a: Vec<u64> = (0..1000u32)
            .map(|i| xxh3_64_with_seed(&i.to_le_bytes(), 0))
            .collect();
        let b: Vec<u64> = (250..1250u32)
            .map(|i| xxh3_64_with_seed(&i.to_le_bytes(), 0))
            .collect();
        let (mut sa, mut sb) = (a.clone(), b.clone());
        sa.sort();
        sb.sort();
        let truth = crate::shingle::jaccard(&sa, &sb); // 750 / 1250 = 0.6
                                                       // Averaged over seeds, the estimate is unbiased.
        let mean: f64 = (0..20)
            .map(|seed| {
                let h = MinHasher::new(16, 8, seed);
                estimate(&h.signature(&a), &h.signature(&b))
            })
            .sum::<f64>()
            / 20.0;
        assert!((mean - truth).abs() < 0.03, "estimate {mean} vs {truth}");
        assert_eq!(estimate(&h.signature(&a), &h.signature(&a)), 1.0);
    }

    #[test]
    fn mersenne_reduction_is_exact() {
        let mut r = SplitMix(3);
        for _ in 0..10_000 {
            let (a, b, c) = (
                r.next() % MERSENNE,
                r.next() % MERSENNE,
                r.next() % MERSENNE,
            );
            let x = a as u128 * b as u128 + c as u128;
            assert_eq!(mod_mersenne(x) as u128, x % MERSENNE as u128);
        }
        assert_eq!(mod_mersenne(MERSENNE as u128), 0);
    }

    #[test]
    fn threshold_picks_a_matching_curve() {
        let (b, r) = bands_for_threshold(0.8, 112);
        assert!(b * r <= 112);
        let mid = (1.0 / b as f64).powf(1.0 / r as f64);
        assert!((mid - 0.8).abs() < 0.03, "{b}x{r} → {mid}");
        // datatrove's 14x8 sits near 0.72.
        assert!(((1.0f64 / 14.0).powf(1.0 / 8.0) - 0.719).abs() < 0.01);
    }
}
