//! The tuned-choice cache: the fastest (tactic, STAGES) measured for each problem on one device
//! and budget (written by `stagefit tune`), which selection prefers
//! for [`crate::TacticChoice::Auto`].
//!
//! A cache applies to the device name, compute capability and shared-memory limit it was made
//! with ([`TuneCache::compatibility`]); one made under another driver version still applies,
//! with a warning. Entries are keyed by format, experts, N, K and the row count rounded up to a
//! power of two; a problem whose bucket was not measured takes a measured bucket of the same
//! format, experts, N and K at most [`MAX_BUCKET_OCTAVES`] away, else the heuristic decides (a
//! cache measured on decode sizes says nothing of prefill, where other families run).
//!
//! The crate ships the caches measured on the project's devices ([`TuneCache::shipped`]):
//! a [`crate::GroupedGemm`] on such a device, at the limit the cache was made for or a smaller
//! one ([`Compatibility::LargerLimit`]), uses it unless told otherwise.

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
    /// Its time per call, microseconds: the median over graph replays of back-to-back calls on
    /// weight copies rotated past L2, averaged over the tune's routing draws
    /// (`crate::tools::tune`).
    pub time_us: f64,
    /// The heuristic's choice (that of the build that tuned) and time on the same problem, for
    /// comparison.
    pub heuristic: String,
    /// The heuristic's time per call, microseconds, timed the same way.
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
    /// Time per call, microseconds, timed as [`TuneEntry::time_us`].
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
    /// The device's multiprocessor count (what the heuristic reads besides the problem), so
    /// that the heuristic can be checked against the recorded timings without the device
    /// (`crate::tools::tune::check_heuristic`); 0 where a cache predates it.
    #[serde(default)]
    pub sm_count: usize,
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
            sm_count: device.sm_count,
            entries: Vec::new(),
        }
    }

    /// Whether the cache applies to `device` at `smem_limit`.
    pub fn compatibility(&self, device: &DeviceInfo, smem_limit: usize) -> Compatibility {
        if self.device != device.name || self.compute_capability != device.compute_capability {
            Compatibility::OtherDevice
        } else if self.smem_limit < smem_limit {
            Compatibility::SmallerLimit
        } else if self.driver_version != device.driver_version {
            Compatibility::OtherDriver
        } else if self.smem_limit > smem_limit {
            Compatibility::LargerLimit
        } else {
            Compatibility::Same
        }
    }

    /// The cache's device, compute capability, driver and limit, for messages.
    pub fn made_for(&self) -> String {
        format!(
            "{} (cc {}.{}, driver {}) at a {}-byte limit",
            self.device, self.compute_capability.0, self.compute_capability.1, self.driver_version, self.smem_limit
        )
    }

    /// The shipped cache for `device` at `smem_limit`, if the project measured one
    /// ([`SHIPPED_CACHES`]).
    pub fn shipped(device: &DeviceInfo, smem_limit: usize) -> Option<TuneCache> {
        // Parsed once per process, not once per handle.
        static PARSED: std::sync::OnceLock<Vec<TuneCache>> = std::sync::OnceLock::new();
        PARSED
            .get_or_init(|| {
                SHIPPED_CACHES
                    .iter()
                    .map(|(name, text)| {
                        serde_json::from_str(text).unwrap_or_else(|e| panic!("shipped cache {name}: {e}"))
                    })
                    .collect()
            })
            .iter()
            .find(|cache| cache.compatibility(device, smem_limit).applies())
            .cloned()
    }

    /// Adds `other`'s entries, each replacing an entry of the same problem; `other` must be
    /// for the same device, compute capability and limit (the newer driver version is kept).
    pub fn merge(&mut self, other: TuneCache) -> std::result::Result<(), String> {
        if (&self.device, self.compute_capability, self.smem_limit)
            != (&other.device, other.compute_capability, other.smem_limit)
        {
            return Err(format!("made for {}, not {}", self.made_for(), other.made_for()));
        }
        self.driver_version = self.driver_version.max(other.driver_version);
        for entry in other.entries {
            match self.entries.iter_mut().find(|e| e.key() == entry.key()) {
                Some(old) => *old = entry,
                None => self.entries.push(entry),
            }
        }
        Ok(())
    }

    /// The tuned (tactic, STAGES) for a problem: the entry of its rows bucket, else of the
    /// nearest measured bucket (by ratio; the smaller of two equally near) of the same format,
    /// experts, N and K, if one is at most [`MAX_BUCKET_OCTAVES`] away.
    pub fn lookup(&self, format: Fp4Format, problem: &ProblemShape) -> Option<(&str, usize)> {
        let bucket = rows_bucket(problem.rows);
        let distance = |e: &TuneEntry| (e.rows_bucket.max(1).ilog2().abs_diff(bucket.ilog2()), e.rows_bucket);
        self.entries
            .iter()
            .filter(|e| e.format == format.name() && (e.groups, e.n, e.k) == (problem.groups, problem.n, problem.k))
            .filter(|e| distance(e).0 <= MAX_BUCKET_OCTAVES)
            .min_by_key(|e| distance(e))
            .map(|e| (e.tactic.as_str(), e.stages))
    }

    /// Reads a cache written by [`TuneCache::save`]: a regular file of at most
    /// [`MAX_CACHE_BYTES`], every entry naming a known format, tactic and compiled STAGES
    /// ([`TuneCache::validate`]).
    pub fn load(path: &Path) -> Result<TuneCache> {
        let text =
            crate::files::read_small_text(path, MAX_CACHE_BYTES).map_err(|problem| cache_error(path, problem))?;
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

    /// Writes the cache as JSON, atomically: to a temporary file beside `path`, then renamed
    /// over it, so a reader sees the old cache or the new one, never part of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| cache_error(path, e))?;
        let name = path.file_name().ok_or_else(|| cache_error(path, "not a file name"))?;
        let mut temporary = name.to_os_string();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = path.with_file_name(temporary);
        std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path)).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            cache_error(path, e)
        })
    }
}

