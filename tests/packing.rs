//! The packed code layout and the scale arithmetic of `stagefit_kernels::packing`, on the CPU:
//! packing is a bijection, each device word's pairs are the chunk's K-elements that
//! `chunk_pair_k` names and come out of their rotations on the template's bits, and
//! the kernels' bf16 arithmetic (emulated exactly in f32) gives `value · scale · 2^-shift`
//! for every code and every scale the host accepts.

use stagefit::fp4::{check_scales, e2m1_decode, e4m3_decode, e8m0_decode};
use stagefit::rng::SplitMix64;
use stagefit::Fp4Format;
use stagefit_kernels::packing::*;

/// The template bits of one code in the low half.
fn template_of(code: u32) -> u32 {
    let mut bits = 0;
    for (code_bit, template_bit) in CODE_BIT_TO_TEMPLATE_BIT.iter().enumerate() {
        bits |= ((code >> code_bit) & 1) << template_bit;
    }
    bits
}

fn random_words(count: usize) -> Vec<u32> {
    let mut rng = SplitMix64::new(11);
    let mut words: Vec<u32> = (0..count).map(|_| rng.next_u64() as u32).collect();
    words.extend((0..32).map(|b| 1u32 << b));
    words.extend([0, u32::MAX]);
    words
}

fn random_chunks(count: usize) -> Vec<[u32; 4]> {
    let words = random_words(4 * count);
    let mut chunks: Vec<[u32; 4]> = words.chunks_exact(4).map(|w| [w[0], w[1], w[2], w[3]]).collect();
    // Every single set bit, in every word of a chunk.
    chunks.extend((0..128).map(|b| {
        let mut chunk = [0u32; 4];
        chunk[b / 32] = 1 << (b % 32);
        chunk
    }));
    chunks
}

#[test]
fn packing_is_a_bijection() {
    for natural in random_words(100_000) {
        assert_eq!(unpack_word(pack_word(natural)), natural, "{natural:#010x}");
        assert_eq!(pack_word(unpack_word(natural)), natural, "{natural:#010x}");
    }
    for natural in random_chunks(25_000) {
        assert_eq!(unpack_chunk(pack_chunk(natural)), natural, "{natural:08x?}");
        assert_eq!(pack_chunk(unpack_chunk(natural)), natural, "{natural:08x?}");
    }
    let mut bytes: Vec<u8> = (0..64u32).map(|i| (i * 37 + 5) as u8).collect();
    let original = bytes.clone();
    pack_codes(&mut bytes);
    assert_ne!(bytes, original);
    unpack_codes(&mut bytes);
    assert_eq!(bytes, original);
}

#[test]
fn each_pair_comes_out_on_the_template() {
    for natural in random_words(100_000) {
        let packed = pack_word(natural);
        for pair in 0..4 {
            let even = (natural >> (8 * pair)) & 0xF;
            let odd = (natural >> (8 * pair + 4)) & 0xF;
            let expected = template_of(even) | (template_of(odd) << 16);
            assert_eq!(template_pair(packed, pair), expected, "word {natural:#010x} pair {pair}");
        }
    }
}

/// The code of K-element `k` (0..32) of a natural chunk.
fn natural_code(chunk: [u32; 4], k: usize) -> u32 {
    (chunk[k / 8] >> (4 * (k % 8))) & 0xF
}

#[test]
fn device_words_hold_the_fragment_k_order() {
    // Lane t of a quad takes word t: its pairs 0 and 1 are K-elements 2t and 2t + 8, pairs
    // 2 and 3 are 16 + 2t and 24 + 2t, as the m16n8k16 and wgmma fragments number K.
    for word in 0..4 {
        let ks: Vec<usize> = (0..4).map(|pair| chunk_pair_k(word, pair)).collect();
        assert_eq!(ks, [2 * word, 2 * word + 8, 2 * word + 16, 2 * word + 24], "word {word}");
    }
    for natural in random_chunks(25_000) {
        for (word, packed) in pack_chunk(natural).into_iter().enumerate() {
            for pair in 0..4 {
                let k = chunk_pair_k(word, pair);
                let expected =
                    template_of(natural_code(natural, k)) | (template_of(natural_code(natural, k + 1)) << 16);
                assert_eq!(template_pair(packed, pair), expected, "{natural:08x?} word {word} pair {pair}");
            }
        }
    }
}

/// The f32 value of a bf16 bit pattern (bf16 and f32 share the exponent range, so bf16
/// subnormals are exact f32 subnormals).
fn bf16_value(bits: u32) -> f32 {
    f32::from_bits(bits << 16)
}

