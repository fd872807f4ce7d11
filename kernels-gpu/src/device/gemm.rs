//! The pipelined FP4 grouped GEMM of [`Family::Mma`]: `C_g = A_g · dequant(W_g)ᵀ` for every
//! group in one launch, activations as the MMA's 16-row operand.
//!
//! # Shape contract
//! `n % 16 == 0`, `k % 32 == 0`, `k <= MAX_K`, `1 <= groups <= MAX_GROUPS`; all pointers
//! 16-byte aligned; layouts as documented on [`GroupedGemmParams`]. The host validates all of
//! this before launching; the kernel traps if its dynamic shared memory is smaller than its
//! layout, or if groups or K exceed their maxima.
//!
//! # Structure
//! A persistent grid walks the linear tile index space (see [`super::scheduler`]). For each
//! tile, a ring of `STAGES` shared-memory buffers is filled with `cp.async` (rows, columns
//! and K past the ends are zero-filled) while the warps consume the oldest full buffer:
//! 16-byte `ld.shared` of A, 4-byte `ld.shared` of packed e2m1 (see [`crate::packing`]),
//! dequantization to bf16 in registers, and `mma.sync` m16n8k16 with f32 accumulation.
//! Launched programmatically with `weights_before_wait`, a block builds its tile table and
//! issues its first tile's weight and scale copies for the ring's first `STAGES - 1` K-tiles
//! before `griddepcontrol.wait`, the activation copies after it.
//!
//! # K order
//! Both operands take K in order, as the m16n8k16 fragments define it. A comes by
//! `ldmatrix.x4` (one 16 × 16 fragment per MMA step, [`a_ldmatrix_offset`]); for W, lane
//! `4g + t` loads device word `t` of its weight row's 32-element chunk, whose pairs 0 and 1
//! are K-elements `2t` and `2t + 8` of the chunk's first 16 (step 0's b0 and b1) and pairs 2
//! and 3 those of its second 16 (step 1's), as [`crate::packing`] lays them out.

use super::fp4::{dequant_word, scale_factor_x2};
use super::ptx::*;
use super::scheduler::{build_tile_table, total_tiles};
use super::tiles::{output_scale, prefetch_bias, store_pair, tile_job, ScaleCopy, TileJob};
use crate::format::NVFP4;
use crate::layout::{
    a_chunk, a_ldmatrix_offset, a_ldmatrix_step, fragment_row, w_chunk, w_fragment_offset, RegionAligned, SmemLayout,
    CHUNK_BYTES, MAX_GROUPS,
};
use crate::packing::{strip_bytes, strip_chunk_offset, MAX_K, STRIP_ROWS};
use crate::params::GroupedGemmParams;
use crate::tactics::{Family, TileShape};

/// Runs the grouped GEMM for one (format, tile, STAGES) variant of [`Family::Mma`]. All
/// threads of the block must call it.
///
/// # Safety
/// The launch must satisfy the shape contract above, with `TileShape::threads()`
/// (`32 · WARPS_M · WARPS_N`) threads per block.
#[inline(always)]
pub unsafe fn grouped_gemm<
    const FMT: u32,
    const WARPS_M: usize,
    const WARPS_N: usize,
    const MMA_M: usize,
    const MMA_N: usize,
    const BK: usize,
    const STAGES: usize,
