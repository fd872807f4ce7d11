//! `moe-demo` end to end: without a GPU it says so and points to `stagefit plan`; with one it
//! runs a small gpt-oss-20b-shaped model, verifies a layer, and also runs from a checkpoint.

mod common;

use std::process::Command;

use common::model_dirs::{write_model_dir, DirLayout};
use common::random_moe_weights;
use stagefit::device::driver_present;
use stagefit::moe::checkpoint::write_layer;
use stagefit::moe::presets;

fn demo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moe-demo")).args(args).output().expect("running moe-demo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_a_gpu_the_demo_points_to_plan() {
    if driver_present() {
        common::report_skip("without_a_gpu_the_demo_points_to_plan", "this machine has a CUDA driver");
        return;
    }
    let (ok, _, err) = demo(&[]);
    assert!(!ok);
    assert!(err.contains("stagefit plan"), "{err}");
}

#[test]
fn bad_options_exit_2_and_help_and_version_work() {
    for args in [
        &["--preset", "llama"][..],
        &["--batch"],
        &["--batch", "0"],
        &["--policy", "sometimes"],
        &["--frobnicate"],
        &["--model", "/tmp", "--weights", "x.safetensors"],
        &["--format", "nvfp4"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_moe-demo")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Usage:") || err.contains("try '--help'"), "{args:?}: {err}");
    }
    let (ok, out, _) = demo(&["--help"]);
    assert!(ok && out.contains("Usage: moe-demo") && out.contains("--model <DIR>"), "{out}");
    let (ok, out, _) = demo(&["--version"]);
    assert!(ok && out.trim() == format!("moe-demo {}", env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn the_demo_runs_a_model_directory_of_every_layout() {
    if !driver_present() {
        common::report_skip(
            "the_demo_runs_a_model_directory_of_every_layout",
            "no CUDA driver (libcuda) on this machine",
        );
        return;
    }
    for layout in DirLayout::ALL {
        let written = write_model_dir(layout, "demo", 11);
        let dir = written.dir.to_str().unwrap();
        let (ok, out, err) = demo(&["--model", dir, "--prompt-tokens", "8", "--decode-steps", "2", "--verify"]);
        assert!(ok, "{layout:?}: {err}");
        assert!(out.contains(&format!("model: {dir} (")) && out.contains("2 MoE layers"), "{layout:?}:\n{out}");
        assert!(out.contains(layout.weight_layout().describe()), "{layout:?}:\n{out}");
        let line = out.lines().find(|l| l.starts_with("verify:")).unwrap();
        let max_rel: f64 = line.split("max_rel_err ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        assert!(max_rel < 3e-2, "{layout:?}: {line}");
        // What it loaded and how it ran, shown with `--nocapture`.
        for shown in out.lines().filter(|l| ["model:", "decode", "verify:"].iter().any(|p| l.starts_with(p))) {
            println!("{layout:?}: {shown}");
        }
        // The same run as JSON on stdout, nothing else there.
        let (ok, out, err) =
            demo(&["--model", dir, "--prompt-tokens", "8", "--decode-steps", "2", "--verify", "--json"]);
        assert!(ok, "{layout:?}: {err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{layout:?}: {e}:\n{out}"));
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["layers"], 2);
        assert!(json["verify"]["max_rel_err"].as_f64().unwrap() < 3e-2);
        std::fs::remove_dir_all(&written.dir).ok();
    }
}

#[test]
fn the_demo_runs_a_small_model_and_a_checkpoint() {
    if !driver_present() {
        common::report_skip("the_demo_runs_a_small_model_and_a_checkpoint", "no CUDA driver (libcuda) on this machine");
        return;
    }
    let small = ["--layers", "2", "--prompt-tokens", "16", "--decode-steps", "4", "--verify"];
    for extra in [
        &[][..],
        &["--eager"],
        &["--smem-limit", "101376"],
        &["--smem-limit", "101376", "--policy", "fixed-family-max"],
        &["--tuning", "heuristic"],
    ] {
        let args: Vec<&str> = small.iter().chain(extra).copied().collect();
        let (ok, out, err) = demo(&args);
        assert!(ok, "{args:?}: {err}");
        let decode =
            if extra.contains(&"--eager") { "decode (eager launches)" } else { "decode (one CUDA graph per step)" };
        for expected in ["prefill:", decode, "tokens/s", "verify: layer 0", "STAGES"] {
            assert!(out.contains(expected), "{args:?} printed no {expected:?}:\n{out}");
        }
        let err_line = out.lines().find(|l| l.starts_with("verify:")).unwrap();
        let max_rel: f64 = err_line.split("max_rel_err ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        assert!(max_rel < 3e-2, "{err_line}");
    }
    // The same shapes from a gpt-oss-layout checkpoint of one layer.
    let config = presets().into_iter().find(|p| p.name == "gpt-oss-20b").unwrap().config;
    let path = std::env::temp_dir().join(format!("stagefit-demo-{}.safetensors", std::process::id()));
    std::fs::write(&path, write_layer(0, &random_moe_weights(&config, 1)).unwrap()).unwrap();
    let (ok, out, err) =
        demo(&["--weights", path.to_str().unwrap(), "--prompt-tokens", "8", "--decode-steps", "2", "--verify"]);
    std::fs::remove_file(&path).ok();
    assert!(ok, "{err}");
    assert!(out.contains("loading 1 MoE layers"), "{out}");
    assert!(out.contains("verify: layer 0"), "{out}");
}

#[test]
fn a_broken_model_directory_is_refused_before_the_gpu() {
    let (ok, _, err) = demo(&["--model", "/nonexistent-model-dir"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent-model-dir/config.json"), "{err}");
    assert!(!err.contains("CUDA"), "the model is read before any GPU work: {err}");
}

#[test]
fn a_missing_tune_cache_is_refused_before_the_gpu() {
    let (ok, _, err) = demo(&["--tuning", "/nonexistent-tune-cache.json"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent-tune-cache.json"), "{err}");
    assert!(!err.contains("CUDA"), "the tune cache is read before any GPU work: {err}");
}
