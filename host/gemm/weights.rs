//! FP4 expert weights in device memory, in the kernels' layout.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaSlice, CudaStream};

use super::validate::{check_dims, weight_buffer_lengths};
use crate::error::{DriverContext, Error, Result};
use crate::fp4::QuantizedWeights;
use crate::Fp4Format;
use stagefit_kernels::packing::{order_chunks, pack_codes, unpack_codes};

/// FP4 expert weights in device memory, in the kernels' layout: codes packed by
/// [`pack_codes`] and their 16-byte chunks in strip order ([`order_chunks`]), scales as in
/// [`QuantizedWeights`].
pub struct DeviceWeights {
    format: Fp4Format,
    groups: usize,
    n: usize,
    k: usize,
    pub(super) codes: CudaSlice<u8>,
    pub(super) scales: CudaSlice<u8>,
    pub(super) expert_scales: CudaSlice<f32>,
    /// Set once [`DeviceWeights::check_scales`] has passed (or the scales came from the host
    /// already checked).
    scales_checked: OnceLock<()>,
}

impl DeviceWeights {
    /// Copies quantized weights to the device, checking that they suit the kernels (shapes
    /// and every scale) and packing the codes into the kernels' bit layout.
    pub fn upload(stream: &Arc<CudaStream>, w: &QuantizedWeights) -> Result<DeviceWeights> {
        check_dims(w.groups, w.n, w.k)?;
        w.check_scales()?;
        let mut packed = vec![0u8; w.codes.len()];
        order_chunks(&w.codes, &mut packed, w.n, w.k, true);
        pack_codes(&mut packed);
        let weights = DeviceWeights::from_parts(
            w.format,
            (w.groups, w.n, w.k),
            stream.clone_htod(&packed).during("uploading weight codes")?,
            stream.clone_htod(&w.scales).during("uploading weight scales")?,
            stream.clone_htod(&w.expert_scales).during("uploading expert scales")?,
        )?;
        weights.scales_checked.get_or_init(|| ());
        Ok(weights)
    }

    /// Weights already in device memory, in the kernels' layout (codes packed by
    /// [`pack_codes`], chunks in strip order by [`order_chunks`]); the buffer lengths are
    /// checked here, the scales by [`DeviceWeights::check_scales`] (which a
    /// [`super::GroupedGemm`] with input checks runs once).
    pub fn from_parts(
        format: Fp4Format,
        (groups, n, k): (usize, usize, usize),
        codes: CudaSlice<u8>,
        scales: CudaSlice<u8>,
        expert_scales: CudaSlice<f32>,
    ) -> Result<DeviceWeights> {
        check_dims(groups, n, k)?;
        let (codes_needed, scales_needed) = weight_buffer_lengths(format, groups, n, k)?;
        for (buffer, needed, actual) in [
            ("codes", codes_needed, codes.len()),
            ("scales", scales_needed, scales.len()),
            ("expert_scales", groups, expert_scales.len()),
        ] {
            if actual != needed {
                return Err(Error::BufferTooSmall { buffer, needed, actual });
            }
        }
        Ok(DeviceWeights { format, groups, n, k, codes, scales, expert_scales, scales_checked: OnceLock::new() })
    }

    /// Copies the weights back to the host, codes unpacked to the natural order.
    pub fn download(&self, stream: &Arc<CudaStream>) -> Result<QuantizedWeights> {
        let mut device = stream.clone_dtoh(&self.codes).during("downloading weight codes")?;
        unpack_codes(&mut device);
        let mut codes = vec![0u8; device.len()];
        order_chunks(&device, &mut codes, self.n, self.k, false);
        Ok(QuantizedWeights {
            format: self.format,
            groups: self.groups,
            n: self.n,
            k: self.k,
            codes,
            scales: stream.clone_dtoh(&self.scales).during("downloading weight scales")?,
            expert_scales: stream.clone_dtoh(&self.expert_scales).during("downloading expert scales")?,
        })
    }

    /// Reads the block and expert scales back (once; later calls return at once) and checks
    /// that the kernels can use them (see [`crate::fp4::check_scales`]).
    pub fn check_scales(&self, stream: &Arc<CudaStream>) -> Result<()> {
        if self.scales_checked.get().is_some() {
            return Ok(());
        }
        let scales = stream.clone_dtoh(&self.scales).during("downloading weight scales")?;
        let expert_scales = stream.clone_dtoh(&self.expert_scales).during("downloading expert scales")?;
        crate::fp4::check_scales(self.format, &scales, &expert_scales)?;
        self.scales_checked.get_or_init(|| ());
        Ok(())
    }

    /// The weights' format.
    pub fn format(&self) -> Fp4Format {
        self.format
    }
    /// Experts.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// Rows per expert (output columns of the GEMM).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }
}
