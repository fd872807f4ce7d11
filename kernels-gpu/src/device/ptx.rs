//! Thin wrappers around the PTX instructions the kernels use, one function per instruction.
//!
//! Shared-memory addresses are 32-bit offsets in the shared window (what `cvta.to.shared`
//! gives); global addresses are 64-bit generic pointers to global memory.

use core::arch::asm;

/// Shared-window address of the launch-sized dynamic shared memory, declared with `Aligned`'s
/// alignment (every kernel of a module must name the same type: the declaration is one
/// symbol).
#[inline(always)]
pub fn dynamic_smem_base<Aligned>() -> u32 {
    let generic = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<Aligned>();
    let shared: u64;
    // SAFETY: `cvta.to.shared` only converts an address; it reads and writes nothing.
    unsafe {
        asm!("cvta.to.shared.u64 {0}, {1};", out(reg64) shared, in(reg64) generic as u64);
    }
    shared as u32
}

/// This thread's index in its block (`%tid.x`).
#[inline(always)]
pub fn thread_idx() -> u32 {
    // SAFETY: reads a special register.
    unsafe { core::arch::nvptx::_thread_idx_x() as u32 }
}

/// This block's index in the grid (`%ctaid.x`).
#[inline(always)]
pub fn block_idx() -> u32 {
    // SAFETY: reads a special register.
    unsafe { core::arch::nvptx::_block_idx_x() as u32 }
}

/// Blocks in the grid (`%nctaid.x`).
#[inline(always)]
pub fn grid_dim() -> u32 {
    // SAFETY: reads a special register.
    unsafe { core::arch::nvptx::_grid_dim_x() as u32 }
}

/// `trap`: ends the kernel with an error the host sees at its next synchronization.
#[inline(always)]
pub fn trap() -> ! {
    // SAFETY: `trap` stops the thread; nothing runs after it.
    unsafe { core::arch::nvptx::trap() }
}

/// Bytes of dynamic shared memory this launch was given (`%dynamic_smem_size`).
#[inline(always)]
pub fn dynamic_smem_size() -> u32 {
    let bytes: u32;
    // SAFETY: reads a special register.
    unsafe { asm!("mov.u32 {0}, %dynamic_smem_size;", out(reg32) bytes) };
    bytes
}

/// `cp.async.cg.shared.global` of one 16-byte chunk; copies `src_bytes` (0 or 16) bytes and
/// zero-fills the rest.
///
/// # Safety
/// `dst` must be a 16-byte aligned shared address inside the block's allocation; when
/// `src_bytes` is 16, `src` must be a 16-byte aligned readable global address.
#[inline(always)]
pub unsafe fn cp_async_16(dst: u32, src: u64, src_bytes: u32) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        asm!(
            "cp.async.cg.shared.global [{0}], [{1}], 16, {2};",
            in(reg32) dst, in(reg64) src, in(reg32) src_bytes
        );
    }
}

/// `x`, through a `mov` the compiler cannot see through: a value computed once per loop
/// iteration from it is then not hoisted out of the loop and kept in registers for every
/// iteration (as 32 addresses of the same copy would be).
#[cfg(stagefit_wgmma)]
#[inline(always)]
pub fn opaque_u64(x: u64) -> u64 {
    let y: u64;
    // SAFETY: a register move.
    unsafe { asm!("mov.b64 {0}, {1};", out(reg64) y, in(reg64) x) };
    y
}

/// `cp.async.commit_group`: closes the group of copies issued since the last commit.
#[inline(always)]
pub fn cp_async_commit() {
    // SAFETY: only groups already-issued copies.
    unsafe { asm!("cp.async.commit_group;") };
}

/// `cp.async.wait_group N`: waits until at most `pending` committed groups are unfinished.
/// `pending` should be a compile-time constant (the `match` folds away); above 6 (more than
/// the deepest ring, STAGES 8, ever leaves pending) it waits as for 6, which is stricter.
#[inline(always)]
pub fn cp_async_wait(pending: usize) {
    // SAFETY: waiting has no memory effect beyond completing this thread's copies.
    unsafe {
        match pending {
            0 => asm!("cp.async.wait_group 0;"),
            1 => asm!("cp.async.wait_group 1;"),
            2 => asm!("cp.async.wait_group 2;"),
            3 => asm!("cp.async.wait_group 3;"),
            4 => asm!("cp.async.wait_group 4;"),
            5 => asm!("cp.async.wait_group 5;"),
            _ => asm!("cp.async.wait_group 6;"),
        }
    }
}

