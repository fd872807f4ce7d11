//! Model directories (config.json, index, shards) in every layout load the weights they hold,
//! and broken ones are refused naming the file and the key or tensor.

mod common;

use common::model_dirs::{write_model_dir, DirLayout};
use stagefit::moe::checkpoint::{Checkpoint, ModelType, MoeModel};
use stagefit::{Error, Fp4Format};

#[test]
fn every_layout_loads_the_weights_it_holds() {
    for layout in DirLayout::ALL {
        let written = write_model_dir(layout, "load", 7);
        let model = MoeModel::open(&written.dir).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
        assert_eq!(model.config(), &written.config, "{layout:?}");
        assert_eq!(model.layout(), layout.weight_layout(), "{layout:?}");
        assert_eq!(model.files().len(), 2, "{layout:?}: one shard per layer");
        let expected_layers: Vec<usize> = written.layers.iter().map(|(l, _)| *l).collect();
        assert_eq!(model.layers(), expected_layers, "{layout:?}");
        for (layer, expected) in &written.layers {
            let loaded = model.load_layer(*layer).unwrap_or_else(|e| panic!("{layout:?} layer {layer}: {e}"));
            assert!(loaded == *expected, "{layout:?} layer {layer}: the loaded weights differ");
        }
        std::fs::remove_dir_all(&written.dir).ok();
    }
}

#[test]
fn the_config_decides_the_family_and_dense_weights_take_the_asked_format() {
    let written = write_model_dir(DirLayout::Qwen3F16, "family", 3);
    let model = MoeModel::open(&written.dir).unwrap();
    assert_eq!(model.model_type(), ModelType::Qwen3Moe);
    assert_eq!(model.layers(), [0, 2], "layer 1 is in mlp_only_layers");
    let mx = MoeModel::open_with(&written.dir, Some(Fp4Format::Mxfp4)).unwrap();
    assert_eq!(mx.config().format, Fp4Format::Mxfp4);
    assert_eq!(mx.load_layer(2).unwrap().gate_up.format, Fp4Format::Mxfp4);
    assert!(matches!(model.load_layer(1), Err(Error::Checkpoint { .. })), "layer 1 is not an MoE layer");
    // FP4 weights keep their format whatever is asked for dense ones.
    let gpt = write_model_dir(DirLayout::GptOssMxfp4, "family", 3);
    assert_eq!(MoeModel::open_with(&gpt.dir, Some(Fp4Format::Nvfp4)).unwrap().config().format, Fp4Format::Mxfp4);
    std::fs::remove_dir_all(&written.dir).ok();
    std::fs::remove_dir_all(&gpt.dir).ok();
}

/// The error of opening (and loading every layer of) `dir`.
fn open_error(dir: &std::path::Path) -> (String, String, String) {
    let result = MoeModel::open(dir).and_then(|m| m.layers().iter().try_for_each(|&l| m.load_layer(l).map(|_| ())));
    match result {
        Err(Error::Checkpoint { file, tensor, problem }) => (file, tensor, problem),
        other => panic!("{}: expected a checkpoint error, got {:?}", dir.display(), other.map(|_| ())),
    }
}

