//! FP4 decoding in registers: packed e2m1 codes and a block scale to exact bf16 operands.
//!
//! Per packed word (8 codes): four rotations, five logic operations and four bf16x2
//! multiplies (see [`crate::packing`]); per block scale, one integer multiply (MXFP4) or an
//! integer multiply and two bf16x2 multiplies (NVFP4). Every product is exact in bf16: an e2m1
//! value has 2 significant bits and an e4m3 scale 4; an e8m0 scale is a power of two.

use super::ptx::fma_bf16x2;
use crate::format::NVFP4;
#[cfg(stagefit_wgmma)]
use crate::packing::PAIR_SOURCES;
use crate::packing::{bf16_pow2, e4m3_scaled_down_bits, e8m0_factor_bits, template_pair, E4M3_STEP};

/// bf16 -0.0 in both lanes: the additive identity that keeps the sign of a zero product.
const NEG_ZERO_X2: u32 = 0x8000_8000;

/// `2^E4M3_STEP` in both bf16 lanes.
const E4M3_STEP_X2: u32 = bf16_pow2(E4M3_STEP) * 0x0001_0001;

/// Dequantizes the eight packed e2m1 codes of `word` times `factor_x2` (a block scale as
/// [`scale_factor_x2`] returns it) into four bf16x2 operands; result `p` holds K-elements
/// `2p` (low half) and `2p + 1` of the word, times `2^-ACCUMULATOR_SHIFT`.
#[inline(always)]
pub fn dequant_word(word: u32, factor_x2: u32) -> [u32; 4] {
    let mut out = [0u32; 4];
    let mut pair = 0;
    while pair < 4 {
        out[pair] = fma_bf16x2(template_pair(word, pair), factor_x2, NEG_ZERO_X2);
        pair += 1;
    }
    out
}

/// How one pair of a packed word is read when the pair is known only at run time: the two
/// rotations and masks of [`PAIR_SOURCES`], kept in registers (the `wgmma` family's lanes
/// each keep one pair of every word).
#[cfg(stagefit_wgmma)]
#[derive(Clone, Copy)]
pub struct PairSource {
    rotations: [u32; 2],
    masks: [u32; 2],
}

#[cfg(stagefit_wgmma)]
impl PairSource {
    /// The source of pair `pair` (below 4) of every word.
    #[inline(always)]
    pub fn new(pair: usize) -> PairSource {
        let mut source = PairSource { rotations: [0; 2], masks: [0; 2] };
        let mut p = 0;
        while p < 4 {
            if p == pair {
                let [(r0, m0), (r1, m1)] = PAIR_SOURCES[p];
                source = PairSource { rotations: [r0, r1], masks: [m0, m1] };
            }
            p += 1;
        }
        source
    }

    /// This pair of `word` (K-elements `2·pair`, `2·pair + 1` of its eight) times `factor_x2`,
    /// as [`dequant_word`] computes it.
    #[inline(always)]
    pub fn dequant(self, word: u32, factor_x2: u32) -> u32 {
        let [r0, r1] = self.rotations;
        let [m0, m1] = self.masks;
        let template = (word.rotate_left(r0) & m0) | (word.rotate_left(r1) & m1);
        fma_bf16x2(template, factor_x2, NEG_ZERO_X2)
    }
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
