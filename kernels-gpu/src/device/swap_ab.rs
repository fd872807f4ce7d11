//! The grouped GEMM of [`Family::SwapAb`], for decode: `C_gᵀ = dequant(W_g) · A_gᵀ`, weights
//! as the MMA's 16-row operand and a group's 1-8 activation rows as its 8 columns.
//!
//! # Shape contract
//! As for the [`Family::Mma`] kernel (`super::gemm`): `n % 16 == 0`, `k % 32 == 0`,
//! `k <= MAX_K`, `1 <= groups <= MAX_GROUPS`, 16-byte aligned pointers, the layouts of
//! [`GroupedGemmParams`] (the same weights serve both families).
//!
//! # Structure
//! The persistent grid walks the tiles as the other family does, with one `cp.async` ring
//! that runs across the block's tiles (the next tile's first K-tiles load while the current
//! one finishes). A tile is `BM` activation
//! rows (`MMA_M` MMA column blocks of 8) by `BN` weight rows (`WARPS_N · MMA_N` MMA row
//! blocks of 16). A stage holds `BK = WARPS_K · 128` of K; warp `(wn, wk)` takes K-elements
//! `128·wk..+128` of every stage for its `16 · MMA_N` weight rows, so a block streams
//! `BN · BK / 2` bytes of codes per stage with few rows of output. At the end of a tile the
//! warps along K write their partial sums to the reduction buffer, and the block adds them in
//! a fixed order (bit-identical reruns) and stores bf16 pairs along N.
//!
//! Launched programmatically with `weights_before_wait` (the MoE layer's down projection, whose
//! weights and offsets the gate/up GEMM before it does not write), a block builds its tile table
//! and issues its first tile's weight and scale copies for the ring's first `STAGES - 1`
//! K-tiles before `griddepcontrol.wait`, and only the activation copies after it: the weight
//! stream starts while the kernel before it finishes.
//!
//! # K order
//! Lane `4g + t` of a warp takes K-elements `32t..32t + 32` of the warp's 128: one 16-byte
//! chunk of codes (4 device words) of each of its weight rows `g` and `g + 8`, and 64 bytes of
//! its activation row `g`, as 16 pairs. Its MMA steps take device word `j`'s pairs `2h` and
//! `2h + 1` (K-elements `16h + 2j` and `16h + 8 + 2j` of the lane's 32,
//! `crate::packing::chunk_pair_k`) with activation pairs `8h + j` and `8h + 4 + j`, the same
//! physical K: every index is a compile-time constant.

use super::fp4::{dequant_pair, scale_factor_x2};
use super::ptx::*;
use super::tiles::{output_scale, prefetch_bias, store_pair, BlockTiles, TileJob};
use crate::format::{scale_block, NVFP4};
use crate::layout::{reduce_offset, scale_row_bytes, swap_ab_chunk_offset, RegionAligned, SmemLayout, MAX_GROUPS};
use crate::packing::{strip_block_offset, strip_bytes, BLOCK_K, MAX_K, STRIP_ROWS};
use crate::params::GroupedGemmParams;
use crate::tactics::{Family, TileShape, SWAP_AB_WARP_K};

/// The tile of a [`Family::SwapAb`] variant.
const fn tile_shape<const WARPS_N: usize, const WARPS_K: usize, const MMA_M: usize, const MMA_N: usize>() -> TileShape {
    TileShape {
        family: Family::SwapAb,
        warps_m: 1,
        warps_n: WARPS_N,
        warps_k: WARPS_K,
        mma_m: MMA_M,
        mma_n: MMA_N,
        bk: WARPS_K * SWAP_AB_WARP_K,
    }
}

/// Runs the swap-AB grouped GEMM for one (format, tile, STAGES) variant. All threads of the
/// block must call it.
///
/// The ring runs across tiles: while a tile's last K-tiles are multiplied, the copies of the
/// block's next tile are already in flight, so the weight stream does not stop between tiles.
///
/// # Safety
/// The launch must satisfy the shape contract above, with `TileShape::threads()`
/// (`32 · WARPS_N · WARPS_K`) threads per block.
#[inline(always)]
pub unsafe fn swap_ab_gemm<
    const FMT: u32,
    const WARPS_N: usize,
    const WARPS_K: usize,
    const MMA_M: usize,
    const MMA_N: usize,
    const STAGES: usize,
