//! N-gram counts as sorted (key, count) runs. A key packs a whole n-gram into one u128 (up to six
//! 21-bit characters, or four 32-bit token ids), so counting is an integer sort and matching a
//! merge: exact, with no hashing, and for the short segments metrics see, faster than hash maps.

pub type Counts = Vec<(u128, u32)>;

/// Run-length counts of the keys (sorts them).
fn tally(mut keys: Vec<u128>) -> Counts {
    keys.sort_unstable();
    let mut out: Counts = Vec::with_capacity(keys.len());
    for k in keys {
        match out.last_mut() {
            Some((last, c)) if *last == k => *c += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// Character n-grams, n <= 6.
pub fn char_grams(chars: &[char], n: usize) -> Counts {
    assert!((1..=6).contains(&n), "character n-grams up to 6");
    if chars.len() < n {
        return Vec::new();
    }
    tally(
        chars
            .windows(n)
            .map(|w| w.iter().fold(0u128, |k, &c| (k << 21) | c as u128))
            .collect(),
    )
}

/// Token-id n-grams, n <= 4.
pub fn id_grams(ids: &[u32], n: usize) -> Counts {
    assert!((1..=4).contains(&n), "token n-grams up to 4");
    if ids.len() < n {
        return Vec::new();
    }
    tally(
        ids.windows(n)
            .map(|w| w.iter().fold(0u128, |k, &t| (k << 32) | t as u128))
            .collect(),
    )
}

/// Numbers the distinct tokens of several sequences (equal strings, equal ids), so n-grams of
/// tokens can be compared as integers.
pub fn intern<S: AsRef<str>>(seqs: &[&[S]]) -> Vec<Vec<u32>> {
    let mut all: Vec<(&str, u32, u32)> = Vec::new(); // (token, sequence, position)
    for (s, seq) in seqs.iter().enumerate() {
        for (i, t) in seq.iter().enumerate() {
            all.push((t.as_ref(), s as u32, i as u32));
        }
    }
    all.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<Vec<u32>> = seqs.iter().map(|s| vec![0; s.len()]).collect();
    let mut id = 0u32;
    for (k, &(tok, s, i)) in all.iter().enumerate() {
        if k > 0 && all[k - 1].0 != tok {
            id += 1;
        }
        out[s as usize][i as usize] = id;
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
        let ids = intern(&[&a[..], &b[..]]);
        assert_eq!(ids[0], [2, 0, 2, 0, 1]);
        assert_eq!(ids[1], [2, 0, 1, 1]);
        let ca = id_grams(&ids[0], 1);
        let cb = id_grams(&ids[1], 1);
        assert_eq!(ca.iter().map(|x| x.1).collect::<Vec<_>>(), [2, 1, 2]);
        assert_eq!(total(&ca), 5);
        assert_eq!(overlap(&ca, &cb), 1 + 1 + 1);
        let m = max_merge(&ca, &cb);
        assert_eq!(m.iter().map(|x| x.1).collect::<Vec<_>>(), [2, 2, 2]);
        // "the cat" and "cat sat" shared; "cat the" only in a.
        assert_eq!(overlap(&id_grams(&ids[0], 2), &id_grams(&ids[1], 2)), 2);
        assert!(id_grams(&ids[0], 4).len() == 2 && id_grams(&ids[1], 4).len() == 1);
    }

    #[test]
    fn char_keys_distinguish_every_character() {
        let s: Vec<char> = "ab\u{10ffff}ab\u{10ffff}a".chars().collect();
        let c = char_grams(&s, 3);
        assert_eq!(total(&c), 5);
        assert_eq!(c.len(), 3); // ab?, b?a (twice), ?ab
        assert_eq!(c.iter().map(|x| x.1).max(), Some(2));
    }
}
