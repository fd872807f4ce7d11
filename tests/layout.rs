//! The shared-memory swizzles: each is a permutation of a row's chunks, and the fragment
//! loads the kernel issues hit distinct banks.

use stagefit_kernels::layout::{
    a_chunk, a_fragment_offset, fragment_row, w_chunk, w_fragment_offset, SmemLayout, REGION_ALIGN,
};
use stagefit_kernels::tactics::TACTICS;

/// 16-byte bank group (of 8 per 128-byte line) of a byte offset.
fn bank_group(offset: usize) -> usize {
    (offset / 16) % 8
}

#[test]
fn swizzles_permute_each_row() {
    for bk in [64, 128] {
        for row in 0..64 {
            let mut a: Vec<_> = (0..bk / 8).map(|c| a_chunk(row, c)).collect();
            a.sort();
            assert_eq!(a, (0..bk / 8).collect::<Vec<_>>(), "A bk={bk} row={row}");
            let mut w: Vec<_> = (0..bk / 32).map(|c| w_chunk(bk, row, c)).collect();
            w.sort();
            assert_eq!(w, (0..bk / 32).collect::<Vec<_>>(), "W bk={bk} row={row}");
        }
    }
}

#[test]
fn fragment_loads_are_free_of_bank_conflicts() {
    for bk in [64, 128] {
        for chunk in 0..bk / 32 {
            // A: a quarter warp (lanes 8q..8q+8) loads 16 bytes each, at the kernel's own offsets.
            for quarter in 0..4 {
                let groups: Vec<_> = (0..8)
                    .map(|l| {
                        bank_group(a_fragment_offset(bk, fragment_row(0, quarter * 8 + l), quarter * 8 + l, chunk))
                    })
                    .collect();
                let mut sorted = groups.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(sorted.len(), 8, "A bk={bk} chunk={chunk} quarter={quarter}: {groups:?}");
            }
            // W: a warp loads 4 bytes per lane, one 16-byte chunk from each of 8 rows.
            let mut groups: Vec<_> =
                (0..32).map(|lane| bank_group(w_fragment_offset(bk, fragment_row(0, lane), lane, chunk))).collect();
            groups.sort();
            groups.dedup();
            assert_eq!(groups.len(), 8, "W bk={bk} chunk={chunk}");
        }
    }
}

#[test]
fn regions_are_aligned_and_disjoint() {
    for tactic in TACTICS {
        for &stages in tactic.stages {
            let l = SmemLayout::new(tactic.tile, stages);
            for offset in [l.a, l.w, l.s, l.stage_stride] {
                assert_eq!(offset % REGION_ALIGN, 0, "{} S={stages}", tactic.name);
            }
            let (bm, bn, bk) = (tactic.tile.bm(), tactic.tile.bn(), tactic.tile.bk());
            assert!(l.tile_table + 257 * 4 <= l.a);
            assert!(l.a + bm * bk * 2 <= l.w);
            assert!(l.w + bn * bk / 2 <= l.s);
            assert!(l.s + bk / 16 * bn <= l.a + l.stage_stride);
            assert_eq!(l.total_bytes, l.a + stages * l.stage_stride);
        }
    }
}
