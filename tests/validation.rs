//! One test per row of `docs/validation.md` that needs no GPU: bad input gets a typed error
//! naming the argument, the expected and the actual value.

mod common;

use stagefit::device::DeviceInfo;
use stagefit::find_tactic;
use stagefit::gemm::{check_offsets, check_problem};
use stagefit::heuristic::ProblemShape;
use stagefit::moe::{Activation, GateUpLayout, MoeConfig};
use stagefit::{Error, Fp4Format};

const OK: ProblemShape = ProblemShape { rows: 10, groups: 3, n: 32, k: 64 };

fn shape_error(problem: ProblemShape) -> (&'static str, usize) {
    match check_problem(&problem, problem.groups + 1, problem.rows * problem.k, problem.rows * problem.n) {
        Err(Error::Shape { what, value, .. }) => (what, value),
        other => panic!("expected a shape error for {problem:?}, got {other:?}"),
    }
}

#[test]
fn group_counts_outside_1_to_256_are_refused() {
    assert_eq!(shape_error(ProblemShape { groups: 0, ..OK }), ("groups", 0));
    assert_eq!(shape_error(ProblemShape { groups: 257, ..OK }), ("groups", 257));
    assert!(check_problem(&ProblemShape { groups: 256, ..OK }, 257, 640, 320).is_ok());
}

#[test]
fn n_must_be_a_positive_multiple_of_16() {
    assert_eq!(shape_error(ProblemShape { n: 24, ..OK }), ("n", 24));
    assert_eq!(shape_error(ProblemShape { n: 0, ..OK }), ("n", 0));
}

#[test]
fn k_must_be_a_positive_multiple_of_32() {
    assert_eq!(shape_error(ProblemShape { k: 48, ..OK }), ("k", 48));
    assert_eq!(shape_error(ProblemShape { k: 0, ..OK }), ("k", 0));
    // At most 2^28: the kernels' offsets inside a strip of weights (8·K bytes) are 32-bit.
    let above = stagefit_kernels::packing::MAX_K + 32;
    assert_eq!(shape_error(ProblemShape { k: above, ..OK }), ("k", above));
}

#[test]
fn rows_must_fit_32_bits() {
    let rows = u32::MAX as usize + 1;
    assert!(matches!(
        check_problem(&ProblemShape { rows, ..OK }, 4, usize::MAX, usize::MAX),
        Err(Error::Shape { what: "rows", .. })
    ));
}

#[test]
fn short_buffers_are_refused_by_name() {
    let buffer = |offsets, a, c| match check_problem(&OK, offsets, a, c) {
        Err(Error::BufferTooSmall { buffer, needed, actual }) => (buffer, needed, actual),
        other => panic!("expected a buffer error, got {other:?}"),
    };
    assert_eq!(buffer(3, 640, 320), ("offsets", 4, 3));
    assert_eq!(buffer(5, 640, 320), ("offsets", 4, 5));
    assert_eq!(buffer(4, 639, 320), ("a", 640, 639));
    assert_eq!(buffer(4, 640, 319), ("c", 320, 319));
    assert!(check_problem(&OK, 4, 640, 320).is_ok());
}

#[test]
fn host_offsets_must_run_from_0_to_rows_without_decreasing() {
    for (offsets, words) in [
        (&[0, 4, 2, 10][..], "offsets[2] = 2 < offsets[1] = 4"),
        (&[1, 4, 6, 10], "offsets[0] = 1"),
        (&[0, 4, 6, 9], "offsets[3] = 9 but there are 10 rows"),
        (&[0, 4, 10], "3 values for 3 groups"),
    ] {
        match check_offsets(offsets, 3, 10) {
            Err(Error::Offsets(message)) => assert!(message.contains(words), "{message}"),
            other => panic!("{offsets:?}: expected an offsets error, got {other:?}"),
        }
    }
    assert!(check_offsets(&[0, 0, 6, 10], 3, 10).is_ok());
}

fn moe(experts: usize, top_k: usize, hidden: usize, intermediate: usize) -> MoeConfig {
    MoeConfig {
        experts,
        top_k,
        hidden,
        intermediate,
        renormalize: true,
        gate_up_layout: GateUpLayout::Concatenated,
        activation: Activation::SwiGlu,
        format: Fp4Format::Nvfp4,
    }
}

