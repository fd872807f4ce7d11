//! FP4 decoding in registers: packed e2m1 codes and a block scale to exact bf16 operands.
//!
//! Per packed word (8 codes): four rotations, five logic operations and four bf16x2
//! multiplies (see [`crate::packing`]); per block scale, one integer multiply (MXFP4) or an
//! integer multiply and two bf16x2 multiplies (NVFP4). Every product is exact in bf16: an e2m1
//! value has 2 significant bits and an e4m3 scale 4; an e8m0 scale is a power of two.

use super::ptx::fma_bf16x2;
use crate::format::NVFP4;
use crate::packing::{bf16_pow2, e4m3_scaled_down_bits, e8m0_factor_bits, template_pair, E4M3_STEP};

/// bf16 -0.0 in both lanes: the additive identity that keeps the sign of a zero product.
const NEG_ZERO_X2: u32 = 0x8000_8000;

/// `2^E4M3_STEP` in both bf16 lanes.
const E4M3_STEP_X2: u32 = bf16_pow2(E4M3_STEP) * 0x0001_0001;

/// Pair `pair` of a packed `word` times `factor_x2` (a block scale as [`scale_factor_x2`]
/// returns it): one bf16x2 operand, times `2^-ACCUMULATOR_SHIFT`.
#[inline(always)]
pub fn dequant_pair(word: u32, pair: usize, factor_x2: u32) -> u32 {
    fma_bf16x2(template_pair(word, pair), factor_x2, NEG_ZERO_X2)
}

/// Dequantizes the eight codes of a device word (see [`crate::packing`]) into four bf16x2
/// operands times `2^-ACCUMULATOR_SHIFT`, result `p` being pair `p`: pairs 0 and 1 (the chunk's first 16 K-elements) times
/// `factors_x2[0]`, pairs 2 and 3 (its second 16) times `factors_x2[1]`. MXFP4 passes one
/// factor twice (a 32-element block per chunk), NVFP4 those of its two 16-element blocks (each
/// as [`scale_factor_x2`] returns it).
#[inline(always)]
pub fn dequant_word(word: u32, factors_x2: [u32; 2]) -> [u32; 4] {
    let mut out = [0u32; 4];
    let mut pair = 0;
    while pair < 4 {
        out[pair] = dequant_pair(word, pair, factors_x2[pair / 2]);
        pair += 1;
    }
    out
}

/// `scale · 2^SCALE_FACTOR_EXP` in both bf16 lanes, for a block-scale byte: a non-negative
/// e4m3 for NVFP4, an e8m0 code of at most `MX_SCALE_CODE_MAX` for MXFP4 (the
/// host refuses other bytes).
#[inline(always)]
pub fn scale_factor_x2<const FMT: u32>(byte: u32) -> u32 {
    if FMT == NVFP4 {
        let scaled_down = e4m3_scaled_down_bits(byte) * 0x0001_0001;
        let half_way = fma_bf16x2(scaled_down, E4M3_STEP_X2, NEG_ZERO_X2);
        fma_bf16x2(half_way, E4M3_STEP_X2, NEG_ZERO_X2)
    } else {
        e8m0_factor_bits(byte) * 0x0001_0001
    }
}
