//! FP4 weight formats understood by the kernels.
//!
//! Both store e2m1 codes two per byte (the low nibble holds the even K index) and differ in
//! their block scales:
//! - **NVFP4**: one e4m3 scale per 16 K-elements, plus one f32 scale per expert;
//! - **MXFP4**: one e8m0 (power of two) scale per 32 K-elements.
//!
//! The kernels take the format as a `const FMT: u32` generic, so its id lives here as plain
//! numbers as well as in the [`Fp4Format`] enum.

/// Const-generic id of [`Fp4Format::Nvfp4`].
pub const NVFP4: u32 = 0;
/// Const-generic id of [`Fp4Format::Mxfp4`].
pub const MXFP4: u32 = 1;

/// K-elements that one FP4 16-byte chunk holds: K must be a multiple of it.
pub const K_CHUNK: usize = 32;

/// An FP4 weight format. Exhaustive on purpose: each format is a different code and scale
/// arithmetic that every codec and checkpoint reader must handle, so a new one is a breaking
/// change the compiler walks a caller's matches through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fp4Format {
    /// e2m1 values, e4m3 scale per 16 K-elements, f32 scale per expert.
    Nvfp4,
    /// e2m1 values, e8m0 scale per 32 K-elements.
    Mxfp4,
}

impl Fp4Format {
    /// Both formats, in id order.
    pub const ALL: [Fp4Format; 2] = [Fp4Format::Nvfp4, Fp4Format::Mxfp4];

    /// The id used as the kernels' `FMT` const generic.
    #[inline]
    pub const fn id(self) -> u32 {
        match self {
            Fp4Format::Nvfp4 => NVFP4,
            Fp4Format::Mxfp4 => MXFP4,
        }
    }

    /// K-elements that share one block scale.
    #[inline]
    pub const fn scale_block(self) -> usize {
        scale_block(self.id())
    }

    /// Lower-case name, as used in kernel names and on the command line.
    #[inline]
    pub const fn name(self) -> &'static str {
        match self {
            Fp4Format::Nvfp4 => "nvfp4",
            Fp4Format::Mxfp4 => "mxfp4",
        }
    }

    /// Whether the format carries an f32 scale per expert (group).
    #[inline]
    pub const fn has_expert_scale(self) -> bool {
        matches!(self, Fp4Format::Nvfp4)
    }
}

/// K-elements per block scale for a format id ([`NVFP4`] or [`MXFP4`]).
#[inline]
pub const fn scale_block(fmt: u32) -> usize {
    if fmt == NVFP4 {
        16
    } else {
        32
    }
}

/// The finest scale block of any format: the shared-memory layout sizes its scale buffer
/// for it, so that one layout (and one stage choice) serves both formats.
pub const FINEST_SCALE_BLOCK: usize = 16;
