//! The grouped GEMM of [`Family::Wgmma`] (sm_90a), for prefill: `C_gᵀ = dequant(W_g) · A_gᵀ`
//! with Hopper's warpgroup MMA, dequantized weights as its register operand and activations
//! read by the tensor cores from shared memory.
//!
//! # Shape contract
//! As for the other families (`super::gemm`): `n % 16 == 0`, `k % 32 == 0`, `k <= MAX_K`,
//! `1 <= groups <= MAX_GROUPS`, 16-byte aligned pointers, the layouts of
//! [`GroupedGemmParams`] (the same weights serve every family).
//!
//! # Structure
//! A persistent grid walks the tiles as the other families do. A tile is `BM` activation rows
//! (the instruction's N) by `BN = 64 · warpgroups` weight rows, 64 per warpgroup, 16 per warp.
//! A ring of `STAGES` shared-memory buffers, each [`WGMMA_BK`] of K, is filled with `cp.async`
//! (A rows in the tensor cores' 128-byte swizzle, W and the scales as loaded); for each stage
//! every thread reads its weight codes, dequantizes them into the A fragments of four
//! `m64nBMk16` steps, and its warpgroup issues them as one `wgmma` group. With 3 or more
//! STAGES one group stays running while the next stage is dequantized (two sets of fragment
//! registers, one for even and one for odd stages), and the copies run `STAGES - 2` stages
//! ahead; with 2 STAGES each group is waited for at once and the copies run one stage ahead.
//!
//! # K order
//! The tensor cores read each activation row's K in order, and the device words follow it
//! (`crate::packing`): in step `s` lane `4g + t` holds K-elements `16s + 2t, +1` (registers
//! 0, 1: rows `g`, `g + 8`) and `16s + 8 + 2t, +1` (registers 2, 3) of its warp's rows, which
//! are pairs `2·(s % 2)` and `2·(s % 2) + 1` of device word `t` of the rows' code chunk
//! `s / 2`. Every lane therefore loads one word per row and chunk and uses all of it.

use super::fp4::{dequant_word, scale_factor_x2};
use super::ptx::*;
use super::tiles::{output_scale, prefetch_bias, store_pair, BlockTiles, ScaleCopy, TileJob};
use crate::format::NVFP4;
use crate::layout::{wgmma_a_chunk, wgmma_descriptor, wgmma_ring, RegionAligned, SmemLayout, CHUNK_BYTES, MAX_GROUPS};
use crate::packing::{strip_block_offset, strip_bytes, BLOCK_K, MAX_K, STRIP_ROWS};
use crate::params::GroupedGemmParams;
use crate::tactics::{Family, TileShape, WGMMA_BK};

/// K-steps of 16 per stage.
const STEPS: usize = WGMMA_BK / 16;
/// 16-byte code chunks (32 K-elements) per weight row and stage.
const CODE_CHUNKS: usize = WGMMA_BK / 32;
/// 16-byte activation chunks (8 K-elements) per row and stage: one 128-byte swizzled row.
const A_CHUNKS: usize = WGMMA_BK / 8;

/// The tile of a [`Family::Wgmma`] variant.
const fn tile_shape<const WARPS_N: usize, const MMA_M: usize>() -> TileShape {
    TileShape { family: Family::Wgmma, warps_m: 1, warps_n: WARPS_N, warps_k: 1, mma_m: MMA_M, mma_n: 1, bk: WGMMA_BK }
}

