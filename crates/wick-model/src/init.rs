//! A seeded standard normal generator for weight initialisation, so that `--seed` fixes
//! the initial model (candle's own CPU randn cannot be seeded).

pub struct Normal {
    rng: wick_io::Rng,
    spare: Option<f64>,
}

impl Normal {
    pub fn new(seed: u64) -> Normal {
        Normal {
            rng: wick_io::Rng::new(seed ^ 0x5851_f42d_4c95_7f2d),
            spare: None,
        }
    }

    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        // 53 bits of SplitMix64 into (0, 1].
        ((self.rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Box–Muller, both values used.
    pub fn sample(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let a = std::f64::consts::TAU * v;
        self.spare = Some(r * a.sin());
        r * a.cos()
    }
}
