//! Gopher quality rules (Rae et al. 2021, section A1.1), as datatrove's `GopherQualityFilter`
//! (pipeline/filters/gopher_quality_filter.py, datatrove 0.10) computes them.
//!
//! `words` are all tokens, punctuation included; a "symbol word" is made only of datatrove's
//! punctuation characters. In order, a document is dropped when
//! - it has fewer than 50 or more than 100,000 non-symbol words (`min_words`, `max_words`);
//! - their mean length is under 3 or over 10 characters (`min_mean_word_length`,
//!   `max_mean_word_length`);
//! - `#` per word, or `...`/`…` per word, exceeds 0.1 (`hash_ratio`, `ellipsis_ratio`);
//! - more than 90% of lines start with `•` or `-` (`bullet_lines`), or more than 30% end
//!   with `...` or `…` (`ellipsis_lines`);
//! - fewer than 80% of words (punctuation tokens included, as in datatrove; optionally not,
//!   as the paper words it) have a letter (`alpha_words`);
//! - fewer than 2 distinct stop words (`the be to of and that have with`) occur (`stop_words`).
//!
//! CJK documents (see [`crate::words`]): every character is a word, so the word counts count
//! characters; the mean word length rule does not apply (it is 1 by construction); stop words
//! come from [`CJK_STOP_WORDS`]. Everything else is as for English (punctuation tokens count
//! as words in the ratios, as datatrove counts them).

use std::collections::HashSet;

use super::{ratio, Doc, Reason, Verdict};
use crate::text::{char_len, is_datatrove_punct, splitlines};

const FAMILY: &str = "gopher_quality";

/// Gopher's stop words (datatrove's `STOP_WORDS`).
pub const STOP_WORDS: &[&str] = &["the", "be", "to", "of", "and", "that", "have", "with"];

/// [`STOP_WORDS`] comma-separated (for `--help`).
pub const STOP_WORDS_CSV: &str = "the,be,to,of,and,that,have,with";

/// Chinese stop characters: the function characters (particles, pronouns, negation,
/// prepositions, conjunctions, measure words) among the 50 most frequent characters of Jun
/// Da's Modern Chinese character frequency list (现代汉语单字频率列表, 2004), then the
/// particles, pronouns and adverbs that take their place in literary Chinese (乃 矣 乎 兮 焉
/// 何 此 亦 与 无 自 如 相 未 已 又 还 更 却 犹 莫 似 将 皆 但 只 谁 几 欲 应 可). As Gopher's
/// English list does, it tests that a text is written in sentences rather than being a list
/// of names or keywords; a word here is a character, so the list is of characters.
pub const CJK_STOP_WORDS: &[&str] = &[
    "的", "一", "是", "不", "了", "在", "人", "有", "我", "他", "这", "个", "们", "来", "为", "和",
    "到", "以", "说", "就", "也", "你", "而", "那", "得", "于", "着", "之", "她", "都", "其", "所",
    "者", "乃", "矣", "乎", "兮", "焉", "何", "此", "亦", "与", "无", "自", "如", "相", "未", "已",
    "又", "还", "更", "却", "犹", "莫", "似", "将", "皆", "但", "只", "谁", "几", "欲", "应", "可",
];

/// [`CJK_STOP_WORDS`] comma-separated (for `--help`).
pub const CJK_STOP_WORDS_CSV: &str =
    "的,一,是,不,了,在,人,有,我,他,这,个,们,来,为,和,到,以,说,就,也,你,而,那,得,于,着,之,她,都,其,所,者,乃,矣,乎,兮,焉,何,此,亦,与,无,自,如,相,未,已,又,还,更,却,犹,莫,似,将,皆,但,只,谁,几,欲,应,可";

/// Thresholds; `None` turns a rule off.
#[derive(Debug, Clone, PartialEq)]
pub struct GopherQuality {
    pub min_words: Option<usize>,
    pub max_words: Option<usize>,
    pub min_mean_word_length: Option<f64>,
    pub max_mean_word_length: Option<f64>,
    pub max_symbol_word_ratio: Option<f64>,
    pub max_bullet_lines: Option<f64>,
    pub max_ellipsis_lines: Option<f64>,
    pub min_alpha_words: Option<f64>,
    /// Leave punctuation tokens out of the alphabetic-word ratio, as the Gopher paper words
    /// it ("80% of words"); datatrove counts them, which drops punctuation-dense verse.
    pub alpha_words_skip_punct: bool,
    pub min_stop_words: Option<usize>,
    pub stop_words: HashSet<String>,
    /// For CJK documents, in characters.
    pub cjk_min_words: Option<usize>,
    pub cjk_min_stop_words: Option<usize>,
    pub cjk_stop_words: HashSet<String>,
}