>(
    p: &GroupedGemmParams,
) {
    // SAFETY: the launch meets the shape contract (this function's); the layout size was checked against `%dynamic_smem_size` first, so every shared address below is inside the block's allocation, and every global address is inside the buffers the contract sizes (groups clamped to `rows`, columns to `n`, K to `k`).
    unsafe {
        let tile = tile_shape::<WARPS_N, WARPS_K, MMA_M, MMA_N>();
        let layout = SmemLayout::new(tile, STAGES);
        if dynamic_smem_size() < layout.total_bytes as u32
            || p.groups as usize > MAX_GROUPS
            || p.k == 0
            || p.k as usize > MAX_K
        {
            trap();
        }
        let smem = dynamic_smem_base::<RegionAligned>();
        let tid = thread_idx() as usize;
        let stage_addr = |stage: usize| smem + (layout.a + stage * layout.stage_stride) as u32;
        let a_to_w = (layout.w - layout.a) as u32;
        let a_to_s = (layout.s - layout.a) as u32;
        let k_tiles = (p.k as usize).div_ceil(tile.bk());

        // Where the kernel before this one leaves the weights and offsets alone
        // (`GroupedGemmParams::weights_before_wait`), the tile table is built and the first
        // tile's weights for the ring's first stages are copied before the wait (they join the
        // first stage's commit group below); otherwise nothing touches memory before it. Every
        // path passes the one wait.
        let table = smem + layout.tile_table as u32;
        let weights_first = p.weights_before_wait != 0;
        let early_stages = if weights_first {
            let mut walk = BlockTiles::new(p, table, tile.bm(), tile.bn());
            match walk.next(p) {
                Some(job) => {
                    let first = SwapAbCopies::<FMT, WARPS_N, WARPS_K>::new(p, tile, job, tid);
                    let stages = (STAGES - 1).min(k_tiles);
                    let mut stage = 0;
                    while stage < stages {
                        let base = stage_addr(stage);
                        first.issue_weights(p, tile, base + a_to_w, base + a_to_s, stage);
                        stage += 1;
                    }
                    stages
                }
                None => 0,
            }
        } else {
            0
        };
        wait_for_previous_grid();
        // Two walks over the block's tiles: the copies run STAGES - 1 K-tiles ahead of the MMAs.
        let mut loading = if weights_first {
            BlockTiles::built(p, table, tile.bm(), tile.bn())
        } else {
            BlockTiles::new(p, table, tile.bm(), tile.bn())
        };
        let mut computing = loading;
        let mut copies = loading.next(p).map(|job| SwapAbCopies::<FMT, WARPS_N, WARPS_K>::new(p, tile, job, tid));
        let mut load_k = 0;
        // One commit per call, copies or not: `cp_async_wait` counts groups.
        let mut load_next = |stage: usize, weights_issued: bool| {
            if let Some(c) = &copies {
                let base = stage_addr(stage);
                c.issue(p, tile, (base, base + a_to_w, base + a_to_s), load_k, weights_issued);
                load_k += 1;
                if load_k == k_tiles {
                    load_k = 0;
                    copies = loading.next(p).map(|job| SwapAbCopies::new(p, tile, job, tid));
                }
            }
            cp_async_commit();
        };
        let mut stage = 0;
        while stage < STAGES - 1 {
            load_next(stage, stage < early_stages);
            stage += 1;
        }

        let mut job = computing.next(p);
        if let Some(first) = &job {
            prefetch_bias(p, first, tile.bn(), tid);
        }
        let mut acc = [[[0.0f32; 4]; MMA_M]; MMA_N];
        let (mut k_tile, mut read_stage, mut write_stage) = (0, 0, STAGES - 1);
        while let Some(current) = job {
            // K-tile `k_tile` of `current` has landed for this thread; the barrier makes it
            // everyone's and frees the buffer consumed in the previous iteration.
            cp_async_wait(STAGES - 2);
            sync_threads();
            load_next(write_stage, false);
            let base = stage_addr(read_stage);
            compute_stage::<FMT, WARPS_N, WARPS_K, MMA_M, MMA_N>(&mut acc, base, base + a_to_w, base + a_to_s, tid);
            read_stage = if read_stage + 1 == STAGES { 0 } else { read_stage + 1 };
            write_stage = if write_stage + 1 == STAGES { 0 } else { write_stage + 1 };
            k_tile += 1;
            if k_tile == k_tiles {
                epilogue::<FMT, WARPS_N, WARPS_K, MMA_M, MMA_N>(p, smem + layout.reduce as u32, current, &acc, tid);
                acc = [[[0.0f32; 4]; MMA_M]; MMA_N];
                k_tile = 0;
                job = computing.next(p);
                if let Some(next) = &job {
                    prefetch_bias(p, next, tile.bn(), tid);
                }
            }
        }
    }
}

