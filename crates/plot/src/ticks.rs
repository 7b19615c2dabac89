//! Axis ticks at round numbers, and labels that stay short (`3e-4`, `250k`).

/// Ticks at multiples of 1, 2 or 5 × 10^k inside `lo..=hi`, about `target` of them.
/// Returns the ticks and their spacing.
pub fn linear_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return (vec![lo], 1.0);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let exp = raw.log10().floor() as i32;
    let mult = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|m| m * pow10(exp) >= raw)
        .unwrap_or(10.0);
    let step = mult * pow10(exp);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // i * mult * 10^exp, computed so that 3 x 0.1 is 0.3 and not 0.30000000000000004.
    let ticks = (first..=last)
        .map(|i| scaled(i as f64 * mult, exp))
        .collect();
    (ticks, step)
}

/// 10^k, exact for the powers f64 can hold exactly.
fn pow10(k: i32) -> f64 {
    scaled(1.0, k)
}

/// m x 10^k, dividing for negative k (0.1 is not exact, 10 is).
fn scaled(m: f64, k: i32) -> f64 {
    if k >= 0 {
        m * 10f64.powi(k)
    } else {
        m / 10f64.powi(-k)
    }
}

/// Ticks for a log axis over `lo..=hi` (both > 0): the densest of 1-2-5, 1-3 or 1 per decade
/// (or every few decades) that gives at most `target + 2` ticks; round linear ticks when the
/// range is too narrow for that.
pub fn log_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    // A padded range can run past f64 (to infinity above values near f64::MAX, to 0 below
    // tiny ones): its decades are what the loops below walk, so it stops at the finite ones.
    let (lo, hi) = (
        lo.clamp(f64::MIN_POSITIVE, f64::MAX),
        hi.clamp(f64::MIN_POSITIVE, f64::MAX),
    );
    let within = |v: f64| v.is_finite() && v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let k0 = lo.log10().floor() as i32;
    let k1 = hi.log10().ceil() as i32;
    let ticks = |mults: &[f64], stride: i32| -> Vec<f64> {
        (k0..=k1)
            .filter(|k| k.rem_euclid(stride) == 0)
            .flat_map(|k| mults.iter().map(move |m| scaled(*m, k)))
            .filter(|v| within(*v))
            .collect()
    };
    let mut choices: Vec<Vec<f64>> = vec![
        ticks(&[1.0, 2.0, 5.0], 1),
        ticks(&[1.0, 3.0], 1),
        ticks(&[1.0], 1),
    ];
    for stride in 2..=(k1 - k0).max(2) {
        choices.push(ticks(&[1.0], stride));
    }
    match choices
        .into_iter()
        .find(|t| t.len() >= 2 && t.len() <= target + 2)
    {
        Some(t) => t,
        // Too narrow for powers of ten: round numbers, placed on the log axis.
        None => {
            let (t, _) = linear_ticks(lo, hi, target.min(6));
            t.into_iter().filter(|v| *v > 0.0).collect()
        }
    }
}

/// How the labels of one axis are written, decided once for all its ticks so that they look
/// alike: plain (`0.25`, `150`), scientific when every tick is small (`3e-4`), or with a
/// k/M/G suffix when the largest is 10,000 or more (`250k`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickFormat {
    mode: Mode,
    decimals: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Scientific,
    Suffix(f64, &'static str),
}

impl TickFormat {
    /// For ticks `step` apart (`step` = 0: uneven ticks, as on a log axis).
    pub fn new(ticks: &[f64], step: f64) -> TickFormat {
        let max = ticks.iter().fold(0f64, |m, v| m.max(v.abs()));
        let mode = if max >= 1e4 {
            let (div, unit) = if max >= 1e9 {
                (1e9, "G")
            } else if max >= 1e6 {
                (1e6, "M")
            } else {
                (1e3, "k")
            };
            Mode::Suffix(div, unit)
        } else if max > 0.0 && max < 1e-2 {
            Mode::Scientific
        } else {
            Mode::Plain
        };
        let decimals = match mode {
            _ if step <= 0.0 => 6,
            Mode::Suffix(div, _) => decimals_for(step / div),
            _ => decimals_for(step),
        };
        TickFormat { mode, decimals }
    }

    pub fn format(&self, v: f64) -> String {
        if v == 0.0 {
            return "0".into();
        }
        match self.mode {
            Mode::Plain => trim(format!("{:.*}", self.decimals, v)),
            Mode::Suffix(div, unit) => {
                format!("{}{unit}", trim(format!("{:.*}", self.decimals, v / div)))
            }
            Mode::Scientific => scientific(v, 2),
        }
    }
}

/// `3e-4`, `2.5e-5`: at most `decimals` digits after the mantissa's point.
fn scientific(v: f64, decimals: usize) -> String {
    let s = format!("{:.*e}", decimals, v);
    let (m, e) = s.split_once('e').expect("exponent");
    format!("{}e{e}", trim(m.to_string()))
}