#[test]
fn moe_shapes_are_checked() {
    let what = |c: MoeConfig| match c.validate() {
        Err(Error::Shape { what, value, .. }) => (what, value),
        other => panic!("expected a shape error for {c:?}, got {other:?}"),
    };
    assert_eq!(what(moe(0, 1, 64, 64)), ("experts", 0));
    assert_eq!(what(moe(257, 1, 64, 64)), ("experts", 257));
    assert_eq!(what(moe(4, 5, 64, 64)), ("top_k", 5), "top-k above the experts");
    assert_eq!(what(moe(32, 9, 64, 64)), ("top_k", 9), "top-k above 8");
    assert_eq!(what(moe(8, 0, 64, 64)), ("top_k", 0));
    assert_eq!(what(moe(8, 2, 48, 64)), ("hidden", 48));
    assert_eq!(what(moe(8, 2, 64, 40)), ("intermediate", 40));
    assert!(moe(8, 2, 64, 64).validate().is_ok());
}

#[test]
fn moe_weights_of_the_wrong_size_or_format_are_refused() {
    let config = moe(4, 2, 64, 32);
    let mut w = common::random_moe_weights(&config, 1);
    assert!(w.check(&config).is_ok());
    w.router_bias.pop();
    assert!(matches!(w.check(&config), Err(Error::BufferTooSmall { buffer: "router_bias", needed: 4, actual: 3 })));
    let mx = MoeConfig { format: Fp4Format::Mxfp4, ..config.clone() };
    let w = common::random_moe_weights(&config, 1);
    assert!(matches!(w.check(&mx), Err(Error::WeightsMismatch { .. })));
}

fn device(cc: (u32, u32)) -> DeviceInfo {
    DeviceInfo {
        ordinal: 0,
        name: "test".into(),
        compute_capability: cc,
        smem_optin_per_block: 101376,
        smem_reserved_per_block: 1024,
        smem_per_sm: 102400,
        sm_count: 48,
        l2_bytes: 1 << 22,
        threads_per_sm: 1536,
        registers_per_sm: 65536,
        driver_version: 13000,
    }
}

#[test]
fn a_device_without_shipped_ptx_is_refused() {
    assert!(matches!(device((7, 5)).arch(), Err(Error::UnsupportedArch { major: 7, minor: 5 })));
    assert_eq!(device((8, 9)).arch().unwrap().name(), "sm_80");
    assert_eq!(device((10, 0)).arch().unwrap().name(), "sm_90");
    assert_eq!(device((12, 1)).arch().unwrap().name(), "sm_121a");
}

#[test]
fn unknown_tactics_are_refused() {
    assert!(matches!(find_tactic("m7n7k7"), Err(Error::UnknownVariant(_))));
    assert!(find_tactic("m16n64k128w1x4").is_ok());
}

#[test]
fn a_missing_or_malformed_tune_cache_is_refused() {
    let missing = std::path::Path::new("/nonexistent/stagefit-tune.json");
    assert!(matches!(stagefit::tuned::TuneCache::load(missing), Err(Error::TuneCache { .. })));
    let bad = std::env::temp_dir().join(format!("stagefit-bad-tune-{}.json", std::process::id()));
    std::fs::write(&bad, "{ not json").unwrap();
    assert!(matches!(stagefit::tuned::TuneCache::load(&bad), Err(Error::TuneCache { .. })));
    std::fs::remove_file(bad).ok();
    // A cache made on another device or at a smaller limit does not apply; one made under
    // another driver does, with a warning, and one made at a larger limit does (its entries
    // whose variant does not fit fall back to the heuristic).
    use stagefit::tuned::Compatibility;
    let cache = stagefit::tuned::TuneCache {
        device: "test".into(),
        compute_capability: (12, 1),
        driver_version: 13000,
        smem_limit: 101376,
        sm_count: 48,
        entries: Vec::new(),
    };
    assert_eq!(cache.compatibility(&device((12, 1)), 101376), Compatibility::Same);
    assert_eq!(cache.compatibility(&device((12, 0)), 101376), Compatibility::OtherDevice);
    assert_eq!(cache.compatibility(&device((12, 1)), 65536), Compatibility::LargerLimit);
    assert_eq!(cache.compatibility(&device((12, 1)), 232448), Compatibility::SmallerLimit);
    let newer_driver = DeviceInfo { driver_version: 13010, ..device((12, 1)) };
    assert_eq!(cache.compatibility(&newer_driver, 101376), Compatibility::OtherDriver);
    assert_eq!(cache.compatibility(&newer_driver, 232448), Compatibility::SmallerLimit);
    assert!(Compatibility::OtherDriver.applies() && Compatibility::LargerLimit.applies());
    assert!(!Compatibility::SmallerLimit.applies() && !Compatibility::OtherDevice.applies());
}

