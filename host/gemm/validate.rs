//! The checks every grouped-GEMM call passes before selection: dimensions the kernels take,
//! sizes computed without overflow, buffer lengths, and (on request) the group offsets.

use super::GroupedGemmArgs;
use crate::error::{Error, Result};
use crate::heuristic::ProblemShape;
use crate::{Fp4Format, MAX_GROUPS};

/// The largest N the kernels take: their column arithmetic is 32-bit. (K has the tighter
/// [`stagefit_kernels::packing::MAX_K`]: offsets inside a strip of weights are 32-bit.)
pub const MAX_DIM: usize = 1 << 30;

/// The dimension rules every kernel shares.
pub(crate) fn check_dims(groups: usize, n: usize, k: usize) -> Result<()> {
    if groups == 0 || groups > MAX_GROUPS {
        return Err(Error::Shape { what: "groups", value: groups, requirement: "between 1 and 256" });
    }
    if n == 0 || !n.is_multiple_of(16) || n > MAX_DIM {
        return Err(Error::Shape { what: "n", value: n, requirement: "a positive multiple of 16, at most 2^30" });
    }
    if k == 0 || !k.is_multiple_of(stagefit_kernels::format::K_CHUNK) || k > stagefit_kernels::packing::MAX_K {
        return Err(Error::Shape { what: "k", value: k, requirement: "a positive multiple of 32, at most 2^28" });
    }
    Ok(())
}

/// `a · b`, or a shape error naming `what` where the product does not fit an address.
fn product(what: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::Shape { what, value: a, requirement: "sizes whose product fits an address" })
}

/// Bytes of packed codes and of block scales that weights of this shape hold (checked
/// arithmetic: shapes whose sizes overflow are refused).
pub(super) fn weight_buffer_lengths(format: Fp4Format, groups: usize, n: usize, k: usize) -> Result<(usize, usize)> {
    let per_group = product("n", n, k)?;
    let codes = product("groups", groups, per_group)? / 2;
    let scales = codes * 2 / format.scale_block();
    Ok((codes, scales))
}

/// Checks a call's shapes and buffer sizes; returns the problem it describes. With the gated
/// epilogue (`gated_bias_len`: its bias's length), C holds `rows × N/2` and the bias
/// `groups × N`.
pub(super) fn validate(args: &GroupedGemmArgs<'_>, gated_bias_len: Option<usize>) -> Result<ProblemShape> {
    let w = args.weights.shape();
    let problem = ProblemShape { rows: args.rows, groups: w.groups, n: w.n, k: w.k };
    let c_width = if gated_bias_len.is_some() { w.n / 2 } else { w.n };
    check_buffers(&problem, args.offsets.len(), args.a.len(), (args.c.len(), c_width))?;
    if let Some(actual) = gated_bias_len {
        let needed = product("groups", w.groups, w.n)?;
        if actual < needed {
            return Err(Error::BufferTooSmall { buffer: "bias", needed, actual });
        }
    }
    Ok(problem)
}

/// Checks a grouped GEMM's shapes and its buffers' lengths (in elements): the dimension rules
/// of the kernels, rows that fit the kernels' 32-bit row indices, exactly `groups + 1`
/// offsets, and A and C at least `rows × K` and `rows × N` (computed without overflow).
pub fn check_problem(problem: &ProblemShape, offsets_len: usize, a_len: usize, c_len: usize) -> Result<()> {
    check_buffers(problem, offsets_len, a_len, (c_len, problem.n))
}

/// [`check_problem`] with C `c_width` elements wide.
fn check_buffers(
    problem: &ProblemShape,
    offsets_len: usize,
    a_len: usize,
    (c_len, c_width): (usize, usize),
) -> Result<()> {
    let ProblemShape { rows, groups, n, k } = *problem;
    check_dims(groups, n, k)?;
    if rows > u32::MAX as usize {
        return Err(Error::Shape { what: "rows", value: rows, requirement: "at most 2^32 - 1" });
    }
    if offsets_len != groups + 1 {
        return Err(Error::BufferTooSmall { buffer: "offsets", needed: groups + 1, actual: offsets_len });
    }
    for (buffer, width, actual) in [("a", k, a_len), ("c", c_width, c_len)] {
        let needed = product("rows", rows, width)?;
        if actual < needed {
            return Err(Error::BufferTooSmall { buffer, needed, actual });
        }
    }
    Ok(())
}

/// Group offsets from group sizes: `[0, s0, s0 + s1, …]`; refused where the total exceeds the
/// kernels' 32-bit row indices.
pub fn offsets_from_sizes(sizes: &[usize]) -> Result<Vec<u32>> {
    let mut offsets = Vec::with_capacity(sizes.len() + 1);
    let mut total = 0u32;
    offsets.push(total);
    for &size in sizes {
        total = u32::try_from(size).ok().and_then(|size| total.checked_add(size)).ok_or(Error::Shape {
            what: "rows",
            value: sizes.iter().fold(0usize, |sum, &s| sum.saturating_add(s)),
            requirement: "group sizes that add up to at most 2^32 - 1",
        })?;
        offsets.push(total);
    }
    Ok(offsets)
}

/// Checks host-side group offsets: `groups + 1` values, from 0, non-decreasing, ending at `rows`.
pub fn check_offsets(offsets: &[u32], groups: usize, rows: usize) -> Result<()> {
    if offsets.len().checked_sub(1) != Some(groups) {
        return Err(Error::Offsets(format!(
            "{} values for {groups} groups (need {})",
            offsets.len(),
            groups as u128 + 1
        )));
    }
    if offsets[0] != 0 {
        return Err(Error::Offsets(format!("offsets[0] = {} (must be 0)", offsets[0])));
    }
    if let Some(g) = offsets.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::Offsets(format!("offsets[{}] = {} < offsets[{g}] = {}", g + 1, offsets[g + 1], offsets[g])));
    }
    if offsets[groups] as usize != rows {
        return Err(Error::Offsets(format!("offsets[{groups}] = {} but there are {rows} rows", offsets[groups])));
    }
    Ok(())
}

/// Reads the call's device data back and checks it: the weights' scales (once per
/// [`super::DeviceWeights`]) and the group offsets. Synchronizes the stream.
pub(super) fn check_device_data(
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    args: &GroupedGemmArgs<'_>,
) -> Result<()> {
    use crate::error::DriverContext;
    args.weights.check_scales(stream)?;
    let offsets = stream.clone_dtoh(&args.offsets).during("reading the group offsets back")?;
    check_offsets(&offsets, args.weights.shape().groups, args.rows)
}
