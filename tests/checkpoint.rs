//! MoE-layer weights through safetensors files: both quantized layouts round-trip exactly,
//! dense weights are quantized on load, and malformed files give typed errors naming the
//! tensor.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::random_moe_weights;
use safetensors::tensor::{Dtype, TensorView};
use stagefit::fp4::quantize;
use stagefit::moe::checkpoint::{write_layer, Checkpoint};
use stagefit::moe::{Activation, GateUpLayout, MoeConfig, GPT_OSS};
use stagefit::{Error, Fp4Format};

fn config(format: Fp4Format) -> MoeConfig {
    MoeConfig {
        experts: 4,
        top_k: 2,
        hidden: 64,
        intermediate: 32,
        renormalize: true,
        gate_up_layout: GateUpLayout::Interleaved,
        activation: if format == Fp4Format::Mxfp4 { GPT_OSS } else { Activation::SwiGlu },
        format,
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("stagefit-{}-{name}.safetensors", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// All tensors of `bytes` as owned (name, dtype, shape, data).
fn tensors(bytes: &[u8]) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect()
}

fn serialize(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: HashMap<_, _> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn quantized_layouts_round_trip_exactly() {
    for format in Fp4Format::ALL {
        let config = config(format);
        let weights = random_moe_weights(&config, 3);
        let path = temp_file(&format!("roundtrip-{}", format.name()), &write_layer(7, &weights).unwrap());
        let ckpt = Checkpoint::open(&path).unwrap();
        assert_eq!(ckpt.layers(), vec![7]);
        assert_eq!(ckpt.load_layer(7, &config).unwrap(), weights, "{format:?}");
        std::fs::remove_file(path).ok();
    }
}

#[test]
fn the_gpt_oss_layout_has_the_documented_names_and_shapes() {
    let config = config(Fp4Format::Mxfp4);
    let all = tensors(&write_layer(0, &random_moe_weights(&config, 4)).unwrap());
    let shape = |name: &str| all.iter().find(|t| t.0 == name).map(|t| t.2.clone());
    let p = "model.layers.0.mlp.experts.";
    assert_eq!(shape(&format!("{p}gate_up_proj_blocks")), Some(vec![4, 64, 2, 16]));
    assert_eq!(shape(&format!("{p}gate_up_proj_scales")), Some(vec![4, 64, 2]));
    assert_eq!(shape(&format!("{p}down_proj_blocks")), Some(vec![4, 64, 1, 16]));
    assert_eq!(shape(&format!("{p}down_proj_scales")), Some(vec![4, 64, 1]));
    assert_eq!(shape("model.layers.0.mlp.router.weight"), Some(vec![4, 64]));
}

#[test]
fn dense_weights_are_quantized_on_load() {
    let config = config(Fp4Format::Nvfp4);
    let reference = random_moe_weights(&config, 5);
    let mut all: Vec<_> =
        tensors(&write_layer(0, &reference).unwrap()).into_iter().filter(|t| !t.0.contains("_nvfp4")).collect();
    let (e, h, i) = (config.experts, config.hidden, config.intermediate);
    let gate_up = reference.gate_up.dequantize();
    let down = reference.down.dequantize();
    let bf16_bytes = |v: &[f32]| v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect::<Vec<u8>>();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    all.push(("model.layers.0.mlp.experts.gate_up_proj".into(), Dtype::BF16, vec![e, 2 * i, h], bf16_bytes(&gate_up)));
    all.push(("model.layers.0.mlp.experts.down_proj".into(), Dtype::F32, vec![e, h, i], f32_bytes(&down)));
    let path = temp_file("dense", &serialize(&all));
    let loaded = Checkpoint::open(&path).unwrap().load_layer(0, &config).unwrap();
    let rounded: Vec<f32> = gate_up.iter().map(|x| half::bf16::from_f32(*x).to_f32()).collect();
    assert_eq!(loaded.gate_up, quantize(Fp4Format::Nvfp4, e, 2 * i, h, &rounded).unwrap());
    assert_eq!(loaded.down, quantize(Fp4Format::Nvfp4, e, h, i, &down).unwrap());
    std::fs::remove_file(path).ok();
}

/// Loads layer 0 of `tensors` with `config` and returns the error.
fn load_error(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)], config: &MoeConfig) -> Error {
    let path = temp_file("malformed", &serialize(tensors));
    let err =
        Checkpoint::open(&path).and_then(|c| c.load_layer(0, config)).expect_err("a malformed file must not load");
    std::fs::remove_file(path).ok();
    err
}

fn expect_tensor_error(err: Error, tensor: &str, words: &str) {
    match err {
        Error::Checkpoint { tensor: t, problem, .. } => {
            assert_eq!(t, tensor);
            assert!(problem.contains(words), "{problem}");
        }
        other => panic!("expected a checkpoint error for {tensor}, got {other}"),
    }
}

#[test]
fn malformed_files_give_typed_errors_naming_the_tensor() {
    let config = config(Fp4Format::Mxfp4);
    let good = tensors(&write_layer(0, &random_moe_weights(&config, 6)).unwrap());
    let scales = "model.layers.0.mlp.experts.gate_up_proj_scales";

    let missing: Vec<_> = good.iter().filter(|t| t.0 != scales).cloned().collect();
    expect_tensor_error(load_error(&missing, &config), scales, "missing");

    let mut reshaped = good.clone();
    let t = reshaped.iter_mut().find(|t| t.0 == scales).unwrap();
    t.2 = vec![4, 32, 4];
    expect_tensor_error(load_error(&reshaped, &config), scales, "shape [4, 32, 4]");

    let mut retyped = good.clone();
    let router = "model.layers.0.mlp.router.weight";
    let t = retyped.iter_mut().find(|t| t.0 == router).unwrap();
    t.1 = Dtype::I16;
    expect_tensor_error(load_error(&retyped, &config), router, "dtype I16");

    let nvfp4 = MoeConfig { format: Fp4Format::Nvfp4, ..config.clone() };
    expect_tensor_error(load_error(&good, &nvfp4), "model.layers.0.mlp.experts.gate_up_proj", "Mxfp4");

    let no_experts: Vec<_> = good.iter().filter(|t| !t.0.contains("down_proj")).cloned().collect();
    expect_tensor_error(load_error(&no_experts, &config), "model.layers.0.mlp.experts.down_proj", "missing");

    let bytes = serialize(&good);
    let path = temp_file("truncated", &bytes[..bytes.len() - 100]);
    match Checkpoint::open(&path) {
        Err(Error::Checkpoint { tensor, problem, .. }) => {
            assert_eq!(tensor, "<file>");
            assert!(problem.contains("not a valid safetensors file"), "{problem}");
        }
        other => panic!("a truncated file must not open: {:?}", other.map(|_| ())),
    }
    std::fs::remove_file(path).ok();
}

/// `good` with tensor `name`'s bytes changed by `edit`.
fn edited(
    good: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    name: &str,
    edit: impl Fn(&mut Vec<u8>),
) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let mut all = good.to_vec();
    edit(&mut all.iter_mut().find(|t| t.0 == name).unwrap_or_else(|| panic!("no tensor {name}")).3);
    all
}

