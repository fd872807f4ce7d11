//! Small model directories in each layout stagefit reads: `config.json`, an index and one
//! shard per MoE layer, with the weights a load must give back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use stagefit::fp4::{quantize, QuantizedWeights};
use stagefit::moe::checkpoint::{write_layer, WeightLayout, INDEX_FILE};
use stagefit::moe::{Activation, GateUpLayout, MoeConfig, MoeLayerWeights, GPT_OSS};
use stagefit::rng::SplitMix64;
use stagefit::Fp4Format;

/// The layouts the tests write, each with its model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirLayout {
    /// gpt_oss, MXFP4 `_blocks`/`_scales`.
    GptOssMxfp4,
    /// gpt_oss, stagefit's `_nvfp4` tensors.
    StagefitNvfp4,
    /// mixtral, per-expert bf16 `w1`/`w3`/`w2`.
    MixtralBf16,
    /// qwen3_moe, per-expert f16 `gate_proj`/`up_proj`/`down_proj`, layer 1 dense.
    Qwen3F16,
    /// mixtral, ModelOpt NVFP4 per-expert tensors.
    MixtralModelOpt,
}

impl DirLayout {
    pub const ALL: [DirLayout; 5] = [
        DirLayout::GptOssMxfp4,
        DirLayout::StagefitNvfp4,
        DirLayout::MixtralBf16,
        DirLayout::Qwen3F16,
        DirLayout::MixtralModelOpt,
    ];

    /// What `MoeModel::layout` must report.
    pub fn weight_layout(self) -> WeightLayout {
        match self {
            DirLayout::GptOssMxfp4 => WeightLayout::GptOssMxfp4,
            DirLayout::StagefitNvfp4 => WeightLayout::StagefitNvfp4,
            DirLayout::MixtralBf16 | DirLayout::Qwen3F16 => WeightLayout::PerExpertDense,
            DirLayout::MixtralModelOpt => WeightLayout::ModelOptNvfp4,
        }
    }
}

/// A written directory: its path, the config a load must derive, and each MoE layer's
/// expected weights.
pub struct ModelDir {
    pub dir: PathBuf,
    pub config: MoeConfig,
    pub layers: Vec<(usize, MoeLayerWeights)>,
}

const EXPERTS: usize = 4;
const TOP_K: usize = 2;
const HIDDEN: usize = 128;
const INTERMEDIATE: usize = 64;

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn serialize(tensors: &Tensors) -> Vec<u8> {
    let views: HashMap<String, TensorView<'_>> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| (name.clone(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// Writes shards (one per entry of `shards`, each a list of tensors) and the index naming them.
fn write_shards(dir: &Path, shards: &[Tensors]) {
    let mut weight_map = serde_json::Map::new();
    for (i, tensors) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards.len());
        std::fs::write(dir.join(&file), serialize(tensors)).unwrap();
        for (name, ..) in tensors {
            weight_map.insert(name.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": weight_map });
    std::fs::write(dir.join(INDEX_FILE), serde_json::to_string_pretty(&index).unwrap()).unwrap();
}

/// The tensors of a serialized safetensors file.
fn tensors_of(bytes: &[u8]) -> Tensors {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect()
}

fn uniform(rng: &mut SplitMix64, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0) * scale).collect()
}