#[test]
fn scales_the_kernels_cannot_use_are_refused() {
    use stagefit::fp4::check_scales;
    let scale_error = |format, scales: &[u8], expert: &[f32]| match check_scales(format, scales, expert) {
        Err(Error::Scale { buffer, index, value, .. }) => (buffer, index, value),
        other => panic!("expected a scale error for {format:?} {scales:?} {expert:?}, got {other:?}"),
    };
    // NVFP4 block scales are unsigned e4m3; 0x7F is NaN.
    assert_eq!(scale_error(Fp4Format::Nvfp4, &[0x38, 0x80], &[1.0]), ("scales", 1, "0x80".to_string()));
    assert_eq!(scale_error(Fp4Format::Nvfp4, &[0x7F], &[1.0]), ("scales", 0, "0x7f".to_string()));
    assert!(check_scales(Fp4Format::Nvfp4, &[0x00, 0x01, 0x7E], &[1.0]).is_ok());
    // MXFP4: at most code 160 (2^33); 255 is NaN.
    assert_eq!(scale_error(Fp4Format::Mxfp4, &[127, 161], &[1.0]), ("scales", 1, "0xa1".to_string()));
    assert_eq!(scale_error(Fp4Format::Mxfp4, &[255], &[1.0]), ("scales", 0, "0xff".to_string()));
    assert!(check_scales(Fp4Format::Mxfp4, &[0, 127, 160], &[1.0]).is_ok());
    // Expert scales: finite and non-negative.
    assert_eq!(scale_error(Fp4Format::Nvfp4, &[0x38], &[1.0, f32::NAN]).0, "expert_scales");
    assert_eq!(scale_error(Fp4Format::Nvfp4, &[0x38], &[-0.5]), ("expert_scales", 0, "-0.5".to_string()));
}

#[test]
fn weights_beyond_the_mxfp4_scale_range_are_refused() {
    use stagefit::fp4::quantize;
    let mut w = vec![1.0f32; 2 * 64];
    assert!(quantize(Fp4Format::Mxfp4, 1, 2, 64, &w).is_ok());
    w[64 + 40] = 2f32.powi(36); // row 1, block 1
    match quantize(Fp4Format::Mxfp4, 1, 2, 64, &w) {
        Err(Error::Scale { buffer: "weights", index: 3, .. }) => {}
        other => panic!("expected a scale error for block 3, got {other:?}"),
    }
    // NVFP4's per-expert scale absorbs any finite magnitude.
    assert!(quantize(Fp4Format::Nvfp4, 1, 2, 64, &w).is_ok());
}

