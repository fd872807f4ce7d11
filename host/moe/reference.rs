//! The MoE layer on the CPU: routing in f64, and the layer output for a given routing with
//! the GPU's bf16 rounding points (after each projection and after the activation).

use half::bf16;

use crate::moe::config::{Activation, GateUpLayout, MoeConfig};
use crate::moe::weights::MoeLayerWeights;

/// Router logits `[T, E]` in f64.
pub fn router_logits(config: &MoeConfig, w: &MoeLayerWeights, x: &[bf16], tokens: usize) -> Vec<f64> {
    let (e, h) = (config.experts, config.hidden);
    let mut logits = vec![0.0; tokens * e];
    for t in 0..tokens {
        for j in 0..e {
            let dot: f64 = (0..h).map(|c| x[t * h + c].to_f64() * w.router[j * h + c].to_f64()).sum();
            logits[t * e + j] = dot + w.router_bias[j] as f64;
        }
    }
    logits
}

/// Top-k experts of one token's logits and their combine weights: larger logits first in the
/// IEEE total order, NaN after every number, ties to the lower index (the kernels' rule,
/// `stagefit_kernels::routing`).
pub fn top_k(config: &MoeConfig, logits: &[f64]) -> (Vec<u32>, Vec<f64>) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| {
        let (la, lb) = (logits[a], logits[b]);
        la.is_nan().cmp(&lb.is_nan()).then(lb.total_cmp(&la)).then(a.cmp(&b))
    });
    let ids: Vec<u32> = order[..config.top_k].iter().map(|&i| i as u32).collect();
    let max_all = logits[order[0]];
    let denominator: f64 = if config.renormalize {
        ids.iter().map(|&i| (logits[i as usize] - max_all).exp()).sum()
    } else {
        logits.iter().map(|l| (l - max_all).exp()).sum()
    };
    let weights = ids.iter().map(|&i| (logits[i as usize] - max_all).exp() / denominator).collect();
    (ids, weights)
}

fn round_bf16(x: f64) -> f64 {
    bf16::from_f64(x).to_f64()
}

/// The layer output `[T, H]` for the routing `ids`/`weights` (`[T, k]` each), computing each
/// assignment's expert in f64 and rounding to bf16 where the GPU stores bf16.
pub fn forward(config: &MoeConfig, w: &MoeLayerWeights, x: &[bf16], ids: &[u32], weights: &[f32]) -> Vec<f64> {
    let (h, i, k) = (config.hidden, config.intermediate, config.top_k);
    let tokens = ids.len() / k;
    let mut out = vec![0.0f64; tokens * h];
    let mut experts: std::collections::HashMap<u32, (Vec<f32>, Vec<f32>)> = std::collections::HashMap::new();
    for t in 0..tokens {
        let xt = &x[t * h..(t + 1) * h];
        let mut acc = vec![0.0f64; h];
        for r in 0..k {
            let e = ids[t * k + r];
            let (gu, dn) = experts
                .entry(e)
                .or_insert_with(|| (w.gate_up.dequantize_group(e as usize), w.down.dequantize_group(e as usize)));
            let h1: Vec<f64> = (0..2 * i)
                .map(|row| {
                    let dot: f64 =
                        xt.iter().zip(&gu[row * h..(row + 1) * h]).map(|(a, b)| a.to_f64() * *b as f64).sum();
                    round_bf16(dot) + w.gate_up_bias[e as usize * 2 * i + row] as f64
                })
                .collect();
            let a2: Vec<f64> = (0..i)
                .map(|j| {
                    let (g, u) = match config.gate_up_layout {
                        GateUpLayout::Interleaved => (h1[2 * j], h1[2 * j + 1]),
                        GateUpLayout::Concatenated => (h1[j], h1[i + j]),
                    };
                    round_bf16(match config.activation {
                        Activation::SwiGlu => u * g / (1.0 + (-g).exp()),
                        Activation::GptOss { limit, alpha } => {
                            let (limit, alpha) = (limit as f64, alpha as f64);
                            let g = g.min(limit);
                            let u = u.clamp(-limit, limit);
                            (u + 1.0) * g / (1.0 + (-alpha * g).exp())
                        }
                    })
                })
                .collect();
            for (col, slot) in acc.iter_mut().enumerate() {
                let dot: f64 = a2.iter().zip(&dn[col * i..(col + 1) * i]).map(|(a, b)| a * *b as f64).sum();
                *slot += weights[t * k + r] as f64 * (round_bf16(dot) + w.down_bias[e as usize * h + col] as f64);
            }
        }
        out[t * h..(t + 1) * h].copy_from_slice(&acc);
    }
    out
}
