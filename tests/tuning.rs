//! The tune cache as engines use it: the shipped caches, nearest-bucket lookups, merging and
//! atomic writes, and the heuristic checked against a cache's recorded timings.

mod common;

use stagefit::device::DeviceInfo;
use stagefit::heuristic::ProblemShape;
use stagefit::tuned::{rows_bucket, TuneCache, TuneEntry, SHIPPED_CACHES};
use stagefit::Fp4Format;

fn h100(driver_version: i32) -> DeviceInfo {
    DeviceInfo {
        ordinal: 0,
        name: "NVIDIA H100 80GB HBM3".into(),
        compute_capability: (9, 0),
        smem_optin_per_block: 232448,
        smem_reserved_per_block: 1024,
        smem_per_sm: 233472,
        sm_count: 132,
        l2_bytes: 50 << 20,
        threads_per_sm: 2048,
        registers_per_sm: 65536,
        driver_version,
    }
}

fn entry(format: &str, rows_bucket: usize, tactic: &str, stages: usize) -> TuneEntry {
    common::tune_entry(format, (32, 2880, 2880), rows_bucket, tactic, stages)
}

fn cache(entries: Vec<TuneEntry>) -> TuneCache {
    TuneCache { entries, ..TuneCache::empty(&h100(13000), 232448) }
}

#[test]
fn every_shipped_cache_parses_and_names_compiled_variants() {
    for (name, text) in SHIPPED_CACHES {
        let cache: TuneCache = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        cache.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!cache.entries.is_empty(), "{name}");
    }
}

#[test]
fn the_h100_cache_is_shipped_for_that_device_at_its_limit_or_below() {
    let shipped = TuneCache::shipped(&h100(13000), 232448).expect("the H100 cache ships");
    assert_eq!(shipped.device, "NVIDIA H100 80GB HBM3");
    // Another driver still gets it, and so does a smaller budget; another device does not.
    assert!(TuneCache::shipped(&h100(13050), 232448).is_some());
    assert!(TuneCache::shipped(&h100(13000), 101376).is_some());
    let h200 = DeviceInfo { name: "NVIDIA H200".into(), ..h100(13000) };
    assert!(TuneCache::shipped(&h200, 232448).is_none());
}

#[test]
fn lookups_take_the_nearest_measured_bucket_up_to_an_octave_away() {
    let c = cache(vec![entry("mxfp4", 4, "a", 2), entry("mxfp4", 16, "b", 3), entry("nvfp4", 512, "c", 4)]);
    let at = |rows| c.lookup(Fp4Format::Mxfp4, &ProblemShape { rows, groups: 32, n: 2880, k: 2880 });
    assert_eq!(at(4), Some(("a", 2)));
    assert_eq!(at(2), Some(("a", 2)));
    assert_eq!(at(8), Some(("a", 2)), "8 is as near 4 as 16: the smaller bucket wins");
    assert_eq!(at(17), Some(("b", 3)));
    // Farther than an octave from every measured bucket: the heuristic's.
    assert_eq!(at(1), None);
    assert_eq!(at(33), None);
    assert_eq!(at(100_000), None);
    assert_eq!(rows_bucket(17), 32);
    // Another format, N, K or group count has no entry.
    assert_eq!(c.lookup(Fp4Format::Nvfp4, &ProblemShape { rows: 300, groups: 32, n: 2880, k: 2880 }), Some(("c", 4)));
    assert_eq!(c.lookup(Fp4Format::Mxfp4, &ProblemShape { rows: 4, groups: 8, n: 2880, k: 2880 }), None);
}

#[test]
fn merging_replaces_the_same_problems_and_refuses_other_devices() {
    let mut old = cache(vec![entry("mxfp4", 4, "a", 2), entry("mxfp4", 64, "b", 3)]);
    let newer =
        TuneCache { driver_version: 13010, ..cache(vec![entry("mxfp4", 64, "z", 5), entry("mxfp4", 8, "y", 2)]) };
    old.merge(newer).unwrap();
    let names: Vec<_> = old.entries.iter().map(|e| (e.rows_bucket, e.tactic.as_str())).collect();
    assert_eq!(names, [(4, "a"), (64, "z"), (8, "y")]);
    assert_eq!(old.driver_version, 13010);
    let elsewhere = TuneCache { smem_limit: 101376, ..cache(Vec::new()) };
    assert!(old.merge(elsewhere).unwrap_err().contains("101376"));
}