/// The `cp.async` copies one thread issues for every K-tile of one output tile, worked out
/// once per tile.
///
/// Chunk `c = tid + j·threads` of A or W is chunk `c % 32` (a lane's) of 512-byte block
/// `c / 32` in [`swap_ab_chunk_offset`]'s order, so a thread always copies for the same lane
/// and warp-along-K `wk`, and its slots are `slot0 + j·WARPS_N`. For W (slot = 8-row half) the
/// source is the chunk's place in the device strip order (`crate::packing`), for A (slot =
/// 4·(row / 8) + q) its row and K offset. Scale chunks (16 columns of one K-block) go to the
/// threads in order. Offsets inside a strip, a row or a K-tile are 32-bit (`k <= MAX_K`); only
/// the tile's base addresses and the products that reach past one strip or row are 64-bit.
struct SwapAbCopies<const FMT: u32, const WARPS_N: usize, const WARPS_K: usize> {
    /// This thread's index in the block.
    tid: u32,
    /// This thread's lane part: `g = lane / 4` (row within an 8-row half), `t = lane % 4`.
    g: u32,
    t: u32,
    /// Destination offset of chunk j = 0 in a stage's A and W tiles.
    dst0: u32,
    /// First slot of this thread.
    slot0: u32,
    /// This thread's warp along K: its block of each K-tile's strip blocks.
    wk: u32,
    /// K-element offset of this thread's chunks (A adds 8q) within a K-tile.
    k_in_tile: u32,
    /// W: the tile's first strip of codes (see `crate::packing`) and the bytes of a strip;
    /// bit j: weight row of chunk j exists.
    w_src: u64,
    w_strip_bytes: u32,
    w_live: u32,
    /// A: source of row 0 of the tile at this thread's K offset, K-tile 0, and bytes per row.
    a_src: u64,
    a_row_bytes: u32,
    /// Activation rows of the tile that exist.
    rows: u32,
    /// Scales: source of K-block 0 of the tile's columns.
    s_src: u64,
    /// Columns of the tile that exist (`n - n0`, at most BN).
    cols: u32,
}

impl<const FMT: u32, const WARPS_N: usize, const WARPS_K: usize> SwapAbCopies<FMT, WARPS_N, WARPS_K> {
    #[inline(always)]
    fn new(p: &GroupedGemmParams, tile: TileShape, job: TileJob, tid: usize) -> Self {
        let (n, k) = (p.n as usize, p.k as usize);
        let lane = tid % 32;
        let (g, t) = (lane / 4, lane % 4);
        let (slot0, wk) = (tid / (32 * WARPS_K), (tid / 32) % WARPS_K);
        let k_in_tile = wk * SWAP_AB_WARP_K + 32 * t;
        let w_copies = tile.bn() / 8 / WARPS_N;
        let mut w_live = 0u32;
        let mut j = 0;
        while j < w_copies {
            if job.n0 + (slot0 + j * WARPS_N) * 8 + g < n {
                w_live |= 1 << j;
            }
            j += 1;
        }
        let block = scale_block(FMT);
        SwapAbCopies {
            tid: tid as u32,
            g: g as u32,
            t: t as u32,
            dst0: swap_ab_chunk_offset(WARPS_K, slot0, wk, lane) as u32,
            slot0: slot0 as u32,
            wk: wk as u32,
            k_in_tile: k_in_tile as u32,
            w_src: p.w + (job.group * n * (k / 2) + job.n0 / STRIP_ROWS * strip_bytes(k)) as u64,
            w_strip_bytes: strip_bytes(k) as u32,
            w_live,
            a_src: p.a + 2 * (job.row0 * k + k_in_tile) as u64,
            a_row_bytes: 2 * p.k,
            rows: job.rows as u32,
            s_src: p.w_scales + (job.group * (k / block) * n + job.n0) as u64,
            cols: (n - job.n0).min(tile.bn()) as u32,
        }
    }

