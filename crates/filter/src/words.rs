//! Word splitting and script detection.
//!
//! datatrove splits English with spaCy's rule-based tokenizer (`spacy.blank("en")`, datatrove
//! 0.10; NLTK's `word_tokenize` before) and Chinese with jieba. Here one tokenizer serves every
//! document, written to give spaCy's tokens on English:
//!
//! - whitespace separates; every CJK character (Han, kana, bopomofo) is a word of its own;
//! - punctuation and symbols come off the front and back of a whitespace-separated piece one
//!   at a time (`"(yes),"` → `(` `yes` `)` `,`), runs of dots as one (`...`);
//! - a final period stays on abbreviations (`Mr.`, `e.g.`, `U.S.`, single letters `A.`) and
//!   comes off otherwise (after a lower-case letter, a digit, punctuation, or two capitals);
//! - `'s` and `n't` come off (`don't` → `do` `n't`), and `'d` `'ll` `'re` `'ve` `'m` after
//!   pronouns (`you'd` → `you` `'d`, but `embark'd` stays whole);
//! - inside a piece, dashes between letters (`well-known` → `well` `-` `known`), commas between
//!   letters, `:` `<` `>` `=` `/` between a letter or digit and a letter, and dot runs split.
//!
//! It agrees with spaCy on most tokens of testdata/english.jsonl (see docs/filter.md); exact
//! agreement is not the aim, the same counts and ratios are.

/// How a document's words are delimited, decided per document from its own characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Words separated by spaces (Latin, Cyrillic, Greek, Hangul, …).
    Spaced,
    /// Chinese or Japanese: no spaces between words; every CJK character is one word.
    Cjk,
}

impl Script {
    pub fn name(self) -> &'static str {
        match self {
            Script::Spaced => "spaced",
            Script::Cjk => "cjk",
        }
    }
}

/// Han ideographs (with extensions and compatibility blocks), the ideographic iteration and
/// number marks, hiragana, katakana (with half-width forms) and bopomofo: the characters of
/// scripts written without spaces between words. Hangul is left out: Korean separates words
/// with spaces.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF        // CJK Unified Ideographs
        | 0x3400..=0x4DBF      // Extension A
        | 0x20000..=0x2FA1F    // Extensions B–F, compatibility supplement
        | 0x30000..=0x323AF    // Extensions G–H
        | 0xF900..=0xFAFF      // Compatibility Ideographs
        | 0x3005..=0x3007      // 々 〆 〇
        | 0x3040..=0x309F      // Hiragana
        | 0x30A0..=0x30FF      // Katakana
        | 0x31F0..=0x31FF      // Katakana phonetic extensions
        | 0xFF66..=0xFF9D      // Half-width katakana
        | 0x3100..=0x312F      // Bopomofo
        | 0x31A0..=0x31BF)
}

/// A document's words (datatrove's `words`: punctuation tokens included) and its script.
#[derive(Debug, Default)]
pub struct Words<'a> {
    pub tokens: Vec<&'a str>,
    /// Tokens that are one CJK character.
    pub cjk: usize,
    /// Tokens with a letter or digit that are not CJK characters.
    pub other: usize,
}

impl<'a> Words<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut w = Words {
            tokens: Vec::with_capacity(text.len() / 4),
            cjk: 0,
            other: 0,
        };
        for_each_word(text, |t, cjk| {
            if cjk {
                w.cjk += 1;
            } else if t.chars().any(char::is_alphanumeric) {
                w.other += 1;
            }
            w.tokens.push(t);
        });
        w
    }

    /// The number of words of `text`, without collecting them.
    pub fn count(text: &str) -> usize {
        let mut n = 0;
        for_each_word(text, |_, _| n += 1);
        n
    }

    /// CJK when CJK characters are at least half of the words that have a letter or digit.
    pub fn script(&self) -> Script {
        if self.cjk > 0 && self.cjk >= self.other {
            Script::Cjk
        } else {
            Script::Spaced
        }
    }
}

