//! Memory safety of the safe API on a real GPU, with input checks off (the release default):
//! bad group offsets, NaN and −inf in the MoE input and router, and a workspace sized for
//! another layer never make a kernel touch memory outside its buffers. Every target buffer sits
//! between canary allocations that are checked afterwards (memcheck cannot see a write into
//! another live allocation), and the context stays usable. `scripts/sanitize.sh` runs these
//! tests under memcheck too.
//!
//! Skipped, with a printed reason, where no CUDA driver is present.

mod common;

use std::sync::Arc;

use common::{gpu, random_moe_weights, random_problem, small_gpt_oss};
use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;
use stagefit::moe::{reference, MoeEngine, MoeWorkspace};
use stagefit::plan::{find_tactic, StagePolicy};
use stagefit::reference::{compare, grouped_gemm};
use stagefit::{DeviceWeights, Error, Fp4Format, GroupedGemm, GroupedGemmArgs, TacticChoice};

/// Allocations of known contents, made around a buffer under test.
struct Canaries {
    buffers: Vec<CudaSlice<u32>>,
}

const CANARY_WORDS: usize = 1 << 18;

impl Canaries {
    fn new(stream: &Arc<CudaStream>, count: usize) -> Canaries {
        let buffers =
            (0..count).map(|i| stream.clone_htod(&vec![0xC0FF_EE00 + i as u32; CANARY_WORDS]).unwrap()).collect();
        Canaries { buffers }
    }

    fn check(&self, stream: &Arc<CudaStream>, what: &str) {
        for (i, b) in self.buffers.iter().enumerate() {
            let words = stream.clone_dtoh(b).unwrap();
            let changed = words.iter().filter(|&&w| w != 0xC0FF_EE00 + i as u32).count();
            assert_eq!(changed, 0, "{what}: {changed} words of canary {i} changed");
        }
    }
}

const POISON: u16 = 0x7FC1;