>(
    p: &GroupedGemmParams,
) {
    // SAFETY: the launch meets the shape contract (this function's); the layout size was checked against `%dynamic_smem_size` first, so every shared address below is inside the block's allocation, and every global address is inside the buffers the contract sizes (groups clamped to `rows`, columns to `n`, K to `k`).
    unsafe {
        let tile = tile_shape::<WARPS_M, WARPS_N, MMA_M, MMA_N, BK>();
        let layout = SmemLayout::new(tile, STAGES);
        if dynamic_smem_size() < layout.total_bytes as u32 || p.groups as usize > MAX_GROUPS || p.k as usize > MAX_K {
            trap();
        }
        let smem = dynamic_smem_base::<RegionAligned>();
        let tid = thread_idx() as usize;
        let table = smem + layout.tile_table as u32;
        let n_tiles = (p.n as usize).div_ceil(tile.bn()) as u32;
        let groups = p.groups as usize;
        let build_table = || {
            if tid < 32 {
                build_tile_table(table, p.offsets, groups, p.rows, tile.bm() as u32, n_tiles, tid);
            }
            sync_threads();
        };
        // Where the kernel before this one leaves the weights and offsets alone
        // (`GroupedGemmParams::weights_before_wait`), the table is built and the first tile's
        // weights for the ring's first stages are copied before the wait (`mainloop` adds them
        // to its first stage's commit group); otherwise nothing touches memory before it. Every
        // path passes the one wait.
        let early = if p.weights_before_wait != 0 {
            build_table();
            // The block's first tile that exists.
            let mut linear = block_idx();
            let mut first = None;
            while first.is_none() && linear < total_tiles(table) {
                let (job, exists) = tile_job(p, table, linear, tile.bm(), tile.bn(), n_tiles);
                linear += grid_dim();
                first = exists.then_some(job);
            }
            Some(first.map_or(0, |job| {
                first_weights::<FMT, WARPS_M, WARPS_N, MMA_M, MMA_N, BK, STAGES>(p, &layout, smem, job, tid)
            }))
        } else {
            None
        };
        wait_for_previous_grid();
        let mut early_stages = early.unwrap_or_else(|| {
            build_table();
            0
        });

        let total = total_tiles(table);
        let mut linear = block_idx();
        while linear < total {
            let (job, exists) = tile_job(p, table, linear, tile.bm(), tile.bn(), n_tiles);
            linear += grid_dim();
            if !exists {
                continue;
            }
            prefetch_bias(p, &job, tile.bn(), tid);
            let acc =
                mainloop::<FMT, WARPS_M, WARPS_N, MMA_M, MMA_N, BK, STAGES>(p, &layout, smem, job, tid, early_stages);
            early_stages = 0;
            epilogue::<FMT, WARPS_N, MMA_M, MMA_N>(p, job, &acc, tid);
        }
    }
}

/// The tile of a [`Family::Mma`] variant.
const fn tile_shape<
    const WARPS_M: usize,
    const WARPS_N: usize,
    const MMA_M: usize,
    const MMA_N: usize,
    const BK: usize,
>() -> TileShape {
    TileShape {
        family: Family::Mma,
        warps_m: WARPS_M,
        warps_n: WARPS_N,
        warps_k: 1,
        mma_m: MMA_M,
        mma_n: MMA_N,
        bk: BK,
    }
}

/// Accumulates one tile over all of K through the STAGES-deep ring.
#[inline(always)]
unsafe fn mainloop<
    const FMT: u32,
    const WARPS_M: usize,
    const WARPS_N: usize,
    const MMA_M: usize,
    const MMA_N: usize,
    const BK: usize,
    const STAGES: usize,
