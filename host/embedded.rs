//! The PTX that `build.rs` compiled and embedded: one deflated module per architecture and
//! (format, tactic), plus one for the MoE-layer kernels and one for the weight packing,
//! decompressed on demand.

use crate::{Arch, Fp4Format, Tactic};

/// One embedded PTX module.
pub(crate) struct EmbeddedModule {
    arch: &'static str,
    module: &'static str,
    deflated: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/embedded_ptx.rs"));

/// The PTX text of the module holding every STAGES of `tactic` in `format` for `arch`.
pub fn module_ptx(arch: Arch, format: Fp4Format, tactic: &Tactic) -> Option<String> {
    embedded_ptx(arch, &format!("{}_{}", format.name(), tactic.name))
}

/// The PTX text of the MoE-layer kernels for `arch`.
pub fn moe_module_ptx(arch: Arch) -> Option<String> {
    embedded_ptx(arch, "moe")
}

/// The PTX text of the weight-packing kernel for `arch`.
pub fn weights_module_ptx(arch: Arch) -> Option<String> {
    embedded_ptx(arch, "weights")
}

fn embedded_ptx(arch: Arch, module: &str) -> Option<String> {
    let found = EMBEDDED.iter().find(|m| m.arch == arch.name() && m.module == module)?;
    let bytes = miniz_oxide::inflate::decompress_to_vec(found.deflated).ok()?;
    String::from_utf8(bytes).ok()
}

/// The entry-point name of one variant; `kernels-gpu` exports the same names from the same
/// table (a test checks every one is present).
pub fn kernel_name(format: Fp4Format, tactic: &Tactic, stages: usize) -> String {
    format!("stagefit_gemm_{}_{}_s{}", format.name(), tactic.name, stages)
}
