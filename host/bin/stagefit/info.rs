//! `stagefit info`: the real device, its limits, the tune cache in use, and the plan.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use stagefit::device::DeviceInfo;
use stagefit::GroupedGemm;

use crate::cli_common::{say, JsonTarget};
use crate::plan::{print, report, PlanReport};

/// The device, its shared-memory limits, the tune cache in use and the plan.
#[derive(clap::Args)]
pub struct Args {
    /// Limit shared memory per block to BYTES (the smaller of it and the device's opt-in wins).
    #[arg(long, value_name = "BYTES")]
    budget: Option<usize>,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Write the report as JSON to FILE, or to stdout without a FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct InfoReport {
    device: DeviceInfo,
    /// The tune cache `auto` prefers: what it was made for, or null.
    tune_cache: Option<String>,
    plan: PlanReport,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let json = JsonTarget::from_arg(&args.json);
    if let Some(target) = &json {
        target.check_writable()?;
    }
    let ctx = stagefit::device::context(args.device)?;
    let gemm = GroupedGemm::new(&ctx, args.budget).context("reading the device")?;
    let info = gemm.device().clone();
    let limit = gemm.limit();
    let report = InfoReport {
        tune_cache: gemm.tuning().map(|c| c.made_for()),
        plan: report(gemm.arch(), limit.bytes(), gemm.plan()),
        device: info.clone(),
    };
    if let Some(target) = &json {
        target.write("info", &report)?;
        if *target == JsonTarget::Stdout {
            return Ok(());
        }
    }
    say(format!(
        "device {}: {} (compute capability {}.{}), driver {}",
        info.ordinal, info.name, info.compute_capability.0, info.compute_capability.1, info.driver_version
    ))?;
    say(format!(
        "shared memory: {} bytes opt-in per block, {} reserved per block, {} per multiprocessor; {} multiprocessors",
        info.smem_optin_per_block, info.smem_reserved_per_block, info.smem_per_sm, info.sm_count
    ))?;
    say(format!("PTX: {}; limit in force: {} bytes ({})", gemm.arch().name(), limit.bytes(), limit.source()))?;
    say(format!(
        "tune cache: {}",
        report
            .tune_cache
            .as_deref()
            .map_or("none (the heuristic chooses)".to_string(), |c| format!("shipped, made on {c}"))
    ))?;
    say("")?;
    print(&report.plan)
}
