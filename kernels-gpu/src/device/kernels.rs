//! Kernel entry points: one per (format, tactic, STAGES), generated from the tile table.
//!
//! Names are `stagefit_gemm_{format}_{tactic}_s{stages}`, e.g.
//! `stagefit_gemm_nvfp4_m128n256k64w2x4_s3`; the host builds the same names from the same
//! table.

use super::gemm::grouped_gemm;
use crate::format::{MXFP4, NVFP4};
use crate::params::GroupedGemmParams;

macro_rules! entry_points {
    ($($name:literal ($wm:literal, $wn:literal, $mm:literal, $mn:literal, $bk:literal) [$($s:literal),+];)+) => {
        $($(
            entry_point!(NVFP4, "nvfp4", $name, $wm, $wn, $mm, $mn, $bk, $s);
            entry_point!(MXFP4, "mxfp4", $name, $wm, $wn, $mm, $mn, $bk, $s);
        )+)+
    };
}

macro_rules! entry_point {
    ($fmt:ident, $fmt_name:literal, $name:literal, $wm:literal, $wn:literal, $mm:literal, $mn:literal, $bk:literal, $s:literal) => {
        const _: () = {
            #[export_name = concat!("stagefit_gemm_", $fmt_name, "_", $name, "_s", stringify!($s))]
            unsafe extern "ptx-kernel" fn kernel(params: GroupedGemmParams) {
                // SAFETY: the host launches this entry with the tactic's block size, a
                // validated problem and at least the layout's dynamic shared memory.
                unsafe { grouped_gemm::<$fmt, $wm, $wn, $mm, $mn, $bk, $s>(&params) }
            }
        };
    };
}

crate::with_tactics!(entry_points);

macro_rules! moe_entry_points {
    ($($name:ident => $params:ty),+ $(,)?) => {
        $(
            const _: () = {
                #[export_name = concat!("stagefit_moe_", stringify!($name))]
                unsafe extern "ptx-kernel" fn kernel(params: $params) {
                    // SAFETY: the host launches these with the documented block size, grid and
                    // validated shapes (see `host/moe`).
                    unsafe { super::moe::$name(&params) }
                }
            };
        )+
    };
}

moe_entry_points!(
    router => crate::params::MoeParams,
    topk => crate::params::MoeParams,
    count => crate::params::MoeParams,
    scatter => crate::params::MoeParams,
    gather => crate::params::MoeParams,
    activate => crate::params::MoeParams,
    combine => crate::params::MoeParams,
    fill => crate::params::FillParams,
);
