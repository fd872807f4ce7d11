//! FP4 codecs and weight quantization on the host.
//!
//! - e2m1: 1 sign, 2 exponent (bias 1), 1 mantissa bit: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6};
//! - e4m3 (the OCP "fn" variant): 1 sign, 4 exponent (bias 7), 3 mantissa bits, max 448,
//!   NaN = `S.1111.111`, no infinities;
//! - e8m0: an unsigned power of two `2^(code - 127)`, NaN = 255.
//!
//! Encoders round to nearest, ties to the even code, and saturate to the largest finite value.
//! [`quantize`] produces [`QuantizedWeights`] in the natural code order; uploading them packs
//! the codes into the kernels' bit layout (`stagefit_kernels::packing`).

use crate::error::{Error, Result};
use crate::Fp4Format;
use stagefit_kernels::packing::MX_SCALE_CODE_MAX;

/// The value of each e2m1 code, indexed by code.
pub const E2M1_VALUES: [f32; 16] =
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];

/// Largest e2m1 magnitude.
pub const E2M1_MAX: f32 = 6.0;
/// Largest finite e4m3 magnitude.
pub const E4M3_MAX: f32 = 448.0;

/// Bytes of `elements` values quantized to `format`: packed e2m1 codes and their block scales
/// (an NVFP4 expert's f32 scale aside).
pub fn weight_bytes(format: Fp4Format, elements: usize) -> usize {
    elements / 2 + elements / format.scale_block()
}

/// Value of an e2m1 code (low 4 bits of `code`).
pub fn e2m1_decode(code: u8) -> f32 {
    E2M1_VALUES[(code & 0xF) as usize]
}

/// Value of an e4m3 byte; NaN for `0x7F` and `0xFF`.
pub fn e4m3_decode(byte: u8) -> f32 {
    let sign = if byte & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = ((byte >> 3) & 0xF) as i32;
    let man = (byte & 0x7) as f32;
    if exp == 0xF && byte & 0x7 == 0x7 {
        return f32::NAN;
    }
    sign * if exp == 0 { man * 2f32.powi(-9) } else { (1.0 + man / 8.0) * 2f32.powi(exp - 7) }
}

/// Value of an e8m0 byte: `2^(byte - 127)`; NaN for 255.
pub fn e8m0_decode(byte: u8) -> f32 {
    if byte == 255 {
        f32::NAN
    } else {
        2f32.powi(byte as i32 - 127)
    }
}

/// The index of the value in ascending `values` nearest to `x` (`values[0] <= x`), ties to
/// the even index; `x` beyond the last value saturates.
fn nearest_ascending(values: &[f32], x: f32) -> usize {
    let above = values.partition_point(|&v| v < x);
    if above == 0 {
        return 0;
    }
    if above == values.len() {
        return values.len() - 1;
    }
    let (lo, hi) = (above - 1, above);
    let (d_lo, d_hi) = (x - values[lo], values[hi] - x);
    if d_lo < d_hi || (d_lo == d_hi && lo % 2 == 0) {
        lo
    } else {
        hi
    }
}

/// Nearest e2m1 code to `x` (finite), ties to even, saturating at ±6.
pub fn e2m1_encode(x: f32) -> u8 {
    let magnitude = nearest_ascending(&E2M1_VALUES[..8], x.abs()) as u8;
    if x.is_sign_negative() && magnitude != 0 {
        magnitude | 0x8
    } else {
        magnitude
    }
}

/// The 127 non-negative finite e4m3 values, ascending (index = code).
fn e4m3_table() -> &'static [f32; 127] {
    static TABLE: std::sync::OnceLock<[f32; 127]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|code| e4m3_decode(code as u8)))
}

/// Nearest non-negative e4m3 code to `x >= 0` (finite), ties to even, saturating at 448.
pub fn e4m3_encode_non_negative(x: f32) -> u8 {
    nearest_ascending(e4m3_table(), x) as u8
}

