//! Typed errors: every refusal names what was wrong, the value expected and the value given.

use crate::Fp4Format;

/// What can go wrong in stagefit. New refusals may be added in any release, so matches need a
/// catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A problem dimension breaks a kernel requirement.
    #[error("{what} = {value} is not allowed: {requirement}")]
    Shape {
        /// The dimension (e.g. `"k"`).
        what: &'static str,
        /// Its value.
        value: usize,
        /// What it must satisfy.
        requirement: &'static str,
    },
    /// A buffer is shorter than the shapes need.
    #[error("buffer `{buffer}` holds {actual} elements but the problem needs {needed}")]
    BufferTooSmall {
        /// Which argument.
        buffer: &'static str,
        /// Elements required.
        needed: usize,
        /// Elements present.
        actual: usize,
    },
    /// Weights of another format, shape or group count than the call says.
    #[error("weights are {actual} but the call needs {expected}")]
    WeightsMismatch {
        /// What the call described.
        expected: String,
        /// What the weights hold.
        actual: String,
    },
    /// An MoE workspace too small for the layer or token count of a call (it was sized for
    /// another config or fewer tokens).
    #[error("MoE workspace buffer `{buffer}` holds {actual} elements but {asked} need {needed} (the workspace was sized for {sized_for})")]
    Workspace {
        /// Which workspace buffer (or buffers of one length).
        buffer: &'static str,
        /// Elements the call needs.
        needed: usize,
        /// Elements it holds.
        actual: usize,
        /// The call's tokens and layer shape.
        asked: String,
        /// The tokens and layer shape the workspace was made for.
        sized_for: String,
    },
    /// An activation constant that is not a finite positive number.
    #[error("activation constant {what} = {value} is not allowed: a finite number above 0")]
    Activation {
        /// `"limit"` or `"alpha"`.
        what: &'static str,
        /// Its value.
        value: f32,
    },
    /// Group offsets that are not a non-decreasing sequence from 0 to the row count.
    #[error("group offsets are invalid: {0}")]
    Offsets(String),
    /// A caller's routing names an expert the layer does not have.
    #[error("topk_ids[{index}] = {expert} but the layer has {experts} experts")]
    ExpertId {
        /// Flat index into `[tokens, top_k]`.
        index: usize,
        /// The id given.
        expert: u32,
        /// Experts of the layer.
        experts: usize,
    },
    /// Input to quantization that is not finite.
    #[error("cannot quantize to {format:?}: element {index} is {value}")]
    NonFinite {
        /// Target format.
        format: Fp4Format,
        /// Flat index of the element.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A block or expert scale the kernels cannot use (NaN, negative where the format is
    /// unsigned, or beyond the range the kernels' arithmetic covers), or weights whose
    /// scale would be.
    #[error("{buffer}[{index}] = {value} is not usable: {requirement}")]
    Scale {
        /// Which buffer (`"scales"`, `"expert_scales"`, or `"weights"` when quantizing).
        buffer: &'static str,
        /// Flat index of the scale (of the block, when quantizing).
        index: usize,
        /// The value, as stored (a byte in hex, or a number).
        value: String,
        /// What it must be.
        requirement: &'static str,
    },
    /// A buffer or stream of another CUDA context than the handle's.
    #[error("`{buffer}` belongs to the CUDA context of device {actual}, not the handle's (device {expected})")]
    Context {
        /// Which argument.
        buffer: &'static str,
        /// The handle's device ordinal.
        expected: usize,
        /// The argument's device ordinal.
        actual: usize,
    },
    /// No compiled variant of the tactic (or of any tactic) fits the shared-memory limit.
    #[error(
        "{what} needs {needed} bytes of shared memory per block but only {available} are available ({limit_source})"
    )]
    SharedMemory {
        /// The variant or tactic refused.
        what: String,
        /// Bytes the smallest candidate needs.
        needed: usize,
        /// Bytes allowed.
        available: usize,
        /// Where the limit came from (device opt-in maximum or caller budget).
        limit_source: String,
    },
    /// A tactic name that is not in the tile table, or a STAGES it is not compiled at.
    #[error("unknown variant: {0}")]
    UnknownVariant(String),
    /// The device has no PTX this crate ships.
    #[error("no shipped PTX runs on compute capability {major}.{minor}")]
    UnsupportedArch {
        /// Major compute capability.
        major: u32,
        /// Minor compute capability.
        minor: u32,
    },
    /// A checkpoint file, config key or tensor that is missing, misshapen, of the wrong dtype,
    /// or unreadable.
    #[error("checkpoint {file}{}: {problem}", tensor_suffix(.tensor))]
    Checkpoint {
        /// The file (a shard, the index, `config.json`, or the directory).
        file: String,
        /// The tensor's name, the config key, or `<file>` when the file itself is the problem.
        tensor: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A tune cache that cannot be read, parsed or written.
    #[error("tune cache {path}: {problem}")]
    TuneCache {
        /// The cache file.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// A step that cannot be captured into a CUDA graph.
    #[error("cannot capture a CUDA graph: {0}")]
    Capture(String),
    /// The cuBLAS baseline of `stagefit bench` failed.
    #[error("cuBLAS baseline: {0}")]
    Baseline(String),
    /// The CUDA driver library could not be loaded.
    #[error("the CUDA driver (libcuda) could not be loaded: no NVIDIA driver on this machine")]
    NoDriver,
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {context}: {source}")]
    Driver {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: cudarc::driver::DriverError,
    },
}

/// Short for `Result<T, stagefit::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a context to a driver error.
pub(crate) trait DriverContext<T> {
    fn during(self, context: &'static str) -> Result<T>;
}

impl<T> DriverContext<T> for Result<T, cudarc::driver::DriverError> {
    fn during(self, context: &'static str) -> Result<T> {
        self.map_err(|source| Error::Driver { context, source })
    }
}

/// `, tensor `NAME`` for a checkpoint error about a tensor or config key; nothing when the
/// file itself is the problem (`<file>`).
fn tensor_suffix(tensor: &str) -> String {
    match tensor {
        "<file>" => String::new(),
        name => format!(", `{name}`"),
    }
}
