//! MoE-layer weights in safetensors files.
//!
//! Tensor names start with `model.layers.{i}.mlp.` and the expert tensors with
//! `model.layers.{i}.mlp.experts.`. Three layouts of the expert weights are read; the first
//! one present wins:
//!
//! | layout | tensors (for `gate_up_proj`; `down_proj` alike with `[E, H, I…]`) |
//! | --- | --- |
//! | gpt-oss MXFP4 | `gate_up_proj_blocks` u8 `[E, 2I, H/32, 16]` (e2m1 pairs, low nibble first), `gate_up_proj_scales` u8 `[E, 2I, H/32]` (e8m0) |
//! | stagefit NVFP4 | `gate_up_proj_nvfp4` u8 `[E, 2I, H/2]`, `gate_up_proj_nvfp4_scales` u8 `[E, H/16, 2I]` (e4m3, the kernels' scale-row-major order), `gate_up_proj_nvfp4_expert_scale` f32 `[E]` |
//! | dense | `gate_up_proj` bf16 or f32 `[E, 2I, H]`, quantized on load to the config's format |
//!
//! Optional in every layout: `gate_up_proj_bias` `[E, 2I]`, `down_proj_bias` `[E, H]`, and the
//! router `router.weight` `[E, H]` with `router.bias` `[E]` (bf16 or f32). Rows of `gate_up`
//! follow the config's [`GateUpLayout`](crate::moe::GateUpLayout) (gpt-oss interleaves them).
//!
//! [`write_layer`] writes the MXFP4 layout for MXFP4 weights and the NVFP4 layout for NVFP4.

use std::collections::HashMap;
use std::path::Path;

use half::bf16;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::fp4::{quantize, QuantizedWeights};
use crate::moe::config::MoeConfig;
use crate::moe::weights::MoeLayerWeights;
use crate::Fp4Format;

fn bad(tensor: &str, problem: impl Into<String>) -> Error {
    Error::Checkpoint { tensor: tensor.to_string(), problem: problem.into() }
}

/// A read-only view of a safetensors file (memory-mapped).
pub struct Checkpoint {
    map: memmap2::Mmap,
}

impl Checkpoint {
    /// Opens `path`, which must be a regular file (a FIFO or a device such as `/dev/zero`
    /// is refused before it is read).
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let file = crate::files::open_regular_file(path).map_err(|problem| bad("<file>", problem))?;
        // SAFETY: the map is read-only; a file changed underneath it while loading is outside
        // what this loader promises (as for any reader of a file being rewritten).
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad("<file>", format!("{}: {e}", path.display())))?;
        Checkpoint::check(&map)?;
        Ok(Checkpoint { map })
    }

    fn check(bytes: &[u8]) -> Result<()> {
        SafeTensors::deserialize(bytes)
            .map(|_| ())
            .map_err(|e| bad("<file>", format!("not a valid safetensors file: {e}")))
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.map).expect("checked when opened")
    }

    /// Layers `i` that have expert weights, ascending.
    pub fn layers(&self) -> Vec<usize> {
        let mut layers: Vec<usize> = self
            .tensors()
            .names()
            .iter()
            .filter_map(|n| n.strip_prefix("model.layers.")?.split_once(".mlp.experts.")?.0.parse().ok())
            .collect();
        layers.sort_unstable();
        layers.dedup();
        layers
    }

    /// Layer `layer`'s weights, checked against `config`.
    pub fn load_layer(&self, layer: usize, config: &MoeConfig) -> Result<MoeLayerWeights> {
        config.validate()?;
        let st = self.tensors();
        let reader = Reader { st: &st, prefix: format!("model.layers.{layer}.mlp.") };
        let (e, h, i) = (config.experts, config.hidden, config.intermediate);
        let weights = MoeLayerWeights {
            router: reader.floats("router.weight", &[e, h])?.map_or_else(
                || Err(bad(&reader.name("router.weight"), "missing")),
                |v| Ok(v.into_iter().map(bf16::from_f32).collect()),
            )?,
            router_bias: reader.floats("router.bias", &[e])?.unwrap_or_else(|| vec![0.0; e]),
            gate_up: reader.experts("gate_up_proj", config, 2 * i, h)?,
            gate_up_bias: reader
                .floats("experts.gate_up_proj_bias", &[e, 2 * i])?
                .unwrap_or_else(|| vec![0.0; e * 2 * i]),
            down: reader.experts("down_proj", config, h, i)?,
            down_bias: reader.floats("experts.down_proj_bias", &[e, h])?.unwrap_or_else(|| vec![0.0; e * h]),
        };
        weights.check(config)?;
        Ok(weights)
    }
}

struct Reader<'a> {
    st: &'a SafeTensors<'a>,
    prefix: String,
}

