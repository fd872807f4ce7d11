//! The pipelined FP4 grouped GEMM: `C_g = A_g · dequant(W_g)ᵀ` for every group in one launch.
//!
//! # Shape contract
//! `n % 16 == 0`, `k % 32 == 0`, `1 <= groups <= MAX_GROUPS`; all pointers 16-byte aligned;
//! layouts as documented on [`GroupedGemmParams`]. The host validates all of this before
//! launching; the kernel traps if its dynamic shared memory is smaller than its layout.
//!
//! # Structure
//! A persistent grid walks the linear tile index space (see [`super::scheduler`]). For each
//! tile, a ring of `STAGES` shared-memory buffers is filled with `cp.async` (rows, columns
//! and K past the ends are zero-filled) while the warps consume the oldest full buffer:
//! 16-byte `ld.shared` of A, 4-byte `ld.shared` of packed e2m1, dequantization to bf16 in
//! registers, and `mma.sync` m16n8k16 with f32 accumulation.
//!
//! # K order inside a 32-element chunk
//! The products of one K-chunk may be summed in any order, as long as A and W pair the same
//! K indices. Thread `t` of a quad (lane % 4) takes physical K-elements `8t..8t+8` of the
//! chunk: one u32 of packed e2m1 (bytes 2s and 2s+1 feed MMA step s as B registers b0, b1)
//! and one 16-byte load of A per row (words 2s and 2s+1 feed a0a1 and a4a5 of step s). Each
//! pair of registers in an MMA step thus meets the same physical K indices.

use super::fp4::{dequant_word, scale_x2};
use super::ptx::*;
use super::scheduler::{build_tile_table, find_group, group_rows, total_tiles};
use crate::format::{scale_block, NVFP4};
use crate::layout::{a_chunk, w_chunk, SmemLayout, CHUNK_BYTES, MAX_GROUPS};
use crate::params::GroupedGemmParams;
use crate::tactics::TileShape;
use core::arch::nvptx::{_block_idx_x, _grid_dim_x, _thread_idx_x, trap};

/// One output tile: `BM` rows of group `group` starting at global row `row0` (of which `rows`
/// exist), and `BN` columns starting at `n0`.
#[derive(Clone, Copy)]
struct TileJob {
    group: usize,
    row0: usize,
    rows: usize,
    n0: usize,
}

