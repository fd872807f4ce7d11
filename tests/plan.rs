//! The plan for simulated devices: each tactic's STAGES under the opt-in limits of an
//! H100 (232448), an A100 (166912), a GB10 / RTX 50 (101376) and two small budgets.
//! The expected numbers were worked out by hand from the layout: tile table 1152 bytes, plus
//! for swap-AB tiles the reduction buffer `warps_k·BM·(BN + 4)·4`; per stage A = BM·BK·2,
//! W = BN·BK/2, S = BK/16·BN (swap-AB: BK/16·(BN + 16)), each rounded up to 128. Wgmma tiles
//! add 896 bytes of alignment slack and round each stage up to 1024. The plans are an H100's
//! (sm_90a, every family) with the limit as its budget; other targets lack the wgmma family.

use stagefit::heuristic::{
    compiled_for, prefer, preference_row, preferred_variant, Preference, ProblemShape, PREFERENCES,
};
use stagefit::plan::{deepest_fitting, family_max_policy_fits, plan_all, SmemLimit};
use stagefit::{Arch, Family, SmemLayout, TACTICS};
use stagefit_kernels::tactics::MIN_STAGES;

const LIMITS: [usize; 5] = [232448, 166912, 101376, 65536, 49152];

/// (tactic, bytes before the stages, bytes per stage, expected STAGES at each of LIMITS;
/// 0 = not runnable).
const EXPECTED: [(&str, usize, usize, [usize; 5]); 26] = [
    ("m16n64k128w1x4", 1152, 8704, [8, 8, 8, 7, 5]),
    ("m16n128k64w1x4", 1152, 6656, [8, 8, 8, 8, 7]),
    ("m16n128k128w1x4", 1152, 13312, [8, 8, 7, 4, 3]),
    ("m16n256k64w1x8", 1152, 11264, [8, 8, 8, 5, 4]),
    ("m16n64k128w1x8", 1152, 8704, [8, 8, 8, 7, 5]),
    ("m16n128k128w1x8", 1152, 13312, [8, 8, 7, 4, 3]),
    ("m32n64k128w1x4", 1152, 12800, [8, 8, 7, 5, 3]),
    ("m32n128k64w1x4", 1152, 8704, [8, 8, 8, 7, 5]),
    ("m32n128k128w1x4", 1152, 17408, [8, 8, 5, 3, 2]),
    ("m32n256k64w1x8", 1152, 13312, [8, 8, 7, 4, 3]),
    ("m64n64k64w2x2", 1152, 10496, [8, 8, 8, 6, 4]),
    ("m64n64k128w2x2", 1152, 20992, [8, 7, 4, 3, 2]),
    ("m64n128k64w2x4", 1152, 12800, [8, 8, 7, 5, 3]),
    ("m64n256k64w2x4", 1152, 17408, [8, 8, 5, 3, 2]),
    ("m128n64k64w4x2", 1152, 18688, [8, 8, 5, 3, 2]),
    ("m128n128k64w2x4", 1152, 20992, [8, 7, 4, 3, 2]),
    ("m128n128k128w2x4", 1152, 41984, [5, 3, 2, 0, 0]),
    ("m128n256k64w2x4", 1152, 25600, [8, 6, 3, 2, 0]),
    ("m128n64k128w4x2", 1152, 37376, [6, 4, 2, 0, 0]),
    ("swm8n32k512w1k4", 5760, 17920, [8, 8, 5, 3, 2]),
    ("swm8n64k512w1k4", 9856, 27136, [8, 5, 3, 2, 0]),
    ("swm8n64k256w1k2", 5504, 13568, [8, 8, 7, 4, 3]),
    ("swm8n128k256w2k2", 9600, 22784, [8, 6, 4, 2, 0]),
    ("wgm64n128k64", 2048, 13312, [8, 8, 7, 4, 3]),
    ("wgm128n128k64", 2048, 21504, [8, 7, 4, 2, 2]),
    ("wgm256n128k64", 2048, 37888, [4, 4, 2, 0, 0]),
];