/// `bar.sync 0` for the whole block.
#[inline(always)]
pub fn sync_threads() {
    // SAFETY: every thread of the block reaches each call site the same number of times.
    unsafe { core::arch::nvptx::_syncthreads() };
}

/// `ld.shared.v4.u32`.
///
/// # Safety
/// `addr` must be a 16-byte aligned shared address inside the block's allocation.
#[inline(always)]
pub unsafe fn ld_shared_v4(addr: u32) -> [u32; 4] {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let (x, y, z, w): (u32, u32, u32, u32);
        asm!(
            "ld.shared.v4.u32 {{{0}, {1}, {2}, {3}}}, [{4}];",
            out(reg32) x, out(reg32) y, out(reg32) z, out(reg32) w, in(reg32) addr
        );
        [x, y, z, w]
    }
}

/// `ldmatrix.sync.aligned.m8n8.x4.shared.b16`: lanes `8i..8i + 8` give the 16-byte rows of
/// matrix `i`, and register `i` of lane `4r + c` comes back holding row `r`, elements `2c`,
/// `2c + 1` of matrix `i`.
///
/// # Safety
/// `addr` must be a 16-byte aligned shared address inside the block's allocation, and every
/// lane of the warp must execute the call.
#[inline(always)]
pub unsafe fn ldmatrix_x4(addr: u32) -> [u32; 4] {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let (x, y, z, w): (u32, u32, u32, u32);
        asm!(
            "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{0}, {1}, {2}, {3}}}, [{4}];",
            out(reg32) x, out(reg32) y, out(reg32) z, out(reg32) w, in(reg32) addr
        );
        [x, y, z, w]
    }
}

/// `ld.shared.v2.u32`.
///
/// # Safety
/// `addr` must be an 8-byte aligned shared address inside the block's allocation.
#[inline(always)]
pub unsafe fn ld_shared_v2(addr: u32) -> [u32; 2] {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let (x, y): (u32, u32);
        asm!("ld.shared.v2.u32 {{{0}, {1}}}, [{2}];", out(reg32) x, out(reg32) y, in(reg32) addr);
        [x, y]
    }
}

/// `ld.shared.u32`.
///
/// # Safety
/// `addr` must be a 4-byte aligned shared address inside the block's allocation.
#[inline(always)]
pub unsafe fn ld_shared_u32(addr: u32) -> u32 {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let v: u32;
        asm!("ld.shared.u32 {0}, [{1}];", out(reg32) v, in(reg32) addr);
        v
    }
}

/// `ld.shared.u8`, zero-extended.
///
/// # Safety
/// `addr` must be a shared address inside the block's allocation.
#[inline(always)]
pub unsafe fn ld_shared_u8(addr: u32) -> u32 {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let v: u32;
        asm!("ld.shared.u8 {0}, [{1}];", out(reg32) v, in(reg32) addr);
        v
    }
}

/// `st.shared.u32`.
///
/// # Safety
/// `addr` must be a 4-byte aligned shared address inside the block's allocation.
#[inline(always)]
pub unsafe fn st_shared_u32(addr: u32, v: u32) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        asm!("st.shared.u32 [{0}], {1};", in(reg32) addr, in(reg32) v);
    }
}

/// `ld.global.nc.u32`: a read-only global load.
///
/// # Safety
/// `addr` must be a 4-byte aligned global address that no thread writes during the kernel.
#[inline(always)]
pub unsafe fn ld_global_nc_u32(addr: u64) -> u32 {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let v: u32;
        asm!("ld.global.nc.u32 {0}, [{1}];", out(reg32) v, in(reg64) addr);
        v
    }
}

/// `ld.global.cg.u32`: a global load from L2, past the SM's L1, so that it sees what other
/// blocks of the same kernel wrote before a fence that this thread's loads are ordered after.
///
/// # Safety
/// `addr` must be a 4-byte aligned global address.
#[inline(always)]
pub unsafe fn ld_global_cg_u32(addr: u64) -> u32 {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let v: u32;
        asm!("ld.global.cg.u32 {0}, [{1}];", out(reg32) v, in(reg64) addr);
        v
    }
}

/// `atom.global.add.u32`: adds `v` to the u32 at `addr`, returning the value before.
///
/// # Safety
/// `addr` must be a 4-byte aligned writable global address.
#[inline(always)]
pub unsafe fn atom_add_global_u32(addr: u64, v: u32) -> u32 {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let old: u32;
        asm!("atom.global.add.u32 {0}, [{1}], {2};", out(reg32) old, in(reg64) addr, in(reg32) v);
        old
    }
}

