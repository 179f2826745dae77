// Torch bindings of the CUDA kernels in csrc/cuda: the only CUDA-side C++ that sees at::Tensor.
//
// Checks shapes, dtypes and devices (errors name the expected and the given shape), fills the
// kernels' params struct and launches on the stream the caller passes as an integer
// (torch.cuda.current_stream(device).cuda_stream). Taking the stream from Python keeps this file free
// of ATen/cuda headers, so g++ can compile it against a CPU-only torch plus the CUDA toolkit's
// cuda_runtime_api.h (tests/test_cuda_compile.py does).
//
// Ops (TORCH_LIBRARY_FRAGMENT: the CPU extension registers other ops in the same namespace):
//   umsnet_fast::lsr_block_cuda(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps, stream,
//                               tensor_cores) -> out
#include <torch/extension.h>

#include <cuda_runtime_api.h>

#include "cuda/lsr_block.h"

namespace {

using umsnet_fast::DType;

DType kernel_dtype(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    default:
      TORCH_CHECK_TYPE(false, "lsr_block_cuda: x must be float32, float16 or bfloat16, got ", x.scalar_type());
  }
}

// A weight tensor: this shape, x's dtype and device, contiguous.
void check_weight(const at::Tensor& t, const char* name, std::initializer_list<int64_t> shape, const at::Tensor& x) {
  const at::IntArrayRef expected(shape);
  TORCH_CHECK(t.sizes() == expected, "lsr_block_cuda: ", name, " must have shape ", expected, " for x of shape ",
              x.sizes(), ", got ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), "lsr_block_cuda: ", name, " must have x's dtype ",
                   x.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK(t.device() == x.device(), "lsr_block_cuda: ", name, " must be on x's device ", x.device(), ", got ",
              t.device());
  TORCH_CHECK(t.is_contiguous(), "lsr_block_cuda: ", name, " (shape ", t.sizes(), ") must be contiguous");
}

// Makes `device` current for the launch and restores the previous one (what c10::cuda::CUDAGuard
// does, without its header).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    TORCH_CHECK(cudaGetDevice(&previous_) == cudaSuccess, "lsr_block_cuda: cudaGetDevice failed");
    if (previous_ != device) {
      TORCH_CHECK(cudaSetDevice(device) == cudaSuccess, "lsr_block_cuda: cudaSetDevice(", device, ") failed");
      changed_ = true;
    }
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// x: (batch, length, C), any strides; dw_weight: (C, k); ln_weight, ln_bias, b2, gamma: (C,);
// w1: (H, C); b1: (H,); w2: (C, H). Returns out: (batch, length, C), contiguous.
at::Tensor lsr_block_cuda(const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& ln_weight,
                          const at::Tensor& ln_bias, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                          const at::Tensor& b2, const at::Tensor& gamma, double eps, int64_t stream,
                          bool tensor_cores) {
  TORCH_CHECK(x.is_cuda(), "lsr_block_cuda: x must be a CUDA tensor, got one on ", x.device());
  TORCH_CHECK(x.dim() == 3, "lsr_block_cuda: x must be (batch, length, C), got shape ", x.sizes());
  const DType dtype = kernel_dtype(x);
  const int64_t c = x.size(2);
  TORCH_CHECK(c >= 1 && c <= umsnet_fast::kLsrMaxWidth, "lsr_block_cuda: the kernel takes 1 to ",
              umsnet_fast::kLsrMaxWidth, " channels, got x of shape ", x.sizes());
  TORCH_CHECK(dw_weight.dim() == 2 && dw_weight.size(0) == c, "lsr_block_cuda: dw_weight must be (C, k) = (", c,
              ", k) for x of shape ", x.sizes(), ", got ", dw_weight.sizes());
  const int64_t k = dw_weight.size(1);
  TORCH_CHECK(k % 2 == 1 && k <= umsnet_fast::kLsrMaxKernelSize,
              "lsr_block_cuda: the kernel size k must be odd and "
              "at most ",
              umsnet_fast::kLsrMaxKernelSize, ", got dw_weight of shape ", dw_weight.sizes());
  TORCH_CHECK(w1.dim() == 2 && w1.size(1) == c && w1.size(0) >= 1, "lsr_block_cuda: w1 must be (H, C) = (H, ", c,
              ") for x of shape ", x.sizes(), ", got ", w1.sizes());
  const int64_t h = w1.size(0);
  check_weight(dw_weight, "dw_weight", {c, k}, x);
  check_weight(ln_weight, "ln_weight", {c}, x);
  check_weight(ln_bias, "ln_bias", {c}, x);
  check_weight(w1, "w1", {h, c}, x);
  check_weight(b1, "b1", {h}, x);
  check_weight(w2, "w2", {c, h}, x);
  check_weight(b2, "b2", {c}, x);
  check_weight(gamma, "gamma", {c}, x);
  TORCH_CHECK(h <= std::numeric_limits<int>::max(), "lsr_block_cuda: hidden width ", h, " too large");

  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  umsnet_fast::LsrBlockParams p{};
  p.x = x.data_ptr();
  p.out = out.data_ptr();
  p.dw_weight = dw_weight.data_ptr();
  p.ln_weight = ln_weight.data_ptr();
  p.ln_bias = ln_bias.data_ptr();
  p.w1 = w1.data_ptr();
  p.b1 = b1.data_ptr();
  p.w2 = w2.data_ptr();
  p.b2 = b2.data_ptr();
  p.gamma = gamma.data_ptr();
  p.batch = x.size(0);
  p.length = x.size(1);
  p.channels = static_cast<int>(c);
  p.hidden = static_cast<int>(h);
  p.kernel_size = static_cast<int>(k);
  p.eps = static_cast<float>(eps);
  p.x_batch_stride = x.stride(0);
  p.x_length_stride = x.stride(1);
  p.x_channel_stride = x.stride(2);
  p.out_batch_stride = out.stride(0);
  p.out_length_stride = out.stride(1);
  p.out_channel_stride = out.stride(2);
  if (out.numel() == 0) return out;

  DeviceGuard guard(x.get_device());
  const cudaError_t err =
      umsnet_fast::lsr_block_forward(p, dtype, reinterpret_cast<cudaStream_t>(stream), tensor_cores);
  TORCH_CHECK(err == cudaSuccess, "lsr_block_cuda: kernel launch failed for x of shape ", x.sizes(), " (",
              x.scalar_type(), "): ", cudaGetErrorString(err));
  return out;
}

// Which kernel path lsr_block_cuda takes for this dtype on the current device.
std::string lsr_block_path(const std::string& dtype, bool tensor_cores) {
  DType d;
  if (dtype == "float32")
    d = DType::kFloat32;
  else if (dtype == "float16")
    d = DType::kFloat16;
  else if (dtype == "bfloat16")
    d = DType::kBFloat16;
  else
    TORCH_CHECK_VALUE(false, "lsr_block_path: dtype must be float32, float16 or bfloat16, got ", dtype);
  return umsnet_fast::lsr_block_path(d, tensor_cores);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(umsnet_fast, m) {
  m.def(
      "lsr_block_cuda(Tensor x, Tensor dw_weight, Tensor ln_weight, Tensor ln_bias, Tensor w1, Tensor b1, "
      "Tensor w2, Tensor b2, Tensor gamma, float eps, int stream, bool tensor_cores=True) -> Tensor");
}

TORCH_LIBRARY_IMPL(umsnet_fast, CUDA, m) { m.impl("lsr_block_cuda", &lsr_block_cuda); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "umsnet_fast CUDA kernels; the ops are registered as torch.ops.umsnet_fast.*_cuda";
  m.attr("LSR_MAX_WIDTH") = umsnet_fast::kLsrMaxWidth;
  m.attr("LSR_MAX_KERNEL_SIZE") = umsnet_fast::kLsrMaxKernelSize;
  m.def("lsr_block_path", &lsr_block_path, pybind11::arg("dtype"), pybind11::arg("tensor_cores") = true,
        "The kernel path lsr_block_cuda takes for dtype ('float32', 'float16', 'bfloat16') on the current device");
}
