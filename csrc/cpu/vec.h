// Vector type and helpers of the CPU engine: loads/stores, exp, GELU, aligned allocation, thread teams (Par).
//
// Part of the engine of kernels_impl.h: included there, inside namespace umsnet_fast::cpu::<isa>::{anonymous},
// once per instruction-set build; not a standalone header.
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
#if defined(UMSNET_AVX512)
  return (v16)_mm512_min_ps((__m512)a, (__m512)b);
#else
  return a < b ? a : b;
#endif
}
inline v16 vmax(v16 a, v16 b) {
#if defined(UMSNET_AVX512)
  return (v16)_mm512_max_ps((__m512)a, (__m512)b);
#else
  return a > b ? a : b;
#endif
}
// Denormal floats (below 1.2e-38) read and written as zero in the engine's threads while one lives, as
// TensorFlow's ScopedFlushDenormal does; the caller's floating-point state is restored when it ends. A
// softmax over widely spread scores makes them (tiny probabilities times values), and each costs the FPU a
// slow path: with randomized weights the fp32 head of UMSNet-A took 813 us at batch 1 on the Zen 4
// development machine, 556 us with the calling thread alone flushing. x86 only (MXCSR FTZ | DAZ).
struct FlushDenormals {
#if defined(__x86_64__) || defined(__i386__)
  unsigned saved = __builtin_ia32_stmxcsr();
  FlushDenormals() { __builtin_ia32_ldmxcsr(saved | 0x8040u); }
  ~FlushDenormals() { __builtin_ia32_ldmxcsr(saved); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
#endif
};

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
#if defined(UMSNET_AVX512)  // set by isa_avx512.cpp (g++ does not define __AVX512F__ after a target pragma)
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