/// A value on its own (a last value in a caption): 4 significant digits, scientific below
/// 0.001, a k/M/G suffix from 10,000.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if a < 1e-3 {
        return scientific(v, 2);
    }
    if a >= 1e4 {
        let (div, unit) = if a >= 1e9 {
            (1e9, "G")
        } else if a >= 1e6 {
            (1e6, "M")
        } else {
            (1e3, "k")
        };
        return format!(
            "{}{unit}",
            trim(format!("{:.*}", sig_decimals(v / div, 3), v / div))
        );
    }
    trim(format!("{:.*}", sig_decimals(v, 4), v))
}

/// Decimals needed to tell ticks `step` apart.
fn decimals_for(step: f64) -> usize {
    let mut d = 0;
    let mut s = step;
    while d < 10 && (s - s.round()).abs() > 1e-6 * s.max(1.0) {
        s *= 10.0;
        d += 1;
    }
    d
}

/// Decimals that give `sig` significant digits.
fn sig_decimals(v: f64, sig: i32) -> usize {
    let mag = v.abs().log10().floor() as i32;
    (sig - 1 - mag).max(0) as usize
}

/// Drops trailing zeros after a decimal point (`2.50` → `2.5`, `3.0` → `3`).
fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round() {
        assert_eq!(
            linear_ticks(0.0, 200.0, 5),
            (vec![0.0, 50.0, 100.0, 150.0, 200.0], 50.0)
        );
        let (t, s) = linear_ticks(3.93, 6.31, 5);
        assert_eq!(s, 0.5);
        assert_eq!(t, [4.0, 4.5, 5.0, 5.5, 6.0]);
        assert_eq!(
            linear_ticks(-0.3, 0.25, 6),
            (vec![-0.3, -0.2, -0.1, 0.0, 0.1, 0.2], 0.1)
        );
        assert_eq!(
            linear_ticks(0.0, 0.7, 7).0,
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
        );
        assert_eq!(linear_ticks(1.0, 1.0, 5).0, [1.0]);
    }

    #[test]
    fn log_ticks_by_decades() {
        assert_eq!(log_ticks(4e-5, 1.1e-3, 5), [5e-5, 1e-4, 2e-4, 5e-4, 1e-3]);
        assert_eq!(
            log_ticks(0.9, 1.1e4, 6),
            [1.0, 10.0, 100.0, 1000.0, 10000.0]
        );
        assert_eq!(
            log_ticks(0.002, 5.6, 5),
            [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
        );
        let wide = log_ticks(1e-9, 1e3, 5);
        assert!(wide.len() <= 7 && wide.len() >= 3, "{wide:?}");
        // Under a decade: round linear values.
        assert_eq!(log_ticks(3.9, 6.3, 5), [4.0, 4.5, 5.0, 5.5, 6.0]);
        // Found by fuzzing: a range padded past f64 (to infinity, to 0) walked 2^31 decades
        // (4 GB of ticks) and overflowed; it stops at the finite ones.
        for (lo, hi) in [
            (1.0, f64::INFINITY),
            (0.0, 10.0),
            (0.0, f64::INFINITY),
            (0.5, 1e308),
        ] {
            let t = log_ticks(lo, hi, 8);
            assert!(!t.is_empty() && t.len() <= 10, "{lo}..{hi}: {t:?}");
            assert!(t.iter().all(|v| v.is_finite() && *v > 0.0), "{t:?}");
        }
    }

    #[test]
    fn labels_are_short_and_alike() {
        let f = |ticks: &[f64], step: f64| -> Vec<String> {
            let t = TickFormat::new(ticks, step);
            ticks.iter().map(|v| t.format(*v)).collect()
        };
        assert_eq!(
            f(&[0.0, 50.0, 100.0, 150.0], 50.0),
            ["0", "50", "100", "150"]
        );
        assert_eq!(f(&[4.0, 4.5, 5.0], 0.5), ["4", "4.5", "5"]);
        assert_eq!(f(&[2.5, 5.0, 7.5, 10.0], 2.5), ["2.5", "5", "7.5", "10"]);
        assert_eq!(f(&[-0.1, 0.0, 0.25], 0.05), ["-0.1", "0", "0.25"]);
        assert_eq!(
            f(&[0.0, 2e-4, 4e-4, 1e-3], 2e-4),
            ["0", "2e-4", "4e-4", "1e-3"]
        );
        assert_eq!(f(&[5e-5, 1e-4, 2.5e-4], 0.0), ["5e-5", "1e-4", "2.5e-4"]);
        assert_eq!(
            f(&[0.05, 0.1, 0.2, 0.5, 1.0, 2.0], 0.0),
            ["0.05", "0.1", "0.2", "0.5", "1", "2"]
        );
        assert_eq!(
            f(&[0.0, 2500.0, 5000.0, 7500.0, 10000.0], 2500.0),
            ["0", "2.5k", "5k", "7.5k", "10k"]
        );
        assert_eq!(
            f(&[150000.0, 200000.0, 250000.0], 50000.0),
            ["150k", "200k", "250k"]
        );
        assert_eq!(f(&[1e6, 1.5e6], 5e5), ["1M", "1.5M"]);
    }

    #[test]
    fn values_keep_four_digits() {
        assert_eq!(format_value(4.13718), "4.137");
        assert_eq!(format_value(0.0123456), "0.01235");
        assert_eq!(format_value(210453.6), "210k");
        assert_eq!(format_value(1.0246e-4), "1.02e-4");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(250.0), "250");
    }
}
