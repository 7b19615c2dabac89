//! A fast encoder for GPT-2-shaped byte-level BPE tokenizers, giving the same ids as the
//! `tokenizers` crate.
//!
//! The crate runs every document through generic machinery: an Oniguruma regex, a normalized
//! string with alignment bookkeeping per byte, byte-to-char remapping and string-keyed vocabulary
//! lookups. For the one shape GPT-2 and its many derivatives share, all of that collapses into a
//! hand-written splitter over the UTF-8 bytes and a BPE over integer ids, as tiktoken does.
//! [`FastBpe::from_tokenizer`] checks the shape exactly and returns `None` for anything else, so
//! the caller can keep using the crate.
//!
//! The pipeline mirrors `Tokenizer::encode_fast(text, false)` step by step:
//! 1. added tokens (`<|endoftext|>`) are cut out of the raw text, leftmost-longest, first the
//!    non-normalized ones, then the normalized ones in what is left (no normalizer, so both
//!    match the raw text);
//! 2. each remaining stretch is split by GPT-2's pattern
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
//! 3. each piece's bytes become the ids of their byte-level characters, and BPE merges them,
//!    lowest merge rank first, leftmost among equals.

use std::cell::RefCell;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use tokenizers::models::ModelWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::utils::SysRegex;
use tokenizers::Tokenizer;

/// Pieces longer than this are merged with a heap (O(n log n)) instead of the quadratic scan
/// that is faster for the short pieces real text is made of.
const LONG_PIECE: usize = 256;
/// Pieces longer than this are not cached: they rarely repeat.
const MAX_CACHED_PIECE: usize = 128;
/// A thread's piece cache is emptied when it grows past this many entries.
const CACHE_LIMIT: usize = 100_000;
/// Rank of "no merge for this pair".
const NO_MERGE: u32 = u32::MAX;

/// An encoder for byte-level BPE tokenizers of GPT-2's shape.
pub struct FastBpe {
    /// Tells this encoder's entries in the per-thread cache from another's.
    instance: u64,
    /// Id of the byte-level character of each byte.
    byte_ids: [u32; 256],
    /// (left id << 32 | right id) -> (merge rank, merged id).
    merges: HashMap<u64, (u32, u32), FastHash>,
    /// Added tokens matched on the raw text (normalized = false), then on what is left
    /// (normalized = true; without a normalizer those match the raw text too).
    added: [AddedSet; 2],
    classes: &'static Classes,
}

