//! The shared-memory layout of a grouped-GEMM kernel variant, and its exact byte count.
//!
//! This is the one description of the kernel's dynamic shared memory. The kernel computes its
//! buffer addresses from it, checks at entry that the launch gave it [`SmemLayout::total_bytes`],
//! and the host sizes the launch and chooses STAGES with the same function, so the two cannot
//! disagree about padding, alignment or scheduler storage.
//!
//! ```text
//! [ tile table: (MAX_GROUPS + 1) × u32 ][ R ][ stage 0: A | W | S ][ stage 1: A | W | S ] ...
//! ```
//! - tile table: first tile index of each group (exclusive prefix sum), then the total;
//! - R ([`Family::SwapAb`] only): f32 partial sums `[warps_k][BM][BN + REDUCE_PAD]`, where the
//!   warps that split K add up a tile (see [`reduce_offset`]);
//! - A: bf16 `[BM][BK]` activations; [`Family::Mma`]: rows of `BK·2` bytes, 16-byte chunks
//!   XOR-swizzled (see [`a_chunk`]); [`Family::SwapAb`]: in fragment order (see
//!   [`swap_ab_chunk_offset`]);
//! - W: packed e2m1 `[BN][BK/2]`; [`Family::Mma`]: 16-byte chunks XOR-swizzled (see
//!   [`w_chunk`]); [`Family::SwapAb`]: in fragment order;
//! - S: block-scale bytes `[BK/16][BN]` (MXFP4 uses the first `BK/32` rows); rows are
//!   [`SwapAb`](Family::SwapAb) padded by [`SCALE_ROW_PAD`].
//!
//! Every region starts on a [`REGION_ALIGN`]-byte boundary. [`Family::Wgmma`] reads its A
//! tiles (`[BM][64]` bf16, 128-byte rows swizzled as [`wgmma_a_chunk`]) with the tensor cores,
//! whose swizzle repeats every [`WGMMA_SWIZZLE_ATOM`] bytes: its stages are that many bytes
//! apart and its ring starts at the first such boundary at or after `a` in the shared window
//! (the block's dynamic shared memory is only [`REGION_ALIGN`]-aligned, so `total_bytes`
//! counts the [`WGMMA_ALIGN_SLACK`] bytes that rounding may skip).

use crate::format::FINEST_SCALE_BLOCK;
use crate::tactics::{Family, TileShape};

/// The most groups (experts) one launch may have: the tile table has a slot for each.
pub const MAX_GROUPS: usize = 256;
/// Alignment of every region in the layout.
pub const REGION_ALIGN: usize = 128;
/// A type of [`REGION_ALIGN`] alignment: the dynamic shared memory is declared with it.
#[repr(C, align(128))]
pub struct RegionAligned([u8; REGION_ALIGN]);
const _: () = assert!(core::mem::align_of::<RegionAligned>() == REGION_ALIGN);
/// Bytes of one `cp.async` chunk.
pub const CHUNK_BYTES: usize = 16;

const fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Byte offsets and sizes of the dynamic shared memory of one (tile shape, STAGES) variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmemLayout {
    /// Pipeline depth.
    pub stages: usize,
    /// Offset of the tile table (always 0).
    pub tile_table: usize,
    /// Offset of the reduction buffer R (empty, at `a`, for [`Family::Mma`] and [`Family::Wgmma`]).
    pub reduce: usize,
    /// Offset of stage 0's A tile.
    pub a: usize,
    /// Offset of stage 0's W tile.
    pub w: usize,
    /// Offset of stage 0's scale tile.
    pub s: usize,
    /// Bytes from one stage to the next.
    pub stage_stride: usize,
    /// Bytes of the whole layout: what the launch must provide.
    pub total_bytes: usize,
}

/// Bytes of the tile table region.
pub const TILE_TABLE_BYTES: usize = align_up((MAX_GROUPS + 1) * 4, REGION_ALIGN);

impl SmemLayout {
    /// The layout of `tile` with `stages` pipeline stages.
    #[inline]
    pub const fn new(tile: TileShape, stages: usize) -> SmemLayout {
        let (bm, bn, bk) = (tile.bm(), tile.bn(), tile.bk());
        let reduce_bytes = match tile.family {
            Family::Mma | Family::Wgmma => 0,
            Family::SwapAb => align_up(tile.warps_k * bm * reduce_row_floats(bn) * 4, REGION_ALIGN),
        };
        let a_bytes = align_up(bm * bk * 2, REGION_ALIGN);
        let w_bytes = align_up(bn * bk / 2, REGION_ALIGN);
        let s_bytes = align_up(bk / FINEST_SCALE_BLOCK * scale_row_bytes(tile), REGION_ALIGN);
        let a = TILE_TABLE_BYTES + reduce_bytes;
        let (stage_stride, slack) = match tile.family {
            Family::Mma | Family::SwapAb => (a_bytes + w_bytes + s_bytes, 0),
            Family::Wgmma => (align_up(a_bytes + w_bytes + s_bytes, WGMMA_SWIZZLE_ATOM), WGMMA_ALIGN_SLACK),
        };
        SmemLayout {
            stages,
            tile_table: 0,
            reduce: TILE_TABLE_BYTES,
            a,
            w: a + a_bytes,
            s: a + a_bytes + w_bytes,
            stage_stride,
            total_bytes: a + slack + stages * stage_stride,
        }
    }

