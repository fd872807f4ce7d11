//! The tile table: every tile configuration ("tactic") that is compiled, with the STAGES it is
//! compiled at.
//!
//! The table is written once, in [`with_tactics!`](crate::with_tactics); [`TACTICS`] (read by the host) and the
//! kernel entry points (built for the GPU) are both generated from it. Each tactic is compiled
//! at every STAGES from [`MIN_STAGES`] up to `min(MAX_STAGES, deepest that fits
//! COMPILE_LIMIT_BYTES)` ([`compiled_stage_range`]); a compile-time check below holds each row
//! to that rule.

use crate::layout::SmemLayout;
use crate::packing::STRIP_ROWS;

/// The shallowest pipeline compiled (one stage loading while one is consumed).
pub const MIN_STAGES: usize = 2;
/// The deepest pipeline compiled.
pub const MAX_STAGES: usize = 8;
/// The largest per-block opt-in shared memory of any shipped target (H100/B200: 227 KiB).
pub const COMPILE_LIMIT_BYTES: usize = 232448;

/// How a kernel family maps a tile of the problem (`M` rows of activations, `N` output
/// columns = weight rows, `K`) onto `mma.sync.m16n8k16`, whose tile is 16 rows by 8 columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// Activations are the MMA's 16-row operand and dequantized weights its 8 columns: an MMA
    /// covers 16 rows by 8 columns of the output. Every warp runs all of a stage's K.
    Mma,
    /// Swap-AB: dequantized weights are the 16-row operand and activations the 8 columns, so
    /// an MMA covers 8 rows by 16 columns and a group of 1-8 rows wastes at most 7 of 8 MMA
    /// columns instead of 15 of 16 rows. The warps of a block split each stage's K
    /// ([`SWAP_AB_WARP_K`] each) and sum their accumulators at the end of a tile. Built for
    /// decode: a few rows per group.
    SwapAb,
    /// Hopper's warpgroup MMA (`wgmma.mma_async`, sm_90a only): each warpgroup of four warps
    /// multiplies 64 dequantized weight rows, held in registers as the A operand, by the
    /// tile's `BM` activation rows, read by the tensor cores from shared memory as the B
    /// operand (`m64nBMk16`). A "MMA tile" of [`TileShape`] is one warp's 16 weight rows by 8
    /// activation rows of that instruction. Built for prefill: many rows per group.
    Wgmma,
}

impl Family {
    /// Whether the family's kernels use instructions only arch-specific Hopper PTX has
    /// (`wgmma`): they are compiled for [`Arch::Sm90a`](crate::arch::Arch::Sm90a) only.
    #[inline]
    pub const fn needs_wgmma(self) -> bool {
        matches!(self, Family::Wgmma)
    }
}

/// K-elements each warp of a [`Family::SwapAb`] tile takes from a stage: 32 per lane of a quad,
/// one 16-byte chunk of codes per weight row.
pub const SWAP_AB_WARP_K: usize = 128;

/// K-elements of a [`Family::Wgmma`] stage: one 128-byte swizzled row of bf16 activations.
pub const WGMMA_BK: usize = 64;
/// Warps of one warpgroup, the unit that issues a `wgmma`.
pub const WARPGROUP_WARPS: usize = 4;
/// Activation rows (`N` of the instruction) of the `wgmma` shapes the kernels issue.
pub const WGMMA_ROWS: [usize; 3] = [64, 128, 256];

/// A block tile and its warp layout. Each warp computes `mma_m × mma_n` tensor-core tiles
/// (each [`TileShape::mma_rows`] × [`TileShape::mma_cols`] of the output, by family), so the
/// block tile is `BM = warps_m·mma_m·mma_rows` by `BN = warps_n·mma_n·mma_cols`, stepping `bk`
/// along K, which `warps_k` warps split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileShape {
    /// How the tile maps onto the MMA.
    pub family: Family,
    /// Warps along M.
    pub warps_m: usize,
    /// Warps along N.
    pub warps_n: usize,
    /// Warps along K (1 for [`Family::Mma`]).
    pub warps_k: usize,
    /// MMA tiles per warp along M.
    pub mma_m: usize,
    /// MMA tiles per warp along N.
    pub mma_n: usize,
    /// K-elements per pipeline stage.
    pub bk: usize,
}

impl TileShape {
    /// Output rows (activation rows) one MMA covers.
    #[inline]
    pub const fn mma_rows(self) -> usize {
        match self.family {
            Family::Mma => 16,
            Family::SwapAb | Family::Wgmma => 8,
        }
    }
    /// Output columns (weight rows) one MMA covers.
    #[inline]
    pub const fn mma_cols(self) -> usize {
        match self.family {
            Family::Mma => 8,
            Family::SwapAb | Family::Wgmma => 16,
        }
    }
    /// Rows of the block tile.
    #[inline]
    pub const fn bm(self) -> usize {
        self.warps_m * self.mma_m * self.mma_rows()
    }
    /// Columns of the block tile.
    #[inline]
    pub const fn bn(self) -> usize {
        self.warps_n * self.mma_n * self.mma_cols()
    }
    /// K step of the block tile.
    #[inline]
    pub const fn bk(self) -> usize {
        self.bk
    }
    /// Threads per block.
    #[inline]
    pub const fn threads(self) -> usize {
        self.warps_m * self.warps_n * self.warps_k * 32
    }
}

