//! The tuned-choice cache: the fastest (tactic, STAGES) measured for each problem on one device
//! and budget (written by `stagefit tune`), which selection prefers
//! for [`crate::TacticChoice::Auto`].
//!
//! A cache is valid only for the device name, compute capability, driver version and
//! shared-memory limit it was made with ([`TuneCache::fits`]). Entries are keyed by format,
//! experts, N, K and the row count rounded up to a power of two.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::device::DeviceInfo;
use crate::error::{Error, Result};
use crate::heuristic::ProblemShape;
use crate::plan::find_tactic;
use crate::Fp4Format;

/// The rows bucket of a problem: its row count rounded up to a power of two.
pub fn rows_bucket(rows: usize) -> usize {
    rows.max(1).next_power_of_two()
}

/// One tuned problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneEntry {
    /// `nvfp4` or `mxfp4`.
    pub format: String,
    /// Groups (experts).
    pub groups: usize,
    /// Output columns.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Rows bucket ([`rows_bucket`]).
    pub rows_bucket: usize,
    /// The fastest tactic.
    pub tactic: String,
    /// Its STAGES.
    pub stages: usize,
    /// Its median time, microseconds.
    pub time_us: f64,
    /// The heuristic's choice and time on the same problem, for comparison.
    pub heuristic: String,
    /// The heuristic's median time, microseconds.
    pub heuristic_us: f64,
    /// Every runnable variant's median time (the data the heuristic is fitted to).
    #[serde(default)]
    pub timings: Vec<VariantTiming>,
}

/// One variant's median time on a tuned problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantTiming {
    /// Tactic name.
    pub tactic: String,
    /// STAGES.
    pub stages: usize,
    /// Median time, microseconds.
    pub us: f64,
}

/// Tuned choices for one device and shared-memory limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneCache {
    /// Device name.
    pub device: String,
    /// Compute capability.
    pub compute_capability: (u32, u32),
    /// Driver version.
    pub driver_version: i32,
    /// Shared-memory limit in force when tuning.
    pub smem_limit: usize,
    /// The tuned problems.
    pub entries: Vec<TuneEntry>,
}

impl TuneCache {
    /// An empty cache for `device` at shared-memory limit `smem_limit`.
    pub fn empty(device: &DeviceInfo, smem_limit: usize) -> TuneCache {
        TuneCache {
            device: device.name.clone(),
            compute_capability: device.compute_capability,
            driver_version: device.driver_version,
            smem_limit,
            entries: Vec::new(),
        }
    }

    /// Whether the cache was made on this device, driver and limit.
    pub fn fits(&self, device: &DeviceInfo, smem_limit: usize) -> bool {
        self.device == device.name
            && self.compute_capability == device.compute_capability
            && self.driver_version == device.driver_version
            && self.smem_limit == smem_limit
    }

    /// The tuned (tactic, STAGES) for a problem, if any.
    pub fn lookup(&self, format: Fp4Format, problem: &ProblemShape) -> Option<(&str, usize)> {
        let bucket = rows_bucket(problem.rows);
        self.entries
            .iter()
            .find(|e| {
                e.format == format.name()
                    && (e.groups, e.n, e.k, e.rows_bucket) == (problem.groups, problem.n, problem.k, bucket)
            })
            .map(|e| (e.tactic.as_str(), e.stages))
    }

    /// Reads a cache written by [`TuneCache::save`]: a regular file of at most
    /// [`MAX_CACHE_BYTES`], every entry naming a known format, tactic and compiled STAGES
    /// ([`TuneCache::validate`]).
    pub fn load(path: &Path) -> Result<TuneCache> {
        use std::io::Read;
        let file = crate::files::open_regular_file(path).map_err(|problem| cache_error(path, problem))?;
        let mut text = String::new();
        file.take(MAX_CACHE_BYTES + 1).read_to_string(&mut text).map_err(|e| cache_error(path, e))?;
        if text.len() as u64 > MAX_CACHE_BYTES {
            return Err(cache_error(path, format!("larger than {MAX_CACHE_BYTES} bytes")));
        }
        let cache: TuneCache = serde_json::from_str(&text).map_err(|e| cache_error(path, e))?;
        cache.validate().map_err(|problem| cache_error(path, problem))?;
        Ok(cache)
    }

    /// Checks that every entry names a format, a tactic of the tile table and a STAGES that
    /// tactic is compiled at; returns the first that does not, described.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (i, e) in self.entries.iter().enumerate() {
            let problem = if !Fp4Format::ALL.iter().any(|f| f.name() == e.format) {
                format!("unknown format {:?}", e.format)
            } else {
                match find_tactic(&e.tactic) {
                    Err(_) => format!("unknown tactic {:?}", e.tactic),
                    Ok(t) if !t.stages.contains(&e.stages) => {
                        format!("{} is not compiled at STAGES={} (only {:?})", t.name, e.stages, t.stages)
                    }
                    Ok(_) => continue,
                }
            };
            return Err(format!("entry {i} ({} groups={} n={} k={}): {problem}", e.format, e.groups, e.n, e.k));
        }
        Ok(())
    }

    /// Writes the cache as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| cache_error(path, e))?;
        std::fs::write(path, text).map_err(|e| cache_error(path, e))
    }
}

/// The largest tune cache [`TuneCache::load`] reads.
pub const MAX_CACHE_BYTES: u64 = 64 << 20;

fn cache_error(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::TuneCache { path: path.display().to_string(), problem: problem.to_string() }
}
