//! The tile table: every tile configuration ("tactic") that is compiled, with the STAGES it is
//! compiled at.
//!
//! The table is written once, in [`with_tactics!`](crate::with_tactics); [`TACTICS`] (read by the host) and the
//! kernel entry points (built for the GPU) are both generated from it. Each tactic is compiled
//! at every STAGES from [`MIN_STAGES`] up to `min(MAX_STAGES, deepest that fits
//! COMPILE_LIMIT_BYTES)`; a compile-time check below holds each row to that rule.

use crate::layout::SmemLayout;

/// The shallowest pipeline compiled (one stage loading while one is consumed).
pub const MIN_STAGES: usize = 2;
/// The deepest pipeline compiled.
pub const MAX_STAGES: usize = 8;
/// The largest per-block opt-in shared memory of any shipped target (H100/B200: 227 KiB).
pub const COMPILE_LIMIT_BYTES: usize = 232448;

/// A block tile and its warp layout. Each warp computes `mma_m × mma_n` tensor-core tiles of
/// 16×8, so the block tile is `BM = warps_m·mma_m·16` by `BN = warps_n·mma_n·8`, stepping `bk`
/// along K.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileShape {
    /// Warps along M.
    pub warps_m: usize,
    /// Warps along N.
    pub warps_n: usize,
    /// 16-row MMA tiles per warp along M.
    pub mma_m: usize,
    /// 8-column MMA tiles per warp along N.
    pub mma_n: usize,
    /// K-elements per pipeline stage: 64 or 128.
    pub bk: usize,
}

impl TileShape {
    /// Rows of the block tile.
    #[inline]
    pub const fn bm(self) -> usize {
        self.warps_m * self.mma_m * 16
    }
    /// Columns of the block tile.
    #[inline]
    pub const fn bn(self) -> usize {
        self.warps_n * self.mma_n * 8
    }
    /// K step of the block tile.
    #[inline]
    pub const fn bk(self) -> usize {
        self.bk
    }
    /// Threads per block.
    #[inline]
    pub const fn threads(self) -> usize {
        self.warps_m * self.warps_n * 32
    }
}

/// One compiled tile configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tactic {
    /// Name, `m{BM}n{BN}k{BK}w{warps_m}x{warps_n}`; part of every kernel name.
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

/// Calls `$callback! { name (warps_m, warps_n, mma_m, mma_n, bk) [stages...]; ... }` with the
/// tile table. This is the only place tactics are listed.
#[macro_export]
macro_rules! with_tactics {
    ($callback:ident) => {
        $callback! {
            "m16n64k128w1x4"   (1, 4, 1, 2, 128) [2, 3, 4, 5, 6, 7, 8];
            "m16n128k64w1x4"   (1, 4, 1, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m16n128k128w1x4"  (1, 4, 1, 4, 128) [2, 3, 4, 5, 6, 7, 8];
            "m16n256k64w1x8"   (1, 8, 1, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m16n64k128w1x8"   (1, 8, 1, 1, 128) [2, 3, 4, 5, 6, 7, 8];
            "m16n128k128w1x8"  (1, 8, 1, 2, 128) [2, 3, 4, 5, 6, 7, 8];
            "m32n64k128w1x4"   (1, 4, 2, 2, 128) [2, 3, 4, 5, 6, 7, 8];
            "m32n128k64w1x4"   (1, 4, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m32n128k128w1x4"  (1, 4, 2, 4, 128) [2, 3, 4, 5, 6, 7, 8];
            "m32n256k64w1x8"   (1, 8, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m64n64k64w2x2"    (2, 2, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m64n64k128w2x2"   (2, 2, 2, 4, 128) [2, 3, 4, 5, 6, 7, 8];
            "m64n128k64w2x4"   (2, 4, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m64n256k64w2x4"   (2, 4, 2, 8, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n64k64w4x2"   (4, 2, 2, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n128k64w2x4"  (2, 4, 4, 4, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n128k128w2x4" (2, 4, 4, 4, 128) [2, 3, 4, 5];
            "m128n256k64w2x4"  (2, 4, 4, 8, 64)  [2, 3, 4, 5, 6, 7, 8];
            "m128n64k128w4x2"  (4, 2, 2, 4, 128) [2, 3, 4, 5, 6];
        }
    };
}

macro_rules! tactic_table {
    ($($name:literal ($wm:literal, $wn:literal, $mm:literal, $mn:literal, $bk:literal) [$($s:literal),+];)+) => {
        /// Every compiled tactic, from decode-sized tiles to prefill-sized ones.
        pub const TACTICS: &[Tactic] = &[$(
            Tactic {
                name: $name,
                tile: TileShape { warps_m: $wm, warps_n: $wn, mma_m: $mm, mma_n: $mn, bk: $bk },
                stages: &[$($s),+],
            },
        )+];
    };
}
with_tactics!(tactic_table);

/// The STAGES range rule: `MIN_STAGES..=min(MAX_STAGES, deepest fitting COMPILE_LIMIT_BYTES)`.
#[inline]
pub const fn compiled_stage_range(tile: TileShape) -> (usize, usize) {
    let fit = SmemLayout::max_stages_within(tile, COMPILE_LIMIT_BYTES);
    let max = if fit < MAX_STAGES { fit } else { MAX_STAGES };
    (MIN_STAGES, max)
}

/// What the kernels' copy plan assumes of a tile (see `TileCopies` in the device code): the
/// thread count is a multiple of the 16-byte chunks per row of A (`BK/8`) and of W (`BK/32`);
/// the rows one thread's successive A chunks are apart keep the A swizzle's row parity, and
/// those of W keep the W swizzle's bank line; one K-tile's scale chunks (`BK/16 · BN/16`)
/// need at most one per thread.
pub const fn copies_fit_the_threads(tile: TileShape) -> bool {
    let (bk, threads) = (tile.bk, tile.threads());
    let (a_cpr, w_cpr) = (bk / 8, bk / 32);
    let w_rows_per_line = 128 / (bk / 2);
    threads % a_cpr == 0
        && threads % w_cpr == 0
        && (threads / a_cpr) % 2 == 0
        && (threads / w_cpr) % (w_rows_per_line * w_cpr) == 0
        && bk / 16 * (tile.bn() / 16) <= threads
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
        // K steps are whole FP4 chunks of 32 and a power of two the swizzles are written for.
        if !(t.tile.bk == 64 || t.tile.bk == 128) || !copies_fit_the_threads(t.tile) {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(table_follows_stage_rule(), "a tactic's STAGES list breaks the compiled-stage rule");
