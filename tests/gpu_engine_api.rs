//! The API an engine calls with its own buffers, on a real GPU: views into larger allocations
//! (nothing outside them written), weights borrowed from caller-owned buffers, the code packing
//! on the device (byte-identical to the host's), and the MoE layer with the caller's routing,
//! including ids out of range. Skipped, with a printed reason, where no CUDA driver is present.

mod common;

use common::{gpu, random_moe_weights, random_problem, small_gpt_oss};
use half::bf16;
use stagefit::moe::{MoeEngine, MoeWorkspace};
use stagefit::plan::StagePolicy;
use stagefit::reference::compare;
use stagefit::{
    order_chunks, pack_codes, DeviceWeights, Error, Fp4Format, GroupedGemm, GroupedGemmArgs, TacticChoice, WeightsView,
};

const POISON: u16 = 0x7FC0;

#[test]
fn views_read_and_write_only_their_rows() {
    let Some((ctx, stream)) = gpu("views_read_and_write_only_their_rows") else { return };
    let gemm = GroupedGemm::new(&ctx, None).unwrap();
    for format in [Fp4Format::Mxfp4, Fp4Format::Nvfp4] {
        let p = random_problem("views", format, &[3, 0, 7, 1], 64, 256, 5);
        let (rows, n, k) = (p.rows(), p.n, p.k);
        let weights = DeviceWeights::upload(&stream, &p.weights).unwrap();
        // A at rows 2.., C at rows 5.. of larger buffers poisoned everywhere else.
        let mut a_big = stream.clone_htod(&vec![bf16::from_bits(POISON); (rows + 4) * k]).unwrap();
        stream.memcpy_htod(&p.a, &mut a_big.slice_mut(2 * k..(2 + rows) * k)).unwrap();
        let mut c_big = stream.clone_htod(&vec![bf16::from_bits(POISON); (rows + 9) * n]).unwrap();
        let offsets = stream.clone_htod(&p.offsets).unwrap();
        for tactic in ["m16n64k128w1x4", "swm8n64k256w1k2"] {
            let args = GroupedGemmArgs {
                rows,
                a: a_big.slice(2 * k..(2 + rows) * k),
                offsets: offsets.as_view(),
                weights: weights.view(),
                c: c_big.slice_mut(5 * n..(5 + rows) * n),
            };
            gemm.run(&stream, args, TacticChoice::Tactic(tactic)).unwrap();
            let c = stream.clone_dtoh(&c_big).unwrap();
            let cmp = compare(&c[5 * n..(5 + rows) * n], &p.reference);
            assert!(cmp.acceptable(), "{format:?} {tactic}: {cmp:?}");
            let outside = c[..5 * n].iter().chain(&c[(5 + rows) * n..]);
            assert!(outside.into_iter().all(|x| x.to_bits() == POISON), "{format:?} {tactic}: wrote outside its view");
        }
    }
}

