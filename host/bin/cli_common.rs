//! What the two binaries share: logging, output that survives a closed pipe, JSON with a
//! schema version, tables, progress bars, command-line value parsers and the exit status.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::{presets, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use stagefit::moe::{presets as model_presets, Preset};
use stagefit::{Error, Fp4Format};

/// The version of the JSON documents the binaries write; raised when a field changes meaning
/// or goes away.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Diagnostics through `tracing` on stderr, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Writes `text` and a newline to stdout. A closed pipe comes back as an error that
/// [`exit_status`] turns into a quiet, successful exit.
pub fn say(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Where `--json [FILE]` sends its document: no value (or `-`) means stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonTarget {
    /// Standard output (the human-readable output is then left out).
    Stdout,
    /// A file.
    File(PathBuf),
}

impl JsonTarget {
    /// The target of a `--json` value as clap gives it (`-` when the flag has no value).
    pub fn from_arg(arg: &Option<PathBuf>) -> Option<JsonTarget> {
        arg.as_ref().map(|p| if p.as_os_str() == "-" { JsonTarget::Stdout } else { JsonTarget::File(p.clone()) })
    }

    /// Refuses a file that cannot be written, before any GPU work; a file this check creates
    /// is removed again.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        match self {
            JsonTarget::Stdout => Ok(()),
            JsonTarget::File(path) => check_writable(path),
        }
    }

    /// Writes `report` as `{"schema_version", "command", ...report}`.
    pub fn write(&self, command: &str, report: &impl Serialize) -> anyhow::Result<()> {
        #[derive(Serialize)]
        struct Document<'a, T: Serialize> {
            schema_version: u32,
            command: &'a str,
            #[serde(flatten)]
            report: &'a T,
        }
        let text = serde_json::to_string_pretty(&Document { schema_version: JSON_SCHEMA_VERSION, command, report })?;
        match self {
            JsonTarget::Stdout => say(text),
            JsonTarget::File(path) => {
                use anyhow::Context;
                std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
            }
        }
    }
}

/// Refuses an output path that cannot be written, before any GPU work; a file this check
/// creates is removed again.
pub fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if !existed {
        std::fs::remove_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A table with a header row (Markdown-style, so it pastes into notes): the columns listed in
/// `text_columns` left-aligned, the others (numbers) right-aligned.
pub fn table(header: &[&str], text_columns: &[usize]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(header.iter().copied());
    for (i, column) in table.column_iter_mut().enumerate() {
        if !text_columns.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// A progress bar of `len` steps on stderr, drawn only on a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A model preset by name.
pub fn parse_preset(name: &str) -> Result<Preset, String> {
    let all = model_presets();
    let names: Vec<&str> = all.iter().map(|p| p.name).collect();
    let list = names.join(", ");
    all.iter().find(|p| p.name == name).cloned().ok_or_else(|| format!("unknown preset (one of {list})"))
}

/// An FP4 format by name.
pub fn parse_format(name: &str) -> Result<Fp4Format, String> {
    Fp4Format::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| "unknown format (nvfp4 or mxfp4)".to_string())
}

/// The exit status of a run: 0 on success and on a closed stdout (`… | head`), 1 after an
/// error, printed with its causes. (Usage errors exit 2 from clap before this.)
pub fn exit_status(program: &str, result: anyhow::Result<()>) -> ExitCode {
    let Err(error) = result else { return ExitCode::SUCCESS };
    let closed_pipe = error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if closed_pipe {
        return ExitCode::SUCCESS;
    }
    if error.chain().any(|cause| matches!(cause.downcast_ref::<Error>(), Some(Error::NoDriver))) {
        eprintln!(
            "{program}: error: no CUDA driver on this machine, so nothing can run here. `stagefit plan --arch sm_121a --smem-limit 101376` shows what would run on a DGX Spark without a GPU."
        );
        return ExitCode::FAILURE;
    }
    eprintln!("{program}: error: {error:#}");
    ExitCode::FAILURE
}
