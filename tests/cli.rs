//! The `stagefit` command, run as a user would.

mod common;

use std::process::Command;

use stagefit::device::driver_present;
use stagefit::{Arch, SmemLayout, TACTICS};

fn stagefit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stagefit")).args(args).output().expect("running stagefit")
}

#[test]
fn plan_for_gb10_lists_every_tactic_whose_two_stage_footprint_fits() {
    let out = stagefit(&["plan", "--arch", "sm_121a", "--smem-limit", "101376", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["arch"], "sm_121a");
    assert_eq!(json["budget_bytes"], 101376);
    let rows = json["tactics"].as_array().unwrap();
    assert_eq!(rows.len(), TACTICS.len());
    for (row, tactic) in rows.iter().zip(TACTICS) {
        assert_eq!(row["name"], tactic.name);
        // The wgmma family is not compiled for sm_121a: listed, not available, never fits.
        let available = Arch::Sm121a.runs(tactic.tile.family);
        assert_eq!(row["available"], available, "{}", tactic.name);
        let two_stage = SmemLayout::new(tactic.tile, 2).total_bytes;
        assert_eq!(row["fits"], available && two_stage <= 101376, "{}", tactic.name);
        if available && two_stage <= 101376 {
            let stages = row["stages"].as_u64().unwrap() as usize;
            assert_eq!(row["smem_bytes"], SmemLayout::new(tactic.tile, stages).total_bytes);
            assert!(row["smem_bytes"].as_u64().unwrap() <= 101376);
        } else {
            assert!(row["stages"].is_null() && row["smem_bytes"].is_null());
        }
        assert_eq!(row["max_stages_compiled"], tactic.max_stages_compiled());
    }
}

#[test]
fn plain_plan_counts_what_a_family_maximum_policy_loses() {
    let out = stagefit(&["plan", "--arch", "sm_121a", "--smem-limit", "101376"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("23 of the 23 tactics compiled for sm_121a runnable"), "{text}");
    assert!(text.contains("would launch 6 and lose 17"), "{text}");
    assert!(text.contains("not on sm_121a"), "{text}");
    // sm_90a has the wgmma family too.
    let out = stagefit(&["plan", "--arch", "sm_90a", "--smem-limit", "101376"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("26 of the 26 tactics compiled for sm_90a runnable"), "{text}");
    // Without --smem-limit the architecture's reference part is planned for.
    let out = stagefit(&["plan", "--arch", "sm_90"]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("limit 232448 bytes"));
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    for args in [
        &["plan", "--arch", "sm_75"][..],
        &["plan"],
        &["plan", "--arch", "sm_90", "--smem-limit", "lots"],
        &["plan", "--arch", "sm_90", "--tokens", "abc"],
        &["frobnicate"],
        &[],
    ] {
        let out = stagefit(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Usage:") || err.contains("try '--help'"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn every_command_has_help_and_a_version() {
    let version = stagefit(&["--version"]);
    assert!(version.status.success());
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("stagefit {}", env!("CARGO_PKG_VERSION")));
    for command in [&[][..], &["info"], &["plan"], &["bench"], &["tune"], &["selftest"], &["overhead"]] {
        for flag in ["--help", "-h"] {
            let args: Vec<&str> = command.iter().copied().chain([flag]).collect();
            let out = stagefit(&args);
            assert!(out.status.success(), "{args:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Usage: stagefit"), "{args:?}: {text}");
        }
    }
    let bench = String::from_utf8_lossy(&stagefit(&["bench", "--help"]).stdout).into_owned();
    for flag in ["--device", "--json [<FILE>]", "--tuning", "--timing"] {
        assert!(bench.contains(flag), "bench --help lacks {flag}");
    }
}

#[test]
fn json_carries_a_schema_version_and_goes_where_asked() {
    let out = stagefit(&["plan", "--arch", "sm_90", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["command"], "plan");
    let path = std::env::temp_dir().join(format!("stagefit-plan-{}.json", std::process::id()));
    let out = stagefit(&["plan", "--arch", "sm_90", "--json", path.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("runnable with STAGES chosen at run time"),
        "the table still prints"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["arch"], "sm_90");
    std::fs::remove_file(path).ok();
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::process::Stdio;
    // `stagefit plan | head -0`: the reader is gone before the first line is written (the
    // child is still starting when its pipe closes), so every write meets a closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagefit"))
        .args(["plan", "--arch", "sm_121a"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn info_without_a_gpu_points_to_plan() {
    if driver_present() {
        common::report_skip("info_without_a_gpu_points_to_plan", "this machine has a CUDA driver");
        return;
    }
    let out = stagefit(&["info"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stagefit plan --arch"));
}

#[test]
fn info_on_a_gpu_shows_the_device_limit_and_plan() {
    if !driver_present() {
        common::report_skip(
            "info_on_a_gpu_shows_the_device_limit_and_plan",
            "no CUDA driver (libcuda) on this machine",
        );
        return;
    }
    let out = stagefit(&["info", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let optin = json["device"]["smem_optin_per_block"].as_u64().unwrap();
    assert!(optin >= 49152);
    assert_eq!(json["plan"]["budget_bytes"], optin);
}

#[test]
fn tune_and_bench_check_their_arguments_before_the_gpu() {
    for (args, words) in [
        (&["tune", "--out", "/nonexistent-dir/tuned.json"][..], "/nonexistent-dir/tuned.json"),
        (&["tune", "--out", "tuned.json", "--preset", "llama"], "invalid value 'llama' for '--preset"),
        (&["tune", "--out", "tuned.json", "--tokens", "8,x"], "invalid value 'x' for '--tokens"),
        (&["bench", "--json", "/nonexistent-dir/bench.json"], "/nonexistent-dir/bench.json"),
    ] {
        let out = stagefit(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(!std::path::Path::new("tuned.json").exists(), "{args:?} left a file behind");
    }
}