/// Runs the wgmma grouped GEMM for one (format, tile, STAGES) variant. All threads of the block
/// must call it.
///
/// # Safety
/// The launch must satisfy the shape contract above, with `TileShape::threads()`
/// (`32 · WARPS_N`) threads per block, on an sm_90a device.
#[inline(always)]
pub unsafe fn wgmma_gemm<const FMT: u32, const WARPS_N: usize, const MMA_M: usize, const STAGES: usize>(
    p: &GroupedGemmParams,
) {
    // SAFETY: the launch meets the shape contract (this function's); the layout size was checked against `%dynamic_smem_size` first, so every shared address below is inside the block's allocation, and every global address is inside the buffers the contract sizes (groups clamped to `rows`, columns to `n`, K to `k`).
    unsafe {
        let tile = tile_shape::<WARPS_N, MMA_M>();
        let layout = SmemLayout::new(tile, STAGES);
        if dynamic_smem_size() < layout.total_bytes as u32
            || p.groups as usize > MAX_GROUPS
            || p.k == 0
            || p.k as usize > MAX_K
        {
            trap();
        }
        let smem = dynamic_smem_base::<RegionAligned>();
        let ring = wgmma_ring(smem, &layout);
        let tid = thread_idx() as usize;
        let mut tiles = BlockTiles::new(p, smem + layout.tile_table as u32, tile.bm(), tile.bn());
        // A tile's first K-tiles are copied before the tile before it stores its results: the
        // ring is free once that tile's K loop ends, and the copies' latency then passes under
        // its epilogue.
        let mut next = tiles.next(p);
        if let Some(first) = next {
            prologue::<FMT, WARPS_N, MMA_M, STAGES>(p, &layout, ring, first, tid);
        }
        while let Some(job) = next {
            prefetch_bias(p, &job, tile.bn(), tid);
            let acc = mainloop::<FMT, WARPS_N, MMA_M, STAGES>(p, &layout, ring, job, tid);
            next = tiles.next(p);
            if let Some(following) = next {
                prologue::<FMT, WARPS_N, MMA_M, STAGES>(p, &layout, ring, following, tid);
            }
            epilogue::<FMT, MMA_M>(p, job, &acc, tid);
        }
    }
}

/// Issues the copies of `job`'s first [`Pipe::ahead`] K-tiles into the ring's first stages, one
/// commit group each (an empty group where K runs out keeps the count), as [`mainloop`]
/// expects them.
///
/// # Safety
/// As [`mainloop`]'s; no thread may still read the ring's stages.
#[inline(always)]
unsafe fn prologue<const FMT: u32, const WARPS_N: usize, const MMA_M: usize, const STAGES: usize>(
    p: &GroupedGemmParams,
    layout: &SmemLayout,
    ring: u32,
    job: TileJob,
    tid: usize,
) {
    // SAFETY: as in `mainloop`: the copies address only the tile's rows, columns and K, and the stage buffers inside the layout.
    unsafe {
        let tile = tile_shape::<WARPS_N, MMA_M>();
        let copies = WgmmaCopies::<FMT>::new(p, tile, job, tid);
        let k_tiles = (p.k as usize).div_ceil(WGMMA_BK);
        let pipe = Pipe::new::<STAGES>(ring, layout);
        let (a_to_w, a_to_s) = ((layout.w - layout.a) as u32, (layout.s - layout.a) as u32);
        let mut s = 0;
        while s < pipe.ahead() {
            if s < k_tiles {
                let base = pipe.stage(s);
                copies.issue(p, tile, base, base + a_to_w, base + a_to_s, s);
            }
            cp_async_commit();
            s += 1;
        }
    }
}

