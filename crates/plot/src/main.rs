use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, ValueEnum};
use plot::panels::ScaleChoice;
use plot::{draw_once, fingerprint, parse_size, Format, Options, Target};
use wick_cli::{OutputFiles, Quiet, SkipInvalid};
use wick_io::{Progress, Result};

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Png,
    Svg,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScaleArg {
    /// Log for loss, lr and grad norm when their values span more than 10x; linear otherwise.
    Auto,
    Linear,
    /// Log for every panel whose values are all positive.
    Log,
}

/// Draw training metrics logs as a picture: one panel per metric, runs overlaid.
///
/// Reads JSONL metrics logs — train's RUN/metrics.jsonl, or any log with a numeric "step" and
/// numeric fields — and writes a PNG or an SVG (by -o's extension; -o twice writes both). Every
/// numeric field gets a panel: loss (with val_loss), reward and KL (RLHF logs), learning rate,
/// gradient norm, throughput, then any other field in the order it appears. A field val_X or
/// eval_X joins X's panel, drawn bold with dots over the lighter training curve. The counters
/// tokens, elapsed_s and step_ms are left out unless --all. Each log is one run, one colour,
/// named in the legend by its directory (runs/base/metrics.jsonl → base) or file stem, or by
/// --label. All panels share the x range (--x, default step).
///
/// Losses, lr and grad norm get a log y axis when their values span more than 10x (--scale).
/// A log still being written is fine: a partly written last line is skipped. --follow redraws
/// whenever a log changes, until Ctrl-C; each picture is written under a temporary name and
/// renamed into place, so an image viewer never sees half a file.
///
/// Examples:
///   plot runs/*/metrics.jsonl -o curves.png
///   plot runs/base/metrics.jsonl -o curves.png -o curves.svg --smooth 0.9
///   plot runs/base/metrics.jsonl -o live.png --follow
#[derive(Parser)]
#[command(
    version,
    verbatim_doc_comment,
    mut_arg("output", |a| a.value_name("PATH").help(
        "Picture to write: .png or .svg (by extension); give -o twice for both [default: a PNG \
         on stdout]."
    )),
    mut_arg("skip_invalid", |a| a.help(
        "Skip lines that are not JSON objects, counting them on stderr, instead of stopping at \
         the first with its file and line (a torn last line is always skipped)."
    ))
)]
struct Cli {
    /// Metrics logs (JSONL); '-' or none: stdin.
    files: Vec<String>,
    #[command(flatten)]
    output: OutputFiles,
    /// Image format for stdout, or for an -o path without a .png/.svg extension.
    #[arg(long, value_enum, alias = "format", value_name = "FORMAT")]
    image_format: Option<FormatArg>,
    /// Keep redrawing whenever a log changes, until Ctrl-C (needs -o).
    #[arg(long)]
    follow: bool,
    /// Seconds between checks for changes with --follow.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    interval: f64,
    /// Legend name of a log, once per log in order [default: the log's directory name, or its
    /// file stem].
    #[arg(long = "label", value_name = "NAME")]
    labels: Vec<String>,
    /// Draw only these fields or panels, in this order (comma-separated; e.g. loss,lr).
    #[arg(long, value_delimiter = ',', value_name = "FIELDS")]
    only: Vec<String>,
    /// Also draw the counters that restate the x axis (tokens, elapsed_s, step_ms).
    #[arg(long)]
    all: bool,
    /// The field on the x axis (e.g. tokens or elapsed_s).
    #[arg(long, default_value = "step", value_name = "FIELD")]
    x: String,
    /// Y axis scale.
    #[arg(long, value_enum, default_value = "auto")]
    scale: ScaleArg,
    /// Smooth training curves with an exponential moving average of this weight, in [0, 1)
    /// (TensorBoard's slider; 0.9 is strong); the raw curve stays faint behind. 0: off.
    #[arg(long, default_value_t = 0.0, value_name = "WEIGHT")]
    smooth: f64,
    /// Picture size in pixels, WIDTHxHEIGHT [default: 600x380 per panel plus the legend].
    #[arg(long, value_parser = parse_size, value_name = "WxH")]
    size: Option<(u32, u32)>,
    /// A title above the legend.
    #[arg(long)]
    title: Option<String>,
    #[command(flatten)]
    skip_invalid: SkipInvalid,
    #[command(flatten)]
    quiet: Quiet,
}

