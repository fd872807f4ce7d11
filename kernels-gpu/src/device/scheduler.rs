//! The tile scheduler: a table in shared memory that maps a linear tile index to its group.
//!
//! Group `g` has `ceil(rows_g / BM) · ceil(N / BN)` tiles; `table[g]` is the index of its first
//! tile and `table[MAX_GROUPS]` the total. Groups with no rows own no tiles and cost nothing.
//! Within a group, the m-tile varies fastest, so blocks running at once share weight tiles.

use super::ptx::{ld_global_nc_u32, ld_shared_u32, shfl_up, st_shared_u32};
use crate::layout::MAX_GROUPS;

const GROUPS_PER_LANE: usize = MAX_GROUPS / 32;

/// First row and row count of group `g`: `[offsets[g], offsets[g+1]) ∩ [0, rows)`, empty if
/// the offsets decrease. Whatever the offsets hold, a group's rows lie inside the `rows` rows
/// of A and C that the host sized (with input checks on, the host refuses such offsets before
/// the launch).
///
/// # Safety
/// `offsets` must point to at least `g + 2` readable u32 values.
#[inline(always)]
pub unsafe fn group_rows(offsets: u64, g: usize, rows: u32) -> (u32, u32) {
    // SAFETY: `offsets` holds at least `g + 2` values (this function's contract) and no thread writes them.
    unsafe {
        let begin = ld_global_nc_u32(offsets + 4 * g as u64).min(rows);
        let end = ld_global_nc_u32(offsets + 4 * (g as u64 + 1)).min(rows);
        (begin, end.saturating_sub(begin))
    }
}

/// Fills the tile table for groups clamped to `rows` rows (see [`group_rows`]). Called by all
/// 32 lanes of one warp; the caller syncs the block after. Sums wrap rather than trap: only
/// overlapping groups (offsets the host would refuse) can exceed 2^32 tiles, and the caller
/// keeps every tile it derives inside the problem.
///
/// # Safety
/// `table` must be the layout's tile-table region; `offsets` must hold `groups + 1` values and
/// `groups <= MAX_GROUPS`.
#[inline(always)]
pub unsafe fn build_tile_table(table: u32, offsets: u64, groups: usize, rows: u32, bm: u32, n_tiles: u32, lane: usize) {
    // SAFETY: `table` is the layout's tile-table region and `offsets` holds `groups + 1` values, `groups <= MAX_GROUPS` (this function's contract): every address below is inside them.
    unsafe {
        let first = lane * GROUPS_PER_LANE;
        let mut counts = [0u32; GROUPS_PER_LANE];
        let mut lane_total = 0u32;
        let mut j = 0;
        while j < GROUPS_PER_LANE {
            if first + j < groups {
                let (_, group_rows) = group_rows(offsets, first + j, rows);
                counts[j] = group_rows.div_ceil(bm).wrapping_mul(n_tiles);
                lane_total = lane_total.wrapping_add(counts[j]);
            }
            j += 1;
        }
        // Inclusive warp scan of the lane totals.
        let mut inclusive = lane_total;
        let mut delta = 1;
        while delta < 32 {
            let below = shfl_up(inclusive, delta);
            if lane as u32 >= delta {
                inclusive = inclusive.wrapping_add(below);
            }
            delta *= 2;
        }
        let mut running = inclusive.wrapping_sub(lane_total);
        let mut j = 0;
        while j < GROUPS_PER_LANE {
            st_shared_u32(table + 4 * (first + j) as u32, running);
            running = running.wrapping_add(counts[j]);
            j += 1;
        }
        if lane == 31 {
            st_shared_u32(table + 4 * MAX_GROUPS as u32, inclusive);
        }
    }
}

/// The group owning tile `tile` (which must be below the table's total): the last group
/// whose first tile is at or before it.
///
/// # Safety
/// `table` must have been filled by [`build_tile_table`] for `groups >= 1` groups.
#[inline(always)]
pub unsafe fn find_group(table: u32, groups: usize, tile: u32) -> usize {
    // SAFETY: `table` was filled for `groups >= 1` groups (this function's contract), so every index read is below `groups`.
    unsafe {
        let (mut lo, mut hi) = (0usize, groups - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if ld_shared_u32(table + 4 * mid as u32) <= tile {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

/// Total tiles, read back from the table.
///
/// # Safety
/// `table` must have been filled by [`build_tile_table`].
#[inline(always)]
pub unsafe fn total_tiles(table: u32) -> u32 {
    // SAFETY: `table` was filled by `build_tile_table` (this function's contract), whose last slot is the total.
    unsafe { ld_shared_u32(table + 4 * MAX_GROUPS as u32) }
}
