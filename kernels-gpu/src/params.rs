//! The kernel parameter block, passed by value to every grouped-GEMM kernel.

/// Arguments of one grouped GEMM launch: `C_g = A_g · dequant(W_g)ᵀ` for every group `g`.
///
/// Pointers are device addresses (`CUdeviceptr`). Layouts:
/// - `a`: bf16 `[offsets[groups], k]`, row-major; group `g` owns rows `offsets[g]..offsets[g+1]`;
/// - `w`: u8 `[groups, n, k/2]`, e2m1 codes in 16-byte chunks (32 K-elements of a row) made
///   lane-ready by [`crate::packing::pack_chunk`] (unpacked, byte `j` of a word holds
///   K-elements `2j` in its low nibble and `2j + 1`), each group's chunks in the strip order of
///   [`crate::packing::code_chunk_offset`];
/// - `w_scales`: u8 `[groups, k/block, n]` (block 16 e4m3 for NVFP4, 32 e8m0 for MXFP4):
///   scale-row major, so that one K-block's scales for consecutive `n` are contiguous;
/// - `expert_scales`: f32 `[groups]` (NVFP4; ignored for MXFP4);
/// - `offsets`: u32 `[groups + 1]`, non-decreasing, `offsets[0] == 0`, `offsets[groups] == rows`
///   (other values cannot take the kernel outside `a` and `c`: see `device::scheduler::group_rows`);
/// - `c`: bf16 `[offsets[groups], n]`, row-major; with [`epilogue::GATED`], `[offsets[groups],
///   n / 2]`: column pair `(2j, 2j + 1)` is (gate `j`, up `j`) and `c` gets
///   `activation(gate + bias[g][2j], up + bias[g][2j + 1])` at column `j`, each of gate and up
///   rounded to bf16 first (exactly what storing them and running the separate activation
///   kernel gives);
/// - `bias`: f32 `[groups, n]` (only with [`epilogue::GATED`]).
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq)]
#[cfg_attr(not(target_arch = "nvptx64"), derive(Debug))]
pub struct GroupedGemmParams {
    /// Activations, bf16 `[rows, k]`.
    pub a: u64,
    /// Packed e2m1 weights, u8 `[groups, n, k/2]`.
    pub w: u64,
    /// Block scales, u8 `[groups, k/block, n]`.
    pub w_scales: u64,
    /// Per-expert f32 scales (NVFP4 only).
    pub expert_scales: u64,
    /// Group row offsets, u32 `[groups + 1]`.
    pub offsets: u64,
    /// Output, bf16 `[rows, n]` (`[rows, n / 2]` with [`epilogue::GATED`]).
    pub c: u64,
    /// f32 `[groups, n]` bias of the gated epilogue.
    pub bias: u64,
    /// Output columns (weight rows) per group.
    pub n: u32,
    /// Reduction length.
    pub k: u32,
    /// Number of groups (experts).
    pub groups: u32,
    /// Rows of `a` and `c`: every group is clamped to them, whatever `offsets` holds.
    pub rows: u32,
    /// One of [`epilogue`].
    pub epilogue: u32,
    /// One of [`activation`] (with [`epilogue::GATED`]).
    pub activation: u32,
    /// gpt-oss clamp limit (with [`activation::GPT_OSS`]).
    pub limit: f32,
    /// gpt-oss sigmoid slope (with [`activation::GPT_OSS`]).
    pub alpha: f32,
    /// 1: the kernel launched just before this one on the stream writes none of `w`,
    /// `w_scales`, `expert_scales` and `offsets`, so that under programmatic dependent launch
    /// the grid may read them before `griddepcontrol.wait` (everything launched before that
    /// kernel has finished by then: every stagefit kernel waits before it lets the next one
    /// launch). The swap-AB and Mma families then build their tile table and copy their first
    /// tile's first weight K-tiles while the kernel before it finishes; the Wgmma family (for
    /// prefill, never launched programmatically) ignores it. 0: nothing is read before the
    /// wait.
    pub weights_before_wait: u32,
}

/// What a grouped GEMM does with its f32 results.
pub mod epilogue {
    /// Scale, round to bf16 and store `[rows, n]`.
    pub const STORE: u32 = 0;
    /// The gated activation of interleaved (gate, up) column pairs, with a bias, into
    /// `[rows, n / 2]` (see [`super::GroupedGemmParams`]).
    pub const GATED: u32 = 1;
}

/// How the gate/up projection's output rows are arranged.
pub mod gate_up {
    /// Gate rows are `0..I`, up rows `I..2I` (Mixtral, Qwen).
    pub const CONCATENATED: u32 = 0;
    /// Gate and up alternate: row `2j` is gate `j`, row `2j+1` is up `j` (gpt-oss).
    pub const INTERLEAVED: u32 = 1;
}

/// The activation between the two projections.
pub mod activation {
    /// `silu(gate) · up`.
    pub const SWIGLU: u32 = 0;
    /// gpt-oss: `gate = min(gate, limit)`, `up = clamp(up, ±limit)`,
    /// `(up + 1) · gate · sigmoid(alpha · gate)`.
    pub const GPT_OSS: u32 = 1;
}

