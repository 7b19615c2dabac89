use std::io;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use label::{load_decided, sidecar_path, Appender, Options, Pair};
use wick_cli::{OutputFileRequired, Quiet, SkipInvalid};
use wick_io::{LineReader, Result, Skipped};

/// Collect human preference comparisons in the terminal: each record's prompt and two responses
/// are shown side by side, you type which is better, and a {"prompt","chosen","rejected"}
/// record (TRL's preference format, what reward-model and DPO training read) is appended to
/// the output at once.
///
/// Input records (JSONL, one comparison a line) hold "prompt" (a string) and two responses as
/// "response_a"/"response_b", "a"/"b", or "responses": [first, second]. Other fields (an
/// "id", metadata) are copied to the preference. The whole input is checked before the first
/// pair is shown; a bad record stops label with its file and line (--skip-invalid: skipped
/// and counted).
///
/// Keys (type one, then Enter; they are read from stdin):
///   a  left (A) is better   b  right (B) is better   t  tie   s  skip   q  quit   ?  help
///
/// Ties and skips do not belong in training data: they go to a sidecar, OUTPUT.seen, so that a
/// later session does not show them again. Every decision is written and flushed as it is
/// made: quit (q, end of input, Ctrl-C) whenever you like and run the same command again to go
/// on. Pairs are recognised by a hash of their prompt and responses, so the input may be
/// reordered or extended between sessions.
///
/// To keep position bias out of the labels, about half the pairs are shown with their second
/// response on the left, the same pairs in every session (a hash of the pair and --swap-seed
/// decides). chosen and rejected always name the actual responses, whatever side they were on.
///
/// Columns are sized to $COLUMNS (100 if unset; export COLUMNS in your shell) or --width; CJK
/// and other wide characters count two columns.
///
/// Examples:
///   label pairs.jsonl -o prefs.jsonl
///   label pairs.jsonl -o prefs.jsonl --revisit-skipped     # a second look at the skips
///   printf 'a\nb\nt\n' | label pairs.jsonl -o prefs.jsonl  # scripted, as the tests do
#[derive(Parser)]
#[command(
    version,
    verbatim_doc_comment,
    mut_arg("output", |a| a.help(
        "Preferences are appended here; ties and skips go to OUTPUT.seen beside it."
    ))
)]
struct Cli {
    /// The pairs to label (a JSONL file; stdin carries the keys).
    input: String,
    #[command(flatten)]
    output: OutputFileRequired,
    /// Seed of the per-pair choice of which response is shown on the left.
    #[arg(long, default_value_t = 0)]
    swap_seed: u64,
    /// Show every pair in input order (first response on the left).
    #[arg(long, conflicts_with = "swap_seed")]
    no_swap: bool,
    /// Show again the pairs skipped in earlier sessions.
    #[arg(long)]
    revisit_skipped: bool,
    /// Terminal columns [default: $COLUMNS, else 100].
    #[arg(long)]
    width: Option<usize>,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    quiet: Quiet,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let usage = |msg: &str| -> ! {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, msg)
            .exit()
    };
    if cli.input == "-" {
        usage("the pairs must come from a file: stdin carries the keys");
    }
    if cli.output.output.as_os_str() == "-" {
        usage("--output must be a file: label appends to it and resumes from it");
    }
    if same_file(Path::new(&cli.input), &cli.output.output) {
        usage("--output is the input file");
    }
    wick_io::run_main("label", || body(cli))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(100)
}

fn body(cli: Cli) -> Result<()> {
    let mut reader = LineReader::open(&cli.input)?;
    let mut pairs = Vec::new();
    let mut buf = Vec::new();
    let mut skips = Skipped::new("label", cli.quiet.quiet);
    while let Some(line) = reader.read_line(&mut buf)? {
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match Pair::parse(reader.name(), line, &buf) {
            Ok(p) => pairs.push(p),
            Err(e) if cli.skip_invalid.skip_invalid => skips.note(&e),
            Err(e) => return Err(e),
        }
    }
    if skips.count > 0 && !cli.quiet.quiet {
        eprintln!("label: {} invalid skipped", skips.count);
    }
    let output = cli.output.output.as_path();
    let sidecar = sidecar_path(output);
    let mut decided = load_decided(output, &sidecar, cli.revisit_skipped)?;
    let opts = Options {
        swap_seed: (!cli.no_swap).then_some(cli.swap_seed),
        width: cli.width.unwrap_or_else(terminal_width),
    };
    let s = label::label(
        &pairs,
        &mut decided,
        &mut Appender::new(output),
        &mut Appender::new(&sidecar),
        &mut io::stdin().lock(),
        &mut io::stdout().lock(),
        &opts,
    )?;
    if !cli.quiet.quiet {
        let mut msg = format!(
            "label: {} labelled, {} ties, {} skipped, {} remaining of {} pairs ({} decided now)",
            s.labelled, s.ties, s.skipped, s.remaining, s.total, s.this_session
        );
        if s.remaining > 0 {
            msg.push_str("; run the same command to go on");
        }
        eprintln!("{msg}");
    }
    Ok(())
}
