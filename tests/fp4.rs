//! FP4 codecs against the exact value tables, and quantization round trips.

use approx::assert_relative_eq;
use stagefit::fp4::*;
use stagefit::rng::SplitMix64;
use stagefit::{Error, Fp4Format};

#[test]
fn e2m1_codes_have_the_exact_values() {
    let magnitudes = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    for code in 0u8..16 {
        let expected = if code & 8 != 0 { -magnitudes[(code & 7) as usize] } else { magnitudes[code as usize] };
        assert_eq!(e2m1_decode(code).to_bits(), f32::to_bits(expected), "code {code}");
    }
}

#[test]
fn e2m1_encode_rounds_to_nearest_even_and_saturates() {
    for code in 0u8..16 {
        let v = e2m1_decode(code);
        let back = e2m1_encode(v);
        assert_eq!(e2m1_decode(back), v, "round trip of code {code}");
    }
    // Ties go to the even code: 0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0, 1.75 -> 2.0, 2.5 -> 2, 3.5 -> 4, 5 -> 4.
    for (x, want) in [(0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0), (2.5, 2.0), (3.5, 4.0), (5.0, 4.0)] {
        assert_eq!(e2m1_decode(e2m1_encode(x)), want, "{x}");
        assert_eq!(e2m1_decode(e2m1_encode(-x)), -want, "-{x}");
    }
    assert_eq!(e2m1_decode(e2m1_encode(0.26)), 0.5);
    assert_eq!(e2m1_decode(e2m1_encode(100.0)), 6.0);
    assert_eq!(e2m1_decode(e2m1_encode(-7.0)), -6.0);
    assert_eq!(e2m1_encode(-0.1), 0, "a value that rounds to zero is +0");
}

#[test]
fn e4m3_codes_have_the_exact_values() {
    assert_eq!(e4m3_decode(0x00), 0.0);
    assert_eq!(e4m3_decode(0x01), 2f32.powi(-9), "smallest subnormal");
    assert_eq!(e4m3_decode(0x07), 7.0 * 2f32.powi(-9), "largest subnormal");
    assert_eq!(e4m3_decode(0x08), 2f32.powi(-6), "smallest normal");
    assert_eq!(e4m3_decode(0x38), 1.0);
    assert_eq!(e4m3_decode(0x7E), 448.0);
    assert_eq!(e4m3_decode(0xFE), -448.0);
    assert!(e4m3_decode(0x7F).is_nan() && e4m3_decode(0xFF).is_nan());
    // Every code from its fields.
    for byte in 0u8..=255 {
        if byte & 0x7F == 0x7F {
            continue;
        }
        let (s, e, m) = ((byte >> 7) as i32, ((byte >> 3) & 0xF) as i32, (byte & 7) as f64);
        let v = if e == 0 { m / 8.0 * 2f64.powi(-6) } else { (1.0 + m / 8.0) * 2f64.powi(e - 7) };
        assert_eq!(e4m3_decode(byte) as f64, if s == 1 { -v } else { v }, "byte {byte:#04x}");
    }
    for byte in 0u8..0x7F {
        assert_eq!(e4m3_encode_non_negative(e4m3_decode(byte)), byte, "round trip {byte:#04x}");
    }
    assert_eq!(e4m3_encode_non_negative(1000.0), 0x7E, "saturates at 448");
    // Halfway between 1.0 (0x38) and 1.125 (0x39) goes to the even code.
    assert_eq!(e4m3_encode_non_negative(1.0625), 0x38);
}

#[test]
fn e8m0_codes_are_powers_of_two() {
    assert_eq!(e8m0_decode(127), 1.0);
    assert_eq!(e8m0_decode(0), 2f32.powi(-127));
    assert_eq!(e8m0_decode(254), 2f32.powi(127));
    assert!(e8m0_decode(255).is_nan());
}

#[test]
fn quantization_error_is_within_one_e2m1_step() {
    for format in Fp4Format::ALL {
        let (groups, n, k) = (3, 16, 128);
        let mut rng = SplitMix64::new(5);
        let w: Vec<f32> = (0..groups * n * k).map(|i| rng.uniform(-1.0, 1.0) * (1 + i % 7) as f32).collect();
        let q = quantize(format, groups, n, k, &w).unwrap();
        let d = q.dequantize();
        let block = format.scale_block();
        for (i, (&x, &y)) in w.iter().zip(&d).enumerate() {
            let (g, row, col) = (i / (n * k), (i / k) % n, i % k);
            let blk = &w[i - col % block..i - col % block + block];
            let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
            // The block's scale maps amax to at most 6 (up to 8 for MX, whose power-of-two
            // scale saturates the top); the largest e2m1 step is 2, so the error is at most
            // one scale unit: amax/4 for MXFP4, amax/6 (plus e4m3 rounding) for NVFP4.
            let bound = amax / 3.0 + 1e-6;
            assert!((x - y).abs() <= bound, "{format:?} g{g} r{row} c{col}: {x} vs {y} (amax {amax})");
        }
        assert_eq!(q.codes.len(), groups * n * k / 2);
        assert_eq!(q.scales.len(), groups * (k / block) * n);
    }
}

#[test]
fn values_on_the_grid_quantize_exactly() {
    // Weights that are e2m1 values times a power of two survive both formats unchanged.
    let (n, k) = (16, 64);
    let mut rng = SplitMix64::new(9);
    let w: Vec<f32> = (0..n * k).map(|_| e2m1_decode(rng.below(16) as u8) * 0.25).collect();
    for format in Fp4Format::ALL {
        let mut w = w.clone();
        // Make every block's amax 6 · 0.25 so the scale is exact in both formats.
        for b in w.chunks_mut(format.scale_block()) {
            b[0] = 1.5;
        }
        let d = quantize(format, 1, n, k, &w).unwrap().dequantize();
        for (x, y) in w.iter().zip(&d) {
            assert_relative_eq!(*x, *y, max_relative = 1e-6);
        }
    }
}

#[test]
fn bad_input_gets_typed_errors() {
    assert!(matches!(quantize(Fp4Format::Mxfp4, 1, 16, 48, &vec![0.0; 16 * 48]), Err(Error::Shape { what: "k", .. })));
    assert!(matches!(quantize(Fp4Format::Nvfp4, 1, 16, 64, &[1.0; 10]), Err(Error::BufferTooSmall { .. })));
    let mut w = vec![1.0; 16 * 64];
    w[77] = f32::NAN;
    match quantize(Fp4Format::Nvfp4, 1, 16, 64, &w) {
        Err(Error::NonFinite { index, .. }) => assert_eq!(index, 77),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}