/// Writes a model in `layout` to a fresh directory named after `tag`.
pub fn write_model_dir(layout: DirLayout, tag: &str, seed: u64) -> ModelDir {
    let dir = std::env::temp_dir().join(format!("stagefit-model-{tag}-{layout:?}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let gpt_oss = matches!(layout, DirLayout::GptOssMxfp4 | DirLayout::StagefitNvfp4);
    let model_type = match layout {
        _ if gpt_oss => "gpt_oss",
        DirLayout::Qwen3F16 => "qwen3_moe",
        _ => "mixtral",
    };
    let config = MoeConfig {
        experts: EXPERTS,
        top_k: TOP_K,
        hidden: HIDDEN,
        intermediate: INTERMEDIATE,
        renormalize: true,
        gate_up_layout: if gpt_oss { GateUpLayout::Interleaved } else { GateUpLayout::Concatenated },
        activation: if gpt_oss { GPT_OSS } else { Activation::SwiGlu },
        format: if layout == DirLayout::GptOssMxfp4 { Fp4Format::Mxfp4 } else { Fp4Format::Nvfp4 },
    };
    let config_json = match model_type {
        "gpt_oss" => serde_json::json!({
            "model_type": "gpt_oss", "num_hidden_layers": 2, "num_local_experts": EXPERTS,
            "num_experts_per_tok": TOP_K, "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE,
            "swiglu_limit": 7.0, "quantization_config": { "quant_method": "mxfp4" }
        }),
        "mixtral" => serde_json::json!({
            "model_type": "mixtral", "num_hidden_layers": 2, "num_local_experts": EXPERTS,
            "num_experts_per_tok": TOP_K, "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE
        }),
        _ => serde_json::json!({
            "model_type": "qwen3_moe", "num_hidden_layers": 3, "num_experts": EXPERTS, "num_experts_per_tok": TOP_K,
            "hidden_size": HIDDEN, "moe_intermediate_size": INTERMEDIATE, "intermediate_size": 4 * HIDDEN,
            "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [1]
        }),
    };
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config_json).unwrap()).unwrap();
    let moe_layers: Vec<usize> = if layout == DirLayout::Qwen3F16 { vec![0, 2] } else { vec![0, 1] };
    let mut rng = SplitMix64::new(seed);
    let mut shards = Vec::new();
    let mut layers = Vec::new();
    for &layer in &moe_layers {
        let (tensors, weights) = match layout {
            DirLayout::GptOssMxfp4 | DirLayout::StagefitNvfp4 => {
                let w = crate::common::random_moe_weights(&config, seed + layer as u64);
                (tensors_of(&write_layer(layer, &w).unwrap()), w)
            }
            DirLayout::MixtralBf16 | DirLayout::Qwen3F16 => per_expert_dense(layout, layer, &config, &mut rng),
            DirLayout::MixtralModelOpt => modelopt(layer, &config, &mut rng),
        };
        shards.push(tensors);
        layers.push((layer, weights));
    }
    write_shards(&dir, &shards);
    ModelDir { dir, config, layers }
}