impl FastBpe {
    /// An encoder for `tok`, or `None` unless `tok` is exactly the shape this module encodes:
    /// no normalizer, a ByteLevel pre-tokenizer using GPT-2's regex without a prefix space, a BPE
    /// model without dropout, affixes, byte fallback or ignore_merges whose vocabulary holds all
    /// 256 byte characters, no truncation or padding, a post-processor that leaves ids alone,
    /// and added tokens without lstrip/rstrip/single_word.
    pub fn from_tokenizer(tok: &Tokenizer) -> Option<FastBpe> {
        if tok.get_normalizer().is_some()
            || tok.get_truncation().is_some()
            || tok.get_padding().is_some()
        {
            return None;
        }
        match tok.get_pre_tokenizer()? {
            PreTokenizerWrapper::ByteLevel(b) if b.use_regex && !b.add_prefix_space => {}
            _ => return None,
        }
        // ByteLevel only trims offsets; the others may add or change ids.
        if !matches!(
            tok.get_post_processor(),
            None | Some(PostProcessorWrapper::ByteLevel(_))
        ) {
            return None;
        }
        let ModelWrapper::BPE(bpe) = tok.get_model() else {
            return None;
        };
        let empty = |s: &Option<String>| s.as_deref().unwrap_or_default().is_empty();
        if !matches!(bpe.dropout, None | Some(0.0))
            || !empty(&bpe.continuing_subword_prefix)
            || !empty(&bpe.end_of_word_suffix)
            || bpe.byte_fallback
            || bpe.ignore_merges
        {
            return None;
        }

        // The merges are not exposed, but the model serializes them in rank order; the
        // vocabulary comes along, which saves cloning it with get_vocab.
        #[derive(serde::Deserialize)]
        struct Model {
            vocab: HashMap<String, u32, FastHash>,
            merges: Vec<(String, String)>,
        }
        let json = serde_json::to_string(bpe).ok()?;
        let Model { vocab, merges } = serde_json::from_str(&json).ok()?;
        // The BPE works on ids, which is only equivalent to the crate's string pairs if no two
        // tokens share an id.
        let mut ids: Vec<u32> = vocab.values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != vocab.len() {
            return None;
        }
        let mut byte_ids = [0u32; 256];
        for (b, c) in byte_chars().iter().enumerate() {
            // The crate silently drops a byte whose character is missing; not supported.
            byte_ids[b] = *vocab.get(c.encode_utf8(&mut [0; 4]) as &str)?;
        }
        let mut merge_map = HashMap::with_capacity_and_hasher(merges.len(), FastHash::default());
        let mut joined = String::new();
        for (rank, (a, b)) in merges.iter().enumerate() {
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            let merged = *vocab.get(&joined)?;
            // A later duplicate overwrites an earlier one, as in the crate's own map.
            merge_map.insert(
                pair_key(*vocab.get(a)?, *vocab.get(b)?),
                (rank as u32, merged),
            );
        }

        let vocabulary = tok.get_added_vocabulary();
        if vocabulary.get_encode_special_tokens() {
            return None;
        }
        let mut added = [AddedSet::default(), AddedSet::default()];
        let mut seen = HashSet::new();
        for (id, t) in tok.get_added_tokens_decoder() {
            if t.single_word || t.lstrip || t.rstrip {
                return None;
            }
            if t.content.is_empty() {
                continue;
            }
            if !seen.insert(t.content.clone()) || tok.token_to_id(&t.content) != Some(id) {
                return None;
            }
            added[t.normalized as usize].insert(t.content.as_bytes(), id);
        }

        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Some(FastBpe {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            byte_ids,
            merges: merge_map,
            added,
            classes: Classes::get()?,
        })
    }

