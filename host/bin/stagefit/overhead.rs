//! `stagefit overhead`: the host cost of a grouped-GEMM call.

use std::path::PathBuf;

use stagefit::tools::overhead::{measure, GRAPH_CALLS};

use crate::cli_common::{say, JsonTarget};

/// The CPU cost of a grouped-GEMM call, cold and steady, eager and in a CUDA graph.
#[derive(clap::Args)]
pub struct Args {
    /// Calls to time.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Write the report as JSON to FILE, or to stdout without a FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let json = JsonTarget::from_arg(&args.json);
    if let Some(target) = &json {
        target.check_writable()?;
    }
    let r = measure(args.device, args.calls)?;
    if let Some(target) = &json {
        target.write("overhead", &r)?;
        if *target == JsonTarget::Stdout {
            return Ok(());
        }
    }
    let (experts, rows, n, k) = r.problem;
    say(format!(
        "problem: {experts} experts, {rows} rows, N={n}, K={k} (gpt-oss-20b down, 1 token); variant {}",
        r.variant
    ))?;
    say(format!(
        "cold start: first call returns after {:.2} ms, its result is ready after {:.2} ms",
        r.cold_first_call_ms, r.cold_first_result_ms
    ))?;
    say(format!(
        "modules loaded by the handle: {} (of {} tactics x 2 formats)",
        r.modules_loaded,
        stagefit::TACTICS.len()
    ))?;
    say(format!(
        "steady-state CPU time per call over {} calls: median {:.2} us, p99 {:.2} us, max {:.2} us (variant choice alone: median {:.2} us)",
        r.calls, r.cpu_us_median, r.cpu_us_p99, r.cpu_us_max, r.select_us_median
    ))?;
    say(format!(
        "free device memory before/after the calls: {} / {} bytes",
        r.free_bytes_before_after.0, r.free_bytes_before_after.1
    ))?;
    say(format!(
        "kernel time per call: eager {:.1} us, in a CUDA graph of {GRAPH_CALLS} calls {:.1} us; graph output bit-identical: {}",
        r.eager_us, r.graph_us_per_call, r.graph_output_identical
    ))
}