/// Accumulates one tile over all of K through the ring, whose first K-tiles [`prologue`] has
/// issued; returns the warpgroup's accumulators with every `wgmma` finished and the ring free.
#[inline(always)]
unsafe fn mainloop<const FMT: u32, const WARPS_N: usize, const MMA_M: usize, const STAGES: usize>(
    p: &GroupedGemmParams,
    layout: &SmemLayout,
    ring: u32,
    job: TileJob,
    tid: usize,
) -> [[f32; 4]; MMA_M] {
    // SAFETY: `ring` is the layout's ring inside the block's dynamic shared memory and `job` lies inside the problem (the caller's contract): the copies address only the tile's rows, columns and K, and the stage buffers inside the layout.
    unsafe {
        let tile = tile_shape::<WARPS_N, MMA_M>();
        let copies = WgmmaCopies::<FMT>::new(p, tile, job, tid);
        let k_tiles = (p.k as usize).div_ceil(WGMMA_BK);
        let pipe = Pipe::new::<STAGES>(ring, layout);
        let (a_to_w, a_to_s) = ((layout.w - layout.a) as u32, (layout.s - layout.a) as u32);
        let load = |k_tile: usize| {
            let base = pipe.stage(k_tile);
            copies.issue(p, tile, base, base + a_to_w, base + a_to_s, k_tile);
        };

        let weights = WeightReader::new(tid, tile.bn());
        let mut acc = [[0.0f32; 4]; MMA_M];
        // Fragments of even and odd stages: a running group's registers are never rewritten.
        let (mut even, mut odd) = ([[0u32; 4]; STEPS], [[0u32; 4]; STEPS]);
        // At least one K-tile (`k > 0`): the accumulators then have one definition, the
        // `wgmma`s', where the loop ends (a second path from their zeros would make the
        // compiler copy them there while a group runs, serializing every `wgmma`).
        let mut k_tile = 0;
        loop {
            stage::<FMT, MMA_M>(&pipe, &weights, &mut acc, &mut even, k_tile, k_tiles, &load, a_to_w, a_to_s);
            k_tile += 1;
            if k_tile >= k_tiles {
                break;
            }
            stage::<FMT, MMA_M>(&pipe, &weights, &mut acc, &mut odd, k_tile, k_tiles, &load, a_to_w, a_to_s);
            k_tile += 1;
            if k_tile >= k_tiles {
                break;
            }
        }
        wgmma_wait_group(0);
        // Every warp is done reading the ring before the next tile's prologue refills it.
        cp_async_wait(0);
        sync_threads();
        acc
    }
}

/// The ring's geometry: where K-tile `k` lives, and how far the copies run ahead.
struct Pipe {
    ring: u32,
    stride: u32,
    stages: usize,
    /// `wgmma` groups left running while the next stage is prepared (0 or 1).
    running: usize,
}

impl Pipe {
    /// The ring of `layout` at `ring`, with STAGES buffers.
    #[inline(always)]
    fn new<const STAGES: usize>(ring: u32, layout: &SmemLayout) -> Pipe {
        Pipe { ring, stride: layout.stage_stride as u32, stages: STAGES, running: (STAGES > 2) as usize }
    }

    /// Shared address of the stage holding K-tile `k_tile`.
    #[inline(always)]
    fn stage(&self, k_tile: usize) -> u32 {
        self.ring + (k_tile % self.stages) as u32 * self.stride
    }

    /// K-tiles the copies run ahead of the one being multiplied: every stage but that one and
    /// the one a running group may still read.
    #[inline(always)]
    fn ahead(&self) -> usize {
        self.stages - 1 - self.running
    }
}

/// One K-tile: wait for its copies, start the copies `ahead` K-tiles on, dequantize its weights
/// into `fragments` and issue its four `wgmma` steps as one group.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn stage<const FMT: u32, const MMA_M: usize>(
    pipe: &Pipe,
    weights: &WeightReader,
    acc: &mut [[f32; 4]; MMA_M],
    fragments: &mut [[u32; 4]; STEPS],
    k_tile: usize,
    k_tiles: usize,
    load: &impl Fn(usize),
    a_to_w: u32,
    a_to_s: u32,
) {
    // SAFETY: the stage addresses are inside the ring (the caller's contract); the barrier and the waits below keep every buffer's copies, reads and `wgmma` groups apart.
    unsafe {
        // K-tile `k_tile` has landed for this thread; the fence hands it to the tensor cores'
        // proxy and the barrier makes it everyone's. Every thread has waited for the group
        // `running + 1` stages back, so that stage's buffer is free for the next copies.
        cp_async_wait(pipe.ahead() - 1);
        fence_proxy_async_shared();
        sync_threads();
        if k_tile + pipe.ahead() < k_tiles {
            load(k_tile + pipe.ahead());
        }
        cp_async_commit();
        let base = pipe.stage(k_tile);
        weights.dequant::<FMT>(fragments, base + a_to_w, base + a_to_s);
        wgmma_fence();
        let mut s = 0;
        while s < STEPS {
            wgmma_m64k16::<MMA_M>(acc, fragments[s], wgmma_descriptor(base + (s * 32) as u32));
            s += 1;
        }
        wgmma_commit_group();
        wgmma_wait_group(pipe.running);
    }
}