/// Calls `emit(word, is_cjk_character)` for every word of `text`, in order.
pub fn for_each_word<'a>(text: &'a str, mut emit: impl FnMut(&'a str, bool)) {
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || is_cjk(c) {
            if let Some(s) = start.take() {
                piece(&text[s..i], &mut emit);
            }
            if !c.is_whitespace() {
                emit(&text[i..i + c.len_utf8()], true);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        piece(&text[s..], &mut emit);
    }
}

/// One whitespace-delimited piece: prefixes and suffixes off, special cases whole, infixes
/// split (the order of spaCy's `Tokenizer._split_affixes`).
fn piece<'a>(mut s: &'a str, emit: &mut impl FnMut(&'a str, bool)) {
    // Most pieces are plain words.
    if s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        match whole(s) {
            Some(k) if k < s.len() => {
                emit(&s[..k], false);
                emit(&s[k..], false);
            }
            _ => emit(s, false),
        }
        return;
    }
    // Suffixes come off last-first and are emitted in text order at the end.
    let mut suffixes = Suffixes::default();
    while !s.is_empty() && special(s).is_none() {
        let pre = prefix_len(s).unwrap_or(0);
        if pre > 0 && pre < s.len() && special(&s[pre..]).is_some() {
            emit(&s[..pre], false);
            s = &s[pre..];
            break;
        }
        let suf = suffix_len(&s[pre..]).unwrap_or(0);
        let cut = s.len() - suf;
        if suf > 0 && cut > 0 && special(&s[..cut]).is_some() {
            suffixes.push(&s[cut..]);
            s = &s[..cut];
            break;
        }
        if pre > 0 && suf > 0 && pre + suf <= s.len() {
            emit(&s[..pre], false);
            suffixes.push(&s[cut..]);
            s = &s[pre..cut];
        } else if pre > 0 {
            emit(&s[..pre], false);
            s = &s[pre..];
        } else if suf > 0 {
            suffixes.push(&s[cut..]);
            s = &s[..cut];
        } else {
            break;
        }
    }
    if !s.is_empty() {
        match special(s) {
            Some(k) => {
                emit(&s[..k], false);
                if k < s.len() {
                    emit(&s[k..], false);
                }
            }
            None => infixes(s, emit),
        }
    }
    suffixes.emit(emit);
}

/// A stack of suffixes that allocates only past eight.
#[derive(Default)]
struct Suffixes<'a> {
    inline: [&'a str; 8],
    len: usize,
    spill: Vec<&'a str>,
}

impl<'a> Suffixes<'a> {
    fn push(&mut self, s: &'a str) {
        if self.len < self.inline.len() {
            self.inline[self.len] = s;
            self.len += 1;
        } else {
            self.spill.push(s);
        }
    }

    fn emit(self, emit: &mut impl FnMut(&'a str, bool)) {
        for &s in self.spill.iter().rev() {
            emit(s, false);
        }
        for &s in self.inline[..self.len].iter().rev() {
            emit(s, false);
        }
    }
}

/// Splits around infixes (spaCy's English TOKENIZER_INFIXES).
fn infixes<'a>(s: &'a str, emit: &mut impl FnMut(&'a str, bool)) {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut start = 0; // byte offset of the current piece
    let mut i = 0;
    let at = |k: usize| chars.get(k).map(|x| x.1);
    let byte = |k: usize| chars.get(k).map_or(s.len(), |x| x.0);
    while i < chars.len() {
        let c = chars[i].1;
        let prev = if i > 0 { at(i - 1) } else { None };
        let alpha = |x: Option<char>| x.is_some_and(char::is_alphabetic);
        let alnum = |x: Option<char>| x.is_some_and(char::is_alphanumeric);
        let digit = |x: Option<char>| x.is_some_and(|c| c.is_ascii_digit());
        let next = at(i + 1);
        // One-character infixes.
        let single = c == '…'
            || (i > 0
                && ((matches!(c, '+' | '-' | '*' | '^')
                    && digit(prev)
                    && (digit(next) || next == Some('-')))
                    || (c == '.'
                        && prev.is_some_and(|p| p.is_lowercase() || is_quote(p))
                        && next.is_some_and(|n| n.is_uppercase() || is_quote(n)))
                    || (c == ',' && alpha(prev) && alpha(next))
                    || (matches!(c, ':' | '<' | '>' | '=' | '/') && alnum(prev) && alpha(next))));
        // Length in chars of an infix starting at i, if one does.
        let len = if c == '.' && next == Some('.') {
            let mut j = i;
            while at(j) == Some('.') {
                j += 1;
            }
            j - i
        } else if single {
            1
        } else if i > 0 && matches!(c, '-' | '–' | '—' | '~') && alnum(prev) {
            // The longest dash run (up to 3) that a letter follows.
            let mut j = i + 1;
            if c == '-' || c == '—' {
                while j < chars.len() && j - i < 3 && at(j) == Some(c) {
                    j += 1;
                }
            }
            if alpha(at(j)) {
                j - i
            } else {
                0
            }
        } else {
            0
        };
        if len == 0 {
            i += 1;
            continue;
        }
        let (b0, b1) = (byte(i), byte(i + len));
        if b0 > start {
            emit(&s[start..b0], false);
        }
        emit(&s[b0..b1], false);
        start = b1;
        i += len;
    }
    if start < s.len() {
        emit(&s[start..], false);
    }
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '\'' | '"' | '”' | '“' | '`' | '‘' | '´' | '’' | '‚' | '„' | '»' | '«'
    )
}

