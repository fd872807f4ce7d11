//! Model directories: `config.json`, and the weights in `model.safetensors` or in the shards
//! that `model.safetensors.index.json` lists.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::moe::checkpoint::per_expert::{self, ExpertNames};
use crate::moe::checkpoint::tensors::{checkpoint_error, TensorStore};
use crate::moe::checkpoint::{fused, WeightLayout};
use crate::moe::config::{Activation, GateUpLayout, MoeConfig, GPT_OSS_ALPHA, GPT_OSS_LIMIT};
use crate::moe::weights::MoeLayerWeights;
use crate::Fp4Format;

/// The model's config file.
pub const CONFIG_FILE: &str = "config.json";
/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The most layers a model may have.
pub const MAX_LAYERS: usize = 1 << 16;

/// The model families whose MoE layers stagefit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelType {
    /// `gpt_oss`: interleaved gate/up rows, the clamped SwiGLU, biases, MXFP4 experts.
    GptOss,
    /// `mixtral`: SwiGLU, per-expert `w1`/`w3`/`w2`, router `block_sparse_moe.gate`.
    Mixtral,
    /// `qwen3_moe`: SwiGLU, per-expert `gate_proj`/`up_proj`/`down_proj`, router `mlp.gate`.
    Qwen3Moe,
}

impl ModelType {
    /// The `model_type` of `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            ModelType::GptOss => "gpt_oss",
            ModelType::Mixtral => "mixtral",
            ModelType::Qwen3Moe => "qwen3_moe",
        }
    }

    const ALL: [ModelType; 3] = [ModelType::GptOss, ModelType::Mixtral, ModelType::Qwen3Moe];

    /// The per-expert tensor names of the family, where it has them.
    fn expert_names(self) -> Option<&'static ExpertNames> {
        match self {
            ModelType::GptOss => None,
            ModelType::Mixtral => Some(&per_expert::MIXTRAL),
            ModelType::Qwen3Moe => Some(&per_expert::QWEN3_MOE),
        }
    }
}

/// A model directory's MoE layers: its config, which layers are MoE layers, and how their
/// weights are stored. Shards are memory-mapped when a layer first needs them.
///
/// ```no_run
/// # fn main() -> Result<(), stagefit::Error> {
/// use stagefit::moe::checkpoint::MoeModel;
/// let model = MoeModel::open("/models/gpt-oss-20b".as_ref())?;
/// println!("{} {} layers, {:?}", model.model_type().name(), model.layers().len(), model.layout());
/// let first = model.load_layer(model.layers()[0])?; // upload with MoeEngine::upload
/// # Ok(())
/// # }
/// ```
pub struct MoeModel {
    dir: PathBuf,
    model_type: ModelType,
    config: MoeConfig,
    layers: Vec<usize>,
    layout: WeightLayout,
    store: TensorStore,
}

impl MoeModel {
    /// Opens the model in `dir`; dense expert weights are quantized on load to the family's
    /// format (MXFP4 for gpt-oss, NVFP4 for the others).
    pub fn open(dir: &Path) -> Result<MoeModel> {
        MoeModel::open_with(dir, None)
    }

