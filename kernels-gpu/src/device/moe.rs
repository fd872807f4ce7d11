//! The MoE-layer kernels around the grouped GEMMs: router, top-k, the stable permutation of
//! assignments by expert, gather (or all four in one launch for a small batch:
//! [`route_small`]), activation, weighted combine, and a random fill for synthetic weights. All
//! use [`MOE_BLOCK`] threads per block and read [`MoeParams`].
//!
//! Every kernel is deterministic: fixed summation orders, and no atomic in any result (the one
//! atomic, `route_small`'s block counter, only picks which block does the last part, which any
//! block would do the same). Every index read from
//! device data (expert ids, permuted rows, assignments) is clamped to its range before it
//! addresses memory, so no buffer contents take a kernel outside the buffers its launcher
//! checked (`host/moe/kernels.rs`).

use super::activation::gated;
use super::ptx::*;
use crate::layout::RegionAligned;
use crate::params::{
    gate_up, row_blocks, FillParams, MoeParams, MAX_EXPERTS, MAX_TOP_K, MOE_BLOCK, MOE_SCRATCH_BYTES, MOE_VECTOR,
    SMALL_ROUTE_ROWS,
};
use crate::routing::{key_logit, rank_key, ABSENT};

const WARPS: usize = MOE_BLOCK / 32;
/// Scratch slot (after the per-warp counts) holding an expert's first permuted row.
const FIRST_ROW_SLOT: u32 = 4 * WARPS as u32;
const _: () = assert!(FIRST_ROW_SLOT as usize + 4 <= MOE_SCRATCH_BYTES);

#[inline(always)]
fn global_warp() -> (usize, usize) {
    let (block, tid) = (block_idx() as usize, thread_idx() as usize);
    ((block * MOE_BLOCK + tid) / 32, tid % 32)
}

#[inline(always)]
fn warp_sum(mut v: f32) -> f32 {
    let mut m = 16;
    while m > 0 {
        v += f32::from_bits(shfl_xor(v.to_bits(), m));
        m /= 2;
    }
    v
}

#[inline(always)]
fn warp_max(mut v: f32) -> f32 {
    let mut m = 16;
    while m > 0 {
        v = v.max(f32::from_bits(shfl_xor(v.to_bits(), m)));
        m /= 2;
    }
    v
}

/// Two bf16 in a u32 as f32s (low, high).
#[inline(always)]
fn unpack(w: u32) -> (f32, f32) {
    (bf16_to_f32(w & 0xFFFF), bf16_to_f32(w >> 16))
}

/// `logits[t][e] = x[t] · router_w[e] + router_b[e]`, one warp per (t, e), f32 accumulation.
/// Waits for the grid before it inside ([`router_logit`]), with nothing read before: this is the
/// router of the larger batches, whose thousands of warps gain more from the registers of
/// early loads than from the loads.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`]; `hidden % 8 == 0`.
pub unsafe fn router(p: &MoeParams) {
    let (warp, lane) = global_warp();
    // SAFETY: this function's contract.
    unsafe { router_logit::<0>(p, warp, lane) }
}

/// The 16-byte chunks `first + stride·j`, `j < N`, of the `chunks` at `base` (zero past them),
/// all loaded before any is used.
///
/// # Safety
/// `base` must address `chunks` readable 16-byte chunks.
#[inline(always)]
unsafe fn strided_chunks<const N: usize>(base: u64, first: usize, stride: usize, chunks: usize) -> [[u32; 4]; N] {
    let mut v = [[0u32; 4]; N];
    let mut j = 0;
    while j < N {
        let chunk = first + stride * j;
        if chunk < chunks {
            // SAFETY: the chunk is one of the `chunks` (this function's contract).
            v[j] = unsafe { ld_global_nc_v4(base + 16 * chunk as u64) };
        }
        j += 1;
    }
    v
}

