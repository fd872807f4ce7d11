//! The grouped GEMM on random data: three experts' MXFP4 weights, a batch of activation rows
//! routed to them, checked against the CPU reference.
//!
//! The weights reach the device twice: quantized and packed on the host
//! ([`DeviceWeights::upload`]), and as natural codes copied as they are and packed on the device
//! ([`GroupedGemm::pack_codes`]) into a buffer the caller owns, borrowed by a [`WeightsView`].
//! The activations and outputs are views into larger buffers, as an engine's would be.
//!
//! `cargo run --release --example grouped_gemm` (needs an NVIDIA GPU).

use half::bf16;
use stagefit::fp4::quantize;
use stagefit::gemm::offsets_from_sizes;
use stagefit::reference::{compare, grouped_gemm};
use stagefit::rng::SplitMix64;
use stagefit::{DeviceWeights, Fp4Format, GroupedGemm, GroupedGemmArgs, TacticChoice, WeightsView};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, k, sizes) = (512, 1024, [5usize, 0, 12]);
    let mut rng = SplitMix64::new(7);
    let offsets = offsets_from_sizes(&sizes)?;
    let rows = offsets[sizes.len()] as usize;
    let a: Vec<bf16> = (0..rows * k).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
    let w = quantize(Fp4Format::Mxfp4, sizes.len(), n, k, &rng.vec(sizes.len() * n * k, -0.05, 0.05))?;
    let a_f32: Vec<f32> = a.iter().map(|x| x.to_f32()).collect();
    let reference = grouped_gemm(&a_f32, &w.dequantize(), &offsets, n, k);

    let ctx = stagefit::device::context(0)?;
    let stream = ctx.default_stream();
    let gemm = GroupedGemm::new(&ctx, None)?;
    println!(
        "{} (sm_{}{}), {} bytes of shared memory per block",
        gemm.device().name,
        gemm.device().compute_capability.0,
        gemm.device().compute_capability.1,
        gemm.limit().bytes()
    );

    // Activations at row 3 of a larger buffer, outputs at row 2 of another.
    let mut a_big = stream.alloc_zeros::<bf16>((rows + 8) * k)?;
    stream.memcpy_htod(&a, &mut a_big.slice_mut(3 * k..(3 + rows) * k))?;
    let offsets_dev = stream.clone_htod(&offsets)?;
    let mut c_big = stream.alloc_zeros::<bf16>((rows + 4) * n)?;

    // 1. Weights packed on the host and uploaded.
    let uploaded = DeviceWeights::upload(&stream, &w)?;
    let args = GroupedGemmArgs {
        rows,
        a: a_big.slice(3 * k..(3 + rows) * k),
        offsets: offsets_dev.as_view(),
        weights: uploaded.view(),
        c: c_big.slice_mut(2 * n..(2 + rows) * n),
    };
    let variant = gemm.run(&stream, args, TacticChoice::Auto)?;
    let first = stream.clone_dtoh(&c_big.slice(2 * n..(2 + rows) * n))?;
    let cmp = compare(&first, &reference);
    println!(
        "uploaded weights: {} at STAGES={} ({} bytes): {cmp:?}",
        variant.tactic.name,
        variant.stages,
        variant.smem_bytes()
    );

    // 2. Natural codes already on the device (as a framework holds them), packed there into a
    // buffer this code owns; the scales are used as stored.
    let natural = stream.clone_htod(&w.codes)?;
    let mut packed = stream.alloc_zeros::<u8>(w.codes.len())?;
    gemm.pack_codes(&stream, (w.groups, n, k), &natural, &mut packed)?;
    let scales = stream.clone_htod(&w.scales)?;
    let expert_scales = stream.clone_htod(&w.expert_scales)?;
    let view =
        WeightsView::new(w.format, (w.groups, n, k), packed.as_view(), scales.as_view(), expert_scales.as_view())?;
    let args = GroupedGemmArgs {
        rows,
        a: a_big.slice(3 * k..(3 + rows) * k),
        offsets: offsets_dev.as_view(),
        weights: view,
        c: c_big.slice_mut(2 * n..(2 + rows) * n),
    };
    gemm.run(&stream, args, TacticChoice::Auto)?;
    let second = stream.clone_dtoh(&c_big.slice(2 * n..(2 + rows) * n))?;
    let same = first.iter().zip(&second).all(|(x, y)| x.to_bits() == y.to_bits());
    println!("weights packed on the device: bit-identical to the uploaded ones: {same}");
    if !cmp.acceptable() || !same {
        return Err("the result does not match the reference".into());
    }
    println!("ok");
    Ok(())
}
