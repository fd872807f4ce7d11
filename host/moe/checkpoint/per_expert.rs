//! Layers whose experts are separate tensors, named as Mixtral and Qwen3-MoE name them: dense
//! (bf16, f16 or f32, quantized on load) or NVFP4 as ModelOpt exports it (see the table in
//! [`crate::moe::checkpoint`]).

use safetensors::tensor::Dtype;

use crate::error::Result;
use crate::fp4::{e4m3_decode, e4m3_encode_non_negative, quantize, QuantizedWeights};
use crate::moe::checkpoint::fused::transpose_scales;
use crate::moe::checkpoint::reader::LayerReader;
use crate::moe::checkpoint::tensors::TensorStore;
use crate::moe::checkpoint::WeightLayout;
use crate::moe::config::MoeConfig;
use crate::moe::weights::MoeLayerWeights;
use crate::Fp4Format;

/// How a model family names one layer's router and expert tensors (under
/// `model.layers.{i}.`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExpertNames {
    /// The router's `[E, H]` weight.
    pub(crate) router: &'static str,
    /// The experts' prefix, followed by the expert index and a projection.
    pub(crate) experts: &'static str,
    /// The gate projection `[I, H]`.
    pub(crate) gate: &'static str,
    /// The up projection `[I, H]`.
    pub(crate) up: &'static str,
    /// The down projection `[H, I]`.
    pub(crate) down: &'static str,
}

/// Mixtral's names.
pub(crate) const MIXTRAL: ExpertNames = ExpertNames {
    router: "block_sparse_moe.gate.weight",
    experts: "block_sparse_moe.experts.",
    gate: "w1",
    up: "w3",
    down: "w2",
};

/// Qwen3-MoE's names.
pub(crate) const QWEN3_MOE: ExpertNames = ExpertNames {
    router: "mlp.gate.weight",
    experts: "mlp.experts.",
    gate: "gate_proj",
    up: "up_proj",
    down: "down_proj",
};

fn reader(store: &TensorStore, layer: usize) -> LayerReader<'_> {
    LayerReader::new(store, format!("model.layers.{layer}."))
}

/// The name of expert `expert`'s projection `proj` tensor `part` (`weight`, `weight_scale`…).
fn expert_tensor(names: &ExpertNames, expert: usize, proj: &str, part: &str) -> String {
    format!("{}{expert}.{proj}.{part}", names.experts)
}

/// The layout of layer `layer`'s experts, if it has them in this naming.
pub(crate) fn layout(store: &TensorStore, layer: usize, names: &ExpertNames) -> Option<WeightLayout> {
    let reader = reader(store, layer);
    if !reader.has(&expert_tensor(names, 0, names.gate, "weight")) {
        return None;
    }
    Some(if reader.has(&expert_tensor(names, 0, names.gate, "weight_scale")) {
        WeightLayout::ModelOptNvfp4
    } else {
        WeightLayout::PerExpertDense
    })
}

/// Layer `layer`'s weights in `layout` (one of this module's), checked against `config`. These
/// models have no router or expert biases (zeros).
pub(crate) fn load_layer(
    store: &TensorStore,
    layer: usize,
    names: &ExpertNames,
    layout: WeightLayout,
    config: &MoeConfig,
) -> Result<MoeLayerWeights> {
    let reader = reader(store, layer);
    let (e, h, i) = (config.experts, config.hidden, config.intermediate);
    let router = reader.floats(names.router, &[e, h])?.ok_or_else(|| reader.refuse(names.router, "missing"))?;
    let (gate_up, down) = match layout {
        WeightLayout::ModelOptNvfp4 => {
            if config.format != Fp4Format::Nvfp4 {
                return Err(reader.refuse(
                    &expert_tensor(names, 0, names.gate, "weight"),
                    format!("holds NVFP4 weights but the config asks for {:?}", config.format),
                ));
            }
            (
                modelopt(&reader, names, &[names.gate, names.up], e, i, h)?,
                modelopt(&reader, names, &[names.down], e, h, i)?,
            )
        }
        _ => (
            dense(&reader, names, &[names.gate, names.up], config, i, h)?,
            dense(&reader, names, &[names.down], config, h, i)?,
        ),
    };
    let weights = MoeLayerWeights {
        router: router.into_iter().map(half::bf16::from_f32).collect(),
        router_bias: vec![0.0; e],
        gate_up,
        gate_up_bias: vec![0.0; e * 2 * i],
        down,
        down_bias: vec![0.0; e * h],
    };
    weights.check(config)?;
    Ok(weights)
}