>(
    p: &GroupedGemmParams,
    layout: &SmemLayout,
    smem: u32,
    job: TileJob,
    tid: usize,
    early_stages: usize,
) -> [[[f32; 4]; MMA_N]; MMA_M] {
    // SAFETY: `smem` is the block's dynamic shared memory of `layout`'s size and `job` lies inside the problem (the caller's contract): the copies address only the tile's rows, columns and K, and the stage buffers inside the layout.
    unsafe {
        let tile = tile_shape::<WARPS_M, WARPS_N, MMA_M, MMA_N, BK>();
        let stage_addr = |stage: usize| smem + (layout.a + stage * layout.stage_stride) as u32;
        let a_to_w = (layout.w - layout.a) as u32;
        let a_to_s = (layout.s - layout.a) as u32;

        let copies = TileCopies::<FMT, BK>::new(p, tile, job, tid);
        let load = |stage: usize, k_tile: usize, weights_issued: bool| {
            let base = stage_addr(stage);
            copies.issue(p, tile, (base, base + a_to_w, base + a_to_s), k_tile, weights_issued);
        };
        let k_tiles = (p.k as usize).div_ceil(BK);

        // Prologue: STAGES-1 tiles in flight (an empty group where K runs out keeps the count);
        // the weights of the first `early_stages` were issued already (`first_weights`).
        let mut s = 0;
        while s < STAGES - 1 {
            if s < k_tiles {
                load(s, s, s < early_stages);
            }
            cp_async_commit();
            s += 1;
        }

        let mut acc = [[[0.0f32; 4]; MMA_N]; MMA_M];
        let (mut read_stage, mut write_stage) = (0usize, STAGES - 1);
        for k_tile in 0..k_tiles {
            // Tile `k_tile` has landed for this thread; the barrier makes it everyone's and frees
            // the buffer consumed in the previous iteration.
            cp_async_wait(STAGES - 2);
            sync_threads();
            if k_tile + STAGES - 1 < k_tiles {
                load(write_stage, k_tile + STAGES - 1, false);
            }
            cp_async_commit();
            let base = stage_addr(read_stage);
            compute_stage::<FMT, WARPS_N, MMA_M, MMA_N, BK>(&mut acc, tile, base, base + a_to_w, base + a_to_s, tid);
            read_stage = if read_stage + 1 == STAGES { 0 } else { read_stage + 1 };
            write_stage = if write_stage + 1 == STAGES { 0 } else { write_stage + 1 };
        }
        // Every warp is done reading the ring before the next tile's prologue refills it.
        cp_async_wait(0);
        sync_threads();
        acc
    }
}

/// Issues the weight and scale copies of `job`'s first K-tiles for the ring's first stages, as
/// `mainloop` would, and returns how many (`min(STAGES - 1, K-tiles)`); `mainloop` of the same
/// job with that many `early_stages` issues the rest.
///
/// # Safety
/// As `mainloop`.
#[inline(always)]
unsafe fn first_weights<
    const FMT: u32,
    const WARPS_M: usize,
    const WARPS_N: usize,
    const MMA_M: usize,
    const MMA_N: usize,
    const BK: usize,
    const STAGES: usize,
>(
    p: &GroupedGemmParams,
    layout: &SmemLayout,
    smem: u32,
    job: TileJob,
    tid: usize,
) -> usize {
    // SAFETY: as `mainloop`'s copies (the caller's contract).
    unsafe {
        let tile = tile_shape::<WARPS_M, WARPS_N, MMA_M, MMA_N, BK>();
        let copies = TileCopies::<FMT, BK>::new(p, tile, job, tid);
        let stages = (STAGES - 1).min((p.k as usize).div_ceil(BK));
        let mut s = 0;
        while s < stages {
            let base = smem + (layout.a + s * layout.stage_stride) as u32;
            copies.issue_weights(p, tile, base + (layout.w - layout.a) as u32, base + (layout.s - layout.a) as u32, s);
            s += 1;
        }
        stages
    }
}

/// The `cp.async` copies one thread issues for every K-tile of one output tile, worked out
/// once per tile.
///
/// Thread `tid` copies chunks `tid + j·threads` of each operand. Rows hold a power of two of
/// chunks that divides the thread count, so a thread's chunk column is the same for every `j`
/// and its rows are `row0 + j·(threads / chunks_per_row)`: source addresses advance by a fixed
/// stride per `j` and per K-tile, and the swizzled destination column is the same for every `j`
/// (the row strides keep the swizzles' row bits; `tactics::copies_fit_the_threads` checks all
/// of this for every tactic at compile time). Per K-tile and chunk this leaves an add, a
/// compare and the copy.
struct TileCopies<const FMT: u32, const BK: usize> {
    /// A: source of chunk j = 0 at K-tile 0 and its destination offset.
    a_src: u64,
    a_dst: u32,
    /// A row stride between a thread's chunks, in global bytes.
    a_src_stride: u64,
    /// K-element offset of this thread's A chunk within a K-tile.
    a_k: u32,
    /// Bit j: this thread's A chunk j lies in the tile / also in a row that exists.
    a_in_tile: u32,
    a_live: u32,
    /// W: the strip holding chunk j = 0 (see `crate::packing`), that chunk's row within the
    /// strip and chunk column within a K-tile; destination and source stride as for A.
    w_src: u64,
    w_row_in_strip: usize,
    w_chunk_col: usize,
    w_dst: u32,
    w_src_stride: u64,
    w_k: u32,
    /// Bit j: this thread's W chunk j lies in the tile / also in a weight row that exists.
    w_in_tile: u32,
    w_live: u32,
    /// Scales: at most one 16-column chunk of one K-block row.
    scales: ScaleCopy<FMT>,
}

