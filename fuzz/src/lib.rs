//! Helpers shared by the fuzz targets: one fuzz input holds several files, separated by
//! [`SEP`], so that a target can build a folder (config.json + model.safetensors, a shard
//! directory, ...) from one input, and seeds can be made from real files with `cat`.

use std::path::Path;

/// Between the files of one input. Text-like, so that it survives in JSON seeds, and unlikely
/// inside the binary parts (the dictionaries in fuzz/dicts/ carry it, so mutations can add
/// and remove parts).
pub const SEP: &[u8] = b"\n--wick-part--\n";

/// The input's parts: `data` split at every [`SEP`], at most `max` of them (the last part
/// keeps any further separators).
pub fn parts(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < max {
        match find(rest, SEP) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A fresh temporary folder for one execution (removed when dropped).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wick-fuzz-")
        .tempdir()
        .expect("a temporary folder")
}

/// Writes `bytes` to `dir/name`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("writing a fuzz file");
}

/// The repository's testdata/ folder (the fuzz crate lives in fuzz/).
pub fn testdata() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata"))
}

/// wick's errors are one line (the tools print them as `tool: message`); a message that runs
/// over several lines is a finding.
pub fn one_line(msg: &str) {
    assert!(!msg.contains('\n'), "an error of several lines: {msg:?}");
}