/// `acc` plus the dot product of two 16-byte chunks of bf16 (`x`, `w`), pair by pair in order.
#[inline(always)]
fn add_chunk_dot(mut acc: f32, x: [u32; 4], w: [u32; 4]) -> f32 {
    let mut i = 0;
    while i < 4 {
        let ((x0, x1), (w0, w1)) = (unpack(x[i]), unpack(w[i]));
        acc += x0 * w0 + x1 * w1;
        i += 1;
    }
    acc
}

/// 16-byte chunks each thread of `route_small`'s gather loads before storing any.
const GATHER_BATCH: usize = 4;

/// 16-byte chunks of a router row each lane of `route_small` loads before the wait for the
/// grid before it (`router_logit`): all of a 2880-wide row (11.25 per lane). They take 96
/// registers with their `x` chunks, which the few warps of a small batch can spare.
const ROUTER_EARLY: usize = 12;

/// 16-byte chunks of a router row past the early ones each lane loads before using any.
const ROUTER_UNROLL: usize = 4;

/// The logit of (token, expert) number `warp` (token-major), by one warp; nothing past T·E.
/// Every thread waits for the grid before it ([`wait_for_previous_grid`]) here, after loading
/// its first `EARLY` chunks of the router row and, with `EARLY > 0`, the bias (weights, which
/// no kernel writes) and before it reads `x` (which the kernel before it may write): the
/// router's weight stream starts while that kernel finishes.
///
/// # Safety
/// As [`router`].
#[inline(always)]
unsafe fn router_logit<const EARLY: usize>(p: &MoeParams, warp: usize, lane: usize) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let (experts, hidden) = (p.experts as usize, p.hidden as usize);
        let (t, e) = (warp / experts.max(1), warp % experts.max(1));
        let live = t < p.tokens as usize;
        // The lane's 16-byte chunks are lane + 32j: the first EARLY of the router row
        // before the wait, then x's, then the rest ROUTER_UNROLL at a time, each batch loaded
        // before any is used, all summed in the order j = 0, 1, ... (whatever EARLY is, the
        // same sum bit for bit).
        let chunks = hidden / 8;
        let (w_row, x_row) = (p.router_w + 2 * (e * hidden) as u64, p.x + 2 * (t * hidden) as u64);
        let mut w_early = [[0u32; 4]; EARLY];
        let mut bias = 0u32;
        if live {
            w_early = strided_chunks::<EARLY>(w_row, lane, 32, chunks);
            if lane == 0 && EARLY > 0 {
                bias = ld_global_nc_u32(p.router_b + 4 * e as u64);
            }
        }
        wait_for_previous_grid();
        if !live {
            return;
        }
        if lane == 0 && EARLY == 0 {
            bias = ld_global_nc_u32(p.router_b + 4 * e as u64);
        }
        let x_early = strided_chunks::<EARLY>(x_row, lane, 32, chunks);
        let mut acc = 0.0f32;
        let mut j = 0;
        while j < EARLY && lane + 32 * j < chunks {
            acc = add_chunk_dot(acc, x_early[j], w_early[j]);
            j += 1;
        }
        let mut c = lane + 32 * EARLY;
        while c < chunks {
            let (xv, wv) = (
                strided_chunks::<ROUTER_UNROLL>(x_row, c, 32, chunks),
                strided_chunks::<ROUTER_UNROLL>(w_row, c, 32, chunks),
            );
            let mut u = 0;
            while u < ROUTER_UNROLL && c + 32 * u < chunks {
                acc = add_chunk_dot(acc, xv[u], wv[u]);
                u += 1;
            }
            c += 32 * ROUTER_UNROLL;
        }
        let acc = warp_sum(acc);
        if lane == 0 {
            st_global_u32(p.logits + 4 * (t * experts + e) as u64, (acc + f32::from_bits(bias)).to_bits());
        }
    }
}

