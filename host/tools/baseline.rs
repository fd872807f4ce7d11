//! The cuBLAS bf16 baselines that `stagefit bench` compares with: the dense bf16 rate of one
//! 8192³ GEMM, one bf16 GEMM per non-empty expert captured in a CUDA graph, and the same GEMMs in
//! one grouped call (`cublasGemmGroupedBatchedEx`: one call for all experts, as torch's
//! `_grouped_mm` is, without libtorch). Built with the `cublas` feature (on by default); the
//! library itself never uses cuBLAS, so a dependent that
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

/// One grouped problem in bf16 for the baselines: `w` `[experts, n, k]` (`shape` is `(n, k)`),
/// `a` the rows of all experts by `offsets`, written to `out`. (Without the `cublas` feature
/// nothing reads it: the baseline cannot be made.)
#[cfg_attr(not(feature = "cublas"), allow(dead_code))]
pub(crate) struct Bf16Problem<'a> {
    pub(crate) w: &'a cudarc::driver::CudaSlice<half::bf16>,
    pub(crate) a: &'a cudarc::driver::CudaSlice<half::bf16>,
    pub(crate) out: &'a mut cudarc::driver::CudaSlice<half::bf16>,
    pub(crate) offsets: &'a [u32],
    pub(crate) shape: (usize, usize),
}

#[cfg(feature = "cublas")]
mod with_cublas {
    use std::sync::Arc;

    use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmGroupedBatchedEx, cublasOperation_t, cudaDataType_t};
    use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
    use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
    use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
    use half::bf16;

    use super::Bf16Problem;
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

        /// The bf16 GEMMs of `problem`, one per non-empty expert, timed two ways,
        /// microseconds: one cuBLAS GEMM per expert replayed from a graph, and all of them in
        /// one grouped call.
        pub(crate) fn expert_gemms_us(
            &self,
            ctx: &Arc<CudaContext>,
            stream: &Arc<CudaStream>,
            problem: &mut Bf16Problem<'_>,
            reps: usize,
        ) -> Result<(f64, f64)> {
            Ok((self.looped_us(ctx, stream, problem, reps)?, self.grouped_call_us(ctx, stream, problem, reps)?))
        }

        /// One GEMM per non-empty expert, captured into a graph and timed by replays.
        fn looped_us(
            &self,
            ctx: &Arc<CudaContext>,
            stream: &Arc<CudaStream>,
            problem: &mut Bf16Problem<'_>,
            reps: usize,
        ) -> Result<f64> {
            let Bf16Problem { w, a, ref mut out, offsets, shape: (n, k) } = *problem;
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

        /// The same GEMMs in one `cublasGemmGroupedBatchedEx` call (each non-empty expert a
        /// group of one problem: the experts' row counts differ), timed as single calls with
        /// events.
        fn grouped_call_us(
            &self,
            ctx: &Arc<CudaContext>,
            stream: &Arc<CudaStream>,
            problem: &mut Bf16Problem<'_>,
            reps: usize,
        ) -> Result<f64> {
            let Bf16Problem { w, a, ref mut out, offsets, shape: (n, k) } = *problem;
            let experts: Vec<(usize, usize, usize)> = offsets
                .windows(2)
                .enumerate()
                .filter(|(_, pair)| pair[1] > pair[0])
                .map(|(e, pair)| (e, pair[0] as usize, pair[1] as usize))
                .collect();
            if experts.is_empty() {
                return Ok(0.0);
            }
            let element = std::mem::size_of::<bf16>() as u64;
            let (w_base, _w_sync) = w.device_ptr(stream);
            let (a_base, _a_sync) = a.device_ptr(stream);
            let (c_base, _c_sync) = out.device_ptr_mut(stream);
            // Device arrays of the problems' matrices (the order of `gemm_config`: W is cuBLAS's A).
            let pointers = |f: &dyn Fn(&(usize, usize, usize)) -> u64| -> Result<CudaSlice<u64>> {
                let host: Vec<u64> = experts.iter().map(f).collect();
                stream.clone_htod(&host).during("uploading the baseline's pointers")
            };
            let w_ptrs = pointers(&|&(e, _, _)| w_base + (e * n * k) as u64 * element)?;
            let a_ptrs = pointers(&|&(_, lo, _)| a_base + (lo * k) as u64 * element)?;
            let c_ptrs = pointers(&|&(_, lo, _)| c_base + (lo * n) as u64 * element)?;
            let (w_array, _wa_sync) = w_ptrs.device_ptr(stream);
            let (a_array, _aa_sync) = a_ptrs.device_ptr(stream);
            let (c_array, _ca_sync) = c_ptrs.device_ptr(stream);
            let count = experts.len();
            let per_problem = |v: i32| vec![v; count];
            let (transa, transb) =
                (vec![cublasOperation_t::CUBLAS_OP_T; count], vec![cublasOperation_t::CUBLAS_OP_N; count]);
            // Every problem: cuBLAS's m = N (also ldc), k = K (also lda and ldb), n = its rows.
            let (n_each, k_each) = (per_problem(n as i32), per_problem(k as i32));
            let rows: Vec<i32> = experts.iter().map(|&(_, lo, hi)| (hi - lo) as i32).collect();
            let (alpha, beta, group_size) = (vec![1.0f32; count], vec![0.0f32; count], per_problem(1));
            median_us(ctx, stream, reps, |_| {
                // SAFETY: every host array holds `count` entries and the three device arrays
                // `count` pointers, each to a matrix inside `w`, `a` or `out` of the shape its
                // entries give (rows `lo..hi` of `a` and `out`, expert `e` of `w`), whose guards
                // are held; alpha and beta are f32 as the 32F compute type needs.
                unsafe {
                    cublasGemmGroupedBatchedEx(
                        *self.blas.handle(),
                        transa.as_ptr(),
                        transb.as_ptr(),
                        n_each.as_ptr(),
                        rows.as_ptr(),
                        k_each.as_ptr(),
                        alpha.as_ptr().cast(),
                        w_array as *const *const std::ffi::c_void,
                        cudaDataType_t::CUDA_R_16BF,
                        k_each.as_ptr(),
                        a_array as *const *const std::ffi::c_void,
                        cudaDataType_t::CUDA_R_16BF,
                        k_each.as_ptr(),
                        beta.as_ptr().cast(),
                        c_array as *const *mut std::ffi::c_void,
                        cudaDataType_t::CUDA_R_16BF,
                        n_each.as_ptr(),
                        count as i32,
                        group_size.as_ptr(),
                        cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    )
                }
                .result()
                .map_err(cublas_error)
            })
        }
    }
}

#[cfg(not(feature = "cublas"))]
mod without_cublas {
    use std::sync::Arc;

    use cudarc::driver::{CudaContext, CudaStream};

    use super::Bf16Problem;
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
        pub(crate) fn expert_gemms_us(
            &self,
            _ctx: &Arc<CudaContext>,
            _stream: &Arc<CudaStream>,
            _problem: &mut Bf16Problem<'_>,
            _reps: usize,
        ) -> Result<(f64, f64)> {
            match *self {}
        }
    }
}
