//! What "the same text" means for exact and near dedup: the text is normalised before it is
//! hashed or shingled, with each step switchable.

use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalization {
    pub nfkc: bool,
    pub casefold: bool,
    /// Runs of whitespace become one space; leading and trailing whitespace goes.
    pub whitespace: bool,
    /// Unicode punctuation is removed.
    pub punctuation: bool,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization {
            nfkc: true,
            casefold: true,
            whitespace: true,
            punctuation: false,
        }
    }
}

impl Normalization {
    /// Parses `nfkc,casefold,whitespace,punct` (any subset) or `none`.
    pub fn parse(spec: &str) -> Result<Normalization, String> {
        let mut n = Normalization {
            nfkc: false,
            casefold: false,
            whitespace: false,
            punctuation: false,
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "none" => {}
                "nfkc" => n.nfkc = true,
                "casefold" | "lower" => n.casefold = true,
                "whitespace" | "ws" => n.whitespace = true,
                "punct" | "punctuation" => n.punctuation = true,
                other => return Err(format!("unknown normalisation {other:?} (use nfkc, casefold, whitespace, punct or none)")),
            }
        }
        Ok(n)
    }

    /// A stable code for the signature files, so stages made with other settings are refused.
    pub fn code(&self) -> u32 {
        self.nfkc as u32
            | (self.casefold as u32) << 1
            | (self.whitespace as u32) << 2
            | (self.punctuation as u32) << 3
    }

    pub fn apply(&self, text: &str) -> String {
        let mut s: String = if self.nfkc {
            text.nfkc().collect()
        } else {
            text.to_string()
        };
        if self.casefold {
            s = s.to_lowercase();
        }
        if self.punctuation {
            s.retain(|c| !is_punctuation(c));
        }
        if self.whitespace {
            s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        s
    }
}

/// ASCII punctuation and the general punctuation / CJK punctuation blocks.
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c as u32, 0x2000..=0x206F | 0x3000..=0x303F | 0xFF00..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40 | 0xFF5B..=0xFF65 | 0x00A1..=0x00BF)
            && !c.is_alphanumeric()
            && !c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_folds_width_case_and_space() {
        let n = Normalization::default();
        assert_eq!(n.apply("  Ｈｅｌｌｏ\r\n\tWORLD  "), "hello world");
        assert_eq!(n.apply("明月几时有？"), "明月几时有?");
    }

    #[test]
    fn each_step_can_be_chosen() {
        let p = Normalization::parse("punct,whitespace").unwrap();
        assert_eq!(p.apply("Hi, there!  “You”。"), "Hi there You");
        assert_eq!(
            Normalization::parse("none").unwrap().apply(" A  b "),
            " A  b "
        );
        assert!(Normalization::parse("stem").is_err());
    }
}