#[test]
fn layout_bytes_match_the_hand_count() {
    for (name, fixed, per_stage, _) in EXPECTED {
        let tactic = TACTICS.iter().find(|t| t.name == name).unwrap();
        for stages in tactic.stages {
            assert_eq!(
                SmemLayout::new(tactic.tile, *stages).total_bytes,
                fixed + stages * per_stage,
                "{name} S={stages}"
            );
        }
    }
    assert_eq!(TACTICS.len(), EXPECTED.len());
}

#[test]
fn simulated_devices_get_the_expected_stages() {
    for (i, &limit) in LIMITS.iter().enumerate() {
        let plans = plan_all(Arch::Sm90a, limit);
        for (name, _, _, stages) in EXPECTED {
            let plan = plans.iter().find(|p| p.tactic.name == name).unwrap();
            let expected = (stages[i] != 0).then_some(stages[i]);
            assert_eq!(plan.stages, expected, "{name} at {limit} bytes");
            if let Some(bytes) = plan.smem_bytes() {
                assert!(bytes <= limit, "{name} at {limit}: {bytes} bytes");
                // Deepest: one more stage, if compiled, would not fit.
                let deeper = plan.stages.unwrap() + 1;
                if plan.tactic.stages.contains(&deeper) {
                    assert!(SmemLayout::new(plan.tactic.tile, deeper).total_bytes > limit);
                }
            }
        }
    }
}

#[test]
fn static_shared_memory_and_budgets_lower_the_choice() {
    let tactic = TACTICS.iter().find(|t| t.name == "m128n256k64w2x4").unwrap();
    // 3 stages take 77952 bytes: with 23425 static bytes they no longer fit 101376.
    assert_eq!(deepest_fitting(tactic, 101376, 0), Some(3));
    assert_eq!(deepest_fitting(tactic, 101376, 23425), Some(2));
    assert_eq!(deepest_fitting(tactic, 52351, 0), None);
    let limit = SmemLimit { device_optin: 232448, budget: Some(101376) };
    assert_eq!(limit.bytes(), 101376);
    let limit = SmemLimit { device_optin: 101376, budget: Some(232448) };
    assert_eq!(limit.bytes(), 101376, "a budget above the device limit does not raise it");
}

#[test]
fn a_family_maximum_policy_loses_most_tactics_on_gb10() {
    let gb10 = Arch::Sm121a;
    let compiled: Vec<_> = TACTICS.iter().filter(|t| gb10.runs(t.tile.family)).collect();
    let lost: Vec<_> = compiled.iter().filter(|t| !family_max_policy_fits(gb10, t, 101376)).map(|t| t.name).collect();
    assert_eq!((compiled.len(), lost.len()), (23, 17), "{lost:?}");
    for plan in plan_all(gb10, 101376) {
        assert_eq!(plan.runnable(), gb10.runs(plan.tactic.tile.family), "{}", plan.tactic.name);
    }
}

#[test]
fn the_wgmma_family_runs_only_on_sm_90a() {
    for arch in Arch::ALL {
        for plan in plan_all(arch, 232448) {
            let wgmma = plan.tactic.tile.family == Family::Wgmma;
            assert_eq!(arch.runs(plan.tactic.tile.family), !wgmma || arch == Arch::Sm90a);
            if wgmma && arch != Arch::Sm90a {
                assert_eq!(plan.stages, None, "{} on {}", plan.tactic.name, arch.name());
                assert!(!family_max_policy_fits(arch, plan.tactic, 232448));
            }
        }
    }
    // A compute capability 9.0 device loads sm_90a, whose PTX has every family.
    assert_eq!(Arch::for_compute_capability(9, 0), Some(Arch::Sm90a));
    assert_eq!(Arch::for_compute_capability(10, 0), Some(Arch::Sm90));
}

