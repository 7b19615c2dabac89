//! MinHash signatures and their LSH bands. Each shingle's 64-bit hash x is permuted by
//! multiply-add-shift, h(x) = (a·x + b) >> 32 in 64-bit arithmetic with seeded odd a and any b
//! (Dietzfelbinger's universal family); the signature is the per-permutation minimum; band b
//! hashes rows [b·r, (b+1)·r) of it. datatrove and datasketch use (a·x + b) mod (2^61 − 1)
//! instead: equally good minima here, but its 128-bit products and reductions do not vectorise,
//! and dominated dedup's time (docs/speed.md, "Measured history: data tools").

use wick_io::Rng;
use xxhash_rust::xxh3::xxh3_64_with_seed;

pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
    pub bands: usize,
    pub rows: usize,
}

impl MinHasher {
    pub fn new(bands: usize, rows: usize, seed: u64) -> MinHasher {
        let mut rng = Rng::new(seed);
        let n = bands * rows;
        let a = (0..n).map(|_| rng.next_u64() | 1).collect();
        let b = (0..n).map(|_| rng.next_u64()).collect();
        MinHasher { a, b, bands, rows }
    }

    /// The signature of a shingle set (all u32::MAX for an empty set).
    pub fn signature(&self, shingles: &[u64]) -> Vec<u32> {
        let mut sig = vec![u32::MAX; self.a.len()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { permute_min_avx2(&self.a, &self.b, shingles, &mut sig) };
            return sig;
        }
        permute_min(&self.a, &self.b, shingles, &mut sig);
        sig
    }

    /// One hash per band.
    pub fn band_hashes(&self, sig: &[u32]) -> Vec<u64> {
        sig.chunks(self.rows)
            .enumerate()
            .map(|(band, rows)| {
                let bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
                xxh3_64_with_seed(&bytes, band as u64)
            })
            .collect()
    }
}

/// The hot loop: for every shingle and permutation, keep the minimum. Plain slices and a
/// branch-free min let the compiler vectorise it across permutations.
#[inline(always)]
fn permute_min(a: &[u64], b: &[u64], shingles: &[u64], sig: &mut [u32]) {
    for &x in shingles {
        for ((m, &a), &b) in sig.iter_mut().zip(a).zip(b) {
            *m = (*m).min((a.wrapping_mul(x).wrapping_add(b) >> 32) as u32);
        }
    }
}

/// The same loop compiled for AVX2 (chosen at run time), several times faster than the
/// baseline x86-64 build of it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn permute_min_avx2(a: &[u64], b: &[u64], shingles: &[u64], sig: &mut [u32]) {
    permute_min(a, b, shingles, sig)
}

/// Fraction of equal signature positions: the MinHash estimate of Jaccard similarity.
pub fn estimate(a: &[u32], b: &[u32]) -> f64 {
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
    fn permutations_are_splitmix64_of_the_seed() {
        // The values dedup's own SplitMix gave before wick_io::Rng replaced it (SplitMix64 of
        // seed 1, computed independently): signatures, and so .sig files and results, are unchanged.
        let h = MinHasher::new(1, 2, 1);
        assert_eq!(h.a, [0x910a2dec89025cc1, 0xbeeb8da1658eec67]);
        assert_eq!(h.b, [0xf893a2eefb32555e, 0x71c18690ee42c90b]);
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
