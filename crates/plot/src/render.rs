//! Drawing a figure: a legend strip on top (one colour per run, the line styles), then a grid
//! of panels, one per metric, sharing the x range so that a step sits at the same place in
//! every column.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::log::Log;
use crate::panels::{choose_scale, is_val, Panel, Scale, ScaleChoice};
use crate::ticks::{format_value, linear_ticks, log_ticks, TickFormat};

/// One log and its name in the legend.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub log: Log,
}

/// What to draw and how.
#[derive(Debug, Clone)]
pub struct Figure {
    pub runs: Vec<Run>,
    pub panels: Vec<Panel>,
    /// The x field (the x axis title).
    pub x_field: String,
    /// Weight of the exponential moving average drawn over training series (0: none).
    pub smooth: f64,
    pub scale: ScaleChoice,
    pub title: Option<String>,
}

/// Default size of one panel in pixels.
pub const PANEL_SIZE: (u32, u32) = (600, 380);

const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Matplotlib's `tab10`, the colours most readers already know.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];
const INK: RGBColor = RGBColor(0x26, 0x26, 0x26);
const MUTED: RGBColor = RGBColor(0x6e, 0x6e, 0x6e);
const GRID: RGBColor = RGBColor(0xe3, 0xe3, 0xe3);
const AXIS: RGBColor = RGBColor(0x9a, 0x9a, 0x9a);

/// The colour of the i-th run.
pub fn run_colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Registers the embedded font once (plotters' ab_glyph text looks fonts up by name).
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            panic!("the embedded DejaVu Sans font does not parse");
        }
    });
}

/// (rows, columns) of the panel grid for `n` panels.
pub fn grid(n: usize) -> (usize, usize) {
    let cols = match n {
        0 | 1 => 1,
        2..=4 => 2,
        5..=9 => 3,
        _ => 4,
    };
    (n.div_ceil(cols).max(1), cols)
}

/// How to draw: on which surface, and at what scale (2 when a PNG is drawn at twice its size
/// and shrunk, which smooths lines). Every length in this module is in picture pixels and
/// passes through [`Pen::px`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pen {
    pub surface: Surface,
    pub scale: f64,
}

/// plotters' bitmap text (ab_glyph) sits a little above its anchor; SVG text, placed by the
/// viewer, does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Bitmap,
    Svg,
}

impl Pen {
    pub const SVG: Pen = Pen {
        surface: Surface::Svg,
        scale: 1.0,
    };

    fn px(&self, v: i32) -> i32 {
        (v as f64 * self.scale).round() as i32
    }

    fn upx(&self, v: u32) -> u32 {
        (v as f64 * self.scale).round() as u32
    }

    /// The width of `s` at `size` pixels, in the embedded font.
    fn text_width(&self, s: &str, size: u32) -> i32 {
        register_font();
        let size = self.upx(size);
        FontDesc::new(FontFamily::Name(FONT), size as f64, FontStyle::Normal)
            .box_size(s)
            .map_or(s.chars().count() as i32 * size as i32 * 3 / 5, |(w, _)| {
                w as i32
            })
    }

    fn text<'a>(&self, size: u32, colour: &'a RGBColor) -> TextStyle<'a> {
        TextStyle::from((FONT, self.upx(size)).into_font()).color(colour)
    }

    /// Text left-aligned at `(x, y)` (already scaled), vertically centred on `y`.
    fn label<'a>(
        &self,
        s: impl Into<String>,
        (x, y): (i32, i32),
        size: u32,
        colour: &'a RGBColor,
    ) -> Text<'a, (i32, i32), String> {
        let nudge = match self.surface {
            Surface::Bitmap => self.px(size as i32) / 5,
            Surface::Svg => 0,
        };
        Text::new(
            s.into(),
            (x, y + nudge),
            self.text(size, colour)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }

    fn stroke(&self, colour: RGBAColor, width: u32) -> ShapeStyle {
        colour.stroke_width(self.upx(width).max(1))
    }
}

const LEGEND_LEFT: i32 = 16;
const LEGEND_ROW: i32 = 26;
const LEGEND_FONT: u32 = 15;
const NOTE_FONT: u32 = 12;
const KEY_FONT: u32 = 13;
const TITLE_FONT: u32 = 20;
const PANEL_TITLE_FONT: u32 = 16;
const TICK_FONT: u32 = 12;
const AXIS_FONT: u32 = 13;
const SWATCH: i32 = 26;

