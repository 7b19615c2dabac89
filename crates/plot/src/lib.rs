//! `plot`: metrics logs (train's `metrics.jsonl`, RLHF logs, any JSONL of numbers per step) as
//! a PNG or SVG picture with one panel per metric and the runs overlaid.
//!
//! - [`log`] reads a log (torn last line tolerated, bad lines named by file and line);
//! - [`panels`] decides the panels, their order, grouping and y scale, and the run labels;
//! - [`render`] draws a [`render::Figure`] on any plotters backend;
//! - [`ticks`] picks round tick values and short labels;
//! - this module writes the picture files atomically and watches logs for `--follow`.

pub mod log;
pub mod panels;
pub mod render;
pub mod ticks;

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use plotters::prelude::{BitMapBackend, DrawingBackend, IntoDrawingArea, SVGBackend};
use wick_io::{Error, Result};

use crate::panels::ScaleChoice;
use crate::render::{Figure, Run};

/// What a picture file is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// From a path's extension (`.png`, `.svg`, any case).
    pub fn of_path(path: &str) -> Option<Format> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(Format::Png),
            "svg" => Some(Format::Svg),
            _ => None,
        }
    }
}

/// How to draw, apart from the logs themselves.
#[derive(Debug, Clone)]
pub struct Options {
    pub x_field: String,
    /// Fields or panels to draw, in order (empty: all but the counters).
    pub only: Vec<String>,
    /// Keep the counters (tokens, elapsed_s, step_ms).
    pub all: bool,
    pub scale: ScaleChoice,
    pub smooth: f64,
    pub title: Option<String>,
    /// Whole picture in pixels (None: a fixed size per panel).
    pub size: Option<(u32, u32)>,
}

/// Reads every log; `labels` names them in the legend (empty: from their paths).
pub fn load_runs(
    paths: &[String],
    labels: &[String],
    x_field: &str,
    skip_invalid: bool,
) -> Result<Vec<Run>> {
    let names = if labels.is_empty() {
        panels::run_labels(paths)
    } else {
        labels.to_vec()
    };
    paths
        .iter()
        .zip(names)
        .map(|(p, label)| {
            Ok(Run {
                label,
                log: log::read_log(p, x_field, skip_invalid)?,
            })
        })
        .collect()
}

/// The figure for these runs, or an error when `--only` names a field no log has.
pub fn figure(runs: Vec<Run>, opts: &Options) -> Result<Figure> {
    let logs: Vec<&log::Log> = runs.iter().map(|r| &r.log).collect();
    let present = |name: &str| {
        let key = panels::panel_key(name);
        logs.iter()
            .any(|l| l.series.iter().any(|s| panels::panel_key(&s.field) == key))
    };
    let missing: Vec<&str> = opts
        .only
        .iter()
        .map(String::as_str)
        .filter(|n| !present(n))
        .collect();
    if !missing.is_empty() {
        let mut have: Vec<&str> = Vec::new();
        for l in &logs {
            for s in &l.series {
                if !have.contains(&s.field.as_str()) {
                    have.push(&s.field);
                }
            }
        }
        return Err(Error::msg(format!(
            "--only: no field {} in the logs (they have: {})",
            missing.join(", "),
            have.join(", ")
        )));
    }
    let panels = panels::panels(&logs, &opts.only, opts.all, &opts.x_field);
    if panels.is_empty() {
        return Err(Error::msg(
            "nothing to draw: the logs only have counters (--all draws them)",
        ));
    }
    Ok(Figure {
        runs,
        panels,
        x_field: opts.x_field.clone(),
        smooth: opts.smooth,
        scale: opts.scale,
        title: opts.title.clone(),
    })
}

fn drawing_error(e: impl std::fmt::Display) -> Error {
    Error::msg(format!("drawing the picture: {e}"))
}

/// The figure as an SVG document.
pub fn svg(fig: &Figure, size: Option<(u32, u32)>) -> Result<String> {
    let size = render::figure_size(fig, size);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        render::draw(&root, fig, render::Pen::SVG).map_err(drawing_error)?;
    }
    Ok(buf)
}

/// A temporary file in `dir` whose name ends in `.png` (plotters' encoder picks the format by
/// extension), readable like an ordinary new file.
fn png_temp(dir: &Path, name: &str) -> Result<tempfile::NamedTempFile> {
    let prefix = format!(".{name}.tmp");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(".png");
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    b.tempfile_in(dir).map_err(|e| Error::io(dir.display(), e))
}

/// Draws a PNG at twice its size and shrinks it (plotters' bitmap lines have no
/// anti-aliasing; averaging 2x2 pixels gives smooth edges), then encodes it to `path`.
fn draw_png(fig: &Figure, (w, h): (u32, u32), path: &Path) -> Result<()> {
    // Very large pictures are drawn once, at their size.
    let k: u32 = if (w as u64) * (h as u64) <= 25_000_000 {
        2
    } else {
        1
    };
    let mut big = vec![255u8; (w * k) as usize * (h * k) as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut big, (w * k, h * k)).into_drawing_area();
        let pen = render::Pen {
            surface: render::Surface::Bitmap,
            scale: k as f64,
        };
        render::draw(&root, fig, pen).map_err(drawing_error)?;
    }
    let small = shrink(&big, (w, h), k);
    let mut out = BitMapBackend::new(path, (w, h));
    out.blit_bitmap((0, 0), (w, h), &small)
        .map_err(drawing_error)?;
    out.present().map_err(drawing_error)
}