#[test]
fn the_heuristic_picks_small_tiles_for_decode_and_large_for_prefill() {
    let plans = plan_all(Arch::Sm90a, 232448);
    let decode = ProblemShape { rows: 8 * 4, groups: 32, n: 5760, k: 2880 };
    let prefill = ProblemShape { rows: 8192 * 4, groups: 32, n: 5760, k: 2880 };
    let d = prefer(Arch::Sm90a, &plans, &decode, 132).unwrap();
    let p = prefer(Arch::Sm90a, &plans, &prefill, 132).unwrap();
    assert_eq!(d.tactic.tile.family, Family::SwapAb, "decode picked {}", d.tactic.name);
    assert_eq!((p.tactic.name, p.stages), ("wgm256n128k64", Some(4)), "prefill picked {}", p.tactic.name);
    // Targets without wgmma take the activation-major mma.sync tile for prefill.
    let sm_121a = prefer(Arch::Sm121a, &plan_all(Arch::Sm121a, 101376), &prefill, 48).unwrap();
    assert_eq!((sm_121a.tactic.tile.family, sm_121a.tactic.tile.bm()), (Family::Mma, 128));
    // Every limit: the choice fits, and is the table's tactic wherever that tactic fits.
    for limit in LIMITS {
        let plans = plan_all(Arch::Sm90a, limit);
        for rows in [1, 4, 32, 256, 4096, 32768] {
            let problem = ProblemShape { rows, ..decode };
            let Some(choice) = prefer(Arch::Sm90a, &plans, &problem, 132) else { continue };
            assert!(choice.smem_bytes().unwrap() <= limit, "{limit}: {} does not fit", choice.tactic.name);
            let row = preference_row(&problem, Arch::Sm90a);
            let (tactic, stages) = preferred_variant(row, &problem, 132);
            let deepest = plans.iter().find(|p| p.tactic.name == tactic).and_then(|p| p.stages);
            let table_tactic_fits = deepest.is_some_and(|deepest| deepest >= row.min_stages);
            if table_tactic_fits {
                assert_eq!(choice.tactic.name, tactic, "{limit}, {rows} rows");
                assert!(choice.stages.unwrap() <= stages);
            }
            assert!(choice.stages.unwrap() >= MIN_STAGES);
        }
    }
    // Nothing runnable gives nothing.
    assert!(prefer(Arch::Sm90a, &plan_all(Arch::Sm90a, 1000), &decode, 132).is_none());
}

#[test]
fn the_preference_table_names_compiled_tactics_in_rising_order() {
    // The rows one target sees (up to the first that matches every problem) rise, and one
    // matches every problem.
    for arch in [Arch::Sm90a, Arch::Sm121a] {
        let mut rows: Vec<_> = PREFERENCES.iter().filter(|p| compiled_for(p.tactic, arch)).collect();
        let matches_all = |p: &Preference| (p.max_rows_per_group, p.min_k, p.min_stages) == (usize::MAX, 0, MIN_STAGES);
        if let Some(all) = rows.iter().position(|p| matches_all(p)) {
            rows.truncate(all + 1);
        }
        for pair in rows.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                a.max_rows_per_group < b.max_rows_per_group
                    || (a.max_rows_per_group == b.max_rows_per_group && a.min_k > b.min_k)
                    || ((a.max_rows_per_group, a.min_k) == (b.max_rows_per_group, b.min_k)
                        && a.min_stages > b.min_stages),
                "{}: {} before {}",
                arch.name(),
                a.tactic,
                b.tactic
            );
        }
        assert!(matches_all(rows.last().unwrap()), "{}: the last row", arch.name());
    }
    for row in PREFERENCES {
        for (name, stages) in
            [(row.tactic, row.stages)].into_iter().chain(row.alternatives.iter().map(|alt| (alt.tactic, alt.stages)))
        {
            let tactic = TACTICS.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name}"));
            assert!(tactic.stages.contains(&stages), "{name} is not compiled at {stages}");
        }
        let thresholds: Vec<_> = row.alternatives.iter().map(|alt| alt.min_tiles_per_sm).collect();
        assert!(thresholds.windows(2).all(|w| w[0] < w[1]), "{}: alternatives out of order", row.tactic);
    }
}

