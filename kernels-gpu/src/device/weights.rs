//! Weight preparation on the device: natural FP4 codes into the kernels' layout, the same
//! transformation as the host's `order_chunks` followed by `pack_codes`, from the same
//! formulas ([`pack_chunk`], [`code_chunk_offset`]).

use super::ptx::*;
use crate::packing::{code_chunk_offset, pack_chunk};
use crate::params::{PackParams, PACK_BLOCK};

/// Bytes of one chunk of codes: 32 K-elements of one row, one 16-byte load.
const CHUNK_BYTES: u64 = 16;

/// Packs every 16-byte chunk of `src` into `dst` (one chunk per thread, grid-stride).
///
/// # Safety
/// Pointers and shapes as documented on [`PackParams`]: `src` and `dst` hold
/// `groups · n · k / 2` bytes each, 16-byte aligned, and do not overlap.
pub unsafe fn pack(p: &PackParams) {
    // At least 1 (the host passes positive shapes): no division by zero is left to trap.
    let (n, k) = ((p.n as u64).max(1), p.k as u64);
    let chunks_per_row = (k / 32).max(1);
    let total = p.groups as u64 * n * chunks_per_row;
    let stride = grid_dim() as u64 * PACK_BLOCK as u64;
    let mut i = block_idx() as u64 * PACK_BLOCK as u64 + thread_idx() as u64;
    while i < total {
        let (row, chunk) = (i / chunks_per_row, i % chunks_per_row);
        let (group, row_in_group) = (row / n, row % n);
        let to = group * n * (k / 2) + code_chunk_offset(k as usize, row_in_group as usize, chunk as usize) as u64;
        // SAFETY: `i < groups · n · k / 32`, so the chunk read (`i · 16`) and the one written
        // (`code_chunk_offset` permutes a group's chunks) lie inside the buffers; both are
        // 16-byte aligned (the launcher's contract, and every offset a multiple of 16).
        unsafe {
            let words = ld_global_nc_v4(p.src + i * CHUNK_BYTES);
            st_global_v4(p.dst + to, pack_chunk(words));
        }
        i += stride;
    }
}
