//! chrF and chrF++ as sacreBLEU 2.x computes them (character 6-grams, beta 2, whitespace removed;
//! chrF++ adds word 1- and 2-grams). Corpus scores come from statistics summed over segments.

use crate::ngrams;
use crate::pystr;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChrfParams {
    pub char_order: usize,
    pub word_order: usize,
    pub beta: f64,
}

impl ChrfParams {
    pub const CHRF: ChrfParams = ChrfParams {
        char_order: 6,
        word_order: 0,
        beta: 2.0,
    };
    pub const CHRF_PLUS_PLUS: ChrfParams = ChrfParams {
        char_order: 6,
        word_order: 2,
        beta: 2.0,
    };

    fn order(&self) -> usize {
        self.char_order + self.word_order
    }
}

/// Per order (characters first, then words): [hyp n-grams, ref n-grams, matches].
#[derive(Clone, Debug, PartialEq)]
pub struct ChrfStats(pub Vec<[u64; 3]>);

impl ChrfStats {
    pub fn zeros(p: &ChrfParams) -> ChrfStats {
        ChrfStats(vec![[0; 3]; p.order()])
    }

    pub fn add(&mut self, o: &ChrfStats) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            for k in 0..3 {
                a[k] += b[k];
            }
        }
    }
}

/// sacreBLEU's `_remove_punctuation`: one leading or trailing ASCII punctuation mark becomes a
/// word of its own (trailing checked first).
fn words(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for w in pystr::split(s) {
        let mut chars = w.chars();
        let first = chars.next().expect("split gives non-empty words");
        let Some(last) = chars.next_back() else {
            out.push(w);
            continue;
        };
        if last.is_ascii_punctuation() {
            let cut = w.len() - last.len_utf8();
            out.extend([&w[..cut], &w[cut..]]);
        } else if first.is_ascii_punctuation() {
            let cut = first.len_utf8();
            out.extend([&w[..cut], &w[cut..]]);
        } else {
            out.push(w);
        }
    }
    out
}

/// The n-gram counts of one side of a pair, for every order (characters, then words).
fn grams(chars: &[char], word_ids: &[u32], p: &ChrfParams) -> Vec<ngrams::Counts> {
    let mut out: Vec<ngrams::Counts> = (1..=p.char_order)
        .map(|n| ngrams::char_grams(chars, n))
        .collect();
    out.extend((1..=p.word_order).map(|n| ngrams::id_grams(word_ids, n)));
    out
}

fn match_stats(hyp: &ngrams::Counts, r: &ngrams::Counts) -> [u64; 3] {
    // A hypothesis n-gram order with no reference n-grams counts no hypothesis n-grams either.
    let h = if r.is_empty() { 0 } else { ngrams::total(hyp) };
    [h, ngrams::total(r), ngrams::overlap(hyp, r)]
}

/// Statistics of a hypothesis against its references: those of the reference with the best
/// sentence-level chrF (the first one on a tie), as sacreBLEU picks them.
pub fn segment_stats(hyp: &str, refs: &[String], p: &ChrfParams) -> ChrfStats {
    let hyp_chars = pystr::chars_without_space(hyp);
    let ref_chars: Vec<Vec<char>> = refs.iter().map(|r| pystr::chars_without_space(r)).collect();
    // Word ids shared by the hypothesis and every reference.
    let word_ids = if p.word_order > 0 {
        let hw = words(hyp);
        let rw: Vec<Vec<&str>> = refs.iter().map(|r| words(r)).collect();
        let mut seqs: Vec<&[&str]> = vec![&hw];
        seqs.extend(rw.iter().map(Vec::as_slice));
        ngrams::intern(&seqs)
    } else {
        vec![Vec::new(); refs.len() + 1]
    };
    let h = grams(&hyp_chars, &word_ids[0], p);
    let mut best: Option<(f64, ChrfStats)> = None;
    for (chars, ids) in ref_chars.iter().zip(&word_ids[1..]) {
        let g = grams(chars, ids, p);
        let st = ChrfStats(h.iter().zip(&g).map(|(a, b)| match_stats(a, b)).collect());
        let f = f_score(&st, p.beta);
        match &best {
            Some((bf, _)) if f <= *bf => {}
            _ => best = Some((f, st)),
        }
    }
    best.map_or_else(|| ChrfStats::zeros(p), |(_, s)| s)
}

/// sacreBLEU's `_compute_f_score` (without eps smoothing): precision and recall averaged over the
/// orders both sides have, then one F-beta, times 100.
pub fn f_score(st: &ChrfStats, beta: f64) -> f64 {
    let factor = beta * beta;
    let (mut avg_prec, mut avg_rec, mut effective) = (0.0, 0.0, 0usize);
    for &[n_hyp, n_ref, n_match] in &st.0 {
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += n_match as f64 / n_hyp as f64;
            avg_rec += n_match as f64 / n_ref as f64;
            effective += 1;
        }
    }
    if effective == 0 {
        return 0.0;
    }
    avg_prec /= effective as f64;
    avg_rec /= effective as f64;
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    let score = (1.0 + factor) * avg_prec * avg_rec;
    100.0 * (score / (factor * avg_prec + avg_rec))
}

pub fn sentence(hyp: &str, refs: &[String], p: &ChrfParams) -> f64 {
    f_score(&segment_stats(hyp, refs, p), p.beta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_split_like_sacrebleu() {
        assert_eq!(
            words("Hello, world! (x) ... a"),
            ["Hello", ",", "world", "!", "(x", ")", "..", ".", "a"]
        );
    }

    #[test]
    fn identical_is_100_disjoint_is_0() {
        let r = vec!["kitten sitting".to_string()];
        assert!((sentence("kitten sitting", &r, &ChrfParams::CHRF) - 100.0).abs() < 1e-12);
        assert_eq!(sentence("zzz", &r, &ChrfParams::CHRF_PLUS_PLUS), 0.0);
    }
}