/// The `m64nNk16` instruction for `MMA_M` blocks of 8 activation rows (N = 8 · `MMA_M`).
///
/// # Safety
/// As the instruction wrappers' (`super::ptx::wgmma_m64n128k16_bf16_rs`).
#[inline(always)]
unsafe fn wgmma_m64k16<const MMA_M: usize>(acc: &mut [[f32; 4]; MMA_M], a: [u32; 4], b_desc: u64) {
    const { assert!(MMA_M == 8 || MMA_M == 16 || MMA_M == 32) };
    let acc = acc.as_mut_ptr().cast::<[f32; 4]>();
    // SAFETY: each branch runs only when `MMA_M` is the array length it names, so the cast
    // views exactly `acc`; the instruction's contract is the caller's.
    unsafe {
        match MMA_M {
            8 => wgmma_m64n64k16_bf16_rs(&mut *acc.cast::<[[f32; 4]; 8]>(), a, b_desc),
            16 => wgmma_m64n128k16_bf16_rs(&mut *acc.cast::<[[f32; 4]; 16]>(), a, b_desc),
            _ => wgmma_m64n256k16_bf16_rs(&mut *acc.cast::<[[f32; 4]; 32]>(), a, b_desc),
        }
    }
}

/// Where one thread reads its weight codes and scales in a stage, worked out once.
struct WeightReader {
    /// Byte offsets in the W tile of device word `t` (`t = lane % 4`) of the thread's rows
    /// `16·warp + g` and `+ 8`.
    rows: [u32; 2],
    /// Offset in the scale tile of row `16·warp + g`, and the bytes of one K-block's row.
    scale: u32,
    scale_row_bytes: u32,
}

impl WeightReader {
    #[inline(always)]
    fn new(tid: usize, bn: usize) -> WeightReader {
        let (warp, lane) = (tid / 32, tid % 32);
        let row = 16 * warp + lane / 4;
        let (row_bytes, word) = (WGMMA_BK / 2, 4 * (lane % 4));
        WeightReader {
            rows: [(row * row_bytes + word) as u32, ((row + 8) * row_bytes + word) as u32],
            scale: row as u32,
            scale_row_bytes: bn as u32,
        }
    }

    /// The A fragments of the stage's four steps, from its W tile at `w_smem` and scale tile
    /// at `s_smem` (see the module docs' K order).
    ///
    /// # Safety
    /// `w_smem` and `s_smem` must be one stage's W and scale tiles.
    #[inline(always)]
    unsafe fn dequant<const FMT: u32>(&self, fragments: &mut [[u32; 4]; STEPS], w_smem: u32, s_smem: u32) {
        // SAFETY: the offsets stay inside the stage's W and scale tiles (the caller's contract).
        unsafe {
            let mut chunk = 0;
            while chunk < CODE_CHUNKS {
                let at = w_smem + (chunk * CHUNK_BYTES) as u32;
                let words = [ld_shared_u32(at + self.rows[0]), ld_shared_u32(at + self.rows[1])];
                // Factors of rows g and g + 8 for the chunk's first and second 16 K-elements:
                // MXFP4 has one 32-element block per chunk, NVFP4 two.
                let factor = |k_block: usize| {
                    let scale = s_smem + k_block as u32 * self.scale_row_bytes + self.scale;
                    [scale_factor_x2::<FMT>(ld_shared_u8(scale)), scale_factor_x2::<FMT>(ld_shared_u8(scale + 8))]
                };
                let first = factor(if FMT == NVFP4 { 2 * chunk } else { chunk });
                let second = if FMT == NVFP4 { factor(2 * chunk + 1) } else { first };
                let lo = dequant_word(words[0], [first[0], second[0]]);
                let hi = dequant_word(words[1], [first[1], second[1]]);
                let mut half = 0;
                while half < 2 {
                    fragments[2 * chunk + half] = [lo[2 * half], hi[2 * half], lo[2 * half + 1], hi[2 * half + 1]];
                    half += 1;
                }
                chunk += 1;
            }
        }
    }
}