    /// The deepest pipeline of `tile` whose layout fits `limit_bytes` (0 when not even one stage fits).
    #[inline]
    pub const fn max_stages_within(tile: TileShape, limit_bytes: usize) -> usize {
        let one = SmemLayout::new(tile, 0);
        if limit_bytes < one.total_bytes {
            return 0;
        }
        (limit_bytes - one.total_bytes) / one.stage_stride
    }
}

/// Physical 16-byte chunk of logical chunk `chunk` in row `row` of an A tile.
///
/// `ldmatrix` reads the same chunk of 8 consecutive rows in one phase; rows are 128 or 256
/// bytes, so XOR-ing the chunk's low three bits with the row's place among 8 puts the 8 rows
/// in the 8 different 16-byte bank groups.
#[inline]
pub const fn a_chunk(row: usize, chunk: usize) -> usize {
    chunk ^ (row % 8)
}

/// Physical 16-byte chunk of logical chunk `chunk` in row `row` of a W tile with `bk` K-elements.
///
/// A warp reads one 16-byte chunk from each of 8 consecutive rows; rows are `bk/2` bytes, so
/// `8 / chunks_per_row` rows share a 128-byte bank line, and XOR-ing the chunk with the row's
/// line number spreads the 8 rows over all banks.
#[inline]
pub const fn w_chunk(bk: usize, row: usize, chunk: usize) -> usize {
    let chunks_per_row = bk / 2 / CHUNK_BYTES;
    let rows_per_line = 128 / (bk / 2);
    chunk ^ ((row / rows_per_line) % chunks_per_row)
}

/// The W tile row whose fragment elements lane `lane` of a warp loads, for fragment rows from
/// `row0`: the MMA fragment's lane map.
#[inline]
pub const fn fragment_row(row0: usize, lane: usize) -> usize {
    row0 + lane / 4
}

/// Byte offset, in a stage's A tile of `bk` K-elements, of the 16-byte row piece lane `lane`
/// points `ldmatrix.x4` at for MMA step `step` (0 or 1) of 32-element K-chunk `chunk`, in the
/// 16-row MMA tile whose first row is `row0` (a multiple of 8): row `row0 + lane % 16`,
/// K-elements `32·chunk + 16·step + 8·(lane / 16)..+8`. The four 8 × 8 matrices then come back
/// as the m16n8k16 A fragment's registers (rows 0-7 and 8-15 at K 0-7, then at K 8-15).
#[inline]
pub const fn a_ldmatrix_offset(bk: usize, row0: usize, lane: usize, chunk: usize, step: usize) -> usize {
    let row = row0 + lane % 16;
    row * bk * 2 + a_chunk(row, 4 * chunk + 2 * step + lane / 16) * CHUNK_BYTES
}

/// How [`a_ldmatrix_offset`] moves from chunk 0, step 0 to `(chunk, step)`: XOR the first
/// offset with `.0`, then add `.1`. Rows start on 128-byte boundaries, so the swizzle only
/// flips bits 4-6 of an offset; on a 128-byte aligned tile the same holds for addresses, which
/// lets a lane keep one base address and reach every step with an XOR and an immediate.
#[inline]
pub const fn a_ldmatrix_step(chunk: usize, step: usize) -> (usize, usize) {
    let first = 4 * chunk + 2 * step;
    ((first % 8) * CHUNK_BYTES, (first / 8) * 8 * CHUNK_BYTES)
}

/// Byte offset, in a stage's W tile of `bk` K-elements, of the 4 bytes (device word `lane % 4`,
/// 8 codes) lane `lane` loads from its fragment row `row` ([`fragment_row`]) in K-chunk
/// `chunk` (see `crate::packing` for the K-elements the word holds).
#[inline]
pub const fn w_fragment_offset(bk: usize, row: usize, lane: usize, chunk: usize) -> usize {
    row * (bk / 2) + w_chunk(bk, row, chunk) * CHUNK_BYTES + 4 * (lane % 4)
}

/// Bytes a [`Family::SwapAb`] scale row is padded by: the four K-blocks that the lanes of a
/// quad read then start in different banks.
pub const SCALE_ROW_PAD: usize = 16;