/// Programmatic dependent launch, the first thing every stagefit kernel does:
/// `griddepcontrol.wait` (until the kernels this grid depends on have finished and their writes
/// are visible: a no-op when it was launched without the programmatic-serialization attribute),
/// then `griddepcontrol.launch_dependents` (the next kernel on the stream may start its blocks,
/// which wait the same way). PTX has these from sm_90 on: the host's build sets
/// `--cfg stagefit_griddepcontrol` for exactly the targets whose `Arch::programmatic_launch`
/// is true; on the others this is empty and the host never asks for programmatic launch.
#[inline(always)]
pub fn wait_for_previous_grid() {
    #[cfg(stagefit_griddepcontrol)]
    // SAFETY: both instructions only order this grid against its neighbours on the stream; the
    // asm! block is not `nomem`, so no memory access moves across it.
    unsafe {
        asm!("griddepcontrol.wait;", "griddepcontrol.launch_dependents;")
    };
}

/// `prefetch.global.L2`: asks L2 for the line holding `addr` (a hint: the thread does not
/// wait, and nothing it computes depends on it).
///
/// # Safety
/// `addr` must be a global address inside an allocation.
#[inline(always)]
pub unsafe fn prefetch_l2(addr: u64) {
    // SAFETY: the caller upholds this function's `# Safety` contract; a prefetch writes nothing.
    unsafe { asm!("prefetch.global.L2 [{0}];", in(reg64) addr) };
}

/// `fence.acq_rel.gpu`: this thread's memory accesses before it are ordered, for every thread of
/// the GPU, before those after it.
#[inline(always)]
pub fn fence_gpu() {
    // SAFETY: a fence touches no memory.
    unsafe { asm!("fence.acq_rel.gpu;") };
}

/// `st.global.u32`.
///
/// # Safety
/// `addr` must be a 4-byte aligned writable global address.
#[inline(always)]
pub unsafe fn st_global_u32(addr: u64, v: u32) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        asm!("st.global.u32 [{0}], {1};", in(reg64) addr, in(reg32) v);
    }
}

/// `st.global.u16` of the low 16 bits of `v`.
///
/// # Safety
/// `addr` must be a 2-byte aligned writable global address.
#[inline(always)]
pub unsafe fn st_global_u16(addr: u64, v: u32) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        asm!("{{ .reg .b16 h; cvt.u16.u32 h, {1}; st.global.u16 [{0}], h; }}", in(reg64) addr, in(reg32) v);
    }
}

/// `ld.global.nc.v2.u32`.
///
/// # Safety
/// `addr` must be an 8-byte aligned global address that no thread writes during the kernel.
#[inline(always)]
pub unsafe fn ld_global_nc_v2(addr: u64) -> [u32; 2] {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let (x, y): (u32, u32);
        asm!("ld.global.nc.v2.u32 {{{0}, {1}}}, [{2}];", out(reg32) x, out(reg32) y, in(reg64) addr);
        [x, y]
    }
}

/// `shfl.sync.up.b32` over the full warp: the value of lane `lane - delta` (own value below it).
#[inline(always)]
pub fn shfl_up(v: u32, delta: u32) -> u32 {
    let r: u32;
    // SAFETY: called by all 32 lanes of a converged warp (mask = all lanes).
    unsafe { asm!("shfl.sync.up.b32 {0}, {1}, {2}, 0, -1;", out(reg32) r, in(reg32) v, in(reg32) delta) };
    r
}

/// `fma.rn.bf16x2`: `a·b + c` on two bf16 lanes (sm_80+).
#[inline(always)]
pub fn fma_bf16x2(a: u32, b: u32, c: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic.
    unsafe { asm!("fma.rn.bf16x2 {0}, {1}, {2}, {3};", out(reg32) r, in(reg32) a, in(reg32) b, in(reg32) c) };
    r
}

/// `cvt.rn.bf16x2.f32`: packs `lo` into bits 0..16 and `hi` into bits 16..32, rounding to nearest even.
#[inline(always)]
pub fn pack_bf16x2(lo: f32, hi: f32) -> u32 {
    let r: u32;
    // SAFETY: register-only arithmetic.
    unsafe { asm!("cvt.rn.bf16x2.f32 {0}, {1}, {2};", out(reg32) r, in(reg32) hi, in(reg32) lo) };
    r
}