#[test]
fn packing_on_the_device_matches_the_host() {
    let Some((ctx, stream)) = gpu("packing_on_the_device_matches_the_host") else { return };
    let gemm = GroupedGemm::new(&ctx, None).unwrap().with_input_checks(true);
    // K a multiple of the 128-element block and not; one and several strips; one and several groups.
    for (sizes, n, k) in [(&[2usize, 5][..], 32, 256), (&[1][..], 16, 96), (&[4, 0, 3][..], 48, 160)] {
        let p = random_problem("pack", Fp4Format::Mxfp4, sizes, n, k, 9);
        let w = &p.weights;
        let mut host = vec![0u8; w.codes.len()];
        order_chunks(&w.codes, &mut host, n, k, true);
        pack_codes(&mut host);
        let natural = stream.clone_htod(&w.codes).unwrap();
        let mut packed = stream.clone_htod(&vec![0xA5u8; w.codes.len()]).unwrap();
        gemm.pack_codes(&stream, (w.groups, n, k), &natural, &mut packed).unwrap();
        assert_eq!(stream.clone_dtoh(&packed).unwrap(), host, "groups {sizes:?} n {n} k {k}");
        // Borrowed by a view with the caller's scales, the packed codes give the reference.
        let scales = stream.clone_htod(&w.scales).unwrap();
        let expert_scales = stream.clone_htod(&w.expert_scales).unwrap();
        let view =
            WeightsView::new(w.format, (w.groups, n, k), packed.as_view(), scales.as_view(), expert_scales.as_view())
                .unwrap();
        let (a, offsets) = (stream.clone_htod(&p.a).unwrap(), stream.clone_htod(&p.offsets).unwrap());
        let mut c = stream.clone_htod(&vec![bf16::from_bits(POISON); p.rows() * n]).unwrap();
        let args = GroupedGemmArgs {
            rows: p.rows(),
            a: a.as_view(),
            offsets: offsets.as_view(),
            weights: view,
            c: c.as_view_mut(),
        };
        gemm.run(&stream, args, TacticChoice::Auto).unwrap();
        let cmp = compare(&stream.clone_dtoh(&c).unwrap(), &p.reference);
        assert!(cmp.acceptable(), "groups {sizes:?} n {n} k {k}: {cmp:?}");
    }
    // Wrong lengths, a misaligned view and a view of the wrong size are refused before a launch.
    let natural = stream.alloc_zeros::<u8>(2 * 16 * 64 / 2 + 16).unwrap();
    let mut packed = stream.alloc_zeros::<u8>(2 * 16 * 64 / 2).unwrap();
    match gemm.pack_codes(&stream, (2, 16, 64), &natural, &mut packed) {
        Err(Error::BufferTooSmall { buffer: "natural", needed: 1024, actual: 1040 }) => {}
        other => panic!("expected a length error, got {other:?}"),
    }
    match gemm.pack_codes(&stream, (2, 16, 64), &natural.slice(8..1032), &mut packed) {
        Err(Error::Shape { what: "buffer address", .. }) => {}
        other => panic!("expected an alignment error, got {other:?}"),
    }
    match gemm.pack_codes(&stream, (2, 20, 64), &natural.slice(0..1280.min(natural.len())), &mut packed) {
        Err(Error::Shape { what: "n", .. }) => {}
        other => panic!("expected a shape error, got {other:?}"),
    }
    let scales = stream.alloc_zeros::<u8>(2 * 16 * 2).unwrap();
    let expert_scales = stream.alloc_zeros::<f32>(3).unwrap();
    match WeightsView::new(Fp4Format::Mxfp4, (2, 16, 64), packed.as_view(), scales.as_view(), expert_scales.as_view()) {
        Err(Error::BufferTooSmall { buffer: "expert_scales", needed: 2, actual: 3 }) => {}
        other => panic!("expected a length error, got {other:?}"),
    }
}

#[test]
fn routed_layer_refuses_or_contains_bad_expert_ids() {
    let Some((ctx, stream)) = gpu("routed_layer_refuses_or_contains_bad_expert_ids") else { return };
    let config = small_gpt_oss(8, 2);
    let weights = random_moe_weights(&config, 4);
    let tokens = 5;
    let x = stream.clone_htod(&vec![bf16::from_f32(0.5); tokens * config.hidden]).unwrap();
    let mut ids = vec![1u32, 3, 0, 7, 2, 2, 5, 6, 4, 1];
    ids[7] = 8;
    let ids_dev = stream.clone_htod(&ids).unwrap();
    let combine = stream.clone_htod(&vec![0.5f32; tokens * 2]).unwrap();
    let checked = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap().with_input_checks(true);
    let layer = checked.upload(&stream, &config, &weights).unwrap();
    let mut ws = MoeWorkspace::new(&stream, &config, tokens).unwrap();
    // Canaries after `out`: an access past it would show there.
    let mut out = stream.clone_htod(&vec![bf16::from_bits(POISON); (tokens + 4) * config.hidden]).unwrap();
    let run = |engine: &MoeEngine, out: &mut _, ws: &mut _| {
        engine.forward_routed(&stream, &layer, &x, &ids_dev, &combine, tokens, out, ws, TacticChoice::Auto)
    };
    // With input checks the id is named.
    match run(&checked, &mut out, &mut ws) {
        Err(Error::ExpertId { index: 7, expert: 8, experts: 8 }) => {}
        other => panic!("expected an expert-id error, got {other:?}"),
    }
    // Without them the call runs, inside its buffers.
    let unchecked = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap().with_input_checks(false);
    run(&unchecked, &mut out, &mut ws).unwrap();
    stream.synchronize().unwrap();
    let out = stream.clone_dtoh(&out).unwrap();
    assert!(out[tokens * config.hidden..].iter().all(|x| x.to_bits() == POISON), "wrote past `out`");
    // Too short a routing is refused.
    let short = stream.clone_htod(&ids[..9]).unwrap();
    let mut out = stream.alloc_zeros::<bf16>(tokens * config.hidden).unwrap();
    match unchecked.forward_routed(&stream, &layer, &x, &short, &combine, tokens, &mut out, &mut ws, TacticChoice::Auto)
    {
        Err(Error::BufferTooSmall { buffer: "topk_ids", needed: 10, actual: 9 }) => {}
        other => panic!("expected a length error, got {other:?}"),
    }
}
