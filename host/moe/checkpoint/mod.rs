//! MoE-layer weights in safetensors checkpoints: a model directory ([`MoeModel`]: its
//! `config.json` and one file or index-listed shards) or one file of stacked-expert layers
//! ([`Checkpoint`]).
//!
//! Five layouts of the expert weights are read; tensor names are under `model.layers.{i}.`.
//!
//! | layout ([`WeightLayout`]) | tensors (for the gate/up projection; down alike with `[E, H, I…]`) |
//! | --- | --- |
//! | gpt-oss MXFP4 | `mlp.experts.gate_up_proj_blocks` u8 `[E, 2I, H/32, 16]` (e2m1 pairs, low nibble first), `…_scales` u8 `[E, 2I, H/32]` (e8m0) |
//! | stagefit NVFP4 | `mlp.experts.gate_up_proj_nvfp4` u8 `[E, 2I, H/2]`, `…_nvfp4_scales` u8 `[E, H/16, 2I]` (e4m3, the kernels' scale-row-major order), `…_nvfp4_expert_scale` f32 `[E]` |
//! | stacked dense | `mlp.experts.gate_up_proj` bf16, f16 or f32 `[E, 2I, H]`, quantized on load |
//! | per-expert dense | Mixtral `block_sparse_moe.experts.{j}.w1.weight` (gate) and `w3` (up) `[I, H]`, `w2` (down) `[H, I]`; Qwen3-MoE `mlp.experts.{j}.gate_proj.weight`, `up_proj`, `down_proj`; bf16, f16 or f32, quantized on load |
//! | ModelOpt NVFP4 | the per-expert names, each with `weight` u8 `[I, H/2]` (e2m1 pairs, low nibble first), `weight_scale` e4m3 `[I, H/16]`, `weight_scale_2` f32 (one value) |
//!
//! The stacked layouts may also hold `mlp.experts.gate_up_proj_bias` `[E, 2I]`,
//! `mlp.experts.down_proj_bias` `[E, H]`, and the router `mlp.router.weight` `[E, H]` with
//! `mlp.router.bias` `[E]` (bf16, f16 or f32); the per-expert layouts' router is Mixtral's
//! `block_sparse_moe.gate.weight` or Qwen3-MoE's `mlp.gate.weight`, with no biases. Rows of
//! gate/up follow the config's [`GateUpLayout`](crate::moe::GateUpLayout): gpt-oss interleaves
//! them, the per-expert layouts stack gate over up. A ModelOpt expert's gate and up share one
//! expert scale (`weight_scale_2`); where the file's two differ, the up or gate block scales
//! are rescaled to the larger, with a warning.
//!
//! [`write_layer`] writes the gpt-oss layout for MXFP4 weights and the stagefit layout for
//! NVFP4.

mod fused;
mod model;
mod per_expert;
mod reader;
mod tensors;

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::Result;
use crate::moe::config::MoeConfig;
use crate::moe::weights::MoeLayerWeights;
use crate::Fp4Format;
use fused::transpose_scales;
use tensors::{checkpoint_error, TensorStore};

pub use model::{ModelType, MoeModel, CONFIG_FILE, MAX_LAYERS};
pub use tensors::{INDEX_FILE, SINGLE_FILE};

/// How a checkpoint stores its expert weights (the table in the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightLayout {
    /// gpt-oss's `_blocks`/`_scales` MXFP4 tensors.
    GptOssMxfp4,
    /// stagefit's `_nvfp4` tensors.
    StagefitNvfp4,
    /// One dense tensor per projection, all experts stacked.
    FusedDense,
    /// Dense tensors per expert (Mixtral, Qwen3-MoE).
    PerExpertDense,
    /// ModelOpt's NVFP4 tensors per expert.
    ModelOptNvfp4,
}

impl WeightLayout {
    /// Whether the experts are separate tensors.
    fn per_expert(self) -> bool {
        matches!(self, WeightLayout::PerExpertDense | WeightLayout::ModelOptNvfp4)
    }

    /// A short description, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            WeightLayout::GptOssMxfp4 => "gpt-oss MXFP4",
            WeightLayout::StagefitNvfp4 => "stagefit NVFP4",
            WeightLayout::FusedDense => "stacked dense experts, quantized on load",
            WeightLayout::PerExpertDense => "per-expert dense tensors, quantized on load",
            WeightLayout::ModelOptNvfp4 => "ModelOpt NVFP4 per-expert tensors",
        }
    }
}

