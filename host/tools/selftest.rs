//! `stagefit selftest`: random grouped GEMMs on the GPU against the CPU reference.
//!
//! Each case draws a format, a number of groups, group sizes (0, 1, odd and larger ones mixed),
//! N (a multiple of 16), K (a multiple of 32), a shared-memory budget and a variant choice
//! (the heuristic, a tactic, or an exact tactic and STAGES), runs it twice on fresh random data
//! with the output poisoned, and checks the result against the f64 reference and that both
//! runs are bit-identical. `--all-variants` instead runs every tactic at its shallowest and
//! deepest STAGES in both formats once (what the sanitizer script covers).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::CudaStream;
use half::bf16;

use crate::error::{DriverContext, Result};
use crate::fp4::quantize;
use crate::gemm::{
    check_offsets, offsets_from_sizes, DeviceWeights, GroupedGemm, GroupedGemmArgs, TacticChoice, Variant,
};
use crate::reference::{compare, grouped_gemm, Comparison};
use crate::rng::SplitMix64;
use crate::{Arch, Error, Fp4Format, Tactic, TACTICS};

/// One case's shape and choices.
#[derive(Clone, Debug)]
pub struct Case {
    /// Weight format.
    pub format: Fp4Format,
    /// Rows of each group.
    pub sizes: Vec<usize>,
    /// Output columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Shared-memory budget (`None`: the device's).
    pub budget: Option<usize>,
    /// Tactic to force, if any.
    pub tactic: Option<&'static str>,
    /// STAGES to force with the tactic, if any.
    pub stages: Option<usize>,
}

/// What one case gave (exhaustive: a caller counts every outcome).
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Ran and matched the reference, deterministically.
    Pass(Variant, Comparison),
    /// Refused with a typed error because the forced variant or every variant did not fit.
    Refused(String),
    /// Wrong, nondeterministic, or failed.
    Fail(String),
}

/// Budgets the random cases draw from.
const BUDGETS: [Option<usize>; 5] = [None, Some(166912), Some(101376), Some(65536), Some(49152)];

/// A random case.
pub fn random_case(rng: &mut SplitMix64, arch: Arch) -> Case {
    let max_groups = if rng.below(4) == 0 { 128 } else { 12 };
    let groups = 1 + rng.below(max_groups);
    let sizes = (0..groups)
        .map(|_| match rng.below(6) {
            0 => 0,
            1 => 1,
            2 => 2 * rng.below(20) + 1,
            3 => rng.below(300),
            _ => rng.below(40),
        })
        .collect();
    let max_n = if rng.below(3) == 0 { 96 } else { 24 };
    let n = 16 * (1 + rng.below(max_n));
    let max_k = if rng.below(3) == 0 { 64 } else { 16 };
    let k = 32 * (1 + rng.below(max_k));
    let compiled = compiled_tactics(arch);
    let tactic = compiled[rng.below(compiled.len())];
    let (tactic, stages) = match rng.below(3) {
        0 => (None, None),
        1 => (Some(tactic.name), None),
        _ => (Some(tactic.name), Some(tactic.stages[rng.below(tactic.stages.len())])),
    };
    Case {
        format: Fp4Format::ALL[rng.below(2)],
        sizes,
        n,
        k,
        budget: BUDGETS[rng.below(BUDGETS.len())],
        tactic,
        stages,
    }
}

/// The tactics whose family `arch`'s PTX has.
fn compiled_tactics(arch: Arch) -> Vec<&'static Tactic> {
    TACTICS.iter().filter(|t| arch.runs(t.tile.family)).collect()
}

/// Every tactic compiled for `arch` at its shallowest and deepest STAGES, in both formats, on
/// one small problem with groups of 0, 1, odd and more-than-a-tile rows.
pub fn all_variant_cases(arch: Arch) -> Vec<Case> {
    let mut cases = Vec::new();
    for format in Fp4Format::ALL {
        for t in compiled_tactics(arch) {
            for stages in [t.stages[0], t.max_stages_compiled()] {
                cases.push(Case {
                    format,
                    sizes: vec![0, 1, 7, 130],
                    n: 272,
                    k: 320,
                    budget: None,
                    tactic: Some(t.name),
                    stages: Some(stages),
                });
            }
        }
    }
    cases
}

