//! [`LossScaler`]: dynamic loss scaling for fp16 products, with torch.amp.GradScaler's rules.
//! fp16 flushes gradients below about 6e-8 to zero; multiplying the loss by a large scale
//! before the backward pass lifts them into range, and the update divides it out again. The
//! scale grows while steps stay finite and backs off when a gradient overflows.

use serde::{Deserialize, Serialize};

/// The scale and how many finite steps in a row it has seen (GradScaler's `_scale` and
/// `_growth_tracker`), kept in the checkpoint so that a resumed run scales as the first did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub growth_tracker: u64,
}

impl LossScaler {
    /// GradScaler's defaults: init_scale 2^16, growth_factor 2, backoff_factor 0.5,
    /// growth_interval 2000.
    pub const INIT_SCALE: f64 = 65536.0;
    pub const GROWTH_INTERVAL: u64 = 2000;

    pub fn new() -> LossScaler {
        LossScaler {
            scale: Self::INIT_SCALE,
            growth_tracker: 0,
        }
    }

    /// After a step: an overflow (inf/NaN among the gradients) halves the scale and restarts
    /// the count (the step is skipped by the caller); otherwise the count grows, and at the
    /// growth interval the scale doubles.
    pub fn update(&mut self, overflow: bool) {
        if overflow {
            self.scale *= 0.5;
            self.growth_tracker = 0;
        } else {
            self.growth_tracker += 1;
            if self.growth_tracker == Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.growth_tracker = 0;
            }
        }
    }
}

impl Default for LossScaler {
    fn default() -> LossScaler {
        LossScaler::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_grad_scalers_schedule() {
        let mut s = LossScaler::new();
        for _ in 0..1999 {
            s.update(false);
        }
        assert_eq!((s.scale, s.growth_tracker), (65536.0, 1999));
        s.update(false);
        assert_eq!((s.scale, s.growth_tracker), (131072.0, 0));
        s.update(false);
        s.update(true);
        assert_eq!((s.scale, s.growth_tracker), (65536.0, 0));
        s.update(true);
        assert_eq!(s.scale, 32768.0);
    }
}
