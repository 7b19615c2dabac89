//! The tokenizer files of a Hugging Face model folder, which a tool that writes a new model
//! folder from an old one copies across.

use std::path::Path;

use wick_io::{Error, Result};

/// The files a model folder's tokenizer is made of (those present are copied).
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
];

/// Copies the tokenizer files that sit in `from` (if any) into `to`, each written atomically.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> Result<()> {
    for f in TOKENIZER_FILES {
        let src = from.join(f);
        if src.is_file() && src != to.join(f) {
            let bytes = std::fs::read(&src).map_err(|e| Error::io(src.display(), e))?;
            wick_io::write_atomic(to.join(f), &bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_files_that_are_there() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::write(from.path().join("tokenizer.json"), "{}").unwrap();
        std::fs::write(from.path().join("model.safetensors"), "w").unwrap();
        copy_tokenizer_files(from.path(), to.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.path().join("tokenizer.json")).unwrap(),
            "{}"
        );
        assert!(!to.path().join("model.safetensors").exists());
        assert!(!to.path().join("tokenizer_config.json").exists());
    }
}