    /// Issues the copies of K-tile `k_tile` into one stage: the weights and their scales
    /// ([`SwapAbCopies::issue_weights`]) unless `weights_issued`, then the activations
    /// ([`SwapAbCopies::issue_activations`]).
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
            if !weights_issued {
                self.issue_weights(p, tile, w_smem, s_smem, k_tile);
            }
            self.issue_activations(p, tile, a_smem, k_tile);
        }
    }

    /// Issues the copies of K-tile `k_tile`'s weight codes and block scales into one stage;
    /// rows, columns and K past the ends are zero-filled (a zero-byte copy reads nothing, so its
    /// source address need not be valid).
    #[inline(always)]
    unsafe fn issue_weights(&self, p: &GroupedGemmParams, tile: TileShape, w_smem: u32, s_smem: u32, k_tile: usize) {
        // SAFETY: the stage addresses lie inside the layout and the copy sources inside W and the scales, or are zero-byte copies that read nothing (the caller's contract, set up by `SwapAbCopies::new`).
        unsafe {
            let (n, k) = (p.n, p.k);
            let (bn, bk, threads) = (tile.bn(), tile.bk(), tile.threads());
            let k_tile = k_tile as u32;
            let k0 = k_tile * bk as u32 + self.k_in_tile;
            let block_stride = (WARPS_N * WARPS_K * 512) as u32;

            // W: 8-row halves slot0 + j·WARPS_N, 16 bytes (32 K) of row g each, from the
            // strips in their device order: this thread's strip block of the K-tile, chunk t.
            let w_bytes = if k0 < k { 16 } else { 0 };
            let strip_block = k_tile * (bk / BLOCK_K) as u32 + self.wk;
            let mut j = 0;
            while j < bn / 8 / WARPS_N {
                let slot = self.slot0 + (j * WARPS_N) as u32;
                let in_strip = strip_block_offset(k, 8 * (slot % 2) + self.g, strip_block, self.t);
                let src = self.w_src + (slot / 2) as u64 * self.w_strip_bytes as u64 + in_strip as u64;
                let bytes = if self.w_live & (1 << j) != 0 { w_bytes } else { 0 };
                cp_async_16(w_smem + self.dst0 + j as u32 * block_stride, src, bytes);
                j += 1;
            }

            // Scales: this K-tile's K-blocks, 16 columns per chunk, rows padded in shared memory.
            let block = scale_block(FMT) as u32;
            let (k_blocks, tile_blocks, chunks_per_row) = (k / block, bk as u32 / block, bn as u32 / 16);
            let row_bytes = scale_row_bytes(tile) as u32;
            let mut c = self.tid;
            while c < tile_blocks * chunks_per_row {
                let (kb, col) = (c / chunks_per_row, 16 * (c % chunks_per_row));
                let k_block = k_tile * tile_blocks + kb;
                let bytes = if k_block < k_blocks && col < self.cols { 16 } else { 0 };
                let src = self.s_src + k_block as u64 * n as u64 + col as u64;
                cp_async_16(s_smem + kb * row_bytes + col, src, bytes);
                c += threads as u32;
            }
        }
    }

    /// Issues the copies of K-tile `k_tile`'s activations into one stage; rows and K past the
    /// ends are zero-filled.
    #[inline(always)]
    unsafe fn issue_activations(&self, p: &GroupedGemmParams, tile: TileShape, a_smem: u32, k_tile: usize) {
        // SAFETY: the stage address lies inside the layout and the copy sources inside A, or are zero-byte copies that read nothing (the caller's contract, set up by `SwapAbCopies::new`).
        unsafe {
            let (bm, bk) = (tile.bm(), tile.bk());
            let k_tile = k_tile as u32;
            let k0 = k_tile * bk as u32 + self.k_in_tile;
            let block_stride = (WARPS_N * WARPS_K * 512) as u32;
            // Slots v = slot0 + j·WARPS_N, v = 4·(row / 8) + q: row 8·(v / 4) + g, K + 8q.
            let a_src = self.a_src + (2 * k_tile * bk as u32) as u64;
            let mut j = 0;
            while j < bm / 2 / WARPS_N {
                let v = self.slot0 + (j * WARPS_N) as u32;
                let (row, q) = (8 * (v / 4) + self.g, v % 4);
                let bytes = if row < self.rows && k0 + 8 * q < p.k { 16 } else { 0 };
                let src = a_src + row as u64 * self.a_row_bytes as u64 + (16 * q) as u64;
                cp_async_16(a_smem + self.dst0 + j as u32 * block_stride, src, bytes);
                j += 1;
            }
        }
    }
}