/// Top-k experts of each token and their combine weights: the softmax of the k chosen logits
/// (`renormalize`) or of all logits. One warp per token.
///
/// Experts are ranked by [`rank_key`]: NaN logits rank last and ties go to the lower expert
/// index, so every id written is below `experts` whatever the logits hold. NaN logits in a
/// token's softmax (the chosen ones with `renormalize`, else all), or chosen logits that are
/// all −inf, give that token NaN combine weights and so a NaN output row; other tokens are
/// unaffected.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`]; `experts <= 256`, `top_k <= 8`,
/// `top_k <= experts`.
pub unsafe fn topk(p: &MoeParams) {
    let (t, lane) = global_warp();
    if t < p.tokens as usize {
        // SAFETY: this function's contract.
        unsafe { topk_token(p, t, lane, None) }
    }
}

/// Token `t`'s top-k experts and weights, by one warp. The logits are read from L2
/// ([`ld_global_cg_u32`]), so they may have been written by other blocks of the same kernel
/// (before a fence, as in [`route_small`]). With `ids_smem`, the ids also go to the shared
/// u32 array there (assignment `t·k + r` at index `t·k + r`), for the block's next steps.
///
/// # Safety
/// As [`topk`]; `t < tokens`; `ids_smem`, if given, holds `tokens · top_k` u32.
#[inline(always)]
unsafe fn topk_token(p: &MoeParams, t: usize, lane: usize, ids_smem: Option<u32>) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let (experts, k) = (p.experts as usize, p.top_k as usize);
        const PER_LANE: usize = MAX_EXPERTS / 32;
        // Every load is issued before any key is made from one, so their latencies overlap.
        let mut bits = [0u32; PER_LANE];
        let mut j = 0;
        while j < PER_LANE {
            let e = lane + 32 * j;
            if e < experts {
                bits[j] = ld_global_cg_u32(p.logits + 4 * (t * experts + e) as u64);
            }
            j += 1;
        }
        let mut keys = [ABSENT; PER_LANE];
        let mut j = 0;
        while j < PER_LANE {
            if lane + 32 * j < experts {
                keys[j] = rank_key(f32::from_bits(bits[j]));
            }
            j += 1;
        }
        let mut local_max = f32::NEG_INFINITY;
        let mut j = 0;
        while j < PER_LANE {
            if keys[j] != ABSENT {
                local_max = local_max.max(key_logit(keys[j]));
            }
            j += 1;
        }
        let max_all = warp_max(local_max);
        let mut local_sum = 0.0f32;
        let mut j = 0;
        while j < PER_LANE {
            if keys[j] != ABSENT {
                local_sum += exp_approx(key_logit(keys[j]) - max_all);
            }
            j += 1;
        }
        let sum_all = warp_sum(local_sum);

        let mut chosen = [0.0f32; MAX_TOP_K];
        let mut ids = [0u32; MAX_TOP_K];
        let mut r = 0;
        while r < MAX_TOP_K {
            if r < k {
                // This lane's best remaining key, then the warp's (lower index wins ties). At least
                // `experts - r >= 1` entries are still present, all with keys above ABSENT, so the
                // winner is a real expert.
                let (mut v, mut e) = (ABSENT, u32::MAX);
                let mut j = 0;
                while j < PER_LANE {
                    if keys[j] > v {
                        v = keys[j];
                        e = (lane + 32 * j) as u32;
                    }
                    j += 1;
                }
                let mut m = 16;
                while m > 0 {
                    let (ov, oe) = (shfl_xor(v, m), shfl_xor(e, m));
                    if ov > v || (ov == v && oe < e) {
                        v = ov;
                        e = oe;
                    }
                    m /= 2;
                }
                let mut j = 0;
                while j < PER_LANE {
                    if (lane + 32 * j) as u32 == e {
                        keys[j] = ABSENT;
                    }
                    j += 1;
                }
                chosen[r] = key_logit(v);
                ids[r] = e;
            }
            r += 1;
        }
        if lane == 0 {
            let mut sum_chosen = 0.0f32;
            let mut r = 0;
            while r < MAX_TOP_K {
                if r < k {
                    sum_chosen += exp_approx(chosen[r] - chosen[0]);
                }
                r += 1;
            }
            let mut r = 0;
            while r < MAX_TOP_K {
                if r < k {
                    let w = if p.renormalize != 0 {
                        exp_approx(chosen[r] - chosen[0]) / sum_chosen
                    } else {
                        exp_approx(chosen[r] - max_all) / sum_all
                    };
                    st_global_u32(p.topk_ids + 4 * (t * k + r) as u64, ids[r]);
                    st_global_u32(p.topk_w + 4 * (t * k + r) as u64, w.to_bits());
                    if let Some(shared) = ids_smem {
                        st_shared_u32(shared + 4 * (t * k + r) as u32, ids[r]);
                    }
                }
                r += 1;
            }
        }
    }
}