/// Copies of `chunks` chunks spread over `threads` threads: how many each thread issues.
const fn copies_per_thread(chunks: usize, threads: usize) -> usize {
    chunks.div_ceil(threads)
}

impl<const FMT: u32, const BK: usize> TileCopies<FMT, BK> {
    #[inline(always)]
    fn new(p: &GroupedGemmParams, tile: TileShape, job: TileJob, tid: usize) -> Self {
        let (n, k) = (p.n as usize, p.k as usize);
        let (bn, threads) = (tile.bn(), tile.threads());
        let a_cpr = BK / 8;
        let (a_row, a_chunk_col) = (tid / a_cpr, tid % a_cpr);
        let w_cpr = BK / 32;
        let (w_row, w_chunk_col) = (tid / w_cpr, tid % w_cpr);
        // Which of this thread's chunks exist: in the tile, and in a row (A) or weight row
        // (W) that the problem has; the rest are zero-filled.
        let live = |first_row: usize, rows_per_j: usize, tile_rows: usize, rows: usize, copies: usize| {
            let mut mask = 0u32;
            let mut j = 0;
            while j < copies {
                let row = first_row + j * rows_per_j;
                if row < tile_rows && row < rows {
                    mask |= 1 << j;
                }
                j += 1;
            }
            mask
        };
        let a_copies = copies_per_thread(tile.bm() * BK / 8, threads);
        let w_copies = copies_per_thread(bn * BK / 32, threads);
        TileCopies {
            a_src: p.a + 2 * ((job.row0 + a_row) * k + a_chunk_col * 8) as u64,
            a_dst: (a_row * BK * 2 + a_chunk(a_row, a_chunk_col) * CHUNK_BYTES) as u32,
            a_src_stride: 2 * ((threads / a_cpr) * k) as u64,
            a_k: (a_chunk_col * 8) as u32,
            a_in_tile: live(a_row, threads / a_cpr, tile.bm(), tile.bm(), a_copies),
            a_live: live(a_row, threads / a_cpr, tile.bm(), job.rows, a_copies),
            w_src: p.w + (job.group * n * (k / 2) + (job.n0 + w_row) / STRIP_ROWS * strip_bytes(k)) as u64,
            w_row_in_strip: (job.n0 + w_row) % STRIP_ROWS,
            w_chunk_col,
            w_dst: (w_row * (BK / 2) + w_chunk(BK, w_row, w_chunk_col) * CHUNK_BYTES) as u32,
            w_src_stride: ((threads / w_cpr) * (k / 2)) as u64,
            w_k: (w_chunk_col * 32) as u32,
            w_in_tile: live(w_row, threads / w_cpr, bn, bn, w_copies),
            w_live: live(w_row, threads / w_cpr, bn, n - job.n0, w_copies),
            scales: ScaleCopy::new(p, &job, bn, BK, tid),
        }
    }

    /// Issues the copies of K-tile `k_tile` into one stage (A, W and scale tiles); rows,
    /// columns and K past the ends are zero-filled (a zero-byte copy reads nothing, so its
    /// source address need not be valid).
    #[inline(always)]
    unsafe fn issue(
        &self,
        p: &GroupedGemmParams,
        tile: TileShape,
        (a_smem, w_smem, s_smem): (u32, u32, u32),
        k_tile: usize,
        weights_issued: bool,
    ) {
        // SAFETY: the caller's contract is both functions'.
        unsafe {
            self.issue_activations(p, tile, a_smem, k_tile);
            if !weights_issued {
                self.issue_weights(p, tile, w_smem, s_smem, k_tile);
            }
        }
    }

