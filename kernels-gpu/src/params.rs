//! The kernel parameter block, passed by value to every grouped-GEMM kernel.

/// Arguments of one grouped GEMM launch: `C_g = A_g · dequant(W_g)ᵀ` for every group `g`.
///
/// Pointers are device addresses (`CUdeviceptr`). Layouts:
/// - `a`: bf16 `[offsets[groups], k]`, row-major; group `g` owns rows `offsets[g]..offsets[g+1]`;
/// - `w`: u8 `[groups, n, k/2]`, two e2m1 codes per byte, low nibble = even K index;
/// - `w_scales`: u8 `[groups, k/block, n]` (block 16 e4m3 for NVFP4, 32 e8m0 for MXFP4):
///   scale-row major, so that one K-block's scales for consecutive `n` are contiguous;
/// - `expert_scales`: f32 `[groups]` (NVFP4; ignored for MXFP4);
/// - `offsets`: u32 `[groups + 1]`, non-decreasing, `offsets[0] == 0`;
/// - `c`: bf16 `[offsets[groups], n]`, row-major.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// Output, bf16 `[rows, n]`.
    pub c: u64,
    /// Output columns (weight rows) per group.
    pub n: u32,
    /// Reduction length.
    pub k: u32,
    /// Number of groups (experts).
    pub groups: u32,
    /// Rows of `a` and `c`: the kernel traps if `offsets[groups]` exceeds it.
    pub rows: u32,
}
