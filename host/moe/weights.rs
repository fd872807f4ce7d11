//! One MoE layer's weights on the host.

use half::bf16;

use crate::error::{Error, Result};
use crate::fp4::QuantizedWeights;
use crate::moe::config::MoeConfig;

/// The weights of one MoE layer, host side.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeLayerWeights {
    /// Router `[E, H]`.
    pub router: Vec<bf16>,
    /// Router bias `[E]` (zeros where the model has none).
    pub router_bias: Vec<f32>,
    /// Gate/up projection: E experts of `[2I, H]`.
    pub gate_up: QuantizedWeights,
    /// Gate/up bias `[E, 2I]` (zeros where the model has none).
    pub gate_up_bias: Vec<f32>,
    /// Down projection: E experts of `[H, I]`.
    pub down: QuantizedWeights,
    /// Down bias `[E, H]` (zeros where the model has none).
    pub down_bias: Vec<f32>,
}

impl MoeLayerWeights {
    /// Checks every tensor's size and format against `config`.
    pub fn check(&self, config: &MoeConfig) -> Result<()> {
        let (e, h, i) = (config.experts, config.hidden, config.intermediate);
        for (buffer, needed, actual) in [
            ("router", e * h, self.router.len()),
            ("router_bias", e, self.router_bias.len()),
            ("gate_up_bias", e * 2 * i, self.gate_up_bias.len()),
            ("down_bias", e * h, self.down_bias.len()),
        ] {
            if needed != actual {
                return Err(Error::BufferTooSmall { buffer, needed, actual });
            }
        }
        for (name, w, n, k) in [("gate_up", &self.gate_up, 2 * i, h), ("down", &self.down, h, i)] {
            if (w.format, w.groups, w.n, w.k) != (config.format, e, n, k) {
                return Err(Error::WeightsMismatch {
                    expected: format!("{name}: {:?} {e} x [{n} x {k}]", config.format),
                    actual: format!("{:?} {} x [{} x {}]", w.format, w.groups, w.n, w.k),
                });
            }
        }
        Ok(())
    }
}
