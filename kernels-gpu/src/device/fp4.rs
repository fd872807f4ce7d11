//! FP4 decoding in registers: e2m1 codes to bf16, block scales to bf16.
//!
//! Every product formed here is exact in bf16: an e2m1 value has 2 significant bits and an
//! e4m3 scale 4, so their product has at most 6; an e8m0 scale is a power of two.

use super::ptx::{fma_bf16x2, prmt};
use crate::format::NVFP4;

/// bf16 2^126 in both lanes.
const TWO_POW_126_X2: u32 = 0x7E80_7E80;
/// bf16 -0.0 in both lanes: the additive identity that keeps the sign of a zero product.
const NEG_ZERO_X2: u32 = 0x8000_8000;

/// Dequantizes the eight e2m1 codes of `word` (byte `j` holds K-elements `2j` (low nibble)
/// and `2j+1`) times `scale_x2` (one bf16 scale in both lanes) into four bf16x2 values;
/// result `j` holds byte `j`'s two values, the even one in the low half.
#[inline(always)]
pub fn dequant_word(word: u32, scale_x2: u32) -> [u32; 4] {
    let high_nibbles = word >> 4;
    let mut out = [0u32; 4];
    let mut j = 0;
    while j < 4 {
        // Byte 0 of `x` gets byte j of `word` (its low nibble is the even code), byte 2 gets
        // byte j of `word >> 4` (its low nibble is the odd code).
        let x = prmt(word, high_nibbles, j as u32 | ((4 + j as u32) << 8));
        // Magnitude bits e1 e0 m land on bf16 bits 8..6 and the sign on bit 15: that bf16 is
        // the e2m1 value times 2^-126 (the e = 0 code 0.5 becomes a subnormal, as it must).
        let tiny = ((x & 0x0007_0007) << 6) | ((x & 0x0008_0008) << 12);
        let value = fma_bf16x2(tiny, TWO_POW_126_X2, NEG_ZERO_X2);
        out[j] = fma_bf16x2(value, scale_x2, NEG_ZERO_X2);
        j += 1;
    }
    out
}

/// The bf16 value of a block-scale byte, in both lanes: e4m3 for NVFP4, e8m0 for MXFP4.
/// NaN codes are rejected on the host and are not special-cased here.
#[inline(always)]
pub fn scale_x2<const FMT: u32>(byte: u32) -> u32 {
    let bf16 = if FMT == NVFP4 { e4m3_to_bf16(byte) } else { e8m0_to_bf16(byte) };
    bf16 | (bf16 << 16)
}

#[inline(always)]
fn e4m3_to_bf16(byte: u32) -> u32 {
    let sign = (byte & 0x80) << 8;
    let exp = (byte >> 3) & 0xF;
    let man = byte & 0x7;
    let magnitude = if exp != 0 {
        // Rebias 7 -> 127 and move the 3 mantissa bits to the top of bf16's 7.
        ((exp + 120) << 7) | (man << 4)
    } else {
        // Subnormal: man · 2^-9, exact in f32 and in bf16.
        ((man as f32) * (1.0 / 512.0)).to_bits() >> 16
    };
    sign | magnitude
}

#[inline(always)]
fn e8m0_to_bf16(byte: u32) -> u32 {
    if byte == 0 {
        0x0040 // 2^-127, a bf16 subnormal
    } else {
        byte << 7
    }
}
