//! The `stagefit` command: the plan for a device or an architecture, and the tools (bench,
//! tune, selftest, overhead). `stagefit --help` and `stagefit <command> --help` describe each.

#[path = "../cli_common.rs"]
mod cli_common;

mod bench;
mod info;
mod overhead;
mod plan;
mod selftest;
mod tune;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Pipelined FP4 grouped GEMM for MoE layers: which (tactic, STAGES) fit a device's shared
/// memory, and the tools that time, tune and test them.
#[derive(Parser)]
#[command(name = "stagefit", version, propagate_version = true)]
#[command(after_help = "Logs: RUST_LOG=info (or debug) shows what the library and the tools do.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Info(info::Args),
    Plan(plan::Args),
    Bench(bench::Args),
    Tune(tune::Args),
    Selftest(selftest::Args),
    Overhead(overhead::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli_common::init_logging();
    let result = match cli.command {
        Command::Info(args) => info::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Selftest(args) => selftest::run(args),
        Command::Overhead(args) => overhead::run(args),
    };
    cli_common::exit_status("stagefit", result)
}
