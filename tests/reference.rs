//! The CPU reference GEMM and the comparison helper.

use half::bf16;
use stagefit::reference::{compare, grouped_gemm};

#[test]
fn reference_matches_a_hand_computed_case() {
    // Two groups: rows 0..1 use expert 0, rows 1..3 use expert 1; n = 2, k = 3.
    let a = [1.0, 2.0, 3.0, /**/ 0.5, -1.0, 2.0, /**/ -2.0, 0.0, 1.0];
    let w = [1.0, 0.0, -1.0, /**/ 2.0, 1.0, 0.0, /**/ 0.0, 1.0, 1.0, /**/ 3.0, -2.0, 0.5];
    let c = grouped_gemm(&a, &w, &[0, 1, 3], 2, 3);
    assert_eq!(c, vec![-2.0, 4.0, 1.0, 4.5, 1.0, -5.5]);
}

#[test]
fn empty_groups_and_no_rows_are_handled() {
    let w = vec![1.0f32; 3 * 2 * 4];
    let a = vec![1.0f32; 2 * 4];
    assert_eq!(grouped_gemm(&a, &w, &[0, 0, 2, 2], 2, 4), vec![4.0; 4]);
    assert!(grouped_gemm(&[], &w, &[0, 0, 0, 0], 2, 4).is_empty());
}

#[test]
fn compare_counts_unwritten_outputs_and_scales_errors() {
    let reference = [1.0, -2.0, 4.0];
    let exact: Vec<bf16> = reference.iter().map(|&x| bf16::from_f64(x)).collect();
    assert!(compare(&exact, &reference).acceptable());
    let mut poisoned = exact.clone();
    poisoned[1] = bf16::NAN;
    let cmp = compare(&poisoned, &reference);
    assert_eq!(cmp.non_finite, 1);
    assert!(!cmp.acceptable());
    let off = [bf16::from_f64(1.0), bf16::from_f64(-2.0), bf16::from_f64(4.5)];
    assert!((compare(&off, &reference).max_rel_err - 0.125).abs() < 1e-12);
}
