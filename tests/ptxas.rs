//! Every embedded PTX module assembles with `ptxas` for its architecture; on sm_90 and sm_90a
//! no kernel has a stack frame or spills (accumulators stay in registers), no kernel anywhere
//! declares static shared memory (the layout accounts for all of it, dynamically), and ptxas
//! never reports that it serialized `wgmma` instructions.
//!
//! Needs `ptxas` (`pip install nvidia-cuda-nvcc`); found through `STAGEFIT_PTXAS`, `PATH`, or
//! the pip package. Runs without a GPU.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

mod common;

use stagefit::{kernel_name, module_ptx, moe_module_ptx, weights_module_ptx, Arch, Fp4Format, TACTICS};

/// `ptxas` from `STAGEFIT_PTXAS` (used as given, so a wrong path fails the tests: CI sets it),
/// `PATH`, or the `nvidia-cuda-nvcc` pip package; `None` (the test then reports its skip)
/// where none is found.
fn find_ptxas(test: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var("STAGEFIT_PTXAS") {
        return Some(PathBuf::from(path));
    }
    if Command::new("ptxas").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some(PathBuf::from("ptxas"));
    }
    let pip = Command::new("python3")
        .args(["-c", "import nvidia, os; print([p for p in nvidia.__path__][0])"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    for dir in pip.iter().flat_map(|d| ["cu13/bin/ptxas", "cuda_nvcc/bin/ptxas"].map(|p| d.join(p))) {
        if dir.is_file() {
            return Some(dir);
        }
    }
    common::report_skip(
        test,
        "no ptxas (install it with `pip install nvidia-cuda-nvcc` or set STAGEFIT_PTXAS; CI always does)",
    );
    None
}

/// What ptxas reported for one entry.
#[derive(Debug, Default)]
struct EntryReport {
    name: String,
    registers: u32,
    stack_bytes: u32,
    spill_bytes: u32,
    static_smem_bytes: u32,
}

fn number_before(line: &str, suffix: &str) -> Option<u32> {
    let end = line.find(suffix)?;
    line[..end].split_whitespace().last()?.parse().ok()
}

fn parse_report(text: &str) -> Vec<EntryReport> {
    let mut entries: Vec<EntryReport> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            entries.push(EntryReport { name: rest.split('\'').next().unwrap().to_string(), ..Default::default() });
        } else if let Some(e) = entries.last_mut() {
            if line.contains("bytes stack frame") {
                e.stack_bytes = number_before(line, "bytes stack frame").unwrap();
                e.spill_bytes = number_before(line, "bytes spill stores").unwrap()
                    + number_before(line, "bytes spill loads").unwrap();
            }
            if line.contains("Used") && line.contains("registers") {
                e.registers = number_before(line, "registers").unwrap();
                e.static_smem_bytes = number_before(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    entries
}

/// Assembles `ptx` for `arch` with `ptxas -v`; returns the per-entry reports or ptxas's output.
fn assemble(ptxas: &PathBuf, arch: Arch, ptx: &str, file: &std::path::Path) -> Result<Vec<EntryReport>, String> {
    std::fs::write(file, ptx).unwrap();
    let out = Command::new(ptxas)
        .arg(format!("-arch={}", arch.name()))
        .arg("-v")
        .arg(file)
        .arg("-o")
        .arg(file.with_extension("cubin"))
        .output()
        .expect("running ptxas");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // C7515 and its kin: "wgmma.mma_async instructions are serialized due to ...".
    let serialized: Vec<&str> = text.lines().filter(|l| l.contains("wgmma") && l.contains("serialized")).collect();
    if !serialized.is_empty() {
        return Err(format!("ptxas serialized wgmma:\n{}", serialized.join("\n")));
    }
    if out.status.success() {
        Ok(parse_report(&text))
    } else {
        Err(format!("ptxas failed:\n{text}"))
    }
}

const MOE_KERNELS: [&str; 9] =
    ["router", "topk", "route_small", "count", "scatter", "gather", "activate", "combine", "fill"];

#[test]
fn moe_and_weight_kernels_assemble_without_spills() {
    let Some(ptxas) = find_ptxas("moe_and_weight_kernels_assemble_without_spills") else { return };
    let dir = std::env::temp_dir().join(format!("stagefit-ptxas-moe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let moe: Vec<String> = MOE_KERNELS.iter().map(|k| format!("stagefit_moe_{k}")).collect();
    let weights = vec!["stagefit_weights_pack".to_string()];
    for arch in Arch::ALL {
        let modules = [
            ("moe", moe_module_ptx(arch).expect("MoE module embedded"), &moe),
            ("weights", weights_module_ptx(arch).expect("weights module embedded"), &weights),
        ];
        for (module, ptx, kernels) in modules {
            let entries = assemble(&ptxas, arch, &ptx, &dir.join(format!("{}_{module}.ptx", arch.name()))).unwrap();
            for name in kernels {
                let e =
                    entries.iter().find(|e| &e.name == name).unwrap_or_else(|| panic!("{} lacks {name}", arch.name()));
                assert_eq!((e.stack_bytes, e.spill_bytes, e.static_smem_bytes), (0, 0, 0), "{} {name}", arch.name());
            }
            assert_eq!(entries.len(), kernels.len(), "{} {module}", arch.name());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_module_assembles_without_spills_or_static_shared_memory() {
    let Some(ptxas) = find_ptxas("every_module_assembles_without_spills_or_static_shared_memory") else { return };
    let jobs: Vec<(Arch, Fp4Format, &stagefit::Tactic)> = Arch::ALL
        .into_iter()
        .flat_map(|arch| {
            let compiled = TACTICS.iter().filter(move |t| arch.runs(t.tile.family));
            Fp4Format::ALL.into_iter().flat_map(move |f| compiled.clone().map(move |t| (arch, f, t)))
        })
        .collect();
    let next = Mutex::new(jobs.iter());
    let failures = Mutex::new(Vec::new());
    let max_regs = Mutex::new(std::collections::BTreeMap::new());
    let dir = std::env::temp_dir().join(format!("stagefit-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let Some(&(arch, format, tactic)) = next.lock().unwrap().next() else { break };
                let fail = |msg: String| {
                    failures.lock().unwrap().push(format!("{} {} {}: {msg}", arch.name(), format.name(), tactic.name))
                };
                let ptx = module_ptx(arch, format, tactic).expect("module embedded");
                let file = dir.join(format!("{}_{}_{}.ptx", arch.name(), format.name(), tactic.name));
                let entries = match assemble(&ptxas, arch, &ptx, &file) {
                    Ok(entries) => entries,
                    Err(e) => {
                        fail(e);
                        continue;
                    }
                };
                for &stages in tactic.stages {
                    let name = kernel_name(format, tactic, stages);
                    let Some(e) = entries.iter().find(|e| e.name == name) else {
                        fail(format!("entry {name} missing"));
                        continue;
                    };
                    if e.static_smem_bytes != 0 {
                        fail(format!("{name} declares {} bytes of static shared memory", e.static_smem_bytes));
                    }
                    if matches!(arch, Arch::Sm90 | Arch::Sm90a) && (e.stack_bytes != 0 || e.spill_bytes != 0) {
                        fail(format!("{name}: {} bytes stack, {} bytes spilled", e.stack_bytes, e.spill_bytes));
                    }
                    let mut regs = max_regs.lock().unwrap();
                    let slot = regs.entry((arch.name(), tactic.name)).or_insert((0, 0));
                    *slot = (slot.0.max(e.registers), slot.1.max(e.spill_bytes));
                }
                if entries.len() != tactic.stages.len() {
                    fail(format!("{} entries, expected {}", entries.len(), tactic.stages.len()));
                }
            });
        }
    });
    std::fs::remove_dir_all(&dir).ok();
    println!("{:<8} {:<18} {:>9} {:>12}", "arch", "tactic", "max regs", "spill bytes");
    for ((arch, tactic), (regs, spills)) in max_regs.into_inner().unwrap() {
        println!("{arch:<8} {tactic:<18} {regs:>9} {spills:>12}");
    }
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