/// Walks all assignments in order, ranking those routed to expert `e` (stable); when
/// `first_row` is given, writes their permuted rows. Returns how many there are. All threads
/// of the block call it; `warp_counts` is shared scratch for one u32 per warp.
#[inline(always)]
unsafe fn rank_assignments(p: &MoeParams, e: u32, first_row: Option<u32>, warp_counts: u32) -> u32 {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let tid = thread_idx() as usize;
        let (warp, lane) = (tid / 32, tid % 32);
        let total = p.tokens as usize * p.top_k as usize;
        let mut seen = 0u32;
        let mut start = 0;
        while start < total {
            let a = start + tid;
            let pred = a < total && ld_global_nc_u32(p.topk_ids + 4 * a as u64) == e;
            let votes = ballot(pred);
            if lane == 0 {
                st_shared_u32(warp_counts + 4 * warp as u32, votes.count_ones());
            }
            sync_threads();
            let (mut before, mut chunk) = (0u32, 0u32);
            let mut w = 0;
            while w < WARPS {
                let c = ld_shared_u32(warp_counts + 4 * w as u32);
                if w < warp {
                    before += c;
                }
                chunk += c;
                w += 1;
            }
            if let (Some(first), true) = (first_row, pred) {
                let row = first + seen + before + (votes & lanemask_lt()).count_ones();
                st_global_u32(p.perm_src + 4 * row as u64, a as u32);
                st_global_u32(p.perm_dst + 4 * a as u64, row);
            }
            seen += chunk;
            sync_threads();
            start += MOE_BLOCK;
        }
        seen
    }
}

/// `counts[e]`: assignments routed to expert `e`. One block per expert, with
/// [`MOE_SCRATCH_BYTES`] of dynamic shared memory.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`].
pub unsafe fn count(p: &MoeParams) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let e = block_idx();
        let n = rank_assignments(p, e, None, dynamic_smem_base::<RegionAligned>());
        if thread_idx() == 0 {
            st_global_u32(p.counts + 4 * e as u64, n);
        }
    }
}

/// `offsets`, `perm_src` and `perm_dst`: assignments sorted by expert, stable. One block per
/// expert (after [`count`]), with [`MOE_SCRATCH_BYTES`] of dynamic shared memory.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`]; `counts` filled by [`count`].
pub unsafe fn scatter(p: &MoeParams) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let e = block_idx() as usize;
        let tid = thread_idx() as usize;
        let scratch = dynamic_smem_base::<RegionAligned>();
        if tid < 32 {
            // This expert's first row: the counts of the experts before it.
            let mut partial = 0u32;
            let mut j = 0;
            while j < MAX_EXPERTS / 32 {
                let i = tid + 32 * j;
                if i < e {
                    partial += ld_global_nc_u32(p.counts + 4 * i as u64);
                }
                j += 1;
            }
            let mut m = 16;
            while m > 0 {
                partial += shfl_xor(partial, m);
                m /= 2;
            }
            if tid == 0 {
                st_shared_u32(scratch + FIRST_ROW_SLOT, partial);
            }
        }
        sync_threads();
        let first = ld_shared_u32(scratch + FIRST_ROW_SLOT);
        let n = rank_assignments(p, e as u32, Some(first), scratch);
        if tid == 0 {
            st_global_u32(p.offsets + 4 * e as u64, first);
            if e + 1 == p.experts as usize {
                st_global_u32(p.offsets + 4 * (e + 1) as u64, first + n);
            }
        }
    }
}