    /// [`MoeModel::open`], quantizing dense expert weights to `dense_format` where given.
    /// Weights stored in an FP4 format load in that format.
    ///
    /// Refused with [`Error::Checkpoint`] naming the file and the key or tensor: a missing or
    /// malformed `config.json`, an unknown `model_type`, a missing index or shard, and an MoE
    /// layer whose experts are not in the checkpoint. A config whose sizes disagree with the
    /// tensors is refused when the layer loads, naming the tensor.
    pub fn open_with(dir: &Path, dense_format: Option<Fp4Format>) -> Result<MoeModel> {
        let config_path = dir.join(CONFIG_FILE);
        let json = read_config(&config_path)?;
        let key = |name: &str| Key { path: &config_path, json: &json, name: name.to_string() };
        let type_name = key("model_type").string()?;
        let model_type = ModelType::ALL.into_iter().find(|t| t.name() == type_name).ok_or_else(|| {
            checkpoint_error(
                &config_path,
                "model_type",
                format!("unknown model type {type_name:?}: stagefit reads gpt_oss, mixtral and qwen3_moe"),
            )
        })?;
        let store = TensorStore::directory(dir)?;
        let layer_count = key("num_hidden_layers").usize()?;
        if layer_count > MAX_LAYERS {
            return Err(key("num_hidden_layers").bad(&format!("at most {MAX_LAYERS}")));
        }
        let (experts, intermediate, layers): (usize, usize, Vec<usize>) = match model_type {
            ModelType::GptOss | ModelType::Mixtral => {
                (key("num_local_experts").usize()?, key("intermediate_size").usize()?, (0..layer_count).collect())
            }
            ModelType::Qwen3Moe => {
                let step = key("decoder_sparse_step").usize_or(1)?.max(1);
                let dense_only = key("mlp_only_layers").usizes_or_empty()?;
                let experts = key("num_experts").usize()?;
                let layers = (0..layer_count)
                    .filter(|l| experts > 0 && !dense_only.contains(l) && (l + 1) % step == 0)
                    .collect();
                (experts, key("moe_intermediate_size").usize()?, layers)
            }
        };
        let first = *layers
            .first()
            .ok_or_else(|| checkpoint_error(&config_path, "num_hidden_layers", "the model has no MoE layers"))?;
        let layout =
            layer_layout(&store, model_type, first).ok_or_else(|| missing_experts(&store, model_type, first))?;
        for &layer in &layers {
            if layer_layout(&store, model_type, layer) != Some(layout) {
                return Err(missing_experts(&store, model_type, layer));
            }
        }
        let family_format = if model_type == ModelType::GptOss { Fp4Format::Mxfp4 } else { Fp4Format::Nvfp4 };
        let format = match layout {
            WeightLayout::GptOssMxfp4 => Fp4Format::Mxfp4,
            WeightLayout::StagefitNvfp4 | WeightLayout::ModelOptNvfp4 => Fp4Format::Nvfp4,
            WeightLayout::FusedDense | WeightLayout::PerExpertDense => dense_format.unwrap_or(family_format),
        };
        let (gate_up_layout, activation, renormalize) = match model_type {
            ModelType::GptOss => (
                GateUpLayout::Interleaved,
                Activation::GptOss { limit: key("swiglu_limit").f32_or(GPT_OSS_LIMIT)?, alpha: GPT_OSS_ALPHA },
                true,
            ),
            ModelType::Mixtral => (GateUpLayout::Concatenated, Activation::SwiGlu, true),
            ModelType::Qwen3Moe => {
                (GateUpLayout::Concatenated, Activation::SwiGlu, key("norm_topk_prob").bool_or(true)?)
            }
        };
        let config = MoeConfig {
            experts,
            top_k: key("num_experts_per_tok").usize()?,
            hidden: key("hidden_size").usize()?,
            intermediate,
            renormalize,
            gate_up_layout,
            activation,
            format,
        };
        config.validate().map_err(|e| checkpoint_error(&config_path, "<config>", e.to_string()))?;
        Ok(MoeModel { dir: dir.to_path_buf(), model_type, config, layers, layout, store })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model family.
    pub fn model_type(&self) -> ModelType {
        self.model_type
    }

    /// Each MoE layer's configuration (the format is the one the experts load in).
    pub fn config(&self) -> &MoeConfig {
        &self.config
    }

    /// The MoE layers' indices, ascending.
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// How the expert weights are stored.
    pub fn layout(&self) -> WeightLayout {
        self.layout
    }

    /// The safetensors files of the checkpoint.
    pub fn files(&self) -> Vec<&Path> {
        self.store.files()
    }

    /// MoE layer `layer`'s weights (`layer` one of [`MoeModel::layers`]).
    pub fn load_layer(&self, layer: usize) -> Result<MoeLayerWeights> {
        if !self.layers.contains(&layer) {
            return Err(checkpoint_error(
                &self.dir.join(CONFIG_FILE),
                "<config>",
                format!("layer {layer} is not one of the model's MoE layers {:?}", self.layers),
            ));
        }
        match self.model_type.expert_names().filter(|_| self.layout.per_expert()) {
            Some(names) => per_expert::load_layer(&self.store, layer, names, self.layout, &self.config),
            None => fused::load_layer(&self.store, layer, &self.config),
        }
    }
}

/// How layer `layer` stores its experts: stacked (any family), else the family's per-expert
/// names.
fn layer_layout(store: &TensorStore, model_type: ModelType, layer: usize) -> Option<WeightLayout> {
    fused::layout(store, layer)
        .or_else(|| model_type.expert_names().and_then(|names| per_expert::layout(store, layer, names)))
}

/// The refusal of an MoE layer whose experts the checkpoint does not hold.
fn missing_experts(store: &TensorStore, model_type: ModelType, layer: usize) -> Error {
    let mut expected = format!("model.layers.{layer}.mlp.experts.gate_up_proj_blocks");
    if let Some(names) = model_type.expert_names() {
        expected.push_str(&format!(" or model.layers.{layer}.{}0.{}.weight", names.experts, names.gate));
    }
    checkpoint_error(
        store.location(),
        &expected,
        format!("missing: MoE layer {layer} has no experts in the checkpoint, or not in the other layers' layout"),
    )
}

fn read_config(path: &Path) -> Result<Value> {
    let bad = |problem: String| checkpoint_error(path, "<file>", problem);
    let text = crate::files::read_small_text(path, MAX_CONFIG_BYTES).map_err(bad)?;
    serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))
}

/// One key of `config.json`.
struct Key<'a> {
    path: &'a Path,
    json: &'a Value,
    name: String,
}

impl Key<'_> {
    fn value(&self) -> Option<&Value> {
        self.json.get(&self.name).filter(|v| !v.is_null())
    }

    fn bad(&self, expected: &str) -> Error {
        let found = self.value().map_or("missing".into(), |v| format!("{v}"));
        checkpoint_error(self.path, &self.name, format!("{found}, expected {expected}"))
    }

    fn string(&self) -> Result<String> {
        self.value().and_then(Value::as_str).map(str::to_string).ok_or_else(|| self.bad("a string"))
    }

    fn usize(&self) -> Result<usize> {
        self.value().and_then(Value::as_u64).map(|v| v as usize).ok_or_else(|| self.bad("a non-negative integer"))
    }

    fn usize_or(&self, default: usize) -> Result<usize> {
        if self.value().is_none() {
            return Ok(default);
        }
        self.usize()
    }

    fn usizes_or_empty(&self) -> Result<Vec<usize>> {
        let Some(value) = self.value() else { return Ok(Vec::new()) };
        value
            .as_array()
            .and_then(|items| items.iter().map(|v| v.as_u64().map(|v| v as usize)).collect())
            .ok_or_else(|| self.bad("a list of layer indices"))
    }

    fn f32_or(&self, default: f32) -> Result<f32> {
        let Some(value) = self.value() else { return Ok(default) };
        value.as_f64().map(|v| v as f32).ok_or_else(|| self.bad("a number"))
    }

    fn bool_or(&self, default: bool) -> Result<bool> {
        let Some(value) = self.value() else { return Ok(default) };
        value.as_bool().ok_or_else(|| self.bad("true or false"))
    }
}
