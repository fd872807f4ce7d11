//! The GPU architectures stagefit ships PTX for.

/// A PTX target the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Arch {
    /// Ampere (A100, RTX 30): runs on compute capability 8.x and, by JIT, on later parts.
    Sm80,
    /// Hopper (H100, H200): runs on compute capability 9.0 and, by JIT, on 10.x.
    Sm90,
    /// Hopper's arch-specific target (H100, H200; compute capability 9.0 only): everything of
    /// [`Arch::Sm90`] plus the `wgmma` kernel family.
    Sm90a,
    /// Blackwell RTX (RTX 50, RTX PRO 6000): compute capability 12.0 only.
    Sm120a,
    /// Blackwell GB10 (DGX Spark): compute capability 12.1 only.
    Sm121a,
}

impl Arch {
    /// Every shipped architecture: `build.rs` compiles each of them.
    pub const ALL: [Arch; 5] = [Arch::Sm80, Arch::Sm90, Arch::Sm90a, Arch::Sm120a, Arch::Sm121a];

    /// The `-C target-cpu` / `.target` name.
    #[inline]
    pub const fn name(self) -> &'static str {
        match self {
            Arch::Sm80 => "sm_80",
            Arch::Sm90 => "sm_90",
            Arch::Sm90a => "sm_90a",
            Arch::Sm120a => "sm_120a",
            Arch::Sm121a => "sm_121a",
        }
    }

    /// Parses a name such as `sm_121a`.
    #[inline]
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The compute capability the target is written for.
    #[inline]
    pub const fn compute_capability(self) -> (u32, u32) {
        match self {
            Arch::Sm80 => (8, 0),
            Arch::Sm90 | Arch::Sm90a => (9, 0),
            Arch::Sm120a => (12, 0),
            Arch::Sm121a => (12, 1),
        }
    }

    /// Whether the target is arch-specific (`a` suffix): its PTX runs only on exactly its
    /// compute capability.
    #[inline]
    pub const fn arch_specific(self) -> bool {
        matches!(self, Arch::Sm90a | Arch::Sm120a | Arch::Sm121a)
    }

    /// Whether the target has Hopper's warpgroup MMA (`wgmma`), which only `sm_90a` PTX may
    /// use: the kernels of [`Family::Wgmma`](crate::tactics::Family::Wgmma) are compiled for
    /// it alone.
    #[inline]
    pub const fn has_wgmma(self) -> bool {
        matches!(self, Arch::Sm90a)
    }

    /// Whether kernels of `family` are compiled for this target.
    #[inline]
    pub const fn runs(self, family: crate::tactics::Family) -> bool {
        !family.needs_wgmma() || self.has_wgmma()
    }

    /// Whether the kernels of this target start with `griddepcontrol.wait` (PTX has it from
    /// sm_90 on), so that the host may launch them with programmatic dependent launch: each
    /// kernel's blocks may start while the one before it on the stream finishes.
    #[inline]
    pub const fn programmatic_launch(self) -> bool {
        !matches!(self, Arch::Sm80)
    }

    /// The per-block opt-in shared memory of this architecture's reference part, used when
    /// planning without a device (`stagefit plan --arch`): A100 166912, H100 232448,
    /// RTX 50 / GB10 101376. A real device is always queried instead.
    #[inline]
    pub const fn reference_smem_optin(self) -> usize {
        match self {
            Arch::Sm80 => 166912,
            Arch::Sm90 | Arch::Sm90a => 232448,
            Arch::Sm120a | Arch::Sm121a => 101376,
        }
    }

    /// The PTX to load on a device of compute capability `major.minor`: an arch-specific
    /// target of exactly that capability, else the newest portable target not above it.
    #[inline]
    pub fn for_compute_capability(major: u32, minor: u32) -> Option<Arch> {
        let cc = (major, minor);
        Arch::ALL
            .into_iter()
            .find(|a| a.arch_specific() && a.compute_capability() == cc)
            .or_else(|| Arch::ALL.into_iter().rev().find(|a| !a.arch_specific() && a.compute_capability() <= cc))
    }
}
