//! stagefit's grouped GEMM as a candle [`CustomOp2`]: `c = op(a, offsets)` on candle CUDA
//! tensors, with the FP4 expert weights held by the op. Candle's own CUDA context and stream
//! run it; nothing is copied between the two crates. Checked against stagefit's CPU reference.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use half::bf16;
use stagefit::fp4::quantize;
use stagefit::gemm::offsets_from_sizes;
use stagefit::reference::{compare, grouped_gemm};
use stagefit::rng::SplitMix64;
use stagefit::{DeviceWeights, Fp4Format, GroupedGemm, GroupedGemmArgs, TacticChoice};

/// `C_g = A_g · dequant(W_g)ᵀ` for the experts' weights it holds, `offsets[g]..offsets[g+1]`
/// being group `g`'s rows of `a` (bf16 `[rows, k]`) and of the result (bf16 `[rows, n]`).
struct GroupedGemmOp {
    gemm: GroupedGemm,
    weights: DeviceWeights,
}

fn candle_error(e: stagefit::Error) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

impl CustomOp2 for GroupedGemmOp {
    fn name(&self) -> &'static str {
        "stagefit-grouped-gemm"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("stagefit's grouped GEMM runs on CUDA devices only")
    }

    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        a_layout: &Layout,
        offsets: &CudaStorage,
        offsets_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (rows, k) = a_layout.shape().dims2()?;
        let shape = self.weights.shape();
        if k != shape.k {
            candle_core::bail!("a has {k} columns but the weights take {}", shape.k);
        }
        let (Some((a_start, a_end)), Some((o_start, o_end))) =
            (a_layout.contiguous_offsets(), offsets_layout.contiguous_offsets())
        else {
            candle_core::bail!("a and offsets must be contiguous");
        };
        let device = a.device().clone();
        let stream = device.cuda_stream();
        let n = shape.n;
        let mut c = device.alloc_zeros::<bf16>(rows * n)?;
        let args = GroupedGemmArgs {
            rows,
            a: a.as_cuda_slice::<bf16>()?.slice(a_start..a_end),
            offsets: offsets.as_cuda_slice::<u32>()?.slice(o_start..o_end),
            weights: self.weights.view(),
            c: c.as_view_mut(),
        };
        self.gemm.run(&stream, args, TacticChoice::Auto).map_err(candle_error)?;
        Ok((CudaStorage::wrap_cuda_slice(c, device), Shape::from((rows, n))))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::new_cuda(0)?;
    let Device::Cuda(cuda) = &device else { unreachable!("new_cuda gives a CUDA device") };
    let stream = cuda.cuda_stream();
    let gemm = GroupedGemm::new(stream.context(), None)?;
    println!("candle CUDA device 0: {}, stagefit limit {} bytes", gemm.device().name, gemm.limit().bytes());

    let (n, k, sizes) = (256, 512, [3usize, 9, 0, 4]);
    let mut rng = SplitMix64::new(3);
    let offsets = offsets_from_sizes(&sizes)?;
    let rows = offsets[sizes.len()] as usize;
    let a_host = rng.vec(rows * k, -1.0, 1.0);
    let w = quantize(Fp4Format::Nvfp4, sizes.len(), n, k, &rng.vec(sizes.len() * n * k, -0.05, 0.05))?;
    let a_bf16: Vec<f32> = a_host.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
    let reference = grouped_gemm(&a_bf16, &w.dequantize(), &offsets, n, k);

    let op = GroupedGemmOp { weights: DeviceWeights::upload(&stream, &w)?, gemm };
    let a = Tensor::from_vec(a_host, (rows, k), &device)?.to_dtype(DType::BF16)?;
    let offsets = Tensor::from_vec(offsets, sizes.len() + 1, &device)?;
    let c = a.apply_op2(&offsets, op)?;
    let result: Vec<bf16> = c.flatten_all()?.to_vec1()?;
    let cmp = compare(&result, &reference);
    println!("candle tensor {:?} {:?} from the grouped GEMM: {cmp:?}", c.shape(), c.dtype());
    if !cmp.acceptable() {
        return Err("the result does not match the reference".into());
    }
    println!("ok");
    Ok(())
}