/// Averages each k x k block of an RGB picture of `k * size`.
fn shrink(big: &[u8], (w, h): (u32, u32), k: u32) -> Vec<u8> {
    if k == 1 {
        return big.to_vec();
    }
    let (w, h, k) = (w as usize, h as usize, k as usize);
    let stride = w * k * 3;
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..k {
                    for dx in 0..k {
                        sum += big[(y * k + dy) * stride + (x * k + dx) * 3 + c] as u32;
                    }
                }
                out[(y * w + x) * 3 + c] = ((sum + (k * k / 2) as u32) / (k * k) as u32) as u8;
            }
        }
    }
    out
}

/// Writes the figure as `format` to `path`, atomically: drawn under a temporary name in the
/// same directory and renamed into place, so a viewer never opens half a picture.
pub fn write_picture(fig: &Figure, opts: &Options, format: Format, path: &str) -> Result<()> {
    match format {
        Format::Svg => wick_io::write_atomic(path, svg(fig, opts.size)?.as_bytes()),
        Format::Png => {
            let f = wick_io::AtomicFile::create(path)?;
            draw_png(fig, render::figure_size(fig, opts.size), f.tmp_path())?;
            f.commit()
        }
    }
}

/// The figure's bytes in `format` (for stdout).
pub fn picture_bytes(fig: &Figure, opts: &Options, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Svg => Ok(svg(fig, opts.size)?.into_bytes()),
        Format::Png => {
            let dir = std::env::temp_dir();
            let tmp = png_temp(&dir, "plot")?;
            draw_png(fig, render::figure_size(fig, opts.size), tmp.path())?;
            std::fs::read(tmp.path()).map_err(|e| Error::io(tmp.path().display(), e))
        }
    }
}

/// Where a picture goes.
#[derive(Debug, Clone)]
pub enum Target {
    File(String, Format),
    Stdout(Format),
}

/// What one drawing did, for the summary line.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub runs: usize,
    pub panels: usize,
    pub size: (u32, u32),
    /// The largest x over the runs.
    pub last_x: f64,
    /// Logs whose torn last line was skipped.
    pub torn: Vec<String>,
    /// Logs with bad lines skipped (`--skip-invalid`): path, count, the first one's error.
    pub skipped: Vec<(String, u64, String)>,
}

/// Reads the logs and writes every target once. With `skip_invalid`, bad lines in the logs are
/// skipped and counted (in [`Drawn::skipped`]) instead of failing.
pub fn draw_once(
    paths: &[String],
    labels: &[String],
    opts: &Options,
    targets: &[Target],
    skip_invalid: bool,
) -> Result<Drawn> {
    let runs = load_runs(paths, labels, &opts.x_field, skip_invalid)?;
    let fig = figure(runs, opts)?;
    for t in targets {
        match t {
            Target::File(path, format) => write_picture(&fig, opts, *format, path)?,
            Target::Stdout(format) => {
                let bytes = picture_bytes(&fig, opts, *format)?;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|_| out.flush())
                    .map_err(|e| Error::io("<stdout>", e))?;
            }
        }
    }
    Ok(Drawn {
        runs: fig.runs.len(),
        panels: fig.panels.len(),
        size: render::figure_size(&fig, opts.size),
        last_x: fig
            .runs
            .iter()
            .map(|r| r.log.last_x)
            .fold(f64::NEG_INFINITY, f64::max),
        torn: fig
            .runs
            .iter()
            .filter(|r| r.log.torn_tail)
            .map(|r| r.log.path.clone())
            .collect(),
        skipped: fig
            .runs
            .iter()
            .filter(|r| r.log.skipped > 0)
            .map(|r| {
                let first = r.log.first_skipped.clone().unwrap_or_default();
                (r.log.path.clone(), r.log.skipped, first)
            })
            .collect(),
    })
}

/// Size and modification time of each log (None: missing), to notice that one changed.
pub fn fingerprint(paths: &[String]) -> Vec<Option<(u64, SystemTime)>> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}

/// Parses `--size WxH`.
pub fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT (e.g. 1200x800)"))?;
    let n = |v: &str| -> std::result::Result<u32, String> {
        let n: u32 = v
            .trim()
            .parse()
            .map_err(|_| format!("{v:?} is not a whole number of pixels"))?;
        if (100..=10_000).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} pixels is outside 100..=10000"))
        }
    };
    Ok((n(w)?, n(h)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of_path("a/curves.png"), Some(Format::Png));
        assert_eq!(Format::of_path("curves.SVG"), Some(Format::Svg));
        assert_eq!(Format::of_path("curves.jpg"), None);
        assert_eq!(Format::of_path("curves"), None);
    }

    #[test]
    fn shrink_averages_blocks() {
        // A 2x1 picture drawn at 4x2: left block black/white, right block all red.
        let mut big = vec![0u8; 4 * 2 * 3];
        let px = |big: &mut Vec<u8>, x: usize, y: usize, rgb: [u8; 3]| {
            big[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3].copy_from_slice(&rgb);
        };
        px(&mut big, 1, 0, [255, 255, 255]);
        px(&mut big, 0, 1, [255, 255, 255]);
        for (x, y) in [(2, 0), (3, 0), (2, 1), (3, 1)] {
            px(&mut big, x, y, [200, 0, 0]);
        }
        assert_eq!(shrink(&big, (2, 1), 2), [128, 128, 128, 200, 0, 0]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1200x800"), Ok((1200, 800)));
        assert_eq!(parse_size("640X480"), Ok((640, 480)));
        assert!(parse_size("1200").is_err());
        assert!(parse_size("50x800").is_err());
        assert!(parse_size("axb").is_err());
    }
}
