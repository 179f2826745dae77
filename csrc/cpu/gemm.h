// GEMM over packed weights: C (M, n) = epilogue(A (M, k) W^T + b), the register-tile microkernel.
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_fast::cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.

// The epilogue and store of an MR-row register tile (c0: columns 0-15, c1: 16-31 of one panel, bias in).
template <int MR, int EPI, bool HALF>
__attribute__((always_inline)) inline void store_tile(const v16* c0, const v16* c1, float* C, int64_t ldc,
                                                      const float* R, int64_t ldr, int ncols) {
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

// Register tiles: MR rows x one 32-column panel; accumulators start at the bias.
// HALF: the panel's last 16 columns are all padding (width <= 16 left), so they are not computed.

// fp32 weights: one panel row (2 x 16 floats) per k, one broadcast input element per row.
template <int MR, int EPI, bool HALF>
struct Fp32Tile {
  static void run(const float* A, int64_t lda, const float* Bp, const float* bias, int K, float* C, int64_t ldc,
                  const float* R, int64_t ldr, int ncols) {
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
    store_tile<MR, EPI, HALF>(c0, c1, C, ldc, R, ldr, ncols);
  }
};

#if defined(UMSNET_BF16_DP)
typedef int32_t i32u __attribute__((aligned(2), __may_alias__));

// bf16 weights and activations (rounded by round_rows_bf16): per pair of k, one panel row of 32 column
// pairs (two zmm) and one broadcast input pair per row, vdpbf16ps adding both products in fp32.
template <int MR, int EPI, bool HALF>
struct DotTile {
  static void run(const uint16_t* A, int64_t lda, const uint16_t* Bp, const float* bias, int K2, float* C, int64_t ldc,
                  const float* R, int64_t ldr, int ncols) {
    v16 c0[MR], c1[MR];
    const v16 bias0 = vld(bias), bias1 = vld(bias + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      c0[i] = bias0;
      c1[i] = bias1;
    }
    for (int kk = 0; kk < K2; ++kk) {  // K2 = ceil(k / 2) pairs
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + (int64_t)kk * 2 * kPanel);
      const __m512bh b1 = HALF ? b0 : (__m512bh)_mm512_loadu_si512(Bp + (int64_t)kk * 2 * kPanel + 32);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32(*(const i32u*)(A + i * lda + 2 * kk));
        c0[i] = (v16)_mm512_dpbf16_ps((__m512)c0[i], a, b0);
        if (!HALF) c1[i] = (v16)_mm512_dpbf16_ps((__m512)c1[i], a, b1);
      }
    }
    store_tile<MR, EPI, HALF>(c0, c1, C, ldc, R, ldr, ncols);
  }
};

inline __mmask16 first_lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

// rows x k floats (row stride lda) -> bf16 rounded to nearest even (vcvtne2ps2bf16), row stride kp, zero in
// columns k..kp and in rows rows..rows_out (AMX tiles read 16 rows).
void round_rows_bf16(const float* A, int64_t lda, int64_t rows, int k, int kp, uint16_t* dst, int64_t rows_out) {
  for (int64_t r = 0; r < rows_out; ++r) {
    const float* a = r < rows ? A + r * lda : A;
    for (int c = 0; c < kp; c += 32) {
      const int n = r < rows ? k - c : 0;
      const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(n), a + c);
      const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(n - 16), a + c + 16);
      _mm512_storeu_si512(dst + r * kp + c, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

// Per-thread buffer of the bf16 activations of one GEMM job. It is kept for the thread's life (the
// OpenMP pool's threads live as long as the process), grown when a bigger GEMM comes.
uint16_t* bf16_scratch(int64_t n) {
  static __thread uint16_t* buf = nullptr;
  static __thread int64_t cap = 0;
  if (n > cap) {
    free(buf);
    buf = (uint16_t*)aligned_alloc(64, ((size_t)n * sizeof(uint16_t) + 63) / 64 * 64);
    cap = n;
  }
  return buf;
}
#else
typedef uint32_t v16u __attribute__((vector_size(64), aligned(4), __may_alias__));

// bf16 weights on a CPU without bf16 arithmetic: each panel row of 32 column pairs widened to fp32 (a bf16
// is the top half of an fp32) and used as two fp32 panel rows; the activations stay fp32.
template <int MR, int EPI, bool HALF>
struct WidenTile {
  static void run(const float* A, int64_t lda, const uint16_t* Bp, const float* bias, int K, float* C, int64_t ldc,
                  const float* R, int64_t ldr, int ncols) {
    v16 c0[MR], c1[MR];
    const v16 bias0 = vld(bias), bias1 = vld(bias + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      c0[i] = bias0;
      c1[i] = bias1;
    }
    const v16u top = (v16u){} + 0xFFFF0000u;
    for (int k = 0; k < K; k += 2) {
      const uint16_t* row = Bp + (int64_t)k * kPanel;  // pair row k / 2
      const v16u w0 = *(const v16u*)row, w1 = HALF ? w0 : *(const v16u*)(row + 32);
      const v16 e0 = (v16)(w0 << 16), e1 = (v16)(w1 << 16);  // weights of k
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const float a = A[i * lda + k];
        c0[i] += e0 * a;
        if (!HALF) c1[i] += e1 * a;
      }
      if (k + 1 < K) {  // weights of k + 1 (past an odd k, a zero pad and no input to read)
        const v16 o0 = (v16)(w0 & top), o1 = (v16)(w1 & top);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          const float a = A[i * lda + k + 1];
          c0[i] += o0 * a;
          if (!HALF) c1[i] += o1 * a;
        }
      }
    }
    store_tile<MR, EPI, HALF>(c0, c1, C, ldc, R, ldr, ncols);
  }
};
#endif