/// Bytes between consecutive K-block rows of a stage's scale tile.
#[inline]
pub const fn scale_row_bytes(tile: TileShape) -> usize {
    match tile.family {
        Family::Mma => tile.bn(),
        Family::SwapAb => tile.bn() + SCALE_ROW_PAD,
        Family::Wgmma => tile.bn(),
    }
}

/// Bytes after which a [`Family::Wgmma`] activation tile's 128-byte swizzle repeats (8 rows):
/// the alignment of its stages.
pub const WGMMA_SWIZZLE_ATOM: usize = 1024;

/// Bytes a [`Family::Wgmma`] layout reserves so that its ring can start on a
/// [`WGMMA_SWIZZLE_ATOM`] boundary wherever the [`REGION_ALIGN`]-aligned dynamic shared memory
/// lands.
pub const WGMMA_ALIGN_SLACK: usize = WGMMA_SWIZZLE_ATOM - REGION_ALIGN;

/// The shared-window address where a [`Family::Wgmma`] ring starts: `smem + layout.a` rounded
/// up to a [`WGMMA_SWIZZLE_ATOM`] boundary (stage `i`'s A tile is `stage_stride · i` further,
/// its W and S tiles `w - a` and `s - a` after that).
#[inline]
pub const fn wgmma_ring(smem: u32, layout: &SmemLayout) -> u32 {
    (smem + layout.a as u32).next_multiple_of(WGMMA_SWIZZLE_ATOM as u32)
}

/// Physical 16-byte chunk of logical chunk `chunk` (K-elements `8·chunk..+8`) in row `row` of
/// a [`Family::Wgmma`] activation tile: the tensor cores' 128-byte swizzle, which spreads the
/// 8 rows of a swizzle atom over all banks.
#[inline]
pub const fn wgmma_a_chunk(row: usize, chunk: usize) -> usize {
    chunk ^ (row % 8)
}

/// The `wgmma` shared-memory matrix descriptor of a K-major bf16 operand with 128-byte rows
/// swizzled as [`wgmma_a_chunk`], 8-row groups [`WGMMA_SWIZZLE_ATOM`] bytes apart, whose
/// K-elements start at shared address `addr` (a swizzle atom's start plus 32 bytes per 16
/// K-elements): start address, leading byte offset (unused by swizzled K-major operands, 1 by
/// convention), stride byte offset, each in 16-byte units, and the 128-byte swizzle mode.
#[inline]
pub const fn wgmma_descriptor(addr: u32) -> u64 {
    let start = ((addr as u64) >> 4) & 0x3FFF;
    let leading = 1u64 << 16;
    let stride = ((WGMMA_SWIZZLE_ATOM as u64) >> 4) << 32;
    let swizzle_128b = 1u64 << 62;
    start | leading | stride | swizzle_128b
}

/// f32 values a row of the reduction buffer R is padded by: the four token pairs of a quad
/// then write to different banks.
pub const REDUCE_PAD: usize = 4;

/// f32 values in one row (one activation row, `bn` columns) of the reduction buffer R.
#[inline]
pub const fn reduce_row_floats(bn: usize) -> usize {
    bn + REDUCE_PAD
}

/// Byte offset in the reduction buffer R of warp-along-K `wk`'s partial sum of row `row`,
/// column `col` of a [`Family::SwapAb`] tile with `bm` rows and `bn` columns.
#[inline]
pub const fn reduce_offset(bm: usize, bn: usize, wk: usize, row: usize, col: usize) -> usize {
    ((wk * bm + row) * reduce_row_floats(bn) + col) * 4
}

/// Byte offset, in a stage's A or W tile of a [`Family::SwapAb`] kernel with `warps_k` warps
/// along K, of the 16-byte chunk that lane `lane` of warp-along-K `wk` reads for `slot`.
///
/// Every operand is kept in the order its fragments are read: 512-byte blocks, one per
/// (slot, wk), each holding one 16-byte chunk per lane, so that a warp's 16-byte loads cover
/// 512 contiguous bytes (no bank conflicts). For W, `slot` is the 8-row half of the weight
/// rows (`row / 8`) and lane `4g + t` holds row `8·slot + g`, K-elements `32t..32t + 32` of the
/// warp's 128; for A, `slot` is `4·(row / 8) + q` and lane `4g + t` holds activation row
/// `8·(row / 8) + g`, K-elements `32t + 8q..+8`. A thread copying chunks `tid + j·threads`
/// (`threads = 32·warps_n·warps_k`) thus copies slots `tid / (32·warps_k) + j·warps_n`.
#[inline]
pub const fn swap_ab_chunk_offset(warps_k: usize, slot: usize, wk: usize, lane: usize) -> usize {
    ((slot * warps_k + wk) * 32 + lane) * CHUNK_BYTES
}