impl TuneEntry {
    /// The problem an entry is for: format, groups, N, K and rows bucket.
    fn key(&self) -> (&str, usize, usize, usize, usize) {
        (&self.format, self.groups, self.n, self.k, self.rows_bucket)
    }
}

/// Whether a cache applies to a device and limit ([`TuneCache::compatibility`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compatibility {
    /// Made on this device, driver and limit.
    Same,
    /// Made on this device (at this limit or a larger one) under another driver version: it
    /// applies, with a warning (a driver update rarely changes which variant is fastest).
    OtherDriver,
    /// Made on this device and driver at a larger shared-memory limit: it applies. A limit only
    /// takes variants away, and a variant runs the same whatever the limit (its launch asks
    /// for its own layout's bytes), so an entry whose variant fits is still the fastest that
    /// fits; an entry whose variant does not fit falls back to the heuristic.
    LargerLimit,
    /// Made at a smaller shared-memory limit: refused (the variants only this limit runs were
    /// never timed).
    SmallerLimit,
    /// Made on another device or compute capability: refused.
    OtherDevice,
}

impl Compatibility {
    /// Whether the cache is used.
    pub fn applies(self) -> bool {
        matches!(self, Compatibility::Same | Compatibility::OtherDriver | Compatibility::LargerLimit)
    }
}

/// The caches measured on the project's devices, shipped with the crate: (file, JSON).
pub const SHIPPED_CACHES: &[(&str, &str)] =
    &[("nvidia-h100-80gb-hbm3.json", include_str!("tuned/nvidia-h100-80gb-hbm3.json"))];

/// How many powers of two a measured rows bucket may be from a problem's for its entry to
/// apply ([`TuneCache::lookup`]).
pub const MAX_BUCKET_OCTAVES: u32 = 1;

/// The largest tune cache [`TuneCache::load`] reads.
pub const MAX_CACHE_BYTES: u64 = 64 << 20;

fn cache_error(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::TuneCache { path: path.display().to_string(), problem: problem.to_string() }
}
