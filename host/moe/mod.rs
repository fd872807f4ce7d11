//! Mixture-of-Experts layers built on the grouped GEMM.
//!
//! `forward` runs, all on the GPU and all in Rust kernels: router logits → top-k and combine
//! weights → a stable permutation of the assignments by expert (offsets for the grouped GEMMs)
//! → gather → gate/up grouped GEMM → activation (SwiGLU or gpt-oss's clamped variant, with the
//! gate/up bias) → down grouped GEMM → weighted combine (with the down bias) back to token
//! order. [`MoeEngine::capture_decode`] captures a whole step of layers into a CUDA graph
//! ([`DecodeGraph`]) that replays it without the CPU's launch path.

pub mod checkpoint;
pub mod config;
pub mod graph;
pub(crate) mod kernels;
pub mod layer;
pub mod reference;
pub mod weights;

pub use checkpoint::{MoeModel, WeightLayout};
pub use config::{presets, Activation, GateUpLayout, MoeConfig, Preset, GPT_OSS, GPT_OSS_ALPHA, GPT_OSS_LIMIT};
pub use graph::DecodeGraph;
pub use layer::{ForwardVariants, MoeEngine, MoeLayer, MoeWorkspace, Routing, LAYER_STEPS};
pub use weights::MoeLayerWeights;
