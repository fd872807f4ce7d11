//! The PTX that `build.rs` compiled and embedded: one deflated module per (arch, format,
//! tactic), decompressed on demand.

use crate::{Arch, Fp4Format, Tactic};

/// One embedded PTX module.
pub(crate) struct EmbeddedModule {
    arch: &'static str,
    format: &'static str,
    tactic: &'static str,
    deflated: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/embedded_ptx.rs"));

/// The PTX text of the module holding every STAGES of `tactic` in `format` for `arch`.
pub fn module_ptx(arch: Arch, format: Fp4Format, tactic: &Tactic) -> Option<String> {
    let module =
        EMBEDDED.iter().find(|m| m.arch == arch.name() && m.format == format.name() && m.tactic == tactic.name)?;
    let bytes = miniz_oxide::inflate::decompress_to_vec(module.deflated).ok()?;
    String::from_utf8(bytes).ok()
}

/// The entry-point name of one variant; `kernels-gpu` exports the same names from the same
/// table (a test checks every one is present).
pub fn kernel_name(format: Fp4Format, tactic: &Tactic, stages: usize) -> String {
    format!("stagefit_gemm_{}_{}_s{}", format.name(), tactic.name, stages)
}