/// Routing of a small batch in one launch: [`router`]'s grid computes the logits, and the last
/// block to finish (counted in `p.counter`, which it resets to 0) makes the top-k of every token,
/// the stable permutation of the T·k ≤ [`SMALL_ROUTE_ROWS`] assignments by a counting sort
/// (`counts`, `offsets`, `perm_src`, `perm_dst` as [`count`] and [`scatter`] make them) and the
/// gather, whose first loads of `x` it issues before the top-k so that they land meanwhile.
/// [`ROUTE_SCRATCH_BYTES`](crate::params::ROUTE_SCRATCH_BYTES) of dynamic shared memory. The
/// same results, bit for bit, as the five kernels it replaces: no step depends on which block
/// finishes last.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`]; `tokens · top_k <= SMALL_ROUTE_ROWS`,
/// `hidden % 8 == 0`; `counter` is 0 at launch.
pub unsafe fn route_small(p: &MoeParams) {
    let (warp, lane) = global_warp();
    // SAFETY: this function's contract; the last block reads only what every block wrote
    // before its fence, and every index it takes from device data is clamped.
    unsafe {
        router_logit::<ROUTER_EARLY>(p, warp, lane);
        // Publish this block's logits, then count the block in.
        fence_gpu();
        sync_threads();
        let scratch = dynamic_smem_base::<RegionAligned>();
        let tid = thread_idx() as usize;
        if tid == 0 {
            let before = atom_add_global_u32(p.counter, 1);
            st_shared_u32(scratch, (before + 1 == grid_dim()) as u32);
        }
        sync_threads();
        if ld_shared_u32(scratch) == 0 {
            return;
        }
        fence_gpu();
        // At least 1 (the host passes positive shapes): no division by zero is left to trap.
        let (experts, k, tokens) = (p.experts as usize, (p.top_k as usize).max(1), p.tokens as usize);
        let rows = tokens * k;
        let ids = scratch + 4;
        let counts = ids + 4 * SMALL_ROUTE_ROWS as u32;
        let firsts = counts + 4 * MAX_EXPERTS as u32;
        let dests = firsts + 4 * MAX_EXPERTS as u32;
        // 0. The gather's first loads, issued now so that they land during the steps below: x's
        // 16-byte chunks `tid + b·MOE_BLOCK` (token-major), b < GATHER_BATCH.
        let per_row = (p.hidden as usize / 8).max(1);
        let x_chunks = tokens * per_row;
        let early = strided_chunks::<GATHER_BATCH>(p.x, tid, MOE_BLOCK, x_chunks);
        // 1. Every token's top-k, one warp per token; the ids also into shared memory.
        let mut t = tid / 32;
        while t < tokens {
            topk_token(p, t, lane, Some(ids));
            t += WARPS;
        }
        sync_threads();
        // 2. Each expert's count.
        let id_of = |a: usize| (ld_shared_u32(ids + 4 * a as u32) as usize).min(experts - 1);
        let mut n = 0u32;
        if tid < experts {
            let mut a = 0;
            while a < rows {
                n += (id_of(a) == tid) as u32;
                a += 1;
            }
            st_shared_u32(counts + 4 * tid as u32, n);
            st_global_u32(p.counts + 4 * tid as u64, n);
        }
        sync_threads();
        // 3. Each expert's first row: the assignments to the experts before it (the counts
        // before it, summed over the at most SMALL_ROUTE_ROWS assignments, not the experts).
        if tid < experts {
            let mut first = 0u32;
            let mut a = 0;
            while a < rows {
                first += (id_of(a) < tid) as u32;
                a += 1;
            }
            st_shared_u32(firsts + 4 * tid as u32, first);
            st_global_u32(p.offsets + 4 * tid as u64, first);
            if tid + 1 == experts {
                st_global_u32(p.offsets + 4 * experts as u64, first + n);
            }
        }
        sync_threads();
        // 4. Each assignment's row: its expert's first row plus the earlier assignments to it.
        if tid < rows {
            let id = id_of(tid);
            let mut rank = 0u32;
            let mut a = 0;
            while a < tid {
                rank += (id_of(a) == id) as u32;
                a += 1;
            }
            let row = ((ld_shared_u32(firsts + 4 * id as u32) + rank) as usize).min(rows - 1);
            st_shared_u32(dests + 4 * tid as u32, row as u32);
            st_global_u32(p.perm_src + 4 * row as u64, tid as u32);
            st_global_u32(p.perm_dst + 4 * tid as u64, row as u32);
        }
        sync_threads();
        // 5. The gather: x's chunk (t, c) to chunk c of the rows of token t's k assignments;
        // the chunks past the early ones GATHER_BATCH at a time, all loaded before any is stored.
        let store = |chunk: usize, v: [u32; 4]| {
            let (t, c) = (chunk / per_row, chunk % per_row);
            let mut r = 0;
            while r < MAX_TOP_K {
                if r < k {
                    let row = ld_shared_u32(dests + 4 * (t * k + r) as u32) as usize;
                    st_global_v4(p.a_perm + 16 * (row * per_row + c) as u64, v);
                }
                r += 1;
            }
        };
        let mut i = tid;
        let mut v = early;
        loop {
            let mut b = 0;
            while b < GATHER_BATCH && i + b * MOE_BLOCK < x_chunks {
                store(i + b * MOE_BLOCK, v[b]);
                b += 1;
            }
            i += GATHER_BATCH * MOE_BLOCK;
            if i >= x_chunks {
                break;
            }
            v = strided_chunks::<GATHER_BATCH>(p.x, i, MOE_BLOCK, x_chunks);
        }
        if tid == 0 {
            st_global_u32(p.counter, 0);
        }
    }
}