    /// Issues the copies of K-tile `k_tile`'s activations into one stage; rows and K past the
    /// ends are zero-filled.
    #[inline(always)]
    unsafe fn issue_activations(&self, p: &GroupedGemmParams, tile: TileShape, a_smem: u32, k_tile: usize) {
        // SAFETY: the stage address lies inside the layout and the copy sources inside A, or are zero-byte copies that read nothing (the caller's contract, set up by `TileCopies::new`).
        unsafe {
            let k0 = (k_tile * BK) as u32;
            let (bm, threads) = (tile.bm(), tile.threads());
            let (a_cpr, a_chunks) = (BK / 8, bm * BK / 8);
            let a_bytes = if k0 + self.a_k < p.k { 16 } else { 0 };
            let a_src = self.a_src + (k_tile * BK * 2) as u64;
            let mut j = 0;
            while j < copies_per_thread(a_chunks, threads) {
                // Every thread's chunk j is in the tile when a whole round of chunks is.
                if (j + 1) * threads <= a_chunks || self.a_in_tile & (1 << j) != 0 {
                    let src = a_src + j as u64 * self.a_src_stride;
                    let dst = a_smem + self.a_dst + (j * (threads / a_cpr) * BK * 2) as u32;
                    cp_async_16(dst, src, if self.a_live & (1 << j) != 0 { a_bytes } else { 0 });
                }
                j += 1;
            }
        }
    }

    /// Issues the copies of K-tile `k_tile`'s weight codes and block scales into one stage;
    /// weight rows and K past the ends are zero-filled.
    #[inline(always)]
    unsafe fn issue_weights(&self, p: &GroupedGemmParams, tile: TileShape, w_smem: u32, s_smem: u32, k_tile: usize) {
        // SAFETY: the stage addresses lie inside the layout and the copy sources inside W and the scales, or are zero-byte copies that read nothing (the caller's contract, set up by `TileCopies::new`).
        unsafe {
            let k = p.k;
            let k0 = (k_tile * BK) as u32;
            let (bn, threads) = (tile.bn(), tile.threads());
            let (w_cpr, w_chunks) = (BK / 32, bn * BK / 32);
            let w_bytes = if k0 + self.w_k < k { 16 } else { 0 };
            let chunk = k_tile * (BK / 32) + self.w_chunk_col;
            let w_src = self.w_src + strip_chunk_offset(k as usize, self.w_row_in_strip, chunk) as u64;
            let mut j = 0;
            while j < copies_per_thread(w_chunks, threads) {
                if (j + 1) * threads <= w_chunks || self.w_in_tile & (1 << j) != 0 {
                    let src = w_src + j as u64 * self.w_src_stride;
                    let dst = w_smem + self.w_dst + (j * (threads / w_cpr) * (BK / 2)) as u32;
                    cp_async_16(dst, src, if self.w_live & (1 << j) != 0 { w_bytes } else { 0 });
                }
                j += 1;
            }

            self.scales.issue(p, s_smem, k_tile);
        }
    }
}

/// Multiplies the A and W tiles of one stage into the warp's accumulators.
///
/// Every shared address is a per-thread base plus a compile-time offset: the swizzles depend
/// only on the lane (the row within 8 for A, the row's bank line for W), not on the MMA tile.
#[inline(always)]
unsafe fn compute_stage<
    const FMT: u32,
    const WARPS_N: usize,
    const MMA_M: usize,
    const MMA_N: usize,
    const BK: usize,