/// Runs the grouped GEMM for one (format, tile, STAGES) variant. All threads of the block
/// must call it.
///
/// # Safety
/// The launch must satisfy the shape contract above, with `MMA_M·16·WARPS_M × ...` threads =
/// `TileShape::threads()` per block.
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
    let tile = TileShape { warps_m: WARPS_M, warps_n: WARPS_N, mma_m: MMA_M, mma_n: MMA_N, bk: BK };
    let layout = SmemLayout::new(tile, STAGES);
    let groups = p.groups as usize;
    if dynamic_smem_size() < layout.total_bytes as u32 || groups > MAX_GROUPS {
        trap();
    }
    let smem = dynamic_smem_base();
    let tid = _thread_idx_x() as usize;
    let table = smem + layout.tile_table as u32;
    let n_tiles = (p.n as usize).div_ceil(tile.bn()) as u32;
    if tid < 32 {
        build_tile_table(table, p.offsets, groups, tile.bm() as u32, n_tiles, tid);
    }
    sync_threads();

    // Offsets past the buffers the host sized would make every block read and write out of
    // bounds: stop instead.
    if groups > 0 && ld_global_nc_u32(p.offsets + 4 * groups as u64) > p.rows {
        trap();
    }
    let total = total_tiles(table);
    let mut linear = _block_idx_x();
    while linear < total {
        let group = find_group(table, groups, linear);
        let (row_begin, rows) = group_rows(p.offsets, group);
        let m_tiles = rows.div_ceil(tile.bm() as u32);
        let local = linear - ld_shared_u32(table + 4 * group as u32);
        // A group that owns this tile has rows, so m_tiles >= 1; `max` lets the compiler see it.
        let m_tiles = m_tiles.max(1);
        let (n_tile, m_tile) = (local / m_tiles, local % m_tiles);
        let row_in_group = m_tile as usize * tile.bm();
        let job = TileJob {
            group,
            row0: row_begin as usize + row_in_group,
            rows: (rows as usize - row_in_group).min(tile.bm()),
            n0: n_tile as usize * tile.bn(),
        };
        let acc = mainloop::<FMT, WARPS_M, WARPS_N, MMA_M, MMA_N, BK, STAGES>(p, &layout, smem, job, tid);
        epilogue::<FMT, WARPS_N, MMA_M, MMA_N>(p, job, &acc, tid);
        linear += _grid_dim_x();
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
) -> [[[f32; 4]; MMA_N]; MMA_M] {
    let tile = TileShape { warps_m: WARPS_M, warps_n: WARPS_N, mma_m: MMA_M, mma_n: MMA_N, bk: BK };
    let k_tiles = (p.k as usize).div_ceil(BK);
    let stage_addr = |stage: usize| smem + (layout.a + stage * layout.stage_stride) as u32;
    let a_to_w = (layout.w - layout.a) as u32;
    let a_to_s = (layout.s - layout.a) as u32;

    let load = |stage: usize, k_tile: usize| {
        let base = stage_addr(stage);
        load_stage::<FMT, BK>(p, tile, job, base, base + a_to_w, base + a_to_s, k_tile, tid);
    };

    // Prologue: STAGES-1 tiles in flight (an empty group where K runs out keeps the count).
    let mut s = 0;
    while s < STAGES - 1 {
        if s < k_tiles {
            load(s, s);
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
            load(write_stage, k_tile + STAGES - 1);
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

/// Issues the `cp.async` copies of K-tile `k_tile` into one stage (A, W and scale tiles).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn load_stage<const FMT: u32, const BK: usize>(
    p: &GroupedGemmParams,
    tile: TileShape,
    job: TileJob,
    a_smem: u32,
    w_smem: u32,
    s_smem: u32,
    k_tile: usize,
    tid: usize,
) {
    let (n, k) = (p.n as usize, p.k as usize);
    let (bm, bn, threads) = (tile.bm(), tile.bn(), tile.threads());
    let k0 = k_tile * BK;

    // A: BM rows × BK/8 chunks of 8 bf16.
    let a_chunks_per_row = BK / 8;
    let mut i = tid;
    while i < bm * a_chunks_per_row {
        let (row, chunk) = (i / a_chunks_per_row, i % a_chunks_per_row);
        let kk = k0 + chunk * 8;
        let valid = row < job.rows && kk < k;
        let src = p.a + 2 * ((job.row0 + row) * k + kk) as u64;
        let dst = a_smem + (row * BK * 2 + a_chunk(row, chunk) * CHUNK_BYTES) as u32;
        cp_async_16(dst, if valid { src } else { p.a }, if valid { 16 } else { 0 });
        i += threads;
    }

    // W: BN rows × BK/32 chunks of 32 e2m1 codes.
    let w_chunks_per_row = BK / 32;
    let mut i = tid;
    while i < bn * w_chunks_per_row {
        let (row, chunk) = (i / w_chunks_per_row, i % w_chunks_per_row);
        let (col, kk) = (job.n0 + row, k0 + chunk * 32);
        let valid = col < n && kk < k;
        let src = p.w + ((job.group * n + col) * (k / 2) + kk / 2) as u64;
        let dst = w_smem + (row * (BK / 2) + w_chunk(BK, row, chunk) * CHUNK_BYTES) as u32;
        cp_async_16(dst, if valid { src } else { p.w }, if valid { 16 } else { 0 });
        i += threads;
    }

    // Scales: BK/block rows (one per K-block) × BN/16 chunks of 16 columns.
    let block = scale_block(FMT);
    let (scale_rows, k_blocks) = (BK / block, k / block);
    let s_chunks_per_row = bn / 16;
    let mut i = tid;
    while i < scale_rows * s_chunks_per_row {
        let (row, chunk) = (i / s_chunks_per_row, i % s_chunks_per_row);
        let (kb, col) = (k0 / block + row, job.n0 + chunk * 16);
        let valid = kb < k_blocks && col < n;
        let src = p.w_scales + ((job.group * k_blocks + kb) * n + col) as u64;
        let dst = s_smem + (row * bn + chunk * 16) as u32;
        cp_async_16(dst, if valid { src } else { p.w_scales }, if valid { 16 } else { 0 });
        i += threads;
    }
}

/// Multiplies the A and W tiles of one stage into the warp's accumulators.
///
/// Every shared address is a per-thread base plus a compile-time offset: the swizzles depend
/// only on the lane (row parity for A, the row's bank line for W), not on the MMA tile.
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
    let (warp, lane) = (tid / 32, tid % 32);
    let (warp_m, warp_n) = (warp / WARPS_N, warp % WARPS_N);
    let (group_id, quad_lane) = (lane / 4, lane % 4);
    let bn = tile.bn();
    let a_row0 = warp_m * MMA_M * 16 + group_id;
    let w_row0 = warp_n * MMA_N * 8 + group_id;

    let mut chunk = 0;
    while chunk < BK / 32 {
        // A: rows r and r+8 of each 16-row MMA tile, physical K 8t..8t+8 of this chunk.
        let a_base = a_smem + (a_row0 * BK * 2 + a_chunk(a_row0, chunk * 4 + quad_lane) * CHUNK_BYTES) as u32;
        let mut a = [[[0u32; 4]; 2]; MMA_M];
        let mut mt = 0;
        while mt < MMA_M {
            a[mt][0] = ld_shared_v4(a_base + (mt * 16 * BK * 2) as u32);
            a[mt][1] = ld_shared_v4(a_base + ((mt * 16 + 8) * BK * 2) as u32);
            mt += 1;
        }
        // W: one u32 (8 codes, physical K 8t..8t+8) per 8-column MMA tile, dequantized just
        // before its two MMA steps of 16 K so that only one tile's B fragments are live.
        let w_base = w_smem + (w_row0 * (BK / 2) + w_chunk(BK, w_row0, chunk) * CHUNK_BYTES + 4 * quad_lane) as u32;
        let scale_row = if FMT == NVFP4 { chunk * 2 + quad_lane / 2 } else { chunk };
        let s_base = s_smem + (scale_row * bn + w_row0) as u32;
        let mut nt = 0;
        while nt < MMA_N {
            let word = ld_shared_u32(w_base + (nt * 8 * (BK / 2)) as u32);
            let scale = ld_shared_u8(s_base + (nt * 8) as u32);
            let b = dequant_word(word, scale_x2::<FMT>(scale));
            let mut step = 0;
            while step < 2 {
                let mut mt = 0;
                while mt < MMA_M {
                    let frag_a =
                        [a[mt][0][2 * step], a[mt][1][2 * step], a[mt][0][2 * step + 1], a[mt][1][2 * step + 1]];
                    acc[mt][nt] = mma_bf16_m16n8k16(acc[mt][nt], frag_a, [b[2 * step], b[2 * step + 1]]);
                    mt += 1;
                }
                step += 1;
            }
            nt += 1;
        }
        chunk += 1;
    }
}

/// Scales the accumulators (NVFP4's per-expert scale), rounds to bf16 and stores the rows and
/// columns of the tile that exist.
#[inline(always)]
unsafe fn epilogue<const FMT: u32, const WARPS_N: usize, const MMA_M: usize, const MMA_N: usize>(
    p: &GroupedGemmParams,
    job: TileJob,
    acc: &[[[f32; 4]; MMA_N]; MMA_M],
    tid: usize,
) {
    let n = p.n as usize;
    let (warp, lane) = (tid / 32, tid % 32);
    let (warp_m, warp_n) = (warp / WARPS_N, warp % WARPS_N);
    let (group_id, quad_lane) = (lane / 4, lane % 4);
    let expert_scale =
        if FMT == NVFP4 { f32::from_bits(ld_global_nc_u32(p.expert_scales + 4 * job.group as u64)) } else { 1.0 };
    let mut mt = 0;
    while mt < MMA_M {
        let row = warp_m * MMA_M * 16 + mt * 16 + group_id;
        let mut nt = 0;
        while nt < MMA_N {
            let col = job.n0 + warp_n * MMA_N * 8 + nt * 8 + 2 * quad_lane;
            let d = acc[mt][nt];
            if col < n {
                if row < job.rows {
                    let addr = p.c + 2 * ((job.row0 + row) * n + col) as u64;
                    st_global_u32(addr, pack_bf16x2(d[0] * expert_scale, d[1] * expert_scale));
                }
                if row + 8 < job.rows {
                    let addr = p.c + 2 * ((job.row0 + row + 8) * n + col) as u64;
                    st_global_u32(addr, pack_bf16x2(d[2] * expert_scale, d[3] * expert_scale));
                }
            }
            nt += 1;
        }
        mt += 1;
    }
}