impl Default for GopherQuality {
    /// datatrove's defaults, and the CJK equivalents described in the module docs.
    fn default() -> Self {
        GopherQuality {
            min_words: Some(50),
            max_words: Some(100_000),
            min_mean_word_length: Some(3.0),
            max_mean_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines: Some(0.9),
            max_ellipsis_lines: Some(0.3),
            min_alpha_words: Some(0.8),
            alpha_words_skip_punct: false,
            min_stop_words: Some(2),
            stop_words: STOP_WORDS.iter().map(|s| s.to_string()).collect(),
            cjk_min_words: Some(50),
            cjk_min_stop_words: Some(2),
            cjk_stop_words: CJK_STOP_WORDS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl GopherQuality {
    pub fn check(&self, doc: &Doc) -> Verdict {
        let fail = |rule| Err(Reason::new(FAMILY, rule));
        let text = doc.text;
        let cjk = doc.is_cjk();
        let words = &doc.words.tokens;
        let n_words = words.len();
        let mut n_plain = 0usize;
        let mut plain_chars = 0usize;
        for w in words {
            if !w.chars().all(is_datatrove_punct) {
                n_plain += 1;
                plain_chars += char_len(w);
            }
        }

        let min_words = if cjk {
            self.cjk_min_words
        } else {
            self.min_words
        };
        if min_words.is_some_and(|m| n_plain < m) {
            return fail("min_words");
        }
        if self.max_words.is_some_and(|m| n_plain > m) {
            return fail("max_words");
        }

        if !cjk && n_plain > 0 {
            let mean = plain_chars as f64 / n_plain as f64;
            if self.min_mean_word_length.is_some_and(|m| mean < m) {
                return fail("min_mean_word_length");
            }
            if self.max_mean_word_length.is_some_and(|m| mean > m) {
                return fail("max_mean_word_length");
            }
        }

        if let Some(max) = self.max_symbol_word_ratio {
            if ratio(text.matches('#').count(), n_words) > max {
                return fail("hash_ratio");
            }
            let ellipses = text.matches("...").count() + text.matches('…').count();
            if ratio(ellipses, n_words) > max {
                return fail("ellipsis_ratio");
            }
        }

        let lines = splitlines(text);
        if let Some(max) = self.max_bullet_lines {
            let bullets = lines
                .iter()
                .filter(|l| {
                    let l = l.trim_start_matches(crate::text::is_py_space);
                    l.starts_with('•') || l.starts_with('-')
                })
                .count();
            if ratio(bullets, lines.len()) > max {
                return fail("bullet_lines");
            }
        }
        if let Some(max) = self.max_ellipsis_lines {
            let ellipsis = lines
                .iter()
                .filter(|l| {
                    let l = l.trim_end_matches(crate::text::is_py_space);
                    l.ends_with("...") || l.ends_with('…')
                })
                .count();
            if ratio(ellipsis, lines.len()) > max {
                return fail("ellipsis_lines");
            }
        }

        if let Some(min) = self.min_alpha_words {
            let alpha = words
                .iter()
                .filter(|w| w.chars().any(char::is_alphabetic))
                .count();
            let denominator = if self.alpha_words_skip_punct {
                n_plain
            } else {
                n_words
            };
            // No words at all is the word-count rule's business.
            if denominator > 0 && ratio(alpha, denominator) < min {
                return fail("alpha_words");
            }
        }

        let (min_stop, stop_words) = if cjk {
            (self.cjk_min_stop_words, &self.cjk_stop_words)
        } else {
            (self.min_stop_words, &self.stop_words)
        };
        if let Some(min) = min_stop {
            let mut found: Vec<&str> = Vec::new();
            for w in words {
                if stop_words.contains(*w) && !found.contains(w) {
                    found.push(w);
                    if found.len() >= min {
                        break;
                    }
                }
            }
            if found.len() < min {
                return fail("stop_words");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason_with(g: &GopherQuality, text: &str) -> String {
        match g.check(&Doc::new(text, None)) {
            Ok(()) => "kept".into(),
            Err(r) => r.to_string(),
        }
    }

    const TEXT_LF_1: &str = "I wish it need not have happened in my time,' said Frodo. 'So do I,' said Gandalf, 'and so do all who live to see such times. But that is not for them to decide. All we have to decide is what to do with the time that is given us.'";

    /// The cases of datatrove's tests/pipeline/test_filters.py::test_gopher_quality (which
    /// uses min_doc_words=10, max_doc_words=1000).
    #[test]
    fn datatrove_test_cases() {
        let g = GopherQuality {
            min_words: Some(10),
            max_words: Some(1000),
            ..GopherQuality::default()
        };
        let r = |t: &str| reason_with(&g, t);
        assert_eq!(r("I am too small..."), "gopher_quality:min_words");
        assert_eq!(
            r(&"I am ".repeat(20)),
            "gopher_quality:min_mean_word_length"
        );
        assert_eq!(
            r(&"interconnection ".repeat(20)),
            "gopher_quality:max_mean_word_length"
        );
        assert_eq!(r(&"# comment ".repeat(20)), "gopher_quality:hash_ratio");
        assert_eq!(
            r(&"... comment ".repeat(20)),
            "gopher_quality:ellipsis_ratio"
        );
        let text = "the ./!*?<><> apple <?////> orange  ++ interconnection !<>??? have".repeat(20);
        assert_eq!(r(&text), "gopher_quality:alpha_words");
        assert_eq!(r(&"Have Have".repeat(20)), "gopher_quality:stop_words");
        // datatrove 0.10 counts distinct stop words (its test from before that change kept this).
        assert_eq!(r(&"have ".repeat(20)), "gopher_quality:stop_words");
        assert_eq!(r(TEXT_LF_1), "kept");
        // From test_multilingual_gopher_quality (en): bullets and trailing ellipses.
        assert_eq!(r(&"• comment\n".repeat(20)), "gopher_quality:bullet_lines");
        assert_eq!(r(&"- comment\n".repeat(20)), "gopher_quality:bullet_lines");
        assert_eq!(
            r(&"text text text text text text text text text text text text…\n".repeat(20)),
            "gopher_quality:ellipsis_lines"
        );
    }

    #[test]
    fn stop_word_lists_match_their_help_text() {
        assert_eq!(STOP_WORDS.join(","), STOP_WORDS_CSV);
        assert_eq!(CJK_STOP_WORDS.join(","), CJK_STOP_WORDS_CSV);
    }

    #[test]
    fn word_count_limits() {
        let g = GopherQuality::default();
        let prose = "The quick brown fox jumps over the lazy dog and runs with the wind. ";
        assert_eq!(reason_with(&g, &prose.repeat(4)), "kept");
        assert_eq!(reason_with(&g, prose), "gopher_quality:min_words");
        let small = GopherQuality {
            max_words: Some(20),
            ..GopherQuality::default()
        };
        let small = GopherQuality {
            min_words: Some(1),
            ..small
        };
        assert_eq!(
            reason_with(&small, &prose.repeat(4)),
            "gopher_quality:max_words"
        );
        assert_eq!(reason_with(&small, prose), "kept");
        // Empty: too short, never a division by zero.
        assert_eq!(reason_with(&g, ""), "gopher_quality:min_words");
        let none = GopherQuality {
            min_words: None,
            ..GopherQuality::default()
        };
        assert_eq!(reason_with(&none, ""), "gopher_quality:stop_words");
    }

    #[test]
    fn chinese_prose_uses_characters_and_chinese_stop_words() {
        let g = GopherQuality::default();
        let prose = "我们在这里讨论的是一个关于语言模型训练数据的问题。好的数据来自认真写成的文章，而不是随意堆砌的关键词。这个工具会检查每一篇文档，并把质量不高的部分去掉。";
        assert_eq!(reason_with(&g, prose), "kept");
        // Too short in characters.
        assert_eq!(
            reason_with(&g, "床前明月光，疑是地上霜。"),
            "gopher_quality:min_words"
        );
        // A keyword list: no stop characters.
        let keywords = "手机 电脑 平板 耳机 键盘 鼠标 显示器 路由器 充电器 数据线 ".repeat(3);
        assert_eq!(reason_with(&g, &keywords), "gopher_quality:stop_words");
    }
}