/// Punctuation and symbols that split off as prefixes or suffixes, other than `.` (which has
/// its own rules), `-`, `@`, `/`, `\`, `^`, `|` (which spaCy leaves attached).
fn is_affix_char(c: char) -> bool {
    if c.is_ascii() {
        matches!(
            c,
            '!' | '"'
                | '#'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | ','
                | ':'
                | ';'
                | '<'
                | '>'
                | '?'
                | '['
                | ']'
                | '_'
                | '`'
                | '{'
                | '}'
        )
    } else {
        !c.is_alphanumeric() && !c.is_whitespace()
    }
}

fn dot_run_at_start(s: &str) -> usize {
    s.bytes().take_while(|&b| b == b'.').count()
}

fn prefix_len(s: &str) -> Option<usize> {
    let c = s.chars().next()?;
    let dots = dot_run_at_start(s);
    if dots >= 2 {
        return Some(dots);
    }
    let next = s[c.len_utf8()..].chars().next();
    let is_prefix = is_affix_char(c)
        || matches!(c, '$' | '%' | '=' | '§')
        || (c == '+' && !next.is_some_and(|n| n.is_ascii_digit()));
    is_prefix.then(|| c.len_utf8())
}

fn suffix_len(s: &str) -> Option<usize> {
    let mut rev = s.chars().rev();
    let c = rev.next()?;
    let p = rev.next();
    let pp = rev.next();
    let dots = s.bytes().rev().take_while(|&b| b == b'.').count();
    if dots >= 2 {
        return Some(dots);
    }
    if s.len() > 2 && (s.ends_with("'s") || s.ends_with("'S")) {
        return Some(2);
    }
    if s.chars().count() > 2 && (s.ends_with("’s") || s.ends_with("’S")) {
        return Some("’s".len());
    }
    if is_affix_char(c) {
        return Some(c.len_utf8());
    }
    let after_digit = p.is_some_and(|p| p.is_ascii_digit());
    if after_digit && matches!(c, '%' | '$' | '+') {
        return Some(1);
    }
    if c == '.' {
        let split = match p {
            Some(p) => {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || matches!(p, '%' | '²' | '-' | '+')
                    || (!p.is_alphanumeric() && !p.is_whitespace())
                    || (p.is_uppercase() && pp.is_some_and(char::is_uppercase))
            }
            None => false,
        };
        return split.then_some(1);
    }
    None
}

/// Abbreviations spaCy's English exceptions keep whole with their final period.
fn is_abbreviation(s: &str) -> bool {
    matches!(
        s,
        "Mr."
            | "Mrs."
            | "Ms."
            | "Dr."
            | "St."
            | "Mt."
            | "Jr."
            | "Sr."
            | "vs."
            | "Inc."
            | "Ltd."
            | "Co."
            | "Corp."
            | "Bros."
            | "Gen."
            | "Gov."
            | "Rep."
            | "Sen."
            | "Rev."
            | "Prof."
            | "Jan."
            | "Feb."
            | "Mar."
            | "Apr."
            | "Jun."
            | "Jul."
            | "Aug."
            | "Sep."
            | "Sept."
            | "Oct."
            | "Nov."
            | "Dec."
            | "Ph.D."
    )
}

/// Pronouns that spaCy's English exceptions split `'d`, `'ll`, `'re`, `'ve`, `'m` from.
const PRONOUNS: &[&str] = &[
    "i", "you", "he", "she", "it", "we", "they", "who", "what", "that", "there", "here", "where",
    "how", "this", "these", "those",
];

/// Words spaCy's English exceptions split `n't` from (`ca` as in `can't`, `wo` as in `won't`).
const NT_STEMS: &[&str] = &[
    "ai", "are", "ca", "could", "dare", "did", "does", "do", "had", "has", "have", "is", "might",
    "must", "need", "ought", "sha", "should", "was", "were", "wo", "would",
];

/// Pieces spaCy's English exceptions keep whole, or split at a fixed place.
const WHOLE: &[(&str, usize)] = &[
    ("'em", 3),
    ("'cause", 6),
    ("'bout", 5),
    ("'cos", 4),
    ("'til", 4),
    ("'till", 5),
    ("'nuff", 5),
    ("cannot", 3),
    ("wont", 2),
    ("dont", 2),
    ("whats", 4),
    ("wed", 2),
];

/// The [`WHOLE`] entry `s` is, if any.
fn whole(s: &str) -> Option<usize> {
    let first = *s.as_bytes().first()?;
    if !(3..=6).contains(&s.len()) || !matches!(first | 0x20, b'\'' | b'c' | b'w' | b'd') {
        return None;
    }
    WHOLE
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(s))
        .map(|&(_, k)| k)
}