impl Reader<'_> {
    fn name(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    /// The tensor, if present, after checking its dtype is one of `dtypes` and its shape.
    fn view(&self, short: &str, dtypes: &[Dtype], shape: &[usize]) -> Result<Option<TensorView<'_>>> {
        let name = self.name(short);
        let Ok(view) = self.st.tensor(&name) else { return Ok(None) };
        if !dtypes.contains(&view.dtype()) {
            return Err(bad(&name, format!("dtype {:?}, expected one of {dtypes:?}", view.dtype())));
        }
        if view.shape() != shape {
            return Err(bad(&name, format!("shape {:?}, expected {shape:?}", view.shape())));
        }
        Ok(Some(view))
    }

    fn bytes(&self, short: &str, shape: &[usize]) -> Result<Option<Vec<u8>>> {
        Ok(self.view(short, &[Dtype::U8], shape)?.map(|v| v.data().to_vec()))
    }

    fn required_bytes(&self, short: &str, shape: &[usize]) -> Result<Vec<u8>> {
        self.bytes(short, shape)?.ok_or_else(|| bad(&self.name(short), "missing"))
    }

    /// A bf16 or f32 tensor as f32s, every value finite (refused naming the first that is not).
    fn floats(&self, short: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        let Some(view) = self.view(short, &[Dtype::BF16, Dtype::F32], shape)? else { return Ok(None) };
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            _ => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        };
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(&self.name(short), format!("element {index} is {}: values must be finite", values[index])));
        }
        Ok(Some(values))
    }

    /// Refuses the first block-scale byte of `format` that the kernels cannot use; `index` is
    /// its position in the tensor as stored.
    fn check_scale_bytes(&self, short: &str, format: Fp4Format, scales: &[u8]) -> Result<()> {
        match scales.iter().enumerate().find_map(|(i, &b)| crate::fp4::scale_byte_problem(format, b).map(|r| (i, r))) {
            None => Ok(()),
            Some((index, requirement)) => Err(bad(
                &self.name(short),
                format!("element {index} is {:#04x}: it must be {requirement}", scales[index]),
            )),
        }
    }

    /// One projection's expert weights (`[E, n, k]`) in whichever layout is present.
    fn experts(&self, proj: &str, config: &MoeConfig, n: usize, k: usize) -> Result<QuantizedWeights> {
        let e = config.experts;
        let experts = |s: &str| format!("experts.{proj}{s}");
        let format_mismatch = |found: Fp4Format| {
            bad(
                &self.name(&experts("")),
                format!("holds {found:?} weights but the config asks for {:?}", config.format),
            )
        };
        if let Some(codes) = self.bytes(&experts("_blocks"), &[e, n, k / 32, 16])? {
            if config.format != Fp4Format::Mxfp4 {
                return Err(format_mismatch(Fp4Format::Mxfp4));
            }
            let scales = self.required_bytes(&experts("_scales"), &[e, n, k / 32])?;
            self.check_scale_bytes(&experts("_scales"), Fp4Format::Mxfp4, &scales)?;
            // [E][n][k/32] -> the kernels' [E][k/32][n].
            let blocks = k / 32;
            let mut reordered = vec![0u8; scales.len()];
            for g in 0..e {
                for row in 0..n {
                    for b in 0..blocks {
                        reordered[(g * blocks + b) * n + row] = scales[(g * n + row) * blocks + b];
                    }
                }
            }
            return Ok(QuantizedWeights {
                format: Fp4Format::Mxfp4,
                groups: e,
                n,
                k,
                codes,
                scales: reordered,
                expert_scales: vec![1.0; e],
            });
        }
        if let Some(codes) = self.bytes(&experts("_nvfp4"), &[e, n, k / 2])? {
            if config.format != Fp4Format::Nvfp4 {
                return Err(format_mismatch(Fp4Format::Nvfp4));
            }
            let scales = self.required_bytes(&experts("_nvfp4_scales"), &[e, k / 16, n])?;
            self.check_scale_bytes(&experts("_nvfp4_scales"), Fp4Format::Nvfp4, &scales)?;
            let expert_scale = experts("_nvfp4_expert_scale");
            let expert_scales: Vec<f32> = self
                .view(&expert_scale, &[Dtype::F32], &[e])?
                .ok_or_else(|| bad(&self.name(&expert_scale), "missing"))?
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(index) = expert_scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
                return Err(bad(
                    &self.name(&expert_scale),
                    format!(
                        "element {index} is {}: expert scales must be finite and non-negative",
                        expert_scales[index]
                    ),
                ));
            }
            return Ok(QuantizedWeights { format: Fp4Format::Nvfp4, groups: e, n, k, codes, scales, expert_scales });
        }
        if let Some(dense) = self.floats(&experts(""), &[e, n, k])? {
            return quantize(config.format, e, n, k, &dense)
                .map_err(|err| bad(&self.name(&experts("")), err.to_string()));
        }
        Err(bad(
            &self.name(&experts("")),
            format!(
                "missing: none of `{0}_blocks` (MXFP4), `{0}_nvfp4` (NVFP4) or `{0}` (dense) is present",
                experts("")
            ),
        ))
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
                let mut scales = vec![0u8; q.scales.len()];
                for e in 0..g {
                    for row in 0..n {
                        for b in 0..blocks {
                            scales[(e * n + row) * blocks + b] = q.scales[(e * blocks + b) * n + row];
                        }
                    }
                }
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
                .map_err(|e| bad(name, e.to_string()))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    safetensors::serialize(views, None).map_err(|e| bad("<file>", e.to_string()))
}
