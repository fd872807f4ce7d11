//! Property tests on the CPU side: quantization error bounds and round trips, the plan's
//! monotonicity in the budget, and the bench routing's bijection of tokens onto experts.

use proptest::prelude::*;
use stagefit::fp4::{e2m1_decode, e2m1_encode, e4m3_decode, e4m3_encode_non_negative, quantize};
use stagefit::plan::plan_all;
use stagefit::Fp4Format;

proptest! {
    #[test]
    fn e2m1_encoding_is_the_nearest_value(x in -8.0f32..8.0) {
        let got = e2m1_decode(e2m1_encode(x));
        let best = (0u8..16).map(e2m1_decode).map(|v| (v - x.clamp(-6.0, 6.0)).abs()).fold(f32::MAX, f32::min);
        prop_assert!(((got - x.clamp(-6.0, 6.0)).abs() - best).abs() <= 1e-6, "{x} -> {got}");
    }

    #[test]
    fn e4m3_encoding_is_the_nearest_value(x in 0.0f32..500.0) {
        let got = e4m3_decode(e4m3_encode_non_negative(x));
        let best = (0u8..0x7F).map(e4m3_decode).map(|v| (v - x.min(448.0)).abs()).fold(f32::MAX, f32::min);
        prop_assert!(((got - x.min(448.0)).abs() - best).abs() <= best * 1e-6 + 1e-9, "{x} -> {got}");
    }

    #[test]
    fn quantized_blocks_stay_within_one_step(
        values in proptest::collection::vec(-100.0f32..100.0, 64),
        nv in any::<bool>(),
    ) {
        let format = if nv { Fp4Format::Nvfp4 } else { Fp4Format::Mxfp4 };
        let q = quantize(format, 1, 1, 64, &values).unwrap();
        let back = q.dequantize();
        let block = format.scale_block();
        for (i, (x, y)) in values.iter().zip(&back).enumerate() {
            let b = &values[i / block * block..(i / block + 1) * block];
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            prop_assert!((x - y).abs() <= amax / 3.0 + 1e-6, "{format:?} {i}: {x} -> {y}");
        }
        // Quantizing the dequantized values again changes nothing.
        let again = quantize(format, 1, 1, 64, &back).unwrap().dequantize();
        for (y, z) in back.iter().zip(&again) {
            prop_assert!((y - z).abs() <= y.abs() * 1e-6, "{y} -> {z}");
        }
    }

    #[test]
    fn a_larger_budget_never_chooses_fewer_stages(a in 20_000usize..240_000, b in 20_000usize..240_000) {
        let (small, large) = (a.min(b), a.max(b));
        for (s, l) in plan_all(small).iter().zip(plan_all(large)) {
            prop_assert!(s.stages <= l.stages, "{}: {:?} at {small} but {:?} at {large}", s.tactic.name, s.stages, l.stages);
            if let Some(bytes) = s.smem_bytes() {
                prop_assert!(bytes <= small);
            }
        }
    }

    #[test]
    fn routing_assigns_each_token_to_distinct_experts(experts in 1usize..64, k in 1usize..8, tokens in 0usize..300, seed in any::<u64>()) {
        let k = k.min(experts);
        for routing in [stagefit::bench::Routing::Uniform, stagefit::bench::Routing::Zipf] {
            let sizes = stagefit::bench::group_sizes(experts, k, tokens, routing, seed);
            prop_assert_eq!(sizes.iter().sum::<usize>(), tokens * k);
            prop_assert!(sizes.iter().all(|&s| s <= tokens));
        }
    }
}