#[test]
fn sizes_that_would_wrap_are_refused() {
    use stagefit::gemm::offsets_from_sizes;
    // N = K = 3·2^31 with 2863311531 rows: the products wrap in 64 bits, and N, K in 32.
    let huge = ProblemShape { rows: 2_863_311_531, groups: 1, n: 3 << 31, k: 3 << 31 };
    assert!(matches!(check_problem(&huge, 2, 1 << 31, 1 << 31), Err(Error::Shape { what: "n", .. })));
    let wide = ProblemShape { n: 16, ..huge };
    assert!(matches!(check_problem(&wide, 2, 1 << 31, 1 << 31), Err(Error::Shape { what: "k", .. })));
    // Group sizes whose total passes 2^32 - 1.
    assert!(matches!(offsets_from_sizes(&[u32::MAX as usize, 1]), Err(Error::Shape { what: "rows", .. })));
    assert!(matches!(offsets_from_sizes(&[1usize << 33]), Err(Error::Shape { what: "rows", .. })));
    assert_eq!(offsets_from_sizes(&[u32::MAX as usize - 1, 1]).unwrap(), vec![0, u32::MAX - 1, u32::MAX]);
    // No group count makes the offsets check overflow.
    assert!(matches!(check_offsets(&[], usize::MAX, 0), Err(Error::Offsets(_))));
    assert!(matches!(check_offsets(&[], 0, 0), Err(Error::Offsets(_))));
    // Quantizing a shape whose element count overflows.
    assert!(matches!(
        stagefit::fp4::quantize(Fp4Format::Mxfp4, usize::MAX, 2, 64, &[]),
        Err(Error::Shape { what: "groups", .. })
    ));
}

#[test]
fn activation_constants_and_widths_are_checked() {
    for (limit, alpha, what) in
        [(f32::NAN, 1.7, "limit"), (-1.0, 1.7, "limit"), (0.0, 1.7, "limit"), (7.0, f32::INFINITY, "alpha")]
    {
        let c = MoeConfig { activation: Activation::GptOss { limit, alpha }, ..moe(8, 2, 64, 64) };
        match c.validate() {
            Err(Error::Activation { what: w, .. }) => assert_eq!(w, what),
            other => panic!("limit {limit}, alpha {alpha}: expected an activation error, got {other:?}"),
        }
    }
    assert!(MoeConfig { activation: stagefit::moe::GPT_OSS, ..moe(8, 2, 64, 64) }.validate().is_ok());
    let too_wide = |c: MoeConfig| matches!(c.validate(), Err(Error::Shape { .. }));
    assert!(too_wide(moe(8, 2, (1 << 20) + 32, 64)));
    assert!(too_wide(moe(8, 2, 64, usize::MAX - 31)));
}

#[test]
fn nvfp4_weights_too_small_for_an_expert_scale_are_refused() {
    let mut w = vec![0.0f32; 64];
    w[3] = 1e-40;
    match stagefit::fp4::quantize(Fp4Format::Nvfp4, 1, 1, 64, &w) {
        Err(Error::Scale { buffer: "weights", index: 0, .. }) => {}
        other => panic!("expected a scale error, got {other:?}"),
    }
    // An all-zero expert is fine: it quantizes exactly.
    let q = stagefit::fp4::quantize(Fp4Format::Nvfp4, 1, 1, 64, &[0.0; 64]).unwrap();
    assert!(q.dequantize().iter().all(|&x| x == 0.0));
}

#[test]
fn a_tune_cache_naming_an_unknown_or_uncompiled_variant_is_refused() {
    use stagefit::tuned::TuneCache;
    let entry = |tactic: &str, stages: usize| common::tune_entry("mxfp4", (32, 5760, 2880), 1, tactic, stages);
    let cache = |entries| TuneCache {
        device: "test".into(),
        compute_capability: (9, 0),
        driver_version: 13000,
        smem_limit: 232448,
        sm_count: 132,
        entries,
    };
    let path = std::env::temp_dir().join(format!("stagefit-tune-entries-{}.json", std::process::id()));
    for (bad, words) in [
        (entry("m7n7k7", 2), "entry 1 (mxfp4 groups=32 n=5760 k=2880): unknown tactic \"m7n7k7\""),
        (
            entry("m16n64k128w1x4", 99),
            "entry 1 (mxfp4 groups=32 n=5760 k=2880): m16n64k128w1x4 is not compiled at STAGES=99",
        ),
    ] {
        cache(vec![entry("m16n64k128w1x4", 2), bad]).save(&path).unwrap();
        match TuneCache::load(&path) {
            Err(Error::TuneCache { problem, .. }) => assert!(problem.contains(words), "{problem}"),
            other => panic!("expected a tune-cache error, got {:?}", other.map(|_| ())),
        }
    }
    cache(vec![entry("m16n64k128w1x4", 2)]).save(&path).unwrap();
    assert!(TuneCache::load(&path).is_ok());
    std::fs::remove_file(path).ok();
}
