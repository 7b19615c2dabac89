//! C4's line and page rules (Raffel et al. 2020, section 2.2), as datatrove's `C4QualityFilter`
//! (pipeline/filters/c4_filters.py) applies them with `split_paragraph=True`.
//!
//! Each line (`str.splitlines`, stripped) is looked at in turn and
//! - removed if a word (whitespace-separated) is longer than 1000 characters;
//! - has Wikipedia citation marks (`[1]`, `[edit]`, `[citation needed]`) removed;
//! - removed if it does not end in terminal punctuation (`. ? ! " '`, not `...`) — **off by
//!   default here**, as in datatrove's FineWeb recipe (examples/fineweb.py passes
//!   `filter_no_terminal_punct=False`; the class default is on): `--c4-terminal-punct`;
//! - removed if it has fewer than 3 words;
//! - drops the whole document if it contains "lorem ipsum" (`lorem_ipsum`);
//! - removed if it contains "javascript";
//! - drops the whole document if it contains `{` (`curly_bracket`);
//! - removed if it contains a cookie/terms-of-use phrase (`POLICY_SUBSTRINGS`);
//! - otherwise kept, and its sentences counted.
//!
//! A document with fewer than 5 sentences in its kept lines is dropped (`too_few_sentences`).
//! A kept document's text becomes its kept lines joined by `\n` — datatrove rewrites the text
//! this way; `keep_text` judges by the same rules but leaves the text as it was.
//!
//! Sentences are counted as spaCy's sentencizer does (datatrove 0.10 splits sentences with
//! it): a new sentence starts at the first non-punctuation token after a token that is one
//! terminal punctuation mark (`.` `!` `?` `。` `！` `？` …).
//!
//! CJK documents: words are characters (non-punctuation tokens) for the 3-word and
//! 1000-character rules, and a line may also end in `。` `！` `？` `．` `｡` `”` `’` `」` `』`.

use super::{Doc, Reason};
use crate::text::{char_len, is_terminal_punct, py_split, py_strip, splitlines};
use crate::words::for_each_word;

const FAMILY: &str = "c4";