    /// Appends the ids of `text` to `out`, as `Tokenizer::encode_fast(text, false)` would give.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        CACHE.with_borrow_mut(|cache| {
            if cache.owner != Some(self.instance) {
                cache.pieces.clear();
                cache.owner = Some(self.instance);
            }
            self.split_added(text, 0, &mut cache.pieces, out);
        });
    }

    /// Cuts the tokens of added set `pass` out of `text`, handing the stretches between them to
    /// the next pass, and the last pass's stretches to the pre-tokenizer.
    fn split_added(&self, text: &str, pass: usize, cache: &mut PieceCache, out: &mut Vec<u32>) {
        let Some(set) = self.added.get(pass) else {
            return self.encode_ordinary(text, cache, out);
        };
        if set.tokens.is_empty() {
            return self.split_added(text, pass + 1, cache, out);
        }
        let bytes = text.as_bytes();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            // Tokens are valid UTF-8, so a match starts and ends on char boundaries.
            if let Some((len, id)) = set.longest_at(&bytes[i..]) {
                self.split_added(&text[start..i], pass + 1, cache, out);
                out.push(id);
                i += len;
                start = i;
            } else {
                i += 1;
            }
        }
        self.split_added(&text[start..], pass + 1, cache, out);
    }

    /// Encodes text that holds no added token: pre-tokenize, then BPE each piece.
    fn encode_ordinary(&self, text: &str, cache: &mut PieceCache, out: &mut Vec<u32>) {
        let mut start = 0;
        while start < text.len() {
            let end = self.piece_end(text, start);
            self.encode_piece(&text.as_bytes()[start..end], cache, out);
            start = end;
        }
    }

    /// Where the GPT-2 regex's match starting at `i` ends. The regex matches somewhere at every
    /// position (each character is a letter, a number, a space or "other"), so the matches tile
    /// the text and the next one always starts where the last one ended. Its alternatives are
    /// tried in order, and the first that matches wins.
    fn piece_end(&self, s: &str, i: usize) -> usize {
        let b = s.as_bytes();
        // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, and with no word boundary after them).
        if b[i] == b'\'' {
            if let Some([b'r', b'e'] | [b'v', b'e'] | [b'l', b'l']) = b.get(i + 1..i + 3) {
                return i + 3;
            }
            if let Some(b's' | b't' | b'm' | b'd') = b.get(i + 1) {
                return i + 2;
            }
        }
        let (mut class, len) = self.class_at(s, i);
        let mut j = i + len;
        // " ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+": one ASCII space may lead a run of anything
        // but whitespace.
        if b[i] == b' ' && j < b.len() {
            let (next, len) = self.class_at(s, j);
            if next != Class::Space {
                class = next;
                j += len;
            }
        }
        if class != Class::Space {
            while j < b.len() {
                let (c, len) = self.class_at(s, j);
                if c != class {
                    break;
                }
                j += len;
            }
            return j;
        }
        // "\s+(?!\S)|\s+": a whitespace run, less its last character when a non-space follows
        // (that character then leads the next match), unless the run is that one character.
        let mut last = i;
        while j < b.len() {
            let (c, len) = self.class_at(s, j);
            if c != Class::Space {
                break;
            }
            last = j;
            j += len;
        }
        if j == b.len() || last == i {
            j
        } else {
            last
        }
    }

    /// The class and UTF-8 length of the character at byte `i` of `s`.
    #[inline]
    fn class_at(&self, s: &str, i: usize) -> (Class, usize) {
        let b = s.as_bytes()[i];
        if b < 0x80 {
            return (self.classes.ascii[b as usize], 1);
        }
        let c = s[i..].chars().next().expect("i is inside s");
        (self.classes.of(c as u32), c.len_utf8())
    }

    fn encode_piece(&self, piece: &[u8], cache: &mut PieceCache, out: &mut Vec<u32>) {
        if piece.len() == 1 {
            out.push(self.byte_ids[piece[0] as usize]);
            return;
        }
        if piece.len() > MAX_CACHED_PIECE {
            return self.bpe(piece, out);
        }
        if let Some(ids) = cache.get(piece) {
            out.extend_from_slice(ids);
            return;
        }
        let start = out.len();
        self.bpe(piece, out);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(piece.into(), out[start..].into());
    }

    /// Appends the BPE ids of one piece.
    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>) {
        let ids: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        if piece.len() > LONG_PIECE {
            self.merge_with_heap(ids, out)
        } else {
            self.merge_by_scan(ids, out)
        }
    }

    /// (rank, merged id) of the pair, if the pair merges.
    #[inline]
    fn merge_of(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.merges.get(&pair_key(left, right)).copied()
    }

    /// tiktoken's approach: keep the rank of each adjacent pair, merge the lowest (the first
    /// one on ties, as the crate's heap does), and refresh the two pairs that changed.
    fn merge_by_scan(&self, ids: Vec<u32>, out: &mut Vec<u32>) {
        #[derive(Clone, Copy)]
        struct Part {
            id: u32,
            /// Rank and result of merging with the next part.
            rank: u32,
            merged: u32,
        }
        let mut parts: Vec<Part> = ids
            .iter()
            .map(|&id| Part {
                id,
                rank: NO_MERGE,
                merged: 0,
            })
            .collect();
        let refresh = |parts: &mut Vec<Part>, k: usize| {
            let (rank, merged) = match parts.get(k + 1) {
                Some(next) => self.merge_of(parts[k].id, next.id).unwrap_or((NO_MERGE, 0)),
                None => (NO_MERGE, 0),
            };
            parts[k].rank = rank;
            parts[k].merged = merged;
        };
        for k in 0..parts.len() {
            refresh(&mut parts, k);
        }
        // min_by_key keeps the first of equal minima: the leftmost.
        while let Some((k, merged)) = parts
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.rank)
            .filter(|(_, p)| p.rank != NO_MERGE)
            .map(|(k, p)| (k, p.merged))
        {
            parts[k].id = merged;
            parts.remove(k + 1);
            refresh(&mut parts, k);
            if k > 0 {
                refresh(&mut parts, k - 1);
            }
        }
        out.extend(parts.iter().map(|p| p.id));
    }

    /// The same merges in O(n log n) for long pieces: a min-heap of (rank, position) over a
    /// linked list of symbols; entries whose pair has since changed are skipped when popped.
    fn merge_with_heap(&self, mut ids: Vec<u32>, out: &mut Vec<u32>) {
        const NONE: usize = usize::MAX;
        let n = ids.len();
        let mut next: Vec<usize> = (1..=n).map(|k| if k == n { NONE } else { k }).collect();
        let mut prev: Vec<usize> = (0..n).map(|k| k.wrapping_sub(1)).collect(); // 0 -> NONE
        let mut alive = vec![true; n];
        // Reverse makes the max-heap a min-heap on (rank, position): lowest rank, then leftmost.
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, ids: &[u32], left: usize, right: usize| {
            if let Some((rank, merged)) = self.merge_of(ids[left], ids[right]) {
                heap.push(std::cmp::Reverse((
                    rank, left, ids[left], ids[right], merged,
                )));
            }
        };
        for k in 1..n {
            push(&mut heap, &ids, k - 1, k);
        }
        while let Some(std::cmp::Reverse((_, pos, left, right, merged))) = heap.pop() {
            let r = next[pos];
            if !alive[pos] || r == NONE || ids[pos] != left || ids[r] != right {
                continue; // stale
            }
            ids[pos] = merged;
            alive[r] = false;
            next[pos] = next[r];
            if next[r] != NONE {
                prev[next[r]] = pos;
                push(&mut heap, &ids, pos, next[r]);
            }
            if prev[pos] != NONE {
                push(&mut heap, &ids, prev[pos], pos);
            }
        }
        // The first symbol only ever absorbs its right neighbours, so it is always alive.
        let mut k = 0;
        while k != NONE {
            out.push(ids[k]);
            k = next[k];
        }
    }
}

