// A torch-free GPU self-test of the LSR block kernels, and an example of the C++ API (lsr_block.h):
// random inputs for each dtype, several widths (powers of 2 and not), lengths (1, odd) and both
// kernel paths, compared with a float64 CPU reference of the block. Built by CMakeLists.txt as
// `umsnet_fast_lsr_block_selftest`; run it on a GPU machine: exit status 0 when every case passes.
//
// The tolerances are loose (atol + rtol * |ref|, per dtype): they catch indexing, masking and layout
// bugs, whose errors are O(1); the numerics contract proper is tested through torch
// (tests/test_cuda_backend.py).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lsr_block.h"

using umsnet_fast::DType;

namespace {

#define UMSNET_CHECK_CUDA(expr)                                                                     \
  do {                                                                                              \
    const cudaError_t err_ = (expr);                                                                \
    if (err_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(err_)); \
      std::exit(2);                                                                                 \
    }                                                                                               \
  } while (0)

template <typename T>
T to_t(double v);
template <>
float to_t<float>(double v) {
  return static_cast<float>(v);
}
template <>
__half to_t<__half>(double v) {
  return __float2half_rn(static_cast<float>(v));
}
template <>
__nv_bfloat16 to_t<__nv_bfloat16>(double v) {
  return __float2bfloat16_rn(static_cast<float>(v));
}
double to_d(float v) { return v; }
double to_d(__half v) { return __half2float(v); }
double to_d(__nv_bfloat16 v) { return __bfloat162float(v); }

// The block in float64 on the CPU; x (batch, length, C) contiguous.
std::vector<double> reference(const std::vector<double>& x, const std::vector<double>& dw,
                              const std::vector<double>& lnw, const std::vector<double>& lnb,
                              const std::vector<double>& w1, const std::vector<double>& b1,
                              const std::vector<double>& w2, const std::vector<double>& b2,
                              const std::vector<double>& gamma, int batch, int length, int c, int h, int k,
                              double eps) {
  std::vector<double> out(x.size()), y(c), hid(h);
  for (int b = 0; b < batch; ++b)
    for (int l = 0; l < length; ++l) {
      double mean = 0, var = 0;
      for (int ch = 0; ch < c; ++ch) {
        double s = 0;
        for (int j = 0; j < k; ++j) {
          const int ll = l + j - k / 2;
          if (ll >= 0 && ll < length) s += dw[ch * k + j] * x[(static_cast<size_t>(b) * length + ll) * c + ch];
        }
        y[ch] = s;
        mean += s / c;
      }
      for (int ch = 0; ch < c; ++ch) var += (y[ch] - mean) * (y[ch] - mean) / c;
      for (int ch = 0; ch < c; ++ch) y[ch] = (y[ch] - mean) / std::sqrt(var + eps) * lnw[ch] + lnb[ch];
      for (int n = 0; n < h; ++n) {
        double s = b1[n];
        for (int ch = 0; ch < c; ++ch) s += w1[static_cast<size_t>(n) * c + ch] * y[ch];
        hid[n] = 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
      }
      for (int ch = 0; ch < c; ++ch) {
        double s = b2[ch];
        for (int n = 0; n < h; ++n) s += w2[static_cast<size_t>(ch) * h + n] * hid[n];
        const size_t i = (static_cast<size_t>(b) * length + l) * c + ch;
        out[i] = x[i] + gamma[ch] * s;
      }
    }
  return out;
}

// Random values rounded to T; returns the T values and the same values as doubles.
template <typename T>
std::vector<T> random_t(std::mt19937& rng, size_t n, double lo, double hi, bool normal,
                        std::vector<double>& as_double) {
  std::normal_distribution<double> nd(lo, hi);
  std::uniform_real_distribution<double> ud(lo, hi);
  std::vector<T> v(n);
  as_double.resize(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = to_t<T>(normal ? nd(rng) : ud(rng));
    as_double[i] = to_d(v[i]);
  }
  return v;
}