fn usage(msg: impl std::fmt::Display) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ValueValidation, msg)
        .exit()
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.files.is_empty() {
        cli.files.push("-".into());
    }
    if !cli.labels.is_empty() && cli.labels.len() != cli.files.len() {
        usage(format!(
            "{} --label for {} logs: give one per log, in order",
            cli.labels.len(),
            cli.files.len()
        ));
    }
    if !(0.0..1.0).contains(&cli.smooth) {
        usage("--smooth must be at least 0 and below 1");
    }
    if !cli.interval.is_finite() || cli.interval <= 0.0 || cli.interval > 86_400.0 {
        usage("--interval must be above 0 and at most a day (86400 s)");
    }
    let forced = cli.image_format.map(|f| match f {
        FormatArg::Png => Format::Png,
        FormatArg::Svg => Format::Svg,
    });
    let mut targets = Vec::new();
    for o in &cli.output.output {
        if o == "-" {
            targets.push(Target::Stdout(forced.unwrap_or(Format::Png)));
            continue;
        }
        match forced.or_else(|| Format::of_path(o)) {
            Some(f) => targets.push(Target::File(o.clone(), f)),
            None => usage(format!(
                "cannot tell the format of {o:?}: name it .png or .svg, or give --image-format"
            )),
        }
    }
    if targets.is_empty() {
        targets.push(Target::Stdout(forced.unwrap_or(Format::Png)));
    }
    let outputs: Vec<(&str, &std::path::Path)> = cli
        .output
        .output
        .iter()
        .map(|o| ("-o", std::path::Path::new(o)))
        .collect();
    if let Err(e) = wick_io::check_distinct_outputs(&outputs) {
        usage(e.to_string());
    }
    let to_stdout = targets.iter().any(|t| matches!(t, Target::Stdout(_)));
    if cli.follow && (to_stdout || cli.files.iter().any(|f| f == "-")) {
        usage("--follow redraws files: give the logs as paths and -o PATH");
    }
    if to_stdout && std::io::stdout().is_terminal() {
        usage("not writing a picture to a terminal: give -o PATH or redirect stdout");
    }
    let opts = Options {
        x_field: cli.x.clone(),
        only: cli.only.clone(),
        all: cli.all,
        scale: match cli.scale {
            ScaleArg::Auto => ScaleChoice::Auto,
            ScaleArg::Linear => ScaleChoice::Linear,
            ScaleArg::Log => ScaleChoice::Log,
        },
        smooth: cli.smooth,
        title: cli.title.clone(),
        size: cli.size,
    };
    wick_io::run_main("plot", || {
        if cli.follow {
            follow(&cli, &opts, &targets)
        } else {
            once(&cli, &opts, &targets)
        }
    })
}

fn names(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| match t {
            Target::File(p, _) => p.as_str(),
            Target::Stdout(_) => "<stdout>",
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn once(cli: &Cli, opts: &Options, targets: &[Target]) -> Result<()> {
    let d = draw_once(
        &cli.files,
        &cli.labels,
        opts,
        targets,
        cli.skip_invalid.skip_invalid,
    )?;
    if !cli.quiet.quiet {
        for t in &d.torn {
            eprintln!("plot: {t}: skipped a partly written last line");
        }
        for (path, n, first) in &d.skipped {
            eprintln!("plot: {path}: {n} invalid skipped (the first: {first})");
        }
        eprintln!(
            "plot: {} run{}, {} panel{} → {} ({}x{})",
            d.runs,
            if d.runs == 1 { "" } else { "s" },
            d.panels,
            if d.panels == 1 { "" } else { "s" },
            names(targets),
            d.size.0,
            d.size.1
        );
    }
    Ok(())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // A second Ctrl-C ends the process at once.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Redraws whenever a log's size or modification time changes, until Ctrl-C (which is let
/// finish the picture being written). Errors (a log not there yet, a bad line being fixed)
/// are reported once and retried when the logs change.
fn follow(cli: &Cli, opts: &Options, targets: &[Target]) -> Result<()> {
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    if !cli.quiet.quiet {
        eprintln!(
            "plot: following {} log{}, redrawing {} when they change (checked every {} s); Ctrl-C stops",
            cli.files.len(),
            if cli.files.len() == 1 { "" } else { "s" },
            names(targets),
            cli.interval
        );
    }
    let mut progress = Progress::new("plot", cli.quiet.quiet);
    let mut seen = None;
    let mut last_error: Option<String> = None;
    let mut redraws = 0u64;
    let interval = Duration::from_secs_f64(cli.interval);
    while !INTERRUPTED.load(Ordering::SeqCst) {
        let fp = fingerprint(&cli.files);
        if seen.as_ref() != Some(&fp) {
            seen = Some(fp);
            match draw_once(
                &cli.files,
                &cli.labels,
                opts,
                targets,
                cli.skip_invalid.skip_invalid,
            ) {
                Ok(d) => {
                    redraws += 1;
                    last_error = None;
                    let x = d.last_x;
                    progress
                        .tick(|_| format!("drawn {redraws} times, last at {} {x}", opts.x_field));
                }
                Err(e) => {
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(msg.as_str()) {
                        eprintln!("plot: {msg} (will retry when the logs change)");
                    }
                    last_error = Some(msg);
                }
            }
        }
        let start = Instant::now();
        while start.elapsed() < interval && !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(interval));
        }
    }
    progress.finish(|_| format!("stopped after {redraws} drawings"));
    Ok(())
}