/// datatrove's `END_PUNCTUATION`.
const END_PUNCTUATION: &[char] = &['.', '?', '!', '"', '\''];
/// What CJK lines may end in besides.
const CJK_END_PUNCTUATION: &[char] = &['。', '！', '？', '．', '｡', '”', '’', '」', '』'];
/// datatrove's `POLICY_SUBSTRINGS`.
pub const POLICY_SUBSTRINGS: &[&str] = &[
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

#[derive(Debug, Clone, PartialEq)]
pub struct C4 {
    /// Leave a kept document's text as it was instead of keeping only its good lines.
    pub keep_text: bool,
    pub remove_citations: bool,
    pub terminal_punct: bool,
    pub min_sentences: Option<usize>,
    pub min_words_per_line: Option<usize>,
    pub max_word_length: Option<usize>,
    pub lorem_ipsum: bool,
    pub javascript: bool,
    pub curly_bracket: bool,
    pub policy: bool,
}

impl Default for C4 {
    /// datatrove's defaults, with terminal punctuation off as in its FineWeb recipe.
    fn default() -> Self {
        C4 {
            keep_text: false,
            remove_citations: true,
            terminal_punct: false,
            min_sentences: Some(5),
            min_words_per_line: Some(3),
            max_word_length: Some(1000),
            lorem_ipsum: true,
            javascript: true,
            curly_bracket: true,
            policy: true,
        }
    }
}

/// Removes `[12]`, `[]`, `[edit]` and `[citation needed]` (datatrove's `CITATION_REGEX`).
pub fn remove_citations(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('[') {
        return line.into();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let digits = tail.find(|c: char| !c.is_numeric()).unwrap_or(tail.len());
        let skip = if tail[digits..].starts_with(']') {
            Some(digits + 1)
        } else if tail.starts_with("edit]") {
            Some("edit]".len())
        } else if tail.starts_with("citation needed]") {
            Some("citation needed]".len())
        } else {
            None
        };
        match skip {
            Some(n) => rest = &tail[n..],
            None => {
                out.push('[');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out.into()
}

/// Sentences in a line, as spaCy's sentencizer finds them.
pub fn count_sentences(line: &str) -> usize {
    let mut count = 0;
    let mut seen_period = false;
    for_each_word(line, |t, _| {
        if count == 0 {
            count = 1;
        }
        let mut cs = t.chars();
        let is_term = matches!((cs.next(), cs.next()), (Some(c), None) if is_terminal_punct(c));
        let is_punct = t.chars().all(|c| !c.is_alphanumeric());
        if seen_period && !is_punct && !is_term {
            count += 1;
            seen_period = false;
        } else if is_term {
            seen_period = true;
        }
    });
    count
}

/// `line` lower-cased (as Python's `str.lower`) into `buf`.
fn lower_into(line: &str, buf: &mut String) {
    buf.clear();
    if line.is_ascii() {
        buf.push_str(line);
        buf.make_ascii_lowercase();
    } else {
        buf.push_str(&line.to_lowercase());
    }
}

impl C4 {
    /// `Ok(Some(text))` when the document is kept with lines removed, `Ok(None)` when kept
    /// as it is.
    pub fn check(&self, doc: &Doc) -> Result<Option<String>, Reason> {
        let fail = |rule| Err(Reason::new(FAMILY, rule));
        let cjk = doc.is_cjk();
        let mut sentences = 0usize;
        let mut kept: Vec<std::borrow::Cow<str>> = Vec::new();
        let mut lower = String::new();
        for raw in splitlines(doc.text) {
            let line = py_strip(raw);
            // Word lengths and counts: whitespace words, or characters for CJK.
            let (n_words, longest) = if cjk {
                let (mut n, mut longest) = (0, 0);
                for_each_word(line, |t, _| {
                    if t.chars().any(char::is_alphanumeric) {
                        n += 1;
                        longest = longest.max(char_len(t));
                    }
                });
                (n, longest)
            } else {
                let (mut n, mut longest) = (0, 0);
                for w in py_split(line) {
                    n += 1;
                    if self.max_word_length.is_some() {
                        longest = longest.max(char_len(w));
                    }
                }
                (n, longest)
            };
            if self.max_word_length.is_some_and(|m| longest > m) {
                continue;
            }
            let line = if self.remove_citations {
                remove_citations(line)
            } else {
                line.into()
            };
            if self.terminal_punct {
                let ends =
                    line.ends_with(END_PUNCTUATION) || (cjk && line.ends_with(CJK_END_PUNCTUATION));
                if !ends || line.ends_with("...") {
                    continue;
                }
            }
            if self.min_words_per_line.is_some_and(|m| n_words < m) {
                continue;
            }
            if self.lorem_ipsum || self.javascript || self.policy {
                lower_into(&line, &mut lower);
            }
            if self.lorem_ipsum && lower.contains("lorem ipsum") {
                return fail("lorem_ipsum");
            }
            if self.javascript && lower.contains("javascript") {
                continue;
            }
            if self.curly_bracket && line.contains('{') {
                return fail("curly_bracket");
            }
            if self.policy && POLICY_SUBSTRINGS.iter().any(|p| lower.contains(p)) {
                continue;
            }
            if self.min_sentences.is_some() {
                sentences += count_sentences(&line);
            }
            kept.push(line);
        }
        if self.min_sentences.is_some_and(|m| sentences < m) {
            return fail("too_few_sentences");
        }
        if self.keep_text {
            return Ok(None);
        }
        let joined = kept.join("\n");
        let new = py_strip(&joined);
        Ok((new != doc.text).then(|| new.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: &C4, text: &str) -> Result<Option<String>, String> {
        c.check(&Doc::new(text, None)).map_err(|r| r.to_string())
    }

    const PARA: &str = "The committee met on Tuesday to discuss the budget. Several members raised concerns about the cost of the new library. The chair promised a full report by the end of the month. Residents will be able to comment at the next public meeting. A final vote is expected in the spring.";

    #[test]
    fn prose_is_kept_whole() {
        assert_eq!(run(&C4::default(), PARA), Ok(None));
    }

    #[test]
    fn lines_are_removed() {
        let text = format!(
            "Home About\n{PARA}\nPlease enable JavaScript to view the comments below.\nThis site uses cookies to improve your experience.\nShare"
        );
        assert_eq!(run(&C4::default(), &text), Ok(Some(PARA.to_string())));
        let judge_only = C4 {
            keep_text: true,
            ..C4::default()
        };
        assert_eq!(run(&judge_only, &text), Ok(None));
    }

    #[test]
    fn page_rules() {
        let c = C4::default();
        assert_eq!(
            run(
                &c,
                &format!("{PARA}\nLorem ipsum dolor sit amet, consectetur.")
            ),
            Err("c4:lorem_ipsum".into())
        );
        assert_eq!(
            run(&c, &format!("{PARA}\nfunction f() {{ return 1; }}")),
            Err("c4:curly_bracket".into())
        );
        assert_eq!(
            run(&c, "One sentence here. Two sentences here."),
            Err("c4:too_few_sentences".into())
        );
        assert_eq!(run(&c, ""), Err("c4:too_few_sentences".into()));
        let off = C4 {
            lorem_ipsum: false,
            curly_bracket: false,
            min_sentences: None,
            ..C4::default()
        };
        assert!(run(&off, "Lorem ipsum dolor sit { amet").is_ok());
    }

    #[test]
    fn terminal_punctuation_when_asked() {
        let c = C4 {
            terminal_punct: true,
            ..C4::default()
        };
        let text = format!("{PARA}\nA line without an end\nA trailing ellipsis here...");
        assert_eq!(run(&c, &text), Ok(Some(PARA.to_string())));
        // Chinese lines end in 。
        let zh = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼";
        let kept = run(&c, zh).unwrap().unwrap();
        assert!(kept.ends_with("黄河入海流。"), "{kept}");
    }

    #[test]
    fn long_words_and_citations() {
        let c = C4::default();
        let text = format!("{PARA}\nsee {} here now", "x".repeat(1001));
        assert_eq!(run(&c, &text), Ok(Some(PARA.to_string())));
        assert_eq!(
            remove_citations("a[1] b[edit] c[citation needed] d[x]"),
            "a b c d[x]"
        );
        assert_eq!(remove_citations("[]x[12][３]"), "x");
    }

    #[test]
    fn sentences_like_spacy() {
        assert_eq!(count_sentences("One. Two! Three? Four"), 4);
        assert_eq!(count_sentences("He said \"Go.\" Then left."), 2);
        assert_eq!(count_sentences("Mr. Smith met Dr. Jones."), 1);
        assert_eq!(count_sentences("近清明。翠禽枝上消魂。"), 2);
        assert_eq!(count_sentences(""), 0);
    }
}
