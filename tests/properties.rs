//! Property tests on the CPU side: quantization error bounds and round trips, the plan's
//! monotonicity in the budget, and the bench routing's bijection of tokens onto experts.

use proptest::prelude::*;
use stagefit::fp4::{e2m1_decode, e2m1_encode, e4m3_decode, e4m3_encode_non_negative, quantize};
use stagefit::plan::plan_all;
use stagefit::{Arch, Fp4Format};

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
        for (s, l) in plan_all(Arch::Sm90a, small).iter().zip(plan_all(Arch::Sm90a, large)) {
            prop_assert!(s.stages <= l.stages, "{}: {:?} at {small} but {:?} at {large}", s.tactic.name, s.stages, l.stages);
            if let Some(bytes) = s.smem_bytes() {
                prop_assert!(bytes <= small);
            }
        }
    }

    #[test]
    fn routing_assigns_each_token_to_distinct_experts(experts in 1usize..64, k in 1usize..8, tokens in 0usize..300, seed in any::<u64>()) {
        let k = k.min(experts);
        for routing in [stagefit::tools::bench::Routing::Uniform, stagefit::tools::bench::Routing::Zipf] {
            let sizes = stagefit::tools::bench::group_sizes(experts, k, tokens, routing, seed);
            prop_assert_eq!(sizes.iter().sum::<usize>(), tokens * k);
            prop_assert!(sizes.iter().all(|&s| s <= tokens));
        }
    }
}

/// The rank order the router promises: NaN after every number, then larger first in the IEEE
/// total order.
fn ranks_before(a: f32, b: f32) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (false, true) => true,
        (true, _) => false,
        (false, false) => a.total_cmp(&b) == std::cmp::Ordering::Greater,
    }
}

proptest! {
    #[test]
    fn rank_keys_order_every_float_as_promised(a in any::<u32>(), b in any::<u32>()) {
        use stagefit_kernels::routing::{key_logit, rank_key, ABSENT};
        let (x, y) = (f32::from_bits(a), f32::from_bits(b));
        prop_assert!(rank_key(x) > ABSENT);
        prop_assert_eq!(rank_key(x) > rank_key(y), ranks_before(x, y), "{} vs {}", x, y);
        let back = key_logit(rank_key(x));
        prop_assert!(back.to_bits() == x.to_bits() || (x.is_nan() && back.is_nan()), "{} -> {}", x, back);
    }

    #[test]
    fn the_reference_top_k_picks_distinct_experts_nan_last(
        bits in proptest::collection::vec(any::<u32>(), 1..64),
        k in 1usize..8,
    ) {
        let logits: Vec<f64> = bits.iter().map(|&b| f32::from_bits(b) as f64).collect();
        let config = stagefit::moe::MoeConfig {
            experts: logits.len(),
            top_k: k.min(logits.len()),
            hidden: 32,
            intermediate: 32,
            renormalize: true,
            gate_up_layout: stagefit::moe::GateUpLayout::Concatenated,
            activation: stagefit::moe::Activation::SwiGlu,
            format: Fp4Format::Nvfp4,
        };
        let (ids, _) = stagefit::moe::reference::top_k(&config, &logits);
        let mut seen = std::collections::HashSet::new();
        for (r, &id) in ids.iter().enumerate() {
            prop_assert!((id as usize) < logits.len() && seen.insert(id));
            // Nothing left out ranks before a chosen expert.
            for (e, &l) in logits.iter().enumerate() {
                if !ids.contains(&(e as u32)) {
                    let chosen = logits[id as usize] as f32;
                    prop_assert!(!ranks_before(l as f32, chosen), "r={} id={} e={} ({} vs {})", r, id, e, l, chosen);
                }
            }
        }
    }

    #[test]
    fn quantize_takes_any_bits_without_panicking(bits in proptest::collection::vec(any::<u32>(), 64), nv in any::<bool>()) {
        let format = if nv { Fp4Format::Nvfp4 } else { Fp4Format::Mxfp4 };
        let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        match quantize(format, 1, 1, 64, &values) {
            Ok(q) => {
                prop_assert!(values.iter().all(|v| v.is_finite()));
                prop_assert!(q.check_scales().is_ok());
            }
            Err(stagefit::Error::NonFinite { .. } | stagefit::Error::Scale { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn problem_checks_take_any_shape_without_panicking(
        rows in any::<usize>(), groups in any::<usize>(), n in any::<usize>(), k in any::<usize>(),
        a in any::<usize>(), c in any::<usize>(),
    ) {
        let problem = stagefit::heuristic::ProblemShape { rows, groups, n, k };
        let offsets_len = groups.wrapping_add(1);
        let _ = stagefit::gemm::check_problem(&problem, offsets_len, a, c);
        let _ = stagefit::gemm::check_offsets(&[0, 1], groups, rows);
    }
}