/// `a_perm[row] = x[token of perm_src[row]]`. One block per permuted row.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`]; `hidden % 8 == 0`.
pub unsafe fn gather(p: &MoeParams) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let row = block_idx() as usize;
        let (hidden, k) = (p.hidden as usize, (p.top_k as usize).max(1));
        if row >= p.tokens as usize * k {
            return;
        }
        // Clamped: whatever `perm_src` holds, the token read is one of the T tokens.
        let t = (ld_global_nc_u32(p.perm_src + 4 * row as u64) as usize / k).min(p.tokens as usize - 1);
        let mut c = thread_idx() as usize;
        while c < hidden / 8 {
            let v = ld_global_nc_v4(p.x + 2 * (t * hidden + c * 8) as u64);
            st_global_v4(p.a_perm + 2 * (row * hidden + c * 8) as u64, v);
            c += MOE_BLOCK;
        }
    }
}

/// The row and the first of the [`MOE_VECTOR`] consecutive elements this thread computes, of
/// rows `width` wide spread over [`row_blocks`]`(width)` blocks each.
#[inline(always)]
fn row_and_column(width: usize) -> (usize, usize) {
    let blocks = row_blocks(width);
    let block = block_idx() as usize;
    (block / blocks, ((block % blocks) * MOE_BLOCK + thread_idx() as usize) * MOE_VECTOR)
}

/// 8 bf16 of a 16-byte load as f32s.
#[inline(always)]
fn unpack8(v: [u32; 4]) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    let mut i = 0;
    while i < 4 {
        (out[2 * i], out[2 * i + 1]) = unpack(v[i]);
        i += 1;
    }
    out
}