fn pair_key(left: u32, right: u32) -> u64 {
    (left as u64) << 32 | right as u64
}

/// GPT-2's printable stand-in character for each byte (`bytes_to_unicode` in its encoder.py):
/// printable Latin-1 bytes stand for themselves, the rest map to U+0100 onwards in order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut chars = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        chars[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).expect("below U+0200")
        };
    }
    chars
}

/// The added tokens of one matching pass.
#[derive(Default)]
struct AddedSet {
    /// Longest first, so the first that matches at a position is the longest.
    tokens: Vec<(Box<[u8]>, u32)>,
    /// Whether some token starts with this byte: most positions are rejected by one lookup.
    first: Vec<bool>,
}

impl AddedSet {
    fn insert(&mut self, content: &[u8], id: u32) {
        self.first.resize(256, false);
        self.first[content[0] as usize] = true;
        self.tokens.push((content.into(), id));
        self.tokens.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
    }

    /// (length, id) of the longest token that `rest` starts with.
    #[inline]
    fn longest_at(&self, rest: &[u8]) -> Option<(usize, u32)> {
        if !self.first[rest[0] as usize] {
            return None;
        }
        self.tokens
            .iter()
            .find(|(t, _)| rest.starts_with(t))
            .map(|(t, id)| (t.len(), *id))
    }
}

/// How GPT-2's regex sees a character.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// `\p{L}`
    Letter,
    /// `\p{N}`
    Number,
    /// `\s`
    Space,
    /// `[^\s\p{L}\p{N}]`
    Other,
}

