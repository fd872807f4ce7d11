//! The gated activation between an MoE layer's two projections, written once for the two
//! places that apply it: the activation kernel (`super::moe::activate`) and the grouped GEMM's
//! gated epilogue (`super::tiles::store_pair`), which therefore compute the same bits.

use super::ptx::exp_approx;
use crate::params::activation;

/// `act(gate, up)` for the activation `kind` (one of [`activation`]), with gpt-oss's clamp
/// `limit` and sigmoid slope `alpha`.
#[inline(always)]
pub fn gated(kind: u32, gate: f32, up: f32, limit: f32, alpha: f32) -> f32 {
    if kind == activation::GPT_OSS {
        let gate = gate.min(limit);
        let up = up.max(-limit).min(limit);
        (up + 1.0) * gate / (1.0 + exp_approx(-alpha * gate))
    } else {
        up * gate / (1.0 + exp_approx(-gate))
    }
}