#if defined(UMSNET_AMX)
// Tiles 0, 1: fp32 accumulators (16 rows x 16 columns: columns 0-15 and 16-31 of a panel); 2: activations
// (16 rows x 32 bf16 of k); 3, 4: weights (16 pair rows x 16 columns' pairs). All 16 rows of 64 bytes.
void amx_configure() {
  struct alignas(64) {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
  } cfg = {};
  cfg.palette = 1;
  for (int t = 0; t < 5; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
}

// rows (padded to 16 in A, zeros) x one panel: kp / 32 tile products per 16 rows, then the epilogue in
// registers from the accumulators stored to the stack.
template <int EPI>
void amx_panel(const uint16_t* A, int64_t rows, int kp, const uint16_t* Bp, const float* bias, float* C, int64_t ldc,
               const float* R, int64_t ldr, int ncols) {
  float acc[16 * kPanel] __attribute__((aligned(64)));
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    _tile_zero(0);
    _tile_zero(1);
    for (int kc = 0; kc < kp; kc += 32) {
      _tile_loadd(2, A + r0 * kp + kc, kp * sizeof(uint16_t));
      _tile_loadd(3, Bp + (int64_t)kc * kPanel, 2 * kPanel * sizeof(uint16_t));  // pair rows kc/2 ..
      _tile_loadd(4, Bp + (int64_t)kc * kPanel + 32, 2 * kPanel * sizeof(uint16_t));
      _tile_dpbf16ps(0, 2, 3);
      _tile_dpbf16ps(1, 2, 4);
    }
    _tile_stored(0, acc, kPanel * sizeof(float));
    _tile_stored(1, acc + 16, kPanel * sizeof(float));
    const v16 bias0 = vld(bias), bias1 = vld(bias + 16);
    for (int64_t i = 0; i < imin(16, rows - r0); ++i) {
      const v16 c0 = vld(acc + i * kPanel) + bias0, c1 = vld(acc + i * kPanel + 16) + bias1;
      store_tile<1, EPI, false>(&c0, &c1, C + (r0 + i) * ldc, ldc, R ? R + (r0 + i) * ldr : nullptr, ldr, ncols);
    }
  }
}
#endif

template <template <int, int, bool> class Tile, int EPI, bool HALF, int MR>
struct RowTail {  // the last (rows < UMSNET_MR) rows of a block
  template <class TA, class TB>
  static void run(int rows, const TA* A, int64_t lda, const TB* Bp, const float* bias, int K, float* C, int64_t ldc,
                  const float* R, int64_t ldr, int ncols) {
    if (rows == MR)
      Tile<MR, EPI, HALF>::run(A, lda, Bp, bias, K, C, ldc, R, ldr, ncols);
    else
      RowTail<Tile, EPI, HALF, MR - 1>::run(rows, A, lda, Bp, bias, K, C, ldc, R, ldr, ncols);
  }
};
template <template <int, int, bool> class Tile, int EPI, bool HALF>
struct RowTail<Tile, EPI, HALF, 0> {
  template <class TA, class TB>
  static void run(int, const TA*, int64_t, const TB*, const float*, int, float*, int64_t, const float*, int64_t, int) {}
};