#[test]
fn broken_directories_are_refused_naming_the_file_and_tensor() {
    let fresh = |tag| write_model_dir(DirLayout::MixtralBf16, tag, 5);

    // A shard the index names is absent.
    let w = fresh("absent");
    let shard = w.dir.join("model-00002-of-00002.safetensors");
    std::fs::remove_file(&shard).unwrap();
    let (file, _, problem) = open_error(&w.dir);
    assert!(file.ends_with("model-00002-of-00002.safetensors") && problem.contains("absent"), "{file}: {problem}");

    // The index puts a tensor in a shard that does not hold it.
    let w = fresh("moved");
    let index_path = w.dir.join("model.safetensors.index.json");
    let moved = "model.layers.1.block_sparse_moe.experts.3.w2.weight";
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    json["weight_map"][moved] = "model-00001-of-00002.safetensors".into();
    std::fs::write(&index_path, json.to_string()).unwrap();
    let (file, tensor, problem) = open_error(&w.dir);
    assert!(file.ends_with("model-00001-of-00002.safetensors") && tensor == moved, "{file} {tensor}: {problem}");

    // A tensor missing from every shard (and the index).
    let w = fresh("missing");
    let index_path = w.dir.join("model.safetensors.index.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    json["weight_map"].as_object_mut().unwrap().remove("model.layers.0.block_sparse_moe.experts.2.w3.weight");
    std::fs::write(&index_path, json.to_string()).unwrap();
    let (_, tensor, problem) = open_error(&w.dir);
    assert_eq!(tensor, "model.layers.0.block_sparse_moe.experts.2.w3.weight", "{problem}");
    assert!(problem.contains("missing"), "{problem}");

    // A layer with no experts at all.
    let w = fresh("layers");
    let config_path = w.dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["num_hidden_layers"] = 3.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let (_, tensor, problem) = open_error(&w.dir);
    assert!(tensor.contains("model.layers.2.") && problem.contains("MoE layer 2"), "{tensor}: {problem}");

    // A config that disagrees with the tensors.
    config["num_hidden_layers"] = 2.into();
    config["hidden_size"] = 256.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let (file, tensor, problem) = open_error(&w.dir);
    assert!(
        tensor.ends_with("block_sparse_moe.gate.weight") && problem.contains("shape"),
        "{file} {tensor}: {problem}"
    );

    // An unknown model type, and a missing key.
    config["hidden_size"] = 128.into();
    config["model_type"] = "llama".into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let (file, tensor, problem) = open_error(&w.dir);
    assert!(file.ends_with("config.json") && tensor == "model_type" && problem.contains("\"llama\""), "{problem}");
    config["model_type"] = "mixtral".into();
    config.as_object_mut().unwrap().remove("num_local_experts");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let (_, tensor, problem) = open_error(&w.dir);
    assert!(tensor == "num_local_experts" && problem.contains("missing"), "{problem}");

    // No config, and no weights.
    std::fs::remove_file(&config_path).unwrap();
    let (file, _, _) = open_error(&w.dir);
    assert!(file.ends_with("config.json"), "{file}");
    for tag in ["absent", "moved", "missing", "layers"] {
        std::fs::remove_dir_all(fresh(tag).dir).ok();
    }
}

#[test]
fn one_shard_of_a_sharded_checkpoint_is_refused_as_a_file() {
    let w = write_model_dir(DirLayout::GptOssMxfp4, "shard", 9);
    let shard = w.dir.join("model-00001-of-00002.safetensors");
    match Checkpoint::open(&shard) {
        Err(Error::Checkpoint { problem, .. }) => assert!(problem.contains("MoeModel::open"), "{problem}"),
        other => panic!("expected the shard to be refused, got {:?}", other.map(|_| ())),
    }
    std::fs::remove_dir_all(&w.dir).ok();
}

#[test]
fn modelopt_gate_and_up_with_different_global_scales_share_the_larger() {
    use safetensors::tensor::TensorView;
    let w = write_model_dir(DirLayout::MixtralModelOpt, "scale2", 21);
    let shard = w.dir.join("model-00001-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let up_scale = "model.layers.0.block_sparse_moe.experts.0.w3.weight_scale_2";
    let halved: Vec<(String, Vec<u8>, safetensors::Dtype, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let mut data = v.data().to_vec();
            if name == up_scale {
                data = (f32::from_le_bytes(data[..4].try_into().unwrap()) / 2.0).to_le_bytes().to_vec();
            }
            (name, data, v.dtype(), v.shape().to_vec())
        })
        .collect();
    let views: std::collections::HashMap<_, _> =
        halved.iter().map(|(n, d, t, s)| (n.clone(), TensorView::new(*t, s.clone(), d).unwrap())).collect();
    std::fs::write(&shard, safetensors::serialize(views, None).unwrap()).unwrap();
    let loaded = MoeModel::open(&w.dir).unwrap().load_layer(0).unwrap();
    let original = &w.layers[0].1.gate_up;
    let i = original.n / 2;
    assert_eq!(loaded.gate_up.expert_scales[0], original.expert_scales[0], "the gate's (larger) scale is kept");
    for col in 0..original.k {
        for row in 0..original.n {
            let (was, now) = (original.value(0, row, col), loaded.gate_up.value(0, row, col));
            let expected = if row < i { was } else { was / 2.0 };
            assert!(
                (now - expected).abs() <= expected.abs() / 16.0 + 1e-12,
                "row {row} col {col}: {now} vs {expected}"
            );
        }
    }
    std::fs::remove_dir_all(&w.dir).ok();
}
