//! Programmatic dependent launch is only safe for kernels that wait for the grid before them
//! before touching memory: on every target whose `Arch::programmatic_launch` is true, every
//! entry of every embedded module executes `griddepcontrol.wait` before its first global or
//! shared-memory access; on the others no entry has it (their PTX has no such instruction).

use stagefit::{module_ptx, moe_module_ptx, weights_module_ptx, Arch, Fp4Format, TACTICS};

/// The first line of `body` that reads or writes memory other than the kernel parameters.
fn first_memory_access(body: &str) -> Option<usize> {
    body.lines().position(|line| {
        let op = line.trim_start();
        ["ld.", "st.", "cp.async", "atom.", "red.", "ldmatrix", "stmatrix"].iter().any(|p| op.starts_with(p))
            && !op.starts_with("ld.param")
    })
}

fn check_module(arch: Arch, name: &str, ptx: &str) {
    let entries: Vec<&str> = ptx.split(".entry ").skip(1).collect();
    assert!(!entries.is_empty(), "{} {name}: no entries", arch.name());
    for body in entries {
        let entry = body.split(['(', '\n']).next().unwrap_or("?");
        let wait = body.lines().position(|l| l.trim_start().starts_with("griddepcontrol.wait"));
        if !arch.programmatic_launch() {
            assert!(wait.is_none(), "{} {entry}: griddepcontrol on a target without it", arch.name());
            continue;
        }
        let wait = wait.unwrap_or_else(|| panic!("{} {entry}: no griddepcontrol.wait", arch.name()));
        if let Some(access) = first_memory_access(body) {
            assert!(wait < access, "{} {entry}: memory is touched before griddepcontrol.wait", arch.name());
        }
    }
}

#[test]
fn every_kernel_waits_for_the_grid_before_it_before_touching_memory() {
    for arch in Arch::ALL {
        check_module(arch, "moe", &moe_module_ptx(arch).expect("MoE module embedded"));
        check_module(arch, "weights", &weights_module_ptx(arch).expect("weights module embedded"));
        for tactic in TACTICS.iter().filter(|t| arch.runs(t.tile.family)) {
            for format in Fp4Format::ALL {
                let ptx = module_ptx(arch, format, tactic).expect("module embedded");
                check_module(arch, tactic.name, &ptx);
            }
        }
    }
}