/// `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32`: `d = a·b + c` for one warp
/// (sm_80+). Fragments follow the PTX ISA's m16n8k16 layouts.
#[inline(always)]
pub fn mma_bf16_m16n8k16(c: [f32; 4], a: [u32; 4], b: [u32; 2]) -> [f32; 4] {
    let [mut d0, mut d1, mut d2, mut d3] = c;
    // SAFETY: register-only; called by all 32 lanes of a converged warp.
    unsafe {
        asm!(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {{{0}, {1}, {2}, {3}}}, {{{4}, {5}, {6}, {7}}}, {{{8}, {9}}}, {{{0}, {1}, {2}, {3}}};",
            inout(reg32) d0, inout(reg32) d1, inout(reg32) d2, inout(reg32) d3,
            in(reg32) a[0], in(reg32) a[1], in(reg32) a[2], in(reg32) a[3],
            in(reg32) b[0], in(reg32) b[1],
        );
    }
    [d0, d1, d2, d3]
}

/// `shfl.sync.bfly.b32` over the full warp: the value of lane `lane ^ mask`.
#[inline(always)]
pub fn shfl_xor(v: u32, mask: u32) -> u32 {
    let r: u32;
    // SAFETY: called by all 32 lanes of a converged warp (mask = all lanes).
    unsafe { asm!("shfl.sync.bfly.b32 {0}, {1}, {2}, 31, -1;", out(reg32) r, in(reg32) v, in(reg32) mask) };
    r
}

/// `vote.sync.ballot.b32` over the full warp: bit i set when lane i's `pred` holds.
#[inline(always)]
pub fn ballot(pred: bool) -> u32 {
    let r: u32;
    // SAFETY: called by all 32 lanes of a converged warp.
    unsafe {
        asm!(
            "{{ .reg .pred p; setp.ne.u32 p, {1}, 0; vote.sync.ballot.b32 {0}, p, -1; }}",
            out(reg32) r, in(reg32) pred as u32
        )
    };
    r
}

/// `%lanemask_lt`: bits of the lanes below this one.
#[inline(always)]
pub fn lanemask_lt() -> u32 {
    let r: u32;
    // SAFETY: reads a special register.
    unsafe { asm!("mov.u32 {0}, %lanemask_lt;", out(reg32) r) };
    r
}

/// `ex2.approx.ftz.f32`: 2^x (relative error about 2^-22).
#[inline(always)]
pub fn exp2_approx(x: f32) -> f32 {
    let r: f32;
    // SAFETY: register-only arithmetic.
    unsafe { asm!("ex2.approx.ftz.f32 {0}, {1};", out(reg32) r, in(reg32) x) };
    r
}

/// e^x through [`exp2_approx`].
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    exp2_approx(x * core::f32::consts::LOG2_E)
}

/// `ld.global.nc.v4.u32`.
///
/// # Safety
/// `addr` must be a 16-byte aligned global address that no thread writes during the kernel.
#[inline(always)]
pub unsafe fn ld_global_nc_v4(addr: u64) -> [u32; 4] {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        let (x, y, z, w): (u32, u32, u32, u32);
        asm!(
            "ld.global.nc.v4.u32 {{{0}, {1}, {2}, {3}}}, [{4}];",
            out(reg32) x, out(reg32) y, out(reg32) z, out(reg32) w, in(reg64) addr
        );
        [x, y, z, w]
    }
}

/// `st.global.v4.u32`.
///
/// # Safety
/// `addr` must be a 16-byte aligned writable global address.
#[inline(always)]
pub unsafe fn st_global_v4(addr: u64, v: [u32; 4]) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        asm!(
            "st.global.v4.u32 [{0}], {{{1}, {2}, {3}, {4}}};",
            in(reg64) addr, in(reg32) v[0], in(reg32) v[1], in(reg32) v[2], in(reg32) v[3]
        );
    }
}

/// `st.global.u8` of the low byte of `v`.
///
/// # Safety
/// `addr` must be a writable global address.
#[inline(always)]
pub unsafe fn st_global_u8(addr: u64, v: u32) {
    // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
    unsafe {
        asm!("{{ .reg .b16 h; cvt.u16.u32 h, {1}; st.global.u8 [{0}], h; }}", in(reg64) addr, in(reg32) v);
    }
}

/// bf16 bits to f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(bits: u32) -> f32 {
    f32::from_bits(bits << 16)
}

/// f32 to bf16 bits, rounding to nearest even (`cvt.rn.bf16x2.f32` with a zero high half).
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u32 {
    pack_bf16x2(x, 0.0) & 0xFFFF
}

/// `fence.proxy.async.shared::cta`: orders this thread's earlier shared-memory writes (such as
/// completed `cp.async` copies) before later reads of the async proxy (`wgmma` operands).
#[cfg(stagefit_wgmma)]
#[inline(always)]
pub fn fence_proxy_async_shared() {
    // SAFETY: a fence; it reads and writes nothing.
    unsafe { asm!("fence.proxy.async.shared::cta;") };
}

