//! wick_io::LineReader and parse_object on arbitrary bytes: whole and in small reads, with and
//! without a byte-order mark in front, with the default and with short maximum line lengths.
//! Oracles besides "no panic": the same lines and errors however the bytes arrive, a BOM in
//! front changes nothing, read_batch gives the non-blank lines of read_line (up to an error), no returned line
//! is longer than the maximum, and every error is one line naming the file (and line).

#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use wick_fuzz::one_line;
use wick_io::{parse_object, LineReader, MAX_LINE_BYTES};

const NAME: &str = "fuzz.jsonl";
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Hands out the input a few bytes at a time, as a pipe might.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(self.data.len() - self.pos)
            .min(1 + (self.pos * 7 + self.step) % self.step.max(1));
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Every line (number, bytes) up to the first error, and that error's message.
fn lines(reader: LineReader, max: usize) -> (Vec<(u64, Vec<u8>)>, Option<String>) {
    let mut reader = reader.with_max_line(max);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_line(&mut buf) {
            Ok(Some(n)) => {
                assert!(buf.len() <= max, "line {n}: {} bytes > {max}", buf.len());
                assert_eq!(n, out.len() as u64 + 1, "line numbers count from 1 up");
                out.push((n, buf.clone()));
            }
            Ok(None) => return (out, None),
            Err(e) => {
                let msg = e.to_string();
                one_line(&msg);
                assert!(msg.starts_with(NAME), "{msg}");
                return (out, Some(msg));
            }
        }
    }
}

fn whole(data: &[u8]) -> LineReader {
    LineReader::from_reader(NAME, std::io::Cursor::new(data.to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |&b| (b % 13) as usize + 1);
    for max in [MAX_LINE_BYTES, 16, step] {
        let plain = lines(whole(data), max);
        let trickled = lines(
            LineReader::from_reader(
                NAME,
                Trickle {
                    data: data.to_vec(),
                    pos: 0,
                    step,
                },
            ),
            max,
        );
        assert_eq!(plain, trickled, "the same bytes read in small pieces");
        // (A file of only a BOM reads as one empty line, an empty file as none.)
        if !data.is_empty() && !data.starts_with(BOM) {
            let with_bom = [BOM, data].concat();
            assert_eq!(
                plain,
                lines(whole(&with_bom), max),
                "a leading BOM is skipped"
            );
        }
        // read_batch: the non-blank lines, in batches.
        let mut reader = whole(data).with_max_line(max);
        let mut batched = Vec::new();
        let batch_error = loop {
            match reader.read_batch(1 + step % 4, 1 + step * 3) {
                Ok(b) if b.is_empty() => break None,
                Ok(b) => batched.extend(b.into_iter().map(|l| (l.number, l.bytes))),
                Err(e) => break Some(e.to_string()),
            }
        };
        let non_blank: Vec<_> = plain
            .0
            .iter()
            .filter(|(_, b)| !b.iter().all(u8::is_ascii_whitespace))
            .cloned()
            .collect();
        // An error ends the batch it is in (the tools stop there), so the lines before it in
        // that batch are not returned.
        assert!(
            non_blank.starts_with(&batched),
            "read_batch returned other lines"
        );
        if batch_error.is_none() {
            assert_eq!(batched, non_blank);
        }
        assert_eq!(batch_error, plain.1);
        for (n, bytes) in &plain.0 {
            match parse_object(NAME, *n, bytes) {
                Ok(map) => {
                    // A record that parsed serialises and parses back to the same object.
                    let text = serde_json::to_string(&map).expect("serialises");
                    let back = parse_object(NAME, *n, text.as_bytes()).expect("parses back");
                    assert_eq!(back.len(), map.len());
                }
                Err(e) => {
                    let msg = e.to_string();
                    one_line(&msg);
                    assert!(msg.starts_with(&format!("{NAME}:{n}: ")), "{msg}");
                }
            }
        }
    }
});
