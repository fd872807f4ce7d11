//! The shared-memory swizzles: each is a permutation of a row's chunks, and the fragment
//! loads the kernel issues hit distinct banks.

use stagefit_kernels::layout::{
    a_chunk, a_ldmatrix_offset, a_ldmatrix_step, fragment_row, reduce_offset, reduce_row_floats, scale_row_bytes,
    swap_ab_chunk_offset, w_chunk, w_fragment_offset, wgmma_a_chunk, wgmma_descriptor, wgmma_ring, SmemLayout,
    REGION_ALIGN, WGMMA_ALIGN_SLACK, WGMMA_SWIZZLE_ATOM,
};
use stagefit_kernels::tactics::{Family, SWAP_AB_WARP_K, TACTICS};

/// 4-byte bank (of 32) of a byte offset.
fn bank(offset: usize) -> usize {
    (offset / 4) % 32
}

/// Whether the 32 addresses of a warp's 4-byte (or narrower) accesses hit each bank at most
/// once, counting accesses to the same word once (a broadcast).
fn conflict_free(offsets: impl IntoIterator<Item = usize>) -> bool {
    let mut words: Vec<usize> = offsets.into_iter().map(|o| o / 4).collect();
    words.sort();
    words.dedup();
    let mut banks: Vec<usize> = words.iter().map(|w| bank(w * 4)).collect();
    banks.sort();
    banks.dedup();
    banks.len() == words.len()
}