/// Arguments shared by the MoE-layer kernels (routing, permutation, activation, combine).
/// Each kernel reads the fields it needs; pointers are device addresses.
///
/// Shapes: `tokens` T, `experts` E, `top_k` k, `hidden` H, `inter` I; an *assignment* is
/// `a = t·k + r` (token t's r-th expert); *permuted rows* are assignments sorted by expert,
/// stable in `a`.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq)]
#[cfg_attr(not(target_arch = "nvptx64"), derive(Debug))]
pub struct MoeParams {
    /// bf16 `[T, H]` input.
    pub x: u64,
    /// bf16 `[E, H]` router weights.
    pub router_w: u64,
    /// f32 `[E]` router bias.
    pub router_b: u64,
    /// f32 `[T, E]` router logits (workspace).
    pub logits: u64,
    /// u32 `[T, k]` chosen experts, best first.
    pub topk_ids: u64,
    /// f32 `[T, k]` their combine weights.
    pub topk_w: u64,
    /// u32 `[E]` assignments per expert.
    pub counts: u64,
    /// u32 `[E + 1]` first permuted row of each expert (the grouped GEMMs' offsets).
    pub offsets: u64,
    /// u32 `[T·k]` assignment of each permuted row.
    pub perm_src: u64,
    /// u32 `[T·k]` permuted row of each assignment.
    pub perm_dst: u64,
    /// bf16 `[T·k, H]` input rows in permuted order.
    pub a_perm: u64,
    /// bf16 `[T·k, 2I]` gate/up projection output.
    pub h1: u64,
    /// f32 `[E, 2I]` gate/up bias.
    pub gate_up_bias: u64,
    /// bf16 `[T·k, I]` activation output.
    pub a2: u64,
    /// bf16 `[T·k, H]` down projection output.
    pub h2: u64,
    /// f32 `[E, H]` down bias.
    pub down_bias: u64,
    /// bf16 `[T, H]` output.
    pub out: u64,
    /// u32 block counter of the small-batch routing kernel (workspace; 0 between launches).
    pub counter: u64,
    /// T.
    pub tokens: u32,
    /// E.
    pub experts: u32,
    /// k.
    pub top_k: u32,
    /// H.
    pub hidden: u32,
    /// I.
    pub inter: u32,
    /// 1: combine weights are the softmax of the k chosen logits; 0: of all E logits.
    pub renormalize: u32,
    /// One of [`gate_up`].
    pub gate_up_layout: u32,
    /// One of [`activation`].
    pub activation: u32,
    /// gpt-oss clamp limit.
    pub limit: f32,
    /// gpt-oss sigmoid slope.
    pub alpha: f32,
}

/// Most experts one token may be routed to.
pub const MAX_TOP_K: usize = 8;
/// Most experts the router's top-k kernel handles (8 logits per lane of a warp).
pub const MAX_EXPERTS: usize = 256;
/// Threads per block of every MoE-layer kernel.
pub const MOE_BLOCK: usize = 256;
/// Most assignments (tokens · top_k) routed by the one-launch small-batch kernel. Its last block
/// does every token's top-k and the gather alone, which beats the five separate kernels only for
/// the fewest rows: on the H100 (gpt-oss, decode in a graph) it is 3-6 % faster at 4 and 8
/// assignments, even at 12, and slower from 16 (`docs/perf-notes.md` v8); with v17's shorter
/// last block still 7-8 % slower at 16 and 32.
pub const SMALL_ROUTE_ROWS: usize = 8;
const _: () = assert!(SMALL_ROUTE_ROWS <= MOE_BLOCK);
/// Dynamic shared memory of the small-batch routing kernel: the last-block flag, then the ids,
/// each expert's count and first row, and each assignment's row.
pub const ROUTE_SCRATCH_BYTES: usize = 4 * (1 + 2 * SMALL_ROUTE_ROWS + 2 * MAX_EXPERTS);

/// Consecutive elements one thread of the `activate` and `combine` kernels computes (one
/// 16-byte load of bf16s).
pub const MOE_VECTOR: usize = 8;

/// Blocks the `activate` and `combine` kernels give one row of `width` outputs, each thread
/// computing [`MOE_VECTOR`] consecutive ones: a row is spread over the GPU instead of being
/// one block's serial loop, which at decode sizes is a few rows in all.
pub const fn row_blocks(width: usize) -> usize {
    let per_block = MOE_VECTOR * MOE_BLOCK;
    let blocks = width.div_ceil(per_block);
    if blocks == 0 {
        1
    } else {
        blocks
    }
}

/// Dynamic shared memory of the `count` and `scatter` kernels: a u32 per warp and one more.
pub const MOE_SCRATCH_BYTES: usize = (MOE_BLOCK / 32 + 1) * 4;

/// Arguments of the fill kernel: `len` bytes at `ptr` get `lo + hash(seed, i) % span`.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "nvptx64"), derive(Debug))]
pub struct FillParams {
    /// Device address of the bytes.
    pub ptr: u64,
    /// Bytes to write.
    pub len: u64,
    /// Seed of the hash.
    pub seed: u64,
    /// Smallest byte value.
    pub lo: u32,
    /// Number of distinct values (1..=256).
    pub span: u32,
}

/// Threads per block of the weight-packing kernel.
pub const PACK_BLOCK: usize = 256;

/// Arguments of the weight-packing kernel: the natural codes at `src` (u8 `[groups, n, k/2]`,
/// row-major, as host buffers and checkpoints hold them) written to `dst` in the kernels'
/// layout (each 16-byte chunk packed by [`crate::packing::pack_chunk`], each group's chunks at
/// [`crate::packing::code_chunk_offset`]). `n` is a multiple of
/// [`crate::packing::STRIP_ROWS`], `k` of 32; `src` and `dst` do not overlap.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "nvptx64"), derive(Debug))]
pub struct PackParams {
    /// Natural codes, u8 `[groups, n, k/2]`.
    pub src: u64,
    /// Packed codes, u8 `[groups, n, k/2]`, written.
    pub dst: u64,
    /// Groups (experts).
    pub groups: u32,
    /// Rows per group.
    pub n: u32,
    /// K-elements per row.
    pub k: u32,
}
