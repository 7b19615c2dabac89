//! One error type for every wick tool: each variant names where the problem is (a file, a line
//! of a file, a shard) so the one-line message a user sees is enough to find it.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// An I/O failure on a named file (or `<stdin>` / `<stdout>`).
    Io { path: String, source: io::Error },
    /// A bad record: file, 1-based line number, what was wrong.
    Record {
        path: String,
        line: u64,
        msg: String,
    },
    /// Anything else, already phrased for the user.
    Msg(String),
    /// A failure inside a library wick calls (candle, safetensors, tokenizers): what wick was
    /// doing, and the library's error kept as the source.
    Lib {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl fmt::Display, source: io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    pub fn record(path: impl fmt::Display, line: u64, msg: impl fmt::Display) -> Self {
        Error::Record {
            path: path.to_string(),
            line,
            msg: msg.to_string(),
        }
    }

    pub fn msg(msg: impl fmt::Display) -> Self {
        Error::Msg(msg.to_string())
    }

    /// The one conversion of a library's error: `what` says what wick was doing ("tensor op
    /// failed"), the error itself stays reachable through `source()`.
    pub fn lib(
        what: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Lib {
            what: what.to_string(),
            source: Box::new(source),
        }
    }

    /// A downstream reader went away (`tool | head`): the tool should stop quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// Prefixes the message with more context (e.g. the file a generic error came from).
    pub fn context(self, what: impl fmt::Display) -> Self {
        match self {
            Error::Msg(m) => Error::Msg(format!("{what}: {m}")),
            Error::Lib { what: w, source } => Error::Lib {
                what: format!("{what}: {w}"),
                source,
            },
            other => other,
        }
    }
}

/// One line whatever the message quotes: a line break that came from the input (a file name,
/// a JSON string in a parser's message) is written as `\n` or `\r`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Io { path, source } => format!("{path}: {source}"),
            Error::Record { path, line, msg } => format!("{path}:{line}: {msg}"),
            Error::Msg(m) => return write_one_line(f, m),
            Error::Lib { what, source } => format!("{what}: {source}"),
        };
        write_one_line(f, &text)
    }
}

fn write_one_line(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    if !text.contains(['\n', '\r']) {
        return f.write_str(text);
    }
    f.write_str(&text.replace('\n', "\\n").replace('\r', "\\r"))
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Lib { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Runs a tool's body and turns its outcome into the process exit status: 0 on success or a
/// closed pipe, 1 with a one-line `tool: message` on stderr otherwise. (Usage errors exit 2
/// from clap before this runs.)
pub fn run_main(tool: &str, body: impl FnOnce() -> Result<()>) -> std::process::ExitCode {
    match body() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (the shards target of fuzz/): serde's message for a manifest whose
    /// "split" was "trai\n" quoted the string raw, and the error ran over two lines.
    #[test]
    fn messages_are_one_line_whatever_they_quote() {
        let e = Error::msg("m.json: unknown variant `trai\n`, expected `train` or `val`");
        assert_eq!(
            e.to_string(),
            "m.json: unknown variant `trai\\n`, expected `train` or `val`"
        );
        let e = Error::record("a\nb.jsonl", 3, "bad\r\nline");
        assert_eq!(e.to_string(), "a\\nb.jsonl:3: bad\\r\\nline");
        let e = Error::io("x\ny", io::Error::new(io::ErrorKind::NotFound, "gone"));
        assert_eq!(e.to_string(), "x\\ny: gone");
        assert_eq!(Error::msg("plain").to_string(), "plain");
    }

    #[test]
    fn library_errors_keep_their_source() {
        use std::error::Error as _;
        let inner = io::Error::other("shape mismatch\nin matmul");
        let e = Error::lib("tensor op failed", inner).context("step 3");
        assert_eq!(
            e.to_string(),
            "step 3: tensor op failed: shape mismatch\\nin matmul"
        );
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("shape mismatch\nin matmul")
        );
    }
}