/// Multiplies one stage into this warp's accumulators.
#[inline(always)]
unsafe fn compute_stage<
    const FMT: u32,
    const WARPS_N: usize,
    const WARPS_K: usize,
    const MMA_M: usize,
    const MMA_N: usize,
>(
    acc: &mut [[[f32; 4]; MMA_M]; MMA_N],
    a_smem: u32,
    w_smem: u32,
    s_smem: u32,
    tid: usize,
) {
    // SAFETY: the stage addresses are inside the layout (the caller's contract), and every offset below stays inside one stage's A, W and scale regions.
    unsafe {
        let tile = tile_shape::<WARPS_N, WARPS_K, MMA_M, MMA_N>();
        let (warp, lane) = (tid / 32, tid % 32);
        let (wn, wk) = (warp / WARPS_K, warp % WARPS_K);
        let (g, t) = (lane / 4, lane % 4);

        // Scales: NVFP4 has two 16-element blocks in a lane's 32 K-elements, MXFP4 one.
        let blocks_per_lane = if FMT == NVFP4 { 2 } else { 1 };
        let first_block = (wk * SWAP_AB_WARP_K + 32 * t) / scale_block(FMT);
        let row_bytes = scale_row_bytes(tile);
        // Factors of rows g and g + 8 for each of the lane's scale blocks of row block `mt`.
        let factors_of = |mt: usize| {
            let col = 8 * 2 * (wn * MMA_N + mt) + g;
            let mut f = [[0u32; 2]; 2];
            let mut sb = 0;
            while sb < blocks_per_lane {
                let s_row = s_smem + ((first_block + sb) * row_bytes + col) as u32;
                f[sb] = [scale_factor_x2::<FMT>(ld_shared_u8(s_row)), scale_factor_x2::<FMT>(ld_shared_u8(s_row + 8))];
                sb += 1;
            }
            f
        };
        // MXFP4 works out every row block's factors (one load and one multiply each) before the
        // activation loads, whose latency then covers theirs; NVFP4's (two loads and two bf16
        // multiplies each) are worked out where they are used, which measured faster
        // (`docs/perf-notes.md` v15).
        let early = FMT != NVFP4;
        let mut factors = [[[0u32; 2]; 2]; MMA_N];
        let mut mt = 0;
        while early && mt < MMA_N {
            factors[mt] = factors_of(mt);
            mt += 1;
        }

        // B: activation row 8·nt + g, this lane's 32 K-elements as 16 bf16 pairs.
        let mut b = [[0u32; 16]; MMA_M];
        let mut nt = 0;
        while nt < MMA_M {
            let mut q = 0;
            while q < 4 {
                let v = ld_shared_v4(a_smem + swap_ab_chunk_offset(WARPS_K, 4 * nt + q, wk, lane) as u32);
                b[nt][4 * q] = v[0];
                b[nt][4 * q + 1] = v[1];
                b[nt][4 * q + 2] = v[2];
                b[nt][4 * q + 3] = v[3];
                q += 1;
            }
            nt += 1;
        }

        let mut mt = 0;
        while mt < MMA_N {
            let half = 2 * (wn * MMA_N + mt);
            let lo = ld_shared_v4(w_smem + swap_ab_chunk_offset(WARPS_K, half, wk, lane) as u32);
            let hi = ld_shared_v4(w_smem + swap_ab_chunk_offset(WARPS_K, half + 1, wk, lane) as u32);
            let f = if early { factors[mt] } else { factors_of(mt) };
            // Pair `p` of every word: the lane's K-elements `8p..8p + 8` (`chunk_pair_k`),
            // steps `2p` and `2p + 1`; NVFP4's pairs 0-1 and 2-3 are in its two scale blocks.
            let mut p = 0;
            while p < 4 {
                let [f_lo, f_hi] = f[p * blocks_per_lane / 4];
                let mut d_lo = [0u32; 4];
                let mut d_hi = [0u32; 4];
                let mut j = 0;
                while j < 4 {
                    d_lo[j] = dequant_pair(lo[j], p, f_lo);
                    d_hi[j] = dequant_pair(hi[j], p, f_hi);
                    j += 1;
                }
                let mut h = 0;
                while h < 2 {
                    let a = [d_lo[2 * h], d_hi[2 * h], d_lo[2 * h + 1], d_hi[2 * h + 1]];
                    let s = 2 * p + h;
                    let mut nt = 0;
                    while nt < MMA_M {
                        acc[mt][nt] = mma_bf16_m16n8k16(acc[mt][nt], a, [b[nt][2 * s], b[nt][2 * s + 1]]);
                        nt += 1;
                    }
                    h += 1;
                }
                p += 1;
            }
            mt += 1;
        }
    }
}

