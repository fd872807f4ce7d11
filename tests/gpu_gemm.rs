//! The grouped GEMM on a real GPU against the CPU reference: every tactic, at the budgets of
//! an H100-class part (232448), a GB10 / RTX 50 part (101376) and a small one (65536), in both
//! formats, at real MoE sizes with group sizes 0, 1, odd and not multiples of any BM.
//!
//! Skipped, with a printed reason, where no CUDA driver is present. Set `STAGEFIT_REPORT` to
//! a path to get the full table there.

mod common;

use std::fmt::Write as _;
use std::sync::Arc;

use common::{gpu, random_problem, HostProblem};
use cudarc::driver::CudaStream;
use half::bf16;
use stagefit::reference::compare;
use stagefit::{DeviceWeights, Error, Fp4Format, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant, TACTICS};

const BUDGETS: [usize; 3] = [232448, 101376, 65536];
/// bf16 quiet NaN: what every output element holds before a launch.
const POISON: bf16 = bf16::from_bits(0x7FC0);

/// The problems: gpt-oss down (N = K = 2880), gpt-oss gate_up (N = 5760, K = 2880),
/// Mixtral's gate/up (N = 14336, K = 4096) and a short one whose K ends half-way into a
/// 64-element K-tile.
fn problems(format: Fp4Format) -> Vec<HostProblem> {
    vec![
        random_problem("gpt-oss down 2880x2880", format, &[0, 1, 7, 16, 33, 0, 130], 2880, 2880, 11),
        random_problem("gpt-oss gate_up 5760x2880", format, &[3, 0, 64, 129], 5760, 2880, 12),
        random_problem("mixtral 14336x4096", format, &[1, 0, 45], 14336, 4096, 13),
        // K a multiple of 32 but not of 64: every family's last K-tile is partial.
        random_problem("short 256x1056", format, &[5, 0, 200], 256, 1056, 14),
    ]
}

/// Runs one problem with one variant choice; returns the variant and the bf16 result.
fn run_once(
    gemm: &GroupedGemm,
    stream: &Arc<CudaStream>,
    p: &HostProblem,
    w: &DeviceWeights,
    choice: TacticChoice<'_>,
) -> Result<(Variant, Vec<bf16>), Error> {
    let a = stream.clone_htod(&p.a).unwrap();
    let offsets = stream.clone_htod(&p.offsets).unwrap();
    let mut c = stream.clone_htod(&vec![POISON; p.rows() * p.n]).unwrap();
    let variant = gemm.run(
        stream,
        GroupedGemmArgs {
            rows: p.rows(),
            a: a.as_view(),
            offsets: offsets.as_view(),
            weights: w.view(),
            c: c.as_view_mut(),
        },
        choice,
    )?;
    stream.synchronize().expect("the kernel failed");
    Ok((variant, stream.clone_dtoh(&c).unwrap()))
}