// Rows [0, rows) of A times one panel Bp into C (columns of the panel), in register tiles of UMSNET_MR rows.
template <template <int, int, bool> class Tile, int EPI, bool HALF, class TA, class TB>
void tile_rows(const TA* A, int64_t lda, int64_t rows, const TB* Bp, const float* bias, int K, float* C, int64_t ldc,
               const float* R, int64_t ldr, int ncols) {
  int64_t m = 0;
  for (; m + UMSNET_MR <= rows; m += UMSNET_MR)
    Tile<UMSNET_MR, EPI, HALF>::run(A + m * lda, lda, Bp, bias, K, C + m * ldc, ldc, R ? R + m * ldr : nullptr, ldr,
                                    ncols);
  if (m < rows)
    RowTail<Tile, EPI, HALF, UMSNET_MR - 1>::run((int)(rows - m), A + m * lda, lda, Bp, bias, K, C + m * ldc, ldc,
                                                 R ? R + m * ldr : nullptr, ldr, ncols);
}

template <template <int, int, bool> class Tile, int EPI, class TA, class TB>
void panel_rows(const TA* A, int64_t lda, int64_t rows, const TB* Bp, const float* bias, int K, float* C, int64_t ldc,
                const float* R, int64_t ldr, int ncols) {
  if (ncols <= 16)
    tile_rows<Tile, EPI, true>(A, lda, rows, Bp, bias, K, C, ldc, R, ldr, ncols);
  else
    tile_rows<Tile, EPI, false>(A, lda, rows, Bp, bias, K, C, ldc, R, ldr, ncols);
}

// The same Linear without its first `cols` outputs (a multiple of kPanel), in either layout.
inline LinearParams skip_outputs(LinearParams W, int cols) {
  if (W.wb)
    W.wb += (int64_t)cols * W.kp;  // cols / 32 panels of (kp / 2) x 32 x 2
  else
    W.w += (int64_t)cols * W.k;
  W.b += cols;
  W.n -= cols;
  return W;
}

// Jobs are (panel, block of 4 register tiles). fp32: panel-major, so that one thread reuses a panel.
// bf16: block-major, so that a thread rounds each block of rows to bf16 once and runs it on all panels
// (a bf16 panel is half the bytes of an fp32 one; rounding per panel cost a tenth of the engine's time).
template <int EPI>
void gemm(const float* A, int64_t lda, int64_t M, const LinearParams& W, float* C, int64_t ldc, const float* R,
          int64_t ldr, const Par& par) {
  const int64_t panels = (W.n + kPanel - 1) / kPanel;
  const int64_t rows_per_job = 4 * UMSNET_MR;
  const int64_t mblocks = (M + rows_per_job - 1) / rows_per_job;
  int64_t lo, hi;
  par.range(panels * mblocks, &lo, &hi);
#if defined(UMSNET_BF16_DP)
  uint16_t* abuf = W.wb && hi > lo ? bf16_scratch((rows_per_job + 15) / 16 * 16 * W.kp) : nullptr;
  int64_t rounded = -1;  // the block of rows now in abuf
#if defined(UMSNET_AMX)
  if (abuf) amx_configure();
#endif
#endif
  for (int64_t j = lo; j < hi; ++j) {
    const int64_t p = W.wb ? j % panels : j / mblocks, mb = W.wb ? j / panels : j % mblocks;
    const int64_t m0 = mb * rows_per_job, rows = imin(M, m0 + rows_per_job) - m0, col = p * kPanel;
    const int ncols = (int)imin(kPanel, W.n - col);
    const float* bias = W.b + col;
    float* Cj = C + m0 * ldc + col;
    const float* Rj = R ? R + m0 * ldr + col : nullptr;
    if (!W.wb) {
      panel_rows<Fp32Tile, EPI>(A + m0 * lda, lda, rows, W.w + p * W.k * kPanel, bias, W.k, Cj, ldc, Rj, ldr, ncols);
      continue;
    }
    const uint16_t* Bp = W.wb + p * W.kp * kPanel;
#if defined(UMSNET_BF16_DP)
    if (mb != rounded) {
#if defined(UMSNET_AMX)
      round_rows_bf16(A + m0 * lda, lda, rows, W.k, W.kp, abuf, (rows + 15) / 16 * 16);
#else
      round_rows_bf16(A + m0 * lda, lda, rows, W.k, W.kp, abuf, rows);
#endif
      rounded = mb;
    }
#if defined(UMSNET_AMX)
    amx_panel<EPI>(abuf, rows, W.kp, Bp, bias, Cj, ldc, Rj, ldr, ncols);
#else
    panel_rows<DotTile, EPI>(abuf, W.kp, rows, Bp, bias, (W.k + 1) / 2, Cj, ldc, Rj, ldr, ncols);
#endif
#else
    panel_rows<WidenTile, EPI>(A + m0 * lda, lda, rows, Bp, bias, W.k, Cj, ldc, Rj, ldr, ncols);
#endif
  }
#if defined(UMSNET_AMX)
  if (abuf) _tile_release();
#endif
  par.barrier();
}
