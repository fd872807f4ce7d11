//! The shape and arithmetic of one MoE layer, and the presets of well-known models.

use stagefit_kernels::params::{activation, gate_up};

use crate::error::{Error, Result};
use crate::Fp4Format;

/// How gate and up rows are arranged in the gate/up projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateUpLayout {
    /// Gate rows `0..I`, then up rows `I..2I` (Mixtral, Qwen).
    Concatenated,
    /// Gate and up rows alternate (gpt-oss).
    Interleaved,
}

/// The activation between the projections.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// `silu(gate) · up`.
    SwiGlu,
    /// gpt-oss: `gate = min(gate, limit)`, `up = clamp(up, ±limit)`,
    /// `(up + 1) · gate · sigmoid(alpha · gate)`.
    GptOss {
        /// Clamp limit (7.0 in gpt-oss).
        limit: f32,
        /// Sigmoid slope (1.702 in gpt-oss).
        alpha: f32,
    },
}

/// One MoE layer's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeConfig {
    /// Experts E.
    pub experts: usize,
    /// Experts per token k.
    pub top_k: usize,
    /// Hidden size H.
    pub hidden: usize,
    /// Expert intermediate size I.
    pub intermediate: usize,
    /// Combine weights: softmax over the k chosen logits (`true`) or over all E (`false`).
    pub renormalize: bool,
    /// Gate/up row arrangement.
    pub gate_up_layout: GateUpLayout,
    /// The activation.
    pub activation: Activation,
    /// Weight format of the experts.
    pub format: Fp4Format,
}

/// A model preset: a layer configuration and the number of MoE layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// Command-line name.
    pub name: &'static str,
    /// MoE layers in the model.
    pub layers: usize,
    /// Each layer's configuration.
    pub config: MoeConfig,
}

/// gpt-oss's clamp limit (its config's `swiglu_limit`).
pub const GPT_OSS_LIMIT: f32 = 7.0;
/// gpt-oss's sigmoid slope (fixed in the model's code).
pub const GPT_OSS_ALPHA: f32 = 1.702;
/// gpt-oss's activation.
pub const GPT_OSS: Activation = Activation::GptOss { limit: GPT_OSS_LIMIT, alpha: GPT_OSS_ALPHA };

/// The presets: gpt-oss-20b, gpt-oss-120b, qwen3-30b-a3b, mixtral-8x7b.
pub fn presets() -> Vec<Preset> {
    let gpt_oss = |experts| MoeConfig {
        experts,
        top_k: 4,
        hidden: 2880,
        intermediate: 2880,
        renormalize: true,
        gate_up_layout: GateUpLayout::Interleaved,
        activation: GPT_OSS,
        format: Fp4Format::Mxfp4,
    };
    let swiglu = |experts, top_k, hidden, intermediate| MoeConfig {
        experts,
        top_k,
        hidden,
        intermediate,
        renormalize: true,
        gate_up_layout: GateUpLayout::Concatenated,
        activation: Activation::SwiGlu,
        format: Fp4Format::Nvfp4,
    };
    vec![
        Preset { name: "gpt-oss-20b", layers: 24, config: gpt_oss(32) },
        Preset { name: "gpt-oss-120b", layers: 36, config: gpt_oss(128) },
        Preset { name: "qwen3-30b-a3b", layers: 48, config: swiglu(128, 8, 2048, 768) },
        Preset { name: "mixtral-8x7b", layers: 32, config: swiglu(8, 2, 4096, 14336) },
    ]
}

/// The largest hidden and intermediate size a layer may have.
pub const MAX_WIDTH: usize = 1 << 20;

impl MoeConfig {
    /// Checks the sizes against what the kernels support, and the activation's constants.
    pub fn validate(&self) -> Result<()> {
        let shape = |what, value, requirement| Err(Error::Shape { what, value, requirement });
        if self.experts == 0 || self.experts > stagefit_kernels::params::MAX_EXPERTS {
            return shape("experts", self.experts, "between 1 and 256");
        }
        if self.top_k == 0 || self.top_k > stagefit_kernels::params::MAX_TOP_K.min(self.experts) {
            return shape("top_k", self.top_k, "between 1 and min(8, experts)");
        }
        if self.hidden == 0 || !self.hidden.is_multiple_of(32) || self.hidden > MAX_WIDTH {
            return shape("hidden", self.hidden, "a positive multiple of 32, at most 2^20");
        }
        if self.intermediate == 0 || !self.intermediate.is_multiple_of(32) || self.intermediate > MAX_WIDTH {
            return shape("intermediate", self.intermediate, "a positive multiple of 32, at most 2^20");
        }
        if let Activation::GptOss { limit, alpha } = self.activation {
            for (what, value) in [("limit", limit), ("alpha", alpha)] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(Error::Activation { what, value });
                }
            }
        }
        Ok(())
    }

    /// E, k, H, I and format in one line, for messages.
    pub fn shape_summary(&self) -> String {
        format!("E={} k={} H={} I={} {}", self.experts, self.top_k, self.hidden, self.intermediate, self.format.name())
    }

    /// The kernels' gate/up layout id.
    pub(crate) fn gate_up_layout_id(&self) -> u32 {
        match self.gate_up_layout {
            GateUpLayout::Concatenated => gate_up::CONCATENATED,
            GateUpLayout::Interleaved => gate_up::INTERLEAVED,
        }
    }

    /// The kernels' activation id and its (limit, alpha).
    pub(crate) fn activation_ids(&self) -> (u32, f32, f32) {
        match self.activation {
            Activation::SwiGlu => (activation::SWIGLU, 0.0, 0.0),
            Activation::GptOss { limit, alpha } => (activation::GPT_OSS, limit, alpha),
        }
    }

    /// FP4 bytes (codes and scales) of one expert's two projections.
    pub fn expert_weight_bytes(&self) -> usize {
        crate::fp4::weight_bytes(self.format, 3 * self.hidden * self.intermediate)
    }
}
