// The fused CPU engine, written once and compiled once per instruction set.
//
// isa_<name>.cpp includes this file inside namespace umsnet_cpu::<name>, after
// `#pragma GCC target(...)` and with UMS_MR (rows of the GEMM register tile) defined. The vector
// type is GCC's generic 16-float vector: one zmm register under AVX-512, two ymm under AVX2, four
// xmm on the portable path. To keep the instruction-set builds apart, nothing here instantiates a
// C++ library template or inline library function (the linker could otherwise pick an AVX-512 copy
// for the portable build): only builtins, C functions and code in this anonymous namespace.
//
// Tiling. An LSR module runs on a tile of G segments (slices of one sensor, or samples for the
// fusion module) with all their rows, (G * L, C) channels-last, in per-thread scratch that stays in
// L2; a block is dwconv+LayerNorm -> GEMM(+bias, GELU) into the tile's 4C hidden -> GEMM(+bias,
// +residual) written over its input, LayerScale folded into the second GEMM's weights. The
// Transformer runs on tiles of S samples the same way. With fewer samples than threads, the threads
// share one tile (`Par`: each GEMM splits its panels, each row-wise op its rows, with a barrier after).

namespace {

typedef float v16 __attribute__((vector_size(64), aligned(4), __may_alias__));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), __may_alias__));