#[test]
fn values_the_kernels_cannot_use_are_refused_at_load() {
    let p = "model.layers.0.mlp.";
    let f32_at = |index: usize, value: f32| {
        move |b: &mut Vec<u8>| b[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes())
    };

    // MXFP4: an e8m0 code above 160, at index 5 of the file's [E, n, K/32] layout.
    let mx = config(Fp4Format::Mxfp4);
    let good = tensors(&write_layer(0, &random_moe_weights(&mx, 8)).unwrap());
    let scales = format!("{p}experts.down_proj_scales");
    let bad = edited(&good, &scales, |b| b[5] = 200);
    expect_tensor_error(load_error(&bad, &mx), &scales, "element 5 is 0xc8");
    // Non-finite router weights and biases, each named with its first bad element.
    for (tensor, index, value) in [
        (format!("{p}router.bias"), 2, f32::NAN),
        (format!("{p}experts.gate_up_proj_bias"), 9, f32::INFINITY),
        (format!("{p}experts.down_proj_bias"), 0, f32::NEG_INFINITY),
    ] {
        let bad = edited(&good, &tensor, f32_at(index, value));
        expect_tensor_error(load_error(&bad, &mx), &tensor, &format!("element {index} is {value}"));
    }
    let router = format!("{p}router.weight");
    let bad = edited(&good, &router, |b| b[6..8].copy_from_slice(&half::bf16::NAN.to_le_bytes()));
    expect_tensor_error(load_error(&bad, &mx), &router, "element 3 is NaN");

    // NVFP4: a negative e4m3 block scale, a NaN one, a NaN and a negative expert scale.
    let nv = config(Fp4Format::Nvfp4);
    let good = tensors(&write_layer(0, &random_moe_weights(&nv, 9)).unwrap());
    let scales = format!("{p}experts.gate_up_proj_nvfp4_scales");
    expect_tensor_error(load_error(&edited(&good, &scales, |b| b[11] = 0xB8), &nv), &scales, "element 11 is 0xb8");
    expect_tensor_error(load_error(&edited(&good, &scales, |b| b[0] = 0x7F), &nv), &scales, "element 0 is 0x7f");
    let expert = format!("{p}experts.down_proj_nvfp4_expert_scale");
    for (index, value) in [(1, f32::NAN), (3, -2.0)] {
        let bad = edited(&good, &expert, f32_at(index, value));
        expect_tensor_error(load_error(&bad, &nv), &expert, &format!("element {index} is {value}"));
    }
}