/// 8 f32 from two 16-byte loads at `addr`.
///
/// # Safety
/// `addr` addresses 32 readable, 16-byte-aligned bytes.
#[inline(always)]
unsafe fn load_f32x8(addr: u64) -> [f32; 8] {
    // SAFETY: the caller's contract.
    let (lo, hi) = unsafe { (ld_global_nc_v4(addr), ld_global_nc_v4(addr + 16)) };
    let mut out = [0.0f32; 8];
    let mut i = 0;
    while i < 4 {
        out[i] = f32::from_bits(lo[i]);
        out[4 + i] = f32::from_bits(hi[i]);
        i += 1;
    }
    out
}

/// `a2[row] = act(h1[row] + gate_up_bias[e])`, with the gate/up layout and activation the
/// params name. [`row_blocks`]`(I)` blocks per permuted row, [`MOE_VECTOR`] outputs per thread.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`]; `inter % MOE_VECTOR == 0`.
pub unsafe fn activate(p: &MoeParams) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let inter = p.inter as usize;
        let (row, j0) = row_and_column(inter);
        let rows = p.tokens as usize * p.top_k as usize;
        if row >= rows || j0 >= inter {
            return;
        }
        // Clamped: whatever the routing buffers hold, the assignment and expert are in range.
        let a = (ld_global_nc_u32(p.perm_src + 4 * row as u64) as usize).min(rows - 1);
        let e = (ld_global_nc_u32(p.topk_ids + 4 * a as u64) as usize).min(p.experts as usize - 1);
        let h1 = p.h1 + 2 * (row * 2 * inter) as u64;
        let bias = p.gate_up_bias + 4 * (e * 2 * inter) as u64;
        // Gate and up of outputs j0..j0 + 8: interleaved, 16 consecutive values (gate, up, …);
        // concatenated, 8 gates at j0 and 8 ups at I + j0.
        let (mut gate, mut up) = ([0.0f32; 8], [0.0f32; 8]);
        if p.gate_up_layout == gate_up::INTERLEAVED {
            let first = unpack8(ld_global_nc_v4(h1 + 2 * (2 * j0) as u64));
            let second = unpack8(ld_global_nc_v4(h1 + 2 * (2 * j0 + 8) as u64));
            let (b0, b1) = (load_f32x8(bias + 4 * (2 * j0) as u64), load_f32x8(bias + 4 * (2 * j0 + 8) as u64));
            let mut i = 0;
            while i < 4 {
                gate[i] = first[2 * i] + b0[2 * i];
                up[i] = first[2 * i + 1] + b0[2 * i + 1];
                gate[4 + i] = second[2 * i] + b1[2 * i];
                up[4 + i] = second[2 * i + 1] + b1[2 * i + 1];
                i += 1;
            }
        } else {
            let g = unpack8(ld_global_nc_v4(h1 + 2 * j0 as u64));
            let u = unpack8(ld_global_nc_v4(h1 + 2 * (inter + j0) as u64));
            let (bg, bu) = (load_f32x8(bias + 4 * j0 as u64), load_f32x8(bias + 4 * (inter + j0) as u64));
            let mut i = 0;
            while i < 8 {
                gate[i] = g[i] + bg[i];
                up[i] = u[i] + bu[i];
                i += 1;
            }
        }
        let mut y = [0u32; 4];
        let mut i = 0;
        while i < 8 {
            let v = gated(p.activation, gate[i], up[i], p.limit, p.alpha);
            y[i / 2] |= f32_to_bf16(v) << (16 * (i % 2));
            i += 1;
        }
        st_global_v4(p.a2 + 2 * (row * inter + j0) as u64, y);
    }
}