/// spaCy-style special cases: `Some(k)` when the piece is one (emitted as `s[..k]` and, when
/// `k < len`, `s[k..]`).
fn special(s: &str) -> Option<usize> {
    let last = *s.as_bytes().last()?;
    if last == b'.' {
        let stem = &s[..s.len() - 1];
        let mut cs = stem.chars();
        let single_letter = matches!((cs.next(), cs.next()), (Some(c), None) if c.is_alphabetic());
        // "e.g.", "U.S.", "a.m.": letters with inner periods.
        let dotted = stem.contains('.')
            && stem.chars().all(|c| c.is_alphabetic() || c == '.')
            && !stem.contains("..");
        if single_letter || dotted || is_abbreviation(s) {
            return Some(s.len());
        }
        return None;
    }
    if let Some(k) = whole(s) {
        return Some(k);
    }
    // Contractions end in n't, 'd, 'll, 're, 've or 'm.
    if !matches!(last.to_ascii_lowercase(), b't' | b'd' | b'l' | b'e' | b'm') {
        return None;
    }
    // spaCy lists these in lower case and title case ("don't", "Don't"), not in capitals.
    let listed = |stem: &str, list: &[&str]| {
        let rest = stem.get(1..).unwrap_or("");
        !rest.bytes().any(|b| b.is_ascii_uppercase())
            && list.iter().any(|p| p.eq_ignore_ascii_case(stem))
    };
    for suf in ["n't", "n’t"] {
        if let Some(stem) = s.strip_suffix(suf).filter(|st| listed(st, NT_STEMS)) {
            return Some(stem.len());
        }
    }
    for suf in [
        "'d", "'ll", "'re", "'ve", "'m", "’d", "’ll", "’re", "’ve", "’m",
    ] {
        if let Some(stem) = s.strip_suffix(suf).filter(|st| listed(st, PRONOUNS)) {
            return Some(stem.len());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        Words::new(s).tokens
    }

    #[test]
    fn matches_spacy_on_samples() {
        // Expected lists are spaCy 3.8's `spacy.blank("en")` tokens (what datatrove 0.10 uses).
        assert_eq!(
            toks("Well--I said. Mr. Smith, e.g. U.S. embark'd: farewell:"),
            [
                "Well", "--", "I", "said", ".", "Mr.", "Smith", ",", "e.g.", "U.S.", "embark'd",
                ":", "farewell", ":"
            ]
        );
        assert_eq!(
            toks(
                "HAMLET. Laer. [Enter Laertes.] don't he's \"Go!\" (yes) well-known 3.14 a,b #tag"
            ),
            [
                "HAMLET", ".", "Laer", ".", "[", "Enter", "Laertes", ".", "]", "do", "n't", "he",
                "'s", "\"", "Go", "!", "\"", "(", "yes", ")", "well", "-", "known", "3.14", "a",
                ",", "b", "#", "tag"
            ]
        );
        assert_eq!(
            toks("I am Frank, you are Jhon. I am Frank."),
            ["I", "am", "Frank", ",", "you", "are", "Jhon", ".", "I", "am", "Frank", "."]
        );
        assert_eq!(
            toks("x... ...y so -- on 'twas o'er you're can't Ham's"),
            [
                "x", "...", "...", "y", "so", "--", "on", "'", "twas", "o'er", "you", "'re", "ca",
                "n't", "Ham", "'s"
            ]
        );
        assert_eq!(
            toks("a/b a:b 1-2 word--word a—b $5 50%."),
            [
                "a", "/", "b", "a", ":", "b", "1", "-", "2", "word", "--", "word", "a", "—", "b",
                "$", "5", "50", "%", "."
            ]
        );
    }

    #[test]
    fn cjk_characters_are_words() {
        let w = Words::new("近清明。\n可惜一片清歌，都付与黄昏。");
        assert_eq!(
            w.tokens,
            [
                "近", "清", "明", "。", "可", "惜", "一", "片", "清", "歌", "，", "都", "付", "与",
                "黄", "昏", "。"
            ]
        );
        assert_eq!(w.script(), Script::Cjk);
        let mixed = Words::new("我们用 Rust 和 Python 写代码。");
        assert_eq!(
            mixed.tokens,
            ["我", "们", "用", "Rust", "和", "Python", "写", "代", "码", "。"]
        );
        assert_eq!(mixed.script(), Script::Cjk);
        assert_eq!(
            Words::new("The poet 李白 wrote in Chinese.").script(),
            Script::Spaced
        );
        assert_eq!(Words::new("").script(), Script::Spaced);
        assert_eq!(Words::new("한국어 문장입니다.").script(), Script::Spaced);
    }
}
