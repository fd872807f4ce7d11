//! What every grouped-GEMM family shares: the walk over a block's output tiles, the block-scale
//! copies of the families that copy one K-block row per chunk, the output scale, and the
//! epilogue's stores (plain, or the gated activation with its bias).

use super::activation::gated;
use super::ptx::{
    bf16_to_f32, block_idx, cp_async_16, f32_to_bf16, grid_dim, ld_global_nc_u32, ld_global_nc_v2, ld_shared_u32,
    pack_bf16x2, prefetch_l2, st_global_u16, st_global_u32, sync_threads, thread_idx,
};
use super::scheduler::{build_tile_table, find_group, group_rows, total_tiles};
use crate::format::{scale_block, NVFP4};
use crate::packing::{f32_pow2, ACCUMULATOR_SHIFT};
use crate::params::{epilogue, GroupedGemmParams};

/// One output tile: `bm` rows of group `group` starting at global row `row0` (of which `rows`
/// exist), and `bn` columns starting at `n0`.
#[derive(Clone, Copy)]
pub struct TileJob {
    pub group: usize,
    pub row0: usize,
    pub rows: usize,
    pub n0: usize,
}

/// The tiles of one block, in order: a persistent grid, block `b` takes tiles `b, b + grid,
/// …` of the tile table (see [`super::scheduler`]). Two walks over the same table visit the
/// same tiles.
#[derive(Clone, Copy)]
pub struct BlockTiles {
    table: u32,
    bm: usize,
    bn: usize,
    n_tiles: u32,
    next: u32,
}

impl BlockTiles {
    /// Builds the tile table of `bm × bn` tiles in `table` and returns the walk over this
    /// block's tiles. All threads of the block must call it.
    ///
    /// # Safety
    /// `table` must be the layout's tile-table region; `p.offsets` must hold `p.groups + 1`
    /// values with `1 <= p.groups <= MAX_GROUPS`.
    #[inline(always)]
    pub unsafe fn new(p: &GroupedGemmParams, table: u32, bm: usize, bn: usize) -> BlockTiles {
        let n_tiles = (p.n as usize).div_ceil(bn) as u32;
        let tid = thread_idx() as usize;
        if tid < 32 {
            // SAFETY: the caller's contract is the scheduler's.
            unsafe { build_tile_table(table, p.offsets, p.groups as usize, p.rows, bm as u32, n_tiles, tid) };
        }
        sync_threads();
        // SAFETY: the table was just built from `p`.
        unsafe { BlockTiles::built(p, table, bm, bn) }
    }

    /// The walk over this block's tiles of a table that [`BlockTiles::new`] has already built
    /// in `table` from `p` for `bm × bn` tiles (a second walk from the first tile).
    ///
    /// # Safety
    /// As [`BlockTiles::new`], which must have returned for this table and `p`.
    #[inline(always)]
    pub unsafe fn built(p: &GroupedGemmParams, table: u32, bm: usize, bn: usize) -> BlockTiles {
        let n_tiles = (p.n as usize).div_ceil(bn) as u32;
        BlockTiles { table, bm, bn, n_tiles, next: block_idx() }
    }

    /// The next tile of this block, or `None` after the last. Every job lies inside the
    /// problem (groups clamped to `p.rows`, columns below `p.n`).
    ///
    /// # Safety
    /// `p` must be the parameters the table was built from.
    #[inline(always)]
    pub unsafe fn next(&mut self, p: &GroupedGemmParams) -> Option<TileJob> {
        // SAFETY: the table was built from `p` (this function's contract), so every group index read is below `p.groups`.
        unsafe {
            let total = total_tiles(self.table);
            while self.next < total {
                let linear = self.next;
                self.next += grid_dim();
                let (job, exists) = tile_job(p, self.table, linear, self.bm, self.bn, self.n_tiles);
                if exists {
                    return Some(job);
                }
            }
            None
        }
    }
}