/// Experts whose projection is `projs` (`[rows, k]` each) stacked by rows, quantized to the
/// config's format.
fn dense(
    reader: &LayerReader<'_>,
    names: &ExpertNames,
    projs: &[&str],
    config: &MoeConfig,
    rows: usize,
    k: usize,
) -> Result<QuantizedWeights> {
    let e = config.experts;
    let mut values = Vec::with_capacity(e * projs.len() * rows * k);
    for expert in 0..e {
        for proj in projs {
            let name = expert_tensor(names, expert, proj, "weight");
            values.extend(reader.floats(&name, &[rows, k])?.ok_or_else(|| reader.refuse(&name, "missing"))?);
        }
    }
    let first = expert_tensor(names, 0, projs[0], "weight");
    quantize(config.format, e, projs.len() * rows, k, &values).map_err(|err| reader.refuse(&first, err.to_string()))
}

/// ModelOpt NVFP4 experts whose projection is `projs` (each `[rows, k]`: `weight` u8
/// `[rows, k/2]`, `weight_scale` e4m3 `[rows, k/16]`, `weight_scale_2` f32) stacked by rows.
/// Projections stacked into one expert share one expert scale: where their `weight_scale_2`
/// differ, the larger is kept and the other projection's block scales are multiplied by the
/// ratio (rounded to e4m3), with a warning.
fn modelopt(
    reader: &LayerReader<'_>,
    names: &ExpertNames,
    projs: &[&str],
    experts: usize,
    rows: usize,
    k: usize,
) -> Result<QuantizedWeights> {
    let n = projs.len() * rows;
    let mut codes = Vec::with_capacity(experts * n * k / 2);
    let mut scales = Vec::with_capacity(experts * n * k / 16);
    let mut expert_scales = Vec::with_capacity(experts);
    for expert in 0..experts {
        let mut parts = Vec::with_capacity(projs.len());
        for proj in projs {
            let name = |part| expert_tensor(names, expert, proj, part);
            let part_codes = reader.required_bytes(&name("weight"), &[Dtype::U8], &[rows, k / 2])?;
            let part_scales =
                reader.required_bytes(&name("weight_scale"), &[Dtype::F8_E4M3, Dtype::U8], &[rows, k / 16])?;
            reader.check_scale_bytes(&name("weight_scale"), Fp4Format::Nvfp4, &part_scales)?;
            parts.push((part_codes, part_scales, reader.scale(&name("weight_scale_2"))?));
        }
        let shared = parts.iter().map(|p| p.2).fold(0.0f32, f32::max);
        for (proj, (part_codes, mut part_scales, scale)) in projs.iter().zip(parts) {
            if scale != shared {
                tracing::warn!(
                    "{}: weight_scale_2 {scale} differs from the expert's other projection ({shared}): its block scales are rescaled to share {shared} (rounded to e4m3)",
                    reader.name(&expert_tensor(names, expert, proj, "weight_scale_2"))
                );
                let ratio = if shared > 0.0 { scale / shared } else { 0.0 };
                for byte in &mut part_scales {
                    *byte = e4m3_encode_non_negative(e4m3_decode(*byte) * ratio);
                }
            }
            codes.extend(part_codes);
            scales.extend(part_scales);
        }
        expert_scales.push(shared);
    }
    Ok(QuantizedWeights {
        format: Fp4Format::Nvfp4,
        groups: experts,
        n,
        k,
        codes,
        scales: transpose_scales(&scales, experts, n, k / 16),
        expert_scales,
    })
}
