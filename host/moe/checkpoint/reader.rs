//! Typed reads of one layer's tensors: dtype and shape checked, values the kernels cannot use
//! refused, every refusal naming the file and the tensor.

use half::{bf16, f16};
use safetensors::tensor::Dtype;

use crate::error::{Error, Result};
use crate::moe::checkpoint::tensors::{checkpoint_error, Tensor, TensorStore};
use crate::Fp4Format;

/// The tensors named `{prefix}{short}` of one checkpoint.
pub(crate) struct LayerReader<'a> {
    store: &'a TensorStore,
    prefix: String,
}

/// The float dtypes dense tensors may have.
const FLOATS: [Dtype; 3] = [Dtype::BF16, Dtype::F16, Dtype::F32];

impl<'a> LayerReader<'a> {
    pub(crate) fn new(store: &'a TensorStore, prefix: String) -> LayerReader<'a> {
        LayerReader { store, prefix }
    }

    /// The full name of `short`.
    pub(crate) fn name(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    /// Whether the checkpoint lists `short`.
    pub(crate) fn has(&self, short: &str) -> bool {
        self.store.contains(&self.name(short))
    }

    /// A refusal of `short`, naming the file that holds it (or, where none does, the file
    /// that lists the tensors).
    pub(crate) fn refuse(&self, short: &str, problem: impl Into<String>) -> Error {
        let name = self.name(short);
        checkpoint_error(self.store.file_of(&name), &name, problem)
    }

    /// The tensor, if present, after checking that its dtype is one of `dtypes` and its shape
    /// one of `shapes`.
    pub(crate) fn view(&self, short: &str, dtypes: &[Dtype], shapes: &[&[usize]]) -> Result<Option<Tensor<'a>>> {
        let name = self.name(short);
        let Some(tensor) = self.store.get(&name)? else { return Ok(None) };
        if !dtypes.contains(&tensor.dtype) {
            return Err(checkpoint_error(
                tensor.file,
                &name,
                format!("dtype {:?}, expected one of {dtypes:?}", tensor.dtype),
            ));
        }
        if !shapes.contains(&tensor.shape) {
            let expected = shapes.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" or ");
            return Err(checkpoint_error(tensor.file, &name, format!("shape {:?}, expected {expected}", tensor.shape)));
        }
        Ok(Some(tensor))
    }

    /// A tensor of bytes (`dtype` U8, or F8_E4M3 for e4m3 scales) of `shape`.
    pub(crate) fn bytes(&self, short: &str, dtypes: &[Dtype], shape: &[usize]) -> Result<Option<Vec<u8>>> {
        Ok(self.view(short, dtypes, &[shape])?.map(|t| t.data.to_vec()))
    }

    /// [`LayerReader::bytes`], refusing a missing tensor.
    pub(crate) fn required_bytes(&self, short: &str, dtypes: &[Dtype], shape: &[usize]) -> Result<Vec<u8>> {
        self.bytes(short, dtypes, shape)?.ok_or_else(|| self.refuse(short, "missing"))
    }

    /// A bf16, f16 or f32 tensor of `shape` as f32s, every value finite (refused naming the
    /// first that is not).
    pub(crate) fn floats(&self, short: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        self.floats_of_shapes(short, &[shape])
    }

    /// [`LayerReader::floats`] for a tensor of any of `shapes`.
    fn floats_of_shapes(&self, short: &str, shapes: &[&[usize]]) -> Result<Option<Vec<f32>>> {
        let Some(tensor) = self.view(short, &FLOATS, shapes)? else { return Ok(None) };
        let data = tensor.data;
        let values: Vec<f32> = match tensor.dtype {
            Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            _ => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        };
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(checkpoint_error(
                tensor.file,
                &self.name(short),
                format!("element {index} is {}: values must be finite", values[index]),
            ));
        }
        Ok(Some(values))
    }

    /// A required scalar (shape `[]` or `[1]`) that is finite and non-negative.
    pub(crate) fn scale(&self, short: &str) -> Result<f32> {
        let values = self.floats_of_shapes(short, &[&[], &[1]])?.ok_or_else(|| self.refuse(short, "missing"))?;
        match values[0] {
            s if s >= 0.0 => Ok(s),
            s => Err(self.refuse(short, format!("{s}: a scale must be non-negative"))),
        }
    }

    /// Refuses the first block-scale byte of `format` that the kernels cannot use; the index
    /// is its position in the tensor as stored.
    pub(crate) fn check_scale_bytes(&self, short: &str, format: Fp4Format, scales: &[u8]) -> Result<()> {
        match scales.iter().enumerate().find_map(|(i, &b)| crate::fp4::scale_byte_problem(format, b).map(|r| (i, r))) {
            None => Ok(()),
            Some((index, requirement)) => {
                Err(self.refuse(short, format!("element {index} is {:#04x}: it must be {requirement}", scales[index])))
            }
        }
    }
}