/// The job of tile `linear` (below the table's total) of `bm × bn` tiles, and whether it
/// exists: only a table whose sums wrapped (overlapping groups) can name a column tile past N,
/// or a tile of a group with no rows; such a job must be skipped. Every job that exists lies
/// inside the problem (groups clamped to `p.rows`, columns below `p.n`).
///
/// # Safety
/// `table` must have been built from `p` by [`build_tile_table`] for `n_tiles` column tiles.
#[inline(always)]
pub unsafe fn tile_job(
    p: &GroupedGemmParams,
    table: u32,
    linear: u32,
    bm: usize,
    bn: usize,
    n_tiles: u32,
) -> (TileJob, bool) {
    // SAFETY: the table was built from `p` (this function's contract), so the group found is below `p.groups`.
    unsafe {
        let group = find_group(table, p.groups as usize, linear);
        let (row_begin, rows) = group_rows(p.offsets, group, p.rows);
        // A group that owns this tile has rows, so m_tiles >= 1; `max` lets the compiler see it.
        let m_tiles = rows.div_ceil(bm as u32).max(1);
        let local = linear.wrapping_sub(ld_shared_u32(table + 4 * group as u32));
        let (n_tile, m_tile) = (local / m_tiles, local % m_tiles);
        let row_in_group = m_tile as usize * bm;
        let job = TileJob {
            group,
            row0: row_begin as usize + row_in_group,
            rows: (rows as usize).saturating_sub(row_in_group).min(bm),
            n0: n_tile as usize * bn,
        };
        (job, n_tile < n_tiles && rows != 0)
    }
}

/// The block-scale copy one thread issues for every K-tile of a `bn`-column tile that steps
/// `bk` along K ([`Family::Mma`](crate::tactics::Family::Mma) and
/// [`Family::Wgmma`](crate::tactics::Family::Wgmma)): the K-tile's `bk / block` K-block rows
/// of the tile's columns go to shared memory as `[k_block][bn]` in 16-column chunks, thread
/// `tid` copying chunk `tid` if there is one. Worked out once per tile.
pub struct ScaleCopy<const FMT: u32> {
    /// Source of this thread's chunk at K-tile 0, its destination, and its K-block row.
    src: u64,
    dst: u32,
    row: u32,
    /// Whether the thread has a chunk whose columns exist.
    active: bool,
    /// K-elements per K-tile, and the bytes of scales per K-tile (its rows of all N columns).
    bk: u32,
    k_tile_bytes: u64,
}

impl<const FMT: u32> ScaleCopy<FMT> {
    /// Thread `tid`'s copy for `job`, a tile of `bn` columns stepping `bk` along K.
    #[inline(always)]
    pub fn new(p: &GroupedGemmParams, job: &TileJob, bn: usize, bk: usize, tid: usize) -> Self {
        let (n, k) = (p.n as usize, p.k as usize);
        let block = scale_block(FMT);
        let chunks_per_row = bn / 16;
        let (row, col) = (tid / chunks_per_row, 16 * (tid % chunks_per_row));
        ScaleCopy {
            src: p.w_scales + ((job.group * (k / block) + row) * n + job.n0 + col) as u64,
            dst: (row * bn + col) as u32,
            row: row as u32,
            active: row < bk / block && job.n0 + col < n,
            bk: bk as u32,
            k_tile_bytes: ((bk / block) * n) as u64,
        }
    }

    /// Issues the copy of K-tile `k_tile` into the stage's scale tile at `s_smem`; K-blocks past
    /// K are zero-filled (a zero-byte copy reads nothing).
    ///
    /// # Safety
    /// `s_smem` must be a stage's scale tile of the layout, `p` the parameters of `new`.
    #[inline(always)]
    pub unsafe fn issue(&self, p: &GroupedGemmParams, s_smem: u32, k_tile: usize) {
        if self.active {
            let block = scale_block(FMT) as u32;
            let bytes = if (k_tile as u32 * self.bk / block + self.row) < p.k / block { 16 } else { 0 };
            // SAFETY: the destination is inside the scale tile and the source inside the
            // scales, or the copy reads nothing (this function's contract and `new`).
            unsafe { cp_async_16(s_smem + self.dst, self.src + k_tile as u64 * self.k_tile_bytes, bytes) };
        }
    }
}