/// Per run: its name and a note of how far it got.
fn legend_entries(fig: &Figure) -> Vec<(String, String)> {
    fig.runs
        .iter()
        .map(|r| {
            let note = format!("{} {}", fig.x_field, format_value(r.log.last_x));
            (r.label.clone(), note)
        })
        .collect()
}

fn legend_entry_width(pen: &Pen, (name, note): &(String, String)) -> i32 {
    pen.px(SWATCH + 8)
        + pen.text_width(name, LEGEND_FONT)
        + pen.px(8)
        + pen.text_width(note, NOTE_FONT)
        + pen.px(28)
}

fn has_val(fig: &Figure) -> bool {
    fig.panels
        .iter()
        .any(|p| p.fields.iter().any(|f| is_val(f)))
}

/// The line styles explained on the right of the legend.
fn style_keys(fig: &Figure) -> Vec<(&'static str, Swatch)> {
    let mut keys = Vec::new();
    if has_val(fig) {
        keys.push(("train", Swatch::Line));
        keys.push(("val", Swatch::Marked));
    }
    if fig.smooth > 0.0 {
        keys.push(("raw", Swatch::Faint));
    }
    keys
}

fn key_width(pen: &Pen, name: &str) -> i32 {
    pen.px(30) + pen.text_width(name, KEY_FONT) + pen.px(18)
}

fn style_key_width(pen: &Pen, fig: &Figure) -> i32 {
    let keys = style_keys(fig);
    keys.iter().map(|(n, _)| key_width(pen, n)).sum::<i32>() + pen.px(8)
}

/// Where each legend entry goes: (row, x) with x in scaled pixels.
fn legend_layout(pen: &Pen, fig: &Figure, width: i32) -> Vec<(usize, i32)> {
    let limit = width - style_key_width(pen, fig);
    let mut row = 0;
    let mut x = pen.px(LEGEND_LEFT);
    legend_entries(fig)
        .iter()
        .map(|e| {
            let w = legend_entry_width(pen, e);
            if x + w > limit && x > pen.px(LEGEND_LEFT) {
                row += 1;
                x = pen.px(LEGEND_LEFT);
            }
            let at = (row, x);
            x += w;
            at
        })
        .collect()
}

/// Height of the title and legend strip, in picture pixels (unscaled).
fn header_height(fig: &Figure, width: u32) -> u32 {
    let pen = Pen::SVG;
    let rows = legend_layout(&pen, fig, width as i32)
        .last()
        .map_or(1, |(r, _)| r + 1) as u32;
    let title = if fig.title.is_some() { 30 } else { 0 };
    title + rows * LEGEND_ROW as u32 + 14
}

/// The picture's size: `size` when given, else [`PANEL_SIZE`] per panel plus the legend.
pub fn figure_size(fig: &Figure, size: Option<(u32, u32)>) -> (u32, u32) {
    if let Some(s) = size {
        return s;
    }
    let (rows, cols) = grid(fig.panels.len());
    let w = PANEL_SIZE.0 * cols as u32;
    (w, PANEL_SIZE.1 * rows as u32 + header_height(fig, w))
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws the figure on a backend's whole area (of the figure's size times `pen.scale`).
pub fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    pen: Pen,
) -> DrawResult<DB> {
    register_font();
    root.fill(&WHITE)?;
    let (w, _) = root.dim_in_pixel();
    let design_w = (w as f64 / pen.scale).round() as u32;
    let (header, body) = root.split_vertically(pen.upx(header_height(fig, design_w)));
    draw_header(&header, fig, &pen)?;
    let (rows, cols) = grid(fig.panels.len());
    let cells = body.split_evenly((rows, cols));
    let x_range = x_range(fig);
    for (panel, cell) in fig.panels.iter().zip(&cells) {
        draw_panel(cell, fig, panel, x_range, &pen)?;
    }
    root.present()
}