/// One safetensors file of stacked-expert layers, memory-mapped, read with a config the caller
/// gives. A whole model directory (its config and shards) is a [`MoeModel`].
pub struct Checkpoint {
    store: TensorStore,
}

impl Checkpoint {
    /// Opens `path`, which must be a regular file (a FIFO or a device such as `/dev/zero` is
    /// refused before it is read). A file that is one shard of a sharded checkpoint (listed by
    /// the `model.safetensors.index.json` beside it, with other shards) is refused: it holds
    /// only some layers, and the directory is opened with [`MoeModel::open`].
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let store = TensorStore::file(path)?;
        if let Some(dir) = path.parent().filter(|d| d.join(INDEX_FILE).is_file()) {
            if let Ok(sharded) = TensorStore::directory(dir) {
                let canonical = |p: &Path| p.canonicalize().ok();
                let is_listed = sharded.files().iter().any(|f| canonical(f) == canonical(path));
                if is_listed && sharded.files().len() > 1 {
                    return Err(checkpoint_error(
                        path,
                        "<file>",
                        format!(
                            "one of {} shards listed by {}: open the model directory (MoeModel::open, `moe-demo --model {}`)",
                            sharded.files().len(),
                            dir.join(INDEX_FILE).display(),
                            dir.display()
                        ),
                    ));
                }
            }
        }
        Ok(Checkpoint { store })
    }

    /// Layers `i` that have stacked expert weights, ascending.
    pub fn layers(&self) -> Vec<usize> {
        let mut layers: Vec<usize> = self
            .store
            .names()
            .filter_map(|n| n.strip_prefix("model.layers.")?.split_once(".mlp.experts.")?.0.parse().ok())
            .collect();
        layers.sort_unstable();
        layers.dedup();
        layers
    }

    /// Layer `layer`'s weights, checked against `config`.
    pub fn load_layer(&self, layer: usize, config: &MoeConfig) -> Result<MoeLayerWeights> {
        config.validate()?;
        fused::load_layer(&self.store, layer, config)
    }
}

/// Serializes one layer's weights as `model.layers.{layer}.mlp.*` tensors: the gpt-oss layout
/// for MXFP4 experts, the stagefit NVFP4 layout for NVFP4; router and biases in f32.
pub fn write_layer(layer: usize, w: &MoeLayerWeights) -> Result<Vec<u8>> {
    let prefix = format!("model.layers.{layer}.mlp.");
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (e, i2, h) = (w.gate_up.groups, w.gate_up.n, w.gate_up.k);
    owned.push((
        format!("{prefix}router.weight"),
        Dtype::BF16,
        vec![e, h],
        w.router.iter().flat_map(|x| x.to_le_bytes()).collect(),
    ));
    owned.push((format!("{prefix}router.bias"), Dtype::F32, vec![e], f32_bytes(&w.router_bias)));
    owned.push((format!("{prefix}experts.gate_up_proj_bias"), Dtype::F32, vec![e, i2], f32_bytes(&w.gate_up_bias)));
    owned.push((format!("{prefix}experts.down_proj_bias"), Dtype::F32, vec![e, w.down.n], f32_bytes(&w.down_bias)));
    for (proj, q) in [("gate_up_proj", &w.gate_up), ("down_proj", &w.down)] {
        let base = format!("{prefix}experts.{proj}");
        let (g, n, k) = (q.groups, q.n, q.k);
        match q.format {
            Fp4Format::Mxfp4 => {
                let blocks = k / 32;
                let scales = transpose_scales(&q.scales, g, blocks, n);
                owned.push((format!("{base}_blocks"), Dtype::U8, vec![g, n, blocks, 16], q.codes.clone()));
                owned.push((format!("{base}_scales"), Dtype::U8, vec![g, n, blocks], scales));
            }
            Fp4Format::Nvfp4 => {
                owned.push((format!("{base}_nvfp4"), Dtype::U8, vec![g, n, k / 2], q.codes.clone()));
                owned.push((format!("{base}_nvfp4_scales"), Dtype::U8, vec![g, k / 16, n], q.scales.clone()));
                owned.push((format!("{base}_nvfp4_expert_scale"), Dtype::F32, vec![g], f32_bytes(&q.expert_scales)));
            }
        }
    }
    let views = owned
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| checkpoint_error(Path::new("<memory>"), name, e.to_string()))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    safetensors::serialize(views, None).map_err(|e| checkpoint_error(Path::new("<memory>"), "<file>", e.to_string()))
}