#[test]
fn bad_offsets_with_checks_off_stay_inside_the_rows() {
    let Some((ctx, stream)) = gpu("bad_offsets_with_checks_off_stay_inside_the_rows") else { return };
    let gemm = GroupedGemm::new(&ctx, None).unwrap().with_input_checks(false);
    let (n, k, rows) = (64, 128, 8usize);
    for format in Fp4Format::ALL {
        let p = random_problem("offsets", format, &[3, 5], n, k, 41);
        let weights = DeviceWeights::upload(&stream, &p.weights).unwrap();
        let a_f32: Vec<f32> = p.a.iter().map(|x| x.to_f32()).collect();
        // Each group's weights applied to every row: the expected value of a row the
        // (clamped) group owns.
        let per_group: Vec<Vec<f64>> =
            (0..2).map(|g| grouped_gemm(&a_f32, &p.weights.dequantize_group(g), &[0, rows as u32], n, k)).collect();
        // A small and a large tile of each family the device has.
        let tactics: Vec<&str> =
            ["m16n64k128w1x4", "m128n256k64w2x4", "wgm64n128k64", "wgm128n128k64", "wgm256n128k64"]
                .into_iter()
                .filter(|name| find_tactic(name).is_ok_and(|t| gemm.arch().runs(t.tile.family)))
                .collect();
        let before = Canaries::new(&stream, 2);
        let a = stream.clone_htod(&p.a).unwrap();
        let mut c = stream.clone_htod(&vec![bf16::from_bits(POISON); rows * n]).unwrap();
        let after = Canaries::new(&stream, 4);
        for offsets in [
            [0, 40, 8],
            [0, 6, 2],
            [5, 3, 8],
            [0, 8, u32::MAX],
            [u32::MAX, 0, 8],
            [0, 1 << 31, (1 << 31) + 8],
            [7, 8, 0],
        ] {
            let offsets_dev = stream.clone_htod(&offsets).unwrap();
            for &tactic in &tactics {
                stream.memcpy_htod(&vec![bf16::from_bits(POISON); rows * n], &mut c).unwrap();
                let args = GroupedGemmArgs {
                    rows,
                    a: a.as_view(),
                    offsets: offsets_dev.as_view(),
                    weights: weights.view(),
                    c: c.as_view_mut(),
                };
                gemm.run(&stream, args, TacticChoice::Tactic(tactic)).unwrap();
                stream.synchronize().unwrap_or_else(|e| panic!("{format:?} {offsets:?} {tactic}: {e}"));
                let out = stream.clone_dtoh(&c).unwrap();
                // Group g owns [offsets[g], offsets[g+1]) ∩ [0, rows); other rows stay poisoned.
                for r in 0..rows {
                    let owner = (0..2).find(|&g| {
                        let (b, e) = (offsets[g].min(rows as u32), offsets[g + 1].min(rows as u32));
                        (b..e).contains(&(r as u32))
                    });
                    let row = &out[r * n..(r + 1) * n];
                    match owner {
                        Some(g) => {
                            let cmp = compare(row, &per_group[g][r * n..(r + 1) * n]);
                            assert!(
                                cmp.non_finite == 0 && cmp.max_rel_err < 1e-2,
                                "{format:?} {offsets:?} {tactic} row {r}: {cmp:?}"
                            );
                        }
                        None => assert!(
                            row.iter().all(|x| x.to_bits() == POISON),
                            "{format:?} {offsets:?} {tactic}: row {r} belongs to no group but was written"
                        ),
                    }
                }
                before.check(&stream, &format!("{format:?} {offsets:?} {tactic}"));
                after.check(&stream, &format!("{format:?} {offsets:?} {tactic}"));
            }
        }
        // The context is still usable: good offsets give the reference.
        let offsets_dev = stream.clone_htod(&p.offsets).unwrap();
        let args = GroupedGemmArgs {
            rows,
            a: a.as_view(),
            offsets: offsets_dev.as_view(),
            weights: weights.view(),
            c: c.as_view_mut(),
        };
        gemm.run(&stream, args, TacticChoice::Auto).unwrap();
        let cmp = compare(&stream.clone_dtoh(&c).unwrap(), &p.reference);
        assert!(cmp.acceptable(), "{format:?} after bad offsets: {cmp:?}");
    }
}

#[test]
fn nan_and_infinite_inputs_route_inside_the_experts() {
    let Some((ctx, stream)) = gpu("nan_and_infinite_inputs_route_inside_the_experts") else { return };
    let config = small_gpt_oss(32, 4);
    let (e, h, k) = (config.experts, config.hidden, config.top_k);
    let mut weights = random_moe_weights(&config, 51);
    // Expert 3 can never be chosen: its logit is −inf for every token.
    weights.router_bias[3] = f32::NEG_INFINITY;
    let engine = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap();
    let layer = engine.upload(&stream, &config, &weights).unwrap();
    // 2 tokens · top-4 = 8 assignments route in one launch (`route_small`), 6 tokens through the
    // five routing kernels; token `nan_token` gets one NaN.
    for (tokens, nan_token) in [(2, 1), (6, 2)] {
        let mut rng = stagefit::rng::SplitMix64::new(52);
        let mut x: Vec<bf16> = (0..tokens * h).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
        // One NaN makes all of that token's logits NaN.
        x[nan_token * h + 5] = bf16::NAN;
        let before = Canaries::new(&stream, 2);
        let x_dev = stream.clone_htod(&x).unwrap();
        let mut ws = MoeWorkspace::new(&stream, &config, tokens).unwrap();
        let mut out = stream.clone_htod(&vec![bf16::from_bits(POISON); tokens * h]).unwrap();
        let after = Canaries::new(&stream, 4);
        for run in 0..2 {
            let what = format!("T={tokens} run {run}");
            engine.forward(&stream, &layer, &x_dev, tokens, &mut out, &mut ws, TacticChoice::Auto).unwrap();
            stream.synchronize().unwrap_or_else(|err| panic!("{what}: {err}"));
            let routing = ws.routing(&stream, tokens, &config).unwrap();
            assert!(routing.ids.iter().all(|&id| (id as usize) < e), "{what}: {:?}", routing.ids);
            for t in (0..tokens).filter(|&t| t != nan_token) {
                assert!(!routing.ids[t * k..(t + 1) * k].contains(&3), "{what}: token {t} chose the −inf expert");
            }
            // Every logit of the NaN token is NaN (a NaN dot product plus any bias, −inf
            // included): all tie, and ties go to the lower index.
            assert_eq!(routing.ids[nan_token * k..(nan_token + 1) * k], [0, 1, 2, 3], "{what}");
            let got = stream.clone_dtoh(&out).unwrap();
            assert!(
                got[nan_token * h..(nan_token + 1) * h].iter().all(|v| v.is_nan()),
                "{what}: the NaN token's output must be NaN"
            );
            // Every other token matches the reference.
            let expected = reference::forward(&config, &weights, &x, &routing.ids, &routing.weights);
            for t in (0..tokens).filter(|&t| t != nan_token) {
                let cmp = compare(&got[t * h..(t + 1) * h], &expected[t * h..(t + 1) * h]);
                assert!(cmp.non_finite == 0 && cmp.max_rel_err < 3e-2, "{what} token {t}: {cmp:?}");
            }
            before.check(&stream, &format!("NaN input, {what}"));
            after.check(&stream, &format!("NaN input, {what}"));
        }
    }
}