/// `out[t] = Σ_r topk_w[t][r] · (h2[perm_dst[t·k+r]] + down_bias[e_r])`, summed in f32 in
/// the order r = 0..k. [`row_blocks`]`(H)` blocks per token, [`MOE_VECTOR`] outputs per thread.
///
/// Waits for the grid before it inside: the routing results and the bias are loaded first (the
/// kernel before it, the down projection, writes only `h2`, and the routing it reads finished
/// before that kernel's own wait returned), `h2` after the wait.
///
/// # Safety
/// Pointers and shapes as documented on [`MoeParams`]; `hidden % MOE_VECTOR == 0`,
/// `top_k <= MAX_TOP_K`; the kernel launched just before it writes none of `perm_dst`,
/// `topk_ids`, `topk_w` and `down_bias`.
pub unsafe fn combine(p: &MoeParams) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let (hidden, k) = (p.hidden as usize, p.top_k as usize);
        let (t, h0) = row_and_column(hidden);
        let live = t < p.tokens as usize && h0 < hidden;
        let rows = p.tokens as usize * k;
        let mut h2_rows = [0usize; MAX_TOP_K];
        let mut weights = [0.0f32; MAX_TOP_K];
        let mut biases = [[0.0f32; 8]; MAX_TOP_K];
        let mut r = 0;
        while live && r < MAX_TOP_K {
            if r < k {
                let a = t * k + r;
                // Clamped: whatever the routing buffers hold, the row and expert are in range.
                h2_rows[r] = (ld_global_nc_u32(p.perm_dst + 4 * a as u64) as usize).min(rows - 1);
                let e = (ld_global_nc_u32(p.topk_ids + 4 * a as u64) as usize).min(p.experts as usize - 1);
                weights[r] = f32::from_bits(ld_global_nc_u32(p.topk_w + 4 * a as u64));
                biases[r] = load_f32x8(p.down_bias + 4 * (e * hidden + h0) as u64);
            }
            r += 1;
        }
        wait_for_previous_grid();
        if !live {
            return;
        }
        let mut h2 = [[0u32; 4]; MAX_TOP_K];
        let mut r = 0;
        while r < MAX_TOP_K {
            if r < k {
                h2[r] = ld_global_nc_v4(p.h2 + 2 * (h2_rows[r] * hidden + h0) as u64);
            }
            r += 1;
        }
        let mut acc = [0.0f32; 8];
        let mut r = 0;
        while r < MAX_TOP_K {
            if r < k {
                let v = unpack8(h2[r]);
                let mut i = 0;
                while i < 8 {
                    acc[i] += weights[r] * (v[i] + biases[r][i]);
                    i += 1;
                }
            }
            r += 1;
        }
        let mut out = [0u32; 4];
        let mut i = 0;
        while i < 8 {
            out[i / 2] |= f32_to_bf16(acc[i]) << (16 * (i % 2));
            i += 1;
        }
        st_global_v4(p.out + 2 * (t * hidden + h0) as u64, out);
    }
}

/// SplitMix64's output function.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills bytes with `lo + hash(seed, i) % span`, four at a time (grid-stride).
///
/// # Safety
/// `ptr` must address `len` writable bytes, 4-byte aligned.
pub unsafe fn fill(p: &FillParams) {
    // SAFETY: the launcher checked every buffer against the shapes in `p` (this function's contract), and every index read from device data is clamped to its range before it addresses memory.
    unsafe {
        let span = (p.span as u64).clamp(1, 256);
        let byte = |h: u64, i: u32| (p.lo as u64 + ((h >> (8 * i)) & 0xFFFF_FFFF) % span) as u32 & 0xFF;
        let stride = (grid_dim() as u64) * MOE_BLOCK as u64;
        let mut word = block_idx() as u64 * MOE_BLOCK as u64 + thread_idx() as u64;
        while word * 4 < p.len {
            let h = mix(p.seed.wrapping_add(word.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            if word * 4 + 4 <= p.len {
                let v = byte(h, 0) | byte(h, 1) << 8 | byte(h, 2) << 16 | byte(h, 3) << 24;
                st_global_u32(p.ptr + word * 4, v);
            } else {
                let mut i = 0;
                while word * 4 + i < p.len {
                    st_global_u8(p.ptr + word * 4 + i, byte(h, i as u32));
                    i += 1;
                }
            }
            word += stride;
        }
    }
}
