//! Programmatic dependent launch is only safe for kernels that wait for the grid before them
//! before touching memory it may write: on every target whose `Arch::programmatic_launch` is
//! true, no path through any entry of any embedded module reaches a global or shared-memory
//! access before `griddepcontrol.wait`, except in the swap-AB and Mma families and the MoE
//! `route_small` and `combine` entries, which may first read (never write) global memory: with
//! `GroupedGemmParams::weights_before_wait` the GEMMs build their tile table from the offsets and
//! copy their first weight K-tiles before the wait, `route_small` loads its router weights and
//! `combine` its routing results and bias (which data those reads touch is the host's promise,
//! checked bit for bit on the GPU by `tests/gpu_moe.rs`). Paths are followed through every branch both ways, whatever its
//! condition, so a kernel passes only if its one wait lies on every path. On the other targets
//! no entry has the instruction.

use std::collections::{HashMap, HashSet};

use stagefit::{module_ptx, moe_module_ptx, weights_module_ptx, Arch, Family, Fp4Format, TACTICS};

/// Whether a PTX line reads or writes memory other than the kernel parameters.
fn accesses_memory(op: &str) -> bool {
    ["ld.", "st.", "cp.async", "atom.", "red.", "ldmatrix", "stmatrix"].iter().any(|p| op.starts_with(p))
        && !op.starts_with("ld.param")
}

/// Whether a PTX line writes global memory or makes an atomic access.
fn writes_global(op: &str) -> bool {
    op.starts_with("st.global") || op.starts_with("atom.") || op.starts_with("red.")
}

/// The first instruction `flagged` that some path from the start of `body` (one entry's PTX)
/// reaches before a `griddepcontrol.wait`, taking every branch both ways.
fn reached_before_wait(body: &str, flagged: impl Fn(&str) -> bool) -> Option<String> {
    // The entry's instructions up to its closing brace, and where each label points.
    let lines: Vec<&str> = body
        .lines()
        .skip_while(|l| l.trim() != "{")
        .skip(1)
        .take_while(|l| *l != "}")
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('.') && *l != "{" && *l != "}")
        .collect();
    let labels: HashMap<&str, usize> =
        lines.iter().enumerate().filter_map(|(i, l)| l.strip_suffix(':').map(|label| (label, i))).collect();
    let (mut stack, mut seen) = (vec![0usize], HashSet::new());
    while let Some(i) = stack.pop() {
        if i >= lines.len() || !seen.insert(i) {
            continue;
        }
        let line = lines[i];
        // Without its guard (`@%p1 bra …`, `@!%p1 bra …`).
        let (guarded, op) = match line.strip_prefix('@') {
            Some(rest) => (true, rest.split_once(char::is_whitespace).map_or("", |(_, op)| op.trim_start())),
            None => (false, line),
        };
        if op.starts_with("griddepcontrol.wait") {
            continue;
        }
        if flagged(op) {
            return Some(line.to_string());
        }
        if op.starts_with("ret") || op.starts_with("exit") || op.starts_with("trap") {
            if guarded {
                stack.push(i + 1);
            }
            continue;
        }
        if let Some(target) = op.strip_prefix("bra.uni").or_else(|| op.strip_prefix("bra")) {
            let target = target.trim().trim_end_matches(';');
            stack.push(*labels.get(target).unwrap_or_else(|| panic!("no label {target}")));
            if guarded {
                stack.push(i + 1);
            }
            continue;
        }
        stack.push(i + 1);
    }
    None
}

/// Checks every entry of one module; `reads_first`: whether an entry (by name) may read memory
/// before the wait.
fn check_module(arch: Arch, name: &str, ptx: &str, reads_first: impl Fn(&str) -> bool) {
    let entries: Vec<&str> = ptx.split(".entry ").skip(1).collect();
    assert!(!entries.is_empty(), "{} {name}: no entries", arch.name());
    for body in entries {
        let entry = body.split(['(', '\n']).next().unwrap_or("?");
        let has_wait = body.lines().any(|l| l.trim_start().starts_with("griddepcontrol.wait"));
        if !arch.programmatic_launch() {
            assert!(!has_wait, "{} {entry}: griddepcontrol on a target without it", arch.name());
            continue;
        }
        assert!(has_wait, "{} {entry}: no griddepcontrol.wait", arch.name());
        let early = if reads_first(entry) {
            reached_before_wait(body, writes_global)
        } else {
            reached_before_wait(body, accesses_memory)
        };
        assert!(early.is_none(), "{} {entry}: `{}` before griddepcontrol.wait", arch.name(), early.unwrap());
    }
}

#[test]
fn every_kernel_waits_for_the_grid_before_it_before_touching_memory() {
    for arch in Arch::ALL {
        let moe_reads_first =
            |entry: &str| ["stagefit_moe_router", "stagefit_moe_route_small", "stagefit_moe_combine"].contains(&entry);
        check_module(arch, "moe", &moe_module_ptx(arch).expect("MoE module embedded"), moe_reads_first);
        check_module(arch, "weights", &weights_module_ptx(arch).expect("weights module embedded"), |_| false);
        for tactic in TACTICS.iter().filter(|t| arch.runs(t.tile.family)) {
            for format in Fp4Format::ALL {
                let ptx = module_ptx(arch, format, tactic).expect("module embedded");
                check_module(arch, tactic.name, &ptx, |_| tactic.tile.family != Family::Wgmma);
            }
        }
    }
}

#[test]
fn the_path_check_sees_a_write_that_a_branch_takes_around_the_wait() {
    let body = "k()\n{\n\t@%p1 bra $L__1;\n\tgriddepcontrol.wait;\n$L__1:\n\tst.global.u32 [%rd1], %r1;\n\tret;\n}\n";
    assert_eq!(reached_before_wait(body, writes_global).as_deref(), Some("st.global.u32 [%rd1], %r1;"));
    let waited = "k()\n{\n\t@%p1 bra $L__1;\n$L__1:\n\tgriddepcontrol.wait;\n\tst.global.u32 [%rd1], %r1;\n\tret;\n}\n";
    assert_eq!(reached_before_wait(waited, writes_global), None);
}
