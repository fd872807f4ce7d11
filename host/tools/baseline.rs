//! The cuBLAS bf16 baseline that `stagefit bench` compares with: the dense bf16 rate of one
//! 8192³ GEMM, and one bf16 GEMM per non-empty expert captured in a CUDA graph. Built with the
//! `cublas` feature (on by default); the library itself never uses cuBLAS, so a dependent that
//! turns default features off links no cuBLAS code. Without the feature the baseline has no
//! values and [`available`] is false, and the bench runs without the baseline.

#[cfg(feature = "cublas")]
pub use with_cublas::available;
#[cfg(feature = "cublas")]
pub(crate) use with_cublas::Baseline;
#[cfg(not(feature = "cublas"))]
pub use without_cublas::available;
#[cfg(not(feature = "cublas"))]
pub(crate) use without_cublas::Baseline;

#[cfg(feature = "cublas")]
mod with_cublas {
    use std::sync::Arc;

    use cudarc::cublas::sys::cublasOperation_t;
    use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
    use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
    use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr};
    use half::bf16;

    use crate::error::{DriverContext, Error, Result};
    use crate::moe::kernels::MoeKernels;
    use crate::tools::problem::{fill_bf16, median_us};

    /// cuBLAS's workspace: its recommendation for Hopper.
    const WORKSPACE_BYTES: usize = 32 << 20;

    /// Whether libcublas can be loaded (true where it is linked: without the
    /// `dynamic-loading` feature).
    pub fn available() -> bool {
        #[cfg(feature = "dynamic-loading")]
        // SAFETY: only tries to open the library.
        let present = unsafe { cudarc::cublas::sys::is_culib_present() };
        #[cfg(not(feature = "dynamic-loading"))]
        let present = true;
        present
    }

    /// A cuBLAS handle on one stream, with its own workspace (cuBLAS may not allocate while a
    /// graph is captured).
    pub(crate) struct Baseline {
        blas: CudaBlas,
        /// Declared after `blas`, so dropped after it.
        _workspace: CudaSlice<u8>,
    }

    fn cublas_error(e: cudarc::cublas::result::CublasError) -> Error {
        Error::Baseline(format!("{e:?}"))
    }

    /// Row-major `C[m×n] = A[m×k] · W[n×k]ᵀ` as a column-major cuBLAS call `Cᵀ = W · Aᵀ`
    /// (`gemm(cfg, W, A, C)`).
    fn gemm_config(m: usize, n: usize, k: usize) -> GemmConfig<bf16> {
        GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: bf16::ONE,
            lda: k as i32,
            ldb: k as i32,
            beta: bf16::ZERO,
            ldc: n as i32,
        }
    }

    impl Baseline {
        /// A handle on `stream`.
        pub(crate) fn new(stream: &Arc<CudaStream>) -> Result<Baseline> {
            let workspace = stream.alloc_zeros::<u8>(WORKSPACE_BYTES).during("allocating the cuBLAS workspace")?;
            let blas = CudaBlas::new(stream.clone()).map_err(cublas_error)?;
            let (ptr, sync) = workspace.device_ptr(stream);
            // SAFETY: `workspace` is a live allocation of WORKSPACE_BYTES on this context that
            // the returned value keeps alive, and drops after `blas`.
            unsafe { cudarc::cublas::sys::cublasSetWorkspace_v2(*blas.handle(), ptr as *mut _, WORKSPACE_BYTES) }
                .result()
                .map_err(cublas_error)?;
            drop(sync);
            Ok(Baseline { blas, _workspace: workspace })
        }

        /// The dense bf16 rate of an 8192³ GEMM on random data, TFLOP/s.
        pub(crate) fn bf16_tflop_s(
            &self,
            ctx: &Arc<CudaContext>,
            stream: &Arc<CudaStream>,
            kernels: &MoeKernels,
            reps: usize,
        ) -> Result<f64> {
            let n = 8192;
            let a = fill_bf16(kernels, stream, n * n, 1)?;
            let b = fill_bf16(kernels, stream, n * n, 2)?;
            let mut c = stream.alloc_zeros::<bf16>(n * n).during("allocating")?;
            let cfg = gemm_config(n, n, n);
            let us = median_us(ctx, stream, reps, |_| {
                // SAFETY: a, b, c hold n·n elements each, as the config's shapes need.
                unsafe { self.blas.gemm(cfg, &b, &a, &mut c) }.map_err(cublas_error)
            })?;
            Ok(2.0 * (n as f64).powi(3) / us / 1e6)
        }

        /// One bf16 GEMM per non-empty expert (`w`: `[experts, n, k]`, `a`: the rows of all
        /// experts by `offsets`), captured into a graph and timed by replays, microseconds.
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn grouped_us(
            &self,
            ctx: &Arc<CudaContext>,
            stream: &Arc<CudaStream>,
            w: &CudaSlice<bf16>,
            a: &CudaSlice<bf16>,
            out: &mut CudaSlice<bf16>,
            offsets: &[u32],
            (n, k): (usize, usize),
            reps: usize,
        ) -> Result<f64> {
            stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED).during("capturing")?;
            for (e, pair) in offsets.windows(2).enumerate() {
                let (lo, hi) = (pair[0] as usize, pair[1] as usize);
                if hi == lo {
                    continue;
                }
                let cfg = gemm_config(hi - lo, n, k);
                let w_e = w.slice(e * n * k..(e + 1) * n * k);
                let a_e = a.slice(lo * k..hi * k);
                let mut c_e = out.slice_mut(lo * n..hi * n);
                // SAFETY: the views hold exactly the elements the config's shapes address.
                let launched = unsafe { self.blas.gemm(cfg, &w_e, &a_e, &mut c_e) };
                if let Err(e) = launched {
                    stream.end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH).ok();
                    return Err(cublas_error(e));
                }
            }
            let graph = stream
                .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)
                .during("instantiating the graph")?;
            match graph {
                Some(graph) => median_us(ctx, stream, reps, |_| graph.launch().during("replaying the graph")),
                None => Ok(0.0),
            }
        }
    }
}

#[cfg(not(feature = "cublas"))]
mod without_cublas {
    use std::sync::Arc;

    use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
    use half::bf16;

    use crate::error::{Error, Result};
    use crate::moe::kernels::MoeKernels;

    /// Always false: built without the `cublas` feature.
    pub fn available() -> bool {
        false
    }

    /// No values: built without the `cublas` feature, [`Baseline::new`] refuses.
    pub(crate) enum Baseline {}

    impl Baseline {
        /// Refused: built without the `cublas` feature.
        pub(crate) fn new(_stream: &Arc<CudaStream>) -> Result<Baseline> {
            Err(Error::Baseline("stagefit was built without the `cublas` feature".into()))
        }

        /// Unreachable: there is no value to call it on.
        pub(crate) fn bf16_tflop_s(
            &self,
            _ctx: &Arc<CudaContext>,
            _stream: &Arc<CudaStream>,
            _kernels: &MoeKernels,
            _reps: usize,
        ) -> Result<f64> {
            match *self {}
        }

        /// Unreachable: there is no value to call it on.
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn grouped_us(
            &self,
            _ctx: &Arc<CudaContext>,
            _stream: &Arc<CudaStream>,
            _w: &CudaSlice<bf16>,
            _a: &CudaSlice<bf16>,
            _out: &mut CudaSlice<bf16>,
            _offsets: &[u32],
            _nk: (usize, usize),
            _reps: usize,
        ) -> Result<f64> {
            match *self {}
        }
    }
}
