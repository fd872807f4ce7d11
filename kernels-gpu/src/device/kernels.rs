//! Kernel entry points: one per (format, tactic, STAGES), generated from the tile table.
//!
//! Each entry runs its tactic's family: [`Family::Mma`](crate::tactics::Family::Mma) through
//! [`grouped_gemm`], [`Family::SwapAb`](crate::tactics::Family::SwapAb) through
//! [`swap_ab_gemm`], [`Family::Wgmma`](crate::tactics::Family::Wgmma) through `wgmma_gemm`
//! (only on targets with `wgmma`: elsewhere its entries are not compiled). Names are `stagefit_gemm_{format}_{tactic}_s{stages}`, e.g.
//! `stagefit_gemm_nvfp4_m128n256k64w2x4_s3`; the host builds the same names from the same
//! table.
//!
//! Every entry waits for the grid before it ([`wait_for_previous_grid`]) before it touches memory
//! the kernel before it may write, so the host may launch any of them with programmatic
//! dependent launch on sm_90 and later: all at their first instruction, except that an Mma or
//! swap-AB entry asked to (`GroupedGemmParams::weights_before_wait`) first reads its weights,
//! scales and offsets, `route_small` its router weights, and `combine` the routing results and
//! the down bias.

use super::gemm::grouped_gemm;
use super::ptx::wait_for_previous_grid;
use super::swap_ab::swap_ab_gemm;
use crate::format::{MXFP4, NVFP4};
use crate::params::GroupedGemmParams;

macro_rules! entry_points {
    ($($name:literal $family:ident ($wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal) [$($s:literal),+];)+) => {
        $($(
            entry_point!(NVFP4, "nvfp4", $name, $family, $wm, $wn, $wk, $mm, $mn, $bk, $s);
            entry_point!(MXFP4, "mxfp4", $name, $family, $wm, $wn, $wk, $mm, $mn, $bk, $s);
        )+)+
    };
}

macro_rules! entry_point {
    ($fmt:ident, $fmt_name:literal, $name:literal, Wgmma, $wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal, $s:literal) => {
        #[cfg(stagefit_wgmma)]
        entry_point!(@kernel $fmt, $fmt_name, $name, Wgmma, $wm, $wn, $wk, $mm, $mn, $bk, $s);
    };
    ($fmt:ident, $fmt_name:literal, $name:literal, $family:ident, $wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal, $s:literal) => {
        entry_point!(@kernel $fmt, $fmt_name, $name, $family, $wm, $wn, $wk, $mm, $mn, $bk, $s);
    };
    (@kernel $fmt:ident, $fmt_name:literal, $name:literal, $family:ident, $wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal, $s:literal) => {
        const _: () = {
            #[export_name = concat!("stagefit_gemm_", $fmt_name, "_", $name, "_s", stringify!($s))]
            unsafe extern "ptx-kernel" fn kernel(params: GroupedGemmParams) {
                // SAFETY: the host launches this entry with the tactic's block size, a
                // validated problem and at least the layout's dynamic shared memory.
                unsafe { run_family!($family, params, $fmt, $wm, $wn, $wk, $mm, $mn, $bk, $s) }
            }
        };
    };
}

/// The kernel body of each family (`bk` of a swap-AB tile follows from its warps along K). The
/// Wgmma family waits for the grid before it first; the Mma and swap-AB families wait inside,
/// after their first weight copies where `weights_before_wait` allows them.
macro_rules! run_family {
    (Mma, $params:ident, $fmt:ident, $wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal, $s:literal) => {
        grouped_gemm::<$fmt, $wm, $wn, $mm, $mn, $bk, $s>(&$params)
    };
    (SwapAb, $params:ident, $fmt:ident, $wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal, $s:literal) => {
        swap_ab_gemm::<$fmt, $wn, $wk, $mm, $mn, $s>(&$params)
    };
    (Wgmma, $params:ident, $fmt:ident, $wm:literal, $wn:literal, $wk:literal, $mm:literal, $mn:literal, $bk:literal, $s:literal) => {{
        wait_for_previous_grid();
        super::wgmma::wgmma_gemm::<$fmt, $wn, $mm, $s>(&$params)
    }};
}

crate::with_tactics!(entry_points);

/// The MoE-layer entries. `first`: the entry waits for the grid before it at its first
/// instruction; `inside`: the kernel waits itself, after reading only data the kernel before it
/// does not write (`device::moe::route_small`, `device::moe::combine`).
macro_rules! moe_entry_points {
    ($($name:ident => $params:ty, $wait:ident);+ $(;)?) => {
        $(
            const _: () = {
                #[export_name = concat!("stagefit_moe_", stringify!($name))]
                unsafe extern "ptx-kernel" fn kernel(params: $params) {
                    moe_wait!($wait);
                    // SAFETY: the host launches these with the documented block size, grid and
                    // validated shapes (see `host/moe`).
                    unsafe { super::moe::$name(&params) }
                }
            };
        )+
    };
}

macro_rules! moe_wait {
    (first) => {
        wait_for_previous_grid()
    };
    (inside) => {};
}

moe_entry_points!(
    router => crate::params::MoeParams, inside;
    topk => crate::params::MoeParams, first;
    route_small => crate::params::MoeParams, inside;
    count => crate::params::MoeParams, first;
    scatter => crate::params::MoeParams, first;
    gather => crate::params::MoeParams, first;
    activate => crate::params::MoeParams, first;
    combine => crate::params::MoeParams, inside;
    fill => crate::params::FillParams, first;
);

#[export_name = "stagefit_weights_pack"]
unsafe extern "ptx-kernel" fn weights_pack(params: crate::params::PackParams) {
    wait_for_previous_grid();
    // SAFETY: the host launches it with `PACK_BLOCK` threads on buffers it checked against the
    // shapes (see `host/gemm/packing.rs`).
    unsafe { super::weights::pack(&params) }
}