/// `wgmma.fence.sync.aligned` (sm_90a): orders this warpgroup's earlier register writes (the
/// A fragments and accumulators) before the `wgmma.mma_async` instructions that follow.
/// Called by all threads of a converged warpgroup.
#[cfg(stagefit_wgmma)]
#[inline(always)]
pub fn wgmma_fence() {
    // SAFETY: a fence; it reads and writes nothing.
    unsafe { asm!("wgmma.fence.sync.aligned;") };
}

/// `wgmma.commit_group.sync.aligned` (sm_90a): closes a group of the warpgroup's
/// `wgmma.mma_async` instructions, for [`wgmma_wait_group`].
#[cfg(stagefit_wgmma)]
#[inline(always)]
pub fn wgmma_commit_group() {
    // SAFETY: only groups the warpgroup's issued wgmma instructions.
    unsafe { asm!("wgmma.commit_group.sync.aligned;") };
}

/// `wgmma.wait_group.sync.aligned pending` (sm_90a): waits until at most `pending` (0 or 1)
/// committed groups are still running; their accumulators and A registers are then the
/// program's again.
#[cfg(stagefit_wgmma)]
#[inline(always)]
pub fn wgmma_wait_group(pending: usize) {
    // SAFETY: only waits; `asm!` without `nomem` keeps memory accesses from moving across it.
    unsafe {
        match pending {
            0 => asm!("wgmma.wait_group.sync.aligned 0;"),
            _ => asm!("wgmma.wait_group.sync.aligned 1;"),
        }
    }
}

/// One `wgmma.mma_async` per function below (sm_90a): `D += A · B` for a 64 × N × 16 step,
/// bf16 operands and f32 accumulators, A from registers (the m16n8k16 A layout, one 16-row
/// slice per warp of the warpgroup) and B from shared memory through the matrix descriptor
/// `b_desc` (K-major, see `crate::layout::wgmma_descriptor`). `acc[j]` holds the thread's
/// accumulators of columns `8j..8j + 8`, in the instruction's register order.
///
/// The instruction runs asynchronously: `acc` and `a` belong to it until a
/// [`wgmma_wait_group`] covering its group; the shared memory `b_desc` names must not be
/// written until then either.
macro_rules! wgmma_m64k16_bf16_rs {
    ($name:ident, $shape:literal, $blocks:literal, $first:literal $($rest:literal)*) => {
        #[doc = concat!("`wgmma.mma_async.sync.aligned.", $shape, ".f32.bf16.bf16` with A in registers.")]
        ///
        /// # Safety
        /// Called by all threads of a converged warpgroup after [`wgmma_fence`]; `b_desc` must
        /// describe a B tile inside the block's shared memory.
        #[cfg(stagefit_wgmma)]
        #[inline(always)]
        pub unsafe fn $name(acc: &mut [[f32; 4]; $blocks], a: [u32; 4], b_desc: u64) {
            // SAFETY: the caller upholds this function's `# Safety` contract, which is the instruction's.
            unsafe {
                asm!(
                    "{{ .reg .pred accumulate;",
                    "setp.ne.b32 accumulate, 1, 0;",
                    concat!("wgmma.mma_async.sync.aligned.", $shape, ".f32.bf16.bf16"),
                    "{{{}, {}, {}, {}",
                    $(concat!(", {}, {}, {}, {} // ", stringify!($rest)),)*
                    "}}, {{{}, {}, {}, {}}}, {}, accumulate, 1, 1, 0; }}",
                    inout(reg32) acc[$first][0], inout(reg32) acc[$first][1],
                    inout(reg32) acc[$first][2], inout(reg32) acc[$first][3],
                    $(
                        inout(reg32) acc[$rest][0], inout(reg32) acc[$rest][1],
                        inout(reg32) acc[$rest][2], inout(reg32) acc[$rest][3],
                    )*
                    in(reg32) a[0], in(reg32) a[1], in(reg32) a[2], in(reg32) a[3],
                    in(reg64) b_desc,
                );
            }
        }
    };
}

wgmma_m64k16_bf16_rs!(wgmma_m64n64k16_bf16_rs, "m64n64k16", 8, 0 1 2 3 4 5 6 7);
wgmma_m64k16_bf16_rs!(wgmma_m64n128k16_bf16_rs, "m64n128k16", 16, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
wgmma_m64k16_bf16_rs!(wgmma_m64n256k16_bf16_rs, "m64n256k16", 32, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
