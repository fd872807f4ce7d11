//! FP4 expert weights in device memory, in the kernels' layout: owned ([`DeviceWeights`]) or
//! borrowed from buffers the caller owns ([`WeightsView`]).

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaSlice, CudaStream, CudaView, DeviceSlice};

use super::validate::{check_dims, weight_buffer_lengths};
use crate::error::{DriverContext, Error, Result};
use crate::fp4::QuantizedWeights;
use crate::Fp4Format;
use stagefit_kernels::packing::{order_chunks, pack_codes, unpack_codes};

/// What a set of expert weights holds: its format and `groups` experts of `[n × k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightsShape {
    /// The format.
    pub format: Fp4Format,
    /// Experts.
    pub groups: usize,
    /// Rows per expert (output columns of the GEMM).
    pub n: usize,
    /// Reduction length.
    pub k: usize,
}

/// FP4 expert weights in device memory, in the kernels' layout: codes packed by
/// [`pack_codes`] and their 16-byte chunks in strip order ([`order_chunks`]), scales as in
/// [`QuantizedWeights`].
pub struct DeviceWeights {
    shape: WeightsShape,
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
        check_lengths(format, (groups, n, k), [codes.len(), scales.len(), expert_scales.len()])?;
        let shape = WeightsShape { format, groups, n, k };
        Ok(DeviceWeights { shape, codes, scales, expert_scales, scales_checked: OnceLock::new() })
    }

    /// The weights as a [`WeightsView`], the form a [`super::GroupedGemmArgs`] takes (it shares
    /// these weights' record of a passed scale check).
    pub fn view(&self) -> WeightsView<'_> {
        WeightsView {
            shape: self.shape,
            codes: self.codes.as_view(),
            scales: self.scales.as_view(),
            expert_scales: self.expert_scales.as_view(),
            scales_checked: Some(&self.scales_checked),
        }
    }

    /// Copies the weights back to the host, codes unpacked to the natural order.
    pub fn download(&self, stream: &Arc<CudaStream>) -> Result<QuantizedWeights> {
        let mut device = stream.clone_dtoh(&self.codes).during("downloading weight codes")?;
        unpack_codes(&mut device);
        let mut codes = vec![0u8; device.len()];
        let WeightsShape { format, groups, n, k } = self.shape;
        order_chunks(&device, &mut codes, n, k, false);
        Ok(QuantizedWeights {
            format,
            groups,
            n,
            k,
            codes,
            scales: stream.clone_dtoh(&self.scales).during("downloading weight scales")?,
            expert_scales: stream.clone_dtoh(&self.expert_scales).during("downloading expert scales")?,
        })
    }

    /// Reads the block and expert scales back (once; later calls return at once) and checks
    /// that the kernels can use them (see [`crate::fp4::check_scales`]).
    pub fn check_scales(&self, stream: &Arc<CudaStream>) -> Result<()> {
        self.view().check_scales(stream)
    }

    /// The weights' format and shape.
    pub fn shape(&self) -> WeightsShape {
        self.shape
    }
}

/// FP4 expert weights in buffers the caller owns (an engine's or framework's allocations, or
/// parts of larger ones), in the kernels' layout as for [`DeviceWeights`]: nothing is copied.
/// A view made by [`WeightsView::new`] has its scales read back and checked on every call of a
/// [`super::GroupedGemm`] with input checks on; one made by [`DeviceWeights::view`] only once.
#[derive(Debug)]
pub struct WeightsView<'a> {
    shape: WeightsShape,
    pub(super) codes: CudaView<'a, u8>,
    pub(super) scales: CudaView<'a, u8>,
    pub(super) expert_scales: CudaView<'a, f32>,
    /// The owning [`DeviceWeights`]' record of a passed scale check, if any.
    scales_checked: Option<&'a OnceLock<()>>,
}

impl<'a> WeightsView<'a> {
    /// Borrows weights already in the kernels' layout (codes packed by [`pack_codes`] with their
    /// chunks in strip order by [`order_chunks`], or by [`super::GroupedGemm::pack_codes`] on
    /// the device); the buffer lengths are checked here.
    pub fn new(
        format: Fp4Format,
        (groups, n, k): (usize, usize, usize),
        codes: CudaView<'a, u8>,
        scales: CudaView<'a, u8>,
        expert_scales: CudaView<'a, f32>,
    ) -> Result<WeightsView<'a>> {
        check_lengths(format, (groups, n, k), [codes.len(), scales.len(), expert_scales.len()])?;
        let shape = WeightsShape { format, groups, n, k };
        Ok(WeightsView { shape, codes, scales, expert_scales, scales_checked: None })
    }

    /// Reads the block and expert scales back and checks that the kernels can use them (see
    /// [`crate::fp4::check_scales`]); a view of [`DeviceWeights`] does so once.
    pub fn check_scales(&self, stream: &Arc<CudaStream>) -> Result<()> {
        if self.scales_checked.is_some_and(|checked| checked.get().is_some()) {
            return Ok(());
        }
        let scales = stream.clone_dtoh(&self.scales).during("downloading weight scales")?;
        let expert_scales = stream.clone_dtoh(&self.expert_scales).during("downloading expert scales")?;
        crate::fp4::check_scales(self.shape.format, &scales, &expert_scales)?;
        if let Some(checked) = self.scales_checked {
            checked.get_or_init(|| ());
        }
        Ok(())
    }

    /// The weights' format and shape.
    pub fn shape(&self) -> WeightsShape {
        self.shape
    }
    /// The CUDA context of each buffer, named, for the launch's context check.
    pub(super) fn contexts(&self) -> [(&'static str, &Arc<cudarc::driver::CudaContext>); 3] {
        [
            ("codes", self.codes.stream().context()),
            ("scales", self.scales.stream().context()),
            ("expert_scales", self.expert_scales.stream().context()),
        ]
    }
}

/// Refuses weights of `format` and shape `(groups, n, k)` the kernels do not take, or whose
/// codes, scales and expert scales do not hold exactly what that shape needs.
fn check_lengths(
    format: Fp4Format,
    (groups, n, k): (usize, usize, usize),
    [codes, scales, expert_scales]: [usize; 3],
) -> Result<()> {
    check_dims(groups, n, k)?;
    let (codes_needed, scales_needed) = weight_buffer_lengths(format, groups, n, k)?;
    for (buffer, needed, actual) in
        [("codes", codes_needed, codes), ("scales", scales_needed, scales), ("expert_scales", groups, expert_scales)]
    {
        if actual != needed {
            return Err(Error::BufferTooSmall { buffer, needed, actual });
        }
    }
    Ok(())
}