/// FP4 weights for `groups` experts of `[n × k]` each, codes in the natural order.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedWeights {
    /// The format.
    pub format: Fp4Format,
    /// Experts.
    pub groups: usize,
    /// Rows per expert (output features).
    pub n: usize,
    /// Columns per expert (the reduction length).
    pub k: usize,
    /// e2m1 codes `[groups][n][k/2]`, low nibble = even K index.
    pub codes: Vec<u8>,
    /// Block scales `[groups][k/block][n]` (e4m3 for NVFP4, e8m0 for MXFP4).
    pub scales: Vec<u8>,
    /// Per-expert f32 scales `[groups]` (NVFP4; all 1.0 for MXFP4).
    pub expert_scales: Vec<f32>,
}

impl QuantizedWeights {
    /// Dequantized value of element `(g, row, col)`.
    pub fn value(&self, g: usize, row: usize, col: usize) -> f32 {
        let (n, k, block) = (self.n, self.k, self.format.scale_block());
        let byte = self.codes[(g * n + row) * (k / 2) + col / 2];
        let code = if col.is_multiple_of(2) { byte & 0xF } else { byte >> 4 };
        let scale_byte = self.scales[(g * (k / block) + col / block) * n + row];
        let scale = match self.format {
            Fp4Format::Nvfp4 => e4m3_decode(scale_byte),
            Fp4Format::Mxfp4 => e8m0_decode(scale_byte),
        };
        e2m1_decode(code) * scale * self.expert_scales[g]
    }

    /// One group's weights dequantized to f32, `[n][k]`.
    pub fn dequantize_group(&self, g: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.n * self.k);
        for row in 0..self.n {
            for col in 0..self.k {
                out.push(self.value(g, row, col));
            }
        }
        out
    }

    /// All weights dequantized to f32, `[groups][n][k]`.
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.groups).flat_map(|g| self.dequantize_group(g)).collect()
    }

    /// Checks that the kernels can use every scale (see [`check_scales`]).
    pub fn check_scales(&self) -> Result<()> {
        check_scales(self.format, &self.scales, &self.expert_scales)
    }
}

/// What is wrong with one block-scale byte of `format`, if anything: the rule
/// [`check_scales`] applies to every byte.
pub fn scale_byte_problem(format: Fp4Format, byte: u8) -> Option<&'static str> {
    match format {
        Fp4Format::Nvfp4 if byte & 0x80 != 0 => Some("a non-negative e4m3 value (NVFP4 block scales are unsigned)"),
        Fp4Format::Nvfp4 if byte == 0x7F => Some("a finite e4m3 value (0x7F is NaN)"),
        Fp4Format::Mxfp4 if byte > MX_SCALE_CODE_MAX => {
            Some("an e8m0 code of at most 160 (2^33), the largest scale the kernels' factor holds (255 is NaN)")
        }
        _ => None,
    }
}

/// Checks block and expert scales: NVFP4 block scales must be non-negative e4m3 values (the
/// format's scales are unsigned) and not NaN; MXFP4 block scales must be e8m0 codes no larger
/// than [`MX_SCALE_CODE_MAX`] (2^33, beyond which the kernels' bf16 factor overflows) and not
/// NaN; expert scales must be finite and non-negative.
pub fn check_scales(format: Fp4Format, scales: &[u8], expert_scales: &[f32]) -> Result<()> {
    if let Some((index, requirement)) =
        scales.iter().enumerate().find_map(|(i, &b)| scale_byte_problem(format, b).map(|r| (i, r)))
    {
        return Err(Error::Scale { buffer: "scales", index, value: format!("{:#04x}", scales[index]), requirement });
    }
    if let Some(index) = expert_scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
        return Err(Error::Scale {
            buffer: "expert_scales",
            index,
            value: expert_scales[index].to_string(),
            requirement: "finite and non-negative",
        });
    }
    Ok(())
}