/// The class of every code point, looked up by 256-code-point block. Each block is asked of
/// the regex engine the first time a character in it is seen: text touches a few blocks, and
/// classifying all 4352 up front would take a tenth of a second.
struct Classes {
    /// `\s`, `\p{L}` and `\p{N}`, compiled by the engine `tokenizers` uses.
    regexes: Vec<(SysRegex, Class)>,
    blocks: Vec<OnceLock<Box<[Class; 256]>>>,
    /// Block 0's first half, copied out of the lock for the common case.
    ascii: [Class; 128],
}

impl Classes {
    /// The table, shared by the whole process.
    fn get() -> Option<&'static Classes> {
        static CLASSES: OnceLock<Option<Classes>> = OnceLock::new();
        CLASSES.get_or_init(Classes::new).as_ref()
    }

    fn new() -> Option<Classes> {
        let patterns = [
            (r"\s+", Class::Space),
            (r"\p{L}+", Class::Letter),
            (r"\p{N}+", Class::Number),
        ];
        let regexes = patterns
            .iter()
            .map(|&(p, c)| Some((SysRegex::new(p).ok()?, c)))
            .collect::<Option<_>>()?;
        let blocks = (0..=char::MAX as u32 >> 8)
            .map(|_| OnceLock::new())
            .collect();
        let mut table = Classes {
            regexes,
            blocks,
            ascii: [Class::Other; 128],
        };
        let ascii = table.block(0)[..128].try_into().expect("128 classes");
        table.ascii = ascii;
        // A failed search would go unnoticed (find_iter just stops), so check a few
        // characters of each class.
        let expect = [
            ('z', Class::Letter),
            ('9', Class::Number),
            ('\r', Class::Space),
            ('~', Class::Other),
            ('\u{9FA5}', Class::Letter),
            ('\u{3000}', Class::Space),
            ('\u{FF19}', Class::Number),
            ('\u{FEFF}', Class::Other),
        ];
        expect
            .iter()
            .all(|&(c, class)| table.of(c as u32) == class)
            .then_some(table)
    }

    /// Asks the regex engine which code points of a block `\s`, `\p{L}` and `\p{N}` match.
    /// The splitter then agrees with `tokenizers` by construction, whatever Unicode version
    /// that engine ships (Oniguruma 6.9.10: Unicode 16) and however it defines `\s`
    /// (White_Space: U+0009-000D, U+0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028-2029,
    /// U+202F, U+205F, U+3000; not U+180E, U+200B or U+FEFF).
    fn classify(&self, block: u32) -> Box<[Class; 256]> {
        let text: String = (block << 8..(block + 1) << 8)
            .filter_map(char::from_u32)
            .collect();
        let mut classes = Box::new([Class::Other; 256]);
        for (re, class) in &self.regexes {
            for (start, end) in re.find_iter(&text) {
                for c in text[start..end].chars() {
                    classes[(c as u32 & 0xFF) as usize] = *class;
                }
            }
        }
        classes
    }

    #[inline]
    fn block(&self, block: u32) -> &[Class; 256] {
        self.blocks[block as usize].get_or_init(|| self.classify(block))
    }

    #[inline]
    fn of(&self, cp: u32) -> Class {
        self.block(cp >> 8)[(cp & 0xFF) as usize]
    }
}

/// An FxHash-style hasher for the merge table's id pairs and the cache's byte strings: keys
/// are short and not chosen to collide, so SipHash's cost buys nothing here.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

type FastHash = BuildHasherDefault<Fx>;

impl Fx {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weak; the table indexes by them.
        self.0.rotate_left(26)
    }
}

type PieceCache = HashMap<Box<[u8]>, Box<[u32]>, FastHash>;

/// Per-thread piece -> ids cache: English text is mostly a few thousand distinct words, and a
/// lookup is much cheaper than a BPE. Thread-local, so the encoding threads never contend.
struct ThreadCache {
    /// The encoder the entries belong to.
    owner: Option<u64>,
    pieces: PieceCache,
}

thread_local! {
    static CACHE: RefCell<ThreadCache> = RefCell::new(ThreadCache { owner: None, pieces: PieceCache::default() });
}