#[test]
fn every_tactic_budget_and_format_matches_the_reference() {
    let Some((ctx, stream)) = gpu("every_tactic_budget_and_format_matches_the_reference") else { return };
    let mut report = String::from("format tactic budget problem stages smem_bytes max_rel_err norm_rel_err\n");
    // (tactic, budget) -> (stages, bytes, worst max_rel_err) for the summary.
    let mut summary: Vec<(String, usize, String, f64)> = Vec::new();
    let mut failures = Vec::new();
    for format in Fp4Format::ALL {
        let problems = problems(format);
        let weights: Vec<_> = problems.iter().map(|p| DeviceWeights::upload(&stream, &p.weights).unwrap()).collect();
        for &budget in &BUDGETS {
            let gemm = GroupedGemm::new(&ctx, Some(budget)).unwrap();
            for tactic in TACTICS.iter().filter(|t| gemm.arch().runs(t.tile.family)) {
                let mut worst = 0f64;
                let mut ran = String::new();
                for (p, w) in problems.iter().zip(&weights) {
                    match run_once(&gemm, &stream, p, w, TacticChoice::Tactic(tactic.name)) {
                        Ok((variant, c)) => {
                            let cmp = compare(&c, &p.reference);
                            writeln!(
                                report,
                                "{} {} {budget} {:?} {} {} {:.3e} {:.3e}",
                                format.name(),
                                tactic.name,
                                p.name,
                                variant.stages,
                                variant.smem_bytes(),
                                cmp.max_rel_err,
                                cmp.norm_rel_err
                            )
                            .unwrap();
                            assert!(
                                variant.smem_bytes() <= budget,
                                "{} used {} bytes over budget {budget}",
                                tactic.name,
                                variant.smem_bytes()
                            );
                            if !cmp.acceptable() {
                                failures.push(format!(
                                    "{} {} budget {budget} {}: {cmp:?}",
                                    format.name(),
                                    tactic.name,
                                    p.name
                                ));
                            }
                            worst = worst.max(cmp.max_rel_err);
                            ran = format!("S={} {}B", variant.stages, variant.smem_bytes());
                        }
                        Err(Error::SharedMemory { needed, available, .. }) => {
                            // Refused only when even the shallowest variant does not fit.
                            assert!(needed > available);
                            assert!(
                                needed > budget,
                                "{} refused at budget {budget} though it needs only {needed}",
                                tactic.name
                            );
                            ran = format!("does not fit (needs {needed}B)");
                        }
                        Err(e) => {
                            failures.push(format!("{} {} budget {budget} {}: {e}", format.name(), tactic.name, p.name))
                        }
                    }
                }
                match summary.iter_mut().find(|(t, b, _, _)| t == tactic.name && *b == budget) {
                    Some(row) => row.3 = row.3.max(worst),
                    None => summary.push((tactic.name.to_string(), budget, ran, worst)),
                }
            }
        }
    }
    if let Ok(path) = std::env::var("STAGEFIT_REPORT") {
        std::fs::write(path, &report).unwrap();
    }
    println!("{:<18} {:>7} {:<28} {:>12}", "tactic", "budget", "variant", "max_rel_err");
    for (tactic, budget, ran, worst) in &summary {
        println!("{tactic:<18} {budget:>7} {ran:<28} {worst:>12.3e}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn over_budget_variants_are_refused_before_the_driver() {
    let Some((ctx, stream)) = gpu("over_budget_variants_are_refused_before_the_driver") else { return };
    let gemm = GroupedGemm::new(&ctx, None).unwrap();
    let optin = gemm.device().smem_optin_per_block;
    // One byte more than the device allows.
    let tactic = stagefit::find_tactic("m128n256k64w2x4").unwrap();
    let too_big = Variant { dynamic_smem_bytes: optin + 1, ..Variant::new(tactic, 8, 0) };
    match gemm.check_fits(&too_big) {
        Err(Error::SharedMemory { needed, available, .. }) => assert_eq!((needed, available), (optin + 1, optin)),
        other => panic!("expected a shared-memory refusal, got {other:?}"),
    }
    // A forced variant deeper than a GB10 budget allows is refused with the typed error.
    let small = GroupedGemm::new(&ctx, Some(101376)).unwrap();
    let p = random_problem("small", Fp4Format::Mxfp4, &[5, 3], 256, 256, 7);
    let w = DeviceWeights::upload(&stream, &p.weights).unwrap();
    match run_once(&small, &stream, &p, &w, TacticChoice::Variant { tactic: "m128n256k64w2x4", stages: 8 }) {
        Err(Error::SharedMemory { needed, available, .. }) => {
            assert_eq!(available, 101376);
            assert!(needed > 101376);
            println!("refused: {needed} bytes needed, {available} available");
        }
        other => panic!("expected a shared-memory refusal, got {:?}", other.map(|(v, _)| v)),
    }
    // The automatic choice on the same budget runs and is right.
    let (variant, c) = run_once(&small, &stream, &p, &w, TacticChoice::Auto).unwrap();
    assert!(variant.smem_bytes() <= 101376);
    assert!(compare(&c, &p.reference).acceptable());
}

#[test]
fn one_handle_serves_several_threads_and_streams() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<GroupedGemm>();
    send_and_sync::<DeviceWeights>();
    let Some((ctx, _)) = gpu("one_handle_serves_several_threads_and_streams") else { return };
    let gemm = GroupedGemm::new(&ctx, Some(101376)).unwrap();
    let problems: Vec<HostProblem> = (0..4)
        .map(|i| {
            random_problem(&format!("thread {i}"), Fp4Format::ALL[i % 2], &[3 + i, 0, 17, 40], 256, 320, 100 + i as u64)
        })
        .collect();
    std::thread::scope(|scope| {
        for p in &problems {
            let (gemm, ctx) = (&gemm, &ctx);
            scope.spawn(move || {
                let stream = ctx.new_stream().unwrap();
                let w = DeviceWeights::upload(&stream, &p.weights).unwrap();
                let mut first: Option<Vec<bf16>> = None;
                for _ in 0..5 {
                    let (_, c) = run_once(gemm, &stream, p, &w, TacticChoice::Auto).unwrap();
                    assert!(compare(&c, &p.reference).acceptable(), "{}", p.name);
                    match &first {
                        Some(f) => assert!(
                            f.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()),
                            "{}: runs differ",
                            p.name
                        ),
                        None => first = Some(c),
                    }
                }
            });
        }
    });
}