/// Quantizes `weights` (`[groups][n][k]`, f32) to `format`.
///
/// MXFP4 follows the OCP MX rule: each block of 32 gets the scale `2^(floor(log2 amax) - 2)`
/// (2 being e2m1's largest exponent). NVFP4 gives each expert the f32 scale
/// `amax / (6 · 448)` so that block scales `amax_block / 6` fit e4m3, then encodes each block
/// scale to e4m3 and the elements against the decoded scale.
///
/// ```
/// use stagefit::{fp4::quantize, Fp4Format};
///
/// // Two experts of 16 rows × 64 columns.
/// let w: Vec<f32> = (0..2 * 16 * 64).map(|i| (i % 13) as f32 - 6.0).collect();
/// let q = quantize(Fp4Format::Mxfp4, 2, 16, 64, &w)?;
/// assert_eq!((q.codes.len(), q.scales.len()), (2 * 16 * 64 / 2, 2 * 16 * 64 / 32));
/// // e2m1 holds ±{0, 0.5, 1, 1.5, 2, 3, 4, 6} times the block's scale (here 1): -6 and -4 are
/// // exact, -5 is not.
/// assert_eq!((q.value(0, 0, 0), q.value(0, 0, 2)), (-6.0, -4.0));
/// assert!((q.value(0, 0, 1) + 5.0).abs() == 1.0);
/// # Ok::<(), stagefit::Error>(())
/// ```
pub fn quantize(format: Fp4Format, groups: usize, n: usize, k: usize, weights: &[f32]) -> Result<QuantizedWeights> {
    let block = format.scale_block();
    if k == 0 || !k.is_multiple_of(stagefit_kernels::format::K_CHUNK) {
        return Err(Error::Shape { what: "k", value: k, requirement: "a positive multiple of 32" });
    }
    let needed = groups.checked_mul(n).and_then(|gn| gn.checked_mul(k)).ok_or(Error::Shape {
        what: "groups",
        value: groups,
        requirement: "groups · n · k that fits an address",
    })?;
    if weights.len() != needed {
        return Err(Error::BufferTooSmall { buffer: "weights", needed, actual: weights.len() });
    }
    if let Some(index) = weights.iter().position(|w| !w.is_finite()) {
        return Err(Error::NonFinite { format, index, value: weights[index] });
    }
    let blocks = k / block;
    let mut codes = vec![0u8; groups * n * k / 2];
    let mut scales = vec![0u8; groups * blocks * n];
    let mut expert_scales = vec![1.0f32; groups];
    for g in 0..groups {
        let expert = &weights[g * n * k..(g + 1) * n * k];
        if format == Fp4Format::Nvfp4 {
            let amax = expert.iter().fold(0.0f32, |m, w| m.max(w.abs()));
            expert_scales[g] = if amax > 0.0 { amax / (E2M1_MAX * E4M3_MAX) } else { 1.0 };
            if !expert_scales[g].is_normal() {
                // Weights this small would silently quantize to zeros.
                return Err(Error::Scale {
                    buffer: "weights",
                    index: g,
                    value: format!("expert maximum {amax}"),
                    requirement: "0, or at least 2^-126 · 2688 so that the NVFP4 expert scale is a normal f32",
                });
            }
        }
        for row in 0..n {
            for b in 0..blocks {
                let values = &expert[row * k + b * block..row * k + (b + 1) * block];
                let amax = values.iter().fold(0.0f32, |m, w| m.max(w.abs()));
                let (scale_byte, scale) = match format {
                    Fp4Format::Nvfp4 => {
                        let byte = e4m3_encode_non_negative(amax / E2M1_MAX / expert_scales[g]);
                        (byte, e4m3_decode(byte) * expert_scales[g])
                    }
                    Fp4Format::Mxfp4 => {
                        let exp = if amax > 0.0 { amax.log2().floor() as i32 - 2 } else { -127 };
                        let byte = (exp + 127).clamp(0, 254) as u8;
                        if byte > MX_SCALE_CODE_MAX {
                            return Err(Error::Scale {
                                buffer: "weights",
                                index: (g * n + row) * blocks + b,
                                value: format!("block maximum {amax}"),
                                requirement: "below 2^36, so that the block's e8m0 scale is at most 2^33",
                            });
                        }
                        (byte, e8m0_decode(byte))
                    }
                };
                scales[(g * blocks + b) * n + row] = scale_byte;
                for (i, &w) in values.iter().enumerate() {
                    let code = if scale > 0.0 { e2m1_encode(w / scale) } else { 0 };
                    let col = b * block + i;
                    let byte = &mut codes[(g * n + row) * (k / 2) + col / 2];
                    *byte |= if col.is_multiple_of(2) { code } else { code << 4 };
                }
            }
        }
    }
    Ok(QuantizedWeights { format, groups, n, k, codes, scales, expert_scales })
}