#[test]
fn saving_replaces_the_file_whole_and_leaves_no_temporary() {
    let dir = std::env::temp_dir().join(format!("stagefit-tune-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cache.json");
    std::fs::write(&path, "old").unwrap();
    let c = cache(vec![entry("mxfp4", 4, "m16n64k128w1x4", 2)]);
    c.save(&path).unwrap();
    assert_eq!(TuneCache::load(&path).unwrap(), c);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["cache.json"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_cache_applies_below_its_limit_where_its_variant_fits() {
    use stagefit::gemm::{Selection, TacticChoice};
    use stagefit::plan::{plan_all, SmemLimit, StagePolicy};
    // Tuned at 232448: swm8n64k512w1k4 at 3 STAGES (91264 bytes) and at 8 (226944 bytes).
    let c = cache(vec![entry("mxfp4", 4, "swm8n64k512w1k4", 3), entry("mxfp4", 512, "swm8n64k512w1k4", 8)]);
    let plans = plan_all(stagefit::Arch::Sm90a, 101376);
    let selection = Selection {
        arch: stagefit::Arch::Sm90a,
        plans: &plans,
        policy: StagePolicy::RunTime,
        limit: SmemLimit { device_optin: 232448, budget: Some(101376) },
        sm_count: 132,
        tuned: Some(&c),
    };
    let choose = |rows| {
        let problem = ProblemShape { rows, groups: 32, n: 2880, k: 2880 };
        selection.select(Fp4Format::Mxfp4, &problem, TacticChoice::Auto).map(|(t, s)| (t.name, s)).unwrap()
    };
    // The entry that fits 101376 is used; the one that does not falls back to the heuristic.
    assert_eq!(choose(4), ("swm8n64k512w1k4", 3));
    let problem = ProblemShape { rows: 512, groups: 32, n: 2880, k: 2880 };
    let heuristic = stagefit::heuristic::prefer(stagefit::Arch::Sm90a, &plans, &problem, 132).unwrap();
    assert_eq!(choose(512), (heuristic.tactic.name, heuristic.stages.unwrap()));
}

#[test]
fn the_heuristic_is_checked_against_recorded_timings_without_a_gpu() {
    use stagefit::tools::tune::check_heuristic;
    use stagefit::tuned::VariantTiming;
    let timing = |tactic: &str, stages, us| VariantTiming { tactic: tactic.into(), stages, us };
    // 1 token of gpt-oss down (4 rows over 32 experts): the heuristic takes swm8n32k512w1k4 S3.
    let problem = ProblemShape { rows: 4, groups: 32, n: 2880, k: 2880 };
    let plans = stagefit::plan::plan_all(stagefit::Arch::Sm90a, 232448);
    let chosen = stagefit::heuristic::prefer(stagefit::Arch::Sm90a, &plans, &problem, 132).unwrap();
    assert_eq!((chosen.tactic.name, chosen.stages), ("swm8n32k512w1k4", Some(3)));
    let mut timed = entry("mxfp4", 4, "swm8n64k512w1k4", 2);
    timed.timings = vec![timing("swm8n32k512w1k4", 3, 13.2), timing("swm8n64k512w1k4", 2, 12.0)];
    // 8 rows over 32 experts: the heuristic takes swm8n64k512w1k4 S2, which this tune did not time.
    let mut untimed = entry("mxfp4", 8, "swm8n32k512w1k4", 3);
    untimed.timings = vec![timing("swm8n32k512w1k4", 3, 20.0)];
    let c = cache(vec![timed, untimed, entry("nvfp4", 4, "swm8n64k512w1k4", 2)]);
    let checks = check_heuristic(&c).unwrap();
    // The entry without timings is left out; the heuristic's choice is found or reported missing.
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].heuristic, ("swm8n32k512w1k4", 3));
    assert_eq!(checks[0].best.us, 12.0);
    assert!((checks[0].ratio().unwrap() - 1.1).abs() < 1e-9);
    assert_eq!(checks[1].ratio(), None);
    // A cache that does not record the multiprocessor count cannot be checked.
    let old = TuneCache { sm_count: 0, ..c };
    assert!(matches!(check_heuristic(&old), Err(stagefit::Error::TuneCache { .. })));
}
