//! Test data shared by the integration tests: random grouped-GEMM problems and their CPU
//! references.
#![allow(dead_code)] // each test binary uses its own subset

pub mod model_dirs;

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};
use half::bf16;
use stagefit::fp4::{quantize, QuantizedWeights};
use stagefit::reference;
use stagefit::rng::SplitMix64;
use stagefit::Fp4Format;

/// A grouped GEMM problem on the host, with its reference result.
pub struct HostProblem {
    pub name: String,
    pub n: usize,
    pub k: usize,
    pub offsets: Vec<u32>,
    pub a: Vec<bf16>,
    pub weights: QuantizedWeights,
    pub reference: Vec<f64>,
}

impl HostProblem {
    pub fn rows(&self) -> usize {
        *self.offsets.last().unwrap() as usize
    }
}

pub use stagefit::gemm::offsets_from_sizes;

/// A random problem: activations uniform in [-1, 1), weights uniform with a magnitude that
/// varies by expert and by row (so block scales differ), never zero.
pub fn random_problem(name: &str, format: Fp4Format, sizes: &[usize], n: usize, k: usize, seed: u64) -> HostProblem {
    let mut rng = SplitMix64::new(seed);
    let offsets = offsets_from_sizes(sizes).expect("group sizes that fit 32 bits");
    let rows = *offsets.last().unwrap() as usize;
    let a: Vec<bf16> = (0..rows * k).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
    let groups = sizes.len();
    let mut w = Vec::with_capacity(groups * n * k);
    for g in 0..groups {
        for _row in 0..n {
            let magnitude = 2f32.powi(rng.below(7) as i32 - 3) * (1.0 + g as f32 * 0.25);
            for _ in 0..k {
                w.push(rng.uniform(-magnitude, magnitude));
            }
        }
    }
    let weights = quantize(format, groups, n, k, &w).expect("quantizing random weights");
    drop(w);
    let a_f32: Vec<f32> = a.iter().map(|x| x.to_f32()).collect();
    let reference = reference::grouped_gemm(&a_f32, &weights.dequantize(), &offsets, n, k);
    HostProblem { name: name.to_string(), n, k, offsets, a, weights, reference }
}

/// Random host weights for one MoE layer: weights quantized from uniform values scaled so that
/// activations stay near unit size, router and biases uniform.
pub fn random_moe_weights(config: &stagefit::moe::MoeConfig, seed: u64) -> stagefit::moe::MoeLayerWeights {
    let mut rng = SplitMix64::new(seed);
    let (e, h, i) = (config.experts, config.hidden, config.intermediate);
    let mut dense = |n: usize, k: usize| {
        let w: Vec<f32> = (0..e * n * k).map(|_| rng.uniform(-1.0, 1.0) * 1.7 / (k as f32).sqrt()).collect();
        quantize(config.format, e, n, k, &w).expect("quantizing")
    };
    let gate_up = dense(2 * i, h);
    let down = dense(h, i);
    stagefit::moe::MoeLayerWeights {
        router: (0..e * h).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0) * 2.0 / (h as f32).sqrt())).collect(),
        router_bias: rng.vec(e, -0.5, 0.5),
        gate_up,
        gate_up_bias: rng.vec(e * 2 * i, -0.1, 0.1),
        down,
        down_bias: rng.vec(e * h, -0.1, 0.1),
    }
}

/// Reports a skipped test on the terminal. libtest captures `println!`/`eprintln!` of passing
/// tests, so the line goes straight to the process's stderr, where `cargo test` shows it.
pub fn report_skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {reason}");
}

/// The GPU every GPU test runs on: device 0's context and its default stream, or `None`
/// (with the skip reported, see [`report_skip`]) where no CUDA driver is present. Every GPU
/// test starts with `let Some((ctx, stream)) = gpu("its name") else { return };`.
pub fn gpu(test: &str) -> Option<(Arc<CudaContext>, Arc<CudaStream>)> {
    if !stagefit::device::driver_present() {
        report_skip(test, "no CUDA driver (libcuda) on this machine");
        return None;
    }
    let ctx = stagefit::device::context(0).expect("a context on device 0");
    let stream = ctx.default_stream();
    Some((ctx, stream))
}

/// A small layer shaped like gpt-oss (interleaved gate/up, its activation, MXFP4, renormalized
/// top-k), with `experts` experts and top-`top_k`.
pub fn small_gpt_oss(experts: usize, top_k: usize) -> stagefit::moe::MoeConfig {
    stagefit::moe::MoeConfig {
        experts,
        top_k,
        hidden: 256,
        intermediate: 128,
        renormalize: true,
        gate_up_layout: stagefit::moe::GateUpLayout::Interleaved,
        activation: stagefit::moe::GPT_OSS,
        format: Fp4Format::Mxfp4,
    }
}

/// A tune-cache entry for `groups` experts of `[n × k]` at `rows_bucket`, choosing `tactic` at
/// `stages`.
pub fn tune_entry(
    format: &str,
    (groups, n, k): (usize, usize, usize),
    rows_bucket: usize,
    tactic: &str,
    stages: usize,
) -> stagefit::tuned::TuneEntry {
    stagefit::tuned::TuneEntry {
        format: format.into(),
        groups,
        n,
        k,
        rows_bucket,
        tactic: tactic.into(),
        stages,
        time_us: 1.0,
        heuristic: String::new(),
        heuristic_us: 1.0,
        timings: Vec::new(),
    }
}