inline v16 vld(const float* p) { return *(const v16*)p; }
inline void vst(float* p, v16 v) { *(v16*)p = v; }
inline v16 vset(float s) { return (v16){} + s; }
inline float hsum(v16 v) {  // pairwise: four shuffles and adds
  v16 s = v + __builtin_shuffle(v, (v16i){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  s += __builtin_shuffle(s, (v16i){4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3});
  s += __builtin_shuffle(s, (v16i){2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1});
  return s[0] + s[1];
}
// min/max of vectors: one instruction each under AVX-512 (the generic ?: form becomes compare + blend)
inline v16 vmin(v16 a, v16 b) {
#if defined(UMS_AVX512)
  return (v16)_mm512_min_ps((__m512)a, (__m512)b);
#else
  return a < b ? a : b;
#endif
}
inline v16 vmax(v16 a, v16 b) {
#if defined(UMS_AVX512)
  return (v16)_mm512_max_ps((__m512)a, (__m512)b);
#else
  return a > b ? a : b;
#endif
}
inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// exp: Cody-Waite range reduction and the Cephes polynomial (about 1 ulp), inputs clamped so that
// 2^n stays a normal float.
inline v16 vexp(v16 x) {
  const v16 hi = vset(88.0f), lo = vset(-87.33654f);
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  const v16 t = x * 1.44269504088896341f;
  const v16i n = __builtin_convertvector(t + (t >= vset(0.f) ? vset(0.5f) : vset(-0.5f)), v16i);
  const v16 fn = __builtin_convertvector(n, v16);
  v16 r = x - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  v16 y = vset(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.f;
  const v16i bits = (n + 127) << 23;
  return y * (v16)bits;
}

// GELU(x) = x/2 (1 + erf(x / sqrt 2)) with erf(z) = z p(z^2) / q(z^2) on [-4, 4] (beyond, erf is +-1 in
// fp32): the rational function of Eigen's and XLA's float erf, |error| < 5e-7, no exp, one division.
// Its argument scaling is folded into the coefficients (as polynomials in x^2, and x/2 / sqrt 2 into p),
// so GELU(x) = x/2 + x xc p~(xc^2) / q~(xc^2) with xc = x clamped to [-4 sqrt 2, 4 sqrt 2].
inline v16 vgelu(v16 x) {
  const v16 xc = vmax(vmin(x, vset(5.656854249f)), vset(-5.656854249f));
  const v16 u = xc * xc;
  v16 p = u * -1.505995060e-12f + 3.061199413e-10f;
  p = p * u - 4.642651039e-08f;
  p = p * u - 2.515756171e-06f;
  p = p * u - 6.496460735e-05f;
  p = p * u - 5.223043901e-04f;
  p = p * u - 5.690807158e-03f;
  v16 q = u * -9.103794904e-07f - 2.667175691e-05f;
  q = q * u - 4.207067436e-04f;
  q = q * u - 3.686664584e-03f;
  q = q * u - 1.426473905e-02f;
#if defined(UMS_AVX512)  // set by isa_avx512.cpp (g++ does not define __AVX512F__ after a target pragma)
  // rcp14 and one Newton step (about 1 ulp) instead of a division, which is slow on zmm registers
  v16 r = (v16)_mm512_rcp14_ps((__m512)q);
  r = r * (2.f - q * r);
  return 0.5f * x + x * (xc * p * r);
#else
  return 0.5f * x + x * (xc * p / q);
#endif
}

float* falloc(int64_t n) {
  const size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 127) / 64 * 64;
  return (float*)aligned_alloc(64, bytes);
}

// Which share of a cooperative step this thread does; `barrier` orders the steps.
struct Par {
  int tid = 0, nt = 1;
  void range(int64_t total, int64_t* lo, int64_t* hi) const {
    *lo = total * tid / nt;
    *hi = total * (tid + 1) / nt;
  }
  void barrier() const {
    if (nt > 1) {
#pragma omp barrier
    }
  }
};

// ---------------------------------------------------------------------------------------------
// GEMM over packed weights: C (M, n) = epilogue(A (M, k) W^T + b).

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

// ---------------------------------------------------------------------------------------------
// Row-wise ops.

// y = LayerNorm(x) over C (two passes in fp32); y may alias x.
inline void ln_row(const float* x, float* y, int C, const float* w, const float* b, float eps) {
  v16 s = {};
  int c = 0;
  for (; c + 16 <= C; c += 16) s += vld(x + c);
  float sum = hsum(s);
  for (; c < C; ++c) sum += x[c];
  const float mean = sum / C;
  v16 q = {};
  for (c = 0; c + 16 <= C; c += 16) {
    const v16 d = vld(x + c) - mean;
    q += d * d;
  }
  float var = hsum(q);
  for (; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.f / __builtin_sqrtf(var / C + eps);
  for (c = 0; c + 16 <= C; c += 16) vst(y + c, (vld(x + c) - mean) * rstd * vld(w + c) + vld(b + c));
  for (; c < C; ++c) y[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

void layer_norm_rows(const float* x, int64_t M, int C, const float* w, const float* b, float eps, float* y,
                     const Par& par) {
  int64_t lo, hi;
  par.range(M, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) ln_row(x + r * C, y + r * C, C, w, b, eps);
  par.barrier();
}

// h = LayerNorm(depthwise conv(x)) on G segments of L rows each (zero padding at segment ends).
void dwconv_ln(const float* x, float* h, int G, int L, const BlockP& p, float* tmp, const Par& par) {
  const int C = p.c, pad = p.ksize / 2;
  int64_t lo, hi;
  par.range((int64_t)G * L, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) {
    const int64_t g = r / L;
    const int t = (int)(r % L);
    const int j0 = (int)imax(0, pad - t), j1 = (int)imin(p.ksize, L + pad - t);  // taps inside the segment
    const int64_t r0 = g * L + t - pad;  // input row of tap 0 (may lie outside: only taps j0..j1 are read)
    int c = 0;
    for (; c + 16 <= C; c += 16) {  // 16 channels in a register across the taps
      v16 acc = {};
      for (int j = j0; j < j1; ++j) acc += vld(p.dw + (int64_t)j * C + c) * vld(x + (r0 + j) * C + c);
      vst(tmp + c, acc);
    }
    for (; c < C; ++c) {
      float acc = 0.f;
      for (int j = j0; j < j1; ++j) acc += p.dw[(int64_t)j * C + c] * x[(r0 + j) * C + c];
      tmp[c] = acc;
    }
    ln_row(tmp, h + r * C, C, p.ln_w, p.ln_b, p.eps);
  }
  par.barrier();
}

// ---------------------------------------------------------------------------------------------
// LSR block and module on a tile of G segments.

struct ModScratch {
  float *x = nullptr, *x2 = nullptr, *h = nullptr, *hid = nullptr;  // shared by a cooperative team
  float* tmp = nullptr;                                               // one row, per thread
};

// x (G * L, C) in place.
void lsr_block_tile(float* x, int G, int L, const BlockP& p, const ModScratch& s, const Par& par) {
  const int64_t M = (int64_t)G * L;
  const int C = p.c, H = p.fc1.n;
  dwconv_ln(x, s.h, G, L, p, s.tmp, par);
  gemm<kBiasGelu>(s.h, C, M, p.fc1, s.hid, H, nullptr, 0, par);
  gemm<kBiasResidual>(s.hid, H, M, p.fc2, x, C, x, C, par);
}

// The mean over each segment's L rows of the block's output, (G, C) rows of `out` at stride ldo, without
// the block's output itself: mean_t(x + fc2(g_t)) = mean_t(x) + fc2(mean_t(g_t)) as fc2 is affine, so
// fc2 runs on G rows instead of G * L. x is left as scratch.
void lsr_block_mean_tile(float* x, int G, int L, const BlockP& p, const ModScratch& s, float* out,
                         int64_t ldo, const Par& par) {
  const int64_t M = (int64_t)G * L;
  const int C = p.c, H = p.fc1.n;
  dwconv_ln(x, s.h, G, L, p, s.tmp, par);
  gemm<kBiasGelu>(s.h, C, M, p.fc1, s.hid, H, nullptr, 0, par);
  // means in place: segment g's mean goes to row g of hid (and of h for x), at or before its first row
  const float inv = 1.f / L;
  // one thread: in place, row g may lie in an earlier segment, read by another thread in a split
  const int64_t lo = 0, hi = par.tid == 0 ? G : 0;
  for (int64_t g = lo; g < hi; ++g) {
    const float *hg = s.hid + g * L * H, *xg = x + g * L * C;
    float *hm = s.hid + g * H, *xm = s.h + g * C;
    for (int pass = 0; pass < 2; ++pass) {
      const float* src = pass ? xg : hg;
      float* dst = pass ? xm : hm;
      const int n = pass ? C : H;
      int c = 0;
      for (; c + 16 <= n; c += 16) {
        v16 acc = vld(src + c);
        for (int t = 1; t < L; ++t) acc += vld(src + (int64_t)t * n + c);
        vst(dst + c, acc * inv);
      }
      for (; c < n; ++c) {
        float acc = src[c];
        for (int t = 1; t < L; ++t) acc += src[(int64_t)t * n + c];
        dst[c] = acc * inv;
      }
    }
  }
  par.barrier();
  gemm<kBiasResidual>(s.hid, H, G, p.fc2, out, ldo, s.h, C, par);
}

int module_out_length(const ModuleP& m, int L) {
  for (int st = 1; st < m.nstages; ++st) L /= m.down_stride[st - 1];
  return L;
}

// Floats of each scratch buffer for a tile of G segments of length L.
void module_scratch_size(const ModuleP& m, int64_t G, int L, int64_t* act, int64_t* hid, int64_t* row) {
  *act = 1, *hid = 1, *row = 1;
  for (int st = 0; st < m.nstages; ++st) {
    if (st > 0) L /= m.down_stride[st - 1];
    *act = imax(*act, G * L * m.dims[st]);
    *row = imax(*row, m.dims[st]);
    for (int b = 0; b < m.nblocks[st]; ++b) *hid = imax(*hid, G * L * m.blocks[st][b].fc1.n);
  }
}

// in (G * L, c_in) -> the module's output (G * L', dims[-1]), returned (one of s.x, s.x2). With `mean`
// (and a last stage with blocks), instead its mean over L' per segment, (G, dims[-1]) at row stride
// ldm, and nullptr is returned.
float* module_tile(const ModuleP& m, const float* in, int G, int L, ModScratch s, const Par& par,
                   float* mean = nullptr, int64_t ldm = 0) {
  float *x = s.x, *x2 = s.x2;
  gemm<kBias>(in, m.c_in, (int64_t)G * L, m.stem, x, m.dims[0], nullptr, 0, par);
  layer_norm_rows(x, (int64_t)G * L, m.dims[0], m.stem_ln_w, m.stem_ln_b, m.stem_eps, x, par);
  for (int st = 0; st < m.nstages; ++st) {
    if (st > 0) {
      const int stride = m.down_stride[st - 1], C = m.dims[st - 1], Lo = L / stride;
      if (Lo * stride != L) {  // odd tail dropped, as Conv1d does: close the gaps between segments
        if (par.tid == 0)
          for (int g = 1; g < G; ++g)
            __builtin_memmove(x + (int64_t)g * Lo * stride * C, x + (int64_t)g * L * C,
                              sizeof(float) * Lo * stride * C);
        par.barrier();
      }
      // stride neighbours side by side form one row of the Linear: (G * Lo, stride * C)
      gemm<kBias>(x, (int64_t)stride * C, (int64_t)G * Lo, m.down[st - 1], x2, m.dims[st], nullptr, 0, par);
      float* t = x;
      x = x2;
      x2 = t;
      L = Lo;
    }
    s.x = x;
    const bool pool = mean && st == m.nstages - 1 && m.nblocks[st] > 0;
    for (int b = 0; b < m.nblocks[st] - (pool ? 1 : 0); ++b) lsr_block_tile(x, G, L, m.blocks[st][b], s, par);
    if (pool) {
      lsr_block_mean_tile(x, G, L, m.blocks[st][m.nblocks[st] - 1], s, mean, ldm, par);
      return nullptr;
    }
  }
  return x;
}

// ---------------------------------------------------------------------------------------------
// Attention and the Transformer part.

// Per (sample, head): scores against k transposed (vectorised over keys), softmax, weighted sum of v.
// Only the first nq tokens of each sample are queries (T, or 1 for the class token alone): out (S * nq, d).
void attention_rows(const float* qkv, int S, int T, int nq, int d, int heads, float scale, float* out,
                    float* tmp, const Par& par) {
  const int hd = d / heads, Tp = (T + 15) / 16 * 16;
  float* kt = tmp;              // (hd, Tp)
  float* srow = tmp + hd * Tp;  // (Tp,)
  float* qs = srow + Tp;         // (hd,) q scaled
  const int64_t ld = 3 * (int64_t)d;
  int64_t lo, hi;
  par.range((int64_t)S * heads, &lo, &hi);
  for (int64_t job = lo; job < hi; ++job) {
    const int64_t s = job / heads;
    const int h = (int)(job % heads);
    const float* base = qkv + s * T * ld + (int64_t)h * hd;
    for (int e = 0; e < hd; ++e) {
      for (int j = 0; j < T; ++j) kt[e * Tp + j] = base[j * ld + d + e];
      for (int j = T; j < Tp; ++j) kt[e * Tp + j] = 0.f;
    }
    for (int i = 0; i < nq; ++i) {
      const float* q = base + i * ld;
      for (int e = 0; e < hd; ++e) qs[e] = q[e] * scale;
      for (int j = 0; j < Tp; j += 16) {  // scores of 16 keys, accumulated in a register
        v16 acc = {};
        for (int e = 0; e < hd; ++e) acc += qs[e] * vld(kt + e * Tp + j);
        vst(srow + j, acc);
      }
      float mx = srow[0];
      for (int j = 1; j < T; ++j) mx = srow[j] > mx ? srow[j] : mx;
      v16 acc = {};
      for (int j = 0; j < Tp; j += 16) {
        v16 p = vexp(vld(srow + j) - mx);
        if (j + 16 > T)
          for (int l = T - j; l < 16; ++l) p[l] = 0.f;
        vst(srow + j, p);
        acc += p;
      }
      const float inv = 1.f / hsum(acc);
      float* o = out + (s * nq + i) * (int64_t)d + (int64_t)h * hd;
      int e = 0;
      for (; e + 16 <= hd; e += 16) {  // 16 output features at a time, in a register
        v16 oe = {};
        for (int j = 0; j < T; ++j) oe += srow[j] * vld(base + j * ld + 2 * d + e);
        vst(o + e, oe * inv);
      }
      for (; e < hd; ++e) {
        float oe = 0.f;
        for (int j = 0; j < T; ++j) oe += srow[j] * base[j * ld + 2 * d + e];
        o[e] = oe * inv;
      }
    }
  }
  par.barrier();
}

int64_t attention_tmp_size(int T, int d, int heads) { return (int64_t)(d / heads + 1) * ((T + 15) / 16 * 16) + d / heads; }

struct LayerScratch {
  float *h = nullptr, *qkv = nullptr, *att = nullptr, *hid = nullptr;  // shared by a cooperative team
  float* tmp = nullptr;                                                // per thread
};

// x (S * T, d) in place: x += out_proj(attention(qkv(LN1 x))); x += fc2(GELU(fc1(LN2 x))).
void encoder_layer_tile(float* x, int S, int T, int d, const LayerP& p, const LayerScratch& s, const Par& par) {
  const int64_t M = (int64_t)S * T;
  layer_norm_rows(x, M, d, p.ln1_w, p.ln1_b, p.eps, s.h, par);
  gemm<kBias>(s.h, d, M, p.qkv, s.qkv, 3 * d, nullptr, 0, par);
  attention_rows(s.qkv, S, T, T, d, p.heads, p.q_scale, s.att, s.tmp, par);
  gemm<kBiasResidual>(s.att, d, M, p.out, x, d, x, d, par);
  layer_norm_rows(x, M, d, p.ln2_w, p.ln2_b, p.eps, s.h, par);
  gemm<kBiasGelu>(s.h, d, M, p.fc1, s.hid, p.fc1.n, nullptr, 0, par);
  gemm<kBiasResidual>(s.hid, p.fc1.n, M, p.fc2, x, d, x, d, par);
}

// The last layer, for the class tokens only (rows s * T of x): the model reads nothing else after it.
// Keys and values still come from all tokens; attention, out_proj and the MLP run on S rows, not S * T.
void encoder_layer_cls_tile(float* x, int S, int T, int d, const LayerP& p, const LayerScratch& s,
                            const Par& par) {
  const int64_t M = (int64_t)S * T, ldx = (int64_t)T * d;
  layer_norm_rows(x, M, d, p.ln1_w, p.ln1_b, p.eps, s.h, par);
  if (d % kPanel == 0) {  // q fills whole panels: keys and values of all tokens, queries of the class rows
    LinearP kv = p.qkv, q = p.qkv;
    kv.w += (int64_t)d * kv.k, kv.b += d, kv.n -= d;
    q.n = d;
    gemm<kBias>(s.h, d, M, kv, s.qkv + d, 3 * d, nullptr, 0, par);
    gemm<kBias>(s.h, ldx, S, q, s.qkv, (int64_t)T * 3 * d, nullptr, 0, par);
  } else {
    gemm<kBias>(s.h, d, M, p.qkv, s.qkv, 3 * d, nullptr, 0, par);
  }
  attention_rows(s.qkv, S, T, 1, d, p.heads, p.q_scale, s.att, s.tmp, par);  // (S, d)
  gemm<kBiasResidual>(s.att, d, S, p.out, x, ldx, x, ldx, par);
  int64_t lo, hi;
  par.range(S, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) ln_row(x + r * ldx, s.h + r * d, d, p.ln2_w, p.ln2_b, p.eps);
  par.barrier();
  gemm<kBiasGelu>(s.h, d, S, p.fc1, s.hid, p.fc1.n, nullptr, 0, par);
  gemm<kBiasResidual>(s.hid, p.fc1.n, S, p.fc2, x, ldx, x, ldx, par);
}

int max_mlp(const ModelP& m) {
  int h = 1;
  for (int l = 0; l < m.nlayers; ++l) h = (int)imax(h, m.layers[l].fc1.n);
  return h;
}

// Buffers of the fusion + Transformer part for a tile of S samples: shared ones and per-thread ones.
struct HeadScratch {
  ModScratch mod;
  LayerScratch layer;
  float *tok = nullptr, *proj = nullptr, *pooled = nullptr;
  float* shared = nullptr;
  int64_t per_thread = 0;

  void alloc_shared(const ModelP& m, int S) {
    const int K = m.num_slices, T = K + 1, d = m.d;
    int64_t act, hid, row;
    module_scratch_size(m.fusion, S, K, &act, &hid, &row);
    const int64_t M = (int64_t)S * T;
    const int64_t sizes[] = {act, act, act, hid, M * d, M * 3 * d, M * d, M * max_mlp(m), M * d,
                             (int64_t)S * K * d, (int64_t)S * d};
    int64_t total = 0;
    for (int64_t n : sizes) total += (n + 15) / 16 * 16;
    shared = falloc(total);
    float* p = shared;
    float** dst[] = {&mod.x, &mod.x2, &mod.h, &mod.hid, &layer.h, &layer.qkv, &layer.att, &layer.hid, &tok,
                     &proj, &pooled};
    for (int i = 0; i < 11; ++i) {
      *dst[i] = p;
      p += (sizes[i] + 15) / 16 * 16;
    }
    per_thread = imax(row, attention_tmp_size(T, d, m.nlayers ? m.layers[0].heads : 1)) + 16;
  }
};

// F (S * K, sum of sensor widths) -> logits (S, num_classes) through fusion module and Transformer.
void head_tile(const ModelP& m, const float* F, int S, float* logits, HeadScratch hs, float* thread_tmp,
               const Par& par) {
  const int K = m.num_slices, T = K + 1, d = m.d;
  hs.mod.tmp = thread_tmp;
  hs.layer.tmp = thread_tmp;
  const float* h = module_tile(m.fusion, F, S, K, hs.mod, par);  // (S * K, fusion_dims[-1])
  gemm<kBias>(h, m.fusion.dims[m.fusion.nstages - 1], (int64_t)S * K, m.token, hs.proj, d, nullptr, 0, par);
  int64_t lo, hi;
  par.range((int64_t)S * T, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) {  // [class] token, then the slices' tokens; plus positions
    const int64_t s = r / T;
    const int t = (int)(r % T);
    const float* src = t == 0 ? m.cls : hs.proj + (s * K + t - 1) * d;
    const float* pos = m.pos + (int64_t)t * d;
    float* dst = hs.tok + r * d;
    for (int c = 0; c < d; ++c) dst[c] = src[c] + pos[c];
  }
  par.barrier();
  for (int l = 0; l + 1 < m.nlayers; ++l) encoder_layer_tile(hs.tok, S, T, d, m.layers[l], hs.layer, par);
  if (m.nlayers > 0) encoder_layer_cls_tile(hs.tok, S, T, d, m.layers[m.nlayers - 1], hs.layer, par);
  par.range(S, &lo, &hi);
  for (int64_t s = lo; s < hi; ++s) ln_row(hs.tok + s * T * d, hs.pooled + s * d, d, m.norm_w, m.norm_b, m.norm_eps);
  par.barrier();
  gemm<kBias>(hs.pooled, d, S, m.head, logits, m.num_classes, nullptr, 0, par);
}

// Slices per tile of a sensor module: about 24 rows at the last stage, but enough tiles for all threads.
int sensor_group(int l_out, int64_t segments, int threads) {
  const char* env = getenv("UMSNET_FAST_CPU_TILE_ROWS");  // tuning knob: rows at the last stage
  const int64_t rows = env ? imax(1, atoi(env)) : 24;
  int64_t g = imax(1, (rows + l_out - 1) / imax(1, l_out));
  g = imin(g, imax(1, (segments + threads - 1) / threads));
  return (int)g;
}

void forward_impl(const ModelP& m, const InputP* xs, int B, float* logits, int threads) {
  const int K = m.num_slices;
  const int64_t BK = (int64_t)B * K;
  int fw = 0;
  for (int i = 0; i < m.nsensors; ++i) fw += m.sensors[i].dims[m.sensors[i].nstages - 1];
  float* F = falloc(BK * fw);  // (B * K, fw): per-slice features of all sensors side by side

  // Stage 1: each sensor's module on tiles of G slices; a thread runs whole tiles.
  int groups[64], tiles_before[65];
  int64_t need = 0;
  tiles_before[0] = 0;
  for (int i = 0; i < m.nsensors; ++i) {
    const ModuleP& mod = m.sensors[i];
    const int L = xs[i].length / K;
    groups[i] = sensor_group(module_out_length(mod, L), BK, threads);
    tiles_before[i + 1] = tiles_before[i] + (int)((BK + groups[i] - 1) / groups[i]);
    int64_t act, hid, row;
    module_scratch_size(mod, groups[i], L, &act, &hid, &row);
    need = imax(need, 3 * act + hid + row + (int64_t)groups[i] * L * mod.c_in + 128);
  }
  const int ntiles = tiles_before[m.nsensors];
#pragma omp parallel num_threads(threads)
  {
    float* buf = falloc(need);
#pragma omp for schedule(dynamic, 1)
    for (int job = 0; job < ntiles; ++job) {
      int i = 0;
      while (job >= tiles_before[i + 1]) ++i;
      const ModuleP& mod = m.sensors[i];
      const InputP& in = xs[i];
      const int L = in.length / K, G = groups[i];
      const int64_t q0 = (int64_t)(job - tiles_before[i]) * G;
      const int g = (int)imin(G, BK - q0);
      int64_t act, hid, row;
      module_scratch_size(mod, G, L, &act, &hid, &row);
      ModScratch s;
      s.x = buf, s.x2 = buf + act, s.h = buf + 2 * act, s.hid = buf + 3 * act, s.tmp = s.hid + hid;
      float* gathered = s.tmp + row + 16;
      for (int gi = 0; gi < g; ++gi) {  // (b, c, k*L + t) -> rows (gi*L + t, c)
        const int64_t q = q0 + gi, b = q / K, k = q % K;
        for (int t = 0; t < L; ++t)
          for (int c = 0; c < mod.c_in; ++c)
            gathered[((int64_t)gi * L + t) * mod.c_in + c] = in.x[b * in.sb + c * in.sc + (k * L + t) * in.st];
      }
      int off = 0;
      for (int j = 0; j < i; ++j) off += m.sensors[j].dims[m.sensors[j].nstages - 1];
      const float* y = module_tile(mod, gathered, g, L, s, Par(), F + q0 * fw + off, fw);
      if (!y) continue;  // the last block wrote the means
      const int lf = module_out_length(mod, L), cf = mod.dims[mod.nstages - 1];
      for (int gi = 0; gi < g; ++gi) {  // mean over the remaining length
        float* dst = F + (q0 + gi) * fw + off;
        for (int c = 0; c < cf; ++c) dst[c] = 0.f;
        for (int t = 0; t < lf; ++t)
          for (int c = 0; c < cf; ++c) dst[c] += y[((int64_t)gi * lf + t) * cf + c];
        for (int c = 0; c < cf; ++c) dst[c] /= lf;
      }
    }
    free(buf);
  }

  // Stages 2 and 3 on tiles of samples; with fewer samples than threads, all threads share a tile.
  if (B < threads) {
    HeadScratch hs;
    hs.alloc_shared(m, B);
#pragma omp parallel num_threads(threads)
    {
      float* tmp = falloc(hs.per_thread);
      Par par;
      par.tid = omp_get_thread_num();
      par.nt = omp_get_num_threads();
      head_tile(m, F, B, logits, hs, tmp, par);
      free(tmp);
    }
    free(hs.shared);
  } else {
    const int S = (int)imin(4, (B + threads - 1) / threads);
    const int n = (B + S - 1) / S;
#pragma omp parallel num_threads(threads)
    {
      HeadScratch hs;
      hs.alloc_shared(m, S);
      float* tmp = falloc(hs.per_thread);
#pragma omp for schedule(dynamic, 1)
      for (int j = 0; j < n; ++j) {
        const int s0 = j * S, sn = (int)imin(S, B - s0);
        head_tile(m, F + (int64_t)s0 * K * fw, sn, logits + (int64_t)s0 * m.num_classes, hs, tmp, Par());
      }
      free(tmp);
      free(hs.shared);
    }
  }
  free(F);
}

// ---------------------------------------------------------------------------------------------
// The single ops, for testing each against its *_ref: all threads cooperate on one tile.

#define UMS_TEAM(threads, ...)                           \
  _Pragma("omp parallel num_threads(threads)") {         \
    Par par;                                             \
    par.tid = omp_get_thread_num();                      \
    par.nt = omp_get_num_threads();                      \
    __VA_ARGS__                                          \
  }

void linear_op(const float* x, int64_t M, const LinearP& W, int epi, const float* residual, float* y,
               int threads) {
  UMS_TEAM(threads, {
    if (epi == kBiasGelu)
      gemm<kBiasGelu>(x, W.k, M, W, y, W.n, nullptr, 0, par);
    else if (epi == kBiasResidual)
      gemm<kBiasResidual>(x, W.k, M, W, y, W.n, residual, W.n, par);
    else
      gemm<kBias>(x, W.k, M, W, y, W.n, nullptr, 0, par);
  })
}

void layer_norm_op(const float* x, int64_t M, int C, const float* w, const float* b, float eps, float* y,
                   int threads) {
  UMS_TEAM(threads, { layer_norm_rows(x, M, C, w, b, eps, y, par); })
}

// Tiles of whole segments (about 96 rows) so that a tile's hidden stays in cache; threads take whole
// tiles, or share the one tile when there are fewer tiles than threads.
void lsr_block_op(float* x, int B, int L, const BlockP& p, int threads) {
  const int G = (int)imax(1, 96 / imax(1, L));
  const int tiles = (B + G - 1) / G;
  if (tiles < threads) {
    const int64_t M = (int64_t)B * L;
    float* h = falloc(M * p.c);
    float* hid = falloc(M * p.fc1.n);
    UMS_TEAM(threads, {
      ModScratch s;
      s.h = h, s.hid = hid, s.tmp = falloc(p.c + 16);
      lsr_block_tile(x, B, L, p, s, par);
      free(s.tmp);
    })
    free(h);
    free(hid);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t M = (int64_t)G * L;
    ModScratch s;
    s.h = falloc(M * p.c), s.hid = falloc(M * p.fc1.n), s.tmp = falloc(p.c + 16);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < tiles; ++t) {
      const int g0 = t * G;
      lsr_block_tile(x + (int64_t)g0 * L * p.c, (int)imin(G, B - g0), L, p, s, Par());
    }
    free(s.h);
    free(s.hid);
    free(s.tmp);
  }
}

void lsr_module_op(const float* x, int B, int L, const ModuleP& m, float* y, int threads) {
  int64_t act, hid, row;
  module_scratch_size(m, B, L, &act, &hid, &row);
  float* buf = falloc(3 * act + hid);
  const int64_t out_n = (int64_t)B * module_out_length(m, L) * m.dims[m.nstages - 1];
  UMS_TEAM(threads, {
    ModScratch s;
    s.x = buf, s.x2 = buf + act, s.h = buf + 2 * act, s.hid = buf + 3 * act, s.tmp = falloc(row + 16);
    const float* out = module_tile(m, x, B, L, s, par);
    int64_t lo, hi;
    par.range(out_n, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) y[i] = out[i];
    free(s.tmp);
  })
  free(buf);
}

void attention_op(const float* qkv, int B, int T, int d, int heads, float scale, float* out, int threads) {
  UMS_TEAM(threads, {
    float* tmp = falloc(attention_tmp_size(T, d, heads));
    attention_rows(qkv, B, T, T, d, heads, scale, out, tmp, par);
    free(tmp);
  })
}

void encoder_layer_op(float* x, int B, int T, int d, const LayerP& p, int threads) {
  const int64_t M = (int64_t)B * T;
  float* buf = falloc(M * (5 * (int64_t)d + p.fc1.n));
  UMS_TEAM(threads, {
    LayerScratch s;
    s.h = buf, s.qkv = buf + M * d, s.att = buf + 4 * M * d, s.hid = buf + 5 * M * d;
    s.tmp = falloc(attention_tmp_size(T, d, p.heads));
    encoder_layer_tile(x, B, T, d, p, s, par);
    free(s.tmp);
  })
  free(buf);
}

}  // namespace

extern const KernelTable kTable = {UMS_ISA_NAME, forward_impl, linear_op, layer_norm_op, lsr_block_op,
                                   lsr_module_op, attention_op, encoder_layer_op};