/// Runs cases on one stream, with one grouped-GEMM handle per budget (so each kernel module is
/// loaded once per budget, not once per case).
pub struct Runner {
    stream: Arc<CudaStream>,
    handles: HashMap<Option<usize>, GroupedGemm>,
}

impl Runner {
    /// A runner on `stream`.
    pub fn new(stream: Arc<CudaStream>) -> Runner {
        Runner { stream, handles: HashMap::new() }
    }

    /// Runs one case with inputs drawn from `seed`.
    pub fn run(&mut self, case: &Case, seed: u64) -> Result<Outcome> {
        let gemm = match self.handles.entry(case.budget) {
            Entry::Occupied(found) => found.into_mut(),
            Entry::Vacant(slot) => slot.insert(GroupedGemm::new(self.stream.context(), case.budget)?),
        };
        run_case(gemm, &self.stream, case, seed)
    }
}

/// Runs one case on `stream` with `gemm` (whose budget is the case's).
fn run_case(gemm: &GroupedGemm, stream: &Arc<CudaStream>, case: &Case, seed: u64) -> Result<Outcome> {
    let mut rng = SplitMix64::new(seed);
    let groups = case.sizes.len();
    let (n, k) = (case.n, case.k);
    let offsets = offsets_from_sizes(&case.sizes)?;
    let rows = *offsets.last().unwrap() as usize;
    check_offsets(&offsets, groups, rows)?;
    let a: Vec<bf16> = (0..rows * k).map(|_| bf16::from_f32(rng.uniform(-1.0, 1.0))).collect();
    let w: Vec<f32> = (0..groups * n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let q = quantize(case.format, groups, n, k, &w)?;
    let a_f32: Vec<f32> = a.iter().map(|x| x.to_f32()).collect();
    let reference = grouped_gemm(&a_f32, &q.dequantize(), &offsets, n, k);
    let weights = DeviceWeights::upload(stream, &q)?;
    let a_dev = stream.clone_htod(&a).during("uploading A")?;
    let offsets_dev = stream.clone_htod(&offsets).during("uploading offsets")?;
    let choice = match (case.tactic, case.stages) {
        (Some(tactic), Some(stages)) => TacticChoice::Variant { tactic, stages },
        (Some(tactic), None) => TacticChoice::Tactic(tactic),
        _ => TacticChoice::Auto,
    };
    let mut results = Vec::new();
    let mut variant = None;
    for _ in 0..2 {
        let mut c = stream.clone_htod(&vec![bf16::from_bits(0x7FC0); (rows * n).max(1)]).during("uploading C")?;
        let args = GroupedGemmArgs {
            rows,
            a: a_dev.as_view(),
            offsets: offsets_dev.as_view(),
            weights: weights.view(),
            c: c.as_view_mut(),
        };
        match gemm.run(stream, args, choice) {
            Ok(v) => variant = Some(v),
            Err(e @ Error::SharedMemory { .. }) => return Ok(Outcome::Refused(e.to_string())),
            Err(e) => return Ok(Outcome::Fail(e.to_string())),
        }
        stream.synchronize().during("running the case")?;
        results.push(stream.clone_dtoh(&c).during("downloading C")?);
    }
    let variant = variant.expect("ran");
    if variant.smem_bytes() > gemm.limit().bytes() {
        return Ok(Outcome::Fail(format!("{variant:?} exceeds the limit {}", gemm.limit().bytes())));
    }
    let bits = |v: &[bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if bits(&results[0]) != bits(&results[1]) {
        return Ok(Outcome::Fail(format!("{variant:?}: two runs differ")));
    }
    let cmp = compare(&results[0][..rows * n], &reference);
    Ok(if cmp.acceptable() { Outcome::Pass(variant, cmp) } else { Outcome::Fail(format!("{variant:?}: {cmp:?}")) })
}
