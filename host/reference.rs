//! The CPU reference grouped GEMM, accumulating in f64, and the comparison the tests use.

use half::bf16;

/// `C_g = A_g · W_gᵀ` for every group, in f64. `a` is `[rows][k]`, `w` is `[groups][n][k]`
/// (already dequantized), `offsets` has `groups + 1` entries; returns `[rows][n]`.
/// Rows are spread over the machine's threads.
pub fn grouped_gemm(a: &[f32], w: &[f32], offsets: &[u32], n: usize, k: usize) -> Vec<f64> {
    let rows = *offsets.last().unwrap_or(&0) as usize;
    let mut out = vec![0.0f64; rows * n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let rows_per_chunk = rows.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (chunk, out_rows) in out.chunks_mut(rows_per_chunk * n).enumerate() {
            scope.spawn(move || {
                for (i, out_row) in out_rows.chunks_mut(n).enumerate() {
                    let row = chunk * rows_per_chunk + i;
                    let g = offsets.partition_point(|&o| o as usize <= row) - 1;
                    let a_row = &a[row * k..(row + 1) * k];
                    for (col, out) in out_row.iter_mut().enumerate() {
                        let w_row = &w[(g * n + col) * k..(g * n + col + 1) * k];
                        *out = a_row.iter().zip(w_row).map(|(&x, &y)| x as f64 * y as f64).sum();
                    }
                }
            });
        }
    });
    out
}

/// How far a result is from the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// `max |c - ref| / max |ref|`.
    pub max_rel_err: f64,
    /// `‖c - ref‖₂ / ‖ref‖₂`.
    pub norm_rel_err: f64,
    /// Elements that are NaN or infinite (an unwritten, poisoned output shows up here).
    pub non_finite: usize,
}

impl Comparison {
    /// Whether the result is as close as bf16 output rounding allows.
    pub fn acceptable(&self) -> bool {
        self.non_finite == 0 && self.max_rel_err <= 1e-2 && self.norm_rel_err <= 5e-3
    }
}

/// Compares a bf16 result with an f64 reference of the same length.
pub fn compare(result: &[bf16], reference: &[f64]) -> Comparison {
    assert_eq!(result.len(), reference.len(), "result and reference lengths differ");
    let (mut max_err, mut max_ref, mut err2, mut ref2, mut non_finite) = (0f64, 0f64, 0f64, 0f64, 0);
    for (c, r) in result.iter().zip(reference) {
        let c = c.to_f64();
        if !c.is_finite() {
            non_finite += 1;
            continue;
        }
        max_err = max_err.max((c - r).abs());
        max_ref = max_ref.max(r.abs());
        err2 += (c - r) * (c - r);
        ref2 += r * r;
    }
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { x };
    Comparison { max_rel_err: ratio(max_err, max_ref), norm_rel_err: ratio(err2.sqrt(), ref2.sqrt()), non_finite }
}