fn draw_header<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
    pen: &Pen,
) -> DrawResult<DB> {
    let (w, _) = area.dim_in_pixel();
    let mut y = pen.px(10);
    if let Some(t) = &fig.title {
        area.draw(&pen.label(
            t.as_str(),
            (pen.px(LEGEND_LEFT), y + pen.px(12)),
            TITLE_FONT,
            &INK,
        ))?;
        y += pen.px(30);
    }
    let first_row = y + pen.px(LEGEND_ROW / 2);
    // The style key, right-aligned on the first row.
    let mut kx = w as i32 - style_key_width(pen, fig);
    for (name, swatch) in style_keys(fig) {
        draw_swatch(area, pen, (kx, first_row), swatch, &MUTED)?;
        area.draw(&pen.label(name, (kx + pen.px(30), first_row), KEY_FONT, &MUTED))?;
        kx += key_width(pen, name);
    }
    // One entry per run, wrapping before the style key.
    let at = legend_layout(pen, fig, w as i32);
    for (i, ((name, note), (row, x))) in legend_entries(fig).into_iter().zip(at).enumerate() {
        let cy = first_row + row as i32 * pen.px(LEGEND_ROW);
        area.draw(&Rectangle::new(
            [(x, cy - pen.px(2)), (x + pen.px(SWATCH), cy + pen.px(2))],
            run_colour(i).filled(),
        ))?;
        let name_w = pen.text_width(&name, LEGEND_FONT);
        area.draw(&pen.label(name, (x + pen.px(SWATCH + 8), cy), LEGEND_FONT, &INK))?;
        let nx = x + pen.px(SWATCH + 8) + name_w + pen.px(8);
        area.draw(&pen.label(note, (nx, cy), NOTE_FONT, &MUTED))?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Swatch {
    Line,
    Marked,
    Faint,
}

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pen: &Pen,
    (x, y): (i32, i32),
    swatch: Swatch,
    colour: &RGBColor,
) -> DrawResult<DB> {
    let line = [(x, y), (x + pen.px(24), y)];
    let mid = (x + pen.px(12), y);
    match swatch {
        Swatch::Line => area.draw(&PathElement::new(line, pen.stroke(colour.mix(1.0), 2))),
        Swatch::Marked => {
            area.draw(&PathElement::new(line, pen.stroke(colour.mix(1.0), 2)))?;
            area.draw(&Circle::new(mid, pen.upx(4), WHITE.filled()))?;
            area.draw(&Circle::new(mid, pen.upx(3), colour.filled()))
        }
        Swatch::Faint => area.draw(&PathElement::new(line, pen.stroke(colour.mix(0.3), 1))),
    }
}

/// The x range shared by every panel.
fn x_range(fig: &Figure) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for r in &fig.runs {
        for s in &r.log.series {
            if fig.panels.iter().any(|p| p.fields.contains(&s.field)) {
                for &(x, _) in &s.points {
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        return (lo - 1.0, hi + 1.0);
    }
    (lo, hi)
}

/// Whether every x value is a whole number (steps are).
fn whole_x(fig: &Figure) -> bool {
    fig.runs
        .iter()
        .flat_map(|r| &r.log.series)
        .all(|s| s.points.iter().all(|p| p.0.fract() == 0.0))
}

/// The exponential moving average TensorBoard's smoothing slider draws (debiased, so the start
/// is not pulled towards zero).
pub fn ema(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let mut acc = 0.0;
    let mut n = 0;
    points
        .iter()
        .map(|&(x, y)| {
            acc = acc * weight + (1.0 - weight) * y;
            n += 1;
            (x, acc / (1.0 - weight.powi(n)))
        })
        .collect()
}

/// At most about `2 * buckets` points: the lowest and the highest of each of `buckets` equal
/// slices of the x range, in x order, so that spikes survive.
pub fn decimate(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    if points.len() <= 2 * buckets || buckets == 0 {
        return points.to_vec();
    }
    let x0 = points[0].0;
    let x1 = points[points.len() - 1].0;
    let width = (x1 - x0) / buckets as f64;
    let mut out = Vec::with_capacity(2 * buckets + 2);
    let mut i = 0;
    while i < points.len() {
        let b = (((points[i].0 - x0) / width) as usize).min(buckets - 1);
        let mut j = i;
        let (mut lo, mut hi) = (i, i);
        while j < points.len() && (((points[j].0 - x0) / width) as usize).min(buckets - 1) == b {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let (a, c) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(points[a]);
        if c != a {
            out.push(points[c]);
        }
        i = j;
    }
    out
}

struct Line {
    run: usize,
    field: String,
    raw: Vec<(f64, f64)>,
    smoothed: Option<Vec<(f64, f64)>>,
}

/// Space left of a panel's plot for tick labels and the axis title, in picture pixels.
const Y_LABEL_AREA: i32 = 62;
const PANEL_MARGIN_LEFT: i32 = 8;

fn draw_panel<DB: DrawingBackend>(
    cell: &DrawingArea<DB, Shift>,
    fig: &Figure,
    panel: &Panel,
    (x0, x1): (f64, f64),
    pen: &Pen,
) -> DrawResult<DB> {
    let (cw, ch) = cell.dim_in_pixel();
    // Plot size in picture pixels: what tick counts and decimation go by.
    let plot_w = ((cw as f64 / pen.scale) as usize).saturating_sub(90);
    let plot_h = ((ch as f64 / pen.scale) as usize).saturating_sub(90);
    let buckets = (plot_w as f64 * pen.scale) as usize;
    let mut lines = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (ri, run) in fig.runs.iter().enumerate() {
        for field in &panel.fields {
            let Some(s) = run.log.get(field) else {
                continue;
            };
            for &(_, y) in &s.points {
                lo = lo.min(y);
                hi = hi.max(y);
            }
            let smoothed =
                (fig.smooth > 0.0 && !is_val(field) && field != "lr" && s.points.len() > 2)
                    .then(|| decimate(&ema(&s.points, fig.smooth), buckets));
            lines.push(Line {
                run: ri,
                field: field.clone(),
                raw: decimate(&s.points, buckets),
                smoothed,
            });
        }
    }
    let scale = choose_scale(fig.scale, panel, lo, hi);
    let t = |y: f64| if scale == Scale::Log { y.log10() } else { y };

    // The y range in drawing space, padded a little.
    let (mut ylo, mut yhi) = (t(lo), t(hi));
    if yhi - ylo < 1e-12 {
        let pad = if scale == Scale::Log {
            0.05
        } else if ylo == 0.0 {
            1.0
        } else {
            ylo.abs() * 0.1
        };
        ylo -= pad;
        yhi += pad;
    }
    let pad = (yhi - ylo) * 0.05;
    let (ylo, yhi) = (ylo - pad, yhi + pad);

    let y_target = (plot_h / 55).clamp(3, 8);
    let x_target = (plot_w / 100).clamp(3, 10);
    let (mut xticks, mut xstep) = linear_ticks(x0, x1, x_target);
    if xstep < 1.0 && whole_x(fig) {
        // Steps are whole numbers: no ticks at step 0.2.
        xticks = (x0.ceil() as i64..=x1.floor() as i64)
            .map(|v| v as f64)
            .collect();
        xstep = 1.0;
    }
    let xfmt = TickFormat::new(&xticks, xstep);
    let (yticks, yfmt) = match scale {
        Scale::Linear => {
            let (ticks, step) = linear_ticks(ylo, yhi, y_target);
            let f = TickFormat::new(&ticks, step);
            (ticks, f)
        }
        Scale::Log => {
            let ticks = log_ticks(10f64.powf(ylo), 10f64.powf(yhi), y_target);
            let f = TickFormat::new(&ticks, 0.0);
            (ticks.iter().map(|v| v.log10()).collect(), f)
        }
    };

    // Title band: the panel's name, the last values of a single run, the scale.
    let (band, chart_area) = cell.split_vertically(pen.upx(30));
    let left = pen.px(PANEL_MARGIN_LEFT + Y_LABEL_AREA);
    let band_y = pen.px(17);
    band.draw(&pen.label(panel.title.as_str(), (left, band_y), PANEL_TITLE_FONT, &INK))?;
    if fig.runs.len() == 1 {
        let last: Vec<String> = panel
            .fields
            .iter()
            .filter_map(|f| {
                let v = fig.runs[0].log.get(f)?.points.last()?.1;
                Some(if panel.fields.len() == 1 {
                    format_value(v)
                } else {
                    format!("{} {}", short_name(f, &panel.key), format_value(v))
                })
            })
            .collect();
        if !last.is_empty() {
            let x = left + pen.text_width(&panel.title, PANEL_TITLE_FONT) + pen.px(14);
            let text = format!("last: {}", last.join(" · "));
            band.draw(&pen.label(text, (x, band_y + pen.px(1)), NOTE_FONT, &MUTED))?;
        }
    }
    if scale == Scale::Log {
        let note = "log scale";
        let x = cw as i32 - pen.px(20) - pen.text_width(note, NOTE_FONT);
        band.draw(&pen.label(note, (x, band_y + pen.px(1)), NOTE_FONT, &MUTED))?;
    }

    let mut chart = ChartBuilder::on(&chart_area)
        .margin_left(pen.upx(PANEL_MARGIN_LEFT as u32))
        .margin_right(pen.upx(20))
        .margin_top(pen.upx(4))
        .margin_bottom(pen.upx(8))
        .x_label_area_size(pen.upx(40))
        .y_label_area_size(pen.upx(Y_LABEL_AREA as u32))
        .build_cartesian_2d(Axis::new(x0, x1, xticks), Axis::new(ylo, yhi, yticks))?;
    let x_fmt = |v: &f64| xfmt.format(*v);
    let y_fmt = |v: &f64| {
        if scale == Scale::Log {
            yfmt.format(10f64.powf(*v))
        } else {
            yfmt.format(*v)
        }
    };
    chart
        .configure_mesh()
        .bold_line_style(pen.stroke(GRID.mix(1.0), 1))
        .light_line_style(TRANSPARENT)
        .axis_style(pen.stroke(AXIS.mix(1.0), 1))
        .set_all_tick_mark_size(pen.upx(4))
        .label_style(pen.text(TICK_FONT, &MUTED))
        .axis_desc_style(pen.text(AXIS_FONT, &INK))
        .x_desc(fig.x_field.as_str())
        .y_desc(panel.key.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()?;

    // Training series first (faint raw under smoothed), evaluation series on top. Where a
    // panel has evaluation series, the noisier training ones step back (lighter, thinner).
    let with_val = lines.iter().any(|l| is_val(&l.field));
    let mut order: Vec<&Line> = lines.iter().collect();
    order.sort_by_key(|l| is_val(&l.field));
    let area = chart.plotting_area();
    for l in order {
        let colour = run_colour(l.run);
        let pts = |v: &[(f64, f64)]| v.iter().map(|&(x, y)| (x, t(y))).collect::<Vec<_>>();
        let p = pts(&l.raw);
        if is_val(&l.field) {
            curve(area, pen, &p, colour, 1.0, 2)?;
            // Dots where they do not crowd each other.
            if p.len() * 10 <= plot_w {
                let ring = pen.upx(4);
                let dot = pen.upx(3);
                for &c in &p {
                    area.draw(&Circle::new(c, ring, WHITE.filled()))?;
                    area.draw(&Circle::new(c, dot, colour.filled()))?;
                }
            }
            continue;
        }
        if p.len() == 1 {
            area.draw(&Circle::new(p[0], pen.upx(3), colour.filled()))?;
            continue;
        }
        match (&l.smoothed, with_val) {
            (Some(sm), false) => {
                curve(area, pen, &p, colour, 0.25, 1)?;
                curve(area, pen, &pts(sm), colour, 1.0, 2)?;
            }
            (Some(sm), true) => {
                curve(area, pen, &p, colour, 0.2, 1)?;
                curve(area, pen, &pts(sm), colour, 0.6, 2)?;
            }
            (None, true) => curve(area, pen, &p, colour, 0.55, 1)?,
            // Smooth curves (lr) bold, noisy ones (grad norm) thin enough to see through.
            (None, false) => {
                let w = if smooth_curve(&l.raw) { 2 } else { 1 };
                curve(area, pen, &p, colour, 1.0, w)?;
            }
        }
    }
    Ok(())
}

type PlotArea<DB> = DrawingArea<DB, Cartesian2d<Axis, Axis>>;

/// A polyline `width` pixels wide. SVG gets a plain polyline. On a bitmap, plotters draws
/// lines wider than one pixel as polygons whose joins blow up into long spikes at sharp turns
/// and repeated points (noisy curves have both), so the curve is drawn as one-pixel lines
/// swept over a `width` x `width` square, in the colour it has at `alpha` over white.
fn curve<DB: DrawingBackend>(
    area: &PlotArea<DB>,
    pen: &Pen,
    points: &[(f64, f64)],
    colour: RGBColor,
    alpha: f64,
    width: u32,
) -> DrawResult<DB> {
    match pen.surface {
        Surface::Svg => area.draw(&PathElement::new(
            points.to_vec(),
            pen.stroke(colour.mix(alpha), width),
        )),
        Surface::Bitmap => {
            let (bx, by) = area.get_base_pixel();
            let flat = area.strip_coord_spec();
            let mut px: Vec<(i32, i32)> = points
                .iter()
                .map(|p| {
                    let (x, y) = area.map_coordinate(p);
                    (x - bx, y - by)
                })
                .collect();
            px.dedup();
            let over_white = |c: u8| (c as f64 * alpha + 255.0 * (1.0 - alpha)).round() as u8;
            let c = RGBColor(
                over_white(colour.0),
                over_white(colour.1),
                over_white(colour.2),
            );
            let w = pen.upx(width).max(1) as i32;
            let lo = -(w / 2);
            for dx in lo..lo + w {
                for dy in lo..lo + w {
                    let shifted: Vec<(i32, i32)> =
                        px.iter().map(|&(x, y)| (x + dx, y + dy)).collect();
                    flat.draw(&PathElement::new(shifted, c.stroke_width(1)))?;
                }
            }
            Ok(())
        }
    }
}

/// Whether a curve is smooth: its total variation is at most three times its range (a
/// warmup-then-decay schedule has 2; noisy measurements have many times more).
pub fn smooth_curve(points: &[(f64, f64)]) -> bool {
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let tv: f64 = points.windows(2).map(|w| (w[1].1 - w[0].1).abs()).sum();
    tv <= 3.0 * (hi - lo)
}

/// A linear f64 axis whose ticks are given (plotters' own `with_key_points` drops the label
/// formatter).
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Axis {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Axis {
        Axis { lo, hi, ticks }
    }
}

impl Ranged for Axis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let r = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (r * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// `val_loss` in the loss panel reads `val`; the panel's own field reads `train`.
fn short_name<'a>(field: &'a str, key: &str) -> &'a str {
    if field == key {
        "train"
    } else {
        field
            .strip_suffix(key)
            .map_or(field, |p| p.trim_end_matches('_'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_shapes() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (1, 2));
        assert_eq!(grid(4), (2, 2));
        assert_eq!(grid(5), (2, 3));
        assert_eq!(grid(7), (3, 3));
        assert_eq!(grid(11), (3, 4));
    }

    #[test]
    fn ema_is_debiased() {
        let s = ema(&[(0.0, 4.0), (1.0, 4.0), (2.0, 1.0)], 0.5);
        assert_eq!(s[0], (0.0, 4.0));
        assert_eq!(s[1], (1.0, 4.0));
        // (0.5*(0.5*2+2) + 0.5) / (1 - 0.125) = 2 / 0.875
        assert!((s[2].1 - 2.0 / 0.875).abs() < 1e-12);
    }

    #[test]
    fn decimate_keeps_extremes_in_order() {
        let pts: Vec<(f64, f64)> = (0..1000)
            .map(|i| (i as f64, if i == 517 { 100.0 } else { (i % 7) as f64 }))
            .collect();
        let d = decimate(&pts, 50);
        assert!(d.len() <= 100, "{}", d.len());
        assert!(d.contains(&(517.0, 100.0)));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(decimate(&pts[..10], 50).len(), 10);
    }

    #[test]
    fn smoothness() {
        let warmup_decay: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                (
                    i as f64,
                    if i < 10 {
                        i as f64
                    } else {
                        10.0 - (i - 10) as f64 * 0.1
                    },
                )
            })
            .collect();
        assert!(smooth_curve(&warmup_decay));
        let noisy: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, (i % 2) as f64)).collect();
        assert!(!smooth_curve(&noisy));
        assert!(smooth_curve(&[(0.0, 1.0), (1.0, 1.0)]));
    }

    #[test]
    fn short_names() {
        assert_eq!(short_name("loss", "loss"), "train");
        assert_eq!(short_name("val_loss", "loss"), "val");
        assert_eq!(short_name("eval_reward", "reward"), "eval");
    }

    #[test]
    fn the_embedded_font_loads() {
        register_font();
        let f = FontDesc::new(FontFamily::Name(FONT), 12.0, FontStyle::Normal);
        let (w, _) = f.box_size("step").unwrap();
        assert!(w > 10, "{w}");
    }
}