#[test]
fn non_finite_dense_weights_are_refused_naming_the_tensor() {
    let config = config(Fp4Format::Nvfp4);
    let (e, h, i) = (config.experts, config.hidden, config.intermediate);
    let mut all: Vec<_> = tensors(&write_layer(0, &random_moe_weights(&config, 10)).unwrap())
        .into_iter()
        .filter(|t| !t.0.contains("gate_up_proj_nvfp4"))
        .collect();
    let mut dense = vec![0.25f32; e * 2 * i * h];
    dense[77] = f32::NAN;
    let name = "model.layers.0.mlp.experts.gate_up_proj".to_string();
    all.push((name.clone(), Dtype::F32, vec![e, 2 * i, h], dense.iter().flat_map(|x| x.to_le_bytes()).collect()));
    expect_tensor_error(load_error(&all, &config), &name, "element 77 is NaN");
}

#[test]
fn fifos_and_devices_are_refused_without_reading() {
    let fifo = std::env::temp_dir().join(format!("stagefit-fifo-{}", std::process::id()));
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
    let mut paths = vec![PathBuf::from("/dev/zero")];
    if made {
        paths.push(fifo.clone());
    }
    for path in &paths {
        match Checkpoint::open(path) {
            Err(Error::Checkpoint { tensor, problem, .. }) => {
                assert_eq!(tensor, "<file>");
                assert!(problem.contains("not a regular file"), "{problem}");
            }
            other => panic!("{}: expected a checkpoint error, got {:?}", path.display(), other.map(|_| ())),
        }
        match stagefit::tuned::TuneCache::load(path) {
            Err(Error::TuneCache { problem, .. }) => assert!(problem.contains("not a regular file"), "{problem}"),
            other => panic!("{}: expected a tune-cache error, got {:?}", path.display(), other.map(|_| ())),
        }
    }
    std::fs::remove_file(&fifo).ok();
}

#[test]
fn mutated_files_never_panic() {
    // Random byte mutations of a valid file: each opens and loads, or gives a typed error.
    let config = config(Fp4Format::Mxfp4);
    let good = write_layer(0, &random_moe_weights(&config, 11)).unwrap();
    let header = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 8;
    let mut rng = stagefit::rng::SplitMix64::new(12);
    let path = temp_file("mutated", &good);
    let (mut loaded, mut refused) = (0, 0);
    for round in 0..400 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            // Half the mutations hit the JSON header, where the structure lives.
            let at = if round % 2 == 0 { rng.below(header) } else { rng.below(bytes.len()) };
            bytes[at] = rng.below(256) as u8;
        }
        if rng.below(8) == 0 {
            bytes.truncate(rng.below(bytes.len()));
        }
        std::fs::write(&path, &bytes).unwrap();
        match Checkpoint::open(&path).and_then(|c| c.load_layer(0, &config)) {
            Ok(_) => loaded += 1,
            Err(Error::Checkpoint { .. } | Error::Scale { .. } | Error::BufferTooSmall { .. }) => refused += 1,
            Err(other) => panic!("round {round}: unexpected error {other}"),
        }
    }
    std::fs::remove_file(path).ok();
    assert!(loaded > 0 && refused > 0, "{loaded} loaded, {refused} refused");
}
