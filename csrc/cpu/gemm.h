// GEMM over packed weights: C (M, n) = epilogue(A (M, k) W^T + b), the register-tile microkernel.
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.

// One register tile: MR rows x one 32-column panel; accumulators start at the bias.
// HALF: the panel's last 16 columns are all padding (width <= 16 left), so they are not computed.
template <int MR, int EPI, bool HALF>
inline void gemm_tile(const float* A, int64_t lda, const float* Bp, const float* bias, int K, float* C,
                      int64_t ldc, const float* R, int64_t ldr, int ncols) {
  v16 c0[MR], c1[MR];
  const v16 bias0 = vld(bias), bias1 = vld(bias + 16);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    c0[i] = bias0;
    c1[i] = bias1;
  }
  for (int k = 0; k < K; ++k) {
    const v16 b0 = vld(Bp + (int64_t)k * kPanel);
    const v16 b1 = HALF ? b0 : vld(Bp + (int64_t)k * kPanel + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float a = A[i * lda + k];
      c0[i] += b0 * a;
      if (!HALF) c1[i] += b1 * a;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    v16 y0 = c0[i], y1 = c1[i];
    if (EPI == kBiasGelu) {
      y0 = vgelu(y0);
      if (!HALF) y1 = vgelu(y1);
    }
    float* out = C + i * ldc;
    if (ncols == kPanel) {
      if (EPI == kBiasResidual) {
        y0 += vld(R + i * ldr);
        y1 += vld(R + i * ldr + 16);
      }
      vst(out, y0);
      vst(out + 16, y1);
    } else {  // the last panel of a width that is not a multiple of 32: store only the real columns
      float tmp[kPanel];
      vst(tmp, y0);
      vst(tmp + 16, y1);
      for (int j = 0; j < ncols; ++j) out[j] = EPI == kBiasResidual ? tmp[j] + R[i * ldr + j] : tmp[j];
    }
  }
}

template <int EPI, bool HALF, int MR>
struct RowTail {  // the last (rows < UMS_MR) rows of a block
  static void run(int rows, const float* A, int64_t lda, const float* Bp, const float* bias, int K, float* C,
                  int64_t ldc, const float* R, int64_t ldr, int ncols) {
    if (rows == MR)
      gemm_tile<MR, EPI, HALF>(A, lda, Bp, bias, K, C, ldc, R, ldr, ncols);
    else
      RowTail<EPI, HALF, MR - 1>::run(rows, A, lda, Bp, bias, K, C, ldc, R, ldr, ncols);
  }
};
template <int EPI, bool HALF>
struct RowTail<EPI, HALF, 0> {
  static void run(int, const float*, int64_t, const float*, const float*, int, float*, int64_t, const float*,
                  int64_t, int) {}
};

template <int EPI, bool HALF>
void gemm_rows_impl(const float* A, int64_t lda, int64_t m0, int64_t m1, const float* Bp, const float* bias,
                    int K, float* C, int64_t ldc, const float* R, int64_t ldr, int ncols) {
  int64_t m = m0;
  for (; m + UMS_MR <= m1; m += UMS_MR)
    gemm_tile<UMS_MR, EPI, HALF>(A + m * lda, lda, Bp, bias, K, C + m * ldc, ldc, R ? R + m * ldr : nullptr,
                                 ldr, ncols);
  if (m < m1)
    RowTail<EPI, HALF, UMS_MR - 1>::run((int)(m1 - m), A + m * lda, lda, Bp, bias, K, C + m * ldc, ldc,
                                        R ? R + m * ldr : nullptr, ldr, ncols);
}

// Rows [m0, m1) of panel p.
template <int EPI>
void gemm_rows(const float* A, int64_t lda, int64_t m0, int64_t m1, const LinearP& W, int p, float* C,
               int64_t ldc, const float* R, int64_t ldr) {
  const float* Bp = W.w + (int64_t)p * W.k * kPanel;
  const float* bias = W.b + (int64_t)p * kPanel;
  const int ncols = (int)imin(kPanel, W.n - (int64_t)p * kPanel);
  const int64_t col = (int64_t)p * kPanel;
  if (ncols <= 16)
    gemm_rows_impl<EPI, true>(A, lda, m0, m1, Bp, bias, W.k, C + col, ldc, R ? R + col : nullptr, ldr, ncols);
  else
    gemm_rows_impl<EPI, false>(A, lda, m0, m1, Bp, bias, W.k, C + col, ldc, R ? R + col : nullptr, ldr, ncols);
}

// Jobs are (panel, block of 4 register tiles), panel-major so that one thread reuses a panel.
template <int EPI>
void gemm(const float* A, int64_t lda, int64_t M, const LinearP& W, float* C, int64_t ldc, const float* R,
          int64_t ldr, const Par& par) {
  const int64_t panels = (W.n + kPanel - 1) / kPanel;
  const int64_t rows_per_job = 4 * UMS_MR;
  const int64_t mblocks = (M + rows_per_job - 1) / rows_per_job;
  int64_t lo, hi;
  par.range(panels * mblocks, &lo, &hi);
  for (int64_t j = lo; j < hi; ++j) {
    const int64_t p = j / mblocks, mb = j % mblocks;
    gemm_rows<EPI>(A, lda, mb * rows_per_job, imin(M, (mb + 1) * rows_per_job), W, (int)p, C, ldc, R, ldr);
  }
  par.barrier();
}