/// Router and dense experts in bf16 (Mixtral names) or f16 (Qwen3 names), and the weights a
/// load quantizing to NVFP4 gives.
fn per_expert_dense(
    layout: DirLayout,
    layer: usize,
    c: &MoeConfig,
    rng: &mut SplitMix64,
) -> (Tensors, MoeLayerWeights) {
    let (e, h, i) = (c.experts, c.hidden, c.intermediate);
    let (router_name, experts, [gate, up, down], dtype) = match layout {
        DirLayout::MixtralBf16 => {
            ("block_sparse_moe.gate.weight", "block_sparse_moe.experts.", ["w1", "w3", "w2"], Dtype::BF16)
        }
        _ => ("mlp.gate.weight", "mlp.experts.", ["gate_proj", "up_proj", "down_proj"], Dtype::F16),
    };
    // Values rounded to the stored dtype, as the load will see them.
    let store = |v: Vec<f32>| -> (Vec<f32>, Vec<u8>) {
        match dtype {
            Dtype::BF16 => {
                let b: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
                (b.iter().map(|x| x.to_f32()).collect(), b.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
            _ => {
                let b: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
                (b.iter().map(|x| x.to_f32()).collect(), b.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
        }
    };
    let prefix = format!("model.layers.{layer}.");
    let mut tensors = Tensors::new();
    let (router, router_bytes) = store(uniform(rng, e * h, 2.0 / (h as f32).sqrt()));
    tensors.push((format!("{prefix}{router_name}"), dtype, vec![e, h], router_bytes));
    let (mut gate_up, mut down_values) = (Vec::new(), Vec::new());
    for j in 0..e {
        for (proj, rows, k) in [(gate, i, h), (up, i, h), (down, h, i)] {
            let (values, bytes) = store(uniform(rng, rows * k, 1.7 / (k as f32).sqrt()));
            tensors.push((format!("{prefix}{experts}{j}.{proj}.weight"), dtype, vec![rows, k], bytes));
            if proj == down {
                down_values.extend(values)
            } else {
                gate_up.extend(values)
            }
        }
    }
    let weights = MoeLayerWeights {
        router: router.iter().map(|&x| bf16::from_f32(x)).collect(),
        router_bias: vec![0.0; e],
        gate_up: quantize(c.format, e, 2 * i, h, &gate_up).unwrap(),
        gate_up_bias: vec![0.0; e * 2 * i],
        down: quantize(c.format, e, h, i, &down_values).unwrap(),
        down_bias: vec![0.0; e * h],
    };
    (tensors, weights)
}

/// Scales in the kernels' order `[groups][k/16][n]` as one expert's `[rows][k/16]` for rows
/// `first..first + rows`.
fn expert_scales_rows(q: &QuantizedWeights, g: usize, first: usize, rows: usize) -> Vec<u8> {
    let blocks = q.k / 16;
    let mut out = Vec::with_capacity(rows * blocks);
    for row in first..first + rows {
        for b in 0..blocks {
            out.push(q.scales[(g * blocks + b) * q.n + row]);
        }
    }
    out
}

/// ModelOpt NVFP4 per-expert tensors (Mixtral names) of random NVFP4 weights, which a load
/// gives back exactly.
fn modelopt(layer: usize, c: &MoeConfig, rng: &mut SplitMix64) -> (Tensors, MoeLayerWeights) {
    let (e, h, i) = (c.experts, c.hidden, c.intermediate);
    let gate_up = quantize(Fp4Format::Nvfp4, e, 2 * i, h, &uniform(rng, e * 2 * i * h, 0.15)).unwrap();
    let down = quantize(Fp4Format::Nvfp4, e, h, i, &uniform(rng, e * h * i, 0.2)).unwrap();
    let router: Vec<bf16> = uniform(rng, e * h, 0.2).into_iter().map(bf16::from_f32).collect();
    let prefix = format!("model.layers.{layer}.block_sparse_moe.");
    let mut tensors: Tensors = vec![(
        format!("{prefix}gate.weight"),
        Dtype::BF16,
        vec![e, h],
        router.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )];
    for j in 0..e {
        for (proj, q, first, rows) in [("w1", &gate_up, 0, i), ("w3", &gate_up, i, i), ("w2", &down, 0, h)] {
            let k = q.k;
            let codes = q.codes[(j * q.n + first) * k / 2..(j * q.n + first + rows) * k / 2].to_vec();
            let name = |part: &str| format!("{prefix}experts.{j}.{proj}.{part}");
            tensors.push((name("weight"), Dtype::U8, vec![rows, k / 2], codes));
            tensors.push((
                name("weight_scale"),
                Dtype::F8_E4M3,
                vec![rows, k / 16],
                expert_scales_rows(q, j, first, rows),
            ));
            tensors.push((name("weight_scale_2"), Dtype::F32, vec![], q.expert_scales[j].to_le_bytes().to_vec()));
            tensors.push((name("input_scale"), Dtype::F32, vec![], 1.0f32.to_le_bytes().to_vec()));
        }
    }
    let weights = MoeLayerWeights {
        router,
        router_bias: vec![0.0; e],
        gate_up,
        gate_up_bias: vec![0.0; e * 2 * i],
        down,
        down_bias: vec![0.0; e * h],
    };
    (tensors, weights)
}
