//! Learning rate per step: nanoGPT's linear warmup, then cosine decay to a floor (or constant).

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScheduleKind {
    Cosine,
    Linear,
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: u64,
    /// The step at which decay reaches `min_lr` (nanoGPT's lr_decay_iters).
    pub decay_steps: u64,
}

impl Schedule {
    /// The rate for 0-based step `it`, as nanoGPT's get_lr computes it.
    pub fn lr(&self, it: u64) -> f64 {
        if it < self.warmup {
            return self.lr * (it + 1) as f64 / (self.warmup + 1) as f64;
        }
        if self.kind == ScheduleKind::Constant {
            return self.lr;
        }
        if it >= self.decay_steps {
            return self.min_lr;
        }
        let ratio = (it - self.warmup) as f64 / (self.decay_steps - self.warmup).max(1) as f64;
        let coeff = match self.kind {
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()),
            _ => 1.0 - ratio,
        };
        self.min_lr + coeff * (self.lr - self.min_lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup: 100,
            decay_steps: 2000,
        };
        assert!((s.lr(0) - 1e-3 / 101.0).abs() < 1e-15);
        assert!((s.lr(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-15);
        assert!((s.lr(100) - 1e-3).abs() < 1e-15);
        assert!(
            (s.lr(1050) - 5.5e-4).abs() < 1e-12,
            "half way: {}",
            s.lr(1050)
        );
        assert_eq!(s.lr(2000), 1e-4);
        assert_eq!(s.lr(5000), 1e-4);
        let c = Schedule {
            kind: ScheduleKind::Constant,
            ..s
        };
        assert_eq!(c.lr(1500), 1e-3);
        let l = Schedule {
            kind: ScheduleKind::Linear,
            ..s
        };
        assert!((l.lr(1050) - 5.5e-4).abs() < 1e-12);
    }
}
