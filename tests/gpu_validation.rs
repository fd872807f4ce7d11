//! The refusals of `docs/validation.md` that need a GPU: device data read back and checked on
//! request, out-of-memory as an error, and buffers of another device's context.
//!
//! Skipped, with a printed reason, where no CUDA driver is present (the context test also
//! where fewer than two GPUs are).

mod common;

use common::{gpu, random_problem};
use cudarc::driver::{CudaContext, CudaSlice};
use half::bf16;
use stagefit::device::context;
use stagefit::moe::{presets, MoeConfig, MoeEngine, MoeWorkspace};
use stagefit::plan::StagePolicy;
use stagefit::{DeviceWeights, Error, Fp4Format, GroupedGemm, GroupedGemmArgs, TacticChoice};

#[test]
fn device_offsets_and_scales_are_checked_on_request() {
    let Some((ctx, stream)) = gpu("device_offsets_and_scales_are_checked_on_request") else { return };
    let gemm = GroupedGemm::new(&ctx, None).unwrap().with_input_checks(true);
    let p = random_problem("checked", Fp4Format::Nvfp4, &[3, 2], 32, 64, 3);
    let weights = DeviceWeights::upload(&stream, &p.weights).unwrap();
    let a = stream.clone_htod(&p.a).unwrap();
    let mut c = stream.alloc_zeros::<bf16>(5 * 32).unwrap();
    let run = |offsets: &[u32], weights: &DeviceWeights, c: &mut CudaSlice<bf16>| {
        let offsets = stream.clone_htod(offsets).unwrap();
        let args = GroupedGemmArgs {
            rows: 5,
            a: a.as_view(),
            offsets: offsets.as_view(),
            weights: weights.view(),
            c: c.as_view_mut(),
        };
        gemm.run(&stream, args, TacticChoice::Auto)
    };
    // Good data runs.
    run(&p.offsets, &weights, &mut c).unwrap();
    // Offsets decreasing, not from 0, past the rows.
    for (offsets, says) in [
        (vec![0, 4, 3], "offsets[2] = 3 < offsets[1] = 4"),
        (vec![1, 3, 5], "offsets[0] = 1"),
        (vec![0, 3, 9], "offsets[2] = 9 but there are 5 rows"),
    ] {
        match run(&offsets, &weights, &mut c) {
            Err(Error::Offsets(message)) => assert!(message.contains(says), "{message}"),
            other => panic!("expected an offsets error for {offsets:?}, got {other:?}"),
        }
    }
    // A negative NVFP4 block scale written straight to the device.
    let mut bad = p.weights.clone();
    bad.scales[7] = 0xB8;
    let mut codes = bad.codes.clone();
    stagefit::pack_codes(&mut codes);
    let from_device = DeviceWeights::from_parts(
        Fp4Format::Nvfp4,
        (2, 32, 64),
        stream.clone_htod(&codes).unwrap(),
        stream.clone_htod(&bad.scales).unwrap(),
        stream.clone_htod(&bad.expert_scales).unwrap(),
    )
    .unwrap();
    match run(&p.offsets, &from_device, &mut c) {
        Err(Error::Scale { buffer: "scales", index: 7, .. }) => {}
        other => panic!("expected a scale error, got {other:?}"),
    }
    // Uploading host weights checks their scales always.
    match DeviceWeights::upload(&stream, &bad) {
        Err(Error::Scale { buffer: "scales", index: 7, .. }) => {}
        other => panic!("expected a scale error on upload, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn out_of_memory_and_oversized_workspaces_are_errors() {
    let Some((ctx, stream)) = gpu("out_of_memory_and_oversized_workspaces_are_errors") else { return };
    let config: MoeConfig = presets().into_iter().find(|p| p.name == "gpt-oss-20b").unwrap().config;
    // Rows past the kernels' 32-bit indices are refused before any allocation.
    match MoeWorkspace::new(&stream, &config, usize::MAX / 2) {
        Err(Error::Shape { what: "max_tokens", .. }) => {}
        other => panic!("expected a max_tokens error, got {:?}", other.map(|_| ())),
    }
    // 2^28 tokens need terabytes: the driver's out-of-memory error comes back.
    match MoeWorkspace::new(&stream, &config, 1 << 28) {
        Err(Error::Driver { source, .. }) => {
            println!("refused: {source}");
            assert!(format!("{source:?}").contains("OUT_OF_MEMORY"), "{source:?}");
        }
        other => panic!("expected an out-of-memory error, got {:?}", other.map(|_| ())),
    }
    // The context is still usable afterwards.
    let engine = MoeEngine::new(&ctx, None, StagePolicy::RunTime).unwrap();
    let layer = engine.upload(&stream, &config, &common::random_moe_weights(&config, 5)).unwrap();
    let mut ws = MoeWorkspace::new(&stream, &config, 4).unwrap();
    let x = stream.clone_htod(&vec![bf16::from_f32(0.5); 4 * config.hidden]).unwrap();
    let mut out = stream.alloc_zeros::<bf16>(4 * config.hidden).unwrap();
    engine.forward(&stream, &layer, &x, 4, &mut out, &mut ws, TacticChoice::Auto).unwrap();
    stream.synchronize().unwrap();
}

#[test]
fn buffers_of_another_device_are_refused() {
    if gpu("buffers_of_another_device_are_refused").is_none() {
        return;
    }
    let devices = CudaContext::device_count().unwrap();
    if devices < 2 {
        common::report_skip("buffers_of_another_device_are_refused", &format!("{devices} GPU (needs 2)"));
        return;
    }
    let (ctx0, ctx1) = (context(0).unwrap(), context(1).unwrap());
    let (stream0, stream1) = (ctx0.default_stream(), ctx1.default_stream());
    let gemm = GroupedGemm::new(&ctx0, None).unwrap();
    let p = random_problem("two devices", Fp4Format::Mxfp4, &[2], 32, 64, 4);
    let weights = DeviceWeights::upload(&stream0, &p.weights).unwrap();
    let offsets = stream0.clone_htod(&p.offsets).unwrap();
    let mut c = stream0.alloc_zeros::<bf16>(2 * 32).unwrap();
    let a_elsewhere = stream1.clone_htod(&p.a).unwrap();
    let args = GroupedGemmArgs {
        rows: 2,
        a: a_elsewhere.as_view(),
        offsets: offsets.as_view(),
        weights: weights.view(),
        c: c.as_view_mut(),
    };
    match gemm.run(&stream0, args, TacticChoice::Auto) {
        Err(Error::Context { buffer: "a", expected: 0, actual: 1 }) => {}
        other => panic!("expected a context error for `a`, got {other:?}"),
    }
    let a = stream0.clone_htod(&p.a).unwrap();
    let args = GroupedGemmArgs {
        rows: 2,
        a: a.as_view(),
        offsets: offsets.as_view(),
        weights: weights.view(),
        c: c.as_view_mut(),
    };
    match gemm.run(&stream1, args, TacticChoice::Auto) {
        Err(Error::Context { buffer: "stream", expected: 0, actual: 1 }) => {}
        other => panic!("expected a context error for the stream, got {other:?}"),
    }
}
