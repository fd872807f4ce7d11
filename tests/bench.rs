//! The bench's routing model (CPU side).

use stagefit::tools::bench::{group_sizes, Routing};

#[test]
fn every_token_gets_top_k_distinct_experts() {
    for routing in [Routing::Uniform, Routing::Zipf] {
        for (experts, top_k, tokens) in [(32, 4, 1), (128, 8, 37), (8, 2, 2048), (4, 4, 5)] {
            let sizes = group_sizes(experts, top_k, tokens, routing, 3);
            assert_eq!(sizes.len(), experts);
            assert_eq!(sizes.iter().sum::<usize>(), tokens * top_k, "{routing:?} {experts} {top_k} {tokens}");
            assert!(sizes.iter().all(|&s| s <= tokens), "an expert chosen twice by one token");
        }
    }
}

#[test]
fn zipf_routing_is_skewed_and_uniform_is_not() {
    let uniform = group_sizes(128, 4, 8192, Routing::Uniform, 1);
    let zipf = group_sizes(128, 4, 8192, Routing::Zipf, 1);
    let spread = |s: &[usize]| *s.iter().max().unwrap() as f64 / (*s.iter().min().unwrap()).max(1) as f64;
    assert!(spread(&uniform) < 2.0, "uniform spread {}", spread(&uniform));
    assert!(spread(&zipf) > 20.0, "zipf spread {}", spread(&zipf));
    assert!(zipf[0] > zipf[127]);
}