#[test]
fn a_workspace_for_another_layer_is_refused_before_any_launch() {
    let Some((ctx, stream)) = gpu("a_workspace_for_another_layer_is_refused_before_any_launch") else { return };
    let engine = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap();
    let (small, large) = (small_gpt_oss(8, 2), small_gpt_oss(128, 8));
    let layer = engine.random_layer(&stream, &large, 61).unwrap();
    let tokens = 16;
    let x = stream.clone_htod(&vec![bf16::from_f32(0.5); tokens * large.hidden]).unwrap();
    let before = Canaries::new(&stream, 2);
    let mut ws = MoeWorkspace::new(&stream, &small, tokens).unwrap();
    let mut out = stream.clone_htod(&vec![bf16::from_bits(POISON); tokens * large.hidden]).unwrap();
    let after = Canaries::new(&stream, 4);
    match engine.forward(&stream, &layer, &x, tokens, &mut out, &mut ws, TacticChoice::Auto) {
        Err(Error::Workspace { buffer, asked, sized_for, .. }) => {
            assert_eq!(buffer, "logits");
            assert!(asked.contains("E=128 k=8"), "{asked}");
            assert!(sized_for.contains("E=8 k=2"), "{sized_for}");
        }
        other => panic!("expected a workspace error, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(ws.routing(&stream, tokens, &large), Err(Error::Workspace { .. })));
    // Nothing ran: the small workspace's own routing buffers still hold their zeros.
    let untouched = ws.routing(&stream, tokens, &small).unwrap();
    assert!(
        untouched.ids.iter().chain(&untouched.offsets).chain(&untouched.perm_src).all(|&v| v == 0),
        "{untouched:?}"
    );
    assert!(untouched.weights.iter().all(|&w| w == 0.0), "{untouched:?}");
    stream.synchronize().unwrap();
    assert!(stream.clone_dtoh(&out).unwrap().iter().all(|v| v.to_bits() == POISON), "out was written");
    before.check(&stream, "mismatched workspace");
    after.check(&stream, "mismatched workspace");
    // A workspace for the large layer runs it.
    let mut ws = MoeWorkspace::new(&stream, &large, tokens).unwrap();
    engine.forward(&stream, &layer, &x, tokens, &mut out, &mut ws, TacticChoice::Auto).unwrap();
    stream.synchronize().unwrap();
}