#[cfg(test)]
mod tests {
    use super::*;

    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

    fn gpt2() -> &'static (Tokenizer, FastBpe) {
        static GPT2: OnceLock<(Tokenizer, FastBpe)> = OnceLock::new();
        GPT2.get_or_init(|| {
            let tok =
                Tokenizer::from_file(format!("{TESTDATA}/tokenizers/gpt2/tokenizer.json")).unwrap();
            let fast = FastBpe::from_tokenizer(&tok).expect("GPT-2 is supported");
            (tok, fast)
        })
    }

    fn fast_ids(fast: &FastBpe, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        fast.encode(text, &mut ids);
        ids
    }

    fn crate_ids(tok: &Tokenizer, text: &str) -> Vec<u32> {
        tok.encode_fast(text, false).unwrap().get_ids().to_vec()
    }

    fn texts(file: &str) -> Vec<String> {
        let data = std::fs::read_to_string(format!("{TESTDATA}/{file}")).unwrap();
        data.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn matches_python_fixture() {
        let (_, fast) = gpt2();
        let data = std::fs::read_to_string(format!("{TESTDATA}/fixtures/gpt2_ids.jsonl")).unwrap();
        let mut n = 0;
        for line in data.lines() {
            let rec: serde_json::Value = serde_json::from_str(line).unwrap();
            let want: Vec<u32> = serde_json::from_value(rec["ids"].clone()).unwrap();
            assert_eq!(
                fast_ids(fast, rec["text"].as_str().unwrap()),
                want,
                "fixture {}",
                rec["name"]
            );
            n += 1;
        }
        assert!(n > 100);
    }

    #[test]
    fn matches_crate_on_corpora() {
        let (tok, fast) = gpt2();
        for file in ["english.jsonl", "chinese.jsonl"] {
            let docs = texts(file);
            assert!(docs.len() > 100);
            for (i, text) in docs.iter().enumerate() {
                assert_eq!(
                    fast_ids(fast, text),
                    crate_ids(tok, text),
                    "{file} document {i}"
                );
            }
        }
    }

    #[test]
    fn matches_crate_for_wick_trained_tokenizers() {
        // `tokenize train` makes GPT-2-shaped tokenizers with their own merges and specials.
        let docs = texts("english.jsonl");
        let opts = crate::TrainOptions {
            vocab_size: 600,
            min_frequency: 2,
            special_tokens: vec!["<|endoftext|>".into(), "<|pad|>".into()],
        };
        let tok = crate::train_bpe(docs.iter().take(40).cloned(), &opts).unwrap();
        let fast = FastBpe::from_tokenizer(&tok).expect("wick's own tokenizers are supported");
        for text in docs
            .iter()
            .skip(40)
            .take(60)
            .chain(&texts("chinese.jsonl")[..40])
        {
            let text = format!("{text}<|pad|><|endoftext|>{text}");
            assert_eq!(fast_ids(&fast, &text), crate_ids(&tok, &text));
        }
    }

    /// Deterministic xorshift64*, enough to pick from a palette.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
    }

    const PALETTE: &[&str] = &[
        " ",
        " ",
        " ",
        "  ",
        "\t",
        "\n",
        "\n\n",
        "\r\n",
        "\r",
        "\u{0B}",
        "\u{0C}",
        "\u{A0}",
        "\u{3000}",
        "\u{2028}",
        "\u{2029}",
        "\u{85}",
        "\u{200B}",
        "\u{FEFF}",
        "\u{180E}",
        "\u{1680}",
        "\u{2009}",
        "\u{202F}",
        "'",
        "'s",
        "'t",
        "'re",
        "'ve",
        "'m",
        "'ll",
        "'d",
        "'S",
        "'T",
        "'RE",
        "'VE",
        "'M",
        "'LL",
        "'D",
        "''",
        "’s",
        "a",
        "the",
        "The",
        "Hello",
        "xyz",
        "é",
        "e\u{301}",
        "\u{301}",
        "ß",
        "Ж",
        "Привет",
        "中",
        "文字",
        "こんにちは",
        "カ",
        "한국",
        "ا",
        "مرحبا",
        "ש",
        "नमस्ते",
        "ก",
        "สวัสดี",
        "Ω",
        "0",
        "7",
        "42",
        "1999",
        "٣",
        "½",
        "²",
        "Ⅻ",
        "①",
        "１",
        "😀",
        "👩\u{200D}👩\u{200D}👧",
        "🇨🇳",
        "👍🏽",
        "1\u{FE0F}\u{20E3}",
        "\u{200D}",
        ".",
        ",",
        "!",
        "?",
        "...",
        "-",
        "—",
        "(",
        ")",
        "\"",
        "“",
        "#",
        "$",
        "%",
        "&",
        "*",
        "_",
        "/",
        "\\",
        "<",
        ">",
        "|",
        "<|",
        "|>",
        "<|endoftext",
        "endoftext|>",
        "<|endoftext|>",
        "<|endoftext|><|endoftext|>",
        "\0",
        "\u{7F}",
        "\u{10FFFD}",
        "\u{E000}",
        "\u{FFFD}",
    ];

    #[test]
    fn matches_crate_on_fuzz() {
        let (tok, fast) = gpt2();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let parts = 1 + rng.below(12);
            let text: String = (0..parts)
                .map(|_| PALETTE[rng.below(PALETTE.len())])
                .collect();
            assert_eq!(
                fast_ids(fast, &text),
                crate_ids(tok, &text),
                "round {round}: {text:?}"
            );
        }
    }

    #[test]
    fn matches_crate_on_random_code_points() {
        // Characters from anywhere in Unicode (rare scripts, unassigned, private use) check the
        // lazily built class table block by block against the crate's regex.
        let (tok, fast) = gpt2();
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for round in 0..300 {
            let text: String = (0..16)
                .map(|_| match rng.below(4) {
                    0 => ' ',
                    1 => char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'),
                    2 => char::from_u32(rng.below(0x10000) as u32).unwrap_or('?'),
                    _ => char::from_u32(rng.below(0x110000) as u32).unwrap_or('?'),
                })
                .collect();
            assert_eq!(
                fast_ids(fast, &text),
                crate_ids(tok, &text),
                "round {round}: {text:?}"
            );
        }
    }

    #[test]
    fn long_pieces_merge_like_the_crate() {
        let (tok, fast) = gpt2();
        // Runs longer than LONG_PIECE go through the heap; the scan must agree with it too.
        for text in [
            "a".repeat(1000),
            "ab".repeat(700),
            "abcdefghij".repeat(40),
            " ".repeat(600),
            "!?".repeat(300),
        ] {
            assert_eq!(
                fast_ids(fast, &text),
                crate_ids(tok, &text),
                "{text:.20}..."
            );
        }
        let mut rng = Rng(7);
        for _ in 0..200 {
            let piece: Vec<u8> = (0..2 + rng.below(40))
                .map(|_| b"aeinrst "[rng.below(8)])
                .collect();
            let ids: Vec<u32> = piece.iter().map(|&b| fast.byte_ids[b as usize]).collect();
            let (mut scan, mut heap) = (Vec::new(), Vec::new());
            fast.merge_by_scan(ids.clone(), &mut scan);
            fast.merge_with_heap(ids, &mut heap);
            assert_eq!(scan, heap, "{:?}", String::from_utf8_lossy(&piece));
        }
    }

    #[test]
    fn whitespace_classes_follow_oniguruma() {
        let classes = Classes::get().unwrap();
        for c in [
            '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}', '\u{200A}', '\u{2028}', '\u{2029}',
            '\u{202F}', '\u{3000}',
        ] {
            assert_eq!(classes.of(c as u32), Class::Space, "{c:?}");
        }
        for c in ['\u{180E}', '\u{200B}', '\u{FEFF}', '\u{301}', '\u{1F600}'] {
            assert_eq!(classes.of(c as u32), Class::Other, "{c:?}");
        }
        for (c, class) in [
            ('ß', Class::Letter),
            ('中', Class::Letter),
            ('٣', Class::Number),
            ('½', Class::Number),
        ] {
            assert_eq!(classes.of(c as u32), class, "{c:?}");
        }
    }

    /// GPT-2's tokenizer.json cut down to the byte tokens and <|endoftext|>, without merges:
    /// same shape, loads in no time.
    fn tiny_gpt2() -> serde_json::Value {
        let json =
            std::fs::read_to_string(format!("{TESTDATA}/tokenizers/gpt2/tokenizer.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let vocab = v["model"]["vocab"].as_object_mut().unwrap();
        vocab.retain(|_, id| id.as_u64().unwrap() < 256 || id.as_u64() == Some(50256));
        v["model"]["merges"] = serde_json::json!([]);
        v
    }

    #[test]
    fn cache_is_per_encoder() {
        let (_, gpt2) = gpt2();
        let tok = Tokenizer::from_bytes(serde_json::to_vec(&tiny_gpt2()).unwrap()).unwrap();
        let tiny = FastBpe::from_tokenizer(&tok).unwrap();
        let bytes: Vec<u32> = vec![71, 68, 75, 75, 78]; // h e l l o, unmerged
        for _ in 0..2 {
            assert_eq!(fast_ids(&tiny, "hello"), bytes);
            assert_eq!(fast_ids(gpt2, "hello"), [31373]);
        }
    }

    #[test]
    fn other_shapes_are_refused() {
        let base = tiny_gpt2();
        let variant = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = base.clone();
            edit(&mut v);
            let tok = Tokenizer::from_bytes(serde_json::to_vec(&v).unwrap()).unwrap();
            FastBpe::from_tokenizer(&tok).is_some()
        };
        assert!(variant(&|_| {}));
        assert!(!variant(
            &|v| v["normalizer"] = serde_json::json!({"type": "Lowercase"})
        ));
        assert!(!variant(
            &|v| v["pre_tokenizer"]["add_prefix_space"] = true.into()
        ));
        assert!(!variant(&|v| v["pre_tokenizer"]["use_regex"] = false.into()));
        assert!(!variant(&|v| v["model"]["dropout"] = 0.1.into()));
        assert!(!variant(&|v| v["model"]["ignore_merges"] = true.into()));
        assert!(!variant(&|v| v["added_tokens"][0]["lstrip"] = true.into()));
        assert!(!variant(
            &|v| v["added_tokens"][0]["single_word"] = true.into()
        ));
        assert!(!variant(&|v| {
            v["post_processor"] = serde_json::json!({"type": "TemplateProcessing", "single": [], "pair": [], "special_tokens": {}})
        }));
        assert!(!variant(&|v| {
            v["truncation"] = serde_json::json!({"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0})
        }));
    }

    #[test]
    fn normalized_added_tokens_match_after_the_others() {
        // A normalized added token overlapping a non-normalized one: the crate cuts out the
        // non-normalized one first, wherever it is, then looks for the other in what is left.
        let json =
            std::fs::read_to_string(format!("{TESTDATA}/tokenizers/gpt2/tokenizer.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let extra = serde_json::json!([
            {"id": 50257, "content": "ab<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
            {"id": 50258, "content": " world", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
            {"id": 50259, "content": "<|end", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ]);
        v["added_tokens"]
            .as_array_mut()
            .unwrap()
            .extend(extra.as_array().unwrap().iter().cloned());
        let tok = Tokenizer::from_bytes(serde_json::to_vec(&v).unwrap()).unwrap();
        let fast = FastBpe::from_tokenizer(&tok).unwrap();
        for text in [
            "xab<|endoftext|> world",
            "hello world<|end",
            "ab<|endoftext|>ab<|endoftext",
            " world world",
        ] {
            assert_eq!(fast_ids(&fast, text), crate_ids(&tok, text), "{text:?}");
        }
    }
}
