//! The quality rules, one module per family, each a port of a datatrove filter:
//!
//! | module | datatrove | drops a document when |
//! |---|---|---|
//! | [`gopher_repetition`] | `GopherRepetitionFilter` | lines, paragraphs or n-grams repeat too much |
//! | [`gopher_quality`] | `GopherQualityFilter` | too few/many words, odd word lengths, symbols, lists, no stop words |
//! | [`c4`] | `C4QualityFilter` | lorem ipsum, a curly bracket, too few sentences (and removes bad lines) |
//! | [`fineweb`] | `FineWebQualityFilter` | few lines end in punctuation, mostly short lines, duplicated lines, list-like |
//!
//! A check returns `Err(Reason)` for the first rule a document fails, in datatrove's order.

use std::fmt;

use crate::text::char_len;
use crate::words::{Script, Words};

pub mod c4;
pub mod fineweb;
pub mod gopher_quality;
pub mod gopher_repetition;

/// Why a document was dropped: its rule family and the rule, e.g. `gopher_quality:min_words`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reason {
    pub family: &'static str,
    pub rule: &'static str,
    /// The n of an n-gram rule (`gopher_repetition:top_2_gram`).
    pub n: Option<usize>,
}

impl Reason {
    pub const fn new(family: &'static str, rule: &'static str) -> Self {
        Reason {
            family,
            rule,
            n: None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.n {
            None => write!(f, "{}:{}", self.family, self.rule),
            // top_{n}_gram, dup_{n}_gram
            Some(n) => {
                let (head, tail) = self.rule.split_once("{n}").unwrap_or((self.rule, ""));
                write!(f, "{}:{head}{n}{tail}", self.family)
            }
        }
    }
}

pub type Verdict = Result<(), Reason>;

/// A document as the rules see it: its text, length in code points, words and script.
pub struct Doc<'a> {
    pub text: &'a str,
    pub chars: usize,
    pub words: Words<'a>,
    pub script: Script,
}

impl<'a> Doc<'a> {
    /// Splits `text` into words and decides its script (unless `force` says which).
    pub fn new(text: &'a str, force: Option<Script>) -> Self {
        let words = Words::new(text);
        let script = force.unwrap_or_else(|| words.script());
        Doc {
            text,
            chars: char_len(text),
            words,
            script,
        }
    }

    pub fn is_cjk(&self) -> bool {
        self.script == Script::Cjk
    }
}

/// `a / b` with Python's meaning where both are counts, and 0 for `0 / 0` and `x / 0` (where
/// Python would raise ZeroDivisionError, which datatrove never reaches with its defaults:
/// empty documents stop at an earlier rule).
pub(crate) fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}