/// Asserts that an f32 is a bf16 value.
fn exact_bf16(x: f32) -> f32 {
    assert_eq!(x.to_bits() & 0xFFFF, 0, "{x:e} is not exact in bf16");
    x
}

/// Rounds a product, computed exactly in f64, to bf16 (nearest, ties to even) as the
/// kernels' `fma.rn.bf16x2` does.
fn round_bf16(x: f64) -> f32 {
    let bits = (x as f32).to_bits();
    f32::from_bits((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000)
}

/// The kernels' factor for a block-scale byte, from the kernels' own bit formulas with their
/// bf16 multiplies emulated: NVFP4 multiplies the scaled-down scale twice by `2^E4M3_STEP`.
fn factor(format: Fp4Format, byte: u8) -> f32 {
    match format {
        Fp4Format::Nvfp4 => {
            let step = bf16_value(bf16_pow2(E4M3_STEP));
            let scaled_down = bf16_value(e4m3_scaled_down_bits(byte as u32));
            exact_bf16(exact_bf16(scaled_down * step) * step)
        }
        Fp4Format::Mxfp4 => bf16_value(e8m0_factor_bits(byte as u32)),
    }
}

#[test]
fn every_accepted_scale_gives_exact_operands() {
    let shift = f32_pow2(-ACCUMULATOR_SHIFT);
    for format in Fp4Format::ALL {
        let mut accepted = 0;
        for byte in 0..=255u8 {
            if check_scales(format, &[byte], &[1.0]).is_err() {
                continue;
            }
            accepted += 1;
            let scale = match format {
                Fp4Format::Nvfp4 => e4m3_decode(byte),
                Fp4Format::Mxfp4 => e8m0_decode(byte),
            };
            let factor = factor(format, byte);
            for code in 0..16u32 {
                let template = bf16_value(template_of(code));
                let operand = round_bf16(template as f64 * factor as f64);
                let expected = e2m1_decode(code as u8) * scale * shift;
                // Operands below 2^-126 (scales below 2^-93) are bf16 subnormals: within half
                // of their spacing, 2^-134 (the f32 subnormal with bit 15 set). Everything else is exact.
                let tolerance = if expected.abs() < f32_pow2(-126) { f32::from_bits(1 << 15) } else { 0.0 };
                assert!(
                    (operand - expected).abs() <= tolerance,
                    "{format:?} scale byte {byte:#04x} code {code}: {operand:e} vs {expected:e}"
                );
            }
        }
        // NVFP4: the 127 non-negative finite e4m3 values; MXFP4: codes 0..=160.
        assert_eq!(accepted, if format == Fp4Format::Nvfp4 { 127 } else { MX_SCALE_CODE_MAX as usize + 1 });
    }
}

#[test]
fn the_device_chunk_order_is_a_permutation_and_round_trips() {
    use stagefit_kernels::packing::{code_chunk_offset, order_chunks, STRIP_ROWS};
    for k in [32, 64, 96, 128, 160, 768, 2880] {
        for rows in [STRIP_ROWS, 2 * STRIP_ROWS, 5 * STRIP_ROWS] {
            let bytes = rows * k / 2;
            let mut offsets: Vec<usize> =
                (0..rows).flat_map(|row| (0..k / 32).map(move |chunk| code_chunk_offset(k, row, chunk))).collect();
            offsets.sort();
            assert_eq!(offsets, (0..bytes / 16).map(|c| 16 * c).collect::<Vec<_>>(), "k {k} rows {rows}");
            // Full blocks: the 32 lanes of an 8-row half read 512 contiguous bytes.
            if k >= 128 {
                let mut lanes: Vec<usize> = (0..32).map(|lane| code_chunk_offset(k, 8 + lane / 4, lane % 4)).collect();
                lanes.sort();
                assert_eq!(lanes, (0..32).map(|l| 512 + 16 * l).collect::<Vec<_>>(), "k {k}");
            }
            let natural: Vec<u8> = (0..2 * bytes).map(|i| (i * 7 + i / 251) as u8).collect();
            let (mut device, mut back) = (vec![0u8; natural.len()], vec![0u8; natural.len()]);
            order_chunks(&natural, &mut device, rows, k, true);
            order_chunks(&device, &mut back, rows, k, false);
            assert_eq!(back, natural, "k {k} rows {rows}");
            assert_eq!(&device[code_chunk_offset(k, 1, 0)..][..16], &natural[k / 2..][..16], "row 1, chunk 0");
        }
    }
}
