//! The host side of a call on a real GPU: a handle loads only the module it uses, calls make
//! no device allocations, and calls captured in a CUDA graph give the eager result bit for
//! bit. Timings are printed, never asserted. Skipped, with a printed reason, without a driver.

mod common;

use common::gpu;

#[test]
fn calls_load_lazily_allocate_nothing_and_replay_in_a_graph() {
    if gpu("calls_load_lazily_allocate_nothing_and_replay_in_a_graph").is_none() {
        return;
    }
    let r = stagefit::tools::overhead::measure(0, 300).unwrap();
    println!("{r:?}");
    assert_eq!(r.modules_loaded, 1, "one (format, tactic) used, one module loaded");
    assert_eq!(r.free_bytes_before_after.0, r.free_bytes_before_after.1, "device memory changed during calls");
    assert!(r.graph_output_identical, "graph replay differs from the eager calls");
}