template <typename T>
T* upload(const std::vector<T>& v) {
  T* d = nullptr;
  UMSNET_CHECK_CUDA(cudaMalloc(&d, v.size() * sizeof(T)));
  UMSNET_CHECK_CUDA(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <typename T>
bool run_case(DType dtype, const char* dtype_name, bool tensor_cores, int batch, int length, int c, int k, double atol,
              double rtol) {
  const int h = 4 * c;
  const double eps = 1e-6;
  std::mt19937 rng(1234 + c * 7 + length);
  std::vector<double> x, dw, lnw, lnb, w1, b1, w2, b2, gamma;
  auto tx = random_t<T>(rng, static_cast<size_t>(batch) * length * c, 0, 1, true, x);
  auto tdw = random_t<T>(rng, static_cast<size_t>(c) * k, 0, 1 / std::sqrt(double(k)), true, dw);
  auto tlnw = random_t<T>(rng, c, 0.5, 1.5, false, lnw);
  auto tlnb = random_t<T>(rng, c, 0, 0.1, true, lnb);
  auto tw1 = random_t<T>(rng, static_cast<size_t>(h) * c, 0, 1 / std::sqrt(double(c)), true, w1);
  auto tb1 = random_t<T>(rng, h, 0, 0.1, true, b1);
  auto tw2 = random_t<T>(rng, static_cast<size_t>(c) * h, 0, 1 / std::sqrt(double(h)), true, w2);
  auto tb2 = random_t<T>(rng, c, 0, 0.1, true, b2);
  auto tgamma = random_t<T>(rng, c, 0.5, 1.5, false, gamma);
  const std::vector<double> ref = reference(x, dw, lnw, lnb, w1, b1, w2, b2, gamma, batch, length, c, h, k, eps);

  std::vector<T> out(tx.size());
  T* d_out = upload(out);
  umsnet_fast::LsrBlockParams p{};
  p.x = upload(tx);
  p.out = d_out;
  p.dw_weight = upload(tdw);
  p.ln_weight = upload(tlnw);
  p.ln_bias = upload(tlnb);
  p.w1 = upload(tw1);
  p.b1 = upload(tb1);
  p.w2 = upload(tw2);
  p.b2 = upload(tb2);
  p.gamma = upload(tgamma);
  p.batch = batch;
  p.length = length;
  p.channels = c;
  p.hidden = h;
  p.kernel_size = k;
  p.eps = static_cast<float>(eps);
  p.x_batch_stride = p.out_batch_stride = static_cast<int64_t>(length) * c;  // strides in elements
  p.x_length_stride = p.out_length_stride = c;
  p.x_channel_stride = p.out_channel_stride = 1;
  UMSNET_CHECK_CUDA(umsnet_fast::lsr_block_forward(p, dtype, /*stream=*/nullptr, tensor_cores));
  UMSNET_CHECK_CUDA(cudaDeviceSynchronize());
  UMSNET_CHECK_CUDA(cudaMemcpy(out.data(), d_out, out.size() * sizeof(T), cudaMemcpyDeviceToHost));
  for (const void* ptr : {p.x, p.dw_weight, p.ln_weight, p.ln_bias, p.w1, p.b1, p.w2, p.b2, p.gamma})
    UMSNET_CHECK_CUDA(cudaFree(const_cast<void*>(ptr)));
  UMSNET_CHECK_CUDA(cudaFree(d_out));

  double worst = 0;  // largest |out - ref| / (atol + rtol |ref|); NaN fails too
  for (size_t i = 0; i < out.size(); ++i) {
    const double r = std::fabs(to_d(out[i]) - ref[i]) / (atol + rtol * std::fabs(ref[i]));
    if (!(r <= worst)) worst = std::isnan(r) ? INFINITY : r;
  }
  const bool ok = worst <= 1.0;
  std::printf("%-4s %-8s %-16s batch %3d length %3d C %3d k %d: worst error / tolerance %.3f\n", ok ? "ok" : "FAIL",
              dtype_name, umsnet_fast::lsr_block_path(dtype, tensor_cores), batch, length, c, k, worst);
  return ok;
}

}  // namespace

int main() {
  int device = 0;
  cudaDeviceProp prop{};
  UMSNET_CHECK_CUDA(cudaGetDevice(&device));
  UMSNET_CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
  std::printf("device %d: %s (sm_%d%d)\n", device, prop.name, prop.major, prop.minor);
  struct Shape {
    int batch, length, c, k;
  };
  const Shape shapes[] = {{2, 8, 16, 3},    {3, 25, 24, 3}, {1, 1, 48, 3}, {5, 7, 64, 5},
                          {37, 25, 100, 3}, {4, 3, 128, 3}, {1, 9, 1, 1}};
  int failures = 0;
  for (const Shape& s : shapes) {
    failures += !run_case<float>(DType::kFloat32, "float32", true, s.batch, s.length, s.c, s.k, 1e-4, 1e-4);
    for (bool tc : {true, false}) {
      failures += !run_case<__half>(DType::kFloat16, "float16", tc, s.batch, s.length, s.c, s.k, 2e-2, 1e-2);
      failures += !run_case<__nv_bfloat16>(DType::kBFloat16, "bfloat16", tc, s.batch, s.length, s.c, s.k, 1e-1, 4e-2);
    }
  }
  std::printf("%s: %d failing case(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