>(
    acc: &mut [[[f32; 4]; MMA_N]; MMA_M],
    tile: TileShape,
    a_smem: u32,
    w_smem: u32,
    s_smem: u32,
    tid: usize,
) {
    // SAFETY: the stage addresses are inside the layout (the caller's contract), and every offset below stays inside one stage's A, W and scale regions.
    unsafe {
        let (warp, lane) = (tid / 32, tid % 32);
        let (warp_m, warp_n) = (warp / WARPS_N, warp % WARPS_N);
        let bn = tile.bn();
        // The A tile is 128-byte aligned (a region of the layout).
        let a_lane = a_smem + a_ldmatrix_offset(BK, warp_m * MMA_M * 16, lane, 0, 0) as u32;
        let w_row0 = fragment_row(warp_n * MMA_N * 8, lane);

        let mut chunk = 0;
        while chunk < BK / 32 {
            // A: the 16 × 16 fragment of each 16-row MMA tile and step, one `ldmatrix` each.
            let mut frag_a = [[[0u32; 4]; 2]; MMA_M];
            let mut step = 0;
            while step < 2 {
                let (flip, add) = a_ldmatrix_step(chunk, step);
                let a_base = (a_lane ^ flip as u32) + add as u32;
                let mut mt = 0;
                while mt < MMA_M {
                    frag_a[mt][step] = ldmatrix_x4(a_base + (mt * 16 * BK * 2) as u32);
                    mt += 1;
                }
                step += 1;
            }
            // W: one device word (8 codes) per 8-column MMA tile, all dequantized first so that
            // each A fragment stays in place for every column tile. NVFP4: pairs 0-1 and 2-3
            // are the chunk's two 16-element scale blocks.
            let w_base = w_smem + w_fragment_offset(BK, w_row0, lane, chunk) as u32;
            let s_base = s_smem + ((if FMT == NVFP4 { 2 * chunk } else { chunk }) * bn + w_row0) as u32;
            let mut b = [[0u32; 4]; MMA_N];
            let mut nt = 0;
            while nt < MMA_N {
                let word = ld_shared_u32(w_base + (nt * 8 * (BK / 2)) as u32);
                let scale = s_base + (nt * 8) as u32;
                let first = scale_factor_x2::<FMT>(ld_shared_u8(scale));
                let second = if FMT == NVFP4 { scale_factor_x2::<FMT>(ld_shared_u8(scale + bn as u32)) } else { first };
                b[nt] = dequant_word(word, [first, second]);
                nt += 1;
            }
            let mut step = 0;
            while step < 2 {
                let mut mt = 0;
                while mt < MMA_M {
                    let mut nt = 0;
                    while nt < MMA_N {
                        acc[mt][nt] =
                            mma_bf16_m16n8k16(acc[mt][nt], frag_a[mt][step], [b[nt][2 * step], b[nt][2 * step + 1]]);
                        nt += 1;
                    }
                    mt += 1;
                }
                step += 1;
            }
            chunk += 1;
        }
    }
}

/// Scales the accumulators (NVFP4's per-expert scale) and stores the rows and columns of the
/// tile that exist ([`store_pair`]: bf16 pairs, or the gated activation of each pair).
#[inline(always)]
unsafe fn epilogue<const FMT: u32, const WARPS_N: usize, const MMA_M: usize, const MMA_N: usize>(
    p: &GroupedGemmParams,
    job: TileJob,
    acc: &[[[f32; 4]; MMA_N]; MMA_M],
    tid: usize,
) {
    // SAFETY: `job` lies inside the problem (the caller's contract) and every store is guarded by `row < job.rows` and `col < n`.
    unsafe {
        let n = p.n as usize;
        let (warp, lane) = (tid / 32, tid % 32);
        let (warp_m, warp_n) = (warp / WARPS_N, warp % WARPS_N);
        let (group_id, quad_lane) = (lane / 4, lane % 4);
        let scale = output_scale::<FMT>(p, job.group);
        let output = |x: f32| x * scale;
        let mut mt = 0;
        while mt < MMA_M {
            let row = warp_m * MMA_M * 16 + mt * 16 + group_id;
            let mut nt = 0;
            while nt < MMA_N {
                let col = job.n0 + warp_n * MMA_N * 8 + nt * 8 + 2 * quad_lane;
                let d = acc[mt][nt];
                if col < n {
                    if row < job.rows {
                        store_pair(p, job.group, job.row0 + row, col, output(d[0]), output(d[1]));
                    }
                    if row + 8 < job.rows {
                        store_pair(p, job.group, job.row0 + row + 8, col, output(d[2]), output(d[3]));
                    }
                }
                nt += 1;
            }
            mt += 1;
        }
    }
}
