//! N-gram counts as sorted runs: exact (no hashing), and for the short segments metrics see,
//! sorting a few dozen keys is cheaper than building a hash map.

/// The distinct n-grams of `items` with their counts, sorted.
pub fn counts<T: Ord>(items: &[T], n: usize) -> Vec<(&[T], u32)> {
    if n == 0 || items.len() < n {
        return Vec::new();
    }
    let mut grams: Vec<&[T]> = items.windows(n).collect();
    grams.sort_unstable();
    let mut out: Vec<(&[T], u32)> = Vec::with_capacity(grams.len());
    for g in grams {
        match out.last_mut() {
            Some((last, c)) if *last == g => *c += 1,
            _ => out.push((g, 1)),
        }
    }
    out
}

/// Sum of the counts.
pub fn total<K>(counts: &[(K, u32)]) -> u64 {
    counts.iter().map(|&(_, c)| c as u64).sum()
}

/// Σ min(count in a, count in b) over the n-grams of both ("clipped" matches).
pub fn overlap<K: Ord>(a: &[(K, u32)], b: &[(K, u32)]) -> u64 {
    let (mut i, mut j, mut hits) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                hits += a[i].1.min(b[j].1) as u64;
                i += 1;
                j += 1;
            }
        }
    }
    hits
}

/// Element-wise maximum of two count lists (BLEU's multi-reference counts).
pub fn max_merge<K: Ord + Copy>(a: &[(K, u32)], b: &[(K, u32)]) -> Vec<(K, u32)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1.max(b[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_overlap_and_merge() {
        let a = ["the", "cat", "the", "cat", "sat"];
        let b = ["the", "cat", "sat", "sat"];
        let ca = counts(&a, 1);
        let cb = counts(&b, 1);
        assert_eq!(
            ca,
            vec![(&["cat"][..], 2), (&["sat"][..], 1), (&["the"][..], 2)]
        );
        assert_eq!(total(&ca), 5);
        assert_eq!(overlap(&ca, &cb), 1 + 1 + 1);
        let m = max_merge(&ca, &cb);
        assert_eq!(m.iter().map(|x| x.1).collect::<Vec<_>>(), [2, 2, 2]);
        assert_eq!(overlap(&counts(&a, 2), &counts(&b, 2)), 2); // "the cat", "cat sat"
        assert!(counts(&a, 6).is_empty());
    }
}
