//! BLEU as sacreBLEU 2.x computes it: corpus statistics summed over segments, then one score
//! (not the mean of sentence scores). Defaults: 4-grams, `exp` smoothing, 13a tokenization.

use crate::ngrams;
use crate::pystr;
use crate::sacre_tok::Tokenize;

pub const MAX_ORDER: usize = 4;

/// Match statistics of one segment or, summed, of a corpus.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BleuStats {
    pub sys_len: u64,
    pub ref_len: u64,
    pub correct: [u64; MAX_ORDER],
    pub total: [u64; MAX_ORDER],
}

impl std::ops::AddAssign for BleuStats {
    fn add_assign(&mut self, o: BleuStats) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Smooth {
    None,
    /// NIST's (mteval-v13a): the k-th order with no match counts as 1/2^k matches.
    Exp,
    Floor(f64),
    AddK(f64),
}

/// A BLEU score with what it was computed from; `score` and `precisions` are in 0..=100.
#[derive(Clone, Debug, PartialEq)]
pub struct Bleu {
    pub score: f64,
    pub precisions: [f64; MAX_ORDER],
    pub bp: f64,
    pub stats: BleuStats,
}

impl Bleu {
    /// hyp_len / ref_len, as sacreBLEU prints it.
    pub fn ratio(&self) -> f64 {
        if self.stats.ref_len == 0 {
            0.0
        } else {
            self.stats.sys_len as f64 / self.stats.ref_len as f64
        }
    }
}

/// Statistics of one hypothesis against one or more references, each already tokenized.
pub fn segment_stats(hyp: &str, refs: &[String]) -> BleuStats {
    let hyp_tokens: Vec<&str> = pystr::split(hyp).collect();
    let ref_tokens: Vec<Vec<&str>> = refs.iter().map(|r| pystr::split(r).collect()).collect();
    let mut seqs: Vec<&[&str]> = vec![&hyp_tokens];
    seqs.extend(ref_tokens.iter().map(Vec::as_slice));
    let ids = ngrams::intern(&seqs);
    let mut st = BleuStats {
        sys_len: hyp_tokens.len() as u64,
        ref_len: closest_ref_len(hyp_tokens.len(), ref_tokens.iter().map(Vec::len)),
        ..Default::default()
    };
    for n in 1..=MAX_ORDER {
        let hyp_counts = ngrams::id_grams(&ids[0], n);
        let mut ref_counts = Vec::new();
        for (i, r) in ids[1..].iter().enumerate() {
            let c = ngrams::id_grams(r, n);
            ref_counts = if i == 0 {
                c
            } else {
                ngrams::max_merge(&ref_counts, &c)
            };
        }
        st.total[n - 1] = ngrams::total(&hyp_counts);
        st.correct[n - 1] = ngrams::overlap(&hyp_counts, &ref_counts);
    }
    st
}

/// The reference length closest to the hypothesis length; the shorter one on a tie.
fn closest_ref_len(hyp_len: usize, ref_lens: impl Iterator<Item = usize>) -> u64 {
    let mut best: Option<(usize, usize)> = None; // (diff, len)
    for len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            Some((d, l)) if d < diff || (d == diff && l <= len) => Some((d, l)),
            _ => Some((diff, len)),
        };
    }
    best.map_or(0, |(_, l)| l as u64)
}

/// sacreBLEU's `compute_bleu`.
pub fn score(stats: &BleuStats, smooth: Smooth, effective_order: bool) -> Bleu {
    let (sys_len, ref_len) = (stats.sys_len as f64, stats.ref_len as f64);
    let bp = if stats.sys_len < stats.ref_len {
        if stats.sys_len > 0 {
            (1.0 - ref_len / sys_len).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    let out = |score, precisions| Bleu {
        score,
        precisions,
        bp,
        stats: *stats,
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return out(0.0, precisions);
    }
    let mut smooth_mteval = 1.0;
    let mut eff_order = MAX_ORDER;
    for (n, precision) in precisions.iter_mut().enumerate() {
        let (mut correct, mut total) = (stats.correct[n] as f64, stats.total[n] as f64);
        if let Smooth::AddK(k) = smooth {
            if n > 0 {
                correct += k;
                total += k;
            }
        }
        if total == 0.0 {
            break;
        }
        if effective_order {
            eff_order = n + 1;
        }
        if correct == 0.0 {
            match smooth {
                Smooth::Exp => {
                    smooth_mteval *= 2.0;
                    *precision = 100.0 / (smooth_mteval * total);
                }
                Smooth::Floor(v) => *precision = 100.0 * v / total,
                _ => {}
            }
        } else {
            *precision = 100.0 * correct / total;
        }
    }
    // Summed left to right, like Python's sum() of the list.
    let log_sum: f64 = precisions[..eff_order].iter().map(|&p| my_log(p)).sum();
    out(bp * (log_sum / eff_order as f64).exp(), precisions)
}

fn my_log(x: f64) -> f64 {
    if x == 0.0 {
        -9999999999.0
    } else {
        x.ln()
    }
}

/// `BLEU(tokenize=.., effective_order=True).sentence_score`, the recommended sentence-level BLEU.
pub fn sentence(hyp: &str, refs: &[String], tokenize: Tokenize) -> Bleu {
    let st = segment_stats(&tokenize.apply(hyp), &tokenize_all(refs, tokenize));
    score(&st, Smooth::Exp, true)
}

pub fn tokenize_all(refs: &[String], tokenize: Tokenize) -> Vec<String> {
    refs.iter().map(|r| tokenize.apply(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_match_is_100_and_no_overlap_is_0() {
        let r = vec!["the cat sat on the mat".to_string()];
        let b = sentence("the cat sat on the mat", &r, Tokenize::T13a);
        assert!((b.score - 100.0).abs() < 1e-12);
        let b = sentence("dogs bark", &r, Tokenize::T13a);
        assert_eq!(b.score, 0.0);
    }

    #[test]
    fn brevity_penalty_and_closest_ref() {
        let refs = vec!["a b c d e f".to_string(), "a b c".to_string()];
        // Closest reference length to 4 tokens: |4-3| < |4-6|.
        let st = segment_stats("a b c d", &refs);
        assert_eq!(st.ref_len, 3);
        assert_eq!(closest_ref_len(4, [3, 5].into_iter()), 3); // tie -> shorter
        let short = score(
            &BleuStats {
                sys_len: 5,
                ref_len: 10,
                correct: [5, 4, 3, 2],
                total: [5, 4, 3, 2],
            },
            Smooth::Exp,
            false,
        );
        assert!((short.bp - (1.0f64 - 2.0).exp()).abs() < 1e-15);
        assert!((short.score - 100.0 * short.bp).abs() < 1e-9);
    }
}