/// The factor every f32 accumulator of `group` is multiplied by before rounding to bf16: the
/// operands carried `2^-ACCUMULATOR_SHIFT` (see `crate::packing`); NVFP4 adds its per-expert
/// scale.
///
/// # Safety
/// For NVFP4, `p.expert_scales` must hold `p.groups` f32 values and `group < p.groups`.
#[inline(always)]
pub unsafe fn output_scale<const FMT: u32>(p: &GroupedGemmParams, group: usize) -> f32 {
    let unshift = f32_pow2(ACCUMULATOR_SHIFT);
    if FMT == NVFP4 {
        // SAFETY: `group` indexes the per-expert scales (this function's contract).
        unshift * f32::from_bits(unsafe { ld_global_nc_u32(p.expert_scales + 4 * group as u64) })
    } else {
        unshift
    }
}

/// Stores the scaled results `lo`, `hi` of columns `col` and `col + 1` (`col` even) of output
/// row `row` of `group`: as a bf16 pair, or with [`epilogue::GATED`] as one bf16 at column
/// `col / 2` of a `[rows, n / 2]` output, `act(gate + bias, up + bias)` of the pair rounded to
/// bf16 (as the separate activation kernel computes it from a stored pair, bit for bit).
///
/// # Safety
/// `row` must be below `p.rows` and `col + 1` below `p.n`, `group` below `p.groups`; `p.c`
/// (and with [`epilogue::GATED`] `p.bias`) sized as [`GroupedGemmParams`] documents.
#[inline(always)]
pub unsafe fn store_pair(p: &GroupedGemmParams, group: usize, row: usize, col: usize, lo: f32, hi: f32) {
    let (n, pair) = (p.n as usize, pack_bf16x2(lo, hi));
    // SAFETY: `row`, `col` and `group` lie inside the buffers (this function's contract).
    unsafe {
        if p.epilogue == epilogue::GATED {
            let bias = ld_global_nc_v2(p.bias + 4 * (group * n + col) as u64);
            let gate = bf16_to_f32(pair & 0xFFFF) + f32::from_bits(bias[0]);
            let up = bf16_to_f32(pair >> 16) + f32::from_bits(bias[1]);
            let y = gated(p.activation, gate, up, p.limit, p.alpha);
            st_global_u16(p.c + 2 * (row * (n / 2) + col / 2) as u64, f32_to_bf16(y));
        } else {
            st_global_u32(p.c + 2 * (row * n + col) as u64, pair);
        }
    }
}

/// Bytes of one L2 line, the unit of [`prefetch_l2`].
const L2_LINE_BYTES: usize = 128;

/// With [`epilogue::GATED`], asks L2 for the bias of `job`'s `bn` columns when the tile starts,
/// so that the epilogue's bias loads, which come after the tile's whole K loop, find it there
/// instead of waiting for DRAM; nothing otherwise. One prefetch per 128-byte line, by the first
/// threads of the block.
///
/// # Safety
/// `job` must lie inside the problem of `p` (its group below `p.groups`, its columns below
/// `p.n`), and with [`epilogue::GATED`] `p.bias` sized as [`GroupedGemmParams`] documents.
#[inline(always)]
pub unsafe fn prefetch_bias(p: &GroupedGemmParams, job: &TileJob, bn: usize, tid: usize) {
    let n = p.n as usize;
    let columns = bn.min(n - job.n0);
    if p.epilogue == epilogue::GATED && tid * L2_LINE_BYTES < 4 * columns {
        // SAFETY: the address is inside the group's bias row (this function's contract).
        unsafe { prefetch_l2(p.bias + (4 * (job.group * n + job.n0) + tid * L2_LINE_BYTES) as u64) };
    }
}
