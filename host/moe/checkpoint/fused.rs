//! Layers whose experts are stacked in one tensor per projection, under
//! `model.layers.{i}.mlp.`: gpt-oss's MXFP4 layout, stagefit's NVFP4 layout, and dense
//! weights (see the table in [`crate::moe::checkpoint`]).

use half::bf16;
use safetensors::tensor::Dtype;

use crate::error::Result;
use crate::fp4::{quantize, QuantizedWeights};
use crate::moe::checkpoint::reader::LayerReader;
use crate::moe::checkpoint::tensors::TensorStore;
use crate::moe::checkpoint::WeightLayout;
use crate::moe::config::MoeConfig;
use crate::moe::weights::MoeLayerWeights;
use crate::Fp4Format;

/// The prefix of layer `layer`'s tensors.
pub(crate) fn prefix(layer: usize) -> String {
    format!("model.layers.{layer}.mlp.")
}

/// The layout of layer `layer`'s gate/up experts, if it has them in this naming.
pub(crate) fn layout(store: &TensorStore, layer: usize) -> Option<WeightLayout> {
    let reader = LayerReader::new(store, prefix(layer));
    [
        ("experts.gate_up_proj_blocks", WeightLayout::GptOssMxfp4),
        ("experts.gate_up_proj_nvfp4", WeightLayout::StagefitNvfp4),
        ("experts.gate_up_proj", WeightLayout::FusedDense),
    ]
    .into_iter()
    .find_map(|(short, layout)| reader.has(short).then_some(layout))
}

/// Layer `layer`'s weights, checked against `config`.
pub(crate) fn load_layer(store: &TensorStore, layer: usize, config: &MoeConfig) -> Result<MoeLayerWeights> {
    let reader = LayerReader::new(store, prefix(layer));
    let (e, h, i) = (config.experts, config.hidden, config.intermediate);
    let weights = MoeLayerWeights {
        router: reader
            .floats("router.weight", &[e, h])?
            .ok_or_else(|| reader.refuse("router.weight", "missing"))?
            .into_iter()
            .map(bf16::from_f32)
            .collect(),
        router_bias: reader.floats("router.bias", &[e])?.unwrap_or_else(|| vec![0.0; e]),
        gate_up: experts(&reader, "gate_up_proj", config, 2 * i, h)?,
        gate_up_bias: reader.floats("experts.gate_up_proj_bias", &[e, 2 * i])?.unwrap_or_else(|| vec![0.0; e * 2 * i]),
        down: experts(&reader, "down_proj", config, h, i)?,
        down_bias: reader.floats("experts.down_proj_bias", &[e, h])?.unwrap_or_else(|| vec![0.0; e * h]),
    };
    weights.check(config)?;
    Ok(weights)
}

/// One projection's expert weights (`[E, n, k]`) in whichever layout is present.
fn experts(reader: &LayerReader<'_>, proj: &str, config: &MoeConfig, n: usize, k: usize) -> Result<QuantizedWeights> {
    let e = config.experts;
    let experts = |s: &str| format!("experts.{proj}{s}");
    let format_mismatch = |found: Fp4Format| {
        reader.refuse(&experts(""), format!("holds {found:?} weights but the config asks for {:?}", config.format))
    };
    if let Some(codes) = reader.bytes(&experts("_blocks"), &[Dtype::U8], &[e, n, k / 32, 16])? {
        if config.format != Fp4Format::Mxfp4 {
            return Err(format_mismatch(Fp4Format::Mxfp4));
        }
        let scales = reader.required_bytes(&experts("_scales"), &[Dtype::U8], &[e, n, k / 32])?;
        reader.check_scale_bytes(&experts("_scales"), Fp4Format::Mxfp4, &scales)?;
        return Ok(QuantizedWeights {
            format: Fp4Format::Mxfp4,
            groups: e,
            n,
            k,
            codes,
            scales: transpose_scales(&scales, e, n, k / 32),
            expert_scales: vec![1.0; e],
        });
    }
    if let Some(codes) = reader.bytes(&experts("_nvfp4"), &[Dtype::U8], &[e, n, k / 2])? {
        if config.format != Fp4Format::Nvfp4 {
            return Err(format_mismatch(Fp4Format::Nvfp4));
        }
        let scales = reader.required_bytes(&experts("_nvfp4_scales"), &[Dtype::U8], &[e, k / 16, n])?;
        reader.check_scale_bytes(&experts("_nvfp4_scales"), Fp4Format::Nvfp4, &scales)?;
        let expert_scale = experts("_nvfp4_expert_scale");
        let expert_scales =
            reader.floats(&expert_scale, &[e])?.ok_or_else(|| reader.refuse(&expert_scale, "missing"))?;
        if let Some(index) = expert_scales.iter().position(|s| *s < 0.0) {
            return Err(reader.refuse(
                &expert_scale,
                format!("element {index} is {}: expert scales must be non-negative", expert_scales[index]),
            ));
        }
        return Ok(QuantizedWeights { format: Fp4Format::Nvfp4, groups: e, n, k, codes, scales, expert_scales });
    }
    if let Some(dense) = reader.floats(&experts(""), &[e, n, k])? {
        return quantize(config.format, e, n, k, &dense).map_err(|err| reader.refuse(&experts(""), err.to_string()));
    }
    Err(reader.refuse(
        &experts(""),
        format!(
            "missing: none of `{0}_blocks` (MXFP4), `{0}_nvfp4` (NVFP4) or `{0}` (dense) is present",
            reader.name(&experts(""))
        ),
    ))
}

/// Each group's `[rows][cols]` matrix of scale bytes transposed to `[cols][rows]`: checkpoint
/// order `[groups][n][blocks]` to the kernels' `[groups][blocks][n]` with `(rows, cols) =
/// (n, blocks)`, and back with `(blocks, n)`.
pub(crate) fn transpose_scales(scales: &[u8], groups: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut transposed = vec![0u8; scales.len()];
    for g in 0..groups {
        for row in 0..rows {
            for col in 0..cols {
                transposed[(g * cols + col) * rows + row] = scales[(g * rows + row) * cols + col];
            }
        }
    }
    transposed
}