/// One compiled tile configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tactic {
    /// Name, `m{BM}n{BN}k{BK}w{warps_m}x{warps_n}` ([`Family::Mma`]),
    /// `swm{BM}n{BN}k{BK}w{warps_n}k{warps_k}` ([`Family::SwapAb`]) or `wgm{BM}n{BN}k{BK}`
    /// ([`Family::Wgmma`]); part of every kernel name.
    pub name: &'static str,
    /// The tile shape.
    pub tile: TileShape,
    /// The STAGES it is compiled at, ascending and contiguous.
    pub stages: &'static [usize],
}

impl Tactic {
    /// The deepest STAGES compiled.
    #[inline]
    pub const fn max_stages_compiled(&self) -> usize {
        self.stages[self.stages.len() - 1]
    }
}

/// Calls `$callback! { name Family (warps_m, warps_n, warps_k, mma_m, mma_n, bk) [stages...]; ... }`
/// with the tile table. This is the only place tactics are listed.
#[macro_export]
macro_rules! with_tactics {
    ($callback:ident) => {
        $callback! {
            "m16n64k128w1x4"    Mma    (1, 4, 1, 1, 2, 128) [2, 3, 4, 5, 6, 7, 8];
            "m16n128k64w1x4"    Mma    (1, 4, 1, 1, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m16n128k128w1x4"   Mma    (1, 4, 1, 1, 4, 128) [2, 3, 4, 5, 6, 7, 8];
            "m16n256k64w1x8"    Mma    (1, 8, 1, 1, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m16n64k128w1x8"    Mma    (1, 8, 1, 1, 1, 128) [2, 3, 4, 5, 6, 7, 8];
            "m16n128k128w1x8"   Mma    (1, 8, 1, 1, 2, 128) [2, 3, 4, 5, 6, 7, 8];
            "m32n64k128w1x4"    Mma    (1, 4, 1, 2, 2, 128) [2, 3, 4, 5, 6, 7, 8];
            "m32n128k64w1x4"    Mma    (1, 4, 1, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m32n128k128w1x4"   Mma    (1, 4, 1, 2, 4, 128) [2, 3, 4, 5, 6, 7, 8];
            "m32n256k64w1x8"    Mma    (1, 8, 1, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m64n64k64w2x2"     Mma    (2, 2, 1, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m64n64k128w2x2"    Mma    (2, 2, 1, 2, 4, 128) [2, 3, 4, 5, 6, 7, 8];
            "m64n128k64w2x4"    Mma    (2, 4, 1, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m64n256k64w2x4"    Mma    (2, 4, 1, 2, 8, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n64k64w4x2"    Mma    (4, 2, 1, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n128k64w2x4"   Mma    (2, 4, 1, 4, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n128k128w2x4"  Mma    (2, 4, 1, 4, 4, 128) [2, 3, 4, 5];
            "m128n256k64w2x4"   Mma    (2, 4, 1, 4, 8, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n64k128w4x2"   Mma    (4, 2, 1, 2, 4, 128) [2, 3, 4, 5, 6];
            "swm8n32k512w1k4"   SwapAb (1, 1, 4, 1, 2, 512) [2, 3, 4, 5, 6, 7, 8];
            "swm8n64k512w1k4"   SwapAb (1, 1, 4, 1, 4, 512) [2, 3, 4, 5, 6, 7, 8];
            "swm8n64k256w1k2"   SwapAb (1, 1, 2, 1, 4, 256) [2, 3, 4, 5, 6, 7, 8];
            "swm8n128k256w2k2"  SwapAb (1, 2, 2, 1, 4, 256) [2, 3, 4, 5, 6, 7, 8];
            "wgm64n128k64"      Wgmma  (1, 8, 1, 8, 1, 64)  [2, 3, 4, 5, 6, 7, 8];
            "wgm128n128k64"     Wgmma  (1, 8, 1, 16, 1, 64) [2, 3, 4, 5, 6, 7, 8];
            "wgm256n128k64"     Wgmma  (1, 8, 1, 32, 1, 64) [2, 3, 4];
        }
    };
}

macro_rules! tactic_table {
    ($($name:literal $family:ident ($wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal) [$($s:literal),+];)+) => {
        /// Every compiled tactic, from decode-sized tiles to prefill-sized ones.
        pub const TACTICS: &[Tactic] = &[$(
            Tactic {
                name: $name,
                tile: TileShape {
                    family: Family::$family,
                    warps_m: $wm,
                    warps_n: $wn,
                    warps_k: $wk,
                    mma_m: $mm,
                    mma_n: $mn,
                    bk: $bk,
                },
                stages: &[$($s),+],
            },
        )+];
    };
}
with_tactics!(tactic_table);

/// The deepest pipeline of a [`Family::Wgmma`] tile with 256 activation rows: its 128 f32
/// accumulators per thread leave ptxas no registers for a deeper ring's bookkeeping (at 5 and 6
/// STAGES it spills 20-72 bytes; `tests/ptxas.rs` fails on any spill).
pub const WGMMA_256_MAX_STAGES: usize = 4;

/// The STAGES range rule: `MIN_STAGES..=min(MAX_STAGES, deepest fitting COMPILE_LIMIT_BYTES)`,
/// and at most [`WGMMA_256_MAX_STAGES`] for a 256-row warpgroup tile.
#[inline]
pub const fn compiled_stage_range(tile: TileShape) -> (usize, usize) {
    let fit = SmemLayout::max_stages_within(tile, COMPILE_LIMIT_BYTES);
    let mut max = if fit < MAX_STAGES { fit } else { MAX_STAGES };
    if matches!(tile.family, Family::Wgmma) && tile.bm() == 256 && max > WGMMA_256_MAX_STAGES {
        max = WGMMA_256_MAX_STAGES;
    }
    (MIN_STAGES, max)
}

/// What the kernels' copy plan assumes of a tile.
///
/// [`Family::Mma`] (see `TileCopies` in the device code): one warp along K; the thread count is
/// a multiple of the 16-byte chunks per row of A (`BK/8`) and of W (`BK/32`); the rows one
/// thread's successive A chunks are apart keep the A swizzle's row parity, and those of W keep
/// the W swizzle's bank line; one K-tile's scale chunks (`BK/16 · BN/16`) need at most one per
/// thread; `BK` is 64 or 128; a thread's successive W chunks are whole strips of the device
/// chunk order apart (`crate::packing`).
///
/// [`Family::SwapAb`] (see `swap_ab` in the device code): one warp along M; each warp along K
/// takes [`SWAP_AB_WARP_K`]; every operand's chunk count per stage is a multiple of the
/// thread count (whole rounds of copies).
///
/// [`Family::Wgmma`] (see `wgmma` in the device code): whole warpgroups of one 16-row MMA
/// tile per warp along N, one warp along M and K; `BK` is [`WGMMA_BK`] and `BM` one of
/// [`WGMMA_ROWS`]; the A chunks (8 per row) come in whole rounds, each thread's rows keeping
/// their swizzle row (`row % 8`); each thread copies exactly one W chunk (2 per weight row)
/// and at most one scale chunk.
pub const fn copies_fit_the_threads(tile: TileShape) -> bool {
    let (bk, threads) = (tile.bk, tile.threads());
    if threads == 0 {
        return false;
    }
    match tile.family {
        Family::Mma => {
            if tile.warps_k != 1 || !(bk == 64 || bk == 128) {
                return false;
            }
            let (a_cpr, w_cpr) = (bk / 8, bk / 32);
            let w_rows_per_line = 128 / (bk / 2);
            threads % a_cpr == 0
                && threads % w_cpr == 0
                && (threads / a_cpr) % 2 == 0
                && (threads / w_cpr) % (w_rows_per_line * w_cpr) == 0
                && (threads / w_cpr).is_multiple_of(STRIP_ROWS)
                && bk / 16 * (tile.bn() / 16) <= threads
        }
        Family::SwapAb => {
            let (a_chunks, w_chunks) = (tile.bm() * bk / 8, tile.bn() * bk / 32);
            tile.warps_m == 1
                && bk == tile.warps_k * SWAP_AB_WARP_K
                && a_chunks % threads == 0
                && w_chunks % threads == 0
                && tile.bn().is_multiple_of(32)
        }
        Family::Wgmma => {
            let bm = tile.bm();
            tile.warps_m == 1
                && tile.warps_k == 1
                && tile.mma_n == 1
                && tile.warps_n.is_multiple_of(WARPGROUP_WARPS)
                && bk == WGMMA_BK
                && (bm == WGMMA_ROWS[0] || bm == WGMMA_ROWS[1] || bm == WGMMA_ROWS[2])
                && (bm * bk / 8).is_multiple_of(threads)
                && (threads / 8).is_multiple_of(8)
                && tile.bn() * bk / 32 == threads
                && bk / 16 * (tile.bn() / 16) <= threads
        }
    }
}

const fn table_follows_stage_rule() -> bool {
    let mut i = 0;
    while i < TACTICS.len() {
        let t = &TACTICS[i];
        let (lo, hi) = compiled_stage_range(t.tile);
        if t.stages.len() != hi + 1 - lo {
            return false;
        }
        let mut j = 0;
        while j < t.stages.len() {
            if t.stages[j] != lo + j {
                return false;
            }
            j += 1;
        }
        if !copies_fit_the_threads(t.tile) {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(table_follows_stage_rule(), "a tactic's STAGES list breaks the compiled-stage rule");