fn swap_ab_tactics() -> impl Iterator<Item = &'static stagefit_kernels::tactics::Tactic> {
    TACTICS.iter().filter(|t| t.tile.family == Family::SwapAb)
}

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
            // A: `ldmatrix.x4` reads one 8 × 8 matrix per phase, 16 bytes from each of lanes
            // 8i..8i+8's rows, at the kernel's own offsets, for both steps and 16-row tiles
            // starting on any multiple of 16.
            for (step, row0) in [0, 1].into_iter().flat_map(|s| [0, 16, 48].map(move |r| (s, r))) {
                for matrix in 0..4 {
                    let lanes = matrix * 8..matrix * 8 + 8;
                    let offsets: Vec<_> = lanes.map(|l| a_ldmatrix_offset(bk, row0, l, chunk, step)).collect();
                    let mut groups: Vec<_> = offsets.iter().map(|&o| bank_group(o)).collect();
                    groups.sort();
                    groups.dedup();
                    assert_eq!(groups.len(), 8, "A bk={bk} chunk={chunk} step={step} matrix={matrix}: {offsets:?}");
                }
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
fn ldmatrix_addresses_step_by_xor_and_add_on_aligned_tiles() {
    for bk in [64, 128] {
        for row0 in (0..128).step_by(16) {
            for lane in 0..32 {
                let first = a_ldmatrix_offset(bk, row0, lane, 0, 0);
                for chunk in 0..bk / 32 {
                    for step in 0..2 {
                        let (flip, add) = a_ldmatrix_step(chunk, step);
                        for base in [0, 128, 4096 + 384] {
                            assert_eq!(
                                ((base + first) ^ flip) + add,
                                base + a_ldmatrix_offset(bk, row0, lane, chunk, step),
                                "bk={bk} row0={row0} lane={lane} chunk={chunk} step={step} base={base}"
                            );
                        }
                    }
                }
            }
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
            let tile = tactic.tile;
            let (bm, bn, bk) = (tile.bm(), tile.bn(), tile.bk());
            let (reduce_bytes, slack) = match tile.family {
                Family::Mma => (0, 0),
                Family::SwapAb => (tile.warps_k * bm * reduce_row_floats(bn) * 4, 0),
                Family::Wgmma => (0, WGMMA_ALIGN_SLACK),
                other => panic!("{other:?} needs its reduction buffer's expected size here"),
            };
            assert!(l.tile_table + 257 * 4 <= l.reduce);
            assert!(l.reduce + reduce_bytes <= l.a);
            assert!(l.a + bm * bk * 2 <= l.w);
            assert!(l.w + bn * bk / 2 <= l.s);
            assert!(l.s + bk / 16 * scale_row_bytes(tile) <= l.a + l.stage_stride);
            assert_eq!(l.total_bytes, l.a + slack + stages * l.stage_stride);
            if tile.family == Family::Wgmma {
                assert_eq!(l.stage_stride % WGMMA_SWIZZLE_ATOM, 0, "{} S={stages}", tactic.name);
                // Wherever the 128-byte-aligned dynamic shared memory lands, the ring starts
                // on a swizzle atom after the tile table and ends inside the allocation.
                for base in (0..2 * WGMMA_SWIZZLE_ATOM as u32).step_by(REGION_ALIGN) {
                    let ring = wgmma_ring(base, &l);
                    assert_eq!(ring as usize % WGMMA_SWIZZLE_ATOM, 0);
                    assert!(ring >= base + l.a as u32);
                    assert!(ring as usize + stages * l.stage_stride <= base as usize + l.total_bytes);
                }
            }
        }
    }
}

#[test]
fn the_wgmma_swizzle_permutes_rows_and_spreads_each_column_over_all_banks() {
    for row in 0..64 {
        let mut chunks: Vec<_> = (0..8).map(|c| wgmma_a_chunk(row, c)).collect();
        chunks.sort();
        assert_eq!(chunks, (0..8).collect::<Vec<_>>(), "row {row}");
    }
    // The 8 rows of an atom put a logical chunk in 8 different 16-byte bank groups.
    for chunk in 0..8 {
        let mut groups: Vec<_> = (0..8).map(|row| bank_group(row * 128 + 16 * wgmma_a_chunk(row, chunk))).collect();
        groups.sort();
        groups.dedup();
        assert_eq!(groups.len(), 8, "chunk {chunk}");
    }
}

#[test]
fn the_wgmma_descriptor_holds_its_fields() {
    let d = wgmma_descriptor(0x1_2340);
    assert_eq!(d & 0x3FFF, 0x1234, "start address in 16-byte units");
    assert_eq!((d >> 16) & 0x3FFF, 1, "leading byte offset");
    assert_eq!((d >> 32) & 0x3FFF, (WGMMA_SWIZZLE_ATOM / 16) as u64, "stride byte offset");
    assert_eq!((d >> 49) & 0x7, 0, "base offset");
    assert_eq!(d >> 62, 1, "128-byte swizzle");
}

#[test]
fn swap_ab_chunks_fill_each_operand_once() {
    for tactic in swap_ab_tactics() {
        let tile = tactic.tile;
        let wk_count = tile.warps_k;
        // W: one slot per 8-row half; A: four per 8 activation rows.
        for (operand, slots, bytes) in
            [("W", tile.bn() / 8, tile.bn() * tile.bk() / 2), ("A", tile.bm() / 2, tile.bm() * tile.bk() * 2)]
        {
            let mut offsets: Vec<usize> = (0..slots)
                .flat_map(|slot| (0..wk_count).flat_map(move |wk| (0..32).map(move |lane| (slot, wk, lane))))
                .map(|(slot, wk, lane)| swap_ab_chunk_offset(wk_count, slot, wk, lane))
                .collect();
            offsets.sort();
            assert_eq!(offsets, (0..bytes / 16).map(|c| 16 * c).collect::<Vec<_>>(), "{} {operand}", tactic.name);
        }
        // The copies: thread tid's chunk j is chunk tid + j·threads of the order, at slot
        // tid / (32·warps_k) + j·warps_n.
        for tid in 0..tile.threads() {
            for j in 0..4 {
                let chunk = tid + j * tile.threads();
                let (slot, wk, lane) = (chunk / 32 / wk_count, (chunk / 32) % wk_count, chunk % 32);
                assert_eq!(slot, tid / (32 * wk_count) + j * tile.warps_n, "{}", tactic.name);
                assert_eq!(swap_ab_chunk_offset(wk_count, slot, wk, lane), 16 * chunk);
            }
        }
    }
}

#[test]
fn swap_ab_scale_and_reduction_accesses_are_free_of_bank_conflicts() {
    for tactic in swap_ab_tactics() {
        let tile = tactic.tile;
        let (bm, bn) = (tile.bm(), tile.bn());
        for block in [16, 32] {
            let blocks_per_lane = 32 / block;
            for wk in 0..tile.warps_k {
                for sb in 0..blocks_per_lane {
                    for col0 in (0..bn).step_by(16) {
                        // Lane 4g + t reads K-block (128·wk + 32t) / block + sb, columns col0 + g and + 8.
                        for extra in [0, 8] {
                            let offsets = (0..32).map(|lane| {
                                let (g, t) = (lane / 4, lane % 4);
                                let kb = (wk * SWAP_AB_WARP_K + 32 * t) / block + sb;
                                kb * scale_row_bytes(tile) + col0 + g + extra
                            });
                            assert!(conflict_free(offsets), "{} block {block} wk {wk}", tactic.name);
                        }
                    }
                }
            }
        }
        // Partial sums: lane 4g + t stores rows 8nt + 2t (+1), columns 16m + g (+8).
        for wk in 0..tile.warps_k {
            for nt in 0..bm / 8 {
                for m in 0..bn / 16 {
                    for (dr, dc) in [(0, 0), (1, 0), (0, 8), (1, 8)] {
                        let offsets = (0..32).map(|lane| {
                            let (g, t) = (lane / 4, lane % 4);
                            reduce_offset(bm, bn, wk, 8 * nt + 2 * t + dr, 16 * m + g + dc)
                        });
                        assert!(conflict_free(offsets), "{} reduction", tactic.name);
                    }
                }
            }
        }
    }
}