/// Adds the warps' partial sums in warp-along-K order, scales them (see
/// [`output_scale`]) and stores the rows and columns of the tile that exist, two columns at a
/// time ([`store_pair`]: a bf16 pair, or the gated activation of the pair).
#[inline(always)]
unsafe fn epilogue<
    const FMT: u32,
    const WARPS_N: usize,
    const WARPS_K: usize,
    const MMA_M: usize,
    const MMA_N: usize,
>(
    p: &GroupedGemmParams,
    reduce: u32,
    job: TileJob,
    acc: &[[[f32; 4]; MMA_M]; MMA_N],
    tid: usize,
) {
    // SAFETY: `reduce` is the layout's reduction buffer (the caller's contract), `job` lies inside the problem, and every store is guarded by `row < job.rows` and `col < n`.
    unsafe {
        let tile = tile_shape::<WARPS_N, WARPS_K, MMA_M, MMA_N>();
        let (bm, bn, n) = (tile.bm(), tile.bn(), p.n as usize);
        let (warp, lane) = (tid / 32, tid % 32);
        let (wn, wk) = (warp / WARPS_K, warp % WARPS_K);
        let (g, t) = (lane / 4, lane % 4);
        // Accumulator d of weight-row block mt, activation block nt: rows (weights) g, g + 8,
        // columns (activation rows) 2t, 2t + 1.
        let mut mt = 0;
        while mt < MMA_N {
            let col = 16 * (wn * MMA_N + mt) + g;
            let mut nt = 0;
            while nt < MMA_M {
                let row = 8 * nt + 2 * t;
                let d = acc[mt][nt];
                st_shared_u32(reduce + reduce_offset(bm, bn, wk, row, col) as u32, d[0].to_bits());
                st_shared_u32(reduce + reduce_offset(bm, bn, wk, row + 1, col) as u32, d[1].to_bits());
                st_shared_u32(reduce + reduce_offset(bm, bn, wk, row, col + 8) as u32, d[2].to_bits());
                st_shared_u32(reduce + reduce_offset(bm, bn, wk, row + 1, col + 8) as u32, d[3].to_bits());
                nt += 1;
            }
            mt += 1;
        }
        sync_threads();
        let scale = output_scale::<FMT>(p, job.group);
        let mut pair = tid;
        while pair < bm * bn / 2 {
            let (row, col) = (pair / (bn / 2), 2 * (pair % (bn / 2)));
            let mut sum = [0.0f32; 2];
            let mut wk = 0;
            while wk < WARPS_K {
                let part = ld_shared_v2(reduce + reduce_offset(bm, bn, wk, row, col) as u32);
                sum[0] += f32::from_bits(part[0]);
                sum[1] += f32::from_bits(part[1]);
                wk += 1;
            }
            if row < job.rows && job.n0 + col < n {
                store_pair(p, job.group, job.row0 + row, job.n0 + col, sum[0] * scale, sum[1] * scale);
            }
            pair += tile.threads();
        }
    }
}