/// The `cp.async` copies one thread issues for every K-tile of one output tile, worked out
/// once per tile.
///
/// A: thread `tid` copies chunk column `tid % 8` of rows `tid / 8 + j · threads / 8`, into the
/// swizzled column of that row (the same for every `j`: the row step is a multiple of 8).
/// W: weight row `tid / 2`, code chunk `tid % 2` of the K-tile, from the device strip order
/// (`crate::packing`). Scales: at most one 16-column chunk of one K-block row, as the other
/// families copy them.
struct WgmmaCopies<const FMT: u32> {
    /// A: source of the thread's first row at K-tile 0 (at its chunk column), the source
    /// stride between its rows, the destination of its first row, and the K offset of its
    /// column.
    a_src: u64,
    a_src_stride: u64,
    a_dst: u32,
    a_k: u32,
    /// Bit j: the thread's A row j exists.
    a_live: u32,
    /// W: the thread's row's strip, its row in the strip, its chunk of the K-tile, the
    /// destination, and whether the row exists.
    w_src: u64,
    w_row_in_strip: u32,
    w_chunk: u32,
    w_dst: u32,
    w_live: bool,
    /// Scales: at most one 16-column chunk of one K-block row.
    scales: ScaleCopy<FMT>,
}

impl<const FMT: u32> WgmmaCopies<FMT> {
    #[inline(always)]
    fn new(p: &GroupedGemmParams, tile: TileShape, job: TileJob, tid: usize) -> Self {
        let (n, k) = (p.n as usize, p.k as usize);
        let (bm, bn, threads) = (tile.bm(), tile.bn(), tile.threads());
        let (a_row, a_col) = (tid / A_CHUNKS, tid % A_CHUNKS);
        let a_rows_per_j = threads / A_CHUNKS;
        let mut a_live = 0u32;
        let mut j = 0;
        while j < bm / a_rows_per_j {
            if a_row + j * a_rows_per_j < job.rows {
                a_live |= 1 << j;
            }
            j += 1;
        }
        let (w_row, w_chunk) = (tid / CODE_CHUNKS, tid % CODE_CHUNKS);
        WgmmaCopies {
            a_src: p.a + 2 * ((job.row0 + a_row) * k + a_col * 8) as u64,
            a_src_stride: 2 * (a_rows_per_j * k) as u64,
            a_dst: (a_row * WGMMA_BK * 2 + wgmma_a_chunk(a_row, a_col) * CHUNK_BYTES) as u32,
            a_k: (a_col * 8) as u32,
            a_live,
            w_src: p.w + (job.group * n * (k / 2) + (job.n0 + w_row) / STRIP_ROWS * strip_bytes(k)) as u64,
            w_row_in_strip: ((job.n0 + w_row) % STRIP_ROWS) as u32,
            w_chunk: w_chunk as u32,
            w_dst: (w_row * (WGMMA_BK / 2) + w_chunk * CHUNK_BYTES) as u32,
            w_live: job.n0 + w_row < n,
            scales: ScaleCopy::new(p, &job, bn, WGMMA_BK, tid),
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
        a_smem: u32,
        w_smem: u32,
        s_smem: u32,
        k_tile: usize,
    ) {
        // SAFETY: the stage addresses lie inside the layout and the copy sources inside A, W and the scales, or are zero-byte copies that read nothing (the caller's contract, set up by `WgmmaCopies::new`).
        unsafe {
            let k = p.k;
            let k0 = (k_tile * WGMMA_BK) as u32;
            let (bm, threads) = (tile.bm(), tile.threads());
            let a_rows_per_j = threads / A_CHUNKS;
            let a_bytes = if k0 + self.a_k < k { 16 } else { 0 };
            // The rows' sources are worked out here from one opaque base, not kept in
            // registers from one K-tile to the next.
            let mut a_src = opaque_u64(self.a_src + (k_tile * WGMMA_BK * 2) as u64);
            let mut j = 0;
            while j < bm / a_rows_per_j {
                let bytes = if self.a_live & (1 << j) != 0 { a_bytes } else { 0 };
                let dst = a_smem + self.a_dst + (j * a_rows_per_j * WGMMA_BK * 2) as u32;
                cp_async_16(dst, a_src, bytes);
                a_src += self.a_src_stride;
                j += 1;
            }

            // W: code chunk `2·k_tile + w_chunk` of the row: block `chunk / 4`, chunk `chunk % 4`.
            let chunk = k_tile as u32 * CODE_CHUNKS as u32 + self.w_chunk;
            let per_block = (BLOCK_K / 32) as u32;
            let in_strip = strip_block_offset(k, self.w_row_in_strip, chunk / per_block, chunk % per_block);
            let w_bytes = if self.w_live && 32 * chunk < k { 16 } else { 0 };
            cp_async_16(w_smem + self.w_dst, self.w_src + in_strip as u64, w_bytes);

            self.scales.issue(p, s_smem, k_tile);
        }
    }
}

/// Scales the accumulators (see [`output_scale`]) and stores the rows and columns of the tile
/// that exist ([`store_pair`]: bf16 pairs along N, or the gated activation of each pair).
///
/// A lane holds weight rows `g` and `g + 8` of its warp's 16 for activation rows `2t`, `2t + 1`
/// of each 8-row block; lanes `g` and `g ^ 1` swap halves so that the even lane stores columns
/// `(g, g + 1)` and the odd lane `(g + 7, g + 8)`.
#[inline(always)]
unsafe fn epilogue<const FMT: u32, const MMA_M: usize>(
    p: &GroupedGemmParams,
    job: TileJob,
    acc: &[[f32; 4]; MMA_M],
    tid: usize,
) {
    // SAFETY: `job` lies inside the problem (the caller's contract) and every store is guarded by `row < job.rows` and `col < n`.
    unsafe {
        let n = p.n as usize;
        let (warp, lane) = (tid / 32, tid % 32);
        let (g, t) = (lane / 4, lane % 4);
        let odd = g % 2 == 1;
        let col = job.n0 + 16 * warp + if odd { g + 7 } else { g };
        let scale = output_scale::<FMT>(p, job.group);
        let mut j = 0;
        while j < MMA_M {
            let d = acc[j];
            let (give, keep) = if odd { ([d[0], d[1]], [d[2], d[3]]) } else { ([d[2], d[3]], [d[0], d[1]]) };
            let got = [f32::from_bits(shfl_xor(give[0].to_bits(), 4)), f32::from_bits(shfl_xor(give[1].to_bits(), 4))];
            let row = 8 * j + 2 * t;
            let mut i = 0;
            while i < 2 {
                let (lo, hi) = if odd { (got[i], keep[i]) } else { (keep[i], got[i]) };
                if col < n && row + i < job.rows {
                    store_pair(p, job.group, job.row0 + row + i, col, lo * scale, hi * scale);
                }
                i += 1;
            }
            j += 1;
        }
    }
}