#[test]
fn decode_prefers_swap_ab_tiles_by_k_and_tile_count() {
    let choose = |rows, groups, n, k| {
        let problem = ProblemShape { rows, groups, n, k };
        preferred_variant(preference_row(&problem, Arch::Sm90a), &problem, 132)
    };
    // 1 token of gpt-oss (4 rows): gate_up has 360 tiles of 64 columns (2.7 per SM), down 180.
    assert_eq!(choose(4, 32, 5760, 2880), ("swm8n64k512w1k4", 2));
    assert_eq!(choose(4, 32, 2880, 2880), ("swm8n32k512w1k4", 3));
    // mixtral, 1 token: down (K = 14336) and gate_up (K = 4096) by K alone.
    assert_eq!(choose(2, 8, 4096, 14336), ("swm8n64k512w1k4", 4));
    assert_eq!(choose(2, 8, 28672, 4096), ("swm8n128k256w2k2", 3));
    // gpt-oss-120b down, 8 tokens: 32 rows, 1440 tiles of 64 columns (10.9 per SM), 736 of 128.
    assert_eq!(choose(32, 128, 2880, 2880), ("swm8n64k512w1k4", 3));
    // gpt-oss-120b gate_up, 32 tokens: 128 rows over 128 experts, 5760 tiles of 128 columns.
    assert_eq!(choose(128, 128, 5760, 2880), ("swm8n128k256w2k2", 3));
    // qwen3 down (K = 768), 1 token: short K.
    assert_eq!(choose(8, 128, 2048, 768), ("swm8n128k256w2k2", 2));
    // 4 rows per group take the 128-column swap-AB tile; 8 go activation-major (5 STAGES on
    // mixtral down's long K), as do 16.
    assert_eq!(choose(128, 32, 5760, 2880), ("swm8n128k256w2k2", 2));
    assert_eq!(choose(1024, 128, 2048, 768), ("m16n128k128w1x4", 2));
    assert_eq!(choose(64, 8, 4096, 14336), ("m16n128k128w1x4", 5));
    assert_eq!(choose(512, 32, 5760, 2880), ("m16n128k128w1x4", 2));
    // Prefill on sm_90a: 32 rows per group (gpt-oss-120b, 1024 tokens) take the 64-row
    // warpgroup tile, 64 to 256 (gpt-oss-20b, 512 and 2048 tokens) the 128-row one, more
    // (gpt-oss-20b, 8192 tokens) the 256-row one.
    assert_eq!(choose(4096, 128, 5760, 2880), ("wgm64n128k64", 8));
    assert_eq!(choose(2048, 32, 5760, 2880), ("wgm128n128k64", 4));
    assert_eq!(choose(8192, 32, 5760, 2880), ("wgm128n128k64", 4));
    assert_eq!(choose(32768, 32, 5760, 2880), ("wgm256n128k64", 4));
}

#[test]
fn the_256_row_warpgroup_tile_needs_its_four_stages() {
    // gpt-oss-20b gate_up, 8192 tokens: the 256-row tile at 4 STAGES where they fit (153600
    // bytes), the 128-row tile at 4 under a 101376-byte limit (where the 256-row one has 2).
    let problem = ProblemShape { rows: 32768, groups: 32, n: 5760, k: 2880 };
    let choose = |limit| {
        let choice = prefer(Arch::Sm90a, &plan_all(Arch::Sm90a, limit), &problem, 132).unwrap();
        (choice.tactic.name, choice.stages.unwrap())
    };
    assert_eq!(choose(232448), ("wgm256n128k64", 4));
    assert_eq!(choose(166912), ("wgm256n128k64", 4));
    assert_eq!(choose(101376), ("wgm128n128k64", 4));
}
